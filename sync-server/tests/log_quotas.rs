//! Disk limits on document logs and families, against the real relay (issue 12,
//! item 6): one account can no longer fill the relay's disk with chunks or families.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{
    BlobHash, ClientFrame, DocId, ErrorCode, FamilyId, InviteId, Request, Response, ServerFrame,
};
use support::{Client, Identity, Server, signed_http};

/// A 1 KiB chunk, different for each `n`.
fn chunk(n: u32) -> Vec<u8> {
    let mut bytes = vec![0u8; 1024];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes
}

/// Pushes 1 KiB chunks until the relay refuses one; returns how many were acked and
/// the refusal.
async fn push_until_refused(c: &mut Client, doc: DocId) -> (u32, doran_protocol::ErrorFrame) {
    for n in 0..1_000 {
        if let Err(e) = c.push_ack(doc, chunk(n)).await {
            return (n, e);
        }
    }
    panic!("1000 chunks (1 MiB) were accepted past the quota");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_log_is_refused_past_its_quota_until_compacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits":{"family_log_quota_bytes":10000}}"#,
        &[],
    );
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut c = Client::register(&server, &mut mom).await;
    let family = c.create_family().await;
    let doc = DocId::from(family);

    // Step 1: nine 1 KiB chunks fit in 10 000 bytes; the tenth is refused, typed.
    let (acked, refused) = push_until_refused(&mut c, doc).await;
    assert_eq!(acked, 9);
    assert_eq!(refused.code, ErrorCode::DocumentFull);
    assert_eq!(refused.doc, Some(doc));
    // A chunk already stored is still acked (a retry after a lost ack).
    assert_eq!(c.push_ack(doc, chunk(0)).await.map_err(|e| e.code), Ok(1));

    // Step 2: a snapshot covering the log frees what it covers.
    let snapshot = b"automerge save of nine changes".to_vec();
    let blob = BlobHash::of(&snapshot);
    let path = format!("/blobs/{blob}?family={family}");
    assert_eq!(
        signed_http(&server, &mom, "PUT", &path, &snapshot)
            .await
            .status,
        201
    );
    c.send(&ClientFrame::PushSnapshot {
        doc,
        covers_seq: 9,
        blob,
        len: snapshot.len() as u64,
    })
    .await;
    c.until(|f| match f {
        ServerFrame::SnapshotAccepted { .. } => Some(()),
        ServerFrame::Error(e) => panic!("snapshot refused: {e:?}"),
        _ => None,
    })
    .await;
    // Pending, it frees nothing: the chunks stay until another member confirms it.
    assert_eq!(
        c.push_ack(doc, chunk(100)).await.map_err(|e| e.code),
        Err(ErrorCode::DocumentFull)
    );
    let mut dad = Identity::new("dad@example.com", "dad");
    let mut d = Client::register(&server, &mut dad).await;
    let invite = InviteId::random();
    c.request(mom.invite_request(invite, family, dad.user()))
        .await
        .expect("invite sent");
    d.request(dad.answer_request(invite, true))
        .await
        .expect("invite accepted");
    let confirmed = d
        .request(Request::ConfirmSnapshot {
            doc,
            covers_seq: 9,
            blob,
        })
        .await;
    assert_eq!(confirmed, Ok(Response::Done));
    assert_eq!(
        c.push_ack(doc, chunk(100)).await.map_err(|e| e.code),
        Ok(10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_log_is_refused_past_its_quota() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        dir.path(),
        r#"{"limits":{"personal_log_quota_bytes":5000}}"#,
        &[],
    );
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut c = Client::register(&server, &mut mom).await;
    let (acked, refused) = push_until_refused(&mut c, mom.personal_doc).await;
    assert_eq!(acked, 4);
    assert_eq!(refused.code, ErrorCode::DocumentFull);
    // Her families' documents have their own quota.
    let family = c.create_family().await;
    assert!(c.push_ack(DocId::from(family), chunk(1)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn families_per_user_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        Server::start_with_config(dir.path(), r#"{"limits":{"max_families_per_user":2}}"#, &[]);
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(&server, &mut mom).await;
    let mut dad = Identity::new("dad@example.com", "dad");
    let mut d = Client::register(&server, &mut dad).await;

    // Step 1: two families; the third is refused, typed, and not created.
    let first = m.create_family().await;
    m.create_family().await;
    let third = FamilyId::random();
    let got = m.request(Request::CreateFamily { family: third }).await;
    assert_eq!(got.map_err(|e| e.code), Err(ErrorCode::TooManyFamilies));
    assert_eq!(m.families().await.len(), 2);

    // Step 2: joining a family counts too.
    let dads = d.create_family().await;
    let invite = InviteId::random();
    let sent = d
        .request(dad.invite_request(invite, dads, mom.user()))
        .await;
    assert!(matches!(sent, Ok(Response::InviteSent(_))), "{sent:?}");
    let answered = m.request(mom.answer_request(invite, true)).await;
    assert_eq!(
        answered.map_err(|e| e.code),
        Err(ErrorCode::TooManyFamilies)
    );

    // Step 3: deleting one makes room.
    let deleted = m.request(Request::DeleteFamily { family: first }).await;
    assert_eq!(deleted, Ok(Response::Done));
    let answered = m.request(mom.answer_request(invite, true)).await;
    assert!(
        matches!(answered, Ok(Response::InviteAnswered { .. })),
        "{answered:?}"
    );
}
