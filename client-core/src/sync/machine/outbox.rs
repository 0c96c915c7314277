//! The outbox: local changes read from the host in batches and pushed with at most
//! [`SyncConfig::max_in_flight`](super::SyncConfig::max_in_flight) awaiting their ack.
//!
//! The outbox is paged by id (each listing starts after the last entry queued), so a
//! push the relay asks to have later (a transient refusal, a full quota or document
//! log) stays in the outbox without hiding the entries behind it; after
//! [`SyncConfig::retry_refused_after_ms`](super::SyncConfig::retry_refused_after_ms)
//! the machine pages through the outbox from its oldest entry again. A push refused
//! for the connection's frame rate pauses every push until the relay's wait has passed
//! (see `keep_for_later`).

use doran_protocol::{ClientFrame, ErrorCode};

use super::{Conn, SyncMachine};
use crate::{
    store::OutboxEntry,
    sync::{Effects, OutboxWanted},
};

/// How long pushes pause after a `rate_limited` refusal that says no wait (the relay
/// always says one; at its default 50 frames a second a token comes every 20 ms). The
/// round itself comes with the next tick.
const RATE_LIMITED_PAUSE_MS: u64 = 100;

impl SyncMachine {
    pub(super) fn on_outbox(&mut self, entries: Vec<OutboxEntry>, fx: &mut Effects) {
        if !self.outbox_requested {
            return;
        }
        self.outbox_requested = false;
        let full = entries.len() >= self.config.outbox_batch;
        for e in entries {
            self.last_queued = self.last_queued.max(Some(e.id));
            // A volume not open yet: listed again once it is.
            if self.waits_for_volume(e.doc) {
                continue;
            }
            // Going through again from the oldest: what is on its way already stays.
            let pushed = self.in_flight.contains(&(e.doc, e.chunk));
            if !pushed && !self.queue.iter().any(|q| q.id == e.id) {
                self.queue.push_back(e);
            }
        }
        // Each listing starts after the last, so a full one may have more behind it.
        self.outbox_more = full;
        if std::mem::take(&mut self.relist_outbox) {
            self.last_queued = None;
            self.outbox_more = true;
        }
        self.pump(fx);
    }

    /// The relay asked to have a push later: it stays in the outbox, and the machine
    /// goes through the outbox again after the delay (the longer of the relay's and
    /// its own). A push refused for the connection's frame rate (`rate_limited`)
    /// pauses every push until then, and then is the relay's own wait: the relay
    /// refuses each frame over the budget, and pushing on would only be refused again
    /// until it closes the connection for ignoring its limit — as a burst of a few
    /// hundred edits did, each refusal freeing room for the next push.
    pub(super) fn keep_for_later(&mut self, code: ErrorCode, retry_after_ms: Option<u64>) {
        let delay = if code == ErrorCode::RateLimited {
            self.pushes_paused = true;
            retry_after_ms.unwrap_or(RATE_LIMITED_PAUSE_MS)
        } else {
            retry_after_ms.unwrap_or(0).max(self.retry_kept_delay)
        };
        let at = self.last_frame_at.saturating_add(delay);
        tracing::debug!(?code, delay, "a push is kept for later");
        self.retry_kept_at = Some(self.retry_kept_at.map_or(at, |t| t.min(at)));
    }

    /// Goes through the outbox from its oldest entry again, once kept pushes are due
    /// (and no listing is on its way: one asked for after the last entry queued would
    /// move past the kept ones again; the next tick tries).
    pub(super) fn retry_kept(&mut self, now_ms: u64, fx: &mut Effects) {
        if self.conn != Conn::SignedIn
            || self.outbox_requested
            || self.retry_kept_at.is_none_or(|at| now_ms < at)
        {
            return;
        }
        self.retry_kept_at = None;
        self.pushes_paused = false;
        // A log that stays full is not asked every few seconds for ever; an ack resets.
        self.retry_kept_delay = self
            .retry_kept_delay
            .saturating_mul(2)
            .min(super::MAX_RETRY_REFUSED_MS.max(self.config.retry_refused_after_ms));
        // From the oldest entry: what is queued and not sent (pushes were paused) is
        // listed again in its turn, behind the kept ones.
        self.queue.clear();
        self.last_queued = None;
        self.outbox_more = true;
        self.pump(fx);
    }

    /// Pushes queued entries while there is room, and asks for more when the queue is
    /// empty and the store may hold more.
    pub(super) fn pump(&mut self, fx: &mut Effects) {
        if self.conn != Conn::SignedIn || self.pushes_paused {
            return;
        }
        while self.in_flight.len() < self.config.max_in_flight.max(1) {
            let Some(e) = self.queue.pop_front() else {
                break;
            };
            self.in_flight.push((e.doc, e.chunk));
            fx.send.push(ClientFrame::Push {
                doc: e.doc,
                chunk: e.chunk,
                bytes: e.bytes,
            });
        }
        if self.queue.is_empty()
            && self.outbox_more
            && !self.outbox_requested
            && self.in_flight.len() < self.config.max_in_flight.max(1)
        {
            self.outbox_requested = true;
            fx.want_outbox = Some(OutboxWanted {
                after: self.last_queued,
                limit: self.config.outbox_batch.max(1),
            });
        }
    }
}
