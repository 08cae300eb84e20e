//! Format v1 (docs/card-format.md §5.6): read so that cards in the field keep scanning, and
//! replaced by a v2 record on their next re-encode. The jobs never write v1; [`encode`] exists
//! so that tests (and lock vendors) can make v1 cards.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version `01` |
//! | 1 | 1 | key version |
//! | 2 | 1 | sequence number |
//! | 3 | 1 | card number descriptor |
//! | 4 | 1 | access data length `a` |
//! | 5 | 2 | issue counter, big-endian |
//! | 7 | 4 | MAC: AES-CMAC(MAC key, `"encoder-bridge/v1" ‖ len(U) ‖ U ‖ record[0..7] ‖ body`)[0..4] |
//! | 11 | 16 | credential id |
//! | 27 | 4 | `starts_at`, u32 BE unix seconds, 0 = none |
//! | 31 | 4 | `ends_at`, same |
//! | 35 | m | card number |
//! | 35+m | a | access data |

use super::{
    CardCredential, Credential, FORMAT_V1, FormatError, Header, authenticated_body, cmac, number,
    parse_uuid, split_body, to_blocks,
};
use crate::keys::CardKeys;
use crate::mifare::Block;

/// v1 header length.
pub const HEADER_LEN: usize = 11;
/// v1 MAC length (32 bits).
pub const MAC_LEN: usize = 4;
/// v1 fixed body part: id and two u32 times.
pub const FIXED_BODY_LEN: usize = 24;
/// Domain separation prefix of the v1 MAC input.
pub const MAC_DOMAIN: &[u8; 17] = b"encoder-bridge/v1";

pub(super) fn parse_header(block: &[u8]) -> Result<Header, FormatError> {
    let [v, kv, seq, number, access, i0, i1, m0, m1, m2, m3, ..] = block else {
        return Err(FormatError::BadLength);
    };
    number::check_descriptor(*number)?;
    let mac = [*m0, *m1, *m2, *m3, 0, 0, 0, 0];
    Ok(Header {
        format_version: *v,
        key_version: Some(*kv),
        sequence: *seq,
        card_number: *number,
        access_len: *access,
        issue_counter: u16::from_be_bytes([*i0, *i1]),
        mac,
    })
}

fn mac(keys: &CardKeys, uid: &[u8], prefix: &[u8], body: &[u8]) -> [u8; MAC_LEN] {
    let len = [u8::try_from(uid.len()).unwrap_or(u8::MAX)];
    cmac(keys, &[MAC_DOMAIN, &len, uid, prefix, body])
}

pub(super) fn decode(
    header: &Header,
    bytes: &[u8],
    uid: &[u8],
    keys: &CardKeys,
) -> Result<CardCredential, FormatError> {
    let body = authenticated_body(header, bytes, 7, |prefix, body| {
        mac(keys, uid, prefix, body)
    })?;
    let found = header.key_version.unwrap_or(0);
    if found != keys.version() {
        return Err(FormatError::KeyVersionMismatch {
            found,
            expected: keys.version(),
        });
    }
    let super::BodyParts {
        id,
        times,
        card_number,
        access_data,
    } = split_body(body, 8, header.card_number)?;
    let time = |range: std::ops::Range<usize>| -> Option<i64> {
        let b: [u8; 4] = times.get(range)?.try_into().ok()?;
        match u32::from_be_bytes(b) {
            0 => None,
            v => Some(i64::from(v)),
        }
    };
    Ok(CardCredential {
        credential: Credential {
            credential_id: super::format_uuid(&id),
            card_number,
            starts_at: time(0..4),
            ends_at: time(4..8),
            issue_counter: header.issue_counter,
            access_data,
        },
        format_version: FORMAT_V1,
        key_version: found,
        sequence: header.sequence,
    })
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

/// Encodes a v1 record (times 1 ..= 2^32−1 unix seconds). Not used by the jobs: they write v2.
pub fn encode(
    credential: &Credential,
    keys: &CardKeys,
    sequence: u8,
    uid: &[u8],
) -> Result<Vec<Block>, FormatError> {
    let id = parse_uuid(&credential.credential_id).ok_or(FormatError::BadCredentialId)?;
    let (descriptor, stored) = number::encode(&credential.card_number)?;
    let len = FIXED_BODY_LEN + stored.len() + credential.access_data.len();
    let access_len = u8::try_from(credential.access_data.len())
        .map_err(|_| FormatError::TooLarge { len, capacity: 85 })?;
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(&id);
    body.extend_from_slice(&time_to_card(credential.starts_at, "starts_at")?.to_be_bytes());
    body.extend_from_slice(&time_to_card(credential.ends_at, "ends_at")?.to_be_bytes());
    body.extend_from_slice(&stored);
    body.extend_from_slice(&credential.access_data);
    let [i0, i1] = credential.issue_counter.to_be_bytes();
    let prefix = [
        FORMAT_V1,
        keys.version(),
        sequence,
        descriptor,
        access_len,
        i0,
        i1,
    ];
    let tag = mac(keys, uid, &prefix, &body);
    let mut bytes = Vec::with_capacity(HEADER_LEN + len + 15);
    bytes.extend_from_slice(&prefix);
    bytes.extend_from_slice(&tag);
    bytes.extend_from_slice(&body);
    Ok(to_blocks(bytes))
}
