//! Turns per key (blob downloads per client address): at most `max` at once, and a
//! newcomer past it waits a while for its turn instead of being refused at once.
//!
//! A download in progress pins what it has read and not yet sent (up to a read
//! piece), and signed downloads are cheap to start: without a cap, one address
//! opening thousands of them held that memory until each stalled out. Waiting rather
//! than refusing keeps an honest burst whole — a gallery asking for a screenful of
//! thumbnails at once from behind a household's NAT — while a waiting request holds
//! only its connection (which the relay's connection caps bound). Waiters too are
//! capped per key, so a flood is refused at once rather than queued.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many may wait per key, as a multiple of how many may go at once.
const WAITING_PER_TURN: usize = 4;

/// Per-key turns; see the module.
#[derive(Debug)]
pub struct Turns<K: Hash + Eq> {
    max: usize,
    keys: Arc<Mutex<HashMap<K, Queue>>>,
}

/// One key's semaphore and how many hold or wait for one of its turns (the entry is
/// dropped when none do, so idle addresses cost nothing).
#[derive(Debug)]
struct Queue {
    turns: Arc<Semaphore>,
    interested: usize,
}

/// A turn of a key, given back on drop.
#[derive(Debug)]
pub struct Turn<K: Hash + Eq> {
    // Declared first, so dropped first: the permit goes back before the interest
    // that may remove the key's entry.
    _permit: OwnedSemaphorePermit,
    _interest: Interest<K>,
    key: K,
}

impl<K: Hash + Eq> Turn<K> {
    /// The key this is a turn of.
    pub fn key(&self) -> &K {
        &self.key
    }
}

/// Counts a holder or a waiter of a key; forgets the key when the last one goes.
#[derive(Debug)]
struct Interest<K: Hash + Eq> {
    key: Option<K>,
    keys: Arc<Mutex<HashMap<K, Queue>>>,
}

impl<K: Hash + Eq> Drop for Interest<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = keys.get_mut(&key) {
            q.interested = q.interested.saturating_sub(1);
            if q.interested == 0 {
                keys.remove(&key);
            }
        }
    }
}

impl<K: Hash + Eq + Clone> Turns<K> {
    /// At most `max` turns per key at once (at least one).
    pub fn new(max: usize) -> Self {
        Turns {
            max: max.max(1),
            keys: Arc::default(),
        }
    }

    /// A turn of `key`, waiting up to `patience` for one; `None` if none came, or if
    /// too many wait already.
    pub async fn wait(&self, key: K, patience: Duration) -> Option<Turn<K>> {
        let turns = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            let q = keys.entry(key.clone()).or_insert_with(|| Queue {
                turns: Arc::new(Semaphore::new(self.max)),
                interested: 0,
            });
            if q.interested >= self.max.saturating_mul(1 + WAITING_PER_TURN) {
                return None;
            }
            q.interested += 1;
            Arc::clone(&q.turns)
        };
        let interest = Interest {
            key: Some(key.clone()),
            keys: Arc::clone(&self.keys),
        };
        let permit = match turns.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(patience, turns.acquire_owned())
                .await
                .ok()?
                .ok()?,
        };
        Some(Turn {
            _permit: permit,
            _interest: interest,
            key,
        })
    }

    /// How many keys hold or wait for a turn now.
    pub fn keys(&self) -> usize {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::ZERO;

    #[tokio::test]
    async fn a_key_gets_its_turns_then_waits_for_one_to_end() {
        let turns = Turns::new(2);
        let a = turns.wait("a", NOW).await.expect("first");
        let _b = turns.wait("a", NOW).await.expect("second");
        assert!(turns.wait("a", NOW).await.is_none(), "a third finds none");
        assert!(turns.wait("b", NOW).await.is_some(), "another key is apart");

        // A waiter gets the turn one gives back.
        let waiting = turns.wait("a", Duration::from_secs(30));
        let (got, ()) = tokio::join!(waiting, async move { drop(a) });
        assert!(got.is_some());
    }

    #[tokio::test]
    async fn keys_are_forgotten_once_nobody_holds_or_waits() {
        let turns = Turns::new(1);
        let held = turns.wait("a", NOW).await.expect("a turn");
        assert!(turns.wait("a", NOW).await.is_none(), "one that gave up");
        assert_eq!(turns.keys(), 1);
        drop(held);
        assert_eq!(turns.keys(), 0);
    }

    #[tokio::test]
    async fn too_many_waiting_are_refused_at_once() {
        let turns = Arc::new(Turns::new(1));
        let _held = turns.wait(1u8, NOW).await.expect("a turn");
        let mut waiters = Vec::new();
        for _ in 0..WAITING_PER_TURN {
            let turns = Arc::clone(&turns);
            waiters.push(tokio::spawn(async move {
                turns.wait(1u8, Duration::from_secs(30)).await.is_some()
            }));
        }
        // Let them all queue.
        while turns.keys.lock().expect("lock")[&1].interested < 1 + WAITING_PER_TURN {
            tokio::task::yield_now().await;
        }
        let started = tokio::time::Instant::now();
        assert!(turns.wait(1u8, Duration::from_secs(30)).await.is_none());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "refused, not queued"
        );
        for w in waiters {
            w.abort();
        }
    }
}
