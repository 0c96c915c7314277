-- Dorandoran relay store on PostgreSQL, schema version 12: the logs of families sealed
-- from their creation before their id said so (as 013_sealed_family_logs.sql of the
-- SQLite store). Schema 9 gave every log a sealing flag, clear until its family's host
-- pushes an envelope; such a family's log was sealed from its first chunk but marked
-- clear, so its members' envelopes were refused until its host wrote again, and its
-- per-year volumes (issue 17) would not open. A family document's log whose kept
-- chunks are all envelopes is marked sealed: a family created clear always has clear
-- chunks from its host's device, and only a sealed family's devices write envelopes.
-- A log with no chunk kept stays as it is until its host's next envelope.
UPDATE logs SET sealed = true
WHERE NOT sealed
  AND doc IN (SELECT id FROM families)
  AND EXISTS (SELECT 1 FROM chunks c WHERE c.doc = logs.doc)
  AND NOT EXISTS (
      SELECT 1 FROM chunks c
      WHERE c.doc = logs.doc AND substring(c.bytes FROM 1 FOR 3) <> '\x445244'::bytea
  );
