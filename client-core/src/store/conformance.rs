//! The one conformance suite every [`LocalStore`] backend must pass.
//!
//! Each test is a function over an `Arc<dyn LocalStore>`; the
//! [`store_conformance_tests!`] macro expands them as `#[test]`s for one backend,
//! given a factory that returns a [`Fixture`]. A new backend adds one line at the
//! bottom of this file. A test function that the macro does not list is dead code,
//! so the compiler points out a forgotten one.

use std::{collections::HashSet, error::Error, sync::Arc, thread};

use doran_protocol::{BlobHash, ChunkId, DocId, FamilyId};

mod records;
pub(crate) use records::*;

use super::{
    BlobOwner, BlobRecord, BlobState, CachedView, Committed, LocalStore, LogPos, MAX_VIEW_KEY_LEN,
    MAX_VIEW_ROW_LEN, MemoryStore, SqliteStore, Step, StoreError, StoredDoc, ViewRow,
};

/// What a conformance test returns.
pub(crate) type TestResult = Result<(), Box<dyn Error>>;

/// A store under test, and whatever must live as long as it (a temporary directory).
pub(crate) struct Fixture {
    pub(crate) store: Arc<dyn LocalStore>,
    _keep: Option<tempfile::TempDir>,
}

impl Fixture {
    fn new(store: impl LocalStore + 'static, keep: Option<tempfile::TempDir>) -> Self {
        Self {
            store: Arc::new(store),
            _keep: keep,
        }
    }
}

/// Expands every conformance test for one backend:
/// `store_conformance_tests!(name, || -> Fixture)`.
macro_rules! store_conformance_tests {
    ($backend:ident, $factory:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            store_conformance_tests!(@tests $factory;
                unknown_document_loads_none,
                commit_then_load_preserves_order,
                commit_queues_exactly_one_outbox_entry,
                committing_the_same_chunk_twice_is_idempotent,
                acked_entries_disappear_and_acking_twice_is_harmless,
                outbox_is_oldest_first_across_documents_and_limited,
                empty_chunks_are_refused_and_change_nothing,
                apply_remote_appends_in_order_and_skips_known_chunks,
                apply_remote_does_not_touch_the_outbox,
                cursor_never_moves_backwards,
                reset_cursor_starts_the_document_over,
                out_of_range_numbers_are_refused,
                compact_replaces_snapshot_and_keeps_later_rows,
                log_end_is_what_load_reports,
                stale_compaction_is_ignored,
                compaction_past_the_log_end_is_refused,
                snapshot_for_a_new_document,
                documents_lists_every_known_document,
                blob_index_state_machine,
                pending_blobs_must_stay_cached,
                unknown_blobs_are_not_found,
                eviction_candidates_are_least_recently_used_first,
                cached_bytes_counts_cached_blobs_only,
                meta_round_trip,
                meta_swaps_only_what_it_expects,
                concurrent_commits_are_all_kept,
                view_rows_follow_commits_and_remote_applies,
                a_write_without_rows_invalidates_the_view,
                writes_in_step_say_where_the_log_ends,
                a_writer_overtaken_gets_behind_and_its_rows_are_ignored,
                an_invalid_view_ignores_rows_until_replaced,
                stale_view_rebuilds_are_refused,
                compaction_keeps_a_valid_view_valid,
                drop_view_forgets_the_cache,
                oversized_view_rows_are_refused_and_change_nothing,
                writes_that_change_no_rows_keep_the_view_valid,
                writes_that_append_nothing_leave_the_view_alone,
                view_caches_are_per_document,
                the_account_is_one_row,
                memberships_follow_the_relay,
                forgotten_families_are_gone,
                personal_docs_are_remembered,
                snapshot_covers_are_per_document,
                notifications_are_kept_once_newest_first_and_trimmed,
                notifications_are_read_and_dismissed,
                oversized_notifications_are_refused,
            );
        }
    };
    (@tests $factory:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() -> $crate::store::conformance::TestResult {
                let fixture: $crate::store::conformance::Fixture = ($factory)();
                $crate::store::conformance::$test(&fixture.store)
            }
        )*
    };
}

store_conformance_tests!(memory, || Fixture::new(MemoryStore::new(), None));
store_conformance_tests!(sqlite_in_memory, || {
    Fixture::new(SqliteStore::open_in_memory().expect("open in memory"), None)
});
store_conformance_tests!(sqlite_file, || {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("store.db")).expect("open file");
    Fixture::new(store, Some(dir))
});

fn doc(n: u8) -> DocId {
    DocId([n; 16])
}

fn blob(n: u8, state: BlobState, cached: bool, last_used_ms: i64) -> BlobRecord {
    BlobRecord {
        hash: BlobHash::of(&[n]),
        size: 1000 * u64::from(n),
        mime: "image/jpeg".into(),
        state,
        cached,
        last_used_ms,
        owner: match n % 3 {
            0 => None,
            1 => Some(BlobOwner::Me),
            _ => Some(BlobOwner::Family(FamilyId([n; 16]))),
        },
        // Every other blob is sealed, so the key's round trip is checked with the rest.
        key: n
            .is_multiple_of(2)
            .then(|| crate::seal::BlobKey::from_slice(&[n; 32]).expect("32 bytes")),
    }
}

fn loaded(store: &Arc<dyn LocalStore>, d: DocId) -> Result<StoredDoc, Box<dyn Error>> {
    store
        .load(d)?
        .ok_or_else(|| format!("{d:?} not found").into())
}

fn chunk_ids(chunks: &[Vec<u8>]) -> Vec<ChunkId> {
    chunks.iter().map(|c| ChunkId::of(c)).collect()
}

pub(crate) fn unknown_document_loads_none(store: &Arc<dyn LocalStore>) -> TestResult {
    assert_eq!(store.load(doc(1))?, None);
    assert_eq!(store.cursor(doc(1))?, 0);
    assert!(store.documents()?.is_empty());
    assert_eq!(store.pending_count()?, 0);
    assert!(store.outbox(10)?.is_empty());
    // A call that carries nothing does not make the document known.
    assert_eq!(store.apply_remote(doc(1), &[], None)?, 0);
    assert_eq!(store.load(doc(1))?, None);
    Ok(())
}

pub(crate) fn commit_then_load_preserves_order(store: &Arc<dyn LocalStore>) -> TestResult {
    let chunks: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i, 7, i]).collect();
    for c in &chunks {
        store.commit_local(doc(1), c)?;
    }
    let stored = loaded(store, doc(1))?;
    assert_eq!(stored.snapshot, None);
    assert_eq!(stored.changes, chunks);
    assert_eq!(stored.cursor, 0);
    assert!(stored.log_end > LogPos::START);
    // Another document's log is separate.
    store.commit_local(doc(2), b"other")?;
    assert_eq!(loaded(store, doc(1))?.changes, chunks);
    assert_eq!(loaded(store, doc(2))?.changes, vec![b"other".to_vec()]);
    Ok(())
}

pub(crate) fn commit_queues_exactly_one_outbox_entry(store: &Arc<dyn LocalStore>) -> TestResult {
    let entry = store.commit_local(doc(1), b"change one")?;
    assert_eq!(entry.doc, doc(1));
    assert_eq!(entry.chunk, ChunkId::of(b"change one"));
    assert_eq!(entry.bytes, b"change one");
    assert!(entry.created_at_ms > 0);
    assert_eq!(store.pending_count()?, 1);
    assert_eq!(store.outbox(10)?, vec![entry.clone()]);

    let second = store.commit_local(doc(1), b"change two")?;
    assert!(second.id > entry.id, "outbox ids increase");
    assert_eq!(store.pending_count()?, 2);
    assert_eq!(store.outbox(10)?, vec![entry, second]);
    Ok(())
}

pub(crate) fn committing_the_same_chunk_twice_is_idempotent(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    let first = store.commit_local(doc(1), b"same")?;
    let again = store.commit_local(doc(1), b"same")?;
    assert_eq!(again, first);
    assert_eq!(store.pending_count()?, 1);
    assert_eq!(loaded(store, doc(1))?.changes, vec![b"same".to_vec()]);
    // The same bytes in another document are another edit.
    store.commit_local(doc(2), b"same")?;
    assert_eq!(store.pending_count()?, 2);
    Ok(())
}

pub(crate) fn acked_entries_disappear_and_acking_twice_is_harmless(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    let a = store.commit_local(doc(1), b"a")?;
    let b = store.commit_local(doc(1), b"b")?;
    let c = store.commit_local(doc(2), b"c")?;

    assert!(store.outbox_acked(a.id)?);
    assert!(!store.outbox_acked(a.id)?, "second ack is a no-op");
    assert_eq!(store.outbox(10)?, vec![b.clone(), c.clone()]);
    assert_eq!(store.pending_count()?, 2);

    assert!(store.outbox_acked_chunk(doc(2), c.chunk)?);
    assert!(!store.outbox_acked_chunk(doc(2), c.chunk)?);
    assert!(
        !store.outbox_acked_chunk(doc(1), c.chunk)?,
        "wrong document"
    );
    assert!(!store.outbox_acked(u64::MAX)?, "unknown id");
    assert_eq!(store.outbox(10)?, vec![b]);
    assert_eq!(store.pending_count()?, 1);

    // Acknowledging never touches the change log.
    assert_eq!(loaded(store, doc(1))?.changes.len(), 2);
    // A new entry never reuses an acknowledged id.
    let d = store.commit_local(doc(1), b"d")?;
    assert!(d.id > c.id);
    Ok(())
}

pub(crate) fn outbox_is_oldest_first_across_documents_and_limited(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    let mut entries = Vec::new();
    for i in 0..10u8 {
        entries.push(store.commit_local(doc(i % 3), &[i, 1])?);
    }
    assert_eq!(store.outbox(usize::MAX)?, entries);
    assert_eq!(store.outbox(4)?, entries[..4]);
    assert!(store.outbox(0)?.is_empty());
    // Paging: after an id, whatever was removed before it.
    assert_eq!(store.outbox_after(Some(entries[3].id), 3)?, entries[4..7]);
    assert_eq!(store.outbox_after(None, 2)?, entries[..2]);
    assert!(store.outbox_after(Some(entries[9].id), 10)?.is_empty());
    assert!(store.outbox_after(Some(u64::MAX), 10)?.is_empty());
    store.outbox_acked(entries[5].id)?;
    assert_eq!(
        store.outbox_after(Some(entries[4].id), 2)?,
        [entries[6].clone(), entries[7].clone()]
    );
    Ok(())
}

pub(crate) fn empty_chunks_are_refused_and_change_nothing(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    assert!(matches!(
        store.commit_local(doc(1), b""),
        Err(StoreError::Empty(_))
    ));
    assert_eq!(store.load(doc(1))?, None);
    assert_eq!(store.pending_count()?, 0);

    // One empty chunk among good ones: nothing of the call is kept, cursor included.
    let good: &[u8] = b"good";
    assert!(matches!(
        store.apply_remote(doc(1), &[good, b""], Some(5)),
        Err(StoreError::Empty(_))
    ));
    assert_eq!(store.load(doc(1))?, None);

    store.commit_local(doc(1), b"kept")?;
    let before = loaded(store, doc(1))?;
    assert!(store.apply_remote(doc(1), &[good, b""], Some(5)).is_err());
    assert!(store.commit_local(doc(1), b"").is_err());
    assert_eq!(loaded(store, doc(1))?, before);
    assert_eq!(store.pending_count()?, 1);
    Ok(())
}

pub(crate) fn apply_remote_appends_in_order_and_skips_known_chunks(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    store.commit_local(doc(1), b"local")?;
    let r1: &[u8] = b"remote 1";
    let r2: &[u8] = b"remote 2";
    assert_eq!(store.apply_remote(doc(1), &[r1, r2], Some(2))?, 2);
    // Redelivery (our own chunk echoed back, a chunk seen before, a repeat within the
    // call) appends only what is new.
    let r3: &[u8] = b"remote 3";
    assert_eq!(
        store.apply_remote(doc(1), &[b"local", r2, r3, r3], Some(4))?,
        1
    );
    let stored = loaded(store, doc(1))?;
    assert_eq!(
        chunk_ids(&stored.changes),
        chunk_ids(&[b"local".to_vec(), r1.to_vec(), r2.to_vec(), r3.to_vec()])
    );
    assert_eq!(stored.cursor, 4);
    Ok(())
}

pub(crate) fn apply_remote_does_not_touch_the_outbox(store: &Arc<dyn LocalStore>) -> TestResult {
    let mine = store.commit_local(doc(1), b"mine")?;
    store.apply_remote(doc(1), &[b"theirs", b"mine"], Some(9))?;
    assert_eq!(store.outbox(10)?, vec![mine]);
    Ok(())
}

pub(crate) fn cursor_never_moves_backwards(store: &Arc<dyn LocalStore>) -> TestResult {
    store.apply_remote(doc(1), &[], Some(10))?;
    assert_eq!(store.cursor(doc(1))?, 10);
    assert_eq!(
        store.documents()?,
        vec![doc(1)],
        "a cursor makes a doc known"
    );
    store.apply_remote(doc(1), &[b"late"], Some(3))?;
    assert_eq!(store.cursor(doc(1))?, 10, "older cursor ignored");
    assert_eq!(loaded(store, doc(1))?.changes, vec![b"late".to_vec()]);
    store.apply_remote(doc(1), &[b"more"], None)?;
    assert_eq!(store.cursor(doc(1))?, 10);
    store.apply_remote(doc(1), &[], Some(11))?;
    assert_eq!(store.cursor(doc(1))?, 11);
    assert_eq!(store.cursor(doc(2))?, 0, "cursors are per document");
    Ok(())
}

pub(crate) fn reset_cursor_starts_the_document_over(store: &Arc<dyn LocalStore>) -> TestResult {
    store.apply_remote(doc(1), &[b"kept"], Some(1 << 62))?;
    store.set_snapshot_covers(doc(1), 1 << 61)?;
    store.apply_remote(doc(2), &[], Some(5))?;
    store.reset_cursor(doc(1))?;
    assert_eq!(store.cursor(doc(1))?, 0);
    assert_eq!(store.snapshot_covers(doc(1))?, 0);
    assert_eq!(
        loaded(store, doc(1))?.changes,
        vec![b"kept".to_vec()],
        "the document stays"
    );
    assert_eq!(store.cursor(doc(2))?, 5, "other documents keep theirs");
    store.apply_remote(doc(1), &[], Some(3))?;
    assert_eq!(
        store.cursor(doc(1))?,
        3,
        "and it moves forward again from 0"
    );
    store.reset_cursor(doc(9))?;
    assert_eq!(
        store.cursor(doc(9))?,
        0,
        "an unknown document stays unknown"
    );
    assert!(!store.documents()?.contains(&doc(9)));
    Ok(())
}

pub(crate) fn out_of_range_numbers_are_refused(store: &Arc<dyn LocalStore>) -> TestResult {
    assert!(matches!(
        store.apply_remote(doc(1), &[b"x"], Some(u64::MAX)),
        Err(StoreError::OutOfRange { .. })
    ));
    assert_eq!(store.load(doc(1))?, None);
    let mut big = blob(1, BlobState::Uploaded, true, 0);
    big.size = u64::MAX;
    assert!(matches!(
        store.put_blob(&big),
        Err(StoreError::OutOfRange { .. })
    ));
    assert_eq!(store.blob(big.hash)?, None);
    Ok(())
}

pub(crate) fn log_end_is_what_load_reports(store: &Arc<dyn LocalStore>) -> TestResult {
    let agrees = |d: DocId| -> Result<Option<LogPos>, Box<dyn Error>> {
        let end = store.log_end(d)?;
        assert_eq!(end, store.load(d)?.map(|s| s.log_end), "{d}");
        Ok(end)
    };
    assert_eq!(agrees(doc(1))?, None, "unknown document");
    store.commit_local(doc(1), b"a")?;
    let first = agrees(doc(1))?.ok_or("known")?;
    store.commit_local(doc(2), b"other")?;
    assert_eq!(agrees(doc(1))?, Some(first), "another document's write");
    store.apply_remote(doc(1), &[b"b"], Some(1))?;
    let second = agrees(doc(1))?.ok_or("known")?;
    assert!(second > first);
    store.apply_remote(doc(1), &[b"b"], Some(2))?;
    assert_eq!(agrees(doc(1))?, Some(second), "nothing appended");
    assert!(store.compact(doc(1), b"snapshot", second)?);
    assert_eq!(agrees(doc(1))?, Some(second), "compaction keeps the end");
    assert!(store.compact(doc(3), b"fetched", LogPos::START)?);
    agrees(doc(3))?;
    store.apply_remote(doc(4), &[], Some(1))?;
    agrees(doc(4))?;
    Ok(())
}

pub(crate) fn compact_replaces_snapshot_and_keeps_later_rows(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    store.commit_local(doc(1), b"a")?;
    store.apply_remote(doc(1), &[b"b"], Some(1))?;
    let seen = loaded(store, doc(1))?;
    // Written after the load the snapshot is built from: must survive compaction.
    store.commit_local(doc(1), b"c")?;
    store.apply_remote(doc(1), &[b"d"], Some(2))?;
    assert_eq!(
        store.tail_len(doc(1))?,
        4,
        "every row is tail before a snapshot"
    );
    assert_eq!(store.tail_len(doc(9))?, 0, "an unknown document has none");

    assert!(store.compact(doc(1), b"snapshot 1", seen.log_end)?);
    assert_eq!(store.tail_len(doc(1))?, 2, "the rows after the snapshot");
    let after = loaded(store, doc(1))?;
    assert_eq!(after.snapshot.as_deref(), Some(&b"snapshot 1"[..]));
    assert_eq!(after.changes, vec![b"c".to_vec(), b"d".to_vec()]);
    assert_eq!(after.cursor, 2);
    assert_eq!(after.log_end, loaded(store, doc(1))?.log_end);
    assert_eq!(store.pending_count()?, 2, "outbox keeps its own bytes");
    assert_eq!(store.outbox(10)?[0].bytes, b"a");

    // Compacting everything leaves an empty log whose end stays put.
    assert!(store.compact(doc(1), b"snapshot 2", after.log_end)?);
    let all = loaded(store, doc(1))?;
    assert_eq!(all.snapshot.as_deref(), Some(&b"snapshot 2"[..]));
    assert!(all.changes.is_empty());
    assert_eq!(store.tail_len(doc(1))?, 0);
    assert_eq!(all.log_end, after.log_end);
    // New rows come after it.
    store.commit_local(doc(1), b"e")?;
    assert_eq!(store.tail_len(doc(1))?, 1);
    let next = loaded(store, doc(1))?;
    assert_eq!(next.changes, vec![b"e".to_vec()]);
    assert!(next.log_end > all.log_end);
    Ok(())
}

pub(crate) fn stale_compaction_is_ignored(store: &Arc<dyn LocalStore>) -> TestResult {
    store.commit_local(doc(1), b"a")?;
    let old = loaded(store, doc(1))?.log_end;
    store.commit_local(doc(1), b"b")?;
    let new = loaded(store, doc(1))?.log_end;
    assert!(store.compact(doc(1), b"newer", new)?);
    assert!(!store.compact(doc(1), b"older", old)?);
    assert_eq!(
        loaded(store, doc(1))?.snapshot.as_deref(),
        Some(&b"newer"[..])
    );
    // The same position again is fine (a re-save of the same state).
    assert!(store.compact(doc(1), b"newer again", new)?);
    Ok(())
}

pub(crate) fn compaction_past_the_log_end_is_refused(store: &Arc<dyn LocalStore>) -> TestResult {
    store.commit_local(doc(1), b"a")?;
    let end = loaded(store, doc(1))?.log_end;
    // A position from another document's later row is past this log's end.
    store.commit_local(doc(2), b"b")?;
    let foreign = loaded(store, doc(2))?.log_end;
    assert!(matches!(
        store.compact(doc(1), b"snap", foreign),
        Err(StoreError::PastLogEnd { .. })
    ));
    assert!(matches!(
        store.compact(doc(3), b"snap", end),
        Err(StoreError::PastLogEnd { .. })
    ));
    assert!(matches!(
        store.compact(doc(1), b"", end),
        Err(StoreError::Empty(_))
    ));
    let stored = loaded(store, doc(1))?;
    assert_eq!(stored.snapshot, None);
    assert_eq!(stored.changes, vec![b"a".to_vec()]);
    assert_eq!(store.load(doc(3))?, None);
    Ok(())
}

pub(crate) fn snapshot_for_a_new_document(store: &Arc<dyn LocalStore>) -> TestResult {
    assert!(store.compact(doc(1), b"from the relay", LogPos::START)?);
    let stored = loaded(store, doc(1))?;
    assert_eq!(stored.snapshot.as_deref(), Some(&b"from the relay"[..]));
    assert!(stored.changes.is_empty());
    assert_eq!(stored.log_end, LogPos::START);
    store.apply_remote(doc(1), &[b"tail"], Some(8))?;
    assert_eq!(loaded(store, doc(1))?.changes, vec![b"tail".to_vec()]);
    Ok(())
}

pub(crate) fn documents_lists_every_known_document(store: &Arc<dyn LocalStore>) -> TestResult {
    store.commit_local(doc(5), b"a")?;
    store.apply_remote(doc(2), &[b"b"], None)?;
    store.compact(doc(9), b"snap", LogPos::START)?;
    store.apply_remote(doc(7), &[], Some(1))?;
    store.commit_local(doc(5), b"again")?;
    assert_eq!(store.documents()?, vec![doc(2), doc(5), doc(7), doc(9)]);
    Ok(())
}

pub(crate) fn blob_index_state_machine(store: &Arc<dyn LocalStore>) -> TestResult {
    // A photo taken on this device waits for upload.
    let photo = blob(1, BlobState::PendingUpload, true, 100);
    let voice = blob(2, BlobState::PendingUpload, true, 50);
    store.put_blob(&photo)?;
    store.put_blob(&voice)?;
    assert_eq!(store.blob(photo.hash)?, Some(photo.clone()));
    assert_eq!(store.pending_uploads()?, vec![photo.clone(), voice.clone()]);

    // Replacing a record keeps its place in the queue.
    let mut renamed = photo.clone();
    renamed.mime = "image/heic".into();
    store.put_blob(&renamed)?;
    assert_eq!(store.pending_uploads()?, vec![renamed, voice.clone()]);

    // Uploaded: leaves the queue, stays cached.
    store.set_blob_state(photo.hash, BlobState::Uploaded)?;
    let uploaded = store.blob(photo.hash)?.ok_or("photo")?;
    assert_eq!(uploaded.state, BlobState::Uploaded);
    assert!(uploaded.cached);
    assert_eq!(store.pending_uploads()?, vec![voice]);

    // Evicted from the cache, then fetched again.
    store.set_cached(photo.hash, false)?;
    assert!(!store.blob(photo.hash)?.ok_or("photo")?.cached);
    store.set_cached(photo.hash, true)?;

    // Known from another device's document, not downloaded yet.
    let remote = blob(3, BlobState::RemoteOnly, false, 0);
    store.put_blob(&remote)?;
    assert_eq!(store.blob(remote.hash)?, Some(remote.clone()));
    store.set_cached(remote.hash, true)?;
    store.touch_blob(remote.hash, 777)?;
    let fetched = store.blob(remote.hash)?.ok_or("remote")?;
    assert!(fetched.cached);
    assert_eq!(fetched.last_used_ms, 777);
    assert_eq!(fetched.state, BlobState::RemoteOnly);
    assert_eq!(store.pending_uploads()?.len(), 1);
    Ok(())
}

pub(crate) fn pending_blobs_must_stay_cached(store: &Arc<dyn LocalStore>) -> TestResult {
    let pending = blob(1, BlobState::PendingUpload, true, 0);
    store.put_blob(&pending)?;
    assert!(matches!(
        store.set_cached(pending.hash, false),
        Err(StoreError::PendingNotCached(_))
    ));
    let uncached = blob(2, BlobState::PendingUpload, false, 0);
    assert!(matches!(
        store.put_blob(&uncached),
        Err(StoreError::PendingNotCached(_))
    ));
    assert_eq!(store.blob(uncached.hash)?, None);
    let remote = blob(3, BlobState::RemoteOnly, false, 0);
    store.put_blob(&remote)?;
    assert!(matches!(
        store.set_blob_state(remote.hash, BlobState::PendingUpload),
        Err(StoreError::PendingNotCached(_))
    ));
    assert_eq!(store.blob(pending.hash)?, Some(pending));
    assert_eq!(store.blob(remote.hash)?, Some(remote));
    Ok(())
}

pub(crate) fn unknown_blobs_are_not_found(store: &Arc<dyn LocalStore>) -> TestResult {
    let hash = BlobHash::of(b"nobody");
    assert_eq!(store.blob(hash)?, None);
    assert!(matches!(
        store.set_blob_state(hash, BlobState::Uploaded),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.set_cached(hash, true),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.touch_blob(hash, 1),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.blob(hash)?, None);
    Ok(())
}

pub(crate) fn eviction_candidates_are_least_recently_used_first(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    let old = blob(1, BlobState::Uploaded, true, 10);
    let newer = blob(2, BlobState::RemoteOnly, true, 20);
    let newest = blob(3, BlobState::Uploaded, true, 30);
    let pending = blob(4, BlobState::PendingUpload, true, 1);
    let not_cached = blob(5, BlobState::RemoteOnly, false, 2);
    for b in [&newest, &pending, &old, &not_cached, &newer] {
        store.put_blob(b)?;
    }
    let hashes = |v: Vec<BlobRecord>| v.into_iter().map(|b| b.hash).collect::<Vec<_>>();
    assert_eq!(
        hashes(store.eviction_candidates(10)?),
        vec![old.hash, newer.hash, newest.hash]
    );
    assert_eq!(hashes(store.eviction_candidates(1)?), vec![old.hash]);

    // Using a blob moves it to the back.
    store.touch_blob(old.hash, 40)?;
    assert_eq!(
        hashes(store.eviction_candidates(10)?),
        vec![newer.hash, newest.hash, old.hash]
    );
    // Evicting one removes it from the candidates.
    store.set_cached(newer.hash, false)?;
    assert_eq!(
        hashes(store.eviction_candidates(10)?),
        vec![newest.hash, old.hash]
    );
    // Ties are broken by hash, the same way in every backend.
    store.touch_blob(newest.hash, 40)?;
    let mut tied = vec![newest.hash, old.hash];
    tied.sort();
    assert_eq!(hashes(store.eviction_candidates(10)?), tied);
    Ok(())
}

pub(crate) fn cached_bytes_counts_cached_blobs_only(store: &Arc<dyn LocalStore>) -> TestResult {
    assert_eq!(store.cached_bytes()?, 0);
    store.put_blob(&blob(1, BlobState::Uploaded, true, 0))?;
    store.put_blob(&blob(2, BlobState::PendingUpload, true, 0))?;
    store.put_blob(&blob(3, BlobState::RemoteOnly, false, 0))?;
    assert_eq!(store.cached_bytes()?, 1000 + 2000);
    store.set_cached(BlobHash::of(&[3]), true)?;
    assert_eq!(store.cached_bytes()?, 6000);
    store.set_cached(BlobHash::of(&[1]), false)?;
    assert_eq!(store.cached_bytes()?, 5000);
    Ok(())
}

pub(crate) fn meta_round_trip(store: &Arc<dyn LocalStore>) -> TestResult {
    assert_eq!(store.get_meta("device")?, None);
    store.set_meta("device", b"laptop")?;
    store.set_meta("account", &[0, 1, 2, 255])?;
    assert_eq!(store.get_meta("device")?.as_deref(), Some(&b"laptop"[..]));
    store.set_meta("device", b"phone")?;
    assert_eq!(store.get_meta("device")?.as_deref(), Some(&b"phone"[..]));
    store.set_meta("empty", b"")?;
    assert_eq!(store.get_meta("empty")?, Some(Vec::new()));
    store.delete_meta("device")?;
    store.delete_meta("device")?;
    assert_eq!(store.get_meta("device")?, None);
    assert_eq!(
        store.get_meta("account")?.as_deref(),
        Some(&[0, 1, 2, 255][..])
    );
    Ok(())
}

/// `set_meta_if` writes all its values when the guard holds what was expected
/// (absent included), and nothing when it does not.
pub(crate) fn meta_swaps_only_what_it_expects(store: &Arc<dyn LocalStore>) -> TestResult {
    assert!(store.set_meta_if("gen", None, &[("keys", b"one"), ("gen", b"1")])?);
    assert!(
        !store.set_meta_if("gen", None, &[("keys", b"two"), ("gen", b"2")])?,
        "the guard is there now"
    );
    assert!(
        !store.set_meta_if("gen", Some(b"0"), &[("keys", b"two"), ("gen", b"2")])?,
        "another value"
    );
    assert_eq!(store.get_meta("keys")?.as_deref(), Some(&b"one"[..]));
    assert_eq!(store.get_meta("gen")?.as_deref(), Some(&b"1"[..]));
    assert!(store.set_meta_if("gen", Some(b"1"), &[("keys", b"two"), ("gen", b"2")])?);
    assert_eq!(store.get_meta("keys")?.as_deref(), Some(&b"two"[..]));
    assert_eq!(store.get_meta("gen")?.as_deref(), Some(&b"2"[..]));
    store.delete_meta("gen")?;
    assert!(
        store.set_meta_if("gen", None, &[("gen", b"3")])?,
        "absent again"
    );
    Ok(())
}

pub(crate) fn concurrent_commits_are_all_kept(store: &Arc<dyn LocalStore>) -> TestResult {
    const THREADS: u8 = 4;
    const EDITS: u8 = 25;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(store);
            thread::spawn(move || -> Result<(), StoreError> {
                for i in 0..EDITS {
                    store.commit_local(doc(t % 2), &[t, i])?;
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().map_err(|_| "committer panicked")??;
    }
    assert_eq!(
        store.pending_count()?,
        u64::from(THREADS) * u64::from(EDITS)
    );
    let outbox = store.outbox(usize::MAX)?;
    assert!(outbox.windows(2).all(|w| w[0].id < w[1].id));
    let distinct: HashSet<_> = outbox.iter().map(|e| e.chunk).collect();
    assert_eq!(distinct.len(), outbox.len());
    // Each thread's edits are in its document's log in the order it made them.
    for t in 0..THREADS {
        let changes = loaded(store, doc(t % 2))?.changes;
        let mine: Vec<_> = changes.iter().filter(|c| c[0] == t).collect();
        let expected: Vec<Vec<u8>> = (0..EDITS).map(|i| vec![t, i]).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
    Ok(())
}

/// A row that sets `key` to `bytes`.
fn put(key: &str, bytes: &[u8]) -> ViewRow {
    ViewRow {
        key: key.into(),
        bytes: Some(bytes.to_vec()),
    }
}

/// A row that deletes `key`.
fn del(key: &str) -> ViewRow {
    ViewRow {
        key: key.into(),
        bytes: None,
    }
}

/// Rows as [`CachedView::rows`] holds them.
fn rows(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(key, bytes)| ((*key).to_owned(), bytes.to_vec()))
        .collect()
}

/// Makes `d` known with one change and gives it a valid cache holding `initial`.
fn with_valid_view(
    store: &Arc<dyn LocalStore>,
    d: DocId,
    initial: &[(&str, &[u8])],
) -> Result<CachedView, Box<dyn Error>> {
    store.commit_local(d, b"base")?;
    let end = loaded(store, d)?.log_end;
    assert!(store.replace_view(d, 3, end, &rows(initial))?);
    Ok(store.load_view(d)?.ok_or("view valid after replace_view")?)
}

pub(crate) fn view_rows_follow_commits_and_remote_applies(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    assert_eq!(store.load_view(doc(1))?, None, "unknown document");
    let view = with_valid_view(store, doc(1), &[("photos/b", b"b0"), ("members/a", b"a0")])?;
    assert_eq!(view.version, 3);
    assert_eq!(view.through, loaded(store, doc(1))?.log_end);
    assert_eq!(
        view.rows,
        rows(&[("members/a", b"a0"), ("photos/b", b"b0")]),
        "sorted by key"
    );

    store.commit_local_with_view(
        doc(1),
        b"edit 1",
        Some(&[put("photos/c", b"c1"), put("members/a", b"a1")]),
    )?;
    let view = store
        .load_view(doc(1))?
        .ok_or("valid after a commit with rows")?;
    assert_eq!(view.through, loaded(store, doc(1))?.log_end);
    assert_eq!(
        view.rows,
        rows(&[
            ("members/a", b"a1"),
            ("photos/b", b"b0"),
            ("photos/c", b"c1")
        ])
    );

    let r1: &[u8] = b"remote 1";
    let r2: &[u8] = b"remote 2";
    assert_eq!(
        store.apply_remote_with_view(
            doc(1),
            &[r1, r2],
            Some(5),
            // Applied in order: the later row for a key wins.
            Some(&[
                del("photos/b"),
                put("albums/x", b"x"),
                put("albums/x", b"x2")
            ]),
        )?,
        2
    );
    let view = store
        .load_view(doc(1))?
        .ok_or("valid after a remote apply with rows")?;
    let stored = loaded(store, doc(1))?;
    assert_eq!(view.through, stored.log_end);
    assert_eq!(stored.cursor, 5);
    assert_eq!(
        view.rows,
        rows(&[
            ("albums/x", b"x2"),
            ("members/a", b"a1"),
            ("photos/c", b"c1")
        ])
    );
    // Deleting an absent key and writing empty bytes are fine.
    store.commit_local_with_view(doc(1), b"edit 2", Some(&[del("nobody"), put("empty", b"")]))?;
    let view = store.load_view(doc(1))?.ok_or("valid")?;
    assert_eq!(view.version, 3, "the version is kept");
    assert_eq!(
        view.rows,
        rows(&[
            ("albums/x", b"x2"),
            ("empty", b""),
            ("members/a", b"a1"),
            ("photos/c", b"c1"),
        ])
    );
    Ok(())
}

pub(crate) fn a_write_without_rows_invalidates_the_view(store: &Arc<dyn LocalStore>) -> TestResult {
    with_valid_view(store, doc(1), &[("k", b"v")])?;
    store.commit_local(doc(1), b"edit")?;
    assert_eq!(store.load_view(doc(1))?, None, "commit without rows");

    with_valid_view(store, doc(2), &[("k", b"v")])?;
    store.commit_local_with_view(doc(2), b"edit", None)?;
    assert_eq!(store.load_view(doc(2))?, None, "commit with None");

    with_valid_view(store, doc(3), &[("k", b"v")])?;
    store.apply_remote(doc(3), &[b"remote"], Some(1))?;
    assert_eq!(store.load_view(doc(3))?, None, "remote apply without rows");

    with_valid_view(store, doc(4), &[("k", b"v")])?;
    store.apply_remote_with_view(doc(4), &[b"remote"], None, None)?;
    assert_eq!(store.load_view(doc(4))?, None, "remote apply with None");
    Ok(())
}

/// The log end a guarded commit reports, failing the test if it was refused.
fn committed_end(c: Committed) -> Result<LogPos, Box<dyn Error>> {
    match c {
        Committed::InStep { end, .. } => Ok(end),
        Committed::Behind => Err("a writer in step was refused".into()),
    }
}

pub(crate) fn writes_in_step_say_where_the_log_ends(store: &Arc<dyn LocalStore>) -> TestResult {
    // A document unknown to the store is in step with a writer that holds none.
    let end = committed_end(store.commit_local_in_step(doc(1), b"first", None, None)?)?;
    assert_eq!(Some(end), store.log_end(doc(1))?);

    // The answer is the log end after the write, which the next write starts from.
    let end2 = committed_end(store.commit_local_in_step(doc(1), b"second", None, Some(end))?)?;
    assert!(end2 > end);
    assert_eq!(Some(end2), store.log_end(doc(1))?);
    let (n, step) = store.apply_remote_in_step(
        doc(1),
        &[b"remote 1", b"remote 2"],
        Some(3),
        None,
        Some(end2),
    )?;
    assert_eq!(n, 2);
    let end3 = store.log_end(doc(1))?.ok_or("known")?;
    assert_eq!(step, Step::InStep(end3));
    assert_eq!(loaded(store, doc(1))?.log_end, end3);
    assert_eq!(store.outbox(10)?.len(), 2);

    // A write that appends nothing reports the log end it found.
    let again = store.commit_local_in_step(doc(1), b"second", None, Some(end3))?;
    assert_eq!(committed_end(again)?, end3, "already in the outbox");
    assert_eq!(store.outbox(10)?.len(), 2);
    let (n, step) = store.apply_remote_in_step(doc(1), &[b"remote 1"], None, None, Some(end3))?;
    assert_eq!((n, step), (0, Step::InStep(end3)), "already in the log");
    let (n, step) = store.apply_remote_in_step(doc(2), &[], None, None, None)?;
    assert_eq!(
        (n, step),
        (0, Step::InStep(LogPos::START)),
        "nothing at all"
    );
    assert_eq!(store.log_end(doc(2))?, None, "and nothing was created");

    // Rows in step keep a valid cache valid.
    let view = with_valid_view(store, doc(3), &[("k", b"v")])?;
    let end = committed_end(store.commit_local_in_step(
        doc(3),
        b"edit",
        Some(&[put("k", b"w")]),
        Some(view.through),
    )?)?;
    let cached = store.load_view(doc(3))?.ok_or("still valid")?;
    assert_eq!(cached.through, end);
    assert_eq!(cached.rows, rows(&[("k", b"w")]));
    Ok(())
}

pub(crate) fn a_writer_overtaken_gets_behind_and_its_rows_are_ignored(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    let view = with_valid_view(store, doc(1), &[("k", b"v")])?;
    let writer_at = Some(view.through);
    // Another writer appends, keeping the cache valid with its own rows.
    store.commit_local_with_view(doc(1), b"other", Some(&[put("o", b"1")]))?;
    let before = loaded(store, doc(1))?;
    let cache = store.load_view(doc(1))?.ok_or("valid")?;
    let outbox = store.outbox(10)?;

    // The first writer's edit was made without the other's change: nothing is written.
    let refused =
        store.commit_local_in_step(doc(1), b"mine", Some(&[put("k", b"w")]), writer_at)?;
    assert_eq!(refused, Committed::Behind);
    assert_eq!(loaded(store, doc(1))?, before, "the log is untouched");
    assert_eq!(store.load_view(doc(1))?, Some(cache), "and so is the cache");
    assert_eq!(store.outbox(10)?, outbox, "and the outbox");
    // A writer that thinks the document unknown is behind once it is known.
    assert_eq!(
        store.commit_local_in_step(doc(1), b"late", None, None)?,
        Committed::Behind
    );

    // Chunks received by a writer that is behind are kept; its rows are not.
    let view = with_valid_view(store, doc(2), &[("k", b"v")])?;
    store.apply_remote(doc(2), &[b"other"], None)?;
    let (n, step) = store.apply_remote_in_step(
        doc(2),
        &[b"theirs"],
        Some(9),
        Some(&[put("k", b"w")]),
        Some(view.through),
    )?;
    assert_eq!((n, step), (1, Step::Behind));
    assert_eq!(store.load_view(doc(2))?, None, "the cache is left behind");
    assert_eq!(store.cursor(doc(2))?, 9, "the cursor still moves");
    Ok(())
}

pub(crate) fn an_invalid_view_ignores_rows_until_replaced(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    // A document that never had a cache does not get one from rows.
    store.commit_local_with_view(doc(2), b"edit", Some(&[put("k", b"v")]))?;
    store.apply_remote_with_view(doc(2), &[b"remote"], Some(1), Some(&[put("k", b"v")]))?;
    assert_eq!(store.load_view(doc(2))?, None);

    with_valid_view(store, doc(1), &[("a", b"0"), ("b", b"0")])?;
    store.commit_local(doc(1), b"unviewed")?;
    store.commit_local_with_view(doc(1), b"later", Some(&[put("a", b"1")]))?;
    assert_eq!(store.load_view(doc(1))?, None);
    store.apply_remote_with_view(doc(1), &[b"remote"], Some(2), Some(&[del("b")]))?;
    assert_eq!(store.load_view(doc(1))?, None);
    store.commit_local_with_view(doc(1), b"empty rows", Some(&[]))?;
    assert_eq!(store.load_view(doc(1))?, None);
    // The log still took every write.
    assert_eq!(loaded(store, doc(1))?.changes.len(), 5);

    // A rebuild from a fresh load makes it valid again, with exactly the new rows.
    let end = loaded(store, doc(1))?.log_end;
    assert!(store.replace_view(doc(1), 4, end, &rows(&[("c", b"2")]))?);
    let view = store.load_view(doc(1))?.ok_or("valid after rebuild")?;
    assert_eq!(view.version, 4);
    assert_eq!(view.through, end);
    assert_eq!(view.rows, rows(&[("c", b"2")]));
    // And rows are followed again.
    store.commit_local_with_view(doc(1), b"after", Some(&[put("a", b"3")]))?;
    assert_eq!(
        store.load_view(doc(1))?.ok_or("valid")?.rows,
        rows(&[("a", b"3"), ("c", b"2")])
    );
    Ok(())
}

pub(crate) fn stale_view_rebuilds_are_refused(store: &Arc<dyn LocalStore>) -> TestResult {
    // Unknown document: NotFound, nothing created.
    assert!(matches!(
        store.replace_view(doc(9), 1, LogPos::START, &rows(&[("k", b"v")])),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.load(doc(9))?, None);
    assert!(store.documents()?.is_empty());

    let before = with_valid_view(store, doc(1), &[("k", b"old")])?;
    let stale = loaded(store, doc(1))?.log_end;
    // Someone writes (with rows, keeping the cache valid) after the rebuild's load.
    store.commit_local_with_view(doc(1), b"newer", Some(&[put("k", b"new")]))?;
    let current = store.load_view(doc(1))?.ok_or("valid")?;
    assert_ne!(current, before);
    assert!(!store.replace_view(doc(1), 9, stale, &rows(&[("stale", b"x")]))?);
    assert_eq!(store.load_view(doc(1))?, Some(current), "nothing changed");

    // A stale rebuild of an invalid cache changes nothing either.
    store.commit_local(doc(1), b"unviewed")?;
    let end = loaded(store, doc(1))?.log_end;
    assert!(!store.replace_view(doc(1), 9, stale, &rows(&[("stale", b"x")]))?);
    assert_eq!(store.load_view(doc(1))?, None);

    // A position beyond the log end cannot come from this document's load.
    store.commit_local(doc(2), b"elsewhere")?;
    let foreign = loaded(store, doc(2))?.log_end;
    assert!(matches!(
        store.replace_view(doc(1), 9, foreign, &rows(&[("k", b"v")])),
        Err(StoreError::PastLogEnd { .. })
    ));
    assert_eq!(store.load_view(doc(1))?, None);

    // The current log end still works, replacing every row.
    assert!(store.replace_view(doc(1), 9, end, &rows(&[("fresh", b"1")]))?);
    assert_eq!(
        store.load_view(doc(1))?.ok_or("valid")?.rows,
        rows(&[("fresh", b"1")])
    );
    // A key given twice keeps its last bytes.
    assert!(store.replace_view(doc(1), 9, end, &rows(&[("k", b"1"), ("k", b"2")]))?);
    assert_eq!(
        store.load_view(doc(1))?.ok_or("valid")?.rows,
        rows(&[("k", b"2")])
    );
    // A document known only by its cursor (empty log) can have a cache too.
    store.apply_remote(doc(3), &[], Some(4))?;
    assert!(store.replace_view(doc(3), 1, LogPos::START, &[])?);
    let empty = store.load_view(doc(3))?.ok_or("valid")?;
    assert!(empty.rows.is_empty());
    assert_eq!(empty.through, LogPos::START);
    Ok(())
}

pub(crate) fn compaction_keeps_a_valid_view_valid(store: &Arc<dyn LocalStore>) -> TestResult {
    with_valid_view(store, doc(1), &[("k", b"0")])?;
    store.commit_local_with_view(doc(1), b"a", Some(&[put("k", b"1")]))?;
    let seen = loaded(store, doc(1))?;
    store.apply_remote_with_view(doc(1), &[b"b"], Some(1), Some(&[put("j", b"2")]))?;
    let expected = store.load_view(doc(1))?.ok_or("valid")?;

    // Compacting part of the log, then all of it (the log becomes empty).
    assert!(store.compact(doc(1), b"snapshot 1", seen.log_end)?);
    assert_eq!(store.load_view(doc(1))?, Some(expected.clone()));
    let all = loaded(store, doc(1))?;
    assert!(store.compact(doc(1), b"snapshot 2", all.log_end)?);
    assert!(loaded(store, doc(1))?.changes.is_empty());
    assert_eq!(store.load_view(doc(1))?, Some(expected.clone()));
    assert_eq!(expected.through, loaded(store, doc(1))?.log_end);

    // Writes after an emptying compaction keep following the rule.
    store.commit_local_with_view(doc(1), b"c", Some(&[del("k")]))?;
    let view = store
        .load_view(doc(1))?
        .ok_or("valid after compaction and a write")?;
    assert_eq!(view.rows, rows(&[("j", b"2")]));
    // A rebuild from a load taken before compaction is still current.
    let end = loaded(store, doc(1))?.log_end;
    assert!(store.compact(doc(1), b"snapshot 3", end)?);
    assert!(store.replace_view(doc(1), 5, end, &rows(&[("z", b"9")]))?);
    assert_eq!(store.load_view(doc(1))?.ok_or("valid")?.version, 5);

    // An invalid cache stays invalid through compaction.
    store.commit_local(doc(1), b"unviewed")?;
    let end = loaded(store, doc(1))?.log_end;
    assert!(store.compact(doc(1), b"snapshot 4", end)?);
    assert_eq!(store.load_view(doc(1))?, None);
    Ok(())
}

pub(crate) fn drop_view_forgets_the_cache(store: &Arc<dyn LocalStore>) -> TestResult {
    store.drop_view(doc(1))?; // unknown document: fine
    assert_eq!(store.load(doc(1))?, None, "dropping creates nothing");

    with_valid_view(store, doc(1), &[("k", b"v")])?;
    store.drop_view(doc(1))?;
    assert_eq!(store.load_view(doc(1))?, None);
    store.drop_view(doc(1))?;
    assert_eq!(store.load_view(doc(1))?, None);
    // Rows are ignored without a cache, the log is untouched.
    store.commit_local_with_view(doc(1), b"edit", Some(&[put("k", b"w")]))?;
    assert_eq!(store.load_view(doc(1))?, None);
    assert_eq!(loaded(store, doc(1))?.changes.len(), 2);
    // A rebuild starts from nothing: no old row comes back.
    let end = loaded(store, doc(1))?.log_end;
    assert!(store.replace_view(doc(1), 2, end, &rows(&[("other", b"x")]))?);
    assert_eq!(
        store.load_view(doc(1))?.ok_or("valid")?.rows,
        rows(&[("other", b"x")])
    );
    Ok(())
}

pub(crate) fn oversized_view_rows_are_refused_and_change_nothing(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    let view = with_valid_view(store, doc(1), &[("k", b"v")])?;
    let before = loaded(store, doc(1))?;
    let long_key = "k".repeat(MAX_VIEW_KEY_LEN + 1);
    let huge = vec![0u8; MAX_VIEW_ROW_LEN + 1];
    let bad_rows: Vec<Vec<ViewRow>> = vec![
        vec![put("", b"x")],
        vec![del("")],
        vec![put("fine", b"x"), put(&long_key, b"x")],
        vec![del(&long_key)],
        vec![
            put("fine", b"x"),
            ViewRow {
                key: "big".into(),
                bytes: Some(huge.clone()),
            },
        ],
    ];
    for bad in &bad_rows {
        assert!(matches!(
            store.commit_local_with_view(doc(1), b"refused", Some(bad)),
            Err(StoreError::SizeOutOfBounds { .. })
        ));
        assert!(matches!(
            store.apply_remote_with_view(doc(1), &[b"refused"], Some(7), Some(bad)),
            Err(StoreError::SizeOutOfBounds { .. })
        ));
        // Refused even where the rows would have been ignored (unknown document).
        assert!(matches!(
            store.commit_local_with_view(doc(2), b"refused", Some(bad)),
            Err(StoreError::SizeOutOfBounds { .. })
        ));
    }
    for bad in [
        rows(&[("", b"x")]),
        vec![("fine".into(), b"x".to_vec()), (long_key, b"x".to_vec())],
        vec![("big".into(), huge)],
    ] {
        assert!(matches!(
            store.replace_view(doc(1), 7, before.log_end, &bad),
            Err(StoreError::SizeOutOfBounds { .. })
        ));
    }
    assert_eq!(loaded(store, doc(1))?, before, "the log is untouched");
    assert_eq!(store.pending_count()?, 1);
    assert_eq!(store.load(doc(2))?, None);
    assert_eq!(store.load_view(doc(1))?, Some(view));

    // The bounds themselves are accepted: a key of 1 and of the longest length, and a
    // row of the largest size.
    let longest = "k".repeat(MAX_VIEW_KEY_LEN);
    let largest = vec![7u8; MAX_VIEW_ROW_LEN];
    store.commit_local_with_view(
        doc(1),
        b"bounds",
        Some(&[
            put("a", b""),
            put(&longest, b"l"),
            ViewRow {
                key: "big".into(),
                bytes: Some(largest),
            },
        ]),
    )?;
    let view = store.load_view(doc(1))?.ok_or("valid")?;
    assert_eq!(view.rows.len(), 4);
    assert_eq!(
        view.rows
            .iter()
            .find(|(k, _)| k == "big")
            .map(|(_, b)| b.len()),
        Some(MAX_VIEW_ROW_LEN)
    );
    // Multi-byte characters count in bytes: 128 two-byte characters fit, 129 do not.
    let ok_key = "é".repeat(MAX_VIEW_KEY_LEN / 2);
    let bad_key = "é".repeat(MAX_VIEW_KEY_LEN / 2 + 1);
    store.commit_local_with_view(doc(1), b"wide", Some(&[put(&ok_key, b"1")]))?;
    assert!(matches!(
        store.commit_local_with_view(doc(1), b"wider", Some(&[put(&bad_key, b"1")])),
        Err(StoreError::SizeOutOfBounds { .. })
    ));
    assert!(store.load_view(doc(1))?.is_some());
    Ok(())
}

pub(crate) fn writes_that_change_no_rows_keep_the_view_valid(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    let view = with_valid_view(store, doc(1), &[("k", b"v")])?;
    store.commit_local_with_view(doc(1), b"no rows", Some(&[]))?;
    let after = store
        .load_view(doc(1))?
        .ok_or("valid after an empty-slice commit")?;
    assert_eq!(after.rows, view.rows);
    assert!(after.through > view.through);
    assert_eq!(after.through, loaded(store, doc(1))?.log_end);

    store.apply_remote_with_view(doc(1), &[b"remote", b"other"], Some(3), Some(&[]))?;
    let after = store
        .load_view(doc(1))?
        .ok_or("valid after an empty-slice remote apply")?;
    assert_eq!(after.rows, view.rows);
    assert_eq!(after.through, loaded(store, doc(1))?.log_end);
    Ok(())
}

pub(crate) fn writes_that_append_nothing_leave_the_view_alone(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    let view = with_valid_view(store, doc(1), &[("k", b"v")])?;
    // `base` is already in the outbox: a retried commit changes nothing, its rows
    // included (they describe a change the cache already reflects).
    store.commit_local_with_view(doc(1), b"base", Some(&[put("k", b"stale")]))?;
    store.commit_local_with_view(doc(1), b"base", None)?;
    // Redelivered chunks and a cursor alone append nothing either.
    store.apply_remote_with_view(doc(1), &[b"base"], Some(3), None)?;
    store.apply_remote_with_view(doc(1), &[b"base"], None, Some(&[del("k")]))?;
    store.apply_remote(doc(1), &[], Some(4))?;
    store.apply_remote_with_view(doc(1), &[], Some(5), Some(&[put("k", b"x")]))?;
    assert_eq!(store.load_view(doc(1))?, Some(view.clone()));
    assert_eq!(store.cursor(doc(1))?, 5);

    // An acknowledged edit committed again is re-queued, but its change row is still in
    // the log: nothing is appended, the cache stays as it is, rows or not.
    let entry = store.outbox(1)?.pop().ok_or("outbox entry")?;
    assert!(store.outbox_acked(entry.id)?);
    store.commit_local_with_view(doc(1), b"base", Some(&[put("k", b"stale")]))?;
    assert_eq!(store.pending_count()?, 1);
    assert_eq!(store.load_view(doc(1))?, Some(view.clone()));
    let entry = store.outbox(1)?.pop().ok_or("outbox entry")?;
    assert!(store.outbox_acked(entry.id)?);
    store.commit_local_with_view(doc(1), b"base", None)?;
    assert_eq!(store.pending_count()?, 1);
    assert_eq!(store.load_view(doc(1))?, Some(view));
    Ok(())
}

pub(crate) fn view_caches_are_per_document(store: &Arc<dyn LocalStore>) -> TestResult {
    with_valid_view(store, doc(1), &[("k", b"one")])?;
    with_valid_view(store, doc(2), &[("k", b"two")])?;
    store.commit_local_with_view(doc(1), b"edit", Some(&[put("k", b"one'")]))?;
    store.commit_local(doc(2), b"edit")?;
    assert_eq!(
        store.load_view(doc(1))?.ok_or("doc 1 valid")?.rows,
        rows(&[("k", b"one'")])
    );
    assert_eq!(store.load_view(doc(2))?, None);
    store.drop_view(doc(1))?;
    assert_eq!(store.load_view(doc(1))?, None);
    let end = loaded(store, doc(2))?.log_end;
    assert!(store.replace_view(doc(2), 1, end, &rows(&[("k", b"two'")]))?);
    assert_eq!(
        store.load_view(doc(2))?.ok_or("doc 2 valid")?.rows,
        rows(&[("k", b"two'")])
    );
    Ok(())
}
