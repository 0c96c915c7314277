//! WAL checkpoints on a thread of their own, beside the writer instead of inside its
//! commits.
//!
//! SQLite's default runs a checkpoint in the connection that committed, right after
//! its commit, once the WAL holds 1000 frames (pages): the relay's one writer — the
//! appender, whose group commits every push waits for — stopped every two or three
//! commits to copy the WAL into the database file and fsync it, a quarter of its time
//! under load (`docs/benchmarks.md`, "WAL checkpoints beside the writer"). A checkpoint
//! copies each page once, however many frames of the WAL hold it, so a larger WAL
//! between checkpoints costs less per commit — a page of each document's chunk indexes
//! is written again by nearly every commit — but inside the commit it held up every ack
//! for longer. Here a commit only wakes [`Checkpointer`]'s thread once the WAL holds
//! [`Limits::wake_at`] frames not copied yet, and that thread's own connection copies
//! them back (`PASSIVE`: it blocks neither the writer nor a reader) while the writer
//! goes on committing.
//!
//! The WAL wraps to its start only at a commit that begins with every frame copied
//! back, which a busy writer racing the thread would rarely see; so at
//! [`Limits::wrap_at`] frames the writer checkpoints itself after its commit — what is
//! left then is what the thread has not copied yet — and the WAL wraps at its next
//! commit. That bounds the WAL file (128 MiB), as SQLite's default did at 4 MiB.
//!
//! Nothing of durability moves: a commit is durable once its frames are fsynced in the
//! WAL, as before; a checkpoint copies committed pages into the database file.
//!
//! A WAL that must be emptied (a sealed family's clear history wiped, see
//! `LogStore::confirm_snapshot`) and could not be at once, a reader being in the way,
//! is emptied by the thread ([`Checkpointer::empty_later`]), tried again every
//! [`EMPTY_RETRY`] until it is: frames the WAL wrapped over stay in its file until
//! they are written over, and the file is now larger than SQLite's default kept it.

use std::{
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, hooks::Wal, wal::CheckpointMode};

use crate::store::{StoreError, StoreResult};

/// When the WAL is copied back, in frames (a 4 KiB page each).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Frames not copied back yet at which a commit wakes the thread.
    pub wake_at: i32,
    /// Frames at which the writer checkpoints itself, so the WAL wraps.
    pub wrap_at: i32,
}

impl Limits {
    /// The relay's: 32 MiB of WAL between the thread's checkpoints, 128 MiB at most.
    /// Measured against 1000/4000/16 000 frames (`docs/benchmarks.md`).
    pub const RELAY: Limits = Limits {
        wake_at: 8000,
        wrap_at: 32_000,
    };
}

/// How often the thread tries again to empty a WAL that must be emptied.
const EMPTY_RETRY: Duration = Duration::from_secs(1);

/// How long one try to empty the WAL waits for readers (and the writer, which waits
/// for it in turn).
const EMPTY_WAIT: Duration = Duration::from_millis(200);

/// The checkpoint thread of one database file, stopped and joined on drop.
#[derive(Debug)]
pub(super) struct Checkpointer {
    wake: SyncSender<()>,
    stop: Arc<AtomicBool>,
    /// The WAL must be emptied (truncated), not only copied back.
    empty: Arc<AtomicBool>,
    /// Tries to empty it so far (tests wait for them).
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the tests"))]
    empty_tries: Arc<AtomicU32>,
    /// Held for each checkpoint, so one another caller must run (emptying the WAL
    /// of a wiped history) waits for the thread's instead of failing `SQLITE_BUSY`.
    running: Arc<Mutex<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to `path`, and hands `writer` a WAL
    /// hook that wakes it (replacing SQLite's automatic checkpoints on `writer`).
    pub(super) fn start(path: &Path, writer: &mut Connection, limits: Limits) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(doran_sqlite::BUSY_TIMEOUT)?;
        // A checkpoint fsyncs the WAL before copying it and the database file after,
        // with the checkpointing connection's setting (FULL, as the writer's).
        conn.pragma_update(None, "synchronous", "FULL")?;
        let (wake, woken) = mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let empty = Arc::new(AtomicBool::new(false));
        let empty_tries = Arc::new(AtomicU32::new(0));
        // Frames of the WAL copied back as of the last checkpoint, the thread's or the
        // writer's; more than the WAL holds once it wrapped.
        let copied = Arc::new(AtomicI32::new(0));
        let running = Arc::new(Mutex::new(()));
        let thread = std::thread::Builder::new()
            .name("doran-checkpoints".into())
            .spawn({
                let thread = Thread {
                    conn,
                    woken,
                    stop: stop.clone(),
                    empty: empty.clone(),
                    empty_tries: empty_tries.clone(),
                    copied: copied.clone(),
                    running: running.clone(),
                };
                move || thread.run()
            })
            .map_err(StoreError::backend)?;
        let hook_wake = wake.clone();
        writer.wal_hook(Some(move |wal: &mut Wal, frames| {
            on_commit(wal, frames, limits, &hook_wake, &copied);
            // Never an error: SQLite would report it as the COMMIT's, though the
            // commit is done — and the appender would append the group again.
            Ok(())
        }))?;
        Ok(Self {
            wake,
            stop,
            empty,
            empty_tries,
            running,
            thread: Some(thread),
        })
    }

    /// Waits for the thread's checkpoint, if one is running, and keeps it from
    /// starting another while the guard is held.
    pub(super) fn hold(&self) -> MutexGuard<'_, ()> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Has the thread empty the WAL, trying every [`EMPTY_RETRY`] until it can.
    pub(super) fn empty_later(&self) {
        self.empty.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
    }

    /// How many times the thread tried to empty the WAL.
    #[cfg(test)]
    pub(super) fn empty_tries(&self) -> u32 {
        self.empty_tries.load(Ordering::Acquire)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Full: a wake is pending already, and the thread sees `stop` after it.
        let _ = self.wake.try_send(());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the checkpoint thread panicked");
        }
    }
}

/// The writer's WAL hook, after each commit: the WAL holds `frames` now.
fn on_commit(
    wal: &mut Wal,
    frames: i32,
    limits: Limits,
    wake: &SyncSender<()>,
    copied: &AtomicI32,
) {
    if frames >= limits.wrap_at {
        match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
            Ok((log, done)) => {
                copied.store(done, Ordering::Relaxed);
                tracing::debug!(log, done, "the writer checkpointed the WAL");
            }
            // The thread is checkpointing this moment: the next commit tries again.
            Err(e) => tracing::debug!(error = %e, "the writer could not checkpoint the WAL"),
        }
        return;
    }
    let copied = copied.load(Ordering::Relaxed);
    // Fewer frames than were copied: the WAL wrapped since, and all of it is new.
    let uncopied = if frames >= copied {
        frames - copied
    } else {
        frames
    };
    if uncopied >= limits.wake_at {
        match wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("the checkpoint thread is gone; the WAL is copied back as it wraps");
            }
        }
    }
}

/// The thread's side: its connection and what the writer's side shares with it.
struct Thread {
    conn: Connection,
    woken: Receiver<()>,
    stop: Arc<AtomicBool>,
    empty: Arc<AtomicBool>,
    empty_tries: Arc<AtomicU32>,
    copied: Arc<AtomicI32>,
    running: Arc<Mutex<()>>,
}

impl Thread {
    fn run(self) {
        loop {
            let woken = if self.empty.load(Ordering::Acquire) {
                self.woken
                    .recv_timeout(EMPTY_RETRY)
                    .map_err(|e| e == RecvTimeoutError::Disconnected)
            } else {
                self.woken.recv().map_err(|_| true)
            };
            if woken == Err(true) || self.stop.load(Ordering::Acquire) {
                break;
            }
            let _held = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if self.empty.load(Ordering::Acquire) {
                self.empty_wal();
            } else {
                self.copy_back();
            }
        }
    }

    fn copy_back(&self) {
        match self
            .conn
            .wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)
        {
            Ok((log, done)) => {
                self.copied.store(done, Ordering::Relaxed);
                if done < log {
                    // A reader still uses older frames, or the writer committed
                    // meanwhile: the rest goes at the next wake.
                    tracing::debug!(log, done, "a checkpoint left frames for the next one");
                }
            }
            Err(e) => tracing::warn!(error = %e, "a WAL checkpoint failed"),
        }
    }

    /// Copies the WAL back and truncates it, waiting a little for readers and the
    /// writer (which waits for this in turn).
    fn empty_wal(&self) {
        let emptied = empty_wal(&self.conn, EMPTY_WAIT);
        self.empty_tries.fetch_add(1, Ordering::AcqRel);
        match emptied {
            Ok(true) => {
                self.empty.store(false, Ordering::Release);
                self.copied.store(0, Ordering::Relaxed);
                tracing::info!("the WAL that had to be emptied is emptied");
            }
            Ok(false) => tracing::debug!("the WAL could not be emptied yet"),
            Err(e) => tracing::debug!(error = %e, "the WAL could not be emptied yet"),
        }
    }
}

/// Copies the WAL back and truncates it, waiting at most `wait` for readers and the
/// writer (a busy writer waits for this in turn); whether it is empty now. `conn`'s
/// busy timeout is the usual one again after.
pub(super) fn empty_wal(conn: &Connection, wait: Duration) -> rusqlite::Result<bool> {
    conn.busy_timeout(wait)?;
    let emptied = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::TRUNCATE);
    conn.busy_timeout(doran_sqlite::BUSY_TIMEOUT)?;
    // Truncated: no frame left.
    Ok(emptied?.0 == 0)
}
