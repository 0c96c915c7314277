//! The family's per-year volumes, as its document lists them (issue 17,
//! [`crate::volume`]).

use std::collections::BTreeSet;

use automerge::{AutoCommit, ROOT, transaction::Transactable};
use doran_protocol::{FamilyId, VOLUME_YEARS};

use super::{Edit, FamilyDoc, RemoteUpdate, hydrate_collection, hydrate_root};
use crate::{
    error::{DocError, Result},
    model::{Family, HIDDEN_PREFIX, VOLUMES_PREFIX},
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
    /// (its first change is made here, as on every device, `volume::genesis`; a
    /// snapshot this device saved holds it already, and loads as well), and
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

    /// The heads of the family's document and of each loaded volume, in that order:
    /// what an edit moved, to tell one that changed a document without handing its
    /// change back.
    pub fn all_heads(&mut self) -> Vec<automerge::ChangeHash> {
        let mut heads = self.replica.heads();
        for volume in self.volumes.values_mut() {
            heads.extend(volume.heads());
        }
        heads
    }

    /// The volume new calendar entries, missions, photos and voice messages are filed
    /// in (`None`: the family's document).
    pub fn filed_in(&self) -> Option<u16> {
        self.new_in
    }

    /// Files new calendar entries, missions, photos and voice messages in the volume of
    /// `year` (this year), as a device writing volumes does: in it when it is loaded;
    /// started from its genesis (which every device makes alike, so what this device
    /// writes merges with what the sync brings) when the family lists it and this
    /// device has none of it yet; and when the family does not list it, the next new
    /// entity lists it first (`Edit::listed`) and is filed there, as are the ones
    /// after. Until then new entities go where [`file_new_in`](Self::file_new_in) said.
    pub fn file_new_in_listing(&mut self, year: u16, actor: &Actor) -> Result<()> {
        if self.volumes.contains_key(&year) {
            return self.file_new_in(Some(year));
        }
        if self.parked.contains_key(&year) {
            // Kept here but not loaded (its stored bytes did not load): never
            // started over beside what is stored.
            return Err(DocError::VolumeNotLoaded(year));
        }
        if self.view.volumes.contains(&year) {
            self.start_volume(year, actor)?;
            return self.file_new_in(Some(year));
        }
        if !VOLUME_YEARS.contains(&year) {
            return Err(DocError::BadDate(format!("no volume of {year}")));
        }
        self.lists_first = Some((year, *actor));
        Ok(())
    }

    /// Lists the volume of `year` for the entity about to be made, starts it, and
    /// files new entities there: the change of the listing.
    pub(super) fn start_year(&mut self, year: u16, actor: &Actor, now_ms: i64) -> Result<Edit> {
        self.lists_first = None;
        let listed = self.register_volume(year, now_ms)?;
        self.start_volume(year, actor)?;
        self.file_new_in(Some(year))?;
        Ok(listed)
    }

    /// Attaches the volume of `year` as its genesis alone: nothing of it is stored yet.
    pub(crate) fn start_volume(&mut self, year: u16, actor: &Actor) -> Result<()> {
        let genesis = super::volume_cache::StoredVolume {
            year,
            snapshot: None,
            chunks: Vec::new(),
            cached: None,
        };
        self.open_volumes([genesis], [], actor)?;
        if !self.volumes.contains_key(&year) {
            return Err(DocError::VolumeNotLoaded(year));
        }
        Ok(())
    }

    /// Whether an edit touching `touches` makes a calendar entry, mission, photo or
    /// voice message (one no document of the family keeps yet).
    pub(super) fn makes_new(&self, touches: &[Touched]) -> bool {
        touches.iter().any(|t| match t {
            Touched::Entity(collection, id) => kept(collection).is_some_and(|collection| {
                !in_view(&self.view, collection, id)
                    && !self.places.contains_key(&(collection, id.clone()))
            }),
            Touched::Root(_) => false,
        })
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

/// Whether `view` (or a part) has the entity `collection/id` of the four collections a
/// volume keeps.
pub(super) fn in_view(view: &Family, collection: &str, id: &str) -> bool {
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
