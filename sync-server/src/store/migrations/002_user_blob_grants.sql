-- Dorandoran relay store, schema version 2: blobs granted to a user.
-- The semantics are described in sync-server/src/store.rs (`grant_blob_to_user`).

-- Which user's personal blobs (their avatar, snapshots of their personal document)
-- include which blob, and its size (for the user's quota). Such a blob is read like
-- the user's personal document: by the user and by everyone who shares a family with
-- them, whenever they joined.
CREATE TABLE user_blob_grants (
    user BLOB    NOT NULL REFERENCES users (id),
    blob BLOB    NOT NULL CHECK (length(blob) = 32),
    size INTEGER NOT NULL CHECK (size >= 0),
    PRIMARY KEY (user, blob)
) WITHOUT ROWID;
CREATE INDEX user_blob_grants_by_blob ON user_blob_grants (blob);
