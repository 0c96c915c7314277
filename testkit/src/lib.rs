//! Starting the real `doran-server` binary, as the tests of every crate and the load
//! generator do: on `--listen 127.0.0.1:0`, then reading the address it actually bound
//! from its first line on stdout, `listening on http://ADDR` (`https://` with TLS).
//!
//! Only the start-up handshake lives here; each caller keeps its own handle around the
//! child (kill on drop, restart, SIGTERM), since those differ by what they test.

use std::{
    io::{self, BufRead, BufReader},
    net::SocketAddr,
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
