-- Certificates of users' devices (issue 18): the user key, or another device of the
-- user, vouching for a device's key. The relay checks each before keeping it and
-- serves them to the user's co-members, who add the user's devices to a family's
-- end-to-end key group only if a chain leads to them from the user key.
-- `by_user` = 1: signed by the user key (`by_device` is then 16 zero bytes);
-- `by_user` = 0: signed by the device `by_device`. Oldest first is rowid order.
CREATE TABLE device_certs (
    user       BLOB    NOT NULL REFERENCES users (id),
    device     BLOB    NOT NULL CHECK (length(device) = 16),
    device_key BLOB    NOT NULL CHECK (length(device_key) = 32),
    by_user    INTEGER NOT NULL CHECK (by_user IN (0, 1)),
    by_device  BLOB    NOT NULL CHECK (length(by_device) = 16),
    signature  BLOB    NOT NULL CHECK (length(signature) = 64),
    UNIQUE (device, by_user, by_device)
);

CREATE INDEX device_certs_of_user ON device_certs (user);
