//! The only conversions between the cloud's wire messages (docs/cloud-protocol.md §3-4) and
//! the bridge's domain ([`crate::job`]): an `attempt_available` becomes a [`CardJob`], a
//! [`JobReport`] a `result` message, a [`CloudError`] the message's `error` object.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::SystemTime;

use base64::Engine as _;
use encoder_protocol::cloud_error::{CloudError, ErrorType, SubCode};
use encoder_protocol::format::CardCredential;
use encoder_protocol::hex;
use encoder_protocol::job::ScanOutcome;
use serde_json::{Value, json};

use super::message::{
    ActionType, AttemptAvailable, EncoderInfo, OfferedCredential, ResultError, ResultMsg,
    from_unix, rfc3339, unix_seconds,
};
use crate::discovery::Wanted;
use crate::job::{
    ActionKind, CardJob, CredentialSpec, EncodeRequest, JobAction, JobReport, Success,
};
use crate::store::Writing;

/// The job for an offered attempt: run it, or (`writing` given) verify an encode a restart
/// cut off. `deadline` and `lease` come from the grant.
pub fn card_job(
    offer: &AttemptAvailable,
    writing: Option<Writing>,
    deadline: Option<SystemTime>,
    lease: Arc<AtomicI64>,
) -> CardJob {
    let action = match (offer.action_type, writing) {
        (ActionType::Scan, _) => JobAction::Scan,
        (ActionType::Encode, None) => JobAction::Encode(encode_request(offer.credential.as_ref())),
        (ActionType::Encode, Some(writing)) => JobAction::Verify {
            request: encode_request(offer.credential.as_ref()),
            writing,
        },
    };
    CardJob {
        id: offer.action_attempt_id.clone(),
        action,
        deadline,
        lease,
    }
}

/// An encoder as announced to the cloud.
pub fn encoder_info(id: &str, wanted: &Wanted, online: bool, card_present: bool) -> EncoderInfo {
    EncoderInfo {
        encoder_id: id.to_owned(),
        display_name: wanted.display_name.clone(),
        kind: wanted.kind.name().to_owned(),
        reader: wanted.reader.clone(),
        online,
        card_present,
    }
}

/// The encode asked for by an offer's `credential` (missing: an error reported once a card is
/// on the encoder, as any invalid credential).
pub fn encode_request(credential: Option<&OfferedCredential>) -> EncodeRequest {
    match credential {
        None => EncodeRequest {
            credential: Err(invalid("missing for ENCODE_CREDENTIAL")),
            card_uid: None,
        },
        Some(c) => EncodeRequest {
            credential: credential_spec(c),
            card_uid: c.card_uid.clone(),
        },
    }
}

/// The credential `credential` of `attempt_available` as the CLI's `--credential` file holds
/// it, parsed.
pub fn encode_request_from_json(text: &str) -> Result<EncodeRequest, String> {
    let credential: OfferedCredential = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(encode_request(Some(&credential)))
}

fn invalid(what: &str) -> CloudError {
    CloudError::new(
        ErrorType::UncategorizedError,
        SubCode::InvalidCredential,
        "This credential cannot be written to a card.",
        format!("attempt_available.credential: {what}"),
    )
}

/// Checks and converts an offered credential; the error names the bad field.
pub fn credential_spec(c: &OfferedCredential) -> Result<CredentialSpec, CloudError> {
    if let Some(n) = &c.card_number
        && (n.is_empty() || n.len() > 10 || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid("card_number is not 1 to 10 digits"));
    }
    let time = |t: &Option<String>, name: &str| match t {
        None => Ok(None),
        Some(t) => unix_seconds(t)
            .map(Some)
            .ok_or_else(|| invalid(&format!("{name} is not an RFC 3339 time"))),
    };
    let access_data = base64::engine::general_purpose::STANDARD
        .decode(c.access_data.as_bytes())
        .map_err(|_| invalid("access_data is not base64"))?;
    Ok(CredentialSpec {
        credential_id: c.acs_credential_id.to_lowercase(),
        card_number: c.card_number.clone(),
        starts_at: time(&c.starts_at, "starts_at")?,
        ends_at: time(&c.ends_at, "ends_at")?,
        issue_counter: c.issue_counter,
        access_data,
    })
}

/// The `error` object of a result.
pub fn wire_error(e: &CloudError) -> ResultError {
    ResultError {
        kind: e.kind.name().to_owned(),
        message: e.message.clone(),
        sub_code: e.sub_code.map(|s| s.name().to_owned()),
        detail: Some(e.detail.clone()),
    }
}

/// The domain's kind of an offered action.
pub fn action_kind(action: ActionType) -> ActionKind {
    match action {
        ActionType::Scan => ActionKind::Scan,
        ActionType::Encode => ActionKind::Encode,
    }
}

fn action_type(action: ActionKind) -> ActionType {
    match action {
        ActionKind::Scan => ActionType::Scan,
        ActionKind::Encode => ActionType::Encode,
    }
}

fn rfc3339_of(at: SystemTime) -> String {
    rfc3339(time::OffsetDateTime::from(at))
}

/// A finished report as the wire carries it: `finished_at` and `Ok(result)` or `Err(error)`;
/// `None` for a cancelled job (nothing to report).
fn wire_outcome(report: &JobReport) -> Option<(SystemTime, Result<Value, ResultError>)> {
    let JobReport::Done {
        finished_at,
        outcome,
    } = report
    else {
        return None;
    };
    let outcome = match outcome {
        Ok(success) => Ok(success_value(success, *finished_at)),
        Err(e) => Err(wire_error(e)),
    };
    Some((*finished_at, outcome))
}

/// The `result` message for a finished job; `None` for a cancelled one (nothing to report).
pub fn result_message(
    attempt_id: &str,
    encoder_id: &str,
    action: ActionKind,
    report: &JobReport,
) -> Option<ResultMsg> {
    let (finished_at, outcome) = wire_outcome(report)?;
    let (status, result, error) = match outcome {
        Ok(value) => ("success", Some(value), None),
        Err(e) => ("error", None, Some(e)),
    };
    Some(ResultMsg {
        action_attempt_id: attempt_id.to_owned(),
        action_type: action_type(action),
        encoder_id: encoder_id.to_owned(),
        status: status.to_owned(),
        finished_at: rfc3339_of(finished_at),
        result,
        error,
    })
}

/// The CLI's `--json` output: `{"status": "success", "result": ...}` or `{"status": "error",
/// "error": ...}`, the objects of a `result` message.
pub fn report_json(report: &JobReport) -> Option<String> {
    let value = match wire_outcome(report)?.1 {
        Ok(result) => json!({ "status": "success", "result": result }),
        Err(error) => json!({ "status": "error", "error": error }),
    };
    serde_json::to_string_pretty(&value).ok()
}

fn opt_time(t: Option<i64>) -> Value {
    t.and_then(from_unix).map_or(Value::Null, Value::String)
}

fn success_value(success: &Success, finished_at: SystemTime) -> Value {
    match success {
        Success::Encoded {
            written,
            uid,
            card_type,
            first_encode,
        } => encoded_value(written, uid, card_type.name(), *first_encode, finished_at),
        Success::Scanned(scan) => scanned_value(scan),
    }
}

fn encoded_value(
    written: &CardCredential,
    uid: &[u8],
    card_type: &str,
    first: Option<bool>,
    issued_at: SystemTime,
) -> Value {
    let c = &written.credential;
    json!({
        "acs_credential_id": c.credential_id,
        "card_number": c.card_number,
        "is_issued": true,
        "issued_at": rfc3339_of(issued_at),
        "starts_at": opt_time(c.starts_at),
        "ends_at": opt_time(c.ends_at),
        "card": { "uid": hex::encode(uid), "type": card_type },
        "written": {
            "format_version": written.format_version,
            "key_version": written.key_version,
            "issue_counter": c.issue_counter,
            "sequence": written.sequence,
            "first_encode": first,
        },
    })
}

fn scanned_value(outcome: &ScanOutcome) -> Value {
    let on_encoder = outcome.credential.as_ref().map(|w| {
        let c = &w.credential;
        json!({
            "acs_credential_id": c.credential_id,
            "card_number": c.card_number,
            "is_issued": true,
            "starts_at": opt_time(c.starts_at),
            "ends_at": opt_time(c.ends_at),
            "issue_counter": c.issue_counter,
            "key_version": w.key_version,
            "access_data": base64::engine::general_purpose::STANDARD.encode(&c.access_data),
        })
    });
    json!({
        "acs_credential_on_encoder": on_encoder,
        "card": {
            "uid": hex::encode(&outcome.uid),
            "type": outcome.card_type.name(),
            "state": outcome.state.name(),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn offered(card_number: Option<&str>, access: &str) -> OfferedCredential {
        OfferedCredential {
            acs_credential_id: "66666666-6666-6666-6666-666666666666".into(),
            card_number: card_number.map(str::to_owned),
            starts_at: Some("2024-12-01T15:00:00.000Z".into()),
            ends_at: None,
            is_issued: false,
            issue_counter: 1,
            access_data: access.into(),
            card_uid: None,
        }
    }

    #[test]
    fn credentials_from_offers() {
        let c = credential_spec(&offered(None, "AQID"))
            .expect("valid")
            .for_card(&[0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(c.card_number, "3735928559");
        assert_eq!(c.access_data, vec![1, 2, 3]);
        assert_eq!(c.starts_at, Some(1_733_065_200));
        let e = credential_spec(&offered(Some("12a"), "")).expect_err("digits");
        assert_eq!(e.sub_code, Some(SubCode::InvalidCredential));
        let e = credential_spec(&offered(None, "!!")).expect_err("base64");
        assert!(e.detail.contains("access_data"));
        let missing = encode_request(None).credential.expect_err("missing");
        assert_eq!(missing.kind, ErrorType::UncategorizedError);
    }

    #[test]
    fn errors_keep_type_and_sub_code_on_the_wire() {
        let e = CloudError::new(
            ErrorType::NoCardOnEncoder,
            SubCode::CardWaitTimeout,
            "No card.",
            "waited 10 ms",
        );
        let wire = wire_error(&e);
        assert_eq!(wire.kind, "no_card_on_encoder");
        assert_eq!(wire.sub_code.as_deref(), Some("card_wait_timeout"));
        let report = JobReport::now(Err(e));
        let msg = result_message("a", "e", ActionKind::Scan, &report).expect("done");
        assert_eq!(msg.status, "error");
        assert_eq!(msg.action_type, ActionType::Scan);
        assert!(result_message("a", "e", ActionKind::Scan, &JobReport::Cancelled).is_none());
    }
}
