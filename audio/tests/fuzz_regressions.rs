//! Replays every input kept under `fuzz/corpus/audio/regressions/` (seeds, and each
//! input a fuzzing run found a crash with) through the fuzzer's own entry point, so a
//! bug found once stays fixed. The fuzzer itself runs outside CI (`scripts/fuzz`).

use std::path::PathBuf;

#[test]
fn every_kept_audio_input_is_handled() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/audio/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("an input");
        eprintln!("{}", file.display());
        let _ = doran_audio::convert_unguarded(&data, &doran_audio::ConvertOptions::default());
    }
}
