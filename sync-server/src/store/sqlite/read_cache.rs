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
//! Each kind keeps at most [`KEPT`] answers, the least recently used going first, and
//! an invite list only up to [`LIST_BYTES`] (a longer one is read each time): at most
//! 32 MiB of lists, whoever fills their invite queues. Answers a write made stale are
//! let go at the next ask, not kept until evicted.

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

use doran_protocol::{BlobHash, DeviceId, InviteInfo, UserId};
use hashlink::LruCache;

use crate::store::{DeviceRecord, StoreResult};

/// Answers kept of each kind at most.
pub(super) const KEPT: usize = 4096;

/// The largest invite list kept, counting its cards, nicknames and 64 bytes an
/// invite: a list of a few invites (what a device sees) is a few hundred bytes.
pub(super) const LIST_BYTES: usize = 8 * 1024;

/// A download's check: the device's record and whether its user may read the blob.
pub(super) type DeviceAndGrant = Option<(DeviceRecord, bool)>;

/// An answer and what it is good for.
#[derive(Debug)]
struct Kept<T> {
    /// Good for a `now` in `from..until` (unix ms; the whole range for a grant).
    from: u64,
    until: u64,
    value: T,
}

/// The answers of one kind, all read under one value of the write counter.
#[derive(Debug)]
struct Answers<K, T> {
    written: u64,
    kept: LruCache<K, Kept<T>>,
}

impl<K: std::hash::Hash + Eq, T> Answers<K, T> {
    fn new() -> Mutex<Self> {
        Mutex::new(Answers {
            written: 0,
            kept: LruCache::new(KEPT),
        })
    }

    /// Whether the answers are of the counter's value `written`; lets go of every
    /// answer if it moved past theirs. An ask that read the counter before a later
    /// ask moved it (an older value) finds none and drops none.
    fn as_of(&mut self, written: u64) -> bool {
        if written > self.written {
            self.kept.clear();
            self.written = written;
        }
        written == self.written
    }
}

/// Answers of reads, good while the store's write counter is unchanged.
#[derive(Debug)]
pub(super) struct ReadCache {
    /// Write transactions committed (or tried) since the store opened, appends aside.
    written: AtomicU64,
    invites: Mutex<Answers<UserId, Vec<InviteInfo>>>,
    grants: Mutex<Answers<(DeviceId, BlobHash), DeviceAndGrant>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for ReadCache {
    fn default() -> Self {
        ReadCache {
            written: AtomicU64::new(0),
            invites: Answers::new(),
            grants: Answers::new(),
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
            let bytes: usize = list
                .iter()
                .map(|i| 64 + i.card.len() + i.inviter_nickname.len() + i.invitee_nickname.len())
                .sum();
            // Listed are the invites unexpired at `now`; the first to expire ends it.
            let until = list.iter().map(|i| i.expires_at).min().unwrap_or(u64::MAX);
            (bytes <= LIST_BYTES).then_some(until)
        })
    }

    /// A download's device and grant, from memory or from `read`.
    pub(super) fn device_and_grant(
        &self,
        device: DeviceId,
        blob: BlobHash,
        read: impl FnOnce() -> StoreResult<DeviceAndGrant>,
    ) -> StoreResult<DeviceAndGrant> {
        self.kept_or_read(&self.grants, (device, blob), 0, read, |_| Some(u64::MAX))
    }

    /// Answers given from memory, and read, so far.
    pub(super) fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The answer kept for `key` at `now`, or `read`'s, kept if `until` gives it an
    /// end (`None`: not kept).
    fn kept_or_read<K: std::hash::Hash + Eq, T: Clone>(
        &self,
        answers: &Mutex<Answers<K, T>>,
        key: K,
        now: u64,
        read: impl FnOnce() -> StoreResult<T>,
        until: impl FnOnce(&T) -> Option<u64>,
    ) -> StoreResult<T> {
        // Read before the store is: see the module's doc.
        let written = self.written.load(Ordering::Acquire);
        {
            let mut answers = answers.lock().unwrap_or_else(|p| p.into_inner());
            if answers.as_of(written)
                && let Some(kept) = answers.kept.get(&key)
                && (kept.from..kept.until).contains(&now)
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(kept.value.clone());
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let value = read()?;
        let Some(until) = until(&value) else {
            return Ok(value);
        };
        let mut answers = answers.lock().unwrap_or_else(|p| p.into_inner());
        // Not if a write ended while it was read: it may be older than that write.
        if self.written.load(Ordering::Acquire) == written && answers.as_of(written) {
            let kept = Kept {
                from: now,
                until,
                value: value.clone(),
            };
            answers.kept.insert(key, kept);
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
    fn an_answer_read_after_a_write_outlives_one_read_across_it() {
        let cache = ReadCache::default();
        let device = DeviceId([4; 16]);
        let blob = BlobHash([7; 32]);
        let record = |client: &str| DeviceRecord {
            id: device,
            user: ME,
            key: doran_protocol::PublicKey([1; 32]),
            client: client.into(),
            added_at: 1,
            last_seen: None,
            revoked_at: None,
        };
        cache
            .device_and_grant(device, blob, || {
                // A write ends while this read runs, and another ask after it reads
                // what the write left.
                cache.written();
                cache.device_and_grant(device, blob, || Ok(Some((record("new"), true))))?;
                Ok(Some((record("old"), false)))
            })
            .unwrap();
        let kept = cache
            .device_and_grant(device, blob, || panic!("kept"))
            .unwrap();
        assert_eq!(kept, Some((record("new"), true)));
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
        assert_eq!(cache.grants.lock().unwrap().kept.len(), KEPT);
        // Made stale by a write, they are let go at the next ask.
        cache.written();
        cache
            .device_and_grant(DeviceId([9; 16]), BlobHash([0; 32]), || Ok(None))
            .unwrap();
        assert_eq!(cache.grants.lock().unwrap().kept.len(), 1);
    }

    #[test]
    fn a_long_invite_list_is_read_each_time() {
        let cache = ReadCache::default();
        let mut big = invite(1, 1_000);
        big.card = vec![0; LIST_BYTES];
        for _ in 0..2 {
            assert_eq!(
                cache
                    .invites(ME, 5, || Ok(vec![big.clone()]))
                    .unwrap()
                    .len(),
                1
            );
        }
        assert_eq!(cache.stats(), (0, 2));
        let small = || Ok(vec![invite(1, 1_000), invite(2, 1_000)]);
        for _ in 0..2 {
            assert_eq!(cache.invites(ME, 5, small).unwrap().len(), 2);
        }
        assert_eq!(cache.stats(), (1, 3));
    }
}
