//! The device's part of end-to-end keys: who a family's devices are (their
//! certificates from the relay, checked against the user keys this device pinned),
//! and a task that takes each sealed family's key log further
//! ([`StoreHost::keys_step`]) whenever it moves, a document waits for a key, the
//! family's members change or a device is revoked.
//!
//! The key log decides and the devices do the work (`docs/security.md`): any device
//! in a family's group adds the devices that asked and are vouched for, and removes
//! the devices of members who left and revoked devices; a device not in the group
//! asks to be added. Certificates may lag (a new device publishes its own after its
//! first sign-in), so a family whose log waits for one is tried again after a while.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use doran_client_core::{
    group::KnownDevices,
    store::LocalStore,
    sync::{KeyStep, StoreHost, personal_group},
};
use doran_protocol::{
    DeviceId, DocId, FamilyId, FamilySummary, InviteState, Request, Response, UserId,
    model::{DeviceKeyPackage, InviteInfo, UserCerts},
};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use crate::{
    certs::blocking_failed,
    device::{Session, Shared, now_ms},
    driver::SyncDriver,
    sync_error::SyncError,
};

/// The first wait before a family whose key log waits for certificates (or whose
/// requests are not vouched for yet) is stepped again; doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Every sealed family is stepped this often while the device stays online, so a
/// weekly leaf refresh comes due in a quiet family too.
const SWEEP: Duration = Duration::from_secs(6 * 60 * 60);

/// What one pass of the key task heard from the relay: the families stepped together
/// (every sealed family, when a sync asks) need the member list once, and each
/// member's certificates once, not once per family.
#[derive(Default)]
struct Asked {
    families: Option<Vec<FamilySummary>>,
    certs: BTreeMap<UserId, UserCerts>,
    /// The pending invites of the user's families (`ListInvites`).
    invites: Option<Vec<InviteInfo>>,
    /// Key packages each user's devices published (`None`: the relay refused).
    packages: BTreeMap<UserId, Option<Vec<DeviceKeyPackage>>>,
}

/// `user`'s certificates: asked once per pass, and the user key checked against the
/// one pinned when asked. A user key the relay serves that differs from the one
/// pinned is refused ([`SyncError::Protocol`]): the relay would be vouching for
/// devices of its own.
async fn certs_of<'a>(
    store: &Arc<dyn LocalStore>,
    driver: &SyncDriver,
    user: UserId,
    asked: &'a mut Asked,
) -> Result<&'a UserCerts, SyncError> {
    let slot = match asked.certs.entry(user) {
        std::collections::btree_map::Entry::Occupied(kept) => return Ok(kept.into_mut()),
        std::collections::btree_map::Entry::Vacant(slot) => slot,
    };
    let served = crate::certs::served(store, driver, user).await?;
    Ok(slot.insert(served))
}

/// The family's members' devices as their certificates vouch for them, with the
/// members themselves; then the devices of the invitees this device may add (`mine`:
/// an invitee whose certificates the relay does not serve is left out — they are let
/// in the old way, asking in the key log once they joined). Every pending invitee
/// (`invited`) keeps their devices in the group while the invite is open. Returns, per
/// user, the devices vouched for.
async fn known_devices(
    store: &Arc<dyn LocalStore>,
    driver: &SyncDriver,
    members: &[UserId],
    (invited, mine): (&[UserId], &[UserId]),
    asked: &mut Asked,
) -> Result<(KnownDevices, BTreeMap<UserId, Vec<DeviceId>>), SyncError> {
    let mut known = KnownDevices::new();
    let mut vouched = BTreeMap::new();
    for &user in members {
        let served = certs_of(store, driver, user, asked).await?;
        vouched.insert(user, known.insert_served(served));
    }
    for &user in mine {
        match certs_of(store, driver, user, asked).await {
            Ok(served) => {
                vouched.insert(user, known.insert_served(served));
            }
            Err(SyncError::Refused { message, .. }) => {
                tracing::debug!(%user, %message, "an invitee's certificates are not served");
            }
            Err(e) => return Err(e),
        }
    }
    known.set_members(members.iter().copied());
    known.set_invited(invited.iter().copied());
    Ok((known, vouched))
}

/// The users the family's pending invites name (asked once per pass), and those of
/// them whose invite this device sent in this session (`sent`): only those does it
/// add before they are members — the relay's list alone could name anyone.
async fn invited_to(
    driver: &SyncDriver,
    family: FamilyId,
    me: UserId,
    sent: &BTreeSet<doran_protocol::InviteId>,
    asked: &mut Asked,
) -> Result<(Vec<UserId>, Vec<UserId>), SyncError> {
    if asked.invites.is_none() {
        match driver.request(Request::ListInvites).await? {
            Response::Invites(list) => asked.invites = Some(list),
            other => {
                return Err(SyncError::Protocol(format!(
                    "an unexpected answer to ListInvites: {other:?}"
                )));
            }
        }
    }
    let pending =
        || {
            asked.invites.iter().flatten().filter(|i| {
                i.family == family && i.state == InviteState::Pending && i.invitee != me
            })
        };
    let mut all: Vec<UserId> = pending().map(|i| i.invitee).collect();
    let mut mine: Vec<UserId> = pending()
        .filter(|i| sent.contains(&i.invite))
        .map(|i| i.invitee)
        .collect();
    for users in [&mut all, &mut mine] {
        users.sort_unstable();
        users.dedup();
    }
    Ok((all, mine))
}

/// Offers `known` the packages published by the vouched devices not in the family's
/// group yet — an invitee's devices, a member's device that never asked in the key
/// log — so this device adds them now, while they may be offline. The relay's
/// directory is asked only for users with such a device, once per pass.
async fn offer_packages(
    driver: &SyncDriver,
    known: &mut KnownDevices,
    vouched: &BTreeMap<UserId, Vec<DeviceId>>,
    in_group: &BTreeSet<DeviceId>,
    asked: &mut Asked,
) {
    for (user, devices) in vouched {
        let missing: BTreeSet<DeviceId> = devices
            .iter()
            .filter(|d| !in_group.contains(d))
            .copied()
            .collect();
        if missing.is_empty() {
            continue;
        }
        if !asked.packages.contains_key(user) {
            // Offers are a shortcut: whatever goes wrong here, the family's other key
            // work goes on (the devices can still ask in the key log).
            let served = match driver.request(Request::KeyPackagesOf { user: *user }).await {
                Ok(Response::KeyPackages(list)) => Some(list),
                Ok(other) => {
                    tracing::warn!(%user, ?other, "an unexpected answer to KeyPackagesOf");
                    None
                }
                Err(e) => {
                    tracing::debug!(%user, error = %e, "key packages not served");
                    None
                }
            };
            asked.packages.insert(*user, served);
        }
        for published in asked.packages.get(user).into_iter().flatten().flatten() {
            if missing.contains(&published.device) {
                known.offer(published.package.clone());
            }
        }
    }
}

/// The meta key of the users this device invited to a family.
fn invited_key(family: FamilyId) -> String {
    format!("invites/sent/{}", family.to_hex())
}

/// Serialises the read-modify-write of [`remember_invited`].
static INVITED: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Remembers that this device invited `user` to `family`: this device adds their
/// devices — as the invite goes out, or once they accepted if they had published no
/// key package — whatever the relay lists (see [`addable`]).
pub(crate) fn remember_invited(
    store: &dyn LocalStore,
    family: FamilyId,
    user: UserId,
) -> Result<(), doran_client_core::store::StoreError> {
    let _guard = INVITED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut users = invited_by_me(store, family)?;
    if users.insert(user) {
        // A set of ids always serialises.
        let bytes = postcard::to_allocvec(&users).unwrap_or_default();
        store.set_meta(&invited_key(family), &bytes)?;
    }
    Ok(())
}

fn invited_by_me(
    store: &dyn LocalStore,
    family: FamilyId,
) -> Result<BTreeSet<UserId>, doran_client_core::store::StoreError> {
    Ok(store
        .get_meta(&invited_key(family))?
        .and_then(|bytes| postcard::from_bytes(&bytes).ok())
        .unwrap_or_default())
}

/// How long an invite recorded in the family's document lets any member's device
/// add the invitee's devices (an invite is answered within 7 days on a relay's
/// defaults; a member's own entry takes over once they joined).
const RECORDED_INVITE_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// The users whose devices this device adds to the family's group: this user, the
/// members the family's own document names (sealed: the relay cannot write to it),
/// the users a member recorded an invite of there in the last 30 days
/// (`FamilyDoc::record_invite`), and whom this device invited. The relay's member
/// list alone names no one — a relay listing a member of its own invention would
/// otherwise have its devices added and read the family. A member's other devices
/// are added by anyone; an invitee by the inviting device (from their published
/// package as the invite goes out), and by any member's device once they accepted
/// (the relay then lists them among `members`, with their certificates). The
/// family's document is loaded for the recorded invites only when the relay lists a
/// member it does not name (loading a ten-year history at every step would cost
/// seconds). A user's profile group is theirs alone.
async fn addable(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    family: FamilyId,
    (members, mine): (&[UserId], &[UserId]),
) -> BTreeSet<UserId> {
    let me = session.account.user;
    if family == personal_group(session.account.personal_doc) {
        return BTreeSet::from([me]);
    }
    let host = Arc::clone(&session.host);
    let store = Arc::clone(&shared.store);
    let members = members.to_vec();
    let mut users = crate::task::spawn_blocking(move || {
        let view = match host.open_view(family) {
            Ok(Some(view)) => Some(view),
            _ => doran_client_core::family_store::cached_family(&*store, family.into())
                .ok()
                .flatten(),
        };
        let mut users: BTreeSet<UserId> = view
            .iter()
            .flat_map(|v| v.members.keys())
            .filter_map(|u| u.parse().ok())
            .collect();
        match invited_by_me(&*store, family) {
            Ok(invited) => users.extend(invited),
            Err(e) => {
                tracing::warn!(%family, error = %e, "the users this device invited were not read")
            }
        }
        if members.iter().any(|m| *m != me && !users.contains(m)) {
            let now = now_ms();
            match host.read_family(family, |fd| fd.invited_since(now - RECORDED_INVITE_MS, now)) {
                Ok(invited) => users.extend(invited),
                Err(e) => {
                    tracing::debug!(%family, error = %e, "the invites recorded in the family were not read")
                }
            }
        }
        users
    })
    .await
    .unwrap_or_default();
    users.insert(session.account.user);
    users.extend(mine.iter().copied());
    users
}

/// Publishes this device's key package on the relay if the relay may not have it —
/// or in any case with `again` — (a new one weekly): a member's device adds this
/// device to a family with it while this device is offline — the inviter's, as it
/// invites.
pub(crate) async fn publish_package(session: &Arc<Session>, again: bool) -> Result<(), SyncError> {
    let host = Arc::clone(&session.host);
    let now = now_ms();
    let Some(package) =
        crate::task::spawn_blocking(move || host.key_package_to_publish(now, again))
            .await
            .map_err(blocking_failed)??
    else {
        return Ok(());
    };
    match session
        .driver
        .request(Request::PublishKeyPackage {
            package: package.clone(),
        })
        .await?
    {
        Response::Done => {}
        other => {
            return Err(SyncError::Protocol(format!(
                "an unexpected answer to PublishKeyPackage: {other:?}"
            )));
        }
    }
    let host = Arc::clone(&session.host);
    crate::task::spawn_blocking(move || host.key_package_published(&package))
        .await
        .map_err(blocking_failed)??;
    tracing::debug!("key package published");
    Ok(())
}

/// The family's members as the relay lists them (asked once per pass); `None` if the
/// user is not in it.
async fn members_of(
    driver: &SyncDriver,
    family: FamilyId,
    asked: &mut Asked,
) -> Result<Option<Vec<UserId>>, SyncError> {
    if asked.families.is_none() {
        match driver.request(Request::ListFamilies).await? {
            Response::Families(list) => asked.families = Some(list),
            other => {
                return Err(SyncError::Protocol(format!(
                    "an unexpected answer to ListFamilies: {other:?}"
                )));
            }
        }
    }
    Ok(asked
        .families
        .iter()
        .flatten()
        .find(|f| f.family == family)
        .map(|f| f.members.iter().map(|m| m.user).collect()))
}

/// Takes the family's key log one step further (see the module docs).
async fn step(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    family: FamilyId,
    asked: &mut Asked,
) -> Result<KeyStep, SyncError> {
    // A family in the clear has no key work: no relay call for it.
    let host = Arc::clone(&session.host);
    let sealed = crate::task::spawn_blocking(move || host.is_sealed(family))
        .await
        .unwrap_or(false);
    if !sealed {
        return Ok(KeyStep::default());
    }
    let me = session.account.user;
    let (invited, mine, members) = if family == personal_group(session.account.personal_doc) {
        // This user's profile key group: their own devices, nobody else's.
        (Vec::new(), Vec::new(), vec![me])
    } else {
        // The invites before the members: an invitee who accepts in between is then
        // a member or still invited — never neither, which would have this device
        // take their devices out of the group just as they join.
        let sent = crate::device::lock(&session.sent_invites).clone();
        let (invited, mine) = invited_to(&session.driver, family, me, &sent, asked).await?;
        let Some(members) = members_of(&session.driver, family, asked).await? else {
            return Ok(KeyStep::default());
        };
        (invited, mine, members)
    };
    let (mut known, vouched) = known_devices(
        &shared.store,
        &session.driver,
        &members,
        (&invited, &mine),
        asked,
    )
    .await?;
    let in_group: BTreeSet<DeviceId> = {
        let host = Arc::clone(&session.host);
        crate::task::spawn_blocking(move || host.key_members(family))
            .await
            .map_err(blocking_failed)?
            .into_iter()
            .map(|m| m.device)
            .collect()
    };
    known.set_addable(addable(shared, session, family, (&members, &mine)).await);
    if !in_group.is_empty() {
        offer_packages(&session.driver, &mut known, &vouched, &in_group, asked).await;
    }
    let host: Arc<StoreHost> = Arc::clone(&session.host);
    let now = now_ms();
    let step = crate::task::spawn_blocking(move || host.keys_step(family, &known, now))
        .await
        .map_err(blocking_failed)??;
    tracing::debug!(%family, ?step, "key log stepped");
    if step.appended > 0 {
        // Counted before the driver hears of them, so a sync waiting for "nothing
        // left to send" waits for these too.
        let store = Arc::clone(&shared.store);
        if let Ok(Ok(pending)) = crate::task::spawn_blocking(move || store.pending_count()).await {
            session.driver.note_pending(pending);
        }
        session.driver.local_change();
    }
    // Chunks kept aside for a key are tried whenever this device is in the group (a
    // restart may have come between getting keys and opening them): one small read
    // when there are none.
    if step.new_keys || step.in_group {
        let host: Arc<StoreHost> = Arc::clone(&session.host);
        let change = crate::task::spawn_blocking(move || host.retry_held(family))
            .await
            .map_err(blocking_failed)??;
        if !change.unlocked.is_empty() {
            // Chunks opened now brought members' profile keys.
            session.driver.unlock(change.unlocked.clone());
        }
        if !change.touched.is_empty() {
            // They may list a year's volume.
            session.driver.volumes_may_have_changed();
        }
        let parts = crate::events::Part::of_touched(&change.touched);
        if !parts.is_empty() {
            shared.emit(crate::events::DeviceEvent::FamilyChanged {
                family: family.to_hex(),
                parts,
                local: false,
            });
        }
    }
    if step.new_keys {
        session
            .mend_again
            .store(true, std::sync::atomic::Ordering::SeqCst);
        session
            .driver
            .unlock(vec![DocId::from(family), family.key_log()]);
    }
    Ok(step)
}

/// What the key task is asked to do.
#[derive(Debug)]
pub(crate) enum Kick {
    /// Take this family's key log further (it moved, a document waits for a key,
    /// members changed…).
    Family(FamilyId),
    /// Take every sealed family's key log further now, and say how many entries were
    /// appended and families opened (keys came): a sync that should leave nothing of
    /// the key work half done (`doran sync` letting a new member in, then ending)
    /// waits for it, and for what it started.
    Settle(oneshot::Sender<usize>),
    /// Publish this device's key package again (a sign-in: the relay may have lost
    /// it; a new one if the last is a week old).
    Publish,
}

/// The sealed families whose key logs this device reads.
pub(crate) async fn sealed_families(session: &Arc<Session>) -> Vec<FamilyId> {
    let host = Arc::clone(&session.host);
    crate::task::spawn_blocking(move || {
        host.key_families()
            .into_iter()
            .filter(|f| host.is_sealed(*f))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default()
}

/// Whether a step should be tried again later without anything else happening.
fn waits(step: &KeyStep) -> bool {
    step.waiting_for_certs || step.unvouched > 0
}

/// The session's key task: steps the families it is told of (`kicks`), one at a
/// time, and again after a while those that wait for certificates.
pub(crate) async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    mut kicks: mpsc::UnboundedReceiver<Kick>,
) {
    let mut due: BTreeMap<FamilyId, (Instant, Duration)> = BTreeMap::new();
    let mut sweep = Instant::now() + SWEEP;
    // What every step appended or opened since the last `Settle` was answered: a
    // step already under way when a sync asked counts for it too.
    let mut moved: usize = 0;
    loop {
        let mut now_due: BTreeSet<FamilyId> = BTreeSet::new();
        let mut settles: Vec<oneshot::Sender<usize>> = Vec::new();
        let mut publish = None;
        let mut take = |kick: Kick, now_due: &mut BTreeSet<FamilyId>| match kick {
            Kick::Family(family) => {
                now_due.insert(family);
            }
            Kick::Settle(reply) => settles.push(reply),
            Kick::Publish => publish = Some(true),
        };
        let next = due
            .values()
            .map(|(at, _)| *at)
            .min()
            .map_or(sweep, |at| at.min(sweep));
        tokio::select! {
            kick = kicks.recv() => match kick {
                Some(kick) => take(kick, &mut now_due),
                None => return,
            },
            () = tokio::time::sleep_until(next) => {}
        }
        while let Ok(kick) = kicks.try_recv() {
            take(kick, &mut now_due);
        }
        let now = Instant::now();
        if now >= sweep {
            // A session that stays connected makes its weekly new package too.
            publish.get_or_insert(false);
        }
        // (A sync publishes it itself before it returns: `Device::sync_now`.)
        if let Some(again) = publish
            && let Err(e) = publish_package(&session, again).await
        {
            tracing::debug!(error = %e, "the key package waits for the next sign-in");
        }
        if !settles.is_empty() || now >= sweep {
            now_due.extend(sealed_families(&session).await);
            if now >= sweep {
                sweep = now + SWEEP;
            }
        }
        now_due.extend(
            due.iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(f, _)| *f),
        );
        let mut asked = Asked::default();
        for family in now_due {
            let wait = match step(&shared, &session, family, &mut asked).await {
                Ok(s) => {
                    moved = moved.saturating_add(s.appended + usize::from(s.new_keys));
                    waits(&s).then_some(())
                }
                Err(e) => {
                    tracing::debug!(%family, error = %e, "a key log step failed; trying again later");
                    Some(())
                }
            };
            match wait {
                None => {
                    due.remove(&family);
                }
                Some(()) => {
                    let delay = due
                        .get(&family)
                        .map_or(RETRY_FIRST, |(_, d)| (*d * 2).min(RETRY_MAX));
                    due.insert(family, (Instant::now() + delay, delay));
                }
            }
        }
        // This user's profile keys follow the families' groups (`profile_keys`).
        let profile = crate::profile_keys::pass(&session).await;
        if profile.published > 0 {
            session.driver.local_change();
            moved = moved.saturating_add(profile.published);
        }
        if profile.rotating {
            // The Commit that rotates is made by a step of the group.
            let group = personal_group(session.account.personal_doc);
            let wait = RETRY_FIRST;
            due.insert(group, (Instant::now() + wait, wait));
        }
        if !settles.is_empty() {
            tracing::debug!(moved, "key work settled for a sync");
            for reply in settles {
                let _ = reply.send(moved);
            }
            moved = 0;
        }
    }
}
