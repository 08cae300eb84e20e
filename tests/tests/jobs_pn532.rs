//! The protocol crate's jobs through the serial PN532 transport: `Pn532Encoder` over a pty to
//! `encoder-sim pn532` (Classic cards only).

mod pn532_support;

use std::time::Duration;

use encoder_hal::{Encoder, Pn532Encoder};
use encoder_protocol::error::JobError;
use encoder_protocol::format::Credential;
use encoder_protocol::job::{CardState, EncodeOutcome, ScanOutcome, encode, scan};
use encoder_tests::jobs::{realistic, realistic_next, site};
use pn532_support::Emulator;

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
