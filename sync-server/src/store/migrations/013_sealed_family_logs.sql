-- Dorandoran relay store, schema version 13: the logs of families sealed from their
-- creation before their id said so. Schema 10 gave every log a sealing flag, clear
-- until its family's host pushes an envelope; such a family's log was sealed from its
-- first chunk but marked clear, so its members' envelopes were refused until its host
-- wrote again, and its per-year volumes (issue 17; a volume opens once its family's
-- log is sealed) would not open. A family document's log whose kept chunks are all
-- envelopes, one of them at least by the family's host, is marked sealed, as the
-- host's envelope seals a log today: a family created clear always has clear chunks
-- from its host's device, and before schema 10 a member could push an envelope into
-- a clear family's log, so members' envelopes alone say nothing. A log with no chunk
-- kept (a snapshot only: the relay reads no blob here), or whose host's chunks were
-- stored before their author was (schema 7), stays as it is until its host's next
-- envelope.
UPDATE logs SET sealed = 1
WHERE sealed = 0
  AND doc IN (SELECT id FROM families)
  AND EXISTS (
      SELECT 1 FROM chunks c JOIN families f ON f.id = c.doc
      WHERE c.doc = logs.doc AND c.author = f.host
  )
  AND NOT EXISTS (
      SELECT 1 FROM chunks c
      WHERE c.doc = logs.doc AND substr(c.bytes, 1, 3) <> X'445244'
  );
