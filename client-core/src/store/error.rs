//! The store's one error type.

use doran_protocol::BlobHash;

use super::LogPos;

/// A [`Result`](std::result::Result) whose error defaults to [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why a store operation failed. An operation that fails changes nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage backend failed: an SQLite or I/O error, a full disk, a database
    /// locked by another process for longer than the busy timeout. Usually worth
    /// retrying later or reporting; the source error says more.
    #[error("local store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// Stored data does not make sense: the file is not a database, an id has the
    /// wrong length, a value is outside its range, or an integrity check failed. The
    /// file was damaged or written by something else.
    #[error("local store is corrupt: {0}")]
    Corrupt(String),

    /// The record an operation names does not exist.
    #[error("{kind} {key} not found in the local store")]
    NotFound {
        /// What kind of record was looked for (e.g. `"blob"`).
        kind: &'static str,
        /// The key that was looked for, as text.
        key: String,
    },

    /// An empty chunk or snapshot was refused: no Automerge save is empty, so it is
    /// a caller bug (e.g. `save_incremental()` with nothing new).
    #[error("refused an empty {0}")]
    Empty(&'static str),

    /// A number does not fit the store (SQLite integers are signed 64-bit).
    #[error("{what} {value} is out of range (at most i64::MAX)")]
    OutOfRange {
        /// Which value was out of range (e.g. `"cursor"`).
        what: &'static str,
        /// The value.
        value: u64,
    },

    /// A compaction named a position beyond the document's log end, so the snapshot
    /// cannot have been built from this document's log.
    #[error("compaction through {through:?} is past the log end {log_end:?}")]
    PastLogEnd {
        /// The position the compaction named.
        through: LogPos,
        /// The document's log end.
        log_end: LogPos,
    },

    /// A record was refused for its size: a view-cache key must be 1 to
    /// [`MAX_VIEW_KEY_LEN`](super::MAX_VIEW_KEY_LEN) bytes and a row's bytes at most
    /// [`MAX_VIEW_ROW_LEN`](super::MAX_VIEW_ROW_LEN); a notification id 1 to
    /// [`MAX_NOTIFICATION_ID_LEN`](super::MAX_NOTIFICATION_ID_LEN) bytes and its body at
    /// most [`MAX_NOTIFICATION_BODY_LEN`](super::MAX_NOTIFICATION_BODY_LEN). The whole
    /// call is refused, the change-log write it came with included.
    #[error("{what} of {len} bytes refused (allowed {min}..={max})")]
    SizeOutOfBounds {
        /// What was out of bounds: `"key"`, `"bytes"`, `"notification id"`…
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The smallest length allowed.
        min: usize,
        /// The largest length allowed.
        max: usize,
    },

    /// A blob waiting for upload must stay cached: its bytes exist only on this
    /// device, so un-caching it would lose them.
    #[error("blob {0} is waiting for upload and must stay cached")]
    PendingNotCached(BlobHash),

    /// The database was written by a newer version of the app; this build refuses to
    /// touch it rather than misread it.
    #[error(
        "local database schema version {found} is newer than this build supports ({supported})"
    )]
    NewerSchema {
        /// The schema version found in the database.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },

    /// A thread panicked while holding the store's lock; the store refuses further
    /// use in this process rather than risk half-applied state.
    #[error("local store lock poisoned by a panic")]
    Poisoned,
}
