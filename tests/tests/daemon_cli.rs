//! The operator commands that share the daemon's code paths: `encode`, `scan`, `doctor`,
//! against the rig and the cloud double.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use encoder_tests::cloud::CloudDouble;
use encoder_tests::daemon::{Setup, TOKEN};
use encoder_tests::{Rig, STARTUP, binary};
use serde_json::Value;

fn bridge(rig: &Rig, args: &[&str]) -> (Option<i32>, Value, String) {
    let (key, value) = rig.env();
    let out = Command::new(binary("encoder-bridge"))
        .args(args)
        .env(key, value)
        .output()
        .expect("run encoder-bridge");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn encode_and_scan_from_the_command_line() {
    let rig = Rig::start(2);
    let cloud = CloudDouble::start(TOKEN);
    let setup = Setup::new(&cloud.url(), &[Rig::reader_name(0)], 5.0, TOKEN);
    let _card = rig.card(0, &["--type", "classic-1k", "--uid", "04A1B2C3"]);
    let credential = setup.dir().join("cred.json");
    std::fs::write(
        &credential,
        r#"{"acs_credential_id":"66666666-6666-6666-6666-666666666666","card_number":null,"starts_at":null,"ends_at":"2030-01-01T00:00:00Z","issue_counter":2,"access_data":""}"#,
    )
    .expect("credential");
    let config = setup.config().display().to_string();
    let reader = Rig::reader_name(0);
    let (code, json, err) = bridge(
        &rig,
        &[
            "encode",
            "--credential",
            &credential.display().to_string(),
            "--config",
            &config,
            "--reader",
            &reader,
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{json} {err}");
    assert_eq!(json["status"], "success");
    // card_number null: the decimal of the UID's last four bytes.
    assert_eq!(json["result"]["card_number"], "77705923");
    let (code, json, err) = bridge(&rig, &["scan", "--config", &config, "--json"]);
    assert_eq!(code, Some(0), "{json} {err}");
    let on_card = &json["result"]["acs_credential_on_encoder"];
    assert_eq!(on_card["issue_counter"], 2);
    assert_eq!(on_card["ends_at"], "2030-01-01T00:00:00.000Z");
    // No card within the wait: exit 1 with the cloud's error type.
    let (code, json, _) = bridge(
        &rig,
        &[
            "scan",
            "--config",
            &config,
            "--reader",
            &Rig::reader_name(1),
            "--wait",
            "0.5",
            "--json",
        ],
    );
    assert_eq!(code, Some(1));
    assert_eq!(json["error"]["type"], "no_card_on_encoder");
}

#[test]
fn doctor_passes_then_names_each_failure_with_its_fix() {
    let rig = Rig::start(2);
    let cloud = CloudDouble::start(TOKEN);
    let setup = Setup::new(&cloud.url(), &[Rig::reader_name(0)], 5.0, TOKEN);
    let config = setup.config().display().to_string();
    // The doctor's probe gets a welcome from the double on another thread.
    let accept = std::thread::spawn(move || {
        let mut conn = cloud.accept(STARTUP);
        let hello = conn.handshake(STARTUP);
        assert_eq!(hello["probe"], true);
        assert_eq!(hello["encoders"], serde_json::json!([]));
        std::thread::sleep(Duration::from_millis(200));
        cloud
    });
    let (key, value) = rig.env();
    let child = Command::new(binary("encoder-bridge"))
        .args(["doctor", "--json", "--config", &config])
        .env(key, value)
        .output();
    let out = child.expect("doctor");
    let cloud = accept.join().expect("double");
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["ok"], true, "{json:#}");
    let names: Vec<&str> = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for name in [
        "config",
        "token",
        "site_keys",
        "state",
        "pcscd",
        "cloud",
        "clock",
    ] {
        assert!(names.contains(&name), "{name} missing: {json:#}");
    }
    drop(cloud);

    // A world-readable token and an unreachable cloud: each failure with its fix.
    let token = setup.dir().join("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, json, _) = bridge(&rig, &["doctor", "--json", "--config", &config]);
    assert_eq!(code, Some(1));
    let token_check = json["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "token"))
        .expect("token check");
    assert_eq!(token_check["ok"], false);
    assert!(
        token_check["fix"]
            .as_str()
            .unwrap_or_default()
            .starts_with("chmod o-rwx"),
        "{token_check}"
    );
}

/// The APDUs a job costs, counted where they happen: in the virtual card's own log, through
/// `encoder-bridge encode` / `scan`, pcscd and vpcd. The UID is read once per job (by the hal,
/// when it opens the card); the protocol's jobs never ask again. The budget is the protocol's
/// own count (`tests/benches/apdu_budget.rs`) plus that one `FF CA`.
#[test]
fn a_job_costs_its_budget_at_the_card_with_one_uid_read() {
    const BUDGET: [(&str, usize); 3] = [("encode blank", 32), ("re-encode", 19), ("scan", 11)];
    let rig = Rig::start(1);
    let cloud = CloudDouble::start(TOKEN);
    let setup = Setup::new(&cloud.url(), &[Rig::reader_name(0)], 5.0, TOKEN);
    let apdu_log = setup.dir().join("apdu.log");
    let _card = rig.card(
        0,
        &[
            "--type",
            "classic-1k",
            "--uid",
            "04A1B2C3",
            "--apdu-log",
            &apdu_log.display().to_string(),
        ],
    );
    // The realistic credentials of tests/src/jobs.rs (`realistic(8)`, `realistic_next(8)`).
    let first = setup.dir().join("first.json");
    std::fs::write(
        &first,
        r#"{"acs_credential_id":"9b2f6c1e-7a4d-4f0b-8c35-2e91d7a40f6b","card_number":"4009613812","starts_at":"2024-12-01T15:00:00Z","ends_at":"2024-12-08T15:00:00Z","issue_counter":1,"access_data":"ESIzRFVmd4g="}"#,
    )
    .expect("credential");
    let next = setup.dir().join("next.json");
    std::fs::write(
        &next,
        r#"{"acs_credential_id":"0e8a5d3c-14b7-4c62-9f0e-6a3b2c1d9e87","card_number":"4009613813","starts_at":"2024-12-08T15:00:00Z","ends_at":"2024-12-15T15:00:00Z","issue_counter":2,"access_data":"oKGio6Slpqc="}"#,
    )
    .expect("credential");
    let config = setup.config().display().to_string();
    let logged = || -> Vec<String> {
        std::fs::read_to_string(&apdu_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let mut seen = logged().len();
    let mut counts = Vec::new();
    for (args, name) in [
        (
            vec!["encode", "--credential", first.to_str().expect("path")],
            "encode blank",
        ),
        (
            vec!["encode", "--credential", next.to_str().expect("path")],
            "re-encode",
        ),
        (vec!["scan"], "scan"),
    ] {
        let mut args = args;
        args.extend(["--config", &config, "--json"]);
        let (code, json, err) = bridge(&rig, &args);
        assert_eq!(code, Some(0), "{name}: {json} {err}");
        let lines = logged();
        let job = lines.get(seen..).unwrap_or_default();
        seen = lines.len();
        let uid_reads = job.iter().filter(|l| l.starts_with("FF CA 00 00")).count();
        assert_eq!(uid_reads, 1, "{name}: FF CA once per job: {job:?}");
        counts.push((name, job.len()));
    }
    let expected: Vec<(&str, usize)> = BUDGET.to_vec();
    assert_eq!(counts, expected, "APDUs at the card");
}
