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
