//! A family's per-year volumes (issue 17) as the host keeps them open: which year it
//! is, where new entities are filed, when another process's write to a volume (or the
//! year turning) has the family opened again, and a parked year loaded for an edit.

use std::collections::HashMap;

use doran_protocol::{DocId, FamilyId, volume_year};

use super::{OpenDoc, Opened, StoreHost};
use crate::{
    error::DocError,
    family_doc::FamilyDoc,
    family_store::{self, OpenError},
    rules,
    sync::{DocKind, HostError, HostResult as Result},
};

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
        if rules::host_of(family.replica_mut().doc()).is_none() {
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
        let doc = DocId::from(family);
        let opened = self.ensure(docs, doc, DocKind::Family(family))?;
        let OpenDoc::Family(fd) = &mut opened.doc else {
            return Err(HostError::WrongKind(doc, "family"));
        };
        match family_store::load_volume(&*self.store, fd, year, &self.actor) {
            Ok(Some(end)) => {
                opened.volumes.insert(year, end);
                Ok(())
            }
            // Loaded already, and still not loaded: never made again.
            Ok(None) => Err(DocError::VolumeNotLoaded(year).into()),
            Err(OpenError::NotFound(_)) => Err(HostError::VolumeNotSynced(family, year)),
            Err(e) => {
                docs.remove(&doc);
                Err(e.into())
            }
        }
    }
}
