//! [`ReadCache`]: the answers of the relay's two most frequent account reads, kept
//! while nothing they read was written.
//!
//! A read transaction that begins after the writer committed finds its connection's
//! page cache emptied (SQLite drops it when the WAL changed), and under load the
//! appender commits every few milliseconds. So an invite list (`ListInvites`) and a
//! download's device-and-grant check read their pages back from the file nearly every
//! time: a quarter of the relay's instructions in `seed-stress`'s mixed run
//! (`docs/benchmarks.md`), for answers that change only when an account, a family, an
//! invite, a device or a grant does.
//!
//! **When an answer is good.** Every write transaction but a group of appends bumps a
//! counter once it has committed (`SqliteStore::write`); an answer is kept with the
//! counter's value read *before* its read transaction began, and is given again only
//! while the counter still has that value. A write that committed before the read began
//! bumped the counter first or is seen by the read; one that commits later bumps it
//! after, so the answer is dropped — never an answer older than a write that finished.
//! Appends (`LogStore::append_batch`) write only `logs` and `chunks`, which neither read
//! looks at, so the documents' traffic leaves the answers in place. The store is one
//! process's (SQLite is the relay alone; relays sharing PostgreSQL keep no such
//! answers). An invite list is also good only while none of its invites has expired
//! and for a `now` no earlier than the one it was read at (`invites_seen_by` filters
//! by `now`).
//!
//! Each kind keeps at most [`KEPT`] answers, the least recently used going first.

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

use doran_protocol::{BlobHash, DeviceId, InviteInfo, UserId};
use hashlink::LruCache;

use crate::store::{DeviceRecord, StoreResult};

/// Answers kept of each kind at most.
pub(super) const KEPT: usize = 4096;

/// A download's check: the device's record and whether its user may read the blob.
pub(super) type DeviceAndGrant = Option<(DeviceRecord, bool)>;

/// An answer and what it is good for.
#[derive(Debug)]
struct Kept<T> {
    /// The write counter before it was read.
    written: u64,
    /// Good for a `now` in `from..until` (unix ms; the whole range for a grant).
    from: u64,
    until: u64,
    value: T,
}

/// Answers of reads, good while the store's write counter is unchanged.
#[derive(Debug)]
pub(super) struct ReadCache {
    /// Write transactions committed (or tried) since the store opened, appends aside.
    written: AtomicU64,
    invites: Mutex<LruCache<UserId, Kept<Vec<InviteInfo>>>>,
    grants: Mutex<LruCache<(DeviceId, BlobHash), Kept<DeviceAndGrant>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for ReadCache {
    fn default() -> Self {
        ReadCache {
            written: AtomicU64::new(0),
            invites: Mutex::new(LruCache::new(KEPT)),
            grants: Mutex::new(LruCache::new(KEPT)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

impl ReadCache {
    /// A write transaction ended: every answer kept before it is stale. Called after
    /// the commit (or the rollback), never before.
    pub(super) fn written(&self) {
        self.written.fetch_add(1, Ordering::AcqRel);
    }

    /// `user`'s invite list at `now`, from memory or from `read`.
    pub(super) fn invites(
        &self,
        user: UserId,
        now: u64,
        read: impl FnOnce() -> StoreResult<Vec<InviteInfo>>,
    ) -> StoreResult<Vec<InviteInfo>> {
        self.kept_or_read(&self.invites, user, now, read, |list| {
            // Listed are the invites unexpired at `now`; the first to expire ends it.
            list.iter().map(|i| i.expires_at).min().unwrap_or(u64::MAX)
        })
    }

    /// A download's device and grant, from memory or from `read`.
    pub(super) fn device_and_grant(
        &self,
        device: DeviceId,
        blob: BlobHash,
        read: impl FnOnce() -> StoreResult<DeviceAndGrant>,
    ) -> StoreResult<DeviceAndGrant> {
        self.kept_or_read(&self.grants, (device, blob), 0, read, |_| u64::MAX)
    }

    /// Answers given from memory, and read, so far.
    pub(super) fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn kept_or_read<K: std::hash::Hash + Eq, T: Clone>(
        &self,
        map: &Mutex<LruCache<K, Kept<T>>>,
        key: K,
        now: u64,
        read: impl FnOnce() -> StoreResult<T>,
        until: impl FnOnce(&T) -> u64,
    ) -> StoreResult<T> {
        // Read before the store is: see the module's doc.
        let written = self.written.load(Ordering::Acquire);
        {
            let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(kept) = map.get(&key)
                && kept.written == written
                && (kept.from..kept.until).contains(&now)
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(kept.value.clone());
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let value = read()?;
        let kept = Kept {
            written,
            from: now,
            until: until(&value),
            value: value.clone(),
        };
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        // Not over a newer answer: a write ended while this one was read.
        if self.written.load(Ordering::Acquire) == written {
            map.insert(key, kept);
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use doran_protocol::{FamilyId, InviteId, InviteState};

    fn invite(id: u8, expires_at: u64) -> InviteInfo {
        InviteInfo {
            invite: InviteId([id; 16]),
            family: FamilyId([1; 16]),
            inviter: UserId([2; 16]),
            inviter_nickname: "엄마".into(),
            invitee: UserId([3; 16]),
            invitee_nickname: "아들".into(),
            card: Vec::new(),
            created_at: 10,
            expires_at,
            state: InviteState::Pending,
        }
    }

    const ME: UserId = UserId([3; 16]);

    #[test]
    fn an_answer_is_given_again_until_a_write() {
        let cache = ReadCache::default();
        let list = || Ok(vec![invite(1, 1_000)]);
        assert_eq!(cache.invites(ME, 100, list).unwrap().len(), 1);
        let again = cache.invites(ME, 101, || panic!("read again")).unwrap();
        assert_eq!(again, vec![invite(1, 1_000)]);
        assert_eq!(cache.stats(), (1, 1));
        cache.written();
        let after = cache.invites(ME, 102, || Ok(Vec::new())).unwrap();
        assert!(after.is_empty(), "read again after a write");
        assert_eq!(cache.stats(), (1, 2));
    }

    #[test]
    fn an_invite_list_ends_with_its_first_expiry_and_is_not_for_an_earlier_now() {
        let cache = ReadCache::default();
        cache
            .invites(ME, 100, || Ok(vec![invite(1, 500), invite(2, 300)]))
            .unwrap();
        assert_eq!(cache.invites(ME, 299, || panic!("kept")).unwrap().len(), 2);
        let at_expiry = cache.invites(ME, 300, || Ok(vec![invite(1, 500)])).unwrap();
        assert_eq!(
            at_expiry.len(),
            1,
            "the list is read again when an invite expires"
        );
        // Kept from 300 on: an earlier `now` could list more, so it is read.
        let earlier = cache
            .invites(ME, 299, || Ok(vec![invite(1, 500), invite(2, 300)]))
            .unwrap();
        assert_eq!(earlier.len(), 2);
    }

    #[test]
    fn a_read_overlapping_a_write_is_not_kept() {
        let cache = ReadCache::default();
        let blob = BlobHash([7; 32]);
        let device = DeviceId([4; 16]);
        cache
            .device_and_grant(device, blob, || {
                // The write ends while the read runs.
                cache.written();
                Ok(None)
            })
            .unwrap();
        let read = cache.device_and_grant(device, blob, || Ok(None));
        assert!(read.is_ok());
        assert_eq!(cache.stats(), (0, 2), "nothing was kept");
    }

    #[test]
    fn failed_reads_are_not_kept() {
        let cache = ReadCache::default();
        let failed = cache.invites(ME, 1, || Err(StoreError::Poisoned));
        assert!(failed.is_err());
        assert!(cache.invites(ME, 1, || Ok(Vec::new())).unwrap().is_empty());
        assert_eq!(cache.stats(), (0, 2));
    }

    #[test]
    fn answers_are_bounded() {
        let cache = ReadCache::default();
        for i in 0..=KEPT {
            let device = DeviceId((i as u128).to_le_bytes());
            cache
                .device_and_grant(device, BlobHash([0; 32]), || Ok(None))
                .unwrap();
        }
        assert_eq!(cache.grants.lock().unwrap().len(), KEPT);
    }
}
