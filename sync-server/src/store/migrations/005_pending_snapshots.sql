-- Dorandoran relay store, schema version 5: snapshots wait for confirmation.
-- The semantics are described in sync-server/src/store.rs (`put_pending_snapshot`).

-- A pushed snapshot of a document, kept apart from the confirmed one in `snapshots`
-- until a device of another member confirms that it contains what it replaces. The
-- log keeps every chunk it claims to cover meanwhile. One per document: a newer push
-- replaces it; it expires `pending_snapshot_ttl` after `at`.
CREATE TABLE pending_snapshots (
    doc        BLOB    NOT NULL PRIMARY KEY REFERENCES logs (doc),
    covers_seq INTEGER NOT NULL CHECK (covers_seq > 0),
    blob       BLOB    NOT NULL CHECK (length(blob) = 32),
    len        INTEGER NOT NULL CHECK (len >= 0),
    by_user    BLOB    NOT NULL CHECK (length(by_user) = 16),
    by_device  BLOB    NOT NULL CHECK (length(by_device) = 16),
    at         INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX pending_snapshots_by_time ON pending_snapshots (at);
