//! A card NFC-formatted by a tool nobody here wrote - Debian's libfreefare-bin
//! `mifare-classic-write-ndef`, through libnfc's `pn532_uart` driver and the PN532 emulator -
//! gets our application registered in its MAD with the NFC Forum key B (docs/card-format.md
//! §2): before our encode libfreefare writes and reads its NDEF message; after it, libfreefare
//! still reads the same message, our scan reads our credential, and the card's sector 0 trailer
//! and NDEF sector are byte for byte what libfreefare left. With no published keys configured
//! the same card stays `directory_locked` and untouched.

mod pn532_support;

use std::path::Path;
use std::process::{Command, Output};

use encoder_tests::binary;
use encoder_tests::daemon::{Setup, TOKEN};
use pn532_support::{Emulator, libnfc_tool};
use serde_json::Value;

const NDEF: &[u8] = b"\xd1\x01\x0c\x55\x04example.com";

fn libfreefare(link: &Path, args: &[&str], cwd: &Path) -> Output {
    libnfc_tool(link, args[0], &args[1..], cwd)
}

fn bridge(args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(binary("encoder-bridge"))
        .args(args)
        .output()
        .expect("run encoder-bridge");
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Starts the emulator with a blank 1K card and NFC-formats it with libfreefare; returns the
/// emulator and the card image as libfreefare left it.
fn nfc_formatted_card(dir: &Path) -> (Emulator, Vec<u8>) {
    let link = dir.join("pn532");
    let save = dir.join("card.mfd");
    let mut emu = Emulator::start(
        &link,
        &["--uid", "DEADBEEF", "--save", &save.display().to_string()],
    );
    std::fs::write(dir.join("message.ndef"), NDEF).expect("ndef");
    libfreefare(
        &link,
        &["mifare-classic-write-ndef", "-y", "-i", "message.ndef"],
        dir,
    );
    let out = libfreefare(
        &link,
        &["mifare-classic-read-ndef", "-y", "-o", "read.ndef"],
        dir,
    );
    assert_eq!(
        std::fs::read(dir.join("read.ndef")).expect("read"),
        NDEF,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    emu.remove(); // saves the image
    let image = std::fs::read(&save).expect("image");
    emu.insert();
    // What libfreefare left: the public MAD key A, key B = the NFC Forum key, NDEF in sector 1.
    assert_eq!(&image[48..54], &[0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5]);
    assert_eq!(&image[58..64], &[0xD3, 0xF7, 0xD3, 0xF7, 0xD3, 0xF7]);
    assert_eq!(
        &image[18..20],
        &[0x03, 0xE1],
        "NDEF registered for sector 1"
    );
    (emu, image)
}

fn credential_file(dir: &Path) -> String {
    let path = dir.join("cred.json");
    std::fs::write(
        &path,
        r#"{"acs_credential_id":"9b2f6c1e-7a4d-4f0b-8c35-2e91d7a40f6b","card_number":"4009613812","starts_at":"2024-12-01T15:00:00Z","ends_at":"2024-12-04T12:00:00Z","issue_counter":1,"access_data":"ESIzRFVmd4g="}"#,
    )
    .expect("credential");
    path.display().to_string()
}

#[test]
fn nfc_formatted_card_gets_our_application_beside_its_ndef() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut emu, before) = nfc_formatted_card(dir.path());
    let setup = Setup::new("ws://127.0.0.1:9/", &[], 5.0, TOKEN);
    let config = setup.config().display().to_string();
    let device = emu.path();
    let cred = credential_file(dir.path());
    let (code, json, text) = bridge(&[
        "encode",
        "--credential",
        &cred,
        "--config",
        &config,
        "--device",
        &device,
        "--json",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(json["status"], "success", "{text}");
    assert_eq!(json["result"]["written"]["format_version"], 2, "{text}");

    // libfreefare still finds its NDEF message; we find our credential.
    libfreefare(
        emu.link(),
        &["mifare-classic-read-ndef", "-y", "-o", "after.ndef"],
        dir.path(),
    );
    assert_eq!(
        std::fs::read(dir.path().join("after.ndef")).expect("read"),
        NDEF
    );
    let (code, json, text) = bridge(&["scan", "--config", &config, "--device", &device, "--json"]);
    assert_eq!(code, Some(0), "{text}");
    let on_card = &json["result"]["acs_credential_on_encoder"];
    assert_eq!(
        on_card["acs_credential_id"], "9b2f6c1e-7a4d-4f0b-8c35-2e91d7a40f6b",
        "{text}"
    );
    assert_eq!(on_card["card_number"], "4009613812", "{text}");

    emu.remove();
    let after = std::fs::read(dir.path().join("card.mfd")).expect("image");
    assert_eq!(
        &after[48..64],
        &before[48..64],
        "sector 0 trailer untouched"
    );
    assert_eq!(&after[64..128], &before[64..128], "NDEF sector untouched");
    let mad = &after[16..48];
    assert_eq!(&mad[2..4], &[0x03, 0xE1], "NDEF still registered");
    let ours: Vec<usize> = (1..16)
        .filter(|s| mad[2 * s..2 * s + 2] == [0xEB, 0xF0])
        .collect();
    assert_eq!(ours, vec![2, 3, 4, 5], "{mad:02X?}");

    // The saved image decodes offline too.
    let image = dir.path().join("card.mfd").display().to_string();
    let (code, json, text) = bridge(&["decode", "--config", &config, &image, "--json"]);
    assert_eq!(
        (code, json["state"].as_str()),
        (Some(0), Some("ours")),
        "{text}"
    );
}

#[test]
fn without_published_keys_the_nfc_formatted_card_stays_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut emu, before) = nfc_formatted_card(dir.path());
    let setup = Setup::new("ws://127.0.0.1:9/", &[], 5.0, TOKEN);
    let text = std::fs::read_to_string(setup.config()).expect("config");
    std::fs::write(
        setup.config(),
        text.replacen(
            "[[site_keys.key]]",
            "[site_keys]\npublished_directory_keys = []\n\n[[site_keys.key]]",
            1,
        ),
    )
    .expect("config");
    let config = setup.config().display().to_string();
    let device = emu.path();
    let cred = credential_file(dir.path());
    let (code, json, text) = bridge(&[
        "encode",
        "--credential",
        &cred,
        "--config",
        &config,
        "--device",
        &device,
        "--json",
    ]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(json["error"]["type"], "incompatible_card_format", "{text}");
    assert_eq!(json["error"]["sub_code"], "directory_locked", "{text}");
    emu.remove();
    let after = std::fs::read(dir.path().join("card.mfd")).expect("image");
    assert_eq!(after, before, "nothing written");
}
