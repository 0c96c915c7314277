//! [`SqliteStore`]: the [`LocalStore`] in one SQLite file.

use std::{
    fs::{OpenOptions, TryLockError},
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use doran_protocol::{BlobHash, ChunkId, DocId, Seq};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use self::rows::{blob_columns, blob_record, collect, fixed, outbox_columns, outbox_entry};
use super::{
    BlobOwner, BlobRecord, BlobState, CachedView, Committed, LocalStore, LogPos, OutboxEntry,
    Result, Step, StoreError, StoredDoc, ViewRow, WriterLock, check_i64, check_local,
    check_view_row, check_view_rows, now_ms,
};

mod records;
mod rows;

/// How long [`LocalStore::writer_lock`] waits for another process's turn before it
/// goes on without the lock.
const WRITER_LOCK_WAIT: Duration = Duration::from_secs(5);

/// The device's schema: numbered migrations, append only — never edit a released one.
const SCHEMA: doran_sqlite::Schema = doran_sqlite::Schema {
    name: "local store",
    migrations: &[
        include_str!("migrations/001_init.sql"),
        include_str!("migrations/002_view_cache.sql"),
        include_str!("migrations/003_device_records.sql"),
        include_str!("migrations/004_blob_keys.sql"),
    ],
};

/// A [`LocalStore`] in one SQLite file (WAL mode), the store a device really uses.
///
/// One connection behind a mutex: calls are serialised, each is one transaction.
/// Opening applies the pending schema migrations and refuses a database written by a
/// newer version of the app ([`StoreError::NewerSchema`]).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// `<file>.writer`, locked by [`LocalStore::writer_lock`] (`None` in memory).
    writer_lock: Option<PathBuf>,
    /// How long [`LocalStore::writer_lock`] waits ([`WRITER_LOCK_WAIT`]).
    writer_wait: Duration,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the file at `path`; the parent
    /// directory must exist. SQLite also keeps `-wal` and `-shm` files next to it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        tracing::debug!(path = %path.display(), "opening local store");
        let mut lock = path.as_os_str().to_owned();
        lock.push(".writer");
        Self::init(doran_sqlite::open(path, &SCHEMA)?, Some(lock.into()))
    }

    /// A store in a private in-memory database, lost on drop.
    pub fn open_in_memory() -> Result<Self> {
        Self::init(doran_sqlite::open_in_memory(&SCHEMA)?, None)
    }

    /// The same store, waiting at most `wait` for the writer lock.
    #[cfg(test)]
    pub(crate) fn with_writer_wait(mut self, wait: Duration) -> Self {
        self.writer_wait = wait;
        self
    }

    /// The schema version this build writes (`PRAGMA user_version`).
    pub fn schema_version() -> i64 {
        SCHEMA.version()
    }

    /// Runs SQLite's `integrity_check` and `foreign_key_check` over the whole file
    /// (slow on a large database: for start-up after a crash or for tests).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] with SQLite's findings when a check fails.
    pub fn check_integrity(&self) -> Result<()> {
        Ok(doran_sqlite::check_integrity(&*self.lock()?)?)
    }

    fn init(conn: Connection, writer_lock: Option<PathBuf>) -> Result<Self> {
        let store = Self {
            conn: Mutex::new(conn),
            writer_lock,
            writer_wait: WRITER_LOCK_WAIT,
        };
        store.write(|tx| records::import_legacy_meta(tx, now_ms()))?;
        Ok(store)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Runs `f` in a write transaction (taking the write lock up front, so it cannot
    /// fail half-way on a lock upgrade). Rolled back if `f` fails.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` in a read transaction, so it sees one consistent state.
    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

impl SqliteStore {
    /// Chunks received from the relay; `guard` is the log end the writer's open
    /// document reflects (`None`: no writer to keep in step, the rows follow the cache
    /// alone).
    fn receive(
        &self,
        doc: DocId,
        chunks: &[&[u8]],
        new_cursor: Option<Seq>,
        view: Option<&[ViewRow]>,
        guard: Option<Option<LogPos>>,
    ) -> Result<(usize, Step)> {
        if chunks.iter().any(|c| c.is_empty()) {
            return Err(StoreError::Empty("chunk"));
        }
        let new_cursor = new_cursor.map(|c| check_i64("cursor", c)).transpose()?;
        check_view_rows(view)?;
        let nothing = chunks.is_empty() && new_cursor.is_none();
        if nothing && guard.is_none() {
            return Ok((0, Step::InStep(self.log_end(doc)?.unwrap_or(LogPos::START))));
        }
        self.write(|tx| {
            let in_step = in_step(tx, doc, guard)?;
            if nothing {
                return Ok((0, step(tx, doc, in_step)?));
            }
            let was_valid = in_step && view.is_some() && view_is_valid(tx, doc)?;
            ensure_doc(tx, doc)?;
            let mut appended = 0;
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO changes (doc_id, chunk_id, bytes) VALUES (?1, ?2, ?3)",
            )?;
            for chunk in chunks {
                let id = ChunkId::of(chunk);
                appended += insert.execute((
                    doc.as_bytes().as_slice(),
                    id.as_bytes().as_slice(),
                    *chunk,
                ))?;
            }
            if let Some(cursor) = new_cursor {
                tx.prepare_cached("UPDATE docs SET cursor = max(cursor, ?2) WHERE doc_id = ?1")?
                    .execute((doc.as_bytes().as_slice(), cursor))?;
            }
            if appended > 0 {
                advance_view(tx, doc, was_valid, view)?;
            }
            Ok((appended, step(tx, doc, in_step)?))
        })
    }
}

/// Appends a local edit and queues it in the outbox (the chunk already waiting there:
/// its entry); returns the entry and the log end after it.
fn append_local(
    tx: &Transaction<'_>,
    doc: DocId,
    chunk: &[u8],
    view: Option<&[ViewRow]>,
    created_at_ms: i64,
) -> Result<(OutboxEntry, LogPos)> {
    let id = ChunkId::of(chunk);
    let existing = tx
        .prepare_cached(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox WHERE doc_id = ?1 AND chunk_id = ?2"
        ))?
        .query([doc.as_bytes().as_slice(), id.as_bytes().as_slice()])?
        .next()?
        .map(outbox_entry)
        .transpose()?;
    if let Some(entry) = existing {
        return Ok((entry, LogPos::new(log_end(tx, doc)?.0)));
    }
    let was_valid = view.is_some() && view_is_valid(tx, doc)?;
    ensure_doc(tx, doc)?;
    let appended = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO changes (doc_id, chunk_id, bytes) VALUES (?1, ?2, ?3)",
        )?
        .execute((doc.as_bytes().as_slice(), id.as_bytes().as_slice(), chunk))?;
    if appended > 0 {
        advance_view(tx, doc, was_valid, view)?;
    }
    tx.prepare_cached(
        "INSERT INTO outbox (doc_id, chunk_id, bytes, created_at_ms)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute((
        doc.as_bytes().as_slice(),
        id.as_bytes().as_slice(),
        chunk,
        created_at_ms,
    ))?;
    let rowid = u64::try_from(tx.last_insert_rowid())
        .map_err(|_| StoreError::Corrupt("negative outbox id".into()))?;
    let entry = OutboxEntry {
        id: rowid,
        doc,
        chunk: id,
        bytes: chunk.to_vec(),
        created_at_ms,
    };
    Ok((entry, LogPos::new(log_end(tx, doc)?.0)))
}

/// The log end of `doc` as [`LocalStore::log_end`] reports it (`None`: unknown).
fn known_log_end(tx: &Transaction<'_>, doc: DocId) -> Result<Option<LogPos>> {
    let known = tx
        .prepare_cached("SELECT 1 FROM docs WHERE doc_id = ?1")?
        .query_row([doc.as_bytes().as_slice()], |_| Ok(()))
        .optional()?;
    match known {
        Some(()) => Ok(Some(LogPos::new(log_end(tx, doc)?.0))),
        None => Ok(None),
    }
}

/// Whether the log of `doc` still ends where the writer's document does (`guard`;
/// no guard: always).
fn in_step(tx: &Transaction<'_>, doc: DocId, guard: Option<Option<LogPos>>) -> Result<bool> {
    match guard {
        None => Ok(true),
        Some(at) => Ok(known_log_end(tx, doc)? == at),
    }
}

/// What a write tells its writer: the log end now, if the writer was in step.
fn step(tx: &Transaction<'_>, doc: DocId, in_step: bool) -> Result<Step> {
    Ok(if in_step {
        Step::InStep(LogPos::new(log_end(tx, doc)?.0))
    } else {
        Step::Behind
    })
}

fn ensure_doc(tx: &Transaction<'_>, doc: DocId) -> Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO docs (doc_id) VALUES (?1)")?
        .execute([doc.as_bytes().as_slice()])?;
    Ok(())
}

/// The document's log end and the position its snapshot covers (0, 0 when unknown).
fn log_end(tx: &Transaction<'_>, doc: DocId) -> Result<(u64, u64)> {
    let (last_row, through): (Option<i64>, Option<i64>) = tx
        .prepare_cached(
            "SELECT (SELECT max(pos) FROM changes WHERE doc_id = ?1),
                    (SELECT through FROM snapshots WHERE doc_id = ?1)",
        )?
        .query_row([doc.as_bytes().as_slice()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let to_u64 = |v: Option<i64>, what: &str| {
        u64::try_from(v.unwrap_or(0)).map_err(|_| StoreError::Corrupt(format!("negative {what}")))
    };
    let through = to_u64(through, "snapshot position")?;
    let last_row = to_u64(last_row, "change position")?;
    Ok((last_row.max(through), through))
}

/// The log position the view cache of `doc` reflects, if it has a cache.
fn view_through(tx: &Transaction<'_>, doc: DocId) -> Result<Option<u64>> {
    tx.prepare_cached("SELECT through FROM view_state WHERE doc_id = ?1")?
        .query_row([doc.as_bytes().as_slice()], |row| row.get::<_, i64>(0))
        .optional()?
        .map(|through| {
            u64::try_from(through)
                .map_err(|_| StoreError::Corrupt("negative view cache position".into()))
        })
        .transpose()
}

/// Whether the view cache of `doc` reflects exactly the current log.
fn view_is_valid(tx: &Transaction<'_>, doc: DocId) -> Result<bool> {
    let Some(through) = view_through(tx, doc)? else {
        return Ok(false);
    };
    let (end, _) = log_end(tx, doc)?;
    Ok(through == end)
}

/// After an append: applies `rows` and moves the cache to the new log end if it was
/// valid before the append (`was_valid`); otherwise leaves it behind.
fn advance_view(
    tx: &Transaction<'_>,
    doc: DocId,
    was_valid: bool,
    rows: Option<&[ViewRow]>,
) -> Result<()> {
    let (true, Some(rows)) = (was_valid, rows) else {
        return Ok(());
    };
    let key = doc.as_bytes().as_slice();
    let mut upsert = tx.prepare_cached(
        "INSERT INTO view_rows (doc_id, key, bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT (doc_id, key) DO UPDATE SET bytes = excluded.bytes",
    )?;
    let mut delete = tx.prepare_cached("DELETE FROM view_rows WHERE doc_id = ?1 AND key = ?2")?;
    for row in rows {
        match &row.bytes {
            Some(bytes) => upsert.execute((key, &row.key, bytes))?,
            None => delete.execute((key, &row.key))?,
        };
    }
    let (end, _) = log_end(tx, doc)?;
    tx.prepare_cached("UPDATE view_state SET through = ?2 WHERE doc_id = ?1")?
        .execute((key, check_i64("log position", end)?))?;
    Ok(())
}

fn limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn blob_not_found(hash: BlobHash) -> StoreError {
    StoreError::NotFound {
        kind: "blob",
        key: hash.to_hex(),
    }
}

impl LocalStore for SqliteStore {
    fn documents(&self) -> Result<Vec<DocId>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT doc_id FROM docs ORDER BY doc_id")?;
            collect(stmt.query([])?, |row| Ok(DocId(fixed(row, 0, "doc id")?)))
        })
    }

    fn load(&self, doc: DocId) -> Result<Option<StoredDoc>> {
        let key = doc.as_bytes().as_slice();
        self.read(|tx| {
            let cursor = tx
                .prepare_cached("SELECT cursor FROM docs WHERE doc_id = ?1")?
                .query_row([key], |row| row.get::<_, i64>(0))
                .optional()?;
            let Some(cursor) = cursor else {
                return Ok(None);
            };
            let cursor =
                u64::try_from(cursor).map_err(|_| StoreError::Corrupt("negative cursor".into()))?;
            let snapshot: Option<Vec<u8>> = tx
                .prepare_cached("SELECT bytes FROM snapshots WHERE doc_id = ?1")?
                .query_row([key], |row| row.get(0))
                .optional()?;
            let mut stmt =
                tx.prepare_cached("SELECT bytes FROM changes WHERE doc_id = ?1 ORDER BY pos")?;
            let changes = collect(stmt.query([key])?, |row| Ok(row.get(0)?))?;
            let (end, _) = log_end(tx, doc)?;
            Ok(Some(StoredDoc {
                snapshot,
                changes,
                cursor,
                log_end: LogPos::new(end),
            }))
        })
    }

    fn log_end(&self, doc: DocId) -> Result<Option<LogPos>> {
        self.read(|tx| known_log_end(tx, doc))
    }

    fn writer_lock(&self) -> Result<WriterLock> {
        let Some(path) = &self.writer_lock else {
            return Ok(WriterLock::none());
        };
        // A file opened for each lock: two stores of one process on the same file
        // exclude each other too (a lock belongs to its open file).
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        // Polled with a deadline rather than waited for: a process stopped while it
        // holds the lock (a suspended app, `doran watch` under Ctrl-Z) must not stop
        // this one's edits for ever. Past the deadline the write goes on without it;
        // the guard of `commit_local_in_step` keeps it correct, only not first in line.
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(WriterLock::file(file)),
                Err(TryLockError::WouldBlock) if started.elapsed() < self.writer_wait => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    tracing::warn!(
                        path = %path.display(),
                        wait = ?self.writer_wait,
                        "another process has held the store's writer lock too long; writing without it"
                    );
                    return Ok(WriterLock::none());
                }
                Err(TryLockError::Error(e)) => return Err(StoreError::Backend(Box::new(e))),
            }
        }
    }

    fn cursor(&self, doc: DocId) -> Result<Seq> {
        self.read(|tx| {
            let cursor = tx
                .prepare_cached("SELECT cursor FROM docs WHERE doc_id = ?1")?
                .query_row([doc.as_bytes().as_slice()], |row| row.get::<_, i64>(0))
                .optional()?
                .unwrap_or(0);
            u64::try_from(cursor).map_err(|_| StoreError::Corrupt("negative cursor".into()))
        })
    }

    fn reset_cursor(&self, doc: DocId) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("UPDATE docs SET cursor = 0, snapshot_covers = 0 WHERE doc_id = ?1")?
                .execute([doc.as_bytes().as_slice()])?;
            Ok(())
        })
    }

    fn commit_local_with_view(
        &self,
        doc: DocId,
        chunk: &[u8],
        view: Option<&[ViewRow]>,
    ) -> Result<OutboxEntry> {
        check_local(chunk, view)?;
        let created_at_ms = now_ms();
        let (entry, _) = self.write(|tx| append_local(tx, doc, chunk, view, created_at_ms))?;
        Ok(entry)
    }

    fn commit_local_in_step(
        &self,
        doc: DocId,
        chunk: &[u8],
        view: Option<&[ViewRow]>,
        at: Option<LogPos>,
    ) -> Result<Committed> {
        check_local(chunk, view)?;
        let created_at_ms = now_ms();
        self.write(|tx| {
            if known_log_end(tx, doc)? != at {
                return Ok(Committed::Behind);
            }
            let (entry, end) = append_local(tx, doc, chunk, view, created_at_ms)?;
            Ok(Committed::InStep { entry, end })
        })
    }

    fn apply_remote_with_view(
        &self,
        doc: DocId,
        chunks: &[&[u8]],
        new_cursor: Option<Seq>,
        view: Option<&[ViewRow]>,
    ) -> Result<usize> {
        Ok(self.receive(doc, chunks, new_cursor, view, None)?.0)
    }

    fn apply_remote_in_step(
        &self,
        doc: DocId,
        chunks: &[&[u8]],
        new_cursor: Option<Seq>,
        view: Option<&[ViewRow]>,
        at: Option<LogPos>,
    ) -> Result<(usize, Step)> {
        self.receive(doc, chunks, new_cursor, view, Some(at))
    }

    fn compact(&self, doc: DocId, snapshot: &[u8], through: LogPos) -> Result<bool> {
        if snapshot.is_empty() {
            return Err(StoreError::Empty("snapshot"));
        }
        let position = check_i64("log position", through.get())?;
        self.write(|tx| {
            let (end, compacted) = log_end(tx, doc)?;
            if through.get() > end {
                return Err(StoreError::PastLogEnd {
                    through,
                    log_end: LogPos::new(end),
                });
            }
            if through.get() < compacted {
                return Ok(false);
            }
            let key = doc.as_bytes().as_slice();
            ensure_doc(tx, doc)?;
            tx.prepare_cached(
                "INSERT INTO snapshots (doc_id, through, bytes) VALUES (?1, ?2, ?3)
                 ON CONFLICT (doc_id) DO UPDATE SET through = excluded.through,
                                                    bytes = excluded.bytes",
            )?
            .execute((key, position, snapshot))?;
            tx.prepare_cached("DELETE FROM changes WHERE doc_id = ?1 AND pos <= ?2")?
                .execute((key, position))?;
            Ok(true)
        })
    }

    fn tail_len(&self, doc: DocId) -> Result<u64> {
        self.read(|tx| {
            let rows: i64 = tx
                .prepare_cached("SELECT count(*) FROM changes WHERE doc_id = ?1")?
                .query_row([doc.as_bytes().as_slice()], |row| row.get(0))?;
            u64::try_from(rows).map_err(|_| StoreError::Corrupt("negative row count".into()))
        })
    }

    fn load_view(&self, doc: DocId) -> Result<Option<CachedView>> {
        let key = doc.as_bytes().as_slice();
        self.read(|tx| {
            let Some(through) = view_through(tx, doc)? else {
                return Ok(None);
            };
            let (end, _) = log_end(tx, doc)?;
            if through != end {
                return Ok(None);
            }
            let version: i64 = tx
                .prepare_cached("SELECT version FROM view_state WHERE doc_id = ?1")?
                .query_row([key], |row| row.get(0))?;
            let version = u32::try_from(version).map_err(|_| {
                StoreError::Corrupt(format!("view cache version {version} out of range"))
            })?;
            let mut stmt = tx.prepare_cached(
                "SELECT key, bytes FROM view_rows WHERE doc_id = ?1 ORDER BY key",
            )?;
            let rows = collect(stmt.query([key])?, |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(Some(CachedView {
                version,
                through: LogPos::new(through),
                rows,
            }))
        })
    }

    fn replace_view(
        &self,
        doc: DocId,
        version: u32,
        through: LogPos,
        rows: &[(String, Vec<u8>)],
    ) -> Result<bool> {
        for (key, bytes) in rows {
            check_view_row(key, Some(bytes))?;
        }
        let position = check_i64("log position", through.get())?;
        let key = doc.as_bytes().as_slice();
        self.write(|tx| {
            let known = tx
                .prepare_cached("SELECT 1 FROM docs WHERE doc_id = ?1")?
                .query_row([key], |_| Ok(()))
                .optional()?;
            if known.is_none() {
                return Err(StoreError::NotFound {
                    kind: "document",
                    key: doc.to_hex(),
                });
            }
            let (end, _) = log_end(tx, doc)?;
            if through.get() > end {
                return Err(StoreError::PastLogEnd {
                    through,
                    log_end: LogPos::new(end),
                });
            }
            if through.get() < end {
                return Ok(false);
            }
            tx.prepare_cached("DELETE FROM view_rows WHERE doc_id = ?1")?
                .execute([key])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO view_rows (doc_id, key, bytes) VALUES (?1, ?2, ?3)
                 ON CONFLICT (doc_id, key) DO UPDATE SET bytes = excluded.bytes",
            )?;
            for (row_key, bytes) in rows {
                insert.execute((key, row_key, bytes))?;
            }
            tx.prepare_cached(
                "INSERT INTO view_state (doc_id, version, through) VALUES (?1, ?2, ?3)
                 ON CONFLICT (doc_id) DO UPDATE SET version = excluded.version,
                                                    through = excluded.through",
            )?
            .execute((key, version, position))?;
            Ok(true)
        })
    }

    fn drop_view(&self, doc: DocId) -> Result<()> {
        let key = doc.as_bytes().as_slice();
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM view_rows WHERE doc_id = ?1")?
                .execute([key])?;
            tx.prepare_cached("DELETE FROM view_state WHERE doc_id = ?1")?
                .execute([key])?;
            Ok(())
        })
    }

    fn outbox_after(&self, after: Option<u64>, max: usize) -> Result<Vec<OutboxEntry>> {
        // Ids are SQLite rowids (never negative); one above i64::MAX has nothing after it.
        let after = match after.map(i64::try_from) {
            None => -1,
            Some(Ok(id)) => id,
            Some(Err(_)) => return Ok(Vec::new()),
        };
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                "SELECT ",
                outbox_columns!(),
                " FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            collect(stmt.query([after, limit(max)])?, outbox_entry)
        })
    }

    fn outbox_acked(&self, id: u64) -> Result<bool> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(false); // no such id can exist
        };
        self.write(|tx| {
            let removed = tx
                .prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute([id])?;
            Ok(removed > 0)
        })
    }

    fn outbox_acked_chunk(&self, doc: DocId, chunk: ChunkId) -> Result<bool> {
        self.write(|tx| {
            let removed = tx
                .prepare_cached("DELETE FROM outbox WHERE doc_id = ?1 AND chunk_id = ?2")?
                .execute([doc.as_bytes().as_slice(), chunk.as_bytes().as_slice()])?;
            Ok(removed > 0)
        })
    }

    fn pending_count(&self) -> Result<u64> {
        self.read(|tx| {
            let count: i64 = tx
                .prepare_cached("SELECT count(*) FROM outbox")?
                .query_row([], |row| row.get(0))?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
    }

    fn put_blob(&self, record: &BlobRecord) -> Result<()> {
        if record.state == BlobState::PendingUpload && !record.cached {
            return Err(StoreError::PendingNotCached(record.hash));
        }
        let size = check_i64("blob size", record.size)?;
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO blobs
                     (hash, size, mime, state, cached, last_used_ms, owner, seal_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (hash) DO UPDATE SET
                     size = excluded.size, mime = excluded.mime, state = excluded.state,
                     cached = excluded.cached, last_used_ms = excluded.last_used_ms,
                     owner = excluded.owner, seal_key = excluded.seal_key",
            )?
            .execute((
                record.hash.as_bytes().as_slice(),
                size,
                &record.mime,
                record.state.as_str(),
                record.cached,
                record.last_used_ms,
                record.owner.map(BlobOwner::to_text),
                record.key.as_ref().map(|k| k.as_bytes().as_slice()),
            ))?;
            Ok(())
        })
    }

    fn blob(&self, hash: BlobHash) -> Result<Option<BlobRecord>> {
        self.read(|tx| {
            tx.prepare_cached(concat!(
                "SELECT ",
                blob_columns!(),
                " FROM blobs WHERE hash = ?1"
            ))?
            .query([hash.as_bytes().as_slice()])?
            .next()?
            .map(blob_record)
            .transpose()
        })
    }

    fn pending_uploads(&self) -> Result<Vec<BlobRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                "SELECT ",
                blob_columns!(),
                " FROM blobs WHERE state = 'pending_upload' ORDER BY rowid"
            ))?;
            collect(stmt.query([])?, blob_record)
        })
    }

    fn set_blob_state(&self, hash: BlobHash, state: BlobState) -> Result<()> {
        self.write(|tx| {
            let cached: Option<bool> = tx
                .prepare_cached("SELECT cached FROM blobs WHERE hash = ?1")?
                .query_row([hash.as_bytes().as_slice()], |row| row.get(0))
                .optional()?;
            match cached {
                None => return Err(blob_not_found(hash)),
                Some(false) if state == BlobState::PendingUpload => {
                    return Err(StoreError::PendingNotCached(hash));
                }
                Some(_) => {}
            }
            tx.prepare_cached("UPDATE blobs SET state = ?2 WHERE hash = ?1")?
                .execute((hash.as_bytes().as_slice(), state.as_str()))?;
            Ok(())
        })
    }

    fn set_cached(&self, hash: BlobHash, cached: bool) -> Result<()> {
        self.write(|tx| {
            let state: Option<String> = tx
                .prepare_cached("SELECT state FROM blobs WHERE hash = ?1")?
                .query_row([hash.as_bytes().as_slice()], |row| row.get(0))
                .optional()?;
            match state {
                None => return Err(blob_not_found(hash)),
                Some(s) if !cached && s == BlobState::PendingUpload.as_str() => {
                    return Err(StoreError::PendingNotCached(hash));
                }
                Some(_) => {}
            }
            tx.prepare_cached("UPDATE blobs SET cached = ?2 WHERE hash = ?1")?
                .execute((hash.as_bytes().as_slice(), cached))?;
            Ok(())
        })
    }

    fn touch_blob(&self, hash: BlobHash, now_ms: i64) -> Result<()> {
        self.write(|tx| {
            let updated = tx
                .prepare_cached("UPDATE blobs SET last_used_ms = ?2 WHERE hash = ?1")?
                .execute((hash.as_bytes().as_slice(), now_ms))?;
            if updated == 0 {
                return Err(blob_not_found(hash));
            }
            Ok(())
        })
    }

    fn cached_bytes(&self) -> Result<u64> {
        self.read(|tx| {
            let total: i64 = tx
                .prepare_cached("SELECT coalesce(sum(size), 0) FROM blobs WHERE cached = 1")?
                .query_row([], |row| row.get(0))?;
            u64::try_from(total).map_err(|_| StoreError::Corrupt("negative blob sizes".into()))
        })
    }

    fn eviction_candidates(&self, max: usize) -> Result<Vec<BlobRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                "SELECT ",
                blob_columns!(),
                " FROM blobs
                 WHERE cached = 1 AND state <> 'pending_upload'
                 ORDER BY last_used_ms, hash LIMIT ?1"
            ))?;
            collect(stmt.query([limit(max)])?, blob_record)
        })
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([key], |row| row.get(0))
                .optional()?)
        })
    }

    fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute((key, value))?;
            Ok(())
        })
    }

    fn delete_meta(&self, key: &str) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM meta WHERE key = ?1")?
                .execute([key])?;
            Ok(())
        })
    }

    fn set_meta_if(
        &self,
        guard: &str,
        expected: Option<&[u8]>,
        values: &[(&str, &[u8])],
    ) -> Result<bool> {
        // An immediate transaction holds the database's write lock from the read on,
        // so another process cannot save between the comparison and the writes.
        self.write(|tx| {
            let current: Option<Vec<u8>> = tx
                .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([guard], |row| row.get(0))
                .optional()?;
            if current.as_deref() != expected {
                return Ok(false);
            }
            let mut put = tx.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?;
            for (key, value) in values {
                put.execute((key, value))?;
            }
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests;
