//! Documents: subscribe (catch-up then live), push (durable, then ack and fan-out),
//! snapshots, and access re-checks after membership changes.

use std::collections::HashSet;

use doran_protocol::{
    ChunkId, DocId, ErrorCode, ErrorFrame, FamilyId, Seq, ServerFrame, Subscription, UserId,
};

use super::{Flow, Me, Session};
use crate::{
    access::{DocAccess, Facts, doc_access},
    error::{ApiError, ApiResult},
    state::{AppState, now_ms},
    store::{DocOwner, Sealing},
};

/// Chunks read from the log per batch during catch-up.
const CATCH_UP_BATCH: usize = 256;

/// Who owns `doc` and what `user` may do with it; `NotFound` for an unknown doc.
pub(crate) async fn access(
    state: &AppState,
    user: UserId,
    doc: DocId,
) -> ApiResult<(DocOwner, DocAccess)> {
    state
        .accounts(move |a| {
            let Some(owner) = a.doc_owner(doc)? else {
                return Ok(None);
            };
            let ids = |u| -> crate::store::StoreResult<Vec<FamilyId>> {
                Ok(a.families_of(u)?.into_iter().map(|f| f.id).collect())
            };
            let records = a.families_of(user)?;
            let mine: Vec<FamilyId> = records.iter().map(|f| f.id).collect();
            let hosted: Vec<FamilyId> = records
                .iter()
                .filter(|f| f.host == user)
                .map(|f| f.id)
                .collect();
            let owners = match owner {
                DocOwner::Personal(o) if o != user => ids(o)?,
                _ => Vec::new(),
            };
            let facts = Facts {
                user,
                user_families: &mine,
                owner_families: &owners,
                hosted: &hosted,
            };
            Ok(Some((owner, doc_access(owner, facts))))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("no such document"))
}

/// A pushed chunk's part in its log's sealing. A document whose id says it is sealed
/// (a family's, any family's volume, or a personal document:
/// `DocOwner::sealed_by_id`) takes envelopes only — the devices seal them, and the
/// relay refuses a clear one too, so a device that would write in the clear cannot
/// leave it on the relay's disk. In a family created clear, the host's first
/// envelope seals its document's log, and the store refuses clear chunks after it
/// and other members' envelopes before it. Key logs, and the
/// personal documents of accounts made before those were sealed, have no rule. The
/// relay reads nothing of a chunk but its first bytes (`doran_protocol::looks_sealed`).
fn sealing(marks: Marks, a: DocAccess, bytes: &[u8]) -> ApiResult<Sealing> {
    let envelope = doran_protocol::looks_sealed(bytes);
    if marks.sealed_by_id {
        if !envelope {
            return Err(ApiError::new(
                ErrorCode::DocumentSealed,
                "the document is sealed: push the change sealed",
            ));
        }
        return Ok(Sealing::Any);
    }
    let Some(family_sealed) = marks.family_sealed else {
        return Ok(Sealing::Any);
    };
    Ok(match (family_sealed, envelope) {
        (true, _) => Sealing::Any,
        (false, false) => Sealing::Clear,
        (false, true) if a.host => Sealing::Seals,
        (false, true) => Sealing::Envelope,
    })
}

/// What a document's id says about the rules of a push to it, worked out once per
/// session and document (kept with its access answer). Each mark is a keyed hash of
/// the id (`DocId::says_volume`, `FamilyId::says_sealed`): three of them on every
/// push before, about 3 % of the relay's instructions per push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marks {
    /// A family's volume (its own quota).
    volume: bool,
    /// Takes envelopes only, by its id (`DocOwner::sealed_by_id`).
    sealed_by_id: bool,
    /// For a family's document (not its key log, see `DocOwner::family_document`):
    /// whether the family's id says it is sealed.
    family_sealed: Option<bool>,
}

impl Marks {
    fn of(owner: DocOwner, doc: DocId) -> Marks {
        Marks {
            volume: matches!(owner, DocOwner::Family(_)) && doc.says_volume(),
            sealed_by_id: owner.sealed_by_id(doc),
            family_sealed: owner.family_document(doc).map(|f| f.says_sealed()),
        }
    }
}

/// Own pushed seqs a session remembers per document (see `fill_gap`).
const OWN_REMEMBERED: usize = 4096;

/// Most access answers a session keeps (a user reaches a few dozen documents).
const ACCESS_CACHE: usize = 1024;

impl Session {
    /// What this session's user may do with `doc`. Granting answers are kept while the
    /// hub's membership epoch is unchanged (a push then costs no store read); refusals
    /// are always asked again, since joining a family does not bump the epoch.
    pub(crate) async fn doc_access(
        &mut self,
        me: Me,
        doc: DocId,
    ) -> ApiResult<(DocOwner, DocAccess)> {
        let (owner, a, _) = self.granted(me, doc).await?;
        Ok((owner, a))
    }

    /// [`doc_access`](Self::doc_access), and what the document's id says.
    async fn granted(&mut self, me: Me, doc: DocId) -> ApiResult<(DocOwner, DocAccess, Marks)> {
        let epoch = self.state.hub.membership_epoch();
        if let Some(&(at, owner, a, marks)) = self.access_cache.get(&doc)
            && at == epoch
        {
            return Ok((owner, a, marks));
        }
        let (owner, a) = access(&self.state, me.user, doc).await?;
        let marks = Marks::of(owner, doc);
        if a.read || a.write {
            if self.access_cache.len() >= ACCESS_CACHE {
                self.access_cache.clear();
            }
            self.access_cache.insert(doc, (epoch, owner, a, marks));
        } else {
            self.access_cache.remove(&doc);
        }
        Ok((owner, a, marks))
    }

    pub(super) async fn on_subscribe(&mut self, me: Me, docs: Vec<Subscription>) -> Flow {
        // A document named twice is caught up once (the first `since` counts): one
        // frame naming the same large document a thousand times made the relay send
        // its log a thousand times.
        let mut seen = HashSet::with_capacity(docs.len());
        for Subscription { doc, since } in docs {
            if !seen.insert(doc) {
                continue;
            }
            // A frame is checked once as it arrives, but its catch-ups can last
            // minutes: a device revoked meanwhile is sent no further document.
            self.still_served().await?;
            match self.doc_access(me, doc).await {
                Ok((_, a)) if a.read => self.catch_up(me, doc, since).await?,
                Ok(_) => {
                    let e = ErrorFrame::new(ErrorCode::Forbidden, "not readable").for_doc(doc);
                    self.send_error(e).await?;
                }
                Err(e) => self.send_error(e.frame().for_doc(doc)).await?,
            }
        }
        Ok(())
    }

    /// Registers the live subscription, then sends snapshot, chunks up to the head,
    /// and `CaughtUp`. Live chunks queued meanwhile are forwarded afterwards, past the
    /// head only.
    async fn catch_up(&mut self, me: Me, doc: DocId, since: Seq) -> Flow {
        self.state.hub.subscribe(me.conn, doc);
        let head = self
            .state
            .logs(move |l| Ok((l.head(doc)?, l.snapshot(doc)?, l.pending_snapshot(doc)?)))
            .await;
        let (head, snapshot, pending) = match head {
            Ok(v) => v,
            Err(e) => {
                self.state.hub.unsubscribe(me.conn, doc);
                return self.send_error(e.frame().for_doc(doc)).await;
            }
        };
        if since > head {
            // The device's cursor is past the log (a forged chunk, a relay restored
            // from a backup). Live delivery goes on from the log's head — a cursor
            // never makes the relay skip chunks — and the device is told to reset.
            self.subs.insert(doc, head);
            return self.send(&ServerFrame::CursorAhead { doc, head }).await;
        }
        // Read after the check in `on_subscribe` (a revocation may have come between).
        self.still_served().await?;
        let mut cursor = since;
        if let Some(s) = snapshot
            && since < s.covers_seq
        {
            self.send(&ServerFrame::Snapshot {
                doc,
                covers_seq: s.covers_seq,
                blob: s.blob,
                len: s.len,
            })
            .await?;
            cursor = s.covers_seq;
        }
        while cursor < head {
            let from = cursor;
            let batch = self
                .state
                .logs(move |l| l.read_since(doc, from, CATCH_UP_BATCH))
                .await;
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    self.state.hub.unsubscribe(me.conn, doc);
                    return self.send_error(e.frame().for_doc(doc)).await;
                }
            };
            // Checked after the read, so no chunk read after a revocation is sent.
            self.still_served().await?;
            let full = batch.len() == CATCH_UP_BATCH;
            for c in batch.into_iter().take_while(|c| c.seq <= head) {
                cursor = c.seq;
                self.pace_catch_up(c.bytes.len()).await?;
                self.send(&ServerFrame::Chunk {
                    doc,
                    seq: c.seq,
                    chunk: c.chunk,
                    author: c.author,
                    bytes: c.bytes,
                })
                .await?;
            }
            if !full {
                break;
            }
        }
        // Offered before `CaughtUp`, so a device that is to check it knows so before
        // it counts itself caught up.
        self.offer_pending(doc, pending).await?;
        self.subs.insert(doc, head);
        self.send(&ServerFrame::CaughtUp { doc, seq: head }).await
    }

    /// Waits until `bytes` more of catch-up may be sent on this connection (its
    /// catch-up budget), writing out what is queued meanwhile. Stops the catch-up if
    /// the device is revoked or the connection dropped, before or while it waits: a
    /// slow reader's catch-up waits most of its time here.
    async fn pace_catch_up(&mut self, bytes: usize) -> Flow {
        loop {
            self.still_served().await?;
            let now = tokio::time::Instant::now();
            match self.catch_up.try_take_n(bytes as f64, now.into_std()) {
                Ok(()) => return Ok(()),
                Err(wait) => {
                    self.flush().await?;
                    tokio::select! {
                        () = tokio::time::sleep_until(now + wait) => {}
                        () = self.state.shutdown.cancelled() => return Err(super::Disconnect),
                        // The check at the top of the loop says goodbye or drops it.
                        () = self.tokens.revoked.cancelled() => {}
                        () = self.tokens.cancel.cancelled() => {}
                    }
                }
            }
        }
    }

    pub(super) async fn on_push(
        &mut self,
        me: Me,
        doc: DocId,
        chunk: ChunkId,
        bytes: Vec<u8>,
    ) -> Flow {
        match self.push(me, doc, chunk, bytes).await {
            Ok(seq) => {
                if self.state.cluster.is_shared() {
                    self.remember_own(doc, seq);
                }
                self.send(&ServerFrame::Ack { doc, chunk, seq }).await
            }
            Err(e) => {
                self.send_error(e.frame().for_doc(doc).for_chunk(chunk))
                    .await
            }
        }
    }

    /// Appends durably (a group commit), stamped with this session's user as its
    /// author, then the appender fans the chunk out to the other subscribers; returns
    /// the seq. The relay never reads the chunk: devices check that its changes are
    /// written under the author's actor ids.
    async fn push(&mut self, me: Me, doc: DocId, chunk: ChunkId, bytes: Vec<u8>) -> ApiResult<Seq> {
        let (owner, a, marks) = self.granted(me, doc).await?;
        if !a.write {
            return Err(ApiError::forbidden("not writable"));
        }
        let limits = &self.state.config.limits;
        let quota = match owner {
            DocOwner::Family(_) if marks.volume => limits.volume_log_quota_bytes,
            DocOwner::Family(_) => limits.family_log_quota_bytes,
            DocOwner::Personal(_) | DocOwner::PersonalKeys(_) => limits.personal_log_quota_bytes,
        };
        let sealing = sealing(marks, a, &bytes)?;
        let appended = self
            .state
            .appender
            .append(
                (doc, chunk, bytes),
                me.user,
                now_ms(),
                (quota, sealing),
                me.conn,
            )
            .await?;
        Ok(appended.seq)
    }

    /// Notes a seq this connection pushed (it is not sent back to it).
    fn remember_own(&mut self, doc: DocId, seq: Seq) {
        let Some(&delivered) = self.subs.get(&doc) else {
            return;
        };
        if seq <= delivered {
            return;
        }
        let own = self.own.entry(doc).or_default();
        if own.len() >= OWN_REMEMBERED {
            // Forgetting only costs a read of the connection's own chunks later.
            own.clear();
        }
        own.insert(seq);
    }

    /// Sends the chunks of `doc` after `delivered` and before `next` that this
    /// connection has neither been sent nor pushed itself, read from the log (a
    /// snapshot first, if one now covers some of them). Used in a cluster, where a
    /// chunk appended on this relay can reach the hub before an earlier one announced
    /// by another relay.
    pub(super) async fn fill_gap(&mut self, doc: DocId, delivered: Seq, next: Seq) -> Flow {
        let own = self.own.remove(&doc).unwrap_or_default();
        let missing = (delivered + 1..next).any(|s| !own.contains(&s));
        let mut rest = own;
        rest.retain(|&s| s > next);
        if !rest.is_empty() {
            self.own.insert(doc, rest);
        }
        if !missing {
            return Ok(());
        }
        let mut cursor = delivered;
        let snapshot = match self.state.logs(move |l| l.snapshot(doc)).await {
            Ok(snapshot) => snapshot,
            Err(e) => return self.send_error(e.frame().for_doc(doc)).await,
        };
        if let Some(s) = snapshot
            && s.covers_seq > cursor
            && s.covers_seq < next
        {
            self.send(&ServerFrame::Snapshot {
                doc,
                covers_seq: s.covers_seq,
                blob: s.blob,
                len: s.len,
            })
            .await?;
            cursor = s.covers_seq;
        }
        while cursor + 1 < next {
            let from = cursor;
            let want = usize::try_from(next - 1 - from)
                .unwrap_or(usize::MAX)
                .min(CATCH_UP_BATCH);
            let batch = match self
                .state
                .logs(move |l| l.read_since(doc, from, want))
                .await
            {
                Ok(batch) => batch,
                Err(e) => return self.send_error(e.frame().for_doc(doc)).await,
            };
            let Some(last) = batch.last().map(|c| c.seq) else {
                break;
            };
            for c in batch.into_iter().filter(|c| c.seq < next) {
                self.send(&ServerFrame::Chunk {
                    doc,
                    seq: c.seq,
                    chunk: c.chunk,
                    author: c.author,
                    bytes: c.bytes,
                })
                .await?;
            }
            cursor = last;
        }
        Ok(())
    }

    /// After a membership change: drops the subscriptions this user may no longer
    /// read, with a `Forbidden` error frame for each.
    pub(super) async fn recheck_subscriptions(&mut self) -> Flow {
        let Some(me) = self.me() else {
            return Ok(());
        };
        let docs: Vec<DocId> = self.subs.keys().copied().collect();
        for doc in docs {
            let keep = match access(&self.state, me.user, doc).await {
                Ok((_, a)) => a.read,
                // A storage hiccup is not a reason to cut a subscription.
                Err(e) => e.code == ErrorCode::Internal,
            };
            if !keep {
                self.state.hub.unsubscribe(me.conn, doc);
                self.subs.remove(&doc);
                let e = ErrorFrame::new(ErrorCode::Forbidden, "access to this document ended")
                    .for_doc(doc);
                self.send_error(e).await?;
            }
        }
        Ok(())
    }
}
