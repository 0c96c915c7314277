//! A family's per-year volumes (issue 17): each year the family's document lists is
//! opened on the relay (`OpenVolume`, once per connection; the relay knows a volume
//! only once a member opened it) and synced like the family's document from then on.
//! A volume's local changes stay in the outbox until it is open here: pushed before,
//! the relay would refuse them (`not_found`), and a refused change leaves the outbox.
//!
//! Any member may list any year, so the requests are paced: at most
//! [`MAX_VOLUME_OPENS`] wait for the relay at once (a burst would meet its rate
//! limit), this year's and next year's first, then the past from the newest (past
//! the relay's cap per family, the years still written to are the ones that open);
//! a year after next is never asked (nothing made now is filed there). A volume the
//! relay could not open for a passing reason is asked again after
//! [`VOLUME_RETRY_MS`]; one it refused stays unsynced until the next connection.

use std::cmp::Reverse;

use doran_protocol::{
    ClientFrame, DocId, ErrorCode, ErrorFrame, FamilyId, Request, VOLUME_YEARS, volume_year,
};

use super::{Conn, Internal, SyncMachine};
use crate::sync::{DocKind, Effects};

/// How many `OpenVolume` requests wait for the relay at once.
pub const MAX_VOLUME_OPENS: usize = 4;

/// How long a volume the relay could not open for a passing reason (busy, rate
/// limited) waits before it is asked again, in ms (or the relay's hint, if longer).
pub const VOLUME_RETRY_MS: u64 = 5_000;

/// How many times a volume refused `conflict` (its family's sealing not taken by
/// the relay yet) is asked again on one connection, after 5, 10 and 20 s.
pub const MAX_VOLUME_CONFLICTS: u8 = 3;

impl SyncMachine {
    /// The relay's year at sign-in (`SignedIn::server_time`).
    pub(super) fn note_server_time(&mut self, server_time_ms: u64) {
        self.server_year = Some(volume_year(
            i64::try_from(server_time_ms).unwrap_or(i64::MAX),
        ));
    }

    /// The years the families' documents list: each volume not asked for on this
    /// connection is queued to be opened, of a family this device syncs. The host
    /// lists only families that keep volumes (sealed, and known sealed to the relay:
    /// it refuses the others).
    pub(super) fn on_volumes(&mut self, listed: &[(FamilyId, Vec<u16>)], fx: &mut Effects) {
        if self.conn != Conn::SignedIn {
            // Told again after the next sign-in.
            return;
        }
        let latest = self.server_year.map(|y| y.saturating_add(1));
        for (family, years) in listed {
            if !self.docs.contains_key(&DocId::from(*family)) {
                continue;
            }
            let years = years
                .iter()
                .copied()
                .filter(|y| VOLUME_YEARS.contains(y) && latest.is_none_or(|l| *y <= l));
            for year in years {
                if self.volumes_asked.insert((*family, year)) {
                    self.queue_volume(*family, year);
                }
            }
        }
        self.open_volumes(fx);
    }

    /// Sends the queued `OpenVolume` requests while fewer than [`MAX_VOLUME_OPENS`]
    /// wait for an answer.
    pub(super) fn open_volumes(&mut self, fx: &mut Effects) {
        if self.conn != Conn::SignedIn {
            return;
        }
        let mut waiting = self
            .internal
            .values()
            .filter(|i| matches!(i, Internal::OpenVolume(..)))
            .count();
        while waiting < MAX_VOLUME_OPENS {
            let Some((_, Reverse(year), family)) = self.volume_queue.pop_first() else {
                break;
            };
            let id = self.next_id();
            self.internal.insert(id, Internal::OpenVolume(family, year));
            fx.send.push(ClientFrame::Request {
                id,
                body: Request::OpenVolume { family, year },
            });
            waiting += 1;
        }
    }

    /// The relay opened the volume: synced from here, and the changes of it that
    /// waited in the outbox go.
    pub(super) fn on_volume_opened(&mut self, family: FamilyId, year: u16, fx: &mut Effects) {
        // Left or deleted meanwhile.
        if self.docs.contains_key(&DocId::from(family)) {
            let mut subs = Vec::new();
            self.want(
                family.volume(year),
                DocKind::Volume(family, year),
                &mut subs,
            );
            Self::subscribe(subs, fx);
            self.relist_outbox(fx);
        }
        self.open_volumes(fx);
    }

    /// The relay did not open the volume: asked again later if the reason passes,
    /// else left unsynced until the next connection (its changes wait in the
    /// outbox). Logged, not shown: the family's member did nothing.
    pub(super) fn on_volume_refused(
        &mut self,
        (family, year): (FamilyId, u16),
        e: &ErrorFrame,
        fx: &mut Effects,
    ) {
        // `conflict`: the relay has not taken the family's sealing yet (a family
        // sealed after its creation, its host's first envelope a moment behind),
        // which passes — a few times, each wait longer; past that, a relay that
        // keeps saying so (one from before volumes of such families, or a family
        // sealed before its id said so whose host has not written since) is asked
        // again on the next connection, not every few seconds of this one.
        let conflicts = if e.code == ErrorCode::Conflict {
            let n = self.volume_conflicts.entry((family, year)).or_default();
            *n = n.saturating_add(1);
            Some(*n)
        } else {
            None
        };
        if let Some(n) = conflicts.filter(|&n| n <= MAX_VOLUME_CONFLICTS) {
            let wait = VOLUME_RETRY_MS << (n - 1);
            tracing::debug!(%family, year, tries = n, wait, "the relay has not taken the family's sealing yet");
            self.volume_retry
                .push((self.now_ms.saturating_add(wait), family, year));
        } else if e.code.is_transient() {
            let wait = e.retry_after_ms.unwrap_or(0).max(VOLUME_RETRY_MS);
            tracing::debug!(%family, year, code = %e.code, wait, "a volume could not be opened now");
            // Still asked (a listing meanwhile does not queue it again) until then.
            self.volume_retry
                .push((self.now_ms.saturating_add(wait), family, year));
        } else if e.code == ErrorCode::QuotaExceeded {
            // The family's cap: every year past it says so (one line each, quietly).
            tracing::debug!(%family, year, "the family's volumes are at the relay's cap: this one is not synced on this connection");
        } else {
            tracing::warn!(%family, year, code = %e.code, message = %e.message, "the relay does not open a volume: it is not synced on this connection");
        }
        self.open_volumes(fx);
    }

    /// Queues again the volumes whose wait after a passing refusal is over.
    pub(super) fn retry_volumes(&mut self, now_ms: u64, fx: &mut Effects) {
        if self.volume_retry.is_empty() || self.conn != Conn::SignedIn {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.volume_retry)
            .into_iter()
            .partition(|(at, _, _)| *at <= now_ms);
        self.volume_retry = later;
        for (_, family, year) in due {
            self.queue_volume(family, year);
        }
        self.open_volumes(fx);
    }

    /// Queues the family's volume of `year` to be opened, in its rank.
    fn queue_volume(&mut self, family: FamilyId, year: u16) {
        let rank = match self.server_year {
            Some(now) if year == now => 0,
            Some(now) if year == now.saturating_add(1) => 1,
            _ => 2,
        };
        self.volume_queue.insert((rank, Reverse(year), family));
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
        self.volume_queue.retain(|(_, _, f)| *f != family);
        self.volume_retry.retain(|(_, f, _)| *f != family);
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
