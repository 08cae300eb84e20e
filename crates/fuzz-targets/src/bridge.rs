//! `cloud_message`, `config`, `store_record`: what the bridge reads from the cloud and from
//! its files (`encoder_bridge::cloud::message`, the offer's translation in
//! `encoder_bridge::cloud::translate`, `encoder_bridge::config`, site key files,
//! `encoder_bridge::store` and what the session reads back from it).

use encoder_bridge::card_job::check_card_uid;
use encoder_bridge::cloud::message::ResultMsg;
use encoder_bridge::cloud::message::{self, Incoming, ParseError};
use encoder_bridge::cloud::session::Restored;
use encoder_bridge::cloud::translate;
use encoder_bridge::config::Config;
use encoder_bridge::store;
use encoder_protocol::format;
use encoder_protocol::keys::MasterKey;

const KNOWN_TYPES: [&str; 8] = [
    "welcome",
    "attempt_available",
    "claim_granted",
    "claim_refused",
    "lease_renewed",
    "attempt_cancelled",
    "result_ack",
    "protocol_error",
];

/// One websocket text frame from the cloud (`data` as lossy UTF-8, as a text frame is always
/// valid UTF-8), then, for an offer, its translation into a card credential; the times in it
/// go through the bridge's RFC 3339 functions.
///
/// Properties: only texts above the application limit are `TooLarge`; an unknown type is never
/// one the bridge knows; a credential built from an offer passes the card format's own
/// validation or the encode reports `invalid_credential` (never a panic).
pub fn cloud_message(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = message::parse(&text);
    match &parsed {
        Err(ParseError::TooLarge(n)) => assert!(*n > message::APP_LIMIT),
        Err(ParseError::Unknown(kind)) => assert!(!KNOWN_TYPES.contains(&kind.as_str())),
        Err(ParseError::Malformed { .. }) => {}
        Ok(incoming) => {
            assert!(text.len() <= message::APP_LIMIT);
            if let Incoming::AttemptAvailable(offer) = incoming {
                for uid in [
                    &[0xDE, 0xAD, 0xBE, 0xEF][..],
                    &[4, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60],
                ] {
                    let request = translate::encode_request(offer.credential.as_ref());
                    let _ = check_card_uid(request.card_uid.as_deref(), uid, "fuzz");
                    if let Ok(spec) = request.credential {
                        let _ = format::body_len(&spec.for_card(uid));
                    }
                }
                if let Some(c) = &offer.credential {
                    // A time the cloud sends converts back to the same instant (years 1-9999).
                    for t in [&c.starts_at, &c.ends_at].into_iter().flatten() {
                        if let Some(seconds) = message::unix_seconds(t)
                            && let Some(back) = message::from_unix(seconds)
                        {
                            assert_eq!(message::unix_seconds(&back), Some(seconds), "{t:?}");
                        }
                    }
                }
            }
        }
    }
    if let Some(seconds) = message::unix_seconds(&text)
        && let Some(back) = message::from_unix(seconds)
    {
        assert_eq!(message::unix_seconds(&back), Some(seconds), "{text:?}");
    }
}

/// The configuration file (`data` as lossy UTF-8), its derived settings, and a site key file.
///
/// Properties: a configuration that validates yields its durations and reader policies
/// without panicking; a refused key file gets an error that does not depend on its text.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(config) = Config::parse(&text) {
        let _ = (
            config.ping_interval(),
            config.pong_timeout(),
            config.card_wait(),
        );
        for reader in [
            "ACS ACR122U PICC Interface 00 00",
            "",
            "/dev/ttyUSB0",
            &text,
        ] {
            let _ = config.reader_policy(reader);
        }
        let _ = config.exact_readers();
    }
    let _ = encoder_bridge::config::glob_match(&text, "ACS ACR122U 00 00");
    if let Err(e) = MasterKey::from_hex(text.trim()) {
        // The error says the same whatever the file held: nothing of the text leaks into it.
        let reference = MasterKey::from_hex("not a key")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            Some(e.to_string()),
            reference,
            "the error depends on the key text"
        );
    }
}

/// One row of the store's `attempts` table and one of its `outbox` table, as read from disk,
/// and what the session reads back from them (the offer of an attempt, a stored result).
///
/// Properties: a row that decodes encodes back to a row that decodes to the same value (floats
/// in a stored cloud result to the last bit); a row that does not decode is reported with its
/// key; reading an offer back never panics.
pub fn store_record(data: &[u8]) {
    match store::decode_attempt("fuzz-key", data) {
        Ok(attempt) => {
            let _ = Restored::from_store(&attempt);
        }
        Err(damaged) => assert_eq!(damaged.key, "fuzz-key"),
    }
    round_trip(data, |bytes| {
        store::decode_attempt("row", bytes).map_err(|d| d.to_string())
    });
    round_trip(data, |bytes| serde_json::from_slice::<ResultMsg>(bytes));
}

fn round_trip<T: serde::Serialize + std::fmt::Debug, E: std::fmt::Display>(
    data: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, E>,
) {
    let Ok(row) = decode(data) else {
        return;
    };
    let again = serde_json::to_vec(&row).unwrap_or_default();
    match decode(&again) {
        Ok(back) => {
            let value = |v: &T| serde_json::to_value(v).unwrap_or_default();
            assert!(same(&value(&row), &value(&back)), "{row:?}");
        }
        Err(e) => panic!("a decoded row does not decode once re-encoded ({e}): {row:?}"),
    }
}

/// JSON equality, with numbers equal up to the last bit of a float (`serde_json`'s default
/// float parsing may be off by one unit in the last place; our rows hold no floats of their
/// own, but a stored cloud result may).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
                (x - y).abs() <= f64::EPSILON * 4.0 * x.abs().max(y.abs())
            }
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
