//! How fast an upload must go to keep its slot.
//!
//! Two rules, so trickling bodies cannot hold the relay's upload slots:
//!
//! - **The minimum rate** ([`Pace`]): after its grace, an upload must keep an average
//!   of `upload_min_bytes_per_second` (4 KiB/s by default, a poor mobile link), or it
//!   is cut off (`too_slow`).
//! - **Giving way** ([`InFlight`]): when every slot of the relay is taken, a new upload
//!   cuts one that is at least [`GIVE_WAY_AGE`] old (or past its grace, if shorter)
//!   and brought fewer than `upload_yield_bytes_per_second` (64 KiB/s by default) over
//!   its last 15–20 s (or since it started), unless it is about to finish
//!   ([`NEAR_DONE`] at its rate). Of those, it cuts one of the address holding the most
//!   uploads in progress, the slowest there. An upload kept just above the minimum rate
//!   otherwise held its slot for as long as a largest blob takes at that rate (32 MiB at
//!   4 KiB/s: over two hours), and a few dozen free accounts held them all. The rate is
//!   measured over a recent window, not since the start, so a burst first does not buy
//!   hours of trickling; an upload sending nothing is a candidate after a few seconds,
//!   not after its whole grace. An attacker at a few addresses cuts its own uploads
//!   first; one with as many addresses as slots can still make honest uploads slower
//!   than the yield rate start again (their devices retry), but holding the slots takes
//!   it the yield rate on each, all the time.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use doran_protocol::ErrorCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

/// The slowest upload the relay waits for: after `grace`, the body must keep up an
/// average of `rate` bytes per second (else `too_slow`, HTTP 408).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    started: Instant,
    grace: Duration,
    /// Bytes per second; 0 switches the check off.
    rate: u64,
}

impl Pace {
    /// Starts now.
    pub fn new(grace_secs: u64, rate: u64) -> Self {
        Pace {
            started: Instant::now(),
            grace: Duration::from_secs(grace_secs),
            rate,
        }
    }

    /// By when more than `received` bytes must have arrived.
    pub fn deadline(&self, received: u64) -> Option<Instant> {
        if self.rate == 0 {
            return None;
        }
        let allowed = self.grace + Duration::from_secs_f64(received as f64 / self.rate as f64);
        Some(self.started + allowed)
    }

    /// The refusal of an upload that fell below the rate.
    pub fn too_slow(&self) -> ApiError {
        ApiError::new(
            ErrorCode::TooSlow,
            format!("the upload is slower than {} bytes per second", self.rate),
        )
    }
}

/// How old an upload must be before it can be made to give way (unless its grace is
/// shorter): long enough to show its rate, short enough that uploads sending nothing
/// cannot hold the slots through their whole grace.
pub const GIVE_WAY_AGE: Duration = Duration::from_secs(3);
/// An upload that would finish within this at its recent rate is never cut: cutting
/// it would waste what it sent for a few seconds' wait.
pub const NEAR_DONE: Duration = Duration::from_secs(10);
/// How often an upload's progress is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: the recent rate is measured from the oldest, 15–20 s back.
const SAMPLES: usize = 4;

/// The uploads in progress, so a new one can make the slowest give way.
#[derive(Debug, Default)]
pub struct InFlight {
    next: AtomicU64,
    uploads: Mutex<HashMap<u64, Arc<Progress>>>,
}

/// One upload's progress, as the relay's worker sees its body arrive.
#[derive(Debug)]
pub struct Progress {
    /// Past this, the upload may be made to give way.
    eligible_from: Instant,
    /// The client's address (as the per-address limits key it).
    address: IpAddr,
    /// The length the request declared, if it did.
    declared: Option<u64>,
    samples: Mutex<Samples>,
    /// Cancelled when the upload must give way.
    cut: CancellationToken,
}

/// `(when, bytes received by then)`, oldest first, and the latest count.
#[derive(Debug)]
struct Samples {
    ring: Vec<(Instant, u64)>,
    received: u64,
}

impl Progress {
    /// Notes that `received` bytes have arrived by `now`.
    pub fn record(&self, received: u64, now: Instant) {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.received = received;
        let newest = s.ring.last().map(|(at, _)| *at);
        if newest.is_none_or(|at| now.saturating_duration_since(at) >= SAMPLE_EVERY) {
            if s.ring.len() == SAMPLES {
                s.ring.remove(0);
            }
            s.ring.push((now, received));
        }
    }

    /// Bytes per second since the oldest sample kept, and the bytes received.
    fn recent_rate(&self, now: Instant) -> (f64, u64) {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let Some((since, then)) = s.ring.first().copied() else {
            return (0.0, s.received);
        };
        let secs = now.saturating_duration_since(since).as_secs_f64();
        if secs <= 0.0 {
            return (f64::INFINITY, s.received);
        }
        (s.received.saturating_sub(then) as f64 / secs, s.received)
    }

    /// Whether what is left of its declared length would come within [`NEAR_DONE`]
    /// at `rate`.
    fn near_done(&self, rate: f64, received: u64) -> bool {
        self.declared.is_some_and(|len| {
            len.saturating_sub(received) as f64 <= rate * NEAR_DONE.as_secs_f64()
        })
    }

    /// Resolves when the upload must give way.
    pub async fn must_give_way(&self) {
        self.cut.cancelled().await;
    }

    /// The refusal of an upload that gave way.
    pub fn gave_way(rate: u64) -> ApiError {
        ApiError::new(
            ErrorCode::TooSlow,
            format!(
                "the relay's upload slots were all taken and this upload brought fewer than \
                 {rate} bytes per second: try again"
            ),
        )
    }
}

/// An upload's place in [`InFlight`]; leaves it on drop.
#[derive(Debug)]
pub struct Registered {
    id: u64,
    in_flight: Arc<InFlight>,
    /// The upload's progress.
    pub progress: Arc<Progress>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.in_flight
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl InFlight {
    /// Registers an upload from `address` of `declared` bytes (if it said) that started
    /// now, with a grace of `grace`.
    pub fn register(
        self: &Arc<Self>,
        grace: Duration,
        address: IpAddr,
        declared: Option<u64>,
    ) -> Registered {
        self.register_at(grace, address, declared, Instant::now())
    }

    fn register_at(
        self: &Arc<Self>,
        grace: Duration,
        address: IpAddr,
        declared: Option<u64>,
        now: Instant,
    ) -> Registered {
        let progress = Arc::new(Progress {
            eligible_from: now + grace.min(GIVE_WAY_AGE),
            address,
            declared,
            samples: Mutex::new(Samples {
                ring: vec![(now, 0)],
                received: 0,
            }),
            cut: CancellationToken::new(),
        });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::clone(&progress));
        Registered {
            id,
            in_flight: Arc::clone(self),
            progress,
        }
    }

    /// How many uploads are in progress.
    pub fn len(&self) -> usize {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no upload is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes an upload give way if one may (see the module): of those old enough,
    /// slower than `below` bytes per second and not about to finish, one of the address
    /// holding the most uploads, the slowest there. Whether one did. One that gave way
    /// is no longer a candidate (its slot frees as its body loop ends).
    pub fn cut_slowest(&self, below: u64, now: Instant) -> bool {
        if below == 0 {
            return false;
        }
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        // At most `max_concurrent_uploads` entries: a scan is cheap.
        let mut per_address: HashMap<IpAddr, usize> = HashMap::new();
        for p in uploads.values() {
            *per_address.entry(p.address).or_default() += 1;
        }
        let chosen = uploads
            .iter()
            .filter(|(_, p)| now >= p.eligible_from)
            .filter_map(|(id, p)| {
                let (rate, received) = p.recent_rate(now);
                let slow = rate < below as f64 && !p.near_done(rate, received);
                slow.then(|| (*id, rate, per_address.get(&p.address).copied().unwrap_or(0)))
            })
            .max_by(|a, b| a.2.cmp(&b.2).then(b.1.total_cmp(&a.1)));
        let Some((id, rate, _)) = chosen else {
            return false;
        };
        if let Some(p) = uploads.remove(&id) {
            tracing::info!(rate = rate as u64, address = %p.address, "a slow upload gave way to a new one");
            p.cut.cancel();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 9));

    #[test]
    fn an_upload_must_keep_up_the_minimum_rate_after_its_grace() {
        let pace = Pace::new(10, 1000);
        let at = |received| {
            pace.deadline(received)
                .map(|d| d.duration_since(pace.started))
        };
        assert_eq!(at(0), Some(Duration::from_secs(10)));
        assert_eq!(at(5_000), Some(Duration::from_secs(15)));
        assert_eq!(Pace::new(10, 0).deadline(0), None, "0 switches it off");
        assert_eq!(pace.too_slow().code, ErrorCode::TooSlow);
    }

    /// Feeds `p` `rate` bytes per second, a piece a second, for `secs` from `t0`.
    fn feed(p: &Progress, t0: Instant, from: u64, rate: u64, secs: u64) -> u64 {
        let mut total = from;
        for s in 1..=secs {
            total += rate;
            p.record(total, t0 + Duration::from_secs(s));
        }
        total
    }

    #[test]
    fn the_slowest_upload_past_its_grace_gives_way() {
        let in_flight = Arc::new(InFlight::default());
        let t0 = Instant::now();
        let fast = in_flight.register_at(Duration::from_secs(10), HOME, None, t0);
        let slow = in_flight.register_at(Duration::from_secs(10), HOME, None, t0);
        let slower = in_flight.register_at(Duration::from_secs(10), HOME, None, t0);
        feed(&fast.progress, t0, 0, 200_000, 30);
        feed(&slow.progress, t0, 0, 20_000, 30);
        feed(&slower.progress, t0, 0, 8_000, 30);
        let now = t0 + Duration::from_secs(30);

        assert!(!in_flight.cut_slowest(0, now), "0 never cuts");
        assert!(
            !in_flight.cut_slowest(5_000, now),
            "none is below 5 000 B/s"
        );
        assert!(in_flight.cut_slowest(64_000, now));
        assert!(slower.progress.cut.is_cancelled(), "the slowest gives way");
        assert!(!slow.progress.cut.is_cancelled());
        assert!(in_flight.cut_slowest(64_000, now), "then the next slowest");
        assert!(slow.progress.cut.is_cancelled());
        assert!(!in_flight.cut_slowest(64_000, now), "the fast one never");
        assert!(!fast.progress.cut.is_cancelled());
    }

    #[test]
    fn a_new_upload_gives_way_only_once_it_could_show_its_rate() {
        let in_flight = Arc::new(InFlight::default());
        let t0 = Instant::now();
        let young = in_flight.register_at(Duration::from_secs(10), HOME, None, t0);
        let before = t0 + GIVE_WAY_AGE - Duration::from_millis(1);
        assert!(!in_flight.cut_slowest(64_000, before));
        // Sending nothing, it does not keep its slot through its whole grace.
        assert!(in_flight.cut_slowest(64_000, t0 + GIVE_WAY_AGE));
        assert!(young.progress.cut.is_cancelled());
        // A grace shorter than that age is the limit.
        let short = in_flight.register_at(Duration::from_secs(1), HOME, None, t0);
        assert!(in_flight.cut_slowest(64_000, t0 + Duration::from_secs(1)));
        assert!(short.progress.cut.is_cancelled());
    }

    #[test]
    fn the_address_holding_the_most_uploads_gives_way_first() {
        let in_flight = Arc::new(InFlight::default());
        let t0 = Instant::now();
        let crowd = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
        let grace = Duration::from_secs(10);
        // An honest upload at 8 KB/s, three of one address at 30 KB/s.
        let honest = in_flight.register_at(grace, HOME, None, t0);
        feed(&honest.progress, t0, 0, 8_000, 30);
        let theirs: Vec<_> = (0..3)
            .map(|_| in_flight.register_at(grace, crowd, None, t0))
            .collect();
        for p in &theirs {
            feed(&p.progress, t0, 0, 30_000, 30);
        }
        let now = t0 + Duration::from_secs(30);
        for _ in 0..2 {
            assert!(in_flight.cut_slowest(64_000, now));
            assert!(!honest.progress.cut.is_cancelled(), "theirs go first");
        }
        // One each: now the slowest goes.
        assert!(in_flight.cut_slowest(64_000, now));
        assert!(honest.progress.cut.is_cancelled());
        assert_eq!(
            theirs
                .iter()
                .filter(|p| p.progress.cut.is_cancelled())
                .count(),
            2
        );
    }

    #[test]
    fn an_upload_about_to_finish_is_spared() {
        let in_flight = Arc::new(InFlight::default());
        let t0 = Instant::now();
        // 20 KB/s; 100 KB left is 5 s away, 1 MB left is 50 s away.
        let closing = in_flight.register_at(Duration::from_secs(10), HOME, Some(700_000), t0);
        let far = in_flight.register_at(Duration::from_secs(10), HOME, Some(1_600_000), t0);
        feed(&closing.progress, t0, 0, 20_000, 30);
        feed(&far.progress, t0, 0, 20_000, 30);
        let now = t0 + Duration::from_secs(30);
        assert!(in_flight.cut_slowest(64_000, now));
        assert!(far.progress.cut.is_cancelled());
        assert!(
            !in_flight.cut_slowest(64_000, now),
            "the closing one is spared"
        );
        assert!(!closing.progress.cut.is_cancelled());
    }

    #[test]
    fn a_burst_first_does_not_buy_time_to_trickle() {
        let in_flight = Arc::new(InFlight::default());
        let t0 = Instant::now();
        let burst = in_flight.register_at(Duration::from_secs(10), HOME, None, t0);
        // 30 MB in the first ten seconds, then 1 KB/s for a minute: its average since
        // the start is still 400 KB/s, its recent rate 1 KB/s.
        let total = feed(&burst.progress, t0, 0, 3_000_000, 10);
        let later = t0 + Duration::from_secs(10);
        feed(&burst.progress, later, total, 1_000, 60);
        assert!(in_flight.cut_slowest(64_000, later + Duration::from_secs(60)));
        assert!(burst.progress.cut.is_cancelled());
    }

    #[test]
    fn a_stalled_upload_s_rate_falls_without_new_pieces() {
        let in_flight = Arc::new(InFlight::default());
        let t0 = Instant::now();
        let stalled = in_flight.register_at(Duration::from_secs(10), HOME, None, t0);
        let total = feed(&stalled.progress, t0, 0, 100_000, 20);
        assert!(!in_flight.cut_slowest(64_000, t0 + Duration::from_secs(20)));
        // Nothing more comes: measured from its oldest sample (15–20 s before the
        // last piece), its rate falls below the mark within a minute.
        let _ = total;
        assert!(in_flight.cut_slowest(64_000, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn an_upload_that_ended_is_no_candidate() {
        let in_flight = Arc::new(InFlight::default());
        let t0 = Instant::now();
        drop(in_flight.register_at(Duration::ZERO, HOME, None, t0));
        assert!(!in_flight.cut_slowest(64_000, t0 + Duration::from_secs(60)));
    }
}
