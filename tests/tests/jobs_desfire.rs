//! The protocol crate's `DESFire` jobs against the independent virtual `DESFire` card
//! (`encoder_sim::desfire`, written from the reference, not from the protocol crate), in
//! process: encode on a blank card, beside another application (left byte for byte), re-encode,
//! scan; a tear at every command of an encode and of a re-encode; wrong site keys, an unknown
//! PICC key, an EV0; key rotation and the PICC ownership policy. Counts are the card's own
//! (`VirtualCard::apdu_count`).

use encoder_protocol::card::CardInfo;
use encoder_protocol::error::JobError;
use encoder_protocol::format::Credential;
use encoder_protocol::job::desfire::{DesfireOptions, PiccPolicy, encode, scan};
use encoder_protocol::job::{CardState, EncodeOutcome, ScanOutcome};
use encoder_protocol::keys::{MasterKey, SiteKeys};
use encoder_protocol::transmit::{Transmit, TransmitError, TransmitErrorKind};
use encoder_sim::card::CardType;
use encoder_sim::desfire::applications::{KeyType, PiccMaster};
use encoder_tests::jobs::{InProcessCard, nonces, other_site, realistic, realistic_next, site};

const UID7: [u8; 7] = [0x04, 0x5A, 0x11, 0x22, 0x33, 0x44, 0x80];
/// Our application, as a number.
const OURS: u32 = 0x00FF_0EB0;
/// Another issuer's application.
const FOREIGN: u32 = 0x0012_3456;

fn info(card: &InProcessCard) -> CardInfo {
    card.info()
}

fn run_encode_with(
    card: &mut (impl Transmit + ?Sized),
    info: &CardInfo,
    site: &SiteKeys,
    credential: &Credential,
    options: DesfireOptions,
) -> Result<EncodeOutcome, JobError> {
    let mut n = nonces();
    encode(card, info, site, credential, options, &mut n)
}

fn run_encode(
    card: &mut InProcessCard,
    site: &SiteKeys,
    credential: &Credential,
) -> Result<EncodeOutcome, JobError> {
    let info = info(card);
    let before = card.card.apdu_count();
    let out = run_encode_with(card, &info, site, credential, DesfireOptions::default());
    if let Ok(o) = &out {
        let at_card = usize::try_from(card.card.apdu_count() - before).expect("count");
        assert_eq!(o.apdu_count, at_card, "the job counts what the card sees");
    }
    card.insert();
    out
}

fn run_scan(card: &mut InProcessCard, site: &SiteKeys) -> Result<ScanOutcome, JobError> {
    let info = info(card);
    let mut n = nonces();
    let out = scan(card, &info, site, &mut n);
    card.insert();
    out
}

fn scanned(card: &mut InProcessCard, site: &SiteKeys) -> Option<Credential> {
    let out = run_scan(card, site).unwrap_or_else(|e| panic!("scan: {e} ({})", e.detail()));
    out.credential.map(|c| c.credential)
}

fn fresh(card_type: CardType) -> InProcessCard {
    InProcessCard::new(card_type, &UID7)
}

/// Sends raw commands as another issuer's tool would (plain, the factory PICC allows free
/// creation): an application `123456` with 2 AES keys and a free standard file holding data.
fn add_foreign_application(card: &mut InProcessCard) {
    let steps: [&[u8]; 4] = [
        &[
            0x90, 0xCA, 0x00, 0x00, 0x05, 0x56, 0x34, 0x12, 0x0F, 0x82, 0x00,
        ],
        &[0x90, 0x5A, 0x00, 0x00, 0x03, 0x56, 0x34, 0x12, 0x00],
        &[
            0x90, 0xCD, 0x00, 0x00, 0x07, 0x01, 0x00, 0xEE, 0xEE, 0x20, 0x00, 0x00, 0x00,
        ],
        &[
            0x90, 0x3D, 0x00, 0x00, 0x17, 0x01, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0xF0, 0xF1,
            0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF,
            0x00,
        ],
    ];
    for apdu in steps {
        let reply = card.card.transmit(apdu);
        assert_eq!(
            reply.get(reply.len() - 2..),
            Some(&[0x91, 0x00][..]),
            "{apdu:02X?} -> {reply:02X?}"
        );
    }
    card.insert();
}

#[test]
fn encode_scan_reencode_scan_on_ev1_ev2_ev3() {
    for card_type in [
        CardType::DesfireEv1,
        CardType::DesfireEv2,
        CardType::DesfireEv3,
    ] {
        let mut card = fresh(card_type);
        assert_eq!(
            run_scan(&mut card, &site()).expect("scan").state,
            CardState::Blank
        );
        let out = run_encode(&mut card, &site(), &realistic(8))
            .unwrap_or_else(|e| panic!("{card_type}: {e} ({})", e.detail()));
        assert!(out.first_encode);
        assert_eq!(out.written.credential, realistic(8));
        assert_eq!(
            scanned(&mut card, &site()),
            Some(realistic(8)),
            "{card_type}"
        );
        let again = run_encode(&mut card, &site(), &realistic_next(0)).expect("re-encode");
        assert!(!again.first_encode);
        assert_eq!(
            scanned(&mut card, &site()),
            Some(realistic_next(0)),
            "{card_type}"
        );
        let scan = run_scan(&mut card, &site()).expect("scan");
        eprintln!(
            "{card_type}: encode blank {}, re-encode {}, scan {} APDUs",
            out.apdu_count, again.apdu_count, scan.apdu_count
        );
        let budget_extra = usize::from(card_type == CardType::DesfireEv1) * 2;
        assert!(
            out.apdu_count <= 16 + budget_extra,
            "{card_type}: {}",
            out.apdu_count
        );
        assert!(
            again.apdu_count <= 8 + budget_extra / 2,
            "{card_type}: {}",
            again.apdu_count
        );
        assert!(scan.apdu_count <= 6, "{card_type}: {}", scan.apdu_count);
        // Our application as the format says (docs/card-format.md §10.1-§10.3).
        let desfire = card.card.desfire().expect("desfire");
        let app = desfire.application(OURS).expect("our application");
        assert_eq!((app.key_settings, app.ks2()), (0x2B, 0x83));
        assert!(
            app.keys
                .iter()
                .all(|k| k.version == 1 && k.bytes != [0; 16])
        );
        let file = app.files.get(&1).expect("file 1");
        assert_eq!(
            (file.comm, file.access.to_bytes(), file.data.len()),
            (0x03, [0x20, 0x12], 64)
        );
    }
}

#[test]
fn encode_beside_another_application_leaves_it_byte_for_byte() {
    let mut card = fresh(CardType::DesfireEv2);
    add_foreign_application(&mut card);
    let before = card
        .card
        .desfire()
        .expect("d")
        .application(FOREIGN)
        .expect("foreign")
        .clone();
    let picc_before = picc(&card);
    run_encode(&mut card, &site(), &realistic(8)).expect("encode");
    run_encode(&mut card, &site(), &realistic_next(8)).expect("re-encode");
    assert_eq!(scanned(&mut card, &site()), Some(realistic_next(8)));
    let desfire = card.card.desfire().expect("d");
    assert_eq!(
        desfire.application(FOREIGN),
        Some(&before),
        "the other application changed"
    );
    assert_eq!(desfire.applications().len(), 2);
    assert_eq!(picc(&card), picc_before, "leave_as_found changed the PICC");
}

fn picc(card: &InProcessCard) -> PiccMaster {
    let mut card = card.card.clone();
    card.desfire_mut().expect("d").picc_mut().clone()
}

#[test]
fn wrong_site_keys_are_application_key_unknown_and_scan_foreign() {
    let mut card = fresh(CardType::DesfireEv2);
    run_encode(&mut card, &site(), &realistic(8)).expect("encode");
    let before = card.image();
    let e = run_encode(&mut card, &other_site(), &realistic_next(8)).expect_err("other site");
    assert_eq!(e.name(), "incompatible_card_format", "{e}");
    assert_eq!(e.sub_code(), Some("application_key_unknown"), "{e}");
    assert_eq!(
        card.image(),
        before,
        "the other site's encode changed the card"
    );
    let out = run_scan(&mut card, &other_site()).expect("scan");
    assert_eq!(out.state, CardState::Foreign);
    assert!(out.credential.is_none());
    assert_eq!(scanned(&mut card, &site()), Some(realistic(8)));
}

#[test]
fn an_unknown_picc_key_is_picc_key_unknown() {
    let mut card = fresh(CardType::DesfireEv2);
    {
        let picc = card.card.desfire_mut().expect("d").picc_mut();
        picc.key_settings = 0x09; // no free create
        picc.key_type = KeyType::Aes;
        picc.key.bytes = vec![0x42; 16];
    }
    let before = card.image();
    let e = run_encode(&mut card, &site(), &realistic(8)).expect_err("picc");
    assert_eq!(e.sub_code(), Some("picc_key_unknown"), "{e}");
    assert_eq!(card.image(), before);
    // The same card with a PICC that allows free creation needs no PICC key.
    card.card.desfire_mut().expect("d").picc_mut().key_settings = 0x0D;
    run_encode(&mut card, &site(), &realistic(8)).expect("free create");
    assert_eq!(scanned(&mut card, &site()), Some(realistic(8)));
}

#[test]
fn the_factory_picc_key_opens_a_card_without_free_create() {
    let mut card = fresh(CardType::DesfireEv1);
    card.card.desfire_mut().expect("d").picc_mut().key_settings = 0x09;
    run_encode(&mut card, &site(), &realistic(8)).expect("encode with the factory key");
    assert_eq!(scanned(&mut card, &site()), Some(realistic(8)));
}

#[test]
fn an_ev0_is_ev0_not_supported() {
    let mut card = fresh(CardType::DesfireEv0);
    let before = card.image();
    let e = run_encode(&mut card, &site(), &realistic(8)).expect_err("ev0");
    assert_eq!(
        e.sub_code(),
        Some("ev0_not_supported"),
        "{e} ({})",
        e.detail()
    );
    assert_eq!(card.image(), before);
}

#[test]
fn take_ownership_sets_our_aes_picc_key_once() {
    let mut card = fresh(CardType::DesfireEv2);
    let options = DesfireOptions {
        picc: PiccPolicy::TakeOwnership,
    };
    let first = info(&card);
    let out = run_encode_with(&mut card, &first, &site(), &realistic(8), options).expect("encode");
    card.insert();
    let keys = site()
        .desfire_keys(1, &UID7, [0xB0, 0x0E, 0xFF])
        .expect("keys");
    let p = picc(&card);
    assert_eq!(p.key_type, KeyType::Aes);
    assert_eq!(p.key.bytes, keys.picc_key());
    assert_eq!(p.key.version, 1);
    assert_eq!(p.key_settings, 0x0F, "settings kept");
    eprintln!("take_ownership: encode blank {} APDUs", out.apdu_count);
    // Again (a re-encode): the PICC is not touched.
    let again = info(&card);
    run_encode_with(&mut card, &again, &site(), &realistic_next(8), options).expect("re-encode");
    card.insert();
    assert_eq!(picc(&card), p);
    assert_eq!(scanned(&mut card, &site()), Some(realistic_next(8)));
}

#[test]
fn key_rotation_moves_a_card_to_the_current_version() {
    let v1 = site();
    let mut card = fresh(CardType::DesfireEv2);
    run_encode(&mut card, &v1, &realistic(8)).expect("encode v1");
    let v2 = SiteKeys::new(2, MasterKey::new(*b"jobs-test-site-2"))
        .with_key(1, MasterKey::new(*b"jobs-test-site-1"))
        .expect("v1");
    // A scan with both versions reads the v1 card.
    assert_eq!(scanned(&mut card, &v2), Some(realistic(8)));
    let out = run_encode(&mut card, &v2, &realistic_next(8)).expect("rotate");
    assert!(!out.first_encode);
    let only_v2 = SiteKeys::new(2, MasterKey::new(*b"jobs-test-site-2"));
    assert_eq!(scanned(&mut card, &only_v2), Some(realistic_next(8)));
    let app = card
        .card
        .desfire()
        .expect("d")
        .application(OURS)
        .expect("ours")
        .clone();
    assert!(app.keys.iter().all(|k| k.version == 2), "{:?}", app.keys);
    assert_eq!(
        run_scan(&mut card, &v1).expect("scan").state,
        CardState::Foreign
    );
}

#[test]
fn a_random_id_card_is_refused_untouched() {
    let mut card = fresh(CardType::DesfireEv2);
    card.card.set_random_uid(true).expect("random uid");
    let before = card.image();
    let e = run_encode(&mut card, &site(), &realistic(8)).expect_err("random id");
    assert_eq!(e.sub_code(), Some("uid_unavailable"), "{e}");
    assert_eq!(card.image(), before);
}

/// The card leaves at the `n`-th APDU: before the card sees it (`landed` false) or after it
/// acted on it (its answer lost); every later APDU fails as a removed card.
struct TearAt<'a> {
    inner: &'a mut InProcessCard,
    n: usize,
    landed: bool,
    sent: usize,
}

impl Transmit for TearAt<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        self.sent += 1;
        let removed = || {
            Err(TransmitError::new(
                TransmitErrorKind::CardRemoved,
                "card left",
            ))
        };
        if self.sent < self.n {
            return self.inner.transmit(command);
        }
        if self.sent == self.n && self.landed {
            let _ = self.inner.transmit(command);
        }
        removed()
    }
}

/// Tears a job at every APDU, both ways; after each, the card reads as `old` or `new` (never
/// a credential nobody wrote), and a second encode finishes it.
fn tear_everywhere(
    setup: impl Fn() -> InProcessCard,
    old: Option<&Credential>,
    new: &Credential,
) -> usize {
    let mut probe = setup();
    let total = run_encode(&mut probe, &site(), new)
        .expect("untorn")
        .apdu_count;
    for n in 1..=total {
        for landed in [false, true] {
            let mut card = setup();
            let info = info(&card);
            let mut torn = TearAt {
                inner: &mut card,
                n,
                landed,
                sent: 0,
            };
            let e = run_encode_with(&mut torn, &info, &site(), new, DesfireOptions::default())
                .expect_err("torn");
            assert!(
                ["encoding_interrupted", "no_card_on_encoder"].contains(&e.name()),
                "apdu {n} landed {landed}: {e} ({})",
                e.detail()
            );
            card.insert();
            let found = run_scan(&mut card, &site()).unwrap_or_else(|e| {
                panic!("scan after tear at {n}/{landed}: {e} ({})", e.detail())
            });
            let got = found.credential.map(|c| c.credential);
            assert!(
                got.as_ref() == old || got.as_ref() == Some(new),
                "tear at {n} landed {landed}: {got:?}"
            );
            run_encode(&mut card, &site(), new).unwrap_or_else(|e| {
                panic!("encode after tear at {n}/{landed}: {e} ({})", e.detail())
            });
            assert_eq!(
                scanned(&mut card, &site()).as_ref(),
                Some(new),
                "after tear at {n}/{landed}"
            );
            // The encode that follows finished the application: no key left zero or old.
            let app = card
                .card
                .desfire()
                .expect("d")
                .application(OURS)
                .expect("ours")
                .clone();
            assert!(
                app.keys
                    .iter()
                    .all(|k| k.version == 1 && k.bytes != [0; 16]),
                "after tear at {n}/{landed}: {:?}",
                app.keys.iter().map(|k| k.version).collect::<Vec<_>>()
            );
        }
    }
    total
}

#[test]
fn a_tear_at_every_command_of_a_first_encode() {
    let n = tear_everywhere(|| fresh(CardType::DesfireEv2), None, &realistic(8));
    assert!(n >= 10, "{n}");
    tear_everywhere(|| fresh(CardType::DesfireEv1), None, &realistic(8));
}

#[test]
fn a_tear_at_every_command_of_a_reencode() {
    let encoded = || {
        let mut card = fresh(CardType::DesfireEv2);
        run_encode(&mut card, &site(), &realistic(8)).expect("encode");
        card
    };
    tear_everywhere(encoded, Some(&realistic(8)), &realistic_next(8));
}

/// The card's own tear (`--tear-after-writes`): mid-`WriteData` with half of it landed, and
/// at the commit.
#[test]
fn the_cards_own_tears_mid_write_and_at_commit() {
    use encoder_sim::card::TearMode;
    let mut probe = fresh(CardType::DesfireEv2);
    run_encode(&mut probe, &site(), &realistic(8)).expect("encode");
    let writes_first = probe.writes();
    run_encode(&mut probe, &site(), &realistic_next(8)).expect("re-encode");
    let writes_re = probe.writes() - writes_first;
    for k in 0..writes_re {
        for mode in [TearMode::Lost, TearMode::Half, TearMode::Landed] {
            let mut card = fresh(CardType::DesfireEv2);
            run_encode(&mut card, &site(), &realistic(8)).expect("encode");
            card.card.set_tear_after_writes(Some(k), mode);
            let e = run_encode(&mut card, &site(), &realistic_next(8)).expect_err("torn");
            assert_eq!(e.name(), "encoding_interrupted", "{e}");
            let got = scanned(&mut card, &site());
            assert!(
                got == Some(realistic(8)) || got == Some(realistic_next(8)),
                "write {k} {mode:?}: {got:?}"
            );
        }
    }
}

/// Keys never reach an error, its detail or a Debug print (README: secrets never in logs).
#[test]
fn errors_and_debug_output_hold_no_keys() {
    let mut card = fresh(CardType::DesfireEv2);
    let ok = run_encode(&mut card, &site(), &realistic(8)).expect("encode");
    let err = run_encode(&mut card, &other_site(), &realistic(8)).expect_err("other site");
    let text = format!("{ok:?} {err:?} {err} {} {:?}", err.detail(), site());
    let text = text.to_uppercase().replace([' ', ','], "");
    for s in [site(), other_site()] {
        let keys = s.desfire_keys(1, &UID7, [0xB0, 0x0E, 0xFF]).expect("keys");
        let mut secrets: Vec<[u8; 16]> = (0..3).filter_map(|n| keys.app_key(n)).collect();
        secrets.push(keys.picc_key());
        secrets.push(keys.record_keys().mac_key().to_bytes());
        for key in secrets {
            let hex = encoder_protocol::hex::encode(&key).replace(' ', "");
            assert!(!text.contains(&hex), "a key in the output");
            assert!(!text.contains(&format!("{key:?}").replace([' ', ','], "")));
        }
    }
}
