//! The control socket of the real `encoder-bridge run` process (docs/control-protocol.md):
//! `encoder-bridge status` idle, during a job and with the cloud down; `scan` and `encode`
//! through the daemon interleaved with cloud attempts on the same encoder; the peer check
//! (a user outside the socket's group, run with `setpriv`); malformed and oversized requests.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use encoder_tests::cloud::{CloudDouble, Conn};
use encoder_tests::daemon::{
    Bridge, Setup, TOKEN, ack, attempt_id, encoder_id, grant, scan_offer, writes_in,
};
use encoder_tests::{Rig, STARTUP, binary, wait_until};
use serde_json::{Value, json};

const SHORT: Duration = Duration::from_secs(15);
const CREDENTIAL: &str = "77777777-7777-7777-7777-777777777777";

struct World {
    rig: Rig,
    cloud: Option<CloudDouble>,
    setup: Setup,
    bridge: Bridge,
    conn: Option<Conn>,
    encoder: String,
}

impl World {
    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("connected")
    }

    /// The cloud goes away: the connection and the listener.
    fn cloud_down(&mut self) {
        self.conn = None;
        self.cloud = None;
    }

    /// Offers an attempt and grants it.
    fn start(&mut self, offer: &Value) -> String {
        let id = offer["action_attempt_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.conn().send(offer);
        let claim = self.conn().recv_type("claim", SHORT);
        assert_eq!(claim["action_attempt_id"], id.as_str());
        self.conn().send(&grant(&id, 60));
        id
    }
}

/// One reader on the rig, the bridge driving it, connected and welcomed, its socket up.
fn world(card_wait: f64) -> World {
    let rig = Rig::start(1);
    let cloud = CloudDouble::start(TOKEN);
    let setup = Setup::new(&cloud.url(), &[Rig::reader_name(0)], card_wait, TOKEN);
    let bridge = setup.spawn(&rig.env());
    let mut conn = cloud.accept(STARTUP);
    let hello = conn.handshake(STARTUP);
    let encoder = encoder_id(&hello, &Rig::reader_name(0));
    assert!(
        wait_until(STARTUP, || setup.socket().exists()),
        "no control socket at {}",
        setup.socket().display()
    );
    World {
        rig,
        cloud: Some(cloud),
        setup,
        bridge,
        conn: Some(conn),
        encoder,
    }
}

/// Runs `encoder-bridge ARGS` with the rig's environment, optionally under `setpriv ARGS`.
fn run(rig: &Rig, setpriv: &[&str], args: &[&str]) -> Output {
    let (key, value) = rig.env();
    let mut command = if setpriv.is_empty() {
        Command::new(binary("encoder-bridge"))
    } else {
        let mut c = Command::new("setpriv");
        c.args(setpriv).arg(binary("encoder-bridge"));
        c
    };
    command
        .args(args)
        .env(key, value)
        .output()
        .expect("run encoder-bridge")
}

fn status(w: &World) -> (Option<i32>, Value) {
    let socket = w.setup.socket().display().to_string();
    let out = run(&w.rig, &[], &["status", "--socket", &socket, "--json"]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json)
}

/// One raw line to the socket and the answer (`None`: closed without one).
fn raw(socket: &Path, line: &[u8]) -> Option<Value> {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream.set_read_timeout(Some(SHORT)).expect("read timeout");
    let _ = stream.write_all(line);
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).ok()?;
    serde_json::from_str(&answer).ok()
}

#[test]
fn status_idle_during_a_job_and_with_the_cloud_down() {
    let mut w = world(10.0);
    // Idle: healthy, exit 0.
    let (code, s) = status(&w);
    assert_eq!(code, Some(0), "{s:#}");
    assert_eq!(s["cloud"]["connected"], true, "{s:#}");
    assert!(s["cloud"]["connected_since"].is_string(), "{s:#}");
    assert_eq!(s["cloud"]["clock_skew_secs"], 0, "{s:#}");
    assert_eq!(s["encoders"][0]["encoder_id"], w.encoder.as_str(), "{s:#}");
    assert_eq!(s["encoders"][0]["reader"], Rig::reader_name(0), "{s:#}");
    assert_eq!(s["encoders"][0]["online"], true, "{s:#}");
    assert!(s["encoders"][0]["busy_with"].is_null(), "{s:#}");
    assert_eq!(s["attempts_in_flight"], 0, "{s:#}");
    assert_eq!(s["outbox"], 0, "{s:#}");
    // The human form says the same.
    let socket = w.setup.socket().display().to_string();
    let out = run(&w.rig, &[], &["status", "--socket", &socket]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cloud: connected"), "{text}");
    assert!(text.contains("health: ok"), "{text}");

    // During a job: the scan waits for a card; the encoder is busy with the attempt.
    let id = w.start(&scan_offer(&attempt_id(), &w.encoder.clone()));
    assert!(wait_until(SHORT, || {
        status(&w).1["encoders"][0]["busy_with"] == id.as_str()
    }));
    let (code, s) = status(&w);
    assert_eq!(code, Some(0), "{s:#}");
    assert_eq!(s["attempts_in_flight"], 1, "{s:#}");
    // The card comes, the result goes out; unacknowledged it stays in the outbox.
    let _card = w
        .rig
        .card(0, &["--type", "classic-1k", "--uid", "04A1B2C3"]);
    let result = w.conn().recv_type("result", SHORT);
    assert_eq!(result["action_attempt_id"], id.as_str());
    let (_, s) = status(&w);
    assert_eq!(s["outbox"], 1, "{s:#}");
    assert!(s["encoders"][0]["busy_with"].is_null(), "{s:#}");
    w.conn().send(&ack(&id));
    assert!(wait_until(SHORT, || status(&w).1["outbox"] == 0));

    // The cloud goes away: exit 1, the link down with its last error.
    w.cloud_down();
    assert!(wait_until(SHORT, || status(&w).0 == Some(1)));
    let (code, s) = status(&w);
    assert_eq!(code, Some(1), "{s:#}");
    assert_eq!(s["cloud"]["connected"], false, "{s:#}");
    assert!(s["cloud"]["last_error"].is_string(), "{s:#}");
    let out = run(&w.rig, &[], &["status", "--socket", &socket]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cloud: DOWN"), "{text}");
    assert!(text.contains("health: DEGRADED"), "{text}");

    // No daemon: exit 2 with a hint.
    assert!(w.bridge.running());
    w.bridge.signal("TERM");
    assert!(w.bridge.wait_exit(SHORT).is_some());
    assert!(!w.setup.socket().exists(), "the socket is removed at exit");
    let out = run(&w.rig, &[], &["status", "--socket", &socket]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no daemon answers"), "{err}");
}

/// A user outside the socket's group is turned away: by the socket's mode at `connect`, and
/// (when it carries the group's id only at run time, not in the group database) by the
/// daemon's peer check, which logs it. A member (the group as its gid) gets its answer.
/// Malformed and oversized requests get an error; the daemon works on.
#[test]
fn the_socket_refuses_non_members_and_survives_bad_requests() {
    let w = world(5.0);
    let socket = w.setup.socket().display().to_string();
    let status_as = |setpriv: &[&str]| {
        let out = run(&w.rig, setpriv, &["status", "--socket", &socket]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The socket is 0660, group root (the tests' [control] group).
    let meta = std::fs::metadata(w.setup.socket()).expect("socket");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o660
    );
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 0);

    // nobody, without the group: the kernel refuses the connect.
    let (code, err) = status_as(&["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not allowed to use"), "{err}");
    assert!(err.contains("usermod -aG"), "{err}");

    // nobody carrying gid 0 as a supplementary group it is not listed in: the daemon refuses.
    let (code, err) = status_as(&["--reuid", "nobody", "--regid", "nogroup", "--groups", "0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("uid 65534 is neither root nor a member of group root"),
        "{err}"
    );
    assert!(
        w.bridge
            .wait_log(SHORT, |v| v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("control socket: refused"))
                && v["uid"] == 65534)
            .is_some(),
        "the refusal is logged"
    );

    // A member (the group as its gid): answered.
    let (code, err) = status_as(&["--reuid", "nobody", "--regid", "0", "--clear-groups"]);
    assert_eq!(code, Some(0), "{err}");

    // Bad requests: each answered with its error code.
    let code_of = |line: &[u8]| {
        raw(w.setup.socket().as_path(), line)
            .map(|v| v["error"]["code"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(code_of(b"status\n").as_deref(), Some("bad_request"));
    assert_eq!(
        code_of(b"{\"op\":\"status\"}\n").as_deref(),
        Some("bad_request")
    );
    assert_eq!(
        code_of(b"{\"v\":9,\"op\":\"status\"}\n").as_deref(),
        Some("unsupported_version")
    );
    assert_eq!(
        code_of(b"{\"v\":1,\"op\":\"format_disk\"}\n").as_deref(),
        Some("bad_request")
    );
    assert_eq!(
        code_of(b"{\"v\":1,\"op\":\"scan\",\"encoder\":\"no such reader\"}\n").as_deref(),
        Some("no_such_encoder")
    );
    let mut huge = vec![b'x'; 200 * 1024];
    huge.push(b'\n');
    assert_eq!(code_of(&huge).as_deref(), Some("too_long"));
    // Several requests on one connection, each answered in turn.
    let mut stream = UnixStream::connect(w.setup.socket()).expect("connect");
    stream
        .write_all(b"{\"v\":1,\"op\":\"status\"}\n{\"v\":1,\"op\":\"status\"}\n")
        .expect("write");
    let mut reader = BufReader::new(stream);
    for _ in 0..2 {
        let mut line = String::new();
        reader.read_line(&mut line).expect("answer");
        let answer: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(answer["v"], 1, "{answer}");
    }
    // The daemon is unharmed.
    let (code, s) = status(&w);
    assert_eq!(code, Some(0), "{s:#}");
}

fn spawn_cli(w: &World, args: &[&str]) -> std::thread::JoinHandle<(Option<i32>, Value, String)> {
    let (key, value) = w.rig.env();
    let mut command = Command::new(binary("encoder-bridge"));
    command.args(args).env(key, value);
    std::thread::spawn(move || {
        let out = command.output().expect("run encoder-bridge");
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
}

/// `encode` and `scan` from the command line while the daemon runs go through its socket
/// and queue on the encoder's runner: an operator job holds the encoder (the cloud's offer
/// waits, unclaimed, and runs after it), and a cloud attempt holds it (the operator job waits
/// and runs after it). Every job runs once, every result arrives once.
#[test]
#[allow(clippy::too_many_lines)] // one story, told in order
fn cli_jobs_and_cloud_attempts_take_turns_on_one_encoder() {
    let mut w = world(10.0);
    let socket = w.setup.socket().display().to_string();
    let reader = Rig::reader_name(0);
    let credential = w.setup.dir().join("cred.json");
    std::fs::write(
        &credential,
        json!({"acs_credential_id": CREDENTIAL, "card_number": "4242", "starts_at": null,
               "ends_at": "2030-01-01T00:00:00Z", "issue_counter": 3, "access_data": "AQID"})
        .to_string(),
    )
    .expect("credential");
    let credential = credential.display().to_string();

    // 1. The operator's encode waits for a card, holding the encoder.
    let encode = spawn_cli(
        &w,
        &[
            "encode",
            "--credential",
            &credential,
            "--socket",
            &socket,
            "--reader",
            &reader,
            "--json",
        ],
    );
    assert!(wait_until(SHORT, || {
        status(&w).1["encoders"][0]["busy_with"]
            .as_str()
            .is_some_and(|b| b.starts_with("local-"))
    }));
    // A cloud scan offered meanwhile is not claimed while the operator's job holds the encoder.
    let scan_id = attempt_id();
    let encoder = w.encoder.clone();
    w.conn().send(&scan_offer(&scan_id, &encoder));
    assert!(
        w.conn().quiet_for(Duration::from_secs(1)),
        "claimed while busy"
    );
    // The card comes: the operator's encode ends, then the cloud's scan is claimed and runs.
    let apdu_log = w.setup.dir().join("apdu.log");
    let log_arg = apdu_log.display().to_string();
    let mut card = w.rig.card(
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
    let (code, json, err) = encode.join().expect("encode");
    assert_eq!(code, Some(0), "{json} {err}");
    assert_eq!(json["status"], "success", "{json}");
    assert_eq!(json["result"]["acs_credential_id"], CREDENTIAL, "{json}");
    let writes = writes_in(&apdu_log);
    assert!(writes > 0, "the encode wrote");
    let claim = w.conn().recv_type("claim", SHORT);
    assert_eq!(claim["action_attempt_id"], scan_id.as_str());
    w.conn().send(&grant(&scan_id, 60));
    let result = w.conn().recv_type("result", SHORT);
    assert_eq!(result["action_attempt_id"], scan_id.as_str(), "{result}");
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(
        result["result"]["acs_credential_on_encoder"]["acs_credential_id"], CREDENTIAL,
        "the cloud's scan ran after the operator's encode: {result}"
    );
    w.conn().send(&ack(&scan_id));

    // 2. A cloud scan waits for a card, holding the encoder; the operator's scan waits behind it.
    card.remove();
    assert!(w.rig.wait_reader(0, false));
    assert!(wait_until(
        SHORT,
        || status(&w).1["encoders"][0]["card_present"] == false
    ));
    let cloud_scan = w.start(&scan_offer(&attempt_id(), &encoder));
    assert!(wait_until(SHORT, || {
        status(&w).1["encoders"][0]["busy_with"] == cloud_scan.as_str()
    }));
    let scan = spawn_cli(&w, &["scan", "--socket", &socket, "--json"]);
    assert!(wait_until(SHORT, || status(&w).1["local_jobs"] == 1));
    assert_eq!(
        status(&w).1["encoders"][0]["busy_with"],
        cloud_scan.as_str(),
        "the operator's job waits"
    );
    card.insert();
    let result = w.conn().recv_type("result", SHORT);
    assert_eq!(result["action_attempt_id"], cloud_scan.as_str(), "{result}");
    assert_eq!(result["status"], "success", "{result}");
    w.conn().send(&ack(&cloud_scan));
    let (code, json, err) = scan.join().expect("scan");
    assert_eq!(code, Some(0), "{json} {err}");
    assert_eq!(
        json["result"]["acs_credential_on_encoder"]["acs_credential_id"], CREDENTIAL,
        "{json}"
    );
    // Nothing more: no result twice, no job run twice, the scans wrote nothing.
    assert!(w.conn().quiet_for(Duration::from_secs(1)));
    assert_eq!(writes_in(&apdu_log), writes, "the scans wrote nothing");
    let (code, s) = status(&w);
    assert_eq!(code, Some(0), "{s:#}");
    assert_eq!(s["local_jobs"], 0, "{s:#}");
    assert_eq!(s["attempts_in_flight"], 0, "{s:#}");
    assert!(s["encoders"][0]["busy_with"].is_null(), "{s:#}");
    let finished = w
        .bridge
        .events()
        .iter()
        .filter(|v| v["message"] == "operator job finished")
        .count();
    assert_eq!(finished, 2, "each operator job ran once");
}

/// An operator who gives up (the command is killed while its scan waits for a card) frees
/// the encoder: the job's card wait is cancelled, and a cloud attempt offered meanwhile is
/// claimed and runs.
#[test]
fn an_abandoned_operator_job_frees_the_encoder() {
    let mut w = world(30.0);
    let socket = w.setup.socket().display().to_string();
    let (key, value) = w.rig.env();
    let mut scan = Command::new(binary("encoder-bridge"))
        .args(["scan", "--socket", &socket, "--json"])
        .env(key, value)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("scan");
    assert!(wait_until(SHORT, || {
        status(&w).1["encoders"][0]["busy_with"]
            .as_str()
            .is_some_and(|b| b.starts_with("local-"))
    }));
    let encoder = w.encoder.clone();
    let id = attempt_id();
    w.conn().send(&scan_offer(&id, &encoder));
    scan.kill().expect("kill");
    let _ = scan.wait();
    // Freed within a tick or two, far before the 30 s card wait.
    let claim = w.conn().recv_type("claim", Duration::from_secs(5));
    assert_eq!(claim["action_attempt_id"], id.as_str());
    assert!(
        w.bridge
            .wait_log(SHORT, |v| v["message"]
                == "operator job abandoned by its client: cancelling its card wait")
            .is_some()
    );
    let (_, s) = status(&w);
    assert_eq!(s["local_jobs"], 0, "{s:#}");
}
