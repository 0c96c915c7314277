//! Protocol 7 against the real relay binary: the relay no longer learns family titles
//! or 호칭. An invite carries a card the inviter's device sealed, which the relay
//! stores as sent — within its size limit, signed by the inviter's device — and serves
//! back byte for byte; the requests that once named titles and 호칭 are refused and
//! change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{
    ClientFrame, ErrorCode, ErrorFrame, FamilyId, FamilySummary, InviteId, InviteInfo, InviteState,
    Request, Response, ServerEvent, ServerFrame, limits::MAX_INVITE_CARD_BYTES,
};
use support::{Client, Identity, Server, assert_relay_works};

/// A family hosted by Alice, with Bob as a member; Carol, a stranger to invite.
struct Family {
    server: Server,
    _dir: tempfile::TempDir,
    family: FamilyId,
    alice: Identity,
    carol: Identity,
    a: Client,
    b: Client,
    c: Client,
}

async fn family() -> Family {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut carol = Identity::new("carol@example.com", "carol");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let c = Client::register(&server, &mut carol).await;
    let family = a.create_family().await;
    let invite = InviteId::random();
    a.request(alice.invite_request(invite, family, bob.user()))
        .await
        .expect("Bob invited");
    b.request(bob.answer_request(invite, true))
        .await
        .expect("Bob joined");
    Family {
        server,
        _dir: dir,
        family,
        alice,
        carol,
        a,
        b,
        c,
    }
}

/// Every byte value, then more: a card is bytes, not text.
fn odd_card(len: usize) -> Vec<u8> {
    (0..len).map(|n| (n % 256) as u8).rev().collect()
}

fn sent(got: Result<Response, ErrorFrame>) -> InviteInfo {
    match got {
        Ok(Response::InviteSent(info)) => info,
        other => panic!("expected InviteSent, got {other:?}"),
    }
}

/// Pings and expects the `Pong` as the very next frame: nothing at all, not even an
/// event, reached this connection since what it last read. (The relay forwards what
/// it queued for a connection before it reads the connection's next frame.)
async fn silent(c: &mut Client, nonce: u64) {
    c.send(&ClientFrame::Ping { nonce }).await;
    match c.next().await {
        Some(ServerFrame::Pong { nonce: n }) if n == nonce => {}
        other => panic!("expected only Pong({nonce}), got {other:?}"),
    }
}

/// The refusal of a request: its code, tied to the request.
#[track_caller]
fn refused(case: &str, got: Result<Response, ErrorFrame>) -> ErrorCode {
    let e = got.expect_err(case);
    assert!(e.request.is_some(), "{case}: tied to the request ({e:?})");
    e.code
}

impl Family {
    /// Alice's, Bob's and Carol's connections.
    fn conns(&mut self) -> [&mut Client; 3] {
        [&mut self.a, &mut self.b, &mut self.c]
    }

    /// What a refusal must leave as it was: the families and invites each of the
    /// three sees.
    async fn state(&mut self) -> [(Vec<FamilySummary>, Vec<InviteInfo>); 3] {
        let mut out = Vec::new();
        for c in self.conns() {
            out.push((c.families().await, c.invites().await));
        }
        out.try_into().expect("three")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_comes_back_byte_for_byte() {
    let mut f = family().await;
    let card = odd_card(700);
    let invite = InviteId::random();
    let info = sent(
        f.a.request(f.alice.invite_request_with_card(
            invite,
            f.family,
            f.carol.user(),
            card.clone(),
        ))
        .await,
    );
    assert_eq!((info.invite, &info.card), (invite, &card), "InviteSent");

    // The invitee's connected device is told, card and all.
    let received =
        f.c.until(|fr| match fr {
            ServerFrame::Event(ServerEvent::InviteReceived(i)) => Some(i.clone()),
            _ => None,
        })
        .await;
    assert_eq!(received, info, "InviteReceived");
    // A device that signs in later is told too.
    let mut later = Client::sign_in(&f.server, &f.carol).await;
    let at_sign_in = later
        .until(|fr| match fr {
            ServerFrame::Event(ServerEvent::InviteReceived(i)) => Some(i.clone()),
            _ => None,
        })
        .await;
    assert_eq!(at_sign_in.card, card, "InviteReceived at sign-in");
    // And every one of them lists it: the invitee, the host, the other member.
    for (who, c) in [("Carol", &mut f.c), ("Alice", &mut f.a), ("Bob", &mut f.b)] {
        assert_eq!(c.invites().await, vec![info.clone()], "{who}'s ListInvites");
    }

    // The largest card there may be, too.
    let mut dave = Identity::new("dave@example.com", "dave");
    let mut d = Client::register(&f.server, &mut dave).await;
    let largest = odd_card(MAX_INVITE_CARD_BYTES);
    let big = sent(
        f.a.request(f.alice.invite_request_with_card(
            InviteId::random(),
            f.family,
            dave.user(),
            largest.clone(),
        ))
        .await,
    );
    assert_eq!(d.invites().await, vec![big.clone()]);
    assert_eq!(d.invites().await[0].card, largest);
    assert_eq!(f.b.invites().await, vec![info.clone(), big]);

    // Accepted: the answer carries the card, unchanged.
    let answered = f.c.request(f.carol.answer_request(invite, true)).await;
    match answered {
        Ok(Response::InviteAnswered {
            invite: answered,
            family: Some(joined),
        }) => {
            assert_eq!(answered.state, InviteState::Accepted);
            assert_eq!(answered.card, card);
            assert_eq!(joined.members.len(), 3);
        }
        other => panic!("expected InviteAnswered, got {other:?}"),
    }
    assert_relay_works(&f.server, "cards").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_out_of_bounds_or_signed_for_another_are_refused_and_kept_nowhere() {
    let mut f = family().await;
    let before = f.state().await;
    f.c.quiet(0).await;
    let invite = InviteId::random();

    // Too large, and empty: refused whoever signed them.
    for (case, card) in [
        ("card_too_large", vec![0xca; MAX_INVITE_CARD_BYTES + 1]),
        ("card_empty", Vec::new()),
    ] {
        let got =
            f.a.request(
                f.alice
                    .invite_request_with_card(invite, f.family, f.carol.user(), card),
            )
            .await;
        assert_eq!(refused(case, got), ErrorCode::InvalidInput, "{case}");
        silent(&mut f.c, 1).await; // Carol is told nothing
        assert_eq!(f.state().await, before, "{case}: nothing stored");
    }

    // Signed over another card: the relay (or anyone on the way) cannot hand the
    // invitee a card its inviter did not seal.
    let Request::SendInvite { signature, .. } = f.alice.invite_request_with_card(
        invite,
        f.family,
        f.carol.user(),
        b"the card Alice sealed".to_vec(),
    ) else {
        unreachable!()
    };
    let swapped = Request::SendInvite {
        invite,
        family: f.family,
        invitee: f.carol.user(),
        card: b"another card".to_vec(),
        signature,
    };
    let got = f.a.request(swapped).await;
    assert_eq!(
        refused("card_swapped", got),
        ErrorCode::BadSignature,
        "card_swapped"
    );
    silent(&mut f.c, 2).await;
    assert_eq!(f.state().await, before, "card_swapped: nothing stored");

    // Nothing was kept under the invite's id: the real invite takes it.
    let info = sent(
        f.a.request(f.alice.invite_request(invite, f.family, f.carol.user()))
            .await,
    );
    assert_eq!(f.c.invites().await, vec![info]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_requests_are_refused_and_change_nothing() {
    let mut f = family().await;
    // A pending invite to Carol, which a retired accept must not touch.
    let pending = sent(
        f.a.request(
            f.alice
                .invite_request(InviteId::random(), f.family, f.carol.user()),
        )
        .await,
    );
    let before = f.state().await;
    for (n, c) in f.conns().into_iter().enumerate() {
        c.quiet(n as u64).await;
    }
    for (case, request) in [
        ("retired_rename_family", Request::RetiredRenameFamily),
        ("retired_set_member_name", Request::RetiredSetMemberName),
        ("retired_accept_invite_as", Request::RetiredAcceptInviteAs),
    ] {
        // Asked by the host, a member and an outsider alike.
        for who in 0..3 {
            let got = f.conns()[who].request(request.clone()).await;
            assert_eq!(refused(case, got), ErrorCode::InvalidInput, "{case}");
            // Nobody was told anything, and every connection is still open.
            for (n, c) in f.conns().into_iter().enumerate() {
                silent(c, 10 + n as u64).await;
            }
        }
        assert_eq!(f.state().await, before, "{case}: nothing changed");
    }
    let joined =
        f.c.request(f.carol.answer_request(pending.invite, true))
            .await;
    assert!(
        matches!(
            joined,
            Ok(Response::InviteAnswered {
                family: Some(_),
                ..
            })
        ),
        "the invite is still answerable: {joined:?}"
    );
    assert_relay_works(&f.server, "retired").await;
}
