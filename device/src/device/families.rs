//! Families: the switcher, one family with its members, and what changes membership
//! (create, rename, 호칭, remove, leave, delete). Membership is the relay's (it decides
//! who may read and write); the family document mirrors it for the screens, so each of
//! these asks the relay first and then edits the document.

use std::{collections::BTreeMap, sync::Arc};

use doran_client_core::{
    model::{Family, Role},
    store::Membership,
    time_util::relative,
    validate::{self, Field},
    views::{MoodView, Presence},
};
use doran_protocol::{ErrorCode as Wire, FamilyId, Request, Response, UserId};

use super::{Device, key_state, lock, missions::resolve_members};
use crate::{
    error::{Error, ErrorCode, Result},
    events::{DeviceEvent, Part},
    mend,
    screens::{FamilyCard, FamilyView, MemberView, PresenceView},
    sync_error::SyncError,
};

/// A removal held in a key group: the group, the user, and the one device (revoked)
/// or all of theirs (`None`).
pub(crate) type Removal = (FamilyId, UserId, Option<doran_protocol::DeviceId>);

impl Device {
    /// The user's families, in the order they joined them (removed ones too, marked,
    /// whose copies stay readable).
    pub async fn families(&self) -> Result<Vec<FamilyCard>> {
        let session = self.session()?;
        let me = session.account.user.to_hex();
        let store = Arc::clone(&self.shared().store);
        let host = Arc::clone(&session.host);
        self.blocking(move |lang| {
            let records = store.families().map_err(|e| Error::from_store(&e, lang))?;
            let mut cards = Vec::new();
            for r in records {
                let view = match host.open_view(r.family) {
                    Ok(Some(v)) => Some(v),
                    _ => doran_client_core::family_store::cached_family(&*store, r.family.into())
                        .map_err(|e| Error::from_store(&e, lang))?,
                };
                let view = match view {
                    Some(v) => v,
                    None => host
                        .read_family(r.family, |fd| fd.view().clone())
                        .map_err(|e| Error::from_host(&e, lang))?,
                };
                let member = r.membership == Membership::Member;
                let (sealed, waiting_for_keys) =
                    key_state(&host, r.family, member, view.members.is_empty());
                cards.push(FamilyCard {
                    family: r.family.to_hex(),
                    title: view.name.clone(),
                    members: view.members.len(),
                    role: view.members.get(&me).map_or(Role::Member, |m| m.role),
                    member,
                    sealed,
                    waiting_for_keys,
                });
            }
            Ok(cards)
        })
        .await
    }

    /// One family: its title, the user's role, and its members with their profile,
    /// today's mood and presence.
    pub async fn family(&self, family: &str) -> Result<FamilyView> {
        let (id, membership) = self.known_family(family).await?;
        let view = self.view_of(id).await?;
        let members = self.members_of(&view).await?;
        let me = self.me()?.to_hex();
        let member = membership == Membership::Member;
        let host = Arc::clone(&self.session()?.host);
        let empty = view.members.is_empty();
        let (sealed, waiting_for_keys) = self
            .blocking(move |_| Ok(key_state(&host, id, member, empty)))
            .await?;
        Ok(FamilyView {
            family: id.to_hex(),
            title: view.name.clone(),
            role: view.members.get(&me).map_or(Role::Member, |m| m.role),
            member,
            sealed,
            waiting_for_keys,
            members,
        })
    }

    /// The home screen: members with mood and presence, a warm message, the current
    /// mission, this month's rate, a badge, the newest photo and voice message, the
    /// month's events. The message and the badge change daily, not on every refresh.
    pub async fn home(&self, family: &str) -> Result<doran_client_core::views::HomeSummary> {
        let (_, view) = self.family_view(family).await?;
        let users: Vec<String> = view.members.keys().cloned().collect();
        let profiles = self.profiles(users).await?;
        let mut presence = lock(&self.shared().presence).clone();
        if self.sync_state().status.is_connected() {
            // This device's own user is online here.
            presence.insert(
                self.me()?.to_hex(),
                Presence {
                    online: true,
                    last_seen: None,
                },
            );
        }
        let viewer = self.shared().viewer();
        let day = u64::try_from(viewer.now_ms / 86_400_000).unwrap_or(0);
        Ok(doran_client_core::views::home(
            &view, &profiles, &presence, viewer, day,
        ))
    }

    /// The whole state of a family (every entity), e.g. for an export or a backup.
    pub async fn export(&self, family: &str) -> Result<Family> {
        Ok(self.family_view(family).await?.1)
    }

    /// The members of `view` as the screens show them.
    pub(crate) async fn members_of(&self, view: &Family) -> Result<Vec<MemberView>> {
        let session = self.session()?;
        let me = session.account.user.to_hex();
        // Each as screens show them: two members on one 호칭 are told apart.
        let mut shown = doran_client_core::views::shown_names(view);
        let users: Vec<(String, doran_client_core::model::Member)> = view
            .members
            .iter()
            .map(|(u, m)| {
                let mut m = m.clone();
                if let Some(name) = shown.remove(u) {
                    m.name = name;
                }
                (u.clone(), m)
            })
            .collect();
        let profiles = self
            .profiles(users.iter().map(|(u, _)| u.clone()).collect())
            .await?;
        let verified: Vec<String> = self
            .verified_among(users.iter().filter_map(|(u, _)| u.parse().ok()).collect())
            .await?
            .iter()
            .map(UserId::to_hex)
            .collect();
        let presence = lock(&self.shared().presence).clone();
        let viewer = self.shared().viewer();
        let today = doran_client_core::time_util::local_date(viewer.now_ms, viewer.offset);
        let mut members: Vec<MemberView> = users
            .into_iter()
            .map(|(user, m)| {
                let p = profiles.get(&user);
                let seen: Presence = presence.get(&user).copied().unwrap_or_default();
                let online = seen.online || user == me && self.sync_state().status.is_connected();
                let mood = p.and_then(|p| {
                    let fresh = p
                        .mood_at
                        .map(|at| doran_client_core::time_util::local_date(at, viewer.offset))
                        == Some(today);
                    p.mood.filter(|_| fresh)
                });
                MemberView {
                    verified: user != me && verified.contains(&user),
                    me: user == me,
                    nickname: p.map(|p| p.nickname.clone()),
                    avatar: p.and_then(|p| p.avatar.clone()),
                    default_avatar: p.map(|p| p.default_avatar),
                    mood: mood.map(|m| MoodView::of(m, viewer.lang)),
                    online,
                    last_seen: seen.last_seen.filter(|_| !online),
                    status: if online {
                        Some(viewer.lang.pick("접속중", "online").to_owned())
                    } else {
                        seen.last_seen
                            .map(|at| relative(at, viewer.now_ms, viewer.offset, viewer.lang))
                    },
                    user,
                    name: m.name,
                    role: m.role,
                    color: m.color,
                    joined_at: m.joined_at,
                }
            })
            .collect();
        members.sort_by_key(|m| (m.role != Role::Host, m.joined_at, m.user.clone()));
        Ok(members)
    }

    /// The profiles of `users` that are on this device, by user hex.
    pub(crate) async fn profiles(
        &self,
        users: Vec<String>,
    ) -> Result<BTreeMap<String, doran_client_core::model::Personal>> {
        let host = Arc::clone(&self.session()?.host);
        self.blocking(move |_| {
            let mut out = BTreeMap::new();
            for user in users {
                let Ok(id) = user.parse::<UserId>() else {
                    continue;
                };
                // A profile that cannot be read is shown as unknown, not an error.
                if let Ok(Some(p)) = host.profile(id) {
                    out.insert(user, p);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Who of a family is online, and when the others were last seen (from the relay
    /// when connected, else what it last said).
    pub async fn presence(&self, family: &str) -> Result<Vec<PresenceView>> {
        let (id, _) = self.known_family(family).await?;
        if self.sync_state().status.is_connected()
            && let Ok(Response::Presence(list)) =
                self.request(Request::ListPresence { family: id }).await
        {
            let mut presence = lock(&self.shared().presence);
            for p in list {
                presence.insert(
                    p.user.to_hex(),
                    Presence {
                        online: p.online,
                        last_seen: p.last_seen.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                    },
                );
            }
        }
        let view = self.family(family).await?;
        Ok(view
            .members
            .into_iter()
            .map(|m| PresenceView {
                user: m.user,
                name: m.name,
                online: m.online,
                last_seen: m.last_seen,
                status: m.status,
            })
            .collect())
    }

    /// Creates a family on the relay, with the user as its host under `my_name`, and
    /// its document here. Returns the family id.
    pub async fn create_family(&self, title: &str, my_name: &str) -> Result<String> {
        let sealed = self.shared().options.seal_new_families;
        self.create_family_with(title, my_name, sealed).await
    }

    /// Creates a family like [`Device::create_family`], sealed end to end or not
    /// whatever [`DeviceOptions::seal_new_families`](crate::DeviceOptions) says.
    pub async fn create_family_with(
        &self,
        title: &str,
        my_name: &str,
        sealed: bool,
    ) -> Result<String> {
        let lang = self.language();
        let title = validate::text(Field::FamilyTitle, title, validate::FAMILY_TITLE)
            .map_err(|e| Error::from_doc(&e, lang))?;
        let my_name = validate::text(Field::MemberName, my_name, validate::MEMBER_NAME)
            .map_err(|e| Error::from_doc(&e, lang))?;
        let session = self.session()?;
        let me = session.account.user;
        // Written down before the relay is asked: if its answer is lost or the app
        // stops before the document is written, the next sign-in finishes it
        // (`mend`), and trying again with the same title and 호칭 reuses the id.
        let store = Arc::clone(&self.shared().store);
        let creating = mend::Creating {
            title: title.clone(),
            my_name: my_name.clone(),
            sealed,
        };
        let family = self
            .blocking(move |lang| {
                mend::start_creating(&*store, me, FamilyId::new_family(sealed), creating)
                    .map_err(|e| Error::from_store(&e, lang))
            })
            .await?;
        self.connected(super::sync::REQUEST_TIMEOUT).await?;
        // The relay hears only the id: the title and the 호칭 go into the family
        // document, which it cannot read once sealed.
        let asked = session.driver.request(Request::CreateFamily { family });
        match tokio::time::timeout(super::sync::REQUEST_TIMEOUT, asked).await {
            Ok(Ok(Response::FamilyCreated(_) | Response::Done)) => {}
            // A retry of a creation whose answer was lost: the relay has it already.
            Ok(Err(SyncError::Refused {
                code: Wire::AlreadyExists,
                ..
            })) if self.hosts(family).await => {}
            Ok(Err(e)) => {
                if let SyncError::Refused { code, .. } = &e
                    && !code.is_transient()
                {
                    // Refused for good (a full account, a bad title): nothing to finish.
                    self.creation_over(family).await;
                }
                return Err(Error::from_sync(&e, lang));
            }
            Ok(Ok(other)) => return Err(self.unexpected(&other)),
            Err(_) => return Err(Error::code(ErrorCode::Timeout, lang)),
        }
        let host = Arc::clone(&session.host);
        let store = Arc::clone(&self.shared().store);
        let now = self.shared().now();
        self.blocking(move |lang| {
            host.create_family_as(family, (&title, &my_name), sealed, now)
                .map_err(|e| Error::from_host(&e, lang))?;
            mend::done_creating(&*store, me, family).map_err(|e| Error::from_store(&e, lang))
        })
        .await?;
        // Counted before the driver hears of it, so a sync right after waits for it.
        let pending = self.pending().await?;
        session.driver.note_pending(pending);
        session.driver.local_change();
        let hex = family.to_hex();
        self.shared().emit(DeviceEvent::FamilyJoined {
            family: hex.clone(),
        });
        Ok(hex)
    }

    /// Renames a family (host only).
    pub async fn rename_family(&self, family: &str, title: &str) -> Result<()> {
        self.member_family(family).await?;
        let lang = self.language();
        let title = validate::text(Field::FamilyTitle, title, validate::FAMILY_TITLE)
            .map_err(|e| Error::from_doc(&e, lang))?;
        self.require_host(family).await?;
        // A change of the family document only (every member's device applies the
        // rule that only the host renames); the relay never learns the title.
        self.edit(family, Part::Family, move |fd, now| fd.rename(&title, now))
            .await
    }

    /// Seals a family that was created clear (host only): from now on its documents
    /// leave this device sealed end to end; every member's device is let into the
    /// family's key group as this device meets its key package, each of them seals
    /// what it writes once it sees the first sealed change, and the relay drops the
    /// clear history once another member's device confirms the sealed snapshot this
    /// device pushes. Returns false if the family was sealed already.
    pub async fn seal_family(&self, family: &str) -> Result<bool> {
        let id = self.member_family(family).await?;
        self.require_host(family).await?;
        // Online, so another device of the host's that sealed it meanwhile has been
        // heard of (two key groups started at once would leave one device's changes
        // unreadable to the others).
        self.connected(super::sync::REQUEST_TIMEOUT).await?;
        let session = self.session()?;
        let host = Arc::clone(&session.host);
        let started = self
            .blocking(move |lang| {
                if host.is_sealed(id) {
                    // Sealed here before and its marker never written (the device
                    // stopped in between): written now.
                    let marked = host
                        .read_family(id, |fd| fd.sealed_at().is_some())
                        .map_err(|e| Error::from_host(&e, lang))?;
                    return Ok(host.sealing_pending(id) && !marked);
                }
                if !host.sealing_known(id) {
                    return Err(Error::new(
                        ErrorCode::WaitingForKeys,
                        lang,
                        "가족 기록을 아직 받지 못했어요. 동기화한 뒤에 다시 해 주세요.",
                        "This family's document has not arrived yet: sync, then try again.",
                    ));
                }
                host.seal_clear_family(id)
                    .map_err(|e| Error::from_host(&e, lang))
            })
            .await?;
        if !started {
            return Ok(false);
        }
        // The family document's first envelope: every other device turns to
        // sealing when it arrives, and the relay takes only envelopes after it.
        self.edit(family, Part::Family, |fd, now| fd.mark_sealed(now))
            .await?;
        // Its key log was not read past its first entry while the family was clear.
        session.driver.unlock(vec![id.key_log()]);
        session.kick_keys(id);
        Ok(true)
    }

    /// Changes the user's own 호칭 in a family.
    pub async fn set_my_name(&self, family: &str, name: &str) -> Result<()> {
        self.member_family(family).await?;
        let lang = self.language();
        let name = validate::text(Field::MemberName, name, validate::MEMBER_NAME)
            .map_err(|e| Error::from_doc(&e, lang))?;
        let me = self.me()?;
        // Checked against the document (every member's device refuses a change that
        // gives a member another's 호칭), so a taken name is refused here at once.
        let (_, view) = self.edit_view(family).await?;
        if view
            .members
            .iter()
            .any(|(u, m)| *u != me.to_hex() && m.name == name)
        {
            return Err(Error::from_doc(
                &doran_client_core::DocError::NameTaken(name),
                lang,
            ));
        }
        self.edit(family, Part::Members, move |fd, now| {
            fd.set_member_name(me, &name, now)
        })
        .await
    }

    /// Removes a member (host only), named by user id or by their 호칭 in the family:
    /// the relay ends their access, then the document drops them.
    pub async fn remove_member(&self, family: &str, member: &str) -> Result<()> {
        let id = self.member_family(family).await?;
        let lang = self.language();
        let user: UserId = match member.trim().parse() {
            // Any id goes to the relay, which decides: someone whose entry is already
            // gone from the document may still be a member there.
            Ok(user) => user,
            Err(_) => {
                let (_, view) = self.edit_view(family).await?;
                let found = resolve_members(&view, &[member.to_owned()], lang)?;
                found
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::code(ErrorCode::NotFound, lang))?
            }
        };
        self.require_host(family).await?;
        if user == self.me()? {
            return Err(Error::code(ErrorCode::Forbidden, lang));
        }
        // What this device writes from now on waits for the Commit taking the
        // member's devices out of the family's key group (its next step makes it);
        // held before the relay is asked, so nothing written meanwhile slips out.
        let held = vec![(id, user, None)];
        self.hold_for_removal(&held).await?;
        // "Not a member" from the relay may be a removal cut short before its
        // document edit: the entry still goes, and the relay's answer stands only if
        // there was none.
        let relay = self
            .expect_done(Request::RemoveMember { family: id, user })
            .await;
        if let Err(e) = &relay
            && e.code != ErrorCode::NotFound
        {
            self.release_removal(held).await;
            return relay;
        }
        self.step_removals(&held);
        match self
            .edit(family, Part::Members, move |fd, now| {
                fd.remove_member(user, now)
            })
            .await
        {
            // Already gone from the document (removed on another device).
            Err(e) if e.code == ErrorCode::Forbidden || e.code == ErrorCode::NotFound => relay,
            other => other,
        }
    }

    /// The groups' changes wait until none of the devices being removed from them
    /// (a user's: all of theirs; or one revoked device) is in their key groups any
    /// more (`StoreHost::hold_for_removal`).
    pub(crate) async fn hold_for_removal(&self, held: &[Removal]) -> Result<()> {
        let host = Arc::clone(&self.session()?.host);
        let held = held.to_vec();
        self.blocking(move |lang| {
            for (group, user, device) in held {
                host.hold_for_removal(group, user, device)
                    .map_err(|e| Error::from_host(&e, lang))?;
            }
            Ok(())
        })
        .await
    }

    /// The removals held did not happen (the relay refused them): their changes go
    /// on. A failure here only logs: the next key step lifts what it finds done.
    pub(crate) async fn release_removal(&self, held: Vec<Removal>) {
        let Ok(session) = self.session() else {
            return;
        };
        let host = Arc::clone(&session.host);
        let released = self
            .blocking(move |lang| {
                for (group, user, device) in held {
                    host.release_removal(group, user, device)
                        .map_err(|e| Error::from_host(&e, lang))?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(error = ?e, "a refused removal still holds its changes");
        }
    }

    /// Asks the key task to step the groups of `held` (it makes the Commit taking
    /// the devices out).
    pub(crate) fn step_removals(&self, held: &[Removal]) {
        if let Ok(session) = self.session() {
            for (group, _, _) in held {
                session.kick_keys(*group);
            }
        }
    }

    /// Leaves a family (not the host, who deletes it instead). The member entry is
    /// removed from the document and sent first (afterwards this device can no longer
    /// write there), then the relay is told. The family is forgotten on this device.
    /// A leave that stopped half-way (offline after the entry was removed) is finished
    /// by calling this again.
    pub async fn leave_family(&self, family: &str) -> Result<()> {
        let id = self.member_family(family).await?;
        let lang = self.language();
        // Whether the user is its host is not known from an empty copy.
        let (_, view) = self.edit_view(family).await?;
        let me = view.members.get(&self.me()?.to_hex());
        if me.is_some_and(|m| m.role == Role::Host) {
            return Err(Error::new(
                ErrorCode::Forbidden,
                lang,
                "호스트는 가족을 떠날 수 없어요. 가족을 삭제해 주세요.",
                "The host cannot leave the family; delete it instead.",
            ));
        }
        // Noted first (also when the entry is already gone: a leave begun on another
        // device), so a sign-in meanwhile does not put the entry back (`mend`).
        let store = Arc::clone(&self.shared().store);
        let user = self.me()?;
        self.blocking(move |lang| {
            mend::start_leaving(&*store, user, id).map_err(|e| Error::from_store(&e, lang))
        })
        .await?;
        if me.is_some() {
            self.edit(family, Part::Members, |fd, now| fd.leave(now))
                .await?;
        }
        self.sync_with(super::sync::REQUEST_TIMEOUT, false).await?;
        self.expect_done(Request::LeaveFamily { family: id })
            .await?;
        self.forget(id).await
    }

    /// Deletes a family with everything in it (host only).
    pub async fn delete_family(&self, family: &str) -> Result<()> {
        let id = self.member_family(family).await?;
        self.require_host(family).await?;
        self.expect_done(Request::DeleteFamily { family: id })
            .await?;
        self.forget(id).await
    }

    async fn forget(&self, family: FamilyId) -> Result<()> {
        let store = Arc::clone(&self.shared().store);
        let me = self.me()?;
        self.blocking(move |lang| {
            store
                .forget_family(family)
                .and_then(|()| mend::done_leaving(&*store, me, family))
                .map_err(|e| Error::from_store(&e, lang))
        })
        .await?;
        if let Ok(session) = self.session() {
            crate::pump::left_behind(self.shared(), &session, family).await;
        }
        Ok(())
    }

    /// Whether the relay lists `family` with this user as its host.
    async fn hosts(&self, family: FamilyId) -> bool {
        matches!(
            self.request(Request::ListFamilies).await,
            Ok(Response::Families(list))
                if list.iter().any(|f| f.family == family && f.role == doran_protocol::Role::Host)
        )
    }

    /// A creation the relay refused for good: nothing to finish later.
    async fn creation_over(&self, family: FamilyId) {
        let store = Arc::clone(&self.shared().store);
        let Ok(me) = self.me() else { return };
        let forgot = self
            .blocking(move |lang| {
                mend::done_creating(&*store, me, family).map_err(|e| Error::from_store(&e, lang))
            })
            .await;
        if let Err(e) = forgot {
            tracing::warn!(error = %e.message, "a refused family creation stays noted");
        }
    }

    async fn is_host(&self, family: &str) -> Result<bool> {
        // Not known from an empty copy (a host's device not let in yet).
        let (_, view) = self.edit_view(family).await?;
        let me = self.me()?.to_hex();
        Ok(view.members.get(&me).is_some_and(|m| m.role == Role::Host))
    }

    async fn require_host(&self, family: &str) -> Result<()> {
        if self.is_host(family).await? {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::Forbidden,
                self.language(),
                "이 일은 호스트만 할 수 있어요.",
                "Only the host can do that.",
            ))
        }
    }
}
