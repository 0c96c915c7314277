//! The records the store hands out and takes in.

use std::{fmt, str::FromStr};

use doran_protocol::{BlobHash, ChunkId, DocId, FamilyId, Seq};

/// An opaque position in a document's change log: the position of one change row.
///
/// Positions only grow (they are never reused, even after compaction), so "every row
/// at or before this position" is a stable set. Get one from [`StoredDoc::log_end`] and
/// hand it back to [`LocalStore::compact`](super::LocalStore::compact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogPos(u64);

impl LogPos {
    /// Before every row: compacting through it drops nothing.
    pub const START: LogPos = LogPos(0);

    pub(crate) fn new(pos: u64) -> Self {
        Self(pos)
    }

    pub(crate) fn get(self) -> u64 {
        self.0
    }
}

/// Where a write of received chunks found the log of the document its writer holds
/// open, read inside the write's own transaction
/// ([`LocalStore::apply_remote_in_step`]; a local edit gets a [`Committed`]).
///
/// A writer that read the log end before its write and again after it cannot tell
/// whether another writer (another process on the same file) appended in between:
/// its open document would then miss that row while the position it remembers covers
/// it. Read inside the write, the answer cannot be overtaken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The log ended where the writer's document did: that document, with what this
    /// write appended, is now the log through this position.
    InStep(LogPos),
    /// Another writer had appended since the writer's position: the view rows were not
    /// applied, and the writer's document lacks that writer's rows (reopen it).
    Behind,
}

/// The place of the one writer of a store between reading a document and writing
/// the edit made on it ([`LocalStore::writer_lock`]); given up on drop.
#[derive(Debug)]
#[must_use = "the place is given up as soon as the lock is dropped"]
pub struct WriterLock {
    /// The locked file, for a store other processes can open; closing it unlocks.
    file: Option<std::fs::File>,
}

impl WriterLock {
    /// Nothing to hold: no other process can open this store.
    pub(crate) fn none() -> Self {
        Self { file: None }
    }

    /// Holds `file`, locked.
    pub(crate) fn file(file: std::fs::File) -> Self {
        Self { file: Some(file) }
    }

    /// Whether this lock holds nothing (no other process to take turns with, or the
    /// wait for one was given up).
    pub fn holds_nothing(&self) -> bool {
        self.file.is_none()
    }
}

/// What [`LocalStore::commit_local_in_step`] did with a local edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// The edit is in the log and the outbox, and the log now ends at `end`: the
    /// writer's document, with this edit, is the log through `end`.
    InStep {
        /// The edit's outbox entry.
        entry: OutboxEntry,
        /// The log end after the edit.
        end: LogPos,
    },
    /// Another writer appended since the writer's position, and **nothing was
    /// written**. The edit was made on a document that lacks that writer's rows;
    /// another process of the same device writes as the same Automerge actor, so the
    /// edit may reuse a sequence number that process already used, and every load would
    /// refuse it. Reopen the document and make the edit again.
    Behind,
}

/// A document as stored: rebuild it with `AutoCommit::load(snapshot)` (or
/// `AutoCommit::new()` without one) and then `load_incremental` for every change, in
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDoc {
    /// The latest snapshot (`save()` bytes), if the document was ever compacted.
    pub snapshot: Option<Vec<u8>>,
    /// The change log since the snapshot (`save_incremental()` chunks), oldest first.
    pub changes: Vec<Vec<u8>>,
    /// The sync cursor: relay sequence number of the last chunk received (0: none).
    pub cursor: Seq,
    /// The position of the last change row, or the position the snapshot covers when
    /// the log is empty; pass it to [`LocalStore::compact`](super::LocalStore::compact)
    /// with a snapshot built from this load.
    pub log_end: LogPos,
}

/// A local edit waiting for the relay's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Position in the outbox; increases with every entry and is never reused.
    pub id: u64,
    /// The document the edit belongs to.
    pub doc: DocId,
    /// blake3 of [`bytes`](Self::bytes), the id the relay acknowledges.
    pub chunk: ChunkId,
    /// The chunk (`save_incremental()` bytes), kept even after compaction.
    pub bytes: Vec<u8>,
    /// When the edit was committed, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// The upload state of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobState {
    /// Made on this device and not yet on the relay; its bytes must stay cached.
    PendingUpload,
    /// Made on this device and uploaded to the relay.
    Uploaded,
    /// Known from a document; the bytes are on the relay (and cached here if `cached`).
    RemoteOnly,
}

impl BlobState {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            BlobState::PendingUpload => "pending_upload",
            BlobState::Uploaded => "uploaded",
            BlobState::RemoteOnly => "remote_only",
        }
    }
}

impl fmt::Display for BlobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of the [`BlobState`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown blob state {0:?}")]
pub struct UnknownBlobState(pub String);

impl FromStr for BlobState {
    type Err = UnknownBlobState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending_upload" => Ok(BlobState::PendingUpload),
            "uploaded" => Ok(BlobState::Uploaded),
            "remote_only" => Ok(BlobState::RemoteOnly),
            other => Err(UnknownBlobState(other.chars().take(40).collect())),
        }
    }
}

/// The index record of one blob (photo, thumbnail, voice message). The bytes live in
/// files managed elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    /// blake3 of the blob's bytes.
    pub hash: BlobHash,
    /// Size of the blob in bytes.
    pub size: u64,
    /// MIME type, e.g. `image/jpeg` or `audio/mpeg`.
    pub mime: String,
    /// Upload state.
    pub state: BlobState,
    /// Whether the bytes are in the local cache.
    pub cached: bool,
    /// When the blob was last used, in milliseconds since the Unix epoch (for LRU).
    pub last_used_ms: i64,
    /// Whose blob it is, for a blob made on this device (it decides the upload's
    /// readers and quota); `None` for a blob downloaded from the relay.
    pub owner: Option<BlobOwner>,
    /// The key of a sealed blob (`crate::seal`): the cached file holds the opened
    /// bytes, sealed again with this key for upload; `None` for a blob stored as it is.
    pub key: Option<crate::seal::BlobKey>,
}

/// Whose blob an upload is: it decides who may read it and whose quota it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobOwner {
    /// A family's (photo, voice message, family document snapshot): read by its
    /// members, counted in the family's quota.
    Family(FamilyId),
    /// This user's own (avatar, personal document snapshot): read by the user and by
    /// everyone who shares a family with them, counted in the user's quota.
    Me,
}

impl BlobOwner {
    /// The stored spelling: `me`, or the family id in hex.
    pub fn to_text(self) -> String {
        match self {
            BlobOwner::Family(family) => family.to_hex(),
            BlobOwner::Me => "me".to_owned(),
        }
    }

    /// Back from [`to_text`](Self::to_text).
    pub fn from_text(s: &str) -> Option<Self> {
        if s == "me" {
            return Some(BlobOwner::Me);
        }
        s.parse().ok().map(BlobOwner::Family)
    }
}

/// The longest view-cache row key, in bytes (keys are 1 to this many bytes).
pub const MAX_VIEW_KEY_LEN: usize = 256;

/// The largest view-cache row, in bytes of [`ViewRow::bytes`] (16 MiB).
pub const MAX_VIEW_ROW_LEN: usize = 16 * 1024 * 1024;

/// One change to a document's view cache, written with the change-log write it
/// derives from (see
/// [`LocalStore::commit_local_with_view`](super::LocalStore::commit_local_with_view)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRow {
    /// The row's key, e.g. `photos/ab12…`: 1 to [`MAX_VIEW_KEY_LEN`] bytes.
    pub key: String,
    /// The row's new bytes (at most [`MAX_VIEW_ROW_LEN`]), opaque to the store; `None`
    /// deletes the row.
    pub bytes: Option<Vec<u8>>,
}

/// A document's view cache as [`LocalStore::load_view`](super::LocalStore::load_view)
/// returns it: only ever one that reflects exactly the document's current log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedView {
    /// The encoding version the caller stored with
    /// [`replace_view`](super::LocalStore::replace_view); the store never compares it.
    pub version: u32,
    /// The log position the rows reflect: the [`StoredDoc::log_end`] of the document
    /// when the cache was read. A caller that also [`load`](super::LocalStore::load)s the
    /// document (another transaction) compares the two to know the view and the log
    /// belong together.
    pub through: LogPos,
    /// Every row, in ascending key order (byte order of the UTF-8 keys).
    pub rows: Vec<(String, Vec<u8>)>,
}
