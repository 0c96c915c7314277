//! The blob folder's disk keeps room for the database: quotas are per family and per
//! user and accounts are free, so nothing else stops uploads filling the disk. An
//! upload that would leave less than `limits.min_free_disk_bytes` free is refused
//! with `unavailable` (retry later) and nothing of it is stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{BlobHash, ErrorCode};
use support::{Client, Identity, Server, signed_http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_would_fill_the_disk_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    // On its own blob folder whatever backend the run chose (an S3 store is not
    // measured), asking for more free bytes than any disk has.
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"limits":{"min_free_disk_bytes":1000000000000000000}}"#,
    )
    .expect("the config file");
    let config = config.to_str().expect("a UTF-8 path").to_owned();
    let server = Server::start_exactly(dir.path(), &["--config", &config]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut c = Client::register(&server, &mut mom).await;
    let family = c.create_family().await;
    let photo = vec![7u8; 20_000];
    let hash = BlobHash::of(&photo);
    for path in [
        format!("/blobs/{hash}?family={family}"),
        format!("/blobs/{hash}?owner=me"),
    ] {
        let r = signed_http(&server, &mom, "PUT", &path, &photo).await;
        assert_eq!(
            (r.status, r.error_code()),
            (503, Some(ErrorCode::Unavailable)),
            "{path}"
        );
        assert!(r.header("retry-after").is_some(), "a retry is asked for");
    }
    let r = signed_http(&server, &mom, "GET", &format!("/blobs/{hash}"), b"").await;
    assert_eq!(r.status, 404, "nothing was stored");
    drop(server);

    // The same relay with room (the default asks for 1 GiB free) takes it.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_exactly(dir.path(), &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut c = Client::register(&server, &mut mom).await;
    let family = c.create_family().await;
    let path = format!("/blobs/{hash}?family={family}");
    let r = signed_http(&server, &mom, "PUT", &path, &photo).await;
    assert_eq!(r.status, 201, "{r:?}");
}
