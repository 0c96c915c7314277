-- Dorandoran local store, schema version 3: the device's records as real tables
-- (before, side tables in `meta`). Rows kept in `meta` by older builds are imported
-- by SqliteStore::open right after this migration (their values are postcard).

-- The account signed in on this device (at most one row). The keys are not here:
-- they live behind the device's secret store.
CREATE TABLE account (
    id           INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    user_id      BLOB    NOT NULL CHECK (length(user_id) = 16),
    device_id    BLOB    NOT NULL CHECK (length(device_id) = 16),
    email        TEXT    NOT NULL,
    nickname     TEXT    NOT NULL,
    server       TEXT    NOT NULL,
    personal_doc BLOB    NOT NULL CHECK (length(personal_doc) = 16)
);

-- The families this device knows and where the user stands in each. `removed`: the
-- relay said the user is no longer a member; the local copy stays readable.
CREATE TABLE families (
    family_id  BLOB    NOT NULL PRIMARY KEY CHECK (length(family_id) = 16),
    membership TEXT    NOT NULL CHECK (membership IN ('member', 'removed')),
    since_ms   INTEGER NOT NULL,
    added      INTEGER NOT NULL
);

-- Whose personal document is which (this user's, and co-members' as they sync).
CREATE TABLE personal_docs (
    user_id BLOB NOT NULL PRIMARY KEY CHECK (length(user_id) = 16),
    doc_id  BLOB NOT NULL CHECK (length(doc_id) = 16)
) WITHOUT ROWID;

-- The last relay seq covered by a snapshot the relay accepted from this device.
ALTER TABLE docs ADD COLUMN snapshot_covers INTEGER NOT NULL DEFAULT 0
    CHECK (snapshot_covers >= 0);

-- Whose a blob waiting for upload is: NULL (downloaded), 'me' (a personal blob:
-- avatar, personal-document snapshot) or a family id in hex.
ALTER TABLE blobs ADD COLUMN owner TEXT
    CHECK (owner IS NULL OR owner = 'me' OR length(owner) = 32);

-- The bell: notifications, newest first. The body is the device layer's encoding.
CREATE TABLE notifications (
    id        TEXT    NOT NULL PRIMARY KEY CHECK (length(CAST(id AS BLOB)) BETWEEN 1 AND 256),
    family_id BLOB    CHECK (family_id IS NULL OR length(family_id) = 16),
    at_ms     INTEGER NOT NULL,
    body      BLOB    NOT NULL CHECK (length(body) <= 65536),
    read      INTEGER NOT NULL DEFAULT 0 CHECK (read IN (0, 1))
) WITHOUT ROWID;
CREATE INDEX notifications_by_time ON notifications (at_ms, id);
CREATE INDEX notifications_unread ON notifications (read) WHERE read = 0;
