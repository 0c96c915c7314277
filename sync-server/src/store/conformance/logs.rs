//! Document logs: seqs, idempotent appends, paging, snapshots.

use std::{collections::HashSet, sync::Arc, thread};

use doran_protocol::{BlobHash, ChunkId, DeviceId, DocId, Seq, UserId};

use super::{Fixture, TestResult};
use crate::store::{
    Appended, LogStore, NewChunk, PendingPut, PendingSnapshot, Sealing, SnapshotRef, StoreError,
    StoredChunk,
};

fn doc(n: u8) -> DocId {
    DocId([n; 16])
}

/// Appends `bytes` to `d` and returns the result.
fn push(logs: &dyn LogStore, d: DocId, bytes: &[u8]) -> Result<Appended, StoreError> {
    logs.append(d, ChunkId::of(bytes), bytes, 1_000)
}

fn seqs(chunks: &[StoredChunk]) -> Vec<Seq> {
    chunks.iter().map(|c| c.seq).collect()
}

fn snapshot(covers_seq: Seq) -> SnapshotRef {
    SnapshotRef {
        covers_seq,
        blob: BlobHash::of(&covers_seq.to_le_bytes()),
        len: 100 + covers_seq,
    }
}

pub(crate) fn appends_get_gapless_seqs_per_document(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    assert_eq!(logs.head(doc(1))?, 0);
    for i in 1..=5u8 {
        let appended = push(logs, doc(1), &[1, i])?;
        assert_eq!(
            appended,
            Appended {
                seq: u64::from(i),
                existed: false
            }
        );
    }
    assert_eq!(
        push(logs, doc(2), &[2, 1])?.seq,
        1,
        "each document starts at 1"
    );
    assert_eq!(logs.head(doc(1))?, 5);
    assert_eq!(logs.head(doc(2))?, 1);
    let chunks = logs.read_since(doc(1), 0, 100)?;
    assert_eq!(seqs(&chunks), vec![1, 2, 3, 4, 5]);
    assert_eq!(
        chunks[2],
        StoredChunk {
            seq: 3,
            chunk: ChunkId::of(&[1, 3]),
            author: None,
            bytes: vec![1, 3],
        }
    );
    Ok(())
}

pub(crate) fn append_is_idempotent_by_chunk_id(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    push(logs, doc(1), b"a")?;
    push(logs, doc(1), b"b")?;
    assert_eq!(
        push(logs, doc(1), b"a")?,
        Appended {
            seq: 1,
            existed: true
        }
    );
    assert_eq!(logs.head(doc(1))?, 2);
    assert_eq!(logs.read_since(doc(1), 0, 100)?.len(), 2);
    // The next new chunk takes the next seq: the repeat left no gap.
    assert_eq!(
        push(logs, doc(1), b"c")?,
        Appended {
            seq: 3,
            existed: false
        }
    );
    // The same chunk in another document is another chunk.
    assert_eq!(
        push(logs, doc(2), b"a")?,
        Appended {
            seq: 1,
            existed: false
        }
    );
    Ok(())
}

pub(crate) fn read_since_pages_in_order(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    for i in 1..=10u8 {
        push(logs, doc(1), &[i])?;
    }
    assert_eq!(seqs(&logs.read_since(doc(1), 0, 3)?), vec![1, 2, 3]);
    assert_eq!(seqs(&logs.read_since(doc(1), 3, 3)?), vec![4, 5, 6]);
    assert_eq!(seqs(&logs.read_since(doc(1), 8, 100)?), vec![9, 10]);
    assert!(logs.read_since(doc(1), 10, 100)?.is_empty());
    assert!(logs.read_since(doc(1), 50, 100)?.is_empty());
    assert!(logs.read_since(doc(1), 0, 0)?.is_empty());
    assert_eq!(logs.read_since(doc(1), 0, usize::MAX)?.len(), 10);
    assert!(logs.read_since(doc(9), 0, 100)?.is_empty());
    Ok(())
}

pub(crate) fn a_snapshot_drops_the_chunks_it_covers(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    for i in 1..=6u8 {
        push(logs, doc(1), &[i])?;
    }
    push(logs, doc(2), b"other")?;
    assert_eq!(logs.snapshot(doc(1))?, None);
    assert!(logs.put_snapshot(doc(1), &snapshot(4))?);
    assert_eq!(logs.snapshot(doc(1))?, Some(snapshot(4)));
    assert_eq!(logs.head(doc(1))?, 6);
    // Reads skip what the snapshot covers, whatever `since` says.
    assert_eq!(seqs(&logs.read_since(doc(1), 0, 100)?), vec![5, 6]);
    assert_eq!(seqs(&logs.read_since(doc(1), 2, 100)?), vec![5, 6]);
    assert_eq!(seqs(&logs.read_since(doc(1), 5, 100)?), vec![6]);
    // Appends continue from the head.
    assert_eq!(push(logs, doc(1), &[7])?.seq, 7);
    // A chunk the snapshot dropped is no longer known: pushed again, it is new.
    assert_eq!(
        push(logs, doc(1), &[2])?,
        Appended {
            seq: 8,
            existed: false
        }
    );
    // A chunk the snapshot kept is still known.
    assert_eq!(
        push(logs, doc(1), &[5])?,
        Appended {
            seq: 5,
            existed: true
        }
    );
    // A newer snapshot replaces it.
    assert!(logs.put_snapshot(doc(1), &snapshot(7))?);
    assert_eq!(logs.snapshot(doc(1))?, Some(snapshot(7)));
    assert_eq!(seqs(&logs.read_since(doc(1), 0, 100)?), vec![8]);
    // Other documents are untouched.
    assert_eq!(logs.read_since(doc(2), 0, 100)?.len(), 1);
    assert_eq!(logs.snapshot(doc(2))?, None);
    Ok(())
}

pub(crate) fn a_snapshot_of_the_whole_log_keeps_seqs_growing(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    for i in 1..=3u8 {
        push(logs, doc(1), &[i])?;
    }
    assert!(logs.put_snapshot(doc(1), &snapshot(3))?);
    assert!(logs.read_since(doc(1), 0, 100)?.is_empty());
    assert_eq!(logs.head(doc(1))?, 3);
    assert_eq!(push(logs, doc(1), &[4])?.seq, 4);
    assert_eq!(seqs(&logs.read_since(doc(1), 0, 100)?), vec![4]);
    Ok(())
}

pub(crate) fn stale_snapshots_are_ignored(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    for i in 1..=6u8 {
        push(logs, doc(1), &[i])?;
    }
    assert!(logs.put_snapshot(doc(1), &snapshot(4))?);
    let mut same = snapshot(4);
    same.blob = BlobHash::of(b"another encoding");
    assert!(!logs.put_snapshot(doc(1), &same)?);
    assert!(!logs.put_snapshot(doc(1), &snapshot(2))?);
    assert_eq!(logs.snapshot(doc(1))?, Some(snapshot(4)));
    assert_eq!(seqs(&logs.read_since(doc(1), 0, 100)?), vec![5, 6]);
    Ok(())
}

pub(crate) fn invalid_snapshots_are_refused(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    assert!(matches!(
        logs.put_snapshot(doc(1), &snapshot(1)),
        Err(StoreError::Invalid(_))
    ));
    for i in 1..=3u8 {
        push(logs, doc(1), &[i])?;
    }
    for covers in [0, 4, 100] {
        assert!(matches!(
            logs.put_snapshot(doc(1), &snapshot(covers)),
            Err(StoreError::Invalid(_))
        ));
    }
    assert_eq!(logs.snapshot(doc(1))?, None);
    assert_eq!(logs.read_since(doc(1), 0, 100)?.len(), 3);
    assert_eq!(logs.head(doc(1))?, 3);
    assert_eq!(logs.head(doc(2))?, 0);
    Ok(())
}

pub(crate) fn drop_doc_forgets_the_log(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    for i in 1..=3u8 {
        push(logs, doc(1), &[i])?;
    }
    logs.put_snapshot(doc(1), &snapshot(2))?;
    push(logs, doc(2), b"kept")?;
    logs.drop_doc(doc(1))?;
    assert_eq!(logs.head(doc(1))?, 0);
    assert!(logs.read_since(doc(1), 0, 100)?.is_empty());
    assert_eq!(logs.snapshot(doc(1))?, None);
    assert_eq!(logs.read_since(doc(2), 0, 100)?.len(), 1);
    logs.drop_doc(doc(1))?;
    logs.drop_doc(doc(9))?;
    Ok(())
}

pub(crate) fn concurrent_appends_get_distinct_seqs(f: &Fixture) -> TestResult {
    const THREADS: u8 = 4;
    const CHUNKS: u8 = 25;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let logs = Arc::clone(&f.logs);
            thread::spawn(move || -> Result<Vec<Seq>, StoreError> {
                let mut seqs = Vec::new();
                for i in 0..CHUNKS {
                    seqs.push(push(logs.as_ref(), doc(1), &[t, i])?.seq);
                    // Everyone also re-pushes a shared chunk.
                    push(logs.as_ref(), doc(1), b"shared")?;
                }
                Ok(seqs)
            })
        })
        .collect();
    let mut all = HashSet::new();
    for handle in handles {
        let seqs = handle.join().map_err(|_| "appender panicked")??;
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "a thread's seqs grow");
        all.extend(seqs);
    }
    let total = u64::from(THREADS) * u64::from(CHUNKS) + 1;
    assert_eq!(all.len() as u64, total - 1, "distinct seqs");
    assert_eq!(f.logs.head(doc(1))?, total);
    let chunks = f.logs.read_since(doc(1), 0, usize::MAX)?;
    assert_eq!(seqs(&chunks), (1..=total).collect::<Vec<_>>());
    let ids: HashSet<_> = chunks.iter().map(|c| c.chunk).collect();
    assert_eq!(ids.len() as u64, total, "each chunk once");
    Ok(())
}

/// A chunk of `bytes` for `d` (its id their hash), appended with no quota or rule.
pub(crate) fn new_chunk(d: DocId, bytes: &[u8]) -> NewChunk<'_> {
    NewChunk {
        doc: d,
        chunk: ChunkId::of(bytes),
        bytes,
        author: Some(UserId([0xa1; 16])),
        at: 1_000,
        max_log_bytes: u64::MAX,
        sealing: Sealing::Any,
    }
}

pub(crate) fn a_batch_appends_like_one_by_one(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    push(logs, doc(1), b"before")?;
    let batch = [
        new_chunk(doc(1), b"a"),
        new_chunk(doc(2), b"x"),
        new_chunk(doc(1), b"b"),
        // Already in the log, and repeated within the batch.
        new_chunk(doc(1), b"before"),
        new_chunk(doc(1), b"a"),
        new_chunk(doc(2), b"y"),
    ];
    let results: Vec<Appended> = logs
        .append_batch(&batch)?
        .into_iter()
        .collect::<Result<_, _>>()?;
    let appended = |seq, existed| Appended { seq, existed };
    assert_eq!(
        results,
        vec![
            appended(2, false),
            appended(1, false),
            appended(3, false),
            appended(1, true),
            appended(2, true),
            appended(2, false),
        ]
    );
    assert_eq!(logs.head(doc(1))?, 3);
    assert_eq!(logs.head(doc(2))?, 2);
    let bytes: Vec<Vec<u8>> = logs
        .read_since(doc(1), 0, 10)?
        .into_iter()
        .map(|c| c.bytes)
        .collect();
    assert_eq!(
        bytes,
        vec![b"before".to_vec(), b"a".to_vec(), b"b".to_vec()]
    );
    assert!(logs.append_batch(&[])?.is_empty());
    Ok(())
}

pub(crate) fn chunks_keep_their_authors(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    let (host, member) = (UserId([0xa1; 16]), UserId([0xa2; 16]));
    // Stored before authors were recorded: none.
    push(logs, doc(1), b"old")?;
    let by = |bytes: &'static [u8], author| NewChunk {
        author: Some(author),
        ..new_chunk(doc(1), bytes)
    };
    logs.append_batch(&[by(b"host's", host), by(b"member's", member)])?;
    // A re-push by someone else keeps the author the chunk was stored with.
    let again = logs.append_batch(&[by(b"host's", member)])?;
    assert!(matches!(
        again[0],
        Ok(Appended {
            seq: 2,
            existed: true
        })
    ));
    let authors: Vec<(Seq, Option<UserId>)> = logs
        .read_since(doc(1), 0, 10)?
        .into_iter()
        .map(|c| (c.seq, c.author))
        .collect();
    assert_eq!(authors, vec![(1, None), (2, Some(host)), (3, Some(member))]);
    // Read past a snapshot too.
    assert!(logs.put_snapshot(doc(1), &snapshot(1))?);
    let after: Vec<Option<UserId>> = logs
        .read_since(doc(1), 0, 10)?
        .into_iter()
        .map(|c| c.author)
        .collect();
    assert_eq!(after, vec![Some(host), Some(member)]);
    Ok(())
}

/// A clear family's log: clear chunks and the host's first envelope, then envelopes
/// only — decided inside the batch, chunk by chunk, so a clear chunk queued behind
/// the first envelope is refused alone.
pub(crate) fn a_log_sealed_by_its_host_takes_envelopes_only(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    let d = doc(1);
    let with = |bytes: &'static [u8], sealing| NewChunk {
        sealing,
        ..new_chunk(d, bytes)
    };
    // Another member's envelope cannot seal it, in a new log or an old one.
    let early = logs.append_batch(&[with(b"DRD early", Sealing::Envelope)])?;
    assert!(matches!(early[0], Err(StoreError::NotSealed)), "{early:?}");
    let results = logs.append_batch(&[
        with(b"clear 1", Sealing::Clear),
        with(b"DRD member", Sealing::Envelope),
        with(b"clear 2", Sealing::Clear),
        with(b"DRD host", Sealing::Seals),
        with(b"clear 3", Sealing::Clear),
        with(b"DRD member 2", Sealing::Envelope),
        with(b"DRD host 2", Sealing::Seals),
    ])?;
    let seqs_or: Vec<Result<Seq, &'static str>> = results
        .iter()
        .map(|r| match r {
            Ok(a) => Ok(a.seq),
            Err(StoreError::DocumentSealed) => Err("sealed"),
            Err(StoreError::NotSealed) => Err("not sealed"),
            Err(_) => Err("other"),
        })
        .collect();
    assert_eq!(
        seqs_or,
        vec![
            Ok(1),
            Err("not sealed"),
            Ok(2),
            Ok(3),
            Err("sealed"),
            Ok(4),
            Ok(5)
        ]
    );
    // A chunk already in the log is answered as before, whatever it says.
    let again = logs.append_batch(&[with(b"clear 1", Sealing::Clear)])?;
    assert!(matches!(
        again[0],
        Ok(Appended {
            seq: 1,
            existed: true
        })
    ));
    assert!(logs.log_sealed(d)?);
    // Sealed for good, past a snapshot and in later batches; other logs untouched.
    assert!(logs.put_snapshot(d, &snapshot(4))?);
    let later = logs.append_batch(&[with(b"clear 4", Sealing::Clear)])?;
    assert!(matches!(later[0], Err(StoreError::DocumentSealed)));
    // Full and sealed: full, on every backend.
    let full = logs.append_batch(&[NewChunk {
        max_log_bytes: 0,
        ..with(b"clear 5", Sealing::Clear)
    }])?;
    assert!(matches!(full[0], Err(StoreError::DocumentFull)), "{full:?}");
    assert_eq!(logs.head(d)?, 5, "refused chunks take no seq");
    let other = logs.append_batch(&[NewChunk {
        sealing: Sealing::Clear,
        ..new_chunk(doc(2), b"clear elsewhere")
    }])?;
    assert!(matches!(other[0], Ok(Appended { seq: 1, .. })));
    assert!(!logs.log_sealed(doc(2))? && !logs.log_sealed(doc(9))?);
    // A log whose first chunk is the host's envelope is sealed from its start.
    let fresh = logs.append_batch(&[
        NewChunk {
            sealing: Sealing::Seals,
            ..new_chunk(doc(3), b"DRD first")
        },
        NewChunk {
            sealing: Sealing::Clear,
            ..new_chunk(doc(3), b"clear after")
        },
    ])?;
    assert!(matches!(fresh[0], Ok(Appended { seq: 1, .. })));
    assert!(matches!(fresh[1], Err(StoreError::DocumentSealed)));
    Ok(())
}

pub(crate) fn a_bad_chunk_does_not_sink_its_batch(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    let mut bad = new_chunk(doc(1), b"bad");
    bad.at = u64::MAX;
    let results =
        logs.append_batch(&[new_chunk(doc(1), b"good"), bad, new_chunk(doc(1), b"also")])?;
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().ok().map(|a| a.seq), Some(1));
    assert!(matches!(results[1], Err(StoreError::Invalid(_))));
    assert_eq!(results[2].as_ref().ok().map(|a| a.seq), Some(2));
    assert_eq!(seqs(&logs.read_since(doc(1), 0, 10)?), vec![1, 2]);
    Ok(())
}

pub(crate) fn log_quotas_count_what_is_stored(f: &Fixture) -> TestResult {
    let doc = DocId([0x51; 16]);
    let chunk = |n: u8| vec![n; 100];
    fn new(doc: DocId, bytes: &[u8], max: u64) -> NewChunk<'_> {
        NewChunk {
            doc,
            chunk: ChunkId::of(bytes),
            bytes,
            author: None,
            at: 1,
            max_log_bytes: max,
            sealing: Sealing::Any,
        }
    }
    let (a, b, c) = (chunk(1), chunk(2), chunk(3));
    // Two fit under 250 bytes, the third is refused alone in its batch.
    let results =
        f.logs
            .append_batch(&[new(doc, &a, 250), new(doc, &b, 250), new(doc, &c, 250)])?;
    assert!(matches!(results[0], Ok(Appended { seq: 1, .. })));
    assert!(matches!(results[1], Ok(Appended { seq: 2, .. })));
    assert!(matches!(results[2], Err(StoreError::DocumentFull)));
    assert_eq!(f.logs.log_bytes(doc)?, 200);
    assert_eq!(f.logs.head(doc)?, 2, "the refused chunk took no seq");
    // A chunk already in the log is acked however full it is.
    let again = f.logs.append_batch(&[new(doc, &a, 0)])?;
    assert!(matches!(
        again[0],
        Ok(Appended {
            seq: 1,
            existed: true
        })
    ));
    // And where it would still fit, it is counted once.
    let again = f.logs.append_batch(&[new(doc, &b, 1000)])?;
    assert!(matches!(
        again[0],
        Ok(Appended {
            seq: 2,
            existed: true
        })
    ));
    assert_eq!(f.logs.log_bytes(doc)?, 200);
    assert_eq!(f.logs.head(doc)?, 2);
    // A snapshot frees what it covers.
    let snapshot = SnapshotRef {
        covers_seq: 1,
        blob: BlobHash::of(b"s"),
        len: 1,
    };
    f.logs.put_snapshot(doc, &snapshot)?;
    assert_eq!(f.logs.log_bytes(doc)?, 100);
    let results = f.logs.append_batch(&[new(doc, &c, 250)])?;
    assert!(matches!(results[0], Ok(Appended { seq: 3, .. })));
    assert_eq!(f.logs.log_bytes(doc)?, 200);
    f.logs.drop_doc(doc)?;
    assert_eq!(f.logs.log_bytes(doc)?, 0);
    assert_eq!(f.logs.log_bytes(DocId([0x52; 16]))?, 0, "unknown");
    Ok(())
}

fn pending(covers_seq: Seq, by: u8, at: u64) -> PendingSnapshot {
    PendingSnapshot {
        snapshot: snapshot(covers_seq),
        by: UserId([by; 16]),
        by_device: DeviceId([by; 16]),
        at,
    }
}

pub(crate) fn pending_snapshots_drop_nothing_until_confirmed(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    for i in 1..=6u8 {
        push(logs, doc(1), &[i])?;
    }
    let bytes = logs.log_bytes(doc(1))?;
    let p = pending(4, 1, 1_000);
    assert_eq!(
        logs.put_pending_snapshot(doc(1), &p)?,
        PendingPut::Recorded(None)
    );
    // Nothing is dropped and catch-ups are served as before.
    assert_eq!(logs.pending_snapshot(doc(1))?, Some(p));
    assert_eq!(logs.snapshot(doc(1))?, None);
    assert_eq!(
        seqs(&logs.read_since(doc(1), 0, 100)?),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(logs.log_bytes(doc(1))?, bytes);
    // The same snapshot again keeps the first push.
    assert_eq!(
        logs.put_pending_snapshot(doc(1), &pending(4, 2, 2_000))?,
        PendingPut::Same
    );
    assert_eq!(logs.pending_snapshot(doc(1))?, Some(p));
    // A wrong seq or blob, or an expired one, confirms nothing.
    let blob = p.snapshot.blob;
    for (covers, b, since) in [
        (3, blob, 0),
        (4, BlobHash::of(b"a photo"), 0),
        (4, blob, 1_001),
    ] {
        assert!(matches!(
            logs.confirm_snapshot(doc(1), covers, b, since),
            Err(StoreError::NotFound(_))
        ));
    }
    assert!(matches!(
        logs.confirm_snapshot(doc(2), 4, blob, 0),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        seqs(&logs.read_since(doc(1), 0, 100)?),
        vec![1, 2, 3, 4, 5, 6]
    );
    // Confirmed: it is the snapshot, the chunks it covers go, it is no longer pending.
    assert_eq!(logs.confirm_snapshot(doc(1), 4, blob, 1_000)?, p);
    assert_eq!(logs.snapshot(doc(1))?, Some(snapshot(4)));
    assert_eq!(logs.pending_snapshot(doc(1))?, None);
    assert_eq!(seqs(&logs.read_since(doc(1), 0, 100)?), vec![5, 6]);
    assert_eq!(logs.log_bytes(doc(1))?, 2);
    // Confirming twice fails; a pending one the confirmed covers is stale.
    assert!(matches!(
        logs.confirm_snapshot(doc(1), 4, blob, 0),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        logs.put_pending_snapshot(doc(1), &pending(3, 1, 3_000))?,
        PendingPut::Stale
    );
    assert_eq!(logs.pending_snapshot(doc(1))?, None);
    Ok(())
}

pub(crate) fn newer_pending_snapshots_replace_older_ones(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    for i in 1..=6u8 {
        push(logs, doc(1), &[i])?;
    }
    let first = pending(5, 1, 1_000);
    logs.put_pending_snapshot(doc(1), &first)?;
    let second = pending(3, 2, 2_000);
    assert_eq!(
        logs.put_pending_snapshot(doc(1), &second)?,
        PendingPut::Recorded(Some(first))
    );
    assert_eq!(logs.pending_snapshot(doc(1))?, Some(second));
    assert!(matches!(
        logs.confirm_snapshot(doc(1), 5, first.snapshot.blob, 0),
        Err(StoreError::NotFound(_))
    ));
    for covers in [0, 7] {
        assert!(matches!(
            logs.put_pending_snapshot(doc(1), &pending(covers, 1, 3_000)),
            Err(StoreError::Invalid(_))
        ));
    }
    assert!(matches!(
        logs.put_pending_snapshot(doc(9), &pending(1, 1, 3_000)),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(logs.pending_snapshot(doc(1))?, Some(second));
    Ok(())
}

pub(crate) fn pending_snapshots_expire(f: &Fixture) -> TestResult {
    let logs = f.logs.as_ref();
    for d in 1..=3u8 {
        for i in 1..=3u8 {
            push(logs, doc(d), &[d, i])?;
        }
    }
    let old = pending(2, 1, 1_000);
    let young = pending(3, 1, 5_000);
    logs.put_pending_snapshot(doc(1), &old)?;
    logs.put_pending_snapshot(doc(2), &young)?;
    logs.put_pending_snapshot(doc(3), &old)?;
    assert_eq!(
        logs.expire_pending_snapshots(5_000)?,
        vec![(doc(1), old), (doc(3), old)]
    );
    assert_eq!(logs.pending_snapshot(doc(1))?, None);
    assert_eq!(logs.pending_snapshot(doc(2))?, Some(young));
    assert!(logs.expire_pending_snapshots(5_000)?.is_empty());
    // Nothing of the logs went.
    for d in 1..=3u8 {
        assert_eq!(logs.read_since(doc(d), 0, 100)?.len(), 3);
        assert_eq!(logs.snapshot(doc(d))?, None);
    }
    logs.drop_doc(doc(2))?;
    assert_eq!(logs.pending_snapshot(doc(2))?, None);
    Ok(())
}
