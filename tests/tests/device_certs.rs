//! Device certificates through the facade, against the real relay (issue 18): the
//! device holding the user key vouches for itself, a device that confirms a link
//! vouches for the new one, and a co-member's device finds both by the chains from the
//! user key it pinned — never a device the user did not vouch for.

use doran_e2e::{
    Relay,
    devices::{MomAndSon, link_and_confirm, mom_and_son, open},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_co_member_finds_the_devices_a_user_vouched_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let MomAndSon {
        mom,
        mom_account,
        son,
        son_account,
        ..
    } = mom_and_son(dir.path(), &relay.url()).await;

    // Mom's phone holds her user key: it vouches for itself.
    mom.publish_certificates().await.expect("published");
    assert_eq!(
        son.vouched_devices(&mom_account.user)
            .await
            .expect("vouched"),
        vec![mom_account.device.clone()]
    );

    // She links her laptop from the phone: the phone vouches for it.
    let laptop = open(&dir.path().join("laptop")).await;
    let linked = link_and_confirm(&mom, &laptop, &relay.url()).await;
    mom.publish_certificates().await.expect("published");
    let mut expected = vec![mom_account.device.clone(), linked.device.clone()];
    expected.sort();
    let mut vouched = son
        .vouched_devices(&mom_account.user)
        .await
        .expect("vouched");
    vouched.sort();
    assert_eq!(vouched, expected);
    // Her laptop, which never holds the user key, sees the same.
    let mut own = laptop
        .vouched_devices(&mom_account.user)
        .await
        .expect("her own");
    own.sort();
    assert_eq!(own, expected);

    // The son's device, created with his user key, vouches for itself too; mom sees it.
    son.publish_certificates().await.expect("published");
    assert_eq!(
        mom.vouched_devices(&son_account.user)
            .await
            .expect("vouched"),
        vec![son_account.device.clone()]
    );
}

/// The key a link request showed is the key a confirmation certifies: if the relay
/// names another one when the user confirms (here: the record of what was shown is
/// changed, as if the relay had swapped the key in between), the confirmation is
/// refused and nothing is linked or certified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_is_confirmed_only_for_the_key_that_was_shown() {
    use doran_device::core::store::{LocalStore, SqliteStore};
    use doran_device::{DeviceEvent, ErrorCode};
    use doran_e2e::devices::wait_for;

    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let MomAndSon {
        mom,
        mom_home,
        mom_account,
        son,
        ..
    } = mom_and_son(dir.path(), &relay.url()).await;
    let mut asked = mom.subscribe();
    let laptop = open(&dir.path().join("laptop")).await;
    let code = mom.issue_link_code().await.expect("a code");
    let url = relay.url();
    let linking = tokio::spawn(async move { laptop.link_device(&url, &code.code).await });
    let request = wait_for(&mut asked, "a link request", |e| match e {
        DeviceEvent::LinkRequested(l) => Some(l.clone()),
        _ => None,
    })
    .await;
    // What this screen showed, changed to another key.
    let store = SqliteStore::open(mom_home.join("device.sqlite")).expect("mom's store");
    let key = format!("links/shown/{}", request.link);
    let mut shown = store.get_meta(&key).expect("store").expect("remembered");
    shown[20] ^= 1;
    store.set_meta(&key, &shown).expect("store");

    let refused = mom
        .confirm_link(&request.link, true)
        .await
        .expect_err("another key than the one shown");
    assert_eq!(refused.code, ErrorCode::Relay, "{}", refused.message);
    mom.publish_certificates().await.expect("published");
    assert_eq!(
        son.vouched_devices(&mom_account.user)
            .await
            .expect("vouched"),
        vec![mom_account.device.clone()]
    );
    // The laptop is still waiting: nobody confirmed it.
    assert!(!linking.is_finished());
    linking.abort();
}
