//! [`DeviceRecords`] of the [`SqliteStore`], and the import of the records older
//! builds kept in `meta`.

use doran_protocol::{DeviceId, DocId, FamilyId, Seq, UserId};
use rusqlite::{OptionalExtension, Transaction};

use super::{SqliteStore, ensure_doc, limit, rows::fixed};
use crate::store::{
    AccountRecord, DeviceRecords, FamilyRecord, Membership, NotificationRecord, Result, StoreError,
    check_i64, check_notification,
};

fn membership(tx: &Transaction<'_>, family: FamilyId) -> Result<Option<Membership>> {
    tx.prepare_cached("SELECT membership FROM families WHERE family_id = ?1")?
        .query_row([family.as_bytes().as_slice()], |row| {
            row.get::<_, String>(0)
        })
        .optional()?
        .map(|m| m.parse().map_err(StoreError::Corrupt))
        .transpose()
}

/// Sets a family's membership; returns whether it changed.
fn set_membership(
    tx: &Transaction<'_>,
    family: FamilyId,
    to: Membership,
    at_ms: i64,
) -> Result<bool> {
    let key = family.as_bytes().as_slice();
    match membership(tx, family)? {
        Some(m) if m == to => Ok(false),
        Some(_) => {
            tx.prepare_cached(
                "UPDATE families SET membership = ?2, since_ms = ?3 WHERE family_id = ?1",
            )?
            .execute((key, to.as_str(), at_ms))?;
            Ok(true)
        }
        // Nothing to keep readable (see `DeviceRecords::set_membership`).
        None if to == Membership::Removed => Ok(false),
        None => {
            tx.prepare_cached(
                "INSERT INTO families (family_id, membership, since_ms, added)
                 VALUES (?1, ?2, ?3, coalesce((SELECT max(added) FROM families), 0) + 1)",
            )?
            .execute((key, to.as_str(), at_ms))?;
            Ok(true)
        }
    }
}

fn notification(row: &rusqlite::Row<'_>) -> Result<NotificationRecord> {
    let family: Option<Vec<u8>> = row.get(1)?;
    Ok(NotificationRecord {
        id: row.get(0)?,
        family: family
            .map(|b| {
                <[u8; 16]>::try_from(b.as_slice())
                    .map(FamilyId)
                    .map_err(|_| StoreError::Corrupt("family id of a notification".into()))
            })
            .transpose()?,
        at_ms: row.get(2)?,
        body: row.get(3)?,
        read: row.get(4)?,
    })
}

impl DeviceRecords for SqliteStore {
    fn account(&self) -> Result<Option<AccountRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT user_id, device_id, email, nickname, server, personal_doc
                 FROM account WHERE id = 1",
            )?;
            let mut rows = stmt.query([])?;
            let Some(row) = rows.next()? else {
                return Ok(None);
            };
            Ok(Some(AccountRecord {
                user: UserId(fixed(row, 0, "user id")?),
                device: DeviceId(fixed(row, 1, "device id")?),
                email: row.get(2)?,
                nickname: row.get(3)?,
                server: row.get(4)?,
                personal_doc: DocId(fixed(row, 5, "doc id")?),
            }))
        })
    }

    fn set_account(&self, a: &AccountRecord) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO account (id, user_id, device_id, email, nickname, server, personal_doc)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET
                     user_id = excluded.user_id, device_id = excluded.device_id,
                     email = excluded.email, nickname = excluded.nickname,
                     server = excluded.server, personal_doc = excluded.personal_doc",
            )?
            .execute((
                a.user.as_bytes().as_slice(),
                a.device.as_bytes().as_slice(),
                &a.email,
                &a.nickname,
                &a.server,
                a.personal_doc.as_bytes().as_slice(),
            ))?;
            Ok(())
        })
    }

    fn delete_account(&self) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM account")?.execute([])?;
            Ok(())
        })
    }

    fn families(&self) -> Result<Vec<FamilyRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT family_id, membership, since_ms FROM families ORDER BY added",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let m: String = row.get(1)?;
                out.push(FamilyRecord {
                    family: FamilyId(fixed(row, 0, "family id")?),
                    membership: m.parse().map_err(StoreError::Corrupt)?,
                    since_ms: row.get(2)?,
                });
            }
            Ok(out)
        })
    }

    fn set_membership(&self, family: FamilyId, to: Membership, at_ms: i64) -> Result<bool> {
        self.write(|tx| set_membership(tx, family, to, at_ms))
    }

    fn sync_memberships(
        &self,
        listed: &[FamilyId],
        at_ms: i64,
    ) -> Result<Vec<(FamilyId, Membership)>> {
        self.write(|tx| {
            let mut changed = Vec::new();
            let members: Vec<FamilyId> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT family_id FROM families WHERE membership = 'member' ORDER BY added",
                )?;
                let mut rows = stmt.query([])?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(FamilyId(fixed(row, 0, "family id")?));
                }
                out
            };
            for family in members.into_iter().filter(|f| !listed.contains(f)) {
                set_membership(tx, family, Membership::Removed, at_ms)?;
                changed.push((family, Membership::Removed));
            }
            for &family in listed {
                if set_membership(tx, family, Membership::Member, at_ms)? {
                    changed.push((family, Membership::Member));
                }
            }
            Ok(changed)
        })
    }

    fn forget_family(&self, family: FamilyId) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM families WHERE family_id = ?1")?
                .execute([family.as_bytes().as_slice()])?;
            Ok(())
        })
    }

    fn personal_doc(&self, user: UserId) -> Result<Option<DocId>> {
        self.read(|tx| {
            let bytes: Option<Vec<u8>> = tx
                .prepare_cached("SELECT doc_id FROM personal_docs WHERE user_id = ?1")?
                .query_row([user.as_bytes().as_slice()], |row| row.get(0))
                .optional()?;
            bytes
                .map(|b| {
                    <[u8; 16]>::try_from(b.as_slice())
                        .map(DocId)
                        .map_err(|_| StoreError::Corrupt("personal doc id".into()))
                })
                .transpose()
        })
    }

    fn set_personal_doc(&self, user: UserId, doc: DocId) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO personal_docs (user_id, doc_id) VALUES (?1, ?2)
                 ON CONFLICT (user_id) DO UPDATE SET doc_id = excluded.doc_id",
            )?
            .execute((user.as_bytes().as_slice(), doc.as_bytes().as_slice()))?;
            Ok(())
        })
    }

    fn snapshot_covers(&self, doc: DocId) -> Result<Seq> {
        self.read(|tx| {
            let seq: Option<i64> = tx
                .prepare_cached("SELECT snapshot_covers FROM docs WHERE doc_id = ?1")?
                .query_row([doc.as_bytes().as_slice()], |row| row.get(0))
                .optional()?;
            u64::try_from(seq.unwrap_or(0))
                .map_err(|_| StoreError::Corrupt("negative snapshot seq".into()))
        })
    }

    fn set_snapshot_covers(&self, doc: DocId, seq: Seq) -> Result<()> {
        let seq = check_i64("snapshot seq", seq)?;
        self.write(|tx| {
            ensure_doc(tx, doc)?;
            tx.prepare_cached("UPDATE docs SET snapshot_covers = ?2 WHERE doc_id = ?1")?
                .execute((doc.as_bytes().as_slice(), seq))?;
            Ok(())
        })
    }

    fn add_notification(&self, note: &NotificationRecord, keep: usize) -> Result<bool> {
        check_notification(note)?;
        self.write(|tx| {
            let added = tx
                .prepare_cached(
                    "INSERT INTO notifications (id, family_id, at_ms, body, read)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
                )?
                .execute((
                    &note.id,
                    note.family.as_ref().map(|f| f.as_bytes().to_vec()),
                    note.at_ms,
                    &note.body,
                    note.read,
                ))?;
            if added == 0 {
                return Ok(false);
            }
            tx.prepare_cached(
                "DELETE FROM notifications WHERE id IN (
                     SELECT id FROM notifications ORDER BY at_ms DESC, id DESC
                     LIMIT -1 OFFSET ?1)",
            )?
            .execute([limit(keep)])?;
            let kept = tx
                .prepare_cached("SELECT 1 FROM notifications WHERE id = ?1")?
                .query_row([&note.id], |_| Ok(()))
                .optional()?;
            Ok(kept.is_some())
        })
    }

    fn notifications(&self, max: usize) -> Result<Vec<NotificationRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT id, family_id, at_ms, body, read FROM notifications
                 ORDER BY at_ms DESC, id DESC LIMIT ?1",
            )?;
            let mut rows = stmt.query([limit(max)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(notification(row)?);
            }
            Ok(out)
        })
    }

    fn unread_notifications(&self) -> Result<u64> {
        self.read(|tx| {
            let n: i64 = tx
                .prepare_cached("SELECT count(*) FROM notifications WHERE read = 0")?
                .query_row([], |row| row.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn mark_notifications_read(&self, id: Option<&str>) -> Result<u64> {
        self.write(|tx| {
            let n = match id {
                Some(id) => tx
                    .prepare_cached("UPDATE notifications SET read = 1 WHERE id = ?1 AND read = 0")?
                    .execute([id])?,
                None => tx
                    .prepare_cached("UPDATE notifications SET read = 1 WHERE read = 0")?
                    .execute([])?,
            };
            Ok(n as u64)
        })
    }

    fn dismiss_notification(&self, id: &str) -> Result<bool> {
        self.write(|tx| {
            let n = tx
                .prepare_cached("DELETE FROM notifications WHERE id = ?1")?
                .execute([id])?;
            Ok(n > 0)
        })
    }
}

/// Meta keys older builds kept these records under.
const LEGACY_FAMILIES: &str = "account/families";
const LEGACY_NOTIFICATIONS: &str = "engine/notifications";
const LEGACY_SNAPSHOT: &str = "sync/snapshot/";
const LEGACY_PERSONAL_DOC: &str = "sync/personal-doc/";
const LEGACY_BLOB_OWNER: &str = "blob-family/";

/// Moves the records older builds kept in `meta` into their tables, in one
/// transaction, deleting the meta rows it read (so it runs once). The old
/// notifications are dropped: they were derived, and are derived again.
pub(super) fn import_legacy_meta(tx: &Transaction<'_>, now_ms: i64) -> Result<()> {
    let rows: Vec<(String, Vec<u8>)> = {
        let mut stmt = tx.prepare(
            "SELECT key, value FROM meta WHERE key = ?1 OR key = ?2
                 OR key LIKE 'sync/%' OR key LIKE 'blob-family/%'",
        )?;
        let mut rows = stmt.query((LEGACY_FAMILIES, LEGACY_NOTIFICATIONS))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push((row.get(0)?, row.get(1)?));
        }
        out
    };
    for (key, value) in rows {
        if key == LEGACY_FAMILIES {
            let families: Vec<FamilyId> = postcard::from_bytes(&value)
                .map_err(|e| StoreError::Corrupt(format!("stored family list: {e}")))?;
            for family in families {
                set_membership(tx, family, Membership::Member, now_ms)?;
            }
        } else if let Some(doc) = key.strip_prefix(LEGACY_SNAPSHOT) {
            let (Ok(doc), Ok(seq)) = (doc.parse::<DocId>(), <[u8; 8]>::try_from(value.as_slice()))
            else {
                tracing::warn!(%key, "dropping an unreadable legacy snapshot record");
                tx.execute("DELETE FROM meta WHERE key = ?1", [&key])?;
                continue;
            };
            ensure_doc(tx, doc)?;
            tx.execute(
                "UPDATE docs SET snapshot_covers = ?2 WHERE doc_id = ?1",
                (
                    doc.as_bytes().as_slice(),
                    check_i64("snapshot seq", u64::from_be_bytes(seq))?,
                ),
            )?;
        } else if let Some(user) = key.strip_prefix(LEGACY_PERSONAL_DOC) {
            if let (Ok(user), Ok(doc)) = (
                user.parse::<UserId>(),
                <[u8; 16]>::try_from(value.as_slice()),
            ) {
                tx.execute(
                    "INSERT OR REPLACE INTO personal_docs (user_id, doc_id) VALUES (?1, ?2)",
                    (user.as_bytes().as_slice(), doc.as_slice()),
                )?;
            }
        } else if let Some(hash) = key.strip_prefix(LEGACY_BLOB_OWNER) {
            let owner = if value == b"me" {
                Some("me".to_owned())
            } else {
                <[u8; 16]>::try_from(value.as_slice())
                    .ok()
                    .map(|f| FamilyId(f).to_hex())
            };
            if let (Ok(hash), Some(owner)) = (hash.parse::<doran_protocol::BlobHash>(), owner) {
                tx.execute(
                    "UPDATE blobs SET owner = ?2 WHERE hash = ?1",
                    (hash.as_bytes().as_slice(), owner),
                )?;
            }
        }
        tx.execute("DELETE FROM meta WHERE key = ?1", [&key])?;
    }
    Ok(())
}
