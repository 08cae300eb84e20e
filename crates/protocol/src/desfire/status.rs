//! `DESFire` native status codes (the `SW2` of a wrapped answer `91 SW2`) as a typed value
//! (docs/reference/desfire.md §1, after NXP's data sheets as libfreefare and the Proxmark3
//! client spell them).
//!
//! [`Status::from_u8`] and [`Status::to_u8`] round-trip every byte.

use std::fmt;

/// Declares the status enum from `code => Variant, "name", "doc"` rows.
macro_rules! statuses {
    ($( $code:literal => $variant:ident, $name:literal, $doc:literal; )+) => {
        /// A `DESFire` status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Status {
            $( #[doc = $doc] $variant, )+
            /// A code this crate does not know.
            Other(u8),
        }

        impl Status {
            /// Classifies a status byte.
            pub fn from_u8(code: u8) -> Self {
                match code {
                    $( $code => Self::$variant, )+
                    other => Self::Other(other),
                }
            }

            /// The status byte.
            pub fn to_u8(self) -> u8 {
                match self {
                    $( Self::$variant => $code, )+
                    Self::Other(code) => code,
                }
            }

            /// Stable name, e.g. `permission_denied`.
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )+
                    Self::Other(_) => "unknown_status",
                }
            }
        }
    };
}

statuses! {
    0x00 => Ok, "ok", "`00`: success.";
    0x0C => NoChanges, "no_changes", "`0C`: success, nothing changed.";
    0x0E => OutOfEeprom, "out_of_eeprom", "`0E`: not enough memory.";
    0x1C => IllegalCommand, "illegal_command", "`1C`: command code not supported.";
    0x1E => IntegrityError, "integrity_error", "`1E`: CRC, MAC or padding wrong (the authentication is lost).";
    0x40 => NoSuchKey, "no_such_key", "`40`: key number not valid.";
    0x7E => LengthError, "length_error", "`7E`: command length wrong.";
    0x9D => PermissionDenied, "permission_denied", "`9D`: access rights forbid it.";
    0x9E => ParameterError, "parameter_error", "`9E`: a parameter is not valid.";
    0xA0 => ApplicationNotFound, "application_not_found", "`A0`: no such application.";
    0xA1 => ApplicationIntegrityError, "application_integrity_error", "`A1`: application data damaged.";
    0xAE => AuthenticationError, "authentication_error", "`AE`: authentication failed, or required.";
    0xAF => AdditionalFrame, "additional_frame", "`AF`: more frames follow (or are expected).";
    0xBE => BoundaryError, "boundary_error", "`BE`: beyond the end of the file.";
    0xC1 => PiccIntegrityError, "picc_integrity_error", "`C1`: PICC data damaged.";
    0xCA => CommandAborted, "command_aborted", "`CA`: a chained command was not finished.";
    0xCD => PiccDisabled, "picc_disabled", "`CD`: the PICC is disabled.";
    0xCE => CountError, "count_error", "`CE`: too many applications (28 on EV1).";
    0xDE => DuplicateError, "duplicate_error", "`DE`: the application or file exists already.";
    0xEE => EepromError, "eeprom_error", "`EE`: memory error, the write was rolled back.";
    0xF0 => FileNotFound, "file_not_found", "`F0`: no such file.";
    0xF1 => FileIntegrityError, "file_integrity_error", "`F1`: file data damaged.";
}

impl Status {
    /// `00` or `0C`: the command succeeded.
    pub fn is_success(self) -> bool {
        matches!(self, Self::Ok | Self::NoChanges)
    }

    /// Whether the card dropped the authentication with this answer: every error does
    /// (docs/reference/desfire.md §3); success and `AF` do not.
    pub fn ends_authentication(self) -> bool {
        !self.is_success() && self != Self::AdditionalFrame
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X} ({})", self.to_u8(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_byte_round_trips() {
        let mut known = 0;
        for code in 0..=u8::MAX {
            let status = Status::from_u8(code);
            assert_eq!(status.to_u8(), code);
            if !matches!(status, Status::Other(_)) {
                known += 1;
                assert_ne!(status.name(), "unknown_status");
            }
        }
        assert_eq!(known, 22);
    }

    #[test]
    fn success_chaining_and_errors() {
        assert!(Status::Ok.is_success() && Status::NoChanges.is_success());
        assert!(!Status::AdditionalFrame.ends_authentication());
        assert!(Status::IntegrityError.ends_authentication());
        assert_eq!(
            Status::PermissionDenied.to_string(),
            "9D (permission_denied)"
        );
    }
}
