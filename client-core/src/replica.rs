//! One Automerge document on this device, with the bookkeeping every document type
//! shares: who writes (the actor), one change per user action, and which entities an
//! incoming change touched (so views refresh only those).
//!
//! Local edits know what they touch, so they never ask Automerge for a diff (a diff
//! costs time that grows with the document). Only incoming chunks are diffed: the
//! patch log is switched on just around applying them.

use automerge::{
    ActorId, AutoCommit, Automerge, AutomergeError, ChangeHash, LoadOptions, OnPartialLoad, Patch,
    PatchAction, Prop, VerificationMode, transaction::CommitOptions,
};
use doran_protocol::{DeviceId, UserId};

use crate::error::{DocError, Result};

/// Who is writing: a user on one of their devices. The Automerge actor id is the user id
/// followed by the device id, so every device writes as its own actor (required for
/// concurrent edits) while any change can be traced back to its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Actor {
    /// The person.
    pub user: UserId,
    /// Their device.
    pub device: DeviceId,
}

impl Actor {
    /// The Automerge actor id: 16 bytes of user id, 16 bytes of device id.
    pub fn actor_id(&self) -> ActorId {
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(self.user.as_bytes());
        bytes.extend_from_slice(self.device.as_bytes());
        ActorId::from(bytes)
    }

    /// The user behind an Automerge actor id written by [`Actor::actor_id`].
    pub fn user_of(actor: &ActorId) -> Option<UserId> {
        let bytes = actor.to_bytes();
        let head: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
        Some(UserId(head))
    }
}

/// What part of a document a change touched, so views can re-read just that.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Touched {
    /// A field directly under the root (title, name…).
    Root(String),
    /// An entity in a collection under the root: (collection, key).
    Entity(String, String),
}

/// An Automerge document with its patch cursor.
#[derive(Debug)]
pub struct Replica {
    doc: AutoCommit,
}

impl Replica {
    /// An empty document written by `actor`.
    pub fn new(actor: &Actor) -> Self {
        let doc = AutoCommit::new().with_actor(actor.actor_id());
        Replica { doc }
    }

    /// Loads a document from an optional snapshot (`save()`) and the chunks stored after
    /// it (changes or incremental saves), in order.
    pub fn load<'a>(
        snapshot: Option<&[u8]>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        actor: &Actor,
    ) -> Result<Self> {
        let mut doc = match snapshot {
            Some(bytes) => AutoCommit::load(bytes)?,
            None => AutoCommit::new(),
        };
        for (i, chunk) in chunks.into_iter().enumerate() {
            // Stored chunks were checked when they arrived; check again anyway, so a
            // damaged row is skipped rather than half-applied or blocking every open.
            match check_chunk(chunk) {
                Ok(()) => {
                    doc.load_incremental(chunk)?;
                }
                Err(e) => {
                    tracing::warn!(chunk = i, error = %e, "skipping an unreadable stored chunk")
                }
            }
        }
        doc.set_actor(actor.actor_id());
        Ok(Replica { doc })
    }

    /// The Automerge document, to read.
    pub fn doc(&self) -> &AutoCommit {
        &self.doc
    }

    /// The Automerge document, to write. Follow with [`Replica::commit`].
    pub fn doc_mut(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    /// Closes the pending operations as one change, labelled with what the user did,
    /// and returns that change's bytes (what goes in the outbox), or `None` when the
    /// operations changed nothing.
    pub fn commit(&mut self, what: &str, now_ms: i64) -> Option<Vec<u8>> {
        self.doc.commit_with(
            CommitOptions::default()
                .with_message(what)
                .with_time(now_ms),
        )?;
        self.doc
            .get_last_local_change()
            .map(|change| change.raw_bytes().to_vec())
    }

    /// Drops pending operations after a validation error, so nothing half-done remains.
    pub fn rollback(&mut self) {
        self.doc.rollback();
    }

    /// Applies chunks received from other devices (changes, or saved documents), in any
    /// order; applying one twice is harmless. Returns the entities they touched and the
    /// positions of chunks refused as unreadable.
    ///
    /// Each chunk is checked whole first: Automerge's incremental loader skips what it
    /// cannot parse, and a chunk we cannot read must be refused, not half-applied.
    pub fn apply_remote<'a>(
        &mut self,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> (Vec<Touched>, Vec<usize>) {
        // Index the changes from here, so the diff below costs what the chunks changed.
        self.doc.update_diff_cursor();
        let mut rejected = Vec::new();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let applied = check_chunk(chunk).and_then(|()| Ok(self.doc.load_incremental(chunk)?));
            if let Err(e) = applied {
                tracing::warn!(chunk = i, error = %e, "refusing an unreadable chunk");
                rejected.push(i);
            }
        }
        let patches = self.doc.diff_incremental();
        self.doc.reset_diff_cursor();
        let mut touched: Vec<Touched> = patches.iter().filter_map(touched_by).collect();
        touched.sort();
        touched.dedup();
        (touched, rejected)
    }

    /// The current heads (identify the exact state; equal heads mean equal documents).
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The whole document, compacted (for the store's snapshot and the relay's).
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }
}

/// Whether `chunk` parses completely as Automerge changes or a saved document.
pub fn check_chunk(chunk: &[u8]) -> Result<()> {
    if chunk.is_empty() {
        return Err(DocError::Schema("an empty chunk".into()));
    }
    match Automerge::load_with_options(
        chunk,
        LoadOptions::new()
            .on_partial_load(OnPartialLoad::Error)
            .verification_mode(VerificationMode::DontCheck),
    ) {
        // Parsed completely; it only depends on changes this check does not have.
        Ok(_) | Err(AutomergeError::MissingDeps) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn touched_by(patch: &Patch) -> Option<Touched> {
    let key_of = |prop: &Prop| match prop {
        Prop::Map(k) => Some(k.clone()),
        Prop::Seq(_) => None,
    };
    match patch.path.as_slice() {
        [] => match &patch.action {
            PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => {
                Some(Touched::Root(key.clone()))
            }
            // A counter at the root ("ever done" counts) moved.
            PatchAction::Increment {
                prop: Prop::Map(key),
                ..
            } => Some(Touched::Root(key.clone())),
            _ => None,
        },
        [(_, collection)] => {
            let collection = key_of(collection)?;
            match &patch.action {
                PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => {
                    Some(Touched::Entity(collection, key.clone()))
                }
                // A scalar list directly under the root: treat as a root field.
                _ => Some(Touched::Root(collection)),
            }
        }
        [(_, collection), (_, entity), ..] => {
            Some(Touched::Entity(key_of(collection)?, key_of(entity)?))
        }
    }
}
