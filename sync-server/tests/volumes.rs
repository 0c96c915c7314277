//! A family's per-year volumes against the real relay (issue 17): a member opens one
//! (`OpenVolume`), and from then on it is read, written, sealed and compacted like the
//! family's document, by the same members only; it survives a `kill -9`, has a cap
//! per family, and goes with the family.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_protocol::{DocId, ErrorCode, FamilyId, InviteId, Request, Response, ServerFrame};
use support::{Client, Identity, Server, clear, push_snapshot_of, sealed};

fn code<T>(r: Result<T, doran_protocol::ErrorFrame>) -> Result<T, ErrorCode> {
    r.map_err(|e| e.code)
}

/// Mom's family `family` with dad in it, and eve, who is in none: their clients and
/// identities.
async fn mom_dad_and_eve(server: &Server, family: FamilyId) -> ([Client; 3], [Identity; 3]) {
    let mut mom = Identity::new("mom@example.com", "mom");
    let mut m = Client::register(server, &mut mom).await;
    m.request(Request::CreateFamily { family })
        .await
        .expect("family created");
    let mut dad = Identity::new("dad@example.com", "dad");
    let mut d = Client::register(server, &mut dad).await;
    let invite = InviteId::random();
    m.request(mom.invite_request(invite, family, dad.user()))
        .await
        .expect("invite sent");
    d.request(dad.answer_request(invite, true))
        .await
        .expect("invite accepted");
    let mut eve = Identity::new("eve@example.com", "eve");
    let e = Client::register(server, &mut eve).await;
    ([m, d, e], [mom, dad, eve])
}

async fn open(c: &mut Client, family: FamilyId, year: u16) -> Result<Response, ErrorCode> {
    code(c.request(Request::OpenVolume { family, year }).await)
}

/// `by` uploads `bytes` to the family's blobs and pushes them as a snapshot of `doc`
/// covering `covers`: recorded (pending), or the refusal.
async fn push_snapshot(
    at: (&Server, &Identity, &mut Client),
    (family, doc): (FamilyId, DocId),
    covers: u64,
    bytes: Vec<u8>,
) -> Result<(), ErrorCode> {
    push_snapshot_of(at, (doc, &format!("family={family}")), covers, bytes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_is_the_familys_once_a_member_opens_it_and_nobody_elses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path());
    let family = FamilyId::new_family(true);
    let volume = family.volume(2026);
    let ([mut mom, mut dad, mut eve], [mom_id, dad_id, _]) = mom_dad_and_eve(&server, family).await;

    // Unknown before it is opened, to members too.
    assert_eq!(
        code(dad.push_ack(volume, sealed(1)).await),
        Err(ErrorCode::NotFound)
    );
    assert_eq!(
        code(dad.subscribe_view(volume, 0).await).map(|_| ()),
        Err(ErrorCode::NotFound)
    );
    // Only a member opens it, and only within the years volumes have.
    assert_eq!(
        open(&mut eve, family, 2026).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        open(&mut dad, family, 1899).await,
        Err(ErrorCode::InvalidInput)
    );
    assert_eq!(open(&mut dad, family, 2026).await, Ok(Response::Done));
    assert_eq!(
        open(&mut mom, family, 2026).await,
        Ok(Response::Done),
        "again"
    );

    // Sealed like the family's document: envelopes only.
    assert_eq!(
        code(dad.push_ack(volume, clear(2)).await),
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(code(dad.push_ack(volume, sealed(3)).await), Ok(1));
    let view = mom.subscribe_view(volume, 0).await.expect("mom reads it");
    assert_eq!(view.chunks, vec![(1, sealed(3))]);
    // Live to the members subscribed to it.
    assert_eq!(code(dad.push_ack(volume, sealed(4)).await), Ok(2));
    let live = mom
        .until(|f| match f {
            ServerFrame::Chunk {
                doc, seq, bytes, ..
            } if *doc == volume => Some((*seq, bytes.clone())),
            _ => None,
        })
        .await;
    assert_eq!(live, (2, sealed(4)));
    // Its own log: the family's document and the next year's are untouched.
    assert_eq!(
        code(mom.push_ack(DocId::from(family), sealed(5)).await),
        Ok(1)
    );
    assert_eq!(open(&mut mom, family, 2027).await, Ok(Response::Done));
    assert_eq!(
        code(mom.push_ack(family.volume(2027), sealed(6)).await),
        Ok(1)
    );
    // Compacted like the family's document: a sealed snapshot, never a clear one.
    assert_eq!(
        push_snapshot((&server, &mom_id, &mut mom), (family, volume), 2, clear(40)).await,
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(
        push_snapshot(
            (&server, &mom_id, &mut mom),
            (family, volume),
            2,
            sealed(41)
        )
        .await,
        Ok(())
    );

    // Somebody else neither reads nor writes it.
    assert_eq!(
        code(eve.subscribe_view(volume, 0).await).map(|_| ()),
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(eve.push_ack(volume, sealed(7)).await),
        Err(ErrorCode::Forbidden)
    );

    // Opened and acknowledged survive a kill -9.
    server.kill();
    let server = Server::start(dir.path());
    drop((mom, dad));
    let mut dad = Client::sign_in(&server, &dad_id).await;
    let view = dad.subscribe_view(volume, 0).await.expect("still open");
    assert_eq!(view.head, 2);
    assert_eq!(code(dad.push_ack(volume, sealed(8)).await), Ok(3));

    // Dad removed: his subscription ends, he reads and writes nothing more.
    let mut mom = Client::sign_in(&server, &mom_id).await;
    assert_eq!(
        code(
            mom.request(Request::RemoveMember {
                family,
                user: dad_id.user()
            })
            .await
        ),
        Ok(Response::Done)
    );
    let ended = dad
        .until(|f| match f {
            ServerFrame::Error(err) if err.doc == Some(volume) => Some(err.code),
            _ => None,
        })
        .await;
    assert_eq!(ended, ErrorCode::Forbidden);
    assert_eq!(
        code(dad.push_ack(volume, sealed(9)).await),
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        open(&mut dad, family, 2028).await,
        Err(ErrorCode::Forbidden)
    );

    // Gone with the family.
    assert_eq!(
        code(mom.request(Request::DeleteFamily { family }).await),
        Ok(Response::Done)
    );
    let mut mom = Client::sign_in(&server, &mom_id).await;
    for doc in [volume, family.volume(2027)] {
        assert!(matches!(
            code(mom.subscribe_view(doc, 0).await).map(|_| ()),
            Err(ErrorCode::NotFound | ErrorCode::Forbidden)
        ));
    }
    assert_eq!(
        open(&mut mom, family, 2029).await,
        Err(ErrorCode::Forbidden)
    );
}

/// A family created clear opens no volume while it is clear: a volume is sealed from
/// its first change, and no member's device could seal one before the host sealed the
/// family. Once the host's first envelope sealed the family's document, its members
/// open volumes, and those take envelopes only (chunks and snapshots), by members and
/// host alike, with no first envelope of the host's needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_created_clear_opens_volumes_once_its_host_sealed_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let family = FamilyId::new_family(false);
    let core = DocId::from(family);
    let volume = family.volume(2019);
    let ([mut mom, mut dad, _], [_, dad_id, _]) = mom_dad_and_eve(&server, family).await;
    assert_eq!(code(mom.push_ack(core, clear(1)).await), Ok(1));
    for c in [&mut mom, &mut dad] {
        assert_eq!(open(c, family, 2019).await, Err(ErrorCode::Conflict));
        for bytes in [clear(2), sealed(3)] {
            assert_eq!(
                code(c.push_ack(volume, bytes).await),
                Err(ErrorCode::NotFound)
            );
        }
    }
    // A member's envelope does not seal the family: still clear.
    assert_eq!(
        code(dad.push_ack(core, sealed(4)).await),
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(open(&mut dad, family, 2019).await, Err(ErrorCode::Conflict));

    // The host seals it.
    assert_eq!(code(mom.push_ack(core, sealed(5)).await), Ok(2));
    assert_eq!(open(&mut dad, family, 2019).await, Ok(Response::Done));
    assert_eq!(
        code(dad.push_ack(volume, clear(6)).await),
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(code(dad.push_ack(volume, sealed(7)).await), Ok(1));
    assert_eq!(code(mom.push_ack(volume, sealed(8)).await), Ok(2));
    assert_eq!(
        code(mom.push_ack(volume, clear(9)).await),
        Err(ErrorCode::DocumentSealed),
        "the host's clear chunk too"
    );
    let view = mom.subscribe_view(volume, 0).await.expect("mom reads it");
    assert_eq!(view.chunks, vec![(1, sealed(7)), (2, sealed(8))]);
    assert_eq!(
        push_snapshot((&server, &dad_id, &mut dad), (family, volume), 2, clear(40)).await,
        Err(ErrorCode::DocumentSealed)
    );
    assert_eq!(
        push_snapshot(
            (&server, &dad_id, &mut dad),
            (family, volume),
            2,
            sealed(41)
        )
        .await,
        Ok(())
    );
}

/// A family opens at most `max_volumes_per_family` volumes — but always the volume of
/// the year it is now and of the next, so a member who opened volumes of years nobody
/// uses keeps nobody from writing this year's; opening one again is fine at the cap,
/// and another family has a cap of its own. A volume's log holds at most
/// `volume_log_quota_bytes`, whatever the family document's quota. No family or
/// account can take a volume's id: the relay refuses such ids on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_are_capped_per_family_and_their_ids_are_nobody_elses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{"limits":{"max_volumes_per_family": 2, "volume_log_quota_bytes": 150}}"#;
    let server = Server::start_with_config(dir.path(), config, &[]);
    let family = FamilyId::new_family(true);
    let ([mut mom, mut dad, mut eve], _) = mom_dad_and_eve(&server, family).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let this_year = doran_protocol::volume_year(now);
    // Dad fills the cap with years long gone.
    assert_eq!(open(&mut dad, family, 1950).await, Ok(Response::Done));
    assert_eq!(open(&mut dad, family, 1951).await, Ok(Response::Done));
    assert_eq!(
        open(&mut dad, family, 1952).await,
        Err(ErrorCode::QuotaExceeded)
    );
    assert_eq!(
        open(&mut mom, family, this_year - 1).await,
        Err(ErrorCode::QuotaExceeded)
    );
    // The next year's still opens (and this year's: not asked here, since the year
    // may turn between reading the clock and the relay's reading it; the next year
    // is this year's or the next either way).
    assert_eq!(
        open(&mut mom, family, this_year + 1).await,
        Ok(Response::Done)
    );
    assert_eq!(open(&mut mom, family, 1950).await, Ok(Response::Done));
    // Two chunks of 68 bytes fit a volume's 150; a third does not; the family's
    // document, with its own quota, takes more.
    for n in 1..=2 {
        assert_eq!(
            code(mom.push_ack(family.volume(1950), sealed(n)).await),
            Ok(u64::from(n))
        );
    }
    assert_eq!(
        code(mom.push_ack(family.volume(1950), sealed(3)).await),
        Err(ErrorCode::DocumentFull)
    );
    for n in 1..=3 {
        assert_eq!(
            code(mom.push_ack(DocId::from(family), sealed(n)).await),
            Ok(u64::from(n))
        );
    }
    let eves = FamilyId::new_family(true);
    eve.request(Request::CreateFamily { family: eves })
        .await
        .expect("eve's family");
    assert_eq!(open(&mut eve, eves, 2027).await, Ok(Response::Done));

    // Eve knows nothing of mom's family here, but a member who left would know its
    // id: no family takes a volume's id, nor one whose key log is a volume's.
    for id in [
        family.volume(2030),
        DocId(family.volume(2031).key_log_family().0),
    ] {
        assert_eq!(
            code(
                eve.request(Request::CreateFamily {
                    family: FamilyId(id.0)
                })
                .await
            ),
            Err(ErrorCode::InvalidInput)
        );
    }
}
