//! Derived views computed from real documents.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use std::collections::BTreeMap;

use doran_client_core::{
    Actor, EventInput, FamilyDoc, PersonalDoc, PhotoInput, VoiceInput,
    model::Mood,
    time_util::{Lang, YearMonth, parse_date},
    views::{self, ActivityKind, BadgeKind},
};
use doran_protocol::{BlobHash, DeviceId, FamilyId, UserId};
use time::macros::offset;

/// 2026-11-28 12:00 KST.
const NOW: i64 = 1_795_834_800_000;
const DAY: i64 = 86_400_000;
const KST: time::UtcOffset = offset!(+9);

fn actor() -> Actor {
    Actor {
        user: UserId::random(),
        device: DeviceId::random(),
    }
}

fn photo(seed: u32) -> PhotoInput {
    PhotoInput {
        blob: BlobHash::of(&seed.to_le_bytes()).into(),
        thumb: BlobHash::of(&(seed + 1_000_000).to_le_bytes()).into(),
        mime: "image/jpeg".into(),
        size: 500_000,
        width: 1920,
        height: 1280,
        taken_at: None,
        caption: String::new(),
    }
}

#[test]
fn badges_show_progress_and_are_earned_at_their_thresholds() {
    let (mut doc, _) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &actor(), NOW).unwrap();
    let progress = |doc: &FamilyDoc, kind| {
        let b = views::badges(doc.view())
            .into_iter()
            .find(|b| b.kind == kind)
            .unwrap();
        (b.progress, b.goal, b.earned())
    };
    assert_eq!(progress(&doc, BadgeKind::CozyStart), (1, 1, true));
    let album = doc.create_album("가족", NOW).unwrap().value;
    for i in 0..9 {
        doc.add_photo(&album, photo(i), NOW).unwrap();
    }
    assert_eq!(progress(&doc, BadgeKind::Footprints), (9, 15, false));
    let mut last = String::new();
    for i in 9..15 {
        last = doc.add_photo(&album, photo(i), NOW).unwrap().value;
    }
    assert_eq!(progress(&doc, BadgeKind::Footprints), (15, 15, true));
    for _ in 0..49 {
        doc.add_comment(&last, "좋아요", NOW).unwrap();
    }
    let c = doc.add_comment(&last, "마지막", NOW).unwrap().value;
    assert!(progress(&doc, BadgeKind::Communication).2);
    doc.delete_comment(&last, &c, NOW).unwrap();
    assert_eq!(
        progress(&doc, BadgeKind::Communication),
        (50, 50, true),
        "what was ever written counts: a badge never goes backwards"
    );
    for i in 0..5 {
        doc.add_event(
            EventInput {
                title: format!("일정 {i}"),
                start: "2026-11-01".into(),
                ..Default::default()
            },
            NOW,
        )
        .unwrap();
    }
    assert!(progress(&doc, BadgeKind::DaysTogether).2);
    let va = doc.create_voice_album("음성", 1, NOW).unwrap().value;
    for i in 0..10 {
        doc.add_voice(
            &va,
            VoiceInput {
                title: format!("안녕 {i}"),
                blob: BlobHash::of(&[i]).into(),
                size: 1,
                duration_ms: 1000,
                peaks: vec![],
            },
            NOW,
        )
        .unwrap();
    }
    assert!(progress(&doc, BadgeKind::WarmVoice).2);
    for i in 0..20 {
        doc.add_mission(&format!("미션 {i}"), &[], None, NOW)
            .unwrap();
    }
    assert!(progress(&doc, BadgeKind::Cooperation).2);
    let me = doc.me().to_hex();
    let mine = views::member_badges(doc.view(), &me);
    assert_eq!(
        mine.iter()
            .find(|b| b.kind == BadgeKind::Photographer)
            .unwrap()
            .progress,
        10
    );
}

#[test]
fn mission_dashboard_counts_this_month_and_labels_the_rate() {
    let mom = actor();
    let (mut doc, _) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &mom, NOW).unwrap();
    let month = YearMonth::parse("2026-11").unwrap();
    let empty = views::mission_dashboard(doc.view(), month, KST, Lang::Ko);
    assert_eq!(
        (empty.total, empty.rate, empty.label),
        (0, 0, "이제 시작해요")
    );
    let ids: Vec<String> = (0..3)
        .map(|i| {
            doc.add_mission(&format!("미션 {i}"), &[], None, NOW + i)
                .unwrap()
                .value
        })
        .collect();
    // One from last month goes to "past".
    let old = doc
        .add_mission("지난달 미션", &[], None, NOW - 40 * DAY)
        .unwrap()
        .value;
    doc.set_mission_done(&ids[0], true, NOW).unwrap();
    doc.set_mission_done(&ids[1], true, NOW).unwrap();
    let d = views::mission_dashboard(doc.view(), month, KST, Lang::Ko);
    assert_eq!(
        (d.total, d.completed, d.rate, d.label),
        (3, 2, 66, "돌파! 대단해요")
    );
    assert_eq!(d.missions[0].id, ids[2], "newest first");
    doc.set_mission_done(&ids[2], true, NOW).unwrap();
    let d = views::mission_dashboard(doc.view(), month, KST, Lang::Ko);
    assert_eq!((d.rate, d.label), (100, "우리는 환상의 가족"));
    let past = views::past_missions(doc.view(), month, KST, Lang::Ko);
    assert_eq!(past.len(), 1);
    assert_eq!(past[0].id, old);
    assert_eq!(views::missions::rate_label(25).0, "돌파! 도전해요");
    assert_eq!(views::missions::rate_label(75).0, "돌파! 끈끈해요");
    assert_eq!(views::missions::rate_label(24).0, "이제 시작해요");
}

#[test]
fn an_event_crossing_a_month_edge_shows_in_both_months() {
    let (mut doc, _) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &actor(), NOW).unwrap();
    let trip = doc
        .add_event(
            EventInput {
                title: "제주 여행".into(),
                start: "2026-11-29".into(),
                end: Some("2026-12-02".into()),
                color: Some("#5FB3CE".into()),
                ..Default::default()
            },
            NOW,
        )
        .unwrap()
        .value;
    doc.add_event(
        EventInput {
            title: "김장".into(),
            start: "2026-11-30".into(),
            ..Default::default()
        },
        NOW,
    )
    .unwrap();
    doc.add_event(
        EventInput {
            title: "내년".into(),
            start: "2027-01-01".into(),
            ..Default::default()
        },
        NOW,
    )
    .unwrap();
    let nov = views::calendar_month(doc.view(), YearMonth::parse("2026-11").unwrap(), Lang::Ko);
    let dec = views::calendar_month(doc.view(), YearMonth::parse("2026-12").unwrap(), Lang::Ko);
    assert_eq!(nov.events.len(), 2);
    assert_eq!(dec.events.len(), 1);
    let in_dec = &dec.events[0];
    assert_eq!(in_dec.id, trip);
    assert!(in_dec.continues_before && !in_dec.continues_after);
    assert_eq!(in_dec.first_in_month, parse_date("2026-12-01").unwrap());
    assert_eq!(in_dec.owner_name, "엄마");
    assert!(nov.events[0].continues_after);
    assert_eq!(nov.days.len(), 30);
    let nov30 = &nov.days[29];
    assert_eq!(nov30.events.len(), 2);
    assert_eq!(nov30.visible(1), (&nov30.events[..1], 1), "+1 more");
    assert_eq!(dec.days[1].events, vec![trip]);
    assert!(dec.days[2].events.is_empty());
}

#[test]
fn memories_group_photos_by_local_day() {
    let (mut doc, _) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &actor(), NOW).unwrap();
    let album = doc.create_album("일상", NOW).unwrap().value;
    // 2026-11-28 23:30 KST is already the 28th in Seoul but the 28th 14:30 UTC.
    let late = NOW + 11 * 3_600_000 + 30 * 60_000;
    let a = doc.add_photo(&album, photo(1), NOW).unwrap().value;
    let b = doc.add_photo(&album, photo(2), late).unwrap().value;
    let c = doc
        .add_photo(&album, photo(3), late + 3_600_000)
        .unwrap()
        .value; // 29th 00:30 KST
    doc.add_photo(&album, photo(4), NOW - 40 * DAY).unwrap();
    let days = views::memories(doc.view(), YearMonth::parse("2026-11").unwrap(), KST);
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].date, parse_date("2026-11-28").unwrap());
    assert_eq!(
        days[0]
            .photos
            .iter()
            .map(|p| p.id.clone())
            .collect::<Vec<_>>(),
        vec![a, b]
    );
    assert_eq!(days[1].photos[0].id, c);
}

#[test]
fn home_summary_shows_what_the_home_screen_needs() {
    let (mom, dad) = (actor(), actor());
    let (mut doc, _) = FamilyDoc::create(
        FamilyId::random(),
        "우리 가족",
        "엄마",
        &mom,
        NOW - 10 * DAY,
    )
    .unwrap();
    doc.add_member(dad.user, "아빠", NOW - 9 * DAY).unwrap();
    let (mut mom_p, _) = PersonalDoc::create(&mom, "엄마곰", None, 2, NOW - 10 * DAY).unwrap();
    mom_p.set_mood(Mood::Love, NOW - 3_600_000).unwrap();
    let (mut dad_p, _) = PersonalDoc::create(&dad, "아빠곰", None, 3, NOW - 10 * DAY).unwrap();
    dad_p.set_mood(Mood::Sleepy, NOW - 2 * DAY).unwrap(); // yesterday's mood: not shown
    let profiles: BTreeMap<String, _> = [
        (mom.user.to_hex(), mom_p.view().clone()),
        (dad.user.to_hex(), dad_p.view().clone()),
    ]
    .into();

    let m_old = doc
        .add_mission("어제 미션", &[], None, NOW - DAY)
        .unwrap()
        .value;
    let m_today = doc
        .add_mission("오늘 미션", &[], None, NOW - 60_000)
        .unwrap()
        .value;
    doc.add_mission("나중 미션", &[], None, NOW - 2 * DAY)
        .unwrap();
    let album = doc.create_album("일상", NOW).unwrap().value;
    let p = doc.add_photo(&album, photo(7), NOW - 5_000).unwrap().value;
    let va = doc.create_voice_album("안부", 1, NOW).unwrap().value;
    doc.add_voice(
        &va,
        VoiceInput {
            title: "잘 자".into(),
            blob: BlobHash::of(b"v").into(),
            size: 1,
            duration_ms: 4200,
            peaks: vec![],
        },
        NOW - 1000,
    )
    .unwrap();
    doc.add_event(
        EventInput {
            title: "가족 모임".into(),
            start: "2026-11-30".into(),
            ..Default::default()
        },
        NOW,
    )
    .unwrap();

    let viewer = views::Viewer {
        now_ms: NOW,
        offset: KST,
        lang: Lang::Ko,
    };
    let mut presence = BTreeMap::new();
    presence.insert(
        dad.user.to_hex(),
        views::Presence {
            online: false,
            last_seen: Some(NOW - 5 * 60 * 1000),
        },
    );
    let h = views::home(doc.view(), &profiles, &presence, viewer, 3);
    assert_eq!(h.family_name, "우리 가족");
    assert_eq!(h.members.len(), 2);
    assert_eq!(h.members[0].name, "엄마", "host first");
    assert_eq!(
        h.members[0].mood.as_ref().map(|m| m.key),
        Some(Mood::Love.name())
    );
    assert_eq!(
        h.members[0].mood.as_ref().map(|m| m.label),
        Some("사랑해요")
    );
    assert_eq!(h.members[1].mood, None);
    assert_eq!(h.members[0].status, None, "no presence known");
    assert_eq!(h.members[1].status.as_deref(), Some("5분 전"));
    assert_eq!(h.members[1].nickname.as_deref(), Some("아빠곰"));
    assert_eq!(h.mission.as_ref().unwrap().id, m_today);
    assert_ne!(h.mission.as_ref().unwrap().id, m_old);
    assert_eq!(h.month_rate, 0);
    assert_eq!(h.badge.as_ref().unwrap().key, BadgeKind::CozyStart.key());
    assert_eq!(h.latest_photo.as_ref().unwrap().id, p);
    assert_eq!(
        h.latest_voice.as_ref().unwrap().headline,
        "엄마님이 음성메시지를 보냈어요!"
    );
    assert_eq!(h.month_events.len(), 1);
    assert!(
        views::home::WARM_MESSAGES
            .iter()
            .any(|(ko, _)| *ko == h.warm_message)
    );
    // The same screen in English.
    let en = views::home(
        doc.view(),
        &profiles,
        &presence,
        views::Viewer {
            lang: Lang::En,
            ..viewer
        },
        3,
    );
    assert_eq!(
        en.latest_voice.unwrap().headline,
        "엄마 sent a voice message!"
    );
    assert_eq!(en.members[1].status.as_deref(), Some("5 min ago"));
    assert_eq!(en.month_label, "Just getting started");
    let json = serde_json::to_value(&h).unwrap();
    assert_eq!(json["members"][0]["role"], "host");
    assert_eq!(json["members"][0]["mood"]["emoji"], "🥰");
}

#[test]
fn incoming_likes_and_comments_become_notifications_for_the_uploader() {
    let (mom, dad, kid) = (actor(), actor(), actor());
    let (mut mom_doc, _) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &mom, NOW).unwrap();
    mom_doc.add_member(dad.user, "아빠", NOW).unwrap();
    mom_doc.add_member(kid.user, "막내", NOW).unwrap();
    let album = mom_doc.create_album("가족", NOW).unwrap().value;
    let p = mom_doc.add_photo(&album, photo(1), NOW).unwrap().value;
    let snap = mom_doc.save();
    let mut dad_doc = FamilyDoc::load(Some(&snap), [], &dad).unwrap();
    let mut kid_doc = FamilyDoc::load(Some(&snap), [], &kid).unwrap();

    let like = dad_doc.set_like(&p, true, NOW + 1).unwrap().change.unwrap();
    let c1 = dad_doc
        .add_comment(&p, "예쁘다", NOW + 2)
        .unwrap()
        .change
        .unwrap();
    let c2 = dad_doc
        .add_comment(&p, "또 가자", NOW + 3)
        .unwrap()
        .change
        .unwrap();
    let kid_like = kid_doc.set_like(&p, true, NOW + 4).unwrap().change.unwrap();
    let mission = kid_doc
        .add_mission("숙제하기", &[], None, NOW + 5)
        .unwrap()
        .change
        .unwrap();

    let update = mom_doc.apply_remote([
        like.as_slice(),
        c1.as_slice(),
        c2.as_slice(),
        kid_like.as_slice(),
        mission.as_slice(),
    ]);
    assert_eq!(update.new_activity.len(), 5);
    // Re-delivery makes nothing new.
    assert!(
        mom_doc
            .apply_remote([like.as_slice()])
            .new_activity
            .is_empty()
    );

    let me = mom.user.to_hex();
    let notes = views::notifications(&update.new_activity, &me, true, true);
    // Dad's two comments collapse; his like, the kid's like and the kid's mission stay.
    assert_eq!(notes.len(), 4, "{notes:#?}");
    let comments = notes
        .iter()
        .find(|n| matches!(n.latest.kind, ActivityKind::PhotoCommented { .. }))
        .unwrap();
    assert_eq!(comments.count, 2);
    assert_eq!(
        comments.latest.text(mom_doc.view(), Lang::Ko),
        "아빠 님이 댓글을 등록하셨습니다."
    );
    let likes: Vec<_> = notes
        .iter()
        .filter(|n| matches!(n.latest.kind, ActivityKind::PhotoLiked { .. }))
        .collect();
    assert_eq!(likes.len(), 2);
    assert_eq!(
        likes[0].latest.text(mom_doc.view(), Lang::Ko),
        "막내 님이 좋아요를 누르셨습니다."
    );
    // With reactions off, only the family-wide mission remains; dad is not notified of
    // likes on mom's photo.
    assert_eq!(
        views::notifications(&update.new_activity, &me, false, true).len(),
        1
    );
    let dad_notes = views::notifications(&update.new_activity, &dad.user.to_hex(), true, true);
    assert!(
        dad_notes
            .iter()
            .all(|n| matches!(n.latest.kind, ActivityKind::MissionCreated { .. }))
    );

    // The full feed is newest first and includes the join of the members.
    let feed = views::activity(mom_doc.view());
    assert!(feed.windows(2).all(|w| w[0].at >= w[1].at));
    assert_eq!(
        feed.iter()
            .filter(|a| a.kind == ActivityKind::MemberJoined)
            .count(),
        2
    );
}
