//! A scripted cloud double for daemon tests: a websocket server on 127.0.0.1 port 0 that checks
//! the bearer token and the subprotocol, and hands every accepted connection to the test, which
//! then drives it message by message ([`Conn::recv_type`], [`Conn::send`], [`Conn::drop_now`]).
//!
//! It implements nothing of the protocol on its own: the test is the cloud.

use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The subprotocol the bridge asks for.
pub const SUBPROTOCOL: &str = "encoder-bridge.v1";

/// One upgrade request, accepted or refused.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When it came.
    pub at: Instant,
    /// Whether the token matched.
    pub authorized: bool,
}

/// What the test can do to a connection.
enum Cmd {
    Send(Message),
    /// Drop the TCP connection without a close frame.
    Drop,
    /// Keep the TCP connection open but stop reading, answering and sending (half-open).
    Stall,
}

/// What the connection saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// A text frame, parsed (or `Value::String` with the raw text when it is not JSON).
    Text(Value),
    /// A close frame with its code.
    Close(Option<u16>),
    /// The connection ended.
    Ended,
}

/// The cloud double.
pub struct CloudDouble {
    addr: SocketAddr,
    conns: Receiver<Conn>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    _runtime: tokio::runtime::Runtime,
}

/// One accepted connection.
pub struct Conn {
    tx: UnboundedSender<Cmd>,
    rx: Receiver<(SystemTime, Seen)>,
    /// Every message received so far by [`Conn::recv`], in order.
    pub log: Vec<Value>,
    /// When the last message returned by [`Conn::recv`] arrived.
    pub last_at: SystemTime,
}

impl CloudDouble {
    /// Starts the double; it accepts upgrades carrying `Authorization: Bearer <token>`.
    #[allow(clippy::too_many_lines, clippy::result_large_err)] // the whole server in one place
    pub fn start(token: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (conn_tx, conns) = std::sync::mpsc::channel();
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&attempts);
        let expected = format!("Bearer {token}");
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // Small JSON messages both ways: Nagle would hold them for the peer's ACK.
                let _ = stream.set_nodelay(true);
                let expected = expected.clone();
                let log = Arc::clone(&log);
                let conn_tx = conn_tx.clone();
                tokio::spawn(async move {
                    let check = |request: &Request, mut response: Response| {
                        let authorized = request
                            .headers()
                            .get("Authorization")
                            .is_some_and(|v| v.as_bytes() == expected.as_bytes());
                        log.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(Attempt {
                                at: Instant::now(),
                                authorized,
                            });
                        if !authorized {
                            let mut refused = ErrorResponse::new(Some("bad token".into()));
                            *refused.status_mut() = StatusCode::UNAUTHORIZED;
                            return Err(refused);
                        }
                        let asked = request
                            .headers()
                            .get("Sec-WebSocket-Protocol")
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| v.split(',').any(|p| p.trim() == SUBPROTOCOL));
                        if asked {
                            response.headers_mut().insert(
                                "Sec-WebSocket-Protocol",
                                HeaderValue::from_static(SUBPROTOCOL),
                            );
                        }
                        Ok(response)
                    };
                    let config = WebSocketConfig::default()
                        .max_message_size(Some(4 << 20))
                        .max_frame_size(Some(4 << 20));
                    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(
                        stream,
                        check,
                        Some(config),
                    )
                    .await
                    else {
                        return;
                    };
                    let (cmd_tx, mut cmd_rx) = unbounded_channel::<Cmd>();
                    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
                    if conn_tx
                        .send(Conn {
                            tx: cmd_tx,
                            rx: seen_rx,
                            log: Vec::new(),
                            last_at: SystemTime::now(),
                        })
                        .is_err()
                    {
                        return;
                    }
                    let (mut sink, mut stream) = ws.split();
                    loop {
                        tokio::select! {
                            cmd = cmd_rx.recv() => match cmd {
                                Some(Cmd::Send(m)) => {
                                    if sink.send(m).await.is_err() {
                                        let _ = seen_tx.send((SystemTime::now(), Seen::Ended));
                                        return;
                                    }
                                }
                                Some(Cmd::Stall) => {
                                    // Nothing is read any more, so no ping is answered; the
                                    // socket stays open until the bridge gives up on it.
                                    let _keep = (sink, stream, seen_tx);
                                    std::future::pending::<()>().await;
                                    return;
                                }
                                Some(Cmd::Drop) | None => return,
                            },
                            frame = stream.next() => {
                                let now = SystemTime::now();
                                let seen = match frame {
                                    Some(Ok(Message::Text(t))) => Seen::Text(
                                        serde_json::from_str(t.as_str())
                                            .unwrap_or_else(|_| Value::String(t.to_string())),
                                    ),
                                    Some(Ok(Message::Close(f))) => {
                                        Seen::Close(f.map(|f| u16::from(f.code)))
                                    }
                                    Some(Ok(_)) => continue,
                                    Some(Err(_)) | None => Seen::Ended,
                                };
                                let end = seen == Seen::Ended;
                                if seen_tx.send((now, seen)).is_err() || end {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            conns,
            attempts,
            _runtime: runtime,
        }
    }

    /// `ws://127.0.0.1:PORT/bridge/v1`.
    pub fn url(&self) -> String {
        format!("ws://{}/bridge/v1", self.addr)
    }

    /// Waits for the next accepted connection.
    pub fn accept(&self, limit: Duration) -> Conn {
        self.conns
            .recv_timeout(limit)
            .expect("the bridge did not connect")
    }

    /// Waits for a connection; `None` after `limit`.
    pub fn try_accept(&self, limit: Duration) -> Option<Conn> {
        self.conns.recv_timeout(limit).ok()
    }

    /// Every upgrade request so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Conn {
    /// Sends a JSON message.
    pub fn send(&self, message: &Value) {
        self.send_raw(Message::text(message.to_string()));
    }

    /// Sends any frame.
    pub fn send_raw(&self, message: Message) {
        let _ = self.tx.send(Cmd::Send(message));
    }

    /// Drops the connection without a close frame (a network failure).
    pub fn drop_now(self) {
        let _ = self.tx.send(Cmd::Drop);
    }

    /// Stops reading and answering (pings included) while the TCP connection stays open: a
    /// half-open connection as the bridge sees it.
    pub fn stall(&self) {
        let _ = self.tx.send(Cmd::Stall);
    }

    /// The next event; panics after `limit`.
    pub fn next(&mut self, limit: Duration) -> Seen {
        match self.rx.recv_timeout(limit) {
            Ok((at, seen)) => {
                self.last_at = at;
                if let Seen::Text(v) = &seen {
                    self.log.push(v.clone());
                }
                seen
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "nothing from the bridge within {limit:?}; so far: {:#?}",
                self.log
            ),
            Err(RecvTimeoutError::Disconnected) => Seen::Ended,
        }
    }

    /// The next message; panics on a close or timeout.
    pub fn recv(&mut self, limit: Duration) -> Value {
        match self.next(limit) {
            Seen::Text(v) => v,
            other => panic!("expected a message, got {other:?}; so far: {:#?}", self.log),
        }
    }

    /// The next message of `kind`, skipping encoder status messages and pongs; panics on any
    /// other type.
    pub fn recv_type(&mut self, kind: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.recv(left);
            let got = message["type"].as_str().unwrap_or_default();
            if got == kind {
                return message;
            }
            assert!(
                matches!(
                    got,
                    "encoder_status" | "encoder_added" | "encoder_removed" | "renew"
                ),
                "expected {kind}, got {message}"
            );
        }
    }

    /// Whether nothing but status messages arrives within `limit`.
    pub fn quiet_for(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Err(RecvTimeoutError::Timeout) => return true,
                Ok((_, Seen::Text(v))) => {
                    self.log.push(v.clone());
                    if !matches!(
                        v["type"].as_str(),
                        Some("encoder_status" | "encoder_added" | "renew")
                    ) {
                        return false;
                    }
                }
                Ok(_) | Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Answers `hello` with `welcome` and returns the hello.
    pub fn handshake(&mut self, limit: Duration) -> Value {
        let hello = self.recv_type("hello", limit);
        self.send(&serde_json::json!({
            "type": "welcome",
            "protocol": 1,
            "server_time": rfc3339(SystemTime::now()),
        }));
        hello
    }
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(at: SystemTime) -> String {
    let d = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// `now + seconds` as RFC 3339.
pub fn in_secs(seconds: u64) -> String {
    rfc3339(SystemTime::now() + Duration::from_secs(seconds))
}
