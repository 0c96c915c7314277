//! Operations on one replica: limits, permissions, and that a refused edit changes
//! nothing.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use doran_client_core::{
    Actor, DocError, EventInput, FamilyDoc, MissionPatch, PersonalDoc, PhotoInput, VoiceInput,
    model::Mood, validate::Field,
};
use doran_protocol::{BlobHash, DeviceId, FamilyId, UserId};

const T0: i64 = 1_764_300_000_000;

fn actor() -> Actor {
    Actor {
        user: UserId::random(),
        device: DeviceId::random(),
    }
}

fn family() -> (FamilyDoc, Actor) {
    let host = actor();
    let (doc, change) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &host, T0).unwrap();
    assert!(!change.is_empty());
    (doc, host)
}

/// Applies the host's state to a replica for `who`.
fn replica_for(doc: &mut FamilyDoc, who: &Actor) -> FamilyDoc {
    FamilyDoc::load(Some(&doc.save()), [], who).unwrap()
}

fn assert_unchanged(doc: &mut FamilyDoc, before: &[automerge::ChangeHash]) {
    assert_eq!(
        doc.replica_mut().heads(),
        before,
        "a refused edit changed the document"
    );
}

#[test]
fn create_validates_the_title_and_makes_the_creator_host() {
    let host = actor();
    for bad in ["", "   ", "열한글자가족이름입니다"] {
        assert!(matches!(
            FamilyDoc::create(FamilyId::random(), bad, "엄마", &host, T0),
            Err(DocError::Length {
                field: Field::FamilyTitle,
                ..
            })
        ));
    }
    let (doc, _) = family();
    let v = doc.view();
    assert_eq!(v.name, "우리 가족");
    assert_eq!(v.members.len(), 1);
    assert_eq!(v.members.values().next().unwrap().name, "엄마");
}

#[test]
fn refused_edits_change_nothing() {
    let (mut doc, _) = family();
    let before = doc.replica_mut().heads();
    let cases: Vec<DocError> = vec![
        doc.add_mission("이 미션 제목은 열일곱 글자를 넘어요", &[], None, T0)
            .unwrap_err(),
        doc.add_mission("산책", &[UserId::random()], None, T0)
            .unwrap_err(),
        doc.add_mission("산책", &[], Some("2026-02-30"), T0)
            .unwrap_err(),
        doc.add_event(
            EventInput {
                title: "소풍".into(),
                start: "2026-05-05".into(),
                end: Some("2026-05-04".into()),
                ..Default::default()
            },
            T0,
        )
        .unwrap_err(),
        doc.add_event(
            EventInput {
                title: "소풍".into(),
                start: "2026-05-05".into(),
                color: Some("#000000".into()),
                ..Default::default()
            },
            T0,
        )
        .unwrap_err(),
        doc.add_event(
            EventInput {
                title: "열다섯글자짜리일정제목입니다아".into(),
                start: "2026-05-05".into(),
                ..Default::default()
            },
            T0,
        )
        .unwrap_err(),
        doc.add_event(
            EventInput {
                title: "소풍".into(),
                start: "2026-05-05".into(),
                start_time: Some("25:00".into()),
                ..Default::default()
            },
            T0,
        )
        .unwrap_err(),
        doc.create_album("", T0).unwrap_err(),
        doc.add_photo("nope", photo(), T0).unwrap_err(),
        doc.set_like("nope", true, T0).unwrap_err(),
        doc.add_comment("nope", "hi", T0).unwrap_err(),
        doc.create_voice_album("음성", 5, T0).unwrap_err(),
        doc.set_mission_done("nope", true, T0).unwrap_err(),
        doc.rename("", T0).unwrap_err(),
        doc.add_member(UserId::random(), "엄마", T0).unwrap_err(),
        doc.add_member(UserId::random(), "아홉글자짜리호칭임", T0)
            .unwrap_err(),
        doc.leave(T0).unwrap_err(),
    ];
    assert_eq!(cases.len(), 17);
    assert!(matches!(cases[14], DocError::NameTaken(_)));
    assert!(matches!(cases[16], DocError::Forbidden(_)));
    assert_unchanged(&mut doc, &before);
}

#[test]
fn missions_tick_only_for_participants_and_complete_when_all_did() {
    let (mut mom_doc, _) = family();
    let dad = actor();
    let kid = actor();
    mom_doc.add_member(dad.user, "아빠", T0).unwrap();
    mom_doc.add_member(kid.user, "막내", T0).unwrap();
    let m = mom_doc
        .add_mission(
            "가족 사진 찍기",
            &[mom_doc.me(), dad.user],
            Some("2026-12-01"),
            T0 + 1,
        )
        .unwrap()
        .value;
    let mut kid_doc = replica_for(&mut mom_doc, &kid);
    assert!(matches!(
        kid_doc.set_mission_done(&m, true, T0 + 2),
        Err(DocError::NotParticipant { .. })
    ));
    let mut dad_doc = replica_for(&mut mom_doc, &dad);
    dad_doc.set_mission_done(&m, true, T0 + 3).unwrap();
    // Ticking twice changes nothing.
    assert!(
        dad_doc
            .set_mission_done(&m, true, T0 + 4)
            .unwrap()
            .change
            .is_none()
    );
    assert_eq!(
        dad_doc.view().missions[&m].completed_at(&dad_doc.view().members),
        None
    );
    mom_doc.apply_remote([dad_doc.save().as_slice()]);
    mom_doc.set_mission_done(&m, true, T0 + 5).unwrap();
    assert_eq!(
        mom_doc.view().missions[&m].completed_at(&mom_doc.view().members),
        Some(T0 + 5)
    );
    mom_doc.set_mission_done(&m, false, T0 + 6).unwrap();
    assert_eq!(
        mom_doc.view().missions[&m].completed_at(&mom_doc.view().members),
        None
    );

    // Editing participants drops the ticks of those removed.
    mom_doc
        .edit_mission(
            &m,
            MissionPatch {
                participants: Some(vec![dad.user]),
                title: Some("사진 찍기".into()),
                due: Some(None),
            },
            T0 + 7,
        )
        .unwrap();
    let mission = &mom_doc.view().missions[&m];
    assert_eq!(mission.title, "사진 찍기");
    assert_eq!(mission.due, None);
    assert_eq!(mission.completed_at(&mom_doc.view().members), Some(T0 + 3));

    // Only its creator or the host deletes it.
    let mut kid_doc = replica_for(&mut mom_doc, &kid);
    assert!(matches!(
        kid_doc.delete_mission(&m, T0),
        Err(DocError::Forbidden(_))
    ));
    mom_doc.delete_mission(&m, T0 + 8).unwrap();
    assert!(mom_doc.view().missions.is_empty());
}

#[test]
fn non_members_cannot_edit_and_members_cannot_moderate() {
    let (mut doc, _) = family();
    let stranger = actor();
    let mut theirs = replica_for(&mut doc, &stranger);
    assert!(matches!(
        theirs.add_mission("산책", &[], None, T0),
        Err(DocError::NotMember(_))
    ));
    assert!(matches!(
        theirs.create_album("몰래", T0),
        Err(DocError::NotMember(_))
    ));

    let member = actor();
    doc.add_member(member.user, "아빠", T0).unwrap();
    let album = doc.create_album("가족", T0).unwrap().value;
    let p = doc.add_photo(&album, photo(), T0).unwrap().value;
    let c = doc.add_comment(&p, "예쁘다", T0).unwrap().value;
    let mut dad = replica_for(&mut doc, &member);
    assert!(matches!(
        dad.rename("새 이름", T0),
        Err(DocError::Forbidden(_))
    ));
    assert!(matches!(
        dad.delete_photo(&p, T0),
        Err(DocError::Forbidden(_))
    ));
    assert!(matches!(
        dad.delete_comment(&p, &c, T0),
        Err(DocError::Forbidden(_))
    ));
    assert!(matches!(
        dad.remove_member(doc.me(), T0),
        Err(DocError::Forbidden(_))
    ));
    // But a member may rename themself and leave.
    dad.set_member_name(member.user, "아빠곰", T0).unwrap();
    dad.leave(T0).unwrap();
    assert!(!dad.view().members.contains_key(&member.user.to_hex()));
}

#[test]
fn comments_leave_tombstones_and_likes_toggle() {
    let (mut doc, _) = family();
    let album = doc.create_album("가족", T0).unwrap().value;
    let p = doc.add_photo(&album, photo(), T0).unwrap().value;
    let c = doc.add_comment(&p, "  예쁘다  ", T0).unwrap().value;
    assert_eq!(doc.view().photos[&p].comments[&c].text, "예쁘다");
    assert!(matches!(
        doc.add_comment(&p, &"가".repeat(301), T0),
        Err(DocError::Length { .. })
    ));
    doc.delete_comment(&p, &c, T0).unwrap();
    let comment = &doc.view().photos[&p].comments[&c];
    assert!(comment.deleted && comment.text.is_empty());
    assert!(doc.set_like(&p, true, T0).unwrap().change.is_some());
    assert!(doc.set_like(&p, true, T0).unwrap().change.is_none());
    assert!(doc.set_like(&p, false, T0).unwrap().change.is_some());
    assert!(doc.view().photos[&p].likes.is_empty());
}

#[test]
fn voice_messages_are_limited_to_three_minutes() {
    let (mut doc, _) = family();
    let album = doc.create_voice_album("할머니께", 2, T0).unwrap().value;
    let voice = |ms| VoiceInput {
        title: "생신 축하".into(),
        blob: BlobHash::of(b"mp3").into(),
        size: 1000,
        duration_ms: ms,
        peaks: vec![1; 1000],
    };
    assert!(doc.add_voice(&album, voice(0), T0).is_err());
    assert!(doc.add_voice(&album, voice(10 * 60 * 1000), T0).is_err());
    let v = doc.add_voice(&album, voice(12_000), T0).unwrap().value;
    assert_eq!(doc.view().voices[&v].peaks.len(), 256);
    doc.delete_voice_album(&album, T0).unwrap();
    assert!(doc.view().voices.is_empty());
}

#[test]
fn each_edit_is_one_small_change_that_another_replica_can_apply() {
    let (mut doc, _) = family();
    let mut other = replica_for(&mut doc, &actor());
    let edit = doc.add_mission("설거지", &[], None, T0).unwrap();
    let change = edit.change.unwrap();
    // The mission itself, and one more on this device's "ever done" counter (whose
    // key names the device's 32-byte actor).
    assert!(
        change.len() < 512,
        "a mission change is {} bytes",
        change.len()
    );
    other.apply_remote([change.as_slice()]);
    assert_eq!(other.view().missions.len(), 1);
    // A like is tiny.
    let album = doc.create_album("a", T0).unwrap().change.unwrap();
    other.apply_remote([album.as_slice()]);
}

#[test]
fn garbage_from_the_network_is_a_typed_error_and_changes_nothing() {
    let (mut doc, _) = family();
    let before = doc.replica_mut().heads();
    let view = doc.view().clone();
    let junk: [&[u8]; 4] = [
        b"not automerge",
        &[0x85, 0x6f, 0x4a, 0x83, 1, 2, 3],
        &[0u8; 64],
        &[],
    ];
    assert_eq!(doc.apply_remote(junk).rejected, vec![0, 1, 2, 3]);
    assert_unchanged(&mut doc, &before);
    assert_eq!(doc.view(), &view);
    // A bad chunk among good ones refuses only itself.
    let mut other = replica_for(&mut doc, &actor());
    let good = doc
        .add_mission("설거지", &[], None, T0)
        .unwrap()
        .change
        .unwrap();
    let update = other.apply_remote([b"junk".as_slice(), good.as_slice()]);
    assert_eq!(update.rejected, vec![0]);
    assert_eq!(other.view().missions.len(), 1);
    assert_eq!(update.new_activity.len(), 1);
    let before = doc.replica_mut().heads();
    let view = doc.view().clone();
    assert!(doc.apply_remote(junk).touched.is_empty());
    assert_unchanged(&mut doc, &before);
    assert_eq!(doc.view(), &view);
}

#[test]
fn personal_document_profile_and_mood() {
    let me = actor();
    let (mut p, _) = PersonalDoc::create(&me, "도란이", None, 3, T0).unwrap();
    assert!(PersonalDoc::create(&me, "x", None, 3, T0).is_err());
    p.set_mood(Mood::Love, T0).unwrap();
    let kst = time::macros::offset!(+9);
    assert_eq!(p.mood_today(T0 + 60_000, kst), Some(Mood::Love));
    assert_eq!(p.mood_today(T0 + 2 * 86_400_000, kst), None);
    assert!(p.set_nickname("!!", T0).is_err());
    p.set_nickname("도란도란", T0).unwrap();
    p.set_family(FamilyId::random(), true, T0).unwrap();
    // Another device of mine loads it and sees the same.
    let mut other = PersonalDoc::load(
        Some(&p.replica_mut().save()),
        [],
        &Actor {
            user: me.user,
            device: DeviceId::random(),
        },
    )
    .unwrap();
    assert_eq!(other.view(), p.view());
    other.set_mood(Mood::Sleepy, T0 + 10).unwrap();
    p.apply_remote(&other.replica_mut().save()).unwrap();
    assert_eq!(p.view().mood, Some(Mood::Sleepy));
    assert_eq!("SAD".parse::<Mood>().unwrap(), Mood::Sad);
    assert!("meh".parse::<Mood>().is_err());
}

fn photo() -> PhotoInput {
    PhotoInput {
        blob: BlobHash::of(b"p").into(),
        thumb: BlobHash::of(b"t").into(),
        mime: "image/jpeg".into(),
        size: 10,
        width: 10,
        height: 10,
        taken_at: None,
        caption: String::new(),
    }
}

#[test]
fn a_member_entry_is_never_overwritten_so_the_host_cannot_be_demoted() {
    let (mut doc, host) = family();
    let dad = actor();
    doc.add_member(dad.user, "아빠", T0).unwrap();
    let mut dads = replica_for(&mut doc, &dad);
    // Only the host writes another member's entry, and never over an existing one.
    assert!(matches!(
        dads.add_member(host.user, "새이름", T0),
        Err(DocError::Forbidden(_))
    ));
    assert!(matches!(
        doc.add_member(host.user, "대장", T0),
        Err(DocError::AlreadyMember(_))
    ));
    let me = &doc.view().members[&host.user.to_hex()];
    assert_eq!(
        (me.name.as_str(), me.role),
        ("엄마", doran_client_core::model::Role::Host)
    );
}

#[test]
fn a_member_who_leaves_does_not_block_a_mission() {
    let (mut doc, _) = family();
    let dad = actor();
    doc.add_member(dad.user, "아빠", T0).unwrap();
    let m = doc.add_mission("장보기", &[], None, T0).unwrap().value;
    doc.set_mission_done(&m, true, T0 + 1).unwrap();
    assert_eq!(
        doc.view().missions[&m].completed_at(&doc.view().members),
        None
    );
    doc.remove_member(dad.user, T0 + 2).unwrap();
    assert_eq!(
        doc.view().missions[&m].completed_at(&doc.view().members),
        Some(T0 + 1)
    );
}

#[test]
fn profile_edits_write_only_their_field() {
    let me = actor();
    let (mut phone, _) = PersonalDoc::create(&me, "도란이", None, 1, T0).unwrap();
    let mut laptop = PersonalDoc::load(
        Some(&phone.replica_mut().save()),
        [],
        &Actor {
            user: me.user,
            device: DeviceId::random(),
        },
    )
    .unwrap();
    // The laptop joins a family while the phone, not yet synced, changes the nickname.
    let fam = FamilyId::random();
    laptop.set_family(fam, true, T0 + 1).unwrap();
    phone.set_nickname("도란도란", T0 + 2).unwrap();
    phone.apply_remote(&laptop.replica_mut().save()).unwrap();
    laptop.apply_remote(&phone.replica_mut().save()).unwrap();
    for p in [&phone, &laptop] {
        assert_eq!(p.view().nickname, "도란도란");
        assert!(p.view().families.contains_key(&fam.to_hex()));
    }
}

#[test]
fn a_collection_replaced_by_a_misbehaving_peer_is_refused() {
    use automerge::{ObjType, ROOT, transaction::Transactable};
    let (mut doc, host) = family();
    let mut rogue = replica_for(&mut doc, &actor());
    rogue
        .replica_mut()
        .doc_mut()
        .put_object(ROOT, "members", ObjType::Map)
        .unwrap();
    let change = rogue.replica_mut().commit("rogue", T0).unwrap();
    let update = doc.apply_remote([change.as_slice()]);
    assert_eq!(update.rejected, vec![0]);
    assert!(doc.view().members.contains_key(&host.user.to_hex()));
}

#[test]
fn what_was_ever_done_is_counted_per_device_and_never_goes_down() {
    let mom = Actor {
        user: UserId::random(),
        device: DeviceId::random(),
    };
    let (mut doc, _) = FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &mom, 1).unwrap();
    let a = doc.add_mission("하나", &[], None, 2).unwrap().value;
    doc.add_mission("둘", &[], None, 3).unwrap();
    assert_eq!(
        doc.view().ever("missions", None),
        2,
        "{:?}",
        doc.view().counts
    );
    doc.delete_mission(&a, 4).unwrap();
    assert_eq!(
        doc.view().ever("missions", None),
        2,
        "a deletion does not count down"
    );
    assert_eq!(doc.view().ever("missions", Some(&mom.user.to_hex())), 2);
    assert_eq!(
        doc.view()
            .ever("missions", Some(&UserId::random().to_hex())),
        0
    );
    // Another device of another member counts on its own counter; both merge.
    let dad = Actor {
        user: UserId::random(),
        device: DeviceId::random(),
    };
    doc.add_member(dad.user, "아빠", 5).unwrap();
    let mut theirs = FamilyDoc::load(Some(&doc.save()), [], &dad).unwrap();
    let change = theirs
        .add_mission("셋", &[], None, 5)
        .unwrap()
        .change
        .unwrap();
    doc.add_mission("넷", &[], None, 5).unwrap();
    doc.apply_remote([change.as_slice()]);
    assert_eq!(doc.view().ever("missions", None), 4);
    // And the counters survive a reload.
    let reloaded = FamilyDoc::load(Some(&doc.save()), [], &mom).unwrap();
    assert_eq!(reloaded.view().ever("missions", None), 4);
}
