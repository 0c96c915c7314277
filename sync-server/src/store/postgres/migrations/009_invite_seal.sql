-- Dorandoran relay store on PostgreSQL, schema version 9: invites carry their seal
-- (issue 18): the inviter's device, whether the family is sealed, and that device's
-- signature over the invite; all three NULL for an invite sent before. See the SQLite
-- schema's 010_invite_seal.sql.
ALTER TABLE invites
    ADD COLUMN inviter_device bytea CHECK (length(inviter_device) = 16),
    ADD COLUMN sealed         boolean,
    ADD COLUMN signature      bytea CHECK (length(signature) = 64),
    ADD CONSTRAINT invites_seal_whole
        CHECK ((inviter_device IS NULL) = (signature IS NULL)
               AND (sealed IS NULL) = (signature IS NULL));
