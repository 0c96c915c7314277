//! One Automerge document on this device, with the bookkeeping every document type
//! shares: who writes (the actor), one change per user action, and which entities an
//! incoming change touched (so views refresh only those).
//!
//! Local edits know what they touch, so they never ask Automerge for a diff (a diff
//! costs time that grows with the document). Only incoming chunks are diffed: the
//! patch log is switched on just around applying them.

use std::collections::HashSet;

use automerge::{
    ActorId, AutoCommit, Automerge, AutomergeError, Change, ChangeHash, LoadOptions, OnPartialLoad,
    Patch, PatchAction, Prop, ReadDoc, VerificationMode, transaction::CommitOptions,
};
use doran_protocol::{DeviceId, UserId};

use crate::{
    chunk_bounds::{ChunkError, Limits, Piece, inspect},
    error::Result,
    rules::{self, DocRules, Violation},
};

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

/// Why an incoming chunk, or a change in it, was set aside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Over a cost limit, or not Automerge at all (checked before Automerge parses it).
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// A change that breaks the document's rules.
    #[error(transparent)]
    Rule(#[from] Violation),
    /// Automerge could not read a change or document in it.
    #[error("unreadable: {0}")]
    Unreadable(String),
    /// Automerge panicked on it (a bug in the library that a crafted change reaches:
    /// fuzzing found one). The document is rebuilt as it was before the change.
    #[error("the document library failed on this change")]
    Crashed,
    /// A change built on a change that was refused.
    #[error("depends on a refused change")]
    RefusedDependency,
}

/// An incoming chunk: its bytes and, when the relay recorded it, the user whose device
/// pushed it. Every change new to the document must be written under that user's
/// actor id ([`rules::check_pushed`]). A chunk with no author (stored before relays
/// recorded authors, a snapshot, a stored chunk being reloaded) is not checked so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming<'a> {
    /// The chunk (changes, or a saved document).
    pub bytes: &'a [u8],
    /// Who pushed it, as the relay says.
    pub author: Option<UserId>,
}

impl<'a> Incoming<'a> {
    /// A chunk pushed by `author` (`None`: not known).
    pub fn new(bytes: &'a [u8], author: Option<UserId>) -> Self {
        Incoming { bytes, author }
    }
}

impl<'a> From<&'a [u8]> for Incoming<'a> {
    /// A chunk whose author is not known.
    fn from(bytes: &'a [u8]) -> Self {
        Incoming::new(bytes, None)
    }
}

impl<'a> From<&'a Vec<u8>> for Incoming<'a> {
    /// A chunk whose author is not known.
    fn from(bytes: &'a Vec<u8>) -> Self {
        Incoming::new(bytes, None)
    }
}

/// What became of one incoming chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkFate {
    /// Store it as it came: every change in it is applied, already known, or waits
    /// for its dependencies (it is checked when they arrive, and again the same way
    /// when the document is loaded).
    Keep,
    /// Some of its changes were refused (the first reason given): store these bytes
    /// instead (the other changes), so a refused change is never stored.
    Trim(Vec<u8>, Refusal),
    /// Nothing of it is stored.
    Refuse(Refusal),
}

/// How many stored changes are applied to Automerge together while loading. Each
/// apply walks the document once, so batching is what makes a long tail cheap; past
/// about 64 a batch saves no more time but holds more memory while it applies (ten-year
/// family with a 573-change tail: ready in 3.43 s one by one, 1.81 s in batches of 64,
/// 1.76 s in one batch; peak 522, 549 and 582 MiB — `docs/benchmarks.md`).
const LOAD_BATCH: usize = 64;

/// Stored changes read while loading, applied together ([`Replica::apply_batch`]).
#[derive(Default)]
struct Batch {
    changes: Vec<Change>,
    hashes: HashSet<ChangeHash>,
}

impl Batch {
    /// Whether every one of `deps` is in `doc` or in this batch.
    fn has_all(&self, doc: &AutoCommit, deps: &[ChangeHash]) -> bool {
        let outside: Vec<ChangeHash> = deps
            .iter()
            .filter(|d| !self.hashes.contains(d))
            .copied()
            .collect();
        doc.get_missing_deps(&outside).is_empty()
    }
}

/// An Automerge document with its patch cursor.
#[derive(Debug)]
pub struct Replica {
    doc: AutoCommit,
    /// Stored changes whose dependencies have not arrived: checked and applied when
    /// they do. Automerge is never handed a change with missing dependencies, since it
    /// would apply it unchecked once they arrive.
    pending: Vec<Change>,
    /// Changes refused since this replica was opened; what depends on them is refused.
    refused: HashSet<ChangeHash>,
    /// The rules every incoming change must pass before it is applied
    /// ([`DocRules::check`]). They see the document with the change's dependencies
    /// applied, and decide from the change and its causal past alone, so that every
    /// device reaches the same verdict.
    check: Option<DocRules>,
    limits: Limits,
}

impl Replica {
    /// An empty document written by `actor`, applying incoming changes unchecked (but
    /// within the cost [`Limits`]).
    pub fn new(actor: &Actor) -> Self {
        Replica::from_doc(AutoCommit::new().with_actor(actor.actor_id()), None)
    }

    /// An empty document whose incoming changes must also pass `check`.
    pub fn with_check(actor: &Actor, check: DocRules) -> Self {
        Replica::from_doc(AutoCommit::new().with_actor(actor.actor_id()), Some(check))
    }

    /// A family's volume that holds only its first change (`genesis`, the same bytes
    /// on every device: [`crate::volume::genesis`]), whose incoming changes must pass
    /// `check`. Nothing needs storing: every device makes the same first change.
    pub fn new_volume(actor: &Actor, genesis: Change, check: DocRules) -> Result<Self> {
        let mut doc = AutoCommit::new();
        doc.apply_changes([genesis])?;
        let mut replica = Replica::from_doc(doc, Some(check));
        replica.doc.set_actor(actor.actor_id());
        Ok(replica)
    }

    fn from_doc(doc: AutoCommit, check: Option<DocRules>) -> Self {
        Replica {
            doc,
            pending: Vec::new(),
            refused: HashSet::new(),
            check,
            limits: Limits::DEFAULT,
        }
    }

    /// Loads a document from an optional snapshot (`save()`) and the chunks stored after
    /// it (changes or incremental saves), in order, with no rules on incoming changes.
    pub fn load<'a>(
        snapshot: Option<&[u8]>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        actor: &Actor,
    ) -> Result<Self> {
        Replica::load_checked(snapshot, chunks, actor, None)
    }

    /// Loads a document as [`Replica::load`] does, replaying what happened when each
    /// chunk arrived: a change whose dependencies were there was checked then and is
    /// applied as it is; one that waited for them is checked with `check` when they
    /// come, exactly as it was on arrival, so the same changes are set aside.
    pub fn load_checked<'a>(
        snapshot: Option<&[u8]>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        actor: &Actor,
        check: Option<DocRules>,
    ) -> Result<Self> {
        Replica::load_on(None, snapshot, chunks, actor, check)
    }

    /// Loads a family's volume as [`Replica::load_checked`] does, on its first change
    /// (`genesis`: every device makes it alike, so it is never stored or pushed; a
    /// snapshot holds it already).
    pub fn load_volume<'a>(
        genesis: Change,
        snapshot: Option<&[u8]>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        actor: &Actor,
        check: DocRules,
    ) -> Result<Self> {
        Replica::load_on(Some(genesis), snapshot, chunks, actor, Some(check))
    }

    fn load_on<'a>(
        base: Option<Change>,
        snapshot: Option<&[u8]>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        actor: &Actor,
        check: Option<DocRules>,
    ) -> Result<Self> {
        let mut doc = match snapshot {
            Some(bytes) => AutoCommit::load(bytes)?,
            None => AutoCommit::new(),
        };
        if let Some(base) = base
            && !doc.get_missing_deps(&[base.hash()]).is_empty()
        {
            doc.apply_changes([base])?;
        }
        let mut replica = Replica::from_doc(doc, check);
        let mut batch = Batch::default();
        for (i, chunk) in chunks.into_iter().enumerate() {
            // Stored chunks were checked when they arrived; check their cost again
            // anyway, so a damaged row (or a bomb stored by an older version) is
            // skipped rather than paid for on every open.
            if let Err(e) = replica.load_stored(chunk, &mut batch) {
                tracing::warn!(chunk = i, error = %e, "skipping an unreadable stored chunk");
            }
        }
        replica.apply_batch(&mut batch);
        if !replica.pending.is_empty() {
            // Settles what builds on a change refused while loading, as draining after
            // every chunk did.
            replica.drain_pending();
        }
        replica.doc.set_actor(actor.actor_id());
        Ok(replica)
    }

    /// Reads one stored chunk: its changes whose dependencies are present (in the
    /// document or earlier in `batch`) join `batch`, the others wait in `pending`.
    fn load_stored(&mut self, chunk: &[u8], batch: &mut Batch) -> std::result::Result<(), Refusal> {
        for piece in inspect(chunk, &self.limits)? {
            match piece {
                Piece::Document { bytes, .. } => {
                    // A saved document holds its whole history: stored only when
                    // every change in it was accepted.
                    self.apply_batch(batch);
                    self.guarded(|doc| doc.load_incremental(bytes).map(drop))?;
                }
                Piece::Change { bytes, .. } => {
                    let change = parse_change(bytes.into_owned())?;
                    if batch.hashes.contains(&change.hash()) || self.is_known(&change) {
                        continue;
                    }
                    if batch.has_all(&self.doc, change.deps()) {
                        batch.hashes.insert(change.hash());
                        batch.changes.push(change);
                        if batch.changes.len() >= LOAD_BATCH {
                            self.apply_batch(batch);
                        }
                    } else {
                        self.pending.push(change);
                    }
                }
            }
        }
        // A waiting change whose dependencies are now here is checked against the
        // document with them applied, exactly as on arrival: apply what is batched
        // first. One that still waits (its dependency may never come) leaves the
        // batch alone.
        if self
            .pending
            .iter()
            .any(|c| batch.has_all(&self.doc, c.deps()))
        {
            self.apply_batch(batch);
            self.drain_pending();
        }
        Ok(())
    }

    /// Applies the batched stored changes in one pass. Automerge's apply walks the
    /// document once per call, so one call for the whole tail instead of one per
    /// change is what makes a large family open quickly (`docs/benchmarks.md`). If
    /// the batch fails, its changes are applied one by one so a single bad stored
    /// change costs only itself.
    fn apply_batch(&mut self, batch: &mut Batch) {
        if batch.changes.is_empty() {
            return;
        }
        batch.hashes.clear();
        let changes = std::mem::take(&mut batch.changes);
        let all = changes.clone();
        if self.guarded(|doc| doc.apply_changes(all)).is_ok() {
            return;
        }
        for change in changes {
            if self.is_known(&change) {
                continue;
            }
            if !self.deps_present(&change) {
                // Built on the change that failed: Automerge is never handed it.
                self.pending.push(change);
                continue;
            }
            let hash = change.hash();
            if let Err(e) = self.guarded(|doc| doc.apply_changes([change])) {
                tracing::warn!(%hash, error = %e, "skipping an unreadable stored change");
            }
        }
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
    /// order; applying one twice is harmless. Returns the entities they touched and
    /// what became of each chunk (what to store).
    ///
    /// Each chunk's cost is bounded before Automerge sees it ([`inspect`]); each change
    /// is then parsed whole (Automerge's incremental loader skips what it cannot
    /// parse: a chunk must be refused, not half-applied), and checked against the
    /// document's rules once its dependencies are present.
    pub fn apply_remote<'a, C: Into<Incoming<'a>>>(
        &mut self,
        chunks: impl IntoIterator<Item = C>,
    ) -> (Vec<Touched>, Vec<ChunkFate>) {
        // Index the changes from here, so the diff below costs what the chunks changed.
        self.doc.update_diff_cursor();
        let mut fates = Vec::new();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let fate = match self.apply_chunk(chunk.into()) {
                Ok(fate) => fate,
                Err(e) => ChunkFate::Refuse(e),
            };
            if let ChunkFate::Refuse(e) | ChunkFate::Trim(_, e) = &fate {
                tracing::warn!(chunk = i, error = %e, "refusing an incoming chunk");
            }
            fates.push(fate);
        }
        let patches = self.doc.diff_incremental();
        self.doc.reset_diff_cursor();
        let mut touched: Vec<Touched> = patches.iter().filter_map(touched_by).collect();
        touched.sort();
        touched.dedup();
        (touched, fates)
    }

    fn apply_chunk(&mut self, chunk: Incoming<'_>) -> std::result::Result<ChunkFate, Refusal> {
        let pieces = inspect(chunk.bytes, &self.limits)?;
        // Parse everything before applying anything: an unreadable part refuses the
        // whole chunk.
        let mut changes = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Change { bytes, .. } => changes.push(parse_change(bytes.into_owned())?),
                Piece::Document { bytes, .. } => {
                    // Bounded by `inspect`: the cost of loading it is capped.
                    let load = || {
                        Automerge::load_with_options(
                            bytes,
                            LoadOptions::new()
                                .on_partial_load(OnPartialLoad::Error)
                                .verification_mode(VerificationMode::DontCheck),
                        )
                    };
                    // A scratch document: a panic in it touches nothing of ours.
                    let scratch = std::panic::catch_unwind(load)
                        .map_err(|_| Refusal::Crashed)?
                        .map_err(|e| Refusal::Unreadable(e.to_string()))?;
                    changes.extend(scratch.get_changes(&[]));
                }
            }
        }
        let mut first_refusal = None;
        let mut kept = Vec::new();
        for change in changes {
            if self.is_known(&change) {
                kept.push(change);
                continue;
            }
            if let Some(e) = self.refusal_of(&change) {
                self.refused.insert(change.hash());
                first_refusal.get_or_insert(e);
                continue;
            }
            // Written as someone other than who pushed it: set aside, with everything
            // that builds on it (what of this chunk already waits for it, too).
            if let Some(author) = chunk.author
                && let Err(e) = rules::check_pushed(&change, author)
            {
                self.refused.insert(change.hash());
                first_refusal.get_or_insert(Refusal::Rule(e));
                let gone: HashSet<ChangeHash> =
                    self.drain_pending().into_iter().map(|(h, _)| h).collect();
                kept.retain(|c| !gone.contains(&c.hash()));
                continue;
            }
            kept.push(change.clone());
            self.pending.push(change);
            let refused = self.drain_pending();
            if let Some(e) = refused
                .into_iter()
                .find_map(|(hash, e)| (kept.last().map(Change::hash) == Some(hash)).then_some(e))
            {
                kept.pop();
                first_refusal.get_or_insert(e);
            }
        }
        Ok(match first_refusal {
            None => ChunkFate::Keep,
            Some(e) if kept.is_empty() => ChunkFate::Refuse(e),
            Some(e) => {
                let mut bytes = Vec::new();
                for mut c in kept {
                    bytes.extend_from_slice(&c.bytes());
                }
                ChunkFate::Trim(bytes, e)
            }
        })
    }

    /// Why `change` is refused before its dependencies are even looked at: it builds
    /// on a change refused here.
    fn refusal_of(&self, change: &Change) -> Option<Refusal> {
        change
            .deps()
            .iter()
            .any(|d| self.refused.contains(d))
            .then_some(Refusal::RefusedDependency)
    }

    fn is_known(&self, change: &Change) -> bool {
        self.doc.get_missing_deps(&[change.hash()]).is_empty()
    }

    fn deps_present(&self, change: &Change) -> bool {
        self.doc.get_missing_deps(change.deps()).is_empty()
    }

    /// Checks and applies every pending change whose dependencies are all present,
    /// until none is left that can be; returns those refused.
    fn drain_pending(&mut self) -> Vec<(ChangeHash, Refusal)> {
        let mut refused = Vec::new();
        while let Some(at) = self.pending.iter().position(|c| self.deps_present(c)) {
            let change = self.pending.swap_remove(at);
            let verdict = match self.check {
                // The rules read the change through Automerge, which panics on some
                // malformed ones (found by fuzzing): a panic refuses it. Nothing is
                // written while checking, so nothing needs rebuilding.
                Some(check) => {
                    let doc = &self.doc;
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        check.check(doc, &change)
                    }))
                    .map_err(|_| Refusal::Crashed)
                    .and_then(|checked| checked.map_err(Refusal::from))
                }
                None => Ok(()),
            }
            .and_then(|()| self.guarded(|doc| doc.apply_changes([change.clone()])));
            if let Err(e) = verdict {
                self.refused.insert(change.hash());
                refused.push((change.hash(), e));
            }
        }
        // What builds on a refused change can never be applied: refuse it too.
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i]
                .deps()
                .iter()
                .any(|d| self.refused.contains(d))
            {
                let change = self.pending.swap_remove(i);
                self.refused.insert(change.hash());
                refused.push((change.hash(), Refusal::RefusedDependency));
                i = 0;
            } else {
                i += 1;
            }
        }
        refused
    }

    /// Runs `f` (Automerge taking in outside bytes) so that a panic inside Automerge
    /// refuses the bytes instead of taking the device down: the document is rebuilt at
    /// the heads it had before, from its own history (Automerge panics before it adds
    /// the change's operations, but may have touched its actor table).
    fn guarded(
        &mut self,
        f: impl FnOnce(&mut AutoCommit) -> std::result::Result<(), AutomergeError>,
    ) -> std::result::Result<(), Refusal> {
        let heads = self.doc.get_heads();
        let doc = &mut self.doc;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(doc))) {
            Ok(result) => result.map_err(|e| Refusal::Unreadable(e.to_string())),
            Err(_) => {
                tracing::error!(
                    "Automerge panicked on an incoming change; rebuilding the document"
                );
                let actor = self.doc.get_actor().clone();
                let doc = &mut self.doc;
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.fork_at(&heads)))
                {
                    Ok(Ok(rebuilt)) => self.doc = rebuilt.with_actor(actor),
                    _ => tracing::error!("could not rebuild the document after the panic"),
                }
                Err(Refusal::Crashed)
            }
        }
    }

    /// The current heads (identify the exact state; equal heads mean equal documents).
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The whole document, compacted (for the store's snapshot and the relay's).
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// Whether [`save`](Self::save) holds everything this replica was given: no
    /// stored change waits for its dependencies (a save leaves those out) and no
    /// operation is uncommitted (a save would commit it as a change nobody stored).
    pub fn settled(&self) -> bool {
        self.pending.is_empty() && automerge::transaction::Transactable::pending_ops(&self.doc) == 0
    }
}

/// The hashes of the changes `chunk` holds (changes, or the history of a saved
/// document), parsed within the cost limits without applying anything.
pub fn change_hashes(chunk: &[u8]) -> std::result::Result<Vec<ChangeHash>, Refusal> {
    let mut hashes = Vec::new();
    for piece in inspect(chunk, &Limits::DEFAULT)? {
        match piece {
            Piece::Change { bytes, .. } => hashes.push(parse_change(bytes.into_owned())?.hash()),
            Piece::Document { bytes, .. } => {
                let scratch = Automerge::load_with_options(
                    bytes,
                    LoadOptions::new()
                        .on_partial_load(OnPartialLoad::Error)
                        .verification_mode(VerificationMode::DontCheck),
                )
                .map_err(|e| Refusal::Unreadable(e.to_string()))?;
                hashes.extend(scratch.get_changes(&[]).iter().map(Change::hash));
            }
        }
    }
    Ok(hashes)
}

/// How a snapshot someone else made compares with this device's copy
/// ([`compare_snapshot`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotDiff {
    /// Changes the snapshot must hold and does not.
    pub missing: Vec<ChangeHash>,
    /// Changes it holds that this device does not, written by someone other than the
    /// snapshot's pusher: nothing vouches for who wrote them (a change laundered into
    /// the history through a snapshot, past the check of who pushed it).
    pub foreign: Vec<ChangeHash>,
}

/// Loads a snapshot someone else made (`save()` bytes) as a device loads any chunk —
/// within the cost limits, every change through `check` — and compares it with this
/// device's copy: which of `required` it lacks, and which of the changes it holds are
/// neither in `held` (every change this device has) nor written by `pusher` (the
/// user who pushed the snapshot; `None`: nobody's extra changes are expected). A
/// snapshot that cannot be loaded at all is an error; one with changes the rules
/// refuse is loaded without them (every device would set them aside too), so a
/// change the device holds must be among the accepted ones to count.
///
/// An honest snapshot holds what its pusher's device had when it saved it: every
/// change of the log up to its `covers_seq` (which a checking device caught up past
/// that seq holds too), and the pusher's own changes, pushed later or not yet. So the
/// pusher's own changes are the only ones a checking device may lack.
pub fn compare_snapshot(
    snapshot: &[u8],
    required: impl IntoIterator<Item = ChangeHash>,
    held: &HashSet<ChangeHash>,
    pusher: Option<UserId>,
    check: Option<DocRules>,
) -> std::result::Result<SnapshotDiff, Refusal> {
    let mut replica = Replica::from_doc(AutoCommit::new(), check);
    let (_, fates) = replica.apply_remote([snapshot]);
    if let Some(ChunkFate::Refuse(e)) = fates.into_iter().next() {
        return Err(e);
    }
    let missing = required
        .into_iter()
        .filter(|h| replica.doc.get_change_by_hash(h).is_none())
        .collect();
    let foreign = replica
        .doc
        .get_changes(&[])
        .into_iter()
        .filter(|c| !held.contains(&c.hash()))
        .filter(|c| pusher.is_none() || Actor::user_of(c.actor_id()) != pusher)
        .map(|c| c.hash())
        .collect();
    Ok(SnapshotDiff { missing, foreign })
}

/// Parses one change, refusing it if Automerge cannot read it — or panics while
/// verifying it (found by fuzzing: `types.rs:464`, an op counter out of range); no
/// document is touched while parsing, so nothing needs rebuilding.
fn parse_change(bytes: Vec<u8>) -> std::result::Result<Change, Refusal> {
    std::panic::catch_unwind(move || Change::from_bytes(bytes))
        .map_err(|_| Refusal::Crashed)?
        .map_err(|e| Refusal::Unreadable(e.to_string()))
}

/// Whether `chunk` is within the cost limits and parses completely as Automerge
/// changes or saved documents (without applying anything).
pub fn check_chunk(chunk: &[u8]) -> std::result::Result<(), Refusal> {
    for piece in inspect(chunk, &Limits::DEFAULT)? {
        match piece {
            Piece::Change { bytes, .. } => {
                parse_change(bytes.into_owned())?;
            }
            Piece::Document { bytes, .. } => {
                match Automerge::load_with_options(
                    bytes,
                    LoadOptions::new()
                        .on_partial_load(OnPartialLoad::Error)
                        .verification_mode(VerificationMode::DontCheck),
                ) {
                    Ok(_) | Err(AutomergeError::MissingDeps) => {}
                    Err(e) => return Err(Refusal::Unreadable(e.to_string())),
                }
            }
        }
    }
    Ok(())
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
