//! A family's per-year volumes (issue 17): each year the family's document lists is
//! opened on the relay (`OpenVolume`, once per connection; the relay knows a volume
//! only once a member opened it) and synced like the family's document from then on.
//! A volume's local changes stay in the outbox until it is open here: pushed before,
//! the relay would refuse them (`not_found`), and a refused change leaves the outbox.

use doran_protocol::{ClientFrame, DocId, ErrorCode, FamilyId, Request, VOLUME_YEARS};

use super::{Conn, Internal, SyncMachine};
use crate::sync::{DocKind, Effects};

impl SyncMachine {
    /// The years the families' documents list: each volume not asked for on this
    /// connection is opened. Only a family sealed from its creation keeps volumes
    /// (the relay refuses the others), and only one this device syncs.
    pub(super) fn on_volumes(&mut self, listed: &[(FamilyId, Vec<u16>)], fx: &mut Effects) {
        if self.conn != Conn::SignedIn {
            // Told again after the next sign-in.
            return;
        }
        for (family, years) in listed {
            if !family.says_sealed() || !self.docs.contains_key(&DocId::from(*family)) {
                continue;
            }
            // The newest first: past the relay's cap per family, the years still
            // written to are the ones that open.
            for &year in years.iter().rev() {
                if !VOLUME_YEARS.contains(&year) || !self.volumes_asked.insert((*family, year)) {
                    continue;
                }
                let id = self.next_id();
                self.internal
                    .insert(id, Internal::OpenVolume(*family, year));
                fx.send.push(ClientFrame::Request {
                    id,
                    body: Request::OpenVolume {
                        family: *family,
                        year,
                    },
                });
            }
        }
    }

    /// The relay opened the volume: synced from here, and the changes of it that
    /// waited in the outbox go.
    pub(super) fn on_volume_opened(&mut self, family: FamilyId, year: u16, fx: &mut Effects) {
        // Left or deleted meanwhile.
        if !self.docs.contains_key(&DocId::from(family)) {
            return;
        }
        let mut subs = Vec::new();
        self.want(
            family.volume(year),
            DocKind::Volume(family, year),
            &mut subs,
        );
        Self::subscribe(subs, fx);
        self.relist_outbox(fx);
    }

    /// Whether a local change of `doc` waits in the outbox: a volume not open on this
    /// connection.
    pub(super) fn waits_for_volume(&self, doc: DocId) -> bool {
        doc.says_volume() && !self.docs.contains_key(&doc)
    }

    /// The family is no longer synced: neither are its volumes.
    pub(super) fn drop_volumes_of(&mut self, family: FamilyId, code: ErrorCode, fx: &mut Effects) {
        let volumes: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(_, s)| matches!(s.kind, DocKind::Volume(f, _) if f == family))
            .map(|(doc, _)| *doc)
            .collect();
        for doc in volumes {
            self.drop_doc(doc, code, fx);
        }
        self.volumes_asked.retain(|(f, _)| *f != family);
    }

    /// Lists the outbox again from its oldest entry (changes left out of the listings
    /// so far may go now): at once, or once the listing on its way is in.
    pub(super) fn relist_outbox(&mut self, fx: &mut Effects) {
        if self.conn != Conn::SignedIn {
            return;
        }
        if self.outbox_requested {
            self.relist_outbox = true;
            return;
        }
        self.last_queued = None;
        self.outbox_more = true;
        self.pump(fx);
    }
}
