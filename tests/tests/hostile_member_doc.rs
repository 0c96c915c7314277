//! A hostile member against the real relay binary (issue 12, items 2 and 7): a
//! modified client pushes, into the family document, a 2 KB change of 2 000 000 text
//! inserts (which used to cost every member ~20 s and ~1 GB, on every open) and a
//! change renaming the family, which only the host may do. The relay acks both (it
//! never parses Automerge); the honest host's device refuses both, stays fast and
//! usable, and never stores them.

use std::time::{Duration, Instant};

use automerge::{ROOT, transaction::Transactable};
use doran_device::{
    MissionInput,
    core::store::{LocalStore, SqliteStore},
};
use doran_e2e::{
    Relay,
    devices::{MomAndSon, mom_and_son, open, stored_family, up_to_date},
};

/// A real Automerge change: 2 000 000 text inserts, 2 083 bytes compressed.
const BOMB: &[u8] = include_bytes!("../../client-core/tests/fixtures/text_bomb_2m.automerge");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_members_bomb_and_rename_leave_the_honest_device_healthy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");

    // Step 1: a host and a member who joined, both up to date.
    let MomAndSon {
        family,
        mom,
        mom_events,
        son,
        mut son_events,
        son_home,
        son_account,
        ..
    } = mom_and_son(dir.path(), &relay.url()).await;
    assert_eq!(mom.family(&family).await.expect("family").members.len(), 2);
    // The host goes offline: what the son pushes waits for her at the relay.
    drop(mom_events);
    drop(mom);

    // Step 2: the son's modified client writes straight into his device's store — the
    // bomb, and a rename built on the family as he has it — and pushes both.
    son.stop_sync();
    let (store, doc, mut fd) = stored_family(&son_home, &family, &son_account.user);
    fd.replica_mut()
        .doc_mut()
        .put(ROOT, "name", "아들 가족")
        .expect("raw write");
    let rename = fd.replica_mut().commit("rogue", 1).expect("a change");
    store.commit_local(doc, BOMB).expect("queued");
    store.commit_local(doc, &rename).expect("queued");
    son.start_sync();
    up_to_date(&son, &mut son_events).await;

    // Step 3: the host's device comes back, receives both, refuses both, quickly.
    let started = Instant::now();
    let mom = open(&dir.path().join("mom")).await;
    let mut mom_events = mom.subscribe();
    up_to_date(&mom, &mut mom_events).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "sync took {took:?}");
    assert_eq!(
        mom.family(&family).await.expect("family").title,
        "우리 가족"
    );

    // Step 4: the family stays usable: an edit syncs to the son.
    mom.add_mission(
        &family,
        MissionInput {
            title: "장보기".into(),
            participants: vec![],
            due: None,
        },
    )
    .await
    .expect("mission added");
    up_to_date(&mom, &mut mom_events).await;

    // Step 5: reopened, the host's device opens the family at once: nothing of the
    // refused changes was stored.
    drop(mom_events);
    drop(mom);
    let started = Instant::now();
    let mom = open(&dir.path().join("mom")).await;
    let view = mom.family(&family).await.expect("family");
    assert_eq!(view.title, "우리 가족");
    assert!(started.elapsed() < Duration::from_secs(5));
    let mom_store = SqliteStore::open(dir.path().join("mom").join("device.sqlite")).expect("store");
    let stored = mom_store.load(doc).expect("log").expect("the family");
    assert!(
        !stored.changes.iter().any(|c| c.as_slice() == BOMB),
        "the bomb was stored"
    );
    let missions = mom.missions(&family, None).await.expect("missions");
    assert_eq!(missions.month.total, 1);
    drop(relay);
}
