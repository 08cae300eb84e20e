//! What an encoder's runner is asked to do ([`CardJob`]) and what it answers ([`JobReport`]):
//! the bridge's domain, free of the cloud's wire format (docs/architecture.md §3).
//!
//! The cloud module turns an `attempt_available` into a [`CardJob`] and a [`JobReport`] into a
//! `result` message (`cloud/translate.rs`); the operator commands build [`CardJob`]s directly.
//! Times are unix seconds or [`SystemTime`]s, UIDs bytes, errors [`CloudError`]s.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::SystemTime;

use encoder_protocol::card::CardType;
use encoder_protocol::cloud_error::CloudError;
use encoder_protocol::format::{CardCredential, Credential};
use encoder_protocol::hex;
use encoder_protocol::job::ScanOutcome;

use crate::store::Writing;

/// One job for one encoder.
#[derive(Debug, Clone)]
pub struct CardJob {
    /// The id it is known by (the action attempt's id; the operator commands use `local`).
    pub id: String,
    /// What to do.
    pub action: JobAction,
    /// When the attempt expires (the grant's deadline, else the offer's `expires_at`).
    pub deadline: Option<SystemTime>,
    /// The claim's lease expiry in unix milliseconds on the local clock (the cloud's time
    /// corrected by the measured skew), kept current by the session; 0: not checked.
    pub lease: Arc<AtomicI64>,
}

/// The id prefix of operator jobs (`encoder-bridge scan` and `encode`): they are not
/// attempts, so nothing about them is stored and nothing reported to the cloud.
pub const LOCAL_PREFIX: &str = "local-";

impl CardJob {
    /// An operator job (a new `local-…` id, no deadline, no lease).
    pub fn local(action: JobAction) -> Self {
        Self {
            id: format!("{LOCAL_PREFIX}{}", uuid::Uuid::new_v4()),
            action,
            deadline: None,
            lease: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Whether this is an operator job rather than a cloud attempt.
    pub fn is_local(&self) -> bool {
        self.id.starts_with(LOCAL_PREFIX)
    }
}

/// What a job does.
#[derive(Debug, Clone)]
pub enum JobAction {
    /// Read the card and the credential on it.
    Scan,
    /// Write a credential, read it back.
    Encode(EncodeRequest),
    /// The bridge restarted while this encode was writing: scan and compare, never rewrite
    /// (docs/cloud-protocol.md §5).
    Verify {
        /// The encode that was cut off.
        request: EncodeRequest,
        /// What it was writing, as stored just before the first card write.
        writing: Writing,
    },
}

impl JobAction {
    /// The kind of action, for the report.
    pub fn kind(&self) -> ActionKind {
        match self {
            Self::Scan => ActionKind::Scan,
            Self::Encode(_) | Self::Verify { .. } => ActionKind::Encode,
        }
    }
}

/// Scan or encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// A scan.
    Scan,
    /// An encode.
    Encode,
}

/// An encode as asked for.
#[derive(Debug, Clone)]
pub struct EncodeRequest {
    /// The credential, or why it cannot be written (reported once a card is on the encoder,
    /// as any other card error).
    pub credential: Result<CredentialSpec, CloudError>,
    /// The UID (hex, upper case) of the card this credential was already written to, if any:
    /// it goes on no other card.
    pub card_uid: Option<String>,
}

/// A credential before it meets a card: its card number may still have to come from the UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSpec {
    /// The credential id (UUID text, lower case).
    pub credential_id: String,
    /// The card number, 1 to 10 digits; `None`: derived from the UID ([`card_number_for`]).
    pub card_number: Option<String>,
    /// Valid from (unix seconds).
    pub starts_at: Option<i64>,
    /// Valid until (unix seconds).
    pub ends_at: Option<i64>,
    /// Issue counter.
    pub issue_counter: u16,
    /// Opaque access data.
    pub access_data: Vec<u8>,
}

impl CredentialSpec {
    /// The credential to write on the card with `uid`.
    pub fn for_card(&self, uid: &[u8]) -> Credential {
        Credential {
            credential_id: self.credential_id.clone(),
            card_number: card_number_for(self.card_number.as_deref(), uid),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            issue_counter: self.issue_counter,
            access_data: self.access_data.clone(),
        }
    }
}

/// The card number given, or the decimal of the UID's last four bytes.
pub fn card_number_for(given: Option<&str>, uid: &[u8]) -> String {
    if let Some(n) = given {
        return n.to_owned();
    }
    let tail = uid.get(uid.len().saturating_sub(4)..).unwrap_or_default();
    tail.iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        .to_string()
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobReport {
    /// A result to report.
    Done {
        /// When the card was done.
        finished_at: SystemTime,
        /// Success or the error.
        outcome: Result<Success, CloudError>,
    },
    /// Cancelled before the card was touched: nothing to report.
    Cancelled,
}

impl JobReport {
    /// A report finished now.
    pub fn now(outcome: Result<Success, CloudError>) -> Self {
        Self::Done {
            finished_at: SystemTime::now(),
            outcome,
        }
    }

    /// The error, if the job failed.
    pub fn error(&self) -> Option<&CloudError> {
        match self {
            Self::Done {
                outcome: Err(e), ..
            } => Some(e),
            _ => None,
        }
    }
}

/// What a successful job found or wrote.
#[derive(Debug, Clone, PartialEq)]
pub enum Success {
    /// The credential is on the card and was read back.
    Encoded {
        /// What the card holds now.
        written: CardCredential,
        /// The card's UID.
        uid: Vec<u8>,
        /// The card's type.
        card_type: CardType,
        /// Whether this encode formatted the card; `None` when unknown (verified after a
        /// restart).
        first_encode: Option<bool>,
    },
    /// What a scan found.
    Scanned(ScanOutcome),
}

fn time_text(unix: Option<i64>) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp(unix?).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

fn credential_text(out: &mut String, written: &CardCredential) {
    use std::fmt::Write as _;
    let c = &written.credential;
    let _ = writeln!(out, "acs_credential_id: {}", c.credential_id);
    let _ = writeln!(out, "card_number: {}", c.card_number);
    for (key, value) in [("starts_at", c.starts_at), ("ends_at", c.ends_at)] {
        if let Some(text) = time_text(value) {
            let _ = writeln!(out, "{key}: {text}");
        }
    }
    let _ = writeln!(out, "issue_counter: {}", c.issue_counter);
    let _ = writeln!(out, "key_version: {}", written.key_version);
}

impl JobReport {
    /// The report for a person, as `encoder-bridge scan` and `encode` print it (lines, each
    /// with its newline); `None` when the job was cancelled.
    pub fn describe(&self) -> Option<String> {
        use std::fmt::Write as _;
        let Self::Done { outcome, .. } = self else {
            return None;
        };
        let mut out = String::new();
        match outcome {
            Ok(Success::Scanned(scan)) => {
                let _ = writeln!(
                    out,
                    "card: {} uid {} ({})",
                    scan.card_type.name(),
                    hex::encode(&scan.uid),
                    scan.state.name()
                );
                match &scan.credential {
                    Some(written) => credential_text(&mut out, written),
                    None => out.push_str("credential: none of ours\n"),
                }
            }
            Ok(Success::Encoded {
                written,
                uid,
                card_type,
                first_encode,
            }) => {
                let _ = writeln!(out, "card: {} uid {}", card_type.name(), hex::encode(uid));
                credential_text(&mut out, written);
                let _ = writeln!(
                    out,
                    "written: format_version {} sequence {} first_encode {}",
                    written.format_version,
                    written.sequence,
                    first_encode.map_or_else(|| "unknown".to_owned(), |f| f.to_string())
                );
            }
            Err(e) => {
                let _ = writeln!(out, "failed: {} ({})", e.message, e.kind);
                if let Some(sub) = e.sub_code {
                    let _ = writeln!(out, "  sub_code: {sub}");
                }
                let _ = writeln!(out, "  detail:   {}", e.detail);
            }
        }
        Some(out)
    }
}
