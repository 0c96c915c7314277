//! [`CachedBlobs`]: the small blobs a family downloads again and again — a photo's
//! thumbnail, an avatar, a voice message — kept in memory in front of a blob store (the
//! relay puts it in front of its blob folder or its S3 bucket, `crate::backends`).
//!
//! Every member's device fetches each new thumbnail, and a fresh device fetches them
//! all. From the blob folder each download costs a `stat`, an `open`, a `pread` of a
//! fresh buffer and a `close`: 6.4 % of the relay's CPU in the mixed load run
//! (`docs/benchmarks.md`), more than the download's SQLite read. A blob is named by
//! its hash and never changes, so a copy in memory is never stale: a cached blob is
//! answered with a reference to the same bytes.
//!
//! What the cache holds is bounded in bytes — each blob's, plus [`ENTRY_COST`] for its
//! place in the map, so that many tiny blobs cannot hold more memory than the bound
//! says — with the least recently read out first, and per blob ([`CachedBlobs::new`]).
//! Only whole reads fill it ([`BlobStore::read_whole`]), and only with bytes that hash
//! to the blob's name: what is kept is the blob, even if its file is damaged later.
//! Who may read a blob is decided before the store is asked, as without the cache.
//! A deleted blob leaves the cache before the store deletes it and again after, and a
//! read that overlapped the delete is not kept, so after this relay deleted a blob the
//! cache never says it is there (the snapshot confirmation relies on `size` for that).
//! In front of a store that other relays delete from too (a cluster's bucket), whether
//! a blob is there is always asked of the store ([`CachedBlobs::sizes_from_store`]):
//! memory only spares reading the bytes of one the store said it has — the same bytes
//! whoever stored them, even if another relay deletes it while they are sent.

use std::{
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use axum::body::Bytes;
use doran_protocol::BlobHash;
use hashlink::LruCache;

use super::{BlobSink, BlobStore, StoreResult, StoredBlob};

/// What one kept blob costs beyond its bytes, counted against the bound: the map's
/// node and links, the hash, the `Bytes` handle and the allocation's header.
pub const ENTRY_COST: u64 = 160;

/// A blob store with its recently read small blobs in memory.
pub struct CachedBlobs {
    inner: Arc<dyn BlobStore>,
    /// Largest blob kept, in bytes.
    max_blob: u64,
    /// Sizes (whether a blob is there) are asked of the store, never of memory.
    sizes_from_store: bool,
    recent: Mutex<Recent>,
    /// Whole reads answered from memory, and from the store.
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What a [`CachedBlobs`] holds, and how its whole reads were answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Blobs held.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Whole reads answered from memory.
    pub hits: u64,
    /// Whole reads that went to the store.
    pub misses: u64,
}

struct Recent {
    /// The order is the order of use: the least recently read is evicted first.
    blobs: LruCache<BlobHash, Bytes>,
    /// The blobs' bytes.
    bytes: u64,
    /// What they cost against the bound: their bytes and [`ENTRY_COST`] each; at
    /// most `max_bytes`.
    charged: u64,
    max_bytes: u64,
    /// Deletes begun and ended so far: a read during which this moved may be of a
    /// deleted blob, and is not kept.
    deletes: u64,
}

impl Recent {
    fn forget(&mut self, hash: &BlobHash) {
        if let Some(old) = self.blobs.remove(hash) {
            self.released(&old);
        }
    }

    /// Takes a blob that left the map off the counts.
    fn released(&mut self, old: &Bytes) {
        self.bytes -= old.len() as u64;
        self.charged -= old.len() as u64 + ENTRY_COST;
    }
}

impl CachedBlobs {
    /// `inner`, with up to `max_bytes` of blobs of at most `max_blob` bytes each kept in
    /// memory once read whole (each counting [`ENTRY_COST`] more).
    pub fn new(inner: Arc<dyn BlobStore>, max_bytes: u64, max_blob: u64) -> CachedBlobs {
        CachedBlobs {
            inner,
            max_blob: max_blob.min(max_bytes.saturating_sub(ENTRY_COST)),
            sizes_from_store: false,
            recent: Mutex::new(Recent {
                blobs: LruCache::new_unbounded(),
                bytes: 0,
                charged: 0,
                max_bytes,
                deletes: 0,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// For a store others delete from as well (relays sharing a bucket): a blob's size,
    /// and so whether it is there at all, is always the store's answer; a blob another
    /// relay deleted is then not found, whatever this one kept.
    #[must_use]
    pub fn sizes_from_store(mut self) -> CachedBlobs {
        self.sizes_from_store = true;
        self
    }

    /// Blobs and bytes held now.
    fn held(&self) -> (usize, u64) {
        let recent = self.lock();
        (recent.blobs.len(), recent.bytes)
    }

    /// The cache is never left half-changed (nothing in it can panic between two
    /// steps), so a lock poisoned elsewhere is still good.
    fn lock(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A kept blob, now the most recently read.
    fn get(&self, hash: &BlobHash) -> Option<Bytes> {
        self.lock().blobs.get(hash).cloned()
    }

    /// A kept blob's size, leaving its place in the order as it is (asking a size is
    /// not reading: a `HEAD`, a snapshot's confirmation).
    fn peek_size(&self, hash: &BlobHash) -> Option<u64> {
        self.lock().blobs.peek(hash).map(|b| b.len() as u64)
    }

    /// Keeps `bytes` as `hash` if they are that blob, small enough, and no delete
    /// came since the read began (`deletes_before`).
    fn keep(&self, hash: BlobHash, bytes: &Bytes, deletes_before: u64) {
        let len = bytes.len() as u64;
        if len > self.max_blob || !hash.verifies(bytes) {
            return;
        }
        let mut recent = self.lock();
        if recent.deletes != deletes_before || recent.blobs.contains_key(&hash) {
            return;
        }
        let cost = len + ENTRY_COST;
        while recent.charged + cost > recent.max_bytes {
            match recent.blobs.remove_lru() {
                Some((_, old)) => recent.released(&old),
                None => break,
            }
        }
        recent.bytes += len;
        recent.charged += cost;
        recent.blobs.insert(hash, bytes.clone());
    }
}

impl fmt::Debug for CachedBlobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (blobs, bytes) = self.held();
        f.debug_struct("CachedBlobs")
            .field("inner", &self.inner)
            .field("blobs", &blobs)
            .field("bytes", &bytes)
            .finish_non_exhaustive()
    }
}

impl BlobStore for CachedBlobs {
    fn reads_at_once(&self) -> bool {
        self.inner.reads_at_once()
    }

    fn free_bytes(&self) -> StoreResult<Option<u64>> {
        self.inner.free_bytes()
    }

    fn begin(&self) -> StoreResult<Box<dyn BlobSink>> {
        self.inner.begin()
    }

    fn size(&self, hash: BlobHash) -> StoreResult<Option<u64>> {
        if self.sizes_from_store {
            return self.inner.size(hash);
        }
        match self.peek_size(&hash) {
            Some(len) => Ok(Some(len)),
            None => self.inner.size(hash),
        }
    }

    fn read(&self, hash: BlobHash, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        match self.get(&hash) {
            Some(bytes) => {
                let (start, end) = super::memory_blobs::clamp(bytes.len() as u64, offset, len);
                // Within `bytes`, whose length is a usize.
                Ok(bytes[start as usize..end as usize].to_vec())
            }
            None => self.inner.read(hash, offset, len),
        }
    }

    fn kept(&self, hash: BlobHash) -> Option<Bytes> {
        let bytes = self.get(&hash)?;
        self.hits.fetch_add(1, Relaxed);
        Some(bytes)
    }

    fn read_whole(&self, hash: BlobHash, size: u64) -> StoreResult<Bytes> {
        if let Some(bytes) = self.kept(hash) {
            return Ok(bytes);
        }
        self.misses.fetch_add(1, Relaxed);
        let deletes_before = self.lock().deletes;
        let bytes = self.inner.read_whole(hash, size)?;
        self.keep(hash, &bytes, deletes_before);
        Ok(bytes)
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        let (blobs, bytes) = self.held();
        Some(CacheStats {
            blobs: blobs as u64,
            bytes,
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
        })
    }

    fn list(&self, after: Option<BlobHash>, limit: usize) -> StoreResult<Vec<StoredBlob>> {
        self.inner.list(after, limit)
    }

    fn delete(&self, hash: BlobHash) -> StoreResult<bool> {
        // Before: no read from here on is answered from memory. After: a read that
        // found the file before it went, and was kept meanwhile, is forgotten, and
        // one still under way sees the count move and is not kept.
        let forget = || {
            let mut recent = self.lock();
            recent.deletes += 1;
            recent.forget(&hash);
        };
        forget();
        let deleted = self.inner.delete(hash);
        forget();
        deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryBlobStore, StoreError};

    /// A store that counts the reads that reach it, and whose `delete` can be made to
    /// stop before it deletes until told to go on (`gate`: reached, go on).
    #[derive(Debug, Default)]
    struct Counting {
        inner: MemoryBlobStore,
        reads: std::sync::atomic::AtomicUsize,
        gate: Option<(std::sync::Barrier, std::sync::Barrier)>,
    }

    impl BlobStore for Counting {
        fn begin(&self) -> StoreResult<Box<dyn BlobSink>> {
            self.inner.begin()
        }
        fn size(&self, hash: BlobHash) -> StoreResult<Option<u64>> {
            self.inner.size(hash)
        }
        fn read(&self, hash: BlobHash, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.read(hash, offset, len)
        }
        fn list(&self, after: Option<BlobHash>, limit: usize) -> StoreResult<Vec<StoredBlob>> {
            self.inner.list(after, limit)
        }
        fn delete(&self, hash: BlobHash) -> StoreResult<bool> {
            if let Some((reached, go_on)) = &self.gate {
                reached.wait();
                go_on.wait();
            }
            self.inner.delete(hash)
        }
    }

    impl Counting {
        fn reads(&self) -> usize {
            self.reads.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    fn put(blobs: &dyn BlobStore, data: &[u8]) -> BlobHash {
        let mut sink = blobs.begin().expect("begin");
        sink.write(data).expect("write");
        let hash = BlobHash::of(data);
        sink.finish(hash).expect("finish");
        hash
    }

    fn cached(max_bytes: u64, max_blob: u64) -> (Arc<Counting>, CachedBlobs) {
        let store = Arc::new(Counting::default());
        let inner: Arc<dyn BlobStore> = store.clone();
        (store, CachedBlobs::new(inner, max_bytes, max_blob))
    }

    #[test]
    fn a_small_blob_read_whole_is_read_from_the_store_once() -> StoreResult<()> {
        let (store, blobs) = cached(1024, 256);
        let data = vec![7u8; 200];
        let hash = put(&blobs, &data);
        for _ in 0..3 {
            assert_eq!(blobs.read_whole(hash, 200)?, data);
        }
        assert_eq!(store.reads(), 1);
        assert_eq!(blobs.size(hash)?, Some(200));
        assert_eq!(
            blobs.read(hash, 190, 100)?,
            data[190..],
            "clamped as the store does"
        );
        assert!(blobs.read(hash, 500, 10)?.is_empty(), "past the end");
        assert_eq!(store.reads(), 1, "ranges of a cached blob come from memory");
        assert_eq!(
            blobs.cache_stats(),
            Some(CacheStats {
                blobs: 1,
                bytes: 200,
                hits: 2,
                misses: 1
            })
        );
        Ok(())
    }

    #[test]
    fn a_blob_over_the_size_is_never_kept() -> StoreResult<()> {
        let (store, blobs) = cached(1024, 256);
        let hash = put(&blobs, &[1u8; 300]);
        blobs.read_whole(hash, 300)?;
        blobs.read_whole(hash, 300)?;
        assert_eq!(store.reads(), 2);
        assert_eq!(blobs.held(), (0, 0));
        Ok(())
    }

    #[test]
    fn the_least_recently_read_leaves_first_and_the_bytes_stay_bounded() -> StoreResult<()> {
        // Room for two blobs of 200 bytes and their entries, not three.
        let (store, blobs) = cached(2 * (200 + ENTRY_COST) + 100, 200);
        let a = put(&blobs, &[1u8; 200]);
        let b = put(&blobs, &[2u8; 200]);
        let c = put(&blobs, &[3u8; 200]);
        blobs.read_whole(a, 200)?;
        blobs.read_whole(b, 200)?;
        blobs.read_whole(a, 200)?; // a is now the more recent
        blobs.read_whole(c, 200)?; // b makes room
        assert_eq!(blobs.held(), (2, 400));
        assert_eq!(store.reads(), 3);
        blobs.read_whole(a, 200)?;
        blobs.read_whole(c, 200)?;
        assert_eq!(store.reads(), 3, "a and c were kept");
        blobs.read_whole(b, 200)?;
        assert_eq!(store.reads(), 4, "b was not");
        Ok(())
    }

    #[test]
    fn many_tiny_blobs_hold_no_more_than_the_bound() -> StoreResult<()> {
        // Quotas count bytes, not blobs: a thousand 8-byte blobs must not hold a
        // thousand entries when the bound is 2 000 bytes.
        let (_, blobs) = cached(2_000, 1_000);
        for n in 0..1_000u32 {
            let data = n.to_le_bytes().repeat(2);
            let hash = put(&blobs, &data);
            assert_eq!(blobs.read_whole(hash, 8)?, data);
        }
        let recent = blobs.lock();
        assert!(recent.charged <= 2_000, "{} charged", recent.charged);
        assert_eq!(recent.blobs.len() as u64, 2_000 / (8 + ENTRY_COST));
        assert_eq!(recent.bytes, 8 * recent.blobs.len() as u64);
        Ok(())
    }

    #[test]
    fn bytes_that_are_not_the_blob_are_never_kept() -> StoreResult<()> {
        let (store, blobs) = cached(1024, 256);
        let hash = put(&blobs, &[5u8; 100]);
        // A size that does not match what is stored (as a damaged file would read):
        // answered as the store answers, and not remembered.
        let short = blobs.read_whole(hash, 50)?;
        assert_eq!(short.len(), 50);
        assert_eq!(blobs.held(), (0, 0));
        assert_eq!(blobs.read_whole(hash, 100)?, vec![5u8; 100]);
        assert_eq!(store.reads(), 2);
        Ok(())
    }

    #[test]
    fn a_deleted_blob_leaves_the_cache() -> StoreResult<()> {
        let (_, blobs) = cached(1024, 256);
        let hash = put(&blobs, &[9u8; 100]);
        blobs.read_whole(hash, 100)?;
        assert!(blobs.delete(hash)?);
        assert_eq!(blobs.held(), (0, 0));
        assert_eq!(blobs.lock().charged, 0);
        assert_eq!(blobs.size(hash)?, None);
        assert!(matches!(
            blobs.read_whole(hash, 100),
            Err(StoreError::NotFound(_))
        ));
        Ok(())
    }

    #[test]
    fn a_read_begun_before_a_delete_is_not_kept() -> StoreResult<()> {
        let (_, blobs) = cached(1024, 256);
        let data = vec![4u8; 100];
        let hash = put(&blobs, &data);
        // The read began (and got the bytes) before the delete, and finishes after it.
        let before = blobs.lock().deletes;
        let bytes = blobs.inner.read_whole(hash, 100)?;
        blobs.delete(hash)?;
        blobs.keep(hash, &bytes, before);
        assert_eq!(blobs.held(), (0, 0));
        assert_eq!(blobs.size(hash)?, None);
        Ok(())
    }

    #[test]
    fn a_read_during_a_delete_is_not_kept_after_it() -> StoreResult<()> {
        let store = Arc::new(Counting {
            gate: Some((std::sync::Barrier::new(2), std::sync::Barrier::new(2))),
            ..Counting::default()
        });
        let (reached, go_on) = store.gate.as_ref().expect("a gate");
        let inner: Arc<dyn BlobStore> = store.clone();
        let blobs = Arc::new(CachedBlobs::new(inner, 1024, 256));
        let data = vec![6u8; 100];
        let hash = put(blobs.as_ref(), &data);
        let sweeping = {
            let blobs = Arc::clone(&blobs);
            std::thread::spawn(move || blobs.delete(hash))
        };
        // The sweep's delete has begun and the blob is still in the store: a download
        // now reads it whole, and would keep it.
        reached.wait();
        assert_eq!(blobs.read_whole(hash, 100)?, data);
        go_on.wait();
        assert!(
            sweeping
                .join()
                .map_err(|_| StoreError::Invalid("panicked".into()))??
        );
        assert_eq!(blobs.held(), (0, 0));
        assert_eq!(
            blobs.size(hash)?,
            None,
            "no size for a blob the store has not"
        );
        Ok(())
    }

    #[test]
    fn over_a_shared_store_whether_a_blob_is_there_is_the_store_s_answer() -> StoreResult<()> {
        let (store, blobs) = cached(1024, 256);
        let blobs = blobs.sizes_from_store();
        let data = vec![8u8; 100];
        let hash = put(&blobs, &data);
        assert_eq!(blobs.kept(hash), None, "not read yet");
        assert_eq!(blobs.read_whole(hash, 100)?, data);
        assert_eq!(blobs.read_whole(hash, 100)?, data);
        assert_eq!(blobs.kept(hash).as_deref(), Some(data.as_slice()));
        assert_eq!(store.reads(), 1, "the bytes come from memory");
        // Another relay sharing the store deletes the blob (not through this cache).
        assert!(store.inner.delete(hash)?);
        assert_eq!(blobs.size(hash)?, None, "not there, whatever is kept");
        Ok(())
    }
}
