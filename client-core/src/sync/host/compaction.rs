//! The device's own copy of each document, kept short: once a document's stored tail
//! (the change rows after its snapshot) passes [`COMPACT_STORED_AFTER`] rows, the host
//! writes what the store holds as the new snapshot and drops the rows it covers
//! ([`LocalStore::compact`](crate::store::LocalStore::compact)).
//!
//! Every open loads the snapshot and then applies the tail, change by change in
//! batches, each apply walking the document: a year of a family stored as one row per
//! change took 1.06 s to be ready, 147 ms once compacted (`docs/benchmarks.md`).
//! Without this the tail only ever grew: every edit and every chunk received is a row.
//!
//! **The snapshot covers exactly the rows it replaces.** A document open here is the
//! log through its `Opened::at`, exactly: the host opens it with the log end of the
//! very load it came from, and the store checks that end inside each of the host's
//! writes (`LocalStore::commit_local_in_step`), so a row another process appended is
//! never counted in unseen. When `at` is still the store's log end, its save is the
//! snapshot through `at`. This holds the host's documents for the save (≈ 50 ms a
//! year of a family's history) and needs no second copy of the document. A document
//! not open here, or one another process appended to since, is loaded from one read
//! transaction of the store (snapshot, rows, log end) as an open loads it, saved and
//! dropped. A family's per-year volumes are compacted only as they are open here and
//! in step with the store (the volumes this host writes); one another process wrote
//! since waits for the family to be opened again.
//!
//! This is the device's store only; what the relay keeps is compacted by the sync
//! machine's snapshots, which every member may check. The view cache stays valid
//! (compaction keeps the log end), and so does another process's open document. The
//! device's driver asks for it when idle ([`SyncHost::compact_stored`]), and
//! `Device::close` before a command exits.
//!
//! [`SyncHost::compact_stored`]: crate::sync::SyncHost::compact_stored

use doran_protocol::{DocId, FamilyId};

use super::{OpenDoc, Opened, StoreHost};
use crate::{
    replica::Replica,
    rules,
    store::LogPos,
    sync::{DocKind, HostResult as Result},
};

/// Stored change rows after a document's snapshot past which its device compacts it.
/// A compaction costs a load and a save of the document; a tail this long costs every
/// open a fraction of that.
pub const COMPACT_STORED_AFTER: u64 = 256;

impl StoreHost {
    /// Compacts every family document in the store, this user's personal document and
    /// every co-member's open here, and the families' volumes loaded here, whose stored
    /// tail passed [`COMPACT_STORED_AFTER`] rows; returns how many it compacted. Meant
    /// for idle moments on a background thread. A document that cannot be compacted
    /// now is skipped (and said so), not the others.
    pub fn compact_long_tails(&self) -> Result<usize> {
        let mut compacted = 0;
        for (doc, kind) in self.compactable()? {
            if self.store.tail_len(doc)? < COMPACT_STORED_AFTER {
                continue;
            }
            match self.compact_stored_doc(doc, kind) {
                Ok(true) => compacted += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(%doc, error = %e, "cannot compact the stored copy now"),
            }
        }
        Ok(compacted + self.compact_open_volumes())
    }

    /// Compacts the per-year volumes (issue 17) loaded in the families open here whose
    /// stored tail passed [`COMPACT_STORED_AFTER`] rows: each saved as it is open,
    /// through the log end this host holds it at, when that is still the store's
    /// (else another process wrote it since: the family is opened again at its next
    /// use, and compacted then). Those are the volumes this host writes — this year's,
    /// and a year an edit loaded — whose tail would otherwise grow with every edit
    /// and every chunk of the year, and every open replay it. A parked volume is not
    /// written here.
    fn compact_open_volumes(&self) -> usize {
        let mut compacted = 0;
        let mut docs = self.lock();
        for (doc, opened) in docs.iter_mut() {
            let OpenDoc::Family(fd) = &mut opened.doc else {
                continue;
            };
            let family = FamilyId(doc.0);
            let loaded: Vec<u16> = fd.volume_years().collect();
            for year in loaded {
                let volume = family.volume(year);
                let Some(&at) = opened.volumes.get(&year) else {
                    // Nothing of it stored yet.
                    continue;
                };
                match self.compact_open_volume(volume, at, fd.volume_mut(year)) {
                    Ok(true) => compacted += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(doc = %volume, error = %e, "cannot compact the stored copy now");
                    }
                }
            }
        }
        compacted
    }

    /// [`compact_open_volumes`](Self::compact_open_volumes) for one volume, open here
    /// as of the log end `at`.
    fn compact_open_volume(
        &self,
        volume: DocId,
        at: LogPos,
        replica: Option<&mut Replica>,
    ) -> Result<bool> {
        let Some(replica) = replica else {
            return Ok(false);
        };
        if self.store.tail_len(volume)? < COMPACT_STORED_AFTER
            || self.store.log_end(volume)? != Some(at)
        {
            return Ok(false);
        }
        self.store_saved(volume, Saved::of(replica, at))
    }

    /// The documents whose kind this host knows: the families in the store, this
    /// user's personal document and the co-members' open here. Others (a family this
    /// device forgot) are left as they are: loaded without their rules, a change an
    /// older version stored would be written into a snapshot, which every load takes
    /// whole.
    fn compactable(&self) -> Result<Vec<(DocId, DocKind)>> {
        let mut docs: Vec<(DocId, DocKind)> = self
            .store
            .families()?
            .into_iter()
            .map(|f| (DocId::from(f.family), DocKind::Family(f.family)))
            .collect();
        let mut personal: Vec<DocId> = self
            .lock()
            .iter()
            .filter(|(_, opened)| matches!(opened.doc, OpenDoc::Personal(_)))
            .map(|(doc, _)| *doc)
            .collect();
        personal.extend(self.store.personal_doc(self.actor.user)?);
        personal.sort_unstable_by_key(|d| d.0);
        personal.dedup();
        // Which user's it is matters only to open it, not to load what is stored.
        docs.extend(
            personal
                .into_iter()
                .map(|doc| (doc, DocKind::Personal(self.actor.user))),
        );
        Ok(docs)
    }

    /// Writes `doc` as its stored snapshot, whatever its tail: the save of the document
    /// open here, through the log end it is exactly, or else what the store holds,
    /// loaded as an open loads it (a family's changes through its rules). `false` for
    /// a key log (it stores no rows), when nothing is stored, when it cannot be saved
    /// whole now (a change waits for its dependencies: a save would leave it out), or
    /// when another compaction went further meanwhile.
    pub fn compact_stored_doc(&self, doc: DocId, kind: DocKind) -> Result<bool> {
        let check = match kind {
            DocKind::Family(_) => Some(rules::DocRules::Family),
            DocKind::Personal(_) => None,
            // A volume is compacted as its family keeps it open (`compact_open_volumes`).
            DocKind::KeyLog(_) | DocKind::Volume(..) => return Ok(false),
        };
        let saved = match self.save_open(doc)? {
            Saved::NotOpen => {
                let Some(stored) = self.store.load(doc)? else {
                    return Ok(false);
                };
                let mut replica = Replica::load_checked(
                    stored.snapshot.as_deref(),
                    stored.changes.iter().map(Vec::as_slice),
                    &self.actor,
                    check,
                )?;
                Saved::of(&mut replica, stored.log_end)
            }
            saved => saved,
        };
        self.store_saved(doc, saved)
    }

    /// Stores a save of `doc` as its snapshot through the log end it covers; `false`
    /// when there is none to store (a change waits for its dependencies) or another
    /// compaction went further meanwhile.
    fn store_saved(&self, doc: DocId, saved: Saved) -> Result<bool> {
        let (bytes, through) = match saved {
            Saved::Ready(bytes, at) => (bytes, at),
            Saved::Waiting => return Ok(waiting(doc)),
            Saved::NotOpen => return Ok(false),
        };
        let done = self.store.compact(doc, &bytes, through)?;
        tracing::debug!(%doc, bytes = bytes.len(), done, "stored copy compacted");
        Ok(done)
    }

    /// The save of `doc` as it is open here, with the log end it is exactly; only when
    /// that is still the store's log end. Rows another process appended after it
    /// would stay rows, and a tail of those would never shrink while this host does
    /// not touch the document: the store's whole state is saved instead.
    fn save_open(&self, doc: DocId) -> Result<Saved> {
        let mut docs = self.lock();
        let Some(Opened {
            doc: open,
            at: Some(at),
            ..
        }) = docs.get_mut(&doc)
        else {
            return Ok(Saved::NotOpen);
        };
        if self.store.log_end(doc)? != Some(*at) {
            return Ok(Saved::NotOpen);
        }
        let replica = match open {
            OpenDoc::Family(fd) => fd.replica_mut(),
            OpenDoc::Personal(pd) => pd.replica_mut(),
        };
        Ok(Saved::of(replica, *at))
    }
}

/// What [`StoreHost::save_open`] found, or a save of a replica ([`Saved::of`]).
enum Saved {
    /// Not open here (or opened before anything of it was stored), or another
    /// process appended since.
    NotOpen,
    /// A change waits for its dependencies: a save would leave it out.
    Waiting,
    /// The save, and the log end it covers exactly.
    Ready(Vec<u8>, LogPos),
}

impl Saved {
    /// The save of `replica`, which is the log through `at` exactly, unless a change
    /// waits for its dependencies (a save would leave it out).
    fn of(replica: &mut Replica, at: LogPos) -> Saved {
        if !replica.settled() {
            return Saved::Waiting;
        }
        Saved::Ready(replica.save(), at)
    }
}

/// Says why `doc` is not compacted now; `false`.
fn waiting(doc: DocId) -> bool {
    tracing::debug!(%doc, "a stored change waits for its dependencies: not compacted");
    false
}
