//! `encoder-bridge readers` against the virtual rig.

use std::process::Command;

use encoder_tests::{Rig, binary};

#[test]
fn readers_json_shows_the_virtual_card_with_uid_and_type() {
    let rig = Rig::start(2);
    let _card = rig.card(0, &["--type", "classic-4k", "--uid", "CAFEBABE"]);
    let (key, value) = rig.env();
    let out = Command::new(binary("encoder-bridge"))
        .args(["readers", "--json"])
        .env(key, value)
        .output()
        .expect("run encoder-bridge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let readers = json["readers"].as_array().expect("readers");
    assert_eq!(readers.len(), 2);
    assert_eq!(readers[0]["name"], Rig::reader_name(0));
    assert_eq!(readers[0]["state"], "card_present");
    // "Virtual PCD" is no family of the dialect table.
    assert_eq!(readers[0]["family"], "baseline");
    assert_eq!(readers[0]["card"]["uid"], "CAFEBABE");
    assert_eq!(readers[0]["card"]["type"], "classic-4k");
    assert_eq!(readers[1]["state"], "empty");
    assert!(readers[1]["card"].is_null());
}

#[test]
fn readers_without_pcscd_says_what_to_do() {
    let out = Command::new(binary("encoder-bridge"))
        .args(["readers", "--json"])
        .env("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm")
        .output()
        .expect("run encoder-bridge");
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["error"]["kind"], "no_service");
    assert!(
        json["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("pcscd")
    );
}
