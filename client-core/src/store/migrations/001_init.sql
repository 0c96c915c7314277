-- Dorandoran local store, schema version 1.
-- The storage model is described in client-core/src/store.rs.
-- Ids are raw bytes: doc ids 16, chunk ids and blob hashes 32 (blake3).

-- One row per known document, with its sync cursor (the relay seq of the last chunk
-- received; it only grows).
CREATE TABLE docs (
    doc_id BLOB    NOT NULL PRIMARY KEY CHECK (length(doc_id) = 16),
    cursor INTEGER NOT NULL DEFAULT 0 CHECK (cursor >= 0)
);

-- The latest snapshot (Automerge save()) of a document, and the change-log position
-- it covers. Kept apart from `docs` so cursor updates do not rewrite a large blob.
CREATE TABLE snapshots (
    doc_id  BLOB    NOT NULL PRIMARY KEY REFERENCES docs (doc_id) ON DELETE CASCADE,
    through INTEGER NOT NULL CHECK (through >= 0),
    bytes   BLOB    NOT NULL CHECK (length(bytes) > 0)
);

-- The change log since the snapshot: save_incremental() chunks, local and received.
-- `pos` is the LogPos; AUTOINCREMENT guarantees it is never reused, so "rows at or
-- before a position" never picks up a row written later.
CREATE TABLE changes (
    pos      INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id   BLOB NOT NULL REFERENCES docs (doc_id) ON DELETE CASCADE,
    chunk_id BLOB NOT NULL CHECK (length(chunk_id) = 32),
    bytes    BLOB NOT NULL CHECK (length(bytes) > 0),
    UNIQUE (doc_id, chunk_id)
);
CREATE INDEX changes_by_doc ON changes (doc_id, pos);

-- Local edits not yet acknowledged by the relay, with their own copy of the bytes
-- (compaction drops change rows, never outbox entries). AUTOINCREMENT: an id is never
-- reused, so a late acknowledgement cannot remove a newer entry.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id        BLOB    NOT NULL REFERENCES docs (doc_id) ON DELETE CASCADE,
    chunk_id      BLOB    NOT NULL CHECK (length(chunk_id) = 32),
    bytes         BLOB    NOT NULL CHECK (length(bytes) > 0),
    created_at_ms INTEGER NOT NULL,
    UNIQUE (doc_id, chunk_id)
);

-- The blob index; the bytes live in files. A blob waiting for upload must be cached:
-- its bytes exist only on this device.
CREATE TABLE blobs (
    hash         BLOB    NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
    size         INTEGER NOT NULL CHECK (size >= 0),
    mime         TEXT    NOT NULL,
    state        TEXT    NOT NULL
                 CHECK (state IN ('pending_upload', 'uploaded', 'remote_only')),
    cached       INTEGER NOT NULL CHECK (cached IN (0, 1)),
    last_used_ms INTEGER NOT NULL,
    CHECK (state <> 'pending_upload' OR cached = 1)
);
CREATE INDEX blobs_pending ON blobs (state) WHERE state = 'pending_upload';
CREATE INDEX blobs_lru ON blobs (last_used_ms, hash)
    WHERE cached = 1 AND state <> 'pending_upload';

-- Device settings and account information.
CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
