//! [`DeviceRecords`] of the [`MemoryStore`].

use std::collections::BTreeMap;

use doran_protocol::{DocId, FamilyId, Seq, UserId};

use super::MemoryStore;
use crate::store::{
    AccountRecord, DeviceRecords, FamilyRecord, Membership, NotificationRecord, Result,
    check_notification,
};

/// The records, as plain collections.
#[derive(Debug, Default)]
pub(super) struct Records {
    account: Option<AccountRecord>,
    /// In the order they became known.
    families: Vec<FamilyRecord>,
    personal_docs: BTreeMap<UserId, DocId>,
    notifications: BTreeMap<String, NotificationRecord>,
}

impl Records {
    fn family_mut(&mut self, family: FamilyId) -> Option<&mut FamilyRecord> {
        self.families.iter_mut().find(|r| r.family == family)
    }

    fn set(&mut self, family: FamilyId, membership: Membership, at_ms: i64) -> bool {
        match self.family_mut(family) {
            Some(r) if r.membership == membership => false,
            Some(r) => {
                r.membership = membership;
                r.since_ms = at_ms;
                true
            }
            // Nothing to keep readable (see `DeviceRecords::set_membership`).
            None if membership == Membership::Removed => false,
            None => {
                self.families.push(FamilyRecord {
                    family,
                    membership,
                    since_ms: at_ms,
                });
                true
            }
        }
    }

    /// Newest first, as the bell lists them (ties by id, like SQLite's index).
    fn sorted_notifications(&self) -> Vec<&NotificationRecord> {
        let mut all: Vec<_> = self.notifications.values().collect();
        all.sort_by(|a, b| (b.at_ms, &b.id).cmp(&(a.at_ms, &a.id)));
        all
    }
}

impl DeviceRecords for MemoryStore {
    fn account(&self) -> Result<Option<AccountRecord>> {
        Ok(self.lock()?.records.account.clone())
    }

    fn set_account(&self, account: &AccountRecord) -> Result<()> {
        self.lock()?.records.account = Some(account.clone());
        Ok(())
    }

    fn delete_account(&self) -> Result<()> {
        self.lock()?.records.account = None;
        Ok(())
    }

    fn families(&self) -> Result<Vec<FamilyRecord>> {
        Ok(self.lock()?.records.families.clone())
    }

    fn set_membership(&self, family: FamilyId, membership: Membership, at_ms: i64) -> Result<bool> {
        Ok(self.lock()?.records.set(family, membership, at_ms))
    }

    fn sync_memberships(
        &self,
        listed: &[FamilyId],
        at_ms: i64,
    ) -> Result<Vec<(FamilyId, Membership)>> {
        let mut inner = self.lock()?;
        let records = &mut inner.records;
        let mut changed = Vec::new();
        let gone: Vec<FamilyId> = records
            .families
            .iter()
            .filter(|r| r.membership == Membership::Member && !listed.contains(&r.family))
            .map(|r| r.family)
            .collect();
        for family in gone {
            records.set(family, Membership::Removed, at_ms);
            changed.push((family, Membership::Removed));
        }
        for &family in listed {
            if records.set(family, Membership::Member, at_ms) {
                changed.push((family, Membership::Member));
            }
        }
        Ok(changed)
    }

    fn forget_family(&self, family: FamilyId) -> Result<()> {
        self.lock()?.records.families.retain(|r| r.family != family);
        Ok(())
    }

    fn personal_doc(&self, user: UserId) -> Result<Option<DocId>> {
        Ok(self.lock()?.records.personal_docs.get(&user).copied())
    }

    fn set_personal_doc(&self, user: UserId, doc: DocId) -> Result<()> {
        self.lock()?.records.personal_docs.insert(user, doc);
        Ok(())
    }

    fn snapshot_covers(&self, doc: DocId) -> Result<Seq> {
        Ok(self.lock()?.docs.get(&doc).map_or(0, |d| d.snapshot_covers))
    }

    fn set_snapshot_covers(&self, doc: DocId, seq: Seq) -> Result<()> {
        crate::store::check_i64("snapshot seq", seq)?;
        self.lock()?.docs.entry(doc).or_default().snapshot_covers = seq;
        Ok(())
    }

    fn add_notification(&self, note: &NotificationRecord, keep: usize) -> Result<bool> {
        check_notification(note)?;
        let mut inner = self.lock()?;
        let records = &mut inner.records;
        if records.notifications.contains_key(&note.id) {
            return Ok(false);
        }
        records.notifications.insert(note.id.clone(), note.clone());
        let dropped: Vec<String> = records
            .sorted_notifications()
            .into_iter()
            .skip(keep)
            .map(|n| n.id.clone())
            .collect();
        for id in dropped {
            records.notifications.remove(&id);
        }
        Ok(records.notifications.contains_key(&note.id))
    }

    fn notifications(&self, limit: usize) -> Result<Vec<NotificationRecord>> {
        Ok(self
            .lock()?
            .records
            .sorted_notifications()
            .into_iter()
            .take(limit)
            .cloned()
            .collect())
    }

    fn unread_notifications(&self) -> Result<u64> {
        Ok(self
            .lock()?
            .records
            .notifications
            .values()
            .filter(|n| !n.read)
            .count() as u64)
    }

    fn mark_notifications_read(&self, id: Option<&str>) -> Result<u64> {
        let mut inner = self.lock()?;
        let mut changed = 0;
        for note in inner.records.notifications.values_mut() {
            if !note.read && id.is_none_or(|id| id == note.id) {
                note.read = true;
                changed += 1;
            }
        }
        Ok(changed)
    }

    fn dismiss_notification(&self, id: &str) -> Result<bool> {
        Ok(self.lock()?.records.notifications.remove(id).is_some())
    }
}
