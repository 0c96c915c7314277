//! The device's own copy of each document, kept short: once a document's stored tail
//! (the change rows after its snapshot) passes [`COMPACT_STORED_AFTER`] rows, the host
//! writes the open document as the new snapshot and drops the rows it covers
//! ([`LocalStore::compact`](crate::store::LocalStore::compact)).
//!
//! Every open loads the snapshot and then applies the tail, change by change in
//! batches, each apply walking the document: in a ten-year family a tail of 573 rows
//! costs 0.75 s of the 1.8 s it takes to be ready (`docs/benchmarks.md`). Without
//! this the tail only ever grew: every edit and every chunk received is a row.
//!
//! This is the device's store only; what the relay keeps is compacted by the sync
//! machine's snapshots, which every member may check. Nothing changes for the view
//! cache (compaction keeps the log end) or for another process on the same store (it
//! sees the same log end, and its open document still holds every row). The device's
//! driver asks for it when idle ([`SyncHost::compact_stored`]).
//!
//! [`SyncHost::compact_stored`]: crate::sync::SyncHost::compact_stored

use doran_protocol::{DocId, FamilyId};

use super::{OpenDoc, StoreHost};
use crate::sync::{DocKind, HostResult as Result};

/// Stored change rows after a document's snapshot past which its device compacts it.
/// A compaction costs one save of the document (about what loading its snapshot
/// costs); a tail this long costs a load a fraction of that, on every open.
pub const COMPACT_STORED_AFTER: u64 = 256;

impl StoreHost {
    /// Compacts every document open here whose stored tail passed
    /// [`COMPACT_STORED_AFTER`] rows; returns how many it compacted. Meant for idle
    /// moments on a background thread: each save holds the documents for its length.
    pub fn compact_long_tails(&self) -> Result<usize> {
        let open: Vec<(DocId, DocKind)> = self
            .lock()
            .iter()
            .map(|(doc, opened)| (*doc, self.kind_of(*doc, &opened.doc)))
            .collect();
        let mut compacted = 0;
        for (doc, kind) in open {
            if self.store.tail_len(doc)? >= COMPACT_STORED_AFTER
                && self.compact_stored_doc(doc, kind)?
            {
                compacted += 1;
            }
        }
        Ok(compacted)
    }

    /// Writes `doc` (opened if needed) as its stored snapshot through the log end it
    /// reflects, whatever its tail; `false` when there is nothing to compact or the
    /// document cannot be saved whole now (a stored change waits for its
    /// dependencies: a save would leave it out).
    pub fn compact_stored_doc(&self, doc: DocId, kind: DocKind) -> Result<bool> {
        if matches!(kind, DocKind::KeyLog(_)) {
            return Ok(false);
        }
        let mut docs = self.lock();
        let opened = self.ensure(&mut docs, doc, kind)?;
        // The open document holds every row up to `at` (`ensure` reads the log end
        // before it loads), so the snapshot covers all the rows it replaces.
        let Some(through) = opened.at else {
            return Ok(false);
        };
        let replica = match &mut opened.doc {
            OpenDoc::Family(fd) => fd.replica_mut(),
            OpenDoc::Personal(pd) => pd.replica_mut(),
        };
        if !replica.settled() {
            tracing::debug!(%doc, "a stored change waits for its dependencies: not compacted");
            return Ok(false);
        }
        let snapshot = replica.save();
        // Rows written from here on stay after the snapshot; the open document keeps
        // its log end, which compaction does not move.
        drop(docs);
        let done = self.store.compact(doc, &snapshot, through)?;
        tracing::debug!(%doc, bytes = snapshot.len(), done, "stored copy compacted");
        Ok(done)
    }

    fn kind_of(&self, doc: DocId, open: &OpenDoc) -> DocKind {
        match open {
            OpenDoc::Family(_) => DocKind::Family(FamilyId(doc.0)),
            // Which user's it is matters only to open it, which it already is.
            OpenDoc::Personal(_) => DocKind::Personal(self.actor.user),
        }
    }
}
