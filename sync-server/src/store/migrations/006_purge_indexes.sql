-- Dorandoran relay store, schema version 6: finished link codes, link requests and
-- invites are purged (`AccountStore::purge_finished`), and a new link code replaces
-- its user's unclaimed ones (`put_link_code`). These indexes keep both from scanning
-- the whole table.
CREATE INDEX link_codes_by_user ON link_codes (user) WHERE used_at IS NULL;
CREATE INDEX link_codes_by_expiry ON link_codes (expires_at);
CREATE INDEX link_requests_by_expiry ON link_requests (expires_at);
CREATE INDEX invites_closed_by_time ON invites (closed_at) WHERE state <> 'pending';
CREATE INDEX invites_pending_by_expiry ON invites (expires_at) WHERE state = 'pending';
