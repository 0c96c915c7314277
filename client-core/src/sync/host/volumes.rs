//! A family's per-year volumes (issue 17) as the host keeps them open: which year it
//! is, where new entities are filed, when another process's write to a volume (or the
//! year turning) has the family opened again, a parked year loaded for an edit; and
//! their sync: which years to open on the relay, which family a volume's id is, and
//! what arrives for a volume applied within its family.

use std::collections::{BTreeMap, HashMap, HashSet};

use automerge::ChangeHash;
use doran_protocol::{DocId, FamilyId, Seq, UserId, VOLUME_YEARS, volume_year};

use super::{OpenDoc, Opened, StoreHost, accepted_of, change_hashes};
use crate::{
    error::DocError,
    family_doc::FamilyDoc,
    family_store::{self, OpenError},
    replica::Incoming,
    rules,
    store::{LogPos, Membership, Step},
    sync::{DocChange, DocKind, HostError, HostResult as Result, IncomingChunk},
};

/// Which family and year volume ids are, for the families looked up so far. An id
/// does not say (its bytes are a keyed hash of the family's id and the year), so the
/// ids of every year volumes have are made once per family (301 hashes).
#[derive(Debug, Default)]
pub(super) struct VolumeIds {
    known: HashMap<DocId, (FamilyId, u16)>,
    families: HashSet<FamilyId>,
}

impl StoreHost {
    /// The year it is now (UTC, `volume_year`) by this host's clock.
    pub(super) fn year(&self) -> u16 {
        volume_year((self.clock)())
    }

    /// Files what is made from now on in the family's volume of `year`
    /// ([`FamilyDoc::file_new_in_listing`]); a family whose document this device has
    /// not read yet, or whose volume of the year does not load, keeps filing as it
    /// was opened. `stored`: the store keeps some of that volume.
    pub(super) fn file_by_year(
        &self,
        doc: DocId,
        family: &mut FamilyDoc,
        (year, stored): (u16, bool),
    ) {
        // A volume is sealed from its first change: a family in the clear keeps
        // filing in its document (asked again at each edit, so the first edit after
        // the relay took its host's first envelope files by year).
        if !self.keeps_volumes(FamilyId(doc.0))
            || rules::host_of(family.replica_mut().doc()).is_none()
        {
            return;
        }
        if stored && !family.volume_years().any(|y| y == year) {
            // Stored but not loaded (its bytes did not load: the open said so): a
            // volume started from its genesis beside it would reuse this device's
            // sequence numbers, and every device would refuse what it wrote there.
            tracing::debug!(%doc, year, "this year's volume does not load: new entities stay where they were filed");
            return;
        }
        if let Err(e) = family.file_new_in_listing(year, &self.actor) {
            tracing::warn!(%doc, year, error = %e, "new entities stay where they were filed");
        }
    }

    /// Whether the family open as `doc` must be opened again for its volumes: another
    /// process wrote one of them since this host read it (or stored one this host did
    /// not have), or the year turned, so what is made now belongs in another volume.
    pub(super) fn volumes_moved(&self, doc: DocId, opened: &Opened) -> Result<bool> {
        let OpenDoc::Family(fd) = &opened.doc else {
            return Ok(false);
        };
        let listed = &fd.view().volumes;
        // (A family without volumes too, when this host files by year: else the new
        // year's first entity would list the old year and be filed there.)
        if (self.files_by_year || !listed.is_empty()) && opened.year != self.year() {
            return Ok(true);
        }
        if listed.is_empty() {
            return Ok(false);
        }
        let family = FamilyId(doc.0);
        for &year in listed {
            if self.store.log_end(family.volume(year))? != opened.volumes.get(&year).copied() {
                tracing::debug!(%doc, year, "another writer changed a volume: reopening");
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Loads the family's volume of `year`, parked until now, into its open document
    /// (an edit of what it keeps needs its CRDT), and keeps the log end of the load.
    pub(super) fn load_parked(
        &self,
        docs: &mut HashMap<DocId, Opened>,
        family: FamilyId,
        year: u16,
    ) -> Result<()> {
        let this_year = self.year();
        let (fd, volumes) = self.family_open(docs, family)?;
        match family_store::load_volume(&*self.store, fd, year, &self.actor) {
            Ok(Some(end)) => {
                volumes.insert(year, end);
                park_older_years(fd, (year, this_year));
                Ok(())
            }
            // Loaded already, and still not loaded: never made again.
            Ok(None) => Err(DocError::VolumeNotLoaded(year).into()),
            Err(OpenError::NotFound(_)) => Err(HostError::VolumeNotSynced(family, year)),
            Err(e) => {
                docs.remove(&DocId::from(family));
                Err(e.into())
            }
        }
    }

    /// The family's open document (opened from the store if needed, see `ensure`)
    /// and the log ends of its volumes as loaded or parked.
    pub(super) fn family_open<'a>(
        &self,
        docs: &'a mut HashMap<DocId, Opened>,
        family: FamilyId,
    ) -> Result<(&'a mut FamilyDoc, &'a mut BTreeMap<u16, LogPos>)> {
        let doc = DocId::from(family);
        family_parts(self.ensure(docs, doc, DocKind::Family(family))?, doc)
    }

    /// The family and year of the volume `doc`, if it is one of `families`' (the
    /// families that keep volumes: `keeps_volumes`).
    pub(super) fn volume_of(
        &self,
        doc: DocId,
        families: impl IntoIterator<Item = FamilyId>,
    ) -> Option<(FamilyId, u16)> {
        let mut ids = self
            .volume_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = ids.known.get(&doc) {
            return Some(*found);
        }
        for family in families {
            if !ids.families.insert(family) {
                continue;
            }
            for year in VOLUME_YEARS {
                ids.known.insert(family.volume(year), (family, year));
            }
        }
        ids.known.get(&doc).copied()
    }

    /// Drops the outbox entries of the family's volumes, once this user is no
    /// longer in the family (removed, left, or the family deleted): the sync opens
    /// no volume of a family it does not sync, so they would wait for ever (and
    /// show as pending), and the relay would refuse them anyway, as it refuses the
    /// family document's own. Returns how many were dropped.
    pub fn drop_volume_changes(&self, family: FamilyId) -> Result<usize> {
        let volumes: HashSet<DocId> = VOLUME_YEARS.map(|year| family.volume(year)).collect();
        let (mut after, mut dropped) = (None, 0);
        loop {
            let page = self.store.outbox_after(after, OUTBOX_PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for entry in page.iter().filter(|e| volumes.contains(&e.doc)) {
                if self.store.outbox_acked(entry.id)? {
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            tracing::info!(%family, dropped, "changes to the volumes of a family left behind dropped");
        }
        Ok(dropped)
    }

    /// [`SyncHost::listed_volumes`](super::SyncHost::listed_volumes).
    pub(super) fn volumes_listed(&self, all: bool) -> Result<Vec<(FamilyId, Vec<u16>)>> {
        let mut docs = self.lock();
        if all {
            let records = self.store.families()?;
            let keeping = self.keeping_volumes(records.iter().map(|r| r.family));
            for record in records {
                let family = record.family;
                let doc = DocId::from(family);
                if record.membership != Membership::Member
                    || !keeping.contains(&family)
                    || self.store.log_end(doc)?.is_none()
                {
                    continue;
                }
                if let Err(e) = self.ensure(&mut docs, doc, DocKind::Family(family)) {
                    tracing::warn!(%family, error = %e, "the family does not open: its volumes are not synced now");
                }
            }
        }
        let listed: Vec<(FamilyId, Vec<u16>)> = docs
            .iter()
            .filter_map(|(doc, opened)| match &opened.doc {
                OpenDoc::Family(fd) if !fd.view().volumes.is_empty() => {
                    Some((FamilyId(doc.0), fd.view().volumes.iter().copied().collect()))
                }
                _ => None,
            })
            .collect();
        let keeping = self.keeping_volumes(listed.iter().map(|(family, _)| *family));
        Ok(listed
            .into_iter()
            .filter(|(family, _)| keeping.contains(family))
            .collect())
    }

    /// The family's volume of `year` loaded in its open document: loaded from the
    /// store (parked, or not loaded yet), or started from its genesis when this
    /// device has none of it. Answers that document and its volumes' log ends.
    fn volume_ready<'a>(
        &self,
        docs: &'a mut HashMap<DocId, Opened>,
        family: FamilyId,
        year: u16,
    ) -> Result<(&'a mut FamilyDoc, &'a mut BTreeMap<u16, LogPos>)> {
        let (fd, _) = self.family_open(docs, family)?;
        if !fd.volume_years().any(|y| y == year) {
            // A volume's rules name the family's host, from the family's document.
            if rules::host_of(fd.replica_mut().doc()).is_none() {
                return Err(HostError::WaitingForKeys(family));
            }
            if self.store.log_end(family.volume(year))?.is_none() {
                fd.start_volume(year, &self.actor)?;
                park_older_years(fd, (year, self.year()));
            } else {
                self.load_parked(docs, family, year)?;
            }
        }
        // Opened (and in step) just above: not compared with the store again.
        let doc = DocId::from(family);
        family_parts(
            docs.get_mut(&doc)
                .ok_or(HostError::WrongKind(doc, "family"))?,
            doc,
        )
    }

    /// What arrived for the family's volume of `year` (see
    /// [`SyncHost::apply`](super::SyncHost::apply)): opened under the family's keys
    /// (a volume takes no clear chunk), then merged and stored.
    pub(super) fn apply_volume(
        &self,
        (family, year): (FamilyId, u16),
        doc: DocId,
        snapshot: Option<&[u8]>,
        chunks: &[IncomingChunk],
        cursor: Seq,
    ) -> Result<DocChange> {
        if doc != family.volume(year) || !self.keeps_volumes(family) {
            // The sync opens only the listed volumes of families that keep volumes.
            return Err(HostError::WrongKind(doc, "volume of a sealed family"));
        }
        let opened = self.open_incoming(family, doc, snapshot, chunks)?;
        if opened.locked_at.is_some() && opened.snapshot.is_none() && opened.chunks.is_empty() {
            return Ok(DocChange {
                refused: opened.refused,
                tampered: opened.tampered,
                locked_at: opened.locked_at,
                ..DocChange::default()
            });
        }
        let cursor = opened.locked_at.unwrap_or(cursor);
        let mut change = match self.apply_volume_plain(
            (family, year),
            opened.snapshot.as_deref(),
            &opened.chunks,
            cursor,
            (opened.refused, opened.locked_at),
        ) {
            Ok(change) => change,
            // The volume cannot be loaded here (its stored bytes do not load, or the
            // family's document is not readable yet): it stops where the store has
            // it, as a document waiting for a key does, and starts again with its
            // family's keys or the next connection, while the rest syncs on. (An
            // error would end the connection, and every catch-up would bring the
            // same chunk again.)
            Err(
                e @ (HostError::Doc(_)
                | HostError::WaitingForKeys(_)
                | HostError::VolumeNotSynced(..)
                | HostError::WrongKind(..)),
            ) => {
                tracing::warn!(%doc, error = %e, "a volume cannot take what arrived now: it waits");
                return Ok(DocChange {
                    refused: opened.refused,
                    tampered: opened.tampered,
                    locked_at: Some(self.store.cursor(doc)?),
                    ..DocChange::default()
                });
            }
            Err(e) => return Err(e),
        };
        change.tampered = opened.tampered;
        Ok(change)
    }

    /// Merges clear data into the family's volume of `year` and stores it with
    /// `cursor` and the volume's view rows, in step with the volume's log (see
    /// `Opened`).
    pub(super) fn apply_volume_plain(
        &self,
        (family, year): (FamilyId, u16),
        snapshot: Option<&[u8]>,
        chunks: &[IncomingChunk],
        cursor: Seq,
        (sealing_refused, locked_at): (usize, Option<Seq>),
    ) -> Result<DocChange> {
        let volume = family.volume(year);
        let core = DocId::from(family);
        let arrivals: Vec<&IncomingChunk> = chunks.iter().collect();
        self.record_arrivals(volume, snapshot.is_some(), &arrivals, cursor)?;
        let _writer = self.store.writer_lock()?;
        let mut docs = self.lock();
        let (fd, volumes) = self.volume_ready(&mut docs, family, year)?;
        let at = volumes.get(&year).copied();
        // A saved document loads like a chunk: stored as one (see `apply_plain`).
        let incoming: Vec<Incoming<'_>> = snapshot
            .map(Incoming::from)
            .into_iter()
            .chain(chunks.iter().map(|c| Incoming::new(&c.bytes, c.author)))
            .collect();
        let mut update = fd.apply_remote_volume(year, incoming.iter().copied())?;
        let accepted = accepted_of(&incoming, &mut update);
        let accepted: Vec<&[u8]> = accepted.iter().map(|c| c.as_ref()).collect();
        match self.store.apply_remote_in_step(
            volume,
            &accepted,
            Some(cursor),
            update.view.as_deref(),
            at,
        ) {
            Ok((_, Step::InStep(end))) => {
                volumes.insert(year, end);
                // A volume's first write: its cache made whole (see `commit_edit`).
                if at.is_none() {
                    family_store::cache_again(
                        &*self.store,
                        volume,
                        end,
                        fd.cache_rows_of(Some(year)),
                    );
                }
            }
            Ok((_, Step::Behind)) => {
                tracing::debug!(%volume, "another writer appended first: reopening");
                docs.remove(&core);
            }
            Err(e) => {
                // The in-memory volume is ahead of the store: reload it next time.
                docs.remove(&core);
                return Err(e.into());
            }
        }
        Ok(DocChange {
            touched: update.touched,
            new_activity: update.new_activity,
            refused: update.refusals.len() + sealing_refused,
            locked_at,
            ..DocChange::default()
        })
    }

    /// The family's volume of `year` saved whole, for a snapshot; `None` when this
    /// device keeps none of it.
    pub(super) fn save_volume(&self, family: FamilyId, year: u16) -> Result<Option<Vec<u8>>> {
        Ok(self
            .with_stored_volume(family, year, |fd| fd.save_volume(year))?
            .flatten())
    }

    /// Every change of the family's volume of `year` this device holds, and the
    /// family's host (whom the volume's rules name); `None` when it keeps none of it.
    pub(super) fn volume_changes(
        &self,
        family: FamilyId,
        year: u16,
    ) -> Result<Option<(HashSet<ChangeHash>, UserId)>> {
        let held = self.with_stored_volume(family, year, |fd| {
            let host = rules::host_of(fd.replica_mut().doc())?;
            fd.volume_mut(year)
                .map(|replica| (change_hashes(replica), host))
        })?;
        Ok(held.flatten())
    }

    /// `read` on the family with its volume of `year` loaded; `None` when this device
    /// keeps none of that volume (nothing is started from its genesis for a read).
    fn with_stored_volume<T>(
        &self,
        family: FamilyId,
        year: u16,
        read: impl FnOnce(&mut FamilyDoc) -> T,
    ) -> Result<Option<T>> {
        let mut docs = self.lock();
        if self.store.log_end(family.volume(year))?.is_none() {
            return Ok(None);
        }
        let (fd, _) = self.volume_ready(&mut docs, family, year)?;
        Ok(Some(read(fd)))
    }
}

/// Outbox entries read at once by [`StoreHost::drop_volume_changes`].
const OUTBOX_PAGE: usize = 256;

/// At most this many years other than this one stay loaded in an open family: an
/// edit of an old photo, or the sync of an old year (a new device catching up on
/// every year), loads that year, and each loaded year holds its whole CRDT (a year of
/// a large family: ~70 MiB, `docs/benchmarks.md`).
const MAX_OLDER_YEARS_LOADED: usize = 2;

/// Parks the older years loaded in `fd` past [`MAX_OLDER_YEARS_LOADED`], the farthest
/// from `just` (the year just loaded) first; this year, and the year new entities
/// are filed in, stay. Their entities stay in the view, from the loaded CRDT; every
/// write stored their rows, and an open finding a cache not in step with its log
/// rebuilds it.
fn park_older_years(fd: &mut FamilyDoc, (just, this_year): (u16, u16)) {
    let filed_in = fd.filed_in();
    let mut older: Vec<u16> = fd
        .volume_years()
        .filter(|&y| y != this_year && y != just && Some(y) != filed_in)
        .collect();
    let loaded = older.len() + usize::from(just != this_year);
    let excess = loaded.saturating_sub(MAX_OLDER_YEARS_LOADED);
    older.sort_by_key(|y| std::cmp::Reverse(y.abs_diff(just)));
    for year in older.into_iter().take(excess) {
        fd.park_volume(year);
    }
}

/// The family's document and its volumes' log ends, from an open family.
fn family_parts(
    opened: &mut Opened,
    doc: DocId,
) -> Result<(&mut FamilyDoc, &mut BTreeMap<u16, LogPos>)> {
    match opened {
        Opened {
            doc: OpenDoc::Family(fd),
            volumes,
            ..
        } => Ok((fd, volumes)),
        Opened { .. } => Err(HostError::WrongKind(doc, "family")),
    }
}
