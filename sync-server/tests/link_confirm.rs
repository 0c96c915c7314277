//! A link code alone adds no device (DESIGN §identity): the new device that presents
//! it waits until a signed-in device of the same account confirms it. Against the
//! real relay binary: who may confirm, what a rejection, a second claimant and an
//! expired request do, and a first device that was offline when the request came.

mod support;

use std::time::Duration;

use doran_protocol::{ErrorCode, Request, Response, ServerEvent, ServerFrame};
use support::{Client, Identity, Server, link_and_confirm};

async fn issue_code(c: &mut Client) -> String {
    match c.request(Request::IssueLinkCode).await {
        Ok(Response::LinkCode { code, .. }) => code,
        other => panic!("no link code: {other:?}"),
    }
}

async fn device_count(c: &mut Client) -> usize {
    match c.request(Request::ListDevices).await {
        Ok(Response::Devices(list)) => list.len(),
        other => panic!("no device list: {other:?}"),
    }
}

async fn pending(c: &mut Client) -> Vec<doran_protocol::PendingLinkInfo> {
    match c.request(Request::ListPendingLinks).await {
        Ok(Response::PendingLinks(list)) => list,
        other => panic!("no pending links: {other:?}"),
    }
}

fn refused(r: Result<Client, doran_protocol::ErrorFrame>) -> ErrorCode {
    match r {
        Ok(_) => panic!("signed in, expected a refusal"),
        Err(e) => e.code,
    }
}

/// Tries to sign `id` in as a known device; the refusal code.
async fn sign_in_refused(server: &Server, id: &Identity) -> ErrorCode {
    let mut c = Client::connect(server).await;
    let challenge = c.hello().await;
    c.send(&id.signin_frame(&challenge)).await;
    match c.next_relevant().await {
        ServerFrame::Error(e) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_alone_adds_no_device_until_confirmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let code = issue_code(&mut a).await;
    let laptop = alice.another_device();

    // The code is claimed, and the first device is asked; nothing is added yet.
    let waiting = Client::link(&server, &laptop, &code).await;
    assert_eq!(refused(waiting), ErrorCode::LinkPending);
    let asked = a.link_requested().await;
    assert_eq!(asked.device, laptop.device);
    assert_eq!(asked.device_key, laptop.device_public());
    assert_eq!(asked.client, "relay-test/1");
    assert_eq!(pending(&mut a).await, vec![asked.clone()]);
    assert_eq!(device_count(&mut a).await, 1);
    assert_eq!(
        sign_in_refused(&server, &laptop).await,
        ErrorCode::UnknownDevice
    );
    // Asking again only waits more: the first device is not asked twice.
    let again = Client::link(&server, &laptop, &code).await;
    assert_eq!(refused(again), ErrorCode::LinkPending);

    // Confirmed: the devices hear it, and the new device's next try signs it in.
    let done = a.request(alice.confirm_link_request(&asked, true)).await;
    assert!(matches!(done, Ok(Response::Done)), "{done:?}");
    let answered = a
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::LinkAnswered { link, accepted }) => {
                Some((*link, *accepted))
            }
            ServerFrame::Event(ServerEvent::LinkRequested(_)) => {
                panic!("asked twice for one request")
            }
            _ => None,
        })
        .await;
    assert_eq!(answered, (asked.link, true));
    let added = a
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::DeviceAdded(info)) => Some(info.clone()),
            _ => None,
        })
        .await;
    assert_eq!(added.device, laptop.device);
    let mut l = Client::link(&server, &laptop, &code)
        .await
        .expect("linked once confirmed");
    assert_eq!(device_count(&mut l).await, 2);
    assert!(pending(&mut a).await.is_empty());
    // From now on it signs in like any device.
    drop(l);
    Client::sign_in(&server, &laptop).await;
    // Answered once only.
    let twice = a.request(alice.confirm_link_request(&asked, false)).await;
    assert_eq!(twice.err().map(|e| e.code), Some(ErrorCode::LinkAnswered));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_device_is_told_and_the_code_is_spent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let code = issue_code(&mut a).await;
    let stranger = alice.another_device();
    assert_eq!(
        refused(Client::link(&server, &stranger, &code).await),
        ErrorCode::LinkPending
    );
    let asked = a.link_requested().await;
    let done = a.request(alice.confirm_link_request(&asked, false)).await;
    assert!(matches!(done, Ok(Response::Done)), "{done:?}");
    assert_eq!(
        refused(Client::link(&server, &stranger, &code).await),
        ErrorCode::LinkRejected
    );
    // Nobody else can use the code either.
    assert_eq!(
        refused(Client::link(&server, &alice.another_device(), &code).await),
        ErrorCode::LinkClaimed
    );
    assert_eq!(device_count(&mut a).await, 1);
    assert!(pending(&mut a).await.is_empty());
    assert_eq!(
        sign_in_refused(&server, &stranger).await,
        ErrorCode::UnknownDevice
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_claimant_of_a_code_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let code = issue_code(&mut a).await;
    let laptop = alice.another_device();
    assert_eq!(
        refused(Client::link(&server, &laptop, &code).await),
        ErrorCode::LinkPending
    );
    let asked = a.link_requested().await;
    // Someone who read the code over the shoulder, with their own key.
    let thief = alice.another_device();
    assert_eq!(
        refused(Client::link(&server, &thief, &code).await),
        ErrorCode::LinkClaimed
    );
    assert_eq!(pending(&mut a).await, vec![asked.clone()]);
    // The rightful claimant still links.
    let done = a.request(alice.confirm_link_request(&asked, true)).await;
    assert!(matches!(done, Ok(Response::Done)), "{done:?}");
    Client::link(&server, &laptop, &code).await.expect("linked");
    assert_eq!(
        sign_in_refused(&server, &thief).await,
        ErrorCode::UnknownDevice
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_device_of_the_same_account_confirms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let mut mallory = Identity::new("mallory@example.com", "mallory");
    let mut m = Client::register(&server, &mut mallory).await;
    let code = issue_code(&mut a).await;
    let laptop = alice.another_device();
    assert_eq!(
        refused(Client::link(&server, &laptop, &code).await),
        ErrorCode::LinkPending
    );
    let asked = a.link_requested().await;

    // Another account, signing properly with its own device, even knowing the id.
    let other = m.request(mallory.confirm_link_request(&asked, true)).await;
    assert_eq!(other.err().map(|e| e.code), Some(ErrorCode::NotFound));
    assert!(pending(&mut m).await.is_empty(), "not told about it either");
    // Alice's own device, with a signature over another device or answer.
    let mut forged = asked.clone();
    forged.device_key = mallory.device_public();
    let bad = a.request(alice.confirm_link_request(&forged, true)).await;
    assert_eq!(bad.err().map(|e| e.code), Some(ErrorCode::BadSignature));
    let Request::ConfirmLink { signature, .. } = alice.confirm_link_request(&asked, false) else {
        unreachable!()
    };
    let flipped = Request::ConfirmLink {
        link: asked.link,
        accept: true,
        signature,
    };
    let bad = a.request(flipped).await;
    assert_eq!(bad.err().map(|e| e.code), Some(ErrorCode::BadSignature));

    // Nothing changed.
    assert_eq!(pending(&mut a).await, vec![asked]);
    assert_eq!(device_count(&mut a).await, 1);
    assert_eq!(
        refused(Client::link(&server, &laptop, &code).await),
        ErrorCode::LinkPending
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_request_cannot_be_confirmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        Server::start_with_config(dir.path(), r#"{"limits":{"link_code_ttl_secs":2}}"#, &[]);
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let code = issue_code(&mut a).await;
    let laptop = alice.another_device();
    assert_eq!(
        refused(Client::link(&server, &laptop, &code).await),
        ErrorCode::LinkPending
    );
    let asked = a.link_requested().await;
    // The relay's clock decides: wait until it no longer lists the request.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !pending(&mut a).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = a.request(alice.confirm_link_request(&asked, true)).await;
    assert_eq!(late.err().map(|e| e.code), Some(ErrorCode::LinkExpired));
    assert_eq!(
        refused(Client::link(&server, &laptop, &code).await),
        ErrorCode::LinkExpired
    );
    assert_eq!(device_count(&mut a).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_first_device_is_asked_when_it_reconnects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let code = issue_code(&mut a).await;
    drop(a);
    let laptop = alice.another_device();
    assert_eq!(
        refused(Client::link(&server, &laptop, &code).await),
        ErrorCode::LinkPending
    );
    // Back online: the request comes with the sign-in, and in the list.
    let mut a = Client::sign_in(&server, &alice).await;
    let asked = a.link_requested().await;
    assert_eq!(asked.device, laptop.device);
    assert_eq!(pending(&mut a).await, vec![asked.clone()]);
    let done = a.request(alice.confirm_link_request(&asked, true)).await;
    assert!(matches!(done, Ok(Response::Done)), "{done:?}");
    Client::link(&server, &laptop, &code).await.expect("linked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helper_links_and_confirms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let code = issue_code(&mut a).await;
    let laptop = alice.another_device();
    let mut l = link_and_confirm(&server, &mut a, &alice, &laptop, &code).await;
    assert_eq!(device_count(&mut l).await, 2);
}
