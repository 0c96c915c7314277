-- Dorandoran relay store on PostgreSQL, schema version 10 (protocol 7): the relay no
-- longer knows family titles or 호칭 (issue 18: it keeps routing, membership, sizes
-- and timing, nothing else). A family's title and its members' 호칭 live in the
-- family document; an invite carries an opaque card the inviter's device sealed
-- (`invites.card`). The columns that held them go, with the UNIQUE (family, name)
-- that made the relay the judge of 호칭 (devices keep them unique in the family
-- document now), and so do their bytes.
--
-- Invites pending when this runs are kept, answerable, with an empty card: they were
-- sent without one, and devices show an invite whose card they cannot open as one
-- without a title or a proposed 호칭 (the invitee chooses their own on accepting).

-- Events relays passed each other a moment ago: invites with their titles and 호칭,
-- members with their names, in protocol 6's shapes, which this relay can neither
-- decode nor deliver. They are kept for minutes only; none is owed to anyone now.
-- Truncated, not deleted: a DELETE leaves the rows' bytes in the table's pages until
-- a vacuum (the upgrade stops every relay first, so the lock harms nobody).
TRUNCATE relay_events;

ALTER TABLE families DROP COLUMN title;
-- Drops the UNIQUE (family, name) constraint and its index with it.
ALTER TABLE members DROP COLUMN name;
ALTER TABLE invites DROP COLUMN proposed_name;
ALTER TABLE invites ADD COLUMN card bytea NOT NULL DEFAULT '\x'::bytea;
ALTER TABLE invites ALTER COLUMN card DROP DEFAULT;

-- A dropped column's values stay in every row (and in the old row versions) until
-- the table is rewritten: CLUSTER writes each table anew, the dropped columns as
-- nulls, and its old files are removed at commit. (What PostgreSQL's WAL archive, a
-- standby or a backup kept of them is beyond the relay's reach: see
-- docs/operations.md.) CLUSTER of one named table may run in this transaction; the
-- tables are not left marked clustered.
CLUSTER families USING families_pkey;
CLUSTER members USING members_pkey;
CLUSTER invites USING invites_pkey;
ALTER TABLE families SET WITHOUT CLUSTER;
ALTER TABLE members SET WITHOUT CLUSTER;
ALTER TABLE invites SET WITHOUT CLUSTER;
