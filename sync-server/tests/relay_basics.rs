//! The real relay binary over real sockets: registration, the invite handshake,
//! live delivery, catch-up after reconnect, idempotent re-push, refusals, and a
//! graceful SIGTERM.

mod support;

use doran_protocol::{
    ChunkId, ClientFrame, DocId, ErrorCode, FamilyId, InviteId, InviteState, MembershipChange,
    Request, Response, ServerEvent, ServerFrame, Subscription, signing,
};
use support::{Client, Identity, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_invite_sync_and_catch_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path());

    // Step 1: two users register, each with one device.
    let mut alice = Identity::new("alice@example.com", "앨리스");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;

    // Step 2: Alice creates a family and finds Bob by his exact (normalised) email.
    let family = FamilyId::random();
    let created = a
        .request(Request::CreateFamily { family })
        .await
        .expect("family created");
    let Response::FamilyCreated(summary) = created else {
        panic!("unexpected {created:?}")
    };
    assert_eq!(summary.members.len(), 1);
    let found = a
        .request(Request::LookupUser {
            email: "  BOB@example.com ".into(),
        })
        .await
        .expect("lookup");
    let Response::UserFound(Some(entry)) = found else {
        panic!("unexpected {found:?}")
    };
    assert_eq!(entry.user, bob.user());
    assert_eq!(entry.nickname, "bob_kim");

    // Step 3: Alice invites Bob, with a card her device sealed for him; Bob's
    // connected device gets it live, the card as she sent it.
    let invite = InviteId::random();
    let card: Vec<u8> = (0..300u16).map(|n| (n * 7 % 256) as u8).collect();
    let msg = signing::invite_message(
        "test-relay",
        &invite,
        &family,
        &alice.user(),
        &alice.device,
        &bob.user(),
        &card,
    );
    let sent = a
        .request(Request::SendInvite {
            invite,
            family,
            invitee: bob.user(),
            card: card.clone(),
            signature: alice.sign_device(&msg),
        })
        .await
        .expect("invite sent");
    assert!(matches!(sent, Response::InviteSent(ref i) if i.state == InviteState::Pending));
    let received = b
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::InviteReceived(i)) => Some(i.clone()),
            _ => None,
        })
        .await;
    assert_eq!(received.invite, invite);
    assert_eq!(received.card, card);

    // A second invite to the same person is refused with a typed error.
    let again = InviteId::random();
    let msg2 = signing::invite_message(
        "test-relay",
        &again,
        &family,
        &alice.user(),
        &alice.device,
        &bob.user(),
        b"another card",
    );
    let refused = a
        .request(Request::SendInvite {
            invite: again,
            family,
            invitee: bob.user(),
            card: b"another card".to_vec(),
            signature: alice.sign_device(&msg2),
        })
        .await
        .expect_err("second invite refused");
    assert_eq!(refused.code, ErrorCode::AlreadyInvited);

    // Step 4: Bob accepts (signed); Alice is told and the membership includes Bob.
    let answer =
        signing::invite_answer_message("test-relay", &invite, &bob.user(), &bob.device, true);
    let accepted = b
        .request(Request::AnswerInvite {
            invite,
            accept: true,
            signature: bob.sign_device(&answer),
        })
        .await
        .expect("accepted");
    let Response::InviteAnswered {
        invite: info,
        family: Some(joined),
    } = accepted
    else {
        panic!("unexpected {accepted:?}")
    };
    assert_eq!(info.state, InviteState::Accepted);
    assert_eq!(joined.members.len(), 2);
    let change = a
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::MembershipChanged { change, .. }) => Some(*change),
            _ => None,
        })
        .await;
    assert_eq!(change, MembershipChange::Joined { user: bob.user() });

    // Step 5: both subscribe to the family document; a push from Alice reaches Bob live.
    let doc = DocId::from(family);
    for c in [&mut a, &mut b] {
        c.send(&ClientFrame::Subscribe {
            docs: vec![Subscription { doc, since: 0 }],
        })
        .await;
        let head = c
            .until(|f| match f {
                ServerFrame::CaughtUp { doc: d, seq } if *d == doc => Some(*seq),
                _ => None,
            })
            .await;
        assert_eq!(head, 0);
    }
    let c1 = b"change one".to_vec();
    a.send(&ClientFrame::push(doc, c1.clone())).await;
    let ack = a
        .until(|f| match f {
            ServerFrame::Ack { seq, chunk, .. } => Some((*seq, *chunk)),
            _ => None,
        })
        .await;
    assert_eq!(ack, (1, ChunkId::of(&c1)));
    // The relay stamps the chunk with the user whose session pushed it.
    let live = b
        .until(|f| match f {
            ServerFrame::Chunk {
                seq, bytes, author, ..
            } => Some((*seq, bytes.clone(), *author)),
            _ => None,
        })
        .await;
    assert_eq!(live, (1, c1.clone(), Some(alice.user())));

    // Step 6: Bob goes away; Alice pushes two more; Bob reconnects and catches up.
    drop(b);
    for (i, bytes) in [b"change two".to_vec(), b"change three".to_vec()]
        .into_iter()
        .enumerate()
    {
        a.send(&ClientFrame::push(doc, bytes)).await;
        let seq = a
            .until(|f| match f {
                ServerFrame::Ack { seq, .. } => Some(*seq),
                _ => None,
            })
            .await;
        assert_eq!(seq, i as u64 + 2);
    }
    let mut b = Client::sign_in(&server, &bob).await;
    b.send(&ClientFrame::Subscribe {
        docs: vec![Subscription { doc, since: 1 }],
    })
    .await;
    let mut caught = Vec::new();
    let head = b
        .until(|f| match f {
            ServerFrame::Chunk {
                seq, bytes, author, ..
            } => {
                assert_eq!(*author, Some(alice.user()), "caught up with its author");
                caught.push((*seq, bytes.clone()));
                None
            }
            ServerFrame::CaughtUp { seq, .. } => Some(*seq),
            _ => None,
        })
        .await;
    assert_eq!(head, 3);
    assert_eq!(
        caught,
        vec![(2, b"change two".to_vec()), (3, b"change three".to_vec())]
    );

    // Step 7: re-pushing the first chunk is acked with its seq and not relayed again.
    a.send(&ClientFrame::push(doc, c1.clone())).await;
    let seq = a
        .until(|f| match f {
            ServerFrame::Ack { seq, .. } => Some(*seq),
            _ => None,
        })
        .await;
    assert_eq!(seq, 1);
    b.send(&ClientFrame::Ping { nonce: 42 }).await;
    let next = b
        .until(|f| match f {
            ServerFrame::Pong { .. } | ServerFrame::Chunk { .. } => Some(f.clone()),
            _ => None,
        })
        .await;
    assert_eq!(next, ServerFrame::Pong { nonce: 42 });

    // Step 8: a stranger can neither read nor write the family's document.
    let mut eve = Identity::new("eve@example.com", "eve");
    let mut e = Client::register(&server, &mut eve).await;
    e.send(&ClientFrame::Subscribe {
        docs: vec![Subscription { doc, since: 0 }],
    })
    .await;
    let err = e.error().await;
    assert_eq!((err.code, err.doc), (ErrorCode::Forbidden, Some(doc)));
    e.send(&ClientFrame::push(doc, b"evil".to_vec())).await;
    let err = e.error().await;
    assert_eq!(err.code, ErrorCode::Forbidden);
    assert_eq!(err.chunk, Some(ChunkId::of(b"evil")));

    // Step 9: SIGTERM: every connection gets a goodbye and the relay exits 0.
    let status = tokio::task::spawn_blocking(move || server.terminate());
    for c in [&mut a, &mut b, &mut e] {
        assert_eq!(c.goodbye().await, ErrorCode::ShuttingDown);
    }
    let status = status.await.expect("join");
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_sign_in_are_typed_and_harmless() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let _a = Client::register(&server, &mut alice).await;

    let mut c = Client::connect(&server).await;
    // Frames before sign-in.
    c.send(&ClientFrame::Request {
        id: doran_protocol::RequestId(1),
        body: Request::ListFamilies,
    })
    .await;
    let e = c.error().await;
    assert_eq!(e.code, ErrorCode::NotSignedIn);
    assert_eq!(e.request, Some(doran_protocol::RequestId(1)));
    // An answer before Hello.
    let fake = doran_protocol::Challenge {
        protocol_version: 1,
        nonce: [0; 32],
        server_id: "test-relay".into(),
        expires_at: u64::MAX,
    };
    c.send(&alice.signin_frame(&fake)).await;
    assert_eq!(c.error().await.code, ErrorCode::UnexpectedFrame);
    // Malformed bytes.
    c.send_raw(vec![1, 250, 3]).await;
    assert_eq!(c.error().await.code, ErrorCode::MalformedFrame);
    // A signature by the wrong key, then a replay of the used challenge.
    let challenge = c.hello().await;
    let mut forged = alice.clone();
    forged.device_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    c.send(&forged.signin_frame(&challenge)).await;
    assert_eq!(c.error().await.code, ErrorCode::BadSignature);
    c.send(&alice.signin_frame(&challenge)).await;
    assert_eq!(c.error().await.code, ErrorCode::ChallengeReplayed);
    // A fresh challenge signs in; the connection was never dropped.
    let challenge = c.hello().await;
    c.send(&alice.signin_frame(&challenge)).await;
    assert!(matches!(
        c.next_relevant().await,
        ServerFrame::SignedIn { .. }
    ));
    // Registering the same email again is refused.
    let mut d = Client::connect(&server).await;
    let challenge = d.hello().await;
    let twin = Identity::new("ALICE@example.com", "alice2");
    d.send(&twin.register_frame(&challenge)).await;
    assert_eq!(d.error().await.code, ErrorCode::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_rate_limited_then_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--frames-per-second", "1"]);
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    // Far past the burst (200 frames) and the 64 tolerated refusals. Each frame waits
    // for its answer: a client still writing when the relay closes can have the
    // Goodbye discarded by its TCP stack (a reset), which is not what is tested here.
    let mut limited = 0;
    let mut reason = None;
    for nonce in 0..300 {
        a.send(&ClientFrame::Ping { nonce }).await;
        match a.next().await {
            Some(ServerFrame::Error(e)) => {
                assert_eq!(e.code, ErrorCode::RateLimited);
                assert!(e.retry_after_ms.is_some());
                limited += 1;
            }
            Some(ServerFrame::Goodbye { reason: r, .. }) => {
                reason = Some(r);
                break;
            }
            Some(_) => {}
            None => panic!("closed without a goodbye"),
        }
    }
    let reason = reason.expect("the flood ends the connection");
    assert_eq!(reason, ErrorCode::RateLimited);
    assert!(limited >= 64);
    // Another connection of the same user still works.
    let mut again = Client::sign_in(&server, &alice).await;
    assert!(again.request(Request::ListFamilies).await.is_ok());
}
