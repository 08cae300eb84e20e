//! The bridge's side of docs/cloud-protocol.md as an I/O-free state machine (in the manner of
//! rumqttc's `MqttState`): the daemon feeds it events (connected, a message, a tick, a runner
//! result, an encoder change) and carries out the [`Action`]s it returns. Results stay in its
//! outbox until acknowledged and are resent after every reconnect.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use super::message::{
    AttemptAvailable, EncoderInfo, Incoming, Outgoing, PROTOCOL_VERSION, ResultMsg, parse_time,
    rfc3339,
};
use super::remembered::Remembered;
use super::translate;
use crate::discovery::Wanted;
use crate::job::{ActionKind, CardJob, JobReport};
use crate::store::{Phase, Retention, StoredAttempt, Writing};

/// An attempt kept across a restart, its offer read back from the store.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The offer as the cloud sent it.
    pub offer: AttemptAvailable,
    /// Where it was.
    pub phase: Phase,
    /// What it was writing, from [`Phase::Writing`] on.
    pub writing: Option<Writing>,
}

impl Restored {
    /// Reads a stored attempt back; the error says why its offer cannot be read.
    pub fn from_store(stored: &StoredAttempt) -> Result<Self, String> {
        let offer: AttemptAvailable =
            serde_json::from_str(stored.offer.get()).map_err(|e| e.to_string())?;
        Ok(Self {
            offer,
            phase: stored.phase,
            writing: stored.writing.clone(),
        })
    }
}

/// How often a held attempt's lease is renewed at most (§4): a third of the lease, so a 30 s
/// lease is renewed every 10 s; never less often than this, never more often than
/// [`RENEW_MIN`].
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// The shortest renew interval (the daemon ticks once a second).
pub const RENEW_MIN: Duration = Duration::from_secs(1);

/// What the daemon must do, in order: a store write comes before the message it makes
/// durable (docs/cloud-protocol.md §5).
#[derive(Debug, Clone)]
pub enum Action {
    /// Send a message (dropped when not connected; results are kept in the outbox anyway).
    Send(Outgoing),
    /// Store the attempt as `claimed`, then run `job` on encoder `encoder_id`'s runner.
    Start {
        /// The encoder.
        encoder_id: String,
        /// The offer as sent, for the store (read back at the next start).
        offer_json: String,
        /// The deadline on the local clock (RFC 3339), for the store.
        deadline: Option<String>,
        /// The job.
        job: CardJob,
    },
    /// Run `job`, the verifying scan of an encode cut off by a restart, on `encoder_id`.
    Verify {
        /// The encoder.
        encoder_id: String,
        /// The job ([`JobAction::Verify`](crate::job::JobAction::Verify)).
        job: CardJob,
    },
    /// Stop waiting for a card for this attempt.
    Cancel {
        /// The attempt.
        attempt_id: String,
        /// Its encoder.
        encoder_id: String,
    },
    /// Store the result (the text of the `result` message) and mark the attempt `done`.
    Done {
        /// The attempt.
        attempt_id: String,
        /// The message text, resent from the store after a restart.
        text: String,
    },
    /// Forget a claimed attempt that will not run.
    Forget(String),
    /// The cloud has the result: mark it acknowledged.
    Acknowledged(String),
}

#[derive(Debug)]
struct Running {
    encoder_id: String,
    next_renew: Instant,
    renew_every: Duration,
    lease: Arc<AtomicI64>,
}

/// The session state.
#[derive(Debug)]
pub struct Session {
    bridge_id: String,
    version: String,
    encoders: BTreeMap<String, EncoderInfo>,
    /// Encoder → the attempt holding it (claim sent, running or verifying).
    busy: HashMap<String, String>,
    queue: HashMap<String, VecDeque<AttemptAvailable>>,
    claiming: HashMap<String, AttemptAvailable>,
    running: HashMap<String, Running>,
    verifying: HashMap<String, Vec<Restored>>,
    /// Finished attempts, within the retention window.
    finished: Remembered,
    retention: Retention,
    /// Unacknowledged results: never pruned.
    outbox: BTreeMap<String, ResultMsg>,
    connected: bool,
    draining: bool,
    skew: Option<i64>,
}

/// An RFC 3339 time as a [`std::time::SystemTime`].
fn system_time(text: Option<&str>) -> Option<std::time::SystemTime> {
    let nanos = u64::try_from(parse_time(text?)?.unix_timestamp_nanos()).ok()?;
    std::time::SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
}

fn lease_ms(text: &str) -> i64 {
    parse_time(text).map_or(0, |t| {
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
    })
}

impl Session {
    /// A session for bridge `bridge_id`.
    pub fn new(bridge_id: String, version: String) -> Self {
        Self {
            bridge_id,
            version,
            encoders: BTreeMap::new(),
            busy: HashMap::new(),
            queue: HashMap::new(),
            claiming: HashMap::new(),
            running: HashMap::new(),
            verifying: HashMap::new(),
            finished: Remembered::default(),
            retention: Retention::default(),
            outbox: BTreeMap::new(),
            connected: false,
            draining: false,
            skew: None,
        }
    }

    /// The same session remembering finished attempts by `retention` (default
    /// [`Retention::default`]).
    #[must_use]
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How many finished attempt ids are remembered (bounded by the retention window).
    pub fn remembered(&self) -> usize {
        self.finished.len()
    }

    /// Forgets the finished ids past the retention window (results in the outbox stay).
    fn prune(&mut self, now: Instant) {
        let dropped = self.finished.prune(now, self.retention);
        if dropped > 0 {
            tracing::debug!(
                dropped,
                kept = self.finished.len(),
                "finished attempts forgotten"
            );
        }
    }

    /// Loads what the store kept across a restart: unacknowledged results, attempts that were
    /// claimed (re-claimed on connect) and attempts cut off while writing (verified).
    ///
    /// `outbox` holds attempt ids and result texts, `attempts` the stored attempts by id, as
    /// [`crate::store::Store::load`] gives them. What cannot be read back is logged with its
    /// key: a result that cannot be resent, an attempt that cannot be claimed again.
    pub fn restore(
        &mut self,
        outbox: Vec<(String, String)>,
        attempts: Vec<(String, StoredAttempt)>,
        now: Instant,
    ) -> Vec<Action> {
        // Finished attempts are placed in the window by the store's time of their last change.
        let unix_now = time::OffsetDateTime::now_utc().unix_timestamp();
        let age = |updated_at: i64| {
            Duration::from_secs(u64::try_from(unix_now.saturating_sub(updated_at)).unwrap_or(0))
        };
        let mut aged = Vec::new();
        for (id, text) in outbox {
            match serde_json::from_str::<ResultMsg>(&text) {
                Ok(result) => {
                    self.outbox.insert(id, result);
                }
                Err(e) => {
                    aged.push((Duration::ZERO, id.clone()));
                    tracing::error!(attempt = %id, "the stored result cannot be read back, it is not resent: {e}");
                }
            }
        }
        let mut actions = Vec::new();
        for (id, stored) in attempts {
            if matches!(stored.phase, Phase::Done | Phase::Acknowledged) {
                // Only remembered (an acknowledged one keeps no offer).
                aged.push((age(stored.updated_at), id));
                continue;
            }
            let attempt = match Restored::from_store(&stored) {
                Ok(a) => a,
                Err(e) => {
                    aged.push((Duration::ZERO, id.clone()));
                    tracing::error!(attempt = %id, "the stored offer cannot be read back: {e}");
                    continue;
                }
            };
            match attempt.phase {
                crate::store::Phase::Claimed => {
                    let encoder = attempt.offer.encoder_id.clone();
                    match self.busy.entry(encoder.clone()) {
                        std::collections::hash_map::Entry::Occupied(_) => {
                            self.queue
                                .entry(encoder)
                                .or_default()
                                .push_back(attempt.offer);
                        }
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(id.clone());
                            self.claiming.insert(id, attempt.offer);
                        }
                    }
                }
                crate::store::Phase::Writing => {
                    aged.push((age(stored.updated_at), id));
                    self.verifying
                        .entry(attempt.offer.encoder_id.clone())
                        .or_default()
                        .push(attempt);
                }
                Phase::Done | Phase::Acknowledged => {}
            }
        }
        self.finished.insert_aged(aged, now);
        self.prune(now);
        let encoders: Vec<String> = self.encoders.keys().cloned().collect();
        for encoder in encoders {
            actions.extend(self.next_for(&encoder, now));
        }
        actions
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The clock skew (server minus local, seconds) from the last `welcome`.
    pub fn skew(&self) -> Option<i64> {
        self.skew
    }

    /// How many encoders are announced (the status line).
    pub fn encoder_count(&self) -> usize {
        self.encoders.len()
    }

    /// Attempts running or being verified.
    pub fn active(&self) -> usize {
        self.running.len()
    }

    /// Results not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.outbox.len()
    }

    /// The bridge's id.
    pub fn bridge_id(&self) -> &str {
        &self.bridge_id
    }

    /// Every encoder as announced to the cloud (`status`).
    pub fn encoders(&self) -> impl Iterator<Item = &EncoderInfo> {
        self.encoders.values()
    }

    /// The attempt (or operator job) holding `encoder_id`.
    pub fn busy_with(&self, encoder_id: &str) -> Option<&str> {
        self.busy.get(encoder_id).map(String::as_str)
    }

    /// Attempts claimed and not finished (`status`).
    pub fn in_flight(&self) -> usize {
        self.claiming.len() + self.running.len()
    }

    /// Holds `encoder_id` for the operator job `job_id` when nothing holds it and no
    /// verification waits for it: attempts offered meanwhile queue, in order, until
    /// [`Session::release`]. One job at a time per encoder, local or cloud.
    pub fn hold(&mut self, encoder_id: &str, job_id: &str) -> bool {
        if self.busy.contains_key(encoder_id)
            || !self.encoders.contains_key(encoder_id)
            || self
                .verifying
                .get(encoder_id)
                .is_some_and(|v| !v.is_empty())
        {
            return false;
        }
        self.busy.insert(encoder_id.to_owned(), job_id.to_owned());
        true
    }

    /// The operator job `job_id` is over: `encoder_id` takes the next attempt.
    pub fn release(&mut self, encoder_id: &str, job_id: &str, now: Instant) -> Vec<Action> {
        if self.busy.get(encoder_id).is_some_and(|j| j == job_id) {
            self.busy.remove(encoder_id);
        }
        self.next_for(encoder_id, now)
    }

    /// A time of the cloud's clock (unix ms) on the local clock: the cloud's times (lease,
    /// deadline) are compared with the local clock by the runner, so they are corrected by the
    /// skew measured at `welcome` (docs/cloud-protocol.md §4). 0 (no lease) stays 0.
    fn local_ms(&self, cloud_ms: i64) -> i64 {
        if cloud_ms <= 0 {
            return cloud_ms;
        }
        cloud_ms.saturating_sub(self.skew.unwrap_or(0).saturating_mul(1000))
    }

    /// The grant's deadline (RFC 3339, cloud clock) on the local clock.
    fn local_deadline(&self, cloud: &str) -> String {
        match (parse_time(cloud), self.skew) {
            (Some(t), Some(skew)) => rfc3339(t - time::Duration::seconds(skew)),
            _ => cloud.to_owned(),
        }
    }

    /// A third of what is left of a lease expiring at `lease_ms` (unix ms, local clock),
    /// within [`RENEW_MIN`]..=[`RENEW_EVERY`].
    fn renew_every(lease_ms: i64) -> Duration {
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let left_ms = u64::try_from(i128::from(lease_ms) - now_ms).unwrap_or(0);
        if lease_ms <= 0 || left_ms == 0 {
            // No lease, or one already lapsed: the default pace.
            return RENEW_EVERY;
        }
        Duration::from_millis(left_ms / 3).clamp(RENEW_MIN, RENEW_EVERY)
    }

    fn send(&self, message: Outgoing) -> Option<Action> {
        self.connected.then_some(Action::Send(message))
    }

    /// A connection is up: `hello`, then every unacknowledged result, renewals of held
    /// attempts and claims that were never answered.
    pub fn connected(&mut self, now: Instant) -> Vec<Action> {
        self.connected = true;
        let mut out = vec![Action::Send(Outgoing::Hello {
            protocol: PROTOCOL_VERSION,
            bridge_id: self.bridge_id.clone(),
            bridge_version: self.version.clone(),
            encoders: self.encoders.values().cloned().collect(),
            probe: false,
        })];
        out.extend(
            self.outbox
                .values()
                .map(|r| Action::Send(Outgoing::Result(r.clone()))),
        );
        for (id, running) in &mut self.running {
            running.next_renew = now + running.renew_every;
            out.push(Action::Send(Outgoing::Renew {
                action_attempt_id: id.clone(),
            }));
        }
        if !self.draining {
            out.extend(self.claiming.keys().map(|id| {
                Action::Send(Outgoing::Claim {
                    action_attempt_id: id.clone(),
                })
            }));
        }
        out
    }

    /// The connection is gone.
    pub fn disconnected(&mut self) {
        self.connected = false;
    }

    /// Graceful stop: claim nothing new. Unanswered claims stay `claimed` in the store, so
    /// the next start claims them again.
    pub fn drain(&mut self) {
        self.draining = true;
        self.queue.clear();
        for (_, offer) in self.claiming.drain() {
            self.busy.remove(&offer.encoder_id);
        }
    }

    /// The next attempt for a free encoder: a verification first, then a queued offer.
    fn next_for(&mut self, encoder_id: &str, now: Instant) -> Vec<Action> {
        if self.busy.contains_key(encoder_id) || !self.encoders.contains_key(encoder_id) {
            return Vec::new();
        }
        if let Some(list) = self.verifying.get_mut(encoder_id)
            && let Some(attempt) = list.pop()
        {
            let id = attempt.offer.action_attempt_id.clone();
            self.busy.insert(encoder_id.to_owned(), id.clone());
            self.running.insert(
                id,
                Running {
                    encoder_id: encoder_id.to_owned(),
                    next_renew: now + RENEW_EVERY,
                    renew_every: RENEW_EVERY,
                    lease: Arc::new(AtomicI64::new(0)),
                },
            );
            let writing = attempt.writing.clone().unwrap_or(Writing {
                uid: String::new(),
                card_number: String::new(),
            });
            tracing::warn!(
                attempt = %attempt.offer.action_attempt_id,
                uid = %writing.uid,
                "an encode was cut off by a restart while writing: verifying the card, never rewriting"
            );
            let job = translate::card_job(
                &attempt.offer,
                Some(writing),
                None,
                Arc::new(AtomicI64::new(0)),
            );
            return vec![Action::Verify {
                encoder_id: encoder_id.to_owned(),
                job,
            }];
        }
        if self.draining {
            return Vec::new();
        }
        while let Some(offer) = self.queue.get_mut(encoder_id).and_then(VecDeque::pop_front) {
            if self.is_finished(&offer.action_attempt_id) {
                continue;
            }
            let id = offer.action_attempt_id.clone();
            self.busy.insert(encoder_id.to_owned(), id.clone());
            self.claiming.insert(id.clone(), offer);
            return self
                .send(Outgoing::Claim {
                    action_attempt_id: id,
                })
                .into_iter()
                .collect();
        }
        Vec::new()
    }

    /// Finished: its result unacknowledged, or remembered within the window.
    fn is_finished(&self, id: &str) -> bool {
        self.outbox.contains_key(id) || self.finished.contains(id)
    }

    fn knows(&self, id: &str) -> bool {
        self.is_finished(id)
            || self.claiming.contains_key(id)
            || self
                .verifying
                .values()
                .any(|list| list.iter().any(|a| a.offer.action_attempt_id == id))
            || self.running.contains_key(id)
            || self
                .queue
                .values()
                .any(|q| q.iter().any(|o| o.action_attempt_id == id))
    }

    /// A message from the cloud.
    #[allow(clippy::too_many_lines)] // one arm per message type
    pub fn message(&mut self, message: Incoming, now: Instant) -> Vec<Action> {
        match message {
            Incoming::Welcome(w) => {
                let local = time::OffsetDateTime::now_utc().unix_timestamp();
                self.skew = parse_time(&w.server_time).map(|t| t.unix_timestamp() - local);
                if w.protocol != PROTOCOL_VERSION {
                    tracing::warn!(
                        protocol = w.protocol,
                        "the cloud speaks another protocol version"
                    );
                }
                if let Some(skew) = self.skew
                    && skew.abs() > 5
                {
                    tracing::warn!(
                        skew_seconds = skew,
                        "the local clock differs from the cloud's; enable NTP (timedatectl set-ntp true)"
                    );
                }
                tracing::info!("cloud welcomed the bridge");
                Vec::new()
            }
            Incoming::AttemptAvailable(offer) => {
                if self.knows(&offer.action_attempt_id) {
                    tracing::debug!(attempt = %offer.action_attempt_id, "ignoring a repeated offer");
                    return Vec::new();
                }
                if self.draining {
                    tracing::info!(attempt = %offer.action_attempt_id, "stopping: not claiming");
                    return Vec::new();
                }
                if !self.encoders.contains_key(&offer.encoder_id) {
                    tracing::warn!(
                        attempt = %offer.action_attempt_id,
                        encoder = %offer.encoder_id,
                        "ignoring an attempt for an encoder this bridge does not drive"
                    );
                    return Vec::new();
                }
                tracing::info!(
                    attempt = %offer.action_attempt_id,
                    encoder = %offer.encoder_id,
                    action = ?offer.action_type,
                    "attempt available"
                );
                let encoder = offer.encoder_id.clone();
                self.queue
                    .entry(encoder.clone())
                    .or_default()
                    .push_back(offer);
                self.next_for(&encoder, now)
            }
            Incoming::ClaimGranted(grant) => {
                let id = grant.action_attempt_id;
                let lease = self.local_ms(lease_ms(&grant.lease_expires_at));
                let renew_every = Self::renew_every(lease);
                if let Some(running) = self.running.get_mut(&id) {
                    running.lease.store(lease, Ordering::SeqCst);
                    running.renew_every = renew_every;
                    running.next_renew = running.next_renew.min(now + renew_every);
                    return Vec::new();
                }
                let Some(offer) = self.claiming.remove(&id) else {
                    tracing::warn!(attempt = %id, "grant for an attempt this bridge did not claim");
                    return Vec::new();
                };
                let lease = Arc::new(AtomicI64::new(lease));
                self.running.insert(
                    id.clone(),
                    Running {
                        encoder_id: offer.encoder_id.clone(),
                        next_renew: now + renew_every,
                        renew_every,
                        lease: Arc::clone(&lease),
                    },
                );
                tracing::info!(attempt = %id, renew_every_ms = renew_every.as_millis(), "claim granted");
                let deadline = self.local_deadline(&grant.deadline);
                let job = translate::card_job(
                    &offer,
                    None,
                    system_time(Some(&deadline))
                        .or_else(|| system_time(offer.expires_at.as_deref())),
                    lease,
                );
                vec![Action::Start {
                    encoder_id: offer.encoder_id.clone(),
                    offer_json: serde_json::to_string(&offer).unwrap_or_default(),
                    deadline: Some(deadline),
                    job,
                }]
            }
            Incoming::ClaimRefused(refused) => {
                let id = refused.action_attempt_id;
                tracing::info!(attempt = %id, reason = %refused.reason, "claim refused");
                if let Some(offer) = self.claiming.remove(&id) {
                    self.busy.remove(&offer.encoder_id);
                    let mut out = vec![Action::Forget(id)];
                    out.extend(self.next_for(&offer.encoder_id, now));
                    return out;
                }
                if let Some(running) = self.running.get(&id) {
                    // The cloud gave it away: do not touch a card for it.
                    return vec![Action::Cancel {
                        attempt_id: id,
                        encoder_id: running.encoder_id.clone(),
                    }];
                }
                Vec::new()
            }
            Incoming::LeaseRenewed(renewed) => {
                let lease = self.local_ms(lease_ms(&renewed.lease_expires_at));
                let renew_every = Self::renew_every(lease);
                if let Some(running) = self.running.get_mut(&renewed.action_attempt_id) {
                    running.lease.store(lease, Ordering::SeqCst);
                    running.renew_every = renew_every;
                }
                Vec::new()
            }
            Incoming::AttemptCancelled(cancelled) => {
                let id = cancelled.action_attempt_id;
                tracing::info!(attempt = %id, reason = %cancelled.reason, "attempt cancelled by the cloud");
                for queue in self.queue.values_mut() {
                    queue.retain(|o| o.action_attempt_id != id);
                }
                if let Some(offer) = self.claiming.remove(&id) {
                    self.busy.remove(&offer.encoder_id);
                    let mut out = vec![Action::Forget(id)];
                    out.extend(self.next_for(&offer.encoder_id, now));
                    return out;
                }
                if let Some(running) = self.running.get(&id) {
                    return vec![Action::Cancel {
                        attempt_id: id,
                        encoder_id: running.encoder_id.clone(),
                    }];
                }
                Vec::new()
            }
            Incoming::ResultAck(ack) => {
                let id = ack.action_attempt_id;
                if self.outbox.remove(&id).is_some() {
                    tracing::info!(attempt = %id, "result acknowledged");
                }
                vec![Action::Acknowledged(id)]
            }
            Incoming::ProtocolError(e) => {
                tracing::warn!(
                    message = %e.message,
                    in_reply_to = e.in_reply_to.as_deref().unwrap_or(""),
                    "the cloud reported a protocol error"
                );
                Vec::new()
            }
        }
    }

    /// Periodic: renew the leases that are due, forget what left the retention window.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        self.prune(now);
        if !self.connected {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (id, running) in &mut self.running {
            if running.next_renew <= now {
                running.next_renew = now + running.renew_every;
                out.push(Action::Send(Outgoing::Renew {
                    action_attempt_id: id.clone(),
                }));
            }
        }
        out
    }

    /// A runner finished an attempt (or the daemon could not run it): the result is stored,
    /// then sent; a job cancelled before the card was touched is forgotten.
    pub fn finished(
        &mut self,
        attempt_id: &str,
        encoder_id: &str,
        action: ActionKind,
        report: &JobReport,
        now: Instant,
    ) -> Vec<Action> {
        self.running.remove(attempt_id);
        if self.busy.get(encoder_id).is_some_and(|a| a == attempt_id) {
            self.busy.remove(encoder_id);
        }
        let mut out = Vec::new();
        match translate::result_message(attempt_id, encoder_id, action, report) {
            Some(result) => {
                tracing::info!(
                    attempt = %attempt_id,
                    status = %result.status,
                    error = report.error().map_or("", |e| e.kind.name()),
                    "attempt finished"
                );
                self.finished.insert(attempt_id, now);
                self.prune(now);
                out.push(Action::Done {
                    attempt_id: attempt_id.to_owned(),
                    text: serde_json::to_string(&result).unwrap_or_default(),
                });
                self.outbox.insert(attempt_id.to_owned(), result.clone());
                out.extend(self.send(Outgoing::Result(result)));
            }
            None if !self.draining => out.push(Action::Forget(attempt_id.to_owned())),
            None => {}
        }
        out.extend(self.next_for(encoder_id, now));
        out
    }

    /// An encoder appeared (or came back online): `wanted` with id `id`; `card_present: None`
    /// keeps what is known.
    pub fn encoder_added(
        &mut self,
        id: &str,
        wanted: &Wanted,
        online: bool,
        card_present: Option<bool>,
        now: Instant,
    ) -> Vec<Action> {
        let known_card = self.encoders.get(id).is_some_and(|e| e.card_present);
        let info = translate::encoder_info(
            id,
            wanted,
            online,
            online && card_present.unwrap_or(known_card),
        );
        self.add_encoder(info, now)
    }

    fn add_encoder(&mut self, info: EncoderInfo, now: Instant) -> Vec<Action> {
        let id = info.encoder_id.clone();
        let known = self.encoders.insert(id.clone(), info.clone());
        let mut out: Vec<Action> = match known {
            Some(old) if old.online == info.online && old.card_present == info.card_present => {
                Vec::new()
            }
            Some(_) => self
                .send(Outgoing::EncoderStatus {
                    encoder_id: id.clone(),
                    online: info.online,
                    card_present: info.card_present,
                })
                .into_iter()
                .collect(),
            None => self
                .send(Outgoing::EncoderAdded { encoder: info })
                .into_iter()
                .collect(),
        };
        out.extend(self.next_for(&id, now));
        out
    }

    /// An encoder is no longer driven.
    pub fn encoder_removed(&mut self, encoder_id: &str) -> Vec<Action> {
        if self.encoders.remove(encoder_id).is_none() {
            return Vec::new();
        }
        self.queue.remove(encoder_id);
        self.send(Outgoing::EncoderRemoved {
            encoder_id: encoder_id.to_owned(),
        })
        .into_iter()
        .collect()
    }

    /// An encoder's online or card state changed.
    pub fn encoder_status(
        &mut self,
        encoder_id: &str,
        online: Option<bool>,
        card_present: Option<bool>,
    ) -> Vec<Action> {
        let Some(info) = self.encoders.get_mut(encoder_id) else {
            return Vec::new();
        };
        let before = (info.online, info.card_present);
        if let Some(online) = online {
            info.online = online;
            if !online {
                info.card_present = false;
            }
        }
        if let Some(card) = card_present {
            info.card_present = card;
        }
        if before == (info.online, info.card_present) {
            return Vec::new();
        }
        let message = Outgoing::EncoderStatus {
            encoder_id: encoder_id.to_owned(),
            online: info.online,
            card_present: info.card_present,
        };
        self.send(message).into_iter().collect()
    }
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
    use crate::cloud::message::{ActionType, ClaimGranted, ClaimRefused, ResultAck};

    fn info(id: &str) -> EncoderInfo {
        EncoderInfo {
            encoder_id: id.into(),
            display_name: id.into(),
            kind: "pcsc".into(),
            reader: id.into(),
            online: true,
            card_present: false,
        }
    }

    fn offer(id: &str, encoder: &str) -> Incoming {
        Incoming::AttemptAvailable(AttemptAvailable {
            action_attempt_id: id.into(),
            action_type: ActionType::Scan,
            encoder_id: encoder.into(),
            created_at: None,
            expires_at: None,
            credential: None,
        })
    }

    fn grant(id: &str) -> Incoming {
        Incoming::ClaimGranted(ClaimGranted {
            action_attempt_id: id.into(),
            lease_expires_at: "2024-12-01T15:00:31.000Z".into(),
            deadline: "2024-12-01T15:02:00.000Z".into(),
        })
    }

    fn sent(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(m) => Some(m.to_text()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn one_attempt_per_encoder_at_a_time_and_results_until_acked() {
        let now = Instant::now();
        let mut s = Session::new("b".into(), "0".into());
        s.add_encoder(info("e1"), now);
        let hello = sent(&s.connected(now));
        assert!(hello[0].contains(r#""type":"hello""#), "{hello:?}");
        assert!(hello[0].contains("e1"));
        let a = s.message(offer("a1", "e1"), now);
        assert_eq!(
            sent(&a),
            vec![r#"{"type":"claim","action_attempt_id":"a1"}"#]
        );
        // A second offer for the busy encoder waits; a repeat is ignored.
        assert!(s.message(offer("a2", "e1"), now).is_empty());
        assert!(s.message(offer("a1", "e1"), now).is_empty());
        let start = s.message(grant("a1"), now);
        assert!(matches!(start.as_slice(), [Action::Start { .. }]));
        // Renew after 10 s.
        assert!(s.tick(now + Duration::from_secs(5)).is_empty());
        assert_eq!(sent(&s.tick(now + RENEW_EVERY)).len(), 1);
        // Done: the result goes out, and the next offer is claimed.
        let report = JobReport::now(Err(encoder_protocol::cloud_error::CloudError::new(
            encoder_protocol::cloud_error::ErrorType::NoCardOnEncoder,
            None,
            "no card",
            "waited",
        )));
        let finished = s.finished("a1", "e1", ActionKind::Scan, &report, now);
        assert!(
            matches!(&finished[0], Action::Done { attempt_id, .. } if attempt_id == "a1"),
            "stored before it is sent: {finished:?}"
        );
        let done = sent(&finished);
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(done[0].contains(r#""type":"result""#));
        assert!(done[1].contains(r#""claim""#) && done[1].contains("a2"));
        // Reconnect: the unacknowledged result is resent after hello, the claim again.
        s.disconnected();
        let again = sent(&s.connected(now));
        assert!(again[0].contains("hello"));
        assert!(again[1].contains("result") && again[1].contains("a1"));
        assert!(again[2].contains("claim") && again[2].contains("a2"));
        s.message(
            Incoming::ResultAck(ResultAck {
                action_attempt_id: "a1".into(),
            }),
            now,
        );
        s.disconnected();
        assert_eq!(s.connected(now).len(), 2, "hello + claim");
        // A refused claim frees the encoder.
        let refused = s.message(
            Incoming::ClaimRefused(ClaimRefused {
                action_attempt_id: "a2".into(),
                reason: "already_claimed".into(),
            }),
            now,
        );
        assert!(matches!(refused.as_slice(), [Action::Forget(id)] if id == "a2"));
        assert!(sent(&s.message(offer("a3", "e1"), now))[0].contains("a3"));
    }

    #[test]
    fn the_renew_interval_is_a_third_of_the_lease() {
        let now = Instant::now();
        let mut s = Session::new("b".into(), "0".into());
        s.add_encoder(info("e1"), now);
        s.connected(now);
        s.message(offer("a1", "e1"), now);
        let unix = time::OffsetDateTime::now_utc().unix_timestamp();
        let start = s.message(
            Incoming::ClaimGranted(ClaimGranted {
                action_attempt_id: "a1".into(),
                lease_expires_at: crate::cloud::message::from_unix(unix + 4).expect("time"),
                deadline: crate::cloud::message::from_unix(unix + 60).expect("time"),
            }),
            now,
        );
        assert!(matches!(start.as_slice(), [Action::Start { .. }]));
        // 3-4 s left: renewed after about a second, and again a second later.
        assert!(s.tick(now + Duration::from_millis(500)).is_empty());
        assert_eq!(sent(&s.tick(now + Duration::from_millis(1400))).len(), 1);
        assert!(s.tick(now + Duration::from_millis(1500)).is_empty());
        assert_eq!(sent(&s.tick(now + Duration::from_millis(2800))).len(), 1);
        // A long lease is still renewed every 10 s at most.
        assert_eq!(Session::renew_every((unix + 600) * 1000), RENEW_EVERY);
    }

    /// The runner compares the lease and the deadline with the local clock: a cloud whose clock
    /// is two minutes behind must not make every granted attempt look lapsed (nor one ahead
    /// make a lapsed lease look alive).
    #[test]
    fn leases_and_deadlines_are_corrected_by_the_clock_skew() {
        use crate::cloud::message::{Welcome, from_unix};
        for skew in [-120_i64, 0, 120] {
            let now = Instant::now();
            let mut s = Session::new("b".into(), "0".into());
            s.add_encoder(info("e1"), now);
            s.connected(now);
            let local = time::OffsetDateTime::now_utc().unix_timestamp();
            let cloud = local + skew;
            s.message(
                Incoming::Welcome(Welcome {
                    protocol: PROTOCOL_VERSION,
                    server_time: from_unix(cloud).expect("time"),
                }),
                now,
            );
            assert_eq!(s.skew(), Some(skew));
            s.message(offer("a1", "e1"), now);
            let start = s.message(
                Incoming::ClaimGranted(ClaimGranted {
                    action_attempt_id: "a1".into(),
                    lease_expires_at: from_unix(cloud + 30).expect("time"),
                    deadline: from_unix(cloud + 60).expect("time"),
                }),
                now,
            );
            let [Action::Start { job, deadline, .. }] = start.as_slice() else {
                panic!("{start:?}")
            };
            let lease_s = job.lease.load(Ordering::SeqCst) / 1000;
            assert!(
                (local + 29..=local + 31).contains(&lease_s),
                "skew {skew}: lease {lease_s} vs local now {local}"
            );
            let deadline = parse_time(deadline.as_deref().expect("deadline"))
                .expect("time")
                .unix_timestamp();
            assert!(
                (local + 59..=local + 61).contains(&deadline),
                "skew {skew}: deadline {deadline} vs local now {local}"
            );
            // Renewed every third of the 30 s (times have second resolution), whatever the skew.
            let every = s.running.get("a1").map(|r| r.renew_every).expect("running");
            assert!(
                (Duration::from_secs(9)..=RENEW_EVERY).contains(&every),
                "skew {skew}: {every:?}"
            );
        }
    }

    #[test]
    fn unknown_encoders_are_not_claimed_and_encoders_work_in_parallel() {
        let now = Instant::now();
        let mut s = Session::new("b".into(), "0".into());
        s.connected(now);
        s.add_encoder(info("e1"), now);
        s.add_encoder(info("e2"), now);
        assert!(s.message(offer("x", "nope"), now).is_empty());
        assert_eq!(sent(&s.message(offer("a", "e1"), now)).len(), 1);
        assert_eq!(sent(&s.message(offer("b", "e2"), now)).len(), 1);
    }

    #[test]
    fn restored_writing_attempts_are_verified_when_their_encoder_appears() {
        let now = Instant::now();
        let mut s = Session::new("b".into(), "0".into());
        let Incoming::AttemptAvailable(o) = offer("w", "e1") else {
            unreachable!()
        };
        let stored = StoredAttempt {
            offer: serde_json::value::to_raw_value(&o).expect("json"),
            phase: crate::store::Phase::Writing,
            deadline: None,
            writing: Some(Writing {
                uid: "01020304".into(),
                card_number: "1".into(),
            }),
            updated_at: 0,
        };
        let unreadable = StoredAttempt {
            offer: serde_json::value::to_raw_value(&1).expect("json"),
            phase: crate::store::Phase::Claimed,
            deadline: None,
            writing: None,
            updated_at: 0,
        };
        let outbox = vec![("x".to_owned(), "not a result".to_owned())];
        let attempts = vec![("w".to_owned(), stored), ("u".to_owned(), unreadable)];
        assert!(s.restore(outbox, attempts, now).is_empty());
        assert_eq!(s.unacknowledged(), 0, "an unreadable result is not resent");
        let actions = s.add_encoder(info("e1"), now);
        assert!(matches!(actions.as_slice(), [Action::Verify { .. }]));
        // A re-offer of it is ignored: never run twice.
        s.connected(now);
        assert!(s.message(offer("w", "e1"), now).is_empty());
    }

    /// Runs attempt `id` on `e1` from offer to result at `now`; `acked` acknowledges it.
    fn run_to_result(s: &mut Session, id: &str, now: Instant, acked: bool) {
        assert_eq!(
            sent(&s.message(offer(id, "e1"), now)).len(),
            1,
            "{id} claimed"
        );
        assert!(matches!(
            s.message(grant(id), now).as_slice(),
            [Action::Start { .. }]
        ));
        let report = JobReport::now(Err(encoder_protocol::cloud_error::CloudError::new(
            encoder_protocol::cloud_error::ErrorType::NoCardOnEncoder,
            None,
            "no card",
            "waited",
        )));
        s.finished(id, "e1", ActionKind::Scan, &report, now);
        if acked {
            s.message(
                Incoming::ResultAck(ResultAck {
                    action_attempt_id: id.into(),
                }),
                now,
            );
        }
    }

    /// The retention window on a test clock: ids past it (by time or count) are forgotten,
    /// those inside still recognised, an unacknowledged result survives any age.
    #[test]
    fn finished_ids_leave_by_the_window_but_unacknowledged_results_stay() {
        let t0 = Instant::now();
        let s1 = Duration::from_secs(1);
        let mut s = Session::new("b".into(), "0".into()).with_retention(Retention {
            keep_for: 60 * s1,
            keep_at_most: 3,
        });
        s.add_encoder(info("e1"), t0);
        s.connected(t0);
        run_to_result(&mut s, "unacked", t0, false);
        run_to_result(&mut s, "old", t0, true);
        run_to_result(&mut s, "new", t0 + 30 * s1, true);
        // Inside the window: a repeated offer is recognised.
        assert!(s.message(offer("old", "e1"), t0 + 60 * s1).is_empty());
        assert_eq!(s.remembered(), 3);
        // Past it by time: "old" and "unacked" leave the set, "new" (30 s old) stays.
        assert!(s.tick(t0 + 61 * s1).is_empty());
        assert_eq!(s.remembered(), 1);
        assert!(s.message(offer("new", "e1"), t0 + 61 * s1).is_empty());
        assert!(
            s.message(offer("unacked", "e1"), t0 + 61 * s1).is_empty(),
            "an unacknowledged result is still known"
        );
        assert_eq!(s.unacknowledged(), 1);
        // Past the count: the oldest of four goes at once.
        for id in ["c1", "c2", "c3"] {
            run_to_result(&mut s, id, t0 + 62 * s1, true);
        }
        assert_eq!(s.remembered(), 3);
        assert!(
            !sent(&s.message(offer("new", "e1"), t0 + 62 * s1)).is_empty(),
            "forgotten: the cloud never offers it again (docs/cloud-protocol.md §5)"
        );
        // A year on, the result is still resent after a reconnect.
        let year = t0 + 365 * 86_400 * s1;
        s.tick(year);
        s.disconnected();
        let again = sent(&s.connected(year));
        assert!(
            again
                .iter()
                .any(|m| m.contains("result") && m.contains("unacked")),
            "{again:?}"
        );
    }

    /// An operator job holds an idle encoder: offers for it queue unclaimed and are claimed,
    /// in order, when it is released; it cannot take an encoder an attempt holds.
    #[test]
    fn an_operator_job_holds_its_encoder_like_an_attempt() {
        let now = Instant::now();
        let mut s = Session::new("b".into(), "0".into());
        s.add_encoder(info("e1"), now);
        s.connected(now);
        assert!(!s.hold("e9", "local-x"), "unknown encoder");
        assert!(s.hold("e1", "local-1"));
        assert_eq!(s.busy_with("e1"), Some("local-1"));
        assert!(!s.hold("e1", "local-2"), "one job at a time");
        assert!(s.message(offer("a1", "e1"), now).is_empty(), "not claimed");
        assert!(s.message(offer("a2", "e1"), now).is_empty());
        assert!(
            s.release("e1", "local-other", now).is_empty(),
            "not its job"
        );
        assert_eq!(s.busy_with("e1"), Some("local-1"));
        let claimed = sent(&s.release("e1", "local-1", now));
        assert_eq!(claimed.len(), 1, "{claimed:?}");
        assert!(claimed[0].contains("a1"), "in order: {claimed:?}");
        assert_eq!(s.busy_with("e1"), Some("a1"));
        assert_eq!(s.in_flight(), 1);
        assert!(!s.hold("e1", "local-3"), "the attempt holds it");
    }
}
