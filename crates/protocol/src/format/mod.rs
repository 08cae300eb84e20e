//! The on-card credential format (docs/card-format.md, the contract a lock vendor implements):
//! records of format v1 (read only, [`v1`]) and v2 (written, [`v2`]), the card number field
//! ([`number`]), and the total order that selects a card's record ([`select`]).
//!
//! A card carries our application in 2 or 4 sectors registered in the MAD under [`APP_AID`].
//! They form two *slots* (A and B) of one or two sectors each. A slot holds one *record*: a
//! header followed by the body, authenticated by an AES-CMAC bound to the card UID.
//! Re-encoding writes the slot that does not hold the card's record, with a sequence number one
//! above it, so a torn write leaves the previous record intact (or, at worst, no valid record)
//! - never a record nobody wrote (§6).
//!
//! Format v2 (§5.1): a 13-byte header with an 8-byte MAC; the realistic credential (UUID, two
//! times, 10-digit card number, 8 bytes of access data, issue counter) still fills exactly one
//! 48-byte sector, because times are whole minutes in 24 bits, the issue counter is one byte
//! and the key version is authenticated but not stored (§5.2 argues each).

pub mod desfire;
pub mod number;
pub mod v1;
pub mod v2;

use std::cmp::Ordering;

use cmac::{Cmac, Mac};

use crate::keys::CardKeys;
use crate::mifare::Block;
use crate::mifare::mad::Aid;

pub use number::{BCD_FLAG, MAX_CARD_NUMBER_LEN};
pub use v2::{FIXED_BODY_LEN, HEADER_LEN, MAC_LEN};

/// Format version 1 (docs/card-format.md §5.6): read, never written any more.
pub const FORMAT_V1: u8 = 0x01;
/// Format version 2 (docs/card-format.md §5.1): written by every encode.
pub const FORMAT_V2: u8 = 0x02;
/// Format version written in byte 0 of every new record.
pub const FORMAT_VERSION: u8 = FORMAT_V2;
/// Our MAD application id: function cluster `F0`, application code `EB` (stored `EB F0`).
/// Chosen by us, not registered with NXP's MAD registration authority; see docs/card-format.md.
pub const APP_AID: Aid = Aid::new(0xF0, 0xEB);
/// Data bytes per 4-block sector.
pub const SECTOR_DATA_LEN: usize = 48;

/// Largest v2 body that fits a slot of `sectors_per_slot` 4-block sectors.
pub fn body_capacity(sectors_per_slot: usize) -> usize {
    (SECTOR_DATA_LEN * sectors_per_slot)
        .saturating_sub(HEADER_LEN)
        .min(255)
}

/// A credential as the cloud gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The cloud's credential id: a UUID in its 36-character text form (case-insensitive on
    /// input, lower-case on output).
    pub credential_id: String,
    /// The card number, at most [`MAX_CARD_NUMBER_LEN`] bytes of UTF-8.
    pub card_number: String,
    /// Start of validity, unix seconds, or none. Format v2 stores whole minutes from
    /// 2020-01-01T00:00:00Z and rounds a start *up* to the next minute (§5.2).
    pub starts_at: Option<i64>,
    /// End of validity, unix seconds, or none. Format v2 rounds an end *down* (§5.2).
    pub ends_at: Option<i64>,
    /// Issue counter (how many times this credential was issued); format v2 holds 0-255.
    pub issue_counter: u16,
    /// Access data: opaque bytes chosen by the cloud (base64 on the wire), carried unchanged
    /// (§5.4). The size limit depends on the card layout, see [`body_capacity`].
    pub access_data: Vec<u8>,
}

/// A credential as read from (or written to) a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardCredential {
    /// The credential.
    pub credential: Credential,
    /// Format version of the record.
    pub format_version: u8,
    /// Key version of the card (of the keys that verified the record).
    pub key_version: u8,
    /// Sequence number of the record (8-bit serial number).
    pub sequence: u8,
}

/// Errors of encoding or decoding a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The credential id is not a UUID.
    #[error("credential id is not a UUID")]
    BadCredentialId,
    /// Card number too long.
    #[error("card number of {0} bytes is longer than 32")]
    CardNumberTooLong(usize),
    /// A time the card cannot hold.
    #[error("{0} is outside the range the card can hold")]
    TimeOutOfRange(&'static str),
    /// An issue counter above what format v2 holds.
    #[error("issue counter {0} is above 255, the largest format v2 holds")]
    IssueCounterTooLarge(u16),
    /// The record does not fit.
    #[error("record body of {len} bytes does not fit the {capacity} bytes of a slot")]
    TooLarge {
        /// Body length needed.
        len: usize,
        /// Capacity of the slot.
        capacity: usize,
    },
    /// The header block is all zeros: no record was ever written here.
    #[error("empty slot")]
    Empty,
    /// Unknown format version.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// Lengths inconsistent with each other or with the bytes given.
    #[error("record lengths are inconsistent")]
    BadLength,
    /// The MAC does not match: changed bytes, another card's record, or another site.
    #[error("record MAC mismatch")]
    MacMismatch,
    /// The header's key version differs from the keys that opened the card (v1 only: v2
    /// authenticates the key version in its MAC).
    #[error("record key version {found} does not match the card keys ({expected})")]
    KeyVersionMismatch {
        /// Version in the header.
        found: u8,
        /// Version of the keys.
        expected: u8,
    },
    /// The card number is not valid BCD or UTF-8.
    #[error("card number is not valid BCD or UTF-8")]
    BadCardNumber,
}

impl FormatError {
    /// Stable machine name of the verdict (docs/card-format.md §5.5, tests/vectors/).
    pub fn name(&self) -> &'static str {
        match self {
            Self::BadCredentialId => "bad_credential_id",
            Self::CardNumberTooLong(_) => "card_number_too_long",
            Self::TimeOutOfRange(_) => "time_out_of_range",
            Self::IssueCounterTooLarge(_) => "issue_counter_too_large",
            Self::TooLarge { .. } => "too_large",
            Self::Empty => "empty",
            Self::UnknownVersion(_) => "unknown_format_version",
            Self::BadLength => "bad_length",
            Self::MacMismatch => "mac_mismatch",
            Self::KeyVersionMismatch { .. } => "key_version_mismatch",
            Self::BadCardNumber => "bad_card_number",
        }
    }
}

/// A parsed record header of either format version; checks lengths, not the MAC.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version (`01` or `02`).
    pub format_version: u8,
    /// Key version stored in the header (v1 only; v2 authenticates it without storing it).
    pub key_version: Option<u8>,
    /// Sequence number.
    pub sequence: u8,
    /// Card number descriptor: [`BCD_FLAG`] and the digit (or byte) count.
    pub card_number: u8,
    /// Access data length.
    pub access_len: u8,
    /// Issue counter.
    pub issue_counter: u16,
    mac: [u8; MAC_LEN],
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("format_version", &self.format_version)
            .field("key_version", &self.key_version)
            .field("sequence", &self.sequence)
            .field("card_number", &self.card_number)
            .field("access_len", &self.access_len)
            .field("issue_counter", &self.issue_counter)
            .finish_non_exhaustive()
    }
}

impl Header {
    /// Parses the header at the start of `block` (a slot's first block, 16 bytes). A block of
    /// 16 zero bytes is [`FormatError::Empty`]; any other first byte than `01` or `02` is
    /// [`FormatError::UnknownVersion`] (also `00` followed by non-zero bytes, §5.5).
    pub fn parse(block: &[u8]) -> Result<Self, FormatError> {
        if block.len() < 16 {
            return Err(FormatError::BadLength);
        }
        if block.iter().all(|b| *b == 0) {
            return Err(FormatError::Empty);
        }
        match block.first() {
            Some(&FORMAT_V1) => v1::parse_header(block),
            Some(&FORMAT_V2) => v2::parse_header(block),
            Some(other) => Err(FormatError::UnknownVersion(*other)),
            None => Err(FormatError::BadLength),
        }
    }

    /// Header length of this format version (v1: 11, v2: 13).
    pub fn header_len(&self) -> usize {
        if self.format_version == FORMAT_V1 {
            v1::HEADER_LEN
        } else {
            v2::HEADER_LEN
        }
    }

    /// Body length: fixed part, card number as stored, access data.
    pub fn body_len(&self) -> usize {
        let fixed = if self.format_version == FORMAT_V1 {
            v1::FIXED_BODY_LEN
        } else {
            v2::FIXED_BODY_LEN
        };
        fixed + number::stored_len(self.card_number) + usize::from(self.access_len)
    }

    /// Blocks the whole record occupies (header included).
    pub fn record_blocks(&self) -> usize {
        (self.header_len() + self.body_len()).div_ceil(16)
    }
}

/// Decodes and verifies a record of either version: `bytes` starts with the header block and
/// holds at least [`Header::record_blocks`] blocks. Rejects any changed byte, a record made for
/// another UID or with other keys (docs/card-format.md §5).
pub fn decode_record(
    bytes: &[u8],
    uid: &[u8],
    keys: &CardKeys,
) -> Result<CardCredential, FormatError> {
    let header = Header::parse(bytes.get(..16).ok_or(FormatError::BadLength)?)?;
    if header.format_version == FORMAT_V1 {
        v1::decode(&header, bytes, uid, keys)
    } else {
        v2::decode(&header, bytes, uid, keys)
    }
}

/// Encodes `credential` as a v2 record for the card `uid` with `keys`: the header block
/// followed by the body blocks (zero padded). `capacity` is the slot's body capacity.
pub fn encode_record(
    credential: &Credential,
    keys: &CardKeys,
    sequence: u8,
    uid: &[u8],
    capacity: usize,
) -> Result<Vec<Block>, FormatError> {
    v2::encode(credential, keys, sequence, uid, capacity)
}

/// Body length of `credential` in format v2, after validating its fields (not the capacity).
pub fn body_len(credential: &Credential) -> Result<usize, FormatError> {
    v2::body_len(credential)
}

/// `true` when sequence `a` is newer than `b` (RFC 1982 serial-number arithmetic on 8 bits):
/// `a ≠ b` and `(a − b) mod 256 < 128`.
pub fn is_newer(a: u8, b: u8) -> bool {
    a != b && a.wrapping_sub(b) < 0x80
}

/// The order of the two records of a card (docs/card-format.md §5.5): `(sequence, slot)`
/// compared by serial arithmetic on the sequence; where neither sequence is newer (equal, or
/// exactly 128 apart: only damage or a foreign writer makes these), slot A (0) wins over slot
/// B (1). For records of different slots exactly one wins, whichever is passed first (a
/// total order on the pair; serial arithmetic is not transitive over three numbers, and a
/// card never holds three records). `Greater` means `a` wins.
pub fn record_order(a: (u8, usize), b: (u8, usize)) -> Ordering {
    if a == b {
        Ordering::Equal
    } else if is_newer(a.0, b.0) {
        Ordering::Greater
    } else if is_newer(b.0, a.0) {
        Ordering::Less
    } else {
        b.1.cmp(&a.1)
    }
}

/// The slots of `heads` (`(slot, sequence)` of every slot whose header parsed) in the order a
/// reader tries them: the winner of [`record_order`] first. The first whose record verifies is
/// the card's credential.
pub fn candidate_order(heads: &[(usize, u8)]) -> Vec<usize> {
    let mut sorted: Vec<(usize, u8)> = heads.to_vec();
    sorted.sort_by(|a, b| record_order((b.1, b.0), (a.1, a.0)));
    sorted.into_iter().map(|(slot, _)| slot).collect()
}

/// What one slot was found to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotContent {
    /// First block all zeros.
    Empty,
    /// A format version this software does not know.
    UnknownVersion(u8),
    /// A record of a known version that fails verification (why).
    Damaged(FormatError),
    /// A record that verifies, with its sequence number.
    Valid(u8),
}

impl SlotContent {
    /// Classifies the result of parsing and verifying a slot.
    pub fn of<T>(result: &Result<T, FormatError>, sequence: impl Fn(&T) -> u8) -> Self {
        match result {
            Ok(v) => Self::Valid(sequence(v)),
            Err(FormatError::Empty) => Self::Empty,
            Err(FormatError::UnknownVersion(v)) => Self::UnknownVersion(*v),
            Err(e) => Self::Damaged(e.clone()),
        }
    }
}

/// The verdict on a card's slots (docs/card-format.md §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The credential is the record in this slot.
    Record(usize),
    /// No record verifies and at least one slot holds a damaged record of a known version:
    /// `uncategorized_error/card_payload_corrupt`.
    Damaged,
    /// No record verifies, none is damaged, and at least one slot holds an unknown format
    /// version: `incompatible_card_format/unknown_format_version`.
    UnknownFormat,
    /// Every slot is empty: formatted for us, no credential.
    NoRecord,
}

/// Selects the card's record from what each slot holds: the valid record that wins
/// [`record_order`]; else damaged before unknown version before empty.
pub fn select(slots: &[SlotContent]) -> Selection {
    let valid: Vec<(usize, u8)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c {
            SlotContent::Valid(seq) => Some((i, *seq)),
            _ => None,
        })
        .collect();
    if let Some(first) = candidate_order(&valid).first() {
        return Selection::Record(*first);
    }
    if slots.iter().any(|c| matches!(c, SlotContent::Damaged(_))) {
        Selection::Damaged
    } else if slots
        .iter()
        .any(|c| matches!(c, SlotContent::UnknownVersion(_)))
    {
        Selection::UnknownFormat
    } else {
        Selection::NoRecord
    }
}

/// AES-CMAC of `parts` under the card's MAC key, truncated to `N` bytes.
fn cmac<const N: usize>(keys: &CardKeys, parts: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    let Ok(mut mac) = <Cmac<aes::Aes128> as Mac>::new_from_slice(&keys.mac_key().to_bytes()) else {
        return out;
    };
    for part in parts {
        mac.update(part);
    }
    let full = mac.finalize().into_bytes();
    for (dst, src) in out.iter_mut().zip(full.iter()) {
        *dst = *src;
    }
    out
}

/// Parses a canonical UUID (8-4-4-4-12 hex digits, either case).
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    for (i, b) in bytes.iter().enumerate() {
        let dash = matches!(i, 8 | 13 | 18 | 23);
        if dash != (*b == b'-') {
            return None;
        }
    }
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    crate::hex::decode(&digits)?.try_into().ok()
}

/// Formats 16 bytes as a lower-case canonical UUID.
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    let hex = crate::hex::encode(bytes).to_lowercase();
    let part = |r: std::ops::Range<usize>| hex.get(r).unwrap_or("").to_string();
    format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    )
}

/// The body of the record in `bytes` (header of `header.header_len()` bytes, whose first
/// `prefix_len` bytes precede the MAC), once the MAC that `mac(prefix, body)` computes
/// matches the stored one ([`FormatError::MacMismatch`] otherwise).
fn authenticated_body<'a, const N: usize>(
    header: &Header,
    bytes: &'a [u8],
    prefix_len: usize,
    mac: impl FnOnce(&[u8], &[u8]) -> [u8; N],
) -> Result<&'a [u8], FormatError> {
    let start = header.header_len();
    let body = bytes
        .get(start..start + header.body_len())
        .ok_or(FormatError::BadLength)?;
    let prefix = bytes.get(..prefix_len).ok_or(FormatError::BadLength)?;
    let stored = header.mac.get(..N).ok_or(FormatError::BadLength)?;
    if !crate::keys::ct_eq(&mac(prefix, body), stored) {
        return Err(FormatError::MacMismatch);
    }
    Ok(body)
}

/// A body split into its fields (times still in their version's encoding).
struct BodyParts<'a> {
    id: [u8; 16],
    times: &'a [u8],
    card_number: String,
    access_data: Vec<u8>,
}

/// Splits a body into id, the times field (`times` bytes), card number and access data.
fn split_body(body: &[u8], times: usize, descriptor: u8) -> Result<BodyParts<'_>, FormatError> {
    let (id, rest) = body.split_at_checked(16).ok_or(FormatError::BadLength)?;
    let (time_bytes, rest) = rest.split_at_checked(times).ok_or(FormatError::BadLength)?;
    let (stored, access) = rest
        .split_at_checked(number::stored_len(descriptor))
        .ok_or(FormatError::BadLength)?;
    Ok(BodyParts {
        id: id.try_into().map_err(|_| FormatError::BadLength)?,
        times: time_bytes,
        card_number: number::decode(descriptor, stored)?,
        access_data: access.to_vec(),
    })
}

/// Pads `bytes` with zeros to whole blocks.
fn to_blocks(mut bytes: Vec<u8>) -> Vec<Block> {
    while !bytes.len().is_multiple_of(16) {
        bytes.push(0);
    }
    bytes
        .chunks_exact(16)
        .map(|c| {
            let mut b = [0u8; 16];
            b.copy_from_slice(c);
            b
        })
        .collect()
}

#[cfg(test)]
mod tests;
