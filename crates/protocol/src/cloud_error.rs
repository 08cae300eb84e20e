//! The cloud's error types and their stable sub-codes (docs/cloud-protocol.md §6):
//! the one place their names are spelled.
//!
//! The protocol's [`JobError`](crate::error::JobError), the hal's error kinds and the bridge's
//! own failures (card wait, deadline, lease, restart) all map into a [`CloudError`]; the
//! bridge's cloud module turns that into the wire message. A name here is part of the
//! protocol: integrators match on it, so a name never changes once released (the round-trip
//! tests below pin every one of them).

use std::fmt;

/// Declares a fieldless enum with a stable name per variant, `ALL`, `name` and `from_name`.
macro_rules! named {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $( $(#[$vmeta])* $variant, )+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )+ ];

            /// The stable name on the wire.
            pub fn name(self) -> &'static str {
                match self { $( Self::$variant => $text, )+ }
            }

            /// The value named `name`, if any.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $( $text => Some(Self::$variant), )+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named! {
    /// The error types an action attempt can end with (docs/cloud-protocol.md §3).
    pub enum ErrorType {
        /// No card came within the wait, or it left before anything was written.
        NoCardOnEncoder => "no_card_on_encoder",
        /// The card cannot carry our credential (type, room, keys, format version).
        IncompatibleCardFormat => "incompatible_card_format",
        /// The card left (or the bridge restarted) after the first write, before verification.
        EncodingInterrupted => "encoding_interrupted",
        /// The encoder is unplugged, pcscd is down, the serial device is gone.
        EncoderNotOnline => "encoder_not_online",
        /// The encoder stopped answering.
        EncoderCommunicationTimeout => "encoder_communication_timeout",
        /// The attempt's deadline or lease passed before the card was done.
        ActionAttemptExpired => "action_attempt_expired",
        /// The credential is already on another card (`credential.card_uid`).
        CredentialCannotBeReissued => "credential_cannot_be_reissued",
        /// Anything else; the sub-code says what.
        UncategorizedError => "uncategorized_error",
    }
}

named! {
    /// Stable machine names that refine an [`ErrorType`] (`sub_code` on the wire).
    pub enum SubCode {
        // incompatible_card_format
        /// Not a MIFARE Classic card.
        NotMifareClassic => "not_mifare_classic",
        /// Not enough free sectors for our application.
        NoFreeSectors => "no_free_sectors",
        /// Our sectors are locked by keys this site does not hold.
        SectorsLocked => "sectors_locked",
        /// The directory sector is locked by keys this site does not hold.
        DirectoryLocked => "directory_locked",
        /// A record of a format version this software does not know.
        UnknownFormatVersion => "unknown_format_version",
        /// A `DESFire` card without room for our application (memory or application count).
        NoRoom => "no_room",
        /// Creating our application needs a PICC master key this site cannot derive.
        PiccKeyUnknown => "picc_key_unknown",
        /// Our application is on the card with keys this site cannot derive.
        ApplicationKeyUnknown => "application_key_unknown",
        /// A first-generation `DESFire` (MF3ICD40): no AES.
        Ev0NotSupported => "ev0_not_supported",
        /// An ISO 14443-4 card that does not answer as a `DESFire`.
        NotDesfire => "not_desfire",
        /// A card of a medium the site does not write (`[media]` in the configuration).
        MediaNotEnabled => "media_not_enabled",
        // uncategorized_error, from a job
        /// What was read back differs from what was written.
        ReadBackMismatch => "read_back_mismatch",
        /// Our record is present but no copy verifies.
        CardPayloadCorrupt => "card_payload_corrupt",
        /// The MAD fails its CRC or is inconsistent.
        DirectoryCorrupt => "directory_corrupt",
        /// Our sectors do not form a valid layout.
        LayoutCorrupt => "layout_corrupt",
        /// The reader refused a command with an unexpected status word.
        CommandRejected => "command_rejected",
        /// The reader's answer had an unexpected shape.
        UnexpectedResponse => "unexpected_response",
        /// No usable UID.
        UidUnavailable => "uid_unavailable",
        /// The credential cannot be put on a card.
        InvalidCredential => "invalid_credential",
        /// The transport failed for another reason.
        TransmitFailed => "transmit_failed",
        /// Key derivation failed.
        KeyError => "key_error",
        // the bridge's own
        /// No card came within the card wait.
        CardWaitTimeout => "card_wait_timeout",
        /// The attempt's deadline passed.
        DeadlinePassed => "deadline_passed",
        /// The claim's lease lapsed (cloud unreachable) before the card was touched.
        LeaseLapsed => "lease_lapsed",
        /// After a restart mid-write, no card came for the verifying scan.
        NotVerified => "not_verified",
        /// After a restart mid-write, the card does not hold this attempt's credential.
        InterruptedByRestart => "interrupted_by_restart",
        /// The credential was written to another card.
        CredentialOnAnotherCard => "credential_on_another_card",
        /// The bridge cannot record its work durably.
        StateStoreFailed => "state_store_failed",
        // the hardware layer's kinds (encoder_hal::ErrorKind)
        /// The card left the field during a session.
        CardRemoved => "card_removed",
        /// The card was reset by another application.
        CardReset => "card_reset",
        /// No card in the field.
        NoCard => "no_card",
        /// Another application holds the reader.
        ReaderBusy => "reader_busy",
        /// The reader or card did not answer in time.
        Timeout => "timeout",
        /// pcscd is not running.
        NoService => "no_service",
        /// The reader is unplugged or the serial device gone.
        ReaderUnavailable => "reader_unavailable",
        /// The system or polkit refused access.
        PermissionDenied => "permission_denied",
        /// The operation was cancelled.
        Cancelled => "cancelled",
        /// The reader sent something that makes no sense.
        ProtocolError => "protocol_error",
        /// Anything else the transport reported.
        Other => "other",
    }
}

/// A failure as the cloud is told of it: type, sub-code, a sentence for the person at the
/// front desk, and a line for engineers (step, block, status word, reader; never key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudError {
    /// The error type.
    pub kind: ErrorType,
    /// The refinement, where there is one.
    pub sub_code: Option<SubCode>,
    /// For a person at the front desk.
    pub message: String,
    /// For engineers.
    pub detail: String,
}

impl CloudError {
    /// A new error.
    pub fn new(
        kind: ErrorType,
        sub_code: impl Into<Option<SubCode>>,
        message: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            sub_code: sub_code.into(),
            message: message.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sub_code {
            Some(sub) => write!(f, "{}/{sub}: {}", self.kind, self.message),
            None => write!(f, "{}: {}", self.kind, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_type_round_trips() {
        for t in ErrorType::ALL {
            assert_eq!(ErrorType::from_name(t.name()), Some(*t));
        }
        assert_eq!(ErrorType::ALL.len(), 8);
        assert_eq!(ErrorType::from_name("no_credential_on_encoder"), None);
    }

    #[test]
    fn every_sub_code_round_trips_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for s in SubCode::ALL {
            assert_eq!(SubCode::from_name(s.name()), Some(*s));
            assert!(seen.insert(s.name()), "{s} twice");
            assert!(
                s.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{s}"
            );
        }
    }

    #[test]
    fn display_names_type_and_sub_code() {
        let e = CloudError::new(
            ErrorType::NoCardOnEncoder,
            SubCode::CardWaitTimeout,
            "No card.",
            "waited",
        );
        assert_eq!(
            e.to_string(),
            "no_card_on_encoder/card_wait_timeout: No card."
        );
    }
}
