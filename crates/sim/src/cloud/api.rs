//! The HTTP API, served as Seam serves it: every route answers the methods Seam's `OpenAPI`
//! document lists for it (npm `@seamapi/types`, pinned by `tests/sdk/package-lock.json`),
//! with the same answer
//! whatever the method:
//!
//! - read routes (`*/list`, `*/get`): `GET` with query parameters, or `POST` with a JSON body;
//! - `/acs/credentials/update`: `PATCH` or `POST` with a JSON body;
//! - everything else: `POST` with a JSON body.
//!
//! Query parameters are read as Seam's SDKs write them (@seamapi/url-search-params-serializer):
//! an array is its key repeated (one element too; `key=` alone is the empty array), `null` is
//! `key=` too, `a.b=1` is `{"a": {"b": 1}}`, and parameters the SDKs add for themselves
//! (`_strict`, any name starting with `_`) are ignored, as are parameters a route does not know.
//!
//! Handlers only check the bearer token, read the parameters and call the model; answers wrap
//! the object with `"ok": true`, errors are Seam's envelope `{"error": {"type", "message"},
//! "ok": false}` with 400 (`invalid_input`, naming the parameter), 401 (`unauthorized`), 404
//! (`<resource>_not_found`, `endpoint_not_found`) or 405 (a method Seam does not list).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, patch, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Shared;
use super::attempts::Core;
use super::attempts::sandbox::{EncodeWillFail, EncodeWillSucceed, ScanWillFail, ScanWillSucceed};
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

/// Parses the request's parameters (`{}` when there are none).
fn body<T: DeserializeOwned>(params: &Value) -> Result<T, ApiError> {
    T::deserialize(params).map_err(|e| ApiError::invalid_input(format!("invalid request: {e}")))
}

/// Reads a JSON body (an empty body is `{}`).
fn json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ApiError::invalid_input(
            "invalid request body: expected a JSON object",
        )),
        Err(e) => Err(ApiError::invalid_input(format!(
            "invalid request body: {e}"
        ))),
    }
}

/// Query parameters that are arrays in Seam's API (every `*_ids`, and these).
const ARRAY_PARAMS: [&str; 2] = ["event_types", "between"];
/// Query parameters that are numbers in Seam's API.
const NUMBER_PARAMS: [&str; 2] = ["limit", "unstable_offset"];

fn is_array_param(name: &str) -> bool {
    name.ends_with("_ids") || ARRAY_PARAMS.contains(&name)
}

/// One query value as JSON: numbers for numeric parameters, `null` for an empty value.
fn query_scalar(name: &str, value: &str) -> Value {
    if value.is_empty() {
        return Value::Null;
    }
    if NUMBER_PARAMS.contains(&name)
        && let Ok(n) = value.parse::<serde_json::Number>()
    {
        return Value::Number(n);
    }
    match value {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(value.to_owned()),
    }
}

/// Query parameters as the JSON object the same request would carry as a body.
pub(crate) fn query_params(query: &str) -> Value {
    let mut params = Map::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key.starts_with('_') || key.is_empty() {
            continue;
        }
        let path: Vec<&str> = key.split('.').collect();
        put_param(&mut params, &path, &value);
    }
    Value::Object(params)
}

/// Puts one query pair into `object`: `path` is the key split at dots.
fn put_param(object: &mut Map<String, Value>, path: &[&str], value: &str) {
    match path {
        [] => {}
        [name] => {
            if is_array_param(name) {
                let slot = object
                    .entry((*name).to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = slot
                    && !value.is_empty()
                {
                    items.push(Value::String(value.to_owned()));
                }
            } else {
                object.insert((*name).to_owned(), query_scalar(name, value));
            }
        }
        [outer, rest @ ..] => {
            let slot = object
                .entry((*outer).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                put_param(inner, rest, value);
            }
        }
    }
}

type Operation = fn(&mut Core, Millis, &Value) -> Result<Value, ApiError>;

/// The methods Seam lists for a route.
#[derive(Clone, Copy)]
enum Methods {
    /// `get, post`.
    Read,
    /// `post`.
    Write,
    /// `patch, post`.
    Update,
}

/// A route running `operation` on the core, on the methods Seam lists for it.
fn endpoint(methods: Methods, operation: Operation) -> MethodRouter<Arc<Shared>> {
    let handler = move |State(shared): State<Arc<Shared>>,
                        method: Method,
                        uri: Uri,
                        headers: HeaderMap,
                        bytes: Result<Bytes, BytesRejection>| async move {
        if let Err(e) = authorize(&shared, &headers) {
            return e.into_response();
        }
        let params = match (&method, bytes) {
            (&Method::GET, _) => Ok(query_params(uri.query().unwrap_or_default())),
            (_, Ok(bytes)) => json_body(&bytes),
            // Too large (over axum's 2 MB default) or cut short: still Seam's envelope.
            (_, Err(rejection)) => Err(ApiError::new(
                rejection.status().as_u16(),
                "invalid_input",
                format!("cannot read the request body: {}", rejection.body_text()),
            )),
        };
        let params = match params {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        match shared.with(|core, now| operation(core, now, &params)) {
            Ok(Value::Object(mut map)) => {
                map.insert("ok".into(), Value::Bool(true));
                axum::Json(Value::Object(map)).into_response()
            }
            Ok(other) => axum::Json(other).into_response(),
            Err(e) => e.into_response(),
        }
    };
    match methods {
        Methods::Read => get(handler).post(handler),
        Methods::Write => post(handler),
        Methods::Update => patch(handler).post(handler),
    }
}

#[derive(Deserialize)]
struct SystemRef {
    acs_system_id: String,
}

#[derive(Deserialize)]
struct UserRef {
    acs_user_id: String,
}

#[derive(Deserialize)]
struct EventRef {
    event_id: String,
}

#[derive(Deserialize)]
struct AttemptFilter {
    action_attempt_ids: Vec<String>,
    #[serde(default)]
    limit: Option<u64>,
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
fn systems_list(core: &mut Core, _: Millis, _: &Value) -> Result<Value, ApiError> {
    Ok(core.list_systems())
}

fn systems_get(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    let r: SystemRef = body(b)?;
    core.get_system(&r.acs_system_id)
}

fn users_get(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    let r: UserRef = body(b)?;
    core.state.get_user(&r.acs_user_id)
}

fn users_list(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    let f: SystemFilter = body(b)?;
    Ok(core.state.list_users(f.acs_system_id.as_deref()))
}

fn attempts_list(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    let f: AttemptFilter = body(b)?;
    let limit = f.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    Ok(core.list_attempts(&f.action_attempt_ids, limit))
}

fn events_get(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    let r: EventRef = body(b)?;
    core.state.get_event(&r.event_id)
}

fn simulate_encode_success(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    core.simulate_encode_success(&body::<EncodeWillSucceed>(b)?)
}

fn simulate_encode_failure(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    core.simulate_encode_failure(&body::<EncodeWillFail>(b)?)
}

fn simulate_scan_success(core: &mut Core, now: Millis, b: &Value) -> Result<Value, ApiError> {
    core.simulate_scan_success(now, &body::<ScanWillSucceed>(b)?)
}

fn simulate_scan_failure(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    core.simulate_scan_failure(&body::<ScanWillFail>(b)?)
}

fn entrances_list(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    let f: SystemFilter = body(b)?;
    Ok(core.state.list_entrances(f.acs_system_id.as_deref()))
}

fn users_create(core: &mut Core, now: Millis, b: &Value) -> Result<Value, ApiError> {
    let u: NewUser = body(b)?;
    let made = core.state.create_user(
        now,
        &u.acs_system_id,
        u.full_name,
        u.email_address,
        u.phone_number,
    )?;
    Ok(made)
}

fn credentials_create(core: &mut Core, now: Millis, b: &Value) -> Result<Value, ApiError> {
    let made = core
        .state
        .create_credential(now, body::<NewCredential>(b)?)?;
    Ok(made)
}

fn credentials_get(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    let r: CredentialRef = body(b)?;
    let c = core.state.credential(&r.acs_credential_id)?;
    Ok(serde_json::json!({ "acs_credential": super::model::credential_json(c) }))
}

fn credentials_list(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    let f: CredentialFilter = body(b)?;
    Ok(core
        .state
        .list_credentials(f.acs_user_id.as_deref(), f.acs_system_id.as_deref()))
}

fn credentials_update(core: &mut Core, now: Millis, b: &Value) -> Result<Value, ApiError> {
    let u: CredentialUpdate = body(b)?;
    let updated =
        core.state
            .update_credential(now, &u.acs_credential_id, u.starts_at, u.ends_at)?;
    Ok(updated)
}

fn encoders_list(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    let mut f: EncoderFilter = body(b)?;
    f.acs_system_ids.extend(f.acs_system_id);
    Ok(core.list_encoders(&f.acs_system_ids, &f.acs_encoder_ids))
}

fn encoders_get(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    let r: EncoderRef = body(b)?;
    core.get_encoder(&r.acs_encoder_id)
}

fn encode_credential(core: &mut Core, now: Millis, b: &Value) -> Result<Value, ApiError> {
    let r: EncodeRequest = body(b)?;
    core.encode_credential(now, &r.acs_encoder_id, &r.acs_credential_id)
}

fn scan_credential(core: &mut Core, now: Millis, b: &Value) -> Result<Value, ApiError> {
    let r: EncoderRef = body(b)?;
    core.scan_credential(now, &r.acs_encoder_id)
}

fn attempts_get(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
    let r: AttemptRef = body(b)?;
    core.get_attempt(&r.action_attempt_id)
}

fn events_list(core: &mut Core, _: Millis, b: &Value) -> Result<Value, ApiError> {
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

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError::new(
        405,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}: read routes take GET or POST, /acs/credentials/update PATCH or POST, the others POST",
            uri.path()
        ),
    )
    .into_response()
}

/// Every API route: its path, the methods Seam's `OpenAPI` document lists for it, and its
/// operation.
const OPERATIONS: [(&str, Methods, Operation); 22] = [
    ("/acs/systems/list", Methods::Read, systems_list),
    ("/acs/systems/get", Methods::Read, systems_get),
    ("/acs/entrances/list", Methods::Read, entrances_list),
    ("/acs/users/create", Methods::Write, users_create),
    ("/acs/users/get", Methods::Read, users_get),
    ("/acs/users/list", Methods::Read, users_list),
    (
        "/acs/credentials/create",
        Methods::Write,
        credentials_create,
    ),
    ("/acs/credentials/get", Methods::Read, credentials_get),
    ("/acs/credentials/list", Methods::Read, credentials_list),
    (
        "/acs/credentials/update",
        Methods::Update,
        credentials_update,
    ),
    ("/acs/encoders/list", Methods::Read, encoders_list),
    ("/acs/encoders/get", Methods::Read, encoders_get),
    (
        "/acs/encoders/encode_credential",
        Methods::Write,
        encode_credential,
    ),
    (
        "/acs/encoders/scan_credential",
        Methods::Write,
        scan_credential,
    ),
    (
        "/acs/encoders/simulate/next_credential_encode_will_succeed",
        Methods::Write,
        simulate_encode_success,
    ),
    (
        "/acs/encoders/simulate/next_credential_encode_will_fail",
        Methods::Write,
        simulate_encode_failure,
    ),
    (
        "/acs/encoders/simulate/next_credential_scan_will_succeed",
        Methods::Write,
        simulate_scan_success,
    ),
    (
        "/acs/encoders/simulate/next_credential_scan_will_fail",
        Methods::Write,
        simulate_scan_failure,
    ),
    ("/action_attempts/get", Methods::Read, attempts_get),
    ("/action_attempts/list", Methods::Read, attempts_list),
    ("/events/get", Methods::Read, events_get),
    ("/events/list", Methods::Read, events_list),
];

/// Runs the operation at `path` on a JSON request `body`, as its endpoint does after the token
/// check (for the fuzz targets, through [`super::offline`]); `None` for a path that is not an
/// operation.
pub(crate) fn operation(
    core: &mut Core,
    now: Millis,
    path: &str,
    body: &[u8],
) -> Option<Result<Value, ApiError>> {
    let (_, _, run) = OPERATIONS.iter().find(|(p, _, _)| *p == path)?;
    Some(json_body(body).and_then(|params| run(core, now, &params)))
}

/// All routes, each with the methods Seam's `OpenAPI` document lists for it.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for (path, methods, run) in OPERATIONS {
        router = router.route(path, endpoint(methods, run));
    }
    router
        .route("/bridge/v1", get(bridge_upgrade))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Query strings as @seamapi/url-search-params-serializer writes them (Python SDK).
    #[test]
    fn query_parameters_read_as_the_sdks_write_them() {
        assert_eq!(
            query_params("acs_system_ids=a&_strict=true"),
            json!({"acs_system_ids": ["a"]})
        );
        assert_eq!(
            query_params("acs_encoder_ids=a&acs_encoder_ids=b&limit=10&page_cursor="),
            json!({"acs_encoder_ids": ["a", "b"], "limit": 10, "page_cursor": null})
        );
        assert_eq!(
            query_params("event_types=&since=2024-12-01T15%3A00%3A00.000Z&x.y=1"),
            json!({"event_types": [], "since": "2024-12-01T15:00:00.000Z", "x": {"y": "1"}})
        );
        assert_eq!(
            query_params("is_x=true&name=a+b&limit=ten"),
            json!({"is_x": true, "name": "a b", "limit": "ten"})
        );
        assert_eq!(query_params(""), json!({}));
        // A bad value is the handler's 400, not a panic.
        let Err(err) = body::<AttemptFilter>(&query_params("limit=2")) else {
            panic!("action_attempt_ids is required");
        };
        assert_eq!(err.status, 400);
        assert!(
            err.message.contains("action_attempt_ids"),
            "{}",
            err.message
        );
    }
}
