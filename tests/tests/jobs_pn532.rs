//! The protocol crate's jobs through the serial PN532 transport: `Pn532Encoder` over a pty to
//! `encoder-sim pn532`, with Classic and `DESFire` cards in its field.

mod pn532_support;

use std::time::Duration;

use encoder_hal::{Encoder, Pn532Encoder};
use encoder_protocol::error::JobError;
use encoder_protocol::format::Credential;
use encoder_protocol::job::{CardState, EncodeOutcome, ScanOutcome, encode, scan};
use encoder_tests::jobs::{desfire_encode_on, desfire_scan_on, realistic, realistic_next, site};
use pn532_support::{Emulator, libnfc_tool};

const WAIT: Duration = Duration::from_secs(5);

fn setup(args: &[&str]) -> (tempfile::TempDir, Emulator, Pn532Encoder) {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = Emulator::start(&dir.path().join("pn532"), args);
    let encoder = Pn532Encoder::new(emulator.path());
    (dir, emulator, encoder)
}

fn run_encode(
    encoder: &mut Pn532Encoder,
    credential: &Credential,
) -> Result<EncodeOutcome, JobError> {
    assert!(encoder.wait_for_card(WAIT).expect("wait"), "no card");
    let mut session = encoder.open_session().expect("session");
    let info = session.info().clone();
    encode(&mut *session, &info, &site(), credential)
}

fn run_scan(encoder: &mut Pn532Encoder) -> Result<ScanOutcome, JobError> {
    assert!(encoder.wait_for_card(WAIT).expect("wait"), "no card");
    let mut session = encoder.open_session().expect("session");
    let info = session.info().clone();
    scan(&mut *session, &info, &site())
}

#[test]
fn encode_scan_reencode_scan_through_pn532() {
    for card_type in ["classic-1k", "classic-4k", "mini"] {
        let (_dir, _emu, mut enc) = setup(&["--type", card_type, "--uid", "04A1B2C3"]);
        assert_eq!(run_scan(&mut enc).expect("scan").state, CardState::Blank);
        let out = run_encode(&mut enc, &realistic(8))
            .unwrap_or_else(|e| panic!("{card_type}: {e} ({})", e.detail()));
        eprintln!("pn532 {card_type}: encode blank {} APDUs", out.apdu_count);
        let got = run_scan(&mut enc).expect("scan");
        assert_eq!(got.credential.expect("cred").credential, realistic(8));
        run_encode(&mut enc, &realistic_next(8)).expect("re-encode");
        let got = run_scan(&mut enc).expect("scan");
        assert_eq!(got.credential.expect("cred").credential, realistic_next(8));
    }
}

#[test]
fn card_pulled_mid_reencode_through_pn532() {
    // Blank encode: 10 writes; tear at the re-encode's 2nd write.
    let (_dir, mut emu, mut enc) = setup(&["--uid", "04A1B2C3", "--tear-after-writes", "11"]);
    run_encode(&mut enc, &realistic(8)).expect("first encode");
    let err = run_encode(&mut enc, &realistic_next(8)).expect_err("torn");
    assert_eq!(
        err.name(),
        "encoding_interrupted",
        "{err} ({})",
        err.detail()
    );
    emu.insert();
    match run_scan(&mut enc) {
        Ok(out) => assert_eq!(out.credential.map(|c| c.credential), Some(realistic(8))),
        Err(e) => assert_eq!(e.sub_code(), Some("card_payload_corrupt"), "{e}"),
    }
    run_encode(&mut enc, &realistic_next(8)).expect("encode after tear");
    let got = run_scan(&mut enc).expect("scan");
    assert_eq!(got.credential.expect("cred").credential, realistic_next(8));
}

#[test]
fn no_card_within_a_short_wait_through_pn532() {
    let (_dir, mut emu, mut enc) = setup(&[]);
    emu.remove();
    assert!(!enc.wait_for_card(Duration::from_millis(300)).expect("wait"));
}

fn run_desfire_encode(
    encoder: &mut Pn532Encoder,
    credential: &Credential,
) -> Result<EncodeOutcome, JobError> {
    desfire_encode_on(encoder, WAIT, credential)
}

fn run_desfire_scan(encoder: &mut Pn532Encoder) -> Result<ScanOutcome, JobError> {
    desfire_scan_on(encoder, WAIT)
}

/// The `DESFire` jobs through the PN532 (`InDataExchange` carries the wrapped commands; the
/// hal's `CardInfo` holds the target's SAK `20` and ATS).
#[test]
fn desfire_encode_scan_reencode_through_pn532() {
    for card_type in ["desfire-ev1", "desfire-ev2", "desfire-ev3"] {
        let (_dir, _emu, mut enc) = setup(&["--type", card_type, "--uid", "04A1A2A3A4A5A6"]);
        let blank = run_desfire_scan(&mut enc).expect("scan");
        assert_eq!(blank.state, CardState::Blank);
        let out = run_desfire_encode(&mut enc, &realistic(8))
            .unwrap_or_else(|e| panic!("{card_type}: {e} ({})", e.detail()));
        assert!(out.first_encode);
        let got = run_desfire_scan(&mut enc).expect("scan");
        assert_eq!(got.credential.map(|c| c.credential), Some(realistic(8)));
        let again = run_desfire_encode(&mut enc, &realistic_next(8)).expect("re-encode");
        let got = run_desfire_scan(&mut enc).expect("scan");
        assert_eq!(
            got.credential.map(|c| c.credential),
            Some(realistic_next(8))
        );
        eprintln!(
            "pn532 {card_type}: encode blank {}, re-encode {}, scan {} APDUs",
            out.apdu_count, again.apdu_count, got.apdu_count
        );
    }
}

/// The outside check of issue 14: libfreefare's `mifare-desfire-create-ndef` (Debian's
/// libfreefare-bin through libnfc's `pn532_uart`) prepares a factory card with its default DES
/// key; the bridge's encode then adds our application beside the NDEF application, which stays
/// byte for byte as libfreefare left it, and `mifare-desfire-info` still reads the card.
#[test]
fn desfire_encode_beside_libfreefares_ndef_application() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("pn532");
    let save = dir.path().join("card.json");
    let mut emu = Emulator::start(
        &link,
        &[
            "--type",
            "desfire-ev2",
            "--uid",
            "04A1A2A3A4A5A6",
            "--save",
            &save.display().to_string(),
        ],
    );
    let out = libnfc_tool(&link, "mifare-desfire-create-ndef", &["-y"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    emu.remove();
    let before: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&save).expect("image")).expect("json");
    let ndef_before = before["applications"][0].clone();
    assert_eq!(ndef_before["aid"], "000001", "{before:#}");
    emu.insert();
    let mut enc = Pn532Encoder::new(emu.path());
    run_desfire_encode(&mut enc, &realistic(8)).unwrap_or_else(|e| panic!("{e} ({})", e.detail()));
    let got = run_desfire_scan(&mut enc).expect("scan");
    assert_eq!(got.credential.map(|c| c.credential), Some(realistic(8)));
    drop(enc);
    emu.remove();
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&save).expect("image")).expect("json");
    let apps = after["applications"].as_array().expect("applications");
    assert_eq!(apps.len(), 2, "{after:#}");
    let ndef_after = apps
        .iter()
        .find(|a| a["aid"] == "000001")
        .expect("the NDEF application");
    assert_eq!(
        ndef_after, &ndef_before,
        "libfreefare's application changed"
    );
    assert!(apps.iter().any(|a| a["aid"] == "FF0EB0"), "{after:#}");
    assert_eq!(after["picc"], before["picc"], "the PICC changed");
    emu.insert();
    let out = libnfc_tool(&link, "mifare-desfire-info", &[], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0x04a1a2a3a4a5a6"), "{text}");
}
