//! Compaction, driven by the device: once a document's relay log has grown past
//! [`SyncConfig::compact_after`](super::SyncConfig::compact_after) chunks since its
//! last snapshot, ask the host for a snapshot ([`Effects::compact`]), refer the relay
//! to it once uploaded (`PushSnapshot`) and remember what the relay accepted.
//!
//! The relay holds a pushed snapshot as *pending* and drops nothing until a device of
//! another member (another device, for a personal document) confirms it: offered a
//! pending snapshot (`PendingSnapshot`), a device that holds every chunk it claims
//! to cover asks the host to check it ([`Effects::verify_snapshots`]) and confirms it
//! only if it contains every change the device got from those chunks and no change
//! the device lacks other than the pusher's own ([`SnapshotCheck::Contains`]); a
//! snapshot missing changes, or holding changes nobody vouches for, is reported and
//! never confirmed.

use doran_protocol::{BlobHash, ClientFrame, DeviceId, DocId, Request, Seq, UserId};

use super::{Conn, Internal, SyncMachine};
use crate::sync::{
    Compact, DocKind, Effects, SnapshotCheck, SnapshotRef, VerifySnapshot, doubling,
};

impl SyncMachine {
    /// Asks for a snapshot of `doc` when its log has grown enough since the last one.
    /// Family documents are compacted by any member's device; a personal document
    /// only by its owner's (the relay lets nobody else write it).
    pub(super) fn maybe_compact(&mut self, doc: DocId, fx: &mut Effects) {
        self.compact_if(doc, self.config.compact_after, fx);
    }

    /// Asks for a snapshot of `doc` now that the relay refused a push because the log
    /// is full (`document_full`): whatever has grown since the last snapshot.
    pub(super) fn compact_full(&mut self, doc: DocId, fx: &mut Effects) {
        if let Some(state) = self.docs.get_mut(&doc) {
            state.log_full = true;
        }
        self.compact_if(doc, 0, fx);
    }

    /// Asks for a snapshot of `doc` if this device may write it, has caught up, is not
    /// compacting it already nor waiting after a failed one, and its log holds more
    /// than `grown` chunks after the last snapshot.
    fn compact_if(&mut self, doc: DocId, grown: u64, fx: &mut Effects) {
        let (me, now_ms) = (self.me, self.now_ms);
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let writable = match state.kind {
            DocKind::Family(_) | DocKind::Volume(..) => true,
            DocKind::Personal(owner) => Some(owner) == me,
            // A device offline for months needs every Commit since its epoch.
            DocKind::KeyLog(_) => false,
        };
        if writable
            && state.caught_up
            && state.retry_at.is_none()
            && !state.compacting
            && state.cursor.saturating_sub(state.snapshot_covers) > grown
        {
            if now_ms < state.compact_after {
                state.compact_wanted = true;
                return;
            }
            state.compact_wanted = false;
            state.compacting = true;
            fx.compact.push(Compact {
                doc,
                kind: state.kind,
                covers_seq: state.cursor,
            });
        }
    }

    /// Asks for a snapshot of `doc` now, whatever has grown since the last one (a
    /// family just sealed by its host: the relay drops its clear chunks once a sealed
    /// snapshot covering them is confirmed).
    pub(super) fn compact_now(&mut self, doc: DocId, fx: &mut Effects) {
        self.compact_if(doc, 0, fx);
    }

    /// Makes the snapshots asked for while their documents waited after a failed
    /// one, once the wait is over.
    pub(super) fn retry_compactions(&mut self, fx: &mut Effects) {
        let now_ms = self.now_ms;
        let due: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(_, s)| s.compact_wanted && now_ms >= s.compact_after)
            .map(|(doc, _)| *doc)
            .collect();
        for doc in due {
            // Asked once more; wanted again only if that is held back again.
            if let Some(state) = self.docs.get_mut(&doc) {
                state.compact_wanted = false;
            }
            self.compact_if(doc, 0, fx);
        }
    }

    /// No snapshot of `doc` from this device now (see
    /// [`Event::CompactSkipped`](super::Event::CompactSkipped)): not
    /// a failure, so no wait; asked again once its log grew.
    pub(super) fn compact_skipped(&mut self, doc: DocId) {
        if let Some(state) = self.docs.get_mut(&doc)
            && state.compacting
        {
            state.compacting = false;
            state.snapshot_covers = state.cursor;
        }
    }

    /// A snapshot of `doc` failed (its save or upload, or the relay refused it, with
    /// `hint`: when to try again): not again before that, nor before a wait doubled
    /// with each failure in a row, nor before as many chunks again — unless the
    /// relay's log of it is full, which takes no chunk until a snapshot frees it.
    pub(super) fn compact_failed(&mut self, doc: DocId, hint: Option<u64>) {
        let now_ms = self.now_ms;
        if let Some(state) = self.docs.get_mut(&doc)
            && state.compacting
        {
            state.compacting = false;
            if !state.log_full {
                state.snapshot_covers = state.cursor;
            }
            let wait = doubling(
                super::COMPACT_RETRY_FIRST_MS,
                state.compact_misses,
                super::COMPACT_RETRY_MAX_MS,
            )
            .max(hint.unwrap_or(0));
            state.compact_misses = state.compact_misses.saturating_add(1);
            state.compact_after = now_ms.saturating_add(wait);
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
            state.compact_misses = 0;
            state.log_full = false;
        }
        self.on_snapshot_confirmed(doc, covers_seq, fx);
    }

    /// `doc` has a snapshot on the relay covering `covers_seq` (this device's, or
    /// another member's this device confirmed): the host remembers it as its own
    /// (its compaction counts from there; a sealed snapshot it owes is owed no more).
    pub(super) fn on_snapshot_confirmed(&mut self, doc: DocId, covers_seq: Seq, fx: &mut Effects) {
        if let Some(state) = self.docs.get_mut(&doc) {
            state.snapshot_covers = state.snapshot_covers.max(covers_seq);
        }
        fx.snapshot_accepted.push((doc, covers_seq));
    }
}

impl SyncMachine {
    /// The relay offers a pending snapshot of `doc`, pushed by `by` from `by_device`.
    /// This device's own user's snapshot of a family document (or this very device's,
    /// of a personal one) is not its to vouch for: the relay would refuse it too.
    pub(super) fn on_pending_snapshot(
        &mut self,
        doc: DocId,
        snapshot: SnapshotRef,
        (by, by_device): (UserId, DeviceId),
        fx: &mut Effects,
    ) {
        let (me, device) = (self.me, self.device);
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let own = match state.kind {
            DocKind::Family(_) | DocKind::Volume(..) => Some(by) == me,
            DocKind::Personal(_) => Some(by_device) == device,
            // The relay takes no snapshot of a key log: nothing to vouch for.
            DocKind::KeyLog(_) => true,
        };
        if own || state.checked == Some((snapshot.covers_seq, snapshot.blob)) {
            return;
        }
        if !state.verifying {
            state.offered = Some((snapshot, by));
        }
        self.maybe_verify(doc, fx);
    }

    /// Asks the host to check the offered snapshot once this device holds every
    /// chunk it claims to cover (caught up, cursor at or past its seq).
    pub(super) fn maybe_verify(&mut self, doc: DocId, fx: &mut Effects) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let Some((snapshot, by)) = state.offered else {
            return;
        };
        if state.verifying
            || !state.caught_up
            || state.retry_at.is_some()
            || state.cursor < snapshot.covers_seq
        {
            return;
        }
        state.verifying = true;
        fx.verify_snapshots.push(VerifySnapshot {
            doc,
            kind: state.kind,
            snapshot,
            by,
        });
    }

    /// The host checked an offered snapshot: confirm it if it holds everything this
    /// device got up to its seq, report it if it lacks something, else say nothing.
    pub(super) fn on_snapshot_checked(
        &mut self,
        doc: DocId,
        covers_seq: Seq,
        blob: BlobHash,
        check: SnapshotCheck,
        fx: &mut Effects,
    ) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let offered = state
            .offered
            .is_some_and(|(s, _)| s.covers_seq == covers_seq && s.blob == blob);
        if !state.verifying || !offered {
            return;
        }
        state.verifying = false;
        state.offered = None;
        state.checked = Some((covers_seq, blob));
        let body = match check {
            SnapshotCheck::Contains => Request::ConfirmSnapshot {
                doc,
                covers_seq,
                blob,
            },
            SnapshotCheck::Missing(n) => {
                tracing::warn!(%doc, covers_seq, missing = n, "a pending snapshot lacks changes this device holds; not confirming it");
                Request::RejectSnapshot {
                    doc,
                    covers_seq,
                    blob,
                }
            }
            SnapshotCheck::Foreign(n) => {
                tracing::warn!(%doc, covers_seq, foreign = n, "a pending snapshot holds changes this device does not have, written by someone other than its pusher; not confirming it");
                Request::RejectSnapshot {
                    doc,
                    covers_seq,
                    blob,
                }
            }
            SnapshotCheck::Unreadable(e) => {
                tracing::warn!(%doc, covers_seq, error = %e, "a pending snapshot cannot be loaded; not confirming it");
                Request::RejectSnapshot {
                    doc,
                    covers_seq,
                    blob,
                }
            }
            SnapshotCheck::CannotTell => {
                tracing::debug!(%doc, covers_seq, "cannot tell whether a pending snapshot is complete; leaving it to other devices");
                return;
            }
        };
        if self.conn == Conn::SignedIn {
            let id = self.next_id();
            let why = match body {
                Request::ConfirmSnapshot { .. } => Internal::Confirm(doc, covers_seq),
                _ => Internal::Reject,
            };
            self.internal.insert(id, why);
            fx.send.push(ClientFrame::Request { id, body });
        }
    }
}
