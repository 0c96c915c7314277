//! Accounts and devices: create, restore from the phrase, link with a code, sign out;
//! the recovery phrase; the user's devices (list, revoke, issue a link code, confirm
//! or reject a new device that presented one).

use std::{sync::Arc, time::Duration};

use doran_client_core::group::certified_devices;
use doran_protocol::{DeviceId, FamilyId, LinkId, Request, Response, UserId};

use super::{Device, Shared};
use crate::{
    account::{self, Account},
    error::{Error, ErrorCode, Result},
    events::DeviceEvent,
    relay::Relay,
    screens::{AccountView, DeviceView, LinkCodeView, PendingLinkView},
};

/// How long enrolling a device (register, restore, link) may take.
const ENROLL_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a device that confirmed a link takes its key work further while it waits
/// for the new device to publish its key package.
const LINKED_POLL: Duration = Duration::from_millis(200);

impl Device {
    /// The account on this device, if any.
    pub async fn account(&self) -> Result<Option<AccountView>> {
        let Some(session) = self.shared().session_now() else {
            return Ok(None);
        };
        let me = session.account.user;
        let host = Arc::clone(&session.host);
        let account = session.account.clone();
        let language = self.language().code().to_owned();
        self.blocking(move |_| {
            // The personal document knows the current nickname (the account row has
            // the one at registration, or none on a linked device).
            let profile = host.profile(me).ok().flatten();
            let nickname = profile
                .as_ref()
                .map(|p| p.nickname.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or(account.nickname.clone());
            // A device added with the phrase or a code learns the email from the
            // profile the first device wrote.
            let email = Some(account.email.clone())
                .filter(|e| !e.is_empty())
                .or_else(|| profile.and_then(|p| p.email))
                .unwrap_or_default();
            Ok(Some(AccountView {
                user: account.user.to_hex(),
                device: account.device.to_hex(),
                email,
                nickname,
                server: account.server.clone(),
                has_recovery_phrase: account.user_key.is_some(),
                language,
            }))
        })
        .await
    }

    fn refuse_second_account(&self) -> Result<()> {
        match self.shared().session_now() {
            Some(_) => Err(Error::code(ErrorCode::HasAccount, self.language())),
            None => Ok(()),
        }
    }

    fn relay(&self, server: &str) -> Result<Relay> {
        Relay::new(server, &self.shared().options.trust)
            .map_err(|e| Error::from_relay(&e, self.language()))
    }

    /// Creates an account on the relay at `server` (new keys, made here) with `email`
    /// as its searchable label and `nickname`; the user's language is this device's.
    pub async fn create_account(
        &self,
        server: &str,
        email: &str,
        nickname: &str,
    ) -> Result<AccountView> {
        self.refuse_second_account()?;
        let relay = self.relay(server)?;
        let lang = self.language();
        let s = Arc::clone(self.shared());
        let account = account::create_account(
            &s.store,
            &*s.secrets,
            enrolment(&relay, &s),
            email,
            nickname,
        )
        .await
        .map_err(|e| Error::from_sync(&e, lang))?;
        self.attach(account).await?;
        // The user's language starts as the device's (the system locale).
        self.set_settings_language(lang).await?;
        self.after_enrolment().await
    }

    /// Restores the account onto this device from its 24-word recovery phrase.
    pub async fn restore_account(&self, server: &str, phrase: &str) -> Result<AccountView> {
        self.refuse_second_account()?;
        let relay = self.relay(server)?;
        let lang = self.language();
        let s = Arc::clone(self.shared());
        let account =
            account::recover_account(&s.store, &*s.secrets, enrolment(&relay, &s), phrase)
                .await
                .map_err(|e| Error::from_sync(&e, lang))?;
        self.attach(account).await?;
        self.after_enrolment().await
    }

    /// Links this device to an existing account with a code shown on one of its
    /// devices ([`issue_link_code`](Self::issue_link_code)). The code alone adds
    /// nothing: this waits until a device of the account confirms it
    /// ([`confirm_link`](Self::confirm_link)); meanwhile
    /// [`DeviceEvent::LinkWaiting`] carries this device's fingerprint to show. Errors:
    /// `LinkRejected`, `LinkExpired` (not confirmed in time), `LinkClaimed`,
    /// `BadLinkCode`.
    pub async fn link_device(&self, server: &str, code: &str) -> Result<AccountView> {
        self.refuse_second_account()?;
        let relay = self.relay(server)?;
        let lang = self.language();
        let s = Arc::clone(self.shared());
        let emitter = Arc::clone(&s);
        let waiting = move |fingerprint: &str| {
            emitter.emit(DeviceEvent::LinkWaiting {
                fingerprint: fingerprint.to_owned(),
            });
        };
        let account = account::link_device(
            &s.store,
            &*s.secrets,
            enrolment(&relay, &s),
            code,
            account::LINK_WAIT,
            &waiting,
        )
        .await
        .map_err(|e| Error::from_sync(&e, lang))?;
        self.attach(account).await?;
        self.after_enrolment().await
    }

    async fn after_enrolment(&self) -> Result<AccountView> {
        if self.shared().options.sync_on_open {
            self.start_sync();
        }
        self.account()
            .await?
            .ok_or_else(|| Error::code(ErrorCode::NoAccount, self.language()))
    }

    /// Signs this device out: the account and its keys are removed from it (the
    /// family documents stay, for a later sign-in to the same account).
    pub async fn sign_out(&self) -> Result<()> {
        self.stop_sync();
        let s = Arc::clone(self.shared());
        self.blocking(move |lang| {
            Account::sign_out(&*s.store, &*s.secrets).map_err(|e| Error::from_account(&e, lang))
        })
        .await?;
        *self
            .shared()
            .session
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        Ok(())
    }

    /// The 24-word recovery phrase (only on a device that holds the user key: the
    /// first one, or one restored with the phrase). Show it only on request.
    pub fn recovery_phrase(&self) -> Result<String> {
        self.session()?
            .account
            .recovery_phrase()
            .map_err(|e| Error::from_account(&e, self.language()))
    }

    /// A one-time code to link a new device to this account (valid a few minutes).
    pub async fn issue_link_code(&self) -> Result<LinkCodeView> {
        match self.request(Request::IssueLinkCode).await? {
            Response::LinkCode { code, expires_at } => Ok(LinkCodeView {
                code,
                expires_at: i64::try_from(expires_at).unwrap_or(i64::MAX),
            }),
            other => Err(self.unexpected(&other)),
        }
    }

    /// New devices waiting for this account to confirm them, oldest first.
    pub async fn pending_links(&self) -> Result<Vec<PendingLinkView>> {
        let list = match self.request(Request::ListPendingLinks).await? {
            Response::PendingLinks(list) => list,
            other => return Err(self.unexpected(&other)),
        };
        // What the screen shows is what a confirmation certifies.
        let store = Arc::clone(&self.shared().store);
        let shown = list.clone();
        self.blocking(move |_| {
            for info in &shown {
                crate::certs::remember_shown(&*store, info);
            }
            Ok(())
        })
        .await?;
        Ok(list.iter().map(PendingLinkView::from).collect())
    }

    /// Confirms (`accept`: the device joins the account) or rejects a pending link
    /// request (`link` from [`pending_links`](Self::pending_links) or
    /// [`DeviceEvent::LinkRequested`]). `NotFound` if it is no longer pending.
    pub async fn confirm_link(&self, link: &str, accept: bool) -> Result<()> {
        let lang = self.language();
        let link: LinkId = link
            .trim()
            .parse()
            .map_err(|_| Error::code(ErrorCode::NotFound, lang))?;
        // The signature names the new device and its key as the relay lists them.
        let pending = match self.request(Request::ListPendingLinks).await? {
            Response::PendingLinks(list) => list,
            other => return Err(self.unexpected(&other)),
        };
        let info = pending
            .into_iter()
            .find(|l| l.link == link)
            .ok_or_else(|| Error::code(ErrorCode::NotFound, lang))?;
        let session = self.session()?;
        if accept {
            // Certify, and confirm, only the device and key this device showed the
            // user (the fingerprint compared on both screens): a relay naming another
            // key now would otherwise get a device of its own certified. The
            // certificate is queued first, so a crash right after the confirmation
            // does not lose it (the relay refuses it harmlessly if the confirmation
            // never happens).
            let store = Arc::clone(&self.shared().store);
            let account = session.account.clone();
            let (link_id, device, key) = (info.link, info.device, info.device_key);
            let same = self
                .blocking(move |lang| {
                    let shown = crate::certs::shown(&*store, link_id)
                        .map_err(|e| Error::from_store(&e, lang))?;
                    if shown != Some((device, key)) {
                        return Ok(false);
                    }
                    crate::certs::vouch_for_linked(&*store, &account, device, key)
                        .map_err(|e| Error::from_store(&e, lang))?;
                    Ok(true)
                })
                .await?;
            if !same {
                tracing::warn!(%link, "the link request names another device or key than the one shown");
                return Err(Error::code(ErrorCode::Relay, lang));
            }
        }
        self.connected(super::sync::REQUEST_TIMEOUT).await?;
        let asked = session.driver.confirm_link(&info, accept);
        let answered = tokio::time::timeout(super::sync::REQUEST_TIMEOUT, asked).await;
        if accept {
            // Queued again, whatever the answer (a lost one may hide a confirmation):
            // a publication that ran between the queueing above and the confirmation
            // (this session's sign-in sends the outbox) was refused — the device was
            // not the user's yet — and dropped. One for a device the relay never
            // added is refused again and dropped at the next publication.
            let store = Arc::clone(&self.shared().store);
            let account = session.account.clone();
            let (device, key) = (info.device, info.device_key);
            self.blocking(move |lang| {
                crate::certs::vouch_for_linked(&*store, &account, device, key)
                    .map_err(|e| Error::from_store(&e, lang))
            })
            .await?;
        }
        match answered
            .map_err(|_| Error::code(ErrorCode::Timeout, lang))?
            .map_err(|e| Error::from_sync(&e, lang))?
        {
            Response::Done => {}
            other => return Err(self.unexpected(&other)),
        }
        if accept {
            let sealed = crate::keys::sealed_families(&session).await;
            // The relay keeps the certificate now, or after the next sign-in.
            let store = Arc::clone(&self.shared().store);
            let publishing = Arc::clone(&session);
            let published = self.shared().runtime.spawn(async move {
                // What fails here stays in the outbox for the next sign-in.
                let _ =
                    crate::certs::publish(&store, &publishing.driver, &publishing.account).await;
            });
            // A device that stays online (an app) lets the new one in when its
            // request reaches the key log; a command line waits for it here.
            if !sealed.is_empty() && !self.shared().options.sync_on_open {
                let _ = published.await;
                self.let_linked_device_in(&session, info.device, &sealed)
                    .await;
            }
        }
        Ok(())
    }

    /// Lets a device just linked into the user's sealed families this device is in,
    /// for a while: once it signs in it publishes its key package (and asks in each
    /// family's key log); this device's key task adds it from either, then sends the
    /// history. Waits for it at most [`KEYS_WAIT`](super::sync::KEYS_WAIT): a device
    /// that does not come online by then is let in by whichever member's device steps
    /// the family next.
    async fn let_linked_device_in(
        &self,
        session: &Arc<super::Session>,
        device: DeviceId,
        families: &[FamilyId],
    ) {
        let deadline = tokio::time::Instant::now() + super::sync::KEYS_WAIT;
        let host = Arc::clone(&session.host);
        let families: Vec<FamilyId> = families
            .iter()
            .copied()
            .filter(|f| host.key_epoch(*f).is_some())
            .collect();
        loop {
            // A round of key work: adds the device once its package or request is
            // there, and sends the history of what an earlier round added.
            super::sync::finish_key_work(session, deadline).await;
            let host = Arc::clone(&session.host);
            let wanted = families.clone();
            let all_in = crate::task::spawn_blocking(move || {
                wanted
                    .iter()
                    .all(|f| host.key_members(*f).iter().any(|m| m.device == device))
            })
            .await
            .unwrap_or(false);
            if all_in || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(LINKED_POLL).await;
        }
        // The history entry the last round's Commit owes it, once that Commit is back.
        super::sync::finish_key_work(
            session,
            tokio::time::Instant::now() + super::sync::KEYS_WAIT,
        )
        .await;
    }

    /// Sends this device's pending device certificates to the relay now (it also does
    /// after every sign-in): its own, by the user key, if it holds it, and those of
    /// the devices it confirmed links for (issue 18).
    pub async fn publish_certificates(&self) -> Result<()> {
        let session = self.session()?;
        let lang = self.language();
        self.connected(super::sync::REQUEST_TIMEOUT).await?;
        crate::certs::publish(&self.shared().store, &session.driver, &session.account)
            .await
            .map_err(|e| Error::from_sync(&e, lang))
    }

    /// The devices of `user` (this device's own user or a co-member, hex) that the
    /// user vouches for: a chain of device certificates reaches them from the user's
    /// key (issue 18). The key is pinned the first time this device sees it; a relay
    /// answering with another one later is refused (`Relay`), so it cannot vouch for
    /// devices of its own.
    pub async fn vouched_devices(&self, user: &str) -> Result<Vec<String>> {
        let lang = self.language();
        let user: UserId = user
            .trim()
            .parse()
            .map_err(|_| Error::code(ErrorCode::InvalidInput, lang))?;
        let served = self.served_certs(user).await?;
        let key = served.user_key;
        let revoked = served.revoked.iter().copied().collect();
        Ok(certified_devices(user, &key, &served.certs, &revoked)
            .into_keys()
            .map(|d| d.to_hex())
            .collect())
    }

    /// The user's devices, this one marked.
    pub async fn devices(&self) -> Result<Vec<DeviceView>> {
        let me = self.session()?.account.device;
        match self.request(Request::ListDevices).await? {
            Response::Devices(list) => Ok(list
                .into_iter()
                .map(|d| DeviceView {
                    device: d.device.to_hex(),
                    name: d.client,
                    added_at: ms(d.added_at),
                    online: d.online,
                    last_seen: d.last_seen.map(ms),
                    revoked_at: d.revoked_at.map(ms),
                    this_device: d.device == me,
                })
                .collect()),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Revokes one of the user's devices: it can no longer sign in or sync.
    pub async fn revoke_device(&self, device: &str) -> Result<()> {
        let lang = self.language();
        let device: DeviceId = device
            .trim()
            .parse()
            .map_err(|_| Error::code(ErrorCode::NotFound, lang))?;
        // Every key group this device is in (the families', this user's profile) may
        // hold the revoked device: what this device writes waits for it to be out
        // (held before the relay is asked, so nothing written meanwhile slips out).
        let host = Arc::clone(&self.session()?.host);
        let me = self.me()?;
        let held: Vec<super::families::Removal> = self
            .blocking(move |_| Ok(host.key_families()))
            .await?
            .into_iter()
            .map(|group| (group, me, Some(device)))
            .collect();
        self.hold_for_removal(&held).await?;
        if let Err(e) = self.expect_done(Request::RevokeDevice { device }).await {
            self.release_removal(held).await;
            return Err(e);
        }
        self.step_removals(&held);
        Ok(())
    }
}

fn ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// How this device enrols at `relay`: under its name, waiting [`ENROLL_TIMEOUT`].
fn enrolment<'a>(relay: &'a Relay, s: &'a Shared) -> account::Enrolment<'a> {
    account::Enrolment {
        relay,
        client: &s.options.sync.client,
        timeout: ENROLL_TIMEOUT,
    }
}
