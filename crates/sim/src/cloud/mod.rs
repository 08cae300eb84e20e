//! `encoder-sim cloud`: a simulator of the cloud access-control API (shaped as Seam's, see the
//! seed documents) with the bridge websocket of docs/cloud-protocol.md.
//!
//! - [`model`]: objects, the whole state, JSON views.
//! - [`rows`]: one kind of object in order, noting the rows a change touched.
//! - [`store`]: `--state`, a redb file with a row per object; a change writes its rows alone.
//! - [`attempts`]: the attempt lifecycle and the cloud side of the bridge protocol, as plain
//!   functions of the current time (no sockets): claims, leases, results, expiry.
//! - [`attempts::sandbox`]: Seam's `/acs/encoders/simulate/*` routes (scripted outcomes).
//! - `api`: the HTTP handlers (thin: token, parameters, call the model), with the methods
//!   Seam lists for each route (GET with query parameters, PATCH, POST).
//! - `bridge_ws`: one websocket session per bridge.
//! - [`events`]: webhook delivery.
//! - [`Offline`]: the request and message handling without sockets (fuzz targets).
//!
//! [`run`] serves on a bound listener until `shutdown` resolves (mini-redis's shape), so a test
//! binds port 0, reads the address, and runs the server in-process.

mod api;
pub mod attempts;
mod bridge_ws;
pub mod events;
pub mod model;
mod offline;
pub mod rows;
pub mod store;
pub mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

pub use bridge_ws::{MAX_MESSAGE, SUBPROTOCOL};
pub use offline::Offline;

use attempts::{Core, Timing, log};
use events::WebhookUrl;
use model::{Millis, State, now_millis};
use store::Store;

/// The token accepted when none is given. Seam's SDKs refuse, before sending anything, an
/// API key that does not start with `seam_`, so the default has that shape (any `--token`
/// is accepted).
pub const DEFAULT_TOKEN: &str = "seam_sim_demo_token";

/// How the simulator runs.
#[derive(Debug, Clone)]
pub struct CloudOptions {
    /// Bearer token for the HTTP API and the bridge websocket.
    pub token: String,
    /// Where to keep the state across restarts ([`store`]).
    pub state_file: Option<PathBuf>,
    /// Where to POST events.
    pub webhook_url: Option<String>,
    /// The webhook signing secret (`whsec_` + base64), as Seam gives one per webhook.
    pub webhook_secret: events::WebhookSecret,
    /// Pending attempts end as `action_attempt_expired` after this.
    pub attempt_timeout: Duration,
    /// ... or after this, while no bridge for their encoder is connected.
    pub no_bridge_grace: Duration,
    /// How long, and how many, finished attempts and events are kept.
    pub retain: model::Retain,
}

impl Default for CloudOptions {
    fn default() -> Self {
        Self {
            token: DEFAULT_TOKEN.to_owned(),
            state_file: None,
            webhook_url: None,
            webhook_secret: events::WebhookSecret::generate(),
            attempt_timeout: Duration::from_secs(120),
            no_bridge_grace: Duration::from_secs(30),
            retain: model::Retain::default(),
        }
    }
}

/// Errors that stop the simulator.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// Bad options or state file.
    #[error("{0}")]
    Setup(String),
    /// Socket trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// Cause.
        source: std::io::Error,
    },
}

/// What the handlers, sessions and timer share.
pub(crate) struct Shared {
    core: Mutex<Core>,
    token: String,
    store: Option<Store>,
    webhook: Option<mpsc::UnboundedSender<Value>>,
    wake: Notify,
    next_connection: AtomicU64,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn new(
        mut core: Core,
        token: String,
        store: Option<Store>,
        webhook: Option<mpsc::UnboundedSender<Value>>,
    ) -> Self {
        let (shutdown, _) = watch::channel(false);
        core.hold_messages();
        Self {
            core: Mutex::new(core),
            token,
            store,
            webhook,
            wake: Notify::new(),
            next_connection: AtomicU64::new(1),
            shutdown,
        }
    }

    /// Runs `f` on the core at the current time, then saves the rows it changed (one
    /// transaction, durable when it returns), sends the messages it queued for bridges, queues
    /// new events for the webhook and wakes the expiry timer. The caller answers its client
    /// after this returns: what a client or a bridge is told has been saved first.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Core, Millis) -> R) -> R {
        let result = self.with_quiet(f);
        self.wake.notify_one();
        result
    }

    fn with_quiet<R>(&self, f: impl FnOnce(&mut Core, Millis) -> R) -> R {
        let mut core = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        let result = f(&mut core, now_millis());
        match &self.store {
            Some(store) => {
                if let Err(e) = store.save(&mut core.state) {
                    log(&format!(
                        "saving the state: {e} (kept; retried with the next change)"
                    ));
                }
            }
            None => store::discard_changes(&mut core.state),
        }
        core.release_messages();
        for event in core.take_events() {
            if let Some(tx) = &self.webhook {
                let _ = tx.send(event);
            }
        }
        result
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// Binds `addr` (e.g. `127.0.0.1:0`).
pub async fn bind(addr: &str) -> Result<TcpListener, CloudError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| CloudError::Io {
            context: "binding the listen address",
            source,
        })
}

/// Serves the API and the bridge websocket on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    options: CloudOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CloudError> {
    run_with_tls(listener, options, None, shutdown).await
}

/// [`run`], over TLS with `tls` when given ([`tls::server_config`]).
pub async fn run_with_tls(
    listener: TcpListener,
    options: CloudOptions,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CloudError> {
    let now = now_millis();
    let (store, state) = match &options.state_file {
        Some(path) => {
            let (store, state, opened) = Store::open(path, now).map_err(CloudError::Setup)?;
            if let Some(kept) = &opened.imported_from {
                log(&format!(
                    "imported the JSON state file {} of an earlier version into a store in its place; the JSON file is kept as {}",
                    path.display(),
                    kept.display()
                ));
            }
            for row in &opened.damaged {
                log(&row.to_string());
            }
            (Some(store), state)
        }
        None => (None, State::seeded(now)),
    };
    let webhook = match &options.webhook_url {
        Some(url) => {
            let url = WebhookUrl::parse(url).map_err(CloudError::Setup)?;
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(events::deliver(url, options.webhook_secret.clone(), rx));
            Some(tx)
        }
        None => None,
    };
    let timing = Timing {
        attempt_timeout_ms: millis(options.attempt_timeout),
        no_bridge_grace_ms: millis(options.no_bridge_grace),
        retain: options.retain,
        ..Timing::default()
    };
    let core = Core::new(state, timing, now);
    let shared = Arc::new(Shared::new(core, options.token, store, webhook));
    let timer = tokio::spawn(expiry_timer(Arc::clone(&shared)));
    let app = api::router(Arc::clone(&shared));
    let stopping = Arc::clone(&shared);
    // Small JSON messages both ways on the bridge websocket: without TCP_NODELAY a reply can
    // wait for the peer's delayed ACK (40 ms).
    let graceful = async move {
        shutdown.await;
        // Close the bridge sessions too: upgraded connections outlive the HTTP server.
        stopping.shutdown.send_replace(true);
    };
    let served = match tls {
        None => {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await
        }
        Some(config) => {
            let listener = tls::TlsListener {
                tcp: listener,
                acceptor: tokio_rustls::TlsAcceptor::from(config),
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await
        }
    };
    timer.abort();
    // Save once more (a no-op unless something changed).
    shared.with_quiet(|_, _| ());
    served.map_err(|source| CloudError::Io {
        context: "serving HTTP",
        source,
    })
}

/// Expires attempts and lets leases lapse when due; woken early by every change.
async fn expiry_timer(shared: Arc<Shared>) {
    loop {
        let (next, now) = shared.with_quiet(|core, now| (core.tick(now), now));
        let wait = next.map_or(60_000, |t| t.saturating_sub(now).clamp(1, 60_000));
        let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(1));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.wake.notified() => {}
        }
    }
}
