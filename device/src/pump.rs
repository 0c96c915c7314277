//! The background work of a syncing [`Device`](crate::Device): the sync driver's
//! loop, the pump that turns what the driver reports into [`DeviceEvent`]s (and
//! notifications, membership, presence), and the blob uploader.
//!
//! Each task holds the device's shared state and its session, never a `Device`
//! handle: when the app drops its last handle, the tasks are aborted.

use std::{sync::Arc, time::Duration};

use doran_client_core::{
    model::Family,
    store::Membership,
    sync::{DocKind, SyncStatus, doubling},
    time_util::Lang,
    views::{self, Activity, ActivityKind, Notification, Presence},
};
use doran_protocol::{
    ErrorCode as Wire, FamilyId, MembershipChange, Request, Response, ServerEvent,
};
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};
use tracing::Instrument;

use crate::{
    account::Account,
    device::notifications::record_of,
    device::{KEEP_NOTIFICATIONS, Session, Shared, lock, now_ms},
    driver::SyncEvent,
    error::Error,
    events::{DeviceEvent, Part, RemovedReason},
    media_check::Expect,
    screens::{NotificationView, PendingLinkView, SyncView},
    sync_error::SyncError,
};

/// How long the uploader waits before trying a failed upload again the first time
/// (ms): most failures are short (a relay busy for a moment, an upload that gave way
/// to another, a dropped connection), and the family waits for the photo meanwhile.
const UPLOAD_RETRY_FIRST_MS: u64 = 2_000;
/// The longest wait between two tries (each failure in a row doubles the wait).
const UPLOAD_RETRY_MAX_MS: u64 = 5 * 60 * 1000;

/// The wait after `failures` failed passes in a row (1 for the first).
fn upload_retry(failures: u32) -> Duration {
    Duration::from_millis(doubling(
        UPLOAD_RETRY_FIRST_MS,
        failures.saturating_sub(1),
        UPLOAD_RETRY_MAX_MS,
    ))
}

/// What the uploader last told the user about a refusal that lasts (a full quota, a
/// file too large): said once, not at every try — again when it changes, or after
/// the user queued another blob (they acted: the answer may be news to them).
#[derive(Debug, Default)]
struct Told(Option<Wire>);

impl Told {
    /// Whether a pass refused with `code` is news to the user (noting it).
    fn news(&mut self, code: Wire) -> bool {
        self.0.replace(code) != Some(code)
    }

    /// Forgets what was said (a pass that uploaded everything, a blob queued).
    fn forget(&mut self) {
        self.0 = None;
    }
}

/// Starts the background tasks of a session: returns the pump, which stops by itself
/// when told (`Session::stopping`) after announcing what it still holds, and the tasks
/// to abort when the session stops (the driver's loop and the uploader).
pub(crate) fn spawn(
    shared: Arc<Shared>,
    session: Arc<Session>,
) -> (JoinHandle<()>, Vec<JoinHandle<()>>) {
    // Subscribed before the driver runs, so nothing it says is missed.
    let events = session.driver.subscribe();
    let state = session.driver.state();
    let rt = shared.runtime.clone();
    // Every log line of the session's tasks names the device (the first bytes of its
    // id): several devices in one process (tests, a desktop app's second account)
    // stay apart in the logs.
    let span = tracing::info_span!("device", id = %&session.account.device.to_hex()[..8]);
    // Subscribed here, before the pump runs: a stop from now on is heard.
    let stop = session.stopping.subscribe();
    let pump = rt.spawn(
        pump(
            Arc::clone(&shared),
            Arc::clone(&session),
            (events, state),
            stop,
        )
        .instrument(span.clone()),
    );
    let mut tasks = vec![
        rt.spawn(run_driver(Arc::clone(&shared), Arc::clone(&session)).instrument(span.clone())),
        rt.spawn(upload(Arc::clone(&shared), Arc::clone(&session)).instrument(span.clone())),
    ];
    let (kick, kicks) = tokio::sync::mpsc::unbounded_channel();
    *lock(&session.keys_kick) = Some(kick);
    tasks.push(rt.spawn(crate::keys::run(shared, session, kicks).instrument(span)));
    (pump, tasks)
}

/// Keeps the driver connected; it only stops when the relay refuses this device for
/// good (revoked), and then the account is signed out here.
async fn run_driver(shared: Arc<Shared>, session: Arc<Session>) {
    let Err(e) = session.driver.run().await else {
        return;
    };
    tracing::warn!(error = %e, "the relay refuses this device for good");
    let lang = shared.lang();
    let message = Error::from_sync(&e, lang).message;
    if matches!(
        e,
        SyncError::Auth {
            code: Wire::DeviceRevoked | Wire::UnknownDevice | Wire::UnknownUser,
            ..
        }
    ) {
        let store = Arc::clone(&shared.store);
        let secrets = Arc::clone(&shared.secrets);
        let signed_out =
            crate::task::spawn_blocking(move || Account::sign_out(&*store, &*secrets)).await;
        if !matches!(signed_out, Ok(Ok(()))) {
            tracing::error!("could not remove the revoked account from this device");
        }
        *shared
            .session
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        shared.emit(DeviceEvent::SignedOut { message });
    } else {
        shared.emit(DeviceEvent::Error(Error::from_sync(&e, lang)));
    }
}

/// Uploads queued blobs whenever there are some and the relay is reachable.
async fn upload(shared: Arc<Shared>, session: Arc<Session>) {
    let mut state = session.driver.state();
    let mut failures: u32 = 0;
    let mut told = Told::default();
    loop {
        if state.borrow_and_update().status.is_connected() {
            match session.blobs.upload_pending(session.driver.blobs()).await {
                Ok(n) => {
                    failures = 0;
                    told.forget();
                    if n > 0 {
                        tracing::debug!(uploaded = n, "blobs uploaded");
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::info!(error = %e, "a blob upload failed; it stays queued");
                    if let SyncError::Refused { code, .. } = &e
                        && !code.is_transient()
                        && told.news(*code)
                    {
                        shared.emit(DeviceEvent::Error(Error::from_sync(&e, shared.lang())));
                    }
                    // Also at once when the connection comes back (a new sign-in):
                    // a failure while it was going says nothing of the next one.
                    let signed_in = state.borrow().sign_ins;
                    let retry = tokio::time::sleep(upload_retry(failures));
                    tokio::pin!(retry);
                    loop {
                        tokio::select! {
                            () = &mut retry => break,
                            () = session.upload_kick.notified() => {
                                told.forget();
                                break;
                            }
                            changed = state.changed() => {
                                if changed.is_err() {
                                    return;
                                }
                                if state.borrow_and_update().sign_ins != signed_in {
                                    failures = 0;
                                    break;
                                }
                            }
                        }
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            // A blob queued (maybe while offline): a refusal is news again.
            () = session.upload_kick.notified() => told.forget(),
            changed = state.changed() => if changed.is_err() { return },
        }
    }
}

/// Turns what the driver reports into device events.
async fn pump(
    shared: Arc<Shared>,
    session: Arc<Session>,
    (mut events, mut state): (
        tokio::sync::broadcast::Receiver<SyncEvent>,
        tokio::sync::watch::Receiver<crate::driver::SyncState>,
    ),
    mut stop: tokio::sync::watch::Receiver<u64>,
) {
    let mut last = *state.borrow_and_update();
    shared.emit(DeviceEvent::Sync(view_of(last)));
    let mut arriving = Arriving::default();
    // The sign-in after which unfinished membership changes were last mended, and the
    // mending itself: a task of its own, since it may wait on the relay, and the pump
    // must keep announcing and hear `stopping` meanwhile. Ended with the pump.
    let mut mended = 0;
    let mut mending = Background(None);
    // Presence is asked in a task of its own too: a pump waiting on the relay does not
    // hear a stop, and a stop aborts the driver that would have answered.
    let mut presence = Background(None);
    loop {
        let quiet = arriving.flush_at;
        tokio::select! {
            _ = stop.changed() => {
                // Stopping: announce what was gathered; what is still queued in the
                // driver's channel is handled first.
                while let Ok(event) = events.try_recv() {
                    on_sync_event(&shared, &session, &mut arriving, event).await;
                }
                arriving.flush(&shared, &session).await;
                return;
            }
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *state.borrow_and_update();
                if (now.status, now.pending) != (last.status, last.pending) {
                    shared.emit(DeviceEvent::Sync(view_of(now)));
                }
                if now.sign_ins != last.sign_ins {
                    let (s, se) = (Arc::clone(&shared), Arc::clone(&session));
                    let asking = shared.runtime.clone().spawn(async move {
                        refresh_presence(&s, &se).await;
                    });
                    // A sign-in's presence replaces the one before (a handle dropped
                    // does not stop its task).
                    if let Some(before) = presence.0.replace(asking) {
                        before.abort();
                    }
                    session.publish_key_package();
                    kick_all_keys(&session).await;
                }
                if now.status == SyncStatus::UpToDate {
                    // Caught up: whatever arrived is the whole batch.
                    arriving.flush(&shared, &session).await;
                    let again = session
                        .mend_again
                        .swap(false, std::sync::atomic::Ordering::SeqCst);
                    if now.sign_ins != mended || again {
                        // Caught up with the relay's list of families: finish what an
                        // interruption left half-done against it.
                        mended = now.sign_ins;
                        if mending.0.as_ref().is_none_or(JoinHandle::is_finished) {
                            let (shared, session) = (Arc::clone(&shared), Arc::clone(&session));
                            mending.0 = Some(shared.runtime.clone().spawn(async move {
                                crate::mend::mend(&shared, &session).await;
                                // Failures stay in the outbox for the next sign-in.
                                let _ = crate::certs::publish(
                                    &shared.store,
                                    &session.driver,
                                    &session.account,
                                )
                                .await;
                            }));
                        }
                    }
                }
                last = now;
            }
            event = events.recv() => match event {
                Ok(event) => on_sync_event(&shared, &session, &mut arriving, event).await,
                Err(RecvError::Lagged(_)) => shared.emit(DeviceEvent::Resync),
                Err(RecvError::Closed) => return,
            },
            () = sleep_until_or_forever(quiet) => arriving.flush(&shared, &session).await,
        }
    }
}

/// Asks the key task to step every sealed family this device knows (a sign-in, a
/// device added or revoked).
async fn kick_all_keys(session: &Arc<Session>) {
    for family in crate::keys::sealed_families(session).await {
        session.kick_keys(family);
    }
}

/// A task of the pump's (the mending, the presence asked after a sign-in), aborted
/// when the pump ends.
struct Background(Option<JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// How long the pump waits for more of a batch before it announces what arrived: a
/// tick taken back, or seven photos in a row, arrive as several chunks a few
/// milliseconds apart and must make one notification about how things ended up.
const BATCH_QUIET: Duration = Duration::from_millis(300);

/// New activity received and not announced yet, by family.
#[derive(Default)]
struct Arriving {
    items: std::collections::BTreeMap<FamilyId, Vec<Activity>>,
    flush_at: Option<tokio::time::Instant>,
}

impl Arriving {
    fn add(&mut self, family: FamilyId, items: Vec<Activity>) {
        if items.is_empty() {
            return;
        }
        self.items.entry(family).or_default().extend(items);
        self.flush_at = Some(tokio::time::Instant::now() + BATCH_QUIET);
    }

    async fn flush(&mut self, shared: &Arc<Shared>, session: &Arc<Session>) {
        self.flush_at = None;
        for (family, items) in std::mem::take(&mut self.items) {
            notify_activity(shared, session, family, items).await;
        }
    }
}

async fn sleep_until_or_forever(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn view_of(s: crate::driver::SyncState) -> SyncView {
    SyncView {
        status: s.status,
        pending: s.pending,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    crate::task::spawn_blocking(f).await.ok()
}

async fn on_sync_event(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    arriving: &mut Arriving,
    event: SyncEvent,
) {
    match event {
        SyncEvent::DocChanged {
            kind: DocKind::Family(family) | DocKind::Volume(family, _),
            touched,
            new_activity,
            ..
        } => {
            let parts = Part::of_touched(&touched);
            if !parts.is_empty() {
                shared.emit(DeviceEvent::FamilyChanged {
                    family: family.to_hex(),
                    parts,
                    local: false,
                });
            }
            prefetch_thumbnails(shared, session, family, &touched).await;
            arriving.add(family, new_activity);
        }
        SyncEvent::DocChanged {
            kind: DocKind::Personal(user),
            ..
        } => {
            if user == session.account.user {
                refresh_language(shared, session).await;
            }
            shared.emit(DeviceEvent::ProfileChanged {
                user: user.to_hex(),
            });
        }
        SyncEvent::Server(event) => on_server_event(shared, session, event).await,
        SyncEvent::Memberships(changes) => {
            for (family, membership) in changes {
                match membership {
                    Membership::Member => shared.emit(DeviceEvent::FamilyJoined {
                        family: family.to_hex(),
                    }),
                    Membership::Removed => {
                        removed(shared, session, family, RemovedReason::Removed, false).await;
                    }
                }
            }
        }
        SyncEvent::DocDropped { doc, code } => {
            // A family document the relay no longer lets this user read.
            let family = FamilyId(doc.0);
            let host = Arc::clone(&session.host);
            let is_family = blocking(move || host.families())
                .await
                .and_then(Result::ok)
                .is_some_and(|f| f.contains(&family));
            if is_family && matches!(code, Wire::Forbidden | Wire::NotFound) {
                let reason = if code == Wire::NotFound {
                    RemovedReason::Deleted
                } else {
                    RemovedReason::Removed
                };
                removed(shared, session, family, reason, true).await;
            }
        }
        // The driver says `Keys` for key logs; nothing to show.
        SyncEvent::DocChanged {
            kind: DocKind::KeyLog(_),
            ..
        } => {}
        SyncEvent::Keys { family } => {
            session.kick_keys(family);
        }
        SyncEvent::Error(e) => {
            // Refused changes, full quotas and altered data are for the user; the
            // rest is logged.
            let for_the_user = match &*e {
                SyncError::Refused { code, .. } => matches!(
                    code,
                    Wire::QuotaExceeded | Wire::TooLarge | Wire::Forbidden | Wire::InvalidInput
                ),
                SyncError::Tampered { .. } => true,
                _ => false,
            };
            if for_the_user {
                shared.emit(DeviceEvent::Error(Error::from_sync(&e, shared.lang())));
            } else {
                tracing::debug!(error = %e, "sync error");
            }
        }
    }
}

async fn on_server_event(shared: &Arc<Shared>, session: &Arc<Session>, event: ServerEvent) {
    let me = session.account.user;
    let lang = shared.lang();
    match event {
        ServerEvent::InviteReceived(info) => {
            let card = {
                let known = crate::device::invites::inviters_known(
                    &shared.store,
                    &session.driver,
                    [info.inviter],
                )
                .await;
                let host = Arc::clone(&session.host);
                let info = info.clone();
                crate::task::spawn_blocking(move || {
                    crate::device::invites::open_card(&host, &info, &known)
                })
                .await
                .unwrap_or_default()
            };
            let view = crate::device::invites::invite_view(&info, card.as_ref(), lang);
            keep_notification(
                shared,
                NotificationView {
                    id: format!("invite/{}", info.invite),
                    kind: "invite".into(),
                    family: Some(info.family.to_hex()),
                    actor: Some(info.inviter.to_hex()),
                    at: i64::try_from(info.created_at).unwrap_or(i64::MAX),
                    count: 1,
                    text: view.text.clone(),
                    invite: Some(info.invite.to_hex()),
                    target: None,
                    group: None,
                    read: false,
                    ago: String::new(),
                },
            )
            .await;
            shared.emit(DeviceEvent::InviteReceived(view));
        }
        ServerEvent::InviteAnswered {
            invite,
            family,
            invitee,
            accepted,
        } => {
            if !accepted {
                // Turned down: the devices added as the invite went out leave the
                // family's key group, and its record in the document goes.
                session.kick_keys(family);
                crate::device::invites::forget_invite_record(session, family, invitee).await;
            }
            shared.emit(DeviceEvent::InviteAnswered {
                invite: invite.to_hex(),
                family: family.to_hex(),
                invitee: invitee.to_hex(),
                accepted,
            });
        }
        ServerEvent::InviteWithdrawn { invite } => {
            let store = Arc::clone(&shared.store);
            let id = format!("invite/{invite}");
            blocking(move || store.dismiss_notification(&id)).await;
            // Its invitee's devices, added as it went out, leave the key group (the
            // event does not name the family).
            kick_all_keys(session).await;
            shared.emit(DeviceEvent::InviteWithdrawn {
                invite: invite.to_hex(),
            });
        }
        ServerEvent::MembershipChanged { family, change, .. } => {
            match change {
                MembershipChange::Removed { user, .. } if user == me => {
                    removed(shared, session, family, RemovedReason::Removed, true).await;
                    return;
                }
                MembershipChange::Left { user } if user == me => {
                    // Left on another device: this one forgets the family too.
                    let store = Arc::clone(&shared.store);
                    blocking(move || store.forget_family(family)).await;
                    left_behind(shared, session, family).await;
                }
                MembershipChange::Joined { user } if user == me => {
                    let store = Arc::clone(&shared.store);
                    blocking(move || store.set_membership(family, Membership::Member, now_ms()))
                        .await;
                    welcome(shared, session, family).await;
                    shared.emit(DeviceEvent::FamilyJoined {
                        family: family.to_hex(),
                    });
                }
                _ => {}
            }
            // Members changed: devices of one who left leave the key group.
            session.kick_keys(family);
            // Who is online in the family now (someone who joined while online sent
            // no presence event to it).
            refresh_presence_of(shared, session, &[family]).await;
            shared.emit(DeviceEvent::MembersChanged {
                family: family.to_hex(),
            });
        }
        // A title is a change of the family document since protocol 7: it arrives
        // with the document's other changes.
        ServerEvent::RetiredFamilyRenamed => {}
        ServerEvent::FamilyDeleted { family } => {
            removed(shared, session, family, RemovedReason::Deleted, true).await;
        }
        ServerEvent::Presence(p) => {
            let last_seen = p.last_seen.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
            lock(&shared.presence).insert(
                p.user.to_hex(),
                Presence {
                    online: p.online,
                    last_seen,
                },
            );
            shared.emit(DeviceEvent::PresenceChanged {
                user: p.user.to_hex(),
                online: p.online,
                last_seen,
            });
        }
        ServerEvent::DeviceAdded(_) | ServerEvent::DeviceRevoked { .. } => {
            kick_all_keys(session).await;
            shared.emit(DeviceEvent::DevicesChanged);
        }
        ServerEvent::LinkRequested(info) => {
            // What the screen shows is what a confirmation certifies.
            let store = Arc::clone(&shared.store);
            let shown = info.clone();
            if let Err(e) = crate::task::spawn_blocking(move || {
                crate::certs::remember_shown(&*store, &shown);
            })
            .await
            {
                tracing::warn!(error = %e, "a shown link request was not remembered");
            }
            shared.emit(DeviceEvent::LinkRequested(PendingLinkView::from(&info)));
        }
        ServerEvent::LinkAnswered { link, accepted } => {
            shared.emit(DeviceEvent::LinkAnswered {
                link: link.to_hex(),
                accepted,
            });
        }
    }
}

/// The user is no longer a member of `family`: mark it (its copy stays readable), tell
/// the app, and put it in the bell (`notify`: once, when the relay said it now). A
/// removal the sign-in found (`notify` false) was marked by the sign-in already: the
/// app is told all the same, if the family is still kept as one the user was removed
/// from (not one this device finished leaving meanwhile). The sign-in cannot tell a
/// removal from the family's deletion: it says removed.
async fn removed(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    family: FamilyId,
    reason: RemovedReason,
    notify: bool,
) {
    let store = Arc::clone(&shared.store);
    let changed = blocking(move || {
        if notify {
            store.set_membership(family, Membership::Removed, now_ms())
        } else {
            let families = store.families()?;
            Ok(families
                .iter()
                .any(|r| r.family == family && r.membership == Membership::Removed))
        }
    })
    .await
    .and_then(Result::ok)
    .unwrap_or(false);
    left_behind(shared, session, family).await;
    let title = family_title(session, family).await;
    if changed && notify {
        let lang = shared.lang();
        let text = match (reason, lang) {
            (RemovedReason::Removed, Lang::Ko) => {
                format!("'{title}' 가족에서 내보내졌어요. 지금까지의 내용은 볼 수 있어요.")
            }
            (RemovedReason::Removed, Lang::En) => format!(
                "You were removed from the family “{title}”. What was there is still readable."
            ),
            (RemovedReason::Deleted, Lang::Ko) => {
                format!("'{title}' 가족이 삭제되었어요.")
            }
            (RemovedReason::Deleted, Lang::En) => {
                format!("The family “{title}” was deleted.")
            }
        };
        keep_notification(
            shared,
            NotificationView {
                id: format!("removed/{family}/{}", now_ms()),
                kind: "removed".into(),
                family: Some(family.to_hex()),
                actor: None,
                at: now_ms(),
                count: 1,
                text,
                invite: None,
                target: None,
                group: None,
                read: false,
                ago: String::new(),
            },
        )
        .await;
    }
    if changed {
        shared.emit(DeviceEvent::RemovedFromFamily {
            family: family.to_hex(),
            title,
            reason,
        });
    }
}

/// This user is no longer in `family` (removed, left, or it was deleted): changes to
/// its volumes that wait in the outbox are dropped
/// ([`StoreHost::drop_volume_changes`](doran_client_core::sync::StoreHost::drop_volume_changes)),
/// and the pending count says so.
pub(crate) async fn left_behind(shared: &Arc<Shared>, session: &Arc<Session>, family: FamilyId) {
    let host = Arc::clone(&session.host);
    match blocking(move || host.drop_volume_changes(family)).await {
        Some(Ok(0)) => {}
        Some(Ok(_)) => {
            let store = Arc::clone(&shared.store);
            if let Some(Ok(pending)) = blocking(move || store.pending_count()).await {
                session.driver.note_pending(pending);
            }
        }
        Some(Err(e)) => {
            tracing::warn!(%family, error = %e, "changes to a left family's volumes stay queued");
        }
        None => {}
    }
}

/// Welcomes the user to a family they just joined (once): a new member sees this,
/// not the family's whole history as news. The title is the family document's once
/// it has synced; before that (the join announced before the document arrived) the
/// welcome names no family, and a later call with the title replaces it.
pub(crate) async fn welcome(shared: &Arc<Shared>, session: &Arc<Session>, family: FamilyId) {
    let title = family_title(session, family).await;
    let id = format!("welcome/{family}");
    let text = match (shared.lang(), title.is_empty()) {
        (Lang::Ko, false) => format!(
            "'{title}' 가족이 된 걸 환영해요! 지금까지의 미션, 사진, 음성메시지를 둘러보세요."
        ),
        (Lang::Ko, true) => {
            "가족이 된 걸 환영해요! 지금까지의 미션, 사진, 음성메시지를 둘러보세요.".to_owned()
        }
        (Lang::En, false) => format!(
            "Welcome to the family “{title}”! Have a look at its missions, photos and voice messages."
        ),
        (Lang::En, true) => {
            "Welcome to the family! Have a look at its missions, photos and voice messages."
                .to_owned()
        }
    };
    if !title.is_empty() {
        // A welcome kept before the document arrived names no family: this one does.
        let store = Arc::clone(&shared.store);
        let stale = id.clone();
        let titled = text.clone();
        blocking(move || {
            let kept = store.notifications(KEEP_NOTIFICATIONS)?;
            let untitled = kept.iter().any(|n| {
                n.id == stale
                    && serde_json::from_slice::<NotificationView>(&n.body)
                        .is_ok_and(|v| v.text != titled)
            });
            if untitled {
                store.dismiss_notification(&stale)?;
            }
            Ok::<_, doran_client_core::store::StoreError>(())
        })
        .await;
    }
    keep_notification(
        shared,
        NotificationView {
            id,
            kind: "welcome".into(),
            family: Some(family.to_hex()),
            actor: None,
            at: now_ms(),
            count: 1,
            text,
            invite: None,
            target: None,
            group: None,
            read: false,
            ago: String::new(),
        },
    )
    .await;
}

async fn family_title(session: &Arc<Session>, family: FamilyId) -> String {
    let host = Arc::clone(&session.host);
    blocking(move || host.read_family(family, |fd| fd.view().name.clone()))
        .await
        .and_then(Result::ok)
        .unwrap_or_default()
}

async fn open_family_view(session: &Arc<Session>, family: FamilyId) -> Option<Family> {
    let host = Arc::clone(&session.host);
    blocking(move || host.read_family(family, |fd| fd.view().clone()))
        .await
        .and_then(Result::ok)
}

/// The notifications a batch of new activity makes for this user, as their settings
/// allow: only what is still true once the batch is applied, nothing from before they
/// joined, one notification per burst; kept and announced.
async fn notify_activity(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    family: FamilyId,
    new_activity: Vec<Activity>,
) {
    if new_activity.is_empty() {
        return;
    }
    let me = session.account.user;
    let host = Arc::clone(&session.host);
    let settings = blocking(move || host.profile(me))
        .await
        .and_then(Result::ok)
        .flatten()
        .map(|p| p.settings)
        .unwrap_or_default();
    let Some(view) = open_family_view(session, family).await else {
        return;
    };
    // A member who just joined receives the family's whole history: a welcome,
    // not dozens of old items.
    let since = view
        .members
        .get(&me.to_hex())
        .map_or(i64::MAX, |m| m.joined_at);
    let current = views::still_true(&view, &new_activity, since);
    let notes = views::notifications(
        &current,
        &me.to_hex(),
        settings.notify_reactions,
        settings.notify_family,
    );
    let lang = shared.lang();
    for note in notes {
        keep_burst(shared, &view, family, &note, lang).await;
    }
}

/// How long after one notification another of the same burst (same family, person
/// and kind) is folded into it rather than added.
const BURST_WINDOW_MS: i64 = 10 * 60 * 1000;

/// Keeps an activity notification, folding it into the newest unread one of the same
/// burst ("사진 3장" + "사진 4장" = "사진 7장").
async fn keep_burst(
    shared: &Arc<Shared>,
    view: &Family,
    family: FamilyId,
    note: &Notification,
    lang: Lang,
) {
    let group = format!("{family}/{}/{}", note.latest.actor, note.kind_key());
    let store = Arc::clone(&shared.store);
    let recent = blocking(move || store.notifications(20))
        .await
        .and_then(Result::ok)
        .unwrap_or_default();
    let earlier = recent.into_iter().find_map(|r| {
        let n: NotificationView = serde_json::from_slice(&r.body).ok()?;
        (!r.read
            && n.group.as_deref() == Some(group.as_str())
            && note.latest.at.saturating_sub(n.at) < BURST_WINDOW_MS)
            .then_some(n)
    });
    let mut count = note.count;
    if let Some(earlier) = &earlier {
        if earlier.id == note.latest.id {
            return;
        }
        count += earlier.count;
        let store = Arc::clone(&shared.store);
        let id = earlier.id.clone();
        blocking(move || store.dismiss_notification(&id)).await;
    }
    let merged = Notification {
        latest: note.latest.clone(),
        count,
    };
    let mut view_of_note = note_view(view, family, &merged, lang);
    view_of_note.group = Some(group);
    keep_notification(shared, view_of_note).await;
}

/// The bell's view of an activity notification.
fn note_view(f: &Family, family: FamilyId, note: &Notification, lang: Lang) -> NotificationView {
    let a = &note.latest;
    let (kind, target) = match &a.kind {
        ActivityKind::PhotoLiked { photo, .. } => ("like", Some(photo.clone())),
        ActivityKind::PhotoCommented { photo, .. } => ("comment", Some(photo.clone())),
        ActivityKind::MemberJoined => ("joined", None),
        ActivityKind::MissionCreated { mission }
        | ActivityKind::MissionTicked { mission }
        | ActivityKind::MissionCompleted { mission } => ("family", Some(mission.clone())),
        ActivityKind::EventAdded { event } => ("family", Some(event.clone())),
        ActivityKind::AlbumCreated { album } => ("family", Some(album.clone())),
        ActivityKind::PhotoAdded { photo } => ("family", Some(photo.clone())),
        ActivityKind::VoiceAdded { voice } => ("family", Some(voice.clone())),
    };
    NotificationView {
        id: a.id.clone(),
        kind: kind.into(),
        family: Some(family.to_hex()),
        actor: Some(a.actor.clone()),
        at: a.at,
        count: note.count,
        text: note.text(f, lang),
        invite: None,
        target,
        group: None,
        read: false,
        ago: String::new(),
    }
}

/// Keeps a notification (once) and announces it.
pub(crate) async fn keep_notification(shared: &Arc<Shared>, note: NotificationView) {
    let Some(record) = record_of(&note) else {
        return;
    };
    let store = Arc::clone(&shared.store);
    let added = blocking(move || store.add_notification(&record, KEEP_NOTIFICATIONS))
        .await
        .and_then(Result::ok)
        .unwrap_or(false);
    if added {
        shared.emit(DeviceEvent::Notification(note));
    }
}

/// Fetches the thumbnails of photos that just arrived, so the grid fills in.
async fn prefetch_thumbnails(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    family: FamilyId,
    touched: &[doran_client_core::Touched],
) {
    let photos: Vec<String> = touched
        .iter()
        .filter_map(|t| match t {
            doran_client_core::Touched::Entity(c, id) if c == "photos" => Some(id.clone()),
            _ => None,
        })
        .collect();
    if photos.is_empty() {
        return;
    }
    let Some(view) = open_family_view(session, family).await else {
        return;
    };
    let thumbs: Vec<doran_client_core::seal::BlobRef> = photos
        .iter()
        .filter_map(|id| view.photos.get(id))
        .filter_map(doran_client_core::model::Photo::thumbnail)
        .collect();
    let shared = Arc::clone(shared);
    let session = Arc::clone(session);
    tokio::spawn(async move {
        for blob in thumbs {
            let hash = blob.hash;
            let blobs = session.blobs.clone();
            let cached = blocking(move || blobs.is_cached(blob))
                .await
                .and_then(Result::ok)
                .unwrap_or(false);
            if cached {
                continue;
            }
            match session
                .blobs
                .fetch(
                    session.driver.blobs(),
                    blob,
                    Expect::Thumbnail.mime(),
                    Expect::Thumbnail.max_bytes(),
                )
                .await
            {
                Ok(_) => shared.emit(DeviceEvent::BlobArrived {
                    hash: hash.to_hex(),
                }),
                // Not uploaded yet by its device, or offline: the view asks again.
                Err(e) => tracing::debug!(%hash, error = %e, "thumbnail not fetched yet"),
            }
        }
    });
}

/// What the relay says about the family members' presence, after each sign-in.
async fn refresh_presence(shared: &Arc<Shared>, session: &Arc<Session>) {
    let host = Arc::clone(&session.host);
    let Some(Ok(families)) = blocking(move || host.families()).await else {
        return;
    };
    refresh_presence_of(shared, session, &families).await;
}

/// Asks the relay who of `families` is online, and remembers it.
async fn refresh_presence_of(shared: &Arc<Shared>, session: &Arc<Session>, families: &[FamilyId]) {
    for &family in families {
        // A stopped driver answers nothing (a pump announcing what it holds as it
        // stops would wait out the timeout).
        if !session.running() {
            return;
        }
        let answer = tokio::time::timeout(
            Duration::from_secs(15),
            session.driver.request(Request::ListPresence { family }),
        )
        .await;
        if let Ok(Ok(Response::Presence(list))) = answer {
            let mut presence = lock(&shared.presence);
            for p in list {
                presence.insert(
                    p.user.to_hex(),
                    Presence {
                        online: p.online,
                        last_seen: p.last_seen.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                    },
                );
            }
        }
    }
}

/// Takes the language from the user's settings after their profile changed.
async fn refresh_language(shared: &Arc<Shared>, session: &Arc<Session>) {
    let me = session.account.user;
    let host = Arc::clone(&session.host);
    if let Some(Ok(Some(p))) = blocking(move || host.profile(me)).await {
        *lock(&shared.lang) = Lang::from_code(&p.settings.language);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_refusal_is_told_once_until_it_changes_or_the_user_acts() {
        let mut told = Told::default();
        assert!(told.news(Wire::QuotaExceeded));
        assert!(!told.news(Wire::QuotaExceeded), "not at every try");
        assert!(told.news(Wire::TooLarge), "another refusal");
        assert!(told.news(Wire::QuotaExceeded));
        told.forget();
        assert!(
            told.news(Wire::QuotaExceeded),
            "after a blob queued, or a pass that worked"
        );
    }

    #[test]
    fn a_failed_upload_is_tried_again_soon_then_less_often() {
        let waits: Vec<u64> = (1..=10).map(|n| upload_retry(n).as_secs()).collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(
            upload_retry(u32::MAX),
            Duration::from_millis(UPLOAD_RETRY_MAX_MS)
        );
    }
}
