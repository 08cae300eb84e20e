//! Durable state in redb (an embedded ACID store; every commit is fsynced).
//!
//! Tables:
//! - `identity`: `bridge_id`, and `encoder:<kind>:<reader>` → encoder id, so a reader keeps its
//!   id across restarts;
//! - `attempts`: attempt id → [`StoredAttempt`] (JSON): the offer, the phase, what is being
//!   written;
//! - `outbox`: attempt id → the `result` message (JSON), until the cloud acknowledges it.
//!
//! The phases give the at-most-once rule of docs/cloud-protocol.md §5: `claimed` is stored
//! before the card is touched, `writing` before the first card write, `done` together with the
//! result in the outbox (one transaction), `acknowledged` when the cloud has it.

// redb's own error type is large; boxing it inside this module buys nothing.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::cloud::message::{AttemptAvailable, ResultMsg};

const IDENTITY: TableDefinition<'_, &str, &str> = TableDefinition::new("identity");
const ATTEMPTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("attempts");
const OUTBOX: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("outbox");

/// File name of the store inside the state directory.
pub const FILE_NAME: &str = "state.redb";

/// How long acknowledged attempts are remembered (to ignore a late repeated offer).
const KEEP_ACKNOWLEDGED_SECS: i64 = 7 * 24 * 3600;

/// A store failure (disk full, corrupt file, permission).
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {message}")]
pub struct StoreError {
    path: String,
    message: String,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAttempt {
    /// The offer as the cloud sent it.
    pub offer: AttemptAvailable,
    /// Where it is.
    pub phase: Phase,
    /// The attempt's deadline (RFC 3339), from the grant.
    pub deadline: Option<String>,
    /// Set from [`Phase::Writing`] on.
    pub writing: Option<Writing>,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

/// The store.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

/// Decodes a row of the `attempts` table. Public so that the fuzz targets
/// (crates/fuzz-targets) exercise the store's own decoding of bytes read from disk.
pub fn decode_attempt(bytes: &[u8]) -> Result<StoredAttempt, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Decodes a row of the `outbox` table (public for the fuzz targets, as [`decode_attempt`]).
pub fn decode_result(bytes: &[u8]) -> Result<ResultMsg, serde_json::Error> {
    serde_json::from_slice(bytes)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Store {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(FILE_NAME);
        let err = |message: String| StoreError {
            path: path.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| {
            err(format!(
                "cannot create the state directory: {e} (fix: create {} writable by the service user)",
                dir.display()
            ))
        })?;
        let db = Database::create(&path).map_err(|e| {
            err(format!(
                "{e} (fix: is another encoder-bridge running? the directory must be writable by the service user)"
            ))
        })?;
        let store = Self { db, path };
        store.write(|txn| {
            txn.open_table(IDENTITY)?;
            txn.open_table(ATTEMPTS)?;
            txn.open_table(OUTBOX)?;
            Ok(())
        })?;
        store.prune()?;
        Ok(store)
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Runs `f` in one write transaction and commits it (durably).
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
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

    /// The stored attempt `id`.
    pub fn attempt(&self, id: &str) -> Result<Option<StoredAttempt>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(ATTEMPTS).map_err(|e| self.error(e))?;
        let value = table.get(id).map_err(|e| self.error(e))?;
        Ok(value.and_then(|v| decode_attempt(v.value()).ok()))
    }

    /// Every stored attempt.
    pub fn attempts(&self) -> Result<Vec<StoredAttempt>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(ATTEMPTS).map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.error(e))? {
            let (_, value) = row.map_err(|e| self.error(e))?;
            if let Ok(attempt) = decode_attempt(value.value()) {
                out.push(attempt);
            }
        }
        Ok(out)
    }

    fn put(txn: &redb::WriteTransaction, attempt: &StoredAttempt) -> Result<(), redb::Error> {
        let mut table = txn.open_table(ATTEMPTS)?;
        let bytes = serde_json::to_vec(attempt).unwrap_or_default();
        table.insert(attempt.offer.action_attempt_id.as_str(), bytes.as_slice())?;
        Ok(())
    }

    fn get(txn: &redb::WriteTransaction, id: &str) -> Result<Option<StoredAttempt>, redb::Error> {
        let table = txn.open_table(ATTEMPTS)?;
        let value = table.get(id)?;
        Ok(value.and_then(|v| decode_attempt(v.value()).ok()))
    }

    /// Stores a granted attempt as `claimed`, unless it is already further along; returns the
    /// phase it is in afterwards.
    pub fn put_claimed(
        &self,
        offer: &AttemptAvailable,
        deadline: Option<&str>,
    ) -> Result<Phase, StoreError> {
        self.write(|txn| {
            if let Some(existing) = Self::get(txn, &offer.action_attempt_id)?
                && existing.phase != Phase::Claimed
            {
                return Ok(existing.phase);
            }
            Self::put(
                txn,
                &StoredAttempt {
                    offer: offer.clone(),
                    phase: Phase::Claimed,
                    deadline: deadline.map(str::to_owned),
                    writing: None,
                    updated_at: now(),
                },
            )?;
            Ok(Phase::Claimed)
        })
    }

    /// Moves `id` to `writing` (before the first card write).
    pub fn mark_writing(&self, id: &str, writing: Writing) -> Result<(), StoreError> {
        self.write(|txn| {
            if let Some(mut attempt) = Self::get(txn, id)? {
                attempt.phase = Phase::Writing;
                attempt.writing = Some(writing);
                attempt.updated_at = now();
                Self::put(txn, &attempt)?;
            }
            Ok(())
        })
    }

    /// Stores the result in the outbox and marks the attempt `done`, in one transaction.
    pub fn finish(&self, result: &ResultMsg) -> Result<(), StoreError> {
        self.write(|txn| {
            let bytes = serde_json::to_vec(result).unwrap_or_default();
            txn.open_table(OUTBOX)?
                .insert(result.action_attempt_id.as_str(), bytes.as_slice())?;
            if let Some(mut attempt) = Self::get(txn, &result.action_attempt_id)? {
                attempt.phase = Phase::Done;
                attempt.updated_at = now();
                Self::put(txn, &attempt)?;
            }
            Ok(())
        })
    }

    /// The cloud acknowledged `id`: drop it from the outbox, remember it as acknowledged.
    pub fn acknowledge(&self, id: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(OUTBOX)?.remove(id)?;
            if let Some(mut attempt) = Self::get(txn, id)? {
                attempt.phase = Phase::Acknowledged;
                attempt.updated_at = now();
                Self::put(txn, &attempt)?;
            }
            Ok(())
        })
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

    /// Every result not yet acknowledged.
    pub fn outbox(&self) -> Result<Vec<ResultMsg>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(OUTBOX).map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.error(e))? {
            let (_, value) = row.map_err(|e| self.error(e))?;
            if let Ok(result) = decode_result(value.value()) {
                out.push(result);
            }
        }
        Ok(out)
    }

    fn prune(&self) -> Result<(), StoreError> {
        let old: Vec<String> = self
            .attempts()?
            .into_iter()
            .filter(|a| {
                a.phase == Phase::Acknowledged && now() - a.updated_at > KEEP_ACKNOWLEDGED_SECS
            })
            .map(|a| a.offer.action_attempt_id)
            .collect();
        if old.is_empty() {
            return Ok(());
        }
        self.write(|txn| {
            let mut table = txn.open_table(ATTEMPTS)?;
            for id in &old {
                table.remove(id.as_str())?;
            }
            Ok(())
        })
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
    use crate::cloud::message::ActionType;

    fn offer(id: &str) -> AttemptAvailable {
        AttemptAvailable {
            action_attempt_id: id.into(),
            action_type: ActionType::Scan,
            encoder_id: "e".into(),
            created_at: None,
            expires_at: None,
            credential: None,
        }
    }

    fn result(id: &str) -> ResultMsg {
        ResultMsg {
            action_attempt_id: id.into(),
            action_type: ActionType::Scan,
            encoder_id: "e".into(),
            status: "success".into(),
            finished_at: "2024-12-01T15:00:00.000Z".into(),
            result: Some(serde_json::json!({})),
            error: None,
        }
    }

    #[test]
    fn ids_survive_a_reopen_and_phases_never_go_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (bridge, encoder) = {
            let store = Store::open(dir.path()).expect("open");
            let bridge = store.bridge_id().expect("id");
            let encoder = store.encoder_id("pcsc", "R 00").expect("id");
            assert_ne!(encoder, store.encoder_id("pcsc", "R 01").expect("id"));
            assert_eq!(
                store.put_claimed(&offer("a"), None).expect("claim"),
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
            store.put_claimed(&offer("a"), None).expect("claim"),
            Phase::Writing
        );
        store.finish(&result("a")).expect("finish");
        assert_eq!(store.outbox().expect("outbox").len(), 1);
        store.forget("a").expect("forget keeps a finished attempt");
        assert_eq!(
            store.attempt("a").expect("get").map(|a| a.phase),
            Some(Phase::Done)
        );
        store.acknowledge("a").expect("ack");
        assert!(store.outbox().expect("outbox").is_empty());
        assert_eq!(
            store.attempt("a").expect("get").map(|a| a.phase),
            Some(Phase::Acknowledged)
        );
        store.put_claimed(&offer("b"), None).expect("claim");
        store.forget("b").expect("forget");
        assert!(store.attempt("b").expect("get").is_none());
    }
}
