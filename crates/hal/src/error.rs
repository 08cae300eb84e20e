//! Typed errors of the hardware layer.
//!
//! Every error keeps the *kind* of the underlying failure (the retry policy of the daemon and
//! the cloud's error type depend on it) and carries a one-line hint a person can act on, in the
//! manner of probe-rs. Nothing here ever holds key material: errors are built from status codes
//! and reader names only.

use std::fmt;

use encoder_protocol::cloud_error::{CloudError, ErrorType, SubCode};
use encoder_protocol::transmit::{TransmitError, TransmitErrorKind};

/// What went wrong, independent of the transport that reported it.
///
/// The names returned by [`ErrorKind::name`] are stable: logs, JSON output and tests match on
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The card left the field (or was removed and put back) while a session was open.
    CardRemoved,
    /// The card was reset by another application; the session lost its state.
    CardReset,
    /// No card came within the wait.
    NoCard,
    /// The reader is held by another application (sharing violation).
    Busy,
    /// The reader or card stopped answering within its time limit.
    Timeout,
    /// The PC/SC service (pcscd) is not running or went away.
    NoService,
    /// The reader is unplugged, or the serial device is gone.
    ReaderUnavailable,
    /// The operating system or polkit refused access.
    Permission,
    /// The wait was cancelled (shutdown).
    Cancelled,
    /// The reader answered with something that makes no sense (garbage frame, bad length).
    Protocol,
    /// Anything else the transport reported.
    Other,
}

impl ErrorKind {
    /// The stable sub-code of this kind (its name is the kind's stable name).
    pub fn sub_code(self) -> SubCode {
        match self {
            Self::CardRemoved => SubCode::CardRemoved,
            Self::CardReset => SubCode::CardReset,
            Self::NoCard => SubCode::NoCard,
            Self::Busy => SubCode::ReaderBusy,
            Self::Timeout => SubCode::Timeout,
            Self::NoService => SubCode::NoService,
            Self::ReaderUnavailable => SubCode::ReaderUnavailable,
            Self::Permission => SubCode::PermissionDenied,
            Self::Cancelled => SubCode::Cancelled,
            Self::Protocol => SubCode::ProtocolError,
            Self::Other => SubCode::Other,
        }
    }

    /// Stable machine name of this kind.
    pub fn name(self) -> &'static str {
        self.sub_code().name()
    }

    /// The cloud's error type for a failure of this kind outside a card operation (waiting for
    /// the card, opening it): a card that left is `no_card_on_encoder`, a reader that is gone
    /// `encoder_not_online`, a silent one `encoder_communication_timeout`.
    pub fn error_type(self) -> ErrorType {
        match self {
            Self::CardRemoved | Self::CardReset | Self::NoCard => ErrorType::NoCardOnEncoder,
            Self::NoService | Self::ReaderUnavailable | Self::Permission => {
                ErrorType::EncoderNotOnline
            }
            Self::Timeout => ErrorType::EncoderCommunicationTimeout,
            Self::Busy | Self::Cancelled | Self::Protocol | Self::Other => {
                ErrorType::UncategorizedError
            }
        }
    }

    /// A one-line hint a person at the machine can act on.
    pub fn hint(self) -> &'static str {
        match self {
            Self::CardRemoved => "keep the card on the encoder until the operation finishes",
            Self::CardReset => "another program reset the card; close other smart-card tools",
            Self::NoCard => "place a card on the encoder",
            Self::Busy => {
                "another program holds the reader; stop it (e.g. pcsc_scan, a browser extension)"
            }
            Self::Timeout => "the reader stopped answering; unplug it and plug it back in",
            Self::NoService => {
                "pcscd is not running: `systemctl start pcscd.socket` (package pcscd)"
            }
            Self::ReaderUnavailable => {
                "the reader is unplugged; check the USB cable (and `lsusb`), it will be used again when it returns"
            }
            Self::Permission => {
                "access denied: install the polkit rule for pcscd or add the service user to the device's group (see README, Troubleshooting)"
            }
            Self::Cancelled => "the operation was cancelled because the bridge is stopping",
            Self::Protocol => {
                "the reader sent an unexpected answer; check the cable and the baud rate"
            }
            Self::Other => "see the log for details",
        }
    }

    /// The transport-level kind the protocol crate classifies cloud errors by.
    pub fn transmit_kind(self) -> TransmitErrorKind {
        match self {
            Self::CardRemoved | Self::CardReset | Self::NoCard => TransmitErrorKind::CardRemoved,
            Self::NoService | Self::ReaderUnavailable | Self::Permission => {
                TransmitErrorKind::ReaderUnavailable
            }
            Self::Timeout => TransmitErrorKind::Timeout,
            Self::Busy | Self::Cancelled | Self::Protocol | Self::Other => TransmitErrorKind::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error of the hardware layer: a kind, the reader it concerns, and what the transport said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HalError {
    kind: ErrorKind,
    reader: Option<String>,
    detail: String,
}

impl HalError {
    /// A new error of `kind`, with a detail for engineers (never key material).
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            reader: None,
            detail: detail.into(),
        }
    }

    /// The same error, naming the reader it concerns.
    #[must_use]
    pub fn on_reader(mut self, reader: impl Into<String>) -> Self {
        self.reader = Some(reader.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The reader concerned, if known.
    pub fn reader(&self) -> Option<&str> {
        self.reader.as_deref()
    }

    /// What the transport reported, for engineers.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// A one-line hint a person can act on.
    pub fn hint(&self) -> &'static str {
        self.kind.hint()
    }

    /// This failure as the cloud is told of it, when it happened at `step` (e.g. "waiting for
    /// a card") outside a card operation.
    pub fn cloud_error(&self, step: &str) -> CloudError {
        let message = match self.kind.error_type() {
            ErrorType::NoCardOnEncoder => {
                "The card left the encoder before it could be read. Place it again and keep it there."
            }
            ErrorType::EncoderNotOnline => "The encoder is not connected.",
            ErrorType::EncoderCommunicationTimeout => "The encoder stopped responding.",
            _ => "The encoder reported an error. Try again.",
        };
        let reader = self.reader.as_deref().unwrap_or("?");
        CloudError::new(
            self.kind.error_type(),
            self.kind.sub_code(),
            message,
            format!(
                "{step} on reader \"{reader}\": {}: {}",
                self.kind, self.detail
            ),
        )
    }
}

impl fmt::Display for HalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reader {
            Some(reader) => write!(f, "{} on reader \"{reader}\": {}", self.kind, self.detail)?,
            None => write!(f, "{}: {}", self.kind, self.detail)?,
        }
        write!(f, " (hint: {})", self.kind.hint())
    }
}

impl std::error::Error for HalError {}

impl From<HalError> for TransmitError {
    fn from(error: HalError) -> Self {
        TransmitError::new(error.kind.transmit_kind(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ErrorKind; 11] = [
        ErrorKind::CardRemoved,
        ErrorKind::CardReset,
        ErrorKind::NoCard,
        ErrorKind::Busy,
        ErrorKind::Timeout,
        ErrorKind::NoService,
        ErrorKind::ReaderUnavailable,
        ErrorKind::Permission,
        ErrorKind::Cancelled,
        ErrorKind::Protocol,
        ErrorKind::Other,
    ];

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut names: Vec<_> = ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }

    #[test]
    fn every_error_carries_a_hint_in_its_message() {
        for kind in ALL {
            let error = HalError::new(kind, "detail").on_reader("R 00");
            let text = error.to_string();
            assert!(text.contains("hint: "), "{text}");
            assert!(text.contains("R 00"), "{text}");
            assert!(!kind.hint().is_empty());
        }
    }

    #[test]
    fn transport_kinds_map_to_the_cloud_classes() {
        assert_eq!(
            ErrorKind::CardRemoved.transmit_kind(),
            TransmitErrorKind::CardRemoved
        );
        assert_eq!(
            ErrorKind::NoService.transmit_kind(),
            TransmitErrorKind::ReaderUnavailable
        );
        assert_eq!(
            ErrorKind::ReaderUnavailable.transmit_kind(),
            TransmitErrorKind::ReaderUnavailable
        );
        assert_eq!(
            ErrorKind::Timeout.transmit_kind(),
            TransmitErrorKind::Timeout
        );
    }
}
