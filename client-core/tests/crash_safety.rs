//! `kill -9` in the middle of committing loses no edit that was reported saved, and
//! never leaves a change without its outbox entry (or the other way round).
//!
//! The test re-executes its own binary as a child process, running only this test
//! (`--exact`), with an environment variable that makes it act as the child. That works
//! the same under `cargo test` and `cargo nextest run`. The child makes real Automerge
//! edits into a real SQLite file and prints `committed {i}` after each `commit_local`
//! returns; the parent waits for a number of those lines, kills the child with SIGKILL
//! (`Child::kill`), then reopens the file and checks it. Several rounds run on the same
//! file, each continuing where the last one stopped; in some rounds the child also
//! compacts the document now and then, so a kill can land in a compaction too.
//!
//! The child also keeps the document's view cache: one row per edit (`edit/{i}` → the
//! bytes of `i`), written with each commit (`commit_local_with_view`) after a first
//! rebuild (`replace_view`). After every kill the cache must still be valid and hold
//! exactly the rows of the edits in the log: cache and log never disagree.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    env,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::Duration,
};

use automerge::{AutoCommit, ROOT, ReadDoc, transaction::Transactable};
use doran_client_core::store::{LocalStore, SqliteStore, StoredDoc, ViewRow};
use doran_protocol::{ChunkId, DocId};

/// This test's name as libtest knows it (an integration test at the crate root).
const TEST_NAME: &str = "store_survives_kill_9_mid_commit";
/// Set in the child: the database file to write to.
const CHILD_DB: &str = "DORAN_CRASH_TEST_CHILD_DB";
/// Set in the child when it should compact every [`COMPACT_EVERY`] edits.
const CHILD_COMPACTS: &str = "DORAN_CRASH_TEST_CHILD_COMPACTS";
const COMPACT_EVERY: u64 = 16;
const DOC: DocId = DocId([7; 16]);
/// What the child prints, followed by the edit index, once its commit returned.
const COMMITTED: &str = "committed ";
/// The encoding version the child stores with its view cache.
const VIEW_VERSION: u32 = 7;
/// How long the parent waits for one line before declaring the child stuck.
const SILENCE_LIMIT: Duration = Duration::from_secs(120);

/// The rounds: after how many reported commits the child is killed (20..200, varied),
/// and whether it compacts along the way (every third round). More rounds, more kills
/// landing in different places of a commit.
fn rounds() -> impl Iterator<Item = (u64, bool)> {
    const KILL_AFTER: [u64; 16] = [
        20, 137, 64, 200, 23, 91, 45, 178, 31, 112, 57, 160, 26, 83, 149, 38,
    ];
    KILL_AFTER
        .into_iter()
        .enumerate()
        .map(|(round, kill_after)| (kill_after, round % 3 == 1))
}

#[test]
fn store_survives_kill_9_mid_commit() {
    if let Some(db) = env::var_os(CHILD_DB) {
        run_child(Path::new(&db), env::var_os(CHILD_COMPACTS).is_some());
        return;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("crash.db");
    // The highest edit index any child reported committed.
    let mut last_reported: Option<u64> = None;
    for (round, (kill_after, compacts)) in rounds().enumerate() {
        let first = last_reported.map_or(0, |n| n + 1);
        let reported = run_round(&db, kill_after, compacts);
        assert!(
            reported.len() as u64 >= kill_after,
            "round {round}: child reported only {} commits",
            reported.len()
        );
        // The child starts where the store says the last round stopped, which is the
        // last reported edit or the one after it (committed, killed before printing).
        let start = reported[0];
        assert!(
            start == first || start == first + 1,
            "round {round}: child started at edit {start}, expected {first} or {}",
            first + 1
        );
        assert!(
            reported.windows(2).all(|w| w[1] == w[0] + 1),
            "round {round}: reported edits are not consecutive"
        );
        let last = reported[reported.len() - 1];
        let present = verify_store(&db, last, round);
        if compacts {
            assert!(
                present.has_snapshot,
                "round {round}: the child compacted, yet there is no snapshot"
            );
        }
        last_reported = Some(last);
    }
}

/// Runs one child until it has reported `kill_after` commits, SIGKILLs it and returns
/// every edit index it reported.
fn run_round(db: &Path, kill_after: u64, compacts: bool) -> Vec<u64> {
    let exe = env::current_exe().expect("current_exe");
    let mut command = Command::new(exe);
    command
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if compacts {
        command.env(CHILD_COMPACTS, "1");
    } else {
        command.env_remove(CHILD_COMPACTS);
    }
    let mut child = command.spawn().expect("spawn child");
    let lines = read_lines(&mut child);

    let mut reported = Vec::new();
    while (reported.len() as u64) < kill_after {
        match lines.recv_timeout(SILENCE_LIMIT) {
            Ok(line) => reported.extend(committed_index(&line)),
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("child silent for {SILENCE_LIMIT:?}");
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait child");
                panic!(
                    "child exited ({status}) after {} commits; was the test name {TEST_NAME:?} right?",
                    reported.len()
                );
            }
        }
    }
    // Child::kill is SIGKILL on unix: no destructor, no flush, no rollback runs.
    child.kill().expect("kill child");
    child.wait().expect("wait child");
    // Lines already in the pipe were printed after their commit returned: they count.
    reported.extend(lines.iter().filter_map(|line| committed_index(&line)));
    reported
}

/// Forwards the child's stdout lines over a channel (closed at EOF), so the parent can
/// wait for them with a time limit.
fn read_lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The edit index in a `committed {i}` line. The marker may follow other text on the
/// same line: libtest prints `test <name> ... ` without a newline before running it.
fn committed_index(line: &str) -> Option<u64> {
    let at = line.rfind(COMMITTED)?;
    line[at + COMMITTED.len()..].trim().parse().ok()
}

/// The child: edits until killed.
fn run_child(db: &Path, compacts: bool) {
    let store = SqliteStore::open(db).expect("child opens the store");
    let mut doc = store
        .load(DOC)
        .expect("child loads")
        .map_or_else(AutoCommit::new, |stored| rebuild(&stored));
    // After a load, save_incremental() would return the whole document once; mark
    // everything loaded as saved so each chunk holds just the new edit.
    let _ = doc.save_incremental();
    let start = doc.keys(ROOT).count() as u64;
    // Later rounds find the cache valid; the first one creates the document with its
    // first commit and rebuilds the cache right after.
    ensure_view(&store);
    let mut out = std::io::stdout().lock();
    for i in start..start + 1_000_000 {
        doc.put(ROOT, format!("edit-{i}"), i).expect("put");
        let chunk = doc.save_incremental();
        let (key, bytes) = view_row(i);
        store
            .commit_local_with_view(
                DOC,
                &chunk,
                Some(&[ViewRow {
                    key,
                    bytes: Some(bytes),
                }]),
            )
            .expect("commit_local_with_view");
        if i == start {
            ensure_view(&store);
        }
        if writeln!(out, "{COMMITTED}{i}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return; // the parent is gone
        }
        if compacts && i % COMPACT_EVERY == COMPACT_EVERY - 1 {
            // Compaction from a fresh load: the snapshot covers exactly the rows up to
            // that load's log end.
            let stored = store.load(DOC).expect("load").expect("doc exists");
            let snapshot = rebuild(&stored).save();
            store
                .compact(DOC, &snapshot, stored.log_end)
                .expect("compact");
        }
    }
}

/// The view-cache row of edit `i`.
fn view_row(i: u64) -> (String, Vec<u8>) {
    (format!("edit/{i}"), i.to_le_bytes().to_vec())
}

/// The whole view of a document: one row per edit in it, sorted by key.
fn view_of(doc: &AutoCommit) -> Vec<(String, Vec<u8>)> {
    let rows: BTreeMap<String, Vec<u8>> = doc
        .keys(ROOT)
        .map(|key| {
            let i = doc
                .get(ROOT, &key)
                .expect("get")
                .and_then(|(value, _)| value.as_u64())
                .expect("edit value");
            view_row(i)
        })
        .collect();
    rows.into_iter().collect()
}

/// Rebuilds the child's view cache from a fresh load unless it is valid (or the
/// document does not exist yet).
fn ensure_view(store: &SqliteStore) {
    if store.load_view(DOC).expect("load_view").is_some() {
        return;
    }
    let Some(stored) = store.load(DOC).expect("load") else {
        return;
    };
    let rows = view_of(&rebuild(&stored));
    let replaced = store
        .replace_view(DOC, VIEW_VERSION, stored.log_end, &rows)
        .expect("replace_view");
    assert!(replaced, "nothing else writes to the child's store");
}

fn rebuild(stored: &StoredDoc) -> AutoCommit {
    let mut doc = match &stored.snapshot {
        Some(snapshot) => AutoCommit::load(snapshot).expect("snapshot loads"),
        None => AutoCommit::new(),
    };
    for change in &stored.changes {
        doc.load_incremental(change).expect("change loads");
    }
    doc
}

struct Present {
    has_snapshot: bool,
}

/// Reopens the store after a kill and checks everything; `last_reported` is the
/// highest edit any child reported committed.
fn verify_store(db: &Path, last_reported: u64, round: usize) -> Present {
    let store = SqliteStore::open(db).expect("reopen after kill");
    store.check_integrity().expect("integrity check");
    let stored = store.load(DOC).expect("load").expect("document exists");
    let mut doc = rebuild(&stored);

    // Every reported edit is there; at most one more (committed, then killed before
    // printing); nothing else.
    let keys: BTreeSet<String> = doc.keys(ROOT).collect();
    let count = keys.len() as u64;
    assert!(
        count == last_reported + 1 || count == last_reported + 2,
        "round {round}: {count} edits stored, last reported was edit-{last_reported}"
    );
    let expected: BTreeSet<String> = (0..count).map(|i| format!("edit-{i}")).collect();
    assert_eq!(keys, expected, "round {round}: edits lost or invented");
    for i in 0..count {
        let value = doc
            .get(ROOT, format!("edit-{i}"))
            .expect("get")
            .and_then(|(value, _)| value.as_u64());
        assert_eq!(
            value,
            Some(i),
            "round {round}: edit-{i} has the wrong value"
        );
    }

    // The change log and the outbox agree: one chunk per edit (nothing is acked in this
    // test), no duplicates, every change row has its outbox entry, and every outbox
    // entry is either a change row or already inside the snapshot.
    let outbox = store.outbox(usize::MAX).expect("outbox");
    assert_eq!(outbox.len() as u64, count, "round {round}: outbox size");
    assert_eq!(store.pending_count().expect("pending"), count);
    assert!(
        outbox.windows(2).all(|w| w[0].id < w[1].id),
        "round {round}: outbox ids not increasing"
    );
    let outbox_ids: HashSet<ChunkId> = outbox.iter().map(|e| e.chunk).collect();
    assert_eq!(
        outbox_ids.len(),
        outbox.len(),
        "round {round}: duplicate outbox chunk"
    );
    for entry in &outbox {
        assert!(
            entry.chunk.verifies(&entry.bytes),
            "round {round}: outbox bytes"
        );
        assert_eq!(entry.doc, DOC);
    }
    let row_ids: Vec<ChunkId> = stored.changes.iter().map(|c| ChunkId::of(c)).collect();
    let row_set: HashSet<ChunkId> = row_ids.iter().copied().collect();
    assert_eq!(
        row_set.len(),
        row_ids.len(),
        "round {round}: duplicate change row"
    );
    assert!(
        row_set.is_subset(&outbox_ids),
        "round {round}: a change row has no outbox entry"
    );
    let mut snapshot_doc = stored
        .snapshot
        .as_deref()
        .map(|s| AutoCommit::load(s).expect("snapshot loads"));
    for entry in outbox.iter().filter(|e| !row_set.contains(&e.chunk)) {
        let snapshot_doc = snapshot_doc.as_mut().unwrap_or_else(|| {
            panic!("round {round}: outbox entry {} has no change row", entry.id)
        });
        let before = snapshot_doc.get_heads();
        snapshot_doc
            .load_incremental(&entry.bytes)
            .expect("chunk loads");
        assert_eq!(
            snapshot_doc.get_heads(),
            before,
            "round {round}: outbox entry {} is neither a change row nor in the snapshot",
            entry.id
        );
    }

    // The outbox alone rebuilds the same document (what the relay will receive).
    let mut from_outbox = AutoCommit::new();
    for entry in &outbox {
        from_outbox
            .load_incremental(&entry.bytes)
            .expect("chunk loads");
    }
    let outbox_keys: BTreeSet<String> = from_outbox.keys(ROOT).collect();
    assert_eq!(
        outbox_keys, keys,
        "round {round}: outbox and document differ"
    );
    assert_eq!(
        from_outbox.get_heads(),
        doc.get_heads(),
        "round {round}: outbox and document have different histories"
    );

    // The view cache is valid and holds exactly one row per edit in the log.
    let view = store
        .load_view(DOC)
        .expect("load_view")
        .unwrap_or_else(|| panic!("round {round}: the view cache is not valid after a kill"));
    assert_eq!(view.version, VIEW_VERSION, "round {round}: view version");
    assert_eq!(view.through, stored.log_end, "round {round}: view position");
    let expected_rows: BTreeMap<String, Vec<u8>> = (0..count).map(view_row).collect();
    let expected_rows: Vec<(String, Vec<u8>)> = expected_rows.into_iter().collect();
    assert_eq!(
        view.rows.len() as u64,
        count,
        "round {round}: view row count"
    );
    assert_eq!(
        view.rows, expected_rows,
        "round {round}: view cache and log disagree"
    );
    assert_eq!(view_of(&doc), expected_rows);

    Present {
        has_snapshot: stored.snapshot.is_some(),
    }
}
