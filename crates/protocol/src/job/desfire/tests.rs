//! The `DESFire` jobs' refusals against scripted cards: what an EV0, a random-ID card, a card
//! that is no `DESFire` and a PICC that wants an unknown key answer, each command checked. The
//! whole jobs run on the independent virtual card in `tests/tests/jobs_desfire.rs`.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::desfire::channel::tests::{Script, script};
use crate::format::Credential;
use crate::keys::MasterKey;

fn info(uid: &[u8]) -> CardInfo {
    CardInfo::new(
        uid.to_vec(),
        Some(vec![0x3B, 0x81, 0x80, 0x01, 0x80, 0x80]),
        None,
        None,
    )
}

fn site() -> SiteKeys {
    SiteKeys::new(1, MasterKey::new(*b"jobs-test-site-1"))
}

fn credential() -> Credential {
    Credential {
        credential_id: "9b2f6c1e-7a4d-4f0b-8c35-2e91d7a40f6b".into(),
        card_number: "4009613812".into(),
        starts_at: Some(1_733_065_200),
        ends_at: Some(1_733_670_000),
        issue_counter: 1,
        access_data: vec![1, 2, 3, 4, 5, 6, 7, 8],
    }
}

const UID: [u8; 7] = [0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66];
const SELECT_OURS: &str = "90 5A 00 00 03 B0 0E FF 00";
const CREATE_OURS: &str = "90 CA 00 00 05 B0 0E FF 2B 83 00";

fn run_encode(card: &mut Script, uid: &[u8], options: DesfireOptions) -> Result<(), JobError> {
    let mut nonce = || [7u8; 16];
    encode(
        card,
        &info(uid),
        &site(),
        &credential(),
        options,
        &mut nonce,
    )
    .map(|_| ())
}

#[test]
fn an_ev0_is_told_by_its_version_and_refused() {
    // MF3ICD40 GetVersion: HW major 00.
    let mut card = script(&[
        (SELECT_OURS, "91 A0"),
        (CREATE_OURS, "91 9E"),
        ("90 60 00 00 00", "04 01 01 00 02 18 05 91 AF"),
        ("90 AF 00 00 00", "04 01 01 00 06 18 05 91 AF"),
        ("90 AF 00 00 00", "04112233445566 BA4519E320 49 13 91 00"),
    ]);
    let e = run_encode(&mut card, &UID, DesfireOptions::default()).unwrap_err();
    assert_eq!(e.sub_code(), Some("ev0_not_supported"), "{e}");
    assert_eq!(e.name(), "incompatible_card_format");
    assert_eq!(card.sent, 5);
}

#[test]
fn a_card_without_aes_authentication_is_an_ev0() {
    let mut card = script(&[
        (SELECT_OURS, "91 00"),
        ("90 71 00 00 02 02 00 00", "91 1C"),
        ("90 AA 00 00 01 02 00", "91 1C"),
    ]);
    let e = run_encode(&mut card, &UID, DesfireOptions::default()).unwrap_err();
    assert_eq!(e.sub_code(), Some("ev0_not_supported"), "{e}");
}

#[test]
fn a_random_id_card_is_refused_before_any_apdu() {
    let mut card = script(&[]);
    let e = run_encode(
        &mut card,
        &[0x08, 0x12, 0x34, 0x56],
        DesfireOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.sub_code(), Some("uid_unavailable"), "{e}");
    assert_eq!(card.sent, 0);
    let mut nonce = || [7u8; 16];
    let e = scan(&mut card, &info(&[0x08, 1, 2, 3]), &site(), &mut nonce).unwrap_err();
    assert_eq!(e.sub_code(), Some("uid_unavailable"));
}

#[test]
fn an_iso_card_that_is_no_desfire_is_incompatible() {
    let mut card = script(&[(SELECT_OURS, "6D 00")]);
    let e = run_encode(&mut card, &UID, DesfireOptions::default()).unwrap_err();
    assert_eq!(e.sub_code(), Some("not_desfire"), "{e}");
    let mut card = script(&[(SELECT_OURS, "6E 00")]);
    let mut nonce = || [7u8; 16];
    let e = scan(&mut card, &info(&UID), &site(), &mut nonce).unwrap_err();
    assert_eq!(e.sub_code(), Some("not_desfire"), "{e}");
}

#[test]
fn a_picc_that_wants_an_unknown_key_is_picc_key_unknown() {
    let mut card = script(&[
        (SELECT_OURS, "91 A0"),
        (CREATE_OURS, "91 AE"),
        ("90 5A 00 00 03 00 00 00 00", "91 00"),
        // Our PICC key (EV2First): the card's challenge, then it refuses our answer.
        (
            "90 71 00 00 02 00 00 00",
            "00112233445566778899AABBCCDDEEFF 91 AF",
        ),
        ("", "91 AE"),
        // The factory DES key (legacy): refused too.
        ("90 0A 00 00 01 00 00", "0011223344556677 91 AF"),
        ("", "91 AE"),
    ]);
    let e = run_encode(&mut card, &UID, DesfireOptions::default()).unwrap_err();
    assert_eq!(e.sub_code(), Some("picc_key_unknown"), "{e}");
    assert_eq!(e.name(), "incompatible_card_format");
}

#[test]
fn a_full_card_is_no_room_and_a_lost_card_no_card() {
    let mut card = script(&[(SELECT_OURS, "91 A0"), (CREATE_OURS, "91 CE")]);
    let e = run_encode(&mut card, &UID, DesfireOptions::default()).unwrap_err();
    assert_eq!(e.sub_code(), Some("no_room"), "{e}");
    let mut card = script(&[]);
    let e = run_encode(&mut card, &UID, DesfireOptions::default()).unwrap_err();
    assert_eq!(e.name(), "no_card_on_encoder", "{e}");
    // After the first write, a lost card is an interrupted encode.
    let mut card = script(&[(SELECT_OURS, "91 A0")]);
    let e = run_encode(&mut card, &UID, DesfireOptions::default()).unwrap_err();
    assert_eq!(e.name(), "encoding_interrupted", "{e}");
}

#[test]
fn a_scan_of_a_card_without_our_application_is_blank() {
    let mut card = script(&[(SELECT_OURS, "91 A0")]);
    let mut nonce = || [7u8; 16];
    let out = scan(&mut card, &info(&UID), &site(), &mut nonce).unwrap();
    assert_eq!(out.state, crate::job::CardState::Blank);
    assert_eq!(out.apdu_count, 1);
}
