//! One runner per encoder, on its own OS thread, owning the encoder.
//!
//! The daemon hands it [`CardJob`]s over a channel; it runs them one at a time
//! ([`card_job::execute`]) and hands each [`JobReport`] back through a callback. It knows
//! nothing of the cloud. While idle it probes encoders that give no events of their own
//! (a PN532) and reports their state. The pcsc crate's threading model (one context per
//! thread, blocking calls, `cancel()` from another thread) is why each encoder has a thread.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use encoder_hal::{Canceller, Encoder, ErrorKind};
use encoder_protocol::keys::SiteKeys;

use crate::card_job::{self, Exec};
use crate::job::{ActionKind, CardJob, JobReport};
use crate::store::Store;

/// What a runner tells the daemon after each job.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The job's id (the attempt).
    pub attempt_id: String,
    /// The encoder.
    pub encoder_id: String,
    /// Scan or encode.
    pub action: ActionKind,
    /// How it ended.
    pub report: JobReport,
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
    /// Jobs cancelled while still queued: they end as cancelled when they begin. Bounded: a
    /// cancel for a job that already ended is never consumed.
    cancelled_early: std::collections::VecDeque<String>,
}

/// How many early cancels a runner remembers.
const EARLY_CANCELS: usize = 32;

/// Shared between a runner thread and its handle: coordinates cancellation with the stage so a
/// cancel never lands in the middle of a card operation.
#[derive(Debug)]
pub(crate) struct Control {
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
                cancelled_early: std::collections::VecDeque::new(),
            }),
        }
    }
}

impl Control {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ctl> {
        self.ctl.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `job`'s card wait; `false` when it is not to run (cancelled while queued, or
    /// the runner aborted).
    pub(crate) fn begin(&self, job: &str, canceller: Canceller) -> bool {
        let mut ctl = self.lock();
        ctl.stage = Stage::Waiting;
        ctl.job = Some(job.to_owned());
        ctl.cancel = false;
        ctl.canceller = Some(canceller);
        if let Some(at) = ctl.cancelled_early.iter().position(|id| id == job) {
            ctl.cancelled_early.remove(at);
            return false;
        }
        !ctl.aborted
    }

    /// Moves from waiting to working; `false` when the job was cancelled meanwhile.
    pub(crate) fn start_work(&self) -> bool {
        let mut ctl = self.lock();
        if ctl.cancel || ctl.aborted {
            return false;
        }
        ctl.stage = Stage::Working;
        true
    }

    pub(crate) fn end(&self) {
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

    pub(crate) fn aborted(&self) -> bool {
        self.lock().aborted
    }
}

/// Creates the encoder, once per runner.
pub type EncoderFactory = Box<dyn Fn() -> Box<dyn Encoder> + Send>;

enum Cmd {
    Run(Box<CardJob>),
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
    /// Beep and light at the end of each job.
    pub feedback: bool,
    /// Creates the encoder.
    pub factory: EncoderFactory,
    /// Probe the encoder while idle and report its state (PN532); `None`: never (PC/SC,
    /// whose state the hot-plug monitor reports).
    pub probe: Option<Probe>,
    /// The media this site writes (`[media]`).
    pub media: crate::config::MediaConfig,
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
    /// Starts the runner thread. `done` is called (from the runner thread) after each job; the
    /// daemon stores the result before it reports it. `store` only records the phase `writing`
    /// before a job's first card write.
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
                        card_wait: spec.card_wait,
                        feedback: spec.feedback,
                        media: spec.media,
                        site: &site,
                        // An operator job is no attempt: nothing of it is stored.
                        store: if job.is_local() {
                            None
                        } else {
                            store.as_deref()
                        },
                        control: Some(&ctl),
                    };
                    let job_report = card_job::execute(encoder.as_mut(), &job, &exec);
                    done(Finished {
                        attempt_id: job.id.clone(),
                        encoder_id: spec.encoder_id.clone(),
                        action: job.action.kind(),
                        report: job_report,
                    });
                    // A cancelled card wait is over: the same encoder waits again for the
                    // next job (after an abort the bridge is stopping: leave it cancelled).
                    if !ctl.aborted() {
                        encoder.canceller().reset();
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
    pub fn run(&self, job: CardJob) -> Result<(), Box<CardJob>> {
        match self.tx.send(Cmd::Run(Box::new(job))) {
            Err(mpsc::SendError(Cmd::Run(job))) => Err(job),
            Ok(()) | Err(mpsc::SendError(Cmd::Stop)) => Ok(()),
        }
    }

    /// Cancels the job for `attempt_id` if it is still waiting for a card.
    ///
    /// A cancel that arrives before the runner has begun the job (it is still queued behind
    /// another) is remembered, and the job ends as cancelled when its turn comes.
    pub fn cancel_job(&self, attempt_id: &str) {
        let mut ctl = self.control.lock();
        if ctl.job.as_deref() == Some(attempt_id) {
            drop(ctl);
            self.control.cancel_where(|job| job == attempt_id);
            return;
        }
        if !ctl.cancelled_early.iter().any(|id| id == attempt_id) {
            if ctl.cancelled_early.len() == EARLY_CANCELS {
                ctl.cancelled_early.pop_front();
            }
            ctl.cancelled_early.push_back(attempt_id.to_owned());
        }
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

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use encoder_hal::HalError;

    use super::*;
    use crate::test_support::{MockEnc, READER, job, site};

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
                media: crate::config::MediaConfig::default(),
                encoder_id: "enc-1".into(),
                card_wait: Duration::from_secs(30),
                feedback: false,
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
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&made);
        let factory: EncoderFactory = Box::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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
                media: crate::config::MediaConfig::default(),
                encoder_id: "enc-1".into(),
                card_wait: Duration::from_secs(30),
                feedback: false,
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
            .run(job(true, None, None))
            .map_err(|_| "gone")
            .expect("queued");
        // Let the job reach its card wait, then cancel it.
        std::thread::sleep(Duration::from_millis(200));
        let cancelled = Instant::now();
        runner.cancel_job("attempt-1");
        let finished = rx.recv_timeout(Duration::from_secs(5)).expect("finished");
        assert!(cancelled.elapsed() < Duration::from_secs(1));
        assert_eq!(finished.attempt_id, "attempt-1");
        assert_eq!(finished.report, JobReport::Cancelled);
        // The runner works on with the same encoder, re-armed: a cancel of another attempt
        // does not touch the next job, which ends with its card wait.
        let mut next = job(false, Some(Duration::from_millis(300)), None);
        next.id = "attempt-2".into();
        runner.run(next).map_err(|_| "gone").expect("queued");
        runner.cancel_job("attempt-1");
        let finished = rx.recv_timeout(Duration::from_secs(5)).expect("finished");
        assert_eq!(finished.attempt_id, "attempt-2");
        assert!(matches!(finished.report, JobReport::Done { .. }));
        // A cancel that arrives while its job is still queued behind another is not lost:
        // the job ends as cancelled when its turn comes, without waiting for a card.
        let mut third = job(true, None, None);
        third.id = "attempt-3".into();
        let mut fourth = job(true, None, None);
        fourth.id = "attempt-4".into();
        runner.run(third).map_err(|_| "gone").expect("queued");
        runner.run(fourth).map_err(|_| "gone").expect("queued");
        std::thread::sleep(Duration::from_millis(200));
        runner.cancel_job("attempt-4");
        let cancelled = Instant::now();
        runner.cancel_job("attempt-3");
        for id in ["attempt-3", "attempt-4"] {
            let finished = rx.recv_timeout(Duration::from_secs(5)).expect("finished");
            assert_eq!(finished.attempt_id, id);
            assert_eq!(finished.report, JobReport::Cancelled, "{id}");
        }
        assert!(cancelled.elapsed() < Duration::from_secs(2));
        assert_eq!(
            made.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "a cancelled wait does not rebuild the encoder"
        );
        if let Some(thread) = runner.stop() {
            thread.join().expect("join");
        }
    }
}
