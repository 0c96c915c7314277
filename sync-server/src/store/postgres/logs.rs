//! [`LogStore`] for [`PgStore`]: `logs` holds each document's head and bytes, `chunks`
//! the chunks since the snapshot (with the user who pushed each), `snapshots` the latest (confirmed) snapshot,
//! `pending_snapshots` the one waiting for confirmation. A group of appends
//! is one call of `doran_append` (see the module docs of [`super`]).

use deadpool_postgres::{GenericClient, Transaction};
use doran_protocol::{BlobHash, ChunkId, DeviceId, DocId, Seq, UserId};
use tokio_postgres::{IsolationLevel, Row};

use super::{PgStore, bytes, bytes_opt, client, exec, retryable, row, rows, to_unsigned, unsigned};
use crate::store::{
    Appended, LogStore, NewChunk, PendingPut, PendingSnapshot, SnapshotRef, StoreError,
    StoreResult, StoredChunk, rules::int,
};

const PENDING: &str = "SELECT covers_seq, blob, len, by_user, by_device, at, doc
                       FROM pending_snapshots";

fn pending_row(r: &Row) -> StoreResult<(DocId, PendingSnapshot)> {
    Ok((
        DocId(bytes(r, 6)?),
        PendingSnapshot {
            snapshot: SnapshotRef {
                covers_seq: unsigned(r, 0, "covers_seq")?,
                blob: BlobHash(bytes(r, 1)?),
                len: unsigned(r, 2, "snapshot length")?,
            },
            by: UserId(bytes(r, 3)?),
            by_device: DeviceId(bytes(r, 4)?),
            at: unsigned(r, 5, "pushed at")?,
        },
    ))
}

async fn pending(c: &impl GenericClient, doc: DocId) -> StoreResult<Option<PendingSnapshot>> {
    row(c, &format!("{PENDING} WHERE doc = $1"), &[&doc.0])
        .await?
        .map(|r| pending_row(&r).map(|(_, p)| p))
        .transpose()
}

/// Locks the log of `doc` against appends and checks a snapshot's numbers against its
/// head (see [`LogStore::put_snapshot`]).
async fn check_snapshot(tx: &Transaction<'_>, doc: DocId, snap: &SnapshotRef) -> StoreResult<()> {
    let covers = int("covers_seq", snap.covers_seq)?;
    int("len", snap.len)?;
    if covers == 0 {
        return Err(StoreError::Invalid(
            "a snapshot covers at least seq 1".into(),
        ));
    }
    let head: i64 = row(
        tx,
        "SELECT head FROM logs WHERE doc = $1 FOR UPDATE",
        &[&doc.0],
    )
    .await?
    .map_or(Ok(0), |r| r.try_get(0))?;
    if covers > head {
        return Err(StoreError::Invalid(format!(
            "snapshot covers seq {} past the head {head}",
            snap.covers_seq
        )));
    }
    Ok(())
}

async fn confirmed_covers(tx: &Transaction<'_>, doc: DocId) -> StoreResult<Option<i64>> {
    Ok(row(
        tx,
        "SELECT covers_seq FROM snapshots WHERE doc = $1",
        &[&doc.0],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()?)
}

/// Records `snap` and drops the chunks it covers, inside `tx` (the log locked by
/// [`check_snapshot`]); `false` (nothing changed) if an equal or newer one is
/// recorded.
async fn take_snapshot(tx: &Transaction<'_>, doc: DocId, snap: &SnapshotRef) -> StoreResult<bool> {
    let covers = int("covers_seq", snap.covers_seq)?;
    let len = int("len", snap.len)?;
    if confirmed_covers(tx, doc)
        .await?
        .is_some_and(|old| old >= covers)
    {
        return Ok(false);
    }
    exec(
        tx,
        "INSERT INTO snapshots (doc, covers_seq, blob, len) VALUES ($1, $2, $3, $4)
         ON CONFLICT (doc) DO UPDATE SET covers_seq = excluded.covers_seq,
                                         blob = excluded.blob, len = excluded.len",
        &[&doc.0, &covers, &snap.blob.0, &len],
    )
    .await?;
    let dropped: i64 = row(
        tx,
        "WITH gone AS (DELETE FROM chunks WHERE doc = $1 AND seq <= $2 RETURNING length(bytes) AS n)
         SELECT coalesce(sum(n), 0)::bigint FROM gone",
        &[&doc.0, &covers],
    )
    .await?
    .map_or(Ok(0), |r| r.try_get(0))?;
    exec(
        tx,
        "UPDATE logs SET bytes = greatest(bytes - $2, 0) WHERE doc = $1",
        &[&doc.0, &dropped],
    )
    .await?;
    Ok(true)
}

impl PgStore {
    /// Appends the chunks in one statement (one transaction); row i answers chunk i.
    fn append_group(
        &self,
        chunks: &[&NewChunk<'_>],
        ats: &[i64],
    ) -> StoreResult<Vec<StoreResult<Appended>>> {
        let docs: Vec<&[u8]> = chunks.iter().map(|c| c.doc.0.as_slice()).collect();
        let ids: Vec<&[u8]> = chunks.iter().map(|c| c.chunk.0.as_slice()).collect();
        let bodies: Vec<&[u8]> = chunks.iter().map(|c| c.bytes).collect();
        let authors: Vec<Option<&[u8]>> = chunks
            .iter()
            .map(|c| c.author.as_ref().map(|u| u.0.as_slice()))
            .collect();
        let max: Vec<i64> = chunks
            .iter()
            .map(|c| i64::try_from(c.max_log_bytes).unwrap_or(i64::MAX))
            .collect();
        let sealing: Vec<i16> = chunks.iter().map(|c| c.sealing.code()).collect();
        self.run(async {
            let mut client = client(&self.pool).await?;
            let mut attempt = 1;
            loop {
                // READ COMMITTED: the function locks the documents' rows itself.
                let tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::ReadCommitted)
                    .start()
                    .await?;
                let answered = rows(
                    &tx,
                    "SELECT seq, existed, refused
                     FROM doran_append($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &docs,
                        &ids,
                        &bodies,
                        &authors,
                        &ats,
                        &max,
                        &sealing,
                        &self.channel,
                        &self.origin,
                    ],
                )
                .await;
                let out = match answered {
                    Ok(r) => tx.commit().await.map(|()| r).map_err(StoreError::from),
                    Err(e) => {
                        tx.rollback().await?;
                        Err(e)
                    }
                };
                match out {
                    Err(e) if retryable(&e) && attempt < super::WRITE_ATTEMPTS => attempt += 1,
                    Err(e) => return Err(e),
                    Ok(answers) => {
                        if answers.len() != chunks.len() {
                            return Err(StoreError::Corrupt(format!(
                                "{} answers for {} chunks",
                                answers.len(),
                                chunks.len()
                            )));
                        }
                        return answers
                            .iter()
                            .map(|r| -> StoreResult<StoreResult<Appended>> {
                                match r.try_get::<_, i16>(2)? {
                                    0 => {}
                                    1 => return Ok(Err(StoreError::DocumentFull)),
                                    2 => return Ok(Err(StoreError::DocumentSealed)),
                                    3 => return Ok(Err(StoreError::NotSealed)),
                                    other => {
                                        return Err(StoreError::Corrupt(format!(
                                            "append refused with code {other}"
                                        )));
                                    }
                                }
                                Ok(Ok(Appended {
                                    seq: unsigned(r, 0, "seq")?,
                                    existed: r.try_get(1)?,
                                }))
                            })
                            .collect();
                    }
                }
            }
        })
    }
}

impl LogStore for PgStore {
    /// One statement, one transaction, one commit for the whole group; a chunk over
    /// its quota, or with a time out of range, is refused alone. If the group fails —
    /// the database refused a value — it is appended one by one, so a bad chunk does
    /// not sink the others.
    fn append_batch(&self, chunks: &[NewChunk<'_>]) -> StoreResult<Vec<StoreResult<Appended>>> {
        let mut answers: Vec<Option<StoreResult<Appended>>> = Vec::with_capacity(chunks.len());
        let mut group = Vec::with_capacity(chunks.len());
        let mut ats = Vec::with_capacity(chunks.len());
        for c in chunks {
            match int("at", c.at) {
                Ok(at) => {
                    answers.push(None);
                    group.push(c);
                    ats.push(at);
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        if group.is_empty() {
            return Ok(answers.into_iter().flatten().collect());
        }
        let mut appended = match self.append_group(&group, &ats) {
            Ok(each) => each,
            Err(e) if group.len() > 1 => {
                tracing::warn!(error = %e, "group append failed; appending one by one");
                group
                    .iter()
                    .zip(&ats)
                    .map(|(c, at)| match self.append_group(&[*c], &[*at]) {
                        Ok(mut one) => one.pop().unwrap_or(Err(StoreError::NotFound("answer"))),
                        Err(e) => Err(e),
                    })
                    .collect()
            }
            Err(e) => return Err(e),
        }
        .into_iter();
        Ok(answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    appended
                        .next()
                        .unwrap_or(Err(StoreError::NotFound("answer")))
                })
            })
            .collect())
    }

    fn log_bytes(&self, doc: DocId) -> StoreResult<u64> {
        self.read(async |c| {
            let bytes: i64 = row(c, "SELECT bytes FROM logs WHERE doc = $1", &[&doc.0])
                .await?
                .map_or(Ok(0), |r| r.try_get(0))?;
            to_unsigned(bytes, "log bytes")
        })
    }

    fn log_sealed(&self, doc: DocId) -> StoreResult<bool> {
        self.read(async |c| {
            let sealed: bool = row(c, "SELECT sealed FROM logs WHERE doc = $1", &[&doc.0])
                .await?
                .map_or(Ok(false), |r| r.try_get(0))?;
            Ok(sealed)
        })
    }

    fn read_since(&self, doc: DocId, since: Seq, limit: usize) -> StoreResult<Vec<StoredChunk>> {
        let since = int("since", since)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(async |c| {
            rows(
                c,
                "SELECT seq, chunk_id, bytes, author FROM chunks
                 WHERE doc = $1
                   AND seq > greatest($2, coalesce((SELECT covers_seq FROM snapshots WHERE doc = $1), 0))
                 ORDER BY seq LIMIT $3",
                &[&doc.0, &since, &limit],
            )
            .await?
            .iter()
            .map(|r| -> StoreResult<StoredChunk> {
                Ok(StoredChunk {
                    seq: unsigned(r, 0, "seq")?,
                    chunk: ChunkId(bytes(r, 1)?),
                    author: bytes_opt(r, 3)?.map(UserId),
                    bytes: r.try_get(2)?,
                })
            })
            .collect()
        })
    }

    fn head(&self, doc: DocId) -> StoreResult<Seq> {
        self.read(async |c| {
            let head: i64 = row(c, "SELECT head FROM logs WHERE doc = $1", &[&doc.0])
                .await?
                .map_or(Ok(0), |r| r.try_get(0))?;
            to_unsigned(head, "head")
        })
    }

    fn put_snapshot(&self, doc: DocId, snap: &SnapshotRef) -> StoreResult<bool> {
        self.write(async |tx| {
            check_snapshot(tx, doc, snap).await?;
            take_snapshot(tx, doc, snap).await
        })
    }

    fn put_pending_snapshot(&self, doc: DocId, p: &PendingSnapshot) -> StoreResult<PendingPut> {
        let at = int("at", p.at)?;
        let covers = int("covers_seq", p.snapshot.covers_seq)?;
        let len = int("len", p.snapshot.len)?;
        self.write(async |tx| {
            check_snapshot(tx, doc, &p.snapshot).await?;
            if confirmed_covers(tx, doc)
                .await?
                .is_some_and(|c| c >= covers)
            {
                return Ok(PendingPut::Stale);
            }
            let old = pending(tx, doc).await?;
            if old.is_some_and(|o| o.snapshot == p.snapshot) {
                return Ok(PendingPut::Same);
            }
            exec(
                tx,
                "INSERT INTO pending_snapshots (doc, covers_seq, blob, len, by_user, by_device, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (doc) DO UPDATE SET covers_seq = excluded.covers_seq,
                     blob = excluded.blob, len = excluded.len, by_user = excluded.by_user,
                     by_device = excluded.by_device, at = excluded.at",
                &[
                    &doc.0,
                    &covers,
                    &p.snapshot.blob.0,
                    &len,
                    &p.by.0,
                    &p.by_device.0,
                    &at,
                ],
            )
            .await?;
            Ok(PendingPut::Recorded(old))
        })
    }

    fn pending_snapshot(&self, doc: DocId) -> StoreResult<Option<PendingSnapshot>> {
        self.read(async |c| pending(c, doc).await)
    }

    fn confirm_snapshot(
        &self,
        doc: DocId,
        covers_seq: Seq,
        blob: BlobHash,
        pushed_since: u64,
    ) -> StoreResult<PendingSnapshot> {
        self.write(async |tx| {
            // Locks the log first, as every snapshot write does.
            row(
                tx,
                "SELECT head FROM logs WHERE doc = $1 FOR UPDATE",
                &[&doc.0],
            )
            .await?;
            let Some(p) = pending(tx, doc).await?.filter(|p| {
                p.snapshot.covers_seq == covers_seq
                    && p.snapshot.blob == blob
                    && p.at >= pushed_since
            }) else {
                return Err(StoreError::NotFound("pending snapshot"));
            };
            if !take_snapshot(tx, doc, &p.snapshot).await? {
                return Err(StoreError::Conflict(
                    "the confirmed snapshot already covers as much".into(),
                ));
            }
            exec(
                tx,
                "DELETE FROM pending_snapshots WHERE doc = $1",
                &[&doc.0],
            )
            .await?;
            Ok(p)
        })
    }

    fn expire_pending_snapshots(&self, before: u64) -> StoreResult<Vec<(DocId, PendingSnapshot)>> {
        let before = int("before", before)?;
        self.write(async |tx| {
            let gone = rows(
                tx,
                "WITH gone AS (DELETE FROM pending_snapshots WHERE at < $1
                     RETURNING covers_seq, blob, len, by_user, by_device, at, doc)
                 SELECT * FROM gone ORDER BY doc",
                &[&before],
            )
            .await?;
            gone.iter().map(pending_row).collect()
        })
    }

    fn snapshot(&self, doc: DocId) -> StoreResult<Option<SnapshotRef>> {
        self.read(async |c| {
            row(
                c,
                "SELECT covers_seq, blob, len FROM snapshots WHERE doc = $1",
                &[&doc.0],
            )
            .await?
            .map(|r| -> StoreResult<SnapshotRef> {
                Ok(SnapshotRef {
                    covers_seq: unsigned(&r, 0, "covers_seq")?,
                    blob: BlobHash(bytes(&r, 1)?),
                    len: unsigned(&r, 2, "snapshot length")?,
                })
            })
            .transpose()
        })
    }

    fn drop_doc(&self, doc: DocId) -> StoreResult<()> {
        self.write(async |tx| {
            for sql in [
                "DELETE FROM chunks WHERE doc = $1",
                "DELETE FROM snapshots WHERE doc = $1",
                "DELETE FROM pending_snapshots WHERE doc = $1",
                "DELETE FROM logs WHERE doc = $1",
            ] {
                exec(tx, sql, &[&doc.0]).await?;
            }
            Ok(())
        })
    }
}
