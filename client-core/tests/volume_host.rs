//! The device's host writing a family with per-year volumes (issue 17): each edit goes
//! to the document that keeps what it changes, with that document's log end; an edit
//! of a parked year loads it first; the first new entity of a year lists its volume;
//! another process's write to a volume is noticed; and a device without keys keeps a
//! volume's changes in the outbox (a volume is never pushed in the clear).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use doran_client_core::{
    Actor, FamilyDoc,
    family_store::{cached_family, open_family_in},
    store::{LocalStore, LogPos, SqliteStore},
    sync::{DocKind, IncomingChunk, StoreHost, SyncHost},
    view_cache::VIEW_VERSION,
};
use doran_protocol::{DocId, FamilyId, volume_year};
use support::{actor, photo};

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// One device's store file, opened by as many hosts (processes) as a test wants.
struct Device {
    dir: tempfile::TempDir,
    actor: Actor,
}

impl Device {
    fn new() -> Self {
        Device {
            dir: tempfile::tempdir().unwrap(),
            actor: actor(),
        }
    }

    fn store(&self) -> Arc<dyn LocalStore> {
        Arc::new(SqliteStore::open(self.dir.path().join("device.sqlite")).unwrap())
    }

    /// A host as the apps make it today (new entities where the family files them).
    fn host(&self) -> StoreHost {
        StoreHost::new(self.store(), self.actor)
    }

    /// A host that files what is made in a year in that year's volume.
    fn filing_host(&self) -> StoreHost {
        self.host().filing_by_year()
    }
}

fn log_end(host: &StoreHost, doc: DocId) -> Option<LogPos> {
    host.store().log_end(doc).unwrap()
}

/// The view cache of `doc` is valid as of its log end.
fn cache_valid(store: &dyn LocalStore, doc: DocId) -> bool {
    let cached = store.load_view(doc).unwrap();
    cached.is_some_and(|c| {
        c.version == VIEW_VERSION && Some(c.through) == store.log_end(doc).unwrap()
    })
}

/// Sets `doc`'s view cache aside (a version no reader takes), so the next open reads
/// its log.
fn forget_cache(store: &dyn LocalStore, doc: DocId) {
    let end = store.log_end(doc).unwrap().unwrap();
    assert!(store.replace_view(doc, 0, end, &[]).unwrap());
}

/// A family of mom's with an album, made through her host.
fn family_with_album(host: &StoreHost, family: FamilyId) -> String {
    host.create_family(family, "우리 가족", "엄마", now_ms())
        .unwrap();
    host.edit_family(family, |fd| fd.create_album("여행", now_ms()))
        .unwrap()
}

#[test]
fn the_first_photo_of_a_year_lists_its_volume_and_the_year_keeps_it() {
    let mom = Device::new();
    let host = mom.filing_host();
    let family = FamilyId::new_family(true);
    let (core, this) = (DocId::from(family), volume_year(now_ms()));
    let volume = family.volume(this);
    let album = family_with_album(&host, family);
    // The album is the family's document's: no volume yet.
    assert_eq!(log_end(&host, volume), None);
    let before = log_end(&host, core).unwrap();

    let p1 = host
        .edit_family(family, |fd| fd.add_photo(&album, photo(1), now_ms()))
        .unwrap();
    // Two changes: the listing in the family's document, the photo in the volume.
    let listed = log_end(&host, core).unwrap();
    assert!(listed > before);
    assert!(log_end(&host, volume).is_some());
    let (views, places) = host
        .read_family(family, |fd| {
            (fd.view().clone(), fd.volume_years().collect::<Vec<_>>())
        })
        .unwrap();
    assert!(views.volumes.contains(&this));
    assert_eq!(places, vec![this]);
    assert!(views.photos.contains_key(&p1));

    // Later edits of the year: no second listing; a like and a second photo go to the
    // volume, whose cache stays valid, and the family's document does not move.
    host.edit_family(family, |fd| fd.set_like(&p1, true, now_ms()))
        .unwrap();
    let p2 = host
        .edit_family(family, |fd| fd.add_photo(&album, photo(2), now_ms()))
        .unwrap();
    assert_eq!(log_end(&host, core).unwrap(), listed);
    let store = host.store();
    assert!(cache_valid(&**store, volume) && cache_valid(&**store, core));

    // The first screen, from the caches alone, and the family's document's own cache
    // without the volume's photos.
    let first = cached_family(&**store, core)
        .unwrap()
        .expect("valid caches");
    assert_eq!(first.photos.len(), 2);
    assert!(
        first.photos[&p1]
            .likes
            .contains_key(&mom.actor.user.to_hex())
    );
    assert!(first.photos.contains_key(&p2));
    let rows = store.load_view(core).unwrap().unwrap().rows;
    assert!(!rows.iter().any(|(key, _)| key.starts_with("photos/")));

    // Another process opening the store sees the same, the year loaded.
    let again = open_family_in(&*mom.store(), core, &mom.actor, this).unwrap();
    assert_eq!(again.family.view(), &views_after(&host, family));
    assert_eq!(again.volumes.get(&this).copied(), log_end(&host, volume));
}

fn views_after(host: &StoreHost, family: FamilyId) -> doran_client_core::model::Family {
    host.read_family(family, |fd| fd.view().clone()).unwrap()
}

#[test]
fn a_host_that_does_not_file_by_year_keeps_new_entities_in_the_family_document() {
    let mom = Device::new();
    let host = mom.host();
    let family = FamilyId::new_family(true);
    let album = family_with_album(&host, family);
    host.edit_family(family, |fd| fd.add_photo(&album, photo(1), now_ms()))
        .unwrap();
    let view = views_after(&host, family);
    assert!(view.volumes.is_empty());
    assert_eq!(view.photos.len(), 1);
    assert_eq!(log_end(&host, family.volume(volume_year(now_ms()))), None);
}

#[test]
fn a_volumes_changes_wait_in_the_outbox_of_a_device_without_keys() {
    let mom = Device::new();
    let host = mom.filing_host();
    let family = FamilyId::new_family(true);
    let album = family_with_album(&host, family);
    host.edit_family(family, |fd| fd.add_photo(&album, photo(1), now_ms()))
        .unwrap();
    let volume = family.volume(volume_year(now_ms()));
    // Waiting, counted, never handed out: a push the relay refuses leaves the outbox.
    let out = host.outbox(None, 100).unwrap();
    assert!(!out.is_empty());
    assert!(out.iter().all(|e| e.doc != volume), "{out:?}");
    let stored = host.store().outbox_after(None, 100).unwrap();
    assert!(stored.iter().any(|e| e.doc == volume));
    assert_eq!(host.pending_count().unwrap(), stored.len() as u64);
}

/// Mom's store with last year's volume holding a photo (written before this year),
/// this year's volume listed and holding one; returns the family, the album and the
/// two photos.
fn two_years(mom: &Device) -> (FamilyId, [String; 2]) {
    let store = mom.store();
    let family = FamilyId::new_family(true);
    let core = DocId::from(family);
    let this = volume_year(now_ms());
    let last = this - 1;
    let (mut fd, created) =
        FamilyDoc::create(family, "우리 가족", "엄마", &mom.actor, now_ms()).unwrap();
    store.commit_local(core, &created).unwrap();
    let album = fd.create_album("여행", now_ms()).unwrap();
    store
        .commit_local(core, album.change.as_deref().unwrap())
        .unwrap();
    let mut photos = Vec::new();
    for (year, n) in [(last, 1), (this, 2)] {
        let listed = fd.register_volume(year, now_ms()).unwrap();
        store
            .commit_local(core, listed.change.as_deref().unwrap())
            .unwrap();
        fd.attach_volume(year, None, [], &mom.actor).unwrap();
        fd.file_new_in(Some(year)).unwrap();
        let p = fd.add_photo(&album.value, photo(n), now_ms()).unwrap();
        assert_eq!(p.volume, Some(year));
        store
            .commit_local(family.volume(year), p.change.as_deref().unwrap())
            .unwrap();
        photos.push(p.value);
    }
    // One open rebuilds every cache (the commits above wrote none) and parks last year.
    let opened = open_family_in(&*store, core, &mom.actor, this).unwrap();
    assert_eq!(opened.family.parked_years().collect::<Vec<_>>(), vec![last]);
    (family, [photos[0].clone(), photos[1].clone()])
}

#[test]
fn an_edit_of_last_years_photo_loads_its_volume_and_is_written_there() {
    let mom = Device::new();
    let (family, [old, _]) = two_years(&mom);
    let this = volume_year(now_ms());
    let (core, last) = (DocId::from(family), family.volume(this - 1));
    let host = mom.host();
    let parked = host
        .read_family(family, |fd| fd.parked_years().collect::<Vec<_>>())
        .unwrap();
    assert_eq!(parked, vec![this - 1]);
    let (core_before, last_before) = (log_end(&host, core), log_end(&host, last));

    let said = host
        .edit_family(family, |fd| fd.add_comment(&old, "그립다", now_ms()))
        .unwrap();
    assert_eq!(log_end(&host, core), core_before);
    assert!(log_end(&host, last) > last_before);
    let loaded = host
        .read_family(family, |fd| fd.volume_years().collect::<Vec<_>>())
        .unwrap();
    assert_eq!(loaded, vec![this - 1, this]);
    // The year's cache took the comment in the same write; the first screen shows it.
    let store = host.store();
    assert!(cache_valid(&**store, last));
    let first = cached_family(&**store, core).unwrap().unwrap();
    assert!(first.photos[&old].comments.contains_key(&said));
    // And the log holds it: a fresh open, the year's cache set aside, reads it from
    // last year's stored volume.
    forget_cache(&**store, last);
    let fresh = open_family_in(&*mom.store(), core, &mom.actor, this).unwrap();
    assert!(
        fresh.family.view().photos[&old]
            .comments
            .contains_key(&said)
    );
}

#[test]
fn another_process_writing_a_parked_year_is_seen_and_not_overwritten() {
    let mom = Device::new();
    let (family, [old, new]) = two_years(&mom);
    let (watch, cli) = (mom.host(), mom.host());
    // The app has the family open, last year parked.
    assert!(views_after(&watch, family).photos[&old].likes.is_empty());
    // The command line comments on last year's photo, then on this year's.
    let c1 = cli
        .edit_family(family, |fd| fd.add_comment(&old, "작년", now_ms()))
        .unwrap();
    let c2 = cli
        .edit_family(family, |fd| fd.add_comment(&new, "올해", now_ms()))
        .unwrap();
    // The app sees both.
    let view = views_after(&watch, family);
    assert!(view.photos[&old].comments.contains_key(&c1));
    assert!(view.photos[&new].comments.contains_key(&c2));
    // Its own edits of either year are written after them, nothing lost.
    watch
        .edit_family(family, |fd| fd.set_like(&old, true, now_ms()))
        .unwrap();
    watch
        .edit_family(family, |fd| fd.set_like(&new, true, now_ms()))
        .unwrap();
    let this = volume_year(now_ms());
    let fresh = open_family_in(&*mom.store(), DocId::from(family), &mom.actor, this).unwrap();
    let photos = &fresh.family.view().photos;
    let me = mom.actor.user.to_hex();
    for (photo, comment) in [(&old, &c1), (&new, &c2)] {
        assert!(photos[photo].comments.contains_key(comment));
        assert!(photos[photo].likes.contains_key(&me));
    }
    let store = mom.store();
    for doc in [family.volume(this - 1), family.volume(this)] {
        assert!(cache_valid(&*store, doc));
    }
    // An edit made meanwhile by the app is never written over the command line's.
    let c3 = cli
        .edit_family(family, |fd| fd.add_comment(&old, "또", now_ms()))
        .unwrap();
    let c4 = watch
        .edit_family(family, |fd| fd.add_comment(&old, "응", now_ms()))
        .unwrap();
    let fresh = open_family_in(&*store, DocId::from(family), &mom.actor, this).unwrap();
    let comments = &fresh.family.view().photos[&old].comments;
    assert!(comments.contains_key(&c3) && comments.contains_key(&c4));
}

#[test]
fn a_year_another_device_listed_is_started_here_and_listed_once() {
    let (mom, dad) = (Device::new(), Device::new());
    let family = FamilyId::new_family(true);
    let core = DocId::from(family);
    let this = volume_year(now_ms());
    let mom_host = mom.filing_host();
    let album = family_with_album(&mom_host, family);
    mom_host
        .edit_family(family, |fd| fd.add_member(dad.actor.user, "아빠", now_ms()))
        .unwrap();
    mom_host
        .edit_family(family, |fd| fd.add_photo(&album, photo(1), now_ms()))
        .unwrap();
    // Dad's device gets the family's document (not the volume: its sync is not built).
    let chunks: Vec<IncomingChunk> = mom_host
        .store()
        .outbox_after(None, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.doc == core)
        .enumerate()
        .map(|(i, e)| IncomingChunk {
            seq: i as u64 + 1,
            author: Some(mom.actor.user),
            bytes: e.bytes,
        })
        .collect();
    let seqs = chunks.len() as u64;
    let dad_host = dad.filing_host();
    let change = dad_host
        .apply(core, DocKind::Family(family), None, &chunks, seqs)
        .unwrap();
    assert_eq!(change.refused, 0);
    let core_end = log_end(&dad_host, core);
    // His photo goes to the year's volume, started here from its genesis; the
    // family's document is not written again.
    let p = dad_host
        .edit_family(family, |fd| fd.add_photo(&album, photo(2), now_ms()))
        .unwrap();
    assert_eq!(log_end(&dad_host, core), core_end);
    assert!(log_end(&dad_host, family.volume(this)).is_some());
    let view = views_after(&dad_host, family);
    assert!(view.photos.contains_key(&p));
    assert_eq!(view.volumes.len(), 1);
}

/// The clock of the test that turns the year.
static CLOCK: AtomicI64 = AtomicI64::new(0);

fn clock() -> i64 {
    CLOCK.load(Ordering::SeqCst)
}

#[test]
fn a_family_open_when_the_year_turns_files_the_new_year_in_its_own_volume() {
    // 2026-12-31 23:59 and 2027-01-01 00:01 (UTC).
    const NEW_YEAR: i64 = 1_798_761_600_000;
    let (dec31, jan1) = (NEW_YEAR - 60_000, NEW_YEAR + 60_000);
    CLOCK.store(dec31, Ordering::SeqCst);
    let mom = Device::new();
    let host = mom.filing_host().with_clock(clock);
    let family = FamilyId::new_family(true);
    let core = DocId::from(family);
    host.create_family(family, "우리 가족", "엄마", dec31)
        .unwrap();
    let album = host
        .edit_family(family, |fd| fd.create_album("여행", dec31))
        .unwrap();
    let p1 = host
        .edit_family(family, |fd| fd.add_photo(&album, photo(1), dec31))
        .unwrap();
    assert!(log_end(&host, family.volume(2026)).is_some());
    // A second family, open on the 31st with nothing of a year yet.
    let other = FamilyId::new_family(true);
    host.create_family(other, "외가", "엄마", dec31).unwrap();
    let other_album = host
        .edit_family(other, |fd| fd.create_album("명절", dec31))
        .unwrap();

    // The family stays open across midnight: the next photo lists 2027 and is filed
    // there, and 2026 is parked.
    CLOCK.store(jan1, Ordering::SeqCst);
    let p2 = host
        .edit_family(family, |fd| fd.add_photo(&album, photo(2), jan1))
        .unwrap();
    let y2027 = log_end(&host, family.volume(2027));
    assert!(y2027.is_some());
    let (listed, loaded, parked) = host
        .read_family(family, |fd| {
            (
                fd.view().volumes.iter().copied().collect::<Vec<_>>(),
                fd.volume_years().collect::<Vec<_>>(),
                fd.parked_years().collect::<Vec<_>>(),
            )
        })
        .unwrap();
    assert_eq!(listed, vec![2026, 2027]);
    assert_eq!((loaded, parked), (vec![2027], vec![2026]));

    // A like on the December photo is written to 2026's volume.
    let (core_end, y2026) = (log_end(&host, core), log_end(&host, family.volume(2026)));
    host.edit_family(family, |fd| fd.set_like(&p1, true, jan1))
        .unwrap();
    assert!(log_end(&host, family.volume(2026)) > y2026);
    assert_eq!(log_end(&host, family.volume(2027)), y2027);
    assert_eq!(log_end(&host, core), core_end);
    let first = cached_family(&**host.store(), core).unwrap().unwrap();
    assert!(
        first.photos[&p1]
            .likes
            .contains_key(&mom.actor.user.to_hex())
    );
    assert!(first.photos.contains_key(&p2));

    // The second family's first photo, after midnight, lists 2027 alone.
    host.edit_family(other, |fd| fd.add_photo(&other_album, photo(3), jan1))
        .unwrap();
    let listed = views_after(&host, other).volumes;
    assert_eq!(listed.into_iter().collect::<Vec<_>>(), vec![2027]);
    assert!(log_end(&host, other.volume(2027)).is_some());
    assert_eq!(log_end(&host, other.volume(2026)), None);
}

#[test]
fn this_years_volume_that_does_not_load_is_never_started_over_beside_it() {
    let mom = Device::new();
    let (family, _) = two_years(&mom);
    let this = volume_year(now_ms());
    let (core, volume) = (DocId::from(family), family.volume(this));
    let store = mom.store();
    // This year's stored snapshot damaged, and no valid cache to show it from.
    let mut opened = open_family_in(&*store, core, &mom.actor, this).unwrap();
    let mut saved = opened.family.save_volume(this).unwrap();
    saved.truncate(saved.len() / 2);
    let end = store.log_end(volume).unwrap().unwrap();
    assert!(store.compact(volume, &saved, end).unwrap());
    let end = store.log_end(volume).unwrap();
    assert!(store.replace_view(volume, 0, end.unwrap(), &[]).unwrap());

    // A new photo is kept (in the family's document), and nothing is written beside
    // what is stored of this year.
    let host = mom.filing_host();
    let album = views_after(&host, family)
        .albums
        .into_keys()
        .next()
        .unwrap();
    let p = host
        .edit_family(family, |fd| fd.add_photo(&album, photo(3), now_ms()))
        .unwrap();
    assert_eq!(log_end(&host, volume), end);
    assert!(views_after(&host, family).photos.contains_key(&p));
    let loaded = host
        .read_family(family, |fd| fd.volume_years().collect::<Vec<_>>())
        .unwrap();
    assert!(!loaded.contains(&this));
}

#[test]
fn this_years_volume_is_compacted_like_the_familys_document() {
    use doran_client_core::sync::COMPACT_STORED_AFTER;
    let mom = Device::new();
    let host = mom.filing_host();
    let family = FamilyId::new_family(true);
    let core = DocId::from(family);
    let volume = family.volume(volume_year(now_ms()));
    let album = family_with_album(&host, family);
    let p = host
        .edit_family(family, |fd| fd.add_photo(&album, photo(1), now_ms()))
        .unwrap();
    let store = host.store().clone();
    assert_eq!(host.compact_long_tails().unwrap(), 0, "short tails stay");
    // A year of likes and unlikes: every one a row of the volume's tail.
    for i in 0..COMPACT_STORED_AFTER {
        host.edit_family(family, |fd| fd.set_like(&p, i % 2 == 0, now_ms()))
            .unwrap();
    }
    assert!(store.tail_len(volume).unwrap() >= COMPACT_STORED_AFTER);
    let end = store.log_end(volume).unwrap();
    let view = views_after(&host, family);
    assert_eq!(host.compact_long_tails().unwrap(), 1);
    assert_eq!(store.tail_len(volume).unwrap(), 0);
    assert_eq!(store.log_end(volume).unwrap(), end);
    // The caches stay valid; a fresh open, the volume's cache set aside, reads the
    // same family from the snapshot.
    assert!(cache_valid(&*store, volume) && cache_valid(&*store, core));
    forget_cache(&*store, volume);
    let this = volume_year(now_ms());
    let fresh = open_family_in(&*mom.store(), core, &mom.actor, this).unwrap();
    assert_eq!(fresh.family.volume_years().collect::<Vec<_>>(), vec![this]);
    assert_eq!(fresh.family.view(), &view);
    // And the host goes on writing the year after it.
    let said = host
        .edit_family(family, |fd| fd.add_comment(&p, "좋다", now_ms()))
        .unwrap();
    assert_eq!(store.tail_len(volume).unwrap(), 1);
    let first = cached_family(&*store, core).unwrap().unwrap();
    assert!(first.photos[&p].comments.contains_key(&said));
}

#[test]
fn two_processes_making_the_years_first_photo_at_once_list_it_once() {
    let mom = Device::new();
    let (app, cli) = (mom.filing_host(), mom.filing_host());
    let family = FamilyId::new_family(true);
    let core = DocId::from(family);
    let this = volume_year(now_ms());
    let album = family_with_album(&app, family);
    // Both have the family open before either lists the year.
    assert!(views_after(&cli, family).volumes.is_empty());
    let p1 = app
        .edit_family(family, |fd| fd.add_photo(&album, photo(1), now_ms()))
        .unwrap();
    let listed = log_end(&app, core);
    // The command line's first photo finds the year listed by the app's meanwhile:
    // its own listing is not written, the photo joins the app's in the volume.
    let p2 = cli
        .edit_family(family, |fd| fd.add_photo(&album, photo(2), now_ms()))
        .unwrap();
    assert_eq!(log_end(&cli, core), listed);
    let fresh = open_family_in(&*mom.store(), core, &mom.actor, this).unwrap();
    let view = fresh.family.view();
    assert_eq!(view.volumes.iter().copied().collect::<Vec<_>>(), vec![this]);
    assert!(view.photos.contains_key(&p1) && view.photos.contains_key(&p2));
    assert_eq!(views_after(&app, family), view.clone());
}
