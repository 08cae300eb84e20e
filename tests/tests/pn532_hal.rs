//! The serial PN532 backend against `encoder-sim pn532`: the same kind of checks as the PC/SC
//! backend's (identify, authenticate, read, write, access conditions, card removed, device
//! unplugged and back), through the same PC/SC Part 3 APDUs.

mod pn532_support;

use std::time::{Duration, Instant};

use encoder_hal::{CardSession, Encoder, EncoderKind, ErrorKind, Pn532Encoder};
use encoder_protocol::card::CardType;
use encoder_protocol::transmit::TransmitErrorKind;
use pn532_support::Emulator;

const LOAD_FACTORY_KEY: [u8; 11] = [
    0xFF, 0x82, 0x00, 0x00, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
];
const OK: [u8; 2] = [0x90, 0x00];
const FAILED: [u8; 2] = [0x63, 0x00];

fn setup(args: &[&str]) -> (tempfile::TempDir, Emulator, Pn532Encoder) {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = Emulator::start(&dir.path().join("pn532"), args);
    let encoder = Pn532Encoder::new(emulator.path());
    (dir, emulator, encoder)
}

fn auth(block: u8, key_type: u8, key_no: u8) -> Vec<u8> {
    vec![
        0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, block, key_type, key_no,
    ]
}

fn read(block: u8) -> Vec<u8> {
    vec![0xFF, 0xB0, 0x00, block, 0x10]
}

fn write(block: u8, data: &[u8; 16]) -> Vec<u8> {
    let mut apdu = vec![0xFF, 0xD6, 0x00, block, 0x10];
    apdu.extend_from_slice(data);
    apdu
}

fn tx(session: &mut dyn CardSession, apdu: &[u8]) -> Vec<u8> {
    session.transmit(apdu).expect("transmit")
}

#[test]
fn identifies_the_card_from_what_the_chip_reports() {
    let (_dir, _emu, mut encoder) = setup(&["--uid", "DEADBEEF"]);
    assert_eq!(encoder.kind(), EncoderKind::Pn532);
    assert!(encoder.wait_for_card(Duration::from_secs(5)).expect("wait"));
    let mut session = encoder.open_session().expect("session");
    let info = session.info().clone();
    assert_eq!(info.uid, [0xDE, 0xAD, 0xBE, 0xEF]);
    assert_eq!(info.sak, Some(0x08));
    // What the chip said, nothing made up: a PN532 has no ATR.
    assert_eq!(info.atr, None);
    assert_eq!(info.card_type(), CardType::Classic1k);
    assert_eq!(
        tx(&mut *session, &[0xFF, 0xCA, 0x00, 0x00, 0x00]),
        [0xDE, 0xAD, 0xBE, 0xEF, 0x90, 0x00]
    );
    assert_eq!(
        tx(&mut *session, &[0xFF, 0xCA, 0x01, 0x00, 0x00]),
        [0x6A, 0x81]
    );
    assert_eq!(tx(&mut *session, &[0xFF, 0x12, 0x00, 0x00]), [0x6A, 0x81]);
}

#[test]
fn identifies_4k_and_seven_byte_uids() {
    let (_dir, _emu, mut encoder) = setup(&["--type", "classic-4k", "--uid", "04112233445566"]);
    assert!(encoder.wait_for_card(Duration::from_secs(5)).expect("wait"));
    let mut session = encoder.open_session().expect("session");
    assert_eq!(session.info().sak, Some(0x18));
    assert_eq!(session.info().card_type(), CardType::Classic4k);
    assert_eq!(session.info().uid.len(), 7);
    // Authentication uses the last four UID bytes.
    assert_eq!(tx(&mut *session, &LOAD_FACTORY_KEY), OK);
    assert_eq!(tx(&mut *session, &auth(200, 0x60, 0)), OK);
    assert_eq!(
        tx(&mut *session, &read(200)),
        [[0u8; 16].as_slice(), &OK].concat()
    );
}

#[test]
fn authenticates_reads_and_writes() {
    let (_dir, _emu, mut encoder) = setup(&[]);
    assert!(encoder.wait_for_card(Duration::from_secs(5)).expect("wait"));
    let mut session = encoder.open_session().expect("session");
    // No key loaded in slot 1: refused without touching the card.
    assert_eq!(tx(&mut *session, &auth(4, 0x60, 1)), FAILED);
    assert_eq!(tx(&mut *session, &LOAD_FACTORY_KEY), OK);
    assert_eq!(
        tx(
            &mut *session,
            &[0xFF, 0x82, 0x00, 0x02, 0x06, 1, 2, 3, 4, 5, 6]
        ),
        FAILED
    );
    // Not authenticated yet: the card refuses.
    assert_eq!(tx(&mut *session, &read(4)), FAILED);
    assert_eq!(tx(&mut *session, &auth(4, 0x60, 0)), OK);
    let data = *b"encoder-bridge!!";
    assert_eq!(tx(&mut *session, &write(4, &data)), OK);
    assert_eq!(tx(&mut *session, &read(4)), [data.as_slice(), &OK].concat());
    // A wrong key fails with 63 00, and the card is re-selected before the next command.
    assert_eq!(
        tx(
            &mut *session,
            &[0xFF, 0x82, 0x00, 0x01, 0x06, 1, 2, 3, 4, 5, 6]
        ),
        OK
    );
    assert_eq!(tx(&mut *session, &auth(8, 0x60, 1)), FAILED);
    assert_eq!(tx(&mut *session, &auth(8, 0x60, 0)), OK);
    assert_eq!(
        tx(&mut *session, &read(8)),
        [[0u8; 16].as_slice(), &OK].concat()
    );
    // Only the most recent authentication counts.
    assert_eq!(tx(&mut *session, &read(4)), FAILED);
    // Obsolete authenticate form FF 88.
    assert_eq!(tx(&mut *session, &[0xFF, 0x88, 0x00, 0x04, 0x60, 0x00]), OK);
    assert_eq!(tx(&mut *session, &read(4)), [data.as_slice(), &OK].concat());
    drop(session);
    // A new session starts unauthenticated (the card was re-selected).
    let mut session = encoder.open_session().expect("session");
    assert_eq!(tx(&mut *session, &read(4)), FAILED);
}

#[test]
fn honours_access_conditions() {
    let (_dir, _emu, mut encoder) = setup(&[]);
    assert!(encoder.wait_for_card(Duration::from_secs(5)).expect("wait"));
    let mut session = encoder.open_session().expect("session");
    let key_b = [0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5];
    assert_eq!(tx(&mut *session, &LOAD_FACTORY_KEY), OK);
    assert_eq!(tx(&mut *session, &auth(7, 0x60, 0)), OK);
    // Sector 1: data 100 (read A|B, write B), trailer 011.
    let mut trailer = [0xFF; 16];
    trailer[6..10].copy_from_slice(&[0x78, 0x77, 0x88, 0x69]);
    trailer[10..].copy_from_slice(&key_b);
    assert_eq!(tx(&mut *session, &write(7, &trailer)), OK);
    assert_eq!(tx(&mut *session, &auth(4, 0x60, 0)), OK);
    assert_eq!(
        tx(&mut *session, &read(4)),
        [[0u8; 16].as_slice(), &OK].concat()
    );
    assert_eq!(tx(&mut *session, &write(4, &[0x11; 16])), FAILED);
    let mut load_b = vec![0xFF, 0x82, 0x00, 0x01, 0x06];
    load_b.extend_from_slice(&key_b);
    assert_eq!(tx(&mut *session, &load_b), OK);
    assert_eq!(tx(&mut *session, &auth(4, 0x61, 1)), OK);
    assert_eq!(tx(&mut *session, &write(4, &[0x11; 16])), OK);
    assert_eq!(
        tx(&mut *session, &read(4)),
        [[0x11u8; 16].as_slice(), &OK].concat()
    );
    // Block 0 is read-only.
    assert_eq!(tx(&mut *session, &auth(0, 0x60, 0)), OK);
    assert_eq!(tx(&mut *session, &write(0, &[0; 16])), FAILED);
}

#[test]
fn card_removed_and_no_card_are_bounded() {
    let (_dir, mut emu, mut encoder) = setup(&[]);
    assert!(encoder.wait_for_card(Duration::from_secs(5)).expect("wait"));
    {
        let mut session = encoder.open_session().expect("session");
        assert_eq!(tx(&mut *session, &LOAD_FACTORY_KEY), OK);
        assert_eq!(tx(&mut *session, &auth(4, 0x60, 0)), OK);
        emu.remove();
        let error = session.transmit(&read(4)).expect_err("card is gone");
        assert_eq!(error.kind(), TransmitErrorKind::CardRemoved, "{error}");
    }
    let start = Instant::now();
    assert!(
        !encoder
            .wait_for_card(Duration::from_millis(300))
            .expect("wait")
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let error = encoder.open_session().map(drop).expect_err("no card");
    assert_eq!(error.kind(), ErrorKind::NoCard);
    emu.insert();
    assert!(encoder.wait_for_card(Duration::from_secs(5)).expect("wait"));
    let mut session = encoder.open_session().expect("session");
    assert_eq!(tx(&mut *session, &[0xFF, 0xCA, 0x00, 0x00, 0x00]).len(), 6);
}

#[test]
fn a_blocked_wait_is_cancelled_promptly() {
    let (_dir, mut emu, mut encoder) = setup(&[]);
    emu.remove();
    let canceller = encoder.canceller();
    let waiter = std::thread::spawn(move || {
        let start = Instant::now();
        let result = encoder.wait_for_card(Duration::from_secs(30));
        (result, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    canceller.cancel();
    let (result, took) = waiter.join().expect("join");
    assert_eq!(result.expect_err("cancelled").kind(), ErrorKind::Cancelled);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn unplugged_device_is_reported_and_reopened_when_back() {
    let (dir, mut emu, mut encoder) = setup(&[]);
    assert!(encoder.wait_for_card(Duration::from_secs(5)).expect("wait"));
    {
        let mut session = encoder.open_session().expect("session");
        assert_eq!(tx(&mut *session, &LOAD_FACTORY_KEY), OK);
        emu.unplug();
        let error = session
            .transmit(&auth(4, 0x60, 0))
            .expect_err("device is gone");
        assert_eq!(
            error.kind(),
            TransmitErrorKind::ReaderUnavailable,
            "{error}"
        );
    }
    let error = encoder
        .wait_for_card(Duration::from_millis(300))
        .expect_err("still gone");
    assert_eq!(error.kind(), ErrorKind::ReaderUnavailable, "{error}");
    emu.plug();
    assert!(
        encoder
            .wait_for_card(Duration::from_secs(5))
            .expect("reopened")
    );
    {
        let mut session = encoder.open_session().expect("session");
        // Key slots belong to the reader side (the backend) and survive the replug.
        assert_eq!(tx(&mut *session, &auth(4, 0x60, 0)), OK);
        assert_eq!(
            tx(&mut *session, &read(4)),
            [[0u8; 16].as_slice(), &OK].concat()
        );
    }
    // The emulator process ends (the adapter is gone for good), then a new one appears.
    assert!(emu.quit().success());
    let error = encoder
        .wait_for_card(Duration::from_millis(300))
        .expect_err("gone");
    assert_eq!(error.kind(), ErrorKind::ReaderUnavailable, "{error}");
    let _emu = Emulator::start(&dir.path().join("pn532"), &[]);
    assert!(
        encoder
            .wait_for_card(Duration::from_secs(5))
            .expect("reopened")
    );
}

#[test]
fn a_missing_device_is_unavailable_not_a_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nothing");
    let mut encoder = Pn532Encoder::new(path.display().to_string());
    let start = Instant::now();
    let error = encoder
        .wait_for_card(Duration::from_millis(200))
        .expect_err("no device");
    assert_eq!(error.kind(), ErrorKind::ReaderUnavailable);
    assert!(start.elapsed() < Duration::from_secs(2));
}
