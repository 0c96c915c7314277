//! Syncing this device with the relay.
//!
//! This crate holds the two pure layers; the tokio driver that owns the websocket lives
//! in the device shell (`doran-device`):
//!
//! - [`SyncMachine`] (sans-IO): the protocol of one device's connection. Events in
//!   ([`Event`]: connected, a frame, disconnected, a local change, a tick, answers
//!   to its own requests for data), [`Effects`] out (frames to send, chunks to apply,
//!   outbox entries acked, requests answered, server events, status, when to
//!   reconnect). Time and randomness are parameters, so it is deterministic and tested
//!   without sockets (`tests/sync_machine.rs`).
//! - [`SyncHost`]: what the machine's effects need from the device — the store and the
//!   open documents. The engine implements it; [`StoreHost`] is a complete one over a
//!   [`LocalStore`](crate::store::LocalStore) for the command line and tests.
//! - `SyncDriver` (tokio, in `doran-device`): connects the websocket, runs the machine,
//!   executes its effects against the host and the blob client, and publishes
//!   [`SyncStatus`] and events.
//!
//! # The host's control loop, step by step
//!
//! This is what `SyncDriver` does; another host (a test harness, a mobile runtime)
//! does the same:
//!
//! 1. Open the websocket (`ws://host/ws`). Read every document's resume point from the
//!    store ([`SyncHost::doc_cursors`]) and hand them in with [`Event::Connected`]; the
//!    machine answers with `Hello`.
//! 2. Feed every frame from the relay as [`Event::Frame`], every local commit as
//!    [`Event::LocalChange`], and an [`Event::Tick`] about once a second.
//! 3. After each call, execute the [`Effects`] in field order:
//!    - `send`: encode and send each frame;
//!    - `apply`: for each batch, download and verify the snapshot blob if there is one,
//!      merge it and the chunks into the open document (each change of a chunk must
//!      be written as the chunk's author, the user the relay says pushed it), and store the accepted chunks
//!      with the new cursor and the view rows in one transaction
//!      ([`SyncHost::apply`]); if that fails, disconnect (the cursors are re-read on the
//!      next connection, so nothing is skipped);
//!    - `acked` / `refused`: remove those entries from the outbox;
//!    - `want_outbox`: read that many outbox entries (oldest first, after the id it
//!      names) and feed them back as [`Event::Outbox`];
//!    - `compact`: save the document, upload it as a blob, feed
//!      [`Event::SnapshotUploaded`] (or [`Event::CompactFailed`], [`Event::CompactSkipped`]);
//!    - `snapshot_accepted`: remember the covered seq (for the next `Connected`);
//!    - `answered`: complete the matching request callers;
//!    - `signed_in`: persist the user id if it was not known (registration);
//!    - `events`, `dropped`, `errors`, `status`: tell the UI;
//!    - `close`: close the socket; `reconnect_after`: wait that long (the machine adds
//!      jitter and grows it exponentially) and go to step 1; `fatal`: stop for good.
//! 4. On a socket error or close, feed [`Event::Disconnected`] and obey the
//!    `reconnect_after` it returns.
//!
//! Edits never wait for the network: they are committed to the store with their outbox
//! entry, and pushed whenever a connection is up. Chunks arrive in the relay's order
//! per document; a chunk at or below the cursor is a redelivery and is ignored, and
//! applying one twice would be harmless anyway (Automerge merges are idempotent).

mod backoff;
mod effects;
mod error;
mod host;
mod keys;
mod machine;
mod relay_id;

pub use backoff::{Backoff, BackoffConfig, doubling};
pub use effects::{
    Apply, Compact, DocKind, Effects, Fatal, IncomingChunk, OutboxWanted, RequestOutcome, SignedIn,
    SnapshotCheck, SnapshotRef, SyncStatus, VerifySnapshot,
};
pub use error::{HostError, HostResult};
pub use host::{
    COMPACT_STORED_AFTER, DocChange, EDIT_ATTEMPTS, ROTATING_PROFILE_KEYS, START_PROFILE_KEYS,
    StoreHost, SyncHost,
};
pub use keys::{Keeper, KeyStep, KeysError, Refusal, Unsealed, personal_group};
pub use machine::{
    COMPACT_RETRY_FIRST_MS, COMPACT_RETRY_MAX_MS, DocCursor, Event, MAX_RETRY_REFUSED_MS,
    MAX_VOLUME_CONFLICTS, MAX_VOLUME_OPENS, SNAPSHOT_RETRY_FIRST_MS, SNAPSHOT_RETRY_MS, SignInAs,
    SyncConfig, SyncMachine, VOLUME_RETRY_MS,
};
pub use relay_id::{RelayAddress, UNREADABLE, check_server_id};
