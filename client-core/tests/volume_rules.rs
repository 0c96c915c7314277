//! A family's per-year volumes (issue 17): every device makes a volume's first change
//! alike, so devices that start a year apart hold one volume; and every device checks
//! a volume's changes by the volume's rules — a year's calendar, missions, photos and
//! voice messages with their counters and marks, nothing else, removed by their
//! creator or the host only.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use automerge::{ObjId, ObjType, ROOT, ReadDoc, ScalarValue, transaction::Transactable};
use doran_client_core::{
    Actor,
    replica::{ChunkFate, Refusal, Replica, compare_snapshot},
    rules::{DocRules, Violation},
    volume,
};
use doran_protocol::{DeviceId, FamilyId, UserId};

const T0: i64 = 1_780_000_000_000;
const YEAR: u16 = 2026;

fn actor_of(user: UserId) -> Actor {
    Actor {
        user,
        device: DeviceId::random(),
    }
}

/// The family's host and a member, each with the volume of [`YEAR`] made on their own
/// device, apart.
struct Volume {
    family: FamilyId,
    rules: DocRules,
    host: (Actor, Replica),
    member: (Actor, Replica),
}

fn volume() -> Volume {
    let family = FamilyId::new_family(true);
    let host = actor_of(UserId::random());
    let member = actor_of(UserId::random());
    let rules = volume::rules(family, YEAR, host.user);
    let open = |a: &Actor| Replica::new_volume(a, volume::genesis(family, YEAR), rules).unwrap();
    Volume {
        family,
        rules,
        host: (host, open(&host)),
        member: (member, open(&member)),
    }
}

fn map(doc: &automerge::AutoCommit, path: &[&str]) -> ObjId {
    let mut o = ROOT;
    for k in path {
        o = doc.get(&o, *k).unwrap().unwrap().1;
    }
    o
}

/// A raw write to a volume, as a modified client makes it.
type Write = Box<dyn Fn(&mut automerge::AutoCommit)>;

/// Writes on `replica` and commits: one change, its bytes.
fn write(replica: &mut Replica, w: impl FnOnce(&mut automerge::AutoCommit)) -> Vec<u8> {
    w(replica.doc_mut());
    replica.commit("test", T0).unwrap()
}

/// Applies `change` on `replica`: how its chunk fared.
fn apply(replica: &mut Replica, change: &[u8]) -> ChunkFate {
    let (_, fates) = replica.apply_remote([change]);
    fates.into_iter().next().unwrap()
}

fn refused(replica: &mut Replica, change: &[u8]) -> Violation {
    let heads = replica.heads();
    match apply(replica, change) {
        ChunkFate::Refuse(Refusal::Rule(v)) => {
            assert_eq!(replica.heads(), heads, "a refused change was applied");
            v
        }
        other => panic!("not refused by a rule: {other:?}"),
    }
}

/// A photo by `by`, with its counter, as the app writes it.
fn add_photo(doc: &mut automerge::AutoCommit, by: &Actor, id: &str) {
    let photos = map(doc, &["photos"]);
    let p = doc.put_object(&photos, id, ObjType::Map).unwrap();
    doc.put(&p, "album_id", "a1").unwrap();
    doc.put(&p, "by", by.user.to_hex()).unwrap();
    doc.put(&p, "at", T0).unwrap();
    doc.put(&p, "caption", "바다").unwrap();
    doc.put_object(&p, "likes", ObjType::Map).unwrap();
    doc.put_object(&p, "comments", ObjType::Map).unwrap();
    let counter = format!("n/photos/{}", by.actor_id().to_hex_string());
    doc.put(ROOT, counter.as_str(), ScalarValue::counter(1))
        .unwrap();
}

/// A mission by `by` with these participants.
fn add_mission(doc: &mut automerge::AutoCommit, by: &Actor, id: &str, with: &[UserId]) {
    let missions = map(doc, &["missions"]);
    let m = doc.put_object(&missions, id, ObjType::Map).unwrap();
    doc.put(&m, "title", "가족 사진 찍기").unwrap();
    doc.put(&m, "created_by", by.user.to_hex()).unwrap();
    doc.put(&m, "created_at", T0).unwrap();
    let p = doc.put_object(&m, "participants", ObjType::Map).unwrap();
    for u in with {
        doc.put(&p, u.to_hex().as_str(), T0).unwrap();
    }
    doc.put_object(&m, "completions", ObjType::Map).unwrap();
}

/// `by` ticks the mission, with the marks of a tick (and of a completion, if asked).
fn tick(doc: &mut automerge::AutoCommit, by: &Actor, id: &str, completes: bool) {
    let completions = map(doc, &["missions", id, "completions"]);
    let me = by.user.to_hex();
    doc.put(&completions, me.as_str(), T0).unwrap();
    doc.put(ROOT, format!("e/ticks/{me}/{id}").as_str(), T0)
        .unwrap();
    if completes {
        doc.put(ROOT, format!("e/completed/{me}/{id}").as_str(), T0)
            .unwrap();
    }
}

#[test]
fn devices_that_start_a_year_apart_hold_one_volume() {
    let mut v = volume();
    let (host, member) = (v.host.0, v.member.0);
    let photo = write(&mut v.member.1, |d| add_photo(d, &member, "p1"));
    let mission = write(&mut v.host.1, |d| {
        add_mission(d, &host, "m1", &[host.user, member.user])
    });
    assert_eq!(apply(&mut v.host.1, &photo), ChunkFate::Keep);
    assert_eq!(apply(&mut v.member.1, &mission), ChunkFate::Keep);
    assert_eq!(v.host.1.heads(), v.member.1.heads());
    for (_, r) in [&v.host, &v.member] {
        let d = r.doc();
        assert!(d.get(ROOT, "calendar").unwrap().is_some());
        assert!(d.get(map(d, &["photos"]), "p1").unwrap().is_some());
        assert!(d.get(map(d, &["missions"]), "m1").unwrap().is_some());
        // No collection was made twice: one object each, by the volume's first change.
        for c in volume::COLLECTIONS {
            assert_eq!(d.get_all(ROOT, c).unwrap().len(), 1, "{c}");
        }
    }
    // A device that opens the volume later from what is stored (the first change is
    // never stored: every device makes it) checks and holds the same.
    let stored = [photo.as_slice(), mission.as_slice()];
    let genesis = volume::genesis(v.family, YEAR);
    let mut late = Replica::load_volume(genesis.clone(), None, stored, &member, v.rules).unwrap();
    assert_eq!(late.heads(), v.host.1.heads());
    let snapshot = v.host.1.save();
    let mut from_snapshot =
        Replica::load_volume(genesis, Some(&snapshot), [], &member, v.rules).unwrap();
    assert_eq!(from_snapshot.heads(), v.host.1.heads());
    // A snapshot of the volume is checked by its rules from nothing, first change
    // included.
    let held: std::collections::HashSet<_> = v
        .host
        .1
        .doc_mut()
        .get_changes(&[])
        .iter()
        .map(|c| c.hash())
        .collect();
    let diff = compare_snapshot(&snapshot, [], &held, Some(host.user), Some(v.rules)).unwrap();
    assert!(
        diff.missing.is_empty() && diff.foreign.is_empty(),
        "{diff:?}"
    );
}

#[test]
fn a_volume_takes_a_years_entities_and_nothing_else() {
    let mut v = volume();
    let member = v.member.0;
    let host_user = v.host.0.user.to_hex();
    let attempts: Vec<Write> = vec![
        // What the family's document holds.
        Box::new(|d| d.put(ROOT, "name", "우리 가족").unwrap()),
        Box::new(|d| d.put(ROOT, "sealed_at", T0).unwrap()),
        Box::new(move |d| {
            let key = format!("i/{}/{}", UserId::random().to_hex(), member.user.to_hex());
            d.put(ROOT, key.as_str(), T0).unwrap();
        }),
        Box::new(|d| {
            d.put_object(ROOT, "members", ObjType::Map).unwrap();
        }),
        Box::new(|d| {
            d.put_object(ROOT, "albums", ObjType::Map).unwrap();
        }),
        // A collection made again (it would hide the first one's entries).
        Box::new(|d| {
            d.put_object(ROOT, "photos", ObjType::Map).unwrap();
        }),
        // A counter with nothing it counts; a mark of what was not done.
        Box::new(move |d| {
            let key = format!("n/photos/{}", member.actor_id().to_hex_string());
            d.put(ROOT, key.as_str(), ScalarValue::counter(1)).unwrap();
        }),
        Box::new(move |d| {
            let key = format!("e/ticks/{}/m1", member.user.to_hex());
            d.put(ROOT, key.as_str(), T0).unwrap();
        }),
        // Lists and text, as in the family's document.
        Box::new(|d| {
            let photos = map(d, &["photos"]);
            d.put_object(&photos, "p9", ObjType::List).unwrap();
        }),
        // A photo in someone else's name.
        Box::new(move |d| {
            let photos = map(d, &["photos"]);
            let p = d.put_object(&photos, "p9", ObjType::Map).unwrap();
            d.put(&p, "by", host_user.as_str()).unwrap();
        }),
    ];
    for attempt in attempts {
        let change = write(&mut v.member.1, attempt);
        let why = refused(&mut v.host.1, &change);
        assert!(
            matches!(
                why,
                Violation::UnknownPath(_)
                    | Violation::NotAllowed { .. }
                    | Violation::ForgedAuthor(_)
                    | Violation::Unsupported(_)
            ),
            "{why:?}"
        );
        v.member.1 = Replica::load_volume(
            volume::genesis(v.family, YEAR),
            Some(&v.host.1.save()),
            [],
            &member,
            v.rules,
        )
        .unwrap();
    }
    // Not the host either: what the host may write in the family's document (its
    // title, its sealing) has no place in a volume.
    let host = v.host.0;
    let host_writes: Vec<Write> = vec![
        Box::new(|d| d.put(ROOT, "name", "우리 가족").unwrap()),
        Box::new(|d| d.put(ROOT, "sealed_at", T0).unwrap()),
    ];
    for attempt in host_writes {
        let change = write(&mut v.host.1, attempt);
        assert!(matches!(
            refused(&mut v.member.1, &change),
            Violation::UnknownPath(_)
        ));
        v.host.1 = Replica::load_volume(
            volume::genesis(v.family, YEAR),
            Some(&v.member.1.save()),
            [],
            &host,
            v.rules,
        )
        .unwrap();
    }
}

#[test]
fn only_the_volumes_first_change_starts_from_nothing_or_is_written_as_the_volume() {
    let mut v = volume();
    // Another first change: made apart with other maps, or as another year's.
    let mut stray = automerge::AutoCommit::new().with_actor(v.member.0.actor_id());
    stray.put_object(ROOT, "photos", ObjType::Map).unwrap();
    stray.commit();
    let stray = stray.get_last_local_change().unwrap().bytes().to_vec();
    let mut other_year = volume::genesis(v.family, YEAR + 1);
    for change in [stray, other_year.bytes().to_vec()] {
        assert!(matches!(
            refused(&mut v.host.1, &change),
            Violation::SecondRoot
        ));
    }
    // The same first change again is no news.
    let mut genesis = volume::genesis(v.family, YEAR);
    assert_eq!(apply(&mut v.host.1, &genesis.bytes()), ChunkFate::Keep);
    // A later change written as the volume itself (as only its first change is).
    let id = v.family.volume(YEAR);
    let mut as_volume = Replica::new_volume(
        &actor_of(UserId(id.0)),
        volume::genesis(v.family, YEAR),
        v.rules,
    )
    .unwrap();
    as_volume
        .doc_mut()
        .set_actor(automerge::ActorId::from(id.0.to_vec()));
    let change = write(&mut as_volume, |d| {
        let photos = map(d, &["photos"]);
        d.put_object(&photos, "p1", ObjType::Map).unwrap();
    });
    assert_eq!(refused(&mut v.host.1, &change), Violation::VolumeActor);
}

#[test]
fn its_creator_or_the_host_removes_an_entity_and_nobody_else() {
    let mut v = volume();
    let third = actor_of(UserId::random());
    let (host, member) = (v.host.0, v.member.0);
    let mut third_replica =
        Replica::new_volume(&third, volume::genesis(v.family, YEAR), v.rules).unwrap();
    let photo = write(&mut v.host.1, |d| add_photo(d, &host, "p1"));
    let theirs = write(&mut third_replica, |d| add_photo(d, &third, "p2"));
    for r in [&mut v.member.1, &mut third_replica, &mut v.host.1] {
        for c in [&photo, &theirs] {
            assert!(matches!(apply(r, c), ChunkFate::Keep), "accepted");
        }
    }
    // The member deletes neither the host's photo nor the third member's (in the
    // family's document, deleting an album would; a volume's photos are hidden with
    // their album, not removed).
    for id in ["p1", "p2"] {
        let delete = write(&mut v.member.1, |d| {
            let photos = map(d, &["photos"]);
            d.delete(&photos, id).unwrap();
        });
        assert!(matches!(
            refused(&mut v.host.1, &delete),
            Violation::NotAllowed { .. }
        ));
        v.member.1 = Replica::load_volume(
            volume::genesis(v.family, YEAR),
            Some(&v.host.1.save()),
            [],
            &member,
            v.rules,
        )
        .unwrap();
    }
    // Its creator does; the host does.
    let by_creator = write(&mut third_replica, |d| {
        let photos = map(d, &["photos"]);
        d.delete(&photos, "p2").unwrap();
    });
    assert_eq!(apply(&mut v.member.1, &by_creator), ChunkFate::Keep);
    let by_host = write(&mut v.host.1, |d| {
        let photos = map(d, &["photos"]);
        d.delete(&photos, "p1").unwrap();
    });
    assert_eq!(apply(&mut v.member.1, &by_host), ChunkFate::Keep);
}

/// A volume has no member list, so a tick completes a mission only once every other
/// participant ticked it — a participant who left the family too (the family's
/// document leaves those out). An honest device writes the mark only then.
#[test]
fn a_tick_completes_a_volumes_mission_only_when_every_other_participant_ticked() {
    let mut v = volume();
    let (host, member) = (v.host.0, v.member.0);
    let gone = UserId::random();
    let mission = write(&mut v.host.1, |d| {
        add_mission(d, &host, "m1", &[host.user, member.user, gone])
    });
    assert_eq!(apply(&mut v.member.1, &mission), ChunkFate::Keep);
    let host_tick = write(&mut v.host.1, |d| tick(d, &host, "m1", false));
    assert_eq!(apply(&mut v.member.1, &host_tick), ChunkFate::Keep);
    // The member's tick does not complete it while `gone` has not ticked.
    let claims = write(&mut v.member.1, |d| tick(d, &member, "m1", true));
    assert!(matches!(
        refused(&mut v.host.1, &claims),
        Violation::NotAllowed { .. }
    ));
    let honest = write(
        &mut Replica::load_volume(
            volume::genesis(v.family, YEAR),
            Some(&v.host.1.save()),
            [],
            &member,
            v.rules,
        )
        .unwrap(),
        |d| tick(d, &member, "m1", false),
    );
    assert_eq!(apply(&mut v.host.1, &honest), ChunkFate::Keep);

    // With every other participant ticked, the last tick completes it.
    let mission = write(&mut v.host.1, |d| {
        add_mission(d, &host, "m2", &[host.user, member.user])
    });
    let host_tick = write(&mut v.host.1, |d| tick(d, &host, "m2", false));
    let mut member_replica = Replica::load_volume(
        volume::genesis(v.family, YEAR),
        Some(&v.host.1.save()),
        [],
        &member,
        v.rules,
    )
    .unwrap();
    let _ = (mission, host_tick);
    let completes = write(&mut member_replica, |d| tick(d, &member, "m2", true));
    assert_eq!(apply(&mut v.host.1, &completes), ChunkFate::Keep);
}
