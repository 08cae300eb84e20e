//! The messages of docs/cloud-protocol.md, as serde types.
//!
//! Incoming text is parsed in two steps ([`parse`]): first as a JSON object with a `type`
//! string, then as the type's struct, so an unknown type can be ignored while a known type with
//! missing or mistyped fields is answered with `protocol_error` (§2).

use serde::{Deserialize, Serialize};

/// Protocol version spoken (`hello.protocol`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest message the application accepts (§1): larger ones get `protocol_error`.
pub const APP_LIMIT: usize = 64 * 1024;

/// Largest message the transport reads (§1): beyond it the connection is closed with 1009.
pub const TRANSPORT_LIMIT: usize = 1024 * 1024;

/// Websocket subprotocol (§1).
pub const SUBPROTOCOL: &str = "encoder-bridge.v1";

/// `ENCODE_CREDENTIAL` or `SCAN_CREDENTIAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionType {
    /// Write a credential onto a card.
    #[serde(rename = "ENCODE_CREDENTIAL")]
    Encode,
    /// Read the credential on a card.
    #[serde(rename = "SCAN_CREDENTIAL")]
    Scan,
}

/// An encoder as announced to the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderInfo {
    /// Stable id (kept in the state directory).
    pub encoder_id: String,
    /// Name shown to people.
    pub display_name: String,
    /// `pcsc` or `pn532`.
    pub kind: String,
    /// PC/SC reader name or serial device path.
    pub reader: String,
    /// Whether the reader is there.
    pub online: bool,
    /// Whether a card is in its field.
    pub card_present: bool,
}

/// The credential offered with an encode attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferedCredential {
    /// The cloud's credential id.
    pub acs_credential_id: String,
    /// At most 10 digits, or null (derived from the card UID).
    #[serde(default)]
    pub card_number: Option<String>,
    /// RFC 3339, or null.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// RFC 3339, or null.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// Whether the cloud already counts it as issued.
    #[serde(default)]
    pub is_issued: bool,
    /// How many times it was issued.
    #[serde(default)]
    pub issue_counter: u16,
    /// Base64 of an opaque blob for the card.
    #[serde(default)]
    pub access_data: String,
    /// Hex UID of the card an issued credential was written to (null: any card). An encode on
    /// another card fails before any write (`credential_cannot_be_reissued`).
    #[serde(default)]
    pub card_uid: Option<String>,
}

/// `attempt_available`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptAvailable {
    /// The attempt.
    pub action_attempt_id: String,
    /// Encode or scan.
    pub action_type: ActionType,
    /// The encoder it is for.
    pub encoder_id: String,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Present for encodes.
    #[serde(default)]
    pub credential: Option<OfferedCredential>,
}

/// `claim_granted`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClaimGranted {
    /// The attempt.
    pub action_attempt_id: String,
    /// RFC 3339.
    pub lease_expires_at: String,
    /// RFC 3339.
    pub deadline: String,
}

/// `claim_refused`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClaimRefused {
    /// The attempt.
    pub action_attempt_id: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// `lease_renewed`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LeaseRenewed {
    /// The attempt.
    pub action_attempt_id: String,
    /// RFC 3339.
    pub lease_expires_at: String,
}

/// `attempt_cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AttemptCancelled {
    /// The attempt.
    pub action_attempt_id: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// `result_ack`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResultAck {
    /// The attempt.
    pub action_attempt_id: String,
}

/// `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Welcome {
    /// The cloud's protocol version.
    pub protocol: u32,
    /// The cloud's clock, RFC 3339.
    pub server_time: String,
}

/// `protocol_error` (either direction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolError {
    /// What was wrong.
    pub message: String,
    /// The type of the message it answers, if known.
    #[serde(default)]
    pub in_reply_to: Option<String>,
}

/// A message from the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// `welcome`.
    Welcome(Welcome),
    /// `attempt_available`.
    AttemptAvailable(AttemptAvailable),
    /// `claim_granted`.
    ClaimGranted(ClaimGranted),
    /// `claim_refused`.
    ClaimRefused(ClaimRefused),
    /// `lease_renewed`.
    LeaseRenewed(LeaseRenewed),
    /// `attempt_cancelled`.
    AttemptCancelled(AttemptCancelled),
    /// `result_ack`.
    ResultAck(ResultAck),
    /// `protocol_error`.
    ProtocolError(ProtocolError),
}

/// Why an incoming text could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A type this bridge does not know: ignore it (§2).
    Unknown(String),
    /// Larger than [`APP_LIMIT`].
    TooLarge(usize),
    /// Not JSON, no `type`, or a known type with bad fields: answer with `protocol_error`.
    Malformed {
        /// What was wrong.
        message: String,
        /// The type, when there was one.
        in_reply_to: Option<String>,
    },
}

fn typed<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    kind: &str,
) -> Result<T, ParseError> {
    serde_json::from_value(value).map_err(|e| ParseError::Malformed {
        message: e.to_string(),
        in_reply_to: Some(kind.to_owned()),
    })
}

/// Parses one text frame from the cloud.
pub fn parse(text: &str) -> Result<Incoming, ParseError> {
    if text.len() > APP_LIMIT {
        return Err(ParseError::TooLarge(text.len()));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ParseError::Malformed {
            message: format!("not JSON: {e}"),
            in_reply_to: None,
        })?;
    let Some(kind) = value.get("type").and_then(serde_json::Value::as_str) else {
        return Err(ParseError::Malformed {
            message: "expected a JSON object with a string field \"type\"".into(),
            in_reply_to: None,
        });
    };
    let kind = kind.to_owned();
    Ok(match kind.as_str() {
        "welcome" => Incoming::Welcome(typed(value, &kind)?),
        "attempt_available" => Incoming::AttemptAvailable(typed(value, &kind)?),
        "claim_granted" => Incoming::ClaimGranted(typed(value, &kind)?),
        "claim_refused" => Incoming::ClaimRefused(typed(value, &kind)?),
        "lease_renewed" => Incoming::LeaseRenewed(typed(value, &kind)?),
        "attempt_cancelled" => Incoming::AttemptCancelled(typed(value, &kind)?),
        "result_ack" => Incoming::ResultAck(typed(value, &kind)?),
        "protocol_error" => Incoming::ProtocolError(typed(value, &kind)?),
        _ => return Err(ParseError::Unknown(kind)),
    })
}

/// The error object of a failed result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultError {
    /// One of the cloud's error types.
    #[serde(rename = "type")]
    pub kind: String,
    /// For a person at the front desk.
    pub message: String,
    /// Stable machine name.
    pub sub_code: Option<String>,
    /// For engineers; never key material.
    pub detail: Option<String>,
}

/// A `result` message: stored in the outbox as is and resent until acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultMsg {
    /// The attempt.
    pub action_attempt_id: String,
    /// Encode or scan.
    pub action_type: ActionType,
    /// The encoder that ran it.
    pub encoder_id: String,
    /// `success` or `error`.
    pub status: String,
    /// RFC 3339.
    pub finished_at: String,
    /// Set on success.
    pub result: Option<serde_json::Value>,
    /// Set on error.
    pub error: Option<ResultError>,
}

/// A message to the cloud.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outgoing {
    /// First message after connecting.
    Hello {
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
        /// This bridge.
        bridge_id: String,
        /// Software version.
        bridge_version: String,
        /// Every encoder the bridge drives.
        encoders: Vec<EncoderInfo>,
        /// Set (true) only by `encoder-bridge doctor`'s connectivity probe: the cloud answers
        /// `welcome` and should not register the bridge.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        probe: bool,
    },
    /// A reader appeared.
    EncoderAdded {
        /// The encoder.
        encoder: EncoderInfo,
    },
    /// A reader is no longer driven.
    EncoderRemoved {
        /// The encoder.
        encoder_id: String,
    },
    /// Online or card state changed.
    EncoderStatus {
        /// The encoder.
        encoder_id: String,
        /// Whether the reader is there.
        online: bool,
        /// Whether a card is in its field.
        card_present: bool,
    },
    /// Claim an attempt.
    Claim {
        /// The attempt.
        action_attempt_id: String,
    },
    /// Extend the lease.
    Renew {
        /// The attempt.
        action_attempt_id: String,
    },
    /// The outcome.
    Result(ResultMsg),
    /// Something from the cloud was malformed.
    ProtocolError(ProtocolError),
}

impl Outgoing {
    /// The JSON text of this message.
    pub fn to_text(&self) -> String {
        // Serializing these types cannot fail (string keys, no maps with other keys).
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// RFC 3339 (UTC, milliseconds) of a time.
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Now, as RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// Parses RFC 3339 into a time.
pub fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// Parses RFC 3339 into unix seconds.
pub fn unix_seconds(text: &str) -> Option<i64> {
    parse_time(text).map(time::OffsetDateTime::unix_timestamp)
}

/// Unix seconds as RFC 3339.
pub fn from_unix(seconds: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .map(rfc3339)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_examples() {
        let offer = r#"{"type":"attempt_available","action_attempt_id":"11111111-2222-3333-4444-555555555555","action_type":"ENCODE_CREDENTIAL","encoder_id":"5a1d","created_at":"2024-12-01T15:00:00.000Z","expires_at":"2024-12-01T15:02:00.000Z","credential":{"acs_credential_id":"66666666-6666-6666-6666-666666666666","card_number":"4009613812","starts_at":"2024-12-01T15:00:00.000Z","ends_at":null,"is_issued":false,"issue_counter":1,"access_data":"","extra":1},"unknown":true}"#;
        let Ok(Incoming::AttemptAvailable(a)) = parse(offer) else {
            panic!("not parsed")
        };
        assert_eq!(a.action_type, ActionType::Encode);
        assert_eq!(
            a.credential.map(|c| c.card_number),
            Some(Some("4009613812".into()))
        );
        assert!(matches!(
            parse(r#"{"type":"welcome","protocol":1,"server_time":"2024-12-01T14:59:58.000Z"}"#),
            Ok(Incoming::Welcome(_))
        ));
    }

    #[test]
    fn malformed_unknown_and_oversized() {
        assert!(matches!(parse("nope"), Err(ParseError::Malformed { .. })));
        assert!(matches!(parse("[1]"), Err(ParseError::Malformed { .. })));
        assert!(matches!(
            parse(r#"{"type":"claim_granted"}"#),
            Err(ParseError::Malformed { in_reply_to: Some(t), .. }) if t == "claim_granted"
        ));
        assert_eq!(
            parse(r#"{"type":"x"}"#),
            Err(ParseError::Unknown("x".into()))
        );
        let big = format!(r#"{{"type":"x","pad":"{}"}}"#, "a".repeat(APP_LIMIT));
        assert!(matches!(parse(&big), Err(ParseError::TooLarge(_))));
    }

    #[test]
    fn times_round_trip() {
        let t = unix_seconds("2024-12-01T15:00:00.000Z").unwrap_or_default();
        assert_eq!(from_unix(t).as_deref(), Some("2024-12-01T15:00:00.000Z"));
        assert_eq!(unix_seconds("2024-12-01T16:00:00+01:00"), Some(t));
    }

    #[test]
    fn outgoing_shapes() {
        let text = Outgoing::Claim {
            action_attempt_id: "a".into(),
        }
        .to_text();
        assert_eq!(text, r#"{"type":"claim","action_attempt_id":"a"}"#);
        let hello = Outgoing::Hello {
            protocol: 1,
            bridge_id: "b".into(),
            bridge_version: "0".into(),
            encoders: vec![],
            probe: false,
        }
        .to_text();
        assert!(!hello.contains("probe"), "{hello}");
    }
}
