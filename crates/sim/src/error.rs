//! Errors of the simulator (setup, files, network). Card-level refusals are not errors:
//! they are status words ([`crate::card`]) or [`crate::mifare::CardFault`]s.

use std::path::PathBuf;

/// What can go wrong setting up or running a simulated card.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Unknown `--type`.
    #[error(
        "unknown card type {0:?}; expected one of classic-1k, classic-4k, mini, ultralight, desfire"
    )]
    UnknownCardType(String),
    /// Unknown `--tear-mode`.
    #[error("unknown tear mode {0:?}; expected lost, half or landed")]
    UnknownTearMode(String),
    /// A UID of a length the card type cannot have.
    #[error("a {card_type} card cannot have a {len}-byte UID (allowed: {allowed})")]
    InvalidUid {
        /// Card type name.
        card_type: &'static str,
        /// Given length.
        len: usize,
        /// Allowed lengths, for the message.
        allowed: &'static str,
    },
    /// Text that is not hexadecimal bytes.
    #[error("not hexadecimal bytes: {0:?}")]
    InvalidHex(String),
    /// A memory image of the wrong size.
    #[error("a {card_type} memory image has {expected} bytes, this one has {got}")]
    ImageSize {
        /// Card type name.
        card_type: &'static str,
        /// Expected size.
        expected: usize,
        /// Actual size.
        got: usize,
    },
    /// A card image that cannot be read (DESFire JSON image).
    #[error("a {card_type} image cannot be read: {reason}")]
    BadImage {
        /// Card type name.
        card_type: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The card type keeps no memory image.
    #[error("a {0} card has no memory image to load or save")]
    NoImage(&'static str),
    /// Conflicting options.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    File {
        /// What was being done ("reading", "writing").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// vpcd could not be reached in time.
    #[error(
        "cannot connect to vpcd at {addr} (waited {waited_ms} ms): {source}; is pcscd running with the vpcd driver configured?"
    )]
    VpcdUnreachable {
        /// The address tried.
        addr: String,
        /// How long we retried.
        waited_ms: u128,
        /// The last error.
        source: std::io::Error,
    },
    /// Any other I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// Parses hex bytes, ignoring spaces and colons: `"DE AD BE EF"`, `"deadbeef"`, `"de:ad"`.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, SimError> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b' ' | b':' | b'\t'))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(SimError::InvalidHex(text.to_owned()));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| SimError::InvalidHex(text.to_owned()))
        })
        .collect()
}

/// Formats bytes as upper-case hex separated by spaces: `04 DE AD`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(parse_hex("DE ad:BE ef").unwrap(), [0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(hex(&[0x04, 0xDE, 0x00]), "04 DE 00");
        assert!(parse_hex("ABC").is_err());
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("é1").is_err());
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
    }
}
