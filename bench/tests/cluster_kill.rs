//! Scale-out under a crash (issue 16): three relays on one PostgreSQL database and one
//! S3 bucket behind nginx; `seed-stress` runs through the balancer while one relay is
//! killed with SIGKILL. Its devices reconnect through the balancer to the others,
//! every family converges, and every change a relay acked is stored.
//!
//! Needs the test backends `scripts/test` starts (`DORAN_TEST_DATABASE`,
//! `DORAN_TEST_S3` and the S3 endpoint and keys) and nginx; without them it passes
//! without running, unless `DORAN_REQUIRE_BACKENDS` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, process::Command};

use doran_testkit::{Balancer, Relay};
use serde_json::Value;

/// Per-address limits high enough for every device of the run coming from 127.0.0.1
/// (through nginx, whose X-Forwarded-For the relays believe), as the bench's own relay.
const CONFIG: &str = r#"{
  "limits": {
    "max_connections_per_ip": 100000,
    "max_connections": 100000,
    "registrations_per_hour_per_address": 1000000,
    "lookups_per_minute_per_address": 1000000,
    "frames_per_second": 100000,
    "frame_burst": 100000,
    "max_concurrent_uploads": 64,
    "max_uploads_per_account": 64
  }
}"#;

fn relay_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_doran-bench")).with_file_name("doran-server")
}

#[test]
fn a_relay_killed_behind_the_balancer_loses_no_acked_change() {
    let (db, s3) = match (
        std::env::var("DORAN_TEST_DATABASE"),
        std::env::var("DORAN_TEST_S3"),
    ) {
        (Ok(db), Ok(s3)) if !db.is_empty() && !s3.is_empty() => (db, s3),
        _ => {
            assert!(
                std::env::var_os("DORAN_REQUIRE_BACKENDS").is_none(),
                "the test backends are required"
            );
            return;
        }
    };
    assert!(Balancer::nginx().is_some(), "nginx is not installed");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("relay.json");
    std::fs::write(&config, CONFIG).expect("write the config");
    let schema = format!("kill_{:016x}", rand::random::<u64>());
    let blobs = format!("{}/{schema}", s3.trim_end_matches('/'));
    let args = [
        "--config",
        config.to_str().expect("UTF-8"),
        "--database",
        &db,
        "--database-schema",
        &schema,
        "--blobs",
        &blobs,
        "--trusted-proxy",
        "127.0.0.1",
    ];
    assert!(relay_binary().is_file(), "build the workspace first");
    let relays: Vec<Relay> = (0..3)
        .map(|i| Relay::start_with(&dir.path().join(format!("relay{i}")), "127.0.0.1:0", &args))
        .collect();
    let addrs: Vec<_> = relays.iter().map(Relay::addr).collect();
    let balancer = Balancer::start(&addrs, &dir.path().join("nginx")).expect("nginx starts");
    let victim = relays[1].pid().expect("running");

    let out = Command::new(env!("CARGO_BIN_EXE_doran-bench"))
        .args(["--json", "seed-stress", "--devices", "60", "--ops", "30"])
        .args(["--server", &balancer.url()])
        .args(["--kill-pid", &victim.to_string(), "--kill-seed", "3"])
        .output()
        .expect("doran-bench runs");
    assert!(
        out.status.success(),
        "doran-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    eprintln!("{r}");
    assert_eq!(r["relay_kills"], 1, "{r}");
    assert!(r["acked"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["acked_missing"], 0, "every acked change is stored: {r}");
    assert_eq!(r["converged"], true, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["ops"], 60 * 30, "every operation was answered: {r}");
    assert!(
        r["reconnects"].as_u64().unwrap() > 0,
        "the victim's devices lost their relay: {r}"
    );
    drop(balancer);
}
