//! Safety codes through the facade, against the real relay (issue 18): two members'
//! devices show the same sixty digits for each other, a code read from the other
//! device marks that member verified, and a device that pinned a key the relay made
//! up for a member shows a code that differs in that member's half — so comparing in
//! person finds the relay in the middle.

use doran_device::{
    Device, DeviceEvent, ErrorCode, Subscription,
    core::store::{LocalStore, SqliteStore},
};
use doran_e2e::{
    Relay,
    devices::{MomAndSon, link_and_confirm, mom_and_son, open, wait_for},
};

/// Waits until `device` reads `name` among the family's members.
async fn reads_member(device: &Device, events: &mut Subscription, family: &str, name: &str) {
    loop {
        if let Ok(view) = device.family(family).await
            && view.members.iter().any(|m| m.name == name)
        {
            return;
        }
        wait_for(events, "a change of the family", |e| {
            matches!(
                e,
                DeviceEvent::FamilyChanged { .. } | DeviceEvent::FamilyJoined { .. }
            )
            .then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_see_the_same_code_and_a_code_read_out_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let MomAndSon {
        family,
        mom,
        mom_account,
        son,
        son_account,
        ..
    } = mom_and_son(dir.path(), &relay.url()).await;

    let on_moms = mom.safety_code(&family, "아들").await.expect("mom's code");
    let on_sons = son.safety_code(&family, "엄마").await.expect("son's code");
    assert_eq!(
        on_moms.code, on_sons.code,
        "both devices show the same digits"
    );
    assert_eq!(on_moms.groups.len(), 12);
    assert_eq!(
        (on_moms.user.as_str(), on_moms.name.as_str()),
        (son_account.user.as_str(), "아들")
    );
    assert_eq!(on_sons.user, mom_account.user);
    assert!(!on_moms.verified && !on_sons.verified);
    // By user id too.
    assert_eq!(
        mom.safety_code(&family, &son_account.user)
            .await
            .expect("by id")
            .code,
        on_moms.code
    );

    // Mom's laptop, linked with a code, holds no user key: it pinned hers from the
    // relay, and shows the same code.
    let laptop = open(&dir.path().join("laptop")).await;
    let mut laptop_events = laptop.subscribe();
    link_and_confirm(&mom, &laptop, &relay.url()).await;
    reads_member(&laptop, &mut laptop_events, &family, "아들").await;
    assert_eq!(
        laptop
            .safety_code(&family, "아들")
            .await
            .expect("the laptop's code")
            .code,
        on_moms.code
    );

    // A wrong digit is a mismatch, and marks nothing.
    let mut wrong = on_moms.code.clone().into_bytes();
    wrong[0] = if wrong[0] == b'9' { b'0' } else { wrong[0] + 1 };
    let wrong = String::from_utf8(wrong).expect("digits");
    let refused = son
        .verify_safety_code(&family, "엄마", &wrong)
        .await
        .expect_err("not the code mom's phone shows");
    assert_eq!(
        refused.code,
        ErrorCode::SafetyCodeMismatch,
        "{}",
        refused.message
    );
    // Not a code at all; oneself.
    let malformed = son
        .verify_safety_code(&family, "엄마", "12345 67890")
        .await
        .expect_err("too short");
    assert_eq!(malformed.code, ErrorCode::InvalidInput);
    let me = son
        .safety_code(&family, "아들")
        .await
        .expect_err("one compares with someone else");
    assert_eq!(me.code, ErrorCode::InvalidInput);
    let view = son.family(&family).await.expect("family");
    assert!(view.members.iter().all(|m| !m.verified));

    // The digits mom's phone shows, read out with dashes: the same.
    let read_out = on_moms.groups.join("-");
    let verified = son
        .verify_safety_code(&family, "엄마", &read_out)
        .await
        .expect("the same code");
    assert!(verified.verified);
    assert_eq!(verified.code, on_sons.code);
    assert!(
        son.safety_code(&family, "엄마")
            .await
            .expect("again")
            .verified
    );
    let view = son.family(&family).await.expect("family");
    let verified: Vec<(&str, bool)> = view
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.verified))
        .collect();
    assert_eq!(verified, vec![("엄마", true), ("아들", false)]);
    // Verified on the son's device only: mom compares on hers for herself.
    let on_moms_view = mom.family(&family).await.expect("family");
    assert!(on_moms_view.members.iter().all(|m| !m.verified));
}

/// A relay that answered the son's device, the first time it asked, with a user key
/// of its own for mom (here: the key that device pinned for her is replaced in its
/// store, as if that first answer had been forged) gets its devices vouched for —
/// until mom and her son compare codes: mom's half differs, the son's device says
/// so, and mom stays unverified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_relay_made_up_shows_in_the_code_and_is_never_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let MomAndSon {
        family,
        mom,
        mom_account,
        son,
        son_home,
        ..
    } = mom_and_son(dir.path(), &relay.url()).await;
    // What the son's device pinned for mom, replaced by another key.
    son.vouched_devices(&mom_account.user)
        .await
        .expect("pinned on first sight");
    let store = SqliteStore::open(son_home.join("device.sqlite")).expect("son's store");
    let key = format!("certs/pinned/{}", mom_account.user);
    let mut pinned = store.get_meta(&key).expect("store").expect("pinned");
    pinned[0] ^= 1;
    store.set_meta(&key, &pinned).expect("store");

    let on_moms = mom.safety_code(&family, "아들").await.expect("mom's code");
    let on_sons = son.safety_code(&family, "엄마").await.expect("son's code");
    assert_ne!(on_moms.code, on_sons.code);
    // Only one half differs: the one made from mom's key.
    let halves = |c: &str| {
        let d: String = c.split(' ').collect();
        (d[..30].to_owned(), d[30..].to_owned())
    };
    let (moms_a, moms_b) = halves(&on_moms.code);
    let (sons_a, sons_b) = halves(&on_sons.code);
    assert!((moms_a == sons_a) != (moms_b == sons_b));

    let refused = son
        .verify_safety_code(&family, "엄마", &on_moms.code)
        .await
        .expect_err("the codes differ");
    assert_eq!(refused.code, ErrorCode::SafetyCodeMismatch);
    assert!(refused.message.contains("엄마"), "{}", refused.message);
    // Mom's device, which holds both real keys, says the son's device got the
    // other's key wrong — from its side, "for you".
    let from_mom = mom
        .verify_safety_code(&family, "아들", &on_sons.code)
        .await
        .expect_err("the codes differ");
    assert_eq!(from_mom.code, ErrorCode::SafetyCodeMismatch);
    assert!(!from_mom.message.contains("아들"), "{}", from_mom.message);
    assert!(
        !son.safety_code(&family, "엄마")
            .await
            .expect("code")
            .verified
    );
    let view = son.family(&family).await.expect("family");
    assert!(view.members.iter().all(|m| !m.verified));
}
