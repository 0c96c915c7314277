//! The device's local store: every family document, the outbox, the blob index and a
//! little device metadata, kept on the device so the app works without a network.
//!
//! # Storage model
//!
//! The store is byte-oriented and never parses Automerge. A **document** is kept as
//!
//! - an optional **snapshot**: the bytes of one Automerge `save()`, and
//! - an ordered **change log**: the `save_incremental()` chunks appended since that
//!   snapshot, local edits and chunks received from the relay alike.
//!
//! Loading a document ([`LocalStore::load`]) returns both; the caller rebuilds the
//! Automerge document with `AutoCommit::load(snapshot)` followed by `load_incremental`
//! for every change, in order. Because Automerge merges are idempotent, a chunk applied
//! twice is harmless; the store still keeps at most one row per chunk id and document.
//!
//! Each change row has an opaque [`LogPos`]. **Compaction** ([`LocalStore::compact`])
//! replaces the snapshot with a newer one that covers every row up to a position
//! (`StoredDoc::log_end` of the `load` the snapshot was built from) and drops those
//! rows in the same transaction; rows appended after that position stay.
//!
//! Next to the log, every document has a **sync cursor**: the relay sequence number of
//! the last chunk received, which only moves forward.
//!
//! The **outbox** holds local edits that the relay has not acknowledged yet, oldest
//! first. An entry carries its own copy of the chunk bytes, so compaction never touches
//! it; it leaves only when [`LocalStore::outbox_acked`] is called.
//!
//! The **blob index** tracks photos and voice messages by hash (the bytes live in
//! files managed elsewhere): whether they still have to be uploaded, whether they are
//! in the local cache, and when they were last used, for least-recently-used eviction.
//!
//! # Durability promise
//!
//! [`LocalStore::commit_local`] appends a local edit to its document's change log
//! **and** queues it in the outbox in **one transaction**. When it returns `Ok`, the edit
//! survives the process being killed (`kill -9`) and, with [`SqliteStore`], a power
//! loss; when it returns `Err`, neither happened. There is never a change without its
//! outbox entry or the other way round. The same holds for every other write: each
//! method is one transaction, and a method that returns an error changed nothing.
//!
//! # Backends
//!
//! [`SqliteStore`] is the real one (one SQLite file in WAL mode). [`MemoryStore`] keeps
//! everything in plain collections, for tests and ephemeral sessions. Both pass the
//! same conformance suite. The methods are synchronous; async code calls them through
//! `spawn_blocking` on an `Arc<dyn LocalStore>`.

mod error;
mod memory;
mod sqlite;
mod types;

#[cfg(test)]
mod conformance;

use std::fmt;

use doran_protocol::{BlobHash, ChunkId, DocId, Seq};

pub use self::{
    error::{Result, StoreError},
    memory::MemoryStore,
    sqlite::SqliteStore,
    types::{BlobRecord, BlobState, LogPos, OutboxEntry, StoredDoc, UnknownBlobState},
};

/// A device's local storage of documents, outbox, blob index and metadata.
///
/// Every method is one atomic transaction: it either happens entirely or, when it
/// returns an error, not at all. Implementations are shared between threads
/// (`Arc<dyn LocalStore>`); calls are serialised internally.
pub trait LocalStore: Send + Sync + fmt::Debug {
    // --- Documents ---

    /// Every document the store knows, in ascending id order.
    ///
    /// A document becomes known with its first write: a local commit, a received
    /// chunk or cursor, or a snapshot.
    fn documents(&self) -> Result<Vec<DocId>>;

    /// The stored state of `doc`: its snapshot, its change log in order, its sync
    /// cursor and the position of its log end. `None` when the document is unknown.
    fn load(&self, doc: DocId) -> Result<Option<StoredDoc>>;

    /// The sync cursor of `doc`: the relay sequence number of the last chunk received.
    /// `0` when the document is unknown or nothing was received yet.
    fn cursor(&self, doc: DocId) -> Result<Seq>;

    /// Records a local edit: appends `chunk` (the bytes of `save_incremental()`) to the
    /// change log of `doc` and queues it in the outbox, in one transaction. When this
    /// returns `Ok`, the edit is durable (see the module docs).
    ///
    /// Committing a chunk that is already waiting in the outbox for the same document
    /// changes nothing and returns the existing entry.
    ///
    /// # Errors
    ///
    /// [`StoreError::Empty`] for an empty chunk (nothing is written).
    fn commit_local(&self, doc: DocId, chunk: &[u8]) -> Result<OutboxEntry>;

    /// Records chunks received from the relay: appends `chunks` to the change log of
    /// `doc`, in order, and moves the sync cursor to `new_cursor`, in one transaction.
    ///
    /// Chunks already in the document's log are skipped. The cursor never moves
    /// backwards: a `new_cursor` lower than the current one is ignored. Returns how many
    /// chunks were appended.
    ///
    /// # Errors
    ///
    /// [`StoreError::Empty`] if any chunk is empty, [`StoreError::OutOfRange`] for a
    /// cursor above `i64::MAX`; in both cases nothing is written.
    fn apply_remote(&self, doc: DocId, chunks: &[&[u8]], new_cursor: Option<Seq>) -> Result<usize>;

    /// Replaces the snapshot of `doc` with `snapshot` (the bytes of `save()`) and drops
    /// the change rows at or before `through`, in one transaction. Rows appended after
    /// `through` stay. Outbox entries are not touched.
    ///
    /// `through` must be the [`StoredDoc::log_end`] of the [`load`](Self::load) the
    /// snapshot was built from, so that the snapshot contains every dropped row.
    /// [`LogPos::START`] stores a snapshot that covers no row (e.g. a snapshot fetched
    /// by a new device), creating the document if needed.
    ///
    /// Returns `false`, changing nothing, when the document was already compacted
    /// through a later position (a stale compaction that lost a race; the newer
    /// snapshot covers more).
    ///
    /// # Errors
    ///
    /// [`StoreError::Empty`] for an empty snapshot, [`StoreError::PastLogEnd`] when
    /// `through` is beyond the document's log end.
    fn compact(&self, doc: DocId, snapshot: &[u8], through: LogPos) -> Result<bool>;

    // --- Outbox ---

    /// Up to `limit` outbox entries, oldest first (ascending [`OutboxEntry::id`]).
    fn outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>>;

    /// Removes the outbox entry `id` once the relay has acknowledged it. Idempotent:
    /// returns whether an entry was removed.
    fn outbox_acked(&self, id: u64) -> Result<bool>;

    /// Removes the outbox entry of `chunk` in `doc` (the relay acknowledges by chunk
    /// id). Idempotent: returns whether an entry was removed.
    fn outbox_acked_chunk(&self, doc: DocId, chunk: ChunkId) -> Result<bool>;

    /// How many entries the outbox holds.
    fn pending_count(&self) -> Result<u64>;

    // --- Blob index ---

    /// Inserts or replaces the index record of `record.hash`. A blob keeps its place
    /// in [`pending_uploads`](Self::pending_uploads) when it is replaced.
    ///
    /// # Errors
    ///
    /// [`StoreError::PendingNotCached`] for a [`BlobState::PendingUpload`] record that
    /// is not cached (its bytes exist only on this device), [`StoreError::OutOfRange`]
    /// for a size above `i64::MAX`.
    fn put_blob(&self, record: &BlobRecord) -> Result<()>;

    /// The index record of `hash`, or `None`.
    fn blob(&self, hash: BlobHash) -> Result<Option<BlobRecord>>;

    /// Every blob waiting for upload, in the order they were first put.
    fn pending_uploads(&self) -> Result<Vec<BlobRecord>>;

    /// Sets the upload state of `hash`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown hash, [`StoreError::PendingNotCached`]
    /// when moving an uncached blob to [`BlobState::PendingUpload`].
    fn set_blob_state(&self, hash: BlobHash, state: BlobState) -> Result<()>;

    /// Records whether the bytes of `hash` are in the local cache.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown hash, [`StoreError::PendingNotCached`]
    /// when un-caching a blob that is waiting for upload.
    fn set_cached(&self, hash: BlobHash, cached: bool) -> Result<()>;

    /// Records that `hash` was used at `now_ms` (milliseconds since the Unix epoch).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown hash.
    fn touch_blob(&self, hash: BlobHash, now_ms: i64) -> Result<()>;

    /// The total size of the cached blobs, in bytes.
    fn cached_bytes(&self) -> Result<u64>;

    /// Up to `limit` blobs that may be evicted from the cache: cached, not waiting for
    /// upload, least recently used first (ties by hash).
    fn eviction_candidates(&self, limit: usize) -> Result<Vec<BlobRecord>>;

    // --- Metadata ---

    /// The value stored under `key`, or `None`.
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Stores `value` under `key`, replacing any previous value.
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<()>;

    /// Removes `key`. Removing an absent key is not an error.
    fn delete_meta(&self, key: &str) -> Result<()>;
}

/// The current wall-clock time in milliseconds since the Unix epoch (0 if the clock
/// is before the epoch).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Checks that `value` fits SQLite's signed 64-bit integers; both backends refuse the
/// same values so they behave the same.
pub(crate) fn check_i64(what: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}
