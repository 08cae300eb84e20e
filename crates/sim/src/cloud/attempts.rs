//! The attempt lifecycle and the cloud side of the bridge protocol, without sockets.
//!
//! [`Core`] holds the [`State`] plus what only lives while the process runs: which bridge is
//! connected on which channel, and since when a bridge has been away. Every operation takes
//! the current time, so the lifecycle (leases, deadlines, the no-bridge grace) is tested with
//! plain numbers. Messages for a bridge go to its channel as JSON text; new events are queued
//! for the webhook; every change to the state is noted by its rows ([`super::rows`]), which
//! the caller saves.
//!
//! Decisions where docs/cloud-protocol.md leaves room:
//! - The first terminal status wins. A result that arrives after the attempt expired is
//!   acknowledged, and an encode success is still applied to the credential (the card holds
//!   it now), but the attempt stays `action_attempt_expired`.
//! - A result for an attempt the cloud does not know is acknowledged (and logged): nothing
//!   can ever accept it, and the bridge would resend it forever.
//! - `renew` by a bridge that no longer holds the attempt is answered with `claim_refused`.
//! - `hello` lists all of a bridge's encoders: those it drove before and no longer lists are
//!   removed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::model::{
    ActionType, ApiError, Attempt, AttemptError, Claim, Encoder, Millis, Retain, SYSTEM_ID, State,
    Status, credential_json, encoder_json, event, format_time, last_page, new_id, parse_time,
};

pub mod sandbox;

use sandbox::Scripts;

/// How long a grant lasts unless renewed.
pub const LEASE_MS: Millis = 30_000;

/// Timing of the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// From creation to `action_attempt_expired` for an attempt still pending.
    pub attempt_timeout_ms: Millis,
    /// A pending attempt whose encoder's bridge has been away this long (and which no bridge
    /// holds) ends as `action_attempt_expired` early.
    pub no_bridge_grace_ms: Millis,
    /// Lease of a grant.
    pub lease_ms: Millis,
    /// How long, and how many, finished attempts and events are kept.
    pub retain: Retain,
}

/// How often the time bound of [`Retain`] is applied at least (the count bound is applied
/// as soon as it is overrun by an eighth).
const PRUNE_EVERY_MS: Millis = 10_000;

impl Default for Timing {
    fn default() -> Self {
        Self {
            attempt_timeout_ms: 120_000,
            no_bridge_grace_ms: 30_000,
            lease_ms: LEASE_MS,
            retain: Retain::default(),
        }
    }
}

/// An encoder as a bridge describes it (`hello`, `encoder_added`).
#[derive(Debug, Clone, Deserialize)]
pub struct EncoderInfo {
    /// Id, kept by the bridge across restarts.
    pub encoder_id: String,
    /// Name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `pcsc` or `pn532`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Reader name or device path.
    #[serde(default)]
    pub reader: Option<String>,
    /// Reachable.
    #[serde(default = "yes")]
    pub online: bool,
    /// A card is on it.
    #[serde(default)]
    pub card_present: bool,
}

fn yes() -> bool {
    true
}

/// A `result` message.
#[derive(Debug, Clone, Deserialize)]
pub struct ResultMsg {
    /// The attempt.
    pub action_attempt_id: String,
    /// Must match the attempt's when given.
    #[serde(default)]
    pub action_type: Option<ActionType>,
    /// The encoder used.
    #[serde(default)]
    pub encoder_id: Option<String>,
    /// `success` or `error`.
    pub status: ResultStatus,
    /// When the bridge finished.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Set on success.
    #[serde(default)]
    pub result: Option<Value>,
    /// Set on error.
    #[serde(default)]
    pub error: Option<ResultError>,
}

/// A result's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    /// Done.
    Success,
    /// Failed.
    Error,
}

/// A result's error.
#[derive(Debug, Clone, Deserialize)]
pub struct ResultError {
    /// Error type.
    #[serde(rename = "type")]
    pub kind: String,
    /// For a person.
    #[serde(default)]
    pub message: String,
    /// Stable machine name.
    #[serde(default)]
    pub sub_code: Option<String>,
    /// For engineers.
    #[serde(default)]
    pub detail: Option<String>,
}

struct Connection {
    id: u64,
    tx: UnboundedSender<String>,
}

/// The simulator's state and its live bridge connections.
pub struct Core {
    /// The persistent state.
    pub state: State,
    timing: Timing,
    connections: BTreeMap<String, Connection>,
    away_since: BTreeMap<String, Millis>,
    started_at: Millis,
    next_prune: Millis,
    /// Messages for bridges, held (by the server) until the state that led to them is saved.
    held: Option<Vec<(UnboundedSender<String>, String)>>,
    new_events: Vec<Value>,
    /// Outcomes scripted by the `/acs/encoders/simulate/*` routes, per encoder.
    scripts: BTreeMap<String, Scripts>,
}

/// Logs a line on stderr.
pub(crate) fn log(line: &str) {
    eprintln!("encoder-sim cloud: {line}");
}

impl Core {
    /// A core over `state`, started at `now`.
    pub fn new(state: State, timing: Timing, now: Millis) -> Self {
        Self {
            state,
            timing,
            connections: BTreeMap::new(),
            away_since: BTreeMap::new(),
            started_at: now,
            next_prune: now,
            held: None,
            new_events: Vec::new(),
            scripts: BTreeMap::new(),
        }
    }

    /// From now on, messages for bridges wait for [`Core::release_messages`] (the server
    /// releases them once the changes that led to them are saved). Without it (tests, fuzz
    /// targets) they go to the bridge's channel at once.
    pub fn hold_messages(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Sends the held messages, in order.
    pub fn release_messages(&mut self) {
        if let Some(held) = &mut self.held {
            for (tx, text) in held.drain(..) {
                // A closed channel means the session is ending; its disconnect will follow.
                let _ = tx.send(text);
            }
        }
    }

    /// Events created since the last call, for the webhook.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.new_events)
    }

    fn emit(&mut self, now: Millis, event_type: &str, description: &str, fields: Value) {
        let fields = match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let event = event(now, event_type, description, fields);
        self.state.push_event(event.clone());
        self.new_events.push(event);
    }

    /// Whether a bridge is connected now.
    pub fn is_connected(&self, bridge_id: &str) -> bool {
        self.connections.contains_key(bridge_id)
    }

    fn send(&mut self, bridge_id: &str, message: &Value) {
        if let Some(conn) = self.connections.get(bridge_id) {
            match &mut self.held {
                Some(held) => held.push((conn.tx.clone(), message.to_string())),
                // A closed channel means the session is ending; its disconnect will follow.
                None => drop(conn.tx.send(message.to_string())),
            }
        }
    }

    fn encoder_bridge(&self, encoder_id: &str) -> Option<&str> {
        self.state
            .encoders
            .iter()
            .find(|e| e.acs_encoder_id == encoder_id)
            .map(|e| e.bridge_id.as_str())
    }

    // ---- HTTP side -------------------------------------------------------------------------

    /// `/acs/encoders/list`.
    pub fn list_encoders(&self, systems: &[String], encoder_ids: &[String]) -> Value {
        let list: Vec<Value> = self
            .state
            .encoders
            .iter()
            .filter(|e| systems.is_empty() || systems.contains(&e.acs_system_id))
            .filter(|e| encoder_ids.is_empty() || encoder_ids.contains(&e.acs_encoder_id))
            .map(|e| encoder_json(e, self.is_connected(&e.bridge_id)))
            .collect();
        json!({ "acs_encoders": list, "pagination": last_page() })
    }

    /// Since when no bridge has been connected (`None` while one is).
    fn bridges_away_since(&self) -> Option<Millis> {
        if self.connections.is_empty() {
            Some(
                self.away_since
                    .values()
                    .copied()
                    .max()
                    .unwrap_or(self.started_at),
            )
        } else {
            None
        }
    }

    /// `/acs/systems/list`.
    pub fn list_systems(&self) -> Value {
        self.state.list_systems(self.bridges_away_since())
    }

    /// `/acs/systems/get`.
    pub fn get_system(&self, id: &str) -> Result<Value, ApiError> {
        self.state.get_system(id, self.bridges_away_since())
    }

    /// `/action_attempts/list`: the attempts named (in the order named; unknown ids are left
    /// out, as Seam does), at most `limit`.
    pub fn list_attempts(&self, ids: &[String], limit: Option<usize>) -> Value {
        let list: Vec<Value> = ids
            .iter()
            .filter_map(|id| self.state.attempt(id).ok())
            .take(limit.unwrap_or(usize::MAX))
            .map(Attempt::json)
            .collect();
        json!({ "action_attempts": list, "pagination": last_page() })
    }

    /// `/acs/encoders/get`.
    pub fn get_encoder(&self, id: &str) -> Result<Value, ApiError> {
        let e = self.state.encoder(id)?;
        Ok(json!({ "acs_encoder": encoder_json(e, self.is_connected(&e.bridge_id)) }))
    }

    /// `/action_attempts/get`.
    pub fn get_attempt(&self, id: &str) -> Result<Value, ApiError> {
        Ok(json!({ "action_attempt": self.state.attempt(id)?.json() }))
    }

    /// `/acs/encoders/encode_credential`.
    pub fn encode_credential(
        &mut self,
        now: Millis,
        encoder_id: &str,
        credential_id: &str,
    ) -> Result<Value, ApiError> {
        let credential = self.state.credential(credential_id)?;
        if credential.access_method != "card" {
            return Err(ApiError::invalid_input(
                "only card credentials can be encoded onto a card",
            ));
        }
        self.new_attempt(now, ActionType::Encode, encoder_id, Some(credential_id))
    }

    /// `/acs/encoders/scan_credential`.
    pub fn scan_credential(&mut self, now: Millis, encoder_id: &str) -> Result<Value, ApiError> {
        self.new_attempt(now, ActionType::Scan, encoder_id, None)
    }

    fn new_attempt(
        &mut self,
        now: Millis,
        action_type: ActionType,
        encoder_id: &str,
        credential_id: Option<&str>,
    ) -> Result<Value, ApiError> {
        let encoder = self.state.encoder(encoder_id)?;
        if encoder.removed_at.is_some() {
            return Err(ApiError::new(
                400,
                "acs_encoder_removed",
                format!("acs_encoder {encoder_id} was removed from its bridge"),
            ));
        }
        let bridge = encoder.bridge_id.clone();
        let attempt = Attempt {
            action_attempt_id: new_id(),
            action_type,
            encoder_id: encoder_id.to_owned(),
            credential_id: credential_id.map(str::to_owned),
            status: Status::Pending,
            result: None,
            error: None,
            created_at: now,
            expires_at: now.saturating_add(self.timing.attempt_timeout_ms),
            claim: None,
            result_from: None,
            finished_at: None,
        };
        let view = attempt.json();
        let offer = self.offer(&attempt);
        let index = self.state.push_attempt(attempt);
        if let Some(finished) = self.run_script(now, index) {
            // Scripted by a simulate route: finished here, no bridge or card involved.
            return Ok(json!({ "action_attempt": finished }));
        }
        self.send(&bridge, &offer);
        Ok(json!({ "action_attempt": view }))
    }

    /// The `attempt_available` message for an attempt.
    fn offer(&self, attempt: &Attempt) -> Value {
        let credential = attempt
            .credential_id
            .as_deref()
            .and_then(|id| self.state.credential(id).ok())
            .map_or(Value::Null, |c| {
                let card_number = c
                    .card_number
                    .as_ref()
                    .filter(|n| n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()));
                json!({
                    "acs_credential_id": c.acs_credential_id,
                    "card_number": card_number,
                    "starts_at": c.starts_at.map(format_time),
                    "ends_at": c.ends_at.map(format_time),
                    "is_issued": c.is_issued,
                    "issue_counter": c.issue_counter.saturating_add(1),
                    "access_data": "",
                    // The one card an issued credential may be written to again
                    // (docs/cloud-protocol.md, attempt_available); the bridge refuses others.
                    "card_uid": c.card_uid,
                })
            });
        json!({
            "type": "attempt_available",
            "action_attempt_id": attempt.action_attempt_id,
            "action_type": attempt.action_type.as_str(),
            "encoder_id": attempt.encoder_id,
            "created_at": format_time(attempt.created_at),
            "expires_at": format_time(attempt.expires_at),
            "credential": credential,
        })
    }

    // ---- bridge side -----------------------------------------------------------------------

    /// A bridge said `hello`: register its channel (replacing an older connection of the same
    /// bridge), sync its encoders, answer `welcome` and offer its pending attempts.
    pub fn hello(
        &mut self,
        now: Millis,
        bridge_id: &str,
        conn_id: u64,
        tx: UnboundedSender<String>,
        encoders: Vec<EncoderInfo>,
    ) {
        if self
            .connections
            .insert(bridge_id.to_owned(), Connection { id: conn_id, tx })
            .is_some()
        {
            log(&format!(
                "bridge {bridge_id} connected again: the older connection is closed"
            ));
        }
        self.away_since.remove(bridge_id);
        self.send(
            bridge_id,
            &json!({"type": "welcome", "protocol": 1, "server_time": format_time(now)}),
        );
        let listed: Vec<String> = encoders.iter().map(|e| e.encoder_id.clone()).collect();
        let gone: Vec<String> = self
            .state
            .encoders
            .iter()
            .filter(|e| {
                e.bridge_id == bridge_id
                    && e.removed_at.is_none()
                    && !listed.contains(&e.acs_encoder_id)
            })
            .map(|e| e.acs_encoder_id.clone())
            .collect();
        for id in gone {
            self.encoder_removed(now, bridge_id, &id);
        }
        for info in encoders {
            self.upsert_encoder(now, bridge_id, info, false);
        }
        let offers: Vec<Value> = self
            .state
            .pending()
            .into_iter()
            .filter_map(|i| self.state.attempts.get(i))
            .filter(|a| self.encoder_bridge(&a.encoder_id) == Some(bridge_id))
            .filter(|a| {
                a.claim
                    .as_ref()
                    .is_none_or(|c| c.bridge_id == bridge_id || c.lease_expires_at <= now)
            })
            .map(|a| self.offer(a))
            .collect();
        for offer in &offers {
            self.send(bridge_id, offer);
        }
    }

    /// A bridge's connection ended (only if `conn_id` is still its current connection).
    pub fn disconnect(&mut self, now: Millis, bridge_id: &str, conn_id: u64) {
        if self
            .connections
            .get(bridge_id)
            .is_some_and(|c| c.id == conn_id)
        {
            self.connections.remove(bridge_id);
            self.away_since.insert(bridge_id.to_owned(), now);
            log(&format!("bridge {bridge_id} disconnected"));
        }
    }

    /// `encoder_added`.
    pub fn encoder_added(&mut self, now: Millis, bridge_id: &str, info: EncoderInfo) {
        self.upsert_encoder(now, bridge_id, info, true);
    }

    fn upsert_encoder(&mut self, now: Millis, bridge_id: &str, info: EncoderInfo, offer: bool) {
        let name = info.display_name.clone().unwrap_or_else(|| {
            format!(
                "Encoder {}",
                info.encoder_id.chars().take(8).collect::<String>()
            )
        });
        let known = self
            .state
            .encoders
            .find_mut(|e| e.acs_encoder_id == info.encoder_id);
        let added = if let Some(e) = known {
            let was_removed = e.removed_at.take().is_some();
            e.display_name = name;
            bridge_id.clone_into(&mut e.bridge_id);
            e.kind = info.kind;
            e.reader = info.reader;
            e.online = info.online;
            e.card_present = info.card_present;
            was_removed
        } else {
            {
                self.state.encoders.push(Encoder {
                    acs_encoder_id: info.encoder_id.clone(),
                    acs_system_id: SYSTEM_ID.to_owned(),
                    display_name: name,
                    created_at: now,
                    bridge_id: bridge_id.to_owned(),
                    kind: info.kind,
                    reader: info.reader,
                    online: info.online,
                    card_present: info.card_present,
                    removed_at: None,
                });
                true
            }
        };
        if added {
            self.emit(
                now,
                "acs_encoder.added",
                "An ACS encoder was added.",
                json!({"acs_encoder_id": info.encoder_id}),
            );
        }
        if offer {
            let offers: Vec<Value> = self
                .state
                .pending()
                .into_iter()
                .filter_map(|i| self.state.attempts.get(i))
                .filter(|a| a.encoder_id == info.encoder_id && a.claim.is_none())
                .map(|a| self.offer(a))
                .collect();
            for offer in &offers {
                self.send(bridge_id, offer);
            }
        }
    }

    /// `encoder_removed`.
    pub fn encoder_removed(&mut self, now: Millis, bridge_id: &str, encoder_id: &str) {
        let Some(e) = self
            .state
            .encoders
            .find_mut(|e| e.acs_encoder_id == encoder_id && e.bridge_id == bridge_id)
        else {
            log(&format!(
                "bridge {bridge_id} removed encoder {encoder_id}, which it does not drive"
            ));
            return;
        };
        if e.removed_at.is_some() {
            return;
        }
        e.removed_at = Some(now);
        e.online = false;
        self.emit(
            now,
            "acs_encoder.removed",
            "An ACS encoder was removed.",
            json!({"acs_encoder_id": encoder_id}),
        );
    }

    /// `encoder_status`.
    pub fn encoder_status(
        &mut self,
        bridge_id: &str,
        encoder_id: &str,
        online: Option<bool>,
        card_present: Option<bool>,
    ) {
        if let Some(e) = self
            .state
            .encoders
            .find_mut(|e| e.acs_encoder_id == encoder_id && e.bridge_id == bridge_id)
        {
            if let Some(online) = online {
                e.online = online;
            }
            if let Some(card_present) = card_present {
                e.card_present = card_present;
            }
        } else {
            log(&format!(
                "status of encoder {encoder_id}, which bridge {bridge_id} does not drive"
            ));
        }
    }

    fn refused(&mut self, bridge_id: &str, attempt_id: &str, reason: &str) {
        self.send(
            bridge_id,
            &json!({"type": "claim_refused", "action_attempt_id": attempt_id, "reason": reason}),
        );
    }

    /// Why `bridge_id` may not take the attempt at `index` now, if it may not.
    fn claim_obstacle(
        &mut self,
        now: Millis,
        bridge_id: &str,
        index: usize,
    ) -> Option<&'static str> {
        let attempt = self.state.attempts.get(index)?;
        if attempt.status == Status::Pending && now >= attempt.expires_at {
            self.expire(
                now,
                index,
                "The attempt's deadline passed before a bridge finished it.",
            );
        }
        let attempt = self.state.attempts.get(index)?;
        if attempt.status != Status::Pending {
            let expired = attempt
                .error
                .as_ref()
                .is_some_and(|e| e.kind == "action_attempt_expired");
            return Some(if expired {
                "expired"
            } else {
                "already_claimed"
            });
        }
        if self.encoder_bridge(&attempt.encoder_id) != Some(bridge_id) {
            return Some("not_your_encoder");
        }
        match &attempt.claim {
            Some(c) if c.bridge_id != bridge_id && c.lease_expires_at > now => {
                Some("already_claimed")
            }
            _ => None,
        }
    }

    /// `claim`: grant to exactly one bridge, or refuse.
    pub fn claim(&mut self, now: Millis, bridge_id: &str, attempt_id: &str) {
        if let Some((lease, deadline)) = self.lease_to(now, bridge_id, attempt_id) {
            let grant = json!({
                "type": "claim_granted",
                "action_attempt_id": attempt_id,
                "lease_expires_at": format_time(lease),
                "deadline": format_time(deadline),
            });
            self.send(bridge_id, &grant);
        }
    }

    /// `renew`: extend the holder's lease (a lapsed lease nobody else took is taken again).
    pub fn renew(&mut self, now: Millis, bridge_id: &str, attempt_id: &str) {
        if let Some((lease, _)) = self.lease_to(now, bridge_id, attempt_id) {
            self.send(
                bridge_id,
                &json!({"type": "lease_renewed", "action_attempt_id": attempt_id, "lease_expires_at": format_time(lease)}),
            );
        }
    }

    /// Gives `bridge_id` a fresh lease on the attempt, or sends the refusal (`claim_refused`)
    /// and returns `None`. On success: the lease's end and the attempt's deadline.
    fn lease_to(
        &mut self,
        now: Millis,
        bridge_id: &str,
        attempt_id: &str,
    ) -> Option<(Millis, Millis)> {
        let Some(index) = self.index(attempt_id) else {
            self.refused(bridge_id, attempt_id, "unknown_attempt");
            return None;
        };
        if let Some(reason) = self.claim_obstacle(now, bridge_id, index) {
            self.refused(bridge_id, attempt_id, reason);
            return None;
        }
        let lease = now.saturating_add(self.timing.lease_ms);
        let attempt = self.state.attempts.get_mut(index)?;
        attempt.claim = Some(Claim {
            bridge_id: bridge_id.to_owned(),
            lease_expires_at: lease,
        });
        let deadline = attempt.expires_at;
        Some((lease, deadline))
    }

    fn index(&self, attempt_id: &str) -> Option<usize> {
        self.state.attempt_index(attempt_id)
    }

    /// `result`: applied once, acknowledged every time. `Err` is a protocol error to answer
    /// (the result is then neither applied nor acknowledged).
    pub fn result(&mut self, now: Millis, bridge_id: &str, msg: &ResultMsg) -> Result<(), String> {
        let ack = json!({"type": "result_ack", "action_attempt_id": msg.action_attempt_id});
        let Some(index) = self.index(&msg.action_attempt_id) else {
            log(&format!(
                "result for unknown attempt {} from bridge {bridge_id}: acknowledged, not applied",
                msg.action_attempt_id
            ));
            self.send(bridge_id, &ack);
            return Ok(());
        };
        let Some(attempt) = self.state.attempts.get(index) else {
            return Ok(());
        };
        if msg.action_type.is_some_and(|t| t != attempt.action_type) {
            return Err(format!(
                "attempt {} is {}, not {}",
                attempt.action_attempt_id,
                attempt.action_type.as_str(),
                msg.action_type.map_or("", ActionType::as_str)
            ));
        }
        if attempt.result_from.is_some() {
            // A repeat (e.g. resent after a reconnect): acknowledge again, apply nothing.
            self.send(bridge_id, &ack);
            return Ok(());
        }
        let holder_ok = match &attempt.claim {
            Some(c) => c.bridge_id == bridge_id,
            None => self.encoder_bridge(&attempt.encoder_id) == Some(bridge_id),
        };
        if !holder_ok {
            return Err(format!(
                "attempt {} is not held by this bridge",
                attempt.action_attempt_id
            ));
        }
        match (msg.status, &msg.result, &msg.error) {
            (ResultStatus::Success, Some(Value::Object(_)), _)
            | (ResultStatus::Error, _, Some(_)) => {}
            (ResultStatus::Success, _, _) => {
                return Err("a success result needs a \"result\" object".into());
            }
            (ResultStatus::Error, _, None) => {
                return Err("an error result needs an \"error\" object".into());
            }
        }
        let late = attempt.status != Status::Pending;
        if late {
            log(&format!(
                "late result for attempt {} (already {}): acknowledged; the attempt keeps its status",
                msg.action_attempt_id,
                attempt.status.as_str()
            ));
        }
        let outcome = match (msg.status, msg.result.clone(), msg.error.clone()) {
            (ResultStatus::Success, Some(result), _) => match attempt.action_type {
                ActionType::Encode => {
                    self.apply_encode(now, index, &result, msg.finished_at.as_deref())
                }
                ActionType::Scan => Ok(self.scan_view(&result)),
            },
            (_, _, Some(error)) => Err(AttemptError {
                kind: error.kind,
                message: if error.message.is_empty() {
                    "The encoder reported an error.".to_owned()
                } else {
                    error.message
                },
            }),
            _ => return Ok(()),
        };
        if let Some(attempt) = self.state.attempts.get_mut(index) {
            attempt.result_from = Some(bridge_id.to_owned());
            attempt.claim = None;
            if !late {
                attempt.finish(now, outcome);
            }
        }
        self.send(bridge_id, &ack);
        Ok(())
    }

    /// Applies an encode success to the credential; the attempt's result, or why the card
    /// cannot take this credential.
    fn apply_encode(
        &mut self,
        now: Millis,
        index: usize,
        result: &Value,
        finished_at: Option<&str>,
    ) -> Result<Value, AttemptError> {
        let credential_id = self
            .state
            .attempts
            .get(index)
            .and_then(|a| a.credential_id.clone())
            .unwrap_or_default();
        let card_number = result
            .get("card_number")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let card_uid = result
            .pointer("/card/uid")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase);
        let issued_at = result
            .get("issued_at")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .or_else(|| finished_at.and_then(parse_time))
            .unwrap_or(now);
        let Ok(credential) = self.state.credential_mut(&credential_id) else {
            return Err(AttemptError {
                kind: "credential_deleted".into(),
                message: "The credential was deleted before the card was encoded.".into(),
            });
        };
        let reissue = credential.is_issued;
        if reissue {
            let same_card = match (&credential.card_uid, &card_uid) {
                (Some(had), Some(now)) => had == now,
                _ => credential.card_number == card_number,
            };
            if !same_card {
                let had = credential
                    .card_uid
                    .clone()
                    .or_else(|| credential.card_number.clone())
                    .unwrap_or_default();
                log(&format!(
                    "credential {credential_id} was written to card {had}; refusing it for card {}",
                    card_uid
                        .as_deref()
                        .or(card_number.as_deref())
                        .unwrap_or("?")
                ));
                return Err(AttemptError {
                    kind: "credential_cannot_be_reissued".into(),
                    message: "This credential was already written to another card. Create a new credential for this card.".into(),
                });
            }
        }
        credential.is_issued = true;
        credential.issued_at = Some(issued_at);
        credential.needs_reissue = false;
        credential.issue_counter = credential.issue_counter.saturating_add(1);
        if card_number.is_some() {
            credential.card_number = card_number;
        }
        if card_uid.is_some() {
            credential.card_uid = card_uid;
        }
        let view = credential_json(credential);
        let (event_type, description) = if reissue {
            ("acs_credential.reissued", "An ACS credential was reissued.")
        } else {
            ("acs_credential.issued", "An ACS credential was issued.")
        };
        self.emit(
            now,
            event_type,
            description,
            json!({"acs_credential_id": credential_id}),
        );
        Ok(view)
    }

    /// The scan result: the bridge's `acs_credential_on_encoder`, the stored credential, and
    /// warnings where they differ.
    ///
    /// The card's record holds no issue time, so `acs_credential_on_encoder.created_at` is the
    /// issue time of the stored credential it names (`null` when the server does not know
    /// it); the properties Seam's schema requires of it (`card_number`, `is_issued`,
    /// `starts_at`, `ends_at`) are always present, `null` when the card has none.
    pub fn scan_view(&self, result: &Value) -> Value {
        let mut on_encoder = result
            .get("acs_credential_on_encoder")
            .cloned()
            .unwrap_or(Value::Null);
        let mut warnings = Vec::new();
        let mut on_seam = Value::Null;
        let mut issued_at = None;
        if let Some(id) = on_encoder.get("acs_credential_id").and_then(Value::as_str) {
            if let Ok(credential) = self.state.credential(id) {
                issued_at = credential.issued_at;
                on_seam = credential_json(credential);
                let differing: Vec<&str> = ["starts_at", "ends_at", "card_number"]
                    .into_iter()
                    .filter(|key| !same_value(on_encoder.get(*key), on_seam.get(*key)))
                    .collect();
                if !differing.is_empty() {
                    warnings.push(json!({
                        "warning_code": "acs_credential_on_encoder_out_of_sync",
                        "warning_message": format!(
                            "The following properties are out of sync between acs_credential_on_encoder and acs_credential_on_seam: {}",
                            differing.join(", ")
                        ),
                    }));
                }
            } else {
                warnings.push(json!({
                    "warning_code": "acs_credential_on_seam_not_found",
                    "warning_message": format!("The credential on the card ({id}) was not found on the server."),
                }));
            }
        }
        if let Value::Object(card) = &mut on_encoder {
            for key in ["card_number", "is_issued", "starts_at", "ends_at"] {
                card.entry(key).or_insert(Value::Null);
            }
            let created_at = card
                .get("created_at")
                .filter(|v| v.is_string())
                .cloned()
                .or_else(|| issued_at.map(|t| Value::String(format_time(t))))
                .unwrap_or(Value::Null);
            card.insert("created_at".into(), created_at);
        }
        json!({
            "acs_credential_on_encoder": on_encoder,
            "acs_credential_on_seam": on_seam,
            "warnings": warnings,
        })
    }

    /// Ends a pending attempt as `action_attempt_expired` and tells the bridge concerned.
    fn expire(&mut self, now: Millis, index: usize, message: &str) {
        let Some(attempt) = self.state.attempts.get_mut(index) else {
            return;
        };
        if attempt.status != Status::Pending {
            return;
        }
        attempt.status = Status::Error;
        attempt.error = Some(AttemptError {
            kind: "action_attempt_expired".into(),
            message: message.to_owned(),
        });
        attempt.finished_at = Some(now);
        let id = attempt.action_attempt_id.clone();
        let holder = attempt.claim.as_ref().map(|c| c.bridge_id.clone());
        let encoder = attempt.encoder_id.clone();
        let to = holder.or_else(|| self.encoder_bridge(&encoder).map(str::to_owned));
        log(&format!("attempt {id} expired: {message}"));
        if let Some(bridge) = to {
            self.send(
                &bridge,
                &json!({"type": "attempt_cancelled", "action_attempt_id": id, "reason": "expired"}),
            );
        }
    }

    /// Drops finished attempts and events past the window: when the count is overrun by an
    /// eighth (so the pass over what is kept is paid once per an eighth of the window's new
    /// attempts), and every [`PRUNE_EVERY_MS`] for the time bound.
    fn prune(&mut self, now: Millis) {
        let retain = self.timing.retain;
        let bound = retain.keep_count.saturating_add(retain.keep_count / 8 + 16);
        let overrun = self.state.attempts.len() > bound || self.state.events.len() > bound;
        if overrun || now >= self.next_prune {
            self.next_prune = now.saturating_add(PRUNE_EVERY_MS);
            self.state.prune(now, retain);
        }
    }

    /// Expires what is due, lets lapsed leases go (offering the attempt again), and returns
    /// when to call again.
    pub fn tick(&mut self, now: Millis) -> Option<Millis> {
        self.prune(now);
        let mut next: Option<Millis> = None;
        let mut soonest = |t: Millis| next = Some(next.map_or(t, |n: Millis| n.min(t)));
        for index in self.state.pending() {
            let Some(attempt) = self.state.attempts.get(index) else {
                continue;
            };
            if attempt.status != Status::Pending {
                continue;
            }
            if now >= attempt.expires_at {
                let message = if attempt.claim.is_some() {
                    "The attempt's deadline passed before the bridge finished it."
                } else {
                    "No bridge took the attempt before its deadline."
                };
                self.expire(now, index, message);
                continue;
            }
            soonest(attempt.expires_at);
            let mut lapsed = false;
            if let Some(claim) = &attempt.claim {
                if now >= claim.lease_expires_at {
                    lapsed = true;
                } else {
                    soonest(claim.lease_expires_at);
                    continue;
                }
            }
            if lapsed {
                let offer = self.offer(attempt);
                let owner = self.encoder_bridge(&attempt.encoder_id).map(str::to_owned);
                if let Some(attempt) = self.state.attempts.get_mut(index) {
                    log(&format!(
                        "lease on attempt {} lapsed: offering it again",
                        attempt.action_attempt_id
                    ));
                    attempt.claim = None;
                }
                if let Some(owner) = owner {
                    self.send(&owner, &offer);
                }
            }
            let Some(attempt) = self.state.attempts.get(index) else {
                continue;
            };
            let owner = self.encoder_bridge(&attempt.encoder_id).unwrap_or_default();
            if self.is_connected(owner) {
                continue;
            }
            let away = self
                .away_since
                .get(owner)
                .copied()
                .unwrap_or(self.started_at)
                .max(attempt.created_at);
            let due = away.saturating_add(self.timing.no_bridge_grace_ms);
            if now >= due {
                let message = format!(
                    "No bridge for the encoder was connected within {} s.",
                    self.timing.no_bridge_grace_ms / 1000
                );
                self.expire(now, index, &message);
            } else {
                soonest(due);
            }
        }
        next
    }
}

/// Whether two JSON values mean the same property: times compared as instants, null and
/// missing alike.
fn same_value(card: Option<&Value>, server: Option<&Value>) -> bool {
    let card = card.filter(|v| !v.is_null());
    let server = server.filter(|v| !v.is_null());
    match (card, server) {
        (None, None) => true,
        (Some(Value::String(on_card)), Some(Value::String(stored))) => {
            on_card == stored || parse_time(on_card).is_some_and(|t| parse_time(stored) == Some(t))
        }
        (Some(on_card), Some(stored)) => on_card == stored,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
