-- Dorandoran relay store on PostgreSQL, schema version 1: the same records as the
-- SQLite store's version 3 (sync-server/src/store/migrations/), in PostgreSQL's types.
-- The semantics are described in sync-server/src/store.rs.
-- Ids are bytea: user, device, family, doc and invite ids 16 bytes, keys, chunk ids and
-- blob hashes 32. Times are unix milliseconds (bigint). `user` is a reserved word
-- here, so user columns are `user_id`.

-- ----- accounts -----

CREATE TABLE users (
    id           bytea  NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    email        text   NOT NULL UNIQUE,
    nickname     text   NOT NULL,
    avatar       bytea  CHECK (avatar IS NULL OR length(avatar) = 32),
    user_key     bytea  NOT NULL UNIQUE CHECK (length(user_key) = 32),
    personal_doc bytea  NOT NULL UNIQUE CHECK (length(personal_doc) = 16),
    created_at   bigint NOT NULL
);

CREATE TABLE devices (
    id         bytea  NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id    bytea  NOT NULL REFERENCES users (id),
    key        bytea  NOT NULL UNIQUE CHECK (length(key) = 32),
    client     text   NOT NULL,
    added_at   bigint NOT NULL,
    last_seen  bigint,
    revoked_at bigint
);
CREATE INDEX devices_by_user ON devices (user_id, added_at, id);

CREATE TABLE link_codes (
    code_hash  bytea  NOT NULL PRIMARY KEY CHECK (length(code_hash) = 32),
    user_id    bytea  NOT NULL REFERENCES users (id),
    device     bytea  NOT NULL REFERENCES devices (id),
    expires_at bigint NOT NULL,
    used_at    bigint
);

-- ----- families -----

CREATE TABLE families (
    id         bytea   NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    title      text    NOT NULL,
    host       bytea   NOT NULL REFERENCES users (id),
    created_at bigint  NOT NULL,
    deleted    boolean NOT NULL DEFAULT false
);

CREATE TABLE docs (
    doc     bytea NOT NULL PRIMARY KEY CHECK (length(doc) = 16),
    family  bytea UNIQUE REFERENCES families (id),
    user_id bytea UNIQUE REFERENCES users (id),
    CHECK ((family IS NULL) <> (user_id IS NULL))
);

CREATE TABLE members (
    family    bytea  NOT NULL REFERENCES families (id),
    user_id   bytea  NOT NULL REFERENCES users (id),
    name      text   NOT NULL,
    role      text   NOT NULL CHECK (role IN ('host', 'member')),
    joined_at bigint NOT NULL,
    PRIMARY KEY (family, user_id),
    UNIQUE (family, name)
);
CREATE UNIQUE INDEX members_one_host ON members (family) WHERE role = 'host';
CREATE INDEX members_by_user ON members (user_id);

CREATE TABLE invites (
    id            bytea  NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    family        bytea  NOT NULL REFERENCES families (id),
    inviter       bytea  NOT NULL REFERENCES users (id),
    invitee       bytea  NOT NULL REFERENCES users (id),
    proposed_name text   NOT NULL,
    created_at    bigint NOT NULL,
    expires_at    bigint NOT NULL,
    state         text   NOT NULL
                  CHECK (state IN ('pending', 'accepted', 'rejected', 'withdrawn')),
    closed_at     bigint,
    CHECK (expires_at > created_at),
    CHECK ((state = 'pending') = (closed_at IS NULL))
);
CREATE INDEX invites_pending_by_invitee ON invites (invitee, created_at)
    WHERE state = 'pending';
CREATE INDEX invites_by_family ON invites (family, state, created_at);

-- ----- blobs: grants, snapshot references, releases -----

CREATE TABLE blob_grants (
    family      bytea  NOT NULL REFERENCES families (id),
    blob        bytea  NOT NULL CHECK (length(blob) = 32),
    size        bigint NOT NULL CHECK (size >= 0),
    uploaded_by bytea  CHECK (uploaded_by IS NULL OR length(uploaded_by) = 16),
    PRIMARY KEY (family, blob)
);
CREATE INDEX blob_grants_by_blob ON blob_grants (blob);

CREATE TABLE user_blob_grants (
    user_id bytea  NOT NULL REFERENCES users (id),
    blob    bytea  NOT NULL CHECK (length(blob) = 32),
    size    bigint NOT NULL CHECK (size >= 0),
    PRIMARY KEY (user_id, blob)
);
CREATE INDEX user_blob_grants_by_blob ON user_blob_grants (blob);

CREATE TABLE snapshot_refs (
    doc     bytea  NOT NULL CHECK (length(doc) = 16),
    blob    bytea  NOT NULL CHECK (length(blob) = 32),
    family  bytea  REFERENCES families (id),
    user_id bytea  REFERENCES users (id),
    size    bigint NOT NULL CHECK (size >= 0),
    CHECK ((family IS NULL) <> (user_id IS NULL)),
    PRIMARY KEY (doc, blob)
);
CREATE INDEX snapshot_refs_by_blob ON snapshot_refs (blob);
CREATE INDEX snapshot_refs_by_family ON snapshot_refs (family) WHERE family IS NOT NULL;
CREATE INDEX snapshot_refs_by_user ON snapshot_refs (user_id) WHERE user_id IS NOT NULL;

CREATE TABLE blob_releases (
    blob        bytea  NOT NULL CHECK (length(blob) = 32),
    family      bytea,
    user_id     bytea,
    size        bigint NOT NULL CHECK (size >= 0),
    released_at bigint NOT NULL
);
CREATE INDEX blob_releases_by_blob ON blob_releases (blob);
CREATE INDEX blob_releases_by_time ON blob_releases (released_at);
CREATE INDEX blob_releases_by_family ON blob_releases (family) WHERE family IS NOT NULL;
CREATE INDEX blob_releases_by_user ON blob_releases (user_id) WHERE user_id IS NOT NULL;

-- ----- document logs -----

-- Each document's head (kept when a snapshot drops chunks: seqs are never reused) and
-- the bytes of chunks its log holds now (its quota). The row is the document's lock:
-- an append takes it, so appends to one document from any number of relays get
-- consecutive seqs.
CREATE TABLE logs (
    doc   bytea  NOT NULL PRIMARY KEY CHECK (length(doc) = 16),
    head  bigint NOT NULL CHECK (head >= 0),
    bytes bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0)
);

CREATE TABLE chunks (
    doc      bytea  NOT NULL REFERENCES logs (doc),
    seq      bigint NOT NULL CHECK (seq > 0),
    chunk_id bytea  NOT NULL CHECK (length(chunk_id) = 32),
    bytes    bytea  NOT NULL,
    at       bigint NOT NULL,
    PRIMARY KEY (doc, seq),
    UNIQUE (doc, chunk_id)
);

CREATE TABLE snapshots (
    doc        bytea  NOT NULL PRIMARY KEY REFERENCES logs (doc),
    covers_seq bigint NOT NULL CHECK (covers_seq > 0),
    blob       bytea  NOT NULL CHECK (length(blob) = 32),
    len        bigint NOT NULL CHECK (len >= 0)
);

-- A group of appends in one statement, so one round trip and one commit (one WAL
-- flush) per group: `LogStore::append_batch`. Row i of the result answers chunk i:
-- its seq and whether it existed, or `full` (refused: over its log's quota). The
-- documents' rows are created and locked first, in id order, so two relays appending
-- to the same documents in different orders wait for each other instead of
-- deadlocking. Each new chunk is announced on `channel` as `c ORIGIN DOC SEQ` (hex
-- ids), delivered to the other relays when — and only if — the group commits.
CREATE FUNCTION doran_append(
    p_docs bytea[], p_chunks bytea[], p_bytes bytea[], p_ats bigint[], p_max bigint[],
    p_channel text, p_origin text)
RETURNS TABLE (seq bigint, existed boolean, refused boolean)
LANGUAGE plpgsql AS $$
DECLARE
    i int;
    h bigint;
    held bigint;
    len bigint;
    found_seq bigint;
BEGIN
    INSERT INTO logs (doc, head, bytes)
        SELECT DISTINCT d, 0, 0 FROM unnest(p_docs) AS d ORDER BY 1
        ON CONFLICT (doc) DO NOTHING;
    PERFORM 1 FROM logs WHERE doc = ANY (p_docs) ORDER BY doc FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(p_docs, 1), 0) LOOP
        SELECT c.seq INTO found_seq FROM chunks c
            WHERE c.doc = p_docs[i] AND c.chunk_id = p_chunks[i];
        IF found_seq IS NOT NULL THEN
            seq := found_seq; existed := true; refused := false;
            RETURN NEXT;
            CONTINUE;
        END IF;
        len := length(p_bytes[i]);
        SELECT l.bytes INTO held FROM logs l WHERE l.doc = p_docs[i];
        IF held + len > p_max[i] THEN
            seq := 0; existed := false; refused := true;
            RETURN NEXT;
            CONTINUE;
        END IF;
        UPDATE logs l SET head = l.head + 1, bytes = l.bytes + len
            WHERE l.doc = p_docs[i] RETURNING l.head INTO h;
        INSERT INTO chunks (doc, seq, chunk_id, bytes, at)
            VALUES (p_docs[i], h, p_chunks[i], p_bytes[i], p_ats[i]);
        IF p_channel IS NOT NULL THEN
            PERFORM pg_notify(p_channel,
                'c ' || p_origin || ' ' || encode(p_docs[i], 'hex') || ' ' || h);
        END IF;
        seq := h; existed := false; refused := false;
        RETURN NEXT;
    END LOOP;
END;
$$;
