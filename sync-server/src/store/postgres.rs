//! [`PgStore`]: the relay's accounts and document logs in PostgreSQL, for several
//! relays sharing one database (scale-out).
//!
//! **Sync traits over an async driver.** The store traits are synchronous (SQLite, the
//! default, is), and the relay calls them from tokio's blocking pool and from the
//! appender's own thread. `PgStore` talks to PostgreSQL with `tokio-postgres` through a
//! `deadpool-postgres` pool, and each trait method runs its async body with
//! [`Handle::block_on`] on the calling (blocking) thread while the connections' I/O
//! runs on the runtime's workers. So SQLite keeps its direct path, the handlers stay
//! as they are, and a blocking thread is held only for as long as one call takes.
//!
//! **Transactions.** Every method is one transaction, as the traits require, and the
//! check-then-write methods behave as SQLite's serialised writer does even with
//! several relays writing at once. Two ways: the busy ones (sign-ups, new devices, a
//! family's members and invites) run at `READ COMMITTED`, deciding races with unique
//! keys and by locking the family's row, then the user's, before they read; the
//! others (two devices revoking each other, link codes, grants, snapshot references)
//! run at `SERIALIZABLE`. Both are retried on a deadlock, and the serialisable ones on
//! a serialization failure. Reads that are one statement run alone (a statement sees
//! one snapshot).
//!
//! **Appends** are one statement per group (`doran_append`, a PL/pgSQL function in the
//! first migration): one round trip and one commit — one WAL flush — per group. The
//! document's `logs` row is locked for the rest of the transaction, so appends from
//! any number of relays to one document get consecutive seqs, in commit order. With
//! `synchronous_commit` on (PostgreSQL's default, which the relay requires) the commit
//! returns only once the WAL is flushed: an acked chunk survives a crash of the relay
//! or of PostgreSQL.
//!
//! **Announcements.** The commits other relays must hear about are announced on the
//! store's notification channel by the committing transaction itself (`NOTIFY` is
//! delivered only if, and when, it commits): each new chunk (`c ORIGIN DOC SEQ`), each
//! revoked device (`r ORIGIN DEVICE`) and each membership that ends (`m ORIGIN FAMILY
//! [USER]`). [`crate::cluster`] listens to them.
//!
//! **Schema.** Numbered migrations (`postgres/migrations/NNN_*.sql`, append-only) in a
//! PostgreSQL schema of the relay's choosing (default `doran`), created if missing;
//! applied under an advisory lock, so relays starting together migrate once. A
//! database migrated by a newer relay is refused ([`StoreError::NewerSchema`]).

use std::{fmt, future::Future, str::FromStr, time::Duration};

use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Transaction,
};
use tokio::runtime::Handle;
use tokio_postgres::{IsolationLevel, NoTls, Row, error::SqlState, types::ToSql};

use super::{StoreError, StoreResult};

mod accounts;
mod logs;

/// The schema: numbered migrations, append only — never edit a released one.
const MIGRATIONS: &[&str] = &[
    include_str!("postgres/migrations/001_init.sql"),
    include_str!("postgres/migrations/002_cluster.sql"),
    include_str!("postgres/migrations/003_link_requests.sql"),
    include_str!("postgres/migrations/004_pending_snapshots.sql"),
    include_str!("postgres/migrations/005_purge_indexes.sql"),
    include_str!("postgres/migrations/006_chunk_authors.sql"),
    include_str!("postgres/migrations/007_device_certs.sql"),
    include_str!("postgres/migrations/008_key_packages.sql"),
    include_str!("postgres/migrations/009_sealed_logs.sql"),
    include_str!("postgres/migrations/010_forget_titles_and_names.sql"),
    include_str!("postgres/migrations/011_volumes.sql"),
    include_str!("postgres/migrations/012_sealed_family_logs.sql"),
];

/// How often a write transaction is tried when PostgreSQL serialises it away.
const WRITE_ATTEMPTS: usize = 12;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database` (or the key=value form).
    pub url: String,
    /// The PostgreSQL schema holding the relay's tables (created if missing): several
    /// deployments, or test runs, can share one database.
    pub schema: String,
    /// Connections in this relay's pool.
    pub pool_size: usize,
    /// This relay's id in the announcements it makes (others ignore their own).
    pub origin: String,
}

impl PgOptions {
    /// Options for `url`, in the default schema `doran`, with a pool of 16.
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            schema: "doran".into(),
            pool_size: 16,
            origin: format!("{:016x}", rand::random::<u64>()),
        }
    }

    /// The notification channel of this schema: PostgreSQL's channels are per
    /// database, so the schema is part of the name.
    pub fn channel(&self) -> String {
        format!("doran_{}", self.schema)
    }

    /// The driver's configuration: the URL, the schema as the search path, and
    /// timeouts so that a database that went away fails calls instead of hanging them.
    pub fn pg_config(&self) -> StoreResult<tokio_postgres::Config> {
        check_schema_name(&self.schema)?;
        let mut config = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
        config
            .options(format!("-c search_path={}", self.schema))
            .application_name("doran-server")
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .tcp_user_timeout(Duration::from_secs(15));
        Ok(config)
    }
}

/// A schema name is spliced into SQL and channel names: letters, digits and `_` only.
fn check_schema_name(name: &str) -> StoreResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "schema name {name:?}: lowercase letters, digits and _ only, at most 48"
        )))
    }
}

/// The relay's [`AccountStore`](super::AccountStore) and
/// [`LogStore`](super::LogStore) in PostgreSQL (see the module docs).
pub struct PgStore {
    pool: Pool,
    rt: Handle,
    channel: String,
    origin: String,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("channel", &self.channel)
            .field("origin", &self.origin)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects with `options` on the runtime `rt` (its workers run the connections),
    /// creates the schema if needed and applies the pending migrations. Call it from a
    /// thread that is not a runtime worker (e.g. `spawn_blocking`), like every method.
    pub fn connect(options: &PgOptions, rt: Handle) -> StoreResult<Self> {
        let config = options.pg_config()?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(15)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(StoreError::backend)?;
        let store = PgStore {
            pool,
            rt,
            channel: options.channel(),
            origin: options.origin.clone(),
        };
        store.run(migrate(&store.pool, &options.schema))?;
        Ok(store)
    }

    /// The schema version this build writes.
    pub fn schema_version() -> i64 {
        MIGRATIONS.len() as i64
    }

    /// The pool (the cluster layer shares it).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The notification channel the store announces its commits on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// This relay's id in those announcements.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Runs `fut` to completion on this thread, with the runtime's context.
    fn run<T>(&self, fut: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        self.rt.block_on(fut)
    }

    /// Runs `f` on a pooled connection, outside any explicit transaction (for reads
    /// that are one statement).
    fn read<T>(&self, f: impl AsyncFn(&Object) -> StoreResult<T>) -> StoreResult<T> {
        self.run(async {
            let client = client(&self.pool).await?;
            f(&client).await
        })
    }

    /// Runs `f` in a `SERIALIZABLE` transaction, committed if it succeeds and tried
    /// again (from the start) when PostgreSQL cannot serialise it.
    fn write<T>(&self, f: impl AsyncFn(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.run(async {
            let mut client = client(&self.pool).await?;
            let mut attempt = 1;
            loop {
                let tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()
                    .await?;
                // A sequential scan takes a predicate lock on the whole table, so
                // every concurrent writer conflicts (the tables are small at first,
                // when PostgreSQL prefers them): point lookups go through the indexes,
                // whose locks are fine-grained.
                tx.batch_execute("SET LOCAL enable_seqscan = off").await?;
                let out = match f(&tx).await {
                    Ok(v) => tx.commit().await.map(|()| v).map_err(StoreError::from),
                    Err(e) => {
                        tx.rollback().await?;
                        Err(e)
                    }
                };
                match out {
                    Err(e) if retryable(&e) && attempt < WRITE_ATTEMPTS => {
                        // Those it lost to are likely still at it (many sessions of one
                        // device touching its row): back off, at random, a little more
                        // each time.
                        let most = 1u64 << attempt.min(7);
                        tokio::time::sleep(Duration::from_millis(rand::random_range(1..=most)))
                            .await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }

    /// Runs `f` in a `READ COMMITTED` transaction, for the writes of a burst of
    /// sign-ups and family set-ups: registering a user and adding a device (whose only
    /// invariants are unique keys: the second insert waits for the first and fails
    /// with a unique violation, mapped to the method's error), and the writes of a
    /// family's members and invites (which lock the family's row, then the user's,
    /// first: `lock_family`, `lock_user`). At `SERIALIZABLE` those writes, for
    /// different users and families, conflicted through the index pages they shared,
    /// failed to serialise and backed off: sign-ups missed the relay's 30 s sign-in
    /// deadline, and with three relays some set-ups failed twelve times in a row.
    /// Deadlocks are still tried again.
    fn write_committed<T>(
        &self,
        f: impl AsyncFn(&Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.run(async {
            let mut client = client(&self.pool).await?;
            let mut attempt = 1;
            loop {
                let tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::ReadCommitted)
                    .start()
                    .await?;
                let out = match f(&tx).await {
                    Ok(v) => tx.commit().await.map(|()| v).map_err(StoreError::from),
                    Err(e) => {
                        tx.rollback().await?;
                        Err(e)
                    }
                };
                match out {
                    Err(e) if retryable(&e) && attempt < WRITE_ATTEMPTS => attempt += 1,
                    other => return other,
                }
            }
        })
    }

    /// Announces `KIND ORIGIN ARGS` on the store's channel from inside `tx`
    /// (delivered when, and only if, it commits).
    async fn announce(&self, tx: &Transaction<'_>, kind: char, args: &str) -> StoreResult<()> {
        let payload = format!("{kind} {} {args}", self.origin);
        exec(tx, "SELECT pg_notify($1, $2)", &[&self.channel, &payload])
            .await
            .map(drop)
    }
}

/// A pooled connection.
pub(crate) async fn client(pool: &Pool) -> StoreResult<Object> {
    pool.get().await.map_err(StoreError::backend)
}

/// Whether a failed transaction may simply be tried again.
fn retryable(e: &StoreError) -> bool {
    let StoreError::Backend(e) = e else {
        return false;
    };
    e.downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        })
}

/// Creates the schema and applies the pending migrations, each in its own
/// transaction, under a lock every relay on this schema takes.
async fn migrate(pool: &Pool, schema: &str) -> StoreResult<()> {
    let mut client = client(pool).await?;
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await
        .or_else(|e| {
            // Two relays creating it at once: one wins, the other sees it exist.
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    let supported = MIGRATIONS.len() as i64;
    loop {
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('doran-migrations:' || $1::text))",
            &[&schema],
        )
        .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer NOT NULL PRIMARY KEY,
                 applied_at bigint  NOT NULL)",
        )
        .await?;
        let found: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0)::bigint FROM schema_migrations",
                &[],
            )
            .await?
            .try_get(0)?;
        if found > supported {
            return Err(StoreError::NewerSchema { found, supported });
        }
        let Some(sql) = MIGRATIONS.get(found as usize) else {
            tx.commit().await?;
            return Ok(());
        };
        tracing::info!(
            schema,
            version = found + 1,
            "migrating the relay's database"
        );
        tx.batch_execute(sql).await?;
        let version = i32::try_from(found + 1).unwrap_or(i32::MAX);
        let now = i64::try_from(crate::state::now_ms()).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &now],
        )
        .await?;
        tx.commit().await?;
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.code() {
            // The methods check uniqueness themselves to answer a precise error; a
            // constraint that still fires means a record with that key exists.
            // Two registrations of one email racing: the loser is told as if it had
            // checked first.
            Some(c)
                if *c == SqlState::UNIQUE_VIOLATION
                    && err.as_db_error().and_then(|d| d.constraint())
                        == Some("users_email_key") =>
            {
                StoreError::EmailTaken
            }
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(err.to_string()),
            Some(c) if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => {
                StoreError::Corrupt(err.to_string())
            }
            _ => StoreError::backend(err),
        }
    }
}

// ----- statements and rows -----

/// Statement parameters.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Every row of a (cached) statement.
pub(super) async fn rows(
    c: &impl GenericClient,
    sql: &str,
    p: Params<'_>,
) -> StoreResult<Vec<Row>> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query(&st, p).await?)
}

/// The first row, if any.
pub(super) async fn row(
    c: &impl GenericClient,
    sql: &str,
    p: Params<'_>,
) -> StoreResult<Option<Row>> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&st, p).await?)
}

/// Runs a statement; returns the rows it changed.
pub(super) async fn exec(c: &impl GenericClient, sql: &str, p: Params<'_>) -> StoreResult<u64> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.execute(&st, p).await?)
}

/// Whether `sql` (a `SELECT 1 …`) finds a row.
pub(super) async fn exists(c: &impl GenericClient, sql: &str, p: Params<'_>) -> StoreResult<bool> {
    Ok(row(c, sql, p).await?.is_some())
}

/// A column that must hold exactly `N` bytes.
pub(super) fn bytes<const N: usize>(row: &Row, idx: usize) -> StoreResult<[u8; N]> {
    let v: &[u8] = row.try_get(idx)?;
    v.try_into()
        .map_err(|_| StoreError::Corrupt(format!("a {}-byte id has {} bytes", N, v.len())))
}

/// An optional column of exactly `N` bytes.
pub(super) fn bytes_opt<const N: usize>(row: &Row, idx: usize) -> StoreResult<Option<[u8; N]>> {
    let v: Option<&[u8]> = row.try_get(idx)?;
    v.map(|v| {
        v.try_into()
            .map_err(|_| StoreError::Corrupt(format!("a {}-byte id has {} bytes", N, v.len())))
    })
    .transpose()
}

/// A non-negative integer column.
pub(super) fn unsigned(row: &Row, idx: usize, what: &str) -> StoreResult<u64> {
    to_unsigned(row.try_get(idx)?, what)
}

/// An optional non-negative integer column.
pub(super) fn unsigned_opt(row: &Row, idx: usize, what: &str) -> StoreResult<Option<u64>> {
    row.try_get::<_, Option<i64>>(idx)?
        .map(|v| to_unsigned(v, what))
        .transpose()
}

/// A stored integer that must not be negative.
pub(super) fn to_unsigned(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what} {value}")))
}

#[cfg(test)]
pub(crate) mod testing {
    //! A PostgreSQL store in a fresh schema of the test database, dropped afterwards.

    use std::sync::Arc;

    use super::{PgOptions, PgStore};

    /// The test database (`DORAN_TEST_DATABASE`), if the environment names one. When it
    /// does not, the PostgreSQL tests pass without running — unless
    /// `DORAN_REQUIRE_BACKENDS` is set (as `scripts/test` does), then they fail.
    pub(crate) fn database() -> Option<String> {
        match std::env::var("DORAN_TEST_DATABASE") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var_os("DORAN_REQUIRE_BACKENDS").is_none(),
                    "DORAN_TEST_DATABASE is not set but DORAN_REQUIRE_BACKENDS is"
                );
                None
            }
        }
    }

    /// A store in a new schema, with the runtime it runs on; the schema is dropped when
    /// the guard goes.
    #[derive(Debug)]
    pub(crate) struct TestPg {
        pub(crate) store: Arc<PgStore>,
        pub(crate) rt: Arc<tokio::runtime::Runtime>,
        url: String,
        schema: String,
    }

    impl TestPg {
        /// `None` when there is no test database (see [`database`]).
        pub(crate) fn new() -> Option<TestPg> {
            let url = database()?;
            let rt = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("a runtime"),
            );
            let schema = format!("t_{:016x}", rand::random::<u64>());
            let mut options = PgOptions::new(url.clone());
            options.schema = schema.clone();
            options.pool_size = 4;
            let store = PgStore::connect(&options, rt.handle().clone()).expect("connect");
            Some(TestPg {
                store: Arc::new(store),
                rt,
                url,
                schema,
            })
        }
    }

    impl Drop for TestPg {
        fn drop(&mut self) {
            let (url, schema) = (self.url.clone(), self.schema.clone());
            self.rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
            });
        }
    }
}

#[cfg(test)]
mod migration_tests {
    use std::error::Error;

    use doran_protocol::{FamilyId, InviteId, UserId};

    use super::{MIGRATIONS, PgOptions, PgStore, testing::database};
    use crate::store::AccountStore;

    /// The data files of these tables (a new one once a table is rewritten).
    async fn filenodes(c: &tokio_postgres::Client) -> Result<Vec<u32>, tokio_postgres::Error> {
        let mut out = Vec::new();
        for table in ["families", "members", "invites"] {
            let row = c
                .query_one(
                    "SELECT pg_relation_filenode($1::text::regclass)::oid",
                    &[&table],
                )
                .await?;
            out.push(row.try_get(0)?);
        }
        Ok(out)
    }

    /// A database a relay of schema version 9 wrote — a family's title, 호칭, a pending
    /// invite's proposed 호칭, an event between relays — migrated by this one: the
    /// columns are gone, the tables rewritten (a dropped column's values stay in the
    /// rows until then), the events dropped, and the rest kept.
    #[test]
    fn a_version_9_schema_forgets_titles_and_names() -> Result<(), Box<dyn Error>> {
        let Some(url) = database() else {
            return Ok(());
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let schema = format!("t_{:016x}", rand::random::<u64>());
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            Ok::<_, tokio_postgres::Error>(client)
        })?;
        let result = forget_in(&url, &schema, &rt, &client);
        rt.block_on(client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))?;
        result
    }

    fn forget_in(
        url: &str,
        schema: &str,
        rt: &tokio::runtime::Runtime,
        client: &tokio_postgres::Client,
    ) -> Result<(), Box<dyn Error>> {
        let (family, host, guest, invite) = (
            FamilyId([0xfa; 16]),
            UserId([1; 16]),
            UserId([2; 16]),
            InviteId([9; 16]),
        );
        let before = rt.block_on(async {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA {schema}; SET search_path = {schema};
                     CREATE TABLE schema_migrations (
                         version integer NOT NULL PRIMARY KEY, applied_at bigint NOT NULL)"
                ))
                .await?;
            for (n, sql) in MIGRATIONS[..9].iter().enumerate() {
                client.batch_execute(sql).await?;
                let version = i32::try_from(n + 1).unwrap_or(i32::MAX);
                client
                    .execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)",
                        &[&version],
                    )
                    .await?;
            }
            for (user, n) in [(host, 1u8), (guest, 2)] {
                client
                    .execute(
                        "INSERT INTO users (id, email, nickname, user_key, personal_doc, created_at)
                         VALUES ($1, $2, 'nick', $3, $4, 1)",
                        &[
                            &user.0.as_slice(),
                            &format!("{n}@example.com"),
                            &[n; 32].as_slice(),
                            &[0xd0 ^ n; 16].as_slice(),
                        ],
                    )
                    .await?;
            }
            client
                .execute(
                    "INSERT INTO families (id, title, host, created_at) VALUES ($1, '우리 가족', $2, 1)",
                    &[&family.0.as_slice(), &host.0.as_slice()],
                )
                .await?;
            client
                .execute(
                    "INSERT INTO docs (doc, family) VALUES ($1, $1)",
                    &[&family.0.as_slice()],
                )
                .await?;
            client
                .execute(
                    "INSERT INTO members (family, user_id, name, role, joined_at)
                     VALUES ($1, $2, '엄마', 'host', 1)",
                    &[&family.0.as_slice(), &host.0.as_slice()],
                )
                .await?;
            client
                .execute(
                    "INSERT INTO invites (id, family, inviter, invitee, proposed_name, created_at,
                                          expires_at, state)
                     VALUES ($1, $2, $3, $4, '딸', 10, 1000, 'pending')",
                    &[
                        &invite.0.as_slice(),
                        &family.0.as_slice(),
                        &host.0.as_slice(),
                        &guest.0.as_slice(),
                    ],
                )
                .await?;
            client
                .execute(
                    "INSERT INTO relay_events (at, payload) VALUES (1, '\\x00'::bytea)",
                    &[],
                )
                .await?;
            filenodes(client).await
        })?;

        let mut options = PgOptions::new(url);
        options.schema = schema.to_owned();
        options.pool_size = 2;
        let store = PgStore::connect(&options, rt.handle().clone())?;
        let pending = store.invite(invite, 50)?.ok_or("the invite")?;
        assert!(pending.card.is_empty(), "an old invite has an empty card");
        assert_eq!(store.members(family)?.len(), 1);
        assert_eq!(store.family(family)?.map(|f| f.host), Some(host));
        store.answer_invite(invite, true, 60, usize::MAX)?;
        assert_eq!(store.members(family)?.len(), 2);

        let (columns, events, after) = rt.block_on(async {
            let columns: Vec<String> = client
                .query(
                    "SELECT table_name || '.' || column_name FROM information_schema.columns
                     WHERE table_schema = $1
                       AND column_name IN ('title', 'name', 'proposed_name')",
                    &[&schema.to_owned()],
                )
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let events: i64 = client
                .query_one("SELECT count(*) FROM relay_events", &[])
                .await?
                .try_get(0)?;
            Ok::<_, tokio_postgres::Error>((columns, events, filenodes(client).await?))
        })?;
        drop(store);
        assert_eq!(columns, Vec::<String>::new());
        assert_eq!(events, 0);
        for (table, (old, new)) in ["families", "members", "invites"]
            .iter()
            .zip(before.iter().zip(&after))
        {
            assert_ne!(old, new, "{table} was written anew");
        }
        Ok(())
    }
}
