//! A family's document log and its sealing, against the real relay (issue 18): in a
//! family created clear, the host's first envelope seals the log for good (also after
//! a `kill -9`); another member cannot seal it, and nobody pushes a clear chunk after
//! it; in a family whose id says it is sealed, no clear chunk is ever taken, nor in a
//! personal document whose id says so. Key logs, and personal documents made before
//! those were sealed, have no such rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{BlobHash, DocId, ErrorCode, FamilyId, Request};
use support::{Client, Identity, Server, clear, push_snapshot_of, sealed};

/// Mom's family `family` with dad in it: their clients, and their identities.
async fn mom_and_dad(server: &Server, family: FamilyId) -> (Client, Client, (Identity, Identity)) {
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut c = Client::register(server, &mut mom).await;
    c.request(Request::CreateFamily { family })
        .await
        .expect("family created");
    let mut dad = Identity::new("dad@example.com", "dad");
    let mut d = Client::register(server, &mut dad).await;
    let invite = doran_protocol::InviteId::random();
    c.request(mom.invite_request(invite, family, dad.user()))
        .await
        .expect("invite sent");
    d.request(dad.answer_request(invite, true))
        .await
        .expect("invite accepted");
    (c, d, (mom, dad))
}

fn code<T>(r: Result<T, doran_protocol::ErrorFrame>) -> Result<T, ErrorCode> {
    r.map_err(|e| e.code)
}

/// `by` uploads `bytes` to the family's blobs and pushes them as a snapshot of its
/// document covering `covers`: recorded (pending), or the refusal.
async fn push_snapshot(
    at: (&Server, &Identity, &mut Client),
    family: FamilyId,
    covers: u64,
    bytes: Vec<u8>,
) -> Result<(), ErrorCode> {
    let owner = format!("family={family}");
    push_snapshot_of(at, (DocId::from(family), &owner), covers, bytes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_first_envelope_seals_a_clear_family_for_good() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path());
    let family = FamilyId::random();
    let doc = DocId::from(family);
    let (mut mom, mut dad, (mom_id, _)) = mom_and_dad(&server, family).await;

    // Clear, both write clear; dad cannot seal it.
    assert_eq!(code(mom.push_ack(doc, clear(1)).await), Ok(1));
    assert_eq!(code(dad.push_ack(doc, clear(2)).await), Ok(2));
    assert_eq!(
        code(dad.push_ack(doc, sealed(3)).await),
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(code(dad.push_ack(doc, clear(4)).await), Ok(3));

    // Mom's envelope seals it: envelopes only from then on, from anyone.
    assert_eq!(code(mom.push_ack(doc, sealed(5)).await), Ok(4));
    assert_eq!(
        code(dad.push_ack(doc, clear(6)).await),
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(
        code(mom.push_ack(doc, clear(7)).await),
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(code(dad.push_ack(doc, sealed(8)).await), Ok(5));
    // Its snapshots must be sealed now too.
    assert_eq!(
        push_snapshot((&server, &mom_id, &mut mom), family, 4, clear(41)).await,
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(
        push_snapshot((&server, &mom_id, &mut mom), family, 4, sealed(42)).await,
        Ok(())
    );
    // A clear chunk stored before is acked again where it is (a lost ack retried).
    assert_eq!(code(dad.push_ack(doc, clear(2)).await), Ok(2));
    // The family's key log takes its MLS messages as before.
    assert_eq!(code(dad.push_ack(family.key_log(), clear(9)).await), Ok(1));

    // Sealed for good: after a kill -9 and a restart, still envelopes only.
    server.kill();
    let server = Server::start(dir.path());
    drop((mom, dad));
    let mut mom = Client::sign_in(&server, &mom_id).await;
    assert_eq!(
        code(mom.push_ack(doc, clear(10)).await),
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(code(mom.push_ack(doc, sealed(11)).await), Ok(6));
}

/// A clear snapshot pushed just before the host sealed the family is not confirmed
/// after it: confirmed, it would keep the clear history on the relay (as the
/// snapshot) and drop the chunks devices wait for a sealed snapshot to replace. The
/// clear chunks stay; a sealed snapshot is confirmed and drops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_snapshot_pending_at_the_sealing_is_never_confirmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let family = FamilyId::random();
    let doc = DocId::from(family);
    let (mut mom, mut dad, (mom_id, dad_id)) = mom_and_dad(&server, family).await;
    assert_eq!(code(mom.push_ack(doc, clear(1)).await), Ok(1));
    assert_eq!(code(dad.push_ack(doc, clear(2)).await), Ok(2));
    let clear_snapshot = clear(40);
    assert_eq!(
        push_snapshot(
            (&server, &mom_id, &mut mom),
            family,
            2,
            clear_snapshot.clone()
        )
        .await,
        Ok(())
    );
    // Mom seals it.
    assert_eq!(code(mom.push_ack(doc, sealed(3)).await), Ok(3));
    let confirm = |covers_seq, bytes: &[u8]| Request::ConfirmSnapshot {
        doc,
        covers_seq,
        blob: BlobHash::of(bytes),
    };
    assert_eq!(
        code(dad.request(confirm(2, &clear_snapshot)).await),
        Err(ErrorCode::DocumentSealed)
    );
    // Nothing was dropped: a device from 0 still gets every chunk, and no snapshot.
    let mut fresh = Client::sign_in(&server, &mom_id).await;
    let view = fresh.subscribe_view(doc, 0).await.expect("readable");
    assert_eq!(view.snapshot, None);
    let seqs: Vec<u64> = view.chunks.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, vec![1, 2, 3], "no chunk dropped");
    // A sealed snapshot covering every clear chunk is confirmed, and drops them.
    let sealed_snapshot = sealed(43);
    assert_eq!(
        push_snapshot(
            (&server, &dad_id, &mut dad),
            family,
            3,
            sealed_snapshot.clone()
        )
        .await,
        Ok(())
    );
    assert_eq!(
        code(mom.request(confirm(3, &sealed_snapshot)).await),
        Ok(doran_protocol::Response::Done)
    );
    let view = fresh.subscribe_view(doc, 0).await.expect("readable");
    assert_eq!(view.snapshot, Some((3, BlobHash::of(&sealed_snapshot))));
    assert!(view.chunks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_whose_id_says_sealed_takes_no_clear_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let family = FamilyId::new_family(true);
    let doc = DocId::from(family);
    let (mut mom, mut dad, (mom_id, _)) = mom_and_dad(&server, family).await;
    assert_eq!(
        code(mom.push_ack(doc, clear(1)).await),
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(code(dad.push_ack(doc, sealed(2)).await), Ok(1));
    assert_eq!(
        push_snapshot((&server, &mom_id, &mut mom), family, 1, clear(43)).await,
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(
        code(dad.push_ack(doc, clear(3)).await),
        Err(ErrorCode::DocumentSealed)
    );
}

/// A personal document whose id carries the sealed mark (every account made since
/// personal documents were sealed) takes envelopes only, chunks and snapshots: the
/// relay refuses a clear one as it does in a sealed family, so a device that would
/// write it in the clear cannot leave it on the relay's disk. One made before (no
/// mark) takes what its owner pushes, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_document_whose_id_says_sealed_takes_no_clear_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut mom = Identity::new("mom@example.com", "mom");
    mom.personal_doc = DocId(FamilyId::new_family(true).0);
    let mut c = Client::register(&server, &mut mom).await;
    let doc = mom.personal_doc;
    assert_eq!(
        code(c.push_ack(doc, clear(1)).await),
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(code(c.push_ack(doc, sealed(2)).await), Ok(1));
    assert_eq!(
        push_snapshot_of((&server, &mom, &mut c), (doc, "owner=me"), 1, clear(43)).await,
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(
        push_snapshot_of((&server, &mom, &mut c), (doc, "owner=me"), 1, sealed(44)).await,
        Ok(())
    );
    // Its key log has no rule (MLS messages are not envelopes).
    let keys = FamilyId(doc.0).key_log();
    assert_eq!(code(c.push_ack(keys, clear(3)).await), Ok(1));

    let mut dad = Identity::new("dad@example.com", "dad");
    assert!(!FamilyId(dad.personal_doc.0).says_sealed());
    let mut d = Client::register(&server, &mut dad).await;
    assert_eq!(code(d.push_ack(dad.personal_doc, clear(4)).await), Ok(1));
}
