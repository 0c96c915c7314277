-- Dorandoran relay store on PostgreSQL, schema version 6: every chunk keeps the user
-- whose device pushed it, sent with it in every `Chunk` frame so that devices can
-- refuse changes written under another user's actor id. Chunks stored before have no
-- author (NULL): devices treat them as before.
ALTER TABLE chunks ADD COLUMN author bytea CHECK (author IS NULL OR length(author) = 16);

-- `doran_append` as in 001_init.sql, with the authors (`p_authors[i]` may be NULL).
-- The old signature is dropped: a relay that appends without authors must not run
-- against this schema.
DROP FUNCTION doran_append(bytea[], bytea[], bytea[], bigint[], bigint[], text, text);

CREATE FUNCTION doran_append(
    p_docs bytea[], p_chunks bytea[], p_bytes bytea[], p_authors bytea[], p_ats bigint[],
    p_max bigint[], p_channel text, p_origin text)
RETURNS TABLE (seq bigint, existed boolean, refused boolean)
LANGUAGE plpgsql AS $$
DECLARE
    i int;
    h bigint;
    held bigint;
    len bigint;
    found_seq bigint;
BEGIN
    INSERT INTO logs (doc, head, bytes)
        SELECT DISTINCT d, 0, 0 FROM unnest(p_docs) AS d ORDER BY 1
        ON CONFLICT (doc) DO NOTHING;
    PERFORM 1 FROM logs WHERE doc = ANY (p_docs) ORDER BY doc FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(p_docs, 1), 0) LOOP
        SELECT c.seq INTO found_seq FROM chunks c
            WHERE c.doc = p_docs[i] AND c.chunk_id = p_chunks[i];
        IF found_seq IS NOT NULL THEN
            seq := found_seq; existed := true; refused := false;
            RETURN NEXT;
            CONTINUE;
        END IF;
        len := length(p_bytes[i]);
        SELECT l.bytes INTO held FROM logs l WHERE l.doc = p_docs[i];
        IF held + len > p_max[i] THEN
            seq := 0; existed := false; refused := true;
            RETURN NEXT;
            CONTINUE;
        END IF;
        UPDATE logs l SET head = l.head + 1, bytes = l.bytes + len
            WHERE l.doc = p_docs[i] RETURNING l.head INTO h;
        INSERT INTO chunks (doc, seq, chunk_id, bytes, author, at)
            VALUES (p_docs[i], h, p_chunks[i], p_bytes[i], p_authors[i], p_ats[i]);
        IF p_channel IS NOT NULL THEN
            PERFORM pg_notify(p_channel,
                'c ' || p_origin || ' ' || encode(p_docs[i], 'hex') || ' ' || h);
        END IF;
        seq := h; existed := false; refused := false;
        RETURN NEXT;
    END LOOP;
END;
$$;
