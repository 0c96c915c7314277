//! Group commit of document appends, and their fan-out in seq order.
//!
//! Every push goes through one writer thread. It takes the first waiting append, then
//! everything else already queued (up to [`MAX_BATCH`] chunks or [`MAX_BATCH_BYTES`]),
//! and hands the lot to [`LogStore::append_batch`]: one transaction, so one fsync for
//! the whole group instead of one per chunk. Only when that commit has returned does
//! it fan each new chunk out to the document's other subscribers and answer the
//! sessions, which then send their `Ack`s — so "acked" still means "durable".
//!
//! Doing the fan-out on the same thread, right after the commit that assigned the
//! seqs, is what keeps live chunks of a document in seq order for every subscriber,
//! without a lock per document. Under light load a group is one chunk and this costs
//! one channel hop; under heavy load the fsync is shared by everyone waiting.

use std::sync::Arc;

use axum::body::Bytes;
use doran_protocol::{ChunkId, DocId, ServerFrame, UserId, codec};
use tokio::sync::{mpsc, oneshot};

use crate::{
    error::{ApiError, ApiResult},
    hub::{ConnId, Hub},
    metrics::{Metrics, add, inc},
    store::{Appended, LogStore, NewChunk, Sealing},
};

/// Most chunks committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// Most chunk bytes committed in one transaction (a few full-size chunks).
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Appends waiting for the writer; senders wait (backpressure) beyond this.
const QUEUE: usize = 4096;

/// One chunk to append.
#[derive(Debug)]
struct Job {
    doc: DocId,
    chunk: ChunkId,
    bytes: Vec<u8>,
    /// The user whose session pushed it.
    author: UserId,
    at: u64,
    /// The document log's quota.
    max_log_bytes: u64,
    /// Its part in the log's sealing.
    sealing: Sealing,
    /// The pushing connection (not sent its own chunk back).
    from: ConnId,
    reply: oneshot::Sender<ApiResult<Appended>>,
}

/// The handle sessions append through.
#[derive(Debug, Clone)]
pub struct Appender {
    tx: mpsc::Sender<Job>,
}

impl Appender {
    /// Starts the writer thread over `logs`, fanning out through `hub`. The thread ends
    /// when every handle is dropped.
    pub fn start(logs: Arc<dyn LogStore>, hub: Arc<Hub>, metrics: Arc<Metrics>) -> Appender {
        let (tx, rx) = mpsc::channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("doran-appender".into())
            .spawn(move || writer(rx, logs.as_ref(), &hub, &metrics));
        if let Err(e) = spawned {
            // Without the thread every append answers "unavailable" (the receiver is
            // gone), which sessions report as a transient error.
            tracing::error!(error = %e, "cannot start the appender thread");
        }
        Appender { tx }
    }

    /// Appends `bytes` (blake3 = `chunk`, checked by the caller), pushed by `author`'s
    /// session, to `doc` durably, unless the log would then hold more than
    /// `max_log_bytes` (`document_full`) or `sealing` refuses it (see
    /// [`Sealing`]), fans it out (with its author) to the
    /// document's subscribers other than `from`, and returns its seq.
    pub async fn append(
        &self,
        (doc, chunk, bytes): (DocId, ChunkId, Vec<u8>),
        author: UserId,
        at: u64,
        (max_log_bytes, sealing): (u64, Sealing),
        from: ConnId,
    ) -> ApiResult<Appended> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            doc,
            chunk,
            bytes,
            author,
            at,
            max_log_bytes,
            sealing,
            from,
            reply,
        };
        if self.tx.send(job).await.is_err() {
            return Err(ApiError::unavailable("the log writer stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ApiError::unavailable("the log writer stopped")))
    }
}

fn writer(mut rx: mpsc::Receiver<Job>, logs: &dyn LogStore, hub: &Hub, metrics: &Metrics) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        let mut bytes = first.bytes.len();
        jobs.push(first);
        while jobs.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.bytes.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        commit(&mut jobs, logs, hub, metrics);
    }
    tracing::debug!("appender stopped");
}

fn commit(jobs: &mut Vec<Job>, logs: &dyn LogStore, hub: &Hub, metrics: &Metrics) {
    let items: Vec<NewChunk<'_>> = jobs
        .iter()
        .map(|j| NewChunk {
            doc: j.doc,
            chunk: j.chunk,
            bytes: &j.bytes,
            author: Some(j.author),
            at: j.at,
            max_log_bytes: j.max_log_bytes,
            sealing: j.sealing,
        })
        .collect();
    let results = logs.append_batch(&items);
    drop(items);
    inc(&metrics.append_batches);
    add(&metrics.append_batch_chunks, jobs.len() as u64);
    let results: Vec<ApiResult<Appended>> = match results {
        Ok(each) if each.len() == jobs.len() => each
            .into_iter()
            .map(|r| r.map_err(ApiError::from))
            .collect(),
        Ok(_) => {
            tracing::error!("the log store answered a batch with the wrong count");
            jobs.iter()
                .map(|_| Err(ApiError::internal("storage failed")))
                .collect()
        }
        Err(e) => {
            let e = ApiError::from(e);
            jobs.iter().map(|_| Err(e.clone())).collect()
        }
    };
    for (job, result) in jobs.drain(..).zip(results) {
        if let Ok(appended) = &result {
            if appended.existed {
                inc(&metrics.chunk_duplicates);
            } else {
                inc(&metrics.chunk_appends);
                let frame = ServerFrame::Chunk {
                    doc: job.doc,
                    seq: appended.seq,
                    chunk: job.chunk,
                    author: Some(job.author),
                    bytes: job.bytes,
                };
                fan_out(hub, metrics, (job.doc, appended.seq), &frame, job.from);
            }
        }
        // The session may have gone; the chunk is durable either way.
        let _ = job.reply.send(result);
    }
}

/// Sends the `Chunk` frame of a new chunk (`doc` at `seq`) to the document's
/// subscribers other than `from`.
fn fan_out(
    hub: &Hub,
    metrics: &Metrics,
    (doc, seq): (DocId, u64),
    frame: &ServerFrame,
    from: ConnId,
) {
    let started = std::time::Instant::now();
    match codec::encode_server(frame) {
        Ok(encoded) => {
            let n = hub.fan_out(doc, seq, Bytes::from(encoded), from);
            metrics.observe_fanout(started.elapsed());
            tracing::debug!(%doc, seq, subscribers = n, "chunk appended");
        }
        Err(e) => tracing::error!(error = %e, "cannot encode a chunk for fan-out"),
    }
}
