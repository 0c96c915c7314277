-- Dorandoran relay store on PostgreSQL, schema version 3: a link code alone adds no
-- device (as the SQLite store's 004_link_requests.sql; semantics in
-- sync-server/src/store.rs: claim_link_code, answer_link).

-- A new device that presented a link code, waiting for a signed-in device of the
-- code's user to confirm or reject it. One request per code (the code's first
-- claimant); it expires with the code. `state`: 0 pending, 1 accepted (the device
-- was added), 2 rejected.
CREATE TABLE link_requests (
    id           bytea    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    code_hash    bytea    NOT NULL UNIQUE REFERENCES link_codes (code_hash),
    user_id      bytea    NOT NULL REFERENCES users (id),
    device       bytea    NOT NULL CHECK (length(device) = 16),
    device_key   bytea    NOT NULL CHECK (length(device_key) = 32),
    client       text     NOT NULL,
    requested_at bigint   NOT NULL,
    expires_at   bigint   NOT NULL,
    state        smallint NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2))
);
CREATE INDEX link_requests_by_user ON link_requests (user_id, state, requested_at, id);
