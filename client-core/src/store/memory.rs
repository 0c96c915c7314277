//! [`MemoryStore`]: the [`LocalStore`] in plain collections behind a mutex.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard},
};

use doran_protocol::{BlobHash, ChunkId, DocId, Seq};

mod records;

use super::{
    BlobRecord, BlobState, CachedView, Committed, LocalStore, LogPos, OutboxEntry, Result, Step,
    StoreError, StoredDoc, ViewRow, check_i64, check_local, check_view_row, check_view_rows,
    now_ms,
};

/// A [`LocalStore`] that keeps everything in memory and loses it on drop. For tests
/// and for sessions that must leave nothing on the device. It behaves exactly like
/// [`SqliteStore`](super::SqliteStore), including its limits (the same conformance
/// suite runs against both).
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    docs: BTreeMap<DocId, Doc>,
    /// The last change-row position handed out (global, like SQLite's AUTOINCREMENT).
    last_pos: u64,
    outbox: BTreeMap<u64, OutboxEntry>,
    last_outbox_id: u64,
    /// Blob records with the order they were first put in.
    blobs: HashMap<BlobHash, (u64, BlobRecord)>,
    last_blob_order: u64,
    meta: BTreeMap<String, Vec<u8>>,
    /// The device's records (see [`DeviceRecords`](super::DeviceRecords)).
    records: records::Records,
}

#[derive(Debug, Default)]
struct Doc {
    cursor: Seq,
    /// The snapshot and the position it covers.
    snapshot: Option<(Vec<u8>, u64)>,
    rows: Vec<Row>,
    /// The view cache, valid while its `through` is the log end.
    view: Option<View>,
    /// The last relay seq covered by an accepted snapshot.
    snapshot_covers: Seq,
}

#[derive(Debug)]
struct Row {
    pos: u64,
    chunk: ChunkId,
    bytes: Vec<u8>,
}

/// A document's view cache.
#[derive(Debug)]
struct View {
    version: u32,
    /// The log position the rows reflect.
    through: u64,
    rows: BTreeMap<String, Vec<u8>>,
}

impl Doc {
    fn compacted_through(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |(_, through)| *through)
    }

    fn log_end(&self) -> u64 {
        self.rows
            .last()
            .map_or_else(|| self.compacted_through(), |row| row.pos)
    }

    fn has_chunk(&self, chunk: &ChunkId) -> bool {
        self.rows.iter().any(|row| row.chunk == *chunk)
    }

    /// The view cache, if it reflects exactly the current log.
    fn valid_view(&self) -> Option<&View> {
        self.view
            .as_ref()
            .filter(|view| view.through == self.log_end())
    }

    /// After an append: applies `rows` and moves the cache to the new log end if it
    /// was valid before the append (`was_valid`); otherwise leaves it behind.
    fn advance_view(&mut self, was_valid: bool, rows: Option<&[ViewRow]>) {
        let log_end = self.log_end();
        let (true, Some(rows), Some(view)) = (was_valid, rows, self.view.as_mut()) else {
            return;
        };
        for row in rows {
            match &row.bytes {
                Some(bytes) => {
                    view.rows.insert(row.key.clone(), bytes.clone());
                }
                None => {
                    view.rows.remove(&row.key);
                }
            }
        }
        view.through = log_end;
    }
}

impl Inner {
    /// Appends a row unless the document already has one for this chunk.
    fn append(&mut self, doc: DocId, chunk: ChunkId, bytes: &[u8]) -> bool {
        let entry = self.docs.entry(doc).or_default();
        if entry.has_chunk(&chunk) {
            return false;
        }
        self.last_pos += 1;
        entry.rows.push(Row {
            pos: self.last_pos,
            chunk,
            bytes: bytes.to_vec(),
        });
        true
    }

    /// Appends a local edit and queues it in the outbox (the chunk already waiting
    /// there: its entry); returns the entry and the log end after it.
    fn append_local(
        &mut self,
        doc: DocId,
        chunk: &[u8],
        view: Option<&[ViewRow]>,
    ) -> (OutboxEntry, LogPos) {
        let id = ChunkId::of(chunk);
        if let Some(existing) = self.outbox.values().find(|e| e.doc == doc && e.chunk == id) {
            return (existing.clone(), self.end(doc));
        }
        let was_valid = self
            .docs
            .get(&doc)
            .is_some_and(|d| d.valid_view().is_some());
        if self.append(doc, id, chunk) {
            self.docs
                .entry(doc)
                .or_default()
                .advance_view(was_valid, view);
        }
        self.last_outbox_id += 1;
        let entry = OutboxEntry {
            id: self.last_outbox_id,
            doc,
            chunk: id,
            bytes: chunk.to_vec(),
            created_at_ms: now_ms(),
        };
        self.outbox.insert(entry.id, entry.clone());
        (entry, self.end(doc))
    }

    /// The log end of `doc` as [`LocalStore::log_end`] reports it (`None`: unknown).
    fn log_end(&self, doc: DocId) -> Option<LogPos> {
        self.docs.get(&doc).map(|d| LogPos::new(d.log_end()))
    }

    /// Whether the log of `doc` still ends where the writer's document does (`guard`;
    /// no guard: always).
    fn in_step(&self, doc: DocId, guard: Option<Option<LogPos>>) -> bool {
        guard.is_none_or(|at| at == self.log_end(doc))
    }

    /// The log end of `doc` (`START` for an unknown one).
    fn end(&self, doc: DocId) -> LogPos {
        self.log_end(doc).unwrap_or(LogPos::START)
    }

    /// What a write tells its writer: the log end now, if the writer was in step.
    fn step(&self, doc: DocId, in_step: bool) -> Step {
        if in_step {
            Step::InStep(self.end(doc))
        } else {
            Step::Behind
        }
    }

    fn blob_mut(&mut self, hash: BlobHash) -> Result<&mut BlobRecord> {
        self.blobs
            .get_mut(&hash)
            .map(|(_, record)| record)
            .ok_or_else(|| StoreError::NotFound {
                kind: "blob",
                key: hash.to_hex(),
            })
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(|_| StoreError::Poisoned)
    }
}

impl MemoryStore {
    /// Chunks received from the relay; `guard` is the log end the writer's open
    /// document reflects (`None`: no writer to keep in step, the rows follow the cache
    /// alone).
    fn receive(
        &self,
        doc: DocId,
        chunks: &[&[u8]],
        new_cursor: Option<Seq>,
        view: Option<&[ViewRow]>,
        guard: Option<Option<LogPos>>,
    ) -> Result<(usize, Step)> {
        if chunks.iter().any(|c| c.is_empty()) {
            return Err(StoreError::Empty("chunk"));
        }
        if let Some(cursor) = new_cursor {
            check_i64("cursor", cursor)?;
        }
        check_view_rows(view)?;
        let mut inner = self.lock()?;
        let in_step = inner.in_step(doc, guard);
        if chunks.is_empty() && new_cursor.is_none() {
            return Ok((0, inner.step(doc, in_step)));
        }
        let was_valid = in_step
            && inner
                .docs
                .get(&doc)
                .is_some_and(|d| d.valid_view().is_some());
        let mut appended = 0;
        for chunk in chunks {
            if inner.append(doc, ChunkId::of(chunk), chunk) {
                appended += 1;
            }
        }
        let entry = inner.docs.entry(doc).or_default();
        if let Some(cursor) = new_cursor {
            entry.cursor = entry.cursor.max(cursor);
        }
        if appended > 0 {
            entry.advance_view(was_valid, view);
        }
        Ok((appended, inner.step(doc, in_step)))
    }
}

impl LocalStore for MemoryStore {
    fn documents(&self) -> Result<Vec<DocId>> {
        Ok(self.lock()?.docs.keys().copied().collect())
    }

    fn load(&self, doc: DocId) -> Result<Option<StoredDoc>> {
        let inner = self.lock()?;
        Ok(inner.docs.get(&doc).map(|d| StoredDoc {
            snapshot: d.snapshot.as_ref().map(|(bytes, _)| bytes.clone()),
            changes: d.rows.iter().map(|row| row.bytes.clone()).collect(),
            cursor: d.cursor,
            log_end: LogPos::new(d.log_end()),
        }))
    }

    fn cursor(&self, doc: DocId) -> Result<Seq> {
        Ok(self.lock()?.docs.get(&doc).map_or(0, |d| d.cursor))
    }

    fn reset_cursor(&self, doc: DocId) -> Result<()> {
        if let Some(d) = self.lock()?.docs.get_mut(&doc) {
            d.cursor = 0;
            d.snapshot_covers = 0;
        }
        Ok(())
    }

    fn commit_local_with_view(
        &self,
        doc: DocId,
        chunk: &[u8],
        view: Option<&[ViewRow]>,
    ) -> Result<OutboxEntry> {
        check_local(chunk, view)?;
        Ok(self.lock()?.append_local(doc, chunk, view).0)
    }

    fn commit_local_in_step(
        &self,
        doc: DocId,
        chunk: &[u8],
        view: Option<&[ViewRow]>,
        at: Option<LogPos>,
    ) -> Result<Committed> {
        check_local(chunk, view)?;
        let mut inner = self.lock()?;
        if inner.log_end(doc) != at {
            return Ok(Committed::Behind);
        }
        let (entry, end) = inner.append_local(doc, chunk, view);
        Ok(Committed::InStep { entry, end })
    }

    fn apply_remote_with_view(
        &self,
        doc: DocId,
        chunks: &[&[u8]],
        new_cursor: Option<Seq>,
        view: Option<&[ViewRow]>,
    ) -> Result<usize> {
        Ok(self.receive(doc, chunks, new_cursor, view, None)?.0)
    }

    fn apply_remote_in_step(
        &self,
        doc: DocId,
        chunks: &[&[u8]],
        new_cursor: Option<Seq>,
        view: Option<&[ViewRow]>,
        at: Option<LogPos>,
    ) -> Result<(usize, Step)> {
        self.receive(doc, chunks, new_cursor, view, Some(at))
    }

    fn compact(&self, doc: DocId, snapshot: &[u8], through: LogPos) -> Result<bool> {
        if snapshot.is_empty() {
            return Err(StoreError::Empty("snapshot"));
        }
        let mut inner = self.lock()?;
        let (log_end, compacted) = inner
            .docs
            .get(&doc)
            .map_or((0, 0), |d| (d.log_end(), d.compacted_through()));
        if through.get() > log_end {
            return Err(StoreError::PastLogEnd {
                through,
                log_end: LogPos::new(log_end),
            });
        }
        if through.get() < compacted {
            return Ok(false);
        }
        let entry = inner.docs.entry(doc).or_default();
        entry.snapshot = Some((snapshot.to_vec(), through.get()));
        entry.rows.retain(|row| row.pos > through.get());
        Ok(true)
    }

    fn tail_len(&self, doc: DocId) -> Result<u64> {
        let inner = self.lock()?;
        Ok(inner.docs.get(&doc).map_or(0, |d| d.rows.len() as u64))
    }

    fn load_view(&self, doc: DocId) -> Result<Option<CachedView>> {
        let inner = self.lock()?;
        Ok(inner.docs.get(&doc).and_then(|d| {
            d.valid_view().map(|view| CachedView {
                version: view.version,
                through: LogPos::new(view.through),
                rows: view
                    .rows
                    .iter()
                    .map(|(key, bytes)| (key.clone(), bytes.clone()))
                    .collect(),
            })
        }))
    }

    fn replace_view(
        &self,
        doc: DocId,
        version: u32,
        through: LogPos,
        rows: &[(String, Vec<u8>)],
    ) -> Result<bool> {
        for (key, bytes) in rows {
            check_view_row(key, Some(bytes))?;
        }
        check_i64("log position", through.get())?;
        let mut inner = self.lock()?;
        let entry = inner
            .docs
            .get_mut(&doc)
            .ok_or_else(|| StoreError::NotFound {
                kind: "document",
                key: doc.to_hex(),
            })?;
        let log_end = entry.log_end();
        if through.get() > log_end {
            return Err(StoreError::PastLogEnd {
                through,
                log_end: LogPos::new(log_end),
            });
        }
        if through.get() < log_end {
            return Ok(false);
        }
        entry.view = Some(View {
            version,
            through: log_end,
            rows: rows.iter().cloned().collect(),
        });
        Ok(true)
    }

    fn drop_view(&self, doc: DocId) -> Result<()> {
        if let Some(d) = self.lock()?.docs.get_mut(&doc) {
            d.view = None;
        }
        Ok(())
    }

    fn outbox_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<OutboxEntry>> {
        let inner = self.lock()?;
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(inner
            .outbox
            .range((from, std::ops::Bound::Unbounded))
            .map(|(_, e)| e)
            .take(limit)
            .cloned()
            .collect())
    }

    fn outbox_acked(&self, id: u64) -> Result<bool> {
        Ok(self.lock()?.outbox.remove(&id).is_some())
    }

    fn outbox_acked_chunk(&self, doc: DocId, chunk: ChunkId) -> Result<bool> {
        let mut inner = self.lock()?;
        let before = inner.outbox.len();
        inner
            .outbox
            .retain(|_, e| !(e.doc == doc && e.chunk == chunk));
        Ok(inner.outbox.len() != before)
    }

    fn pending_count(&self) -> Result<u64> {
        Ok(self.lock()?.outbox.len() as u64)
    }

    fn put_blob(&self, record: &BlobRecord) -> Result<()> {
        if record.state == BlobState::PendingUpload && !record.cached {
            return Err(StoreError::PendingNotCached(record.hash));
        }
        check_i64("blob size", record.size)?;
        let mut inner = self.lock()?;
        let order = match inner.blobs.get(&record.hash) {
            Some((order, _)) => *order,
            None => {
                inner.last_blob_order += 1;
                inner.last_blob_order
            }
        };
        inner.blobs.insert(record.hash, (order, record.clone()));
        Ok(())
    }

    fn blob(&self, hash: BlobHash) -> Result<Option<BlobRecord>> {
        Ok(self.lock()?.blobs.get(&hash).map(|(_, r)| r.clone()))
    }

    fn pending_uploads(&self) -> Result<Vec<BlobRecord>> {
        let inner = self.lock()?;
        let mut pending: Vec<_> = inner
            .blobs
            .values()
            .filter(|(_, r)| r.state == BlobState::PendingUpload)
            .collect();
        pending.sort_by_key(|(order, _)| *order);
        Ok(pending.into_iter().map(|(_, r)| r.clone()).collect())
    }

    fn set_blob_state(&self, hash: BlobHash, state: BlobState) -> Result<()> {
        let mut inner = self.lock()?;
        let record = inner.blob_mut(hash)?;
        if state == BlobState::PendingUpload && !record.cached {
            return Err(StoreError::PendingNotCached(hash));
        }
        record.state = state;
        Ok(())
    }

    fn set_cached(&self, hash: BlobHash, cached: bool) -> Result<()> {
        let mut inner = self.lock()?;
        let record = inner.blob_mut(hash)?;
        if !cached && record.state == BlobState::PendingUpload {
            return Err(StoreError::PendingNotCached(hash));
        }
        record.cached = cached;
        Ok(())
    }

    fn touch_blob(&self, hash: BlobHash, now_ms: i64) -> Result<()> {
        self.lock()?.blob_mut(hash)?.last_used_ms = now_ms;
        Ok(())
    }

    fn cached_bytes(&self) -> Result<u64> {
        Ok(self
            .lock()?
            .blobs
            .values()
            .filter(|(_, r)| r.cached)
            .fold(0u64, |sum, (_, r)| sum.saturating_add(r.size)))
    }

    fn eviction_candidates(&self, limit: usize) -> Result<Vec<BlobRecord>> {
        let inner = self.lock()?;
        let mut candidates: Vec<_> = inner
            .blobs
            .values()
            .map(|(_, r)| r)
            .filter(|r| r.cached && r.state != BlobState::PendingUpload)
            .collect();
        candidates.sort_by_key(|r| (r.last_used_ms, r.hash));
        Ok(candidates.into_iter().take(limit).cloned().collect())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock()?.meta.get(key).cloned())
    }

    fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.lock()?.meta.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete_meta(&self, key: &str) -> Result<()> {
        self.lock()?.meta.remove(key);
        Ok(())
    }

    fn set_meta_if(
        &self,
        guard: &str,
        expected: Option<&[u8]>,
        values: &[(&str, &[u8])],
    ) -> Result<bool> {
        let mut inner = self.lock()?;
        if inner.meta.get(guard).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        for (key, value) in values {
            inner.meta.insert((*key).to_owned(), value.to_vec());
        }
        Ok(true)
    }
}
