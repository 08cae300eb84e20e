//! `encoder-bridge run`: the daemon, as one async function in the manner of mini-redis's
//! `server::run(listener, shutdown)`, so tests can drive it in-process as well as spawned.
//!
//! One task owns everything that changes: the [`Session`] (protocol state), the websocket, the
//! runners. Runner threads and the PC/SC monitor talk to it over a channel; a 1 s tick drives
//! lease renewal, pings, the watchdog and the shutdown bounds.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, Instant, SystemTime};

use encoder_hal::pcsc::ReaderEvent;
use encoder_hal::{Backoff, EncoderKind};
use encoder_protocol::keys::SiteKeys;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::cloud::link::{self, ConnectError, Ws};
use crate::cloud::message::{
    self, AttemptAvailable, EncoderInfo, Outgoing, ParseError, ProtocolError,
};
use crate::cloud::session::{Action, Session};
use crate::cloud::translate;
use crate::config::Config;
use crate::discovery::{self, Wanted};
use crate::job::{CardJob, JobReport};
use crate::notify;
use crate::runner::{EncoderState, Finished, PROBE_EVERY, Probe, Runner, RunnerSpec};
use crate::secrets::{self, Token};
use crate::store::{Phase, Store, StoreError};
use encoder_protocol::cloud_error::{CloudError, ErrorType, SubCode};

/// How long a graceful stop lets a card operation in flight finish.
pub const FINISH_BOUND: Duration = Duration::from_secs(15);

/// How long a graceful stop waits for the cloud to acknowledge the outbox.
pub const FLUSH_BOUND: Duration = Duration::from_secs(5);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A secret is missing or exposed.
    #[error("{0}")]
    Secret(#[from] secrets::SecretError),
    /// The store cannot be opened.
    #[error("{0}")]
    Store(#[from] StoreError),
}

enum Event {
    Runner(Box<Finished>),
    Reader(ReaderEvent),
    /// An idle probe found an encoder's state (PN532).
    State(String, EncoderState),
}

/// How long the daemon waits at start for the first probe of each PN532 and for pcscd's
/// reader list, so `hello` carries the encoders' real state.
pub const SETTLE_BOUND: Duration = Duration::from_secs(2);

struct Encoder {
    wanted: Wanted,
    id: String,
    runner: Option<Runner>,
}

struct Daemon {
    config: Config,
    store: Arc<Store>,
    site: Arc<SiteKeys>,
    session: Session,
    encoders: HashMap<String, Encoder>,
    /// Reader name or device path → encoder id.
    by_reader: HashMap<String, String>,
    events: mpsc::UnboundedSender<Event>,
    ws: Option<Ws>,
    draining: Option<Instant>,
    /// Encoders whose runner has not reported its first probe yet.
    unprobed: std::collections::HashSet<String>,
}

/// Runs the daemon until `shutdown` completes (graceful: the card operation in flight is
/// finished, bounded by [`FINISH_BOUND`], the outbox flushed, the websocket closed) or `abort`
/// completes (a second signal: the operation in flight is stopped between two APDUs).
#[allow(clippy::too_many_lines)] // the event loop reads best as one select
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    abort: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (token, source) = secrets::load_token(&config)?;
    tracing::info!(source = %source, "cloud token loaded");
    let site = Arc::new(secrets::load_site_keys(&config)?);
    tracing::info!(versions = ?site.versions(), "site keys loaded");
    let store = Arc::new(Store::open(&config.state.dir)?);
    let bridge_id = store.bridge_id()?;
    tracing::info!(bridge_id = %bridge_id, state = %config.state.dir.display(), "state store open");
    let (events, mut inbox) = mpsc::unbounded_channel();
    let mut daemon = Daemon {
        session: Session::new(bridge_id, env!("CARGO_PKG_VERSION").to_owned()),
        config,
        store: Arc::clone(&store),
        site,
        encoders: HashMap::new(),
        by_reader: HashMap::new(),
        events: events.clone(),
        ws: None,
        draining: None,
        unprobed: std::collections::HashSet::new(),
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
        .restore(loaded.outbox, loaded.attempts, Instant::now());
    daemon.perform(actions).await;
    // The encoders' state before `hello`: pcscd's readers as it lists them now, each PN532
    // as its runner's first probe finds it (bounded by SETTLE_BOUND; later changes follow as
    // `encoder_status`).
    let settle_by = tokio::time::Instant::now() + SETTLE_BOUND;
    let readers = pcsc_readers(settle_by).await;
    for wanted in discovery::configured(&daemon.config) {
        let (online, card) = match wanted.kind {
            // A guess until the runner's first probe (the device itself is left to it).
            EncoderKind::Pn532 => (std::path::Path::new(&wanted.reader).exists(), None),
            EncoderKind::Pcsc => match readers.get(&wanted.reader) {
                Some(&(online, card)) => (online, Some(card)),
                None => (false, Some(false)),
            },
        };
        daemon.add_encoder(wanted, online, card).await;
    }
    for (name, &(online, card)) in &readers {
        if let Some(wanted) = discovery::pcsc_reader(&daemon.config, name)
            && !wanted.configured
        {
            daemon.add_encoder(wanted, online, Some(card)).await;
        }
    }
    let forward = events.clone();
    let _monitor = discovery::watch_pcsc(move |event| forward.send(Event::Reader(event)).is_ok());
    while !daemon.unprobed.is_empty() {
        match tokio::time::timeout_at(settle_by, inbox.recv()).await {
            Ok(Some(event)) => daemon.event(event).await,
            Ok(None) | Err(_) => break,
        }
    }

    notify::ready();
    let url = daemon.config.cloud.url.clone();
    let ping_every = daemon.config.ping_interval();
    let pong_deadline = daemon.config.pong_timeout();
    let mut backoff = Backoff::new(link::BACKOFF_INITIAL, link::BACKOFF_MAX);
    // The connect future lives across loop iterations: a select branch that fires meanwhile
    // must not abandon a half-open connection.
    let mut connecting: Option<Connecting> =
        Some(Box::pin(connect_after(None, url.clone(), token.clone())));
    let mut connected_at = Instant::now();
    let mut last_rx = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let mut next_ping = Instant::now() + ping_every;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush_until: Option<Instant> = None;
    tokio::pin!(shutdown);
    tokio::pin!(abort);
    let mut shutdown_done = false;
    let mut status = String::new();

    loop {
        tokio::select! {
            () = &mut abort => {
                tracing::warn!("second signal: aborting the card operation in flight");
                for encoder in daemon.encoders.values() {
                    if let Some(r) = &encoder.runner {
                        r.abort();
                    }
                }
                break;
            }
            () = &mut shutdown, if !shutdown_done => {
                shutdown_done = true;
                tracing::info!(active = daemon.session.active(), "stopping: finishing the card operation in flight");
                notify::stopping();
                daemon.session.drain();
                daemon.draining = Some(Instant::now() + FINISH_BOUND);
                for encoder in daemon.encoders.values() {
                    if let Some(r) = &encoder.runner {
                        r.cancel_waiting();
                    }
                }
            }
            Some(event) = inbox.recv() => {
                daemon.event(event).await;
            }
            result = poll_connect(&mut connecting) => {
                connecting = None;
                match result {
                    Ok((ws, _)) => {
                        tracing::info!(url = %url, "connected to the cloud");
                        daemon.ws = Some(ws);
                        connected_at = Instant::now();
                        last_rx = Instant::now();
                        ping_sent = None;
                        next_ping = Instant::now() + ping_every;
                        let actions = daemon.session.connected(Instant::now());
                        daemon.perform(actions).await;
                    }
                    Err(e) => {
                        let delay = if e.wants_longest_delay() {
                            link::BACKOFF_MAX
                        } else {
                            backoff.next_delay()
                        };
                        if e.wants_longest_delay() {
                            tracing::error!(retry_in_s = delay.as_secs_f32(), "{e}");
                        } else {
                            tracing::warn!(retry_in_s = delay.as_secs_f32(), "cannot reach the cloud: {e}");
                        }
                        if daemon.draining.is_none() {
                            connecting = Some(Box::pin(connect_after(
                                Some(tokio::time::Instant::now() + delay),
                                url.clone(),
                                token.clone(),
                            )));
                        }
                    }
                }
            }
            frame = next_frame(daemon.ws.as_mut()) => {
                last_rx = Instant::now();
                ping_sent = None;
                let keep = daemon.frame(frame).await;
                if !keep {
                    daemon.lost();
                    if connected_at.elapsed() >= link::STABLE_AFTER {
                        backoff.reset();
                    }
                    if daemon.draining.is_none() {
                        connecting = Some(Box::pin(connect_after(
                            Some(tokio::time::Instant::now() + backoff.next_delay()),
                            url.clone(),
                            token.clone(),
                        )));
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let actions = daemon.session.tick(now);
                daemon.perform(actions).await;
                if daemon.ws.is_some() {
                    if ping_sent.is_some_and(|at| now.duration_since(at) >= pong_deadline)
                        && now.duration_since(last_rx) >= pong_deadline
                    {
                        tracing::warn!(
                            pong_timeout_s = pong_deadline.as_secs(),
                            "no answer to a ping in time: reconnecting"
                        );
                        daemon.lost();
                        if daemon.draining.is_none() {
                        connecting = Some(Box::pin(connect_after(
                            Some(tokio::time::Instant::now() + backoff.next_delay()),
                            url.clone(),
                            token.clone(),
                        )));
                    }
                    } else if now >= next_ping {
                        next_ping = now + ping_every;
                        if ping_sent.is_none() {
                            ping_sent = Some(now);
                        }
                        daemon.send_raw(Message::Ping(Vec::new().into())).await;
                    }
                }
                notify::watchdog();
                let line = daemon.status_line();
                if line != status {
                    notify::status(&line);
                    status = line;
                }
                if let Some(finish_by) = daemon.draining {
                    if daemon.session.active() > 0 {
                        if now > finish_by {
                            tracing::warn!("the card operation did not finish in time: aborting it");
                            for encoder in daemon.encoders.values() {
                                if let Some(r) = &encoder.runner {
                                    r.abort();
                                }
                            }
                            break;
                        }
                    } else {
                        let flush_by = *flush_until.get_or_insert(now + FLUSH_BOUND);
                        if daemon.session.unacknowledged() == 0
                            || daemon.ws.is_none()
                            || now > flush_by
                        {
                            break;
                        }
                    }
                }
            }
        }
    }
    if let Some(mut ws) = daemon.ws.take() {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            ws.close(Some(CloseFrame {
                code: CloseCode::Away,
                reason: "bridge stopping".into(),
            })),
        )
        .await;
    }
    let threads: Vec<_> = daemon
        .encoders
        .drain()
        .filter_map(|(_, e)| e.runner.and_then(Runner::stop))
        .collect();
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
    tracing::info!(unacknowledged = daemon.session.unacknowledged(), "stopped");
    Ok(())
}

type Connecting =
    std::pin::Pin<Box<dyn Future<Output = Result<(Ws, Option<String>), ConnectError>> + Send>>;

async fn connect_after(
    at: Option<tokio::time::Instant>,
    url: String,
    token: Token,
) -> Result<(Ws, Option<String>), ConnectError> {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
    link::connect(&url, &token).await
}

async fn poll_connect(
    connecting: &mut Option<Connecting>,
) -> Result<(Ws, Option<String>), ConnectError> {
    match connecting.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn next_frame(
    ws: Option<&mut Ws>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

/// pcscd's readers now: name -> (usable, card in the field); empty when pcscd cannot be
/// asked before `by`.
async fn pcsc_readers(by: tokio::time::Instant) -> HashMap<String, (bool, bool)> {
    use encoder_hal::pcsc::{ReaderState, snapshot};
    let asked = tokio::task::spawn_blocking(snapshot);
    match tokio::time::timeout_at(by, asked).await {
        Ok(Ok(Ok(readers))) => readers
            .into_iter()
            .map(|r| {
                let online = r.state != ReaderState::Unavailable;
                let card = matches!(r.state, ReaderState::CardPresent | ReaderState::InUse);
                (r.name, (online, card))
            })
            .collect(),
        Ok(Ok(Err(e))) => {
            tracing::debug!("cannot list PC/SC readers at start: {e}");
            HashMap::new()
        }
        Ok(Err(_)) | Err(_) => HashMap::new(),
    }
}

fn system_time(text: Option<&str>) -> Option<SystemTime> {
    let seconds = message::parse_time(text?)?.unix_timestamp_nanos();
    let nanos = u64::try_from(seconds).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
}

impl Daemon {
    fn status_line(&self) -> String {
        let n = self.session.encoders().count();
        let cloud = if self.draining.is_some() {
            "stopping"
        } else if self.ws.is_some() {
            "cloud connected"
        } else {
            "cloud disconnected"
        };
        format!("{n} encoder{}, {cloud}", if n == 1 { "" } else { "s" })
    }

    fn lost(&mut self) {
        self.ws = None;
        self.session.disconnected();
        tracing::warn!("connection to the cloud lost");
    }

    async fn send_raw(&mut self, message: Message) {
        if let Some(ws) = self.ws.as_mut()
            && let Err(e) = ws.send(message).await
        {
            tracing::warn!("sending to the cloud failed: {e}");
            self.lost();
        }
    }

    /// Handles one frame; `false` when the connection is over.
    async fn frame(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> bool {
        use tokio_tungstenite::tungstenite::Error as WsError;
        use tokio_tungstenite::tungstenite::error::CapacityError;
        match frame {
            None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => false,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                tracing::warn!(
                    size,
                    max_size,
                    "message beyond the transport limit: closing (1009)"
                );
                if let Some(ws) = self.ws.as_mut() {
                    let _ = ws
                        .close(Some(CloseFrame {
                            code: CloseCode::Size,
                            reason: "message too big".into(),
                        }))
                        .await;
                    drain(ws.get_mut()).await;
                }
                false
            }
            Some(Err(e)) => {
                tracing::warn!("cloud connection failed: {e}");
                false
            }
            Some(Ok(Message::Close(frame))) => {
                tracing::info!(frame = ?frame, "the cloud closed the connection");
                false
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => true,
            Some(Ok(Message::Binary(_))) => {
                self.protocol_error("binary frames are not part of the protocol".into(), None)
                    .await;
                self.ws.is_some()
            }
            Some(Ok(Message::Text(text))) => {
                match message::parse(text.as_str()) {
                    Ok(incoming) => {
                        let actions = self.session.message(incoming, Instant::now());
                        self.perform(actions).await;
                    }
                    Err(ParseError::Unknown(kind)) => {
                        tracing::info!("ignoring unknown message type {kind:?}");
                    }
                    Err(ParseError::TooLarge(size)) => {
                        tracing::warn!(size, "message larger than 64 KiB");
                        self.protocol_error(
                            format!("message of {size} bytes is larger than the 64 KiB limit"),
                            None,
                        )
                        .await;
                    }
                    Err(ParseError::Malformed {
                        message,
                        in_reply_to,
                    }) => {
                        tracing::warn!(
                            in_reply_to = in_reply_to.as_deref().unwrap_or(""),
                            "malformed message: {message}"
                        );
                        self.protocol_error(message, in_reply_to).await;
                    }
                }
                self.ws.is_some()
            }
        }
    }

    async fn protocol_error(&mut self, message: String, in_reply_to: Option<String>) {
        let out = Outgoing::ProtocolError(ProtocolError {
            message,
            in_reply_to,
        });
        self.send_raw(Message::text(out.to_text())).await;
    }

    async fn event(&mut self, event: Event) {
        match event {
            Event::Runner(finished) => {
                let finished = *finished;
                let result = translate::result_message(
                    &finished.attempt_id,
                    &finished.encoder_id,
                    finished.action,
                    &finished.report,
                );
                if let Some(r) = &result {
                    tracing::info!(
                        attempt = %r.action_attempt_id,
                        status = %r.status,
                        error = finished.report.error().map_or("", |e| e.kind.name()),
                        "attempt finished"
                    );
                    // Durable before it is sent (docs/cloud-protocol.md §5).
                    let text = serde_json::to_string(r).unwrap_or_default();
                    if let Err(e) = self.store.finish(&r.action_attempt_id, &text) {
                        // Report it anyway: at most once still holds (the phase `writing`
                        // is stored).
                        tracing::error!(attempt = %r.action_attempt_id, "{e}");
                    }
                }
                let actions = self.session.finished(
                    &finished.attempt_id,
                    &finished.encoder_id,
                    result,
                    Instant::now(),
                );
                self.perform(actions).await;
            }
            Event::Reader(event) => self.reader_event(event).await,
            Event::State(id, state) => {
                self.unprobed.remove(&id);
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
        match event {
            ReaderEvent::Added(name) => {
                if let Some(wanted) = discovery::pcsc_reader(&self.config, &name) {
                    tracing::info!(reader = %name, "reader added");
                    self.add_encoder(wanted, true, None).await;
                } else {
                    tracing::info!(reader = %name, "reader ignored (configuration)");
                }
            }
            ReaderEvent::Removed(name) => {
                let Some(id) = self.by_reader.get(&name).cloned() else {
                    return;
                };
                let configured = self.encoders.get(&id).is_some_and(|e| e.wanted.configured);
                tracing::info!(reader = %name, "reader removed");
                if configured {
                    let actions = self.session.encoder_status(&id, Some(false), Some(false));
                    self.perform(actions).await;
                } else {
                    self.by_reader.remove(&name);
                    if let Some(encoder) = self.encoders.remove(&id) {
                        // The thread ends after its current job.
                        drop(encoder.runner.and_then(Runner::stop));
                    }
                    let actions = self.session.encoder_removed(&id);
                    self.perform(actions).await;
                }
            }
            ReaderEvent::CardInserted { reader, .. } => {
                if let Some(id) = self.by_reader.get(&reader).cloned() {
                    let actions = self.session.encoder_status(&id, Some(true), Some(true));
                    self.perform(actions).await;
                }
            }
            ReaderEvent::CardRemoved(reader) => {
                if let Some(id) = self.by_reader.get(&reader).cloned() {
                    let actions = self.session.encoder_status(&id, None, Some(false));
                    self.perform(actions).await;
                }
            }
            ReaderEvent::ServiceLost(e) => tracing::warn!("pcscd went away: {e}"),
            ReaderEvent::ServiceUp => tracing::info!("pcscd is reachable"),
        }
    }

    /// Drives `wanted` (once) and tells the session; `card_present: None` keeps what is known.
    async fn add_encoder(&mut self, wanted: Wanted, online: bool, card_present: Option<bool>) {
        let id = match self.store.encoder_id(wanted.kind.name(), &wanted.reader) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(reader = %wanted.reader, "{e}");
                return;
            }
        };
        if !self.encoders.contains_key(&id) {
            let events = self.events.clone();
            let probe = (wanted.kind == EncoderKind::Pn532).then(|| {
                let events = self.events.clone();
                let id = id.clone();
                self.unprobed.insert(id.clone());
                Probe {
                    every: PROBE_EVERY,
                    report: Box::new(move |state| {
                        let _ = events.send(Event::State(id.clone(), state));
                    }) as Box<dyn Fn(EncoderState) + Send>,
                }
            });
            let spec = RunnerSpec {
                encoder_id: id.clone(),
                card_wait: wanted.card_wait,
                factory: discovery::factory(&wanted),
                probe,
            };
            let runner = Runner::spawn(
                spec,
                Arc::clone(&self.site),
                Some(Arc::clone(&self.store)),
                Arc::new(move |finished| {
                    let _ = events.send(Event::Runner(Box::new(finished)));
                }),
            );
            let runner = match runner {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(reader = %wanted.reader, "cannot start a runner thread: {e}");
                    None
                }
            };
            self.by_reader.insert(wanted.reader.clone(), id.clone());
            self.encoders.insert(
                id.clone(),
                Encoder {
                    wanted: wanted.clone(),
                    id: id.clone(),
                    runner,
                },
            );
        }
        let card_present = online
            && card_present.unwrap_or_else(|| {
                self.session
                    .encoders()
                    .find(|e| e.encoder_id == id)
                    .is_some_and(|e| e.card_present)
            });
        let info = EncoderInfo {
            encoder_id: id,
            display_name: wanted.display_name.clone(),
            kind: wanted.kind.name().to_owned(),
            reader: wanted.reader.clone(),
            online,
            card_present,
        };
        let actions = self.session.encoder_added(info, Instant::now());
        self.perform(actions).await;
    }

    fn job(
        offer: &AttemptAvailable,
        writing: Option<crate::store::Writing>,
        deadline: Option<&str>,
        lease: Arc<AtomicI64>,
    ) -> CardJob {
        let deadline = system_time(deadline).or_else(|| system_time(offer.expires_at.as_deref()));
        translate::card_job(offer, writing, deadline, lease)
    }

    /// Reports a result no runner could produce (no runner, store failure).
    fn fail_now(&mut self, offer: &AttemptAvailable, error: CloudError) {
        self.finish_without_runner(offer, JobReport::now(Err(error)));
    }

    /// Hands `report` for `offer` to the event loop as a runner would.
    fn finish_without_runner(&mut self, offer: &AttemptAvailable, report: JobReport) {
        let _ = self.events.send(Event::Runner(Box::new(Finished {
            attempt_id: offer.action_attempt_id.clone(),
            encoder_id: offer.encoder_id.clone(),
            action: translate::action_kind(offer.action_type),
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
                self.send_raw(Message::text(message.to_text())).await;
            }
            Action::Start {
                offer,
                deadline,
                lease,
            } => {
                let offer_json = serde_json::to_string(&offer).unwrap_or_default();
                let phase = match self.store.put_claimed(
                    &offer.action_attempt_id,
                    &offer_json,
                    deadline.as_deref(),
                ) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!("{e}");
                        let error = CloudError::new(
                            ErrorType::UncategorizedError,
                            SubCode::StateStoreFailed,
                            "The bridge cannot record its work. Try again later.",
                            e.to_string(),
                        );
                        self.fail_now(&offer, error);
                        return;
                    }
                };
                let writing = match phase {
                    Phase::Claimed => None,
                    Phase::Writing => self
                        .store
                        .attempt(&offer.action_attempt_id)
                        .ok()
                        .flatten()
                        .and_then(|a| a.writing),
                    Phase::Done | Phase::Acknowledged => {
                        // Already finished: never run twice; the outbox has the result.
                        self.finish_without_runner(&offer, JobReport::Cancelled);
                        return;
                    }
                };
                let job = Self::job(&offer, writing, deadline.as_deref(), lease);
                self.dispatch(&offer, job);
            }
            Action::Verify { attempt, writing } => {
                tracing::warn!(
                    attempt = %attempt.offer.action_attempt_id,
                    uid = %writing.uid,
                    "an encode was cut off by a restart while writing: verifying the card, never rewriting"
                );
                let job = Self::job(
                    &attempt.offer,
                    Some(writing),
                    None,
                    Arc::new(AtomicI64::new(0)),
                );
                self.dispatch(&attempt.offer, job);
            }
            Action::Cancel {
                attempt_id,
                encoder_id,
            } => {
                if let Some(r) = self
                    .encoders
                    .get(&encoder_id)
                    .and_then(|e| e.runner.as_ref())
                {
                    r.cancel_job(&attempt_id);
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

    fn dispatch(&mut self, offer: &AttemptAvailable, job: CardJob) {
        let encoder = self.encoders.get(&offer.encoder_id);
        if let Some(runner) = encoder.and_then(|e| e.runner.as_ref())
            && runner.run(job).is_ok()
        {
            return;
        }
        let reader = encoder.map_or_else(String::new, |e| e.wanted.reader.clone());
        let id = encoder.map_or_else(String::new, |e| e.id.clone());
        let error = CloudError::new(
            ErrorType::EncoderNotOnline,
            SubCode::ReaderUnavailable,
            "The encoder is not connected.",
            format!("no runner for encoder {id} (reader \"{reader}\")"),
        );
        self.fail_now(offer, error);
    }
}

/// Reads and drops what the peer is still sending (the rest of an oversized message) for a
/// moment before the socket is dropped: closing a socket with unread data resets the
/// connection, and the peer may then lose the close frame (1009) we just sent it. Bounded in
/// time (1 s) and bytes (8 MiB).
async fn drain<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) {
    use tokio::io::AsyncReadExt as _;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    while total < 8 << 20 {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
}
