//! The daemon with a PN532: the real `encoder-bridge run` binary driving a PN532 emulator
//! (`encoder-sim pn532` behind a pseudo-terminal) as a configured `[[encoders.pn532]]`
//! encoder, against the scripted cloud double. No pcscd is involved.

mod pn532_support;

use std::time::Duration;

use encoder_tests::STARTUP;
use encoder_tests::cloud::{CloudDouble, Conn};
use encoder_tests::daemon::{
    Bridge, Setup, TOKEN, ack, attempt_id, encode_offer, encoder_id, grant, scan_offer,
};
use encoder_tests::e2e::add_pn532;
use pn532_support::Emulator;
use serde_json::Value;

const CREDENTIAL: &str = "66666666-6666-6666-6666-666666666666";
const SHORT: Duration = Duration::from_secs(10);

struct World {
    _dir: tempfile::TempDir,
    emulator: Emulator,
    _cloud: CloudDouble,
    setup: Setup,
    bridge: Bridge,
    conn: Conn,
    hello: Value,
    encoder: String,
}

/// A PN532 emulator holding a blank 1K card, the bridge driving it, connected and welcomed.
fn world(card_wait: f64) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = Emulator::start(
        &dir.path().join("pn532"),
        &["--type", "classic-1k", "--uid", "04A1B2C3"],
    );
    let cloud = CloudDouble::start(TOKEN);
    let setup = Setup::new(&cloud.url(), &[], card_wait, TOKEN);
    add_pn532(&setup.config(), &emulator.path(), "Back Office");
    let bridge = setup.spawn(&("ENCODER_DAEMON_TEST", "pn532".into()));
    let mut conn = cloud.accept(STARTUP);
    let hello = conn.handshake(STARTUP);
    let encoder = encoder_id(&hello, &emulator.path());
    World {
        _dir: dir,
        emulator,
        _cloud: cloud,
        setup,
        bridge,
        conn,
        hello,
        encoder,
    }
}

impl World {
    /// Waits for an `encoder_status` of this encoder with `online` and `card_present`.
    fn expect_status(&mut self, online: bool, card_present: bool) {
        let message = self.conn.recv_type("encoder_status", SHORT);
        assert_eq!(message["encoder_id"], self.encoder.as_str(), "{message}");
        assert_eq!(
            (
                message["online"].as_bool(),
                message["card_present"].as_bool()
            ),
            (Some(online), Some(card_present)),
            "{message}"
        );
    }

    /// Offers an attempt and grants it.
    fn start(&mut self, offer: &Value) -> String {
        let id = offer["action_attempt_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.conn.send(offer);
        let claim = self.conn.recv_type("claim", SHORT);
        assert_eq!(claim["action_attempt_id"], id.as_str());
        self.conn.send(&grant(&id, 60));
        id
    }

    /// The result of attempt `id` (status messages in between are skipped).
    fn result(&mut self, id: &str) -> Value {
        let result = self.conn.recv_type("result", Duration::from_secs(15));
        assert_eq!(result["action_attempt_id"], id, "{result}");
        self.conn.send(&ack(id));
        result
    }

    fn wait_for_card_logged(&self, count: usize) {
        assert!(
            encoder_tests::wait_until(SHORT, || {
                self.bridge
                    .events()
                    .iter()
                    .filter(|v| v["message"] == "waiting for a card")
                    .count()
                    >= count
            }),
            "the job did not wait for a card"
        );
    }
}

/// `hello` says what the first probe found (the serial link answers, a card is there); the
/// card leaving and coming, and the adapter unplugged and back, follow as `encoder_status`.
#[test]
fn pn532_state_is_reported_from_the_serial_link_and_the_field() {
    let mut w = world(10.0);
    let announced = w.hello["encoders"][0].clone();
    assert_eq!(announced["kind"], "pn532");
    assert_eq!(announced["online"], true, "{announced}");
    assert_eq!(announced["card_present"], true, "{announced}");
    w.emulator.remove();
    w.expect_status(true, false);
    w.emulator.insert();
    w.expect_status(true, true);
    w.emulator.unplug();
    w.expect_status(false, false);
    w.emulator.plug();
    w.expect_status(true, true);
}

/// Encode then scan through the cloud; then a scan whose wait sees the adapter unplugged and
/// plugged back before the card wait ends goes on and succeeds (docs/cloud-protocol.md §5).
#[test]
fn pn532_encode_scan_and_a_replug_within_the_wait() {
    let mut w = world(10.0);
    let encoder = w.encoder.clone();
    let id = w.start(&encode_offer(
        &attempt_id(),
        &encoder,
        CREDENTIAL,
        "4009613812",
    ));
    let result = w.result(&id);
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(result["result"]["card"]["uid"], "04A1B2C3");
    let id = w.start(&scan_offer(&attempt_id(), &encoder));
    let result = w.result(&id);
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(
        result["result"]["acs_credential_on_encoder"]["acs_credential_id"],
        CREDENTIAL
    );

    w.emulator.remove();
    let id = w.start(&scan_offer(&attempt_id(), &encoder));
    w.wait_for_card_logged(3);
    w.emulator.unplug();
    std::thread::sleep(Duration::from_millis(500));
    w.emulator.plug();
    w.emulator.insert();
    let result = w.result(&id);
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(result["result"]["card"]["state"], "ours", "{result}");
}

/// An adapter unplugged during the card wait and still gone when the wait ends:
/// `encoder_not_online`, and the encoder is reported offline.
#[test]
fn pn532_unplugged_for_the_rest_of_the_wait_is_not_online() {
    let mut w = world(2.0);
    w.emulator.remove();
    w.expect_status(true, false);
    let encoder = w.encoder.clone();
    let id = w.start(&scan_offer(&attempt_id(), &encoder));
    w.wait_for_card_logged(1);
    w.emulator.unplug();
    let result = w.result(&id);
    assert_eq!(result["error"]["type"], "encoder_not_online", "{result}");
    assert_eq!(
        result["error"]["sub_code"], "reader_unavailable",
        "{result}"
    );
    w.expect_status(false, false);
}

fn cli(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = std::process::Command::new(encoder_tests::binary("encoder-bridge"))
        .args(args)
        .env("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm")
        .output()
        .expect("run encoder-bridge");
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The operator commands beside the daemon on a PN532 (whose serial port the daemon holds):
/// `encode` and `scan` go through the daemon, between the cloud's attempts; `readers` shows
/// the encoder as the daemon drives it; `--direct` says the service holds the device instead
/// of blaming the cable.
#[test]
fn pn532_operator_commands_go_through_the_daemon() {
    let mut w = world(10.0);
    let socket = w.setup.socket().display().to_string();
    let device = w.emulator.path();
    let credential = w.setup.dir().join("cred.json");
    std::fs::write(
        &credential,
        r#"{"acs_credential_id":"88888888-8888-8888-8888-888888888888","card_number":"31337","starts_at":null,"ends_at":null,"issue_counter":1,"access_data":""}"#,
    )
    .expect("credential");
    let credential = credential.display().to_string();
    let (code, json, out) = cli(&[
        "encode",
        "--credential",
        &credential,
        "--socket",
        &socket,
        "--device",
        &device,
        "--json",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(json["result"]["card_number"], "31337", "{json}");
    // A cloud scan afterwards reads what the operator wrote.
    let encoder = w.encoder.clone();
    let id = w.start(&scan_offer(&attempt_id(), &encoder));
    let result = w.result(&id);
    assert_eq!(
        result["result"]["acs_credential_on_encoder"]["acs_credential_id"],
        "88888888-8888-8888-8888-888888888888",
        "{result}"
    );
    // The operator's scan, in words.
    let (code, _, out) = cli(&["scan", "--socket", &socket, "--device", &device]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("card_number: 31337"), "{out}");
    // readers: as the daemon drives it.
    let (code, json, out) = cli(&["readers", "--socket", &socket, "--json"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(json["daemon"], true, "{json}");
    assert_eq!(json["readers"][0]["name"], device.as_str(), "{json}");
    assert_eq!(json["readers"][0]["kind"], "pn532", "{json}");
    assert_eq!(json["readers"][0]["state"], "card_present", "{json}");
    // --direct on the device the daemon holds.
    let config = w.setup.config().display().to_string();
    let (code, _, out) = cli(&[
        "scan", "--direct", "--config", &config, "--socket", &socket, "--device", &device,
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("in use by the encoder-bridge service; run without --direct"),
        "{out}"
    );
    assert!(!out.contains("USB cable"), "{out}");
}

/// `readers` with only PN532 encoders configured and no pcscd (and no daemon): the PN532 is
/// listed, pcscd reported as not running, exit 0 because an encoder is usable.
#[test]
fn readers_without_pcscd_lists_the_pn532() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = Emulator::start(
        &dir.path().join("pn532"),
        &["--type", "classic-1k", "--uid", "04A1B2C3"],
    );
    let setup = Setup::new("ws://127.0.0.1:9/bridge/v1", &[], 5.0, TOKEN);
    add_pn532(&setup.config(), &emulator.path(), "Back Office");
    let config = setup.config().display().to_string();
    let (code, json, out) = cli(&["readers", "--config", &config, "--json"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        json["readers"][0]["name"],
        emulator.path().as_str(),
        "{json}"
    );
    assert_eq!(json["readers"][0]["kind"], "pn532", "{json}");
    assert_eq!(json["readers"][0]["state"], "card_present", "{json}");
    assert_eq!(json["error"]["kind"], "no_service", "{json}");
    let (code, _, out) = cli(&["readers", "--config", &config]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("pcscd: not running"), "{out}");
    assert!(out.contains(&emulator.path()), "{out}");
}
