//! What the sync machine asks its host to do: [`Effects`], a plain struct of lists.

use doran_protocol::{
    BlobHash, ChunkId, ClientFrame, DeviceId, DocId, ErrorCode, ErrorFrame, FamilyId,
    HttpSessionKey, RequestId, Response, Seq, ServerEvent, UnixMillis, UserId,
};

use crate::store::BlobOwner;

/// What kind of document a [`DocId`] is, so the host opens it with the right type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    /// A family's shared document (its id is the family id).
    Family(FamilyId),
    /// A user's personal document (this user's, or a co-member's, read-only).
    Personal(UserId),
    /// A family's key log ([`FamilyId::key_log`]): its end-to-end key group's
    /// messages, in the order every device processes them. Never compacted.
    KeyLog(FamilyId),
    /// A family's per-year volume ([`FamilyId::volume`]; issue 17): the family's
    /// calendar entries, missions, photos and voice messages made in that year,
    /// sealed under the family's key group like its document.
    Volume(FamilyId, u16),
}

/// A snapshot to fetch over HTTP and merge before the chunks that follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRef {
    /// The blob holding `Automerge::save()` bytes.
    pub blob: BlobHash,
    /// Its size in bytes.
    pub len: u64,
    /// The last seq it covers.
    pub covers_seq: Seq,
}

/// A chunk from the relay: its seq, the user who pushed it (as the relay recorded it;
/// `None` for a chunk stored before relays recorded authors) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingChunk {
    /// Its seq in the document's log.
    pub seq: Seq,
    /// Who pushed it: every change in it that the device does not have yet must be
    /// written under this user's actor id, and a personal document's chunks must be
    /// its owner's.
    pub author: Option<UserId>,
    /// The chunk.
    pub bytes: Vec<u8>,
}

/// Incoming document data to apply, in order: first the snapshot (if any), then the
/// chunks; then store `cursor` as the document's sync cursor, in the same store
/// transaction as the chunks (`LocalStore::apply_remote_with_view`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apply {
    /// The document.
    pub doc: DocId,
    /// Its kind.
    pub kind: DocKind,
    /// A snapshot to download, verify (blake3) and merge first.
    pub snapshot: Option<SnapshotRef>,
    /// Chunks with their relay seq and author, in order. May be empty (a cursor-only
    /// advance, when the relay acked this device's own chunks).
    pub chunks: Vec<IncomingChunk>,
    /// The cursor to store once everything above is applied.
    pub cursor: Seq,
}

/// Outbox entries to read ([`SyncHost::outbox`](super::SyncHost::outbox)) and hand
/// back as [`Event::Outbox`](super::Event::Outbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxWanted {
    /// Only entries with an id above this one (`None`: from the oldest).
    pub after: Option<u64>,
    /// At most this many, oldest first.
    pub limit: usize,
}

/// A compaction to prepare: save the document, upload the bytes as a blob of its
/// owner ([`Compact::owner`]: `PUT /blobs/{hash}?family=` for a family document,
/// `?owner=me` for this user's personal document), then hand
/// [`Event::SnapshotUploaded`](super::Event::SnapshotUploaded) back to the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compact {
    /// The document to save.
    pub doc: DocId,
    /// Its kind: a family's document, or this user's own personal document.
    pub kind: DocKind,
    /// The seq the snapshot will declare it covers: every chunk up to it is in the
    /// device's document.
    pub covers_seq: Seq,
}

impl Compact {
    /// Whose blob the snapshot is: the family's, or (the personal document) the
    /// user's own, readable by everyone who shares a family with them.
    pub fn owner(&self) -> BlobOwner {
        match self.kind {
            DocKind::Family(family) | DocKind::Volume(family, _) => BlobOwner::Family(family),
            DocKind::Personal(_) => BlobOwner::Me,
            // Never compacted (the relay forbids it); named for completeness.
            DocKind::KeyLog(family) => BlobOwner::Family(family),
        }
    }
}

/// A snapshot another member pushed and the relay holds as *pending*: fetch it
/// (`GET /blobs/{blob}`, at most `len` bytes, verified), check it with
/// [`SyncHost::check_snapshot`](super::SyncHost::check_snapshot) and hand the verdict
/// back as [`Event::SnapshotChecked`](super::Event::SnapshotChecked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifySnapshot {
    /// The document.
    pub doc: DocId,
    /// Its kind (which rules its changes follow).
    pub kind: DocKind,
    /// The snapshot offered.
    pub snapshot: SnapshotRef,
    /// The user who pushed it: the only one whose changes it may hold that this
    /// device lacks.
    pub by: UserId,
}

/// What a device found in a pending snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotCheck {
    /// It holds every change this device got from chunks up to its `covers_seq`:
    /// confirm it.
    Contains,
    /// It lacks changes this device holds (how many): report it, never confirm.
    Missing(usize),
    /// It holds changes this device does not have, written by someone other than its
    /// pusher (how many): a change nobody vouches for, maybe one written as someone
    /// else, that confirming would launder into the history. Report it, never
    /// confirm.
    Foreign(usize),
    /// It cannot be loaded (over the cost limits, not a document): report it.
    Unreadable(String),
    /// This device cannot tell (it does not know which of its changes came after
    /// `covers_seq`, or the blob could not be fetched): neither confirm nor report.
    CannotTell,
}

/// The outcome of a request the host made with
/// [`SyncMachine::request`](super::SyncMachine::request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The relay's answer.
    Response(Response),
    /// The relay refused it (nothing changed on the relay).
    Refused(ErrorFrame),
    /// The connection ended before an answer; the request may or may not have been
    /// carried out.
    Disconnected,
}

/// Who the device turned out to be once signed in: persist `user` after a
/// registration, recovery or link (it is only known from here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The user (assigned by the relay at registration).
    pub user: UserId,
    /// This device.
    pub device: DeviceId,
    /// The user's personal document.
    pub personal_doc: DocId,
    /// The families the user belongs to.
    pub families: Vec<FamilyId>,
    /// The relay's clock at sign-in.
    pub server_time: UnixMillis,
}

/// Connection status, for UIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncStatus {
    /// Not connected (waiting to reconnect, or stopped).
    Offline,
    /// Connected, signing in.
    Connecting,
    /// Signed in, exchanging changes.
    Syncing,
    /// Signed in, every change pushed, every document caught up and no snapshot in
    /// the making.
    UpToDate,
}

impl SyncStatus {
    /// Whether the device is signed in to the relay (syncing or up to date).
    pub fn is_connected(self) -> bool {
        matches!(self, SyncStatus::Syncing | SyncStatus::UpToDate)
    }
}

/// Why the machine will not reconnect by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    /// The relay's reason.
    pub code: ErrorCode,
    /// Its message, for logs.
    pub message: String,
}

/// Everything one [`SyncMachine::handle`](super::SyncMachine::handle) asks of the host.
/// Execute the fields in the order they are listed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Effects {
    /// Encode and send these frames on the websocket, in order.
    pub send: Vec<ClientFrame>,
    /// The relay's log ends before this device's cursor for these documents (a forged
    /// chunk, a relay restored from a backup): set their stored cursor and snapshot
    /// seq back to 0 (`LocalStore::reset_cursor`) before applying anything below.
    /// Merges are idempotent, so catching up from 0 loses nothing.
    pub reset_cursors: Vec<DocId>,
    /// Apply these, in order (see [`Apply`]); a failure to store them is a reason to
    /// disconnect: the cursors are re-read from the store on the next connection.
    pub apply: Vec<Apply>,
    /// The relay acked these local chunks: remove them from the outbox
    /// (`LocalStore::outbox_acked_chunk`).
    pub acked: Vec<(DocId, ChunkId, Seq)>,
    /// The relay refused these local chunks for good (forbidden, hash mismatch, too
    /// large, invalid): remove them from the outbox (they stay in the local log) and
    /// tell the user.
    pub refused: Vec<(DocId, ChunkId, ErrorCode)>,
    /// Read these outbox entries and hand them back as
    /// [`Event::Outbox`](super::Event::Outbox).
    pub want_outbox: Option<OutboxWanted>,
    /// The user lost access to these documents (or they do not exist): they are no
    /// longer synced. Tell the UI; keep or delete the local copy as the product wants.
    pub dropped: Vec<(DocId, ErrorCode)>,
    /// Save these documents and upload the snapshots (see [`Compact`]).
    pub compact: Vec<Compact>,
    /// The relay accepted these snapshots (this device's, or another member's this
    /// device confirmed): remember `covers_seq` per document (handed back at the next
    /// [`Event::Connected`](super::Event::Connected)).
    pub snapshot_accepted: Vec<(DocId, Seq)>,
    /// Fetch and check these pending snapshots of other members (see
    /// [`VerifySnapshot`]).
    pub verify_snapshots: Vec<VerifySnapshot>,
    /// Answers to the host's requests.
    pub answered: Vec<(RequestId, RequestOutcome)>,
    /// Signed in: persist the user id if it was not known.
    pub signed_in: Option<SignedIn>,
    /// The relay gave a session key for HTTP downloads with the sign-in: hand it to
    /// the blob client, with the relay's id ([`SyncMachine::server_id`]), so that its
    /// next downloads are MAC'd rather than signed.
    ///
    /// [`SyncMachine::server_id`]: super::SyncMachine::server_id
    pub http_session: Option<HttpSessionKey>,
    /// Unasked notifications from the relay (invites, membership, presence…), to show.
    pub events: Vec<ServerEvent>,
    /// Errors the relay sent that concern nothing the machine tracks (for logs).
    pub errors: Vec<ErrorFrame>,
    /// The new status, when it changed.
    pub status: Option<SyncStatus>,
    /// Close the websocket now (the machine gave up on this connection).
    pub close: bool,
    /// Reconnect after this many ms (set when the connection is over).
    pub reconnect_after: Option<u64>,
    /// The relay refused this device for good (revoked, bad signature, unsupported
    /// version, registration refused…): stop, and do not reconnect.
    pub fatal: Option<Fatal>,
}

impl Effects {
    /// Appends `other` after `self`, keeping the order of each list (the later status,
    /// reconnect delay, sign-in, session key and outbox size win).
    pub fn merge(&mut self, other: Effects) {
        self.send.extend(other.send);
        self.reset_cursors.extend(other.reset_cursors);
        for a in other.apply {
            match self.apply.last_mut() {
                // One batch per document run: chunks of the same document append.
                Some(last) if last.doc == a.doc && a.snapshot.is_none() => {
                    last.chunks.extend(a.chunks);
                    last.cursor = last.cursor.max(a.cursor);
                }
                _ => self.apply.push(a),
            }
        }
        self.acked.extend(other.acked);
        self.refused.extend(other.refused);
        self.want_outbox = other.want_outbox.or(self.want_outbox);
        self.dropped.extend(other.dropped);
        self.compact.extend(other.compact);
        self.snapshot_accepted.extend(other.snapshot_accepted);
        self.verify_snapshots.extend(other.verify_snapshots);
        self.answered.extend(other.answered);
        self.signed_in = other.signed_in.or(self.signed_in.take());
        self.http_session = other.http_session.or(self.http_session);
        self.events.extend(other.events);
        self.errors.extend(other.errors);
        self.status = other.status.or(self.status);
        self.close |= other.close;
        self.reconnect_after = other.reconnect_after.or(self.reconnect_after);
        self.fatal = other.fatal.or(self.fatal.take());
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == Effects::default()
    }
}
