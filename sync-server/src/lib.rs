//! The Dorandoran relay (`doran-server`): a thin server that stores opaque document
//! logs, content-addressed blobs, accounts, families and invites, and moves changes
//! between a family's devices. It never parses the documents it relays.

pub mod access;
pub mod auth;
pub mod config;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod rate;
pub mod rules;
pub mod store;
