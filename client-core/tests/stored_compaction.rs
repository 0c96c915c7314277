//! A device keeps its own copy of a document short: once the change rows stored after
//! its snapshot pass `COMPACT_STORED_AFTER`, the host writes the open document as the
//! new snapshot. These tests hold that nothing is lost doing so — not an edit, not an
//! outbox entry, not a change still waiting for its dependencies — on SQLite files,
//! as the device keeps them.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use std::sync::Arc;

use doran_client_core::{
    Actor,
    store::{LocalStore, Membership, SqliteStore},
    sync::{COMPACT_STORED_AFTER, DocKind, IncomingChunk, StoreHost, SyncHost},
};
use doran_protocol::{DeviceId, DocId, FamilyId, UserId};

const HOST: UserId = UserId([1; 16]);
const MEMBER: UserId = UserId([2; 16]);

/// Missions enough to pass the compaction mark.
const MISSIONS: usize = COMPACT_STORED_AFTER as usize + 20;

fn open_store(dir: &tempfile::TempDir, name: &str) -> Arc<dyn LocalStore> {
    Arc::new(SqliteStore::open(dir.path().join(name)).unwrap())
}

fn actor(user: UserId, device: u8) -> Actor {
    Actor {
        user,
        device: DeviceId([device; 16]),
    }
}

fn mission_titles(host: &StoreHost, family: FamilyId) -> Vec<String> {
    let mut titles: Vec<String> = host
        .read_family(family, |fd| {
            fd.view()
                .missions
                .values()
                .map(|m| m.title.clone())
                .collect()
        })
        .unwrap();
    titles.sort();
    titles
}

/// The host's device writes a family and `MISSIONS` missions, one change each.
fn written_family(store: &Arc<dyn LocalStore>, family: FamilyId) -> StoreHost {
    let host = StoreHost::new(Arc::clone(store), actor(HOST, 1));
    host.create_family(family, "우리집", "엄마", 1).unwrap();
    for i in 0..MISSIONS {
        host.edit_family(family, |fd| {
            fd.add_mission(&format!("미션 {i:03}"), &[], None, 2)
        })
        .unwrap();
    }
    host
}

#[test]
fn a_long_stored_tail_becomes_one_snapshot_and_opens_to_the_same_family() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir, "device.sqlite");
    let family = FamilyId([3; 16]);
    let doc = DocId::from(family);
    let host = written_family(&store, family);
    let before = mission_titles(&host, family);
    assert_eq!(before.len(), MISSIONS);
    assert_eq!(store.tail_len(doc).unwrap(), MISSIONS as u64 + 1);
    let queued = store.pending_count().unwrap();
    let end = store.log_end(doc).unwrap();

    assert_eq!(host.compact_stored().unwrap(), 1, "the family is compacted");
    assert_eq!(store.tail_len(doc).unwrap(), 0);
    assert!(store.load(doc).unwrap().unwrap().snapshot.is_some());
    assert_eq!(store.log_end(doc).unwrap(), end, "the log end stays");
    assert_eq!(
        store.pending_count().unwrap(),
        queued,
        "every change still waits for the relay in the outbox"
    );
    assert_eq!(host.compact_stored().unwrap(), 0, "nothing left to compact");

    // Another process opening the same file (the app after a restart) reads the same
    // family, from the snapshot alone, and so does this host after writing more.
    let reopened = StoreHost::new(open_store(&dir, "device.sqlite"), actor(HOST, 1));
    assert_eq!(mission_titles(&reopened, family), before);
    assert_eq!(
        reopened
            .read_family(family, |fd| fd.replica_mut().heads())
            .unwrap(),
        host.read_family(family, |fd| fd.replica_mut().heads())
            .unwrap()
    );
    host.edit_family(family, |fd| fd.add_mission("새 미션", &[], None, 3))
        .unwrap();
    assert_eq!(store.tail_len(doc).unwrap(), 1);
    let again = StoreHost::new(open_store(&dir, "device.sqlite"), actor(HOST, 1));
    assert_eq!(mission_titles(&again, family).len(), MISSIONS + 1);
}

#[test]
fn a_change_waiting_for_its_dependencies_holds_the_compaction_until_they_come() {
    let dir = tempfile::tempdir().unwrap();
    let family = FamilyId([4; 16]);
    let doc = DocId::from(family);
    let kind = DocKind::Family(family);
    let written = open_store(&dir, "host.sqlite");
    written_family(&written, family);
    let chunks: Vec<IncomingChunk> = written
        .outbox(10 * MISSIONS)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, e)| IncomingChunk {
            seq: i as u64 + 1,
            author: Some(HOST),
            bytes: e.bytes,
        })
        .collect();
    let head = chunks.len() as u64;

    // A member's device gets every chunk but one early mission: the changes after it
    // are stored and wait for it.
    let member_store = open_store(&dir, "member.sqlite");
    member_store
        .set_membership(family, Membership::Member, 1)
        .unwrap();
    let member = StoreHost::new(Arc::clone(&member_store), actor(MEMBER, 2));
    let missing = 5;
    let (gap, rest): (Vec<_>, Vec<_>) = chunks.into_iter().partition(|c| c.seq == missing);
    member.apply(doc, kind, None, &rest, head).unwrap();
    assert!(member_store.tail_len(doc).unwrap() >= COMPACT_STORED_AFTER);
    assert_eq!(mission_titles(&member, family).len(), missing as usize - 2);
    assert_eq!(
        member.compact_stored().unwrap(),
        0,
        "a save would leave out what waits"
    );

    member.apply(doc, kind, None, &gap, head).unwrap();
    assert_eq!(mission_titles(&member, family).len(), MISSIONS);
    assert_eq!(member.compact_stored().unwrap(), 1);
    assert_eq!(member_store.tail_len(doc).unwrap(), 0);
    let reopened = StoreHost::new(open_store(&dir, "member.sqlite"), actor(MEMBER, 2));
    assert_eq!(mission_titles(&reopened, family).len(), MISSIONS);
}

#[test]
fn a_row_another_process_wrote_is_in_the_compacted_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let family = FamilyId([5; 16]);
    let doc = DocId::from(family);
    let store = open_store(&dir, "device.sqlite");
    let app = written_family(&store, family);
    // The command line, on the same file, adds a mission the app has not read.
    let cli = StoreHost::new(open_store(&dir, "device.sqlite"), actor(HOST, 1));
    cli.edit_family(family, |fd| fd.add_mission("명령줄에서", &[], None, 4))
        .unwrap();

    // The app's open document lacks that row: it compacts what the store holds.
    assert_eq!(app.compact_stored().unwrap(), 1);
    assert_eq!(store.tail_len(doc).unwrap(), 0);
    let reopened = StoreHost::new(open_store(&dir, "device.sqlite"), actor(HOST, 1));
    let titles = mission_titles(&reopened, family);
    assert_eq!(titles.len(), MISSIONS + 1);
    assert!(titles.iter().any(|t| t == "명령줄에서"));
    assert_eq!(mission_titles(&app, family), titles, "the app reads it too");
}

#[test]
fn a_change_made_in_memory_only_never_reaches_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let family = FamilyId([6; 16]);
    let store = open_store(&dir, "device.sqlite");
    let host = written_family(&store, family);
    // An edit that makes one change and then fails: its change is in the open
    // document but was never stored nor queued.
    let failed = host.edit_family(family, |fd| {
        fd.add_mission("유령", &[], None, 5)?;
        fd.add_mission("", &[], None, 5)
    });
    assert!(failed.is_err());
    // The host dropped that document: it reads what the store holds, and its
    // compaction writes no change the relay will never get.
    assert!(!mission_titles(&host, family).iter().any(|t| t == "유령"));
    // Nor is a change a read made (no caller does; the host does not rely on it).
    let made = host
        .read_family(family, |fd| fd.add_mission("몰래", &[], None, 6))
        .unwrap();
    assert!(made.unwrap().change.is_some());
    assert!(!mission_titles(&host, family).iter().any(|t| t == "몰래"));
    assert_eq!(host.compact_stored().unwrap(), 1);
    let reopened = StoreHost::new(open_store(&dir, "device.sqlite"), actor(HOST, 1));
    let titles = mission_titles(&reopened, family);
    assert_eq!(titles.len(), MISSIONS);
    assert!(!titles.iter().any(|t| t == "유령" || t == "몰래"));
}
