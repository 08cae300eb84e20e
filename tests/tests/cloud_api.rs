//! `encoder-sim cloud`: the seeds' HTTP flows as real requests, with a fake bridge speaking
//! docs/cloud-protocol.md over a real websocket (a JSON script: hello, claim, result).
//!
//! The server runs in-process on port 0 (`encoder_sim::cloud::run`); one test runs the binary
//! to check the CLI, SIGTERM and `--state` across a restart.

use std::net::SocketAddr;
use std::time::Duration;

use encoder_sim::cloud::{self, CloudOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const TOKEN: &str = "test-token";
const SYSTEM: &str = "11111111-1111-1111-1111-111111111111";
const ENCODER: &str = "5a1d6f0e-2c7b-4f57-9a36-0f3b8d9e2c11";
/// Nothing here should take long: a missing message fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), cloud::CloudError>>,
}

impl Server {
    async fn start(options: CloudOptions) -> Self {
        let listener = cloud::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(cloud::run(listener, options, async {
            let _ = stopped.await;
        }));
        Self { addr, stop, task }
    }

    async fn default() -> Self {
        Self::start(options()).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        http(self.addr, path, Some(TOKEN), &body.to_string()).await
    }

    /// POST expecting 200 and `"ok": true`.
    async fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, reply) = self.post(path, body).await;
        assert_eq!(status, 200, "{path}: {reply}");
        assert_eq!(reply["ok"], true, "{path}: {reply}");
        reply
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

fn options() -> CloudOptions {
    CloudOptions {
        token: TOKEN.into(),
        ..CloudOptions::default()
    }
}

/// A minimal HTTP/1.1 POST: status and JSON body.
async fn http(addr: SocketAddr, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

struct Bridge {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

fn hello(bridge_id: &str, encoders: &[&str]) -> Value {
    let encoders: Vec<Value> = encoders
        .iter()
        .map(|id| {
            json!({"encoder_id": id, "display_name": "Front Desk", "kind": "pcsc",
                   "reader": "ACS ACR122U PICC Interface 00 00", "online": true, "card_present": false})
        })
        .collect();
    json!({"type": "hello", "protocol": 1, "bridge_id": bridge_id, "bridge_version": "0.1.0", "encoders": encoders})
}

async fn ws_connect(
    addr: SocketAddr,
    token: &str,
    subprotocol: bool,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, tungstenite::Error> {
    let mut request = format!("ws://{addr}/bridge/v1")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    if subprotocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "encoder-bridge.v1".parse().unwrap(),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, response)| {
            assert_eq!(
                response.headers().get("sec-websocket-protocol").unwrap(),
                "encoder-bridge.v1"
            );
            ws
        })
}

impl Bridge {
    /// Connects, says hello, and waits for `welcome`.
    async fn connect(addr: SocketAddr, bridge_id: &str, encoders: &[&str]) -> Self {
        let ws = ws_connect(addr, TOKEN, true).await.unwrap();
        let mut bridge = Self { ws };
        bridge.send(&hello(bridge_id, encoders)).await;
        let welcome = bridge.expect("welcome").await;
        assert_eq!(welcome["protocol"], 1);
        bridge
    }

    async fn send(&mut self, message: &Value) {
        self.send_text(message.to_string()).await;
    }

    async fn send_text(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no message from the cloud")
                .expect("connection closed")
                .unwrap();
            if let Message::Text(text) = frame {
                return serde_json::from_str(text.as_str()).unwrap();
            }
        }
    }

    /// The next message, which must be of this type.
    async fn expect(&mut self, kind: &str) -> Value {
        let message = self.recv().await;
        assert_eq!(message["type"], kind, "{message}");
        message
    }

    async fn claim(&mut self, attempt: &str) -> Value {
        self.send(&json!({"type": "claim", "action_attempt_id": attempt}))
            .await;
        self.recv().await
    }

    async fn result(&mut self, attempt: &str, action_type: &str, status: &str, body: Value) {
        let (result, error) = if status == "success" {
            (body, Value::Null)
        } else {
            (Value::Null, body)
        };
        self.send(&json!({
            "type": "result", "action_attempt_id": attempt, "action_type": action_type,
            "encoder_id": ENCODER, "status": status, "finished_at": "2024-12-01T15:00:03.120Z",
            "result": result, "error": error,
        }))
        .await;
        let ack = self.expect("result_ack").await;
        assert_eq!(ack["action_attempt_id"], attempt);
    }
}

/// Creates the seed's user and credential; the credential's id.
async fn seed_credential(server: &Server) -> String {
    let user = server
        .ok(
            "/acs/users/create",
            &json!({"acs_system_id": SYSTEM, "full_name": "Jane Doe", "email_address": "jane@example.com"}),
        )
        .await;
    let user_id = user["acs_user"]["acs_user_id"].as_str().unwrap();
    let entrances = server.ok("/acs/entrances/list", &json!({})).await;
    let room = entrances["acs_entrances"][0]["acs_entrance_id"].clone();
    let made = server
        .ok(
            "/acs/credentials/create",
            &json!({
                "acs_user_id": user_id, "access_method": "card",
                "allowed_acs_entrance_ids": [room],
                "starts_at": "2024-12-01T15:00:00.000Z", "ends_at": "2024-12-04T12:00:00.000Z"
            }),
        )
        .await;
    let credential = &made["acs_credential"];
    assert_eq!(credential["acs_user_id"], user_id);
    assert_eq!(credential["access_method"], "card");
    assert_eq!(credential["starts_at"], "2024-12-01T15:00:00.000Z");
    assert_eq!(credential["ends_at"], "2024-12-04T12:00:00.000Z");
    assert_eq!(credential["is_issued"], false);
    credential["acs_credential_id"].as_str().unwrap().to_owned()
}

async fn start_attempt(server: &Server, path: &str, body: &Value) -> String {
    let made = server.ok(path, body).await;
    let attempt = &made["action_attempt"];
    assert_eq!(attempt["status"], "pending");
    assert_eq!(attempt["result"], Value::Null);
    assert_eq!(attempt["error"], Value::Null);
    attempt["action_attempt_id"].as_str().unwrap().to_owned()
}

async fn encode(server: &Server, credential: &str) -> String {
    start_attempt(
        server,
        "/acs/encoders/encode_credential",
        &json!({"acs_credential_id": credential, "acs_encoder_id": ENCODER}),
    )
    .await
}

async fn scan(server: &Server) -> String {
    start_attempt(
        server,
        "/acs/encoders/scan_credential",
        &json!({"acs_encoder_id": ENCODER}),
    )
    .await
}

async fn attempt(server: &Server, id: &str) -> Value {
    server
        .ok("/action_attempts/get", &json!({"action_attempt_id": id}))
        .await["action_attempt"]
        .clone()
}

fn encoded(credential: &str, uid: &str) -> Value {
    json!({
        "acs_credential_id": credential, "card_number": "4009613812", "is_issued": true,
        "issued_at": "2024-12-01T15:00:03.100Z", "starts_at": "2024-12-01T15:00:00.000Z",
        "ends_at": "2024-12-04T12:00:00.000Z", "card": {"uid": uid, "type": "classic-1k"},
        "written": {"format_version": 1, "key_version": 1, "issue_counter": 1, "sequence": 3, "first_encode": true}
    })
}

/// Runs an encode through the bridge: offer, claim, grant, result.
async fn encode_through(
    server: &Server,
    bridge: &mut Bridge,
    credential: &str,
    uid: &str,
) -> String {
    let id = encode(server, credential).await;
    let offer = bridge.expect("attempt_available").await;
    assert_eq!(offer["action_attempt_id"], id.as_str());
    let grant = bridge.claim(&id).await;
    assert_eq!(grant["type"], "claim_granted");
    bridge
        .result(
            &id,
            "ENCODE_CREDENTIAL",
            "success",
            encoded(credential, uid),
        )
        .await;
    id
}

async fn event_types(server: &Server) -> Vec<String> {
    let events = server.ok("/events/list", &json!({})).await;
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn seed_encode_flow() {
    let server = Server::default().await;
    let systems = server.ok("/acs/systems/list", &json!({})).await;
    assert_eq!(systems["acs_systems"][0]["acs_system_id"], SYSTEM);
    let credential = seed_credential(&server).await;

    let mut bridge = Bridge::connect(server.addr, "bridge-1", &[ENCODER]).await;
    let encoders = server
        .ok("/acs/encoders/list", &json!({"acs_system_ids": [SYSTEM]}))
        .await;
    let encoder = &encoders["acs_encoders"][0];
    assert_eq!(encoder["acs_encoder_id"], ENCODER);
    assert_eq!(encoder["display_name"], "Front Desk");
    assert_eq!(encoder["acs_system_id"], SYSTEM);
    assert_eq!(encoder["errors"], json!([]));
    assert_eq!(encoder["encoder_bridge_metadata"]["is_online"], true);
    assert_eq!(
        systems["acs_systems"][0]["errors"][0]["error_code"], "bridge_disconnected",
        "no bridge yet: {systems}"
    );
    let now_systems = server.ok("/acs/systems/list", &json!({})).await;
    assert_eq!(now_systems["acs_systems"][0]["errors"], json!([]));
    let got = server
        .ok("/acs/encoders/get", &json!({"acs_encoder_id": ENCODER}))
        .await;
    assert_eq!(got["acs_encoder"]["acs_encoder_id"], ENCODER);

    let id = encode(&server, &credential).await;
    let offer = bridge.expect("attempt_available").await;
    assert_eq!(offer["action_type"], "ENCODE_CREDENTIAL");
    assert_eq!(offer["encoder_id"], ENCODER);
    assert_eq!(
        offer["credential"]["acs_credential_id"],
        credential.as_str()
    );
    assert_eq!(offer["credential"]["is_issued"], false);
    assert_eq!(offer["credential"]["ends_at"], "2024-12-04T12:00:00.000Z");
    assert_eq!(attempt(&server, &id).await["status"], "pending");

    let grant = bridge.claim(&id).await;
    assert_eq!(grant["type"], "claim_granted");
    assert_eq!(grant["deadline"], offer["expires_at"]);
    bridge
        .send(&json!({"type": "renew", "action_attempt_id": id}))
        .await;
    bridge.expect("lease_renewed").await;
    bridge
        .result(
            &id,
            "ENCODE_CREDENTIAL",
            "success",
            encoded(&credential, "04A1B2C3"),
        )
        .await;

    let done = attempt(&server, &id).await;
    assert_eq!(done["status"], "success");
    assert_eq!(done["action_type"], "ENCODE_CREDENTIAL");
    assert_eq!(done["error"], Value::Null);
    assert_eq!(done["result"]["acs_credential_id"], credential.as_str());
    assert_eq!(done["result"]["card_number"], "4009613812");
    assert_eq!(done["result"]["is_issued"], true);
    assert_eq!(done["result"]["issued_at"], "2024-12-01T15:00:03.100Z");

    let got = server
        .ok(
            "/acs/credentials/get",
            &json!({"acs_credential_id": credential}),
        )
        .await;
    let c = &got["acs_credential"];
    assert_eq!(c["is_issued"], true);
    assert_eq!(c["card_number"], "4009613812");
    assert_eq!(c["issued_at"], "2024-12-01T15:00:03.100Z");
    assert_eq!(c["starts_at"], "2024-12-01T15:00:00.000Z");
    let list = server.ok("/acs/credentials/list", &json!({})).await;
    assert_eq!(list["acs_credentials"].as_array().unwrap().len(), 1);

    assert_eq!(
        event_types(&server).await,
        ["acs_encoder.added", "acs_credential.issued"]
    );
    let issued = server
        .ok(
            "/events/list",
            &json!({"event_type": "acs_credential.issued"}),
        )
        .await;
    let event = &issued["events"][0];
    assert_eq!(event["acs_credential_id"], credential.as_str());
    assert_eq!(event["acs_system_id"], SYSTEM);
    assert_eq!(event["event_description"], "An ACS credential was issued.");

    // Re-encoding the same card is a reissue; the credential on another card is refused.
    encode_through(&server, &mut bridge, &credential, "04a1b2c3").await;
    assert_eq!(
        event_types(&server).await.last().unwrap(),
        "acs_credential.reissued"
    );
    let other = encode_through(&server, &mut bridge, &credential, "DEADBEEF").await;
    let refused = attempt(&server, &other).await;
    assert_eq!(refused["status"], "error");
    assert_eq!(refused["error"]["type"], "credential_cannot_be_reissued");
    server.shutdown().await;
}

#[tokio::test]
async fn seed_scan_flow_and_warnings() {
    let server = Server::default().await;
    let credential = seed_credential(&server).await;
    let mut bridge = Bridge::connect(server.addr, "bridge-1", &[ENCODER]).await;
    encode_through(&server, &mut bridge, &credential, "04A1B2C3").await;
    let card = |ends_at: &str, id: &str| {
        json!({
            "acs_credential_on_encoder": {
                "acs_credential_id": id, "card_number": "4009613812", "is_issued": true,
                "starts_at": "2024-12-01T15:00:00.000Z", "ends_at": ends_at,
                "issue_counter": 1, "key_version": 1
            },
            "card": {"uid": "04A1B2C3", "type": "classic-1k", "state": "ours"}
        })
    };
    let scan_with = async |bridge: &mut Bridge, result: Value| {
        let id = scan(&server).await;
        let offer = bridge.expect("attempt_available").await;
        assert_eq!(offer["action_type"], "SCAN_CREDENTIAL");
        assert_eq!(offer["credential"], Value::Null);
        assert_eq!(bridge.claim(&id).await["type"], "claim_granted");
        bridge
            .result(&id, "SCAN_CREDENTIAL", "success", result)
            .await;
        let done = attempt(&server, &id).await;
        assert_eq!(done["status"], "success");
        done["result"].clone()
    };

    // In sync.
    let result = scan_with(&mut bridge, card("2024-12-04T12:00:00.000Z", &credential)).await;
    assert_eq!(result["warnings"], json!([]));
    assert_eq!(
        result["acs_credential_on_seam"]["acs_credential_id"],
        credential.as_str()
    );
    assert_eq!(
        result["acs_credential_on_encoder"]["card_number"],
        "4009613812"
    );

    // The seed's case: ends_at changed on the server after encoding.
    let updated = server
        .ok(
            "/acs/credentials/update",
            &json!({"acs_credential_id": credential, "ends_at": "2024-10-30T19:00:00.000Z", "starts_at": "2024-10-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        updated["acs_credential"]["ends_at"],
        "2024-10-30T19:00:00.000Z"
    );
    let result = scan_with(&mut bridge, card("2024-12-04T12:00:00.000Z", &credential)).await;
    let warning = &result["warnings"][0];
    assert_eq!(
        warning["warning_code"],
        "acs_credential_on_encoder_out_of_sync"
    );
    assert_eq!(
        warning["warning_message"],
        "The following properties are out of sync between acs_credential_on_encoder and acs_credential_on_seam: starts_at, ends_at"
    );
    assert_eq!(
        result["acs_credential_on_seam"]["ends_at"],
        "2024-10-30T19:00:00.000Z"
    );

    // A card whose credential the server does not know.
    let result = scan_with(
        &mut bridge,
        card(
            "2024-12-04T12:00:00.000Z",
            "99999999-9999-9999-9999-999999999999",
        ),
    )
    .await;
    assert_eq!(
        result["warnings"][0]["warning_code"],
        "acs_credential_on_seam_not_found"
    );
    assert_eq!(result["acs_credential_on_seam"], Value::Null);

    // A blank card.
    let blank = json!({"acs_credential_on_encoder": null, "card": {"uid": "01020304", "type": "classic-1k", "state": "blank"}});
    let result = scan_with(&mut bridge, blank).await;
    assert_eq!(result["acs_credential_on_encoder"], Value::Null);
    assert_eq!(result["acs_credential_on_seam"], Value::Null);
    assert_eq!(result["warnings"], json!([]));
    server.shutdown().await;
}

#[tokio::test]
async fn seed_error_tables_via_bridge_results() {
    let server = Server::default().await;
    let credential = seed_credential(&server).await;
    let mut bridge = Bridge::connect(server.addr, "bridge-1", &[ENCODER]).await;
    let cases = [
        (
            "ENCODE_CREDENTIAL",
            "no_card_on_encoder",
            "No card was placed on the encoder.",
        ),
        (
            "ENCODE_CREDENTIAL",
            "incompatible_card_format",
            "A card with an incompatible card format was placed on the encoder.",
        ),
        (
            "ENCODE_CREDENTIAL",
            "uncategorized_error",
            "Any other encoding error.",
        ),
        (
            "SCAN_CREDENTIAL",
            "no_card_on_encoder",
            "No card was placed on the encoder.",
        ),
        (
            "SCAN_CREDENTIAL",
            "uncategorized_error",
            "Any other encoding error.",
        ),
    ];
    for (action_type, error_type, message) in cases {
        let id = if action_type == "ENCODE_CREDENTIAL" {
            encode(&server, &credential).await
        } else {
            scan(&server).await
        };
        bridge.expect("attempt_available").await;
        assert_eq!(bridge.claim(&id).await["type"], "claim_granted");
        let error =
            json!({"type": error_type, "message": message, "sub_code": "test", "detail": "step 1"});
        bridge.result(&id, action_type, "error", error).await;
        let done = attempt(&server, &id).await;
        assert_eq!(done["status"], "error", "{done}");
        assert_eq!(done["action_type"], action_type);
        assert_eq!(done["result"], Value::Null);
        assert_eq!(
            done["error"],
            json!({"type": error_type, "message": message})
        );
    }
    // Nothing was issued.
    let got = server
        .ok(
            "/acs/credentials/get",
            &json!({"acs_credential_id": credential}),
        )
        .await;
    assert_eq!(got["acs_credential"]["is_issued"], false);
    server.shutdown().await;
}

#[tokio::test]
async fn second_bridge_claim_is_refused() {
    let server = Server::default().await;
    let credential = seed_credential(&server).await;
    let mut first = Bridge::connect(server.addr, "bridge-1", &[ENCODER]).await;
    let id = encode(&server, &credential).await;
    first.expect("attempt_available").await;
    assert_eq!(first.claim(&id).await["type"], "claim_granted");

    // A second bridge reporting the same encoder is offered the attempt but refused.
    let mut second = Bridge::connect(server.addr, "bridge-2", &[ENCODER]).await;
    let refused = second.claim(&id).await;
    assert_eq!(refused["type"], "claim_refused");
    assert_eq!(refused["reason"], "already_claimed");
    // A bridge without the encoder, and an unknown attempt.
    let mut third = Bridge::connect(server.addr, "bridge-3", &["another-encoder"]).await;
    assert_eq!(third.claim(&id).await["reason"], "not_your_encoder");
    assert_eq!(
        third.claim("00000000-0000-0000-0000-00000000dead").await["reason"],
        "unknown_attempt"
    );
    // The holder's result still lands.
    first
        .result(
            &id,
            "ENCODE_CREDENTIAL",
            "success",
            encoded(&credential, "04A1B2C3"),
        )
        .await;
    assert_eq!(attempt(&server, &id).await["status"], "success");
    server.shutdown().await;
}

#[tokio::test]
async fn result_resent_after_reconnect_is_applied_once() {
    let server = Server::default().await;
    let credential = seed_credential(&server).await;
    let mut bridge = Bridge::connect(server.addr, "bridge-1", &[ENCODER]).await;
    let id = encode(&server, &credential).await;
    bridge.expect("attempt_available").await;
    assert_eq!(bridge.claim(&id).await["type"], "claim_granted");
    drop(bridge);

    // Back again: the held attempt is offered again after welcome; the result goes out.
    let mut bridge = Bridge::connect(server.addr, "bridge-1", &[ENCODER]).await;
    let offer = bridge.expect("attempt_available").await;
    assert_eq!(offer["action_attempt_id"], id.as_str());
    let result = encoded(&credential, "04A1B2C3");
    bridge
        .result(&id, "ENCODE_CREDENTIAL", "success", result.clone())
        .await;
    bridge.ws.close(None).await.unwrap();

    // The ack was "lost": the bridge resends after the next reconnect.
    let mut bridge = Bridge::connect(server.addr, "bridge-1", &[ENCODER]).await;
    bridge
        .result(&id, "ENCODE_CREDENTIAL", "success", result.clone())
        .await;
    bridge
        .result(&id, "ENCODE_CREDENTIAL", "success", result)
        .await;
    let issued = event_types(&server)
        .await
        .iter()
        .filter(|t| t.starts_with("acs_credential."))
        .count();
    assert_eq!(issued, 1, "the result was applied more than once");
    assert_eq!(attempt(&server, &id).await["status"], "success");
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_token_is_refused_on_http_and_websocket() {
    let server = Server::default().await;
    for token in [None, Some("wrong")] {
        let (status, reply) = http(server.addr, "/acs/systems/list", token, "{}").await;
        assert_eq!(status, 401);
        assert_eq!(reply["ok"], false);
        assert_eq!(reply["error"]["type"], "unauthorized");
    }
    match ws_connect(server.addr, "wrong", true).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    // The right token without the subprotocol is refused too.
    match ws_connect(server.addr, TOKEN, false).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let server = Server::default().await;
    let (status, reply) = http(server.addr, "/acs/users/create", Some(TOKEN), "{not json").await;
    assert_eq!(status, 400);
    assert_eq!(reply["error"]["type"], "invalid_input");
    assert_eq!(reply["ok"], false);
    let (status, reply) = server
        .post("/acs/credentials/create", &json!({"access_method": "card"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("acs_user_id")
    );
    let (status, reply) = server
        .post(
            "/acs/credentials/get",
            &json!({"acs_credential_id": "nope"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(reply["error"]["type"], "acs_credential_not_found");
    let (status, _) = server
        .post(
            "/acs/encoders/scan_credential",
            &json!({"acs_encoder_id": "nope"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server.post("/no/such/endpoint", &json!({})).await;
    assert_eq!(status, 404);
    let credential = seed_credential(&server).await;
    let (status, reply) = server
        .post(
            "/acs/credentials/update",
            &json!({"acs_credential_id": credential, "ends_at": "next tuesday"}),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_messages_get_protocol_errors_and_the_connection_stays() {
    let server = Server::default().await;
    let mut ws = Bridge {
        ws: ws_connect(server.addr, TOKEN, true).await.unwrap(),
    };
    ws.send(&json!({"type": "claim", "action_attempt_id": "x"}))
        .await;
    assert_eq!(ws.expect("protocol_error").await["in_reply_to"], "claim");
    // doctor's probe: welcome, but no bridge is registered.
    let mut probe = hello("bridge-probe", &["probe-encoder"]);
    probe["probe"] = json!(true);
    ws.send(&probe).await;
    ws.expect("welcome").await;
    let encoders = server.ok("/acs/encoders/list", &json!({})).await;
    assert_eq!(encoders["acs_encoders"], json!([]));
    ws.send(&hello("bridge-1", &[ENCODER])).await;
    ws.expect("welcome").await;

    ws.send_text("not json".into()).await;
    ws.expect("protocol_error").await;
    ws.send(&json!({"no_type": true})).await;
    ws.expect("protocol_error").await;
    ws.send(&json!({"type": "claim"})).await;
    let error = ws.expect("protocol_error").await;
    assert_eq!(error["in_reply_to"], "claim");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("action_attempt_id")
    );
    ws.send(&json!({"type": "claim", "action_attempt_id": "x", "pad": "a".repeat(70_000)}))
        .await;
    assert!(
        ws.expect("protocol_error").await["message"]
            .as_str()
            .unwrap()
            .contains("limit")
    );
    ws.ws
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    ws.expect("protocol_error").await;
    // Unknown types are ignored: the next answer is the claim's.
    ws.send(&json!({"type": "future_thing", "x": 1})).await;
    let refused = ws.claim("00000000-0000-0000-0000-00000000dead").await;
    assert_eq!(refused["type"], "claim_refused");
    assert_eq!(refused["reason"], "unknown_attempt");
    // Beyond the 1 MiB transport limit the cloud closes with 1009.
    ws.send_text("x".repeat(1_100_000)).await;
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match ws.ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(1009));
    server.shutdown().await;
}

#[tokio::test]
async fn attempt_nobody_takes_expires() {
    let server = Server::start(CloudOptions {
        attempt_timeout: Duration::from_millis(300),
        ..options()
    })
    .await;
    let mut bridge = Bridge::connect(server.addr, "bridge-1", &[ENCODER]).await;
    let id = scan(&server).await;
    bridge.expect("attempt_available").await;
    // The bridge does not claim; the cloud cancels at the deadline.
    let cancelled = bridge.expect("attempt_cancelled").await;
    assert_eq!(cancelled["action_attempt_id"], id.as_str());
    assert_eq!(cancelled["reason"], "expired");
    let done = attempt(&server, &id).await;
    assert_eq!(done["status"], "error");
    assert_eq!(done["error"]["type"], "action_attempt_expired");
    let refused = bridge.claim(&id).await;
    assert_eq!(refused["reason"], "expired");
    server.shutdown().await;
}

#[tokio::test]
async fn attempt_expires_when_no_bridge_is_connected() {
    let server = Server::start(CloudOptions {
        no_bridge_grace: Duration::from_millis(200),
        ..options()
    })
    .await;
    let mut bridge = Bridge::connect(server.addr, "bridge-1", &[ENCODER]).await;
    bridge.ws.close(None).await.unwrap();
    // Wait for the server to see the close: the encoder is no longer online, and the system
    // carries Seam's `bridge_disconnected` error.
    let encoder = tokio::time::timeout(WAIT, async {
        loop {
            let got = server
                .ok("/acs/encoders/get", &json!({"acs_encoder_id": ENCODER}))
                .await;
            if got["acs_encoder"]["encoder_bridge_metadata"]["is_online"] == false {
                return got;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let metadata = &encoder["acs_encoder"]["encoder_bridge_metadata"];
    assert_eq!(metadata["bridge_connected"], false, "{encoder}");
    assert_eq!(metadata["bridge_id"], "bridge-1", "{encoder}");
    // Seam's schema lists one encoder error only (`acs_encoder_removed`).
    assert_eq!(encoder["acs_encoder"]["errors"], json!([]), "{encoder}");
    let systems = server.ok("/acs/systems/list", &json!({})).await;
    let error = &systems["acs_systems"][0]["errors"][0];
    assert_eq!(error["error_code"], "bridge_disconnected", "{systems}");
    assert!(error["created_at"].is_string(), "{systems}");
    let id = scan(&server).await;
    let done = tokio::time::timeout(WAIT, async {
        loop {
            let a = attempt(&server, &id).await;
            if a["status"] != "pending" {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(done["error"]["type"], "action_attempt_expired");
    server.shutdown().await;
}

#[tokio::test]
async fn webhook_receives_events() {
    let hook = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = hook.local_addr().unwrap();
    let (tx, mut received) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        loop {
            let (stream, _) = hook.accept().await.unwrap();
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await.unwrap();
            let mut stream = reader.into_inner();
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            tx.send(serde_json::from_slice(&body).unwrap()).unwrap();
        }
    });
    let server = Server::start(CloudOptions {
        webhook_url: Some(format!("http://{hook_addr}/hooks/seam")),
        ..options()
    })
    .await;
    let credential = seed_credential(&server).await;
    let mut bridge = Bridge::connect(server.addr, "bridge-1", &[ENCODER]).await;
    encode_through(&server, &mut bridge, &credential, "04A1B2C3").await;
    bridge
        .send(&json!({"type": "encoder_removed", "encoder_id": ENCODER}))
        .await;
    let mut next = async || {
        tokio::time::timeout(WAIT, received.recv())
            .await
            .unwrap()
            .unwrap()
    };
    let added = next().await;
    assert_eq!(added["event_type"], "acs_encoder.added");
    assert_eq!(added["acs_encoder_id"], ENCODER);
    let issued = next().await;
    assert_eq!(issued["event_type"], "acs_credential.issued");
    assert_eq!(issued["acs_credential_id"], credential.as_str());
    assert!(issued["event_id"].is_string());
    let removed = next().await;
    assert_eq!(removed["event_type"], "acs_encoder.removed");
    let list = server.ok("/acs/encoders/list", &json!({})).await;
    assert_eq!(
        list["acs_encoders"][0]["errors"][0]["error_code"],
        "acs_encoder_removed"
    );
    server.shutdown().await;
}

/// A child process killed if the test fails before stopping it.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary: prints the address, keeps `--state` across a SIGTERM and a restart, and
/// across a SIGKILL.
#[tokio::test]
async fn binary_state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("cloud-state");
    let start = async || {
        let mut child = Child(
            std::process::Command::new(encoder_tests::binary("encoder-sim"))
                .args([
                    "cloud",
                    "--listen",
                    "127.0.0.1:0",
                    "--token",
                    TOKEN,
                    "--state",
                ])
                .arg(&state)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let addr = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                if let Some(addr) = line.unwrap().strip_prefix("listening on http://") {
                    return addr.parse::<SocketAddr>().unwrap();
                }
            }
            panic!("encoder-sim cloud exited before listening");
        });
        let addr = tokio::time::timeout(WAIT, addr).await.unwrap().unwrap();
        (child, addr)
    };
    let stop = async |mut child: Child| {
        let pid = child.0.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::task::spawn_blocking(move || child.0.wait().unwrap());
        let status = tokio::time::timeout(WAIT, status).await.unwrap().unwrap();
        assert!(status.success(), "{status}");
    };

    let (child, addr) = start().await;
    assert_ne!(addr.port(), 0);
    let server = Server {
        addr,
        stop: oneshot::channel().0,
        task: tokio::spawn(async { Ok(()) }),
    };
    let credential = seed_credential(&server).await;
    let mut bridge = Bridge::connect(addr, "bridge-1", &[ENCODER]).await;
    encode_through(&server, &mut bridge, &credential, "04A1B2C3").await;
    let pending = scan(&server).await;
    drop(bridge);
    stop(child).await;

    let (child, addr) = start().await;
    let server = Server { addr, ..server };
    let got = server
        .ok(
            "/acs/credentials/get",
            &json!({"acs_credential_id": credential}),
        )
        .await;
    assert_eq!(got["acs_credential"]["is_issued"], true);
    assert_eq!(got["acs_credential"]["card_number"], "4009613812");
    let encoders = server.ok("/acs/encoders/list", &json!({})).await;
    assert_eq!(encoders["acs_encoders"][0]["acs_encoder_id"], ENCODER);
    assert_eq!(
        event_types(&server).await,
        ["acs_encoder.added", "acs_credential.issued"]
    );
    // The pending scan is offered to the bridge when it comes back.
    let mut bridge = Bridge::connect(addr, "bridge-1", &[ENCODER]).await;
    let offer = bridge.expect("attempt_available").await;
    assert_eq!(offer["action_attempt_id"], pending.as_str());

    // SIGKILL right after the answers: what a client was told is on disk (each change is
    // committed before it is answered).
    let second = seed_credential(&server).await;
    encode_through(&server, &mut bridge, &second, "04A1B2C4").await;
    drop(bridge);
    let mut child = child;
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let (child, addr) = start().await;
    let server = Server { addr, ..server };
    let got = server
        .ok(
            "/acs/credentials/get",
            &json!({"acs_credential_id": second}),
        )
        .await;
    assert_eq!(got["acs_credential"]["is_issued"], true);
    assert_eq!(
        event_types(&server).await,
        [
            "acs_encoder.added",
            "acs_credential.issued",
            "acs_credential.issued"
        ]
    );
    stop(child).await;
}
