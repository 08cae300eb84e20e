//! `encoder-bridge run`: the daemon, as one async function in the manner of mini-redis's
//! `server::run(listener, shutdown)`: [`run`] wires the real parts ([`Deps`]: the store, the
//! site keys, the machine's encoders, the cloud connector) and [`serve`] runs with whatever
//! parts it is given, so tests drive it in-process over an in-memory pipe with tokio's paused
//! clock.
//!
//! One task owns everything that changes: the [`Session`] (protocol and attempt state), the
//! connection, the [`Liveness`] of the link, the runners. Runner threads and the PC/SC monitor
//! talk to it over a channel; a 1 s tick drives lease renewal, pings, the watchdog and the
//! shutdown bounds. It knows no wire message: the cloud module turns frames into session
//! input and session actions into frames.

mod encoders;
pub mod hardware;
mod local;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use encoder_hal::EncoderKind;
use encoder_hal::pcsc::ReaderEvent;
use encoder_protocol::cloud_error::{CloudError, ErrorType, SubCode};
use encoder_protocol::keys::SiteKeys;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;

use self::encoders::Encoders;
use self::hardware::{Hardware, ReaderNow, System};
use crate::cloud::connection::{Connection, Frame, Raw};
use crate::cloud::link::{self, Cloud, Connect, ConnectError};
use crate::cloud::liveness::{Due, Liveness};
use crate::cloud::session::{Action, Session};
use crate::config::Config;
use crate::control::server::{self as control_server, Call};
use crate::discovery::{self, Wanted};
use crate::job::{CardJob, JobReport};
use crate::notify;
use crate::runner::{EncoderState, Finished};
use crate::secrets;
use crate::store::{Phase, Store, StoreError};

/// How long a graceful stop lets a card operation in flight finish.
pub const FINISH_BOUND: Duration = Duration::from_secs(15);

/// How long a graceful stop waits for the cloud to acknowledge the outbox.
pub const FLUSH_BOUND: Duration = Duration::from_secs(5);

/// How long the daemon waits at start for the first probe of each PN532 and for pcscd's
/// reader list, so `hello` carries the encoders' real state.
pub const SETTLE_BOUND: Duration = Duration::from_secs(2);

/// How often the store drops what left the retention window (acknowledging a result drops
/// the oldest too; this is for a bridge that finishes nothing for a while).
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A secret is missing or exposed.
    #[error("{0}")]
    Secret(#[from] secrets::SecretError),
    /// The store cannot be opened.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// `cloud.ca_file` cannot be used.
    #[error("{0}")]
    Tls(ConnectError),
}

/// What the daemon runs with.
pub struct Deps<C> {
    /// The configuration (encoders, card waits, liveness).
    pub config: Config,
    /// The durable state.
    pub store: Arc<Store>,
    /// The site keys.
    pub site: Arc<SiteKeys>,
    /// The machine's encoders.
    pub hardware: Arc<dyn Hardware>,
    /// Opens connections to the cloud.
    pub connect: C,
    /// Requests from the control socket ([`crate::control`]); `None`: none served.
    pub control: Option<mpsc::Receiver<Call>>,
}

enum Event {
    Runner(Box<Finished>),
    Reader(ReaderEvent),
    /// An idle probe found an encoder's state (PN532).
    State(String, EncoderState),
}

/// The daemon's clock: tokio's, so tests can pause it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs the daemon on this machine until `shutdown` completes (graceful: the card operation in
/// flight is finished, bounded by [`FINISH_BOUND`], the outbox flushed, the websocket closed)
/// or `abort` completes (a second signal: the operation in flight is stopped between two
/// APDUs).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    abort: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (token, source) = secrets::load_token(&config)?;
    tracing::info!(source = %source, "cloud token loaded");
    let site = Arc::new(secrets::load_site_keys(&config)?);
    tracing::info!(versions = ?site.versions(), "site keys loaded");
    let store = Arc::new(Store::open_with(
        &config.state.dir,
        config.state.retention(),
    )?);
    tracing::info!(state = %config.state.dir.display(), "state store open");
    let tls = link::tls_config(&link::Trust::of(&config)).map_err(DaemonError::Tls)?;
    let connect = Cloud {
        url: config.cloud.url.clone(),
        token,
        tls,
    };
    // The control socket: a failure to set it up is logged, the daemon serves the cloud
    // without it.
    let (calls, control) = mpsc::channel(16);
    let server = match control_server::bind(&config.control.socket, &config.control.group) {
        Ok(bound) => {
            tracing::info!(socket = %bound.path().display(), group = %config.control.group, "control socket listening");
            Some(tokio::spawn(bound.serve(calls)))
        }
        Err(e) => {
            tracing::error!("{e}");
            None
        }
    };
    let deps = Deps {
        config,
        store,
        site,
        hardware: Arc::new(System),
        connect,
        control: server.is_some().then_some(control),
    };
    let outcome = serve(deps, shutdown, abort).await;
    if let Some(server) = server {
        // Dropping the listener removes the socket file.
        server.abort();
        let _ = server.await;
    }
    outcome
}

type Connecting<S> = Pin<Box<dyn Future<Output = Result<WebSocketStream<S>, ConnectError>> + Send>>;

fn connect_after<C: Connect>(connect: &C, delay: Duration) -> Connecting<C::Stream> {
    let connect = connect.clone();
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        connect.connect().await
    })
}

async fn poll_connect<S>(
    connecting: &mut Option<Connecting<S>>,
) -> Result<WebSocketStream<S>, ConnectError> {
    match connecting.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn next_call(control: &mut Option<mpsc::Receiver<Call>>) -> Option<Call> {
    match control {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    conn: Option<&mut Connection<S>>,
) -> Raw {
    match conn {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs the daemon with `deps`; see [`run`].
#[allow(clippy::too_many_lines)] // the event loop reads best as one select
pub async fn serve<C: Connect>(
    deps: Deps<C>,
    shutdown: impl Future<Output = ()>,
    abort: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let Deps {
        config,
        store,
        site,
        hardware,
        connect,
        mut control,
    } = deps;
    let bridge_id = store.bridge_id()?;
    tracing::info!(bridge_id = %bridge_id, "bridge identity");
    let (events, mut inbox) = mpsc::unbounded_channel();
    let mut daemon = Daemon {
        session: Session::new(bridge_id, env!("CARGO_PKG_VERSION").to_owned())
            .with_retention(store.retention()),
        encoders: Encoders::new(
            Arc::clone(&hardware),
            site,
            config.media,
            Arc::clone(&store),
            events.clone(),
        ),
        liveness: Liveness::new(config.ping_interval(), config.pong_timeout()),
        config,
        store: Arc::clone(&store),
        events: events.clone(),
        conn: None,
        reconnect: None,
        draining: None,
        link: local::LinkState::default(),
        local: local::LocalJobs::default(),
    };
    let loaded = store.load()?;
    for damaged in &loaded.damaged {
        tracing::error!(
            table = damaged.table,
            key = %damaged.key,
            "{damaged}; it is left in place (see `encoder-bridge doctor`)"
        );
    }
    let actions = daemon
        .session
        .restore(loaded.outbox, loaded.attempts, now());
    daemon.perform(actions).await;
    // The encoders' state before `hello`: pcscd's readers as it lists them now, each PN532
    // as its runner's first probe finds it (bounded by SETTLE_BOUND; later changes follow as
    // `encoder_status`).
    let settle_by = tokio::time::Instant::now() + SETTLE_BOUND;
    let readers = {
        let hardware = Arc::clone(&hardware);
        let asked = tokio::task::spawn_blocking(move || hardware.readers());
        match tokio::time::timeout_at(settle_by, asked).await {
            Ok(Ok(readers)) => readers,
            Ok(Err(_)) | Err(_) => HashMap::new(),
        }
    };
    for wanted in discovery::configured(&daemon.config) {
        let (online, card) = match wanted.kind {
            // A guess until the runner's first probe (the device itself is left to it).
            EncoderKind::Pn532 => (std::path::Path::new(&wanted.reader).exists(), None),
            EncoderKind::Pcsc => readers
                .get(&wanted.reader)
                .map_or((false, Some(false)), |r| (r.online, Some(r.card_present))),
        };
        daemon.add_encoder(&wanted, online, card).await;
    }
    for (
        name,
        &ReaderNow {
            online,
            card_present,
        },
    ) in &readers
    {
        if let Some(wanted) = discovery::pcsc_reader(&daemon.config, name)
            && !wanted.configured
        {
            daemon
                .add_encoder(&wanted, online, Some(card_present))
                .await;
        }
    }
    let forward = events.clone();
    let _watch = hardware.watch(Box::new(move |event| {
        forward.send(Event::Reader(event)).is_ok()
    }));
    while !daemon.encoders.unprobed.is_empty() {
        match tokio::time::timeout_at(settle_by, inbox.recv()).await {
            Ok(Some(event)) => daemon.event(event).await,
            Ok(None) | Err(_) => break,
        }
    }

    notify::ready();
    // The connect future lives across loop iterations: a select branch that fires meanwhile
    // must not abandon a half-open connection.
    let mut connecting = Some(connect_after(&connect, Duration::ZERO));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush_until: Option<Instant> = None;
    tokio::pin!(shutdown);
    tokio::pin!(abort);
    let mut shutdown_done = false;
    let mut status = String::new();
    let mut next_housekeeping = now() + HOUSEKEEPING_EVERY;

    loop {
        tokio::select! {
            () = &mut abort => {
                tracing::warn!("second signal: aborting the card operation in flight");
                daemon.encoders.abort();
                break;
            }
            () = &mut shutdown, if !shutdown_done => {
                shutdown_done = true;
                tracing::info!(active = daemon.session.active(), "stopping: finishing the card operation in flight");
                notify::stopping();
                daemon.session.drain();
                daemon.draining = Some(now() + FINISH_BOUND);
                daemon.encoders.cancel_waiting();
            }
            Some(event) = inbox.recv() => {
                daemon.event(event).await;
            }
            Some(call) = next_call(&mut control) => {
                daemon.call(call).await;
            }
            result = poll_connect(&mut connecting) => {
                connecting = None;
                match result {
                    Ok(ws) => {
                        tracing::info!(url = %daemon.config.cloud.url, "connected to the cloud");
                        daemon.link.connected();
                        daemon.conn = Some(Connection::new(ws));
                        daemon.liveness.connected(now());
                        let actions = daemon.session.connected(now());
                        daemon.perform(actions).await;
                    }
                    Err(e) => {
                        let delay = daemon.liveness.failed(e.wants_longest_delay());
                        if !daemon.link.failed(&e) {
                            // The same error again: logged once, with its hint.
                            tracing::debug!(retry_in_s = delay.as_secs_f32(), "cannot reach the cloud: {e}");
                        } else if e.wants_longest_delay() {
                            tracing::error!(retry_in_s = delay.as_secs_f32(), "{e}");
                        } else {
                            tracing::warn!(retry_in_s = delay.as_secs_f32(), "cannot reach the cloud: {e}");
                        }
                        if daemon.draining.is_none() {
                            connecting = Some(connect_after(&connect, delay));
                        }
                    }
                }
            }
            raw = recv(daemon.conn.as_mut()) => {
                daemon.liveness.received(now());
                let frame = match daemon.conn.as_mut() {
                    Some(conn) => conn.handle(raw).await,
                    None => Frame::Closed,
                };
                match frame {
                    Frame::Message(message) => {
                        let actions = daemon.session.message(*message, now());
                        daemon.perform(actions).await;
                    }
                    Frame::Nothing => {}
                    Frame::Closed => daemon.lost(),
                }
            }
            _ = tick.tick() => {
                daemon.abandon_local_jobs();
                let at = now();
                let actions = daemon.session.tick(at);
                daemon.perform(actions).await;
                match daemon.liveness.tick(at) {
                    Due::Dead => {
                        tracing::warn!(
                            pong_timeout_s = daemon.config.pong_timeout().as_secs(),
                            "no answer to a ping in time: reconnecting"
                        );
                        daemon.lost();
                    }
                    Due::Ping => {
                        if let Some(conn) = daemon.conn.as_mut()
                            && !conn.ping().await
                        {
                            daemon.lost();
                        }
                    }
                    Due::Nothing => {}
                }
                notify::watchdog();
                if at >= next_housekeeping {
                    next_housekeeping = at + HOUSEKEEPING_EVERY;
                    daemon.housekeeping();
                }
                let line = daemon.status_line();
                if line != status {
                    notify::status(&line);
                    status = line;
                }
                if let Some(finish_by) = daemon.draining {
                    if daemon.session.active() > 0 {
                        if at > finish_by {
                            tracing::warn!("the card operation did not finish in time: aborting it");
                            daemon.encoders.abort();
                            break;
                        }
                    } else {
                        let flush_by = *flush_until.get_or_insert(at + FLUSH_BOUND);
                        if daemon.session.unacknowledged() == 0
                            || daemon.conn.is_none()
                            || at > flush_by
                        {
                            break;
                        }
                    }
                }
            }
        }
        daemon.start_local_jobs().await;
        if let Some(delay) = daemon.reconnect.take()
            && daemon.draining.is_none()
            && connecting.is_none()
        {
            connecting = Some(connect_after(&connect, delay));
        }
    }
    if let Some(conn) = daemon.conn.take() {
        conn.close_going_away().await;
    }
    let unacknowledged = daemon.session.unacknowledged();
    daemon.local.stopping();
    let threads = daemon.encoders.stop();
    // Runner threads end after their job; do not wait on a reader that hangs.
    let _ = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        }),
    )
    .await;
    tracing::info!(unacknowledged, "stopped");
    Ok(())
}

struct Daemon<S> {
    config: Config,
    store: Arc<Store>,
    session: Session,
    encoders: Encoders,
    events: mpsc::UnboundedSender<Event>,
    conn: Option<Connection<S>>,
    liveness: Liveness,
    /// Set when the link was lost: reconnect after this delay.
    reconnect: Option<Duration>,
    draining: Option<Instant>,
    /// The link as `status` reports it.
    link: local::LinkState,
    /// Operator jobs from the control socket.
    local: local::LocalJobs,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Daemon<S> {
    fn status_line(&self) -> String {
        let n = self.session.encoder_count();
        let cloud = if self.draining.is_some() {
            "stopping"
        } else if self.conn.is_some() {
            "cloud connected"
        } else {
            "cloud disconnected"
        };
        format!("{n} encoder{}, {cloud}", if n == 1 { "" } else { "s" })
    }

    /// Drops the acknowledged attempts past the retention window from the store.
    fn housekeeping(&self) {
        match self.store.prune() {
            Ok(0) => {}
            Ok(dropped) => tracing::debug!(
                dropped,
                "acknowledged attempts past the retention window dropped"
            ),
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// The link is gone: tell the session, and reconnect after the liveness' delay.
    fn lost(&mut self) {
        if self.conn.take().is_none() {
            return;
        }
        self.link.lost();
        self.session.disconnected();
        self.reconnect = Some(self.liveness.lost(now()));
        tracing::warn!("connection to the cloud lost");
    }

    async fn event(&mut self, event: Event) {
        match event {
            Event::Runner(finished) if self.local.owns(&finished.attempt_id) => {
                self.local_finished(&finished).await;
            }
            Event::Runner(finished) => {
                let actions = self.session.finished(
                    &finished.attempt_id,
                    &finished.encoder_id,
                    finished.action,
                    &finished.report,
                    now(),
                );
                self.perform(actions).await;
            }
            Event::Reader(event) => self.reader_event(event).await,
            Event::State(id, state) => {
                self.encoders.unprobed.remove(&id);
                tracing::info!(
                    encoder = %id,
                    online = state.online,
                    card_present = state.card_present,
                    "encoder state"
                );
                let actions =
                    self.session
                        .encoder_status(&id, Some(state.online), Some(state.card_present));
                self.perform(actions).await;
            }
        }
    }

    async fn reader_event(&mut self, event: ReaderEvent) {
        let actions = match event {
            ReaderEvent::Added(name) => {
                if let Some(wanted) = discovery::pcsc_reader(&self.config, &name) {
                    tracing::info!(reader = %name, "reader added");
                    self.add_encoder(&wanted, true, None).await;
                } else {
                    tracing::info!(reader = %name, "reader ignored (configuration)");
                }
                return;
            }
            ReaderEvent::Removed(name) => {
                let Some(id) = self.encoders.id_of(&name) else {
                    return;
                };
                tracing::info!(reader = %name, "reader removed");
                if self.encoders.is_configured(&id) {
                    self.session.encoder_status(&id, Some(false), Some(false))
                } else {
                    self.encoders.remove(&id);
                    self.session.encoder_removed(&id)
                }
            }
            ReaderEvent::CardInserted { reader, .. } => match self.encoders.id_of(&reader) {
                Some(id) => self.session.encoder_status(&id, Some(true), Some(true)),
                None => return,
            },
            ReaderEvent::CardRemoved(reader) => match self.encoders.id_of(&reader) {
                Some(id) => self.session.encoder_status(&id, None, Some(false)),
                None => return,
            },
            ReaderEvent::ServiceLost(e) => {
                tracing::warn!("pcscd went away: {e}");
                return;
            }
            ReaderEvent::ServiceUp => {
                tracing::info!("pcscd is reachable");
                return;
            }
        };
        self.perform(actions).await;
    }

    /// Drives `wanted` (once) and tells the session; `card_present: None` keeps what is known.
    async fn add_encoder(&mut self, wanted: &Wanted, online: bool, card_present: Option<bool>) {
        let Some(id) = self.encoders.add(wanted) else {
            return;
        };
        let actions = self
            .session
            .encoder_added(&id, wanted, online, card_present, now());
        self.perform(actions).await;
    }

    /// Hands `report` to the event loop as a runner would (no runner, store failure).
    fn finish_without_runner(&self, encoder_id: &str, job: &CardJob, report: JobReport) {
        let _ = self.events.send(Event::Runner(Box::new(Finished {
            attempt_id: job.id.clone(),
            encoder_id: encoder_id.to_owned(),
            action: job.action.kind(),
            report,
        })));
    }

    async fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            self.perform_one(action).await;
        }
    }

    async fn perform_one(&mut self, action: Action) {
        match action {
            Action::Send(message) => {
                if let Some(conn) = self.conn.as_mut()
                    && !conn.send(&message).await
                {
                    self.lost();
                }
            }
            Action::Start {
                encoder_id,
                offer_json,
                deadline,
                job,
            } => {
                match self
                    .store
                    .put_claimed(&job.id, &offer_json, deadline.as_deref())
                {
                    Ok(Phase::Claimed) => self.dispatch(&encoder_id, job),
                    Ok(phase) => {
                        // The session restored every attempt the store holds (and never
                        // offers a finished one again): the store is further along than the
                        // session knows. Never run it twice.
                        tracing::error!(
                            attempt = %job.id,
                            phase = ?phase,
                            "a granted attempt is already further along in the store: not run"
                        );
                        self.finish_without_runner(&encoder_id, &job, JobReport::Cancelled);
                    }
                    Err(e) => {
                        tracing::error!("{e}");
                        let error = CloudError::new(
                            ErrorType::UncategorizedError,
                            SubCode::StateStoreFailed,
                            "The bridge cannot record its work. Try again later.",
                            e.to_string(),
                        );
                        self.finish_without_runner(&encoder_id, &job, JobReport::now(Err(error)));
                    }
                }
            }
            Action::Verify { encoder_id, job } => self.dispatch(&encoder_id, job),
            Action::Cancel {
                attempt_id,
                encoder_id,
            } => self.encoders.cancel(&encoder_id, &attempt_id),
            Action::Done { attempt_id, text } => {
                // Durable before it is sent (docs/cloud-protocol.md §5). If it cannot be
                // stored it is still sent: at most once holds (`writing` is stored).
                if let Err(e) = self.store.finish(&attempt_id, &text) {
                    tracing::error!(attempt = %attempt_id, "{e}");
                }
            }
            Action::Forget(id) => {
                if let Err(e) = self.store.forget(&id) {
                    tracing::error!("{e}");
                }
            }
            Action::Acknowledged(id) => {
                if let Err(e) = self.store.acknowledge(&id) {
                    tracing::error!("{e}");
                }
            }
        }
    }

    fn dispatch(&self, encoder_id: &str, job: CardJob) {
        if let Err((job, error)) = self.encoders.run(encoder_id, job) {
            self.finish_without_runner(encoder_id, &job, JobReport::now(Err(error)));
        }
    }
}
