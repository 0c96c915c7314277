//! Keeping the merged view right as documents change (issue 17): an entity is read
//! again from the first document keeping it — the family's, then the volumes by
//! year, loaded or parked — and left out if a hide record hides it; a counter is
//! summed over the documents, a mark taken from the first; a parked volume loaded
//! re-reads only what differs from what its cache gave.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue, Value};

use super::{
    COLLECTIONS, FamilyDoc, counter_at, is_counted, refresh_entry,
    volumes::{in_view, kept},
};
use crate::{
    model::{Family, HIDDEN_PREFIX, MARKS_PREFIX, Photo, Voice, hidden_key},
    read::Entity,
    replica::Touched,
    volume,
};

impl FamilyDoc {
    /// The entities of the volume of `year`, read whole (`part`), that differ from
    /// what the view shows from it and what it kept aside (`rest`) while parked, or
    /// that are gone from it.
    pub(super) fn differing(
        &self,
        year: u16,
        part: &Family,
        rest: &Family,
    ) -> Vec<(&'static str, String)> {
        let mut ids = Vec::new();
        let shown = |collection: &'static str, id: &String| {
            self.places.get(&(collection, id.clone())) == Some(&year)
        };
        let v = &self.view;
        differ(
            "calendar",
            (&part.calendar, &v.calendar, &rest.calendar),
            &shown,
            &mut ids,
        );
        differ(
            "missions",
            (&part.missions, &v.missions, &rest.missions),
            &shown,
            &mut ids,
        );
        differ(
            "photos",
            (&part.photos, &v.photos, &rest.photos),
            &shown,
            &mut ids,
        );
        differ(
            "voices",
            (&part.voices, &v.voices, &rest.voices),
            &shown,
            &mut ids,
        );
        // Shown from it before, gone from it now.
        for ((collection, id), at) in &self.places {
            if *at == year && !in_view(part, collection, id) {
                ids.push((*collection, id.clone()));
            }
        }
        ids
    }

    /// Re-reads what a change of the document `year` (`None`: the core) touched into
    /// the merged view. Returns the album (or voice album: `(collection, id)`) whose
    /// photos (messages) kept in volumes must be read again once everything touched is
    /// ([`refresh_volumes_entities`]): one a hide record was written for, or one
    /// standing again at a recorded id.
    ///
    /// [`refresh_volumes_entities`]: Self::refresh_volumes_entities
    pub(super) fn refresh_merged(
        &mut self,
        year: Option<u16>,
        t: &Touched,
    ) -> Option<(&'static str, String)> {
        match t {
            Touched::Entity(collection, id) => match kept(collection) {
                Some(collection) => self.refresh_kept(collection, id),
                // Members, albums and voice albums: the core's only (a volume's rules
                // refuse them).
                None if year.is_none() => {
                    self.refresh_one(t);
                    let hidden = &self.view.hidden;
                    return match collection.as_str() {
                        "albums" if hidden.albums.contains_key(id) => Some(("albums", id.clone())),
                        "voice_albums" if hidden.voice_albums.contains_key(id) => {
                            Some(("voice_albums", id.clone()))
                        }
                        _ => None,
                    };
                }
                None => {}
            },
            Touched::Root(key) if is_counted(key) => self.refresh_count_merged(key),
            Touched::Root(key) if COLLECTIONS.contains(&key.as_str()) => self.rehydrate_all(),
            Touched::Root(key) if key.starts_with(HIDDEN_PREFIX) && year.is_none() => {
                self.refresh_one(t);
                let (collection, album) = hidden_key(key)?;
                return Some((collection, album.to_owned()));
            }
            Touched::Root(_) if year.is_none() => self.refresh_one(t),
            Touched::Root(_) => {}
        }
        None
    }

    /// Reads an entity of the four collections again from the first document that
    /// keeps it (the core, then the volumes by year, as `volume::merged` does), and
    /// leaves it out if a hide record hides it.
    pub(super) fn refresh_kept(&mut self, collection: &'static str, id: &str) {
        match collection {
            "calendar" => self.refresh_in_place(collection, id, |v| &mut v.calendar, |_| None),
            "missions" => self.refresh_in_place(collection, id, |v| &mut v.missions, |_| None),
            "photos" => self.refresh_in_place(
                collection,
                id,
                |v| &mut v.photos,
                |p: &Photo| Some((p.album_id.clone(), p.at)),
            ),
            _ => self.refresh_in_place(
                collection,
                id,
                |v| &mut v.voices,
                |m: &Voice| Some((m.album_id.clone(), m.at)),
            ),
        }
    }

    fn refresh_in_place<T: Entity + Clone>(
        &mut self,
        collection: &'static str,
        id: &str,
        map: impl Fn(&mut Family) -> &mut BTreeMap<String, T>,
        album_of: impl Fn(&T) -> Option<(String, i64)>,
    ) {
        let place = (collection, id.to_owned());
        let old = self.places.get(&place).copied();
        let mut found = read_entity(self.replica.doc(), collection, id).map(|e| (None, e));
        if found.is_none() {
            let years: BTreeSet<u16> = self
                .volumes
                .keys()
                .chain(self.parked.keys())
                .copied()
                .collect();
            for year in years {
                let entity = match (self.volumes.get(&year), self.parked.get_mut(&year)) {
                    (Some(replica), _) => read_entity(replica.doc(), collection, id),
                    // A parked volume's entity is in the view while it shows from there,
                    // else kept aside with the volume.
                    (None, Some(_)) if old == Some(year) => map(&mut self.view).get(id).cloned(),
                    (None, Some(parked)) => map(&mut parked.rest).get(id).cloned(),
                    (None, None) => None,
                };
                if let Some(entity) = entity {
                    found = Some((Some(year), entity));
                    break;
                }
            }
        }
        let shown = found.filter(|(year, entity)| {
            year.is_none()
                || album_of(entity)
                    .is_none_or(|(album, at)| !volume::hides(&self.view, collection, &album, at))
        });
        let shown_at = shown.as_ref().map(|(year, _)| *year);
        // A parked volume's entity leaving the view is kept aside with it (a hide
        // record lifted, or an earlier copy gone, brings it back without loading it);
        // one coming into the view is no longer kept aside.
        if let Some(year) = old
            && shown_at != Some(Some(year))
            && let Some(parked) = self.parked.get_mut(&year)
            && let Some(entity) = map(&mut self.view).get(id)
        {
            map(&mut parked.rest).insert(id.to_owned(), entity.clone());
        }
        if let Some(Some(year)) = shown_at
            && let Some(parked) = self.parked.get_mut(&year)
        {
            map(&mut parked.rest).remove(id);
        }
        match shown {
            Some((year, entity)) => {
                map(&mut self.view).insert(id.to_owned(), entity);
                match year {
                    Some(year) => self.places.insert(place, year),
                    None => self.places.remove(&place),
                };
            }
            None => {
                map(&mut self.view).remove(id);
                self.places.remove(&place);
            }
        }
    }

    /// Reads again the photos and voice messages of the loaded volumes that belong to
    /// `albums` (`(collection, id)`: "albums" for photos, "voice_albums" for voice
    /// messages): a hide record written, or an album standing again at a recorded id,
    /// changes which show. Reads each entry's album field only, not the entry whole.
    pub(super) fn refresh_volumes_entities(&mut self, albums: &BTreeSet<(&'static str, String)>) {
        let mut ids = Vec::new();
        for replica in self.volumes.values() {
            let doc = replica.doc();
            for (container, collection) in [("albums", "photos"), ("voice_albums", "voices")] {
                let Ok(Some((Value::Object(ObjType::Map), coll))) = doc.get(ROOT, collection)
                else {
                    continue;
                };
                for id in doc.keys(&coll) {
                    let Ok(Some((Value::Object(ObjType::Map), entry))) = doc.get(&coll, &id) else {
                        continue;
                    };
                    let Ok(Some((Value::Scalar(album), _))) = doc.get(&entry, "album_id") else {
                        continue;
                    };
                    if let ScalarValue::Str(album) = album.as_ref()
                        && albums.contains(&(container, album.to_string()))
                    {
                        ids.push((collection, id));
                    }
                }
            }
        }
        if !self.parked.is_empty() {
            self.parked_entities_of(albums, &mut ids);
        }
        for (collection, id) in ids {
            self.refresh_kept(collection, &id);
        }
    }

    /// A counter's total over the core and the volumes (each device keeps one per
    /// document it counted in), or a mark's value from the first that has it (the
    /// core, then the years in order); each loaded document's own value is kept for
    /// its view cache.
    pub(super) fn refresh_count_merged(&mut self, key: &str) {
        let marked = key.starts_with(MARKS_PREFIX);
        let mut values: Vec<(u16, Option<i64>)> = Vec::new();
        let core = counter_at(self.replica.doc(), key);
        own_value(&mut self.own_counts, None, key, core);
        for (year, replica) in &self.volumes {
            let n = counter_at(replica.doc(), key);
            own_value(&mut self.own_counts, Some(*year), key, n);
            values.push((*year, n));
        }
        for (year, parked) in &self.parked {
            values.push((*year, parked.counts.get(key).copied()));
        }
        values.sort_by_key(|(year, _)| *year);
        let mut total: Option<i64> = core;
        for (_, n) in values {
            let Some(n) = n else { continue };
            total = Some(match total {
                Some(t) if marked => t,
                Some(t) => t.saturating_add(n),
                None => n,
            });
        }
        match total {
            Some(n) => self.view.counts.insert(key.to_owned(), n),
            None => self.view.counts.remove(key),
        };
    }
}

/// Sets (or removes) a document's own value of a counter or mark.
fn own_value(
    own: &mut BTreeMap<Option<u16>, BTreeMap<String, i64>>,
    doc: Option<u16>,
    key: &str,
    n: Option<i64>,
) {
    let counts = own.entry(doc).or_default();
    match n {
        Some(n) => counts.insert(key.to_owned(), n),
        None => counts.remove(key),
    };
}

/// An entity of `collection` as the document keeps it, if it does.
pub(super) fn read_entity<T: Entity>(doc: &AutoCommit, collection: &str, id: &str) -> Option<T> {
    let Ok(Some((Value::Object(ObjType::Map), coll))) = doc.get(ROOT, collection) else {
        return None;
    };
    let mut one = BTreeMap::new();
    refresh_entry(doc, &coll, id, &mut one);
    one.remove(id)
}

/// One collection as a volume read whole holds it, as the view shows it, and as the
/// parked volume kept it aside.
type Three<'a, T> = (
    &'a BTreeMap<String, T>,
    &'a BTreeMap<String, T>,
    &'a BTreeMap<String, T>,
);

/// Adds to `ids` the entries of one collection of a parked volume read whole (`part`)
/// that differ from what the view shows from it (`shown`) or from what it kept aside
/// (`rest`), and those it kept aside that are gone.
fn differ<T: PartialEq>(
    collection: &'static str,
    (part, view, rest): Three<'_, T>,
    shown: &dyn Fn(&'static str, &String) -> bool,
    ids: &mut Vec<(&'static str, String)>,
) {
    for (id, entity) in part {
        let was = if shown(collection, id) {
            view.get(id)
        } else {
            rest.get(id)
        };
        if was != Some(entity) {
            ids.push((collection, id.clone()));
        }
    }
    for id in rest.keys().filter(|id| !part.contains_key(*id)) {
        ids.push((collection, id.clone()));
    }
}
