//! The credential card format v1 (full description, byte tables and test vectors in
//! docs/card-format.md).
//!
//! A card carries our application in sectors registered in the MAD under [`APP_AID`]. The
//! sectors form two *slots* (A and B), each of `k` sectors (`k` = number of our sectors / 2).
//! A slot holds one *record*: a 16-byte header followed by the body, both authenticated by an
//! 8-byte AES-CMAC bound to the card UID. Re-encoding writes the slot that does not hold the
//! newest record, with a sequence number one higher, so a torn write leaves the previous
//! record intact (or, at worst, no valid record) - never a record nobody wrote.
//!
//! Record (from block 0 of the slot, contiguous over its data blocks, zero padded):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version = `01` |
//! | 1 | 1 | key version (site master key version of this card's keys) |
//! | 2 | 1 | sequence number (serial-number arithmetic on 8 bits, RFC 1982) |
//! | 3 | 1 | card number descriptor: bit 7 = packed BCD, bits 0-6 = digits (BCD) or bytes |
//! | 4 | 1 | access data length `a` |
//! | 5 | 2 | issue counter, big-endian |
//! | 7 | 4 | MAC |
//! | 11 | 16 | credential id (UUID bytes) |
//! | 27 | 4 | `starts_at`, u32 BE unix seconds, 0 = none |
//! | 31 | 4 | `ends_at`, same |
//! | 35 | m | card number: packed BCD (`m` = digits / 2 rounded up, odd count padded with a low
//! |    |   | nibble `F`) when it is 1-32 ASCII digits, else UTF-8 (`m` = bytes) |
//! | 35+m | a | access data |
//!
//! Compact on purpose: a 10-digit card number with 8 bytes of access data fits one sector (48
//! bytes), which keeps the jobs within their APDU budgets (docs/card-format.md §5, §7).

use cmac::{Cmac, Mac};

use crate::keys::{CardKeys, ct_eq};
use crate::mifare::Block;
use crate::mifare::mad::Aid;

/// Format version written in byte 0 of every header.
pub const FORMAT_VERSION: u8 = 0x01;
/// Our MAD application id: function cluster `F0`, application code `EB` (stored `EB F0`).
/// Chosen by us, not registered with NXP's MAD registration authority; see docs/card-format.md.
pub const APP_AID: Aid = Aid::new(0xF0, 0xEB);
/// Header length (fields and MAC, before the body).
pub const HEADER_LEN: usize = 11;
/// Truncated MAC length (32 bits: see docs/card-format.md §5 for why that is enough).
pub const MAC_LEN: usize = 4;
/// Bit 7 of the card number descriptor: the card number is stored as packed BCD.
pub const BCD_FLAG: u8 = 0x80;
/// Fixed part of the body: id, `starts_at`, `ends_at`.
pub const FIXED_BODY_LEN: usize = 24;
/// Longest card number, in bytes.
pub const MAX_CARD_NUMBER_LEN: usize = 32;
/// Domain separation prefix of the MAC input.
pub const MAC_DOMAIN: &[u8; 17] = b"encoder-bridge/v1";
/// Data bytes per 4-block sector.
pub const SECTOR_DATA_LEN: usize = 48;

/// Largest body that fits a slot of `sectors_per_slot` 4-block sectors.
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
    /// Start of validity, unix seconds (1 ..= 2^32-1), or none.
    pub starts_at: Option<i64>,
    /// End of validity, unix seconds (1 ..= 2^32-1), or none.
    pub ends_at: Option<i64>,
    /// Issue counter (how many times this credential was issued).
    pub issue_counter: u16,
    /// Access data (entrance ids or an opaque blob from the cloud); the size limit depends on
    /// the card layout, see [`body_capacity`]: `capacity - 24 - card number length` bytes.
    pub access_data: Vec<u8>,
}

/// A credential as read from (or written to) a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardCredential {
    /// The credential.
    pub credential: Credential,
    /// Format version of the record.
    pub format_version: u8,
    /// Key version of the card.
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
    /// A time outside 1 ..= 2^32-1.
    #[error("{0} is outside the range the card can hold")]
    TimeOutOfRange(&'static str),
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
    /// The header's key version differs from the keys that opened the card.
    #[error("record key version {found} does not match the card keys ({expected})")]
    KeyVersionMismatch {
        /// Version in the header.
        found: u8,
        /// Version of the keys.
        expected: u8,
    },
    /// The card number is not UTF-8.
    #[error("card number is not UTF-8")]
    BadCardNumber,
}

/// A parsed header.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub format_version: u8,
    /// Key version.
    pub key_version: u8,
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

/// Bytes the card number takes on the card, from its descriptor.
fn stored_number_len(descriptor: u8) -> usize {
    let count = usize::from(descriptor & !BCD_FLAG);
    if descriptor & BCD_FLAG != 0 {
        count.div_ceil(2)
    } else {
        count
    }
}

impl Header {
    /// Parses a header (the first [`HEADER_LEN`] bytes of `block`, normally the slot's first
    /// block); checks version and length consistency (not the MAC). A block of all zeros is
    /// [`FormatError::Empty`].
    pub fn parse(block: &[u8]) -> Result<Self, FormatError> {
        let [v, kv, seq, number, access, i0, i1, m0, m1, m2, m3, ..] = block else {
            return Err(FormatError::BadLength);
        };
        if block.iter().all(|b| *b == 0) {
            return Err(FormatError::Empty);
        }
        if *v != FORMAT_VERSION {
            return Err(FormatError::UnknownVersion(*v));
        }
        let count = usize::from(*number & !BCD_FLAG);
        if count > MAX_CARD_NUMBER_LEN || (*number & BCD_FLAG != 0 && count == 0) {
            return Err(FormatError::BadLength);
        }
        Ok(Self {
            format_version: *v,
            key_version: *kv,
            sequence: *seq,
            card_number: *number,
            access_len: *access,
            issue_counter: u16::from_be_bytes([*i0, *i1]),
            mac: [*m0, *m1, *m2, *m3],
        })
    }

    /// Body length: fixed part, card number as stored, access data.
    pub fn body_len(&self) -> usize {
        FIXED_BODY_LEN + stored_number_len(self.card_number) + usize::from(self.access_len)
    }

    /// Blocks the whole record occupies (header included).
    pub fn record_blocks(&self) -> usize {
        (HEADER_LEN + self.body_len()).div_ceil(16)
    }

    fn prefix(&self) -> [u8; 7] {
        let [i0, i1] = self.issue_counter.to_be_bytes();
        [
            self.format_version,
            self.key_version,
            self.sequence,
            self.card_number,
            self.access_len,
            i0,
            i1,
        ]
    }
}

/// How a card number is stored: its descriptor byte and bytes.
fn encode_card_number(number: &str) -> Result<(u8, Vec<u8>), FormatError> {
    let n = number.len();
    if n > MAX_CARD_NUMBER_LEN {
        return Err(FormatError::CardNumberTooLong(n));
    }
    let count = u8::try_from(n).map_err(|_| FormatError::CardNumberTooLong(n))?;
    let digits = number.as_bytes();
    if n == 0 || !digits.iter().all(u8::is_ascii_digit) {
        return Ok((count, digits.to_vec()));
    }
    let packed = digits
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => ((hi - b'0') << 4) | (lo - b'0'),
            [hi] => ((hi - b'0') << 4) | 0x0F,
            _ => 0xFF,
        })
        .collect();
    Ok((count | BCD_FLAG, packed))
}

fn decode_card_number(descriptor: u8, bytes: &[u8]) -> Result<String, FormatError> {
    if descriptor & BCD_FLAG == 0 {
        return std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| FormatError::BadCardNumber);
    }
    let count = usize::from(descriptor & !BCD_FLAG);
    let mut out = String::with_capacity(count);
    for i in 0..count.div_ceil(2) * 2 {
        let byte = bytes.get(i / 2).ok_or(FormatError::BadLength)?;
        let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0F };
        if i < count {
            if nibble > 9 {
                return Err(FormatError::BadCardNumber);
            }
            out.push(char::from(b'0' + nibble));
        } else if nibble != 0x0F {
            return Err(FormatError::BadCardNumber);
        }
    }
    Ok(out)
}

/// `true` when sequence `a` is newer than `b` (RFC 1982 serial-number arithmetic on 8 bits;
/// the two slots only ever hold neighbouring numbers).
pub fn is_newer(a: u8, b: u8) -> bool {
    a != b && a.wrapping_sub(b) < 0x80
}

fn mac(keys: &CardKeys, uid: &[u8], prefix: [u8; 7], body: &[u8]) -> [u8; MAC_LEN] {
    let mut out = [0u8; MAC_LEN];
    let Ok(mut cmac) = <Cmac<aes::Aes128> as Mac>::new_from_slice(&keys.mac_key().to_bytes())
    else {
        return out;
    };
    cmac.update(MAC_DOMAIN);
    cmac.update(&[u8::try_from(uid.len()).unwrap_or(u8::MAX)]);
    cmac.update(uid);
    cmac.update(&prefix);
    cmac.update(body);
    let full = cmac.finalize().into_bytes();
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

fn time_to_card(value: Option<i64>, field: &'static str) -> Result<u32, FormatError> {
    match value {
        None => Ok(0),
        Some(t) => match u32::try_from(t) {
            Ok(v) if v != 0 => Ok(v),
            _ => Err(FormatError::TimeOutOfRange(field)),
        },
    }
}

/// Body length of `credential`, after validating its fields (not the capacity).
pub fn body_len(credential: &Credential) -> Result<usize, FormatError> {
    if parse_uuid(&credential.credential_id).is_none() {
        return Err(FormatError::BadCredentialId);
    }
    let (_, number) = encode_card_number(&credential.card_number)?;
    time_to_card(credential.starts_at, "starts_at")?;
    time_to_card(credential.ends_at, "ends_at")?;
    Ok(FIXED_BODY_LEN + number.len() + credential.access_data.len())
}

/// Encodes `credential` as a record for the card `uid` with `keys`: the header block followed
/// by the body blocks (zero padded). `capacity` is the slot's body capacity.
pub fn encode_record(
    credential: &Credential,
    keys: &CardKeys,
    sequence: u8,
    uid: &[u8],
    capacity: usize,
) -> Result<Vec<Block>, FormatError> {
    let len = body_len(credential)?;
    let access_len = u8::try_from(credential.access_data.len())
        .map_err(|_| FormatError::TooLarge { len, capacity })?;
    if len > capacity {
        return Err(FormatError::TooLarge { len, capacity });
    }
    let (descriptor, number) = encode_card_number(&credential.card_number)?;
    let id = parse_uuid(&credential.credential_id).ok_or(FormatError::BadCredentialId)?;
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(&id);
    body.extend_from_slice(&time_to_card(credential.starts_at, "starts_at")?.to_be_bytes());
    body.extend_from_slice(&time_to_card(credential.ends_at, "ends_at")?.to_be_bytes());
    body.extend_from_slice(&number);
    body.extend_from_slice(&credential.access_data);
    let header = Header {
        format_version: FORMAT_VERSION,
        key_version: keys.version(),
        sequence,
        card_number: descriptor,
        access_len,
        issue_counter: credential.issue_counter,
        mac: [0; MAC_LEN],
    };
    let prefix = header.prefix();
    let tag = mac(keys, uid, prefix, &body);
    let mut bytes = Vec::with_capacity(HEADER_LEN + len + 15);
    bytes.extend_from_slice(&prefix);
    bytes.extend_from_slice(&tag);
    bytes.extend_from_slice(&body);
    while bytes.len() % 16 != 0 {
        bytes.push(0);
    }
    Ok(bytes
        .chunks_exact(16)
        .map(|c| {
            let mut b = [0u8; 16];
            b.copy_from_slice(c);
            b
        })
        .collect())
}

/// Decodes and verifies a record: `bytes` starts with the header block and holds at least
/// [`Header::record_blocks`] blocks. Rejects any changed byte, a record made for another UID
/// or with other keys.
pub fn decode_record(
    bytes: &[u8],
    uid: &[u8],
    keys: &CardKeys,
) -> Result<CardCredential, FormatError> {
    let header = Header::parse(bytes.get(..HEADER_LEN).ok_or(FormatError::BadLength)?)?;
    let len = header.body_len();
    let body = bytes
        .get(HEADER_LEN..HEADER_LEN + len)
        .ok_or(FormatError::BadLength)?;
    let expected = mac(keys, uid, header.prefix(), body);
    if !ct_eq(&expected, &header.mac) {
        return Err(FormatError::MacMismatch);
    }
    if header.key_version != keys.version() {
        return Err(FormatError::KeyVersionMismatch {
            found: header.key_version,
            expected: keys.version(),
        });
    }
    let (id, rest) = body.split_at_checked(16).ok_or(FormatError::BadLength)?;
    let (times, rest) = rest.split_at_checked(8).ok_or(FormatError::BadLength)?;
    let (number, access) = rest
        .split_at_checked(stored_number_len(header.card_number))
        .ok_or(FormatError::BadLength)?;
    let id: [u8; 16] = id.try_into().map_err(|_| FormatError::BadLength)?;
    let time = |range: std::ops::Range<usize>| -> Option<i64> {
        let b: [u8; 4] = times.get(range)?.try_into().ok()?;
        match u32::from_be_bytes(b) {
            0 => None,
            v => Some(i64::from(v)),
        }
    };
    let card_number = decode_card_number(header.card_number, number)?;
    Ok(CardCredential {
        credential: Credential {
            credential_id: format_uuid(&id),
            card_number,
            starts_at: time(0..4),
            ends_at: time(4..8),
            issue_counter: header.issue_counter,
            access_data: access.to_vec(),
        },
        format_version: header.format_version,
        key_version: header.key_version,
        sequence: header.sequence,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::keys::{MasterKey, SiteKeys};
    use proptest::prelude::*;

    fn keys(uid: &[u8]) -> CardKeys {
        SiteKeys::new(1, MasterKey::new([0x42; 16]))
            .card_keys(1, uid)
            .unwrap()
    }

    fn sample() -> Credential {
        Credential {
            credential_id: "3f1c2a9e-5b7d-4e21-9a0c-1d2e3f405162".into(),
            card_number: "1234".into(),
            starts_at: Some(1_700_000_000),
            ends_at: Some(1_700_086_400),
            issue_counter: 1,
            access_data: vec![1, 2],
        }
    }

    #[test]
    fn uuid_round_trip() {
        let id = "3F1C2A9E-5B7D-4E21-9A0C-1D2E3F405162";
        let bytes = parse_uuid(id).unwrap();
        assert_eq!(format_uuid(&bytes), id.to_lowercase());
        assert!(parse_uuid("3f1c2a9e5b7d4e219a0c1d2e3f405162").is_none());
        assert!(parse_uuid("3f1c2a9e-5b7d-4e21-9a0c-1d2e3f40516g").is_none());
        assert!(parse_uuid("ü").is_none());
    }

    #[test]
    fn round_trip_and_uid_binding() {
        let uid = [1, 2, 3, 4];
        let k = keys(&uid);
        let blocks = encode_record(&sample(), &k, 7, &uid, body_capacity(1)).unwrap();
        assert_eq!(blocks.len(), 3);
        let bytes = blocks.concat();
        let got = decode_record(&bytes, &uid, &k).unwrap();
        assert_eq!(got.credential, sample());
        assert_eq!(got.sequence, 7);
        // Another UID, even with keys derived for it, rejects the copy.
        let other = [1, 2, 3, 5];
        assert_eq!(
            decode_record(&bytes, &other, &keys(&other)),
            Err(FormatError::MacMismatch)
        );
        assert_eq!(
            decode_record(&bytes, &other, &k),
            Err(FormatError::MacMismatch)
        );
    }

    #[test]
    fn limits() {
        let uid = [1, 2, 3, 4];
        let k = keys(&uid);
        let mut c = sample();
        c.access_data = vec![0; 40];
        assert!(matches!(
            encode_record(&c, &k, 1, &uid, body_capacity(1)),
            Err(FormatError::TooLarge { .. })
        ));
        assert!(encode_record(&c, &k, 1, &uid, body_capacity(2)).is_ok());
        c.starts_at = Some(-1);
        assert_eq!(body_len(&c), Err(FormatError::TimeOutOfRange("starts_at")));
        c.starts_at = Some(1 << 32);
        assert!(body_len(&c).is_err());
        c.starts_at = None;
        c.card_number = "9".repeat(33);
        assert_eq!(body_len(&c), Err(FormatError::CardNumberTooLong(33)));
        assert_eq!(Header::parse(&[0; 16]), Err(FormatError::Empty));
    }

    #[test]
    fn card_numbers_all_digits_are_packed_bcd() {
        for (number, descriptor, stored) in [
            ("4009613812", 0x8A, &[0x40u8, 0x09, 0x61, 0x38, 0x12][..]),
            ("007", 0x83, &[0x00, 0x7F][..]),
            ("1234abc", 0x07, b"1234abc".as_slice()),
            ("", 0x00, &[][..]),
            ("１２", 0x06, "１２".as_bytes()),
        ] {
            let (d, bytes) = encode_card_number(number).unwrap();
            assert_eq!((d, bytes.as_slice()), (descriptor, stored), "{number}");
            assert_eq!(decode_card_number(d, &bytes).unwrap(), number);
        }
        let long = "9".repeat(32);
        let (d, bytes) = encode_card_number(&long).unwrap();
        assert_eq!((d, bytes.len()), (0x80 | 32, 16));
        // Non-digit nibbles and a bad pad are rejected.
        assert!(decode_card_number(0x82, &[0x1A]).is_err());
        assert!(decode_card_number(0x81, &[0x10]).is_err());
    }

    #[test]
    fn realistic_credential_fits_one_sector() {
        let uid = [1, 2, 3, 4, 5, 6, 7];
        let c = Credential {
            credential_id: "9b2f6c1e-7a4d-4f0b-8c35-2e91d7a40f6b".into(),
            card_number: "4009613812".into(),
            starts_at: Some(1_733_065_200),
            ends_at: Some(1_733_670_000),
            issue_counter: 1,
            access_data: vec![0xAB; 8],
        };
        assert_eq!(HEADER_LEN + body_len(&c).unwrap(), 48);
        let blocks = encode_record(&c, &keys(&uid), 1, &uid, body_capacity(1)).unwrap();
        assert_eq!(blocks.len(), 3);
    }

    #[test]
    fn serial_arithmetic() {
        assert!(is_newer(2, 1));
        assert!(is_newer(0, 0xFF));
        assert!(!is_newer(1, 2));
        assert!(!is_newer(5, 5));
    }

    fn credential() -> impl Strategy<Value = Credential> {
        (
            any::<[u8; 16]>(),
            "[0-9A-Za-z]{0,12}",
            proptest::option::of(1i64..=i64::from(u32::MAX)),
            proptest::option::of(1i64..=i64::from(u32::MAX)),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..20),
        )
            .prop_map(|(id, number, s, e, i, access)| Credential {
                credential_id: format_uuid(&id),
                card_number: number,
                starts_at: s,
                ends_at: e,
                issue_counter: i,
                access_data: access,
            })
    }

    proptest! {
        #[test]
        fn payload_round_trip(c in credential(), seq in any::<u8>(), uid in any::<[u8; 7]>()) {
            let k = keys(&uid);
            let blocks = encode_record(&c, &k, seq, &uid, body_capacity(2)).unwrap();
            let got = decode_record(&blocks.concat(), &uid, &k).unwrap();
            prop_assert_eq!(got.credential, c);
            prop_assert_eq!(got.sequence, seq);
        }

        #[test]
        fn any_changed_byte_is_rejected(c in credential(), pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let uid = [9, 8, 7, 6];
            let k = keys(&uid);
            let blocks = encode_record(&c, &k, 1, &uid, body_capacity(2)).unwrap();
            let mut bytes = blocks.concat();
            let header = Header::parse(&bytes[..16]).unwrap();
            let used = HEADER_LEN + header.body_len();
            let i = pos.index(used);
            bytes[i] ^= flip;
            prop_assert!(decode_record(&bytes, &uid, &k).is_err());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let uid = [1, 2, 3, 4];
            let k = keys(&uid);
            let _ = Header::parse(&bytes);
            prop_assert!(decode_record(&bytes, &uid, &k).is_err());
        }

        #[test]
        fn header_parse_is_sane(mut block in any::<[u8; 16]>()) {
            block[0] = FORMAT_VERSION;
            if let Ok(h) = Header::parse(&block) {
                prop_assert!(h.body_len() >= FIXED_BODY_LEN);
                prop_assert!(h.record_blocks() <= 20);
            }
        }
    }
}
