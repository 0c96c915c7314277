//! `doran-bench keys`: what end-to-end encryption of documents costs a device (issue
//! 18): the family key group's operations (MLS through openmls, `client-core/src/group.rs`)
//! for a family of `--devices` devices, and sealing / opening chunks of several sizes
//! beside hashing them with blake3 — the chunk id every push computes already, the
//! reference in the same run.
//!
//! Everything runs in this process, on one core: no relay is involved (it only stores
//! and orders the sealed bytes, whatever they are).

use std::time::Duration;

use clap::Args;
use doran_client_core::group::{KeyRing, KnownDevices, Processed};
use doran_client_core::keys::public_key;
use doran_protocol::{ChunkId, DeviceId, DocId, FamilyId, UserId};
use ed25519_dalek::SigningKey;

use crate::stats::{Percentiles, ms, peak_rss_bytes, timed};

/// Options of `doran-bench keys`.
#[derive(Debug, Args)]
pub struct Options {
    /// Devices in the family (five members with two or three devices each: 12).
    #[arg(long, default_value_t = 12)]
    pub devices: usize,
    /// Chunks sealed and opened per size.
    #[arg(long, default_value_t = 20_000)]
    pub chunks: usize,
}

type BoxError = Box<dyn std::error::Error>;

struct Member {
    ring: KeyRing,
}

fn random_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random())
}

/// The chunk sizes measured: a typical single-action change (a like, a tick), a
/// batch of offline edits, and a large change (a long comment thread imported).
const SIZES: [usize; 3] = [400, 4 * 1024, 64 * 1024];

/// Microseconds with two decimals.
fn us(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e8).round() / 1e2
}

pub fn run(opts: &Options, json: bool) -> Result<(), BoxError> {
    let n = opts.devices.max(2);
    let family = FamilyId::random();
    let doc = DocId::from(family);

    // The devices: five users, devices dealt round-robin.
    let users: Vec<UserId> = (0..5).map(|_| UserId::random()).collect();
    let mut known = KnownDevices::new();
    let mut vouched = Vec::with_capacity(n);
    let mut members = Vec::with_capacity(n);
    for i in 0..n {
        let key = random_key();
        let user = users[i % users.len()];
        let device = DeviceId::random();
        known.insert(user, device, public_key(&key));
        vouched.push((user, device, public_key(&key)));
        members.push(Member {
            ring: KeyRing::new(user, device, key),
        });
    }

    // The first device starts the group and adds everyone else in one Commit.
    members[0].ring.create(family)?;
    let mut package_times = Vec::new();
    let mut packages = Vec::new();
    for m in members.iter_mut().skip(1) {
        let (p, t) = timed(|| m.ring.key_packages(1));
        packages.extend(p?);
        package_times.push(t);
    }
    let (commit, add_time) = timed(|| members[0].ring.add(family, &packages, &known));
    let commit = commit?;
    members[0].ring.process(family, &commit.entry, &known)?;
    let welcome = commit.entry.clone();
    let mut join_times = Vec::new();
    for m in members.iter_mut().skip(1) {
        let (joined, t) = timed(|| m.ring.join(family, &welcome, &known));
        joined?;
        join_times.push(t);
    }

    // One device refreshes its leaf; every other device processes the Commit.
    let (update, update_time) = timed(|| members[1].ring.update(family));
    let update = update?;
    let mut process_times = Vec::new();
    for (i, m) in members.iter_mut().enumerate() {
        let (r, t) = timed(|| m.ring.process(family, &update.entry, &known));
        let r = r?;
        if i != 1 {
            process_times.push(t);
        } else if !matches!(r, Processed::Accepted { .. }) {
            return Err("the refresh was not accepted".into());
        }
    }

    // A device is removed (a revoked phone): the new epoch, for everyone left.
    let gone = members.last().map(|m| m.ring.members(family)).transpose()?;
    let gone = gone
        .and_then(|all| all.last().copied())
        .ok_or("a device to remove")?;
    // Revoked: anyone may remove it.
    for (user, device, key) in &vouched {
        if *device == gone.device {
            known.insert_revoked(*user, *device, *key);
        }
    }
    let (removal, remove_time) = timed(|| members[0].ring.remove(family, &[gone], &known));
    let removal = removal?;
    for m in members.iter_mut() {
        m.ring.process(family, &removal.entry, &known)?;
    }

    let (saved, save_time) = timed(|| members[0].ring.save());
    let saved = saved?;

    // Sealing and opening chunks, beside blake3 of the same bytes (the chunk id).
    let sealer = &members[0].ring;
    let opener = &members[1].ring;
    let mut sizes = Vec::new();
    for size in SIZES {
        let count = (opts.chunks * 400 / size).max(200);
        let chunk: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let mut seal_t = Vec::with_capacity(count);
        let mut open_t = Vec::with_capacity(count);
        let mut hash_t = Vec::with_capacity(count);
        for _ in 0..count {
            let (sealed, t) = timed(|| sealer.seal(family, doc, &chunk));
            let sealed = sealed?;
            seal_t.push(t);
            let (opened, t) = timed(|| opener.open(family, doc, &sealed));
            if opened? != chunk {
                return Err("a chunk did not round-trip".into());
            }
            open_t.push(t);
            let (_, t) = timed(|| ChunkId::of(&sealed));
            hash_t.push(t);
        }
        let total = |v: &[Duration]| v.iter().sum::<Duration>();
        let mbps = |v: &[Duration]| (size * count) as f64 / total(v).as_secs_f64().max(1e-9) / 1e6;
        sizes.push(serde_json::json!({
            "bytes": size,
            "chunks": count,
            "seal_us_p50": us(Percentiles::of(&mut seal_t).p50),
            "open_us_p50": us(Percentiles::of(&mut open_t).p50),
            "blake3_us_p50": us(Percentiles::of(&mut hash_t).p50),
            "seal_mb_s": mbps(&seal_t),
            "open_mb_s": mbps(&open_t),
            "blake3_mb_s": mbps(&hash_t),
        }));
    }

    let p = |v: &mut Vec<Duration>| {
        let p = Percentiles::of(v);
        serde_json::json!({"p50_ms": ms(p.p50), "p99_ms": ms(p.p99), "max_ms": ms(p.max)})
    };
    let report = serde_json::json!({
        "benchmark": "keys",
        "devices": n,
        "key_package_ms": p(&mut package_times),
        "add_all_commit_ms": ms(add_time),
        "add_entry_bytes": commit.entry.len(),
        "join_ms": p(&mut join_times),
        "update_commit_ms": ms(update_time),
        "update_bytes": update.entry.len(),
        "process_commit_ms": p(&mut process_times),
        "remove_commit_ms": ms(remove_time),
        "saved_ring_bytes": saved.len(),
        "save_ms": ms(save_time),
        "chunks": sizes,
        "peak_rss_mib": peak_rss_bytes() as f64 / (1024.0 * 1024.0),
    });
    if json {
        println!("{report}");
        return Ok(());
    }
    println!("family key group, {n} devices (openmls, X25519 / ChaCha20-Poly1305 / Ed25519)");
    for (name, key) in [
        ("key package", "key_package_ms"),
        ("join from the welcome", "join_ms"),
        ("process a commit", "process_commit_ms"),
    ] {
        let v = &report[key];
        println!(
            "  {name:<34} p50 {:>8.3} ms   p99 {:>8.3} ms",
            v["p50_ms"].as_f64().unwrap_or_default(),
            v["p99_ms"].as_f64().unwrap_or_default()
        );
    }
    for (name, key) in [
        ("add every other device (1 commit)", "add_all_commit_ms"),
        ("refresh own leaf (commit)", "update_commit_ms"),
        ("remove a device (commit)", "remove_commit_ms"),
        ("save the key ring", "save_ms"),
    ] {
        println!(
            "  {name:<34} {:>8.3} ms",
            report[key].as_f64().unwrap_or_default()
        );
    }
    println!(
        "  sizes: commit adding all (with its welcome) {} B, refresh {} B, saved ring {} B",
        report["add_entry_bytes"], report["update_bytes"], report["saved_ring_bytes"]
    );
    println!(
        "chunks (sealed under the epoch's document key; blake3 = the chunk id, for reference)"
    );
    println!(
        "  {:>8} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10}",
        "bytes", "seal µs", "open µs", "blake3 µs", "seal MB/s", "open MB/s", "b3 MB/s"
    );
    for c in report["chunks"].as_array().into_iter().flatten() {
        let f = |k: &str| c[k].as_f64().unwrap_or_default();
        println!(
            "  {:>8} {:>12.2} {:>12.2} {:>12.2} {:>10.0} {:>10.0} {:>10.0}",
            c["bytes"],
            f("seal_us_p50"),
            f("open_us_p50"),
            f("blake3_us_p50"),
            f("seal_mb_s"),
            f("open_mb_s"),
            f("blake3_mb_s")
        );
    }
    println!(
        "peak memory {:.1} MiB",
        report["peak_rss_mib"].as_f64().unwrap_or_default()
    );
    Ok(())
}
