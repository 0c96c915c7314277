//! The one place the relay's backends are chosen, from its configuration: PostgreSQL
//! when `database` is set (else SQLite at `DATA/relay.sqlite`), an S3-compatible store
//! when `blobs` is `s3://…` (else the folder `DATA/blobs`), with the small blobs read
//! most recently in memory in front of either (`blob_cache_bytes`).

use std::sync::Arc;

use tokio::runtime::Handle;

use crate::{
    config::Config,
    state::Stores,
    store::{
        AccountStore, BlobStore, CachedBlobs, FsBlobStore, LogStore, PgOptions, PgStore,
        S3BlobStore, S3Options, SqliteStore, StoreError, StoreResult,
    },
};

/// The stores a relay runs on, and the PostgreSQL store if it is one (the cluster
/// layer shares its pool and channel).
#[derive(Debug)]
pub struct Opened {
    /// The three stores.
    pub stores: Stores,
    /// Set when accounts and logs are in PostgreSQL.
    pub postgres: Option<Arc<PgStore>>,
}

/// Opens the backends `config` names. `rt` runs the async clients of the PostgreSQL
/// and S3 backends; call from a blocking thread (their constructors wait on it).
pub fn open(config: &Config, origin: &str, rt: &Handle) -> StoreResult<Opened> {
    let dir = &config.data_dir;
    let needs_dir = config.database.is_none() || config.blobs.is_none();
    if needs_dir {
        std::fs::create_dir_all(dir).map_err(StoreError::backend)?;
    }
    let accounts: Arc<dyn AccountStore>;
    let logs: Arc<dyn LogStore>;
    let mut postgres = None;
    match &config.database {
        Some(url) => {
            let mut options = PgOptions::new(url.clone());
            options.schema.clone_from(&config.database_schema);
            options.pool_size = config.database_pool;
            options.origin = origin.to_owned();
            let pg = Arc::new(PgStore::connect(&options, rt.clone())?);
            tracing::info!(schema = %options.schema, "accounts and logs in PostgreSQL");
            accounts = pg.clone();
            logs = pg.clone();
            postgres = Some(pg);
        }
        None => {
            let sqlite = Arc::new(SqliteStore::open(dir.join(SqliteStore::FILE_NAME))?);
            accounts = sqlite.clone();
            logs = sqlite;
        }
    }
    let blobs: Arc<dyn BlobStore> = match &config.blobs {
        Some(url) => {
            let mut options = S3Options::from_url(url)?;
            options.endpoint.clone_from(&config.s3.endpoint);
            options.region.clone_from(&config.s3.region);
            options.access_key_id.clone_from(&config.s3.access_key_id);
            options
                .secret_access_key
                .clone_from(&config.s3.secret_access_key);
            let s3 = S3BlobStore::open(&options, rt.clone())?;
            tracing::info!(bucket = %options.bucket, prefix = %options.prefix, "blobs in S3");
            Arc::new(s3)
        }
        None => Arc::new(FsBlobStore::open(dir.join("blobs"))?),
    };
    // The blobs a download reads whole are the ones worth keeping. Relays sharing a
    // bucket each delete from it: there whether a blob is there is asked of the bucket
    // every time, and memory spares only the GET of its bytes.
    let blobs: Arc<dyn BlobStore> = match config.blob_cache_bytes {
        0 => blobs,
        max => {
            let cache = CachedBlobs::new(blobs, max, crate::http::blobs::READ_AT_ONCE);
            Arc::new(if config.blobs.is_some() {
                cache.sizes_from_store()
            } else {
                cache
            })
        }
    };
    Ok(Opened {
        stores: Stores {
            accounts,
            logs,
            blobs,
        },
        postgres,
    })
}
