//! Idle connections are parked without their websocket buffers (issue 17): a parked
//! device still pushes, gets deliveries, pings and the shutdown goodbye, and no byte
//! it sends around a park is lost or read twice. The relay parks after 50 ms here;
//! the tests wait for its `doran_connections_parked` gauge and `doran_parks_total`
//! counter, never for a fixed time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use doran_protocol::{ClientFrame, ErrorCode, ServerFrame, codec};
use support::{Client, Identity, Server, metric, until_metric};
use tokio::io::AsyncWriteExt;

const PARK_FAST: &str = r#"{"limits":{"park_idle_ms":50}}"#;

/// Waits until exactly `n` connections are parked.
async fn parked(server: &Server, n: u64) {
    until_metric(server, "doran_connections_parked", |v| v == n).await;
}

/// `payload` as one masked binary frame, as a client sends it.
fn masked_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126, "a short frame");
    let mask = [0x5a, 0x13, 0xc7, 0x01];
    let mut out = vec![0x82, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A protocol `Ping` as raw frame bytes.
fn ping_bytes(nonce: u64) -> Vec<u8> {
    masked_frame(&codec::encode_client(&ClientFrame::Ping { nonce }).expect("encodes"))
}

/// Reads until `Pong(nonce)`; anything else but events fails.
async fn pong(c: &mut Client, nonce: u64) {
    loop {
        match c.next().await {
            Some(ServerFrame::Event(_)) => continue,
            Some(ServerFrame::Pong { nonce: n }) if n == nonce => return,
            other => panic!("expected Pong({nonce}), got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_device_gets_deliveries_and_pushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(dir.path(), PARK_FAST, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut writer = Client::register(&server, &mut mom).await;
    let doc = mom.personal_doc;
    writer
        .push_ack(doc, b"before".to_vec())
        .await
        .expect("acked");
    writer.subscribe_view(doc, 1).await.expect("readable");
    let mut reader = Client::sign_in(&server, &mom).await;
    let view = reader.subscribe_view(doc, 0).await.expect("readable");
    assert_eq!(view.head, 1);

    // Both idle: both parked, their websocket state dropped.
    parked(&server, 2).await;
    let parks = metric(&server, "doran_parks_total").await;

    // A push from the other connection reaches the parked subscriber (not the
    // pusher: a connection gets its own push as the ack only).
    let seq = writer.push_ack(doc, b"live".to_vec()).await.expect("acked");
    let live = reader
        .until(|f| match f {
            ServerFrame::Chunk {
                doc: d, seq, bytes, ..
            } if *d == doc => Some((*seq, bytes.clone())),
            _ => None,
        })
        .await;
    assert_eq!(live, (seq, b"live".to_vec()));

    // Parked again, the subscriber pushes and gets its ack; the other one hears it.
    parked(&server, 2).await;
    let own = reader.push_ack(doc, b"mine".to_vec()).await.expect("acked");
    assert_eq!(own, seq + 1);
    assert!(metric(&server, "doran_parks_total").await >= parks + 2);
    writer
        .until(|f| match f {
            ServerFrame::Chunk { seq, .. } if *seq == own => Some(()),
            _ => None,
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_split_at_every_byte_around_a_park_are_read_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(dir.path(), PARK_FAST, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut c = Client::register(&server, &mut mom).await;
    // A masked frame's header here: 2 bytes and the 4-byte mask.
    const HEADER: usize = 6;
    let len = ping_bytes(0).len();

    for cut in 1..len {
        let nonce = 1000 + cut as u64;
        parked(&server, 1).await;
        let parks = metric(&server, "doran_parks_total").await;
        // Every other cut, a whole frame comes first in the same write: the relay
        // reads the next frame's first bytes ahead of the one it answers.
        let ahead = cut % 2 == 0;
        let mut first = if ahead {
            ping_bytes(nonce + 500)
        } else {
            Vec::new()
        };
        let frame = ping_bytes(nonce);
        first.extend_from_slice(&frame[..cut]);
        c.raw_tcp().write_all(&first).await.expect("write");
        if ahead {
            pong(&mut c, nonce + 500).await;
        }
        if cut < HEADER {
            // Only part of a header is in: the link parks again holding those bytes.
            until_metric(&server, "doran_parks_total", |v| v > parks).await;
            parked(&server, 1).await;
        } else {
            // Mid-frame the link must not park (tungstenite holds the frame's first
            // bytes): give it several park delays to get this wrong.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        c.raw_tcp().write_all(&frame[cut..]).await.expect("write");
        pong(&mut c, nonce).await;
    }
    // Still in step: nothing was left over or lost.
    c.quiet(7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_answers_pings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(dir.path(), PARK_FAST, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut c = Client::register(&server, &mut mom).await;

    // A websocket-level ping: tungstenite's pong comes back.
    parked(&server, 1).await;
    assert!(c.try_send_ws_ping().await);
    assert_eq!(c.next_or_pong().await, Some(None), "a websocket pong");

    // A protocol ping.
    parked(&server, 1).await;
    c.quiet(1).await;
    parked(&server, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connections_get_the_shutdown_goodbye() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with_config(dir.path(), PARK_FAST, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut a = Client::register(&server, &mut mom).await;
    let mut b = Client::sign_in(&server, &mom).await;
    // Not signed in at all: parked as well.
    let mut stranger = Client::connect(&server).await;
    parked(&server, 3).await;

    let status = tokio::task::spawn_blocking(move || server.terminate());
    assert_eq!(a.goodbye().await, ErrorCode::ShuttingDown);
    assert_eq!(b.goodbye().await, ErrorCode::ShuttingDown);
    assert_eq!(stranger.goodbye().await, ErrorCode::ShuttingDown);
    let status = status.await.expect("join");
    assert!(status.success(), "exit status {status:?}");
}

/// A hostile client that begins a message and never finishes it — here a frame
/// header announcing 100 bytes, then 10 of them — holds a websocket that can never
/// park; after `limits.message_deadline_ms` the relay closes the connection. A client
/// that finishes its message, however slowly within the deadline, is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_left_unfinished_past_its_deadline_closes_the_connection() {
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{"limits":{"park_idle_ms":50,"message_deadline_ms":400}}"#;
    let server = Server::start_with_config(dir.path(), config, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut slow = Client::register(&server, &mut mom).await;
    let mask = [0x5a, 0x13, 0xc7, 0x01];
    let mut begun = vec![0x82, 0x80 | 100];
    begun.extend_from_slice(&mask);
    begun.extend_from_slice(&[0; 10]);
    slow.raw_tcp().write_all(&begun).await.expect("write");

    // The relay ends the connection: the socket reaches its end (after whatever it
    // still had to say).
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match slow.raw_tcp().read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection stayed open");
    assert_eq!(metric(&server, "doran_messages_too_slow_total").await, 1);

    // A message finished within the deadline, a piece at a time, is answered.
    let mut dad = Identity::new("dad@example.com", "dad");
    let mut c = Client::register(&server, &mut dad).await;
    let frame = ping_bytes(9);
    for piece in frame.chunks(3) {
        c.raw_tcp().write_all(piece).await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pong(&mut c, 9).await;
    assert_eq!(metric(&server, "doran_messages_too_slow_total").await, 1);
}
