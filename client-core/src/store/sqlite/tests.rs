//! What only the SQLite backend has: a file that outlives the process, pragmas,
//! schema versions. The shared behaviour is in the conformance suite.

use doran_protocol::{BlobHash, ChunkId, DocId};

use super::*;
use crate::store::BlobOwner;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn reopening_a_file_store_finds_everything() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.db");
    let doc = DocId([1; 16]);
    let photo = BlobRecord {
        hash: BlobHash::of(b"photo"),
        size: 12,
        mime: "image/jpeg".into(),
        state: BlobState::PendingUpload,
        cached: true,
        last_used_ms: 5,
        owner: Some(BlobOwner::Family(doran_protocol::FamilyId([3; 16]))),
        key: crate::seal::BlobKey::from_slice(&[7; 32]),
    };
    let (entry, acked, before) = {
        let store = SqliteStore::open(&path)?;
        store.commit_local(doc, b"one")?;
        let end = store.load(doc)?.ok_or("doc")?.log_end;
        store.compact(doc, b"snapshot", end)?;
        let entry = store.commit_local(doc, b"two")?;
        let acked = store.commit_local(DocId([2; 16]), b"acked")?;
        store.outbox_acked(acked.id)?;
        store.apply_remote(doc, &[b"three"], Some(42))?;
        store.put_blob(&photo)?;
        store.set_meta("device", b"laptop")?;
        (entry, acked, store.load(doc)?)
    };

    let store = SqliteStore::open(&path)?;
    assert_eq!(store.load(doc)?, before);
    let stored = before.ok_or("doc")?;
    assert_eq!(stored.snapshot.as_deref(), Some(&b"snapshot"[..]));
    assert_eq!(stored.changes, vec![b"two".to_vec(), b"three".to_vec()]);
    assert_eq!(stored.cursor, 42);
    assert_eq!(store.documents()?, vec![doc, DocId([2; 16])]);
    let outbox = store.outbox(10)?;
    assert_eq!(outbox.len(), 2, "the entry for `one` and `two`");
    assert_eq!(outbox[1], entry);
    assert_eq!(store.pending_uploads()?, vec![photo]);
    assert_eq!(store.get_meta("device")?.as_deref(), Some(&b"laptop"[..]));
    // Ids keep growing across a reopen, even past an acknowledged (deleted) entry.
    assert!(store.commit_local(doc, b"four")?.id > acked.id);
    store.check_integrity()?;
    Ok(())
}

#[test]
fn pragmas_and_schema_version_are_set() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join("store.db"))?;
    let conn = store.lock()?;
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    assert_eq!(mode, "wal");
    let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    assert_eq!(synchronous, 2, "FULL");
    let foreign_keys: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
    assert!(foreign_keys);
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(version, SqliteStore::schema_version());
    assert_eq!(version, SCHEMA.version());
    Ok(())
}

#[test]
fn a_version_1_database_migrates_to_the_view_cache() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.db");
    let doc = DocId([3; 16]);
    {
        // A database as the first release left it: schema 1, one document.
        let conn = Connection::open(&path)?;
        conn.execute_batch(SCHEMA.migrations[0])?;
        conn.pragma_update(None, "user_version", 1)?;
        conn.execute(
            "INSERT INTO docs (doc_id, cursor) VALUES (?1, 9)",
            [doc.as_bytes().as_slice()],
        )?;
        conn.execute(
            "INSERT INTO changes (doc_id, chunk_id, bytes) VALUES (?1, ?2, x'01')",
            [
                doc.as_bytes().as_slice(),
                ChunkId::of(&[1]).as_bytes().as_slice(),
            ],
        )?;
    }
    let store = SqliteStore::open(&path)?;
    let version: i64 = store
        .lock()?
        .pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(version, SqliteStore::schema_version());
    let stored = store.load(doc)?.ok_or("doc")?;
    assert_eq!(stored.changes, vec![vec![1]]);
    assert_eq!(stored.cursor, 9);
    // No cache yet; one can be built and survives a reopen.
    assert_eq!(store.load_view(doc)?, None);
    assert!(store.replace_view(doc, 1, stored.log_end, &[("k".into(), vec![2])])?);
    drop(store);
    let store = SqliteStore::open(&path)?;
    let view = store.load_view(doc)?.ok_or("view")?;
    assert_eq!(view.rows, vec![("k".to_owned(), vec![2])]);
    store.check_integrity()?;
    Ok(())
}

#[test]
fn a_database_from_a_newer_version_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.db");
    drop(SqliteStore::open(&path)?);
    let future = SqliteStore::schema_version() + 1;
    Connection::open(&path)?.pragma_update(None, "user_version", future)?;

    match SqliteStore::open(&path) {
        Err(StoreError::NewerSchema { found, supported }) => {
            assert_eq!(found, future);
            assert_eq!(supported, SqliteStore::schema_version());
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    // Refusing did not touch the file.
    let version: i64 =
        Connection::open(&path)?.pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(version, future);
    Ok(())
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.db");
    std::fs::write(&path, vec![0x5a; 8192])?;
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Corrupt(_))
    ));
    Ok(())
}

#[test]
fn the_schema_refuses_rows_the_store_would_misread() -> TestResult {
    let store = SqliteStore::open_in_memory()?;
    let conn = store.lock()?;
    // Each statement breaks one invariant the Rust side relies on.
    for bad in [
        "INSERT INTO docs (doc_id) VALUES (x'01')",
        "INSERT INTO changes (doc_id, chunk_id, bytes) VALUES (zeroblob(16), zeroblob(32), x'00')",
        "INSERT INTO blobs VALUES (zeroblob(32), 1, 'a', 'pending_upload', 0, 0)",
        "INSERT INTO blobs VALUES (zeroblob(32), 1, 'a', 'lost', 1, 0)",
        "INSERT INTO blobs VALUES (zeroblob(32), -1, 'a', 'uploaded', 1, 0)",
        // View cache rows and state for an unknown document, and out-of-bounds values.
        "INSERT INTO view_rows VALUES (zeroblob(16), 'k', x'00')",
        "INSERT INTO view_state VALUES (zeroblob(16), 1, 0)",
    ] {
        assert!(conn.execute(bad, []).is_err(), "accepted: {bad}");
    }
    conn.execute("INSERT INTO docs (doc_id) VALUES (zeroblob(16))", [])?;
    for bad in [
        "INSERT INTO view_rows VALUES (zeroblob(16), '', x'00')",
        "INSERT INTO view_rows VALUES (zeroblob(16), printf('%.257c', 'k'), x'00')",
        // 129 two-byte characters: 258 bytes, although length() would count 129.
        "INSERT INTO view_rows VALUES \
         (zeroblob(16), replace(printf('%.129c', 'x'), 'x', 'é'), x'00')",
        "INSERT INTO view_rows VALUES (zeroblob(16), 'k', zeroblob(16777217))",
        "INSERT INTO view_rows VALUES (zeroblob(16), 'k', NULL)",
        "INSERT INTO view_state VALUES (zeroblob(16), -1, 0)",
        "INSERT INTO view_state VALUES (zeroblob(16), 4294967296, 0)",
        "INSERT INTO view_state VALUES (zeroblob(16), 1, -1)",
    ] {
        assert!(conn.execute(bad, []).is_err(), "accepted: {bad}");
    }
    Ok(())
}

#[test]
fn corrupt_rows_are_typed_errors_not_panics() -> TestResult {
    let store = SqliteStore::open_in_memory()?;
    store.put_blob(&BlobRecord {
        hash: BlobHash::of(b"x"),
        size: 1,
        mime: "a/b".into(),
        state: BlobState::Uploaded,
        cached: true,
        last_used_ms: 0,
        owner: None,
        key: None,
    })?;
    {
        let conn = store.lock()?;
        // Simulate damage the CHECKs cannot see: a row rewritten with checks off.
        conn.execute_batch(
            "PRAGMA ignore_check_constraints = ON;
             UPDATE blobs SET state = 'lost';
             PRAGMA ignore_check_constraints = OFF;",
        )?;
    }
    assert!(matches!(
        store.blob(BlobHash::of(b"x")),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.eviction_candidates(10),
        Err(StoreError::Corrupt(_))
    ));
    Ok(())
}

#[test]
fn records_an_older_build_kept_in_meta_are_imported_once() -> TestResult {
    use doran_protocol::{FamilyId, UserId};

    use crate::store::{DeviceRecords, Membership};

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.db");
    let (f1, f2) = (FamilyId([1; 16]), FamilyId([2; 16]));
    let user = UserId([5; 16]);
    let doc = DocId([6; 16]);
    let photo = BlobHash::of(b"photo");
    {
        let store = SqliteStore::open(&path)?;
        store.commit_local(doc, b"change")?;
        store.put_blob(&BlobRecord {
            hash: photo,
            size: 5,
            mime: "image/jpeg".into(),
            state: BlobState::PendingUpload,
            cached: true,
            last_used_ms: 1,
            owner: None,
            key: None,
        })?;
        // What an older build wrote.
        store.set_meta("account/families", &postcard::to_allocvec(&vec![f1, f2])?)?;
        store.set_meta(&format!("sync/snapshot/{doc}"), &40u64.to_be_bytes())?;
        store.set_meta(&format!("sync/personal-doc/{user}"), doc.as_bytes())?;
        store.set_meta(&format!("blob-family/{photo}"), f2.as_bytes())?;
        store.set_meta("engine/notifications", b"[]")?;
        store.set_meta("kept", b"other meta stays")?;
    }
    let store = SqliteStore::open(&path)?;
    let families: Vec<_> = store
        .families()?
        .iter()
        .map(|r| (r.family, r.membership))
        .collect();
    assert_eq!(
        families,
        [(f1, Membership::Member), (f2, Membership::Member)]
    );
    assert_eq!(store.snapshot_covers(doc)?, 40);
    assert_eq!(store.personal_doc(user)?, Some(doc));
    assert_eq!(
        store.blob(photo)?.and_then(|b| b.owner),
        Some(BlobOwner::Family(f2))
    );
    for key in [
        "account/families".to_owned(),
        format!("sync/snapshot/{doc}"),
        format!("sync/personal-doc/{user}"),
        format!("blob-family/{photo}"),
        "engine/notifications".to_owned(),
    ] {
        assert_eq!(store.get_meta(&key)?, None, "{key} imported and removed");
    }
    assert_eq!(store.get_meta("kept")?, Some(b"other meta stays".to_vec()));
    drop(store);
    // Opening again changes nothing.
    let store = SqliteStore::open(&path)?;
    assert_eq!(store.families()?.len(), 2);
    Ok(())
}

#[test]
fn writers_take_turns_and_a_stopped_one_is_not_waited_for_ever() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("device.sqlite");
    let first = SqliteStore::open(&path)?;
    let second = SqliteStore::open(&path)?.with_writer_wait(Duration::from_millis(200));

    // While the first store holds the lock, the second waits, up to its deadline...
    let held = first.writer_lock()?;
    let started = Instant::now();
    let unheld = second.writer_lock()?;
    assert!(started.elapsed() >= Duration::from_millis(200));
    // ...then goes on without it (and its guarded writes stay correct).
    assert!(unheld.holds_nothing());
    drop(unheld);

    // Given back, it is the second's turn at once.
    drop(held);
    let taken = second.writer_lock()?;
    assert!(!taken.holds_nothing());
    // An in-memory store has no other process to take turns with.
    assert!(
        SqliteStore::open_in_memory()?
            .writer_lock()?
            .holds_nothing()
    );
    drop(taken);
    Ok(())
}
