-- Dorandoran relay store, schema version 11 (protocol 7): the relay no longer knows
-- family titles or 호칭 (issue 18: it keeps routing, membership, sizes and timing,
-- nothing else). A family's title and its members' 호칭 live in the family document;
-- an invite carries an opaque card the inviter's device sealed (`invites.card`). The
-- columns that held them go, with the UNIQUE (family, name) that made the relay the
-- judge of 호칭 (devices keep them unique in the family document now), and so do
-- their bytes: nothing of an old title or 호칭 may stay readable in the file.
--
-- How nothing stays behind:
-- - `secure_delete` on for this migration (the store turns it on only after its
--   migrations ran): every page and cell freed below is overwritten with zeros.
-- - The three tables are rebuilt, not altered: a column dropped in place would leave
--   what older relays (which did not zero deleted rows) left in those tables' pages —
--   a title before a rename, the 호칭 of a member who left. Dropping a table frees,
--   and so zeroes, all of its pages, its indexes' too (the UNIQUE index held every
--   호칭).
-- - Then every free page of the file is zeroed (see the end).
-- - The store empties the WAL after its migrations (`SqliteStore::open`): it still
--   holds pages as they were before this migration.
--
-- Invites pending when this runs are kept, answerable, with an empty card: they were
-- sent without one, and devices show an invite whose card they cannot open as one
-- without a title or a proposed 호칭 (the invitee chooses their own on accepting).
PRAGMA secure_delete = ON;
-- `families` is referenced by other tables (docs, blob grants, snapshot references):
-- dropping it counts their rows as violations, which the rows put back below settle
-- before the commit. Deferred, not immediate, so the drop may proceed.
PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE families_kept AS
    SELECT id, host, created_at, deleted FROM main.families;
CREATE TEMP TABLE members_kept AS
    SELECT family, user, role, joined_at FROM main.members;
CREATE TEMP TABLE invites_kept AS
    SELECT id, family, inviter, invitee, created_at, expires_at, state, closed_at
    FROM main.invites;

-- Children first, so their rows are not counted against the families' drop.
DROP TABLE main.members;
DROP TABLE main.invites;
DROP TABLE main.families;

-- A family. A deleted one keeps its row (`deleted`) so that its id is never reused;
-- its memberships, invites and grants are gone.
CREATE TABLE main.families (
    id         BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    host       BLOB    NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
);

-- Who belongs to which family, with exactly one host per family.
CREATE TABLE main.members (
    family    BLOB    NOT NULL REFERENCES families (id),
    user      BLOB    NOT NULL REFERENCES users (id),
    role      TEXT    NOT NULL CHECK (role IN ('host', 'member')),
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (family, user)
) WITHOUT ROWID;
CREATE UNIQUE INDEX main.members_one_host ON members (family) WHERE role = 'host';
CREATE INDEX main.members_by_user ON members (user);

-- Invitations, each with the card its inviter's device sealed (opaque, served back
-- as stored). `expired` is not a stored state: a pending invite past `expires_at`
-- reads as expired.
CREATE TABLE main.invites (
    id         BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    family     BLOB    NOT NULL REFERENCES families (id),
    inviter    BLOB    NOT NULL REFERENCES users (id),
    invitee    BLOB    NOT NULL REFERENCES users (id),
    card       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    state      TEXT    NOT NULL
               CHECK (state IN ('pending', 'accepted', 'rejected', 'withdrawn')),
    closed_at  INTEGER,
    CHECK (expires_at > created_at),
    CHECK ((state = 'pending') = (closed_at IS NULL))
);
CREATE INDEX main.invites_pending_by_invitee ON invites (invitee, created_at)
    WHERE state = 'pending';
CREATE INDEX main.invites_by_family ON invites (family, state, created_at);
CREATE INDEX main.invites_closed_by_time ON invites (closed_at) WHERE state <> 'pending';
CREATE INDEX main.invites_pending_by_expiry ON invites (expires_at) WHERE state = 'pending';

-- Families first: each row put back settles the violations its drop counted.
INSERT INTO main.families (id, host, created_at, deleted)
    SELECT id, host, created_at, deleted FROM temp.families_kept;
INSERT INTO main.members (family, user, role, joined_at)
    SELECT family, user, role, joined_at FROM temp.members_kept;
INSERT INTO main.invites (id, family, inviter, invitee, card, created_at, expires_at, state,
                          closed_at)
    SELECT id, family, inviter, invitee, x'', created_at, expires_at, state, closed_at
    FROM temp.invites_kept;

DROP TABLE temp.families_kept;
DROP TABLE temp.members_kept;
DROP TABLE temp.invites_kept;

-- Every free page zeroed: older relays freed pages without zeroing them (invites
-- purged, members who left), and a free page keeps what it held. Filling the free
-- pages with a table of zeros takes each of them (SQLite reuses free pages before it
-- grows the file) and writes it whole; dropping the table frees them again, zeroed.
-- Rows of at most 256 pages, as many as the free pages: the file does not grow.
CREATE TABLE main.forget_scrub (zeros BLOB NOT NULL);
WITH RECURSIVE
    free(pages) AS (SELECT freelist_count FROM pragma_freelist_count()),
    size(bytes) AS (SELECT page_size FROM pragma_page_size()),
    chunk(first) AS (
        SELECT 0 FROM free WHERE pages > 0
        UNION ALL
        SELECT first + 256 FROM chunk, free WHERE first + 256 < free.pages
    )
INSERT INTO main.forget_scrub (zeros)
    SELECT zeroblob(min(256, free.pages - chunk.first) * (size.bytes - 4))
    FROM chunk, free, size;
DROP TABLE main.forget_scrub;
