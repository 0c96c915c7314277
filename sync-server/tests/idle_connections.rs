//! Idle connections against the real relay (issue 12, item 5): sockets that never
//! speak are closed or shed, and never keep `/healthz` or a real device out. And a
//! crowd connecting at once (every device after a relay restart) waits in the
//! kernel's queue for the relay to take it, rather than being dropped there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use doran_protocol::{ErrorCode, ServerFrame};
use support::{Client, Identity, Server, assert_relay_works, http};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Opens `n` TCP connections that never send a byte.
async fn idle_sockets(server: &Server, n: usize) -> Vec<TcpStream> {
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    idle
}

/// Reads until the relay closes `stream`; fails if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut got))
        .await
        .expect("the relay closes the connection in time")
        .ok();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_past_the_file_limit_lock_no_one_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A relay that may open only 256 files (and cannot raise the limit).
    let server = Server::start_with_file_limit(dir.path(), 256, &[]);
    let mut owner = Identity::new("owner@example.com", "owner");
    let mut signed_in = Client::register(&server, &mut owner).await;

    // Step 1: 400 sockets that never say anything — more than the relay has files.
    let _idle = idle_sockets(&server, 400).await;

    // Step 2: health checks and a new device still get in, and the session that was
    // signed in before the flood is still served.
    let r = http(&server, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.body), (200, b"ok\n".to_vec()));
    assert_relay_works(&server, "idle-flood").await;

    signed_in.quiet(7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_the_quietest_idle_socket_makes_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--max-connections", "16"]);
    let mut owner = Identity::new("owner@example.com", "owner");
    let mut signed_in = Client::register(&server, &mut owner).await;
    let mut idle = idle_sockets(&server, 40).await;

    let r = http(&server, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_relay_works(&server, "at-the-cap").await;
    signed_in.quiet(8).await;
    // The first idle sockets were shed to make room (closed without a word).
    assert!(
        closed_within(&mut idle[0], Duration::from_secs(5))
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_never_says_hello_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        Server::start_with_config(dir.path(), r#"{"limits":{"hello_timeout_secs":1}}"#, &[]);
    let mut c = Client::connect(&server).await;
    match c.next().await {
        Some(ServerFrame::Goodbye { reason, .. }) => assert_eq!(reason, ErrorCode::TooSlow),
        other => panic!("expected Goodbye(too_slow), got {other:?}"),
    }
    c.closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_never_signs_in_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits":{"hello_timeout_secs":1,"sign_in_timeout_secs":2}}"#,
        &[],
    );
    let mut c = Client::connect(&server).await;
    c.hello().await;
    match c.next().await {
        Some(ServerFrame::Goodbye { reason, .. }) => assert_eq!(reason, ErrorCode::TooSlow),
        other => panic!("expected Goodbye(too_slow), got {other:?}"),
    }
    c.closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_headers_never_end_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits":{"header_read_timeout_secs":1}}"#,
        &[],
    );
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: relay\r\n")
        .await
        .expect("half a request");
    closed_within(&mut slow, Duration::from_secs(5)).await;

    // A kept-alive connection that goes quiet after a request is closed the same way.
    let mut kept = TcpStream::connect(server.addr).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: relay\r\n\r\n")
        .await
        .expect("a request");
    let answer = closed_within(&mut kept, Duration::from_secs(5)).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

/// Stops the relay's process (SIGSTOP) until dropped (SIGCONT), failing or not.
struct Stopped(u32);

impl Stopped {
    fn new(server: &Server) -> Stopped {
        signal(server.pid(), "-STOP");
        Stopped(server.pid())
    }
}

impl Drop for Stopped {
    /// Without asserting: a panic while a failed test unwinds would abort the run.
    fn drop(&mut self) {
        let _ = kill(self.0, "-CONT");
    }
}

fn signal(pid: u32, which: &str) {
    assert!(kill(pid, which), "kill {which} {pid}");
}

fn kill(pid: u32, which: &str) -> bool {
    std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// A relay restart has every device connect again at the same moment. The kernel
/// completes their handshakes and queues them while the relay is busy (here: not
/// running at all); a queue of 128, as a listener gets by default, dropped the rest,
/// and each dropped device waited a second (then three, then seven) to try again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_connecting_at_once_waits_in_the_queue_rather_than_being_dropped() {
    // Well past the default queue of 128, well within the open files a test may hold.
    const CROWD: usize = 300;
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if somaxconn < CROWD {
        eprintln!(
            "ignored: net.core.somaxconn is {somaxconn}, so the kernel caps every queue below the crowd"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let crowd = {
        let _stopped = Stopped::new(&server);
        let connects = (0..CROWD).map(|_| async {
            // A dropped handshake is tried again after a second: well past this.
            tokio::time::timeout(Duration::from_millis(700), TcpStream::connect(server.addr)).await
        });
        let done = futures_util::future::join_all(connects).await;
        let queued = done.iter().filter(|c| matches!(c, Ok(Ok(_)))).count();
        assert_eq!(
            queued, CROWD,
            "every handshake completed while the relay was stopped"
        );
        done
    };
    // Running again, the relay takes them all: one of them is served.
    let mut first = crowd
        .into_iter()
        .next()
        .and_then(|c| c.ok()?.ok())
        .expect("a connection");
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = closed_within(&mut first, Duration::from_secs(10)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
