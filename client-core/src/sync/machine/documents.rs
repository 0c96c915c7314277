//! Documents: which ones are synced (the personal document, every family's and its
//! members' personal documents), their subscriptions and cursors, and what arrives
//! for them (chunks, snapshots, catch-up) or comes back (acks of own chunks).

use std::collections::BTreeSet;

use doran_protocol::{
    ClientFrame, DocId, ErrorCode, ErrorFrame, FamilyId, MemberInfo, Seq, Subscription, UserId,
    limits::MAX_SUBSCRIPTIONS_PER_FRAME,
};

use super::{Conn, DocCursor, DocState, SyncMachine};
use crate::sync::{Apply, DocKind, Effects, IncomingChunk, SnapshotRef, doubling};

impl SyncMachine {
    pub(super) fn want_family(
        &mut self,
        family: FamilyId,
        members: &[MemberInfo],
        subs: &mut Vec<Subscription>,
    ) {
        self.want(DocId::from(family), DocKind::Family(family), subs);
        self.want(family.key_log(), DocKind::KeyLog(family), subs);
        for m in members {
            if Some(m.user) != self.me {
                self.want(m.personal_doc, DocKind::Personal(m.user), subs);
            }
        }
    }

    /// Starts syncing `doc` unless it already is; adds its subscription to `subs`.
    pub(super) fn want(&mut self, doc: DocId, kind: DocKind, subs: &mut Vec<Subscription>) {
        if self.conn != Conn::SignedIn || self.docs.contains_key(&doc) {
            return;
        }
        let stored = self.stored.get(&doc).copied();
        let cursor = stored.map_or(0, |s| s.cursor);
        self.docs.insert(
            doc,
            DocState {
                kind,
                cursor,
                snapshot_covers: stored.map_or(0, |s| s.snapshot_covers),
                own_acked: BTreeSet::new(),
                caught_up: false,
                compacting: false,
                resetting: false,
                before_snapshot: None,
                retry_at: None,
                snapshot_misses: 0,
                compact_after: 0,
                compact_misses: 0,
                compact_wanted: false,
                log_full: false,
                locked: false,
                offered: None,
                verifying: false,
                checked: None,
            },
        );
        subs.push(Subscription { doc, since: cursor });
    }

    pub(super) fn subscribe(subs: Vec<Subscription>, fx: &mut Effects) {
        for part in subs.chunks(MAX_SUBSCRIPTIONS_PER_FRAME) {
            fx.send.push(ClientFrame::Subscribe {
                docs: part.to_vec(),
            });
        }
    }

    pub(super) fn drop_doc(&mut self, doc: DocId, code: ErrorCode, fx: &mut Effects) {
        if let Some(state) = self.docs.remove(&doc) {
            // Remember the cursor for a later re-subscription on this connection.
            self.stored.insert(
                doc,
                DocCursor {
                    doc,
                    cursor: state.cursor,
                    snapshot_covers: state.snapshot_covers,
                },
            );
            if self.conn == Conn::SignedIn {
                fx.send.push(ClientFrame::Unsubscribe { docs: vec![doc] });
            }
            fx.dropped.push((doc, code));
            // A family's volumes go with it.
            if let DocKind::Family(family) = state.kind {
                self.drop_volumes_of(family, code, fx);
            }
        }
    }

    /// A chunk of `doc` at `seq`, pushed by `author` (as the relay recorded it).
    pub(super) fn on_chunk(
        &mut self,
        doc: DocId,
        (seq, chunk, author): (Seq, doran_protocol::ChunkId, Option<UserId>),
        bytes: Vec<u8>,
        fx: &mut Effects,
    ) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        if state.retry_at.is_some()
            || seq <= state.cursor
            || (state.resetting && seq != state.cursor + 1)
        {
            // Redelivered (the relay sends each subscription in seq order), or a live
            // chunk overtaking a catch-up from 0 (the catch-up brings it again).
            return;
        }
        state.cursor = seq;
        let mut chunks = Vec::new();
        let valid = !bytes.is_empty()
            && bytes.len() <= doran_protocol::limits::MAX_CHUNK_BYTES
            && chunk.verifies(&bytes);
        if valid {
            chunks.push(IncomingChunk { seq, author, bytes });
        } else {
            fx.errors.push(
                ErrorFrame::new(
                    ErrorCode::HashMismatch,
                    "the relay sent a bad chunk; skipped",
                )
                .for_doc(doc)
                .for_chunk(chunk),
            );
        }
        advance_over_own(state);
        fx.apply.push(Apply {
            doc,
            kind: state.kind,
            snapshot: None,
            chunks,
            cursor: state.cursor,
        });
        self.maybe_compact(doc, fx);
        self.maybe_verify(doc, fx);
    }

    pub(super) fn on_ack(
        &mut self,
        doc: DocId,
        chunk: doran_protocol::ChunkId,
        seq: Seq,
        fx: &mut Effects,
    ) {
        self.in_flight.retain(|&(d, c)| (d, c) != (doc, chunk));
        fx.acked.push((doc, chunk, seq));
        self.retry_kept_delay = self.config.retry_refused_after_ms;
        if let Some(state) = self.docs.get_mut(&doc)
            && seq > state.cursor
        {
            state.own_acked.insert(seq);
            let before = state.cursor;
            advance_over_own(state);
            if state.cursor > before {
                fx.apply.push(Apply {
                    doc,
                    kind: state.kind,
                    snapshot: None,
                    chunks: Vec::new(),
                    cursor: state.cursor,
                });
            }
            self.maybe_compact(doc, fx);
            self.maybe_verify(doc, fx);
        }
        self.pump(fx);
    }

    /// The relay's snapshot reference (a catch-up from behind it): apply it first.
    pub(super) fn on_snapshot(&mut self, doc: DocId, snapshot: SnapshotRef, fx: &mut Effects) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        state.snapshot_covers = state.snapshot_covers.max(snapshot.covers_seq);
        if state.retry_at.is_some() || snapshot.covers_seq <= state.cursor {
            return;
        }
        state.before_snapshot = Some(state.cursor);
        state.cursor = snapshot.covers_seq;
        fx.apply.push(Apply {
            doc,
            kind: state.kind,
            snapshot: Some(snapshot),
            chunks: Vec::new(),
            cursor: snapshot.covers_seq,
        });
    }

    /// The relay's log of `doc` ends at `head`, before this device's cursor: forget
    /// the cursor (the store too) and catch up again from 0. The relay keeps the old
    /// subscription live from its head meanwhile; the catch-up of the new one is
    /// taken in order (see [`DocState::resetting`]).
    pub(super) fn on_cursor_ahead(&mut self, doc: DocId, head: Seq, fx: &mut Effects) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        tracing::warn!(%doc, cursor = state.cursor, head, "cursor ahead of the relay's log; catching up from 0");
        state.cursor = 0;
        state.snapshot_covers = 0;
        state.own_acked.clear();
        state.caught_up = false;
        state.resetting = true;
        self.stored.remove(&doc);
        fx.reset_cursors.push(doc);
        Self::subscribe(vec![Subscription { doc, since: 0 }], fx);
    }

    /// The snapshot of `doc` could not be fetched: nothing of its catch-up was stored.
    /// Stop listening to it (its later chunks would need the snapshot), go back to the
    /// cursor before the snapshot, and subscribe again after
    /// [`SNAPSHOT_RETRY_FIRST_MS`](super::SNAPSHOT_RETRY_FIRST_MS), doubled with each
    /// failure in a row up to [`SNAPSHOT_RETRY_MS`](super::SNAPSHOT_RETRY_MS).
    pub(super) fn on_snapshot_unavailable(&mut self, doc: DocId, now_ms: u64, fx: &mut Effects) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let Some(before) = state.before_snapshot.take() else {
            return;
        };
        let wait = doubling(
            super::SNAPSHOT_RETRY_FIRST_MS,
            state.snapshot_misses,
            super::SNAPSHOT_RETRY_MS,
        );
        state.snapshot_misses = state.snapshot_misses.saturating_add(1);
        tracing::warn!(%doc, before, wait, "a snapshot could not be fetched; retrying later");
        state.cursor = before;
        state.own_acked.clear();
        state.caught_up = false;
        state.retry_at = Some(now_ms + wait);
        if self.conn == Conn::SignedIn {
            fx.send.push(ClientFrame::Unsubscribe { docs: vec![doc] });
        }
    }

    /// A chunk of `doc` waits for a key: go back to `cursor` and stop listening.
    pub(super) fn on_doc_locked(&mut self, doc: DocId, cursor: Seq, fx: &mut Effects) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        tracing::debug!(%doc, cursor, "waiting for the keys to open a sealed chunk");
        state.cursor = cursor;
        state.own_acked.clear();
        state.caught_up = false;
        state.before_snapshot = None;
        state.locked = true;
        state.retry_at = Some(u64::MAX);
        if self.conn == Conn::SignedIn {
            fx.send.push(ClientFrame::Unsubscribe { docs: vec![doc] });
        }
    }

    /// Keys came: the locked documents among `docs` are subscribed again, and the
    /// outbox is listed again from its oldest entry (changes that could not be
    /// sealed were left out of the listings).
    pub(super) fn on_unlocked(&mut self, docs: &[DocId], now_ms: u64, fx: &mut Effects) {
        self.relist_outbox(fx);
        for (doc, state) in &mut self.docs {
            // A family's keys open its volumes too.
            let named = docs.contains(doc)
                || matches!(state.kind, DocKind::Volume(family, _) if docs.contains(&DocId::from(family)));
            if named && state.locked {
                state.locked = false;
                state.retry_at = Some(0);
            }
        }
        self.retry_stalled(now_ms, fx);
    }

    /// Subscribes again the documents whose snapshot retry time has come.
    pub(super) fn retry_stalled(&mut self, now_ms: u64, fx: &mut Effects) {
        if self.conn != Conn::SignedIn {
            return;
        }
        let mut subs = Vec::new();
        for (doc, state) in &mut self.docs {
            if state.retry_at.is_some_and(|at| at <= now_ms) {
                state.retry_at = None;
                // Taken in order, like a reset: live chunks may overtake the catch-up.
                state.resetting = true;
                subs.push(Subscription {
                    doc: *doc,
                    since: state.cursor,
                });
            }
        }
        Self::subscribe(subs, fx);
    }

    /// The catch-up of `doc` is complete: it may now be compacted.
    pub(super) fn on_caught_up(&mut self, doc: DocId, fx: &mut Effects) {
        if let Some(state) = self.docs.get_mut(&doc) {
            if state.retry_at.is_some() {
                return;
            }
            state.caught_up = true;
            state.resetting = false;
            // Its snapshot, if the catch-up brought one, applied.
            state.snapshot_misses = 0;
        }
        self.maybe_compact(doc, fx);
        self.maybe_verify(doc, fx);
    }
}

/// Moves the cursor over this device's own acked chunks that now follow it.
fn advance_over_own(state: &mut DocState) {
    while state.own_acked.remove(&(state.cursor + 1)) {
        state.cursor += 1;
    }
    state.own_acked.retain(|&s| s > state.cursor);
}
