-- Dorandoran local store, schema version 2: the view cache.
-- The storage model (and the validity rule) is described in client-core/src/store.rs.

-- A document's view cache: the caller's encoding version and the change-log position
-- the rows reflect. The cache is valid only while `through` equals the document's log
-- end (the last change row's `pos`, or the snapshot's `through` when the log is
-- empty). Every append moves the log end forward and compaction never moves it, so a
-- write without rows leaves the cache behind, invalid, without touching it.
CREATE TABLE view_state (
    doc_id  BLOB    NOT NULL PRIMARY KEY REFERENCES docs (doc_id) ON DELETE CASCADE,
    version INTEGER NOT NULL CHECK (version BETWEEN 0 AND 4294967295),
    through INTEGER NOT NULL CHECK (through >= 0)
);

-- The cached rows: one per entity of the derived view, opaque to the store. Keys are
-- 1 to 256 bytes (CAST: length() of TEXT counts characters), bytes at most 16 MiB.
-- Only written together with view_state, and only while the cache is valid.
CREATE TABLE view_rows (
    doc_id BLOB NOT NULL REFERENCES docs (doc_id) ON DELETE CASCADE,
    key    TEXT NOT NULL CHECK (length(CAST(key AS BLOB)) BETWEEN 1 AND 256),
    bytes  BLOB NOT NULL CHECK (length(bytes) <= 16777216),
    PRIMARY KEY (doc_id, key)
) WITHOUT ROWID;
