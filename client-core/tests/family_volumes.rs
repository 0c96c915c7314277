//! A family's document with its per-year volumes loaded on a device (issue 17): the
//! view is the merged view of the family's document and the volumes, new entities go
//! to the volume they are filed in, an edit goes to the document that keeps what it
//! changes, and another device applying those changes reads the same family.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doran_client_core::{
    Actor, DocError, EventInput, FamilyDoc,
    model::Family,
    volume::{Place, merged},
};
use doran_protocol::FamilyId;
use support::{actor, photo};

/// 2026-05-29, in the volume of 2026.
const T0: i64 = 1_780_000_000_000;

/// Mom (the host) and dad, each with the family's document and its (empty) volume of
/// 2026 loaded; an album made in the family's document.
struct Family2 {
    mom: FamilyDoc,
    dad: FamilyDoc,
    dad_actor: Actor,
    album: String,
}

fn family() -> Family2 {
    let (mom_actor, dad_actor) = (actor(), actor());
    let id = FamilyId::new_family(true);
    let (mut mom, _) = FamilyDoc::create(id, "우리 가족", "엄마", &mom_actor, T0).unwrap();
    let mut dad = FamilyDoc::load(Some(&mom.save()), [], &dad_actor).unwrap();
    let join = dad.add_member(dad_actor.user, "아빠", T0).unwrap();
    core(&mut mom, &join.change.unwrap());
    let album = mom.create_album("여행", T0).unwrap();
    core(&mut dad, &album.change.unwrap());
    let listed = mom.register_volume(2026, T0).unwrap();
    core(&mut dad, &listed.change.unwrap());
    for (doc, who) in [(&mut mom, &mom_actor), (&mut dad, &dad_actor)] {
        doc.attach_volume(2026, None, [], who).unwrap();
        doc.file_new_in(Some(2026)).unwrap();
    }
    Family2 {
        mom,
        dad,
        dad_actor,
        album: album.value,
    }
}

/// Applies a change of the family's document; none refused.
fn core(doc: &mut FamilyDoc, change: &[u8]) {
    let update = doc.apply_remote([change]);
    assert!(update.refusals.is_empty(), "{:?}", update.refusals);
}

/// Applies a change of the volume of 2026; none refused.
fn volume(doc: &mut FamilyDoc, change: &[u8]) {
    let update = doc.apply_remote_volume(2026, [change]).unwrap();
    assert!(update.refusals.is_empty(), "{:?}", update.refusals);
}

/// The device's view, as a device that loads the same documents from nothing reads
/// it (`volume::merged` of each read whole): what the incremental view must equal.
fn read_afresh(doc: &mut FamilyDoc, who: &Actor) -> Family {
    let mut again = FamilyDoc::load(Some(&doc.save()), [], who).unwrap();
    for year in doc.volume_years().collect::<Vec<_>>() {
        let saved = doc.save_volume(year).unwrap();
        again.attach_volume(year, Some(&saved), [], who).unwrap();
    }
    again.view().clone()
}

#[test]
fn new_entities_go_to_the_volume_and_edits_to_where_they_are_kept() {
    let mut f = family();
    // Mom adds a photo: a change of the volume, which dad applies as such.
    let added = f.mom.add_photo(&f.album, photo(1), T0 + 1).unwrap();
    assert_eq!(added.volume, Some(2026));
    let id = added.value;
    volume(&mut f.dad, &added.change.unwrap());
    assert!(f.dad.view().photos.contains_key(&id));
    // Dad likes it and comments: changes of the volume too (where the photo is), his
    // comment counted there.
    let liked = f.dad.set_like(&id, true, T0 + 2).unwrap();
    assert_eq!(liked.volume, Some(2026));
    let said = f.dad.add_comment(&id, "멋지다", T0 + 3).unwrap();
    assert_eq!(said.volume, Some(2026));
    for change in [liked.change.unwrap(), said.change.unwrap()] {
        volume(&mut f.mom, &change);
    }
    let dad = f.dad_actor.user.to_hex();
    assert!(f.mom.view().photos[&id].likes.contains_key(&dad));
    assert_eq!(f.mom.view().photos[&id].comments.len(), 1);
    assert_eq!(f.mom.view().ever("comments", Some(&dad)), 1);
    // Filed in the family's document again, an event goes there; renaming the album
    // (the family's document keeps albums) too.
    f.mom.file_new_in(None).unwrap();
    let event = f
        .mom
        .add_event(
            EventInput {
                title: "소풍".into(),
                start: "2026-06-01".into(),
                ..Default::default()
            },
            T0 + 4,
        )
        .unwrap();
    assert_eq!(event.volume, None);
    core(&mut f.dad, &event.change.unwrap());
    let renamed = f.mom.rename_album(&f.album, "여름 여행", T0 + 5).unwrap();
    assert_eq!(renamed.volume, None);
    core(&mut f.dad, &renamed.change.unwrap());
    // A second photo, in the family's document: mom's photo counter is one in each
    // document, two in the view.
    let second = f.mom.add_photo(&f.album, photo(2), T0 + 6).unwrap();
    assert_eq!(second.volume, None);
    core(&mut f.dad, &second.change.unwrap());
    let mom = f.mom.me().to_hex();
    assert_eq!(f.dad.view().ever("photos", Some(&mom)), 2);
    // Both devices read the same family, and what each holds incrementally is what
    // a device reading every document whole reads.
    assert_eq!(f.mom.view(), f.dad.view());
    let dad_actor = f.dad_actor;
    assert_eq!(&read_afresh(&mut f.dad, &dad_actor), f.dad.view());
    // And what volume::merged makes of the documents read on their own.
    let m = merged(
        FamilyDoc::load(Some(&f.dad.save()), [], &dad_actor)
            .unwrap()
            .view()
            .clone(),
        [(2026, volume_alone(&mut f.dad, &dad_actor))],
    );
    assert_eq!(&m.view, f.dad.view());
    assert_eq!(m.places[&("photos", id)], Place::Year(2026));
    assert_eq!(m.places[&("photos", second.value)], Place::Core);
}

/// The volume of 2026 read on its own, whole: its snapshot read as a family's
/// document reads (its four collections and its counters at its root).
fn volume_alone(doc: &mut FamilyDoc, who: &Actor) -> Family {
    let saved = doc.save_volume(2026).unwrap();
    FamilyDoc::load(Some(&saved), [], who)
        .unwrap()
        .view()
        .clone()
}

#[test]
fn an_album_deleted_hides_its_photos_kept_in_the_volume() {
    let mut f = family();
    let added = f.dad.add_photo(&f.album, photo(1), T0 + 1).unwrap();
    volume(&mut f.mom, &added.change.unwrap());
    let id = added.value;
    // A photo of another album, kept in the volume too: it stays.
    let other = f.mom.create_album("집", T0 + 1).unwrap();
    core(&mut f.dad, &other.change.unwrap());
    let kept = f.mom.add_photo(&other.value, photo(2), T0 + 1).unwrap();
    volume(&mut f.dad, &kept.change.unwrap());
    // Mom (the host) deletes the album: a change of the family's document, which
    // cannot remove dad's photo from the volume; its record hides it on dad's device.
    let deleted = f.mom.delete_album(&f.album, T0 + 2).unwrap();
    assert_eq!(deleted.volume, None);
    assert!(!f.mom.view().photos.contains_key(&id));
    core(&mut f.dad, &deleted.change.unwrap());
    assert!(!f.dad.view().photos.contains_key(&id));
    assert!(f.dad.view().photos.contains_key(&kept.value));
    assert!(matches!(
        f.dad.set_like(&id, true, T0 + 3),
        Err(DocError::NotFound { .. })
    ));
    let dad_actor = f.dad_actor;
    assert_eq!(&read_afresh(&mut f.dad, &dad_actor), f.dad.view());
    assert_eq!(&as_merged(&mut f.dad, &dad_actor).view, f.dad.view());
}

/// `volume::merged` of the family's document and the volume of 2026, each read whole
/// on its own.
fn as_merged(doc: &mut FamilyDoc, who: &Actor) -> doran_client_core::volume::Merged {
    let core = FamilyDoc::load(Some(&doc.save()), [], who).unwrap();
    merged(core.view().clone(), [(2026, volume_alone(doc, who))])
}

/// A mission kept in a volume completes when every other participant ticked it, as
/// every device checks it there (a volume has no member list): a first tick marks no
/// completion, and the change is taken by the other device.
#[test]
fn a_mission_kept_in_a_volume_completes_as_the_volume_checks_it() {
    let mut f = family();
    let (mom, dad) = (f.mom.me(), f.dad_actor.user);
    let made = f
        .mom
        .add_mission("설거지", &[mom, dad], None, T0 + 1)
        .unwrap();
    assert_eq!(made.volume, Some(2026));
    volume(&mut f.dad, &made.change.unwrap());
    let first = f.dad.set_mission_done(&made.value, true, T0 + 2).unwrap();
    assert_eq!(first.volume, Some(2026));
    volume(&mut f.mom, &first.change.unwrap());
    assert_eq!(f.mom.view().ever("completed", None), 0);
    let last = f.mom.set_mission_done(&made.value, true, T0 + 3).unwrap();
    volume(&mut f.dad, &last.change.unwrap());
    assert_eq!(f.dad.view().ever("completed", Some(&mom.to_hex())), 1);
    for who in [mom, dad] {
        assert_eq!(f.dad.view().ever("ticks", Some(&who.to_hex())), 1);
    }
    assert_eq!(f.mom.view(), f.dad.view());
    let dad_actor = f.dad_actor;
    let m = as_merged(&mut f.dad, &dad_actor);
    assert_eq!(&m.view, f.dad.view());
    assert_eq!(m.places[&("missions", made.value)], Place::Year(2026));
}

#[test]
fn a_volume_not_loaded_takes_nothing_and_a_bad_change_is_refused() {
    let mut f = family();
    // A year the family's document does not list (the other devices would never load
    // it), and one listed but not loaded here.
    assert!(matches!(
        f.mom.file_new_in(Some(2030)),
        Err(DocError::NotFound { kind: "volume", .. })
    ));
    f.mom.register_volume(2027, T0).unwrap();
    assert!(matches!(
        f.mom.file_new_in(Some(2027)),
        Err(DocError::VolumeNotLoaded(2027))
    ));
    // A volume's chunk for a volume not loaded: kept by the caller, not refused.
    let added = f.mom.add_photo(&f.album, photo(1), T0 + 1).unwrap();
    let change = added.change.unwrap();
    assert!(matches!(
        f.dad.apply_remote_volume(2031, [change.as_slice()]),
        Err(DocError::VolumeNotLoaded(2031))
    ));
    assert!(!f.dad.view().photos.contains_key(&added.value));
    // A member entry written into the volume (the family's document keeps members):
    // every device refuses it.
    let rogue = {
        use automerge::transaction::Transactable;
        let replica = f.dad.volume_mut(2026).unwrap();
        let doc = replica.doc_mut();
        doc.put_object(automerge::ROOT, "members", automerge::ObjType::Map)
            .unwrap();
        replica.commit("rogue", T0 + 2).unwrap()
    };
    let update = f.mom.apply_remote_volume(2026, [rogue.as_slice()]).unwrap();
    assert_eq!(update.rejected, vec![0]);
}
