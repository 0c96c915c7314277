//! The relay's configuration: command line, environment and an optional JSON file.
//!
//! Precedence, highest first: command-line flags, `DORAN_*` environment variables
//! (clap reads both), the JSON file given with `--config`, then the defaults below.
//! Every field of [`Config`] may appear in the file; missing ones keep their default.
//!
//! ```json
//! { "listen": "0.0.0.0:7070", "data_dir": "/var/lib/doran",
//!   "tls_cert": "/etc/doran/fullchain.pem", "tls_key": "/etc/doran/key.pem",
//!   "limits": { "max_blob_bytes": 33554432, "family_quota_bytes": 10737418240 } }
//! ```
//!
//! TLS is on when both `tls_cert` and `tls_key` are set (from any source), off when
//! neither is; one without the other is [`ConfigError::TlsIncomplete`].
//!
//! **Backends.** By default the relay keeps everything under `data_dir` (SQLite and a
//! blob folder). `--database postgres://…` puts accounts and logs in PostgreSQL and
//! `--blobs s3://bucket/prefix` blobs in an S3-compatible store; with both, relays
//! sharing them form a cluster behind any load balancer (`docs/operations.md`):
//!
//! ```json
//! { "database": "postgres://doran@db.internal/doran", "database_schema": "doran",
//!   "blobs": "s3://doran-blobs/prod",
//!   "s3": { "endpoint": "http://garage.internal:3900", "region": "garage" },
//!   "trusted_proxies": ["10.0.0.5", "10.0.1.0/24"] }
//! ```
//!
//! The S3 credentials come from the file's `s3` section or, as for any S3 client,
//! from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_ENDPOINT`,
//! `AWS_REGION`); never from the command line, where `ps` would show them.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use clap::Parser;
use serde::Deserialize;

/// Command-line options of `doran-server`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "doran-server",
    version,
    about = "The Dorandoran relay: stores and relays opaque document chunks, blobs, accounts, families and invites."
)]
pub struct Cli {
    /// Directory holding `relay.sqlite` and the `blobs/` folder (created if missing).
    /// Default `./data`.
    #[arg(long, env = "DORAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address to listen on; port 0 picks a free port (the actual address is
    /// printed as `listening on http://ADDR`). Default `127.0.0.1:7070`.
    #[arg(long, env = "DORAN_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// PEM file with the TLS certificate chain, leaf first. Together with
    /// `--tls-key` the relay serves HTTPS and WSS only (rustls); with neither it
    /// serves plain HTTP. Read once at start: restart to load a renewed certificate.
    #[arg(long, env = "DORAN_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the TLS private key (PKCS#8, PKCS#1 or SEC1) matching
    /// `--tls-cert`.
    #[arg(long, env = "DORAN_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// A JSON file with any field of the configuration (see the crate docs).
    #[arg(long, env = "DORAN_CONFIG")]
    pub config: Option<PathBuf>,

    /// Stable id of this deployment (e.g. its public URL), signed into every
    /// challenge. Default `dorandoran-relay`.
    #[arg(long, env = "DORAN_SERVER_ID")]
    pub server_id: Option<String>,

    /// 64 hex digits that the relays of a cluster share, so that a session key one
    /// of them gave a device works at the others (see `auth::session_keys`). A relay
    /// alone draws its own at start; relays sharing a database without one give no
    /// session keys, and devices sign every HTTP request.
    #[arg(long, env = "DORAN_HTTP_SESSION_SECRET", hide_env_values = true)]
    pub http_session_secret: Option<String>,

    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "DORAN_LOG_JSON")]
    pub log_json: bool,

    /// PostgreSQL for accounts and document logs (`postgres://user:pass@host/db`)
    /// instead of SQLite in the data directory: for several relays sharing them.
    #[arg(long, env = "DORAN_DATABASE", value_name = "URL")]
    pub database: Option<String>,

    /// The PostgreSQL schema holding the relay's tables (created if missing). Default
    /// `doran`.
    #[arg(long, env = "DORAN_DATABASE_SCHEMA", value_name = "NAME")]
    pub database_schema: Option<String>,

    /// Blobs in an S3-compatible store (`s3://bucket/prefix`) instead of the folder in
    /// the data directory. Endpoint, region and keys: the config file's `s3` section,
    /// `--s3-endpoint`/`--s3-region`, or the `AWS_*` environment variables.
    #[arg(long, env = "DORAN_BLOBS", value_name = "URL")]
    pub blobs: Option<String>,

    /// The S3 service's URL (e.g. `http://127.0.0.1:3900` for Garage).
    #[arg(long, env = "DORAN_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// The S3 region (Garage's default is `garage`).
    #[arg(long, env = "DORAN_S3_REGION")]
    pub s3_region: Option<String>,

    /// A proxy or load balancer in front of the relay (an address or a CIDR block;
    /// repeat, or separate with commas): only requests from these take the client's
    /// address from `X-Forwarded-For`.
    #[arg(
        long = "trusted-proxy",
        env = "DORAN_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,

    /// Largest blob upload in bytes. Default 32 MiB.
    #[arg(long, env = "DORAN_MAX_BLOB_BYTES")]
    pub max_blob_bytes: Option<u64>,

    /// Blob bytes a family may hold. Default 10 GiB.
    #[arg(long, env = "DORAN_FAMILY_QUOTA_BYTES")]
    pub family_quota_bytes: Option<u64>,

    /// Bytes of personal blobs (avatars, personal-document snapshots) a user may
    /// hold. Default 256 MiB.
    #[arg(long, env = "DORAN_USER_QUOTA_BYTES")]
    pub user_quota_bytes: Option<u64>,

    /// Websocket frames per second a connection may sustain. Default 50.
    #[arg(long, env = "DORAN_FRAMES_PER_SECOND")]
    pub frames_per_second: Option<u32>,

    /// Simultaneous connections from one IP address. Default 64.
    #[arg(long, env = "DORAN_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,

    /// TCP connections open at once, all addresses together (kept below the open-file
    /// limit). Default 16384.
    #[arg(long, env = "DORAN_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

/// The whole configuration, after merging file, environment and flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite file and the blob folder live.
    pub data_dir: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Stable id of the deployment, part of every signed challenge.
    pub server_id: String,
    /// The secret the relays of a cluster derive HTTP session keys from; `None`: a
    /// relay alone draws one, relays of a cluster give none.
    pub http_session_secret: Option<SessionSecret>,
    /// JSON logs.
    pub log_json: bool,
    /// TLS certificate chain (PEM); TLS is on when this and `tls_key` are set.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PostgreSQL URL for accounts and logs; `None`: SQLite in `data_dir`.
    pub database: Option<String>,
    /// The PostgreSQL schema of the relay's tables.
    pub database_schema: String,
    /// Connections in this relay's PostgreSQL pool.
    pub database_pool: usize,
    /// `s3://bucket/prefix` for blobs; `None`: the folder in `data_dir`.
    pub blobs: Option<String>,
    /// How to reach the S3 service.
    pub s3: S3Config,
    /// Bytes of small blobs (thumbnails, avatars, voice messages) kept in memory once
    /// downloaded, for the next member's download of the same one; 0: none.
    pub blob_cache_bytes: u64,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Limits on what clients may send.
    pub limits: Limits,
}

/// The S3 service (unset fields: the `AWS_*` environment variables).
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Its URL; unset for AWS itself.
    pub endpoint: Option<String>,
    /// Its region.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Config {
    /// Without the secret key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// An address block: `10.0.0.5` (one address) or `10.0.1.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or an address/prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix must be 0..={max}"))?
        };
        Ok(IpNet { addr, prefix })
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Limits on what clients may send, and how long things live.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest blob, in bytes.
    pub max_blob_bytes: u64,
    /// Blob bytes granted to one family.
    pub family_quota_bytes: u64,
    /// Bytes the blob folder's disk must keep free (for the database and its WAL, on
    /// the same disk as a rule): an upload that would leave less is refused with
    /// `unavailable` (HTTP 503, retry later) and its device keeps it queued. Quotas are
    /// per family and per user, and accounts are free, so nothing else stops the disk
    /// filling. Not checked for an S3 store.
    pub min_free_disk_bytes: u64,
    /// Bytes of personal blobs granted to one user (avatar, personal snapshots).
    pub user_quota_bytes: u64,
    /// Sustained websocket frames per second per connection.
    pub frames_per_second: u32,
    /// Burst of websocket frames per connection above the sustained rate.
    pub frame_burst: u32,
    /// Consecutive rate-limited frames after which the connection is closed. More than
    /// a device keeps in flight (32 pushes): those were sent before the first refusal
    /// reached it, and a device that waits as asked must not be closed for them.
    pub rate_limit_strikes: u32,
    /// Simultaneous websocket connections per IP address.
    pub max_connections_per_ip: usize,
    /// TCP connections (HTTP and websockets) open at once. At start the relay lowers it
    /// to what its open-file limit allows. Past it, the quietest connection that is
    /// not a signed-in session is closed for the newcomer.
    pub max_connections: usize,
    /// Seconds a connection has to send a request's headers (and an idle kept-alive
    /// HTTP connection waits for its next request) before it is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds the relay waits for a peer that takes none of the bytes it has to send
    /// (a download or a websocket whose reader stopped) before closing the
    /// connection; 0 waits for ever. Without it, downloads nobody reads held their
    /// buffers for as long as the attacker liked.
    pub write_stall_secs: u64,
    /// Seconds a new websocket has to send `Hello`.
    pub hello_timeout_secs: u64,
    /// Seconds a new websocket has to be signed in.
    pub sign_in_timeout_secs: u64,
    /// Blob uploads in progress at once, relay-wide.
    pub max_concurrent_uploads: usize,
    /// Blob uploads in progress at once for one account.
    pub max_uploads_per_account: usize,
    /// Blob uploads in progress at once from one address (the client's, as
    /// [`trusted_proxies`](Config::trusted_proxies) tells it): free accounts from one
    /// address cannot together hold every upload slot.
    pub max_uploads_per_address: usize,
    /// Slowest upload the relay waits for, in bytes per second, after the grace
    /// period: an upload must have sent `grace × rate + elapsed × rate` bytes by then.
    pub upload_min_bytes_per_second: u64,
    /// When every upload slot of the relay is taken, a new upload makes the slowest
    /// one past its grace give way (`too_slow`) if that one brought fewer than this
    /// many bytes per second over its last 20 s or so; 0 never makes one give way.
    /// Without it, uploads kept just above the minimum rate held every slot for as
    /// long as a largest blob takes at that rate (hours).
    pub upload_yield_bytes_per_second: u64,
    /// Blob downloads in progress at once from one address (the client's, as
    /// [`trusted_proxies`](Config::trusted_proxies) tells it), from when its signature
    /// is checked until its connection ends (or a later download of the connection
    /// takes the turn over); past it a download waits up to
    /// [`download_wait_secs`](Self::download_wait_secs) for its turn, then gets
    /// `rate_limited`. Each one in progress may hold up to a read piece (256 KiB).
    pub max_downloads_per_address: usize,
    /// Blob downloads in progress at once for one account, waited for like the
    /// address's: one account cannot take every turn of an address it shares.
    pub max_downloads_per_account: usize,
    /// Seconds a download waits, in all, for a turn of its account and of its
    /// address.
    pub download_wait_secs: u64,
    /// Seconds an upload may take before the minimum rate applies.
    pub upload_grace_secs: u64,
    /// Bytes of chunks a family document's log may hold (compaction frees them).
    pub family_log_quota_bytes: u64,
    /// Bytes of chunks a personal document's log may hold.
    pub personal_log_quota_bytes: u64,
    /// Families a user may belong to (created or joined).
    pub max_families_per_user: usize,
    /// Bytes of chunks a family's per-year volume may hold (a year of what the family
    /// made; compaction frees them).
    pub volume_log_quota_bytes: u64,
    /// Per-year volumes a family may open (`OpenVolume`, issue 17); past them, only
    /// the volume of the year it is now and of the next still opens. A device files
    /// what it makes in the volume of the year it makes it (its clock's UTC year), so
    /// this bounds volumes of other years (a device's clock far off) and with them the
    /// logs, each of `volume_log_quota_bytes`, a member can make the relay keep.
    pub max_volumes_per_family: usize,
    /// Seconds between two sweeps of the blob folder for blobs nothing references.
    pub blob_gc_interval_secs: u64,
    /// Seconds a blob stays after it was last referenced (or stored) before a sweep
    /// may delete it: a backup of the database is good for this long.
    pub blob_gc_grace_secs: u64,
    /// Seconds a pushed snapshot waits for a device of another member to confirm it
    /// before it is forgotten (its covered chunks were never dropped).
    pub pending_snapshot_ttl_secs: u64,
    /// Seconds before a user may replace their own pending snapshot of a document
    /// with another: every member's device downloads and checks each one offered (up
    /// to a blob's size), so re-pushing in a loop would drain their data and battery.
    /// Another member's push, or the same snapshot again, is never held back.
    pub snapshot_replace_secs: u64,
    /// Registrations per hour per IP address (also counts refused ones).
    pub registrations_per_hour_per_address: u32,
    /// Signed HTTP requests remembered against replay at once; past it, new ones get
    /// `busy` until older ones leave the window.
    pub http_replay_cache_max: usize,
    /// Of those, at most this many from one account's devices: past it that account
    /// gets `busy`, not everyone (one account flooding signed requests would
    /// otherwise fill the whole memory and stop every family's blobs).
    pub http_replay_per_user: usize,
    /// Bytes of catch-up (chunks sent for `Subscribe`) per second per connection.
    pub catch_up_bytes_per_second: u64,
    /// Bytes of catch-up a connection may get at once above the sustained rate.
    pub catch_up_burst_bytes: u64,
    /// Directory lookups per minute per account.
    pub lookups_per_minute_per_account: u32,
    /// Directory lookups per minute per IP address.
    pub lookups_per_minute_per_address: u32,
    /// How long a sign-in challenge may be answered, in seconds.
    pub challenge_ttl_secs: u64,
    /// How long an invite may be answered, in seconds (7 days).
    pub invite_ttl_secs: u64,
    /// How long a device-link code works, in seconds.
    pub link_code_ttl_secs: u64,
    /// Allowed clock difference for signed HTTP requests, in seconds.
    pub http_clock_skew_secs: u64,
    /// How long an HTTP session key works, in seconds (see `auth::session_keys`): a
    /// key that leaked works no longer than this. 0: no session keys, every request
    /// is signed.
    pub http_session_key_secs: u64,
    /// Frames queued for one connection before it is dropped as too slow.
    pub outbound_queue: usize,
    /// Milliseconds a websocket stays idle (no message either way) before it is
    /// parked: its websocket buffers are dropped and built again when the device
    /// speaks or something is sent to it (see [`crate::ws::link`]). 0 never parks.
    pub park_idle_ms: u64,
    /// Milliseconds a device may take to finish a websocket message it began (a frame
    /// whose header came but not all its bytes, or a fragmented message) before the
    /// connection is closed: a client trickling one message for ever would otherwise
    /// hold a websocket and its buffers that never park. 0: no limit.
    pub message_deadline_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            server_id: "dorandoran-relay".to_owned(),
            http_session_secret: None,
            log_json: false,
            tls_cert: None,
            tls_key: None,
            database: None,
            database_schema: "doran".to_owned(),
            database_pool: 16,
            blobs: None,
            s3: S3Config::default(),
            blob_cache_bytes: 32 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blob_bytes: 32 * 1024 * 1024,
            family_quota_bytes: 10 * 1024 * 1024 * 1024,
            min_free_disk_bytes: 1024 * 1024 * 1024,
            user_quota_bytes: 256 * 1024 * 1024,
            frames_per_second: 50,
            frame_burst: 200,
            rate_limit_strikes: 64,
            max_connections_per_ip: 64,
            max_connections: 16_384,
            header_read_timeout_secs: 10,
            write_stall_secs: 30,
            hello_timeout_secs: 10,
            sign_in_timeout_secs: 30,
            max_concurrent_uploads: 128,
            max_uploads_per_account: 4,
            max_uploads_per_address: 16,
            upload_min_bytes_per_second: 4 * 1024,
            upload_yield_bytes_per_second: 64 * 1024,
            max_downloads_per_address: 64,
            max_downloads_per_account: 32,
            download_wait_secs: 10,
            upload_grace_secs: 10,
            family_log_quota_bytes: 128 * 1024 * 1024,
            personal_log_quota_bytes: 16 * 1024 * 1024,
            max_families_per_user: 16,
            volume_log_quota_bytes: 32 * 1024 * 1024,
            max_volumes_per_family: 16,
            blob_gc_interval_secs: 60 * 60,
            blob_gc_grace_secs: 60 * 60,
            pending_snapshot_ttl_secs: 7 * 24 * 60 * 60,
            snapshot_replace_secs: 60,
            registrations_per_hour_per_address: 20,
            http_replay_cache_max: 100_000,
            http_replay_per_user: 8_192,
            catch_up_bytes_per_second: 8 * 1024 * 1024,
            catch_up_burst_bytes: 64 * 1024 * 1024,
            lookups_per_minute_per_account: 10,
            lookups_per_minute_per_address: 30,
            challenge_ttl_secs: 60,
            invite_ttl_secs: 7 * 24 * 60 * 60,
            link_code_ttl_secs: 10 * 60,
            http_clock_skew_secs: 5 * 60,
            http_session_key_secs: 10 * 60,
            outbound_queue: 1024,
            park_idle_ms: 1_000,
            message_deadline_ms: 120_000,
        }
    }
}

impl Limits {
    /// [`challenge_ttl_secs`](Self::challenge_ttl_secs) in milliseconds.
    pub fn challenge_ttl_ms(&self) -> u64 {
        self.challenge_ttl_secs.saturating_mul(1000)
    }

    /// [`invite_ttl_secs`](Self::invite_ttl_secs) in milliseconds.
    pub fn invite_ttl_ms(&self) -> u64 {
        self.invite_ttl_secs.saturating_mul(1000)
    }

    /// [`link_code_ttl_secs`](Self::link_code_ttl_secs) in milliseconds.
    pub fn link_code_ttl_ms(&self) -> u64 {
        self.link_code_ttl_secs.saturating_mul(1000)
    }

    /// [`http_clock_skew_secs`](Self::http_clock_skew_secs) as a duration.
    pub fn http_clock_skew(&self) -> Duration {
        Duration::from_secs(self.http_clock_skew_secs)
    }

    /// [`hello_timeout_secs`](Self::hello_timeout_secs) as a duration.
    pub fn hello_timeout(&self) -> Duration {
        Duration::from_secs(self.hello_timeout_secs)
    }

    /// [`sign_in_timeout_secs`](Self::sign_in_timeout_secs) as a duration.
    pub fn sign_in_timeout(&self) -> Duration {
        Duration::from_secs(self.sign_in_timeout_secs)
    }

    /// [`message_deadline_ms`](Self::message_deadline_ms); `None` (no limit) for 0.
    pub fn message_deadline(&self) -> Option<Duration> {
        (self.message_deadline_ms > 0).then(|| Duration::from_millis(self.message_deadline_ms))
    }

    /// [`park_idle_ms`](Self::park_idle_ms); `None` (never park) for 0.
    pub fn park_idle(&self) -> Option<Duration> {
        (self.park_idle_ms > 0).then(|| Duration::from_millis(self.park_idle_ms))
    }

    /// [`write_stall_secs`](Self::write_stall_secs); `None` (no deadline) for 0.
    pub fn write_stall(&self) -> Option<Duration> {
        (self.write_stall_secs > 0).then(|| Duration::from_secs(self.write_stall_secs))
    }

    /// [`header_read_timeout_secs`](Self::header_read_timeout_secs); `None` (no
    /// deadline) for 0.
    pub fn header_read_timeout(&self) -> Option<Duration> {
        (self.header_read_timeout_secs > 0)
            .then(|| Duration::from_secs(self.header_read_timeout_secs))
    }
}

/// The secret HTTP session keys are derived from (32 bytes, written as 64 hex digits).
/// Never printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionSecret(pub [u8; 32]);

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(..)")
    }
}

impl FromStr for SessionSecret {
    type Err = ConfigError;

    fn from_str(hex: &str) -> Result<Self, ConfigError> {
        let mut secret = [0u8; 32];
        hex::decode_to_slice(hex.trim(), &mut secret).map_err(|_| ConfigError::SessionSecret)?;
        Ok(SessionSecret(secret))
    }
}

impl<'de> Deserialize<'de> for SessionSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A `--trusted-proxy` is not an address or a block.
    #[error("invalid trusted proxy: {0}")]
    TrustedProxy(String),
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid JSON for [`Config`].
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The HTTP session secret is not 64 hex digits.
    #[error("http_session_secret must be 64 hex digits (32 random bytes)")]
    SessionSecret,
    /// Only one of the TLS certificate and key was given.
    #[error(
        "TLS needs both a certificate and a key: {given} is set but {missing} is not \
         (give both --tls-cert and --tls-key, or neither for plain HTTP)"
    )]
    TlsIncomplete {
        /// The config key that was given (`tls_cert` or `tls_key`).
        given: &'static str,
        /// The config key that is missing.
        missing: &'static str,
    },
}

impl Config {
    /// Merges the file named by `cli.config` (if any) and the flags/environment.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let mut config = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => Config::default(),
        };
        config.apply(cli)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what no single source can: TLS certificate and key come as a pair.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => Err(ConfigError::TlsIncomplete {
                given: "tls_cert",
                missing: "tls_key",
            }),
            (None, Some(_)) => Err(ConfigError::TlsIncomplete {
                given: "tls_key",
                missing: "tls_cert",
            }),
            _ => Ok(()),
        }
    }

    /// Whether `peer` is a trusted proxy.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(peer))
    }

    /// The certificate and key files when TLS is on.
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => None,
        }
    }

    /// Overrides fields with the flags (and environment variables) that were given.
    pub fn apply(&mut self, cli: &Cli) -> Result<(), ConfigError> {
        if let Some(secret) = &cli.http_session_secret {
            self.http_session_secret = Some(secret.parse()?);
        }
        if let Some(url) = &cli.database {
            self.database = Some(url.clone());
        }
        if let Some(schema) = &cli.database_schema {
            self.database_schema.clone_from(schema);
        }
        if let Some(url) = &cli.blobs {
            self.blobs = Some(url.clone());
        }
        if let Some(endpoint) = &cli.s3_endpoint {
            self.s3.endpoint = Some(endpoint.clone());
        }
        if let Some(region) = &cli.s3_region {
            self.s3.region = Some(region.clone());
        }
        for proxy in cli.trusted_proxies.iter().filter(|p| !p.trim().is_empty()) {
            self.trusted_proxies
                .push(proxy.parse().map_err(ConfigError::TrustedProxy)?);
        }
        if let Some(dir) = &cli.data_dir {
            self.data_dir.clone_from(dir);
        }
        if let Some(listen) = cli.listen {
            self.listen = listen;
        }
        if let Some(id) = &cli.server_id {
            self.server_id.clone_from(id);
        }
        self.log_json |= cli.log_json;
        if let Some(cert) = &cli.tls_cert {
            self.tls_cert = Some(cert.clone());
        }
        if let Some(key) = &cli.tls_key {
            self.tls_key = Some(key.clone());
        }
        let l = &mut self.limits;
        if let Some(v) = cli.max_blob_bytes {
            l.max_blob_bytes = v;
        }
        if let Some(v) = cli.family_quota_bytes {
            l.family_quota_bytes = v;
        }
        if let Some(v) = cli.user_quota_bytes {
            l.user_quota_bytes = v;
        }
        if let Some(v) = cli.frames_per_second {
            l.frames_per_second = v;
        }
        if let Some(v) = cli.max_connections_per_ip {
            l.max_connections_per_ip = v;
        }
        if let Some(v) = cli.max_connections {
            l.max_connections = v;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let file: Config =
            serde_json::from_str(r#"{"listen":"0.0.0.0:9000","limits":{"max_blob_bytes":10}}"#)
                .expect("valid config");
        assert_eq!(file.limits.max_blob_bytes, 10);
        assert_eq!(file.limits.family_quota_bytes, 10 * 1024 * 1024 * 1024);
        let mut config = file;
        let cli = Cli::parse_from(["doran-server", "--listen", "127.0.0.1:0"]);
        config.apply(&cli).expect("valid flags");
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn tls_needs_both_files_from_any_source() {
        let cli = Cli::parse_from(["doran-server", "--tls-cert", "cert.pem"]);
        let mut config = Config::default();
        config.apply(&cli).expect("valid flags");
        assert!(matches!(
            config.validate(),
            Err(ConfigError::TlsIncomplete {
                missing: "tls_key",
                ..
            })
        ));
        assert!(config.tls_files().is_none());

        // The key from the file, the certificate from the flag: a pair.
        let mut config: Config =
            serde_json::from_str(r#"{"tls_key":"key.pem"}"#).expect("valid config");
        assert!(config.validate().is_err());
        config.apply(&cli).expect("valid flags");
        assert!(config.validate().is_ok());
        let (cert, key) = config.tls_files().expect("TLS on");
        assert_eq!((cert, key), (Path::new("cert.pem"), Path::new("key.pem")));

        assert!(Config::default().validate().is_ok());
        assert!(Config::default().tls_files().is_none());
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks() {
        let cli = Cli::parse_from([
            "doran-server",
            "--trusted-proxy",
            "127.0.0.1,10.0.1.0/24",
            "--trusted-proxy",
            "::1",
        ]);
        let mut config = Config::default();
        config.apply(&cli).expect("valid flags");
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        assert!(config.trusts(ip("127.0.0.1")));
        assert!(config.trusts(ip("::ffff:127.0.0.1")));
        assert!(config.trusts(ip("10.0.1.77")));
        assert!(config.trusts(ip("::1")));
        assert!(!config.trusts(ip("10.0.2.1")));
        assert!(!config.trusts(ip("127.0.0.2")));
        let bad = Cli::parse_from(["doran-server", "--trusted-proxy", "10.0.0.0/33"]);
        assert!(Config::default().apply(&bad).is_err());
        let file: Config =
            serde_json::from_str(r#"{"trusted_proxies":["0.0.0.0/0"]}"#).expect("valid");
        assert!(file.trusts(ip("192.0.2.1")));
    }

    #[test]
    fn the_session_secret_is_64_hex_digits_and_never_printed() {
        let hex = "ab".repeat(32);
        let file: Config = serde_json::from_str(&format!(r#"{{"http_session_secret":"{hex}"}}"#))
            .expect("valid config");
        assert_eq!(file.http_session_secret, Some(SessionSecret([0xab; 32])));
        assert!(!format!("{file:?}").contains(&hex));
        for bad in ["ab".repeat(31), "zz".repeat(32), String::new()] {
            assert!(
                serde_json::from_str::<Config>(&format!(r#"{{"http_session_secret":"{bad}"}}"#))
                    .is_err(),
                "{bad:?}"
            );
        }
        let mut config = Config::default();
        let cli = Cli::parse_from(["doran-server", "--http-session-secret", "12"]);
        assert!(matches!(
            config.apply(&cli),
            Err(ConfigError::SessionSecret)
        ));
        let cli = Cli::parse_from(["doran-server", "--http-session-secret", &hex]);
        config.apply(&cli).expect("applied");
        assert_eq!(config.http_session_secret, Some(SessionSecret([0xab; 32])));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<Config>(r#"{"lisen":"x"}"#).is_err());
    }
}
