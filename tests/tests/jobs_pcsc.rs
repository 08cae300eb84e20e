//! The protocol crate's jobs through the real PC/SC transport: `PcscEncoder` over the private
//! pcscd + vpcd rig, to `encoder-sim card` (the independent virtual card).

use std::time::Duration;

use encoder_hal::Encoder;
use encoder_hal::pcsc::PcscEncoder;
use encoder_protocol::error::JobError;
use encoder_protocol::format::Credential;
use encoder_protocol::job::{CardState, EncodeOutcome, ScanOutcome, encode, scan};
use encoder_tests::jobs::{desfire_encode_on, desfire_scan_on, realistic, realistic_next, site};
use encoder_tests::{Rig, STARTUP};

const UID: &str = "04A1B2C3";

fn encoder(slot: usize) -> PcscEncoder {
    PcscEncoder::new(&Rig::reader_name(slot)).expect("encoder")
}

fn run_encode(
    encoder: &mut PcscEncoder,
    credential: &Credential,
) -> Result<EncodeOutcome, JobError> {
    assert!(encoder.wait_for_card(STARTUP).expect("wait"), "no card");
    let mut session = encoder.open_session().expect("session");
    let info = session.info().clone();
    encode(&mut *session, &info, &site(), credential)
}

fn run_scan(encoder: &mut PcscEncoder) -> Result<ScanOutcome, JobError> {
    assert!(encoder.wait_for_card(STARTUP).expect("wait"), "no card");
    let mut session = encoder.open_session().expect("session");
    let info = session.info().clone();
    scan(&mut *session, &info, &site())
}

fn scanned(encoder: &mut PcscEncoder) -> Credential {
    let out = run_scan(encoder).expect("scan");
    assert_eq!(out.state, CardState::Ours, "{out:?}");
    out.credential.expect("credential").credential
}

#[test]
fn encode_scan_reencode_scan_through_pcscd() {
    let rig = Rig::start(2);
    let _card = rig.card(0, &["--type", "classic-1k", "--uid", UID]);
    let mut enc = encoder(0);
    let blank = run_scan(&mut enc).expect("scan blank");
    assert_eq!(blank.state, CardState::Blank);
    let out =
        run_encode(&mut enc, &realistic(8)).unwrap_or_else(|e| panic!("{e} ({})", e.detail()));
    assert!(out.first_encode);
    eprintln!("pcsc: encode blank {} APDUs", out.apdu_count);
    assert_eq!(scanned(&mut enc), realistic(8));
    let out = run_encode(&mut enc, &realistic_next(0)).expect("re-encode");
    assert!(!out.first_encode);
    eprintln!("pcsc: re-encode {} APDUs", out.apdu_count);
    assert_eq!(scanned(&mut enc), realistic_next(0));
}

#[test]
fn ultralight_and_desfire_are_incompatible_through_pcscd() {
    let rig = Rig::start(2);
    let _ul = rig.card(0, &["--type", "ultralight", "--uid", "04112233445566"]);
    let _df = rig.card(1, &["--type", "desfire", "--uid", "04A1A2A3A4A5A6"]);
    for slot in [0, 1] {
        let mut enc = encoder(slot);
        let err = run_encode(&mut enc, &realistic(8)).expect_err("incompatible");
        assert_eq!(err.name(), "incompatible_card_format", "{err}");
        assert_eq!(err.sub_code(), Some("not_mifare_classic"));
        assert_eq!(err.apdu_count(), 0, "a non-Classic card gets no APDU");
        let out = run_scan(&mut enc).expect("scan");
        assert_eq!(out.state, CardState::Unsupported);
    }
}

/// A card that leaves during a write gets an empty reply from `SCardTransmit` through vpcd;
/// the hal reports it as a removed card, so the job says `encoding_interrupted`.
#[test]
fn torn_encode_is_encoding_interrupted_through_pcscd() {
    let rig = Rig::start(2);
    let _card = rig.card(
        0,
        &[
            "--type",
            "classic-1k",
            "--uid",
            UID,
            "--tear-after-writes",
            "5",
        ],
    );
    let mut enc = encoder(0);
    let err = run_encode(&mut enc, &realistic(8)).expect_err("torn");
    assert_eq!(
        err.name(),
        "encoding_interrupted",
        "{err} ({})",
        err.detail()
    );
}

/// A torn encode must be reported as `encoding_interrupted`.
fn assert_torn(err: &JobError) {
    assert_eq!(
        err.name(),
        "encoding_interrupted",
        "{err} ({})",
        err.detail()
    );
}

/// Blank encode does 10 writes, re-encode 3 (realistic credential, 1K): tear inside each;
/// after the card is put back the scan shows the old credential (or none) or says invalid.
#[test]
fn card_pulled_mid_write_through_pcscd() {
    let rig = Rig::start(2);
    // Blank encode torn at its 6th write (the MAD): then the card reads as blank/ours-empty
    // or damaged, never as a credential.
    let mut card = rig.card(
        0,
        &[
            "--type",
            "classic-1k",
            "--uid",
            UID,
            "--tear-after-writes",
            "5",
        ],
    );
    let mut enc = encoder(0);
    let err = run_encode(&mut enc, &realistic(8)).expect_err("torn");
    assert_torn(&err);
    card.insert();
    match run_scan(&mut enc) {
        Ok(out) => assert!(out.credential.is_none(), "{out:?}"),
        Err(e) => assert_eq!(e.sub_code(), Some("card_payload_corrupt"), "{e}"),
    }
    // Re-encode torn at its 2nd write (10 blank + 1): the old credential stays, or invalid.
    let mut card2 = rig.card(
        1,
        &[
            "--type",
            "classic-1k",
            "--uid",
            "04A1B2C4",
            "--tear-after-writes",
            "11",
            "--tear-mode",
            "half",
        ],
    );
    let mut enc2 = encoder(1);
    run_encode(&mut enc2, &realistic(8)).expect("first encode");
    let err = run_encode(&mut enc2, &realistic_next(8)).expect_err("torn");
    assert_torn(&err);
    card2.insert();
    match run_scan(&mut enc2) {
        Ok(out) => assert_eq!(
            out.credential.map(|c| c.credential),
            Some(realistic(8)),
            "old credential expected"
        ),
        Err(e) => assert_eq!(e.sub_code(), Some("card_payload_corrupt"), "{e}"),
    }
    // And the card is usable again.
    run_encode(&mut enc2, &realistic_next(8)).expect("encode after tear");
    assert_eq!(scanned(&mut enc2), realistic_next(8));
    drop(card);
}

#[test]
fn no_card_within_a_short_wait() {
    let _rig = Rig::start(2);
    let mut enc = encoder(0);
    let start = std::time::Instant::now();
    assert!(!enc.wait_for_card(Duration::from_millis(300)).expect("wait"));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

fn run_desfire_encode(
    encoder: &mut PcscEncoder,
    credential: &Credential,
) -> Result<EncodeOutcome, JobError> {
    desfire_encode_on(encoder, STARTUP, credential)
}

fn run_desfire_scan(encoder: &mut PcscEncoder) -> Result<ScanOutcome, JobError> {
    desfire_scan_on(encoder, STARTUP)
}

/// The `DESFire` jobs through pcscd and vpcd to the virtual `DESFire` card: the hal sees an
/// ISO 14443-4 card (ATR `3B 81 80 01 80 80`) and passes the wrapped native commands through.
#[test]
fn desfire_encode_scan_reencode_through_pcscd() {
    let rig = Rig::start(2);
    let _card = rig.card(0, &["--type", "desfire-ev2", "--uid", "04A1A2A3A4A5A6"]);
    let mut enc = encoder(0);
    let blank = run_desfire_scan(&mut enc).expect("scan blank");
    assert_eq!(blank.state, CardState::Blank);
    let out = run_desfire_encode(&mut enc, &realistic(8))
        .unwrap_or_else(|e| panic!("{e} ({})", e.detail()));
    assert!(out.first_encode);
    let got = run_desfire_scan(&mut enc).expect("scan");
    assert_eq!(got.credential.map(|c| c.credential), Some(realistic(8)));
    let again = run_desfire_encode(&mut enc, &realistic_next(8)).expect("re-encode");
    assert!(!again.first_encode);
    let got = run_desfire_scan(&mut enc).expect("scan");
    assert_eq!(
        got.credential.map(|c| c.credential),
        Some(realistic_next(8))
    );
    eprintln!(
        "pcsc DESFire EV2: encode blank {}, re-encode {}, scan {} APDUs",
        out.apdu_count, again.apdu_count, got.apdu_count
    );
}

/// A `DESFire` re-encode torn at each of its writes (the card leaves mid-command): the job
/// says `encoding_interrupted`, and the card reads as the old or the new credential.
#[test]
fn desfire_card_pulled_mid_reencode_through_pcscd() {
    let rig = Rig::start(2);
    // A first encode makes 6 writes (create application, create file, 3 ChangeKey, write)
    // plus the commit; the re-encode's are its WriteData and CommitTransaction.
    for (slot, after, mode) in [(0, "7", "half"), (1, "8", "lost")] {
        let uid = format!("04A1A2A3A4A5B{slot}");
        let mut card = rig.card(
            slot,
            &[
                "--type",
                "desfire-ev2",
                "--uid",
                &uid,
                "--tear-after-writes",
                after,
                "--tear-mode",
                mode,
            ],
        );
        let mut enc = encoder(slot);
        run_desfire_encode(&mut enc, &realistic(8)).expect("first encode");
        let err = run_desfire_encode(&mut enc, &realistic_next(8)).expect_err("torn");
        assert_torn(&err);
        card.insert();
        let got = run_desfire_scan(&mut enc).expect("scan after tear");
        assert_eq!(
            got.credential.map(|c| c.credential),
            Some(realistic(8)),
            "tear after {after} writes ({mode})"
        );
        run_desfire_encode(&mut enc, &realistic_next(8)).expect("encode after tear");
        let got = run_desfire_scan(&mut enc).expect("scan");
        assert_eq!(
            got.credential.map(|c| c.credential),
            Some(realistic_next(8))
        );
    }
}
