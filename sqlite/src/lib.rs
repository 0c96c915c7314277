//! Opening a SQLite database the way Dorandoran's stores need it, written once for the
//! device's local store (`doran-client-core`) and the relay's (`doran-server`).
//!
//! - **Durability**: WAL mode (readers never block the writer, a commit is one append
//!   to the log) and `synchronous=FULL` (every commit fsyncs the WAL before it returns).
//!   With `NORMAL` a commit survives a process kill but may roll back on power loss;
//!   both stores promise more — the device that an edit it called saved is saved, the
//!   relay that an acked chunk is kept — so FULL it is.
//! - **Schema**: numbered migrations ([`Schema`]); migration `n` (1-based) brings the
//!   database from `PRAGMA user_version = n - 1` to `n`, in one transaction. A database
//!   written by a newer build is refused ([`Error::NewerSchema`]) rather than misread.
//! - **Checks**: [`check_integrity`] runs SQLite's own integrity and foreign-key checks
//!   (after a crash, and in tests).

use std::{path::Path, time::Duration};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

/// How long a statement waits for another connection's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A store's schema: its name (for logs) and its numbered migrations, append only —
/// never edit a released one.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// What the database is ("local store", "relay store"), for logs.
    pub name: &'static str,
    /// The migrations in order (usually `include_str!("migrations/00N_….sql")`).
    pub migrations: &'static [&'static str],
}

impl Schema {
    /// The schema version this build writes (`PRAGMA user_version`).
    pub fn version(&self) -> i64 {
        self.migrations.len() as i64
    }
}

/// Why a database could not be opened or checked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed (file missing or unreadable, disk full, locked…).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer build: refused rather than misread.
    #[error("the database has schema version {found}; this build understands up to {supported}")]
    NewerSchema {
        /// The version found in the file.
        found: i64,
        /// The newest this build writes.
        supported: i64,
    },
    /// The file fails SQLite's integrity or foreign-key checks, or holds an impossible
    /// schema version.
    #[error("the database is damaged: {0}")]
    Corrupt(String),
}

/// Result of this crate's functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Opens (creating if needed) the database in the file at `path` (the parent directory
/// must exist; SQLite keeps `-wal` and `-shm` files next to it), configured for
/// durability and migrated to `schema`.
pub fn open(path: &Path, schema: &Schema) -> Result<Connection> {
    tracing::debug!(path = %path.display(), schema = schema.name, "opening database");
    setup(Connection::open(path)?, schema)
}

/// A private in-memory database with `schema`, lost on drop.
pub fn open_in_memory(schema: &Schema) -> Result<Connection> {
    setup(Connection::open_in_memory()?, schema)
}

/// A read-only connection to the database at `path`, opened after [`open`] migrated
/// it. In WAL mode it neither waits for a writer's fsync nor holds it up.
pub fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

fn setup(mut conn: Connection, schema: &Schema) -> Result<Connection> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        tracing::warn!(%mode, schema = schema.name, "could not switch to WAL mode");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    migrate(&mut conn, schema)?;
    Ok(conn)
}

/// Brings the schema up to date, one transaction per migration.
fn migrate(conn: &mut Connection, schema: &Schema) -> Result<()> {
    let supported = schema.version();
    for (index, sql) in schema.migrations.iter().enumerate() {
        let version = index as i64 + 1;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read inside the transaction: another process may have migrated meanwhile.
        let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if found > supported {
            return Err(Error::NewerSchema { found, supported });
        }
        if found < 0 {
            return Err(Error::Corrupt(format!("negative user_version {found}")));
        }
        if found >= version {
            continue;
        }
        tracing::info!(version, schema = schema.name, "migrating");
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

/// Runs SQLite's `integrity_check` and `foreign_key_check` over the whole database
/// (slow on a large one: for start-up after a crash, or tests).
///
/// # Errors
///
/// [`Error::Corrupt`] with SQLite's findings when a check fails.
pub fn check_integrity(conn: &Connection) -> Result<()> {
    let mut problems = Vec::new();
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let line: String = row.get(0)?;
        if line != "ok" {
            problems.push(line);
        }
    }
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let table: String = row.get(0)?;
        problems.push(format!("foreign key violation in {table}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Corrupt(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: Schema = Schema {
        name: "test",
        migrations: &["CREATE TABLE a (x INTEGER PRIMARY KEY);"],
    };
    const V2: Schema = Schema {
        name: "test",
        migrations: &[
            "CREATE TABLE a (x INTEGER PRIMARY KEY);",
            "CREATE TABLE b (y INTEGER NOT NULL REFERENCES a (x));",
        ],
    };

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn migrates_forward_and_refuses_a_newer_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = open(&path, &V1).unwrap();
        assert_eq!(version(&conn), 1);
        conn.execute("INSERT INTO a (x) VALUES (1)", []).unwrap();
        drop(conn);

        let conn = open(&path, &V2).unwrap();
        assert_eq!(version(&conn), 2);
        let kept: i64 = conn.query_row("SELECT x FROM a", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, 1, "a migration keeps the rows");
        drop(conn);

        assert!(matches!(
            open(&path, &V1),
            Err(Error::NewerSchema {
                found: 2,
                supported: 1
            })
        ));
    }

    #[test]
    fn durable_settings_and_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = open(&path, &V2).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        conn.execute("INSERT INTO a (x) VALUES (7)", []).unwrap();
        check_integrity(&conn).unwrap();

        let reader = open_reader(&path).unwrap();
        let seen: i64 = reader
            .query_row("SELECT x FROM a", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 7);
        assert!(reader.execute("INSERT INTO a (x) VALUES (8)", []).is_err());
    }

    #[test]
    fn foreign_key_violations_are_found() {
        let conn = open_in_memory(&V2).unwrap();
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        conn.execute("INSERT INTO b (y) VALUES (42)", []).unwrap();
        assert!(matches!(check_integrity(&conn), Err(Error::Corrupt(_))));
    }
}
