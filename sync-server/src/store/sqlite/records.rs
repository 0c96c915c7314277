//! Account rows into records: each `*_columns!` macro names the columns its mapper
//! reads, in order, so a query and its mapper cannot drift apart.

use doran_protocol::{
    BlobHash, DeviceId, DocId, FamilyId, InviteId, PublicKey, UserId,
    model::{InviteInfo, MemberInfo, Role},
};
use rusqlite::Row;

use super::rows::{unsigned, unsigned_opt};
use crate::store::{
    DeviceRecord, FamilyRecord, StoreError, StoreResult, UserRecord, rules::StoredInviteState,
};

/// The columns [`user`] reads.
macro_rules! user_columns {
    () => {
        "id, email, nickname, avatar, user_key, personal_doc, created_at"
    };
}
pub(super) use user_columns;

/// A row of [`user_columns!`].
pub(super) fn user(row: &Row<'_>) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: UserId(row.get(0)?),
        email: row.get(1)?,
        nickname: row.get(2)?,
        avatar: row.get::<_, Option<[u8; 32]>>(3)?.map(BlobHash),
        user_key: PublicKey(row.get(4)?),
        personal_doc: DocId(row.get(5)?),
        created_at: unsigned(row, 6, "created_at")?,
    })
}

/// The columns [`device`] reads.
macro_rules! device_columns {
    () => {
        "id, user, key, client, added_at, last_seen, revoked_at"
    };
}
pub(super) use device_columns;

/// A row of [`device_columns!`].
pub(super) fn device(row: &Row<'_>) -> StoreResult<DeviceRecord> {
    Ok(DeviceRecord {
        id: DeviceId(row.get(0)?),
        user: UserId(row.get(1)?),
        key: PublicKey(row.get(2)?),
        client: row.get(3)?,
        added_at: unsigned(row, 4, "added_at")?,
        last_seen: unsigned_opt(row, 5, "last_seen")?,
        revoked_at: unsigned_opt(row, 6, "revoked_at")?,
    })
}

/// The columns [`family`] reads (of `families f`).
macro_rules! family_columns {
    () => {
        "f.id, f.host, f.created_at"
    };
}
pub(super) use family_columns;

/// A row of [`family_columns!`].
pub(super) fn family(row: &Row<'_>) -> StoreResult<FamilyRecord> {
    Ok(FamilyRecord {
        id: FamilyId(row.get(0)?),
        host: UserId(row.get(1)?),
        created_at: unsigned(row, 2, "created_at")?,
    })
}

/// The columns and joins [`member`] reads: `SELECT` them, then `WHERE` on `m`.
macro_rules! member_select {
    () => {
        "SELECT m.user, m.role, m.joined_at, u.personal_doc
         FROM members m JOIN users u ON u.id = m.user"
    };
}
pub(super) use member_select;

/// A row of [`member_select!`].
pub(super) fn member(row: &Row<'_>) -> StoreResult<MemberInfo> {
    let role: String = row.get(1)?;
    Ok(MemberInfo {
        user: UserId(row.get(0)?),
        role: parse_role(&role)?,
        joined_at: unsigned(row, 2, "joined_at")?,
        personal_doc: DocId(row.get(3)?),
    })
}

/// How a role is stored.
pub(super) fn role_str(role: Role) -> &'static str {
    match role {
        Role::Host => "host",
        Role::Member => "member",
    }
}

fn parse_role(s: &str) -> StoreResult<Role> {
    match s {
        "host" => Ok(Role::Host),
        "member" => Ok(Role::Member),
        other => Err(StoreError::Corrupt(format!("unknown role {other:?}"))),
    }
}

/// The columns and joins [`invite`] reads: `SELECT` them, then `WHERE` on `i`.
macro_rules! invite_select {
    () => {
        concat!(
            "SELECT ",
            invite_columns!(),
            " FROM invites i ",
            invite_nicknames!()
        )
    };
}
pub(super) use invite_select;

/// The columns of [`invite_select!`], which [`invite`] reads.
macro_rules! invite_columns {
    () => {
        "i.id, i.family, i.inviter, ur.nickname, i.invitee, ue.nickname, i.card,
         i.created_at, i.expires_at, i.state"
    };
}
pub(super) use invite_columns;

/// The joins that give an invite (`i`) its inviter's and invitee's nicknames.
macro_rules! invite_nicknames {
    () => {
        "JOIN users ur ON ur.id = i.inviter
         JOIN users ue ON ue.id = i.invitee"
    };
}
pub(super) use invite_nicknames;

/// A row of [`invite_select!`], with its state as seen at `now`, and its stored state.
pub(super) fn invite(row: &Row<'_>, now: u64) -> StoreResult<(InviteInfo, StoredInviteState)> {
    let expires_at = unsigned(row, 8, "expires_at")?;
    let stored = StoredInviteState::parse(&row.get::<_, String>(9)?)?;
    let info = InviteInfo {
        invite: InviteId(row.get(0)?),
        family: FamilyId(row.get(1)?),
        inviter: UserId(row.get(2)?),
        inviter_nickname: row.get(3)?,
        invitee: UserId(row.get(4)?),
        invitee_nickname: row.get(5)?,
        card: row.get(6)?,
        created_at: unsigned(row, 7, "created_at")?,
        expires_at,
        state: stored.at(expires_at, now),
    };
    Ok((info, stored))
}
