-- Dorandoran relay store, schema version 12 (protocol 9): a family's per-year volumes
-- (issue 17). A volume is a document of its family, named by the family's id and a
-- year (`FamilyId::volume`) and opened by a member; the relay serves and keeps it like
-- the family's document (`doc_owner` answers the family). `docs` keeps one document
-- per family, so volumes have their own table. A deleted family's rows stay, like its
-- `docs` row: `doc_owner` reads only live families, and the ids stay taken.
CREATE TABLE volumes (
    doc    BLOB    NOT NULL PRIMARY KEY CHECK (length(doc) = 16),
    family BLOB    NOT NULL REFERENCES families (id),
    year   INTEGER NOT NULL CHECK (year BETWEEN 1900 AND 2200),
    UNIQUE (family, year)
);
