-- The key a sealed blob opens with (client-core/src/seal.rs). The file in the blob
-- folder holds the opened bytes; the key seals them again for upload and must match
-- the key of the entry that asks for them. NULL for a blob stored as it is.
ALTER TABLE blobs ADD COLUMN seal_key BLOB CHECK (seal_key IS NULL OR length(seal_key) = 32);
