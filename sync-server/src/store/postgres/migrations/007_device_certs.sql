-- Certificates of users' devices (issue 18): the user key, or another device of the
-- user, vouching for a device's key; see the SQLite schema's 008_device_certs.sql.
-- `by_user`: signed by the user key (`by_device` is then 16 zero bytes); otherwise
-- by the device `by_device`. Oldest first is `id` order.
CREATE TABLE device_certs (
    id         bigserial PRIMARY KEY,
    user_id    bytea     NOT NULL REFERENCES users (id),
    device     bytea     NOT NULL CHECK (length(device) = 16),
    device_key bytea     NOT NULL CHECK (length(device_key) = 32),
    by_user    boolean   NOT NULL,
    by_device  bytea     NOT NULL CHECK (length(by_device) = 16),
    signature  bytea     NOT NULL CHECK (length(signature) = 64),
    UNIQUE (device, by_user, by_device)
);

CREATE INDEX device_certs_of_user ON device_certs (user_id, id);
