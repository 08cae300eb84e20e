//! The daemon end to end: the real `encoder-bridge run` binary, spawned, against a private
//! pcscd with virtual cards and a scripted cloud double on 127.0.0.1 (port 0).
//!
//! Each test plays the cloud message by message (docs/cloud-protocol.md) and checks what the
//! bridge answers and what reached the card (the virtual card's APDU log).

use std::time::{Duration, SystemTime};

use encoder_tests::cloud::{CloudDouble, Conn, Seen};
use encoder_tests::daemon::{
    Bridge, Setup, TOKEN, ack, attempt_id, encode_offer, encoder_id, grant, grant_with_lease,
    scan_offer, writes_in,
};
use encoder_tests::{Rig, STARTUP};
use serde_json::{Value, json};

const CREDENTIAL: &str = "66666666-6666-6666-6666-666666666666";
const SHORT: Duration = Duration::from_secs(20);

struct World {
    rig: Rig,
    cloud: CloudDouble,
    setup: Setup,
    bridge: Bridge,
    conn: Conn,
    hello: Value,
}

/// A rig with `readers` readers, the bridge driving the first `driven` of them, connected and
/// welcomed.
fn world(readers: usize, driven: usize, card_wait: f64) -> World {
    let rig = Rig::start(readers);
    let cloud = CloudDouble::start(TOKEN);
    let names: Vec<String> = (0..driven).map(Rig::reader_name).collect();
    let setup = Setup::new(&cloud.url(), &names, card_wait, TOKEN);
    let bridge = setup.spawn(&rig.env());
    let mut conn = cloud.accept(STARTUP);
    let hello = conn.handshake(STARTUP);
    assert_eq!(hello["protocol"], 1);
    World {
        rig,
        cloud,
        setup,
        bridge,
        conn,
        hello,
    }
}

impl World {
    fn encoder(&self, slot: usize) -> String {
        encoder_id(&self.hello, &Rig::reader_name(slot))
    }

    /// Offers an attempt, grants the claim, and returns the result message.
    fn run(&mut self, offer: &Value, deadline_secs: u64) -> Value {
        let id = offer["action_attempt_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.conn.send(offer);
        let claim = self.conn.recv_type("claim", SHORT);
        assert_eq!(claim["action_attempt_id"], id);
        self.conn.send(&grant(&id, deadline_secs));
        let result = self.conn.recv_type("result", Duration::from_secs(60));
        assert_eq!(result["action_attempt_id"], id);
        result
    }
}

fn error_type(result: &Value) -> &str {
    result["error"]["type"].as_str().unwrap_or("(none)")
}

/// Microseconds as milliseconds with one decimal, for printing.
fn ms(us: i64) -> f64 {
    f64::from(i32::try_from(us / 100).unwrap_or(i32::MAX)) / 10.0
}

fn micros(at: SystemTime) -> i64 {
    i64::try_from(
        at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros(),
    )
    .unwrap_or(0)
}

#[test]
fn encode_then_scan_and_the_latencies() {
    let mut w = world(2, 1, 10.0);
    let apdu_log = w.setup.dir().join("apdu.log");
    let log_arg = apdu_log.display().to_string();
    let _card = w.rig.card(
        0,
        &[
            "--type",
            "classic-1k",
            "--uid",
            "04A1B2C3",
            "--apdu-log",
            &log_arg,
        ],
    );
    let encoder = w.encoder(0);
    let hello_encoder = &w.hello["encoders"][0];
    assert_eq!(hello_encoder["kind"], "pcsc");
    assert_eq!(hello_encoder["reader"], Rig::reader_name(0));

    // Encode: announcement -> claim -> grant -> result -> ack.
    let id = attempt_id();
    let announced = SystemTime::now();
    let result = w.run(&encode_offer(&id, &encoder, CREDENTIAL, "4009613812"), 60);
    let received = w.conn.last_at;
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(result["action_type"], "ENCODE_CREDENTIAL");
    assert_eq!(result["encoder_id"], encoder);
    assert!(result["error"].is_null());
    let r = &result["result"];
    assert_eq!(r["acs_credential_id"], CREDENTIAL);
    assert_eq!(r["card_number"], "4009613812");
    assert_eq!(r["is_issued"], true);
    assert_eq!(r["ends_at"], "2030-12-04T12:00:00.000Z");
    assert_eq!(r["card"]["uid"], "04A1B2C3");
    assert_eq!(r["card"]["type"], "classic-1k");
    assert_eq!(r["written"]["first_encode"], true);
    assert_eq!(r["written"]["key_version"], 1);
    w.conn.send(&ack(&id));
    let writes = writes_in(&apdu_log);
    assert!(writes > 0);

    // The latencies: announcement -> first APDU, last APDU -> result at the cloud.
    let timing = w
        .bridge
        .wait_log(SHORT, |v| {
            v["message"] == "card timing" || v["fields"]["message"] == "card timing"
        })
        .expect("card timing log line");
    let field = |name: &str| {
        timing[name]
            .as_i64()
            .or_else(|| timing["fields"][name].as_i64())
    };
    let first = field("first_apdu_us").expect("first_apdu_us");
    let last = field("last_apdu_us").expect("last_apdu_us");
    println!(
        "LATENCY announcement -> first APDU: {:.1} ms; last APDU -> result at the cloud: {:.1} ms; card operation: {:.1} ms ({} APDUs)",
        ms(first - micros(announced)),
        ms(micros(received) - last),
        ms(last - first),
        field("apdus").unwrap_or(0),
    );

    // Scan: the same credential comes back.
    let id = attempt_id();
    let result = w.run(&scan_offer(&id, &encoder), 60);
    assert_eq!(result["status"], "success", "{result}");
    let on_card = &result["result"]["acs_credential_on_encoder"];
    assert_eq!(on_card["acs_credential_id"], CREDENTIAL);
    assert_eq!(on_card["card_number"], "4009613812");
    assert_eq!(on_card["issue_counter"], 1);
    assert_eq!(result["result"]["card"]["state"], "ours");
    w.conn.send(&ack(&id));
    assert_eq!(writes_in(&apdu_log), writes, "a scan writes nothing");
}

#[test]
fn no_card_within_the_wait() {
    let mut w = world(2, 1, 1.5);
    let encoder = w.encoder(0);
    let id = attempt_id();
    let result = w.run(&encode_offer(&id, &encoder, CREDENTIAL, "1"), 60);
    assert_eq!(error_type(&result), "no_card_on_encoder", "{result}");
    assert_eq!(result["error"]["sub_code"], "card_wait_timeout");
    assert!(result["result"].is_null());
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("within 1 seconds")
            || result["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("No card")
    );
}

/// An Ultralight is refused without a write; a `DESFire` EV2 on the next reader is encoded and
/// scanned through the daemon like a Classic card (docs/card-format.md §10).
#[test]
fn ultralight_is_incompatible_and_desfire_is_encoded() {
    let mut w = world(2, 2, 10.0);
    let _ul = w
        .rig
        .card(0, &["--type", "ultralight", "--uid", "04112233445566"]);
    let _df = w
        .rig
        .card(1, &["--type", "desfire-ev2", "--uid", "04A1A2A3A4A5A6"]);
    let encoder = w.encoder(0);
    let id = attempt_id();
    let result = w.run(&encode_offer(&id, &encoder, CREDENTIAL, "1"), 60);
    assert_eq!(error_type(&result), "incompatible_card_format", "{result}");
    assert_eq!(result["error"]["sub_code"], "not_mifare_classic");
    w.conn.send(&ack(&id));
    let id = attempt_id();
    let result = w.run(&scan_offer(&id, &encoder), 60);
    assert_eq!(error_type(&result), "incompatible_card_format", "{result}");
    w.conn.send(&ack(&id));

    let encoder = w.encoder(1);
    let id = attempt_id();
    let result = w.run(&encode_offer(&id, &encoder, CREDENTIAL, "1"), 60);
    assert_eq!(result["status"], "success", "{result}");
    w.conn.send(&ack(&id));
    let id = attempt_id();
    let result = w.run(&scan_offer(&id, &encoder), 60);
    assert_eq!(result["status"], "success", "{result}");
    let on_card = &result["result"]["acs_credential_on_encoder"];
    assert_eq!(on_card["acs_credential_id"], CREDENTIAL, "{result}");
    assert_eq!(result["result"]["card"]["state"], "ours");
    w.conn.send(&ack(&id));
}

#[test]
fn card_pulled_mid_write_is_interrupted_and_reads_old_or_invalid() {
    let mut w = world(2, 1, 10.0);
    let encoder = w.encoder(0);
    let image = w.setup.dir().join("card.mfd");
    let image_arg = image.display().to_string();
    let mut card = w.rig.card(
        0,
        &[
            "--type",
            "classic-1k",
            "--uid",
            "0A0B0C0D",
            "--tear-after-writes",
            "3",
            "--save",
            &image_arg,
        ],
    );
    let id = attempt_id();
    let result = w.run(&encode_offer(&id, &encoder, CREDENTIAL, "77"), 60);
    assert_eq!(error_type(&result), "encoding_interrupted", "{result}");
    w.conn.send(&ack(&id));
    // The card comes back: a scan finds no valid credential (old = blank, or detectably
    // damaged), never one nobody wrote.
    card.insert();
    let id = attempt_id();
    let result = w.run(&scan_offer(&id, &encoder), 60);
    if result["status"] == "success" {
        assert!(
            result["result"]["acs_credential_on_encoder"].is_null(),
            "{result}"
        );
    } else {
        assert_eq!(error_type(&result), "uncategorized_error", "{result}");
    }
}

#[test]
fn reader_unplugged_while_waiting_is_not_online() {
    let mut w = world(4, 3, 20.0);
    let encoder = w.encoder(2);
    let id = attempt_id();
    w.conn.send(&encode_offer(&id, &encoder, CREDENTIAL, "1"));
    w.conn.recv_type("claim", SHORT);
    w.conn.send(&grant(&id, 60));
    w.bridge
        .wait_log(SHORT, |v| v["message"] == "waiting for a card")
        .expect("job waits");
    // Unplug readers 2 and 3: pcscd comes back with two readers.
    w.rig.kill_pcscd();
    w.rig.set_readers(2);
    w.rig.start_pcscd();
    let result = w.conn.recv_type("result", Duration::from_secs(40));
    assert_eq!(result["action_attempt_id"], id);
    assert_eq!(error_type(&result), "encoder_not_online", "{result}");
}

#[test]
fn result_is_resent_after_a_dropped_connection_and_the_card_written_once() {
    let mut w = world(2, 1, 10.0);
    let apdu_log = w.setup.dir().join("apdu.log");
    let log_arg = apdu_log.display().to_string();
    let _card = w.rig.card(
        0,
        &[
            "--type",
            "classic-1k",
            "--uid",
            "01020304",
            "--apdu-log",
            &log_arg,
        ],
    );
    let encoder = w.encoder(0);
    let id = attempt_id();
    let first = w.run(&encode_offer(&id, &encoder, CREDENTIAL, "5"), 60);
    assert_eq!(first["status"], "success", "{first}");
    let writes = writes_in(&apdu_log);
    // No ack: the connection drops.
    let World {
        rig: _rig,
        cloud,
        setup: _setup,
        bridge: _bridge,
        conn,
        hello: _,
    } = w;
    conn.drop_now();
    let mut conn = cloud.accept(STARTUP);
    conn.recv_type("hello", SHORT);
    let again = conn.recv_type("result", SHORT);
    assert_eq!(again["action_attempt_id"], id);
    assert_eq!(again["result"], first["result"]);
    // A repeated offer of the same attempt is ignored: nothing is claimed, nothing written.
    conn.send(&encode_offer(&id, &encoder, CREDENTIAL, "5"));
    conn.send(&ack(&id));
    assert!(conn.quiet_for(Duration::from_secs(2)), "{:#?}", conn.log);
    assert_eq!(writes_in(&apdu_log), writes, "the card was written once");
    // Acknowledged: not resent after another reconnect.
    conn.drop_now();
    let mut conn = cloud.accept(STARTUP);
    conn.recv_type("hello", SHORT);
    assert!(conn.quiet_for(Duration::from_secs(2)), "{:#?}", conn.log);
}

#[test]
fn a_refused_claim_leaves_the_card_alone_and_frees_the_encoder() {
    let mut w = world(2, 1, 10.0);
    let apdu_log = w.setup.dir().join("apdu.log");
    let log_arg = apdu_log.display().to_string();
    let _card = w.rig.card(
        0,
        &[
            "--type",
            "classic-1k",
            "--uid",
            "01020304",
            "--apdu-log",
            &log_arg,
        ],
    );
    let encoder = w.encoder(0);
    let id = attempt_id();
    w.conn.send(&encode_offer(&id, &encoder, CREDENTIAL, "5"));
    w.conn.recv_type("claim", SHORT);
    w.conn.send(&json!({
        "type": "claim_refused", "action_attempt_id": id, "reason": "already_claimed"
    }));
    assert!(w.conn.quiet_for(Duration::from_secs(1)));
    assert_eq!(writes_in(&apdu_log), 0);
    assert!(
        std::fs::read_to_string(&apdu_log)
            .unwrap_or_default()
            .is_empty(),
        "the card was not touched"
    );
    // The encoder is free for the next attempt.
    let next = attempt_id();
    let result = w.run(&scan_offer(&next, &encoder), 60);
    assert_eq!(result["status"], "success", "{result}");
}

#[test]
fn sigkill_mid_job_never_writes_twice_and_reports() {
    let mut w = world(2, 1, 10.0);
    let apdu_log = w.setup.dir().join("apdu.log");
    let log_arg = apdu_log.display().to_string();
    let encoder = w.encoder(0);
    let id = attempt_id();
    w.conn.send(&encode_offer(&id, &encoder, CREDENTIAL, "9"));
    w.conn.recv_type("claim", SHORT);
    w.conn.send(&grant(&id, 60));
    w.bridge
        .wait_log(SHORT, |v| v["message"] == "waiting for a card")
        .expect("job waits");
    let _card = w.rig.card(
        0,
        &[
            "--type",
            "classic-1k",
            "--uid",
            "01020304",
            "--apdu-log",
            &log_arg,
        ],
    );
    // Kill it as soon as the first write reached the card.
    assert!(encoder_tests::wait_until(SHORT, || writes_in(&apdu_log) > 0));
    w.bridge.signal("KILL");
    w.bridge.wait_exit(SHORT).expect("killed");
    let writes = writes_in(&apdu_log);
    // Restart: the attempt is reported (verified or interrupted), never run again.
    let bridge = w.setup.spawn(&w.rig.env());
    let mut conn = w.cloud.accept(STARTUP);
    conn.handshake(SHORT);
    let result = conn.recv_type("result", Duration::from_secs(40));
    assert_eq!(result["action_attempt_id"], id);
    match result["status"].as_str() {
        Some("success") => {
            assert_eq!(result["result"]["acs_credential_id"], CREDENTIAL);
        }
        _ => assert_eq!(error_type(&result), "encoding_interrupted", "{result}"),
    }
    conn.send(&ack(&id));
    // A re-offer (the cloud's lease lapsed) is not claimed.
    conn.send(&encode_offer(&id, &encoder, CREDENTIAL, "9"));
    assert!(conn.quiet_for(Duration::from_secs(2)), "{:#?}", conn.log);
    assert_eq!(writes_in(&apdu_log), writes, "no write after the restart");
    drop(bridge);
}

#[test]
fn malformed_oversized_and_unknown_messages() {
    let mut w = world(2, 1, 10.0);
    let encoder = w.encoder(0);
    w.conn
        .send_raw(tokio_tungstenite::tungstenite::Message::text("not json"));
    let e = w.conn.recv_type("protocol_error", SHORT);
    assert!(
        e["message"].as_str().unwrap_or_default().contains("JSON"),
        "{e}"
    );
    w.conn
        .send(&json!({ "type": "claim_granted", "lease_expires_at": 5 }));
    let e = w.conn.recv_type("protocol_error", SHORT);
    assert_eq!(e["in_reply_to"], "claim_granted");
    w.conn.send(&json!({ "no_type": true }));
    w.conn.recv_type("protocol_error", SHORT);
    w.conn.send(&json!({ "type": "from_the_future", "x": 1 }));
    assert!(
        w.conn.quiet_for(Duration::from_millis(500)),
        "unknown types are ignored"
    );
    w.conn
        .send(&json!({ "type": "attempt_available", "pad": "a".repeat(70 * 1024) }));
    let e = w.conn.recv_type("protocol_error", SHORT);
    assert!(
        e["message"].as_str().unwrap_or_default().contains("64 KiB"),
        "{e}"
    );
    w.conn
        .send_raw(tokio_tungstenite::tungstenite::Message::binary(vec![
            1u8, 2, 3,
        ]));
    w.conn.recv_type("protocol_error", SHORT);
    // The connection still works.
    let id = attempt_id();
    w.conn.send(&scan_offer(&id, &encoder));
    w.conn.recv_type("claim", SHORT);
    // Beyond the transport limit: closed with 1009, then reconnected.
    w.conn
        .send_raw(tokio_tungstenite::tungstenite::Message::text(
            "x".repeat(2 << 20),
        ));
    let mut closed = None;
    while closed.is_none() {
        match w.conn.next(SHORT) {
            Seen::Close(code) => closed = Some(code),
            Seen::Ended => closed = Some(None),
            Seen::Text(_) => {}
        }
    }
    assert_eq!(closed, Some(Some(1009)));
    let mut conn = w.cloud.accept(STARTUP);
    conn.recv_type("hello", SHORT);
    assert!(w.bridge.running());
}

#[test]
fn a_wrong_token_is_refused_clearly_without_a_tight_loop() {
    let rig = Rig::start(2);
    let cloud = CloudDouble::start(TOKEN);
    let setup = Setup::new(&cloud.url(), &[Rig::reader_name(0)], 10.0, "wrong-token");
    let mut bridge = setup.spawn(&rig.env());
    let refused = bridge
        .wait_log(SHORT, |v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("cloud refused the token (401)"))
        })
        .expect("a clear log line");
    assert_eq!(refused["level"], "ERROR");
    assert!(cloud.try_accept(Duration::from_secs(4)).is_none());
    let attempts = cloud.attempts();
    assert_eq!(
        attempts.len(),
        1,
        "retries wait the longest delay: {attempts:?}"
    );
    assert!(!attempts[0].authorized);
    assert!(bridge.running());
    let text = bridge.log().join("\n");
    assert!(
        !text.contains("wrong-token"),
        "the token never reaches the log"
    );
}

#[test]
fn two_encoders_work_in_parallel() {
    let mut w = world(2, 2, 20.0);
    let (e0, e1) = (w.encoder(0), w.encoder(1));
    let (a0, a1) = (attempt_id(), attempt_id());
    w.conn.send(&encode_offer(&a0, &e0, CREDENTIAL, "100"));
    w.conn.send(&encode_offer(
        &a1,
        &e1,
        "77777777-7777-7777-7777-777777777777",
        "200",
    ));
    let c0 = w.conn.recv_type("claim", SHORT);
    let c1 = w.conn.recv_type("claim", SHORT);
    assert_ne!(c0["action_attempt_id"], c1["action_attempt_id"]);
    w.conn.send(&grant(&a0, 60));
    w.conn.send(&grant(&a1, 60));
    // Both wait for a card at the same time.
    assert!(encoder_tests::wait_until(SHORT, || {
        w.bridge
            .events()
            .iter()
            .filter(|v| v["message"] == "waiting for a card")
            .count()
            == 2
    }));
    let _c0 = w
        .rig
        .card(0, &["--type", "classic-1k", "--uid", "11111111"]);
    let _c1 = w
        .rig
        .card(1, &["--type", "classic-4k", "--uid", "22222222"]);
    let r0 = w.conn.recv_type("result", SHORT);
    let r1 = w.conn.recv_type("result", SHORT);
    for r in [&r0, &r1] {
        assert_eq!(r["status"], "success", "{r}");
    }
    let mut ids = vec![
        r0["action_attempt_id"].clone(),
        r1["action_attempt_id"].clone(),
    ];
    ids.sort_by_key(ToString::to_string);
    let mut want = vec![json!(a0), json!(a1)];
    want.sort_by_key(ToString::to_string);
    assert_eq!(ids, want);
}

#[test]
fn sigterm_stops_gracefully_and_the_claim_survives() {
    let mut w = world(2, 1, 20.0);
    let encoder = w.encoder(0);
    let id = attempt_id();
    w.conn.send(&scan_offer(&id, &encoder));
    w.conn.recv_type("claim", SHORT);
    w.conn.send(&grant(&id, 60));
    w.bridge
        .wait_log(SHORT, |v| v["message"] == "waiting for a card")
        .expect("job waits");
    w.bridge.signal("TERM");
    assert_eq!(w.bridge.wait_exit(SHORT), Some(Some(0)));
    let mut closed = false;
    while !closed {
        match w.conn.next(SHORT) {
            Seen::Close(code) => {
                assert_eq!(code, Some(1001));
                closed = true;
            }
            Seen::Ended => closed = true,
            Seen::Text(_) => {}
        }
    }
    // The next start claims it again (no card was touched) and runs it.
    let _bridge = w.setup.spawn(&w.rig.env());
    let mut conn = w.cloud.accept(STARTUP);
    conn.handshake(SHORT);
    let claim = conn.recv_type("claim", SHORT);
    assert_eq!(claim["action_attempt_id"], id);
    conn.send(&grant(&id, 60));
    let _card = w
        .rig
        .card(0, &["--type", "classic-1k", "--uid", "33333333"]);
    let result = conn.recv_type("result", SHORT);
    assert_eq!(result["status"], "success", "{result}");
}

/// A bridge that died after its first card write (the store says `writing`) verifies the card
/// at the next start and reports; it never writes again. Deterministic: the store is prepared
/// as the crash left it.
#[test]
fn restart_after_a_crash_while_writing_verifies_and_never_rewrites() {
    use encoder_bridge::cloud::message::{AttemptAvailable, Incoming, parse};
    use encoder_bridge::store::{Store, Writing};
    let rig = Rig::start(2);
    let cloud = CloudDouble::start(TOKEN);
    let setup = Setup::new(&cloud.url(), &[Rig::reader_name(0)], 10.0, TOKEN);
    let apdu_log = setup.dir().join("apdu.log");
    let log_arg = apdu_log.display().to_string();
    let _card = rig.card(
        0,
        &[
            "--type",
            "classic-1k",
            "--uid",
            "01020304",
            "--apdu-log",
            &log_arg,
        ],
    );
    let (encoder, ids) = {
        let store = Store::open(&setup.dir().join("state")).expect("store");
        let encoder = store
            .encoder_id("pcsc", &Rig::reader_name(0))
            .expect("encoder id");
        let id = attempt_id();
        let offer = encode_offer(&id, &encoder, CREDENTIAL, "42");
        let Ok(Incoming::AttemptAvailable(offer)) = parse(&offer.to_string()) else {
            panic!("offer")
        };
        let offer: AttemptAvailable = offer;
        let text = serde_json::to_string(&offer).expect("json");
        store.put_claimed(&id, &text, None).expect("claimed");
        store
            .mark_writing(
                &id,
                Writing {
                    uid: "01020304".into(),
                    card_number: "42".into(),
                },
            )
            .expect("writing");
        (encoder, id)
    };
    let _bridge = setup.spawn(&rig.env());
    let mut conn = cloud.accept(STARTUP);
    conn.handshake(SHORT);
    let result = conn.recv_type("result", Duration::from_secs(30));
    assert_eq!(result["action_attempt_id"], ids);
    assert_eq!(result["encoder_id"], encoder);
    // The blank card does not hold the credential: interrupted, with what it holds.
    assert_eq!(error_type(&result), "encoding_interrupted", "{result}");
    assert!(
        result["error"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("holds no credential"),
        "{result}"
    );
    conn.send(&ack(&ids));
    assert_eq!(writes_in(&apdu_log), 0, "verification never writes");
}

/// `hello` carries what pcscd says at start: a present reader is online (with its card), a
/// configured reader that is not there is offline, and no status flaps right after.
#[test]
fn hello_carries_the_readers_real_state() {
    let rig = Rig::start(2);
    let _card = rig.card(1, &["--type", "classic-1k", "--uid", "0A0B0C0D"]);
    let cloud = CloudDouble::start(TOKEN);
    let absent = "Absent Reader 00 00".to_owned();
    let names = vec![Rig::reader_name(0), Rig::reader_name(1), absent.clone()];
    let setup = Setup::new(&cloud.url(), &names, 10.0, TOKEN);
    let _bridge = setup.spawn(&rig.env());
    let mut conn = cloud.accept(STARTUP);
    let hello = conn.handshake(STARTUP);
    let state = |reader: &str| {
        let id = encoder_id(&hello, reader);
        let e = hello["encoders"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["encoder_id"] == id.as_str()))
            .cloned()
            .unwrap_or_default();
        (id, e["online"].clone(), e["card_present"].clone())
    };
    let (empty, online, card) = state(&Rig::reader_name(0));
    assert_eq!((online, card), (json!(true), json!(false)), "{hello}");
    let (loaded, online, card) = state(&Rig::reader_name(1));
    assert_eq!((online, card), (json!(true), json!(true)), "{hello}");
    let (_, online, _) = state(&absent);
    assert_eq!(online, json!(false), "{hello}");
    // What an integrator lists right after the connect stays true: no status message takes
    // a present reader offline or its card away.
    assert!(
        conn.quiet_for(Duration::from_millis(1500)),
        "{:#?}",
        conn.log
    );
    for message in &conn.log {
        if message["type"] == "encoder_status" {
            assert!(
                message["encoder_id"] != empty.as_str() || message["online"] == true,
                "{message}"
            );
            assert!(
                message["encoder_id"] != loaded.as_str()
                    || (message["online"] == true && message["card_present"] == true),
                "{message}"
            );
        }
    }
}

/// A cloud that keeps the TCP connection open but stops answering (pings included) is
/// noticed and left: the bridge reconnects within the ping interval plus the pong timeout
/// (plus the daemon's 1 s tick and the first reconnect delay).
#[test]
fn a_half_open_connection_is_noticed_and_reopened() {
    let cloud = CloudDouble::start(TOKEN);
    let setup = Setup::new(&cloud.url(), &[], 10.0, TOKEN);
    setup.cloud_option("ping_interval_secs = 1\npong_timeout_secs = 2");
    // No PC/SC reader is driven: no rig needed.
    let bridge = setup.spawn(&("ENCODER_DAEMON_TEST", "liveness".into()));
    let mut conn = cloud.accept(STARTUP);
    conn.handshake(STARTUP);
    // Answered pings keep the connection: nothing happens for a few intervals.
    assert!(cloud.try_accept(Duration::from_millis(3500)).is_none());
    let stalled = std::time::Instant::now();
    conn.stall();
    let mut again = cloud.accept(Duration::from_secs(10));
    let took = stalled.elapsed();
    assert!(
        took <= Duration::from_secs(1 + 2 + 2),
        "reconnected after {took:?}"
    );
    again.handshake(SHORT);
    assert!(
        bridge
            .wait_log(SHORT, |v| v["message"]
                == "no answer to a ping in time: reconnecting")
            .is_some()
    );
}

/// `attempt_cancelled` ends a card wait at once and no result is sent: the encoder is free
/// for the next attempt right away.
#[test]
fn attempt_cancelled_ends_the_card_wait_without_a_result() {
    let mut w = world(2, 1, 20.0);
    let encoder = w.encoder(0);
    let id = attempt_id();
    w.conn.send(&scan_offer(&id, &encoder));
    w.conn.recv_type("claim", SHORT);
    w.conn.send(&grant(&id, 60));
    w.bridge
        .wait_log(SHORT, |v| v["message"] == "waiting for a card")
        .expect("job waits");
    w.conn.send(&json!({
        "type": "attempt_cancelled", "action_attempt_id": id, "reason": "cancelled"
    }));
    let cancelled = std::time::Instant::now();
    // The next attempt for the same encoder is claimed only once the wait has ended; no
    // result comes in between (recv_type fails on one).
    let next = attempt_id();
    w.conn.send(&scan_offer(&next, &encoder));
    let claim = w.conn.recv_type("claim", Duration::from_secs(2));
    assert_eq!(claim["action_attempt_id"], next);
    assert!(
        cancelled.elapsed() < Duration::from_secs(2),
        "{:?}",
        cancelled.elapsed()
    );
    w.conn.send(&json!({
        "type": "claim_refused", "action_attempt_id": next, "reason": "already_claimed"
    }));
    assert!(
        w.conn.quiet_for(Duration::from_secs(1)),
        "{:#?}",
        w.conn.log
    );
    assert!(
        !w.conn.log.iter().any(|m| m["type"] == "result"),
        "{:#?}",
        w.conn.log
    );
}

/// While it waits for a card, the bridge renews the lease at a third of what the grant
/// gave: a 3 s lease is renewed every second.
#[test]
fn the_lease_is_renewed_while_waiting_for_a_card() {
    let mut w = world(2, 1, 10.0);
    let encoder = w.encoder(0);
    let id = attempt_id();
    w.conn.send(&scan_offer(&id, &encoder));
    w.conn.recv_type("claim", SHORT);
    w.conn.send(&grant_with_lease(&id, 3, 60));
    let granted = std::time::Instant::now();
    let mut renews = 0;
    while granted.elapsed() < Duration::from_millis(3500) {
        let message = w.conn.recv(SHORT);
        match message["type"].as_str() {
            Some("renew") => {
                assert_eq!(message["action_attempt_id"], id);
                renews += 1;
                w.conn.send(&json!({
                    "type": "lease_renewed",
                    "action_attempt_id": id,
                    "lease_expires_at": encoder_tests::cloud::in_secs(3),
                }));
            }
            Some("encoder_status") => {}
            _ => panic!("unexpected {message}"),
        }
    }
    assert!(renews >= 2, "{renews} renews in 3.5 s");
    w.conn.send(&json!({
        "type": "attempt_cancelled", "action_attempt_id": id, "reason": "cancelled"
    }));
    assert!(w.conn.quiet_for(Duration::from_millis(500)));
}
