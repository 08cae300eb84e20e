//! Job errors, mapped to the cloud's stable error types (docs/cloud-protocol.md §6); the
//! names themselves are spelled in [`crate::cloud_error`].
//!
//! [`JobError::name`] is the cloud's error type; `Display` is a sentence for a person at a
//! front desk; [`JobError::detail`] is for engineers (step, block, status word, APDU count).
//! No variant carries key bytes or MACs.

use std::fmt;

use crate::card::CardType;
use crate::cloud_error::{CloudError, ErrorType, SubCode};
use crate::status::StatusWord;

/// Where in a job something happened, for engineers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Detail {
    /// The job step, e.g. `"read_mad"`, `"write_record"`.
    pub step: &'static str,
    /// The block concerned, if any.
    pub block: Option<u8>,
    /// The status word the reader answered, if any.
    pub status: Option<StatusWord>,
    /// APDUs sent by the job so far.
    pub apdus: usize,
    /// Free text (never secrets).
    pub note: String,
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step={}", self.step)?;
        if let Some(block) = self.block {
            write!(f, " block={block}")?;
        }
        if let Some(sw) = self.status {
            write!(f, " sw={sw}")?;
        }
        write!(f, " apdus={}", self.apdus)?;
        if !self.note.is_empty() {
            write!(f, ": {}", self.note)?;
        }
        Ok(())
    }
}

/// Why a card is incompatible (sub-code of `incompatible_card_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incompatibility {
    /// Not a MIFARE Classic card.
    NotMifareClassic(CardType),
    /// Not enough free sectors for our application.
    NoRoom,
    /// Our sectors (or the sectors we would use) are locked by keys this site does not hold.
    SectorsLocked,
    /// The MAD sector is locked by keys this site does not hold, or is unreadable.
    DirectoryLocked,
    /// A record of a format version this software does not know.
    UnknownFormat,
    /// A `DESFire` card without room for our application.
    NoRoomDesfire,
    /// Creating our application needs a PICC master key this site cannot derive.
    PiccKeyUnknown,
    /// Our `DESFire` application is there, with keys this site cannot derive.
    ApplicationKeyUnknown,
    /// A `DESFire` EV0 (MF3ICD40), which has no AES.
    Ev0NotSupported,
    /// An ISO 14443-4 card that is not a `DESFire`.
    NotDesfire,
    /// A medium the site does not write (`[media]`).
    MediaNotEnabled(CardType),
}

impl Incompatibility {
    /// The stable sub-code.
    pub fn sub_code(self) -> SubCode {
        match self {
            Self::NotMifareClassic(_) => SubCode::NotMifareClassic,
            Self::NoRoom => SubCode::NoFreeSectors,
            Self::SectorsLocked => SubCode::SectorsLocked,
            Self::DirectoryLocked => SubCode::DirectoryLocked,
            Self::UnknownFormat => SubCode::UnknownFormatVersion,
            Self::NoRoomDesfire => SubCode::NoRoom,
            Self::PiccKeyUnknown => SubCode::PiccKeyUnknown,
            Self::ApplicationKeyUnknown => SubCode::ApplicationKeyUnknown,
            Self::Ev0NotSupported => SubCode::Ev0NotSupported,
            Self::NotDesfire => SubCode::NotDesfire,
            Self::MediaNotEnabled(_) => SubCode::MediaNotEnabled,
        }
    }

    /// Its stable name.
    pub fn code(self) -> &'static str {
        self.sub_code().name()
    }
}

/// Sub-codes of `uncategorized_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Uncategorized {
    /// What was read back differs from what was written.
    ReadBackMismatch,
    /// Our record is present but fails verification (torn or tampered) and no valid one is left.
    CardPayloadCorrupt,
    /// The MAD fails its CRC or is inconsistent.
    DirectoryCorrupt,
    /// Our sectors in the MAD do not form a valid layout (odd count...).
    LayoutCorrupt,
    /// The reader refused a command with an unexpected status word.
    CommandRejected,
    /// The reader's answer had an unexpected shape (too short, wrong length).
    UnexpectedResponse,
    /// No usable UID.
    UidUnavailable,
    /// The credential cannot be put on a card (bad id, too large...).
    InvalidCredential,
    /// The transport failed for a reason other than removal, timeout or unplugging.
    TransmitFailed,
    /// Key derivation failed.
    KeyError,
}

impl Uncategorized {
    /// The stable sub-code.
    pub fn sub_code(self) -> SubCode {
        match self {
            Self::ReadBackMismatch => SubCode::ReadBackMismatch,
            Self::CardPayloadCorrupt => SubCode::CardPayloadCorrupt,
            Self::DirectoryCorrupt => SubCode::DirectoryCorrupt,
            Self::LayoutCorrupt => SubCode::LayoutCorrupt,
            Self::CommandRejected => SubCode::CommandRejected,
            Self::UnexpectedResponse => SubCode::UnexpectedResponse,
            Self::UidUnavailable => SubCode::UidUnavailable,
            Self::InvalidCredential => SubCode::InvalidCredential,
            Self::TransmitFailed => SubCode::TransmitFailed,
            Self::KeyError => SubCode::KeyError,
        }
    }

    /// Its stable name.
    pub fn code(self) -> &'static str {
        self.sub_code().name()
    }

    fn message(self) -> &'static str {
        match self {
            Self::ReadBackMismatch => {
                "The card did not keep what was written. Try again or use another card."
            }
            Self::CardPayloadCorrupt => {
                "The credential on this card is damaged. Encode the card again."
            }
            Self::DirectoryCorrupt | Self::LayoutCorrupt => {
                "The card's directory is damaged. Use another card."
            }
            Self::CommandRejected | Self::UnexpectedResponse | Self::TransmitFailed => {
                "The encoder reported an error. Try again."
            }
            Self::UidUnavailable => "The card could not be read. Place it again on the encoder.",
            Self::InvalidCredential => "This credential cannot be written to a card.",
            Self::KeyError => "The site keys are not usable for this card.",
        }
    }
}

/// A failed job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// No card, or the card left before anything was written.
    #[error("No card on the encoder. Place a card on the encoder and try again.")]
    NoCard(Detail),
    /// The card cannot carry our credential.
    #[error("{}", incompatible_message(*.reason))]
    Incompatible {
        /// Why.
        reason: Incompatibility,
        /// Where.
        detail: Detail,
    },
    /// The card was removed after the first write and before verification completed.
    #[error(
        "The card was removed while it was being encoded. Place it back on the encoder and encode it again."
    )]
    EncodingInterrupted(Detail),
    /// The reader is gone (unplugged, pcscd down, serial device gone).
    #[error("The encoder is not connected.")]
    EncoderNotOnline(Detail),
    /// The reader stopped answering.
    #[error("The encoder stopped responding.")]
    CommunicationTimeout(Detail),
    /// Anything else.
    #[error("{}", .code.message())]
    Uncategorized {
        /// Stable sub-code.
        code: Uncategorized,
        /// Where.
        detail: Detail,
    },
}

fn incompatible_message(reason: Incompatibility) -> &'static str {
    match reason {
        Incompatibility::NotMifareClassic(_) => {
            "This card type is not supported. Use a MIFARE Classic card."
        }
        Incompatibility::NoRoom | Incompatibility::NoRoomDesfire => {
            "This card has no room left for the credential."
        }
        Incompatibility::Ev0NotSupported => {
            "This DESFire card is too old (no AES). Use a DESFire EV1, EV2 or EV3 card."
        }
        Incompatibility::NotDesfire => {
            "This card type is not supported. Use a MIFARE Classic or DESFire card."
        }
        Incompatibility::MediaNotEnabled(_) => {
            "This site does not write this card type. Use another card."
        }
        Incompatibility::SectorsLocked
        | Incompatibility::DirectoryLocked
        | Incompatibility::PiccKeyUnknown
        | Incompatibility::ApplicationKeyUnknown => {
            "This card is locked by another system. Use another card."
        }
        Incompatibility::UnknownFormat => {
            "This card was written by a newer version of the software."
        }
    }
}

impl JobError {
    /// The cloud's error type.
    pub fn error_type(&self) -> ErrorType {
        match self {
            Self::NoCard(_) => ErrorType::NoCardOnEncoder,
            Self::Incompatible { .. } => ErrorType::IncompatibleCardFormat,
            Self::EncodingInterrupted(_) => ErrorType::EncodingInterrupted,
            Self::EncoderNotOnline(_) => ErrorType::EncoderNotOnline,
            Self::CommunicationTimeout(_) => ErrorType::EncoderCommunicationTimeout,
            Self::Uncategorized { .. } => ErrorType::UncategorizedError,
        }
    }

    /// The cloud's stable error type, by name.
    pub fn name(&self) -> &'static str {
        self.error_type().name()
    }

    /// The stable sub-code, where the type has one.
    pub fn sub_code_value(&self) -> Option<SubCode> {
        match self {
            Self::Incompatible { reason, .. } => Some(reason.sub_code()),
            Self::Uncategorized { code, .. } => Some(code.sub_code()),
            _ => None,
        }
    }

    /// A stable sub-code, where the type has one (e.g. `read_back_mismatch`).
    pub fn sub_code(&self) -> Option<&'static str> {
        self.sub_code_value().map(SubCode::name)
    }

    /// The error as the cloud is told of it; `reader` goes into the engineers' detail.
    pub fn to_cloud(&self, reader: &str) -> CloudError {
        CloudError::new(
            self.error_type(),
            self.sub_code_value(),
            self.to_string(),
            format!("{} on reader \"{reader}\"", self.detail()),
        )
    }

    /// Step, block, status word and APDU count.
    pub fn detail_info(&self) -> &Detail {
        match self {
            Self::NoCard(d)
            | Self::EncodingInterrupted(d)
            | Self::EncoderNotOnline(d)
            | Self::CommunicationTimeout(d) => d,
            Self::Incompatible { detail, .. } | Self::Uncategorized { detail, .. } => detail,
        }
    }

    /// The engineers' line: type, sub-code, step, block, status word.
    pub fn detail(&self) -> String {
        match self.sub_code() {
            Some(sub) => format!("{}/{}: {}", self.name(), sub, self.detail_info()),
            None => format!("{}: {}", self.name(), self.detail_info()),
        }
    }

    /// APDUs the job sent before failing.
    pub fn apdu_count(&self) -> usize {
        self.detail_info().apdus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_detail() {
        let d = Detail {
            step: "write_record",
            block: Some(5),
            status: Some(StatusWord::OperationFailed),
            apdus: 12,
            note: String::new(),
        };
        let e = JobError::Uncategorized {
            code: Uncategorized::ReadBackMismatch,
            detail: d.clone(),
        };
        assert_eq!(e.name(), "uncategorized_error");
        assert_eq!(
            e.detail(),
            "uncategorized_error/read_back_mismatch: step=write_record block=5 sw=63 00 apdus=12"
        );
        assert_eq!(
            JobError::EncodingInterrupted(d.clone()).name(),
            "encoding_interrupted"
        );
        assert_eq!(JobError::NoCard(d.clone()).name(), "no_card_on_encoder");
        assert_eq!(
            JobError::EncoderNotOnline(d.clone()).name(),
            "encoder_not_online"
        );
        assert_eq!(
            JobError::CommunicationTimeout(d.clone()).name(),
            "encoder_communication_timeout"
        );
        let inc = JobError::Incompatible {
            reason: Incompatibility::NotMifareClassic(CardType::Iso14443_4),
            detail: d,
        };
        assert_eq!(inc.name(), "incompatible_card_format");
        assert_eq!(inc.sub_code(), Some("not_mifare_classic"));
        assert!(!inc.to_string().is_empty());
    }
}
