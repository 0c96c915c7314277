//! Invites: send one to an exact email with a proposed 호칭, list those received and
//! sent, accept or reject, withdraw.

use std::sync::Arc;

use doran_client_core::{
    ko::{Particle, with},
    store::Membership,
    time_util::Lang,
    validate::{self, Field},
};
use doran_protocol::{InviteId, InviteInfo, InviteState, Request, Response};

use super::{Device, now_ms};
use crate::{
    error::{Error, ErrorCode, Result},
    events::{DeviceEvent, Part},
    screens::{InviteView, InvitesView},
};

/// An invite as the screens show it, with the bell's sentence for the invitee.
pub(crate) fn invite_view(i: &InviteInfo, lang: Lang) -> InviteView {
    let inviter = if i.inviter_name.is_empty() {
        i.inviter_nickname.clone()
    } else {
        i.inviter_name.clone()
    };
    InviteView {
        invite: i.invite.to_hex(),
        family: i.family.to_hex(),
        family_title: i.family_title.clone(),
        inviter: i.inviter.to_hex(),
        inviter_nickname: i.inviter_nickname.clone(),
        inviter_name: i.inviter_name.clone(),
        invitee: i.invitee.to_hex(),
        invitee_nickname: i.invitee_nickname.clone(),
        proposed_name: i.proposed_name.clone(),
        created_at: ms(i.created_at),
        expires_at: ms(i.expires_at),
        state: state_key(i.state),
        text: match lang {
            Lang::Ko => format!(
                "{} 님이 '{}' 가족에 {} 초대했어요.",
                inviter,
                i.family_title,
                with(&i.proposed_name, Particle::EuroRo)
            ),
            Lang::En => format!(
                "{} invited you to the family “{}” as {}.",
                inviter, i.family_title, i.proposed_name
            ),
        },
    }
}

/// A sent invite, worded for the family that sent it.
fn sent_view(i: &InviteInfo, lang: Lang) -> InviteView {
    let mut v = invite_view(i, lang);
    v.text = match lang {
        Lang::Ko => format!(
            "{} 님을 '{}' 가족에 {} 초대했어요. 답을 기다리고 있어요.",
            i.invitee_nickname,
            i.family_title,
            with(&i.proposed_name, Particle::EuroRo)
        ),
        Lang::En => format!(
            "Invited {} as {} to “{}”; waiting for an answer.",
            i.invitee_nickname, i.proposed_name, i.family_title
        ),
    };
    v
}

fn state_key(s: InviteState) -> &'static str {
    match s {
        InviteState::Pending => "pending",
        InviteState::Accepted => "accepted",
        InviteState::Rejected => "rejected",
        InviteState::Withdrawn => "withdrawn",
        InviteState::Expired => "expired",
    }
}

fn ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

impl Device {
    /// Invites the person with exactly this email (or handle) to `family` as `name`
    /// (their 호칭 there). They see it live, or when they next connect.
    pub async fn invite(&self, family: &str, email: &str, name: &str) -> Result<InviteView> {
        let id = self.member_family(family).await?;
        let lang = self.language();
        let name = validate::text(Field::MemberName, name, validate::MEMBER_NAME)
            .map_err(|e| Error::from_doc(&e, lang))?;
        let email = doran_protocol::text::email(email).map_err(|e| {
            Error::from_doc(&doran_client_core::DocError::text(Field::Email, e), lang)
        })?;
        // The 호칭 must be free in the family; an invite waiting with the same one
        // would leave one of the two unable to accept.
        let (_, view) = self.edit_view(family).await?;
        if view.members.values().any(|m| m.name == name) {
            return Err(Error::from_doc(
                &doran_client_core::DocError::NameTaken(name),
                lang,
            ));
        }
        // …and not offered to someone else in an invite still waiting: whoever
        // accepted second could neither accept nor be invited again.
        let waiting = self.invites().await?;
        if waiting
            .sent
            .iter()
            .any(|i| i.family == id.to_hex() && i.proposed_name == name)
        {
            return Err(Error::new(
                ErrorCode::NameTaken,
                lang,
                format!(
                    "{} 보낸 초대가 이미 답을 기다리고 있어요. 다른 호칭을 골라 주세요.",
                    with(&format!("'{name}'"), Particle::EuroRo)
                ),
                format!(
                    "An invite as “{name}” is already waiting for an answer; choose another name."
                ),
            ));
        }
        let found = match self.request(Request::LookupUser { email }).await? {
            Response::UserFound(found) => found,
            other => return Err(self.unexpected(&other)),
        };
        let Some(entry) = found else {
            return Err(Error::code(ErrorCode::NoSuchUser, lang));
        };
        let driver = Arc::clone(&self.session()?.driver);
        let sent = tokio::time::timeout(
            super::sync::REQUEST_TIMEOUT,
            driver.send_invite(id, entry.user, &name),
        )
        .await
        .map_err(|_| Error::code(ErrorCode::Timeout, lang))?;
        match sent {
            Ok(Response::InviteSent(info)) => {
                // A sealed family: this device adds the invitee's devices now, from
                // the key packages they published, and sends the history — so they
                // read the family as soon as they accept, with nobody online then.
                let session = self.session()?;
                crate::device::lock(&session.sent_invites).insert(info.invite);
                let store = Arc::clone(&self.shared().store);
                let invitee = info.invitee;
                // Kept, so this device lets them in after a restart too (an invitee
                // who had published no key package asks once they accepted).
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || {
                    crate::keys::remember_invited(&*store, id, invitee)
                })
                .await
                {
                    tracing::warn!(error = %e, "the invitee was not remembered");
                }
                let host = Arc::clone(&session.host);
                let sealed = tokio::task::spawn_blocking(move || host.is_sealed(id))
                    .await
                    .unwrap_or(false);
                if sealed {
                    let deadline = tokio::time::Instant::now() + super::sync::KEYS_WAIT;
                    super::sync::finish_key_work(&session, deadline).await;
                }
                Ok(sent_view(&info, lang))
            }
            Ok(other) => Err(self.unexpected(&other)),
            Err(e) => Err(Error::from_sync(&e, lang)),
        }
    }

    /// Invites addressed to the user, and those the user's families sent and are
    /// waiting on.
    pub async fn invites(&self) -> Result<InvitesView> {
        let me = self.me()?;
        let lang = self.language();
        match self.request(Request::ListInvites).await? {
            Response::Invites(list) => {
                let (received, sent): (Vec<_>, Vec<_>) =
                    list.into_iter().partition(|i| i.invitee == me);
                Ok(InvitesView {
                    received: received.iter().map(|i| invite_view(i, lang)).collect(),
                    sent: sent.iter().map(|i| sent_view(i, lang)).collect(),
                })
            }
            other => Err(self.unexpected(&other)),
        }
    }

    /// Accepts (수락) or rejects (거절) an invite. On accept, the family is synced to
    /// this device and the user's member entry (with the proposed 호칭) is written into
    /// its document. Returns the family on accept.
    pub async fn answer_invite(&self, invite: &str, accept: bool) -> Result<Option<String>> {
        self.answer(
            invite,
            if accept {
                Answer::Accept
            } else {
                Answer::Reject
            },
        )
        .await
    }

    /// Accepts an invite under another 호칭 than the one proposed — when someone in
    /// the family took the proposed one meanwhile (`NameTaken`), or the invitee simply
    /// prefers another. Returns the family.
    pub async fn accept_invite_as(&self, invite: &str, name: &str) -> Result<String> {
        let lang = self.language();
        let name = validate::text(Field::MemberName, name, validate::MEMBER_NAME)
            .map_err(|e| Error::from_doc(&e, lang))?;
        self.answer(invite, Answer::AcceptAs(name))
            .await?
            .ok_or_else(|| Error::code(ErrorCode::Relay, lang))
    }

    async fn answer(&self, invite: &str, answer: Answer) -> Result<Option<String>> {
        let lang = self.language();
        let invite: InviteId = invite
            .trim()
            .parse()
            .map_err(|_| Error::code(ErrorCode::NotFound, lang))?;
        let session = self.session()?;
        let accept = !matches!(answer, Answer::Reject);
        // Answers are signed with the relay's id, known once connected.
        self.connected(super::sync::REQUEST_TIMEOUT).await?;
        let asked = async {
            match &answer {
                Answer::AcceptAs(name) => session.driver.accept_invite_as(invite, name).await,
                _ => session.driver.answer_invite(invite, accept).await,
            }
        };
        let answer = tokio::time::timeout(super::sync::REQUEST_TIMEOUT, asked)
            .await
            .map_err(|_| Error::code(ErrorCode::Timeout, lang))?
            .map_err(|e| Error::from_sync(&e, lang))?;
        let Response::InviteAnswered {
            family: Some(summary),
            ..
        } = answer
        else {
            return Ok(None);
        };
        if !accept {
            return Ok(None);
        }
        let family = summary.family;
        let store = Arc::clone(&self.shared().store);
        self.blocking(move |lang| {
            store
                .set_membership(family, Membership::Member, now_ms())
                .map_err(|e| Error::from_store(&e, lang))
        })
        .await?;
        let hex = family.to_hex();
        self.shared().emit(DeviceEvent::FamilyJoined {
            family: hex.clone(),
        });
        // The family's document first, so the entry merges into it.
        self.sync_now(super::sync::REQUEST_TIMEOUT).await?;
        let me = session.account.user;
        // A sealed family opens once a member's device lets this one in; until then
        // the entry waits (written by the mending after the keys come).
        let readable = self.wait_for_keys(&session, family).await;
        if let Some(entry) = summary.member(&me).filter(|_| readable) {
            let name = entry.name.clone();
            let (_, view) = self.family_view(&hex).await?;
            if !view.members.contains_key(&me.to_hex()) {
                self.edit(&hex, Part::Members, move |fd, now| {
                    fd.add_member(me, &name, now)
                })
                .await?;
                // The family sees the new member at once; if the connection dropped
                // meanwhile, the entry is kept here and goes with the next sync.
                if let Err(e) = self.sync_now(super::sync::REQUEST_TIMEOUT).await {
                    tracing::info!(error = %e, "the member entry waits for the next sync");
                }
            }
        }
        crate::pump::welcome(self.shared(), &session, family).await;
        Ok(Some(hex))
    }

    /// Withdraws an invite the user's family sent.
    pub async fn withdraw_invite(&self, invite: &str) -> Result<()> {
        let lang = self.language();
        let invite: InviteId = invite
            .trim()
            .parse()
            .map_err(|_| Error::code(ErrorCode::NotFound, lang))?;
        self.expect_done(Request::WithdrawInvite { invite }).await
    }
}

/// How an invite is answered.
enum Answer {
    Accept,
    Reject,
    /// Accept under this 호칭 instead of the proposed one.
    AcceptAs(String),
}
