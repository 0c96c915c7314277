//! Membership changes whose answer was lost, against the real relay: the relay created
//! the family (or took the invite's acceptance), the connection dropped before the
//! device heard so, and the device finishes the family document by itself once it is
//! back — instead of a family nobody can write in.

use doran_device::{DeviceEvent, Part, core::model::Role};
use doran_e2e::{
    Relay,
    devices::{WAIT, open_clear, remote_change, wait_for},
    proxy::AnswerLosingProxy,
};

/// Waits for this device's own write of `family`'s members.
async fn members_written(events: &mut doran_device::Subscription, family: Option<&str>) -> String {
    wait_for(events, "the member list written here", |e| match e {
        DeviceEvent::FamilyChanged {
            family: f,
            parts,
            local: true,
        } if parts.contains(&Part::Members) && family.is_none_or(|want| want == f) => {
            Some(f.clone())
        }
        _ => None,
    })
    .await
}

/// Mom (on `mom_server`) with a family, and dad (on `dad_server`) invited into it as
/// 아빠: the devices, the family and the invite.
async fn invited(
    dir: &std::path::Path,
    mom_server: &str,
    dad_server: &str,
) -> (doran_device::Device, doran_device::Device, String, String) {
    let mom = open_clear(&dir.join("mom")).await;
    mom.create_account(mom_server, "mom@example.com", "엄마곰")
        .await
        .expect("account");
    let family = mom
        .create_family("바다 가족", "엄마")
        .await
        .expect("family");
    let dad = open_clear(&dir.join("dad")).await;
    dad.create_account(dad_server, "dad@example.com", "아빠곰")
        .await
        .expect("account");
    let invite = mom
        .invite(&family, "dad@example.com", "아빠")
        .await
        .expect("invite");
    (mom, dad, family, invite.invite)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_whose_creation_answer_was_lost_is_written_once_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let proxy = AnswerLosingProxy::start(relay.addr()).await;
    let mom = open_clear(&dir.path().join("mom")).await;
    mom.create_account(&proxy.url(), "mom@example.com", "엄마곰")
        .await
        .expect("account");
    assert!(mom.sync_now(WAIT).await.expect("synced").up_to_date);
    let mut events = mom.subscribe();

    // The relay creates the family; its answer is lost on the way.
    proxy.lose_answer_to("create_family");
    mom.create_family("기차 가족", "엄마")
        .await
        .expect_err("no answer");
    assert!(proxy.lost(), "the answer was the one lost");

    // Back online by itself, the phone hears the family from the relay's list and
    // writes its first change — once.
    let family = members_written(&mut events, None).await;
    let view = mom.family(&family).await.expect("the family");
    assert_eq!(view.title, "기차 가족");
    assert!(view.member, "{view:?}");
    assert_eq!(view.members.len(), 1, "{view:?}");
    assert_eq!(view.members[0].name, "엄마");
    assert_eq!(view.members[0].role, Role::Host);
    assert_eq!(mom.families().await.expect("families").len(), 1);
    assert!(mom.sync_now(WAIT).await.expect("synced").up_to_date);

    // A family that works: dad is invited, joins and reads it from the relay.
    let dad = open_clear(&dir.path().join("dad")).await;
    dad.create_account(&relay.url(), "dad@example.com", "아빠곰")
        .await
        .expect("account");
    let invite = mom
        .invite(&family, "dad@example.com", "아빠")
        .await
        .expect("invite");
    dad.answer_invite(&invite.invite, true)
        .await
        .expect("accepted");
    let seen = dad.family(&family).await.expect("dad's copy");
    assert_eq!(seen.title, "기차 가족");
    let names: Vec<&str> = seen.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["엄마", "아빠"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_accepted_whose_answer_was_lost_still_makes_a_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let proxy = AnswerLosingProxy::start(relay.addr()).await;
    let (mom, dad, family, invite) = invited(dir.path(), &relay.url(), &proxy.url()).await;
    assert!(dad.sync_now(WAIT).await.expect("synced").up_to_date);
    let mut events = dad.subscribe();

    // The relay makes dad a member; the answer is lost.
    proxy.lose_answer_to("answer_invite");
    dad.answer_invite(&invite, true)
        .await
        .expect_err("no answer");
    assert!(proxy.lost(), "the answer was the one lost");

    // Back online, his phone adds his entry under the 호칭 the relay holds.
    members_written(&mut events, Some(&family)).await;
    assert!(dad.sync_now(WAIT).await.expect("synced").up_to_date);
    let album = dad
        .create_album(&family, "아빠 사진")
        .await
        .expect("a member writes");
    assert!(dad.sync_now(WAIT).await.expect("synced").up_to_date);

    // Mom sees him, and what he wrote.
    assert!(mom.sync_now(WAIT).await.expect("synced").up_to_date);
    let view = mom.family(&family).await.expect("mom's copy");
    let names: Vec<&str> = view.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["엄마", "아빠"]);
    let albums = mom.albums(&family).await.expect("albums");
    assert!(albums.iter().any(|a| a.id == album), "{albums:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_whose_answer_was_lost_drops_the_entry_once_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let proxy = AnswerLosingProxy::start(relay.addr()).await;
    let (mom, dad, family, invite) = invited(dir.path(), &proxy.url(), &relay.url()).await;
    let mut events = mom.subscribe();
    dad.answer_invite(&invite, true).await.expect("accepted");
    // Mom's phone hears dad's entry.
    remote_change(&mut events, "dad's entry", Part::Members).await;
    assert_eq!(mom.family(&family).await.expect("view").members.len(), 2);

    // The relay removes dad; mom's phone never hears so.
    proxy.lose_answer_to("remove_member");
    mom.remove_member(&family, "아빠")
        .await
        .expect_err("no answer");
    assert!(proxy.lost(), "the answer was the one lost");

    // Back online, her phone drops the entry the relay no longer backs.
    members_written(&mut events, Some(&family)).await;
    let view = mom.family(&family).await.expect("view");
    let names: Vec<&str> = view.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["엄마"]);
    assert!(mom.sync_now(WAIT).await.expect("synced").up_to_date);

    // Removing him again is not an error that leaves him listed: he is gone.
    let again = mom
        .remove_member(
            &family,
            &dad.account().await.expect("dad").expect("account").user,
        )
        .await;
    assert!(again.is_err(), "the relay says he is not a member");
    assert_eq!(mom.family(&family).await.expect("view").members.len(), 1);
}
