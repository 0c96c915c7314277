//! [`AppState`]: everything the handlers share, built once at start.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use doran_protocol::{UnixMillis, UserId};
use tokio::sync::{RwLock, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    appender::Appender,
    auth::{Challenges, HttpAuth, session_keys::SessionKeys},
    cluster::Cluster,
    config::Config,
    conns::Conns,
    error::{ApiError, ApiResult},
    http::{pace::InFlight, turns::Turns},
    hub::Hub,
    metrics::Metrics,
    rate::{ConnectionCounter, KeyedLimiter, SlotCounter},
    store::{AccountStore, BlobStore, LogStore, StoreResult},
};

/// The three stores the relay runs on.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Users, devices, families, invites, link codes, ownership and blob grants.
    pub accounts: Arc<dyn AccountStore>,
    /// Document logs.
    pub logs: Arc<dyn LogStore>,
    /// Blob bytes.
    pub blobs: Arc<dyn BlobStore>,
}

/// Shared state of the relay: stores, the hub of live connections, auth, limits,
/// metrics and the shutdown signal.
#[derive(Debug)]
pub struct AppState {
    /// The configuration it was started with.
    pub config: Config,
    /// The stores (synchronous; call through [`AppState::accounts`] and friends).
    pub stores: Stores,
    /// Live connections, subscriptions and presence.
    pub hub: Arc<Hub>,
    /// The other relays sharing the database, if any.
    pub cluster: Cluster,
    /// Document appends: group commit, then fan-out in seq order.
    pub appender: Appender,
    /// Sign-in challenges.
    pub challenges: Challenges,
    /// Signed HTTP requests.
    pub http_auth: HttpAuth,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Cancelled on SIGTERM/SIGINT: connections say goodbye and close.
    pub shutdown: CancellationToken,
    /// Every connection task, waited for on shutdown.
    pub tasks: TaskTracker,
    /// Websocket connections per address.
    pub connections: ConnectionCounter,
    /// Every open TCP connection, under the relay-wide cap.
    pub conns: Conns,
    /// Blob uploads in progress.
    pub uploads: Arc<Semaphore>,
    /// Held (shared) by an upload from publishing its bytes until they are granted,
    /// and (exclusive) by the blob sweep while it checks and deletes: a blob is never
    /// deleted between being stored and being granted.
    pub blob_gc: Arc<RwLock<()>>,
    /// Blob uploads in progress per account.
    pub uploads_by_account: SlotCounter<UserId>,
    /// Blob uploads in progress per client address.
    pub uploads_by_address: SlotCounter<IpAddr>,
    /// Blob uploads in progress, so a new one can make the slowest give way when
    /// every slot is taken.
    pub uploads_in_flight: Arc<InFlight>,
    /// Blob downloads in progress per client address.
    pub downloads_by_address: Turns<IpAddr>,
    /// Blob downloads in progress per account.
    pub downloads_by_account: Turns<UserId>,
    /// Directory lookups per account.
    pub lookups_by_account: KeyedLimiter<UserId>,
    /// Directory lookups per address; registrations take from it too (an "already
    /// exists" answers the same question as a lookup).
    pub lookups_by_address: KeyedLimiter<IpAddr>,
    /// Registrations per address (each one claims an email).
    pub registrations_by_address: KeyedLimiter<IpAddr>,
}

impl AppState {
    /// State over `stores` with `config`, for a relay on its own.
    pub fn new(config: Config, stores: Stores) -> Arc<Self> {
        Self::with_cluster(config, stores, Cluster::alone())
    }

    /// State over `stores` with `config`, one relay of `cluster`.
    pub fn with_cluster(config: Config, stores: Stores, cluster: Cluster) -> Arc<Self> {
        let l = &config.limits;
        let hub = Arc::new(Hub::new(l.outbound_queue));
        let metrics = Arc::new(Metrics::default());
        let http_auth = http_auth(&config, &cluster);
        Arc::new(AppState {
            appender: Appender::start(
                Arc::clone(&stores.logs),
                Arc::clone(&hub),
                Arc::clone(&metrics),
            ),
            hub,
            cluster,
            challenges: Challenges::new(config.server_id.clone(), l.challenge_ttl_ms()),
            http_auth,
            metrics,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            connections: ConnectionCounter::new(l.max_connections_per_ip),
            conns: Conns::new(l.max_connections),
            uploads: Arc::new(Semaphore::new(l.max_concurrent_uploads)),
            uploads_by_account: SlotCounter::new(l.max_uploads_per_account),
            uploads_by_address: SlotCounter::new(l.max_uploads_per_address),
            uploads_in_flight: Arc::default(),
            downloads_by_address: Turns::new(l.max_downloads_per_address),
            downloads_by_account: Turns::new(l.max_downloads_per_account),
            blob_gc: Arc::new(RwLock::new(())),
            lookups_by_account: KeyedLimiter::per_minute(l.lookups_per_minute_per_account),
            lookups_by_address: KeyedLimiter::per_minute(l.lookups_per_minute_per_address),
            registrations_by_address: KeyedLimiter::per_hour(l.registrations_per_hour_per_address),
            stores,
            config,
        })
    }

    /// Runs `f` on the account store in the blocking pool.
    pub async fn accounts<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn AccountStore) -> StoreResult<T> + Send + 'static,
    {
        let store = Arc::clone(&self.stores.accounts);
        blocking(move || f(store.as_ref())).await
    }

    /// Runs `f`, a short read of the account store (a few indexed rows), on this
    /// worker when the store answers at once ([`AccountStore::answers_at_once`]:
    /// SQLite's read connections), else in the blocking pool. Under load the two
    /// hand-offs to and from the pool — a thread woken each way — cost the relay more
    /// than such a read (`docs/benchmarks.md`, "short reads on the worker"). Not for writes
    /// (they wait for the writer's fsync) nor for reads of unbounded size.
    pub async fn quick_read<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn AccountStore) -> StoreResult<T> + Send + 'static,
    {
        if self.stores.accounts.answers_at_once() {
            return f(self.stores.accounts.as_ref()).map_err(ApiError::from);
        }
        self.accounts(f).await
    }

    /// Whether a download's checks and a small blob's bytes can be read on the worker
    /// that asked (see [`AppState::quick_read`]).
    pub fn blob_reads_at_once(&self) -> bool {
        self.stores.accounts.answers_at_once() && self.stores.blobs.reads_at_once()
    }

    /// Runs `f` on the log store in the blocking pool.
    pub async fn logs<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn LogStore) -> StoreResult<T> + Send + 'static,
    {
        let store = Arc::clone(&self.stores.logs);
        blocking(move || f(store.as_ref())).await
    }

    /// Runs `f` on the blob store in the blocking pool.
    pub async fn blobs<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn BlobStore) -> StoreResult<T> + Send + 'static,
    {
        let store = Arc::clone(&self.stores.blobs);
        blocking(move || f(store.as_ref())).await
    }
}

/// Runs a synchronous store call in tokio's blocking pool.
pub async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = %e, "store task failed");
            Err(ApiError::internal("storage task failed"))
        }
    }
}

/// The checks of HTTP requests: session keys under the configured secret, or under one
/// drawn now for a relay alone; none for relays sharing a database without a shared
/// secret, since a key one gave would be refused by the others.
fn http_auth(config: &Config, cluster: &Cluster) -> HttpAuth {
    let l = &config.limits;
    let auth = HttpAuth::new(
        config.server_id.clone(),
        l.http_clock_skew(),
        l.http_replay_cache_max,
        l.http_replay_per_user,
    );
    let life_ms = l.http_session_key_secs.saturating_mul(1000);
    if life_ms == 0 {
        return auth;
    }
    // The clocks of a cluster's relays may differ as much as a device's may.
    let slack_ms = l.http_clock_skew_secs.saturating_mul(1000);
    match config.http_session_secret {
        Some(secret) => auth.with_sessions(SessionKeys::new(secret.0, life_ms, slack_ms)),
        None if !cluster.is_shared() => auth.with_sessions(SessionKeys::random(life_ms, slack_ms)),
        None => {
            tracing::warn!(
                "no http_session_secret shared by the relays: devices sign every HTTP request"
            );
            auth
        }
    }
}

/// The relay's clock: unix milliseconds.
pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, thread};

    use super::{AppState, Stores};
    use crate::{
        config::Config,
        store::{AccountStore, MemoryBlobStore, MemoryStore, SqliteStore},
    };

    fn state(
        accounts: Arc<dyn AccountStore>,
        logs: Arc<dyn crate::store::LogStore>,
    ) -> Arc<AppState> {
        let blobs = Arc::new(MemoryBlobStore::new());
        AppState::new(
            Config::default(),
            Stores {
                accounts,
                logs,
                blobs,
            },
        )
    }

    /// The thread a `quick_read` ran its read on, and whether it is the caller's.
    async fn ran_here(state: &AppState) -> bool {
        let caller = thread::current().id();
        let reader = state
            .quick_read(|a| {
                a.invites_for(doran_protocol::UserId([1; 16]), 0)?;
                Ok(thread::current().id())
            })
            .await
            .expect("the read answers");
        reader == caller
    }

    /// A store whose reads wait on nothing is read on the worker that asks; one that
    /// may wait (an in-memory SQLite reads through its writer) goes to the blocking
    /// pool, as PostgreSQL (the trait's default) does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quick_reads_stay_on_the_worker_only_when_the_store_answers_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = Arc::new(SqliteStore::open(dir.path().join("relay.sqlite")).expect("open"));
        assert!(
            file.answers_at_once(),
            "a file database reads through its readers"
        );
        let on_file = state(file.clone(), file.clone());
        assert!(ran_here(&on_file).await);
        // Every read connection busy (long reads in the pool): not on the worker.
        let held = file.hold_readers();
        assert!(!held.is_empty());
        assert!(!file.answers_at_once());
        drop(held);
        assert!(ran_here(&on_file).await);

        let memory = Arc::new(MemoryStore::new());
        assert!(ran_here(&state(memory.clone(), memory)).await);

        let in_memory = Arc::new(SqliteStore::open_in_memory().expect("open"));
        assert!(
            !in_memory.answers_at_once(),
            "reads would wait for the writer"
        );
        assert!(!ran_here(&state(in_memory.clone(), in_memory)).await);
    }
}
