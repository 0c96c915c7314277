//! A blob upload is allowed when it starts and granted when its body is in; what
//! changed in between counts. A member removed, or a device revoked, while their
//! upload is in flight gets no grant, and uploads running side by side cannot each
//! fill the same room in the family's quota.
//!
//! Each upload asks for `100 Continue` and sends its body only once the relay has
//! answered it: the relay does so when it starts reading the body, after the checks
//! at the start. So "midway" is a point the test knows, not a timing guess.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{BlobHash, ErrorCode, FamilyId, InviteId, Request, Response};
use support::{Client, HttpResponse, Identity, Server, parse_response, signed_headers};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};

/// An upload whose head the relay has accepted: it is reading the body.
struct Started {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    body: Vec<u8>,
}

/// Sends the head of `PUT path` (with `expect: 100-continue`) and waits for the
/// relay's `100 Continue`, i.e. until the upload passed its start checks.
async fn start_upload(server: &Server, id: &Identity, path: &str, body: Vec<u8>) -> Started {
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nhost: relay\r\nconnection: close\r\n\
         expect: 100-continue\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in signed_headers(id, "PUT", path) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    write.write_all(head.as_bytes()).await.expect("head");
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = read.read(&mut byte).await.expect("read the interim answer");
        assert_eq!(n, 1, "closed before 100 Continue: {interim:?}");
        interim.push(byte[0]);
    }
    let interim = String::from_utf8_lossy(&interim);
    assert!(
        interim.starts_with("HTTP/1.1 100"),
        "the upload was refused at its start: {interim}"
    );
    Started { read, write, body }
}

/// Sends the rest of the body and reads the relay's answer.
async fn finish_upload(mut upload: Started) -> HttpResponse {
    upload.write.write_all(&upload.body).await.expect("body");
    let mut raw = Vec::new();
    upload
        .read
        .read_to_end(&mut raw)
        .await
        .expect("read the answer");
    parse_response(&raw)
}

/// Whether `id` can read the blob (`GET` answers 200).
async fn readable(server: &Server, id: &Identity, hash: BlobHash) -> bool {
    let r = support::signed_http(server, id, "GET", &format!("/blobs/{hash}"), b"").await;
    match r.status {
        200 => true,
        404 => false,
        other => panic!("GET answered {other}: {r:?}"),
    }
}

/// 엄마 hosts a family that 아들 has joined.
async fn family_with_son(server: &Server) -> (Identity, Client, Identity, Client, FamilyId) {
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(server, &mut mom).await;
    let family = m.create_family().await;
    let mut son = Identity::new("son@example.com", "son");
    let mut s = Client::register(server, &mut son).await;
    let invite = InviteId::random();
    m.request(mom.invite_request(invite, family, son.user()))
        .await
        .expect("invite sent");
    s.request(son.answer_request(invite, true))
        .await
        .expect("invite accepted");
    (mom, m, son, s, family)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_during_an_upload_gets_no_grant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (mom, mut m, son, _s, family) = family_with_son(&server).await;

    // Step 1: 아들 starts uploading a photo to the family; the relay accepts the head.
    let photo = vec![3u8; 40_000];
    let hash = BlobHash::of(&photo);
    let upload = start_upload(
        &server,
        &son,
        &format!("/blobs/{hash}?family={family}"),
        photo,
    )
    .await;

    // Step 2: meanwhile 엄마 removes him from the family.
    let removed = m
        .request(Request::RemoveMember {
            family,
            user: son.user(),
        })
        .await;
    assert_eq!(removed, Ok(Response::Done));

    // Step 3: the body arrives whole, and is refused: he is no longer a member.
    let r = finish_upload(upload).await;
    assert_eq!(
        (r.status, r.error_code()),
        (403, Some(ErrorCode::Forbidden)),
        "{r:?}"
    );

    // Step 4: the family holds no such blob.
    assert!(
        !readable(&server, &mom, hash).await,
        "the photo was granted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_revoked_during_an_upload_gets_no_grant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(&server, &mut mom).await;
    m.create_family().await;
    let code_text = match m.request(Request::IssueLinkCode).await {
        Ok(Response::LinkCode { code, .. }) => code,
        other => panic!("expected a link code, got {other:?}"),
    };
    let laptop = mom.another_device();
    drop(support::link_and_confirm(&server, &mut m, &mom, &laptop, &code_text).await);

    // Step 1: the laptop starts uploading 엄마's avatar.
    let avatar = vec![5u8; 30_000];
    let hash = BlobHash::of(&avatar);
    let upload = start_upload(&server, &laptop, &format!("/blobs/{hash}?owner=me"), avatar).await;

    // Step 2: 엄마 revokes the laptop from her phone.
    let revoked = m
        .request(Request::RevokeDevice {
            device: laptop.device,
        })
        .await;
    assert_eq!(revoked, Ok(Response::Done));

    // Step 3: the body arrives whole, and is refused as the revoked device's.
    let r = finish_upload(upload).await;
    assert_eq!(
        (r.status, r.error_code()),
        (401, Some(ErrorCode::DeviceRevoked)),
        "{r:?}"
    );

    // Step 4: it is not 엄마's personal blob.
    assert!(
        !readable(&server, &mom, hash).await,
        "the avatar was granted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_uploads_cannot_share_the_same_room_in_the_quota() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Room for one 60 000-byte photo, not two.
    let config = r#"{"limits":{"family_quota_bytes": 100000}}"#;
    let server = Server::start_with_config(dir.path(), config, &[]);
    let (mom, _m, son, _s, family) = family_with_son(&server).await;

    // Step 1: both start a photo while the family holds nothing; each fits alone.
    let first = vec![1u8; 60_000];
    let second = vec![2u8; 60_000];
    let (first_hash, second_hash) = (BlobHash::of(&first), BlobHash::of(&second));
    let a = start_upload(
        &server,
        &mom,
        &format!("/blobs/{first_hash}?family={family}"),
        first,
    )
    .await;
    let b = start_upload(
        &server,
        &son,
        &format!("/blobs/{second_hash}?family={family}"),
        second,
    )
    .await;

    // Step 2: both bodies arrive: one is granted, the other finds the quota full.
    let (ra, rb) = tokio::join!(finish_upload(a), finish_upload(b));
    let mut answers = [(ra.status, ra.error_code()), (rb.status, rb.error_code())];
    answers.sort_by_key(|(status, _)| *status);
    assert_eq!(
        answers,
        [(201, None), (507, Some(ErrorCode::QuotaExceeded))],
        "{ra:?} {rb:?}"
    );

    // Step 3: exactly one of the photos is the family's.
    let held = [
        readable(&server, &mom, first_hash).await,
        readable(&server, &mom, second_hash).await,
    ];
    assert_eq!(held.iter().filter(|&&h| h).count(), 1, "{held:?}");
}
