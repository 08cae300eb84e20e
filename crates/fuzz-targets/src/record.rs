//! `classic_record`: the credential record read from a card (`encoder_protocol::format`, card
//! format v1, docs/card-format.md).

use cmac::{Cmac, Mac};
use encoder_protocol::format::{self, FormatError, HEADER_LEN, Header, MAC_LEN};
use encoder_protocol::keys::{CardKeys, MasterKey};

use crate::input::Input;

/// Card keys for the fuzzed records (a fixed test master key, key version 1).
fn keys(uid: &[u8]) -> Option<CardKeys> {
    CardKeys::derive(&MasterKey::new(*b"fuzz-master-key!"), 1, uid).ok()
}

/// Writes the record MAC (docs/card-format.md §5: AES-CMAC over the domain, the UID with its
/// length, the 7 header bytes before the MAC, and the body) into `record`, so that a fuzzed
/// record gets past the MAC check and its fields are decoded. Written from the document, not
/// from the crate's private function: the target also checks that the two agree.
fn sign(record: &mut [u8], uid: &[u8], keys: &CardKeys) {
    let Ok(header) = Header::parse(record) else {
        return;
    };
    let end = (HEADER_LEN + header.body_len()).min(record.len());
    let Ok(mut cmac) = <Cmac<aes::Aes128> as Mac>::new_from_slice(&keys.mac_key().to_bytes())
    else {
        return;
    };
    cmac.update(format::MAC_DOMAIN);
    cmac.update(&[u8::try_from(uid.len()).unwrap_or(u8::MAX)]);
    cmac.update(uid);
    cmac.update(record.get(..7).unwrap_or_default());
    cmac.update(record.get(HEADER_LEN..end).unwrap_or_default());
    let tag = cmac.finalize().into_bytes();
    if let Some(mac) = record.get_mut(7..7 + MAC_LEN) {
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
        let most = format::FIXED_BODY_LEN + format::MAX_CARD_NUMBER_LEN + 255;
        assert!(header.body_len() <= most);
        assert!(header.record_blocks() * 16 <= HEADER_LEN + most + 15);
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
    let len = header.map_or(0, |h| HEADER_LEN + h.body_len());
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
            if !packed_differently {
                let again = blocks.concat();
                assert_eq!(again.get(..len), record.get(..len), "{decoded:?}");
            }
        }
        // A record on a card may be larger than what a two-sector slot takes today, or hold a
        // card number we would store differently (a UTF-8 number made of digits).
        Err(FormatError::TooLarge { .. }) => {}
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
