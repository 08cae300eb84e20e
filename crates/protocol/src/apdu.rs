//! Command APDUs (short form), response parsing, and the PC/SC Part 3 storage-card commands
//! (docs/reference/pcsc-part3.md §1).
//!
//! Nothing here panics on any input: responses are parsed into [`Response`] or a
//! [`ResponseError`]; commands that would be malformed or dangerous (a raw write to a trailer
//! block) are refused with an [`ApduError`].

use std::fmt;

use crate::keys::Crypto1Key;
use crate::mifare::Block;
use crate::mifare::access::KeyType;
use crate::mifare::geometry;
use crate::mifare::trailer::Trailer;
use crate::status::StatusWord;

/// Class byte of PC/SC Part 3 pseudo-APDUs.
pub const CLA_PCSC: u8 = 0xFF;
/// Get data (UID / ATS).
pub const INS_GET_DATA: u8 = 0xCA;
/// Load keys.
pub const INS_LOAD_KEY: u8 = 0x82;
/// General authenticate.
pub const INS_AUTHENTICATE: u8 = 0x86;
/// Read binary.
pub const INS_READ_BINARY: u8 = 0xB0;
/// Update binary.
pub const INS_UPDATE_BINARY: u8 = 0xD6;

/// Errors building a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApduError {
    /// More than 255 data bytes for a short APDU.
    #[error("{0} data bytes do not fit a short APDU")]
    DataTooLong(usize),
    /// A raw data write aimed at a trailer block; trailers go through [`write_trailer`].
    #[error("block {0} is a sector trailer; use write_trailer")]
    TrailerBlock(u8),
    /// A trailer write aimed at a data block or a sector that does not exist.
    #[error("block {0} is not a sector trailer")]
    NotATrailer(u8),
}

/// A short command APDU.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// Class.
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    data: Vec<u8>,
    /// Expected response length (`Some(0)` means up to 256).
    pub le: Option<u8>,
}

impl Command {
    /// A command without data or Le.
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Self {
            cla,
            ins,
            p1,
            p2,
            data: Vec::new(),
            le: None,
        }
    }

    /// Sets the command data (at most 255 bytes).
    pub fn with_data(mut self, data: &[u8]) -> Result<Self, ApduError> {
        if data.len() > 255 {
            return Err(ApduError::DataTooLong(data.len()));
        }
        self.data = data.to_vec();
        Ok(self)
    }

    /// Sets Le.
    #[must_use]
    pub fn with_le(mut self, le: u8) -> Self {
        self.le = Some(le);
        self
    }

    /// The command data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The bytes to transmit.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.data.len());
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            // Length checked in with_data.
            out.push(u8::try_from(self.data.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            out.push(le);
        }
        out
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({})", redact_apdu(&self.to_bytes()))
    }
}

/// Errors parsing a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// Fewer than two bytes: no status word.
    #[error("response of {0} bytes has no status word")]
    TooShort(usize),
}

/// A response APDU: data and status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    data: Vec<u8>,
    status: StatusWord,
}

impl Response {
    /// Splits a raw response into data and status word.
    pub fn parse(bytes: &[u8]) -> Result<Self, ResponseError> {
        match bytes {
            [data @ .., sw1, sw2] => Ok(Self {
                data: data.to_vec(),
                status: StatusWord::from_bytes(*sw1, *sw2),
            }),
            _ => Err(ResponseError::TooShort(bytes.len())),
        }
    }

    /// The response data (without the status word).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The status word.
    pub fn status(&self) -> StatusWord {
        self.status
    }

    /// The data when the status is `90 00`.
    pub fn into_success(self) -> Option<Vec<u8>> {
        self.status.is_success().then_some(self.data)
    }
}

/// One of the reader's two volatile key slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySlot {
    /// Key number 00.
    Slot0,
    /// Key number 01.
    Slot1,
}

impl KeySlot {
    /// The key number byte.
    pub fn number(self) -> u8 {
        match self {
            Self::Slot0 => 0x00,
            Self::Slot1 => 0x01,
        }
    }
}

/// `FF CA 00 00 00`: the UID of the card in the field.
pub fn get_uid() -> Command {
    Command::new(CLA_PCSC, INS_GET_DATA, 0x00, 0x00).with_le(0x00)
}

/// `FF 82 00 <slot> 06 <key>`: loads `key` into a volatile key slot.
pub fn load_key(slot: KeySlot, key: Crypto1Key) -> Command {
    Command {
        cla: CLA_PCSC,
        ins: INS_LOAD_KEY,
        p1: 0x00,
        p2: slot.number(),
        data: key.to_bytes().to_vec(),
        le: None,
    }
}

/// `FF 86 00 00 05 01 00 <block> <60|61> <slot>`: authenticates the sector of `block`.
pub fn authenticate(block: u8, key_type: KeyType, slot: KeySlot) -> Command {
    Command {
        cla: CLA_PCSC,
        ins: INS_AUTHENTICATE,
        p1: 0x00,
        p2: 0x00,
        data: vec![0x01, 0x00, block, key_type.code(), slot.number()],
        le: None,
    }
}

/// `FF B0 00 <block> 10`: reads one block.
pub fn read_block(block: u8) -> Command {
    Command::new(CLA_PCSC, INS_READ_BINARY, 0x00, block).with_le(0x10)
}

/// `FF D6 00 <block> 10 <16 bytes>`: writes a data block. Refuses trailer blocks.
pub fn write_block(block: u8, data: &Block) -> Result<Command, ApduError> {
    if geometry::is_trailer(block) {
        return Err(ApduError::TrailerBlock(block));
    }
    Ok(update_binary(block, data))
}

/// Writes `trailer` into `block`, which must be a trailer block.
pub fn write_trailer(block: u8, trailer: &Trailer) -> Result<Command, ApduError> {
    if !geometry::is_trailer(block) {
        return Err(ApduError::NotATrailer(block));
    }
    Ok(update_binary(block, &trailer.to_block()))
}

fn update_binary(block: u8, data: &Block) -> Command {
    Command {
        cla: CLA_PCSC,
        ins: INS_UPDATE_BINARY,
        p1: 0x00,
        p2: block,
        data: data.to_vec(),
        le: None,
    }
}

/// Hex of a command for debug traces, with secrets masked as `**`:
///
/// - the key bytes of `FF 82` (load key);
/// - the payload of `FF D6` aimed at a trailer block (it carries keys);
/// - the key of a PN532 MIFARE authenticate sent through ACR122U direct transmit
///   (`FF 00 00 00 Lc D4 40 <tg> 60|61 <block> <key 6> <uid>`) and the payload of a direct
///   write to a trailer (`... D4 40 <tg> A0 <block> <16 bytes>`).
///
/// Output is upper-case hex separated by spaces.
pub fn redact_apdu(command: &[u8]) -> String {
    let mask: Box<dyn Fn(usize) -> bool> = match command {
        [0xFF, INS_LOAD_KEY, ..] => Box::new(|i| i >= 5),
        [0xFF, INS_UPDATE_BINARY, p1, block, ..] if *p1 != 0 || geometry::is_trailer(*block) => {
            Box::new(|i| i >= 5)
        }
        [0xFF, 0x00, 0x00, 0x00, _, 0xD4, 0x40, _, 0x60 | 0x61, ..] => {
            Box::new(|i| (10..16).contains(&i))
        }
        [0xFF, 0x00, 0x00, 0x00, _, 0xD4, 0x40, _, 0xA0, block, ..]
            if geometry::is_trailer(*block) =>
        {
            Box::new(|i| i >= 10)
        }
        _ => Box::new(|_| false),
    };
    command
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if mask(i) {
                "**".to_string()
            } else {
                format!("{b:02X}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Hex of a response for debug traces. When `command` read a trailer block, the key fields of
/// the reply (bytes 0-5 and 10-15) are masked: key B may be readable on foreign cards.
pub fn redact_response(command: &[u8], response: &[u8]) -> String {
    let trailer_read = matches!(command, [0xFF, INS_READ_BINARY, _, block, ..] if geometry::is_trailer(*block))
        || matches!(command, [0xFF, 0x00, 0x00, 0x00, _, 0xD4, 0x40, _, 0x30, block, ..] if geometry::is_trailer(*block));
    let data_len = response.len().saturating_sub(2);
    response
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if trailer_read && i < data_len && (i < 6 || (10..16).contains(&i)) {
                "**".to_string()
            } else {
                format!("{b:02X}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::hex;
    use crate::mifare::access::AccessConditions;
    use proptest::prelude::*;

    #[test]
    fn storage_commands_bytes() {
        assert_eq!(hex::encode(&get_uid().to_bytes()), "FFCA000000");
        assert_eq!(
            hex::encode(&load_key(KeySlot::Slot1, Crypto1Key::FACTORY).to_bytes()),
            "FF82000106FFFFFFFFFFFF"
        );
        assert_eq!(
            hex::encode(&authenticate(7, KeyType::B, KeySlot::Slot0).to_bytes()),
            "FF860000050100076100"
        );
        assert_eq!(hex::encode(&read_block(4).to_bytes()), "FFB0000410");
        assert_eq!(
            hex::encode(&write_block(4, &[0xAB; 16]).unwrap().to_bytes()),
            format!("FFD6000410{}", "AB".repeat(16))
        );
        assert_eq!(write_block(7, &[0; 16]), Err(ApduError::TrailerBlock(7)));
        assert!(write_trailer(6, &Trailer::factory()).is_err());
        assert!(write_trailer(255, &Trailer::factory()).is_ok());
    }

    #[test]
    fn redaction_masks_keys() {
        let key = Crypto1Key::new([0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC]);
        let text = redact_apdu(&load_key(KeySlot::Slot0, key).to_bytes());
        assert_eq!(text, "FF 82 00 00 06 ** ** ** ** ** **");
        let trailer = Trailer::new(key, AccessConditions::READ_A_WRITE_B, 0x69, key);
        let text = redact_apdu(&write_trailer(7, &trailer).unwrap().to_bytes());
        assert!(!text.contains("12 34"), "{text}");
        assert!(text.starts_with("FF D6 00 07 10 **"));
        let text = redact_apdu(&write_block(4, &[0x12; 16]).unwrap().to_bytes());
        assert!(text.contains("12 12"));
        let direct = hex::decode("FF00000011D440016004123456789ABCDEADBEEF").unwrap();
        let text = redact_apdu(&direct);
        assert!(!text.contains("12 34"), "{text}");
        assert!(text.ends_with("DE AD BE EF"), "{text}");
        let read = read_block(7).to_bytes();
        let resp = hex::decode("000000000000787788691234567890AB9000").unwrap();
        let text = redact_response(&read, &resp);
        assert!(text.contains("78 77 88 69") && !text.contains("12 34") && text.ends_with("90 00"));
    }

    proptest! {
        #[test]
        fn response_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            match Response::parse(&bytes) {
                Ok(r) => {
                    prop_assert_eq!(r.data().len() + 2, bytes.len());
                    prop_assert_eq!(r.status().to_u16(), u16::from_be_bytes([bytes[bytes.len() - 2], bytes[bytes.len() - 1]]));
                }
                Err(ResponseError::TooShort(n)) => prop_assert!(n < 2),
            }
        }

        #[test]
        fn redaction_never_panics_and_keeps_length(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = redact_apdu(&bytes);
            let n = if bytes.is_empty() { 0 } else { text.split(' ').count() };
            prop_assert_eq!(n, bytes.len());
            let _ = redact_response(&bytes, &bytes);
        }
    }
}
