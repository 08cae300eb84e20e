//! Status words (`SW1 SW2`) as a typed value, including the vendor variants of
//! docs/reference/pcsc-part3.md §2 (ACS answers `63 00` for every failure, Identiv/SCM use `69 8x`,
//! `6A 82`, `6C xx`).
//!
//! [`StatusWord::from_u16`] and [`StatusWord::to_u16`] round-trip every 16-bit value.

use std::fmt;

/// A response status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusWord {
    /// `90 00`: success.
    Success,
    /// `63 00`: ACS readers' answer to any failure, including a failed authentication.
    OperationFailed,
    /// `67 00`: wrong length (Lc or Le).
    WrongLength,
    /// `69 82`: security status not satisfied (Identiv: sector not authenticated).
    NotAuthenticated,
    /// `69 83`..`69 89`: key problems on Identiv/SCM readers (blocked, invalid, wrong key
    /// number...). Holds SW2.
    KeyProblem(u8),
    /// `6A 81`: function not supported.
    FunctionNotSupported,
    /// `6A 82`: no such block / file not found.
    BlockNotFound,
    /// `6B 00`: wrong P1 P2.
    WrongParameters,
    /// `6C xx`: wrong Le; SW2 holds the length the card would accept.
    WrongLe(u8),
    /// `6D 00`: instruction not supported.
    InstructionNotSupported,
    /// `6E 00`: class not supported.
    ClassNotSupported,
    /// `6F 00`: no precise diagnosis.
    NoDiagnosis,
    /// Anything else, as the raw 16-bit value.
    Other(u16),
}

impl StatusWord {
    /// Classifies a raw status word.
    pub fn from_u16(sw: u16) -> Self {
        let [sw1, sw2] = sw.to_be_bytes();
        match (sw1, sw2) {
            (0x90, 0x00) => Self::Success,
            (0x63, 0x00) => Self::OperationFailed,
            (0x67, 0x00) => Self::WrongLength,
            (0x69, 0x82) => Self::NotAuthenticated,
            (0x69, 0x83..=0x89) => Self::KeyProblem(sw2),
            (0x6A, 0x81) => Self::FunctionNotSupported,
            (0x6A, 0x82) => Self::BlockNotFound,
            (0x6B, 0x00) => Self::WrongParameters,
            (0x6C, _) => Self::WrongLe(sw2),
            (0x6D, 0x00) => Self::InstructionNotSupported,
            (0x6E, 0x00) => Self::ClassNotSupported,
            (0x6F, 0x00) => Self::NoDiagnosis,
            _ => Self::Other(sw),
        }
    }

    /// Classifies `SW1 SW2`.
    pub fn from_bytes(sw1: u8, sw2: u8) -> Self {
        Self::from_u16(u16::from_be_bytes([sw1, sw2]))
    }

    /// The raw 16-bit value.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Success => 0x9000,
            Self::OperationFailed => 0x6300,
            Self::WrongLength => 0x6700,
            Self::NotAuthenticated => 0x6982,
            Self::KeyProblem(sw2) => u16::from_be_bytes([0x69, sw2]),
            Self::FunctionNotSupported => 0x6A81,
            Self::BlockNotFound => 0x6A82,
            Self::WrongParameters => 0x6B00,
            Self::WrongLe(sw2) => u16::from_be_bytes([0x6C, sw2]),
            Self::InstructionNotSupported => 0x6D00,
            Self::ClassNotSupported => 0x6E00,
            Self::NoDiagnosis => 0x6F00,
            Self::Other(sw) => sw,
        }
    }

    /// `true` for `90 00`.
    pub fn is_success(self) -> bool {
        self == Self::Success
    }

    /// `true` for the answers readers give when a MIFARE authentication or an access
    /// condition check failed (ACS `63 00`, Identiv `69 82`..`69 89`). Such an answer means
    /// "wrong key or not allowed", not "broken reader".
    pub fn is_security_failure(self) -> bool {
        matches!(
            self,
            Self::OperationFailed | Self::NotAuthenticated | Self::KeyProblem(_)
        )
    }

    /// `true` when the reader does not know the command (typical of a card or reader that is
    /// not a PC/SC Part 3 MIFARE Classic path).
    pub fn is_unsupported(self) -> bool {
        matches!(
            self,
            Self::FunctionNotSupported
                | Self::InstructionNotSupported
                | Self::ClassNotSupported
                | Self::WrongParameters
        )
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [sw1, sw2] = self.to_u16().to_be_bytes();
        write!(f, "{sw1:02X} {sw2:02X}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_word_round_trips() {
        for raw in 0..=u16::MAX {
            assert_eq!(StatusWord::from_u16(raw).to_u16(), raw, "{raw:04X}");
        }
    }

    #[test]
    fn vendor_variants() {
        assert_eq!(
            StatusWord::from_bytes(0x63, 0x00),
            StatusWord::OperationFailed
        );
        assert_eq!(
            StatusWord::from_bytes(0x69, 0x85),
            StatusWord::KeyProblem(0x85)
        );
        assert_eq!(
            StatusWord::from_bytes(0x6C, 0x10),
            StatusWord::WrongLe(0x10)
        );
        assert!(StatusWord::from_u16(0x6982).is_security_failure());
        assert!(StatusWord::from_u16(0x6A81).is_unsupported());
        assert_eq!(StatusWord::Success.to_string(), "90 00");
    }
}
