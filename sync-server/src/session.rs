//! One websocket connection: a state machine from `Hello` to signed in, then
//! requests, subscriptions and pushes.
//!
//! ```text
//! Connected ──Hello──▶ Challenged ──Register|SignIn|Recover|LinkDevice──▶ SignedIn
//!                          │  (the answer consumes the challenge, good or bad)
//!                          └─ failed ──▶ Spent ──Hello──▶ Challenged
//! ```
//!
//! Every refusal is a typed error frame and changes nothing; the connection stays
//! open except after a `Goodbye` (unsupported protocol version, repeated rate-limit
//! violations, revoked device, shutdown). Frames before sign-in other than `Hello`
//! and the challenge answers get `NotSignedIn`.
//!
//! One task runs a connection: it reads frames, handles each to completion (so an
//! `Ack` always follows the durable append), and forwards what the [`Hub`] queues
//! for it (live chunks, events). Live chunks of a document are forwarded only past
//! the seq its catch-up ended at, so a subscriber sees every chunk once, in order.
//!
//! [`Hub`]: crate::hub::Hub

mod account;
mod certs;
mod docs;
mod families;
mod invites;
mod key_packages;
mod requests;
mod signin;
mod snapshots;

pub(crate) use snapshots::expire_pending;

use std::{
    collections::{BTreeSet, HashMap},
    future::poll_fn,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::Arc,
    task::Poll,
    time::Duration,
};

use crate::{
    access::DocAccess,
    conns::Entry,
    hub::{self, ConnId, ConnTokens, HubMsg},
    metrics::{add, inc},
    rate::{ConnectionSlot, TokenBucket},
    state::{AppState, now_ms},
    store::DocOwner,
    ws::{Link, Socket},
};
use axum::body::Bytes;
use doran_protocol::{
    Challenge, ClientFrame, DeviceId, DocId, ErrorCode, ErrorFrame, Seq, ServerEvent, ServerFrame,
    UserId, codec,
};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// How long one write to the socket may take before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Hub messages forwarded per flush at most (then the socket gets its turn).
const DRAIN_HUB: usize = 64;

/// The connection is over (the socket failed, or a `Goodbye` was sent).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Disconnect;

/// Keep going, or stop.
pub(crate) type Flow = Result<(), Disconnect>;

/// The signed-in identity of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Me {
    pub(crate) user: UserId,
    pub(crate) device: DeviceId,
    pub(crate) conn: ConnId,
}

#[derive(Debug)]
enum Phase {
    Connected,
    Challenged(Challenge),
    Spent,
    SignedIn(Me),
}

/// A websocket connection being served.
#[derive(Debug)]
pub(crate) struct Session {
    state: Arc<AppState>,
    peer: SocketAddr,
    /// The websocket; parked (without its buffers) while the connection is idle.
    link: Link,
    phase: Phase,
    /// The `client` of the latest `Hello` (the device label).
    client: String,
    bucket: TokenBucket,
    /// Bytes of catch-up this connection may be sent: what one `Subscribe` makes the
    /// relay send is paced, however many documents (or the same one many times) it
    /// names.
    catch_up: TokenBucket,
    strikes: u32,
    /// Given to the hub when signed in: it cancels or revokes the connection.
    tokens: ConnTokens,
    hub_rx: Option<hub::Receiver>,
    /// Subscribed documents and the last seq delivered to this connection.
    subs: HashMap<DocId, Seq>,
    /// In a cluster: seqs of this connection's own pushes past what was delivered
    /// (not sent back to it, and no gap to fill).
    own: HashMap<DocId, BTreeSet<Seq>>,
    /// Granting access answers and the membership epoch they were read at.
    access_cache: HashMap<DocId, (u64, DocOwner, DocAccess, docs::Marks)>,
    /// Users this connection found with `LookupUser`, whose keys it may read.
    looked_up: certs::LookedUp,
    /// Its place among the relay's connections: marked never to be shed the moment
    /// the sign-in succeeds, before the device hears so.
    entry: Option<Arc<Entry>>,
}

/// What woke the connection up.
enum Wake {
    Shutdown,
    Cancelled,
    TooSlow,
    Hub(HubMsg),
    Socket(Option<Message>),
}

/// Serves one upgraded websocket until it closes. `entry` is its place among the
/// relay's connections ([`crate::conns`]): the session closes when the relay sheds
/// it, and marks it signed in (never shed) once it is.
pub async fn run(
    state: Arc<AppState>,
    socket: Socket,
    read_ahead: Bytes,
    peer: SocketAddr,
    slot: ConnectionSlot,
    entry: Option<Arc<Entry>>,
) {
    let limits = &state.config.limits;
    let park_after = limits.park_idle();
    // Boxed: this wait comes once, but its state would otherwise be part of every
    // connection's task for as long as the connection lives (888 bytes of it).
    let link = Box::pin(Link::new(
        socket,
        read_ahead,
        (park_after, limits.message_deadline()),
        Arc::clone(&state.metrics),
    ))
    .await;
    let bucket = TokenBucket::new(
        f64::from(limits.frames_per_second),
        f64::from(limits.frame_burst),
        Instant::now().into_std(),
    );
    let catch_up = TokenBucket::new(
        limits.catch_up_bytes_per_second as f64,
        limits.catch_up_burst_bytes as f64,
        Instant::now().into_std(),
    );
    inc(&state.metrics.connections_total);
    inc(&state.metrics.connections);
    let mut session = Session {
        state: Arc::clone(&state),
        peer,
        link,
        phase: Phase::Connected,
        client: String::new(),
        bucket,
        catch_up,
        strikes: 0,
        tokens: ConnTokens::default(),
        hub_rx: None,
        subs: HashMap::new(),
        own: HashMap::new(),
        access_cache: HashMap::new(),
        looked_up: certs::LookedUp::default(),
        entry,
    };
    tracing::debug!(%peer, "connection opened");
    let shed = session
        .entry
        .as_ref()
        .map_or_else(CancellationToken::new, |e| e.closed().clone());
    let opened = Instant::now();
    let (hello_by, signed_in_by) = (
        opened + limits.hello_timeout(),
        opened + limits.sign_in_timeout(),
    );
    loop {
        // A websocket that does not say Hello, or is not signed in, in time is closed:
        // without these deadlines a socket that never speaks is held forever.
        let deadline = match session.phase {
            Phase::Connected => Some(hello_by),
            Phase::Challenged(_) | Phase::Spent => Some(signed_in_by),
            Phase::SignedIn(_) => None,
        };
        let wake = tokio::select! {
            biased;
            () = state.shutdown.cancelled() => Wake::Shutdown,
            () = session.tokens.cancel.cancelled() => Wake::Cancelled,
            () = shed.cancelled() => Wake::Cancelled,
            () = until(deadline) => Wake::TooSlow,
            Some(msg) = recv_hub(session.hub_rx.as_mut()) => Wake::Hub(msg),
            msg = session.link.next() => Wake::Socket(msg),
        };
        let flow = match wake {
            Wake::Shutdown => {
                let _ = Box::pin(session.goodbye(
                    ErrorCode::ShuttingDown,
                    "the relay is restarting",
                    Some(1000),
                ))
                .await;
                break;
            }
            Wake::Cancelled => break,
            Wake::TooSlow => {
                tracing::debug!(%peer, "closing a websocket that did not sign in in time");
                let _ = Box::pin(session.goodbye(ErrorCode::TooSlow, "sign in sooner", None)).await;
                break;
            }
            Wake::Hub(msg) => session.on_hub(msg).await,
            Wake::Socket(None) => break,
            // Boxed: handling a frame can go through any request handler, and their
            // largest state would otherwise be part of every connection's task while
            // it sits idle (7.4 KB of it, before).
            Wake::Socket(Some(msg)) => Box::pin(session.on_message(msg)).await,
        };
        // Frames are queued, not written one by one: forward what else the hub has
        // ready, then write everything with one flush (one syscall for a burst of
        // chunks instead of one each).
        let flow = match flow {
            Ok(()) => session.drain_hub().await,
            Err(e) => Err(e),
        };
        if flow.is_err() || session.flush().await.is_err() {
            break;
        }
    }
    Box::pin(session.finish()).await;
    drop(slot);
    state
        .metrics
        .connections
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(%peer, "connection closed");
}

/// Resolves at `deadline`, or never.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `write` within [`WRITE_TIMEOUT`]. The timer is armed only if the write does not
/// finish at once: nearly every frame is only queued, and nearly every flush goes out
/// in one `sendto`. A timer made for each (a clock read, and the runtime's handle
/// taken and given back) was about 3 % of the relay's CPU under
/// `seed-stress --mix changes`.
///
/// The write comes pinned by the caller and the timer boxed: a future taken by value
/// is stored twice in this one's state (as the argument, and where it is pinned), and
/// that state, with a timer inline, was part of every connection's task while idle.
async fn within_write_timeout<F: Future>(
    mut write: Pin<&mut F>,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    match poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
        Poll::Ready(done) => Ok(done),
        Poll::Pending => Box::pin(tokio::time::timeout(WRITE_TIMEOUT, write)).await,
    }
}

async fn recv_hub(rx: Option<&mut hub::Receiver>) -> Option<HubMsg> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// The signed-in identity, if any.
    fn me(&self) -> Option<Me> {
        match &self.phase {
            Phase::SignedIn(me) => Some(*me),
            _ => None,
        }
    }

    async fn on_message(&mut self, msg: Message) -> Flow {
        // Every message but Close takes a token: text and websocket pings are not
        // frames, but a flood of them must be limited (and closed) like one of frames.
        let decoded = match msg {
            Message::Binary(bytes) => {
                inc(&self.state.metrics.frames_in);
                add(&self.state.metrics.bytes_in, bytes.len() as u64);
                Some(codec::decode_client_checked(&bytes))
            }
            Message::Text(_) => Some(Err(ErrorFrame::new(
                ErrorCode::MalformedFrame,
                "frames are binary messages",
            ))),
            Message::Close(_) => return Err(Disconnect),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        };
        if let Err(wait) = self.bucket.try_take(Instant::now().into_std()) {
            inc(&self.state.metrics.frames_rate_limited);
            self.strikes += 1;
            if self.strikes > self.state.config.limits.rate_limit_strikes {
                tracing::info!(peer = %self.peer, "closing a connection that ignores rate limits");
                return self
                    .goodbye(ErrorCode::RateLimited, "too many frames", Some(10_000))
                    .await;
            }
            let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut e = ErrorFrame::new(ErrorCode::RateLimited, "too many frames").retry_after(ms);
            if let Some(Ok(frame)) = &decoded {
                e = e.about(frame);
            }
            return self.send_error(e).await;
        }
        self.strikes = 0;
        match decoded {
            Some(Ok(frame)) => self.on_frame(frame).await,
            Some(Err(e)) => self.send_error(e).await,
            None => Ok(()),
        }
    }

    async fn on_frame(&mut self, frame: ClientFrame) -> Flow {
        tracing::trace!(kind = frame.kind(), "frame");
        let signed_in = self.me();
        // The device was revoked while this connection was open: nothing it sends is
        // served any more, even if the hub's `Close` has not been read yet.
        if signed_in.is_some() && self.tokens.revoked.is_cancelled() {
            return self.goodbye_revoked().await;
        }
        match (frame, signed_in) {
            (ClientFrame::Hello { .. }, Some(_)) => {
                self.send_error(ErrorFrame::new(
                    ErrorCode::UnexpectedFrame,
                    "already said hello",
                ))
                .await
            }
            (
                ClientFrame::Hello {
                    protocol_version,
                    client,
                },
                None,
            ) => self.on_hello(protocol_version, client).await,
            (frame, Some(_)) if frame.is_sign_in() => {
                let e = ErrorFrame::new(ErrorCode::AlreadySignedIn, "already signed in");
                self.send_error(e).await
            }
            (frame, None) if frame.is_sign_in() => self.on_answer(frame).await,
            (frame, None) => {
                let e = ErrorFrame::new(ErrorCode::NotSignedIn, "sign in first").about(&frame);
                self.send_error(e).await
            }
            (ClientFrame::Request { id, body }, Some(me)) => self.on_request(me, id, body).await,
            (ClientFrame::Subscribe { docs }, Some(me)) => self.on_subscribe(me, docs).await,
            (ClientFrame::Unsubscribe { docs }, Some(me)) => {
                for doc in docs {
                    self.state.hub.unsubscribe(me.conn, doc);
                    self.subs.remove(&doc);
                }
                Ok(())
            }
            (ClientFrame::Push { doc, chunk, bytes }, Some(me)) => {
                self.on_push(me, doc, chunk, bytes).await
            }
            (
                ClientFrame::PushSnapshot {
                    doc,
                    covers_seq,
                    blob,
                    len,
                },
                Some(me),
            ) => self.on_push_snapshot(me, doc, covers_seq, blob, len).await,
            (ClientFrame::Ping { nonce }, Some(_)) => self.send(&ServerFrame::Pong { nonce }).await,
            // Sign-in frames and Hello are handled above.
            (frame, Some(_)) => {
                let e =
                    ErrorFrame::new(ErrorCode::UnexpectedFrame, "unexpected frame").about(&frame);
                self.send_error(e).await
            }
        }
    }

    /// Forwards what the hub queued. The frequent messages are sent inline; the rare
    /// ones that do more (filling a gap, re-checking access, saying goodbye) run boxed,
    /// so their state does not enlarge every idle connection's task.
    async fn on_hub(&mut self, msg: HubMsg) -> Flow {
        // In a cluster a chunk announced by another relay can reach the hub after the
        // revocation was seen here; a revoked session forwards nothing more.
        if !matches!(msg, HubMsg::Close(_)) && self.tokens.revoked.is_cancelled() {
            return Box::pin(self.goodbye_revoked()).await;
        }
        match msg {
            HubMsg::Chunk(live) => {
                // One lookup for the common case (the cursor moved in place): a
                // delivery is the most frequent thing a session does.
                let Some(delivered) = self.subs.get_mut(&live.doc) else {
                    return Ok(());
                };
                if live.seq <= *delivered {
                    return Ok(());
                }
                if self.state.cluster.is_shared() && live.seq > *delivered + 1 {
                    // Another relay's chunk may be overtaken by one appended here:
                    // never skip a seq.
                    let from = *delivered;
                    Box::pin(self.fill_gap(live.doc, from, live.seq)).await?;
                    self.subs.insert(live.doc, live.seq);
                } else {
                    *delivered = live.seq;
                }
                self.send_bytes(live.frame.clone()).await
            }
            HubMsg::Event(frame) => self.send_bytes(Bytes::clone(&frame)).await,
            HubMsg::DocFrame(f) if self.subs.contains_key(&f.doc) => {
                self.send_bytes(f.frame.clone()).await
            }
            HubMsg::DocFrame(_) => Ok(()),
            HubMsg::Recheck => Box::pin(self.recheck_subscriptions()).await,
            HubMsg::Close(c) => Box::pin(self.goodbye(c.reason, &c.message, None)).await,
        }
    }

    /// Sends a frame.
    pub(crate) async fn send(&mut self, frame: &ServerFrame) -> Flow {
        match codec::encode_server(frame) {
            Ok(bytes) => self.send_bytes(Bytes::from(bytes)).await,
            Err(e) => {
                tracing::error!(error = %e, kind = frame.kind(), "cannot encode a frame");
                let e = ErrorFrame::new(ErrorCode::Internal, "the answer could not be encoded");
                match codec::encode_server(&ServerFrame::Error(e)) {
                    Ok(bytes) => self.send_bytes(Bytes::from(bytes)).await,
                    Err(_) => Err(Disconnect),
                }
            }
        }
    }

    /// Queues an already encoded frame; the connection's loop flushes after each
    /// wake-up ([`flush`](Self::flush)). A full write buffer is written out here.
    pub(crate) async fn send_bytes(&mut self, bytes: Bytes) -> Flow {
        let len = bytes.len() as u64;
        match within_write_timeout(pin!(self.link.feed(Message::Binary(bytes)))).await {
            Ok(Ok(())) => {
                inc(&self.state.metrics.frames_out);
                add(&self.state.metrics.bytes_out, len);
                Ok(())
            }
            Ok(Err(_)) | Err(_) => Err(Disconnect),
        }
    }

    /// Writes out the queued frames.
    pub(crate) async fn flush(&mut self) -> Flow {
        match within_write_timeout(pin!(self.link.flush())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(Disconnect),
        }
    }

    /// Forwards the hub messages already waiting (at most [`DRAIN_HUB`]), so a burst
    /// goes out with one flush.
    async fn drain_hub(&mut self) -> Flow {
        for _ in 0..DRAIN_HUB {
            let Some(msg) = self.hub_rx.as_mut().and_then(hub::Receiver::try_recv) else {
                return Ok(());
            };
            self.on_hub(msg).await?;
        }
        Ok(())
    }

    /// Sends an error frame.
    pub(crate) async fn send_error(&mut self, e: ErrorFrame) -> Flow {
        inc(&self.state.metrics.errors);
        tracing::debug!(code = e.code.name(), message = %e.message, "refused");
        self.send(&ServerFrame::Error(e)).await
    }

    /// Sends an event to this connection.
    pub(crate) async fn send_event(&mut self, event: ServerEvent) -> Flow {
        self.send(&ServerFrame::Event(event)).await
    }

    /// Whether the rest of a long answer (a catch-up) may still be sent: not once the
    /// device is revoked (then `Goodbye(device_revoked)`, as when a frame comes in), nor
    /// once the hub dropped the connection (a full queue). Frames are checked as they
    /// arrive, but one `Subscribe` can stream for minutes, so the streaming checks too.
    pub(crate) async fn still_served(&mut self) -> Flow {
        if self.tokens.revoked.is_cancelled() {
            return self.goodbye_revoked().await;
        }
        if self.tokens.cancel.is_cancelled() {
            return Err(Disconnect);
        }
        Ok(())
    }

    /// Says `Goodbye(device_revoked)` and closes the socket.
    pub(crate) async fn goodbye_revoked(&mut self) -> Flow {
        self.goodbye(ErrorCode::DeviceRevoked, "this device was revoked", None)
            .await
    }

    /// Sends `Goodbye` and closes the socket.
    pub(crate) async fn goodbye(
        &mut self,
        reason: ErrorCode,
        message: &str,
        retry_after_ms: Option<u64>,
    ) -> Flow {
        let _ = self
            .send(&ServerFrame::goodbye(reason, message, retry_after_ms))
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.link.close()).await;
        Err(Disconnect)
    }

    /// Cleans up when the connection ends: hub, presence, last seen.
    async fn finish(&mut self) {
        match &self.phase {
            Phase::Challenged(challenge) => self.state.challenges.forget(challenge),
            Phase::SignedIn(me) => {
                let me = *me;
                let now = now_ms();
                let here = self.state.hub.unregister(me.conn, now).is_some();
                let went_offline = self
                    .state
                    .cluster
                    .disconnected(me.user, me.conn, here)
                    .await;
                let device = me.device;
                if let Err(e) = self
                    .state
                    .accounts(move |a| a.touch_device(device, now, None))
                    .await
                {
                    tracing::warn!(error = %e, "cannot record last seen");
                }
                if went_offline {
                    self.announce_presence(me.user, false, now).await;
                }
            }
            Phase::Connected | Phase::Spent => {}
        }
    }
}
