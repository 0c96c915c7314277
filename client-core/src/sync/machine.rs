//! [`SyncMachine`]: the sans-IO protocol state machine of one device's connection.
//!
//! It never touches a socket, a clock, a random generator or the store: the host
//! passes the time and the events in, and executes the [`Effects`] that come out.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use doran_protocol::{
    ClientFrame, DocId, ErrorCode, ErrorFrame, FamilyId, MemberInfo, MembershipChange,
    PROTOCOL_VERSION, Request, RequestId, Response, Seq, ServerEvent, ServerFrame, Subscription,
    UserId, limits::MAX_SUBSCRIPTIONS_PER_FRAME, signing,
};

use super::{
    Apply, Backoff, BackoffConfig, Compact, DocKind, Effects, Fatal, RequestOutcome, SignedIn,
    SnapshotRef, SyncStatus,
};
use crate::{account::DeviceKeys, store::OutboxEntry};

/// How the device proves who it is after the relay's challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInAs {
    /// A known device of a known user (`SignIn`).
    Known {
        /// The user.
        user: UserId,
    },
    /// A new user with this device as the first (`Register`); needs the user key.
    Register {
        /// The email label.
        email: String,
        /// The nickname.
        nickname: String,
        /// The personal document the device made for the user.
        personal_doc: DocId,
    },
    /// A new device with the user key restored from the recovery phrase (`Recover`).
    Recover,
    /// A new device with a link code from a signed-in device (`LinkDevice`).
    Link {
        /// The code.
        code: String,
    },
}

/// Tunables of the machine. The defaults suit the apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// The `Hello.client` label (app, version, platform).
    pub client: String,
    /// How many pushed chunks may await their ack at once.
    pub max_in_flight: usize,
    /// How many outbox entries to ask the host for at a time.
    pub outbox_batch: usize,
    /// Ask for a snapshot once a family document's relay log holds more than this many
    /// chunks after its last snapshot.
    pub compact_after: u64,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// Send a `Ping` after this long without a frame, in ms.
    pub ping_after_ms: u64,
    /// Give a connection up after this long without any frame (or before sign-in
    /// completes), in ms.
    pub dead_after_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            client: format!("dorandoran-core/{}", env!("CARGO_PKG_VERSION")),
            max_in_flight: 32,
            outbox_batch: 64,
            compact_after: 1000,
            backoff: BackoffConfig::default(),
            ping_after_ms: 25_000,
            dead_after_ms: 60_000,
        }
    }
}

/// A document's resume point, as the host's store has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocCursor {
    /// The document.
    pub doc: DocId,
    /// The last relay seq the store holds (0: none).
    pub cursor: Seq,
    /// The seq covered by the relay's latest snapshot as this device last heard
    /// (0: none known). Only used to decide when to compact.
    pub snapshot_covers: Seq,
}

/// What happened, as the host tells the machine.
// Events are moved in once and matched at once; boxing frames would only cost an
// allocation per frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The websocket is open. `docs` are the resume points of every document in the
    /// store (read them fresh on every connection).
    Connected {
        /// The store's cursors.
        docs: Vec<DocCursor>,
    },
    /// A frame from the relay.
    Frame(ServerFrame),
    /// The websocket closed or failed.
    Disconnected {
        /// Why, for logs.
        reason: String,
    },
    /// Connecting failed (no websocket was opened).
    ConnectFailed {
        /// Why, for logs.
        reason: String,
    },
    /// A local edit was committed to the store (the outbox grew).
    LocalChange,
    /// Time passed; call about once a second.
    Tick,
    /// The oldest outbox entries, answering [`Effects::want_outbox`].
    Outbox(Vec<OutboxEntry>),
    /// A snapshot asked for by [`Effects::compact`] was uploaded.
    SnapshotUploaded {
        /// The document.
        doc: DocId,
        /// What it covers (from the [`Compact`]).
        covers_seq: Seq,
        /// The blob.
        blob: doran_protocol::BlobHash,
        /// Its size.
        len: u64,
    },
    /// A compaction could not be prepared (save or upload failed).
    CompactFailed {
        /// The document.
        doc: DocId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Offline,
    AwaitChallenge,
    AwaitSignedIn,
    SignedIn,
    Stopped,
}

#[derive(Debug, Clone)]
struct DocState {
    kind: DocKind,
    /// Every seq up to here is in the device's document (received, or its own).
    cursor: Seq,
    snapshot_covers: Seq,
    /// Own chunks acked above the cursor.
    own_acked: BTreeSet<Seq>,
    caught_up: bool,
    compacting: bool,
}

/// Why the machine sent a request of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Internal {
    ListFamilies,
}

/// The sync protocol of one device, as a deterministic state machine. See the
/// [module docs](super) for the host's loop.
#[derive(Debug)]
pub struct SyncMachine {
    keys: DeviceKeys,
    sign_in: SignInAs,
    config: SyncConfig,
    backoff: Backoff,
    conn: Conn,
    me: Option<UserId>,
    stored: HashMap<DocId, DocCursor>,
    docs: BTreeMap<DocId, DocState>,
    families_listed: bool,
    next_request: u32,
    internal: HashMap<RequestId, Internal>,
    /// Host requests sent and not yet answered.
    outstanding: BTreeSet<RequestId>,
    /// Host requests waiting for the sign-in.
    queued_requests: Vec<(RequestId, Request)>,
    queue: VecDeque<OutboxEntry>,
    in_flight: Vec<(DocId, doran_protocol::ChunkId)>,
    /// Highest outbox id queued on this connection.
    last_queued: Option<u64>,
    outbox_requested: bool,
    outbox_more: bool,
    last_frame_at: u64,
    last_ping_at: u64,
    next_nonce: u64,
    status: SyncStatus,
    server_id: Option<String>,
}

impl SyncMachine {
    /// A machine for the device with `keys`, signing in as `sign_in`; `seed` drives the
    /// reconnect jitter.
    pub fn new(keys: DeviceKeys, sign_in: SignInAs, config: SyncConfig, seed: u64) -> Self {
        let me = match &sign_in {
            SignInAs::Known { user } => Some(*user),
            _ => None,
        };
        SyncMachine {
            backoff: Backoff::new(config.backoff, seed),
            keys,
            sign_in,
            config,
            conn: Conn::Offline,
            me,
            stored: HashMap::new(),
            docs: BTreeMap::new(),
            families_listed: false,
            next_request: 1,
            internal: HashMap::new(),
            outstanding: BTreeSet::new(),
            queued_requests: Vec::new(),
            queue: VecDeque::new(),
            in_flight: Vec::new(),
            last_queued: None,
            outbox_requested: false,
            outbox_more: false,
            last_frame_at: 0,
            last_ping_at: 0,
            next_nonce: 1,
            status: SyncStatus::Offline,
            server_id: None,
        }
    }

    /// The current status.
    pub fn status(&self) -> SyncStatus {
        self.status
    }

    /// The relay's `server_id` from its last challenge (invites sign it).
    pub fn server_id(&self) -> Option<&str> {
        self.server_id.as_deref()
    }

    /// The signed-in user, once known.
    pub fn user(&self) -> Option<UserId> {
        self.me
    }

    /// Whether the machine stopped for good (see [`Effects::fatal`]).
    pub fn is_stopped(&self) -> bool {
        self.conn == Conn::Stopped
    }

    /// The documents being synced and their cursors (for diagnostics and tests).
    pub fn cursors(&self) -> Vec<(DocId, Seq)> {
        self.docs.iter().map(|(d, s)| (*d, s.cursor)).collect()
    }

    /// Sends a request now if signed in, or as soon as the sign-in completes. Its
    /// outcome comes back in [`Effects::answered`] under the returned id; a request
    /// outstanding when the connection drops is answered
    /// [`RequestOutcome::Disconnected`].
    pub fn request(&mut self, now_ms: u64, body: Request) -> (RequestId, Effects) {
        let id = self.next_id();
        let mut fx = Effects::default();
        match self.conn {
            Conn::SignedIn => {
                self.outstanding.insert(id);
                fx.send.push(ClientFrame::Request { id, body });
            }
            Conn::Stopped => fx.answered.push((id, RequestOutcome::Disconnected)),
            _ => self.queued_requests.push((id, body)),
        }
        self.finish(now_ms, &mut fx);
        (id, fx)
    }

    /// Handles one event and says what to do.
    pub fn handle(&mut self, now_ms: u64, event: Event) -> Effects {
        let mut fx = Effects::default();
        match event {
            Event::Connected { docs } => self.on_connected(now_ms, docs, &mut fx),
            Event::Frame(frame) => {
                self.last_frame_at = now_ms;
                self.on_frame(frame, &mut fx);
            }
            Event::Disconnected { reason } => {
                tracing::debug!(%reason, "disconnected");
                self.connection_over(None, &mut fx);
            }
            Event::ConnectFailed { reason } => {
                tracing::debug!(%reason, "could not connect");
                if self.conn != Conn::Stopped {
                    self.conn = Conn::Offline;
                    fx.reconnect_after = Some(self.backoff.next_delay());
                }
            }
            Event::LocalChange => {
                if self.conn == Conn::SignedIn {
                    self.outbox_more = true;
                    self.pump(&mut fx);
                }
            }
            Event::Tick => self.on_tick(now_ms, &mut fx),
            Event::Outbox(entries) => self.on_outbox(entries, &mut fx),
            Event::SnapshotUploaded {
                doc,
                covers_seq,
                blob,
                len,
            } => {
                if self.conn == Conn::SignedIn && self.docs.get(&doc).is_some_and(|d| d.compacting)
                {
                    fx.send.push(ClientFrame::PushSnapshot {
                        doc,
                        covers_seq,
                        blob,
                        len,
                    });
                }
            }
            Event::CompactFailed { doc } => self.compact_failed(doc),
        }
        self.finish(now_ms, &mut fx);
        fx
    }

    // ----- connection -----

    fn on_connected(&mut self, now_ms: u64, docs: Vec<DocCursor>, fx: &mut Effects) {
        if self.conn == Conn::Stopped {
            fx.close = true;
            return;
        }
        self.stored = docs.into_iter().map(|d| (d.doc, d)).collect();
        self.reset_connection();
        self.conn = Conn::AwaitChallenge;
        self.last_frame_at = now_ms;
        self.last_ping_at = now_ms;
        fx.send.push(ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: self.config.client.clone(),
        });
    }

    fn reset_connection(&mut self) {
        self.docs.clear();
        self.families_listed = false;
        self.internal.clear();
        self.queue.clear();
        self.in_flight.clear();
        self.last_queued = None;
        self.outbox_requested = false;
        self.outbox_more = true;
    }

    /// The connection ended (`goodbye` is the relay's reason when it said one).
    fn connection_over(
        &mut self,
        goodbye: Option<(ErrorCode, String, Option<u64>)>,
        fx: &mut Effects,
    ) {
        if matches!(self.conn, Conn::Offline | Conn::Stopped) {
            return;
        }
        for id in std::mem::take(&mut self.outstanding) {
            fx.answered.push((id, RequestOutcome::Disconnected));
        }
        self.reset_connection();
        fx.close = true;
        let never = |c: ErrorCode| {
            matches!(
                c,
                ErrorCode::DeviceRevoked | ErrorCode::UnsupportedProtocolVersion
            )
        };
        match goodbye {
            Some((code, message, _)) if never(code) => self.stop(code, message, fx),
            Some((_, _, retry_after)) => {
                self.conn = Conn::Offline;
                let delay = self.backoff.next_delay();
                fx.reconnect_after = Some(delay.max(retry_after.unwrap_or(0)));
            }
            None => {
                self.conn = Conn::Offline;
                fx.reconnect_after = Some(self.backoff.next_delay());
            }
        }
    }

    fn stop(&mut self, code: ErrorCode, message: String, fx: &mut Effects) {
        self.conn = Conn::Stopped;
        fx.close = true;
        fx.reconnect_after = None;
        fx.fatal = Some(Fatal { code, message });
        for (id, _) in std::mem::take(&mut self.queued_requests) {
            fx.answered.push((id, RequestOutcome::Disconnected));
        }
        for id in std::mem::take(&mut self.outstanding) {
            fx.answered.push((id, RequestOutcome::Disconnected));
        }
    }

    fn on_tick(&mut self, now_ms: u64, fx: &mut Effects) {
        match self.conn {
            Conn::Offline | Conn::Stopped => {}
            _ if now_ms.saturating_sub(self.last_frame_at) >= self.config.dead_after_ms => {
                tracing::debug!("no frame for too long; reconnecting");
                self.connection_over(None, fx);
            }
            Conn::SignedIn
                if now_ms.saturating_sub(self.last_frame_at) >= self.config.ping_after_ms
                    && now_ms.saturating_sub(self.last_ping_at) >= self.config.ping_after_ms =>
            {
                self.last_ping_at = now_ms;
                let nonce = self.next_nonce;
                self.next_nonce += 1;
                fx.send.push(ClientFrame::Ping { nonce });
            }
            _ => {}
        }
    }

    // ----- frames -----

    fn on_frame(&mut self, frame: ServerFrame, fx: &mut Effects) {
        match frame {
            ServerFrame::Challenge(challenge) => {
                if self.conn != Conn::AwaitChallenge {
                    return;
                }
                self.server_id = Some(challenge.server_id.clone());
                match self.sign_in_frame(&challenge) {
                    Ok(frame) => {
                        self.conn = Conn::AwaitSignedIn;
                        fx.send.push(frame);
                    }
                    Err(message) => self.stop(ErrorCode::BadSignature, message.into(), fx),
                }
            }
            ServerFrame::SignedIn {
                user,
                device,
                server_time,
                personal_doc,
                families,
            } => self.on_signed_in(
                SignedIn {
                    user,
                    device,
                    personal_doc,
                    families,
                    server_time,
                },
                fx,
            ),
            ServerFrame::Response { id, body } => self.on_response(id, body, fx),
            ServerFrame::Ack { doc, chunk, seq } => self.on_ack(doc, chunk, seq, fx),
            ServerFrame::Chunk {
                doc,
                seq,
                chunk,
                bytes,
            } => self.on_chunk(doc, seq, chunk, bytes, fx),
            ServerFrame::Snapshot {
                doc,
                covers_seq,
                blob,
                len,
            } => {
                let Some(state) = self.docs.get_mut(&doc) else {
                    return;
                };
                state.snapshot_covers = state.snapshot_covers.max(covers_seq);
                if covers_seq <= state.cursor {
                    return;
                }
                state.cursor = covers_seq;
                let kind = state.kind;
                fx.apply.push(Apply {
                    doc,
                    kind,
                    snapshot: Some(SnapshotRef {
                        blob,
                        len,
                        covers_seq,
                    }),
                    chunks: Vec::new(),
                    cursor: covers_seq,
                });
            }
            ServerFrame::CaughtUp { doc, .. } => {
                if let Some(state) = self.docs.get_mut(&doc) {
                    state.caught_up = true;
                }
                self.maybe_compact(doc, fx);
            }
            ServerFrame::SnapshotAccepted { doc, covers_seq } => {
                if let Some(state) = self.docs.get_mut(&doc) {
                    state.compacting = false;
                    state.snapshot_covers = state.snapshot_covers.max(covers_seq);
                }
                fx.snapshot_accepted.push((doc, covers_seq));
            }
            ServerFrame::Event(event) => self.on_event(event, fx),
            ServerFrame::Pong { .. } => {}
            ServerFrame::Error(e) => self.on_error(e, fx),
            ServerFrame::Goodbye {
                reason,
                message,
                retry_after_ms,
            } => self.connection_over(Some((reason, message, retry_after_ms)), fx),
        }
    }

    fn sign_in_frame(
        &self,
        challenge: &doran_protocol::Challenge,
    ) -> Result<ClientFrame, &'static str> {
        let k = &self.keys;
        let device_key = k.device_public();
        Ok(match &self.sign_in {
            SignInAs::Known { user } => ClientFrame::SignIn {
                user: *user,
                device: k.device,
                signature: k.sign_device(&signing::signin_message(challenge, user, &k.device)),
            },
            SignInAs::Register {
                email,
                nickname,
                personal_doc,
            } => {
                let user_key = k.user_public().ok_or("registering needs the user key")?;
                let (user_msg, device_msg) = (
                    signing::register_user_message(
                        challenge,
                        email,
                        nickname,
                        personal_doc,
                        &user_key,
                        &k.device,
                        &device_key,
                    ),
                    signing::register_device_message(
                        challenge,
                        email,
                        nickname,
                        personal_doc,
                        &user_key,
                        &k.device,
                        &device_key,
                    ),
                );
                ClientFrame::Register {
                    email: email.clone(),
                    nickname: nickname.clone(),
                    personal_doc: *personal_doc,
                    user_key,
                    device: k.device,
                    device_key,
                    user_signature: k.sign_user(&user_msg).ok_or("no user key")?,
                    device_signature: k.sign_device(&device_msg),
                }
            }
            SignInAs::Recover => {
                let user_key = k.user_public().ok_or("recovering needs the user key")?;
                let user_msg =
                    signing::recover_user_message(challenge, &user_key, &k.device, &device_key);
                let device_msg =
                    signing::recover_device_message(challenge, &user_key, &k.device, &device_key);
                ClientFrame::Recover {
                    user_key,
                    device: k.device,
                    device_key,
                    user_signature: k.sign_user(&user_msg).ok_or("no user key")?,
                    device_signature: k.sign_device(&device_msg),
                }
            }
            SignInAs::Link { code } => ClientFrame::LinkDevice {
                code: code.clone(),
                device: k.device,
                device_key,
                signature: k.sign_device(&signing::link_device_message(
                    challenge,
                    code,
                    &k.device,
                    &device_key,
                )),
            },
        })
    }

    fn on_signed_in(&mut self, info: SignedIn, fx: &mut Effects) {
        if self.conn != Conn::AwaitSignedIn {
            return;
        }
        self.conn = Conn::SignedIn;
        self.backoff.reset();
        self.me = Some(info.user);
        // Reconnections sign in as the known device.
        self.sign_in = SignInAs::Known { user: info.user };
        let mut subs = Vec::new();
        self.want(info.personal_doc, DocKind::Personal(info.user), &mut subs);
        for f in &info.families {
            self.want(DocId::from(*f), DocKind::Family(*f), &mut subs);
        }
        Self::subscribe(subs, fx);
        let id = self.next_id();
        self.internal.insert(id, Internal::ListFamilies);
        fx.send.push(ClientFrame::Request {
            id,
            body: Request::ListFamilies,
        });
        for (id, body) in std::mem::take(&mut self.queued_requests) {
            self.outstanding.insert(id);
            fx.send.push(ClientFrame::Request { id, body });
        }
        fx.signed_in = Some(info);
        self.pump(fx);
    }

    fn on_response(&mut self, id: RequestId, body: Response, fx: &mut Effects) {
        if let Some(Internal::ListFamilies) = self.internal.remove(&id) {
            if let Response::Families(list) = body {
                let mut subs = Vec::new();
                for f in &list {
                    self.want_family(f.family, &f.members, &mut subs);
                }
                Self::subscribe(subs, fx);
            }
            self.families_listed = true;
            return;
        }
        if !self.outstanding.remove(&id) {
            return;
        }
        let mut subs = Vec::new();
        match &body {
            Response::FamilyCreated(f) => self.want_family(f.family, &f.members, &mut subs),
            Response::InviteAnswered {
                family: Some(f), ..
            } => self.want_family(f.family, &f.members, &mut subs),
            _ => {}
        }
        Self::subscribe(subs, fx);
        fx.answered.push((id, RequestOutcome::Response(body)));
    }

    fn on_event(&mut self, event: ServerEvent, fx: &mut Effects) {
        match &event {
            ServerEvent::MembershipChanged {
                family,
                members,
                change,
            } => {
                let gone = match change {
                    MembershipChange::Left { user } | MembershipChange::Removed { user, .. } => {
                        Some(*user) == self.me
                    }
                    _ => false,
                };
                if gone {
                    self.drop_doc(DocId::from(*family), ErrorCode::Forbidden, fx);
                } else {
                    let mut subs = Vec::new();
                    self.want_family(*family, members, &mut subs);
                    Self::subscribe(subs, fx);
                }
            }
            ServerEvent::FamilyDeleted { family } => {
                self.drop_doc(DocId::from(*family), ErrorCode::NotFound, fx);
            }
            _ => {}
        }
        fx.events.push(event);
    }

    fn on_error(&mut self, e: ErrorFrame, fx: &mut Effects) {
        if let Some(id) = e.request {
            if self.internal.remove(&id).is_some() {
                // Our own ListFamilies failed: go on with what SignedIn said.
                self.families_listed = true;
                fx.errors.push(e);
            } else if self.outstanding.remove(&id) {
                fx.answered.push((id, RequestOutcome::Refused(e)));
            } else {
                fx.errors.push(e);
            }
            return;
        }
        if self.conn == Conn::AwaitSignedIn && e.doc.is_none() {
            // The sign-in was refused.
            let retry = e.code.is_transient()
                || matches!(
                    e.code,
                    ErrorCode::ChallengeExpired | ErrorCode::ChallengeReplayed
                );
            if retry {
                fx.errors.push(e);
                self.connection_over(None, fx);
            } else {
                self.stop(e.code, e.message, fx);
            }
            return;
        }
        match (e.doc, e.chunk) {
            (Some(doc), Some(chunk)) => {
                self.in_flight.retain(|&(d, c)| (d, c) != (doc, chunk));
                let keep = e.code.is_transient() || e.code == ErrorCode::QuotaExceeded;
                if !keep {
                    fx.refused.push((doc, chunk, e.code));
                }
                // A kept entry stays in the outbox and is pushed again on the next
                // connection.
                fx.errors.push(e);
                self.pump(fx);
            }
            (Some(doc), None) => {
                let compacting = self
                    .docs
                    .get(&doc)
                    .is_some_and(|d| d.compacting && d.caught_up);
                let snapshot_error = compacting
                    && matches!(
                        e.code,
                        ErrorCode::Conflict | ErrorCode::NotFound | ErrorCode::InvalidInput
                    );
                if snapshot_error || e.code.is_transient() {
                    self.compact_failed(doc);
                    fx.errors.push(e);
                } else if self.docs.contains_key(&doc) {
                    self.drop_doc(doc, e.code, fx);
                } else {
                    fx.errors.push(e);
                }
            }
            _ => fx.errors.push(e),
        }
    }

    // ----- documents -----

    fn want_family(
        &mut self,
        family: FamilyId,
        members: &[MemberInfo],
        subs: &mut Vec<Subscription>,
    ) {
        self.want(DocId::from(family), DocKind::Family(family), subs);
        for m in members {
            if Some(m.user) != self.me {
                self.want(m.personal_doc, DocKind::Personal(m.user), subs);
            }
        }
    }

    /// Starts syncing `doc` unless it already is; adds its subscription to `subs`.
    fn want(&mut self, doc: DocId, kind: DocKind, subs: &mut Vec<Subscription>) {
        if self.conn != Conn::SignedIn || self.docs.contains_key(&doc) {
            return;
        }
        let stored = self.stored.get(&doc).copied();
        let cursor = stored.map_or(0, |s| s.cursor);
        self.docs.insert(
            doc,
            DocState {
                kind,
                cursor,
                snapshot_covers: stored.map_or(0, |s| s.snapshot_covers),
                own_acked: BTreeSet::new(),
                caught_up: false,
                compacting: false,
            },
        );
        subs.push(Subscription { doc, since: cursor });
    }

    fn subscribe(subs: Vec<Subscription>, fx: &mut Effects) {
        for part in subs.chunks(MAX_SUBSCRIPTIONS_PER_FRAME) {
            fx.send.push(ClientFrame::Subscribe {
                docs: part.to_vec(),
            });
        }
    }

    fn drop_doc(&mut self, doc: DocId, code: ErrorCode, fx: &mut Effects) {
        if let Some(state) = self.docs.remove(&doc) {
            // Remember the cursor for a later re-subscription on this connection.
            self.stored.insert(
                doc,
                DocCursor {
                    doc,
                    cursor: state.cursor,
                    snapshot_covers: state.snapshot_covers,
                },
            );
            if self.conn == Conn::SignedIn {
                fx.send.push(ClientFrame::Unsubscribe { docs: vec![doc] });
            }
            fx.dropped.push((doc, code));
        }
    }

    fn on_chunk(
        &mut self,
        doc: DocId,
        seq: Seq,
        chunk: doran_protocol::ChunkId,
        bytes: Vec<u8>,
        fx: &mut Effects,
    ) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        if seq <= state.cursor {
            // Redelivered (the relay sends each subscription in seq order).
            return;
        }
        state.cursor = seq;
        let mut chunks = Vec::new();
        let valid = !bytes.is_empty()
            && bytes.len() <= doran_protocol::limits::MAX_CHUNK_BYTES
            && chunk.verifies(&bytes);
        if valid {
            chunks.push((seq, bytes));
        } else {
            fx.errors.push(
                ErrorFrame::new(
                    ErrorCode::HashMismatch,
                    "the relay sent a bad chunk; skipped",
                )
                .for_doc(doc)
                .for_chunk(chunk),
            );
        }
        advance_over_own(state);
        fx.apply.push(Apply {
            doc,
            kind: state.kind,
            snapshot: None,
            chunks,
            cursor: state.cursor,
        });
        self.maybe_compact(doc, fx);
    }

    fn on_ack(&mut self, doc: DocId, chunk: doran_protocol::ChunkId, seq: Seq, fx: &mut Effects) {
        self.in_flight.retain(|&(d, c)| (d, c) != (doc, chunk));
        fx.acked.push((doc, chunk, seq));
        if let Some(state) = self.docs.get_mut(&doc)
            && seq > state.cursor
        {
            state.own_acked.insert(seq);
            let before = state.cursor;
            advance_over_own(state);
            if state.cursor > before {
                fx.apply.push(Apply {
                    doc,
                    kind: state.kind,
                    snapshot: None,
                    chunks: Vec::new(),
                    cursor: state.cursor,
                });
            }
            self.maybe_compact(doc, fx);
        }
        self.pump(fx);
    }

    fn maybe_compact(&mut self, doc: DocId, fx: &mut Effects) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let DocKind::Family(family) = state.kind else {
            return;
        };
        if state.caught_up
            && !state.compacting
            && state.cursor.saturating_sub(state.snapshot_covers) > self.config.compact_after
        {
            state.compacting = true;
            fx.compact.push(Compact {
                doc,
                family,
                covers_seq: state.cursor,
            });
        }
    }

    fn compact_failed(&mut self, doc: DocId) {
        if let Some(state) = self.docs.get_mut(&doc)
            && state.compacting
        {
            state.compacting = false;
            // Try again only after as many chunks again.
            state.snapshot_covers = state.cursor;
        }
    }

    // ----- outbox -----

    fn on_outbox(&mut self, entries: Vec<OutboxEntry>, fx: &mut Effects) {
        if !self.outbox_requested {
            return;
        }
        self.outbox_requested = false;
        let full = entries.len() >= self.config.outbox_batch;
        let mut fresh = false;
        for e in entries {
            if self.last_queued.is_none_or(|last| e.id > last) {
                self.last_queued = Some(e.id);
                self.queue.push_back(e);
                fresh = true;
            }
        }
        // Entries kept after a transient refusal come back in every listing: only a
        // full listing with something new suggests there is more behind it.
        self.outbox_more = full && fresh;
        self.pump(fx);
    }

    /// Pushes queued entries while there is room, and asks for more when the queue is
    /// empty and the store may hold more.
    fn pump(&mut self, fx: &mut Effects) {
        if self.conn != Conn::SignedIn {
            return;
        }
        while self.in_flight.len() < self.config.max_in_flight.max(1) {
            let Some(e) = self.queue.pop_front() else {
                break;
            };
            self.in_flight.push((e.doc, e.chunk));
            fx.send.push(ClientFrame::Push {
                doc: e.doc,
                chunk: e.chunk,
                bytes: e.bytes,
            });
        }
        if self.queue.is_empty()
            && self.outbox_more
            && !self.outbox_requested
            && self.in_flight.len() < self.config.max_in_flight.max(1)
        {
            self.outbox_requested = true;
            fx.want_outbox = Some(self.config.outbox_batch.max(1));
        }
    }

    // ----- bookkeeping -----

    fn next_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request = self.next_request.wrapping_add(1).max(1);
        id
    }

    fn finish(&mut self, _now_ms: u64, fx: &mut Effects) {
        let status = self.compute_status();
        if status != self.status {
            self.status = status;
            fx.status = Some(status);
        }
    }

    fn compute_status(&self) -> SyncStatus {
        match self.conn {
            Conn::Offline | Conn::Stopped => SyncStatus::Offline,
            Conn::AwaitChallenge | Conn::AwaitSignedIn => SyncStatus::Connecting,
            Conn::SignedIn => {
                let done = self.families_listed
                    && self.queue.is_empty()
                    && self.in_flight.is_empty()
                    && !self.outbox_requested
                    && !self.outbox_more
                    && self.docs.values().all(|d| d.caught_up);
                if done {
                    SyncStatus::UpToDate
                } else {
                    SyncStatus::Syncing
                }
            }
        }
    }
}

/// Moves the cursor over this device's own acked chunks that now follow it.
fn advance_over_own(state: &mut DocState) {
    while state.own_acked.remove(&(state.cursor + 1)) {
        state.cursor += 1;
    }
    state.own_acked.retain(|&s| s > state.cursor);
}
