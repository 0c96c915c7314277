-- Dorandoran relay store, schema version 7: every chunk keeps the user whose device
-- pushed it, sent with it in every `Chunk` frame so that devices can refuse changes
-- written under another user's actor id. Chunks stored before have no author (NULL):
-- devices treat them as before.
ALTER TABLE chunks ADD COLUMN author BLOB CHECK (author IS NULL OR length(author) = 16);
