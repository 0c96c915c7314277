//! A device within the relay's frame budget. The relay limits each connection's frames
//! (a burst, then a steady rate) and refuses each frame over it, having done nothing.
//! A burst of edits is paced by the refusals' waits instead of being cut off, and a
//! person's tap that comes while the outbox spends the budget is sent again after the
//! wait instead of failing.

use std::{path::Path, time::Duration};

use doran_device::{Device, DeviceOptions, MissionInput};
use doran_e2e::{Relay, devices::WAIT, relay_metrics};

/// A relay with a frame budget of `per_second` and `burst` (its default patience for
/// refusals in a row), and mom's device in a family of her own on it.
async fn mom_on_a_budget(dir: &Path, per_second: u32, burst: u32) -> (Relay, Device, String) {
    let config = dir.join("relay.json");
    let limits =
        format!(r#"{{"limits": {{"frames_per_second": {per_second}, "frame_burst": {burst}}}}}"#);
    std::fs::write(&config, limits).expect("config");
    let config = config.to_str().expect("a UTF-8 path");
    let relay = Relay::start_with(&dir.join("relay"), "127.0.0.1:0", &["--config", config]);
    let mom = Device::open(dir.join("mom"), DeviceOptions::default())
        .await
        .expect("the device opens");
    mom.create_account(&relay.url(), "mom@example.com", "엄마곰")
        .await
        .expect("an account");
    let family = mom
        .create_family("우리 가족", "엄마")
        .await
        .expect("family");
    mom.sync_now(WAIT).await.expect("synced");
    (relay, mom, family)
}

/// `n` missions added as fast as the device takes them.
async fn burst_of_edits(mom: &Device, family: &str, n: usize) {
    for i in 0..n {
        mom.add_mission(
            family,
            MissionInput {
                title: format!("할 일 {i}"),
                ..MissionInput::default()
            },
        )
        .await
        .expect("a mission");
    }
}

/// A burst of edits larger than the budget, with the relay's default patience: the
/// device pauses its pushes for the wait each refusal gives (rather than pushing the
/// next in its place), so the relay never closes the connection for ignoring its limit,
/// and every edit arrives without the app's 10 s wait for refused pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_edits_past_the_budget_is_paced_without_being_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, mom, family) = mom_on_a_budget(dir.path(), 50, 30).await;
    let metrics = relay_metrics(relay.addr());
    let (refused, connections) = (
        metrics("doran_frames_rate_limited_total"),
        metrics("doran_connections_total"),
    );

    burst_of_edits(&mom, &family, 150).await;
    // Within the 10 s the app waits before sending refused pushes of other kinds again.
    mom.sync_now(Duration::from_secs(9))
        .await
        .expect("every edit sent");
    assert_eq!(mom.sync_state().pending, 0);
    let metrics = relay_metrics(relay.addr());
    assert!(
        metrics("doran_frames_rate_limited_total") > refused,
        "the burst outran the budget"
    );
    assert_eq!(
        metrics("doran_connections_total"),
        connections,
        "the relay never closed the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_after_a_burst_of_edits_waits_for_the_frame_budget_instead_of_failing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, mom, family) = mom_on_a_budget(dir.path(), 20, 30).await;
    let refused = relay_metrics(relay.addr())("doran_frames_rate_limited_total");

    burst_of_edits(&mom, &family, 50).await;
    // At once, while the outbox sends those at the relay's rate.
    let code = mom
        .issue_link_code()
        .await
        .expect("a link code, once the budget allowed it");
    assert!(!code.code.is_empty());
    assert!(
        relay_metrics(relay.addr())("doran_frames_rate_limited_total") > refused,
        "the relay refused frames of this burst"
    );

    // Nothing of the burst is lost: every edit reaches the relay in the end.
    mom.sync_now(Duration::from_secs(30))
        .await
        .expect("every edit sent");
    assert_eq!(mom.sync_state().pending, 0);
}
