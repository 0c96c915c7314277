//! Device certificates against the real relay (issue 18): a user vouches for their
//! devices — the user key for the first, the phone for the laptop it linked — the
//! relay keeps only what checks out, and serves them to co-members only; a co-member's
//! device finds the chain from the user key with the same code that feeds the
//! family's key group.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use doran_client_core::group::{certified_devices, certify};
use doran_protocol::{
    ErrorCode, FamilyId, InviteId, Request, Response, ServerEvent, UserId,
    model::{Certifier, DeviceCert, UserCerts},
};
use ed25519_dalek::SigningKey;
use support::{Client, Identity, Server, link_and_confirm};

async fn publish(c: &mut Client, certs: Vec<DeviceCert>) -> Result<(), ErrorCode> {
    match c.request(Request::PublishDeviceCerts { certs }).await {
        Ok(Response::Done) => Ok(()),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(e) => Err(e.code),
    }
}

async fn certs_of(c: &mut Client, user: UserId) -> Result<UserCerts, ErrorCode> {
    match c.request(Request::DeviceCerts { user }).await {
        Ok(Response::DeviceCerts(certs)) => Ok(certs),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(e) => Err(e.code),
    }
}

async fn issue_code(c: &mut Client) -> String {
    match c.request(Request::IssueLinkCode).await {
        Ok(Response::LinkCode { code, .. }) => code,
        other => panic!("no link code: {other:?}"),
    }
}

/// What a co-member's device vouches for, from what the relay served.
fn vouched(served: &UserCerts) -> BTreeSet<doran_protocol::DeviceId> {
    let revoked: BTreeSet<_> = served.revoked.iter().copied().collect();
    certified_devices(served.user, &served.user_key, &served.certs, &revoked)
        .into_keys()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_chain_a_users_devices_for_their_co_members_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut son = Identity::new("son@example.com", "son");
    let mut m = Client::register(&server, &mut mom).await;
    let mut s = Client::register(&server, &mut son).await;
    let mom_user = mom.user();

    // The user key vouches for the phone; the phone links a laptop and vouches for it.
    let phone = certify(
        &mom.user_key,
        Certifier::User,
        mom_user,
        mom.device,
        mom.device_public(),
    );
    assert_eq!(publish(&mut m, vec![phone.clone()]).await, Ok(()));
    let laptop = mom.another_device();
    let code = issue_code(&mut m).await;
    let mut l = link_and_confirm(&server, &mut m, &mom, &laptop, &code).await;
    let laptop_cert = certify(
        &mom.device_key,
        Certifier::Device(mom.device),
        mom_user,
        laptop.device,
        laptop.device_public(),
    );
    assert_eq!(publish(&mut m, vec![laptop_cert.clone()]).await, Ok(()));
    // Keeping one twice is fine, and keeps one.
    assert_eq!(publish(&mut l, vec![laptop_cert.clone()]).await, Ok(()));

    // Her own devices read them; the son, a stranger so far, does not.
    let own = certs_of(&mut l, mom_user).await.expect("her own");
    assert_eq!(own.certs, vec![phone.clone(), laptop_cert.clone()]);
    assert_eq!(
        certs_of(&mut s, mom_user).await.err(),
        Some(ErrorCode::Forbidden)
    );
    // Nor does anyone learn whether a user exists.
    assert_eq!(
        certs_of(&mut s, UserId::random()).await.err(),
        Some(ErrorCode::Forbidden)
    );

    // In a family together, the son's device reads them and finds both devices by
    // the chain from her user key.
    let family = FamilyId::random();
    m.request(Request::CreateFamily { family })
        .await
        .expect("created");
    let invite = InviteId::random();
    m.request(mom.invite_request(invite, family, son.user()))
        .await
        .expect("invited");
    s.until(|f| match f {
        doran_protocol::ServerFrame::Event(ServerEvent::InviteReceived(i)) => Some(i.invite),
        _ => None,
    })
    .await;
    s.request(son.answer_request(invite, true))
        .await
        .expect("accepted");
    let served = certs_of(&mut s, mom_user).await.expect("a co-member");
    assert_eq!(served.user_key, mom.user_public());
    assert_eq!(
        vouched(&served),
        BTreeSet::from([mom.device, laptop.device])
    );

    // What the relay refuses, keeping nothing of a batch with one bad certificate.
    let stranger = SigningKey::from_bytes(&rand::random());
    let forged = certify(
        &stranger,
        Certifier::User,
        mom_user,
        laptop.device,
        laptop.device_public(),
    );
    let good = certify(
        &mom.user_key,
        Certifier::User,
        mom_user,
        laptop.device,
        laptop.device_public(),
    );
    assert_eq!(
        publish(&mut m, vec![good.clone(), forged]).await,
        Err(ErrorCode::BadSignature)
    );
    let wrong_key = certify(
        &mom.user_key,
        Certifier::User,
        mom_user,
        laptop.device,
        son.device_public(),
    );
    assert_eq!(
        publish(&mut m, vec![wrong_key]).await,
        Err(ErrorCode::InvalidInput)
    );
    let sons_device = certify(
        &mom.user_key,
        Certifier::User,
        mom_user,
        son.device,
        son.device_public(),
    );
    assert_eq!(
        publish(&mut m, vec![sons_device]).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        certs_of(&mut m, mom_user).await.expect("own").certs.len(),
        2,
        "nothing of a refused batch was kept"
    );

    // The laptop is revoked: it vouches for nobody any more, and the son's device
    // no longer takes it.
    m.request(Request::RevokeDevice {
        device: laptop.device,
    })
    .await
    .expect("revoked");
    let by_revoked = certify(
        &laptop.device_key,
        Certifier::Device(laptop.device),
        mom_user,
        mom.device,
        mom.device_public(),
    );
    assert_eq!(
        publish(&mut m, vec![by_revoked]).await,
        Err(ErrorCode::Forbidden)
    );
    let served = certs_of(&mut s, mom_user).await.expect("a co-member");
    assert_eq!(served.revoked, vec![laptop.device]);
    assert_eq!(vouched(&served), BTreeSet::from([mom.device]));
}
