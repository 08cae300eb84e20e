//! One [`CardJob`] on one encoder: wait for the card (event-driven, bounded by the card wait
//! and the attempt's deadline), open it once, run the protocol crate's
//! [`encode`](encoder_protocol::job::encode) or [`scan`](encoder_protocol::job::scan) with the
//! [`CardInfo`] the hal read, or verify an encode cut off by a restart; every failure becomes a
//! [`CloudError`] in the [`JobReport`]. Never panics.
//!
//! Cancellation (cloud `attempt_cancelled`, shutdown) interrupts only the card wait; a card
//! operation that has begun is finished and verified. Only an abort (a second signal) stops it
//! between two APDUs ([`Guard`]).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use encoder_hal::{CardInfo, CardSession, Encoder, ErrorKind, Feedback};
use encoder_protocol::card::CardType;
use encoder_protocol::cloud_error::{CloudError, ErrorType, SubCode};
use encoder_protocol::hex;
use encoder_protocol::job::{self, CardState};
use encoder_protocol::keys::SiteKeys;

use crate::apdu_guard::{BeforeFirstWrite, Guard, Timing};
use crate::config::MediaConfig;
use crate::job::{CardJob, EncodeRequest, JobAction, JobReport, Success};
use crate::runner::Control;
use crate::store::{Store, Writing};

/// Everything a job needs besides the encoder.
pub struct Exec<'a> {
    /// How long to wait for a card.
    pub card_wait: Duration,
    /// Beep and light at the end of the card operation (where the reader can).
    pub feedback: bool,
    /// The media this site writes (`[media]`): the card placed picks the path.
    pub media: MediaConfig,
    /// The site keys.
    pub site: &'a SiteKeys,
    /// Where the phase `writing` is recorded (none for the operator commands).
    pub store: Option<&'a Store>,
    /// Cancellation (none for the operator commands).
    pub(crate) control: Option<&'a Control>,
}

const INTERRUPTED: &str = "The card was removed while it was being encoded. Place it back on the encoder and encode it again.";
const EXPIRED: &str = "The request expired before the card was done. Start it again.";

fn interrupted(sub: SubCode, detail: String) -> CloudError {
    CloudError::new(ErrorType::EncodingInterrupted, sub, INTERRUPTED, detail)
}

fn expired(sub: SubCode, detail: String) -> CloudError {
    CloudError::new(ErrorType::ActionAttemptExpired, sub, EXPIRED, detail)
}

fn deadline_left(job: &CardJob) -> Option<Duration> {
    job.deadline.map(|d| {
        d.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    })
}

fn lease_lapsed(job: &CardJob) -> bool {
    let lease = job.lease.load(Ordering::SeqCst);
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    lease > 0 && now_ms > lease
}

/// Runs `job` on `encoder`. See the module docs.
#[allow(clippy::too_many_lines)] // one linear sequence of steps reads best in one place
pub fn execute(encoder: &mut dyn Encoder, job: &CardJob, exec: &Exec<'_>) -> JobReport {
    let reader = encoder.name().to_owned();
    let job_span = tracing::info_span!("job", attempt = %job.id, reader = %reader);
    let _enter = job_span.enter();
    let verify = matches!(job.action, JobAction::Verify { .. });
    if let Some(control) = exec.control
        && !control.begin(&job.id, encoder.canceller())
    {
        control.end();
        return JobReport::Cancelled;
    }
    let end = |report: JobReport| {
        if let Some(control) = exec.control {
            control.end();
        }
        report
    };
    let fail = |e: CloudError| end(JobReport::now(Err(e)));
    // The card wait: bounded by the deadline, except for a verification (the card may have
    // been written: always look).
    let left = if verify { None } else { deadline_left(job) };
    if left == Some(Duration::ZERO) {
        return fail(expired(
            SubCode::DeadlinePassed,
            format!("deadline passed before waiting on reader \"{reader}\""),
        ));
    }
    let wait = left.map_or(exec.card_wait, |l| l.min(exec.card_wait));
    let deadline_first = left.is_some_and(|l| l < exec.card_wait);
    tracing::info!(wait_ms = wait.as_millis(), "waiting for a card");
    let started = Instant::now();
    match encoder.wait_for_card(wait) {
        Ok(true) => {}
        Ok(false) if verify => {
            return fail(interrupted(
                SubCode::NotVerified,
                format!(
                    "the bridge restarted while writing; no card came for the verifying scan within {} ms on reader \"{reader}\"",
                    wait.as_millis()
                ),
            ));
        }
        Ok(false) if deadline_first => {
            return fail(expired(
                SubCode::DeadlinePassed,
                format!(
                    "deadline passed after waiting {} ms for a card on reader \"{reader}\"",
                    started.elapsed().as_millis()
                ),
            ));
        }
        Ok(false) => {
            return fail(CloudError::new(
                ErrorType::NoCardOnEncoder,
                SubCode::CardWaitTimeout,
                format!(
                    "No card was placed on the encoder within {} seconds.",
                    wait.as_secs()
                ),
                format!("waited {} ms on reader \"{reader}\"", wait.as_millis()),
            ));
        }
        Err(e) if e.kind() == ErrorKind::Cancelled => return end(JobReport::Cancelled),
        Err(e) => {
            tracing::warn!("card wait failed: {e}");
            return fail(e.on_reader(&reader).cloud_error("waiting for a card"));
        }
    }
    if let Some(control) = exec.control
        && !control.start_work()
    {
        return end(JobReport::Cancelled);
    }
    if !verify && lease_lapsed(job) {
        return fail(expired(
            SubCode::LeaseLapsed,
            "the claim's lease lapsed (cloud unreachable); the card was not touched".into(),
        ));
    }
    let mut session = match encoder.open_session() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot open the card: {e}");
            let err = e.on_reader(&reader).cloud_error("opening the card");
            return fail(if verify {
                interrupted(SubCode::NotVerified, err.detail)
            } else {
                err
            });
        }
    };
    let info = session.info().clone();
    let timing = Timing::default();
    tracing::info!(uid = %hex::encode(&info.uid), "card opened");
    let card = Card {
        info: &info,
        reader: &reader,
        exec,
        timing: &timing,
    };
    let outcome = match &job.action {
        JobAction::Scan => card.scan(session.as_mut()),
        JobAction::Encode(request) => card.encode(session.as_mut(), &job.id, request),
        JobAction::Verify { request, writing } => card.verify(session.as_mut(), request, writing),
    };
    if exec.feedback {
        signal(session.as_mut(), outcome.is_ok());
    }
    drop(session);
    timing.log();
    match &outcome {
        Ok(_) => tracing::info!("card done"),
        Err(e) => tracing::warn!(
            error = %e.kind,
            sub_code = e.sub_code.map_or("", SubCode::name),
            detail = %e.detail,
            "card operation failed"
        ),
    }
    end(JobReport::now(outcome))
}

/// The beep and light at the desk for the job's outcome. Never fails the job: a reader that
/// cannot, a card already gone or a refused command is logged and forgotten.
fn signal(session: &mut dyn CardSession, ok: bool) {
    let feedback = if ok {
        Feedback::Success
    } else {
        Feedback::Failure
    };
    match session.feedback(feedback) {
        Ok(true) => tracing::debug!(?feedback, "feedback sent"),
        Ok(false) => {}
        Err(e) => tracing::info!(?feedback, "feedback not given (the job is unaffected): {e}"),
    }
}

/// A credential already written to a card (`card_uid`) goes on no other card: the error comes
/// before any card write.
pub fn check_card_uid(expected: Option<&str>, uid: &[u8], reader: &str) -> Result<(), CloudError> {
    let normalized: String = expected
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let here = hex::encode(uid);
    if normalized.is_empty() || normalized == here {
        return Ok(());
    }
    Err(CloudError::new(
        ErrorType::CredentialCannotBeReissued,
        SubCode::CredentialOnAnotherCard,
        "This credential is already on another card. Create a new credential for this card.",
        format!(
            "credential was written to card {normalized}; the card on reader \"{reader}\" is {here}; nothing was written"
        ),
    ))
}

/// The job path a card takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Medium {
    Classic,
    Desfire,
}

/// 16 random bytes from the operating system (`RndA` of a `DESFire` authentication). Should the
/// system refuse (it does not on Linux after boot), the clock stands in, with a warning: `RndA`
/// protects the reader against a replayed card, not the card's secrets.
fn nonce() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::warn!("no system randomness ({e}); RndA from the clock");
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = now.to_le_bytes();
    }
    bytes
}

/// The opened card and what a job on it needs.
struct Card<'a> {
    info: &'a CardInfo,
    reader: &'a str,
    exec: &'a Exec<'a>,
    timing: &'a Timing,
}

impl Card<'_> {
    fn guard<'s>(
        &'s self,
        session: &'s mut dyn CardSession,
        before_first_write: Option<BeforeFirstWrite<'s>>,
    ) -> Guard<'s, dyn CardSession + 's> {
        Guard {
            inner: session,
            reader: self.reader,
            before_first_write,
            control: self.exec.control,
            timing: self.timing,
        }
    }

    /// Which job the placed card gets (`[media]`): a `DESFire` (an ISO 14443-4 card) the
    /// `DESFire` path, a MIFARE Classic the Classic one; a card of a medium the site does not
    /// write is incompatible. Anything else takes the Classic path, which refuses it.
    fn route(&self) -> Result<Medium, CloudError> {
        let card_type = self.card_type();
        let refuse = |sub: SubCode, message: &str| {
            Err(CloudError::new(
                ErrorType::IncompatibleCardFormat,
                sub,
                message,
                format!(
                    "card type {} (uid {}) on reader \"{}\"; [media] classic = {}, desfire = {}",
                    card_type.name(),
                    hex::encode(&self.info.uid),
                    self.reader,
                    self.exec.media.classic,
                    self.exec.media.desfire
                ),
            ))
        };
        match card_type {
            CardType::Iso14443_4 if self.exec.media.desfire => Ok(Medium::Desfire),
            CardType::Iso14443_4 => refuse(
                SubCode::MediaNotEnabled,
                "This site does not write DESFire cards. Use a MIFARE Classic card.",
            ),
            t if t.is_mifare_classic() && !self.exec.media.classic => refuse(
                SubCode::MediaNotEnabled,
                "This site does not write MIFARE Classic cards. Use a DESFire card.",
            ),
            _ => Ok(Medium::Classic),
        }
    }

    fn scan(&self, session: &mut dyn CardSession) -> Result<Success, CloudError> {
        let medium = self.route()?;
        let mut guard = self.guard(session, None);
        let result = match medium {
            Medium::Desfire => {
                job::desfire::scan(&mut guard, self.info, self.exec.site, &mut nonce)
            }
            Medium::Classic => job::scan(&mut guard, self.info, self.exec.site),
        };
        match result {
            Ok(scan) if scan.state == CardState::Unsupported => Err(CloudError::new(
                ErrorType::IncompatibleCardFormat,
                SubCode::NotMifareClassic,
                "This card type is not supported. Use a MIFARE Classic or DESFire card.",
                format!(
                    "card type {} (uid {}) on reader \"{}\"",
                    scan.card_type.name(),
                    hex::encode(&scan.uid),
                    self.reader
                ),
            )),
            Ok(scan) => Ok(Success::Scanned(scan)),
            Err(e) => Err(e.to_cloud(self.reader)),
        }
    }

    fn encode(
        &self,
        session: &mut dyn CardSession,
        id: &str,
        request: &EncodeRequest,
    ) -> Result<Success, CloudError> {
        check_card_uid(request.card_uid.as_deref(), &self.info.uid, self.reader)?;
        let medium = self.route()?;
        let credential = request.credential.clone()?.for_card(&self.info.uid);
        let writing = Writing {
            uid: hex::encode(&self.info.uid),
            card_number: credential.card_number.clone(),
        };
        let hook = self.exec.store.map(|store| {
            Box::new(move || store.mark_writing(id, writing).map_err(|e| e.to_string()))
                as BeforeFirstWrite<'_>
        });
        let mut guard = self.guard(session, hook);
        let result = match medium {
            Medium::Desfire => job::desfire::encode(
                &mut guard,
                self.info,
                self.exec.site,
                &credential,
                self.exec.media.desfire_options(),
                &mut nonce,
            ),
            Medium::Classic => job::encode(&mut guard, self.info, self.exec.site, &credential),
        };
        match result {
            Ok(done) => Ok(Success::Encoded {
                written: done.written,
                uid: done.uid,
                card_type: done.card_type,
                first_encode: Some(done.first_encode),
            }),
            Err(e) => Err(e.to_cloud(self.reader)),
        }
    }

    /// After a restart mid-write: success only if the card holds exactly this attempt's
    /// credential; otherwise `encoding_interrupted` with what the card holds.
    fn verify(
        &self,
        session: &mut dyn CardSession,
        request: &EncodeRequest,
        writing: &Writing,
    ) -> Result<Success, CloudError> {
        let restarted = |detail: String| interrupted(SubCode::InterruptedByRestart, detail);
        let here = hex::encode(&self.info.uid);
        if here != writing.uid {
            return Err(restarted(format!(
                "the bridge restarted while writing card {}; the card on reader \"{}\" is {here}, not verified",
                writing.uid, self.reader
            )));
        }
        let mut expected = request.credential.clone()?.for_card(&self.info.uid);
        expected.card_number.clone_from(&writing.card_number);
        let medium = self.route()?;
        let mut guard = self.guard(session, None);
        let result = match medium {
            Medium::Desfire => {
                job::desfire::scan(&mut guard, self.info, self.exec.site, &mut nonce)
            }
            Medium::Classic => job::scan(&mut guard, self.info, self.exec.site),
        };
        match result {
            Ok(scan) => match scan.credential {
                Some(found) if found.credential == expected => {
                    tracing::info!("verifying scan after restart: the credential is complete");
                    Ok(Success::Encoded {
                        written: found,
                        uid: scan.uid,
                        card_type: self.card_type(),
                        first_encode: None,
                    })
                }
                Some(found) => Err(restarted(format!(
                    "the bridge restarted while writing; the card holds credential {} issue {} (sequence {}), not this attempt's",
                    found.credential.credential_id, found.credential.issue_counter, found.sequence
                ))),
                None => Err(restarted(format!(
                    "the bridge restarted while writing; the card holds no credential (state {})",
                    scan.state.name()
                ))),
            },
            Err(e) => Err(restarted(format!(
                "the bridge restarted while writing; verifying scan: {}",
                e.detail()
            ))),
        }
    }

    fn card_type(&self) -> CardType {
        self.info.card_type()
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::{Arc, Mutex};

    use encoder_hal::HalError;
    use encoder_protocol::transmit::{TransmitError, TransmitErrorKind};

    use super::*;
    use crate::test_support::{
        MockEnc, READER, encoder, encoder_with, is_write, job, session_on, site,
    };

    fn run(encoder: &mut MockEnc, job: &CardJob, card_wait: Duration) -> JobReport {
        run_with(encoder, job, card_wait, MediaConfig::default())
    }

    fn run_with(
        encoder: &mut MockEnc,
        job: &CardJob,
        card_wait: Duration,
        media: MediaConfig,
    ) -> JobReport {
        let site = site();
        let exec = Exec {
            media,
            card_wait,
            feedback: false,
            site: &site,
            store: None,
            control: None,
        };
        execute(encoder, job, &exec)
    }

    /// The placed card picks the job: a `DESFire` gets the `DESFire` encode (and its scan finds
    /// the credential); a medium `[media]` turns off is refused before any APDU.
    #[test]
    fn the_card_placed_picks_the_path_and_media_can_be_turned_off() {
        use encoder_sim::card::CardType as SimCard;
        const UID7: [u8; 7] = [0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66];
        let sent = Arc::new(Mutex::new(Vec::new()));
        let session = crate::test_support::session_on_type(
            SimCard::DesfireEv2,
            &UID7,
            sent.clone(),
            |_, _| None,
        );
        let report = run(
            &mut encoder_with(session),
            &job(true, None, None),
            Duration::from_secs(1),
        );
        let JobReport::Done {
            outcome: Ok(Success::Encoded { uid, .. }),
            ..
        } = &report
        else {
            panic!("{report:?}");
        };
        assert_eq!(uid, &UID7);
        assert!(
            sent.lock()
                .expect("lock")
                .iter()
                .all(|c| c.first() == Some(&0x90))
        );

        let off = |classic, desfire| MediaConfig {
            classic,
            desfire,
            ..MediaConfig::default()
        };
        for (card_type, media) in [
            (SimCard::DesfireEv2, off(true, false)),
            (SimCard::Classic1k, off(false, true)),
        ] {
            let sent = Arc::new(Mutex::new(Vec::new()));
            let session =
                crate::test_support::session_on_type(card_type, &UID7, sent.clone(), |_, _| None);
            let report = run_with(
                &mut encoder_with(session),
                &job(true, None, None),
                Duration::from_secs(1),
                media,
            );
            let error = error_of(&report);
            assert_eq!(error.kind, ErrorType::IncompatibleCardFormat, "{error:?}");
            assert_eq!(error.sub_code, Some(SubCode::MediaNotEnabled), "{error:?}");
            assert!(
                sent.lock().expect("lock").is_empty(),
                "{card_type}: APDUs sent"
            );
        }
    }

    fn error_of(report: &JobReport) -> CloudError {
        match report {
            JobReport::Done {
                outcome: Err(e), ..
            } => e.clone(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn no_card_within_the_wait_reports_the_waited_time() {
        let mut e = encoder(|_| Ok(false));
        let report = run(&mut e, &job(true, None, None), Duration::from_secs(2));
        let error = error_of(&report);
        assert_eq!(error.kind, ErrorType::NoCardOnEncoder);
        assert_eq!(error.sub_code, Some(SubCode::CardWaitTimeout));
        assert!(error.message.contains("within 2 seconds"), "{error:?}");
        assert!(error.detail.contains("waited 2000 ms"), "{error:?}");
        assert!(error.detail.contains(READER), "{error:?}");
    }

    #[test]
    fn an_unavailable_reader_or_service_during_the_wait_is_not_online() {
        for kind in [ErrorKind::ReaderUnavailable, ErrorKind::NoService] {
            let mut e = encoder(move |_| Err(HalError::new(kind, "gone")));
            let report = run(&mut e, &job(false, None, None), Duration::from_secs(5));
            let error = error_of(&report);
            assert_eq!(error.kind, ErrorType::EncoderNotOnline, "{kind}");
            assert_eq!(error.sub_code, Some(kind.sub_code()));
            assert!(error.detail.contains("waiting for a card"), "{error:?}");
            assert!(error.detail.contains(READER), "{error:?}");
        }
    }

    #[test]
    fn a_timeout_during_the_wait_is_a_communication_timeout() {
        let mut e = encoder(|_| Err(HalError::new(ErrorKind::Timeout, "no answer")));
        let report = run(&mut e, &job(true, None, None), Duration::from_secs(5));
        assert_eq!(
            error_of(&report).kind,
            ErrorType::EncoderCommunicationTimeout
        );
    }

    #[test]
    fn a_cancelled_wait_reports_nothing() {
        let mut e = encoder(|_| Err(HalError::new(ErrorKind::Cancelled, "cancelled")));
        let report = run(&mut e, &job(true, None, None), Duration::from_secs(5));
        assert_eq!(report, JobReport::Cancelled);
    }

    #[test]
    fn the_deadline_bounds_the_card_wait() {
        let mut e = MockEnc::new();
        e.expect_name().return_const(READER.to_owned());
        e.expect_canceller()
            .return_const(encoder_hal::Canceller::new());
        e.expect_wait_for_card()
            .withf(|wait| *wait <= Duration::from_secs(2) && *wait > Duration::from_secs(1))
            .times(1)
            .returning(|_| Ok(false));
        e.expect_open_session().never();
        let report = run(
            &mut e,
            &job(false, Some(Duration::from_secs(2)), None),
            Duration::from_secs(30),
        );
        let error = error_of(&report);
        assert_eq!(error.kind, ErrorType::ActionAttemptExpired);
        assert_eq!(error.sub_code, Some(SubCode::DeadlinePassed));
    }

    #[test]
    fn the_card_wait_bounds_a_later_deadline() {
        let mut e = MockEnc::new();
        e.expect_name().return_const(READER.to_owned());
        e.expect_canceller()
            .return_const(encoder_hal::Canceller::new());
        e.expect_wait_for_card()
            .withf(|wait| *wait == Duration::from_secs(3))
            .times(1)
            .returning(|_| Ok(false));
        let report = run(
            &mut e,
            &job(false, Some(Duration::from_secs(60)), None),
            Duration::from_secs(3),
        );
        assert_eq!(error_of(&report).kind, ErrorType::NoCardOnEncoder);
    }

    #[test]
    fn a_lapsed_lease_leaves_the_card_untouched() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let session = session_on(&[0x04, 0xA1, 0xB2, 0xC3], Arc::clone(&sent), |_, _| None);
        let mut e = MockEnc::new();
        e.expect_name().return_const(READER.to_owned());
        e.expect_canceller()
            .return_const(encoder_hal::Canceller::new());
        e.expect_wait_for_card().times(1).returning(|_| Ok(true));
        e.expect_open_session().never();
        drop(session);
        let job = job(true, Some(Duration::from_secs(60)), None);
        // Lapsed a second ago on the local clock.
        let now_ms = i64::try_from(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("clock")
                .as_millis(),
        )
        .expect("ms");
        job.lease.store(now_ms - 1000, Ordering::SeqCst);
        let error = error_of(&run(&mut e, &job, Duration::from_secs(5)));
        assert_eq!(error.kind, ErrorType::ActionAttemptExpired);
        assert_eq!(error.sub_code, Some(SubCode::LeaseLapsed));
        assert!(sent.lock().expect("lock").is_empty());
    }

    /// Feedback follows the outcome, and a reader that fails to beep fails no job.
    #[test]
    fn feedback_follows_the_outcome_and_never_fails_a_job() {
        let site = site();
        let exec = Exec {
            media: MediaConfig::default(),
            card_wait: Duration::from_secs(5),
            feedback: true,
            site: &site,
            store: None,
            control: None,
        };
        for (encode, card_uid, expected) in [
            (false, None, Feedback::Success),
            (true, Some("DEADBEEF"), Feedback::Failure),
        ] {
            let sent = Arc::new(Mutex::new(Vec::new()));
            let mut session = session_on(&[0x04, 0xA1, 0xB2, 0xC3], Arc::clone(&sent), |_, _| None);
            session
                .expect_feedback()
                .withf(move |f| *f == expected)
                .times(1)
                .returning(|_| Err(HalError::new(ErrorKind::CardRemoved, "card gone")));
            let mut e = encoder_with(session);
            let report = execute(&mut e, &job(encode, None, card_uid), &exec);
            let JobReport::Done { outcome, .. } = report else {
                panic!("not done");
            };
            assert_eq!(
                outcome.is_ok(),
                expected == Feedback::Success,
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn a_credential_for_another_card_is_refused_before_any_write() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut e = encoder_with(session_on(
            &[0xDE, 0xAD, 0xBE, 0xEF],
            Arc::clone(&sent),
            |_, _| None,
        ));
        let report = run(
            &mut e,
            &job(true, Some(Duration::from_secs(60)), Some("04a1b2c3")),
            Duration::from_secs(5),
        );
        let error = error_of(&report);
        assert_eq!(error.kind, ErrorType::CredentialCannotBeReissued);
        assert_eq!(error.sub_code, Some(SubCode::CredentialOnAnotherCard));
        let sent = sent.lock().expect("lock");
        assert!(sent.is_empty(), "not one APDU: {sent:?}");
    }

    #[test]
    fn the_same_card_is_encoded_with_the_uid_read_once() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut e = encoder_with(session_on(
            &[0x04, 0xA1, 0xB2, 0xC3],
            Arc::clone(&sent),
            |_, _| None,
        ));
        let report = run(
            &mut e,
            &job(true, Some(Duration::from_secs(60)), Some("04A1B2C3")),
            Duration::from_secs(5),
        );
        let JobReport::Done {
            outcome: Ok(Success::Encoded { uid, .. }),
            ..
        } = report
        else {
            panic!("not encoded: {report:?}")
        };
        assert_eq!(uid, [0x04, 0xA1, 0xB2, 0xC3]);
        let sent = sent.lock().expect("lock");
        assert!(sent.iter().any(|c| is_write(c)));
        assert!(
            !sent.iter().any(|c| c.starts_with(&[0xFF, 0xCA])),
            "the job takes the UID from CardInfo"
        );
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
        let report = run(
            &mut e,
            &job(true, Some(Duration::from_secs(60)), None),
            Duration::from_secs(5),
        );
        let error = error_of(&report);
        assert_eq!(error.kind, ErrorType::EncodingInterrupted, "{error:?}");
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

    #[test]
    fn the_write_phase_is_recorded_before_the_first_write() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("store");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut e = encoder_with(session_on(
            &[0x04, 0xA1, 0xB2, 0xC3],
            Arc::clone(&sent),
            |_, _| None,
        ));
        let job = job(true, Some(Duration::from_secs(60)), None);
        let site = site();
        let exec = Exec {
            media: crate::config::MediaConfig::default(),
            card_wait: Duration::from_secs(5),
            feedback: false,
            site: &site,
            store: Some(&store),
            control: None,
        };
        // No claimed row: recording `writing` must fail, and the card stays untouched.
        let error = error_of(&execute(&mut e, &job, &exec));
        assert_eq!(error.kind, ErrorType::UncategorizedError, "{error:?}");
        assert!(error.detail.contains("card left untouched"), "{error:?}");
        assert!(!sent.lock().expect("lock").iter().any(|c| is_write(c)));
    }

    #[test]
    fn check_card_uid_normalises_hex() {
        let uid = [0x04, 0xA1, 0xB2, 0xC3];
        assert!(check_card_uid(None, &uid, "r").is_ok());
        assert!(check_card_uid(Some("04:a1:b2:c3"), &uid, "r").is_ok());
        let e = check_card_uid(Some("DEADBEEF"), &uid, "r").expect_err("other card");
        assert_eq!(e.kind, ErrorType::CredentialCannotBeReissued);
    }
}
