//! The family as its screens show it, from the family's document and its volumes
//! (issue 17, `volume::merged`): split a family's entities, counters and marks over
//! several documents any way at all, and the merged view is the family again; an
//! album deleted in the family's document hides its photos kept in volumes.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use std::collections::BTreeMap;

mod support;

use doran_client_core::{
    EventInput, FamilyDoc, VoiceInput,
    model::Family,
    volume::{Place, merged},
};
use doran_protocol::{BlobHash, FamilyId};
use proptest::prelude::*;
use support::{actor, photo};

const T0: i64 = 1_780_000_000_000;

/// A family of two that did a bit of everything: photos liked, missions ticked (one
/// completed), events, voice messages; counters and marks from both devices.
fn lived_in() -> Family {
    let (mom, dad) = (actor(), actor());
    let (mut m, _) = FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &mom, T0).unwrap();
    let mut d = FamilyDoc::load(Some(&m.save()), [], &dad).unwrap();
    let join = d.add_member(dad.user, "아빠", T0).unwrap().change.unwrap();
    m.apply_remote([join.as_slice()]);
    let album = m.create_album("여행", T0).unwrap().value;
    let voices = m.create_voice_album("목소리", 1, T0).unwrap().value;
    for n in 0..4 {
        m.add_photo(&album, photo(n), T0 + i64::from(n)).unwrap();
        m.add_event(
            EventInput {
                title: format!("소풍 {n}"),
                start: "2026-05-05".into(),
                ..Default::default()
            },
            T0,
        )
        .unwrap();
        m.add_voice(
            &voices,
            VoiceInput {
                title: format!("안녕 {n}"),
                blob: BlobHash::of(&[9, n]).into(),
                size: 10,
                duration_ms: 1000,
                peaks: vec![1, 2, 3],
            },
            T0,
        )
        .unwrap();
    }
    let both = [mom.user, dad.user];
    let m1 = m.add_mission("사진 찍기", &both, None, T0).unwrap().value;
    let m2 = m.add_mission("산책", &both, None, T0).unwrap().value;
    let mut d = FamilyDoc::load(Some(&m.save()), [], &dad).unwrap();
    let first = m.view().photos.keys().next().unwrap().clone();
    d.set_like(&first, true, T0).unwrap();
    d.add_comment(&first, "좋다", T0).unwrap();
    d.set_mission_done(&m1, true, T0).unwrap();
    d.set_mission_done(&m2, true, T0).unwrap();
    d.add_photo(&album, photo(7), T0).unwrap();
    let changes = d.replica_mut().doc_mut().get_changes(&[]);
    let bytes: Vec<Vec<u8>> = changes
        .into_iter()
        .map(|mut c| c.bytes().to_vec())
        .collect();
    m.apply_remote(bytes.iter().map(Vec::as_slice));
    m.set_mission_done(&m1, true, T0).unwrap();
    m.view().clone()
}

const PLACES: [Place; 4] = [
    Place::Core,
    Place::Year(2024),
    Place::Year(2025),
    Place::Year(2026),
];

/// `family` split over the core and three volumes by `pick` (one number per entity,
/// counter and mark, taken in turn): the four collections, counters (each split in
/// parts that add up to it) and marks (in one document, or two).
fn split(family: &Family, pick: &[u8]) -> (Family, Vec<(u16, Family)>, BTreeMap<String, Place>) {
    let mut picks = pick.iter().copied().cycle();
    let mut next = move || usize::from(picks.next().unwrap_or(0));
    let mut parts: Vec<Family> = PLACES.iter().map(|_| Family::default()).collect();
    let mut core = family.clone();
    (core.calendar, core.missions, core.photos, core.voices) = Default::default();
    core.counts.clear();
    let mut expected = BTreeMap::new();
    macro_rules! spread {
        ($field:ident) => {
            for (id, e) in &family.$field {
                let i = next() % PLACES.len();
                parts[i].$field.insert(id.clone(), e.clone());
                expected.insert(id.clone(), PLACES[i]);
            }
        };
    }
    spread!(calendar);
    spread!(missions);
    spread!(photos);
    spread!(voices);
    for (key, &n) in &family.counts {
        if key.starts_with("e/") {
            let i = next() % PLACES.len();
            parts[i].counts.insert(key.clone(), n);
            if next() % 2 == 0 {
                let j = next() % PLACES.len();
                parts[j].counts.insert(key.clone(), n);
            }
        } else {
            let mut left = n;
            for part in parts.iter_mut().take(PLACES.len() - 1) {
                let share = i64::try_from(next()).unwrap() % (left + 1);
                if share > 0 {
                    part.counts.insert(key.clone(), share);
                }
                left -= share;
            }
            if left > 0 {
                *parts[PLACES.len() - 1]
                    .counts
                    .entry(key.clone())
                    .or_default() += left;
            }
        }
    }
    let mut parts = parts.into_iter();
    let first = parts.next().unwrap();
    core.calendar = first.calendar;
    core.missions = first.missions;
    core.photos = first.photos;
    core.voices = first.voices;
    core.counts = first.counts;
    let volumes = PLACES[1..]
        .iter()
        .zip(parts)
        .map(|(place, part)| match place {
            Place::Year(y) => (*y, part),
            Place::Core => unreachable!(),
        })
        .collect();
    (core, volumes, expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_family_split_over_volumes_any_way_reads_as_the_family(
        pick in proptest::collection::vec(any::<u8>(), 1..64),
        reversed in any::<bool>(),
    ) {
        let family = lived_in();
        let (core, mut volumes, expected) = split(&family, &pick);
        if reversed {
            volumes.reverse();
        }
        let m = merged(core, volumes);
        prop_assert_eq!(&m.view, &family);
        let places: BTreeMap<String, Place> =
            m.places.into_iter().map(|((_, id), place)| (id, place)).collect();
        prop_assert_eq!(places, expected);
    }
}

#[test]
fn an_album_deleted_in_the_core_hides_its_photos_kept_in_volumes() {
    let family = lived_in();
    let album = family.albums.keys().next().unwrap().clone();
    let mut core = family.clone();
    core.photos.clear();
    let mut volume = Family {
        photos: family.photos.clone(),
        ..Family::default()
    };
    // The album's photos, one added after the deletion (concurrently: its device had
    // not seen it), one of another album.
    let mut photos = family.photos.keys().cloned();
    let (before, after, recovered, other) = (
        photos.next().unwrap(),
        photos.next().unwrap(),
        photos.next().unwrap(),
        photos.next().unwrap(),
    );
    let deleted_at = 1_800_000_000_000;
    for (id, at) in [(&before, deleted_at), (&after, deleted_at + 1)] {
        let p = volume.photos.get_mut(id).unwrap();
        (p.album_id, p.at) = (album.clone(), at);
    }
    volume.photos.get_mut(&other).unwrap().album_id = "f".repeat(32);
    // One of the album's photos the core holds (its device had not seen the deletion
    // either): the core's are the core's, as before volumes.
    let mut in_core = family.photos[&recovered].clone();
    (in_core.album_id, in_core.at) = (album.clone(), deleted_at - 1);
    volume.photos.remove(&recovered);
    core.photos.insert(recovered.clone(), in_core);
    // No record: nothing hidden.
    let m = merged(core.clone(), [(2026, volume.clone())]);
    for id in [&before, &after, &recovered, &other] {
        assert!(m.view.photos.contains_key(id));
    }
    // Deleted: the photo added up to the deletion is gone, with its place; the one
    // added after it shows, as the gallery's recovered photos; so do the others.
    core.albums.remove(&album);
    core.hidden.albums.insert(album.clone(), deleted_at);
    let m = merged(core.clone(), [(2026, volume.clone())]);
    assert!(!m.view.photos.contains_key(&before));
    assert!(!m.places.contains_key(&("photos", before.clone())));
    for id in [&after, &recovered, &other] {
        assert!(m.view.photos.contains_key(id));
    }
    // A record never hides the photos of an album that stands at its id (one made
    // there from a fork: the rules refuse it otherwise), so nobody hides another
    // member's album with a record of their own.
    let mut again = core.clone();
    again
        .albums
        .insert(album.clone(), family.albums[&album].clone());
    assert!(
        merged(again, [(2026, volume.clone())])
            .view
            .photos
            .contains_key(&before)
    );
    // A voice album's record hides its messages kept in volumes (up to its time),
    // never a photo album's photos.
    let voice_album = family.voice_albums.keys().next().unwrap().clone();
    let message = family.voices.keys().next().unwrap().clone();
    let mut voices = core.clone();
    voices.hidden.albums.clear();
    voices.hidden.voice_albums.insert(album.clone(), deleted_at);
    voices.voice_albums.remove(&voice_album);
    voices.voices.clear();
    let mut kept = volume.clone();
    kept.voices = family.voices.clone();
    let m = merged(voices.clone(), [(2026, kept.clone())]);
    assert!(m.view.photos.contains_key(&before));
    assert!(m.view.voices.contains_key(&message));
    voices
        .hidden
        .voice_albums
        .insert(voice_album.clone(), deleted_at);
    let m = merged(voices.clone(), [(2026, kept.clone())]);
    assert!(!m.view.voices.contains_key(&message));
    kept.voices.get_mut(&message).unwrap().at = deleted_at + 1;
    assert!(
        merged(voices, [(2026, kept)])
            .view
            .voices
            .contains_key(&message)
    );
    let recovered = after;
    core.hidden = Default::default();
    // An id in two documents (only a misbehaving client makes one) is read from the
    // first place, the same on every device.
    let mut twin = volume.photos[&recovered].clone();
    twin.caption = "쌍둥이".into();
    volume.photos.insert(recovered.clone(), twin);
    let earlier = Family {
        photos: [(recovered.clone(), family.photos[&recovered].clone())].into(),
        ..Family::default()
    };
    let m = merged(core, [(2026, volume), (2025, earlier)]);
    assert_eq!(m.places[&("photos", recovered.clone())], Place::Year(2025));
    assert_ne!(m.view.photos[&recovered].caption, "쌍둥이");
}
