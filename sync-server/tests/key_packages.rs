//! Key packages against the real relay (issue 18): each device publishes its MLS
//! last-resort KeyPackage, a new one in place of the old; the relay serves those of
//! the user's devices that are not revoked to the user, their co-members, whoever a
//! pending invite links them with, and a connection that found them with
//! `LookupUser` (an invite's card is sealed to the invitee's devices before the
//! invite exists) — and to nobody else. Device certificates follow the same rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{
    DeviceId, ErrorCode, InviteId, Request, Response, UserId, limits::MAX_KEY_PACKAGE_BYTES,
    model::UserCerts,
};
use support::{Client, Identity, Server, link_and_confirm};

async fn publish(c: &mut Client, package: Vec<u8>) -> Result<(), ErrorCode> {
    match c.request(Request::PublishKeyPackage { package }).await {
        Ok(Response::Done) => Ok(()),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(e) => Err(e.code),
    }
}

async fn packages_of(c: &mut Client, user: UserId) -> Result<Vec<(DeviceId, Vec<u8>)>, ErrorCode> {
    match c.request(Request::KeyPackagesOf { user }).await {
        Ok(Response::KeyPackages(list)) => {
            Ok(list.into_iter().map(|p| (p.device, p.package)).collect())
        }
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

async fn lookup(c: &mut Client, email: &str) -> Option<UserId> {
    match c
        .request(Request::LookupUser {
            email: email.into(),
        })
        .await
    {
        Ok(Response::UserFound(found)) => found.map(|entry| entry.user),
        other => panic!("unexpected {other:?}"),
    }
}

async fn issue_code(c: &mut Client) -> String {
    match c.request(Request::IssueLinkCode).await {
        Ok(Response::LinkCode { code, .. }) => code,
        other => panic!("no link code: {other:?}"),
    }
}

/// Whether `a` and `b` may read each other's key packages and device certificates.
async fn see_each_other(a: (&mut Client, UserId), b: (&mut Client, UserId)) -> bool {
    let (a, a_user) = a;
    let (b, b_user) = b;
    let a_reads = packages_of(a, b_user).await;
    let b_reads = packages_of(b, a_user).await;
    let a_certs = certs_of(a, b_user).await;
    let b_certs = certs_of(b, a_user).await;
    let answers = [a_reads.err(), b_reads.err(), a_certs.err(), b_certs.err()];
    assert!(
        answers.iter().all(|e| *e == answers[0]),
        "the same answer both ways, for both: {answers:?}"
    );
    match answers[0] {
        None => true,
        Some(ErrorCode::Forbidden) => false,
        Some(other) => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_packages_are_served_to_co_members_and_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut son = Identity::new("son@example.com", "son");
    let mut stranger = Identity::new("stranger@example.com", "stranger");
    let mut m = Client::register(&server, &mut mom).await;
    let mut s = Client::register(&server, &mut son).await;
    let mut x = Client::register(&server, &mut stranger).await;
    let mom_user = mom.user();

    // Nothing published yet; then a package, then another in its place.
    assert_eq!(packages_of(&mut m, mom_user).await, Ok(vec![]));
    assert_eq!(publish(&mut m, b"phone v1".to_vec()).await, Ok(()));
    assert_eq!(
        packages_of(&mut m, mom_user).await,
        Ok(vec![(mom.device, b"phone v1".to_vec())])
    );
    assert_eq!(publish(&mut m, b"phone v2".to_vec()).await, Ok(()));
    assert_eq!(
        packages_of(&mut m, mom_user).await,
        Ok(vec![(mom.device, b"phone v2".to_vec())])
    );

    // Empty or too large: refused, nothing kept.
    assert_eq!(
        publish(&mut m, vec![7; MAX_KEY_PACKAGE_BYTES + 1]).await,
        Err(ErrorCode::InvalidInput)
    );
    assert_eq!(publish(&mut m, vec![]).await, Err(ErrorCode::InvalidInput));
    assert_eq!(
        packages_of(&mut m, mom_user).await,
        Ok(vec![(mom.device, b"phone v2".to_vec())])
    );
    // The largest allowed is kept.
    let largest = vec![9; MAX_KEY_PACKAGE_BYTES];
    assert_eq!(publish(&mut m, largest.clone()).await, Ok(()));
    assert_eq!(
        packages_of(&mut m, mom_user).await,
        Ok(vec![(mom.device, largest)])
    );
    assert_eq!(publish(&mut m, b"phone v3".to_vec()).await, Ok(()));

    // Strangers read nothing, and learn nothing of who exists.
    assert_eq!(
        packages_of(&mut s, mom_user).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        packages_of(&mut x, UserId::random()).await,
        Err(ErrorCode::Forbidden)
    );

    // A co-member reads them, oldest device first: the phone, then a laptop it links.
    let family = m.create_family().await;
    let invite = InviteId::random();
    m.request(mom.invite_request(invite, family, son.user()))
        .await
        .expect("invited");
    s.request(son.answer_request(invite, true))
        .await
        .expect("accepted");
    let laptop = mom.another_device();
    let code = issue_code(&mut m).await;
    let mut l = link_and_confirm(&server, &mut m, &mom, &laptop, &code).await;
    assert_eq!(publish(&mut l, b"laptop".to_vec()).await, Ok(()));
    assert_eq!(
        packages_of(&mut s, mom_user).await,
        Ok(vec![
            (mom.device, b"phone v3".to_vec()),
            (laptop.device, b"laptop".to_vec()),
        ])
    );
    assert_eq!(
        packages_of(&mut x, mom_user).await,
        Err(ErrorCode::Forbidden)
    );

    // A revoked device's package is never served again.
    m.request(Request::RevokeDevice {
        device: laptop.device,
    })
    .await
    .expect("revoked");
    assert_eq!(
        packages_of(&mut s, mom_user).await,
        Ok(vec![(mom.device, b"phone v3".to_vec())])
    );
    assert_eq!(
        packages_of(&mut m, mom_user).await,
        Ok(vec![(mom.device, b"phone v3".to_vec())])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_invite_links_inviter_and_invitee_while_it_is_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut son = Identity::new("son@example.com", "son");
    let mut stranger = Identity::new("stranger@example.com", "stranger");
    let mut m = Client::register(&server, &mut mom).await;
    let mut s = Client::register(&server, &mut son).await;
    let mut x = Client::register(&server, &mut stranger).await;
    let (mom_user, son_user) = (mom.user(), son.user());
    assert_eq!(publish(&mut m, b"mom's".to_vec()).await, Ok(()));
    assert_eq!(publish(&mut s, b"son's".to_vec()).await, Ok(()));
    let family = m.create_family().await;
    assert!(!see_each_other((&mut m, mom_user), (&mut s, son_user)).await);

    // While an invite is pending, inviter and invitee read each other's.
    let rejected = InviteId::random();
    m.request(mom.invite_request(rejected, family, son_user))
        .await
        .expect("invited");
    assert!(see_each_other((&mut m, mom_user), (&mut s, son_user)).await);
    assert_eq!(
        packages_of(&mut s, mom_user).await,
        Ok(vec![(mom.device, b"mom's".to_vec())])
    );
    assert_eq!(
        packages_of(&mut m, son_user).await,
        Ok(vec![(son.device, b"son's".to_vec())])
    );
    // Nobody else gains anything from it.
    assert!(!see_each_other((&mut x, stranger.user()), (&mut s, son_user)).await);
    assert!(!see_each_other((&mut x, stranger.user()), (&mut m, mom_user)).await);

    // Rejected: no longer.
    s.request(son.answer_request(rejected, false))
        .await
        .expect("rejected");
    assert!(!see_each_other((&mut m, mom_user), (&mut s, son_user)).await);

    // Withdrawn: no longer either.
    let withdrawn = InviteId::random();
    m.request(mom.invite_request(withdrawn, family, son_user))
        .await
        .expect("invited again");
    assert!(see_each_other((&mut m, mom_user), (&mut s, son_user)).await);
    m.request(Request::WithdrawInvite { invite: withdrawn })
        .await
        .expect("withdrawn");
    assert!(!see_each_other((&mut m, mom_user), (&mut s, son_user)).await);

    // Accepted: co-members from then on.
    let accepted = InviteId::random();
    m.request(mom.invite_request(accepted, family, son_user))
        .await
        .expect("invited a third time");
    s.request(son.answer_request(accepted, true))
        .await
        .expect("accepted");
    assert!(see_each_other((&mut m, mom_user), (&mut s, son_user)).await);
    assert!(!see_each_other((&mut x, stranger.user()), (&mut s, son_user)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_shows_a_strangers_keys_to_that_connection_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut aunt = Identity::new("aunt@example.com", "aunt");
    let mut m = Client::register(&server, &mut mom).await;
    let mut a1 = Client::register(&server, &mut aunt).await;
    // Another connection of the same device, and another device of the same user.
    let mut a2 = Client::sign_in(&server, &aunt).await;
    let tablet = aunt.another_device();
    let code = issue_code(&mut a1).await;
    let mut a3 = link_and_confirm(&server, &mut a1, &aunt, &tablet, &code).await;
    let mom_user = mom.user();
    assert_eq!(publish(&mut m, b"mom's".to_vec()).await, Ok(()));

    // Strangers: nothing, before any lookup.
    assert_eq!(
        packages_of(&mut a1, mom_user).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        certs_of(&mut a1, mom_user).await.err(),
        Some(ErrorCode::Forbidden)
    );
    // A lookup that finds nobody opens nothing.
    assert_eq!(lookup(&mut a1, "nobody@example.com").await, None);
    assert_eq!(
        packages_of(&mut a1, mom_user).await,
        Err(ErrorCode::Forbidden)
    );

    // An account in no family invites nobody: its lookups open nothing.
    assert_eq!(lookup(&mut a1, "mom@example.com").await, Some(mom_user));
    assert_eq!(
        packages_of(&mut a1, mom_user).await,
        Err(ErrorCode::Forbidden)
    );
    a1.create_family().await;
    m.create_family().await;

    // The connection that found her reads her keys (to seal an invite's card to her
    // devices before the invite exists)...
    assert_eq!(lookup(&mut a1, "Mom@Example.com").await, Some(mom_user));
    assert_eq!(
        packages_of(&mut a1, mom_user).await,
        Ok(vec![(mom.device, b"mom's".to_vec())])
    );
    let certs = certs_of(&mut a1, mom_user).await.expect("her certificates");
    assert_eq!((certs.user, certs.user_key), (mom_user, mom.user_public()));
    // ...and no other: not another connection of the same device, not another device
    // of the same user, not a new connection of the one that looked.
    for (case, c) in [("same device", &mut a2), ("other device", &mut a3)] {
        assert_eq!(
            packages_of(c, mom_user).await,
            Err(ErrorCode::Forbidden),
            "{case}"
        );
        assert_eq!(
            certs_of(c, mom_user).await.err(),
            Some(ErrorCode::Forbidden),
            "{case}"
        );
    }
    drop(a1);
    let mut again = Client::sign_in(&server, &aunt).await;
    assert_eq!(
        packages_of(&mut again, mom_user).await,
        Err(ErrorCode::Forbidden)
    );
    // Nor does looking someone up show them the looker's keys.
    assert_eq!(lookup(&mut m, "aunt@example.com").await, Some(aunt.user()));
    assert_eq!(
        packages_of(&mut again, mom_user).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        packages_of(&mut m, aunt.user()).await,
        Ok(Vec::new()),
        "mom found the aunt, who published nothing"
    );
    assert_eq!(
        packages_of(&mut a2, mom_user).await,
        Err(ErrorCode::Forbidden)
    );
}
