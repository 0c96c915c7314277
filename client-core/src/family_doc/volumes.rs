//! The family's per-year volumes, as its document lists them (issue 17,
//! [`crate::volume`]).

use std::collections::{BTreeMap, BTreeSet};

use automerge::{
    AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue, Value, transaction::Transactable,
};
use doran_protocol::{FamilyId, VOLUME_YEARS};

use super::{
    COLLECTIONS, Edit, FamilyDoc, RemoteUpdate, counter_at, hydrate_collection, hydrate_root,
    is_counted, refresh_entry,
};
use crate::{
    error::{DocError, Result},
    model::{Family, HIDDEN_PREFIX, MARKS_PREFIX, Photo, VOLUMES_PREFIX, Voice, hidden_key},
    read::Entity,
    replica::{Actor, Replica, Touched},
    rules, volume,
};

impl FamilyDoc {
    /// Lists the family's volume of `year` (`v/{year}` = now), so that every device
    /// subscribes to it: written by the device that makes the year's first entity,
    /// before it writes that entity there. Listing a year listed already is no change.
    pub fn register_volume(&mut self, year: u16, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        if !VOLUME_YEARS.contains(&year) {
            return Err(DocError::BadDate(format!(
                "a volume's year is within {}–{}, not {year}",
                VOLUME_YEARS.start(),
                VOLUME_YEARS.end()
            )));
        }
        if self.view.volumes.contains(&year) {
            return Ok(Edit::unchanged(()));
        }
        let key = format!("{VOLUMES_PREFIX}{year}");
        self.edit(
            "volume.register",
            now_ms,
            &[Touched::Root(key.clone())],
            |doc| {
                doc.put(ROOT, key.as_str(), now_ms)?;
                Ok(())
            },
        )
    }

    /// Loads the family's volume of `year` from its stored snapshot and later chunks
    /// (neither holds its first change: every device makes it, `volume::genesis`), and
    /// merges it into the view: its calendar entries, missions, photos and voice
    /// messages join the family's, its counters add up with theirs. Loading a volume
    /// loaded already is no change. The view cache then holds less than the view:
    /// rebuild it ([`FamilyDoc::cache_rows`]).
    pub fn attach_volume<'a>(
        &mut self,
        year: u16,
        snapshot: Option<&[u8]>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        actor: &Actor,
    ) -> Result<()> {
        if self.volumes.contains_key(&year) {
            return Ok(());
        }
        let replica = self.load_volume_replica(year, snapshot, chunks, actor)?;
        let part = hydrate_part(replica.doc());
        if !self.has_volumes() {
            self.own_counts.insert(None, self.view.counts.clone());
        }
        let parked = self.parked.remove(&year);
        let (ids, counts): (Vec<(&'static str, String)>, BTreeSet<String>) = match &parked {
            // A parked volume loaded now: what its cache gave is in the view or kept
            // aside; only what differs in the document (written since, by another
            // process) is read again.
            Some(parked) => (
                self.differing(year, &part, &parked.rest),
                (part.counts.iter())
                    .chain(&parked.counts)
                    .filter(|(key, n)| {
                        part.counts.get(*key) != Some(n) || parked.counts.get(*key) != Some(n)
                    })
                    .map(|(key, _)| key.clone())
                    .collect(),
            ),
            None => (flat(kept_ids(&part)), part.counts.keys().cloned().collect()),
        };
        self.volumes.insert(year, replica);
        self.own_counts.insert(Some(year), part.counts);
        for (collection, id) in ids {
            self.refresh_kept(collection, &id);
        }
        for key in &counts {
            self.refresh_count_merged(key);
        }
        Ok(())
    }

    /// The entities of the volume of `year`, read whole (`part`), that differ from
    /// what the view shows from it and what it kept aside (`rest`) while parked, or
    /// that are gone from it.
    fn differing(&self, year: u16, part: &Family, rest: &Family) -> Vec<(&'static str, String)> {
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
            let kept = match *collection {
                "calendar" => part.calendar.contains_key(id),
                "missions" => part.missions.contains_key(id),
                "photos" => part.photos.contains_key(id),
                _ => part.voices.contains_key(id),
            };
            if *at == year && !kept {
                ids.push((*collection, id.clone()));
            }
        }
        ids
    }

    /// The volume of `year` loaded from its snapshot and later chunks, checked to be
    /// loaded by this device, under the volume's rules.
    pub(super) fn load_volume_replica<'a>(
        &self,
        year: u16,
        snapshot: Option<&[u8]>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        actor: &Actor,
    ) -> Result<Replica> {
        // One actor for every document of the family on this device: a counter's key
        // names the actor that writes it.
        if actor.actor_id() != *self.replica.doc().get_actor() {
            return Err(DocError::Forbidden(
                "a volume is loaded by the device that loaded the family's document",
            ));
        }
        if !VOLUME_YEARS.contains(&year) {
            return Err(DocError::BadDate(format!("no volume of {year}")));
        }
        let family: FamilyId = self
            .view
            .id
            .parse()
            .map_err(|_| DocError::Schema("the family's document names no family".into()))?;
        let host = rules::host_of(self.replica.doc())
            .ok_or_else(|| DocError::Schema("the family's document names no host".into()))?;
        Replica::load_volume(
            volume::genesis(family, year),
            snapshot,
            chunks,
            actor,
            volume::rules(family, year, host),
        )
    }

    /// The years of the volumes loaded.
    pub fn volume_years(&self) -> impl Iterator<Item = u16> + '_ {
        self.volumes.keys().copied()
    }

    /// The years of the volumes known from their view cache only (parked by
    /// [`FamilyDoc::open_volumes`]): an edit of what they keep, or a chunk of theirs,
    /// needs them loaded first (`VolumeNotLoaded`).
    pub fn parked_years(&self) -> impl Iterator<Item = u16> + '_ {
        self.parked.keys().copied()
    }

    /// Files the calendar entries, missions, photos and voice messages made from now
    /// on in the loaded volume of `year`, which the family's document lists (`None`:
    /// in the family's document, as before volumes). What exists already is edited
    /// where it is kept.
    pub fn file_new_in(&mut self, year: Option<u16>) -> Result<()> {
        if let Some(year) = year {
            // Listed first (`register_volume`): the other devices load the volumes
            // the family's document lists, and would never see what is filed here.
            if !self.view.volumes.contains(&year) {
                return Err(DocError::NotFound {
                    kind: "volume",
                    id: year.to_string(),
                });
            }
            if !self.volumes.contains_key(&year) {
                return Err(DocError::VolumeNotLoaded(year));
            }
        }
        self.new_in = year;
        Ok(())
    }

    /// Applies chunks of the loaded volume of `year`, as
    /// [`apply_remote`](FamilyDoc::apply_remote) does for the family's document; a
    /// volume not loaded takes nothing (`VolumeNotLoaded`: keep the chunks).
    pub fn apply_remote_volume<'a, C: Into<crate::replica::Incoming<'a>>>(
        &mut self,
        year: u16,
        chunks: impl IntoIterator<Item = C>,
    ) -> Result<RemoteUpdate> {
        if !self.volumes.contains_key(&year) {
            // Not a refusal: the chunks are good, this device has not loaded their
            // volume; keep them and load it first.
            return Err(DocError::VolumeNotLoaded(year));
        }
        Ok(self.apply_remote_in(Some(year), chunks))
    }

    /// Compacts the loaded volume of `year` into one snapshot.
    pub fn save_volume(&mut self, year: u16) -> Option<Vec<u8>> {
        self.volumes.get_mut(&year).map(Replica::save)
    }

    /// The loaded volume of `year` (heads, raw Automerge access for sync).
    pub fn volume_mut(&mut self, year: u16) -> Option<&mut Replica> {
        self.volumes.get_mut(&year)
    }

    /// Whether the entity is kept in the family's document (not in a loaded volume).
    pub(super) fn kept_in_core(&self, collection: &str, id: &str) -> bool {
        match kept(collection) {
            Some(collection) => !self.places.contains_key(&(collection, id.to_owned())),
            None => true,
        }
    }

    /// The volume an edit touching `touches` writes to: the one keeping the first
    /// entity it touches that a volume keeps; for an edit making a new entity, the one
    /// new entities are filed in; else the family's document.
    pub(super) fn target_of(&self, touches: &[Touched]) -> Option<u16> {
        if !self.has_volumes() {
            return None;
        }
        let mut makes = false;
        for t in touches {
            let Touched::Entity(collection, id) = t else {
                continue;
            };
            let Some(collection) = kept(collection) else {
                continue;
            };
            if let Some(year) = self.places.get(&(collection, id.clone())) {
                return Some(*year);
            }
            makes |= !in_view(&self.view, collection, id);
        }
        if makes { self.new_in } else { None }
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

/// The hide record an album's deletion writes ([`crate::model::Hidden`]):
/// `h/{collection}/{album}` and its time — the latest of now and of when what this
/// device saw in the album was added (`added`), so that a photo added by a device
/// whose clock runs ahead is hidden too once seen.
pub(super) fn hide_record(
    collection: &str,
    album: &str,
    added: impl Iterator<Item = i64>,
    now_ms: i64,
) -> (String, i64) {
    (
        format!("{HIDDEN_PREFIX}{collection}/{album}"),
        added.fold(now_ms, i64::max),
    )
}

/// The collection a volume keeps, as the static name (`None`: one only the family's
/// document keeps).
pub(super) fn kept(collection: &str) -> Option<&'static str> {
    volume::COLLECTIONS.into_iter().find(|c| *c == collection)
}

fn in_view(view: &Family, collection: &str, id: &str) -> bool {
    match collection {
        "calendar" => view.calendar.contains_key(id),
        "missions" => view.missions.contains_key(id),
        "photos" => view.photos.contains_key(id),
        _ => view.voices.contains_key(id),
    }
}

/// A volume read whole: its four collections and its counters and marks (and, for
/// the family's document, its root fields and listings).
pub(super) fn hydrate_part(doc: &AutoCommit) -> Family {
    let mut part = Family::default();
    hydrate_root(doc, &mut part);
    part.calendar = hydrate_collection(doc, "calendar");
    part.missions = hydrate_collection(doc, "missions");
    part.photos = hydrate_collection(doc, "photos");
    part.voices = hydrate_collection(doc, "voices");
    part
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

/// `(collection, id)` of each id of [`kept_ids`].
fn flat(ids: [(&'static str, Vec<String>); 4]) -> Vec<(&'static str, String)> {
    ids.into_iter()
        .flat_map(|(collection, ids)| ids.into_iter().map(move |id| (collection, id)))
        .collect()
}

/// The ids of a volume's entities, by collection.
pub(super) fn kept_ids(part: &Family) -> [(&'static str, Vec<String>); 4] {
    [
        ("calendar", part.calendar.keys().cloned().collect()),
        ("missions", part.missions.keys().cloned().collect()),
        ("photos", part.photos.keys().cloned().collect()),
        ("voices", part.voices.keys().cloned().collect()),
    ]
}
