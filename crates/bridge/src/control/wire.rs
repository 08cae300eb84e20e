//! The control protocol's messages (docs/control-protocol.md): one JSON object per line,
//! each carrying `"v": 1`. Only this module (and its tests) spells them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::VERSION;

/// What a client asks (`"op"` names it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// The daemon's state: cloud link, encoders, attempts, outbox.
    Status,
    /// Scan the card on an encoder (queued on its runner like a cloud attempt).
    Scan {
        /// The encoder: its id, PC/SC reader name or PN532 device path; `None`: the only one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoder: Option<String>,
    },
    /// Encode a credential onto the card on an encoder.
    Encode {
        /// As for [`Op::Scan`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoder: Option<String>,
        /// The credential as `encoder-bridge encode --credential` reads it.
        credential: Value,
    },
}

impl Op {
    /// The `op` name (for the log: a credential is not logged).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Scan { .. } => "scan",
            Self::Encode { .. } => "encode",
        }
    }
}

/// A request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// [`VERSION`].
    pub v: u32,
    /// What is asked.
    #[serde(flatten)]
    pub op: Op,
}

impl Request {
    /// `op` in this version.
    pub fn new(op: Op) -> Self {
        Self { v: VERSION, op }
    }
}

/// Why a request got no answer but an error (`error.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, or an unknown `op` or field.
    BadRequest,
    /// A line longer than [`super::MAX_LINE`]; the connection is closed after the answer.
    TooLong,
    /// A `v` this daemon does not speak.
    UnsupportedVersion,
    /// The peer is neither root nor in the socket's group.
    Refused,
    /// No encoder matches, or several do.
    NoSuchEncoder,
    /// The daemon is stopping.
    Stopping,
    /// The job ended without a result (cancelled by a stopping daemon).
    Cancelled,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Machine-readable.
    pub code: ErrorCode,
    /// For a person.
    pub message: String,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// [`VERSION`].
    pub v: u32,
    /// Whether the request was carried out (for a job: it ran; its outcome is in `job`).
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
    /// The answer to `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The answer to `scan` and `encode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobAnswer>,
}

impl Response {
    /// An error answer.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            v: VERSION,
            ok: false,
            error: Some(WireError {
                code,
                message: message.into(),
            }),
            status: None,
            job: None,
        }
    }

    /// The answer to `status`.
    pub fn status(status: Status) -> Self {
        Self {
            v: VERSION,
            ok: true,
            error: None,
            status: Some(status),
            job: None,
        }
    }

    /// The answer to a job.
    pub fn job(job: JobAnswer) -> Self {
        Self {
            v: VERSION,
            ok: true,
            error: None,
            status: None,
            job: Some(job),
        }
    }

    /// The line to send (with its newline).
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"v":1,"ok":false,"error":{"code":"bad_request","message":"unencodable"}}"#.into()
        });
        line.push('\n');
        line
    }
}

/// The outcome of a `scan` or `encode`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobAnswer {
    /// The encoder it ran on.
    pub encoder_id: String,
    /// Whether the card operation succeeded.
    pub success: bool,
    /// What `--json` prints: the `result` message's `status` with `result` or `error`.
    pub report: Value,
    /// What the command prints otherwise.
    pub text: String,
}

/// The cloud link as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudStatus {
    /// `cloud.url`.
    pub url: String,
    /// Whether the websocket is up.
    pub connected: bool,
    /// Since when it is up (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since: Option<String>,
    /// The last connection error, with its hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The cloud's clock minus the local one at the last `welcome`, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_secs: Option<i64>,
}

/// One encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderStatus {
    /// Its id.
    pub encoder_id: String,
    /// `pcsc` or `pn532`.
    pub kind: String,
    /// The reader name or device path.
    pub reader: String,
    /// Its name for people.
    pub display_name: String,
    /// Whether it answers.
    pub online: bool,
    /// Whether a card is in its field.
    pub card_present: bool,
    /// The attempt (or `local-…` job) it is busy with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_with: Option<String>,
}

/// The answer to `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The bridge's id.
    pub bridge_id: String,
    /// The daemon's version.
    pub version: String,
    /// Whether it is stopping.
    pub stopping: bool,
    /// The cloud link.
    pub cloud: CloudStatus,
    /// Every encoder.
    pub encoders: Vec<EncoderStatus>,
    /// Attempts claimed or running.
    pub attempts_in_flight: usize,
    /// Results stored but not yet acknowledged by the cloud.
    pub outbox: usize,
    /// Operator jobs (`scan`, `encode`) queued or running.
    pub local_jobs: usize,
}

impl Status {
    /// Healthy: the cloud link is up and every encoder is online.
    pub fn healthy(&self) -> bool {
        self.cloud.connected && self.encoders.iter().all(|e| e.online)
    }
}

/// Reads a request line (without its newline); the error is the answer to send.
pub fn parse(line: &[u8]) -> Result<Op, Box<Response>> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| Response::error(ErrorCode::BadRequest, format!("not JSON: {e}")))
        .map_err(Box::new)?;
    let Some(object) = value.as_object() else {
        return Err(Box::new(Response::error(
            ErrorCode::BadRequest,
            "a request is a JSON object",
        )));
    };
    match object.get("v").and_then(Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(Box::new(Response::error(
                ErrorCode::UnsupportedVersion,
                format!("version {v} is not spoken here (this daemon speaks {VERSION})"),
            )));
        }
        None => {
            return Err(Box::new(Response::error(
                ErrorCode::BadRequest,
                "\"v\" (the protocol version, 1) is missing",
            )));
        }
    }
    let mut object = object.clone();
    object.remove("v");
    let op: Op = serde_json::from_value(Value::Object(object.clone())).map_err(|e| {
        Box::new(Response::error(
            ErrorCode::BadRequest,
            format!("bad request: {e}"),
        ))
    })?;
    // serde does not refuse unknown fields beside a unit variant's tag: check every op.
    let known: &[&str] = match op {
        Op::Status => &["op"],
        Op::Scan { .. } => &["op", "encoder"],
        Op::Encode { .. } => &["op", "encoder", "credential"],
    };
    if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Box::new(Response::error(
            ErrorCode::BadRequest,
            format!(
                "bad request: unknown field `{unknown}` for op {}",
                op.name()
            ),
        )));
    }
    Ok(op)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn requests_round_trip() {
        for op in [
            Op::Status,
            Op::Scan { encoder: None },
            Op::Scan {
                encoder: Some("/dev/ttyUSB0".into()),
            },
            Op::Encode {
                encoder: Some("enc".into()),
                credential: json!({"acs_credential_id": "x"}),
            },
        ] {
            let line = serde_json::to_vec(&Request::new(op.clone())).unwrap();
            assert_eq!(parse(&line).unwrap(), op);
        }
        assert_eq!(parse(br#"{"v":1,"op":"status"}"#).unwrap(), Op::Status);
    }

    #[test]
    fn bad_requests_get_their_error_code() {
        let code = |line: &[u8]| parse(line).unwrap_err().error.unwrap().code;
        assert_eq!(code(b"status"), ErrorCode::BadRequest);
        assert_eq!(code(b"[1]"), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"op":"status"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(br#"{"v":2,"op":"status"}"#),
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(code(br#"{"v":1,"op":"reboot"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(br#"{"v":1,"op":"status","x":1}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(code(br#"{"v":1,"op":"encode"}"#), ErrorCode::BadRequest);
    }

    #[test]
    fn health_needs_the_link_and_every_encoder() {
        let encoder = |online| EncoderStatus {
            encoder_id: "e".into(),
            kind: "pcsc".into(),
            reader: "r".into(),
            display_name: "r".into(),
            online,
            card_present: false,
            busy_with: None,
        };
        let mut status = Status {
            bridge_id: "b".into(),
            version: "0".into(),
            stopping: false,
            cloud: CloudStatus {
                url: "wss://x".into(),
                connected: true,
                connected_since: None,
                last_error: None,
                clock_skew_secs: None,
            },
            encoders: vec![encoder(true)],
            attempts_in_flight: 0,
            outbox: 0,
            local_jobs: 0,
        };
        assert!(status.healthy());
        status.encoders.push(encoder(false));
        assert!(!status.healthy());
        status.encoders.pop();
        status.cloud.connected = false;
        assert!(!status.healthy());
        let line = Response::status(status.clone()).to_line();
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back.status, Some(status));
    }
}
