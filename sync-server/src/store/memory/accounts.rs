//! [`AccountStore`] for [`MemoryStore`]. Every method checks first and changes
//! afterwards, in the same order as the SQLite backend, so both answer alike.

use std::collections::{BTreeMap, HashMap};

use doran_protocol::{
    BlobHash, DeviceId, DocId, FamilyId, InviteId, LinkId, PublicKey, UserId,
    model::{DeviceCert, InviteInfo, MemberInfo, Role},
};

use super::MemoryStore;
use crate::store::{
    AccountStore, BlobGrantee, DeviceRecord, DocOwner, FamilyRecord, INVITE_PAIR_WINDOW_MS,
    InviteLimits, LinkRecord, LinkState, NewDevice, NewInvite, NewUser, StoreError, StoreResult,
    UploadGrant, UploadVerdict, UserRecord,
    rules::{StoredInviteState, int, passed},
};

/// Everything [`AccountStore`] keeps.
#[derive(Debug, Default)]
pub(super) struct Accounts {
    users: BTreeMap<UserId, UserRecord>,
    devices: BTreeMap<DeviceId, DeviceRecord>,
    link_codes: HashMap<[u8; 32], LinkCode>,
    /// Link requests, and which code each claimed.
    links: BTreeMap<LinkId, LinkRecord>,
    link_by_code: HashMap<[u8; 32], LinkId>,
    /// Deleted families stay, flagged, so their ids are never reused.
    families: BTreeMap<FamilyId, Family>,
    members: BTreeMap<(FamilyId, UserId), Member>,
    invites: BTreeMap<InviteId, Invite>,
    /// Size and, while it is one member alone, who uploaded it.
    grants: BTreeMap<(FamilyId, BlobHash), (u64, Option<UserId>)>,
    user_grants: BTreeMap<(UserId, BlobHash), u64>,
    snapshot_refs: BTreeMap<(DocId, BlobHash), (BlobGrantee, u64)>,
    releases: Vec<Release>,
    /// Device certificates per user, oldest first.
    certs: BTreeMap<UserId, Vec<DeviceCert>>,
    /// Each device's latest key package.
    key_packages: BTreeMap<DeviceId, Vec<u8>>,
    /// The volumes families opened (deleted families' too): their family and year.
    volumes: BTreeMap<DocId, (FamilyId, u16)>,
}

/// A blob whose grant or reference was withdrawn, counted until its grace is over.
#[derive(Debug, Clone, Copy)]
struct Release {
    blob: BlobHash,
    from: BlobGrantee,
    size: u64,
    at: u64,
}

#[derive(Debug)]
struct LinkCode {
    user: UserId,
    device: DeviceId,
    expires_at: u64,
    used: bool,
}

#[derive(Debug)]
struct Family {
    record: FamilyRecord,
    deleted: bool,
}

#[derive(Debug)]
struct Member {
    role: Role,
    joined_at: u64,
}

#[derive(Debug)]
struct Invite {
    new: NewInvite,
    state: StoredInviteState,
    /// When it was answered or withdrawn.
    closed_at: Option<u64>,
}

impl Accounts {
    fn user_with_email(&self, email: &str) -> Option<&UserRecord> {
        self.users.values().find(|u| u.email == email)
    }

    /// Whether `doc` is a user's personal document, or a family's document, key log
    /// or volume (deleted families included: their ids stay taken), or the key log of
    /// a volume.
    fn doc_taken(&self, doc: DocId) -> bool {
        // A personal document, or the key log of one (`FamilyId::key_log` relates the
        // two both ways): a document there would take that user's key log over.
        self.users
            .values()
            .any(|u| u.personal_doc == doc || FamilyId(u.personal_doc.0).key_log() == doc)
            || self
                .families
                .keys()
                .any(|&f| DocId::from(f) == doc || f.key_log() == doc)
            || self.volumes.contains_key(&doc)
            || self.volumes.contains_key(&DocId(doc.key_log_family().0))
    }

    /// Refuses a new membership of `user` past `max` families.
    fn check_family_room(&self, user: UserId, max: usize) -> StoreResult<()> {
        let n = self
            .members
            .keys()
            .filter(|(f, u)| *u == user && self.live_family(*f).is_some())
            .count();
        if n >= max {
            return Err(StoreError::TooManyFamilies);
        }
        Ok(())
    }

    /// Each distinct blob `to` holds (granted, a snapshot, released in its grace),
    /// with its size.
    fn held_by(&self, to: BlobGrantee) -> BTreeMap<BlobHash, u64> {
        let mut held = BTreeMap::new();
        match to {
            BlobGrantee::Family(family) => {
                for ((f, blob), (size, _)) in &self.grants {
                    if *f == family {
                        held.insert(*blob, *size);
                    }
                }
            }
            BlobGrantee::User(user) => {
                for ((u, blob), size) in &self.user_grants {
                    if *u == user {
                        held.insert(*blob, *size);
                    }
                }
            }
        }
        for ((_, blob), (owner, size)) in &self.snapshot_refs {
            if *owner == to {
                held.insert(*blob, *size);
            }
        }
        for r in &self.releases {
            if r.from == to {
                held.insert(r.blob, r.size);
            }
        }
        held
    }

    fn live_family(&self, family: FamilyId) -> Option<&FamilyRecord> {
        self.families
            .get(&family)
            .filter(|f| !f.deleted)
            .map(|f| &f.record)
    }

    /// The families `user` belongs to (not deleted), in the order they joined.
    fn families_of(&self, user: UserId) -> Vec<&FamilyRecord> {
        let mut families: Vec<(u64, &FamilyRecord)> = self
            .members
            .iter()
            .filter(|((_, u), _)| *u == user)
            .filter_map(|((f, _), m)| self.live_family(*f).map(|r| (m.joined_at, r)))
            .collect();
        families.sort_by_key(|(joined_at, f)| (*joined_at, f.id));
        families.into_iter().map(|(_, f)| f).collect()
    }

    fn is_member(&self, family: FamilyId, user: UserId) -> bool {
        self.members.contains_key(&(family, user))
    }

    fn family_members(&self, family: FamilyId) -> impl Iterator<Item = (UserId, &Member)> {
        self.members
            .range((family, UserId([0; 16]))..=(family, UserId([0xff; 16])))
            .map(|(&(_, user), m)| (user, m))
    }

    fn check_new_device(&self, device: &NewDevice) -> StoreResult<()> {
        if self.devices.contains_key(&device.id) {
            return Err(StoreError::Conflict(format!("device {} exists", device.id)));
        }
        if self.devices.values().any(|d| d.key == device.key) {
            return Err(StoreError::Conflict("device key already registered".into()));
        }
        Ok(())
    }

    fn insert_device(&mut self, user: UserId, device: &NewDevice) {
        self.devices.insert(
            device.id,
            DeviceRecord {
                id: device.id,
                user,
                key: device.key,
                client: device.client.clone(),
                added_at: device.added_at,
                last_seen: None,
                revoked_at: None,
            },
        );
    }

    fn member_info(&self, user: UserId, m: &Member) -> StoreResult<MemberInfo> {
        let record = self
            .users
            .get(&user)
            .ok_or_else(|| StoreError::Corrupt(format!("member {user} has no user")))?;
        Ok(MemberInfo {
            user,
            role: m.role,
            joined_at: m.joined_at,
            personal_doc: record.personal_doc,
        })
    }

    fn invite_info(&self, invite: &Invite, now: u64) -> StoreResult<InviteInfo> {
        let new = &invite.new;
        let corrupt = |what: &str| StoreError::Corrupt(format!("invite {} has no {what}", new.id));
        let inviter = self
            .users
            .get(&new.inviter)
            .ok_or_else(|| corrupt("inviter"))?;
        let invitee = self
            .users
            .get(&new.invitee)
            .ok_or_else(|| corrupt("invitee"))?;
        Ok(InviteInfo {
            invite: new.id,
            family: new.family,
            inviter: new.inviter,
            inviter_nickname: inviter.nickname.clone(),
            invitee: new.invitee,
            invitee_nickname: invitee.nickname.clone(),
            card: new.card.clone(),
            created_at: new.created_at,
            expires_at: new.expires_at,
            state: invite.state.at(new.expires_at, now),
        })
    }

    /// Pending invites unexpired at `now` that `keep` selects, oldest first.
    fn open_invites(
        &self,
        now: u64,
        keep: impl Fn(&NewInvite) -> bool,
    ) -> StoreResult<Vec<InviteInfo>> {
        let mut open: Vec<&Invite> = self
            .invites
            .values()
            .filter(|i| i.state == StoredInviteState::Pending && !passed(i.new.expires_at, now))
            .filter(|i| keep(&i.new))
            .collect();
        open.sort_by_key(|i| (i.new.created_at, i.new.id));
        open.into_iter().map(|i| self.invite_info(i, now)).collect()
    }

    /// Whether an invite's invitee may join its family.
    fn may_join(&self, new: &NewInvite, max_families: usize) -> StoreResult<()> {
        if self.is_member(new.family, new.invitee) {
            return Err(StoreError::AlreadyMember);
        }
        self.check_family_room(new.invitee, max_families)
    }

    /// Makes an invite's invitee a member.
    fn join(&mut self, new: &NewInvite, now: u64) {
        self.members.insert(
            (new.family, new.invitee),
            Member {
                role: Role::Member,
                joined_at: now,
            },
        );
    }

    /// Closes an open invite: checks it can be answered at `now` and that `check`
    /// passes, then stores `state` and runs `apply`.
    fn close_invite(
        &mut self,
        invite: InviteId,
        now: u64,
        state: StoredInviteState,
        check: impl FnOnce(&Self, &NewInvite) -> StoreResult<()>,
        apply: impl FnOnce(&mut Self, &NewInvite),
    ) -> StoreResult<InviteInfo> {
        int("now", now)?;
        let found = self
            .invites
            .get(&invite)
            .ok_or(StoreError::NotFound("invite"))?;
        found.state.check_open(found.new.expires_at, now)?;
        let new = found.new.clone();
        check(self, &new)?;
        let info = self.invite_info(found, now)?;
        apply(self, &new);
        if let Some(found) = self.invites.get_mut(&invite) {
            found.state = state;
            found.closed_at = Some(now);
        }
        Ok(InviteInfo {
            state: state.at(new.expires_at, now),
            ..info
        })
    }
}

impl AccountStore for MemoryStore {
    fn answers_at_once(&self) -> bool {
        true
    }

    fn create_user(&self, user: &NewUser, first_device: &NewDevice) -> StoreResult<()> {
        int("created_at", user.created_at)?;
        int("added_at", first_device.added_at)?;
        let mut a = self.accounts()?;
        if a.user_with_email(&user.email).is_some() {
            return Err(StoreError::EmailTaken);
        }
        if a.users.contains_key(&user.id) {
            return Err(StoreError::Conflict(format!("user {} exists", user.id)));
        }
        if a.users.values().any(|u| u.user_key == user.user_key) {
            return Err(StoreError::Conflict("user key already registered".into()));
        }
        if a.doc_taken(user.personal_doc) {
            return Err(StoreError::Conflict(format!(
                "document {} exists",
                user.personal_doc
            )));
        }
        a.check_new_device(first_device)?;
        a.users.insert(
            user.id,
            UserRecord {
                id: user.id,
                email: user.email.clone(),
                nickname: user.nickname.clone(),
                avatar: None,
                user_key: user.user_key,
                personal_doc: user.personal_doc,
                created_at: user.created_at,
            },
        );
        a.insert_device(user.id, first_device);
        Ok(())
    }

    fn user(&self, user: UserId) -> StoreResult<Option<UserRecord>> {
        Ok(self.accounts()?.users.get(&user).cloned())
    }

    fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        Ok(self.accounts()?.user_with_email(email).cloned())
    }

    fn user_by_key(&self, user_key: &PublicKey) -> StoreResult<Option<UserRecord>> {
        let a = self.accounts()?;
        Ok(a.users.values().find(|u| u.user_key == *user_key).cloned())
    }

    fn set_profile(
        &self,
        user: UserId,
        nickname: &str,
        avatar: Option<BlobHash>,
    ) -> StoreResult<()> {
        let mut a = self.accounts()?;
        let record = a.users.get_mut(&user).ok_or(StoreError::NotFound("user"))?;
        record.nickname = nickname.into();
        record.avatar = avatar;
        Ok(())
    }

    fn add_device(&self, user: UserId, device: &NewDevice) -> StoreResult<()> {
        int("added_at", device.added_at)?;
        let mut a = self.accounts()?;
        if !a.users.contains_key(&user) {
            return Err(StoreError::NotFound("user"));
        }
        a.check_new_device(device)?;
        a.insert_device(user, device);
        Ok(())
    }

    fn device(&self, device: DeviceId) -> StoreResult<Option<DeviceRecord>> {
        Ok(self.accounts()?.devices.get(&device).cloned())
    }

    fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>> {
        let a = self.accounts()?;
        let mut devices: Vec<DeviceRecord> = a
            .devices
            .values()
            .filter(|d| d.user == user)
            .cloned()
            .collect();
        devices.sort_by_key(|d| (d.added_at, d.id));
        Ok(devices)
    }

    fn put_device_certs(&self, user: UserId, certs: &[DeviceCert], max: usize) -> StoreResult<()> {
        let mut a = self.accounts()?;
        if !a.users.contains_key(&user) {
            return Err(StoreError::NotFound("user"));
        }
        // A certificate is one per (device, certifier), across all users.
        let mut held = a.certs.get(&user).cloned().unwrap_or_default();
        for c in certs {
            let taken = a
                .certs
                .values()
                .flatten()
                .chain(held.iter())
                .any(|k| k.device == c.device && k.by == c.by);
            if !taken {
                held.push(c.clone());
            }
        }
        // Certificates of revoked devices do not count: a stolen phone certifying
        // throwaway devices before it was revoked cannot lock its owner out.
        let live = held
            .iter()
            .filter(|c| {
                a.devices
                    .get(&c.device)
                    .is_some_and(|d| d.revoked_at.is_none())
            })
            .count();
        if live > max {
            return Err(StoreError::TooManyCerts);
        }
        a.certs.insert(user, held);
        Ok(())
    }

    fn device_certs(&self, user: UserId) -> StoreResult<Vec<DeviceCert>> {
        Ok(self
            .accounts()?
            .certs
            .get(&user)
            .cloned()
            .unwrap_or_default())
    }

    fn put_key_package(
        &self,
        user: UserId,
        device: DeviceId,
        package: &[u8],
        at: u64,
    ) -> StoreResult<()> {
        int("at", at)?;
        let mut a = self.accounts()?;
        match a.devices.get(&device).filter(|d| d.user == user) {
            None => return Err(StoreError::NotFound("device")),
            Some(d) if d.revoked_at.is_some() => return Err(StoreError::DeviceRevoked),
            Some(_) => {}
        }
        a.key_packages.insert(device, package.to_vec());
        Ok(())
    }

    fn key_packages(&self, user: UserId) -> StoreResult<Vec<(DeviceId, Vec<u8>)>> {
        let a = self.accounts()?;
        let mut live: Vec<&DeviceRecord> = a
            .devices
            .values()
            .filter(|d| d.user == user && d.revoked_at.is_none())
            .collect();
        live.sort_by_key(|d| (d.added_at, d.id));
        Ok(live
            .into_iter()
            .filter_map(|d| Some((d.id, a.key_packages.get(&d.id)?.clone())))
            .collect())
    }

    fn revoke_device(
        &self,
        user: UserId,
        device: DeviceId,
        by: DeviceId,
        at: u64,
    ) -> StoreResult<()> {
        int("at", at)?;
        let mut a = self.accounts()?;
        match a.devices.get(&by).filter(|d| d.user == user) {
            None => return Err(StoreError::NotFound("device")),
            Some(d) if d.revoked_at.is_some() => return Err(StoreError::DeviceRevoked),
            Some(_) => {}
        }
        let record = a
            .devices
            .get_mut(&device)
            .filter(|d| d.user == user)
            .ok_or(StoreError::NotFound("device"))?;
        record.revoked_at.get_or_insert(at);
        Ok(())
    }

    fn touch_device(&self, device: DeviceId, at: u64, client: Option<&str>) -> StoreResult<()> {
        int("at", at)?;
        let mut a = self.accounts()?;
        let record = a
            .devices
            .get_mut(&device)
            .ok_or(StoreError::NotFound("device"))?;
        if let Some(client) = client {
            client.clone_into(&mut record.client);
        }
        record.last_seen = Some(record.last_seen.map_or(at, |seen| seen.max(at)));
        Ok(())
    }

    fn put_link_code(
        &self,
        code_hash: [u8; 32],
        user: UserId,
        device: DeviceId,
        expires_at: u64,
    ) -> StoreResult<()> {
        int("expires_at", expires_at)?;
        let mut a = self.accounts()?;
        let issuer = a
            .devices
            .get(&device)
            .filter(|d| d.user == user)
            .ok_or(StoreError::NotFound("device"))?;
        if issuer.revoked_at.is_some() {
            return Err(StoreError::Invalid("the device is revoked".into()));
        }
        if a.link_codes.contains_key(&code_hash) {
            return Err(StoreError::Conflict("link code already issued".into()));
        }
        // One code at a time: the new one replaces the unclaimed ones.
        a.link_codes
            .retain(|_, code| code.user != user || code.used);
        a.link_codes.insert(
            code_hash,
            LinkCode {
                user,
                device,
                expires_at,
                used: false,
            },
        );
        Ok(())
    }

    fn purge_finished(&self, links_before: u64, invites_before: u64) -> StoreResult<usize> {
        let mut a = self.accounts()?;
        let a = &mut *a;
        let before = a.links.len() + a.link_codes.len() + a.invites.len();
        // Requests first: each references its code.
        a.links.retain(|_, link| link.expires_at >= links_before);
        let links = &a.links;
        a.link_by_code.retain(|_, link| links.contains_key(link));
        let claimed = &a.link_by_code;
        a.link_codes
            .retain(|hash, code| code.expires_at >= links_before || claimed.contains_key(hash));
        a.invites.retain(|_, invite| match invite.state {
            StoredInviteState::Pending => invite.new.expires_at >= invites_before,
            _ => invite.closed_at.is_none_or(|at| at >= invites_before),
        });
        Ok(before - (a.links.len() + a.link_codes.len() + a.invites.len()))
    }

    fn claim_link_code(
        &self,
        code_hash: [u8; 32],
        link: LinkId,
        device: &NewDevice,
        now: u64,
    ) -> StoreResult<Option<LinkRecord>> {
        int("now", now)?;
        int("added_at", device.added_at)?;
        let mut a = self.accounts()?;
        if let Some(id) = a.link_by_code.get(&code_hash) {
            let record = a
                .links
                .get(id)
                .ok_or_else(|| StoreError::Corrupt("a claimed code without its link".into()))?;
            if record.device.id != device.id || record.device.key != device.key {
                return Err(StoreError::LinkClaimed);
            }
            return Ok(Some(record.clone()));
        }
        let Some(code) = a.link_codes.get(&code_hash) else {
            return Ok(None);
        };
        let revoked = a
            .devices
            .get(&code.device)
            .is_none_or(|d| d.revoked_at.is_some());
        if code.used || revoked || passed(code.expires_at, now) {
            return Ok(None);
        }
        let (user, expires_at) = (code.user, code.expires_at);
        a.check_new_device(device)?;
        if a.links.contains_key(&link) {
            return Err(StoreError::Conflict(format!("link {link} exists")));
        }
        let record = LinkRecord {
            id: link,
            user,
            device: device.clone(),
            expires_at,
            state: LinkState::Pending,
        };
        a.links.insert(link, record.clone());
        a.link_by_code.insert(code_hash, link);
        if let Some(code) = a.link_codes.get_mut(&code_hash) {
            code.used = true;
        }
        Ok(Some(record))
    }

    fn link(&self, link: LinkId) -> StoreResult<Option<LinkRecord>> {
        Ok(self.accounts()?.links.get(&link).cloned())
    }

    fn pending_links(&self, user: UserId, now: u64) -> StoreResult<Vec<LinkRecord>> {
        int("now", now)?;
        let a = self.accounts()?;
        let mut list: Vec<LinkRecord> = a
            .links
            .values()
            .filter(|l| {
                l.user == user && l.state == LinkState::Pending && !passed(l.expires_at, now)
            })
            .cloned()
            .collect();
        list.sort_by_key(|l| (l.device.added_at, l.id));
        Ok(list)
    }

    fn answer_link(
        &self,
        user: UserId,
        link: LinkId,
        by: DeviceId,
        accept: bool,
        now: u64,
    ) -> StoreResult<LinkRecord> {
        int("now", now)?;
        let mut a = self.accounts()?;
        match a.devices.get(&by).filter(|d| d.user == user) {
            None => return Err(StoreError::NotFound("device")),
            Some(d) if d.revoked_at.is_some() => return Err(StoreError::DeviceRevoked),
            Some(_) => {}
        }
        let mut record = a
            .links
            .get(&link)
            .filter(|l| l.user == user)
            .cloned()
            .ok_or(StoreError::NotFound("link"))?;
        if record.state != LinkState::Pending {
            return Err(StoreError::LinkClosed);
        }
        if passed(record.expires_at, now) {
            return Err(StoreError::LinkExpired);
        }
        if accept {
            let new = NewDevice {
                added_at: now,
                ..record.device.clone()
            };
            a.check_new_device(&new)?;
            a.insert_device(user, &new);
            record.state = LinkState::Accepted;
        } else {
            record.state = LinkState::Rejected;
        }
        a.links.insert(link, record.clone());
        Ok(record)
    }

    fn create_family(
        &self,
        family: FamilyId,
        host: UserId,
        at: u64,
        max_families: usize,
    ) -> StoreResult<()> {
        int("at", at)?;
        let mut a = self.accounts()?;
        if !a.users.contains_key(&host) {
            return Err(StoreError::NotFound("user"));
        }
        if a.families.contains_key(&family)
            || a.doc_taken(DocId::from(family))
            || a.doc_taken(family.key_log())
        {
            return Err(StoreError::Conflict(format!("family {family} exists")));
        }
        a.check_family_room(host, max_families)?;
        a.families.insert(
            family,
            Family {
                record: FamilyRecord {
                    id: family,
                    host,
                    created_at: at,
                },
                deleted: false,
            },
        );
        a.members.insert(
            (family, host),
            Member {
                role: Role::Host,
                joined_at: at,
            },
        );
        Ok(())
    }

    fn family(&self, family: FamilyId) -> StoreResult<Option<FamilyRecord>> {
        Ok(self.accounts()?.live_family(family).cloned())
    }

    fn families_of(&self, user: UserId) -> StoreResult<Vec<FamilyRecord>> {
        let a = self.accounts()?;
        Ok(a.families_of(user).into_iter().cloned().collect())
    }

    fn members(&self, family: FamilyId) -> StoreResult<Vec<MemberInfo>> {
        let a = self.accounts()?;
        let mut members = a
            .family_members(family)
            .map(|(user, m)| a.member_info(user, m))
            .collect::<StoreResult<Vec<_>>>()?;
        members.sort_by_key(|m| (m.joined_at, m.user));
        Ok(members)
    }

    fn membership(&self, family: FamilyId, user: UserId) -> StoreResult<Option<MemberInfo>> {
        let a = self.accounts()?;
        a.members
            .get(&(family, user))
            .map(|m| a.member_info(user, m))
            .transpose()
    }

    fn remove_member(&self, family: FamilyId, user: UserId) -> StoreResult<()> {
        let mut a = self.accounts()?;
        match a.members.get(&(family, user)) {
            None => return Err(StoreError::NotFound("member")),
            Some(m) if m.role == Role::Host => {
                return Err(StoreError::Conflict(
                    "the host cannot leave; delete the family instead".into(),
                ));
            }
            Some(_) => {}
        }
        a.members.remove(&(family, user));
        Ok(())
    }

    fn delete_family(&self, family: FamilyId, at: u64) -> StoreResult<()> {
        int("at", at)?;
        let mut a = self.accounts()?;
        let found = a
            .families
            .get_mut(&family)
            .filter(|f| !f.deleted)
            .ok_or(StoreError::NotFound("family"))?;
        found.deleted = true;
        a.members.retain(|(f, _), _| *f != family);
        a.invites.retain(|_, i| i.new.family != family);
        let from = BlobGrantee::Family(family);
        let released: Vec<Release> = a
            .held_by(from)
            .into_iter()
            .map(|(blob, size)| Release {
                blob,
                from,
                size,
                at,
            })
            .collect();
        a.releases.extend(released);
        a.grants.retain(|(f, _), _| *f != family);
        a.snapshot_refs.retain(|_, (owner, _)| *owner != from);
        Ok(())
    }

    fn open_volume(&self, family: FamilyId, year: u16, max_volumes: usize) -> StoreResult<bool> {
        let doc = family.volume(year);
        let mut a = self.accounts()?;
        if a.live_family(family).is_none() {
            return Err(StoreError::NotFound("family"));
        }
        match a.volumes.get(&doc) {
            Some(&open) if open == (family, year) => return Ok(false),
            Some(_) => return Err(StoreError::Conflict(format!("volume {doc} is taken"))),
            None => {}
        }
        if a.doc_taken(doc) {
            return Err(StoreError::Conflict(format!("volume {doc} is taken")));
        }
        if a.volumes.values().filter(|(f, _)| *f == family).count() >= max_volumes {
            return Err(StoreError::TooManyVolumes);
        }
        a.volumes.insert(doc, (family, year));
        Ok(true)
    }

    fn volumes_of(&self, family: FamilyId) -> StoreResult<Vec<(u16, DocId)>> {
        let a = self.accounts()?;
        let mut out: Vec<(u16, DocId)> = a
            .volumes
            .iter()
            .filter(|(_, (f, _))| *f == family)
            .map(|(&doc, &(_, year))| (year, doc))
            .collect();
        out.sort();
        Ok(out)
    }

    fn create_invite_within(&self, invite: &NewInvite, limits: InviteLimits) -> StoreResult<()> {
        int("created_at", invite.created_at)?;
        int("expires_at", invite.expires_at)?;
        if invite.expires_at <= invite.created_at {
            return Err(StoreError::Invalid(
                "an invite must expire after it is created".into(),
            ));
        }
        let mut a = self.accounts()?;
        if a.live_family(invite.family).is_none() {
            return Err(StoreError::NotFound("family"));
        }
        if !a.users.contains_key(&invite.invitee) {
            return Err(StoreError::NotFound("user"));
        }
        if !a.is_member(invite.family, invite.inviter) {
            return Err(StoreError::NotFound("member"));
        }
        if a.invites.contains_key(&invite.id) {
            return Err(StoreError::Conflict(format!("invite {} exists", invite.id)));
        }
        if a.is_member(invite.family, invite.invitee) {
            return Err(StoreError::AlreadyMember);
        }
        if a.invites.values().any(|i| {
            i.new.family == invite.family
                && i.new.invitee == invite.invitee
                && i.state == StoredInviteState::Pending
                && !passed(i.new.expires_at, invite.created_at)
        }) {
            return Err(StoreError::AlreadyInvited);
        }
        let open = |i: &&Invite| {
            i.state == StoredInviteState::Pending && !passed(i.new.expires_at, invite.created_at)
        };
        let pending = a.invites.values().filter(open);
        let for_invitee = pending
            .clone()
            .filter(|i| i.new.invitee == invite.invitee)
            .count();
        let of_family = pending.filter(|i| i.new.family == invite.family).count();
        let since = invite.created_at.saturating_sub(INVITE_PAIR_WINDOW_MS);
        let of_pair = a
            .invites
            .values()
            .filter(|i| {
                i.new.family == invite.family
                    && i.new.invitee == invite.invitee
                    && i.new.created_at > since
            })
            .count();
        if for_invitee >= limits.per_invitee
            || of_family >= limits.per_family
            || of_pair >= limits.per_pair
        {
            return Err(StoreError::TooManyInvites);
        }
        a.invites.insert(
            invite.id,
            Invite {
                new: invite.clone(),
                state: StoredInviteState::Pending,
                closed_at: None,
            },
        );
        Ok(())
    }

    fn invite(&self, invite: InviteId, now: u64) -> StoreResult<Option<InviteInfo>> {
        let a = self.accounts()?;
        a.invites
            .get(&invite)
            .map(|i| a.invite_info(i, now))
            .transpose()
    }

    fn invites_for(&self, user: UserId, now: u64) -> StoreResult<Vec<InviteInfo>> {
        int("now", now)?;
        self.accounts()?.open_invites(now, |i| i.invitee == user)
    }

    fn invites_of_family(&self, family: FamilyId, now: u64) -> StoreResult<Vec<InviteInfo>> {
        int("now", now)?;
        self.accounts()?.open_invites(now, |i| i.family == family)
    }

    fn invites_seen_by(&self, user: UserId, now: u64) -> StoreResult<Vec<InviteInfo>> {
        int("now", now)?;
        let a = self.accounts()?;
        let mut list = a.open_invites(now, |i| i.invitee == user)?;
        for family in a.families_of(user) {
            list.extend(a.open_invites(now, |i| i.family == family.id && i.invitee != user)?);
        }
        Ok(list)
    }

    fn answer_invite(
        &self,
        invite: InviteId,
        accept: bool,
        now: u64,
        max_families: usize,
    ) -> StoreResult<InviteInfo> {
        let state = if accept {
            StoredInviteState::Accepted
        } else {
            StoredInviteState::Rejected
        };
        self.accounts()?.close_invite(
            invite,
            now,
            state,
            |a, new| {
                if !accept {
                    return Ok(());
                }
                a.may_join(new, max_families)
            },
            |a, new| {
                if accept {
                    a.join(new, now);
                }
            },
        )
    }

    fn withdraw_invite(&self, invite: InviteId, now: u64) -> StoreResult<InviteInfo> {
        self.accounts()?.close_invite(
            invite,
            now,
            StoredInviteState::Withdrawn,
            |_, _| Ok(()),
            |_, _| {},
        )
    }

    fn doc_owner(&self, doc: DocId) -> StoreResult<Option<DocOwner>> {
        let a = self.accounts()?;
        if let Some(user) = a.users.values().find(|u| u.personal_doc == doc) {
            return Ok(Some(DocOwner::Personal(user.id)));
        }
        let family = FamilyId(doc.0);
        if a.live_family(family).is_some() {
            return Ok(Some(DocOwner::Family(family)));
        }
        // Or a volume of a family that is not deleted.
        if let Some(&(family, _)) = a.volumes.get(&doc) {
            return Ok(a.live_family(family).map(|_| DocOwner::Family(family)));
        }
        // Or the key log of a family that is not deleted, or of a personal document.
        let family = doc.key_log_family();
        if let Some(user) = a.users.values().find(|u| u.personal_doc.0 == family.0) {
            return Ok(Some(DocOwner::PersonalKeys(user.id)));
        }
        Ok(a.live_family(family).map(|_| DocOwner::Family(family)))
    }

    fn grant_blob(
        &self,
        family: FamilyId,
        blob: BlobHash,
        size: u64,
        by: UserId,
    ) -> StoreResult<()> {
        int("size", size)?;
        let mut a = self.accounts()?;
        if a.live_family(family).is_none() {
            return Err(StoreError::NotFound("family"));
        }
        let grant = a.grants.entry((family, blob)).or_insert((size, Some(by)));
        if grant.1 != Some(by) {
            grant.1 = None;
        }
        Ok(())
    }

    fn grant_upload(&self, upload: &UploadGrant) -> StoreResult<UploadVerdict> {
        int("size", upload.size)?;
        // One lock for the checks and the grant, as the other stores' transaction.
        let mut a = self.accounts()?;
        match a.devices.get(&upload.device) {
            Some(d) if d.user != upload.by => return Err(StoreError::NotFound("device")),
            Some(d) if d.revoked_at.is_some() => return Ok(UploadVerdict::DeviceRevoked),
            Some(_) => {}
            None => return Err(StoreError::NotFound("device")),
        }
        let allowed = match upload.to {
            // A deleted family has no members left.
            BlobGrantee::Family(family) => a.is_member(family, upload.by),
            BlobGrantee::User(user) => user == upload.by,
        };
        if !allowed {
            return Ok(UploadVerdict::NotMember);
        }
        let held = a.held_by(upload.to);
        if !held.contains_key(&upload.blob)
            && held
                .values()
                .fold(upload.size, |sum, size| sum.saturating_add(*size))
                > upload.quota
        {
            return Ok(UploadVerdict::QuotaExceeded);
        }
        match upload.to {
            BlobGrantee::Family(family) => {
                let grant = a
                    .grants
                    .entry((family, upload.blob))
                    .or_insert((upload.size, Some(upload.by)));
                // A second member uploading the same bytes makes it no one's alone.
                if grant.1 != Some(upload.by) {
                    grant.1 = None;
                }
            }
            BlobGrantee::User(user) => {
                a.user_grants
                    .entry((user, upload.blob))
                    .or_insert(upload.size);
            }
        }
        Ok(UploadVerdict::Granted)
    }

    fn grant_blob_to_user(&self, user: UserId, blob: BlobHash, size: u64) -> StoreResult<()> {
        int("size", size)?;
        let mut a = self.accounts()?;
        if !a.users.contains_key(&user) {
            return Err(StoreError::NotFound("user"));
        }
        a.user_grants.entry((user, blob)).or_insert(size);
        Ok(())
    }

    fn blob_granted(&self, user: UserId, blob: BlobHash) -> StoreResult<bool> {
        let a = self.accounts()?;
        let families: Vec<FamilyId> = a
            .members
            .keys()
            .filter(|&&(_, u)| u == user)
            .map(|&(family, _)| family)
            .collect();
        // Who holds it as a personal blob (granted, or a personal snapshot).
        let owners = a
            .user_grants
            .keys()
            .filter(|&&(_, b)| b == blob)
            .map(|&(owner, _)| owner)
            .chain(
                a.snapshot_refs
                    .iter()
                    .filter(|((_, b), _)| *b == blob)
                    .filter_map(|(_, (owner, _))| match owner {
                        BlobGrantee::User(u) => Some(*u),
                        BlobGrantee::Family(_) => None,
                    }),
            );
        let by_family = families.iter().any(|&family| {
            a.grants.contains_key(&(family, blob))
                || a.snapshot_refs
                    .iter()
                    .any(|((_, b), (owner, _))| *b == blob && *owner == BlobGrantee::Family(family))
        });
        if by_family {
            return Ok(true);
        }
        // Held by the caller, or by someone sharing a family with them.
        let mut owners = owners;
        Ok(owners.any(|owner| {
            owner == user || families.iter().any(|&family| a.is_member(family, owner))
        }))
    }

    fn has_blob_grant(&self, to: BlobGrantee, blob: BlobHash) -> StoreResult<bool> {
        Ok(self.accounts()?.held_by(to).contains_key(&blob))
    }

    fn family_blob_bytes(&self, family: FamilyId) -> StoreResult<u64> {
        let a = self.accounts()?;
        Ok(a.held_by(BlobGrantee::Family(family))
            .values()
            .fold(0, |sum, size| sum.saturating_add(*size)))
    }

    fn user_blob_bytes(&self, user: UserId) -> StoreResult<u64> {
        let a = self.accounts()?;
        Ok(a.held_by(BlobGrantee::User(user))
            .values()
            .fold(0, |sum, size| sum.saturating_add(*size)))
    }

    fn add_snapshot_ref(
        &self,
        doc: DocId,
        to: BlobGrantee,
        blob: BlobHash,
        size: u64,
    ) -> StoreResult<()> {
        int("size", size)?;
        let mut a = self.accounts()?;
        match to {
            BlobGrantee::Family(f) if a.live_family(f).is_none() => {
                return Err(StoreError::NotFound("family"));
            }
            BlobGrantee::User(u) if !a.users.contains_key(&u) => {
                return Err(StoreError::NotFound("user"));
            }
            _ => {}
        }
        a.snapshot_refs.entry((doc, blob)).or_insert((to, size));
        Ok(())
    }

    fn settle_snapshot(
        &self,
        doc: DocId,
        to: BlobGrantee,
        blob: BlobHash,
        by: UserId,
        at: u64,
    ) -> StoreResult<()> {
        int("at", at)?;
        let mut a = self.accounts()?;
        if !a.snapshot_refs.contains_key(&(doc, blob)) {
            return Err(StoreError::NotFound("blob"));
        }
        let others: Vec<(BlobHash, BlobGrantee, u64)> = a
            .snapshot_refs
            .iter()
            .filter(|((d, b), _)| *d == doc && *b != blob)
            .map(|((_, b), (owner, size))| (*b, *owner, *size))
            .collect();
        for (old, from, size) in others {
            a.snapshot_refs.remove(&(doc, old));
            a.releases.push(Release {
                blob: old,
                from,
                size,
                at,
            });
        }
        match to {
            BlobGrantee::Family(f) => {
                if a.grants.get(&(f, blob)).is_some_and(|g| g.1 == Some(by)) {
                    a.grants.remove(&(f, blob));
                }
            }
            BlobGrantee::User(u) if u == by => {
                a.user_grants.remove(&(u, blob));
            }
            BlobGrantee::User(_) => {}
        }
        Ok(())
    }

    fn adopt_snapshot_upload(
        &self,
        doc: DocId,
        to: BlobGrantee,
        blob: BlobHash,
        by: UserId,
    ) -> StoreResult<()> {
        let mut a = self.accounts()?;
        if !a.snapshot_refs.contains_key(&(doc, blob)) {
            return Err(StoreError::NotFound("blob"));
        }
        match to {
            BlobGrantee::Family(f) => {
                if a.grants.get(&(f, blob)).is_some_and(|g| g.1 == Some(by)) {
                    a.grants.remove(&(f, blob));
                }
            }
            BlobGrantee::User(u) if u == by => {
                a.user_grants.remove(&(u, blob));
            }
            BlobGrantee::User(_) => {}
        }
        Ok(())
    }

    fn drop_snapshot_ref(&self, doc: DocId, blob: BlobHash, at: u64) -> StoreResult<bool> {
        int("at", at)?;
        let mut a = self.accounts()?;
        let Some((from, size)) = a.snapshot_refs.remove(&(doc, blob)) else {
            return Ok(false);
        };
        a.releases.push(Release {
            blob,
            from,
            size,
            at,
        });
        Ok(true)
    }

    fn blob_referenced(&self, blob: BlobHash) -> StoreResult<bool> {
        let a = self.accounts()?;
        Ok(a.grants.keys().any(|(_, b)| *b == blob)
            || a.user_grants.keys().any(|(_, b)| *b == blob)
            || a.snapshot_refs.keys().any(|(_, b)| *b == blob)
            || a.releases.iter().any(|r| r.blob == blob))
    }

    fn expire_blob_releases(&self, before: u64) -> StoreResult<usize> {
        int("before", before)?;
        let mut a = self.accounts()?;
        let n = a.releases.len();
        a.releases.retain(|r| r.at >= before);
        Ok(n - a.releases.len())
    }
}
