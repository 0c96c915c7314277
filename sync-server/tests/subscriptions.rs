//! What one `Subscribe` may make the relay send, and a device whose cursor is past
//! the log, against the real relay (issue 12, item 8).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use doran_protocol::{
    ClientFrame, DocId, ServerFrame, Subscription, limits::MAX_SUBSCRIPTIONS_PER_FRAME,
};
use support::{Client, Identity, Server};

/// Pushes `n` chunks of `size` bytes to `doc`.
async fn fill(c: &mut Client, doc: DocId, n: u32, size: usize) {
    for i in 0..n {
        let mut bytes = vec![7u8; size];
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        c.push_ack(doc, bytes).await.expect("acked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_named_many_times_in_one_subscribe_is_sent_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(&server, &mut mom).await;
    let doc = mom.personal_doc;
    fill(&mut m, doc, 50, 1024).await;

    let mut reader = Client::sign_in(&server, &mom).await;
    reader
        .send(&ClientFrame::Subscribe {
            docs: vec![Subscription { doc, since: 0 }; MAX_SUBSCRIPTIONS_PER_FRAME],
        })
        .await;
    let mut chunks = 0;
    loop {
        match reader.next().await.expect("open") {
            ServerFrame::Chunk { .. } => chunks += 1,
            ServerFrame::CaughtUp { seq, .. } => {
                assert_eq!(seq, 50);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(chunks, 50);
    // Nothing else was queued: no second catch-up of the same document.
    reader.quiet(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_is_paced_per_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits":{"catch_up_burst_bytes":100000,"catch_up_bytes_per_second":200000}}"#,
        &[],
    );
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(&server, &mut mom).await;
    let doc = mom.personal_doc;
    fill(&mut m, doc, 50, 10_000).await;

    // 500 KB of catch-up with a 100 KB burst at 200 KB/s: at least two seconds.
    let mut reader = Client::sign_in(&server, &mom).await;
    let started = Instant::now();
    let view = reader.subscribe_view(doc, 0).await.expect("readable");
    assert_eq!(view.chunks.len(), 50);
    assert!(
        started.elapsed() >= Duration::from_millis(1_900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_past_the_log_is_told_to_reset_and_still_gets_live_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(&server, &mut mom).await;
    let doc = mom.personal_doc;
    fill(&mut m, doc, 3, 100).await;

    // Step 1: a device whose stored cursor was poisoned (a forged Chunk{seq: 2^62})
    // subscribes from it and is told where the log really ends.
    let mut poisoned = Client::sign_in(&server, &mom).await;
    poisoned
        .send(&ClientFrame::Subscribe {
            docs: vec![Subscription {
                doc,
                since: 1 << 62,
            }],
        })
        .await;
    let told = poisoned
        .until(|f| match f {
            ServerFrame::CursorAhead { doc: d, head } if *d == doc => Some(*head),
            ServerFrame::CaughtUp { .. } => panic!("a cursor past the log is not caught up"),
            _ => None,
        })
        .await;
    assert_eq!(told, 3);

    // Step 2: the relay does not skip live chunks because of that cursor.
    let seq = m
        .push_ack(doc, b"after the reset".to_vec())
        .await
        .expect("acked");
    assert_eq!(seq, 4);
    let live = poisoned
        .until(|f| match f {
            ServerFrame::Chunk { doc: d, seq, .. } if *d == doc => Some(*seq),
            _ => None,
        })
        .await;
    assert_eq!(live, 4);

    // Step 3: resubscribing from 0, it gets the whole log.
    let view = poisoned.subscribe_view(doc, 0).await.expect("readable");
    assert_eq!(view.chunks.len(), 4);
    assert_eq!(view.head, 4);
}
