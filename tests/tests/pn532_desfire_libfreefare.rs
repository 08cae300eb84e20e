//! The virtual `DESFire` card seen by tools nobody here wrote: Debian's libfreefare-bin through
//! libnfc's `pn532_uart` driver and the PN532 emulator (docs/reference/desfire.md §8).
//!
//! - `mifare-desfire-info` reads each generation (EV0 to EV3) as the real card would report itself:
//!   version numbers, storage size, UID, batch, production date, PICC key settings, free
//!   memory and the random-UID flag.
//! - `mifare-desfire-create-ndef` and `mifare-desfire-format` take a factory-fresh card with its
//!   default DES PICC key (legacy authentication, D40 secure messaging); the card's saved image
//!   shows what they left.
//! - `mifare-desfire-write-ndef` and `-read-ndef` put an NDEF message in that application and
//!   read it back.
//! - `mifare-desfire-access` writes an enciphered file (D40 full mode: CRC16, the PCD's
//!   deciphering chain) and reads it back, checking the card's cryptogram and CRC, then formats
//!   the card.
//!
//! Tools missing (make deps installs libfreefare-bin) fail these tests loudly.

mod pn532_support;

use std::path::Path;

use pn532_support::{Emulator, libnfc_tool};
use serde_json::Value;

fn run(link: &Path, program: &str, args: &[&str], cwd: &Path) -> String {
    let out = libnfc_tool(link, program, args, cwd);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value after `label:` on the first line that has it, trimmed.
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map_or_else(
            || panic!("no {label:?} in:\n{text}"),
            |rest| rest.trim_start_matches(':').trim(),
        )
}

#[test]
fn mifare_desfire_info_reports_each_generation_as_the_real_card() {
    // (type, HW version, SW version, storage line, batch, production date)
    let cases = [
        (
            "desfire-ev0",
            "0.2",
            "0.6",
            "0x18 (=4096 bytes)",
            "0xb052104110",
            "week 20, 2008",
        ),
        (
            "desfire-ev1",
            "1.0",
            "1.4",
            "0x1a (=8192 bytes)",
            "0xba4519e320",
            "week 49, 2013",
        ),
        (
            "desfire-ev2",
            "18.0",
            "2.1",
            "0x1a (=8192 bytes)",
            "0xceedd45180",
            "week 31, 2019",
        ),
        (
            "desfire-ev3",
            "51.0",
            "3.0",
            "0x18 (=4096 bytes)",
            "0x2113623030",
            "week 40, 2024",
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for (kind, hw, sw, storage, batch, date) in cases {
        let link = dir.path().join(format!("pn532-{kind}"));
        let emu = Emulator::start(&link, &["--type", kind, "--uid", "04A1B2C3D4E5F6"]);
        let out = run(&link, "mifare-desfire-info", &[], dir.path());
        assert_eq!(field(&out, "UID"), "0x04a1b2c3d4e5f6", "{kind}:\n{out}");
        assert_eq!(field(&out, "Batch number"), batch, "{kind}:\n{out}");
        assert_eq!(field(&out, "Production date"), date, "{kind}:\n{out}");
        let versions: Vec<&str> = out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Version:"))
            .map(str::trim)
            .collect();
        assert_eq!(versions, [hw, sw], "{kind}:\n{out}");
        let storages: Vec<&str> = out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Storage size:"))
            .map(str::trim)
            .collect();
        assert_eq!(storages, [storage, storage], "{kind}:\n{out}");
        assert!(out.contains("Master Key settings (0x0f)"), "{kind}:\n{out}");
        assert_eq!(
            field(&out, "Master Key version"),
            "0 (0x00)",
            "{kind}:\n{out}"
        );
        // FreeMemory came with EV1: libfreefare reads "unknown" from an EV0.
        let free = field(&out, "Free memory");
        if kind == "desfire-ev0" {
            assert_eq!(free, "unknown", "{out}");
        } else {
            assert!(free.ends_with("bytes"), "{kind}:\n{out}");
        }
        assert_eq!(field(&out, "Use random UID"), "no", "{kind}:\n{out}");
        emu.quit();
    }
}

#[test]
fn libfreefare_sees_the_random_uid_option_and_turns_it_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    // libfreefare turns the random-UID option on (SetConfiguration, enciphered under the
    // legacy session); the card placed again shows it.
    let link = dir.path().join("pn532-configure");
    let save = dir.path().join("configured.json");
    let mut emu = Emulator::start(
        &link,
        &[
            "--type",
            "desfire-ev1",
            "--save",
            &save.display().to_string(),
        ],
    );
    run(
        &link,
        "mifare-desfire-ev1-configure-random-uid",
        &["-y"],
        dir.path(),
    );
    emu.remove();
    let card: Value = serde_json::from_slice(&std::fs::read(&save).expect("image")).expect("JSON");
    assert_eq!(card["random_uid"], true, "{card:#}");
    emu.insert();
    let out = run(&link, "mifare-desfire-info", &[], dir.path());
    assert_eq!(field(&out, "Use random UID"), "yes", "{out}");
    emu.quit();

    // The random-UID option: a 4-byte 08... UID at anticollision, zeros in GetVersion.
    let link = dir.path().join("pn532-random");
    let emu = Emulator::start(&link, &["--type", "desfire-ev2", "--random-uid"]);
    let out = run(&link, "mifare-desfire-info", &[], dir.path());
    assert_eq!(field(&out, "Use random UID"), "yes", "{out}");
    assert_eq!(field(&out, "UID"), "0x00000000000000", "{out}");
    let tag = out
        .lines()
        .find_map(|l| l.strip_prefix("===> Version information for tag "))
        .expect("tag line");
    assert!(tag.starts_with("08") && tag.len() == 9, "{out}");
    emu.quit();
}

fn image(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("card image")).expect("JSON image")
}

#[test]
fn libfreefare_takes_a_factory_card_creates_ndef_enciphers_a_file_and_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("pn532");
    let save = dir.path().join("card.json");
    let log = dir.path().join("frames.log");
    let mut emu = Emulator::start(
        &link,
        &[
            "--type",
            "desfire-ev2",
            "--save",
            &save.display().to_string(),
            "--apdu-log",
            &log.display().to_string(),
        ],
    );
    let out = run(&link, "mifare-desfire-create-ndef", &["-y"], dir.path());
    assert!(out.contains("Found Mifare DESFire"), "{out}");
    emu.remove(); // saves the image
    let card = image(&save);
    let apps = card["applications"].as_array().expect("applications");
    assert_eq!(apps.len(), 1, "{card:#}");
    let ndef = &apps[0];
    // AN11004: the NDEF application with its DF name, ISO FID E110, CC file E103 and NDEF
    // file E104, one DES key.
    assert_eq!(ndef["aid"], "000001", "{card:#}");
    assert_eq!(ndef["df_name"], "D2760000850101", "{card:#}");
    assert_eq!(ndef["iso_fid"], 0xE110, "{card:#}");
    assert_eq!(ndef["key_type"], "des", "{card:#}");
    let files = ndef["files"].as_array().expect("files");
    let fids: Vec<&Value> = files.iter().map(|f| &f["iso_fid"]).collect();
    assert_eq!(fids, [0xE103, 0xE104], "{card:#}");
    // The capability container libfreefare wrote: CCLEN 000F, mapping version 2.0, and the
    // NDEF file control TLV naming E104.
    let cc = files[0]["data"].as_str().expect("cc");
    assert!(cc.starts_with("000F20"), "{cc}");
    assert!(cc.contains("0406E104"), "{cc}");
    // The tool authenticated with the default DES key (legacy 0A) on the PICC and in the app.
    let frames = std::fs::read_to_string(&log).expect("log");
    let legacy_auths = frames
        .lines()
        .filter(|l| l.starts_with("D4 40 01 90 0A"))
        .count();
    assert!(legacy_auths >= 2, "{frames}");

    // An NDEF message through the Type 4 Tag application: written and read back by the
    // tools, and in the NDEF file (NLEN, then the message).
    emu.insert();
    let message = b"\xd1\x01\x0c\x55\x04example.com";
    std::fs::write(dir.path().join("message.ndef"), message).expect("ndef");
    run(
        &link,
        "mifare-desfire-write-ndef",
        &["-y", "-i", "message.ndef"],
        dir.path(),
    );
    run(
        &link,
        "mifare-desfire-read-ndef",
        &["-y", "-o", "read.ndef"],
        dir.path(),
    );
    assert_eq!(
        std::fs::read(dir.path().join("read.ndef")).expect("read"),
        message
    );
    emu.remove();
    let card = image(&save);
    let ndef_file = card["applications"][0]["files"][1]["data"]
        .as_str()
        .expect("NDEF file");
    assert!(
        ndef_file.starts_with("0010D1010C5504"),
        "{}",
        &ndef_file[..40]
    );

    // mifare-desfire-format takes the card back to factory state.
    emu.insert();
    let out = run(&link, "mifare-desfire-format", &["-y"], dir.path());
    assert!(out.contains("Found Mifare DESFire"), "{out}");
    emu.remove();
    let card = image(&save);
    assert_eq!(
        card["applications"].as_array().map(Vec::len),
        Some(0),
        "{card:#}"
    );
    assert_eq!(card["picc"]["key_settings"], 0x0F, "{card:#}");
    assert_eq!(card["picc"]["key"], "00".repeat(16), "{card:#}");

    // mifare-desfire-access: an enciphered 20-byte file in a new application, written and
    // read back by the tool, which compares what it reads; then it formats the card.
    emu.insert();
    run(&link, "mifare-desfire-access", &[], dir.path());
    let frames = std::fs::read_to_string(&log).expect("log");
    let data: Vec<&str> = frames
        .lines()
        .skip_while(|l| !l.starts_with("D4 40 01 90 CD 00 00 07 01 03"))
        .filter(|l| l.starts_with("D4 40 01 90 3D") || l.starts_with("D4 40 01 90 BD"))
        .collect();
    assert_eq!(
        data.len(),
        2,
        "an enciphered file written and read:\n{frames}"
    );
    emu.remove();
    assert_eq!(
        image(&save)["applications"].as_array().map(Vec::len),
        Some(0)
    );
    emu.quit();
}
