//! Reconnect delays: exponential backoff with jitter, from a seeded generator so
//! tests are deterministic.

use rand::{Rng, SeedableRng, rngs::StdRng};

/// How the delay between reconnection attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The delay ceiling before the first retry, in ms.
    pub base_ms: u64,
    /// The largest delay ceiling, in ms: attempts stop growing here.
    pub max_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base_ms: 500,
            max_ms: 60_000,
        }
    }
}

/// `base · 2^attempt`, at most `max` (no overflow): the wait before retrying after
/// `attempt` failures in a row (0 for the first retry).
pub fn doubling(base: u64, attempt: u32, max: u64) -> u64 {
    base.saturating_mul(1u64.checked_shl(attempt.min(40)).unwrap_or(u64::MAX))
        .min(max)
}

/// Exponential backoff with "equal jitter": attempt `n` (from 0) waits between half
/// and all of `min(max, base · 2ⁿ)`, so many devices cut off together do not all come
/// back in the same millisecond, yet nobody retries immediately.
#[derive(Debug)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
    rng: StdRng,
}

impl Backoff {
    /// A backoff whose jitter comes from `seed`.
    pub fn new(config: BackoffConfig, seed: u64) -> Self {
        Backoff {
            config,
            attempt: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The delay before the next attempt; each call counts one more failed attempt.
    pub fn next_delay(&mut self) -> u64 {
        let ceiling = doubling(self.config.base_ms, self.attempt, self.config.max_ms).max(1);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + self.rng.random_range(0..=ceiling - half)
    }

    /// Forgets past failures (after a successful sign-in).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many attempts have failed since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}
