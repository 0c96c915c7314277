//! [`SyncDriver`]: the tokio host of the [`SyncMachine`]. It owns the websocket,
//! executes the machine's effects against a [`SyncHost`] and a [`BlobClient`], and
//! publishes the status and events for UIs.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use doran_protocol::{
    DocId, ErrorCode, FamilyId, InviteId, Request, RequestId, Response, Seq, ServerEvent, UserId,
    codec, signing,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use doran_client_core::{
    Touched,
    keys::DeviceKeys,
    store::Membership,
    sync::{
        Compact, DocChange, DocKind, Effects, Event, RequestOutcome, SignInAs, SignedIn,
        SnapshotCheck, SyncConfig, SyncHost, SyncMachine, SyncStatus, VerifySnapshot,
        personal_group,
    },
    views::Activity,
};

use crate::{
    account::Enrolment,
    blobs::BlobClient,
    relay::Relay,
    sync_error::{Result, SyncError},
};

/// What UIs observe: the connection status and how many local changes wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncState {
    /// Offline, connecting, syncing or up to date.
    pub status: SyncStatus,
    /// Local changes not yet acknowledged by the relay.
    pub pending: u64,
    /// Connection attempts that failed since the last sign-in (the relay could not be
    /// reached, or the connection ended before signing in). A caller waiting for the
    /// relay compares it with the value it started with, to say "offline" at once.
    pub failures: u64,
    /// Sign-ins so far (each new connection that got signed in counts one).
    pub sign_ins: u64,
    /// Whether the last connection attempt failed because the relay's TLS
    /// certificate is not trusted (rather than the relay being unreachable).
    pub untrusted: bool,
    /// The relay refused this device for good, or this device refused the relay
    /// (its id names another address): the driver stopped and will not connect
    /// again. [`SyncDriver::stopped_reason`] says why.
    pub stopped: bool,
}

/// Something UIs may want to show, from [`SyncDriver::subscribe`].
#[derive(Debug, Clone)]
pub enum SyncEvent {
    /// Incoming changes were applied to a document.
    DocChanged {
        /// The document.
        doc: DocId,
        /// Whose it is: a family's, or a user's personal document.
        kind: DocKind,
        /// What they touched (re-read these; empty for personal documents).
        touched: Vec<Touched>,
        /// Feed items that are new (for notifications).
        new_activity: Vec<Activity>,
    },
    /// A notification from the relay (invite, membership, presence, device…).
    Server(ServerEvent),
    /// Signing in told this device that the user joined or lost these families
    /// while it was away (the relay's list is authoritative).
    Memberships(Vec<(FamilyId, Membership)>),
    /// A document is no longer synced (access lost, or it is gone).
    DocDropped {
        /// The document.
        doc: DocId,
        /// Why.
        code: ErrorCode,
    },
    /// Something failed (shown as a warning; syncing goes on unless it is fatal).
    Error(Arc<SyncError>),
    /// The family's key log moved, or one of its documents waits for a key: take
    /// the key log further ([`StoreHost::keys_step`](doran_client_core::sync::StoreHost::keys_step)).
    Keys {
        /// The family.
        family: FamilyId,
    },
}

enum Command {
    Request(Request, oneshot::Sender<Result<Response>>),
    LocalChange,
    /// Keys came: subscribe these locked documents again.
    Unlock(Vec<DocId>),
    /// A family's document changed outside the sync: look at its volumes again.
    Volumes,
    /// Reconnect now if waiting to (someone is waiting for the relay).
    Wake,
    /// Answered once every command sent before it has been handled.
    Barrier(oneshot::Sender<()>),
}

/// How long opening a connection (TCP, TLS, websocket upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `RateLimited` request is sent again after the relay's wait only when that wait is
/// at most this (the frame budget refills at 50 a second; a per-minute limit's wait is
/// the person's to see).
pub const RATE_LIMITED_MAX_WAIT: Duration = Duration::from_secs(2);
/// At least this long between two sendings of a rate-limited request.
const RATE_LIMITED_MIN_WAIT: Duration = Duration::from_millis(50);
/// How long one request may wait in all for rate limits before its refusal is returned
/// (within the app's request timeout of 15 s).
pub const RATE_LIMITED_WAITING: Duration = Duration::from_secs(8);

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Stop once up to date.
    UntilUpToDate,
    /// Stay connected.
    Forever,
}

enum Flow {
    Continue,
    /// Close this connection (and maybe reconnect).
    Close,
    /// Up to date in [`Mode::UntilUpToDate`].
    Done,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Runner {
    machine: SyncMachine,
    commands: mpsc::UnboundedReceiver<Command>,
    waiting: HashMap<RequestId, oneshot::Sender<Result<Response>>>,
    reconnect_after: Option<u64>,
    fatal: Option<SyncError>,
}

/// Runs the sync protocol for one device (see the [module docs](super) for the loop).
///
/// Cheap to share behind an `Arc`: [`request`](Self::request),
/// [`local_change`](Self::local_change), [`state`](Self::state) and
/// [`subscribe`](Self::subscribe) may be called from any task while
/// [`run`](Self::run) or [`run_until_up_to_date`](Self::run_until_up_to_date) runs in
/// another.
pub struct SyncDriver {
    host: Arc<dyn SyncHost>,
    blobs: BlobClient,
    relay: Relay,
    keys: DeviceKeys,
    runner: Mutex<Runner>,
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Sender<SyncState>,
    events: broadcast::Sender<SyncEvent>,
    server_id: std::sync::Mutex<Option<String>>,
    user: std::sync::Mutex<Option<UserId>>,
    /// Why the relay's certificate was last refused, for the user.
    untrusted: std::sync::Mutex<Option<String>>,
    /// Why the driver stopped for good (the code and message of its fatal error).
    stopped: std::sync::Mutex<Option<(ErrorCode, String)>>,
    /// A compaction of the stored copies runs (see [`SyncDriver::compact_stored`]).
    compacting: Arc<std::sync::atomic::AtomicBool>,
    /// The altered chunks already reported (a refused snapshot comes again at every
    /// unlock): the user is told of each once per run.
    tampered: std::sync::Mutex<HashSet<(DocId, Seq)>>,
}

/// Seconds up to date between two looks at the stored copies' tails.
const COMPACT_EVERY_TICKS: u64 = 30;

impl std::fmt::Debug for SyncDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncDriver")
            .field("relay", &self.relay)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Bytes the websocket reads per socket read. tungstenite zero-fills its read buffer
/// before every read; at its default (128 KiB) that is most of the CPU a phone spends
/// receiving small change frames. Large frames still arrive, over more reads.
const WS_READ_BUFFER: usize = 8 * 1024;

/// Opens the websocket to `relay` (TLS for `wss://`, with the relay's trust).
async fn connect(
    relay: &Relay,
) -> std::result::Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER);
    let connector = relay
        .tls()
        .map(|tls| tokio_tungstenite::Connector::Rustls(Arc::clone(tls)));
    // No Nagle delay: frames are small and a change should leave at once.
    tokio_tungstenite::connect_async_tls_with_config(relay.ws_url(), Some(config), true, connector)
        .await
}

impl SyncDriver {
    /// A driver for the device with `keys` on `relay`, signing in as `sign_in`,
    /// applying to `host`.
    pub fn new(
        host: Arc<dyn SyncHost>,
        relay: Relay,
        keys: DeviceKeys,
        sign_in: SignInAs,
        config: SyncConfig,
    ) -> Self {
        let blobs = BlobClient::new(relay.clone(), keys.device, keys.device_key.clone());
        let seed = rand::random::<u64>();
        let user = match &sign_in {
            SignInAs::Known { user } => Some(*user),
            _ => None,
        };
        // Whatever the caller configured, the id is checked against where this driver
        // connects.
        let config = SyncConfig {
            relay_address: Some(relay.address()),
            ..config
        };
        let machine = SyncMachine::new(keys.clone(), sign_in, config, seed);
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = host.pending_count().unwrap_or(0);
        SyncDriver {
            host,
            blobs,
            relay,
            keys,
            runner: Mutex::new(Runner {
                machine,
                commands: rx,
                waiting: HashMap::new(),
                reconnect_after: None,
                fatal: None,
            }),
            commands: tx,
            state: watch::Sender::new(SyncState {
                status: SyncStatus::Offline,
                pending,
                failures: 0,
                sign_ins: 0,
                untrusted: false,
                stopped: false,
            }),
            events: broadcast::Sender::new(1024),
            server_id: std::sync::Mutex::new(None),
            user: std::sync::Mutex::new(user),
            untrusted: std::sync::Mutex::new(None),
            stopped: std::sync::Mutex::new(None),
            compacting: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            tampered: std::sync::Mutex::default(),
        }
    }

    /// The status and pending count, as a watch channel.
    pub fn state(&self) -> watch::Receiver<SyncState> {
        self.state.subscribe()
    }

    /// Document changes, server notifications and errors as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<SyncEvent> {
        self.events.subscribe()
    }

    /// The blob client signing as this device.
    pub fn blobs(&self) -> &BlobClient {
        &self.blobs
    }

    /// Tells the driver a local edit was committed, so it is pushed now.
    pub fn local_change(&self) {
        let _ = self.commands.send(Command::LocalChange);
    }

    /// The device got end-to-end keys: documents that stopped at a chunk sealed under
    /// an epoch it had no key for are subscribed again.
    pub fn unlock(&self, docs: Vec<DocId>) {
        let _ = self.commands.send(Command::Unlock(docs));
    }

    /// A family's document changed outside the sync (chunks kept aside for a key,
    /// opened since): the years it lists volumes of are looked at again, so a new
    /// one is synced.
    pub fn volumes_may_have_changed(&self) {
        let _ = self.commands.send(Command::Volumes);
    }

    /// Returns once the driver has handled every command sent before (a local change,
    /// an unlock): its state then says what they started. At once if it is not running.
    pub async fn barrier(&self) {
        let (done, handled) = oneshot::channel();
        if self.commands.send(Command::Barrier(done)).is_ok() {
            let _ = handled.await;
        }
    }

    /// Reconnects now if the driver is waiting to (someone is waiting for the relay).
    pub fn wake(&self) {
        let _ = self.commands.send(Command::Wake);
    }

    /// The current status and counters.
    pub fn current(&self) -> SyncState {
        *self.state.borrow()
    }

    /// Why the driver stopped for good (see [`SyncState::stopped`]), if it did.
    pub fn stopped_reason(&self) -> Option<SyncError> {
        self.stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .map(|(code, message)| SyncError::Auth { code, message })
    }

    /// Records that the driver stops with `e` (a refusal for good) so that callers
    /// waiting for a connection hear why at once; gives `e` back.
    fn stopped_for_good(&self, e: SyncError) -> SyncError {
        if let SyncError::Auth { code, message } = &e {
            *self
                .stopped
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((*code, message.clone()));
            self.state.send_modify(|s| s.stopped = true);
        }
        e
    }

    /// Why the relay's TLS certificate was last refused (see [`SyncState::untrusted`]).
    pub fn untrusted_reason(&self) -> Option<String> {
        self.untrusted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A local edit changed how many changes wait (the relay's acks change it too).
    pub fn note_pending(&self, pending: u64) {
        self.state.send_if_modified(|s| {
            let changed = s.pending != pending;
            s.pending = pending;
            changed
        });
    }

    /// Sends a request over the live connection (waiting for the sign-in if needed)
    /// and returns the relay's answer. Needs [`run`](Self::run) (or
    /// [`run_until_up_to_date`](Self::run_until_up_to_date)) running in another task.
    ///
    /// A request the relay refuses as `RateLimited` with a short wait is sent again
    /// after that wait: a refused request changed nothing, and the usual cause is this
    /// connection's own traffic — the outbox sending a burst of edits spends the
    /// connection's frame budget, and the person's tap that comes next should not fail
    /// for it. A longer wait, or waiting past [`RATE_LIMITED_WAITING`] in all, returns
    /// the refusal.
    pub async fn request(&self, body: Request) -> Result<Response> {
        let mut waited = Duration::ZERO;
        loop {
            let (tx, rx) = oneshot::channel();
            self.commands
                .send(Command::Request(body.clone(), tx))
                .map_err(|_| SyncError::Offline)?;
            let answer = rx.await.map_err(|_| SyncError::Offline)?;
            let wait = match &answer {
                Err(SyncError::Refused {
                    code: ErrorCode::RateLimited,
                    retry_after_ms: Some(ms),
                    ..
                }) => Duration::from_millis(*ms).max(RATE_LIMITED_MIN_WAIT),
                _ => return answer,
            };
            if wait > RATE_LIMITED_MAX_WAIT || waited + wait > RATE_LIMITED_WAITING {
                return answer;
            }
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "a request was rate limited; sending it again"
            );
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    /// Sends the invite `invite` of `invitee` into `family` with its sealed `card`
    /// (a signed `SendInvite`; the card is made for this invite id, so the caller
    /// chooses it).
    pub async fn send_invite(
        &self,
        invite: InviteId,
        family: FamilyId,
        invitee: UserId,
        card: Vec<u8>,
    ) -> Result<Response> {
        let (server_id, me) = self.signed_in_as().await?;
        let msg = signing::invite_message(
            &server_id,
            &invite,
            &family,
            &me,
            &self.keys.device,
            &invitee,
            &card,
        );
        self.request(Request::SendInvite {
            invite,
            family,
            invitee,
            card,
            signature: self.keys.sign_device(&msg),
        })
        .await
    }

    /// Accepts or rejects an invite (a signed `AnswerInvite`).
    pub async fn answer_invite(&self, invite: InviteId, accept: bool) -> Result<Response> {
        let (server_id, me) = self.signed_in_as().await?;
        let msg =
            signing::invite_answer_message(&server_id, &invite, &me, &self.keys.device, accept);
        self.request(Request::AnswerInvite {
            invite,
            accept,
            signature: self.keys.sign_device(&msg),
        })
        .await
    }

    /// Confirms or rejects a new device's link request (a signed `ConfirmLink`, naming
    /// the new device and its key as the request shows them).
    pub async fn confirm_link(
        &self,
        link: &doran_protocol::PendingLinkInfo,
        accept: bool,
    ) -> Result<Response> {
        let (server_id, me) = self.signed_in_as().await?;
        let msg = signing::link_confirm_message(
            &server_id,
            &link.link,
            &me,
            &self.keys.device,
            &link.device,
            &link.device_key,
            accept,
        );
        self.request(Request::ConfirmLink {
            link: link.link,
            accept,
            signature: self.keys.sign_device(&msg),
        })
        .await
    }

    /// The user this driver signed in as (or is to sign in as), if known.
    fn signed_in_user(&self) -> Option<UserId> {
        *self
            .user
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The relay's id and the user, once signed in at least once.
    async fn signed_in_as(&self) -> Result<(String, UserId)> {
        let mut state = self.state();
        loop {
            let known = (
                self.server_id
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone(),
                *self
                    .user
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            if let (Some(server_id), Some(user)) = known
                && matches!(
                    state.borrow().status,
                    SyncStatus::Syncing | SyncStatus::UpToDate
                )
            {
                return Ok((server_id, user));
            }
            state.changed().await.map_err(|_| SyncError::Offline)?;
        }
    }

    /// Connects, pushes every local change, catches up every document, and returns
    /// the number of local changes still pending (0 unless the relay kept some back).
    /// Retries with backoff until `timeout`.
    pub async fn run_until_up_to_date(&self, timeout: Duration) -> Result<u64> {
        let mut runner = self.runner.lock().await;
        match tokio::time::timeout(timeout, self.drive(&mut runner, Mode::UntilUpToDate)).await {
            Ok(result) => result,
            Err(_) => Err(SyncError::Timeout),
        }?;
        Ok(self.host.pending_count()?)
    }

    /// Stays connected, reconnecting with backoff, until the relay refuses this device
    /// for good (the error says why). Cancel the future to stop.
    pub async fn run(&self) -> Result<()> {
        let mut runner = self.runner.lock().await;
        self.drive(&mut runner, Mode::Forever).await
    }

    async fn drive(&self, r: &mut Runner, mode: Mode) -> Result<()> {
        loop {
            if let Some(e) = r.fatal.take() {
                return Err(self.stopped_for_good(e));
            }
            let docs = self.blocking(|h| h.doc_cursors()).await?;
            let connected = match tokio::time::timeout(CONNECT_TIMEOUT, connect(&self.relay)).await
            {
                Ok(result) => result.map_err(|e| SyncError::connecting_ws(&e)),
                Err(_) => Err(SyncError::Unreachable("connecting timed out".to_owned())),
            };
            match connected {
                Ok((mut ws, _)) => {
                    let before = self.current().sign_ins;
                    let fx = r.machine.handle(now_ms(), Event::Connected { docs });
                    let flow = self.session(r, &mut ws, fx, mode).await;
                    let _ = ws.close(None).await;
                    if let Flow::Done = flow {
                        return Ok(());
                    }
                    if self.current().sign_ins == before {
                        // Closed before signing in: as good as unreachable.
                        self.state.send_modify(|s| s.failures += 1);
                    }
                }
                Err(e) => {
                    tracing::debug!(relay = %self.relay.base(), error = %e, "cannot connect");
                    let untrusted = match &e {
                        SyncError::Untrusted(why) => {
                            *self
                                .untrusted
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                                Some(why.clone());
                            true
                        }
                        _ => false,
                    };
                    let fx = r.machine.handle(
                        now_ms(),
                        Event::ConnectFailed {
                            reason: e.to_string(),
                        },
                    );
                    self.publish_status(&fx);
                    self.state.send_modify(|s| {
                        s.failures += 1;
                        s.untrusted = untrusted;
                    });
                    r.reconnect_after = fx.reconnect_after;
                }
            }
            if let Some(e) = r.fatal.take() {
                return Err(self.stopped_for_good(e));
            }
            let delay = r.reconnect_after.take().unwrap_or(1_000);
            // While offline, requests are queued in the machine until the next sign-in.
            let sleep = tokio::time::sleep(Duration::from_millis(delay));
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    cmd = r.commands.recv() => match cmd {
                        Some(Command::Request(body, reply)) => {
                            let (id, fx) = r.machine.request(now_ms(), body);
                            r.waiting.insert(id, reply);
                            self.answer(r, &fx);
                        }
                        // (Offline: the next sign-in looks at every family's volumes.)
                        Some(Command::LocalChange | Command::Volumes) => {}
                        Some(Command::Unlock(docs)) => {
                            let _ = r.machine.handle(now_ms(), Event::Unlocked { docs });
                        }
                        Some(Command::Wake) => break,
                        Some(Command::Barrier(done)) => {
                            let _ = done.send(());
                        }
                        None => return Err(SyncError::Offline),
                    },
                }
            }
        }
    }

    /// One connection: feed frames, commands and ticks to the machine until it closes.
    async fn session(&self, r: &mut Runner, ws: &mut Ws, first: Effects, mode: Mode) -> Flow {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        let mut fx = first;
        loop {
            match self.execute(r, ws, fx).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Close) => return Flow::Close,
                Ok(Flow::Done) => return Flow::Done,
                Err(e) => {
                    self.emit(SyncEvent::Error(Arc::new(e)));
                    let fx = r.machine.handle(
                        now_ms(),
                        Event::Disconnected {
                            reason: "a local failure".into(),
                        },
                    );
                    r.reconnect_after = fx.reconnect_after;
                    self.publish_status(&fx);
                    return Flow::Close;
                }
            }
            if mode == Mode::UntilUpToDate && r.machine.status() == SyncStatus::UpToDate {
                // A short-lived process (a command) may never sit idle: keep its copies
                // short before it goes.
                self.compact_stored().await;
                return Flow::Done;
            }
            fx = tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(bytes))) => match codec::decode_server(&bytes) {
                        Ok(frame) => r.machine.handle(now_ms(), Event::Frame(frame)),
                        Err(e) => {
                            self.emit(SyncEvent::Error(Arc::new(SyncError::Protocol(e.to_string()))));
                            Effects::default()
                        }
                    },
                    Some(Ok(Message::Close(_))) | None => {
                        r.machine.handle(now_ms(), Event::Disconnected { reason: "closed".into() })
                    }
                    Some(Ok(_)) => Effects::default(),
                    Some(Err(e)) => {
                        r.machine.handle(now_ms(), Event::Disconnected { reason: e.to_string() })
                    }
                },
                cmd = r.commands.recv() => match cmd {
                    Some(Command::Request(body, reply)) => {
                        let (id, fx) = r.machine.request(now_ms(), body);
                        r.waiting.insert(id, reply);
                        fx
                    }
                    Some(Command::LocalChange) => {
                        let mut fx = r.machine.handle(now_ms(), Event::LocalChange);
                        // An edit may have listed a new year's volume.
                        fx.merge(self.tell_volumes(&mut r.machine, false).await);
                        fx
                    }
                    Some(Command::Unlock(docs)) => r.machine.handle(now_ms(), Event::Unlocked { docs }),
                    Some(Command::Volumes) => self.tell_volumes(&mut r.machine, false).await,
                    Some(Command::Wake) => Effects::default(),
                    Some(Command::Barrier(done)) => {
                        let _ = done.send(());
                        Effects::default()
                    }
                    None => return Flow::Close,
                },
                _ = tick.tick() => {
                    ticks += 1;
                    if ticks.is_multiple_of(COMPACT_EVERY_TICKS) && r.machine.status() == SyncStatus::UpToDate {
                        self.compact_in_background();
                    }
                    r.machine.handle(now_ms(), Event::Tick)
                }
            };
        }
    }

    /// Compacts the stored copies whose tails grew long ([`SyncHost::compact_stored`])
    /// on the blocking pool, unless a compaction already runs; the session and the
    /// app's edits go on meanwhile (it works on a copy it loads from the store).
    fn compact_in_background(&self) {
        let Some(running) = Compacting::start(&self.compacting) else {
            return;
        };
        let host = Arc::clone(&self.host);
        crate::task::spawn_blocking(move || {
            let _running = running;
            log_compaction(host.compact_stored());
        });
    }

    /// Compacts the stored copies whose tails grew long, and waits for it (nothing if
    /// a compaction already runs: it does the same work).
    pub(crate) async fn compact_stored(&self) {
        let Some(running) = Compacting::start(&self.compacting) else {
            return;
        };
        let host = Arc::clone(&self.host);
        let done = crate::task::spawn_blocking(move || {
            let _running = running;
            host.compact_stored()
        })
        .await;
        match done {
            Ok(result) => log_compaction(result),
            Err(e) => tracing::warn!(error = %e, "the compaction of stored copies stopped"),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn SyncHost) -> doran_client_core::sync::HostResult<T> + Send + 'static,
    ) -> Result<T> {
        let host = Arc::clone(&self.host);
        Ok(crate::task::spawn_blocking(move || f(&*host))
            .await
            .map_err(|e| SyncError::Protocol(format!("a store task failed: {e}")))??)
    }

    fn emit(&self, event: SyncEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    fn publish_status(&self, fx: &Effects) {
        if let Some(status) = fx.status {
            self.state.send_modify(|s| s.status = status);
        }
    }

    fn answer(&self, r: &mut Runner, fx: &Effects) {
        for (id, outcome) in &fx.answered {
            if let Some(reply) = r.waiting.remove(id) {
                let result = match outcome {
                    RequestOutcome::Response(body) => Ok(body.clone()),
                    RequestOutcome::Refused(e) => Err(SyncError::from(e.clone())),
                    RequestOutcome::Disconnected => Err(SyncError::Offline),
                };
                let _ = reply.send(result);
            }
        }
    }

    /// Executes effects in field order; effects of events fed back (outbox listings,
    /// uploaded snapshots) are executed after.
    async fn execute(&self, r: &mut Runner, ws: &mut Ws, fx: Effects) -> Result<Flow> {
        let mut queue = VecDeque::from([fx]);
        let mut flow = Flow::Continue;
        while let Some(fx) = queue.pop_front() {
            for frame in &fx.send {
                let bytes =
                    codec::encode_client(frame).map_err(|e| SyncError::Protocol(e.to_string()))?;
                if let Err(e) = ws.send(Message::Binary(bytes.into())).await {
                    tracing::debug!(error = %e, "send failed");
                    let more = r.machine.handle(
                        now_ms(),
                        Event::Disconnected {
                            reason: e.to_string(),
                        },
                    );
                    queue.push_back(more);
                    break;
                }
            }
            for &doc in &fx.reset_cursors {
                self.blocking(move |h| h.reset_cursor(doc)).await?;
            }
            // Documents whose snapshot could not be fetched: nothing more of them is
            // applied or compacted in this batch; the others go on.
            let mut stalled: HashSet<DocId> = HashSet::new();
            // Families whose key log moved or whose document waits for a key: told
            // once this batch's acks are in (an own entry takes its place at its ack).
            let mut keys: Vec<FamilyId> = Vec::new();
            for apply in fx.apply.clone() {
                if stalled.contains(&apply.doc) {
                    continue;
                }
                let snapshot = match apply.snapshot {
                    Some(s) => match self.blobs.get_at_most(s.blob, s.len).await {
                        Ok(bytes) => Some(bytes),
                        Err(e) => {
                            tracing::warn!(doc = %apply.doc, error = %e, "a snapshot could not be fetched");
                            self.emit(SyncEvent::Error(Arc::new(e)));
                            stalled.insert(apply.doc);
                            let event = Event::SnapshotUnavailable { doc: apply.doc };
                            queue.push_back(r.machine.handle(now_ms(), event));
                            continue;
                        }
                    },
                    None => None,
                };
                let arrived = apply.chunks.len() + usize::from(snapshot.is_some());
                let (doc, kind) = (apply.doc, apply.kind);
                let change: DocChange = self
                    .blocking(move |h| {
                        h.apply(
                            apply.doc,
                            apply.kind,
                            snapshot.as_deref(),
                            &apply.chunks,
                            apply.cursor,
                        )
                    })
                    .await?;
                let tampered: Vec<Seq> = {
                    let mut told = self
                        .tampered
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    change
                        .tampered
                        .iter()
                        .copied()
                        .filter(|seq| told.insert((doc, *seq)))
                        .collect()
                };
                if !tampered.is_empty() {
                    // Refused already (nothing of them is taken); the user is told.
                    self.emit(SyncEvent::Error(Arc::new(SyncError::Tampered {
                        doc,
                        seqs: tampered,
                    })));
                }
                if !change.unlocked.is_empty() {
                    // Personal documents a family document brought keys for.
                    let docs = change.unlocked.clone();
                    queue.push_back(r.machine.handle(now_ms(), Event::Unlocked { docs }));
                }
                let key_group = match kind {
                    DocKind::Family(family)
                    | DocKind::KeyLog(family)
                    | DocKind::Volume(family, _) => Some(family),
                    DocKind::Personal(_) => Some(personal_group(doc)),
                };
                match (kind, key_group) {
                    (kind, Some(family)) if change.locked_at.is_some() => {
                        stalled.insert(doc);
                        let cursor = change.locked_at.unwrap_or_default();
                        queue.push_back(
                            r.machine.handle(now_ms(), Event::DocLocked { doc, cursor }),
                        );
                        // A co-member's personal document waits for a family
                        // document to bring its key (`DocChange::unlocked`); this
                        // user's own waits for its key group.
                        let own_or_family = match kind {
                            DocKind::Personal(owner) => Some(owner) == self.signed_in_user(),
                            DocKind::Family(_) | DocKind::KeyLog(_) | DocKind::Volume(..) => true,
                        };
                        if own_or_family && !keys.contains(&family) {
                            keys.push(family);
                        }
                    }
                    (DocKind::KeyLog(family), _) if !keys.contains(&family) => keys.push(family),
                    _ => {}
                }
                let personal_changed =
                    matches!(kind, DocKind::Personal(_)) && arrived > change.refused;
                if personal_changed || !change.touched.is_empty() || !change.new_activity.is_empty()
                {
                    self.emit(SyncEvent::DocChanged {
                        doc,
                        kind,
                        touched: change.touched,
                        new_activity: change.new_activity,
                    });
                }
            }
            // A family's document may list a year's volume now.
            let mut volumes_changed = fx
                .apply
                .iter()
                .any(|a| matches!(a.kind, DocKind::Family(_)));
            let acked = fx.acked.clone();
            let refused: Vec<_> = fx.refused.iter().map(|(d, c, _)| (*d, *c)).collect();
            if !acked.is_empty() || !refused.is_empty() {
                let (pending, took_up) = self
                    .blocking(move |h| {
                        for (doc, chunk, seq) in acked {
                            h.acked_at(doc, chunk, seq)?;
                        }
                        for (doc, chunk) in refused {
                            h.acked(doc, chunk)?;
                        }
                        Ok((h.pending_count()?, h.took_up_volumes()))
                    })
                    .await?;
                self.state.send_modify(|s| s.pending = pending);
                // (A family this device sealed keeps volumes once its first sealed
                // chunk is acked: the years its members listed meanwhile open now.)
                volumes_changed |= took_up;
            }
            if volumes_changed {
                queue.push_back(self.tell_volumes(&mut r.machine, false).await);
            }
            if !fx.acked.is_empty() || !fx.apply.is_empty() {
                // A family this device sealed: its sealed snapshot, once its first
                // sealed chunk has a seq (the relay then drops the clear history
                // when another member's device confirms it).
                let owed = self.blocking(|h| h.snapshots_owed()).await?;
                for doc in owed {
                    queue.push_back(r.machine.handle(now_ms(), Event::CompactNow { doc }));
                }
            }
            for family in keys {
                self.emit(SyncEvent::Keys { family });
            }
            for (doc, chunk, code) in &fx.refused {
                self.emit(SyncEvent::Error(Arc::new(SyncError::Refused {
                    code: *code,
                    message: format!("chunk {chunk} of {doc} refused"),
                    retry_after_ms: None,
                })));
            }
            if let Some(want) = fx.want_outbox {
                let entries = self
                    .blocking(move |h| h.outbox(want.after, want.limit))
                    .await?;
                queue.push_back(r.machine.handle(now_ms(), Event::Outbox(entries)));
            }
            for (doc, code) in &fx.dropped {
                self.emit(SyncEvent::DocDropped {
                    doc: *doc,
                    code: *code,
                });
            }
            for c in &fx.compact {
                if stalled.contains(&c.doc) {
                    let event = Event::CompactSkipped { doc: c.doc };
                    queue.push_back(r.machine.handle(now_ms(), event));
                    continue;
                }
                let event = match self.compact(*c).await {
                    Ok(event) => event,
                    Err(e) => {
                        tracing::warn!(doc = %c.doc, error = %e, "compaction failed");
                        Event::CompactFailed { doc: c.doc }
                    }
                };
                queue.push_back(r.machine.handle(now_ms(), event));
            }
            for v in &fx.verify_snapshots {
                let event = self.verify_snapshot(*v).await;
                queue.push_back(r.machine.handle(now_ms(), event));
            }
            for &(doc, covers) in &fx.snapshot_accepted {
                self.blocking(move |h| h.snapshot_accepted(doc, covers))
                    .await?;
            }
            // The sign-in's family list first: a caller woken by the new status or an
            // answer (a leave just finished, say) must not have its own change to the
            // families overwritten by this older list afterwards.
            if let Some(info) = fx.signed_in.clone() {
                self.signed_in(&r.machine, info).await?;
                queue.push_back(self.tell_volumes(&mut r.machine, true).await);
            }
            // Beside the loop: a `GET /server-id` the upload pump started a moment
            // earlier is awaited, not raced.
            if let (Some(key), Some(server_id)) = (fx.http_session, r.machine.server_id()) {
                let (blobs, server_id) = (self.blobs.clone(), server_id.to_owned());
                tokio::spawn(async move { blobs.adopt_session(&server_id, key).await });
            }
            // The status before the answers: a caller woken by its answer sees the
            // state the answer left (e.g. syncing a family just joined), not the one
            // before.
            self.publish_status(&fx);
            self.answer(r, &fx);
            for event in &fx.events {
                self.emit(SyncEvent::Server(event.clone()));
            }
            for e in &fx.errors {
                tracing::warn!(code = %e.code, message = %e.message, "the relay refused something");
                self.emit(SyncEvent::Error(Arc::new(SyncError::from(e.clone()))));
            }
            if let Some(fatal) = &fx.fatal {
                r.fatal = Some(SyncError::Auth {
                    code: fatal.code,
                    message: fatal.message.clone(),
                });
            }
            if fx.reconnect_after.is_some() {
                r.reconnect_after = fx.reconnect_after;
            }
            if fx.close {
                flow = Flow::Close;
            }
        }
        Ok(flow)
    }

    /// Tells the machine which years the families' documents list volumes of
    /// ([`SyncHost::listed_volumes`]; `all`: every family this device keeps, after a
    /// sign-in), so it opens and syncs them.
    async fn tell_volumes(&self, machine: &mut SyncMachine, all: bool) -> Effects {
        match self.blocking(move |h| h.listed_volumes(all)).await {
            Ok(listed) if !listed.is_empty() => machine.handle(now_ms(), Event::Volumes { listed }),
            Ok(_) => Effects::default(),
            Err(e) => {
                tracing::warn!(error = %e, "the families' volumes could not be listed");
                Effects::default()
            }
        }
    }

    async fn signed_in(&self, machine: &SyncMachine, info: SignedIn) -> Result<()> {
        self.state.send_modify(|s| {
            s.failures = 0;
            s.sign_ins += 1;
            s.untrusted = false;
        });
        *self
            .server_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            machine.server_id().map(str::to_owned);
        *self
            .user
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(info.user);
        let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        let changed = self.blocking(move |h| h.signed_in(&info, now)).await?;
        if !changed.is_empty() {
            self.emit(SyncEvent::Memberships(changed));
        }
        Ok(())
    }

    /// Fetches another member's pending snapshot and checks it against this device's
    /// copy (see [`SyncHost::check_snapshot`]). A blob that cannot be fetched, or a
    /// check that fails here, is "cannot tell": nothing is confirmed or reported.
    async fn verify_snapshot(&self, v: VerifySnapshot) -> Event {
        let VerifySnapshot {
            doc,
            kind,
            snapshot,
            by,
        } = v;
        let check = match self.blobs.get_at_most(snapshot.blob, snapshot.len).await {
            Ok(bytes) => self
                .blocking(move |h| h.check_snapshot(doc, kind, (snapshot.covers_seq, by), &bytes))
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(%doc, error = %e, "a pending snapshot could not be checked");
                    SnapshotCheck::CannotTell
                }),
            Err(e) => {
                tracing::warn!(%doc, error = %e, "a pending snapshot could not be fetched");
                SnapshotCheck::CannotTell
            }
        };
        Event::SnapshotChecked {
            doc,
            covers_seq: snapshot.covers_seq,
            blob: snapshot.blob,
            check,
        }
    }

    /// Saves the document, uploads it for its owner (the family, or this user for
    /// the personal document), and says so.
    async fn compact(&self, c: Compact) -> Result<Event> {
        let Compact {
            doc,
            kind,
            covers_seq,
        } = c;
        let saved = self
            .blocking(move |h| {
                // A family sealed after its creation: only a snapshot covering every
                // clear chunk (see `StoreHost::may_snapshot`).
                if !h.snapshot_allowed(kind, covers_seq)? {
                    return Ok(Err(()));
                }
                h.save(doc, kind).map(Ok)
            })
            .await?;
        let Ok(saved) = saved else {
            tracing::debug!(%doc, covers_seq, "no snapshot yet: the family's clear chunks go on past it");
            return Ok(Event::CompactSkipped { doc });
        };
        let Some(bytes) = saved else {
            // Not stored here, or sealed under keys this device has not been given yet
            // (a family that just turned sealed): no snapshot from it now.
            tracing::debug!(%doc, "no snapshot of this document from this device now");
            return Ok(Event::CompactSkipped { doc });
        };
        let blob = doran_protocol::BlobHash::of(&bytes);
        let len = bytes.len() as u64;
        self.blobs.put(blob, c.owner(), bytes).await?;
        Ok(Event::SnapshotUploaded {
            doc,
            covers_seq,
            blob,
            len,
        })
    }
}

/// A compaction of the stored copies running: the flag is down again when it ends,
/// however it ends (a panic included), so the next idle moment can start one.
struct Compacting(Arc<std::sync::atomic::AtomicBool>);

impl Compacting {
    /// `None` if one runs already.
    fn start(flag: &Arc<std::sync::atomic::AtomicBool>) -> Option<Self> {
        let busy = flag.swap(true, std::sync::atomic::Ordering::AcqRel);
        (!busy).then(|| Compacting(Arc::clone(flag)))
    }
}

impl Drop for Compacting {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// A compaction of stored copies is housekeeping: a failure leaves the longer tail.
fn log_compaction(result: doran_client_core::sync::HostResult<usize>) {
    match result {
        Ok(0) => {}
        Ok(documents) => tracing::debug!(documents, "stored copies compacted"),
        Err(e) => tracing::warn!(error = %e, "cannot compact the stored copies now"),
    }
}

/// Signs a new device in once (registration, recovery or a link code) and returns who
/// it is; the connection is then closed. Used to create an account before the
/// documents exist: the user id is only known from the relay's answer.
pub async fn enroll(
    at: Enrolment<'_>,
    keys: DeviceKeys,
    sign_in: SignInAs,
) -> Result<(SignedIn, String)> {
    let Enrolment {
        relay,
        client,
        timeout,
    } = at;
    let run = async {
        let (mut ws, _) = connect(relay)
            .await
            .map_err(|e| SyncError::connecting_ws(&e))?;
        let config = SyncConfig {
            client: client.to_owned(),
            relay_address: Some(relay.address()),
            ..SyncConfig::default()
        };
        let mut machine = SyncMachine::new(keys, sign_in.clone(), config, 0);
        let mut fx = machine.handle(now_ms(), Event::Connected { docs: Vec::new() });
        loop {
            for frame in &fx.send {
                let bytes =
                    codec::encode_client(frame).map_err(|e| SyncError::Protocol(e.to_string()))?;
                ws.send(Message::Binary(bytes.into()))
                    .await
                    .map_err(|e| SyncError::Unreachable(e.to_string()))?;
            }
            if let Some(info) = fx.signed_in.take() {
                let server_id = machine.server_id().unwrap_or_default().to_owned();
                let _ = ws.close(None).await;
                return Ok((info, server_id));
            }
            if let Some(f) = fx.fatal.take() {
                return Err(enroll_refusal(&sign_in, f.code, f.message));
            }
            if fx.close {
                return Err(SyncError::Unreachable(
                    "the relay closed the connection".into(),
                ));
            }
            fx = match ws.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    let frame = codec::decode_server(&bytes)
                        .map_err(|e| SyncError::Protocol(e.to_string()))?;
                    if let doran_protocol::ServerFrame::Error(e) = &frame
                        && e.doc.is_none()
                        && e.request.is_none()
                    {
                        return Err(enroll_refusal(&sign_in, e.code, e.message.clone()));
                    }
                    machine.handle(now_ms(), Event::Frame(frame))
                }
                Some(Ok(_)) => Effects::default(),
                Some(Err(e)) => return Err(SyncError::Unreachable(e.to_string())),
                None => return Err(SyncError::Unreachable("the connection closed".into())),
            };
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| SyncError::Timeout)?
}

/// The error for a refused enrolment: a registration refused with `already_exists`
/// is [`SyncError::EmailTaken`] (the email is the only field a person chose; the ids
/// and keys are random), anything else [`SyncError::Auth`].
fn enroll_refusal(sign_in: &SignInAs, code: ErrorCode, message: String) -> SyncError {
    match sign_in {
        SignInAs::Register { email, .. } if code == ErrorCode::AlreadyExists => {
            SyncError::EmailTaken {
                email: email.clone(),
            }
        }
        _ => SyncError::Auth { code, message },
    }
}
