//! Rate limits: a token bucket per connection, keyed buckets for directory lookups
//! and registrations, and counters of things in progress per key (connections per
//! address, uploads per account).
//!
//! Time is a parameter ([`Instant`]) so the rules are testable without sleeping.

use std::{
    collections::HashMap,
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
            Err(Duration::from_secs_f64((n - self.tokens) / self.per_second))
        }
    }
}

/// One token bucket per key (account, address), created full on first use.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

/// Above this many keys, taking a token first drops the buckets that are full again.
const PRUNE_ABOVE: usize = 10_000;

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// `per_minute` sustained, with a burst of the same size.
    pub fn per_minute(per_minute: u32) -> Self {
        KeyedLimiter {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(per_minute),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `per_hour` sustained, with a burst of the same size.
    pub fn per_hour(per_hour: u32) -> Self {
        KeyedLimiter {
            per_second: f64::from(per_hour) / 3600.0,
            burst: f64::from(per_hour),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how long to wait.
    pub fn try_take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            let full_after = Duration::from_secs_f64(self.burst / self.per_second);
            buckets.retain(|_, b| now.saturating_duration_since(b.last) < full_after);
        }
        buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(self.per_second, self.burst, now))
            .try_take(now)
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
