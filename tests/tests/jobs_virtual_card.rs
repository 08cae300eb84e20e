//! The protocol crate's encode and scan jobs against the independent virtual card
//! (`encoder_sim::card::VirtualCard`, written from the datasheets), in process.
//!
//! Each test checks outcomes *and* the card's memory image, so a bug shared by the job and
//! the protocol crate's own fake card cannot hide here.

use encoder_protocol::error::JobError;
use encoder_protocol::format::Credential;
use encoder_protocol::job::{CardState, ScanOutcome, encode, scan};
use encoder_protocol::keys::{MasterKey, SiteKeys};
use encoder_sim::card::{CardType, TearMode};
use encoder_tests::jobs::{
    InProcessCard, block_range, other_site, realistic, realistic_next, site, trailer_of, write_mad1,
};

const UID: [u8; 4] = [0x04, 0xA1, 0xB2, 0xC3];
const UID7: [u8; 7] = [0x04, 0x78, 0x2E, 0x21, 0x80, 0x1D, 0x80];

/// APDU budgets (issue: each including the UID read and the read-back).
const BUDGET_ENCODE_BLANK: usize = 34;
const BUDGET_REENCODE: usize = 20;
const BUDGET_SCAN: usize = 12;

fn scan_fresh(card: &mut InProcessCard, site: &SiteKeys) -> Result<ScanOutcome, JobError> {
    card.insert();
    let info = card.info();
    scan(card, &info, site)
}

fn encode_fresh(
    card: &mut InProcessCard,
    site: &SiteKeys,
    credential: &Credential,
) -> Result<encoder_protocol::job::EncodeOutcome, JobError> {
    card.insert();
    let info = card.info();
    encode(card, &info, site, credential)
}

fn scanned_credential(card: &mut InProcessCard, site: &SiteKeys) -> Credential {
    let out = scan_fresh(card, site).expect("scan");
    assert_eq!(out.state, CardState::Ours, "{out:?}");
    out.credential.expect("credential").credential
}

#[test]
fn encode_scan_reencode_scan_on_every_classic_size() {
    let site = site();
    for card_type in [CardType::Classic1k, CardType::Classic4k, CardType::Mini] {
        for uid in [&UID[..], &UID7[..]] {
            for access in [0, 8] {
                let mut card = InProcessCard::new(card_type, uid);
                let first = realistic(access);
                let out = encode_fresh(&mut card, &site, &first)
                    .unwrap_or_else(|e| panic!("{card_type} encode: {e} ({})", e.detail()));
                assert!(out.first_encode);
                assert_eq!(out.uid, uid);
                assert_eq!(out.written.credential, first);
                assert_eq!(scanned_credential(&mut card, &site), first, "{card_type}");

                let second = realistic_next(access);
                let out = encode_fresh(&mut card, &site, &second).expect("re-encode");
                assert!(!out.first_encode);
                assert_eq!(scanned_credential(&mut card, &site), second, "{card_type}");

                // And back again (the other slot).
                let out = encode_fresh(&mut card, &site, &first).expect("re-encode 2");
                assert!(!out.first_encode);
                assert_eq!(scanned_credential(&mut card, &site), first, "{card_type}");
                eprintln!(
                    "{card_type} uid {} access {access}: ok ({} card writes in all)",
                    uid.len(),
                    card.writes()
                );
            }
        }
    }
}

#[test]
fn blank_card_scans_as_blank() {
    for card_type in [CardType::Classic1k, CardType::Classic4k, CardType::Mini] {
        let mut card = InProcessCard::new(card_type, &UID);
        let before = card.image();
        let out = scan_fresh(&mut card, &site()).expect("scan");
        assert_eq!(out.state, CardState::Blank, "{card_type}");
        assert!(out.credential.is_none());
        assert_eq!(out.uid, UID);
        assert_eq!(card.writes(), 0);
        assert_eq!(card.image(), before);
    }
}

#[test]
fn ultralight_and_desfire_are_incompatible_without_writes() {
    for card_type in [CardType::Ultralight, CardType::Desfire] {
        let mut card = InProcessCard::new(card_type, &UID7);
        let before = card.image();
        let err = encode_fresh(&mut card, &site(), &realistic(8)).expect_err("incompatible");
        assert_eq!(err.name(), "incompatible_card_format", "{card_type}: {err}");
        assert_eq!(err.sub_code(), Some("not_mifare_classic"));
        assert_eq!(card.writes(), 0, "{card_type}");
        assert_eq!(card.image(), before, "{card_type}");
        let out = scan_fresh(&mut card, &site()).expect("scan");
        assert_eq!(out.state, CardState::Unsupported, "{card_type}");
        assert!(out.credential.is_none());
        assert_eq!(card.writes(), 0);
    }
}

/// A 1K image whose MAD (written by another issuer, MAD sector writable by a key B we do not
/// hold) registers `taken` sectors to NDEF (`E1 03` cluster/app... stored `03 E1`), each such
/// sector filled with recognisable data and trailer keyed with the NFC Forum key.
fn card_with_other_application(taken: &[usize]) -> Vec<u8> {
    let card = InProcessCard::new(CardType::Classic1k, &UID);
    let mut image = card.image();
    let mut aids = [(0u8, 0u8); 15];
    for &sector in taken {
        aids[sector - 1] = (0xE1, 0x03);
        for b in 0..3 {
            let block = sector * 4 + b;
            let fill = u8::try_from(block).expect("block");
            image[block_range(block)].copy_from_slice(&[fill; 16]);
        }
        let trailer = &mut image[block_range(trailer_of(sector))];
        trailer[..6].copy_from_slice(&[0xD3, 0xF7, 0xD3, 0xF7, 0xD3, 0xF7]);
        trailer[6..10].copy_from_slice(&[0x7F, 0x07, 0x88, 0x40]);
        trailer[10..].copy_from_slice(&[0x5A; 6]);
    }
    // Sector 0: data 100 (read A|B, write B), trailer 011; key B = 0x5A..: not ours, but the
    // job may not rewrite this MAD... so give it transport access under factory key B?
    // The documented rule (card-format §2): MAD blocks are changed only when writable with our
    // key B, factory key A under transport access, or factory key B. Use factory key B.
    write_mad1(&mut image, &aids, [0x78, 0x77, 0x88], [0xFF; 6]);
    image
}

#[test]
fn other_applications_are_kept_byte_for_byte() {
    let site = site();
    let taken = [1usize, 2, 5];
    let image = card_with_other_application(&taken);
    let mut card = InProcessCard::from_image(CardType::Classic1k, &image);
    // Before: foreign, nothing of ours.
    let out = scan_fresh(&mut card, &site).expect("scan");
    assert_eq!(out.state, CardState::Foreign);
    assert_eq!(card.writes(), 0);

    let cred = realistic(8);
    encode_fresh(&mut card, &site, &cred).unwrap_or_else(|e| panic!("{e} ({})", e.detail()));
    assert_eq!(scanned_credential(&mut card, &site), cred);
    encode_fresh(&mut card, &site, &realistic_next(8)).expect("re-encode");
    assert_eq!(scanned_credential(&mut card, &site), realistic_next(8));

    let after = card.image();
    // Their sectors: untouched byte for byte.
    for &sector in &taken {
        for block in sector * 4..sector * 4 + 4 {
            assert_eq!(
                after[block_range(block)],
                image[block_range(block)],
                "sector {sector} block {block}"
            );
        }
    }
    // Sector 0 trailer untouched (another issuer's).
    assert_eq!(after[block_range(3)], image[block_range(3)]);
    // The MAD still lists theirs, plus ours in free sectors (by hand: AID bytes `EB F0`).
    let mad: Vec<u8> = [&after[block_range(1)], &after[block_range(2)]].concat();
    let aid = |sector: usize| (mad[2 * sector], mad[2 * sector + 1]);
    for &sector in &taken {
        assert_eq!(aid(sector), (0x03, 0xE1), "sector {sector}");
    }
    let ours: Vec<usize> = (1..=15).filter(|s| aid(*s) == (0xEB, 0xF0)).collect();
    assert!(!ours.is_empty(), "no sector of ours in the MAD: {mad:02X?}");
    assert!(ours.iter().all(|s| !taken.contains(s)), "{ours:?}");
    assert_eq!(
        mad[0],
        encoder_tests::jobs::mad_crc8(&mad[1..]),
        "MAD CRC after our update"
    );
    // Sectors neither theirs nor ours: still factory.
    let blank = InProcessCard::new(CardType::Classic1k, &UID).image();
    for sector in (1..16).filter(|s| !taken.contains(s) && !ours.contains(s)) {
        for block in sector * 4..sector * 4 + 4 {
            assert_eq!(after[block_range(block)], blank[block_range(block)]);
        }
    }
}

#[test]
fn no_room_is_incompatible_no_free_sectors() {
    // 14 of 15 sectors taken by another application: one free sector is not enough.
    let taken: Vec<usize> = (1..=14).collect();
    let image = card_with_other_application(&taken);
    let mut card = InProcessCard::from_image(CardType::Classic1k, &image);
    let err = encode_fresh(&mut card, &site(), &realistic(8)).expect_err("no room");
    assert_eq!(err.name(), "incompatible_card_format", "{err}");
    assert_eq!(err.sub_code(), Some("no_free_sectors"));
    assert_eq!(card.writes(), 0);
    assert_eq!(card.image(), image);
}

#[test]
fn another_sites_card_is_foreign_and_not_damaged() {
    let mut card = InProcessCard::new(CardType::Classic1k, &UID);
    encode_fresh(&mut card, &other_site(), &realistic(8)).expect("their encode");
    let before = card.image();
    let writes = card.writes();
    let out = scan_fresh(&mut card, &site()).expect("scan");
    assert_eq!(out.state, CardState::Foreign, "{out:?}");
    assert!(out.credential.is_none());
    let err = encode_fresh(&mut card, &site(), &realistic(0)).expect_err("not ours");
    assert_eq!(err.name(), "incompatible_card_format", "{err}");
    assert_eq!(card.writes(), writes, "no write to another site's card");
    assert_eq!(card.image(), before);
    // Their credential is intact for them.
    assert_eq!(scanned_credential(&mut card, &other_site()), realistic(8));
}

#[test]
fn key_rotation_reads_and_reencodes_old_cards() {
    let old = SiteKeys::new(1, MasterKey::new(*b"jobs-test-site-1"));
    let rotated = SiteKeys::new(2, MasterKey::new(*b"jobs-test-site-2"))
        .with_key(1, MasterKey::new(*b"jobs-test-site-1"))
        .expect("both versions");
    assert_eq!(rotated.current_version(), 2);
    let mut card = InProcessCard::new(CardType::Classic1k, &UID);
    encode_fresh(&mut card, &old, &realistic(8)).expect("old encode");
    let out = scan_fresh(&mut card, &rotated).expect("scan");
    assert_eq!(out.credential.as_ref().map(|c| c.key_version), Some(1));
    assert_eq!(out.credential.expect("cred").credential, realistic(8));
    // Re-encode with the rotated keys keeps the card's version.
    let out = encode_fresh(&mut card, &rotated, &realistic_next(8)).expect("re-encode");
    assert_eq!(out.written.key_version, 1);
    assert_eq!(scanned_credential(&mut card, &rotated), realistic_next(8));
    assert_eq!(scanned_credential(&mut card, &old), realistic_next(8));
    // A new card gets the current version.
    let mut fresh = InProcessCard::new(CardType::Classic1k, &UID7);
    let out = encode_fresh(&mut fresh, &rotated, &realistic(0)).expect("new card");
    assert_eq!(out.written.key_version, 2);
    // ... which the old keys alone cannot read.
    let out = scan_fresh(&mut fresh, &old).expect("scan with old keys");
    assert!(out.credential.is_none());
    assert_eq!(out.state, CardState::Foreign);
}

/// Blocks of a 1K image that belong to our application per the MAD (data blocks only).
fn our_data_blocks(image: &[u8]) -> Vec<usize> {
    let mad: Vec<u8> = [&image[block_range(1)], &image[block_range(2)]].concat();
    (1..=15)
        .filter(|s| (mad[2 * s], mad[2 * s + 1]) == (0xEB, 0xF0))
        .flat_map(|s| s * 4..s * 4 + 3)
        .collect()
}

#[test]
fn any_flipped_payload_byte_is_rejected() {
    let site = site();
    let mut card = InProcessCard::new(CardType::Classic1k, &UID);
    encode_fresh(&mut card, &site, &realistic(8)).expect("encode");
    let image = card.image();
    let blocks = our_data_blocks(&image);
    assert!(!blocks.is_empty());
    let mut cases = 0;
    let mut rejected = 0;
    for block in blocks {
        for offset in 0..16 {
            let mut flipped = image.clone();
            let i = block * 16 + offset;
            flipped[i] ^= 0x01;
            let mut card = InProcessCard::from_image(CardType::Classic1k, &flipped);
            cases += 1;
            match scan_fresh(&mut card, &site) {
                // An unused byte (padding, empty slot) may be flipped harmlessly: the result
                // must then still be exactly what was written.
                Ok(out) => {
                    if let Some(c) = out.credential {
                        assert_eq!(c.credential, realistic(8), "block {block} byte {offset}");
                    }
                }
                Err(e) => {
                    // Rejected: damaged, or (the version byte) a format we do not know.
                    assert!(
                        matches!(
                            e.sub_code(),
                            Some("card_payload_corrupt" | "unknown_format_version")
                        ),
                        "block {block} byte {offset}: {e}"
                    );
                    rejected += 1;
                }
            }
        }
    }
    eprintln!("flipped-byte cases: {cases}, rejected as corrupt: {rejected}");
    assert!(rejected > 0);
}

#[test]
fn a_record_copied_to_another_uid_is_rejected() {
    let site = site();
    let mut card = InProcessCard::new(CardType::Classic1k, &UID);
    encode_fresh(&mut card, &site, &realistic(8)).expect("encode");
    let mut image = card.image();
    // Same image, block 0 of another UID (UID, BCC, SAK 08, ATQA 0400).
    let other = [0x04u8, 0xA1, 0xB2, 0xC4];
    let bcc = other.iter().fold(0, |a, b| a ^ b);
    image[0..4].copy_from_slice(&other);
    image[4] = bcc;
    let mut clone = InProcessCard::from_image(CardType::Classic1k, &image);
    assert_eq!(clone.card.uid(), other);
    match scan_fresh(&mut clone, &site) {
        Ok(out) => assert!(
            out.credential.is_none(),
            "a copied record was accepted: {out:?}"
        ),
        Err(e) => assert!(
            e.name() == "uncategorized_error" || e.name() == "incompatible_card_format",
            "{e}"
        ),
    }
}

/// Encodes on a blank 1K card and reports the counts of encode, scan, re-encode, scan.
fn counts(access: usize) -> [usize; 4] {
    let site = site();
    let mut card = InProcessCard::new(CardType::Classic1k, &UID);
    let encode_blank = encode_fresh(&mut card, &site, &realistic(access))
        .expect("encode")
        .apdu_count;
    let scan1 = scan_fresh(&mut card, &site).expect("scan").apdu_count;
    let before = card.apdus;
    let reencode = encode_fresh(&mut card, &site, &realistic_next(access))
        .expect("re-encode")
        .apdu_count;
    assert_eq!(card.apdus - before, reencode, "job count = card count");
    let scan2 = scan_fresh(&mut card, &site).expect("scan").apdu_count;
    [encode_blank, scan1.max(scan2), reencode, scan2]
}

#[test]
fn apdu_budgets_with_realistic_credentials() {
    for access in [0, 8] {
        let [encode_blank, scan, reencode, _] = counts(access);
        eprintln!(
            "access {access} B: encode blank {encode_blank}/{BUDGET_ENCODE_BLANK}, re-encode \
             {reencode}/{BUDGET_REENCODE}, scan {scan}/{BUDGET_SCAN}"
        );
        assert!(encode_blank <= BUDGET_ENCODE_BLANK, "{encode_blank}");
        assert!(reencode <= BUDGET_REENCODE, "{reencode}");
        assert!(scan <= BUDGET_SCAN, "{scan}");
    }
}

/// What a scan after a tear may show. `trailer_torn`: half of a sector trailer landed, which
/// can lock that sector on any MIFARE Classic card (card-format §6): the card may then read as
/// foreign or unusable, but still never as a credential nobody wrote.
fn check_after_tear(
    card: &mut InProcessCard,
    site: &SiteKeys,
    old: Option<&Credential>,
    new: &Credential,
    trailer_torn: bool,
    what: &str,
) -> &'static str {
    match scan_fresh(card, site) {
        Ok(out) => match out.credential {
            Some(c) if Some(&c.credential) == old => "old",
            Some(c) if c.credential == *new => "new",
            Some(c) => panic!("{what}: a credential nobody wrote: {:?}", c.credential),
            None => {
                assert!(
                    old.is_none() || trailer_torn,
                    "{what}: the old credential vanished ({out:?})"
                );
                assert!(
                    matches!(out.state, CardState::Blank | CardState::OursEmpty) || trailer_torn,
                    "{what}: {out:?}"
                );
                "none"
            }
        },
        Err(e) => {
            assert!(
                e.sub_code() == Some("card_payload_corrupt") || trailer_torn,
                "{what}: scan error {e} ({})",
                e.detail()
            );
            "invalid"
        }
    }
}

#[test]
fn tear_at_every_write_of_encode_and_reencode() {
    let site = site();
    let modes = [TearMode::Lost, TearMode::Half, TearMode::Landed];
    let mut total = 0usize;
    let mut bricked = 0usize;
    let mut tally = std::collections::BTreeMap::<(&str, &str), usize>::new();
    for card_type in [CardType::Classic1k, CardType::Mini] {
        for access in [0, 8] {
            let first = realistic(access);
            let second = realistic_next(access);
            // Writes of a full run, on a clean card.
            let mut probe = InProcessCard::new(card_type, &UID);
            encode_fresh(&mut probe, &site, &first).expect("probe encode");
            let blank_blocks = probe.written_blocks.clone();
            let blank_writes = probe.writes();
            encode_fresh(&mut probe, &site, &second).expect("probe re-encode");
            let reencode_writes = probe.writes() - blank_writes;
            let reencode_blocks = probe.written_blocks[blank_blocks.len()..].to_vec();
            assert_eq!(blank_blocks.len(), blank_writes as usize);
            assert_eq!(reencode_blocks.len(), reencode_writes as usize);
            eprintln!(
                "{card_type} access {access}: {blank_writes} writes (blank), \
                 {reencode_writes} (re-encode)"
            );
            for (phase, writes, blocks) in [
                ("blank", blank_writes, &blank_blocks),
                ("re-encode", reencode_writes, &reencode_blocks),
            ] {
                for n in 0..=writes {
                    for mode in modes {
                        let torn_block = blocks.get(n as usize).copied();
                        let trailer_torn = mode == TearMode::Half
                            && torn_block.is_some_and(encoder_tests::jobs::is_trailer);
                        let what = format!("{card_type} access {access} {phase} N={n} {mode}");
                        let mut card = InProcessCard::new(card_type, &UID);
                        let old = if phase == "blank" {
                            None
                        } else {
                            encode_fresh(&mut card, &site, &first).expect("setup");
                            Some(&first)
                        };
                        let new = if phase == "blank" { &first } else { &second };
                        card.insert();
                        card.card.set_tear_after_writes(Some(n), mode);
                        let info = card.info();
                        match encode(&mut card, &info, &site, new) {
                            Ok(out) => {
                                assert!(n >= writes, "{what}: success despite the tear");
                                assert_eq!(out.written.credential, *new);
                            }
                            Err(e) => {
                                assert!(n < writes, "{what}: {e}");
                                assert_eq!(e.name(), "encoding_interrupted", "{what}: {e}");
                            }
                        }
                        card.card.set_tear_after_writes(None, mode);
                        let seen =
                            check_after_tear(&mut card, &site, old, new, trailer_torn, &what);
                        *tally.entry((phase, seen)).or_default() += 1;
                        total += 1;
                        // Recovery: a fresh encode succeeds and scans back (not promised after
                        // half a trailer landed: that sector may be locked for good).
                        match encode_fresh(&mut card, &site, &second) {
                            Ok(_) => assert_eq!(
                                scanned_credential(&mut card, &site),
                                second,
                                "{what}: recovery"
                            ),
                            Err(e) if trailer_torn => {
                                eprintln!("{what}: half-written trailer, not recoverable: {e}");
                                bricked += 1;
                            }
                            Err(e) => panic!("{what}: recovery encode: {e} ({})", e.detail()),
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "tear cases run: {total}; outcomes (phase, scan after tear): {tally:?}; \
         unrecoverable after a half-written trailer: {bricked}"
    );
    assert!(total > 100);
}

/// Two re-encodes torn one after the other, at every pair of writes and tear modes: the card
/// must still read as a credential someone wrote (the first, or one of the two new ones), never
/// as damaged. The first tear can leave the newest-looking slot with a valid header and a
/// broken body; the second re-encode must then rewrite that slot, not the one still holding the
/// card's credential (the soak found this: two torn re-encodes in a row left a card unreadable).
#[test]
fn two_torn_reencodes_in_a_row_leave_a_credential_someone_wrote() {
    let site = site();
    let modes = [TearMode::Lost, TearMode::Half, TearMode::Landed];
    let first = realistic(8);
    let second = realistic_next(8);
    let mut third = realistic(0);
    third.credential_id = "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f".into();
    third.card_number = "4009613814".into();
    let mut probe = InProcessCard::new(CardType::Classic1k, &UID);
    encode_fresh(&mut probe, &site, &first).expect("probe encode");
    let before = probe.writes();
    encode_fresh(&mut probe, &site, &second).expect("probe re-encode");
    let writes = probe.writes() - before;
    let mut cases = 0usize;
    for n1 in 0..writes {
        for m1 in modes {
            for n2 in 0..writes {
                for m2 in modes {
                    let what = format!("tear 1 at N={n1} {m1}, tear 2 at N={n2} {m2}");
                    let mut card = InProcessCard::new(CardType::Classic1k, &UID);
                    encode_fresh(&mut card, &site, &first).expect("setup");
                    card.insert();
                    card.card.set_tear_after_writes(Some(n1), m1);
                    let info = card.info();
                    let _ = encode(&mut card, &info, &site, &second);
                    card.card.set_tear_after_writes(None, m1);
                    card.insert();
                    card.card.set_tear_after_writes(Some(n2), m2);
                    let info = card.info();
                    let _ = encode(&mut card, &info, &site, &third);
                    card.card.set_tear_after_writes(None, m2);
                    let out = scan_fresh(&mut card, &site).unwrap_or_else(|e| {
                        panic!("{what}: the card reads as {e} ({})", e.detail())
                    });
                    let on_card = out
                        .credential
                        .unwrap_or_else(|| panic!("{what}: no credential on the card"))
                        .credential;
                    assert!(
                        on_card == first || on_card == second || on_card == third,
                        "{what}: a credential nobody wrote: {on_card:?}"
                    );
                    cases += 1;
                }
            }
        }
    }
    eprintln!("double-tear cases run: {cases}");
    assert!(cases >= 9);
}

/// A v1 card in the field (docs/card-format.md §5.6) on the independent card: it scans as v1,
/// its re-encode writes a v2 record into slot B within the re-encode budget and writes no
/// trailer, and the re-encode after that replaces the v1 record.
#[test]
fn v1_card_scans_and_reencodes_to_v2_without_trailer_writes() {
    use encoder_protocol::format::v1;
    let site = site();
    let mut card = InProcessCard::new(CardType::Classic1k, &UID);
    encode_fresh(&mut card, &site, &realistic(8)).expect("encode");
    // Slot A (sector 1, blocks 4-6) gets the v1 record of the same credential, sequence 200.
    let keys = site.card_keys(1, &UID).expect("keys");
    let mut v1_credential = realistic(8);
    v1_credential.starts_at = Some(1_733_065_201); // v1 keeps seconds
    let mut image = card.image();
    for (i, block) in v1::encode(&v1_credential, &keys, 200, &UID)
        .expect("v1 record")
        .iter()
        .enumerate()
    {
        image[block_range(4 + i)].copy_from_slice(block);
    }
    let mut card = InProcessCard::from_image(CardType::Classic1k, &image);
    let out = scan_fresh(&mut card, &site).expect("scan v1");
    let got = out.credential.expect("v1 credential");
    assert_eq!((got.format_version, got.sequence), (1, 200));
    assert_eq!(got.credential, v1_credential);

    card.apdus = 0;
    card.written_blocks.clear();
    let out = encode_fresh(&mut card, &site, &realistic_next(8)).expect("re-encode v1 card");
    eprintln!("re-encode v1 -> v2: {} APDUs", out.apdu_count);
    assert!(out.apdu_count <= BUDGET_REENCODE, "{}", out.apdu_count);
    assert_eq!((out.written.format_version, out.written.sequence), (2, 201));
    assert!(
        card.written_blocks.iter().all(|b| b % 4 != 3),
        "trailer written: {:?}",
        card.written_blocks
    );
    assert!(
        card.written_blocks.iter().all(|b| (12..16).contains(b)),
        "{:?}",
        card.written_blocks
    );
    assert_eq!(scanned_credential(&mut card, &site), realistic_next(8));

    encode_fresh(&mut card, &site, &realistic(8)).expect("second re-encode");
    let image = card.image();
    assert_eq!((image[4 * 16], image[12 * 16]), (2, 2), "both slots v2");
    assert_eq!(scanned_credential(&mut card, &site), realistic(8));
}
