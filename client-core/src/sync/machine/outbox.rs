//! The outbox: local changes read from the host in batches and pushed with at most
//! [`SyncConfig::max_in_flight`](super::SyncConfig::max_in_flight) awaiting their ack.

use doran_protocol::ClientFrame;

use super::{Conn, SyncMachine};
use crate::{store::OutboxEntry, sync::Effects};

impl SyncMachine {
    pub(super) fn on_outbox(&mut self, entries: Vec<OutboxEntry>, fx: &mut Effects) {
        if !self.outbox_requested {
            return;
        }
        self.outbox_requested = false;
        let full = entries.len() >= self.config.outbox_batch;
        let mut fresh = false;
        for e in entries {
            if self.last_queued.is_none_or(|last| e.id > last) {
                self.last_queued = Some(e.id);
                self.queue.push_back(e);
                fresh = true;
            }
        }
        // Entries kept after a transient refusal come back in every listing: only a
        // full listing with something new suggests there is more behind it.
        self.outbox_more = full && fresh;
        self.pump(fx);
    }

    /// Pushes queued entries while there is room, and asks for more when the queue is
    /// empty and the store may hold more.
    pub(super) fn pump(&mut self, fx: &mut Effects) {
        if self.conn != Conn::SignedIn {
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
            fx.want_outbox = Some(self.config.outbox_batch.max(1));
        }
    }
}
