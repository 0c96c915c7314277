//! What an incoming change may cost (issue 12, item 2): a 2 KB change of 2 000 000
//! text inserts used to cost ~20 s and ~1 GB to apply, on every member's device and
//! again on every open. It is refused from its headers, fast and with bounded memory,
//! nothing of it is stored, and the family stays usable.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use automerge::{ROOT, transaction::Transactable};
use doran_client_core::{
    Actor, EventInput, FamilyDoc, PhotoInput, VoiceInput,
    chunk_bounds::{Bound, ChunkError, Limits, Piece, inspect},
    replica::Refusal,
    store::{LocalStore, MemoryStore},
    sync::{DocKind, IncomingChunk, StoreHost, SyncHost},
};
use doran_protocol::{BlobHash, DeviceId, DocId, FamilyId, UserId};

const T0: i64 = 1_700_000_000_000;

/// A real Automerge change: 2 000 000 text inserts, 2 083 bytes compressed (made with
/// `AutoCommit::splice_text` of 2 000 000 characters in one transaction).
const BOMB: &[u8] = include_bytes!("fixtures/text_bomb_2m.automerge");

fn actor() -> Actor {
    Actor {
        user: UserId::random(),
        device: DeviceId::random(),
    }
}

/// The most memory this process has held (kB), from the kernel.
fn peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn a_two_kilobyte_change_of_two_million_inserts_is_refused_fast_with_bounded_memory() {
    assert!(BOMB.len() < 4096);
    let host = actor();
    let family = FamilyId::random();
    let (mut doc, first) = FamilyDoc::create(family, "우리 가족", "엄마", &host, T0).unwrap();
    let before = peak_kb();
    let started = Instant::now();
    let update = doc.apply_remote([BOMB]);
    let took = started.elapsed();
    let grew_mb = (peak_kb().saturating_sub(before)) / 1024;
    assert_eq!(update.rejected, vec![0]);
    assert_eq!(
        update.refusals[0].1,
        Refusal::Chunk(ChunkError::TooLarge {
            what: Bound::ChangeOps,
            limit: Limits::DEFAULT.max_change_ops
        })
    );
    assert!(took < Duration::from_millis(500), "took {took:?}");
    assert!(grew_mb < 16, "memory grew by {grew_mb} MB");

    // Through the device's host: nothing stored, the cursor moves past it, and the
    // family opens and edits as before.
    let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
    let doc_id = DocId::from(family);
    store.commit_local(doc_id, &first).unwrap();
    let sync = StoreHost::new(Arc::clone(&store), host);
    let change = sync
        .apply(
            doc_id,
            DocKind::Family(family),
            None,
            &[IncomingChunk {
                seq: 7,
                author: None,
                bytes: BOMB.to_vec(),
            }],
            7,
        )
        .unwrap();
    assert_eq!(change.refused, 1);
    assert_eq!(store.cursor(doc_id).unwrap(), 7);
    let stored = store.load(doc_id).unwrap().unwrap();
    assert_eq!(stored.changes.len(), 1, "only the family's first change");
    sync.edit_family(family, |fd| fd.add_mission("장보기", &[], None, T0))
        .unwrap();
    let reopened = FamilyDoc::load(
        stored.snapshot.as_deref(),
        store
            .load(doc_id)
            .unwrap()
            .unwrap()
            .changes
            .iter()
            .map(Vec::as_slice),
        &host,
    )
    .unwrap();
    assert_eq!(reopened.view().missions.len(), 1);
}

#[test]
fn a_stored_bomb_is_skipped_on_open_instead_of_paid_for() {
    // A log written by an older version that stored the bomb.
    let host = actor();
    let (_, first) = FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &host, T0).unwrap();
    let started = Instant::now();
    let doc = FamilyDoc::load(None, [first.as_slice(), BOMB], &host).unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(doc.view().name, "우리 가족");
}

#[test]
fn a_change_that_inflates_past_the_cap_is_refused_before_it_is_held() {
    let host = actor();
    let (mut doc, _) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &host, T0).unwrap();
    let mut rogue = FamilyDoc::load(Some(&doc.save()), [], &actor()).unwrap();
    // One value of 3 MiB of zeros: a few kB compressed.
    rogue
        .replica_mut()
        .doc_mut()
        .put(ROOT, "name", "0".repeat(3 << 20))
        .unwrap();
    let change = rogue.replica_mut().commit("rogue", T0).unwrap();
    let mut compressed = automerge::Change::from_bytes(change).unwrap();
    let bytes = compressed.bytes().to_vec();
    assert!(bytes.len() < 64 << 10, "compressed to {}", bytes.len());
    let update = doc.apply_remote([bytes.as_slice()]);
    assert_eq!(
        update.refusals[0].1,
        Refusal::Chunk(ChunkError::TooLarge {
            what: Bound::ChangeBytes,
            limit: Limits::DEFAULT.max_change_bytes as u64
        })
    );
}

fn ops_of(change: &[u8]) -> u64 {
    inspect(change, &Limits::DEFAULT)
        .unwrap()
        .iter()
        .map(|p| match p {
            Piece::Change { ops, .. } | Piece::Document { ops, .. } => *ops,
        })
        .sum()
}

/// The largest legitimate changes, measured: far below the limits.
#[test]
fn the_largest_legitimate_changes_are_far_below_the_limits() {
    let host = actor();
    let (mut doc, first) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &host, T0).unwrap();
    let mut sizes = vec![("family.create", ops_of(&first))];
    for i in 0..7 {
        let u = UserId::random();
        doc.add_member(u, &format!("이름{i}"), T0).unwrap();
    }
    let m = doc
        .add_mission("가족 사진 찍기", &[], Some("2024-01-01"), T0)
        .unwrap();
    sizes.push(("mission.add (8 members)", ops_of(&m.change.unwrap())));
    let e = doc
        .add_event(
            EventInput {
                title: "생일".into(),
                notes: "가".repeat(500),
                start: "2024-03-01".into(),
                start_time: Some("10:00".into()),
                end_time: Some("12:00".into()),
                ..EventInput::default()
            },
            T0,
        )
        .unwrap();
    sizes.push(("event.add (500-char notes)", ops_of(&e.change.unwrap())));
    let va = doc.create_voice_album("목소리", 1, T0).unwrap().value;
    let v = doc
        .add_voice(
            &va,
            VoiceInput {
                title: "안녕".into(),
                blob: BlobHash::of(b"mp3").into(),
                size: 1000,
                duration_ms: 180_000,
                peaks: vec![200; 256],
            },
            T0,
        )
        .unwrap();
    sizes.push(("voice.add (256 peaks)", ops_of(&v.change.unwrap())));
    let album = doc.create_album("여행", T0).unwrap().value;
    for _ in 0..200 {
        doc.add_photo(
            &album,
            PhotoInput {
                blob: BlobHash::of(b"p").into(),
                thumb: BlobHash::of(b"t").into(),
                mime: "image/jpeg".into(),
                size: 900_000,
                width: 1920,
                height: 1080,
                taken_at: Some(T0),
                caption: "가".repeat(200),
            },
            T0,
        )
        .unwrap();
    }
    let d = doc.delete_album(&album, T0).unwrap();
    sizes.push(("album.delete (200 photos)", ops_of(&d.change.unwrap())));
    for (what, ops) in &sizes {
        println!("{what}: {ops} operations");
    }
    let most_ordinary = sizes[..4].iter().map(|(_, o)| *o).max().unwrap();
    assert!(most_ordinary < 64, "{sizes:?}");
    // Deleting an album is one operation per photo, plus the album and its hide
    // record: the limit allows one holding every photo a family's 10 GiB blob quota
    // can hold (~11 500).
    assert_eq!(sizes[4].1, 202);
    const { assert!(Limits::DEFAULT.max_change_ops > 11_500) };
}

/// What the checks cost when applying incoming changes (run by hand, in release:
/// `cargo test --release -p doran-client-core --test change_bounds -- --ignored
/// --nocapture`): 1 000 ordinary changes (missions, ticks, photos, likes, comments)
/// applied one chunk at a time, as Automerge alone would (`load_incremental`), and
/// through the device's path (cost bounds, parse, rules).
#[test]
#[ignore = "a measurement; run by hand"]
fn cost_of_the_checks_on_incoming_changes() {
    let host = actor();
    let (mut doc, first) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &host, T0).unwrap();
    let album = doc.create_album("여행", T0).unwrap();
    let mut changes = vec![first, album.change.unwrap()];
    for i in 0..200 {
        let m = doc.add_mission("장보기", &[], None, T0 + i).unwrap();
        changes.push(m.change.unwrap());
        changes.push(
            doc.set_mission_done(&m.value, true, T0 + i)
                .unwrap()
                .change
                .unwrap(),
        );
        let p = doc
            .add_photo(
                &album.value,
                PhotoInput {
                    blob: BlobHash::of(b"p").into(),
                    thumb: BlobHash::of(b"t").into(),
                    mime: "image/jpeg".into(),
                    size: 900_000,
                    width: 1920,
                    height: 1080,
                    taken_at: None,
                    caption: "사진".into(),
                },
                T0 + i,
            )
            .unwrap();
        changes.push(p.change.unwrap());
        changes.push(
            doc.set_like(&p.value, true, T0 + i)
                .unwrap()
                .change
                .unwrap(),
        );
        changes.push(
            doc.add_comment(&p.value, "좋다", T0 + i)
                .unwrap()
                .change
                .unwrap(),
        );
    }
    let plain = Instant::now();
    let mut am = automerge::AutoCommit::new();
    for c in &changes {
        am.load_incremental(c).unwrap();
    }
    let plain = plain.elapsed();
    let checked = Instant::now();
    let mut other = FamilyDoc::load(None, [], &actor()).unwrap();
    for c in &changes {
        assert!(other.apply_remote([c.as_slice()]).refusals.is_empty());
    }
    let checked = checked.elapsed();
    let mut am2 = automerge::AutoCommit::new();
    let bounds = Instant::now();
    for c in &changes {
        for p in inspect(c, &Limits::DEFAULT).unwrap() {
            if let Piece::Change { bytes, .. } = p {
                am2.apply_changes([automerge::Change::from_bytes(bytes.into_owned()).unwrap()])
                    .unwrap();
            }
        }
    }
    let bounds = bounds.elapsed();
    let n = changes.len() as u32;
    println!(
        "{n} changes: load_incremental {:?}/change; bounds + parse + apply {:?}/change; \
         the device's whole apply (bounds, rules, diff, view) {:?}/change",
        plain / n,
        bounds / n,
        checked / n
    );
}

/// A chunk that made Automerge panic (found by fuzzing: a change whose actor Automerge
/// had not registered; `fuzz/corpus/chunk/regressions/crash-6553…`) is refused with
/// `Crashed` instead of taking the device down, and the document goes on: the same
/// content as before, and the next honest change from another member applies.
#[test]
fn a_chunk_automerge_panics_on_is_refused_and_the_family_goes_on() {
    let crash = include_bytes!(
        "../../fuzz/corpus/chunk/regressions/crash-6553ff98f15abfc53623f3468b21f533e2500541"
    );
    let host = Actor {
        user: UserId([1; 16]),
        device: DeviceId([2; 16]),
    };
    // The family the fuzzer's entry point makes (`chunk_bounds::fuzz_apply`): the
    // crafted change depends on its first change.
    let (mut doc, _) = FamilyDoc::create(FamilyId([3; 16]), "가족", "엄마", &host, 0).unwrap();
    let before = doc.save();
    let update = doc.apply_remote([crash.as_slice()]);
    assert_eq!(update.rejected, vec![0]);
    assert!(
        matches!(update.refusals.as_slice(), [(0, Refusal::Crashed)]),
        "{:?}",
        update.refusals
    );
    assert_eq!(doc.save(), before, "the document is as it was");
    // The family goes on: another copy's next change applies here.
    let mut theirs = FamilyDoc::load(Some(&before), [], &host).unwrap();
    let edit = theirs.add_mission("설거지", &[], None, T0 + 1).unwrap();
    let update = doc.apply_remote([edit.change.as_deref().unwrap()]);
    assert!(update.refusals.is_empty(), "{:?}", update.refusals);
    assert_eq!(doc.save(), theirs.save());
}
