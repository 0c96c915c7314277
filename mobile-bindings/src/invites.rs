//! Invites: send one to an exact email with a proposed 호칭, list those received and
//! sent, accept (수락) or reject (거절), withdraw.

use doran_device::screens;

use crate::{device::Device, error::Result};

/// An invite, received or sent.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct InviteView {
    /// The invite.
    pub invite: String,
    /// The family.
    pub family: String,
    /// Its title, from the invite's sealed card (empty when this device cannot open
    /// it: a device linked after the invite was sent).
    pub family_title: String,
    /// Who invited.
    pub inviter: String,
    /// Their nickname.
    pub inviter_nickname: String,
    /// Their 호칭 in the family.
    pub inviter_name: String,
    /// Who is invited.
    pub invitee: String,
    /// Their nickname.
    pub invitee_nickname: String,
    /// The 호칭 offered (empty when the card did not open here).
    pub proposed_name: String,
    /// Sent (Unix ms).
    pub created_at: i64,
    /// Expires (Unix ms).
    pub expires_at: i64,
    /// `pending`, `accepted`, `rejected`, `withdrawn` or `expired`.
    pub state: String,
    /// The sentence to show ("엄마 님이 '우리 가족' 가족에 아들로 초대했어요.").
    pub text: String,
}

impl From<screens::InviteView> for InviteView {
    fn from(i: screens::InviteView) -> Self {
        InviteView {
            invite: i.invite,
            family: i.family,
            family_title: i.family_title,
            inviter: i.inviter,
            inviter_nickname: i.inviter_nickname,
            inviter_name: i.inviter_name,
            invitee: i.invitee,
            invitee_nickname: i.invitee_nickname,
            proposed_name: i.proposed_name,
            created_at: i.created_at,
            expires_at: i.expires_at,
            state: i.state.to_owned(),
            text: i.text,
        }
    }
}

/// Invites addressed to the user, and those the user's families sent.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct InvitesView {
    /// Waiting for the user's answer.
    pub received: Vec<InviteView>,
    /// Sent by the user's families, waiting for an answer (withdrawable).
    pub sent: Vec<InviteView>,
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// Invites the person with exactly this email (or handle) to `family` as `name`
    /// (their 호칭 there). They see it live, or when they next connect.
    pub async fn invite(&self, family: String, email: String, name: String) -> Result<InviteView> {
        Ok(self.inner.invite(&family, &email, &name).await?.into())
    }

    /// Invites addressed to the user, and those the user's families sent.
    pub async fn invites(&self) -> Result<InvitesView> {
        let v = self.inner.invites().await?;
        Ok(InvitesView {
            received: v.received.into_iter().map(Into::into).collect(),
            sent: v.sent.into_iter().map(Into::into).collect(),
        })
    }

    /// Accepts (수락) or rejects (거절) an invite. Returns the family on accept, once
    /// it is on this device.
    pub async fn answer_invite(&self, invite: String, accept: bool) -> Result<Option<String>> {
        Ok(self.inner.answer_invite(&invite, accept).await?)
    }

    /// Accepts an invite under another 호칭 than the one proposed (the invitee prefers
    /// another, or the card could not be opened on this device). A 호칭 a member took
    /// meanwhile gets a number added. Returns the family.
    pub async fn accept_invite_as(&self, invite: String, name: String) -> Result<String> {
        Ok(self.inner.accept_invite_as(&invite, &name).await?)
    }

    /// Withdraws an invite the user's family sent.
    pub async fn withdraw_invite(&self, invite: String) -> Result<()> {
        Ok(self.inner.withdraw_invite(&invite).await?)
    }
}
