//! One websocket session per bridge (docs/cloud-protocol.md, the cloud's side).
//!
//! The session parses each text frame, hands it to the [`Core`](super::attempts::Core) and
//! forwards what the core queues for this bridge. Replies that concern only the frame just
//! read (`protocol_error`) go straight back on the socket. A malformed or oversized message
//! is answered with `protocol_error` and the connection stays open; unknown types are logged
//! and ignored; a message beyond the 1 MiB transport limit closes the connection with 1009.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::Shared;
use super::attempts::{EncoderInfo, ResultMsg, log};

/// The websocket subprotocol.
pub const SUBPROTOCOL: &str = "encoder-bridge.v1";
/// The protocol version spoken.
pub(crate) const PROTOCOL: u64 = 1;
/// Largest message handled.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Transport limit: beyond it the connection is closed with 1009.
pub(crate) const MAX_TRANSPORT: usize = 1024 * 1024;

#[derive(Deserialize)]
struct Hello {
    protocol: u64,
    bridge_id: String,
    #[serde(default)]
    bridge_version: Option<String>,
    encoders: Vec<EncoderInfo>,
    /// `encoder-bridge doctor`'s connectivity probe (an extension of v1): answered with
    /// `welcome`, not registered.
    #[serde(default)]
    probe: bool,
}

#[derive(Deserialize)]
struct EncoderAdded {
    encoder: EncoderInfo,
}

#[derive(Deserialize)]
struct EncoderRef {
    encoder_id: String,
}

#[derive(Deserialize)]
struct EncoderStatus {
    encoder_id: String,
    #[serde(default)]
    online: Option<bool>,
    #[serde(default)]
    card_present: Option<bool>,
}

#[derive(Deserialize)]
struct AttemptRef {
    action_attempt_id: String,
}

#[derive(Deserialize)]
struct PeerProtocolError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    in_reply_to: Option<String>,
}

/// What the session does after a frame.
pub(crate) enum Next {
    /// Keep reading; send these replies first.
    Reply(Vec<String>),
    /// Send these replies and close.
    Close(Vec<String>),
}

fn protocol_error(message: &str, in_reply_to: Option<&str>) -> String {
    json!({"type": "protocol_error", "message": message, "in_reply_to": in_reply_to}).to_string()
}

fn fields<T: DeserializeOwned>(value: Value, kind: &str) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| protocol_error(&format!("{kind}: {e}"), Some(kind)))
}

/// Per-connection state of the session.
pub(crate) struct Session {
    shared: Arc<Shared>,
    conn_id: u64,
    /// Until `hello`: the sender to hand to the core.
    tx: Option<mpsc::UnboundedSender<String>>,
    bridge_id: Option<String>,
}

impl Session {
    /// A session for connection `conn_id`; `tx` is handed to the core at `hello` and receives
    /// what the core sends this bridge.
    pub(crate) fn new(
        shared: Arc<Shared>,
        conn_id: u64,
        tx: mpsc::UnboundedSender<String>,
    ) -> Self {
        Self {
            shared,
            conn_id,
            tx: Some(tx),
            bridge_id: None,
        }
    }

    /// Handles one text frame.
    pub(crate) fn handle_text(&mut self, text: &str) -> Next {
        if text.len() > MAX_MESSAGE {
            return Next::Reply(vec![protocol_error(
                &format!(
                    "message of {} bytes exceeds the {MAX_MESSAGE}-byte limit",
                    text.len()
                ),
                None,
            )]);
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return Next::Reply(vec![protocol_error(&format!("not JSON: {e}"), None)]),
        };
        let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
            return Next::Reply(vec![protocol_error(
                "expected a JSON object with a string field \"type\"",
                None,
            )]);
        };
        match self.dispatch(&kind, value) {
            Ok(next) => next,
            Err(reply) => Next::Reply(vec![reply]),
        }
    }

    fn dispatch(&mut self, kind: &str, value: Value) -> Result<Next, String> {
        let done = Ok(Next::Reply(Vec::new()));
        if kind == "hello" {
            return self.hello(fields(value, kind)?);
        }
        let known = matches!(
            kind,
            "encoder_added" | "encoder_removed" | "encoder_status" | "claim" | "renew" | "result"
        );
        if kind == "protocol_error" {
            let e: PeerProtocolError = fields(value, kind)?;
            log(&format!(
                "bridge {} reports a protocol error{}: {}",
                self.bridge_id.as_deref().unwrap_or("(before hello)"),
                e.in_reply_to
                    .map(|t| format!(" in reply to {t:?}"))
                    .unwrap_or_default(),
                e.message
            ));
            return done;
        }
        if !known {
            log(&format!("ignoring unknown message type {kind:?}"));
            return done;
        }
        let Some(bridge) = self.bridge_id.clone() else {
            return Err(protocol_error("expected \"hello\" first", Some(kind)));
        };
        let shared = Arc::clone(&self.shared);
        match kind {
            "encoder_added" => {
                let m: EncoderAdded = fields(value, kind)?;
                shared.with(|core, now| core.encoder_added(now, &bridge, m.encoder));
            }
            "encoder_removed" => {
                let m: EncoderRef = fields(value, kind)?;
                shared.with(|core, now| core.encoder_removed(now, &bridge, &m.encoder_id));
            }
            "encoder_status" => {
                let m: EncoderStatus = fields(value, kind)?;
                shared.with(|core, _| {
                    core.encoder_status(&bridge, &m.encoder_id, m.online, m.card_present);
                });
            }
            "claim" => {
                let m: AttemptRef = fields(value, kind)?;
                shared.with(|core, now| core.claim(now, &bridge, &m.action_attempt_id));
            }
            "renew" => {
                let m: AttemptRef = fields(value, kind)?;
                shared.with(|core, now| core.renew(now, &bridge, &m.action_attempt_id));
            }
            _ => {
                let m: ResultMsg = fields(value, kind)?;
                shared
                    .with(|core, now| core.result(now, &bridge, &m))
                    .map_err(|e| protocol_error(&e, Some(kind)))?;
            }
        }
        done
    }

    fn hello(&mut self, hello: Hello) -> Result<Next, String> {
        if self.bridge_id.is_some() {
            return Err(protocol_error(
                "\"hello\" was already received on this connection",
                Some("hello"),
            ));
        }
        if hello.protocol != PROTOCOL {
            return Ok(Next::Close(vec![protocol_error(
                &format!(
                    "protocol {} is not supported; this cloud speaks {PROTOCOL}",
                    hello.protocol
                ),
                Some("hello"),
            )]));
        }
        if hello.probe {
            log(&format!(
                "connectivity probe from bridge {}",
                hello.bridge_id
            ));
            let now = super::model::format_time(super::model::now_millis());
            return Ok(Next::Reply(vec![
                json!({"type": "welcome", "protocol": PROTOCOL, "server_time": now}).to_string(),
            ]));
        }
        let Some(tx) = self.tx.take() else {
            return Ok(Next::Close(Vec::new()));
        };
        log(&format!(
            "bridge {} connected (version {}, {} encoder(s))",
            hello.bridge_id,
            hello.bridge_version.as_deref().unwrap_or("?"),
            hello.encoders.len()
        ));
        let conn_id = self.conn_id;
        let bridge = hello.bridge_id.clone();
        self.shared
            .with(|core, now| core.hello(now, &bridge, conn_id, tx, hello.encoders));
        self.bridge_id = Some(hello.bridge_id);
        Ok(Next::Reply(Vec::new()))
    }
}

async fn send_all(socket: &mut WebSocket, replies: Vec<String>) -> bool {
    for reply in replies {
        if socket.send(Message::Text(reply.into())).await.is_err() {
            return false;
        }
    }
    true
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Runs one bridge connection until it closes, is replaced, or the server stops.
pub(crate) async fn session(
    shared: Arc<Shared>,
    mut socket: WebSocket,
    mut shutdown: watch::Receiver<bool>,
) {
    let conn_id = shared.next_connection_id();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut session = Session::new(Arc::clone(&shared), conn_id, tx);
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let next = match incoming {
                    None | Some(Ok(Message::Close(_))) => break,
                    Some(Err(e)) => {
                        let text = e.to_string();
                        log(&format!("bridge connection failed: {text}"));
                        // tungstenite's capacity error (beyond the 1 MiB transport limit).
                        if text.contains("limit exceeded") {
                            close(&mut socket, 1009, "message too big").await;
                        }
                        break;
                    }
                    Some(Ok(Message::Text(text))) => session.handle_text(text.as_str()),
                    Some(Ok(Message::Binary(_))) => Next::Reply(vec![protocol_error(
                        "binary frames are not part of the protocol; send JSON text",
                        None,
                    )]),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Next::Reply(Vec::new()),
                };
                match next {
                    Next::Reply(replies) => {
                        if !send_all(&mut socket, replies).await {
                            break;
                        }
                    }
                    Next::Close(replies) => {
                        send_all(&mut socket, replies).await;
                        close(&mut socket, 1002, "unsupported protocol").await;
                        break;
                    }
                }
            }
            outgoing = rx.recv(), if session.tx.is_none() => {
                let Some(text) = outgoing else {
                    close(&mut socket, 1000, "replaced by a newer connection of this bridge").await;
                    break;
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            _ = shutdown.changed() => {
                close(&mut socket, 1001, "server stopping").await;
                break;
            }
        }
    }
    if let Some(bridge) = session.bridge_id {
        shared.with(|core, now| core.disconnect(now, &bridge, conn_id));
    }
}
