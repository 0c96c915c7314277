//! `doran-bench fanout`: how long a change takes from one device's push to every other
//! device of its family, with N devices connected (100, 1000, 5000 by default).
//!
//! Each size gets its own relay and a cohort in families of 5, every device live in
//! its own task. Pushes go out at a steady rate (`--rate`, spread over all families,
//! each by the next member in turn, each a real client-core change); the run measures,
//! on one clock, push → ack, push → each delivery, and push → the last family device
//! having it.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    load::{
        LoadError,
        cohort::{self, Cohort},
        live::{Live, Tally},
        relay::{Relay, RelayOptions},
    },
    stats::{Percentiles, mib},
};

/// Options of `fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Connected devices; several sizes run one after another, each on a fresh relay.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000, 5000])]
    pub devices: Vec<usize>,
    /// Devices per family.
    #[arg(long, default_value_t = 5)]
    pub family_size: usize,
    /// Pushes per family.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Pushes per second over the whole relay.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    #[command(flatten)]
    pub relay: RelayOptions,
}

/// Which device pushes which change, in order.
#[derive(Debug, Default)]
pub struct Schedule {
    pub pushes: Vec<(usize, Vec<u8>)>,
    /// Deliveries the pushes should cause (the other devices of each family).
    pub expected: usize,
}

impl Schedule {
    /// `rounds` pushes per family, round-robin over families, each by the family's next
    /// member in turn; the changes are made with client-core (on the blocking pool).
    pub async fn round_robin(cohort: &Cohort, rounds: usize) -> Result<Schedule, LoadError> {
        let mut order = Vec::new();
        let mut count = vec![0usize; cohort.devices.len()];
        for round in 0..rounds {
            for family in &cohort.families {
                if family.devices.is_empty() {
                    continue;
                }
                let device = family.devices[round % family.devices.len()];
                order.push((device, count[device]));
                count[device] += 1;
            }
        }
        let mut edits = cohort.edits(&count, 0).await?;
        let mut schedule = Schedule::default();
        for (device, nth) in order {
            let change = std::mem::take(&mut edits[device][nth]);
            let family = &cohort.families[cohort.devices[device].family];
            schedule.expected += family.devices.len() - 1;
            schedule.pushes.push((device, change));
        }
        Ok(schedule)
    }

    /// Sends the pushes (at `rate` per second, or all at once) and collects the
    /// reports until every delivery arrived or `patience` after the last push.
    pub async fn run(self, live: &mut Live, rate: Option<f64>, patience: Duration) -> Tally {
        let pushes = self.pushes.len();
        let started = tokio::time::Instant::now();
        let mut tally = Tally::default();
        for (k, (device, change)) in self.pushes.into_iter().enumerate() {
            if let Some(rate) = rate {
                let due = started + Duration::from_secs_f64(k as f64 / rate);
                // Take in reports while waiting, so the channel stays short.
                while tokio::time::Instant::now() < due {
                    match tokio::time::timeout_at(due, live.reports.recv()).await {
                        Ok(Some(r)) => tally.add(r),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            if let Some(tx) = live.push.get(device) {
                let _ = tx.send(change);
            }
        }
        tally
            .collect(
                &mut live.reports,
                self.expected,
                pushes,
                Instant::now() + patience,
            )
            .await;
        tally
    }
}

/// Runs the benchmark and prints its figures.
pub fn run(opts: &Options, json_out: bool) -> Result<(), LoadError> {
    if opts.devices.contains(&0) || opts.rounds == 0 || opts.family_size < 2 || opts.rate <= 0.0 {
        return Err(LoadError::Setup(
            "--devices ≥ 1, --rounds ≥ 1, --family-size ≥ 2 and --rate > 0".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for &devices in &opts.devices {
        let r = runtime.block_on(one_size(opts, devices))?;
        if !json_out {
            print_row(&r);
        }
        results.push(r);
    }
    if json_out {
        println!("{}", json!({ "benchmark": "fanout", "runs": results }));
    }
    Ok(())
}

async fn one_size(opts: &Options, devices: usize) -> Result<serde_json::Value, LoadError> {
    let relay = Relay::start(&opts.relay)?;
    let sizes = cohort::family_sizes(devices, Some(opts.family_size));
    let cohort = Cohort::build(&relay, &sizes, false).await?;
    let schedule = Schedule::round_robin(&cohort, opts.rounds).await?;
    let (pushes, expected) = (schedule.pushes.len(), schedule.expected);
    let families = cohort.families.len();
    let docs: Vec<_> = cohort.families.iter().map(|f| f.doc).collect();
    let mut live = Live::start(cohort.devices, |d| docs[d.family]);
    let started = Instant::now();
    let tally = schedule
        .run(&mut live, Some(opts.rate), Duration::from_secs(30))
        .await;
    let wall = started.elapsed();
    live.stop().await;
    let memory = relay.memory();
    crate::load::fail_on(&tally.failures)?;
    Ok(json!({
        "devices": devices,
        "families": families,
        "pushes": pushes,
        "rate_per_s": opts.rate,
        "wall_s": wall.as_secs_f64(),
        "deliveries": tally.arrived,
        "missing": expected.saturating_sub(tally.arrived) + pushes.saturating_sub(tally.pushes()),
        "latency_ms": {
            "push_to_ack": Percentiles::of(&mut tally.ack_latencies()).json(),
            "push_to_each_device": Percentiles::of(&mut tally.delivery_latencies()).json(),
            "push_to_whole_family": Percentiles::of(&mut tally.everyone_latencies()).json(),
        },
        "relay_rss_mib": memory.map(|m| mib(m.rss)),
        "relay_peak_rss_mib": memory.map(|m| mib(m.peak)),
    }))
}

fn print_row(r: &serde_json::Value) {
    let lat = |k: &str| {
        let l = &r["latency_ms"][k];
        format!("p50 {} p99 {} max {} ms", l["p50"], l["p99"], l["max"])
    };
    println!(
        "fanout: {} devices in {} families, {} pushes at {}/s, {} deliveries, {} missing",
        r["devices"], r["families"], r["pushes"], r["rate_per_s"], r["deliveries"], r["missing"]
    );
    println!("  push → ack           {}", lat("push_to_ack"));
    println!("  push → each device   {}", lat("push_to_each_device"));
    println!("  push → whole family  {}", lat("push_to_whole_family"));
    println!(
        "  relay RSS            {} MiB (peak {} MiB)",
        r["relay_rss_mib"], r["relay_peak_rss_mib"]
    );
}
