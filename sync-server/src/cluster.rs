//! Several relays as one: what each must hear from the others when they share a
//! PostgreSQL database (and an S3 bucket), so that a device may use any relay.
//!
//! A relay alone ([`Cluster::alone`], SQLite) needs none of this: its [`Hub`] knows
//! every session. With PostgreSQL ([`Cluster::postgres`]) each relay keeps one
//! connection that `LISTEN`s on the store's channel (see [`PgStore`]) and acts on
//! what the others announce:
//!
//! | announcement | sent | the other relays |
//! |---|---|---|
//! | `c ORIGIN DOC SEQ` | by the append's own transaction | read the chunk (one query per document per burst) and fan it out to their subscribers |
//! | `r ORIGIN DEVICE` | by the revocation's transaction | close the device's sessions (`Goodbye(device_revoked)`) |
//! | `m ORIGIN FAMILY [USER]` | by the transaction ending a membership | forget cached access answers; the family document's subscribers and the user re-check their subscriptions |
//! | `e ORIGIN ID` | after the commit, with the event in `relay_events` | deliver the event (invites, membership, presence, devices…) to their sessions of its users |
//!
//! The first three are part of the committing transaction (`NOTIFY` is delivered if
//! and when it commits), so no relay can miss a revocation, a lost membership or a
//! chunk because the relay that made it crashed a moment later. Events for devices are
//! at most once: a relay crashing between its commit and publishing loses them, as a
//! relay alone does — devices read the state again when they sign in.
//!
//! **Ordering.** A relay serves sessions only while it listens: if its listening
//! connection drops it closes every session (`Goodbye(unavailable)`), refuses new
//! websockets and answers `/healthz` with 503 until it listens again, so it never
//! serves a device whose revocation it could not hear. Devices reconnect, through the
//! balancer to another relay or to this one once it is back, and catch up from their
//! cursors. Chunks of one document are announced in commit order, which is seq order
//! (the document's row is locked by each append); a session that still sees a gap —
//! a local append overtaking a remote one — reads the missing chunks from the log
//! before going on (`session::docs`), so every subscriber gets every seq, in order.
//!
//! **Presence** is the `sessions` table: each relay records its signed-in sessions and
//! says it is alive every few seconds (`relays`); sessions of a relay silent for
//! [`DEAD_AFTER_MS`] do not count (a relay killed with `kill -9`), and are removed.
//! **Signed HTTP requests** are accepted once by the whole cluster
//! (`http_signatures`). **The blob sweep** and uploads exclude each other across
//! relays with a PostgreSQL advisory lock, as [`AppState::blob_gc`] does in one.
//!
//! [`Hub`]: crate::hub::Hub
//! [`PgStore`]: crate::store::PgStore
//! [`AppState::blob_gc`]: crate::state::AppState::blob_gc

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    sync::Arc,
    time::Duration,
};

use axum::body::Bytes;
use deadpool_postgres::{Object, Pool};
use doran_protocol::{DeviceId, DocId, ErrorCode, FamilyId, Seq, ServerFrame, UserId, codec};
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::{
    hub::{Hub, HubMsg},
    state::{AppState, now_ms},
    store::{PgStore, StoreError, StoreResult},
};

/// A relay not heard from for this long is dead: its sessions are not online.
pub const DEAD_AFTER_MS: u64 = 30_000;

/// How often a relay says it is alive (and tidies the shared tables).
const BEAT: Duration = Duration::from_secs(5);

/// Events kept for the other relays to read, in milliseconds.
const EVENTS_KEPT_MS: u64 = 10 * 60 * 1000;

/// The advisory lock uploads (shared) and the blob sweep (exclusive) take.
const BLOB_GC_LOCK: i64 = 0x646f_7261_6e67_6331; // "dorangc1"

/// Announcements handled at once (chunks of one document in a burst: one read).
const BURST: usize = 512;

/// What a relay shares with the others (see the module docs).
#[derive(Debug, Clone)]
pub struct Cluster {
    pg: Option<Arc<PgCluster>>,
}

struct PgCluster {
    pool: Pool,
    config: tokio_postgres::Config,
    channel: String,
    origin: String,
    /// Listening now (so hearing every announcement).
    listening: tokio::sync::watch::Sender<bool>,
    /// Blob-sweep locks held at once: each holds a pooled connection, and an upload
    /// holding one still needs another to grant its blob, so at most half the pool.
    gc_slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("channel", &self.channel)
            .field("origin", &self.origin)
            .field("listening", &*self.listening.borrow())
            .finish_non_exhaustive()
    }
}

/// What an event for devices carries to the other relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// An encoded `Event` frame for every session of the users.
    Event(Bytes),
    /// Re-check subscriptions (membership changed).
    Recheck,
}

impl Cluster {
    /// A relay on its own (SQLite): nothing to share.
    pub fn alone() -> Cluster {
        Cluster { pg: None }
    }

    /// A relay of a cluster on `store`'s database; `config` opens its listening
    /// connection.
    pub fn postgres(store: &PgStore, config: tokio_postgres::Config) -> Cluster {
        Cluster {
            pg: Some(Arc::new(PgCluster {
                pool: store.pool().clone(),
                config,
                channel: store.channel().to_owned(),
                origin: store.origin().to_owned(),
                listening: tokio::sync::watch::Sender::new(false),
                gc_slots: Arc::new(tokio::sync::Semaphore::new(
                    (store.pool().status().max_size / 2).max(1),
                )),
            })),
        }
    }

    /// Whether other relays may share this one's data.
    pub fn is_shared(&self) -> bool {
        self.pg.is_some()
    }

    /// Whether the relay may serve sessions: alone always; in a cluster while it
    /// listens to the others.
    pub fn serving(&self) -> bool {
        self.pg.as_ref().is_none_or(|pg| *pg.listening.borrow())
    }

    /// Starts listening and the heartbeat (in a cluster); the tasks end at shutdown.
    pub async fn start(&self, state: &Arc<AppState>) -> Vec<tokio::task::JoinHandle<()>> {
        let Some(pg) = &self.pg else {
            return Vec::new();
        };
        if let Err(e) = pg.beat(true).await {
            tracing::warn!(error = %e, "cannot register this relay in the cluster");
        }
        vec![
            tokio::spawn(listen(Arc::clone(state), Arc::clone(pg))),
            tokio::spawn(heartbeat(Arc::clone(state), Arc::clone(pg))),
        ]
    }

    /// Waits until the relay may serve (see [`serving`](Self::serving)), at most
    /// `limit`; whether it may. A relay starting waits for its first `LISTEN` before
    /// it accepts connections, so it does not turn away the first devices.
    pub async fn ready(&self, limit: Duration) -> bool {
        let Some(pg) = &self.pg else { return true };
        let mut rx = pg.listening.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|listening| *listening))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Forgets this relay's sessions (graceful shutdown).
    pub async fn leave(&self) {
        if let Some(pg) = &self.pg
            && let Err(e) = pg.leave().await
        {
            tracing::warn!(error = %e, "cannot leave the cluster cleanly");
        }
    }

    /// Delivers `msg` to the sessions of `users` on the other relays (best effort:
    /// failures are logged).
    pub async fn publish(&self, users: &[UserId], msg: Remote) {
        let Some(pg) = &self.pg else { return };
        if users.is_empty() {
            return;
        }
        if let Err(e) = pg.publish(users, &msg).await {
            tracing::warn!(error = %e, "cannot publish an event to the other relays");
        }
    }

    /// Records a signed-in session; returns whether its user just came online — on
    /// this relay (`here`) and, in a cluster, on no other either.
    pub async fn connected(&self, user: UserId, device: DeviceId, conn: u64, here: bool) -> bool {
        let Some(pg) = &self.pg else { return here };
        match pg.connected(user, device, conn).await {
            Ok(first) => first,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a session in the cluster");
                here
            }
        }
    }

    /// Forgets a session; returns whether its user went offline everywhere.
    pub async fn disconnected(&self, user: UserId, conn: u64, here: bool) -> bool {
        let Some(pg) = &self.pg else { return here };
        match pg.disconnected(user, conn).await {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!(error = %e, "cannot forget a session in the cluster");
                here
            }
        }
    }

    /// Which of `users` are online (on any relay).
    pub async fn online(&self, hub: &Hub, users: &[UserId]) -> StoreResult<HashSet<UserId>> {
        let here: HashSet<UserId> = users.iter().copied().filter(|u| hub.is_online(u)).collect();
        let Some(pg) = &self.pg else { return Ok(here) };
        let mut all = pg.online(users).await?;
        all.extend(here);
        Ok(all)
    }

    /// Which of `user`'s devices are connected (to any relay).
    pub async fn online_devices(&self, hub: &Hub, user: UserId) -> StoreResult<HashSet<DeviceId>> {
        let mut here = hub.online_devices(&user);
        if let Some(pg) = &self.pg {
            here.extend(pg.online_devices(user).await?);
        }
        Ok(here)
    }

    /// Accepts a signed request's signature once for the whole cluster (alone, the
    /// relay's own memory did): false if another relay accepted it.
    pub async fn claim_signature(&self, key: [u8; 32], forget_at: u64) -> StoreResult<bool> {
        let Some(pg) = &self.pg else { return Ok(true) };
        let forget_at = i64::try_from(forget_at).unwrap_or(i64::MAX);
        let client = pg.client().await?;
        let n = client
            .execute(
                "INSERT INTO http_signatures (key, forget_at) VALUES ($1, $2)
                 ON CONFLICT (key) DO NOTHING",
                &[&key, &forget_at],
            )
            .await?;
        Ok(n == 1)
    }

    /// Holds the blob sweep off on every relay (an upload between publishing and
    /// granting); `None` alone.
    pub async fn blob_gc_shared(&self) -> StoreResult<Option<GcLock>> {
        match &self.pg {
            Some(pg) => GcLock::take(pg, "SELECT pg_advisory_lock_shared($1)", false)
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    /// Holds every relay's uploads off between publishing and granting (the sweep);
    /// `None` alone.
    pub async fn blob_gc_exclusive(&self) -> StoreResult<Option<GcLock>> {
        match &self.pg {
            Some(pg) => GcLock::take(pg, "SELECT pg_advisory_lock($1)", true)
                .await
                .map(Some),
            None => Ok(None),
        }
    }
}

/// A held blob-sweep lock; released on drop.
pub struct GcLock {
    client: Option<Object>,
    exclusive: bool,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl std::fmt::Debug for GcLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcLock")
            .field("exclusive", &self.exclusive)
            .finish_non_exhaustive()
    }
}

impl GcLock {
    async fn take(pg: &PgCluster, sql: &str, exclusive: bool) -> StoreResult<GcLock> {
        let slot = Arc::clone(&pg.gc_slots)
            .acquire_owned()
            .await
            .map_err(StoreError::backend)?;
        let client = pg.client().await?;
        client.execute(sql, &[&BLOB_GC_LOCK]).await?;
        Ok(GcLock {
            client: Some(client),
            exclusive,
            _slot: slot,
        })
    }
}

impl Drop for GcLock {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let sql = if self.exclusive {
            "SELECT pg_advisory_unlock($1)"
        } else {
            "SELECT pg_advisory_unlock_shared($1)"
        };
        tokio::spawn(async move {
            if client.execute(sql, &[&BLOB_GC_LOCK]).await.is_err() {
                // Not back to the pool holding the lock: closing it releases it.
                drop(Object::take(client));
            }
        });
    }
}

fn hex16(s: &str) -> Option<[u8; 16]> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

impl PgCluster {
    async fn client(&self) -> StoreResult<Object> {
        crate::store::pg_client(&self.pool).await
    }

    async fn beat(&self, first: bool) -> StoreResult<()> {
        let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO relays (id, started_at, beat_at) VALUES ($1, $2, $2)
                 ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
                &[&self.origin, &now],
            )
            .await?;
        if first {
            return Ok(());
        }
        let dead = now - DEAD_AFTER_MS as i64 * 2;
        client
            .batch_execute(&format!(
                "DELETE FROM sessions WHERE relay IN (SELECT id FROM relays WHERE beat_at < {dead});
                 DELETE FROM relays WHERE beat_at < {dead};
                 DELETE FROM http_signatures WHERE forget_at < {now};
                 DELETE FROM relay_events WHERE at < {}",
                now - EVENTS_KEPT_MS as i64
            ))
            .await?;
        Ok(())
    }

    async fn leave(&self) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM sessions WHERE relay = $1", &[&self.origin])
            .await?;
        client
            .execute("DELETE FROM relays WHERE id = $1", &[&self.origin])
            .await?;
        Ok(())
    }

    fn alive_since(&self) -> i64 {
        i64::try_from(now_ms().saturating_sub(DEAD_AFTER_MS)).unwrap_or(0)
    }

    async fn connected(&self, user: UserId, device: DeviceId, conn: u64) -> StoreResult<bool> {
        let conn = i64::try_from(conn).unwrap_or(i64::MAX);
        let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO sessions (relay, conn, user_id, device, since) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (relay, conn) DO NOTHING",
                &[&self.origin, &conn, &user.0, &device.0, &now],
            )
            .await?;
        let others = client
            .query_opt(
                "SELECT 1 FROM sessions s JOIN relays r ON r.id = s.relay
                 WHERE s.user_id = $1 AND r.beat_at > $2 AND NOT (s.relay = $3 AND s.conn = $4)
                 LIMIT 1",
                &[&user.0, &self.alive_since(), &self.origin, &conn],
            )
            .await?;
        Ok(others.is_none())
    }

    async fn disconnected(&self, user: UserId, conn: u64) -> StoreResult<bool> {
        let conn = i64::try_from(conn).unwrap_or(i64::MAX);
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM sessions WHERE relay = $1 AND conn = $2",
                &[&self.origin, &conn],
            )
            .await?;
        let others = client
            .query_opt(
                "SELECT 1 FROM sessions s JOIN relays r ON r.id = s.relay
                 WHERE s.user_id = $1 AND r.beat_at > $2 LIMIT 1",
                &[&user.0, &self.alive_since()],
            )
            .await?;
        Ok(others.is_none())
    }

    async fn online(&self, users: &[UserId]) -> StoreResult<HashSet<UserId>> {
        let ids: Vec<&[u8]> = users.iter().map(|u| u.0.as_slice()).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT s.user_id FROM sessions s JOIN relays r ON r.id = s.relay
                 WHERE s.user_id = ANY ($1) AND r.beat_at > $2",
                &[&ids, &self.alive_since()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id: &[u8] = r.try_get(0)?;
                <[u8; 16]>::try_from(id)
                    .map(UserId)
                    .map_err(|_| StoreError::Corrupt("a session's user id".into()))
            })
            .collect()
    }

    async fn online_devices(&self, user: UserId) -> StoreResult<HashSet<DeviceId>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT s.device FROM sessions s JOIN relays r ON r.id = s.relay
                 WHERE s.user_id = $1 AND r.beat_at > $2",
                &[&user.0, &self.alive_since()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id: &[u8] = r.try_get(0)?;
                <[u8; 16]>::try_from(id)
                    .map(DeviceId)
                    .map_err(|_| StoreError::Corrupt("a session's device id".into()))
            })
            .collect()
    }

    async fn publish(&self, users: &[UserId], msg: &Remote) -> StoreResult<()> {
        let payload = encode_remote(users, msg);
        let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO relay_events (at, payload) VALUES ($1, $2) RETURNING id",
                &[&now, &payload],
            )
            .await?
            .try_get(0)?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&self.channel, &format!("e {} {id}", self.origin)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// `[kind][user count, u32 BE][16 bytes each][frame]`; kind 1 an event, 2 a re-check.
fn encode_remote(users: &[UserId], msg: &Remote) -> Vec<u8> {
    let frame: &[u8] = match msg {
        Remote::Event(frame) => frame,
        Remote::Recheck => &[],
    };
    let mut out = Vec::with_capacity(5 + users.len() * 16 + frame.len());
    out.push(match msg {
        Remote::Event(_) => 1,
        Remote::Recheck => 2,
    });
    out.extend_from_slice(&u32::try_from(users.len()).unwrap_or(u32::MAX).to_be_bytes());
    for u in users {
        out.extend_from_slice(&u.0);
    }
    out.extend_from_slice(frame);
    out
}

fn decode_remote(bytes: &[u8]) -> Option<(Vec<UserId>, Remote)> {
    let (&kind, rest) = bytes.split_first()?;
    let (count, rest) = rest.split_first_chunk::<4>()?;
    let count = u32::from_be_bytes(*count) as usize;
    let (ids, frame) = rest.split_at_checked(count.checked_mul(16)?)?;
    let users = ids
        .chunks_exact(16)
        .filter_map(|c| <[u8; 16]>::try_from(c).ok().map(UserId))
        .collect();
    let msg = match kind {
        1 => Remote::Event(Bytes::copy_from_slice(frame)),
        2 => Remote::Recheck,
        _ => return None,
    };
    Some((users, msg))
}

/// Says the relay is alive every [`BEAT`], until shutdown.
async fn heartbeat(state: Arc<AppState>, pg: Arc<PgCluster>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(BEAT) => {}
            () = state.shutdown.cancelled() => return,
        }
        if let Err(e) = pg.beat(false).await {
            tracing::warn!(error = %e, "cluster heartbeat failed");
        }
    }
}

/// Listens to the other relays until shutdown, reconnecting when the connection
/// drops; while it is not listening, the relay serves no session.
async fn listen(state: Arc<AppState>, pg: Arc<PgCluster>) {
    loop {
        match pg.config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().to_owned()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "the cluster connection failed");
                                break;
                            }
                        }
                    }
                });
                match client
                    .batch_execute(&format!("LISTEN {}", pg.channel))
                    .await
                {
                    Ok(()) => {
                        pg.listening.send_replace(true);
                        tracing::info!(channel = %pg.channel, "listening to the other relays");
                        loop {
                            let first = tokio::select! {
                                got = rx.recv() => got,
                                () = state.shutdown.cancelled() => {
                                    driver.abort();
                                    return;
                                }
                            };
                            let Some(first) = first else { break };
                            let mut burst = vec![first];
                            while burst.len() < BURST {
                                match rx.try_recv() {
                                    Ok(p) => burst.push(p),
                                    Err(_) => break,
                                }
                            }
                            handle(&state, &pg, burst).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot listen to the other relays"),
                }
                driver.abort();
                drop(client);
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect to the database to listen"),
        }
        if pg.listening.send_replace(false) {
            tracing::warn!("lost the other relays: closing every session until they are back");
        }
        // Whatever was announced meanwhile is unheard: nobody is served until the
        // relay listens again, and devices catch up from their cursors.
        state.hub.close_all(
            ErrorCode::Unavailable,
            "the relay lost its database; reconnect",
        );
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = state.shutdown.cancelled() => return,
        }
    }
}

/// Acts on a burst of announcements: revocations and memberships in order, then the
/// chunks (one read per document) and the events.
async fn handle(state: &Arc<AppState>, pg: &PgCluster, burst: Vec<String>) {
    let mut chunks: BTreeMap<DocId, BTreeSet<Seq>> = BTreeMap::new();
    let mut events: Vec<i64> = Vec::new();
    for payload in &burst {
        let mut words = payload.split(' ');
        let (Some(kind), Some(origin)) = (words.next(), words.next()) else {
            continue;
        };
        if origin == pg.origin {
            continue; // this relay did it and told its own sessions
        }
        match kind {
            "c" => {
                let doc = words.next().and_then(hex16).map(DocId);
                let seq = words.next().and_then(|s| s.parse::<Seq>().ok());
                if let (Some(doc), Some(seq)) = (doc, seq)
                    && state.hub.has_subscribers(doc)
                {
                    chunks.entry(doc).or_default().insert(seq);
                }
            }
            "r" => {
                if let Some(device) = words.next().and_then(hex16).map(DeviceId) {
                    state.hub.close_device(
                        device,
                        ErrorCode::DeviceRevoked,
                        "this device was revoked",
                    );
                }
            }
            "m" => {
                state.hub.membership_changed();
                if let Some(family) = words.next().and_then(hex16).map(FamilyId) {
                    // The family's documents: its own, its key log and its volumes,
                    // named by every year they may have (a deleted family's are
                    // listed nowhere any more), a hash each — a membership change is
                    // rare; each connection reading any of them re-checks once.
                    let volumes = doran_protocol::VOLUME_YEARS.map(|year| family.volume(year));
                    let docs = [DocId::from(family), family.key_log()];
                    state
                        .hub
                        .send_to_docs(docs.into_iter().chain(volumes), &HubMsg::Recheck);
                }
                if let Some(user) = words.next().and_then(hex16).map(UserId) {
                    state.hub.send_to_users([&user], &HubMsg::Recheck);
                }
            }
            "e" => {
                if let Some(id) = words.next().and_then(|s| s.parse().ok()) {
                    events.push(id);
                }
            }
            _ => tracing::debug!(payload, "unknown cluster announcement"),
        }
    }
    for (doc, seqs) in chunks {
        fan_in(state, doc, seqs).await;
    }
    if !events.is_empty() {
        deliver_events(state, pg, events).await;
    }
}

/// Reads the announced chunks of `doc` and fans them out to this relay's
/// subscribers, in seq order.
async fn fan_in(state: &Arc<AppState>, doc: DocId, seqs: BTreeSet<Seq>) {
    let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
        return;
    };
    let span = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
    let read = state
        .logs(move |l| l.read_since(doc, first.saturating_sub(1), span))
        .await;
    let chunks = match read {
        Ok(chunks) => chunks,
        Err(e) => {
            // The subscribers see the gap at the next chunk and read it themselves.
            tracing::warn!(%doc, error = %e, "cannot read announced chunks");
            return;
        }
    };
    for c in chunks.into_iter().filter(|c| seqs.contains(&c.seq)) {
        let frame = ServerFrame::Chunk {
            doc,
            seq: c.seq,
            chunk: c.chunk,
            author: c.author,
            bytes: c.bytes,
        };
        match codec::encode_server(&frame) {
            Ok(encoded) => {
                state.hub.fan_out(doc, c.seq, Bytes::from(encoded), 0);
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a chunk for fan-out"),
        }
    }
}

async fn deliver_events(state: &Arc<AppState>, pg: &PgCluster, ids: Vec<i64>) {
    let rows = match pg.client().await {
        Ok(client) => client
            .query(
                "SELECT payload FROM relay_events WHERE id = ANY ($1) ORDER BY id",
                &[&ids],
            )
            .await
            .map_err(StoreError::from),
        Err(e) => Err(e),
    };
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read events of the other relays");
            return;
        }
    };
    for row in rows {
        let Ok(payload) = row.try_get::<_, &[u8]>(0) else {
            continue;
        };
        match decode_remote(payload) {
            Some((users, Remote::Event(frame))) => {
                state
                    .hub
                    .send_to_users(&users, &HubMsg::Event(Arc::new(frame)));
            }
            Some((users, Remote::Recheck)) => {
                state.hub.membership_changed();
                state.hub.send_to_users(&users, &HubMsg::Recheck);
            }
            None => tracing::warn!("an event of another relay does not decode"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_events_round_trip() {
        let users = [UserId([1; 16]), UserId([2; 16])];
        for msg in [Remote::Event(Bytes::from_static(b"frame")), Remote::Recheck] {
            let bytes = encode_remote(&users, &msg);
            assert_eq!(decode_remote(&bytes), Some((users.to_vec(), msg)));
        }
        assert_eq!(decode_remote(&[1, 0, 0, 0, 9, 1]), None, "too few ids");
        assert_eq!(decode_remote(&[7, 0, 0, 0, 0]), None, "unknown kind");
    }
}
