//! Lifecycle tests on plain times: no sockets, no clocks.

use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::*;
use crate::cloud::model::{ENTRANCES, NewCredential};

const T0: Millis = 1_733_065_200_000; // 2024-12-01T15:00:00Z

struct Bridge {
    id: &'static str,
    rx: UnboundedReceiver<String>,
}

impl Bridge {
    fn messages(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(text) = self.rx.try_recv() {
            out.push(serde_json::from_str(&text).unwrap());
        }
        out
    }

    fn types(&mut self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|m| m["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn encoder(id: &str) -> EncoderInfo {
    serde_json::from_value(json!({"encoder_id": id, "display_name": "Front Desk"})).unwrap()
}

fn connect(core: &mut Core, now: Millis, id: &'static str, conn: u64, encoders: &[&str]) -> Bridge {
    let (tx, rx) = unbounded_channel();
    core.hello(
        now,
        id,
        conn,
        tx,
        encoders.iter().map(|e| encoder(e)).collect(),
    );
    Bridge { id, rx }
}

fn setup() -> (Core, String) {
    let mut core = Core::new(State::seeded(T0), Timing::default(), T0);
    let user = core
        .state
        .create_user(T0, SYSTEM_ID, Some("Jane Doe".into()), None, None)
        .unwrap();
    let cred = core
        .state
        .create_credential(
            T0,
            NewCredential {
                acs_user_id: user["acs_user"]["acs_user_id"].as_str().unwrap().into(),
                access_method: "card".into(),
                allowed_acs_entrance_ids: vec![ENTRANCES[0].0.into()],
                starts_at: Some("2024-12-01T15:00:00.000Z".into()),
                ends_at: Some("2024-12-04T12:00:00.000Z".into()),
                display_name: None,
            },
        )
        .unwrap();
    let id = cred["acs_credential"]["acs_credential_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (core, id)
}

fn result(attempt: &str, uid: &str, number: &str) -> ResultMsg {
    serde_json::from_value(json!({
        "type": "result", "action_attempt_id": attempt, "action_type": "ENCODE_CREDENTIAL",
        "status": "success", "result": {"card_number": number, "card": {"uid": uid}},
        "error": null
    }))
    .unwrap()
}

fn attempt_id(v: &Value) -> String {
    v["action_attempt"]["action_attempt_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn hello_welcomes_and_adds_encoders() {
    let (mut core, _) = setup();
    let mut a = connect(&mut core, T0, "bridge-a", 1, &["enc-1"]);
    assert_eq!(a.types(), ["welcome"]);
    let events = core.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "acs_encoder.added");
    let list = core.list_encoders(&[], &[]);
    assert_eq!(list["acs_encoders"][0]["acs_encoder_id"], "enc-1");
    assert_eq!(list["acs_encoders"][0]["errors"], json!([]));
    // Reconnecting without the encoder removes it.
    core.disconnect(T0 + 1, a.id, 1);
    let _b = connect(&mut core, T0 + 2, "bridge-a", 2, &[]);
    let list = core.list_encoders(&[], &[]);
    assert_eq!(
        list["acs_encoders"][0]["errors"][0]["error_code"],
        "acs_encoder_removed"
    );
    assert_eq!(core.take_events()[0]["event_type"], "acs_encoder.removed");
}

#[test]
fn encode_claim_result_issues_once() {
    let (mut core, cred) = setup();
    let mut a = connect(&mut core, T0, "bridge-a", 1, &["enc-1"]);
    a.messages();
    let made = core.encode_credential(T0 + 10, "enc-1", &cred).unwrap();
    assert_eq!(made["action_attempt"]["status"], "pending");
    let id = attempt_id(&made);
    let offer = a.messages().pop().unwrap();
    assert_eq!(offer["type"], "attempt_available");
    assert_eq!(offer["credential"]["acs_credential_id"], cred.as_str());
    assert_eq!(offer["credential"]["issue_counter"], 1);
    assert_eq!(offer["expires_at"], format_time(T0 + 10 + 120_000));

    core.claim(T0 + 20, "bridge-a", &id);
    let grant = a.messages().pop().unwrap();
    assert_eq!(grant["type"], "claim_granted");
    assert_eq!(grant["lease_expires_at"], format_time(T0 + 20 + LEASE_MS));
    assert_eq!(grant["deadline"], offer["expires_at"]);
    // A repeated claim by the holder is granted again.
    core.claim(T0 + 21, "bridge-a", &id);
    assert_eq!(a.types(), ["claim_granted"]);

    core.result(T0 + 30, "bridge-a", &result(&id, "04a1b2c3", "4009613812"))
        .unwrap();
    assert_eq!(a.types(), ["result_ack"]);
    let got = core.get_attempt(&id).unwrap();
    assert_eq!(got["action_attempt"]["status"], "success");
    assert_eq!(got["action_attempt"]["result"]["is_issued"], true);
    assert_eq!(got["action_attempt"]["result"]["card_number"], "4009613812");
    let c = core.state.credential(&cred).unwrap();
    assert!(c.is_issued);
    assert_eq!(c.card_uid.as_deref(), Some("04A1B2C3"));

    // The same result again: acknowledged, not applied again.
    core.result(T0 + 40, "bridge-a", &result(&id, "04a1b2c3", "4009613812"))
        .unwrap();
    assert_eq!(a.types(), ["result_ack"]);
    let issued: Vec<_> = core
        .state
        .events
        .iter()
        .filter(|e| e["event_type"] == "acs_credential.issued")
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(core.state.credential(&cred).unwrap().issue_counter, 1);
}

#[test]
fn issued_credential_is_not_written_to_another_card() {
    let (mut core, cred) = setup();
    let mut a = connect(&mut core, T0, "bridge-a", 1, &["enc-1"]);
    let first = attempt_id(&core.encode_credential(T0, "enc-1", &cred).unwrap());
    core.claim(T0, "bridge-a", &first);
    core.result(T0, "bridge-a", &result(&first, "04A1B2C3", "1"))
        .unwrap();

    let same = attempt_id(&core.encode_credential(T0 + 1, "enc-1", &cred).unwrap());
    core.claim(T0 + 1, "bridge-a", &same);
    core.result(T0 + 2, "bridge-a", &result(&same, "04A1B2C3", "1"))
        .unwrap();
    assert_eq!(
        core.get_attempt(&same).unwrap()["action_attempt"]["status"],
        "success"
    );
    assert!(
        core.state
            .events
            .iter()
            .any(|e| e["event_type"] == "acs_credential.reissued")
    );

    let other = attempt_id(&core.encode_credential(T0 + 3, "enc-1", &cred).unwrap());
    core.claim(T0 + 3, "bridge-a", &other);
    core.result(T0 + 4, "bridge-a", &result(&other, "DEADBEEF", "2"))
        .unwrap();
    let got = core.get_attempt(&other).unwrap();
    assert_eq!(got["action_attempt"]["status"], "error");
    assert_eq!(
        got["action_attempt"]["error"]["type"],
        "credential_cannot_be_reissued"
    );
    assert_eq!(
        core.state.credential(&cred).unwrap().card_number.as_deref(),
        Some("1")
    );
    a.messages();
}

#[test]
fn second_bridge_is_refused() {
    let (mut core, cred) = setup();
    let mut a = connect(&mut core, T0, "bridge-a", 1, &["enc-1"]);
    let mut c = connect(&mut core, T0, "bridge-c", 3, &["enc-other"]);
    let id = attempt_id(&core.encode_credential(T0, "enc-1", &cred).unwrap());
    core.claim(T0 + 1, "bridge-a", &id);
    assert_eq!(a.types().last().unwrap(), "claim_granted");
    // Another bridge that reports the same encoder: the holder keeps it.
    let mut b = connect(&mut core, T0 + 2, "bridge-b", 2, &["enc-1"]);
    b.messages();
    core.claim(T0 + 3, "bridge-b", &id);
    let refused = b.messages().pop().unwrap();
    assert_eq!(refused["type"], "claim_refused");
    assert_eq!(refused["reason"], "already_claimed");
    c.messages();
    core.claim(T0 + 3, "bridge-c", &id);
    assert_eq!(c.messages().pop().unwrap()["reason"], "not_your_encoder");
    core.claim(T0 + 3, "bridge-c", "nope");
    assert_eq!(c.messages().pop().unwrap()["reason"], "unknown_attempt");
    // A result from a bridge that does not hold it is a protocol error.
    assert!(
        core.result(T0 + 4, "bridge-b", &result(&id, "01020304", "1"))
            .is_err()
    );
}

#[test]
fn lease_lapses_and_attempt_is_offered_again() {
    let (mut core, cred) = setup();
    let mut a = connect(&mut core, T0, "bridge-a", 1, &["enc-1"]);
    let id = attempt_id(&core.encode_credential(T0, "enc-1", &cred).unwrap());
    core.claim(T0, "bridge-a", &id);
    core.renew(T0 + 10_000, "bridge-a", &id);
    let renewed = a.messages().pop().unwrap();
    assert_eq!(renewed["type"], "lease_renewed");
    assert_eq!(
        renewed["lease_expires_at"],
        format_time(T0 + 10_000 + LEASE_MS)
    );
    assert_eq!(core.tick(T0 + 20_000), Some(T0 + 10_000 + LEASE_MS));
    core.tick(T0 + 10_000 + LEASE_MS);
    assert_eq!(a.types(), ["attempt_available"]);
    assert!(core.state.attempt(&id).unwrap().claim.is_none());
}

#[test]
fn pending_attempt_expires_and_late_claim_is_refused() {
    let (mut core, _) = setup();
    let mut a = connect(&mut core, T0, "bridge-a", 1, &["enc-1"]);
    let id = attempt_id(&core.scan_credential(T0, "enc-1").unwrap());
    assert_eq!(core.tick(T0 + 1), Some(T0 + 120_000));
    core.tick(T0 + 120_000);
    let got = core.get_attempt(&id).unwrap();
    assert_eq!(
        got["action_attempt"]["error"]["type"],
        "action_attempt_expired"
    );
    let msgs = a.types();
    assert_eq!(msgs.last().unwrap(), "attempt_cancelled");
    core.claim(T0 + 120_001, "bridge-a", &id);
    assert_eq!(a.messages().pop().unwrap()["reason"], "expired");
}

#[test]
fn no_bridge_grace_expires_early() {
    let (mut core, _) = setup();
    let a = connect(&mut core, T0, "bridge-a", 1, &["enc-1"]);
    core.disconnect(T0 + 5, a.id, 1);
    let id = attempt_id(&core.scan_credential(T0 + 10, "enc-1").unwrap());
    assert_eq!(core.tick(T0 + 11), Some(T0 + 10 + 30_000));
    core.tick(T0 + 10 + 30_000);
    let got = core.get_attempt(&id).unwrap();
    assert_eq!(got["action_attempt"]["status"], "error");
    assert_eq!(
        got["action_attempt"]["error"]["type"],
        "action_attempt_expired"
    );
}

#[test]
fn reconnect_offers_pending_attempts_and_replaced_connection_is_dropped() {
    let (mut core, cred) = setup();
    let a = connect(&mut core, T0, "bridge-a", 1, &["enc-1"]);
    core.disconnect(T0, a.id, 1);
    let id = attempt_id(&core.encode_credential(T0 + 1, "enc-1", &cred).unwrap());
    let mut a2 = connect(&mut core, T0 + 2, "bridge-a", 2, &["enc-1"]);
    let msgs = a2.messages();
    assert_eq!(msgs[0]["type"], "welcome");
    assert_eq!(msgs[1]["type"], "attempt_available");
    assert_eq!(msgs[1]["action_attempt_id"], id.as_str());
    // A third connection of the same bridge replaces the second: its channel closes.
    let _a3 = connect(&mut core, T0 + 3, "bridge-a", 3, &["enc-1"]);
    assert!(matches!(
        a2.rx.try_recv(),
        Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
    ));
    // The old connection's disconnect does not unregister the new one.
    core.disconnect(T0 + 4, "bridge-a", 2);
    assert!(core.is_connected("bridge-a"));
}

#[test]
fn scan_warnings() {
    let (mut core, cred) = setup();
    let on_card = |id: &str, ends: &str| {
        json!({"acs_credential_on_encoder": {
            "acs_credential_id": id, "card_number": null, "is_issued": true,
            "starts_at": "2024-12-01T15:00:00Z", "ends_at": ends}})
    };
    let view = core.scan_view(&on_card(&cred, "2024-12-04T12:00:00.000Z"));
    assert_eq!(view["warnings"], json!([]));
    assert_eq!(
        view["acs_credential_on_seam"]["acs_credential_id"],
        cred.as_str()
    );
    let view = core.scan_view(&on_card(&cred, "2024-10-30T19:00:00.000Z"));
    assert_eq!(
        view["warnings"][0]["warning_code"],
        "acs_credential_on_encoder_out_of_sync"
    );
    assert!(
        view["warnings"][0]["warning_message"]
            .as_str()
            .unwrap()
            .ends_with(
                "out of sync between acs_credential_on_encoder and acs_credential_on_seam: ends_at"
            )
    );
    let view = core.scan_view(&on_card("99999999-9999-9999-9999-999999999999", "x"));
    assert_eq!(
        view["warnings"][0]["warning_code"],
        "acs_credential_on_seam_not_found"
    );
    assert_eq!(view["acs_credential_on_seam"], Value::Null);
    let view = core.scan_view(&json!({"acs_credential_on_encoder": null}));
    assert_eq!(
        view,
        json!({"acs_credential_on_encoder": null, "acs_credential_on_seam": null, "warnings": []})
    );
    let _ = core.state.update_credential(T0, &cred, None, None);
}

#[test]
fn unknown_attempt_result_is_acknowledged() {
    let (mut core, _) = setup();
    let mut a = connect(&mut core, T0, "bridge-a", 1, &["enc-1"]);
    a.messages();
    core.result(T0, "bridge-a", &result("gone", "01", "1"))
        .unwrap();
    assert_eq!(a.types(), ["result_ack"]);
}

/// The sandbox routes script the next encode or scan, which then finishes without a bridge.
#[test]
fn simulate_routes_script_the_next_attempt() {
    use super::sandbox::{EncodeWillFail, EncodeWillSucceed, ScanWillSucceed};
    let (mut core, cred) = setup();
    let mut bridge = connect(&mut core, T0, "b1", 1, &["enc-1"]);
    bridge.messages();
    let body = |v: Value| v;
    let fail: EncodeWillFail = serde_json::from_value(body(
        json!({"acs_encoder_id": "enc-1", "error_code": "uncategorized_error"}),
    ))
    .unwrap();
    core.simulate_encode_failure(&fail).unwrap();
    let failed = core.encode_credential(T0 + 1, "enc-1", &cred).unwrap();
    assert_eq!(failed["action_attempt"]["status"], "error");
    assert_eq!(
        failed["action_attempt"]["error"]["type"],
        "uncategorized_error"
    );
    assert!(
        bridge.messages().is_empty(),
        "a scripted attempt is not offered"
    );

    let ok: EncodeWillSucceed = serde_json::from_value(json!({"acs_encoder_id": "enc-1"})).unwrap();
    core.simulate_encode_success(&ok).unwrap();
    let issued = core.encode_credential(T0 + 2, "enc-1", &cred).unwrap();
    assert_eq!(issued["action_attempt"]["status"], "success");
    let credential = core.state.credential(&cred).unwrap();
    assert!(credential.is_issued);
    assert_eq!(credential.issued_at, Some(T0 + 2));
    assert_eq!(credential.card_number.as_ref().map(String::len), Some(10));

    let scan: ScanWillSucceed = serde_json::from_value(
        json!({"acs_encoder_id": "enc-1", "scenario": "credential_on_encoder_needs_update"}),
    )
    .unwrap();
    core.simulate_scan_success(T0 + 3, &scan).unwrap();
    let scanned = core.scan_credential(T0 + 4, "enc-1").unwrap();
    let result = &scanned["action_attempt"]["result"];
    assert_eq!(
        result["acs_credential_on_seam"]["acs_credential_id"],
        cred.as_str()
    );
    assert_eq!(
        result["warnings"][0]["warning_code"],
        "acs_credential_on_encoder_out_of_sync"
    );
    assert_eq!(
        result["acs_credential_on_encoder"]["created_at"],
        format_time(T0 + 2)
    );
    // Used up: the next scan goes to the bridge.
    let pending = core.scan_credential(T0 + 5, "enc-1").unwrap();
    assert_eq!(pending["action_attempt"]["status"], "pending");
    assert_eq!(bridge.types(), ["attempt_available"]);

    // Bad input: unknown encoder, unknown field, a code Seam does not list.
    let unknown: EncodeWillSucceed =
        serde_json::from_value(json!({"acs_encoder_id": "nope"})).unwrap();
    assert_eq!(
        core.simulate_encode_success(&unknown).unwrap_err().status,
        404
    );
    assert!(
        serde_json::from_value::<EncodeWillSucceed>(json!({"acs_encoder_id": "enc-1", "x": 1}))
            .is_err()
    );
    let bad: EncodeWillFail =
        serde_json::from_value(json!({"acs_encoder_id": "enc-1", "error_code": "on_fire"}))
            .unwrap();
    assert_eq!(
        core.simulate_encode_failure(&bad).unwrap_err().kind,
        "invalid_input"
    );
}

/// The window on plain times: finished attempts and events past it are gone, those inside
/// and every pending attempt are still found by id, and the indexes stay right after a prune.
#[test]
fn finished_attempts_and_events_leave_by_the_window() {
    let (mut core, cred) = setup();
    core.timing.retain = Retain {
        keep_ms: 60_000,
        keep_count: 3,
    };
    let mut a = connect(&mut core, T0, "bridge-a", 1, &["enc-1"]);
    let mut finished = Vec::new();
    for n in 0..6 {
        let at = T0 + 10 + n;
        let id = attempt_id(&core.encode_credential(at, "enc-1", &cred).unwrap());
        core.claim(at, "bridge-a", &id);
        core.result(at, "bridge-a", &result(&id, "04a1b2c3", "4009613812"))
            .unwrap();
        finished.push(id);
    }
    let pending = attempt_id(&core.scan_credential(T0 + 20, "enc-1").unwrap());
    a.messages();
    // By count (3 kept of 6): applied when overrun by a margin, or on the periodic pass
    // (forced here).
    core.next_prune = T0;
    core.tick(T0 + 30);
    for (n, id) in finished.iter().enumerate() {
        assert_eq!(core.get_attempt(id).is_ok(), n >= 3, "attempt {n}");
    }
    assert!(core.get_attempt(&pending).is_ok(), "pending: always kept");
    assert_eq!(core.state.events.len(), 3);
    let kept_event = core.state.events[0]["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(core.state.get_event(&kept_event).is_ok(), "reindexed");
    // A result repeated for a kept attempt is still recognised (acknowledged, not applied
    // twice); one for a forgotten attempt is acknowledged as unknown.
    let issued = core.state.credential(&cred).unwrap().issue_counter;
    core.result(
        T0 + 31,
        "bridge-a",
        &result(&finished[5], "04a1b2c3", "4009613812"),
    )
    .unwrap();
    assert_eq!(core.state.credential(&cred).unwrap().issue_counter, issued);
    assert_eq!(a.types(), ["result_ack"]);
    // By time: a minute after they finished, the rest go; the pending scan stays.
    core.next_prune = T0;
    core.tick(T0 + 10 + 5 + 60_001);
    assert!(finished.iter().all(|id| core.get_attempt(id).is_err()));
    assert_eq!(core.state.events.len(), 0);
    assert!(core.get_attempt(&pending).is_ok());
    // It expires by its deadline, and leaves a minute later.
    core.tick(T0 + 20 + 120_000);
    assert_eq!(
        core.get_attempt(&pending).unwrap()["action_attempt"]["status"],
        "error"
    );
    core.next_prune = T0;
    core.tick(T0 + 20 + 120_000 + 60_001);
    assert!(core.get_attempt(&pending).is_err());
    // New attempts after a prune are found (positions were rebuilt).
    let next = attempt_id(&core.scan_credential(T0 + 300_000, "enc-1").unwrap());
    assert_eq!(
        core.get_attempt(&next).unwrap()["action_attempt"]["status"],
        "pending"
    );
}
