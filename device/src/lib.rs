//! A Dorandoran device as apps drive it: [`Device`], one long-lived facade per device
//! home, with live [`DeviceEvent`]s, views as serialisable data, and [`Error`]s a
//! person can read.
//!
//! `doran-client-core` is the pure engine (documents, views, the local store, the
//! sans-IO sync machine); this crate is the device shell above it, everything that
//! touches the outside world:
//!
//! - [`driver`]: the tokio host of the sync machine — the websocket (TLS for
//!   `https://` relays), reconnection, live chunks, requests over the connection;
//! - [`blobs`]: photos, voice messages and snapshots over the relay's signed HTTP
//!   API, with the persistent upload queue and the size-limited cache;
//! - [`photo`]: display copies, thumbnails and avatars made on the device;
//! - [`account`]: creating, restoring and linking an account, and the
//!   [`SecretStore`](account::SecretStore) the keys live behind;
//! - [`relay`]: the relay's address and TLS trust.

pub mod account;
pub mod blobs;
mod certs;
mod device;
pub mod device_name;
pub mod driver;
pub mod error;
pub mod events;
mod keys;
mod media_check;
mod mend;
pub mod photo;
mod profile_keys;
mod pump;
pub mod relay;
pub mod screens;
pub mod sync_error;
mod task;

pub use device::{BLOB_CACHE_BYTES, Clock, Device, DeviceOptions, KEEP_NOTIFICATIONS};
pub use device::{MissionChanges, MissionInput, ProfileChanges};
pub use doran_client_core as core;
pub use error::{Error, ErrorCode, Result};
pub use events::{DeviceEvent, EventListener, ListenerHandle, Part, Subscription};
