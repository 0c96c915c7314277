//! Replays every input kept under `fuzz/corpus/frame/regressions/` (seeds, and each
//! input a fuzzing run found a crash with) through the fuzzer's own entry point, so a
//! bug found once stays fixed. The fuzzer itself runs outside CI (`scripts/fuzz`).

use std::path::PathBuf;

#[test]
fn every_kept_frame_input_is_handled() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/frame/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("an input");
        eprintln!("{}", file.display());
        doran_protocol::codec::fuzz_decode(&data);
    }
}

/// Writes the seed inputs of the `frame` target (run by hand:
/// `cargo test -p doran-protocol --test fuzz_regressions -- --ignored`).
#[test]
#[ignore = "writes the fuzzer's seeds; run by hand"]
fn write_frame_seeds() {
    use doran_protocol::{
        BlobHash, ChunkId, ClientFrame, DocId, ServerFrame, Subscription, UserId, codec,
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/frame/regressions");
    let doc = DocId([7; 16]);
    let frames = [
        ClientFrame::Ping { nonce: 42 },
        ClientFrame::Subscribe {
            docs: vec![Subscription { doc, since: 3 }],
        },
        ClientFrame::Push {
            doc,
            chunk: ChunkId::of(b"chunk"),
            bytes: b"chunk".to_vec(),
        },
        ClientFrame::PushSnapshot {
            doc,
            covers_seq: 9,
            blob: BlobHash::of(b"snap"),
            len: 4,
        },
    ];
    for (i, frame) in frames.iter().enumerate() {
        let bytes = codec::encode_client(frame).expect("encodes");
        std::fs::write(dir.join(format!("seed-client-{i}")), bytes).expect("written");
    }
    // A chunk with its author (protocol 2), and one without (protocol 1's frame).
    let servers = [
        ServerFrame::chunk(doc, 5, Some(UserId([6; 16])), b"chunk".to_vec()),
        ServerFrame::UnauthoredChunk {
            doc,
            seq: 5,
            chunk: ChunkId::of(b"chunk"),
            bytes: b"chunk".to_vec(),
        },
    ];
    for (i, frame) in servers.iter().enumerate() {
        let bytes = codec::encode_server(frame).expect("encodes");
        std::fs::write(dir.join(format!("seed-server-{i}")), bytes).expect("written");
    }
}
