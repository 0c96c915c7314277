//! `doran-bench connections`: 10 000 authenticated idle devices on one relay — its
//! memory per connection, and whether every device still gets a change within 1 s.
//!
//! The devices are registered, put in families of 5 through real invites and
//! subscribed to their family document; then, all idle (and, on a relay that parks
//! idle connections, once all are parked), the relay's resident memory is read. Finally every family's host pushes one change at the same moment and the
//! run measures how long until every other device of every family has it.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    fanout::Schedule,
    load::{
        LoadError,
        cohort::{self, Cohort},
        live::Live,
        relay::{Relay, RelayOptions},
    },
    stats::{Percentiles, mib, ms},
};

/// Options of `connections`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Connected devices.
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// Devices per family.
    #[arg(long, default_value_t = 5)]
    pub family_size: usize,
    #[command(flatten)]
    pub relay: RelayOptions,
}

/// Runs the benchmark and prints its figures.
pub fn run(opts: &Options, json_out: bool) -> Result<(), LoadError> {
    if opts.devices == 0 || opts.family_size < 2 {
        return Err(LoadError::Setup(
            "--devices ≥ 1 and --family-size ≥ 2".into(),
        ));
    }
    crate::load::run_and_print(json_out, run_async(opts), print_table)
}

async fn run_async(opts: &Options) -> Result<serde_json::Value, LoadError> {
    let relay = Relay::start(&opts.relay)?;
    let empty = relay.memory();
    let sizes = cohort::family_sizes(opts.devices, Some(opts.family_size));
    let setup_started = Instant::now();
    let cohort = Cohort::build(&relay, &sizes, false).await?;
    let setup = setup_started.elapsed();
    let parked = wait_until_parked(&relay, opts.devices).await;
    let idle = relay.memory();

    let schedule = Schedule::round_robin(&cohort, 1).await?;
    let (pushes, expected) = (schedule.pushes.len(), schedule.expected);
    let docs: Vec<_> = cohort.families.iter().map(|f| f.doc).collect();
    let families = cohort.families.len();
    let mut live = Live::start(cohort.devices, |d| docs[d.family]);
    let tally = schedule.run(&mut live, None, Duration::from_secs(10)).await;
    live.stop().await;
    let after = relay.memory();
    crate::load::fail_on(&tally.failures)?;
    let everyone = Percentiles::of(&mut tally.everyone_latencies());
    let missing = expected.saturating_sub(tally.arrived);
    let per_conn = match (empty, idle) {
        (Some(e), Some(i)) => Some(i.rss.saturating_sub(e.rss) / opts.devices as u64),
        _ => None,
    };
    Ok(json!({
        "benchmark": "connections",
        "devices": opts.devices,
        "families": families,
        "setup_s": setup.as_secs_f64(),
        "relay_rss_mib": {
            "empty": empty.map(|m| mib(m.rss)),
            "idle_with_all_connected": idle.map(|m| mib(m.rss)),
            "after_the_round": after.map(|m| mib(m.rss)),
            "peak": after.map(|m| mib(m.peak)),
        },
        "relay_bytes_per_connection": per_conn,
        "parked_when_measured": parked,
        "round": {
            "pushes": pushes,
            "deliveries": tally.arrived,
            "missing": missing,
            "push_to_ack_ms": Percentiles::of(&mut tally.ack_latencies()).json(),
            "push_to_each_device_ms": Percentiles::of(&mut tally.delivery_latencies()).json(),
            "push_to_whole_family_ms": everyone.json(),
            "everyone_within_1s": missing == 0 && everyone.max <= Duration::from_secs(1),
            "last_delivery_ms": ms(everyone.max),
        },
    }))
}

/// Waits (at most 60 s) until the relay has parked every idle connection — the state
/// an idle device is in — and returns how many were parked; `None` for a relay that
/// does not park (an older build: measured at once, as before).
async fn wait_until_parked(relay: &Relay, devices: usize) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let parked = relay.metric("doran_connections_parked")?;
        if parked >= devices as u64 || Instant::now() > deadline {
            return Some(parked);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_table(r: &serde_json::Value) {
    let m = &r["relay_rss_mib"];
    let round = &r["round"];
    let lat = |k: &str| {
        let l = &round[k];
        format!("p50 {} p99 {} max {} ms", l["p50"], l["p99"], l["max"])
    };
    println!(
        "connections: {} idle devices in {} families (set-up {:.1} s)",
        r["devices"],
        r["families"],
        r["setup_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  relay RSS            {} MiB empty, {} MiB with all connected ({} bytes per connection), peak {} MiB",
        m["empty"], m["idle_with_all_connected"], r["relay_bytes_per_connection"], m["peak"]
    );
    if !r["parked_when_measured"].is_null() {
        println!(
            "  parked when measured {} connections",
            r["parked_when_measured"]
        );
    }
    println!(
        "  one push per family at once: {} pushes, {} deliveries, {} missing",
        round["pushes"], round["deliveries"], round["missing"]
    );
    println!("  push → ack           {}", lat("push_to_ack_ms"));
    println!("  push → each device   {}", lat("push_to_each_device_ms"));
    println!("  push → whole family  {}", lat("push_to_whole_family_ms"));
    println!(
        "  everyone within 1 s  {} (last delivery {} ms)",
        round["everyone_within_1s"], round["last_delivery_ms"]
    );
}
