//! A member writing as the host, against the real relay binary: a modified client
//! commits changes under the host's user id (its actor id says "the host") and pushes
//! them. The relay never reads them, but stamps every chunk with the user whose
//! device pushed it; the host's device sees a change written as the host but pushed
//! by the member, and sets it aside with everything built on it.

use doran_device::MissionInput;
use doran_e2e::{
    Relay,
    devices::{accounts_and_family, invite_received, open, stored_family, up_to_date},
};
use doran_protocol::{DocId, FamilyId};

fn mission(title: &str) -> MissionInput {
    MissionInput {
        title: title.into(),
        participants: vec![],
        due: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_a_member_writes_as_the_host_are_set_aside_by_the_hosts_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let server = relay.url();

    // Step 1: a host with a mission, and a member who joined, both up to date.
    let mom_home = dir.path().join("mom");
    let mom = open(&mom_home).await;
    let son_home = dir.path().join("son");
    let son = open(&son_home).await;
    let mut mom_events = mom.subscribe();
    let mut son_events = son.subscribe();
    let (mom_account, _, family) = accounts_and_family(&mom, &son, &server).await;
    let moms_mission = mom
        .add_mission(&family, mission("장보기"))
        .await
        .expect("mission added");
    mom.invite(&family, "son@example.com", "아들")
        .await
        .expect("invite sent");
    let invite = invite_received(&mut son_events).await;
    son.answer_invite(&invite, true).await.expect("accepted");
    up_to_date(&son, &mut son_events).await;
    let honest = son
        .add_mission(&family, mission("빨래"))
        .await
        .expect("the son's own mission");
    up_to_date(&son, &mut son_events).await;
    up_to_date(&mom, &mut mom_events).await;
    // The host goes offline: what the son pushes waits for her at the relay.
    drop(mom_events);
    drop(mom);

    // Step 2: the son's modified client writes, as the host (her user id, a device
    // of its own), a rename of the family and the deletion of her mission — what
    // only the host may do — straight into his device's store, and pushes them.
    son.stop_sync();
    let (store, doc, mut fd) = stored_family(&son_home, &family, &mom_account.user);
    let rename = fd.rename("아들 가족", 1).expect("renamed");
    let delete = fd.delete_mission(&moms_mission, 1).expect("deleted");
    // Each to the document that keeps what it changes (her mission, made this
    // year: this year's volume).
    let forged: Vec<(DocId, Vec<u8>)> = [rename, delete]
        .into_iter()
        .filter_map(|e| {
            let to = e.volume.map_or(doc, |year| FamilyId(doc.0).volume(year));
            e.change.map(|change| (to, change))
        })
        .collect();
    assert_eq!(forged.len(), 2);
    for (to, change) in &forged {
        store.commit_local(*to, change).expect("queued");
    }
    // His own next edit builds on them.
    son.start_sync();
    let built_on = son
        .add_mission(&family, mission("숙제"))
        .await
        .expect("a mission after the forged changes");
    up_to_date(&son, &mut son_events).await;
    assert_eq!(
        son.family(&family).await.expect("family").title,
        "아들 가족",
        "his own device shows what he wrote"
    );

    // Step 3: the host's device comes back: the rename and the deletion are set
    // aside, and so is the mission built on them; the son's honest mission is there.
    let mom = open(&mom_home).await;
    let mut mom_events = mom.subscribe();
    up_to_date(&mom, &mut mom_events).await;
    assert_eq!(
        mom.family(&family).await.expect("family").title,
        "우리 가족"
    );
    drop(mom_events);
    drop(mom);

    // Step 4: nothing of them was stored: reopened from its store, her copy still
    // has her mission and the son's honest one, and not the one built on the forgery.
    let (mom_store, _, copy) = stored_family(&mom_home, &family, &mom_account.user);
    for (to, change) in &forged {
        let stored = mom_store.load(*to).expect("log").expect("the document");
        assert!(
            !stored.changes.contains(change),
            "a forged change was stored"
        );
    }
    let view = copy.view();
    assert_eq!(view.name, "우리 가족");
    assert!(view.missions.contains_key(&moms_mission), "her mission");
    assert!(
        view.missions.contains_key(&honest),
        "the son's honest mission"
    );
    assert!(
        !view.missions.contains_key(&built_on),
        "what builds on the forgery"
    );
    drop(relay);
}
