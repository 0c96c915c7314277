//! Per-year volumes between devices, against the real relay (issue 17): what a
//! family sealed from its creation makes this year is kept in this year's volume,
//! which the first such entity lists in the family's document; the relay opens the
//! volume for the family and holds only envelopes of it; the other member's device
//! opens, syncs and reads it, and writes to it in turn; a device linked later gets it
//! whole.

use doran_e2e::{
    Relay, contains,
    devices::{
        MomAndSon, link_and_confirm, mission, mom_and_son, open, sees_mission, stored_family,
    },
    files_under, relay_chunks, this_year, this_years_volume,
};
use doran_protocol::FamilyId;

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
    let chunks = relay_chunks(&relay, volume);
    assert!(!chunks.is_empty(), "the mission went to this year's volume");
    assert!(
        chunks.iter().all(|c| doran_protocol::looks_sealed(c)),
        "every chunk of the volume is sealed"
    );
    for (path, bytes) in files_under(relay.data()) {
        assert!(
            !contains(&bytes, "김장하기".as_bytes()),
            "{} holds the mission in the clear",
            path.display()
        );
    }
    // Both devices keep the mission in the volume, which the family's document lists.
    for (home, user) in [
        (&mom_home, &mom_account.user),
        (&son_home, &son_account.user),
    ] {
        let (store, _, fd) = stored_family(home, &family, user);
        assert!(fd.view().volumes.contains(&this_year()), "listed");
        assert!(fd.volume_years().any(|y| y == this_year()), "loaded");
        assert!(store.log_end(volume).expect("store").is_some(), "stored");
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
