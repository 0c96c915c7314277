//! Blob quotas and the blob sweep, against the real relay (issue 12, items 3 and 6):
//! cycling blobs through the snapshot slot cannot fill the disk, and the sweep deletes
//! what nothing references — never a blob a family or a user still holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use doran_protocol::{
    BlobHash, ClientFrame, DocId, ErrorFrame, FamilyId, InviteId, Request, Response, ServerFrame,
};
use support::{Client, Identity, Server, http, metric, signed_http};

/// Sweeps every second with no grace, so a test sees them happen; and lets a member
/// replace their own pending snapshot at once, as these tests cycle snapshots to see
/// what the sweep and the quota make of them (the relay's hold on that is tested in
/// relay_hostile).
const SWEEP_NOW: &str =
    r#""blob_gc_interval_secs": 1, "blob_gc_grace_secs": 0, "snapshot_replace_secs": 0"#;

fn blob_file(dir: &Path, hash: BlobHash) -> PathBuf {
    let hex = hash.to_hex();
    dir.join("blobs").join(&hex[..2]).join(hex)
}

/// Bytes of blob files in the relay's folder.
fn blob_bytes_on_disk(dir: &Path) -> u64 {
    let mut total = 0;
    for shard in std::fs::read_dir(dir.join("blobs")).expect("the blob folder") {
        let shard = shard.expect("an entry");
        if shard.file_name() == "tmp" {
            continue;
        }
        for file in std::fs::read_dir(shard.path()).expect("a shard") {
            total += file.expect("a file").metadata().expect("metadata").len();
        }
    }
    total
}

/// Sweeps completed so far, from `/metrics`.
async fn sweeps(server: &Server) -> u64 {
    let r = http(server, "GET", "/metrics", &[], b"").await;
    String::from_utf8_lossy(&r.body)
        .lines()
        .find_map(|l| l.strip_prefix("doran_blob_sweeps_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the sweep counter")
}

/// Waits until two more sweeps have completed: one of them started after everything
/// the test did before calling this.
async fn two_sweeps_later(server: &Server) {
    let target = sweeps(server).await + 2;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sweeps(server).await < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweep does not run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn upload(server: &Server, id: &Identity, family: FamilyId, bytes: &[u8]) -> (u16, BlobHash) {
    let hash = BlobHash::of(bytes);
    let path = format!("/blobs/{hash}?family={family}");
    (
        signed_http(server, id, "PUT", &path, bytes).await.status,
        hash,
    )
}

async fn download(server: &Server, id: &Identity, hash: BlobHash) -> u16 {
    signed_http(server, id, "GET", &format!("/blobs/{hash}"), b"")
        .await
        .status
}

async fn push_snapshot(
    c: &mut Client,
    doc: DocId,
    covers_seq: u64,
    blob: BlobHash,
    len: usize,
) -> Result<(), ErrorFrame> {
    c.send(&ClientFrame::PushSnapshot {
        doc,
        covers_seq,
        blob,
        len: len as u64,
    })
    .await;
    c.until(|f| match f {
        ServerFrame::SnapshotAccepted { doc: d, .. } if *d == doc => Some(Ok(())),
        ServerFrame::Error(e) if e.doc == Some(doc) => Some(Err(e.clone())),
        _ => None,
    })
    .await
}

/// `member` joins `family` of `host` through an invite.
async fn join(
    (h, host): (&mut Client, &Identity),
    (m, member): (&mut Client, &Identity),
    family: FamilyId,
) {
    let invite = InviteId::random();
    let sent = h
        .request(host.invite_request(invite, family, member.user()))
        .await;
    assert!(matches!(sent, Ok(Response::InviteSent(_))), "{sent:?}");
    let answered = m.request(member.answer_request(invite, true)).await;
    assert!(
        matches!(answered, Ok(Response::InviteAnswered { .. })),
        "{answered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycling_blobs_through_the_snapshot_slot_does_not_fill_the_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    const BLOB: usize = 100_000;
    let config = format!(r#"{{"limits":{{"family_quota_bytes": 450000, {SWEEP_NOW}}}}}"#);
    let server = Server::start_with_config(dir.path(), &config, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut c = Client::register(&server, &mut mom).await;
    let family = c.create_family().await;
    let doc = DocId::from(family);

    // Step 1: eight rounds of "upload a 100 KB blob, make it the snapshot" under a
    // 450 KB quota. Each replaced snapshot is released: it counts until a sweep has
    // collected it, so a round may have to wait for one.
    for round in 0..8u8 {
        let seq = c.push_ack(doc, vec![round; 10]).await.expect("a chunk");
        let bytes = vec![round; BLOB];
        let (mut status, blob) = upload(&server, &mom, family, &bytes).await;
        if status == 507 {
            two_sweeps_later(&server).await;
            status = upload(&server, &mom, family, &bytes).await.0;
        }
        assert_eq!(status, 201, "round {round}");
        push_snapshot(&mut c, doc, seq, blob, BLOB)
            .await
            .expect("the snapshot is taken");
    }

    // Step 2: once swept, the disk holds no more than the quota allows.
    two_sweeps_later(&server).await;
    let on_disk = blob_bytes_on_disk(dir.path());
    assert!(on_disk <= 450_000, "{on_disk} bytes of blobs on disk");
    assert!(on_disk >= BLOB as u64, "the current snapshot stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_keeps_every_blob_still_referenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(r#"{{"limits":{{{SWEEP_NOW}}}}}"#);
    let server = Server::start_with_config(dir.path(), &config, &[]);
    let mut host = Identity::new("host@example.com", "host");
    let mut h = Client::register(&server, &mut host).await;
    let mut kid = Identity::new("kid@example.com", "kid");
    let mut k = Client::register(&server, &mut kid).await;
    let mut aunt = Identity::new("aunt@example.com", "aunt");
    let mut a = Client::register(&server, &mut aunt).await;

    // Case 1: one photo granted to two families; one of them is deleted.
    let short_lived = h.create_family().await;
    let aunts = a.create_family().await;
    let shared = b"a photo both families have".to_vec();
    let (status, shared_hash) = upload(&server, &host, short_lived, &shared).await;
    assert_eq!(status, 201);
    assert_eq!(upload(&server, &aunt, aunts, &shared).await.0, 201);
    let (_, only_there) = upload(&server, &host, short_lived, b"only in the deleted family").await;
    let deleted = h
        .request(Request::DeleteFamily {
            family: short_lived,
        })
        .await;
    assert_eq!(deleted, Ok(Response::Done));

    // Case 2: the host's photo, used by a member as the family document's snapshot,
    // then replaced by the member's real snapshot.
    let family = h.create_family().await;
    let doc = DocId::from(family);
    join((&mut h, &host), (&mut k, &kid), family).await;
    let photo = b"the host's photo".to_vec();
    let (_, photo_hash) = upload(&server, &host, family, &photo).await;
    let seq = k
        .push_ack(doc, b"change 1".to_vec())
        .await
        .expect("a chunk");
    push_snapshot(&mut k, doc, seq, photo_hash, photo.len())
        .await
        .expect("any readable blob is taken as a snapshot");
    let first = b"the kid's first real snapshot".to_vec();
    let (_, first_hash) = upload(&server, &kid, family, &first).await;
    let seq = k
        .push_ack(doc, b"change 2".to_vec())
        .await
        .expect("a chunk");
    push_snapshot(&mut k, doc, seq, first_hash, first.len())
        .await
        .expect("a snapshot");
    // Downloaded while it is the snapshot: the relay keeps it in memory.
    assert_eq!(download(&server, &host, first_hash).await, 200);
    assert_eq!(
        metric(&server, "doran_blob_cache_bytes").await,
        first.len() as u64
    );
    let second = b"the kid's second snapshot".to_vec();
    let (_, second_hash) = upload(&server, &kid, family, &second).await;
    let seq = k
        .push_ack(doc, b"change 3".to_vec())
        .await
        .expect("a chunk");
    push_snapshot(&mut k, doc, seq, second_hash, second.len())
        .await
        .expect("a snapshot");

    // Case 3: a personal blob (an avatar).
    let avatar = b"the aunt's avatar".to_vec();
    let avatar_hash = BlobHash::of(&avatar);
    let path = format!("/blobs/{avatar_hash}?owner=me");
    assert_eq!(
        signed_http(&server, &aunt, "PUT", &path, &avatar)
            .await
            .status,
        201
    );

    two_sweeps_later(&server).await;

    // Still there and readable: the photo the other family holds, the host's photo
    // that was once the "snapshot", the current snapshot, the avatar.
    assert_eq!(download(&server, &aunt, shared_hash).await, 200);
    assert_eq!(download(&server, &kid, photo_hash).await, 200);
    assert_eq!(download(&server, &host, photo_hash).await, 200);
    assert_eq!(download(&server, &host, second_hash).await, 200);
    assert_eq!(download(&server, &aunt, avatar_hash).await, 200);
    for kept in [shared_hash, photo_hash, second_hash, avatar_hash] {
        assert!(blob_file(dir.path(), kept).is_file(), "{kept} was deleted");
    }
    // Gone: what only the deleted family held, and the replaced snapshot.
    for gone in [only_there, first_hash] {
        assert!(
            !blob_file(dir.path(), gone).exists(),
            "{gone} is still on disk"
        );
    }
    assert_eq!(download(&server, &kid, first_hash).await, 404);
    // The swept snapshot left the memory too; what was downloaded since is there.
    let kept_bytes = shared.len() + photo.len() + second.len() + avatar.len();
    assert_eq!(
        metric(&server, "doran_blob_cache_bytes").await,
        kept_bytes as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_pending_snapshot_leaves_no_blob_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(r#"{{"limits":{{"pending_snapshot_ttl_secs": 1, {SWEEP_NOW}}}}}"#);
    let server = Server::start_with_config(dir.path(), &config, &[]);
    let mut host = Identity::new("host@example.com", "host");
    let mut h = Client::register(&server, &mut host).await;
    let mut kid = Identity::new("kid@example.com", "kid");
    let mut k = Client::register(&server, &mut kid).await;
    let family = h.create_family().await;
    let doc = DocId::from(family);
    join((&mut h, &host), (&mut k, &kid), family).await;
    let seq = k
        .push_ack(doc, b"change 1".to_vec())
        .await
        .expect("a chunk");

    // The kid's own upload of a snapshot nobody confirms, and the host's photo
    // pushed by the kid as a "snapshot": both expire unconfirmed.
    let photo = b"the host's photo".to_vec();
    let (_, photo_hash) = upload(&server, &host, family, &photo).await;
    push_snapshot(&mut k, doc, seq, photo_hash, photo.len())
        .await
        .expect("pending");
    let save = b"the kid's snapshot".to_vec();
    let (status, save_hash) = upload(&server, &kid, family, &save).await;
    assert_eq!(status, 201);
    push_snapshot(&mut k, doc, seq, save_hash, save.len())
        .await
        .expect("pending");
    // Pending snapshots live a second: wait for the relay's clock to pass it (the
    // condition under test), then for sweeps that expire it and collect its blob.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    two_sweeps_later(&server).await;
    two_sweeps_later(&server).await;

    assert!(
        !blob_file(dir.path(), save_hash).exists(),
        "the expired snapshot's own upload is swept"
    );
    assert_eq!(download(&server, &kid, save_hash).await, 404);
    assert!(
        blob_file(dir.path(), photo_hash).is_file(),
        "the photo stays"
    );
    assert_eq!(download(&server, &kid, photo_hash).await, 200);
    assert_eq!(download(&server, &host, photo_hash).await, 200);
}
