//! Revocation against the real relay: a revoked device keeps no session, whatever it
//! races against (issue 12, item 1).
//!
//! Each test is one scenario: a user's phone (the owner) and a second device linked to
//! the same account (a stolen laptop) that the owner revokes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use doran_protocol::{ClientFrame, ErrorCode, Request, Response, ServerFrame};
use support::{Client, Identity, Server, TIMEOUT};

/// How a connection of the revoked device ended up.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Its sign-in was refused with `device_revoked`.
    Refused,
    /// It was signed in, then told `Goodbye(device_revoked)` and closed.
    SignedInThenClosed,
}

/// The owner signed in, and a second device of the same user linked with a code.
async fn owner_and_linked_device(server: &Server) -> (Identity, Client, Identity) {
    let mut owner = Identity::new("owner@example.com", "owner");
    let mut o = Client::register(server, &mut owner).await;
    let code = match o.request(Request::IssueLinkCode).await {
        Ok(Response::LinkCode { code, .. }) => code,
        other => panic!("expected a link code, got {other:?}"),
    };
    let laptop = owner.another_device();
    drop(support::link_and_confirm(server, &mut o, &owner, &laptop, &code).await);
    (owner, o, laptop)
}

/// Reads a connection of the revoked device until its fate is clear: a refused
/// sign-in, or a session that the relay closed with `device_revoked`. A session still
/// open after [`TIMEOUT`] fails the test.
async fn fate(c: &mut Client) -> Ended {
    let mut signed_in = false;
    loop {
        let next = tokio::time::timeout(TIMEOUT, c.next()).await;
        let frame = next.unwrap_or_else(|_| {
            panic!("a session of the revoked device is still open (signed in: {signed_in})")
        });
        match frame {
            Some(ServerFrame::SignedIn { .. }) => signed_in = true,
            Some(ServerFrame::Error(e)) if !signed_in && e.code == ErrorCode::DeviceRevoked => {
                return Ended::Refused;
            }
            Some(ServerFrame::Goodbye { reason, .. }) => {
                assert!(signed_in, "a goodbye before any sign-in: {reason:?}");
                assert_eq!(reason, ErrorCode::DeviceRevoked);
                c.closed().await;
                return Ended::SignedInThenClosed;
            }
            Some(ServerFrame::Error(e)) => panic!("unexpected refusal {e:?}"),
            Some(_) => {}
            None => panic!("closed without a goodbye (signed in: {signed_in})"),
        }
    }
}

/// The owner's device still signs in, is not revoked, and the laptop is.
async fn owner_is_not_locked_out(server: &Server, owner: &Identity, laptop: &Identity) {
    let mut o = Client::sign_in(server, owner).await;
    let devices = o.devices().await;
    let revoked = |d| devices.iter().find(|x| x.0 == d).map(|x| x.2.is_some());
    assert_eq!(revoked(owner.device), Some(false), "the owner's device");
    assert_eq!(revoked(laptop.device), Some(true), "the laptop");
    // And the laptop can no longer sign in.
    let mut l = Client::connect(server).await;
    let challenge = l.hello().await;
    l.send(&laptop.signin_frame(&challenge)).await;
    assert_eq!(l.refusal().await.code, ErrorCode::DeviceRevoked);
    // Nor is it given an HTTP session key: nothing came between the refusal and the
    // challenge of a next try.
    l.hello().await;
    assert_eq!(l.http_session, None, "a refused sign-in brings no key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_signing_in_while_revoked_keeps_no_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (owner, mut o, laptop) = owner_and_linked_device(&server).await;

    // Step 1: the laptop readies 32 connections, each holding a fresh challenge.
    const TRIES: usize = 32;
    let mut ready = Vec::with_capacity(TRIES);
    for _ in 0..TRIES {
        let mut c = Client::connect(&server).await;
        let challenge = c.hello().await;
        ready.push((c, laptop.signin_frame(&challenge)));
    }

    // Step 2: all 32 sign-ins go out at once, while the owner revokes the laptop.
    let mut tasks = tokio::task::JoinSet::new();
    for (mut c, frame) in ready {
        tasks.spawn(async move {
            c.send(&frame).await;
            fate(&mut c).await
        });
    }
    let revoked = o
        .request(Request::RevokeDevice {
            device: laptop.device,
        })
        .await;
    assert_eq!(revoked, Ok(Response::Done));

    // Step 3: every attempt was either refused or closed right after; none is alive.
    let mut ends = Vec::new();
    while let Some(end) = tasks.join_next().await {
        ends.push(end.expect("a sign-in task"));
    }
    assert_eq!(ends.len(), TRIES);
    eprintln!(
        "{} refused, {} signed in then closed",
        ends.iter().filter(|e| **e == Ended::Refused).count(),
        ends.iter()
            .filter(|e| **e == Ended::SignedInThenClosed)
            .count()
    );

    // Step 4: the owner is not locked out.
    owner_is_not_locked_out(&server, &owner, &laptop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_of_a_revoked_session_are_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (owner, mut o, laptop) = owner_and_linked_device(&server).await;
    let mut l = Client::sign_in(&server, &laptop).await;

    // Step 1: the owner revokes the laptop; the laptop, without reading anything,
    // tries to revoke the owner's device and to write to the personal document.
    let revoked = o
        .request(Request::RevokeDevice {
            device: laptop.device,
        })
        .await;
    assert_eq!(revoked, Ok(Response::Done));
    // The relay may have closed the session already: then a write is reset (and the
    // goodbye in flight may be lost with it), which is as good — nothing is served.
    let _ = l
        .try_send(&ClientFrame::Request {
            id: doran_protocol::RequestId(99),
            body: Request::RevokeDevice {
                device: owner.device,
            },
        })
        .await;
    let _ = l
        .try_send(&ClientFrame::push(
            owner.personal_doc,
            b"written by a revoked device".to_vec(),
        ))
        .await;

    // Step 2: the laptop's session only says goodbye (or is gone); nothing it sent was
    // served.
    loop {
        match l.next().await {
            Some(ServerFrame::Goodbye { reason, .. }) => {
                assert_eq!(reason, ErrorCode::DeviceRevoked);
                break;
            }
            Some(ServerFrame::Response { id, body }) => {
                panic!("a revoked session was answered: {id:?} {body:?}")
            }
            Some(ServerFrame::Ack { .. }) => panic!("a revoked session's push was acked"),
            Some(_) => {}
            None => break,
        }
    }
    let view = o
        .subscribe_view(owner.personal_doc, 0)
        .await
        .expect("the owner reads their document");
    assert!(view.chunks.is_empty(), "nothing was written: {view:?}");
    owner_is_not_locked_out(&server, &owner, &laptop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_revoking_each_other_leave_one_standing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (owner, mut o, laptop) = owner_and_linked_device(&server).await;
    let mut l = Client::sign_in(&server, &laptop).await;

    // Step 1: both revoke the other at the same moment.
    let revoke = |device| ClientFrame::Request {
        id: doran_protocol::RequestId(500),
        body: Request::RevokeDevice { device },
    };
    let (a, b) = (revoke(laptop.device), revoke(owner.device));
    tokio::join!(o.send(&a), l.send(&b));
    // Each hears how its request ended (done, refused, or its connection closed)
    // before anyone signs in again: a sign-in racing the revocations would find both
    // devices standing.
    let settled = |mut c: Client| async move {
        tokio::time::timeout(Duration::from_secs(10), async move {
            loop {
                match c.next().await {
                    Some(ServerFrame::Response { .. } | ServerFrame::Error(_)) | None => return,
                    Some(_) => {}
                }
            }
        })
        .await
        .expect("the revocation is answered");
    };
    tokio::join!(settled(o), settled(l));

    // Step 2: whoever the relay served first wins; the other is refused or closed.
    // Exactly one of the two devices stays usable.
    let mut standing = Vec::new();
    for (who, id) in [("owner", &owner), ("laptop", &laptop)] {
        let mut c = Client::connect(&server).await;
        let challenge = c.hello().await;
        c.send(&id.signin_frame(&challenge)).await;
        let signed_in = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match c.next().await {
                    Some(ServerFrame::SignedIn { .. }) => return true,
                    Some(ServerFrame::Error(e)) => {
                        assert_eq!(e.code, ErrorCode::DeviceRevoked, "{who}");
                        return false;
                    }
                    Some(_) => {}
                    None => return false,
                }
            }
        })
        .await
        .expect("an answer to the sign-in");
        if signed_in {
            standing.push(who);
        }
    }
    assert_eq!(standing.len(), 1, "exactly one device stands: {standing:?}");
}
