//! What a family noticed (issue 13), each as it happened, against the real relay: the
//! bell tells how things ended up (not each step), a new member gets a welcome rather
//! than the family's history, bursts are one notification, badges never go backwards,
//! past months are read-only, moods are today's, Korean particles fit the word, and
//! edits are all or nothing.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use doran_device::{
    Device, DeviceEvent, DeviceOptions, ErrorCode, MissionInput, ProfileChanges, Subscription,
    core::{EventInput, EventPatch},
};
use doran_e2e::{
    Relay,
    devices::{WAIT, link_and_confirm, until, wait_for},
};

/// A test clock the devices read (Unix ms), starting at the real time.
#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn new() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        TestClock(Arc::new(AtomicI64::new(now)))
    }

    fn shift(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    fn options(&self) -> DeviceOptions {
        let clock = Arc::clone(&self.0);
        DeviceOptions {
            clock: Some(Arc::new(move || clock.load(Ordering::SeqCst))),
            ..DeviceOptions::default()
        }
    }
}

/// A person on their own device, signed up on the relay.
async fn person(dir: &std::path::Path, relay: &Relay, name: &str) -> (Device, Subscription) {
    person_with(dir, relay, name, DeviceOptions::default()).await
}

async fn person_with(
    dir: &std::path::Path,
    relay: &Relay,
    name: &str,
    options: DeviceOptions,
) -> (Device, Subscription) {
    let device = Device::open(dir.join(name), options)
        .await
        .expect("the device opens");
    let events = device.subscribe();
    device
        .create_account(&relay.url(), &format!("{name}@example.com"), name)
        .await
        .expect("an account");
    (device, events)
}

/// Makes `family` (hosted by `host` as `host_name`) and has each of `others` join
/// with the 호칭 given.
async fn family_of(host: &Device, host_name: &str, others: &[(&Device, &str, &str)]) -> String {
    let family = host
        .create_family("우리 가족", host_name)
        .await
        .expect("family");
    for (device, email_name, name) in others {
        let invite = host
            .invite(&family, &format!("{email_name}@example.com"), name)
            .await
            .expect("invited");
        device
            .answer_invite(&invite.invite, true)
            .await
            .expect("accepted");
    }
    host.sync_now(WAIT).await.expect("synced");
    for (device, ..) in others {
        device.sync_now(WAIT).await.expect("synced");
    }
    family
}

fn texts(bell: &doran_device::screens::NotificationsView) -> Vec<String> {
    bell.items.iter().map(|n| n.text.clone()).collect()
}

/// Waits for the notification whose text is `text` (a marker made after what is
/// checked: the bell is written batch by batch, in order).
async fn note(events: &mut Subscription, text: &str) {
    wait_for(events, text, |e| match e {
        DeviceEvent::Notification(n) if n.text == text => Some(()),
        _ => None,
    })
    .await;
}

/// A mission whose notification marks "everything before has been announced".
async fn marker(device: &Device, family: &str, title: &str) {
    device
        .add_mission(
            family,
            MissionInput {
                title: title.into(),
                ..MissionInput::default()
            },
        )
        .await
        .expect("a marker mission");
    device.sync_now(WAIT).await.expect("synced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bell_tells_how_things_ended_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom, _mom_events) = person(dir.path(), &relay, "mom").await;
    let (son, _son_events) = person(dir.path(), &relay, "son").await;
    let (dad, mut dad_events) = person(dir.path(), &relay, "dad").await;
    let family = family_of(
        &mom,
        "엄마",
        &[(&son, "son", "아들"), (&dad, "dad", "아빠")],
    )
    .await;

    // 1. A mission for mom and her son; mom ticks it. The son ticks and takes it back
    // before his device syncs: dad is never told it was completed.
    let dishes = mom
        .add_mission(
            &family,
            MissionInput {
                title: "설거지 돕기".into(),
                participants: vec!["엄마".into(), "아들".into()],
                due: None,
            },
        )
        .await
        .expect("mission");
    mom.set_mission_done(&family, &dishes, true)
        .await
        .expect("tick");
    mom.sync_now(WAIT).await.expect("synced");
    note(
        &mut dad_events,
        "엄마 님이 미션 '설거지 돕기'를 만들었어요.",
    )
    .await;
    son.sync_now(WAIT).await.expect("synced");
    son.stop_sync();
    son.set_mission_done(&family, &dishes, true)
        .await
        .expect("tick");
    son.set_mission_done(&family, &dishes, false)
        .await
        .expect("untick");
    son.sync_now(WAIT).await.expect("synced");

    // 2. A mission mom completes alone and deletes while dad is away: no notification
    // about it with an empty title.
    dad.stop_sync();
    let gone = mom
        .add_mission(
            &family,
            MissionInput {
                title: "장보기".into(),
                participants: vec!["엄마".into()],
                due: None,
            },
        )
        .await
        .expect("mission");
    mom.set_mission_done(&family, &gone, true)
        .await
        .expect("tick");
    mom.delete_mission(&family, &gone).await.expect("deleted");
    // A marker of another kind (so it folds into nothing): once dad is told about
    // it, everything before it has been announced.
    mom.add_event(
        &family,
        EventInput {
            title: "끝".into(),
            start: "2026-12-31".into(),
            ..EventInput::default()
        },
    )
    .await
    .expect("event");
    mom.sync_now(WAIT).await.expect("synced");
    dad.start_sync();
    note(&mut dad_events, "엄마 님이 일정 '끝'을 등록했어요.").await;
    let bell = dad.notifications().await.expect("the bell");
    let said = texts(&bell);
    assert!(
        !said.iter().any(|t| t.contains("모두 함께 완료")),
        "nothing was completed by everyone: {said:?}"
    );
    assert!(
        !said.iter().any(|t| t.contains("''")),
        "no empty titles: {said:?}"
    );
    // Korean particles fit the title: 돕기를, not 돕기을.
    assert!(
        said.iter()
            .any(|t| t == "엄마 님이 미션 '설거지 돕기'를 만들었어요."),
        "{said:?}"
    );
    let missions = dad.missions(&family, None).await.expect("missions");
    let card = missions
        .month
        .missions
        .iter()
        .find(|m| m.id == dishes)
        .expect("the mission");
    assert!(card.completed_at.is_none(), "the son took his tick back");
    assert!(missions.month.missions.iter().all(|m| m.id != gone));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_is_welcomed_and_bursts_are_one_notification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom, _mom_events) = person(dir.path(), &relay, "mom").await;
    let (dad, mut dad_events) = person(dir.path(), &relay, "dad").await;
    let family = family_of(&mom, "엄마", &[(&dad, "dad", "아빠")]).await;

    // Weeks of family life, including an event that was deleted.
    for title in ["가족 사진 찍기", "산책", "책 읽기"] {
        mom.add_mission(
            &family,
            MissionInput {
                title: title.into(),
                ..MissionInput::default()
            },
        )
        .await
        .expect("mission");
    }
    let trip = mom
        .add_event(
            &family,
            EventInput {
                title: "여행".into(),
                start: "2026-12-24".into(),
                ..EventInput::default()
            },
        )
        .await
        .expect("event");
    mom.delete_event(&family, &trip).await.expect("deleted");
    mom.sync_now(WAIT).await.expect("synced");

    // A fourth person joins: a welcome, not the history.
    let (son, mut son_events) = person(dir.path(), &relay, "son").await;
    let invite = mom
        .invite(&family, "son@example.com", "아들")
        .await
        .expect("invited");
    let accepted = son
        .answer_invite(&invite.invite, true)
        .await
        .expect("accepted");
    assert_eq!(accepted.as_deref(), Some(family.as_str()));
    marker(&mom, &family, "환영해요").await;
    note(&mut son_events, "엄마 님이 미션 '환영해요'를 만들었어요.").await;
    let bell = son.notifications().await.expect("the bell");
    let kinds: Vec<&str> = bell.items.iter().map(|n| n.kind.as_str()).collect();
    assert!(kinds.contains(&"welcome"), "{kinds:?}");
    let news: Vec<&str> = bell
        .items
        .iter()
        .filter(|n| !matches!(n.kind.as_str(), "welcome" | "invite"))
        .map(|n| n.text.as_str())
        .collect();
    assert_eq!(
        news,
        ["엄마 님이 미션 '환영해요'를 만들었어요."],
        "no history as news"
    );

    // Seven photos in a row: one notification on dad's device, "사진 7장".
    dad.sync_now(WAIT).await.expect("synced");
    let album = mom.create_album(&family, "바다").await.expect("album");
    for i in 0..7u8 {
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([i * 30, x as u8, y as u8]));
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, image::ImageFormat::Png)
            .expect("encode");
        mom.add_photo_bytes(&family, &album, bytes.into_inner(), "")
            .await
            .expect("photo");
    }
    mom.sync_now(WAIT).await.expect("synced");
    wait_for(
        &mut dad_events,
        "seven photos in one notification",
        |e| match e {
            DeviceEvent::Notification(n) if n.count == 7 => Some(()),
            _ => None,
        },
    )
    .await;
    let bell = dad.notifications().await.expect("the bell");
    let photos: Vec<_> = bell
        .items
        .iter()
        .filter(|n| n.kind == "family" && n.text.contains("사진"))
        .collect();
    assert_eq!(photos.len(), 1, "one notification: {:?}", texts(&bell));
    assert_eq!(photos[0].count, 7);
    assert_eq!(photos[0].text, "엄마 님이 사진 7장을 올렸어요.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badges_never_go_backwards_and_past_months_are_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let clock = TestClock::new();
    let (mom, _events) = person_with(dir.path(), &relay, "mom", clock.options()).await;
    let family = mom
        .create_family("우리 가족", "엄마")
        .await
        .expect("family");

    // 20 missions earn 협동의 즐거움; deleting one keeps it, with 20/20.
    let mut missions = Vec::new();
    for i in 0..20 {
        missions.push(
            mom.add_mission(
                &family,
                MissionInput {
                    title: format!("미션 {i}"),
                    ..MissionInput::default()
                },
            )
            .await
            .expect("mission"),
        );
    }
    let mut events = Vec::new();
    for i in 0..5 {
        events.push(
            mom.add_event(
                &family,
                EventInput {
                    title: format!("일정 {i}"),
                    start: "2026-12-01".into(),
                    ..EventInput::default()
                },
            )
            .await
            .expect("event"),
        );
    }
    let earned = |board: &doran_device::core::views::BadgeBoard, key: &str| {
        board
            .family
            .iter()
            .find(|b| b.key == key)
            .map(|b| (b.earned, b.progress))
    };
    let before = mom.badges(&family).await.expect("badges");
    assert_eq!(earned(&before, "cooperation"), Some((true, 20)));
    assert_eq!(earned(&before, "days_together"), Some((true, 5)));
    mom.delete_mission(&family, &missions[0])
        .await
        .expect("deleted");
    mom.delete_event(&family, &events[0])
        .await
        .expect("deleted");
    let after = mom.badges(&family).await.expect("badges");
    assert_eq!(
        earned(&after, "cooperation"),
        Some((true, 20)),
        "still earned"
    );
    assert_eq!(
        earned(&after, "days_together"),
        Some((true, 5)),
        "still earned"
    );

    // A mission of last month is read-only this month.
    clock.shift(-40 * 24 * 3600 * 1000);
    let november = mom
        .add_mission(
            &family,
            MissionInput {
                title: "지난달 미션".into(),
                ..MissionInput::default()
            },
        )
        .await
        .expect("a mission last month");
    clock.shift(40 * 24 * 3600 * 1000);
    let refused = mom
        .set_mission_done(&family, &november, true)
        .await
        .expect_err("past months are read-only");
    assert_eq!(refused.code, ErrorCode::PastMonth);
    let page = mom.missions(&family, None).await.expect("missions");
    let past = page
        .past
        .iter()
        .find(|m| m.id == november)
        .expect("in the past");
    assert!(past.completed_at.is_none(), "nothing changed");

    // Today's mood shows on home today, not tomorrow.
    mom.set_mood("love").await.expect("mood");
    let home = mom.home(&family).await.expect("home");
    assert_eq!(
        home.members[0].mood.as_ref().map(|m| m.key),
        Some("love"),
        "the mood shows on home"
    );
    clock.shift(24 * 3600 * 1000);
    let home = mom.home(&family).await.expect("home");
    assert_eq!(home.members[0].mood, None, "a new day, no mood yet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_are_all_or_nothing_and_invites_do_not_get_stuck() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom, _e1) = person(dir.path(), &relay, "mom").await;
    let (son, _e2) = person(dir.path(), &relay, "son").await;
    let (nephew, _e3) = person(dir.path(), &relay, "nephew").await;
    let family = mom
        .create_family("우리 가족", "엄마")
        .await
        .expect("family");

    // A profile change with a picture that is not one changes nothing, mood included.
    let bad = dir.path().join("not-a-picture.jpg");
    std::fs::write(&bad, "hello").expect("write");
    let refused = mom
        .update_profile(ProfileChanges {
            mood: Some("love".into()),
            avatar_file: Some(bad),
            ..ProfileChanges::default()
        })
        .await
        .expect_err("not a picture");
    assert_eq!(refused.code, ErrorCode::BadPhoto);
    assert_eq!(mom.profile(None).await.expect("profile").mood, None);

    // The same 호칭 cannot be offered twice; the first invite can be withdrawn.
    let first = mom
        .invite(&family, "son@example.com", "아들")
        .await
        .expect("invited");
    let twice = mom
        .invite(&family, "nephew@example.com", "아들")
        .await
        .expect_err("the name is already offered");
    assert_eq!(twice.code, ErrorCode::NameTaken);
    assert!(twice.message.contains("'아들'로"), "{}", twice.message);
    assert!(
        mom.invites().await.expect("invites").sent[0]
            .text
            .starts_with("son 님을 '우리 가족' 가족에 아들로 초대했어요"),
        "a sent invite says who was invited"
    );
    mom.withdraw_invite(&first.invite).await.expect("withdrawn");
    let again = mom
        .invite(&family, "nephew@example.com", "아들")
        .await
        .expect("free again");
    nephew
        .answer_invite(&again.invite, true)
        .await
        .expect("accepted");
    let refused = son
        .answer_invite(&first.invite, true)
        .await
        .expect_err("the withdrawn invite");
    assert_eq!(refused.code, ErrorCode::InviteClosed);

    // An invitee whose 호칭 was taken meanwhile still joins: her entry gets a number
    // (every device refuses a second 막내), and she can change it after.
    let (cousin, _e4) = person(dir.path(), &relay, "cousin").await;
    let late = mom
        .invite(&family, "cousin@example.com", "막내")
        .await
        .expect("invited");
    nephew
        .set_my_name(&family, "막내")
        .await
        .expect("the nephew takes the name");
    nephew.sync_now(WAIT).await.expect("synced");
    let joined = cousin
        .answer_invite(&late.invite, true)
        .await
        .expect("accepted");
    assert_eq!(joined.as_deref(), Some(family.as_str()));
    let names = |view: &doran_device::screens::FamilyView| {
        let mut names: Vec<String> = view.members.iter().map(|m| m.name.clone()).collect();
        names.sort();
        names
    };
    let view = cousin
        .family(&family)
        .await
        .expect("the family on her device");
    assert_eq!(
        names(&view),
        ["막내", "막내2", "엄마"],
        "her entry carries the name with a number"
    );
    cousin.set_my_name(&family, "둘째").await.expect("renamed");

    // An invitee may choose another 호칭 than the one proposed as she accepts.
    let (niece, _e5) = person(dir.path(), &relay, "niece").await;
    let offered = mom
        .invite(&family, "niece@example.com", "조카")
        .await
        .expect("invited");
    let joined = niece
        .accept_invite_as(&offered.invite, "셋째")
        .await
        .expect("accepted under another name");
    assert_eq!(joined, family);
    let view = niece
        .family(&family)
        .await
        .expect("the family on her device");
    assert!(
        names(&view).contains(&"셋째".to_owned()),
        "her entry carries the name she chose: {:?}",
        names(&view)
    );

    // An event edit that changes nothing is refused, nothing queued.
    let event = mom
        .add_event(
            &family,
            EventInput {
                title: "생일".into(),
                start: "2026-12-20".into(),
                ..EventInput::default()
            },
        )
        .await
        .expect("event");
    mom.sync_now(WAIT).await.expect("synced");
    let nothing = mom
        .edit_event(&family, &event, EventPatch::default())
        .await
        .expect_err("nothing to change");
    assert_eq!(nothing.code, ErrorCode::InvalidInput);
    assert_eq!(mom.pending().await.expect("pending"), 0);

    // A 700 MB "recording" is refused before it is read.
    let huge = dir.path().join("huge.wav");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(700 * 1024 * 1024))
        .expect("a sparse file");
    let album = mom
        .create_voice_album(&family, "안부", 1)
        .await
        .expect("album");
    let started = std::time::Instant::now();
    let too_big = mom
        .add_voice(&family, &album, &huge, "긴 녹음")
        .await
        .expect_err("too large");
    assert_eq!(too_big.code, ErrorCode::TooLarge);
    assert!(started.elapsed() < Duration::from_secs(2), "not read first");

    // A device linked with a code knows the account's email — once mom's phone has
    // let it into her profile's key group (the personal document is sealed; under a
    // loaded machine "up to date" can come first, with that document still locked).
    let laptop = Device::open(dir.path().join("mom-laptop"), DeviceOptions::default())
        .await
        .expect("device");
    link_and_confirm(&mom, &laptop, &relay.url()).await;
    laptop.sync_now(WAIT).await.expect("synced");
    until("the laptop to know the account's email", async || {
        let account = laptop
            .account()
            .await
            .expect("account")
            .expect("an account");
        if account.email == "mom@example.com" {
            Ok(())
        } else {
            Err(account.email)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_avatars_are_random() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let mut seen = std::collections::BTreeSet::new();
    // Six accounts all drawing the same of 8 avatars: a chance of 8 / 8^6 ≈ 3e-5.
    for i in 0..6 {
        let (device, _events) = person(dir.path(), &relay, &format!("user{i}")).await;
        seen.insert(device.profile(None).await.expect("profile").default_avatar);
    }
    assert!(seen.len() > 1, "always the same default avatar: {seen:?}");
}
