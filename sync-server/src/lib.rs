//! The Dorandoran relay (`doran-server`): a thin server that stores opaque document
//! logs, content-addressed blobs, accounts, families and invites, and moves changes
//! between a family's devices. It never parses the documents it relays.
//!
//! # Layout
//!
//! - [`store`]: the storage traits and their SQLite, filesystem and memory backends,
//!   and PostgreSQL and S3 for several relays; [`backends`] picks them from the
//!   configuration.
//! - [`cluster`]: what relays sharing a database hear from each other (fan-out,
//!   revocations, memberships, events, presence).
//! - [`auth`], [`access`], [`rules`], [`rate`]: pure logic — signatures and
//!   challenges, who may read and write what, name rules, rate limits.
//! - [`session`]: one websocket connection's state machine; [`ws`]: its websocket,
//!   parked without buffers while idle.
//! - [`hub`]: live connections, subscriptions, fan-out and events.
//! - [`http`]: the axum routes (websocket, blobs, health, metrics).
//! - [`state`], [`config`], [`error`], [`metrics`]: the glue.
//! - [`tls`]: rustls configuration from PEM files and a TLS listener.
//!
//! [`serve`] runs the relay on a bound listener until its shutdown token fires;
//! [`serve_tls`] does the same over TLS.

pub mod access;
pub mod appender;
pub mod auth;
pub mod backends;
pub mod cluster;
pub mod config;
pub mod conns;
pub mod error;
pub mod gc;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod rate;
pub mod rules;
pub mod session;
pub mod state;
pub mod store;
pub mod tls;
pub mod ws;

use std::{future::IntoFuture, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    serve::{Listener, ListenerExt as _},
};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
};
use tokio_rustls::rustls::ServerConfig;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::{
    conns::{Entry, Tracked},
    metrics::{add, inc},
    state::AppState,
    tls::TlsListener,
};

/// How long shutdown waits for connections to say goodbye and finish their writes.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `state` on `listener` until `state.shutdown` is cancelled; then stops
/// accepting, lets HTTP requests in flight and websocket sessions (which say
/// `Goodbye`) finish, and returns — after at most [`SHUTDOWN_GRACE`].
pub async fn serve(state: Arc<AppState>, listener: TcpListener) -> std::io::Result<()> {
    // Websocket frames are small and latency matters: no Nagle delay. With it, a chunk
    // written right after an ack waited for the device's delayed ACK (up to 40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    run_graceful(&state, accept_loop(Arc::clone(&state), listener)).await
}

/// Like [`serve`], speaking TLS by `tls` (see [`tls::server_config`]). Handshakes
/// run beside the accept loop; shutdown and the peer address are as in [`serve`].
pub async fn serve_tls(
    state: Arc<AppState>,
    listener: TcpListener,
    tls: Arc<ServerConfig>,
) -> std::io::Result<()> {
    let listener = TlsListener::new(listener, tls)?;
    run_graceful(&state, accept_loop(Arc::clone(&state), listener)).await
}

/// Accepts connections until shutdown, each admitted under the connection cap
/// ([`conns`]) and served by hyper's HTTP/1 server with a deadline for request
/// headers; then waits for the HTTP connections to finish.
///
/// The relay runs its own loop instead of `axum::serve` for two things that one does
/// not offer: hyper's header-read timer (without it a socket that never sends a
/// request, or stays idle between requests, is held forever), and a place to count
/// and shed connections before they use up the process's file descriptors.
async fn accept_loop<L>(state: Arc<AppState>, mut listener: L) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = http::routes(&state);
    let connections = TaskTracker::new();
    let sweeper =
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(gc::run(Arc::clone(&state))));
    let cluster: Vec<_> = state
        .cluster
        .start(&state)
        .await
        .into_iter()
        .map(tokio_util::task::AbortOnDropHandle::new)
        .collect();
    // Connections wait in the backlog until the relay hears the other relays (or
    // gives up waiting: it then answers 503 until it does).
    if !state.cluster.ready(Duration::from_secs(10)).await {
        tracing::warn!("not hearing the other relays yet: refusing sessions until then");
    }
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = state.shutdown.cancelled() => break,
        };
        let shed_before = state.conns.shed_count();
        let admitted = state.conns.admit();
        add(
            &state.metrics.connections_shed,
            state.conns.shed_count() - shed_before,
        );
        let Ok(entry) = admitted else {
            inc(&state.metrics.connections_shed);
            // Everything open is a signed-in session: refuse the newcomer rather than
            // run out of file descriptors.
            tracing::info!(%peer, cap = state.conns.cap(), "connection cap reached; refusing a connection");
            drop(io);
            continue;
        };
        let io = Tracked::new(io, Arc::clone(&entry), state.conns.clone())
            .with_write_stall(state.config.limits.write_stall());
        connections.spawn(serve_connection(
            Arc::clone(&state),
            router.clone(),
            io,
            peer,
            entry,
        ));
    }
    drop(sweeper);
    connections.close();
    connections.wait().await;
    drop(cluster);
    state.cluster.leave().await;
    Ok(())
}

/// Serves one connection's HTTP requests (and hands a websocket upgrade over to its
/// session), until it closes, is shed, or shutdown ends it gracefully.
async fn serve_connection<I>(
    state: Arc<AppState>,
    router: Router,
    io: Tracked<I>,
    peer: SocketAddr,
    entry: Arc<Entry>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let for_requests = Arc::clone(&entry);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // What `into_make_service_with_connect_info` gave the handlers, plus the
        // connection's entry (a websocket session marks itself signed in there).
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(Arc::clone(&for_requests));
        router.clone().oneshot(request.map(Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    let header_timeout = state.config.limits.header_read_timeout();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let closed = entry.closed().clone();
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        }
        () = closed.cancelled() => {}
        () = state.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                () = closed.cancelled() => {}
            }
        }
    }
}

/// Runs `server` (an axum server with graceful shutdown on `state.shutdown`) until
/// the shutdown token fires, then gives it and the websocket sessions one
/// [`SHUTDOWN_GRACE`] to finish.
async fn run_graceful<S>(state: &AppState, server: S) -> std::io::Result<()>
where
    S: IntoFuture<Output = std::io::Result<()>>,
{
    let server = server.into_future();
    tokio::pin!(server);
    let finished = tokio::select! {
        result = &mut server => {
            result?;
            true
        }
        () = state.shutdown.cancelled() => false,
    };
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    let http = async {
        if finished {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("some HTTP requests did not finish in time");
                Ok(())
            }
        }
    };
    state.tasks.close();
    let sessions = async {
        if tokio::time::timeout_at(deadline, state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish in time");
        }
    };
    let (http, ()) = tokio::join!(http, sessions);
    http
}
