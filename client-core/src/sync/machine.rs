//! [`SyncMachine`]: the sans-IO protocol state machine of one device's connection.
//!
//! It never touches a socket, a clock, a random generator or the store: the host
//! passes the time and the events in, and executes the [`Effects`] that come out.
//!
//! This module holds the types and the entry points ([`SyncMachine::handle`],
//! [`SyncMachine::request`]) and the status; the work is split by concern:
//!
//! - `connection`: hello, sign-in (register, recover, link), keep-alive, the end of a
//!   connection and the stop for good;
//! - `frames`: the relay's frames dispatched, answers to requests, server events and
//!   errors;
//! - `documents`: which documents are synced, subscriptions, cursors, incoming chunks,
//!   snapshots and acks;
//! - `compaction`: when to ask for a snapshot, and its upload and acceptance;
//! - `outbox`: pushing local changes with a bounded number in flight;
//! - `volumes`: a family's per-year volumes opened on the relay, then synced.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use doran_protocol::{
    BlobHash, ClientFrame, DeviceId, DocId, FamilyId, Request, RequestId, Seq, ServerFrame, UserId,
};

use super::{
    Backoff, BackoffConfig, DocKind, Effects, RequestOutcome, SnapshotCheck, SnapshotRef,
    SyncStatus,
};
use crate::{keys::DeviceKeys, store::OutboxEntry};

mod compaction;
mod connection;
mod documents;
mod frames;
mod outbox;
mod volumes;

pub use volumes::{MAX_VOLUME_CONFLICTS, MAX_VOLUME_OPENS, VOLUME_RETRY_MS};

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

/// The longest wait before pushing kept changes again (a log that stays full).
pub const MAX_RETRY_REFUSED_MS: u64 = 5 * 60_000;

/// Tunables of the machine. The defaults suit the apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// The `Hello.client` label (app, version, platform).
    pub client: String,
    /// How many pushed chunks may await their ack at once.
    pub max_in_flight: usize,
    /// How many outbox entries to ask the host for at a time.
    pub outbox_batch: usize,
    /// Ask for a snapshot once the relay log of a family document, or of this user's
    /// personal document, holds more than this many chunks after its last snapshot.
    pub compact_after: u64,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// Send a `Ping` after this long without a frame, in ms.
    pub ping_after_ms: u64,
    /// Give a connection up after this long without any frame (or before sign-in
    /// completes), in ms.
    pub dead_after_ms: u64,
    /// Push again, on the same connection, the local changes the relay asked to have
    /// later (a transient refusal, a full quota or document log) after this long, in
    /// ms, or after the relay's `retry_after_ms` if that is longer; doubled after each
    /// round that brought no ack, up to [`MAX_RETRY_REFUSED_MS`].
    pub retry_refused_after_ms: u64,
    /// Where the device connects: a relay whose id is a URL naming another address is
    /// refused before anything is signed ([`check_server_id`](super::check_server_id);
    /// `ErrorCode::WrongRelay`). `None` checks nothing (tests without sockets).
    pub relay_address: Option<super::RelayAddress>,
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
            retry_refused_after_ms: 10_000,
            relay_address: None,
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
        /// What it covers (from the [`Compact`](super::Compact)).
        covers_seq: Seq,
        /// The blob.
        blob: BlobHash,
        /// Its size.
        len: u64,
    },
    /// A pending snapshot asked for by [`Effects::verify_snapshots`] was checked.
    SnapshotChecked {
        /// The document.
        doc: DocId,
        /// As offered.
        covers_seq: Seq,
        /// As offered.
        blob: BlobHash,
        /// What the device found.
        check: SnapshotCheck,
    },
    /// A compaction failed (the save or the upload): not tried again before a wait
    /// (see [`COMPACT_RETRY_FIRST_MS`]).
    CompactFailed {
        /// The document.
        doc: DocId,
    },
    /// No snapshot of `doc` from this device now (nothing of it stored here, sealed
    /// under keys it has not been given yet, a family sealed since whose clear
    /// chunks this device has not all got): tried again once its log grew again.
    CompactSkipped {
        /// The document.
        doc: DocId,
    },
    /// Snapshot `doc` now if this device may (caught up, not compacting already),
    /// however little its log grew: its family was just sealed, and the relay keeps
    /// its clear chunks until a sealed snapshot replaces them.
    CompactNow {
        /// The document.
        doc: DocId,
    },
    /// The snapshot of an [`Apply`](super::Apply) could not be fetched or verified:
    /// nothing of that apply was stored. The document goes back to its cursor before
    /// the snapshot and is subscribed again after a while; other documents go on.
    SnapshotUnavailable {
        /// The document.
        doc: DocId,
    },
    /// A chunk (or snapshot) of `doc` is sealed under an epoch this device has no
    /// key for yet ([`DocChange::locked_at`](super::DocChange::locked_at)): the
    /// store holds the document up to `cursor`. The document stops there — not
    /// subscribed, not holding up [`SyncStatus::UpToDate`] — until
    /// [`Event::Unlocked`] names it.
    DocLocked {
        /// The document.
        doc: DocId,
        /// The last seq stored.
        cursor: Seq,
    },
    /// The device got keys: these locked documents are subscribed again from where
    /// they stopped.
    Unlocked {
        /// The documents.
        docs: Vec<DocId>,
    },
    /// The years each family's document lists volumes of (`Family::volumes`; issue
    /// 17), as the host has them: after the sign-in, after a family's document
    /// changed, after a local edit. The machine opens each on the relay
    /// (`OpenVolume`) once per connection, and syncs it from then on; a volume's
    /// local changes wait in the outbox until it is open.
    Volumes {
        /// Families and the years they list.
        listed: Vec<(FamilyId, Vec<u16>)>,
    },
}

/// How long a document whose snapshot could not be fetched waits before it is
/// subscribed again the first time: most often the snapshot a catch-up named was
/// replaced by a newer one before it was fetched (the relay serves only the current
/// one), and the next catch-up names that.
pub const SNAPSHOT_RETRY_FIRST_MS: u64 = 1_000;

/// How long a document waits before it is snapshotted again after a snapshot of it
/// failed (its upload, or the relay refused it) — or the relay's hint, if longer;
/// doubled with each failure in a row up to [`COMPACT_RETRY_MAX_MS`]. Each attempt
/// uploads the whole document.
pub const COMPACT_RETRY_FIRST_MS: u64 = 5_000;

/// The longest wait before a document is snapshotted again after failures.
pub const COMPACT_RETRY_MAX_MS: u64 = 10 * 60 * 1000;

/// The longest wait before a document whose snapshot could not be fetched is
/// subscribed again (each failure in a row doubles the wait from
/// [`SNAPSHOT_RETRY_FIRST_MS`]).
pub const SNAPSHOT_RETRY_MS: u64 = 30_000;

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
    /// Starting over after `CursorAhead`: until the catch-up ends, only the chunk
    /// right after the cursor is taken (live chunks sent before the relay saw the new
    /// subscription come again, in order, in the catch-up).
    resetting: bool,
    /// The cursor before the snapshot being applied, to go back to if it cannot be
    /// fetched.
    before_snapshot: Option<Seq>,
    /// Unsubscribed until then (ms) because its snapshot could not be fetched
    /// (`u64::MAX` while locked).
    retry_at: Option<u64>,
    /// Snapshots that could not be fetched in a row (the wait doubles with each).
    snapshot_misses: u32,
    /// No snapshot of it is made before then (ms): one failed.
    compact_after: u64,
    /// Snapshots of it that failed in a row (the wait doubles with each).
    compact_misses: u32,
    /// A snapshot was asked for while it waited after a failed one: made once the
    /// wait is over (at a tick), whether or not anything else asks again.
    compact_wanted: bool,
    /// The relay refused a push with `document_full` (until a snapshot is accepted):
    /// a snapshot that fails is tried again after its wait, not after as many
    /// chunks again, since a full log takes none.
    log_full: bool,
    /// Waiting for end-to-end keys (see [`Event::DocLocked`]).
    locked: bool,
    /// A pending snapshot of another member the relay offered, and who pushed it, to
    /// check once this device holds every chunk it claims to cover.
    offered: Option<(SnapshotRef, UserId)>,
    /// The offer being checked by the host.
    verifying: bool,
    /// The offer last checked, so it is checked once per connection.
    checked: Option<(Seq, BlobHash)>,
}

/// Why the machine sent a request of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Internal {
    ListFamilies,
    /// `ConfirmSnapshot` of the document's pending snapshot covering the seq: once
    /// done, it is the relay's snapshot.
    Confirm(DocId, Seq),
    /// `RejectSnapshot`.
    Reject,
    /// `OpenVolume` of the family's volume of the year: once done, it is synced.
    OpenVolume(FamilyId, u16),
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
    /// This device, once signed in.
    device: Option<DeviceId>,
    stored: HashMap<DocId, DocCursor>,
    docs: BTreeMap<DocId, DocState>,
    families_listed: bool,
    /// The volumes asked for (`OpenVolume`) on this connection: queued, waiting for
    /// the relay, open, or refused.
    volumes_asked: BTreeSet<(FamilyId, u16)>,
    /// Volumes to ask for, first first: this year's (rank 0), next year's (1), then
    /// the past (2), the newest first (see `volumes`).
    volume_queue: BTreeSet<(u8, std::cmp::Reverse<u16>, FamilyId)>,
    /// Volumes to ask for again after a passing refusal: when (ms), which.
    volume_retry: Vec<(u64, FamilyId, u16)>,
    /// How many times each volume was refused `conflict` on this connection (its
    /// family's sealing not taken by the relay yet): asked again a few times only.
    volume_conflicts: HashMap<(FamilyId, u16), u8>,
    /// The relay's year at sign-in: volumes of years after the next are not asked.
    server_year: Option<u16>,
    /// A volume opened while an outbox listing was on its way: the outbox is listed
    /// again from its oldest entry once that listing is in (its changes were left out
    /// of the listings until then).
    relist_outbox: bool,
    next_request: u32,
    internal: HashMap<RequestId, Internal>,
    /// Host requests sent and not yet answered.
    outstanding: BTreeSet<RequestId>,
    /// Host requests waiting for the sign-in.
    queued_requests: Vec<(RequestId, Request)>,
    queue: VecDeque<OutboxEntry>,
    in_flight: Vec<(DocId, doran_protocol::ChunkId)>,
    /// Highest outbox id queued on this connection: the outbox is listed after it.
    last_queued: Option<u64>,
    outbox_requested: bool,
    outbox_more: bool,
    /// When to go through the outbox from its oldest entry again, for the pushes the
    /// relay asked to have later (they stay in the outbox, behind `last_queued`).
    retry_kept_at: Option<u64>,
    /// The wait before the next such round (see `SyncConfig::retry_refused_after_ms`).
    retry_kept_delay: u64,
    /// The relay refused a push for the connection's frame rate: nothing more is pushed
    /// until the kept pushes' round (`retry_kept_at`), as the relay asked.
    pushes_paused: bool,
    last_frame_at: u64,
    /// The time of the event or request being handled (ms).
    now_ms: u64,
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
            retry_kept_delay: config.retry_refused_after_ms,
            keys,
            sign_in,
            config,
            conn: Conn::Offline,
            me,
            device: None,
            stored: HashMap::new(),
            docs: BTreeMap::new(),
            families_listed: false,
            volumes_asked: BTreeSet::new(),
            volume_queue: BTreeSet::new(),
            volume_retry: Vec::new(),
            volume_conflicts: HashMap::new(),
            server_year: None,
            relist_outbox: false,
            next_request: 1,
            internal: HashMap::new(),
            outstanding: BTreeSet::new(),
            queued_requests: Vec::new(),
            queue: VecDeque::new(),
            in_flight: Vec::new(),
            last_queued: None,
            outbox_requested: false,
            outbox_more: false,
            retry_kept_at: None,
            pushes_paused: false,
            last_frame_at: 0,
            now_ms: 0,
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
        self.now_ms = now_ms;
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
        self.now_ms = now_ms;
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
            Event::Tick => {
                self.on_tick(now_ms, &mut fx);
                self.retry_stalled(now_ms, &mut fx);
                self.retry_kept(now_ms, &mut fx);
                self.retry_compactions(&mut fx);
                self.retry_volumes(now_ms, &mut fx);
            }
            Event::SnapshotUnavailable { doc } => {
                self.on_snapshot_unavailable(doc, now_ms, &mut fx)
            }
            Event::DocLocked { doc, cursor } => self.on_doc_locked(doc, cursor, &mut fx),
            Event::Unlocked { docs } => self.on_unlocked(&docs, now_ms, &mut fx),
            Event::Volumes { listed } => self.on_volumes(&listed, &mut fx),
            Event::Outbox(entries) => self.on_outbox(entries, &mut fx),
            Event::SnapshotUploaded {
                doc,
                covers_seq,
                blob,
                len,
            } => self.on_snapshot_uploaded(doc, covers_seq, blob, len, &mut fx),
            Event::CompactFailed { doc } => self.compact_failed(doc, None),
            Event::CompactSkipped { doc } => self.compact_skipped(doc),
            Event::CompactNow { doc } => self.compact_now(doc, &mut fx),
            Event::SnapshotChecked {
                doc,
                covers_seq,
                blob,
                check,
            } => self.on_snapshot_checked(doc, covers_seq, blob, check, &mut fx),
        }
        self.finish(now_ms, &mut fx);
        fx
    }

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
                    && self.internal.is_empty()
                    && self.volume_queue.is_empty()
                    && self.volume_retry.is_empty()
                    && self
                        .docs
                        .values()
                        .all(|d| (d.caught_up || d.locked) && !d.compacting && !d.verifying);
                if done {
                    SyncStatus::UpToDate
                } else {
                    SyncStatus::Syncing
                }
            }
        }
    }
}
