-- Dorandoran relay store on PostgreSQL, schema version 8: key packages of users'
-- devices (issue 18), one per device (a new one replaces the old); see the SQLite
-- schema's 009_key_packages.sql.
CREATE TABLE key_packages (
    device       bytea  NOT NULL PRIMARY KEY REFERENCES devices (id),
    user_id      bytea  NOT NULL REFERENCES users (id),
    package      bytea  NOT NULL CHECK (length(package) > 0),
    published_at bigint NOT NULL
);

CREATE INDEX key_packages_of_user ON key_packages (user_id);
