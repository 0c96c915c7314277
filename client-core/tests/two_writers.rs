//! Two writers on one store file, as on a device where `doran watch` runs while
//! `doran mission add` edits from another process: each host keeps its documents
//! open, and must never hold one that misses the other's rows while believing it is
//! up to date, nor store a view cache computed from such a document.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use std::{sync::Arc, thread};

use doran_client_core::{
    Actor,
    family_store::cached_family,
    store::{LocalStore, MemoryStore, SqliteStore},
    sync::StoreHost,
};
use doran_protocol::{DeviceId, DocId, FamilyId, UserId};

const USER: UserId = UserId([1; 16]);

fn open_store(dir: &tempfile::TempDir) -> Arc<dyn LocalStore> {
    Arc::new(SqliteStore::open(dir.path().join("device.sqlite")).unwrap())
}

fn host(store: Arc<dyn LocalStore>) -> StoreHost {
    StoreHost::new(
        store,
        Actor {
            user: USER,
            device: DeviceId([1; 16]),
        },
    )
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

/// The view cache, when the store holds a valid one, lists exactly `titles`.
fn cache_agrees(store: &dyn LocalStore, doc: DocId, titles: &[String]) {
    if let Some(cached) = cached_family(store, doc).unwrap() {
        let mut cached: Vec<String> = cached.missions.values().map(|m| m.title.clone()).collect();
        cached.sort();
        assert_eq!(cached, titles, "a valid view cache must match the log");
    }
}

#[test]
fn an_edit_overtaken_by_another_writer_is_made_again_not_lost() {
    let family = FamilyId([3; 16]);
    let doc = DocId::from(family);
    // Two hosts on one store with no writer lock to take turns (a store only this
    // process can open), so the other writer can come in between.
    let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
    let app = host(Arc::clone(&store));
    app.create_family(family, "우리집", "엄마", 1).unwrap();
    app.edit_family(family, |fd| fd.add_mission("첫 미션", &[], None, 2))
        .unwrap();

    // While the app computes its edit, the command line appends to the same file
    // (once). Both write as the same Automerge actor: the app's edit, made without the
    // command line's change, would reuse its sequence number, and every load would
    // refuse it. So the app's first attempt is not written; it is made again on the
    // document as the store now holds it.
    let cli = host(Arc::clone(&store));
    let mut attempts = 0;
    app.edit_family(family, |fd| {
        attempts += 1;
        if attempts == 1 {
            cli.edit_family(family, |other| {
                other.add_mission("명령줄에서", &[], None, 3)
            })
            .unwrap();
        }
        fd.add_mission("앱에서", &[], None, 4)
    })
    .unwrap();
    assert_eq!(attempts, 2);

    let titles = mission_titles(&app, family);
    assert_eq!(titles, ["명령줄에서", "앱에서", "첫 미션"]);
    cache_agrees(&*store, doc, &titles);
    assert_eq!(mission_titles(&host(Arc::clone(&store)), family), titles);
    assert_eq!(
        store.outbox(10).unwrap().len(),
        4,
        "one entry per edit, none twice"
    );
}

#[test]
fn two_processes_editing_at_once_each_end_with_every_edit() {
    const EACH: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let family = FamilyId([4; 16]);
    let doc = DocId::from(family);
    host(open_store(&dir))
        .create_family(family, "우리집", "엄마", 1)
        .unwrap();

    // Two hosts on two connections to one file, editing as fast as they can. They take
    // turns (the store's writer lock): neither is ever sent back to reopen for good,
    // neither loses an edit, and each ends with the other's.
    let writers: Vec<_> = ["앱", "명령줄"]
        .into_iter()
        .map(|who| {
            let store = open_store(&dir);
            thread::spawn(move || {
                let h = host(Arc::clone(&store));
                for i in 0..EACH {
                    h.edit_family(family, |fd| {
                        fd.add_mission(&format!("{who} {i:03}"), &[], None, 2)
                    })
                    .unwrap();
                }
                (store, h)
            })
        })
        .collect();
    let done: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    for (store, h) in done {
        let titles = mission_titles(&h, family);
        assert_eq!(titles.len(), 2 * EACH, "each host ends with every edit");
        cache_agrees(&*store, doc, &titles);
    }
    assert_eq!(
        mission_titles(&host(open_store(&dir)), family).len(),
        2 * EACH
    );
}
