//! Blobs (photos, voice messages, snapshots) over the relay's signed HTTP API, and
//! the device's blob folder: a persistent upload queue and a size-limited cache.
//!
//! - [`BlobClient`]: `PUT /blobs/{hash}?family=` (a family's photo, voice message or
//!   document snapshot), `PUT /blobs/{hash}?owner=me` (a personal blob: the avatar, a
//!   snapshot of the personal document — readable by everyone who shares a family with
//!   the user) and `GET /blobs/{hash}`, each signed by the device key (`x-doran-device`, `x-doran-time`, `x-doran-signature`, see
//!   `docs/protocol.md`, "Blobs over HTTP"). Downloads are checked against their blake3
//!   hash before anyone sees them.
//! - [`BlobCache`]: the folder `<home>/blobs/<hex>`, indexed by the store's blob index.
//!   A blob made here ([`BlobCache::add_local`]) is written to the folder and marked
//!   pending upload in the same store the documents use, so the queue survives
//!   restarts; [`BlobCache::upload_pending`] drains it. [`BlobCache::fetch`] downloads
//!   on demand and evicts the least recently used blobs beyond the size limit (never a
//!   blob still waiting for upload).
//!
//! Only `http://` relays are supported for now; `https://` needs a TLS connector.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use doran_protocol::{BlobHash, DeviceId, FamilyId, signing::http_message};
use ed25519_dalek::{Signer, SigningKey};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{
    Method, Request, StatusCode,
    body::{Bytes, Incoming},
    header,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Result, SyncError};
use crate::store::{BlobRecord, BlobState, LocalStore};

/// How long one blob request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// Idle connections kept per client.
const MAX_IDLE: usize = 4;

/// Whose blob an upload is: it decides who may read it and whose quota it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobOwner {
    /// A family's (photo, voice message, family document snapshot): read by its
    /// members, counted in the family's quota.
    Family(FamilyId),
    /// This user's own (avatar, personal document snapshot): read by the user and by
    /// everyone who shares a family with them, counted in the user's quota.
    Me,
}

impl BlobOwner {
    /// The upload's query string.
    fn query(self) -> String {
        match self {
            BlobOwner::Family(family) => format!("family={family}"),
            BlobOwner::Me => "owner=me".to_owned(),
        }
    }

    /// How the upload queue remembers it: the family's 16 bytes, or `me`.
    fn to_meta(self) -> Vec<u8> {
        match self {
            BlobOwner::Family(family) => family.as_bytes().to_vec(),
            BlobOwner::Me => PERSONAL_META.to_vec(),
        }
    }

    fn from_meta(bytes: &[u8]) -> Option<Self> {
        if bytes == PERSONAL_META {
            return Some(BlobOwner::Me);
        }
        <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| BlobOwner::Family(FamilyId(b)))
    }
}

/// The queue's mark of a personal blob (a family id is 16 bytes, never 2).
const PERSONAL_META: &[u8] = b"me";

/// Signed blob requests to one relay.
#[derive(Debug, Clone)]
pub struct BlobClient {
    /// `host:port`.
    authority: String,
    device: DeviceId,
    key: SigningKey,
    /// The relay accepts each signature once: times only go up.
    last_time: Arc<AtomicU64>,
    /// Kept-alive connections, shared by the clones of this client.
    idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
    /// The relay's id, part of every signed request (`GET /server-id`, asked once).
    server_id: Arc<tokio::sync::OnceCell<String>>,
}

impl BlobClient {
    /// A client for the relay at `server` (`http://host:port`), signing as `device`.
    pub fn new(server: &str, device: DeviceId, key: SigningKey) -> Result<Self> {
        Ok(BlobClient {
            authority: authority(server)?,
            device,
            key,
            last_time: Arc::new(AtomicU64::new(0)),
            idle: Arc::new(Mutex::new(Vec::new())),
            server_id: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// Uploads `bytes` as the blob `hash` for `owner`. Uploading a blob the relay
    /// already has is fine (it deduplicates).
    pub async fn put(&self, hash: BlobHash, owner: BlobOwner, bytes: Vec<u8>) -> Result<()> {
        if !hash.verifies(&bytes) {
            return Err(SyncError::Protocol(format!(
                "the bytes do not hash to {hash}"
            )));
        }
        let path = format!("/blobs/{hash}?{}", owner.query());
        let (status, _) = self.send(Method::PUT, &path, bytes).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(refusal(status, "upload"))
        }
    }

    /// Downloads the blob `hash`, verified against its hash.
    pub async fn get(&self, hash: BlobHash) -> Result<Vec<u8>> {
        let path = format!("/blobs/{hash}");
        let (status, body) = self.send(Method::GET, &path, Vec::new()).await?;
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

    fn next_time(&self) -> u64 {
        let now = std::time::SystemTime::now()
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

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let body = Bytes::from(body);
        let exchange = async {
            let server_id = self.server_id().await?;
            let server_id = server_id.as_str();
            // A kept-alive connection may have been closed by the relay meanwhile; then
            // the request never reached it, and goes again on a new connection (signed
            // again: the relay accepts each signature once).
            if let Some(sender) = self.idle_connection() {
                match self
                    .exchange(sender, server_id, &method, path, body.clone())
                    .await
                {
                    Err(SyncError::Unreachable(_)) => {}
                    done => return done,
                }
            }
            let sender = self.connect().await?;
            self.exchange(sender, server_id, &method, path, body).await
        };
        tokio::time::timeout(HTTP_TIMEOUT, exchange)
            .await
            .map_err(|_| SyncError::Timeout)?
    }

    /// One signed request over `sender`; the connection goes back to the pool after
    /// the whole response was read.
    async fn exchange(
        &self,
        mut sender: SendRequest<Full<Bytes>>,
        server_id: &str,
        method: &Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let time = self.next_time();
        let signature = self
            .key
            .sign(&http_message(server_id, method.as_str(), path, time))
            .to_bytes();
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, &self.authority)
            .header("x-doran-device", self.device.to_string())
            .header("x-doran-time", time.to_string())
            .header("x-doran-signature", hex::encode(signature))
            .header(header::CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        let unreachable = |e: hyper::Error| SyncError::Unreachable(e.to_string());
        sender.ready().await.map_err(unreachable)?;
        let response = sender.send_request(request).await.map_err(unreachable)?;
        let status = response.status();
        let body = read_body(response).await?;
        self.keep(sender);
        Ok((status, body))
    }

    /// The relay's id, asked once (unsigned) from `GET /server-id`: signatures name
    /// the relay, so a request signed for one relay is refused by any other.
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
                let body = read_body(response).await?;
                if status != StatusCode::OK {
                    return Err(refusal(status, "server id"));
                }
                self.keep(sender);
                match String::from_utf8(body) {
                    Ok(id) if id.len() <= doran_protocol::limits::MAX_SERVER_ID_BYTES => Ok(id),
                    _ => Err(SyncError::Protocol("the relay's id is not valid".into())),
                }
            })
            .await
            .cloned()
    }

    /// A new HTTP/1 connection to the relay; its I/O runs in a task of its own, which
    /// ends when the connection closes or its last sender is dropped.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| SyncError::Unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
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
async fn read_body(response: hyper::Response<Incoming>) -> Result<Vec<u8>> {
    let declared = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut out = Vec::with_capacity(declared.min(MAX_PREALLOCATION));
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| SyncError::Unreachable(e.to_string()))?;
        if let Some(data) = frame.data_ref() {
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
    }
}

/// `host:port` of an `http://host:port[/…]` base URL.
pub(crate) fn authority(server: &str) -> Result<String> {
    let rest = server
        .strip_prefix("http://")
        .or_else(|| server.strip_prefix("ws://"))
        .ok_or_else(|| {
            SyncError::Unreachable(format!(
                "{server}: only http:// relays are supported by this build"
            ))
        })?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(SyncError::Unreachable(format!("{server}: no host")));
    }
    Ok(if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:80")
    })
}

/// The device's blob folder and its index in the store (see the module docs).
#[derive(Debug, Clone)]
pub struct BlobCache {
    dir: PathBuf,
    store: Arc<dyn LocalStore>,
    limit_bytes: u64,
}

/// Meta key of a queued blob's owner (named when only families owned blobs).
fn owner_key(hash: BlobHash) -> String {
    format!("blob-family/{hash}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
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
        })
    }

    /// Where the bytes of `hash` live (when cached).
    pub fn path(&self, hash: BlobHash) -> PathBuf {
        self.dir.join(hash.to_hex())
    }

    /// Adds a blob made on this device for `owner`: writes the file, then queues it
    /// for upload in the store. Returns its hash. Adding the same bytes twice is fine.
    pub fn add_local(&self, bytes: &[u8], mime: &str, owner: BlobOwner) -> Result<BlobHash> {
        let hash = BlobHash::of(bytes);
        write_atomically(&self.path(hash), bytes)?;
        self.store.set_meta(&owner_key(hash), &owner.to_meta())?;
        let state = match self.store.blob(hash)? {
            Some(r) if r.state != BlobState::PendingUpload => r.state,
            _ => BlobState::PendingUpload,
        };
        self.store.put_blob(&BlobRecord {
            hash,
            size: bytes.len() as u64,
            mime: mime.to_owned(),
            state,
            cached: true,
            last_used_ms: now_ms(),
        })?;
        Ok(hash)
    }

    /// Uploads every blob waiting in the queue, oldest first; returns how many went
    /// up. Stops at the first failure (the rest stay queued).
    pub async fn upload_pending(&self, client: &BlobClient) -> Result<usize> {
        let mut done = 0;
        for record in self.store.pending_uploads()? {
            let owner = self
                .store
                .get_meta(&owner_key(record.hash))?
                .and_then(|b| BlobOwner::from_meta(&b))
                .ok_or_else(|| {
                    SyncError::Protocol(format!("blob {} has no owner to upload for", record.hash))
                })?;
            let path = self.path(record.hash);
            let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(|e| SyncError::Protocol(e.to_string()))??;
            client.put(record.hash, owner, bytes).await?;
            self.store
                .set_blob_state(record.hash, BlobState::Uploaded)?;
            done += 1;
        }
        Ok(done)
    }

    /// The path of the verified bytes of `hash`, downloading them if they are not
    /// cached; then trims the cache to its limit (least recently used first).
    pub async fn fetch(&self, client: &BlobClient, hash: BlobHash, mime: &str) -> Result<PathBuf> {
        let path = self.path(hash);
        if let Some(record) = self.store.blob(hash)?
            && record.cached
            && path.exists()
        {
            self.store.touch_blob(hash, now_ms())?;
            return Ok(path);
        }
        let bytes = client.get(hash).await?;
        let size = bytes.len() as u64;
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&target, &bytes))
            .await
            .map_err(|e| SyncError::Protocol(e.to_string()))??;
        let state = self
            .store
            .blob(hash)?
            .map_or(BlobState::RemoteOnly, |r| r.state);
        self.store.put_blob(&BlobRecord {
            hash,
            size,
            mime: mime.to_owned(),
            state,
            cached: true,
            last_used_ms: now_ms(),
        })?;
        self.evict(Some(hash))?;
        Ok(path)
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
            match std::fs::remove_file(self.path(victim.hash)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.store.set_cached(victim.hash, false)?;
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never
/// sees half a blob.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn owners_survive_the_queue_and_name_their_query() {
        let family = FamilyId([0xab; 16]);
        for owner in [BlobOwner::Family(family), BlobOwner::Me] {
            assert_eq!(BlobOwner::from_meta(&owner.to_meta()), Some(owner));
        }
        assert_eq!(
            BlobOwner::Family(family).query(),
            format!("family={family}")
        );
        assert_eq!(BlobOwner::Me.query(), "owner=me");
        assert_eq!(BlobOwner::from_meta(b"what"), None);
        assert_eq!(BlobOwner::from_meta(&[]), None);
    }

    #[test]
    fn authorities() {
        assert_eq!(
            authority("http://127.0.0.1:80").ok(),
            Some("127.0.0.1:80".into())
        );
        assert_eq!(authority("http://relay/").ok(), Some("relay:80".into()));
        assert!(authority("https://relay").is_err());
        assert!(authority("http://").is_err());
    }
}
