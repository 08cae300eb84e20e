#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::expect_used,
    clippy::needless_range_loop
)]

use super::fake::{FakeCard, TearMode};
use super::*;
use crate::card::CardInfo;
use crate::error::JobError;
use crate::format::{APP_AID, Credential};
use crate::hex;
use crate::keys::{MasterKey, SiteKeys};
use crate::mifare::geometry::Geometry;
use crate::mifare::mad::{Aid, Mad1};
use crate::transmit::{Transmit, TransmitError, TransmitErrorKind};
use proptest::prelude::*;

const ATR_1K: &str = "3B8F8001804F0CA000000306030001000000006A";
const ATR_DESFIRE: &str = "3B8180018080";
const UID: [u8; 4] = [0xDE, 0xAD, 0xBE, 0xEF];

fn atr() -> Vec<u8> {
    hex::decode(ATR_1K).unwrap()
}

/// What the hal would hand the job for a 1K card with [`UID`].
fn info() -> CardInfo {
    info_with(&atr(), &UID)
}

fn info_with(atr: &[u8], uid: &[u8]) -> CardInfo {
    CardInfo::new(uid.to_vec(), Some(atr.to_vec()), None, None)
}

fn site() -> SiteKeys {
    SiteKeys::new(1, MasterKey::new(*b"site-master-key1"))
}

fn cred(n: u8) -> Credential {
    Credential {
        credential_id: format!("3f1c2a9e-5b7d-4e21-9a0c-1d2e3f4051{n:02x}"),
        card_number: format!("10{n:02}"),
        starts_at: Some(1_700_000_040 + 60 * i64::from(n)),
        ends_at: Some(1_700_086_440),
        issue_counter: u16::from(n),
        access_data: vec![n, 2],
    }
}

fn fresh_scan(card: &mut FakeCard, site: &SiteKeys) -> Result<ScanOutcome, JobError> {
    card.reinsert();
    scan(card, &info(), site)
}

#[test]
fn blank_encode_scan_reencode_within_budgets() {
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    let site = site();
    let out = encode(&mut card, &info(), &site, &cred(1)).unwrap();
    eprintln!("encode blank 1K: {} APDUs", out.apdu_count);
    assert!(out.first_encode);
    assert!(out.apdu_count <= 34, "{}", out.apdu_count);
    assert_eq!(out.apdu_count, card.count);
    assert_eq!(out.written.credential, cred(1));

    let scanned = fresh_scan(&mut card, &site).unwrap();
    eprintln!("scan: {} APDUs", scanned.apdu_count);
    assert!(scanned.apdu_count <= 12, "{}", scanned.apdu_count);
    assert_eq!(scanned.state, CardState::Ours);
    assert_eq!(scanned.credential.unwrap().credential, cred(1));
    assert_eq!(scanned.uid, UID.to_vec());

    for n in 2..6 {
        card.reinsert();
        let out = encode(&mut card, &info(), &site, &cred(n)).unwrap();
        eprintln!("re-encode #{n}: {} APDUs", out.apdu_count);
        assert!(!out.first_encode);
        assert!(out.apdu_count <= 20, "{}", out.apdu_count);
        assert_eq!(out.written.sequence, n);
        let scanned = fresh_scan(&mut card, &site).unwrap();
        eprintln!("scan after #{n}: {} APDUs", scanned.apdu_count);
        assert!(scanned.apdu_count <= 12, "{}", scanned.apdu_count);
        assert_eq!(scanned.credential.unwrap().credential, cred(n));
    }
    // Same credential again: only header and MAC blocks change.
    card.reinsert();
    let again = encode(&mut card, &info(), &site, &cred(5)).unwrap();
    eprintln!("re-encode same credential: {} APDUs", again.apdu_count);
}

/// A reader with more key slots and multi-block reads: the same cards and results, fewer
/// APDUs, and each key loaded once per job.
#[test]
fn reader_caps_save_apdus_and_reloads() {
    let site = site();
    let load_keys = |card: &FakeCard| card.log.iter().filter(|c| c.get(1) == Some(&0x82)).count();
    let distinct_keys = |card: &FakeCard| {
        let mut keys: Vec<&[u8]> = card
            .log
            .iter()
            .filter(|c| c.get(1) == Some(&0x82))
            .filter_map(|c| c.get(5..))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.len()
    };
    for geometry in [Geometry::CLASSIC_1K, Geometry::CLASSIC_4K] {
        let mut plain = FakeCard::blank(geometry, &UID);
        let mut rich = FakeCard::blank(geometry, &UID);
        rich.caps = crate::transmit::ReaderCaps {
            key_slots: 8,
            read_blocks: 3,
        };
        for n in 1..4 {
            for card in [&mut plain, &mut rich] {
                card.reinsert();
                card.log.clear();
                card.count = 0;
            }
            let a = encode(&mut plain, &info(), &site, &cred(n)).unwrap();
            let b = encode(&mut rich, &info(), &site, &cred(n)).unwrap();
            assert_eq!(a.written, b.written);
            assert!(
                b.apdu_count < a.apdu_count,
                "{} vs {}",
                b.apdu_count,
                a.apdu_count
            );
            assert_eq!(load_keys(&rich), distinct_keys(&rich), "a key loaded twice");
            assert!(
                rich.log
                    .iter()
                    .any(|c| c.starts_with(&[0xFF, 0xB0]) && c.get(4) != Some(&0x10))
            );
            let a = fresh_scan(&mut plain, &site).unwrap();
            rich.log.clear();
            let b = fresh_scan(&mut rich, &site).unwrap();
            assert_eq!(a.credential, b.credential);
            assert!(
                b.apdu_count < a.apdu_count,
                "scan {} vs {}",
                b.apdu_count,
                a.apdu_count
            );
            assert_eq!(load_keys(&rich), distinct_keys(&rich));
        }
        assert_eq!(plain.blocks, rich.blocks);
    }
}

#[test]
fn a_factory_keyed_sector_without_transport_conditions_is_not_claimed() {
    // Regression (whole_job fuzz target): sector 1 opens with the factory key A but its
    // trailer is `000` (key A writes the keys, nobody the access bits). The encode wrote our
    // trailer there, the card kept the old access bits, the encode reported success, and
    // every later scan failed on that sector. Such a sector must be left alone.
    use crate::mifare::access::{AccessBits, DataAccess, TrailerAccess};
    let access = AccessBits::new([DataAccess::ReadWriteAB; 3], TrailerAccess::KeysByA).encode();
    let mut trailer = [0xFF; 16];
    trailer[6..9].copy_from_slice(&access);
    trailer[9] = 0x69;
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    card.set_trailer(1, trailer);
    let site = site();
    let out = encode(&mut card, &info(), &site, &cred(1)).unwrap();
    assert!(out.first_encode);
    assert_eq!(card.blocks[7], trailer, "sector 1's trailer was written");
    let mad = Mad1::parse(&[card.blocks[1], card.blocks[2]].concat()).unwrap();
    assert_eq!(mad.aid(1), Some(Aid::FREE));
    assert_eq!(mad.sectors_of(APP_AID), vec![2, 3, 4, 5]);
    for n in 2..4 {
        card.reinsert();
        encode(&mut card, &info(), &site, &cred(n)).unwrap();
        let scanned = fresh_scan(&mut card, &site).unwrap();
        assert_eq!(scanned.credential.unwrap().credential, cred(n));
    }
}

#[test]
fn card_layout_matches_the_documented_format() {
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    let site = site();
    encode(&mut card, &info(), &site, &cred(1)).unwrap();
    let mad = Mad1::parse(&[card.blocks[1], card.blocks[2]].concat()).unwrap();
    assert_eq!(mad.sectors_of(APP_AID), vec![1, 2, 3, 4]);
    let keys = site.card_keys(1, &UID).unwrap();
    // Sector 0 trailer: public key A, 78 77 88 C1, our key B.
    let t0 = card.blocks[3];
    assert_eq!(&t0[0..6], &[0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5]);
    assert_eq!(&t0[6..10], &[0x78, 0x77, 0x88, 0xC1]);
    assert_eq!(&t0[10..16], &keys.key_b().to_bytes());
    for sector in 1..=4u8 {
        let t = card.blocks[usize::from(sector * 4 + 3)];
        assert_eq!(&t[0..6], &keys.key_a().to_bytes());
        assert_eq!(&t[6..10], &[0x78, 0x77, 0x88, 0x69]);
        assert_eq!(&t[10..16], &keys.key_b().to_bytes());
    }
    // Sectors 5.. untouched.
    assert_eq!(
        card.blocks[23],
        FakeCard::blank(Geometry::CLASSIC_1K, &UID).blocks[23]
    );
}

#[test]
fn not_mifare_classic_is_not_touched() {
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    let info = info_with(&hex::decode(ATR_DESFIRE).unwrap(), &UID);
    let err = encode(&mut card, &info, &site(), &cred(1)).unwrap_err();
    assert_eq!(err.name(), "incompatible_card_format");
    assert_eq!(err.sub_code(), Some("not_mifare_classic"));
    assert_eq!(card.count, 0);
    let out = scan(&mut card, &info, &site()).unwrap();
    assert_eq!(out.state, CardState::Unsupported);
    assert_eq!(out.card_type.name(), "iso14443-4");
    assert_eq!(out.apdu_count, 0);
    assert_eq!(card.count, 0, "the UID comes from CardInfo: no FF CA");
}

#[test]
fn blank_card_scans_as_blank() {
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    let out = scan(&mut card, &info(), &site()).unwrap();
    assert_eq!(out.state, CardState::Blank);
    assert!(out.credential.is_none());
    eprintln!("scan blank: {} APDUs", out.apdu_count);
    assert_eq!(card.writes, 0);
}

/// A card with a MAD in a transport-keyed sector 0 and an NDEF application in sectors 1-2
/// locked with keys we do not hold.
fn card_with_other_application() -> FakeCard {
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    let mut mad = Mad1::empty();
    mad.set(1, Aid::NDEF);
    mad.set(2, Aid::NDEF);
    let [b1, b2] = mad.to_blocks();
    card.blocks[1] = b1;
    card.blocks[2] = b2;
    card.blocks[3][9] = 0xC1;
    for sector in [1u8, 2] {
        card.set_trailer(
            sector,
            hex::decode("D3F7D3F7D3F77F078840112233445566")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        card.blocks[usize::from(sector * 4)] = [0x55; 16];
    }
    card
}

#[test]
fn other_applications_are_kept() {
    let mut card = card_with_other_application();
    let before = card.blocks.clone();
    let site = site();
    let out = encode(&mut card, &info(), &site, &cred(1)).unwrap();
    eprintln!(
        "encode card with other application: {} APDUs",
        out.apdu_count
    );
    for block in 4..12 {
        assert_eq!(card.blocks[block], before[block], "block {block}");
    }
    // Sector 0 trailer is not ours to change.
    assert_eq!(card.blocks[3], before[3]);
    let mad = Mad1::parse(&[card.blocks[1], card.blocks[2]].concat()).unwrap();
    assert_eq!(mad.sectors_of(Aid::NDEF), vec![1, 2]);
    assert_eq!(mad.sectors_of(APP_AID), vec![3, 4, 5, 6]);
    let scanned = fresh_scan(&mut card, &site).unwrap();
    assert_eq!(scanned.credential.unwrap().credential, cred(1));
    card.reinsert();
    encode(&mut card, &info(), &site, &cred(2)).unwrap();
    assert_eq!(
        fresh_scan(&mut card, &site)
            .unwrap()
            .credential
            .unwrap()
            .credential,
        cred(2)
    );
}

#[test]
fn foreign_card_scans_as_foreign() {
    let mut card = card_with_other_application();
    let out = scan(&mut card, &info(), &site()).unwrap();
    assert_eq!(out.state, CardState::Foreign);
    assert!(out.credential.is_none());
}

#[test]
fn no_room_and_locked_cards_are_incompatible() {
    let mut card = card_with_other_application();
    let mut mad = Mad1::parse(&[card.blocks[1], card.blocks[2]].concat()).unwrap();
    for sector in 1..=14 {
        mad.set(sector, Aid::NDEF);
    }
    let [b1, b2] = mad.to_blocks();
    card.blocks[1] = b1;
    card.blocks[2] = b2;
    let before = card.blocks.clone();
    let err = encode(&mut card, &info(), &site(), &cred(1)).unwrap_err();
    assert_eq!(err.name(), "incompatible_card_format");
    assert_eq!(err.sub_code(), Some("no_free_sectors"));
    assert_eq!(card.blocks, before);

    // Every sector locked with an unknown key.
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    for sector in 0..16 {
        card.set_trailer(
            sector,
            hex::decode("0102030405067F078869112233445566")
                .unwrap()
                .try_into()
                .unwrap(),
        );
    }
    let err = encode(&mut card, &info(), &site(), &cred(1)).unwrap_err();
    assert_eq!(err.name(), "incompatible_card_format");
    assert_eq!(card.writes, 0);
    assert_eq!(
        fresh_scan(&mut card, &site()).unwrap().state,
        CardState::Foreign
    );
}

#[test]
fn another_sites_card_is_foreign_and_incompatible() {
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    let other = SiteKeys::new(1, MasterKey::new([9; 16]));
    encode(&mut card, &info(), &other, &cred(1)).unwrap();
    let out = fresh_scan(&mut card, &site()).unwrap();
    assert_eq!(out.state, CardState::Foreign);
    card.reinsert();
    let before = card.blocks.clone();
    let err = encode(&mut card, &info(), &site(), &cred(2)).unwrap_err();
    assert_eq!(err.name(), "incompatible_card_format");
    assert_eq!(card.blocks, before);
}

#[test]
fn key_rotation_keeps_old_cards_readable() {
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    let old = SiteKeys::new(1, MasterKey::new([1; 16]));
    encode(&mut card, &info(), &old, &cred(1)).unwrap();
    let rotated = SiteKeys::new(2, MasterKey::new([2; 16]))
        .with_key(1, MasterKey::new([1; 16]))
        .unwrap();
    let out = fresh_scan(&mut card, &rotated).unwrap();
    let got = out.credential.unwrap();
    assert_eq!(got.key_version, 1);
    assert_eq!(got.credential, cred(1));
    card.reinsert();
    let out = encode(&mut card, &info(), &rotated, &cred(2)).unwrap();
    assert_eq!(out.written.key_version, 1);
    assert_eq!(
        fresh_scan(&mut card, &rotated)
            .unwrap()
            .credential
            .unwrap()
            .credential,
        cred(2)
    );
    // New cards get the current version.
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &[1, 2, 3, 4, 5, 6, 7]);
    let out = encode(&mut card, &info(), &rotated, &cred(3)).unwrap();
    assert_eq!(out.written.key_version, 2);
}

#[test]
fn large_record_uses_two_sectors_per_slot() {
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    let site = site();
    let mut c = cred(1);
    c.access_data = (0..40).collect();
    let out = encode(&mut card, &info(), &site, &c).unwrap();
    eprintln!("encode large record: {} APDUs", out.apdu_count);
    assert_eq!(
        fresh_scan(&mut card, &site)
            .unwrap()
            .credential
            .unwrap()
            .credential,
        c
    );
    card.reinsert();
    // Capacity of a two-sector slot: 96 - 11 = 85 body bytes = 24 + 1 (BCD "1") + 60.
    c.access_data = (0..60).collect();
    c.card_number = "1".into();
    let out = encode(&mut card, &info(), &site, &c).unwrap();
    eprintln!("re-encode large record: {} APDUs", out.apdu_count);
    assert_eq!(
        fresh_scan(&mut card, &site)
            .unwrap()
            .credential
            .unwrap()
            .credential,
        c
    );
    c.access_data = (0..61).collect();
    card.reinsert();
    let err = encode(&mut card, &info(), &site, &c).unwrap_err();
    assert_eq!(err.sub_code(), Some("invalid_credential"));
    assert_eq!(card.count, 0);
}

#[test]
fn mini_and_4k_cards() {
    let site = site();
    let atr_mini = info_with(
        &hex::decode("3B8F8001804F0CA000000306030026000000004D").unwrap(),
        &UID,
    );
    let mut card = FakeCard::blank(Geometry::MINI, &UID);
    encode(&mut card, &atr_mini, &site, &cred(1)).unwrap();
    card.reinsert();
    assert_eq!(
        scan(&mut card, &atr_mini, &site)
            .unwrap()
            .credential
            .unwrap()
            .credential,
        cred(1)
    );
    let mad = Mad1::parse(&[card.blocks[1], card.blocks[2]].concat()).unwrap();
    assert_eq!(mad.aid(5), Some(Aid::NOT_APPLICABLE));
    let atr_4k = info_with(
        &hex::decode("3B8F8001804F0CA0000003060300020000000069").unwrap(),
        &[1, 2, 3, 4, 5, 6, 7],
    );
    let mut card = FakeCard::blank(Geometry::CLASSIC_4K, &[1, 2, 3, 4, 5, 6, 7]);
    encode(&mut card, &atr_4k, &site, &cred(2)).unwrap();
    card.reinsert();
    let out = scan(&mut card, &atr_4k, &site).unwrap();
    assert_eq!(out.card_type.name(), "classic-4k");
    assert_eq!(out.credential.unwrap().credential, cred(2));
}

/// Tears at every APDU of a re-encode and of a first encode, in every tear mode; afterwards
/// the card reads as the previous credential, the new one, or (first encode only) nothing or
/// damaged - never anything else - and a new encode recovers it.
#[test]
fn tear_at_every_apdu() {
    let site = site();
    let mut base = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    encode(&mut base, &info(), &site, &cred(1)).unwrap();
    base.reinsert();
    encode(&mut base, &info(), &site, &cred(2)).unwrap();
    for (start, old, new) in [
        (FakeCard::blank(Geometry::CLASSIC_1K, &UID), None, cred(1)),
        (base.clone(), Some(cred(2)), cred(3)),
    ] {
        let mut probe = start.clone();
        probe.reinsert();
        let total = encode(&mut probe, &info(), &site, &new).unwrap().apdu_count;
        for n in 1..=total {
            for mode in [TearMode::NotApplied, TearMode::Applied, TearMode::Half] {
                let mut card = start.clone();
                card.reinsert();
                card.tear_at = Some(n);
                card.tear_mode = mode;
                let err = encode(&mut card, &info(), &site, &new).unwrap_err();
                let wrote_before = card.log[..n - 1].iter().any(|c| c.get(1) == Some(&0xD6));
                let torn_cmd = card.log[n - 1].clone();
                let expected = if wrote_before || torn_cmd.get(1) == Some(&0xD6) {
                    "encoding_interrupted"
                } else {
                    "no_card_on_encoder"
                };
                assert_eq!(err.name(), expected, "tear at {n} {mode:?}");
                let torn_trailer = torn_cmd.get(1) == Some(&0xD6)
                    && crate::mifare::geometry::is_trailer(torn_cmd[3]);
                if torn_trailer && mode == TearMode::Half {
                    // A half-written trailer can brick a sector on real cards too; nothing
                    // software can do. Skip the read-back checks for this case.
                    continue;
                }
                match fresh_scan(&mut card, &site) {
                    Ok(out) => match out.credential {
                        Some(c) => assert!(
                            Some(&c.credential) == old.as_ref() || c.credential == new,
                            "tear at {n} {mode:?}: unexpected credential"
                        ),
                        None => assert!(old.is_none(), "tear at {n} {mode:?}: lost {old:?}"),
                    },
                    Err(e) => {
                        assert!(old.is_none(), "tear at {n} {mode:?}: {e}");
                        assert_eq!(e.sub_code(), Some("card_payload_corrupt"));
                    }
                }
                card.reinsert();
                let redo = encode(&mut card, &info(), &site, &new).unwrap_or_else(|e| {
                    panic!("recovery after tear at {n} {mode:?}: {}", e.detail())
                });
                assert_eq!(redo.written.credential, new);
                assert_eq!(
                    fresh_scan(&mut card, &site)
                        .unwrap()
                        .credential
                        .unwrap()
                        .credential,
                    new
                );
            }
        }
    }
}

struct Failing(TransmitErrorKind);

impl Transmit for Failing {
    fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, TransmitError> {
        Err(TransmitError::new(self.0, "test"))
    }
}

#[test]
fn transport_failures_are_classified() {
    for (kind, name) in [
        (TransmitErrorKind::CardRemoved, "no_card_on_encoder"),
        (TransmitErrorKind::ReaderUnavailable, "encoder_not_online"),
        (TransmitErrorKind::Timeout, "encoder_communication_timeout"),
        (TransmitErrorKind::Other, "uncategorized_error"),
    ] {
        assert_eq!(
            scan(&mut Failing(kind), &info(), &site())
                .unwrap_err()
                .name(),
            name
        );
        assert_eq!(
            encode(&mut Failing(kind), &info(), &site(), &cred(1))
                .unwrap_err()
                .name(),
            name
        );
    }
}

#[test]
fn errors_and_debug_output_hold_no_keys() {
    let site = site();
    let keys = site.card_keys(1, &UID).unwrap();
    let secrets = [
        hex::encode(&keys.key_a().to_bytes()),
        hex::encode(&keys.key_b().to_bytes()),
        hex::encode(&keys.mac_key().to_bytes()),
    ];
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    encode(&mut card, &info(), &site, &cred(1)).unwrap();
    let mut texts = vec![format!("{site:?}"), format!("{keys:?}")];
    for n in [3, 9, 15] {
        let mut c = card.clone();
        c.reinsert();
        c.tear_at = Some(n);
        let e = encode(&mut c, &info(), &site, &cred(2)).unwrap_err();
        texts.push(format!("{e:?} {e} {}", e.detail()));
    }
    card.reinsert();
    let out = scan(&mut card, &info(), &site).unwrap();
    texts.push(format!("{out:?}"));
    for log in &card.log {
        texts.push(crate::apdu::redact_apdu(log));
    }
    for text in &texts {
        let flat = text.replace([' ', ','], "").to_uppercase();
        for secret in &secrets {
            assert!(!flat.contains(&secret[..8]), "secret in {text}");
        }
    }
}

/// A reader that answers with arbitrary bytes.
struct Random(Vec<Vec<u8>>);

impl Transmit for Random {
    fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, TransmitError> {
        self.0
            .pop()
            .ok_or_else(|| TransmitError::new(TransmitErrorKind::CardRemoved, "end"))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn jobs_never_panic_on_arbitrary_responses(
        responses in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..20),
                Just(vec![0x90, 0x00]),
                Just(vec![0x63, 0x00]),
                proptest::collection::vec(any::<u8>(), 18..19).prop_map(|mut v| { v[16] = 0x90; v[17] = 0; v }),
                Just(vec![0xDE, 0xAD, 0xBE, 0xEF, 0x90, 0x00]),
            ],
            0..40),
        atr in proptest::collection::vec(any::<u8>(), 0..24),
        uid in proptest::collection::vec(any::<u8>(), 0..11),
        sak in proptest::option::of(any::<u8>()),
    ) {
        let arbitrary = CardInfo::new(uid, Some(atr), sak, None);
        let mut r = Random(responses.clone());
        let _ = scan(&mut r, &arbitrary, &site());
        let mut r = Random(responses.clone());
        let _ = encode(&mut r, &arbitrary, &site(), &cred(1));
        let mut r = Random(responses);
        let _ = encode(&mut r, &info(), &site(), &cred(1));
    }
}

/// Replaces the record in `slot` (first block of sector 1 or 3 on a fresh 1K layout) with
/// `blocks`.
fn put_record(card: &mut FakeCard, slot: usize, blocks: &[[u8; 16]]) {
    let first = if slot == 0 { 4 } else { 12 };
    for (i, b) in blocks.iter().enumerate() {
        card.blocks[first + i] = *b;
    }
    for i in blocks.len()..3 {
        card.blocks[first + i] = [0; 16];
    }
}

/// A v1 card in the field (docs/card-format.md §5.6): scans, and its next re-encode writes a
/// v2 record into the other slot without writing any trailer; the re-encode after that
/// replaces the v1 record.
#[test]
fn v1_cards_scan_and_reencode_to_v2_without_touching_trailers() {
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    let site = site();
    encode(&mut card, &info(), &site, &cred(1)).unwrap();
    let keys = site.card_keys(1, &UID).unwrap();
    let mut v1_cred = cred(1);
    v1_cred.starts_at = Some(1_700_000_001);
    v1_cred.issue_counter = 700;
    put_record(
        &mut card,
        0,
        &crate::format::v1::encode(&v1_cred, &keys, 41, &UID).unwrap(),
    );
    let scanned = fresh_scan(&mut card, &site).unwrap().credential.unwrap();
    assert_eq!(
        (scanned.format_version, scanned.sequence),
        (1, 41),
        "{scanned:?}"
    );
    assert_eq!(scanned.credential, v1_cred);

    let trailers: Vec<[u8; 16]> = (0..16).map(|s| card.blocks[s * 4 + 3]).collect();
    card.reinsert();
    let out = encode(&mut card, &info(), &site, &cred(2)).unwrap();
    assert_eq!((out.written.format_version, out.written.sequence), (2, 42));
    assert!(!out.first_encode);
    assert!(
        card.log
            .iter()
            .all(|apdu| !(apdu.starts_with(&[0xFF, 0xD6])
                && apdu.get(3).is_some_and(|b| b % 4 == 3))),
        "a trailer was written"
    );
    let after: Vec<[u8; 16]> = (0..16).map(|s| card.blocks[s * 4 + 3]).collect();
    assert_eq!(trailers, after);
    assert_eq!(card.blocks[12][0], 2, "v2 record in slot B");
    assert_eq!(card.blocks[4][0], 1, "v1 record kept in slot A");
    let scanned = fresh_scan(&mut card, &site).unwrap().credential.unwrap();
    assert_eq!((scanned.format_version, scanned.credential), (2, cred(2)));

    card.reinsert();
    encode(&mut card, &info(), &site, &cred(3)).unwrap();
    assert_eq!((card.blocks[4][0], card.blocks[12][0]), (2, 2));
    let scanned = fresh_scan(&mut card, &site).unwrap().credential.unwrap();
    assert_eq!((scanned.sequence, scanned.credential), (43, cred(3)));
}

/// Records of equal sequence numbers (or 128 apart) never come from our writer; the total
/// order picks slot A for them, whatever the order of reading (docs/card-format.md §5.5).
#[test]
fn equal_or_opposite_sequences_select_slot_a() {
    let site = site();
    let keys = site.card_keys(1, &UID).unwrap();
    for (seq_a, seq_b) in [(5u8, 5u8), (5, 0x85), (0x85, 5)] {
        let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
        encode(&mut card, &info(), &site, &cred(1)).unwrap();
        let record = |c: &Credential, seq| {
            crate::format::encode_record(c, &keys, seq, &UID, crate::format::body_capacity(2))
                .unwrap()
        };
        put_record(&mut card, 0, &record(&cred(7), seq_a));
        put_record(&mut card, 1, &record(&cred(8), seq_b));
        let got = fresh_scan(&mut card, &site).unwrap().credential.unwrap();
        assert_eq!(got.credential, cred(7), "{seq_a} {seq_b}");
        // A re-encode keeps slot A's record and writes slot B with the next number.
        card.reinsert();
        let out = encode(&mut card, &info(), &site, &cred(9)).unwrap();
        assert_eq!(out.written.sequence, seq_a.wrapping_add(1));
        assert_eq!(
            fresh_scan(&mut card, &site)
                .unwrap()
                .credential
                .unwrap()
                .credential,
            cred(9)
        );
    }
}

/// A reader accepts exactly 2 or 4 sectors under our AID (docs/card-format.md §4).
#[test]
fn registered_sector_count_must_be_two_or_four() {
    let site = site();
    for count in [1u8, 3, 6] {
        let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
        encode(&mut card, &info(), &site, &cred(1)).unwrap();
        let mut mad = Mad1::parse(&[card.blocks[1], card.blocks[2]].concat()).unwrap();
        for sector in 1..=15u8 {
            let aid = if sector <= count { APP_AID } else { Aid::FREE };
            mad.set(sector, aid);
        }
        let [b1, b2] = mad.to_blocks();
        card.blocks[1] = b1;
        card.blocks[2] = b2;
        let err = fresh_scan(&mut card, &site).unwrap_err();
        assert_eq!(
            (err.name(), err.sub_code()),
            ("uncategorized_error", Some("layout_corrupt")),
            "{count}"
        );
    }
}

/// An unknown format version beside an empty slot is `unknown_format_version`; beside a
/// damaged record it is `card_payload_corrupt` (docs/card-format.md §5.5).
#[test]
fn unknown_version_and_damage_verdicts() {
    let site = site();
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    encode(&mut card, &info(), &site, &cred(1)).unwrap();
    let mut unknown = [0u8; 16];
    unknown[0] = 3;
    put_record(&mut card, 0, &[unknown]);
    let err = fresh_scan(&mut card, &site).unwrap_err();
    assert_eq!(err.sub_code(), Some("unknown_format_version"));
    put_record(&mut card, 1, &[[2; 16]]);
    let err = fresh_scan(&mut card, &site).unwrap_err();
    assert_eq!(err.sub_code(), Some("card_payload_corrupt"));
}

/// A card NFC-formatted as libfreefare's `mifare-classic-write-ndef` leaves it: sector 0 with
/// the public MAD key A, access bytes `79 67 88` (blocks 1-2 written by key B), GPB `C1` and
/// key B `key_b`; an NDEF sector 1.
fn nfc_formatted(key_b: &str) -> FakeCard {
    let mut card = FakeCard::blank(Geometry::CLASSIC_1K, &UID);
    let mut mad = Mad1::empty();
    mad.set(1, Aid::NDEF);
    let [b1, b2] = mad.to_blocks();
    card.blocks[1] = b1;
    card.blocks[2] = b2;
    card.set_trailer(
        0,
        hex::decode(&format!("A0A1A2A3A4A5796788C1{key_b}"))
            .unwrap()
            .try_into()
            .unwrap(),
    );
    card.set_trailer(
        1,
        hex::decode("D3F7D3F7D3F77F078840D3F7D3F7D3F7")
            .unwrap()
            .try_into()
            .unwrap(),
    );
    card.blocks[4] = [0x03; 16];
    card
}

/// docs/card-format.md §2: a MAD another system wrote with a published key B gets our
/// application registered with that key; its sector 0 trailer and its sectors stay as they
/// were. A key B in no published list keeps `directory_locked`.
#[test]
fn nfc_formatted_cards_get_our_application_with_the_published_key() {
    let site = site();
    for key_b in ["D3F7D3F7D3F7", "B0B1B2B3B4B5", "FFFFFFFFFFFF"] {
        let mut card = nfc_formatted(key_b);
        let before = card.blocks.clone();
        let out = encode(&mut card, &info(), &site, &cred(1)).unwrap_or_else(|e| {
            panic!("{key_b}: {e} {}", e.detail());
        });
        eprintln!(
            "encode NFC-formatted card ({key_b}): {} APDUs",
            out.apdu_count
        );
        assert_eq!(card.blocks[3], before[3], "sector 0 trailer");
        for block in 4..8 {
            assert_eq!(
                card.blocks[block], before[block],
                "NDEF sector block {block}"
            );
        }
        let mad = Mad1::parse(&[card.blocks[1], card.blocks[2]].concat()).unwrap();
        assert_eq!(mad.sectors_of(Aid::NDEF), vec![1]);
        assert_eq!(mad.sectors_of(APP_AID), vec![2, 3, 4, 5]);
        assert_eq!(
            fresh_scan(&mut card, &site)
                .unwrap()
                .credential
                .unwrap()
                .credential,
            cred(1)
        );
    }
    let mut card = nfc_formatted("112233445566");
    let before = card.blocks.clone();
    let err = encode(&mut card, &info(), &site, &cred(1)).unwrap_err();
    assert_eq!(err.sub_code(), Some("directory_locked"));
    assert_eq!(card.blocks, before, "nothing written");
    // An empty published list: the same card is locked to us.
    let mut card = nfc_formatted("D3F7D3F7D3F7");
    let err = encode(
        &mut card,
        &info(),
        &site.clone().with_published_directory_keys(Vec::new()),
        &cred(1),
    )
    .unwrap_err();
    assert_eq!(err.sub_code(), Some("directory_locked"));
}
