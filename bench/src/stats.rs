//! Small measurement helpers: durations, percentiles, peak memory.

use std::time::{Duration, Instant};

/// Runs `f` and returns its result and how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// p50 / p95 / p99 / max of a set of samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(i).copied().unwrap_or_default()
        };
        Percentiles {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

/// The middle sample (the upper of the two middle ones for an even count); zero for
/// none.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Milliseconds with three decimals, for tables and JSON.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Peak resident memory of this process (VmHWM), in bytes; 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Mebibytes with one decimal.
pub fn mib(bytes: u64) -> f64 {
    (bytes as f64 / 1048576.0 * 10.0).round() / 10.0
}

impl Percentiles {
    /// As JSON milliseconds: `{"p50": .., "p95": .., "p99": .., "max": ..}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "p50": ms(self.p50),
            "p95": ms(self.p95),
            "p99": ms(self.p99),
            "max": ms(self.max),
        })
    }
}

/// utime, stime, cutime and cstime of process `pid` (or `self`), in clock ticks, from
/// `/proc/PID/stat`.
pub fn cpu_ticks(pid: &str) -> Option<[u64; 4]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces:
    // utime is field 14 of the line, the 12th after the name.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11).map(str::parse::<u64>);
    let mut next = || fields.next()?.ok();
    Some([next()?, next()?, next()?, next()?])
}

/// `n` clock ticks: /proc counts in USER_HZ, which Linux fixes at 100 for user space.
pub fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 10)
}
