//! Invitations to join a family.

use serde::{Deserialize, Serialize};

use crate::{FamilyId, InviteId, UnixMillis, UserId};

/// Where an invite stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InviteState {
    /// Waiting for the invitee's answer.
    Pending,
    /// The invitee accepted and is now a member.
    Accepted,
    /// The invitee rejected it.
    Rejected,
    /// The family withdrew it before it was answered.
    Withdrawn,
    /// It was not answered before `expires_at`.
    Expired,
}

/// An invite as shown to the invitee (in the notification bell) and to the family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    /// The invite (chosen by the inviter's device).
    pub invite: InviteId,
    /// The family the invitee would join.
    pub family: FamilyId,
    /// Who sent it.
    pub inviter: UserId,
    /// The inviter's nickname (directory name).
    pub inviter_nickname: String,
    /// Who is invited.
    pub invitee: UserId,
    /// The invitee's nickname (directory name).
    pub invitee_nickname: String,
    /// The card the inviter's device sealed, as sent
    /// ([`Request::SendInvite`](crate::Request::SendInvite)): the family's title, the
    /// inviter's 호칭 and the one proposed, for the invitee's devices and the family's
    /// to open. Opaque to the relay.
    #[serde(with = "crate::wire::bytes")]
    pub card: Vec<u8>,
    /// When it was sent.
    pub created_at: UnixMillis,
    /// When it stops being answerable.
    pub expires_at: UnixMillis,
    /// Where it stands.
    pub state: InviteState,
}
