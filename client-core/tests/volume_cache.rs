//! A family with per-year volumes on a device's store (issue 17): each document keeps
//! a view cache of what it holds, the screens read them merged, and opening loads the
//! family's document and this year's volume while the older years are parked — their
//! entities read from their caches, their CRDT loaded when an edit needs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_client_core::{
    Actor, DocError, Edit, EventInput, FamilyDoc, RemoteUpdate, StoredVolume,
    family_store::{OpenError, cached_family, load_volume, open_family_in},
    model::Family,
    store::{LocalStore, SqliteStore},
    view_cache::{self, VIEW_VERSION},
};
use doran_protocol::{DocId, FamilyId};
use support::{actor, photo};

/// 2025-06-05 and 2026-05-29.
const T2025: i64 = 1_749_100_000_000;
const T2026: i64 = 1_780_000_000_000;

/// Mom's device (the store and her family open in memory) and dad's family, both with
/// the family's document and its volumes of 2025 and 2026.
struct Scene {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    id: FamilyId,
    mom: FamilyDoc,
    mom_actor: Actor,
    dad: FamilyDoc,
    /// Album A (photos in both years) and B.
    albums: [String; 2],
    /// Photos of 2025 (in A, in B) and of 2026 (in A, dad's in B).
    photos: [String; 4],
}

impl Scene {
    fn doc(&self, volume: Option<u16>) -> DocId {
        match volume {
            None => DocId::from(self.id),
            Some(year) => self.id.volume(year),
        }
    }

    /// Writes mom's edit as her device does: the change and its view rows into the
    /// document it belongs to, in one transaction; a document whose cache is not valid
    /// yet (its first write) gets it built.
    fn mine<T>(&mut self, edit: Edit<T>) -> T {
        let doc = self.doc(edit.volume);
        let change = edit.change.expect("the edit changed something");
        self.store
            .commit_local_with_view(doc, &change, edit.view.as_deref())
            .unwrap();
        self.cache_if_invalid(edit.volume);
        edit.value
    }

    /// Dad's edit: applied by mom's device to the document it belongs to, stored with
    /// the rows the apply made.
    fn dads<T>(&mut self, edit: Edit<T>) -> T {
        let change = edit.change.expect("the edit changed something");
        let update: RemoteUpdate = match edit.volume {
            None => self.mom.apply_remote([change.as_slice()]),
            Some(year) => self
                .mom
                .apply_remote_volume(year, [change.as_slice()])
                .unwrap(),
        };
        assert!(update.refusals.is_empty(), "{:?}", update.refusals);
        self.store
            .apply_remote_with_view(
                self.doc(edit.volume),
                &[change.as_slice()],
                None,
                update.view.as_deref(),
            )
            .unwrap();
        self.cache_if_invalid(edit.volume);
        edit.value
    }

    fn cache_if_invalid(&self, volume: Option<u16>) {
        let doc = self.doc(volume);
        if self.store.load_view(doc).unwrap().is_none() {
            let end = self.store.load(doc).unwrap().unwrap().log_end;
            let rows = self.mom.cache_rows_of(volume).unwrap();
            assert!(
                self.store
                    .replace_view(doc, VIEW_VERSION, end, &rows)
                    .unwrap()
            );
        }
    }

    /// The family as a device reads it from nothing: every stored document loaded
    /// whole.
    fn read_whole(&self) -> Family {
        let core = self.store.load(self.doc(None)).unwrap().unwrap();
        let mut fd = FamilyDoc::load(
            core.snapshot.as_deref(),
            core.changes.iter().map(Vec::as_slice),
            &self.mom_actor,
        )
        .unwrap();
        for year in [2025, 2026] {
            let v = self.store.load(self.doc(Some(year))).unwrap().unwrap();
            fd.attach_volume(
                year,
                v.snapshot.as_deref(),
                v.changes.iter().map(Vec::as_slice),
                &self.mom_actor,
            )
            .unwrap();
        }
        fd.view().clone()
    }

    fn open(&self, this_year: u16) -> FamilyDoc {
        open_family_in(&self.store, self.doc(None), &self.mom_actor, this_year)
            .unwrap()
            .family
    }
}

fn scene() -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("mom.sqlite")).unwrap();
    let (mom_actor, dad_actor) = (actor(), actor());
    let id = FamilyId::new_family(true);
    let (mom, created) = FamilyDoc::create(id, "우리 가족", "엄마", &mom_actor, T2025).unwrap();
    let dad = FamilyDoc::load(Some(&created), [], &dad_actor).unwrap();
    let mut s = Scene {
        _dir: dir,
        store,
        id,
        mom,
        mom_actor,
        dad,
        albums: Default::default(),
        photos: Default::default(),
    };
    s.store.commit_local(s.doc(None), &created).unwrap();
    s.cache_if_invalid(None);
    let join = s.dad.add_member(dad_actor.user, "아빠", T2025).unwrap();
    s.dads(join);
    let a = s.mom.create_album("여행", T2025).unwrap();
    s.dad.apply_remote([a.change.as_deref().unwrap()]);
    let b = s.mom.create_album("일상", T2025).unwrap();
    s.dad.apply_remote([b.change.as_deref().unwrap()]);
    s.albums = [s.mine(a), s.mine(b)];
    for year in [2025, 2026] {
        let listed = s.mom.register_volume(year, T2025).unwrap();
        s.dad.apply_remote([listed.change.as_deref().unwrap()]);
        s.mine(listed);
        s.mom.attach_volume(year, None, [], &mom_actor).unwrap();
        s.dad.attach_volume(year, None, [], &dad_actor).unwrap();
    }
    // 2025: two photos, an event, a mission with dad; dad comments on the first.
    s.mom.file_new_in(Some(2025)).unwrap();
    s.dad.file_new_in(Some(2025)).unwrap();
    let p1 = s.mom.add_photo(&s.albums[0], photo(1), T2025 + 1).unwrap();
    let p2 = s.mom.add_photo(&s.albums[1], photo(2), T2025 + 2).unwrap();
    for p in [&p1, &p2] {
        s.dad
            .apply_remote_volume(2025, [p.change.as_deref().unwrap()])
            .unwrap();
    }
    let (p1, p2) = (s.mine(p1), s.mine(p2));
    let event = EventInput {
        title: "소풍".into(),
        start: "2025-06-10".into(),
        ..Default::default()
    };
    let e = s.mom.add_event(event, T2025 + 3).unwrap();
    s.mine(e);
    let dad_user = s.dad.me();
    let m = s
        .mom
        .add_mission("설거지", &[s.mom.me(), dad_user], None, T2025 + 4)
        .unwrap();
    s.dad
        .apply_remote_volume(2025, [m.change.as_deref().unwrap()])
        .unwrap();
    s.mine(m);
    let said = s.dad.add_comment(&p1, "좋다", T2025 + 5).unwrap();
    s.dads(said);
    // 2026: mom's photo in A, liked by dad; dad's photo in B.
    s.mom.file_new_in(Some(2026)).unwrap();
    s.dad.file_new_in(Some(2026)).unwrap();
    let p3 = s.mom.add_photo(&s.albums[0], photo(3), T2026).unwrap();
    s.dad
        .apply_remote_volume(2026, [p3.change.as_deref().unwrap()])
        .unwrap();
    let p3 = s.mine(p3);
    let liked = s.dad.set_like(&p3, true, T2026 + 1).unwrap();
    s.dads(liked);
    let p4 = s.dad.add_photo(&s.albums[1], photo(4), T2026 + 2).unwrap();
    let p4 = s.dads(p4);
    s.photos = [p1, p2, p3, p4];
    s
}

#[test]
fn each_document_caches_what_it_holds_and_the_screens_read_them_merged() {
    let s = scene();
    let whole = s.read_whole();
    assert_eq!(&whole, s.mom.view());
    assert_eq!(whole.photos.len(), 4);
    // The first screen: every document's cache, merged.
    assert_eq!(
        cached_family(&s.store, s.doc(None)).unwrap(),
        Some(whole.clone())
    );
    // The family's document's own cache holds none of the volumes' entities, and its
    // counters only: mom counted her photos in the volumes.
    let rows = s.store.load_view(s.doc(None)).unwrap().unwrap().rows;
    let core = view_cache::decode_family(&rows).unwrap();
    assert!(core.photos.is_empty() && core.calendar.is_empty() && core.missions.is_empty());
    assert_eq!(core.albums.len(), 2);
    let mom = s.mom.me().to_hex();
    assert_eq!(core.ever("photos", Some(&mom)), 0);
    assert_eq!(whole.ever("photos", Some(&mom)), 3);
    // Each volume's, what it holds.
    let rows = s.store.load_view(s.doc(Some(2025))).unwrap().unwrap().rows;
    let y2025 = view_cache::decode_family(&rows).unwrap();
    assert_eq!(y2025.photos.len(), 2);
    assert_eq!(y2025.photos[&s.photos[0]].comments.len(), 1);
    assert_eq!(y2025.ever("photos", Some(&mom)), 2);
}

#[test]
fn opening_loads_this_year_and_parks_the_others_until_an_edit_needs_them() {
    let mut s = scene();
    let whole = s.read_whole();
    let mut fd = s.open(2026);
    assert_eq!(fd.volume_years().collect::<Vec<_>>(), [2026]);
    assert_eq!(fd.parked_years().collect::<Vec<_>>(), [2025]);
    assert_eq!(fd.view(), &whole);
    // This year's photo: edited at once, in its volume.
    let liked = fd.set_like(&s.photos[2], true, T2026 + 10).unwrap();
    assert_eq!(liked.volume, Some(2026));
    s.mom = fd;
    s.mine(liked);
    assert_eq!(
        cached_family(&s.store, s.doc(None)).unwrap().as_ref(),
        Some(s.mom.view())
    );
    // Last year's: its volume is loaded first; nothing changed meanwhile.
    let before = s.mom.view().clone();
    let refused = s.mom.set_like(&s.photos[0], true, T2026 + 11);
    assert!(
        matches!(refused, Err(DocError::VolumeNotLoaded(2025))),
        "{refused:?}"
    );
    assert_eq!(s.mom.view(), &before);
    let mom_actor = s.mom_actor;
    load_volume(&s.store, &mut s.mom, 2025, &mom_actor).unwrap();
    assert_eq!(s.mom.volume_years().collect::<Vec<_>>(), [2025, 2026]);
    assert_eq!(s.mom.parked_years().count(), 0);
    assert_eq!(s.mom.view(), &before);
    let liked = s.mom.set_like(&s.photos[0], true, T2026 + 12).unwrap();
    assert_eq!(liked.volume, Some(2025));
    s.mine(liked);
    let whole = s.read_whole();
    assert_eq!(s.mom.view(), &whole);
    assert_eq!(cached_family(&s.store, s.doc(None)).unwrap(), Some(whole));
    // A new event filed in this year's volume, opened as of 2026 again.
    let mut fd = s.open(2026);
    fd.file_new_in(Some(2026)).unwrap();
    let event = EventInput {
        title: "생일".into(),
        start: "2026-07-01".into(),
        ..Default::default()
    };
    let added = fd.add_event(event, T2026 + 13).unwrap();
    assert_eq!(added.volume, Some(2026));
    s.mom = fd;
    s.mine(added);
    assert_eq!(s.mom.view(), &s.read_whole());
    assert_eq!(
        cached_family(&s.store, s.doc(None)).unwrap().as_ref(),
        Some(s.mom.view())
    );
}

#[test]
fn an_album_deleted_hides_its_photos_in_a_parked_volume() {
    let mut s = scene();
    s.mom = s.open(2026);
    assert_eq!(s.mom.parked_years().collect::<Vec<_>>(), [2025]);
    let deleted = s.mom.delete_album(&s.albums[0], T2026 + 20).unwrap();
    assert_eq!(deleted.volume, None);
    s.mine(deleted);
    let view = s.mom.view().clone();
    // Album A's photos of both years are gone from the view, B's stay.
    let [p1, p2, p3, p4] = s.photos.clone();
    assert!(!view.photos.contains_key(&p1) && !view.photos.contains_key(&p3));
    assert!(view.photos.contains_key(&p2) && view.photos.contains_key(&p4));
    assert_eq!(view, s.read_whole());
    assert_eq!(
        cached_family(&s.store, s.doc(None)).unwrap(),
        Some(view.clone())
    );
    // Loading the parked year changes nothing of it.
    let mom_actor = s.mom_actor;
    load_volume(&s.store, &mut s.mom, 2025, &mom_actor).unwrap();
    assert_eq!(s.mom.view(), &view);
    // Opened again with the year parked, the same.
    assert_eq!(s.open(2026).view(), &view);
}

#[test]
fn a_volume_whose_cache_is_not_valid_is_loaded_and_cached_again() {
    let mut s = scene();
    // Dad comments on last year's photo; the chunk reaches the store without rows (as
    // a chunk stored by a process that had not the family open).
    let said = s
        .dad
        .add_comment(&s.photos[1], "그립다", T2026 + 30)
        .unwrap();
    assert_eq!(said.volume, Some(2025));
    let change = said.change.unwrap();
    s.store
        .apply_remote(s.doc(Some(2025)), &[change.as_slice()], None)
        .unwrap();
    assert!(s.store.load_view(s.doc(Some(2025))).unwrap().is_none());
    assert_eq!(cached_family(&s.store, s.doc(None)).unwrap(), None);
    // Loaded to read it whole and cache it again, then kept from that cache.
    let fd = s.open(2026);
    assert_eq!(fd.volume_years().collect::<Vec<_>>(), [2026]);
    assert_eq!(fd.parked_years().collect::<Vec<_>>(), [2025]);
    assert_eq!(fd.view().photos[&s.photos[1]].comments.len(), 1);
    assert_eq!(fd.view(), &s.read_whole());
    // Cached again: the next open parks it.
    assert_eq!(
        cached_family(&s.store, s.doc(None)).unwrap().as_ref(),
        Some(fd.view())
    );
    let again = s.open(2026);
    assert_eq!(again.parked_years().collect::<Vec<_>>(), [2025]);
    assert_eq!(again.view(), fd.view());
}

#[test]
fn parked_volumes_merge_as_the_documents_do_hidden_and_doubled_entities_left_out() {
    let mut s = scene();
    let part = |doc: DocId| {
        let rows = s.store.load_view(doc).unwrap().unwrap().rows;
        view_cache::decode_family(&rows).unwrap()
    };
    // The family's document as if album A were deleted (its record hides A's photos
    // kept in volumes), and the volume of 2026 keeping a copy of last year's event
    // under the same id (only a misbehaving client makes one: the earlier year's
    // shows).
    let mut core = part(s.doc(None));
    core.albums.remove(&s.albums[0]);
    core.hidden
        .albums
        .insert(s.albums[0].clone(), T2026 + 1_000);
    let y2025 = part(s.doc(Some(2025)));
    let mut y2026 = part(s.doc(Some(2026)));
    let (event, first) = y2025.calendar.iter().next().unwrap();
    let mut copy = first.clone();
    copy.title = "다른 제목".into();
    y2026.calendar.insert(event.clone(), copy);
    let stored = s.store.load(s.doc(None)).unwrap().unwrap();
    let mut fd = FamilyDoc::load_with_view(
        stored.snapshot.as_deref(),
        stored.changes.iter().map(Vec::as_slice),
        &s.mom_actor,
        core.clone(),
    )
    .unwrap();
    let parts = vec![(2025, y2025.clone()), (2026, y2026.clone())];
    fd.open_volumes([], parts.clone(), &s.mom_actor).unwrap();
    let expected = doran_client_core::volume::merged(core, parts.clone()).view;
    assert_eq!(fd.view(), &expected);
    assert_eq!(fd.view().calendar[event], y2025.calendar[event]);
    assert!(!fd.view().photos.contains_key(&s.photos[0]));
    assert!(!fd.view().photos.contains_key(&s.photos[2]));
    assert_eq!(fd.view().photos.len(), 2);
    // The album read again from the family's document stands (the record hides no
    // standing album's photos): the photos the parked volumes kept aside show again,
    // without loading them.
    let renamed = s
        .dad
        .rename_album(&s.albums[0], "다시", T2026 + 2_000)
        .unwrap();
    assert_eq!(renamed.volume, None);
    let update = fd.apply_remote([renamed.change.as_deref().unwrap()]);
    assert!(update.refusals.is_empty());
    assert_eq!(fd.parked_years().count(), 2);
    let standing = part(s.doc(None));
    let again = doran_client_core::volume::merged(standing, parts).view;
    assert_eq!(fd.view().photos, again.photos);
    assert_eq!(fd.view().photos.len(), 4);
}

#[test]
fn a_hidden_photo_of_a_parked_year_is_not_shown_from_a_later_copy() {
    let mut s = scene();
    // Album A deleted: last year's photo of it is hidden. A copy of it under the same
    // id in this year's volume, in album B (only a misbehaving client makes one):
    // the earlier year's copy decides, and it is hidden, so neither shows — at open
    // as when read whole, and after an edit re-reads it.
    let deleted = s.mom.delete_album(&s.albums[0], T2026 + 40).unwrap();
    s.mine(deleted);
    let part = |doc: DocId| {
        let rows = s.store.load_view(doc).unwrap().unwrap().rows;
        view_cache::decode_family(&rows).unwrap()
    };
    let core = part(s.doc(None));
    let y2025 = part(s.doc(Some(2025)));
    let mut y2026 = part(s.doc(Some(2026)));
    let mut copy = y2025.photos[&s.photos[0]].clone();
    copy.album_id = s.albums[1].clone();
    y2026.photos.insert(s.photos[0].clone(), copy);
    let expected = doran_client_core::volume::merged(
        core.clone(),
        [(2025, y2025.clone()), (2026, y2026.clone())],
    )
    .view;
    assert!(!expected.photos.contains_key(&s.photos[0]));
    let stored = s.store.load(s.doc(None)).unwrap().unwrap();
    let mut fd = FamilyDoc::load_with_view(
        stored.snapshot.as_deref(),
        stored.changes.iter().map(Vec::as_slice),
        &s.mom_actor,
        core,
    )
    .unwrap();
    let this_year = s.store.load(s.doc(Some(2026))).unwrap().unwrap();
    let load = StoredVolume {
        year: 2026,
        snapshot: this_year.snapshot.as_deref(),
        chunks: this_year.changes.iter().map(Vec::as_slice).collect(),
        cached: Some(y2026),
    };
    fd.open_volumes([load], [(2025, y2025)], &s.mom_actor)
        .unwrap();
    assert_eq!(fd.view(), &expected);
}

#[test]
fn a_volume_that_does_not_load_is_kept_from_its_cache_and_one_not_here_is_not_found() {
    let mut s = scene();
    let whole = s.read_whole();
    // This year's volume's stored snapshot damaged: the family opens, that year shown
    // from its cache (parked), the others as ever.
    let doc = s.doc(Some(2026));
    let stored = s.store.load(doc).unwrap().unwrap();
    let mut saved = s.mom.save_volume(2026).unwrap();
    saved.truncate(saved.len() / 2);
    assert!(s.store.compact(doc, &saved, stored.log_end).unwrap());
    let fd = s.open(2026);
    assert_eq!(fd.volume_years().count(), 0);
    assert_eq!(fd.parked_years().collect::<Vec<_>>(), [2025, 2026]);
    assert_eq!(fd.view(), &whole);
    // A parked year not on this device cannot be loaded: said so, not "done".
    let mut fd = s.open(2027);
    let gone = s.id.volume(2025);
    let mom_actor = s.mom_actor;
    let other = tempfile::tempdir().unwrap();
    let empty = SqliteStore::open(other.path().join("empty.sqlite")).unwrap();
    let missing = load_volume(&empty, &mut fd, 2025, &mom_actor);
    assert!(
        matches!(missing, Err(OpenError::NotFound(d)) if d == gone),
        "{missing:?}"
    );
    assert_eq!(fd.parked_years().collect::<Vec<_>>(), [2025, 2026]);
}

#[test]
fn a_parked_year_written_meanwhile_by_another_process_loads_as_it_now_is() {
    let mut s = scene();
    let mut fd = s.open(2026);
    assert_eq!(fd.parked_years().collect::<Vec<_>>(), [2025]);
    // Another process on the device stores dad's comment on a photo of last year and
    // his like of another, while this one has the year parked.
    let said = s
        .dad
        .add_comment(&s.photos[1], "또 가자", T2026 + 50)
        .unwrap();
    let liked = s.dad.set_like(&s.photos[0], true, T2026 + 51).unwrap();
    assert_eq!((said.volume, liked.volume), (Some(2025), Some(2025)));
    for change in [said.change.unwrap(), liked.change.unwrap()] {
        s.store
            .apply_remote(s.doc(Some(2025)), &[change.as_slice()], None)
            .unwrap();
    }
    let mom_actor = s.mom_actor;
    load_volume(&s.store, &mut fd, 2025, &mom_actor).unwrap();
    s.mom = fd;
    let whole = s.read_whole();
    assert_eq!(s.mom.view(), &whole);
    assert_eq!(whole.photos[&s.photos[1]].comments.len(), 1);
    assert_eq!(whole.photos[&s.photos[0]].likes.len(), 1);
    // Loaded, it is cached again as it is now.
    assert_eq!(cached_family(&s.store, s.doc(None)).unwrap(), Some(whole));
}
