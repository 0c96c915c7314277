//! A person's tap is not refused because their own device was busy. The relay limits
//! each connection's frames (a burst, then a steady rate); the outbox sending a burst
//! of edits spends that budget, and a request the relay refuses for it — having done
//! nothing — is sent again after the wait the relay gives.

use std::{net::SocketAddr, time::Duration};

use doran_device::{Device, DeviceOptions, MissionInput, core::sync::SyncConfig};
use doran_e2e::{Relay, devices::WAIT, relay_metrics};

/// The relay's count of websocket messages refused for their connection's frame rate.
fn rate_limited(relay: SocketAddr) -> u64 {
    relay_metrics(relay)("doran_frames_rate_limited_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_after_a_burst_of_edits_waits_for_the_frame_budget_instead_of_failing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A tight budget, so fifty edits outrun it; strikes high, so the relay does not
    // close the connection over the outbox's refused pushes (not what this is about).
    let config = dir.path().join("relay.json");
    std::fs::write(
        &config,
        r#"{"limits": {"frames_per_second": 20, "frame_burst": 30, "rate_limit_strikes": 1000}}"#,
    )
    .expect("config");
    let config = config.to_str().expect("a UTF-8 path");
    let relay = Relay::start_with(
        &dir.path().join("relay"),
        "127.0.0.1:0",
        &["--config", config],
    );
    // Refused pushes are tried again after half a second instead of the app's 10 s, so
    // the end of the test does not wait for that.
    let options = DeviceOptions {
        sync: SyncConfig {
            retry_refused_after_ms: 500,
            ..SyncConfig::default()
        },
        ..DeviceOptions::default()
    };
    let mom = Device::open(dir.path().join("mom"), options)
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
    let before = rate_limited(relay.addr());

    for i in 0..50 {
        mom.add_mission(
            &family,
            MissionInput {
                title: format!("할 일 {i}"),
                ..MissionInput::default()
            },
        )
        .await
        .expect("a mission");
    }
    // At once, while the outbox sends those at the relay's rate.
    let code = mom
        .issue_link_code()
        .await
        .expect("a link code, once the budget allowed it");
    assert!(!code.code.is_empty());
    assert!(
        rate_limited(relay.addr()) > before,
        "the relay refused frames of this burst"
    );

    // Nothing of the burst is lost: every edit reaches the relay in the end.
    mom.sync_now(Duration::from_secs(30))
        .await
        .expect("every edit sent");
    assert_eq!(mom.sync_state().pending, 0);
}

/// A burst of edits larger than the budget, with the relay's default patience: the
/// device pauses its pushes for the wait each refusal gives (rather than pushing the
/// next in its place), so the relay never closes the connection for ignoring its limit,
/// and every edit arrives without the app's 10 s wait for refused pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_edits_past_the_budget_is_paced_without_being_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("relay.json");
    std::fs::write(
        &config,
        r#"{"limits": {"frames_per_second": 50, "frame_burst": 30}}"#,
    )
    .expect("config");
    let config = config.to_str().expect("a UTF-8 path");
    let relay = Relay::start_with(
        &dir.path().join("relay"),
        "127.0.0.1:0",
        &["--config", config],
    );
    let mom = Device::open(dir.path().join("mom"), DeviceOptions::default())
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
    let metrics = relay_metrics(relay.addr());
    let (refused, connections) = (
        metrics("doran_frames_rate_limited_total"),
        metrics("doran_connections_total"),
    );

    for i in 0..150 {
        mom.add_mission(
            &family,
            MissionInput {
                title: format!("할 일 {i}"),
                ..MissionInput::default()
            },
        )
        .await
        .expect("a mission");
    }
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
