//! Durable state in redb (an embedded ACID store; every commit is fsynced).
//!
//! Tables:
//! - `meta`: `schema` → the version of this layout ([`SCHEMA`]); a store written by a newer
//!   version is refused, never misread;
//! - `identity`: `bridge_id`, and `encoder:<kind>:<reader>` → encoder id, so a reader keeps its
//!   id across restarts;
//! - `attempts`: attempt id → [`StoredAttempt`] (JSON): the phase, what is being written, and
//!   the offer as the cloud sent it, kept opaque (the cloud module reads it back);
//! - `outbox`: attempt id → the `result` message, opaque JSON text, until the cloud
//!   acknowledges it;
//! - `acknowledged`: (unix seconds of the acknowledgement, attempt id) → nothing: the
//!   acknowledged attempts oldest first, so the [`Retention`] window drops them while running
//!   at a cost that does not grow with history. It is an index of `attempts`, rebuilt from it
//!   at every open, so a store an older version wrote (without it) reads the same and the
//!   layout stays 1.
//!
//! Retention (docs/cloud-protocol.md §5): an acknowledged attempt is remembered while it is
//! inside the window (younger than [`Retention::keep_for`] and among the newest
//! [`Retention::keep_at_most`]), so a repeated offer of it is recognised; past the window it
//! is dropped. Claimed, writing and done attempts, and every unacknowledged result, are never
//! dropped, however old.
//!
//! The store knows no wire type: what it keeps of the cloud's messages is text the cloud
//! module wrote and reads. A row that cannot be decoded is reported with its key
//! ([`Loaded::damaged`]), never skipped in silence.
//!
//! The phases give the at-most-once rule of docs/cloud-protocol.md §5: `claimed` is stored
//! before the card is touched, `writing` before the first card write, `done` together with the
//! result in the outbox (one transaction), `acknowledged` when the cloud has it.

// redb's own error type is large; boxing it inside this module buys nothing.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

const META: TableDefinition<'_, &str, &str> = TableDefinition::new("meta");
const IDENTITY: TableDefinition<'_, &str, &str> = TableDefinition::new("identity");
const ATTEMPTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("attempts");
const OUTBOX: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("outbox");
const ACKNOWLEDGED: TableDefinition<'_, (i64, &str), ()> = TableDefinition::new("acknowledged");

/// The layout version this software writes and reads. Layout 1 has no `meta` row (it is
/// the layout of the first release, which wrote none).
pub const SCHEMA: u32 = 1;

/// File name of the store inside the state directory.
pub const FILE_NAME: &str = "state.redb";

/// The default of [`Retention::keep_for`]: 7 days.
pub const DEFAULT_KEEP_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// The default of [`Retention::keep_at_most`].
pub const DEFAULT_KEEP_AT_MOST: usize = 10_000;

/// How long, and how many, finished attempts are remembered after the cloud acknowledged
/// them (to recognise a repeated offer): the window ends at whichever bound is reached first.
/// The same window bounds the session's set of finished ids (docs/cloud-protocol.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Dropped once acknowledged longer ago than this.
    pub keep_for: Duration,
    /// At most this many are remembered; the oldest go first.
    pub keep_at_most: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_for: DEFAULT_KEEP_FOR,
            keep_at_most: DEFAULT_KEEP_AT_MOST,
        }
    }
}

impl Retention {
    /// No window: nothing is forgotten.
    pub fn everything() -> Self {
        Self {
            keep_for: Duration::MAX,
            keep_at_most: usize::MAX,
        }
    }

    fn keep_for_secs(&self) -> i64 {
        i64::try_from(self.keep_for.as_secs()).unwrap_or(i64::MAX)
    }

    fn keep_at_most(&self) -> u64 {
        u64::try_from(self.keep_at_most).unwrap_or(u64::MAX)
    }
}

/// redb's page cache (its default is 1 GiB, so the whole file ends up in the daemon's
/// memory): the store is read at start and written by small transactions, so a small cache
/// keeps the daemon's RSS flat; the kernel's page cache does the rest.
const CACHE_BYTES: usize = 1 << 20;

/// Compaction is considered only when at least this much of the file is free.
pub const COMPACT_MIN_FREE: u64 = 1 << 20;

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// File size before, bytes.
    pub before: u64,
    /// After.
    pub after: u64,
    /// How long the store was held.
    pub took: Duration,
}

/// A store failure (disk full, corrupt file, permission, a newer layout).
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {message}")]
pub struct StoreError {
    path: String,
    message: String,
    newer: bool,
}

impl StoreError {
    /// The store was written by a newer version, whose layout this one does not read.
    pub fn is_newer_layout(&self) -> bool {
        self.newer
    }
}

/// The phase of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Claimed; the card is not written yet.
    Claimed,
    /// The first card write may have happened.
    Writing,
    /// The result is in the outbox.
    Done,
    /// The cloud acknowledged the result.
    Acknowledged,
}

/// What the encode is writing (stored with [`Phase::Writing`]), for the verifying scan after a
/// crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writing {
    /// The card's UID, hex.
    pub uid: String,
    /// The card number written (the cloud's, or the one derived from the UID).
    pub card_number: String,
}

/// An attempt as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredAttempt {
    /// The offer as the cloud sent it (JSON), opaque to the store; `{}` once acknowledged.
    pub offer: Box<RawValue>,
    /// Where it is.
    pub phase: Phase,
    /// The attempt's deadline (RFC 3339), from the grant.
    pub deadline: Option<String>,
    /// Set from [`Phase::Writing`] on.
    pub writing: Option<Writing>,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

/// A row that cannot be decoded: reported (log, `doctor`), never skipped in silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRow {
    /// The table.
    pub table: &'static str,
    /// The row's key (an attempt id).
    pub key: String,
    /// Why it cannot be decoded.
    pub error: String,
}

impl std::fmt::Display for DamagedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "state row {}/{} cannot be decoded: {}",
            self.table, self.key, self.error
        )
    }
}

/// What the store holds, as loaded at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every attempt, by id.
    pub attempts: Vec<(String, StoredAttempt)>,
    /// Every unacknowledged result: attempt id and message text.
    pub outbox: Vec<(String, String)>,
    /// Rows that could not be decoded.
    pub damaged: Vec<DamagedRow>,
}

/// The store.
#[derive(Debug)]
pub struct Store {
    /// Shared by every call (redb's transactions do not borrow the database: the guard is held
    /// only to begin one); taken exclusively by [`Store::compact`] alone.
    db: RwLock<Database>,
    path: PathBuf,
    retention: Retention,
    /// Rows of the `acknowledged` index (counted here: redb's `len` walks the tree).
    acknowledged: AtomicU64,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Store {
    /// Opens (creating) the store in `dir` keeping everything ([`Retention::everything`]):
    /// for tools that look at a store (`doctor`) and must not apply a window other than the
    /// daemon's. The daemon opens it with [`Store::open_with`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, Retention::everything())
    }

    /// Opens (creating) the store in `dir`, remembering acknowledged attempts by `retention`;
    /// what is already past it is dropped now.
    pub fn open_with(dir: &Path, retention: Retention) -> Result<Self, StoreError> {
        let path = dir.join(FILE_NAME);
        let err = |message: String| StoreError {
            path: path.display().to_string(),
            message,
            newer: false,
        };
        std::fs::create_dir_all(dir).map_err(|e| {
            err(format!(
                "cannot create the state directory: {e} (fix: create {} writable by the service user)",
                dir.display()
            ))
        })?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| {
            err(format!(
                "{e} (fix: is another encoder-bridge running? the directory must be writable by the service user)"
            ))
        })?;
        let store = Self {
            db: RwLock::new(db),
            path,
            retention,
            acknowledged: AtomicU64::new(0),
        };
        let found = store.write(|txn| {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema")?.map(|v| v.value().to_owned());
            if found.is_none() {
                meta.insert("schema", SCHEMA.to_string().as_str())?;
            }
            txn.open_table(IDENTITY)?;
            txn.open_table(ATTEMPTS)?;
            txn.open_table(OUTBOX)?;
            txn.open_table(ACKNOWLEDGED)?;
            Ok(found)
        })?;
        if let Some(found) = found
            && found.parse::<u32>().map_or(true, |v| v > SCHEMA)
        {
            return Err(StoreError {
                newer: true,
                ..store.error(format!(
                    "written by a newer encoder-bridge (state layout {found}; this version reads {SCHEMA}) (fix: install that version again, or move the state directory away to start afresh, which loses unacknowledged results)"
                ))
            });
        }
        store.index_acknowledged(now())?;
        // The rebuild above rewrites the index in one transaction, which needs room for a
        // second copy: give it back now, while nothing else uses the store (at least
        // COMPACT_MIN_FREE free, without the half-the-file rule of a running daemon).
        store.compact_when(|free, _| free >= COMPACT_MIN_FREE)?;
        Ok(store)
    }

    fn db(&self) -> RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Compacts the file (redb's `Database::compact`) when dropped rows have left at least
    /// half of it, and at least [`COMPACT_MIN_FREE`], free; `None` when not worth it.
    ///
    /// Compaction needs the database to itself: every other call on the store waits until it
    /// is done. The daemon therefore calls it only from its own task while no card operation
    /// is in flight (no runner is in a job, and the task dispatches none meanwhile), and the
    /// file is bounded by the retention, so the pause is short; it is measured and logged.
    pub fn compact(&self) -> Result<Option<Compacted>, StoreError> {
        self.compact_when(|free, before| free >= COMPACT_MIN_FREE && free >= before / 2)
    }

    /// Compacts when `worth(free bytes, file bytes)` says so.
    fn compact_when(
        &self,
        worth: impl FnOnce(u64, u64) -> bool,
    ) -> Result<Option<Compacted>, StoreError> {
        let before = self.file_size();
        let used = {
            let txn = self.db().begin_write().map_err(|e| self.error(e))?;
            let stats = txn.stats().map_err(|e| self.error(e))?;
            txn.abort().map_err(|e| self.error(e))?;
            stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes()
        };
        if !worth(before.saturating_sub(used), before) {
            return Ok(None);
        }
        let started = Instant::now();
        {
            let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
            db.compact().map_err(|e| self.error(e))?;
        }
        Ok(Some(Compacted {
            before,
            after: self.file_size(),
            took: started.elapsed(),
        }))
    }

    /// The retention window.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// How many acknowledged attempts are remembered.
    pub fn acknowledged_count(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// The size of the store's file in bytes (the endurance benchmark, `doctor`).
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            message: e.to_string(),
            newer: false,
        }
    }

    /// Runs `f` in one write transaction and commits it (durably).
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let txn = self.db().begin_write().map_err(|e| self.error(e))?;
        let out = f(&txn).map_err(|e| self.error(e))?;
        txn.commit().map_err(|e| self.error(e))?;
        Ok(out)
    }

    fn id_for(&self, key: &str) -> Result<String, StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(IDENTITY)?;
            if let Some(existing) = table.get(key)? {
                return Ok(existing.value().to_owned());
            }
            let id = uuid::Uuid::new_v4().to_string();
            table.insert(key, id.as_str())?;
            Ok(id)
        })
    }

    /// This bridge's id, created once.
    pub fn bridge_id(&self) -> Result<String, StoreError> {
        self.id_for("bridge_id")
    }

    /// The id of the encoder `kind` (`pcsc`/`pn532`) at `reader`, created once.
    pub fn encoder_id(&self, kind: &str, reader: &str) -> Result<String, StoreError> {
        self.id_for(&format!("encoder:{kind}:{reader}"))
    }

    /// The stored attempt `id`; a row that cannot be decoded is an error naming it.
    pub fn attempt(&self, id: &str) -> Result<Option<StoredAttempt>, StoreError> {
        let txn = self.db().begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(ATTEMPTS).map_err(|e| self.error(e))?;
        let value = table.get(id).map_err(|e| self.error(e))?;
        value
            .map(|v| decode_attempt(id, v.value()).map_err(|d| self.error(d)))
            .transpose()
    }

    /// Everything kept for a start: attempts, the outbox, and the rows that cannot be decoded.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let txn = self.db().begin_read().map_err(|e| self.error(e))?;
        let mut loaded = Loaded::default();
        let table = txn.open_table(ATTEMPTS).map_err(|e| self.error(e))?;
        for row in table.iter().map_err(|e| self.error(e))? {
            let (key, value) = row.map_err(|e| self.error(e))?;
            let key = key.value().to_owned();
            match decode_attempt(&key, value.value()) {
                Ok(attempt) => loaded.attempts.push((key, attempt)),
                Err(damaged) => loaded.damaged.push(damaged),
            }
        }
        let table = txn.open_table(OUTBOX).map_err(|e| self.error(e))?;
        for row in table.iter().map_err(|e| self.error(e))? {
            let (key, value) = row.map_err(|e| self.error(e))?;
            let key = key.value().to_owned();
            match std::str::from_utf8(value.value()) {
                Ok(text) => loaded.outbox.push((key, text.to_owned())),
                Err(e) => loaded.damaged.push(DamagedRow {
                    table: "outbox",
                    key,
                    error: e.to_string(),
                }),
            }
        }
        Ok(loaded)
    }

    fn put(
        txn: &redb::WriteTransaction,
        id: &str,
        attempt: &StoredAttempt,
    ) -> Result<(), redb::Error> {
        let mut table = txn.open_table(ATTEMPTS)?;
        let bytes =
            serde_json::to_vec(attempt).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
        table.insert(id, bytes.as_slice())?;
        Ok(())
    }

    fn get(txn: &redb::WriteTransaction, id: &str) -> Result<Option<StoredAttempt>, redb::Error> {
        let table = txn.open_table(ATTEMPTS)?;
        let value = table.get(id)?;
        value
            .map(|v| {
                decode_attempt(id, v.value()).map_err(|d| redb::Error::Corrupted(d.to_string()))
            })
            .transpose()
    }

    /// Stores a granted attempt `id` as `claimed` with the offer's text, unless it is already
    /// further along; returns the phase it is in afterwards.
    pub fn put_claimed(
        &self,
        id: &str,
        offer_json: &str,
        deadline: Option<&str>,
    ) -> Result<Phase, StoreError> {
        let offer = RawValue::from_string(offer_json.to_owned())
            .map_err(|e| self.error(format!("the offer of {id} is not JSON: {e}")))?;
        self.write(|txn| {
            if let Some(existing) = Self::get(txn, id)?
                && existing.phase != Phase::Claimed
            {
                return Ok(existing.phase);
            }
            Self::put(
                txn,
                id,
                &StoredAttempt {
                    offer,
                    phase: Phase::Claimed,
                    deadline: deadline.map(str::to_owned),
                    writing: None,
                    updated_at: now(),
                },
            )?;
            Ok(Phase::Claimed)
        })
    }

    /// Moves `id` to `writing` (before the first card write). An attempt that was never
    /// stored as `claimed` is an error: a card must not be written for an attempt the store
    /// does not know, or a restart could not tell that it was written.
    pub fn mark_writing(&self, id: &str, writing: Writing) -> Result<(), StoreError> {
        let found = self.write(|txn| {
            let Some(mut attempt) = Self::get(txn, id)? else {
                return Ok(false);
            };
            attempt.phase = Phase::Writing;
            attempt.writing = Some(writing);
            attempt.updated_at = now();
            Self::put(txn, id, &attempt)?;
            Ok(true)
        })?;
        if found {
            Ok(())
        } else {
            Err(self.error(format!("attempt {id} is not stored as claimed")))
        }
    }

    /// Stores the result message (`message`, the text to send) of attempt `id` in the outbox
    /// and marks the attempt `done`, in one transaction.
    pub fn finish(&self, id: &str, message: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(OUTBOX)?.insert(id, message.as_bytes())?;
            if let Some(mut attempt) = Self::get(txn, id)? {
                attempt.phase = Phase::Done;
                attempt.updated_at = now();
                Self::put(txn, id, &attempt)?;
            }
            Ok(())
        })
    }

    /// The cloud acknowledged `id`: drop it from the outbox, remember it as acknowledged, and
    /// drop what has left the retention window (a few rows at most: the window moves by one).
    pub fn acknowledge(&self, id: &str) -> Result<(), StoreError> {
        self.acknowledge_at(id, now())
    }

    /// [`Self::acknowledge`] at `at` (unix seconds).
    fn acknowledge_at(&self, id: &str, at: i64) -> Result<(), StoreError> {
        let before = self.acknowledged_count();
        let after = self.write(|txn| {
            txn.open_table(OUTBOX)?.remove(id)?;
            let mut count = before;
            if let Some(mut attempt) = Self::get(txn, id)?
                && attempt.phase != Phase::Acknowledged
            {
                attempt.phase = Phase::Acknowledged;
                attempt.updated_at = at;
                // Only its id and time are needed from now on (to recognise a repeated offer):
                // the offer's text goes, so the window costs little disk.
                attempt.offer = empty_offer()?;
                attempt.writing = None;
                attempt.deadline = None;
                Self::put(txn, id, &attempt)?;
                txn.open_table(ACKNOWLEDGED)?.insert((at, id), ())?;
                count = count.saturating_add(1);
            }
            self.prune_in(txn, at, count)
        })?;
        self.acknowledged.store(after, Ordering::Relaxed);
        Ok(())
    }

    /// Drops the acknowledged attempts that have left the retention window by now; returns
    /// how many. The daemon calls it now and then, so a bridge that finishes nothing still
    /// forgets by time.
    pub fn prune(&self) -> Result<u64, StoreError> {
        self.prune_at(now())
    }

    /// [`Self::prune`] at `at` (unix seconds).
    fn prune_at(&self, at: i64) -> Result<u64, StoreError> {
        let before = self.acknowledged_count();
        let after = self.write(|txn| self.prune_in(txn, at, before))?;
        self.acknowledged.store(after, Ordering::Relaxed);
        Ok(before.saturating_sub(after))
    }

    /// Drops, oldest first, the acknowledged attempts past the window at `at`, given `count`
    /// rows in the index; returns the rows left. Only acknowledged attempts are dropped.
    fn prune_in(
        &self,
        txn: &redb::WriteTransaction,
        at: i64,
        mut count: u64,
    ) -> Result<u64, redb::Error> {
        let oldest_kept = at.saturating_sub(self.retention.keep_for_secs());
        let mut index = txn.open_table(ACKNOWLEDGED)?;
        let mut attempts = txn.open_table(ATTEMPTS)?;
        loop {
            let due = match index.first()? {
                Some(first) => {
                    let (acked_at, _) = first.0.value();
                    acked_at < oldest_kept || count > self.retention.keep_at_most()
                }
                None => false,
            };
            if !due {
                return Ok(count);
            }
            let Some((key, _)) = index.pop_first()? else {
                return Ok(0);
            };
            let id = key.value().1.to_owned();
            drop(key);
            count = count.saturating_sub(1);
            let acknowledged = attempts.get(id.as_str())?.is_some_and(|v| {
                decode_attempt(&id, v.value()).is_ok_and(|a| a.phase == Phase::Acknowledged)
            });
            if acknowledged {
                attempts.remove(id.as_str())?;
            }
        }
    }

    /// Rebuilds the `acknowledged` index from the attempts (at open; older versions wrote
    /// none), dropping what is already past the window at `at`.
    fn index_acknowledged(&self, at: i64) -> Result<(), StoreError> {
        let mut acknowledged: Vec<(i64, String)> = self
            .load()?
            .attempts
            .into_iter()
            .filter(|(_, a)| a.phase == Phase::Acknowledged)
            .map(|(id, a)| (a.updated_at, id))
            .collect();
        acknowledged.sort_unstable();
        let count = u64::try_from(acknowledged.len()).unwrap_or(u64::MAX);
        let after = self.write(|txn| {
            txn.delete_table(ACKNOWLEDGED)?;
            let mut index = txn.open_table(ACKNOWLEDGED)?;
            for (acked_at, id) in &acknowledged {
                index.insert((*acked_at, id.as_str()), ())?;
            }
            drop(index);
            self.prune_in(txn, at, count)
        })?;
        self.acknowledged.store(after, Ordering::Relaxed);
        Ok(())
    }

    /// Forgets a claimed attempt that will not run (refused, cancelled before any write).
    pub fn forget(&self, id: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            let keep = Self::get(txn, id)?.is_some_and(|a| a.phase != Phase::Claimed);
            if !keep {
                txn.open_table(ATTEMPTS)?.remove(id)?;
            }
            Ok(())
        })
    }
}

/// The offer kept with an acknowledged attempt: `{}`.
fn empty_offer() -> Result<Box<RawValue>, redb::Error> {
    RawValue::from_string("{}".to_owned()).map_err(|e| redb::Error::Corrupted(e.to_string()))
}

/// Decodes the `attempts` row `key`: what the store does with bytes read from disk (public for
/// the fuzz targets, crates/fuzz-targets).
pub fn decode_attempt(key: &str, bytes: &[u8]) -> Result<StoredAttempt, DamagedRow> {
    serde_json::from_slice(bytes).map_err(|e| DamagedRow {
        table: "attempts",
        key: key.to_owned(),
        error: e.to_string(),
    })
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

    const OFFER: &str =
        r#"{"action_attempt_id":"a","action_type":"SCAN_CREDENTIAL","encoder_id":"e"}"#;
    const RESULT: &str = r#"{"type":"result","action_attempt_id":"a","status":"success"}"#;

    #[test]
    fn ids_survive_a_reopen_and_phases_never_go_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (bridge, encoder) = {
            let store = Store::open(dir.path()).expect("open");
            let bridge = store.bridge_id().expect("id");
            let encoder = store.encoder_id("pcsc", "R 00").expect("id");
            assert_ne!(encoder, store.encoder_id("pcsc", "R 01").expect("id"));
            assert_eq!(
                store.put_claimed("a", OFFER, None).expect("claim"),
                Phase::Claimed
            );
            store
                .mark_writing(
                    "a",
                    Writing {
                        uid: "01020304".into(),
                        card_number: "1".into(),
                    },
                )
                .expect("writing");
            (bridge, encoder)
        };
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.bridge_id().expect("id"), bridge);
        assert_eq!(store.encoder_id("pcsc", "R 00").expect("id"), encoder);
        assert_eq!(
            store.put_claimed("a", OFFER, None).expect("claim"),
            Phase::Writing
        );
        let kept = store.attempt("a").expect("get").expect("there");
        assert_eq!(kept.offer.get(), OFFER, "the offer is kept as sent");
        store.finish("a", RESULT).expect("finish");
        assert_eq!(
            store.load().expect("load").outbox,
            vec![("a".to_owned(), RESULT.to_owned())]
        );
        store.forget("a").expect("forget keeps a finished attempt");
        assert_eq!(
            store.attempt("a").expect("get").map(|a| a.phase),
            Some(Phase::Done)
        );
        store.acknowledge("a").expect("ack");
        assert!(store.load().expect("load").outbox.is_empty());
        let acked = store.attempt("a").expect("get").expect("kept");
        assert_eq!(acked.phase, Phase::Acknowledged);
        assert_eq!(acked.offer.get(), "{}", "only the id and time are kept");
        store.put_claimed("b", OFFER, None).expect("claim");
        store.forget("b").expect("forget");
        assert!(store.attempt("b").expect("get").is_none());
    }

    #[test]
    fn writing_an_attempt_that_was_never_claimed_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let writing = Writing {
            uid: "01020304".into(),
            card_number: "1".into(),
        };
        let e = store.mark_writing("nobody", writing).expect_err("unknown");
        assert!(e.to_string().contains("nobody"), "{e}");
    }

    #[test]
    fn a_damaged_row_is_reported_with_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.put_claimed("good", OFFER, None).expect("claim");
        store
            .write(|txn| {
                txn.open_table(ATTEMPTS)?
                    .insert("bad", b"{not json".as_slice())?;
                Ok(())
            })
            .expect("raw write");
        let loaded = store.load().expect("load");
        assert_eq!(loaded.attempts.len(), 1);
        assert_eq!(loaded.damaged.len(), 1);
        assert_eq!(loaded.damaged[0].key, "bad");
        assert!(loaded.damaged[0].to_string().contains("attempts/bad"));
        assert!(store.attempt("bad").is_err(), "never read as absent");
        assert!(
            store.put_claimed("bad", OFFER, None).is_err(),
            "never overwritten"
        );
    }

    #[test]
    fn a_store_of_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            store
                .write(|txn| {
                    txn.open_table(META)?.insert("schema", "99")?;
                    Ok(())
                })
                .expect("raw write");
        }
        let e = Store::open(dir.path()).expect_err("newer");
        assert!(e.is_newer_layout());
        let text = e.to_string();
        assert!(text.contains("newer") && text.contains("99"), "{text}");
    }

    #[test]
    fn rows_of_the_first_release_still_read() {
        // The first release wrote no meta row and this very JSON.
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            store
                .write(|txn| {
                    txn.open_table(META)?.remove("schema")?;
                    let old = format!(
                        r#"{{"offer":{OFFER},"phase":"writing","deadline":null,"writing":{{"uid":"01020304","card_number":"7"}},"updated_at":1}}"#
                    );
                    txn.open_table(ATTEMPTS)?.insert("a", old.as_bytes())?;
                    Ok(())
                })
                .expect("raw write");
        }
        let store = Store::open(dir.path()).expect("open");
        let a = store.attempt("a").expect("get").expect("there");
        assert_eq!(a.phase, Phase::Writing);
        assert_eq!(a.writing.map(|w| w.card_number).as_deref(), Some("7"));
    }

    fn claimed_and_done(store: &Store, id: &str) {
        store.put_claimed(id, OFFER, None).expect("claim");
        store.finish(id, RESULT).expect("finish");
    }

    fn phase(store: &Store, id: &str) -> Option<Phase> {
        store.attempt(id).expect("get").map(|a| a.phase)
    }

    /// The window on a test clock (unix seconds given, no waiting): by time and by count,
    /// while running and at open; unacknowledged results and live attempts survive any age.
    #[test]
    fn acknowledged_attempts_leave_by_the_window_and_results_never_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let retention = Retention {
            keep_for: Duration::from_secs(100),
            keep_at_most: 3,
        };
        let t0 = 1_000_000;
        {
            let store = Store::open_with(dir.path(), retention).expect("open");
            // Never acknowledged, claimed, and done-but-unacknowledged: kept forever.
            claimed_and_done(&store, "unacked");
            store.put_claimed("claimed", OFFER, None).expect("claim");
            for (n, id) in ["a1", "a2", "a3"].iter().enumerate() {
                claimed_and_done(&store, id);
                store
                    .acknowledge_at(id, t0 + i64::try_from(n).expect("n"))
                    .expect("ack");
            }
            assert_eq!(store.acknowledged_count(), 3);
            // By count: a fourth pushes the oldest out, in the same transaction.
            claimed_and_done(&store, "a4");
            store.acknowledge_at("a4", t0 + 50).expect("ack");
            assert_eq!(phase(&store, "a1"), None, "past the count");
            assert_eq!(phase(&store, "a2"), Some(Phase::Acknowledged));
            assert_eq!(store.acknowledged_count(), 3);
            // A repeated acknowledgement changes nothing.
            store.acknowledge_at("a4", t0 + 60).expect("ack again");
            assert_eq!(store.acknowledged_count(), 3);
            // By time: at t0 + 101, a2 (t0 + 1) is 100 s old, still inside; a year later
            // all acknowledged ones are gone, the rest is untouched.
            assert_eq!(store.prune_at(t0 + 101).expect("prune"), 0);
            assert_eq!(store.prune_at(t0 + 102).expect("prune"), 1);
            assert_eq!(phase(&store, "a2"), None);
            assert_eq!(phase(&store, "a3"), Some(Phase::Acknowledged));
            assert_eq!(store.prune_at(t0 + 365 * 86_400).expect("prune"), 2);
            assert_eq!(store.acknowledged_count(), 0);
            assert_eq!(phase(&store, "unacked"), Some(Phase::Done));
            assert_eq!(phase(&store, "claimed"), Some(Phase::Claimed));
            assert_eq!(
                store.load().expect("load").outbox,
                vec![("unacked".to_owned(), RESULT.to_owned())],
                "an unacknowledged result is never dropped"
            );
            // Acknowledged long ago by a version that kept no index.
            store
                .write(|txn| {
                    let old = format!(
                        r#"{{"offer":{OFFER},"phase":"acknowledged","deadline":null,"writing":null,"updated_at":5}}"#
                    );
                    txn.open_table(ATTEMPTS)?.insert("old", old.as_bytes())?;
                    Ok(())
                })
                .expect("raw write");
            claimed_and_done(&store, "recent");
            store.acknowledge_at("recent", now()).expect("ack");
        }
        // At open, the index is rebuilt from the attempts and the window applied.
        let store = Store::open_with(dir.path(), retention).expect("reopen");
        assert_eq!(store.acknowledged_count(), 1);
        assert_eq!(phase(&store, "old"), None);
        assert_eq!(phase(&store, "recent"), Some(Phase::Acknowledged));
        assert_eq!(phase(&store, "unacked"), Some(Phase::Done));
    }

    #[test]
    fn a_store_that_has_shrunk_is_compacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(store.compact().expect("compact"), None, "nothing to gain");
        let row = format!(
            r#"{{"offer":{{"pad":"{}"}},"phase":"acknowledged","deadline":null,"writing":null,"updated_at":1}}"#,
            "x".repeat(2000)
        );
        store
            .write(|txn| {
                let mut table = txn.open_table(ATTEMPTS)?;
                for n in 0..3000 {
                    table.insert(format!("a{n}").as_str(), row.as_bytes())?;
                }
                Ok(())
            })
            .expect("fill");
        store.put_claimed("live", OFFER, None).expect("claim");
        store
            .write(|txn| {
                let mut table = txn.open_table(ATTEMPTS)?;
                for n in 0..3000 {
                    table.remove(format!("a{n}").as_str())?;
                }
                Ok(())
            })
            .expect("empty");
        let compacted = store.compact().expect("compact").expect("worth it");
        assert!(
            compacted.after * 2 < compacted.before,
            "{compacted:?}: the file shrinks"
        );
        assert_eq!(phase(&store, "live"), Some(Phase::Claimed), "data kept");
        assert_eq!(store.compact().expect("again"), None);
    }

    /// Reopening a store full of acknowledged attempts (the index is rebuilt at every open)
    /// does not grow its file: what the rebuild leaves free is given back at the open.
    #[test]
    fn reopening_does_not_grow_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let retention = Retention {
            keep_for: Duration::from_secs(86_400),
            keep_at_most: 10_000,
        };
        let store = Store::open_with(dir.path(), retention).expect("open");
        let row = format!(
            r#"{{"offer":{{}},"phase":"acknowledged","deadline":null,"writing":null,"updated_at":{}}}"#,
            now()
        );
        store
            .write(|txn| {
                let mut table = txn.open_table(ATTEMPTS)?;
                for n in 0..10_000 {
                    table.insert(format!("attempt-{n:08}").as_str(), row.as_bytes())?;
                }
                Ok(())
            })
            .expect("fill");
        drop(store);
        let mut sizes = Vec::new();
        for _ in 0..4 {
            let store = Store::open_with(dir.path(), retention).expect("reopen");
            assert_eq!(store.acknowledged_count(), 10_000);
            sizes.push(store.file_size());
        }
        let first = sizes.first().copied().unwrap_or_default();
        assert!(
            sizes.iter().all(|s| *s <= first + first / 10),
            "file sizes at each open: {sizes:?}"
        );
    }
}
