//! A family's volumes in the device's view cache (issue 17).
//!
//! Each document — the family's and every volume — has a view cache of its own, of
//! what that document holds, valid as of that document's log: a write to one document
//! writes its rows in its own transaction and leaves the others' caches valid, so the
//! store needs nothing new. The screens read the merged view of them
//! ([`crate::volume::merged`], `family_store::cached_family`). A volume whose CRDT no
//! screen needs — an older year — is *parked*: its entities are in the view, read from
//! its cache, and its CRDT stays in the store until an edit of it or a chunk for it
//! comes (`VolumeNotLoaded`; then [`FamilyDoc::attach_volume`]).

use std::collections::{BTreeMap, HashMap};

use doran_protocol::VOLUME_YEARS;

use super::{
    FamilyDoc,
    merged_view::read_entity,
    volumes::{hydrate_part, kept},
};
use crate::{
    error::{DocError, Result},
    model::Family,
    replica::{Actor, Touched},
    store::ViewRow,
    view_cache, volume,
};

/// A volume known from its view cache, its CRDT not loaded.
#[derive(Debug, Default)]
pub(super) struct Parked {
    /// Its calendar entries, missions, photos and voice messages the view does not
    /// show from it: hidden by a hide record, or kept in an earlier document too.
    /// Those it shows are in the view only (no second copy in memory).
    pub(super) rest: Family,
    /// Its counters and marks.
    pub(super) counts: BTreeMap<String, i64>,
}

/// A volume's stored state, to load with [`FamilyDoc::open_volumes`].
#[derive(Debug)]
pub struct StoredVolume<'a> {
    /// Its year.
    pub year: u16,
    /// Its stored snapshot, if any.
    pub snapshot: Option<&'a [u8]>,
    /// Its stored changes after the snapshot.
    pub chunks: Vec<&'a [u8]>,
    /// What its view cache holds, when that is valid as of this very state: the
    /// volume is then not read entity by entity.
    pub cached: Option<Family>,
}

impl FamilyDoc {
    /// Attaches the family's volumes at once, as a device opening the family does:
    /// those in `load` are loaded (this year's, to edit and sync), those in `park` (a
    /// year and what its view cache holds) are read into the view only. The view is
    /// merged once. A volume attached already is left as it is; on error nothing
    /// changed.
    pub fn open_volumes<'a>(
        &mut self,
        load: impl IntoIterator<Item = StoredVolume<'a>>,
        park: impl IntoIterator<Item = (u16, Family)>,
        actor: &Actor,
    ) -> Result<()> {
        let attached = |fd: &FamilyDoc, year: &u16| {
            fd.volumes.contains_key(year) || fd.parked.contains_key(year)
        };
        let mut given = BTreeMap::new();
        let mut loaded = Vec::new();
        let mut parked = Vec::new();
        for v in load {
            if attached(self, &v.year) || given.contains_key(&v.year) {
                continue;
            }
            match self.load_volume_replica(v.year, v.snapshot, v.chunks, actor) {
                Ok(replica) => {
                    let part = v.cached.unwrap_or_else(|| hydrate_part(replica.doc()));
                    given.insert(v.year, part);
                    loaded.push((v.year, replica));
                }
                // The caller's mistake, or the family's document's: nothing is opened.
                Err(e @ (DocError::Forbidden(_) | DocError::BadDate(_) | DocError::Schema(_))) => {
                    return Err(e);
                }
                // A volume whose stored bytes do not load (a damaged snapshot) keeps
                // no one from the rest of the family: shown from its cache if it has
                // one, else left out, and logged.
                Err(e) => {
                    tracing::warn!(year = v.year, error = %e, "a volume of the family does not load");
                    if let Some(part) = v.cached {
                        given.insert(v.year, part);
                        parked.push(v.year);
                    }
                }
            }
        }
        for (year, part) in park {
            if !VOLUME_YEARS.contains(&year) {
                return Err(DocError::BadDate(format!("no volume of {year}")));
            }
            if attached(self, &year) || given.contains_key(&year) {
                continue;
            }
            given.insert(year, part);
            parked.push(year);
        }
        if given.is_empty() {
            return Ok(());
        }
        // Before any volume the view is the core's (as its own cache holds it).
        let core = if self.has_volumes() {
            self.core_part()
        } else {
            std::mem::take(&mut self.view)
        };
        self.volumes.extend(loaded);
        for year in parked {
            self.parked.insert(year, Parked::default());
        }
        self.merge_volumes(core, given);
        Ok(())
    }

    /// Sets the view to the merged view of `core` (the family's document, read whole)
    /// and every attached volume: its part from `given`, else read whole from its
    /// document, or — parked — from the view and what it kept aside.
    pub(super) fn merge_volumes(&mut self, core: Family, mut given: BTreeMap<u16, Family>) {
        let mut parts: Vec<(u16, Family, bool)> = Vec::new();
        for (year, replica) in &self.volumes {
            let part = given
                .remove(year)
                .unwrap_or_else(|| hydrate_part(replica.doc()));
            parts.push((*year, part, false));
        }
        let parked: Vec<u16> = self.parked.keys().copied().collect();
        for year in parked {
            let part = match given.remove(&year) {
                Some(part) => part,
                None => self.parked_part(year),
            };
            parts.push((year, part, true));
        }
        self.own_counts.clear();
        self.own_counts.insert(None, core.counts.clone());
        let mut parked = BTreeMap::new();
        for (year, part, is_parked) in &parts {
            if *is_parked {
                let counts = part.counts.clone();
                parked.insert(
                    *year,
                    Parked {
                        rest: Family::default(),
                        counts,
                    },
                );
            } else {
                self.own_counts.insert(Some(*year), part.counts.clone());
            }
        }
        // What a parked volume does not show is kept aside with it (the volume's CRDT
        // is not there to read it again); a loaded one's is read from its document.
        let mut places = HashMap::new();
        let view = volume::merge_parts(
            core,
            parts.into_iter().map(|(year, part, _)| (year, part)),
            Some(&mut places),
            &mut |year, aside| {
                if let Some(p) = parked.get_mut(&year) {
                    keep_aside(&mut p.rest, aside);
                }
            },
        );
        self.view = view;
        self.places = places;
        self.parked = parked;
    }

    /// Unloads the volume of `year`, keeping its entities in the view as a parked
    /// volume does (after its view cache was rebuilt: the next open parks it anyway).
    /// The volume new entities are filed in stays loaded.
    pub fn park_volume(&mut self, year: u16) {
        if self.new_in == Some(year) {
            return;
        }
        let Some(replica) = self.volumes.remove(&year) else {
            return;
        };
        let part = hydrate_part(replica.doc());
        self.own_counts.remove(&Some(year));
        let places = &self.places;
        let rest = Family {
            calendar: not_shown(places, year, "calendar", part.calendar),
            missions: not_shown(places, year, "missions", part.missions),
            photos: not_shown(places, year, "photos", part.photos),
            voices: not_shown(places, year, "voices", part.voices),
            ..Family::default()
        };
        self.parked.insert(
            year,
            Parked {
                rest,
                counts: part.counts,
            },
        );
    }

    /// A parked volume read whole again: what it kept aside and what the view shows
    /// from it (taken out of the parked volume: the caller merges it anew).
    fn parked_part(&mut self, year: u16) -> Family {
        let Parked {
            rest: mut part,
            counts,
        } = self.parked.remove(&year).unwrap_or_default();
        part.counts = counts;
        for ((collection, id), at) in &self.places {
            if *at == year {
                copy_kept(&self.view, &mut part, collection, id);
            }
        }
        part
    }

    /// Adds to `ids` the photos ("albums") and voice messages ("voice_albums") of
    /// `albums` the parked volumes keep, shown or set aside.
    pub(super) fn parked_entities_of(
        &self,
        albums: &std::collections::BTreeSet<(&'static str, String)>,
        ids: &mut Vec<(&'static str, String)>,
    ) {
        let of = |container: &'static str, album: &str| albums.contains(&(container, album.into()));
        let parked_place = |collection: &'static str, id: &String| {
            self.places
                .get(&(collection, id.clone()))
                .is_some_and(|year| self.parked.contains_key(year))
        };
        for parked in self.parked.values() {
            for (id, p) in &parked.rest.photos {
                if of("albums", &p.album_id) {
                    ids.push(("photos", id.clone()));
                }
            }
            for (id, m) in &parked.rest.voices {
                if of("voice_albums", &m.album_id) {
                    ids.push(("voices", id.clone()));
                }
            }
        }
        for (id, p) in &self.view.photos {
            if of("albums", &p.album_id) && parked_place("photos", id) {
                ids.push(("photos", id.clone()));
            }
        }
        for (id, m) in &self.view.voices {
            if of("voice_albums", &m.album_id) && parked_place("voices", id) {
                ids.push(("voices", id.clone()));
            }
        }
    }

    /// The view-cache rows a change of the document `year` (`None`: the family's)
    /// rewrites: with volumes attached, each document's cache holds what that
    /// document holds — its own entities and counters — which the merged view is made
    /// of. `None` (drop that cache) if they could not be encoded.
    pub(super) fn doc_rows(&self, year: Option<u16>, touched: &[Touched]) -> Option<Vec<ViewRow>> {
        if !self.has_volumes() {
            return self.view_rows(touched);
        }
        let doc = match year {
            None => self.replica.doc(),
            Some(year) => self.volumes.get(&year)?.doc(),
        };
        let mut part = Family::default();
        if touched.iter().any(|t| matches!(t, Touched::Root(_))) {
            if year.is_none() {
                let v = &self.view;
                (part.schema, part.id, part.name) = (v.schema, v.id.clone(), v.name.clone());
                (part.created_at, part.created_by) = (v.created_at, v.created_by.clone());
                (part.volumes, part.hidden) = (v.volumes.clone(), v.hidden.clone());
            }
            part.counts = self.own_counts.get(&year).cloned().unwrap_or_default();
        }
        for t in touched {
            let Touched::Entity(collection, id) = t else {
                continue;
            };
            let v = &self.view;
            // The view shows the entity from this very document (the usual case):
            // what it holds is there, read already; else read it from the document.
            let shown_here = |collection: &'static str| {
                self.places.get(&(collection, id.clone())).copied() == year
            };
            match kept(collection) {
                Some(kept) if shown_here(kept) => copy_kept(v, &mut part, kept, id),
                Some(kept) => read_kept(doc, &mut part, kept, id),
                // Members, albums and voice albums: the family's document's only.
                None if year.is_none() => match collection.as_str() {
                    "members" => copy(&v.members, &mut part.members, id),
                    "albums" => copy(&v.albums, &mut part.albums, id),
                    "voice_albums" => copy(&v.voice_albums, &mut part.voice_albums, id),
                    _ => {}
                },
                None => {}
            }
        }
        match view_cache::rows_for(&part, touched) {
            Ok(rows) => Some(rows),
            Err(e) => {
                tracing::warn!(error = %e, "could not encode view rows; the cache will be rebuilt");
                None
            }
        }
    }

    /// Every view-cache row of the document `year` (`None`: the family's), to rebuild
    /// its cache: what that document holds. A parked volume's cache is valid already
    /// (`VolumeNotLoaded`).
    pub fn cache_rows_of(&self, year: Option<u16>) -> Result<Vec<(String, Vec<u8>)>> {
        match year {
            None if !self.has_volumes() => view_cache::all_rows(&self.view),
            None => view_cache::all_rows(&self.core_part()),
            Some(year) => match self.volumes.get(&year) {
                Some(replica) => view_cache::all_rows(&hydrate_part(replica.doc())),
                None => Err(DocError::VolumeNotLoaded(year)),
            },
        }
    }
}

/// The entries of a volume of `year` the view does not show from it.
fn not_shown<T>(
    places: &HashMap<(&'static str, String), u16>,
    year: u16,
    collection: &'static str,
    map: BTreeMap<String, T>,
) -> BTreeMap<String, T> {
    map.into_iter()
        .filter(|(id, _)| places.get(&(collection, id.clone())) != Some(&year))
        .collect()
}

/// Keeps an entity the view does not show in a parked volume's `rest`.
fn keep_aside(rest: &mut Family, aside: volume::Aside) {
    match aside {
        volume::Aside::Calendar(id, e) => rest.calendar.insert(id, e).map(drop),
        volume::Aside::Mission(id, e) => rest.missions.insert(id, e).map(drop),
        volume::Aside::Photo(id, e) => rest.photos.insert(id, e).map(drop),
        volume::Aside::Voice(id, e) => rest.voices.insert(id, e).map(drop),
    };
}

fn copy<T: Clone>(from: &BTreeMap<String, T>, to: &mut BTreeMap<String, T>, id: &str) {
    if let Some(entity) = from.get(id) {
        to.insert(id.to_owned(), entity.clone());
    }
}

/// Copies the entity `collection/id` of the four collections a volume keeps from one
/// part to another.
fn copy_kept(from: &Family, to: &mut Family, collection: &str, id: &str) {
    match collection {
        "calendar" => copy(&from.calendar, &mut to.calendar, id),
        "missions" => copy(&from.missions, &mut to.missions, id),
        "photos" => copy(&from.photos, &mut to.photos, id),
        _ => copy(&from.voices, &mut to.voices, id),
    }
}

/// Reads the entity `collection/id` of the four collections a volume keeps from a
/// document into a part.
fn read_kept(doc: &automerge::AutoCommit, to: &mut Family, collection: &str, id: &str) {
    fn read_into<T: crate::read::Entity>(
        doc: &automerge::AutoCommit,
        collection: &str,
        id: &str,
        into: &mut BTreeMap<String, T>,
    ) {
        if let Some(entity) = read_entity(doc, collection, id) {
            into.insert(id.to_owned(), entity);
        }
    }
    match collection {
        "calendar" => read_into(doc, collection, id, &mut to.calendar),
        "missions" => read_into(doc, collection, id, &mut to.missions),
        "photos" => read_into(doc, collection, id, &mut to.photos),
        _ => read_into(doc, collection, id, &mut to.voices),
    }
}
