//! A connection's queue of hub messages: bounded, one sender (the hub's entry for the
//! connection) and one receiver (its session).
//!
//! Sized for the tens of thousands of connections that sit idle: tokio's
//! `mpsc::channel` took 1 056 bytes per connection before its first message — its
//! shared state padded to cache lines (512 bytes) and a first block of 32 slots
//! (544) — a tenth of what an idle connection cost the relay (`docs/benchmarks.md`).
//! This one is one small allocation: a mutex over a `VecDeque` (which allocates only
//! once a message comes, and gives a grown buffer back once drained) and the
//! receiver's waker. The hub never waits on it: a full queue is refused at once, and
//! the hub drops that connection.

use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{Arc, Mutex, MutexGuard},
    task::{Poll, Waker},
};

use super::HubMsg;

/// A drained queue keeps at most this many slots (a burst's buffer is given back).
const KEEP_SLOTS: usize = 16;

/// A queue holding at most `cap` messages.
pub fn queue(cap: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        cap,
        state: Mutex::new(State {
            msgs: VecDeque::new(),
            sender_gone: false,
            receiver_gone: false,
            waker: None,
        }),
    });
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver { shared },
    )
}

#[derive(Debug)]
struct Shared {
    cap: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    msgs: VecDeque<HubMsg>,
    sender_gone: bool,
    receiver_gone: bool,
    /// The receiver waiting for a message.
    waker: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in the state can be left half-changed by a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a message was not queued (it is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrySendError {
    /// The queue holds `cap` messages already.
    Full,
    /// The receiver is gone (the session ended).
    Closed,
}

/// The hub's end of a connection's queue.
#[derive(Debug)]
pub struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    /// Queues `msg` unless the queue is full or its receiver is gone.
    pub fn try_send(&self, msg: HubMsg) -> Result<(), TrySendError> {
        let waker = {
            let mut state = self.shared.lock();
            if state.receiver_gone {
                return Err(TrySendError::Closed);
            }
            if state.msgs.len() >= self.shared.cap {
                return Err(TrySendError::Full);
            }
            state.msgs.push_back(msg);
            state.waker.take()
        };
        // Woken outside the lock: the receiver's task may run at once on another
        // worker and take the lock itself.
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.sender_gone = true;
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The session's end of its queue.
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
}

impl Receiver {
    /// The next message, waiting for one; `None` once the sender is gone and every
    /// message it queued was taken. Cancel safe: a message is taken only by the poll
    /// that returns it.
    pub async fn recv(&mut self) -> Option<HubMsg> {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if let Some(msg) = take(&mut state) {
                return Poll::Ready(Some(msg));
            }
            if state.sender_gone {
                return Poll::Ready(None);
            }
            match &mut state.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Option<HubMsg> {
        take(&mut self.shared.lock())
    }
}

/// Takes the oldest message; a queue it leaves empty gives back a buffer a burst grew.
fn take(state: &mut State) -> Option<HubMsg> {
    let msg = state.msgs.pop_front()?;
    if state.msgs.is_empty() && state.msgs.capacity() > KEEP_SLOTS {
        state.msgs.shrink_to(KEEP_SLOTS);
    }
    Some(msg)
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let msgs = {
            let mut state = self.shared.lock();
            state.receiver_gone = true;
            state.waker = None;
            std::mem::take(&mut state.msgs)
        };
        // Dropped outside the lock: a message may hold the last reference to a frame.
        drop(msgs);
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::{TrySendError, queue};
    use crate::hub::HubMsg;

    fn event(n: u8) -> HubMsg {
        HubMsg::Event(Arc::new(vec![n].into()))
    }

    fn number(msg: Option<HubMsg>) -> Option<u8> {
        match msg {
            Some(HubMsg::Event(bytes)) => Some(bytes[0]),
            _ => None,
        }
    }

    #[tokio::test]
    async fn messages_come_out_in_order_and_a_full_queue_refuses() {
        let (tx, mut rx) = queue(3);
        for n in 0..3 {
            assert!(tx.try_send(event(n)).is_ok());
        }
        assert!(matches!(tx.try_send(event(9)), Err(TrySendError::Full)));
        assert_eq!(number(rx.recv().await), Some(0));
        assert!(
            tx.try_send(event(3)).is_ok(),
            "a taken message frees its slot"
        );
        assert_eq!(number(rx.try_recv()), Some(1));
        assert_eq!(number(rx.recv().await), Some(2));
        assert_eq!(number(rx.recv().await), Some(3));
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_message_from_another_thread() {
        let (tx, mut rx) = queue(4);
        let waiting = tokio::spawn(async move { number(rx.recv().await) });
        // Sent from a plain thread, as the appender's fan-out does.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.try_send(event(7)).map_err(|e| format!("refused: {e:?}"))
        })
        .join()
        .expect("the thread")
        .expect("queued");
        assert_eq!(waiting.await.expect("the task"), Some(7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_message_from_a_busy_sender_arrives_once_in_order() {
        // The sender races the receiver's every poll: a wake-up lost between the
        // receiver finding the queue empty and leaving its waker would hang this.
        const N: u32 = 50_000;
        let (tx, mut rx) = queue(16);
        let sender = std::thread::spawn(move || {
            for n in 0..N {
                let msg = || HubMsg::Event(Arc::new(n.to_le_bytes().to_vec().into()));
                while let Err(e) = tx.try_send(msg()) {
                    assert_eq!(e, TrySendError::Full);
                    std::thread::yield_now();
                }
            }
        });
        let mut next: u32 = 0;
        while let Some(msg) = rx.recv().await {
            let HubMsg::Event(bytes) = msg else {
                panic!("only events were sent");
            };
            assert_eq!(bytes[..], next.to_le_bytes());
            next += 1;
        }
        assert_eq!(next, N, "then the end, once the sender is gone");
        sender.join().expect("the sender");
    }

    #[tokio::test]
    async fn the_receiver_hears_the_end_after_what_was_queued() {
        let (tx, mut rx) = queue(4);
        assert!(tx.try_send(event(1)).is_ok());
        let waiting = tokio::spawn(async move {
            let first = number(rx.recv().await);
            (first, rx.recv().await.is_none(), rx.recv().await.is_none())
        });
        tokio::task::yield_now().await;
        drop(tx);
        assert_eq!(waiting.await.expect("the task"), (Some(1), true, true));
    }

    #[test]
    fn a_queue_without_its_receiver_refuses_and_frees_what_it_held() {
        let (tx, rx) = queue(4);
        let frame = Arc::new(vec![1].into());
        assert!(tx.try_send(HubMsg::Event(Arc::clone(&frame))).is_ok());
        drop(rx);
        assert_eq!(Arc::strong_count(&frame), 1, "the queued copy was dropped");
        assert!(matches!(tx.try_send(event(2)), Err(TrySendError::Closed)));
    }

    #[tokio::test]
    async fn a_drained_burst_gives_its_buffer_back() {
        let (tx, mut rx) = queue(1000);
        for n in 0..500 {
            assert!(tx.try_send(event((n % 256) as u8)).is_ok());
        }
        for _ in 0..500 {
            assert!(rx.recv().await.is_some());
        }
        assert!(tx.shared.lock().msgs.capacity() <= super::KEEP_SLOTS);
    }
}
