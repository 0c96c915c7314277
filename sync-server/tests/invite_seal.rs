//! An invite carries whether the family is sealed, signed by the inviter's device
//! (issue 18): the relay refuses one whose flag is not the one signed, and serves the
//! signature with the invite, so the invitee's device can check it and a relay cannot
//! have a new member of a sealed family write in the clear. The proposed 호칭 is
//! served exactly as signed: one the relay would normalise is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{
    ErrorCode, InviteId, InviteInfo, InviteSeal, Request, Response, ServerEvent, ServerFrame,
    Signature, signing,
};
use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};
use support::{Client, Identity, SERVER_ID, Server};

/// Checks `info.seal` with `key` over the invite message built from what `info` says,
/// as the invitee's device does.
fn verifies(info: &InviteInfo, key: &VerifyingKey) -> bool {
    let Some(seal) = &info.seal else {
        return false;
    };
    let msg = signing::invite_message(
        SERVER_ID,
        &signing::InviteTerms {
            invite: &info.invite,
            family: &info.family,
            inviter: &info.inviter,
            inviter_device: &seal.inviter_device,
            invitee: &info.invitee,
            proposed_name: &info.proposed_name,
            sealed: seal.sealed,
        },
    );
    key.verify_strict(&msg, &DalekSignature::from_bytes(&seal.signature.0))
        .is_ok()
}

/// `request` (a `SendInvite`) with its `sealed` flag flipped, its signature kept.
fn flipped(request: Request) -> Request {
    let Request::SendInvite {
        invite,
        family,
        invitee,
        proposed_name,
        sealed,
        signature,
    } = request
    else {
        unreachable!("a SendInvite")
    };
    Request::SendInvite {
        invite,
        family,
        invitee,
        proposed_name,
        sealed: !sealed,
        signature,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_is_served_with_the_seal_its_inviter_signed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(&server, &mut mom).await;
    let mut son = Identity::new("son@example.com", "son");
    let mut s = Client::register(&server, &mut son).await;
    let family = m.create_family("우리 가족", "엄마").await;
    let invite = InviteId::random();

    // Step 1: a relay (or anyone) flipping the flag breaks the signature, either way:
    // refused, and nothing is stored.
    for signed_sealed in [true, false] {
        let request = mom.invite_request_sealed(invite, family, son.user(), "아들", signed_sealed);
        let refused = m
            .request(flipped(request))
            .await
            .expect_err("a flag other than the signed one");
        assert_eq!(
            refused.code,
            ErrorCode::BadSignature,
            "signed {signed_sealed}: {refused:?}"
        );
    }
    assert_eq!(s.invites().await, Vec::new(), "the son has no invite");
    assert_eq!(m.invites().await, Vec::new(), "the family has no invite");

    // Step 2: a name the relay would normalise is refused, not rewritten: the invitee's
    // device checks the signature with the name the relay serves.
    for name in [" 아들 ", "\u{110B}\u{1161}\u{1103}\u{1173}\u{11AF}"] {
        let refused = m
            .request(mom.invite_request_sealed(invite, family, son.user(), name, true))
            .await
            .expect_err("a name that is not normalised");
        assert_eq!(
            refused.code,
            ErrorCode::InvalidInput,
            "{name:?}: {refused:?}"
        );
    }
    assert_eq!(s.invites().await, Vec::new(), "still no invite");

    // Step 3: the signed one, for a sealed family, goes through (under the same id:
    // nothing was kept of the refused ones).
    let sent = m
        .request(mom.invite_request_sealed(invite, family, son.user(), "아들", true))
        .await
        .expect("invite sent");
    let Response::InviteSent(sent) = sent else {
        panic!("unexpected {sent:?}")
    };
    let expected = InviteSeal {
        inviter_device: mom.device,
        sealed: true,
        signature: match mom.invite_request_sealed(invite, family, son.user(), "아들", true) {
            Request::SendInvite { signature, .. } => signature,
            _ => unreachable!(),
        },
    };
    assert_eq!(sent.seal.as_ref(), Some(&expected));

    // Step 4: the son's device gets it live and in its list, seal and all, and the
    // signature verifies with his mother's device key over what the invite says.
    let received = s
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::InviteReceived(i)) => Some(i.clone()),
            _ => None,
        })
        .await;
    let listed = s.invites().await;
    assert_eq!(listed, vec![received.clone()]);
    assert_eq!(received.invite, invite);
    assert_eq!(received.proposed_name, "아들");
    assert_eq!(received.seal.as_ref(), Some(&expected));
    let key = mom.device_key.verifying_key();
    assert!(verifies(&received, &key), "the served seal verifies");
    // It says the family is sealed: served as not sealed, it would not verify.
    let mut tampered = received.clone();
    if let Some(seal) = &mut tampered.seal {
        seal.sealed = false;
    }
    assert!(!verifies(&tampered, &key), "a flipped flag does not verify");
    // Nor with another device's key.
    let other = mom.another_device().device_key.verifying_key();
    assert!(!verifies(&received, &other), "another key does not verify");
    // The family sees the same.
    assert_eq!(m.invites().await, vec![received]);

    // Step 5: an invite for a family that is not sealed says so, just as verifiably.
    let mut dad = Identity::new("dad@example.com", "dad");
    let mut d = Client::register(&server, &mut dad).await;
    let clear = InviteId::random();
    m.request(mom.invite_request(clear, family, dad.user(), "아빠"))
        .await
        .expect("second invite sent");
    let listed = d.invites().await;
    assert_eq!(listed.len(), 1);
    let seal = listed[0].seal.as_ref().expect("a seal");
    assert_eq!((seal.inviter_device, seal.sealed), (mom.device, false));
    assert_ne!(seal.signature, Signature([0; 64]));
    assert!(verifies(&listed[0], &key), "the clear invite verifies");
}
