//! The family document's rules (issue 12, item 7): a modified member client writes
//! straight into Automerge, bypassing the operations' checks; every honest device
//! refuses what breaks the rules, identically, whatever the arrival order.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use automerge::{ObjType, ROOT, ReadDoc, transaction::Transactable};
use doran_client_core::{
    Actor, DocError, EventInput, FamilyDoc, MissionPatch, PhotoInput, family_doc::PublishedKeys,
    replica::Refusal, rules::Violation,
};
use doran_protocol::{BlobHash, DeviceId, DocId, FamilyId, UserId};

const T0: i64 = 1_700_000_000_000;

fn actor() -> Actor {
    Actor {
        user: UserId::random(),
        device: DeviceId::random(),
    }
}

/// A family made by a host, with a member who joined (the member's device wrote its
/// own entry, as the app does) — both devices in step.
struct Family {
    host: FamilyDoc,
    member: FamilyDoc,
    member_actor: Actor,
}

fn family() -> Family {
    let host_actor = actor();
    let member_actor = actor();
    let (mut host, _) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &host_actor, T0).unwrap();
    let mut member = FamilyDoc::load(Some(&host.save()), [], &member_actor).unwrap();
    let join = member.add_member(member_actor.user, "아빠", T0).unwrap();
    accept(&mut host, &join.change.unwrap());
    Family {
        host,
        member,
        member_actor,
    }
}

fn accept(doc: &mut FamilyDoc, change: &[u8]) {
    let update = doc.apply_remote([change]);
    assert!(update.refusals.is_empty(), "refused: {:?}", update.refusals);
}

/// Applies a change and returns why it was refused (panics if it was accepted).
fn refusal(doc: &mut FamilyDoc, change: &[u8]) -> Refusal {
    let heads = doc.replica_mut().heads();
    let update = doc.apply_remote([change]);
    assert_eq!(update.rejected, vec![0], "the change was not refused");
    assert_eq!(
        doc.replica_mut().heads(),
        heads,
        "a refused change was applied"
    );
    update.refusals.into_iter().next().unwrap().1
}

/// What a modified client can do: write anything, then commit.
fn rogue(doc: &mut FamilyDoc, write: impl FnOnce(&mut automerge::AutoCommit)) -> Vec<u8> {
    write(doc.replica_mut().doc_mut());
    doc.replica_mut().commit("rogue", T0 + 5).unwrap()
}

fn obj(doc: &automerge::AutoCommit, path: &[&str]) -> automerge::ObjId {
    let mut o = ROOT;
    for k in path {
        o = doc.get(&o, *k).unwrap().unwrap().1;
    }
    o
}

fn photo() -> PhotoInput {
    PhotoInput {
        blob: BlobHash::of(b"photo").into(),
        thumb: BlobHash::of(b"thumb").into(),
        mime: "image/jpeg".into(),
        size: 10,
        width: 10,
        height: 10,
        taken_at: None,
        caption: String::new(),
    }
}

/// A raw write to a document, as a modified client makes it.
type Write<'a> = Box<dyn Fn(&mut automerge::AutoCommit) + 'a>;

/// Each write, made by the member on a copy of the host's document, is refused by
/// the host's rules (not allowed, or outside the schema).
fn each_refused<'a>(f: &mut Family, attempts: impl IntoIterator<Item = Write<'a>>) {
    for write in attempts {
        let change = rogue(&mut f.member, write);
        let why = refusal(&mut f.host, &change);
        assert!(
            not_allowed(&why) || matches!(why, Refusal::Rule(Violation::UnknownPath(_))),
            "{why:?}"
        );
        f.member = FamilyDoc::load(Some(&f.host.save()), [], &f.member_actor).unwrap();
    }
}

fn not_allowed(r: &Refusal) -> bool {
    matches!(
        r,
        Refusal::Rule(Violation::NotAllowed { .. } | Violation::ForgedAuthor(_))
    )
}

#[test]
fn a_member_cannot_rename_the_family() {
    let mut f = family();
    let bad = rogue(&mut f.member, |d| d.put(ROOT, "name", "내 가족").unwrap());
    assert!(not_allowed(&refusal(&mut f.host, &bad)));
    assert_eq!(f.host.view().name, "우리 가족");
}

/// No relay checks a title since protocol 7: the host's own rename to a title no app
/// writes (empty, a direction override, too long) is refused by every other device.
#[test]
fn a_title_no_app_writes_is_refused() {
    for bad in [
        "",
        "\u{202E}족가 리우",
        "열한글자가족이름입니다",
        " 우리 가족",
    ] {
        let mut f = family();
        let change = rogue(&mut f.host, |d| d.put(ROOT, "name", bad).unwrap());
        assert!(not_allowed(&refusal(&mut f.member, &change)), "{bad:?}");
        assert_eq!(f.member.view().name, "우리 가족");
    }
    let mut f = family();
    let as_number = rogue(&mut f.host, |d| d.put(ROOT, "name", 7).unwrap());
    assert!(not_allowed(&refusal(&mut f.member, &as_number)));
}

/// Only the host notes when it sealed a family created clear, and only as an instant;
/// a member's `mark_sealed` is refused before anything is written.
#[test]
fn only_the_host_marks_the_family_sealed() {
    let mut f = family();
    let by_member = rogue(&mut f.member, |d| d.put(ROOT, "sealed_at", T0).unwrap());
    assert!(not_allowed(&refusal(&mut f.host, &by_member)));
    let mut f = family();
    assert!(f.member.mark_sealed(T0).is_err());
    let as_text = rogue(&mut f.host, |d| d.put(ROOT, "sealed_at", "어제").unwrap());
    assert!(not_allowed(&refusal(&mut f.member, &as_text)));
    let mut f = family();
    assert_eq!(f.member.sealed_at(), None);
    let sealed = f.host.mark_sealed(T0).unwrap();
    accept(&mut f.member, &sealed.change.unwrap());
    assert_eq!(f.member.sealed_at(), Some(T0));
}

#[test]
fn a_member_cannot_make_itself_host_or_demote_the_host() {
    let mut f = family();
    let me = f.member_actor.user.to_hex();
    let promote = rogue(&mut f.member, |d| {
        let m = obj(d, &["members", &me]);
        d.put(&m, "role", "Host").unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &promote)));
    let mut f = family();
    let host = f.host.me().to_hex();
    let demote = rogue(&mut f.member, |d| {
        let m = obj(d, &["members", &host]);
        d.put(&m, "role", "Member").unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &demote)));
    // Nor remove the host, nor overwrite the host's entry with one of its own.
    let mut f = family();
    let host = f.host.me().to_hex();
    let remove = rogue(&mut f.member, |d| {
        let members = obj(d, &["members"]);
        d.delete(&members, host.as_str()).unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &remove)));
}

/// A member cannot take the 호칭 the family knows another member by ("엄마"), so
/// that screens and notifications say 엄마 did what they did — not even with an
/// invisible character or a trailing space to tell it apart; a name of their own is
/// fine, and so is the host renaming them.
#[test]
fn a_member_cannot_take_another_members_name() {
    let mut f = family();
    let me = f.member_actor.user.to_hex();
    for taken in ["엄마", "엄마\u{200B}", "엄마 ", "\u{202E}마엄"] {
        let mut f = family();
        let me = f.member_actor.user.to_hex();
        let impersonate = rogue(&mut f.member, |d| {
            let m = obj(d, &["members", &me]);
            d.put(&m, "name", taken).unwrap();
        });
        assert!(
            not_allowed(&refusal(&mut f.host, &impersonate)),
            "{taken:?}"
        );
    }
    // Joining under the host's 호칭 is refused just the same.
    let host_actor = actor();
    let (mut host, _) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &host_actor, T0).unwrap();
    let newcomer = actor();
    let mut theirs = FamilyDoc::load(Some(&host.save()), [], &newcomer).unwrap();
    let uid = newcomer.user.to_hex();
    let join = rogue(&mut theirs, |d| {
        let members = obj(d, &["members"]);
        let m = d.put_object(&members, uid.as_str(), ObjType::Map).unwrap();
        d.put(&m, "name", "엄마").unwrap();
        d.put(&m, "role", "Member").unwrap();
    });
    assert!(not_allowed(&refusal(&mut host, &join)));

    // Honest renames: their own new name, and the host's rename of them.
    let rename = f
        .member
        .set_member_name(f.member_actor.user, "큰아빠", T0)
        .unwrap();
    accept(&mut f.host, &rename.change.unwrap());
    let by_host = f
        .host
        .set_member_name(f.member_actor.user, "아빠", T0)
        .unwrap();
    accept(&mut f.member, &by_host.change.unwrap());
    assert_eq!(f.member.view().members[&me].name, "아빠");
    // The honest client refuses a taken name before writing anything.
    assert!(matches!(
        f.member.set_member_name(f.member_actor.user, "엄마", T0),
        Err(DocError::NameTaken(_))
    ));
}

#[test]
fn a_member_cannot_delete_or_edit_the_hosts_mission() {
    let mut f = family();
    let m = f.host.add_mission("장보기", &[], None, T0).unwrap();
    accept(&mut f.member, &m.change.unwrap());
    let id = m.value;
    let delete = rogue(&mut f.member, |d| {
        let missions = obj(d, &["missions"]);
        d.delete(&missions, id.as_str()).unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &delete)));
    let mut f2 = family();
    let m = f2.host.add_mission("장보기", &[], None, T0).unwrap();
    accept(&mut f2.member, &m.change.unwrap());
    let id = m.value;
    let edit = rogue(&mut f2.member, |d| {
        let mission = obj(d, &["missions", &id]);
        d.put(&mission, "title", "내 미션").unwrap();
    });
    assert!(not_allowed(&refusal(&mut f2.host, &edit)));
    // The honest client says no before writing anything.
    assert!(matches!(
        f2.member.edit_mission(&id, MissionPatch::default(), T0),
        Err(DocError::Forbidden(_))
    ));
    assert!(matches!(
        f2.member.delete_mission(&id, T0),
        Err(DocError::Forbidden(_))
    ));
}

#[test]
fn a_member_cannot_create_a_mission_by_the_host() {
    let mut f = family();
    let host = f.host.me().to_hex();
    let forged = rogue(&mut f.member, |d| {
        let missions = obj(d, &["missions"]);
        let m = d.put_object(&missions, "abc", ObjType::Map).unwrap();
        d.put(&m, "title", "설거지").unwrap();
        d.put(&m, "created_by", host.as_str()).unwrap();
        d.put(&m, "created_at", T0).unwrap();
    });
    assert!(matches!(
        refusal(&mut f.host, &forged),
        Refusal::Rule(Violation::ForgedAuthor(_))
    ));
}

#[test]
fn nobody_ticks_or_likes_for_someone_else() {
    let mut f = family();
    let host = f.host.me().to_hex();
    let m = f.host.add_mission("장보기", &[], None, T0).unwrap();
    accept(&mut f.member, &m.change.unwrap());
    let id = m.value;
    let tick = rogue(&mut f.member, |d| {
        let c = obj(d, &["missions", &id, "completions"]);
        d.put(&c, host.as_str(), T0).unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &tick)));

    let mut f = family();
    let album = f.host.create_album("여행", T0).unwrap();
    accept(&mut f.member, &album.change.unwrap());
    let p = f.host.add_photo(&album.value, photo(), T0).unwrap();
    accept(&mut f.member, &p.change.unwrap());
    let id = p.value;
    let like = rogue(&mut f.member, |d| {
        let likes = obj(d, &["photos", &id, "likes"]);
        d.put(&likes, host.as_str(), T0).unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &like)));
}

#[test]
fn a_member_cannot_delete_the_hosts_photo_or_comment_but_the_host_can_delete_theirs() {
    let mut f = family();
    let album = f.host.create_album("여행", T0).unwrap();
    accept(&mut f.member, &album.change.unwrap());
    let p = f.host.add_photo(&album.value, photo(), T0).unwrap();
    accept(&mut f.member, &p.change.unwrap());
    let c = f.host.add_comment(&p.value, "예쁘다", T0).unwrap();
    accept(&mut f.member, &c.change.unwrap());
    let (pid, cid) = (p.value, c.value);
    let tombstone = rogue(&mut f.member, |d| {
        let comment = obj(d, &["photos", &pid, "comments", &cid]);
        d.put(&comment, "deleted", true).unwrap();
        d.put(&comment, "text", "").unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &tombstone)));
    f.member.replica_mut().rollback();
    let mut f = family();
    let album = f.host.create_album("여행", T0).unwrap();
    accept(&mut f.member, &album.change.unwrap());
    let p = f.host.add_photo(&album.value, photo(), T0).unwrap();
    accept(&mut f.member, &p.change.unwrap());
    let pid = p.value;
    let delete = rogue(&mut f.member, |d| {
        let photos = obj(d, &["photos"]);
        d.delete(&photos, pid.as_str()).unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &delete)));

    // The host moderates: deletes the member's comment and photo.
    let mut f = family();
    let album = f.member.create_album("내 앨범", T0).unwrap();
    accept(&mut f.host, &album.change.unwrap());
    let p = f.member.add_photo(&album.value, photo(), T0).unwrap();
    accept(&mut f.host, &p.change.unwrap());
    let c = f.member.add_comment(&p.value, "안녕", T0).unwrap();
    accept(&mut f.host, &c.change.unwrap());
    let e = f.host.delete_comment(&p.value, &c.value, T0).unwrap();
    accept(&mut f.member, &e.change.unwrap());
    let e = f.host.delete_photo(&p.value, T0).unwrap();
    accept(&mut f.member, &e.change.unwrap());
    assert!(f.member.view().photos.is_empty());
}

#[test]
fn deleting_an_album_deletes_the_others_photos_in_it() {
    let mut f = family();
    let album = f.member.create_album("여행", T0).unwrap();
    accept(&mut f.host, &album.change.unwrap());
    let p = f.host.add_photo(&album.value, photo(), T0).unwrap();
    accept(&mut f.member, &p.change.unwrap());
    let e = f.member.delete_album(&album.value, T0).unwrap();
    accept(&mut f.host, &e.change.unwrap());
    assert!(f.host.view().photos.is_empty());
    // But deleting the host's photo while pretending to delete another album is not.
    let mut f = family();
    let mine = f.member.create_album("내 것", T0).unwrap();
    accept(&mut f.host, &mine.change.unwrap());
    let theirs = f.host.create_album("여행", T0).unwrap();
    accept(&mut f.member, &theirs.change.unwrap());
    let p = f.host.add_photo(&theirs.value, photo(), T0).unwrap();
    accept(&mut f.member, &p.change.unwrap());
    let (pid, aid) = (p.value, mine.value);
    let bad = rogue(&mut f.member, |d| {
        let photos = obj(d, &["photos"]);
        d.delete(&photos, pid.as_str()).unwrap();
        let albums = obj(d, &["albums"]);
        d.delete(&albums, aid.as_str()).unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &bad)));
}

#[test]
fn what_builds_on_a_refused_change_is_refused_too() {
    let mut f = family();
    let bad = rogue(&mut f.member, |d| d.put(ROOT, "name", "내 가족").unwrap());
    // An honest-looking change on top of it (the member's next action).
    let next = f.member.add_mission("장보기", &[], None, T0).unwrap();
    let update = f
        .host
        .apply_remote([bad.as_slice(), next.change.as_deref().unwrap()]);
    assert_eq!(update.rejected, vec![0, 1]);
    assert!(f.host.view().missions.is_empty());
    // Arriving the other way round, the dependant waits, then goes with its parent.
    let mut f2 = family();
    let bad = rogue(&mut f2.member, |d| d.put(ROOT, "name", "내 가족").unwrap());
    let next = f2.member.add_mission("장보기", &[], None, T0).unwrap();
    let u1 = f2.host.apply_remote([next.change.as_deref().unwrap()]);
    assert!(
        u1.rejected.is_empty(),
        "a change waiting for its parent is kept"
    );
    assert!(f2.host.view().missions.is_empty());
    let u2 = f2.host.apply_remote([bad.as_slice()]);
    assert_eq!(u2.rejected, vec![0]);
    assert!(f2.host.view().missions.is_empty());
    assert_eq!(f2.host.view().name, "우리 가족");
}

#[test]
fn a_second_first_change_is_refused() {
    let mut f = family();
    let intruder = actor();
    let (_, genesis) =
        FamilyDoc::create(FamilyId::random(), "가짜", "대장", &intruder, T0).unwrap();
    assert!(matches!(
        refusal(&mut f.host, &genesis),
        Refusal::Rule(Violation::SecondRoot)
    ));
}

#[test]
fn lists_and_text_are_refused() {
    let mut f = family();
    let bad = rogue(&mut f.member, |d| {
        let t = d.put_object(ROOT, "notes", ObjType::Text).unwrap();
        d.splice_text(&t, 0, 0, "aaaa").unwrap();
    });
    assert!(matches!(
        refusal(&mut f.host, &bad),
        Refusal::Rule(Violation::Unsupported(_))
    ));
}

/// Every honest operation passes every device's rules (else the devices would fork).
#[test]
fn every_honest_operation_is_accepted_by_the_other_devices() {
    let mut f = family();
    let host = f.host.me();
    let me = f.member_actor.user;
    let mut sent: Vec<Vec<u8>> = Vec::new();
    macro_rules! by_host {
        ($e:expr) => {{
            let edit = $e.unwrap();
            if let Some(c) = &edit.change {
                accept(&mut f.member, c);
                sent.push(c.clone());
            }
            edit.value
        }};
    }
    macro_rules! by_member {
        ($e:expr) => {{
            let edit = $e.unwrap();
            if let Some(c) = &edit.change {
                accept(&mut f.host, c);
                sent.push(c.clone());
            }
            edit.value
        }};
    }
    by_host!(f.host.rename("새 가족", T0));
    by_member!(f.member.set_member_name(me, "아버지", T0));
    by_host!(f.host.set_member_name(me, "아빠", T0));
    let m1 = by_host!(f.host.add_mission("장보기", &[], Some("2024-01-02"), T0));
    by_member!(f.member.set_mission_done(&m1, true, T0));
    by_host!(f.host.set_mission_done(&m1, true, T0));
    by_member!(f.member.set_mission_done(&m1, false, T0));
    let m2 = by_member!(f.member.add_mission("청소", &[me], None, T0));
    by_host!(f.host.edit_mission(
        &m2,
        MissionPatch {
            title: Some("대청소".into()),
            participants: Some(vec![host]),
            due: Some(Some("2024-02-03".into())),
        },
        T0
    ));
    by_member!(f.member.edit_mission(
        &m2,
        MissionPatch {
            title: Some("내 청소".into()),
            ..MissionPatch::default()
        },
        T0
    ));
    by_host!(f.host.delete_mission(&m2, T0));
    let e = by_member!(f.member.add_event(
        EventInput {
            title: "생일".into(),
            notes: "케이크 ".repeat(100),
            start: "2024-03-01".into(),
            ..EventInput::default()
        },
        T0
    ));
    by_host!(f.host.edit_event(
        &e,
        doran_client_core::EventPatch {
            title: Some("엄마 생일".into()),
            start_time: Some(Some("10:00".into())),
            ..Default::default()
        },
        T0
    ));
    by_host!(f.host.delete_event(&e, T0));
    let a = by_member!(f.member.create_album("여행", T0));
    by_host!(f.host.rename_album(&a, "제주 여행", T0));
    let p1 = by_host!(f.host.add_photo(&a, photo(), T0));
    let p2 = by_member!(f.member.add_photo(&a, photo(), T0));
    by_host!(f.host.set_album_cover(&a, &p2, T0));
    by_member!(f.member.set_like(&p1, true, T0));
    by_member!(f.member.set_like(&p1, false, T0));
    let c = by_member!(f.member.add_comment(&p1, "좋다", T0));
    by_member!(f.member.delete_comment(&p1, &c, T0));
    let c2 = by_host!(f.host.add_comment(&p2, "멋져", T0));
    by_host!(f.host.delete_comment(&p2, &c2, T0));
    by_member!(f.member.delete_photo(&p2, T0));
    by_member!(f.member.delete_album(&a, T0));
    let va = by_member!(f.member.create_voice_album("목소리", 2, T0));
    by_host!(
        f.host
            .edit_voice_album(&va, Some("가족 목소리"), Some(3), T0)
    );
    let v = by_host!(f.host.add_voice(
        &va,
        doran_client_core::VoiceInput {
            title: "안녕".into(),
            blob: BlobHash::of(b"mp3").into(),
            size: 100,
            duration_ms: 1000,
            peaks: vec![7; 256],
        },
        T0
    ));
    by_member!(f.member.delete_voice_album(&va, T0));
    let _ = v;
    by_member!(f.member.leave(T0));
    assert!(f.host.view().members.len() == 1);
    // A third device that gets everything at once, out of order, ends the same.
    let mut third = FamilyDoc::load(None, [], &actor()).unwrap();
    let mut all: Vec<Vec<u8>> = f
        .host
        .replica_mut()
        .doc_mut()
        .get_changes(&[])
        .into_iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    all.reverse();
    assert!(all.len() > sent.len());
    let update = third.apply_remote(all.iter().map(Vec::as_slice));
    assert!(update.refusals.is_empty(), "{:?}", update.refusals);
    assert_eq!(third.replica_mut().heads(), f.host.replica_mut().heads());
}

/// The member's join was applied first, and the family's first change before it.
fn first_change(doc: &mut FamilyDoc) -> Vec<u8> {
    let changes = doc.replica_mut().doc_mut().get_changes(&[]);
    changes
        .into_iter()
        .find(|c| c.deps().is_empty())
        .unwrap()
        .raw_bytes()
        .to_vec()
}

/// Three devices, honest and hostile changes delivered in different orders: they all
/// refuse the same changes and end in the same state.
#[test]
fn devices_agree_whatever_the_arrival_order() {
    let mut f = family();
    let host = f.host.me().to_hex();
    let mut changes: Vec<Vec<u8>> = vec![first_change(&mut f.host)];
    // The member's join.
    changes.extend(
        f.member
            .replica_mut()
            .doc_mut()
            .get_changes(&[])
            .into_iter()
            .filter(|c| !c.deps().is_empty())
            .map(|c| c.raw_bytes().to_vec()),
    );
    let m = f.host.add_mission("장보기", &[], None, T0).unwrap();
    changes.push(m.change.clone().unwrap());
    accept(&mut f.member, &m.change.unwrap());
    let tick = f.member.set_mission_done(&m.value, true, T0).unwrap();
    changes.push(tick.change.unwrap());
    let id = m.value.clone();
    changes.push(rogue(&mut f.member, |d| {
        let c = obj(d, &["missions", &id, "completions"]);
        d.put(&c, host.as_str(), T0).unwrap();
    }));
    let after_bad = f.member.add_mission("청소", &[], None, T0).unwrap();
    changes.push(after_bad.change.unwrap());
    let rename = f.host.rename("새 이름", T0).unwrap();
    changes.push(rename.change.unwrap());
    // A concurrent honest edit by the member, not built on the bad change.
    let other_device = Actor {
        user: f.member_actor.user,
        device: DeviceId::random(),
    };
    let mut clean =
        FamilyDoc::load(None, changes[..4].iter().map(Vec::as_slice), &other_device).unwrap();
    let a = clean.create_album("여행", T0).unwrap();
    changes.push(a.change.unwrap());

    let orders: [Vec<usize>; 3] = [
        (0..changes.len()).collect(),
        (0..changes.len()).rev().collect(),
        vec![0, 5, 2, 7, 1, 4, 3, 6],
    ];
    let mut states = Vec::new();
    for order in orders {
        let mut device = FamilyDoc::load(None, [], &actor()).unwrap();
        for i in order {
            device.apply_remote([changes[i].as_slice()]);
        }
        states.push((device.replica_mut().heads(), device.view().clone()));
    }
    assert_eq!(states[0], states[1]);
    assert_eq!(states[0], states[2]);
    let view = &states[0].1;
    assert_eq!(view.name, "새 이름");
    assert_eq!(view.albums.len(), 1);
    assert_eq!(
        view.missions.len(),
        1,
        "the mission built on the bad tick is out"
    );
    assert_eq!(
        view.missions[&m.value].completions.len(),
        1,
        "only the member's own tick"
    );
}

/// A change that waited for its dependencies is checked again, the same way, when the
/// document is loaded from the store — a refused one is never applied on open.
#[test]
fn a_waiting_change_is_checked_again_on_open() {
    let mut f = family();
    let bad = rogue(&mut f.member, |d| d.put(ROOT, "name", "내 가족").unwrap());
    let next = f.member.add_mission("장보기", &[], None, T0).unwrap();
    let next = next.change.unwrap();
    // Stored log: the family, then the dependant (kept, waiting), never the bad one.
    let mut log = f
        .host
        .replica_mut()
        .doc_mut()
        .get_changes(&[])
        .into_iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect::<Vec<_>>();
    assert!(f.host.apply_remote([next.as_slice()]).rejected.is_empty());
    log.push(next);
    assert_eq!(f.host.apply_remote([bad.as_slice()]).rejected, vec![0]);
    let reopened = FamilyDoc::load(None, log.iter().map(Vec::as_slice), &actor()).unwrap();
    assert!(reopened.view().missions.is_empty());
    assert_eq!(reopened.view().name, "우리 가족");
}

/// The "ever done" counters behind badges: each device counts on its own counter,
/// +1 with each thing it does; a modified client cannot inflate the family's badges
/// or someone else's.
#[test]
fn badge_counters_go_up_only_with_what_they_count() {
    // A family where the member made and ticked a mission, honestly counted.
    let counted = || {
        let mut f = family();
        let member_user = f.member_actor.user;
        let m = f
            .member
            .add_mission("장보기", &[member_user], None, T0)
            .unwrap();
        accept(&mut f.host, &m.change.unwrap());
        let t = f.member.set_mission_done(&m.value, true, T0).unwrap();
        accept(&mut f.host, &t.change.unwrap());
        f
    };
    let own = |f: &mut Family, kind: &str| {
        let actor = f.member.replica_mut().doc_mut().get_actor().to_hex_string();
        format!("n/{kind}/{actor}")
    };
    let mut f = counted();
    let me = f.member_actor.user.to_hex();
    assert_eq!(f.host.view().ever("missions", Some(&me)), 1);
    assert_eq!(f.host.view().ever("ticks", Some(&me)), 1);

    // +1 with nothing done.
    let key = own(&mut f, "photos");
    let bump = rogue(&mut f.member, |d| {
        d.put(ROOT, key.as_str(), automerge::ScalarValue::counter(1))
            .unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &bump)));

    // A counter that jumps by a million.
    let mut f = counted();
    let key = own(&mut f, "missions");
    let inflated = rogue(&mut f.member, |d| {
        d.increment(ROOT, key.as_str(), 999_999).unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &inflated)));

    // Counting on another device's counter (the host's).
    let mut f = counted();
    let host_key = format!(
        "n/missions/{}",
        f.host.replica_mut().doc_mut().get_actor().to_hex_string()
    );
    let forged = rogue(&mut f.member, |d| {
        d.put(ROOT, host_key.as_str(), automerge::ScalarValue::counter(1))
            .unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &forged)));

    // An unknown kind.
    let mut f = counted();
    let key = own(&mut f, "stars");
    let unknown = rogue(&mut f.member, |d| {
        d.put(ROOT, key.as_str(), automerge::ScalarValue::counter(1))
            .unwrap();
    });
    assert!(matches!(
        refusal(&mut f.host, &unknown),
        Refusal::Rule(Violation::UnknownPath(_))
    ));
    let me = f.member_actor.user.to_hex();
    assert_eq!(
        f.host.view().ever("missions", Some(&me)),
        1,
        "nothing inflated"
    );
}

/// A tick can be taken back and given again: the badges count missions ticked and
/// completed (a mark per member and mission), not clicks, and a modified client can
/// mark neither a mission it did not tick nor one its tick did not complete.
#[test]
fn ticking_again_counts_nothing_and_marks_cannot_be_forged() {
    let mut f = family();
    let host_user = f.host.me();
    let member_user = f.member_actor.user;
    let me = member_user.to_hex();
    let m = f
        .member
        .add_mission("장보기", &[member_user, host_user], None, T0)
        .unwrap();
    accept(&mut f.host, &m.change.unwrap());
    let mission = m.value;
    let tick = |f: &mut Family, done: bool| {
        let t = f.member.set_mission_done(&mission, done, T0).unwrap();
        accept(&mut f.host, &t.change.unwrap());
    };
    // Tick, untick, tick, untick, tick: one mission ticked, none completed (the host
    // has not ticked).
    for done in [true, false, true, false, true] {
        tick(&mut f, done);
    }
    assert_eq!(f.host.view().ever("ticks", Some(&me)), 1);
    assert_eq!(f.member.view().ever("ticks", Some(&me)), 1);
    assert_eq!(f.host.view().ever("completed", None), 0);

    // The host's tick completes it; ticking it again does not complete it again.
    for done in [true, false, true] {
        let t = f.host.set_mission_done(&mission, done, T0).unwrap();
        accept(&mut f.member, &t.change.unwrap());
    }
    for doc in [&f.host, &f.member] {
        assert_eq!(doc.view().ever("completed", None), 1);
        assert_eq!(doc.view().ever("ticks", Some(&host_user.to_hex())), 1);
    }

    // A mark with no tick, on a second mission.
    let other = f
        .member
        .add_mission("청소", &[member_user, host_user], None, T0)
        .unwrap();
    accept(&mut f.host, &other.change.unwrap());
    let other = other.value;
    let unticked = format!("e/ticks/{me}/{other}");
    let forged = rogue(&mut f.member, |d| {
        d.put(ROOT, unticked.as_str(), T0).unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &forged)));

    // "Completed" with a tick the host has not matched.
    let mut f2 = family();
    let m2 = f2
        .member
        .add_mission("요리", &[f2.member_actor.user, f2.host.me()], None, T0)
        .unwrap();
    accept(&mut f2.host, &m2.change.unwrap());
    let me2 = f2.member_actor.user.to_hex();
    let ticks = obj(
        f2.member.replica_mut().doc_mut(),
        &["missions", &m2.value, "completions"],
    );
    let early = format!("e/completed/{me2}/{}", m2.value);
    let tick_key = format!("e/ticks/{me2}/{}", m2.value);
    let claimed = rogue(&mut f2.member, |d| {
        d.put(&ticks, me2.as_str(), T0).unwrap();
        d.put(ROOT, tick_key.as_str(), T0).unwrap();
        d.put(ROOT, early.as_str(), T0).unwrap();
    });
    assert!(not_allowed(&refusal(&mut f2.host, &claimed)));

    // Someone else's mark, a mark removed, a mark that is not a time, an unknown kind
    // (each from the member's accepted state).
    f.member = FamilyDoc::load(Some(&f.host.save()), [], &f.member_actor).unwrap();
    let host_hex = host_user.to_hex();
    let theirs = format!("e/ticks/{host_hex}/{mission}");
    let mine = format!("e/ticks/{me}/{mission}");
    let attempts: [Write<'_>; 4] = [
        // (A value of its own: putting the same value again writes nothing.)
        Box::new(|d| d.put(ROOT, theirs.as_str(), T0 + 7).unwrap()),
        Box::new(|d| d.delete(ROOT, mine.as_str()).unwrap()),
        Box::new(|d| d.put(ROOT, mine.as_str(), "soon").unwrap()),
        Box::new(|d| {
            d.put(ROOT, format!("e/stars/{me}/{mission}").as_str(), T0)
                .unwrap()
        }),
    ];
    each_refused(&mut f, attempts);
    assert_eq!(
        f.host.view().ever("ticks", Some(&me)),
        1,
        "nothing inflated"
    );
    assert_eq!(f.host.view().ever("completed", None), 1);
}

#[test]
fn a_member_publishes_only_their_own_profile_keys() {
    let mut f = family();
    // Their own, through the operation: every device takes them and reads them back,
    // with the personal document they are for.
    let secret = [7u8; 32];
    let doc = DocId::random();
    let published = f
        .member
        .publish_profile_keys(doc, &[(1, secret)], T0 + 1)
        .unwrap();
    assert_eq!(published.value, 1);
    accept(&mut f.host, &published.change.unwrap());
    assert_eq!(
        f.host.profile_keys().get(&f.member_actor.user),
        Some(&PublishedKeys {
            doc,
            secrets: vec![(1, secret)]
        })
    );
    // Publishing the same again changes nothing.
    let again = f
        .member
        .publish_profile_keys(doc, &[(1, secret)], T0 + 2)
        .unwrap();
    assert_eq!((again.value, again.change), (0, None));

    // Keys in the member's entry written by the host, keys that are not 32 bytes
    // under an epoch, and keys in the host's entry written by the member (on a family
    // of their own: a change building on a refused one is refused for that) are
    // refused.
    let member_key = f.member_actor.user.to_hex();
    let by_host = rogue(&mut f.host, |d| {
        let keys = obj(d, &["members", &member_key, "keys"]);
        d.put(&keys, "2", automerge::ScalarValue::Bytes(vec![2; 32]))
            .unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.member, &by_host)));
    let short = rogue(&mut f.member, |d| {
        let keys = obj(d, &["members", &member_key, "keys"]);
        d.put(&keys, "3", automerge::ScalarValue::Bytes(vec![3; 16]))
            .unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &short)));
    let mut g = family();
    let host_key = g.host.me().to_hex();
    let forged = rogue(&mut g.member, |d| {
        let member = obj(d, &["members", &host_key]);
        let keys = d.put_object(&member, "keys", ObjType::Map).unwrap();
        d.put(&keys, "1", automerge::ScalarValue::Bytes(vec![1; 32]))
            .unwrap();
    });
    assert!(not_allowed(&refusal(&mut g.host, &forged)));
}

#[test]
fn a_member_records_only_their_own_invites_and_the_host_removes_them_with_the_member() {
    let mut f = family();
    let invitee = UserId::random();
    // Through the operation: every device takes it and reads it back.
    let recorded = f.member.record_invite(invitee, T0 + 1).unwrap();
    accept(&mut f.host, &recorded.change.unwrap());
    assert!(f.host.invited_since(T0, T0).contains(&invitee));
    assert!(
        f.host.invited_since(T0 + 2, T0).is_empty(),
        "an older invite"
    );

    // In the host's name, not a time, or another member's removed by a member: refused.
    let me = f.member_actor.user.to_hex();
    let host = f.host.me().to_hex();
    let other = UserId::random().to_hex();
    let theirs = format!("i/{other}/{host}");
    let mine = format!("i/{}/{me}", invitee.to_hex());
    let upper = format!("i/{}/{me}", other.to_uppercase());
    let attempts: [Write<'_>; 4] = [
        Box::new(|d| d.put(ROOT, theirs.as_str(), T0).unwrap()),
        Box::new(|d| d.put(ROOT, mine.as_str(), "soon").unwrap()),
        Box::new(|d| d.put(ROOT, format!("i/{other}").as_str(), T0).unwrap()),
        // Another spelling of an id: the removal would not find it.
        Box::new(|d| d.put(ROOT, upper.as_str(), T0).unwrap()),
    ];
    each_refused(&mut f, attempts);
    let by_host = rogue(&mut f.host, |d| {
        d.put(ROOT, format!("i/{other}/{host}").as_str(), T0)
            .unwrap();
    });
    accept(&mut f.member, &by_host);
    let removed = rogue(&mut f.member, |d| {
        d.delete(ROOT, format!("i/{other}/{host}").as_str())
            .unwrap();
    });
    assert!(not_allowed(&refusal(&mut f.host, &removed)));

    // A time far ahead is taken, but read as no invite (it would last for ever).
    f.member = FamilyDoc::load(Some(&f.host.save()), [], &f.member_actor).unwrap();
    let later = UserId::random();
    let ahead = rogue(&mut f.member, |d| {
        d.put(
            ROOT,
            format!("i/{}/{me}", later.to_hex()).as_str(),
            T0 + 10 * 86_400_000,
        )
        .unwrap();
    });
    accept(&mut f.host, &ahead);
    assert!(!f.host.invited_since(T0, T0).contains(&later));
    assert!(
        f.host
            .invited_since(T0, T0 + 10 * 86_400_000)
            .contains(&later)
    );

    // Leaving removes the invites of the one who leaves.
    let mut h = family();
    let leaver = h.member_actor.user;
    let recorded = h.host.record_invite(leaver, T0 + 3).unwrap();
    accept(&mut h.member, &recorded.change.unwrap());
    let left = h.member.leave(T0 + 4).unwrap();
    accept(&mut h.host, &left.change.unwrap());
    assert!(h.host.invited_since(T0, T0).is_empty());

    // Removing the member removes the invites of them too.
    let mut g = family();
    let member = g.member_actor.user;
    let again = g.host.record_invite(member, T0 + 3).unwrap();
    accept(&mut g.member, &again.change.unwrap());
    assert!(g.host.invited_since(T0, T0).contains(&member));
    let gone = g.host.remove_member(member, T0 + 4).unwrap();
    accept(&mut g.member, &gone.change.unwrap());
    assert!(g.host.invited_since(T0, T0).is_empty());
    assert!(g.member.invited_since(T0, T0).is_empty());

    // A closed invite is forgotten: a member forgets their own record, the host every
    // one; nothing to forget is no change.
    let mut c = family();
    let declined = UserId::random();
    let by_member = c.member.record_invite(declined, T0 + 3).unwrap();
    accept(&mut c.host, &by_member.change.unwrap());
    let by_host = c.host.record_invite(declined, T0 + 3).unwrap();
    accept(&mut c.member, &by_host.change.unwrap());
    let own = c.member.forget_invites_of(declined, T0 + 4).unwrap();
    assert_eq!(own.value, 1, "the member's own record only");
    accept(&mut c.host, &own.change.unwrap());
    assert!(
        c.host.invited_since(T0, T0).contains(&declined),
        "the host's stays"
    );
    let all = c.host.forget_invites_of(declined, T0 + 5).unwrap();
    assert_eq!(all.value, 1);
    accept(&mut c.member, &all.change.unwrap());
    assert!(c.member.invited_since(T0, T0).is_empty());
    let none = c.host.forget_invites_of(declined, T0 + 6).unwrap();
    assert_eq!((none.value, none.change), (0, None));

    // The invites a removed member recorded are read as none.
    let mut k = family();
    let someone = UserId::random();
    let theirs = k.member.record_invite(someone, T0 + 3).unwrap();
    accept(&mut k.host, &theirs.change.unwrap());
    assert!(k.host.invited_since(T0, T0).contains(&someone));
    let member = k.member_actor.user;
    k.host.remove_member(member, T0 + 4).unwrap();
    assert!(k.host.invited_since(T0, T0).is_empty());
}

/// The volumes a family keeps (`v/{year}`, issue 17): any member lists one, once, for
/// a year written as devices write it; nobody unlists one.
#[test]
fn a_volume_is_listed_by_any_member_and_never_unlisted() {
    let mut f = family();
    let listed = f.member.register_volume(2026, T0).unwrap().change.unwrap();
    accept(&mut f.host, &listed);
    assert!(f.host.view().volumes.contains(&2026));
    assert_eq!(f.member.register_volume(2026, T0 + 1).unwrap().change, None);
    assert!(matches!(
        f.member.register_volume(1899, T0),
        Err(DocError::BadDate(_))
    ));
    each_refused(
        &mut f,
        [
            Box::new(|d: &mut automerge::AutoCommit| d.put(ROOT, "v/1899", T0).unwrap())
                as Write<'_>,
            Box::new(|d| d.put(ROOT, "v/2201", T0).unwrap()),
            Box::new(|d| d.put(ROOT, "v/02027", T0).unwrap()),
            Box::new(|d| d.put(ROOT, "v/year", T0).unwrap()),
            Box::new(|d| d.put(ROOT, "v/2027", "now").unwrap()),
            Box::new(|d| d.delete(ROOT, "v/2026").unwrap()),
        ],
    );
    assert_eq!(f.host.view().volumes, [2026].into());
}

/// A hide record (`h/albums/{album}` = when: the album's photos kept in volumes,
/// which its deletion in the family's document cannot remove) is written only by the
/// change that deletes the album outright, and never removed; a deleted album's id is
/// never made again. So whoever may not delete an album cannot hide its photos, and
/// nobody brings a deleted album's photos back by making the album again.
#[test]
fn a_hide_record_comes_only_with_its_albums_deletion() {
    let mut f = family();
    let album = f.host.create_album("여행", T0).unwrap();
    accept(&mut f.member, &album.change.unwrap());
    let other = f.host.create_album("집", T0).unwrap();
    accept(&mut f.member, &other.change.unwrap());
    let voices = f.host.create_voice_album("노래", 1, T0).unwrap();
    accept(&mut f.member, &voices.change.unwrap());
    let (album, other, voices) = (album.value, other.value, voices.value);
    let hide = format!("h/albums/{album}");
    // The host's user on another device: the host still.
    let host_device = Actor {
        user: f.host.me(),
        device: DeviceId::random(),
    };
    let saved = f.host.save();
    let as_host = || FamilyDoc::load(Some(&saved), [], &host_device).unwrap();
    let as_member = || FamilyDoc::load(Some(&saved), [], &f.member_actor).unwrap();
    let deletes = |d: &mut automerge::AutoCommit, coll: &str, which: &str, key: &str| {
        let albums = obj(d, &[coll]);
        d.delete(&albums, which).unwrap();
        d.put(ROOT, key, T0).unwrap();
    };
    let remakes = |d: &mut automerge::AutoCommit, which: &str, key: &str| {
        let albums = obj(d, &["albums"]);
        d.put_object(&albums, which, ObjType::Map).unwrap();
        d.put(ROOT, key, T0).unwrap();
    };
    // Not on its own, not with another album's deletion, not by a member who may not
    // delete the album, not with the album made over rather than deleted, not naming
    // the album as a voice album, not as anything but a time; ids as devices make them.
    let bad = [
        rogue(&mut as_member(), |d| {
            d.put(ROOT, hide.as_str(), T0).unwrap()
        }),
        rogue(&mut as_member(), |d| deletes(d, "albums", &album, &hide)),
        rogue(&mut as_host(), |d| deletes(d, "albums", &other, &hide)),
        rogue(&mut as_host(), |d| remakes(d, &album, &hide)),
        rogue(&mut as_host(), |d| {
            deletes(
                d,
                "voice_albums",
                &voices,
                &format!("h/voice_albums/{album}"),
            )
        }),
        rogue(&mut as_host(), |d| {
            deletes(d, "albums", &album, &format!("h/voice_albums/{album}"))
        }),
        rogue(&mut as_host(), |d| {
            deletes(
                d,
                "albums",
                &album,
                &format!("h/albums/{}", album.to_uppercase()),
            )
        }),
        rogue(&mut as_host(), |d| {
            deletes(d, "albums", &album, &format!("h/{album}"))
        }),
        rogue(&mut as_host(), |d| {
            let albums = obj(d, &["albums"]);
            d.delete(&albums, album.as_str()).unwrap();
            d.put(ROOT, hide.as_str(), "now").unwrap();
        }),
    ];
    for (i, bad) in bad.iter().enumerate() {
        let why = refusal(&mut f.host, bad);
        assert!(
            not_allowed(&why) || matches!(why, Refusal::Rule(Violation::UnknownPath(_))),
            "{i}: {why:?}"
        );
    }
    // The host deletes the album: the device writes the record with the deletion, and
    // a member's device reads it as it arrives.
    let mut member = FamilyDoc::load(Some(&f.host.save()), [], &f.member_actor).unwrap();
    let deleting = f.host.delete_album(&album, T0 + 7).unwrap();
    accept(&mut member, &deleting.change.unwrap());
    assert_eq!(member.view().hidden.albums.get(&album), Some(&(T0 + 7)));
    let deleting = f.host.delete_voice_album(&voices, T0 + 8).unwrap();
    accept(&mut member, &deleting.change.unwrap());
    assert_eq!(
        member.view().hidden.voice_albums.get(&voices),
        Some(&(T0 + 8))
    );
    // Never removed; the album is never made again at its id.
    let after = FamilyDoc::load(Some(&f.host.save()), [], &host_device);
    let remade = rogue(&mut after.unwrap(), |d| {
        let albums = obj(d, &["albums"]);
        let made = d.put_object(&albums, album.as_str(), ObjType::Map).unwrap();
        d.put(&made, "name", "다시").unwrap();
    });
    let removed = rogue(&mut f.host, |d| d.delete(ROOT, hide.as_str()).unwrap());
    assert!(not_allowed(&refusal(&mut member, &removed)));
    assert!(not_allowed(&refusal(&mut member, &remade)));
}

/// A change written from a fork (dependencies older than an album) can make an album
/// at its id, delete it and write a hide record with it — the rules cannot tell — but
/// such a record hides nothing of the album that stands there, and the album's
/// deletion, later, writes its own record over it, taken by every device. Two devices
/// deleting an album at once write two times: the earliest counts, whichever value
/// Automerge shows.
#[test]
fn a_hide_record_from_a_fork_hides_no_standing_album() {
    let mut f = family();
    let before_the_album = f.host.save();
    let album = f.host.create_album("여행", T0).unwrap();
    let album_made = album.change.unwrap();
    let album = album.value;
    let added = f.host.add_photo(&album, photo(), T0 + 1).unwrap();
    let photo_added = added.change.clone().unwrap();
    let in_volume = f.host.view().photos[&added.value].clone();
    let volume = doran_client_core::model::Family {
        photos: [(added.value.clone(), in_volume)].into(),
        ..Default::default()
    };
    let shows = |doc: &FamilyDoc| {
        doran_client_core::volume::merged(doc.view().clone(), [(2026, volume.clone())])
            .view
            .photos
            .contains_key(&added.value)
    };
    let hide = format!("h/albums/{album}");
    // The member's fork, from before the host made the album: their own album at its
    // id, deleted with a record that would hide it all for ever.
    let fork_actor = Actor {
        user: f.member_actor.user,
        device: DeviceId::random(),
    };
    let mut fork = FamilyDoc::load(Some(&before_the_album), [], &fork_actor).unwrap();
    let made = rogue(&mut fork, |d| {
        let albums = obj(d, &["albums"]);
        d.put_object(&albums, album.as_str(), ObjType::Map).unwrap();
    });
    let hidden = rogue(&mut fork, |d| {
        let albums = obj(d, &["albums"]);
        d.delete(&albums, album.as_str()).unwrap();
        d.put(ROOT, hide.as_str(), i64::MAX).unwrap();
    });
    for change in [&album_made, &photo_added, &made, &hidden] {
        accept(&mut f.member, change);
    }
    accept(&mut f.host, &made);
    accept(&mut f.host, &hidden);
    assert!(f.host.view().albums.contains_key(&album));
    assert_eq!(f.host.view().hidden.albums.get(&album), Some(&i64::MAX));
    assert!(shows(&f.host), "a record hid a standing album's photo");

    // The host deletes the album on two devices at once, the second (whose record
    // Automerge shows: its change has more operations before it) later by the clock.
    let second = Actor {
        user: f.host.me(),
        device: DeviceId::random(),
    };
    let mut other_device = FamilyDoc::load(Some(&f.host.save()), [], &second).unwrap();
    let first = f.host.delete_album(&album, T0 + 7).unwrap().change.unwrap();
    let busy = other_device
        .add_event(
            EventInput {
                title: "소풍".into(),
                start: "2026-05-05".into(),
                ..Default::default()
            },
            T0 + 8,
        )
        .unwrap()
        .change
        .unwrap();
    let later = other_device
        .delete_album(&album, T0 + 9)
        .unwrap()
        .change
        .unwrap();
    for change in [&first, &busy, &later] {
        accept(&mut f.member, change);
    }
    let shown = f
        .member
        .replica_mut()
        .doc()
        .get(ROOT, hide.as_str())
        .unwrap();
    assert!(
        matches!(shown, Some((automerge::Value::Scalar(ref v), _)) if v.as_ref() == &automerge::ScalarValue::Int(T0 + 9)),
        "{shown:?}"
    );
    assert_eq!(f.member.view().hidden.albums.get(&album), Some(&(T0 + 7)));
    assert!(!shows(&f.member));
}
