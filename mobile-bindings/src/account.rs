//! Accounts and devices: create, restore from the phrase, link with a code, sign out;
//! the recovery phrase; the user's devices (list, revoke, issue a link code).

use doran_device::screens;

use crate::{device::Device, error::Result};

/// The account on this device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AccountView {
    /// The user.
    pub user: String,
    /// This device.
    pub device: String,
    /// The email or handle (empty until known on a device added with the phrase or a
    /// link code).
    pub email: String,
    /// The current nickname.
    pub nickname: String,
    /// The relay.
    pub server: String,
    /// Whether this device holds the user key, so it can show the recovery phrase.
    pub has_recovery_phrase: bool,
    /// The user's UI language (`ko` or `en`).
    pub language: String,
}

impl From<screens::AccountView> for AccountView {
    fn from(v: screens::AccountView) -> Self {
        AccountView {
            user: v.user,
            device: v.device,
            email: v.email,
            nickname: v.nickname,
            server: v.server,
            has_recovery_phrase: v.has_recovery_phrase,
            language: v.language,
        }
    }
}

/// One of the user's devices.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceView {
    /// The device.
    pub device: String,
    /// Its name ("Dorandoran · mom-laptop (Linux)", or what the app set).
    pub name: String,
    /// Added (Unix ms).
    pub added_at: i64,
    /// Connected now.
    pub online: bool,
    /// Last connected (ms).
    pub last_seen: Option<i64>,
    /// Revoked (ms), if it was.
    pub revoked_at: Option<i64>,
    /// Whether it is this device.
    pub this_device: bool,
}

impl From<screens::DeviceView> for DeviceView {
    fn from(v: screens::DeviceView) -> Self {
        DeviceView {
            device: v.device,
            name: v.name,
            added_at: v.added_at,
            online: v.online,
            last_seen: v.last_seen,
            revoked_at: v.revoked_at,
            this_device: v.this_device,
        }
    }
}

/// A new device waiting for this account to confirm it: show its name and
/// fingerprint (the new device shows the same fingerprint while it waits).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingLinkView {
    /// The request, for [`Device::confirm_link`].
    pub link: String,
    /// The new device.
    pub device: String,
    /// Its name ("Dorandoran · mom-laptop (Linux)", or what the app set).
    pub name: String,
    /// Its key's fingerprint (`1a2b-3c4d-5e6f`).
    pub fingerprint: String,
    /// When it asked (Unix ms).
    pub requested_at: i64,
    /// When the request stops working (Unix ms).
    pub expires_at: i64,
}

impl From<screens::PendingLinkView> for PendingLinkView {
    fn from(v: screens::PendingLinkView) -> Self {
        PendingLinkView {
            link: v.link,
            device: v.device,
            name: v.name,
            fingerprint: v.fingerprint,
            requested_at: v.requested_at,
            expires_at: v.expires_at,
        }
    }
}

/// A code to link a new device, shown on this one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LinkCodeView {
    /// The code to type on the new device.
    pub code: String,
    /// When it stops working (Unix ms).
    pub expires_at: i64,
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// The account on this device, if any (`None`: show the onboarding).
    pub async fn account(&self) -> Result<Option<AccountView>> {
        Ok(self.inner.account().await?.map(Into::into))
    }

    /// Creates an account on the relay at `server` (new keys, made on this device) with
    /// `email` as its searchable label and `nickname`. Syncing starts.
    pub async fn create_account(
        &self,
        server: String,
        email: String,
        nickname: String,
    ) -> Result<AccountView> {
        Ok(self
            .inner
            .create_account(&server, &email, &nickname)
            .await?
            .into())
    }

    /// Restores the account onto this device from its 24-word recovery phrase.
    pub async fn restore_account(&self, server: String, phrase: String) -> Result<AccountView> {
        Ok(self.inner.restore_account(&server, &phrase).await?.into())
    }

    /// Links this device to an existing account with a code shown on one of its
    /// devices ([`issue_link_code`](Self::issue_link_code)); waits until a device of
    /// the account confirms it (the `LinkWaiting` event carries this device's
    /// fingerprint to show meanwhile).
    pub async fn link_device(&self, server: String, code: String) -> Result<AccountView> {
        Ok(self.inner.link_device(&server, &code).await?.into())
    }

    /// A one-time code to link a new device to this account (valid a few minutes).
    pub async fn issue_link_code(&self) -> Result<LinkCodeView> {
        let v = self.inner.issue_link_code().await?;
        Ok(LinkCodeView {
            code: v.code,
            expires_at: v.expires_at,
        })
    }

    /// Signs this device out: the account and its keys are removed from it.
    pub async fn sign_out(&self) -> Result<()> {
        Ok(self.inner.sign_out().await?)
    }

    /// The 24-word recovery phrase (only on a device that holds the user key). Show it
    /// only on request.
    pub fn recovery_phrase(&self) -> Result<String> {
        Ok(self.inner.recovery_phrase()?)
    }

    /// The user's devices, this one marked.
    pub async fn devices(&self) -> Result<Vec<DeviceView>> {
        Ok(self
            .inner
            .devices()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// New devices waiting for this account to confirm them, oldest first.
    pub async fn pending_links(&self) -> Result<Vec<PendingLinkView>> {
        Ok(self
            .inner
            .pending_links()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Confirms (`accept`) or rejects a new device's link request.
    pub async fn confirm_link(&self, link: String, accept: bool) -> Result<()> {
        Ok(self.inner.confirm_link(&link, accept).await?)
    }

    /// Revokes one of the user's devices: it can no longer sign in or sync.
    pub async fn revoke_device(&self, device: String) -> Result<()> {
        Ok(self.inner.revoke_device(&device).await?)
    }
}
