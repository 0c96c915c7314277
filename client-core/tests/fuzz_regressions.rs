//! Replays every input kept under `fuzz/corpus/chunk/regressions/` (seeds, and each
//! input a fuzzing run found a crash with) through the fuzzer's own entry point, so a
//! bug found once stays fixed. The fuzzer itself runs outside CI (`scripts/fuzz`).

use std::path::PathBuf;

#[test]
fn every_kept_chunk_input_is_handled() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/chunk/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("an input");
        eprintln!("{}", file.display());
        doran_client_core::chunk_bounds::fuzz_apply(&data);
    }
}

/// Writes the seed inputs of the `chunk` target (run by hand:
/// `cargo test -p doran-client-core --test fuzz_regressions -- --ignored`).
#[test]
#[ignore = "writes the fuzzer's seeds; run by hand"]
fn write_chunk_seeds() {
    use doran_client_core::{Actor, FamilyDoc};
    use doran_protocol::{DeviceId, FamilyId, UserId};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/chunk/regressions");
    let host = Actor {
        user: UserId([1; 16]),
        device: DeviceId([2; 16]),
    };
    let member = Actor {
        user: UserId([4; 16]),
        device: DeviceId([5; 16]),
    };
    let (mut doc, _) = FamilyDoc::create(FamilyId([3; 16]), "가족", "엄마", &host, 0).unwrap();
    let mut theirs = FamilyDoc::load(Some(&doc.save()), [], &member).unwrap();
    let join = theirs
        .add_member(member.user, "아빠", 1)
        .unwrap()
        .change
        .unwrap();
    let mission = theirs.add_mission("장보기", &[], None, 2).unwrap();
    let tick = theirs.set_mission_done(&mission.value, true, 3).unwrap();
    let album = theirs.create_album("여행", 4).unwrap();
    let mut compressed = automerge::Change::from_bytes(join.clone()).unwrap();
    let seeds: [(&str, Vec<u8>); 6] = [
        ("seed-join", join),
        ("seed-mission", mission.change.unwrap()),
        ("seed-tick", tick.change.unwrap()),
        ("seed-album", album.change.unwrap()),
        ("seed-compressed", compressed.bytes().to_vec()),
        ("seed-document", theirs.save()),
    ];
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text_bomb_2m.automerge"),
        dir.join("seed-bomb"),
    )
    .unwrap();
}
