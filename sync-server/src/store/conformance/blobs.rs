//! Blob stores: verified, deduplicated, atomic uploads and range reads.

use std::{sync::Arc, thread};

use doran_protocol::BlobHash;

use super::TestResult;
use crate::store::{BlobStore, StoreError};

/// Bytes that are not all alike, so a misplaced range shows.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Uploads `data` in pieces of `piece` bytes and finishes with its hash.
fn upload(blobs: &dyn BlobStore, data: &[u8], piece: usize) -> Result<u64, StoreError> {
    let mut sink = blobs.begin()?;
    for part in data.chunks(piece.max(1)) {
        sink.write(part)?;
    }
    sink.finish(BlobHash::of(data))
}

pub(crate) fn an_upload_reads_back(blobs: &Arc<dyn BlobStore>) -> TestResult {
    let data = bytes(300_000, 1);
    let hash = BlobHash::of(&data);
    assert_eq!(blobs.size(hash)?, None);
    assert_eq!(upload(blobs.as_ref(), &data, 7_919)?, 300_000);
    assert_eq!(blobs.size(hash)?, Some(300_000));
    assert_eq!(blobs.read(hash, 0, u64::MAX)?, data);
    Ok(())
}

/// Larger than any store's in-memory buffer (the S3 store's multipart threshold is
/// 5 MiB): streamed in parts, and a mismatch of a large upload publishes nothing.
pub(crate) fn a_large_upload_reads_back_and_a_large_mismatch_publishes_nothing(
    blobs: &Arc<dyn BlobStore>,
) -> TestResult {
    // Bytes that do not repeat every 256, so a read at a wrong offset shows.
    let varied = |len: usize, seed: u32| -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect()
    };
    let data = varied(12 * 1024 * 1024 + 12_345, 11);
    let hash = BlobHash::of(&data);
    assert_eq!(
        upload(blobs.as_ref(), &data, 256 * 1024 + 7)?,
        data.len() as u64
    );
    assert_eq!(blobs.size(hash)?, Some(data.len() as u64));
    // A range across the 5 MiB boundary, and the tail.
    let at = 5 * 1024 * 1024 - 100;
    assert_eq!(blobs.read(hash, at as u64, 200)?, data[at..at + 200]);
    let tail = data.len() - 1_000;
    assert_eq!(blobs.read(hash, tail as u64, u64::MAX)?, data[tail..]);
    assert!(blobs.read(hash, 0, u64::MAX)? == data);

    let other = varied(6 * 1024 * 1024, 12);
    let claimed = BlobHash::of(b"not these bytes");
    let mut sink = blobs.begin()?;
    for piece in other.chunks(1024 * 1024) {
        sink.write(piece)?;
    }
    assert!(matches!(
        sink.finish(claimed),
        Err(StoreError::HashMismatch)
    ));
    assert_eq!(blobs.size(claimed)?, None);
    assert_eq!(blobs.size(BlobHash::of(&other))?, None);
    Ok(())
}

pub(crate) fn an_empty_blob_is_a_blob(blobs: &Arc<dyn BlobStore>) -> TestResult {
    let sink = blobs.begin()?;
    let hash = BlobHash::of(b"");
    assert_eq!(sink.finish(hash)?, 0);
    assert_eq!(blobs.size(hash)?, Some(0));
    assert!(blobs.read(hash, 0, 10)?.is_empty());
    Ok(())
}

pub(crate) fn uploading_twice_is_deduplicated(blobs: &Arc<dyn BlobStore>) -> TestResult {
    let data = bytes(5_000, 2);
    let hash = BlobHash::of(&data);
    assert_eq!(upload(blobs.as_ref(), &data, 1_000)?, 5_000);
    assert_eq!(upload(blobs.as_ref(), &data, 333)?, 5_000);
    assert_eq!(blobs.size(hash)?, Some(5_000));
    assert_eq!(blobs.read(hash, 0, 5_000)?, data);
    Ok(())
}

pub(crate) fn a_hash_mismatch_publishes_nothing(blobs: &Arc<dyn BlobStore>) -> TestResult {
    let data = bytes(4_000, 3);
    let claimed = BlobHash::of(b"something else");
    let mut sink = blobs.begin()?;
    sink.write(&data)?;
    assert!(matches!(
        sink.finish(claimed),
        Err(StoreError::HashMismatch)
    ));
    assert_eq!(blobs.size(claimed)?, None);
    assert_eq!(blobs.size(BlobHash::of(&data))?, None);
    // A mismatch does not spoil an existing blob with the claimed hash either.
    let real = b"something else".to_vec();
    upload(blobs.as_ref(), &real, 4)?;
    let mut sink = blobs.begin()?;
    sink.write(b"forged")?;
    assert!(matches!(
        sink.finish(claimed),
        Err(StoreError::HashMismatch)
    ));
    assert_eq!(blobs.read(claimed, 0, 100)?, real);
    Ok(())
}

pub(crate) fn a_dropped_upload_leaves_nothing(blobs: &Arc<dyn BlobStore>) -> TestResult {
    let data = bytes(10_000, 4);
    let mut sink = blobs.begin()?;
    sink.write(&data[..6_000])?;
    drop(sink);
    assert_eq!(blobs.size(BlobHash::of(&data))?, None);
    assert_eq!(blobs.size(BlobHash::of(&data[..6_000]))?, None);
    // The upload can start over.
    assert_eq!(upload(blobs.as_ref(), &data, 4_096)?, 10_000);
    Ok(())
}

pub(crate) fn range_reads_are_clamped(blobs: &Arc<dyn BlobStore>) -> TestResult {
    let data = bytes(1_000, 5);
    let hash = BlobHash::of(&data);
    upload(blobs.as_ref(), &data, 1_000)?;
    assert_eq!(blobs.read(hash, 0, 10)?, data[..10]);
    assert_eq!(blobs.read(hash, 100, 250)?, data[100..350]);
    assert_eq!(
        blobs.read(hash, 990, 100)?,
        data[990..],
        "clamped at the end"
    );
    assert_eq!(blobs.read(hash, 500, u64::MAX)?, data[500..]);
    assert!(blobs.read(hash, 1_000, 10)?.is_empty(), "at the end");
    assert!(blobs.read(hash, 5_000, 10)?.is_empty(), "past the end");
    assert!(blobs.read(hash, u64::MAX, u64::MAX)?.is_empty());
    assert!(blobs.read(hash, 10, 0)?.is_empty());
    Ok(())
}

pub(crate) fn unknown_blobs(blobs: &Arc<dyn BlobStore>) -> TestResult {
    let hash = BlobHash::of(b"never uploaded");
    assert_eq!(blobs.size(hash)?, None);
    assert!(matches!(
        blobs.read(hash, 0, 10),
        Err(StoreError::NotFound("blob"))
    ));
    Ok(())
}

/// A small download's read: the whole blob, again and again (a store with a cache in
/// front answers the later ones from memory), a range of it, and never a deleted one.
pub(crate) fn whole_reads_are_the_blob_and_follow_deletes(
    blobs: &Arc<dyn BlobStore>,
) -> TestResult {
    let data = bytes(16 * 1024, 13);
    let hash = BlobHash::of(&data);
    assert!(matches!(
        blobs.read_whole(hash, 16 * 1024),
        Err(StoreError::NotFound("blob"))
    ));
    upload(blobs.as_ref(), &data, 4_000)?;
    for _ in 0..3 {
        assert_eq!(blobs.read_whole(hash, 16 * 1024)?, data);
    }
    assert_eq!(blobs.size(hash)?, Some(16 * 1024));
    assert_eq!(blobs.read(hash, 16_000, 1_000)?, data[16_000..]);
    assert!(blobs.delete(hash)?);
    assert_eq!(blobs.size(hash)?, None);
    assert!(matches!(
        blobs.read_whole(hash, 16 * 1024),
        Err(StoreError::NotFound("blob"))
    ));
    assert!(matches!(
        blobs.read(hash, 0, 10),
        Err(StoreError::NotFound("blob"))
    ));
    upload(blobs.as_ref(), &data, 16 * 1024)?;
    assert_eq!(blobs.read_whole(hash, 16 * 1024)?, data);
    Ok(())
}

pub(crate) fn concurrent_uploads_of_the_same_blob(blobs: &Arc<dyn BlobStore>) -> TestResult {
    let data = Arc::new(bytes(200_000, 6));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let blobs = Arc::clone(blobs);
            let data = Arc::clone(&data);
            thread::spawn(move || upload(blobs.as_ref(), &data, 1_000 + t * 977))
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().map_err(|_| "uploader panicked")??, 200_000);
    }
    let hash = BlobHash::of(&data);
    assert_eq!(blobs.size(hash)?, Some(200_000));
    assert_eq!(blobs.read(hash, 0, u64::MAX)?, *data);
    Ok(())
}

pub(crate) fn concurrent_uploads_of_different_blobs(blobs: &Arc<dyn BlobStore>) -> TestResult {
    let handles: Vec<_> = (0..8u8)
        .map(|t| {
            let blobs = Arc::clone(blobs);
            thread::spawn(move || -> Result<(), StoreError> {
                for i in 0..5u8 {
                    let data = bytes(3_000 + usize::from(i), t * 10 + i);
                    upload(blobs.as_ref(), &data, 512)?;
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().map_err(|_| "uploader panicked")??;
    }
    for t in 0..8u8 {
        for i in 0..5u8 {
            let data = bytes(3_000 + usize::from(i), t * 10 + i);
            assert_eq!(blobs.read(BlobHash::of(&data), 0, u64::MAX)?, data);
        }
    }
    Ok(())
}

pub(crate) fn blobs_list_in_hash_order_by_pages(blobs: &Arc<dyn BlobStore>) -> TestResult {
    assert!(blobs.list(None, 10)?.is_empty());
    let mut hashes = Vec::new();
    for n in 0..20u8 {
        let data = bytes(100 + usize::from(n), n);
        upload(blobs.as_ref(), &data, 64)?;
        hashes.push(BlobHash::of(&data));
    }
    hashes.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = blobs.list(after, 7)?;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        after = page.last().map(|b| b.hash);
        seen.extend(page);
    }
    assert_eq!(seen.iter().map(|b| b.hash).collect::<Vec<_>>(), hashes);
    for b in &seen {
        assert_eq!(Some(b.size), blobs.size(b.hash)?);
        assert!(b.stored_at > 0);
    }
    Ok(())
}

pub(crate) fn a_deleted_blob_is_gone_and_can_come_back(blobs: &Arc<dyn BlobStore>) -> TestResult {
    let data = bytes(2_000, 8);
    let hash = BlobHash::of(&data);
    upload(blobs.as_ref(), &data, 500)?;
    assert!(blobs.delete(hash)?);
    assert!(!blobs.delete(hash)?, "already gone");
    assert_eq!(blobs.size(hash)?, None);
    assert!(blobs.list(None, 10)?.is_empty());
    upload(blobs.as_ref(), &data, 500)?;
    assert_eq!(blobs.read(hash, 0, u64::MAX)?, data);
    Ok(())
}

pub(crate) fn storing_a_blob_again_renews_its_time(blobs: &Arc<dyn BlobStore>) -> TestResult {
    let data = bytes(1_000, 9);
    upload(blobs.as_ref(), &data, 1_000)?;
    let first = blobs.list(None, 1)?.first().copied().ok_or("listed")?;
    thread::sleep(std::time::Duration::from_millis(20));
    upload(blobs.as_ref(), &data, 1_000)?;
    let again = blobs.list(None, 1)?.first().copied().ok_or("listed")?;
    assert!(
        again.stored_at > first.stored_at,
        "{first:?} then {again:?}"
    );
    Ok(())
}
