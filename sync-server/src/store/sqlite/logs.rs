//! [`LogStore`] for [`SqliteStore`]: `logs` holds each document's head, `chunks` the
//! chunks since the snapshot (with the user who pushed each), `snapshots` the latest (confirmed) snapshot,
//! `pending_snapshots` the one waiting for confirmation.

use doran_protocol::{BlobHash, ChunkId, DeviceId, DocId, Seq, UserId};
use rusqlite::{Connection, OptionalExtension};

use super::{
    SqliteStore, checkpoints,
    rows::{collect, first, to_unsigned, unsigned},
};
use crate::store::{
    Appended, LogStore, NewChunk, PendingPut, PendingSnapshot, Sealing, SnapshotRef, StoreError,
    StoreResult, StoredChunk, rules::int,
};

fn head(tx: &Connection, doc: DocId) -> StoreResult<Seq> {
    let head: Option<i64> = tx
        .prepare_cached("SELECT head FROM logs WHERE doc = ?1")?
        .query_row([doc.0], |row| row.get(0))
        .optional()?;
    to_unsigned(head.unwrap_or(0), "head")
}

fn snapshot(tx: &Connection, doc: DocId) -> StoreResult<Option<SnapshotRef>> {
    let mut stmt =
        tx.prepare_cached("SELECT covers_seq, blob, len FROM snapshots WHERE doc = ?1")?;
    first(stmt.query([doc.0])?, |row| {
        Ok(SnapshotRef {
            covers_seq: unsigned(row, 0, "covers_seq")?,
            blob: BlobHash(row.get(1)?),
            len: unsigned(row, 2, "snapshot length")?,
        })
    })
}

fn pending(tx: &Connection, doc: DocId) -> StoreResult<Option<PendingSnapshot>> {
    let mut stmt = tx.prepare_cached(
        "SELECT covers_seq, blob, len, by_user, by_device, at FROM pending_snapshots WHERE doc = ?1",
    )?;
    first(stmt.query([doc.0])?, |row| {
        Ok(PendingSnapshot {
            snapshot: SnapshotRef {
                covers_seq: unsigned(row, 0, "covers_seq")?,
                blob: BlobHash(row.get(1)?),
                len: unsigned(row, 2, "snapshot length")?,
            },
            by: UserId(row.get(3)?),
            by_device: DeviceId(row.get(4)?),
            at: unsigned(row, 5, "pushed at")?,
        })
    })
}

/// Checks a snapshot's numbers against the head of `doc` (see
/// [`LogStore::put_snapshot`]).
fn check_snapshot(tx: &Connection, doc: DocId, snap: &SnapshotRef) -> StoreResult<()> {
    int("covers_seq", snap.covers_seq)?;
    int("len", snap.len)?;
    if snap.covers_seq == 0 {
        return Err(StoreError::Invalid(
            "a snapshot covers at least seq 1".into(),
        ));
    }
    let head = head(tx, doc)?;
    if snap.covers_seq > head {
        return Err(StoreError::Invalid(format!(
            "snapshot covers seq {} past the head {head}",
            snap.covers_seq
        )));
    }
    Ok(())
}

/// Whether a snapshot of `doc` covering `covers` drops clear chunks of a log its
/// family's host has sealed since they were written (its clear history, which the
/// relay should then keep nowhere).
fn drops_clear_history(tx: &Connection, doc: DocId, covers: Seq) -> StoreResult<bool> {
    let covers = int("covers_seq", covers)?;
    let sealed: Option<bool> = tx
        .prepare_cached("SELECT sealed FROM logs WHERE doc = ?1")?
        .query_row([doc.0], |row| row.get(0))
        .optional()?;
    if sealed != Some(true) {
        return Ok(false);
    }
    let clear: Option<i64> = tx
        .prepare_cached(
            "SELECT 1 FROM chunks WHERE doc = ?1 AND seq <= ?2 AND substr(bytes, 1, 3) <> ?3
             LIMIT 1",
        )?
        .query_row((doc.0, covers, &doran_protocol::SEALED_PREFIX[..]), |row| {
            row.get(0)
        })
        .optional()?;
    Ok(clear.is_some())
}

/// Records `snap` as the snapshot of `doc` and drops the chunks it covers, inside
/// `tx`; `false` (nothing changed) if an equal or newer one is recorded.
fn take_snapshot(tx: &Connection, doc: DocId, snap: &SnapshotRef) -> StoreResult<bool> {
    let covers = int("covers_seq", snap.covers_seq)?;
    let len = int("len", snap.len)?;
    if snapshot(tx, doc)?.is_some_and(|old| old.covers_seq >= snap.covers_seq) {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO snapshots (doc, covers_seq, blob, len) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (doc) DO UPDATE SET covers_seq = excluded.covers_seq,
                                         blob = excluded.blob, len = excluded.len",
    )?
    .execute((doc.0, covers, snap.blob.0, len))?;
    let dropped: i64 = tx
        .prepare_cached(
            "SELECT coalesce(sum(length(bytes)), 0) FROM chunks WHERE doc = ?1 AND seq <= ?2",
        )?
        .query_row((doc.0, covers), |row| row.get(0))?;
    tx.prepare_cached("DELETE FROM chunks WHERE doc = ?1 AND seq <= ?2")?
        .execute((doc.0, covers))?;
    tx.prepare_cached("UPDATE logs SET bytes = max(bytes - ?2, 0) WHERE doc = ?1")?
        .execute((doc.0, dropped))?;
    Ok(true)
}

/// The statements of an append, taken from the connection's statement cache once per
/// group rather than once per chunk: each `prepare_cached` hashes the statement's text
/// to find it and again to put it back, about 3 % of the relay's instructions per
/// push when done for every chunk.
///
/// They write `logs` and `chunks` and nothing else: a group of appends leaves the
/// account answers the store keeps in memory standing (`SqliteStore::write_logs`,
/// `read_cache`), so a statement here touching another table must go through
/// `SqliteStore::write` instead.
struct Appends<'c> {
    existing: rusqlite::CachedStatement<'c>,
    bump: rusqlite::CachedStatement<'c>,
    head: rusqlite::CachedStatement<'c>,
    insert: rusqlite::CachedStatement<'c>,
    unbump: rusqlite::CachedStatement<'c>,
}

impl<'c> Appends<'c> {
    fn prepare(tx: &'c Connection) -> StoreResult<Appends<'c>> {
        Ok(Appends {
            existing: tx
                .prepare_cached("SELECT seq FROM chunks WHERE doc = ?1 AND chunk_id = ?2")?,
            // The sealing rule rides in the same statement: a clear chunk updates only
            // a clear log, another member's envelope only a sealed one, and the host's
            // first envelope seals it (see `Sealing`).
            bump: tx.prepare_cached(
                "UPDATE logs SET head = head + 1, bytes = bytes + ?2, sealed = max(sealed, ?4 = 2)
                 WHERE doc = ?1 AND bytes + ?2 <= ?3
                   AND CASE ?4 WHEN 1 THEN sealed = 0 WHEN 3 THEN sealed = 1 ELSE 1 END",
            )?,
            head: tx.prepare_cached("SELECT head FROM logs WHERE doc = ?1")?,
            insert: tx.prepare_cached(
                "INSERT INTO chunks (doc, seq, chunk_id, bytes, author, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (doc, chunk_id) DO NOTHING",
            )?,
            unbump: tx.prepare_cached(
                "UPDATE logs SET head = head - 1, bytes = bytes - ?2 WHERE doc = ?1",
            )?,
        })
    }

    /// Appends one chunk inside `tx`, the transaction these statements were prepared
    /// on (see [`LogStore::append_batch`]). A chunk over its quota is refused with
    /// [`StoreError::DocumentFull`] before anything is written, so the transaction can
    /// go on with the next one.
    fn append(&mut self, tx: &Connection, c: &NewChunk<'_>, at: i64) -> StoreResult<Appended> {
        let len = c.bytes.len() as u64;
        if len > c.max_log_bytes {
            return self.stored_before(c)?.ok_or(StoreError::DocumentFull);
        }
        let len = int("chunk length", len)?;
        let max = i64::try_from(c.max_log_bytes).unwrap_or(i64::MAX);
        // The head moves in the same transaction as the insert, so seqs have no gaps
        // and are never reused, even after a snapshot dropped every chunk. The quota
        // is checked by the update itself: a log it would overflow is not updated.
        //
        // A plain one-row UPDATE, then the head read back: an upsert with RETURNING
        // (`INSERT … ON CONFLICT DO UPDATE … RETURNING`, one statement) made SQLite
        // open a statement journal for every chunk, whose memory going back to the
        // allocator made glibc hand pages back to the kernel (`madvise`, with a TLB
        // shootdown on every core) once per chunk: 49-53 µs of relay CPU per push
        // became 35-38 (seed-stress --mix changes, docs/benchmarks.md).
        let sealing = c.sealing.code();
        let updated = self.bump.execute((c.doc.0, len, max, sealing))?;
        if updated == 1 {
            let seq: i64 = self.head.query_row([c.doc.0], |row| row.get(0))?;
            // A chunk stored before (a push sent again) is not inserted twice, and the
            // head and bytes go back to what they were: the bump and the insert are
            // tried first because a chunk is new nearly always, which saves looking
            // its id up before. Its sealing mark needs no undoing: a log holding an
            // envelope is sealed already.
            if self.insert(c, seq, at)? {
                return Ok(Appended {
                    seq: to_unsigned(seq, "head")?,
                    existed: false,
                });
            }
            self.unbump.execute((c.doc.0, len))?;
            return self
                .stored_before(c)?
                .ok_or_else(|| StoreError::Invalid("a chunk neither new nor stored".into()));
        }
        // Not bumped: a chunk stored before is acknowledged whatever the log's state
        // now (full, or sealed since); otherwise say why, or start the log.
        if let Some(stored) = self.stored_before(c)? {
            return Ok(stored);
        }
        let known: Option<(bool, i64)> = tx
            .prepare_cached("SELECT sealed, bytes FROM logs WHERE doc = ?1")?
            .query_row([c.doc.0], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        // Refused for the same reason as on every backend: full first.
        match (known, c.sealing) {
            (Some((_, held)), _) if held.saturating_add(len) > max => {
                return Err(StoreError::DocumentFull);
            }
            (Some((true, _)), Sealing::Clear) => return Err(StoreError::DocumentSealed),
            (Some((false, _)) | None, Sealing::Envelope) => {
                return Err(StoreError::NotSealed);
            }
            (Some(_), _) => return Err(StoreError::DocumentFull),
            (None, _) => {}
        }
        tx.prepare_cached("INSERT INTO logs (doc, head, bytes, sealed) VALUES (?1, 1, ?2, ?3)")?
            .execute((c.doc.0, len, c.sealing == Sealing::Seals))?;
        if !self.insert(c, 1, at)? {
            return Err(StoreError::Invalid(
                "a new log held the chunk already".into(),
            ));
        }
        Ok(Appended {
            seq: 1,
            existed: false,
        })
    }

    /// Inserts the chunk at `seq`; `false` if its log holds it already.
    fn insert(&mut self, c: &NewChunk<'_>, seq: i64, at: i64) -> StoreResult<bool> {
        let inserted =
            self.insert
                .execute((c.doc.0, seq, c.chunk.0, c.bytes, c.author.map(|u| u.0), at))?;
        Ok(inserted == 1)
    }

    /// The chunk's place if its log holds it already.
    fn stored_before(&mut self, c: &NewChunk<'_>) -> StoreResult<Option<Appended>> {
        let existing: Option<i64> = self
            .existing
            .query_row((c.doc.0, c.chunk.0), |row| row.get(0))
            .optional()?;
        existing
            .map(|seq| {
                Ok(Appended {
                    seq: to_unsigned(seq, "seq")?,
                    existed: true,
                })
            })
            .transpose()
    }
}

impl LogStore for SqliteStore {
    /// One transaction (one fsync) for the whole group; a chunk over its quota is
    /// refused alone inside it. If the transaction fails — a bad value in one chunk,
    /// a full disk — the group is rolled back and appended one by one, so each chunk
    /// gets its own answer and a bad one does not sink the others.
    fn append_batch(&self, chunks: &[NewChunk<'_>]) -> StoreResult<Vec<StoreResult<Appended>>> {
        let ats: StoreResult<Vec<i64>> = chunks.iter().map(|c| int("at", c.at)).collect();
        if let Ok(ats) = ats {
            // Appends write only `logs` and `chunks`: the account answers kept in
            // memory stay good (`read_cache`).
            let together = self.write_logs(|tx| {
                let mut appends = Appends::prepare(tx)?;
                let mut out = Vec::with_capacity(chunks.len());
                for (c, &at) in chunks.iter().zip(&ats) {
                    match appends.append(tx, c, at) {
                        Err(
                            e @ (StoreError::DocumentFull
                            | StoreError::DocumentSealed
                            | StoreError::NotSealed),
                        ) => out.push(Err(e)),
                        other => out.push(Ok(other?)),
                    }
                }
                Ok(out)
            });
            match together {
                Ok(all) => return Ok(all),
                Err(e) => tracing::warn!(error = %e, "group append failed; appending one by one"),
            }
        }
        Ok(chunks
            .iter()
            .map(|c| {
                let at = int("at", c.at)?;
                self.write_logs(|tx| Appends::prepare(tx)?.append(tx, c, at))
            })
            .collect())
    }

    fn log_bytes(&self, doc: DocId) -> StoreResult<u64> {
        self.read(|tx| {
            let bytes: Option<i64> = tx
                .prepare_cached("SELECT bytes FROM logs WHERE doc = ?1")?
                .query_row([doc.0], |row| row.get(0))
                .optional()?;
            to_unsigned(bytes.unwrap_or(0), "log bytes")
        })
    }

    fn log_sealed(&self, doc: DocId) -> StoreResult<bool> {
        self.read(|tx| {
            let sealed: Option<bool> = tx
                .prepare_cached("SELECT sealed FROM logs WHERE doc = ?1")?
                .query_row([doc.0], |row| row.get(0))
                .optional()?;
            Ok(sealed.unwrap_or(false))
        })
    }

    fn read_since(&self, doc: DocId, since: Seq, limit: usize) -> StoreResult<Vec<StoredChunk>> {
        let since = int("since", since)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT seq, chunk_id, bytes, author FROM chunks
                 WHERE doc = ?1
                   AND seq > max(?2, coalesce((SELECT covers_seq FROM snapshots WHERE doc = ?1), 0))
                 ORDER BY seq LIMIT ?3",
            )?;
            collect(stmt.query((doc.0, since, limit))?, |row| {
                Ok(StoredChunk {
                    seq: unsigned(row, 0, "seq")?,
                    chunk: ChunkId(row.get(1)?),
                    author: row.get::<_, Option<[u8; 16]>>(3)?.map(UserId),
                    bytes: row.get(2)?,
                })
            })
        })
    }

    fn head(&self, doc: DocId) -> StoreResult<Seq> {
        self.read(|tx| head(tx, doc))
    }

    fn put_snapshot(&self, doc: DocId, snap: &SnapshotRef) -> StoreResult<bool> {
        self.write(|tx| {
            check_snapshot(tx, doc, snap)?;
            take_snapshot(tx, doc, snap)
        })
    }

    fn put_pending_snapshot(&self, doc: DocId, p: &PendingSnapshot) -> StoreResult<PendingPut> {
        let at = int("at", p.at)?;
        self.write(|tx| {
            check_snapshot(tx, doc, &p.snapshot)?;
            if snapshot(tx, doc)?.is_some_and(|s| s.covers_seq >= p.snapshot.covers_seq) {
                return Ok(PendingPut::Stale);
            }
            let old = pending(tx, doc)?;
            if old.is_some_and(|o| o.snapshot == p.snapshot) {
                return Ok(PendingPut::Same);
            }
            tx.prepare_cached(
                "INSERT INTO pending_snapshots (doc, covers_seq, blob, len, by_user, by_device, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (doc) DO UPDATE SET covers_seq = excluded.covers_seq,
                     blob = excluded.blob, len = excluded.len, by_user = excluded.by_user,
                     by_device = excluded.by_device, at = excluded.at",
            )?
            .execute((
                doc.0,
                int("covers_seq", p.snapshot.covers_seq)?,
                p.snapshot.blob.0,
                int("len", p.snapshot.len)?,
                p.by.0,
                p.by_device.0,
                at,
            ))?;
            Ok(PendingPut::Recorded(old))
        })
    }

    fn pending_snapshot(&self, doc: DocId) -> StoreResult<Option<PendingSnapshot>> {
        self.read(|tx| pending(tx, doc))
    }

    fn confirm_snapshot(
        &self,
        doc: DocId,
        covers_seq: Seq,
        blob: BlobHash,
        pushed_since: u64,
    ) -> StoreResult<PendingSnapshot> {
        let (p, wipe) = self.write(|tx| {
            let Some(p) = pending(tx, doc)?.filter(|p| {
                p.snapshot.covers_seq == covers_seq
                    && p.snapshot.blob == blob
                    && p.at >= pushed_since
            }) else {
                return Err(StoreError::NotFound("pending snapshot"));
            };
            let wipe = drops_clear_history(tx, doc, covers_seq)?;
            if !take_snapshot(tx, doc, &p.snapshot)? {
                return Err(StoreError::Conflict(
                    "the confirmed snapshot already covers as much".into(),
                ));
            }
            tx.prepare_cached("DELETE FROM pending_snapshots WHERE doc = ?1")?
                .execute([doc.0])?;
            Ok((p, wipe))
        })?;
        if wipe {
            // The dropped clear chunks are zeros in the database's pages now
            // (`secure_delete`), but the WAL still holds the pages as they were:
            // copied back and emptied, after the checkpoint thread's checkpoint if one
            // is running (only one runs at a time). With readers in the way, the thread
            // empties it as soon as it can: frames the WAL wrapped over stay in its
            // file until they are written over.
            let _no_other_checkpoint = self.checkpointer.as_ref().map(|c| c.hold());
            let conn = self.lock()?;
            // Waiting for readers only briefly: every append waits behind it.
            match checkpoints::empty_wal(&conn, std::time::Duration::from_millis(100)) {
                Ok(true) => tracing::info!(%doc, "a sealed family's clear history is wiped"),
                other => {
                    let error = other.err().map(|e| e.to_string());
                    match &self.checkpointer {
                        Some(checkpointer) => {
                            tracing::warn!(%doc, ?error, "the WAL could not be emptied now; the checkpoint thread will");
                            checkpointer.empty_later();
                        }
                        None => tracing::warn!(%doc, ?error, "the WAL could not be emptied"),
                    }
                }
            }
        }
        Ok(p)
    }

    fn expire_pending_snapshots(&self, before: u64) -> StoreResult<Vec<(DocId, PendingSnapshot)>> {
        let before = int("before", before)?;
        self.write(|tx| {
            let docs: Vec<[u8; 16]> = collect(
                tx.prepare_cached("SELECT doc FROM pending_snapshots WHERE at < ?1 ORDER BY doc")?
                    .query([before])?,
                |row| Ok(row.get(0)?),
            )?;
            let mut out = Vec::with_capacity(docs.len());
            for d in docs {
                let doc = DocId(d);
                if let Some(p) = pending(tx, doc)? {
                    out.push((doc, p));
                }
            }
            tx.prepare_cached("DELETE FROM pending_snapshots WHERE at < ?1")?
                .execute([before])?;
            Ok(out)
        })
    }

    fn snapshot(&self, doc: DocId) -> StoreResult<Option<SnapshotRef>> {
        self.read(|tx| snapshot(tx, doc))
    }

    fn drop_doc(&self, doc: DocId) -> StoreResult<()> {
        self.write(|tx| {
            for sql in [
                "DELETE FROM chunks WHERE doc = ?1",
                "DELETE FROM snapshots WHERE doc = ?1",
                "DELETE FROM pending_snapshots WHERE doc = ?1",
                "DELETE FROM logs WHERE doc = ?1",
            ] {
                tx.prepare_cached(sql)?.execute([doc.0])?;
            }
            Ok(())
        })
    }
}
