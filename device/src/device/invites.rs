//! Invites: send one to an exact email with a proposed 호칭, list those received and
//! sent, accept or reject, withdraw.
//!
//! What an invite shows — the family's title, the inviter's 호칭, the one proposed —
//! travels in a card this device seals to the invitee's devices and to the family
//! (`client-core/src/group/card.rs`): the relay never reads it (protocol 7).

use std::{collections::BTreeSet, sync::Arc};

use doran_client_core::{
    group::{CardContext, InviteCard, KnownDevices},
    ko::{Particle, with},
    store::{LocalStore, Membership},
    sync::StoreHost,
    time_util::Lang,
    validate::{self, Field},
};
use doran_protocol::{FamilyId, InviteId, InviteInfo, InviteState, Request, Response, UserId};

use super::{Device, Session, now_ms};
use crate::{
    driver::SyncDriver,
    error::{Error, ErrorCode, Result},
    events::{DeviceEvent, Part},
    screens::{InviteView, InvitesView},
};

/// An invite turned down or withdrawn: its record in the family's sealed document
/// goes, if this user may remove it (their own, or any on the host's device), so no
/// member's device would let that user in on the strength of it
/// (`FamilyDoc::forget_invites_of`). A device that cannot (not in the family, its
/// copy not here) leaves it to the others, and to its 30 days.
pub(crate) async fn forget_invite_record(
    session: &Arc<Session>,
    family: FamilyId,
    invitee: UserId,
) {
    let host = Arc::clone(&session.host);
    let now = now_ms();
    let forgotten = crate::task::spawn_blocking(move || {
        host.edit_family(family, |fd| fd.forget_invites_of(invitee, now))
    })
    .await;
    match forgotten {
        Ok(Ok(n)) if n > 0 => {
            tracing::debug!(%family, records = n, "a closed invite's record removed");
            session.driver.local_change();
        }
        Ok(Err(e)) => tracing::debug!(%family, error = %e, "a closed invite's record stays"),
        _ => {}
    }
}

/// Which invite `i` is, for its card.
fn card_context(i: &InviteInfo) -> CardContext {
    CardContext {
        invite: i.invite,
        family: i.family,
        inviter: i.inviter,
        invitee: i.invitee,
    }
}

/// The devices of `inviters` as their certificates vouch for them, their user keys
/// checked against the pinned ones (pinned now the first time): whom a card's
/// signature is checked against. An inviter whose certificates are not served counts
/// for nothing — their cards do not open here.
pub(crate) async fn inviters_known(
    store: &Arc<dyn LocalStore>,
    driver: &SyncDriver,
    inviters: impl IntoIterator<Item = UserId>,
) -> KnownDevices {
    let mut known = KnownDevices::new();
    let mut asked = BTreeSet::new();
    for user in inviters {
        if !asked.insert(user) {
            continue;
        }
        match crate::certs::served(store, driver, user).await {
            Ok(served) => {
                known.insert_served(&served);
            }
            Err(e) => tracing::info!(%user, error = %e, "an inviter's certificates are not served"),
        }
    }
    known
}

/// The card of `i` as this device opens it, signed by a device of its inviter that
/// `known` vouches for: its texts in the app's form (a card holding anything else
/// shows as none; an inviter's 호칭 may be empty).
pub(crate) fn open_card(
    host: &StoreHost,
    i: &InviteInfo,
    known: &KnownDevices,
) -> Option<InviteCard> {
    let card = host.open_invite_card(&card_context(i), &i.card, known)?;
    let title = validate::text(
        Field::FamilyTitle,
        &card.family_title,
        validate::FAMILY_TITLE,
    );
    let inviter = if card.inviter_name.is_empty() {
        Ok(String::new())
    } else {
        validate::text(Field::MemberName, &card.inviter_name, validate::MEMBER_NAME)
    };
    let proposed = validate::text(
        Field::MemberName,
        &card.proposed_name,
        validate::MEMBER_NAME,
    );
    match (title, inviter, proposed) {
        (Ok(family_title), Ok(inviter_name), Ok(proposed_name)) => Some(InviteCard {
            family_title,
            inviter_name,
            proposed_name,
        }),
        _ => {
            tracing::warn!(invite = %i.invite, "an invite card with texts no app writes");
            None
        }
    }
}

/// An invite as the screens show it, with the bell's sentence for the invitee. A card
/// this device cannot open (it was linked after the invite was sent) leaves the title
/// and the 호칭 empty, and the sentence names the inviter by nickname only.
pub(crate) fn invite_view(i: &InviteInfo, card: Option<&InviteCard>, lang: Lang) -> InviteView {
    let empty = String::new();
    let (title, inviter_name, proposed) = card.map_or((&empty, &empty, &empty), |c| {
        (&c.family_title, &c.inviter_name, &c.proposed_name)
    });
    let inviter = if inviter_name.is_empty() {
        &i.inviter_nickname
    } else {
        inviter_name
    };
    InviteView {
        invite: i.invite.to_hex(),
        family: i.family.to_hex(),
        family_title: title.clone(),
        inviter: i.inviter.to_hex(),
        inviter_nickname: i.inviter_nickname.clone(),
        inviter_name: inviter_name.clone(),
        invitee: i.invitee.to_hex(),
        invitee_nickname: i.invitee_nickname.clone(),
        proposed_name: proposed.clone(),
        created_at: ms(i.created_at),
        expires_at: ms(i.expires_at),
        state: state_key(i.state),
        text: match (card.is_some(), lang) {
            (true, Lang::Ko) => format!(
                "{} 님이 '{}' 가족에 {} 초대했어요.",
                inviter,
                title,
                with(proposed, Particle::EuroRo)
            ),
            (true, Lang::En) => format!(
                "{} invited you to the family “{}” as {}.",
                inviter, title, proposed
            ),
            (false, Lang::Ko) => format!("{inviter} 님이 가족에 초대했어요."),
            (false, Lang::En) => format!("{inviter} invited you to their family."),
        },
    }
}

/// A sent invite, worded for the family that sent it.
fn sent_view(i: &InviteInfo, card: Option<&InviteCard>, lang: Lang) -> InviteView {
    let mut v = invite_view(i, card, lang);
    v.text = match (card, lang) {
        (Some(c), Lang::Ko) => format!(
            "{} 님을 '{}' 가족에 {} 초대했어요. 답을 기다리고 있어요.",
            i.invitee_nickname,
            c.family_title,
            with(&c.proposed_name, Particle::EuroRo)
        ),
        (Some(c), Lang::En) => format!(
            "Invited {} as {} to “{}”; waiting for an answer.",
            i.invitee_nickname, c.proposed_name, c.family_title
        ),
        (None, Lang::Ko) => format!(
            "{} 님을 가족에 초대했어요. 답을 기다리고 있어요.",
            i.invitee_nickname
        ),
        (None, Lang::En) => format!(
            "Invited {} to the family; waiting for an answer.",
            i.invitee_nickname
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
        let me = self.me()?;
        let card = InviteCard {
            family_title: view.name.clone(),
            inviter_name: doran_client_core::views::shown_names(&view)
                .remove(&me.to_hex())
                .unwrap_or_default(),
            proposed_name: name.clone(),
        };
        let invite = InviteId::random();
        let sealed = self.seal_card(invite, id, entry.user, &card).await?;
        let driver = Arc::clone(&self.session()?.driver);
        let sent = tokio::time::timeout(
            super::sync::REQUEST_TIMEOUT,
            driver.send_invite(invite, id, entry.user, sealed),
        )
        .await
        .map_err(|_| Error::code(ErrorCode::Timeout, lang))?;
        match sent {
            Ok(Response::InviteSent(info)) if info.invitee != entry.user => {
                // The card was sealed to the user looked up: a relay naming another
                // one gets nothing recorded or let in for them.
                tracing::warn!(invitee = %info.invitee, looked_up = %entry.user,
                    "the relay confirmed an invite of another user than the one asked for");
                Err(Error::code(ErrorCode::Relay, lang))
            }
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
                if let Ok(Err(e)) = crate::task::spawn_blocking(move || {
                    crate::keys::remember_invited(&*store, id, invitee)
                })
                .await
                {
                    tracing::warn!(error = %e, "the invitee was not remembered");
                }
                let host = Arc::clone(&session.host);
                let sealed = crate::task::spawn_blocking(move || host.is_sealed(id))
                    .await
                    .unwrap_or(false);
                if sealed {
                    // Recorded in the sealed document too: any member's device online
                    // when the invitee accepts lets them in, not only this one.
                    if let Err(e) = self
                        .edit(family, Part::Members, move |fd, now| {
                            fd.record_invite(invitee, now)
                        })
                        .await
                    {
                        tracing::warn!(error = ?e, "the invite was not recorded in the family's document");
                    }
                    let deadline = tokio::time::Instant::now() + super::sync::KEYS_WAIT;
                    super::sync::finish_key_work(&session, deadline).await;
                }
                Ok(sent_view(&info, Some(&card), lang))
            }
            Ok(other) => Err(self.unexpected(&other)),
            Err(e) => Err(Error::from_sync(&e, lang)),
        }
    }

    /// The card of the invite `invite` of `invitee` to `family`, sealed to the
    /// invitee's devices that published a key package a certificate chain vouches
    /// for (fetched now: this connection just looked the invitee up) and to the family.
    async fn seal_card(
        &self,
        invite: InviteId,
        family: FamilyId,
        invitee: UserId,
        card: &InviteCard,
    ) -> Result<Vec<u8>> {
        let lang = self.language();
        let session = self.session()?;
        let driver = &session.driver;
        let packages: Vec<Vec<u8>> = match driver
            .request(Request::KeyPackagesOf { user: invitee })
            .await
        {
            Ok(Response::KeyPackages(list)) => list.into_iter().map(|p| p.package).collect(),
            Ok(other) => return Err(self.unexpected(&other)),
            Err(e) => {
                // A relay that serves none: the card opens for the family only, and
                // for the invitee once they joined.
                tracing::info!(error = %e, "the invitee's key packages are not served");
                Vec::new()
            }
        };
        let mut known = KnownDevices::new();
        if !packages.is_empty() {
            let store = Arc::clone(&self.shared().store);
            match crate::certs::served(&store, driver, invitee).await {
                Ok(served) => {
                    known.insert_served(&served);
                }
                // Another user key than the one pinned: the relay vouching for
                // devices of its own. No invite is sent through it.
                Err(e @ crate::sync_error::SyncError::Protocol(_)) => {
                    return Err(Error::from_sync(&e, lang));
                }
                Err(e) => tracing::info!(error = %e, "the invitee's certificates are not served"),
            }
        }
        let ctx = CardContext {
            invite,
            family,
            inviter: session.account.user,
            invitee,
        };
        let host = Arc::clone(&session.host);
        let card = card.clone();
        let (sealed, readers) = self
            .blocking(move |lang| {
                host.seal_invite_card(&ctx, &card, &packages, &known)
                    .map_err(|e| Error::from_host(&e, lang))
            })
            .await?;
        if readers.devices == 0 {
            tracing::info!(
                %invite,
                "no device of the invitee can open the card before accepting"
            );
        }
        Ok(sealed)
    }

    /// Invites addressed to the user, and those the user's families sent and are
    /// waiting on.
    pub async fn invites(&self) -> Result<InvitesView> {
        let me = self.me()?;
        match self.request(Request::ListInvites).await? {
            Response::Invites(list) => {
                let session = self.session()?;
                let known = inviters_known(
                    &self.shared().store,
                    &session.driver,
                    list.iter().map(|i| i.inviter).collect::<Vec<_>>(),
                )
                .await;
                let host = Arc::clone(&session.host);
                let (received, sent): (Vec<_>, Vec<_>) =
                    list.into_iter().partition(|i| i.invitee == me);
                self.blocking(move |lang| {
                    let open = |i: &InviteInfo| open_card(&host, i, &known);
                    Ok(InvitesView {
                        received: received
                            .iter()
                            .map(|i| invite_view(i, open(i).as_ref(), lang))
                            .collect(),
                        sent: sent
                            .iter()
                            .map(|i| sent_view(i, open(i).as_ref(), lang))
                            .collect(),
                    })
                })
                .await
            }
            other => Err(self.unexpected(&other)),
        }
    }

    /// Accepts (수락) or rejects (거절) an invite. On accept, the family is synced to
    /// this device and the user's member entry (with the 호칭 the card proposes, a
    /// number added if a member took it meanwhile) is written into its document.
    /// Returns the family on accept.
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

    /// Accepts an invite under another 호칭 than the one proposed (the invitee prefers
    /// another, or the card could not be opened on this device). Returns the family.
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
        let chosen = match answer {
            Answer::AcceptAs(name) => Some(name),
            Answer::Accept | Answer::Reject => None,
        };
        let (noted, inviter_known) = if accept {
            self.note_joining(invite, chosen.clone()).await?
        } else {
            (None, None)
        };
        let asked = session.driver.answer_invite(invite, accept);
        let answer = match tokio::time::timeout(super::sync::REQUEST_TIMEOUT, asked).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                if let (Some(family), crate::sync_error::SyncError::Refused { code, .. }) =
                    (noted, &e)
                    && !code.is_transient()
                {
                    // Refused for good (expired, withdrawn): nothing to finish.
                    let (store, me) = (Arc::clone(&self.shared().store), self.me()?);
                    if let Ok(Err(e)) = crate::task::spawn_blocking(move || {
                        crate::mend::done_joining(&*store, me, family)
                    })
                    .await
                    {
                        tracing::warn!(error = %e, "a refused join stays noted");
                    }
                }
                return Err(Error::from_sync(&e, lang));
            }
            Err(_) => return Err(Error::code(ErrorCode::Timeout, lang)),
        };
        let Response::InviteAnswered {
            invite: answered,
            family: Some(summary),
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
        if summary.member(&me).is_some() && readable {
            let (_, view) = self.family_view(&hex).await?;
            if !view.members.contains_key(&me.to_hex()) {
                // (Asked once: the card's signer is checked against what was served
                // before accepting, if the invite was listed then.)
                let known = match inviter_known {
                    Some(known) => known,
                    None if chosen.is_some() => KnownDevices::new(),
                    None => {
                        inviters_known(&self.shared().store, &session.driver, [answered.inviter])
                            .await
                    }
                };
                let host = Arc::clone(&session.host);
                let store = Arc::clone(&self.shared().store);
                let name = self
                    .blocking(move |lang| {
                        let from = crate::mend::JoinFrom {
                            chosen,
                            answered: Some(&answered),
                            known: &known,
                        };
                        crate::mend::joining_as(&host, &*store, me, family, from)
                            .map_err(|e| Error::from_host(&e, lang))
                    })
                    .await?;
                self.edit(&hex, Part::Members, move |fd, now| {
                    // Written meanwhile (the mending after a sign-in, or another
                    // device of the user's): that entry stands, and nothing changes.
                    let name = fd
                        .view()
                        .members
                        .get(&me.to_hex())
                        .map_or_else(|| name.clone(), |m| m.name.clone());
                    fd.add_member(me, &name, now)
                })
                .await?;
                let store = Arc::clone(&self.shared().store);
                self.blocking(move |lang| {
                    crate::mend::done_joining(&*store, me, family)
                        .map_err(|e| Error::from_store(&e, lang))
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

    /// Notes, before accepting `invite`, what the user's entry will be written from:
    /// the 호칭 `chosen`, else the one its card proposes, and the invite itself (read
    /// now: once in, the invite is gone from the list) for a card that opens only
    /// once in the family. Kept in the store, so a join cut short is finished under
    /// it (`mend`). Returns the invite's family when it was noted, and the inviter's
    /// devices when they were asked for (to open the card).
    async fn note_joining(
        &self,
        invite: InviteId,
        chosen: Option<String>,
    ) -> Result<(Option<FamilyId>, Option<KnownDevices>)> {
        let me = self.me()?;
        let list = match self.request(Request::ListInvites).await? {
            Response::Invites(list) => list,
            other => return Err(self.unexpected(&other)),
        };
        // Not listed (answered, withdrawn, expired): the relay's answer says so.
        let Some(info) = list
            .into_iter()
            .find(|i| i.invite == invite && i.invitee == me)
        else {
            return Ok((None, None));
        };
        let session = self.session()?;
        // A 호칭 chosen needs no card.
        let known = match chosen {
            Some(_) => None,
            None => {
                Some(inviters_known(&self.shared().store, &session.driver, [info.inviter]).await)
            }
        };
        let host = Arc::clone(&session.host);
        let store = Arc::clone(&self.shared().store);
        self.blocking(move |lang| {
            let name = chosen.or_else(|| {
                let known = known.as_ref()?;
                open_card(&host, &info, known).map(|c| c.proposed_name)
            });
            let family = info.family;
            let noted = crate::mend::Joining {
                name,
                invite: Some(info),
            };
            crate::mend::start_joining(&*store, me, family, noted)
                .map(|()| (Some(family), known))
                .map_err(|e| Error::from_store(&e, lang))
        })
        .await
    }

    /// Withdraws an invite the user's family sent.
    pub async fn withdraw_invite(&self, invite: &str) -> Result<()> {
        let lang = self.language();
        let invite: InviteId = invite
            .trim()
            .parse()
            .map_err(|_| Error::code(ErrorCode::NotFound, lang))?;
        // Which family and whom, for the record to forget (the relay's answer does
        // not say; a list that fails only leaves the record to its 30 days).
        let closed = self.invites().await.ok().and_then(|all| {
            all.sent
                .into_iter()
                .find(|i| i.invite == invite.to_hex())
                .and_then(|i| Some((i.family.parse().ok()?, i.invitee.parse().ok()?)))
        });
        self.expect_done(Request::WithdrawInvite { invite }).await?;
        if let (Some((family, invitee)), Ok(session)) = (closed, self.session()) {
            forget_invite_record(&session, family, invitee).await;
        }
        Ok(())
    }
}

/// How an invite is answered.
enum Answer {
    Accept,
    Reject,
    /// Accept under this 호칭 instead of the proposed one.
    AcceptAs(String),
}
