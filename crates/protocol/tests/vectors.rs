//! Golden vectors of docs/card-format.md §8. The same hex appears in the document; if either
//! changes, this test fails. The full vectors file (tests/vectors/card-format.json) and its
//! Python cross-check run in the tests package (`tests/tests/card_vectors.rs`).

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use encoder_protocol::format::{self, Credential, v1};
use encoder_protocol::hex;
use encoder_protocol::job::{directory_trailer, our_trailer};
use encoder_protocol::keys::{MasterKey, SiteKeys};

const MASTER: &str = "000102030405060708090A0B0C0D0E0F";
const UID: &str = "04782E21801D80";

fn print_or_check(name: &str, got: &str, expected: &str) {
    if expected.is_empty() {
        eprintln!("{name} = {got}");
        return;
    }
    assert_eq!(got, expected, "{name}");
}

#[test]
fn documented_key_vector() {
    let site = SiteKeys::new(1, MasterKey::from_hex(MASTER).unwrap());
    let uid = hex::decode(UID).unwrap();
    let keys = site.card_keys(1, &uid).unwrap();
    print_or_check("key A", &hex::encode(&keys.key_a().to_bytes()), KEY_A);
    print_or_check("key B", &hex::encode(&keys.key_b().to_bytes()), KEY_B);
    print_or_check("MAC key", &hex::encode(&keys.mac_key().to_bytes()), MAC_KEY);
    print_or_check(
        "sector trailer",
        &hex::encode(&our_trailer(&keys).to_block()),
        TRAILER,
    );
    print_or_check(
        "directory trailer",
        &hex::encode(&directory_trailer(&keys).to_block()),
        DIR_TRAILER,
    );
}

#[test]
fn documented_record_vector() {
    let site = SiteKeys::new(1, MasterKey::from_hex(MASTER).unwrap());
    let uid = hex::decode(UID).unwrap();
    let keys = site.card_keys(1, &uid).unwrap();
    let credential = Credential {
        credential_id: "3f1c2a9e-5b7d-4e21-9a0c-1d2e3f405162".into(),
        card_number: "1234".into(),
        starts_at: Some(1_700_000_040),
        ends_at: Some(1_700_086_440),
        issue_counter: 1,
        access_data: vec![0x01, 0x02],
    };
    let blocks =
        format::encode_record(&credential, &keys, 1, &uid, format::body_capacity(2)).unwrap();
    let text: Vec<String> = blocks.iter().map(|b| hex::encode(b)).collect();
    print_or_check("record", &text.join(" "), RECORD);
    let back = format::decode_record(&blocks.concat(), &uid, &keys).unwrap();
    assert_eq!(back.credential, credential);
    assert_eq!(back.format_version, 2);
}

/// The v1 record of the same credential (times in seconds), as cards in the field hold it:
/// still decoded, byte for byte the vector of the v1 document.
#[test]
fn documented_v1_record_vector() {
    let site = SiteKeys::new(1, MasterKey::from_hex(MASTER).unwrap());
    let uid = hex::decode(UID).unwrap();
    let keys = site.card_keys(1, &uid).unwrap();
    let credential = Credential {
        credential_id: "3f1c2a9e-5b7d-4e21-9a0c-1d2e3f405162".into(),
        card_number: "1234".into(),
        starts_at: Some(1_700_000_000),
        ends_at: Some(1_700_086_400),
        issue_counter: 1,
        access_data: vec![0x01, 0x02],
    };
    let blocks = v1::encode(&credential, &keys, 1, &uid).unwrap();
    let text: Vec<String> = blocks.iter().map(|b| hex::encode(b)).collect();
    print_or_check("v1 record", &text.join(" "), RECORD_V1);
    let back = format::decode_record(&blocks.concat(), &uid, &keys).unwrap();
    assert_eq!((back.credential, back.format_version), (credential, 1));
}

/// A realistic credential (10-digit card number, 8 bytes of access data) fills one sector
/// exactly in v2. Its MAC is cross-checked by `tests/vectors/check_vectors.py` (the vectors
/// file holds this record as `v2_doc_section_8_realistic`).
#[test]
fn documented_realistic_record_vector() {
    let site = SiteKeys::new(1, MasterKey::from_hex(MASTER).unwrap());
    let uid = hex::decode(UID).unwrap();
    let keys = site.card_keys(1, &uid).unwrap();
    let credential = Credential {
        credential_id: "9b2f6c1e-7a4d-4f0b-8c35-2e91d7a40f6b".into(),
        card_number: "4009613812".into(),
        starts_at: Some(1_733_065_200),
        ends_at: Some(1_733_670_000),
        issue_counter: 1,
        access_data: vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
    };
    let blocks =
        format::encode_record(&credential, &keys, 1, &uid, format::body_capacity(1)).unwrap();
    let text: Vec<String> = blocks.iter().map(|b| hex::encode(b)).collect();
    print_or_check("realistic record", &text.join(" "), RECORD_REALISTIC);
    let back = format::decode_record(&blocks.concat(), &uid, &keys).unwrap();
    assert_eq!(back.credential, credential);
}

const KEY_A: &str = "D17A4AA925D8";
const KEY_B: &str = "0F85C0370875";
const MAC_KEY: &str = "EFB985DB4C235160AA7183F42618F6C8";
const TRAILER: &str = "D17A4AA925D8787788690F85C0370875";
const DIR_TRAILER: &str = "A0A1A2A3A4A5787788C10F85C0370875";
const RECORD: &str = "0201840201F02F8439A9E6D1813F1C2A 9E5B7D4E219A0C1D2E3F4051621F1156 1F16F612340102000000000000000000";
const RECORD_V1: &str = "01010184020001355F7C6F3F1C2A9E5B 7D4E219A0C1D2E3F4051626553F10065 55428012340102000000000000000000";
const RECORD_REALISTIC: &str = "02018A0801DC8363F13D31C8D89B2F6C 1E7A4D4F0B8C352E91D7A40F6B277A04 27A16440096138121122334455667788";
