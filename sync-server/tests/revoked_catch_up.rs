//! Revocation in the middle of a catch-up, against the real relay: a device revoked
//! while the relay is still streaming its subscriptions gets `Goodbye(device_revoked)`
//! and nothing written after the revocation.
//!
//! The relay paces catch-up per connection; the test lowers the pace so the laptop's
//! catch-up of the personal document is still going when its owner revokes it (as a
//! large document would be at the default pace).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{ClientFrame, DocId, ErrorCode, Request, Response, ServerFrame, Subscription};
use support::{Client, Identity, Server};

/// Chunks in the owner's personal document, and their size: with the pace below, its
/// catch-up takes `CHUNKS - 1` seconds after the first chunk.
const CHUNKS: u32 = 4;
const CHUNK_BYTES: usize = 8 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_revoked_during_its_catch_up_gets_nothing_written_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One chunk at once, then one a second.
    let server = Server::start_with_config(
        dir.path(),
        &format!(
            r#"{{"limits":{{"catch_up_burst_bytes":{CHUNK_BYTES},"catch_up_bytes_per_second":{CHUNK_BYTES}}}}}"#
        ),
        &[],
    );
    let mut owner = Identity::new("owner@example.com", "owner");
    let mut o = Client::register(&server, &mut owner).await;
    let family = o.create_family().await;
    let family_doc = DocId::from(family);
    for i in 0..CHUNKS {
        let mut bytes = vec![7u8; CHUNK_BYTES];
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        o.push_ack(owner.personal_doc, bytes).await.expect("acked");
    }
    let code = match o.request(Request::IssueLinkCode).await {
        Ok(Response::LinkCode { code, .. }) => code,
        other => panic!("expected a link code, got {other:?}"),
    };
    let laptop = owner.another_device();
    drop(support::link_and_confirm(&server, &mut o, &owner, &laptop, &code).await);

    // Step 1: the laptop subscribes to its personal document, then the family's, and
    // is sent the first chunk; the rest of the personal document waits for the pace.
    let mut l = Client::sign_in(&server, &laptop).await;
    l.send(&ClientFrame::Subscribe {
        docs: vec![
            Subscription {
                doc: owner.personal_doc,
                since: 0,
            },
            Subscription {
                doc: family_doc,
                since: 0,
            },
        ],
    })
    .await;
    l.until(|f| matches!(f, ServerFrame::Chunk { .. }).then_some(()))
        .await;

    // Step 2: the owner revokes the laptop (the relay has marked its sessions when
    // this answers), then writes to the family document.
    let revoked = o
        .request(Request::RevokeDevice {
            device: laptop.device,
        })
        .await;
    assert_eq!(revoked, Ok(Response::Done));
    let secret = b"written after the laptop was revoked".to_vec();
    o.push_ack(family_doc, secret.clone())
        .await
        .expect("the owner writes");

    // Step 3: the laptop is told goodbye, and is never sent the family document's
    // new chunk (neither by its catch-up nor live).
    loop {
        match l.next().await {
            Some(ServerFrame::Chunk { doc, bytes, .. }) if doc == family_doc => {
                panic!(
                    "the revoked laptop was sent {:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            Some(ServerFrame::Goodbye { reason, .. }) => {
                assert_eq!(reason, ErrorCode::DeviceRevoked);
                break;
            }
            Some(_) => {}
            None => panic!("closed without a goodbye"),
        }
    }
    l.closed().await;
}
