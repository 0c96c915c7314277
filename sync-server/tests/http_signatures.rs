//! Signed blob requests against the real relay (issue 12, item 8): a signature names
//! its relay, and remembering signatures costs bounded memory whatever the rate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{BlobHash, DeviceId, ErrorCode, ServerFrame};
use support::{
    Client, Identity, SERVER_ID, Server, TIMEOUT, a_large_blob, http, maced_get, maced_headers,
    metric, now_ms, session_key, signed_headers, signed_http,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_signed_for_another_relay_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut mom).await;

    // The relay says its id, the one its challenges carry.
    let r = http(&server, "GET", "/server-id", &[], b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, SERVER_ID.as_bytes()));

    // A request captured at (or signed for) another relay does not verify here.
    let path = format!("/blobs/{}", BlobHash::of(b"anything"));
    let time = now_ms();
    let sig = mom.sign_device(&doran_server::auth::http_message(
        "another-relay",
        "GET",
        &path,
        time,
    ));
    let headers = vec![
        ("x-doran-device".to_owned(), mom.device.to_string()),
        ("x-doran-time".to_owned(), time.to_string()),
        ("x-doran-signature".to_owned(), sig.to_string()),
    ];
    let r = http(&server, "GET", &path, &headers, b"").await;
    assert_eq!(
        (r.status, r.error_code()),
        (401, Some(ErrorCode::BadSignature))
    );
    // Signed for this relay, the same request is served (404: no such blob).
    assert_eq!(
        signed_http(&server, &mom, "GET", &path, b"").await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_of_signed_requests_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits":{"http_replay_cache_max":20}}"#,
        &[],
    );
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut mom).await;
    let path = format!("/blobs/{}", BlobHash::of(b"anything"));
    for i in 0..20 {
        let r = signed_http(&server, &mom, "GET", &path, b"").await;
        assert_eq!(r.status, 404, "request {i}");
    }
    // The 21st distinct signature within the window is refused, busy, with a hint.
    let r = signed_http(&server, &mom, "GET", &path, b"").await;
    assert_eq!(
        (r.status, r.error_code()),
        (503, Some(ErrorCode::Busy)),
        "{r:?}"
    );
    assert!(r.header("retry-after").is_some());
}

/// One account flooding signed requests gets `busy` once it holds its share of the
/// relay's memory of signatures; another account's requests are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_cannot_stop_everyone_s_blobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits":{"http_replay_cache_max":40,"http_replay_per_user":20}}"#,
        &[],
    );
    let mut flooder = Identity::new("flood@example.com", "flooder");
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut flooder).await;
    Client::register(&server, &mut mom).await;
    let path = format!("/blobs/{}", BlobHash::of(b"anything"));
    for i in 0..20 {
        let r = signed_http(&server, &flooder, "GET", &path, b"").await;
        assert_eq!(r.status, 404, "request {i}");
    }
    let r = signed_http(&server, &flooder, "GET", &path, b"").await;
    assert_eq!(
        (r.status, r.error_code()),
        (503, Some(ErrorCode::Busy)),
        "{r:?}"
    );
    assert!(r.header("retry-after").is_some());
    for i in 0..20 {
        let r = signed_http(&server, &mom, "GET", &path, b"").await;
        assert_eq!(r.status, 404, "mom's request {i} is served");
    }
}

/// A download whose reader stops taking bytes is closed once the relay has waited
/// `write_stall_secs` for it, instead of holding the relay's buffers for as long as the
/// reader likes (the reader then gets what the kernel's buffers held, and the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_nobody_reads_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(dir.path(), r#"{"limits":{"write_stall_secs":1}}"#, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut mom).await;
    let (blob, path) = a_large_blob(&server, &mom).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
        server.addr
    );
    for (n, v) in signed_headers(&mom, "GET", &path) {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut first = vec![0u8; 64 * 1024];
    let n = stream.read(&mut first).await.expect("the answer starts");
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n.min(200)])
    );
    // The reader stops for three times the limit: the stimulus, not a wait for an
    // event.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut rest = Vec::new();
    // The relay has closed the connection: reading ends (with what was in flight).
    let _ = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest))
        .await
        .expect("the relay ended the stalled download");
    assert!(
        n + rest.len() < blob.len(),
        "the whole blob came after the stall ({} bytes)",
        n + rest.len()
    );
}

/// A signed request's answer gives the device a session key. Its next requests are
/// proved by a MAC under it: served, each once, counted as such; the key proves
/// nothing for another device, another request, or another expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_s_answer_gives_a_key_that_proves_the_next_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut mom).await;
    let mut son = Identity::new("son@example.com", "son");
    Client::register(&server, &mut son).await;
    let path = format!("/blobs/{}", BlobHash::of(b"anything"));

    let r = signed_http(&server, &mom, "GET", &path, b"").await;
    assert_eq!(r.status, 404);
    let key = session_key(&r).expect("a session key with the answer");
    let life = key.0.saturating_sub(now_ms());
    assert!((590_000..=600_000).contains(&life), "{life}");

    for _ in 0..3 {
        a_maced_download_is_served(&server, mom.device, key, &path).await;
    }
    assert_eq!(metric(&server, "doran_http_maced_total").await, 3);
    assert_eq!(metric(&server, "doran_http_signed_total").await, 1);

    // Once per request, like a signature.
    let once = maced_headers(mom.device, key, "GET", &path);
    assert_eq!(http(&server, "GET", &path, &once, b"").await.status, 404);
    let again = http(&server, "GET", &path, &once, b"").await;
    assert_eq!(
        (again.status, again.error_code()),
        (401, Some(ErrorCode::ChallengeReplayed))
    );

    // The son knows mom's key's expiry, not her key; with her key he is still not
    // her device; a MAC for one request does not prove another; an expiry of its
    // own names another key.
    let other_path = format!("/blobs/{}", BlobHash::of(b"other"));
    let mut moved = maced_headers(mom.device, key, "GET", &path);
    moved[2].1 = format!(
        "{}.{}",
        key.0 - 1,
        &moved[2].1[moved[2].1.find('.').unwrap() + 1..]
    );
    for (who, headers, pq) in [
        (
            "the son naming mom's key",
            maced_headers(son.device, key, "GET", &path),
            &path,
        ),
        (
            "another path",
            maced_headers(mom.device, key, "GET", &path),
            &other_path,
        ),
        (
            "another method",
            maced_headers(mom.device, key, "HEAD", &path),
            &path,
        ),
        ("another expiry", moved, &path),
    ] {
        let r = http(&server, "GET", pq, &headers, b"").await;
        assert_eq!(
            (r.status, r.error_code()),
            (401, Some(ErrorCode::BadSignature)),
            "{who}"
        );
    }
    an_upload_under_the_key_is_refused(&server, mom.device, key, b"an upload under a session key")
        .await;
    // Both proofs at once are not guessed between.
    let mut both = signed_headers(&mom, "GET", &path);
    both.push(maced_headers(mom.device, key, "GET", &path).remove(2));
    assert_eq!(
        http(&server, "GET", &path, &both, b"").await.error_code(),
        Some(ErrorCode::NotSignedIn)
    );
}

/// The websocket's sign-in proves the device's key as a signed request does: the frame
/// right after `SignedIn` is a session key, which proves that device's downloads and
/// no other's, exactly as a signed answer's key does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_gives_a_key_that_proves_the_device_s_downloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut c = Client::connect(&server).await;
    let challenge = c.hello().await;
    c.send(&mom.register_frame(&challenge)).await;
    match c.next_any().await {
        Some(ServerFrame::SignedIn { user, .. }) => mom.user = Some(user),
        other => panic!("expected SignedIn, got {other:?}"),
    }
    let key = match c.next_any().await {
        Some(ServerFrame::HttpSessionKey(key)) => key,
        other => panic!("expected the session key right after SignedIn, got {other:?}"),
    };
    let life = key.expires.saturating_sub(now_ms());
    assert!((590_000..=600_000).contains(&life), "{life}");
    assert_eq!(key.life_ms, 600_000);
    let mut son = Identity::new("son@example.com", "son");
    let mut son_conn = Client::register(&server, &mut son).await;
    son_conn.quiet(1).await;
    let son_key = son_conn.http_session.expect("the son's own key");
    assert_ne!(son_key.key, key.key);

    let path = format!("/blobs/{}", BlobHash::of(b"anything"));
    let key = (key.expires, key.key);
    a_maced_download_is_served(&server, mom.device, key, &path).await;
    assert_eq!(metric(&server, "doran_http_maced_total").await, 1);
    assert_eq!(metric(&server, "doran_http_signed_total").await, 0);
    // Mom's key is hers: the son naming it, or naming his own under mom's device,
    // proves nothing.
    for (who, device, key) in [
        ("the son with mom's key", son.device, key),
        (
            "mom's device with the son's key",
            mom.device,
            (son_key.expires, son_key.key),
        ),
    ] {
        let r = maced_get(&server, device, key, &path).await;
        assert_eq!(
            (r.status, r.error_code()),
            (401, Some(ErrorCode::BadSignature)),
            "{who}"
        );
    }
    an_upload_under_the_key_is_refused(
        &server,
        mom.device,
        key,
        b"an upload under the sign-in's key",
    )
    .await;
}

/// A download MAC'd under `key` is served (`404`: nothing is stored at `path`), and
/// its answer brings no key: a MAC'd request never does.
async fn a_maced_download_is_served(
    server: &Server,
    device: DeviceId,
    key: (u64, [u8; 32]),
    path: &str,
) {
    let r = maced_get(server, device, key, path).await;
    assert_eq!(r.status, 404, "served: {r:?}");
    assert!(
        session_key(&r).is_none(),
        "a MAC'd request never brings a key"
    );
}

/// A key proves downloads only: an upload MAC'd under it is refused.
async fn an_upload_under_the_key_is_refused(
    server: &Server,
    device: DeviceId,
    key: (u64, [u8; 32]),
    blob: &[u8],
) {
    let put = format!("/blobs/{}?owner=me", BlobHash::of(blob));
    let r = http(
        server,
        "PUT",
        &put,
        &maced_headers(device, key, "PUT", &put),
        blob,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (401, Some(ErrorCode::BadSignature))
    );
}

/// A restarted relay turns away the keys it gave before (its secret was drawn at
/// start): `bad_signature`, and the signed request gets a new key that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_relay_refuses_the_keys_it_gave_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut mom).await;
    let path = format!("/blobs/{}", BlobHash::of(b"anything"));
    let old = session_key(&signed_http(&server, &mom, "GET", &path, b"").await).expect("a key");
    drop(server);

    let server = Server::start(dir.path());
    let r = maced_get(&server, mom.device, old, &path).await;
    if std::env::var("DORAN_TEST_BACKEND").as_deref() == Ok("cluster") {
        // Relays of a cluster share their secret: the key outlives a restart.
        assert_eq!(r.status, 404, "{r:?}");
        return;
    }
    assert_eq!(
        (r.status, r.error_code()),
        (401, Some(ErrorCode::BadSignature))
    );
    let new = session_key(&signed_http(&server, &mom, "GET", &path, b"").await).expect("a key");
    assert_ne!(new.1, old.1);
    let r = maced_get(&server, mom.device, new, &path).await;
    assert_eq!(r.status, 404);
}

/// A device revoked after it got a key is refused with it, as with its signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_s_key_proves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut owner = Identity::new("owner@example.com", "owner");
    let mut o = Client::register(&server, &mut owner).await;
    let code = match o.request(doran_protocol::Request::IssueLinkCode).await {
        Ok(doran_protocol::Response::LinkCode { code, .. }) => code,
        other => panic!("expected a link code, got {other:?}"),
    };
    let laptop = owner.another_device();
    drop(support::link_and_confirm(&server, &mut o, &owner, &laptop, &code).await);
    let path = format!("/blobs/{}", BlobHash::of(b"anything"));
    let key = session_key(&signed_http(&server, &laptop, "GET", &path, b"").await).expect("a key");
    // Checked once under the key before the revocation (the relay may keep that
    // answer; it must not outlive the revocation).
    a_maced_download_is_served(&server, laptop.device, key, &path).await;
    o.request(doran_protocol::Request::RevokeDevice {
        device: laptop.device,
    })
    .await
    .expect("revoked");
    let r = maced_get(&server, laptop.device, key, &path).await;
    assert_eq!(
        (r.status, r.error_code()),
        (401, Some(ErrorCode::DeviceRevoked)),
        "{r:?}"
    );
}

/// A relay told to give no session keys gives none, by answer or by sign-in, and takes
/// no MAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_giving_no_session_keys_takes_signatures_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        Server::start_with_config(dir.path(), r#"{"limits":{"http_session_key_secs":0}}"#, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut c = Client::register(&server, &mut mom).await;
    // Nothing came between the sign-in and the pong (the client keeps a key aside).
    c.quiet(1).await;
    assert_eq!(c.http_session, None, "no key with the sign-in");
    let path = format!("/blobs/{}", BlobHash::of(b"anything"));
    let r = signed_http(&server, &mom, "GET", &path, b"").await;
    assert_eq!((r.status, r.header("x-doran-session-key")), (404, None));
    let made_up = (now_ms() + 60_000, [7; 32]);
    let r = maced_get(&server, mom.device, made_up, &path).await;
    assert_eq!(
        (r.status, r.error_code()),
        (401, Some(ErrorCode::BadSignature))
    );
}

/// A refused MAC says nothing about whether the device it names exists: an expired
/// key, or a MAC that is not the relay's, get the same answer for a device that
/// exists and for one that never did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_mac_does_not_tell_whether_its_device_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&server, &mut mom).await;
    let nobody = DeviceId([0x5a; 16]);
    let path = format!("/blobs/{}", BlobHash::of(b"anything"));
    for (what, key, code) in [
        ("an expired key", (1, [7; 32]), ErrorCode::ChallengeExpired),
        (
            "a made-up key",
            (now_ms() + 60_000, [7; 32]),
            ErrorCode::BadSignature,
        ),
    ] {
        let answers: Vec<_> = [mom.device, nobody]
            .into_iter()
            .map(|device| maced_headers(device, key, "GET", &path))
            .collect();
        for headers in answers {
            let r = http(&server, "GET", &path, &headers, b"").await;
            assert_eq!((r.status, r.error_code()), (401, Some(code)), "{what}");
        }
    }
}
