//! Job errors, mapped to the cloud's stable error types (docs/cloud-protocol.md §6).
//!
//! [`JobError::name`] is the cloud's error type; `Display` is a sentence for a person at a
//! front desk; [`JobError::detail`] is for engineers (step, block, status word, APDU count).
//! No variant carries key bytes or MACs.

use std::fmt;

use crate::card::CardType;
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
}

impl Incompatibility {
    /// Stable sub-code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotMifareClassic(_) => "not_mifare_classic",
            Self::NoRoom => "no_free_sectors",
            Self::SectorsLocked => "sectors_locked",
            Self::DirectoryLocked => "directory_locked",
            Self::UnknownFormat => "unknown_format_version",
        }
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
    /// Stable sub-code.
    pub fn code(self) -> &'static str {
        match self {
            Self::ReadBackMismatch => "read_back_mismatch",
            Self::CardPayloadCorrupt => "card_payload_corrupt",
            Self::DirectoryCorrupt => "directory_corrupt",
            Self::LayoutCorrupt => "layout_corrupt",
            Self::CommandRejected => "command_rejected",
            Self::UnexpectedResponse => "unexpected_response",
            Self::UidUnavailable => "uid_unavailable",
            Self::InvalidCredential => "invalid_credential",
            Self::TransmitFailed => "transmit_failed",
            Self::KeyError => "key_error",
        }
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
        Incompatibility::NoRoom => "This card has no room left for the credential.",
        Incompatibility::SectorsLocked | Incompatibility::DirectoryLocked => {
            "This card is locked by another system. Use another card."
        }
        Incompatibility::UnknownFormat => {
            "This card was written by a newer version of the software."
        }
    }
}

impl JobError {
    /// The cloud's stable error type.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NoCard(_) => "no_card_on_encoder",
            Self::Incompatible { .. } => "incompatible_card_format",
            Self::EncodingInterrupted(_) => "encoding_interrupted",
            Self::EncoderNotOnline(_) => "encoder_not_online",
            Self::CommunicationTimeout(_) => "encoder_communication_timeout",
            Self::Uncategorized { .. } => "uncategorized_error",
        }
    }

    /// A stable sub-code, where the type has one (e.g. `read_back_mismatch`).
    pub fn sub_code(&self) -> Option<&'static str> {
        match self {
            Self::Incompatible { reason, .. } => Some(reason.code()),
            Self::Uncategorized { code, .. } => Some(code.code()),
            _ => None,
        }
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
