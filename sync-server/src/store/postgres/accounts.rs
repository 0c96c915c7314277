//! [`AccountStore`] for [`PgStore`]: the SQLite store's statements in PostgreSQL's
//! dialect. Each method checks what it can answer precisely (an email taken, a member
//! invited again) before writing, inside a `SERIALIZABLE` transaction; the schema's
//! constraints are the backstop.

use deadpool_postgres::GenericClient;
use doran_protocol::{
    BlobHash, DeviceId, DocId, FamilyId, InviteId, LinkId, PublicKey, UserId,
    model::{DeviceCert, InviteInfo, MemberInfo, Role},
};
use tokio_postgres::Row;

use super::{
    PgStore, bytes, bytes_opt, exec, exists, row, rows, to_unsigned, unsigned, unsigned_opt,
};
use crate::store::{
    AccountStore, BlobGrantee, DeviceRecord, DocOwner, FamilyRecord, INVITE_PAIR_WINDOW_MS,
    InviteLimits, LinkRecord, LinkState, NewDevice, NewInvite, NewUser, StoreError, StoreResult,
    UploadGrant, UploadVerdict, UserRecord,
    rules::{StoredInviteState, cert_from_columns, certifier_columns, int, passed},
};

/// Whether the user `$user` (an SQL expression) may read the blob `$2`: granted to (or
/// a snapshot of) a family of theirs; to them; or to someone who shares a family with
/// them (members only has live families). The SQLite store's query.
#[rustfmt::skip]
macro_rules! granted_to {
    ($user:literal) => {
        concat!(
            "SELECT 1 FROM blob_grants g JOIN members m ON m.family = g.family
             WHERE g.blob = $2 AND m.user_id = ", $user, "
             UNION ALL
             SELECT 1 FROM snapshot_refs r JOIN members m ON m.family = r.family
             WHERE r.blob = $2 AND m.user_id = ", $user, "
             UNION ALL
             SELECT 1 FROM user_blob_grants u WHERE u.blob = $2 AND u.user_id = ", $user, "
             UNION ALL
             SELECT 1 FROM snapshot_refs r WHERE r.blob = $2 AND r.user_id = ", $user, "
             UNION ALL
             SELECT 1 FROM user_blob_grants u
             JOIN members o ON o.user_id = u.user_id
             JOIN members m ON m.family = o.family
             WHERE u.blob = $2 AND m.user_id = ", $user, "
             UNION ALL
             SELECT 1 FROM snapshot_refs r
             JOIN members o ON o.user_id = r.user_id
             JOIN members m ON m.family = o.family
             WHERE r.blob = $2 AND m.user_id = ", $user
        )
    };
}

const USER_COLUMNS: &str = "id, email, nickname, avatar, user_key, personal_doc, created_at";
/// A device's columns, in the order [`device`] reads them.
macro_rules! device_columns {
    () => {
        "id, user_id, key, client, added_at, last_seen, revoked_at"
    };
}

const DEVICE_COLUMNS: &str = device_columns!();
const FAMILY_COLUMNS: &str = "f.id, f.host, f.created_at";
const MEMBER_SELECT: &str = "SELECT m.user_id, m.role, m.joined_at, u.personal_doc
     FROM members m JOIN users u ON u.id = m.user_id";
/// The columns of an invite, which [`invite`] reads.
macro_rules! invite_columns {
    () => {
        "i.id, i.family, i.inviter, ur.nickname, i.invitee,
            ue.nickname, i.card, i.created_at, i.expires_at, i.state"
    };
}

/// The joins that give an invite (`i`) its inviter's and invitee's nicknames.
macro_rules! invite_nicknames {
    () => {
        "JOIN users ur ON ur.id = i.inviter
     JOIN users ue ON ue.id = i.invitee"
    };
}

const INVITE_SELECT: &str = concat!(
    "SELECT ",
    invite_columns!(),
    " FROM invites i ",
    invite_nicknames!()
);

const LINK_SELECT: &str = "SELECT id, user_id, device, device_key, client, requested_at,
     expires_at, state FROM link_requests";

fn link(row: &Row) -> StoreResult<LinkRecord> {
    let state: i16 = row.try_get(7)?;
    Ok(LinkRecord {
        id: LinkId(bytes(row, 0)?),
        user: UserId(bytes(row, 1)?),
        device: NewDevice {
            id: DeviceId(bytes(row, 2)?),
            key: PublicKey(bytes(row, 3)?),
            client: row.try_get(4)?,
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

fn user(row: &Row) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: UserId(bytes(row, 0)?),
        email: row.try_get(1)?,
        nickname: row.try_get(2)?,
        avatar: bytes_opt(row, 3)?.map(BlobHash),
        user_key: PublicKey(bytes(row, 4)?),
        personal_doc: DocId(bytes(row, 5)?),
        created_at: unsigned(row, 6, "created_at")?,
    })
}

fn device(row: &Row) -> StoreResult<DeviceRecord> {
    Ok(DeviceRecord {
        id: DeviceId(bytes(row, 0)?),
        user: UserId(bytes(row, 1)?),
        key: PublicKey(bytes(row, 2)?),
        client: row.try_get(3)?,
        added_at: unsigned(row, 4, "added_at")?,
        last_seen: unsigned_opt(row, 5, "last_seen")?,
        revoked_at: unsigned_opt(row, 6, "revoked_at")?,
    })
}

fn family(row: &Row) -> StoreResult<FamilyRecord> {
    Ok(FamilyRecord {
        id: FamilyId(bytes(row, 0)?),
        host: UserId(bytes(row, 1)?),
        created_at: unsigned(row, 2, "created_at")?,
    })
}

fn member(row: &Row) -> StoreResult<MemberInfo> {
    let role: &str = row.try_get(1)?;
    Ok(MemberInfo {
        user: UserId(bytes(row, 0)?),
        role: match role {
            "host" => Role::Host,
            "member" => Role::Member,
            other => return Err(StoreError::Corrupt(format!("unknown role {other:?}"))),
        },
        joined_at: unsigned(row, 2, "joined_at")?,
        personal_doc: DocId(bytes(row, 3)?),
    })
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Host => "host",
        Role::Member => "member",
    }
}

fn invite(row: &Row, now: u64) -> StoreResult<(InviteInfo, StoredInviteState)> {
    let expires_at = unsigned(row, 8, "expires_at")?;
    let stored = StoredInviteState::parse(row.try_get(9)?)?;
    let info = InviteInfo {
        invite: InviteId(bytes(row, 0)?),
        family: FamilyId(bytes(row, 1)?),
        inviter: UserId(bytes(row, 2)?),
        inviter_nickname: row.try_get(3)?,
        invitee: UserId(bytes(row, 4)?),
        invitee_nickname: row.try_get(5)?,
        card: row.try_get(6)?,
        created_at: unsigned(row, 7, "created_at")?,
        expires_at,
        state: stored.at(expires_at, now),
    };
    Ok((info, stored))
}

fn map<T>(rows: Vec<Row>, f: impl Fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(f).collect()
}

async fn live_family(c: &impl GenericClient, family: FamilyId) -> StoreResult<bool> {
    exists(
        c,
        "SELECT 1 FROM families WHERE id = $1 AND NOT deleted",
        &[&family.0],
    )
    .await
}

async fn is_member(c: &impl GenericClient, family: FamilyId, user: UserId) -> StoreResult<bool> {
    exists(
        c,
        "SELECT 1 FROM members WHERE family = $1 AND user_id = $2",
        &[&family.0, &user.0],
    )
    .await
}

/// Locks the family's row until the transaction ends; whether the family exists
/// (deleted or not). Every write that reads and then changes a family's members or
/// invites takes it first, at `READ COMMITTED`: those writes of one family run one
/// after the other, and each statement after the lock sees what the one before it
/// committed. (At `SERIALIZABLE`, writes of *different* families conflicted through
/// the index pages they shared and, with three relays setting families up at once,
/// failed to serialise twelve times in a row.)
async fn lock_family(c: &impl GenericClient, family: FamilyId) -> StoreResult<bool> {
    exists(
        c,
        "SELECT 1 FROM families WHERE id = $1 FOR UPDATE",
        &[&family.0],
    )
    .await
}

/// Locks the user's row until the transaction ends (the families-per-user cap is
/// checked under it); whether the user exists. Taken after any family lock.
async fn lock_user(c: &impl GenericClient, user: UserId) -> StoreResult<bool> {
    exists(
        c,
        "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
        &[&user.0],
    )
    .await
}

/// The device acting for `user` (revoking, answering a link) is one of theirs and not
/// revoked: `NotFound("device")` or `DeviceRevoked` otherwise.
async fn acting_device_is_live(
    c: &impl GenericClient,
    user: UserId,
    by: DeviceId,
) -> StoreResult<()> {
    let found = row(
        c,
        "SELECT revoked_at FROM devices WHERE id = $1 AND user_id = $2",
        &[&by.0, &user.0],
    )
    .await?;
    match found.map(|r| r.try_get::<_, Option<i64>>(0)).transpose()? {
        None => Err(StoreError::NotFound("device")),
        Some(Some(_)) => Err(StoreError::DeviceRevoked),
        Some(None) => Ok(()),
    }
}

async fn user_exists(c: &impl GenericClient, user: UserId) -> StoreResult<bool> {
    exists(c, "SELECT 1 FROM users WHERE id = $1", &[&user.0]).await
}

async fn check_family_room(c: &impl GenericClient, user: UserId, max: usize) -> StoreResult<()> {
    let n: i64 = row(
        c,
        "SELECT count(*) FROM members m JOIN families f ON f.id = m.family
         WHERE m.user_id = $1 AND NOT f.deleted",
        &[&user.0],
    )
    .await?
    .map_or(Ok(0), |r| r.try_get(0))?;
    if usize::try_from(n).unwrap_or(usize::MAX) >= max {
        return Err(StoreError::TooManyFamilies);
    }
    Ok(())
}

async fn release(
    c: &impl GenericClient,
    blob: &[u8; 32],
    family: Option<[u8; 16]>,
    user: Option<[u8; 16]>,
    size: i64,
    at: i64,
) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO blob_releases (blob, family, user_id, size, released_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[blob, &family, &user, &size, &at],
    )
    .await
    .map(drop)
}

fn grantee_columns(to: BlobGrantee) -> (Option<[u8; 16]>, Option<[u8; 16]>) {
    match to {
        BlobGrantee::Family(f) => (Some(f.0), None),
        BlobGrantee::User(u) => (None, Some(u.0)),
    }
}

async fn check_new_device(c: &impl GenericClient, device: &NewDevice) -> StoreResult<()> {
    if exists(c, "SELECT 1 FROM devices WHERE id = $1", &[&device.id.0]).await? {
        return Err(StoreError::Conflict(format!("device {} exists", device.id)));
    }
    if exists(c, "SELECT 1 FROM devices WHERE key = $1", &[&device.key.0]).await? {
        return Err(StoreError::Conflict("device key already registered".into()));
    }
    Ok(())
}

async fn insert_device(
    c: &impl GenericClient,
    user: UserId,
    device: &NewDevice,
) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO devices (id, user_id, key, client, added_at) VALUES ($1, $2, $3, $4, $5)",
        &[
            &device.id.0,
            &user.0,
            &device.key.0,
            &device.client,
            &int("added_at", device.added_at)?,
        ],
    )
    .await
    .map(drop)
}

async fn load_invite(
    c: &impl GenericClient,
    id: InviteId,
    now: u64,
) -> StoreResult<Option<(InviteInfo, StoredInviteState)>> {
    let sql = format!("{INVITE_SELECT} WHERE i.id = $1");
    row(c, &sql, &[&id.0])
        .await?
        .map(|r| invite(&r, now))
        .transpose()
}

/// Checks an invite can be closed at `now`, runs `before_close`, stores `state`.
async fn close_invite(
    c: &impl GenericClient,
    id: InviteId,
    now: u64,
    state: StoredInviteState,
    accept_max: Option<usize>,
) -> StoreResult<InviteInfo> {
    let at = int("now", now)?;
    let family = row(c, "SELECT family FROM invites WHERE id = $1", &[&id.0])
        .await?
        .ok_or(StoreError::NotFound("invite"))?;
    lock_family(c, FamilyId(bytes(&family, 0)?)).await?;
    // Read again under the lock: another answer may have committed meanwhile.
    let (mut info, stored) = load_invite(c, id, now)
        .await?
        .ok_or(StoreError::NotFound("invite"))?;
    stored.check_open(info.expires_at, now)?;
    if let Some(max) = accept_max {
        lock_user(c, info.invitee).await?;
        if is_member(c, info.family, info.invitee).await? {
            return Err(StoreError::AlreadyMember);
        }
        check_family_room(c, info.invitee, max).await?;
        exec(
            c,
            "INSERT INTO members (family, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
            &[
                &info.family.0,
                &info.invitee.0,
                &role_str(Role::Member),
                &at,
            ],
        )
        .await?;
    }
    exec(
        c,
        "UPDATE invites SET state = $2, closed_at = $3 WHERE id = $1",
        &[&id.0, &state.as_str(), &at],
    )
    .await?;
    info.state = state.at(info.expires_at, now);
    Ok(info)
}

impl AccountStore for PgStore {
    fn create_user(&self, user: &NewUser, first_device: &NewDevice) -> StoreResult<()> {
        let created_at = int("created_at", user.created_at)?;
        int("added_at", first_device.added_at)?;
        // The checks below answer precise errors; the unique constraints decide races.
        self.write_committed(async |tx| {
            if exists(tx, "SELECT 1 FROM users WHERE email = $1", &[&user.email]).await? {
                return Err(StoreError::EmailTaken);
            }
            if user_exists(tx, user.id).await? {
                return Err(StoreError::Conflict(format!("user {} exists", user.id)));
            }
            if exists(
                tx,
                "SELECT 1 FROM users WHERE user_key = $1",
                &[&user.user_key.0],
            )
            .await?
            {
                return Err(StoreError::Conflict("user key already registered".into()));
            }
            // Nor another family's or user's key log (FamilyId::key_log relates a
            // document and its key log both ways): a personal document there would
            // take that key log over.
            let ids = [user.personal_doc.0, user.personal_doc.key_log_family().0];
            if exists(
                tx,
                "SELECT 1 FROM docs WHERE doc = $1 OR doc = $2",
                &[&ids[0], &ids[1]],
            )
            .await?
                || exists(
                    tx,
                    "SELECT 1 FROM volumes WHERE doc = $1 OR doc = $2",
                    &[&ids[0], &ids[1]],
                )
                .await?
            {
                return Err(StoreError::Conflict(format!(
                    "document {} exists",
                    user.personal_doc
                )));
            }
            check_new_device(tx, first_device).await?;
            exec(
                tx,
                "INSERT INTO users (id, email, nickname, user_key, personal_doc, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &user.id.0,
                    &user.email,
                    &user.nickname,
                    &user.user_key.0,
                    &user.personal_doc.0,
                    &created_at,
                ],
            )
            .await?;
            exec(
                tx,
                "INSERT INTO docs (doc, user_id) VALUES ($1, $2)",
                &[&user.personal_doc.0, &user.id.0],
            )
            .await?;
            insert_device(tx, user.id, first_device).await
        })
    }

    fn user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        self.read(async |c| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
            row(c, &sql, &[&id.0]).await?.map(|r| user(&r)).transpose()
        })
    }

    fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.read(async |c| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
            row(c, &sql, &[&email]).await?.map(|r| user(&r)).transpose()
        })
    }

    fn user_by_key(&self, user_key: &PublicKey) -> StoreResult<Option<UserRecord>> {
        self.read(async |c| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE user_key = $1");
            row(c, &sql, &[&user_key.0])
                .await?
                .map(|r| user(&r))
                .transpose()
        })
    }

    fn set_profile(
        &self,
        user: UserId,
        nickname: &str,
        avatar: Option<BlobHash>,
    ) -> StoreResult<()> {
        let avatar = avatar.map(|a| a.0);
        self.write(async |tx| {
            let updated = exec(
                tx,
                "UPDATE users SET nickname = $2, avatar = $3 WHERE id = $1",
                &[&user.0, &nickname, &avatar],
            )
            .await?;
            if updated == 0 {
                return Err(StoreError::NotFound("user"));
            }
            Ok(())
        })
    }

    fn add_device(&self, user: UserId, device: &NewDevice) -> StoreResult<()> {
        int("added_at", device.added_at)?;
        // Unique keys and the user's foreign key are all it must hold (see create_user).
        self.write_committed(async |tx| {
            if !user_exists(tx, user).await? {
                return Err(StoreError::NotFound("user"));
            }
            check_new_device(tx, device).await?;
            insert_device(tx, user, device).await
        })
    }

    fn device(&self, id: DeviceId) -> StoreResult<Option<DeviceRecord>> {
        self.read(async |c| {
            let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1");
            row(c, &sql, &[&id.0])
                .await?
                .map(|r| device(&r))
                .transpose()
        })
    }

    fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>> {
        self.read(async |c| {
            let sql = format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = $1 ORDER BY added_at, id"
            );
            map(rows(c, &sql, &[&user.0]).await?, device)
        })
    }

    fn put_device_certs(&self, user: UserId, certs: &[DeviceCert], max: usize) -> StoreResult<()> {
        // The user's row is locked for the cap.
        self.write_committed(async |tx| {
            if !lock_user(tx, user).await? {
                return Err(StoreError::NotFound("user"));
            }
            for c in certs {
                let (by_user, by_device) = certifier_columns(c.by);
                exec(
                    tx,
                    "INSERT INTO device_certs
                         (user_id, device, device_key, by_user, by_device, signature)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (device, by_user, by_device) DO NOTHING",
                    &[
                        &user.0,
                        &c.device.0,
                        &c.device_key.0,
                        &by_user,
                        &by_device,
                        &c.signature.0.as_slice(),
                    ],
                )
                .await?;
            }
            let held = row(
                tx,
                "SELECT count(*) FROM device_certs c JOIN devices d ON d.id = c.device
                 WHERE c.user_id = $1 AND d.revoked_at IS NULL",
                &[&user.0],
            )
            .await?
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()?
            .unwrap_or(0);
            // Over the cap: the transaction is rolled back, nothing kept.
            if usize::try_from(held).unwrap_or(usize::MAX) > max {
                return Err(StoreError::TooManyCerts);
            }
            Ok(())
        })
    }

    fn device_certs(&self, user: UserId) -> StoreResult<Vec<DeviceCert>> {
        self.read(async |c| {
            let found = rows(
                c,
                "SELECT device, device_key, by_user, by_device, signature
                 FROM device_certs WHERE user_id = $1 ORDER BY id",
                &[&user.0],
            )
            .await?;
            map(found, |r| {
                Ok(cert_from_columns(
                    bytes(r, 0)?,
                    bytes(r, 1)?,
                    r.try_get(2)?,
                    bytes(r, 3)?,
                    bytes(r, 4)?,
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
        // A device revoked meanwhile keeps a package nobody is served.
        self.write_committed(async |tx| {
            acting_device_is_live(tx, user, device).await?;
            exec(
                tx,
                "INSERT INTO key_packages (device, user_id, package, published_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (device) DO UPDATE
                 SET package = excluded.package, published_at = excluded.published_at",
                &[&device.0, &user.0, &package, &at],
            )
            .await?;
            Ok(())
        })
    }

    fn key_packages(&self, user: UserId) -> StoreResult<Vec<(DeviceId, Vec<u8>)>> {
        self.read(async |c| {
            let found = rows(
                c,
                "SELECT d.id, k.package FROM key_packages k JOIN devices d ON d.id = k.device
                 WHERE d.user_id = $1 AND d.revoked_at IS NULL
                 ORDER BY d.added_at, d.id",
                &[&user.0],
            )
            .await?;
            map(found, |r| Ok((DeviceId(bytes(r, 0)?), r.try_get(1)?)))
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
        self.write(async |tx| {
            acting_device_is_live(tx, user, by).await?;
            let updated = exec(
                tx,
                "UPDATE devices SET revoked_at = coalesce(revoked_at, $3)
                 WHERE id = $1 AND user_id = $2",
                &[&device.0, &user.0, &at],
            )
            .await?;
            if updated == 0 {
                return Err(StoreError::NotFound("device"));
            }
            // Every relay closes the device's sessions once this commits.
            self.announce(tx, 'r', &device.to_string()).await
        })
    }

    fn touch_device(&self, device: DeviceId, at: u64, client: Option<&str>) -> StoreResult<()> {
        let at = int("at", at)?;
        // One statement: no serialisable transaction needed, and no retries (sessions
        // of one device on several relays touch it at once).
        self.read(async |c| {
            let updated = exec(
                c,
                "UPDATE devices SET client = coalesce($3, client), \
                     last_seen = greatest(coalesce(last_seen, $2), $2) WHERE id = $1",
                &[&device.0, &at, &client],
            )
            .await?;
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
        self.write(async |tx| {
            let revoked = row(
                tx,
                "SELECT revoked_at FROM devices WHERE id = $1 AND user_id = $2",
                &[&device.0, &user.0],
            )
            .await?;
            match revoked
                .map(|r| r.try_get::<_, Option<i64>>(0))
                .transpose()?
            {
                None => return Err(StoreError::NotFound("device")),
                Some(Some(_)) => return Err(StoreError::Invalid("the device is revoked".into())),
                Some(None) => {}
            }
            if exists(
                tx,
                "SELECT 1 FROM link_codes WHERE code_hash = $1",
                &[&code_hash],
            )
            .await?
            {
                return Err(StoreError::Conflict("link code already issued".into()));
            }
            // One code at a time: the new one replaces the unclaimed ones.
            exec(
                tx,
                "DELETE FROM link_codes WHERE user_id = $1 AND used_at IS NULL",
                &[&user.0],
            )
            .await?;
            exec(
                tx,
                "INSERT INTO link_codes (code_hash, user_id, device, expires_at)
                 VALUES ($1, $2, $3, $4)",
                &[&code_hash, &user.0, &device.0, &expires_at],
            )
            .await
            .map(drop)
        })
    }

    fn purge_finished(&self, links_before: u64, invites_before: u64) -> StoreResult<usize> {
        let links_before = int("links_before", links_before)?;
        let invites_before = int("invites_before", invites_before)?;
        // READ COMMITTED: nothing here reads and then decides; a row that changes
        // meanwhile (an invite answered) no longer matches and stays.
        self.write_committed(async |tx| {
            // Requests first: each references its code.
            let mut n = exec(
                tx,
                "DELETE FROM link_requests WHERE expires_at < $1",
                &[&links_before],
            )
            .await?;
            n += exec(
                tx,
                "DELETE FROM link_codes l WHERE l.expires_at < $1
                 AND NOT EXISTS (SELECT 1 FROM link_requests r WHERE r.code_hash = l.code_hash)",
                &[&links_before],
            )
            .await?;
            n += exec(
                tx,
                "DELETE FROM invites WHERE state <> 'pending' AND closed_at < $1",
                &[&invites_before],
            )
            .await?;
            n += exec(
                tx,
                "DELETE FROM invites WHERE state = 'pending' AND expires_at < $1",
                &[&invites_before],
            )
            .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn claim_link_code(
        &self,
        code_hash: [u8; 32],
        id: LinkId,
        device: &NewDevice,
        now: u64,
    ) -> StoreResult<Option<LinkRecord>> {
        let at = int("now", now)?;
        let requested_at = int("added_at", device.added_at)?;
        self.write(async |tx| {
            let sql = format!("{LINK_SELECT} WHERE code_hash = $1");
            if let Some(found) = row(tx, &sql, &[&code_hash]).await? {
                let record = link(&found)?;
                if record.device.id != device.id || record.device.key != device.key {
                    return Err(StoreError::LinkClaimed);
                }
                return Ok(Some(record));
            }
            let found = row(
                tx,
                "SELECT l.user_id, l.expires_at, l.used_at IS NULL AND d.revoked_at IS NULL
                 FROM link_codes l JOIN devices d ON d.id = l.device
                 WHERE l.code_hash = $1",
                &[&code_hash],
            )
            .await?;
            let Some(found) = found else {
                return Ok(None);
            };
            let user: [u8; 16] = bytes(&found, 0)?;
            let expires_at = unsigned(&found, 1, "expires_at")?;
            let usable: bool = found.try_get(2)?;
            if !usable || passed(expires_at, now) {
                return Ok(None);
            }
            check_new_device(tx, device).await?;
            if exists(tx, "SELECT 1 FROM link_requests WHERE id = $1", &[&id.0]).await? {
                return Err(StoreError::Conflict(format!("link {id} exists")));
            }
            exec(
                tx,
                "INSERT INTO link_requests
                 (id, code_hash, user_id, device, device_key, client, requested_at, expires_at,
                  state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)",
                &[
                    &id.0,
                    &code_hash,
                    &user,
                    &device.id.0,
                    &device.key.0,
                    &device.client,
                    &requested_at,
                    &int("expires_at", expires_at)?,
                ],
            )
            .await?;
            exec(
                tx,
                "UPDATE link_codes SET used_at = $2 WHERE code_hash = $1",
                &[&code_hash, &at],
            )
            .await?;
            Ok(Some(LinkRecord {
                id,
                user: UserId(user),
                device: device.clone(),
                expires_at,
                state: LinkState::Pending,
            }))
        })
    }

    fn link(&self, id: LinkId) -> StoreResult<Option<LinkRecord>> {
        self.read(async |c| {
            let sql = format!("{LINK_SELECT} WHERE id = $1");
            row(c, &sql, &[&id.0]).await?.map(|r| link(&r)).transpose()
        })
    }

    fn pending_links(&self, user: UserId, now: u64) -> StoreResult<Vec<LinkRecord>> {
        let now = int("now", now)?;
        self.read(async |c| {
            let sql = format!(
                "{LINK_SELECT} WHERE user_id = $1 AND state = 0 AND expires_at > $2
                 ORDER BY requested_at, id"
            );
            map(rows(c, &sql, &[&user.0, &now]).await?, link)
        })
    }

    fn answer_link(
        &self,
        user: UserId,
        id: LinkId,
        by: DeviceId,
        accept: bool,
        now: u64,
    ) -> StoreResult<LinkRecord> {
        int("now", now)?;
        self.write(async |tx| {
            acting_device_is_live(tx, user, by).await?;
            let sql = format!("{LINK_SELECT} WHERE id = $1");
            let mut record = row(tx, &sql, &[&id.0])
                .await?
                .map(|r| link(&r))
                .transpose()?
                .filter(|l| l.user == user)
                .ok_or(StoreError::NotFound("link"))?;
            if record.state != LinkState::Pending {
                return Err(StoreError::LinkClosed);
            }
            if passed(record.expires_at, now) {
                return Err(StoreError::LinkExpired);
            }
            let (state, code): (LinkState, i16) = if accept {
                let new = NewDevice {
                    added_at: now,
                    ..record.device.clone()
                };
                check_new_device(tx, &new).await?;
                insert_device(tx, user, &new).await?;
                (LinkState::Accepted, 1)
            } else {
                (LinkState::Rejected, 2)
            };
            exec(
                tx,
                "UPDATE link_requests SET state = $2 WHERE id = $1",
                &[&id.0, &code],
            )
            .await?;
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
        // The host's row is locked for the cap; the ids are unique keys.
        self.write_committed(async |tx| {
            if !lock_user(tx, host).await? {
                return Err(StoreError::NotFound("user"));
            }
            if exists(tx, "SELECT 1 FROM families WHERE id = $1", &[&family.0]).await?
                || exists(tx, "SELECT 1 FROM docs WHERE doc = $1", &[&doc.0]).await?
                || exists(
                    tx,
                    "SELECT 1 FROM docs WHERE doc = $1",
                    &[&family.key_log().0],
                )
                .await?
                || exists(
                    tx,
                    "SELECT 1 FROM volumes WHERE doc = $1 OR doc = $2",
                    &[&doc.0, &family.key_log().0],
                )
                .await?
            {
                return Err(StoreError::Conflict(format!("family {family} exists")));
            }
            check_family_room(tx, host, max_families).await?;
            exec(
                tx,
                "INSERT INTO families (id, host, created_at) VALUES ($1, $2, $3)",
                &[&family.0, &host.0, &at],
            )
            .await?;
            exec(
                tx,
                "INSERT INTO docs (doc, family) VALUES ($1, $2)",
                &[&doc.0, &family.0],
            )
            .await?;
            exec(
                tx,
                "INSERT INTO members (family, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
                &[&family.0, &host.0, &role_str(Role::Host), &at],
            )
            .await
            .map(drop)
        })
    }

    fn family(&self, id: FamilyId) -> StoreResult<Option<FamilyRecord>> {
        self.read(async |c| {
            let sql = format!(
                "SELECT {FAMILY_COLUMNS} FROM families f WHERE f.id = $1 AND NOT f.deleted"
            );
            row(c, &sql, &[&id.0])
                .await?
                .map(|r| family(&r))
                .transpose()
        })
    }

    fn families_of(&self, user: UserId) -> StoreResult<Vec<FamilyRecord>> {
        self.read(async |c| {
            let sql = format!(
                "SELECT {FAMILY_COLUMNS} FROM members m JOIN families f ON f.id = m.family
                 WHERE m.user_id = $1 AND NOT f.deleted ORDER BY m.joined_at, f.id"
            );
            map(rows(c, &sql, &[&user.0]).await?, family)
        })
    }

    fn members(&self, family: FamilyId) -> StoreResult<Vec<MemberInfo>> {
        self.read(async |c| {
            let sql =
                format!("{MEMBER_SELECT} WHERE m.family = $1 ORDER BY m.joined_at, m.user_id");
            map(rows(c, &sql, &[&family.0]).await?, member)
        })
    }

    fn membership(&self, family: FamilyId, user: UserId) -> StoreResult<Option<MemberInfo>> {
        self.read(async |c| {
            let sql = format!("{MEMBER_SELECT} WHERE m.family = $1 AND m.user_id = $2");
            row(c, &sql, &[&family.0, &user.0])
                .await?
                .map(|r| member(&r))
                .transpose()
        })
    }

    fn remove_member(&self, family: FamilyId, user: UserId) -> StoreResult<()> {
        self.write_committed(async |tx| {
            lock_family(tx, family).await?;
            let role = row(
                tx,
                "SELECT role FROM members WHERE family = $1 AND user_id = $2",
                &[&family.0, &user.0],
            )
            .await?;
            match role
                .map(|r| r.try_get::<_, String>(0))
                .transpose()?
                .as_deref()
            {
                None => return Err(StoreError::NotFound("member")),
                Some(role) if role == role_str(Role::Host) => {
                    return Err(StoreError::Conflict(
                        "the host cannot leave; delete the family instead".into(),
                    ));
                }
                Some(_) => {}
            }
            exec(
                tx,
                "DELETE FROM members WHERE family = $1 AND user_id = $2",
                &[&family.0, &user.0],
            )
            .await?;
            // Every relay re-checks what its sessions may read once this commits.
            self.announce(tx, 'm', &format!("{family} {user}")).await
        })
    }

    fn delete_family(&self, family: FamilyId, at: u64) -> StoreResult<()> {
        let at = int("at", at)?;
        self.write_committed(async |tx| {
            lock_family(tx, family).await?;
            if !live_family(tx, family).await? {
                return Err(StoreError::NotFound("family"));
            }
            exec(
                tx,
                "INSERT INTO blob_releases (blob, family, user_id, size, released_at)
                 SELECT blob, family, NULL::bytea, size, $2::bigint FROM blob_grants WHERE family = $1
                 UNION ALL
                 SELECT blob, family, NULL::bytea, size, $2::bigint FROM snapshot_refs WHERE family = $1",
                &[&family.0, &at],
            )
            .await?;
            for sql in [
                "DELETE FROM members WHERE family = $1",
                "DELETE FROM invites WHERE family = $1",
                "DELETE FROM blob_grants WHERE family = $1",
                "DELETE FROM snapshot_refs WHERE family = $1",
                "UPDATE families SET deleted = true WHERE id = $1",
            ] {
                exec(tx, sql, &[&family.0]).await?;
            }
            self.announce(tx, 'm', &family.to_string()).await
        })
    }

    fn open_volume(&self, family: FamilyId, year: u16, max_volumes: usize) -> StoreResult<bool> {
        let doc = family.volume(year);
        let year = i16::try_from(year)
            .map_err(|_| StoreError::Invalid(format!("a volume's year {year}")))?;
        // The family's row is locked for the cap; the id is a unique key.
        self.write_committed(async |tx| {
            lock_family(tx, family).await?;
            if !live_family(tx, family).await? {
                return Err(StoreError::NotFound("family"));
            }
            let open = row(
                tx,
                "SELECT family, year FROM volumes WHERE doc = $1",
                &[&doc.0],
            )
            .await?;
            if let Some(open) = open {
                let (f, y): ([u8; 16], i16) = (bytes(&open, 0)?, open.try_get(1)?);
                if f == family.0 && y == year {
                    return Ok(false);
                }
                return Err(StoreError::Conflict(format!("volume {doc} is taken")));
            }
            // An id made before new documents' ids were checked for a volume's shape
            // (one in 2^32 by chance): the volume cannot be opened.
            let key_log_of = doc.key_log_family();
            if exists(
                tx,
                "SELECT 1 FROM docs WHERE doc = $1 OR doc = $2",
                &[&doc.0, &key_log_of.0],
            )
            .await?
                || exists(
                    tx,
                    "SELECT 1 FROM families WHERE id = $1 OR id = $2",
                    &[&doc.0, &key_log_of.0],
                )
                .await?
            {
                return Err(StoreError::Conflict(format!("volume {doc} is taken")));
            }
            let opened = row(
                tx,
                "SELECT count(*) FROM volumes WHERE family = $1",
                &[&family.0],
            )
            .await?
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()?
            .unwrap_or(0);
            if usize::try_from(opened).unwrap_or(usize::MAX) >= max_volumes {
                return Err(StoreError::TooManyVolumes);
            }
            exec(
                tx,
                "INSERT INTO volumes (doc, family, year) VALUES ($1, $2, $3)",
                &[&doc.0, &family.0, &year],
            )
            .await?;
            Ok(true)
        })
    }

    fn volumes_of(&self, family: FamilyId) -> StoreResult<Vec<(u16, DocId)>> {
        self.read(async |c| {
            rows(
                c,
                "SELECT year, doc FROM volumes WHERE family = $1 ORDER BY year",
                &[&family.0],
            )
            .await?
            .iter()
            .map(|r| {
                let year: i16 = r.try_get(0)?;
                let year = u16::try_from(year)
                    .map_err(|_| StoreError::Corrupt(format!("volume year {year}")))?;
                Ok((year, DocId(bytes(r, 1)?)))
            })
            .collect()
        })
    }

    fn create_invite_within(&self, new: &NewInvite, limits: InviteLimits) -> StoreResult<()> {
        let created_at = int("created_at", new.created_at)?;
        let expires_at = int("expires_at", new.expires_at)?;
        if expires_at <= created_at {
            return Err(StoreError::Invalid(
                "an invite must expire after it is created".into(),
            ));
        }
        self.write_committed(async |tx| {
            lock_family(tx, new.family).await?;
            if !live_family(tx, new.family).await? {
                return Err(StoreError::NotFound("family"));
            }
            if !user_exists(tx, new.invitee).await? {
                return Err(StoreError::NotFound("user"));
            }
            if !is_member(tx, new.family, new.inviter).await? {
                return Err(StoreError::NotFound("member"));
            }
            if exists(tx, "SELECT 1 FROM invites WHERE id = $1", &[&new.id.0]).await? {
                return Err(StoreError::Conflict(format!("invite {} exists", new.id)));
            }
            if is_member(tx, new.family, new.invitee).await? {
                return Err(StoreError::AlreadyMember);
            }
            if exists(
                tx,
                "SELECT 1 FROM invites
                 WHERE family = $1 AND invitee = $2 AND state = 'pending' AND expires_at > $3",
                &[&new.family.0, &new.invitee.0, &created_at],
            )
            .await?
            {
                return Err(StoreError::AlreadyInvited);
            }
            // The invitee's row lock (after the family's) makes invites from
            // different families to one person count one after the other.
            lock_user(tx, new.invitee).await?;
            let for_invitee = row(
                tx,
                "SELECT count(*) FROM invites
                 WHERE invitee = $1 AND state = 'pending' AND expires_at > $2",
                &[&new.invitee.0, &created_at],
            )
            .await?
            .map_or(Ok(0), |r| r.try_get::<_, i64>(0))?;
            let of_family = row(
                tx,
                "SELECT count(*) FROM invites
                 WHERE family = $1 AND state = 'pending' AND expires_at > $2",
                &[&new.family.0, &created_at],
            )
            .await?
            .map_or(Ok(0), |r| r.try_get::<_, i64>(0))?;
            let since = int(
                "since",
                new.created_at.saturating_sub(INVITE_PAIR_WINDOW_MS),
            )?;
            let of_pair = row(
                tx,
                "SELECT count(*) FROM invites
                 WHERE family = $1 AND invitee = $2 AND created_at > $3",
                &[&new.family.0, &new.invitee.0, &since],
            )
            .await?
            .map_or(Ok(0), |r| r.try_get::<_, i64>(0))?;
            let over = |n: i64, max: usize| usize::try_from(n).map_or(true, |n| n >= max);
            if over(for_invitee, limits.per_invitee)
                || over(of_family, limits.per_family)
                || over(of_pair, limits.per_pair)
            {
                return Err(StoreError::TooManyInvites);
            }
            exec(
                tx,
                "INSERT INTO invites (id, family, inviter, invitee, card,
                                      created_at, expires_at, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &new.id.0,
                    &new.family.0,
                    &new.inviter.0,
                    &new.invitee.0,
                    &new.card,
                    &created_at,
                    &expires_at,
                    &StoredInviteState::Pending.as_str(),
                ],
            )
            .await
            .map(drop)
        })
    }

    fn invite(&self, id: InviteId, now: u64) -> StoreResult<Option<InviteInfo>> {
        self.read(async |c| Ok(load_invite(c, id, now).await?.map(|(info, _)| info)))
    }

    fn invites_for(&self, user: UserId, now: u64) -> StoreResult<Vec<InviteInfo>> {
        let at = int("now", now)?;
        self.read(async |c| {
            let sql = format!(
                "{INVITE_SELECT} WHERE i.invitee = $1 AND i.state = 'pending'
                   AND i.expires_at > $2 ORDER BY i.created_at, i.id"
            );
            map(rows(c, &sql, &[&user.0, &at]).await?, |r| {
                Ok(invite(r, now)?.0)
            })
        })
    }

    fn invites_of_family(&self, family: FamilyId, now: u64) -> StoreResult<Vec<InviteInfo>> {
        let at = int("now", now)?;
        self.read(async |c| {
            let sql = format!(
                "{INVITE_SELECT} WHERE i.family = $1 AND i.state = 'pending'
                   AND i.expires_at > $2 ORDER BY i.created_at, i.id"
            );
            map(rows(c, &sql, &[&family.0, &at]).await?, |r| {
                Ok(invite(r, now)?.0)
            })
        })
    }

    fn invites_seen_by(&self, user: UserId, now: u64) -> StoreResult<Vec<InviteInfo>> {
        let at = int("now", now)?;
        self.read(async |c| {
            // As the SQLite store's: addressed to `user`, then each family's in the
            // order they joined, in one statement.
            let sql = concat!(
                "SELECT ",
                invite_columns!(),
                ", 0 AS part, 0 AS joined, NULL AS fam
                 FROM invites i ",
                invite_nicknames!(),
                " WHERE i.invitee = $1 AND i.state = 'pending' AND i.expires_at > $2
                 UNION ALL
                 SELECT ",
                invite_columns!(),
                ", 1, m.joined_at, m.family
                 FROM members m
                 JOIN families f ON f.id = m.family AND NOT f.deleted
                 JOIN invites i ON i.family = m.family ",
                invite_nicknames!(),
                " WHERE m.user_id = $1 AND i.invitee <> $1
                   AND i.state = 'pending' AND i.expires_at > $2
                 ORDER BY part, joined, fam, 8, 1" // created_at, id
            );
            map(rows(c, sql, &[&user.0, &at]).await?, |r| {
                Ok(invite(r, now)?.0)
            })
        })
    }

    fn answer_invite(
        &self,
        id: InviteId,
        accept: bool,
        now: u64,
        max_families: usize,
    ) -> StoreResult<InviteInfo> {
        int("now", now)?;
        let state = if accept {
            StoredInviteState::Accepted
        } else {
            StoredInviteState::Rejected
        };
        self.write_committed(async |tx| {
            close_invite(tx, id, now, state, accept.then_some(max_families)).await
        })
    }

    fn withdraw_invite(&self, id: InviteId, now: u64) -> StoreResult<InviteInfo> {
        self.write_committed(async |tx| {
            close_invite(tx, id, now, StoredInviteState::Withdrawn, None).await
        })
    }

    fn doc_owner(&self, doc: DocId) -> StoreResult<Option<DocOwner>> {
        self.read(async |c| {
            let found = row(
                c,
                "SELECT d.family, d.user_id
                 FROM docs d LEFT JOIN families f ON f.id = d.family
                 WHERE d.doc = $1 AND (d.user_id IS NOT NULL OR NOT f.deleted)",
                &[&doc.0],
            )
            .await?;
            let Some(found) = found else {
                // Or a volume of a family that is not deleted.
                let volume = row(
                    c,
                    "SELECT v.family FROM volumes v JOIN families f ON f.id = v.family
                     WHERE v.doc = $1 AND NOT f.deleted",
                    &[&doc.0],
                )
                .await?;
                if let Some(volume) = volume {
                    return Ok(Some(DocOwner::Family(FamilyId(bytes(&volume, 0)?))));
                }
                // Or the key log of a personal document (its user's devices' key
                // group), or of a family that is not deleted.
                let family = doc.key_log_family();
                let personal = row(
                    c,
                    "SELECT user_id FROM docs WHERE doc = $1 AND user_id IS NOT NULL",
                    &[&family.0],
                )
                .await?;
                if let Some(found) = personal {
                    return Ok(Some(DocOwner::PersonalKeys(UserId(bytes(&found, 0)?))));
                }
                let live = row(
                    c,
                    "SELECT 1 FROM families WHERE id = $1 AND NOT deleted",
                    &[&family.0],
                )
                .await?;
                return Ok(live.map(|_| DocOwner::Family(family)));
            };
            match (bytes_opt(&found, 0)?, bytes_opt(&found, 1)?) {
                (Some(family), None) => Ok(Some(DocOwner::Family(FamilyId(family)))),
                (None, Some(user)) => Ok(Some(DocOwner::Personal(UserId(user)))),
                _ => Err(StoreError::Corrupt(format!(
                    "document {doc} has no single owner"
                ))),
            }
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
        self.write(async |tx| {
            if !live_family(tx, family).await? {
                return Err(StoreError::NotFound("family"));
            }
            insert_family_grant(tx, family, blob, size, by).await
        })
    }

    fn grant_upload(&self, upload: &UploadGrant) -> StoreResult<UploadVerdict> {
        let size = int("size", upload.size)?;
        let upload = *upload;
        // At READ COMMITTED under the grantee's row lock: grants to one family (or one
        // user) run one after the other, so each sees the bytes the one before it
        // granted, and a removal (which takes the family lock too) waits or is seen.
        self.write_committed(async |tx| {
            match upload.to {
                BlobGrantee::Family(family) => {
                    lock_family(tx, family).await?;
                }
                BlobGrantee::User(user) => {
                    if !lock_user(tx, user).await? {
                        return Err(StoreError::NotFound("user"));
                    }
                }
            }
            // FOR SHARE: a revocation of the device waits for this grant, or this
            // grant sees the revocation.
            let found = row(
                tx,
                "SELECT revoked_at FROM devices WHERE id = $1 AND user_id = $2 FOR SHARE",
                &[&upload.device.0, &upload.by.0],
            )
            .await?;
            match found.map(|r| r.try_get::<_, Option<i64>>(0)).transpose()? {
                None => return Err(StoreError::NotFound("device")),
                Some(Some(_)) => return Ok(UploadVerdict::DeviceRevoked),
                Some(None) => {}
            }
            match upload.to {
                BlobGrantee::Family(family) => {
                    // A deleted family has no members left.
                    if !is_member(tx, family, upload.by).await? {
                        return Ok(UploadVerdict::NotMember);
                    }
                }
                BlobGrantee::User(user) if user != upload.by => {
                    return Ok(UploadVerdict::NotMember);
                }
                BlobGrantee::User(_) => {}
            }
            if !holds_blob(tx, upload.to, upload.blob).await?
                && held_bytes(tx, upload.to).await?.saturating_add(upload.size) > upload.quota
            {
                return Ok(UploadVerdict::QuotaExceeded);
            }
            match upload.to {
                BlobGrantee::Family(family) => {
                    insert_family_grant(tx, family, upload.blob, size, upload.by).await?;
                }
                BlobGrantee::User(user) => {
                    exec(
                        tx,
                        "INSERT INTO user_blob_grants (user_id, blob, size) VALUES ($1, $2, $3)
                         ON CONFLICT (user_id, blob) DO NOTHING",
                        &[&user.0, &upload.blob.0, &size],
                    )
                    .await?;
                }
            }
            Ok(UploadVerdict::Granted)
        })
    }

    fn grant_blob_to_user(&self, user: UserId, blob: BlobHash, size: u64) -> StoreResult<()> {
        let size = int("size", size)?;
        self.write(async |tx| {
            if !user_exists(tx, user).await? {
                return Err(StoreError::NotFound("user"));
            }
            exec(
                tx,
                "INSERT INTO user_blob_grants (user_id, blob, size) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id, blob) DO NOTHING",
                &[&user.0, &blob.0, &size],
            )
            .await
            .map(drop)
        })
    }

    fn blob_granted(&self, user: UserId, blob: BlobHash) -> StoreResult<bool> {
        self.read(async |c| {
            exists(
                c,
                concat!(granted_to!("$1"), " LIMIT 1"),
                &[&user.0, &blob.0],
            )
            .await
        })
    }

    fn device_and_blob_grant(
        &self,
        id: DeviceId,
        blob: BlobHash,
    ) -> StoreResult<Option<(DeviceRecord, bool)>> {
        // One round trip where the two calls took two.
        self.read(async |c| {
            let found = row(
                c,
                concat!(
                    "SELECT ",
                    device_columns!(),
                    ", EXISTS (",
                    granted_to!("d.user_id"),
                    ") FROM devices d WHERE d.id = $1"
                ),
                &[&id.0, &blob.0],
            )
            .await?;
            found
                .map(|r| Ok((device(&r)?, r.try_get::<_, bool>(7)?)))
                .transpose()
        })
    }

    fn has_blob_grant(&self, to: BlobGrantee, blob: BlobHash) -> StoreResult<bool> {
        self.read(async |c| holds_blob(c, to, blob).await)
    }

    fn family_blob_bytes(&self, family: FamilyId) -> StoreResult<u64> {
        self.read(async |c| held_bytes(c, BlobGrantee::Family(family)).await)
    }

    fn user_blob_bytes(&self, user: UserId) -> StoreResult<u64> {
        self.read(async |c| held_bytes(c, BlobGrantee::User(user)).await)
    }

    fn add_snapshot_ref(
        &self,
        doc: DocId,
        to: BlobGrantee,
        blob: BlobHash,
        size: u64,
    ) -> StoreResult<()> {
        let size = int("size", size)?;
        self.write(async |tx| {
            let known = match to {
                BlobGrantee::Family(f) => live_family(tx, f).await?,
                BlobGrantee::User(u) => user_exists(tx, u).await?,
            };
            if !known {
                return Err(StoreError::NotFound(match to {
                    BlobGrantee::Family(_) => "family",
                    BlobGrantee::User(_) => "user",
                }));
            }
            let (family, user) = grantee_columns(to);
            exec(
                tx,
                "INSERT INTO snapshot_refs (doc, blob, family, user_id, size)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (doc, blob) DO NOTHING",
                &[&doc.0, &blob.0, &family, &user, &size],
            )
            .await
            .map(drop)
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
        self.write(async |tx| {
            if !exists(
                tx,
                "SELECT 1 FROM snapshot_refs WHERE doc = $1 AND blob = $2",
                &[&doc.0, &blob.0],
            )
            .await?
            {
                return Err(StoreError::NotFound("blob"));
            }
            let others = rows(
                tx,
                "SELECT blob, family, user_id, size FROM snapshot_refs WHERE doc = $1 AND blob <> $2",
                &[&doc.0, &blob.0],
            )
            .await?;
            for r in &others {
                let old: [u8; 32] = bytes(r, 0)?;
                let size: i64 = r.try_get(3)?;
                release(tx, &old, bytes_opt(r, 1)?, bytes_opt(r, 2)?, size, at).await?;
            }
            exec(
                tx,
                "DELETE FROM snapshot_refs WHERE doc = $1 AND blob <> $2",
                &[&doc.0, &blob.0],
            )
            .await?;
            match to {
                BlobGrantee::Family(f) => {
                    exec(
                        tx,
                        "DELETE FROM blob_grants WHERE family = $1 AND blob = $2 AND uploaded_by = $3",
                        &[&f.0, &blob.0, &by.0],
                    )
                    .await?;
                }
                BlobGrantee::User(u) if u == by => {
                    exec(
                        tx,
                        "DELETE FROM user_blob_grants WHERE user_id = $1 AND blob = $2",
                        &[&u.0, &blob.0],
                    )
                    .await?;
                }
                BlobGrantee::User(_) => {}
            }
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
        self.write(async |tx| {
            if !exists(
                tx,
                "SELECT 1 FROM snapshot_refs WHERE doc = $1 AND blob = $2",
                &[&doc.0, &blob.0],
            )
            .await?
            {
                return Err(StoreError::NotFound("blob"));
            }
            match to {
                BlobGrantee::Family(f) => {
                    exec(
                        tx,
                        "DELETE FROM blob_grants WHERE family = $1 AND blob = $2 AND uploaded_by = $3",
                        &[&f.0, &blob.0, &by.0],
                    )
                    .await?;
                }
                BlobGrantee::User(u) if u == by => {
                    exec(
                        tx,
                        "DELETE FROM user_blob_grants WHERE user_id = $1 AND blob = $2",
                        &[&u.0, &blob.0],
                    )
                    .await?;
                }
                BlobGrantee::User(_) => {}
            }
            Ok(())
        })
    }

    fn drop_snapshot_ref(&self, doc: DocId, blob: BlobHash, at: u64) -> StoreResult<bool> {
        let at = int("at", at)?;
        self.write(async |tx| {
            let found = row(
                tx,
                "SELECT family, user_id, size FROM snapshot_refs WHERE doc = $1 AND blob = $2",
                &[&doc.0, &blob.0],
            )
            .await?;
            let Some(found) = found else {
                return Ok(false);
            };
            let size: i64 = found.try_get(2)?;
            release(
                tx,
                &blob.0,
                bytes_opt(&found, 0)?,
                bytes_opt(&found, 1)?,
                size,
                at,
            )
            .await?;
            exec(
                tx,
                "DELETE FROM snapshot_refs WHERE doc = $1 AND blob = $2",
                &[&doc.0, &blob.0],
            )
            .await?;
            Ok(true)
        })
    }

    fn blob_referenced(&self, blob: BlobHash) -> StoreResult<bool> {
        self.read(async |c| {
            exists(
                c,
                "SELECT 1 FROM blob_grants WHERE blob = $1
                 UNION ALL SELECT 1 FROM user_blob_grants WHERE blob = $1
                 UNION ALL SELECT 1 FROM snapshot_refs WHERE blob = $1
                 UNION ALL SELECT 1 FROM blob_releases WHERE blob = $1
                 LIMIT 1",
                &[&blob.0],
            )
            .await
        })
    }

    fn expire_blob_releases(&self, before: u64) -> StoreResult<usize> {
        let before = int("before", before)?;
        self.read(async |c| {
            let n = exec(
                c,
                "DELETE FROM blob_releases WHERE released_at < $1",
                &[&before],
            )
            .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}

/// Records an upload grant of `blob` to `family`.
async fn insert_family_grant(
    c: &impl GenericClient,
    family: FamilyId,
    blob: BlobHash,
    size: i64,
    by: UserId,
) -> StoreResult<()> {
    // A second member uploading the same bytes makes it no one's alone.
    exec(
        c,
        "INSERT INTO blob_grants AS g (family, blob, size, uploaded_by)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (family, blob) DO UPDATE SET uploaded_by =
             CASE WHEN g.uploaded_by = excluded.uploaded_by THEN g.uploaded_by ELSE NULL END",
        &[&family.0, &blob.0, &size, &by.0],
    )
    .await
    .map(drop)
}

/// Whether `blob` already counts against `to`'s quota.
async fn holds_blob(c: &impl GenericClient, to: BlobGrantee, blob: BlobHash) -> StoreResult<bool> {
    match to {
        BlobGrantee::Family(family) => {
            exists(
                c,
                "SELECT 1 FROM blob_grants WHERE family = $1 AND blob = $2
                 UNION ALL SELECT 1 FROM snapshot_refs WHERE family = $1 AND blob = $2
                 UNION ALL SELECT 1 FROM blob_releases WHERE family = $1 AND blob = $2
                 LIMIT 1",
                &[&family.0, &blob.0],
            )
            .await
        }
        BlobGrantee::User(user) => {
            exists(
                c,
                "SELECT 1 FROM user_blob_grants WHERE user_id = $1 AND blob = $2
                 UNION ALL SELECT 1 FROM snapshot_refs WHERE user_id = $1 AND blob = $2
                 UNION ALL SELECT 1 FROM blob_releases WHERE user_id = $1 AND blob = $2
                 LIMIT 1",
                &[&user.0, &blob.0],
            )
            .await
        }
    }
}

/// Bytes counted against `to`'s quota: each blob once, whether granted, a snapshot or
/// released in its grace.
async fn held_bytes(c: &impl GenericClient, to: BlobGrantee) -> StoreResult<u64> {
    let (sql, id) = match to {
        BlobGrantee::Family(family) => (
            "SELECT coalesce(sum(size), 0)::bigint FROM (
                 SELECT blob, size FROM blob_grants WHERE family = $1
                 UNION SELECT blob, size FROM snapshot_refs WHERE family = $1
                 UNION SELECT blob, size FROM blob_releases WHERE family = $1) b",
            family.0,
        ),
        BlobGrantee::User(user) => (
            "SELECT coalesce(sum(size), 0)::bigint FROM (
                 SELECT blob, size FROM user_blob_grants WHERE user_id = $1
                 UNION SELECT blob, size FROM snapshot_refs WHERE user_id = $1
                 UNION SELECT blob, size FROM blob_releases WHERE user_id = $1) b",
            user.0,
        ),
    };
    let total = row(c, sql, &[&id]).await?.map_or(Ok(0), |r| r.try_get(0))?;
    to_unsigned(total, "blob bytes")
}
