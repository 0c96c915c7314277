//! [`S3BlobStore`]: blobs in an S3-compatible object store (Garage, MinIO, AWS S3...),
//! for relays that share their blobs (scale-out).
//!
//! Objects are `PREFIX/blobs/HASH` (lowercase hex, so the store's key order is hash
//! order and a sweep pages through them with `start-after`). Like the other blob
//! stores, bytes become visible under their hash only once verified:
//!
//! - An upload is held in memory up to [`SMALL`] bytes; if it ends there (photos,
//!   thumbnails, voice messages), its hash is checked and it is stored under its name
//!   with one `PUT`.
//! - A larger one streams to `PREFIX/tmp/RANDOM` as a multipart upload (parts of
//!   [`SMALL`] bytes, a few in flight), and once its hash is checked it is copied to
//!   its name on the server (`CopyObject`, no bytes through the relay) and the
//!   temporary object deleted. An upload dropped or refused aborts its multipart
//!   upload; one interrupted by a crash leaves a temporary object or parts, which the
//!   bucket's lifecycle rule for incomplete uploads (see `docs/operations.md`) clears.
//!
//! Reads are ranged `GET`s. An object's `Last-Modified` is its [`StoredBlob::stored_at`]:
//! storing a blob again rewrites it, which renews it for the blob sweep. Like
//! [`super::PgStore`], the sync methods drive the async client with
//! [`Handle::block_on`] on the calling (blocking) thread.

use std::{fmt, sync::Arc};

use doran_protocol::BlobHash;
use futures_util::StreamExt;
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart,
    aws::{AmazonS3, AmazonS3Builder},
    path::Path,
};
use tokio::runtime::Handle;

use super::{BlobSink, BlobStore, StoreError, StoreResult, StoredBlob};

/// Uploads up to this size are buffered and stored with one `PUT`; larger ones go
/// in multipart parts of this size (S3's minimum part is 5 MiB).
pub const SMALL: usize = 5 * 1024 * 1024;

/// Multipart parts uploading at once for one blob.
const PARTS_IN_FLIGHT: usize = 2;

/// Where the blobs are: `s3://BUCKET/PREFIX`, and how to reach the store.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside the bucket (may be empty).
    pub prefix: String,
    /// The service's URL (`http://127.0.0.1:3900` for a local Garage); unset for AWS.
    pub endpoint: Option<String>,
    /// The region (Garage's is `garage` unless configured otherwise).
    pub region: Option<String>,
    /// Access key id; else `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Secret key; else `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
}

impl S3Options {
    /// Parses `s3://bucket/prefix` (the prefix may be empty or have several levels).
    pub fn from_url(url: &str) -> StoreResult<S3Options> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| StoreError::Invalid(format!("{url:?} is not an s3:// URL")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Invalid(format!("{url:?} names no bucket")));
        }
        Ok(S3Options {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            ..S3Options::default()
        })
    }
}

/// Blobs in an S3-compatible bucket (see the module docs).
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    prefix: String,
    rt: Handle,
}

impl fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn s3_error(e: object_store::Error) -> StoreError {
    StoreError::backend(e)
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl S3BlobStore {
    /// A store over `options` (credentials, region and endpoint not given there come
    /// from the usual `AWS_*` environment variables), on the runtime `rt`. Checks that
    /// the bucket answers.
    pub fn open(options: &S3Options, rt: Handle) -> StoreResult<Self> {
        // The HTTP client's TLS is rustls with no bundled provider: the relay's
        // (`ring`), unless the process chose one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&options.bucket);
        if let Some(endpoint) = &options.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &options.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = S3BlobStore {
            store: Arc::new(builder.build().map_err(s3_error)?),
            prefix: options.prefix.clone(),
            rt,
        };
        // One listing call: a wrong bucket, endpoint or key fails the start, not the
        // first upload.
        store.list(None, 1)?;
        Ok(store)
    }

    fn key(&self, dir: &str, name: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(format!("{dir}/{name}"))
        } else {
            Path::from(format!("{}/{dir}/{name}", self.prefix))
        }
    }

    fn blobs_dir(&self) -> Path {
        if self.prefix.is_empty() {
            Path::from("blobs")
        } else {
            Path::from(format!("{}/blobs", self.prefix))
        }
    }

    fn blob_key(&self, hash: BlobHash) -> Path {
        self.key("blobs", &hash.to_string())
    }
}

impl BlobStore for S3BlobStore {
    fn begin(&self) -> StoreResult<Box<dyn BlobSink>> {
        Ok(Box::new(S3Sink {
            store: Arc::clone(&self.store),
            tmp: self.key("tmp", &format!("{:032x}", rand::random::<u128>())),
            blobs: self.blobs_dir(),
            rt: self.rt.clone(),
            hasher: blake3::Hasher::new(),
            len: 0,
            buffer: Vec::new(),
            multipart: None,
        }))
    }

    fn size(&self, hash: BlobHash) -> StoreResult<Option<u64>> {
        let key = self.blob_key(hash);
        self.rt.block_on(async {
            match self.store.head(&key).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(s3_error(e)),
            }
        })
    }

    fn read(&self, hash: BlobHash, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        let key = self.blob_key(hash);
        self.rt.block_on(async {
            // One ranged GET (the store clamps its end); only when it fails, a HEAD
            // tells a missing blob from a read at or past its end.
            let failed = if len == 0 {
                None
            } else {
                match self
                    .store
                    .get_range(&key, offset..offset.saturating_add(len))
                    .await
                {
                    Ok(bytes) => return Ok(bytes.to_vec()),
                    Err(e) if is_not_found(&e) => return Err(StoreError::NotFound("blob")),
                    Err(e) => Some(e),
                }
            };
            match self.store.head(&key).await {
                Ok(meta) if meta.size <= offset || len == 0 => Ok(Vec::new()),
                Ok(_) => Err(failed.map_or(StoreError::NotFound("blob"), s3_error)),
                Err(e) if is_not_found(&e) => Err(StoreError::NotFound("blob")),
                Err(e) => Err(s3_error(e)),
            }
        })
    }

    fn list(&self, after: Option<BlobHash>, limit: usize) -> StoreResult<Vec<StoredBlob>> {
        let dir = self.blobs_dir();
        let offset = after.map(|h| self.blob_key(h));
        self.rt.block_on(async {
            let mut listing = match &offset {
                Some(o) => self.store.list_with_offset(Some(&dir), o),
                None => self.store.list(Some(&dir)),
            };
            let mut out = Vec::with_capacity(limit.min(1024));
            while out.len() < limit {
                let Some(meta) = listing.next().await else {
                    break;
                };
                let meta = meta.map_err(s3_error)?;
                let Some(hash) = meta
                    .location
                    .filename()
                    .and_then(|name| name.parse::<BlobHash>().ok())
                else {
                    continue; // not one of ours
                };
                out.push(StoredBlob {
                    hash,
                    size: meta.size,
                    stored_at: u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0),
                });
            }
            Ok(out)
        })
    }

    fn delete(&self, hash: BlobHash) -> StoreResult<bool> {
        let key = self.blob_key(hash);
        self.rt.block_on(async {
            match self.store.head(&key).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(false),
                Err(e) => return Err(s3_error(e)),
            }
            self.store.delete(&key).await.map_err(s3_error)?;
            Ok(true)
        })
    }
}

/// An upload in progress: in memory until it outgrows [`SMALL`], then a multipart
/// upload to a temporary object.
struct S3Sink {
    store: Arc<AmazonS3>,
    tmp: Path,
    blobs: Path,
    rt: Handle,
    hasher: blake3::Hasher,
    len: u64,
    buffer: Vec<u8>,
    multipart: Option<WriteMultipart>,
}

impl S3Sink {
    fn final_key(&self, hash: BlobHash) -> Path {
        self.blobs.clone().join(hash.to_string())
    }
}

impl BlobSink for S3Sink {
    fn write(&mut self, bytes: &[u8]) -> StoreResult<()> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        if self.multipart.is_none() && self.buffer.len() + bytes.len() <= SMALL {
            self.buffer.extend_from_slice(bytes);
            return Ok(());
        }
        let (store, tmp) = (Arc::clone(&self.store), self.tmp.clone());
        let buffered = std::mem::take(&mut self.buffer);
        let multipart = &mut self.multipart;
        self.rt.block_on(async {
            if multipart.is_none() {
                let upload = store.put_multipart(&tmp).await.map_err(s3_error)?;
                let mut w = WriteMultipart::new_with_chunk_size(upload, SMALL);
                w.write(&buffered);
                *multipart = Some(w);
            }
            if let Some(w) = multipart.as_mut() {
                w.wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(s3_error)?;
                w.write(bytes);
            }
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>, expected: BlobHash) -> StoreResult<u64> {
        let actual = BlobHash(*self.hasher.finalize().as_bytes());
        let multipart = self.multipart.take();
        let (store, tmp) = (Arc::clone(&self.store), self.tmp.clone());
        if actual != expected {
            if let Some(w) = multipart {
                let _ = self.rt.block_on(w.abort());
            }
            return Err(StoreError::HashMismatch);
        }
        let key = self.final_key(expected);
        let buffer = std::mem::take(&mut self.buffer);
        self.rt.block_on(async {
            match multipart {
                None => {
                    store
                        .put(&key, PutPayload::from(buffer))
                        .await
                        .map_err(s3_error)?;
                }
                Some(w) => {
                    w.finish().await.map_err(s3_error)?;
                    let copied = store.copy(&tmp, &key).await.map_err(s3_error);
                    if let Err(e) = store.delete(&tmp).await {
                        tracing::warn!(error = %e, %tmp, "cannot delete a temporary upload");
                    }
                    copied?;
                }
            }
            Ok::<_, StoreError>(())
        })?;
        Ok(self.len)
    }
}

impl Drop for S3Sink {
    fn drop(&mut self) {
        // Dropped unfinished: abort the multipart upload, in the background.
        if let Some(w) = self.multipart.take() {
            self.rt.spawn(async move {
                if let Err(e) = w.abort().await {
                    tracing::warn!(error = %e, "cannot abort an unfinished upload");
                }
            });
        }
    }
}
