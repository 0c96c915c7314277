//! Key packages (issue 18): each device publishes its MLS last-resort KeyPackage,
//! opaque to the relay, so that a member's device can add it to a family's key group
//! while it is offline — the inviter's, when it sends the invite. The relay keeps the
//! latest per device and serves those of devices that are not revoked to whoever may
//! read the user's device certificates ([`may_see_keys_of`], or a connection that
//! looked the user up: [`LookedUp`](super::certs::LookedUp)); devices check the
//! package's signature and the certificate chain of its key themselves.

use doran_protocol::{Response, UserId, limits::MAX_KEY_PACKAGES_SERVED, model::DeviceKeyPackage};

use super::{
    certs::{may_see_keys_of, may_see_looked_up},
    requests::Ctx,
};
use crate::{
    error::{ApiError, ApiResult},
    state::now_ms,
};

impl Ctx<'_> {
    /// Keeps the calling device's key package in place of its earlier one (its size
    /// was checked with the frame).
    pub(super) async fn publish_key_package(&self, package: Vec<u8>) -> ApiResult<Response> {
        let (user, device) = (self.me.user, self.me.device);
        let now = now_ms();
        let bytes = package.len();
        self.state
            .accounts(move |a| a.put_key_package(user, device, &package, now))
            .await?;
        tracing::info!(%user, %device, bytes, "key package kept");
        Ok(Response::Done)
    }

    /// The key packages of `user`'s devices that are not revoked, oldest device
    /// first (at most [`MAX_KEY_PACKAGES_SERVED`], so the answer fits a frame), for
    /// whoever [`may_see_keys_of`] them or found them on this connection (the
    /// inviter's device seals an invite's card to the invitee's devices before it
    /// sends the invite); `Forbidden` for anyone else, unknown users included
    /// (nothing says who exists).
    pub(super) async fn key_packages_of(&self, user: UserId) -> ApiResult<Response> {
        let me = self.me.user;
        let now = now_ms();
        let looked_up = self.looked_up.contains(user);
        let found = self
            .state
            .accounts(move |a| {
                if !may_see_looked_up(a, me, looked_up)? && !may_see_keys_of(a, me, user, now)? {
                    return Ok(None);
                }
                Ok(Some(a.key_packages(user)?))
            })
            .await?;
        let Some(packages) = found else {
            return Err(ApiError::forbidden(
                "only a co-member, someone a pending invite links with, or a connection that \
                 looked the user up may read a user's key packages",
            ));
        };
        tracing::debug!(%me, %user, packages = packages.len(), "key packages served");
        Ok(Response::KeyPackages(
            packages
                .into_iter()
                .take(MAX_KEY_PACKAGES_SERVED)
                .map(|(device, package)| DeviceKeyPackage { device, package })
                .collect(),
        ))
    }
}
