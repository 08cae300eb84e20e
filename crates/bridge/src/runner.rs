//! One runner per encoder, on its own OS thread, owning the encoder.
//!
//! The daemon hands it jobs over a channel; it runs them one at a time with the protocol
//! crate's [`encode`](encoder_protocol::job::encode) and [`scan`](encoder_protocol::job::scan),
//! stores the result durably (outbox) and then tells the daemon. [`execute`] is the same code
//! path for the operator commands `encoder-bridge scan` and `encode`.
//!
//! At most once: the phase `writing` is committed to the store by a [`Transmit`] wrapper just
//! before the first card write (`FF D6`) is sent. Cancellation (cloud `attempt_cancelled`,
//! shutdown) interrupts only the card wait; a card operation that has begun is finished and
//! verified. Only [`Runner::abort`] (a second signal) stops it between two APDUs.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use encoder_hal::{Canceller, Encoder, ErrorKind, HalError};
use encoder_protocol::error::JobError;
use encoder_protocol::format::{CardCredential, Credential};
use encoder_protocol::job::{self, CardState};
use encoder_protocol::keys::SiteKeys;
use encoder_protocol::transmit::{Transmit, TransmitError, TransmitErrorKind};
use serde_json::{Value, json};

use crate::cloud::message::{
    ActionType, AttemptAvailable, ResultError, ResultMsg, from_unix, now_rfc3339, unix_seconds,
};
use crate::store::{Store, Writing};

/// What a runner is asked to do.
#[derive(Debug, Clone)]
pub struct Job {
    /// The attempt as offered.
    pub attempt: AttemptAvailable,
    /// Run it, or verify an encode cut off by a restart.
    pub kind: JobKind,
    /// The attempt's deadline (from the grant, else `expires_at`).
    pub deadline: Option<SystemTime>,
    /// Lease expiry in unix milliseconds, kept current by the daemon (0: not checked).
    pub lease: Arc<AtomicI64>,
}

/// Fresh run or verification.
#[derive(Debug, Clone)]
pub enum JobKind {
    /// Run the encode or scan.
    Run,
    /// The bridge restarted while this encode was writing: scan and report, never rewrite.
    Verify(Writing),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per job
pub enum Outcome {
    /// A result to report.
    Result(ResultMsg),
    /// Cancelled before the card was touched: nothing to report.
    Cancelled,
}

/// What a runner tells the daemon.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The attempt.
    pub attempt_id: String,
    /// The encoder.
    pub encoder_id: String,
    /// Its outcome; a result is already in the store's outbox.
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Idle,
    Waiting,
    Working,
}

#[derive(Debug)]
struct Ctl {
    stage: Stage,
    job: Option<String>,
    cancel: bool,
    aborted: bool,
    canceller: Option<Canceller>,
}

/// Shared between a runner thread and its handle: coordinates cancellation with the stage so a
/// cancel never lands in the middle of a card operation.
#[derive(Debug)]
pub struct Control {
    ctl: Mutex<Ctl>,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            ctl: Mutex::new(Ctl {
                stage: Stage::Idle,
                job: None,
                cancel: false,
                aborted: false,
                canceller: None,
            }),
        }
    }
}

impl Control {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ctl> {
        self.ctl.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(&self, job: &str, canceller: Canceller) -> bool {
        let mut ctl = self.lock();
        ctl.stage = Stage::Waiting;
        ctl.job = Some(job.to_owned());
        ctl.cancel = false;
        ctl.canceller = Some(canceller);
        !ctl.aborted
    }

    /// Moves from waiting to working; `false` when the job was cancelled meanwhile.
    fn start_work(&self) -> bool {
        let mut ctl = self.lock();
        if ctl.cancel || ctl.aborted {
            return false;
        }
        ctl.stage = Stage::Working;
        true
    }

    fn end(&self) {
        let mut ctl = self.lock();
        ctl.stage = Stage::Idle;
        ctl.job = None;
        ctl.cancel = false;
        ctl.canceller = None;
    }

    fn cancel_where(&self, matches: impl Fn(&str) -> bool) {
        let mut ctl = self.lock();
        if ctl.job.as_deref().is_some_and(matches) {
            ctl.cancel = true;
            if ctl.stage == Stage::Waiting
                && let Some(c) = &ctl.canceller
            {
                c.cancel();
            }
        }
    }

    fn aborted(&self) -> bool {
        self.lock().aborted
    }
}

/// Everything a job needs besides the encoder.
pub struct Exec<'a> {
    /// The encoder's id (in results).
    pub encoder_id: &'a str,
    /// How long to wait for a card.
    pub card_wait: Duration,
    /// The site keys.
    pub site: &'a SiteKeys,
    /// Where phases are recorded (none for the operator commands).
    pub store: Option<&'a Store>,
    /// Cancellation (none for the operator commands).
    pub control: Option<&'a Control>,
}

/// Creates the encoder (again, after a cancelled wait).
pub type EncoderFactory = Box<dyn Fn() -> Box<dyn Encoder> + Send>;

enum Cmd {
    Run(Box<Job>),
    Stop,
}

/// The handle of a runner thread.
pub struct Runner {
    tx: mpsc::Sender<Cmd>,
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

/// Static facts of one runner.
pub struct RunnerSpec {
    /// The encoder id.
    pub encoder_id: String,
    /// Card wait.
    pub card_wait: Duration,
    /// Creates the encoder.
    pub factory: EncoderFactory,
    /// Probe the encoder while idle and report its state (PN532); `None`: never (PC/SC,
    /// whose state the hot-plug monitor reports).
    pub probe: Option<Probe>,
}

/// Whether an encoder works and holds a card, as an idle probe found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderState {
    /// The encoder answers (for a PN532: its serial link opened and the chip answered).
    pub online: bool,
    /// A card is in its field.
    pub card_present: bool,
}

/// Idle probing of an encoder that gives no events of its own (a PN532 on a serial line).
///
/// A probe is one `wait_for_card` with a zero wait: for a PN532 one bounded
/// `InListPassiveTarget` (after opening the link: wake-up, `SAMConfiguration`,
/// `GetFirmwareVersion` when it is not open). The runner thread probes when it starts, after
/// every job, and then whenever it has been idle for `every`: never while a job runs, so a
/// probe delays a new job by at most one probe, and it costs one short exchange per `every`.
pub struct Probe {
    /// The idle interval between two probes ([`PROBE_EVERY`] in the daemon).
    pub every: Duration,
    /// Called from the runner thread with the first state and every change.
    pub report: Box<dyn Fn(EncoderState) + Send>,
}

/// How often an idle PN532 is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

fn probe(encoder: &mut dyn Encoder) -> Option<EncoderState> {
    match encoder.wait_for_card(Duration::ZERO) {
        Ok(card_present) => Some(EncoderState {
            online: true,
            card_present,
        }),
        Err(e) if e.kind() == ErrorKind::Cancelled => None,
        Err(e) => {
            tracing::debug!(reader = %encoder.name(), "probe: {e}");
            Some(EncoderState {
                online: false,
                card_present: false,
            })
        }
    }
}

impl Runner {
    /// Starts the runner thread. `done` is called (from the runner thread) after each job, once
    /// its result is stored.
    pub fn spawn(
        spec: RunnerSpec,
        site: Arc<SiteKeys>,
        store: Option<Arc<Store>>,
        done: Arc<dyn Fn(Finished) + Send + Sync>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Cmd>();
        let control = Arc::new(Control::default());
        let ctl = Arc::clone(&control);
        let thread = std::thread::Builder::new()
            .name(format!(
                "runner-{}",
                spec.encoder_id.get(..8).unwrap_or("x")
            ))
            .spawn(move || {
                let mut encoder = (spec.factory)();
                let mut last: Option<EncoderState> = None;
                let mut report = |encoder: &mut Box<dyn Encoder>| {
                    if let Some(p) = &spec.probe
                        && let Some(state) = probe(encoder.as_mut())
                        && last != Some(state)
                    {
                        last = Some(state);
                        (p.report)(state);
                    }
                };
                report(&mut encoder);
                loop {
                    let cmd = match &spec.probe {
                        Some(p) => match rx.recv_timeout(p.every) {
                            Ok(cmd) => cmd,
                            Err(mpsc::RecvTimeoutError::Timeout) => {
                                report(&mut encoder);
                                continue;
                            }
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        },
                        None => match rx.recv() {
                            Ok(cmd) => cmd,
                            Err(_) => break,
                        },
                    };
                    let Cmd::Run(job) = cmd else { break };
                    let exec = Exec {
                        encoder_id: &spec.encoder_id,
                        card_wait: spec.card_wait,
                        site: &site,
                        store: store.as_deref(),
                        control: Some(&ctl),
                    };
                    let outcome = execute(encoder.as_mut(), &job, &exec);
                    if let (Outcome::Result(result), Some(store)) = (&outcome, &store)
                        && let Err(e) = store.finish(result)
                    {
                        // The result cannot be made durable: report it anyway (at most once
                        // still holds: the phase `writing` is stored).
                        tracing::error!(attempt = %result.action_attempt_id, "{e}");
                    }
                    done(Finished {
                        attempt_id: job.attempt.action_attempt_id.clone(),
                        encoder_id: spec.encoder_id.clone(),
                        outcome,
                    });
                    if encoder.canceller().is_cancelled() && !ctl.aborted() {
                        encoder = (spec.factory)();
                    }
                    report(&mut encoder);
                }
            })?;
        Ok(Self {
            tx,
            control,
            thread: Some(thread),
        })
    }

    /// Queues a job; gives it back when the runner thread is gone.
    pub fn run(&self, job: Job) -> Result<(), Box<Job>> {
        match self.tx.send(Cmd::Run(Box::new(job))) {
            Err(mpsc::SendError(Cmd::Run(job))) => Err(job),
            Ok(()) | Err(mpsc::SendError(Cmd::Stop)) => Ok(()),
        }
    }

    /// Cancels the job for `attempt_id` if it is still waiting for a card.
    pub fn cancel_job(&self, attempt_id: &str) {
        self.control.cancel_where(|job| job == attempt_id);
    }

    /// Cancels whatever job waits for a card (graceful shutdown).
    pub fn cancel_waiting(&self) {
        self.control.cancel_where(|_| true);
    }

    /// Stops the current job between two APDUs (second signal).
    pub fn abort(&self) {
        let mut ctl = self.control.lock();
        ctl.aborted = true;
        ctl.cancel = true;
        if let Some(c) = &ctl.canceller {
            c.cancel();
        }
    }

    /// Asks the thread to end after its current job; returns its handle to join.
    pub fn stop(mut self) -> Option<JoinHandle<()>> {
        let _ = self.tx.send(Cmd::Stop);
        self.thread.take()
    }
}

fn error(kind: &str, message: impl Into<String>, sub: Option<&str>, detail: String) -> ResultError {
    ResultError {
        kind: kind.to_owned(),
        message: message.into(),
        sub_code: sub.map(str::to_owned),
        detail: Some(detail),
    }
}

fn from_job_error(e: &JobError, reader: &str) -> ResultError {
    ResultError {
        kind: e.name().to_owned(),
        message: e.to_string(),
        sub_code: e.sub_code().map(str::to_owned),
        detail: Some(format!("{} on reader \"{reader}\"", e.detail())),
    }
}

/// Maps a hardware error outside a job (card wait, opening the session).
fn from_hal_error(e: &HalError, reader: &str, step: &str) -> ResultError {
    let detail = format!(
        "{step} on reader \"{reader}\": {}: {}",
        e.kind(),
        e.detail()
    );
    let sub = Some(e.kind().name());
    match e.kind() {
        ErrorKind::CardRemoved | ErrorKind::CardReset | ErrorKind::NoCard => error(
            "no_card_on_encoder",
            "The card left the encoder before it could be read. Place it again and keep it there.",
            sub,
            detail,
        ),
        ErrorKind::NoService | ErrorKind::ReaderUnavailable | ErrorKind::Permission => error(
            "encoder_not_online",
            "The encoder is not connected.",
            sub,
            detail,
        ),
        ErrorKind::Timeout => error(
            "encoder_communication_timeout",
            "The encoder stopped responding.",
            sub,
            detail,
        ),
        _ => error(
            "uncategorized_error",
            "The encoder reported an error. Try again.",
            sub,
            detail,
        ),
    }
}

fn result(job: &Job, encoder_id: &str, outcome: Result<Value, ResultError>) -> Outcome {
    let (status, result, error) = match outcome {
        Ok(value) => ("success", Some(value), None),
        Err(e) => ("error", None, Some(e)),
    };
    Outcome::Result(ResultMsg {
        action_attempt_id: job.attempt.action_attempt_id.clone(),
        action_type: job.attempt.action_type,
        encoder_id: encoder_id.to_owned(),
        status: status.to_owned(),
        finished_at: now_rfc3339(),
        result,
        error,
    })
}

fn hex(bytes: &[u8]) -> String {
    encoder_protocol::hex::encode(bytes)
}

/// The card number the cloud gave, or the decimal of the UID's last four bytes.
pub fn card_number_for(given: Option<&str>, uid: &[u8]) -> String {
    if let Some(n) = given {
        return n.to_owned();
    }
    let tail = uid.get(uid.len().saturating_sub(4)..).unwrap_or_default();
    tail.iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        .to_string()
}

/// A credential already written to a card (`credential.card_uid`) goes on no other card: the
/// error comes before any card write.
pub fn check_card_uid(
    offer: &AttemptAvailable,
    uid: &[u8],
    reader: &str,
) -> Result<(), ResultError> {
    let Some(expected) = offer
        .credential
        .as_ref()
        .and_then(|c| c.card_uid.as_deref())
    else {
        return Ok(());
    };
    let normalized: String = expected
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let here = hex(uid);
    if normalized.is_empty() || normalized == here {
        return Ok(());
    }
    Err(error(
        "credential_cannot_be_reissued",
        "This credential is already on another card. Create a new credential for this card.",
        Some("credential_on_another_card"),
        format!(
            "credential was written to card {normalized}; the card on reader \"{reader}\" is {here}; nothing was written"
        ),
    ))
}

/// The credential to write, from the offer; `Err` names the bad field.
pub fn credential_from_offer(
    offer: &AttemptAvailable,
    uid: &[u8],
) -> Result<Credential, ResultError> {
    let bad = |what: &str| {
        error(
            "uncategorized_error",
            "This credential cannot be written to a card.",
            Some("invalid_credential"),
            format!("attempt_available.credential: {what}"),
        )
    };
    let c = offer
        .credential
        .as_ref()
        .ok_or_else(|| bad("missing for ENCODE_CREDENTIAL"))?;
    if let Some(n) = &c.card_number
        && (n.is_empty() || n.len() > 10 || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad("card_number is not 1 to 10 digits"));
    }
    let time = |t: &Option<String>, name: &str| match t {
        None => Ok(None),
        Some(t) => unix_seconds(t)
            .map(Some)
            .ok_or_else(|| bad(&format!("{name} is not an RFC 3339 time"))),
    };
    let access_data = base64::engine::general_purpose::STANDARD
        .decode(c.access_data.as_bytes())
        .map_err(|_| bad("access_data is not base64"))?;
    Ok(Credential {
        credential_id: c.acs_credential_id.to_lowercase(),
        card_number: card_number_for(c.card_number.as_deref(), uid),
        starts_at: time(&c.starts_at, "starts_at")?,
        ends_at: time(&c.ends_at, "ends_at")?,
        issue_counter: c.issue_counter,
        access_data,
    })
}

fn opt_time(t: Option<i64>) -> Value {
    t.and_then(from_unix).map_or(Value::Null, Value::String)
}

fn encode_value(
    written: &CardCredential,
    uid: &[u8],
    card_type: &str,
    first: Option<bool>,
) -> Value {
    let c = &written.credential;
    json!({
        "acs_credential_id": c.credential_id,
        "card_number": c.card_number,
        "is_issued": true,
        "issued_at": now_rfc3339(),
        "starts_at": opt_time(c.starts_at),
        "ends_at": opt_time(c.ends_at),
        "card": { "uid": hex(uid), "type": card_type },
        "written": {
            "format_version": written.format_version,
            "key_version": written.key_version,
            "issue_counter": c.issue_counter,
            "sequence": written.sequence,
            "first_encode": first,
        },
    })
}

fn scan_value(outcome: &job::ScanOutcome) -> Value {
    let on_encoder = outcome.credential.as_ref().map(|w| {
        let c = &w.credential;
        json!({
            "acs_credential_id": c.credential_id,
            "card_number": c.card_number,
            "is_issued": true,
            "starts_at": opt_time(c.starts_at),
            "ends_at": opt_time(c.ends_at),
            "issue_counter": c.issue_counter,
            "key_version": w.key_version,
            "access_data": base64::engine::general_purpose::STANDARD.encode(&c.access_data),
        })
    });
    json!({
        "acs_credential_on_encoder": on_encoder,
        "card": {
            "uid": hex(&outcome.uid),
            "type": outcome.card_type.name(),
            "state": outcome.state.name(),
        },
    })
}

/// A [`Transmit`] wrapper: records `writing` before the first card write, honours an abort, and
/// traces APDUs at debug level with keys and card data masked.
struct Guard<'a, T: ?Sized> {
    inner: &'a mut T,
    reader: &'a str,
    before_first_write: Option<Box<dyn FnOnce() -> Result<(), String> + 'a>>,
    control: Option<&'a Control>,
    timing: &'a Timing,
}

/// Wall-clock times of the first and last APDU of a job (unix microseconds), for the latency
/// figures in the logs.
#[derive(Debug, Default)]
struct Timing {
    first: std::sync::atomic::AtomicU64,
    last: std::sync::atomic::AtomicU64,
    count: std::sync::atomic::AtomicU64,
}

fn unix_micros() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros(),
    )
    .unwrap_or(u64::MAX)
}

fn is_write(command: &[u8]) -> bool {
    matches!(command, [0xFF, 0xD6, ..])
        || matches!(
            command,
            [0xFF, 0x00, 0x00, 0x00, _, 0xD4, 0x40, _, 0xA0 | 0xA2, ..]
        )
}

impl<T: Transmit + ?Sized> Transmit for Guard<'_, T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        if self.control.is_some_and(Control::aborted) {
            return Err(TransmitError::new(
                TransmitErrorKind::Other,
                "aborted: the bridge is stopping",
            ));
        }
        if is_write(command)
            && let Some(hook) = self.before_first_write.take()
        {
            hook().map_err(|e| {
                TransmitError::new(
                    TransmitErrorKind::Other,
                    format!("cannot record the write phase, card left untouched: {e}"),
                )
            })?;
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            let shown = if is_write(command) {
                format!(
                    "{} <{} bytes masked>",
                    encoder_hal::hex(command.get(..5).unwrap_or(command)),
                    command.len().saturating_sub(5)
                )
            } else {
                encoder_protocol::redact_apdu(command)
            };
            tracing::debug!(reader = %self.reader, apdu = %shown, "APDU >");
        }
        let _ = self.timing.first.compare_exchange(
            0,
            unix_micros(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.timing.count.fetch_add(1, Ordering::SeqCst);
        let reply = self.inner.transmit(command);
        self.timing.last.store(unix_micros(), Ordering::SeqCst);
        if let Ok(reply) = &reply {
            // Replies carry card data and MACs: length and status word only.
            tracing::debug!(
                reader = %self.reader,
                len = reply.len(),
                sw = %encoder_hal::hex(reply.get(reply.len().saturating_sub(2)..).unwrap_or_default()),
                "APDU <"
            );
        }
        reply
    }
}

fn deadline_left(job: &Job) -> Option<Duration> {
    job.deadline.map(|d| {
        d.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    })
}

fn expired(detail: String) -> ResultError {
    error(
        "action_attempt_expired",
        "The request expired before the card was done. Start it again.",
        Some("deadline_passed"),
        detail,
    )
}

/// Runs one job on `encoder`: wait for the card (event-driven, at most the card wait or the
/// deadline), then encode, scan or verify. Never panics; every failure becomes a result.
#[allow(clippy::too_many_lines)] // one linear sequence of steps reads best in one place
pub fn execute(encoder: &mut dyn Encoder, job: &Job, exec: &Exec<'_>) -> Outcome {
    let reader = encoder.name().to_owned();
    let id = job.attempt.action_attempt_id.as_str();
    let job_span = tracing::info_span!("job", attempt = %id, reader = %reader);
    let _enter = job_span.enter();
    let verify = matches!(job.kind, JobKind::Verify(_));
    if let Some(control) = exec.control
        && !control.begin(id, encoder.canceller())
    {
        control.end();
        return Outcome::Cancelled;
    }
    let end = |outcome: Outcome| {
        if let Some(control) = exec.control {
            control.end();
        }
        outcome
    };
    // The card wait: bounded by the deadline, except for a verification (the card may have
    // been written: always look).
    let left = if verify { None } else { deadline_left(job) };
    if left == Some(Duration::ZERO) {
        return end(result(
            job,
            exec.encoder_id,
            Err(expired(format!(
                "deadline passed before waiting on reader \"{reader}\""
            ))),
        ));
    }
    let wait = left.map_or(exec.card_wait, |l| l.min(exec.card_wait));
    let deadline_first = left.is_some_and(|l| l < exec.card_wait);
    tracing::info!(wait_ms = wait.as_millis(), "waiting for a card");
    let started = Instant::now();
    match encoder.wait_for_card(wait) {
        Ok(true) => {}
        Ok(false) if verify => {
            return end(result(
                job,
                exec.encoder_id,
                Err(error(
                    "encoding_interrupted",
                    "The card was removed while it was being encoded. Place it back on the encoder and encode it again.",
                    Some("not_verified"),
                    format!(
                        "the bridge restarted while writing; no card came for the verifying scan within {} ms on reader \"{reader}\"",
                        wait.as_millis()
                    ),
                )),
            ));
        }
        Ok(false) if deadline_first => {
            return end(result(
                job,
                exec.encoder_id,
                Err(expired(format!(
                    "deadline passed after waiting {} ms for a card on reader \"{reader}\"",
                    started.elapsed().as_millis()
                ))),
            ));
        }
        Ok(false) => {
            return end(result(
                job,
                exec.encoder_id,
                Err(error(
                    "no_card_on_encoder",
                    format!(
                        "No card was placed on the encoder within {} seconds.",
                        wait.as_secs()
                    ),
                    Some("card_wait_timeout"),
                    format!("waited {} ms on reader \"{reader}\"", wait.as_millis()),
                )),
            ));
        }
        Err(e) if e.kind() == ErrorKind::Cancelled => return end(Outcome::Cancelled),
        Err(e) => {
            tracing::warn!("card wait failed: {e}");
            return end(result(
                job,
                exec.encoder_id,
                Err(from_hal_error(&e, &reader, "waiting for a card")),
            ));
        }
    }
    if let Some(control) = exec.control
        && !control.start_work()
    {
        return end(Outcome::Cancelled);
    }
    let lease = job.lease.load(Ordering::SeqCst);
    if !verify && lease > 0 {
        let now_ms = i64::try_from(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(i64::MAX);
        if now_ms > lease {
            return end(result(
                job,
                exec.encoder_id,
                Err(error(
                    "action_attempt_expired",
                    "The request expired before the card was done. Start it again.",
                    Some("lease_lapsed"),
                    "the claim's lease lapsed (cloud unreachable); the card was not touched".into(),
                )),
            ));
        }
    }
    let mut session = match encoder.open_session() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot open the card: {e}");
            let mut err = from_hal_error(&e, &reader, "opening the card");
            if verify {
                err = error(
                    "encoding_interrupted",
                    "The card was removed while it was being encoded. Place it back on the encoder and encode it again.",
                    Some("not_verified"),
                    err.detail.unwrap_or_default(),
                );
            }
            return end(result(job, exec.encoder_id, Err(err)));
        }
    };
    let info = session.info().clone();
    let timing = Timing::default();
    tracing::info!(uid = %hex(&info.uid), "card opened");
    let card_type = encoder_protocol::card::identify(&info.atr, info.sak).name();
    let outcome = match (&job.kind, job.attempt.action_type) {
        (JobKind::Run, ActionType::Scan) => {
            let mut guard = Guard {
                inner: session.as_mut(),
                reader: &reader,
                before_first_write: None,
                control: exec.control,
                timing: &timing,
            };
            let r = job::scan(&mut guard, &info.atr, exec.site);
            match r {
                Ok(scan) if scan.state == CardState::Unsupported => Err(error(
                    "incompatible_card_format",
                    "This card type is not supported. Use a MIFARE Classic card.",
                    Some("not_mifare_classic"),
                    format!(
                        "card type {} (uid {}) on reader \"{reader}\"",
                        scan.card_type.name(),
                        hex(&scan.uid)
                    ),
                )),
                Ok(scan) => Ok(scan_value(&scan)),
                Err(e) => Err(from_job_error(&e, &reader)),
            }
        }
        (JobKind::Run, ActionType::Encode) => {
            match check_card_uid(&job.attempt, &info.uid, &reader)
                .and_then(|()| credential_from_offer(&job.attempt, &info.uid))
            {
                Err(e) => Err(e),
                Ok(credential) => {
                    let writing = Writing {
                        uid: hex(&info.uid),
                        card_number: credential.card_number.clone(),
                    };
                    let hook: Option<Box<dyn FnOnce() -> Result<(), String>>> =
                        exec.store.map(|store| {
                            Box::new(move || {
                                store.mark_writing(id, writing).map_err(|e| e.to_string())
                            })
                                as Box<dyn FnOnce() -> Result<(), String>>
                        });
                    let mut guard = Guard {
                        inner: session.as_mut(),
                        reader: &reader,
                        before_first_write: hook,
                        control: exec.control,
                        timing: &timing,
                    };
                    match job::encode(&mut guard, &info.atr, exec.site, &credential) {
                        Ok(done) => Ok(encode_value(
                            &done.written,
                            &done.uid,
                            done.card_type.name(),
                            Some(done.first_encode),
                        )),
                        Err(e) => Err(from_job_error(&e, &reader)),
                    }
                }
            }
        }
        (JobKind::Verify(writing), _) => verify_written(
            session.as_mut(),
            &info,
            job,
            writing,
            exec,
            (&reader, card_type),
            &timing,
        ),
    };
    drop(session);
    tracing::info!(
        first_apdu_us = timing.first.load(Ordering::SeqCst),
        last_apdu_us = timing.last.load(Ordering::SeqCst),
        apdus = timing.count.load(Ordering::SeqCst),
        "card timing"
    );
    match &outcome {
        Ok(_) => tracing::info!("card done"),
        Err(e) => tracing::warn!(
            error = %e.kind,
            sub_code = e.sub_code.as_deref().unwrap_or(""),
            detail = e.detail.as_deref().unwrap_or(""),
            "card operation failed"
        ),
    }
    end(result(job, exec.encoder_id, outcome))
}

fn interrupted(detail: String) -> ResultError {
    error(
        "encoding_interrupted",
        "The card was removed while it was being encoded. Place it back on the encoder and encode it again.",
        Some("interrupted_by_restart"),
        detail,
    )
}

/// After a restart mid-write: success only if the card holds exactly this attempt's
/// credential; otherwise `encoding_interrupted` with what the card holds.
fn verify_written(
    session: &mut dyn encoder_hal::CardSession,
    info: &encoder_hal::CardInfo,
    job: &Job,
    writing: &Writing,
    exec: &Exec<'_>,
    (reader, card_type): (&str, &str),
    timing: &Timing,
) -> Result<Value, ResultError> {
    if hex(&info.uid) != writing.uid {
        return Err(interrupted(format!(
            "the bridge restarted while writing card {}; the card on reader \"{reader}\" is {}, not verified",
            writing.uid,
            hex(&info.uid)
        )));
    }
    let expected = credential_from_offer(&job.attempt, &info.uid).map(|mut c| {
        c.card_number.clone_from(&writing.card_number);
        c
    })?;
    let mut guard = Guard {
        inner: session,
        reader,
        before_first_write: None,
        control: exec.control,
        timing,
    };
    match job::scan(&mut guard, &info.atr, exec.site) {
        Ok(scan) => match &scan.credential {
            Some(found) if found.credential == expected => {
                tracing::info!("verifying scan after restart: the credential is complete");
                Ok(encode_value(found, &scan.uid, card_type, None))
            }
            Some(found) => Err(interrupted(format!(
                "the bridge restarted while writing; the card holds credential {} issue {} (sequence {}), not this attempt's",
                found.credential.credential_id, found.credential.issue_counter, found.sequence
            ))),
            None => Err(interrupted(format!(
                "the bridge restarted while writing; the card holds no credential (state {})",
                scan.state.name()
            ))),
        },
        Err(e) => Err(interrupted(format!(
            "the bridge restarted while writing; verifying scan: {}",
            e.detail()
        ))),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use crate::cloud::message::OfferedCredential;

    fn offer(card_number: Option<&str>, access: &str) -> AttemptAvailable {
        AttemptAvailable {
            action_attempt_id: "a".into(),
            action_type: ActionType::Encode,
            encoder_id: "e".into(),
            created_at: None,
            expires_at: None,
            credential: Some(OfferedCredential {
                acs_credential_id: "66666666-6666-6666-6666-666666666666".into(),
                card_number: card_number.map(str::to_owned),
                starts_at: Some("2024-12-01T15:00:00.000Z".into()),
                ends_at: None,
                is_issued: false,
                issue_counter: 1,
                access_data: access.into(),
                card_uid: None,
            }),
        }
    }

    #[test]
    fn card_number_defaults_to_the_uid_tail() {
        assert_eq!(card_number_for(None, &[0x04, 0xA1, 0xB2, 0xC3]), "77705923");
        assert_eq!(
            card_number_for(None, &[0x04, 0x11, 0x22, 0xDE, 0xAD, 0xBE, 0xEF]),
            "3735928559"
        );
        assert_eq!(card_number_for(Some("12"), &[1]), "12");
    }

    #[test]
    fn credentials_from_offers() {
        let c =
            credential_from_offer(&offer(None, "AQID"), &[0xDE, 0xAD, 0xBE, 0xEF]).expect("valid");
        assert_eq!(c.card_number, "3735928559");
        assert_eq!(c.access_data, vec![1, 2, 3]);
        assert_eq!(c.starts_at, Some(1_733_065_200));
        let e = credential_from_offer(&offer(Some("12a"), ""), &[1]).expect_err("digits");
        assert_eq!(e.sub_code.as_deref(), Some("invalid_credential"));
        let e = credential_from_offer(&offer(None, "!!"), &[1]).expect_err("base64");
        assert!(e.detail.unwrap_or_default().contains("access_data"));
    }

    #[test]
    fn a_credential_on_another_card_is_refused() {
        let mut o = offer(None, "");
        let uid = [0x04, 0xA1, 0xB2, 0xC3];
        assert!(check_card_uid(&o, &uid, "r").is_ok());
        if let Some(c) = o.credential.as_mut() {
            c.card_uid = Some("04a1b2c3".into());
        }
        assert!(check_card_uid(&o, &uid, "r").is_ok());
        let e = check_card_uid(&o, &[0xDE, 0xAD, 0xBE, 0xEF], "r").expect_err("other card");
        assert_eq!(e.kind, "credential_cannot_be_reissued");
        assert_eq!(e.sub_code.as_deref(), Some("credential_on_another_card"));
    }

    /// The runner's decisions against mocked hardware: `Encoder` and `CardSession` live in
    /// encoder-hal, so they are mocked here with `mockall::mock!`.
    mod mocked {
        use std::sync::atomic::AtomicI64;
        use std::sync::{Arc, Mutex, mpsc};
        use std::time::{Duration, Instant, SystemTime};

        use encoder_hal::{
            Canceller, CardInfo, CardSession, Encoder, EncoderKind, ErrorKind, HalError,
        };
        use encoder_protocol::keys::{MasterKey, SiteKeys};
        use encoder_protocol::transmit::{Transmit, TransmitError, TransmitErrorKind};
        use encoder_sim::card::{CardType, VirtualCard};
        use mockall::mock;

        use super::super::*;
        use crate::cloud::message::OfferedCredential;

        mock! {
            pub Enc {}
            impl Encoder for Enc {
                fn name(&self) -> &str;
                fn kind(&self) -> EncoderKind;
                fn wait_for_card(&mut self, timeout: Duration) -> Result<bool, HalError>;
                fn open_session<'a>(&'a mut self) -> Result<Box<dyn CardSession + 'a>, HalError>;
                fn canceller(&self) -> Canceller;
            }
        }

        mock! {
            pub Sess {}
            impl Transmit for Sess {
                fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError>;
            }
            impl CardSession for Sess {
                fn info(&self) -> &CardInfo;
            }
        }

        const READER: &str = "Mock Reader 00 00";

        fn site() -> SiteKeys {
            SiteKeys::new(1, MasterKey::new(*b"mock-test-site-1"))
        }

        fn attempt(action: ActionType, card_uid: Option<&str>) -> AttemptAvailable {
            AttemptAvailable {
                action_attempt_id: "attempt-1".into(),
                action_type: action,
                encoder_id: "enc-1".into(),
                created_at: None,
                expires_at: None,
                credential: (action == ActionType::Encode).then(|| OfferedCredential {
                    acs_credential_id: "66666666-6666-6666-6666-666666666666".into(),
                    card_number: Some("4009613812".into()),
                    starts_at: None,
                    ends_at: None,
                    is_issued: false,
                    issue_counter: 1,
                    access_data: "AQID".into(),
                    card_uid: card_uid.map(str::to_owned),
                }),
            }
        }

        fn job(action: ActionType, deadline: Option<Duration>, card_uid: Option<&str>) -> Job {
            Job {
                attempt: attempt(action, card_uid),
                kind: JobKind::Run,
                deadline: deadline.map(|d| SystemTime::now() + d),
                lease: Arc::new(AtomicI64::new(0)),
            }
        }

        /// An encoder whose card wait answers `wait`; no session may be opened.
        fn encoder(
            wait: impl FnMut(Duration) -> Result<bool, HalError> + Send + 'static,
        ) -> MockEnc {
            let mut e = MockEnc::new();
            e.expect_name().return_const(READER.to_owned());
            e.expect_kind().return_const(EncoderKind::Pcsc);
            e.expect_canceller().return_const(Canceller::new());
            e.expect_wait_for_card().times(1).returning(wait);
            e.expect_open_session().never();
            e
        }

        fn run(encoder: &mut MockEnc, job: &Job, card_wait: Duration) -> Outcome {
            let site = site();
            let exec = Exec {
                encoder_id: "enc-1",
                card_wait,
                site: &site,
                store: None,
                control: None,
            };
            execute(encoder, job, &exec)
        }

        fn error_of(outcome: &Outcome) -> ResultError {
            match outcome {
                Outcome::Result(r) => {
                    assert_eq!(r.status, "error", "{r:?}");
                    assert!(r.result.is_none());
                    r.error.clone().expect("an error")
                }
                Outcome::Cancelled => panic!("expected a result, got Cancelled"),
            }
        }

        #[test]
        fn no_card_within_the_wait_reports_the_waited_time() {
            let mut e = encoder(|_| Ok(false));
            let outcome = run(
                &mut e,
                &job(ActionType::Encode, None, None),
                Duration::from_secs(2),
            );
            let error = error_of(&outcome);
            assert_eq!(error.kind, "no_card_on_encoder");
            assert_eq!(error.sub_code.as_deref(), Some("card_wait_timeout"));
            assert!(error.message.contains("within 2 seconds"), "{error:?}");
            let detail = error.detail.unwrap_or_default();
            assert!(detail.contains("waited 2000 ms"), "{detail}");
            assert!(detail.contains(READER), "{detail}");
        }

        #[test]
        fn an_unavailable_reader_or_service_during_the_wait_is_not_online() {
            for kind in [ErrorKind::ReaderUnavailable, ErrorKind::NoService] {
                let mut e = encoder(move |_| Err(HalError::new(kind, "gone")));
                let outcome = run(
                    &mut e,
                    &job(ActionType::Scan, None, None),
                    Duration::from_secs(5),
                );
                let error = error_of(&outcome);
                assert_eq!(error.kind, "encoder_not_online", "{kind}");
                assert_eq!(error.sub_code.as_deref(), Some(kind.name()));
                assert!(
                    error
                        .detail
                        .unwrap_or_default()
                        .contains("waiting for a card")
                );
            }
        }

        #[test]
        fn a_timeout_during_the_wait_is_a_communication_timeout() {
            let mut e = encoder(|_| Err(HalError::new(ErrorKind::Timeout, "no answer")));
            let outcome = run(
                &mut e,
                &job(ActionType::Encode, None, None),
                Duration::from_secs(5),
            );
            assert_eq!(error_of(&outcome).kind, "encoder_communication_timeout");
        }

        #[test]
        fn a_cancelled_wait_reports_nothing() {
            let mut e = encoder(|_| Err(HalError::new(ErrorKind::Cancelled, "cancelled")));
            let outcome = run(
                &mut e,
                &job(ActionType::Encode, None, None),
                Duration::from_secs(5),
            );
            assert_eq!(outcome, Outcome::Cancelled);
        }

        #[test]
        fn the_deadline_bounds_the_card_wait() {
            let mut e = MockEnc::new();
            e.expect_name().return_const(READER.to_owned());
            e.expect_canceller().return_const(Canceller::new());
            e.expect_wait_for_card()
                .withf(|wait| *wait <= Duration::from_secs(2) && *wait > Duration::from_secs(1))
                .times(1)
                .returning(|_| Ok(false));
            e.expect_open_session().never();
            let outcome = run(
                &mut e,
                &job(ActionType::Scan, Some(Duration::from_secs(2)), None),
                Duration::from_secs(30),
            );
            let error = error_of(&outcome);
            assert_eq!(error.kind, "action_attempt_expired");
            assert_eq!(error.sub_code.as_deref(), Some("deadline_passed"));
        }

        #[test]
        fn the_card_wait_bounds_a_later_deadline() {
            let mut e = MockEnc::new();
            e.expect_name().return_const(READER.to_owned());
            e.expect_canceller().return_const(Canceller::new());
            e.expect_wait_for_card()
                .withf(|wait| *wait == Duration::from_secs(3))
                .times(1)
                .returning(|_| Ok(false));
            let outcome = run(
                &mut e,
                &job(ActionType::Scan, Some(Duration::from_secs(60)), None),
                Duration::from_secs(3),
            );
            assert_eq!(error_of(&outcome).kind, "no_card_on_encoder");
        }

        /// A session over an in-process virtual card; `fail` may replace the card's answer.
        fn session_on(
            uid: &[u8],
            sent: Arc<Mutex<Vec<Vec<u8>>>>,
            mut fail: impl FnMut(&[u8], usize) -> Option<TransmitError> + Send + 'static,
        ) -> MockSess {
            let mut card = VirtualCard::new(CardType::Classic1k, Some(uid)).expect("card");
            let info = CardInfo {
                atr: card.atr(),
                uid: uid.to_vec(),
                sak: None,
            };
            let mut s = MockSess::new();
            s.expect_info().return_const(info);
            s.expect_transmit().returning(move |command| {
                let mut sent = sent.lock().expect("lock");
                sent.push(command.to_vec());
                let writes = sent.iter().filter(|c| is_write(c)).count();
                if let Some(e) = fail(command, writes) {
                    return Err(e);
                }
                Ok(card.transmit(command))
            });
            s
        }

        fn encoder_with(session: MockSess) -> MockEnc {
            let mut e = MockEnc::new();
            e.expect_name().return_const(READER.to_owned());
            e.expect_canceller().return_const(Canceller::new());
            e.expect_wait_for_card().times(1).returning(|_| Ok(true));
            let mut session = Some(session);
            e.expect_open_session().times(1).returning(move || {
                session
                    .take()
                    .map(|s| Box::new(s) as Box<dyn CardSession>)
                    .ok_or_else(|| HalError::new(ErrorKind::Other, "opened twice"))
            });
            e
        }

        #[test]
        fn a_credential_for_another_card_is_refused_before_any_write() {
            let sent = Arc::new(Mutex::new(Vec::new()));
            let mut e = encoder_with(session_on(
                &[0xDE, 0xAD, 0xBE, 0xEF],
                Arc::clone(&sent),
                |_, _| None,
            ));
            let outcome = run(
                &mut e,
                &job(
                    ActionType::Encode,
                    Some(Duration::from_secs(60)),
                    Some("04a1b2c3"),
                ),
                Duration::from_secs(5),
            );
            let error = error_of(&outcome);
            assert_eq!(error.kind, "credential_cannot_be_reissued");
            assert_eq!(
                error.sub_code.as_deref(),
                Some("credential_on_another_card")
            );
            let sent = sent.lock().expect("lock");
            assert!(
                !sent.iter().any(|c| c.starts_with(&[0xFF, 0xD6])),
                "no card write: {sent:?}"
            );
        }

        #[test]
        fn the_same_card_is_encoded() {
            let sent = Arc::new(Mutex::new(Vec::new()));
            let mut e = encoder_with(session_on(
                &[0x04, 0xA1, 0xB2, 0xC3],
                Arc::clone(&sent),
                |_, _| None,
            ));
            let outcome = run(
                &mut e,
                &job(
                    ActionType::Encode,
                    Some(Duration::from_secs(60)),
                    Some("04A1B2C3"),
                ),
                Duration::from_secs(5),
            );
            let Outcome::Result(result) = outcome else {
                panic!("cancelled")
            };
            assert_eq!(result.status, "success", "{result:?}");
            assert!(sent.lock().expect("lock").iter().any(|c| is_write(c)));
        }

        #[test]
        fn a_card_removed_after_the_first_write_is_an_interrupted_encoding() {
            let sent = Arc::new(Mutex::new(Vec::new()));
            let mut e = encoder_with(session_on(
                &[0x04, 0xA1, 0xB2, 0xC3],
                Arc::clone(&sent),
                // The first write goes through; every later command finds the card gone.
                |_, writes| {
                    (writes > 1).then(|| {
                        TransmitError::new(TransmitErrorKind::CardRemoved, "card left the field")
                    })
                },
            ));
            let outcome = run(
                &mut e,
                &job(ActionType::Encode, Some(Duration::from_secs(60)), None),
                Duration::from_secs(5),
            );
            let error = error_of(&outcome);
            assert_eq!(error.kind, "encoding_interrupted", "{error:?}");
            assert_eq!(
                sent.lock()
                    .expect("lock")
                    .iter()
                    .filter(|c| is_write(c))
                    .count(),
                2,
                "one write reached the card, the second found it gone"
            );
        }

        /// An idle runner with a probe reports the encoder's first state and each change,
        /// never the same state twice; probes are zero-length card waits.
        #[test]
        fn an_idle_probe_reports_changes_only() {
            let script = Arc::new(Mutex::new(vec![
                Ok(false),
                Ok(false),
                Ok(true),
                Ok(true),
                Err(HalError::new(ErrorKind::ReaderUnavailable, "unplugged")),
                Err(HalError::new(ErrorKind::ReaderUnavailable, "unplugged")),
                Ok(false),
            ]));
            let factory: EncoderFactory = Box::new(move || {
                let script = Arc::clone(&script);
                let mut e = MockEnc::new();
                e.expect_name().return_const(READER.to_owned());
                e.expect_canceller().return_const(Canceller::new());
                e.expect_wait_for_card()
                    .withf(Duration::is_zero)
                    .returning(move |_| {
                        let mut script = script.lock().expect("lock");
                        if script.is_empty() {
                            Ok(false)
                        } else {
                            script.remove(0)
                        }
                    });
                Box::new(e)
            });
            let (tx, rx) = mpsc::channel();
            let runner = Runner::spawn(
                RunnerSpec {
                    encoder_id: "enc-1".into(),
                    card_wait: Duration::from_secs(30),
                    factory,
                    probe: Some(Probe {
                        every: Duration::from_millis(20),
                        report: Box::new(move |state| {
                            let _ = tx.send(state);
                        }),
                    }),
                },
                Arc::new(site()),
                None,
                Arc::new(|_| {}),
            )
            .expect("runner");
            let state = |online, card_present| EncoderState {
                online,
                card_present,
            };
            let mut seen = Vec::new();
            while seen.len() < 4 {
                seen.push(rx.recv_timeout(Duration::from_secs(5)).expect("a state"));
            }
            assert_eq!(
                seen,
                vec![
                    state(true, false),
                    state(true, true),
                    state(false, false),
                    state(true, false)
                ]
            );
            assert!(
                rx.recv_timeout(Duration::from_millis(200)).is_err(),
                "no repeats"
            );
            if let Some(thread) = runner.stop() {
                thread.join().expect("join");
            }
        }

        /// The runner thread: `cancel_job` ends a blocked card wait at once, and the job
        /// reports nothing (docs/cloud-protocol.md §4, `attempt_cancelled`).
        #[test]
        fn a_runner_cancelled_before_the_card_reports_no_result() {
            let factory: EncoderFactory = Box::new(|| {
                let canceller = Canceller::new();
                let waiting = canceller.clone();
                let mut e = MockEnc::new();
                e.expect_name().return_const(READER.to_owned());
                e.expect_canceller().return_const(canceller);
                e.expect_wait_for_card().returning(move |timeout| {
                    if waiting.sleep(timeout) {
                        Ok(false)
                    } else {
                        Err(HalError::new(ErrorKind::Cancelled, "cancelled"))
                    }
                });
                e.expect_open_session().never();
                Box::new(e)
            });
            let (tx, rx) = mpsc::channel();
            let tx = Mutex::new(tx);
            let runner = Runner::spawn(
                RunnerSpec {
                    encoder_id: "enc-1".into(),
                    card_wait: Duration::from_secs(30),
                    factory,
                    probe: None,
                },
                Arc::new(site()),
                None,
                Arc::new(move |finished| {
                    let _ = tx.lock().expect("lock").send(finished);
                }),
            )
            .expect("runner");
            runner
                .run(job(ActionType::Encode, None, None))
                .map_err(|_| "gone")
                .expect("queued");
            // Let the job reach its card wait, then cancel it.
            std::thread::sleep(Duration::from_millis(200));
            let cancelled = Instant::now();
            runner.cancel_job("attempt-1");
            let finished = rx.recv_timeout(Duration::from_secs(5)).expect("finished");
            assert!(cancelled.elapsed() < Duration::from_secs(1));
            assert_eq!(finished.attempt_id, "attempt-1");
            assert_eq!(finished.outcome, Outcome::Cancelled);
            // The runner works on with a fresh encoder: a cancel of another attempt does
            // not touch the next job, which ends with its card wait.
            let mut next = job(ActionType::Scan, Some(Duration::from_millis(300)), None);
            next.attempt.action_attempt_id = "attempt-2".into();
            runner.run(next).map_err(|_| "gone").expect("queued");
            runner.cancel_job("attempt-1");
            let finished = rx.recv_timeout(Duration::from_secs(5)).expect("finished");
            assert_eq!(finished.attempt_id, "attempt-2");
            assert!(matches!(finished.outcome, Outcome::Result(_)));
            if let Some(thread) = runner.stop() {
                thread.join().expect("join");
            }
        }
    }

    #[test]
    fn writes_are_recognised() {
        assert!(is_write(&[0xFF, 0xD6, 0x00, 0x04, 0x10]));
        assert!(!is_write(&[0xFF, 0xB0, 0x00, 0x04, 0x10]));
    }
}
