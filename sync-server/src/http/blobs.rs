//! Blob upload and download over HTTP, authorised per family or per user.
//!
//! - `PUT /blobs/{hash}?family={id}`: the caller must be a member of `family`. The
//!   body is streamed to the blob store, counted against the size limit and the
//!   family's quota as it arrives, and published only if it hashes (blake3) to
//!   `hash`; then the blob is granted to `family`. Answers `201` with an empty body.
//!   The bytes are always uploaded and verified, even when the relay already holds
//!   the blob: possession of the bytes, not knowledge of the hash, earns the grant.
//! - `PUT /blobs/{hash}?owner=me`: a personal blob (avatar, snapshot of the personal
//!   document), the same way, counted against the caller's personal quota and
//!   granted to the caller: it is then read like their personal document, by them
//!   and by everyone who shares a family with them, including families joined later.
//!   Exactly one of `family` and `owner` is given.
//! - `GET /blobs/{hash}` and `HEAD`: the blob must be granted to a family the caller
//!   belongs to, to the caller, or to someone who shares a family with the caller,
//!   else `404` (whether it exists elsewhere is not revealed). One `Range` is
//!   honoured (`206`, or `416`).
//!
//! An account has at most `max_uploads_per_account` uploads in progress, an address
//! `max_uploads_per_address` (and the relay `max_concurrent_uploads`); after
//! `upload_grace_secs` an upload must keep an average of
//! `upload_min_bytes_per_second`, and when every slot is taken the slowest one gives
//! way to a newcomer ([`super::pace`]), so trickling bodies cannot hold the upload
//! slots. From publishing its bytes until they are granted, an upload holds the blob
//! sweep off ([`crate::gc`]). An address has at most `max_downloads_per_address`
//! downloads in progress, from the request until its body is sent; past it a
//! download waits for its turn ([`super::turns`]).
//!
//! Errors are [`ApiError`]s: the status, an `x-doran-error` header with the protocol
//! error code, and a short text body.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    Extension,
    body::{Body, Bytes},
    extract::{ConnectInfo, Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header, request::Parts},
    response::{IntoResponse, Response},
};
use doran_protocol::{BlobHash, DeviceId, ErrorCode, FamilyId, UserId};
use futures_util::{StreamExt, stream};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{
    pace::{Pace, Progress},
    range::{self, RangeRequest},
    turns::Turn,
};
use crate::{
    auth::{
        http::{DEVICE_HEADER, HttpCredentials, Proof, SIGNATURE_HEADER, TIME_HEADER},
        session_keys::{self, MAC_HEADER, SESSION_KEY_HEADER},
    },
    conns::Entry,
    error::{ApiError, ApiResult},
    metrics::add,
    state::{AppState, blocking, now_ms},
    store::{BlobGrantee, DeviceRecord, StoreError, StoreResult, UploadGrant, UploadVerdict},
};

/// Bytes read from the store per piece of a download.
const READ_PIECE: u64 = 256 * 1024;

/// The largest blob a download reads whole (a thumbnail, an avatar, a short voice
/// message) — on the worker that asked when the blob store reads at once, else in one
/// trip to the blocking pool — and the largest the blob cache keeps; larger ones
/// stream through the blocking pool in pieces.
pub(crate) const READ_AT_ONCE: u64 = 64 * 1024;

/// The query of an upload.
#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    /// The family the blob is for.
    pub family: Option<String>,
    /// `me`: a personal blob of the caller.
    pub owner: Option<String>,
}

/// Whom an upload is granted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grantee {
    Family(FamilyId),
    /// The uploading user (`?owner=me`).
    Me,
}

impl UploadQuery {
    fn grantee(&self) -> ApiResult<Grantee> {
        match (self.family.as_deref(), self.owner.as_deref()) {
            (Some(family), None) => family
                .parse()
                .map(Grantee::Family)
                .map_err(|_| ApiError::new(ErrorCode::InvalidInput, "not a family id")),
            (None, Some("me")) => Ok(Grantee::Me),
            (None, Some(_)) => Err(ApiError::new(
                ErrorCode::InvalidInput,
                "a personal blob is uploaded with ?owner=me",
            )),
            (Some(_), Some(_)) => Err(ApiError::new(
                ErrorCode::InvalidInput,
                "say ?family= or ?owner=me, not both",
            )),
            (None, None) => Err(ApiError::new(
                ErrorCode::InvalidInput,
                "say which family (?family=) or ?owner=me",
            )),
        }
    }
}

/// Who made an accepted request, and how it was proved.
struct Caller {
    user: UserId,
    device: DeviceId,
    creds: HttpCredentials,
}

/// Checks the signed (or MAC'd) headers; returns the caller.
async fn authenticate(
    state: &Arc<AppState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<Caller> {
    let signed = Signed::read(method, uri, headers)?;
    let creds = signed.creds;
    let replay = state.http_auth.replay_key(&creds);
    let checking = Arc::clone(state);
    let (user, device) = blocking(move || Ok(signed.check(&checking))).await??;
    claim(state, replay).await?;
    accepted(state, &creds);
    Ok(Caller {
        user,
        device,
        creds,
    })
}

/// Counts an accepted request by its proof.
fn accepted(state: &AppState, creds: &HttpCredentials) {
    add(
        match creds.proof {
            Proof::Signature(_) => &state.metrics.http_signed,
            Proof::Mac(_) => &state.metrics.http_maced,
        },
        1,
    );
}

/// Gives the device a session key with the answer to a signed request (see
/// [`crate::auth::session_keys`]), made now: an upload's answer comes after its body,
/// and the key's life counts from when the device gets it.
fn give_session_key(response: &mut Response, state: &AppState, creds: &HttpCredentials) {
    let key = state.http_auth.session_key(creds, now_ms());
    if let Some(value) =
        key.and_then(|k| HeaderValue::from_str(&session_keys::header_value(&k)).ok())
    {
        response.headers_mut().insert(SESSION_KEY_HEADER, value);
    }
}

/// A request's signed headers, read but not checked yet.
struct Signed {
    creds: HttpCredentials,
    method: Method,
    path_and_query: String,
}

impl Signed {
    fn read(method: &Method, uri: &Uri, headers: &HeaderMap) -> ApiResult<Self> {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let creds = HttpCredentials::parse(
            text(DEVICE_HEADER),
            text(TIME_HEADER),
            (text(SIGNATURE_HEADER), text(MAC_HEADER)),
        )?;
        let path_and_query = uri
            .path_and_query()
            .map_or_else(|| uri.path(), |pq| pq.as_str())
            .to_owned();
        Ok(Signed {
            creds,
            method: method.clone(),
            path_and_query,
        })
    }

    /// The device's record and its signature, checked on the calling (blocking)
    /// thread: the store read and the verification share one hand-off with whatever
    /// the request reads next.
    ///
    /// The signature is checked before anything about the device is said: a request
    /// naming a device that does not exist is refused like a bad signature, and only
    /// a holder of a revoked device's key hears that it was revoked (anyone could
    /// otherwise ask whether a stolen phone's id was revoked yet).
    fn check(&self, state: &AppState) -> ApiResult<(UserId, DeviceId)> {
        let (record, ()) = self.check_reading(state, |device| {
            Ok(state.stores.accounts.device(device)?.map(|r| (r, ())))
        })?;
        Ok((record.user, record.id))
    }

    /// [`check`](Self::check) with the device's record read by `read`, which may read
    /// something else in the same go (a download's grant); nothing of it is returned
    /// unless the signature holds and the device is not revoked.
    fn check_reading<T>(
        &self,
        state: &AppState,
        read: impl FnOnce(DeviceId) -> StoreResult<Option<(DeviceRecord, T)>>,
    ) -> ApiResult<(DeviceRecord, T)> {
        let request = (self.method.as_str(), self.path_and_query.as_str());
        let now = now_ms();
        state.http_auth.check_unkeyed(request, &self.creds, now)?;
        let (record, also) = read(self.creds.device)?
            .ok_or_else(|| state.http_auth.unknown_device(request, &self.creds))?;
        state
            .http_auth
            .check_keyed(&record.key, request, &self.creds, record.user.0, now)?;
        if record.revoked_at.is_some() {
            return Err(ApiError::new(ErrorCode::DeviceRevoked, "device revoked"));
        }
        Ok((record, also))
    }
}

/// Relays of a cluster share one id: each accepts a signature once for all.
async fn claim(state: &AppState, (key, forget_at): ([u8; 32], u64)) -> ApiResult<()> {
    if !state.cluster.claim_signature(key, forget_at).await? {
        return Err(crate::auth::AuthError::RequestReplayed.into());
    }
    Ok(())
}

fn parse_hash(hex: &str) -> ApiResult<BlobHash> {
    hex.parse()
        .map_err(|_| ApiError::new(ErrorCode::InvalidInput, "not a blob hash"))
}

/// What the upload task is told.
enum Piece {
    Data(Bytes),
    End,
}

/// `PUT /blobs/{hash}?family={id}` and `PUT /blobs/{hash}?owner=me`.
pub async fn put_blob(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(hash): Path<String>,
    Query(query): Query<UploadQuery>,
    request: Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let headers = &request.headers;
    let Caller {
        user,
        device,
        creds,
    } = authenticate(&state, &request.method, &request.uri, headers).await?;
    let hash = parse_hash(&hash)?;
    let grantee = query.grantee()?;
    let to = match grantee {
        Grantee::Family(family) => BlobGrantee::Family(family),
        Grantee::Me => BlobGrantee::User(user),
    };
    // (allowed, bytes already counted, whether this very grant exists)
    let (allowed, used, regrant) = state
        .accounts(move |a| {
            let (allowed, used) = match to {
                BlobGrantee::Family(family) => (
                    a.membership(family, user)?.is_some(),
                    a.family_blob_bytes(family)?,
                ),
                BlobGrantee::User(_) => (true, a.user_blob_bytes(user)?),
            };
            Ok((allowed, used, a.has_blob_grant(to, hash)?))
        })
        .await?;
    if !allowed {
        return Err(ApiError::forbidden("not a member of this family"));
    }
    let limits = &state.config.limits;
    // Uploading a blob this grantee already has (a retry) adds nothing to its quota.
    let room = |quota: u64| {
        if regrant {
            u64::MAX
        } else {
            quota.saturating_sub(used)
        }
    };
    let room = match to {
        BlobGrantee::Family(_) => Quota::Family(room(limits.family_quota_bytes)),
        BlobGrantee::User(_) => Quota::User(room(limits.user_quota_bytes)),
    };
    let max = limits.max_blob_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    check_size(declared.unwrap_or(0), max, room)?;
    // The disk keeps room for the database whatever the quotas allow (one statvfs).
    if let Some(free) = state.stores.blobs.free_bytes()? {
        let needed = limits
            .min_free_disk_bytes
            .saturating_add(declared.unwrap_or(0));
        if free < needed {
            tracing::warn!(
                free,
                needed,
                "the blob folder's disk is nearly full: upload refused"
            );
            return Err(ApiError::unavailable(
                "the relay's disk is nearly full: try again later",
            ));
        }
    }
    // One account may hold only a few of the relay's upload slots, so a few slow
    // uploads cannot lock everyone else out; and every upload must keep up a minimum
    // rate (below), so slots are not held for long by trickling bodies.
    let _account_slot = state
        .uploads_by_account
        .acquire(user)
        .ok_or_else(|| ApiError::rate_limited(1_000))?;
    // Nor can many free accounts from one address (accounts cost nothing).
    let address = crate::http::limit_key(crate::http::client_address(&state, peer, headers).ip());
    let _address_slot = state
        .uploads_by_address
        .acquire(address)
        .ok_or_else(|| ApiError::rate_limited(1_000))?;
    let permit = upload_slot(&state).await?;
    let pace = Pace::new(limits.upload_grace_secs, limits.upload_min_bytes_per_second);
    let place = state.uploads_in_flight.register(
        Duration::from_secs(limits.upload_grace_secs),
        address,
        declared,
    );
    let progress = Arc::clone(&place.progress);
    let yield_rate = limits.upload_yield_bytes_per_second;

    let (tx, mut rx) = mpsc::channel::<Piece>(8);
    let blobs = Arc::clone(&state.stores.blobs);
    let writer = blocking(move || {
        let mut sink = blobs.begin()?;
        while let Some(piece) = rx.blocking_recv() {
            match piece {
                Piece::Data(bytes) => sink.write(&bytes)?,
                Piece::End => return sink.finish(hash).map(Some),
            }
        }
        // The request ended early: the sink is dropped, nothing is published.
        Ok(None)
    });
    let gc_lock = Arc::clone(&state.blob_gc);
    let cluster = state.cluster.clone();
    let upload = async move {
        let mut total = 0u64;
        let mut body = body.into_data_stream();
        loop {
            let next = async {
                match pace.deadline(total) {
                    Some(deadline) => tokio::time::timeout_at(deadline, body.next())
                        .await
                        .map_err(|_| pace.too_slow()),
                    None => Ok(body.next().await),
                }
            };
            let piece = tokio::select! {
                piece = next => piece?,
                () = progress.must_give_way() => return Err(Progress::gave_way(yield_rate)),
            };
            let Some(piece) = piece else { break };
            let bytes = piece.map_err(|e| {
                ApiError::new(ErrorCode::InvalidInput, format!("upload interrupted: {e}"))
            })?;
            total = total.saturating_add(bytes.len() as u64);
            progress.record(total, tokio::time::Instant::now());
            check_size(total, max, room)?;
            // A store slow to take the bytes (S3) does not keep a cut upload's slot.
            let sent = tokio::select! {
                sent = tx.send(Piece::Data(bytes)) => sent,
                () = progress.must_give_way() => return Err(Progress::gave_way(yield_rate)),
            };
            if sent.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
        // The body is in: nothing would come of cutting it now. Its slot is kept
        // through publishing and granting (its file or S3 buffers are still open);
        // an upload that gives way or fails drops it at once with this future.
        drop(place);
        // From publishing the bytes until they are granted, the blob sweep must not
        // judge this blob: it may be an old, unreferenced copy of the same bytes that
        // this upload is about to grant again.
        let sweep_guard = Arc::clone(&gc_lock).read_owned().await;
        let cluster_guard = cluster.blob_gc_shared().await?;
        let _ = tx.send(Piece::End).await;
        Ok::<_, ApiError>((total, (sweep_guard, cluster_guard, permit)))
    };
    let (uploaded, written) = tokio::join!(upload, writer);
    let (total, _sweep_guard) = uploaded?;
    let size = match written {
        Ok(Some(size)) => size,
        Ok(None) => return Err(ApiError::internal("upload not completed")),
        Err(e) if e.code == ErrorCode::HashMismatch => {
            return Err(ApiError::new(
                ErrorCode::HashMismatch,
                "the bytes do not hash to the blob's name",
            ));
        }
        Err(e) => return Err(e),
    };
    // What allowed the upload to start is checked again with the grant, in one
    // transaction: the uploader may have been removed or their device revoked while
    // the body came in, and uploads running side by side each checked the quota
    // before any of them was granted.
    let quota = match to {
        BlobGrantee::Family(_) => limits.family_quota_bytes,
        BlobGrantee::User(_) => limits.user_quota_bytes,
    };
    let grant = UploadGrant {
        to,
        blob: hash,
        size,
        by: user,
        device,
        quota,
    };
    let verdict = state.accounts(move |a| a.grant_upload(&grant)).await?;
    match verdict {
        UploadVerdict::Granted => {}
        UploadVerdict::NotMember => {
            return Err(ApiError::forbidden("not a member of this family"));
        }
        UploadVerdict::DeviceRevoked => {
            return Err(ApiError::new(ErrorCode::DeviceRevoked, "device revoked"));
        }
        UploadVerdict::QuotaExceeded => {
            return Err(room.full());
        }
    }
    match to {
        BlobGrantee::Family(family) => tracing::info!(%hash, %family, size, "blob stored"),
        BlobGrantee::User(me) => tracing::info!(%hash, user = %me, size, "personal blob stored"),
    }
    add(&state.metrics.blob_bytes_in, total);
    let mut response = (
        StatusCode::CREATED,
        [(header::ETAG, etag(&hash))],
        Body::empty(),
    )
        .into_response();
    give_session_key(&mut response, &state, &creds);
    Ok(response)
}

/// How long a new upload waits for the slot of one that gave way to it.
const GIVE_WAY_WAIT: Duration = Duration::from_secs(5);

/// One of the relay's upload slots. When all are taken, the slowest upload past its
/// grace gives way if it is slower than `upload_yield_bytes_per_second`
/// ([`super::pace`]); else the newcomer is told to retry.
async fn upload_slot(state: &Arc<AppState>) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(permit) = Arc::clone(&state.uploads).try_acquire_owned() {
        return Ok(permit);
    }
    let below = state.config.limits.upload_yield_bytes_per_second;
    if !state
        .uploads_in_flight
        .cut_slowest(below, tokio::time::Instant::now())
    {
        return Err(ApiError::rate_limited(1_000));
    }
    add(&state.metrics.uploads_gave_way, 1);
    match tokio::time::timeout(GIVE_WAY_WAIT, Arc::clone(&state.uploads).acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::rate_limited(1_000)),
    }
}

/// The room left in the quota an upload counts against.
#[derive(Debug, Clone, Copy)]
enum Quota {
    Family(u64),
    User(u64),
}

fn check_size(len: u64, max: u64, room: Quota) -> ApiResult<()> {
    if len > max {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("a blob is at most {max} bytes"),
        ));
    }
    match room {
        Quota::Family(left) | Quota::User(left) if len > left => Err(room.full()),
        _ => Ok(()),
    }
}

impl Quota {
    /// The refusal when this quota has no room for the blob.
    fn full(self) -> ApiError {
        let message = match self {
            Quota::Family(_) => "the family's storage quota is full",
            Quota::User(_) => "your personal storage quota is full",
        };
        ApiError::new(ErrorCode::QuotaExceeded, message)
    }
}

fn etag(hash: &BlobHash) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{hash}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// `GET` and `HEAD /blobs/{hash}`.
pub async fn get_blob(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    connection: Option<Extension<Arc<Entry>>>,
    Path(hash): Path<String>,
    // The request's own parts, not the `Method`, `Uri` and `HeaderMap` extractors:
    // those clone them (the header map entry by entry) for every download.
    request: Request,
) -> Result<Response, ApiError> {
    let (
        Parts {
            method,
            uri,
            headers,
            ..
        },
        _,
    ) = request.into_parts();
    let connection = connection.map(|Extension(e)| e);
    let signed = Signed::read(&method, &uri, &headers)?;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // The caller's device and signature, the grant and the size, in one go: on this
    // worker when the stores answer at once, else in one trip to the blocking pool.
    // Under load the hand-offs, not the reads, were most of a small download's cost.
    // Nothing is read, and no turn taken, before the signature is checked; a replay
    // another relay of the cluster saw first is refused after (`claim`).
    let creds = signed.creds;
    let replay = state.http_auth.replay_key(&creds);
    let at_once = state.blob_reads_at_once();
    let found = if at_once {
        find(&state, &signed, &hash)?
    } else {
        let checking = Arc::clone(&state);
        blocking(move || Ok(find(&checking, &signed, &hash))).await??
    };
    claim(&state, replay).await?;
    accepted(&state, &creds);
    let Some(Found { user, hash, size }) = found else {
        let mut response = ApiError::not_found("no such blob").into_response();
        give_session_key(&mut response, &state, &creds);
        return Ok(response);
    };
    let address = crate::http::limit_key(crate::http::client_address(&state, peer, &headers).ip());
    // A kept-alive connection's earlier download of the same account and address
    // hands its turns on (it never waits for itself); any other it held go back.
    let earlier = connection
        .as_ref()
        .and_then(|c| c.take_held())
        .and_then(|held| held.downcast::<DownloadTurns>().ok())
        .filter(|t| t.account.key() == &user && t.address.key() == &address);
    let turns = match earlier {
        Some(turns) => *turns,
        None => download_turns(&state, user, address).await?,
    };
    let (status, start, len) = match range::parse(range_header, size) {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            let mut r =
                ApiError::new(ErrorCode::InvalidInput, "range not satisfiable").into_response();
            *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    // A whole small blob (a thumbnail, an avatar, a voice message) is read whole, and
    // may be kept in memory for the next member's download: from memory here if it is
    // kept; else here when the blob store reads at once (whether or not the checks
    // above could: those waited for a free reader of the accounts), else in one trip to
    // the blocking pool. Anything else streams in pieces.
    let small = method == Method::GET && status == StatusCode::OK && size <= READ_AT_ONCE;
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        add(&state.metrics.blob_bytes_out, len);
        let whole = if !small {
            None
        } else if let Some(kept) = state.stores.blobs.kept(hash) {
            Some(kept)
        } else if state.stores.blobs.reads_at_once() {
            Some(state.stores.blobs.read_whole(hash, size)?)
        } else {
            let blobs = Arc::clone(&state.stores.blobs);
            Some(blocking(move || blobs.read_whole(hash, size)).await?)
        };
        match whole {
            Some(bytes) if bytes.len() as u64 == len => Body::from(bytes),
            // A blob shorter than its size: the stream reports it.
            _ => Body::from_stream(read_stream(Arc::clone(&state), hash, start, len)),
        }
    };
    // Held by the connection (`conns::Entry::hold`): hyper lets go of the body once
    // its last bytes are in its write buffer, not once they are sent.
    if let Some(c) = &connection {
        c.hold(Box::new(turns));
    }
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ETAG, etag(&hash));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    give_session_key(&mut response, &state, &creds);
    Ok(response)
}

/// A blob found for a download.
struct Found {
    /// Who asks.
    user: UserId,
    hash: BlobHash,
    size: u64,
}

/// A download's blob and size, for the signed request's user; `None` if it is not
/// theirs to read (or not here). The hash is checked after the signature, as every
/// request's input is.
fn find(state: &AppState, signed: &Signed, hash: &str) -> ApiResult<Option<Found>> {
    let stores = &state.stores;
    let parsed = parse_hash(hash);
    let (user, hash, granted) = match &parsed {
        Ok(hash) if matches!(signed.creds.proof, Proof::Mac(_)) => {
            // The device and its user's grant in one read: a MAC is checked in full
            // before anything is read (`check_unkeyed`), so a grant is looked up only
            // for whoever holds that device's session key.
            let (record, granted) = signed.check_reading(state, |device| {
                stores.accounts.device_and_blob_grant(device, *hash)
            })?;
            (record.user, *hash, granted)
        }
        _ => {
            // A signature is checked against the key read with the device: the grant
            // is read only once it holds (one download in a session key's life signs).
            // A hash that does not parse is refused after the proof, whatever it is.
            let (user, _) = signed.check(state)?;
            let hash = parsed?;
            (user, hash, stores.accounts.blob_granted(user, hash)?)
        }
    };
    if !crate::access::blob_readable(granted) {
        return Ok(None);
    }
    Ok(stores
        .blobs
        .size(hash)?
        .map(|size| Found { user, hash, size }))
}

/// A download's turns of its account and of its address.
struct DownloadTurns {
    account: Turn<UserId>,
    address: Turn<IpAddr>,
}

/// A download's turns: its account's, then its address's (always in that order, so
/// two downloads never wait for each other's), within `download_wait_secs` in all.
async fn download_turns(
    state: &AppState,
    user: UserId,
    address: IpAddr,
) -> ApiResult<DownloadTurns> {
    let patience = Duration::from_secs(state.config.limits.download_wait_secs);
    let deadline = tokio::time::Instant::now() + patience;
    let account = state.downloads_by_account.wait(user, patience).await;
    let turns = match account {
        Some(account) => {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            state
                .downloads_by_address
                .wait(address, left)
                .await
                .map(|address| DownloadTurns { account, address })
        }
        None => None,
    };
    turns.ok_or_else(|| {
        add(&state.metrics.downloads_turned_away, 1);
        ApiError::rate_limited(1_000)
    })
}

/// Reads `len` bytes from `start` in pieces, each in the blocking pool.
fn read_stream(
    state: Arc<AppState>,
    hash: BlobHash,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, StoreError>> {
    stream::unfold((start, len), move |(offset, left)| {
        let state = Arc::clone(&state);
        async move {
            if left == 0 {
                return None;
            }
            let want = left.min(READ_PIECE);
            let blobs = Arc::clone(&state.stores.blobs);
            let read = tokio::task::spawn_blocking(move || blobs.read(hash, offset, want)).await;
            match read {
                Ok(Ok(bytes)) if !bytes.is_empty() => {
                    let n = bytes.len() as u64;
                    Some((Ok(Bytes::from(bytes)), (offset + n, left.saturating_sub(n))))
                }
                Ok(Ok(_)) => Some((
                    Err(StoreError::Invalid("blob shorter than its size".into())),
                    (offset, 0),
                )),
                Ok(Err(e)) => Some((Err(e), (offset, 0))),
                Err(e) => Some((Err(StoreError::backend(e)), (offset, 0))),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(family: Option<&str>, owner: Option<&str>) -> UploadQuery {
        UploadQuery {
            family: family.map(str::to_owned),
            owner: owner.map(str::to_owned),
        }
    }

    #[test]
    fn an_upload_names_one_grantee() {
        let family = FamilyId([7; 16]);
        let text = family.to_string();
        assert_eq!(
            query(Some(&text), None).grantee().ok(),
            Some(Grantee::Family(family))
        );
        assert_eq!(query(None, Some("me")).grantee().ok(), Some(Grantee::Me));
        for bad in [
            query(None, None),
            query(Some(&text), Some("me")),
            query(None, Some("someone-else")),
            query(None, Some("")),
            query(Some("not hex"), None),
        ] {
            let e = bad.grantee().expect_err("refused");
            assert_eq!(e.code, ErrorCode::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn sizes_are_checked_against_the_limit_then_the_quota() {
        assert!(check_size(10, 10, Quota::Family(10)).is_ok());
        assert_eq!(
            check_size(11, 10, Quota::User(100)).map_err(|e| e.code),
            Err(ErrorCode::TooLarge)
        );
        assert_eq!(
            check_size(6, 10, Quota::Family(5)).map_err(|e| e.code),
            Err(ErrorCode::QuotaExceeded)
        );
        assert_eq!(
            check_size(6, 10, Quota::User(5)).map_err(|e| e.code),
            Err(ErrorCode::QuotaExceeded)
        );
    }
}
