//! [`Link`]: a session's websocket, parked without its buffers while idle.
//!
//! An open link is tungstenite's websocket over a [`Gate`] and the relay's own outbox
//! for binary messages (`super::outbox`): tungstenite's read and write buffers, the
//! outbox's (which keeps the capacity of the largest burst ever written, e.g. a
//! catch-up), its waker cells, the gate's read buffer and the park timer — several KB
//! a connection. After `park_after` without a message either way, at a message
//! boundary and with everything written, the link drops all of that and keeps only
//! the gate (the socket, and at most a partial frame header read ahead).
//! The websocket is built again, over the same gate, when the socket has bytes or the
//! session sends: no byte read ahead is lost, none is read twice.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::body::Bytes;
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _, future::poll_fn};
use tokio::{
    io::AsyncWrite as _,
    time::{Instant, Sleep},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, protocol::Role},
};

use super::{
    gate::Gate,
    outbox::{Outbox, WRITE_BUFFER},
    socket::Socket,
};
use crate::metrics::{Metrics, inc};

/// The websocket is gone: the socket closed, failed, or could not be rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the websocket is closed")]
pub struct Closed;

/// A session's websocket, open or parked.
#[derive(Debug)]
pub struct Link {
    state: State,
    /// Idle time after which the link parks; `None`: never.
    park_after: Option<Duration>,
    /// How long a message begun may take to finish; `None`: for ever.
    message_deadline: Option<Duration>,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
enum State {
    Open(Box<Open>),
    Parked(Gate<Socket>),
    /// Closed, or a rebuild failed.
    Gone,
}

#[derive(Debug)]
struct Open {
    ws: WebSocketStream<Gate<Socket>>,
    /// The session's binary messages, written by the relay itself after whatever
    /// tungstenite has queued (see `outbox`).
    out: Outbox,
    /// Fires `park_after` (or, never parking, every second while a message deadline
    /// applies) after it was last set; `None` when neither applies.
    timer: Option<Pin<Box<Sleep>>>,
    /// Since when a message has been begun and not finished, as the timer saw it.
    mid_since: Option<Instant>,
    /// A message went either way since the timer was set.
    busy: bool,
    /// A close frame was read or sent: the connection is ending, and is never parked
    /// (tungstenite reports its end as a successful flush, and a websocket built again
    /// over the socket would be open as if nothing had been said).
    closing: bool,
}

impl Link {
    /// The websocket over `socket`, just upgraded; `read_ahead` is what was read from
    /// it past the upgrade request.
    /// `limits`: the idle time before it parks, and how long a message begun may
    /// take to finish (`None`: never, for ever).
    pub async fn new(
        socket: Socket,
        read_ahead: Bytes,
        (park_after, message_deadline): (Option<Duration>, Option<Duration>),
        metrics: Arc<Metrics>,
    ) -> Link {
        let gate = Gate::with_read_ahead(socket, &read_ahead);
        let ws = WebSocketStream::from_raw_socket(gate, Role::Server, Some(super::config())).await;
        let mut link = Link {
            state: State::Gone,
            park_after,
            message_deadline,
            metrics,
        };
        link.state = State::Open(Box::new(Open::new(ws, link.tick())));
        link
    }

    /// How often the timer looks at an open link: the park delay, or every second
    /// when only a message deadline applies.
    fn tick(&self) -> Option<Duration> {
        self.park_after
            .or(self.message_deadline.map(|_| Duration::from_secs(1)))
    }

    /// Whether the link is parked now.
    pub fn is_parked(&self) -> bool {
        matches!(self.state, State::Parked(_))
    }

    /// The next message; `None` once the socket closed or failed. Parks the link when
    /// it has been idle long enough, and builds it again when bytes come. Cancel-safe:
    /// what was read stays in the link.
    pub async fn next(&mut self) -> Option<Message> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let tick = self.tick();
        loop {
            match &mut self.state {
                State::Gone => return Poll::Ready(None),
                State::Parked(gate) => {
                    ready!(gate.poll_input(cx));
                    if self.unpark().is_err() {
                        return Poll::Ready(None);
                    }
                }
                State::Open(open) => {
                    if let Poll::Ready(item) = open.ws.poll_next_unpin(cx) {
                        open.busy = true;
                        open.mid_since = None;
                        open.closing |= matches!(item, Some(Ok(Message::Close(_))));
                        return Poll::Ready(match item {
                            Some(Ok(msg)) => Some(msg),
                            Some(Err(e)) => {
                                tracing::debug!(error = %e, "websocket read failed");
                                None
                            }
                            None => None,
                        });
                    }
                    let (Some(timer), Some(after)) = (open.timer.as_mut(), tick) else {
                        return Poll::Pending;
                    };
                    ready!(timer.as_mut().poll(cx));
                    if open.closing {
                        return Poll::Pending;
                    }
                    let boundary = open.ws.get_ref().at_message_boundary();
                    if boundary {
                        open.mid_since = None;
                    } else {
                        let since = *open.mid_since.get_or_insert_with(Instant::now);
                        if self.message_deadline.is_some_and(|d| since.elapsed() >= d) {
                            tracing::info!(
                                "a websocket message left unfinished past its deadline: closing"
                            );
                            inc(&self.metrics.messages_too_slow);
                            self.state = State::Gone;
                            return Poll::Ready(None);
                        }
                    }
                    if self.park_after.is_none() {
                        open.busy = false;
                        timer.as_mut().reset(Instant::now() + after);
                        continue;
                    }
                    if open.busy || !boundary || !open.out.is_empty() {
                        // Busy since the timer was set, or a frame or message is half
                        // read: look again later.
                        open.busy = false;
                        timer.as_mut().reset(Instant::now() + after);
                        continue;
                    }
                    // A pong tungstenite queued goes out before its buffers go.
                    if let Err(e) = ready!(open.ws.poll_flush_unpin(cx)) {
                        tracing::debug!(error = %e, "websocket flush failed");
                        return Poll::Ready(None);
                    }
                    self.park();
                }
            }
        }
    }

    /// Queues `msg` (written by [`flush`](Self::flush), or at once when
    /// [`WRITE_BUFFER`] bytes wait). A parked link is built again first. Binary
    /// messages go to the outbox; any other is handed to tungstenite after the
    /// outbox's bytes are written, so messages leave in the order they were fed.
    pub async fn feed(&mut self, msg: Message) -> Result<(), Closed> {
        let open = self.open()?;
        open.busy = true;
        match msg {
            // Nothing follows a close frame either way (RFC 6455 §5.5.1): tungstenite
            // refused that itself, and the outbox goes around its checks.
            Message::Binary(_) if open.closing => Err(Closed),
            Message::Binary(bytes) => {
                open.out.push_binary(&bytes);
                if open.out.pending() >= WRITE_BUFFER {
                    poll_fn(|cx| open.poll_write_out(cx)).await?;
                }
                Ok(())
            }
            other => {
                poll_fn(|cx| open.poll_write_out(cx)).await?;
                open.closing |= matches!(other, Message::Close(_));
                open.ws.feed(other).await.map_err(|e| {
                    tracing::debug!(error = %e, "websocket write failed");
                    Closed
                })
            }
        }
    }

    /// Writes out what was queued. A parked link has nothing queued.
    pub async fn flush(&mut self) -> Result<(), Closed> {
        match &mut self.state {
            State::Open(open) => poll_fn(|cx| open.poll_flush(cx)).await,
            State::Parked(_) => Ok(()),
            State::Gone => Err(Closed),
        }
    }

    /// Sends a close frame (after what was queued) and waits for it to be written.
    pub async fn close(&mut self) -> Result<(), Closed> {
        let open = self.open()?;
        poll_fn(|cx| open.poll_write_out(cx)).await?;
        open.closing = true;
        open.ws.close(None).await.map_err(|_| Closed)
    }

    /// The open websocket, built again if the link is parked.
    fn open(&mut self) -> Result<&mut Open, Closed> {
        if self.is_parked() {
            self.unpark()?;
        }
        match &mut self.state {
            State::Open(open) => Ok(open),
            State::Parked(_) | State::Gone => Err(Closed),
        }
    }

    /// Drops the websocket and keeps the gate. Only at a message boundary with
    /// everything written: then tungstenite holds nothing that is not elsewhere.
    fn park(&mut self) {
        if let State::Open(open) = std::mem::replace(&mut self.state, State::Gone) {
            let mut gate = open.ws.into_inner();
            gate.shrink();
            self.state = State::Parked(gate);
            inc(&self.metrics.connections_parked);
            inc(&self.metrics.parks);
        }
    }

    /// Builds the websocket again over the parked gate.
    fn unpark(&mut self) -> Result<(), Closed> {
        let State::Parked(gate) = std::mem::replace(&mut self.state, State::Gone) else {
            return Err(Closed);
        };
        self.metrics
            .connections_parked
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        // tokio-tungstenite builds the websocket in a future that completes when
        // first polled (it only needs a waker); it never waits.
        let ws = WebSocketStream::from_raw_socket(gate, Role::Server, Some(super::config()))
            .now_or_never()
            .ok_or(Closed)?;
        self.state = State::Open(Box::new(Open::new(ws, self.tick())));
        Ok(())
    }
}

impl Open {
    fn new(ws: WebSocketStream<Gate<Socket>>, park_after: Option<Duration>) -> Open {
        Open {
            ws,
            out: Outbox::default(),
            timer: park_after.map(|after| Box::pin(tokio::time::sleep(after))),
            busy: false,
            closing: false,
            mid_since: None,
        }
    }
}

impl Open {
    /// Writes out what tungstenite has queued (a pong, a close frame), then the
    /// outbox. tungstenite's bytes go first: the outbox is empty whenever tungstenite
    /// may queue something, so what it holds was queued before the outbox's bytes.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        if self.out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.ws.poll_flush_unpin(cx)).map_err(flush_failed)?;
        self.out.poll_write_out(self.ws.get_mut(), cx).map_err(|e| {
            tracing::debug!(error = %e, "websocket write failed");
            Closed
        })
    }

    /// Writes everything out and flushes the socket (TLS sends its records then).
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        if self.out.is_empty() {
            // What tungstenite queued, if anything, and the socket's flush.
            return self.ws.poll_flush_unpin(cx).map_err(flush_failed);
        }
        // tungstenite's queue is written first by `poll_write_out`, and nothing can be
        // queued in it before the socket's flush: that is all left to do.
        ready!(self.poll_write_out(cx))?;
        Pin::new(self.ws.get_mut())
            .poll_flush(cx)
            .map_err(flush_failed)
    }
}

/// A flush of tungstenite's queue or of the socket failed: the link is closed.
fn flush_failed(error: impl std::fmt::Display) -> Closed {
    tracing::debug!(%error, "websocket flush failed");
    Closed
}

impl Drop for Link {
    fn drop(&mut self) {
        if self.is_parked() {
            self.metrics
                .connections_parked
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
