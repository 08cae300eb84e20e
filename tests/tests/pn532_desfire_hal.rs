//! The serial PN532 backend with the virtual `DESFire` in the emulator's field: the card is
//! identified from what the chip reports (SAK 20, ATS), APDUs of class 90 travel through
//! `InDataExchange` unchanged (`GetVersion` in three frames), and a torn write takes the card
//! out of the field.

mod pn532_support;

use std::time::Duration;

use encoder_hal::{CardSession, Encoder, Pn532Encoder};
use pn532_support::Emulator;

fn tx(session: &mut dyn CardSession, apdu: &[u8]) -> Vec<u8> {
    session.transmit(apdu).expect("transmit")
}

#[test]
fn desfire_through_the_serial_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut emu = Emulator::start(
        &dir.path().join("pn532"),
        &[
            "--type",
            "desfire-ev3",
            "--uid",
            "04A1B2C3D4E5F6",
            "--tear-after-writes",
            "1",
            "--tear-mode",
            "landed",
        ],
    );
    let mut encoder = Pn532Encoder::new(emu.path());
    assert!(encoder.wait_for_card(Duration::from_secs(5)).expect("wait"));
    let mut session = encoder.open_session().expect("session");
    let info = session.info().clone();
    assert_eq!(info.uid, [0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]);
    assert_eq!(info.sak, Some(0x20));
    assert_eq!(
        tx(&mut *session, &[0xFF, 0xCA, 0x01, 0x00, 0x00]),
        [0x06, 0x75, 0x77, 0x81, 0x02, 0x80, 0x90, 0x00]
    );
    let mut version = Vec::new();
    let mut apdu = vec![0x90, 0x60, 0x00, 0x00, 0x00];
    loop {
        let r = tx(&mut *session, &apdu);
        let (data, sw) = r.split_at(r.len() - 2);
        version.extend_from_slice(data);
        if sw == [0x91, 0x00] {
            break;
        }
        assert_eq!(sw, [0x91, 0xAF]);
        apdu = vec![0x90, 0xAF, 0x00, 0x00, 0x00];
    }
    assert_eq!(version.len(), 28);
    assert_eq!(version[..7], [0x04, 0x01, 0x01, 0x33, 0x00, 0x18, 0x05]);
    assert_eq!(version[14..21], [0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]);
    // The first write lands; the second tears: the card leaves without an answer.
    let create = |aid: u8| {
        [
            0x90, 0xCA, 0x00, 0x00, 0x05, aid, 0x00, 0x00, 0x0F, 0x82, 0x00,
        ]
    };
    assert_eq!(tx(&mut *session, &create(1)), [0x91, 0x00]);
    let torn = session.transmit(&create(2));
    assert!(
        torn.as_deref() != Ok(&[0x91, 0x00][..]),
        "a torn write does not succeed: {torn:?}"
    );
    drop(session);
    emu.expect_line("removed");
}
