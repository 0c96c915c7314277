//! `doran-bench cli-sync`: what one `doran sync` costs as a whole process — start,
//! open the store, sign in, catch up, take the key logs further, close — on mom's
//! device of a family of three in the clear and on hers of a sealed family of three,
//! with the same binary and the same relay, in turn. Nothing changes between the
//! syncs, so this is the fixed cost every `doran` command that syncs pays, and what
//! a sealed family adds to it (its key log subscribed, and each sync asking the relay
//! for the family's members and their certificates before it steps the key log).
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
}

/// One family's device: its home folder.
struct Home {
    name: &'static str,
    mom: PathBuf,
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
    let (mut relay, addr) = doran_testkit::spawn(
        Command::new(&server)
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
        Ok::<_, String>(
            homes
                .iter()
                .zip(samples.iter_mut())
                .map(|(h, s)| (h.name, Percentiles::of(s)))
                .collect::<Vec<_>>(),
        )
    })();
    let _ = relay.kill();
    let _ = relay.wait();
    let rows = result?;
    if json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, p)| {
                serde_json::json!({
                    "family": name,
                    "syncs": opts.reps,
                    "p50_ms": ms(p.p50),
                    "p99_ms": ms(p.p99),
                    "max_ms": ms(p.max),
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
        for (name, p) in &rows {
            println!(
                "{:<8} {:>9.1} {:>9.1} {:>9.1}",
                name,
                ms(p.p50),
                ms(p.p99),
                ms(p.max)
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
    Ok(Home { name, mom })
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
