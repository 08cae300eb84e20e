//! The HTTP API (the seeds' endpoints, all `POST` with a JSON body) and the websocket upgrade.
//!
//! Handlers only check the bearer token, parse the body and call the model; answers wrap the
//! object with `"ok": true`, errors are `{"error": {"type", "message"}, "ok": false}` with 400
//! (bad input), 401 (token), 404 (unknown object or path) or 405 (method).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Shared;
use super::attempts::Core;
use super::bridge_ws::{self, MAX_TRANSPORT, SUBPROTOCOL};
use super::model::{ApiError, EventFilter, Millis, NewCredential};

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Checks `Authorization: Bearer <token>`.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing Authorization: Bearer <token> header",
        ));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), shared.token.as_bytes()) => Ok(()),
        _ => Err(ApiError::unauthorized("invalid API token")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a JSON body (an empty body is `{}`).
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_input(format!("invalid request body: {e}")))
}

type Operation = fn(&mut Core, Millis, &[u8]) -> Result<Value, ApiError>;

/// A POST endpoint running `operation` on the core.
fn endpoint(operation: Operation) -> MethodRouter<Arc<Shared>> {
    post(
        move |State(shared): State<Arc<Shared>>, headers: HeaderMap, bytes: Bytes| async move {
            if let Err(e) = authorize(&shared, &headers) {
                return e.into_response();
            }
            match shared.with(|core, now| operation(core, now, &bytes)) {
                Ok(Value::Object(mut map)) => {
                    map.insert("ok".into(), Value::Bool(true));
                    axum::Json(Value::Object(map)).into_response()
                }
                Ok(other) => axum::Json(other).into_response(),
                Err(e) => e.into_response(),
            }
        },
    )
}

#[derive(Deserialize)]
struct SystemFilter {
    #[serde(default)]
    acs_system_id: Option<String>,
}

#[derive(Deserialize)]
struct NewUser {
    acs_system_id: String,
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
}

#[derive(Deserialize)]
struct CredentialRef {
    acs_credential_id: String,
}

#[derive(Deserialize)]
struct CredentialFilter {
    #[serde(default)]
    acs_user_id: Option<String>,
    #[serde(default)]
    acs_system_id: Option<String>,
}

/// `Some(None)` for an explicit `null`, `None` when absent.
#[allow(clippy::option_option)] // absent, null and a value are three different requests
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[allow(clippy::option_option)] // absent (keep), null (clear), a value (set)
struct CredentialUpdate {
    acs_credential_id: String,
    #[serde(default, deserialize_with = "nullable")]
    starts_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    ends_at: Option<Option<String>>,
}

#[derive(Deserialize)]
#[allow(clippy::struct_field_names)] // the API's field names
struct EncoderFilter {
    #[serde(default)]
    acs_system_id: Option<String>,
    #[serde(default)]
    acs_system_ids: Vec<String>,
    #[serde(default)]
    acs_encoder_ids: Vec<String>,
}

#[derive(Deserialize)]
struct EncoderRef {
    acs_encoder_id: String,
}

#[derive(Deserialize)]
struct EncodeRequest {
    acs_encoder_id: String,
    acs_credential_id: String,
}

#[derive(Deserialize)]
struct AttemptRef {
    action_attempt_id: String,
}

#[allow(clippy::unnecessary_wraps)] // an `Operation`
fn systems_list(core: &mut Core, _: Millis, _: &[u8]) -> Result<Value, ApiError> {
    Ok(core.state.list_systems())
}

fn entrances_list(core: &mut Core, _: Millis, b: &[u8]) -> Result<Value, ApiError> {
    let f: SystemFilter = body(b)?;
    Ok(core.state.list_entrances(f.acs_system_id.as_deref()))
}

fn users_create(core: &mut Core, now: Millis, b: &[u8]) -> Result<Value, ApiError> {
    let u: NewUser = body(b)?;
    let made = core.state.create_user(
        now,
        &u.acs_system_id,
        u.full_name,
        u.email_address,
        u.phone_number,
    )?;
    core.touch();
    Ok(made)
}

fn credentials_create(core: &mut Core, now: Millis, b: &[u8]) -> Result<Value, ApiError> {
    let made = core
        .state
        .create_credential(now, body::<NewCredential>(b)?)?;
    core.touch();
    Ok(made)
}

fn credentials_get(core: &mut Core, _: Millis, b: &[u8]) -> Result<Value, ApiError> {
    let r: CredentialRef = body(b)?;
    let c = core.state.credential(&r.acs_credential_id)?;
    Ok(serde_json::json!({ "acs_credential": super::model::credential_json(c) }))
}

fn credentials_list(core: &mut Core, _: Millis, b: &[u8]) -> Result<Value, ApiError> {
    let f: CredentialFilter = body(b)?;
    Ok(core
        .state
        .list_credentials(f.acs_user_id.as_deref(), f.acs_system_id.as_deref()))
}

fn credentials_update(core: &mut Core, _: Millis, b: &[u8]) -> Result<Value, ApiError> {
    let u: CredentialUpdate = body(b)?;
    let updated = core
        .state
        .update_credential(&u.acs_credential_id, u.starts_at, u.ends_at)?;
    core.touch();
    Ok(updated)
}

fn encoders_list(core: &mut Core, _: Millis, b: &[u8]) -> Result<Value, ApiError> {
    let mut f: EncoderFilter = body(b)?;
    f.acs_system_ids.extend(f.acs_system_id);
    Ok(core.list_encoders(&f.acs_system_ids, &f.acs_encoder_ids))
}

fn encoders_get(core: &mut Core, _: Millis, b: &[u8]) -> Result<Value, ApiError> {
    let r: EncoderRef = body(b)?;
    core.get_encoder(&r.acs_encoder_id)
}

fn encode_credential(core: &mut Core, now: Millis, b: &[u8]) -> Result<Value, ApiError> {
    let r: EncodeRequest = body(b)?;
    core.encode_credential(now, &r.acs_encoder_id, &r.acs_credential_id)
}

fn scan_credential(core: &mut Core, now: Millis, b: &[u8]) -> Result<Value, ApiError> {
    let r: EncoderRef = body(b)?;
    core.scan_credential(now, &r.acs_encoder_id)
}

fn attempts_get(core: &mut Core, _: Millis, b: &[u8]) -> Result<Value, ApiError> {
    let r: AttemptRef = body(b)?;
    core.get_attempt(&r.action_attempt_id)
}

fn events_list(core: &mut Core, _: Millis, b: &[u8]) -> Result<Value, ApiError> {
    core.state.list_events(&body::<EventFilter>(b)?)
}

/// GET `/bridge/v1`: the token is checked before the upgrade (401), and the bridge must ask
/// for the `encoder-bridge.v1` subprotocol (400 otherwise).
async fn bridge_upgrade(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(e) = authorize(&shared, &headers) {
        return e.into_response();
    }
    let upgrade = match upgrade {
        Ok(u) => u.protocols([SUBPROTOCOL]),
        Err(rejection) => {
            return ApiError::invalid_input(format!("expected a websocket upgrade: {rejection}"))
                .into_response();
        }
    };
    if upgrade.selected_protocol().is_none() {
        return ApiError::invalid_input(format!(
            "ask for the websocket subprotocol {SUBPROTOCOL} (Sec-WebSocket-Protocol)"
        ))
        .into_response();
    }
    let shutdown = shared.shutdown.subscribe();
    upgrade
        .max_message_size(MAX_TRANSPORT)
        .max_frame_size(MAX_TRANSPORT)
        .on_upgrade(move |socket| bridge_ws::session(shared, socket, shutdown))
}

async fn not_found() -> Response {
    ApiError::new(404, "endpoint_not_found", "no such endpoint").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        405,
        "method_not_allowed",
        "use POST with a JSON body (GET for /bridge/v1)",
    )
    .into_response()
}

/// The POST endpoints of the API: path and operation.
const OPERATIONS: [(&str, Operation); 13] = [
    ("/acs/systems/list", systems_list),
    ("/acs/entrances/list", entrances_list),
    ("/acs/users/create", users_create),
    ("/acs/credentials/create", credentials_create),
    ("/acs/credentials/get", credentials_get),
    ("/acs/credentials/list", credentials_list),
    ("/acs/credentials/update", credentials_update),
    ("/acs/encoders/list", encoders_list),
    ("/acs/encoders/get", encoders_get),
    ("/acs/encoders/encode_credential", encode_credential),
    ("/acs/encoders/scan_credential", scan_credential),
    ("/action_attempts/get", attempts_get),
    ("/events/list", events_list),
];

/// Runs the operation at `path` on `body`, as its endpoint does after the token check;
/// `None` for a path that is not an operation.
pub(crate) fn operation(
    core: &mut Core,
    now: Millis,
    path: &str,
    body: &[u8],
) -> Option<Result<Value, ApiError>> {
    let (_, run) = OPERATIONS.iter().find(|(p, _)| *p == path)?;
    Some(run(core, now, body))
}

/// All routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for (path, run) in OPERATIONS {
        router = router.route(path, endpoint(run));
    }
    router
        .route("/bridge/v1", get(bridge_upgrade))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}
