//! End to end on the PN532: the seeds' flows as real HTTP requests against the `encoder-sim
//! cloud` binary, the real `encoder-bridge run` process, and PN532 emulators
//! (`encoder-sim pn532`, with MIFARE Classic and `DESFire` cards) behind pseudo-terminals.

mod pn532_support;

use std::path::Path;

use encoder_tests::daemon::{Bridge, Setup, TOKEN};
use encoder_tests::e2e::{Cloud, ENDS_AT, SYSTEM, add_pn532, expect_failure_logged};
use pn532_support::Emulator;
use serde_json::{Value, json};

/// The bridge waits this long for a card (the `no_card_on_encoder` rows).
const CARD_WAIT_SECS: f64 = 2.0;

/// The card number the bridge derives from UID 04A1B2C3 (the cloud gives none).
const CARD_NUMBER_A: &str = "77705923";

/// The cloud, and the bridge driving one PN532 per `(display name, emulator)`.
fn bridge_for(cloud: &Cloud, encoders: &[(&str, &Emulator)]) -> (Setup, Bridge) {
    let setup = Setup::new(&cloud.ws_url(), &[], CARD_WAIT_SECS, TOKEN);
    for (name, emulator) in encoders {
        add_pn532(&setup.config(), &emulator.path(), name);
    }
    // No pcscd is involved: the bridge drives no PC/SC reader (auto_pcsc = false).
    let bridge = setup.spawn(&("ENCODER_E2E", "pn532".into()));
    (setup, bridge)
}

fn link(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(name)
}

/// MIFARE WRITE commands (`InDataExchange` `40 tg A0 ...`) in an `encoder-sim pn532 --apdu-log`.
fn pn532_writes_in(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            let command: Vec<&str> = line
                .split("->")
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            command
                .windows(3)
                .next()
                .is_some_and(|w| w[0] == "40" && w[2] == "A0")
                || command
                    .windows(4)
                    .next()
                    .is_some_and(|w| w[0] == "D4" && w[1] == "40" && w[3] == "A0")
        })
        .count()
}

/// The seeds, start to end, on two PN532 encoders: Front Desk holds card 04A1B2C3, Back
/// Office a blank card.
#[test]
fn seed_flow_on_pn532() {
    let dir = tempfile::tempdir().expect("tempdir");
    let front = Emulator::start(
        &link(dir.path(), "front"),
        &["--type", "classic-1k", "--uid", "04A1B2C3"],
    );
    let back = Emulator::start(
        &link(dir.path(), "back"),
        &["--type", "classic-1k", "--uid", "0A0B0C0D"],
    );
    let cloud = Cloud::start();
    let credential = cloud.seed_credential();
    let (_setup, _bridge) = bridge_for(&cloud, &[("Front Desk", &front), ("Back Office", &back)]);
    let encoders = cloud.encoders(2);
    assert_eq!(encoders.len(), 2, "{encoders:?}");
    assert!(encoders.iter().all(|e| e["acs_system_id"] == SYSTEM));
    let front_desk = cloud.encoder_named("Front Desk");
    let back_office = cloud.encoder_named("Back Office");

    let result = cloud.succeeded(&cloud.encode(&front_desk, &credential));
    assert_eq!(result["acs_credential_id"], credential.as_str(), "{result}");
    assert_eq!(result["is_issued"], true, "{result}");
    assert_eq!(result["card_number"], CARD_NUMBER_A, "{result}");
    let c = cloud.credential(&credential);
    assert_eq!(c["is_issued"], true, "{c}");
    assert_eq!(c["card_number"], CARD_NUMBER_A, "{c}");
    assert!(c["issued_at"].is_string(), "{c}");

    let scanned = cloud.succeeded(&cloud.scan(&front_desk));
    assert_eq!(
        scanned["acs_credential_on_encoder"]["acs_credential_id"],
        credential.as_str(),
        "{scanned}"
    );
    assert_eq!(
        scanned["acs_credential_on_encoder"]["card_number"], CARD_NUMBER_A,
        "{scanned}"
    );
    assert_eq!(
        scanned["acs_credential_on_seam"]["acs_credential_id"],
        credential.as_str(),
        "{scanned}"
    );
    assert_eq!(scanned["warnings"], json!([]), "{scanned}");

    let new_end = "2024-12-06T12:00:00.000Z";
    cloud.ok(
        "/acs/credentials/update",
        &json!({"acs_credential_id": credential, "ends_at": new_end}),
    );
    let scanned = cloud.succeeded(&cloud.scan(&front_desk));
    assert_eq!(
        scanned["warnings"],
        json!([{
            "warning_code": "acs_credential_on_encoder_out_of_sync",
            "warning_message": "The following properties are out of sync between acs_credential_on_encoder and acs_credential_on_seam: ends_at"
        }]),
        "{scanned}"
    );
    assert_eq!(scanned["acs_credential_on_seam"]["ends_at"], new_end);
    assert_ne!(scanned["acs_credential_on_encoder"]["ends_at"], new_end);

    // Re-encode the same card: reissued, in sync again.
    cloud.succeeded(&cloud.encode(&front_desk, &credential));
    assert_eq!(
        cloud
            .events_for("acs_credential.reissued", &credential)
            .len(),
        1
    );
    let scanned = cloud.succeeded(&cloud.scan(&front_desk));
    assert_eq!(scanned["warnings"], json!([]), "{scanned}");

    // The blank card on the other encoder.
    let scanned = cloud.succeeded(&cloud.scan(&back_office));
    assert_eq!(
        scanned["acs_credential_on_encoder"],
        Value::Null,
        "{scanned}"
    );
    assert_eq!(scanned["acs_credential_on_seam"], Value::Null, "{scanned}");
    assert_eq!(scanned["warnings"], json!([]), "{scanned}");

    let events = cloud.events();
    let added: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "acs_encoder.added")
        .collect();
    assert_eq!(added.len(), 2, "{events:?}");
    assert_eq!(
        cloud.events_for("acs_credential.issued", &credential).len(),
        1,
        "{events:?}"
    );
    assert_eq!(cloud.credential(&credential)["ends_at"], new_end);
    assert_ne!(new_end, ENDS_AT);
}

/// Both seeds' error tables as far as a PN532 can show them (the emulator carries MIFARE
/// Classic cards only, so `incompatible_card_format` is covered on PC/SC):
/// `no_card_on_encoder` for an encode and a scan with the card away, `uncategorized_error`
/// for an encode on a worn card (read-back mismatch) and for a scan of it afterwards.
#[test]
fn seed_error_tables_on_pn532() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut front = Emulator::start(
        &link(dir.path(), "front"),
        &["--type", "classic-1k", "--worn"],
    );
    let cloud = Cloud::start();
    let credential = cloud.seed_credential();
    let (_setup, bridge) = bridge_for(&cloud, &[("Front Desk", &front)]);
    let encoder = cloud.encoder_named("Front Desk");

    front.remove();
    let error = cloud.failed(&cloud.encode(&encoder, &credential));
    assert_eq!(error["type"], "no_card_on_encoder", "{error}");
    let error = cloud.failed(&cloud.scan(&encoder));
    assert_eq!(error["type"], "no_card_on_encoder", "{error}");

    front.insert();
    let error = cloud.failed(&cloud.encode(&encoder, &credential));
    assert_eq!(error["type"], "uncategorized_error", "{error}");
    expect_failure_logged(&bridge, "uncategorized_error", "read_back_mismatch");
    let error = cloud.failed(&cloud.scan(&encoder));
    assert_eq!(error["type"], "uncategorized_error", "{error}");
    expect_failure_logged(&bridge, "uncategorized_error", "directory_corrupt");

    assert_eq!(cloud.credential(&credential)["is_issued"], false);
}

/// A credential issued on the Front Desk card is refused for the Back Office card before any
/// write.
#[test]
fn credential_on_another_card_is_refused_on_pn532() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("back.log");
    let front_log = dir.path().join("front.log");
    let front = Emulator::start(
        &link(dir.path(), "front"),
        &[
            "--type",
            "classic-1k",
            "--uid",
            "04A1B2C3",
            "--apdu-log",
            front_log.to_str().expect("path"),
        ],
    );
    let back = Emulator::start(
        &link(dir.path(), "back"),
        &[
            "--type",
            "classic-1k",
            "--uid",
            "DEADBEEF",
            "--apdu-log",
            log.to_str().expect("path"),
        ],
    );
    let cloud = Cloud::start();
    let credential = cloud.seed_credential();
    let (_setup, bridge) = bridge_for(&cloud, &[("Front Desk", &front), ("Back Office", &back)]);
    let front_desk = cloud.encoder_named("Front Desk");
    let back_office = cloud.encoder_named("Back Office");
    cloud.succeeded(&cloud.encode(&front_desk, &credential));
    // The write counter sees the Front Desk card's writes.
    assert!(
        pn532_writes_in(&front_log) > 0,
        "no writes seen in the front log"
    );

    let error = cloud.failed(&cloud.encode(&back_office, &credential));
    assert_eq!(error["type"], "credential_cannot_be_reissued", "{error}");
    expect_failure_logged(
        &bridge,
        "credential_cannot_be_reissued",
        "credential_on_another_card",
    );
    assert!(
        std::fs::read_to_string(&log).is_ok_and(|t| !t.is_empty()),
        "the Back Office emulator logged nothing"
    );
    assert_eq!(
        pn532_writes_in(&log),
        0,
        "the Back Office card was written to"
    );
    let scanned = cloud.succeeded(&cloud.scan(&back_office));
    assert_eq!(
        scanned["acs_credential_on_encoder"],
        Value::Null,
        "{scanned}"
    );
}

/// The seed flow on a `DESFire` EV2 in a PN532 emulator's field, through the real daemon: the
/// hal's `CardInfo` (SAK `20`, the ATS) sends the card down the `DESFire` path; encode, scan in
/// sync, out of sync after an update, re-encode, no card.
#[test]
fn seed_flow_on_a_desfire_card_on_pn532() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut front = Emulator::start(
        &link(dir.path(), "front"),
        &["--type", "desfire-ev2", "--uid", "04A1A2A3A4A5A6"],
    );
    let cloud = Cloud::start();
    let credential = cloud.seed_credential();
    let (_setup, _bridge) = bridge_for(&cloud, &[("Front Desk", &front)]);
    assert_eq!(cloud.encoders(1).len(), 1);
    let encoder = cloud.encoder_named("Front Desk");

    let result = cloud.succeeded(&cloud.encode(&encoder, &credential));
    assert_eq!(result["acs_credential_id"], credential.as_str(), "{result}");
    assert_eq!(result["is_issued"], true, "{result}");
    let scanned = cloud.succeeded(&cloud.scan(&encoder));
    assert_eq!(
        scanned["acs_credential_on_encoder"]["acs_credential_id"],
        credential.as_str(),
        "{scanned}"
    );
    assert_eq!(scanned["warnings"], json!([]), "{scanned}");

    let new_end = "2024-12-06T12:00:00.000Z";
    cloud.ok(
        "/acs/credentials/update",
        &json!({"acs_credential_id": credential, "ends_at": new_end}),
    );
    let scanned = cloud.succeeded(&cloud.scan(&encoder));
    assert_eq!(
        scanned["warnings"][0]["warning_code"], "acs_credential_on_encoder_out_of_sync",
        "{scanned}"
    );
    cloud.succeeded(&cloud.encode(&encoder, &credential));
    let scanned = cloud.succeeded(&cloud.scan(&encoder));
    assert_eq!(scanned["warnings"], json!([]), "{scanned}");
    assert_eq!(
        scanned["acs_credential_on_encoder"]["ends_at"]
            .as_str()
            .map(|t| t.starts_with("2024-12-06T12:00")),
        Some(true),
        "{scanned}"
    );

    front.remove();
    let error = cloud.failed(&cloud.scan(&encoder));
    assert_eq!(error["type"], "no_card_on_encoder", "{error}");
}
