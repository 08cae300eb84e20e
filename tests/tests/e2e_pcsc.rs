//! End to end on PC/SC: the seeds' encode and scan flows as real HTTP requests against the
//! `encoder-sim cloud` binary, the real `encoder-bridge run` process, and virtual cards
//! (`encoder-sim card`) on a private pcscd ([`Rig`]); both seeds' error tables.

use encoder_tests::daemon::{Setup, TOKEN, writes_in};
use encoder_tests::e2e::{Cloud, ENDS_AT, STARTS_AT, SYSTEM, expect_failure_logged};
use encoder_tests::{Rig, SimCard};
use serde_json::{Value, json};

/// The bridge waits this long for a card (the `no_card_on_encoder` rows).
const CARD_WAIT_SECS: f64 = 2.0;

/// The card number the bridge derives from UID 04A1B2C3 (the cloud gives none).
const CARD_NUMBER_A: &str = "77705923";

struct World {
    rig: Rig,
    cloud: Cloud,
    _setup: Setup,
    bridge: encoder_tests::daemon::Bridge,
    encoder: String,
}

/// A rig with one reader, the cloud simulator, and the bridge driving the reader; waits until
/// the cloud lists the bridge's encoder.
fn world() -> World {
    let rig = Rig::start(1);
    let cloud = Cloud::start();
    let setup = Setup::new(
        &cloud.ws_url(),
        &[Rig::reader_name(0)],
        CARD_WAIT_SECS,
        TOKEN,
    );
    let bridge = setup.spawn(&rig.env());
    let encoders = cloud.encoders(1);
    assert_eq!(encoders.len(), 1, "{encoders:?}");
    let encoder = &encoders[0];
    assert_eq!(encoder["acs_system_id"], SYSTEM, "{encoder}");
    assert_eq!(encoder["errors"], json!([]), "{encoder}");
    let encoder = encoder["acs_encoder_id"]
        .as_str()
        .expect("acs_encoder_id")
        .to_owned();
    World {
        rig,
        cloud,
        _setup: setup,
        bridge,
        encoder,
    }
}

impl World {
    fn card(&self, args: &[&str]) -> SimCard {
        self.rig.card(0, args)
    }
}

/// The seeds, start to end: create, list, encode, confirm, get, scan, out of sync, re-encode,
/// blank card, events.
#[test]
fn seed_flow_encode_scan_reencode_blank() {
    let w = world();
    let cloud = &w.cloud;
    let credential = cloud.seed_credential();
    let card = w.card(&["--type", "classic-1k", "--uid", "04A1B2C3"]);

    // Encode, confirm by polling.
    let attempt = cloud.encode(&w.encoder, &credential);
    let result = cloud.succeeded(&attempt);
    assert_eq!(result["acs_credential_id"], credential.as_str(), "{result}");
    assert_eq!(result["is_issued"], true, "{result}");
    assert_eq!(result["card_number"], CARD_NUMBER_A, "{result}");
    assert!(result["issued_at"].is_string(), "{result}");

    // The credential now carries the card's properties.
    let c = cloud.credential(&credential);
    assert_eq!(c["is_issued"], true, "{c}");
    assert_eq!(c["card_number"], CARD_NUMBER_A, "{c}");
    assert!(c["issued_at"].is_string(), "{c}");
    assert_eq!(c["starts_at"], STARTS_AT, "{c}");
    assert_eq!(c["ends_at"], ENDS_AT, "{c}");

    // Scan: in sync.
    let scanned = cloud.succeeded(&cloud.scan(&w.encoder));
    let on_encoder = &scanned["acs_credential_on_encoder"];
    assert_eq!(
        on_encoder["acs_credential_id"],
        credential.as_str(),
        "{scanned}"
    );
    assert_eq!(on_encoder["card_number"], CARD_NUMBER_A, "{scanned}");
    assert_eq!(on_encoder["is_issued"], true, "{scanned}");
    assert_same_time(&on_encoder["starts_at"], STARTS_AT);
    assert_same_time(&on_encoder["ends_at"], ENDS_AT);
    let on_seam = &scanned["acs_credential_on_seam"];
    assert_eq!(
        on_seam["acs_credential_id"],
        credential.as_str(),
        "{scanned}"
    );
    assert_eq!(on_seam["card_number"], CARD_NUMBER_A, "{scanned}");
    assert_eq!(on_seam["ends_at"], ENDS_AT, "{scanned}");
    assert_eq!(scanned["warnings"], json!([]), "{scanned}");

    // The server's ends_at changes: the card is out of sync, on ends_at only.
    let new_end = "2024-12-06T12:00:00.000Z";
    let updated = cloud.ok(
        "/acs/credentials/update",
        &json!({"acs_credential_id": credential, "ends_at": new_end}),
    );
    assert_eq!(updated["acs_credential"]["ends_at"], new_end, "{updated}");
    let scanned = cloud.succeeded(&cloud.scan(&w.encoder));
    let warnings = scanned["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{scanned}");
    assert_eq!(
        warnings[0]["warning_code"], "acs_credential_on_encoder_out_of_sync",
        "{scanned}"
    );
    assert_eq!(
        warnings[0]["warning_message"],
        "The following properties are out of sync between acs_credential_on_encoder and acs_credential_on_seam: ends_at",
        "{scanned}"
    );
    assert_same_time(&scanned["acs_credential_on_encoder"]["ends_at"], ENDS_AT);
    assert_eq!(scanned["acs_credential_on_seam"]["ends_at"], new_end);

    // Re-encode the same card: a reissue, and the card is in sync again.
    let result = cloud.succeeded(&cloud.encode(&w.encoder, &credential));
    assert_eq!(result["card_number"], CARD_NUMBER_A, "{result}");
    assert_same_time(&result["ends_at"], new_end);
    assert_eq!(
        cloud
            .events_for("acs_credential.reissued", &credential)
            .len(),
        1,
        "{:?}",
        cloud.events()
    );
    let scanned = cloud.succeeded(&cloud.scan(&w.encoder));
    assert_eq!(scanned["warnings"], json!([]), "{scanned}");
    assert_same_time(&scanned["acs_credential_on_encoder"]["ends_at"], new_end);

    // A blank card: nothing on it.
    drop(card);
    let _blank = w.card(&["--type", "classic-1k", "--uid", "0A0B0C0D"]);
    let scanned = cloud.succeeded(&cloud.scan(&w.encoder));
    assert_eq!(
        scanned["acs_credential_on_encoder"],
        Value::Null,
        "{scanned}"
    );
    assert_eq!(scanned["acs_credential_on_seam"], Value::Null, "{scanned}");
    assert_eq!(scanned["warnings"], json!([]), "{scanned}");

    // Events: the encoder appeared once, the credential was issued once and reissued once.
    let events = cloud.events();
    let added: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "acs_encoder.added")
        .collect();
    assert_eq!(added.len(), 1, "{events:?}");
    assert_eq!(added[0]["acs_encoder_id"], w.encoder.as_str(), "{events:?}");
    let issued = cloud.events_for("acs_credential.issued", &credential);
    assert_eq!(issued.len(), 1, "{events:?}");
    assert_eq!(issued[0]["acs_system_id"], SYSTEM, "{events:?}");
    assert_eq!(
        cloud
            .events_for("acs_credential.reissued", &credential)
            .len(),
        1,
        "{events:?}"
    );
    drop(w.bridge);
}

/// The seed flow on a `DESFire` EV2 card (docs/card-format.md §10), end to end through the real
/// daemon, pcscd and the virtual `DESFire` card: encode, scan in sync, out of sync after an
/// update, re-encode, and no card; the card's own log shows the APDUs each job cost.
#[test]
fn seed_flow_on_a_desfire_card() {
    let w = world();
    let cloud = &w.cloud;
    let credential = cloud.seed_credential();
    let log = w.rig.dir().join("desfire.apdu");
    let card = w.card(&[
        "--type",
        "desfire-ev2",
        "--uid",
        "04A1A2A3A4A5A6",
        "--apdu-log",
        log.to_str().expect("path"),
    ]);

    let result = cloud.succeeded(&cloud.encode(&w.encoder, &credential));
    assert_eq!(result["acs_credential_id"], credential.as_str(), "{result}");
    assert_eq!(result["is_issued"], true, "{result}");
    let card_number = result["card_number"]
        .as_str()
        .expect("card number")
        .to_owned();
    let after_encode = apdus_in(&log);

    let scanned = cloud.succeeded(&cloud.scan(&w.encoder));
    let on_encoder = &scanned["acs_credential_on_encoder"];
    assert_eq!(
        on_encoder["acs_credential_id"],
        credential.as_str(),
        "{scanned}"
    );
    assert_eq!(on_encoder["card_number"], card_number.as_str(), "{scanned}");
    assert_same_time(&on_encoder["ends_at"], ENDS_AT);
    assert_eq!(scanned["warnings"], json!([]), "{scanned}");
    let after_scan = apdus_in(&log);

    let new_end = "2024-12-06T12:00:00.000Z";
    cloud.ok(
        "/acs/credentials/update",
        &json!({"acs_credential_id": credential, "ends_at": new_end}),
    );
    let scanned = cloud.succeeded(&cloud.scan(&w.encoder));
    let warnings = scanned["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{scanned}");
    assert_eq!(
        warnings[0]["warning_code"], "acs_credential_on_encoder_out_of_sync",
        "{scanned}"
    );
    let before_reencode = apdus_in(&log);
    let result = cloud.succeeded(&cloud.encode(&w.encoder, &credential));
    assert_same_time(&result["ends_at"], new_end);
    let after_reencode = apdus_in(&log);
    let scanned = cloud.succeeded(&cloud.scan(&w.encoder));
    assert_eq!(scanned["warnings"], json!([]), "{scanned}");
    println!(
        "DESFire EV2 through pcscd, APDUs in the card's log: encode blank {}, scan {}, re-encode {}",
        after_encode,
        after_scan - after_encode,
        after_reencode - before_reencode
    );

    drop(card);
    let error = cloud.failed(&cloud.scan(&w.encoder));
    assert_eq!(error["type"], "no_card_on_encoder", "{error}");
    drop(w.bridge);
}

/// `DESFire` commands in an `--apdu-log` file (one `command -> answer` line each), not counting
/// the PC/SC Part 3 pseudo-APDUs (`FF …`: the hal's UID read, answered by a real reader
/// itself, never by the card).
fn apdus_in(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("->") && !l.starts_with("FF"))
        .count()
}

/// The encode table of the seed: `no_card_on_encoder`, `incompatible_card_format`
/// (Ultralight), `uncategorized_error` (a worn card: read-back mismatch). Nothing
/// of these is issued.
#[test]
fn seed_encode_error_table() {
    let w = world();
    let cloud = &w.cloud;
    let credential = cloud.seed_credential();

    // No card within the bridge's card wait.
    let error = cloud.failed(&cloud.encode(&w.encoder, &credential));
    assert_eq!(error["type"], "no_card_on_encoder", "{error}");

    // Cards of another format, untouched: an Ultralight, and a first-generation DESFire without
    // AES (a DESFire EV1-EV3 is encoded: seed_flow_on_a_desfire_card).
    for (kind, sub_code) in [
        ("ultralight", "not_mifare_classic"),
        ("desfire-ev0", "ev0_not_supported"),
    ] {
        let log = w.rig.dir().join(format!("{kind}.apdu"));
        let card = w.card(&["--type", kind, "--apdu-log", log.to_str().expect("path")]);
        let error = cloud.failed(&cloud.encode(&w.encoder, &credential));
        assert_eq!(error["type"], "incompatible_card_format", "{kind}: {error}");
        expect_failure_logged(&w.bridge, "incompatible_card_format", sub_code);
        assert_eq!(writes_in(&log), 0, "{kind} was written to");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("90 CA") && l.ends_with("91 00")),
            "{kind}: an application was created:\n{text}"
        );
        drop(card);
    }

    // A worn card acknowledges the writes but the read-back differs.
    let _worn = w.card(&["--type", "classic-1k", "--worn"]);
    let error = cloud.failed(&cloud.encode(&w.encoder, &credential));
    assert_eq!(error["type"], "uncategorized_error", "{error}");
    expect_failure_logged(&w.bridge, "uncategorized_error", "read_back_mismatch");

    let c = cloud.credential(&credential);
    assert_eq!(c["is_issued"], false, "{c}");
    assert!(
        cloud
            .events_for("acs_credential.issued", &credential)
            .is_empty()
    );
}

/// The scan table of the seed: `no_card_on_encoder`, and `uncategorized_error` for a card whose
/// data did not stick (a worn card after a failed encode: its directory fails its check).
#[test]
fn seed_scan_error_table() {
    let w = world();
    let cloud = &w.cloud;

    let error = cloud.failed(&cloud.scan(&w.encoder));
    assert_eq!(error["type"], "no_card_on_encoder", "{error}");

    let credential = cloud.seed_credential();
    let _worn = w.card(&["--type", "classic-1k", "--worn"]);
    let error = cloud.failed(&cloud.encode(&w.encoder, &credential));
    assert_eq!(error["type"], "uncategorized_error", "{error}");
    let error = cloud.failed(&cloud.scan(&w.encoder));
    assert_eq!(error["type"], "uncategorized_error", "{error}");
    expect_failure_logged(&w.bridge, "uncategorized_error", SCAN_SUB_CODE);
}

/// What a scan of the worn card reports (docs/card-format.md §5).
const SCAN_SUB_CODE: &str = "directory_corrupt";

/// A credential written to card A is not written to card B: the bridge refuses it before any
/// card write (`credential_cannot_be_reissued`), and card B stays as it was.
#[test]
fn credential_on_another_card_is_refused_before_any_write() {
    let w = world();
    let cloud = &w.cloud;
    let credential = cloud.seed_credential();
    let card_a = w.card(&["--type", "classic-1k", "--uid", "04A1B2C3"]);
    cloud.succeeded(&cloud.encode(&w.encoder, &credential));
    drop(card_a);

    let log = w.rig.dir().join("card-b.apdu");
    let _card_b = w.card(&[
        "--type",
        "classic-1k",
        "--uid",
        "DEADBEEF",
        "--apdu-log",
        log.to_str().expect("path"),
    ]);
    let error = cloud.failed(&cloud.encode(&w.encoder, &credential));
    assert_eq!(error["type"], "credential_cannot_be_reissued", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("already on another card")),
        "{error}"
    );
    expect_failure_logged(
        &w.bridge,
        "credential_cannot_be_reissued",
        "credential_on_another_card",
    );
    assert_eq!(writes_in(&log), 0, "card B was written to");

    // Card B is still blank; the credential still belongs to card A.
    let scanned = cloud.succeeded(&cloud.scan(&w.encoder));
    assert_eq!(
        scanned["acs_credential_on_encoder"],
        Value::Null,
        "{scanned}"
    );
    assert_eq!(writes_in(&log), 0, "card B was written to");
    let c = cloud.credential(&credential);
    assert_eq!(c["card_number"], CARD_NUMBER_A, "{c}");
    assert!(
        cloud
            .events_for("acs_credential.reissued", &credential)
            .is_empty()
    );
}

/// The card holds times as whole seconds: compares RFC 3339 instants, not their spelling.
fn assert_same_time(got: &Value, want: &str) {
    let strip = |s: &str| s.trim_end_matches('Z').trim_end_matches(".000").to_owned();
    let got_text = got.as_str().unwrap_or_else(|| panic!("not a time: {got}"));
    assert_eq!(strip(got_text), strip(want), "time {got} is not {want}");
}
