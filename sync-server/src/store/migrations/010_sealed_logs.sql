-- Dorandoran relay store, schema version 10: a family created clear can be sealed end
-- to end by its host (issue 18). A log is sealed once its host pushed the first
-- envelope (a chunk starting with the `DRD` magic); from then on it takes envelopes
-- only, checked in the same transaction as each append (`LogStore::append_batch`).
ALTER TABLE logs ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0 CHECK (sealed IN (0, 1));
