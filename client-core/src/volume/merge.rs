//! The family as its screens show it, from the family's document and its volumes
//! (issue 17): one view, whatever document each entity is kept in.

use std::collections::BTreeMap;

use crate::model::{Family, MARKS_PREFIX};

/// Where an entity is kept: the family's document (what it held before volumes, and
/// everything but the four collections), or a year's volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    /// The family's document.
    Core,
    /// The volume of a year.
    Year(u16),
}

/// The merged view, and where each entity of the four collections came from
/// (`(collection, id)` → place), so that an edit goes to the document that holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// What the screens read.
    pub view: Family,
    /// Where each calendar entry, mission, photo and voice message is kept.
    pub places: BTreeMap<(&'static str, String), Place>,
}

/// Merges the family's document (`core`, read as a [`Family`]) with its volumes (each
/// read the same way): the family's own fields, members, albums, voice albums, the
/// volumes listed and the hide records are the core's; the calendar, missions, photos
/// and voice messages are the union of every document's (ids are random; an id found
/// in two documents — only a misbehaving client makes one — is taken from the first
/// place, the core before the years, earlier years first, the same on every device);
/// counters are summed (each device has one per document it counted in) and marks
/// kept once. A volume's photo (or voice message) of an album deleted outright is left
/// out, while no album stands at that id, if it was added no later than the deletion
/// ([`crate::model::Hidden`]): the deletion removed the album's photos the core held,
/// and could not remove those.
pub fn merged(core: Family, volumes: impl IntoIterator<Item = (u16, Family)>) -> Merged {
    let mut parts: Vec<(Place, Family)> = volumes
        .into_iter()
        .map(|(year, family)| (Place::Year(year), family))
        .collect();
    parts.sort_by_key(|(place, _)| *place);
    let mut places = BTreeMap::new();
    let mut view = core;
    note(&mut places, Place::Core, &view);
    for (place, part) in parts {
        note(&mut places, place, &part);
        take(&mut view.calendar, part.calendar);
        take(&mut view.missions, part.missions);
        take(&mut view.photos, part.photos);
        take(&mut view.voices, part.voices);
        for (key, n) in part.counts {
            let marked = key.starts_with(MARKS_PREFIX);
            view.counts
                .entry(key)
                .and_modify(|have| {
                    if !marked {
                        *have = have.saturating_add(n);
                    }
                })
                .or_insert(n);
        }
    }
    let kept_in_volume = |coll: &'static str, id: &String| {
        matches!(places.get(&(coll, id.clone())), Some(Place::Year(_)))
    };
    let hidden_photos: Vec<String> = view
        .photos
        .iter()
        .filter(|(id, p)| kept_in_volume("photos", id) && hides(&view, "photos", &p.album_id, p.at))
        .map(|(id, _)| id.clone())
        .collect();
    let hidden_voices: Vec<String> = view
        .voices
        .iter()
        .filter(|(id, v)| kept_in_volume("voices", id) && hides(&view, "voices", &v.album_id, v.at))
        .map(|(id, _)| id.clone())
        .collect();
    for id in hidden_photos {
        view.photos.remove(&id);
        places.remove(&("photos", id));
    }
    for id in hidden_voices {
        view.voices.remove(&id);
        places.remove(&("voices", id));
    }
    Merged { view, places }
}

/// Whether a hide record of `view` hides a volume's photo (`collection` "photos") or
/// voice message ("voices") of `album` added at `at`: a record of that album at or
/// after `at`, and no album standing at its id (a record never hides a standing
/// album's photos, whoever wrote it, from whatever fork).
pub(crate) fn hides(view: &Family, collection: &str, album: &str, at: i64) -> bool {
    let (records, standing) = match collection {
        "photos" => (&view.hidden.albums, view.albums.contains_key(album)),
        "voices" => (
            &view.hidden.voice_albums,
            view.voice_albums.contains_key(album),
        ),
        _ => return false,
    };
    !standing && records.get(album).is_some_and(|when| at <= *when)
}

/// Notes where `part`'s entities are, unless an earlier place has them.
fn note(places: &mut BTreeMap<(&'static str, String), Place>, place: Place, part: &Family) {
    let ids = part
        .calendar
        .keys()
        .map(|id| ("calendar", id))
        .chain(part.missions.keys().map(|id| ("missions", id)))
        .chain(part.photos.keys().map(|id| ("photos", id)))
        .chain(part.voices.keys().map(|id| ("voices", id)));
    for (collection, id) in ids {
        places.entry((collection, id.clone())).or_insert(place);
    }
}

/// Adds `from`'s entries to `into`, keeping those `into` has.
fn take<T>(into: &mut BTreeMap<String, T>, from: BTreeMap<String, T>) {
    for (id, entity) in from {
        into.entry(id).or_insert(entity);
    }
}
