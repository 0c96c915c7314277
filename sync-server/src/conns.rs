//! Every open TCP connection, and a cap on how many there are.
//!
//! Each accepted socket gets an [`Entry`]: whether it may be shed, when bytes last
//! moved on it, and a token that closes it. Its I/O is wrapped in [`Tracked`], which
//! records activity on every read and write and removes the entry when the socket is
//! finally dropped — after the HTTP connection or, for a websocket, after the session
//! that took the upgraded socket over.
//!
//! When a new connection would pass the cap, [`Conns::admit`] first sheds the
//! sheddable connection that has been quiet the longest: an HTTP connection (between
//! or inside requests) or a websocket that is not signed in. Signed-in sessions are
//! never shed for a newcomer. If nothing can be shed, the newcomer is refused (its
//! socket closed at once). So a crowd of idle sockets costs the attacker their own
//! sockets, not everyone else's service: `/healthz` and new devices still get in, and
//! the relay never runs out of file descriptors (the cap is kept below the file
//! limit, see [`effective_cap`]).

use std::{
    collections::HashMap,
    fmt, io,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// One open connection.
#[derive(Debug)]
pub struct Entry {
    id: u64,
    /// Milliseconds since [`Conns`] was made, when bytes last moved.
    last_active: AtomicU64,
    /// Signed in: never shed.
    protected: AtomicBool,
    /// Cancelled to close the connection.
    close: CancellationToken,
    clock: Instant,
    /// What a request leaves held until the connection's next request or its end.
    held: Held,
}

/// A guard a request leaves with its connection: a download's turns, because hyper
/// lets go of a response body once its last bytes are in its write buffer, not once
/// they are sent — and reads the next request (pipelined, or after the last piece
/// went in) before they are — so neither the body nor the next request may end it
/// while a reader that stopped still pins those bytes. It lasts until the connection
/// ends (or is idle past `header_read_timeout_secs`), or a later download of the
/// connection takes it over.
#[derive(Default)]
struct Held(Mutex<Option<Box<dyn std::any::Any + Send>>>);

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Held")
    }
}

impl Entry {
    /// Marks the connection as a signed-in session: it is never shed for a newcomer.
    pub fn protect(&self) {
        self.protected.store(true, Ordering::Relaxed);
    }

    /// Cancelled when the relay sheds this connection.
    pub fn closed(&self) -> &CancellationToken {
        &self.close
    }

    /// Keeps `guard` until a later request of this connection takes it
    /// ([`Entry::take_held`]) or the connection ends.
    pub fn hold(&self, guard: Box<dyn std::any::Any + Send>) {
        *self.held.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(guard);
    }

    /// What an earlier request of this connection left held, if anything.
    pub fn take_held(&self) -> Option<Box<dyn std::any::Any + Send>> {
        self.held.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Drops what the connection holds.
    fn release_held(&self) {
        drop(self.take_held());
    }

    fn touch(&self) {
        let ms = u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(ms, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Shared {
    cap: usize,
    clock: Instant,
    next_id: AtomicU64,
    shed: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Entry>>>,
}

/// The open connections and their cap.
#[derive(Debug, Clone)]
pub struct Conns {
    shared: Arc<Shared>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl Conns {
    /// At most `cap` connections at once.
    pub fn new(cap: usize) -> Self {
        Conns {
            shared: Arc::new(Shared {
                cap: cap.max(1),
                clock: Instant::now(),
                next_id: AtomicU64::new(1),
                shed: AtomicU64::new(0),
                open: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.shared.cap
    }

    /// Connections shed so far.
    pub fn shed_count(&self) -> u64 {
        self.shared.shed.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        self.shared.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a new connection, shedding the quietest sheddable one if the cap is
    /// reached; [`Full`] if there is none to shed. Wrap the socket with the returned
    /// entry ([`Tracked::new`]) so that it leaves when the socket closes.
    pub fn admit(&self) -> Result<Arc<Entry>, Full> {
        let shared = &self.shared;
        let mut open = self.lock();
        if open.len() >= shared.cap {
            let victim = open
                .values()
                .filter(|e| !e.protected.load(Ordering::Relaxed) && !e.close.is_cancelled())
                // Among sockets quiet since the same millisecond, the oldest goes
                // first (not whichever the map yields first).
                .min_by_key(|e| (e.last_active.load(Ordering::Relaxed), e.id))
                .map(|e| e.id);
            let Some(victim) = victim.and_then(|id| open.remove(&id)) else {
                return Err(Full);
            };
            // Removed now, so the newcomer has its place at once; the socket closes as
            // soon as its task sees the token.
            victim.close.cancel();
            shared.shed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(conn = victim.id, "shed a quiet connection for a new one");
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            id,
            last_active: AtomicU64::new(0),
            protected: AtomicBool::new(false),
            close: CancellationToken::new(),
            clock: shared.clock,
            held: Held::default(),
        });
        entry.touch();
        open.insert(id, Arc::clone(&entry));
        Ok(entry)
    }

    fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// How many connections the relay can hold with `file_limit` open files: `wanted`,
/// but always leaving room for the database, blob files being read or written
/// (`uploads` of them at most) and the listener.
pub fn effective_cap(wanted: usize, file_limit: u64, uploads: usize) -> usize {
    let limit = usize::try_from(file_limit).unwrap_or(usize::MAX);
    // SQLite (a writer and readers, each with its WAL and shm), stdio, the listener,
    // a blob file per upload: a quarter of a small limit at most.
    let reserve = (64 + uploads).min(limit / 4);
    wanted.min(limit.saturating_sub(reserve)).max(1)
}

/// A socket whose activity is recorded in its [`Entry`], and which leaves [`Conns`]
/// when dropped.
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    entry: Arc<Entry>,
    conns: Conns,
    /// How long a write may find the peer taking nothing before it fails.
    write_stall: Option<std::time::Duration>,
    /// Whether the last write found the peer taking nothing (the timer runs).
    stalling: bool,
    /// The stall timer, made at the first stall and reset at each later one.
    stall_timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Tracked<T> {
    /// Wraps `inner`, admitted as `entry` by `conns`.
    pub fn new(inner: T, entry: Arc<Entry>, conns: Conns) -> Self {
        Tracked {
            inner,
            entry,
            conns,
            write_stall: None,
            stalling: false,
            stall_timer: None,
        }
    }

    /// Fails a write (and so ends the connection) once the peer has taken none of
    /// the bytes the relay has to send for `limit`: a download nobody reads, or a
    /// websocket whose reader stopped, no longer holds its buffers for ever.
    pub fn with_write_stall(mut self, limit: Option<std::time::Duration>) -> Self {
        self.write_stall = limit;
        self
    }

    /// What a write that `polled` means for the stall clock: progress stops it; a
    /// write the peer cannot take starts it (or finds it run out: an error).
    fn watch_stall<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match &polled {
            Poll::Pending => {
                let Some(limit) = self.write_stall else {
                    return polled;
                };
                let starts = !self.stalling;
                self.stalling = true;
                let timer = self
                    .stall_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if starts {
                    timer.as_mut().reset(tokio::time::Instant::now() + limit);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    self.stalling = false;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer took no bytes for too long",
                    )));
                }
                polled
            }
            Poll::Ready(_) => {
                self.stalling = false;
                polled
            }
        }
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        self.conns.forget(self.entry.id);
        // The socket is gone: nothing it had buffered is pinned any more.
        self.entry.release_held();
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.entry.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.entry.touch();
        }
        self.watch_stall(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.entry.touch();
        }
        self.watch_stall(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch_stall(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quietest_unprotected_connection_is_shed_for_a_newcomer() {
        let conns = Conns::new(3);
        let signed_in = conns.admit().expect("room");
        signed_in.protect();
        let idle = conns.admit().expect("room");
        let busy = conns.admit().expect("room");
        // The idle one has not moved since it was admitted; the busy one just did.
        idle.last_active.store(0, Ordering::Relaxed);
        busy.last_active.store(10, Ordering::Relaxed);
        signed_in.last_active.store(0, Ordering::Relaxed);
        let newcomer = conns.admit().expect("one is shed");
        assert!(idle.closed().is_cancelled());
        assert!(!busy.closed().is_cancelled() && !signed_in.closed().is_cancelled());
        assert_eq!(conns.open(), 3);
        // Only protected ones left besides the newcomer and the busy one: busy goes.
        newcomer.protect();
        conns.admit().expect("the busy one is shed");
        assert!(busy.closed().is_cancelled());
    }

    #[test]
    fn among_equally_quiet_connections_the_oldest_is_shed() {
        let conns = Conns::new(8);
        let all: Vec<_> = (0..8).map(|_| conns.admit().expect("room")).collect();
        for e in &all {
            e.last_active.store(0, Ordering::Relaxed);
        }
        for (i, _) in all.iter().enumerate() {
            conns.admit().expect("one is shed");
            assert!(all[i].closed().is_cancelled(), "the {i}th oldest goes next");
            assert!(all[i + 1..].iter().all(|e| !e.closed().is_cancelled()));
        }
    }

    #[test]
    fn with_only_signed_in_sessions_a_newcomer_is_refused() {
        let conns = Conns::new(2);
        for _ in 0..2 {
            conns.admit().expect("room").protect();
        }
        assert_eq!(conns.admit().map(|_| ()), Err(Full));
    }

    #[test]
    fn a_dropped_socket_leaves() {
        let conns = Conns::new(1);
        let entry = conns.admit().expect("room");
        let tracked = Tracked::new((), entry, conns.clone());
        assert_eq!(conns.open(), 1);
        drop(tracked);
        assert_eq!(conns.open(), 0);
        conns.admit().expect("room again");
    }

    #[test]
    fn the_cap_leaves_room_below_the_file_limit() {
        assert_eq!(effective_cap(16_384, 1_048_576, 128), 16_384);
        assert_eq!(effective_cap(16_384, 1024, 128), 1024 - 192);
        assert_eq!(effective_cap(16_384, 256, 128), 256 - 64);
        assert_eq!(effective_cap(100, 1024, 32), 100);
        assert_eq!(effective_cap(100, 0, 32), 1);
    }
}
