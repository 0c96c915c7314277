//! `doran-bench seed-stress`: the original's stress test (1000 virtual users × 50
//! requests) against one relay process.
//!
//! Every virtual device is a real websocket session with its own keys, signed in, in a
//! family of 4–6 joined through real invites (set up before the clock starts). When the
//! clock starts, every device performs its operations one after another, as fast as
//! the relay answers:
//!
//! - `mixed` (default): half are pushes of a family-document change (acked once
//!   durable), a quarter list invites, a quarter fetch the family's small blob over
//!   signed HTTP (hash verified). Meanwhile every device receives the other members'
//!   changes.
//! - `changes`: every operation is a change to the family document.
//!
//! Either way the changes are made beforehand with client-core, one per user action
//! (ticks, likes, comments, events), and the run ends only when every device holds
//! every change its family pushed. Afterwards each family's devices are checked to
//! load into documents with the same heads.
//!
//! As fast as the relay answers, every device always has one operation waiting at the
//! relay, so the mean latency is the number of devices over the throughput (Little's
//! law: the table prints both). With `--rate R` each device instead starts an operation
//! every 1/R s on a fixed schedule (open loop, the devices' schedules spread evenly over
//! the interval), so latency is measured at a load the run chooses, below what the
//! relay can take; how late the generator started operations is printed beside it.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use doran_client_core::group::KeyRing;
use doran_protocol::{ChunkId, FamilyId, Request};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use tokio::sync::Barrier;

use crate::{
    load::{
        LoadError,
        cohort::{self, Cohort, Device, Family, ring_copy},
        device::{Conn, EncodedPush, Identity},
        relay::{Relay, RelayOptions, cpu_of},
    },
    stats::{Percentiles, mib, ms},
};

/// Options of `seed-stress`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Virtual devices.
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Operations per device.
    #[arg(long, default_value_t = 50)]
    pub ops: usize,
    /// Devices per family (default: 4, 5 and 6 in turn).
    #[arg(long)]
    pub family_size: Option<usize>,
    /// What the operations are.
    #[arg(long, value_enum, default_value_t = Mix::Mixed)]
    pub mix: Mix,
    /// Kill the relay with SIGKILL this many times during the run, at random moments,
    /// restarting it on the same data each time. Devices then reconnect, push again
    /// what was not acked and resume from their cursors; afterwards every acked change
    /// must be in the relay's logs.
    #[arg(long, default_value_t = 0)]
    pub kill_relay: usize,
    /// Seed of the moments the relay is killed.
    #[arg(long, default_value_t = 1)]
    pub kill_seed: u64,
    /// With `--server` (a load balancer in front of several relays): kill this process
    /// — one of the relays — with SIGKILL once, at a random moment under load, and do
    /// not restart it. Its devices reconnect through the balancer to the others;
    /// afterwards every acked change must be stored.
    #[arg(long, value_name = "PID")]
    pub kill_pid: Option<u32>,
    /// Seal every change end to end, as the devices of a sealed family do: each
    /// family gets its key group and every push is sealed before the clock (as clear
    /// pushes are encoded before it; the sealing time is reported apart), and every
    /// device opens each chunk it receives inside the timed run.
    #[arg(long)]
    pub sealed: bool,
    /// Operations per second per device, each started on a fixed schedule (open loop)
    /// instead of as soon as the previous one is answered.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    #[command(flatten)]
    pub relay: RelayOptions,
}

/// The operation mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Pushes, invite lists and blob fetches.
    Mixed,
    /// Only pushes of family-document changes.
    Changes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Push,
    ListInvites,
    FetchBlob,
}

/// What one device did in the timed phase.
#[derive(Debug, Default)]
struct DeviceRun {
    push: Vec<Duration>,
    request: Vec<Duration>,
    blob: Vec<Duration>,
    /// With `--rate`: how late each operation started against its schedule.
    lag: Vec<Duration>,
    errors: usize,
    /// Its own changes and the ones it received, for the convergence check.
    holdings: Vec<Vec<u8>>,
    delivered: usize,
    /// Its changes the relay acked (which must survive any crash).
    acked: Vec<ChunkId>,
    /// Times it lost its connection and signed in again.
    reconnects: usize,
}

fn plan(mix: Mix, ops: usize, seed: u64) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..ops)
        .map(|_| match mix {
            Mix::Changes => Op::Push,
            Mix::Mixed => match rng.random_range(0..4) {
                0 | 1 => Op::Push,
                2 => Op::ListInvites,
                _ => Op::FetchBlob,
            },
        })
        .collect()
}

/// Runs the benchmark and prints its figures.
pub fn run(opts: &Options, json_out: bool) -> Result<(), LoadError> {
    if opts.devices == 0 || opts.ops == 0 {
        return Err(LoadError::Setup(
            "--devices and --ops must be at least 1".into(),
        ));
    }
    if opts
        .rate
        .is_some_and(|r| !(r.is_finite() && (0.01..=100_000.0).contains(&r)))
    {
        return Err(LoadError::Setup(
            "--rate must be between 0.01 and 100000 operations per second".into(),
        ));
    }
    crate::load::run_and_print(json_out, run_async(opts), print_table)
}

async fn run_async(opts: &Options) -> Result<serde_json::Value, LoadError> {
    let relay = Arc::new(Relay::start(&opts.relay)?);
    let sizes = cohort::family_sizes(opts.devices, opts.family_size);
    let setup_started = Instant::now();
    let cohort = Cohort::build(&relay, &sizes, opts.sealed).await?;
    let plans: Vec<Vec<Op>> = (0..cohort.devices.len())
        .map(|i| plan(opts.mix, opts.ops, i as u64))
        .collect();
    // Pushes per device: each is one change to make now, and each must reach the other
    // members of the device's family.
    let pushes: Vec<usize> = plans
        .iter()
        .map(|p| p.iter().filter(|o| **o == Op::Push).count())
        .collect();
    let edits = cohort.edits(&pushes, 1_000_000).await?;
    let setup = setup_started.elapsed();
    let memory_before = relay.memory();

    let Cohort { devices, families } = cohort;
    let identities: Vec<Identity> = devices.iter().map(|d| d.id.clone()).collect();
    let rings: Vec<Option<Vec<u8>>> = families.iter().map(|f| f.ring.clone()).collect();
    let families = Arc::new(families);
    // Devices reconnect (rather than fail) when the relay goes away, if it is to be
    // killed; the run then gives them this long in all.
    let resilient =
        (opts.kill_relay > 0 || opts.kill_pid.is_some()).then(|| Instant::now() + RESILIENT_FOR);
    // Operations done so far by all devices: the relay is killed at moments of it.
    let progress = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(devices.len() + 1));
    let mut tasks = tokio::task::JoinSet::new();
    let count = devices.len();
    let mut sealing = Duration::ZERO;
    for (index, (device, own)) in devices.into_iter().zip(edits).enumerate() {
        let family = &families[device.family];
        let expect: usize = family
            .devices
            .iter()
            .filter(|&&d| d != index)
            .map(|&d| pushes[d])
            .sum();
        // Pushes are encoded now, before the clock, sealed first in a sealed run: clear
        // and sealed runs time the same work but the sealing, which is reported apart
        // (a sealed run used to seal and encode inside the clock, a clear one not).
        let ring = rings[device.family].as_deref().map(ring_copy).transpose()?;
        let encoded = own
            .iter()
            .map(|c| {
                let bytes = match &ring {
                    Some(ring) => {
                        let (sealed, took) = crate::stats::timed(|| {
                            ring.seal_chunk(FamilyId(family.doc.0), family.doc, c)
                        });
                        sealing += took;
                        sealed.map_err(|e| LoadError::Protocol(e.to_string()))?
                    }
                    None => c.clone(),
                };
                EncodedPush::new(family.doc, bytes)
            })
            .collect::<Result<_, _>>()?;
        let job = Job {
            plan: plans[index].clone(),
            own,
            encoded,
            expect,
            family: family.clone(),
            http: relay.http_url(),
            ws: relay.ws_url(),
            resilient,
            progress: Arc::clone(&progress),
            ring,
            pace: opts.rate.map(|r| Pace::spread(r, index, count)),
        };
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            let family = device.family;
            (family, drive(device, job).await)
        });
    }
    barrier.wait().await;
    let started = Instant::now();
    let total_ops = opts.ops * identities.len();
    let killer = match opts.kill_pid {
        Some(pid) => Some(tokio::spawn(kill_once(
            pid,
            Arc::clone(&progress),
            kill_moments(1, total_ops, opts.kill_seed)[0],
        ))),
        None => (opts.kill_relay > 0).then(|| {
            tokio::spawn(kill_repeatedly(
                Arc::clone(&relay),
                Arc::clone(&progress),
                kill_moments(opts.kill_relay, total_ops, opts.kill_seed),
            ))
        }),
    };
    let cpu_before = (relay.cpu(), cpu_of("self"));
    let mut runs: Vec<Vec<DeviceRun>> = (0..families.len()).map(|_| Vec::new()).collect();
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((family, Ok(run))) => runs[family].push(run),
            Ok((_, Err(e))) => failures.push(e.to_string()),
            Err(e) => failures.push(format!("a device task failed: {e}")),
        }
    }
    let kills = match killer {
        Some(k) => k
            .await
            .map_err(|e| LoadError::Setup(format!("the killer task failed: {e}")))??,
        None => 0,
    };
    let wall = started.elapsed();
    let relay_cpu = relay
        .cpu()
        .zip(cpu_before.0)
        .map(|(a, b)| a.saturating_sub(b));
    let bench_cpu = cpu_of("self")
        .zip(cpu_before.1)
        .map(|(a, b)| a.saturating_sub(b));
    let memory_after = relay.memory();
    crate::load::fail_on(&failures)?;

    // Every change the relay acked is in its logs (after every crash).
    let acked: Vec<Vec<ChunkId>> = runs
        .iter()
        .map(|family| {
            family
                .iter()
                .flat_map(|r| r.acked.iter().copied())
                .collect()
        })
        .collect();
    let acked_missing = acked_missing(&relay, &families, &identities, &acked).await?;

    let check_started = Instant::now();
    let converged = check_convergence(&families, &mut runs).await?;
    let check = check_started.elapsed();

    let all: Vec<&DeviceRun> = runs.iter().flatten().collect();
    let mut push: Vec<Duration> = all.iter().flat_map(|r| r.push.iter().copied()).collect();
    let mut request: Vec<Duration> = all.iter().flat_map(|r| r.request.iter().copied()).collect();
    let mut blob: Vec<Duration> = all.iter().flat_map(|r| r.blob.iter().copied()).collect();
    let mut every: Vec<Duration> = push.iter().chain(&request).chain(&blob).copied().collect();
    let mut lag: Vec<Duration> = all.iter().flat_map(|r| r.lag.iter().copied()).collect();
    let ops = every.len();
    let mean = every.iter().sum::<Duration>() / (ops.max(1) as u32);
    let ops_per_s = ops as f64 / wall.as_secs_f64();
    let errors: usize = all.iter().map(|r| r.errors).sum();
    let delivered: usize = all.iter().map(|r| r.delivered).sum();
    let reconnects: usize = all.iter().map(|r| r.reconnects).sum();
    let acked_total: usize = acked.iter().map(Vec::len).sum();
    Ok(json!({
        "benchmark": "seed-stress",
        "mix": match opts.mix { Mix::Mixed => "mixed", Mix::Changes => "changes" },
        "sealed": opts.sealed,
        // Sealing every push, before the clock (one core's time, summed).
        "sealing_s": opts.sealed.then_some(sealing.as_secs_f64()),
        "devices": all.len(),
        "families": families.len(),
        "ops_per_device": opts.ops,
        "ops": ops,
        "setup_s": setup.as_secs_f64(),
        "wall_ms": ms(wall),
        "ops_per_s": ops_per_s,
        "rate_per_device": opts.rate,
        // Closed loop: one operation per device always waits at the relay, so the mean
        // latency is devices / throughput (Little's law).
        "mean_latency_ms": ms(mean),
        "devices_over_throughput_ms": (opts.rate.is_none() && ops_per_s > 0.0)
            .then(|| all.len() as f64 / ops_per_s * 1e3),
        "schedule_lag_ms": opts.rate.is_some().then(|| Percentiles::of(&mut lag).json()),
        "latency_ms": {
            "all": Percentiles::of(&mut every).json(),
            "push_ack": Percentiles::of(&mut push).json(),
            "list_invites": Percentiles::of(&mut request).json(),
            "blob_fetch": Percentiles::of(&mut blob).json(),
        },
        "pushes": push.len(),
        "chunks_delivered": delivered,
        "delivered_per_s": delivered as f64 / wall.as_secs_f64(),
        "errors": errors,
        "relay_cpu_s": relay_cpu.map(|d| d.as_secs_f64()),
        "relay_cpu_us_per_op": relay_cpu.map(|d| d.as_secs_f64() * 1e6 / ops.max(1) as f64),
        "load_generator_cpu_s": bench_cpu.map(|d| d.as_secs_f64()),
        "converged": converged,
        "relay_kills": kills,
        "reconnects": reconnects,
        "acked": acked_total,
        "acked_missing": acked_missing,
        "convergence_check_ms": ms(check),
        "relay_rss_mib": {
            "before": memory_before.map(|m| mib(m.rss)),
            "after": memory_after.map(|m| mib(m.rss)),
            "peak": memory_after.map(|m| mib(m.peak)),
        },
        "relay_data_mib": relay.data_bytes().map(mib),
    }))
}

/// What one device does once the clock starts.
#[derive(Debug)]
struct Job {
    plan: Vec<Op>,
    own: Vec<Vec<u8>>,
    /// `own`'s pushes, encoded (empty when sealed).
    encoded: Vec<EncodedPush>,
    expect: usize,
    family: Family,
    http: String,
    ws: String,
    /// Reconnect on a broken connection until then (the relay is being killed).
    resilient: Option<Instant>,
    /// Operations done by every device, counted up by each.
    progress: Arc<AtomicUsize>,
    /// This device's copy of its family's key group, with `--sealed`.
    ring: Option<KeyRing>,
    /// With `--rate`: when this device starts each operation.
    pace: Option<Pace>,
}

/// A device's schedule with `--rate`: operation `i` starts `offset + i × every` after
/// the clock starts.
#[derive(Debug, Clone, Copy)]
struct Pace {
    every: Duration,
    offset: Duration,
}

impl Pace {
    /// Device `index` of `count`, each at `rate` operations per second, their first
    /// operations spread evenly over one interval (so the relay sees a steady stream,
    /// not `count` operations at once every interval).
    fn spread(rate: f64, index: usize, count: usize) -> Self {
        let every = Duration::from_secs_f64(1.0 / rate);
        Pace {
            every,
            offset: every.mul_f64(index as f64 / count.max(1) as f64),
        }
    }

    fn due(&self, start: Instant, op: usize) -> Instant {
        start + self.offset + self.every.mul_f64(op as f64)
    }
}

/// How long devices keep reconnecting in a run that kills the relay.
const RESILIENT_FOR: Duration = Duration::from_secs(120);

/// What a device waits on the relay for.
#[derive(Debug, Clone, Copy)]
enum Attempt<'a> {
    Push(&'a EncodedPush),
    ListInvites,
    /// Every chunk the others pushed (this many).
    Everything(usize),
}

/// Makes `attempt` until it succeeds or is refused; a broken connection is, in a
/// resilient run, reconnected and the attempt made again (pushes are idempotent).
async fn steadily(
    device: &mut Device,
    job: &Job,
    run: &mut DeviceRun,
    attempt: Attempt<'_>,
) -> Result<(), LoadError> {
    let doc = job.family.doc;
    loop {
        let result = match attempt {
            Attempt::Push(push) => device.conn.push_encoded(push).await.map(drop),
            Attempt::ListInvites => device.conn.request(Request::ListInvites).await.map(drop),
            Attempt::Everything(n) => device.conn.until_received(doc, n).await,
        };
        match result {
            Err(e) if e.is_disconnect() => {
                let Some(deadline) = job.resilient else {
                    return Err(e);
                };
                device.conn.reconnect(&job.ws, &device.id, deadline).await?;
                run.reconnects += 1;
            }
            other => return other,
        }
    }
}

async fn drive(mut device: Device, mut job: Job) -> Result<DeviceRun, LoadError> {
    let blobs =
        crate::load::blob_client(&job.http, device.id.device, device.id.device_key.clone())?;
    let pushes = job.own.len();
    let mut run = DeviceRun {
        push: Vec::with_capacity(pushes),
        holdings: Vec::with_capacity(pushes + job.expect),
        acked: Vec::with_capacity(pushes),
        ..DeviceRun::default()
    };
    device.conn.reserve(pushes, job.expect);
    let mut own = std::mem::take(&mut job.own).into_iter();
    let mut encoded = std::mem::take(&mut job.encoded).into_iter();
    let clock = Instant::now();
    for (i, &op) in job.plan.iter().enumerate() {
        if let Some(pace) = job.pace {
            let due = pace.due(clock, i);
            tokio::time::sleep_until(due.into()).await;
            run.lag.push(Instant::now().saturating_duration_since(due));
        }
        let started = Instant::now();
        match op {
            Op::Push => {
                let Some(change) = own.next() else {
                    return Err(LoadError::Setup("fewer changes than pushes".into()));
                };
                let push = encoded
                    .next()
                    .ok_or_else(|| LoadError::Setup("fewer encoded pushes".into()))?;
                run.holdings.push(change);
                let pushed = steadily(&mut device, &job, &mut run, Attempt::Push(&push)).await;
                match pushed {
                    Ok(_) => {
                        run.push.push(started.elapsed());
                        run.acked.push(push.chunk);
                    }
                    Err(LoadError::Refused(..)) => run.errors += 1,
                    Err(e) => return Err(e),
                }
            }
            Op::ListInvites => {
                let listed = steadily(&mut device, &job, &mut run, Attempt::ListInvites).await;
                match listed {
                    Ok(_) => run.request.push(started.elapsed()),
                    Err(LoadError::Refused(..)) => run.errors += 1,
                    Err(e) => return Err(e),
                }
            }
            Op::FetchBlob => loop {
                // The key the relay sent after the sign-in (again after a reconnect),
                // taken as a device's driver does.
                if let Some(key) = device.conn.http_session.take() {
                    blobs.adopt_session(&device.conn.server_id, key).await;
                }
                match blobs.get(job.family.blob).await {
                    Ok(bytes) if bytes.len() == cohort::SMALL_BLOB => {
                        run.blob.push(started.elapsed());
                        break;
                    }
                    // The relay is down for a moment: try again.
                    Err(_) if job.resilient.is_some_and(|d| Instant::now() < d) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(_) | Err(_) => {
                        run.errors += 1;
                        break;
                    }
                }
            },
        }
        job.progress.fetch_add(1, Ordering::Relaxed);
    }
    steadily(&mut device, &job, &mut run, Attempt::Everything(job.expect)).await?;
    run.delivered = device.conn.received.len();
    match &job.ring {
        Some(ring) => {
            for r in device.conn.received.drain(..) {
                let opened = ring
                    .open(FamilyId(job.family.doc.0), job.family.doc, &r.bytes)
                    .map_err(|e| LoadError::Protocol(format!("a sealed chunk: {e}")))?;
                run.holdings.push(opened);
            }
        }
        None => run
            .holdings
            .extend(device.conn.received.drain(..).map(|r| r.bytes)),
    }
    device.conn.close().await;
    Ok(run)
}

/// `times` moments of a run of `total` operations, drawn with `seed`: the numbers of
/// operations done after which the relay is killed, all before nine tenths of the
/// run so that every kill happens under load.
fn kill_moments(times: usize, total: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let end = (total * 9 / 10).max(1);
    let mut moments: Vec<usize> = (0..times).map(|_| rng.random_range(0..end)).collect();
    moments.sort_unstable();
    moments
}

/// Kills the relay with SIGKILL at each of `moments` (operations done, see
/// [`kill_moments`]) and restarts it; returns how many times it did.
async fn kill_repeatedly(
    relay: Arc<Relay>,
    progress: Arc<AtomicUsize>,
    moments: Vec<usize>,
) -> Result<usize, LoadError> {
    for &moment in &moments {
        // Polling a counter: this is the load generator's clock, not a test's.
        while progress.load(Ordering::Relaxed) < moment {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let relay = Arc::clone(&relay);
        tokio::task::spawn_blocking(move || relay.kill_and_restart())
            .await
            .map_err(|e| LoadError::Setup(format!("a restart task failed: {e}")))??;
    }
    Ok(moments.len())
}

/// Kills process `pid` with SIGKILL once `moment` operations are done (`--kill-pid`).
async fn kill_once(
    pid: u32,
    progress: Arc<AtomicUsize>,
    moment: usize,
) -> Result<usize, LoadError> {
    while progress.load(Ordering::Relaxed) < moment {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    if !killed.success() {
        return Err(LoadError::Setup(format!("cannot kill process {pid}")));
    }
    Ok(1)
}

/// How many acked changes are missing from the relay's logs: for each family, a new
/// session of its host reads the whole log.
async fn acked_missing(
    relay: &Relay,
    families: &[Family],
    identities: &[Identity],
    acked: &[Vec<ChunkId>],
) -> Result<usize, LoadError> {
    let mut missing = 0;
    for (family, acked) in families.iter().zip(acked) {
        let Some(host) = family.devices.first().and_then(|&i| identities.get(i)) else {
            continue;
        };
        let mut conn = Conn::sign_in(&relay.ws_url(), host).await?;
        conn.subscribe(family.doc, 0).await?;
        // A fresh session has pushed nothing: every chunk of the log is "received".
        let stored: HashSet<ChunkId> = conn.received.iter().map(|r| r.chunk).collect();
        missing += acked.iter().filter(|c| !stored.contains(c)).count();
        conn.close().await;
    }
    Ok(missing)
}

/// Loads every device's holdings per family and compares heads (on the blocking pool).
async fn check_convergence(
    families: &Arc<Vec<Family>>,
    runs: &mut [Vec<DeviceRun>],
) -> Result<bool, LoadError> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, family_runs) in runs.iter_mut().enumerate() {
        let families = Arc::clone(families);
        // Taken, not copied: only the latencies are read after the check.
        let holdings: Vec<Vec<Vec<u8>>> = family_runs
            .iter_mut()
            .map(|r| std::mem::take(&mut r.holdings))
            .collect();
        tasks.spawn_blocking(move || {
            let slices: Vec<Vec<&[u8]>> = holdings
                .iter()
                .map(|h| h.iter().map(Vec::as_slice).collect())
                .collect();
            cohort::converged(&families[index], &slices)
        });
    }
    let mut all = true;
    while let Some(joined) = tasks.join_next().await {
        all &= joined.map_err(|e| LoadError::Setup(format!("a check task failed: {e}")))?;
    }
    Ok(all)
}

fn print_table(r: &serde_json::Value) {
    let lat = |k: &str| {
        let l = &r["latency_ms"][k];
        format!(
            "{} / {} / {} / {} ms",
            l["p50"], l["p95"], l["p99"], l["max"]
        )
    };
    println!(
        "seed-stress ({} mix{})",
        r["mix"].as_str().unwrap_or("?"),
        if r["sealed"].as_bool() == Some(true) {
            ", sealed"
        } else {
            ""
        }
    );
    println!(
        "  devices {} in {} families, {} ops each (set-up {:.1} s, not timed)",
        r["devices"],
        r["families"],
        r["ops_per_device"],
        r["setup_s"].as_f64().unwrap_or(0.0)
    );
    if let Some(sealing) = r["sealing_s"].as_f64() {
        println!("  sealing every push before the clock: {sealing:.3} s of one core");
    }
    println!(
        "  wall                 {:.1} ms for {} ops ({:.0} ops/s)",
        r["wall_ms"].as_f64().unwrap_or(0.0),
        r["ops"],
        r["ops_per_s"].as_f64().unwrap_or(0.0)
    );
    match r["rate_per_device"].as_f64() {
        Some(rate) => {
            let l = &r["schedule_lag_ms"];
            println!(
                "  open loop            {rate} ops/s per device; started late p50/p99/max {} / {} / {} ms",
                l["p50"], l["p99"], l["max"]
            );
        }
        None => println!(
            "  closed loop          mean latency {} ms; devices / throughput {:.3} ms",
            r["mean_latency_ms"],
            r["devices_over_throughput_ms"].as_f64().unwrap_or(0.0)
        ),
    }
    println!("  latency p50/p95/p99/max");
    println!("    every op           {}", lat("all"));
    println!("    push → ack         {}", lat("push_ack"));
    println!("    list invites       {}", lat("list_invites"));
    println!("    blob fetch         {}", lat("blob_fetch"));
    println!(
        "  chunks delivered     {} ({:.0}/s)",
        r["chunks_delivered"],
        r["delivered_per_s"].as_f64().unwrap_or(0.0)
    );
    println!("  errors               {}", r["errors"]);
    println!(
        "  CPU in the timed run relay {} s ({} µs per op), load generator {} s",
        r["relay_cpu_s"],
        r["relay_cpu_us_per_op"]
            .as_f64()
            .map_or("?".into(), |v| format!("{v:.0}")),
        r["load_generator_cpu_s"]
    );
    println!(
        "  converged            {} (checked in {} ms)",
        r["converged"], r["convergence_check_ms"]
    );
    println!(
        "  relay RSS            {} MiB before, {} MiB after, peak {} MiB; data {} MiB",
        r["relay_rss_mib"]["before"],
        r["relay_rss_mib"]["after"],
        r["relay_rss_mib"]["peak"],
        r["relay_data_mib"]
    );
}
