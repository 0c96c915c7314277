//! Account requests (directory lookup, devices, link codes, profile) and presence.

use std::{collections::HashSet, time::Instant};

use doran_protocol::{
    BlobHash, DeviceId, DeviceInfo, DirectoryEntry, ErrorCode, FamilyId, LinkId, PendingLinkInfo,
    PresenceInfo, Response, ServerEvent, Signature, UnixMillis, UserId, signing,
};

use super::{
    Session,
    requests::{Ctx, notify},
    signin::link_code_hash,
};
use crate::{
    auth::verify,
    error::{ApiError, ApiResult},
    rules,
    state::now_ms,
    store::LinkRecord,
};

/// A stored link request as devices see it.
pub(crate) fn pending_link_info(record: &LinkRecord) -> PendingLinkInfo {
    PendingLinkInfo {
        link: record.id,
        device: record.device.id,
        device_key: record.device.key,
        client: record.device.client.clone(),
        requested_at: record.device.added_at,
        expires_at: record.expires_at,
    }
}

/// Letters of link codes: Crockford base32 (no I, L, O, U).
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a link code (40 bits).
const CODE_LEN: usize = 8;

fn new_link_code() -> String {
    let bytes: [u8; CODE_LEN] = rand::random();
    bytes
        .iter()
        .map(|b| char::from(CODE_ALPHABET[usize::from(b % 32)]))
        .collect()
}

fn wait_ms(wait: std::time::Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}

impl Ctx<'_> {
    pub(super) async fn lookup_user(&self, email: String) -> ApiResult<Response> {
        let now = Instant::now();
        let limits = (
            self.state.lookups_by_account.try_take(&self.me.user, now),
            self.state.lookups_by_address.try_take(&self.peer, now),
        );
        if let (Err(wait), _) | (_, Err(wait)) = limits {
            return Err(ApiError::rate_limited(wait_ms(wait)));
        }
        let email = rules::email(&email)?;
        let found = self
            .state
            .accounts(move |a| a.user_by_email(&email))
            .await?;
        Ok(Response::UserFound(found.map(|u| DirectoryEntry {
            user: u.id,
            nickname: u.nickname,
            avatar: u.avatar,
        })))
    }

    pub(super) async fn list_devices(&self) -> ApiResult<Response> {
        let user = self.me.user;
        let devices = self.state.accounts(move |a| a.devices(user)).await?;
        let online = self
            .state
            .cluster
            .online_devices(&self.state.hub, user)
            .await?;
        let now = now_ms();
        Ok(Response::Devices(
            devices
                .into_iter()
                .map(|d| {
                    // A revoked device is never shown online: its connections are
                    // being closed, and on several relays the presence that says so
                    // may arrive a moment after the revocation.
                    let is_online = online.contains(&d.id) && d.revoked_at.is_none();
                    DeviceInfo {
                        device: d.id,
                        device_key: d.key,
                        client: d.client,
                        added_at: d.added_at,
                        last_seen: if is_online { Some(now) } else { d.last_seen },
                        online: is_online,
                        revoked_at: d.revoked_at,
                    }
                })
                .collect(),
        ))
    }

    pub(super) async fn revoke_device(&self, device: DeviceId) -> ApiResult<Response> {
        let (user, by) = (self.me.user, self.me.device);
        let now = now_ms();
        // The store refuses if this very device was revoked meanwhile (two devices
        // revoking each other: only the first wins).
        self.state
            .accounts(move |a| a.revoke_device(user, device, by, now))
            .await?;
        tracing::info!(%user, %device, "device revoked");
        self.notify([&user], ServerEvent::DeviceRevoked { device })
            .await;
        self.state
            .hub
            .close_device(device, ErrorCode::DeviceRevoked, "this device was revoked");
        Ok(Response::Done)
    }

    pub(super) async fn issue_link_code(&self) -> ApiResult<Response> {
        let code = new_link_code();
        let hash = link_code_hash(&code);
        let expires_at = now_ms().saturating_add(self.state.config.limits.link_code_ttl_ms());
        let (user, device) = (self.me.user, self.me.device);
        self.state
            .accounts(move |a| a.put_link_code(hash, user, device, expires_at))
            .await?;
        Ok(Response::LinkCode { code, expires_at })
    }

    pub(super) async fn list_pending_links(&self) -> ApiResult<Response> {
        let user = self.me.user;
        let now = now_ms();
        let links = self
            .state
            .accounts(move |a| a.pending_links(user, now))
            .await?;
        Ok(Response::PendingLinks(
            links.iter().map(pending_link_info).collect(),
        ))
    }

    /// Confirms or rejects a new device's link request: only a signed-in device of
    /// the same user, with its device key over the request's new device and key.
    pub(super) async fn confirm_link(
        &self,
        link: LinkId,
        accept: bool,
        signature: Signature,
    ) -> ApiResult<Response> {
        let (user, by) = (self.me.user, self.me.device);
        // Another user's request reads as unknown: its existence is not the caller's
        // business.
        let record = self
            .state
            .accounts(move |a| a.link(link))
            .await?
            .filter(|l| l.user == user)
            .ok_or_else(|| ApiError::not_found("no such link request"))?;
        let key = self.my_key().await?;
        let message = signing::link_confirm_message(
            self.state.challenges.server_id(),
            &link,
            &user,
            &by,
            &record.device.id,
            &record.device.key,
            accept,
        );
        verify(&key, &message, &signature)?;
        let now = now_ms();
        let answered = self
            .state
            .accounts(move |a| a.answer_link(user, link, by, accept, now))
            .await?;
        tracing::info!(%user, %link, device = %answered.device.id, accept, "link request answered");
        self.notify(
            [&user],
            ServerEvent::LinkAnswered {
                link,
                accepted: accept,
            },
        )
        .await;
        if accept {
            let info = DeviceInfo {
                device: answered.device.id,
                device_key: answered.device.key,
                client: answered.device.client,
                added_at: now,
                last_seen: None,
                online: false,
                revoked_at: None,
            };
            self.notify([&user], ServerEvent::DeviceAdded(info)).await;
        }
        Ok(Response::Done)
    }

    pub(super) async fn set_profile(
        &self,
        nickname: String,
        avatar: Option<BlobHash>,
    ) -> ApiResult<Response> {
        let nickname = rules::nickname(&nickname)?;
        let user = self.me.user;
        self.state
            .accounts(move |a| a.set_profile(user, &nickname, avatar))
            .await?;
        Ok(Response::Done)
    }

    pub(super) async fn list_presence(&self, family: FamilyId) -> ApiResult<Response> {
        let (_, members) = self.member_of(family).await?;
        let now = now_ms();
        let users: Vec<UserId> = members.iter().map(|m| m.user).collect();
        let online_now = self.state.cluster.online(&self.state.hub, &users).await?;
        let mut list = Vec::with_capacity(members.len());
        for m in members {
            let online = online_now.contains(&m.user);
            let last_seen = if online {
                Some(now)
            } else {
                self.last_seen(m.user).await?
            };
            list.push(PresenceInfo {
                user: m.user,
                online,
                last_seen,
            });
        }
        Ok(Response::Presence(list))
    }

    /// When `user` was last connected: this process's memory, else the devices'
    /// stored last-seen times.
    async fn last_seen(&self, user: UserId) -> ApiResult<Option<UnixMillis>> {
        if let Some(t) = self.state.hub.last_seen(&user) {
            return Ok(Some(t));
        }
        let devices = self.state.accounts(move |a| a.devices(user)).await?;
        Ok(devices.iter().filter_map(|d| d.last_seen).max())
    }
}

impl Session {
    /// Tells `user`'s co-members (every member of every family they share) that
    /// they came online or went offline.
    pub(super) async fn announce_presence(&self, user: UserId, online: bool, now: UnixMillis) {
        let co_members = self
            .state
            .accounts(move |a| {
                let mut users = HashSet::new();
                for f in a.families_of(user)? {
                    users.extend(a.members(f.id)?.into_iter().map(|m| m.user));
                }
                users.remove(&user);
                Ok(users)
            })
            .await;
        match co_members {
            Ok(users) if !users.is_empty() => {
                let info = PresenceInfo {
                    user,
                    online,
                    last_seen: Some(now),
                };
                notify(&self.state, &users, ServerEvent::Presence(info)).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%user, error = %e, "cannot announce presence"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_codes_use_the_unambiguous_alphabet() {
        let code = new_link_code();
        assert_eq!(code.len(), CODE_LEN);
        assert!(code.bytes().all(|c| CODE_ALPHABET.contains(&c)));
        assert_eq!(
            link_code_hash(&format!(" {} ", code.to_lowercase())),
            link_code_hash(&code)
        );
    }
}
