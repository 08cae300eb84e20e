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

/// A key slot of the reader, by number (`FF 82 .. <slot>` and the key number of an
/// authentication). Every reader has at least slots `00` and `01`; how many more it offers is
/// [`ReaderCaps::key_slots`](crate::transmit::ReaderCaps::key_slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySlot(u8);

impl KeySlot {
    /// Key number 00.
    pub const SLOT0: Self = Self(0);
    /// Key number 01.
    pub const SLOT1: Self = Self(1);

    /// Slot `number`.
    pub const fn new(number: u8) -> Self {
        Self(number)
    }

    /// The key number byte.
    pub const fn number(self) -> u8 {
        self.0
    }
}

/// The most blocks one canonical read may ask for: the 15 data blocks of a large MIFARE
/// Classic 4K sector (Le `F0`).
pub const MAX_READ_BLOCKS: u8 = 15;

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

/// `FF B0 00 <block> <16·count>`: reads `count` consecutive blocks (1 to
/// [`MAX_READ_BLOCKS`]; out-of-range counts are clamped). This is the canonical request a
/// job sends; the hal spells it for the reader's family (docs/reference/pcsc-part3.md §1,
/// docs/reference/readers.md §5), splitting it where the reader reads fewer blocks at once.
pub fn read_blocks(block: u8, count: u8) -> Command {
    let count = count.clamp(1, MAX_READ_BLOCKS);
    Command::new(CLA_PCSC, INS_READ_BINARY, 0x00, block).with_le(count * 16)
}

/// A storage-card command in its canonical (PC/SC Part 3 baseline) form, as the protocol's
/// jobs send it: what the hal's PC/SC backend recognises and spells in the reader's dialect.
///
/// Why canonical bytes and a parser, rather than a second method on
/// [`Transmit`](crate::transmit::Transmit): the byte seam stays the one seam (`DESFire` APDUs,
/// the bridge's guard, APDU counting, redacted traces and every fake keep working on bytes),
/// the canonical form *is* the Part 3 baseline (a baseline reader needs no translation at
/// all), and the typed view below is the contract between protocol and hal: every command a
/// job sends through a [`Session`](crate::job) parses into exactly one of these, and
/// [`StorageCommand::to_bytes`] gives the bytes back (round-trip tested).
#[derive(Clone, PartialEq, Eq)]
pub enum StorageCommand {
    /// `FF CA 00 00 Le`: the UID.
    GetUid,
    /// `FF 82 00 <slot> 06 <key>`: put `key` into the reader's key slot `slot`.
    LoadKey {
        /// The slot.
        slot: KeySlot,
        /// The key (never printed).
        key: Crypto1Key,
    },
    /// `FF 86 00 00 05 01 00 <block> <60|61> <slot>`: authenticate the sector of `block`.
    Authenticate {
        /// The block (its sector is authenticated).
        block: u8,
        /// `60` key A, `61` key B.
        key_type: u8,
        /// The slot holding the key.
        slot: KeySlot,
    },
    /// `FF B0 00 <block> <16·count>`: read `count` consecutive blocks of one sector.
    Read {
        /// The first block.
        block: u8,
        /// How many blocks.
        count: u8,
    },
    /// `FF D6 00 <block> 10 <16 bytes>`: write one block.
    Write {
        /// The block.
        block: u8,
        /// The 16 bytes.
        data: Block,
    },
}

impl fmt::Debug for StorageCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageCommand({})", redact_apdu(&self.to_bytes()))
    }
}

impl StorageCommand {
    /// The command `bytes` spell in canonical form, or `None` for anything else (`DESFire`
    /// APDUs, vendor pseudo-APDUs, malformed bytes). Never panics.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        match *bytes {
            [CLA_PCSC, INS_GET_DATA, 0x00, 0x00, _] => Some(Self::GetUid),
            [
                CLA_PCSC,
                INS_LOAD_KEY,
                0x00,
                slot,
                0x06,
                k0,
                k1,
                k2,
                k3,
                k4,
                k5,
            ] => Some(Self::LoadKey {
                slot: KeySlot(slot),
                key: Crypto1Key::new([k0, k1, k2, k3, k4, k5]),
            }),
            [
                CLA_PCSC,
                INS_AUTHENTICATE,
                0x00,
                0x00,
                0x05,
                0x01,
                0x00,
                block,
                key_type @ (0x60 | 0x61),
                slot,
            ] => Some(Self::Authenticate {
                block,
                key_type,
                slot: KeySlot(slot),
            }),
            [CLA_PCSC, INS_READ_BINARY, 0x00, block, le]
                if le % 16 == 0 && (1..=MAX_READ_BLOCKS).contains(&(le / 16)) =>
            {
                Some(Self::Read {
                    block,
                    count: le / 16,
                })
            }
            [
                CLA_PCSC,
                INS_UPDATE_BINARY,
                0x00,
                block,
                0x10,
                ref data @ ..,
            ] => Some(Self::Write {
                block,
                data: <Block>::try_from(data).ok()?,
            }),
            _ => None,
        }
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::GetUid => get_uid().to_bytes(),
            Self::LoadKey { slot, key } => load_key(*slot, *key).to_bytes(),
            Self::Authenticate {
                block,
                key_type,
                slot,
            } => {
                let mut out = authenticate(*block, KeyType::A, *slot).to_bytes();
                if let Some(kt) = out.get_mut(8) {
                    *kt = *key_type;
                }
                out
            }
            Self::Read { block, count } => read_blocks(*block, *count).to_bytes(),
            Self::Write { block, data } => update_binary(*block, data).to_bytes(),
        }
    }
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
            hex::encode(&load_key(KeySlot::SLOT1, Crypto1Key::FACTORY).to_bytes()),
            "FF82000106FFFFFFFFFFFF"
        );
        assert_eq!(
            hex::encode(&authenticate(7, KeyType::B, KeySlot::SLOT0).to_bytes()),
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
        let text = redact_apdu(&load_key(KeySlot::SLOT0, key).to_bytes());
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

    #[test]
    fn canonical_storage_commands_round_trip() {
        let key = Crypto1Key::new([1, 2, 3, 4, 5, 6]);
        let commands = [
            get_uid(),
            load_key(KeySlot::new(7), key),
            authenticate(9, KeyType::B, KeySlot::SLOT1),
            read_block(4),
            read_blocks(4, 3),
            read_blocks(128, 15),
            write_block(5, &[0xA5; 16]).unwrap(),
        ];
        for command in commands {
            let bytes = command.to_bytes();
            let parsed = StorageCommand::parse(&bytes).unwrap();
            assert_eq!(parsed.to_bytes(), bytes, "{parsed:?}");
        }
        assert_eq!(
            StorageCommand::parse(&read_blocks(4, 3).to_bytes()),
            Some(StorageCommand::Read { block: 4, count: 3 })
        );
        // Not canonical: vendor pseudo-APDUs, DESFire, odd Le.
        for other in [
            "FF00400104010101",
            "905A00000300000000",
            "FFB0000411",
            "FF82200006FFFFFFFFFFFF",
        ] {
            assert_eq!(
                StorageCommand::parse(&hex::decode(other).unwrap()),
                None,
                "{other}"
            );
        }
        let text = format!(
            "{:?}",
            StorageCommand::parse(&load_key(KeySlot::SLOT0, key).to_bytes()).unwrap()
        );
        assert!(!text.contains("01 02 03"), "{text}");
    }

    proptest! {
        #[test]
        fn storage_parse_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Some(c) = StorageCommand::parse(&bytes) {
                prop_assert_eq!(StorageCommand::parse(&c.to_bytes()), Some(c));
            }
        }

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
