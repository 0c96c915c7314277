-- Dorandoran relay store, schema version 9: key packages of users' devices (issue
-- 18). Each device's MLS last-resort KeyPackage, opaque to the relay, one per device
-- (a new one replaces the old): a member's device adds the device to a family's
-- end-to-end key group with it while the device is offline. Revoked devices'
-- packages are never served. Devices are never deleted, so neither are their rows.
CREATE TABLE key_packages (
    device       BLOB    NOT NULL PRIMARY KEY REFERENCES devices (id),
    user         BLOB    NOT NULL REFERENCES users (id),
    package      BLOB    NOT NULL CHECK (length(package) > 0),
    published_at INTEGER NOT NULL
);

CREATE INDEX key_packages_of_user ON key_packages (user);
