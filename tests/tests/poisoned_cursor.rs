//! A device whose stored cursor is past the relay's log (a forged `Chunk{seq: 2^62}`
//! accepted once, or a relay restored from a backup) used to drop every live chunk
//! as "already seen", for good. The relay now answers such a subscription with
//! `CursorAhead`; the device forgets the cursor, catches up from 0 and is live again.

use doran_device::{
    DeviceEvent, MissionInput, Part,
    core::store::{LocalStore, SqliteStore},
};
use doran_e2e::{
    Relay,
    devices::{accounts_and_family, open, up_to_date, wait_for},
};
use doran_protocol::{DocId, FamilyId};

const POISON: u64 = 1 << 62;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_past_the_relays_log_is_reset_and_live_chunks_arrive_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let server = relay.url();
    let (mom_home, son_home) = (dir.path().join("mom"), dir.path().join("son"));

    let mom = open(&mom_home).await;
    let son = open(&son_home).await;
    let mut son_events = son.subscribe();
    let (_, _, family) = accounts_and_family(&mom, &son, &server).await;
    let sent = mom
        .invite(&family, "son@example.com", "아들")
        .await
        .expect("invite");
    son.answer_invite(&sent.invite, true)
        .await
        .expect("accepted");
    let mut mom_events = mom.subscribe();
    up_to_date(&mom, &mut mom_events).await;
    drop(mom_events);
    mom.close().await;
    drop(mom);

    // Mom's device stored a cursor far past the log (what a forged chunk did).
    let doc = DocId::from(family.parse::<FamilyId>().expect("family id"));
    {
        let store = SqliteStore::open(mom_home.join("device.sqlite")).expect("mom's store");
        store
            .apply_remote(doc, &[], Some(POISON))
            .expect("poison the cursor");
        assert_eq!(store.cursor(doc).expect("cursor"), POISON);
    }

    // Back online, she gets the son's mission live.
    let mom = open(&mom_home).await;
    let mut mom_events = mom.subscribe();
    up_to_date(&mom, &mut mom_events).await;
    up_to_date(&son, &mut son_events).await;
    son.add_mission(
        &family,
        MissionInput {
            title: "분리수거".into(),
            participants: vec!["아들".into()],
            due: None,
        },
    )
    .await
    .expect("the son's mission");
    wait_for(&mut mom_events, "the son's mission on mom's device", |e| {
        matches!(e, DeviceEvent::FamilyChanged { family: f, parts, local: false }
            if *f == family && parts.contains(&Part::Missions))
        .then_some(())
    })
    .await;
    let missions = mom.missions(&family, None).await.expect("missions");
    assert!(
        missions
            .month
            .missions
            .iter()
            .any(|m| m.title == "분리수거"),
        "the mission is on mom's device"
    );
    mom.close().await;
    drop(mom);
    let store = SqliteStore::open(mom_home.join("device.sqlite")).expect("mom's store");
    let cursor = store.cursor(doc).expect("cursor");
    assert!(
        cursor > 0 && cursor < 1000,
        "a sane cursor is stored again: {cursor}"
    );
}
