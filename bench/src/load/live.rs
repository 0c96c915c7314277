//! A cohort gone live: every device in its own task, reading its socket all the time,
//! pushing when told, and reporting every push and every chunk it receives with the
//! instant it happened. Fan-out latency is then arrival minus push, on one clock.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use doran_protocol::{ChunkId, ClientFrame, DocId, ServerFrame};
use tokio::sync::mpsc;

use super::{LoadError, cohort::Device};

/// Something a live device saw or did.
#[derive(Debug)]
pub enum Report {
    /// It sent a push of `chunk` at `at`.
    Pushed { chunk: ChunkId, at: Instant },
    /// The relay acked `chunk`.
    Acked { chunk: ChunkId, at: Instant },
    /// It received `chunk` at `at`.
    Arrived { chunk: ChunkId, at: Instant },
    /// Its session failed.
    Failed(String),
}

/// Devices running in their own tasks.
#[derive(Debug)]
pub struct Live {
    /// One sender per device (same order as the cohort's devices): a change to push to
    /// its family document.
    pub push: Vec<mpsc::UnboundedSender<Vec<u8>>>,
    /// Everything the devices report.
    pub reports: mpsc::UnboundedReceiver<Report>,
    tasks: tokio::task::JoinSet<()>,
}

impl Live {
    /// Starts a task per device; `doc_of(i)` is device `i`'s family document.
    pub fn start(devices: Vec<Device>, doc_of: impl Fn(&Device) -> DocId) -> Live {
        let (report, reports) = mpsc::unbounded_channel();
        let mut push = Vec::with_capacity(devices.len());
        let mut tasks = tokio::task::JoinSet::new();
        for device in devices {
            let (tx, rx) = mpsc::unbounded_channel();
            push.push(tx);
            let doc = doc_of(&device);
            let report = report.clone();
            tasks.spawn(async move {
                if let Err(e) = run(device, doc, rx, &report).await {
                    let _ = report.send(Report::Failed(e.to_string()));
                }
            });
        }
        Live {
            push,
            reports,
            tasks,
        }
    }

    /// Stops every device.
    pub async fn stop(mut self) {
        self.push.clear();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn run(
    mut device: Device,
    doc: DocId,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    report: &mpsc::UnboundedSender<Report>,
) -> Result<(), LoadError> {
    let mut reported = 0;
    loop {
        tokio::select! {
            change = rx.recv() => {
                let Some(bytes) = change else { return Ok(()) };
                let chunk = ChunkId::of(&bytes);
                let at = Instant::now();
                device.conn.send(&ClientFrame::push(doc, bytes)).await?;
                let _ = report.send(Report::Pushed { chunk, at });
            }
            frame = device.conn.next_frame_idle() => {
                if let ServerFrame::Ack { chunk, .. } = frame? {
                    let _ = report.send(Report::Acked { chunk, at: Instant::now() });
                }
                for r in &device.conn.received[reported..] {
                    let _ = report.send(Report::Arrived { chunk: r.chunk, at: r.at });
                }
                reported = device.conn.received.len();
            }
        }
    }
}

/// Fan-out figures from the reports of a run.
#[derive(Debug, Default)]
pub struct Tally {
    pushed: HashMap<ChunkId, Instant>,
    acked: HashMap<ChunkId, Instant>,
    arrivals: HashMap<ChunkId, Vec<Instant>>,
    /// Device sessions that failed.
    pub failures: Vec<String>,
    /// Arrivals seen.
    pub arrived: usize,
}

impl Tally {
    /// Takes one report in.
    pub fn add(&mut self, report: Report) {
        match report {
            Report::Pushed { chunk, at } => {
                self.pushed.insert(chunk, at);
            }
            Report::Acked { chunk, at } => {
                self.acked.insert(chunk, at);
            }
            Report::Arrived { chunk, at } => {
                self.arrived += 1;
                self.arrivals.entry(chunk).or_default().push(at);
            }
            Report::Failed(e) => self.failures.push(e),
        }
    }

    /// Reads reports until `expected` arrivals (and an ack per push) were seen or
    /// `deadline` passes.
    pub async fn collect(
        &mut self,
        reports: &mut mpsc::UnboundedReceiver<Report>,
        expected: usize,
        pushes: usize,
        deadline: Instant,
    ) {
        while self.arrived < expected || self.acked.len() < pushes {
            match tokio::time::timeout_at(deadline.into(), reports.recv()).await {
                Ok(Some(r)) => self.add(r),
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Per delivery: arrival minus push.
    pub fn delivery_latencies(&self) -> Vec<Duration> {
        self.arrivals
            .iter()
            .filter_map(|(chunk, ats)| Some((self.pushed.get(chunk)?, ats)))
            .flat_map(|(sent, ats)| {
                ats.iter()
                    .map(move |at| at.saturating_duration_since(*sent))
            })
            .collect()
    }

    /// Per push: until the last of the other family devices had it.
    pub fn everyone_latencies(&self) -> Vec<Duration> {
        self.arrivals
            .iter()
            .filter_map(|(chunk, ats)| {
                let sent = self.pushed.get(chunk)?;
                Some(ats.iter().max()?.saturating_duration_since(*sent))
            })
            .collect()
    }

    /// Per push: until its ack.
    pub fn ack_latencies(&self) -> Vec<Duration> {
        self.acked
            .iter()
            .filter_map(|(chunk, at)| Some(at.saturating_duration_since(*self.pushed.get(chunk)?)))
            .collect()
    }

    /// Pushes sent.
    pub fn pushes(&self) -> usize {
        self.pushed.len()
    }
}
