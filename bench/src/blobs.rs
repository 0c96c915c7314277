//! `doran-bench blobs`: upload then download 1 GiB as 4 MiB blobs through the relay's
//! signed HTTP API, the way the app moves photos and voice messages.
//!
//! One device is registered and creates a family (before the clock starts). The upload
//! phase makes each file from a seed when a worker takes it (deterministic random
//! bytes, which do not compress), hashes it (blake3, its name) and `PUT`s it with
//! client-core's [`BlobClient`]; only the hashes are kept. The download phase `GET`s
//! every blob back with the same client, which verifies each against its hash. Both
//! phases run `--concurrency` requests at once.
//!
//! Reported per phase: wall time and throughput (MB/s = 10⁶ bytes per second, as the
//! goal is stated), per-file latency, the relay's and this process's CPU time, and
//! the relay's resident memory sampled every 100 ms — its minimum and maximum, and
//! the maximum over the first and the second half of the bytes moved: memory is flat
//! when the second half needs no more than the first.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use doran_client_core::{
    seal::{self, BlobKey},
    store::BlobOwner,
};
use doran_device::{blobs::BlobClient, sync_error::SyncError};
use doran_protocol::{BlobHash, FamilyId, Request};
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{
    load::{
        LoadError,
        device::{Conn, Identity},
        relay::{Memory, Relay, RelayOptions},
    },
    stats::{Percentiles, mib},
};

/// The goal from the issue, each way.
const GOAL_MB_PER_S: f64 = 500.0;

/// How often memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// At most this many files in one run (bounded in count).
const MAX_FILES: u64 = 100_000;

/// Options of `blobs`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Bytes moved each way, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub total_mib: u64,
    /// Size of each blob, in MiB (the relay's default limit is 32 MiB).
    #[arg(long, default_value_t = 4)]
    pub file_mib: u64,
    /// Requests in flight at once, each way.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seed of the file contents.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Seal each file as the app seals a photo or a voice message (XChaCha20-Poly1305
    /// STREAM under a key of its own, `doran_client_core::seal`) before its upload,
    /// and open it after its download, inside the timed part: the cost of sealing in
    /// the same figures. Without it, files go up and down as they are.
    #[arg(long)]
    pub sealed: bool,
    /// Longest a phase may take, in seconds, before the run fails.
    #[arg(long, default_value_t = 600)]
    pub phase_timeout_s: u64,
    #[command(flatten)]
    pub relay: RelayOptions,
}

/// Runs the benchmark and prints its figures; fails if any transfer failed.
pub fn run(opts: &Options, json_out: bool) -> Result<(), LoadError> {
    if opts.file_mib == 0 || opts.total_mib < opts.file_mib {
        return Err(LoadError::Setup(
            "--file-mib ≥ 1 and --total-mib ≥ --file-mib".into(),
        ));
    }
    if opts.total_mib / opts.file_mib > MAX_FILES {
        return Err(LoadError::Setup(format!("at most {MAX_FILES} files")));
    }
    if !(1..=64).contains(&opts.concurrency) {
        return Err(LoadError::Setup("--concurrency between 1 and 64".into()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (report, first_error) = runtime.block_on(run_async(opts))?;
    if json_out {
        println!("{report}");
    } else {
        print_table(&report);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The deterministic contents of file `index`.
fn payload(seed: u64, index: usize, len: usize) -> Vec<u8> {
    let mut rng =
        SmallRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut bytes = vec![0; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

async fn run_async(opts: &Options) -> Result<(Value, Option<LoadError>), LoadError> {
    let relay = Arc::new(Relay::start(&opts.relay)?);
    let relay_pid = relay.memory().and_then(|_| child_pid("doran-server"));

    // A fresh address each run, so a run against a `--server` can be repeated.
    let email = format!("blobs-{:08x}@bench.doran", rand::random::<u32>());
    let mut id = Identity::new(email, "bench blobs".into());
    let mut conn = Conn::register(&relay.ws_url(), &mut id).await?;
    let family = FamilyId::random();
    conn.request(Request::CreateFamily { family }).await?;
    let client = crate::load::blob_client(&relay.http_url(), id.device, id.device_key.clone())?;

    let files = usize::try_from(opts.total_mib / opts.file_mib)
        .map_err(|_| LoadError::Setup("too many files".into()))?;
    let file_bytes = usize::try_from(opts.file_mib * 1024 * 1024)
        .map_err(|_| LoadError::Setup("--file-mib too large".into()))?;
    let job = Job {
        client,
        owner: BlobOwner::Family(family),
        files,
        file_bytes,
        seed: opts.seed,
        sealed: opts.sealed,
        concurrency: opts.concurrency,
        timeout: Duration::from_secs(opts.phase_timeout_s),
        relay: Arc::clone(&relay),
        relay_pid,
    };

    let before = relay.memory();
    let hashes = vec![None; files];
    let (up, hashes) = job.phase(Direction::Up, hashes).await?;
    let (down, _) = job.phase(Direction::Down, hashes).await?;
    let after = relay.memory();
    let data = relay.data_bytes();
    conn.close().await;

    let total = (files * file_bytes) as u64;
    let report = json!({
        "benchmark": "blobs",
        "files": files,
        "file_bytes": file_bytes,
        "total_bytes": total,
        "concurrency": opts.concurrency,
        "seed": opts.seed,
        "sealed": opts.sealed,
        "relay": if relay_pid.is_some() { "started by the run" } else { "--server" },
        "upload": up.json(total),
        "download": down.json(total),
        "relay_rss_mib": {
            "before": before.map(|m| mib(m.rss)),
            "after": after.map(|m| mib(m.rss)),
            "peak_vmhwm": after.map(|m| mib(m.peak)),
        },
        "bench_peak_rss_mib": mib(crate::stats::peak_rss_bytes()),
        "relay_data_mib": data.map(mib),
        "errors": up.errors + down.errors,
        "goal_mb_per_s": GOAL_MB_PER_S,
    });
    let first_error = up.first_error.or(down.first_error).map(LoadError::from);
    Ok((report, first_error))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// What the phases share.
struct Job {
    client: BlobClient,
    owner: BlobOwner,
    files: usize,
    file_bytes: usize,
    seed: u64,
    sealed: bool,
    concurrency: usize,
    timeout: Duration,
    relay: Arc<Relay>,
    relay_pid: Option<u32>,
}

/// What one worker did.
#[derive(Default)]
struct WorkerRun {
    latencies: Vec<Duration>,
    /// (file, its hash) for each file uploaded.
    stored: Vec<(usize, BlobHash)>,
    errors: usize,
    first_error: Option<SyncError>,
    /// Time spent making and hashing payloads (upload only).
    generating: Duration,
}

/// The figures of one phase.
struct Phase {
    wall: Duration,
    latencies: Percentiles,
    moved: u64,
    errors: usize,
    first_error: Option<SyncError>,
    generating: Duration,
    relay_cpu: Option<Duration>,
    bench_cpu: Option<Duration>,
    samples: Vec<Sample>,
}

/// One memory sample.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Bytes moved (completed files) when it was taken.
    moved: u64,
    relay: Option<Memory>,
    bench: Option<Memory>,
}

impl Job {
    /// Runs one direction over every file; returns its figures and the hashes stored.
    async fn phase(
        &self,
        direction: Direction,
        hashes: Vec<Option<BlobHash>>,
    ) -> Result<(Phase, Vec<Option<BlobHash>>), LoadError> {
        let hashes = Arc::new(hashes);
        let next = Arc::new(AtomicUsize::new(0));
        let moved = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        let sampler = tokio::spawn(sample(Arc::clone(&self.relay), Arc::clone(&moved), stopped));
        let relay_cpu0 = self.relay_pid.and_then(cpu_time);
        let bench_cpu0 = cpu_time(std::process::id());
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.concurrency {
            let (client, owner) = (self.client.clone(), self.owner);
            let (next, moved, hashes) =
                (Arc::clone(&next), Arc::clone(&moved), Arc::clone(&hashes));
            let (files, len, seed, sealed) = (self.files, self.file_bytes, self.seed, self.sealed);
            workers.spawn(async move {
                let mut run = WorkerRun::default();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= files {
                        break;
                    }
                    let file = File {
                        seed,
                        index,
                        len,
                        key: sealed.then(|| key_of(seed, index)),
                    };
                    let done = match direction {
                        Direction::Up => upload(&client, owner, file, &mut run).await,
                        Direction::Down => match hashes.get(index).copied().flatten() {
                            Some(hash) => download(&client, hash, file, &mut run).await,
                            None => Err(SyncError::Protocol(format!(
                                "file {index} was not uploaded"
                            ))),
                        },
                    };
                    match done {
                        Ok(()) => {
                            moved.fetch_add(len as u64, Ordering::Relaxed);
                        }
                        Err(e) => {
                            run.errors += 1;
                            run.first_error.get_or_insert(e);
                        }
                    }
                }
                run
            });
        }
        let joined = tokio::time::timeout(self.timeout, async {
            let mut runs = Vec::new();
            while let Some(run) = workers.join_next().await {
                runs.push(run.map_err(|e| LoadError::Setup(format!("a worker failed: {e}")))?);
            }
            Ok::<_, LoadError>(runs)
        })
        .await;
        let wall = started.elapsed();
        let relay_cpu = self
            .relay_pid
            .and_then(cpu_time)
            .zip(relay_cpu0)
            .map(|(b, a)| b.saturating_sub(a));
        let bench_cpu = cpu_time(std::process::id())
            .zip(bench_cpu0)
            .map(|(b, a)| b.saturating_sub(a));
        let _ = stop.send(true);
        let samples = sampler
            .await
            .map_err(|e| LoadError::Setup(format!("the memory sampler failed: {e}")))?;
        let runs = match joined {
            Ok(runs) => runs?,
            Err(_) => {
                return Err(LoadError::Timeout(match direction {
                    Direction::Up => "the upload phase",
                    Direction::Down => "the download phase",
                }));
            }
        };

        let mut hashes = Arc::try_unwrap(hashes).unwrap_or_else(|shared| (*shared).clone());
        let mut latencies = Vec::new();
        let (mut errors, mut first_error, mut generating) = (0, None, Duration::ZERO);
        for run in runs {
            latencies.extend(run.latencies);
            for (index, hash) in run.stored {
                if let Some(slot) = hashes.get_mut(index) {
                    *slot = Some(hash);
                }
            }
            errors += run.errors;
            if first_error.is_none() {
                first_error = run.first_error;
            }
            generating += run.generating;
        }
        Ok((
            Phase {
                wall,
                latencies: Percentiles::of(&mut latencies),
                moved: moved.load(Ordering::Relaxed),
                errors,
                first_error,
                generating,
                relay_cpu,
                bench_cpu,
                samples,
            },
            hashes,
        ))
    }
}

/// One file of the run: what it is made from, and its key when files are sealed.
#[derive(Clone, Copy)]
struct File {
    seed: u64,
    index: usize,
    len: usize,
    key: Option<BlobKey>,
}

/// The key file `index` is sealed with (from the seed, so the download phase knows it).
fn key_of(seed: u64, index: usize) -> BlobKey {
    let mut key = [0u8; 32];
    SmallRng::seed_from_u64(!seed ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d))
        .fill_bytes(&mut key);
    BlobKey::from_bytes(key)
}

/// Makes and hashes the file (not timed), seals and hashes it again if files are
/// sealed (timed, as the app seals before it uploads), and uploads it (timed).
async fn upload(
    client: &BlobClient,
    owner: BlobOwner,
    file: File,
    run: &mut WorkerRun,
) -> Result<(), SyncError> {
    let made = Instant::now();
    let (hash, bytes) = tokio::task::spawn_blocking(move || {
        let bytes = payload(file.seed, file.index, file.len);
        (BlobHash::of(&bytes), bytes)
    })
    .await
    .map_err(|e| SyncError::Protocol(format!("payload task: {e}")))?;
    run.generating += made.elapsed();
    let started = Instant::now();
    let (hash, bytes) = match file.key {
        Some(key) => {
            blocking(move || {
                let sealed = seal::seal(&key, &bytes)?;
                Ok((BlobHash::of(&sealed), sealed))
            })
            .await?
        }
        None => (hash, bytes),
    };
    client.put(hash, owner, bytes).await?;
    run.latencies.push(started.elapsed());
    run.stored.push((file.index, hash));
    Ok(())
}

/// Downloads one blob (the client verifies it against its hash), opens it if files
/// are sealed (both timed), and checks its size.
async fn download(
    client: &BlobClient,
    hash: BlobHash,
    file: File,
    run: &mut WorkerRun,
) -> Result<(), SyncError> {
    let started = Instant::now();
    let mut bytes = client.get(hash).await?;
    if let Some(key) = file.key {
        bytes = blocking(move || seal::open_owned(&key, bytes)).await?;
    }
    run.latencies.push(started.elapsed());
    if bytes.len() != file.len {
        return Err(SyncError::Protocol(format!(
            "blob {hash}: {} bytes, expected {}",
            bytes.len(),
            file.len
        )));
    }
    Ok(())
}

/// Seals or opens on the blocking pool (4 MiB take milliseconds).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, seal::SealError> + Send + 'static,
) -> Result<T, SyncError> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SyncError::Protocol(format!("a sealing task failed: {e}")))??)
}

/// Samples memory every [`SAMPLE_EVERY`] until told to stop.
async fn sample(
    relay: Arc<Relay>,
    moved: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        samples.push(Sample {
            moved: moved.load(Ordering::Relaxed),
            relay: relay.memory(),
            bench: Memory::of_pid(std::process::id()),
        });
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
    }
    samples.push(Sample {
        moved: moved.load(Ordering::Relaxed),
        relay: relay.memory(),
        bench: Memory::of_pid(std::process::id()),
    });
    samples
}

impl Phase {
    fn mb_per_s(&self) -> f64 {
        self.moved as f64 / 1e6 / self.wall.as_secs_f64().max(1e-9)
    }

    fn json(&self, total: u64) -> Value {
        let rss = |pick: fn(&Sample) -> Option<u64>, range: &dyn Fn(&Sample) -> bool| {
            self.samples
                .iter()
                .filter(|s| range(s))
                .filter_map(pick)
                .max()
                .map(mib)
        };
        let relay = |s: &Sample| s.relay.map(|m| m.rss);
        let bench = |s: &Sample| s.bench.map(|m| m.rss);
        let half = total / 2;
        let relay_values: Vec<u64> = self.samples.iter().filter_map(relay).collect();
        json!({
            "wall_s": (self.wall.as_secs_f64() * 1e3).round() / 1e3,
            "bytes": self.moved,
            "mb_per_s": (self.mb_per_s() * 10.0).round() / 10.0,
            "mib_per_s": (self.moved as f64 / 1048576.0 / self.wall.as_secs_f64().max(1e-9) * 10.0).round() / 10.0,
            "per_file_ms": self.latencies.json(),
            "errors": self.errors,
            "goal_met": self.errors == 0 && self.mb_per_s() >= GOAL_MB_PER_S,
            "payload_generation_s": (self.generating.as_secs_f64() * 1e3).round() / 1e3,
            "cpu_s": {
                "relay": self.relay_cpu.map(seconds),
                "bench": self.bench_cpu.map(seconds),
            },
            "relay_rss_mib": {
                "samples": relay_values.len(),
                "start": relay_values.first().copied().map(mib),
                "min": relay_values.iter().min().copied().map(mib),
                "max": relay_values.iter().max().copied().map(mib),
                "end": relay_values.last().copied().map(mib),
                "max_first_half": rss(relay, &|s| s.moved < half),
                "max_second_half": rss(relay, &|s| s.moved >= half),
            },
            "bench_rss_mib_max": rss(bench, &|_| true),
        })
    }
}

/// Seconds with two decimals (CPU times come in 10 ms ticks).
fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

fn print_table(r: &Value) {
    let f = |v: &Value| match v {
        Value::Null => "–".to_owned(),
        v => v.to_string(),
    };
    let secs = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "–".to_owned(), |s| format!("{s:.2}"))
    };
    println!(
        "blobs: {} files × {} MiB = {} MiB each way, {} in flight{}",
        r["files"],
        r["file_bytes"].as_u64().unwrap_or(0) / 1048576,
        r["total_bytes"].as_u64().unwrap_or(0) / 1048576,
        r["concurrency"],
        if r["sealed"] == true {
            ", sealed (seal + upload, download + open)"
        } else {
            ""
        }
    );
    println!(
        "  {:<9} {:>8} {:>9} {:>28} {:>7} {:>15} {:>28}",
        "",
        "wall s",
        "MB/s",
        "per file p50 / p99 / max ms",
        "errors",
        "CPU relay/bench",
        "relay RSS MiB min–max (end)"
    );
    for (name, key) in [("upload", "upload"), ("download", "download")] {
        let p = &r[key];
        let l = &p["per_file_ms"];
        let m = &p["relay_rss_mib"];
        println!(
            "  {:<9} {:>8} {:>9} {:>28} {:>7} {:>15} {:>28}",
            name,
            f(&p["wall_s"]),
            f(&p["mb_per_s"]),
            format!("{} / {} / {}", f(&l["p50"]), f(&l["p99"]), f(&l["max"])),
            f(&p["errors"]),
            format!(
                "{} / {} s",
                secs(&p["cpu_s"]["relay"]),
                secs(&p["cpu_s"]["bench"])
            ),
            if m["min"].is_null() {
                "–".to_owned()
            } else {
                format!("{}–{} ({})", f(&m["min"]), f(&m["max"]), f(&m["end"]))
            },
        );
    }
    for key in ["upload", "download"] {
        let m = &r[key]["relay_rss_mib"];
        println!(
            "  relay RSS during {key}: max {} MiB over the first half, {} MiB over the second",
            f(&m["max_first_half"]),
            f(&m["max_second_half"])
        );
    }
    println!(
        "  relay RSS before {} MiB, after {} MiB, peak (VmHWM) {} MiB; bench peak {} MiB; relay data {} MiB",
        f(&r["relay_rss_mib"]["before"]),
        f(&r["relay_rss_mib"]["after"]),
        f(&r["relay_rss_mib"]["peak_vmhwm"]),
        f(&r["bench_peak_rss_mib"]),
        f(&r["relay_data_mib"]),
    );
    println!(
        "  payload generation (in the upload wall time, summed over workers): {} s",
        f(&r["upload"]["payload_generation_s"])
    );
    let met = |key: &str| match r[key]["goal_met"].as_bool() {
        Some(true) => "met",
        _ => "not met",
    };
    println!(
        "  goal ≥ {} MB/s each way: upload {}, download {}",
        r["goal_mb_per_s"],
        met("upload"),
        met("download"),
    );
}

/// The pid of this process's child named `name`, if there is one.
fn child_pid(name: &str) -> Option<u32> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
}

/// User + system CPU time of process `pid` (10 ms ticks, from `/proc/PID/stat`).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its closing paren.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_deterministic_and_distinct() {
        assert_eq!(payload(42, 3, 1000), payload(42, 3, 1000));
        assert_ne!(payload(42, 3, 1000), payload(42, 4, 1000));
        assert_ne!(payload(42, 3, 1000), payload(43, 3, 1000));
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_time(std::process::id()).is_some());
    }
}
