//! The relay under load: either a `doran-server` process this run starts on a
//! temporary data directory on loopback, or one given with `--server URL`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
};

use tempfile::TempDir;

use super::LoadError;

/// The limits a load run starts its own relay with. Every virtual device connects from
/// 127.0.0.1, so the per-address caps (connections, registrations, the lookups each
/// registration takes) must cover all of them, and the relay-wide connection cap too;
/// the per-connection frame rate is raised because a virtual device sends as fast as
/// the relay answers (a person taps a few times a second); one account's share of the
/// relay's memory of signed requests is raised because `blobs` moves up to 100 000
/// files as one account. Everything else — sizes, quotas, queue lengths, durability —
/// is the relay's default.
const BENCH_CONFIG: &str = r#"{
  "limits": {
    "max_connections_per_ip": 100000,
    "max_connections": 100000,
    "registrations_per_hour_per_address": 1000000,
    "lookups_per_minute_per_address": 1000000,
    "frames_per_second": 100000,
    "frame_burst": 100000,
    "max_concurrent_uploads": 64,
    "max_uploads_per_account": 64,
    "max_uploads_per_address": 64,
    "max_downloads_per_address": 100000,
    "http_replay_per_user": 100000
  }
}"#;

/// Which relay a run talks to.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayOptions {
    /// Use a running relay (`http://HOST:PORT`) instead of starting one. It must allow
    /// as many connections from this address as the run opens.
    #[arg(long)]
    pub server: Option<String>,
    /// The `doran-server` binary to start (default: next to this binary).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// The started relay's `limits.park_idle_ms` (how long a websocket stays idle
    /// before it is parked without its buffers); the relay's default if not given
    /// (relays before that setting refuse it).
    #[arg(long)]
    pub park_idle_ms: Option<u64>,
    /// The started relay's `limits.http_session_key_secs` (0: it gives no session
    /// keys, and the devices sign every HTTP request, as before session keys); the
    /// relay's default if not given (relays before that setting refuse it).
    #[arg(long)]
    pub http_session_key_secs: Option<u64>,
}

/// A relay for one run; a started process is killed on drop.
#[derive(Debug)]
pub struct Relay {
    /// Where it listens (`host:port`); a restart listens there again.
    pub addr: SocketAddr,
    /// The started process (`None` for `--server`); replaced by a restart.
    child: Mutex<Option<Child>>,
    /// How it was started: the binary and its config file.
    started: Option<(PathBuf, PathBuf)>,
    _data: Option<TempDir>,
}

impl Relay {
    /// Starts a relay or connects to the one in `opts`.
    pub fn start(opts: &RelayOptions) -> Result<Relay, LoadError> {
        if let Some(url) = &opts.server {
            let host = url
                .trim_start_matches("http://")
                .trim_start_matches("ws://")
                .trim_end_matches('/');
            let addr = host.parse().map_err(|_| {
                LoadError::Setup(format!("--server wants http://IP:PORT, got {url}"))
            })?;
            return Ok(Relay {
                addr,
                child: Mutex::new(None),
                started: None,
                _data: None,
            });
        }
        let bin = match &opts.server_bin {
            Some(p) => p.clone(),
            None => sibling_binary("doran-server")?,
        };
        let data = tempfile::tempdir()?;
        let config = data.path().join("bench-relay.json");
        let mut text = BENCH_CONFIG.to_owned();
        for (name, value) in [
            ("park_idle_ms", opts.park_idle_ms),
            ("http_session_key_secs", opts.http_session_key_secs),
        ] {
            if let Some(value) = value {
                text = text.replacen(
                    "\"limits\": {",
                    &format!("\"limits\": {{\n    \"{name}\": {value},"),
                    1,
                );
            }
        }
        std::fs::write(&config, text)?;
        spawn(&bin, data, &config)
    }

    /// The websocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The HTTP base URL.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(Child::id)
    }

    /// The started relay's memory (`None` for `--server`).
    pub fn memory(&self) -> Option<Memory> {
        Memory::of_pid(self.pid()?)
    }

    /// CPU time the started relay has used so far (`None` for `--server`).
    pub fn cpu(&self) -> Option<std::time::Duration> {
        cpu_of(&self.pid()?.to_string())
    }

    /// Kills the started relay with SIGKILL — no goodbye, no shutdown, as a crash or
    /// a power cut would — and starts it again on the same data directory and
    /// address. Blocks until it listens again.
    pub fn kill_and_restart(&self) -> Result<(), LoadError> {
        let Some((bin, config)) = &self.started else {
            return Err(LoadError::Setup(
                "only a relay this run started can be killed".into(),
            ));
        };
        let data = self
            ._data
            .as_ref()
            .ok_or_else(|| LoadError::Setup("no data directory".into()))?;
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mut old) = child.take() {
            old.kill()?; // SIGKILL on Unix
            old.wait()?;
        }
        // The port was just freed; binding it again may take a moment.
        let mut last = None;
        for _ in 0..50 {
            match start(bin, data.path(), config, &self.addr.to_string()) {
                Ok((new, _)) => {
                    *child = Some(new);
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
        Err(last.unwrap_or_else(|| LoadError::Setup("the relay did not restart".into())))
    }

    /// A gauge or counter from the relay's `/metrics` (`None` if the relay does not
    /// export it, e.g. an older build, or cannot be reached).
    pub fn metric(&self, name: &str) -> Option<u64> {
        use std::io::{Read as _, Write as _};
        let mut tcp = std::net::TcpStream::connect(self.addr).ok()?;
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .ok()?;
        let request = format!(
            "GET /metrics HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            self.addr
        );
        tcp.write_all(request.as_bytes()).ok()?;
        let mut text = String::new();
        tcp.read_to_string(&mut text).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The size of the relay's data directory in bytes (`None` for `--server`).
    pub fn data_bytes(&self) -> Option<u64> {
        self._data.as_ref().map(|d| dir_bytes(d.path()))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(
    bin: &Path,
    data: &Path,
    config: &Path,
    listen: &str,
) -> Result<(Child, SocketAddr), LoadError> {
    doran_testkit::spawn(
        Command::new(bin)
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(config)
            .args(["--listen", listen, "--server-id", "bench-relay"])
            .env("DORAN_LOG", "warn")
            .stderr(Stdio::inherit()),
    )
    .map_err(|e| LoadError::Setup(format!("cannot start {}: {e}", bin.display())))
}

fn spawn(bin: &Path, data: TempDir, config: &Path) -> Result<Relay, LoadError> {
    let (child, addr) = start(bin, data.path(), config, "127.0.0.1:0")?;
    Ok(Relay {
        addr,
        child: Mutex::new(Some(child)),
        started: Some((bin.to_path_buf(), config.to_path_buf())),
        _data: Some(data),
    })
}

/// `name` in the directory of the running binary (cargo puts every binary of the
/// workspace in one target directory).
fn sibling_binary(name: &str) -> Result<PathBuf, LoadError> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(LoadError::Setup(format!(
            "{} not found; build it (cargo build --release -p doran-server) or pass --server-bin",
            path.display()
        )))
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Now (VmRSS), bytes.
    pub rss: u64,
    /// Peak (VmHWM), bytes.
    pub peak: u64,
}

impl Memory {
    /// The memory of process `pid`; `None` where `/proc` cannot tell.
    pub fn of_pid(pid: u32) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        };
        Some(Memory {
            rss: field("VmRSS:")?,
            peak: field("VmHWM:")?,
        })
    }
}

/// CPU time (user + system) of process `pid` (or `self`).
pub fn cpu_of(pid: &str) -> Option<std::time::Duration> {
    let [user, system, ..] = crate::stats::cpu_ticks(pid)?;
    Some(crate::stats::ticks(user + system))
}
