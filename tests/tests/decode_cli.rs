//! `encoder-bridge decode`: the whole-card images of tests/vectors/card-format.json, saved as
//! `.mfd` files, decoded by the binary with a configuration holding site-a's key files; its
//! verdicts must be the vectors'.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use encoder_tests::{binary, workspace};
use serde_json::Value;

fn vectors() -> Value {
    let path = workspace().join("tests/vectors/card-format.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).expect("json")
}

/// A configuration with every master key of `site` (from the vectors file).
fn config(dir: &Path, vectors: &Value, site: &str) -> std::path::PathBuf {
    let site = vectors["sites"]
        .as_array()
        .expect("sites")
        .iter()
        .find(|s| s["name"] == site)
        .expect("site");
    let mut text = String::from(
        "[cloud]\nurl = \"wss://cloud.invalid/bridge\"\ntoken_file = \"token\"\n\n[site_keys]\n",
    );
    let _ = writeln!(text, "current = {}", site["current_version"]);
    for key in site["master_keys"].as_array().expect("keys") {
        let version = key["version"].as_u64().expect("version");
        let file = dir.join(format!("site-key-v{version}"));
        std::fs::write(&file, key["key"].as_str().expect("key")).expect("key file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let _ = write!(
            text,
            "
[[site_keys.key]]
version = {version}
file = \"site-key-v{version}\"
"
        );
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn decode(config: &Path, image: &Path, extra: &[&str]) -> Output {
    Command::new(binary("encoder-bridge"))
        .arg("decode")
        .arg("--config")
        .arg(config)
        .arg(image)
        .args(extra)
        .output()
        .expect("run encoder-bridge decode")
}

#[test]
fn decode_gives_every_image_vector_its_verdict() {
    let v = vectors();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut seen = 0;
    for image in v["images"].as_array().expect("images") {
        let name = image["name"].as_str().expect("name");
        let cfg = config(dir.path(), &v, image["decode_with"].as_str().expect("site"));
        let file = dir.path().join(format!("{name}.mfd"));
        let bytes =
            encoder_protocol::hex::decode(image["image"].as_str().expect("hex")).expect("hex");
        std::fs::write(&file, bytes).expect("image");
        let out = decode(&cfg, &file, &["--json"]);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        let expect = &image["expect"];
        assert_eq!(report["state"], expect["state"], "{name}: {report}");
        assert_eq!(report["card"]["uid"], image["uid"], "{name}");
        if expect["state"] == "ours" {
            assert_eq!(out.status.code(), Some(0), "{name}");
            assert_eq!(report["format_version"], expect["format_version"], "{name}");
            assert_eq!(report["slot"], expect["slot"], "{name}");
            assert_eq!(report["sequence"], expect["sequence"], "{name}");
            assert_eq!(
                report["credential"]["acs_credential_id"], expect["credential"]["credential_id"],
                "{name}"
            );
            assert_eq!(
                report["credential"]["card_number"], expect["credential"]["card_number"],
                "{name}"
            );
        } else {
            assert_eq!(out.status.code(), Some(2), "{name}: {report}");
            assert!(report["credential"].is_null(), "{name}");
        }
        if expect["state"] == "damaged" {
            let failed = report["failed_checks"].as_array().expect("failed");
            assert!(failed.iter().any(|c| c == "slot_a"), "{name}: {report}");
            assert!(failed.iter().any(|c| c == "slot_b"), "{name}: {report}");
        }
        seen += 1;
    }
    assert!(seen >= 10, "{seen}");
}

#[test]
fn decode_text_output_and_errors() {
    let v = vectors();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &v, "site-a");
    let image = v["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["name"] == "1k_newest_slot_damaged")
        .expect("vector");
    let file = dir.path().join("card.mfd");
    let bytes = encoder_protocol::hex::decode(image["image"].as_str().expect("hex")).expect("hex");
    std::fs::write(&file, &bytes).expect("image");
    let out = decode(&cfg, &file, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("state: ours"), "{text}");
    assert!(text.contains("format_version: 2"), "{text}");
    assert!(text.contains("FAIL slot_b"), "{text}");
    assert!(text.contains("mac_mismatch"), "{text}");

    // Another UID than the card's: its keys are not this site's keys for that UID.
    let out = decode(&cfg, &file, &["--uid", "01020304", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (out.status.code(), report["state"].as_str()),
        (Some(2), Some("foreign"))
    );
    assert!(
        report["failed_checks"]
            .as_array()
            .is_some_and(|f| f.iter().any(|c| c == "site_keys")),
        "{report}"
    );

    // Not a card image: a clear error, exit 1.
    std::fs::write(&file, &bytes[..1000]).expect("short");
    let out = decode(&cfg, &file, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("320, 1024 or 4096"));
    let out = decode(&cfg, &file, &["--uid", "xyz"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not hex"));
}
