//! Blobs over HTTP against the real binary: signed upload and download, `Range`,
//! `HEAD`, per-family authorisation, hash verification, size limit, replay.

mod support;

use doran_protocol::{BlobHash, FamilyId, InviteId, Request, Response};
use support::{Client, Identity, Server, http, maced_get, metric, signed_headers, signed_http};

async fn family_of(c: &mut Client) -> FamilyId {
    let family = FamilyId::random();
    c.request(Request::CreateFamily { family })
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
    let fa = family_of(&mut a).await;
    let fb = family_of(&mut b).await;

    // Step 1: Alice uploads a photo to family A.
    let photo: Vec<u8> = (0..=255u8).cycle().take(600).collect();
    let hash = BlobHash::of(&photo);
    let put = format!("/blobs/{hash}?family={fa}");
    let r = signed_http(&server, &alice, "PUT", &put, &photo).await;
    assert_eq!(r.status, 201, "{r:?}");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        assert_eq!(r.header(name), Some(value), "{name}");
    }
    assert_eq!(r.header("access-control-allow-origin"), None);

    // Step 2: she downloads it whole, a range of it, and its headers.
    let get = format!("/blobs/{hash}");
    let r = signed_http(&server, &alice, "GET", &get, b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, photo.as_slice()));
    let mut headers = signed_headers(&alice, "GET", &get);
    headers.push(("range".into(), "bytes=10-19".into()));
    let r = http(&server, "GET", &get, &headers, b"").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &photo[10..20]);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/600"));
    let r = signed_http(&server, &alice, "HEAD", &get, b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("600"));
    assert!(r.body.is_empty());

    // Step 3: Bob (family B only) cannot fetch it, even knowing its hash.
    let r = signed_http(&server, &bob, "GET", &get, b"").await;
    assert_eq!(r.status, 404);
    // Nor earn it by uploading other bytes under its name.
    let put_b = format!("/blobs/{hash}?family={fb}");
    let r = signed_http(&server, &bob, "PUT", &put_b, b"not the photo").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-doran-error"), Some("402"));
    let r = signed_http(&server, &bob, "GET", &get, b"").await;
    assert_eq!(r.status, 404);
    // Nor upload into Alice's family.
    let r = signed_http(&server, &bob, "PUT", &put, &photo).await;
    assert_eq!(r.status, 403);

    // Step 4: unsigned, replayed, and oversize requests are refused.
    let r = http(&server, "GET", &get, &[], b"").await;
    assert_eq!(r.status, 401);
    let replay = signed_headers(&alice, "GET", &get);
    assert_eq!(http(&server, "GET", &get, &replay, b"").await.status, 200);
    assert_eq!(http(&server, "GET", &get, &replay, b"").await.status, 401);
    let big = vec![1u8; 1001];
    let put_big = format!("/blobs/{}?family={fa}", BlobHash::of(&big));
    let r = signed_http(&server, &alice, "PUT", &put_big, &big).await;
    assert_eq!(r.status, 413);

    // Step 5: health and metrics answer.
    let r = http(&server, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
    let r = http(&server, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("doran_blob_bytes_in_total 600"), "{text}");
}

/// `PUT` of `bytes` to `path` signed by `id`: the status and the `x-doran-error`.
async fn put(server: &Server, id: &Identity, path: &str, bytes: &[u8]) -> (u16, Option<String>) {
    let r = http(server, "PUT", path, &signed_headers(id, "PUT", path), bytes).await;
    (r.status, r.header("x-doran-error").map(str::to_owned))
}

/// Signed `GET /blobs/{hash}` by `id`: the status and the body.
async fn get(server: &Server, id: &Identity, hash: BlobHash) -> (u16, Vec<u8>) {
    let path = format!("/blobs/{hash}");
    let r = http(server, "GET", &path, &signed_headers(id, "GET", &path), b"").await;
    (r.status, r.body)
}

/// `host` invites `member` (signed in as `mc`) to `family`, and `member` accepts.
async fn join(
    (hc, host): (&mut Client, &Identity),
    (mc, member): (&mut Client, &Identity),
    family: FamilyId,
) {
    let invite = InviteId::random();
    hc.request(host.invite_request(invite, family, member.user()))
        .await
        .expect("invite sent");
    mc.request(member.answer_request(invite, true))
        .await
        .expect("invite accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnail_every_member_downloads_is_read_from_the_folder_once_and_only_for_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The cache is the blob folder's: this relay is on SQLite and its folder whatever
    // backend the suite runs on.
    let server = Server::start_exactly(dir.path(), &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut son = Identity::new("son@example.com", "son");
    let mut other = Identity::new("other@example.com", "other");
    let mut m = Client::register(&server, &mut mom).await;
    let mut s = Client::register(&server, &mut son).await;
    let mut o = Client::register(&server, &mut other).await;
    let family = family_of(&mut m).await;
    join((&mut m, &mom), (&mut s, &son), family).await;
    let _ = family_of(&mut o).await;

    // Step 1: mom uploads a thumbnail; she and her son download it, twice each.
    let thumb: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let hash = BlobHash::of(&thumb);
    let put_path = format!("/blobs/{hash}?family={family}");
    assert_eq!(put(&server, &mom, &put_path, &thumb).await, (201, None));
    for id in [&mom, &son, &mom, &son] {
        assert_eq!(get(&server, id, hash).await, (200, thumb.clone()));
    }
    // The folder was read once; the other three came from memory.
    assert_eq!(metric(&server, "doran_blob_cache_misses_total").await, 1);
    assert_eq!(metric(&server, "doran_blob_cache_hits_total").await, 3);
    assert_eq!(metric(&server, "doran_blob_cache_bytes").await, 20_000);

    // Step 2: held in memory, it is still nobody else's: a stranger who knows its
    // hash gets what he would get had it never been read.
    assert_eq!(get(&server, &other, hash).await.0, 404);
    let path = format!("/blobs/{hash}");
    let r = signed_http(&server, &other, "HEAD", &path, b"").await;
    assert_eq!(r.status, 404);
    assert_eq!(metric(&server, "doran_blob_cache_hits_total").await, 3);

    // Step 3: a range of it, and its headers, are the blob's.
    let mut headers = signed_headers(&son, "GET", &path);
    headers.push(("range".into(), "bytes=19990-".into()));
    let r = http(&server, "GET", &path, &headers, b"").await;
    assert_eq!((r.status, r.body.as_slice()), (206, &thumb[19_990..]));
    let r = signed_http(&server, &son, "HEAD", &path, b"").await;
    assert_eq!(r.header("content-length"), Some("20000"));

    // Step 4: the file on disk damaged under the relay (a failing disk): the copy in
    // memory was checked against the name when it was kept, and is what is served.
    let hex = hash.to_hex();
    let file = dir.path().join("blobs").join(&hex[..2]).join(&hex);
    std::fs::write(&file, b"damaged").expect("overwrite the blob file");
    assert_eq!(get(&server, &son, hash).await, (200, thumb.clone()));
}

/// The invites `c` sees.
async fn invites(c: &mut Client) -> Vec<InviteId> {
    match c.request(Request::ListInvites).await {
        Ok(Response::Invites(list)) => list.into_iter().map(|i| i.invite).collect(),
        other => panic!("expected Invites, got {other:?}"),
    }
}

/// The relay on SQLite answers a repeated download check and invite list from memory
/// (`doran_store_cache_*`), and what it answers is the store's answer of the moment:
/// a son who leaves the family is refused at once the photo he fetched a moment
/// before, and an invite sent to him is in his very next list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_from_memory_follow_the_family_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // SQLite keeps the answers: this relay is on SQLite whatever backend the suite
    // runs on.
    let server = Server::start_exactly(dir.path(), &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut son = Identity::new("son@example.com", "son");
    let mut m = Client::register(&server, &mut mom).await;
    let mut s = Client::register(&server, &mut son).await;
    let family = family_of(&mut m).await;
    join((&mut m, &mom), (&mut s, &son), family).await;
    let photo: Vec<u8> = (0..3_000u32).map(|i| (i % 253) as u8).collect();
    let hash = BlobHash::of(&photo);
    let put_path = format!("/blobs/{hash}?family={family}");
    assert_eq!(put(&server, &mom, &put_path, &photo).await, (201, None));

    // Step 1: the son's device downloads it twice under its session key: the second
    // check is answered from memory.
    s.quiet(1).await;
    let key = s.http_session.as_ref().expect("the son's session key");
    let key = (key.expires, key.key);
    let path = format!("/blobs/{hash}");
    let before = metric(&server, "doran_store_cache_hits_total").await;
    for _ in 0..2 {
        let r = maced_get(&server, son.device, key, &path).await;
        assert_eq!((r.status, &r.body), (200, &photo));
    }
    let hits = metric(&server, "doran_store_cache_hits_total").await;
    assert_eq!(hits - before, 1, "the second check from memory");

    // Step 2: mom removes him; his next download of it is refused.
    m.request(Request::RemoveMember {
        family,
        user: son.user(),
    })
    .await
    .expect("removed");
    let r = maced_get(&server, son.device, key, &path).await;
    assert_eq!(r.status, 404, "no longer his to read: {r:?}");

    // Step 3: his invite list, asked twice, then mom invites him back: it is there.
    assert!(invites(&mut s).await.is_empty());
    let hits = metric(&server, "doran_store_cache_hits_total").await;
    assert!(invites(&mut s).await.is_empty());
    assert_eq!(
        metric(&server, "doran_store_cache_hits_total").await,
        hits + 1
    );
    let invite = InviteId::random();
    m.request(mom.invite_request(invite, family, son.user()))
        .await
        .expect("invite sent");
    assert_eq!(invites(&mut s).await, vec![invite]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_turned_off_every_download_reads_the_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"blob_cache_bytes": 0}"#).expect("write the config");
    let config = config.to_str().expect("a UTF-8 path");
    let server = Server::start_exactly(dir.path(), &["--config", config]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(&server, &mut mom).await;
    let family = family_of(&mut m).await;
    let thumb = vec![3u8; 5_000];
    let hash = BlobHash::of(&thumb);
    let put_path = format!("/blobs/{hash}?family={family}");
    assert_eq!(put(&server, &mom, &put_path, &thumb).await, (201, None));
    assert_eq!(get(&server, &mom, hash).await, (200, thumb.clone()));
    let r = http(&server, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&r.body);
    assert!(!text.contains("doran_blob_cache"), "{text}");
    // What is on disk is what is served, each time.
    let hex = hash.to_hex();
    std::fs::write(
        dir.path().join("blobs").join(&hex[..2]).join(&hex),
        b"damaged",
    )
    .expect("overwrite the blob file");
    assert_eq!(get(&server, &mom, hash).await, (200, b"damaged".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_blobs_are_read_by_everyone_sharing_a_family_with_the_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &["--max-blob-bytes", "1000", "--user-quota-bytes", "1500"],
    );
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_");
    let mut carol = Identity::new("carol@example.com", "carol");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;
    let _c = Client::register(&server, &mut carol).await;

    // Step 1: Alice, in no family yet, uploads her avatar as a personal blob. She
    // reads it; nobody else does.
    let avatar: Vec<u8> = (0..=255u8).cycle().skip(7).take(700).collect();
    let hash = BlobHash::of(&avatar);
    let mine = format!("/blobs/{hash}?owner=me");
    assert_eq!(put(&server, &alice, &mine, &avatar).await, (201, None));
    assert_eq!(get(&server, &alice, hash).await, (200, avatar.clone()));
    assert_eq!(get(&server, &bob, hash).await.0, 404);

    // Step 2: a family made after the upload, and Bob joining it later, open it to
    // Bob. Carol, who shares no family with Alice, still gets 404.
    let family = a.create_family().await;
    assert_eq!(get(&server, &bob, hash).await.0, 404, "not a member yet");
    join((&mut a, &alice), (&mut b, &bob), family).await;
    assert_eq!(get(&server, &bob, hash).await, (200, avatar.clone()));
    assert_eq!(get(&server, &carol, hash).await.0, 404);

    // Step 3: Bob's own avatar opens to Alice the same way; Bob's personal upload
    // counts against his quota, not the family's or Alice's.
    let bobs: Vec<u8> = vec![0xb0; 400];
    let bob_hash = BlobHash::of(&bobs);
    let bob_put = format!("/blobs/{bob_hash}?owner=me");
    assert_eq!(put(&server, &bob, &bob_put, &bobs).await.0, 201);
    assert_eq!(get(&server, &alice, bob_hash).await, (200, bobs.clone()));

    // Step 4: the per-user quota: Alice has 700 of 1500 bytes; 900 more do not fit
    // (507, quota_exceeded), 800 do. The family's quota is separate.
    let big: Vec<u8> = vec![0xa1; 900];
    let big_put = format!("/blobs/{}?owner=me", BlobHash::of(&big));
    assert_eq!(
        put(&server, &alice, &big_put, &big).await,
        (507, Some("404".into()))
    );
    assert_eq!(get(&server, &alice, BlobHash::of(&big)).await.0, 404);
    let fits: Vec<u8> = vec![0xa2; 800];
    let fits_put = format!("/blobs/{}?owner=me", BlobHash::of(&fits));
    assert_eq!(put(&server, &alice, &fits_put, &fits).await.0, 201);
    let for_family = format!("/blobs/{}?family={family}", BlobHash::of(&big));
    assert_eq!(put(&server, &alice, &for_family, &big).await.0, 201);
    // Uploading an avatar again is free (the grant exists; its size counted once).
    assert_eq!(put(&server, &alice, &mine, &avatar).await.0, 201);

    // Step 5: the upload must say for whom: one of ?family= and ?owner=me.
    for query in [
        String::new(),
        format!("?owner={}", bob.user()),
        format!("?family={family}&owner=me"),
        "?owner=".into(),
    ] {
        let path = format!("/blobs/{hash}{query}");
        assert_eq!(
            put(&server, &carol, &path, &avatar).await,
            (400, Some("400".into())),
            "{query}"
        );
    }
    assert_eq!(get(&server, &carol, hash).await.0, 404, "no grant earned");
    // The bytes are verified as for a family.
    assert_eq!(
        put(&server, &carol, &mine, b"not the avatar").await,
        (400, Some("402".into()))
    );

    // Step 6: when Bob leaves the family, Alice's avatar closes to him again.
    b.request(Request::LeaveFamily { family })
        .await
        .expect("left");
    assert_eq!(get(&server, &bob, hash).await.0, 404);
    assert_eq!(get(&server, &alice, bob_hash).await.0, 404);
    assert_eq!(get(&server, &bob, bob_hash).await, (200, bobs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_snapshot_is_granted_to_its_owner_and_read_by_later_co_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_");
    let mut a = Client::register(&server, &mut alice).await;
    let mut b = Client::register(&server, &mut bob).await;

    // Step 1: Alice, in no family, writes her personal document and snapshots it
    // (a personal blob: before personal grants, she had no family to upload it to).
    let personal = alice.personal_doc;
    for bytes in [&b"mood 1"[..], b"mood 2", b"mood 3"] {
        a.push_ack(personal, bytes.to_vec()).await.expect("acked");
    }
    let saved = b"automerge save of moods 1-2".to_vec();
    let blob = BlobHash::of(&saved);
    let path = format!("/blobs/{blob}?owner=me");
    assert_eq!(put(&server, &alice, &path, &saved).await.0, 201);
    a.send(&doran_protocol::ClientFrame::PushSnapshot {
        doc: personal,
        covers_seq: 2,
        blob,
        len: saved.len() as u64,
    })
    .await;
    a.until(|f| match f {
        doran_protocol::ServerFrame::SnapshotAccepted { .. } => Some(()),
        doran_protocol::ServerFrame::Error(e) => panic!("snapshot refused: {e:?}"),
        _ => None,
    })
    .await;

    // Step 2: Bob joins a family of Alice's made afterwards; he reads her personal
    // document as snapshot + tail, and downloads the snapshot's bytes.
    let family = a.create_family().await;
    join((&mut a, &alice), (&mut b, &bob), family).await;
    // Pending until a device other than Alice's confirms it: Bob's reads the
    // pending snapshot's bytes, and vouches for it.
    assert_eq!(get(&server, &bob, blob).await, (200, saved.clone()));
    let confirmed = b
        .request(Request::ConfirmSnapshot {
            doc: personal,
            covers_seq: 2,
            blob,
        })
        .await;
    assert_eq!(confirmed, Ok(Response::Done));
    let view = b.subscribe_view(personal, 0).await.expect("readable");
    assert_eq!(view.snapshot, Some((2, blob)));
    assert_eq!(view.chunks, vec![(3, b"mood 3".to_vec())]);
    assert_eq!(get(&server, &bob, blob).await, (200, saved));
}
