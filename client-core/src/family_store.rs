//! Opening a family from the local store: instantly from the view cache when it is
//! valid, and keeping that cache right.
//!
//! A UI calls [`cached_family`] to draw its screens at once, then [`open_family`] (on
//! a background thread for a large family) to get the [`FamilyDoc`] it edits and syncs.
//!
//! A family with per-year volumes (issue 17) is several documents, each with a view
//! cache of its own (`family_doc/volume_cache.rs`): the screens read their merged view,
//! and opening loads the family's document and this year's volume, and parks the
//! older years' (their entities read from their caches, their CRDT left in the store
//! until [`load_volume`] is needed).

use std::collections::BTreeMap;

use doran_protocol::{DocId, FamilyId, volume_year};

use crate::{
    error::DocError,
    family_doc::{FamilyDoc, StoredVolume},
    model::Family,
    replica::Actor,
    store::{LocalStore, LogPos, StoreError, StoredDoc},
    view_cache::{self, VIEW_VERSION},
    volume,
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
///
/// With volumes, the family's document's cache and those of the volumes it lists that
/// this device keeps, merged ([`volume::merged`]); `None` as well when one of those
/// volumes has no valid cache.
pub fn cached_family(store: &dyn LocalStore, doc: DocId) -> Result<Option<Family>, StoreError> {
    let Some((core, _)) = cached_with_position(store, doc)? else {
        return Ok(None);
    };
    if core.volumes.is_empty() {
        return Ok(Some(core));
    }
    let family = FamilyId(doc.0);
    let mut parts = Vec::new();
    for &year in &core.volumes {
        let volume = family.volume(year);
        match cached_with_position(store, volume)? {
            Some((part, _)) => parts.push((year, part)),
            // Kept here without a valid cache: opening rebuilds it.
            None if store.log_end(volume)?.is_some() => return Ok(None),
            // Not on this device (yet).
            None => {}
        }
    }
    Ok(Some(volume::merge_parts(core, parts, None, &mut |_, _| {})))
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

/// A family opened for editing and sync, with where each of its documents' logs ended
/// when it was read: a writer holding it open hands the position of the document it
/// writes back with each write ([`LocalStore::commit_local_in_step`]), and compares
/// them with the store's to notice another process's writes.
#[derive(Debug)]
pub struct OpenedFamily {
    /// The family, with this year's volume loaded and older years parked.
    pub family: FamilyDoc,
    /// The log end of the family's document's load.
    pub at: LogPos,
    /// Each listed volume this device keeps: the log end of its load (loaded), or of
    /// its view cache (parked). A listed volume not on this device is not here.
    pub volumes: BTreeMap<u16, LogPos>,
    /// The year opened as this one (what is made now is filed in its volume).
    pub year: u16,
}

/// [`open_family`], and the log end of the load the document was made from: a writer
/// holding the document open hands it back with each write
/// ([`LocalStore::commit_local_in_step`]).
pub fn open_family_at(
    store: &dyn LocalStore,
    doc: DocId,
    actor: &Actor,
) -> Result<(FamilyDoc, LogPos), OpenError> {
    let opened = open_family_in(store, doc, actor, volume_year(crate::store::now_ms()))?;
    Ok((opened.family, opened.at))
}

/// [`open_family_at`] as of a year: with volumes, that year's volume is loaded and the
/// other years' are parked when their view cache is valid (loaded otherwise, and their
/// cache rebuilt).
pub fn open_family_in(
    store: &dyn LocalStore,
    doc: DocId,
    actor: &Actor,
    this_year: u16,
) -> Result<OpenedFamily, OpenError> {
    let (mut family, at) = open_core(store, doc, actor)?;
    let mut volumes = BTreeMap::new();
    let listed: Vec<u16> = family.view().volumes.iter().copied().collect();
    if listed.is_empty() {
        return Ok(OpenedFamily {
            family,
            at,
            volumes,
            year: this_year,
        });
    }
    let id = FamilyId(doc.0);
    let mut park = Vec::new();
    let mut stored: Vec<(u16, StoredDoc, Option<Family>)> = Vec::new();
    for year in listed {
        let volume = id.volume(year);
        let cached = cached_with_position(store, volume)?;
        if year != this_year
            && let Some((part, through)) = cached
        {
            park.push((year, part));
            volumes.insert(year, through);
            continue;
        }
        // Not on this device (yet): the sync brings it.
        let Some(state) = store.load(volume)? else {
            continue;
        };
        // The cache and the log are read in two transactions, as for the core.
        let cached = cached
            .filter(|(_, through)| *through == state.log_end)
            .map(|(part, _)| part);
        // (A volume that does not load is shown from its cache, or left out, as of
        // this log end too: what the store holds of it is what this open read.)
        volumes.insert(year, state.log_end);
        stored.push((year, state, cached));
    }
    let rebuild: Vec<(u16, LogPos)> = stored
        .iter()
        .filter(|(_, _, cached)| cached.is_none())
        .map(|(year, state, _)| (*year, state.log_end))
        .collect();
    let load = stored.iter_mut().map(|(year, state, cached)| StoredVolume {
        year: *year,
        snapshot: state.snapshot.as_deref(),
        chunks: state.changes.iter().map(Vec::as_slice).collect(),
        cached: cached.take(),
    });
    family.open_volumes(load, park, actor)?;
    // A volume that did not load (logged by `open_volumes`) has nothing to cache.
    let loaded: Vec<u16> = family.volume_years().collect();
    for (year, through) in rebuild.into_iter().filter(|(y, _)| loaded.contains(y)) {
        cache_again(
            store,
            id.volume(year),
            through,
            family.cache_rows_of(Some(year)),
        );
        // An older year is kept from its cache from now on, as the next open keeps it.
        if year != this_year {
            family.park_volume(year);
        }
    }
    // What is made now goes to this year's volume, when the family lists it and it is
    // here; else to the family's document, as before volumes.
    if family.volume_years().any(|y| y == this_year) {
        family.file_new_in(Some(this_year))?;
    }
    Ok(OpenedFamily {
        family,
        at,
        volumes,
        year: this_year,
    })
}

/// Loads a parked volume (an edit of what it keeps, or a chunk for it, needs its
/// CRDT: `DocError::VolumeNotLoaded`), rebuilding its cache if that is not valid.
/// Answers the log end of the load (`None`: loaded already, no change); a volume not
/// on this device is `NotFound`.
pub fn load_volume(
    store: &dyn LocalStore,
    family: &mut FamilyDoc,
    year: u16,
    actor: &Actor,
) -> Result<Option<LogPos>, OpenError> {
    if family.volume_years().any(|y| y == year) {
        return Ok(None);
    }
    let id: FamilyId = family
        .view()
        .id
        .parse()
        .map_err(|_| DocError::Schema("the family's document names no family".into()))?;
    let volume = id.volume(year);
    // Only whether the cache is valid matters here: its rows are not decoded.
    let cached_through = store
        .load_view(volume)?
        .filter(|cached| cached.version == VIEW_VERSION)
        .map(|cached| cached.through);
    let Some(state) = store.load(volume)? else {
        return Err(OpenError::NotFound(volume));
    };
    family.attach_volume(
        year,
        state.snapshot.as_deref(),
        state.changes.iter().map(Vec::as_slice),
        actor,
    )?;
    if cached_through != Some(state.log_end) {
        cache_again(
            store,
            volume,
            state.log_end,
            family.cache_rows_of(Some(year)),
        );
    }
    Ok(Some(state.log_end))
}

/// Replaces `doc`'s view cache with `rows` made from its load at `through`; a failure
/// only leaves the cache to be rebuilt at the next open.
pub(crate) fn cache_again(
    store: &dyn LocalStore,
    doc: DocId,
    through: LogPos,
    rows: crate::error::Result<Vec<(String, Vec<u8>)>>,
) {
    match rows.map(|rows| store.replace_view(doc, VIEW_VERSION, through, &rows)) {
        // `false`: something was written since our load; the next open rebuilds.
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => tracing::debug!(%doc, "view cache rebuild raced a write; skipped"),
        Ok(Err(e)) => tracing::warn!(%doc, error = %e, "could not store the view cache"),
        Err(e) => tracing::warn!(%doc, error = %e, "could not encode the view cache"),
    }
}

/// The family's document alone, from its view cache when that is valid.
fn open_core(
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
