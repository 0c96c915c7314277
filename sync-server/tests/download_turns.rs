//! Downloads per client address, against the real relay over real sockets: one
//! address's downloads nobody reads hold that address's turns and no more; another
//! address downloads at once; a download past the cap waits for a turn, and gets one
//! as soon as one ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use doran_protocol::ErrorCode;
use support::{Client, HttpResponse, Identity, Server, http, signed_headers};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Two downloads at once per address, a wait of up to 3 s for a turn; the relay
/// trusts the loopback proxy, so `X-Forwarded-For` names the client; a stalled
/// download is never closed by the relay here (the attacker's best case).
const CONFIG: &str = r#"{"trusted_proxies":["127.0.0.1"],"limits":{
    "max_downloads_per_address": 2,
    "download_wait_secs": 3,
    "write_stall_secs": 0
}}"#;

const ATTACKER: &str = "203.0.113.7";
const NEIGHBOUR: &str = "198.51.100.9";

/// Sends a signed kept-alive download of `path` from `from` on `stream`.
async fn ask(stream: &mut TcpStream, id: &Identity, path: &str, from: &str) {
    let mut head = format!("GET {path} HTTP/1.1\r\nhost: relay\r\n");
    for (name, value) in signed_headers(id, "GET", path) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("x-forwarded-for: {from}\r\n\r\n"));
    stream
        .write_all(head.as_bytes())
        .await
        .expect("the request");
}

/// Starts a signed download of `path` from `from` and reads only the head of the
/// answer; the connection is then left unread (the relay's side stays blocked on a
/// full socket buffer).
async fn stalled_download(server: &Server, id: &Identity, path: &str, from: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    ask(&mut stream, id, path, from).await;
    let mut first = vec![0u8; 16 * 1024];
    let n = stream.read(&mut first).await.expect("the answer starts");
    let text = String::from_utf8_lossy(&first[..n.min(200)]).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    stream
}

/// A whole signed download of `path` from `from`.
async fn download(server: &Server, id: &Identity, path: &str, from: &str) -> HttpResponse {
    let mut headers = signed_headers(id, "GET", path);
    headers.push(("x-forwarded-for".into(), from.into()));
    http(server, "GET", path, &headers, b"").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_nobody_reads_hold_their_address_s_turns_and_no_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(dir.path(), CONFIG, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut mom).await;
    let (blob, path) = support::a_large_blob(&server, &mom).await;

    // Step 1: two downloads from one address, left unread, hold its two turns.
    let first = stalled_download(&server, &mom, &path, ATTACKER).await;
    let _second = stalled_download(&server, &mom, &path, ATTACKER).await;

    // Step 2: a third from that address waits for a turn, then is refused.
    let asked = Instant::now();
    let r = download(&server, &mom, &path, ATTACKER).await;
    assert_eq!(
        (r.status, r.error_code()),
        (429, Some(ErrorCode::RateLimited)),
        "{:?}",
        (r.status, r.header("x-doran-error"))
    );
    assert!(
        asked.elapsed() >= Duration::from_secs(2),
        "it waited for a turn first"
    );

    // Step 3: another address downloads the whole blob meanwhile.
    let r = download(&server, &mom, &path, NEIGHBOUR).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), blob.len());

    // Step 4: one of the stalled downloads ends; a download from that address that
    // was waiting gets its turn and the whole blob.
    let waiting = {
        let server_addr = server.addr;
        let mom = mom.clone();
        let path = path.clone();
        tokio::spawn(async move {
            let mut headers = signed_headers(&mom, "GET", &path);
            headers.push(("x-forwarded-for".into(), ATTACKER.into()));
            support::http_to(server_addr, "GET", &path, &headers, b"").await
        })
    };
    drop(first);
    let r = waiting.await.expect("the waiting download");
    assert_eq!(r.status, 200, "{:?}", r.header("x-doran-error"));
    assert_eq!(r.body.len(), blob.len());
}

/// Reads one whole answer (head and `content-length` bytes of body) from a
/// kept-alive connection; returns its status.
async fn read_answer(stream: &mut TcpStream) -> u16 {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + len {
                return head[9..12].parse().expect("a status");
            }
        }
        let n = stream.read(&mut buf).await.expect("the answer");
        assert!(n > 0, "the relay closed the connection");
        raw.extend_from_slice(&buf[..n]);
    }
}

/// A download's turn is its connection's until the connection ends, not until its
/// body is handed to the connection's buffer, nor until the next request comes (a
/// reader that stopped would leave those bytes pinned, and hyper reads a pipelined
/// request before they are sent): a kept-alive connection holds it while idle and
/// through other requests, hands it on to its own next download (never waiting for
/// itself), and gives it back when it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_s_turn_is_its_connection_s_until_it_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{"trusted_proxies":["127.0.0.1"],"limits":{
        "max_downloads_per_address": 1,
        "download_wait_secs": 1
    }}"#;
    let server = Server::start_with_config(dir.path(), config, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut mom).await;
    let avatar = vec![5u8; 1000];
    let hash = doran_protocol::BlobHash::of(&avatar);
    let put = support::signed_http(
        &server,
        &mom,
        "PUT",
        &format!("/blobs/{hash}?owner=me"),
        &avatar,
    )
    .await;
    assert_eq!(put.status, 201, "{put:?}");
    let path = format!("/blobs/{hash}");

    // Step 1: a kept-alive connection downloads the blob whole, then idles.
    let mut kept = TcpStream::connect(server.addr).await.expect("connect");
    ask(&mut kept, &mom, &path, ATTACKER).await;
    assert_eq!(read_answer(&mut kept).await, 200);

    // Step 2: another request on the kept connection (no download) leaves the turn
    // held: another connection from that address finds it taken.
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: relay\r\n\r\n")
        .await
        .expect("a second request");
    assert_eq!(read_answer(&mut kept).await, 200);
    let r = download(&server, &mom, &path, ATTACKER).await;
    assert_eq!(
        (r.status, r.error_code()),
        (429, Some(ErrorCode::RateLimited))
    );

    // Step 3: the kept connection's next download takes its turn over, at once.
    ask(&mut kept, &mom, &path, ATTACKER).await;
    assert_eq!(read_answer(&mut kept).await, 200);

    // Step 4: closed, it holds nothing.
    drop(kept);
    let r = download(&server, &mom, &path, ATTACKER).await;
    assert_eq!(r.status, 200, "{:?}", r.header("x-doran-error"));
    assert_eq!(r.body, avatar);
}
