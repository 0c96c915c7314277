//! Blobs (photos, voice messages, snapshots) over the relay's signed HTTP API, and
//! the device's blob folder: a persistent upload queue and a size-limited cache.
//!
//! - [`BlobClient`]: `PUT /blobs/{hash}?family=` (a family's photo, voice message or
//!   document snapshot), `PUT /blobs/{hash}?owner=me` (a personal blob: the avatar, a
//!   snapshot of the personal document — readable by everyone who shares a family with
//!   the user) and `GET /blobs/{hash}`, each signed by the device key (`x-doran-device`, `x-doran-time`, `x-doran-signature`, see
//!   `docs/protocol.md`, "Blobs over HTTP") — or, for a download once the relay
//!   answered a signed request with a session key, MAC'd under it (`x-doran-mac`): a
//!   keyed blake3 instead of an ed25519 signature per thumbnail. Downloads are checked
//!   against their blake3 hash before anyone sees them.
//! - [`BlobCache`]: the folder `<home>/blobs/<hex>`, indexed by the store's blob index.
//!   A blob made here ([`BlobCache::add_local`]) is sealed under a key of its own
//!   (`doran_client_core::seal`): the relay only ever gets the sealed bytes, named by
//!   their hash, and the key goes into the document entry. The folder keeps the opened
//!   bytes under that name (screens read files), and the store keeps the key; the
//!   blob is marked pending upload in the same store the documents use, so the queue
//!   survives restarts; [`BlobCache::upload_pending`] seals each again (to the same
//!   bytes) and drains it. [`BlobCache::fetch`] downloads on demand, checks the hash,
//!   opens with the entry's key, and evicts the least recently used blobs beyond the
//!   size limit (never a blob still waiting for upload).
//!
//! Both `http://` and `https://` relays work (see [`Relay`]).

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use doran_client_core::{
    seal::{self, BlobKey, BlobRef, SealError},
    store::{BlobOwner, BlobRecord, BlobState, LocalStore},
};
use doran_protocol::{
    BlobHash, DeviceId, HttpSessionKey,
    signing::{http_mac, http_message},
};
use ed25519_dalek::{Signer, SigningKey};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{
    Method, Request, StatusCode,
    body::{Bytes, Incoming},
    header,
};
use hyper_util::rt::TokioIo;

use crate::{
    relay::Relay,
    sync_error::{Result, SyncError},
};

/// How long one blob request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// Idle connections kept per client.
const MAX_IDLE: usize = 4;

/// The most a download may bring unless the caller knows the size (a photo's display
/// copy is ≤ 0.9 MB, a voice message a few MB, a snapshot up to the relay's blob
/// limit): a relay that sends more is cut off, not believed.
pub const MAX_DOWNLOAD_BYTES: u64 = 64 * 1024 * 1024;

/// The upload's query string for `owner`.
fn owner_query(owner: BlobOwner) -> String {
    match owner {
        BlobOwner::Family(family) => format!("family={family}"),
        BlobOwner::Me => "owner=me".to_owned(),
    }
}

/// Signed blob requests to one relay.
#[derive(Debug, Clone)]
pub struct BlobClient {
    relay: Relay,
    /// `host:port`, for the `Host` header.
    authority: String,
    device: DeviceId,
    key: SigningKey,
    /// The relay accepts each signature once: times only go up.
    last_time: Arc<AtomicU64>,
    /// Kept-alive connections, shared by the clones of this client.
    idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
    /// The relay's id, part of every signed request (`GET /server-id`, asked once).
    server_id: Arc<tokio::sync::OnceCell<String>>,
    /// The session key the relay gave with its last answer, shared by the clones.
    session: Arc<Mutex<Option<SessionKey>>>,
    /// Whether the relay keeps refusing its keys (shared by the clones).
    refusals: Arc<Mutex<MacRefusals>>,
}

/// Keys refused in a row, with no MAC accepted between, after which a client stops
/// using session keys for [`MAC_PAUSE`]. A relay restart costs one refusal; relays
/// behind one address that do not share their secret refuse every other key, and each
/// refusal is a request sent twice.
const MAX_MAC_REFUSALS: u32 = 3;

/// How long a client whose keys were refused [`MAX_MAC_REFUSALS`] times in a row signs
/// every request before it tries keys again.
const MAC_PAUSE: Duration = Duration::from_secs(3600);

/// Refused keys in a row, and until when keys are not used.
#[derive(Debug, Default)]
struct MacRefusals {
    in_a_row: u32,
    paused_until: Option<SystemTime>,
}

impl MacRefusals {
    /// A key was refused at `now`; true if that starts a pause.
    fn refused(&mut self, now: SystemTime) -> bool {
        self.in_a_row += 1;
        if self.in_a_row < MAX_MAC_REFUSALS {
            return false;
        }
        self.in_a_row = 0;
        self.paused_until = now.checked_add(MAC_PAUSE);
        true
    }

    /// A MAC was accepted: the count starts over.
    fn accepted(&mut self) {
        self.in_a_row = 0;
    }

    /// Whether keys may be used at `now`.
    fn keys_usable(&self, now: SystemTime) -> bool {
        self.paused_until.is_none_or(|until| now >= until)
    }
}

/// A session key from the relay (`x-doran-session-key: {expires}.{life}.{hex}`).
#[derive(Clone, Copy)]
struct SessionKey {
    /// The relay's unix ms when it stops working: names the key in `x-doran-mac`.
    expires: u64,
    key: [u8; 32],
    /// When this device stops using it: at half its life by this device's clock. The
    /// relay gives keys only for signatures, so a device that keeps asking signs
    /// once per half life and always holds a key the relay takes; the wall clock,
    /// not a monotonic one, so that a phone that slept does not take a key that
    /// expired meanwhile for a fresh one.
    use_until: SystemTime,
}

impl std::fmt::Debug for SessionKey {
    /// Without the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey")
            .field("expires", &self.expires)
            .field("use_until", &self.use_until)
            .finish_non_exhaustive()
    }
}

impl SessionKey {
    /// Reads the header; `None` if it is malformed (the device signs on).
    fn parse(value: &str, now: SystemTime) -> Option<Self> {
        let mut parts = value.trim().splitn(3, '.');
        let expires = parts.next()?.parse().ok()?;
        let life_ms: u64 = parts.next()?.parse().ok()?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(parts.next()?, &mut key).ok()?;
        Self::given(
            HttpSessionKey {
                expires,
                life_ms,
                key,
            },
            now,
        )
    }

    /// A key the relay gave at `now`, by header or by frame; `None` if its life
    /// overflows this device's clock.
    fn given(given: HttpSessionKey, now: SystemTime) -> Option<Self> {
        Some(SessionKey {
            expires: given.expires,
            key: given.key,
            use_until: now.checked_add(Duration::from_millis(given.life_ms / 2))?,
        })
    }
}

/// How a request is proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proving {
    /// By the session key if the client has one it may still use, else signed.
    Cheapest,
    /// Signed, whatever key the client holds.
    Signed,
}

impl BlobClient {
    /// A client for `relay`, signing as `device`.
    pub fn new(relay: Relay, device: DeviceId, key: SigningKey) -> Self {
        BlobClient {
            authority: relay.authority(),
            relay,
            device,
            key,
            last_time: Arc::new(AtomicU64::new(0)),
            idle: Arc::new(Mutex::new(Vec::new())),
            server_id: Arc::new(tokio::sync::OnceCell::new()),
            session: Arc::default(),
            refusals: Arc::default(),
        }
    }

    /// Uploads `bytes` as the blob `hash` for `owner`. Uploading a blob the relay
    /// already has is fine (it deduplicates).
    pub async fn put(&self, hash: BlobHash, owner: BlobOwner, bytes: Vec<u8>) -> Result<()> {
        if !hash.verifies(&bytes) {
            return Err(SyncError::Protocol(format!(
                "the bytes do not hash to {hash}"
            )));
        }
        let path = format!("/blobs/{hash}?{}", owner_query(owner));
        let (status, _) = self
            .send(Method::PUT, &path, bytes, 64 * 1024, None)
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(refusal(status, "upload"))
        }
    }

    /// Downloads the blob `hash` (at most [`MAX_DOWNLOAD_BYTES`]), verified against
    /// its hash.
    pub async fn get(&self, hash: BlobHash) -> Result<Vec<u8>> {
        self.get_at_most(hash, MAX_DOWNLOAD_BYTES).await
    }

    /// Downloads the blob `hash`, refusing a body longer than `max` bytes (e.g. a
    /// snapshot whose length the relay announced), verified against its hash.
    pub async fn get_at_most(&self, hash: BlobHash, max: u64) -> Result<Vec<u8>> {
        let path = format!("/blobs/{hash}");
        let (status, body) = self.send(Method::GET, &path, Vec::new(), max, None).await?;
        if status != StatusCode::OK {
            return Err(refusal(status, "download"));
        }
        if !hash.verifies(&body) {
            return Err(SyncError::Protocol(format!(
                "blob {hash}: the relay's bytes do not match the hash"
            )));
        }
        Ok(body)
    }

    /// Downloads the bytes `start..end` of the blob `hash` (a `Range` request). They
    /// cannot be checked against the hash of the whole blob: a sealed blob's segments
    /// are checked when they are opened (`seal::open_span`), which is what makes a
    /// range of one worth having.
    pub async fn get_range(&self, hash: BlobHash, start: u64, end: u64) -> Result<Vec<u8>> {
        if start >= end {
            return Err(SyncError::Protocol(format!(
                "an empty range {start}..{end}"
            )));
        }
        let path = format!("/blobs/{hash}");
        let len = end - start;
        let (status, body) = self
            .send(Method::GET, &path, Vec::new(), len, Some((start, end)))
            .await?;
        match status {
            StatusCode::PARTIAL_CONTENT if body.len() as u64 == len => Ok(body),
            StatusCode::PARTIAL_CONTENT => Err(SyncError::Protocol(format!(
                "blob {hash}: {} bytes for a range of {len}",
                body.len()
            ))),
            s => Err(refusal(s, "ranged download")),
        }
    }

    fn next_time(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let prev = self
            .last_time
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        now.max(prev + 1)
    }

    /// Sends a request, proved by the session key when it is a download and the
    /// client holds one. A MAC the relay refuses (it restarted, or the key expired on
    /// its clock first) costs one more round trip: the key is forgotten and the
    /// request goes again, signed, and its answer brings a new key.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        max_response: u64,
        range: Option<(u64, u64)>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let body = Bytes::from(body);
        let request = (&method, path, range);
        let (status, answer, maced) = self
            .attempt(request, body.clone(), max_response, Proving::Cheapest)
            .await?;
        match maced {
            Some(expires) if status == StatusCode::UNAUTHORIZED => {
                // Counted once per key: downloads sent together under one key that a
                // restarted relay refuses are one refusal, not one each.
                if self.forget_session(expires) && self.lock_refusals().refused(SystemTime::now()) {
                    tracing::warn!(
                        refusals = MAX_MAC_REFUSALS,
                        pause_secs = MAC_PAUSE.as_secs(),
                        "the relay keeps refusing its session keys (relays not sharing \
                         their secret?): signing every request for a while"
                    );
                }
                let (status, answer, _) = self
                    .attempt(request, body, max_response, Proving::Signed)
                    .await?;
                Ok((status, answer))
            }
            Some(_) => {
                self.lock_refusals().accepted();
                Ok((status, answer))
            }
            None => Ok((status, answer)),
        }
    }

    /// One request, on a kept-alive connection or a new one; with the expiry of the
    /// session key that proved it, if one did.
    async fn attempt(
        &self,
        request: (&Method, &str, Option<(u64, u64)>),
        body: Bytes,
        max_response: u64,
        proving: Proving,
    ) -> Result<(StatusCode, Vec<u8>, Option<u64>)> {
        let exchange = async {
            let server_id = self.server_id().await?;
            let server_id = server_id.as_str();
            // A kept-alive connection may have been closed by the relay meanwhile; then
            // the request never reached it, and goes again on a new connection (signed
            // again: the relay accepts each signature once).
            if let Some(sender) = self.idle_connection() {
                match self
                    .exchange(
                        sender,
                        (server_id, proving),
                        request,
                        body.clone(),
                        max_response,
                    )
                    .await
                {
                    Err(SyncError::Unreachable(_)) => {}
                    done => return done,
                }
            }
            let sender = self.connect().await?;
            self.exchange(sender, (server_id, proving), request, body, max_response)
                .await
        };
        tokio::time::timeout(HTTP_TIMEOUT, exchange)
            .await
            .map_err(|_| SyncError::Timeout)?
    }

    /// The session key, while this device may use it, unless the relay refused too
    /// many of them in a row lately.
    fn usable_session(&self) -> Option<SessionKey> {
        let now = SystemTime::now();
        if !self.lock_refusals().keys_usable(now) {
            return None;
        }
        let session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        (*session).filter(|s| now < s.use_until)
    }

    fn lock_refusals(&self) -> std::sync::MutexGuard<'_, MacRefusals> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the session key expiring at `expires` (not a newer one another request
    /// brought meanwhile); whether it was still held.
    fn forget_session(&self, expires: u64) -> bool {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let held = session.is_some_and(|s| s.expires == expires);
        if held {
            *session = None;
        }
        held
    }

    /// Takes the session key the relay sent after the websocket's sign-in
    /// ([`doran_protocol::ServerFrame::HttpSessionKey`]), from the relay whose
    /// challenge named it `server_id`: the next downloads are MAC'd under it, and a
    /// client that did not know the relay's id yet takes this one instead of asking
    /// `GET /server-id`. Kept only when this client's relay may announce that id, and
    /// when it is the id the client knows (a MAC under one id would be refused by a
    /// relay of another). Waits only for a `GET /server-id` already under way.
    pub async fn adopt_session(&self, server_id: &str, given: HttpSessionKey) {
        if let Err(names) =
            doran_client_core::sync::check_server_id(server_id, &self.relay.address())
        {
            tracing::warn!(%names, "the sign-in's relay id names another address: its session key is not used");
            return;
        }
        let known = self
            .server_id
            .get_or_init(|| async { server_id.to_owned() })
            .await;
        if known != server_id {
            tracing::debug!("the sign-in's relay id is not the one HTTP gave: signing on");
            return;
        }
        match SessionKey::given(given, SystemTime::now()) {
            Some(key) => *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(key),
            None => tracing::debug!("the relay's session key outlives this clock: signing on"),
        }
    }

    /// Keeps the session key an answer brought, if it did.
    fn take_session(&self, response: &hyper::Response<Incoming>) {
        let Some(value) = response
            .headers()
            .get("x-doran-session-key")
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        match SessionKey::parse(value, SystemTime::now()) {
            Some(key) => {
                *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(key);
            }
            None => tracing::debug!("the relay's session key is malformed: signing on"),
        }
    }

    /// One request over `sender` (`method`, `path` and the byte range to ask for, end
    /// exclusive), proved as `proving` says; the connection goes back to the pool
    /// after the whole response was read.
    async fn exchange(
        &self,
        mut sender: SendRequest<Full<Bytes>>,
        (server_id, proving): (&str, Proving),
        (method, path, range): (&Method, &str, Option<(u64, u64)>),
        body: Bytes,
        max_response: u64,
    ) -> Result<(StatusCode, Vec<u8>, Option<u64>)> {
        let time = self.next_time();
        // Downloads only: an upload is signed (its signature is nothing beside its
        // body, and a refused MAC would have the body sent twice).
        let session = match proving {
            Proving::Cheapest if matches!(*method, Method::GET | Method::HEAD) => {
                self.usable_session()
            }
            _ => None,
        };
        let (proof_header, proof) = match session {
            Some(s) => (
                "x-doran-mac",
                format!(
                    "{}.{}",
                    s.expires,
                    hex::encode(http_mac(&s.key, server_id, method.as_str(), path, time))
                ),
            ),
            None => (
                "x-doran-signature",
                hex::encode(
                    self.key
                        .sign(&http_message(server_id, method.as_str(), path, time))
                        .to_bytes(),
                ),
            ),
        };
        let mut request = Request::builder();
        if let Some((start, end)) = range {
            request = request.header(header::RANGE, format!("bytes={start}-{}", end - 1));
        }
        let request = request
            .method(method.clone())
            .uri(path)
            .header(header::HOST, &self.authority)
            .header("x-doran-device", self.device.to_string())
            .header("x-doran-time", time.to_string())
            .header(proof_header, proof)
            .header(header::CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        let unreachable = |e: hyper::Error| SyncError::Unreachable(e.to_string());
        sender.ready().await.map_err(unreachable)?;
        let response = sender.send_request(request).await.map_err(unreachable)?;
        let status = response.status();
        self.take_session(&response);
        let body = read_body(response, max_response).await?;
        self.keep(sender);
        Ok((status, body, session.map(|s| s.expires)))
    }

    /// The relay's id, asked once (unsigned) from `GET /server-id`: signatures name
    /// the relay, so a request signed for one relay is refused by any other. An id
    /// that is a URL naming another address is refused (`WrongRelay`), and nothing is
    /// signed.
    async fn server_id(&self) -> Result<String> {
        self.server_id
            .get_or_try_init(|| async {
                let mut sender = self.connect().await?;
                let request = Request::get("/server-id")
                    .header(header::HOST, &self.authority)
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| SyncError::Protocol(e.to_string()))?;
                let unreachable = |e: hyper::Error| SyncError::Unreachable(e.to_string());
                sender.ready().await.map_err(unreachable)?;
                let response = sender.send_request(request).await.map_err(unreachable)?;
                let status = response.status();
                let body = read_body(response, 1024).await?;
                if status != StatusCode::OK {
                    return Err(refusal(status, "server id"));
                }
                self.keep(sender);
                let id = match String::from_utf8(body) {
                    Ok(id) if id.len() <= doran_protocol::limits::MAX_SERVER_ID_BYTES => id,
                    _ => return Err(SyncError::Protocol("the relay's id is not valid".into())),
                };
                // As for the websocket's sign-in: nothing is signed for an id naming
                // another address (a server in the middle would answer the real one's).
                doran_client_core::sync::check_server_id(&id, &self.relay.address()).map_err(
                    |message| SyncError::Auth {
                        code: doran_protocol::ErrorCode::WrongRelay,
                        message,
                    },
                )?;
                Ok(id)
            })
            .await
            .cloned()
    }

    /// A new HTTP/1 connection to the relay; its I/O runs in a task of its own, which
    /// ends when the connection closes or its last sender is dropped.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = self
            .relay
            .connect()
            .await
            .map_err(|e| SyncError::connecting(&e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SyncError::Unreachable(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "blob connection ended");
            }
        });
        Ok(sender)
    }

    /// A kept-alive connection that is still open, if there is one.
    fn idle_connection(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// Keeps a connection for the next request (a gallery page fetches a dozen
    /// thumbnails: one connection, not a dozen handshakes).
    fn keep(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push(sender);
        }
    }
}

/// The most a response's `content-length` reserves up front (a longer body still
/// arrives; the buffer grows).
const MAX_PREALLOCATION: usize = 64 * 1024 * 1024;

/// Reads a response body into one buffer sized from its `content-length`, copying each
/// piece once as it arrives. (Collecting the pieces first kept all of them alive until
/// the end, so hyper read every piece into fresh memory, and then copied them twice.)
/// A body longer than `max` bytes is refused as soon as it says so or grows past it.
async fn read_body(response: hyper::Response<Incoming>, max: u64) -> Result<Vec<u8>> {
    let too_long = || SyncError::Protocol(format!("the relay sent a body over {max} bytes"));
    let declared = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if declared > max {
        return Err(too_long());
    }
    let mut out = Vec::with_capacity(
        usize::try_from(declared)
            .unwrap_or(0)
            .min(MAX_PREALLOCATION),
    );
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| SyncError::Unreachable(e.to_string()))?;
        if let Some(data) = frame.data_ref() {
            if (out.len() + data.len()) as u64 > max {
                return Err(too_long());
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out)
}

fn refusal(status: StatusCode, what: &str) -> SyncError {
    use doran_protocol::ErrorCode;
    let code = match status {
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
        StatusCode::INSUFFICIENT_STORAGE => ErrorCode::QuotaExceeded,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        // Below the relay's minimum rate, or made to give way while its upload slots
        // were all taken: the blob stays queued and goes up again later.
        StatusCode::REQUEST_TIMEOUT => ErrorCode::TooSlow,
        StatusCode::UNAUTHORIZED => {
            return SyncError::Auth {
                code: ErrorCode::BadSignature,
                message: format!("{what}: {status}"),
            };
        }
        s if s.is_server_error() => ErrorCode::Unavailable,
        _ => ErrorCode::InvalidInput,
    };
    SyncError::Refused {
        code,
        message: format!("{what}: HTTP {status}"),
        retry_after_ms: None,
    }
}

/// The device's blob folder and its index in the store (see the module docs).
#[derive(Debug, Clone)]
pub struct BlobCache {
    dir: PathBuf,
    store: Arc<dyn LocalStore>,
    limit_bytes: u64,
    refused: Arc<Mutex<Refused>>,
}

/// How many refused (blob, key) pairs a device remembers.
const MAX_REFUSED: usize = 1024;

/// Blobs whose bytes did not open with the key an entry gives them (a hostile
/// member's entry, bytes changed on the relay), remembered so that a screen asking
/// again is answered at once instead of downloading them again every time — which a
/// member could otherwise make every other device do for as long as the gallery is
/// open. In memory and bounded (the oldest is forgotten first): after a restart, or
/// once forgotten, a blob is tried once more.
#[derive(Debug, Default)]
struct Refused {
    order: VecDeque<(BlobHash, [u8; 32])>,
    why: HashMap<(BlobHash, [u8; 32]), SealError>,
}

impl Refused {
    fn get(&self, blob: &BlobRef) -> Option<SealError> {
        let key = blob.key?;
        self.why.get(&(blob.hash, *key.as_bytes())).cloned()
    }

    fn insert(&mut self, blob: &BlobRef, why: SealError) {
        let Some(key) = blob.key else { return };
        let id = (blob.hash, *key.as_bytes());
        if self.why.insert(id, why).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > MAX_REFUSED {
            if let Some(old) = self.order.pop_front() {
                self.why.remove(&old);
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl BlobCache {
    /// The cache in `dir` (created if missing), keeping downloaded blobs up to
    /// `limit_bytes` in total.
    pub fn open(
        dir: impl AsRef<Path>,
        store: Arc<dyn LocalStore>,
        limit_bytes: u64,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir.as_ref())?;
        Ok(BlobCache {
            dir: dir.as_ref().to_owned(),
            store,
            limit_bytes,
            refused: Arc::default(),
        })
    }

    /// Where the bytes of `hash` live (when cached).
    pub fn path(&self, hash: BlobHash) -> PathBuf {
        self.dir.join(hash.to_hex())
    }

    /// Adds a blob made on this device for `owner`: seals it under a new key (see
    /// `doran_client_core::seal`), keeps the opened bytes in the folder under the sealed
    /// bytes' hash and flushes them to the disk, then queues the blob for upload in the
    /// store with its key. Returns what the document entry names: the hash the relay
    /// will address and the key that opens it.
    pub fn add_local(&self, bytes: &[u8], mime: &str, owner: BlobOwner) -> Result<BlobRef> {
        let key = BlobKey::random().map_err(|e| std::io::Error::other(e.to_string()))?;
        let hash = BlobHash::of(&seal::seal(&key, bytes)?);
        // On disk for good before the store says it waits for upload: until then
        // these bytes exist nowhere else.
        write_atomically(&self.path(hash), bytes, Some(&self.dir))?;
        self.store.put_blob(&BlobRecord {
            hash,
            size: bytes.len() as u64,
            mime: mime.to_owned(),
            state: BlobState::PendingUpload,
            cached: true,
            last_used_ms: now_ms(),
            owner: Some(owner),
            key: Some(key),
        })?;
        Ok(BlobRef {
            hash,
            key: Some(key),
        })
    }

    /// How many blobs wait for upload.
    pub fn pending_count(&self) -> Result<u64> {
        Ok(self.store.pending_uploads()?.len() as u64)
    }

    /// Whether the opened bytes of `blob` are on this device (opened with its key).
    pub fn is_cached(&self, blob: BlobRef) -> Result<bool> {
        let Some(record) = self.store.blob(blob.hash)? else {
            return Ok(false);
        };
        Ok(record.cached && record.key == blob.key && self.whole(&record))
    }

    /// Whether the file of `record` is there at its full size. A downloaded blob is
    /// written without waiting for the disk (it can be fetched again), so after a
    /// power cut its file may be empty or short: such a file is fetched again rather
    /// than shown.
    fn whole(&self, record: &BlobRecord) -> bool {
        std::fs::metadata(self.path(record.hash)).is_ok_and(|m| m.len() == record.size)
    }

    /// Uploads every blob waiting in the queue, oldest first; returns how many went
    /// up. A blob the relay refuses (the user left that family, its quota is full…)
    /// stays queued and the rest go on; the first refusal is returned once all were
    /// tried, so the caller says so and tries again later. A failure to reach the
    /// relay stops the round (the rest stay queued). A blob whose file is gone or
    /// damaged cannot go up from here: it leaves the queue (see
    /// [`BlobCache::local_bytes`]).
    pub async fn upload_pending(&self, client: &BlobClient) -> Result<usize> {
        let mut done = 0;
        let mut refused = None;
        for record in self.blocking(|c| Ok(c.store.pending_uploads()?)).await? {
            let hash = record.hash;
            let Some(owner) = record.owner else {
                let e = SyncError::Protocol(format!("blob {hash} has no owner to upload for"));
                refused.get_or_insert(e);
                continue;
            };
            let key = record.key;
            let Some(bytes) = self.blocking(move |c| c.local_bytes(hash, key)).await? else {
                continue;
            };
            match client.put(hash, owner, bytes).await {
                Ok(()) => {}
                Err(e @ SyncError::Refused { .. }) => {
                    tracing::info!(%hash, error = %e, "the relay refused a blob; it stays queued");
                    refused.get_or_insert(e);
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.blocking(move |c| Ok(c.store.set_blob_state(hash, BlobState::Uploaded)?))
                .await?;
            done += 1;
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// The path of the opened bytes of `blob`, downloading them if they are not
    /// cached; then trims the cache to its limit (least recently used first). A sealed
    /// blob is downloaded as sealed (at most the sealed size of `max` bytes), checked
    /// against its hash and opened with the entry's key before it is kept; a cached
    /// blob is used only for the key it was opened with, so an entry cannot show
    /// another entry's blob without its key.
    pub async fn fetch(
        &self,
        client: &BlobClient,
        blob: BlobRef,
        mime: &str,
        max: u64,
    ) -> Result<PathBuf> {
        let hash = blob.hash;
        let path = self.path(hash);
        let cached = self
            .blocking(move |c| {
                let here = c.is_cached(blob)?;
                if here {
                    c.store.touch_blob(hash, now_ms())?;
                }
                Ok(here)
            })
            .await?;
        if cached {
            return Ok(path);
        }
        if let Some(why) = self.refused_before(blob) {
            return Err(SyncError::Sealed(why));
        }
        let max = blob.key.map_or(max, |_| seal::sealed_len(max));
        let fetched = client.get_at_most(hash, max).await?;
        let mime = mime.to_owned();
        self.blocking(move |c| {
            let bytes = match &blob.key {
                Some(key) => match seal::open_owned(key, fetched) {
                    Ok(bytes) => bytes,
                    Err(why) => {
                        c.lock_refused().insert(&blob, why.clone());
                        return Err(SyncError::Sealed(why));
                    }
                },
                None => fetched,
            };
            let size = bytes.len() as u64;
            write_atomically(&c.path(hash), &bytes, None)?;
            let known = c.store.blob(hash)?;
            c.store.put_blob(&BlobRecord {
                hash,
                size,
                mime,
                state: known.as_ref().map_or(BlobState::RemoteOnly, |r| r.state),
                cached: true,
                last_used_ms: now_ms(),
                owner: known.and_then(|r| r.owner),
                key: blob.key,
            })?;
            c.evict(Some(hash))
        })
        .await?;
        Ok(path)
    }

    /// The bytes of a blob made here as the relay must get them (sealed again with
    /// `key`, to the same bytes: sealing is a function of key and bytes), for upload;
    /// `None` when its file is gone or no longer seals to its hash (a disk that lost
    /// it, someone deleting files). Nothing can bring such bytes back, and keeping the
    /// blob queued would hold up every upload after it, so it leaves the queue as a
    /// blob this device does not have (another device may still have uploaded the
    /// same bytes) and the damaged file goes.
    fn local_bytes(&self, hash: BlobHash, key: Option<BlobKey>) -> Result<Option<Vec<u8>>> {
        let path = self.path(hash);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => {
                let len = bytes.len();
                let upload = match &key {
                    Some(key) => seal::seal(key, &bytes)?,
                    None => bytes,
                };
                if hash.verifies(&upload) {
                    return Ok(Some(upload));
                }
                Some(len)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        tracing::warn!(%hash, damaged_len = ?bytes, "a blob made here lost its file; it cannot be uploaded");
        remove_if_there(&path)?;
        self.store.set_blob_state(hash, BlobState::RemoteOnly)?;
        self.store.set_cached(hash, false)?;
        Ok(None)
    }

    /// Runs store and file work on the blocking pool (never on the async runtime).
    /// Why this blob did not open with this key when it was last downloaded, if it
    /// did not (and is still remembered): it is not downloaded again.
    pub fn refused_before(&self, blob: BlobRef) -> Option<SealError> {
        self.lock_refused().get(&blob)
    }

    fn lock_refused(&self) -> std::sync::MutexGuard<'_, Refused> {
        // A panic while holding it leaves a set that is still whole.
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BlobCache) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let cache = self.clone();
        crate::task::spawn_blocking(move || f(&cache))
            .await
            .map_err(|e| SyncError::Protocol(format!("a blob task failed: {e}")))?
    }

    /// Removes least recently used cached blobs (never pending uploads, never `keep`)
    /// until the cache fits its limit.
    pub fn evict(&self, keep: Option<BlobHash>) -> Result<()> {
        while self.store.cached_bytes()? > self.limit_bytes {
            let candidates: Vec<_> = self
                .store
                .eviction_candidates(16)?
                .into_iter()
                .filter(|r| Some(r.hash) != keep)
                .collect();
            let Some(victim) = candidates.first() else {
                break;
            };
            remove_if_there(&self.path(victim.hash))?;
            self.store.set_cached(victim.hash, false)?;
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never
/// sees half a blob. With `durable` (the folder holding `path`) it is on the disk when
/// this returns: the bytes are flushed before the rename (else a power cut can leave
/// the new name on an empty file) and the folder after it (else the name itself can
/// be lost).
fn write_atomically(path: &Path, bytes: &[u8], durable: Option<&Path>) -> std::io::Result<()> {
    use std::io::Write as _;
    // A name of its own per write: two downloads of the same blob at once (a photo's
    // thumbnail naming its display copy, a screen and the background fetching the
    // same file) each rename a whole file into place; with one shared name, the
    // second rename found the first had taken it and failed.
    let tmp = path.with_extension(format!("part-{:016x}", rand::random::<u64>()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if durable.is_some() {
            file.sync_data()?;
        }
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    match durable {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Removes the file at `path`; one already gone is fine.
fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_writes_of_one_file_at_once_both_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blob");
        for round in 0..200u32 {
            let bytes = round.to_le_bytes().repeat(4096);
            std::thread::scope(|s| {
                let writers: Vec<_> = (0..2)
                    .map(|_| s.spawn(|| write_atomically(&path, &bytes, None)))
                    .collect();
                for w in writers {
                    w.join().expect("joined").expect("written");
                }
            });
            assert_eq!(std::fs::read(&path).expect("read"), bytes);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("listed")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("blob")],
            "no part file left"
        );
    }

    #[test]
    fn the_signed_message_follows_the_protocol() {
        let m = http_message("relay", "GET", "/blobs/ab", 0x0102);
        let mut want = doran_protocol::signing::HTTP_DOMAIN.to_vec();
        want.extend_from_slice(&5u64.to_be_bytes());
        want.extend_from_slice(b"relay");
        want.extend_from_slice(&3u64.to_be_bytes());
        want.extend_from_slice(b"GET");
        want.extend_from_slice(&9u64.to_be_bytes());
        want.extend_from_slice(b"/blobs/ab");
        want.extend_from_slice(&0x0102u64.to_be_bytes());
        assert_eq!(m, want);
    }

    #[test]
    fn a_session_key_header_is_read_or_ignored() {
        let now = SystemTime::now();
        let key = SessionKey::parse(&format!("1700.800.{}", "ab".repeat(32)), now).unwrap();
        assert_eq!((key.expires, key.key), (1700, [0xab; 32]));
        // Used for half its life by this device's clock.
        assert_eq!(
            key.use_until.duration_since(now).ok(),
            Some(Duration::from_millis(400))
        );
        assert!(
            !format!("{key:?}").contains("abab"),
            "the key is not printed"
        );
        for bad in [
            "1700.800".to_owned(),
            format!("x.800.{}", "ab".repeat(32)),
            format!("1700.-1.{}", "ab".repeat(32)),
            "1700.800.abcd".to_owned(),
        ] {
            assert!(SessionKey::parse(&bad, now).is_none(), "{bad}");
        }
    }

    #[test]
    fn keys_refused_three_times_in_a_row_pause_for_an_hour() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut refusals = MacRefusals::default();
        // A refusal now and then (relay restarts) with MACs accepted between: never.
        for _ in 0..10 {
            assert!(!refusals.refused(start));
            assert!(!refusals.refused(start));
            refusals.accepted();
        }
        assert!(refusals.keys_usable(start));
        // Three in a row: paused for the hour, then keys again.
        assert!(!refusals.refused(start));
        assert!(!refusals.refused(start));
        assert!(refusals.refused(start));
        assert!(!refusals.keys_usable(start + MAC_PAUSE - Duration::from_secs(1)));
        assert!(refusals.keys_usable(start + MAC_PAUSE));
        // And three more refusals pause again.
        let later = start + MAC_PAUSE;
        assert!(!refusals.refused(later));
        assert!(!refusals.refused(later));
        assert!(refusals.refused(later));
        assert!(!refusals.keys_usable(later));
    }

    fn sign_in_key(n: u8) -> HttpSessionKey {
        HttpSessionKey {
            expires: 1_000_000 + u64::from(n),
            life_ms: 600_000,
            key: [n; 32],
        }
    }

    fn client(url: &str) -> BlobClient {
        let relay = Relay::new(url, &crate::relay::Trust::default()).expect("a relay");
        BlobClient::new(relay, DeviceId([3; 16]), SigningKey::from_bytes(&[4; 32]))
    }

    #[tokio::test]
    async fn the_sign_in_s_key_is_kept_for_the_relay_the_client_knows() {
        // A fresh client takes the challenge's id with the key.
        let fresh = client("http://127.0.0.1:9");
        fresh.adopt_session("relay-id", sign_in_key(1)).await;
        assert_eq!(fresh.server_id.get().map(String::as_str), Some("relay-id"));
        assert_eq!(fresh.usable_session().map(|s| s.key), Some([1; 32]));
        // A client that learned another id over HTTP keeps it, and signs on.
        let other = client("http://127.0.0.1:9");
        other.server_id.set("http-id".into()).expect("set");
        other.adopt_session("relay-id", sign_in_key(2)).await;
        assert_eq!(other.server_id.get().map(String::as_str), Some("http-id"));
        assert!(other.usable_session().is_none());
        // An id naming another address is neither taken nor used.
        let named = client("http://127.0.0.1:9");
        named
            .adopt_session("https://relay.example", sign_in_key(3))
            .await;
        assert!(named.server_id.get().is_none());
        assert!(named.usable_session().is_none());
    }

    /// Serves one `GET /server-id` on a loopback port: says when it has the request
    /// (`asked`), and answers `id` only once told (`go`).
    async fn slow_server_id(
        id: &'static str,
    ) -> (
        String,
        tokio::sync::oneshot::Receiver<()>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (asked_tx, asked) = tokio::sync::oneshot::channel::<()>();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).await.expect("read");
                request.push(byte[0]);
            }
            assert!(request.starts_with(b"GET /server-id "));
            let _ = asked_tx.send(());
            wait.await.ok();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{id}",
                id.len()
            );
            stream.write_all(answer.as_bytes()).await.expect("write");
            // Held open until the client is done with it.
            let _ = stream.read(&mut [0u8; 1]).await;
        });
        (url, asked, go)
    }

    /// The upload pump may ask `GET /server-id` a moment before the sign-in's key is
    /// read: the key waits for the answer, and is kept if the ids agree.
    #[tokio::test]
    async fn a_key_arriving_while_the_relay_s_id_is_asked_for_waits_for_the_answer() {
        use futures_util::FutureExt;
        for (answer, kept) in [("relay-id", true), ("another-id", false)] {
            let (url, asked, go) = slow_server_id(answer).await;
            let blobs = client(&url);
            let asking = tokio::spawn({
                let blobs = blobs.clone();
                async move { blobs.server_id().await }
            });
            asked.await.expect("the relay's id is asked for");
            let mut adopting = Box::pin(blobs.adopt_session("relay-id", sign_in_key(4)));
            assert!(
                (&mut adopting).now_or_never().is_none(),
                "the key waits for the answer"
            );
            go.send(()).expect("told");
            adopting.await;
            assert_eq!(asking.await.expect("joined").expect("the id"), answer);
            assert_eq!(blobs.usable_session().is_some(), kept, "{answer}");
        }
    }

    #[test]
    fn owners_name_their_query() {
        let family = doran_protocol::FamilyId([0xab; 16]);
        assert_eq!(
            owner_query(BlobOwner::Family(family)),
            format!("family={family}")
        );
        assert_eq!(owner_query(BlobOwner::Me), "owner=me");
    }
}
