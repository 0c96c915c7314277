-- Dorandoran relay store on PostgreSQL, schema version 9: a family created clear can
-- be sealed end to end by its host (issue 18). A log is sealed once its host pushed
-- the first envelope; from then on it takes envelopes only, checked in the same
-- statement as each append.
ALTER TABLE logs ADD COLUMN sealed boolean NOT NULL DEFAULT false;

-- `doran_append` as in 006_chunk_authors.sql, with each chunk's part in its log's
-- sealing (`p_sealing[i]`: 0 no rule, 1 a clear chunk of a family document, 2 an
-- envelope from the family's host — it seals the log —, 3 an envelope from another
-- member) and a refusal code instead of a flag (0 none, 1 the log is full, 2 a clear
-- chunk in a sealed log, 3 another member's envelope in a clear log). The old
-- signature is dropped: a relay that appends without the sealing rule must not run
-- against this schema.
DROP FUNCTION doran_append(bytea[], bytea[], bytea[], bytea[], bigint[], bigint[], text, text);

CREATE FUNCTION doran_append(
    p_docs bytea[], p_chunks bytea[], p_bytes bytea[], p_authors bytea[], p_ats bigint[],
    p_max bigint[], p_sealing smallint[], p_channel text, p_origin text)
RETURNS TABLE (seq bigint, existed boolean, refused smallint)
LANGUAGE plpgsql AS $$
DECLARE
    i int;
    h bigint;
    held bigint;
    is_sealed boolean;
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
            seq := found_seq; existed := true; refused := 0;
            RETURN NEXT;
            CONTINUE;
        END IF;
        len := length(p_bytes[i]);
        SELECT l.bytes, l.sealed INTO held, is_sealed FROM logs l WHERE l.doc = p_docs[i];
        IF held + len > p_max[i] THEN
            seq := 0; existed := false; refused := 1;
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF p_sealing[i] = 1 AND is_sealed THEN
            seq := 0; existed := false; refused := 2;
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF p_sealing[i] = 3 AND NOT is_sealed THEN
            seq := 0; existed := false; refused := 3;
            RETURN NEXT;
            CONTINUE;
        END IF;
        UPDATE logs l SET head = l.head + 1, bytes = l.bytes + len,
                sealed = l.sealed OR p_sealing[i] = 2
            WHERE l.doc = p_docs[i] RETURNING l.head INTO h;
        INSERT INTO chunks (doc, seq, chunk_id, bytes, author, at)
            VALUES (p_docs[i], h, p_chunks[i], p_bytes[i], p_authors[i], p_ats[i]);
        IF p_channel IS NOT NULL THEN
            PERFORM pg_notify(p_channel,
                'c ' || p_origin || ' ' || encode(p_docs[i], 'hex') || ' ' || h);
        END IF;
        seq := h; existed := false; refused := 0;
        RETURN NEXT;
    END LOOP;
END;
$$;
