//! What ends a session from outside — the relay shutting down, the hub dropping the
//! connection (a full queue), the relay shedding it — watched without work on every
//! wake-up.
//!
//! A session wakes several times per push: its socket, each delivery the hub queues
//! for it, the appender's answer. Its loop used to make three
//! `CancellationToken::cancelled()` futures afresh on each wake-up and poll them
//! first: a mutex per token to ask whether it is cancelled, and the token's `Notify`
//! lock twice more to register the waiter and to unlink it again. The relay's
//! shutdown token is the same for every session, so both cores took the same locks
//! (about 2.5 % of the relay's CPU under `seed-stress --mix changes`). Now the
//! watching future is made once per session and polled again only after its own
//! waker fired ([`Woken`]): a wake-up for anything else costs two atomic operations.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use futures_util::task::AtomicWaker;
use tokio_util::sync::CancellationToken;

/// Why a session is ended from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The relay is shutting down: the session says goodbye.
    Shutdown,
    /// The hub dropped the connection, or the relay shed it: it just closes.
    Cancelled,
}

/// Resolves once any of the tokens is cancelled; the shutdown wins a tie.
pub(crate) async fn end(
    shutdown: CancellationToken,
    cancel: CancellationToken,
    shed: CancellationToken,
) -> End {
    tokio::select! {
        biased;
        () = shutdown.cancelled() => End::Shutdown,
        () = cancel.cancelled() => End::Cancelled,
        () = shed.cancelled() => End::Cancelled,
    }
}

/// Polls a future only when its own waker fired since the last poll (and on the
/// first poll): between wake-ups of its own the future is not touched at all.
#[derive(Debug)]
pub(crate) struct Woken(Arc<Flag>);

#[derive(Debug)]
struct Flag {
    /// The future's waker fired since it was last polled.
    woken: AtomicBool,
    /// The task polling it, woken with it.
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Set before waking: the task's next poll sees it.
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Woken {
    /// A watcher whose first poll polls the future.
    pub(crate) fn new() -> Woken {
        Woken(Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        }))
    }

    /// Polls `fut` if its waker fired since the last time (or never was polled);
    /// otherwise `Pending` at once, with `cx`'s task to be woken when it fires.
    pub(crate) fn poll<F: Future>(
        &self,
        fut: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        // Register first: a wake-up after the check below then wakes this task.
        self.0.task.register(cx.waker());
        if !self.0.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(Arc::clone(&self.0));
        fut.poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use std::{
        future::poll_fn,
        pin::pin,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    /// Counts its polls; ready once `open` is set, waking the waker it was last
    /// polled with when `ring` is called.
    #[derive(Default)]
    struct Probe {
        polls: AtomicUsize,
        open: AtomicBool,
        waker: std::sync::Mutex<Option<Waker>>,
    }

    impl Probe {
        fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut w) = self.waker.lock() {
                *w = Some(cx.waker().clone());
            }
            if self.open.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }

        fn ring(&self) {
            if let Some(w) = self.waker.lock().ok().and_then(|mut w| w.take()) {
                w.wake();
            }
        }
    }

    /// A waker that counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_future_is_polled_only_after_its_own_wake_up() {
        let probe = Probe::default();
        let mut fut = pin!(poll_fn(|cx| probe.poll(cx)));
        let woken = Woken::new();
        let task = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&task));
        let mut cx = Context::from_waker(&waker);

        assert!(woken.poll(fut.as_mut(), &mut cx).is_pending());
        assert_eq!(
            probe.polls.load(Ordering::SeqCst),
            1,
            "the first poll goes through"
        );
        for _ in 0..5 {
            assert!(woken.poll(fut.as_mut(), &mut cx).is_pending());
        }
        assert_eq!(probe.polls.load(Ordering::SeqCst), 1, "no wake-up, no poll");

        probe.open.store(true, Ordering::SeqCst);
        probe.ring();
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "the task is woken");
        assert!(woken.poll(fut.as_mut(), &mut cx).is_ready());
        assert_eq!(probe.polls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_wake_up_between_polls_of_other_tasks_reaches_the_latest() {
        let probe = Probe::default();
        let mut fut = pin!(poll_fn(|cx| probe.poll(cx)));
        let woken = Woken::new();
        let (first, second) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let w1 = Waker::from(Arc::clone(&first));
        let w2 = Waker::from(Arc::clone(&second));
        assert!(
            woken
                .poll(fut.as_mut(), &mut Context::from_waker(&w1))
                .is_pending()
        );
        // Polled from another task meanwhile (a session's future moves between
        // workers): the wake-up goes to the task that polled last.
        assert!(
            woken
                .poll(fut.as_mut(), &mut Context::from_waker(&w2))
                .is_pending()
        );
        probe.ring();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn each_token_ends_the_session_and_shutdown_says_so() {
        for which in 0..3 {
            let tokens = [
                CancellationToken::new(),
                CancellationToken::new(),
                CancellationToken::new(),
            ];
            let mut ending = pin!(end(tokens[0].clone(), tokens[1].clone(), tokens[2].clone()));
            let woken = Woken::new();
            let first = poll_fn(|cx| Poll::Ready(woken.poll(ending.as_mut(), cx))).await;
            assert!(first.is_pending(), "nothing cancelled yet");
            let canceller = tokens[which].clone();
            tokio::spawn(async move { canceller.cancel() });
            let got = poll_fn(|cx| woken.poll(ending.as_mut(), cx)).await;
            let want = if which == 0 {
                End::Shutdown
            } else {
                End::Cancelled
            };
            assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn a_token_cancelled_before_the_first_poll_is_seen() {
        let shed = CancellationToken::new();
        shed.cancel();
        let mut ending = pin!(end(
            CancellationToken::new(),
            CancellationToken::new(),
            shed
        ));
        let woken = Woken::new();
        let got = poll_fn(|cx| woken.poll(ending.as_mut(), cx)).await;
        assert_eq!(got, End::Cancelled);
    }
}
