//! The blob sweep: deletes blob files that nothing references any more.
//!
//! A blob is referenced while an upload grant (to a live family or to a user), a
//! snapshot reference, or a release still in its grace holds it
//! ([`AccountStore::blob_referenced`](crate::store::AccountStore::blob_referenced)).
//! Every `blob_gc_interval_secs` the sweep forgets the releases older than
//! `blob_gc_grace_secs`, then pages through the blob store and deletes each blob that
//! was stored before the grace and that nothing references — checked again under the
//! exclusive side of [`AppState::blob_gc`], which an upload holds (shared) from
//! publishing its bytes until they are granted. So a blob being uploaded, granted,
//! kept as a snapshot or released a moment ago is never deleted; a replaced snapshot,
//! a deleted family's photos and leftovers of failed uploads are.
//!
//! Each sweep also deletes finished link codes, link requests and invites past their
//! retention ([`LINK_RETENTION_MS`], [`INVITE_RETENTION_MS`]).
//!
//! The grace is what makes a database backup safe to pair with a blob copy taken up to
//! that long afterwards (see `docs/operations.md`).

use std::{sync::Arc, time::Duration};

use doran_protocol::BlobHash;

use crate::{
    error::ApiResult,
    metrics::{add, inc},
    state::{AppState, blocking, now_ms},
    store::StoredBlob,
};

/// Blobs looked at per step (one trip to the blocking pool, one hold of the lock).
const PAGE: usize = 512;

/// How long an expired link code or link request is kept before the sweep deletes
/// it: a day, so a device presenting a code shortly after it expired is still told
/// `link_expired` rather than "unknown", and nothing piles up.
pub const LINK_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;

/// How long an answered, withdrawn or expired invite is kept before the sweep deletes
/// it: 30 days, so a late answer is still told what became of the invite
/// (`invite_answered`, `invite_withdrawn`, `invite_expired`), not "unknown".
pub const INVITE_RETENTION_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Blobs looked at.
    pub seen: usize,
    /// Blobs deleted.
    pub deleted: usize,
}

/// Sweeps at start and then every `blob_gc_interval_secs`, until shutdown.
pub async fn run(state: Arc<AppState>) {
    let every = Duration::from_secs(state.config.limits.blob_gc_interval_secs.max(1));
    loop {
        match sweep(&state).await {
            Ok(s) if s.deleted > 0 => {
                tracing::info!(seen = s.seen, deleted = s.deleted, "blob sweep");
            }
            Ok(s) => tracing::debug!(seen = s.seen, "blob sweep"),
            Err(e) => tracing::warn!(error = %e, "blob sweep failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = state.shutdown.cancelled() => return,
        }
    }
}

/// One sweep over the whole blob store.
pub async fn sweep(state: &AppState) -> ApiResult<Swept> {
    let grace_ms = state.config.limits.blob_gc_grace_secs.saturating_mul(1000);
    let before = now_ms().saturating_sub(grace_ms);
    // Expired pending snapshots release their blobs first, so the grace starts now.
    crate::session::expire_pending(state).await?;
    // The sweep is the relay's periodic housekeeping: finished link codes, link
    // requests and invites go too, so they cannot pile up in the database.
    let now = now_ms();
    let purged = state
        .accounts(move |a| {
            a.purge_finished(
                now.saturating_sub(LINK_RETENTION_MS),
                now.saturating_sub(INVITE_RETENTION_MS),
            )
        })
        .await?;
    if purged > 0 {
        tracing::info!(
            purged,
            "finished link codes, link requests and invites deleted"
        );
    }
    state
        .accounts(move |a| a.expire_blob_releases(before))
        .await?;
    let mut swept = Swept::default();
    let mut after: Option<BlobHash> = None;
    loop {
        let from = after;
        let page = state.blobs(move |b| b.list(from, PAGE)).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.hash);
        swept.seen += page.len();
        let old: Vec<StoredBlob> = page.into_iter().filter(|b| b.stored_at < before).collect();
        if old.is_empty() {
            continue;
        }
        // No upload is between publishing and granting while this is held (on any
        // relay of a cluster).
        let _exclusive = state.blob_gc.write().await;
        let _everywhere = state.cluster.blob_gc_exclusive().await?;
        let stores = state.stores.clone();
        let deleted = blocking(move || {
            let mut deleted = 0;
            for b in old {
                if !stores.accounts.blob_referenced(b.hash)? && stores.blobs.delete(b.hash)? {
                    tracing::debug!(hash = %b.hash, size = b.size, "blob deleted");
                    deleted += 1;
                }
            }
            Ok(deleted)
        })
        .await?;
        swept.deleted += deleted;
        add(&state.metrics.blobs_deleted, deleted as u64);
    }
    inc(&state.metrics.blob_sweeps);
    Ok(swept)
}
