//! Safety codes: two members compare, in person, the code their devices show for
//! each other, and so learn whether the relay gave either device a key of its own
//! (issue 18; the code itself is `doran_client_core::group::safety`).
//!
//! A device pins a user's key the first time the relay serves it (`crate::certs`);
//! only devices that key certifies are let into a sealed family. A matching code
//! proves the first answer was true, for both sides at once. The code the other
//! person reads out is typed here ([`Device::verify_safety_code`]), so "verified" is
//! never a bare tap (the digits must be the other screen's); it is kept per user, for
//! the key pinned.

use std::sync::Arc;

use doran_client_core::{
    group::safety::{Comparison, SafetyCode},
    keys::public_key,
};
use doran_protocol::{PublicKey, UserId, model::UserCerts};

use super::{Device, missions::resolve_members};
use crate::{
    error::{Error, ErrorCode, Result},
    screens::SafetyCodeView,
};

impl Device {
    /// The safety code of this device's user and `member` of `family` (user id or
    /// 호칭), to compare with the one `member`'s device shows for this user. Needs
    /// the relay only the first time a user's key is seen.
    pub async fn safety_code(&self, family: &str, member: &str) -> Result<SafetyCodeView> {
        let (me, them, name) = self.safety_pair(family, member).await?;
        let (mine, theirs) = (self.user_key(me).await?, self.user_key(them).await?);
        let code = SafetyCode::of((me, &mine), (them, &theirs));
        let verified = self.is_verified(them).await?;
        Ok(SafetyCodeView::new(them, name, &code, verified))
    }

    /// Compares `code` — the digits `member`'s device shows, read out or typed, with
    /// or without spaces — with this device's; when they are the same, `member` is
    /// marked verified on this device. When they differ, nothing is marked and the
    /// error (`SafetyCodeMismatch`) says whose key one of the two devices holds
    /// another of.
    pub async fn verify_safety_code(
        &self,
        family: &str,
        member: &str,
        code: &str,
    ) -> Result<SafetyCodeView> {
        let lang = self.language();
        let (me, them, name) = self.safety_pair(family, member).await?;
        let (mine, theirs) = (self.user_key(me).await?, self.user_key(them).await?);
        let shown = SafetyCode::of((me, &mine), (them, &theirs));
        match shown.compare(code, SafetyCode::users_in_order(me, them)) {
            Comparison::Same => {}
            Comparison::Malformed => {
                return Err(Error::new(
                    ErrorCode::InvalidInput,
                    lang,
                    "안전 코드는 5자리 숫자 12묶음(60자리)이에요.",
                    "A safety code is twelve groups of five digits (sixty digits).",
                ));
            }
            Comparison::Differs { users } => {
                let whose = match users {
                    [Some(_), Some(_)] => None,
                    [Some(u), None] | [None, Some(u)] => Some(u),
                    [None, None] => None,
                };
                return Err(Error::safety_mismatch(
                    whose.map(|u| if u == me { None } else { Some(name.as_str()) }),
                    lang,
                ));
            }
        }
        let store = Arc::clone(&self.shared().store);
        self.blocking(move |lang| {
            crate::certs::mark_verified(&*store, them, theirs)
                .map_err(|e| Error::from_store(&e, lang))
        })
        .await?;
        tracing::info!(user = %them, "safety code compared and the same: member verified");
        Ok(SafetyCodeView::new(them, name, &shown, true))
    }

    /// This user and the member named, with their 호칭; comparing with oneself is
    /// refused.
    async fn safety_pair(&self, family: &str, member: &str) -> Result<(UserId, UserId, String)> {
        let lang = self.language();
        let me = self.me()?;
        let (_, view) = self.family_view(family).await?;
        let user = resolve_members(&view, &[member.to_owned()], lang)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::code(ErrorCode::NotFound, lang))?;
        if user == me {
            return Err(Error::new(
                ErrorCode::InvalidInput,
                lang,
                "안전 코드는 다른 가족과 비교해요.",
                "A safety code is compared with another member.",
            ));
        }
        let name = doran_client_core::views::shown_names(&view)
            .remove(&user.to_hex())
            .unwrap_or_default();
        Ok((me, user, name))
    }

    /// `user`'s key as this device holds it: its own user key when it has it, else
    /// the one pinned, else the relay's answer, pinned now.
    async fn user_key(&self, user: UserId) -> Result<PublicKey> {
        let session = self.session()?;
        if user == session.account.user
            && let Some(key) = &session.account.user_key
        {
            return Ok(public_key(key));
        }
        let store = Arc::clone(&self.shared().store);
        let pinned = self
            .blocking(move |lang| {
                crate::certs::pinned(&*store, user).map_err(|e| Error::from_store(&e, lang))
            })
            .await?;
        match pinned {
            Some(key) => Ok(key),
            None => Ok(self.served_certs(user).await?.user_key),
        }
    }

    async fn is_verified(&self, user: UserId) -> Result<bool> {
        let store = Arc::clone(&self.shared().store);
        self.blocking(move |lang| {
            crate::certs::verified(&*store, user).map_err(|e| Error::from_store(&e, lang))
        })
        .await
    }

    /// `user`'s certificates from the relay, the user key checked against the pinned
    /// one ([`crate::certs::served`]; another one is refused: `Relay`).
    pub(crate) async fn served_certs(&self, user: UserId) -> Result<UserCerts> {
        let lang = self.language();
        self.connected(super::sync::REQUEST_TIMEOUT).await?;
        let session = self.session()?;
        let served = crate::certs::served(&self.shared().store, &session.driver, user);
        match tokio::time::timeout(super::sync::REQUEST_TIMEOUT, served).await {
            Ok(Ok(served)) => Ok(served),
            Ok(Err(e)) => Err(Error::from_sync(&e, lang)),
            Err(_) => Err(Error::code(ErrorCode::Timeout, lang)),
        }
    }

    /// The users among `users` whose safety code was compared on this device.
    pub(crate) async fn verified_among(&self, users: Vec<UserId>) -> Result<Vec<UserId>> {
        let store = Arc::clone(&self.shared().store);
        self.blocking(move |lang| {
            let mut out = Vec::new();
            for user in users {
                if crate::certs::verified(&*store, user).map_err(|e| Error::from_store(&e, lang))? {
                    out.push(user);
                }
            }
            Ok(out)
        })
        .await
    }
}
