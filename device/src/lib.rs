//! A Dorandoran device as apps drive it.
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
pub mod driver;
pub mod error;
pub mod photo;
pub mod relay;
