//! Opening a family from the local store: instantly from the view cache when it is
//! valid, and keeping that cache right.
//!
//! A UI calls [`cached_family`] to draw its screens at once, then [`open_family`] (on
//! a background thread for a large family) to get the [`FamilyDoc`] it edits and syncs.

use doran_protocol::DocId;

use crate::{
    error::DocError,
    family_doc::FamilyDoc,
    model::Family,
    replica::Actor,
    store::{LocalStore, LogPos, StoreError},
    view_cache::{self, VIEW_VERSION},
};

/// Why a family could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store has no such document.
    #[error("the family {0} is not on this device")]
    NotFound(DocId),
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored bytes are not a readable document.
    #[error(transparent)]
    Doc(#[from] DocError),
}

/// The family as the view cache holds it, if the cache is valid and of this version:
/// enough for every screen, without loading the CRDT. `None` means "open it with
/// [`open_family`]", which also rebuilds the cache.
pub fn cached_family(store: &dyn LocalStore, doc: DocId) -> Result<Option<Family>, StoreError> {
    Ok(cached_with_position(store, doc)?.map(|(family, _)| family))
}

/// The cached family and the log position it reflects.
fn cached_with_position(
    store: &dyn LocalStore,
    doc: DocId,
) -> Result<Option<(Family, LogPos)>, StoreError> {
    let Some(cached) = store.load_view(doc)? else {
        return Ok(None);
    };
    if cached.version != VIEW_VERSION {
        return Ok(None);
    }
    match view_cache::decode_family(&cached.rows) {
        Ok(family) => Ok(Some((family, cached.through))),
        Err(e) => {
            tracing::warn!(%doc, error = %e, "view cache unreadable; it will be rebuilt");
            Ok(None)
        }
    }
}

/// Opens a family for editing and sync. Uses the view cache when it is valid (the
/// document is loaded but not re-read entity by entity); otherwise reads the whole
/// document and rebuilds the cache, so the next open is instant.
pub fn open_family(
    store: &dyn LocalStore,
    doc: DocId,
    actor: &Actor,
) -> Result<FamilyDoc, OpenError> {
    Ok(open_family_at(store, doc, actor)?.0)
}

/// [`open_family`], and the log end of the load the document was made from: a writer
/// holding the document open hands it back with each write
/// ([`LocalStore::commit_local_in_step`]).
pub fn open_family_at(
    store: &dyn LocalStore,
    doc: DocId,
    actor: &Actor,
) -> Result<(FamilyDoc, LogPos), OpenError> {
    let cached = cached_with_position(store, doc)?;
    let stored = store.load(doc)?.ok_or(OpenError::NotFound(doc))?;
    let chunks = stored.changes.iter().map(Vec::as_slice);
    // The cache and the log are read in two transactions: use the cache only if it
    // reflects exactly the log we loaded.
    if let Some((view, through)) = cached
        && through == stored.log_end
    {
        let family = FamilyDoc::load_with_view(stored.snapshot.as_deref(), chunks, actor, view)?;
        return Ok((family, stored.log_end));
    }
    let family = FamilyDoc::load(stored.snapshot.as_deref(), chunks, actor)?;
    match family.cache_rows() {
        Ok(rows) => {
            // `false`: something was written since our load; the next open rebuilds.
            if !store.replace_view(doc, VIEW_VERSION, stored.log_end, &rows)? {
                tracing::debug!(%doc, "view cache rebuild raced a write; skipped");
            }
        }
        Err(e) => tracing::warn!(%doc, error = %e, "could not encode the view cache"),
    }
    Ok((family, stored.log_end))
}
