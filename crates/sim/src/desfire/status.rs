//! The card's native status codes: the second status byte of a wrapped answer (`91 xx`) or
//! the first byte of a native one (docs/reference/desfire-card.md §1).

/// A DESFire status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Success.
    Ok = 0x00,
    /// Success, nothing to commit or abort.
    NoChanges = 0x0C,
    /// Out of EEPROM.
    OutOfMemory = 0x0E,
    /// Command code not supported.
    IllegalCommand = 0x1C,
    /// CRC, MAC or padding wrong.
    IntegrityError = 0x1E,
    /// No such key.
    NoSuchKey = 0x40,
    /// Wrong command length.
    LengthError = 0x7E,
    /// The configuration or state does not allow the command.
    PermissionDenied = 0x9D,
    /// A parameter is invalid.
    ParameterError = 0x9E,
    /// The application does not exist.
    ApplicationNotFound = 0xA0,
    /// Authentication failed, or the command needs an authentication.
    AuthenticationError = 0xAE,
    /// More frames follow (either way).
    AdditionalFrame = 0xAF,
    /// Beyond the end of the file.
    BoundaryError = 0xBE,
    /// The previous command was not completed (frames missing).
    CommandAborted = 0xCA,
    /// Too many applications.
    CountError = 0xCE,
    /// The application or file exists already.
    DuplicateError = 0xDE,
    /// The file does not exist.
    FileNotFound = 0xF0,
}

impl Status {
    /// Every status, for round trips.
    pub const ALL: [Self; 17] = [
        Self::Ok,
        Self::NoChanges,
        Self::OutOfMemory,
        Self::IllegalCommand,
        Self::IntegrityError,
        Self::NoSuchKey,
        Self::LengthError,
        Self::PermissionDenied,
        Self::ParameterError,
        Self::ApplicationNotFound,
        Self::AuthenticationError,
        Self::AdditionalFrame,
        Self::BoundaryError,
        Self::CommandAborted,
        Self::CountError,
        Self::DuplicateError,
        Self::FileNotFound,
    ];

    /// The byte on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The status of a byte, if it is one this card sends.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Whether the command succeeded (00 or 0C).
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Ok | Self::NoChanges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_over_all_bytes() {
        for code in 0..=u8::MAX {
            if let Some(s) = Status::from_code(code) {
                assert_eq!(s.code(), code);
            }
        }
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s));
        }
    }
}
