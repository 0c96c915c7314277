//! A member writing as someone else: a modified client commits changes under another
//! user's actor id (the host's, say) and pushes them. The relay stamps every chunk
//! with the user whose device pushed it; every device refuses a change whose actor is
//! not that user ([`rules::check_pushed`]), sets aside what builds on it, and never
//! confirms a snapshot that would launder such a change into the history.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use std::sync::Arc;

use doran_client_core::{
    Actor, FamilyDoc, PersonalDoc,
    replica::{Incoming, Refusal, change_hashes},
    rules::{self, Violation},
    store::{LocalStore, MemoryStore},
    sync::{DocKind, IncomingChunk, SnapshotCheck, StoreHost, SyncHost},
};
use doran_protocol::{DeviceId, DocId, FamilyId, UserId};

const T0: i64 = 1_700_000_000_000;

fn actor(n: u8) -> Actor {
    Actor {
        user: UserId([n; 16]),
        device: DeviceId([n; 16]),
    }
}

const HOST: u8 = 1;
const MEMBER: u8 = 2;
const OTHER: u8 = 3;

/// A family whose host made a mission, with a member who joined; `other`'s device
/// has everything too. Returns the host's, the member's and the other's copies, the
/// chunks so far (with who pushed them) and the mission's id.
struct Family {
    id: FamilyId,
    host: FamilyDoc,
    member: FamilyDoc,
    other: FamilyDoc,
    chunks: Vec<(Vec<u8>, UserId)>,
    mission: String,
}

fn family() -> Family {
    let id = FamilyId([9; 16]);
    let (mut host, first) = FamilyDoc::create(id, "우리 가족", "엄마", &actor(HOST), T0).unwrap();
    let mission = host.add_mission("장보기", &[], None, T0).unwrap();
    let mut member = FamilyDoc::load(None, [], &actor(MEMBER)).unwrap();
    let mut other = FamilyDoc::load(None, [], &actor(OTHER)).unwrap();
    let mut chunks = vec![
        (first, actor(HOST).user),
        (mission.change.unwrap(), actor(HOST).user),
    ];
    for doc in [&mut member, &mut other] {
        let update = doc.apply_remote(chunks.iter().map(|(b, a)| Incoming::new(b, Some(*a))));
        assert!(update.refusals.is_empty(), "{:?}", update.refusals);
    }
    let join = member.add_member(actor(MEMBER).user, "아들", T0).unwrap();
    let join = join.change.unwrap();
    for doc in [&mut host, &mut other] {
        let update = doc.apply_remote([Incoming::new(&join, Some(actor(MEMBER).user))]);
        assert!(update.refusals.is_empty(), "{:?}", update.refusals);
    }
    chunks.push((join, actor(MEMBER).user));
    Family {
        id,
        host,
        member,
        other,
        chunks,
        mission: mission.value,
    }
}

/// The member's modified client: its copy of the family, written as the host (the
/// host's user id, a device of its own).
fn forger(f: &mut Family) -> FamilyDoc {
    let as_host = Actor {
        user: actor(HOST).user,
        device: DeviceId([0xf0; 16]),
    };
    FamilyDoc::load(Some(&f.member.save()), [], &as_host).unwrap()
}

fn forged_actor(r: &Refusal) -> bool {
    matches!(r, Refusal::Rule(Violation::ForgedActor { .. }))
}

#[test]
fn the_rule_names_the_pusher_and_the_owner() {
    let mut f = family();
    let rename = forger(&mut f)
        .rename("아들 가족", T0)
        .unwrap()
        .change
        .unwrap();
    let change = automerge::Change::from_bytes(rename).unwrap();
    assert_eq!(rules::check_pushed(&change, actor(HOST).user), Ok(()));
    assert_eq!(
        rules::check_pushed(&change, actor(MEMBER).user),
        Err(Violation::ForgedActor {
            actor: actor(HOST).user.to_hex(),
            pusher: actor(MEMBER).user,
        })
    );
    let owner = actor(HOST).user;
    assert_eq!(rules::check_personal_pusher(owner, Some(owner)), Ok(()));
    assert_eq!(rules::check_personal_pusher(owner, None), Ok(()));
    assert_eq!(
        rules::check_personal_pusher(owner, Some(actor(MEMBER).user)),
        Err(Violation::NotTheOwner {
            pusher: actor(MEMBER).user
        })
    );
}

#[test]
fn a_change_written_as_the_host_but_pushed_by_a_member_is_refused() {
    let mut f = family();
    // Step 1: the member's modified client renames the family and deletes the host's
    // mission, both as the host — what only the host may do.
    let mut rogue = forger(&mut f);
    let rename = rogue.rename("아들 가족", T0).unwrap().change.unwrap();
    let delete = rogue
        .delete_mission(&f.mission, T0)
        .unwrap()
        .change
        .unwrap();

    // Step 2: pushed by the member, they are refused by every device, the host's too.
    for doc in [&mut f.other, &mut f.host] {
        let heads = doc.replica_mut().heads();
        let update = doc.apply_remote([
            Incoming::new(&rename, Some(actor(MEMBER).user)),
            Incoming::new(&delete, Some(actor(MEMBER).user)),
        ]);
        assert_eq!(update.rejected, vec![0, 1]);
        assert!(forged_actor(&update.refusals[0].1), "{:?}", update.refusals);
        // The delete builds on the rename: set aside with it.
        assert!(matches!(
            update.refusals[1].1,
            Refusal::RefusedDependency | Refusal::Rule(Violation::ForgedActor { .. })
        ));
        assert_eq!(doc.replica_mut().heads(), heads, "nothing applied");
        assert_eq!(doc.view().name, "우리 가족");
        assert!(doc.view().missions.contains_key(&f.mission));
    }

    // A chunk stored before relays recorded authors is taken as before; the same
    // change pushed by the host's own device is the host's.
    let mut legacy = FamilyDoc::load(Some(&f.member.save()), [], &actor(OTHER)).unwrap();
    assert!(legacy.apply_remote([rename.as_slice()]).refusals.is_empty());
    assert_eq!(legacy.view().name, "아들 가족");
    let mut honest = FamilyDoc::load(Some(&f.member.save()), [], &actor(OTHER)).unwrap();
    let update = honest.apply_remote([Incoming::new(&rename, Some(actor(HOST).user))]);
    assert!(update.refusals.is_empty());
}

#[test]
fn what_builds_on_a_forged_change_is_set_aside_and_the_rest_of_its_chunk_kept() {
    let mut f = family();
    // The member's client holds a forged rename; its own next edits build on it.
    let mut rogue = forger(&mut f);
    let rename = rogue.rename("아들 가족", T0).unwrap().change.unwrap();
    f.member.apply_remote([rename.as_slice()]);
    let built_on = f
        .member
        .add_mission("숙제", &[], None, T0)
        .unwrap()
        .change
        .unwrap();

    // A chunk holding an honest change of the member's and the forged one: the
    // honest one is kept (the chunk is trimmed), the forged one refused.
    let mut fresh = FamilyDoc::load(Some(&f.host.save()), [], &actor(OTHER)).unwrap();
    let honest = {
        let mut m = FamilyDoc::load(Some(&f.host.save()), [], &actor(MEMBER)).unwrap();
        m.add_mission("빨래", &[], None, T0).unwrap()
    };
    let mut both = honest.change.clone().unwrap();
    both.extend_from_slice(&rename);
    let update = fresh.apply_remote([Incoming::new(&both, Some(actor(MEMBER).user))]);
    assert!(update.rejected.is_empty());
    assert_eq!(update.trimmed.len(), 1);
    assert_eq!(
        change_hashes(&update.trimmed[0].1).unwrap(),
        change_hashes(&honest.change.unwrap()).unwrap(),
        "kept: the honest one"
    );
    assert!(forged_actor(&update.refusals[0].1));
    assert!(fresh.view().missions.contains_key(&honest.value));
    assert_eq!(fresh.view().name, "우리 가족");

    // The member's later change, built on the forged one, is set aside too.
    let update = fresh.apply_remote([Incoming::new(&built_on, Some(actor(MEMBER).user))]);
    assert_eq!(update.rejected, vec![0]);
    assert_eq!(update.refusals[0].1, Refusal::RefusedDependency);
    assert_eq!(fresh.view().missions.len(), 2);
}

/// A device of `OTHER`, with the family applied through its host.
fn other_device(f: &Family) -> (Arc<dyn LocalStore>, StoreHost) {
    let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
    let host = StoreHost::new(Arc::clone(&store), actor(OTHER));
    let chunks: Vec<IncomingChunk> = f
        .chunks
        .iter()
        .enumerate()
        .map(|(i, (bytes, author))| IncomingChunk {
            seq: i as u64 + 1,
            author: Some(*author),
            bytes: bytes.clone(),
        })
        .collect();
    let doc = DocId::from(f.id);
    let change = host
        .apply(
            doc,
            DocKind::Family(f.id),
            None,
            &chunks,
            chunks.len() as u64,
        )
        .unwrap();
    assert_eq!(change.refused, 0);
    (store, host)
}

#[test]
fn the_host_sets_a_forged_change_aside_and_never_stores_it() {
    let mut f = family();
    let (store, host) = other_device(&f);
    let doc = DocId::from(f.id);
    let delete = forger(&mut f)
        .delete_mission(&f.mission, T0)
        .unwrap()
        .change
        .unwrap();
    let change = host
        .apply(
            doc,
            DocKind::Family(f.id),
            None,
            &[IncomingChunk {
                seq: 4,
                author: Some(actor(MEMBER).user),
                bytes: delete.clone(),
            }],
            4,
        )
        .unwrap();
    assert_eq!(change.refused, 1);
    assert!(change.touched.is_empty());
    assert_eq!(store.cursor(doc).unwrap(), 4, "the cursor moves past it");
    let stored = store.load(doc).unwrap().unwrap();
    assert!(!stored.changes.contains(&delete), "never stored");
    let missions = host
        .read_family(f.id, |fd| fd.view().missions.len())
        .unwrap();
    assert_eq!(missions, 1, "the host's mission is still there");
}

#[test]
fn a_personal_document_takes_only_its_owners_chunks() {
    let owner = actor(MEMBER);
    let (mut pd, first) = PersonalDoc::create(&owner, "아들곰", None, 1, T0).unwrap();
    let pdoc = DocId([0x77; 16]);
    let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
    let host = StoreHost::new(Arc::clone(&store), actor(OTHER));
    let kind = DocKind::Personal(owner.user);
    let chunk = |seq, author, bytes: &[u8]| IncomingChunk {
        seq,
        author,
        bytes: bytes.to_vec(),
    };
    assert_eq!(
        host.apply(pdoc, kind, None, &[chunk(1, Some(owner.user), &first)], 1)
            .unwrap()
            .refused,
        0
    );

    // Pushed by someone else (a relay would not take it): refused whole.
    let rename = pd.set_nickname("아들곰곰", T0).unwrap().change.unwrap();
    let by_other = host
        .apply(
            pdoc,
            kind,
            None,
            &[chunk(2, Some(actor(HOST).user), &rename)],
            2,
        )
        .unwrap();
    assert_eq!(by_other.refused, 1);
    // Pushed by the owner but written as someone else: refused.
    let mut as_host = PersonalDoc::load(Some(&pd.replica_mut().save()), [], &actor(HOST)).unwrap();
    let forged = as_host.set_nickname("엄마곰", T0).unwrap().change.unwrap();
    let written_as_other = host
        .apply(pdoc, kind, None, &[chunk(3, Some(owner.user), &forged)], 3)
        .unwrap();
    assert_eq!(written_as_other.refused, 1);
    let profile = host.profile(owner.user).unwrap().unwrap();
    assert_eq!(profile.nickname, "아들곰");
    // The owner's own change, pushed by the owner, arrives.
    host.apply(pdoc, kind, None, &[chunk(4, Some(owner.user), &rename)], 4)
        .unwrap();
    assert_eq!(
        host.profile(owner.user).unwrap().unwrap().nickname,
        "아들곰곰"
    );
}

#[test]
fn a_snapshot_holding_a_change_this_device_lacks_is_confirmed_only_if_the_pusher_wrote_it() {
    let mut f = family();
    let (_, host) = other_device(&f);
    let doc = DocId::from(f.id);
    let kind = DocKind::Family(f.id);
    let covers = f.chunks.len() as u64;

    // The member's honest snapshot: everything, plus an edit of its own not pushed
    // yet (a snapshot saves the whole document). Confirmed.
    let mut honest = FamilyDoc::load(Some(&f.member.save()), [], &actor(MEMBER)).unwrap();
    honest.add_mission("빨래", &[], None, T0).unwrap();
    let check = |snapshot: &[u8], by: u8| {
        host.check_snapshot(doc, kind, (covers, actor(by).user), snapshot)
            .unwrap()
    };
    assert_eq!(check(&honest.save(), MEMBER), SnapshotCheck::Contains);

    // The member's snapshot with a change written as the host, which no device has
    // (pushed as a chunk, every device refused it): never confirmed.
    let mut rogue = forger(&mut f);
    rogue.delete_mission(&f.mission, T0).unwrap();
    assert_eq!(check(&rogue.save(), MEMBER), SnapshotCheck::Foreign(1));
    // Nor one holding another member's change this device does not have.
    assert_eq!(check(&honest.save(), HOST), SnapshotCheck::Foreign(1));
    // What this device has is vouched for, whoever wrote it.
    assert_eq!(check(&f.host.save(), MEMBER), SnapshotCheck::Contains);
}
