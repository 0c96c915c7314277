-- Dorandoran relay store on PostgreSQL, schema version 11 (protocol 9): a family's
-- per-year volumes (issue 17), as in the SQLite store's 012_volumes.sql. A volume is a
-- document of its family, named by the family's id and a year (`FamilyId::volume`)
-- and opened by a member; `doc_owner` answers the family for it.
CREATE TABLE volumes (
    doc    bytea    NOT NULL PRIMARY KEY CHECK (length(doc) = 16),
    family bytea    NOT NULL REFERENCES families (id),
    year   smallint NOT NULL CHECK (year BETWEEN 1900 AND 2200),
    UNIQUE (family, year)
);
