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
//! files managed elsewhere): whether they still have to be uploaded and for whom,
//! whether they are in the local cache, and when they were last used, for
//! least-recently-used eviction.
//!
//! Beside the documents, [`DeviceRecords`] keeps the device's own records: the
//! account, the families and where the user stands in each, whose personal document
//! is which, how far accepted snapshots reach, and the bell's notifications.
//!
//! # View cache
//!
//! Next to its log, a document may have a **view cache**: opaque rows `(key, bytes)`,
//! one per entity of the document's derived view (e.g. `photos/ab12…` → the encoded
//! photo). It exists because opening a family with years of history must be quick,
//! while loading the Automerge document and reading every entity out of it takes
//! seconds; with the cache a screen is drawn from one read. The store never interprets
//! the rows.
//!
//! The cache must never silently disagree with the log. So it records the log
//! position it reflects, and it is **valid** only while that position is the
//! document's log end ([`StoredDoc::log_end`]); [`LocalStore::load_view`] returns a
//! valid cache or nothing. A write that appends to the log carries the rows it changed
//! ([`LocalStore::commit_local_with_view`], [`LocalStore::apply_remote_with_view`]);
//! when the cache was valid, they are applied in the same transaction as the append,
//! which keeps it valid. A write without rows, or with rows for a cache that was
//! already invalid, leaves the rows alone and the cache behind: invalid until the
//! caller rebuilds it from a load ([`LocalStore::replace_view`]), and a rebuild from a
//! load that a write has overtaken is refused. A write that appends nothing (a
//! redelivered chunk, a cursor alone) changes neither log nor cache. Every append
//! moves the log end forward and compaction never moves it, so an invalid cache cannot
//! become valid again by accident and a valid one stays valid through compaction.
//!
//! What the store cannot see is where the rows a write carries came from: rows computed
//! from a document that missed another writer's change would be stored as valid. So a
//! writer that holds a document open says which log end that document reflects
//! ([`LocalStore::commit_local_in_step`], [`LocalStore::apply_remote_in_step`]): the
//! rows are applied only when the log still ends there inside the write's transaction,
//! and the answer tells the writer where its document now stands, or that another
//! writer overtook it (a local edit is then not written at all: [`Committed`]). A
//! write without that position trusts its caller. [`load_view`](LocalStore::load_view)
//! and [`load`](LocalStore::load) are separate transactions; compare
//! [`CachedView::through`] with [`StoredDoc::log_end`] to know the two belong together.
//!
//! # Durability promise
//!
//! [`LocalStore::commit_local`] appends a local edit to its document's change log
//! **and** queues it in the outbox in **one transaction**. When it returns `Ok`, the edit
//! survives the process being killed (`kill -9`) and, with [`SqliteStore`], a power
//! loss; when it returns `Err`, neither happened. There is never a change without its
//! outbox entry or the other way round. The same holds for every other write: each
//! method is one transaction (the view rows a write carries included), and a method
//! that returns an error changed nothing.
//!
//! # Backends
//!
//! [`SqliteStore`] is the real one (one SQLite file in WAL mode). [`MemoryStore`] keeps
//! everything in plain collections, for tests and ephemeral sessions. Both pass the
//! same conformance suite. The methods are synchronous; async code calls them through
//! `spawn_blocking` on an `Arc<dyn LocalStore>`.

mod error;
mod memory;
mod records;
mod sqlite;
mod types;

#[cfg(test)]
mod conformance;

use std::fmt;

use doran_protocol::{BlobHash, ChunkId, DocId, Seq};

pub use self::{
    error::{Result, StoreError},
    memory::MemoryStore,
    records::{
        AccountRecord, DeviceRecords, FamilyRecord, MAX_NOTIFICATION_BODY_LEN,
        MAX_NOTIFICATION_ID_LEN, Membership, NotificationRecord,
    },
    sqlite::SqliteStore,
    types::{
        BlobOwner, BlobRecord, BlobState, CachedView, Committed, LogPos, MAX_VIEW_KEY_LEN,
        MAX_VIEW_ROW_LEN, OutboxEntry, Step, StoredDoc, UnknownBlobState, ViewRow, WriterLock,
    },
};

/// A device's local storage of documents, outbox, blob index and metadata.
///
/// Every method is one atomic transaction: it either happens entirely or, when it
/// returns an error, not at all. Implementations are shared between threads
/// (`Arc<dyn LocalStore>`); calls are serialised internally.
pub trait LocalStore: DeviceRecords + Send + Sync + fmt::Debug {
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

    /// Forgets where the sync of `doc` stood: its cursor and the snapshot seq the relay
    /// last accepted from this device go back to 0 (the relay said its log ends before
    /// them). The only way a cursor moves backwards; the document itself is untouched.
    fn reset_cursor(&self, doc: DocId) -> Result<()>;

    /// The [`StoredDoc::log_end`] a [`load`](Self::load) of `doc` would report now,
    /// without reading the document (`None` for an unknown document). A holder of an
    /// open document compares it with the log end it loaded to notice that another
    /// writer (another process on the same device) appended since.
    fn log_end(&self, doc: DocId) -> Result<Option<LogPos>> {
        Ok(self.load(doc)?.map(|stored| stored.log_end))
    }

    /// Waits until no other writer of this store (another process on the device, or
    /// another host on the same file) is between reading a document and writing what
    /// it made of it, and holds that place until the returned lock drops.
    ///
    /// A host holds it from opening a document to writing the edit, so two processes
    /// editing at once take turns instead of overtaking each other: the guard of
    /// [`commit_local_in_step`](Self::commit_local_in_step) would otherwise send the
    /// slower one back to reopen for as long as the faster one keeps writing. Take it
    /// before any lock of the caller's own, so a thread waiting for another process's
    /// turn holds up nothing else. A backend may give up waiting after a while (the
    /// SQLite store after 5 s: a process stopped while holding it) and return a lock
    /// that holds nothing; the guarded writes stay correct without it. The default,
    /// for a store no other process can open, holds nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when the lock file cannot be opened or locked.
    fn writer_lock(&self) -> Result<WriterLock> {
        Ok(WriterLock::none())
    }

    /// Records a local edit: appends `chunk` (the bytes of `save_incremental()`) to the
    /// change log of `doc` and queues it in the outbox, in one transaction. When this
    /// returns `Ok`, the edit is durable (see the module docs).
    ///
    /// Committing a chunk that is already waiting in the outbox for the same document
    /// changes nothing and returns the existing entry.
    ///
    /// The same as [`commit_local_with_view`](Self::commit_local_with_view) without
    /// view rows: an append leaves the document's view cache invalid.
    ///
    /// # Errors
    ///
    /// [`StoreError::Empty`] for an empty chunk (nothing is written).
    fn commit_local(&self, doc: DocId, chunk: &[u8]) -> Result<OutboxEntry> {
        self.commit_local_with_view(doc, chunk, None)
    }

    /// [`commit_local`](Self::commit_local), plus the view-cache rows the edit changed,
    /// in the same transaction.
    ///
    /// When the edit is appended to the log and the document's view cache was valid
    /// before (see [`load_view`](Self::load_view)), `Some(rows)` are applied in order
    /// (a row with bytes is inserted or replaced, a row without is deleted) and the
    /// cache stays valid; `Some(&[])` says the edit changed no row. With `None`, or
    /// when the cache was not valid, the rows are ignored and the cache is left invalid
    /// (its rows untouched) until [`replace_view`](Self::replace_view).
    ///
    /// A call that appends nothing to the log (the chunk is already waiting in the
    /// outbox, or already in the log) leaves the cache as it is, whatever `view` says:
    /// the log did not change, so neither does the view that reflects it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Empty`] for an empty chunk, [`StoreError::SizeOutOfBounds`] for a row
    /// whose key or bytes are out of bounds (even for a cache that would have ignored
    /// it); in both cases nothing is written.
    fn commit_local_with_view(
        &self,
        doc: DocId,
        chunk: &[u8],
        view: Option<&[ViewRow]>,
    ) -> Result<OutboxEntry>;

    /// [`commit_local_with_view`](Self::commit_local_with_view) for a writer that holds
    /// `doc` open as of the log end `at` (`None`: the document was unknown then), in
    /// one transaction: the edit is written only when the log still ends at `at`, and
    /// the answer says where it ends now ([`Committed::InStep`]); otherwise nothing is
    /// written ([`Committed::Behind`]: reopen the document and make the edit again).
    /// This is how a writer keeps its open document in step with the log (see the
    /// module docs, "View cache").
    ///
    /// # Errors
    ///
    /// As [`commit_local_with_view`](Self::commit_local_with_view).
    fn commit_local_in_step(
        &self,
        doc: DocId,
        chunk: &[u8],
        view: Option<&[ViewRow]>,
        at: Option<LogPos>,
    ) -> Result<Committed>;

    /// Records chunks received from the relay: appends `chunks` to the change log of
    /// `doc`, in order, and moves the sync cursor to `new_cursor`, in one transaction.
    ///
    /// Chunks already in the document's log are skipped. The cursor never moves
    /// backwards: a `new_cursor` lower than the current one is ignored. Returns how many
    /// chunks were appended.
    ///
    /// The same as [`apply_remote_with_view`](Self::apply_remote_with_view) without
    /// view rows: an append leaves the document's view cache invalid.
    ///
    /// # Errors
    ///
    /// [`StoreError::Empty`] if any chunk is empty, [`StoreError::OutOfRange`] for a
    /// cursor above `i64::MAX`; in both cases nothing is written.
    fn apply_remote(&self, doc: DocId, chunks: &[&[u8]], new_cursor: Option<Seq>) -> Result<usize> {
        self.apply_remote_with_view(doc, chunks, new_cursor, None)
    }

    /// [`apply_remote`](Self::apply_remote), plus the view-cache rows the received
    /// chunks changed, in the same transaction.
    ///
    /// The rows follow the rule of
    /// [`commit_local_with_view`](Self::commit_local_with_view): applied, keeping the
    /// cache valid, when at least one chunk is appended and the cache was valid before;
    /// otherwise ignored, leaving the cache invalid. A call that appends nothing (every
    /// chunk already known, or only a cursor) leaves the cache as it is.
    ///
    /// # Errors
    ///
    /// [`StoreError::Empty`] if any chunk is empty, [`StoreError::OutOfRange`] for a
    /// cursor above `i64::MAX`, [`StoreError::SizeOutOfBounds`] for a row whose key or bytes
    /// are out of bounds; in every case nothing is written.
    fn apply_remote_with_view(
        &self,
        doc: DocId,
        chunks: &[&[u8]],
        new_cursor: Option<Seq>,
        view: Option<&[ViewRow]>,
    ) -> Result<usize>;

    /// [`apply_remote_with_view`](Self::apply_remote_with_view) for a writer that holds
    /// `doc` open as of the log end `at`, in one transaction: the chunks are written
    /// either way (they carry other writers' changes with their dependencies, right on
    /// any log), the view rows only when the log still ended at `at`, and the [`Step`]
    /// says which it was and where the log ends now.
    ///
    /// # Errors
    ///
    /// As [`apply_remote_with_view`](Self::apply_remote_with_view).
    fn apply_remote_in_step(
        &self,
        doc: DocId,
        chunks: &[&[u8]],
        new_cursor: Option<Seq>,
        view: Option<&[ViewRow]>,
        at: Option<LogPos>,
    ) -> Result<(usize, Step)>;

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
    ///
    /// Compaction does not change the document's log end, so a valid view cache stays
    /// valid.
    fn compact(&self, doc: DocId, snapshot: &[u8], through: LogPos) -> Result<bool>;

    /// How many change rows `doc` keeps after its snapshot: what every load applies
    /// on top of the snapshot (0 for an unknown document). Its device compacts once
    /// this grows (`StoreHost::compact_long_tails`).
    fn tail_len(&self, doc: DocId) -> Result<u64>;

    // --- View cache ---

    /// The view cache of `doc`, when it has one and it is valid: it reflects exactly the
    /// current log, i.e. its [`CachedView::through`] equals the [`StoredDoc::log_end`]
    /// a [`load`](Self::load) would report. `None` for an unknown document, a document
    /// without a cache, or a cache left behind by a write without rows.
    ///
    /// The version is returned as stored; comparing it is the caller's business.
    fn load_view(&self, doc: DocId) -> Result<Option<CachedView>>;

    /// Replaces the whole view cache of `doc` with `rows` and `version`, valid as of
    /// `through`, in one transaction (a rebuild: the caller computed every row from a
    /// [`load`](Self::load) whose [`StoredDoc::log_end`] was `through`). A key given
    /// twice keeps its last bytes.
    ///
    /// Returns `false`, changing nothing, when `through` is no longer the document's log
    /// end: something was appended since that load, so the rebuild is stale.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown document, [`StoreError::PastLogEnd`]
    /// when `through` is beyond the document's log end (it cannot come from a load of
    /// this document), [`StoreError::SizeOutOfBounds`] for a row whose key or bytes are out
    /// of bounds, [`StoreError::OutOfRange`] for a position above `i64::MAX`; in every
    /// case nothing is written.
    fn replace_view(
        &self,
        doc: DocId,
        version: u32,
        through: LogPos,
        rows: &[(String, Vec<u8>)],
    ) -> Result<bool>;

    /// Forgets the view cache of `doc`, rows and all (e.g. after the caller changed its
    /// encoding). Idempotent; an unknown document is not an error.
    fn drop_view(&self, doc: DocId) -> Result<()>;

    // --- Outbox ---

    /// Up to `limit` outbox entries, oldest first (ascending [`OutboxEntry::id`]).
    fn outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.outbox_after(None, limit)
    }

    /// Up to `limit` outbox entries with an id above `after` (all if `None`), oldest
    /// first. The sync engine pages through the outbox with it, so entries the relay
    /// asked it to send again later do not hide the ones behind them.
    fn outbox_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<OutboxEntry>>;

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

    /// Stores every `(key, value)` of `values` in one transaction if the value under
    /// `guard` is still `expected` (`None`: absent), and says whether it did: a
    /// compare-and-swap for state that two processes on one device both save (the
    /// end-to-end keys: `doran watch` beside a `doran sync`). Nothing is written when
    /// the guard differs.
    fn set_meta_if(
        &self,
        guard: &str,
        expected: Option<&[u8]>,
        values: &[(&str, &[u8])],
    ) -> Result<bool>;
}

/// The current wall-clock time in milliseconds since the Unix epoch (0 if the clock
/// is before the epoch).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Checks the bounds of one view-cache row: a key of 1 to [`MAX_VIEW_KEY_LEN`] bytes and
/// at most [`MAX_VIEW_ROW_LEN`] bytes (`None` for a deletion). Both backends check before
/// writing anything, so a refused call changes nothing.
pub(crate) fn check_view_row(key: &str, bytes: Option<&[u8]>) -> Result<()> {
    if key.is_empty() || key.len() > MAX_VIEW_KEY_LEN {
        return Err(StoreError::SizeOutOfBounds {
            what: "key",
            len: key.len(),
            min: 1,
            max: MAX_VIEW_KEY_LEN,
        });
    }
    match bytes {
        Some(bytes) if bytes.len() > MAX_VIEW_ROW_LEN => Err(StoreError::SizeOutOfBounds {
            what: "bytes",
            len: bytes.len(),
            min: 0,
            max: MAX_VIEW_ROW_LEN,
        }),
        _ => Ok(()),
    }
}

/// [`check_view_row`] for every row of a write (nothing to check without rows).
pub(crate) fn check_view_rows(view: Option<&[ViewRow]>) -> Result<()> {
    view.unwrap_or_default()
        .iter()
        .try_for_each(|row| check_view_row(&row.key, row.bytes.as_deref()))
}

/// Checks a local edit before it is written: a chunk, and rows in bounds.
pub(crate) fn check_local(chunk: &[u8], view: Option<&[ViewRow]>) -> Result<()> {
    if chunk.is_empty() {
        return Err(StoreError::Empty("chunk"));
    }
    check_view_rows(view)
}

/// Checks that `value` fits SQLite's signed 64-bit integers; both backends refuse the
/// same values so they behave the same.
pub(crate) fn check_i64(what: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// Checks a notification before it is stored.
pub(crate) fn check_notification(note: &NotificationRecord) -> Result<()> {
    if note.id.is_empty() || note.id.len() > MAX_NOTIFICATION_ID_LEN {
        return Err(StoreError::SizeOutOfBounds {
            what: "notification id",
            len: note.id.len(),
            min: 1,
            max: MAX_NOTIFICATION_ID_LEN,
        });
    }
    if note.body.len() > MAX_NOTIFICATION_BODY_LEN {
        return Err(StoreError::SizeOutOfBounds {
            what: "notification body",
            len: note.body.len(),
            min: 0,
            max: MAX_NOTIFICATION_BODY_LEN,
        });
    }
    Ok(())
}
