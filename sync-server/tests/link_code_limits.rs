//! Link codes are one at a time: issuing a new one replaces the account's unclaimed
//! codes, so one connection cannot pile up live codes (each a disk-synced write) and
//! only the code the user last read out can link a device.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{ErrorCode, Request, Response};
use support::{Client, Identity, Server};

async fn issue(c: &mut Client) -> String {
    match c.request(Request::IssueLinkCode).await {
        Ok(Response::LinkCode { code, .. }) => code,
        other => panic!("expected a link code, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_link_code_replaces_the_unclaimed_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(&server, &mut mom).await;

    // Step 1: 엄마 asks for a code three times (the dialog reopened, say).
    let first = issue(&mut m).await;
    let second = issue(&mut m).await;
    let last = issue(&mut m).await;

    // Step 2: the earlier codes link nothing any more.
    for old in [&first, &second] {
        let tablet = mom.another_device();
        let refused = Client::link(&server, &tablet, old)
            .await
            .err()
            .expect("an old code is refused");
        assert_eq!(refused.code, ErrorCode::InvalidLinkCode, "{refused:?}");
    }

    // Step 3: the last one links her laptop.
    let laptop = mom.another_device();
    drop(support::link_and_confirm(&server, &mut m, &mom, &laptop, &last).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_code_survives_a_new_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(&server, &mut mom).await;

    // Step 1: the laptop presents a code and waits for 엄마's answer.
    let code = issue(&mut m).await;
    let laptop = mom.another_device();
    let waiting = Client::link(&server, &laptop, &code)
        .await
        .err()
        .expect("told to wait");
    assert_eq!(waiting.code, ErrorCode::LinkPending, "{waiting:?}");

    // Step 2: 엄마 is asked, and issues another code (for the tablet) before answering.
    let asked = m.link_requested().await;
    let next = issue(&mut m).await;

    // Step 3: the laptop's request is still there to confirm, and the new code works.
    let done = m.request(mom.confirm_link_request(&asked, true)).await;
    assert!(matches!(done, Ok(Response::Done)), "{done:?}");
    Client::link(&server, &laptop, &code)
        .await
        .expect("linked once confirmed");
    let tablet = mom.another_device();
    drop(support::link_and_confirm(&server, &mut m, &mom, &tablet, &next).await);
}
