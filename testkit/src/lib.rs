//! Starting the real `doran-server` binary, as the tests of every crate and the load
//! generator do: on `--listen 127.0.0.1:0`, then reading the address it actually bound
//! from its first line on stdout, `listening on http://ADDR` (`https://` with TLS).
//!
//! [`spawn`] is the start-up handshake; [`Relay`] is a handle for end-to-end tests
//! (kill on drop, kill -9, restart on the same data and address, extra arguments such
//! as TLS); [`binary`] finds the workspace's binaries next to the test executable;
//! [`Balancer`] is nginx in front of several relays, configured as `scripts/cluster`
//! runs it.

use std::{
    io::{self, BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

/// The address in the relay's first stdout line, for either scheme.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let url = line.trim().strip_prefix("listening on ")?;
    url.strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?
        .parse()
        .ok()
}

/// Spawns `relay` (a `doran-server` command; its stdout is taken over) and waits for
/// the line saying where it listens. If it exits or says something else first, it is
/// killed and the error says what it printed.
pub fn spawn(relay: &mut Command) -> io::Result<(Child, SocketAddr)> {
    let mut child = relay.stdout(Stdio::piped()).spawn()?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other("the relay has no stdout"));
    };
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    match read.ok().and_then(|_| listening_addr(&line)) {
        Some(addr) => Ok((child, addr)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(io::Error::other(format!(
                "the relay did not start (first line {line:?})"
            )))
        }
    }
}

/// A binary of this workspace (`doran-server`, `doran`), from the target directory the
/// test executable runs in (`cargo test --workspace` builds them there); built now with
/// cargo if it is missing (a crate's tests run alone).
pub fn binary(name: &str) -> PathBuf {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let find = || {
        let exe = std::env::current_exe().ok()?;
        exe.ancestors()
            .skip(1)
            .take(3)
            .map(|dir| dir.join(&file))
            .find(|p| p.is_file())
    };
    if let Some(found) = find() {
        return found;
    }
    let package = match name {
        "doran-server" => "doran-server",
        "doran" => "doran-cli",
        other => other,
    };
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", package, "--bin", name])
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "building {name} (package {package}) failed"
    );
    find().unwrap_or_else(|| panic!("{file} was not built next to the test binary"))
}

/// A `doran-server` process on loopback for end-to-end tests, SIGKILLed on drop.
#[derive(Debug)]
pub struct Relay {
    child: Option<Child>,
    data: PathBuf,
    addr: SocketAddr,
    args: Vec<String>,
    scheme: &'static str,
}

impl Relay {
    /// Starts the relay with its data in `data`, on `listen` (`127.0.0.1:0` for a free
    /// port), and waits until it listens.
    pub fn start(data: &Path, listen: &str) -> Relay {
        Relay::start_with(data, listen, &[])
    }

    /// Like [`start`](Self::start), with extra arguments (`--tls-cert`, limits…).
    pub fn start_with(data: &Path, listen: &str, args: &[&str]) -> Relay {
        let tls = args.contains(&"--tls-cert");
        let (child, addr) = spawn(
            Command::new(binary("doran-server"))
                .arg("--data-dir")
                .arg(data)
                .args(["--listen", listen])
                .args(args)
                .env("DORAN_LOG", "warn")
                .stderr(Stdio::null()),
        )
        .unwrap_or_else(|e| panic!("the relay starts: {e}"));
        Relay {
            child: Some(child),
            data: data.to_owned(),
            addr,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            scheme: if tls { "https" } else { "http" },
        }
    }

    /// The relay's base URL (`http://127.0.0.1:PORT`, or `https://localhost:PORT` with
    /// TLS, matching a certificate for `localhost`).
    pub fn url(&self) -> String {
        if self.scheme == "https" {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's data folder.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it is running.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: no graceful shutdown, whatever it was doing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again (after [`kill`](Self::kill), or killing it now) on the same data,
    /// address and arguments.
    pub fn restart(&mut self) {
        self.kill();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        *self = Relay::start_with(&self.data.clone(), &self.addr.to_string(), &args);
    }
}

impl Relay {
    /// Kills the relay and starts it on the same data at `listen` instead (e.g. to
    /// put a proxy on its old address).
    pub fn move_to(&mut self, listen: &str) {
        self.kill();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        *self = Relay::start_with(&self.data.clone(), listen, &args);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// nginx as the load balancer in front of relays, from the same configuration as
/// `scripts/cluster` (`scripts/lib/nginx.conf.in`): websocket upgrades, keep-alive to
/// the relays, `X-Forwarded-For`. Stopped (gracefully, workers included) on drop.
#[derive(Debug)]
pub struct Balancer {
    child: Option<Child>,
    port: u16,
}

impl Balancer {
    /// The nginx binary: `DORAN_NGINX`, else Debian's; `None` if there is none.
    pub fn nginx() -> Option<PathBuf> {
        std::env::var_os("DORAN_NGINX")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")))
            .filter(|p| p.is_file())
    }

    /// Starts nginx in `dir` (its configuration, pid file, logs and temporary files)
    /// on a free loopback port, in front of `relays`, and waits until it answers.
    pub fn start(relays: &[SocketAddr], dir: &Path) -> io::Result<Balancer> {
        let nginx = Balancer::nginx().ok_or_else(|| io::Error::other("nginx is not installed"))?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let upstreams: Vec<String> = relays
            .iter()
            .map(|r| format!("        server {r} max_fails=1 fail_timeout=2s;"))
            .collect();
        let user = if is_root() { "user root root;" } else { "" };
        let conf = include_str!("../../scripts/lib/nginx.conf.in")
            .replace("@DIR@", &dir.display().to_string())
            .replace("@PORT@", &port.to_string())
            .replace("@USER@", user)
            .replace("@UPSTREAMS@", &upstreams.join("\n"));
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut balancer = Balancer {
            child: Some(child),
            port,
        };
        // Listening once a connection is accepted; nginx exits at once on a bad
        // configuration.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(balancer);
            }
            if let Some(child) = balancer.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(io::Error::other(format!("nginx exited: {status}")));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(io::Error::other("nginx did not start listening"))
    }

    /// The balancer's URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT: nginx stops its workers too (SIGKILL would orphan them).
            let _ = Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// Whether this process runs as root (nginx then needs to be told to keep its workers
/// as root, or they could not write its temporary files).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_schemes_and_nothing_else() {
        let addr: SocketAddr = "127.0.0.1:7070".parse().expect("an address");
        assert_eq!(
            listening_addr("listening on http://127.0.0.1:7070\n"),
            Some(addr)
        );
        assert_eq!(
            listening_addr("listening on https://127.0.0.1:7070"),
            Some(addr)
        );
        assert_eq!(listening_addr("listening on ftp://127.0.0.1:7070"), None);
        assert_eq!(listening_addr("doran-server: address in use"), None);
        assert_eq!(listening_addr(""), None);
    }
}
