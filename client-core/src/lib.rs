//! The Dorandoran engine on a device.
//!
//! Every device keeps its families' data in Automerge documents and works with no
//! network. This crate holds:
//!
//! - [`model`]: the schema of the family and personal documents;
//! - [`FamilyDoc`] and [`PersonalDoc`]: every operation a member can perform, each
//!   validated (typed [`DocError`]) and written as one small Automerge change;
//! - [`views`]: derived views — badges, the mission dashboard, the month calendar,
//!   memories, the home screen, the activity feed and notifications — as pure
//!   functions of the document;
//! - [`store`]: the local store (SQLite, or memory for tests) where a local edit and
//!   its outbox entry are committed in one transaction;
//! - [`Replica`]: the Automerge plumbing all documents share.
//!
//! An edit, from a UI's point of view:
//!
//! 1. call an operation, e.g. [`FamilyDoc::add_mission`]; it returns an [`Edit`]
//!    with the new id and the change bytes;
//! 2. hand the change to [`store::LocalStore::commit_local`]; once that returns the
//!    edit is durable and queued for the relay — only now say "saved";
//! 3. read the refreshed [`FamilyDoc::view`] through [`views`].

pub mod chunk_bounds;
pub mod error;
pub mod family_doc;
pub mod family_store;
pub mod group;
pub mod keys;
pub mod ko;
pub mod model;
pub mod personal_doc;
pub mod read;
pub mod replica;
pub mod rules;
pub mod seal;
pub mod store;
pub mod sync;
pub mod time_util;
pub mod validate;
pub mod view_cache;
pub mod views;
pub mod volume;
mod xchacha;

pub use error::{DocError, Result};
pub use family_doc::{
    Edit, EventInput, EventPatch, FamilyDoc, MissionPatch, PhotoInput, RemoteUpdate, StoredVolume,
    VoiceInput,
};
pub use personal_doc::PersonalDoc;
pub use replica::{Actor, Replica, Touched};
