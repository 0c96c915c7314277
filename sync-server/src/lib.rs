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
//!
//! [`serve`] runs the relay on a bound listener until its shutdown token fires.

pub mod access;
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

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;

use crate::state::AppState;

/// How long shutdown waits for connections to say goodbye and finish their writes.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `state` on `listener` until `state.shutdown` is cancelled, then waits (at
/// most [`SHUTDOWN_GRACE`]) for every connection to finish.
pub async fn serve(state: Arc<AppState>, listener: TcpListener) -> std::io::Result<()> {
    let app = http::routes(&state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(state.shutdown.clone().cancelled_owned())
        .await?;
    state.tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
    Ok(())
}
