//! Replicas edit concurrently offline, then exchange everything; they must converge to
//! the same, sensible state.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use doran_client_core::{Actor, EventInput, EventPatch, FamilyDoc, PhotoInput, views};
use doran_protocol::{BlobHash, DeviceId, FamilyId, UserId};

const T0: i64 = 1_764_300_000_000;

fn actor() -> Actor {
    Actor {
        user: UserId::random(),
        device: DeviceId::random(),
    }
}

/// A family of three users (mom hosts), every replica up to date.
fn family_of_three() -> (FamilyDoc, FamilyDoc, FamilyDoc) {
    let (mom, dad, kid) = (actor(), actor(), actor());
    let (mut a, _) = FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &mom, T0).unwrap();
    a.add_member(dad.user, "아빠", T0 + 1).unwrap();
    a.add_member(kid.user, "막내", T0 + 2).unwrap();
    let snapshot = a.save();
    let b = FamilyDoc::load(Some(&snapshot), [], &dad).unwrap();
    let c = FamilyDoc::load(Some(&snapshot), [], &kid).unwrap();
    (a, b, c)
}

/// Everyone sends everything to everyone.
fn sync_all(docs: &mut [&mut FamilyDoc]) {
    let saves: Vec<Vec<u8>> = docs.iter_mut().map(|d| d.save()).collect();
    for d in docs.iter_mut() {
        d.apply_remote(saves.iter().map(Vec::as_slice));
    }
}

fn assert_converged(docs: &mut [&mut FamilyDoc]) {
    let first_heads = docs[0].replica_mut().heads();
    let first_view = docs[0].view().clone();
    for d in docs.iter_mut().skip(1) {
        assert_eq!(d.replica_mut().heads(), first_heads, "heads differ");
        assert_eq!(d.view(), &first_view, "views differ");
    }
}

fn photo_input(seed: &[u8]) -> PhotoInput {
    PhotoInput {
        blob: BlobHash::of(seed).into(),
        thumb: BlobHash::of(&[seed, b"-thumb"].concat()).into(),
        mime: "image/jpeg".into(),
        size: 1000,
        width: 1920,
        height: 1080,
        taken_at: None,
        caption: String::new(),
    }
}

#[test]
fn everyone_completes_the_same_mission_concurrently() {
    let (mut a, mut b, mut c) = family_of_three();
    // Step 1: mom creates a mission for everyone; all devices get it.
    let m = a
        .add_mission("가족 사진 찍기", &[], None, T0 + 10)
        .unwrap()
        .value;
    sync_all(&mut [&mut a, &mut b, &mut c]);
    // Step 2: offline, all three tick at once.
    a.set_mission_done(&m, true, T0 + 20).unwrap();
    b.set_mission_done(&m, true, T0 + 21).unwrap();
    c.set_mission_done(&m, true, T0 + 22).unwrap();
    assert!(
        a.view().missions[&m]
            .completed_at(&a.view().members)
            .is_none()
    );
    // Step 3: they meet again.
    sync_all(&mut [&mut a, &mut b, &mut c]);
    assert_converged(&mut [&mut a, &mut b, &mut c]);
    let mission = &a.view().missions[&m];
    assert_eq!(mission.completions.len(), 3);
    assert_eq!(mission.completed_at(&a.view().members), Some(T0 + 22));
}

#[test]
fn tick_and_untick_from_two_devices_of_one_user_keeps_the_tick() {
    let (mut a, b, _) = family_of_three();
    let dad_user = b.me();
    let m = a
        .add_mission("산책하기", &[dad_user], None, T0 + 10)
        .unwrap()
        .value;
    // Dad's phone and laptop both start from the same state.
    let snap = a.save();
    let laptop = Actor {
        user: dad_user,
        device: DeviceId::random(),
    };
    let mut phone = FamilyDoc::load(
        Some(&snap),
        [],
        &Actor {
            user: dad_user,
            device: DeviceId::random(),
        },
    )
    .unwrap();
    phone.set_mission_done(&m, true, T0 + 20).unwrap();
    let mut laptop_doc = FamilyDoc::load(Some(&phone.save()), [], &laptop).unwrap();
    // Offline: the phone unticks while the laptop re-ticks (deletes vs. put).
    phone.set_mission_done(&m, false, T0 + 30).unwrap();
    laptop_doc.set_mission_done(&m, false, T0 + 31).unwrap();
    laptop_doc.set_mission_done(&m, true, T0 + 32).unwrap();
    sync_all(&mut [&mut phone, &mut laptop_doc]);
    assert_converged(&mut [&mut phone, &mut laptop_doc]);
    // The concurrent put survives a delete that did not see it: the tick stays.
    assert!(
        phone.view().missions[&m]
            .completed_at(&phone.view().members)
            .is_some()
    );
}

#[test]
fn concurrent_edits_of_one_event_merge_field_by_field() {
    let (mut a, mut b, mut c) = family_of_three();
    let e = a
        .add_event(
            EventInput {
                title: "할머니 생신".into(),
                start: "2026-12-24".into(),
                ..Default::default()
            },
            T0,
        )
        .unwrap()
        .value;
    sync_all(&mut [&mut a, &mut b, &mut c]);
    // Mom changes the title, dad the color, the kid the end date: all three at once.
    a.edit_event(
        &e,
        EventPatch {
            title: Some("할머니 생신 🎂".into()),
            ..Default::default()
        },
        T0 + 1,
    )
    .unwrap();
    b.edit_event(
        &e,
        EventPatch {
            color: Some("#5FCE89".into()),
            ..Default::default()
        },
        T0 + 2,
    )
    .unwrap();
    c.edit_event(
        &e,
        EventPatch {
            end: Some("2026-12-26".into()),
            ..Default::default()
        },
        T0 + 3,
    )
    .unwrap();
    // And mom and dad both retitle it: one title wins, the same on every device.
    sync_all(&mut [&mut a, &mut b, &mut c]);
    assert_converged(&mut [&mut a, &mut b, &mut c]);
    let ev = &a.view().calendar[&e];
    assert_eq!(ev.title, "할머니 생신 🎂");
    assert_eq!(ev.color, "#5FCE89");
    assert_eq!(ev.end, "2026-12-26");

    a.edit_event(
        &e,
        EventPatch {
            title: Some("생신 파티".into()),
            ..Default::default()
        },
        T0 + 4,
    )
    .unwrap();
    b.edit_event(
        &e,
        EventPatch {
            title: Some("생신 잔치".into()),
            ..Default::default()
        },
        T0 + 5,
    )
    .unwrap();
    sync_all(&mut [&mut a, &mut b, &mut c]);
    assert_converged(&mut [&mut a, &mut b, &mut c]);
    let title = &a.view().calendar[&e].title;
    assert!(title == "생신 파티" || title == "생신 잔치", "{title}");
}

#[test]
fn like_and_unlike_at_once() {
    let (mut a, mut b, mut c) = family_of_three();
    let album = a.create_album("여름 휴가", T0).unwrap().value;
    let p = a
        .add_photo(&album, photo_input(b"beach"), T0 + 1)
        .unwrap()
        .value;
    b.apply_remote([a.save().as_slice()]);
    b.set_like(&p, true, T0 + 2).unwrap();
    sync_all(&mut [&mut a, &mut b, &mut c]);
    // Offline: dad unlikes while mom and the kid like.
    b.set_like(&p, false, T0 + 3).unwrap();
    a.set_like(&p, true, T0 + 4).unwrap();
    c.set_like(&p, true, T0 + 5).unwrap();
    sync_all(&mut [&mut a, &mut b, &mut c]);
    assert_converged(&mut [&mut a, &mut b, &mut c]);
    let likes = &a.view().photos[&p].likes;
    assert_eq!(likes.len(), 2);
    assert!(likes.contains_key(&a.me().to_hex()));
    assert!(likes.contains_key(&c.me().to_hex()));
    assert!(!likes.contains_key(&b.me().to_hex()));
}

#[test]
fn deleting_an_album_while_another_comments_on_its_photo() {
    let (mut a, mut b, mut c) = family_of_three();
    let album = a.create_album("졸업식", T0).unwrap().value;
    let p = a
        .add_photo(&album, photo_input(b"cap"), T0 + 1)
        .unwrap()
        .value;
    sync_all(&mut [&mut a, &mut b, &mut c]);
    // Offline: mom deletes the album; dad comments on its photo.
    a.delete_album(&album, T0 + 2).unwrap();
    b.add_comment(&p, "멋지다!", T0 + 3).unwrap();
    sync_all(&mut [&mut a, &mut b, &mut c]);
    assert_converged(&mut [&mut a, &mut b, &mut c]);
    // The deletion wins: the album, its photo and the comment are gone everywhere.
    // The comment was written, though: badges count what was ever done, the same on
    // every device.
    assert!(a.view().albums.is_empty());
    assert!(a.view().photos.is_empty());
    for r in [&a, &b, &c] {
        let comms = views::badges(r.view())
            .into_iter()
            .find(|b| b.kind == views::BadgeKind::Communication)
            .unwrap();
        assert_eq!(comms.progress, 1);
    }
}

#[test]
fn a_photo_added_to_an_album_deleted_concurrently_is_not_lost() {
    let (mut a, mut b, mut c) = family_of_three();
    let album = a.create_album("캠핑", T0).unwrap().value;
    sync_all(&mut [&mut a, &mut b, &mut c]);
    a.delete_album(&album, T0 + 2).unwrap();
    let p = c
        .add_photo(&album, photo_input(b"tent"), T0 + 3)
        .unwrap()
        .value;
    sync_all(&mut [&mut a, &mut b, &mut c]);
    assert_converged(&mut [&mut a, &mut b, &mut c]);
    // The photo survives with a dangling album id; the gallery shows it as recovered.
    let photo = &a.view().photos[&p];
    assert!(!a.view().albums.contains_key(&photo.album_id));
    let cards = views::albums(a.view(), doran_client_core::time_util::Lang::Ko);
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].id, views::gallery::RECOVERED_ALBUM);
    assert_eq!(views::album_page(a.view(), &cards[0].id, 0)[0].id, p);
}

#[test]
fn three_replicas_converge_whatever_order_they_sync_in() {
    let (mut a, mut b, mut c) = family_of_three();
    a.add_mission("설거지", &[], None, T0 + 1).unwrap();
    b.create_album("가족", T0 + 2).unwrap();
    c.add_event(
        EventInput {
            title: "소풍".into(),
            start: "2026-05-05".into(),
            ..Default::default()
        },
        T0 + 3,
    )
    .unwrap();
    // Pairwise, in a chain: a→b, b→c, c→a, then a→b again.
    let sa = a.save();
    b.apply_remote([sa.as_slice()]);
    let sb = b.save();
    c.apply_remote([sb.as_slice()]);
    let sc = c.save();
    a.apply_remote([sc.as_slice()]);
    let sa = a.save();
    b.apply_remote([sa.as_slice()]);
    assert_converged(&mut [&mut a, &mut b, &mut c]);
    assert_eq!(a.view().missions.len(), 1);
    assert_eq!(a.view().albums.len(), 1);
    assert_eq!(a.view().calendar.len(), 1);
}

#[test]
fn single_changes_applied_out_of_order_and_twice_converge() {
    let (mut a, mut b, _) = family_of_three();
    let m = a.add_mission("운동하기", &[], None, T0 + 1).unwrap();
    let tick = a.set_mission_done(&m.value, true, T0 + 2).unwrap();
    let (c1, c2) = (m.change.unwrap(), tick.change.unwrap());
    // The tick arrives before the mission it depends on, then both again.
    b.apply_remote([c2.as_slice()]);
    assert!(
        b.view().missions.is_empty(),
        "a change waits for its dependencies"
    );
    b.apply_remote([c1.as_slice(), c2.as_slice(), c1.as_slice()]);
    assert_converged(&mut [&mut a, &mut b]);
}

/// Each device checks that a 호칭 is free against its own copy, so two renames made
/// apart can meet on one. Every device then shows them apart the same way: the member
/// who joined first keeps it, the later one shows it with the smallest free number,
/// in every view that names members; once one of them changes theirs, both show
/// their own again.
#[test]
fn two_renames_made_apart_onto_one_name_are_shown_apart_alike() {
    let (mut a, mut b, mut c) = family_of_three();
    let (dad, kid) = (b.me().to_hex(), c.me().to_hex());
    // Step 1: offline, dad and the kid both become "둘째"; a member is already "둘째2".
    b.set_member_name(b.me(), "둘째", T0 + 10).unwrap();
    c.set_member_name(c.me(), "둘째", T0 + 11).unwrap();
    a.set_member_name(a.me(), "둘째2", T0 + 12).unwrap();
    // Step 2: they meet again: both entries say "둘째".
    sync_all(&mut [&mut a, &mut b, &mut c]);
    assert_converged(&mut [&mut a, &mut b, &mut c]);
    assert_eq!(a.view().members[&dad].name, "둘째");
    assert_eq!(a.view().members[&kid].name, "둘째");
    // Step 3: dad joined first and keeps it; the kid shows as "둘째3" ("둘째2" is
    // mom's), on every device and in every view.
    for doc in [&a, &b, &c] {
        let shown = views::shown_names(doc.view());
        assert_eq!(shown[&dad], "둘째");
        assert_eq!(shown[&kid], "둘째3");
        assert_eq!(
            shown[&doc
                .view()
                .members
                .keys()
                .find(|u| **u != dad && **u != kid)
                .cloned()
                .unwrap()],
            "둘째2"
        );
        assert_eq!(
            views::member_name(doc.view(), &kid, doran_client_core::time_util::Lang::Ko),
            "둘째3"
        );
    }
    // Step 4: the kid picks another 호칭: each shows their own again.
    c.set_member_name(c.me(), "막내", T0 + 20).unwrap();
    sync_all(&mut [&mut a, &mut b, &mut c]);
    let shown = views::shown_names(a.view());
    assert_eq!(
        (shown[&dad].as_str(), shown[&kid].as_str()),
        ("둘째", "막내")
    );
}
