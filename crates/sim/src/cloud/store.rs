//! `encoder-sim cloud --state FILE`: the simulator's state in redb (an embedded ACID store,
//! the bridge's too: crates/bridge/src/store.rs), a row per object, so a change writes the
//! rows it changed and nothing else, in one transaction, fsynced before the answer leaves
//! (see `Shared::with` in the module above: the HTTP reply and the bridge's messages are sent
//! after the commit). A SIGKILL therefore loses nothing a client or a bridge was told.
//!
//! Tables:
//! - `meta`: `schema` → the version of this layout ([`SCHEMA`]); a file written by a newer
//!   version is refused, never misread;
//! - `systems`, `entrances`, `users`, `credentials`, `encoders`, `attempts`, `events`: row
//!   number → the object as JSON (the shape of [`super::model`]'s types). Row numbers grow
//!   with each new object of a kind, so a table read in key order is the creation order the
//!   lists answer in. Attempts and events past the retention window are deleted rows.
//!
//! A row that cannot be decoded is reported with its table and key ([`DamagedRow`]) and left
//! out; the rest loads. A file that is not a store at all, or a damaged one redb refuses, is
//! a clear error, never a panic.
//!
//! Earlier versions kept `--state` as one JSON document rewritten whole on every change. Such
//! a file is imported once, at start, rather than refused: it is a sandbox's history an
//! integrator built up (users, credentials, their issue counters, the cards they were written
//! to), the JSON is this crate's own `State` (so reading it costs nothing to keep), and the
//! import is safe to repeat: the new store is written beside the old file, the old file is
//! kept as `FILE.json-v0`, and the store takes the file's name by a rename only once it is
//! complete. A crash at any point leaves either the JSON file (imported again at the next
//! start) or the complete store.

// redb's own error type is large; boxing it inside this module buys nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::model::{Millis, State};
use super::rows::Rows;

const META: TableDefinition<'_, &str, &str> = TableDefinition::new("meta");
const SYSTEMS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("systems");
const ENTRANCES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("entrances");
const USERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("users");
const CREDENTIALS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("credentials");
const ENCODERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("encoders");
const ATTEMPTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("attempts");
const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");

/// The layout version this software writes and reads.
pub const SCHEMA: u32 = 1;

/// redb's page cache (its default is 1 GiB): rows are read once at start and written a few at
/// a time, so a small cache does; the kernel's page cache does the rest.
const CACHE_BYTES: usize = 4 << 20;

/// The first bytes of every redb file.
const REDB_MAGIC: &[u8] = b"redb";

/// A row that cannot be decoded: reported, never skipped in silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRow {
    /// The table.
    pub table: &'static str,
    /// The row's key.
    pub key: u64,
    /// Why it cannot be decoded.
    pub error: String,
}

impl std::fmt::Display for DamagedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "state row {}/{} cannot be decoded (left out): {}",
            self.table, self.key, self.error
        )
    }
}

/// What opening found besides the state.
#[derive(Debug, Default)]
pub struct Opened {
    /// Rows left out.
    pub damaged: Vec<DamagedRow>,
    /// Set when a JSON state file of an earlier version was imported: where it was kept.
    pub imported_from: Option<PathBuf>,
}

/// What one save wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Saved {
    /// Rows written (new or changed).
    pub written: usize,
    /// Rows deleted.
    pub deleted: usize,
}

/// The open store.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens the store at `path` (creating it, seeded at `now`, when there is no file; importing
    /// a JSON state file of an earlier version once) and loads the state.
    ///
    /// redb checks some of a file's structure with assertions (a file cut short panics inside
    /// it): such a panic is caught here and becomes the error it is, a damaged file.
    pub fn open(path: &Path, now: Millis) -> Result<(Self, State, Opened), String> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::open_unguarded(path, now)
        }));
        std::panic::set_hook(hook);
        outcome.unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!(
                "state file {} is damaged: it cannot be opened as the simulator's store ({why}) (fix: move it away to start afresh)",
                path.display()
            ))
        })
    }

    fn open_unguarded(path: &Path, now: Millis) -> Result<(Self, State, Opened), String> {
        let mut opened = Opened::default();
        if is_legacy_json(path)? {
            opened.imported_from = Some(import_json(path)?);
        }
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| {
                format!(
                    "state file {} cannot be opened as the simulator's store: {e} (fix: give another --state path, or move this file away to start afresh)",
                    path.display()
                )
            })?;
        let store = Self {
            db,
            path: path.to_owned(),
        };
        let found = store.write(|txn| {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema")?.map(|v| v.value().to_owned());
            if found.is_none() {
                meta.insert("schema", SCHEMA.to_string().as_str())?;
            }
            for table in TABLES {
                txn.open_table(table)?;
            }
            Ok(found)
        })?;
        let mut state = match found {
            None => {
                let mut seeded = State::seeded(now);
                store.save(&mut seeded)?;
                seeded
            }
            Some(found) if found.parse::<u32>().is_ok_and(|v| v <= SCHEMA) => {
                store.load(&mut opened.damaged)?
            }
            Some(found) => {
                return Err(store.error(format!(
                    "written by a newer encoder-sim (layout {found}; this version reads {SCHEMA}) (fix: run that version, or give another --state path)"
                )));
            }
        };
        state.reindex();
        Ok((store, state, opened))
    }

    fn error(&self, e: impl std::fmt::Display) -> String {
        format!("state file {}: {e}", self.path.display())
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, String> {
        write(&self.db, f).map_err(|e| self.error(e))
    }

    fn load(&self, damaged: &mut Vec<DamagedRow>) -> Result<State, String> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let mut state = State::default();
        (|| -> Result<(), redb::Error> {
            state.systems = read_rows(&txn, SYSTEMS, "systems", damaged)?;
            state.entrances = read_rows(&txn, ENTRANCES, "entrances", damaged)?;
            state.users = read_rows(&txn, USERS, "users", damaged)?;
            state.credentials = read_rows(&txn, CREDENTIALS, "credentials", damaged)?;
            state.encoders = read_rows(&txn, ENCODERS, "encoders", damaged)?;
            state.attempts = read_rows(&txn, ATTEMPTS, "attempts", damaged)?;
            state.events = read_rows(&txn, EVENTS, "events", damaged)?;
            Ok(())
        })()
        .map_err(|e| self.error(e))?;
        Ok(state)
    }

    /// Writes the rows of `state` changed since the last save (deleting those that are gone),
    /// in one transaction. On failure the changes stay noted and go with the next save.
    pub fn save(&self, state: &mut State) -> Result<Saved, String> {
        let mut tables = tables(state);
        let changes = tables.each_mut().map(|rows| rows.take_changed());
        if changes.iter().all(BTreeSet::is_empty) {
            return Ok(Saved::default());
        }
        let result = self.write(|txn| {
            let mut saved = Saved::default();
            for ((def, rows), keys) in TABLES.into_iter().zip(&tables).zip(&changes) {
                rows.put(txn, def, keys, &mut saved)?;
            }
            Ok(saved)
        });
        if result.is_err() {
            for (rows, keys) in tables.into_iter().zip(changes) {
                rows.restore_changed(keys);
            }
        }
        result
    }

    /// The size of the file in bytes.
    pub fn file_size(&self) -> u64 {
        fs::metadata(&self.path).map_or(0, |m| m.len())
    }
}

/// Runs `f` in one write transaction and commits it (durably: redb's default fsyncs).
fn write<T>(
    db: &Database,
    f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
) -> Result<T, redb::Error> {
    let txn = db.begin_write()?;
    let out = f(&txn)?;
    txn.commit()?;
    Ok(out)
}

/// Forgets the noted changes (a simulator without `--state`).
pub fn discard_changes(state: &mut State) {
    for rows in tables(state) {
        rows.take_changed();
    }
}

/// The tables holding the state's objects, in the order of [`tables`].
const TABLES: [TableDefinition<'static, u64, &'static [u8]>; 7] = [
    SYSTEMS,
    ENTRANCES,
    USERS,
    CREDENTIALS,
    ENCODERS,
    ATTEMPTS,
    EVENTS,
];

/// The state's objects, kind by kind, in the order of [`TABLES`].
fn tables(state: &mut State) -> [&mut dyn StoredRows; 7] {
    [
        &mut state.systems,
        &mut state.entrances,
        &mut state.users,
        &mut state.credentials,
        &mut state.encoders,
        &mut state.attempts,
        &mut state.events,
    ]
}

/// What a save does with one kind's [`Rows`], whatever the kind.
trait StoredRows {
    fn take_changed(&mut self) -> BTreeSet<u64>;
    fn restore_changed(&mut self, keys: BTreeSet<u64>);
    fn touch_all(&mut self);
    /// Writes the rows `keys` that still exist and deletes the others.
    fn put(
        &self,
        txn: &redb::WriteTransaction,
        def: TableDefinition<'_, u64, &[u8]>,
        keys: &BTreeSet<u64>,
        saved: &mut Saved,
    ) -> Result<(), redb::Error>;
}

impl<T: Serialize> StoredRows for Rows<T> {
    fn take_changed(&mut self) -> BTreeSet<u64> {
        Rows::take_changed(self)
    }

    fn restore_changed(&mut self, keys: BTreeSet<u64>) {
        Rows::restore_changed(self, keys);
    }

    fn touch_all(&mut self) {
        Rows::touch_all(self);
    }

    fn put(
        &self,
        txn: &redb::WriteTransaction,
        def: TableDefinition<'_, u64, &[u8]>,
        keys: &BTreeSet<u64>,
        saved: &mut Saved,
    ) -> Result<(), redb::Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut table = txn.open_table(def)?;
        for &key in keys {
            if let Some(item) = self.by_key(key) {
                let bytes = serde_json::to_vec(item).map_err(|e| {
                    redb::Error::from(redb::StorageError::Io(std::io::Error::other(e)))
                })?;
                table.insert(key, bytes.as_slice())?;
                saved.written += 1;
            } else if table.remove(key)?.is_some() {
                saved.deleted += 1;
            }
        }
        Ok(())
    }
}

/// Every row of table `def` (called `name`) in key order; those that do not decode go to
/// `damaged`.
fn read_rows<T: DeserializeOwned>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<'_, u64, &[u8]>,
    name: &'static str,
    damaged: &mut Vec<DamagedRow>,
) -> Result<Rows<T>, redb::Error> {
    let table = txn.open_table(def)?;
    let mut rows = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        match serde_json::from_slice(value.value()) {
            Ok(item) => rows.push((key.value(), item)),
            Err(e) => damaged.push(DamagedRow {
                table: name,
                key: key.value(),
                error: e.to_string(),
            }),
        }
    }
    Ok(Rows::loaded(rows))
}

/// Whether `path` holds a JSON state file of an earlier version (a file that starts with
/// `{`); `false` when there is no file or it is anything else (redb then judges it).
fn is_legacy_json(path: &Path) -> Result<bool, String> {
    let mut head = [0u8; 64];
    let read = match fs::File::open(path) {
        Ok(mut file) => file
            .read(&mut head)
            .map_err(|e| format!("reading state file {}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("reading state file {}: {e}", path.display())),
    };
    let head = head.get(..read).unwrap_or_default();
    if head.starts_with(REDB_MAGIC) {
        return Ok(false);
    }
    Ok(head
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{'))
}

/// The path of `path` with `suffix` appended to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Imports the JSON state file at `path` into a store that replaces it; returns where the
/// JSON file was kept. See the module's comment for why, and why a crash anywhere is safe.
fn import_json(path: &Path) -> Result<PathBuf, String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        format!(
            "state file {} (JSON, from an earlier encoder-sim): {what}: {e}",
            path.display()
        )
    };
    let bytes = fs::read(path).map_err(|e| fail("reading it", &e))?;
    let mut state: State = serde_json::from_slice(&bytes).map_err(|e| {
        fail(
            "it is not a valid state, so it cannot be imported (fix: repair it, or move it away to start afresh)",
            &e,
        )
    })?;
    let partial = beside(path, ".import");
    let kept = beside(path, ".json-v0");
    // A leftover of an import that crashed: started again from the JSON file.
    match fs::remove_file(&partial) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail("removing an unfinished import", &e)),
    }
    {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&partial)
            .map_err(|e| fail("creating the new store", &e))?;
        write(&db, |txn| {
            txn.open_table(META)?
                .insert("schema", SCHEMA.to_string().as_str())?;
            Ok(())
        })
        .map_err(|e| fail("writing the new store", &e))?;
        let store = Store {
            db,
            path: partial.clone(),
        };
        for rows in tables(&mut state) {
            rows.touch_all();
        }
        store.save(&mut state)?;
    }
    fs::copy(path, &kept).map_err(|e| fail("keeping a copy", &e))?;
    fs::rename(&partial, path).map_err(|e| fail("putting the new store in its place", &e))?;
    Ok(kept)
}

#[cfg(test)]
mod tests;
