//! Per-year volumes between devices, against the real relay (issue 17): what a
//! sealed family makes this year is kept in this year's volume, which the first such
//! entity lists in the family's document; the relay opens the volume for the family
//! and holds only envelopes of it; the other member's device opens, syncs and reads
//! it, and writes to it in turn; a device linked later gets it whole. A family
//! created clear files by year once its host sealed it.

use automerge::{ROOT, transaction::Transactable};
use doran_device::{
    DeviceEvent,
    core::{FamilyDoc, sync::SyncStatus},
};
use doran_e2e::{
    Relay, contains,
    devices::{
        MomAndSon, WAIT, accounts_and_family, invite_received, link_and_confirm, mission,
        mom_and_son, open, open_clear, sees_mission, stored_family, until, up_to_date, wait_for,
    },
    files_under, relay_chunks, this_year, this_years_volume,
};
use doran_protocol::{DocId, FamilyId};

/// The relay's chunks of `volume`, each of them sealed; none of `texts` is in any of
/// the relay's files.
fn sealed_on_the_relay(relay: &Relay, volume: DocId, texts: &[&str]) -> Vec<Vec<u8>> {
    let chunks = relay_chunks(relay, volume);
    assert!(
        chunks.iter().all(|c| doran_protocol::looks_sealed(c)),
        "every chunk of the volume is sealed"
    );
    for (path, bytes) in files_under(relay.data()) {
        for text in texts {
            assert!(
                !contains(&bytes, text.as_bytes()),
                "{} holds {text:?} in the clear",
                path.display()
            );
        }
    }
    chunks
}

/// The family as the device at `home` stores it, which lists this year's volume and
/// keeps some of it.
fn keeps_this_years_volume(home: &std::path::Path, family: &str, user: &str) -> FamilyDoc {
    let (store, _, fd) = stored_family(home, family, user);
    let volume = this_years_volume(family.parse().expect("family id"));
    assert!(fd.view().volumes.contains(&this_year()), "listed");
    assert!(store.log_end(volume).expect("store").is_some(), "stored");
    fd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_years_volume_is_synced_sealed_between_devices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let MomAndSon {
        family,
        mom,
        son,
        mom_home,
        son_home,
        mom_account,
        son_account,
        ..
    } = mom_and_son(dir.path(), &relay.url()).await;
    let id: FamilyId = family.parse().expect("family id");
    let volume = this_years_volume(id);
    assert!(
        relay_chunks(&relay, volume).is_empty(),
        "nothing made this year yet: no volume"
    );

    mom.add_mission(&family, mission("김장하기", &["엄마"]))
        .await
        .expect("a mission");
    sees_mission(&son, &family, "김장하기").await;

    // The relay holds the volume, as envelopes only.
    let chunks = sealed_on_the_relay(&relay, volume, &["김장하기"]);
    assert!(!chunks.is_empty(), "the mission went to this year's volume");
    // Both devices keep the mission in the volume, which the family's document lists.
    for (home, user) in [
        (&mom_home, &mom_account.user),
        (&son_home, &son_account.user),
    ] {
        let fd = keeps_this_years_volume(home, &family, user);
        assert!(fd.volume_years().any(|y| y == this_year()), "loaded");
        assert!(
            fd.view().missions.values().any(|m| m.title == "김장하기"),
            "read from it"
        );
    }

    // The son writes to the volume in turn; mom reads it.
    son.add_mission(&family, mission("눈사람 만들기", &["아들"]))
        .await
        .expect("the son's mission");
    sees_mission(&mom, &family, "눈사람 만들기").await;
    assert!(relay_chunks(&relay, volume).len() > chunks.len());

    // The son's laptop, linked later, gets the volume whole.
    let laptop = open(&dir.path().join("laptop")).await;
    link_and_confirm(&son, &laptop, &relay.url()).await;
    sees_mission(&laptop, &family, "김장하기").await;
    sees_mission(&laptop, &family, "눈사람 만들기").await;
}

/// A member's modified client lists every year volumes may have (any member may list
/// any year: a listing is a time). The other member's device opens them a few at a
/// time, this year's first and never a year after next, and stays connected — a
/// burst of one request per year would meet the relay's rate limit and end its
/// connection, again at every connection — and what is made this year still goes
/// both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_listing_every_year_keeps_nobody_from_syncing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let MomAndSon {
        family,
        mom,
        son,
        mut son_events,
        mom_home,
        mom_account,
        son_home,
        son_account,
        ..
    } = mom_and_son(dir.path(), &relay.url()).await;
    // What mom's device does from here on (not its start, offline at first).
    let mut mom_events = mom.subscribe();

    son.stop_sync();
    let (store, doc, mut fd) = stored_family(&son_home, &family, &son_account.user);
    let raw = fd.replica_mut().doc_mut();
    for year in doran_protocol::VOLUME_YEARS {
        raw.put(ROOT, format!("v/{year}"), 1_i64)
            .expect("raw write");
    }
    let listing = fd.replica_mut().commit("every year", 1).expect("a change");
    store.commit_local(doc, &listing).expect("queued");
    son.start_sync();
    up_to_date(&son, &mut son_events).await;
    until("the listing on mom's device", async || {
        let listed = stored_family(&mom_home, &family, &mom_account.user)
            .2
            .view()
            .volumes
            .len();
        if listed == doran_protocol::VOLUME_YEARS.len() {
            Ok(())
        } else {
            Err(listed)
        }
    })
    .await;

    mom.add_mission(&family, mission("김장하기", &["엄마"]))
        .await
        .expect("a mission");
    sees_mission(&son, &family, "김장하기").await;
    son.add_mission(&family, mission("눈사람 만들기", &["아들"]))
        .await
        .expect("the son's mission");
    let mut offline = 0;
    wait_for(&mut mom_events, "the son's mission on mom's device", |e| {
        match e {
            DeviceEvent::Sync(s) if s.status == SyncStatus::Offline => offline += 1,
            DeviceEvent::FamilyChanged { .. } => return Some(()),
            _ => {}
        }
        None
    })
    .await;
    sees_mission(&mom, &family, "눈사람 만들기").await;
    up_to_date(&mom, &mut mom_events).await;
    assert_eq!(offline, 0, "mom's device was never cut off");
    assert!(!relay_chunks(&relay, this_years_volume(family.parse().expect("id"))).is_empty());
}

/// A family created clear keeps filing in its document while it is clear (the relay
/// opens no volume of it: a volume is sealed from its first change). Once its host
/// sealed it, and the relay took that first envelope, what the family makes goes to
/// this year's volume, sealed, from the host's device and the member's alike; what
/// it made before stays where it was, and every device shows both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_created_clear_files_by_year_once_its_host_sealed_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom_home, son_home) = (dir.path().join("mom"), dir.path().join("son"));
    let mom = open_clear(&mom_home).await;
    let son = open_clear(&son_home).await;
    let mut son_events = son.subscribe();
    let (mom_account, son_account, family) = accounts_and_family(&mom, &son, &relay.url()).await;
    mom.invite(&family, "son@example.com", "아들")
        .await
        .expect("invite sent");
    let invite = invite_received(&mut son_events).await;
    son.answer_invite(&invite, true).await.expect("accepted");
    let id: FamilyId = family.parse().expect("family id");
    let volume = this_years_volume(id);

    // Clear: the family's document keeps what it makes, and no volume is listed.
    mom.add_mission(&family, mission("봄 소풍", &["엄마"]))
        .await
        .expect("a mission while clear");
    sees_mission(&son, &family, "봄 소풍").await;
    son.add_mission(&family, mission("할머니 댁", &["아들"]))
        .await
        .expect("the son's mission while clear");
    sees_mission(&mom, &family, "할머니 댁").await;
    assert!(
        relay_chunks(&relay, volume).is_empty(),
        "no volume while clear"
    );
    let (_, _, fd) = stored_family(&mom_home, &family, &mom_account.user);
    assert!(fd.view().volumes.is_empty(), "nothing listed while clear");

    // Mom seals it; once the relay took her first envelope, her device files by year.
    assert!(mom.seal_family(&family).await.expect("sealed"));
    mom.sync_now(WAIT).await.expect("the sealing acked");
    mom.add_mission(&family, mission("봉인 뒤 김장", &["엄마"]))
        .await
        .expect("a mission after sealing");
    sees_mission(&son, &family, "봉인 뒤 김장").await;
    let chunks = relay_chunks(&relay, volume);
    assert!(
        !chunks.is_empty(),
        "mom's mission went to this year's volume"
    );

    // The son's device turned at her first envelope: it files by year too.
    son.add_mission(&family, mission("봉인 뒤 눈사람", &["아들"]))
        .await
        .expect("the son's mission after sealing");
    sees_mission(&mom, &family, "봉인 뒤 눈사람").await;
    let after = sealed_on_the_relay(&relay, volume, &["봉인 뒤 김장", "봉인 뒤 눈사람"]);
    assert!(
        after.len() > chunks.len(),
        "the son's mission went to the volume"
    );
    // Each device lists the year and keeps the volume; the missions made while clear
    // are still shown, from the family's document.
    for (home, user) in [
        (&mom_home, &mom_account.user),
        (&son_home, &son_account.user),
    ] {
        keeps_this_years_volume(home, &family, user);
    }
    for device in [&mom, &son] {
        for title in ["봄 소풍", "할머니 댁", "봉인 뒤 김장", "봉인 뒤 눈사람"] {
            sees_mission(device, &family, title).await;
        }
    }
}

/// A member removed while a change to this year's volume waited on their offline
/// device: the change cannot go anywhere (the relay refuses it, as it refuses their
/// changes to the family's document), so it leaves the outbox — it does not wait
/// for a volume that will never open again, nor show as pending for ever — and the
/// relay's volume never gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_members_volume_change_does_not_wait_for_ever() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let MomAndSon {
        family,
        mom,
        son,
        mut son_events,
        ..
    } = mom_and_son(dir.path(), &relay.url()).await;
    let volume = this_years_volume(family.parse().expect("family id"));
    mom.add_mission(&family, mission("김장하기", &["엄마"]))
        .await
        .expect("a mission");
    sees_mission(&son, &family, "김장하기").await;
    up_to_date(&son, &mut son_events).await;
    let before = relay_chunks(&relay, volume).len();

    son.stop_sync();
    son.add_mission(&family, mission("몰래 한 일", &["아들"]))
        .await
        .expect("an offline mission");
    assert_eq!(son.pending().await.expect("pending"), 1, "queued");
    mom.remove_member(&family, "아들").await.expect("removed");
    son.start_sync();
    wait_for(&mut son_events, "the removal", |e| match e {
        DeviceEvent::RemovedFromFamily { .. } => Some(()),
        _ => None,
    })
    .await;
    until("the son's outbox empty", async || {
        match son.pending().await.expect("pending") {
            0 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    up_to_date(&son, &mut son_events).await;
    assert_eq!(relay_chunks(&relay, volume).len(), before, "nothing of his");
}
