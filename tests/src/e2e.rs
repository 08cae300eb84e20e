//! End to end: the real `encoder-sim cloud` binary (the Seam-shaped HTTP API and the bridge
//! websocket) on 127.0.0.1 port 0, spoken to with plain HTTP/1.1 requests as an integrator
//! would (the seeds' cURL calls), with the real `encoder-bridge run` between it and the cards.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::{Bridge, TOKEN};
use crate::{STARTUP, binary};

/// The simulator's one access system (the seeds' building).
pub const SYSTEM: &str = "11111111-1111-1111-1111-111111111111";
/// The seeds' credential window.
pub const STARTS_AT: &str = "2024-12-01T15:00:00.000Z";
/// The seeds' credential window.
pub const ENDS_AT: &str = "2024-12-04T12:00:00.000Z";

/// How long an HTTP request or a poll may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// A running `encoder-sim cloud --listen 127.0.0.1:0`, killed with the test.
pub struct Cloud {
    child: Child,
    addr: SocketAddr,
    /// Over TLS: the host name its certificate names, and a client trusting its CA.
    tls: Option<(String, std::sync::Arc<rustls::ClientConfig>)>,
}

impl Cloud {
    /// Starts the binary with the tests' token and waits for `listening on http://ADDR`.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`Cloud::start`] over TLS (`--tls-cert/--tls-key`), its certificate naming `host`
    /// (which resolves to 127.0.0.1) and signed by `pki`'s CA.
    pub fn start_tls(pki: &crate::pki::Pki, cert: &crate::pki::ServerCert, host: &str) -> Self {
        let mut cloud = Self::start_with(&[
            "--tls-cert",
            &cert.cert.display().to_string(),
            "--tls-key",
            &cert.key.display().to_string(),
        ]);
        cloud.tls = Some((host.to_owned(), pki.client_config()));
        cloud
    }

    /// [`Cloud::start`] with more `encoder-sim cloud` arguments (e.g. `--webhook-url`).
    pub fn start_with(args: &[&str]) -> Self {
        let mut child = Command::new("setpriv")
            .arg("--pdeathsig")
            .arg("KILL")
            .arg(binary("encoder-sim"))
            .args(["cloud", "--listen", "127.0.0.1:0", "--token", TOKEN])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start encoder-sim cloud");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent
                    && let Some(addr) = line
                        .strip_prefix("listening on http://")
                        .or_else(|| line.strip_prefix("listening on https://"))
                    && let Ok(addr) = addr.trim().parse::<SocketAddr>()
                {
                    sent = tx.send(addr).is_ok();
                }
            }
        });
        let addr = rx
            .recv_timeout(STARTUP)
            .expect("encoder-sim cloud did not print its address");
        Self {
            child,
            addr,
            tls: None,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The API's base URL (`http://ADDR`), as an SDK's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bridge websocket URL (`ws://ADDR/bridge/v1`, or `wss://HOST:PORT/bridge/v1` over
    /// TLS).
    pub fn ws_url(&self) -> String {
        match &self.tls {
            Some((host, _)) => format!("wss://{host}:{}/bridge/v1", self.addr.port()),
            None => format!("ws://{}/bridge/v1", self.addr),
        }
    }

    /// POST `body` as JSON to `path` with the bearer token: the status and the JSON reply.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        match &self.tls {
            Some((host, config)) => {
                https_post(self.addr, host, config, path, TOKEN, &body.to_string())
            }
            None => http_post(self.addr, path, TOKEN, &body.to_string()),
        }
    }

    /// POST expecting 200 and `"ok": true`; the reply.
    pub fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, reply) = self.post(path, body);
        assert_eq!(status, 200, "{path} {body}: {reply}");
        assert_eq!(reply["ok"], true, "{path} {body}: {reply}");
        reply
    }

    /// The seeds' step 1: a user (Jane Doe) and a card credential for the first entrance with
    /// the seeds' window; checks the credential as created (`is_issued: false`) and returns
    /// its id.
    pub fn seed_credential(&self) -> String {
        let user = self.ok(
            "/acs/users/create",
            &json!({"acs_system_id": SYSTEM, "full_name": "Jane Doe", "email_address": "jane@example.com"}),
        );
        let user_id = user["acs_user"]["acs_user_id"]
            .as_str()
            .expect("acs_user_id")
            .to_owned();
        let entrances = self.ok("/acs/entrances/list", &json!({"acs_system_id": SYSTEM}));
        let entrance = entrances["acs_entrances"][0]["acs_entrance_id"].clone();
        assert!(entrance.is_string(), "no entrance: {entrances}");
        let made = self.ok(
            "/acs/credentials/create",
            &json!({
                "acs_user_id": user_id, "access_method": "card",
                "allowed_acs_entrance_ids": [entrance],
                "starts_at": STARTS_AT, "ends_at": ENDS_AT
            }),
        );
        let c = &made["acs_credential"];
        assert_eq!(c["acs_user_id"], user_id.as_str(), "{made}");
        assert_eq!(c["access_method"], "card", "{made}");
        assert_eq!(c["starts_at"], STARTS_AT, "{made}");
        assert_eq!(c["ends_at"], ENDS_AT, "{made}");
        assert_eq!(c["is_issued"], false, "{made}");
        c["acs_credential_id"]
            .as_str()
            .expect("acs_credential_id")
            .to_owned()
    }

    /// Polls `/acs/encoders/list` (the seeds' step 2) until `count` encoders are listed, all
    /// online (the bridge announces a reader before it has opened it); the list.
    pub fn encoders(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + STARTUP;
        loop {
            let list = self.ok("/acs/encoders/list", &json!({"acs_system_ids": [SYSTEM]}));
            let encoders = list["acs_encoders"].as_array().cloned().unwrap_or_default();
            if encoders.len() >= count && encoders.iter().all(is_online) {
                return encoders;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge's encoders did not appear: {list}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls until an encoder named `display_name` is listed online; its `acs_encoder_id`.
    pub fn encoder_named(&self, display_name: &str) -> String {
        let deadline = Instant::now() + STARTUP;
        loop {
            let list = self.ok("/acs/encoders/list", &json!({"acs_system_ids": [SYSTEM]}));
            let found = list["acs_encoders"].as_array().and_then(|all| {
                all.iter()
                    .find(|e| e["display_name"] == display_name && is_online(e))
                    .and_then(|e| e["acs_encoder_id"].as_str())
                    .map(str::to_owned)
            });
            if let Some(id) = found {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "encoder {display_name:?} did not appear: {list}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_attempt(&self, path: &str, body: &Value, action_type: &str) -> String {
        let made = self.ok(path, body);
        let a = &made["action_attempt"];
        assert_eq!(a["status"], "pending", "{made}");
        assert_eq!(a["action_type"], action_type, "{made}");
        assert_eq!(a["result"], Value::Null, "{made}");
        assert_eq!(a["error"], Value::Null, "{made}");
        a["action_attempt_id"]
            .as_str()
            .expect("action_attempt_id")
            .to_owned()
    }

    /// `/acs/encoders/encode_credential`: the pending attempt's id.
    pub fn encode(&self, encoder: &str, credential: &str) -> String {
        self.start_attempt(
            "/acs/encoders/encode_credential",
            &json!({"acs_credential_id": credential, "acs_encoder_id": encoder}),
            "ENCODE_CREDENTIAL",
        )
    }

    /// `/acs/encoders/scan_credential`: the pending attempt's id.
    pub fn scan(&self, encoder: &str) -> String {
        self.start_attempt(
            "/acs/encoders/scan_credential",
            &json!({"acs_encoder_id": encoder}),
            "SCAN_CREDENTIAL",
        )
    }

    /// Polls `/action_attempts/get` (the seeds' step 4) until the attempt is no longer
    /// pending; the attempt.
    pub fn finished(&self, attempt: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.ok(
                "/action_attempts/get",
                &json!({"action_attempt_id": attempt}),
            );
            let a = &got["action_attempt"];
            assert_eq!(a["action_attempt_id"], attempt, "{got}");
            if a["status"] != "pending" {
                return a.clone();
            }
            assert!(Instant::now() < deadline, "attempt still pending: {got}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls the attempt to `success`; its `result`.
    pub fn succeeded(&self, attempt: &str) -> Value {
        let a = self.finished(attempt);
        assert_eq!(a["status"], "success", "{a}");
        assert_eq!(a["error"], Value::Null, "{a}");
        a["result"].clone()
    }

    /// Polls the attempt to `error`; its `error` (`{type, message}`).
    pub fn failed(&self, attempt: &str) -> Value {
        let a = self.finished(attempt);
        assert_eq!(a["status"], "error", "{a}");
        assert_eq!(a["result"], Value::Null, "{a}");
        assert!(
            a["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error without a message: {a}"
        );
        a["error"].clone()
    }

    /// `/acs/credentials/get`: the credential.
    pub fn credential(&self, id: &str) -> Value {
        self.ok("/acs/credentials/get", &json!({"acs_credential_id": id}))["acs_credential"].clone()
    }

    /// `/events/list`: every event.
    pub fn events(&self) -> Vec<Value> {
        self.ok("/events/list", &json!({}))["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The events of `event_type` about credential `credential`.
    pub fn events_for(&self, event_type: &str, credential: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event_type"] == event_type && e["acs_credential_id"] == credential)
            .collect()
    }
}

/// Whether a listed encoder can take an attempt now: no errors, and the simulator's
/// `encoder_bridge_metadata` says its bridge is connected and reaches it.
pub fn is_online(encoder: &Value) -> bool {
    encoder["errors"].as_array().is_some_and(Vec::is_empty)
        && encoder["encoder_bridge_metadata"]["is_online"] == true
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP/1.1 POST (`Connection: close`): status and JSON body (`Null` when
/// the body is not JSON).
pub fn http_post(addr: SocketAddr, path: &str, token: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to the cloud");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.set_write_timeout(Some(WAIT)).expect("write timeout");
    exchange(&mut stream, &addr.to_string(), path, token, body)
}

/// [`http_post`] over TLS to `host` (at `addr`), trusting what `config` trusts.
pub fn https_post(
    addr: SocketAddr,
    host: &str,
    config: &std::sync::Arc<rustls::ClientConfig>,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, Value) {
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to the cloud");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.set_write_timeout(Some(WAIT)).expect("write timeout");
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).expect("server name");
    let client =
        rustls::ClientConnection::new(std::sync::Arc::clone(config), name).expect("TLS client");
    let mut tls = rustls::StreamOwned::new(client, stream);
    exchange(
        &mut tls,
        &format!("{host}:{}", addr.port()),
        path,
        token,
        body,
    )
}

/// One `Connection: close` POST on `stream`.
fn exchange(
    stream: &mut (impl Read + Write),
    host: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, Value) {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Accept: application/json\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            // A TLS peer may close without close_notify after `Connection: close`.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
                break;
            }
            Err(e) => panic!("read response (Connection: close): {e}"),
        }
    }
    let text = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response head");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked response not supported by this helper: {head}"
    );
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Appends a `[[encoders.pn532]]` entry to a bridge configuration written by
/// [`crate::daemon::Setup`].
pub fn add_pn532(config: &std::path::Path, device: &str, display_name: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(config)
        .expect("open config");
    write!(
        file,
        "\n[[encoders.pn532]]\ndevice = \"{device}\"\ndisplay_name = \"{display_name}\"\n"
    )
    .expect("append to config");
}

/// A field of a bridge JSON log line (tracing puts fields at the top or under `fields`).
pub fn log_field<'a>(line: &'a Value, name: &str) -> &'a Value {
    if line[name].is_null() {
        &line["fields"][name]
    } else {
        &line[name]
    }
}

/// Waits until the bridge logs "card operation failed" with `sub_code`; panics with the log
/// otherwise.
pub fn expect_failure_logged(bridge: &Bridge, error_type: &str, sub_code: &str) {
    let found = bridge.wait_log(WAIT, |v| {
        log_field(v, "message") == "card operation failed"
            && log_field(v, "error") == error_type
            && log_field(v, "sub_code") == sub_code
    });
    assert!(
        found.is_some(),
        "no \"card operation failed\" {error_type}/{sub_code} in the bridge log:\n{}",
        bridge.log().join("\n")
    );
}
