//! Linking a device through the `Device` facade against the real relay: the code
//! alone adds nothing, the first device confirms or rejects, and a first device that
//! was offline is asked when it comes back.

use doran_device::{
    Device, DeviceEvent, DeviceOptions, ErrorCode, core::sync::SyncConfig, device_name,
};
use doran_e2e::{
    Relay,
    devices::{WAIT, link_and_confirm, wait_for},
};

async fn open(dir: &std::path::Path, name: &str) -> Device {
    Device::open(dir.join(name), DeviceOptions::default())
        .await
        .expect("the device opens")
}

/// A relay in `dir` and mom's device, signed up to it (the account's first device).
async fn mom_signed_up(dir: &std::path::Path) -> (Relay, Device) {
    let relay = Relay::start(&dir.join("relay"), "127.0.0.1:0");
    let mom = open(dir, "mom").await;
    mom.create_account(&relay.url(), "mom@example.com", "엄마곰")
        .await
        .expect("an account");
    (relay, mom)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_device_confirms_and_the_new_one_syncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, mom) = mom_signed_up(dir.path()).await;
    let family = mom
        .create_family("우리 가족", "엄마")
        .await
        .expect("family");
    mom.sync_now(WAIT).await.expect("synced");

    // While the laptop waits, the phone lists the request and still has one device.
    // The laptop's app names it (too long for the relay, with a newline: it is cut,
    // not refused at sign-in).
    let long_name = format!("엄마의 노트북\n{}", "!".repeat(200));
    let laptop = Device::open(
        dir.path().join("laptop"),
        DeviceOptions {
            sync: SyncConfig {
                client: long_name.clone(),
                ..SyncConfig::default()
            },
            ..DeviceOptions::default()
        },
    )
    .await
    .expect("the laptop opens");
    let mut asked = mom.subscribe();
    let code = mom.issue_link_code().await.expect("a code");
    let server = relay.url();
    let linking = laptop.link_device(&server, &code.code);
    let check_and_confirm = async {
        let request = wait_for(&mut asked, "a link request", |e| match e {
            DeviceEvent::LinkRequested(l) => Some(l.clone()),
            _ => None,
        })
        .await;
        let pending = mom.pending_links().await.expect("pending links");
        assert_eq!(pending, vec![request.clone()]);
        assert_eq!(pending[0].fingerprint.len(), 14, "{pending:?}");
        // The prompt names the new device as its app did, cut to what the relay keeps.
        assert_eq!(pending[0].name, device_name::clamp(&long_name));
        assert!(pending[0].name.starts_with("엄마의 노트북!!!"));
        assert_eq!(mom.devices().await.expect("devices").len(), 1);
        mom.confirm_link(&request.link, true)
            .await
            .expect("confirmed");
        request
    };
    let (linked, request) = tokio::join!(linking, check_and_confirm);
    let account = linked.expect("linked");
    assert_eq!(account.device, request.device);
    assert!(mom.pending_links().await.expect("pending").is_empty());
    let devices = mom.devices().await.expect("devices");
    assert_eq!(devices.len(), 2);
    // Each device by its own name: this one by the machine it runs on.
    let this = devices.iter().find(|d| d.this_device).expect("this device");
    assert_eq!(this.name, device_name::describe("Dorandoran"));
    assert!(
        devices
            .iter()
            .any(|d| d.name == device_name::clamp(&long_name))
    );

    // The new device is a device of the account: it syncs the family.
    laptop.sync_now(WAIT).await.expect("synced");
    let families = laptop.families().await.expect("families");
    assert_eq!(
        families
            .iter()
            .map(|f| f.family.clone())
            .collect::<Vec<_>>(),
        vec![family]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_device_is_told_and_cannot_retry_the_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, mom) = mom_signed_up(dir.path()).await;
    let stranger = open(dir.path(), "stranger").await;
    let mut asked = mom.subscribe();
    let code = mom.issue_link_code().await.expect("a code");
    let server = relay.url();
    let reject = async {
        let request = wait_for(&mut asked, "a link request", |e| match e {
            DeviceEvent::LinkRequested(l) => Some(l.clone()),
            _ => None,
        })
        .await;
        mom.confirm_link(&request.link, false)
            .await
            .expect("rejected");
    };
    let (linked, ()) = tokio::join!(stranger.link_device(&server, &code.code), reject);
    let e = linked.expect_err("refused");
    assert_eq!(e.code, ErrorCode::LinkRejected, "{e:?}");
    assert!(stranger.account().await.expect("account").is_none());
    // The code is spent for anyone else too.
    let other = open(dir.path(), "other").await;
    let e = other
        .link_device(&server, &code.code)
        .await
        .expect_err("the code is spent");
    assert_eq!(e.code, ErrorCode::LinkClaimed, "{e:?}");
    assert_eq!(mom.devices().await.expect("devices").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_first_device_is_asked_when_it_reconnects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, mom) = mom_signed_up(dir.path()).await;
    let code = mom.issue_link_code().await.expect("a code");
    mom.close().await;

    let laptop = open(dir.path(), "laptop").await;
    let mut waiting = laptop.subscribe();
    let mut asked = mom.subscribe();
    let server = relay.url();
    let reconnect_and_confirm = async {
        // The relay has the request once the laptop says it waits.
        wait_for(&mut waiting, "the laptop waiting", |e| match e {
            DeviceEvent::LinkWaiting { .. } => Some(()),
            _ => None,
        })
        .await;
        mom.start_sync();
        let request = wait_for(&mut asked, "the request on reconnect", |e| match e {
            DeviceEvent::LinkRequested(l) => Some(l.clone()),
            _ => None,
        })
        .await;
        mom.confirm_link(&request.link, true)
            .await
            .expect("confirmed");
    };
    let (linked, ()) = tokio::join!(
        laptop.link_device(&server, &code.code),
        reconnect_and_confirm
    );
    linked.expect("linked");
    assert_eq!(mom.devices().await.expect("devices").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_helper_links_and_confirms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, mom) = mom_signed_up(dir.path()).await;
    let tablet = open(dir.path(), "tablet").await;
    let account = link_and_confirm(&mom, &tablet, &relay.url()).await;
    assert_eq!(
        mom.account().await.expect("account").map(|a| a.user),
        Some(account.user)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_is_listed_by_the_name_it_last_signed_in_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let named = |client: &str| DeviceOptions {
        sync: SyncConfig {
            client: client.to_owned(),
            ..SyncConfig::default()
        },
        ..DeviceOptions::default()
    };
    // Registered under an old app's name (as every device was before it named itself).
    let mom = Device::open(dir.path().join("mom"), named("dorandoran-core/0.1.0"))
        .await
        .expect("opens");
    mom.create_account(&relay.url(), "mom@example.com", "엄마곰")
        .await
        .expect("an account");
    let names = |list: Vec<doran_device::screens::DeviceView>| {
        list.into_iter().map(|d| d.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(mom.devices().await.expect("devices")),
        ["dorandoran-core/0.1.0"]
    );
    mom.close().await;

    // The updated app signs in with the machine's name: the list follows.
    let mom = Device::open(
        dir.path().join("mom"),
        named("Dorandoran · 엄마의 노트북 (Linux)"),
    )
    .await
    .expect("opens again");
    mom.sync_now(WAIT).await.expect("signed in and synced");
    assert_eq!(
        names(mom.devices().await.expect("devices")),
        ["Dorandoran · 엄마의 노트북 (Linux)"]
    );
}
