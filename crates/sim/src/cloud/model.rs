//! The objects of the simulated access-control API (systems, entrances, users, credentials,
//! encoders, action attempts, events), the whole state, its JSON views and its persistence.
//!
//! Objects are stored with everything the simulator needs (e.g. the UID of the card a
//! credential was written to); the `*_json` functions give the public view, shaped as Seam's
//! objects are in the seed documents. Each kind is kept in [`Rows`], which notes what changed,
//! so `--state` ([`super::store`]) writes the changed rows alone.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::rows::Rows;

/// The workspace every object belongs to.
pub const WORKSPACE_ID: &str = "00000000-0000-0000-0000-000000000000";
/// The connected account behind the access system.
pub const CONNECTED_ACCOUNT_ID: &str = "11111111-1111-1111-1111-222222222222";
/// The one access system the simulator starts with (the seeds' building).
pub const SYSTEM_ID: &str = "11111111-1111-1111-1111-111111111111";

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// The current wall-clock time in milliseconds.
pub fn now_millis() -> Millis {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    Millis::try_from(nanos).unwrap_or(Millis::MAX)
}

/// Formats a time as RFC 3339 UTC with milliseconds, e.g. `2024-12-01T15:00:00.000Z`.
pub fn format_time(ms: Millis) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// Parses an RFC 3339 time (any offset, any fraction) to milliseconds.
pub fn parse_time(s: &str) -> Option<Millis> {
    let dt = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Millis::try_from(dt.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

fn opt_time(ms: Option<Millis>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(format_time(ms)))
}

/// A new random id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An error answered by the HTTP API: `{"error": {"type", "message"}, "ok": false}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Machine name (`invalid_input`, `unauthorized`, `acs_credential_not_found`, ...).
    pub kind: String,
    /// For a person.
    pub message: String,
}

impl ApiError {
    /// 400 `invalid_input`.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_input", message)
    }

    /// 404 `<object>_not_found`.
    pub fn not_found(object: &str, id: &str) -> Self {
        Self::new(
            404,
            &format!("{object}_not_found"),
            format!("{object} {id} not found"),
        )
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    /// Any status and type.
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: kind.to_owned(),
            message: message.into(),
        }
    }

    /// The response body.
    pub fn body(&self) -> Value {
        json!({"error": {"type": self.kind, "message": self.message}, "ok": false})
    }
}

/// An access-control system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcsSystem {
    /// Id.
    pub acs_system_id: String,
    /// Name.
    pub name: String,
    /// Creation time.
    pub created_at: Millis,
}

/// An entrance (a door) of a system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entrance {
    /// Id.
    pub acs_entrance_id: String,
    /// System.
    pub acs_system_id: String,
    /// Name.
    pub display_name: String,
    /// Creation time.
    pub created_at: Millis,
}

/// An access-system user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub acs_user_id: String,
    /// System.
    pub acs_system_id: String,
    /// Name.
    pub full_name: Option<String>,
    /// E-mail.
    pub email_address: Option<String>,
    /// Phone.
    pub phone_number: Option<String>,
    /// Creation time.
    pub created_at: Millis,
}

/// A card credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credential {
    /// Id.
    pub acs_credential_id: String,
    /// Owner.
    pub acs_user_id: String,
    /// System.
    pub acs_system_id: String,
    /// Always `card` here.
    pub access_method: String,
    /// Set by the integrator; otherwise derived from the card number.
    pub display_name: Option<String>,
    /// Set when written to a card.
    pub card_number: Option<String>,
    /// Written to a card.
    pub is_issued: bool,
    /// When it was (last) written.
    pub issued_at: Option<Millis>,
    /// Validity start.
    pub starts_at: Option<Millis>,
    /// Validity end.
    pub ends_at: Option<Millis>,
    /// Creation time.
    pub created_at: Millis,
    /// Entrances it opens.
    pub allowed_acs_entrance_ids: Vec<String>,
    /// UID (hex) of the card it was written to: it is never written to another.
    pub card_uid: Option<String>,
    /// Successful writes so far.
    pub issue_counter: u32,
    /// Changed since written: the card is out of date.
    pub needs_reissue: bool,
    /// When its window was last changed (dates the `needs_to_be_reissued` warning).
    #[serde(default)]
    pub changed_at: Option<Millis>,
}

impl Credential {
    /// The display name: the integrator's, else `Card <number>` once issued, else `Card`.
    pub fn display_name(&self) -> String {
        match (&self.display_name, &self.card_number) {
            (Some(name), _) => name.clone(),
            (None, Some(number)) => format!("Card {number}"),
            (None, None) => "Card".to_owned(),
        }
    }
}

/// An encoder, as reported by a bridge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Encoder {
    /// Id (the bridge's `encoder_id`).
    pub acs_encoder_id: String,
    /// System.
    pub acs_system_id: String,
    /// Name.
    pub display_name: String,
    /// First seen.
    pub created_at: Millis,
    /// The bridge that drives it (the last one that reported it).
    pub bridge_id: String,
    /// `pcsc` or `pn532`.
    pub kind: Option<String>,
    /// Reader name or device path.
    pub reader: Option<String>,
    /// The bridge can talk to it.
    pub online: bool,
    /// A card is on it.
    pub card_present: bool,
    /// Set when the bridge no longer drives it.
    pub removed_at: Option<Millis>,
}

/// `ENCODE_CREDENTIAL` or `SCAN_CREDENTIAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionType {
    /// Write a credential to a card.
    #[serde(rename = "ENCODE_CREDENTIAL")]
    Encode,
    /// Read a card.
    #[serde(rename = "SCAN_CREDENTIAL")]
    Scan,
}

impl ActionType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Encode => "ENCODE_CREDENTIAL",
            Self::Scan => "SCAN_CREDENTIAL",
        }
    }
}

/// An attempt's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for a bridge.
    Pending,
    /// Done.
    Success,
    /// Failed (`error` says how).
    Error,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Success => "success",
            Self::Error => "error",
        }
    }
}

/// A bridge's hold on an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Holder.
    pub bridge_id: String,
    /// End of the lease unless renewed.
    pub lease_expires_at: Millis,
}

/// The error of a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// Error type (`no_card_on_encoder`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// For a person.
    pub message: String,
}

/// An action attempt (encode or scan).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// Id.
    pub action_attempt_id: String,
    /// Encode or scan.
    pub action_type: ActionType,
    /// The encoder it runs on.
    pub encoder_id: String,
    /// The credential to write (encode only).
    pub credential_id: Option<String>,
    /// Status.
    pub status: Status,
    /// Set on success.
    pub result: Option<Value>,
    /// Set on error.
    pub error: Option<AttemptError>,
    /// Creation time.
    pub created_at: Millis,
    /// Deadline: still pending then, it ends as `action_attempt_expired`.
    pub expires_at: Millis,
    /// The bridge holding it.
    pub claim: Option<Claim>,
    /// The bridge whose result was applied (results are applied once).
    pub result_from: Option<String>,
    /// When it left `pending`.
    pub finished_at: Option<Millis>,
}

impl Attempt {
    /// Ends the attempt at `now`: `success` with the result, or `error` with the error.
    pub fn finish(&mut self, now: Millis, outcome: Result<Value, AttemptError>) {
        self.finished_at = Some(now);
        match outcome {
            Ok(result) => {
                self.status = Status::Success;
                self.result = Some(result);
            }
            Err(error) => {
                self.status = Status::Error;
                self.error = Some(error);
            }
        }
    }

    /// The public view: `{action_attempt_id, action_type, status, result, error}`.
    pub fn json(&self) -> Value {
        json!({
            "action_attempt_id": self.action_attempt_id,
            "action_type": self.action_type.as_str(),
            "status": self.status.as_str(),
            "result": self.result.clone().unwrap_or(Value::Null),
            "error": self.error.as_ref().map_or(Value::Null, |e| json!({"type": e.kind, "message": e.message})),
        })
    }
}

/// How long, and how many, finished attempts and events the simulator keeps (a sandbox used
/// for a year must not slow down with it). Past the window an attempt is gone
/// (`action_attempt_not_found`), as an event is (`event_not_found`). Pending attempts are
/// always kept; they end by their deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retain {
    /// Finished attempts and events older than this are dropped.
    pub keep_ms: Millis,
    /// At most this many finished attempts, and this many events, are kept.
    pub keep_count: usize,
}

impl Default for Retain {
    fn default() -> Self {
        Self {
            keep_ms: 24 * 3600 * 1000,
            keep_count: 10_000,
        }
    }
}

/// The rows of the objects by id ([`Rows`] finds a row's position by bisection), and the
/// attempts that may be pending, so a request costs the same whatever the history (a scan of
/// every attempt per request made the simulator slow down as it aged). Rows keep their key
/// when others are dropped, so a prune removes the ids it dropped and rebuilds nothing (a
/// rebuild after each prune grew with every credential ever made). Not saved: built at load.
#[derive(Debug, Clone, Default)]
struct Index {
    attempts: HashMap<String, u64>,
    credentials: HashMap<String, u64>,
    users: HashMap<String, u64>,
    events: HashMap<String, u64>,
    /// Rows of attempts created pending; those that have finished since leave it lazily
    /// ([`State::pending`]).
    pending: BTreeSet<u64>,
}

fn keys_by_id<T>(rows: &Rows<T>, id: impl Fn(&T) -> Option<&str>) -> HashMap<String, u64> {
    rows.iter()
        .enumerate()
        .filter_map(|(i, x)| Some((id(x)?.to_owned(), rows.key(i)?)))
        .collect()
}

fn event_id(event: &Value) -> Option<&str> {
    event.get("event_id").and_then(Value::as_str)
}

fn event_time(event: &Value) -> Option<Millis> {
    event
        .get("occurred_at")
        .and_then(Value::as_str)
        .and_then(parse_time)
}

/// Everything the simulator knows; kept with `--state` a row per object ([`super::store`]).
/// Read as a whole only from a JSON state file of an older version (its one-time import).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Systems.
    pub systems: Rows<AcsSystem>,
    /// Entrances.
    pub entrances: Rows<Entrance>,
    /// Users.
    pub users: Rows<User>,
    /// Credentials.
    pub credentials: Rows<Credential>,
    /// Encoders (removed ones too).
    pub encoders: Rows<Encoder>,
    /// Attempts.
    pub attempts: Rows<Attempt>,
    /// Events, oldest first.
    pub events: Rows<Value>,
    #[serde(skip)]
    index: Index,
}

/// Fixed ids of the starting entrances (stable across runs, handy in demos).
pub const ENTRANCES: [(&str, &str); 3] = [
    ("22222222-2222-2222-2222-000000000101", "Room 101"),
    ("22222222-2222-2222-2222-000000000102", "Room 102"),
    ("22222222-2222-2222-2222-000000000001", "Main Entrance"),
];

impl State {
    /// One access system (the seeds' id) and a few entrances.
    pub fn seeded(now: Millis) -> Self {
        let mut state = Self::default();
        state.systems.push(AcsSystem {
            acs_system_id: SYSTEM_ID.to_owned(),
            name: "Simulated Building".to_owned(),
            created_at: now,
        });
        for (id, name) in ENTRANCES {
            state.entrances.push(Entrance {
                acs_entrance_id: id.to_owned(),
                acs_system_id: SYSTEM_ID.to_owned(),
                display_name: name.to_owned(),
                created_at: now,
            });
        }
        state
    }

    /// Builds the indexes (after a load).
    pub fn reindex(&mut self) {
        self.index = Index {
            attempts: keys_by_id(&self.attempts, |a| Some(&a.action_attempt_id)),
            credentials: keys_by_id(&self.credentials, |c| Some(&c.acs_credential_id)),
            users: keys_by_id(&self.users, |u| Some(&u.acs_user_id)),
            events: keys_by_id(&self.events, event_id),
            pending: self
                .attempts
                .iter()
                .enumerate()
                .filter(|(_, a)| a.status == Status::Pending)
                .filter_map(|(i, _)| self.attempts.key(i))
                .collect(),
        };
    }

    /// Adds an attempt; returns its position.
    pub fn push_attempt(&mut self, attempt: Attempt) -> usize {
        let id = attempt.action_attempt_id.clone();
        let pending = attempt.status == Status::Pending;
        let at = self.attempts.push(attempt);
        if let Some(key) = self.attempts.key(at) {
            self.index.attempts.insert(id, key);
            if pending {
                self.index.pending.insert(key);
            }
        }
        at
    }

    /// Adds an event (newest).
    pub fn push_event(&mut self, event: Value) {
        let id = event_id(&event).map(str::to_owned);
        let at = self.events.push(event);
        if let (Some(id), Some(key)) = (id, self.events.key(at)) {
            self.index.events.insert(id, key);
        }
    }

    /// The position of attempt `id`.
    pub fn attempt_index(&self, id: &str) -> Option<usize> {
        self.attempts.position(*self.index.attempts.get(id)?)
    }

    /// The positions of the pending attempts, oldest first (those that finished since the
    /// last call leave the set): the expiry timer's work grows with what is pending, not with
    /// history.
    pub fn pending(&mut self) -> Vec<usize> {
        let attempts = &self.attempts;
        self.index.pending.retain(|&key| {
            attempts
                .by_key(key)
                .is_some_and(|a| a.status == Status::Pending)
        });
        self.index
            .pending
            .iter()
            .filter_map(|&key| attempts.position(key))
            .collect()
    }

    /// Drops the finished attempts and the events past `retain` at `now`; returns whether
    /// anything was dropped. Costs a pass over what is kept (bounded by the window): the
    /// caller calls it when the window has been overrun by a margin, or now and then for the
    /// time bound.
    pub fn prune(&mut self, now: Millis, retain: Retain) -> bool {
        let oldest = now.saturating_sub(retain.keep_ms);
        let finished = self
            .attempts
            .iter()
            .filter(|a| a.status != Status::Pending)
            .count();
        let mut excess = finished.saturating_sub(retain.keep_count);
        let before = (self.attempts.len(), self.events.len());
        let index = &mut self.index;
        // Attempts are in creation order and each finishes within its timeout of its
        // creation: the first finished ones are the oldest.
        self.attempts.retain(|a: &Attempt| {
            let keep = a.status == Status::Pending
                || if excess > 0 {
                    excess -= 1;
                    false
                } else {
                    a.finished_at.unwrap_or(a.created_at) >= oldest
                };
            if !keep {
                index.attempts.remove(&a.action_attempt_id);
            }
            keep
        });
        // Events are in time order: the old ones are a prefix, found by bisection.
        let by_time = self
            .events
            .partition_point(|e| event_time(e).is_some_and(|t| t < oldest));
        let by_count = self.events.len().saturating_sub(retain.keep_count);
        let drop = by_time.max(by_count);
        for event in self.events.get(..drop).unwrap_or_default() {
            if let Some(id) = event_id(event) {
                index.events.remove(id);
            }
        }
        self.events.drop_front(drop);
        let changed = before != (self.attempts.len(), self.events.len());
        if changed {
            self.attempts.shrink();
            self.events.shrink();
        }
        changed
    }

    /// A credential by id.
    pub fn credential(&self, id: &str) -> Result<&Credential, ApiError> {
        self.index
            .credentials
            .get(id)
            .and_then(|&key| self.credentials.by_key(key))
            .ok_or_else(|| ApiError::not_found("acs_credential", id))
    }

    /// A credential by id, to change.
    pub fn credential_mut(&mut self, id: &str) -> Result<&mut Credential, ApiError> {
        self.index
            .credentials
            .get(id)
            .and_then(|&key| self.credentials.position(key))
            .and_then(|at| self.credentials.get_mut(at))
            .ok_or_else(|| ApiError::not_found("acs_credential", id))
    }

    fn user(&self, id: &str) -> Result<&User, ApiError> {
        self.index
            .users
            .get(id)
            .and_then(|&key| self.users.by_key(key))
            .ok_or_else(|| ApiError::not_found("acs_user", id))
    }

    /// An encoder by id.
    pub fn encoder(&self, id: &str) -> Result<&Encoder, ApiError> {
        self.encoders
            .iter()
            .find(|e| e.acs_encoder_id == id)
            .ok_or_else(|| ApiError::not_found("acs_encoder", id))
    }

    /// An attempt by id.
    pub fn attempt(&self, id: &str) -> Result<&Attempt, ApiError> {
        self.attempt_index(id)
            .and_then(|i| self.attempts.get(i))
            .ok_or_else(|| ApiError::not_found("action_attempt", id))
    }

    fn system(&self, id: &str) -> Result<&AcsSystem, ApiError> {
        self.systems
            .iter()
            .find(|s| s.acs_system_id == id)
            .ok_or_else(|| ApiError::not_found("acs_system", id))
    }

    /// `/acs/systems/list`. `bridge_away_since` is when the simulator last saw no bridge
    /// connected (`None` while one is): shown as Seam shows it, a `bridge_disconnected` error
    /// on the system.
    pub fn list_systems(&self, bridge_away_since: Option<Millis>) -> Value {
        let systems: Vec<Value> = self
            .systems
            .iter()
            .map(|s| system_json(s, bridge_away_since))
            .collect();
        json!({ "acs_systems": systems })
    }

    /// `/acs/systems/get`.
    pub fn get_system(
        &self,
        id: &str,
        bridge_away_since: Option<Millis>,
    ) -> Result<Value, ApiError> {
        let system = self.system(id)?;
        Ok(json!({ "acs_system": system_json(system, bridge_away_since) }))
    }

    /// `/acs/entrances/list`.
    pub fn list_entrances(&self, system: Option<&str>) -> Value {
        let entrances: Vec<Value> = self
            .entrances
            .iter()
            .filter(|e| system.is_none_or(|s| s == e.acs_system_id))
            .map(|e| {
                json!({
                    "acs_entrance_id": e.acs_entrance_id,
                    "acs_system_id": e.acs_system_id,
                    "connected_account_id": CONNECTED_ACCOUNT_ID,
                    "display_name": e.display_name,
                    "created_at": format_time(e.created_at),
                    "space_ids": [],
                    "can_unlock_with_card": true,
                    "errors": [],
                })
            })
            .collect();
        json!({ "acs_entrances": entrances, "pagination": last_page() })
    }

    /// `/acs/users/get`.
    pub fn get_user(&self, id: &str) -> Result<Value, ApiError> {
        Ok(json!({ "acs_user": user_json(self.user(id)?) }))
    }

    /// `/acs/users/list`.
    pub fn list_users(&self, system: Option<&str>) -> Value {
        let users: Vec<Value> = self
            .users
            .iter()
            .filter(|u| system.is_none_or(|s| s == u.acs_system_id))
            .map(user_json)
            .collect();
        json!({ "acs_users": users, "pagination": last_page() })
    }

    /// `/events/get`.
    pub fn get_event(&self, id: &str) -> Result<Value, ApiError> {
        let event = self
            .index
            .events
            .get(id)
            .and_then(|&key| self.events.by_key(key))
            .ok_or_else(|| ApiError::not_found("event", id))?;
        Ok(json!({ "event": event }))
    }

    /// `/acs/users/create`.
    pub fn create_user(
        &mut self,
        now: Millis,
        system: &str,
        full_name: Option<String>,
        email_address: Option<String>,
        phone_number: Option<String>,
    ) -> Result<Value, ApiError> {
        self.system(system)?;
        let user = User {
            acs_user_id: new_id(),
            acs_system_id: system.to_owned(),
            full_name,
            email_address,
            phone_number,
            created_at: now,
        };
        let view = user_json(&user);
        let id = user.acs_user_id.clone();
        let at = self.users.push(user);
        if let Some(key) = self.users.key(at) {
            self.index.users.insert(id, key);
        }
        Ok(json!({ "acs_user": view }))
    }

    /// `/acs/credentials/create`.
    pub fn create_credential(
        &mut self,
        now: Millis,
        request: NewCredential,
    ) -> Result<Value, ApiError> {
        let user = self.user(&request.acs_user_id)?;
        if request.access_method != "card" {
            return Err(ApiError::invalid_input(format!(
                "access_method {:?} is not supported here: this system issues \"card\" credentials",
                request.access_method
            )));
        }
        for id in &request.allowed_acs_entrance_ids {
            if !self
                .entrances
                .iter()
                .any(|e| &e.acs_entrance_id == id && e.acs_system_id == user.acs_system_id)
            {
                return Err(ApiError::not_found("acs_entrance", id));
            }
        }
        let starts_at = parse_opt_time("starts_at", request.starts_at.as_deref())?;
        let ends_at = parse_opt_time("ends_at", request.ends_at.as_deref())?;
        check_window(starts_at, ends_at)?;
        let credential = Credential {
            acs_credential_id: new_id(),
            acs_user_id: user.acs_user_id.clone(),
            acs_system_id: user.acs_system_id.clone(),
            access_method: request.access_method,
            display_name: request.display_name,
            card_number: None,
            is_issued: false,
            issued_at: None,
            starts_at,
            ends_at,
            created_at: now,
            allowed_acs_entrance_ids: request.allowed_acs_entrance_ids,
            card_uid: None,
            issue_counter: 0,
            needs_reissue: false,
            changed_at: None,
        };
        let view = credential_json(&credential);
        let id = credential.acs_credential_id.clone();
        let at = self.credentials.push(credential);
        if let Some(key) = self.credentials.key(at) {
            self.index.credentials.insert(id, key);
        }
        Ok(json!({ "acs_credential": view }))
    }

    /// `/acs/credentials/update`: `starts_at` and `ends_at` (`null` clears one).
    #[allow(clippy::option_option)] // absent (keep), null (clear), a value (set)
    pub fn update_credential(
        &mut self,
        now: Millis,
        id: &str,
        starts_at: Option<Option<String>>,
        ends_at: Option<Option<String>>,
    ) -> Result<Value, ApiError> {
        let starts = starts_at
            .map(|s| parse_opt_time("starts_at", s.as_deref()))
            .transpose()?;
        let ends = ends_at
            .map(|s| parse_opt_time("ends_at", s.as_deref()))
            .transpose()?;
        let credential = self.credential_mut(id)?;
        let new_starts = starts.unwrap_or(credential.starts_at);
        let new_ends = ends.unwrap_or(credential.ends_at);
        check_window(new_starts, new_ends)?;
        if credential.is_issued
            && (new_starts != credential.starts_at || new_ends != credential.ends_at)
        {
            credential.needs_reissue = true;
            credential.changed_at = Some(now);
        }
        credential.starts_at = new_starts;
        credential.ends_at = new_ends;
        Ok(json!({ "acs_credential": credential_json(credential) }))
    }

    /// `/acs/credentials/list`.
    pub fn list_credentials(&self, user: Option<&str>, system: Option<&str>) -> Value {
        let list: Vec<Value> = self
            .credentials
            .iter()
            .filter(|c| user.is_none_or(|u| u == c.acs_user_id))
            .filter(|c| system.is_none_or(|s| s == c.acs_system_id))
            .map(credential_json)
            .collect();
        json!({ "acs_credentials": list, "pagination": last_page() })
    }

    /// `/events/list`: optionally by type(s), credential, encoder, and not before `since`.
    pub fn list_events(&self, filter: &EventFilter) -> Result<Value, ApiError> {
        let since = parse_opt_time("since", filter.since.as_deref())?;
        let mut types: Vec<&str> = filter.event_types.iter().map(String::as_str).collect();
        if let Some(t) = &filter.event_type {
            types.push(t);
        }
        let field_is = |event: &Value, key: &str, want: Option<&String>| {
            want.is_none_or(|w| event.get(key).and_then(Value::as_str) == Some(w.as_str()))
        };
        let mut list: Vec<Value> = self
            .events
            .iter()
            .filter(|e| {
                types.is_empty()
                    || e.get("event_type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| types.contains(&t))
            })
            .filter(|e| field_is(e, "acs_credential_id", filter.acs_credential_id.as_ref()))
            .filter(|e| field_is(e, "acs_encoder_id", filter.acs_encoder_id.as_ref()))
            .filter(|e| {
                since.is_none_or(|since| {
                    e.get("occurred_at")
                        .and_then(Value::as_str)
                        .and_then(parse_time)
                        .is_some_and(|t| t >= since)
                })
            })
            .cloned()
            .collect();
        if let Some(limit) = filter.limit {
            let skip = list
                .len()
                .saturating_sub(usize::try_from(limit).unwrap_or(usize::MAX));
            list.drain(..skip);
        }
        Ok(json!({ "events": list }))
    }
}

/// The body of `/acs/credentials/create`.
#[derive(Debug, Clone, Deserialize)]
pub struct NewCredential {
    /// Owner.
    pub acs_user_id: String,
    /// Must be `card`.
    pub access_method: String,
    /// Entrances.
    #[serde(default)]
    pub allowed_acs_entrance_ids: Vec<String>,
    /// Validity start (RFC 3339).
    #[serde(default)]
    pub starts_at: Option<String>,
    /// Validity end (RFC 3339).
    #[serde(default)]
    pub ends_at: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// The body of `/events/list`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventFilter {
    /// One type.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Several types.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Events about this credential.
    #[serde(default)]
    pub acs_credential_id: Option<String>,
    /// Events about this encoder.
    #[serde(default)]
    pub acs_encoder_id: Option<String>,
    /// Not before (RFC 3339).
    #[serde(default)]
    pub since: Option<String>,
    /// The newest N.
    #[serde(default)]
    pub limit: Option<u64>,
}

fn parse_opt_time(field: &str, value: Option<&str>) -> Result<Option<Millis>, ApiError> {
    value
        .map(|s| {
            parse_time(s).ok_or_else(|| {
                ApiError::invalid_input(format!(
                    "{field} must be an ISO 8601 time such as 2024-12-01T15:00:00.000Z, not {s:?}"
                ))
            })
        })
        .transpose()
}

fn check_window(starts_at: Option<Millis>, ends_at: Option<Millis>) -> Result<(), ApiError> {
    match (starts_at, ends_at) {
        (Some(s), Some(e)) if e <= s => Err(ApiError::invalid_input(
            "ends_at must be later than starts_at",
        )),
        _ => Ok(()),
    }
}

/// The `pagination` of a list answered whole (the simulator never pages).
pub fn last_page() -> Value {
    json!({"has_next_page": false, "next_page_cursor": null, "next_page_url": null})
}

/// Puts `key: value` into `map` unless the value is absent: Seam omits optional properties
/// its schema does not mark nullable (a user's `email_address`, a credential's `ends_at`)
/// rather than sending `null`.
fn put_some(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), value);
    }
}

/// The public view of an access system. While no bridge is connected it carries Seam's
/// `bridge_disconnected` error, dated from when the last bridge went away.
pub fn system_json(s: &AcsSystem, bridge_away_since: Option<Millis>) -> Value {
    let errors: Vec<Value> = bridge_away_since
        .map(|since| {
            json!({
                "error_code": "bridge_disconnected",
                "message": "No encoder bridge is connected: encoders cannot be reached.",
                "created_at": format_time(since),
            })
        })
        .into_iter()
        .collect();
    json!({
        "acs_system_id": s.acs_system_id,
        "name": s.name,
        "external_type_display_name": "encoder-bridge simulator",
        "is_credential_manager": false,
        "location": {"time_zone": null},
        "image_url": SYSTEM_IMAGE_URL,
        "image_alt_text": "encoder-bridge simulator",
        "connected_account_id": CONNECTED_ACCOUNT_ID,
        "connected_account_ids": [CONNECTED_ACCOUNT_ID],
        "workspace_id": WORKSPACE_ID,
        "created_at": format_time(s.created_at),
        "errors": errors,
        "warnings": [],
    })
}

/// The image of the simulated system (Seam serves one per system).
pub const SYSTEM_IMAGE_URL: &str =
    "https://connect.getseam.com/assets/images/acs_systems/default.png";

/// The public view of a user (`is_managed`: created through this API).
pub fn user_json(u: &User) -> Value {
    let mut view = Map::new();
    view.insert("acs_user_id".into(), u.acs_user_id.clone().into());
    view.insert("acs_system_id".into(), u.acs_system_id.clone().into());
    view.insert("workspace_id".into(), WORKSPACE_ID.into());
    view.insert("connected_account_id".into(), CONNECTED_ACCOUNT_ID.into());
    view.insert(
        "display_name".into(),
        u.full_name.clone().unwrap_or_default().into(),
    );
    put_some(&mut view, "full_name", u.full_name.clone().map(Value::from));
    put_some(
        &mut view,
        "email_address",
        u.email_address.clone().map(Value::from),
    );
    put_some(
        &mut view,
        "phone_number",
        u.phone_number.clone().map(Value::from),
    );
    view.insert("is_managed".into(), true.into());
    view.insert("is_suspended".into(), false.into());
    view.insert("created_at".into(), format_time(u.created_at).into());
    // The simulator is its own access system: every change is in sync at once.
    view.insert(
        "last_successful_sync_at".into(),
        format_time(u.created_at).into(),
    );
    view.insert("errors".into(), json!([]));
    view.insert("warnings".into(), json!([]));
    Value::Object(view)
}

/// The public view of a credential (`is_managed`: created through this API). `starts_at`
/// and `ends_at` are omitted when unset (Seam's schema has them as non-nullable strings).
pub fn credential_json(c: &Credential) -> Value {
    let warnings: Vec<Value> = if c.needs_reissue {
        vec![json!({
            "warning_code": "needs_to_be_reissued",
            "message": "The credential was changed after it was written to a card: re-encode the card.",
            "created_at": format_time(c.changed_at.unwrap_or(c.created_at)),
        })]
    } else {
        Vec::new()
    };
    let mut view = Map::new();
    view.insert(
        "acs_credential_id".into(),
        c.acs_credential_id.clone().into(),
    );
    view.insert("acs_user_id".into(), c.acs_user_id.clone().into());
    view.insert("acs_system_id".into(), c.acs_system_id.clone().into());
    view.insert("workspace_id".into(), WORKSPACE_ID.into());
    view.insert("connected_account_id".into(), CONNECTED_ACCOUNT_ID.into());
    view.insert("access_method".into(), c.access_method.clone().into());
    view.insert("display_name".into(), c.display_name().into());
    view.insert("card_number".into(), json!(c.card_number));
    view.insert("is_issued".into(), c.is_issued.into());
    view.insert("issued_at".into(), opt_time(c.issued_at));
    put_some(
        &mut view,
        "starts_at",
        c.starts_at.map(|t| format_time(t).into()),
    );
    put_some(
        &mut view,
        "ends_at",
        c.ends_at.map(|t| format_time(t).into()),
    );
    view.insert("is_managed".into(), true.into());
    view.insert("is_multi_phone_sync_credential".into(), false.into());
    view.insert("created_at".into(), format_time(c.created_at).into());
    view.insert("warnings".into(), Value::Array(warnings));
    view.insert("errors".into(), json!([]));
    Value::Object(view)
}

/// The public view of an encoder; `bridge_connected` says whether its bridge is online now.
///
/// Seam's schema knows one encoder error, `acs_encoder_removed`. What only a bridge knows
/// (is its bridge connected, can it reach the reader, is a card on it) goes in the
/// simulator's own `encoder_bridge_metadata` (vendor metadata, as Seam's `*_metadata`
/// objects are): `is_online` is true when the encoder can take an attempt now.
pub fn encoder_json(e: &Encoder, bridge_connected: bool) -> Value {
    let errors: Vec<Value> = e
        .removed_at
        .map(|at| {
            json!({
                "error_code": "acs_encoder_removed",
                "message": "The encoder was removed from its bridge.",
                "created_at": format_time(at),
            })
        })
        .into_iter()
        .collect();
    json!({
        "acs_encoder_id": e.acs_encoder_id,
        "acs_system_id": e.acs_system_id,
        "workspace_id": WORKSPACE_ID,
        "connected_account_id": CONNECTED_ACCOUNT_ID,
        "display_name": e.display_name,
        "created_at": format_time(e.created_at),
        "errors": errors,
        "encoder_bridge_metadata": {
            "bridge_id": e.bridge_id,
            "bridge_connected": bridge_connected,
            "is_online": bridge_connected && e.online && e.removed_at.is_none(),
            "card_present": e.card_present,
            "kind": e.kind,
            "reader": e.reader,
        },
    })
}

/// A new event object (Seam's webhook shape) with `fields` merged in.
pub fn event(
    now: Millis,
    event_type: &str,
    description: &str,
    fields: Map<String, Value>,
) -> Value {
    let mut event = Map::new();
    event.insert("event_id".into(), Value::String(new_id()));
    event.insert("event_description".into(), description.into());
    event.insert("event_type".into(), event_type.into());
    event.insert("workspace_id".into(), WORKSPACE_ID.into());
    event.insert("created_at".into(), format_time(now).into());
    event.insert("occurred_at".into(), format_time(now).into());
    event.insert("acs_system_id".into(), SYSTEM_ID.into());
    event.insert("connected_account_id".into(), CONNECTED_ACCOUNT_ID.into());
    event.extend(fields);
    Value::Object(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let ms = parse_time("2024-12-01T15:00:00.000Z").unwrap();
        assert_eq!(format_time(ms), "2024-12-01T15:00:00.000Z");
        assert_eq!(parse_time("2024-12-01T15:00:00Z"), Some(ms));
        assert_eq!(parse_time("2024-12-01T16:00:00+01:00"), Some(ms));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(format_time(1_729_712_766_113), "2024-10-23T19:46:06.113Z");
    }

    #[test]
    fn credential_flow_and_errors() {
        let mut state = State::seeded(0);
        let user = state
            .create_user(1, SYSTEM_ID, Some("Jane Doe".into()), None, None)
            .unwrap();
        let user_id = user["acs_user"]["acs_user_id"].as_str().unwrap().to_owned();
        let request = NewCredential {
            acs_user_id: user_id.clone(),
            access_method: "card".into(),
            allowed_acs_entrance_ids: vec![ENTRANCES[0].0.into()],
            starts_at: Some("2024-12-01T15:00:00.000Z".into()),
            ends_at: Some("2024-12-04T12:00:00Z".into()),
            display_name: None,
        };
        let made = state.create_credential(2, request.clone()).unwrap();
        let cred = &made["acs_credential"];
        assert_eq!(cred["is_issued"], false);
        assert_eq!(cred["ends_at"], "2024-12-04T12:00:00.000Z");
        let id = cred["acs_credential_id"].as_str().unwrap().to_owned();

        let mut bad = request.clone();
        bad.ends_at = Some("soon".into());
        assert_eq!(state.create_credential(3, bad).unwrap_err().status, 400);
        let mut bad = request.clone();
        bad.acs_user_id = "nobody".into();
        assert_eq!(state.create_credential(3, bad).unwrap_err().status, 404);
        let mut bad = request;
        bad.access_method = "code".into();
        assert_eq!(state.create_credential(3, bad).unwrap_err().status, 400);

        let updated = state
            .update_credential(9, &id, None, Some(Some("2024-12-05T12:00:00Z".into())))
            .unwrap();
        assert_eq!(
            updated["acs_credential"]["ends_at"],
            "2024-12-05T12:00:00.000Z"
        );
        let err = state
            .update_credential(9, &id, None, Some(Some("2024-11-01T00:00:00Z".into())))
            .unwrap_err();
        assert_eq!(err.kind, "invalid_input");
        assert_eq!(
            state
                .update_credential(9, "x", None, None)
                .unwrap_err()
                .status,
            404
        );
    }
}
