//! Devices driven through the `Device` facade: open one, wait for an event, wait
//! until it is up to date — with one deadline, so a hang fails instead of stalling.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use doran_device::{
    Device, DeviceEvent, DeviceOptions, ErrorCode, MissionInput, Part, Subscription,
    core::{
        Actor, FamilyDoc,
        family_store::open_family,
        store::{LocalStore, SqliteStore},
        sync::SyncStatus,
    },
    screens::{AccountView, NotificationView},
};
use doran_protocol::{DeviceId, DocId, FamilyId, UserId};

/// How long a test waits for anything a device should do.
pub const WAIT: Duration = Duration::from_secs(30);

/// Opens the device at `home` with the default options.
pub async fn open(home: &Path) -> Device {
    Device::open(home, DeviceOptions::default())
        .await
        .expect("the device opens")
}

/// Opens the device at `home` creating families in the clear: for scenarios about the
/// relay's answers (a proxy losing "the next answer" cannot tell a membership answer
/// from the key work a sealed family's devices ask the relay for meanwhile).
pub async fn open_clear(home: &Path) -> Device {
    let options = DeviceOptions {
        seal_new_families: false,
        ..DeviceOptions::default()
    };
    Device::open(home, options).await.expect("the device opens")
}

/// Waits for the first event `pick` accepts, failing after [`WAIT`].
pub async fn wait_for<T>(
    events: &mut Subscription,
    what: &str,
    mut pick: impl FnMut(&DeviceEvent) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            if let Some(v) = pick(&event) {
                return Some(v);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(v)) => v,
        Ok(None) => panic!("the device closed before {what}"),
        Err(_) => panic!("no {what} within {WAIT:?}"),
    }
}

/// Waits until `check` is done (`Ok`), looking every 50 ms, failing after [`WAIT`]
/// with `what` and what `check` saw last.
pub async fn until<T: std::fmt::Debug>(what: &str, mut check: impl AsyncFnMut() -> Result<(), T>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = match check().await {
            Ok(()) => return,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what} within {WAIT:?}; seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The user's only phone (at `home`, the device holding the user key) escrows the
/// keys of the group whose key log is `key_log` — waited for on the relay — and is
/// lost with its folder; a new phone at `new_home` is restored from the recovery
/// phrase alone.
pub async fn phone_lost_and_restored(
    relay: &crate::Relay,
    (phone, home): (Device, &Path),
    key_log: DocId,
    new_home: &Path,
) -> Device {
    until("an escrow entry", async || {
        let log = crate::relay_chunks(relay, key_log);
        if log.iter().any(|e| e.starts_with(b"DRE\x02")) {
            Ok(())
        } else {
            Err(log.len())
        }
    })
    .await;
    phone.sync_now(WAIT).await.expect("synced");
    let phrase = phone.recovery_phrase().expect("the phrase");
    phone.close().await;
    drop(phone);
    std::fs::remove_dir_all(home).expect("the phone is lost");
    let again = open(new_home).await;
    again
        .restore_account(&relay.url(), &phrase)
        .await
        .expect("restored from the phrase");
    again
}

/// Waits for the next invite `events` announce, and returns its id.
pub async fn invite_received(events: &mut Subscription) -> String {
    wait_for(events, "the invite", |e| match e {
        DeviceEvent::InviteReceived(i) => Some(i.invite.clone()),
        _ => None,
    })
    .await
}

/// Waits for a change to `part` of a family that came from another device.
pub async fn remote_change(events: &mut Subscription, what: &str, part: Part) {
    wait_for(events, what, |e| match e {
        DeviceEvent::FamilyChanged {
            parts,
            local: false,
            ..
        } if parts.contains(&part) => Some(()),
        _ => None,
    })
    .await;
}

/// Waits for the notification that points at `target` (a photo, an event, a
/// mission), and returns it.
pub async fn notification_for(
    events: &mut Subscription,
    what: &str,
    target: &str,
) -> NotificationView {
    wait_for(events, what, |e| match e {
        DeviceEvent::Notification(n) if n.target.as_deref() == Some(target) => Some(n.clone()),
        _ => None,
    })
    .await
}

/// Waits until the device says it is up to date with nothing pending.
pub async fn up_to_date(device: &Device, events: &mut Subscription) {
    if device.sync_state().status == SyncStatus::UpToDate && device.sync_state().pending == 0 {
        return;
    }
    wait_for(events, "up to date", |e| match e {
        DeviceEvent::Sync(s) if s.status == SyncStatus::UpToDate && s.pending == 0 => Some(()),
        _ => None,
    })
    .await;
}

/// Links `new` (a device with no account) to the account signed in on `first`, with
/// the relay at `server`, as a person does on two screens: a code from `first`, typed
/// on `new`, which waits; `first` is asked, both show the same fingerprint, and
/// `first` confirms. Returns the new device's account.
pub async fn link_and_confirm(first: &Device, new: &Device, server: &str) -> AccountView {
    let mut asked = first.subscribe();
    let mut waiting = new.subscribe();
    let code = first.issue_link_code().await.expect("a link code");
    let confirm = async {
        let request = wait_for(&mut asked, "a link request", |e| match e {
            DeviceEvent::LinkRequested(l) => Some(l.clone()),
            _ => None,
        })
        .await;
        let shown = wait_for(&mut waiting, "the new device waiting", |e| match e {
            DeviceEvent::LinkWaiting { fingerprint } => Some(fingerprint.clone()),
            _ => None,
        })
        .await;
        assert_eq!(shown, request.fingerprint, "both screens show one key");
        first
            .confirm_link(&request.link, true)
            .await
            .expect("confirmed");
    };
    let (linked, ()) = tokio::join!(new.link_device(server, &code.code), confirm);
    linked.expect("linked once confirmed")
}

/// Mom, who hosts "우리 가족" as 엄마, and her son, who joined as 아들: a device each,
/// signed in to the relay and up to date.
#[derive(Debug)]
pub struct MomAndSon {
    /// The family's id.
    pub family: String,
    /// Mom's device, its events, its home folder and her account.
    pub mom: Device,
    pub mom_events: Subscription,
    pub mom_home: PathBuf,
    pub mom_account: AccountView,
    /// The son's.
    pub son: Device,
    pub son_events: Subscription,
    pub son_home: PathBuf,
    pub son_account: AccountView,
}

/// Mom's and her son's accounts on `server` ("엄마곰", "아들곰") and mom's family
/// "우리 가족", where she is "엄마": the start most scenarios share. Returns both
/// accounts and the family's id.
pub async fn accounts_and_family(
    mom: &Device,
    son: &Device,
    server: &str,
) -> (AccountView, AccountView, String) {
    let mom_account = mom
        .create_account(server, "mom@example.com", "엄마곰")
        .await
        .expect("mom's account");
    let son_account = son
        .create_account(server, "son@example.com", "아들곰")
        .await
        .expect("son's account");
    let family = mom
        .create_family("우리 가족", "엄마")
        .await
        .expect("family created");
    (mom_account, son_account, family)
}

/// Mom and her son (see [`MomAndSon`]), their devices in `dir/mom` and `dir/son`.
pub async fn mom_and_son(dir: &Path, server: &str) -> MomAndSon {
    let (mom_home, son_home) = (dir.join("mom"), dir.join("son"));
    let mom = open(&mom_home).await;
    let son = open(&son_home).await;
    let mut mom_events = mom.subscribe();
    let mut son_events = son.subscribe();
    let (mom_account, son_account, family) = accounts_and_family(&mom, &son, server).await;
    mom.invite(&family, "son@example.com", "아들")
        .await
        .expect("invite sent");
    let invite = invite_received(&mut son_events).await;
    son.answer_invite(&invite, true).await.expect("accepted");
    up_to_date(&son, &mut son_events).await;
    up_to_date(&mom, &mut mom_events).await;
    MomAndSon {
        family,
        mom,
        mom_events,
        mom_home,
        mom_account,
        son,
        son_events,
        son_home,
        son_account,
    }
}

/// The family document as the device at `home` stores it, opened from its store
/// directly as `user` (any user id) on a device id of its own — what a modified client
/// does to write as it likes (changes it commits to the store are pushed by the
/// device's next sync: stop the device's sync first), or a test to see what was kept.
pub fn stored_family(
    home: &Path,
    family: &str,
    user: &str,
) -> (Arc<dyn LocalStore>, DocId, FamilyDoc) {
    let doc = DocId::from(family.parse::<FamilyId>().expect("family id"));
    let store: Arc<dyn LocalStore> =
        Arc::new(SqliteStore::open(home.join("device.sqlite")).expect("the device's store"));
    let actor = Actor {
        user: user.parse::<UserId>().expect("user id"),
        device: DeviceId::random(),
    };
    let fd = open_family(&*store, doc, &actor).expect("the device's copy");
    (store, doc, fd)
}

/// A mission for `who` (호칭s), with no due date.
pub fn mission(title: &str, who: &[&str]) -> MissionInput {
    MissionInput {
        title: title.into(),
        participants: who.iter().map(|w| (*w).to_owned()).collect(),
        due: None,
    }
}

/// The titles of the family's missions this month as `device` shows them, sorted (none
/// while it waits for the family, or for its keys).
pub async fn mission_titles(device: &Device, family: &str) -> Vec<String> {
    match device.missions(family, None).await {
        Ok(view) => {
            let mut t: Vec<String> = view
                .month
                .missions
                .iter()
                .map(|m| m.title.clone())
                .collect();
            t.sort();
            t
        }
        Err(e) if matches!(e.code, ErrorCode::WaitingForKeys | ErrorCode::UnknownFamily) => {
            Vec::new()
        }
        Err(e) => panic!("missions: {e:?}"),
    }
}

/// Waits until `device` shows a mission titled `title` in the family.
pub async fn sees_mission(device: &Device, family: &str, title: &str) {
    until(&format!("mission {title:?}"), async || {
        let shown = mission_titles(device, family).await;
        if shown.iter().any(|t| t == title) {
            Ok(())
        } else {
            Err(shown)
        }
    })
    .await;
}
