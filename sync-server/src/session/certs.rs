//! Device certificates (issue 18): a user's devices vouched for by the user key or by
//! another of the user's devices, kept by the relay for the user's co-members, for
//! whoever a pending invite links them with ([`may_see_keys_of`]) and for a
//! connection that just found them in the directory ([`LookedUp`]). The
//! relay checks each certificate before keeping it — the device is the caller's
//! user's, with the key the relay knows it by; the certifier is the user key or a
//! device of the user that is not revoked; the signature verifies — but devices do
//! not take its word for it: they check the chain again from the user key they pinned
//! (`client-core/src/group/certs.rs`).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use doran_protocol::{
    DeviceId, Response, UserId,
    limits::MAX_CERTS_PER_USER,
    model::{Certifier, DeviceCert, UserCerts},
    signing::device_cert_message,
};

use super::requests::Ctx;
use crate::{
    auth::verify,
    error::{ApiError, ApiResult},
    state::now_ms,
    store::{AccountStore, StoreResult},
};

/// Users one connection found with `LookupUser` and may read the device certificates
/// and key packages of, besides those [`may_see_keys_of`] allows: an invite's card is
/// sealed to the invitee's devices before the invite exists, so the inviter's device
/// needs their keys first. Only the latest [`LookedUp::KEPT`] are kept, each for
/// [`LookedUp::TTL`] (lookups are rate limited, and a device looks someone up just
/// before it invites them); another connection of the same user does not share them,
/// and only a member of a family — who may invite — is served on their account
/// ([`may_see_looked_up`]).
#[derive(Debug, Default)]
pub(crate) struct LookedUp(VecDeque<(UserId, Instant)>);

impl LookedUp {
    /// How many users a connection remembers.
    pub(crate) const KEPT: usize = 64;
    /// How long a lookup opens the user's keys to the connection.
    pub(crate) const TTL: Duration = Duration::from_secs(10 * 60);

    /// Remembers `user` as the latest found (the oldest is forgotten past
    /// [`KEPT`](Self::KEPT)).
    pub(crate) fn remember(&mut self, user: UserId) {
        self.remember_at(user, Instant::now());
    }

    fn remember_at(&mut self, user: UserId, at: Instant) {
        self.0.retain(|(u, _)| *u != user);
        if self.0.len() >= Self::KEPT {
            self.0.pop_front();
        }
        self.0.push_back((user, at));
    }

    /// Whether this connection found `user`, among the latest it looked up, less than
    /// [`TTL`](Self::TTL) ago.
    pub(crate) fn contains(&self, user: UserId) -> bool {
        self.contains_at(user, Instant::now())
    }

    fn contains_at(&self, user: UserId, now: Instant) -> bool {
        self.0
            .iter()
            .any(|(u, at)| *u == user && now.saturating_duration_since(*at) < Self::TTL)
    }
}

/// Whether a lookup on this connection (`looked_up`) lets `me` read a user's keys:
/// only a member of some family, who may invite.
pub(super) fn may_see_looked_up(
    a: &dyn AccountStore,
    me: UserId,
    looked_up: bool,
) -> StoreResult<bool> {
    Ok(looked_up && !a.families_of(me)?.is_empty())
}

/// Whether `me` may read `user`'s device certificates and key packages at `now`:
/// `user` is `me`, shares a family with `me`, or a pending, unexpired invite links
/// them — to `user` from a family `me` is a member of, or to `me` from a family
/// `user` is a member of (the inviter's device adds the invitee's devices to the
/// family's key group when it sends the invite, and each side checks the other's
/// devices). An unknown `user` shares nothing.
pub(super) fn may_see_keys_of(
    a: &dyn AccountStore,
    me: UserId,
    user: UserId,
    now: u64,
) -> StoreResult<bool> {
    if me == user {
        return Ok(true);
    }
    let mine = a.families_of(me)?;
    let theirs = a.families_of(user)?;
    let in_mine = |f| mine.iter().any(|m| m.id == f);
    let in_theirs = |f| theirs.iter().any(|t| t.id == f);
    if theirs.iter().any(|t| in_mine(t.id)) {
        return Ok(true);
    }
    if a.invites_for(user, now)?.iter().any(|i| in_mine(i.family)) {
        return Ok(true);
    }
    Ok(a.invites_for(me, now)?.iter().any(|i| in_theirs(i.family)))
}

impl Ctx<'_> {
    pub(super) async fn publish_device_certs(&self, certs: Vec<DeviceCert>) -> ApiResult<Response> {
        let user = self.me.user;
        let (record, devices) = self
            .state
            .accounts(move |a| Ok((a.user(user)?, a.devices(user)?)))
            .await?;
        let record = record.ok_or_else(|| ApiError::not_found("no such user"))?;
        let key_of = |device: DeviceId| devices.iter().find(|d| d.id == device);
        for cert in &certs {
            let Some(device) = key_of(cert.device) else {
                return Err(ApiError::forbidden(format!(
                    "device {} is not one of this user's",
                    cert.device
                )));
            };
            if device.key != cert.device_key {
                return Err(ApiError::new(
                    doran_protocol::ErrorCode::InvalidInput,
                    format!(
                        "the certificate names another key for device {}",
                        cert.device
                    ),
                ));
            }
            let signer = match cert.by {
                Certifier::User => record.user_key,
                Certifier::Device(by) => match key_of(by) {
                    Some(d) if d.revoked_at.is_none() => d.key,
                    Some(_) => {
                        return Err(ApiError::forbidden(format!(
                            "device {by} is revoked and vouches for nobody"
                        )));
                    }
                    None => {
                        return Err(ApiError::forbidden(format!(
                            "device {by} is not one of this user's"
                        )));
                    }
                },
            };
            let message = device_cert_message(&user, &cert.device, &cert.device_key);
            verify(&signer, &message, &cert.signature)?;
        }
        let n = certs.len();
        self.state
            .accounts(move |a| a.put_device_certs(user, &certs, MAX_CERTS_PER_USER))
            .await?;
        tracing::info!(%user, certs = n, "device certificates kept");
        Ok(Response::Done)
    }

    /// The certificates of `user`'s devices, for whoever [`may_see_keys_of`] them or
    /// found them on this connection ([`LookedUp`]); `Forbidden` for anyone else,
    /// unknown users included (nothing says who exists).
    pub(super) async fn device_certs(&self, user: UserId) -> ApiResult<Response> {
        let me = self.me.user;
        let now = now_ms();
        let looked_up = self.looked_up.contains(user);
        let found = self
            .state
            .accounts(move |a| {
                if !may_see_looked_up(a, me, looked_up)? && !may_see_keys_of(a, me, user, now)? {
                    return Ok(None);
                }
                let Some(record) = a.user(user)? else {
                    return Ok(None);
                };
                Ok(Some((record, a.device_certs(user)?, a.devices(user)?)))
            })
            .await?;
        // Strangers and unknown users get the same answer: nothing says who exists.
        let Some((record, certs, devices)) = found else {
            return Err(ApiError::forbidden(
                "only a co-member, someone a pending invite links with, or a connection that \
                 looked the user up may read a user's device certificates",
            ));
        };
        Ok(Response::DeviceCerts(UserCerts {
            user,
            user_key: record.user_key,
            certs,
            revoked: devices
                .into_iter()
                .filter(|d| d.revoked_at.is_some())
                .map(|d| d.id)
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use doran_protocol::UserId;

    use super::LookedUp;

    fn user(n: usize) -> UserId {
        let mut id = [0; 16];
        id[..8].copy_from_slice(&(n as u64).to_be_bytes());
        UserId(id)
    }

    #[test]
    fn a_connection_remembers_its_latest_lookups_only() {
        let mut seen = LookedUp::default();
        assert!(!seen.contains(user(0)));
        for n in 0..LookedUp::KEPT {
            seen.remember(user(n));
        }
        assert!((0..LookedUp::KEPT).all(|n| seen.contains(user(n))));
        // Ten minutes later, a lookup opens nothing.
        let mut aged = LookedUp::default();
        let then = std::time::Instant::now();
        aged.remember_at(user(7), then);
        assert!(aged.contains_at(user(7), then + LookedUp::TTL / 2));
        assert!(!aged.contains_at(user(7), then + LookedUp::TTL));
        // Found again, the first is the latest: the second goes first.
        seen.remember(user(0));
        seen.remember(user(LookedUp::KEPT));
        assert!(seen.contains(user(0)));
        assert!(!seen.contains(user(1)));
        assert!(seen.contains(user(LookedUp::KEPT)));
        // However many lookups, no more than the bound is kept.
        for n in 0..10 * LookedUp::KEPT {
            seen.remember(user(1_000 + n));
        }
        assert_eq!(seen.0.len(), LookedUp::KEPT);
        assert!(!seen.contains(user(0)));
    }
}
