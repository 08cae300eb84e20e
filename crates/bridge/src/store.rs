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
//!   acknowledges it.
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

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

const META: TableDefinition<'_, &str, &str> = TableDefinition::new("meta");
const IDENTITY: TableDefinition<'_, &str, &str> = TableDefinition::new("identity");
const ATTEMPTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("attempts");
const OUTBOX: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("outbox");

/// The layout version this software writes and reads. Layout 1 has no `meta` row (it is
/// the layout of the first release, which wrote none).
pub const SCHEMA: u32 = 1;

/// File name of the store inside the state directory.
pub const FILE_NAME: &str = "state.redb";

/// How long acknowledged attempts are remembered (to ignore a late repeated offer).
const KEEP_ACKNOWLEDGED_SECS: i64 = 7 * 24 * 3600;

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
    /// The offer as the cloud sent it (JSON), opaque to the store.
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
    db: Database,
    path: PathBuf,
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
            newer: false,
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
        let found = store.write(|txn| {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema")?.map(|v| v.value().to_owned());
            if found.is_none() {
                meta.insert("schema", SCHEMA.to_string().as_str())?;
            }
            txn.open_table(IDENTITY)?;
            txn.open_table(ATTEMPTS)?;
            txn.open_table(OUTBOX)?;
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
        store.prune()?;
        Ok(store)
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

    /// The stored attempt `id`; a row that cannot be decoded is an error naming it.
    pub fn attempt(&self, id: &str) -> Result<Option<StoredAttempt>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(ATTEMPTS).map_err(|e| self.error(e))?;
        let value = table.get(id).map_err(|e| self.error(e))?;
        value
            .map(|v| decode_attempt(id, v.value()).map_err(|d| self.error(d)))
            .transpose()
    }

    /// Everything kept for a start: attempts, the outbox, and the rows that cannot be decoded.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
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

    /// The cloud acknowledged `id`: drop it from the outbox, remember it as acknowledged.
    pub fn acknowledge(&self, id: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(OUTBOX)?.remove(id)?;
            if let Some(mut attempt) = Self::get(txn, id)? {
                attempt.phase = Phase::Acknowledged;
                attempt.updated_at = now();
                Self::put(txn, id, &attempt)?;
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

    fn prune(&self) -> Result<(), StoreError> {
        let old: Vec<String> = self
            .load()?
            .attempts
            .into_iter()
            .filter(|(_, a)| {
                a.phase == Phase::Acknowledged && now() - a.updated_at > KEEP_ACKNOWLEDGED_SECS
            })
            .map(|(id, _)| id)
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
        assert_eq!(
            store.attempt("a").expect("get").map(|a| a.phase),
            Some(Phase::Acknowledged)
        );
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
}
