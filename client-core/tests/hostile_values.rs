//! Values a hostile member may write. The family's rules check where a write goes and
//! who wrote it, not the value's type: a modified client can put a string where a time
//! belongs, an empty comment, a year-9999 instant, a 300 KB title. Every device still
//! shows each entity with what is readable (so its owner can see and delete it), never
//! panics, and keeps what apps are promised (covers, avatars, waveforms, limits).

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use std::collections::BTreeMap;

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, transaction::Transactable};
use doran_client_core::{
    Actor, EventInput, EventPatch, FamilyDoc, PersonalDoc, PhotoInput, VoiceInput,
    model::{Family, Mood, Personal},
    read::{EARLIEST, LATEST},
    time_util::{Lang, YearMonth, local_date, relative},
    views::{self, Presence, Viewer},
};
use doran_protocol::{BlobHash, DeviceId, FamilyId, UserId};
use time::{UtcOffset, macros::offset};

/// 2026-11-28 12:00 KST.
const NOW: i64 = 1_795_834_800_000;
const KST: UtcOffset = offset!(+9);
const HAWAII: UtcOffset = offset!(-10);
/// 9999-12-31 23:59:59 UTC: the last instant `time` can hold without large dates.
const YEAR_9999: i64 = 253_402_300_799_000;
/// -9999-01-01 00:00:00 UTC: the first.
const YEAR_MINUS_9999: i64 = -377_705_116_800_000;

fn actor() -> Actor {
    Actor {
        user: UserId::random(),
        device: DeviceId::random(),
    }
}

/// A host and a member who joined, both devices in step, with an album, a photo, a
/// mission for everyone, an event, a voice album and a voice message by the host.
struct Fam {
    host: FamilyDoc,
    member: FamilyDoc,
    member_actor: Actor,
    album: String,
    photo: String,
    mission: String,
    event: String,
    voice_album: String,
}

fn family() -> Fam {
    let host_actor = actor();
    let member_actor = actor();
    let (mut host, _) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &host_actor, NOW).unwrap();
    let mut member = FamilyDoc::load(Some(&host.save()), [], &member_actor).unwrap();
    let join = member.add_member(member_actor.user, "아빠", NOW).unwrap();
    accept(&mut host, &join.change.unwrap());
    let album = host.create_album("가족", NOW).unwrap().value;
    let photo = host.add_photo(&album, photo(1), NOW).unwrap().value;
    let mission = host.add_mission("장보기", &[], None, NOW).unwrap().value;
    let event = host.add_event(event("3", "5"), NOW).unwrap().value;
    let voice_album = host.create_voice_album("노래", 2, NOW).unwrap().value;
    let member = FamilyDoc::load(Some(&host.save()), [], &member_actor).unwrap();
    Fam {
        host,
        member,
        member_actor,
        album,
        photo,
        mission,
        event,
        voice_album,
    }
}

fn photo(seed: u32) -> PhotoInput {
    PhotoInput {
        blob: BlobHash::of(&seed.to_le_bytes()).into(),
        thumb: BlobHash::of(&(seed + 1_000).to_le_bytes()).into(),
        mime: "image/jpeg".into(),
        size: 10,
        width: 10,
        height: 10,
        taken_at: None,
        caption: String::new(),
    }
}

fn event(start: &str, end: &str) -> EventInput {
    EventInput {
        title: "여행".into(),
        notes: String::new(),
        start: format!("2026-11-0{start}"),
        end: Some(format!("2026-11-0{end}")),
        start_time: None,
        end_time: None,
        color: None,
    }
}

fn accept(doc: &mut FamilyDoc, change: &[u8]) {
    let update = doc.apply_remote([change]);
    assert!(update.refusals.is_empty(), "refused: {:?}", update.refusals);
}

/// What a modified client can do: write anything the rules let it, then commit; the
/// host's device receives it.
fn rogue(f: &mut Fam, write: impl FnOnce(&mut AutoCommit)) {
    write(f.member.replica_mut().doc_mut());
    let change = f.member.replica_mut().commit("rogue", NOW).unwrap();
    accept(&mut f.host, &change);
}

/// An honest edit on the member's device, received by the host's.
fn honest<T>(f: &mut Fam, edit: impl FnOnce(&mut FamilyDoc) -> doran_client_core::Edit<T>) -> T {
    let edit = edit(&mut f.member);
    accept(&mut f.host, &edit.change.unwrap());
    edit.value
}

fn obj(doc: &AutoCommit, path: &[&str]) -> ObjId {
    let mut o = ROOT;
    for k in path {
        o = doc.get(&o, *k).unwrap().unwrap().1;
    }
    o
}

#[test]
fn a_bad_like_comment_or_tick_hides_only_itself() {
    let mut f = family();
    let me = f.member_actor.user.to_hex();
    let honest_comment = f.host.add_comment(&f.photo, "예뻐요", NOW).unwrap();
    accept(&mut f.member, &honest_comment.change.unwrap());
    let (photo, mission) = (f.photo.clone(), f.mission.clone());
    rogue(&mut f, |doc| {
        doc.put(obj(doc, &["photos", &photo, "likes"]), me.as_str(), "x")
            .unwrap();
        let comments = obj(doc, &["photos", &photo, "comments"]);
        doc.put_object(&comments, "empty", ObjType::Map).unwrap();
        let partial = doc.put_object(&comments, "partial", ObjType::Map).unwrap();
        doc.put(&partial, "by", me.as_str()).unwrap();
        doc.put(
            obj(doc, &["missions", &mission, "completions"]),
            me.as_str(),
            "x",
        )
        .unwrap();
    });

    let view = f.host.view();
    let p = view.photos.get(&f.photo).expect("the photo still shows");
    assert!(p.likes.is_empty(), "the bad like is skipped");
    assert_eq!(
        p.comments.len(),
        1,
        "only the honest comment: {:?}",
        p.comments
    );
    let m = view
        .missions
        .get(&f.mission)
        .expect("the mission still shows");
    assert!(m.completions.is_empty(), "the bad tick is skipped");
    let host = f.host.me().to_hex();
    let detail = views::photo_detail(view, &f.photo, &host, Lang::Ko).unwrap();
    assert_eq!(detail.comments[0].text, "예뻐요");
    // The member ticks again, honestly: the tick replaces the bad one.
    let mission = f.mission.clone();
    honest(&mut f, |d| d.set_mission_done(&mission, true, NOW).unwrap());
    assert!(
        f.host.view().missions[&f.mission]
            .completions
            .contains_key(&me)
    );
    // The owner can still delete them.
    f.host.delete_photo(&f.photo, NOW).unwrap();
    f.host.delete_mission(&f.mission, NOW).unwrap();
}

#[test]
fn entities_with_bad_fields_still_show_and_can_be_deleted() {
    let mut f = family();
    let me = f.member_actor.user.to_hex();
    let (album, event, voice_album) = (f.album.clone(), f.event.clone(), f.voice_album.clone());
    let voice = honest(&mut f, |d| d.add_voice(&voice_album, voice(), NOW).unwrap());
    rogue(&mut f, |doc| {
        doc.put(obj(doc, &["albums", &album]), "name", 5).unwrap();
        doc.put(obj(doc, &["albums", &album]), "cover", 5).unwrap();
        let e = obj(doc, &["calendar", &event]);
        doc.put(&e, "title", 5).unwrap();
        doc.put(&e, "start", 5).unwrap();
        doc.put(&e, "color", "red; background: url(x)").unwrap();
        doc.put(obj(doc, &["voice_albums", &voice_album]), "name", true)
            .unwrap();
        let v = obj(doc, &["voices", &voice]);
        doc.put(&v, "title", 5).unwrap();
        doc.put(&v, "at", "yesterday").unwrap();
        let m = obj(doc, &["members", &me]);
        doc.put(&m, "joined_at", "x").unwrap();
        doc.put(&m, "name", 7).unwrap();
    });

    let view = f.host.view();
    let a = view.albums.get(&f.album).expect("the album still shows");
    assert_eq!((a.name.as_str(), a.cover.as_ref()), ("", None));
    let e = view.calendar.get(&f.event).expect("the event still shows");
    assert_eq!(e.title, "");
    assert_eq!(
        (e.start.as_str(), e.end.as_str()),
        ("2026-11-05", "2026-11-05")
    );
    assert_eq!(
        e.color, "#CE5F5F",
        "a color outside the palette is the default"
    );
    assert_eq!(view.voice_albums[&f.voice_album].name, "");
    let v = view.voices.get(&voice).expect("the voice still shows");
    assert_eq!((v.title.as_str(), v.at), ("", 0));
    let m = view.members.get(&me).expect("the member still shows");
    assert_eq!((m.name.as_str(), m.joined_at), ("", 0));
    assert_eq!(views::albums(view, Lang::Ko)[0].count, 1);
    let month = views::calendar_month(view, YearMonth::parse("2026-11").unwrap(), Lang::Ko);
    assert_eq!(month.days[4].events, vec![f.event.clone()]);

    // The host deletes every one of them.
    f.host.delete_event(&f.event, NOW).unwrap();
    f.host.delete_album(&f.album, NOW).unwrap();
    f.host.delete_voice_album(&f.voice_album, NOW).unwrap();
    assert!(f.host.view().voices.is_empty());
}

#[test]
fn editing_what_was_read_leniently_writes_only_the_edit() {
    let mut f = family();
    let album = honest(&mut f, |d| d.create_album("아빠 앨범", NOW).unwrap());
    let mission = honest(&mut f, |d| d.add_mission("청소", &[], None, NOW).unwrap());
    let (event, voice_album) = (f.event.clone(), f.voice_album.clone());
    let (a, m) = (album.clone(), mission.clone());
    rogue(&mut f, |doc| {
        let a = obj(doc, &["albums", &a]);
        doc.put(&a, "name", 5).unwrap();
        doc.put(&a, "created_at", YEAR_9999).unwrap();
        doc.put(obj(doc, &["missions", &m]), "created_at", i64::MAX)
            .unwrap();
        doc.put(obj(doc, &["calendar", &event]), "notes", "n".repeat(600))
            .unwrap();
        doc.put(obj(doc, &["voice_albums", &voice_album]), "cover", 200)
            .unwrap();
    });
    // The host (not the album's creator) renames it and edits the rest: the member's
    // device accepts every change (none rewrites the creation time, read clamped).
    let edits = [
        f.host.rename_album(&album, "추억", NOW).unwrap(),
        f.host
            .edit_event(
                &f.event,
                EventPatch {
                    title: Some("캠핑".into()),
                    ..EventPatch::default()
                },
                NOW,
            )
            .unwrap(),
        f.host
            .edit_voice_album(&f.voice_album, Some("동요"), None, NOW)
            .unwrap(),
    ];
    for e in edits {
        accept(&mut f.member, &e.change.unwrap());
    }
    let view = f.member.view();
    assert_eq!(view.albums[&album].name, "추억");
    assert_eq!(view.albums[&album].created_at, LATEST);
    assert_eq!(view.calendar[&f.event].title, "캠핑");
    assert_eq!(view.voice_albums[&f.voice_album].name, "동요");
    assert_eq!(f.host.view().missions[&mission].created_at, LATEST);
}

#[test]
fn covers_avatars_waveforms_and_texts_keep_their_limits() {
    let mut f = family();
    let mut long_voice = voice();
    long_voice.peaks = vec![200; 200];
    let (voice_album, event) = (f.voice_album.clone(), f.event.clone());
    let voice = honest(&mut f, |d| {
        d.add_voice(&voice_album, long_voice, NOW).unwrap()
    });
    let other = honest(&mut f, |d| d.create_voice_album("기타", 1, NOW).unwrap());
    let huge = "가".repeat(100_000);
    rogue(&mut f, |doc| {
        doc.put(obj(doc, &["voice_albums", &voice_album]), "cover", 200)
            .unwrap();
        doc.put(obj(doc, &["voice_albums", &other]), "cover", 0)
            .unwrap();
        let v = obj(doc, &["voices", &voice]);
        doc.put(&v, "peaks", automerge::ScalarValue::Bytes(vec![255; 5_000]))
            .unwrap();
        doc.put(&v, "duration_ms", u64::MAX).unwrap();
        doc.put(obj(doc, &["calendar", &event]), "title", huge.as_str())
            .unwrap();
    });
    let view = f.host.view();
    let covers: BTreeMap<String, u8> = views::voice_albums(view)
        .into_iter()
        .map(|a| (a.id, a.cover))
        .collect();
    assert_eq!(covers[&f.voice_album], 4);
    assert_eq!(covers[&other], 1);
    let card = &views::voices(view, None, Lang::Ko)[0];
    assert_eq!(card.peaks.len(), 256);
    assert!(card.duration_ms <= 3 * 60 * 1000 + 250);
    assert_eq!(view.calendar[&f.event].title.chars().count(), 14);
    // Nor does the title reach the feed or the bell whole.
    let items = views::activity(view);
    let added = items
        .iter()
        .find(|a| a.id == format!("event/{}", f.event))
        .unwrap();
    assert!(added.text(view, Lang::Ko).chars().count() < 60);

    // A profile's default avatar is one of the eight, and its texts are cut too.
    let owner = actor();
    let (mut profile, _) = PersonalDoc::create(&owner, "아빠곰", None, 3, NOW).unwrap();
    for (written, shown) in [(0_i64, 1_u8), (200, 8), (-5, 1), (5, 5)] {
        let doc = profile.replica_mut().doc_mut();
        doc.put(ROOT, "default_avatar", written).unwrap();
        doc.put(ROOT, "nickname", huge.as_str()).unwrap();
        profile.replica_mut().commit("rogue", NOW).unwrap();
        let seen = PersonalDoc::load(Some(&profile.replica_mut().save()), [], &actor()).unwrap();
        assert_eq!(seen.view().default_avatar, shown, "written {written}");
        assert_eq!(seen.view().nickname.chars().count(), 15);
    }
}

#[test]
fn a_profile_with_bad_fields_keeps_the_readable_ones() {
    let owner = actor();
    let (mut profile, _) = PersonalDoc::create(&owner, "아빠곰", None, 3, NOW).unwrap();
    let fam = FamilyId::random();
    profile.set_family(fam, true, NOW).unwrap();
    profile.set_mood(Mood::Love, NOW).unwrap();
    let doc = profile.replica_mut().doc_mut();
    let families = obj(doc, &["families"]);
    doc.put(&families, "bad", "x").unwrap();
    doc.put(obj(doc, &["settings"]), "language", 7).unwrap();
    doc.put(ROOT, "mood_at", "today").unwrap();
    profile.replica_mut().commit("rogue", NOW);
    let seen = PersonalDoc::load(Some(&profile.replica_mut().save()), [], &actor()).unwrap();
    let p = seen.view();
    assert_eq!(p.nickname, "아빠곰");
    assert_eq!(p.families.keys().collect::<Vec<_>>(), vec![&fam.to_hex()]);
    assert_eq!(p.settings.language, "ko");
    assert!(p.settings.notify_family);
    assert_eq!((p.mood, p.mood_at), (Some(Mood::Love), None));
}

#[test]
fn inverted_event_days_show_on_every_day_between() {
    // Two honest edits at once: one moves the start later, the other the end earlier.
    let mut f = family();
    let later_start = f
        .host
        .edit_event(&f.event, patch_days(Some("2026-11-05"), None), NOW)
        .unwrap();
    let earlier_end = f
        .member
        .edit_event(&f.event, patch_days(None, Some("2026-11-03")), NOW)
        .unwrap();
    accept(&mut f.host, &earlier_end.change.unwrap());
    accept(&mut f.member, &later_start.change.unwrap());
    for doc in [&f.host, &f.member] {
        let e = &doc.view().calendar[&f.event];
        assert_eq!(
            (e.start.as_str(), e.end.as_str()),
            ("2026-11-03", "2026-11-05")
        );
        let month =
            views::calendar_month(doc.view(), YearMonth::parse("2026-11").unwrap(), Lang::Ko);
        for day in 2..=4 {
            assert_eq!(
                month.days[day].events,
                vec![f.event.clone()],
                "day {}",
                day + 1
            );
        }
    }
}

fn patch_days(start: Option<&str>, end: Option<&str>) -> EventPatch {
    EventPatch {
        start: start.map(Into::into),
        end: end.map(Into::into),
        ..EventPatch::default()
    }
}

#[test]
fn extreme_times_panic_no_view_in_any_time_zone() {
    for at in [YEAR_9999, YEAR_MINUS_9999, i64::MAX, i64::MIN] {
        let mut f = family();
        let me = f.member_actor.user.to_hex();
        let (album, voice_album) = (f.album.clone(), f.voice_album.clone());
        let (first_photo, event, first_mission) =
            (f.photo.clone(), f.event.clone(), f.mission.clone());
        let photo = honest(&mut f, |d| d.add_photo(&album, photo(2), NOW).unwrap());
        let comment = honest(&mut f, |d| d.add_comment(&photo, "와", NOW).unwrap());
        let mission = honest(&mut f, |d| d.add_mission("산책", &[], None, NOW).unwrap());
        let voice = honest(&mut f, |d| d.add_voice(&voice_album, voice(), NOW).unwrap());
        rogue(&mut f, |doc| {
            doc.put(obj(doc, &["photos", &photo]), "at", at).unwrap();
            doc.put(obj(doc, &["photos", &photo]), "taken_at", at)
                .unwrap();
            doc.put(
                obj(doc, &["photos", &photo, "comments", &comment]),
                "at",
                at,
            )
            .unwrap();
            doc.put(
                obj(doc, &["photos", &first_photo, "likes"]),
                me.as_str(),
                at,
            )
            .unwrap();
            doc.put(obj(doc, &["missions", &mission]), "created_at", at)
                .unwrap();
            doc.put(
                obj(doc, &["missions", &first_mission, "completions"]),
                me.as_str(),
                at,
            )
            .unwrap();
            doc.put(obj(doc, &["calendar", &event]), "updated_at", at)
                .unwrap();
            doc.put(obj(doc, &["voices", &voice]), "at", at).unwrap();
            doc.put(obj(doc, &["members", &me]), "joined_at", at)
                .unwrap();
        });
        let view = f.host.view();
        let clamped = if at > 0 { LATEST } else { EARLIEST };
        assert_eq!(view.photos[&photo].at, clamped);
        assert_eq!(view.missions[&mission].created_at, clamped);

        // The member's own profile says the mood was set then.
        let (mut profile, _) =
            PersonalDoc::create(&f.member_actor, "아빠곰", None, 3, NOW).unwrap();
        profile.set_mood(Mood::Good, NOW).unwrap();
        let doc = profile.replica_mut().doc_mut();
        doc.put(ROOT, "mood_at", at).unwrap();
        profile.replica_mut().commit("rogue", NOW);
        let profile = PersonalDoc::load(Some(&profile.replica_mut().save()), [], &actor()).unwrap();
        let profiles = BTreeMap::from([(me.clone(), profile.view().clone())]);
        let presence = BTreeMap::from([(
            me.clone(),
            Presence {
                online: false,
                last_seen: Some(at),
            },
        )]);
        for offset in [KST, HAWAII, offset!(+14), offset!(-12)] {
            assert_eq!(profile.mood_today(NOW, offset), None);
            every_view(view, &profiles, &presence, &f.host.me().to_hex(), offset);
        }
    }
}

/// Draws every screen's view of `f`, as `me`, at `offset`.
fn every_view(
    f: &Family,
    profiles: &BTreeMap<String, Personal>,
    presence: &BTreeMap<String, Presence>,
    me: &str,
    offset: UtcOffset,
) {
    let lang = Lang::Ko;
    let viewer = Viewer {
        now_ms: NOW,
        offset,
        lang,
    };
    let home = views::home(f, profiles, presence, viewer, 7);
    assert_eq!(home.members.len(), 2);
    let month = YearMonth::of(local_date(NOW, offset));
    views::mission_dashboard(f, month, offset, lang);
    views::past_missions(f, month, offset, lang);
    views::memories(f, month, offset);
    views::calendar_month(f, month, lang);
    for album in views::albums(f, lang) {
        views::photo_page(f, &album.id, 0);
    }
    for id in f.photos.keys() {
        views::photo_detail(f, id, me, lang).unwrap();
    }
    views::voice_albums(f);
    views::voices(f, None, lang);
    views::badge_board(f, lang);
    let items = views::activity(f);
    for a in &items {
        a.text(f, lang);
        relative(a.at, NOW, offset, lang);
        local_date(a.at, offset);
    }
    for n in views::notifications(&items, me, true, true) {
        n.text(f, lang);
    }
}

fn voice() -> VoiceInput {
    VoiceInput {
        title: "안녕".into(),
        blob: BlobHash::of(b"mp3").into(),
        size: 100,
        duration_ms: 5_000,
        peaks: vec![10; 64],
    }
}
