-- Dorandoran relay store, schema version 1.
-- The semantics are described in sync-server/src/store.rs.
-- Ids are raw bytes: user, device, family, doc and invite ids 16, keys, chunk ids and
-- blob hashes 32. Times are unix milliseconds.

-- ----- accounts -----

-- A person. The email (or handle) is normalised by the relay before it gets here.
CREATE TABLE users (
    id           BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    email        TEXT    NOT NULL UNIQUE,
    nickname     TEXT    NOT NULL,
    avatar       BLOB    CHECK (avatar IS NULL OR length(avatar) = 32),
    user_key     BLOB    NOT NULL UNIQUE CHECK (length(user_key) = 32),
    personal_doc BLOB    NOT NULL UNIQUE CHECK (length(personal_doc) = 16),
    created_at   INTEGER NOT NULL
);

-- One device of a user, with the key that signs its sign-ins.
CREATE TABLE devices (
    id         BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user       BLOB    NOT NULL REFERENCES users (id),
    key        BLOB    NOT NULL UNIQUE CHECK (length(key) = 32),
    client     TEXT    NOT NULL,
    added_at   INTEGER NOT NULL,
    last_seen  INTEGER,
    revoked_at INTEGER
);
CREATE INDEX devices_by_user ON devices (user, added_at, id);

-- Codes that link a new device; only blake3 of the code is kept.
CREATE TABLE link_codes (
    code_hash  BLOB    NOT NULL PRIMARY KEY CHECK (length(code_hash) = 32),
    user       BLOB    NOT NULL REFERENCES users (id),
    device     BLOB    NOT NULL REFERENCES devices (id),
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

-- ----- families -----

-- A family. A deleted one keeps its row (`deleted`) so that its id is never reused;
-- its memberships, invites and grants are gone.
CREATE TABLE families (
    id         BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    title      TEXT    NOT NULL,
    host       BLOB    NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
);

-- Every document the relay knows and who it belongs to: exactly one of a family (its
-- shared document, same id) or a user (their personal document). One table, so a
-- document id can never name two owners.
CREATE TABLE docs (
    doc    BLOB NOT NULL PRIMARY KEY CHECK (length(doc) = 16),
    family BLOB UNIQUE REFERENCES families (id),
    user   BLOB UNIQUE REFERENCES users (id),
    CHECK ((family IS NULL) <> (user IS NULL))
);

-- Who belongs to which family, under which 호칭 (unique per family), with exactly one
-- host per family.
CREATE TABLE members (
    family    BLOB    NOT NULL REFERENCES families (id),
    user      BLOB    NOT NULL REFERENCES users (id),
    name      TEXT    NOT NULL,
    role      TEXT    NOT NULL CHECK (role IN ('host', 'member')),
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (family, user),
    UNIQUE (family, name)
) WITHOUT ROWID;
CREATE UNIQUE INDEX members_one_host ON members (family) WHERE role = 'host';
CREATE INDEX members_by_user ON members (user);

-- Invitations. `expired` is not a stored state: a pending invite past `expires_at`
-- reads as expired.
CREATE TABLE invites (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    family        BLOB    NOT NULL REFERENCES families (id),
    inviter       BLOB    NOT NULL REFERENCES users (id),
    invitee       BLOB    NOT NULL REFERENCES users (id),
    proposed_name TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    state         TEXT    NOT NULL
                  CHECK (state IN ('pending', 'accepted', 'rejected', 'withdrawn')),
    closed_at     INTEGER,
    CHECK (expires_at > created_at),
    CHECK ((state = 'pending') = (closed_at IS NULL))
);
CREATE INDEX invites_pending_by_invitee ON invites (invitee, created_at)
    WHERE state = 'pending';
CREATE INDEX invites_by_family ON invites (family, state, created_at);

-- Which family may read which blob, and its size (for the family's quota).
CREATE TABLE blob_grants (
    family BLOB    NOT NULL REFERENCES families (id),
    blob   BLOB    NOT NULL CHECK (length(blob) = 32),
    size   INTEGER NOT NULL CHECK (size >= 0),
    PRIMARY KEY (family, blob)
) WITHOUT ROWID;
CREATE INDEX blob_grants_by_blob ON blob_grants (blob);

-- ----- document logs -----
-- Not tied to the account tables by foreign keys: the log store is a separate
-- trait and may live elsewhere.

-- Each document's head: the seq of its latest chunk (kept when a snapshot drops the
-- chunks, so seqs are never reused).
CREATE TABLE logs (
    doc  BLOB    NOT NULL PRIMARY KEY CHECK (length(doc) = 16),
    head INTEGER NOT NULL CHECK (head >= 0)
) WITHOUT ROWID;

-- The opaque chunks since the snapshot, one per (doc, seq) and per (doc, chunk id).
CREATE TABLE chunks (
    doc      BLOB    NOT NULL REFERENCES logs (doc),
    seq      INTEGER NOT NULL CHECK (seq > 0),
    chunk_id BLOB    NOT NULL CHECK (length(chunk_id) = 32),
    bytes    BLOB    NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (doc, seq),
    UNIQUE (doc, chunk_id)
);

-- The latest snapshot of a document: a blob covering seq <= covers_seq.
CREATE TABLE snapshots (
    doc        BLOB    NOT NULL PRIMARY KEY REFERENCES logs (doc),
    covers_seq INTEGER NOT NULL CHECK (covers_seq > 0),
    blob       BLOB    NOT NULL CHECK (length(blob) = 32),
    len        INTEGER NOT NULL CHECK (len >= 0)
) WITHOUT ROWID;
