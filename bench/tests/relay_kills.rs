//! Durability under load (issue 12, item 9): the seed-stress load generator runs 60
//! devices against the real relay binary while the relay is killed with SIGKILL 20
//! times at random (seeded) moments and restarted on the same data directory. The
//! devices reconnect, push again what was not acked and resume from their cursors.
//! Afterwards every change the relay acked is in its logs, and every family's
//! devices hold the same document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, process::Command};

use serde_json::Value;

/// `doran-server`, built next to `doran-bench` when the workspace is built.
fn relay_binary() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_doran-bench"));
    let relay = bench.with_file_name("doran-server");
    assert!(
        relay.is_file(),
        "{} is missing: run the tests for the whole workspace (cargo nextest run), \
         which builds the relay too",
        relay.display()
    );
    relay
}

#[test]
fn every_acked_change_survives_twenty_kill_9s_under_load() {
    let out = Command::new(env!("CARGO_BIN_EXE_doran-bench"))
        .args(["--json", "seed-stress", "--devices", "60", "--ops", "30"])
        .args(["--kill-relay", "20", "--kill-seed", "7"])
        .arg("--server-bin")
        .arg(relay_binary())
        .output()
        .expect("doran-bench runs");
    assert!(
        out.status.success(),
        "doran-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(r["relay_kills"], 20, "{r}");
    assert!(r["acked"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["acked_missing"], 0, "every acked change is stored: {r}");
    assert_eq!(r["converged"], true, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["ops"], 60 * 30, "every operation was answered: {r}");
    assert!(
        r["reconnects"].as_u64().unwrap() > 0,
        "the devices lost the relay: {r}"
    );
}
