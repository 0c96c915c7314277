//! Snapshots: a pushed snapshot is only *pending* until a device of another member
//! (another device, for a personal document) has loaded it and confirmed that it
//! contains every change it replaces; only then does the log drop the chunks it
//! covers. Until then catch-ups are served from the last confirmed snapshot and the
//! chunks, so a member pointing the snapshot slot at a photo or an empty document
//! cannot wipe the relay's copy of the family.

use doran_protocol::{BlobHash, DocId, ErrorCode, Response, Seq, ServerFrame, UserId};

use super::{Flow, Me, Session, docs::access, requests::Ctx};
use crate::{
    error::{ApiError, ApiResult},
    hub::HubMsg,
    state::{AppState, now_ms},
    store::{BlobGrantee, DocOwner, PendingPut, PendingSnapshot, SnapshotRef},
};

/// Whose quota a snapshot of a document owned by `owner` counts in.
fn grantee(owner: DocOwner) -> BlobGrantee {
    match owner {
        DocOwner::Family(f) => BlobGrantee::Family(f),
        DocOwner::Personal(u) | DocOwner::PersonalKeys(u) => BlobGrantee::User(u),
    }
}

/// The oldest push time of a pending snapshot that has not expired at `now`.
pub(crate) fn pending_since(state: &AppState, now: u64) -> u64 {
    let ttl_ms = state
        .config
        .limits
        .pending_snapshot_ttl_secs
        .saturating_mul(1000);
    now.saturating_sub(ttl_ms)
}

/// The frame that offers `p` to the devices of `doc`.
pub(crate) fn offer(doc: DocId, p: &PendingSnapshot) -> ServerFrame {
    ServerFrame::PendingSnapshot {
        doc,
        covers_seq: p.snapshot.covers_seq,
        blob: p.snapshot.blob,
        len: p.snapshot.len,
        by: p.by,
        by_device: p.by_device,
    }
}

/// Withdraws the snapshot reference of `blob` for `doc` (releasing the blob at `at`,
/// so it is swept after the grace), unless the document's confirmed or pending
/// snapshot is that very blob: a member re-pushing the current snapshot's blob under
/// another seq must not make the family's snapshot unreadable.
pub(crate) async fn release_snapshot_ref(
    state: &AppState,
    doc: DocId,
    blob: BlobHash,
    at: u64,
) -> ApiResult<()> {
    let (confirmed, pending) = state
        .logs(move |l| Ok((l.snapshot(doc)?, l.pending_snapshot(doc)?)))
        .await?;
    let in_use = confirmed.is_some_and(|s| s.blob == blob)
        || pending.is_some_and(|p| p.snapshot.blob == blob);
    if !in_use {
        state
            .accounts(move |a| a.drop_snapshot_ref(doc, blob, at))
            .await?;
    }
    Ok(())
}

/// Forgets the pending snapshots older than `pending_snapshot_ttl_secs` and releases
/// their blobs; returns how many. Run with the blob sweep.
pub(crate) async fn expire_pending(state: &AppState) -> ApiResult<usize> {
    let now = now_ms();
    let before = pending_since(state, now);
    let expired = state
        .logs(move |l| l.expire_pending_snapshots(before))
        .await?;
    for (doc, p) in &expired {
        tracing::info!(%doc, covers_seq = p.snapshot.covers_seq, by = %p.by, "pending snapshot expired unconfirmed");
        release_snapshot_ref(state, *doc, p.snapshot.blob, now).await?;
    }
    Ok(expired.len())
}

/// Whether `blob` is sealed, if `doc` is sealed (its id says so — a family's or a
/// personal document — or its family's host sealed its log): such a document takes
/// sealed snapshots only, pushed or
/// confirmed, since a clear one would put its plaintext back on the relay's disk — a
/// clear snapshot pushed just before the sealing included. The relay reads the blob's
/// first bytes, nothing more. `refusal` is the message of the `document_sealed` error.
async fn check_snapshot_sealing(
    state: &AppState,
    owner: DocOwner,
    (doc, blob): (DocId, BlobHash),
    refusal: &'static str,
) -> ApiResult<()> {
    let sealed = if owner.sealed_by_id(doc) {
        true
    } else if owner.family_document(doc).is_some() {
        state.logs(move |l| l.log_sealed(doc)).await?
    } else {
        false
    };
    if !sealed {
        return Ok(());
    }
    let head = state.blobs(move |b| b.read(blob, 0, 3)).await?;
    if doran_protocol::looks_sealed(&head) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::DocumentSealed, refusal))
    }
}

impl Session {
    pub(super) async fn on_push_snapshot(
        &mut self,
        me: Me,
        doc: DocId,
        covers_seq: Seq,
        blob: BlobHash,
        len: u64,
    ) -> Flow {
        match self.push_snapshot(me, doc, covers_seq, blob, len).await {
            Ok(()) => {
                self.send(&ServerFrame::SnapshotAccepted { doc, covers_seq })
                    .await
            }
            Err(e) => self.send_error(e.frame().for_doc(doc)).await,
        }
    }

    /// Records a pushed snapshot as pending (dropping no chunk) and offers it to the
    /// document's subscribers on this relay.
    async fn push_snapshot(
        &mut self,
        me: Me,
        doc: DocId,
        covers_seq: Seq,
        blob: BlobHash,
        len: u64,
    ) -> ApiResult<()> {
        let (owner, a) = self.doc_access(me, doc).await?;
        if !a.write {
            return Err(ApiError::forbidden("not writable"));
        }
        // A family's key log is never compacted: a device that was offline for months
        // needs every Commit since its epoch. It is the key log of a family exactly
        // when its XOR names one (no document's id can, see `FamilyId::key_log`).
        let family = doc.key_log_family();
        if matches!(owner, DocOwner::PersonalKeys(_))
            || self
                .state
                .accounts(move |a| a.family(family))
                .await?
                .is_some()
        {
            return Err(ApiError::forbidden("a family's key log is never compacted"));
        }
        let user = me.user;
        let granted = self
            .state
            .accounts(move |a| a.blob_granted(user, blob))
            .await?;
        let size = self.state.blobs(move |b| b.size(blob)).await?;
        if !granted || size.is_none() {
            return Err(ApiError::not_found("upload the snapshot blob first"));
        }
        if size != Some(len) {
            return Err(ApiError::new(
                ErrorCode::InvalidInput,
                "len is not the blob's size",
            ));
        }
        check_snapshot_sealing(
            &self.state,
            owner,
            (doc, blob),
            "the document is sealed: push the snapshot sealed",
        )
        .await?;
        let now = now_ms();
        self.hold_back_replacement(doc, user, (covers_seq, blob), now)
            .await?;
        let pending = PendingSnapshot {
            snapshot: SnapshotRef {
                covers_seq,
                blob,
                len,
            },
            by: me.user,
            by_device: me.device,
            at: now,
        };
        // Whoever may read the document may read its snapshot, pending or not: a
        // snapshot reference, kept apart from upload grants, so withdrawing it never
        // touches an upload grant of the same blob (a member's photo stays the
        // family's). Referenced first, so it is readable (and safe from the sweep)
        // before it is offered.
        let to = grantee(owner);
        self.state
            .accounts(move |a| a.add_snapshot_ref(doc, to, blob, len))
            .await?;
        let put = self
            .state
            .logs(move |l| l.put_pending_snapshot(doc, &pending))
            .await;
        match put {
            Ok(PendingPut::Recorded(replaced)) => {
                // The pusher's own, sole upload of these bytes now belongs to the
                // snapshot: it goes with it if it is replaced or expires (a member's
                // photo, uploaded by someone else, is never taken over).
                let user = me.user;
                self.state
                    .accounts(move |a| a.adopt_snapshot_upload(doc, to, blob, user))
                    .await?;
                if let Some(r) = replaced.filter(|r| r.snapshot.blob != blob) {
                    release_snapshot_ref(&self.state, doc, r.snapshot.blob, now).await?;
                }
                // Subscribers of other relays of a cluster get it with their next
                // catch-up.
                if let Some(msg) = HubMsg::doc_frame(doc, &offer(doc, &pending)) {
                    self.state.hub.send_to_doc(doc, &msg);
                }
                tracing::info!(%doc, covers_seq, by = %me.user, "snapshot pending");
            }
            Ok(PendingPut::Same) => {}
            // The confirmed snapshot covers as much already: nothing to confirm.
            Ok(PendingPut::Stale) => {
                release_snapshot_ref(&self.state, doc, blob, now).await?;
            }
            Err(e) => {
                let _ = release_snapshot_ref(&self.state, doc, blob, now).await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Refuses (`rate_limited`, with when to try again) `user`'s snapshot of `doc`
    /// that would replace, sooner than `snapshot_replace_secs` after it, a pending
    /// snapshot of theirs that is not this one: each replacement is offered to every
    /// member's device, which downloads and checks it. Checked before the snapshot is
    /// referenced, so a refusal changes nothing.
    async fn hold_back_replacement(
        &self,
        doc: DocId,
        user: UserId,
        (covers_seq, blob): (Seq, BlobHash),
        now: u64,
    ) -> ApiResult<()> {
        let wait_ms = self
            .state
            .config
            .limits
            .snapshot_replace_secs
            .saturating_mul(1000);
        if wait_ms == 0 {
            return Ok(());
        }
        let Some(p) = self.state.logs(move |l| l.pending_snapshot(doc)).await? else {
            return Ok(());
        };
        let same = p.snapshot.covers_seq == covers_seq && p.snapshot.blob == blob;
        let due = p.at.saturating_add(wait_ms);
        let live = p.at >= pending_since(&self.state, now);
        if p.by == user && !same && live && now < due {
            tracing::info!(%doc, %user, covers_seq, "snapshot replaced too soon");
            return Err(ApiError::rate_limited(due - now));
        }
        Ok(())
    }

    /// At the end of a catch-up (before `CaughtUp`): offers the document's pending
    /// snapshot, if one has not expired, so a device that was away can confirm it.
    pub(super) async fn offer_pending(
        &mut self,
        doc: DocId,
        pending: Option<PendingSnapshot>,
    ) -> Flow {
        let since = pending_since(&self.state, now_ms());
        match pending.filter(|p| p.at >= since) {
            Some(p) => self.send(&offer(doc, &p)).await,
            None => Ok(()),
        }
    }
}

impl Ctx<'_> {
    /// `ConfirmSnapshot`: the pending snapshot becomes the document's snapshot and the
    /// chunks it covers are dropped, if a device that may read the document and is
    /// not the pusher's (another member's for a family document; another device for
    /// a personal one) vouches for it.
    pub(crate) async fn confirm_snapshot(
        &self,
        doc: DocId,
        covers_seq: Seq,
        blob: BlobHash,
    ) -> ApiResult<Response> {
        let me = self.me;
        let (owner, a) = access(self.state, me.user, doc).await?;
        if !a.read {
            return Err(ApiError::forbidden("not readable"));
        }
        let now = now_ms();
        let since = pending_since(self.state, now);
        let pending = self.state.logs(move |l| l.pending_snapshot(doc)).await?;
        let Some(p) = pending.filter(|p| {
            p.snapshot.covers_seq == covers_seq && p.snapshot.blob == blob && p.at >= since
        }) else {
            return Err(ApiError::not_found("no such pending snapshot"));
        };
        let own = match owner {
            DocOwner::Family(_) => p.by == me.user,
            DocOwner::Personal(_) | DocOwner::PersonalKeys(_) => p.by_device == me.device,
        };
        if own {
            return Err(ApiError::forbidden(
                "a snapshot is confirmed by another member's device",
            ));
        }
        check_snapshot_sealing(
            self.state,
            owner,
            (doc, blob),
            "the document is sealed: a clear snapshot is not confirmed",
        )
        .await?;
        // The blob must still be there (a reference lost in a race may have let the
        // sweep take it): a confirmed snapshot that cannot be fetched stalls every
        // new device.
        if self.state.blobs(move |b| b.size(blob)).await? != Some(p.snapshot.len) {
            return Err(ApiError::not_found("the snapshot blob is gone"));
        }
        let to = grantee(owner);
        let len = p.snapshot.len;
        // Referenced (again: idempotent) before the log serves it.
        self.state
            .accounts(move |a| a.add_snapshot_ref(doc, to, blob, len))
            .await?;
        let p = self
            .state
            .logs(move |l| l.confirm_snapshot(doc, covers_seq, blob, since))
            .await?;
        // Withdraw the references of the snapshots it replaces (their blobs are
        // released, then swept), and take over the pusher's own upload grant of the
        // snapshot's bytes, so they count once and go with the snapshot.
        let by = p.by;
        self.state
            .accounts(move |a| a.settle_snapshot(doc, to, blob, by, now))
            .await?;
        tracing::info!(%doc, covers_seq, by = %p.by, confirmed_by = %me.user, "snapshot confirmed; covered chunks dropped");
        Ok(Response::Done)
    }

    /// `RejectSnapshot`: a device found the pending snapshot missing changes. Logged;
    /// the relay keeps every chunk, and the pending snapshot expires unconfirmed
    /// unless another device confirms it.
    pub(crate) async fn reject_snapshot(
        &self,
        doc: DocId,
        covers_seq: Seq,
        blob: BlobHash,
    ) -> ApiResult<Response> {
        let me = self.me;
        let (_, a) = access(self.state, me.user, doc).await?;
        if !a.read {
            return Err(ApiError::forbidden("not readable"));
        }
        let pending = self.state.logs(move |l| l.pending_snapshot(doc)).await?;
        let by = pending
            .filter(|p| p.snapshot.covers_seq == covers_seq && p.snapshot.blob == blob)
            .map(|p| p.by);
        tracing::warn!(%doc, covers_seq, %blob, pushed_by = ?by, rejected_by = %me.user, device = %me.device, "a device found a pending snapshot missing changes");
        Ok(Response::Done)
    }
}
