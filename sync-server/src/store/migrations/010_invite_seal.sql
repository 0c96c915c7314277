-- Dorandoran relay store, schema version 10: invites carry their seal (issue 18).
-- The inviter's device signs, with the invite, whether the family's documents are
-- sealed end to end; the relay keeps that device, the flag and the signature and
-- serves them with the invite, so the invitee's device takes the family's sealing
-- from the inviter, not from the relay. Invites sent before have none: all three
-- columns are NULL together.
ALTER TABLE invites ADD COLUMN inviter_device BLOB
    CHECK (inviter_device IS NULL OR length(inviter_device) = 16);
ALTER TABLE invites ADD COLUMN sealed INTEGER
    CHECK (sealed IS NULL OR sealed IN (0, 1));
ALTER TABLE invites ADD COLUMN signature BLOB
    CHECK (signature IS NULL OR length(signature) = 64)
    CHECK ((inviter_device IS NULL) = (signature IS NULL)
           AND (sealed IS NULL) = (signature IS NULL));
