//! [`AccountStore`] for [`SqliteStore`]. Each method checks what it can answer
//! precisely (an email taken, a member invited again) before writing; the schema's
//! constraints are the backstop.

use doran_protocol::{
    BlobHash, DeviceId, DocId, FamilyId, InviteId, LinkId, PublicKey, UserId,
    model::{DeviceCert, InviteInfo, MemberInfo, Role},
};
use rusqlite::{Connection, OptionalExtension, Params};

use super::{
    SqliteStore,
    records::{
        self, device_columns, family_columns, invite_columns, invite_nicknames, invite_select,
        member_select, role_str, user_columns,
    },
    rows::{collect, first, to_unsigned, unsigned},
};
use crate::store::{
    AccountStore, BlobGrantee, DeviceRecord, DocOwner, FamilyRecord, INVITE_PAIR_WINDOW_MS,
    InviteLimits, LinkRecord, LinkState, NewDevice, NewInvite, NewUser, StoreError, StoreResult,
    UploadGrant, UploadVerdict, UserRecord,
    rules::{StoredInviteState, cert_from_columns, certifier_columns, int, passed},
};

/// Whether `sql` (a `SELECT 1 …`) finds a row.
fn exists(tx: &Connection, sql: &str, params: impl Params) -> StoreResult<bool> {
    Ok(tx.prepare_cached(sql)?.exists(params)?)
}

/// A device by id, revoked or not.
fn load_device(tx: &Connection, device: DeviceId) -> StoreResult<Option<DeviceRecord>> {
    let mut stmt = tx.prepare_cached(concat!(
        "SELECT ",
        device_columns!(),
        " FROM devices WHERE id = ?1"
    ))?;
    first(stmt.query([device.0])?, records::device)
}

/// Whether `user` may read `blob` (see [`AccountStore::blob_granted`]).
fn blob_granted(tx: &Connection, user: UserId, blob: BlobHash) -> StoreResult<bool> {
    // Granted to (or a snapshot of) a family of the caller; to the caller; or to
    // someone who shares a family with the caller (members only has live families).
    exists(
        tx,
        "SELECT 1 FROM blob_grants g JOIN members m ON m.family = g.family
         WHERE g.blob = ?2 AND m.user = ?1
         UNION ALL
         SELECT 1 FROM snapshot_refs r JOIN members m ON m.family = r.family
         WHERE r.blob = ?2 AND m.user = ?1
         UNION ALL
         SELECT 1 FROM user_blob_grants u WHERE u.blob = ?2 AND u.user = ?1
         UNION ALL
         SELECT 1 FROM snapshot_refs r WHERE r.blob = ?2 AND r.user = ?1
         UNION ALL
         SELECT 1 FROM user_blob_grants u
         JOIN members o ON o.user = u.user
         JOIN members m ON m.family = o.family
         WHERE u.blob = ?2 AND m.user = ?1
         UNION ALL
         SELECT 1 FROM snapshot_refs r
         JOIN members o ON o.user = r.user
         JOIN members m ON m.family = o.family
         WHERE r.blob = ?2 AND m.user = ?1",
        (user.0, blob.0),
    )
}

/// What `ListInvites` shows `user` at `now` (`at`: the same as a column value).
fn invites_seen_by(
    tx: &Connection,
    user: UserId,
    now: u64,
    at: i64,
) -> StoreResult<Vec<InviteInfo>> {
    // Addressed to `user` (part 0), then each of their families' (part 1, in the order
    // they joined): one statement, so the pages both parts touch are read once. An
    // invite addressed to `user` is in part 0 only. Part 0 starts from the invites
    // (CROSS JOIN keeps that order): left to itself, SQLite reads `user`'s own row
    // first, for nothing when none is addressed to them.
    let mut stmt = tx.prepare_cached(concat!(
        "SELECT ",
        invite_columns!(),
        ", 0 AS part, 0 AS joined, NULL AS fam
         FROM invites i
         CROSS JOIN users ur ON ur.id = i.inviter
         CROSS JOIN users ue ON ue.id = i.invitee
         WHERE i.invitee = ?1 AND i.state = 'pending' AND i.expires_at > ?2
         UNION ALL
         SELECT ",
        invite_columns!(),
        ", 1, m.joined_at, m.family
         FROM members m
         JOIN families f ON f.id = m.family AND f.deleted = 0
         JOIN invites i ON i.family = m.family ",
        invite_nicknames!(),
        " WHERE m.user = ?1 AND i.invitee <> ?1
           AND i.state = 'pending' AND i.expires_at > ?2
         ORDER BY part, joined, fam, 8, 1" // created_at, id
    ))?;
    collect(stmt.query((user.0, at))?, |row| {
        Ok(records::invite(row, now)?.0)
    })
}

/// Whether a family exists and is not deleted.
fn live_family(tx: &Connection, family: FamilyId) -> StoreResult<bool> {
    exists(
        tx,
        "SELECT 1 FROM families WHERE id = ?1 AND deleted = 0",
        [family.0],
    )
}

fn is_member(tx: &Connection, family: FamilyId, user: UserId) -> StoreResult<bool> {
    exists(
        tx,
        "SELECT 1 FROM members WHERE family = ?1 AND user = ?2",
        (family.0, user.0),
    )
}

/// Refuses a new membership of `user` past `max` families.
fn check_family_room(tx: &Connection, user: UserId, max: usize) -> StoreResult<()> {
    let n: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM members m JOIN families f ON f.id = m.family
             WHERE m.user = ?1 AND f.deleted = 0",
        )?
        .query_row([user.0], |row| row.get(0))?;
    if usize::try_from(n).unwrap_or(usize::MAX) >= max {
        return Err(StoreError::TooManyFamilies);
    }
    Ok(())
}

/// Releases `blob` (held by `family` or `user`) at `at`: it stays counted and
/// undeleted for the grace period.
fn release(
    tx: &Connection,
    blob: &[u8; 32],
    family: Option<[u8; 16]>,
    user: Option<[u8; 16]>,
    size: i64,
    at: i64,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO blob_releases (blob, family, user, size, released_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute((blob, family, user, size, at))?;
    Ok(())
}

/// `(family, user)` columns of a grantee.
fn grantee_columns(to: BlobGrantee) -> (Option<[u8; 16]>, Option<[u8; 16]>) {
    match to {
        BlobGrantee::Family(f) => (Some(f.0), None),
        BlobGrantee::User(u) => (None, Some(u.0)),
    }
}

/// Refuses a device whose id or key is registered.
fn check_new_device(tx: &Connection, device: &NewDevice) -> StoreResult<()> {
    if exists(tx, "SELECT 1 FROM devices WHERE id = ?1", [device.id.0])? {
        return Err(StoreError::Conflict(format!("device {} exists", device.id)));
    }
    if exists(tx, "SELECT 1 FROM devices WHERE key = ?1", [device.key.0])? {
        return Err(StoreError::Conflict("device key already registered".into()));
    }
    Ok(())
}

fn insert_device(tx: &Connection, user: UserId, device: &NewDevice) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO devices (id, user, key, client, added_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute((
        device.id.0,
        user.0,
        device.key.0,
        &device.client,
        int("added_at", device.added_at)?,
    ))?;
    Ok(())
}

/// The columns [`link_row`] reads.
const LINK_SELECT: &str = "SELECT id, user, device, device_key, client, requested_at, expires_at,
     state FROM link_requests";

fn link_row(row: &rusqlite::Row<'_>) -> StoreResult<LinkRecord> {
    let state: i64 = row.get(7)?;
    Ok(LinkRecord {
        id: LinkId(row.get(0)?),
        user: UserId(row.get(1)?),
        device: NewDevice {
            id: DeviceId(row.get(2)?),
            key: PublicKey(row.get(3)?),
            client: row.get(4)?,
            added_at: unsigned(row, 5, "requested_at")?,
        },
        expires_at: unsigned(row, 6, "expires_at")?,
        state: match state {
            0 => LinkState::Pending,
            1 => LinkState::Accepted,
            2 => LinkState::Rejected,
            other => return Err(StoreError::Corrupt(format!("link state {other}"))),
        },
    })
}

fn load_link(tx: &Connection, sql_where: &str, key: &[u8]) -> StoreResult<Option<LinkRecord>> {
    let mut stmt = tx.prepare_cached(&format!("{LINK_SELECT} WHERE {sql_where}"))?;
    first(stmt.query([key])?, link_row)
}

fn load_invite(
    tx: &Connection,
    invite: InviteId,
    now: u64,
) -> StoreResult<Option<(InviteInfo, StoredInviteState)>> {
    let mut stmt = tx.prepare_cached(concat!(invite_select!(), " WHERE i.id = ?1"))?;
    first(stmt.query([invite.0])?, |row| records::invite(row, now))
}

/// Closes an open invite: checks it can be answered at `now`, then stores `state`.
fn close_invite(
    tx: &Connection,
    invite: InviteId,
    now: u64,
    state: StoredInviteState,
    before_close: impl FnOnce(&InviteInfo) -> StoreResult<()>,
) -> StoreResult<InviteInfo> {
    let at = int("now", now)?;
    let (mut info, stored) = load_invite(tx, invite, now)?.ok_or(StoreError::NotFound("invite"))?;
    stored.check_open(info.expires_at, now)?;
    before_close(&info)?;
    tx.prepare_cached("UPDATE invites SET state = ?2, closed_at = ?3 WHERE id = ?1")?
        .execute((invite.0, state.as_str(), at))?;
    info.state = state.at(info.expires_at, now);
    Ok(info)
}

/// Makes an invite's invitee a member, unless they are one already or they have no
/// room for another family.
fn join_by_invite(
    tx: &Connection,
    info: &InviteInfo,
    at: i64,
    max_families: usize,
) -> StoreResult<()> {
    if is_member(tx, info.family, info.invitee)? {
        return Err(StoreError::AlreadyMember);
    }
    check_family_room(tx, info.invitee, max_families)?;
    tx.prepare_cached(
        "INSERT INTO members (family, user, role, joined_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute((info.family.0, info.invitee.0, role_str(Role::Member), at))?;
    Ok(())
}

impl AccountStore for SqliteStore {
    /// When one of a file database's read-only connections is free now (in WAL mode
    /// they never wait for the writer's commit): a read then takes it instead of
    /// waiting on the worker behind a long one (a catch-up). An in-memory database
    /// reads through the writer: never.
    fn answers_at_once(&self) -> bool {
        self.readers.iter().any(|r| r.try_lock().is_ok())
    }

    fn read_cache_stats(&self) -> Option<(u64, u64)> {
        Some(self.cache.stats())
    }

    fn create_user(&self, user: &NewUser, first_device: &NewDevice) -> StoreResult<()> {
        let created_at = int("created_at", user.created_at)?;
        int("added_at", first_device.added_at)?;
        self.write(|tx| {
            if exists(tx, "SELECT 1 FROM users WHERE email = ?1", [&user.email])? {
                return Err(StoreError::EmailTaken);
            }
            if exists(tx, "SELECT 1 FROM users WHERE id = ?1", [user.id.0])? {
                return Err(StoreError::Conflict(format!("user {} exists", user.id)));
            }
            if exists(
                tx,
                "SELECT 1 FROM users WHERE user_key = ?1",
                [user.user_key.0],
            )? {
                return Err(StoreError::Conflict("user key already registered".into()));
            }
            // Nor another family's or user's key log (FamilyId::key_log relates a
            // document and its key log both ways): a personal document there would
            // take that key log over.
            let ids = [user.personal_doc.0, user.personal_doc.key_log_family().0];
            if exists(tx, "SELECT 1 FROM docs WHERE doc = ?1 OR doc = ?2", ids)?
                || exists(tx, "SELECT 1 FROM volumes WHERE doc = ?1 OR doc = ?2", ids)?
            {
                return Err(StoreError::Conflict(format!(
                    "document {} exists",
                    user.personal_doc
                )));
            }
            check_new_device(tx, first_device)?;
            tx.prepare_cached(
                "INSERT INTO users (id, email, nickname, user_key, personal_doc, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute((
                user.id.0,
                &user.email,
                &user.nickname,
                user.user_key.0,
                user.personal_doc.0,
                created_at,
            ))?;
            tx.prepare_cached("INSERT INTO docs (doc, user) VALUES (?1, ?2)")?
                .execute((user.personal_doc.0, user.id.0))?;
            insert_device(tx, user.id, first_device)
        })
    }

    fn user(&self, user: UserId) -> StoreResult<Option<UserRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE id = ?1"
            ))?;
            first(stmt.query([user.0])?, records::user)
        })
    }

    fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE email = ?1"
            ))?;
            first(stmt.query([email])?, records::user)
        })
    }

    fn user_by_key(&self, user_key: &PublicKey) -> StoreResult<Option<UserRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE user_key = ?1"
            ))?;
            first(stmt.query([user_key.0])?, records::user)
        })
    }

    fn set_profile(
        &self,
        user: UserId,
        nickname: &str,
        avatar: Option<BlobHash>,
    ) -> StoreResult<()> {
        self.write(|tx| {
            let updated = tx
                .prepare_cached("UPDATE users SET nickname = ?2, avatar = ?3 WHERE id = ?1")?
                .execute((user.0, nickname, avatar.map(|a| a.0)))?;
            if updated == 0 {
                return Err(StoreError::NotFound("user"));
            }
            Ok(())
        })
    }

    fn add_device(&self, user: UserId, device: &NewDevice) -> StoreResult<()> {
        int("added_at", device.added_at)?;
        self.write(|tx| {
            if !exists(tx, "SELECT 1 FROM users WHERE id = ?1", [user.0])? {
                return Err(StoreError::NotFound("user"));
            }
            check_new_device(tx, device)?;
            insert_device(tx, user, device)
        })
    }

    fn device(&self, device: DeviceId) -> StoreResult<Option<DeviceRecord>> {
        self.read(|tx| load_device(tx, device))
    }

    fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                "SELECT ",
                device_columns!(),
                " FROM devices WHERE user = ?1 ORDER BY added_at, id"
            ))?;
            collect(stmt.query([user.0])?, records::device)
        })
    }

    fn put_device_certs(&self, user: UserId, certs: &[DeviceCert], max: usize) -> StoreResult<()> {
        self.write(|tx| {
            if !exists(tx, "SELECT 1 FROM users WHERE id = ?1", [user.0])? {
                return Err(StoreError::NotFound("user"));
            }
            for c in certs {
                let (by_user, by_device) = certifier_columns(c.by);
                tx.prepare_cached(
                    "INSERT INTO device_certs
                         (user, device, device_key, by_user, by_device, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (device, by_user, by_device) DO NOTHING",
                )?
                .execute((
                    user.0,
                    c.device.0,
                    c.device_key.0,
                    by_user,
                    by_device,
                    c.signature.0,
                ))?;
            }
            let held: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM device_certs c JOIN devices d ON d.id = c.device
                     WHERE c.user = ?1 AND d.revoked_at IS NULL",
                )?
                .query_row([user.0], |row| row.get(0))?;
            // Over the cap: the transaction is rolled back, nothing kept.
            if usize::try_from(held).unwrap_or(usize::MAX) > max {
                return Err(StoreError::TooManyCerts);
            }
            Ok(())
        })
    }

    fn device_certs(&self, user: UserId) -> StoreResult<Vec<DeviceCert>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT device, device_key, by_user, by_device, signature
                 FROM device_certs WHERE user = ?1 ORDER BY rowid",
            )?;
            collect(stmt.query([user.0])?, |row| {
                Ok(cert_from_columns(
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
        })
    }

    fn put_key_package(
        &self,
        user: UserId,
        device: DeviceId,
        package: &[u8],
        at: u64,
    ) -> StoreResult<()> {
        let at = int("at", at)?;
        self.write(|tx| {
            acting_device_is_live(tx, user, device)?;
            tx.prepare_cached(
                "INSERT INTO key_packages (device, user, package, published_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (device) DO UPDATE
                 SET package = excluded.package, published_at = excluded.published_at",
            )?
            .execute((device.0, user.0, package, at))?;
            Ok(())
        })
    }

    fn key_packages(&self, user: UserId) -> StoreResult<Vec<(DeviceId, Vec<u8>)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT d.id, k.package FROM key_packages k JOIN devices d ON d.id = k.device
                 WHERE d.user = ?1 AND d.revoked_at IS NULL
                 ORDER BY d.added_at, d.id",
            )?;
            collect(stmt.query([user.0])?, |row| {
                Ok((DeviceId(row.get(0)?), row.get(1)?))
            })
        })
    }

    fn revoke_device(
        &self,
        user: UserId,
        device: DeviceId,
        by: DeviceId,
        at: u64,
    ) -> StoreResult<()> {
        let at = int("at", at)?;
        self.write(|tx| {
            acting_device_is_live(tx, user, by)?;
            let updated = tx
                .prepare_cached(
                    "UPDATE devices SET revoked_at = coalesce(revoked_at, ?3)
                     WHERE id = ?1 AND user = ?2",
                )?
                .execute((device.0, user.0, at))?;
            if updated == 0 {
                return Err(StoreError::NotFound("device"));
            }
            Ok(())
        })
    }

    fn touch_device(&self, device: DeviceId, at: u64, client: Option<&str>) -> StoreResult<()> {
        let at = int("at", at)?;
        self.write(|tx| {
            let updated = tx
                .prepare_cached(
                    "UPDATE devices SET client = coalesce(?3, client), \
                         last_seen = max(coalesce(last_seen, ?2), ?2) WHERE id = ?1",
                )?
                .execute((device.0, at, client))?;
            if updated == 0 {
                return Err(StoreError::NotFound("device"));
            }
            Ok(())
        })
    }

    fn put_link_code(
        &self,
        code_hash: [u8; 32],
        user: UserId,
        device: DeviceId,
        expires_at: u64,
    ) -> StoreResult<()> {
        let expires_at = int("expires_at", expires_at)?;
        self.write(|tx| {
            let revoked: Option<Option<i64>> = tx
                .prepare_cached("SELECT revoked_at FROM devices WHERE id = ?1 AND user = ?2")?
                .query_row((device.0, user.0), |row| row.get(0))
                .optional()?;
            match revoked {
                None => return Err(StoreError::NotFound("device")),
                Some(Some(_)) => return Err(StoreError::Invalid("the device is revoked".into())),
                Some(None) => {}
            }
            if exists(
                tx,
                "SELECT 1 FROM link_codes WHERE code_hash = ?1",
                [code_hash],
            )? {
                return Err(StoreError::Conflict("link code already issued".into()));
            }
            // One code at a time: the new one replaces the unclaimed ones.
            tx.prepare_cached("DELETE FROM link_codes WHERE user = ?1 AND used_at IS NULL")?
                .execute([user.0])?;
            tx.prepare_cached(
                "INSERT INTO link_codes (code_hash, user, device, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute((code_hash, user.0, device.0, expires_at))?;
            Ok(())
        })
    }

    fn purge_finished(&self, links_before: u64, invites_before: u64) -> StoreResult<usize> {
        let links_before = int("links_before", links_before)?;
        let invites_before = int("invites_before", invites_before)?;
        self.write(|tx| {
            // Requests first: each references its code.
            let mut n = tx
                .prepare_cached("DELETE FROM link_requests WHERE expires_at < ?1")?
                .execute([links_before])?;
            n += tx
                .prepare_cached(
                    "DELETE FROM link_codes WHERE expires_at < ?1
                     AND code_hash NOT IN (SELECT code_hash FROM link_requests)",
                )?
                .execute([links_before])?;
            n += tx
                .prepare_cached("DELETE FROM invites WHERE state <> 'pending' AND closed_at < ?1")?
                .execute([invites_before])?;
            n += tx
                .prepare_cached("DELETE FROM invites WHERE state = 'pending' AND expires_at < ?1")?
                .execute([invites_before])?;
            Ok(n)
        })
    }

    fn claim_link_code(
        &self,
        code_hash: [u8; 32],
        link: LinkId,
        device: &NewDevice,
        now: u64,
    ) -> StoreResult<Option<LinkRecord>> {
        let at = int("now", now)?;
        let requested_at = int("added_at", device.added_at)?;
        self.write(|tx| {
            if let Some(record) = load_link(tx, "code_hash = ?1", &code_hash)? {
                if record.device.id != device.id || record.device.key != device.key {
                    return Err(StoreError::LinkClaimed);
                }
                return Ok(Some(record));
            }
            let mut stmt = tx.prepare_cached(
                "SELECT l.user, l.expires_at, l.used_at IS NULL AND d.revoked_at IS NULL
                 FROM link_codes l JOIN devices d ON d.id = l.device
                 WHERE l.code_hash = ?1",
            )?;
            let found: Option<([u8; 16], u64, bool)> = first(stmt.query([code_hash])?, |row| {
                Ok((row.get(0)?, unsigned(row, 1, "expires_at")?, row.get(2)?))
            })?;
            let Some((user, expires_at, usable)) = found else {
                return Ok(None);
            };
            if !usable || passed(expires_at, now) {
                return Ok(None);
            }
            check_new_device(tx, device)?;
            if exists(tx, "SELECT 1 FROM link_requests WHERE id = ?1", [link.0])? {
                return Err(StoreError::Conflict(format!("link {link} exists")));
            }
            tx.prepare_cached(
                "INSERT INTO link_requests
                 (id, code_hash, user, device, device_key, client, requested_at, expires_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)",
            )?
            .execute((
                link.0,
                code_hash,
                user,
                device.id.0,
                device.key.0,
                &device.client,
                requested_at,
                int("expires_at", expires_at)?,
            ))?;
            tx.prepare_cached("UPDATE link_codes SET used_at = ?2 WHERE code_hash = ?1")?
                .execute((code_hash, at))?;
            Ok(Some(LinkRecord {
                id: link,
                user: UserId(user),
                device: device.clone(),
                expires_at,
                state: LinkState::Pending,
            }))
        })
    }

    fn link(&self, link: LinkId) -> StoreResult<Option<LinkRecord>> {
        self.read(|tx| load_link(tx, "id = ?1", &link.0))
    }

    fn pending_links(&self, user: UserId, now: u64) -> StoreResult<Vec<LinkRecord>> {
        let now = int("now", now)?;
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "{LINK_SELECT} WHERE user = ?1 AND state = 0 AND expires_at > ?2
                 ORDER BY requested_at, id"
            ))?;
            collect(stmt.query((user.0, now))?, link_row)
        })
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
        self.write(|tx| {
            acting_device_is_live(tx, user, by)?;
            let mut record = load_link(tx, "id = ?1", &link.0)?
                .filter(|l| l.user == user)
                .ok_or(StoreError::NotFound("link"))?;
            if record.state != LinkState::Pending {
                return Err(StoreError::LinkClosed);
            }
            if passed(record.expires_at, now) {
                return Err(StoreError::LinkExpired);
            }
            let state = if accept {
                let new = NewDevice {
                    added_at: now,
                    ..record.device.clone()
                };
                check_new_device(tx, &new)?;
                insert_device(tx, user, &new)?;
                LinkState::Accepted
            } else {
                LinkState::Rejected
            };
            let code = if accept { 1 } else { 2 };
            tx.prepare_cached("UPDATE link_requests SET state = ?2 WHERE id = ?1")?
                .execute((link.0, code))?;
            record.state = state;
            Ok(record)
        })
    }

    fn create_family(
        &self,
        family: FamilyId,
        host: UserId,
        at: u64,
        max_families: usize,
    ) -> StoreResult<()> {
        let at = int("at", at)?;
        let doc = DocId::from(family);
        self.write(|tx| {
            if !exists(tx, "SELECT 1 FROM users WHERE id = ?1", [host.0])? {
                return Err(StoreError::NotFound("user"));
            }
            if exists(tx, "SELECT 1 FROM families WHERE id = ?1", [family.0])?
                || exists(tx, "SELECT 1 FROM docs WHERE doc = ?1", [doc.0])?
                || exists(
                    tx,
                    "SELECT 1 FROM docs WHERE doc = ?1",
                    [family.key_log().0],
                )?
                || exists(
                    tx,
                    "SELECT 1 FROM volumes WHERE doc = ?1 OR doc = ?2",
                    [doc.0, family.key_log().0],
                )?
            {
                return Err(StoreError::Conflict(format!("family {family} exists")));
            }
            check_family_room(tx, host, max_families)?;
            tx.prepare_cached("INSERT INTO families (id, host, created_at) VALUES (?1, ?2, ?3)")?
                .execute((family.0, host.0, at))?;
            tx.prepare_cached("INSERT INTO docs (doc, family) VALUES (?1, ?2)")?
                .execute((doc.0, family.0))?;
            tx.prepare_cached(
                "INSERT INTO members (family, user, role, joined_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute((family.0, host.0, role_str(Role::Host), at))?;
            Ok(())
        })
    }

    fn family(&self, family: FamilyId) -> StoreResult<Option<FamilyRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                "SELECT ",
                family_columns!(),
                " FROM families f WHERE f.id = ?1 AND f.deleted = 0"
            ))?;
            first(stmt.query([family.0])?, records::family)
        })
    }

    fn families_of(&self, user: UserId) -> StoreResult<Vec<FamilyRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                "SELECT ",
                family_columns!(),
                " FROM members m JOIN families f ON f.id = m.family
                  WHERE m.user = ?1 AND f.deleted = 0
                  ORDER BY m.joined_at, f.id"
            ))?;
            collect(stmt.query([user.0])?, records::family)
        })
    }

    fn members(&self, family: FamilyId) -> StoreResult<Vec<MemberInfo>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                member_select!(),
                " WHERE m.family = ?1 ORDER BY m.joined_at, m.user"
            ))?;
            collect(stmt.query([family.0])?, records::member)
        })
    }

    fn membership(&self, family: FamilyId, user: UserId) -> StoreResult<Option<MemberInfo>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                member_select!(),
                " WHERE m.family = ?1 AND m.user = ?2"
            ))?;
            first(stmt.query((family.0, user.0))?, records::member)
        })
    }

    fn remove_member(&self, family: FamilyId, user: UserId) -> StoreResult<()> {
        self.write(|tx| {
            let role: Option<String> = tx
                .prepare_cached("SELECT role FROM members WHERE family = ?1 AND user = ?2")?
                .query_row((family.0, user.0), |row| row.get(0))
                .optional()?;
            match role.as_deref() {
                None => return Err(StoreError::NotFound("member")),
                Some(role) if role == role_str(Role::Host) => {
                    return Err(StoreError::Conflict(
                        "the host cannot leave; delete the family instead".into(),
                    ));
                }
                Some(_) => {}
            }
            tx.prepare_cached("DELETE FROM members WHERE family = ?1 AND user = ?2")?
                .execute((family.0, user.0))?;
            Ok(())
        })
    }

    fn delete_family(&self, family: FamilyId, at: u64) -> StoreResult<()> {
        let at = int("at", at)?;
        self.write(|tx| {
            if !live_family(tx, family)? {
                return Err(StoreError::NotFound("family"));
            }
            tx.prepare_cached(
                "INSERT INTO blob_releases (blob, family, user, size, released_at)
                 SELECT blob, family, NULL, size, ?2 FROM blob_grants WHERE family = ?1
                 UNION ALL
                 SELECT blob, family, NULL, size, ?2 FROM snapshot_refs WHERE family = ?1",
            )?
            .execute((family.0, at))?;
            for sql in [
                "DELETE FROM members WHERE family = ?1",
                "DELETE FROM invites WHERE family = ?1",
                "DELETE FROM blob_grants WHERE family = ?1",
                "DELETE FROM snapshot_refs WHERE family = ?1",
                "UPDATE families SET deleted = 1 WHERE id = ?1",
            ] {
                tx.prepare_cached(sql)?.execute([family.0])?;
            }
            Ok(())
        })
    }

    fn open_volume(&self, family: FamilyId, year: u16, max_volumes: usize) -> StoreResult<bool> {
        let doc = family.volume(year);
        self.write(|tx| {
            if !live_family(tx, family)? {
                return Err(StoreError::NotFound("family"));
            }
            let mut stmt = tx.prepare_cached("SELECT family, year FROM volumes WHERE doc = ?1")?;
            let open = first(stmt.query([doc.0])?, |row| {
                Ok((row.get::<_, [u8; 16]>(0)?, row.get::<_, i64>(1)?))
            })?;
            match open {
                Some((f, y)) if f == family.0 && y == i64::from(year) => return Ok(false),
                Some(_) => return Err(StoreError::Conflict(format!("volume {doc} is taken"))),
                None => {}
            }
            // An id made before new documents' ids were checked for a volume's shape
            // (one in 2^32 by chance): the volume cannot be opened.
            let key_log_of = doc.key_log_family();
            if exists(tx, "SELECT 1 FROM docs WHERE doc = ?1", [doc.0])?
                || exists(tx, "SELECT 1 FROM families WHERE id = ?1", [doc.0])?
                || exists(tx, "SELECT 1 FROM docs WHERE doc = ?1", [key_log_of.0])?
                || exists(tx, "SELECT 1 FROM families WHERE id = ?1", [key_log_of.0])?
            {
                return Err(StoreError::Conflict(format!("volume {doc} is taken")));
            }
            let opened: i64 = tx
                .prepare_cached("SELECT count(*) FROM volumes WHERE family = ?1")?
                .query_row([family.0], |row| row.get(0))?;
            if usize::try_from(opened).unwrap_or(usize::MAX) >= max_volumes {
                return Err(StoreError::TooManyVolumes);
            }
            tx.prepare_cached("INSERT INTO volumes (doc, family, year) VALUES (?1, ?2, ?3)")?
                .execute((doc.0, family.0, i64::from(year)))?;
            Ok(true)
        })
    }

    fn volumes_of(&self, family: FamilyId) -> StoreResult<Vec<(u16, DocId)>> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached("SELECT year, doc FROM volumes WHERE family = ?1 ORDER BY year")?;
            let mut rows = stmt.query([family.0])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let year: i64 = row.get(0)?;
                let year = u16::try_from(year)
                    .map_err(|_| StoreError::Corrupt(format!("volume year {year}")))?;
                out.push((year, DocId(row.get(1)?)));
            }
            Ok(out)
        })
    }

    fn create_invite_within(&self, invite: &NewInvite, limits: InviteLimits) -> StoreResult<()> {
        let created_at = int("created_at", invite.created_at)?;
        let expires_at = int("expires_at", invite.expires_at)?;
        if expires_at <= created_at {
            return Err(StoreError::Invalid(
                "an invite must expire after it is created".into(),
            ));
        }
        self.write(|tx| {
            if !live_family(tx, invite.family)? {
                return Err(StoreError::NotFound("family"));
            }
            if !exists(tx, "SELECT 1 FROM users WHERE id = ?1", [invite.invitee.0])? {
                return Err(StoreError::NotFound("user"));
            }
            if !is_member(tx, invite.family, invite.inviter)? {
                return Err(StoreError::NotFound("member"));
            }
            if exists(tx, "SELECT 1 FROM invites WHERE id = ?1", [invite.id.0])? {
                return Err(StoreError::Conflict(format!("invite {} exists", invite.id)));
            }
            if is_member(tx, invite.family, invite.invitee)? {
                return Err(StoreError::AlreadyMember);
            }
            if exists(
                tx,
                "SELECT 1 FROM invites
                 WHERE family = ?1 AND invitee = ?2 AND state = 'pending' AND expires_at > ?3",
                (invite.family.0, invite.invitee.0, created_at),
            )? {
                return Err(StoreError::AlreadyInvited);
            }
            let count = |sql: &str, id: [u8; 16]| -> StoreResult<usize> {
                let n: i64 = tx
                    .prepare_cached(sql)?
                    .query_row((id, created_at), |row| row.get(0))?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            };
            if count(
                "SELECT count(*) FROM invites
                 WHERE invitee = ?1 AND state = 'pending' AND expires_at > ?2",
                invite.invitee.0,
            )? >= limits.per_invitee
                || count(
                    "SELECT count(*) FROM invites
                     WHERE family = ?1 AND state = 'pending' AND expires_at > ?2",
                    invite.family.0,
                )? >= limits.per_family
                || recent_pair_invites(tx, invite)? >= limits.per_pair
            {
                return Err(StoreError::TooManyInvites);
            }
            tx.prepare_cached(
                "INSERT INTO invites (id, family, inviter, invitee, card,
                                      created_at, expires_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute((
                invite.id.0,
                invite.family.0,
                invite.inviter.0,
                invite.invitee.0,
                &invite.card,
                created_at,
                expires_at,
                StoredInviteState::Pending.as_str(),
            ))?;
            Ok(())
        })
    }

    fn invite(&self, invite: InviteId, now: u64) -> StoreResult<Option<InviteInfo>> {
        self.read(|tx| Ok(load_invite(tx, invite, now)?.map(|(info, _)| info)))
    }

    fn invites_for(&self, user: UserId, now: u64) -> StoreResult<Vec<InviteInfo>> {
        let at = int("now", now)?;
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                invite_select!(),
                " WHERE i.invitee = ?1 AND i.state = 'pending' AND i.expires_at > ?2
                  ORDER BY i.created_at, i.id"
            ))?;
            collect(stmt.query((user.0, at))?, |row| {
                Ok(records::invite(row, now)?.0)
            })
        })
    }

    fn invites_of_family(&self, family: FamilyId, now: u64) -> StoreResult<Vec<InviteInfo>> {
        let at = int("now", now)?;
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                invite_select!(),
                " WHERE i.family = ?1 AND i.state = 'pending' AND i.expires_at > ?2
                  ORDER BY i.created_at, i.id"
            ))?;
            collect(stmt.query((family.0, at))?, |row| {
                Ok(records::invite(row, now)?.0)
            })
        })
    }

    fn invites_seen_by(&self, user: UserId, now: u64) -> StoreResult<Vec<InviteInfo>> {
        let at = int("now", now)?;
        self.cache.invites(user, now, || {
            self.read(|tx| invites_seen_by(tx, user, now, at))
        })
    }

    fn answer_invite(
        &self,
        invite: InviteId,
        accept: bool,
        now: u64,
        max_families: usize,
    ) -> StoreResult<InviteInfo> {
        let at = int("now", now)?;
        let state = if accept {
            StoredInviteState::Accepted
        } else {
            StoredInviteState::Rejected
        };
        self.write(|tx| {
            close_invite(tx, invite, now, state, |info| {
                if !accept {
                    return Ok(());
                }
                join_by_invite(tx, info, at, max_families)
            })
        })
    }

    fn withdraw_invite(&self, invite: InviteId, now: u64) -> StoreResult<InviteInfo> {
        self.write(|tx| close_invite(tx, invite, now, StoredInviteState::Withdrawn, |_| Ok(())))
    }

    fn doc_owner(&self, doc: DocId) -> StoreResult<Option<DocOwner>> {
        self.read(|tx| {
            // A personal document, or a family's that is not deleted.
            let mut stmt = tx.prepare_cached(
                "SELECT d.family, d.user
                 FROM docs d LEFT JOIN families f ON f.id = d.family
                 WHERE d.doc = ?1 AND (d.user IS NOT NULL OR f.deleted = 0)",
            )?;
            let owner = first(stmt.query([doc.0])?, |row| {
                let family: Option<[u8; 16]> = row.get(0)?;
                let user: Option<[u8; 16]> = row.get(1)?;
                match (family, user) {
                    (Some(family), None) => Ok(DocOwner::Family(FamilyId(family))),
                    (None, Some(user)) => Ok(DocOwner::Personal(UserId(user))),
                    _ => Err(StoreError::Corrupt(format!(
                        "document {doc} has no single owner"
                    ))),
                }
            })?;
            if owner.is_some() {
                return Ok(owner);
            }
            // Or a volume of a family that is not deleted.
            let mut stmt = tx.prepare_cached(
                "SELECT v.family FROM volumes v JOIN families f ON f.id = v.family
                 WHERE v.doc = ?1 AND f.deleted = 0",
            )?;
            if let Some(family) = first(stmt.query([doc.0])?, |row| {
                Ok(FamilyId(row.get::<_, [u8; 16]>(0)?))
            })? {
                return Ok(Some(DocOwner::Family(family)));
            }
            // Or the key log of a personal document (its user's devices' key group),
            // or of a family that is not deleted.
            let family = doc.key_log_family();
            let mut stmt =
                tx.prepare_cached("SELECT user FROM docs WHERE doc = ?1 AND user IS NOT NULL")?;
            if let Some(user) = first(stmt.query([family.0])?, |row| {
                Ok(UserId(row.get::<_, [u8; 16]>(0)?))
            })? {
                return Ok(Some(DocOwner::PersonalKeys(user)));
            }
            Ok(exists(
                tx,
                "SELECT 1 FROM families WHERE id = ?1 AND deleted = 0",
                [family.0],
            )?
            .then_some(DocOwner::Family(family)))
        })
    }

    fn grant_blob(
        &self,
        family: FamilyId,
        blob: BlobHash,
        size: u64,
        by: UserId,
    ) -> StoreResult<()> {
        let size = int("size", size)?;
        self.write(|tx| {
            if !live_family(tx, family)? {
                return Err(StoreError::NotFound("family"));
            }
            insert_family_grant(tx, family, blob, size, by)
        })
    }

    fn grant_upload(&self, upload: &UploadGrant) -> StoreResult<UploadVerdict> {
        let size = int("size", upload.size)?;
        // The write lock (BEGIN IMMEDIATE) holds off a removal, a revocation and every
        // other grant until this one is decided: the checks and the grant are one step.
        self.write(|tx| {
            match acting_device_is_live(tx, upload.by, upload.device) {
                Err(StoreError::DeviceRevoked) => return Ok(UploadVerdict::DeviceRevoked),
                other => other?,
            }
            match upload.to {
                BlobGrantee::Family(family) => {
                    // A deleted family has no members left.
                    if !is_member(tx, family, upload.by)? {
                        return Ok(UploadVerdict::NotMember);
                    }
                }
                BlobGrantee::User(user) if user != upload.by => {
                    return Ok(UploadVerdict::NotMember);
                }
                BlobGrantee::User(_) => {}
            }
            if !holds_blob(tx, upload.to, upload.blob)?
                && held_bytes(tx, upload.to)?.saturating_add(upload.size) > upload.quota
            {
                return Ok(UploadVerdict::QuotaExceeded);
            }
            match upload.to {
                BlobGrantee::Family(family) => {
                    insert_family_grant(tx, family, upload.blob, size, upload.by)?
                }
                BlobGrantee::User(user) => {
                    tx.prepare_cached(
                        "INSERT INTO user_blob_grants (user, blob, size) VALUES (?1, ?2, ?3)
                         ON CONFLICT (user, blob) DO NOTHING",
                    )?
                    .execute((user.0, upload.blob.0, size))?;
                }
            }
            Ok(UploadVerdict::Granted)
        })
    }

    fn grant_blob_to_user(&self, user: UserId, blob: BlobHash, size: u64) -> StoreResult<()> {
        let size = int("size", size)?;
        self.write(|tx| {
            if !exists(tx, "SELECT 1 FROM users WHERE id = ?1", [user.0])? {
                return Err(StoreError::NotFound("user"));
            }
            tx.prepare_cached(
                "INSERT INTO user_blob_grants (user, blob, size) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user, blob) DO NOTHING",
            )?
            .execute((user.0, blob.0, size))?;
            Ok(())
        })
    }

    fn blob_granted(&self, user: UserId, blob: BlobHash) -> StoreResult<bool> {
        self.read(|tx| blob_granted(tx, user, blob))
    }

    fn device_and_blob_grant(
        &self,
        device: DeviceId,
        blob: BlobHash,
    ) -> StoreResult<Option<(DeviceRecord, bool)>> {
        self.cache.device_and_grant(device, blob, || {
            self.read(|tx| {
                let Some(record) = load_device(tx, device)? else {
                    return Ok(None);
                };
                let granted = blob_granted(tx, record.user, blob)?;
                Ok(Some((record, granted)))
            })
        })
    }

    fn has_blob_grant(&self, to: BlobGrantee, blob: BlobHash) -> StoreResult<bool> {
        self.read(|tx| holds_blob(tx, to, blob))
    }

    fn family_blob_bytes(&self, family: FamilyId) -> StoreResult<u64> {
        self.read(|tx| held_bytes(tx, BlobGrantee::Family(family)))
    }

    fn user_blob_bytes(&self, user: UserId) -> StoreResult<u64> {
        self.read(|tx| held_bytes(tx, BlobGrantee::User(user)))
    }

    fn add_snapshot_ref(
        &self,
        doc: DocId,
        to: BlobGrantee,
        blob: BlobHash,
        size: u64,
    ) -> StoreResult<()> {
        let size = int("size", size)?;
        self.write(|tx| {
            let known = match to {
                BlobGrantee::Family(f) => live_family(tx, f)?,
                BlobGrantee::User(u) => exists(tx, "SELECT 1 FROM users WHERE id = ?1", [u.0])?,
            };
            if !known {
                return Err(StoreError::NotFound(match to {
                    BlobGrantee::Family(_) => "family",
                    BlobGrantee::User(_) => "user",
                }));
            }
            let (family, user) = grantee_columns(to);
            tx.prepare_cached(
                "INSERT INTO snapshot_refs (doc, blob, family, user, size)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (doc, blob) DO NOTHING",
            )?
            .execute((doc.0, blob.0, family, user, size))?;
            Ok(())
        })
    }

    fn settle_snapshot(
        &self,
        doc: DocId,
        to: BlobGrantee,
        blob: BlobHash,
        by: UserId,
        at: u64,
    ) -> StoreResult<()> {
        let at = int("at", at)?;
        self.write(|tx| {
            if !exists(
                tx,
                "SELECT 1 FROM snapshot_refs WHERE doc = ?1 AND blob = ?2",
                (doc.0, blob.0),
            )? {
                return Err(StoreError::NotFound("blob"));
            }
            let mut stmt = tx.prepare_cached(
                "SELECT blob, family, user, size FROM snapshot_refs WHERE doc = ?1 AND blob <> ?2",
            )?;
            let others = collect(stmt.query((doc.0, blob.0))?, |row| {
                Ok((
                    row.get::<_, [u8; 32]>(0)?,
                    row.get::<_, Option<[u8; 16]>>(1)?,
                    row.get::<_, Option<[u8; 16]>>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?;
            for (old, family, user, size) in &others {
                release(tx, old, *family, *user, *size, at)?;
            }
            tx.prepare_cached("DELETE FROM snapshot_refs WHERE doc = ?1 AND blob <> ?2")?
                .execute((doc.0, blob.0))?;
            match to {
                BlobGrantee::Family(f) => tx
                    .prepare_cached(
                        "DELETE FROM blob_grants WHERE family = ?1 AND blob = ?2 AND uploaded_by = ?3",
                    )?
                    .execute((f.0, blob.0, by.0))?,
                BlobGrantee::User(u) if u == by => tx
                    .prepare_cached("DELETE FROM user_blob_grants WHERE user = ?1 AND blob = ?2")?
                    .execute((u.0, blob.0))?,
                BlobGrantee::User(_) => 0,
            };
            Ok(())
        })
    }

    fn adopt_snapshot_upload(
        &self,
        doc: DocId,
        to: BlobGrantee,
        blob: BlobHash,
        by: UserId,
    ) -> StoreResult<()> {
        self.write(|tx| {
            if !exists(
                tx,
                "SELECT 1 FROM snapshot_refs WHERE doc = ?1 AND blob = ?2",
                (doc.0, blob.0),
            )? {
                return Err(StoreError::NotFound("blob"));
            }
            match to {
                BlobGrantee::Family(f) => tx
                    .prepare_cached(
                        "DELETE FROM blob_grants WHERE family = ?1 AND blob = ?2 AND uploaded_by = ?3",
                    )?
                    .execute((f.0, blob.0, by.0))?,
                BlobGrantee::User(u) if u == by => tx
                    .prepare_cached("DELETE FROM user_blob_grants WHERE user = ?1 AND blob = ?2")?
                    .execute((u.0, blob.0))?,
                BlobGrantee::User(_) => 0,
            };
            Ok(())
        })
    }

    fn drop_snapshot_ref(&self, doc: DocId, blob: BlobHash, at: u64) -> StoreResult<bool> {
        let at = int("at", at)?;
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT family, user, size FROM snapshot_refs WHERE doc = ?1 AND blob = ?2",
            )?;
            let found = first(stmt.query((doc.0, blob.0))?, |row| {
                Ok((
                    row.get::<_, Option<[u8; 16]>>(0)?,
                    row.get::<_, Option<[u8; 16]>>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?;
            let Some((family, user, size)) = found else {
                return Ok(false);
            };
            release(tx, &blob.0, family, user, size, at)?;
            tx.prepare_cached("DELETE FROM snapshot_refs WHERE doc = ?1 AND blob = ?2")?
                .execute((doc.0, blob.0))?;
            Ok(true)
        })
    }

    fn blob_referenced(&self, blob: BlobHash) -> StoreResult<bool> {
        self.read(|tx| {
            exists(
                tx,
                "SELECT 1 FROM blob_grants WHERE blob = ?1
                 UNION ALL SELECT 1 FROM user_blob_grants WHERE blob = ?1
                 UNION ALL SELECT 1 FROM snapshot_refs WHERE blob = ?1
                 UNION ALL SELECT 1 FROM blob_releases WHERE blob = ?1",
                [blob.0],
            )
        })
    }

    fn expire_blob_releases(&self, before: u64) -> StoreResult<usize> {
        let before = int("before", before)?;
        self.write(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM blob_releases WHERE released_at < ?1")?
                .execute([before])?)
        })
    }
}

/// The device acting for `user` (revoking, answering a link) is one of theirs and not
/// revoked: `NotFound("device")` or `DeviceRevoked` otherwise.
fn acting_device_is_live(tx: &Connection, user: UserId, by: DeviceId) -> StoreResult<()> {
    let revoked_at: Option<Option<i64>> = tx
        .prepare_cached("SELECT revoked_at FROM devices WHERE id = ?1 AND user = ?2")?
        .query_row((by.0, user.0), |row| row.get(0))
        .optional()?;
    match revoked_at {
        None => Err(StoreError::NotFound("device")),
        Some(Some(_)) => Err(StoreError::DeviceRevoked),
        Some(None) => Ok(()),
    }
}

/// Records an upload grant of `blob` to `family`.
fn insert_family_grant(
    tx: &Connection,
    family: FamilyId,
    blob: BlobHash,
    size: i64,
    by: UserId,
) -> StoreResult<()> {
    // A second member uploading the same bytes makes it no one's alone.
    tx.prepare_cached(
        "INSERT INTO blob_grants (family, blob, size, uploaded_by) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (family, blob) DO UPDATE SET uploaded_by =
             CASE WHEN uploaded_by = excluded.uploaded_by THEN uploaded_by ELSE NULL END",
    )?
    .execute((family.0, blob.0, size, by.0))?;
    Ok(())
}

/// Whether `blob` already counts against `to`'s quota.
fn holds_blob(tx: &Connection, to: BlobGrantee, blob: BlobHash) -> StoreResult<bool> {
    match to {
        BlobGrantee::Family(family) => exists(
            tx,
            "SELECT 1 FROM blob_grants WHERE family = ?1 AND blob = ?2
             UNION ALL SELECT 1 FROM snapshot_refs WHERE family = ?1 AND blob = ?2
             UNION ALL SELECT 1 FROM blob_releases WHERE family = ?1 AND blob = ?2",
            (family.0, blob.0),
        ),
        BlobGrantee::User(user) => exists(
            tx,
            "SELECT 1 FROM user_blob_grants WHERE user = ?1 AND blob = ?2
             UNION ALL SELECT 1 FROM snapshot_refs WHERE user = ?1 AND blob = ?2
             UNION ALL SELECT 1 FROM blob_releases WHERE user = ?1 AND blob = ?2",
            (user.0, blob.0),
        ),
    }
}

/// Bytes counted against `to`'s quota: each blob once, whether granted, a snapshot or
/// released in its grace.
fn held_bytes(tx: &Connection, to: BlobGrantee) -> StoreResult<u64> {
    let (sql, id) = match to {
        BlobGrantee::Family(family) => (
            "SELECT coalesce(sum(size), 0) FROM (
                 SELECT blob, size FROM blob_grants WHERE family = ?1
                 UNION SELECT blob, size FROM snapshot_refs WHERE family = ?1
                 UNION SELECT blob, size FROM blob_releases WHERE family = ?1)",
            family.0,
        ),
        BlobGrantee::User(user) => (
            "SELECT coalesce(sum(size), 0) FROM (
                 SELECT blob, size FROM user_blob_grants WHERE user = ?1
                 UNION SELECT blob, size FROM snapshot_refs WHERE user = ?1
                 UNION SELECT blob, size FROM blob_releases WHERE user = ?1)",
            user.0,
        ),
    };
    let total: i64 = tx.prepare_cached(sql)?.query_row([id], |row| row.get(0))?;
    to_unsigned(total, "blob bytes")
}

/// Invites from `invite`'s family to its invitee made in the pair window before it.
fn recent_pair_invites(tx: &Connection, invite: &NewInvite) -> StoreResult<usize> {
    let since = int(
        "since",
        invite.created_at.saturating_sub(INVITE_PAIR_WINDOW_MS),
    )?;
    let n: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM invites
             WHERE family = ?1 AND invitee = ?2 AND created_at > ?3",
        )?
        .query_row((invite.family.0, invite.invitee.0, since), |row| row.get(0))?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}
