//! `Request` frames: dispatch to the family, invite and account handlers, answer
//! with a `Response` or an error frame carrying the request id.

use std::net::IpAddr;

use doran_protocol::{ErrorCode, Request, RequestId, Response, ServerEvent, ServerFrame, UserId};

use super::{Flow, Me, Session, certs::LookedUp};
use crate::{
    cluster::Remote,
    error::{ApiError, ApiResult},
    hub::HubMsg,
    state::AppState,
};

/// What a request handler knows: the state, the caller, their address, and whom
/// this connection looked up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) me: Me,
    pub(crate) peer: IpAddr,
    pub(crate) looked_up: &'a LookedUp,
}

impl Session {
    pub(super) async fn on_request(&mut self, me: Me, id: RequestId, body: Request) -> Flow {
        let kind = body.kind();
        let result = {
            let ctx = Ctx {
                state: &self.state,
                me,
                peer: crate::http::limit_key(self.peer.ip()),
                looked_up: &self.looked_up,
            };
            ctx.handle(body).await
        };
        if let Ok(Response::UserFound(Some(entry))) = &result {
            // Their keys are this connection's to read now (`LookedUp`).
            self.looked_up.remember(entry.user);
        }
        match result {
            Ok(body) => {
                tracing::debug!(user = %me.user, request = kind, "done");
                self.send(&ServerFrame::Response { id, body }).await
            }
            Err(e) => self.send_error(e.frame().for_request(id)).await,
        }
    }
}

/// Sends `event` to every connection of `users`, on this relay and (through the
/// cluster's fan-out) the others.
pub(crate) async fn notify<'u>(
    state: &AppState,
    users: impl IntoIterator<Item = &'u UserId>,
    event: ServerEvent,
) {
    let Some(msg) = HubMsg::event(event) else {
        return;
    };
    let users: Vec<UserId> = users.into_iter().copied().collect();
    state.hub.send_to_users(&users, &msg);
    if let HubMsg::Event(frame) = msg {
        state
            .cluster
            .publish(&users, Remote::Event((*frame).clone()))
            .await;
    }
}

impl Ctx<'_> {
    async fn handle(&self, body: Request) -> ApiResult<Response> {
        match body {
            Request::CreateFamily { family } => self.create_family(family).await,
            // Refused by `ClientFrame::validate` before they get here: a title and the
            // 호칭 are written in the family document since protocol 7, which the relay
            // never reads. Answered all the same, should one ever slip through.
            Request::RetiredRenameFamily
            | Request::RetiredSetMemberName
            | Request::RetiredAcceptInviteAs => Err(ApiError::new(
                ErrorCode::InvalidInput,
                "this request was retired in protocol 7",
            )),
            Request::RemoveMember { family, user } => self.remove_member(family, user).await,
            Request::LeaveFamily { family } => self.leave_family(family).await,
            Request::DeleteFamily { family } => self.delete_family(family).await,
            Request::OpenVolume { family, year } => self.open_volume(family, year).await,
            Request::ListFamilies => self.list_families().await,
            Request::LookupUser { email } => self.lookup_user(email).await,
            Request::SendInvite {
                invite,
                family,
                invitee,
                card,
                signature,
            } => {
                self.send_invite(invite, family, invitee, card, signature)
                    .await
            }
            Request::AnswerInvite {
                invite,
                accept,
                signature,
            } => self.answer_invite(invite, accept, signature).await,
            Request::WithdrawInvite { invite } => self.withdraw_invite(invite).await,
            Request::ListInvites => self.list_invites().await,
            Request::ListDevices => self.list_devices().await,
            Request::RevokeDevice { device } => self.revoke_device(device).await,
            Request::IssueLinkCode => self.issue_link_code().await,
            Request::SetProfile { nickname, avatar } => self.set_profile(nickname, avatar).await,
            Request::ListPresence { family } => self.list_presence(family).await,
            Request::ListPendingLinks => self.list_pending_links().await,
            Request::ConfirmLink {
                link,
                accept,
                signature,
            } => self.confirm_link(link, accept, signature).await,
            Request::ConfirmSnapshot {
                doc,
                covers_seq,
                blob,
            } => self.confirm_snapshot(doc, covers_seq, blob).await,
            Request::RejectSnapshot {
                doc,
                covers_seq,
                blob,
            } => self.reject_snapshot(doc, covers_seq, blob).await,
            Request::PublishDeviceCerts { certs } => self.publish_device_certs(certs).await,
            Request::DeviceCerts { user } => self.device_certs(user).await,
            Request::PublishKeyPackage { package } => self.publish_key_package(package).await,
            Request::KeyPackagesOf { user } => self.key_packages_of(user).await,
        }
    }

    /// Sends `event` to every connection of `users`, on this relay and the others.
    pub(crate) async fn notify<'u>(
        &self,
        users: impl IntoIterator<Item = &'u UserId>,
        event: ServerEvent,
    ) {
        notify(self.state, users, event).await;
    }

    /// After a membership change (committed): drops every cached access answer, and
    /// makes every connection of `users` re-check its subscriptions.
    pub(crate) fn recheck<'u>(&self, users: impl IntoIterator<Item = &'u UserId>) {
        self.state.hub.membership_changed();
        self.state.hub.send_to_users(users, &HubMsg::Recheck);
    }
}
