//! [`SqliteStore`]: the relay's accounts and document logs in one SQLite file.

use std::{
    path::Path,
    sync::{
        Mutex, MutexGuard, TryLockError,
        atomic::{AtomicUsize, Ordering},
    },
};

use rusqlite::{Connection, config::DbConfig};

use self::{
    checkpoints::{Checkpointer, Limits},
    read_cache::ReadCache,
};
use super::{StoreError, StoreResult};

mod accounts;
mod checkpoints;
mod logs;
mod read_cache;
mod records;
mod rows;

/// The relay's schema: numbered migrations, append only — never edit a released one.
const SCHEMA: doran_sqlite::Schema = doran_sqlite::Schema {
    name: "relay store",
    migrations: &[
        include_str!("migrations/001_init.sql"),
        include_str!("migrations/002_user_blob_grants.sql"),
        include_str!("migrations/003_quotas_and_snapshot_refs.sql"),
        include_str!("migrations/004_link_requests.sql"),
        include_str!("migrations/005_pending_snapshots.sql"),
        include_str!("migrations/006_purge_indexes.sql"),
        include_str!("migrations/007_chunk_authors.sql"),
        include_str!("migrations/008_device_certs.sql"),
        include_str!("migrations/009_key_packages.sql"),
        include_str!("migrations/010_sealed_logs.sql"),
        include_str!("migrations/011_forget_titles_and_names.sql"),
        include_str!("migrations/012_volumes.sql"),
        include_str!("migrations/013_sealed_family_logs.sql"),
    ],
};

/// Read-only connections next to the writer (a file database only).
const READERS: usize = 4;

/// The relay's [`AccountStore`](super::AccountStore) and
/// [`LogStore`](super::LogStore) in one SQLite file (WAL mode), the relay's default
/// storage.
///
/// One writing connection behind a mutex: writes are serialised, each is one
/// transaction and one fsynced commit (a group of appends shares one, see
/// `LogStore::append_batch`). Reads of a file database go to a few read-only
/// connections instead, so in WAL mode they neither wait for a write's fsync nor hold
/// it up; each read is one transaction and sees every write committed before it
/// began. A thread of its own copies the WAL back into the database file, so the
/// writer's commits do not wait for that (`checkpoints`). Opening applies the pending
/// schema migrations and refuses a database written by a newer relay
/// ([`StoreError::NewerSchema`]).
///
/// One `Arc<SqliteStore>` gives both trait objects:
///
/// ```no_run
/// # use std::sync::Arc;
/// # use doran_server::store::{AccountStore, LogStore, SqliteStore};
/// let store = Arc::new(SqliteStore::open("data/relay.sqlite")?);
/// let accounts: Arc<dyn AccountStore> = store.clone();
/// let logs: Arc<dyn LogStore> = store;
/// # Ok::<(), doran_server::store::StoreError>(())
/// ```
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Empty for an in-memory database (reads use the writer).
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// WAL checkpoints off the writer's commits (a file database only).
    checkpointer: Option<Checkpointer>,
    /// The answers of the most frequent account reads, while nothing was written.
    cache: ReadCache,
}

impl SqliteStore {
    /// The conventional name of the database file in the relay's data directory.
    pub const FILE_NAME: &'static str = "relay.sqlite";

    /// Opens (creating if needed) the store in the file at `path`; the parent
    /// directory must exist. SQLite also keeps `-wal` and `-shm` files next to it.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with(path.as_ref(), Limits::RELAY)
    }

    fn open_with(path: &Path, checkpoints: Limits) -> StoreResult<Self> {
        tracing::debug!(path = %path.display(), "opening relay store");
        let mut store = Self::init(doran_sqlite::open(path, &SCHEMA)?)?;
        store.empty_wal()?;
        let checkpointer = Checkpointer::start(path, &mut *store.lock()?, checkpoints)?;
        store.checkpointer = Some(checkpointer);
        // Opened after the migrations, so they see the current schema.
        for _ in 0..READERS {
            let reader = doran_sqlite::open_reader(path)?;
            tune(&reader)?;
            store.readers.push(Mutex::new(reader));
        }
        Ok(store)
    }

    /// A store in a private in-memory database, lost on drop.
    pub fn open_in_memory() -> StoreResult<Self> {
        Self::init(doran_sqlite::open_in_memory(&SCHEMA)?)
    }

    /// The schema version this build writes (`PRAGMA user_version`).
    pub fn schema_version() -> i64 {
        SCHEMA.version()
    }

    /// Runs SQLite's `integrity_check` and `foreign_key_check` over the whole file
    /// (slow on a large database: for start-up after a crash, or tests).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] with SQLite's findings when a check fails.
    pub fn check_integrity(&self) -> StoreResult<()> {
        Ok(doran_sqlite::check_integrity(&*self.lock()?)?)
    }

    fn init(conn: Connection) -> StoreResult<Self> {
        tune(&conn)?;
        // Deleted rows are overwritten with zeros, not left in free pages: the clear
        // history of a family its host sealed, once a sealed snapshot replaces it,
        // must not stay readable in the file (see `LogStore::confirm_snapshot`).
        // Deletes are rare here (compaction, expiry); appends pay nothing for it.
        conn.pragma_update(None, "secure_delete", true)?;
        Ok(Self {
            conn: Mutex::new(conn),
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            checkpointer: None,
            cache: ReadCache::default(),
        })
    }

    /// Copies the WAL into the database file and empties it. A migration may have
    /// dropped what must not stay readable (version 11 zeroes every family title and
    /// 호칭): its zeroed pages are in the WAL, and the file keeps the pages as they
    /// were until they are copied over it (the WAL may hold older frames too, after a
    /// crash). At open, with no reader yet, this always can be done.
    fn empty_wal(&self) -> StoreResult<()> {
        let busy: i64 = self
            .lock()?
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        if busy != 0 {
            // Another process holds the file (a backup reading it): its frames go as
            // the WAL wraps instead.
            tracing::warn!("the WAL could not be emptied at open");
        }
        Ok(())
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Runs `f` in a write transaction (taking the write lock up front, so it cannot
    /// fail half-way on a lock upgrade). Rolled back if `f` fails. The answers kept
    /// in memory are stale once it ended (`read_cache`).
    fn write<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let out = self.write_logs(f);
        self.cache.written();
        out
    }

    /// [`write`](Self::write) for a transaction that writes only `logs` and `chunks`
    /// (a group of appends), which no answer kept in memory reads: they stay good.
    fn write_logs<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = self.lock()?;
        in_transaction(&conn, "BEGIN IMMEDIATE", f)
    }

    /// A read connection: the first free reader if there is one, else the next one in
    /// turn (waiting for it), else the writer (in-memory database).
    ///
    /// The first free, not the next in turn: SQLite empties a connection's page cache
    /// when it begins reading after a commit, so each reader that reads between two
    /// of the writer's commits finds its pages cold once. Taken in turn, every reader
    /// paid that after every commit; from the first, one mostly does and the reads
    /// after it find the pages it read.
    fn reader(&self) -> StoreResult<MutexGuard<'_, Connection>> {
        let n = self.readers.len();
        if n == 0 {
            return self.lock();
        }
        for reader in &self.readers {
            match reader.try_lock() {
                Ok(conn) => return Ok(conn),
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Poisoned(_)) => return Err(StoreError::Poisoned),
            }
        }
        let next = self.next_reader.fetch_add(1, Ordering::Relaxed);
        self.readers[next % n]
            .lock()
            .map_err(|_| StoreError::Poisoned)
    }

    /// Takes every read connection, as long reads running at once would (tests).
    #[cfg(test)]
    pub(crate) fn hold_readers(&self) -> Vec<MutexGuard<'_, Connection>> {
        self.readers
            .iter()
            .filter_map(|r| r.try_lock().ok())
            .collect()
    }

    /// Runs `f` in a read transaction, so it sees one consistent state.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = self.reader()?;
        in_transaction(&conn, "BEGIN DEFERRED", f)
    }
}

/// Runs `f` between `begin` and `COMMIT`, or rolls back if it fails. The three
/// statements come from the connection's statement cache: rusqlite's `Transaction`
/// parses `BEGIN` and `COMMIT` afresh every time, which was an eighth of the relay's
/// CPU under load (a read is often one short query).
fn in_transaction<T>(
    conn: &Connection,
    begin: &str,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.prepare_cached(begin)?.execute([])?;
    let out = f(conn).and_then(|out| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(out)
    });
    if out.is_err() && !conn.is_autocommit() {
        // Still inside the transaction (f or COMMIT failed): undo everything.
        if let Err(e) = conn
            .prepare_cached("ROLLBACK")
            .and_then(|mut s| s.execute([]))
        {
            tracing::error!(error = %e, "cannot roll back a failed transaction");
        }
    }
    out
}

/// Page cache of one connection: 16 MiB instead of SQLite's default 2 MB, so the
/// upper levels of the chunk indexes (which appends touch at random places, chunk ids
/// being hashes) stay in memory as the relay's data grows.
fn tune(conn: &Connection) -> StoreResult<()> {
    conn.pragma_update(None, "cache_size", -16 * 1024)?; // in KiB
    // Query planner stability: plans do not depend on bound values. Without it SQLite
    // marked cached statements that could use a partial index (e.g. pending invites)
    // to be parsed and planned again on every execution with new values — over a
    // quarter of the relay's CPU under seed-stress's mixed load.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

#[cfg(test)]
mod tests;
