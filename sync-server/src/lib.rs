//! The Dorandoran relay (`doran-server`): a thin server that stores opaque document
//! logs, content-addressed blobs, accounts, families and invites, and moves changes
//! between a family's devices. It never parses the documents it relays.
//!
//! # Layout
//!
//! - [`store`]: the storage traits and their SQLite, filesystem and memory backends.
//! - [`auth`], [`access`], [`rules`], [`rate`]: pure logic — signatures and
//!   challenges, who may read and write what, name rules, rate limits.
//! - [`session`]: one websocket connection's state machine.
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
pub mod config;
pub mod error;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod rate;
pub mod rules;
pub mod session;
pub mod state;
pub mod store;
pub mod tls;

use std::{future::IntoFuture, net::SocketAddr, sync::Arc, time::Duration};

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;

use crate::{state::AppState, tls::TlsListener};

/// How long shutdown waits for connections to say goodbye and finish their writes.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `state` on `listener` until `state.shutdown` is cancelled; then stops
/// accepting, lets HTTP requests in flight and websocket sessions (which say
/// `Goodbye`) finish, and returns — after at most [`SHUTDOWN_GRACE`].
pub async fn serve(state: Arc<AppState>, listener: TcpListener) -> std::io::Result<()> {
    let app = http::routes(&state).into_make_service_with_connect_info::<SocketAddr>();
    // Websocket frames are small and latency matters: no Nagle delay. With it, a chunk
    // written right after an ack waited for the device's delayed ACK (up to 40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server =
        axum::serve(listener, app).with_graceful_shutdown(state.shutdown.clone().cancelled_owned());
    run_graceful(&state, server).await
}

/// Like [`serve`], speaking TLS by `tls` (see [`tls::server_config`]). Handshakes
/// run beside the accept loop; shutdown and the peer address are as in [`serve`].
pub async fn serve_tls(
    state: Arc<AppState>,
    listener: TcpListener,
    tls: Arc<ServerConfig>,
) -> std::io::Result<()> {
    let app = http::routes(&state).into_make_service_with_connect_info::<SocketAddr>();
    // `tap_io` (a no-op here) is what gives a custom listener axum's
    // `ConnectInfo<SocketAddr>` (its `Addr`, the peer), used for per-address limits.
    let listener = TlsListener::new(listener, tls)?.tap_io(|_| ());
    let server =
        axum::serve(listener, app).with_graceful_shutdown(state.shutdown.clone().cancelled_owned());
    run_graceful(&state, server).await
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
