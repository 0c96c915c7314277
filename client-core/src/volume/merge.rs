//! The family as its screens show it, from the family's document and its volumes
//! (issue 17): one view, whatever document each entity is kept in.

use std::collections::{BTreeMap, HashMap};

use crate::model::{CalendarEvent, Family, MARKS_PREFIX, Mission, Photo, Voice};

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
    let mut years = HashMap::new();
    let view = merge_parts(core, volumes, Some(&mut years), &mut |_, _| {});
    let mut places = BTreeMap::new();
    let mut note = |collection: &'static str, ids: Vec<&String>| {
        for id in ids {
            let key = (collection, id.clone());
            let place = years
                .get(&key)
                .map_or(Place::Core, |year| Place::Year(*year));
            places.insert(key, place);
        }
    };
    note("calendar", view.calendar.keys().collect());
    note("missions", view.missions.keys().collect());
    note("photos", view.photos.keys().collect());
    note("voices", view.voices.keys().collect());
    Merged { view, places }
}

/// An entity of a volume the merged view does not show from it: kept in an earlier
/// document too, or hidden by a hide record.
#[derive(Debug)]
pub(crate) enum Aside {
    Calendar(String, CalendarEvent),
    Mission(String, Mission),
    Photo(String, Photo),
    Voice(String, Voice),
}

/// [`merged`]'s view, in one pass: each collection's entries from every document are
/// sorted together (each document's are sorted already, so this merges runs) and
/// taken in order, the first document keeping an id deciding it. `years`, when
/// given, gets where each entity shown from a volume is kept (the others are the
/// core's); `aside` gets each volume's entity the view does not show from it.
pub(crate) fn merge_parts(
    mut core: Family,
    volumes: impl IntoIterator<Item = (u16, Family)>,
    mut years: Option<&mut HashMap<(&'static str, String), u16>>,
    aside: &mut dyn FnMut(u16, Aside),
) -> Family {
    let mut parts: Vec<(u16, Family)> = volumes.into_iter().collect();
    parts.sort_by_key(|(year, _)| *year);
    let mut calendar = (std::mem::take(&mut core.calendar), Vec::new());
    let mut missions = (std::mem::take(&mut core.missions), Vec::new());
    let mut photos = (std::mem::take(&mut core.photos), Vec::new());
    let mut voices = (std::mem::take(&mut core.voices), Vec::new());
    for (year, part) in parts {
        calendar.1.push((year, part.calendar));
        missions.1.push((year, part.missions));
        photos.1.push((year, part.photos));
        voices.1.push((year, part.voices));
        for (key, n) in part.counts {
            let marked = key.starts_with(MARKS_PREFIX);
            core.counts
                .entry(key)
                .and_modify(|have| {
                    if !marked {
                        *have = have.saturating_add(n);
                    }
                })
                .or_insert(n);
        }
    }
    let view = &core;
    let calendar = union(
        calendar,
        ("calendar", &|_| false, Aside::Calendar),
        years.as_deref_mut(),
        aside,
    );
    let missions = union(
        missions,
        ("missions", &|_| false, Aside::Mission),
        years.as_deref_mut(),
        aside,
    );
    let photos = union(
        photos,
        (
            "photos",
            &|p: &Photo| hides(view, "photos", &p.album_id, p.at),
            Aside::Photo,
        ),
        years.as_deref_mut(),
        aside,
    );
    let voices = union(
        voices,
        (
            "voices",
            &|m: &Voice| hides(view, "voices", &m.album_id, m.at),
            Aside::Voice,
        ),
        years,
        aside,
    );
    (core.calendar, core.missions, core.photos, core.voices) = (calendar, missions, photos, voices);
    core
}

/// One collection's entries: the core's, and each volume's by year.
type Entries<T> = (BTreeMap<String, T>, Vec<(u16, BTreeMap<String, T>)>);

/// How [`union`] treats one collection: its name, whether a volume's entity is hidden,
/// and how to hand one aside.
type Collection<'a, T> = (&'static str, &'a dyn Fn(&T) -> bool, fn(String, T) -> Aside);

/// The core's entries and the volumes' (in year order) of one collection, as the
/// merged view shows them.
fn union<T>(
    (core, parts): Entries<T>,
    (collection, hidden, wrap): Collection<'_, T>,
    mut years: Option<&mut HashMap<(&'static str, String), u16>>,
    aside: &mut dyn FnMut(u16, Aside),
) -> BTreeMap<String, T> {
    let total = core.len() + parts.iter().map(|(_, p)| p.len()).sum::<usize>();
    let mut all: Vec<(String, Option<u16>, T)> = Vec::with_capacity(total);
    all.extend(core.into_iter().map(|(id, e)| (id, None, e)));
    for (year, part) in parts {
        all.extend(part.into_iter().map(|(id, e)| (id, Some(year), e)));
    }
    // Stable: the entries of one id stay in the documents' order, the core first.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let first: Vec<bool> = (0..all.len())
        .map(|i| i == 0 || all[i].0 != all[i - 1].0)
        .collect();
    let mut shown = Vec::with_capacity(all.len());
    for ((id, at, entity), first) in all.into_iter().zip(first) {
        match at {
            None => shown.push((id, entity)),
            Some(year) if first && !hidden(&entity) => {
                if let Some(years) = years.as_deref_mut() {
                    years.insert((collection, id.clone()), year);
                }
                shown.push((id, entity));
            }
            Some(year) => aside(year, wrap(id, entity)),
        }
    }
    // Sorted and unique: built in one pass.
    shown.into_iter().collect()
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
