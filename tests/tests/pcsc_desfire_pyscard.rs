//! The virtual `DESFire` card through a real pcscd and vpcd, driven by a reader-side EV2 client
//! nobody on the card's side wrote: `tests/pyscard/desfire_ev2.py` (pyscard and Python's
//! `cryptography`). It creates an AES application, authenticates with `EV2First`, writes a
//! full-mode backup file, commits, reads it back, writes and reads 100 bytes in full mode over
//! `AF` frames both ways, asks the card's UID in full mode, and sees a
//! wrong MAC end the session; then, in a second application, `AuthenticateAES` with EV1 secure
//! messaging (one IV through every CMAC and cryptogram, CRC32) writes and reads a full-mode
//! file. The card's saved image shows the committed file.
//!
//! Needs root (the rig) and `/usr/bin/python3` with python3-pyscard and python3-cryptography
//! (make deps); without them the test fails loudly.

use std::process::Command;

use encoder_tests::{Rig, workspace};
use serde_json::Value;

#[test]
fn an_independent_client_with_ev2_and_ev1_secure_messaging_through_pcscd() {
    let rig = Rig::start(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let save = dir.path().join("card.json");
    let mut card = rig.card(
        0,
        &[
            "--type",
            "desfire-ev3",
            "--uid",
            "04A1B2C3D4E5F6",
            "--save",
            &save.display().to_string(),
        ],
    );
    let (key, value) = rig.env();
    let out = Command::new("/usr/bin/python3")
        .arg(workspace().join("tests/pyscard/desfire_ev2.py"))
        .arg(Rig::reader_name(0))
        .env(key, value)
        .output()
        .expect("/usr/bin/python3 (make deps installs python3-pyscard, python3-cryptography)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        rig.log()
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(seen["atr"], "3b8180018080", "{seen}");
    assert_eq!(seen["uid"], "04a1b2c3d4e5f6", "{seen}");
    let version = seen["version"].as_str().expect("version");
    assert_eq!(version.len(), 56, "28 bytes: {seen}");
    assert!(
        version.starts_with("04010133001805"),
        "EV3 hardware: {seen}"
    );
    for step in [
        "create_app",
        "select",
        "auth",
        "create_file",
        "write",
        "commit",
    ] {
        assert_eq!(seen[step], 0, "{step}: {seen}");
    }
    assert_eq!(seen["rnd_a_ok"], true, "{seen}");
    assert_eq!(seen["read"], "encoder-bridge DESFire", "{seen}");
    assert_eq!(seen["card_uid"], "04a1b2c3d4e5f6", "{seen}");
    assert_eq!(seen["create_long"], 0, "{seen}");
    assert_eq!(seen["write_long"], 0, "{seen}");
    assert_eq!(
        seen["read_long_ok"], true,
        "100 bytes over AF frames: {seen}"
    );
    assert_eq!(seen["ctr"], 8, "every command counted: {seen}");
    assert_eq!(seen["tampered"], 0x1E, "{seen}");
    assert_eq!(seen["after"], 0xAE, "{seen}");
    // EV1 secure messaging in a second application.
    for step in ["ev1_create_app", "ev1_auth", "ev1_create_file", "ev1_write"] {
        assert_eq!(seen[step], 0, "{step}: {seen}");
    }
    for check in ["ev1_rnd_a_ok", "ev1_write_mac_ok", "ev1_read_crc_ok"] {
        assert_eq!(seen[check], true, "{check}: {seen}");
    }
    assert_eq!(seen["ev1_read"], "the IV runs through it all", "{seen}");
    assert_eq!(seen["ev1_key_version"], "00", "{seen}");
    card.remove(); // its image is saved
    let image: Value =
        serde_json::from_slice(&std::fs::read(&save).expect("image")).expect("JSON image");
    let file = &image["applications"][0]["files"][0];
    assert_eq!(file["kind"], "backup", "{image:#}");
    let data = file["data"].as_str().expect("data");
    assert!(
        data.starts_with(&hex(b"encoder-bridge DESFire")),
        "committed: {data}"
    );
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}
