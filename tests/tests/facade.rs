//! Two devices driven through the `Device` facade alone — what the desktop app and the
//! phone bindings call — against the real relay binary: accounts, a family, an
//! invite, a mission ticked on one device arriving on the other as an event, the relay
//! restarted mid-way (offline, then up to date), settings honoured, a removed
//! member's device saying so and keeping its copy readable, photo files damaged on a
//! device (as a power cut can leave them) neither blocking the upload queue nor shown
//! as if they were whole, a blob the relay refuses not holding up the others, edits
//! refused by a full family log kept until a snapshot frees it, a leave cut short
//! by the network finished by trying again, and a device that made hundreds of edits
//! leaving its stored copy as one snapshot when it closes, with nothing lost.

use std::time::Duration;

use doran_device::{
    Device, DeviceEvent, DeviceOptions, ErrorCode, MissionInput, Part,
    core::{
        store::{LocalStore, SqliteStore},
        sync::{COMPACT_STORED_AFTER, SyncConfig, SyncStatus},
        time_util::Lang,
    },
    events::RemovedReason,
    screens::SettingsView,
};
use doran_e2e::{
    Relay,
    devices::{
        WAIT, mission, mission_titles, notification_for, open, remote_change, up_to_date, wait_for,
    },
    png,
};
use doran_protocol::FamilyId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_through_the_facade_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let server = relay.url();

    // Step 1: two people, each on their own device, create accounts.
    let mom = open(&dir.path().join("mom")).await;
    let son = open(&dir.path().join("son")).await;
    let mut mom_events = mom.subscribe();
    let mut son_events = son.subscribe();
    let mom_account = mom
        .create_account(&server, "mom@example.com", "엄마곰")
        .await
        .expect("mom's account");
    let son_account = son
        .create_account(&server, "son@example.com", "아들곰")
        .await
        .expect("son's account");
    assert_eq!(mom_account.nickname, "엄마곰");
    assert!(mom_account.has_recovery_phrase);
    assert_eq!(
        mom.recovery_phrase().expect("phrase").split(' ').count(),
        24
    );

    // Step 2: mom creates a family and invites her son, who gets the invite live.
    let family = mom
        .create_family("우리 가족", "엄마")
        .await
        .expect("family created");
    let sent = mom
        .invite(&family, "son@example.com", "아들")
        .await
        .expect("invite sent");
    assert_eq!(sent.invitee, son_account.user);
    let invite = wait_for(&mut son_events, "the invite", |e| match e {
        DeviceEvent::InviteReceived(i) => Some(i.clone()),
        _ => None,
    })
    .await;
    assert_eq!(invite.invite, sent.invite);
    assert_eq!(invite.family_title, "우리 가족");
    assert_eq!(
        invite.text,
        "엄마 님이 '우리 가족' 가족에 아들로 초대했어요."
    );
    let bell = son.notifications().await.expect("the bell");
    assert_eq!(bell.unread, 1, "the invite is in the bell");
    assert_eq!(bell.items[0].invite.as_deref(), Some(sent.invite.as_str()));
    let mine = mom.invites().await.expect("invites");
    assert_eq!(mine.sent.len(), 1, "mom sees her pending invite");
    assert!(mine.received.is_empty());

    // Step 3: he accepts; mom's device sees him join.
    let joined = son
        .answer_invite(&invite.invite, true)
        .await
        .expect("accepted");
    assert_eq!(joined.as_deref(), Some(family.as_str()));
    wait_for(&mut mom_events, "the son's member entry", |e| match e {
        DeviceEvent::FamilyChanged {
            family: f,
            parts,
            local: false,
        } if *f == family && parts.contains(&Part::Members) => Some(()),
        _ => None,
    })
    .await;
    let view = mom.family(&family).await.expect("the family");
    assert_eq!(view.members.len(), 2);
    assert_eq!(view.members[0].name, "엄마", "host first");
    assert!(view.members[1].online, "the son is connected");
    assert_eq!(view.members[1].status.as_deref(), Some("접속중"));

    // Step 4: mom adds a mission; the son ticks it; mom gets it as an event.
    let mission = mom
        .add_mission(
            &family,
            MissionInput {
                title: "가족 사진 찍기".into(),
                participants: vec!["엄마".into(), "아들".into()],
                due: None,
            },
        )
        .await
        .expect("mission added");
    remote_change(&mut son_events, "the mission", Part::Missions).await;
    son.set_mission_done(&family, &mission, true)
        .await
        .expect("ticked");
    remote_change(&mut mom_events, "the son's tick", Part::Missions).await;
    let missions = mom.missions(&family, None).await.expect("missions");
    let card = &missions.month.missions[0];
    assert_eq!(card.id, mission);
    let son_tick = card
        .ticks
        .iter()
        .find(|t| t.name == "아들")
        .expect("a tick");
    assert!(son_tick.done_at.is_some(), "the son's tick arrived");

    // Step 5: the relay dies mid-way; both devices say offline; an edit is kept and
    // a relay call says "offline" at once, not after a long wait.
    relay.kill();
    wait_for(&mut mom_events, "offline", |e| match e {
        DeviceEvent::Sync(s) if s.status == SyncStatus::Offline => Some(()),
        _ => None,
    })
    .await;
    let event = mom
        .add_event(
            &family,
            doran_device::core::EventInput {
                title: "가족 모임".into(),
                start: "2026-12-24".into(),
                ..Default::default()
            },
        )
        .await
        .expect("edits work offline");
    assert_eq!(mom.sync_state().pending, 1, "kept and queued");
    let started = std::time::Instant::now();
    let offline = mom.invites().await.expect_err("no relay");
    assert_eq!(offline.code, ErrorCode::Offline);
    assert!(started.elapsed() < Duration::from_secs(10), "said at once");
    assert!(offline.message.contains("저장되어"), "{}", offline.message);

    // Step 6: the relay is back; both come back up to date by themselves, and the
    // edit made offline arrives.
    relay.restart();
    up_to_date(&mom, &mut mom_events).await;
    remote_change(&mut son_events, "the offline edit", Part::Calendar).await;
    let cal = son
        .calendar(&family, Some("2026-12"))
        .await
        .expect("the calendar");
    assert!(cal.events.iter().any(|e| e.id == event));
    // Its notification comes once arrivals have been quiet a moment (the pump gathers
    // a burst into one): waited for, so that the bell counted in step 7 is settled.
    notification_for(&mut son_events, "the offline edit's notification", &event).await;

    // Step 7: the son's settings: English, no family news, reactions on. An album from
    // mom then makes no notification for him, a like of his photo does; the language
    // changes what he reads.
    son.set_settings(SettingsView {
        language: "en".into(),
        notify_family: false,
        notify_reactions: true,
    })
    .await
    .expect("settings");
    assert_eq!(son.language(), Lang::En);
    let before = son.notifications().await.expect("bell").items.len();
    let album = mom.create_album(&family, "여름").await.expect("album");
    remote_change(&mut son_events, "the album", Part::Gallery).await;
    // The like comes after the album, so its notification comes once the album's
    // arrival has been through the pump, whose batch ends 300 ms after the album
    // arrived — before the son's photo went to mom and her like came back, as a rule
    // (in the same batch, the like's notification would be kept before the album's):
    // the bell then holds what the album made, if anything.
    let photo = son
        .add_photo_bytes(&family, &album, png(3), "수박")
        .await
        .expect("the son's photo");
    remote_change(&mut mom_events, "the son's photo", Part::Gallery).await;
    mom.like_photo(&family, &photo, true).await.expect("like");
    let liked = notification_for(&mut son_events, "the like's notification", &photo).await;
    assert_eq!(liked.kind, "like");
    let bell = son.notifications().await.expect("bell").items;
    assert_eq!(
        bell.len(),
        before + 1,
        "the like only: family news is off ({bell:?})"
    );
    let missions = son.missions(&family, None).await.expect("missions");
    assert_eq!(
        missions.month.label, "Just getting started",
        "one mission, not yet done by both: 0 %, in English"
    );

    // Step 8: mom removes her son, by his 호칭 (a name nobody has is refused and
    // removes no one). His device says so, keeps the family readable and refuses edits
    // with a clear error.
    let nobody = mom
        .remove_member(&family, "삼촌")
        .await
        .expect_err("nobody is called that");
    assert_eq!(nobody.code, ErrorCode::NotFound);
    assert!(nobody.message.contains("삼촌"), "{}", nobody.message);
    assert_eq!(mom.family(&family).await.expect("family").members.len(), 2);
    mom.remove_member(&family, "아들").await.expect("removed");
    let (removed, reason) = wait_for(&mut son_events, "the removal", |e| match e {
        DeviceEvent::RemovedFromFamily { family, reason, .. } => Some((family.clone(), *reason)),
        _ => None,
    })
    .await;
    assert_eq!(removed, family);
    assert_eq!(reason, RemovedReason::Removed);
    let families = son.families().await.expect("families");
    assert_eq!(families.len(), 1);
    assert!(!families[0].member, "marked as no longer a member");
    let still = son.family(&family).await.expect("still readable");
    assert_eq!(still.title, "우리 가족");
    assert!(!still.member);
    let refused = son
        .add_event(
            &family,
            doran_device::core::EventInput {
                title: "몰래".into(),
                start: "2026-12-25".into(),
                ..Default::default()
            },
        )
        .await
        .expect_err("a removed member cannot edit");
    assert_eq!(refused.code, ErrorCode::RemovedFromFamily);
    assert!(
        refused.message.contains("no longer a member"),
        "{}",
        refused.message
    );
    let bell = son.notifications().await.expect("bell");
    assert!(
        bell.items.iter().any(|n| n.kind == "removed"),
        "the removal is in the bell"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed_and_nothing_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let dad = open(&dir.path().join("dad")).await;

    // Before an account: a typed error, in the device's language.
    let none = dad.families().await.expect_err("no account");
    assert_eq!(none.code, ErrorCode::NoAccount);
    dad.create_account(&relay.url(), "dad@example.com", "아빠곰")
        .await
        .expect("account");
    let taken = open(&dir.path().join("other"))
        .await
        .create_account(&relay.url(), "DAD@example.com", "또아빠")
        .await
        .expect_err("the email is taken");
    assert_eq!(taken.code, ErrorCode::EmailTaken);

    let family = dad
        .create_family("캠핑 가족", "아빠")
        .await
        .expect("family");
    // The family's own first changes are on the relay: what is queued below is only
    // what the refused edits would have queued.
    dad.sync_now(WAIT).await.expect("synced");
    let too_long = dad
        .add_mission(
            &family,
            MissionInput {
                title: "이 미션 제목은 열일곱 글자를 훌쩍 넘어요".into(),
                ..MissionInput::default()
            },
        )
        .await
        .expect_err("too long");
    assert_eq!(too_long.code, ErrorCode::InvalidInput);
    assert_eq!(too_long.field, Some("mission_title"));
    assert!(
        too_long
            .message
            .starts_with("미션 제목은 17자까지 쓸 수 있어요"),
        "{}",
        too_long.message
    );
    let unknown = dad
        .add_mission(
            &family,
            MissionInput {
                title: "산책".into(),
                participants: vec!["할머니".into()],
                due: None,
            },
        )
        .await
        .expect_err("no such member");
    assert_eq!(unknown.code, ErrorCode::NotFound);
    let nobody = dad
        .invite(&family, "nobody@example.com", "삼촌")
        .await
        .expect_err("nobody has that email");
    assert_eq!(nobody.code, ErrorCode::NoSuchUser);
    assert_eq!(
        dad.pending().await.expect("pending"),
        0,
        "nothing was queued"
    );
    assert_eq!(
        dad.missions(&family, None)
            .await
            .expect("missions")
            .month
            .total,
        0
    );
    // A family by its title works where ids do.
    assert_eq!(
        dad.family("캠핑 가족").await.expect("by title").family,
        family
    );
}

/// A relay started with `config` (relay.json) in `dir`.
fn relay_with(dir: &std::path::Path, config: &str) -> Relay {
    let relay_dir = dir.join("relay");
    std::fs::create_dir_all(&relay_dir).expect("relay dir");
    let file = relay_dir.join("relay.json");
    std::fs::write(&file, config).expect("config");
    Relay::start_with(
        &relay_dir,
        "127.0.0.1:0",
        &["--config", &file.display().to_string()],
    )
}

/// Mom and dad, each on their own device (opened with `options`), signed up on
/// `relay`, in a family mom hosts. Returns both devices, the family and mom's user.
async fn mom_and_dad(
    dir: &std::path::Path,
    relay: &Relay,
    options: impl Fn() -> DeviceOptions,
) -> (Device, Device, String, String) {
    let mom = Device::open(dir.join("mom"), options())
        .await
        .expect("opens");
    let dad = Device::open(dir.join("dad"), options())
        .await
        .expect("opens");
    let mom_user = mom
        .create_account(&relay.url(), "mom@example.com", "엄마곰")
        .await
        .expect("account")
        .user;
    dad.create_account(&relay.url(), "dad@example.com", "아빠곰")
        .await
        .expect("account");
    let family = mom
        .create_family("바다 가족", "엄마")
        .await
        .expect("family");
    let invite = mom
        .invite(&family, "dad@example.com", "아빠")
        .await
        .expect("invite");
    dad.answer_invite(&invite.invite, true)
        .await
        .expect("accepted");
    (mom, dad, family, mom_user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_photo_files_neither_block_uploads_nor_show() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom, dad, family, _) = mom_and_dad(dir.path(), &relay, DeviceOptions::default).await;
    let album = mom.create_album(&family, "여름").await.expect("album");
    mom.sync_now(WAIT).await.expect("synced");

    // Offline, mom adds two photos; both wait on her phone for the relay.
    relay.kill();
    let first = mom
        .add_photo_bytes(&family, &album, png(1), "첫 번째")
        .await
        .expect("saved offline");
    let second = mom
        .add_photo_bytes(&family, &album, png(2), "두 번째")
        .await
        .expect("saved offline");
    let damaged = mom
        .photo_file(&family, &first, false)
        .await
        .expect("the first photo")
        .expect("its display copy is here");
    let whole = std::fs::read(
        mom.photo_file(&family, &second, false)
            .await
            .expect("the second photo")
            .expect("its display copy is here"),
    )
    .expect("read");
    mom.close().await;
    drop(mom);
    // The first photo's display copy comes back empty, as a power cut can leave a
    // file whose name was written but not its bytes.
    std::fs::write(&damaged, b"").expect("damage");

    relay.restart();
    let mom = open(&dir.path().join("mom")).await;
    let report = mom.sync_now(WAIT).await.expect("synced");
    assert_eq!(
        report.pending_blobs, 0,
        "the lost file leaves the queue and the rest go up: {report:?}"
    );
    assert!(report.up_to_date, "{report:?}");
    assert_eq!(
        mom.photo_file(&family, &first, false)
            .await
            .expect("the first photo"),
        None,
        "the damaged file is not offered as the photo"
    );

    // Dad gets the second photo whole, and the first one's thumbnail.
    dad.sync_now(WAIT).await.expect("synced");
    let got = dad
        .fetch_photo(&family, &second, false)
        .await
        .expect("the second photo arrives");
    assert_eq!(std::fs::read(&got).expect("read"), whole);
    dad.fetch_photo(&family, &first, true)
        .await
        .expect("the first photo's thumbnail arrives");
    assert!(
        dad.fetch_photo(&family, &first, false).await.is_err(),
        "the lost display copy was never uploaded"
    );

    // A downloaded copy that comes back empty on dad's device is fetched again.
    dad.close().await;
    drop(dad);
    std::fs::write(&got, b"").expect("damage");
    let dad = open(&dir.path().join("dad")).await;
    let mut dad_events = dad.subscribe();
    assert_eq!(
        dad.photo_file(&family, &second, false)
            .await
            .expect("the second photo"),
        None,
        "an empty copy is not offered; it is fetched again"
    );
    wait_for(&mut dad_events, "the photo fetched again", |e| match e {
        DeviceEvent::BlobArrived { .. } => Some(()),
        _ => None,
    })
    .await;
    let again = dad
        .photo_file(&family, &second, false)
        .await
        .expect("the second photo")
        .expect("here again");
    assert_eq!(std::fs::read(again).expect("read"), whole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_refused_by_a_full_family_log_wait_for_a_snapshot_and_arrive() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A family log that holds about fifteen missions' worth of changes.
    let relay = relay_with(dir.path(), r#"{"limits":{"family_log_quota_bytes":12000}}"#);
    let quick = || DeviceOptions {
        sync: SyncConfig {
            retry_refused_after_ms: 200,
            ..SyncConfig::default()
        },
        ..DeviceOptions::default()
    };
    let (mom, dad, family, _) = mom_and_dad(dir.path(), &relay, quick).await;
    mom.sync_now(WAIT).await.expect("synced");
    dad.sync_now(WAIT).await.expect("synced");

    // Mom adds more missions than the log holds: the relay refuses the later pushes
    // (`document_full`), and each is saved on her phone all the same.
    let total = 60;
    for i in 0..total {
        mom.add_mission(
            &family,
            MissionInput {
                title: format!("등산 {i}"),
                ..MissionInput::default()
            },
        )
        .await
        .expect("saved");
    }
    // Her phone compacts the log; dad's confirms the snapshot, which frees it; the
    // kept edits go again and every one reaches dad.
    let mut dad_events = dad.subscribe();
    let arrived = tokio::time::timeout(WAIT, async {
        loop {
            let seen = dad
                .missions(&family, None)
                .await
                .expect("missions")
                .month
                .total;
            if seen == total {
                return;
            }
            dad_events.next().await.expect("dad's device is open");
        }
    })
    .await;
    assert!(
        arrived.is_ok(),
        "dad has {} of {total} missions; mom has {} changes waiting",
        dad.missions(&family, None)
            .await
            .expect("missions")
            .month
            .total,
        mom.pending().await.expect("pending")
    );
    let report = mom.sync_now(WAIT).await.expect("synced");
    assert!(report.up_to_date && report.pending == 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_photo_does_not_hold_up_the_uploads_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A family blob quota too small for a display copy; the avatar counts elsewhere.
    let mut relay = relay_with(dir.path(), r#"{"limits":{"family_quota_bytes":600}}"#);
    let (mom, dad, family, mom_user) =
        mom_and_dad(dir.path(), &relay, DeviceOptions::default).await;
    let album = mom.create_album(&family, "여름").await.expect("album");
    mom.sync_now(WAIT).await.expect("synced");

    // Offline, mom adds a photo (too big for the family's quota), then a new avatar.
    relay.kill();
    mom.add_photo_bytes(&family, &album, png(3), "")
        .await
        .expect("saved offline");
    let avatar = dir.path().join("avatar.png");
    std::fs::write(&avatar, png(4)).expect("avatar file");
    mom.update_profile(doran_device::ProfileChanges {
        avatar_file: Some(avatar),
        ..Default::default()
    })
    .await
    .expect("saved offline");
    relay.restart();

    // The photo is refused and stays queued; the avatar behind it goes up.
    let report = mom.sync_now(WAIT).await.expect("synced");
    assert!(
        report.pending_blobs >= 1 && !report.up_to_date,
        "the refused photo stays queued: {report:?}"
    );
    dad.sync_now(WAIT).await.expect("synced");
    assert!(
        dad.avatar_file(Some(&mom_user))
            .await
            .expect("mom's avatar arrives")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_cut_short_offline_is_finished_by_trying_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom, dad, family, _) = mom_and_dad(dir.path(), &relay, DeviceOptions::default).await;
    dad.sync_now(WAIT).await.expect("synced");

    // Dad leaves with no network: his entry is removed on his phone, and the
    // relay cannot be told.
    relay.kill();
    let offline = dad.leave_family(&family).await.expect_err("offline");
    assert_eq!(offline.code, ErrorCode::Offline, "{}", offline.message);
    // Back online (his phone has signed in again and sent the removal), trying again
    // finishes the leave.
    let mut dad_events = dad.subscribe();
    relay.restart();
    up_to_date(&dad, &mut dad_events).await;
    dad.leave_family(&family).await.expect("left");
    assert!(
        dad.families().await.expect("families").is_empty(),
        "the family is gone from his phone"
    );
    mom.sync_now(WAIT).await.expect("synced");
    let members = mom.family(&family).await.expect("family").members;
    assert_eq!(
        members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["엄마"],
        "mom's family no longer lists him"
    );
}

/// Every edit and every chunk received is a row of the device's store, which each
/// start replays on top of the snapshot. A device whose family grew by more than
/// `COMPACT_STORED_AFTER` rows writes it as one snapshot when it closes (as the command
/// line does after every command; an app does it when idle too). Nothing is lost: the
/// device opened again shows every mission, and so does the son's, which got them
/// from the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_leaves_its_stored_copy_short_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let server = relay.url();
    let m = doran_e2e::devices::mom_and_son(dir.path(), &server).await;
    let (mom, mut mom_events, family) = (m.mom, m.mom_events, m.family);
    let titles: Vec<String> = (0..COMPACT_STORED_AFTER + 10)
        .map(|i| format!("미션 {i:03}"))
        .collect();
    for title in &titles {
        mom.add_mission(&family, mission(title, &["엄마"]))
            .await
            .expect("mission added");
    }
    up_to_date(&mom, &mut mom_events).await;
    // (Missions made this year are kept in this year's volume.)
    let doc = doran_e2e::this_years_volume(family.parse::<FamilyId>().expect("family id"));
    let tail = || {
        SqliteStore::open(m.mom_home.join("device.sqlite"))
            .expect("mom's store")
            .tail_len(doc)
            .expect("its tail")
    };
    assert!(tail() > COMPACT_STORED_AFTER, "every edit is a row");

    mom.close().await;
    assert_eq!(tail(), 0, "closing left the family as one snapshot");
    drop(mom);

    let mut expected = titles.clone();
    expected.sort();
    let again = open(&m.mom_home).await;
    assert_eq!(mission_titles(&again, &family).await, expected);
    let son = m.son;
    doran_e2e::devices::until("the son's device to hold every mission", async || {
        let shown = mission_titles(&son, &family).await;
        if shown == expected {
            Ok(())
        } else {
            Err(shown.len())
        }
    })
    .await;
}
