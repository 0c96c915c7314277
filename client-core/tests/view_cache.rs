//! The view cache in a real SQLite store: kept exact by every write, used to open a
//! family without reading the document again, rebuilt when it cannot be trusted.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

mod support;

use doran_client_core::{
    Edit, EventInput, FamilyDoc, PhotoInput,
    family_store::{cached_family, open_family},
    store::{LocalStore, SqliteStore},
};
use doran_protocol::{DocId, FamilyId};
use support::actor;

const T0: i64 = 1_764_300_000_000;

fn commit<T>(store: &SqliteStore, doc: DocId, edit: Edit<T>) -> T {
    if let Some(change) = &edit.change {
        store
            .commit_local_with_view(doc, change, edit.view.as_deref())
            .unwrap();
    }
    edit.value
}

/// A photo with a caption, so that the cache carries Korean text.
fn photo(n: u8) -> PhotoInput {
    PhotoInput {
        caption: "바다".into(),
        ..support::photo(n)
    }
}

#[test]
fn the_cache_follows_local_and_remote_writes_and_opens_the_family() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("device.sqlite")).unwrap();
    let (mom, dad) = (actor(), actor());
    let family = FamilyId::random();
    let doc_id = DocId::from(family);

    // Step 1: create; the first open builds the cache.
    let (doc, first) = FamilyDoc::create(family, "우리 가족", "엄마", &mom, T0).unwrap();
    store.commit_local(doc_id, &first).unwrap();
    assert!(cached_family(&store, doc_id).unwrap().is_none());
    drop(doc);
    let mut doc = open_family(&store, doc_id, &mom).unwrap();
    assert_eq!(
        cached_family(&store, doc_id).unwrap().as_ref(),
        Some(doc.view())
    );

    // Step 2: local edits carry their rows.
    commit(
        &store,
        doc_id,
        doc.add_member(dad.user, "아빠", T0 + 1).unwrap(),
    );
    let album = commit(&store, doc_id, doc.create_album("여행", T0 + 2).unwrap());
    let p = commit(
        &store,
        doc_id,
        doc.add_photo(&album, photo(1), T0 + 3).unwrap(),
    );
    commit(&store, doc_id, doc.add_comment(&p, "좋다", T0 + 4).unwrap());
    commit(&store, doc_id, doc.rename("햇살 가족", T0 + 5).unwrap());
    commit(&store, doc_id, doc.register_volume(2026, T0 + 5).unwrap());
    assert_eq!(
        cached_family(&store, doc_id).unwrap().as_ref(),
        Some(doc.view())
    );

    // Step 3: dad's changes arrive; they carry their rows too, deletes included.
    let mut dads = FamilyDoc::load(Some(&doc.save()), [], &dad).unwrap();
    let a = dads.set_like(&p, true, T0 + 6).unwrap().change.unwrap();
    let b = dads
        .add_event(
            EventInput {
                title: "소풍".into(),
                start: "2026-05-05".into(),
                ..Default::default()
            },
            T0 + 7,
        )
        .unwrap()
        .change
        .unwrap();
    let c = dads.delete_album(&album, T0 + 8).unwrap_err(); // not his album
    assert!(matches!(c, doran_client_core::DocError::Forbidden(_)));
    let v = dads.register_volume(2027, T0 + 8).unwrap().change.unwrap();
    let update = doc.apply_remote([a.as_slice(), b.as_slice(), v.as_slice()]);
    store
        .apply_remote_with_view(doc_id, &[&a, &b, &v], Some(3), update.view.as_deref())
        .unwrap();
    commit(&store, doc_id, doc.delete_album(&album, T0 + 9).unwrap());
    let cached = cached_family(&store, doc_id).unwrap().unwrap();
    assert_eq!(&cached, doc.view());
    assert!(cached.photos.is_empty() && cached.albums.is_empty());
    assert_eq!(cached.calendar.len(), 1);
    assert_eq!(cached.volumes, [2026, 2027].into());

    // Step 4: reopening uses the cache and agrees with a full read of the document.
    let expected = doc.view().clone();
    drop(doc);
    let reopened = open_family(&store, doc_id, &mom).unwrap();
    assert_eq!(reopened.view(), &expected);
    let stored = store.load(doc_id).unwrap().unwrap();
    let full = FamilyDoc::load(
        stored.snapshot.as_deref(),
        stored.changes.iter().map(Vec::as_slice),
        &mom,
    )
    .unwrap();
    assert_eq!(full.view(), &expected);
}

#[test]
fn a_write_without_rows_invalidates_and_the_next_open_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("device.sqlite")).unwrap();
    let mom = actor();
    let family = FamilyId::random();
    let doc_id = DocId::from(family);
    let (_, first) = FamilyDoc::create(family, "우리 가족", "엄마", &mom, T0).unwrap();
    store.commit_local(doc_id, &first).unwrap();
    let mut doc = open_family(&store, doc_id, &mom).unwrap();
    assert!(cached_family(&store, doc_id).unwrap().is_some());

    // An edit stored without its rows: the cache can no longer be trusted.
    let m = doc.add_mission("설거지", &[], None, T0 + 1).unwrap();
    store
        .commit_local(doc_id, m.change.as_ref().unwrap())
        .unwrap();
    assert!(cached_family(&store, doc_id).unwrap().is_none());
    // Rows stored later do not revive it.
    commit(&store, doc_id, doc.create_album("a", T0 + 2).unwrap());
    assert!(cached_family(&store, doc_id).unwrap().is_none());

    // Opening reads the document and rebuilds the cache, which is then exact.
    let expected = doc.view().clone();
    let reopened = open_family(&store, doc_id, &mom).unwrap();
    assert_eq!(reopened.view(), &expected);
    assert_eq!(cached_family(&store, doc_id).unwrap(), Some(expected));
}
