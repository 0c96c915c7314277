//! The [`StoreHost`]'s end-to-end sealing: chunks of a sealed family's document are
//! sealed as they leave the outbox and opened as they arrive; the family's key log
//! goes to the [`Keeper`]. The local store keeps the clear changes (the device reads
//! them); only the relay sees envelopes.

use std::sync::MutexGuard;

use doran_protocol::{ChunkId, DocId, FamilyId, Seq};

use super::{OUTBOX_SCAN, StoreHost};
use crate::{
    group::KnownDevices,
    store::OutboxEntry,
    sync::{
        DocChange, HostResult as Result, IncomingChunk,
        keys::{Keeper, KeyStep, KeysError, Unsealed},
    },
};

/// What opening an apply's incoming data left.
pub(super) struct OpenedApply {
    /// The snapshot, opened (or as it came, for a family not sealed).
    pub snapshot: Option<Vec<u8>>,
    /// The chunks that opened (or came clear), in order.
    pub chunks: Vec<IncomingChunk>,
    /// Chunks refused: not opening, or clear in a sealed family.
    pub refused: usize,
    /// Set when a chunk (or the snapshot) is sealed under an epoch this device has
    /// no key for: the last seq stored before it. Nothing from it on is applied.
    pub locked_at: Option<Seq>,
}

impl StoreHost {
    /// The keeper, reloaded first if another process on the device saved a newer one.
    pub(super) fn keeper(&self) -> MutexGuard<'_, Option<Keeper>> {
        let mut guard = self
            .keeper
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(keeper) = guard.as_mut()
            && let Err(e) = keeper.refresh(&*self.store)
        {
            tracing::warn!(error = %e, "the keys another process saved could not be read");
        }
        guard
    }

    /// Seals the outbox entries of sealed families' documents, in order; stops at
    /// the first this device cannot seal yet (not in the group): it and those behind
    /// it wait for a later listing.
    pub(super) fn seal_outgoing(&self, entries: Vec<OutboxEntry>) -> Vec<OutboxEntry> {
        let keeper = self.keeper();
        let Some(keeper) = keeper.as_ref() else {
            return entries;
        };
        let mut ids = self.sealed_ids();
        let mut out = Vec::with_capacity(entries.len());
        for mut e in entries {
            if keeper.knows(e.doc.key_log_family()) {
                // A key log entry (an MLS message): never sealed; kept to take its
                // place in the log once acked.
                self.own_entries().insert((e.doc, e.chunk), e.bytes.clone());
                out.push(e);
                continue;
            }
            let family = FamilyId(e.doc.0);
            match keeper.seal_chunk(family, e.doc, &e.bytes) {
                Ok(None) => {}
                Ok(Some(sealed)) => {
                    let id = ChunkId::of(&sealed);
                    ids.insert((e.doc, id), e.chunk);
                    e.chunk = id;
                    e.bytes = sealed;
                }
                Err(err) => {
                    tracing::debug!(doc = %e.doc, error = %err, "a change waits for this device to get the family's keys");
                    break;
                }
            }
            out.push(e);
        }
        out
    }

    /// The outbox's id for a chunk the relay acked under the id it was pushed with.
    pub(super) fn outbox_id(&self, doc: DocId, pushed: ChunkId) -> ChunkId {
        self.sealed_ids().remove(&(doc, pushed)).unwrap_or(pushed)
    }

    /// Opens what arrived for `doc`, the document of `family`.
    pub(super) fn open_incoming(
        &self,
        family: FamilyId,
        doc: DocId,
        snapshot: Option<&[u8]>,
        chunks: &[IncomingChunk],
    ) -> Result<OpenedApply> {
        let keeper = self.keeper();
        let Some(keeper) = keeper.as_ref() else {
            return Ok(OpenedApply {
                snapshot: snapshot.map(<[u8]>::to_vec),
                chunks: chunks.to_vec(),
                refused: 0,
                locked_at: None,
            });
        };
        let mut out = OpenedApply {
            snapshot: None,
            chunks: Vec::with_capacity(chunks.len()),
            refused: 0,
            locked_at: None,
        };
        if let Some(bytes) = snapshot {
            match keeper.open(family, doc, bytes) {
                Unsealed::Clear => out.snapshot = Some(bytes.to_vec()),
                Unsealed::Changes(saved) => out.snapshot = Some(saved),
                Unsealed::NoKey | Unsealed::Refused(_) => {
                    // A snapshot this device cannot open: nothing of this apply is
                    // stored; the chunks come again once it has the keys.
                    out.locked_at = Some(self.store.cursor(doc)?);
                    return Ok(out);
                }
            }
        }
        for c in chunks {
            match keeper.open(family, doc, &c.bytes) {
                Unsealed::Clear => out.chunks.push(c.clone()),
                Unsealed::Changes(bytes) => out.chunks.push(IncomingChunk {
                    seq: c.seq,
                    author: c.author,
                    bytes,
                }),
                Unsealed::NoKey => {
                    out.locked_at = Some(c.seq - 1);
                    break;
                }
                Unsealed::Refused(why) => {
                    tracing::warn!(%doc, seq = c.seq, %why, "refusing a sealed chunk");
                    out.refused += 1;
                }
            }
        }
        Ok(out)
    }

    /// Key log entries of `family` arrived: kept by the keeper (saved before the
    /// cursor moves, so none is lost), then the cursor.
    pub(super) fn apply_key_log(
        &self,
        family: FamilyId,
        chunks: &[IncomingChunk],
        cursor: Seq,
    ) -> Result<DocChange> {
        let entries: Vec<(Seq, Vec<u8>)> =
            chunks.iter().map(|c| (c.seq, c.bytes.clone())).collect();
        let mut change = DocChange::default();
        if let Some(keeper) = self.keeper().as_mut() {
            change.keys = keeper.arrived(family, &entries);
            if change.keys {
                keeper.save(&*self.store)?;
            }
        }
        self.store
            .apply_remote(family.key_log(), &[], Some(cursor))?;
        Ok(change)
    }

    /// This device's own key log entry came back acked at `seq`: it takes its place
    /// in the log like any other.
    pub(super) fn key_log_acked(&self, doc: DocId, chunk: ChunkId, seq: Seq) -> Result<bool> {
        let family = doc.key_log_family();
        let bytes = match self.own_entries().remove(&(doc, chunk)) {
            Some(b) => Some(b),
            None => self
                .store
                .outbox(OUTBOX_SCAN)?
                .into_iter()
                .find(|e| e.doc == doc && e.chunk == chunk)
                .map(|e| e.bytes),
        };
        let Some(bytes) = bytes else {
            return Ok(false);
        };
        let mut keeper = self.keeper();
        let Some(keeper) = keeper.as_mut() else {
            return Ok(false);
        };
        let new = keeper.arrived(family, &[(seq, bytes)]);
        if new {
            keeper.save(&*self.store)?;
        }
        Ok(new)
    }

    /// Appends `entry` to the family's key log (through the outbox), unless the
    /// outbox holds it already.
    fn append_key_entry(&self, family: FamilyId, entry: &[u8]) -> Result<(), KeysError> {
        let doc = family.key_log();
        let chunk = ChunkId::of(entry);
        if self
            .store
            .outbox(OUTBOX_SCAN)?
            .iter()
            .any(|e| e.doc == doc && e.chunk == chunk)
        {
            return Ok(());
        }
        self.store.commit_local(doc, entry)?;
        self.own_entries().insert((doc, chunk), entry.to_vec());
        Ok(())
    }

    /// Takes the family's key log as far as `known` (the family's members' devices,
    /// as their certificates vouch for them) lets it, and appends what this device
    /// owes it (see [`Keeper::step`]). The device calls it when the key log moved,
    /// when a chunk waits for a key, and when the family's members change.
    pub fn keys_step(
        &self,
        family: FamilyId,
        known: &KnownDevices,
        now_ms: i64,
    ) -> Result<KeyStep> {
        let mut guard = self.keeper();
        let Some(keeper) = guard.as_mut() else {
            return Ok(KeyStep::default());
        };
        let mut appended = Vec::new();
        let step = keeper.step(family, known, now_ms, &mut |entry| {
            appended.push(entry.to_vec());
            Ok(())
        })?;
        // Saved before appending: a Commit in the outbox must never be newer than the
        // ring that made it (the keeper appends its pending entry again otherwise).
        keeper.save(&*self.store)?;
        drop(guard);
        for entry in &appended {
            self.append_key_entry(family, entry)?;
        }
        Ok(KeyStep {
            appended: appended.len(),
            ..step
        })
    }

    /// Whether the family's documents are sealed on this device.
    pub fn is_sealed(&self, family: FamilyId) -> bool {
        self.keeper().as_ref().is_some_and(|k| k.is_sealed(family))
    }

    /// The family's key group epoch on this device, if it is in it.
    pub fn key_epoch(&self, family: FamilyId) -> Option<u64> {
        self.keeper().as_ref().and_then(|k| k.epoch(family))
    }

    /// The families with a key log this device has read.
    pub fn key_families(&self) -> Vec<FamilyId> {
        self.keeper()
            .as_ref()
            .map(Keeper::families)
            .unwrap_or_default()
    }

    /// Starts the family's key group (this device alone, the first Commit appended):
    /// its documents are sealed from their first change.
    pub(super) fn start_sealing(&self, family: FamilyId) -> Result<()> {
        let mut guard = self.keeper();
        let Some(keeper) = guard.as_mut() else {
            return Err(KeysError::NoKeys.into());
        };
        if keeper.is_sealed(family) {
            return Ok(());
        }
        let entry = keeper.create(family)?;
        keeper.save(&*self.store)?;
        drop(guard);
        self.append_key_entry(family, &entry)?;
        Ok(())
    }
}
