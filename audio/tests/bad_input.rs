//! Bad input gets a typed error, never a panic: arbitrary bytes, every truncation of a
//! valid file of each format, not-audio files, unsupported codecs, too long, empty.

#![allow(clippy::unwrap_used)] // shared helpers: a failure is a failed test

mod common;

use common::{Kind, Source};
use doran_audio::{AudioError, ConvertOptions, InputFormat, convert_bytes, probe};
use proptest::prelude::*;

/// `convert` turns a panic inside a decoder into this error; the tests must never see it.
fn assert_no_panic(r: &Result<(Vec<u8>, doran_audio::Converted), AudioError>) {
    if let Err(AudioError::Corrupt(m)) = r {
        assert_ne!(m, "decoder panicked", "a decoder panicked");
    }
}

fn fixture(kind: Kind) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let wav = common::source_wav(dir.path(), Source::Tone);
    std::fs::read(common::make(dir.path(), &wav, kind)).unwrap()
}

/// Every prefix of a valid file: cut points at every byte of the first 512, then about
/// 150 spread over the rest.
fn check_truncations(kind: Kind) {
    let full = fixture(kind);
    let opts = ConvertOptions::default();
    let full_result = convert_bytes(&full, &opts);
    assert!(
        full_result.is_ok(),
        "{kind:?}: the whole file converts: {:?}",
        full_result.err()
    );
    let step = (full.len() / 150).max(1);
    let cuts = (0..full.len().min(512)).chain((512..full.len()).step_by(step));
    let mut errors = 0;
    for cut in cuts {
        let r = convert_bytes(&full[..cut], &opts);
        assert_no_panic(&r);
        let _ = probe(&full[..cut]);
        if r.is_err() {
            errors += 1;
        }
        if cut == 0 {
            assert!(
                matches!(r, Err(AudioError::Empty)),
                "{kind:?}: zero bytes: {:?}",
                r.err()
            );
        }
    }
    assert!(errors > 0);
}

macro_rules! truncation_tests {
    ($($name:ident: $kind:ident;)*) => {
        $(
            #[test]
            fn $name() {
                check_truncations(Kind::$kind);
            }
        )*
    };
}

truncation_tests! {
    truncated_webm_ffmpeg: WebmFfmpeg;
    truncated_webm_media_recorder_style: WebmLive;
    truncated_matroska: Mkv;
    truncated_ogg_opus: OggOpus;
    truncated_m4a: M4aAac;
    truncated_wav16: Wav16;
    truncated_wav24: Wav24;
    truncated_wav_float: WavFloat;
    truncated_mp3_kept: Mp3Small;
    truncated_mp3_reencoded: Mp3Big;
}

#[test]
fn ogg_cut_mid_stream_is_truncated() {
    let full = fixture(Kind::OggOpus);
    let r = convert_bytes(&full[..full.len() * 2 / 3], &ConvertOptions::default());
    assert!(matches!(r, Err(AudioError::Truncated)), "{:?}", r.err());
}

#[test]
fn webm_cut_inside_a_block_is_truncated() {
    let full = fixture(Kind::WebmFfmpeg);
    // Cut a few bytes into the last SimpleBlock/BlockGroup payload.
    let r = convert_bytes(&full[..full.len() - 3], &ConvertOptions::default());
    assert!(
        matches!(r, Err(AudioError::Truncated | AudioError::Corrupt(_))),
        "{:?}",
        r.err()
    );
}

const MAGIC: [&[u8]; 8] = [
    &[0x1A, 0x45, 0xDF, 0xA3],
    b"OggS",
    b"\0\0\0\x20ftypM4A ",
    b"RIFF\x24\0\0\0WAVEfmt ",
    b"ID3\x03\0\0\0\0\0\x10",
    &[0xFF, 0xFB, 0x54, 0xC0],
    &[0xFF, 0xF3, 0x64, 0xC4],
    b"\x1A\x45\xDF\xA3\x9F\x42\x82\x84webm",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let r = convert_bytes(&bytes, &ConvertOptions::default());
        assert_no_panic(&r);
        let _ = probe(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_a_magic_never_panic(
        which in 0..MAGIC.len(),
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut input = MAGIC[which].to_vec();
        input.extend_from_slice(&bytes);
        let r = convert_bytes(&input, &ConvertOptions::default());
        assert_no_panic(&r);
        prop_assert!(r.is_err() || r.is_ok());
    }

    /// Valid files with bytes flipped: still no panic.
    #[test]
    fn corrupted_valid_files_never_panic(
        which in 0..3usize,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
    ) {
        thread_local! {
            static FILES: Vec<Vec<u8>> =
                [Kind::WebmLive, Kind::OggOpus, Kind::M4aAac].map(fixture).to_vec();
        }
        let mut input = FILES.with(|f| f[which].clone());
        for (i, b) in flips {
            let at = i.index(input.len());
            input[at] ^= b;
        }
        let r = convert_bytes(&input, &ConvertOptions::default());
        assert_no_panic(&r);
    }
}

#[test]
fn empty_input() {
    assert!(matches!(
        convert_bytes(&[], &ConvertOptions::default()),
        Err(AudioError::Empty)
    ));
    assert!(matches!(probe(&[]), Err(AudioError::Empty)));
}

#[test]
fn wav_without_samples_is_empty() {
    let wav = common::wav_bytes(&[], 48_000);
    let r = convert_bytes(&wav, &ConvertOptions::default());
    assert!(matches!(r, Err(AudioError::Empty)), "{:?}", r.err());
}

#[test]
fn not_audio() {
    for bytes in [
        &b"hello, this is a text file and not a recording"[..],
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01",
        b"%PDF-1.7\n",
        b"RIFF\x24\0\0\0AVI LIST",
    ] {
        let r = convert_bytes(bytes, &ConvertOptions::default());
        assert!(matches!(r, Err(AudioError::NotAudio)), "{:?}", r.err());
    }
}

#[test]
fn probe_by_content() {
    assert_eq!(probe(&fixture(Kind::WebmLive)).unwrap(), InputFormat::WebM);
    assert_eq!(probe(&fixture(Kind::Mkv)).unwrap(), InputFormat::Matroska);
    assert_eq!(
        probe(&fixture(Kind::OggOpus)).unwrap(),
        InputFormat::OggOpus
    );
    assert_eq!(probe(&fixture(Kind::M4aAac)).unwrap(), InputFormat::Mp4);
    assert_eq!(probe(&fixture(Kind::WavFloat)).unwrap(), InputFormat::Wav);
    assert_eq!(probe(&fixture(Kind::Mp3Small)).unwrap(), InputFormat::Mp3);
    let mut bare = fixture(Kind::Mp3Small);
    let tag = 10
        + bare[6..10]
            .iter()
            .fold(0usize, |v, &b| (v << 7) | usize::from(b));
    bare.drain(..tag);
    assert_eq!(
        probe(&bare).unwrap(),
        InputFormat::Mp3,
        "frame sync without ID3"
    );
}

fn ffmpeg_encode(args: &[&str], name: &str) -> Vec<u8> {
    common::require_tool("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let wav = common::source_wav(dir.path(), Source::Tone);
    let out = dir.path().join(name);
    let o = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&wav)
        .args(args)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out).unwrap()
}

#[test]
fn unsupported_codecs() {
    for (args, name) in [
        (&["-c:a", "libvorbis"][..], "a.ogg"),
        (&["-c:a", "libvorbis"][..], "a.webm"),
        (&["-c:a", "mp2"][..], "a.mp2"),
        (&["-c:a", "adpcm_ms"][..], "a.wav"),
        (&["-c:a", "alac"][..], "a.m4a"),
        (&["-c:a", "flac"][..], "a.mkv"),
    ] {
        let input = ffmpeg_encode(args, name);
        let r = convert_bytes(&input, &ConvertOptions::default());
        assert!(
            matches!(r, Err(AudioError::UnsupportedCodec(_))),
            "{name} {args:?}: {:?}",
            r.err()
        );
    }
}

#[test]
fn too_long_reports_the_whole_duration() {
    let opts = ConvertOptions {
        max_duration_ms: 1000,
        ..ConvertOptions::default()
    };
    for kind in [Kind::Wav16, Kind::WebmLive, Kind::OggOpus, Kind::M4aAac] {
        let r = convert_bytes(&fixture(kind), &opts);
        match r {
            Err(AudioError::TooLong {
                duration_ms,
                max_ms: 1000,
            }) => {
                assert!(duration_ms.abs_diff(2000) <= 30, "{kind:?}: {duration_ms}")
            }
            other => panic!("{kind:?}: {:?}", other.err()),
        }
    }
}

/// A WAV header with a channel count the WAV reader cannot multiply (found by fuzzing:
/// 65 535 channels of 16 bits overflowed it) is refused at the probe, before decoding.
#[test]
fn wav_with_a_forged_channel_count_is_refused() {
    fn wav(channels: u16) -> Vec<u8> {
        let mut b = b"RIFF\x00\x01\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00".to_vec();
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&48_000u32.to_le_bytes());
        b.extend_from_slice(&192_000u32.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data\x04\x00\x00\x00\x00\x00\x00\x00");
        b
    }
    assert!(matches!(
        probe(&wav(0xffff)),
        Err(AudioError::UnsupportedCodec(_))
    ));
    assert!(matches!(
        probe(&wav(9)),
        Err(AudioError::UnsupportedCodec(_))
    ));
    assert!(matches!(probe(&wav(0)), Err(AudioError::Corrupt(_))));
    assert_eq!(probe(&wav(2)).ok(), Some(InputFormat::Wav));
    let converted = convert_bytes(&wav(0xffff), &ConvertOptions::default());
    assert!(matches!(converted, Err(AudioError::UnsupportedCodec(_))));
}
