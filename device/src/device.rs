//! [`Device`]: one device home, opened once and alive for the app's lifetime.
//!
//! It holds the local store, the account (keys behind a
//! [`SecretStore`](crate::account::SecretStore)), the open documents, the blob cache,
//! and — once signed in — the sync driver, running in the background: connecting,
//! reconnecting with backoff, pushing edits, receiving live changes, uploading and
//! fetching blobs. Relay calls (invites, families, devices) go over the connection it
//! already has.
//!
//! Every method takes `&self` (a `Device` is cheap to clone and share), takes plain
//! arguments (ids as hex strings, as the views give them), and is `async` when it does
//! I/O or heavy work; blocking work (SQLite, Automerge, photo resizing, audio
//! conversion) runs on tokio's blocking pool, never on the caller's thread. Errors are
//! [`Error`]s a person can read. What happens is announced as
//! [`DeviceEvent`]s ([`subscribe`](Device::subscribe), [`listen`](Device::listen)).
//!
//! The methods are grouped by feature in `device/`: accounts and devices, families and
//! invites, missions, calendar, gallery, voice messages, profile and notifications.

mod account;
mod calendar;
mod catalog;
mod families;
mod gallery;
pub(crate) mod invites;
mod missions;
pub(crate) mod notifications;
mod profile;
mod safety;
mod sync;
mod voice;

pub use self::missions::{MissionChanges, MissionInput};
pub use profile::ProfileChanges;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use doran_client_core::{
    DocError, Edit, FamilyDoc,
    family_store::cached_family,
    model::Family,
    store::{LocalStore, Membership, SqliteStore},
    sync::{StoreHost, SyncConfig},
    time_util::Lang,
    views::{Presence, Viewer},
};
use doran_protocol::{FamilyId, UserId};
use time::UtcOffset;
use tokio::{
    sync::{Notify, broadcast},
    task::JoinHandle,
};

use crate::{
    account::{Account, SecretStore, StoreSecrets},
    blobs::BlobCache,
    driver::SyncDriver,
    error::{Error, ErrorCode, Result},
    events::{DeviceEvent, EventListener, ListenerHandle, Part, Subscription},
    relay::{Relay, Trust},
};

/// The blob cache's default size limit (pending uploads are never evicted).
pub const BLOB_CACHE_BYTES: u64 = 512 * 1024 * 1024;

/// How many notifications a device keeps.
pub const KEEP_NOTIFICATIONS: usize = 200;

/// How a [`Device`] is opened.
#[derive(Clone)]
pub struct DeviceOptions {
    /// Where the keys are kept; `None`: in the local store (see
    /// [`StoreSecrets`](crate::account::StoreSecrets)). Apps pass the platform keychain.
    pub secrets: Option<Arc<dyn SecretStore>>,
    /// Extra trust for `https://` relays (a self-hosted relay's CA).
    pub trust: Trust,
    /// Start syncing in the background as soon as an account is there (apps). The
    /// command line leaves it off and syncs when asked.
    pub sync_on_open: bool,
    /// The viewer's UTC offset for dates in views; `None`: the system's, else UTC.
    pub utc_offset: Option<UtcOffset>,
    /// The language before the user's own setting is known (onboarding): the system
    /// locale. A new account starts with it.
    pub lang: Lang,
    /// The blob cache's size limit.
    pub blob_cache_bytes: u64,
    /// The sync protocol's settings (compaction threshold, client name…).
    pub sync: SyncConfig,
    /// The clock (Unix ms) edits are stamped with and views are drawn at; `None`: the
    /// system's. Tests move it (a mission from last month, a mood from yesterday).
    pub clock: Option<Clock>,
    /// Families created on this device are end-to-end sealed: the relay holds only
    /// envelopes of their documents (`docs/security.md`). On by default in the apps,
    /// which stay online while open: a new member is let in by any member's device
    /// that is. The command line, online only while a command runs, creates a family
    /// sealed when asked (`doran family create --sealed`);
    /// [`Device::create_family_with`] chooses per family.
    pub seal_new_families: bool,
}

/// Whether the family is sealed, and whether this device (its user still a member)
/// waits for its keys: its copy is still empty (not let into the group yet, or let
/// in and waiting for the history of the device that added it).
pub(crate) fn key_state(
    host: &StoreHost,
    family: FamilyId,
    member: bool,
    empty: bool,
) -> (bool, bool) {
    let sealed = host.is_sealed(family);
    (sealed, sealed && member && empty)
}

/// Whether an edit must wait for the family's keys: the rule the host refuses edits
/// by (an empty copy of a family that is sealed, or not known to be clear yet).
fn edit_waits(host: &StoreHost, family: FamilyId, empty: bool) -> bool {
    empty && (host.is_sealed(family) || !host.sealing_known(family))
}

/// A clock giving Unix milliseconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

impl std::fmt::Debug for DeviceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceOptions")
            .field("keychain", &self.secrets.is_some())
            .field("trust", &self.trust)
            .field("sync_on_open", &self.sync_on_open)
            .field("utc_offset", &self.utc_offset)
            .field("lang", &self.lang)
            .field("clock", &self.clock.as_ref().map(|c| c()))
            .finish_non_exhaustive()
    }
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions::for_app("Dorandoran")
    }
}

impl DeviceOptions {
    /// The defaults, for a device of `app`: it names itself "{app} · {machine}
    /// ({platform})" in the user's device list ([`crate::device_name::describe`]).
    pub fn for_app(app: &str) -> Self {
        DeviceOptions {
            secrets: None,
            trust: Trust::from_env(),
            sync_on_open: true,
            utc_offset: None,
            lang: Lang::Ko,
            blob_cache_bytes: BLOB_CACHE_BYTES,
            sync: SyncConfig {
                client: crate::device_name::describe(app),
                ..SyncConfig::default()
            },
            clock: None,
            seal_new_families: true,
        }
    }
}

/// One device, as apps drive it. See the [module docs](self).
#[derive(Clone)]
pub struct Device {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("home", &self.inner.shared.home)
            .finish_non_exhaustive()
    }
}

/// Owned by the `Device` handles only: when the last one goes, background work stops.
struct Inner {
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(session) = self.shared.session_now() {
            session.stop();
        }
    }
}

/// What the background tasks share with the handles.
pub(crate) struct Shared {
    pub(crate) home: PathBuf,
    pub(crate) store: Arc<dyn LocalStore>,
    pub(crate) secrets: Arc<dyn SecretStore>,
    pub(crate) options: DeviceOptions,
    pub(crate) events: broadcast::Sender<DeviceEvent>,
    pub(crate) session: RwLock<Option<Arc<Session>>>,
    /// What the relay said about co-members being online, by user hex.
    pub(crate) presence: Mutex<BTreeMap<String, Presence>>,
    pub(crate) offset: Mutex<UtcOffset>,
    /// The user's language (their setting; the options' until known).
    pub(crate) lang: Mutex<Lang>,
    /// The runtime the device was opened on. The synchronous entry points that start
    /// tasks (`listen`, `start_sync`) spawn on it, so an app may call them from any
    /// thread (a UI or FFI thread has no runtime of its own: `tokio::spawn` panicked).
    pub(crate) runtime: tokio::runtime::Handle,
    /// The tasks of [`Device::listen`], ended by [`Device::close`]: a listener often
    /// holds the device itself (an app's view model), and the task holding the
    /// listener would otherwise keep both alive for ever.
    pub(crate) listeners: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// The signed-in parts: the account, its documents, blobs and sync driver, and the
/// background tasks while syncing.
pub(crate) struct Session {
    pub(crate) account: Account,
    pub(crate) host: Arc<StoreHost>,
    pub(crate) driver: Arc<SyncDriver>,
    pub(crate) blobs: BlobCache,
    /// Wakes the uploader (a blob was queued, or the connection came back).
    pub(crate) upload_kick: Notify,
    /// Tells the pump to announce what it still holds and stop: a count of stops, so
    /// a pump busy elsewhere when told still hears it (a `Notify`'s `notify_waiters`
    /// reached only a pump waiting at that instant, and `close` then waited 5 s).
    pub(crate) stopping: tokio::sync::watch::Sender<u64>,
    /// Tells the running key task which family's key log to take further
    /// (`keys.rs`); replaced each time the background tasks start.
    pub(crate) keys_kick: Mutex<Option<tokio::sync::mpsc::UnboundedSender<crate::keys::Kick>>>,
    /// A sealed family opened on this device: mend again once up to date (a join's
    /// own member entry waits for the family's keys).
    pub(crate) mend_again: std::sync::atomic::AtomicBool,
    /// The invites this device sent while this session ran: only their invitees'
    /// devices does it add to a family's key group before they are members (the
    /// relay's list of pending invites alone could name anyone).
    pub(crate) sent_invites: Mutex<std::collections::BTreeSet<doran_protocol::InviteId>>,
    /// The driver's loop and the uploader (aborted on stop); the pump stops by itself.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The pump, awaited by [`Device::close`].
    pump: Mutex<Option<JoinHandle<()>>>,
}

impl Session {
    /// Asks the key task to take the family's key log further.
    pub(crate) fn kick_keys(&self, family: FamilyId) {
        if let Some(kick) = lock(&self.keys_kick).as_ref() {
            let _ = kick.send(crate::keys::Kick::Family(family));
        }
    }

    /// Asks the key task to publish this device's key package again (a sign-in: the
    /// relay may have lost it).
    pub(crate) fn publish_key_package(&self) {
        if let Some(kick) = lock(&self.keys_kick).as_ref() {
            let _ = kick.send(crate::keys::Kick::Publish);
        }
    }

    /// Has the key task take every sealed family's key log further now; how many
    /// entries it appended and families it opened (0 when no key task runs, or none
    /// answered by `deadline`). The driver has seen what they started when this
    /// returns.
    pub(crate) async fn settle_keys(&self, deadline: tokio::time::Instant) -> usize {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = lock(&self.keys_kick)
            .as_ref()
            .is_some_and(|kick| kick.send(crate::keys::Kick::Settle(reply)).is_ok());
        if !sent {
            return 0;
        }
        let moved = match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(moved)) => moved,
            _ => 0,
        };
        if moved > 0 {
            let _ = tokio::time::timeout_at(deadline, self.driver.barrier()).await;
        }
        moved
    }

    pub(crate) fn running(&self) -> bool {
        lock(&self.tasks).iter().any(|t| !t.is_finished())
    }

    /// Stops syncing: the connection closes at once; the pump first announces the
    /// activity it was still gathering (a notification is never lost to a stop).
    pub(crate) fn stop(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        self.stopping.send_modify(|stops| *stops += 1);
    }
}

/// A mutex that a panic elsewhere does not make unusable (every guarded value here
/// stays consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Shared {
    pub(crate) fn session_now(&self) -> Option<Arc<Session>> {
        self.session
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn lang(&self) -> Lang {
        *lock(&self.lang)
    }

    pub(crate) fn emit(&self, event: DeviceEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Now, by the device's clock.
    pub(crate) fn now(&self) -> i64 {
        match &self.options.clock {
            Some(clock) => clock(),
            None => now_ms(),
        }
    }

    pub(crate) fn viewer(&self) -> Viewer {
        Viewer {
            now_ms: self.now(),
            offset: *lock(&self.offset),
            lang: self.lang(),
        }
    }
}

impl Device {
    /// Opens (creating if needed) the device at `home`: its SQLite store
    /// (`home/device.sqlite`) and blob folder (`home/blobs`). If an account is there
    /// and `options.sync_on_open`, syncing starts in the background.
    pub async fn open(home: impl AsRef<Path>, mut options: DeviceOptions) -> Result<Device> {
        let home = home.as_ref().to_owned();
        options.sync.client = crate::device_name::clamp(&options.sync.client);
        if options.sync.client.trim().is_empty() {
            options.sync.client = crate::device_name::describe("Dorandoran");
        }
        let lang = options.lang;
        let dir = home.clone();
        let store: Arc<dyn LocalStore> = crate::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| Error::from_io(&e, lang))?;
            SqliteStore::open(dir.join("device.sqlite"))
                .map(|s| Arc::new(s) as Arc<dyn LocalStore>)
                .map_err(|e| Error::from_store(&e, lang))
        })
        .await
        .map_err(|_| Error::code(ErrorCode::Storage, lang))??;
        let secrets = options
            .secrets
            .clone()
            .unwrap_or_else(|| Arc::new(StoreSecrets(Arc::clone(&store))));
        let offset = options
            .utc_offset
            .or_else(|| UtcOffset::current_local_offset().ok())
            .unwrap_or(UtcOffset::UTC);
        let shared = Arc::new(Shared {
            home,
            store,
            secrets,
            events: broadcast::Sender::new(1024),
            session: RwLock::new(None),
            presence: Mutex::new(BTreeMap::new()),
            offset: Mutex::new(offset),
            lang: Mutex::new(lang),
            options,
            runtime: tokio::runtime::Handle::current(),
            listeners: Mutex::new(Vec::new()),
        });
        let device = Device {
            inner: Arc::new(Inner { shared }),
        };
        let account = {
            let s = Arc::clone(device.shared());
            device
                .blocking(move |lang| {
                    let account = Account::load(&*s.store, &*s.secrets)
                        .map_err(|e| Error::from_account(&e, lang))?;
                    if let Some(a) = &account {
                        crate::account::finish_signup(&*s.store, &*s.secrets, a)
                            .map_err(|e| Error::from_account(&e, lang))?;
                    }
                    Ok(account)
                })
                .await?
        };
        if let Some(account) = account {
            device.attach(account).await?;
            if device.shared().options.sync_on_open {
                device.start_sync();
            }
        }
        Ok(device)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// The folder this device lives in.
    pub fn home_dir(&self) -> &Path {
        &self.shared().home
    }

    /// Events as they happen (see [`DeviceEvent`]). Dropping the subscription
    /// unsubscribes.
    pub fn subscribe(&self) -> Subscription {
        Subscription::new(self.shared().events.subscribe())
    }

    /// Calls `listener` for every event until the handle is dropped.
    pub fn listen(&self, listener: Arc<dyn EventListener>) -> ListenerHandle {
        let handle = ListenerHandle::spawn(&self.shared().runtime, self.subscribe(), listener);
        let mut listeners = lock(&self.shared().listeners);
        listeners.retain(|t| !t.is_finished());
        listeners.push(handle.abort_handle());
        handle
    }

    /// The language messages and views are in: the user's setting once known.
    pub fn language(&self) -> Lang {
        self.shared().lang()
    }

    /// Sets the viewer's UTC offset (the platform's, e.g. after travelling or a DST
    /// change); dates in views follow it.
    pub fn set_utc_offset(&self, offset: UtcOffset) {
        *lock(&self.shared().offset) = offset;
    }

    /// Runs `f` on the blocking pool (SQLite, Automerge, codecs never run on the
    /// caller's thread), with the current language for its errors.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Lang) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let lang = self.language();
        crate::task::spawn_blocking(move || f(lang))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "a blocking task failed");
                Error::code(ErrorCode::Storage, lang)
            })?
    }

    /// The signed-in session, or [`ErrorCode::NoAccount`].
    pub(crate) fn session(&self) -> Result<Arc<Session>> {
        self.shared()
            .session_now()
            .ok_or_else(|| Error::code(ErrorCode::NoAccount, self.language()))
    }

    /// Makes the session for `account` (not yet syncing), and takes the user's
    /// language from their profile once it is on this device.
    pub(crate) async fn attach(&self, account: Account) -> Result<()> {
        let s = Arc::clone(self.shared());
        let session = self
            .blocking(move |lang| {
                let relay = Relay::new(&account.server, &s.options.trust)
                    .map_err(|e| Error::from_relay(&e, lang))?;
                if let Some(user_key) = &account.user_key {
                    crate::certs::pin_own(
                        &*s.store,
                        account.user,
                        doran_client_core::keys::public_key(user_key),
                    )
                    .map_err(|e| Error::from_store(&e, lang))?;
                }
                // What a year makes goes to that year's volume in the families sealed
                // from their creation (issue 17), so a ten-year family opens with this
                // year loaded and the others parked.
                let host = Arc::new(
                    StoreHost::with_keys(
                        Arc::clone(&s.store),
                        account.actor(),
                        (account.device_key.clone(), account.user_key.clone()),
                    )
                    .map_err(|e| Error::from_host(&e, lang))?
                    .filing_by_year(),
                );
                let driver = Arc::new(SyncDriver::new(
                    Arc::clone(&host) as Arc<dyn doran_client_core::sync::SyncHost>,
                    relay,
                    account.keys(),
                    doran_client_core::sync::SignInAs::Known { user: account.user },
                    s.options.sync.clone(),
                ));
                let blobs = BlobCache::open(
                    s.home.join("blobs"),
                    Arc::clone(&s.store),
                    s.options.blob_cache_bytes,
                )
                .map_err(|e| Error::from_sync(&e, lang))?;
                Ok(Session {
                    account,
                    host,
                    driver,
                    blobs,
                    upload_kick: Notify::new(),
                    stopping: tokio::sync::watch::channel(0).0,
                    keys_kick: Mutex::new(None),
                    mend_again: std::sync::atomic::AtomicBool::new(false),
                    sent_invites: Mutex::new(std::collections::BTreeSet::new()),
                    tasks: Mutex::new(Vec::new()),
                    pump: Mutex::new(None),
                })
            })
            .await?;
        *self
            .shared()
            .session
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(session));
        self.refresh_language().await;
        Ok(())
    }

    /// Starts syncing in the background (connect, reconnect, live changes, blobs), if
    /// signed in and not already syncing. Apps call it once; the command line when it
    /// needs the relay.
    pub fn start_sync(&self) {
        let Some(session) = self.shared().session_now() else {
            return;
        };
        if session.running() {
            return;
        }
        let (pump, tasks) = crate::pump::spawn(Arc::clone(self.shared()), Arc::clone(&session));
        *lock(&session.tasks) = tasks;
        *lock(&session.pump) = Some(pump);
    }

    /// Stops syncing and waits (a few seconds at most) until what arrived has been
    /// announced and kept: a short-lived process (the command line) calls it before
    /// it exits, so no notification is lost. Then the listeners of
    /// [`listen`](Self::listen) end (they have had the last events), which lets an
    /// app's listener that holds this device go. [`stop_sync`](Self::stop_sync) stops
    /// syncing and keeps the listeners.
    pub async fn close(&self) {
        if let Some(session) = self.shared().session_now() {
            session.stop();
            let pump = lock(&session.pump).take();
            if let Some(pump) = pump {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), pump).await;
            }
            // A command runs too briefly for the driver's idle compaction: leave the
            // stored copies short for the next start (only those whose tail grew long).
            session.driver.compact_stored().await;
        }
        // What the pump announced last is in the listeners' queues: let them take it.
        tokio::task::yield_now().await;
        for listener in lock(&self.shared().listeners).drain(..) {
            listener.abort();
        }
    }

    /// Stops syncing (closes the connection). Edits still work and are queued.
    pub fn stop_sync(&self) {
        if let Some(session) = self.shared().session_now() {
            session.stop();
        }
    }

    // ----- families: the shared plumbing of every feature -----

    /// The family `id` if it is one of the user's on this device and they are still a
    /// member; [`ErrorCode::RemovedFromFamily`] if they are not any more.
    pub(crate) async fn member_family(&self, id: &str) -> Result<FamilyId> {
        let family = self.known_family(id).await?;
        if family.1 == Membership::Removed {
            return Err(Error::code(ErrorCode::RemovedFromFamily, self.language()));
        }
        Ok(family.0)
    }

    /// The family `id` — its id, or its title when no other of the user's families has
    /// it — if this device knows it (as a member, or a removed one whose copy stays
    /// readable).
    pub(crate) async fn known_family(&self, id: &str) -> Result<(FamilyId, Membership)> {
        let lang = self.language();
        let unknown = || Error::code(ErrorCode::UnknownFamily, lang);
        let store = Arc::clone(&self.shared().store);
        let host = self.shared().session_now().map(|s| Arc::clone(&s.host));
        let wanted = id.trim().to_owned();
        let found = self
            .blocking(move |lang| {
                let records = store.families().map_err(|e| Error::from_store(&e, lang))?;
                if let Ok(family) = wanted.parse::<FamilyId>() {
                    return Ok(records
                        .into_iter()
                        .find(|r| r.family == family)
                        .map(|r| (family, r.membership)));
                }
                // By title: among the families whose view is at hand.
                let mut matches = records.into_iter().filter(|r| {
                    let title = host
                        .as_ref()
                        .and_then(|h| h.open_view(r.family).ok().flatten())
                        .map(|v| v.name)
                        .or_else(|| {
                            cached_family(&*store, r.family.into())
                                .ok()
                                .flatten()
                                .map(|v| v.name)
                        });
                    title.as_deref() == Some(wanted.as_str())
                });
                match (matches.next(), matches.next()) {
                    (Some(r), None) => Ok(Some((r.family, r.membership))),
                    _ => Ok(None),
                }
            })
            .await?;
        found.ok_or_else(unknown)
    }

    /// The current state of a family, for reading: the open document's view, else the
    /// view cache (and the document loads behind it, in the background), else loaded
    /// now.
    pub(crate) async fn family_view(&self, id: &str) -> Result<(FamilyId, Family)> {
        let (family, _) = self.known_family(id).await?;
        Ok((family, self.view_of(family).await?))
    }

    /// [`family_view`](Self::family_view) of a family already found.
    pub(crate) async fn view_of(&self, family: FamilyId) -> Result<Family> {
        let session = self.session()?;
        let host = Arc::clone(&session.host);
        let store = Arc::clone(&self.shared().store);
        let (view, cached) = self
            .blocking(move |lang| {
                let err = |e: doran_client_core::sync::HostError| Error::from_host(&e, lang);
                if let Some(view) = host.open_view(family).map_err(err)? {
                    return Ok((view, false));
                }
                match cached_family(&*store, family.into())
                    .map_err(|e| Error::from_store(&e, lang))?
                {
                    Some(view) => Ok((view, true)),
                    None => Ok((
                        host.read_family(family, |fd| fd.view().clone())
                            .map_err(err)?,
                        false,
                    )),
                }
            })
            .await?;
        if cached {
            // Load the document behind the cached view, so edits are instant.
            let host = Arc::clone(&session.host);
            crate::task::spawn_blocking(move || {
                if let Err(e) = host.read_family(family, |_| ()) {
                    tracing::warn!(%family, error = %e, "loading a family behind its view failed");
                }
            });
        }
        Ok(view)
    }

    /// The family's view for an edit about to be made, refused with
    /// [`ErrorCode::WaitingForKeys`] while this device waits to be let into the sealed
    /// family: its copy is empty, and a member, album or photo looked up in it would
    /// only say "not found".
    pub(crate) async fn edit_view(&self, id: &str) -> Result<(FamilyId, Family)> {
        let (family, membership) = self.known_family(id).await?;
        let view = self.view_of(family).await?;
        if membership == Membership::Member {
            let host = Arc::clone(&self.session()?.host);
            let empty = view.members.is_empty();
            let waits = self
                .blocking(move |_| Ok(edit_waits(&host, family, empty)))
                .await?;
            if waits {
                return Err(Error::code(ErrorCode::WaitingForKeys, self.language()));
            }
        }
        Ok((family, view))
    }

    /// Runs one edit on a family the user is a member of: durable on this device when
    /// it returns, queued for the relay, and announced (`Saved`, `FamilyChanged`).
    pub(crate) async fn edit<T: Send + 'static>(
        &self,
        id: &str,
        part: Part,
        mut op: impl FnMut(&mut FamilyDoc, i64) -> Result<Edit<T>, DocError> + Send + 'static,
    ) -> Result<T> {
        let family = self.member_family(id).await?;
        let session = self.session()?;
        let host = Arc::clone(&session.host);
        let store = Arc::clone(&self.shared().store);
        let now = self.shared().now();
        let (value, pending) = self
            .blocking(move |lang| {
                let value = host
                    .edit_family(family, |fd| op(fd, now))
                    .map_err(|e| Error::from_host(&e, lang))?;
                let pending = store
                    .pending_count()
                    .map_err(|e| Error::from_store(&e, lang))?;
                Ok((value, pending))
            })
            .await?;
        session.driver.note_pending(pending);
        session.driver.local_change();
        let shared = self.shared();
        shared.emit(DeviceEvent::Saved {
            family: Some(family.to_hex()),
            pending,
        });
        shared.emit(DeviceEvent::FamilyChanged {
            family: family.to_hex(),
            parts: vec![part],
            local: true,
        });
        Ok(value)
    }

    /// This user.
    pub(crate) fn me(&self) -> Result<UserId> {
        Ok(self.session()?.account.user)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, mpsc};

    use super::{Device, DeviceEvent, DeviceOptions};
    use crate::events::EventListener;

    struct Forward(std::sync::Mutex<mpsc::Sender<DeviceEvent>>);

    impl EventListener for Forward {
        fn on_event(&self, event: DeviceEvent) {
            if let Ok(tx) = self.0.lock() {
                let _ = tx.send(event);
            }
        }
    }

    /// A UI or FFI thread has no tokio runtime: `listen` and `start_sync` called from
    /// one must work (they spawned with `tokio::spawn`, which panicked there).
    #[test]
    fn listen_and_start_sync_work_from_a_thread_without_a_runtime() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let device = rt
            .block_on(Device::open(dir.path(), DeviceOptions::default()))
            .expect("opens");
        let (tx, rx) = mpsc::channel();
        let ui = std::thread::spawn({
            let device = device.clone();
            move || {
                assert!(tokio::runtime::Handle::try_current().is_err());
                device.start_sync();
                device.listen(Arc::new(Forward(std::sync::Mutex::new(tx))))
            }
        });
        let handle = ui.join().expect("no panic on a thread without a runtime");
        device.shared().emit(DeviceEvent::Saved {
            family: None,
            pending: 3,
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the listener gets the event");
        assert!(
            matches!(got, DeviceEvent::Saved { pending: 3, .. }),
            "{got:?}"
        );
        drop(handle);
        drop(device);
        drop(rt);
    }

    /// Fails on its first event (an app's listener that throws), forwards the rest,
    /// and holds the device, as an app's view model does.
    struct Throwing {
        seen: std::sync::atomic::AtomicUsize,
        tx: std::sync::Mutex<mpsc::Sender<DeviceEvent>>,
        device: std::sync::Mutex<Option<Device>>,
    }

    impl EventListener for Throwing {
        fn on_event(&self, event: DeviceEvent) {
            if self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                panic!("the app's listener threw");
            }
            if let Ok(tx) = self.tx.lock() {
                let _ = tx.send(event);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listener_that_throws_keeps_its_subscription_and_close_lets_it_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let device = Device::open(dir.path(), DeviceOptions::default())
            .await
            .expect("opens");
        let (tx, rx) = mpsc::channel();
        let listener = Arc::new(Throwing {
            seen: std::sync::atomic::AtomicUsize::new(0),
            tx: std::sync::Mutex::new(tx),
            device: std::sync::Mutex::new(Some(device.clone())),
        });
        let handle = device.listen(Arc::clone(&listener) as Arc<dyn EventListener>);
        for pending in [1, 2] {
            device.shared().emit(DeviceEvent::Saved {
                family: None,
                pending,
            });
        }
        let got = crate::task::spawn_blocking(move || {
            rx.recv_timeout(std::time::Duration::from_secs(10))
        })
        .await
        .expect("joins")
        .expect("the second event arrives");
        assert!(
            matches!(got, DeviceEvent::Saved { pending: 2, .. }),
            "{got:?}"
        );

        // The listener holds the device; closing ends its task, so only the app's
        // own references remain.
        device.close().await;
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while Arc::strong_count(&listener) > 1 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the listener is let go");
        assert!(listener.device.lock().expect("lock").take().is_some());
        drop(handle);
    }
}
