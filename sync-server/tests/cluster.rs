//! Several relays on one PostgreSQL database and one S3 bucket (issue 16): whatever a
//! device does through one relay reaches the devices on the others, live.
//!
//! Each test starts two real relays on a schema and a prefix of their own (see
//! `support::shared_backend`); without a test database (`DORAN_TEST_DATABASE`) they
//! pass without running, unless `DORAN_REQUIRE_BACKENDS` is set (`scripts/test`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;

use doran_protocol::{
    ClientFrame, DeviceId, ErrorCode, FamilyId, InviteId, MembershipChange, Request, Response,
    ServerEvent, ServerFrame,
};
use support::{Client, Identity, Server};

/// Two relays sharing a fresh schema and prefix, or `None` without the backends.
fn two_relays(dir: &std::path::Path) -> Option<(Server, Server)> {
    let key = format!("cluster-{:016x}", rand::random::<u64>());
    let one = Server::start_shared(&dir.join("one"), &key, &[])?;
    let two = Server::start_shared(&dir.join("two"), &key, &[])?;
    Some((one, two))
}

/// Alice (on `a`, host) and Bob (on `b`) in one family, Bob having joined through an
/// invite that reached him live on his relay.
async fn family_across(
    one: &Server,
    two: &Server,
) -> (Identity, Client, Identity, Client, FamilyId) {
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_");
    let mut a = Client::register(one, &mut alice).await;
    let mut b = Client::register(two, &mut bob).await;
    let family = a.create_family("우리 가족", "엄마").await;

    // Step 1: the invite, sent through relay one, reaches Bob on relay two live.
    let invite = InviteId::random();
    a.request(alice.invite_request(invite, family, bob.user(), "아들"))
        .await
        .expect("invite sent");
    let received = b
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::InviteReceived(i)) => Some(i.invite),
            _ => None,
        })
        .await;
    assert_eq!(received, invite);

    // Step 2: Bob accepts on relay two; Alice hears it on relay one.
    b.request(bob.answer_request(invite, true))
        .await
        .expect("accepted");
    let joined = a
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::MembershipChanged {
                change: MembershipChange::Joined { user },
                ..
            }) => Some(*user),
            _ => None,
        })
        .await;
    assert_eq!(joined, bob.user());
    (alice, a, bob, b, family)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_pushed_through_one_relay_reaches_a_device_on_another_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((one, two)) = two_relays(dir.path()) else {
        return;
    };
    let (alice, mut a, bob, mut b, family) = family_across(&one, &two).await;
    let doc = doran_protocol::DocId::from(family);
    let view = b.subscribe_view(doc, 0).await.expect("Bob reads");
    assert_eq!(view.head, 0);
    a.subscribe_view(doc, 0).await.expect("Alice reads");

    // Step 3: Alice's change, acked by relay one, arrives at Bob on relay two.
    let seq = a.push_ack(doc, b"a change".to_vec()).await.expect("acked");
    let (got, bytes) = b
        .until(|f| match f {
            ServerFrame::Chunk {
                doc: d, seq, bytes, ..
            } if *d == doc => Some((*seq, bytes.clone())),
            _ => None,
        })
        .await;
    assert_eq!((got, bytes.as_slice()), (seq, b"a change".as_slice()));

    // Step 4: and back.
    let seq = b.push_ack(doc, b"an answer".to_vec()).await.expect("acked");
    let got = a
        .until(|f| match f {
            ServerFrame::Chunk { doc: d, seq, .. } if *d == doc => Some(*seq),
            _ => None,
        })
        .await;
    assert_eq!(got, seq);

    // Step 5: presence is the cluster's: each sees the other online.
    for (c, other) in [(&mut a, &bob), (&mut b, &alice)] {
        match c.request(Request::ListPresence { family }).await {
            Ok(Response::Presence(list)) => {
                let p = list
                    .iter()
                    .find(|p| p.user == other.user())
                    .expect("listed");
                assert!(p.online, "{list:?}");
            }
            other => panic!("expected Presence, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_through_two_relays_to_one_document_get_gapless_ordered_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((one, two)) = two_relays(dir.path()) else {
        return;
    };
    let (alice, mut a, bob, mut b, family) = family_across(&one, &two).await;
    let doc = doran_protocol::DocId::from(family);
    // Readers that push nothing, one on each relay.
    let mut readers = Vec::new();
    for (server, who) in [(&one, &alice), (&two, &bob)] {
        let mut r = Client::sign_in(server, who).await;
        r.subscribe_view(doc, 0).await.expect("reads");
        readers.push(r);
    }
    a.subscribe_view(doc, 0).await.expect("reads");
    b.subscribe_view(doc, 0).await.expect("reads");

    // Step 1: both relays append to the document at once, as fast as they ack.
    const EACH: usize = 60;
    let pushes = |mut c: Client, tag: &'static str| async move {
        let mut seqs = Vec::new();
        for i in 0..EACH {
            let bytes = format!("{tag} {i}").into_bytes();
            seqs.push(c.push_ack(doc, bytes).await.expect("acked"));
        }
        (c, seqs)
    };
    let ((_, from_a), (_, from_b)) = tokio::join!(pushes(a, "a"), pushes(b, "b"));

    // Step 2: the acks are the seqs 1..=120, each once.
    let all: HashSet<u64> = from_a.iter().chain(&from_b).copied().collect();
    assert_eq!(all, (1..=2 * EACH as u64).collect::<HashSet<_>>());
    assert!(from_a.windows(2).all(|w| w[0] < w[1]));
    assert!(from_b.windows(2).all(|w| w[0] < w[1]));

    // Step 3: each reader got every seq once, in order, with no gap.
    for r in &mut readers {
        let mut seen = Vec::new();
        while seen.len() < 2 * EACH {
            let seq = r
                .until(|f| match f {
                    ServerFrame::Chunk { doc: d, seq, .. } if *d == doc => Some(*seq),
                    _ => None,
                })
                .await;
            seen.push(seq);
        }
        assert_eq!(seen, (1..=2 * EACH as u64).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_relay_closes_the_device_on_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((one, two)) = two_relays(dir.path()) else {
        return;
    };
    let mut owner = Identity::new("owner@example.com", "owner");
    let mut o = Client::register(&one, &mut owner).await;
    let code = match o.request(Request::IssueLinkCode).await {
        Ok(Response::LinkCode { code, .. }) => code,
        other => panic!("expected a link code, got {other:?}"),
    };
    // The laptop links itself through relay two.
    let laptop = owner.another_device();
    let mut l = Client::connect(&two).await;
    let challenge = l.hello().await;
    l.send(&laptop.link_frame(&challenge, &code)).await;
    match l.next_relevant().await {
        ServerFrame::SignedIn { device, .. } => assert_eq!(device, laptop.device),
        other => panic!("expected SignedIn, got {other:?}"),
    }

    // The owner, on relay one, revokes it: relay two says goodbye to it at once.
    o.request(Request::RevokeDevice {
        device: laptop.device,
    })
    .await
    .expect("revoked");
    assert_eq!(l.goodbye().await, ErrorCode::DeviceRevoked);

    // Signing in again anywhere is refused.
    for server in [&one, &two] {
        let mut again = Client::connect(server).await;
        let challenge = again.hello().await;
        again.send(&laptop.signin_frame(&challenge)).await;
        assert_eq!(again.error().await.code, ErrorCode::DeviceRevoked);
    }
    let devices: Vec<DeviceId> = o.devices().await.into_iter().map(|d| d.0).collect();
    assert!(devices.contains(&laptop.device));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_through_one_relay_loses_the_document_on_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((one, two)) = two_relays(dir.path()) else {
        return;
    };
    let (_alice, mut a, bob, mut b, family) = family_across(&one, &two).await;
    let doc = doran_protocol::DocId::from(family);
    b.subscribe_view(doc, 0).await.expect("Bob reads");

    a.request(Request::RemoveMember {
        family,
        user: bob.user(),
    })
    .await
    .expect("removed");
    // Relay two ends Bob's subscription, then refuses his pushes.
    let ended = b
        .until(|f| match f {
            ServerFrame::Error(e) if e.doc == Some(doc) => Some(e.code),
            _ => None,
        })
        .await;
    assert_eq!(ended, ErrorCode::Forbidden);
    b.send(&ClientFrame::push(doc, b"still here?".to_vec()))
        .await;
    let refused = b
        .until(|f| match f {
            ServerFrame::Error(e) if e.doc == Some(doc) => Some(e.code),
            ServerFrame::Ack { .. } => panic!("a removed member's push was acked"),
            _ => None,
        })
        .await;
    assert_eq!(refused, ErrorCode::Forbidden);
}
