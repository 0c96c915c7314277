//! A small metrics registry of atomics, rendered in the Prometheus text format at
//! `/metrics`.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

/// Upper bounds (seconds) of the fan-out latency histogram buckets.
const FANOUT_BUCKETS: [f64; 10] = [
    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

/// Every counter and gauge the relay exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Websocket connections open now.
    pub connections: AtomicU64,
    /// Websocket connections accepted since start.
    pub connections_total: AtomicU64,
    /// Websocket connections parked now: idle, holding no websocket buffers.
    pub connections_parked: AtomicU64,
    /// Times a websocket connection was parked.
    pub parks: AtomicU64,
    /// Websocket connections closed because a message begun was not finished in time.
    pub messages_too_slow: AtomicU64,
    /// Websocket frames received.
    pub frames_in: AtomicU64,
    /// Websocket frames sent.
    pub frames_out: AtomicU64,
    /// Websocket messages refused for their connection's frame rate.
    pub frames_rate_limited: AtomicU64,
    /// Websocket bytes received.
    pub bytes_in: AtomicU64,
    /// Websocket bytes sent.
    pub bytes_out: AtomicU64,
    /// Chunks appended to a log (new ones).
    pub chunk_appends: AtomicU64,
    /// Pushes of chunks already in the log (idempotent re-pushes).
    pub chunk_duplicates: AtomicU64,
    /// Group commits of appends (one transaction each).
    pub append_batches: AtomicU64,
    /// Chunks in those group commits (divided by the batches: the mean group size).
    pub append_batch_chunks: AtomicU64,
    /// Error frames sent.
    pub errors: AtomicU64,
    /// Blob bytes uploaded (verified).
    pub blob_bytes_in: AtomicU64,
    /// Blob bytes served.
    pub blob_bytes_out: AtomicU64,
    /// HTTP requests accepted by their device key's signature.
    pub http_signed: AtomicU64,
    /// HTTP requests accepted by a MAC under a session key.
    pub http_maced: AtomicU64,
    /// Slow uploads cut so a new one could have their slot.
    pub uploads_gave_way: AtomicU64,
    /// Downloads refused after waiting for a turn of their address.
    pub downloads_turned_away: AtomicU64,
    /// Sweeps of the blob store completed.
    pub blob_sweeps: AtomicU64,
    /// Blobs the sweep deleted (nothing referenced them).
    pub blobs_deleted: AtomicU64,
    /// Connections shed or refused at the connection cap.
    pub connections_shed: AtomicU64,
    fanout_buckets: [AtomicU64; FANOUT_BUCKETS.len()],
    fanout_count: AtomicU64,
    fanout_sum_nanos: AtomicU64,
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Metrics {
    /// Records how long one fan-out (from durable append to every subscriber's
    /// queue) took.
    pub fn observe_fanout(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (bucket, &bound) in self.fanout_buckets.iter().zip(FANOUT_BUCKETS.iter()) {
            if secs <= bound {
                inc(bucket);
            }
        }
        inc(&self.fanout_count);
        add(
            &self.fanout_sum_nanos,
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
        );
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let counters: [(&str, &str, &str, &AtomicU64); 24] = [
            (
                "doran_connections",
                "gauge",
                "Open websocket connections.",
                &self.connections,
            ),
            (
                "doran_connections_total",
                "counter",
                "Websocket connections accepted.",
                &self.connections_total,
            ),
            (
                "doran_connections_parked",
                "gauge",
                "Idle websocket connections parked without their buffers.",
                &self.connections_parked,
            ),
            (
                "doran_parks_total",
                "counter",
                "Times an idle websocket connection was parked.",
                &self.parks,
            ),
            (
                "doran_messages_too_slow_total",
                "counter",
                "Websocket connections closed because a message begun was not finished in time.",
                &self.messages_too_slow,
            ),
            (
                "doran_frames_in_total",
                "counter",
                "Websocket frames received.",
                &self.frames_in,
            ),
            (
                "doran_frames_rate_limited_total",
                "counter",
                "Websocket messages refused for their connection's frame rate.",
                &self.frames_rate_limited,
            ),
            (
                "doran_frames_out_total",
                "counter",
                "Websocket frames sent.",
                &self.frames_out,
            ),
            (
                "doran_bytes_in_total",
                "counter",
                "Websocket bytes received.",
                &self.bytes_in,
            ),
            (
                "doran_bytes_out_total",
                "counter",
                "Websocket bytes sent.",
                &self.bytes_out,
            ),
            (
                "doran_chunk_appends_total",
                "counter",
                "Chunks appended to document logs.",
                &self.chunk_appends,
            ),
            (
                "doran_chunk_duplicates_total",
                "counter",
                "Re-pushed chunks already in a log.",
                &self.chunk_duplicates,
            ),
            (
                "doran_append_batches_total",
                "counter",
                "Group commits of document appends (one fsync each).",
                &self.append_batches,
            ),
            (
                "doran_append_batch_chunks_total",
                "counter",
                "Chunks committed in group commits.",
                &self.append_batch_chunks,
            ),
            (
                "doran_error_frames_total",
                "counter",
                "Error frames sent.",
                &self.errors,
            ),
            (
                "doran_blob_bytes_in_total",
                "counter",
                "Blob bytes uploaded and verified.",
                &self.blob_bytes_in,
            ),
            (
                "doran_blob_bytes_out_total",
                "counter",
                "Blob bytes served.",
                &self.blob_bytes_out,
            ),
            (
                "doran_http_signed_total",
                "counter",
                "HTTP requests accepted by their device key's signature.",
                &self.http_signed,
            ),
            (
                "doran_http_maced_total",
                "counter",
                "HTTP requests accepted by a MAC under a session key.",
                &self.http_maced,
            ),
            (
                "doran_uploads_gave_way_total",
                "counter",
                "Slow uploads cut so a new one could have their slot.",
                &self.uploads_gave_way,
            ),
            (
                "doran_downloads_turned_away_total",
                "counter",
                "Downloads refused after waiting for a turn of their address.",
                &self.downloads_turned_away,
            ),
            (
                "doran_blob_sweeps_total",
                "counter",
                "Sweeps of the blob store for unreferenced blobs.",
                &self.blob_sweeps,
            ),
            (
                "doran_blobs_deleted_total",
                "counter",
                "Blobs deleted because nothing referenced them.",
                &self.blobs_deleted,
            ),
            (
                "doran_connections_shed_total",
                "counter",
                "Connections closed or refused at the connection cap.",
                &self.connections_shed,
            ),
        ];
        for (name, kind, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", value.load(Relaxed));
        }
        let name = "doran_fanout_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a durable append to the chunk queued for every subscriber.\n# TYPE {name} histogram"
        );
        for (bucket, bound) in self.fanout_buckets.iter().zip(FANOUT_BUCKETS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Relaxed)
            );
        }
        let count = self.fanout_count.load(Relaxed);
        let sum = self.fanout_sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        inc(&m.chunk_appends);
        m.observe_fanout(Duration::from_micros(300));
        m.observe_fanout(Duration::from_secs(2));
        let text = m.render();
        assert!(text.contains("doran_chunk_appends_total 1\n"));
        assert!(text.contains("doran_fanout_seconds_bucket{le=\"0.0001\"} 0\n"));
        assert!(text.contains("doran_fanout_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("doran_fanout_seconds_bucket{le=\"0.5\"} 1\n"));
        assert!(text.contains("doran_fanout_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("doran_fanout_seconds_count 2\n"));
    }
}
