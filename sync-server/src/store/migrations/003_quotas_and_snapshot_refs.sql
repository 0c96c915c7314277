-- Dorandoran relay store, schema version 3: disk limits.
-- The semantics are described in sync-server/src/store.rs.

-- Bytes of chunks each log holds now (for its quota); kept in step by every append
-- and every snapshot that drops chunks.
ALTER TABLE logs ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0);
UPDATE logs SET bytes = (SELECT coalesce(sum(length(c.bytes)), 0) FROM chunks c WHERE c.doc = logs.doc);

-- Who uploaded a family's blob, while it is one member alone (NULL once a second
-- member uploaded the same bytes, and for grants made before this version). Only that
-- member's own snapshot may take the grant over (`settle_snapshot`).
ALTER TABLE blob_grants ADD COLUMN uploaded_by BLOB CHECK (uploaded_by IS NULL OR length(uploaded_by) = 16);

-- Snapshot references, apart from upload grants: a document's snapshot blob, read
-- like the document and counted in its owner's quota (a family, or the user for a
-- personal document). Normally one per document; for a moment two while a new one
-- is accepted.
CREATE TABLE snapshot_refs (
    doc    BLOB    NOT NULL CHECK (length(doc) = 16),
    blob   BLOB    NOT NULL CHECK (length(blob) = 32),
    family BLOB    REFERENCES families (id),
    user   BLOB    REFERENCES users (id),
    size   INTEGER NOT NULL CHECK (size >= 0),
    CHECK ((family IS NULL) <> (user IS NULL)),
    PRIMARY KEY (doc, blob)
) WITHOUT ROWID;
CREATE INDEX snapshot_refs_by_blob ON snapshot_refs (blob);
CREATE INDEX snapshot_refs_by_family ON snapshot_refs (family) WHERE family IS NOT NULL;
CREATE INDEX snapshot_refs_by_user ON snapshot_refs (user) WHERE user IS NOT NULL;

-- Blobs whose last grant or reference was withdrawn: kept (and counted in the quota
-- of whoever held them) for the grace period, then the blob folder's sweep may
-- delete them. The family or user is not a foreign key: a deleted family's blobs are
-- released too.
CREATE TABLE blob_releases (
    blob        BLOB    NOT NULL CHECK (length(blob) = 32),
    family      BLOB,
    user        BLOB,
    size        INTEGER NOT NULL CHECK (size >= 0),
    released_at INTEGER NOT NULL
);
CREATE INDEX blob_releases_by_blob ON blob_releases (blob);
CREATE INDEX blob_releases_by_time ON blob_releases (released_at);
CREATE INDEX blob_releases_by_family ON blob_releases (family) WHERE family IS NOT NULL;
CREATE INDEX blob_releases_by_user ON blob_releases (user) WHERE user IS NOT NULL;

-- Current snapshots become references. Until now accepting a snapshot granted its
-- blob like an upload and replacing it withdrew that grant; those grants are taken
-- over by the references, which keeps that behaviour for them.
INSERT INTO snapshot_refs (doc, blob, family, user, size)
    SELECT s.doc, s.blob, d.family, d.user, s.len
    FROM snapshots s JOIN docs d ON d.doc = s.doc
    LEFT JOIN families f ON f.id = d.family
    WHERE d.user IS NOT NULL OR f.deleted = 0;
DELETE FROM blob_grants WHERE EXISTS (
    SELECT 1 FROM snapshot_refs r WHERE r.family = blob_grants.family AND r.blob = blob_grants.blob);
DELETE FROM user_blob_grants WHERE EXISTS (
    SELECT 1 FROM snapshot_refs r WHERE r.user = user_blob_grants.user AND r.blob = user_blob_grants.blob);
