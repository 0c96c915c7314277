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
    /// Its title, so the invitee can see what they are invited to.
    pub family_title: String,
    /// Who sent it.
    pub inviter: UserId,
    /// The inviter's nickname (directory name).
    pub inviter_nickname: String,
    /// The inviter's 호칭 in the family.
    pub inviter_name: String,
    /// Who is invited.
    pub invitee: UserId,
    /// The invitee's nickname (directory name).
    pub invitee_nickname: String,
    /// The 호칭 proposed for the invitee in the family.
    pub proposed_name: String,
    /// When it was sent.
    pub created_at: UnixMillis,
    /// When it stops being answerable.
    pub expires_at: UnixMillis,
    /// Where it stands.
    pub state: InviteState,
}
