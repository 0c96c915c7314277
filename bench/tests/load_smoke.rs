//! The load generators, run small against the real relay binary: they must finish
//! with every operation answered, every change delivered and every family converged.
//! (Their figures are for `docs/benchmarks.md`; here only the behaviour is checked.)

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

/// `doran-bench --json ARGS --server-bin RELAY`: a load generator against the real relay.
fn run(args: &[&str]) -> Value {
    let relay = relay_binary();
    let relay = relay.to_str().expect("a UTF-8 path");
    bench(&[args, &["--server-bin", relay]].concat())
}

/// `doran-bench --json ARGS`, which must succeed with one JSON object.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_doran-bench"))
        .arg("--json")
        .args(args)
        .output()
        .expect("doran-bench runs");
    assert!(
        out.status.success(),
        "doran-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn seed_stress_mixed_answers_everything_and_converges() {
    let r = run(&["seed-stress", "--devices", "14", "--ops", "8"]);
    assert_eq!(r["errors"], 0);
    assert_eq!(r["converged"], true);
    assert_eq!(r["devices"], 14);
    assert_eq!(r["ops"], 14 * 8);
    // Families of 4, 5, 5 (the last one smaller): every push reached the others.
    assert!(r["chunks_delivered"].as_u64().unwrap() > 0);
}

/// Ten devices in families of five, six changes each.
const TEN_DEVICES_CHANGING: [&str; 9] = [
    "seed-stress",
    "--mix",
    "changes",
    "--devices",
    "10",
    "--ops",
    "6",
    "--family-size",
    "5",
];

#[test]
fn seed_stress_changes_delivers_every_change() {
    let r = run(&TEN_DEVICES_CHANGING);
    assert_eq!(r["errors"], 0);
    assert_eq!(r["converged"], true);
    assert_eq!(r["pushes"], 60);
    // Each push reaches the 4 other devices of its family.
    assert_eq!(r["chunks_delivered"], 60 * 4);
}

/// With `--rate` every device keeps to its schedule: the run lasts at least as long as
/// the schedule (6 operations at 20 per second: the last starts ≥ 250 ms in), every
/// change is still delivered, and how late operations started is reported.
#[test]
fn seed_stress_at_a_set_rate_keeps_the_schedule_and_delivers_everything() {
    let r = run(&[&TEN_DEVICES_CHANGING[..], &["--rate", "20"]].concat());
    assert_eq!(r["errors"], 0);
    assert_eq!(r["converged"], true);
    assert_eq!(r["chunks_delivered"], 60 * 4);
    assert_eq!(r["rate_per_device"], 20.0);
    assert!(r["wall_ms"].as_f64().unwrap() >= 250.0, "{}", r["wall_ms"]);
    assert!(r["schedule_lag_ms"]["max"].is_number());
    // Little's law is a closed loop's figure only.
    assert!(r["devices_over_throughput_ms"].is_null());
}

#[test]
fn a_rate_that_is_not_a_rate_is_refused() {
    for rate in ["0", "-1", "NaN", "inf"] {
        let out = Command::new(env!("CARGO_BIN_EXE_doran-bench"))
            .args(["seed-stress", "--devices", "4", "--ops", "1"])
            .arg(format!("--rate={rate}"))
            .arg("--server-bin")
            .arg(relay_binary())
            .output()
            .expect("doran-bench runs");
        assert!(!out.status.success(), "--rate {rate} was taken");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--rate"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The same, sealed end to end: every device opens what the others sealed, and the
/// families still converge on the opened changes.
#[test]
fn seed_stress_sealed_opens_every_change_and_converges() {
    let r = run(&[&TEN_DEVICES_CHANGING[..], &["--sealed"]].concat());
    assert_eq!(r["sealed"], true);
    assert_eq!(r["errors"], 0);
    assert_eq!(r["converged"], true);
    assert_eq!(r["chunks_delivered"], 60 * 4);
}

#[test]
fn fanout_and_connections_miss_nothing() {
    let r = run(&["fanout", "--devices", "10,15", "--rounds", "3"]);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["missing"], 0, "{run}");
        assert_eq!(run["deliveries"], run["pushes"].as_u64().unwrap() * 4);
    }
    let r = run(&["connections", "--devices", "20"]);
    assert_eq!(r["round"]["missing"], 0, "{r}");
    assert_eq!(r["round"]["deliveries"], 4 * 4);
}

#[test]
fn blobs_go_up_and_come_back_verified() {
    let r = run(&["blobs", "--total-mib", "8", "--file-mib", "2"]);
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["files"], 4);
    // Sealed as the app seals them: each opens after its download at its size.
    let r = run(&["blobs", "--total-mib", "8", "--file-mib", "2", "--sealed"]);
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["sealed"], true);
    assert_eq!(r["download"]["bytes"], 8 * 1024 * 1024, "{r}");
}

#[test]
fn the_key_group_benchmark_runs_a_family_through_its_epochs() {
    // No relay: the key group and the envelopes are the device's own work.
    let out = Command::new(env!("CARGO_BIN_EXE_doran-bench"))
        .args(["--json", "keys", "--devices", "4", "--chunks", "400"])
        .output()
        .expect("doran-bench runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(r["devices"], 4, "{r}");
    // Every size sealed and opened back (the run fails otherwise), and timed.
    let chunks = r["chunks"].as_array().expect("chunk sizes");
    assert_eq!(chunks.len(), 3, "{r}");
    for c in chunks {
        assert!(c["seal_us_p50"].as_f64().expect("seal") > 0.0, "{r}");
        assert!(c["open_us_p50"].as_f64().expect("open") > 0.0, "{r}");
    }
    assert!(r["add_entry_bytes"].as_u64().expect("entry") > 0, "{r}");
}

/// The transport floor, both ways: 12 devices in families of 5, 5 and 2, four pushes
/// each; every push acked and delivered to the others of its family (a lost delivery
/// fails the run), and with `--durable` every push in some group commit.
#[test]
fn wire_floor_acks_and_delivers_every_push_with_and_without_commits() {
    for durable in [false, true] {
        let mut args = vec!["wire-floor", "--devices", "12", "--ops", "4"];
        if durable {
            args.push("--durable");
        }
        let r = bench(&args);
        assert_eq!(r["pushes"], 48);
        assert_eq!(r["delivered"], 4 * (5 * 4 + 5 * 4 + 2));
        if durable {
            let commits = r["commits"].as_u64().unwrap();
            assert!((1..=48).contains(&commits), "{commits} commits");
        } else {
            assert_eq!(r["commits"], Value::Null);
        }
    }
}
