//! Pending invites are capped per invitee (and per family), so nobody can be flooded
//! with invites, and the invitee's `ListInvites` always fits in a frame.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{ErrorCode, InviteId, Response};
use support::{Client, Identity, Server};

/// Pending invites one person may hold (the relay's cap).
const PER_INVITEE: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitee_holds_a_bounded_number_of_pending_invites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut aunt = Identity::new("aunt@example.com", "aunt");
    let mut a = Client::register(&server, &mut aunt).await;
    let mut uncle = Identity::new("uncle@example.com", "uncle");
    let mut u = Client::register(&server, &mut uncle).await;
    let mut niece = Identity::new("niece@example.com", "niece");
    let mut n = Client::register(&server, &mut niece).await;

    // Step 1: the aunt invites her niece to each of her 16 families.
    for i in 0..PER_INVITEE {
        let family = a.create_family().await;
        let sent = a
            .request(aunt.invite_request(InviteId::random(), family, niece.user()))
            .await;
        assert!(matches!(sent, Ok(Response::InviteSent(_))), "{i}: {sent:?}");
    }

    // Step 2: one more, from the uncle's family, is refused: she holds as many as allowed.
    let family = u.create_family().await;
    let invite = InviteId::random();
    let refused = u
        .request(uncle.invite_request(invite, family, niece.user()))
        .await
        .expect_err("over the cap");
    assert_eq!(refused.code, ErrorCode::QuotaExceeded, "{refused:?}");

    // Step 3: her list answers, with the 16; the refused invite is nowhere.
    let list = n.invites().await;
    assert_eq!(list.len(), PER_INVITEE);
    assert!(list.iter().all(|i| i.invite != invite));

    // Step 4: once she answers one, there is room for the uncle's.
    let first = list[0].invite;
    let answered = n.request(niece.answer_request(first, false)).await;
    assert!(
        matches!(answered, Ok(Response::InviteAnswered { .. })),
        "{answered:?}"
    );
    let sent = u
        .request(uncle.invite_request(invite, family, niece.user()))
        .await;
    assert!(matches!(sent, Ok(Response::InviteSent(_))), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_and_withdrawing_in_a_loop_stops_notifying_the_invitee() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(&server, &mut mom).await;
    let mut son = Identity::new("son@example.com", "son");
    let _s = Client::register(&server, &mut son).await;
    let family = m.create_family().await;

    // Step 1: 엄마 invites her son and withdraws it, five times over.
    for i in 0..5 {
        let invite = InviteId::random();
        let sent = m
            .request(mom.invite_request(invite, family, son.user()))
            .await;
        assert!(matches!(sent, Ok(Response::InviteSent(_))), "{i}: {sent:?}");
        let withdrawn = m
            .request(doran_protocol::Request::WithdrawInvite { invite })
            .await;
        assert_eq!(withdrawn, Ok(Response::Done), "{i}");
    }

    // Step 2: a sixth invite the same day is refused; he is not notified again.
    let refused = m
        .request(mom.invite_request(InviteId::random(), family, son.user()))
        .await
        .expect_err("over the daily cap");
    assert_eq!(refused.code, ErrorCode::QuotaExceeded, "{refused:?}");
}
