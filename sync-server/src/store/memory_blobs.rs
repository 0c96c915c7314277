//! [`MemoryBlobStore`]: blobs in a map, for tests.

use std::{
    collections::BTreeMap,
    ops::Bound,
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use doran_protocol::BlobHash;

use super::{BlobSink, BlobStore, StoreError, StoreResult, StoredBlob};

/// Each blob's bytes and when it was last stored (unix ms).
type Blobs = BTreeMap<BlobHash, (Arc<[u8]>, u64)>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A [`BlobStore`] in memory, lost on drop; it passes the same conformance suite as
/// [`FsBlobStore`](super::FsBlobStore). Clones share the same blobs.
#[derive(Debug, Clone, Default)]
pub struct MemoryBlobStore {
    blobs: Arc<Mutex<Blobs>>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn lock(blobs: &Mutex<Blobs>) -> StoreResult<MutexGuard<'_, Blobs>> {
    blobs.lock().map_err(|_| StoreError::Poisoned)
}

/// Clamps a range to a blob of `size` bytes: the bytes `start..end` to read.
pub(super) fn clamp(size: u64, offset: u64, len: u64) -> (u64, u64) {
    let start = offset.min(size);
    (start, start.saturating_add(len).min(size))
}

impl BlobStore for MemoryBlobStore {
    fn reads_at_once(&self) -> bool {
        true
    }

    fn begin(&self) -> StoreResult<Box<dyn BlobSink>> {
        Ok(Box::new(MemorySink {
            blobs: Arc::clone(&self.blobs),
            bytes: Vec::new(),
        }))
    }

    fn size(&self, hash: BlobHash) -> StoreResult<Option<u64>> {
        Ok(lock(&self.blobs)?.get(&hash).map(|(b, _)| b.len() as u64))
    }

    fn read(&self, hash: BlobHash, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        let blob = lock(&self.blobs)?
            .get(&hash)
            .map(|(b, _)| Arc::clone(b))
            .ok_or(StoreError::NotFound("blob"))?;
        let (start, end) = clamp(blob.len() as u64, offset, len);
        // Both ends are at most the blob's length, which is a usize.
        let range = usize::try_from(start).unwrap_or(blob.len())
            ..usize::try_from(end).unwrap_or(blob.len());
        Ok(blob.get(range).unwrap_or_default().to_vec())
    }

    fn list(&self, after: Option<BlobHash>, limit: usize) -> StoreResult<Vec<StoredBlob>> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(lock(&self.blobs)?
            .range((from, Bound::Unbounded))
            .take(limit)
            .map(|(hash, (bytes, stored_at))| StoredBlob {
                hash: *hash,
                size: bytes.len() as u64,
                stored_at: *stored_at,
            })
            .collect())
    }

    fn delete(&self, hash: BlobHash) -> StoreResult<bool> {
        Ok(lock(&self.blobs)?.remove(&hash).is_some())
    }
}

/// An upload into a [`MemoryBlobStore`].
#[derive(Debug)]
struct MemorySink {
    blobs: Arc<Mutex<Blobs>>,
    bytes: Vec<u8>,
}

impl BlobSink for MemorySink {
    fn write(&mut self, bytes: &[u8]) -> StoreResult<()> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(self: Box<Self>, expected: BlobHash) -> StoreResult<u64> {
        let MemorySink { blobs, bytes } = *self;
        if !expected.verifies(&bytes) {
            return Err(StoreError::HashMismatch);
        }
        let size = bytes.len() as u64;
        lock(&blobs)?
            .entry(expected)
            .and_modify(|(_, at)| *at = now_ms())
            .or_insert_with(|| (Arc::from(bytes), now_ms()));
        Ok(size)
    }
}
