-- Dorandoran relay store, schema version 4: a link code alone adds no device.
-- The semantics are described in sync-server/src/store.rs (claim_link_code,
-- answer_link).

-- A new device that presented a link code, waiting for a signed-in device of the
-- code's user to confirm or reject it. One request per code (the code's first
-- claimant); it expires with the code. `state`: 0 pending, 1 accepted (the device
-- was added), 2 rejected.
CREATE TABLE link_requests (
    id           BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    code_hash    BLOB    NOT NULL UNIQUE REFERENCES link_codes (code_hash),
    user         BLOB    NOT NULL REFERENCES users (id),
    device       BLOB    NOT NULL CHECK (length(device) = 16),
    device_key   BLOB    NOT NULL CHECK (length(device_key) = 32),
    client       TEXT    NOT NULL,
    requested_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    state        INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2))
);
CREATE INDEX link_requests_by_user ON link_requests (user, state, requested_at, id);
