//! The hub: who is connected, as which user and device, subscribed to which
//! documents; fan-out of chunks and delivery of events to connections.
//!
//! Each signed-in connection registers a queue ([`HubMsg`] sender). The hub never
//! waits on a connection: a message that does not fit in a full queue cancels that
//! connection (a client too slow to read is dropped and catches up on reconnect).
//!
//! Chunks are fanned out by the [`Appender`](crate::appender::Appender)'s one writer
//! thread right after the commit that gave them their seqs, so live chunks reach every
//! subscriber in seq order.
//!
//! The hub also keeps the **membership epoch**: a counter bumped after every change
//! of who belongs to which family. Sessions cache what a user may do with a document
//! and trust the cache only while the epoch is the one they read before checking.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::body::Bytes;
use doran_protocol::{
    DeviceId, DocId, ErrorCode, Seq, ServerEvent, ServerFrame, UnixMillis, UserId, codec,
};
use tokio_util::sync::CancellationToken;

pub use self::queue::Receiver;
use self::queue::{Sender, TrySendError};

mod queue;

/// A connection's id, unique for the life of the process.
pub type ConnId = u64;

/// What the hub hands to a connection.
///
/// Every payload sits behind one pointer, so a message is 16 bytes: each signed-in
/// connection's queue allocates its first block of 32 slots when it is made, idle or
/// not (with the payloads inline it was 2 KiB per connection). A chunk fanned out to
/// many subscribers is one allocation they share.
#[derive(Debug, Clone)]
pub enum HubMsg {
    /// A chunk another connection pushed.
    Chunk(Arc<LiveChunk>),
    /// An encoded `Event` frame.
    Event(Arc<Bytes>),
    /// An encoded frame about a document (a pending snapshot's offer), forwarded only
    /// while the connection is subscribed to it.
    DocFrame(Arc<DocFrame>),
    /// Membership changed: re-check access to every subscribed document.
    Recheck,
    /// Say `Goodbye` with this reason and close.
    Close(Arc<Closing>),
}

/// A chunk on its way to subscribers: the encoded `Chunk` frame and where it sits.
#[derive(Debug)]
pub struct LiveChunk {
    /// Its document.
    pub doc: DocId,
    /// Its seq.
    pub seq: Seq,
    /// The encoded frame.
    pub frame: Bytes,
}

/// An encoded frame about `doc`.
#[derive(Debug)]
pub struct DocFrame {
    /// The document.
    pub doc: DocId,
    /// The encoded frame.
    pub frame: Bytes,
}

/// Why a connection is told goodbye.
#[derive(Debug)]
pub struct Closing {
    /// Why.
    pub reason: ErrorCode,
    /// Detail.
    pub message: String,
}

impl HubMsg {
    /// A goodbye with `reason` and `message`.
    pub fn close(reason: ErrorCode, message: &str) -> HubMsg {
        HubMsg::Close(Arc::new(Closing {
            reason,
            message: message.to_owned(),
        }))
    }

    /// A frame about `doc`, encoded once for every subscriber; `None` (logged) if it
    /// cannot be encoded.
    pub fn doc_frame(doc: DocId, frame: &ServerFrame) -> Option<HubMsg> {
        match codec::encode_server(frame) {
            Ok(bytes) => Some(HubMsg::DocFrame(Arc::new(DocFrame {
                doc,
                frame: Bytes::from(bytes),
            }))),
            Err(e) => {
                tracing::error!(error = %e, kind = frame.kind(), "cannot encode a frame");
                None
            }
        }
    }

    /// An event, encoded once for every recipient; `None` (logged) if it cannot be
    /// encoded.
    pub fn event(event: ServerEvent) -> Option<HubMsg> {
        match codec::encode_server(&ServerFrame::Event(event)) {
            Ok(bytes) => Some(HubMsg::Event(Arc::new(Bytes::from(bytes)))),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an event");
                None
            }
        }
    }
}

#[derive(Debug)]
struct Conn {
    user: UserId,
    device: DeviceId,
    tx: Sender,
    cancel: CancellationToken,
    /// Cancelled when the connection's device is revoked: the session refuses every
    /// frame after that, even one read before the `Close` message reaches it.
    revoked: CancellationToken,
    docs: HashSet<DocId>,
}

/// The tokens a session hands the hub when it registers.
#[derive(Debug, Clone, Default)]
pub struct ConnTokens {
    /// Cancelled by the hub to drop the connection at once (a full queue).
    pub cancel: CancellationToken,
    /// Cancelled by the hub when the connection's device is revoked.
    pub revoked: CancellationToken,
}

/// Connection ids are the relay's own (a counter), so maps keyed by them use a plain
/// multiplicative hash (`rustc-hash`) rather than the keyed SipHash the maps of ids a
/// client names keep: a fan-out looks up every recipient, and SipHash was the larger
/// part of that (about 200 instructions a lookup).
type ConnMap<V> = HashMap<ConnId, V, rustc_hash::FxBuildHasher>;
type ConnSet = HashSet<ConnId, rustc_hash::FxBuildHasher>;

#[derive(Debug, Default)]
struct Inner {
    conns: ConnMap<Conn>,
    by_user: HashMap<UserId, ConnSet>,
    by_doc: HashMap<DocId, ConnSet>,
    last_seen: HashMap<UserId, UnixMillis>,
}

/// Live connections and subscriptions.
#[derive(Debug)]
pub struct Hub {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    queue: usize,
    membership_epoch: AtomicU64,
}

/// What registering a connection changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// The new connection's id.
    pub id: ConnId,
    /// Whether it is the user's first connection (they just came online).
    pub came_online: bool,
}

impl Hub {
    /// A hub whose connection queues hold `queue` messages.
    pub fn new(queue: usize) -> Self {
        Hub {
            inner: Mutex::default(),
            next_id: AtomicU64::new(1),
            queue: queue.max(16),
            membership_epoch: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The membership epoch now. Read it *before* checking access in the store; an
    /// answer is good while the epoch still has this value.
    pub fn membership_epoch(&self) -> u64 {
        self.membership_epoch.load(Ordering::Acquire)
    }

    /// Call *after* a membership change is committed: every cached access answer
    /// becomes stale.
    pub fn membership_changed(&self) {
        self.membership_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Registers a signed-in connection; returns its id and its queue.
    ///
    /// Register *before* the last check that the device is not revoked: a revocation
    /// committed after that check then finds the connection here
    /// ([`close_device`](Self::close_device)), and one committed before it is seen by
    /// the check. Either way a revoked device keeps no session.
    pub fn register(
        &self,
        user: UserId,
        device: DeviceId,
        tokens: ConnTokens,
    ) -> (Registered, Receiver) {
        let (tx, rx) = queue::queue(self.queue);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.conns.insert(
            id,
            Conn {
                user,
                device,
                tx,
                cancel: tokens.cancel,
                revoked: tokens.revoked,
                docs: HashSet::new(),
            },
        );
        let conns = inner.by_user.entry(user).or_default();
        conns.insert(id);
        let came_online = conns.len() == 1;
        (Registered { id, came_online }, rx)
    }

    /// Forgets a connection; returns its user if they have no connection left (they
    /// went offline at `now`).
    pub fn unregister(&self, id: ConnId, now: UnixMillis) -> Option<UserId> {
        let mut inner = self.lock();
        let conn = inner.conns.remove(&id)?;
        for doc in &conn.docs {
            if let Some(set) = inner.by_doc.get_mut(doc) {
                set.remove(&id);
                if set.is_empty() {
                    inner.by_doc.remove(doc);
                }
            }
        }
        let gone = match inner.by_user.get_mut(&conn.user) {
            Some(set) => {
                set.remove(&id);
                set.is_empty()
            }
            None => true,
        };
        if gone {
            inner.by_user.remove(&conn.user);
            inner.last_seen.insert(conn.user, now);
            Some(conn.user)
        } else {
            None
        }
    }

    /// Adds `doc` to the connection's live subscriptions.
    pub fn subscribe(&self, id: ConnId, doc: DocId) {
        let mut inner = self.lock();
        if let Some(conn) = inner.conns.get_mut(&id) {
            conn.docs.insert(doc);
            inner.by_doc.entry(doc).or_default().insert(id);
        }
    }

    /// Removes `doc` from the connection's live subscriptions.
    pub fn unsubscribe(&self, id: ConnId, doc: DocId) {
        let mut inner = self.lock();
        if let Some(conn) = inner.conns.get_mut(&id) {
            conn.docs.remove(&doc);
        }
        if let Some(set) = inner.by_doc.get_mut(&doc) {
            set.remove(&id);
            if set.is_empty() {
                inner.by_doc.remove(&doc);
            }
        }
    }

    /// Queues a chunk for every subscriber of `doc` except `except` (the pusher).
    /// Returns how many connections it was queued for.
    pub fn fan_out(&self, doc: DocId, seq: Seq, frame: Bytes, except: ConnId) -> usize {
        let inner = self.lock();
        let Some(subs) = inner.by_doc.get(&doc) else {
            return 0;
        };
        let live = Arc::new(LiveChunk { doc, seq, frame });
        let mut n = 0;
        for id in subs.iter().filter(|&&id| id != except) {
            if let Some(conn) = inner.conns.get(id)
                && deliver(*id, conn, HubMsg::Chunk(Arc::clone(&live)))
            {
                n += 1;
            }
        }
        n
    }

    /// Whether any connection here subscribes to `doc`.
    pub fn has_subscribers(&self, doc: DocId) -> bool {
        self.lock().by_doc.contains_key(&doc)
    }

    /// Queues `msg` for every connection subscribed to `doc`.
    pub fn send_to_doc(&self, doc: DocId, msg: &HubMsg) {
        self.send_to_docs([doc], msg);
    }

    /// Sends `msg` once to every connection subscribed to any of `docs` (a connection
    /// subscribed to several gets it once: a re-check reads every subscription).
    pub fn send_to_docs(&self, docs: impl IntoIterator<Item = DocId>, msg: &HubMsg) {
        let inner = self.lock();
        let mut sent = HashSet::new();
        for doc in docs {
            for id in inner.by_doc.get(&doc).into_iter().flatten() {
                if sent.insert(*id)
                    && let Some(conn) = inner.conns.get(id)
                {
                    deliver(*id, conn, msg.clone());
                }
            }
        }
    }

    /// Closes every connection with a goodbye (the relay cannot serve them now).
    pub fn close_all(&self, reason: ErrorCode, message: &str) {
        let inner = self.lock();
        let msg = HubMsg::close(reason, message);
        for (id, conn) in &inner.conns {
            if !deliver(*id, conn, msg.clone()) {
                conn.cancel.cancel();
            }
        }
    }

    /// Queues `msg` for every connection of each of `users`.
    pub fn send_to_users<'a>(&self, users: impl IntoIterator<Item = &'a UserId>, msg: &HubMsg) {
        let inner = self.lock();
        let mut done = HashSet::new();
        for user in users {
            if !done.insert(*user) {
                continue;
            }
            for id in inner.by_user.get(user).into_iter().flatten() {
                if let Some(conn) = inner.conns.get(id) {
                    deliver(*id, conn, msg.clone());
                }
            }
        }
    }

    /// Queues `msg` for every connection of `user` except `except`.
    pub fn send_to_user_except(&self, user: &UserId, except: ConnId, msg: &HubMsg) {
        let inner = self.lock();
        for id in inner.by_user.get(user).into_iter().flatten() {
            if *id != except
                && let Some(conn) = inner.conns.get(id)
            {
                deliver(*id, conn, msg.clone());
            }
        }
    }

    /// Marks every connection of `device` revoked and closes it with a goodbye. Call it
    /// after the revocation is committed.
    pub fn close_device(&self, device: DeviceId, reason: ErrorCode, message: &str) {
        let inner = self.lock();
        let msg = HubMsg::close(reason, message);
        for (id, conn) in inner.conns.iter().filter(|(_, c)| c.device == device) {
            conn.revoked.cancel();
            if !deliver(*id, conn, msg.clone()) {
                conn.cancel.cancel();
            }
        }
    }

    /// Whether `user` has a connection now.
    pub fn is_online(&self, user: &UserId) -> bool {
        self.lock().by_user.contains_key(user)
    }

    /// Which of `user`'s devices are connected now.
    pub fn online_devices(&self, user: &UserId) -> HashSet<DeviceId> {
        let inner = self.lock();
        inner
            .by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| inner.conns.get(id).map(|c| c.device))
            .collect()
    }

    /// When `user`'s last connection closed, since this process started.
    pub fn last_seen(&self, user: &UserId) -> Option<UnixMillis> {
        self.lock().last_seen.get(user).copied()
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }
}

/// Queues `msg` for `conn`; a full queue cancels the connection. Returns whether it
/// was queued.
fn deliver(id: ConnId, conn: &Conn, msg: HubMsg) -> bool {
    match conn.tx.try_send(msg) {
        Ok(()) => true,
        Err(TrySendError::Full) => {
            tracing::warn!(conn = id, user = %conn.user, "connection too slow; closing it");
            conn.cancel.cancel();
            false
        }
        Err(TrySendError::Closed) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: UserId = UserId([1; 16]);
    const BOB: UserId = UserId([2; 16]);
    const DOC: DocId = DocId([7; 16]);

    #[test]
    fn a_hub_message_is_two_words() {
        // A connection's queue holds its messages inline (`hub/queue.rs`); a payload
        // inline would put kilobytes on every connection with messages waiting.
        assert!(size_of::<HubMsg>() <= 16);
    }

    #[test]
    fn fan_out_reaches_other_subscribers_only() {
        let hub = Hub::new(16);
        let (a, mut a_rx) = hub.register(ALICE, DeviceId([1; 16]), ConnTokens::default());
        let (b, mut b_rx) = hub.register(BOB, DeviceId([2; 16]), ConnTokens::default());
        let (_c, mut c_rx) = hub.register(BOB, DeviceId([3; 16]), ConnTokens::default());
        assert!(a.came_online && b.came_online);
        hub.subscribe(a.id, DOC);
        hub.subscribe(b.id, DOC);
        assert_eq!(hub.fan_out(DOC, 1, Bytes::from_static(b"x"), a.id), 1);
        assert!(matches!(b_rx.try_recv(), Some(HubMsg::Chunk(c)) if c.seq == 1));
        assert!(a_rx.try_recv().is_none());
        assert!(c_rx.try_recv().is_none());
        hub.unsubscribe(b.id, DOC);
        assert_eq!(hub.fan_out(DOC, 2, Bytes::from_static(b"y"), a.id), 0);
    }

    #[test]
    fn presence_follows_the_last_connection() {
        let hub = Hub::new(16);
        let (a1, _r1) = hub.register(ALICE, DeviceId([1; 16]), ConnTokens::default());
        let (a2, _r2) = hub.register(ALICE, DeviceId([2; 16]), ConnTokens::default());
        assert!(!a2.came_online);
        assert_eq!(hub.unregister(a1.id, 5), None);
        assert!(hub.is_online(&ALICE));
        assert_eq!(hub.unregister(a2.id, 9), Some(ALICE));
        assert!(!hub.is_online(&ALICE));
        assert_eq!(hub.last_seen(&ALICE), Some(9));
    }

    #[test]
    fn a_full_queue_cancels_the_slow_connection() {
        let hub = Hub::new(16);
        let cancel = CancellationToken::new();
        let tokens = ConnTokens {
            cancel: cancel.clone(),
            ..ConnTokens::default()
        };
        let (a, mut rx) = hub.register(ALICE, DeviceId([1; 16]), tokens);
        hub.subscribe(a.id, DOC);
        for seq in 1..=16 {
            assert_eq!(hub.fan_out(DOC, seq, Bytes::new(), 0), 1);
        }
        assert!(!cancel.is_cancelled(), "sixteen fit");
        assert_eq!(hub.fan_out(DOC, 17, Bytes::new(), 0), 0);
        assert!(cancel.is_cancelled());
        // What was queued stays, in order; the hub never waited.
        for seq in 1..=16 {
            assert!(matches!(rx.try_recv(), Some(HubMsg::Chunk(c)) if c.seq == seq));
        }
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn closing_a_device_marks_its_connections_revoked() {
        let hub = Hub::new(16);
        let phone = ConnTokens::default();
        let laptop = ConnTokens::default();
        let (_, mut phone_rx) = hub.register(ALICE, DeviceId([1; 16]), phone.clone());
        let (_, _laptop_rx) = hub.register(ALICE, DeviceId([2; 16]), laptop.clone());
        hub.close_device(DeviceId([1; 16]), ErrorCode::DeviceRevoked, "revoked");
        assert!(phone.revoked.is_cancelled());
        assert!(matches!(phone_rx.try_recv(), Some(HubMsg::Close(_))));
        assert!(!laptop.revoked.is_cancelled());
    }
}
