//! The [`StoreHost`]'s end-to-end sealing: chunks of a sealed family's document are
//! sealed as they leave the outbox and opened as they arrive; the family's key log
//! goes to the [`Keeper`]. The local store keeps the clear changes (the device reads
//! them); only the relay sees envelopes.

use std::{collections::BTreeMap, sync::MutexGuard};

use doran_protocol::{ChunkId, DocId, FamilyId, Seq, UserId};

use super::{OUTBOX_SCAN, StoreHost};

/// A chunk kept aside for a key: its seq, its author, its sealed bytes.
type Held = (Seq, Option<UserId>, Vec<u8>);

/// At most this many chunks of one document wait for a key; past it the oldest go.
const MAX_HELD: usize = 2_000;

/// The meta key of the families this device sealed after their creation and owes a
/// sealed snapshot (a postcard list of family ids).
const SEALED_SNAPSHOT_OWED: &str = "keys/sealing/snapshot-owed";

fn held_key(doc: DocId) -> String {
    format!("keys/held/{}", doc.to_hex())
}
use crate::{
    family_doc::PublishedKeys,
    group::{GroupMember, KnownDevices},
    store::OutboxEntry,
    sync::{
        DocChange, DocKind, HostResult as Result, IncomingChunk,
        keys::{Keeper, KeyStep, KeysError, Unsealed, personal_group},
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
    /// The seqs of the refused chunks (or the seq a refused snapshot covers) whose
    /// bytes were changed on their way (see
    /// [`Refusal::is_tampering`](crate::sync::Refusal::is_tampering)).
    pub tampered: Vec<Seq>,
    /// Set when a chunk (or the snapshot) is sealed under an epoch this device has
    /// no key for: the last seq stored before it. Nothing from it on is applied.
    pub locked_at: Option<Seq>,
    /// A family this device knew as clear got its first envelope (its host sealed
    /// it): its key log is read again from where it stopped.
    pub sealed_now: bool,
}

impl StoreHost {
    /// What arrived for a family sealed since its creation is stored up to `last`: if
    /// that is past its first envelope, no clear chunk of it is taken again
    /// (`Keeper::close_clear`). Called only once the apply is stored, so a clear chunk
    /// refused from then on is one this device holds.
    pub(super) fn stored_up_to(&self, family: FamilyId, last: Seq) -> Result<()> {
        let mut guard = self.keeper();
        let Some(keeper) = guard.as_mut() else {
            return Ok(());
        };
        if keeper.closes_clear(family, last) {
            keeper.update(&*self.store, |k| Ok(k.close_clear(family, last)))?;
        }
        Ok(())
    }
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

    /// Seals the outbox entries of sealed families' documents, in order; one this
    /// device cannot seal yet (not in the group, or not known yet whether its family
    /// is sealed) is left out and waits for a later listing.
    pub(super) fn seal_outgoing(&self, mut entries: Vec<OutboxEntry>) -> Vec<OutboxEntry> {
        let keeper = self.keeper();
        let Some(keeper) = keeper.as_ref() else {
            // A family's volume (issue 17) is never pushed in the clear, and a host
            // without keys writes in the clear: its changes wait. (Never pushed to
            // be refused either: a refused change leaves the outbox.)
            entries.retain(|e| !e.doc.says_volume());
            return entries;
        };
        // Which documents are family documents. Any other this device writes is its
        // user's personal document: sealed under its profile key group when its id
        // says so, whatever the relay or the store say it is (a personal document
        // from before they were sealed carries no mark and goes as it is).
        let families: std::collections::HashSet<FamilyId> = match self.store.families() {
            Ok(list) => list.into_iter().map(|r| r.family).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "the families cannot be listed: nothing is pushed now");
                return Vec::new();
            }
        };
        // While this user's profile key group owes a rotation, its changes wait for
        // the new epoch (a reader who just left holds the current one).
        let rotating_from: Option<u64> = match self.store.get_meta(super::ROTATING_PROFILE_KEYS) {
            Ok(bytes) => bytes.and_then(|b| postcard::from_bytes(&b).ok()),
            Err(e) => {
                tracing::warn!(error = %e, "the profile key rotation is not known: nothing is pushed now");
                return Vec::new();
            }
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
            // A volume is sealed under its family's group: its family is not its id
            // (the checks below would take it for a document to push as it is).
            let volume = e.doc.says_volume();
            let family = if volume {
                let keeping = families
                    .iter()
                    .copied()
                    .filter(|f| keeper.keeps_volumes(*f));
                match self.volume_of(e.doc, keeping) {
                    Some((family, _)) => family,
                    None => {
                        tracing::debug!(doc = %e.doc, "a change of a volume of no family here waits");
                        continue;
                    }
                }
            } else {
                FamilyId(e.doc.0)
            };
            if !volume && !families.contains(&family) && !personal_group(e.doc).says_sealed() {
                out.push(e);
                continue;
            }
            if keeper.removing(family) {
                // A device that must leave the group is still in it: sealed now, the
                // change would open with its key. Listed again once it is out.
                tracing::debug!(doc = %e.doc, "a change waits for the group to drop a device that left");
                continue;
            }
            if !volume
                && !families.contains(&family)
                && rotating_from.is_some_and(|from| keeper.epoch(family).is_none_or(|e| e <= from))
            {
                continue;
            }
            match keeper.seal_chunk(family, e.doc, &e.bytes) {
                // (Only a sealed family keeps volumes: never pushed in the clear.)
                Ok(None) if volume => continue,
                Ok(None) => {}
                Ok(Some(sealed)) => {
                    let id = ChunkId::of(&sealed);
                    ids.insert((e.doc, id), e.chunk);
                    e.chunk = id;
                    e.bytes = sealed;
                }
                Err(err) => {
                    // Only this document's changes wait; the others go on. They are
                    // listed again from the oldest once keys come (`Event::Unlocked`).
                    tracing::debug!(doc = %e.doc, error = %err, "a change waits for this device to get the family's keys");
                    continue;
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

    /// Opens what arrived for `doc`, the document of `family`. The first chunk of
    /// the document (or a snapshot) decides, once, whether the family is sealed; a
    /// device that holds the document from before sealing existed knows it is not.
    pub(super) fn open_incoming(
        &self,
        family: FamilyId,
        doc: DocId,
        snapshot: Option<&[u8]>,
        chunks: &[IncomingChunk],
    ) -> Result<OpenedApply> {
        let mut guard = self.keeper();
        let Some(keeper) = guard.as_mut() else {
            return Ok(OpenedApply {
                snapshot: snapshot.map(<[u8]>::to_vec),
                chunks: chunks.to_vec(),
                refused: 0,
                tampered: Vec::new(),
                locked_at: None,
                sealed_now: false,
            });
        };
        // A volume (issue 17) decides nothing of its family's sealing: its seqs are
        // its own, and only a sealed family keeps volumes.
        let family_doc = doc == DocId::from(family);
        if family_doc && keeper.sealed(family).is_none() {
            let first = snapshot.or_else(|| {
                chunks
                    .first()
                    .filter(|c| c.seq == 1)
                    .map(|c| c.bytes.as_slice())
            });
            let decided = match first {
                Some(bytes) => Some(doran_protocol::looks_sealed(bytes)),
                None if self.store.cursor(doc)? > 0 => Some(false),
                None => None,
            };
            if let Some(sealed) = decided {
                keeper.update(&*self.store, |k| Ok(k.decide(family, sealed)))?;
            }
        }
        // A family known as clear whose host sealed it: from its first envelope on.
        // (A snapshot sealed over a clear log covers every clear chunk: nothing clear
        // comes after it.)
        let first_envelope = match snapshot {
            _ if !family_doc => None,
            Some(bytes) if doran_protocol::looks_sealed(bytes) => Some(1),
            _ => chunks
                .iter()
                .find(|c| doran_protocol::looks_sealed(&c.bytes))
                .map(|c| c.seq),
        };
        let mut sealed_now = false;
        // A snapshot the relay serves is one another member's device confirmed: a
        // sealed one has replaced the clear history already.
        let sealed_snapshot = snapshot.is_some_and(doran_protocol::looks_sealed);
        if let Some(seq) = first_envelope {
            if keeper.decided(family) == Some(false) {
                if keeper.update(&*self.store, |k| Ok(k.sealed_since(family, seq)))?
                    && !sealed_snapshot
                {
                    // Every device that turns at a chunk owes a sealed snapshot too:
                    // whichever is online pushes one, another confirms it, and the
                    // relay drops the clear history (the host's alone may expire
                    // unconfirmed).
                    self.owe_sealed_snapshot(family)?;
                }
            } else if keeper.sealed_from(family) == Some(Seq::MAX) {
                // This device sealed the family and has no seq for its own first
                // sealed chunk (acked before a restart that lost it): the first
                // envelope it gets bounds it — the relay took no clear chunk after
                // its own.
                keeper.update(&*self.store, |k| Ok(k.sealed_since(family, seq)))?;
            }
            // The key log is read again from where it stopped — also when this
            // chunk comes again (an apply that failed after the turn was saved).
            sealed_now = keeper.sealed_from(family) == Some(seq);
        }
        let mut out = OpenedApply {
            snapshot: None,
            chunks: Vec::with_capacity(chunks.len()),
            refused: 0,
            tampered: Vec::new(),
            locked_at: None,
            sealed_now,
        };
        if let Some(bytes) = snapshot {
            let covers = chunks.first().map_or(Seq::MAX, |c| c.seq.saturating_sub(1));
            match keeper.open_at(family, doc, covers, bytes) {
                Unsealed::Clear => out.snapshot = Some(bytes.to_vec()),
                Unsealed::Changes(saved) => out.snapshot = Some(saved),
                unopened @ (Unsealed::NoKey | Unsealed::Hold | Unsealed::Refused(_)) => {
                    // A snapshot this device cannot open: nothing of this apply is
                    // stored; the chunks come again once it has the keys. (The relay
                    // serves only snapshots another member's device confirmed.)
                    if let Unsealed::Refused(why) = &unopened {
                        tracing::warn!(%doc, covers, %why, "refusing a sealed snapshot");
                        if why.is_tampering() {
                            out.tampered.push(covers);
                        }
                    }
                    out.locked_at = Some(self.store.cursor(doc)?);
                    return Ok(out);
                }
            }
        }
        let mut held = Vec::new();
        for c in chunks {
            match keeper.open_at(family, doc, c.seq, &c.bytes) {
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
                Unsealed::Hold => held.push(c.clone()),
                Unsealed::Refused(why) => {
                    tracing::warn!(%doc, seq = c.seq, %why, "refusing a sealed chunk");
                    out.refused += 1;
                    if why.is_tampering() {
                        out.tampered.push(c.seq);
                    }
                }
            }
        }
        drop(guard);
        if !held.is_empty() {
            // Kept before the cursor moves past them.
            let _held = self.held_guard();
            let mut kept = self.held(doc)?;
            kept.extend(held.into_iter().map(|c| (c.seq, c.author, c.bytes)));
            self.keep_held(doc, kept)?;
        }
        Ok(out)
    }

    fn held_guard(&self) -> MutexGuard<'_, ()> {
        self.held_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether chunks of `doc` are kept aside for a key.
    pub(super) fn holds_aside(&self, doc: DocId) -> Result<bool> {
        Ok(self.store.get_meta(&held_key(doc))?.is_some())
    }

    /// The chunks of `doc` kept aside for a key (seq, author, sealed bytes).
    fn held(&self, doc: DocId) -> Result<Vec<Held>> {
        Ok(self
            .store
            .get_meta(&held_key(doc))?
            .and_then(|b| postcard::from_bytes(&b).ok())
            .unwrap_or_default())
    }

    fn keep_held(&self, doc: DocId, mut held: Vec<Held>) -> Result<()> {
        if held.len() > MAX_HELD {
            tracing::warn!(%doc, dropped = held.len() - MAX_HELD, "too many chunks wait for a key: the oldest are dropped");
            held.drain(..held.len() - MAX_HELD);
        }
        if held.is_empty() {
            self.store.delete_meta(&held_key(doc))?;
        } else {
            let bytes = postcard::to_allocvec(&held)
                .map_err(|e| KeysError::Group(crate::group::GroupError::Restore(e.to_string())))?;
            self.store.set_meta(&held_key(doc), &bytes)?;
        }
        Ok(())
    }

    /// Opens the chunks of the family's document kept aside for a key, now that keys
    /// came, and merges those that open; the others stay (a made-up epoch stays
    /// until it is dropped with the oldest).
    pub fn retry_held(&self, family: FamilyId) -> Result<DocChange> {
        let doc = DocId::from(family);
        // A profile key group's document is the user's personal document.
        let kind = match self.personal_owner(doc)? {
            Some(owner) => DocKind::Personal(owner),
            None => DocKind::Family(family),
        };
        let mut change = self.retry_held_of(family, doc, kind)?;
        // And the family's volumes (issue 17) that keep chunks aside. The family's
        // own are applied and kept already: a volume that fails is logged and waits
        // for the next keys, and never keeps the family from being told it opened.
        if kind == DocKind::Family(family) && self.keeps_volumes(family) {
            for year in self.volumes_holding_aside(family) {
                let volume = (family.volume(year), DocKind::Volume(family, year));
                match self.retry_held_of(family, volume.0, volume.1) {
                    Ok(more) => {
                        change.touched.extend(more.touched);
                        change.new_activity.extend(more.new_activity);
                        change.refused += more.refused;
                    }
                    Err(e) => {
                        tracing::warn!(%family, year, error = %e, "a volume's chunks kept for a key do not apply now");
                    }
                }
            }
        }
        Ok(change)
    }

    /// The years of the family's volumes, as its document lists them (opened if it is
    /// not open yet: the key task may come before the sync opened it), that keep
    /// chunks aside for a key; none when the family does not open.
    fn volumes_holding_aside(&self, family: FamilyId) -> Vec<u16> {
        let listed: Vec<u16> = {
            let mut docs = self.lock();
            match self.family_open(&mut docs, family) {
                Ok((fd, _)) => fd.view().volumes.iter().copied().collect(),
                Err(e) => {
                    tracing::warn!(%family, error = %e, "the family does not open: its volumes' kept chunks wait");
                    return Vec::new();
                }
            }
        };
        listed
            .into_iter()
            .filter(|&year| match self.holds_aside(family.volume(year)) {
                Ok(holds) => holds,
                Err(e) => {
                    tracing::warn!(%family, year, error = %e, "a volume's kept chunks cannot be read");
                    false
                }
            })
            .collect()
    }

    /// [`retry_held`](Self::retry_held) for one document of the group `family`.
    fn retry_held_of(&self, family: FamilyId, doc: DocId, kind: DocKind) -> Result<DocChange> {
        let _held = self.held_guard();
        let held = self.held(doc)?;
        if held.is_empty() {
            return Ok(DocChange::default());
        }
        let (mut opened, mut still, mut refused) = (Vec::new(), Vec::new(), 0);
        {
            let guard = self.keeper();
            let Some(keeper) = guard.as_ref() else {
                return Ok(DocChange::default());
            };
            for (seq, author, bytes) in held {
                match keeper.open(family, doc, &bytes) {
                    Unsealed::Changes(changes) => opened.push(IncomingChunk {
                        seq,
                        author,
                        bytes: changes,
                    }),
                    Unsealed::Hold | Unsealed::NoKey => still.push((seq, author, bytes)),
                    Unsealed::Clear | Unsealed::Refused(_) => refused += 1,
                }
            }
        }
        if opened.is_empty() && refused == 0 {
            return Ok(DocChange::default());
        }
        let cursor = self.store.cursor(doc)?;
        let change = match kind {
            DocKind::Volume(family, year) => {
                self.apply_volume_plain((family, year), None, &opened, cursor, (refused, None))?
            }
            _ => self.apply_plain(doc, kind, None, &opened, cursor, (refused, None))?,
        };
        self.keep_held(doc, still)?;
        Ok(change)
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
            let (new, stopped) =
                keeper.update(&*self.store, |k| Ok(k.arrived(family, &entries)))?;
            change.keys = new;
            change.locked_at = stopped;
        }
        self.store.apply_remote(
            family.key_log(),
            &[],
            Some(change.locked_at.unwrap_or(cursor)),
        )?;
        Ok(change)
    }

    /// This device's own key log entry came back acked at `seq`: it takes its place
    /// in the log like any other.
    pub(super) fn key_log_acked(&self, doc: DocId, chunk: ChunkId, seq: Seq) -> Result<bool> {
        let family = doc.key_log_family();
        let Some(bytes) = self.own_entries().remove(&(doc, chunk)) else {
            return Ok(false);
        };
        let mut keeper = self.keeper();
        let Some(keeper) = keeper.as_mut() else {
            return Ok(false);
        };
        let entry = [(seq, bytes)];
        let (new, _) = keeper.update(&*self.store, |k| Ok(k.arrived(family, &entry)))?;
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
        // Saved before appending: a Commit in the outbox must never be newer than the
        // ring that made it (the keeper appends its pending entry again otherwise).
        let step = keeper.update(&*self.store, |keeper| {
            appended.clear();
            keeper.step(family, known, now_ms, &mut |entry| {
                appended.push(entry.to_vec());
                Ok(())
            })
        })?;
        drop(guard);
        for entry in &appended {
            self.append_key_entry(family, entry)?;
        }
        Ok(KeyStep {
            appended: appended.len(),
            ..step
        })
    }

    /// This device's key package to publish on the relay, if the relay may not have
    /// it yet — or in any case with `again` (a new one is made weekly; see
    /// [`Keeper::package_to_publish`]).
    pub fn key_package_to_publish(&self, now_ms: i64, again: bool) -> Result<Option<Vec<u8>>> {
        let mut guard = self.keeper();
        let Some(keeper) = guard.as_mut() else {
            return Ok(None);
        };
        Ok(keeper.update(&*self.store, |k| k.package_to_publish(now_ms, again))?)
    }

    /// The relay has `package`, this device's key package.
    pub fn key_package_published(&self, package: &[u8]) -> Result<()> {
        let mut guard = self.keeper();
        let Some(keeper) = guard.as_mut() else {
            return Ok(());
        };
        keeper.update(&*self.store, |k| {
            k.package_published(package);
            Ok(())
        })?;
        Ok(())
    }

    /// The devices of the family's key group, as this device's group has them (empty
    /// when it is not in it).
    pub fn key_members(&self, family: FamilyId) -> Vec<GroupMember> {
        self.keeper()
            .as_ref()
            .map(|k| k.members(family))
            .unwrap_or_default()
    }

    /// Whether this device knows if the family's documents are sealed (its first
    /// chunk arrived, or it created the family).
    pub fn sealing_known(&self, family: FamilyId) -> bool {
        self.keeper()
            .as_ref()
            .is_none_or(|k| k.sealed(family).is_some())
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

    /// Seals a family that was created clear, on its host's device (the caller checks
    /// that this user hosts it): starts its key group (this device alone; the key
    /// task adds every member device it finds a key package for), seals whatever this
    /// device pushes from now on, and owes the family a sealed snapshot (see
    /// [`StoreHost::sealed_snapshots_owed`]). The caller then writes the change that
    /// goes out as the family document's first envelope, and reads the key log again
    /// (it stopped at its first entry while the family was clear). Returns false if
    /// the family is not one this device knows as clear.
    pub fn seal_clear_family(&self, family: FamilyId) -> Result<bool> {
        let mut guard = self.keeper();
        let Some(keeper) = guard.as_mut() else {
            return Err(KeysError::NoKeys.into());
        };
        let entry = keeper.update(&*self.store, |k| k.seal_clear_family(family))?;
        drop(guard);
        let Some(entry) = entry else {
            return Ok(false);
        };
        self.owe_sealed_snapshot(family)?;
        self.append_key_entry(family, &entry)?;
        Ok(true)
    }

    /// Its user is removing `user` from `family` (every device of theirs), or
    /// revoking `user`'s `device` (then for each group this device is in): the
    /// group's changes wait until the key task's Commit taking those devices out is
    /// processed, so none is sealed under an epoch they hold (see
    /// [`Keeper::removing`]). Made before the relay is asked, so nothing written
    /// meanwhile slips out; [`release_removal`](Self::release_removal) if it refuses.
    pub fn hold_for_removal(
        &self,
        family: FamilyId,
        user: UserId,
        device: Option<doran_protocol::DeviceId>,
    ) -> Result<()> {
        self.update_keeper(|k| k.hold_for_removal(family, user, device))
    }

    /// The removal held with [`hold_for_removal`](Self::hold_for_removal) did not
    /// happen: its changes go on (unless something else holds them).
    pub fn release_removal(
        &self,
        family: FamilyId,
        user: UserId,
        device: Option<doran_protocol::DeviceId>,
    ) -> Result<()> {
        self.update_keeper(|k| k.release_removal(family, user, device))
    }

    /// Changes the keeper with `change` and saves it; nothing on a host without keys.
    fn update_keeper(&self, mut change: impl FnMut(&mut Keeper) -> bool) -> Result<()> {
        let mut guard = self.keeper();
        if let Some(keeper) = guard.as_mut() {
            keeper.update(&*self.store, |k| Ok(change(k)))?;
        }
        Ok(())
    }

    /// Notes that this device owes the family a sealed snapshot.
    fn owe_sealed_snapshot(&self, family: FamilyId) -> Result<()> {
        let mut owed = self.owed_snapshots()?;
        if !owed.contains(&family) {
            owed.push(family);
            self.save_owed_snapshots(&owed)?;
        }
        Ok(())
    }

    fn save_owed_snapshots(&self, owed: &[FamilyId]) -> Result<()> {
        self.store.set_meta(
            SEALED_SNAPSHOT_OWED,
            &postcard::to_allocvec(owed).unwrap_or_default(),
        )?;
        Ok(())
    }

    /// Whether this device sealed the family and its first sealed chunk has no seq
    /// yet (the marker may not have been written: a crash right after sealing).
    pub fn sealing_pending(&self, family: FamilyId) -> bool {
        self.keeper()
            .as_ref()
            .is_some_and(|k| k.sealed_from(family) == Some(Seq::MAX))
    }

    /// The families this device sealed and owes a sealed snapshot.
    fn owed_snapshots(&self) -> Result<Vec<FamilyId>> {
        Ok(self
            .store
            .get_meta(SEALED_SNAPSHOT_OWED)?
            .and_then(|b| postcard::from_bytes(&b).ok())
            .unwrap_or_default())
    }

    /// The documents of families this device sealed whose relay log still starts
    /// with clear chunks no sealed snapshot replaced: snapshot them now (their
    /// first sealed chunk has its seq).
    pub fn sealed_snapshots_owed(&self) -> Result<Vec<DocId>> {
        let owed = self.owed_snapshots()?;
        if owed.is_empty() {
            return Ok(Vec::new());
        }
        let keeper = self.keeper();
        Ok(owed
            .into_iter()
            .filter(|f| {
                keeper
                    .as_ref()
                    .and_then(|k| k.sealed_from(*f))
                    .is_some_and(|from| from != Seq::MAX)
            })
            .map(DocId::from)
            .collect())
    }

    /// Whether the family keeps per-year volumes ([`Keeper::keeps_volumes`]): sealed
    /// from its creation, or sealed by its host and that known to the relay. A host
    /// without keys keeps none (it writes in the clear).
    pub(super) fn keeps_volumes(&self, family: FamilyId) -> bool {
        self.keeping_volumes([family]).contains(&family)
    }

    /// Those of `families` that keep volumes ([`StoreHost::keeps_volumes`]): the keeper
    /// is looked at once for all of them, and not at all when every id says sealed.
    pub(super) fn keeping_volumes(
        &self,
        families: impl IntoIterator<Item = FamilyId>,
    ) -> std::collections::HashSet<FamilyId> {
        let (mut keeping, others): (std::collections::HashSet<_>, std::collections::HashSet<_>) =
            families.into_iter().partition(|f| f.says_sealed());
        if !others.is_empty()
            && let Some(keeper) = self.keeper().as_ref()
        {
            keeping.extend(others.into_iter().filter(|&f| keeper.keeps_volumes(f)));
        }
        keeping
    }

    /// Whether the family was sealed by its host after its creation, as this device
    /// knows it (it turned, or sealed it).
    pub(super) fn sealed_since_creation(&self, family: FamilyId) -> bool {
        self.keeper()
            .as_ref()
            .is_some_and(|k| k.sealed_from(family).is_some())
    }

    /// Whether a snapshot of `doc` covering `covers_seq` may be pushed: in a family
    /// sealed after its creation, only one that covers every clear chunk (a device
    /// that takes such a snapshot as its start takes no clear chunk after it).
    pub fn may_snapshot(&self, kind: DocKind, covers_seq: Seq) -> bool {
        let DocKind::Family(family) = kind else {
            return true;
        };
        let keeper = self.keeper();
        match keeper.as_ref().and_then(|k| k.sealed_from(family)) {
            Some(from) => from != Seq::MAX && covers_seq.saturating_add(1) >= from,
            None => true,
        }
    }

    /// The relay took this device's snapshot of `doc` covering `covers_seq`, took
    /// another member's this device confirmed, or serves a sealed one covering it: a
    /// sealed snapshot owed since the family was sealed is no longer owed if it covers
    /// every clear chunk.
    pub(super) fn sealed_snapshot_taken(&self, doc: DocId, covers_seq: Seq) -> Result<()> {
        let family = FamilyId(doc.0);
        let mut owed = self.owed_snapshots()?;
        if !owed.contains(&family) || !self.may_snapshot(DocKind::Family(family), covers_seq) {
            return Ok(());
        }
        owed.retain(|f| *f != family);
        self.save_owed_snapshots(&owed)
    }

    /// A chunk of `doc` came back acked at `seq`: on the device that sealed its
    /// family, the first sealed one gives the seq the family is sealed from.
    pub(super) fn sealed_chunk_acked(&self, doc: DocId, chunk: ChunkId, seq: Seq) -> Result<()> {
        if !self.sealed_ids().contains_key(&(doc, chunk)) {
            return Ok(());
        }
        let family = FamilyId(doc.0);
        let mut guard = self.keeper();
        let Some(keeper) = guard.as_mut() else {
            return Ok(());
        };
        if keeper.sealed_from(family) == Some(Seq::MAX)
            && keeper.update(&*self.store, |k| Ok(k.sealed_since(family, seq)))?
        {
            // The relay took the sealing: the family keeps volumes from now on.
            self.took_up_volumes
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// Starts the family's key group (this device alone, the first Commit appended):
    /// its documents are sealed from their first change.
    pub(super) fn start_sealing(&self, family: FamilyId, sealed: bool) -> Result<()> {
        let mut guard = self.keeper();
        let Some(keeper) = guard.as_mut() else {
            return if sealed {
                Err(KeysError::NoKeys.into())
            } else {
                Ok(())
            };
        };
        if !sealed {
            // Created here in the clear: its chunks go as they are.
            keeper.update(&*self.store, |k| Ok(k.decide(family, false)))?;
            return Ok(());
        }
        let entry = keeper.update(&*self.store, |k| {
            // Made already (a creation tried again). Not `is_sealed`: a family whose
            // id says it is sealed is that before its group exists.
            if k.in_group(family) || k.decided(family).is_some() {
                return Ok(None);
            }
            k.create(family).map(Some)
        })?;
        drop(guard);
        if let Some(entry) = entry {
            self.append_key_entry(family, &entry)?;
        }
        Ok(())
    }
}

impl StoreHost {
    /// The owner of `doc` if it is this user's personal document (the only personal
    /// document whose key group this device is in, so the only one with chunks kept
    /// aside for a key).
    fn personal_owner(&self, doc: DocId) -> Result<Option<UserId>> {
        let me = self.actor.user;
        Ok((self.personal_doc_of(me)? == Some(doc)).then_some(me))
    }

    /// Takes the profile keys members published in a family document (see
    /// `FamilyDoc::publish_profile_keys`); returns the personal documents that got
    /// keys they lacked. A member's keys go to the personal document **they** name in
    /// their own entry (only they write it), and only when it is also the one the
    /// relay serves as theirs: neither a relay alone (it cannot write the sealed
    /// family document) nor a member alone (naming another user's document) can
    /// attach keys to someone else's profile. This user's own profile key group
    /// takes keys only from MLS, the escrow and its adder's history — never from here.
    pub(super) fn learn_profile_keys(
        &self,
        published: BTreeMap<UserId, PublishedKeys>,
    ) -> Result<Vec<DocId>> {
        let mut learned = Vec::new();
        if published.is_empty() {
            return Ok(learned);
        }
        let mut guard = self.keeper();
        let Some(keeper) = guard.as_mut() else {
            return Ok(learned);
        };
        for (user, keys) in published {
            if user == self.actor.user {
                continue;
            }
            match self.personal_doc_of(user)? {
                Some(doc) if doc == keys.doc => {}
                // Its document has not come yet: read again when it does.
                None => continue,
                Some(doc) => {
                    tracing::warn!(%user, served = %doc, named = %keys.doc, "a member's profile keys name another document than the relay serves as theirs: not taken");
                    continue;
                }
            }
            let group = personal_group(keys.doc);
            if !group.says_sealed() || keeper.holds(group, &keys.secrets) {
                continue;
            }
            if keeper.update(&*self.store, |k| Ok(k.learn(group, &keys.secrets)))? {
                tracing::debug!(%user, "profile keys learned from a family document");
                learned.push(keys.doc);
            }
        }
        Ok(learned)
    }

    /// Takes the profile keys `owner` published in every family document this device
    /// holds; returns whether any was new. A co-member's personal document that
    /// arrives sealed under a key this device lacks looks here before it waits.
    pub(super) fn learn_profile_keys_of(&self, owner: UserId) -> Result<bool> {
        let mut learned = false;
        for family in self.families()? {
            if self.store.load(DocId::from(family))?.is_none() {
                continue;
            }
            let published = self.read_family(family, |fd| fd.profile_keys())?;
            let Some(keys) = published.get(&owner) else {
                continue;
            };
            let one = BTreeMap::from([(owner, keys.clone())]);
            learned |= !self.learn_profile_keys(one)?.is_empty();
        }
        Ok(learned)
    }
}

impl StoreHost {
    /// The secrets of the epochs of `group` this device holds (see
    /// [`Keeper::secrets`]).
    pub fn key_secrets(&self, group: FamilyId) -> Vec<(u64, [u8; 32])> {
        self.keeper()
            .as_ref()
            .map(|k| k.secrets(group))
            .unwrap_or_default()
    }

    /// Has this device move `group` (this user's profile key group) to a new epoch at
    /// its next key step (see [`Keeper::rotate`]).
    pub fn rotate_keys(&self, group: FamilyId) -> Result<()> {
        if let Some(keeper) = self.keeper().as_mut() {
            keeper.update(&*self.store, |k| {
                k.rotate(group);
                Ok(())
            })?;
        }
        Ok(())
    }
}

impl StoreHost {
    /// Every device seen in the family's group since the last
    /// [`StoreHost::forget_seen`] (see [`Keeper::seen`]).
    pub fn key_members_seen(&self, family: FamilyId) -> Vec<GroupMember> {
        self.keeper()
            .as_ref()
            .map(|k| k.seen(family))
            .unwrap_or_default()
    }

    /// Forgets the devices seen in these families' groups (they were looked at).
    pub fn forget_seen(&self, families: &[FamilyId]) -> Result<()> {
        if let Some(keeper) = self.keeper().as_mut()
            // Every pass of the key task asks: nothing to save (and no encoding of
            // the whole keeper to find that out) when nothing was seen.
            && families.iter().any(|f| !keeper.seen(*f).is_empty())
        {
            keeper.update(&*self.store, |k| {
                for family in families {
                    k.forget_seen(*family);
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}
