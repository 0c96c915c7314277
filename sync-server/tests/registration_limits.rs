//! Registrations against the real relay (issue 12, item 8): "already exists" is a
//! lookup, limited like one, and one address cannot squat emails without end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{ErrorCode, ServerFrame};
use support::{Client, Identity, Server};

/// Tries to register `id` on a fresh challenge of `c`; the code of the refusal, or
/// `None` if it was signed in.
async fn try_register(c: &mut Client, id: &Identity) -> Option<ErrorCode> {
    let challenge = c.hello().await;
    c.send(&id.register_frame(&challenge)).await;
    match c.next_relevant().await {
        ServerFrame::SignedIn { .. } => None,
        ServerFrame::Error(e) => Some(e.code),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_emails_by_registering_is_limited_like_lookups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits":{"lookups_per_minute_per_address":10,"registrations_per_hour_per_address":1000}}"#,
        &[],
    );
    let mut owner = Identity::new("taken@example.com", "owner");
    Client::register(&server, &mut owner).await;

    // Each attempt answers "already exists" until the address's lookups are used up
    // (one went to the first registration); then every attempt is refused the same
    // way, taken email or not, so nothing more is learnt.
    let mut c = Client::connect(&server).await;
    let mut answers = Vec::new();
    for _ in 0..15 {
        let probe = Identity::new("taken@example.com", "probe");
        answers.push(try_register(&mut c, &probe).await);
    }
    let exists = answers
        .iter()
        .filter(|a| **a == Some(ErrorCode::AlreadyExists))
        .count();
    assert_eq!(exists, 9, "{answers:?}");
    assert!(
        answers[9..]
            .iter()
            .all(|a| *a == Some(ErrorCode::RateLimited))
    );
    let fresh = Identity::new("free@example.com", "free");
    assert_eq!(
        try_register(&mut c, &fresh).await,
        Some(ErrorCode::RateLimited)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_registers_only_so_many_accounts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits":{"registrations_per_hour_per_address":3}}"#,
        &[],
    );
    let mut c = Client::connect(&server).await;
    for n in 0..3 {
        let id = Identity::new(&format!("squat{n}@example.com"), "squatter");
        assert_eq!(
            try_register(&mut Client::connect(&server).await, &id).await,
            None
        );
    }
    let id = Identity::new("squat3@example.com", "squatter");
    assert_eq!(
        try_register(&mut c, &id).await,
        Some(ErrorCode::RateLimited)
    );
}
