//! Talking to the relay: requests over the live connection, "sync now", the status.

use std::time::Duration;

use doran_client_core::sync::SyncStatus;
use doran_protocol::{Request, Response};

use super::Device;
use crate::{
    error::{Error, ErrorCode, Result},
    screens::{SyncReport, SyncView},
    sync_error::SyncError,
};

/// How long a relay call may take once connected.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How many connection attempts in a row may fail before a caller waiting for the
/// relay is told "offline" (two: one retry, about a second apart).
const ATTEMPTS_BEFORE_OFFLINE: u64 = 2;

/// How long accepting an invite to a sealed family waits for a member's device to let
/// this one in: a member online does it in about a second; with nobody online the
/// answer should not hang, and the member entry is written once the keys come.
pub(crate) const KEYS_WAIT: Duration = Duration::from_secs(8);

/// How many times a sync takes the key logs further and sends what that appended
/// (adding a device is a Commit, then a history entry once it is back).
const KEY_ROUNDS: usize = 4;

/// Until the driver is up to date with nothing of this device's waiting, or
/// `deadline`; whether it got there.
async fn wait_up_to_date(session: &super::Session, deadline: tokio::time::Instant) -> bool {
    let mut state = session.driver.state();
    let up_to_date = async {
        loop {
            let now = *state.borrow_and_update();
            // Up to date with nothing of this device's waiting (an edit just made
            // counts before the driver has even seen it).
            if now.status == SyncStatus::UpToDate && now.pending == 0 {
                return true;
            }
            if state.changed().await.is_err() {
                return false;
            }
        }
    };
    tokio::time::timeout_at(deadline, up_to_date)
        .await
        .unwrap_or(false)
}

/// Takes every sealed family's key log as far as it goes now and sends what that
/// appended — a few rounds at most, each one's entries what the next builds on (a
/// Commit adding a device, then its history entry once the Commit is back). Whether
/// the driver got up to date after the last round, if any round moved something.
pub(crate) async fn finish_key_work(
    session: &super::Session,
    deadline: tokio::time::Instant,
) -> Option<bool> {
    let mut reached = None;
    for _ in 0..KEY_ROUNDS {
        if session.settle_keys(deadline).await == 0 {
            break;
        }
        reached = Some(wait_up_to_date(session, deadline).await);
    }
    reached
}

impl Device {
    /// The connection status and how many local changes wait.
    pub fn sync_state(&self) -> SyncView {
        match self.shared().session_now() {
            Some(s) => {
                let st = s.driver.current();
                SyncView {
                    status: st.status,
                    pending: st.pending,
                }
            }
            None => SyncView {
                status: SyncStatus::Offline,
                pending: 0,
            },
        }
    }

    /// Why this device's sync stopped for good, if it did: the relay refused it for
    /// good, or it refused the relay (`bad_relay`: its id names another address). It
    /// does not start again in this process.
    pub fn sync_stopped(&self) -> Option<Error> {
        let session = self.shared().session_now()?;
        let e = session.driver.stopped_reason()?;
        Some(Error::from_sync(&e, self.language()))
    }

    /// How many local changes wait for the relay (read from the store).
    pub async fn pending(&self) -> Result<u64> {
        let store = std::sync::Arc::clone(&self.shared().store);
        self.blocking(move |lang| {
            store
                .pending_count()
                .map_err(|e| Error::from_store(&e, lang))
        })
        .await
    }

    /// Waits until the device is signed in to the relay (starting the sync if it is
    /// not running, and reconnecting at once if it was waiting to), or says
    /// [`ErrorCode::Offline`] as soon as the relay turns out to be unreachable, or why
    /// the sync stopped for good (e.g. `bad_relay`: the relay's id names another
    /// address).
    pub(crate) async fn connected(&self, within: Duration) -> Result<()> {
        let lang = self.language();
        let session = self.session()?;
        self.start_sync();
        let mut state = session.driver.state();
        let start = *state.borrow_and_update();
        if matches!(start.status, SyncStatus::Syncing | SyncStatus::UpToDate) {
            return Ok(());
        }
        session.driver.wake();
        let wait = async {
            loop {
                let now = *state.borrow_and_update();
                if matches!(now.status, SyncStatus::Syncing | SyncStatus::UpToDate) {
                    return Ok(());
                }
                if now.stopped
                    && let Some(e) = self.sync_stopped()
                {
                    return Err(e);
                }
                if now.failures > start.failures && now.untrusted {
                    let why = session.driver.untrusted_reason().unwrap_or_default();
                    return Err(Error::untrusted(&why, lang));
                }
                if now.failures >= start.failures + ATTEMPTS_BEFORE_OFFLINE {
                    return Err(Error::offline(lang));
                }
                if state.changed().await.is_err() {
                    return Err(Error::offline(lang));
                }
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .map_err(|_| Error::offline(lang))?
    }

    /// A request to the relay over the live connection: fails fast with
    /// [`ErrorCode::Offline`] when the relay cannot be reached.
    pub(crate) async fn request(&self, body: Request) -> Result<Response> {
        let lang = self.language();
        self.connected(REQUEST_TIMEOUT).await?;
        let driver = std::sync::Arc::clone(&self.session()?.driver);
        match tokio::time::timeout(REQUEST_TIMEOUT, driver.request(body)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(Error::from_sync(&e, lang)),
            Err(_) => Err(Error::code(ErrorCode::Timeout, lang)),
        }
    }

    /// A request the relay answers with `Done`.
    pub(crate) async fn expect_done(&self, body: Request) -> Result<()> {
        match self.request(body).await? {
            Response::Done => Ok(()),
            other => Err(self.unexpected(&other)),
        }
    }

    /// An answer that does not fit the question.
    pub(crate) fn unexpected(&self, response: &Response) -> Error {
        tracing::warn!(?response, "unexpected answer from the relay");
        Error::code(ErrorCode::Relay, self.language())
    }

    /// Sends every local change and blob and receives everything, waiting at most
    /// `timeout`. With the relay unreachable it says so at once
    /// ([`ErrorCode::Offline`]: the changes stay queued on this device); a connection
    /// that breaks midway is retried until `timeout`.
    pub async fn sync_now(&self, timeout: Duration) -> Result<SyncReport> {
        self.sync_with(timeout, true).await
    }

    /// [`sync_now`](Self::sync_now), taking the key logs further or not: a device
    /// leaving a family must not make a Commit there (adding a device that asked, a
    /// refresh) whose history entry it would never send.
    pub(crate) async fn sync_with(&self, timeout: Duration, keys: bool) -> Result<SyncReport> {
        let session = self.session()?;
        let deadline = tokio::time::Instant::now() + timeout;
        self.connected(timeout).await?;
        let docs_reached = wait_up_to_date(&session, deadline).await;
        let mut reached = docs_reached;
        // This device's key package is on the relay when a sync returns (one small
        // read when it is already): the key task publishes it too, but a short-lived
        // command may end before that task has started (a new account's first sync,
        // which must leave it there before anyone invites the account). Sent before
        // the key work below, which may take the rest of the time (a new account
        // starts its profile key group), so a member inviting this account right
        // after lets its device in at once.
        if keys {
            // And its certificates (its own, by the user key it holds; those of the
            // devices it confirmed links for): a member's device adds this device
            // only once a chain vouches for it, and the task that also sends them
            // after a sign-in may not have run before a short-lived command ends (an
            // invitee's new account then stayed out of the family it was invited to).
            let store = std::sync::Arc::clone(&self.shared().store);
            let certs = crate::certs::publish(&store, &session.driver, &session.account);
            match tokio::time::timeout_at(deadline, certs).await {
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "the device certificates wait for the next sync")
                }
                Err(_) => tracing::debug!("the device certificates wait for the next sync"),
                Ok(Ok(())) => {}
            }
            let published = crate::keys::publish_package(&session, false);
            match tokio::time::timeout_at(deadline, published).await {
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "the key package waits for the next sync")
                }
                Err(_) => tracing::debug!("the key package waits for the next sync"),
                Ok(Ok(())) => {}
            }
        }
        // Key work this sync brought (a new member's key package: add them, then the
        // history entry once that Commit is back; this device let in: open the
        // family) is finished before returning, so a `doran sync` lets a waiting
        // member in. A few rounds at most: each one's entries are what the next one
        // builds on. Tried whatever `pending` says (a change that cannot be sent must
        // not keep a member from letting others in).
        if keys && let Some(up) = finish_key_work(&session, deadline).await {
            reached = up;
        }
        tracing::debug!(reached, state = ?session.driver.current(), "sync_now");
        // Blobs queued on this device go up now too.
        let mut blob_error = None;
        if docs_reached || reached {
            let upload = session.blobs.upload_pending(session.driver.blobs());
            match tokio::time::timeout_at(deadline, upload).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => blob_error = Some(e),
                Err(_) => blob_error = Some(SyncError::Timeout),
            }
        }
        let pending = self.pending().await?;
        let blobs = session.blobs.clone();
        let pending_blobs = self
            .blocking(move |lang| {
                blobs
                    .pending_count()
                    .map_err(|e| Error::from_sync(&e, lang))
            })
            .await?;
        if let Some(e) = blob_error {
            tracing::warn!(error = %e, "blob upload failed; it stays queued");
        }
        Ok(SyncReport {
            up_to_date: reached && pending == 0 && pending_blobs == 0,
            pending,
            pending_blobs,
        })
    }

    /// Waits (up to [`KEYS_WAIT`]) until this device can read the family's
    /// document: at once for a family that is not sealed; for a sealed one, once a
    /// member's device has let this one into the family's key group and the document
    /// has caught up. False if it cannot yet.
    pub(crate) async fn wait_for_keys(
        &self,
        session: &std::sync::Arc<super::Session>,
        family: doran_protocol::FamilyId,
    ) -> bool {
        // Subscribed first: a change announced while checking is not missed.
        let mut events = self.subscribe();
        let deadline = tokio::time::Instant::now() + KEYS_WAIT;
        loop {
            let host = std::sync::Arc::clone(&session.host);
            let readable = crate::task::spawn_blocking(move || {
                (host.sealing_known(family) && !host.is_sealed(family))
                    || host
                        .read_family(family, |fd| {
                            doran_client_core::rules::host_of(fd.replica_mut().doc()).is_some()
                        })
                        .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            if readable {
                return true;
            }
            // The document changes when it opens.
            let hex = family.to_hex();
            let changed = tokio::time::timeout_at(deadline, async {
                while let Some(event) = events.next().await {
                    if matches!(&event, crate::DeviceEvent::FamilyChanged { family: f, .. } if *f == hex)
                    {
                        return true;
                    }
                }
                false
            })
            .await;
            if !matches!(changed, Ok(true)) {
                return false;
            }
        }
    }
}
