-- Dorandoran relay store on PostgreSQL, schema version 4: snapshots wait for
-- confirmation. The semantics are described in sync-server/src/store.rs
-- (`put_pending_snapshot`).

-- A pushed snapshot of a document, kept apart from the confirmed one in `snapshots`
-- until a device of another member confirms that it contains what it replaces. The
-- log keeps every chunk it claims to cover meanwhile. One per document: a newer push
-- replaces it; it expires `pending_snapshot_ttl` after `at`.
CREATE TABLE pending_snapshots (
    doc        bytea  NOT NULL PRIMARY KEY REFERENCES logs (doc),
    covers_seq bigint NOT NULL CHECK (covers_seq > 0),
    blob       bytea  NOT NULL CHECK (length(blob) = 32),
    len        bigint NOT NULL CHECK (len >= 0),
    by_user    bytea  NOT NULL CHECK (length(by_user) = 16),
    by_device  bytea  NOT NULL CHECK (length(by_device) = 16),
    at         bigint NOT NULL
);
CREATE INDEX pending_snapshots_by_time ON pending_snapshots (at);
