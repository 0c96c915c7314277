//! The invite handshake: send (host, signed), answer (invitee, signed), withdraw,
//! list.

use std::collections::HashSet;

use doran_protocol::{
    ErrorCode, FamilyId, InviteId, InviteInfo, InviteState, MembershipChange, PublicKey, Response,
    ServerEvent, Signature, UserId, signing,
};

use super::{Me, families::summary, requests::Ctx};
use crate::{
    auth::verify,
    error::{ApiError, ApiResult},
    rules,
    state::now_ms,
    store::{AccountStore, NewInvite},
};

/// The error for an invite that can no longer be answered or withdrawn.
fn closed(state: InviteState) -> Option<ApiError> {
    let code = match state {
        InviteState::Pending => return None,
        InviteState::Expired => ErrorCode::InviteExpired,
        InviteState::Withdrawn => ErrorCode::InviteWithdrawn,
        InviteState::Accepted | InviteState::Rejected => ErrorCode::InviteAnswered,
    };
    Some(ApiError::new(code, "the invite is no longer open"))
}

impl Ctx<'_> {
    /// The caller's device key.
    pub(super) async fn my_key(&self) -> ApiResult<PublicKey> {
        let device = self.me.device;
        self.state
            .accounts(move |a| a.device(device))
            .await?
            .map(|d| d.key)
            .ok_or_else(|| ApiError::new(ErrorCode::UnknownDevice, "device not found"))
    }

    /// An invite, `NotFound` if unknown.
    async fn invite(&self, invite: InviteId) -> ApiResult<InviteInfo> {
        let now = now_ms();
        self.state
            .accounts(move |a| a.invite(invite, now))
            .await?
            .ok_or_else(|| ApiError::not_found("no such invite"))
    }

    pub(super) async fn send_invite(
        &self,
        invite: InviteId,
        family: FamilyId,
        invitee: UserId,
        proposed_name: String,
        signature: Signature,
    ) -> ApiResult<Response> {
        self.host_of(family).await?;
        let key = self.my_key().await?;
        let msg = signing::invite_message(
            self.state.challenges.server_id(),
            &invite,
            &family,
            &self.me.user,
            &self.me.device,
            &invitee,
            &proposed_name,
        );
        verify(&key, &msg, &signature)?;
        let proposed_name = rules::member_name(&proposed_name)?;
        if invitee == self.me.user {
            return Err(ApiError::new(ErrorCode::AlreadyMember, "you are a member"));
        }
        let now = now_ms();
        let new = NewInvite {
            id: invite,
            family,
            inviter: self.me.user,
            invitee,
            proposed_name,
            created_at: now,
            expires_at: now.saturating_add(self.state.config.limits.invite_ttl_ms()),
        };
        let info = self
            .state
            .accounts(move |a| {
                if a.user(invitee)?.is_none() {
                    return Ok(None);
                }
                a.create_invite(&new)?;
                a.invite(invite, now)
            })
            .await?
            .ok_or_else(|| ApiError::not_found("no such user"))?;
        tracing::info!(%invite, %family, %invitee, "invite sent");
        self.notify([&invitee], ServerEvent::InviteReceived(info.clone()))
            .await;
        Ok(Response::InviteSent(info))
    }

    pub(super) async fn answer_invite(
        &self,
        invite: InviteId,
        accept: bool,
        signature: Signature,
    ) -> ApiResult<Response> {
        let msg = |server_id: &str, me: &Me| {
            signing::invite_answer_message(server_id, &invite, &me.user, &me.device, accept)
        };
        let info = self.my_open_invite(invite, msg, &signature).await?;
        let now = now_ms();
        let max = self.state.config.limits.max_families_per_user;
        self.answered(&info, accept, move |a| {
            a.answer_invite(invite, accept, now, max)
        })
        .await
    }

    /// Accepts an invite under a 호칭 of the invitee's choosing.
    pub(super) async fn accept_invite_as(
        &self,
        invite: InviteId,
        name: String,
        signature: Signature,
    ) -> ApiResult<Response> {
        let msg = |server_id: &str, me: &Me| {
            signing::invite_accept_as_message(server_id, &invite, &me.user, &me.device, &name)
        };
        let info = self.my_open_invite(invite, msg, &signature).await?;
        let name = rules::member_name(&name)?;
        let now = now_ms();
        let max = self.state.config.limits.max_families_per_user;
        self.answered(&info, true, move |a| {
            a.accept_invite_as(invite, &name, now, max)
        })
        .await
    }

    /// An open invite addressed to the caller, whose answer `signature` (over the
    /// bytes `message` makes) the caller's device key made.
    async fn my_open_invite(
        &self,
        invite: InviteId,
        message: impl FnOnce(&str, &Me) -> Vec<u8>,
        signature: &Signature,
    ) -> ApiResult<InviteInfo> {
        let info = self.invite(invite).await?;
        if info.invitee != self.me.user {
            return Err(ApiError::forbidden("this invite is not addressed to you"));
        }
        if let Some(e) = closed(info.state) {
            return Err(e);
        }
        let key = self.my_key().await?;
        verify(
            &key,
            &message(self.state.challenges.server_id(), &self.me),
            signature,
        )?;
        Ok(info)
    }

    /// Answers `info` through `answer` (one store call), then tells the inviter and,
    /// on accept, the family.
    async fn answered(
        &self,
        info: &InviteInfo,
        accept: bool,
        answer: impl FnOnce(&dyn AccountStore) -> crate::store::StoreResult<InviteInfo> + Send + 'static,
    ) -> ApiResult<Response> {
        let invite = info.invite;
        let user = self.me.user;
        let family = info.family;
        let (answered, joined) = self
            .state
            .accounts(move |a| {
                let answered = answer(a)?;
                let joined = match (accept, a.family(family)?) {
                    (true, Some(record)) => Some(summary(a, &record, user)?),
                    _ => None,
                };
                Ok((answered, joined))
            })
            .await?;
        self.notify(
            [&info.inviter],
            ServerEvent::InviteAnswered {
                invite,
                family,
                invitee: user,
                accepted: accept,
            },
        )
        .await;
        if let Some(summary) = &joined {
            let members: Vec<UserId> = summary.members.iter().map(|m| m.user).collect();
            self.notify(
                &members,
                ServerEvent::MembershipChanged {
                    family,
                    members: summary.members.clone(),
                    change: MembershipChange::Joined { user },
                },
            )
            .await;
        }
        tracing::info!(%invite, %family, accept, "invite answered");
        Ok(Response::InviteAnswered {
            invite: answered,
            family: joined,
        })
    }

    pub(super) async fn withdraw_invite(&self, invite: InviteId) -> ApiResult<Response> {
        let info = self.invite(invite).await?;
        if info.inviter != self.me.user {
            // The host may withdraw any invite of the family.
            self.host_of(info.family).await?;
        }
        if let Some(e) = closed(info.state) {
            return Err(e);
        }
        let now = now_ms();
        self.state
            .accounts(move |a| a.withdraw_invite(invite, now))
            .await?;
        self.notify([&info.invitee], ServerEvent::InviteWithdrawn { invite })
            .await;
        Ok(Response::Done)
    }

    pub(super) async fn list_invites(&self) -> ApiResult<Response> {
        let user = self.me.user;
        let now = now_ms();
        let list = self
            .state
            .accounts(move |a| {
                let mut list = a.invites_for(user, now)?;
                for f in a.families_of(user)? {
                    list.extend(a.invites_of_family(f.id, now)?);
                }
                let mut seen = HashSet::new();
                list.retain(|i| seen.insert(i.invite));
                Ok(list)
            })
            .await?;
        Ok(Response::Invites(list))
    }
}
