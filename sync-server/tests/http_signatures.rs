//! Signed blob requests against the real relay (issue 12, item 8): a signature names
//! its relay, and remembering signatures costs bounded memory whatever the rate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{BlobHash, ErrorCode};
use support::{
    Client, Identity, SERVER_ID, Server, TIMEOUT, a_large_blob, http, now_ms, signed_headers,
    signed_http,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_signed_for_another_relay_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut mom).await;

    // The relay says its id, the one its challenges carry.
    let r = http(&server, "GET", "/server-id", &[], b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, SERVER_ID.as_bytes()));

    // A request captured at (or signed for) another relay does not verify here.
    let path = format!("/blobs/{}", BlobHash::of(b"anything"));
    let time = now_ms();
    let sig = mom.sign_device(&doran_server::auth::http_message(
        "another-relay",
        "GET",
        &path,
        time,
    ));
    let headers = vec![
        ("x-doran-device".to_owned(), mom.device.to_string()),
        ("x-doran-time".to_owned(), time.to_string()),
        ("x-doran-signature".to_owned(), sig.to_string()),
    ];
    let r = http(&server, "GET", &path, &headers, b"").await;
    assert_eq!(
        (r.status, r.error_code()),
        (401, Some(ErrorCode::BadSignature))
    );
    // Signed for this relay, the same request is served (404: no such blob).
    assert_eq!(
        signed_http(&server, &mom, "GET", &path, b"").await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_of_signed_requests_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits":{"http_replay_cache_max":20}}"#,
        &[],
    );
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut mom).await;
    let path = format!("/blobs/{}", BlobHash::of(b"anything"));
    for i in 0..20 {
        let r = signed_http(&server, &mom, "GET", &path, b"").await;
        assert_eq!(r.status, 404, "request {i}");
    }
    // The 21st distinct signature within the window is refused, busy, with a hint.
    let r = signed_http(&server, &mom, "GET", &path, b"").await;
    assert_eq!(
        (r.status, r.error_code()),
        (503, Some(ErrorCode::Busy)),
        "{r:?}"
    );
    assert!(r.header("retry-after").is_some());
}

/// One account flooding signed requests gets `busy` once it holds its share of the
/// relay's memory of signatures; another account's requests are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_cannot_stop_everyone_s_blobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits":{"http_replay_cache_max":40,"http_replay_per_user":20}}"#,
        &[],
    );
    let mut flooder = Identity::new("flood@example.com", "flooder");
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut flooder).await;
    Client::register(&server, &mut mom).await;
    let path = format!("/blobs/{}", BlobHash::of(b"anything"));
    for i in 0..20 {
        let r = signed_http(&server, &flooder, "GET", &path, b"").await;
        assert_eq!(r.status, 404, "request {i}");
    }
    let r = signed_http(&server, &flooder, "GET", &path, b"").await;
    assert_eq!(
        (r.status, r.error_code()),
        (503, Some(ErrorCode::Busy)),
        "{r:?}"
    );
    assert!(r.header("retry-after").is_some());
    for i in 0..20 {
        let r = signed_http(&server, &mom, "GET", &path, b"").await;
        assert_eq!(r.status, 404, "mom's request {i} is served");
    }
}

/// A download whose reader stops taking bytes is closed once the relay has waited
/// `write_stall_secs` for it, instead of holding the relay's buffers for as long as the
/// reader likes (the reader then gets what the kernel's buffers held, and the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_nobody_reads_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(dir.path(), r#"{"limits":{"write_stall_secs":1}}"#, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut mom).await;
    let (blob, path) = a_large_blob(&server, &mom).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
        server.addr
    );
    for (n, v) in signed_headers(&mom, "GET", &path) {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut first = vec![0u8; 64 * 1024];
    let n = stream.read(&mut first).await.expect("the answer starts");
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n.min(200)])
    );
    // The reader stops for three times the limit: the stimulus, not a wait for an
    // event.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut rest = Vec::new();
    // The relay has closed the connection: reading ends (with what was in flight).
    let _ = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest))
        .await
        .expect("the relay ended the stalled download");
    assert!(
        n + rest.len() < blob.len(),
        "the whole blob came after the stall ({} bytes)",
        n + rest.len()
    );
}
