//! Compaction, driven by the device: once a document's relay log has grown past
//! [`SyncConfig::compact_after`](super::SyncConfig::compact_after) chunks since its
//! last snapshot, ask the host for a snapshot ([`Effects::compact`]), refer the relay
//! to it once uploaded (`PushSnapshot`) and remember what the relay accepted.

use doran_protocol::{BlobHash, ClientFrame, DocId, Seq};

use super::{Conn, SyncMachine};
use crate::sync::{Compact, DocKind, Effects};

impl SyncMachine {
    /// Asks for a snapshot of `doc` when its log has grown enough since the last one.
    /// Family documents are compacted by any member's device; a personal document
    /// only by its owner's (the relay lets nobody else write it).
    pub(super) fn maybe_compact(&mut self, doc: DocId, fx: &mut Effects) {
        let me = self.me;
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let writable = match state.kind {
            DocKind::Family(_) => true,
            DocKind::Personal(owner) => Some(owner) == me,
        };
        if writable
            && state.caught_up
            && !state.compacting
            && state.cursor.saturating_sub(state.snapshot_covers) > self.config.compact_after
        {
            state.compacting = true;
            fx.compact.push(Compact {
                doc,
                kind: state.kind,
                covers_seq: state.cursor,
            });
        }
    }

    pub(super) fn compact_failed(&mut self, doc: DocId) {
        if let Some(state) = self.docs.get_mut(&doc)
            && state.compacting
        {
            state.compacting = false;
            // Try again only after as many chunks again.
            state.snapshot_covers = state.cursor;
        }
    }

    /// The snapshot asked for is uploaded: refer to it, if still wanted.
    pub(super) fn on_snapshot_uploaded(
        &mut self,
        doc: DocId,
        covers_seq: Seq,
        blob: BlobHash,
        len: u64,
        fx: &mut Effects,
    ) {
        if self.conn == Conn::SignedIn && self.docs.get(&doc).is_some_and(|d| d.compacting) {
            fx.send.push(ClientFrame::PushSnapshot {
                doc,
                covers_seq,
                blob,
                len,
            });
        }
    }

    /// The relay recorded a snapshot of `doc`.
    pub(super) fn on_snapshot_accepted(&mut self, doc: DocId, covers_seq: Seq, fx: &mut Effects) {
        if let Some(state) = self.docs.get_mut(&doc) {
            state.compacting = false;
            state.snapshot_covers = state.snapshot_covers.max(covers_seq);
        }
        fx.snapshot_accepted.push((doc, covers_seq));
    }
}
