//! Rate limits: a token bucket per connection, keyed buckets for directory lookups
//! and registrations, and counters of things in progress per key (connections per
//! address, uploads per account).
//!
//! Time is a parameter ([`Instant`]) so the rules are testable without sleeping.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// A token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilling at `per_second`.
    pub fn new(per_second: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            capacity: burst.max(1.0),
            per_second: per_second.max(f64::MIN_POSITIVE),
            tokens: burst.max(1.0),
            last: now,
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.try_take_n(1.0, now)
    }

    /// Takes `n` tokens (at most the burst is ever asked: more is capped to it), or
    /// says how long until they are available.
    pub fn try_take_n(&mut self, n: f64, now: Instant) -> Result<(), Duration> {
        let n = n.min(self.capacity);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= n {
            self.tokens -= n;
            Ok(())
        } else {
            // A zero rate (never refilled) waits "forever" rather than overflowing.
            let secs = (n - self.tokens) / self.per_second;
            Err(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
        }
    }
}

/// One token bucket per key (account, address), created full on first use.
///
/// A bucket left alone until it is full again is forgotten (a new one is the same), so
/// the keys held are those used within the last refill period; there are at most
/// [`MAX_KEYS`] of them.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    per_second: f64,
    burst: f64,
    /// How long an untouched bucket takes to be full again; `None` if never (a zero
    /// rate).
    full_after: Option<Duration>,
    max_keys: usize,
    buckets: Mutex<Buckets<K>>,
}

/// Keys held by a [`KeyedLimiter`] at most. Each costs ~150 bytes; a stranger with
/// many addresses (an IPv6 prefix holds billions) would otherwise grow the map
/// without end. When it is full a new key is refused (rate-limited, until the first
/// held key is forgotten) rather than let in by evicting another: eviction would
/// hand the attacker a way to refill any address's bucket. Legitimate use is far
/// below it (keys used within one refill period: an hour for registrations).
pub const MAX_KEYS: usize = 100_000;

/// The buckets, and when each may be forgotten: a min-heap by that time, so taking a
/// token drops the stale buckets in O(log n) each instead of scanning every key (a
/// scan per take once there were 10 000 keys, under this lock, let a stranger with
/// many addresses stall every session).
///
/// Each key has exactly one heap entry. Its time is when the bucket would be full
/// had it not been used since; a bucket used since is pushed back with its new time
/// when its entry comes up, so every take causes at most one such push.
#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, TokenBucket>,
    forget: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Hash + Eq + Ord + Clone> Buckets<K> {
    /// Forgets the buckets full again at `now`; returns how many heap entries it took
    /// off (each O(log n)), so tests can see that it does not scan.
    fn prune(&mut self, now: Instant, full_after: Duration) -> usize {
        let mut popped = 0;
        while let Some(Reverse((at, _))) = self.forget.peek()
            && *at <= now
        {
            let Some(Reverse((_, key))) = self.forget.pop() else {
                break;
            };
            popped += 1;
            match self.map.get(&key).map(|b| b.last.checked_add(full_after)) {
                // Used since this entry was pushed: come back when it may be full.
                Some(Some(at)) if at > now => self.forget.push(Reverse((at, key))),
                // Full again: a new bucket is the same.
                Some(Some(_)) | None => {
                    self.map.remove(&key);
                }
                // Not full within the clock's range: kept, never looked at again.
                Some(None) => {}
            }
        }
        popped
    }
}

impl<K: Hash + Eq + Ord + Clone> KeyedLimiter<K> {
    /// `per_minute` sustained, with a burst of the same size.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(f64::from(per_minute) / 60.0, f64::from(per_minute))
    }

    /// `per_hour` sustained, with a burst of the same size.
    pub fn per_hour(per_hour: u32) -> Self {
        Self::new(f64::from(per_hour) / 3600.0, f64::from(per_hour))
    }

    fn new(per_second: f64, burst: f64) -> Self {
        // As the bucket sees them (`TokenBucket::new`): a zero rate never refills.
        let secs = burst.max(1.0) / per_second.max(f64::MIN_POSITIVE);
        KeyedLimiter {
            per_second,
            burst,
            full_after: Duration::try_from_secs_f64(secs).ok(),
            max_keys: MAX_KEYS,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                forget: BinaryHeap::new(),
            }),
        }
    }

    /// The same limiter holding at most `max` keys (at least one).
    pub fn with_max_keys(mut self, max: usize) -> Self {
        self.max_keys = max.max(1);
        self
    }

    /// Takes a token for `key`, or says how long to wait. A new key when
    /// [`MAX_KEYS`] are held waits until the first of them is forgotten.
    pub fn try_take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        self.take_counting(key, now).0
    }

    /// [`try_take`](Self::try_take), and how many heap entries it took off.
    fn take_counting(&self, key: &K, now: Instant) -> (Result<(), Duration>, usize) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let popped = self
            .full_after
            .map_or(0, |full_after| buckets.prune(now, full_after));
        (self.take_locked(&mut buckets, key, now), popped)
    }

    fn take_locked(&self, buckets: &mut Buckets<K>, key: &K, now: Instant) -> Result<(), Duration> {
        if let Some(bucket) = buckets.map.get_mut(key) {
            return bucket.try_take(now);
        }
        if buckets.map.len() >= self.max_keys {
            let first = buckets.forget.peek().map(|Reverse((at, _))| *at);
            // Held keys that never refill (a zero rate) are never forgotten: retry
            // in an hour, as long as the longest refill period in use.
            let wait = first.map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(now)
            });
            return Err(wait.max(Duration::from_millis(1)));
        }
        let mut bucket = TokenBucket::new(self.per_second, self.burst, now);
        let taken = bucket.try_take(now);
        if let Some(at) = self.full_after.and_then(|d| now.checked_add(d)) {
            buckets.forget.push(Reverse((at, key.clone())));
        }
        buckets.map.insert(key.clone(), bucket);
        taken
    }

    /// How many keys are held now.
    pub fn keys(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }
}

/// Counts things in progress per key (connections per address, uploads per
/// account), at most `max` each.
#[derive(Debug)]
pub struct SlotCounter<K: Hash + Eq> {
    max: usize,
    open: Arc<Mutex<HashMap<K, usize>>>,
}

/// Holds one slot of a key; frees it on drop.
#[derive(Debug)]
pub struct Slot<K: Hash + Eq> {
    key: K,
    open: Arc<Mutex<HashMap<K, usize>>>,
}

/// Websocket connections per IP address.
pub type ConnectionCounter = SlotCounter<IpAddr>;
/// One websocket connection's slot of its address.
pub type ConnectionSlot = Slot<IpAddr>;

impl<K: Hash + Eq + Clone> SlotCounter<K> {
    /// At most `max` slots per key.
    pub fn new(max: usize) -> Self {
        SlotCounter {
            max,
            open: Arc::default(),
        }
    }

    /// A slot for `key`, or `None` if it already holds `max`.
    pub fn acquire(&self, key: K) -> Option<Slot<K>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            key,
            open: Arc::clone(&self.open),
        })
    }
}

impl<K: Hash + Eq> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3.0, t0);
        for _ in 0..3 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        let wait = b.try_take(t0).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100));
        assert_eq!(b.try_take(t0 + Duration::from_millis(100)), Ok(()));
        assert!(b.try_take(t0 + Duration::from_millis(100)).is_err());
        // Never more than the burst, however long it rested.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.try_take(later), Ok(()));
        }
        assert!(b.try_take(later).is_err());
    }

    #[test]
    fn a_bucket_of_bytes_paces_large_takes() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 3000.0, t0);
        assert_eq!(b.try_take_n(2500.0, t0), Ok(()));
        let wait = b.try_take_n(1000.0, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(b.try_take_n(1000.0, t0 + wait), Ok(()));
        // More than the burst is capped to it, so it can always pass eventually.
        assert!(b.try_take_n(1e9, t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn keyed_limits_are_independent_per_key() {
        let t0 = Instant::now();
        let l = KeyedLimiter::per_minute(2);
        assert!(l.try_take(&"a", t0).is_ok());
        assert!(l.try_take(&"a", t0).is_ok());
        assert!(l.try_take(&"a", t0).is_err());
        assert!(l.try_take(&"b", t0).is_ok());
        assert!(l.try_take(&"a", t0 + Duration::from_secs(30)).is_ok());
    }

    /// Distinct IPv6 addresses, as a stranger with a /64 has.
    fn address(i: u32) -> IpAddr {
        IpAddr::V6(std::net::Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
        ))
    }

    #[test]
    fn a_take_only_looks_at_the_buckets_due_to_be_forgotten() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let l = KeyedLimiter::per_minute(2);
        const MANY: u32 = 20_000;
        // Many addresses, each used once: no take looks at the others.
        for i in 0..MANY {
            assert_eq!(l.take_counting(&address(i), t0), (Ok(()), 0));
        }
        // One address uses its burst, and a token more half a minute later.
        let busy: IpAddr = [10, 0, 0, 1].into();
        let half = t0 + minute / 2;
        assert!(l.try_take(&busy, t0).is_ok());
        assert!(l.try_take(&busy, t0).is_ok());
        assert_eq!(l.take_counting(&busy, half), (Ok(()), 0));
        assert_eq!(l.take_counting(&address(MANY), half), (Ok(()), 0));
        assert_eq!(l.keys(), MANY as usize + 2);

        // A minute on, the buckets of the first addresses are full again and are
        // forgotten, each once, by the first take that comes; the busy address's
        // entry comes up too and is put back, as it was used since.
        let (taken, popped) = l.take_counting(&busy, t0 + minute);
        assert_eq!(popped, MANY as usize + 1);
        assert_eq!(l.keys(), 2, "the busy address and the one used later");
        assert_eq!(l.take_counting(&address(0), t0 + minute), (Ok(()), 0));
        // The busy address's bucket was kept as it was: half a minute of refill is
        // one token, not a full burst of two.
        assert_eq!(taken, Ok(()));
        assert!(l.try_take(&busy, t0 + minute).is_err());
    }

    #[test]
    fn a_limiter_holds_at_most_its_cap_of_keys() {
        let t0 = Instant::now();
        let l = KeyedLimiter::per_minute(2).with_max_keys(3);
        for i in 0..3 {
            assert!(l.try_take(&address(i), t0).is_ok());
        }
        // A new key waits until the first held one is forgotten; held keys go on.
        let later = t0 + Duration::from_secs(20);
        assert_eq!(l.try_take(&address(3), later), Err(Duration::from_secs(40)));
        assert!(l.try_take(&address(0), later).is_ok());
        assert_eq!(l.keys(), 3);
        // Once the buckets of keys 1 and 2 are full again there is room.
        let minute = t0 + Duration::from_secs(60);
        assert!(l.try_take(&address(3), minute).is_ok());
        assert!(l.try_take(&address(4), minute).is_ok());
        assert_eq!(l.keys(), 3);
        assert!(l.try_take(&address(5), minute).is_err());
    }

    #[test]
    fn a_zero_limit_allows_one_take_per_key_and_forgets_nothing() {
        let t0 = Instant::now();
        let l = KeyedLimiter::per_hour(0);
        assert!(l.try_take(&"a", t0).is_ok());
        assert!(l.try_take(&"a", t0 + Duration::from_secs(86_400)).is_err());
        assert!(l.try_take(&"b", t0).is_ok());
        assert_eq!(l.keys(), 2);
    }

    #[test]
    fn connection_slots_are_counted_per_address_and_freed_on_drop() {
        let c = ConnectionCounter::new(2);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 1].into();
        let a = c.acquire(ip).unwrap();
        let _b = c.acquire(ip).unwrap();
        assert!(c.acquire(ip).is_none());
        assert!(c.acquire(other).is_some());
        drop(a);
        assert!(c.acquire(ip).is_some());
    }
}
