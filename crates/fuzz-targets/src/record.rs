//! `classic_record`: the credential record read from a card (`encoder_protocol::format`, card
//! formats v1 and v2, docs/card-format.md).

use cmac::{Cmac, Mac};
use encoder_protocol::format::{self, FormatError, Header};
use encoder_protocol::keys::{CardKeys, MasterKey};

use crate::input::Input;

/// Card keys for the fuzzed records (a fixed test master key, key version 1).
fn keys(uid: &[u8]) -> Option<CardKeys> {
    CardKeys::derive(&MasterKey::new(*b"fuzz-master-key!"), 1, uid).ok()
}

/// Writes the record MAC into `record` as docs/card-format.md §5 defines it for the record's
/// format version, so that a fuzzed record gets past the MAC check and its fields are decoded.
/// Written from the document, not from the crate's private functions: the target also checks
/// that the two agree.
/// - v1: AES-CMAC over `"encoder-bridge/v1" ‖ len(UID) ‖ UID ‖ header bytes 0-6 ‖ body`, first
///   4 bytes at header bytes 7-10;
/// - v2: AES-CMAC over `"encoder-bridge/v2" ‖ key version ‖ len(UID) ‖ UID ‖ header bytes 0-4
///   ‖ body`, first 8 bytes at header bytes 5-12.
fn sign(record: &mut [u8], uid: &[u8], keys: &CardKeys) {
    let Ok(header) = Header::parse(record) else {
        return;
    };
    let header_len = header.header_len();
    let end = (header_len + header.body_len()).min(record.len());
    let Ok(mut cmac) = <Cmac<aes::Aes128> as Mac>::new_from_slice(&keys.mac_key().to_bytes())
    else {
        return;
    };
    let (covered, mac_at, mac_len) = match record.first() {
        Some(&format::FORMAT_V1) => {
            cmac.update(format::v1::MAC_DOMAIN);
            (7, 7, format::v1::MAC_LEN)
        }
        Some(&format::FORMAT_V2) => {
            cmac.update(format::v2::MAC_DOMAIN);
            cmac.update(&[keys.version()]);
            (5, 5, format::v2::MAC_LEN)
        }
        _ => return,
    };
    cmac.update(&[u8::try_from(uid.len()).unwrap_or(u8::MAX)]);
    cmac.update(uid);
    cmac.update(record.get(..covered).unwrap_or_default());
    cmac.update(record.get(header_len..end).unwrap_or_default());
    let tag = cmac.finalize().into_bytes();
    if let Some(mac) = record.get_mut(mac_at..mac_at + mac_len) {
        for (dst, src) in mac.iter_mut().zip(tag.iter()) {
            *dst = *src;
        }
    }
}

/// The first byte picks the UID length (4, 7 or 10), then come the UID and the record bytes.
/// The record is decoded as read, then once more with its MAC made valid.
///
/// Properties: a header never claims more than the 255-byte body limit allows; a record that
/// decodes was MAC'd with these keys and re-encodes (same credential, sequence and keys) to
/// the same bytes up to the record's length; changing a bit of a valid record makes it fail.
pub fn classic_record(data: &[u8]) {
    let mut input = Input::new(data);
    let uid_len = [4usize, 7, 10]
        .get(usize::from(input.byte() % 3))
        .copied()
        .unwrap_or(4);
    let uid = input.bytes(uid_len).to_vec();
    let record = input.rest();
    let Some(keys) = keys(&uid) else {
        return;
    };
    if let Ok(header) = Header::parse(record) {
        // At most 32 card number bytes (UTF-8) and 255 bytes of access data.
        let fixed = format::v1::FIXED_BODY_LEN.max(format::v2::FIXED_BODY_LEN);
        let most = fixed + format::MAX_CARD_NUMBER_LEN + 255;
        assert!(header.body_len() <= most);
        assert!(header.record_blocks() * 16 <= header.header_len() + most + 15);
    }
    check(record, &uid, &keys);
    let mut signed = record.to_vec();
    sign(&mut signed, &uid, &keys);
    check(&signed, &uid, &keys);
}

fn check(record: &[u8], uid: &[u8], keys: &CardKeys) {
    let Ok(decoded) = format::decode_record(record, uid, keys) else {
        return;
    };
    let header = Header::parse(record).ok();
    let len = header.map_or(0, |h| h.header_len() + h.body_len());
    // We write v2 only: a v1 record re-encodes as v2, which is checked by decoding it back.
    let v1 = record.first() == Some(&format::FORMAT_V1);
    let capacity = format::body_capacity(2);
    match format::encode_record(&decoded.credential, keys, decoded.sequence, uid, capacity) {
        Ok(blocks) => {
            // A UTF-8 card number made of digits is stored as BCD when we write it.
            let packed_differently = header.is_some_and(|h| h.card_number & format::BCD_FLAG == 0)
                && !decoded.credential.card_number.is_empty()
                && decoded
                    .credential
                    .card_number
                    .bytes()
                    .all(|b| b.is_ascii_digit());
            let again = blocks.concat();
            if v1 {
                // v2 keeps whole minutes: a start rounds up, an end down (§5.2).
                let mut expected = decoded.credential.clone();
                expected.starts_at = expected.starts_at.map(|t| t + (60 - t.rem_euclid(60)) % 60);
                expected.ends_at = expected.ends_at.map(|t| t - t.rem_euclid(60));
                let back = format::decode_record(&again, uid, keys);
                assert_eq!(
                    back.map(|b| b.credential).ok(),
                    Some(expected),
                    "a v1 record re-encoded as v2 reads back differently"
                );
            } else if !packed_differently {
                assert_eq!(again.get(..len), record.get(..len), "{decoded:?}");
            }
        }
        // A record on a card may be larger than what a two-sector slot takes today, or hold a
        // card number we would store differently (a UTF-8 number made of digits).
        Err(FormatError::TooLarge { .. }) => {}
        // A v1 credential need not fit v2 (times beyond its range, a counter above 255): a
        // re-encode writes the cloud's new credential, never the old one.
        Err(_) if v1 => {}
        Err(e) => {
            let digits = !decoded.credential.card_number.is_empty()
                && decoded
                    .credential
                    .card_number
                    .bytes()
                    .all(|b| b.is_ascii_digit());
            assert!(
                digits,
                "a decoded record does not re-encode: {e} {decoded:?}"
            );
        }
    }
    // A handful of bits spread over the record (every bit would cost a CMAC each).
    for bit in (0..8).map(|i| i * len + i) {
        let mut flipped = record.to_vec();
        if let Some(byte) = flipped.get_mut(bit / 8) {
            *byte ^= 1 << (bit % 8);
        }
        if let Ok(other) = format::decode_record(&flipped, uid, keys) {
            panic!("bit {bit} flipped and still valid: {other:?}");
        }
    }
}
