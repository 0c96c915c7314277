//! [`MemoryStore`]: accounts and document logs in plain collections.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard},
};

use doran_protocol::{BlobHash, ChunkId, DocId, Seq, UserId};

use super::{
    Appended, LogStore, NewChunk, PendingPut, PendingSnapshot, Sealing, SnapshotRef, StoreError,
    StoreResult, StoredChunk, rules::int,
};

mod accounts;

use self::accounts::Accounts;

/// The relay's [`AccountStore`](super::AccountStore) and [`LogStore`] in memory,
/// lost on drop: for tests, and the reference the SQLite store is checked against
/// (both pass the same conformance suite).
///
/// Each call takes a lock and checks everything before it changes anything, so a call
/// that fails changes nothing, as with a transaction.
#[derive(Debug, Default)]
pub struct MemoryStore {
    accounts: Mutex<Accounts>,
    logs: Mutex<BTreeMap<DocId, Log>>,
}

/// One document's log.
#[derive(Debug, Default)]
struct Log {
    /// The seq of the latest chunk ever appended.
    head: Seq,
    /// The chunks since the snapshot, by seq, with their authors.
    chunks: BTreeMap<Seq, (ChunkId, Option<UserId>, Vec<u8>)>,
    /// The seq of each chunk in `chunks`, by id.
    seqs: HashMap<ChunkId, Seq>,
    /// The latest snapshot.
    snapshot: Option<SnapshotRef>,
    /// A snapshot waiting to be confirmed.
    pending: Option<PendingSnapshot>,
    /// Bytes of the chunks in `chunks`.
    bytes: u64,
    /// Sealed end to end by its host (see `Sealing`): envelopes only.
    sealed: bool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn accounts(&self) -> StoreResult<MutexGuard<'_, Accounts>> {
        self.accounts.lock().map_err(|_| StoreError::Poisoned)
    }

    fn logs(&self) -> StoreResult<MutexGuard<'_, BTreeMap<DocId, Log>>> {
        self.logs.lock().map_err(|_| StoreError::Poisoned)
    }
}

/// The log a snapshot of `doc` covering `snap.covers_seq` may go to: checks its
/// numbers against the head, as every backend does.
fn log_for_snapshot<'a>(
    logs: &'a mut BTreeMap<DocId, Log>,
    doc: DocId,
    snap: &SnapshotRef,
) -> StoreResult<&'a mut Log> {
    int("covers_seq", snap.covers_seq)?;
    int("len", snap.len)?;
    if snap.covers_seq == 0 {
        return Err(StoreError::Invalid(
            "a snapshot covers at least seq 1".into(),
        ));
    }
    let head = logs.get(&doc).map_or(0, |log| log.head);
    if snap.covers_seq > head {
        return Err(StoreError::Invalid(format!(
            "snapshot covers seq {} past the head {head}",
            snap.covers_seq
        )));
    }
    logs.get_mut(&doc)
        .ok_or_else(|| StoreError::Invalid("snapshot of an empty log".into()))
}

impl Log {
    /// Records `snap` and drops the chunks it covers, unless an equal or newer
    /// snapshot is recorded (then `false`, and nothing changes).
    fn take_snapshot(&mut self, snap: &SnapshotRef) -> bool {
        if self
            .snapshot
            .is_some_and(|old| old.covers_seq >= snap.covers_seq)
        {
            return false;
        }
        self.snapshot = Some(*snap);
        let dropped: u64 = self
            .chunks
            .range(..=snap.covers_seq)
            .map(|(_, (_, _, bytes))| bytes.len() as u64)
            .sum();
        self.bytes = self.bytes.saturating_sub(dropped);
        self.chunks.retain(|&seq, _| seq > snap.covers_seq);
        self.seqs.retain(|_, seq| *seq > snap.covers_seq);
        true
    }
}

impl LogStore for MemoryStore {
    fn append_batch(&self, chunks: &[NewChunk<'_>]) -> StoreResult<Vec<StoreResult<Appended>>> {
        let mut logs = self.logs()?;
        Ok(chunks
            .iter()
            .map(|c| {
                int("at", c.at)?;
                let log = logs.entry(c.doc).or_default();
                if let Some(&seq) = log.seqs.get(&c.chunk) {
                    return Ok(Appended { seq, existed: true });
                }
                let len = c.bytes.len() as u64;
                if log.bytes.saturating_add(len) > c.max_log_bytes {
                    return Err(StoreError::DocumentFull);
                }
                match (log.sealed, c.sealing) {
                    (true, Sealing::Clear) => return Err(StoreError::DocumentSealed),
                    (false, Sealing::Envelope) => return Err(StoreError::NotSealed),
                    (_, Sealing::Seals) => log.sealed = true,
                    _ => {}
                }
                log.head += 1;
                log.bytes += len;
                log.chunks
                    .insert(log.head, (c.chunk, c.author, c.bytes.to_vec()));
                log.seqs.insert(c.chunk, log.head);
                Ok(Appended {
                    seq: log.head,
                    existed: false,
                })
            })
            .collect())
    }

    fn log_bytes(&self, doc: DocId) -> StoreResult<u64> {
        Ok(self.logs()?.get(&doc).map_or(0, |log| log.bytes))
    }

    fn log_sealed(&self, doc: DocId) -> StoreResult<bool> {
        Ok(self.logs()?.get(&doc).is_some_and(|log| log.sealed))
    }

    fn read_since(&self, doc: DocId, since: Seq, limit: usize) -> StoreResult<Vec<StoredChunk>> {
        int("since", since)?;
        let logs = self.logs()?;
        let Some(log) = logs.get(&doc) else {
            return Ok(Vec::new());
        };
        let from = since.max(log.snapshot.map_or(0, |s| s.covers_seq));
        Ok(log
            .chunks
            .range(from.saturating_add(1)..)
            .take(limit)
            .map(|(&seq, (chunk, author, bytes))| StoredChunk {
                seq,
                chunk: *chunk,
                author: *author,
                bytes: bytes.clone(),
            })
            .collect())
    }

    fn head(&self, doc: DocId) -> StoreResult<Seq> {
        Ok(self.logs()?.get(&doc).map_or(0, |log| log.head))
    }

    fn put_snapshot(&self, doc: DocId, snap: &SnapshotRef) -> StoreResult<bool> {
        let mut logs = self.logs()?;
        let log = log_for_snapshot(&mut logs, doc, snap)?;
        Ok(log.take_snapshot(snap))
    }

    fn put_pending_snapshot(
        &self,
        doc: DocId,
        pending: &PendingSnapshot,
    ) -> StoreResult<PendingPut> {
        int("at", pending.at)?;
        let mut logs = self.logs()?;
        let log = log_for_snapshot(&mut logs, doc, &pending.snapshot)?;
        if log
            .snapshot
            .is_some_and(|s| s.covers_seq >= pending.snapshot.covers_seq)
        {
            return Ok(PendingPut::Stale);
        }
        if log.pending.is_some_and(|p| p.snapshot == pending.snapshot) {
            return Ok(PendingPut::Same);
        }
        Ok(PendingPut::Recorded(log.pending.replace(*pending)))
    }

    fn pending_snapshot(&self, doc: DocId) -> StoreResult<Option<PendingSnapshot>> {
        Ok(self.logs()?.get(&doc).and_then(|log| log.pending))
    }

    fn confirm_snapshot(
        &self,
        doc: DocId,
        covers_seq: Seq,
        blob: BlobHash,
        pushed_since: u64,
    ) -> StoreResult<PendingSnapshot> {
        let mut logs = self.logs()?;
        let Some(log) = logs.get_mut(&doc) else {
            return Err(StoreError::NotFound("pending snapshot"));
        };
        let Some(pending) = log.pending.filter(|p| {
            p.snapshot.covers_seq == covers_seq && p.snapshot.blob == blob && p.at >= pushed_since
        }) else {
            return Err(StoreError::NotFound("pending snapshot"));
        };
        if !log.take_snapshot(&pending.snapshot) {
            return Err(StoreError::Conflict(
                "the confirmed snapshot already covers as much".into(),
            ));
        }
        log.pending = None;
        Ok(pending)
    }

    fn expire_pending_snapshots(&self, before: u64) -> StoreResult<Vec<(DocId, PendingSnapshot)>> {
        let mut logs = self.logs()?;
        let mut out = Vec::new();
        for (doc, log) in logs.iter_mut() {
            if let Some(p) = log.pending.take_if(|p| p.at < before) {
                out.push((*doc, p));
            }
        }
        Ok(out)
    }

    fn snapshot(&self, doc: DocId) -> StoreResult<Option<SnapshotRef>> {
        Ok(self.logs()?.get(&doc).and_then(|log| log.snapshot))
    }

    fn drop_doc(&self, doc: DocId) -> StoreResult<()> {
        self.logs()?.remove(&doc);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use doran_protocol::UserId;

    use super::*;
    use crate::store::AccountStore;

    #[test]
    fn a_panic_holding_a_lock_poisons_the_store() {
        let store = Arc::new(MemoryStore::new());
        let clone = Arc::clone(&store);
        let panicked = std::thread::spawn(move || {
            let _accounts = clone.accounts.lock();
            let _logs = clone.logs.lock();
            panic!("boom");
        })
        .join();
        assert!(panicked.is_err());
        assert!(matches!(
            store.user(UserId([1; 16])),
            Err(StoreError::Poisoned)
        ));
        assert!(matches!(
            store.head(DocId([1; 16])),
            Err(StoreError::Poisoned)
        ));
    }
}
