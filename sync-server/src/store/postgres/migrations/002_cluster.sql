-- Dorandoran relay store on PostgreSQL, schema version 2: what the relays of one
-- cluster share besides accounts and logs (sync-server/src/cluster.rs).

-- Each running relay, and when it last said it is alive. A relay not heard from for
-- a while is dead: its sessions no longer count as online.
CREATE TABLE relays (
    id         text   NOT NULL PRIMARY KEY,
    started_at bigint NOT NULL,
    beat_at    bigint NOT NULL
);

-- Every signed-in websocket session of every relay: presence across the cluster.
CREATE TABLE sessions (
    relay   text   NOT NULL,
    conn    bigint NOT NULL,
    user_id bytea  NOT NULL CHECK (length(user_id) = 16),
    device  bytea  NOT NULL CHECK (length(device) = 16),
    since   bigint NOT NULL,
    PRIMARY KEY (relay, conn)
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Signed HTTP requests accepted (their signature's first 32 bytes) until their time
-- window closes: each is accepted once by the whole cluster.
CREATE TABLE http_signatures (
    key       bytea  NOT NULL PRIMARY KEY CHECK (length(key) = 32),
    forget_at bigint NOT NULL
);
CREATE INDEX http_signatures_by_time ON http_signatures (forget_at);

-- Events for devices (invites, membership, presence...) published by one relay for
-- the sessions of the others; announced by id, read once by each relay, and
-- forgotten after a few minutes.
CREATE TABLE relay_events (
    id      bigserial NOT NULL PRIMARY KEY,
    at      bigint    NOT NULL,
    payload bytea     NOT NULL
);
CREATE INDEX relay_events_by_time ON relay_events (at);
