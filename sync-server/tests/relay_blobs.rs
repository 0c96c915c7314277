//! Blobs over HTTP against the real binary: signed upload and download, `Range`,
//! `HEAD`, per-family authorisation, hash verification, size limit, replay.

mod support;

use doran_protocol::{BlobHash, FamilyId, Request};
use support::{Client, Identity, Server, http, signed_headers};

async fn family_of(c: &mut Client, title: &str) -> FamilyId {
    let family = FamilyId::random();
    c.request(Request::CreateFamily {
        family,
        title: title.into(),
        my_name: "나".into(),
    })
    .await
    .expect("family created");
    family
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_verified_ranged_and_authorised_per_family() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--max-blob-bytes", "1000"]);
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let fa = family_of(&mut a, "A").await;
    let fb = family_of(&mut b, "B").await;

    // Step 1: Alice uploads a photo to family A.
    let photo: Vec<u8> = (0..=255u8).cycle().take(600).collect();
    let hash = BlobHash::of(&photo);
    let put = format!("/blobs/{hash}?family={fa}");
    let r = http(
        &server,
        "PUT",
        &put,
        &signed_headers(&alice, "PUT", &put),
        &photo,
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("access-control-allow-origin"), None);

    // Step 2: she downloads it whole, a range of it, and its headers.
    let get = format!("/blobs/{hash}");
    let r = http(
        &server,
        "GET",
        &get,
        &signed_headers(&alice, "GET", &get),
        b"",
    )
    .await;
    assert_eq!((r.status, r.body.as_slice()), (200, photo.as_slice()));
    let mut headers = signed_headers(&alice, "GET", &get);
    headers.push(("range".into(), "bytes=10-19".into()));
    let r = http(&server, "GET", &get, &headers, b"").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &photo[10..20]);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/600"));
    let r = http(
        &server,
        "HEAD",
        &get,
        &signed_headers(&alice, "HEAD", &get),
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("600"));
    assert!(r.body.is_empty());

    // Step 3: Bob (family B only) cannot fetch it, even knowing its hash.
    let r = http(
        &server,
        "GET",
        &get,
        &signed_headers(&bob, "GET", &get),
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
    // Nor earn it by uploading other bytes under its name.
    let put_b = format!("/blobs/{hash}?family={fb}");
    let r = http(
        &server,
        "PUT",
        &put_b,
        &signed_headers(&bob, "PUT", &put_b),
        b"not the photo",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-doran-error"), Some("402"));
    let r = http(
        &server,
        "GET",
        &get,
        &signed_headers(&bob, "GET", &get),
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
    // Nor upload into Alice's family.
    let r = http(
        &server,
        "PUT",
        &put,
        &signed_headers(&bob, "PUT", &put),
        &photo,
    )
    .await;
    assert_eq!(r.status, 403);

    // Step 4: unsigned, replayed, and oversize requests are refused.
    let r = http(&server, "GET", &get, &[], b"").await;
    assert_eq!(r.status, 401);
    let replay = signed_headers(&alice, "GET", &get);
    assert_eq!(http(&server, "GET", &get, &replay, b"").await.status, 200);
    assert_eq!(http(&server, "GET", &get, &replay, b"").await.status, 401);
    let big = vec![1u8; 1001];
    let put_big = format!("/blobs/{}?family={fa}", BlobHash::of(&big));
    let r = http(
        &server,
        "PUT",
        &put_big,
        &signed_headers(&alice, "PUT", &put_big),
        &big,
    )
    .await;
    assert_eq!(r.status, 413);

    // Step 5: health and metrics answer.
    let r = http(&server, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
    let r = http(&server, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("doran_blob_bytes_in_total 600"), "{text}");
}
