//! `doran-bench cli-sync`: what one `doran sync` costs as a whole process — start,
//! open the store, sign in, catch up, take the key logs further, close — on mom's
//! device of a family of three in the clear and on hers of a sealed family of three,
//! with the same binary and the same relay, in turn. Nothing changes between the
//! syncs, so this is the fixed cost every `doran` command that syncs pays, and what
//! a sealed family adds to it (its key log subscribed, and each sync asking the relay
//! for the family's members and their certificates before it steps the key log).
//! Then, per family, what an invite costs: `doran invite send` (in a sealed family it
//! adds the invitee's devices from the key packages they published, and sends the
//! history) and the invitee's `doran invite accept`, and whether the invitee reads
//! the family right after with nobody else online.
//!
//! Needs `doran` and `doran-server` built next to this binary (`cargo build --release
//! -p doran-cli -p doran-server`); `--doran PATH` times another `doran` (an older
//! build) against the same relay and homes.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::stats::{Percentiles, ms};

/// Options of `doran-bench cli-sync`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Syncs timed per family (p50 and p99 reported).
    #[arg(long, default_value_t = 30)]
    reps: usize,
    /// The `doran` to time (default: the one next to this binary).
    #[arg(long)]
    doran: Option<PathBuf>,
    /// Invites timed per family after the syncs: `doran invite send` on mom's device
    /// (a sealed family's adds the invitee's devices as it invites), then `doran
    /// invite accept` and `doran export` on the invitee's, with mom's device idle.
    #[arg(long, default_value_t = 10)]
    invites: usize,
}

/// One family's device: its home folder.
struct Home {
    name: &'static str,
    mom: PathBuf,
    family: String,
}

/// What the invites of one family cost, and how many invitees read the family at
/// once (its mission in their `doran export` right after accepting).
struct Invites {
    send: Percentiles,
    accept: Percentiles,
    read_at_once: usize,
}

/// Mom invites `n` new accounts into `home`'s family; each accepts and reads.
fn invites(doran: &Path, dir: &Path, url: &str, home: &Home, n: usize) -> Result<Invites, String> {
    let (mut send, mut accept) = (Vec::new(), Vec::new());
    let mut read_at_once = 0;
    for i in 0..n {
        let who = dir.join(format!("{}-invitee-{i}", home.name));
        let email = format!("{}-invitee-{i}@example.com", home.name);
        cli(
            doran,
            &who,
            &[
                "account", "create", "--server", url, "--email", &email, "--name", "조카",
            ],
        )?;
        let called = format!("조카{i}");
        let t = Instant::now();
        let invite = cli(
            doran,
            &home.mom,
            &["invite", "send", &home.family, &email, "--as", &called],
        )?;
        send.push(t.elapsed());
        let t = Instant::now();
        cli(doran, &who, &["invite", "accept", &invite])?;
        accept.push(t.elapsed());
        if cli(doran, &who, &["export", &home.family])?.contains("화분에 물 주기") {
            read_at_once += 1;
        }
    }
    Ok(Invites {
        send: Percentiles::of(&mut send),
        accept: Percentiles::of(&mut accept),
        read_at_once,
    })
}

pub fn run(opts: &Options, json: bool) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin_dir = exe.parent().ok_or("no folder")?;
    let doran = opts.doran.clone().unwrap_or_else(|| bin_dir.join("doran"));
    let server = bin_dir.join("doran-server");
    if !doran.is_file() || !server.is_file() {
        return Err(format!(
            "`doran` and `doran-server` are not built in {} \
             (cargo build --release -p doran-cli -p doran-server)",
            bin_dir.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // Every account and lookup comes from one address within a minute: the relay's
    // limits on sign-ups and directory lookups per address are not what is measured.
    let config = dir.path().join("relay.json");
    std::fs::write(
        &config,
        r#"{ "limits": { "registrations_per_hour_per_address": 10000,
                         "lookups_per_minute_per_account": 10000,
                         "lookups_per_minute_per_address": 10000 } }"#,
    )
    .map_err(|e| e.to_string())?;
    let (mut relay, addr) = doran_testkit::spawn(
        Command::new(&server)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("relay"))
            .args(["--listen", "127.0.0.1:0"])
            .env("DORAN_LOG", "warn")
            .stderr(Stdio::null()),
    )
    .map_err(|e| e.to_string())?;
    let url = format!("http://{addr}");
    let result = (|| {
        let homes = [
            family(&doran, dir.path(), &url, "clear", false)?,
            family(&doran, dir.path(), &url, "sealed", true)?,
        ];
        let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); homes.len()];
        // One untimed round warms the page cache and the binary.
        for round in 0..=opts.reps {
            for (home, times) in homes.iter().zip(samples.iter_mut()) {
                let t = Instant::now();
                cli(&doran, &home.mom, &["sync"])?;
                if round > 0 {
                    times.push(t.elapsed());
                }
            }
        }
        let syncs: Vec<_> = homes
            .iter()
            .zip(samples.iter_mut())
            .map(|(h, s)| (h.name, Percentiles::of(s)))
            .collect();
        let invited = homes
            .iter()
            .map(|h| invites(&doran, dir.path(), &url, h, opts.invites))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, String>(syncs.into_iter().zip(invited).collect::<Vec<_>>())
    })();
    let _ = relay.kill();
    let _ = relay.wait();
    let rows = result?;
    if json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|((name, p), inv)| {
                serde_json::json!({
                    "family": name,
                    "syncs": opts.reps,
                    "p50_ms": ms(p.p50),
                    "p99_ms": ms(p.p99),
                    "max_ms": ms(p.max),
                    "invites": opts.invites,
                    "invite_send_p50_ms": ms(inv.send.p50),
                    "invite_send_max_ms": ms(inv.send.max),
                    "accept_p50_ms": ms(inv.accept.p50),
                    "accept_max_ms": ms(inv.accept.max),
                    "read_at_once": inv.read_at_once,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
    } else {
        println!(
            "doran sync, whole process, mom's device in a family of three ({} syncs each, in turn)",
            opts.reps
        );
        println!(
            "{:<8} {:>9} {:>9} {:>9}",
            "family", "p50 ms", "p99 ms", "max ms"
        );
        for ((name, p), _) in &rows {
            println!(
                "{:<8} {:>9.1} {:>9.1} {:>9.1}",
                name,
                ms(p.p50),
                ms(p.p99),
                ms(p.max)
            );
        }
        println!(
            "\ninvites, whole processes ({} per family): mom's `invite send`, the invitee's \
             `invite accept`, and whether the invitee's `export` right after has the mission",
            opts.invites
        );
        println!(
            "{:<8} {:>10} {:>10} {:>11} {:>11} {:>13}",
            "family", "send p50", "send max", "accept p50", "accept max", "read at once"
        );
        for ((name, _), inv) in &rows {
            println!(
                "{:<8} {:>10.1} {:>10.1} {:>11.1} {:>11.1} {:>10}/{}",
                name,
                ms(inv.send.p50),
                ms(inv.send.max),
                ms(inv.accept.p50),
                ms(inv.accept.max),
                inv.read_at_once,
                opts.invites
            );
        }
    }
    Ok(())
}

/// Mom, her son and her husband in a family (sealed or not) with a mission, everyone
/// let in and caught up; mom's device is the one timed.
fn family(
    doran: &Path,
    dir: &Path,
    url: &str,
    name: &'static str,
    sealed: bool,
) -> Result<Home, String> {
    let home = |who: &str| dir.join(format!("{name}-{who}"));
    let (mom, son, dad) = (home("mom"), home("son"), home("dad"));
    for (h, who, nick) in [
        (&mom, "mom", "엄마곰"),
        (&son, "son", "아들곰"),
        (&dad, "dad", "아빠곰"),
    ] {
        let email = format!("{name}-{who}@example.com");
        cli(
            doran,
            h,
            &[
                "account", "create", "--server", url, "--email", &email, "--name", nick,
            ],
        )?;
    }
    let mut create = vec!["family", "create", "우리 가족", "--as", "엄마"];
    if !sealed {
        // The command line seals by default.
        create.push("--clear");
    }
    let family = cli(doran, &mom, &create)?;
    cli(doran, &mom, &["mission", "add", &family, "화분에 물 주기"])?;
    for (h, who, called) in [(&son, "son", "아들"), (&dad, "dad", "아빠")] {
        let email = format!("{name}-{who}@example.com");
        let invite = cli(
            doran,
            &mom,
            &["invite", "send", &family, &email, "--as", called],
        )?;
        cli(doran, h, &["invite", "accept", &invite])?;
    }
    // Mom's sync lets them in (a sealed family); theirs open it.
    for h in [&mom, &son, &dad, &mom] {
        cli(doran, h, &["sync"])?;
    }
    Ok(Home { name, mom, family })
}

/// Runs `doran --home HOME ARGS…`; its trimmed output, or why it failed.
pub(crate) fn cli(doran: &Path, home: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(doran)
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "doran {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
