//! `doran-bench wire-floor`: what the socket work of `seed-stress --mix changes` costs
//! on this machine with nothing else — the floor under the relay's figure.
//!
//! The same shape as the changes-only seed-stress run: 1000 devices in families of 5
//! on loopback TCP, a connection each, every device pushing 50 times and waiting for
//! each ack (a closed loop), every push sent on to the other devices of its family.
//! The server is a second process of this binary (`wire-floor-serve`), so the two
//! processes' CPU is counted apart as the relay's and the load generator's are, on a
//! tokio runtime like the relay's: a task per connection that reads its pushes, hands
//! each delivery to the family's other tasks through a bounded queue (the relay's
//! hub), and writes whatever is queued for its socket with one `write` per wake-up
//! (the relay's session flush). A frame is a 4-byte length and a payload of the size
//! of seed-stress's frames (a 400-byte chunk behind the push's or the delivery's
//! header). What the relay does besides is left out: websocket framing, decoding,
//! checks, storage.
//!
//! `--durable` adds the relay's group commit without SQLite: a writer thread takes
//! every push waiting, writes their chunks with one `pwrite` into a preallocated file
//! (as SQLite's WAL is overwritten in place), `fsync`s it, and only then acks and
//! delivers them — the disk's share of the floor.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Barrier, mpsc},
};

use crate::{
    load::{ANSWER_TIMEOUT, LoadError, relay::cpu_of},
    stats::{Percentiles, ms},
};

/// What a pushing device sends before its chunk (a push's document, chunk id and
/// frame header in seed-stress's encoding, rounded).
const PUSH_HEADER: usize = 56;
/// What a delivery carries before the chunk (document, seq, chunk id, author).
const DELIVERY_HEADER: usize = 72;
/// An ack's payload (the request id and the seq).
const ACK_PAYLOAD: usize = 24;
/// The size of each device's queue at the server, as the relay's.
const QUEUE: usize = 1024;
/// Pushes one commit takes at most (the relay's appender batch).
const MAX_BATCH: usize = 512;
/// The writer's file is written over in a ring of this size, as a WAL between
/// checkpoints (SQLite's default autocheckpoint: 1000 pages of 4 KiB).
const RING_BYTES: u64 = 4000 * 1024;

const KIND_PUSH: u8 = 0;
const KIND_ACK: u8 = 1;
const KIND_DELIVERY: u8 = 2;
const KIND_HELLO: u8 = 3;
const KIND_JOINED: u8 = 4;
const KIND_STATS: u8 = 5;

/// Options of `wire-floor`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Devices (connections).
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Devices per family.
    #[arg(long, default_value_t = 5)]
    pub family_size: usize,
    /// Pushes per device.
    #[arg(long, default_value_t = 50)]
    pub ops: usize,
    /// Bytes of each chunk.
    #[arg(long, default_value_t = 400)]
    pub bytes: usize,
    /// Ack and deliver a push only once it is written and fsynced with the others
    /// waiting (a group commit).
    #[arg(long)]
    pub durable: bool,
}

/// Options of the server process (`wire-floor-serve`, started by `wire-floor`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// Group-commit the pushes into this file before acking them.
    #[arg(long)]
    pub durable: Option<PathBuf>,
}

/// Runs the benchmark and prints its figures.
pub fn run(opts: &Options, json_out: bool) -> Result<(), LoadError> {
    if opts.devices < 2 || opts.family_size < 2 || opts.ops == 0 {
        return Err(LoadError::Setup(
            "wire-floor wants 2 or more devices, families of 2 or more and 1 or more ops".into(),
        ));
    }
    crate::load::run_and_print(json_out, measure(opts), print_table)
}

async fn measure(opts: &Options) -> Result<serde_json::Value, LoadError> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(opts.durable.then(|| dir.path().join("log")))?;
    let addr = format!("127.0.0.1:{}", server.port);
    let devices = opts.devices;
    let barrier = Arc::new(Barrier::new(devices + 1));
    let mut tasks = tokio::task::JoinSet::new();
    // Every device pushes the same bytes: one frame, shared.
    let push = push_frame(opts.bytes);
    for i in 0..devices {
        let family = i / opts.family_size;
        let members = opts.family_size.min(devices - family * opts.family_size);
        let job = Job {
            addr: addr.clone(),
            family: u32::try_from(family)
                .map_err(|_| LoadError::Setup("too many families".into()))?,
            ops: opts.ops,
            push: Arc::clone(&push),
            deliveries: (members - 1) * opts.ops,
        };
        tasks.spawn(device(job, Arc::clone(&barrier)));
    }
    barrier.wait().await;
    let started = Instant::now();
    let before = (server.cpu(), cpu_of("self"));
    let mut acks = Vec::with_capacity(devices * opts.ops);
    let mut delivered = 0;
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(run)) => {
                acks.extend(run.acks);
                delivered += run.delivered;
            }
            Ok(Err(e)) => failures.push(e.to_string()),
            Err(e) => failures.push(format!("a device task failed: {e}")),
        }
    }
    let wall = started.elapsed();
    let server_cpu = server.cpu().zip(before.0).map(|(a, b)| a.saturating_sub(b));
    let generator_cpu = cpu_of("self")
        .zip(before.1)
        .map(|(a, b)| a.saturating_sub(b));
    crate::load::fail_on(&failures)?;
    let commits = if opts.durable {
        Some(commits(&addr).await?)
    } else {
        None
    };
    let pushes = acks.len();
    let per_push = |cpu: Option<Duration>| {
        cpu.map(|d| (d.as_secs_f64() * 1e7 / pushes.max(1) as f64).round() / 10.0)
    };
    Ok(json!({
        "benchmark": "wire-floor",
        "devices": devices,
        "family_size": opts.family_size,
        "ops_per_device": opts.ops,
        "chunk_bytes": opts.bytes,
        "durable": opts.durable,
        "pushes": pushes,
        "delivered": delivered,
        "wall_ms": ms(wall),
        "pushes_per_s": pushes as f64 / wall.as_secs_f64(),
        "push_to_ack_ms": Percentiles::of(&mut acks).json(),
        "server_cpu_s": server_cpu.map(|d| d.as_secs_f64()),
        "server_cpu_us_per_push": per_push(server_cpu),
        "generator_cpu_s": generator_cpu.map(|d| d.as_secs_f64()),
        "generator_cpu_us_per_push": per_push(generator_cpu),
        "commits": commits,
    }))
}

fn print_table(r: &serde_json::Value) {
    let durable = if r["durable"].as_bool().unwrap_or(false) {
        ", group-committed with fsync"
    } else {
        ""
    };
    println!(
        "wire-floor: {} devices in families of {}, {} pushes of {} B each{durable}",
        r["devices"], r["family_size"], r["ops_per_device"], r["chunk_bytes"]
    );
    println!(
        "  wall                 {} ms ({:.0} pushes/s; {} delivered)",
        r["wall_ms"],
        r["pushes_per_s"].as_f64().unwrap_or(0.0),
        r["delivered"]
    );
    let lat = &r["push_to_ack_ms"];
    println!(
        "  push → ack           p50 {} ms, p99 {} ms, max {} ms",
        lat["p50"], lat["p99"], lat["max"]
    );
    println!(
        "  server CPU           {} s ({} µs per push)",
        r["server_cpu_s"], r["server_cpu_us_per_push"]
    );
    println!(
        "  generator CPU        {} s ({} µs per push)",
        r["generator_cpu_s"], r["generator_cpu_us_per_push"]
    );
    if let Some(commits) = r["commits"].as_u64() {
        println!("  commits (fsyncs)     {commits}");
    }
}

// ----- the server process -----

/// The server process, killed on drop (and ending by itself when its stdin closes).
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(durable: Option<PathBuf>) -> Result<Server, LoadError> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("wire-floor-serve");
        if let Some(path) = &durable {
            command.arg("--durable").arg(path);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LoadError::Setup(format!(
                "the wire-floor server did not say its port (said {line:?})"
            )));
        };
        Ok(Server { child, port })
    }

    fn cpu(&self) -> Option<Duration> {
        cpu_of(&self.child.id().to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server: listens on a free loopback port, says it on stdout, and serves until
/// its stdin closes (the benchmark ended or died).
pub fn serve(opts: &ServeOptions) -> Result<(), LoadError> {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{}", listener.local_addr()?.port())?;
        stdout.flush()?;
        let hub = Arc::new(Hub::default());
        let writer = match &opts.durable {
            Some(path) => Some(Writer::start(path, Arc::clone(&hub))?),
            None => None,
        };
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let (hub, writer) = (Arc::clone(&hub), writer.clone());
            tokio::spawn(async move {
                if let Err(e) = session(stream, hub, writer).await {
                    eprintln!("wire-floor-serve: a session failed: {e}");
                }
            });
        }
    })
}

/// A family's connections (an id each) and their queues.
type Members = Vec<(u32, mpsc::Sender<Frame>)>;

/// Each family's connections and their queues.
#[derive(Default)]
struct Hub {
    families: Mutex<HashMap<u32, Members>>,
    next: AtomicU32,
}

impl Hub {
    fn join(&self, family: u32, queue: mpsc::Sender<Frame>) -> u32 {
        let conn = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().entry(family).or_default().push((conn, queue));
        conn
    }

    fn leave(&self, family: u32, conn: u32) {
        if let Some(members) = self.lock().get_mut(&family) {
            members.retain(|(c, _)| *c != conn);
        }
    }

    /// Queues `frame` for the family's connections other than `from`; a full queue
    /// drops it, and that device then reports deliveries missing.
    fn fan_out(&self, family: u32, from: u32, frame: &Frame) {
        if let Some(members) = self.lock().get(&family) {
            for (conn, queue) in members {
                if *conn != from {
                    let _ = queue.try_send(frame.clone());
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Members>> {
        self.families
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A push waiting for the group commit.
struct Pending {
    family: u32,
    from: u32,
    reply: mpsc::Sender<Frame>,
    delivery: Frame,
}

/// The group-commit thread's queue.
#[derive(Clone)]
struct Writer {
    tx: mpsc::Sender<Pending>,
}

impl Writer {
    fn start(path: &Path, hub: Arc<Hub>) -> Result<Writer, LoadError> {
        let file = File::create(path)?;
        file.write_all_at(&vec![0; RING_BYTES as usize], 0)?;
        file.sync_all()?;
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        std::thread::Builder::new()
            .name("wire-floor-writer".into())
            .spawn(move || {
                if let Err(e) = group_commits(&file, rx, &hub) {
                    eprintln!("wire-floor-serve: the writer failed: {e}");
                    std::process::exit(1);
                }
            })?;
        Ok(Writer { tx })
    }
}

/// Takes every push waiting, writes their chunks with one `pwrite`, fsyncs, then acks
/// and delivers them.
fn group_commits(file: &File, mut rx: mpsc::Receiver<Pending>, hub: &Hub) -> std::io::Result<()> {
    let ack = ack_frame();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut buf = Vec::new();
    let mut at = 0u64;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        buf.clear();
        for p in &batch {
            buf.extend_from_slice(&p.delivery[4 + 1 + DELIVERY_HEADER..]);
        }
        if at + buf.len() as u64 > RING_BYTES {
            at = 0;
        }
        file.write_all_at(&buf, at)?;
        at += buf.len() as u64;
        file.sync_all()?;
        COMMITS.fetch_add(1, Ordering::Relaxed);
        for p in batch.drain(..) {
            let _ = p.reply.try_send(ack.clone());
            hub.fan_out(p.family, p.from, &p.delivery);
        }
    }
    Ok(())
}

async fn session(
    mut stream: TcpStream,
    hub: Arc<Hub>,
    writer: Option<Writer>,
) -> std::io::Result<()> {
    let (queue, mut queued) = mpsc::channel::<Frame>(QUEUE);
    let mut input = Input::new();
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let ack = ack_frame();
    let (mut reader, mut socket) = stream.split();
    let family = loop {
        if let Some(first) = input.take()? {
            match (first.first(), first.get(1..5)) {
                (Some(&KIND_HELLO), Some(id)) => {
                    break u32::from_le_bytes(id.try_into().unwrap_or_default());
                }
                (Some(&KIND_STATS), _) => {
                    let commits = COMMITS.load(Ordering::Relaxed);
                    socket
                        .write_all(&frame(KIND_STATS, &commits.to_le_bytes()))
                        .await?;
                    return Ok(());
                }
                _ => {
                    return Err(invalid(
                        "the first frame is neither a hello nor a stats request",
                    ));
                }
            }
        }
        if input.fill(&mut reader).await? == 0 {
            return Ok(());
        }
    };
    let conn = hub.join(family, queue.clone());
    socket.write_all(&frame(KIND_JOINED, &[])).await?;
    loop {
        tokio::select! {
            read = input.fill(&mut reader) => {
                if read? == 0 {
                    break;
                }
                while let Some(push) = input.take()? {
                    let Some((&KIND_PUSH, body)) = push.split_first() else {
                        return Err(invalid("a frame that is not a push"));
                    };
                    let delivery = delivery_frame(body.get(PUSH_HEADER..).unwrap_or_default());
                    match &writer {
                        None => {
                            out.extend_from_slice(&ack);
                            hub.fan_out(family, conn, &delivery);
                        }
                        Some(w) => {
                            let pending = Pending { family, from: conn, reply: queue.clone(), delivery };
                            if w.tx.send(pending).await.is_err() {
                                return Err(invalid("the writer stopped"));
                            }
                        }
                    }
                }
            }
            Some(queued_frame) = queued.recv() => out.extend_from_slice(&queued_frame),
        }
        while let Ok(queued_frame) = queued.try_recv() {
            out.extend_from_slice(&queued_frame);
        }
        if !out.is_empty() {
            socket.write_all(&out).await?;
            out.clear();
        }
    }
    hub.leave(family, conn);
    Ok(())
}

/// Commits the writer made so far (the server process's own count).
static COMMITS: AtomicU64 = AtomicU64::new(0);

// ----- the load generator's devices -----

struct Job {
    addr: String,
    family: u32,
    ops: usize,
    push: Frame,
    /// Deliveries this device must receive: the other members' pushes.
    deliveries: usize,
}

struct DeviceRun {
    acks: Vec<Duration>,
    delivered: usize,
}

/// Connects, joins its family, waits for every device, then pushes `ops` times, each
/// after the ack of the one before, and reads until every delivery it is owed came.
async fn device(job: Job, barrier: Arc<Barrier>) -> Result<DeviceRun, LoadError> {
    // In the family at the server before anyone pushes, or a delivery would be lost.
    let joined = match join(&job.addr, frame(KIND_HELLO, &job.family.to_le_bytes())).await {
        Ok((mut stream, mut input)) => match next_kind(&mut stream, &mut input).await {
            Ok(KIND_JOINED) => Ok((stream, input)),
            Ok(_) => Err(LoadError::Protocol("no answer to the hello".into())),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    barrier.wait().await;
    let (mut stream, mut input) = joined?;
    let mut run = DeviceRun {
        acks: Vec::with_capacity(job.ops),
        delivered: 0,
    };
    let mut acked = 0;
    for i in 1..=job.ops {
        let started = Instant::now();
        stream.write_all(&job.push).await?;
        while acked < i {
            match next_kind(&mut stream, &mut input).await? {
                KIND_ACK => acked += 1,
                KIND_DELIVERY => run.delivered += 1,
                other => return Err(LoadError::Protocol(format!("a frame of kind {other}"))),
            }
        }
        run.acks.push(started.elapsed());
    }
    while run.delivered < job.deliveries {
        match next_kind(&mut stream, &mut input).await? {
            KIND_DELIVERY => run.delivered += 1,
            other => return Err(LoadError::Protocol(format!("a frame of kind {other}"))),
        }
    }
    Ok(run)
}

/// Connects and sends `first`.
async fn join(addr: &str, first: Frame) -> Result<(TcpStream, Input), LoadError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    stream.write_all(&first).await?;
    Ok((stream, Input::new()))
}

/// The server's count of commits, asked on a connection of its own.
async fn commits(addr: &str) -> Result<u64, LoadError> {
    let (mut stream, mut input) = join(addr, frame(KIND_STATS, &[])).await?;
    loop {
        if let Some(answer) = input.take()? {
            let count = answer
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes);
            return count.ok_or_else(|| LoadError::Protocol("a short stats answer".into()));
        }
        if input.fill(&mut stream).await? == 0 {
            return Err(LoadError::Closed);
        }
    }
}

/// The kind of the next frame, reading more when none is whole; one timer per read.
async fn next_kind(stream: &mut TcpStream, input: &mut Input) -> Result<u8, LoadError> {
    loop {
        if let Some(frame) = input.take()? {
            return frame
                .first()
                .copied()
                .ok_or_else(|| LoadError::Protocol("an empty frame".into()));
        }
        let read = tokio::time::timeout(ANSWER_TIMEOUT, input.fill(stream))
            .await
            .map_err(|_| LoadError::Timeout("a frame"))??;
        if read == 0 {
            return Err(LoadError::Closed);
        }
    }
}

// ----- frames: a 4-byte length, then the payload (its first byte the kind) -----

/// An encoded frame, shared by every connection it is queued for.
type Frame = Arc<[u8]>;

fn frame(kind: u8, body: &[u8]) -> Frame {
    let mut out = Vec::with_capacity(5 + body.len());
    out.extend_from_slice(&(1 + body.len() as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out.into()
}

fn push_frame(chunk: usize) -> Frame {
    frame(KIND_PUSH, &vec![0x5a; PUSH_HEADER + chunk])
}

fn ack_frame() -> Frame {
    frame(KIND_ACK, &[0; ACK_PAYLOAD])
}

/// One allocation and one copy per push, shared by every recipient (as the relay's
/// encoded `Chunk` frame).
fn delivery_frame(chunk: &[u8]) -> Frame {
    let mut out = Vec::with_capacity(5 + DELIVERY_HEADER + chunk.len());
    out.extend_from_slice(&(1 + DELIVERY_HEADER as u32 + chunk.len() as u32).to_le_bytes());
    out.push(KIND_DELIVERY);
    out.resize(out.len() + DELIVERY_HEADER, 0);
    out.extend_from_slice(chunk);
    out.into()
}

/// What a connection has read and not yet taken: whole frames are taken in place,
/// and the taken bytes dropped before the next read.
struct Input {
    buf: Vec<u8>,
    at: usize,
}

impl Input {
    fn new() -> Input {
        Input {
            buf: Vec::with_capacity(16 * 1024),
            at: 0,
        }
    }

    /// The next whole frame's payload, if one was read.
    fn take(&mut self) -> std::io::Result<Option<&[u8]>> {
        let rest = &self.buf[self.at..];
        let Some(len) = rest.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
        if len == 0 || len > 1 << 20 {
            return Err(invalid("a frame length out of range"));
        }
        if rest.len() < 4 + len {
            return Ok(None);
        }
        let start = self.at + 4;
        self.at = start + len;
        Ok(Some(&self.buf[start..self.at]))
    }

    /// Reads what the socket has; 0 when it closed.
    async fn fill<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        from: &mut R,
    ) -> std::io::Result<usize> {
        if self.at > 0 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        from.read_buf(&mut self.buf).await
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_taken_whole_and_in_order() {
        let mut input = Input::new();
        input.buf.extend_from_slice(&push_frame(10));
        let delivery = delivery_frame(&[7; 10]);
        input.buf.extend_from_slice(&delivery[..9]);
        let push = input.take().unwrap().unwrap();
        assert_eq!(push.len(), 1 + PUSH_HEADER + 10);
        assert_eq!(input.take().unwrap(), None);
        input.buf.extend_from_slice(&delivery[9..]);
        let got = input.take().unwrap().unwrap();
        assert_eq!(got[0], KIND_DELIVERY);
        assert_eq!(&got[1 + DELIVERY_HEADER..], &[7; 10]);
        assert_eq!(input.take().unwrap(), None);
    }

    #[test]
    fn a_zero_or_huge_length_is_refused() {
        for len in [0u32, u32::MAX] {
            let mut input = Input::new();
            input.buf.extend_from_slice(&len.to_le_bytes());
            assert!(input.take().is_err());
        }
    }
}
