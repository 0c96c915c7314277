//! The HTTP surface: the websocket upgrade, blobs, health and metrics.
//!
//! | route | what |
//! |---|---|
//! | `GET /ws` | upgrade to the device websocket (see [`crate::session`]) |
//! | `PUT /blobs/{hash}?family={id}` | upload a blob (signed, see [`blobs`]) |
//! | `GET`/`HEAD /blobs/{hash}` | download a blob, `Range` supported (signed) |
//! | `GET /healthz` | `ok` while the relay serves |
//! | `GET /server-id` | the relay's id (signed into blob requests) |
//! | `GET /metrics` | Prometheus text |
//!
//! Every response carries security headers (`x-content-type-options: nosniff`,
//! `x-frame-options: DENY`, `referrer-policy: no-referrer`, a `content-security-policy`
//! that allows nothing) and no CORS headers: browsers may not call the relay from
//! other origins. Blob requests are authenticated by signed headers, described in
//! [`crate::auth::http`].

pub mod blobs;
pub mod pace;
pub mod range;
pub mod turns;
pub mod upgrade;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    Extension, Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::{IntoResponse, Response},
    routing::{get, put},
};
use doran_protocol::ErrorCode;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::{conns::Entry, error::ApiError, http::upgrade::Upgrade, session, state::AppState};

/// The relay's routes over `state`.
pub fn routes(state: &Arc<AppState>) -> Router {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    // One layer of five, not five layers: the router boxes each layer it is given
    // around every route, and clones every box for every request (about 6 k
    // instructions a download with five).
    let security = ServiceBuilder::new()
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        .layer(set(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .layer(set(
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ));
    Router::new()
        .route("/ws", get(websocket))
        .route("/blobs/{hash}", put(blobs::put_blob).get(blobs::get_blob))
        .route("/healthz", get(healthz))
        .route("/server-id", get(server_id))
        .route("/metrics", get(metrics))
        .with_state(Arc::clone(state))
        .layer(security)
}

/// Upgrades to the device websocket, within the per-address connection limit.
async fn websocket(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    entry: Option<Extension<Arc<Entry>>>,
    upgrade: Upgrade,
) -> Response {
    let entry = entry.map(|Extension(e)| e);
    if state.shutdown.is_cancelled() {
        return ApiError::new(ErrorCode::ShuttingDown, "the relay is shutting down")
            .into_response();
    }
    if !state.cluster.serving() {
        return ApiError::unavailable("the relay cannot reach its database").into_response();
    }
    let peer = client_address(&state, peer, &headers);
    let Some(slot) = state.connections.acquire(limit_key(peer.ip())) else {
        tracing::info!(%peer, "too many connections from this address");
        return ApiError::rate_limited(5_000).into_response();
    };
    upgrade.on_upgrade(move |socket, read_ahead| {
        let tasks = state.tasks.clone();
        tasks.track_future(session::run(state, socket, read_ahead, peer, slot, entry))
    })
}

/// The device's address: the peer's, or — when the peer is a trusted proxy — the
/// nearest address in `X-Forwarded-For` that is not one (each proxy appends the
/// address it saw, so entries left of an untrusted one may be forged by the client).
pub fn client_address(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
    if !state.config.trusts(peer.ip()) {
        return peer;
    }
    let forwarded = headers
        .get_all(HeaderName::from_static("x-forwarded-for"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .iter()
        .rev()
        .find(|ip| !state.config.trusts(**ip))
        .or(forwarded.first())
        .map_or(peer, |ip| SocketAddr::new(*ip, peer.port()))
}

/// What the per-address limits count an address as: an IPv4 address, or an IPv6
/// address's /64 — one home or phone gets a whole /64, so counting each of its
/// addresses apart would give one client billions of allowances.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
        v4 @ IpAddr::V4(_) => v4,
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.shutdown.is_cancelled() {
        return ApiError::new(ErrorCode::ShuttingDown, "shutting down").into_response();
    }
    if !state.cluster.serving() {
        return ApiError::unavailable("the relay cannot reach its database").into_response();
    }
    "ok\n".into_response()
}

/// The relay's id, the one in its challenges: devices sign it into every blob
/// request. Public (every challenge says it anyway).
async fn server_id(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        state.config.server_id.clone(),
    )
        .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render();
    // Read from the registry itself, not counted beside it.
    text.push_str(&format!(
        "# HELP doran_uploads_in_progress Blob uploads receiving their body.\n\
         # TYPE doran_uploads_in_progress gauge\n\
         doran_uploads_in_progress {}\n",
        state.uploads_in_flight.len()
    ));
    if let Some(c) = state.stores.blobs.cache_stats() {
        text.push_str(&format!(
            "# HELP doran_blob_cache_hits_total Small downloads answered from the blob cache.\n\
             # TYPE doran_blob_cache_hits_total counter\n\
             doran_blob_cache_hits_total {}\n\
             # HELP doran_blob_cache_misses_total Small downloads read from the blob store.\n\
             # TYPE doran_blob_cache_misses_total counter\n\
             doran_blob_cache_misses_total {}\n\
             # HELP doran_blob_cache_bytes Bytes of blobs in the blob cache.\n\
             # TYPE doran_blob_cache_bytes gauge\n\
             doran_blob_cache_bytes {}\n",
            c.hits, c.misses, c.bytes
        ));
    }
    if let Some((hits, misses)) = state.stores.accounts.read_cache_stats() {
        text.push_str(&format!(
            "# HELP doran_store_cache_hits_total Invite lists and download checks answered from memory.\n\
             # TYPE doran_store_cache_hits_total counter\n\
             doran_store_cache_hits_total {hits}\n\
             # HELP doran_store_cache_misses_total Invite lists and download checks read from the store.\n\
             # TYPE doran_store_cache_misses_total counter\n\
             doran_store_cache_misses_total {misses}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_limits_count_an_ipv6_64_as_one_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:bbbb:cccc:dddd:eeee".parse().expect("v6");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(other));
        assert_eq!(
            limit_key(a),
            "2001:db8:1:2::".parse::<IpAddr>().expect("v6")
        );
        let v4: IpAddr = "203.0.113.7".parse().expect("v4");
        assert_eq!(limit_key(v4), v4);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().expect("mapped");
        assert_eq!(
            limit_key(mapped),
            v4,
            "an IPv4 client over IPv6 counts as itself"
        );
    }
}
