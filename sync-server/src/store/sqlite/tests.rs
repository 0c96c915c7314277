//! What only the SQLite backend has: a file that outlives the process, pragmas,
//! schema versions, a lock that a panic can poison. The shared behaviour is in the
//! conformance suite.

use std::sync::Arc;

use doran_protocol::{
    BlobHash, ChunkId, DeviceId, DocId, FamilyId, InviteId, LinkId, PublicKey, UserId,
};

use super::{checkpoints::Limits, *};
use crate::store::{
    AccountStore, BlobGrantee, DocOwner, LogStore, NewChunk, NewDevice, NewInvite, NewUser,
    SnapshotRef,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Writes `u` as every schema version wrote a user's row (created at 1), for files of
/// older versions made by hand.
fn insert_user(conn: &Connection, u: &NewUser) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO users (id, email, nickname, user_key, personal_doc, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 1)",
        (
            u.id.0,
            &u.email,
            &u.nickname,
            u.user_key.0,
            u.personal_doc.0,
        ),
    )
}

fn user(n: u8) -> (NewUser, NewDevice) {
    (
        NewUser {
            id: UserId([n; 16]),
            email: format!("{n}@example.com"),
            nickname: format!("nick {n}"),
            user_key: PublicKey([n; 32]),
            personal_doc: DocId([0xd0 ^ n; 16]),
            created_at: 1,
        },
        NewDevice {
            id: DeviceId([n; 16]),
            key: PublicKey([0x80 ^ n; 32]),
            client: "test".into(),
            added_at: 2,
        },
    )
}

/// Waits (up to 30 s) until `done` says so: for what another thread of the store does.
fn wait_until(
    what: &str,
    mut done: impl FnMut() -> Result<bool, Box<dyn std::error::Error>>,
) -> TestResult {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done()? {
        assert!(std::time::Instant::now() < deadline, "{what}: not in 30 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}

#[test]
fn reopening_a_file_store_finds_everything() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(SqliteStore::FILE_NAME);
    let family = FamilyId([0xfa; 16]);
    let doc = DocId::from(family);
    let (host, host_device) = user(1);
    let (guest, guest_device) = user(2);
    let invite = NewInvite {
        id: InviteId([9; 16]),
        family,
        inviter: host.id,
        invitee: guest.id,
        card: vec![0xca, 0x4d],
        created_at: 10,
        expires_at: 1_000,
    };
    let snapshot = SnapshotRef {
        covers_seq: 1,
        blob: BlobHash::of(b"snapshot"),
        len: 8,
    };
    let before = {
        let store = SqliteStore::open(&path)?;
        store.create_user(&host, &host_device)?;
        store.create_user(&guest, &guest_device)?;
        store.create_family(family, host.id, 5, usize::MAX)?;
        store.create_invite(&invite)?;
        store.grant_blob(family, BlobHash::of(b"photo"), 42, host.id)?;
        store.put_link_code([7; 32], host.id, host_device.id, 1_000)?;
        for bytes in [&b"one"[..], b"two", b"three"] {
            store.append(doc, ChunkId::of(bytes), bytes, 20)?;
        }
        store.put_snapshot(doc, &snapshot)?;
        (
            store.user(host.id)?,
            store.members(family)?,
            store.invite(invite.id, 50)?,
            store.read_since(doc, 0, 100)?,
        )
    };

    let store = SqliteStore::open(&path)?;
    assert_eq!(store.user(host.id)?, before.0);
    assert!(before.0.is_some());
    assert_eq!(store.members(family)?, before.1);
    assert_eq!(store.invite(invite.id, 50)?, before.2);
    assert!(before.2.is_some());
    assert_eq!(store.read_since(doc, 0, 100)?, before.3);
    assert_eq!(before.3.len(), 2);
    assert_eq!(store.head(doc)?, 3);
    assert_eq!(store.snapshot(doc)?, Some(snapshot));
    assert_eq!(store.doc_owner(doc)?, Some(DocOwner::Family(family)));
    assert_eq!(store.family_blob_bytes(family)?, 42);
    let newcomer = NewDevice {
        id: DeviceId([0x77; 16]),
        key: PublicKey([0x77; 32]),
        client: "new".into(),
        added_at: 100,
    };
    let claimed = store.claim_link_code([7; 32], LinkId([7; 16]), &newcomer, 100)?;
    assert_eq!(claimed.map(|l| l.user), Some(host.id));
    // Seqs continue after a reopen.
    assert_eq!(store.append(doc, ChunkId::of(b"four"), b"four", 30)?.seq, 4);
    store.check_integrity()?;
    Ok(())
}

#[test]
fn pragmas_and_schema_version_are_set() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join(SqliteStore::FILE_NAME))?;
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

/// The WAL is copied back into the database file by the checkpoint thread while the
/// writer goes on, and wraps at its limit instead of growing with every commit.
#[test]
fn the_wal_is_copied_back_beside_the_writer_and_wraps() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(SqliteStore::FILE_NAME);
    let wal = dir.path().join(format!("{}-wal", SqliteStore::FILE_NAME));
    let limits = Limits {
        wake_at: 64,
        wrap_at: 256,
    };
    const FRAME: u64 = 4096 + 24;
    let family = FamilyId([0xfa; 16]);
    let doc = DocId::from(family);
    let (host, host_device) = user(1);
    let chunk = |n: u32| -> Vec<u8> {
        let mut bytes: Vec<u8> = (0..3000u32).map(|i| (i * 31 + n * 7) as u8).collect();
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        bytes
    };
    let file_len = |p: &Path| std::fs::metadata(p).map(|m| m.len());
    {
        let store = SqliteStore::open_with(&path, limits)?;
        store.create_user(&host, &host_device)?;
        store.create_family(family, host.id, 5, usize::MAX)?;
        let append_groups = |groups: std::ops::Range<u32>| -> TestResult {
            for group in groups {
                let bytes: Vec<Vec<u8>> = (0..10).map(|i| chunk(group * 10 + i)).collect();
                let chunks: Vec<NewChunk<'_>> = bytes
                    .iter()
                    .map(|b| NewChunk {
                        doc,
                        chunk: ChunkId::of(b),
                        bytes: b,
                        author: Some(host.id),
                        at: 30,
                        max_log_bytes: u64::MAX,
                        sealing: crate::store::Sealing::Any,
                    })
                    .collect();
                for appended in store.append_batch(&chunks)? {
                    appended?;
                }
            }
            Ok(())
        };
        let grows_past = |len: u64| {
            wait_until(
                "the database file growing as the WAL is copied back",
                || Ok(file_len(&path)? >= len),
            )
        };
        let empty = file_len(&path)?;
        // Chunks of 3000 bytes in groups of 10: a dozen frames or more a commit. Eight
        // groups are past the thread's wake and short of the wrap, so only the thread
        // copies them into the database file.
        append_groups(0..8)?;
        grows_past(empty + 100_000)?;
        // Sixteen times the wrap in all, with the thread kept from copying (as when it
        // falls behind): the writer copies back at the wrap and the WAL starts over,
        // so its file keeps its largest size, a commit or so past the limit — not the
        // 4000 frames and more written.
        {
            let _thread_held = store.checkpointer.as_ref().ok_or("no thread")?.hold();
            append_groups(8..200)?;
        }
        let wal_len = file_len(&wal)?;
        assert!(
            wal_len <= 2 * 256 * FRAME,
            "the WAL grew to {wal_len} bytes"
        );
        grows_past(empty + 5_000_000)?;
        assert_eq!(store.read_since(doc, 0, 5000)?.len(), 2000);
        store.check_integrity()?;
    }
    // Closed: the last connection (the thread's) copied the WAL back and removed it,
    // so `relay.sqlite` alone holds the database after a clean stop.
    assert!(!wal.exists(), "the WAL outlived the store");
    let store = SqliteStore::open(&path)?;
    assert_eq!(store.head(doc)?, 2000);
    let all = store.read_since(doc, 0, 5000)?;
    assert_eq!(all.len(), 2000);
    assert_eq!(all[1999].bytes, chunk(1999));
    store.check_integrity()?;
    Ok(())
}

/// A WAL that has to be emptied (a wiped history) while a reader is in the way is
/// emptied by the checkpoint thread once the reader is done, not left to be written
/// over some day.
#[test]
fn a_wal_that_could_not_be_emptied_is_emptied_once_the_reader_is_done() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(SqliteStore::FILE_NAME);
    let wal = dir.path().join(format!("{}-wal", SqliteStore::FILE_NAME));
    let family = FamilyId([0xfa; 16]);
    let doc = DocId::from(family);
    let (host, host_device) = user(1);
    let store = SqliteStore::open(&path)?;
    store.create_user(&host, &host_device)?;
    store.create_family(family, host.id, 5, usize::MAX)?;
    for bytes in [&b"one"[..], b"two", b"three"] {
        store.append(doc, ChunkId::of(bytes), bytes, 20)?;
    }
    let reader = Connection::open(&path)?;
    reader.execute_batch("BEGIN")?;
    let held: i64 = reader.query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))?;
    assert_eq!(held, 3);
    let checkpointer = store.checkpointer.as_ref().ok_or("no thread")?;
    checkpointer.empty_later();
    // The thread's first try waits for the reader, and gives up.
    wait_until("a try to empty the WAL", || {
        Ok(checkpointer.empty_tries() >= 1)
    })?;
    assert!(std::fs::metadata(&wal)?.len() > 0, "emptied under a reader");
    reader.execute_batch("COMMIT")?;
    // A later one empties it. The thread counts a try once it returned, just after the
    // file was truncated: wait for both.
    wait_until("a later try emptied the WAL", || {
        Ok(checkpointer.empty_tries() >= 2 && std::fs::metadata(&wal)?.len() == 0)
    })?;
    assert_eq!(store.read_since(doc, 0, 10)?.len(), 3);
    Ok(())
}

#[test]
fn a_database_from_a_newer_version_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(SqliteStore::FILE_NAME);
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
    // The refusal changed nothing.
    let version: i64 =
        Connection::open(&path)?.pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(version, future);
    Ok(())
}

#[test]
fn a_file_that_is_not_a_database_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(SqliteStore::FILE_NAME);
    std::fs::write(&path, vec![0x5a; 8192])?;
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Corrupt(_))
    ));
    Ok(())
}

#[test]
fn malformed_rows_are_corrupt_not_panics() -> TestResult {
    let store = SqliteStore::open_in_memory()?;
    let (host, device) = user(1);
    store.create_user(&host, &device)?;
    store
        .lock()?
        .execute("UPDATE users SET created_at = -1", [])?;
    assert!(matches!(store.user(host.id), Err(StoreError::Corrupt(_))));
    let doc = DocId([1; 16]);
    store.append(doc, ChunkId::of(b"a"), b"a", 1)?;
    {
        // The schema's CHECKs refuse such a row; a damaged file has no such scruples.
        let conn = store.lock()?;
        conn.pragma_update(None, "ignore_check_constraints", true)?;
        conn.execute("UPDATE logs SET head = -5", [])?;
    }
    assert!(matches!(store.head(doc), Err(StoreError::Corrupt(_))));
    Ok(())
}

#[test]
fn a_panic_holding_the_lock_poisons_the_store() -> TestResult {
    let store = Arc::new(SqliteStore::open_in_memory()?);
    let clone = Arc::clone(&store);
    let panicked = std::thread::spawn(move || {
        let _conn = clone.lock();
        panic!("boom");
    })
    .join();
    assert!(panicked.is_err());
    assert!(matches!(
        store.head(DocId([1; 16])),
        Err(StoreError::Poisoned)
    ));
    assert!(matches!(
        store.user(UserId([1; 16])),
        Err(StoreError::Poisoned)
    ));
    Ok(())
}

#[test]
fn one_store_serves_both_traits() -> TestResult {
    let store = Arc::new(SqliteStore::open_in_memory()?);
    let accounts: Arc<dyn AccountStore> = store.clone();
    let logs: Arc<dyn LogStore> = store;
    let (host, device) = user(1);
    accounts.create_user(&host, &device)?;
    logs.append(host.personal_doc, ChunkId::of(b"p"), b"p", 1)?;
    assert_eq!(logs.head(host.personal_doc)?, 1);
    assert_eq!(
        accounts.doc_owner(host.personal_doc)?,
        Some(DocOwner::Personal(host.id))
    );
    Ok(())
}

/// The invite list and a download's check are answered from memory while nothing
/// they read is written: the documents' appends leave the answers, any other write
/// drops them (what the answers are is the conformance suite's: they follow every
/// change).
#[test]
fn answers_are_kept_across_appends_and_dropped_by_other_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join(SqliteStore::FILE_NAME))?;
    let (host, device) = user(1);
    store.create_user(&host, &device)?;
    let family = FamilyId([0xfa; 16]);
    store.create_family(family, host.id, 5, usize::MAX)?;
    let photo = BlobHash::of(b"photo");
    store.grant_blob(family, photo, 10, host.id)?;
    let ask = || -> TestResult {
        assert!(store.invites_seen_by(host.id, 10)?.is_empty());
        let (record, granted) = store
            .device_and_blob_grant(device.id, photo)?
            .ok_or("the device")?;
        assert!(record.revoked_at.is_none() && granted);
        Ok(())
    };
    ask()?;
    assert_eq!(store.cache.stats(), (0, 2));
    ask()?;
    assert_eq!(store.cache.stats(), (2, 2), "answered from memory");
    let doc = DocId::from(family);
    let chunks: Vec<NewChunk<'_>> = [b"one", b"two", b"six"]
        .iter()
        .map(|bytes| NewChunk {
            doc,
            chunk: ChunkId::of(*bytes),
            bytes: *bytes,
            author: Some(host.id),
            at: 6,
            max_log_bytes: u64::MAX,
            sealing: crate::store::Sealing::Any,
        })
        .collect();
    store.append_batch(&chunks)?;
    ask()?;
    assert_eq!(store.cache.stats(), (4, 2), "appends leave them");
    store.touch_device(device.id, 7, None)?;
    ask()?;
    assert_eq!(store.cache.stats(), (4, 4), "any other write drops them");
    Ok(())
}

/// Reads racing writes on other threads never answer older than a write that had
/// returned before the read began: one thread grants blob after blob and renames the
/// inviter after each, three others keep asking whether blobs around the latest are
/// readable and what the invite list shows. A grant or a name seen done is never
/// missing from an answer, kept in memory or not.
#[test]
fn no_answer_is_older_than_a_write_that_returned() -> TestResult {
    use std::sync::atomic::{AtomicU64, Ordering};
    const GRANTS: u64 = 150;
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join(SqliteStore::FILE_NAME))?;
    let (host, device) = user(1);
    let (kid, kid_device) = user(2);
    store.create_user(&host, &device)?;
    store.create_user(&kid, &kid_device)?;
    let family = FamilyId([0xfa; 16]);
    store.create_family(family, host.id, 5, usize::MAX)?;
    store.create_invite(&NewInvite {
        id: InviteId([7; 16]),
        family,
        inviter: host.id,
        invitee: kid.id,
        card: vec![1, 2, 3],
        created_at: 10,
        expires_at: u64::MAX / 2,
    })?;
    let blob = |j: u64| BlobHash::of(&j.to_le_bytes());
    let (done, asks) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| -> TestResult {
        let readers: Vec<_> = (0..3u64)
            .map(|r| {
                let (store, done, asks) = (&store, &done, &asks);
                s.spawn(move || -> Result<(), String> {
                    let mut asked = 0u64;
                    loop {
                        let k = done.load(Ordering::Acquire);
                        if k >= GRANTS {
                            return Ok(());
                        }
                        asked += 1;
                        asks.fetch_add(1, Ordering::Relaxed);
                        // Blobs from two before the latest done to two after it.
                        let j = (k + (asked * 7 + r) % 5).saturating_sub(2);
                        let (_, granted) = store
                            .device_and_blob_grant(device.id, blob(j))
                            .map_err(|e| e.to_string())?
                            .ok_or("the device")?;
                        if (1..=k).contains(&j) && !granted {
                            return Err(format!("blob {j} granted before the read, answered not"));
                        }
                        let list = store
                            .invites_seen_by(kid.id, 20)
                            .map_err(|e| e.to_string())?;
                        let name = &list.first().ok_or("the invite")?.inviter_nickname;
                        let seen: u64 = name
                            .strip_prefix("name ")
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                        if seen < k {
                            return Err(format!(
                                "renamed {k} times before the read, answered {name}"
                            ));
                        }
                    }
                })
            })
            .collect();
        // The writes begin once the readers have begun asking.
        while asks.load(Ordering::Relaxed) < 3 {
            std::thread::yield_now();
        }
        for j in 1..=GRANTS {
            store.grant_blob(family, blob(j), 10, host.id)?;
            store.set_profile(host.id, &format!("name {j}"), None)?;
            done.store(j, Ordering::Release);
        }
        for reader in readers {
            reader.join().map_err(|_| "a reader panicked")??;
        }
        Ok(())
    })?;
    Ok(())
}

#[test]
fn a_version_1_database_is_migrated_and_keeps_its_rows() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(SqliteStore::FILE_NAME);
    let family = FamilyId([0xfa; 16]);
    let photo = BlobHash::of(b"photo");
    let (host, host_device) = user(1);
    {
        // A relay of schema version 1 wrote this file.
        let conn = Connection::open(&path)?;
        conn.execute_batch(SCHEMA.migrations[0])?;
        conn.pragma_update(None, "user_version", 1)?;
        insert_user(&conn, &host)?;
        conn.execute(
            "INSERT INTO families (id, title, host, created_at) VALUES (?1, 'old', ?2, 1)",
            (family.0, host.id.0),
        )?;
        conn.execute("INSERT INTO docs (doc, family) VALUES (?1, ?1)", [family.0])?;
        conn.execute(
            "INSERT INTO members (family, user, name, role, joined_at)
             VALUES (?1, ?2, '엄마', 'host', 1)",
            (family.0, host.id.0),
        )?;
        conn.execute(
            "INSERT INTO blob_grants (family, blob, size) VALUES (?1, ?2, 42)",
            (family.0, photo.0),
        )?;
    }
    let store = SqliteStore::open(&path)?;
    let version: i64 = store
        .lock()?
        .pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(version, SqliteStore::schema_version());
    assert!(store.blob_granted(host.id, photo)?);
    assert_eq!(store.family_blob_bytes(family)?, 42);
    // The new table works.
    let avatar = BlobHash::of(b"avatar");
    store.grant_blob_to_user(host.id, avatar, 7)?;
    assert_eq!(store.user_blob_bytes(host.id)?, 7);
    assert!(store.blob_granted(host.id, avatar)?);
    store.add_device(host.id, &host_device)?;
    store.check_integrity()?;
    Ok(())
}

#[test]
fn a_version_2_database_gets_log_bytes_and_snapshot_references() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(SqliteStore::FILE_NAME);
    let family = FamilyId([0xfa; 16]);
    let doc = DocId::from(family);
    let (snapshot, photo) = (BlobHash::of(b"snapshot"), BlobHash::of(b"photo"));
    let (host, _) = user(1);
    {
        // A relay of schema version 2 wrote this file: a family whose document has a
        // snapshot (granted like an upload, as version 2 did) and two chunks after it.
        let conn = Connection::open(&path)?;
        conn.execute_batch(SCHEMA.migrations[0])?;
        conn.execute_batch(SCHEMA.migrations[1])?;
        conn.pragma_update(None, "user_version", 2)?;
        insert_user(&conn, &host)?;
        conn.execute(
            "INSERT INTO families (id, title, host, created_at) VALUES (?1, 'old', ?2, 1)",
            (family.0, host.id.0),
        )?;
        conn.execute("INSERT INTO docs (doc, family) VALUES (?1, ?1)", [family.0])?;
        conn.execute(
            "INSERT INTO members (family, user, name, role, joined_at)
             VALUES (?1, ?2, '엄마', 'host', 1)",
            (family.0, host.id.0),
        )?;
        for (blob, size) in [(snapshot, 100), (photo, 42)] {
            conn.execute(
                "INSERT INTO blob_grants (family, blob, size) VALUES (?1, ?2, ?3)",
                (family.0, blob.0, size),
            )?;
        }
        conn.execute("INSERT INTO logs (doc, head) VALUES (?1, 3)", [doc.0])?;
        for (seq, bytes) in [(2, &b"two"[..]), (3, b"three")] {
            conn.execute(
                "INSERT INTO chunks (doc, seq, chunk_id, bytes, at) VALUES (?1, ?2, ?3, ?4, 1)",
                (doc.0, seq, ChunkId::of(bytes).0, bytes),
            )?;
        }
        conn.execute(
            "INSERT INTO snapshots (doc, covers_seq, blob, len) VALUES (?1, 1, ?2, 100)",
            (doc.0, snapshot.0),
        )?;
    }
    let store = SqliteStore::open(&path)?;
    // The log's bytes were counted; the snapshot became a reference that took its
    // old grant over, so replacing it releases it; the photo stays an upload.
    assert_eq!(store.log_bytes(doc)?, 8);
    assert_eq!(store.family_blob_bytes(family)?, 142);
    let to = BlobGrantee::Family(family);
    let newer = BlobHash::of(b"newer");
    store.add_snapshot_ref(doc, to, newer, 10)?;
    store.settle_snapshot(doc, to, newer, host.id, 50)?;
    store.expire_blob_releases(51)?;
    assert!(!store.blob_referenced(snapshot)?);
    assert!(store.blob_granted(host.id, photo)?);
    assert_eq!(store.family_blob_bytes(family)?, 52);
    store.check_integrity()?;
    Ok(())
}

#[test]
fn chunks_stored_before_version_7_have_no_author() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(SqliteStore::FILE_NAME);
    let doc = DocId([0xd0; 16]);
    {
        // A relay of schema version 6 stored a chunk: no author column yet.
        let conn = Connection::open(&path)?;
        for migration in &SCHEMA.migrations[..6] {
            conn.execute_batch(migration)?;
        }
        conn.pragma_update(None, "user_version", 6)?;
        conn.execute(
            "INSERT INTO logs (doc, head, bytes) VALUES (?1, 1, 3)",
            [doc.0],
        )?;
        conn.execute(
            "INSERT INTO chunks (doc, seq, chunk_id, bytes, at) VALUES (?1, 1, ?2, ?3, 1)",
            (doc.0, ChunkId::of(b"old").0, &b"old"[..]),
        )?;
    }
    let store = SqliteStore::open(&path)?;
    let author = UserId([0xa1; 16]);
    store.append_batch(&[NewChunk {
        doc,
        chunk: ChunkId::of(b"new"),
        bytes: b"new",
        author: Some(author),
        at: 2,
        max_log_bytes: u64::MAX,
        sealing: crate::store::Sealing::Any,
    }])?;
    let authors: Vec<Option<UserId>> = store
        .read_since(doc, 0, 10)?
        .into_iter()
        .map(|c| c.author)
        .collect();
    assert_eq!(authors, vec![None, Some(author)]);
    store.check_integrity()?;
    Ok(())
}

/// What a relay of schema version 10 held in the clear: a family's title, 호칭 and a
/// proposed 호칭. Distinct byte strings, so that none is found by chance.
const OLD_TITLE: &str = "우리집-가족제목-오래된";
const RENAMED_FROM: &str = "이름바꾸기전-가족제목";
const OTHER_TITLE: &str = "이웃집-가족제목-둘째";
const OLD_NAMES: [&str; 4] = [
    "큰이모-호칭-가나다",
    "막내삼촌-호칭-라마바",
    "떠난사촌-호칭-사아자",
    "제안된-호칭-차카타",
];

#[test]
fn a_version_10_database_forgets_its_titles_and_names() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(SqliteStore::FILE_NAME);
    let family = FamilyId([0xfa; 16]);
    let (host, host_device) = user(1);
    let (aunt, _) = user(2);
    let (guest, _) = user(3);
    let purged = 200u8;
    {
        // A relay of schema version 10 wrote this file, without zeroing what it
        // deleted (as relays before version 10 did): a family renamed once, a member
        // who left, invites purged (their pages freed), a pending invite.
        let conn = doran_sqlite::open(
            &path,
            &doran_sqlite::Schema {
                name: "relay store, version 10",
                migrations: &SCHEMA.migrations[..10],
            },
        )?;
        conn.pragma_update(None, "secure_delete", false)?;
        for (u, d) in [user(1), user(2), user(3), user(4)] {
            insert_user(&conn, &u)?;
            conn.execute(
                "INSERT INTO devices (id, user, key, client, added_at) VALUES (?1, ?2, ?3, 'c', 1)",
                (d.id.0, u.id.0, d.key.0),
            )?;
        }
        conn.execute(
            "INSERT INTO families (id, title, host, created_at) VALUES (?1, ?2, ?3, 1)",
            (family.0, RENAMED_FROM, host.id.0),
        )?;
        // Another family after it in the page: the first one's old row is not at the
        // edge of the page's free space, so its rename leaves the old title behind.
        let other = FamilyId([0xfb; 16]);
        conn.execute(
            "INSERT INTO families (id, title, host, created_at) VALUES (?1, ?2, ?3, 1)",
            (other.0, OTHER_TITLE, aunt.id.0),
        )?;
        conn.execute(
            "UPDATE families SET title = ?2 WHERE id = ?1",
            (family.0, OLD_TITLE),
        )?;
        for f in [family, other] {
            conn.execute("INSERT INTO docs (doc, family) VALUES (?1, ?1)", [f.0])?;
        }
        let member = |who: UserId, name: &str, role: &str, at: i64| {
            conn.execute(
                "INSERT INTO members (family, user, name, role, joined_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                (family.0, who.0, name, role, at),
            )
        };
        member(host.id, OLD_NAMES[0], "host", 1)?;
        member(aunt.id, OLD_NAMES[1], "member", 2)?;
        member(user(4).0.id, OLD_NAMES[2], "member", 3)?;
        conn.execute("DELETE FROM members WHERE user = ?1", [user(4).0.id.0])?;
        let invite = |id: [u8; 16], name: &str, state: &str, closed: Option<i64>| {
            conn.execute(
                "INSERT INTO invites (id, family, inviter, invitee, proposed_name, created_at,
                                      expires_at, state, closed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 10, 1000, ?6, ?7)",
                (id, family.0, host.id.0, guest.id.0, name, state, closed),
            )
        };
        invite([9; 16], OLD_NAMES[3], "pending", None)?;
        // Enough finished invites to fill pages of their own, then purged.
        for n in 0..purged {
            let name = format!("{}-{n}", OLD_NAMES[3]);
            let mut id = [n; 16];
            id[0] = 0xee;
            invite(id, &name, "withdrawn", Some(20))?;
        }
        conn.execute("DELETE FROM invites WHERE state = 'withdrawn'", [])?;
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        assert!(free > 0, "the purge freed pages");
    }
    let secrets: Vec<&str> = OLD_NAMES
        .iter()
        .copied()
        .chain([OLD_TITLE, RENAMED_FROM, OTHER_TITLE])
        .collect();
    // Which of them the database's files hold (the file, and its WAL if any).
    let found = || -> Result<Vec<&str>, std::io::Error> {
        let mut bytes = Vec::new();
        for file in [SqliteStore::FILE_NAME, "relay.sqlite-wal"] {
            match std::fs::read(dir.path().join(file)) {
                Ok(b) => bytes.extend(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(secrets
            .iter()
            .copied()
            .filter(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
            .collect())
    };
    assert_eq!(found()?, secrets, "the old file holds every one of them");

    let store = SqliteStore::open(&path)?;
    // Nothing of them in the file (nor in its WAL) while the store is open...
    assert_eq!(found()?, Vec::<&str>::new());
    // ...and the rest is as it was: the family, its members, the pending invite
    // (answerable, its card empty).
    assert_eq!(
        store.family(family)?.map(|f| (f.host, f.created_at)),
        Some((host.id, 1))
    );
    let members: Vec<UserId> = store.members(family)?.iter().map(|m| m.user).collect();
    assert_eq!(members, vec![host.id, aunt.id]);
    let pending = store.invite(InviteId([9; 16]), 50)?.ok_or("the invite")?;
    assert_eq!(
        (pending.card.len(), pending.inviter_nickname.as_str()),
        (0, host.nickname.as_str())
    );
    assert_eq!(
        store
            .answer_invite(pending.invite, true, 60, usize::MAX)?
            .state,
        doran_protocol::model::InviteState::Accepted
    );
    assert!(store.membership(family, guest.id)?.is_some());
    assert_eq!(store.devices(host.id)?.len(), 1);
    assert_eq!(store.devices(host.id)?[0].id, host_device.id);
    store.check_integrity()?;
    drop(store);
    assert_eq!(found()?, Vec::<&str>::new());
    Ok(())
}

/// A relay of schema version 12 kept, marked clear, the log of a family sealed from
/// its creation before its id said so (every chunk an envelope, its host's among
/// them): version 13 marks it sealed, so its members' envelopes and its volumes are
/// taken. A family created clear (its host's clear chunks), one whose kept chunks are
/// only a member's envelopes (pushed before the sealing rule: they seal nothing), one
/// its host sealed since (marked already), and a log of no family are left as they were.
#[test]
fn a_version_12_database_marks_the_logs_of_families_sealed_from_their_creation() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(SqliteStore::FILE_NAME);
    let (host, _) = user(1);
    let (member, _) = user(2);
    let [legacy, clear, by_a_member, sealed_since] =
        [0xa1, 0xa2, 0xa3, 0xa5].map(|b| FamilyId([b; 16]));
    let personal = DocId([0xa4; 16]);
    {
        let conn = doran_sqlite::open(
            &path,
            &doran_sqlite::Schema {
                name: "relay store, version 12",
                migrations: &SCHEMA.migrations[..12],
            },
        )?;
        insert_user(&conn, &host)?;
        insert_user(&conn, &member)?;
        let (h, m) = (host.id, member.id);
        // A chunk's bytes and author.
        type Chunk<'a> = (&'a [u8], UserId);
        let logs: [(DocId, bool, &[Chunk<'_>]); 5] = [
            (
                DocId::from(legacy),
                false,
                &[(b"DRD\x01 a", h), (b"DRD\x01 b", m)],
            ),
            (
                DocId::from(clear),
                false,
                &[(b"clear 1", h), (b"clear 2", m)],
            ),
            (DocId::from(by_a_member), false, &[(b"DRD\x01 e", m)]),
            (
                DocId::from(sealed_since),
                true,
                &[(b"clear 1", h), (b"DRD\x01 c", h)],
            ),
            (personal, false, &[(b"DRD\x01 d", h)]),
        ];
        for family in [legacy, clear, by_a_member, sealed_since] {
            conn.execute(
                "INSERT INTO families (id, host, created_at) VALUES (?1, ?2, 1)",
                (family.0, host.id.0),
            )?;
            conn.execute("INSERT INTO docs (doc, family) VALUES (?1, ?1)", [family.0])?;
        }
        for (doc, sealed, chunks) in logs {
            conn.execute(
                "INSERT INTO logs (doc, head, bytes, sealed) VALUES (?1, ?2, 0, ?3)",
                (doc.0, chunks.len() as i64, sealed),
            )?;
            for (i, (bytes, author)) in chunks.iter().enumerate() {
                conn.execute(
                    "INSERT INTO chunks (doc, seq, chunk_id, bytes, at, author)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                    (doc.0, i as i64 + 1, ChunkId::of(bytes).0, bytes, author.0),
                )?;
            }
        }
    }
    let store = SqliteStore::open(&path)?;
    let sealed = |f: FamilyId| store.log_sealed(DocId::from(f));
    assert!(sealed(legacy)?, "sealed from its creation");
    assert!(!sealed(clear)?, "created clear");
    assert!(!sealed(by_a_member)?, "a member's envelopes seal nothing");
    assert!(sealed(sealed_since)?, "sealed by its host since");
    assert!(!store.log_sealed(personal)?, "no family's document");
    store.check_integrity()?;
    Ok(())
}
