//! Format v2 (docs/card-format.md §5.1-5.2): written by every encode since issue 13.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version `02` |
//! | 1 | 1 | sequence number (u8, RFC 1982) |
//! | 2 | 1 | card number descriptor ([`super::number`]) |
//! | 3 | 1 | access data length `a` |
//! | 4 | 1 | issue counter (u8) |
//! | 5 | 8 | MAC |
//! | 13 | 16 | credential id (UUID bytes) |
//! | 29 | 3 | `starts_at`: u24 BE minutes since 2020-01-01T00:00:00Z, 0 = none |
//! | 32 | 3 | `ends_at`: same |
//! | 35 | m | card number |
//! | 35+m | a | access data |
//!
//! MAC = AES-CMAC(MAC key, `"encoder-bridge/v2" ‖ key version ‖ len(U) ‖ U ‖ record[0..5] ‖
//! body`)[0..8], `len(U)` one byte. The key version is authenticated, not stored: a reader
//! knows it already, from the key that opened the sector.

use super::{
    CardCredential, Credential, FORMAT_V2, FormatError, Header, authenticated_body, cmac, number,
    parse_uuid, split_body, to_blocks,
};
use crate::keys::CardKeys;
use crate::mifare::Block;

/// v2 header length.
pub const HEADER_LEN: usize = 13;
/// v2 MAC length (64 bits, NIST SP 800-38B's floor for an unrestricted verifier).
pub const MAC_LEN: usize = 8;
/// v2 fixed body part: id and two u24 times.
pub const FIXED_BODY_LEN: usize = 22;
/// Domain separation prefix of the v2 MAC input.
pub const MAC_DOMAIN: &[u8; 17] = b"encoder-bridge/v2";
/// Epoch of v2 times: 2020-01-01T00:00:00Z in unix seconds.
pub const TIME_EPOCH: i64 = 1_577_836_800;
/// Largest v2 time value, in minutes since [`TIME_EPOCH`] (2^24 − 1).
pub const MAX_MINUTES: i64 = 0x00FF_FFFF;
/// Latest time v2 can hold, unix seconds (2051-11-24T20:15:00Z).
pub const MAX_TIME: i64 = TIME_EPOCH + MAX_MINUTES * 60;
/// Largest issue counter v2 holds.
pub const MAX_ISSUE_COUNTER: u16 = 0xFF;

pub(super) fn parse_header(block: &[u8]) -> Result<Header, FormatError> {
    let [v, seq, number, access, counter, m @ ..] = block else {
        return Err(FormatError::BadLength);
    };
    number::check_descriptor(*number)?;
    let mac: [u8; MAC_LEN] = m
        .get(..MAC_LEN)
        .and_then(|m| m.try_into().ok())
        .ok_or(FormatError::BadLength)?;
    Ok(Header {
        format_version: *v,
        key_version: None,
        sequence: *seq,
        card_number: *number,
        access_len: *access,
        issue_counter: u16::from(*counter),
        mac,
    })
}

fn mac(keys: &CardKeys, uid: &[u8], prefix: &[u8], body: &[u8]) -> [u8; MAC_LEN] {
    let len = [u8::try_from(uid.len()).unwrap_or(u8::MAX)];
    cmac(
        keys,
        &[MAC_DOMAIN, &[keys.version()], &len, uid, prefix, body],
    )
}

/// A start on the card: rounded up to the minute (a card never opens before it is due).
fn start_to_card(value: Option<i64>) -> Result<u32, FormatError> {
    to_minutes(value, "starts_at", 59)
}

/// An end on the card: rounded down to the minute (a card never opens after it expired).
fn end_to_card(value: Option<i64>) -> Result<u32, FormatError> {
    to_minutes(value, "ends_at", 0)
}

fn to_minutes(value: Option<i64>, field: &'static str, round: i64) -> Result<u32, FormatError> {
    let Some(t) = value else {
        return Ok(0);
    };
    let minutes = t
        .checked_sub(TIME_EPOCH)
        .and_then(|s| s.checked_add(round))
        .map(|s| s.div_euclid(60))
        .ok_or(FormatError::TimeOutOfRange(field))?;
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(FormatError::TimeOutOfRange(field));
    }
    u32::try_from(minutes).map_err(|_| FormatError::TimeOutOfRange(field))
}

fn time_from_card(bytes: &[u8]) -> Option<i64> {
    let [a, b, c] = bytes else {
        return None;
    };
    match u32::from_be_bytes([0, *a, *b, *c]) {
        0 => None,
        m => Some(TIME_EPOCH + i64::from(m) * 60),
    }
}

/// Body length of `credential` in v2, after validating its fields (not the capacity).
pub fn body_len(credential: &Credential) -> Result<usize, FormatError> {
    if parse_uuid(&credential.credential_id).is_none() {
        return Err(FormatError::BadCredentialId);
    }
    if credential.issue_counter > MAX_ISSUE_COUNTER {
        return Err(FormatError::IssueCounterTooLarge(credential.issue_counter));
    }
    let (_, stored) = number::encode(&credential.card_number)?;
    start_to_card(credential.starts_at)?;
    end_to_card(credential.ends_at)?;
    Ok(FIXED_BODY_LEN + stored.len() + credential.access_data.len())
}

/// Encodes a v2 record; `capacity` is the slot's body capacity ([`super::body_capacity`]).
pub fn encode(
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
    let counter = u8::try_from(credential.issue_counter)
        .map_err(|_| FormatError::IssueCounterTooLarge(credential.issue_counter))?;
    let (descriptor, stored) = number::encode(&credential.card_number)?;
    let id = parse_uuid(&credential.credential_id).ok_or(FormatError::BadCredentialId)?;
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(&id);
    for minutes in [
        start_to_card(credential.starts_at)?,
        end_to_card(credential.ends_at)?,
    ] {
        body.extend_from_slice(minutes.to_be_bytes().get(1..).unwrap_or(&[0; 3]));
    }
    body.extend_from_slice(&stored);
    body.extend_from_slice(&credential.access_data);
    let prefix = [FORMAT_V2, sequence, descriptor, access_len, counter];
    let tag = mac(keys, uid, &prefix, &body);
    let mut bytes = Vec::with_capacity(HEADER_LEN + len + 15);
    bytes.extend_from_slice(&prefix);
    bytes.extend_from_slice(&tag);
    bytes.extend_from_slice(&body);
    Ok(to_blocks(bytes))
}

pub(super) fn decode(
    header: &Header,
    bytes: &[u8],
    uid: &[u8],
    keys: &CardKeys,
) -> Result<CardCredential, FormatError> {
    let body = authenticated_body(header, bytes, 5, |prefix, body| {
        mac(keys, uid, prefix, body)
    })?;
    let super::BodyParts {
        id,
        times,
        card_number,
        access_data,
    } = split_body(body, 6, header.card_number)?;
    Ok(CardCredential {
        credential: Credential {
            credential_id: super::format_uuid(&id),
            card_number,
            starts_at: times.get(0..3).and_then(time_from_card),
            ends_at: times.get(3..6).and_then(time_from_card),
            issue_counter: header.issue_counter,
            access_data,
        },
        format_version: FORMAT_V2,
        key_version: keys.version(),
        sequence: header.sequence,
    })
}

/// Recomputes the MAC of the v2 record in `bytes` (header block first) and writes it into the
/// header, whatever the other bytes say. For negative test vectors that need a record with a
/// valid MAC but a bad field (tests/vectors/); the jobs never call it.
pub fn seal(bytes: &mut [u8], keys: &CardKeys, uid: &[u8]) -> Result<(), FormatError> {
    let header = parse_header(bytes)?;
    let end = HEADER_LEN + header.body_len();
    let body = bytes.get(HEADER_LEN..end).ok_or(FormatError::BadLength)?;
    let prefix = bytes.get(..5).ok_or(FormatError::BadLength)?;
    let tag = mac(keys, uid, prefix, body);
    let slot = bytes.get_mut(5..HEADER_LEN).ok_or(FormatError::BadLength)?;
    slot.copy_from_slice(&tag);
    Ok(())
}
