//! Seam's sandbox routes `/acs/encoders/simulate/*`: script the outcome of the next encode or
//! scan on one encoder, which then finishes at once without a bridge or a card.
//!
//! Scenarios and error codes are those of the request bodies in Seam's `OpenAPI` document
//! (npm `@seamapi/types`, pinned by `tests/sdk/package-lock.json`):
//!
//! | route | choices (default first) |
//! |---|---|
//! | `next_credential_encode_will_succeed` | `scenario`: `credential_is_issued` |
//! | `next_credential_encode_will_fail` | `error_code`: `no_credential_on_encoder`, or `uncategorized_error` / `action_attempt_expired` (these two may name an `acs_credential_id`) |
//! | `next_credential_scan_will_succeed` | `scenario`: `credential_exists_on_seam`, `credential_on_encoder_needs_update` (both may name `acs_credential_id_on_seam`), `credential_does_not_exist_on_seam`, `credential_on_encoder_is_empty` |
//! | `next_credential_scan_will_fail` | `error_code`: `no_credential_on_encoder`, or `uncategorized_error` / `action_attempt_expired` (these two may name `acs_credential_id_on_seam`) |
//!
//! Choices: a script is kept in memory (not in `--state`) until the next attempt of its
//! kind on that encoder uses it; a newer script of the same kind replaces it. A scan that
//! should find a credential on Seam uses `acs_credential_id_on_seam`, or else the credential
//! issued last in the encoder's system (400 if there is none). The scripted encode issues
//! the credential as a bridge would (card number, `issued_at`, `acs_credential.issued`
//! event); its card number is made up (10 digits) unless the credential has one.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AttemptError, Core, Millis, format_time, new_id};

/// What the next encode or scan on one encoder does.
#[derive(Debug, Clone, Default)]
pub struct Scripts {
    encode: Option<Outcome>,
    scan: Option<Outcome>,
}

/// A scripted outcome.
#[derive(Debug, Clone)]
enum Outcome {
    /// An encode that issues the credential.
    Issue,
    /// A scan that reads this `acs_credential_on_encoder`.
    Read(Value),
    /// A failure of this error type.
    Fail(&'static str),
}

/// The three error codes the fail routes accept.
const FAIL_CODES: [&str; 3] = [
    "no_credential_on_encoder",
    "uncategorized_error",
    "action_attempt_expired",
];

fn fail_message(code: &str) -> &'static str {
    match code {
        "no_credential_on_encoder" => "No credential was found on the card (simulated).",
        "action_attempt_expired" => "The action attempt expired (simulated).",
        _ => "The encoder reported an error (simulated).",
    }
}

/// Body of `next_credential_encode_will_succeed`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodeWillSucceed {
    acs_encoder_id: String,
    #[serde(default)]
    scenario: Option<String>,
}

/// Body of `next_credential_encode_will_fail`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodeWillFail {
    acs_encoder_id: String,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    acs_credential_id: Option<String>,
}

/// Body of `next_credential_scan_will_succeed`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanWillSucceed {
    acs_encoder_id: String,
    #[serde(default)]
    scenario: Option<String>,
    #[serde(default)]
    acs_credential_id_on_seam: Option<String>,
}

/// Body of `next_credential_scan_will_fail`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanWillFail {
    acs_encoder_id: String,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    acs_credential_id_on_seam: Option<String>,
}

/// The error code of a fail route: the default when absent; an id beside it only with the
/// codes that take one.
fn fail_code(
    code: Option<&str>,
    with_id: Option<&str>,
    id_param: &str,
) -> Result<&'static str, ApiError> {
    let code = code.unwrap_or("no_credential_on_encoder");
    let Some(known) = FAIL_CODES.into_iter().find(|c| *c == code) else {
        return Err(ApiError::invalid_input(format!(
            "error_code must be one of {}, not {code:?}",
            FAIL_CODES.join(", ")
        )));
    };
    if with_id.is_some() && known == "no_credential_on_encoder" {
        return Err(ApiError::invalid_input(format!(
            "{id_param} goes with error_code uncategorized_error or action_attempt_expired"
        )));
    }
    Ok(known)
}

/// A made-up card number of 10 digits.
fn made_up_card_number() -> String {
    let id = uuid::Uuid::new_v4().as_u128();
    format!("{:010}", id % 10_000_000_000)
}

impl Core {
    fn script(&mut self, encoder_id: &str) -> Result<&mut Scripts, ApiError> {
        self.state.encoder(encoder_id)?;
        Ok(self.scripts.entry(encoder_id.to_owned()).or_default())
    }

    /// `/acs/encoders/simulate/next_credential_encode_will_succeed`.
    pub fn simulate_encode_success(&mut self, r: &EncodeWillSucceed) -> Result<Value, ApiError> {
        match r.scenario.as_deref() {
            None | Some("credential_is_issued") => {}
            Some(other) => {
                return Err(ApiError::invalid_input(format!(
                    "scenario must be credential_is_issued, not {other:?}"
                )));
            }
        }
        self.script(&r.acs_encoder_id)?.encode = Some(Outcome::Issue);
        Ok(json!({}))
    }

    /// `/acs/encoders/simulate/next_credential_encode_will_fail`.
    pub fn simulate_encode_failure(&mut self, r: &EncodeWillFail) -> Result<Value, ApiError> {
        let failure = self.failure(
            r.error_code.as_deref(),
            r.acs_credential_id.as_deref(),
            "acs_credential_id",
        )?;
        self.script(&r.acs_encoder_id)?.encode = Some(failure);
        Ok(json!({}))
    }

    /// A scripted failure: its error code (see [`fail_code`]) and the credential it may name,
    /// which must exist.
    fn failure(
        &self,
        code: Option<&str>,
        credential: Option<&str>,
        id_param: &str,
    ) -> Result<Outcome, ApiError> {
        let code = fail_code(code, credential, id_param)?;
        if let Some(id) = credential {
            self.state.credential(id)?;
        }
        Ok(Outcome::Fail(code))
    }

    /// `/acs/encoders/simulate/next_credential_scan_will_succeed`.
    pub fn simulate_scan_success(
        &mut self,
        now: Millis,
        r: &ScanWillSucceed,
    ) -> Result<Value, ApiError> {
        let system = self.state.encoder(&r.acs_encoder_id)?.acs_system_id.clone();
        let scenario = r.scenario.as_deref().unwrap_or("credential_exists_on_seam");
        let on_seam_scenario = matches!(
            scenario,
            "credential_exists_on_seam" | "credential_on_encoder_needs_update"
        );
        if r.acs_credential_id_on_seam.is_some() && !on_seam_scenario {
            return Err(ApiError::invalid_input(format!(
                "acs_credential_id_on_seam does not go with scenario {scenario}"
            )));
        }
        let on_encoder = match scenario {
            "credential_exists_on_seam" | "credential_on_encoder_needs_update" => {
                let credential = match &r.acs_credential_id_on_seam {
                    Some(id) => self.state.credential(id)?,
                    None => self
                        .state
                        .credentials
                        .iter()
                        .filter(|c| c.acs_system_id == system && c.is_issued)
                        .max_by_key(|c| c.issued_at)
                        .ok_or_else(|| {
                            ApiError::invalid_input(
                                "no credential of this encoder's system is issued: give acs_credential_id_on_seam",
                            )
                        })?,
                };
                let ends_at = if scenario == "credential_on_encoder_needs_update" {
                    // The card holds an older end of the window than the server.
                    Some(credential.ends_at.unwrap_or(now).saturating_sub(86_400_000))
                } else {
                    credential.ends_at
                };
                json!({
                    "acs_credential_id": credential.acs_credential_id,
                    "card_number": credential.card_number.clone().unwrap_or_else(made_up_card_number),
                    "is_issued": true,
                    "starts_at": credential.starts_at.map(format_time),
                    "ends_at": ends_at.map(format_time),
                })
            }
            "credential_does_not_exist_on_seam" => json!({
                "acs_credential_id": new_id(),
                "card_number": made_up_card_number(),
                "is_issued": true,
                "starts_at": format_time(now),
                "ends_at": format_time(now.saturating_add(86_400_000)),
            }),
            "credential_on_encoder_is_empty" => Value::Null,
            other => {
                return Err(ApiError::invalid_input(format!(
                    "scenario must be one of credential_exists_on_seam, credential_on_encoder_needs_update, credential_does_not_exist_on_seam, credential_on_encoder_is_empty, not {other:?}"
                )));
            }
        };
        self.script(&r.acs_encoder_id)?.scan = Some(Outcome::Read(on_encoder));
        Ok(json!({}))
    }

    /// `/acs/encoders/simulate/next_credential_scan_will_fail`.
    pub fn simulate_scan_failure(&mut self, r: &ScanWillFail) -> Result<Value, ApiError> {
        let failure = self.failure(
            r.error_code.as_deref(),
            r.acs_credential_id_on_seam.as_deref(),
            "acs_credential_id_on_seam",
        )?;
        self.script(&r.acs_encoder_id)?.scan = Some(failure);
        Ok(json!({}))
    }

    /// Finishes the new attempt at `index` as scripted, if a script waits for its kind on its
    /// encoder; the finished attempt's view.
    pub(super) fn run_script(&mut self, now: Millis, index: usize) -> Option<Value> {
        let attempt = self.state.attempts.get(index)?;
        let scripts = self.scripts.get_mut(&attempt.encoder_id)?;
        let outcome = match attempt.action_type {
            super::ActionType::Encode => scripts.encode.take(),
            super::ActionType::Scan => scripts.scan.take(),
        }?;
        let result = match outcome {
            Outcome::Issue => {
                let card_number = attempt
                    .credential_id
                    .as_deref()
                    .and_then(|id| self.state.credential(id).ok())
                    .and_then(|c| c.card_number.clone())
                    .unwrap_or_else(made_up_card_number);
                let issued = json!({"card_number": card_number, "issued_at": format_time(now)});
                self.apply_encode(now, index, &issued, None)
            }
            Outcome::Read(on_encoder) => {
                Ok(self.scan_view(&json!({ "acs_credential_on_encoder": on_encoder })))
            }
            Outcome::Fail(code) => Err(AttemptError {
                kind: code.to_owned(),
                message: fail_message(code).to_owned(),
            }),
        };
        let attempt = self.state.attempts.get_mut(index)?;
        attempt.finish(now, result);
        attempt.result_from = Some("sandbox".to_owned());
        Some(attempt.json())
    }
}
