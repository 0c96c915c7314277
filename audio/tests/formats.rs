//! Quality tests: a generated tone and a spoken sentence through every input format.
//! For each: `ffprobe` accepts the MP3, its duration and ours are within 30 ms of the
//! source's, the ID3 tag reads back, and the decoded-back audio matches the source
//! after aligning (tone: correlation ≥ 0.99 and SNR ≥ 30 dB; speech: correlation ≥ 0.95
//! and SNR ≥ 12 dB — speech through Opus at 32 kbps then MP3 measures ≈ 19 dB).

#![allow(clippy::unwrap_used)] // shared check helpers: a failure is a failed test

mod common;

use std::{path::Path, process::Command};

use common::{Kind, Source};
use doran_audio::{ConvertOptions, Converted, InputFormat, PEAK_COUNT};

const TOLERANCE_S: f64 = 0.030;

fn source_duration(wav: &Path) -> f64 {
    common::ffprobe_duration(wav).expect("source WAV has a duration")
}

fn expected_format(kind: Kind) -> InputFormat {
    match kind {
        Kind::WebmFfmpeg | Kind::WebmLive => InputFormat::WebM,
        Kind::Mkv => InputFormat::Matroska,
        Kind::OggOpus => InputFormat::OggOpus,
        Kind::M4aAac => InputFormat::Mp4,
        Kind::Wav16 | Kind::Wav24 | Kind::WavFloat => InputFormat::Wav,
        Kind::Mp3Small | Kind::Mp3Big => InputFormat::Mp3,
    }
}

fn check(source: Source, kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let wav = common::source_wav(dir.path(), source);
    let input = common::make(dir.path(), &wav, kind);
    let opts = ConvertOptions {
        title: Some("할머니 생신 축하".into()),
        artist: Some("Mina".into()),
        ..ConvertOptions::default()
    };
    let out_path = dir.path().join("out.mp3");
    let mut out = std::fs::File::create(&out_path).unwrap();
    let c: Converted =
        doran_audio::convert(std::fs::File::open(&input).unwrap(), &mut out, &opts).unwrap();
    drop(out);

    assert_eq!(c.input_format, expected_format(kind));
    assert_eq!(c.bytes_written, std::fs::metadata(&out_path).unwrap().len());
    assert_eq!(c.peaks.len(), PEAK_COUNT);
    assert_eq!(c.peaks.iter().max(), Some(&255));

    let want = source_duration(&wav);
    let ours = c.duration_ms as f64 / 1000.0;
    assert!(
        (ours - want).abs() <= TOLERANCE_S,
        "{kind:?}: our duration {ours} vs source {want}"
    );
    let probed = common::ffprobe_duration(&out_path).expect("ffprobe reports a duration");
    // A kept MP3 is the input's frames: ffprobe sees what it saw in the input (it counts
    // the encoder delay and padding of ffmpeg-written MP3s in, 40 ms on the tone).
    let want_probed = if kind == Kind::Mp3Small {
        common::ffprobe_duration(&input).expect("input duration")
    } else {
        want
    };
    assert!(
        (probed - want_probed).abs() <= TOLERANCE_S,
        "{kind:?}: ffprobe says {probed} s, expected {want_probed} s"
    );

    let stream = common::ffprobe_stream(&out_path);
    assert!(stream.starts_with("mp3,"), "not an MP3 stream: {stream}");
    if matches!(
        kind,
        Kind::WebmFfmpeg | Kind::WebmLive | Kind::Mkv | Kind::OggOpus
    ) {
        assert_eq!(c.sample_rate, 48_000, "Opus stays at 48 kHz");
    }
    assert!(
        stream.contains(&c.sample_rate.to_string()),
        "{stream} vs {}",
        c.sample_rate
    );
    if kind == Kind::Mp3Small {
        assert!(c.passed_through, "a 64 kbps mono MP3 is kept as it is");
    }
    if kind == Kind::Mp3Big {
        assert!(!c.passed_through, "a 192 kbps MP3 is re-encoded");
    }

    let tags = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format_tags=title,artist",
            "-of",
            "csv=p=0",
        ])
        .arg(&out_path)
        .output()
        .unwrap();
    let tags = String::from_utf8(tags.stdout).unwrap();
    assert!(
        tags.contains("할머니 생신 축하") && tags.contains("Mina"),
        "ID3 tags: {tags}"
    );

    let reference = common::decode_to_f32(&wav);
    let back = common::decode_to_f32(&out_path);
    let (corr, snr, lag) = common::align_and_compare(&reference, &back, 1200);
    eprintln!("{source:?} {kind:?}: correlation {corr:.4}, SNR {snr:.1} dB, lag {lag}");
    match source {
        Source::Tone => {
            assert!(corr >= 0.99, "{kind:?}: tone correlation {corr}");
            assert!(snr >= 30.0, "{kind:?}: tone SNR {snr} dB");
        }
        Source::Speech => {
            assert!(corr >= 0.95, "{kind:?}: speech correlation {corr}");
            assert!(snr >= 12.0, "{kind:?}: speech SNR {snr} dB");
        }
    }
}

macro_rules! format_tests {
    ($($name:ident: $source:ident, $kind:ident;)*) => {
        $(
            #[test]
            fn $name() {
                check(Source::$source, Kind::$kind);
            }
        )*
    };
}

format_tests! {
    tone_webm_ffmpeg: Tone, WebmFfmpeg;
    tone_webm_media_recorder_style: Tone, WebmLive;
    tone_matroska_stereo_opus: Tone, Mkv;
    tone_ogg_opus: Tone, OggOpus;
    tone_m4a_aac: Tone, M4aAac;
    tone_wav_16bit_stereo: Tone, Wav16;
    tone_wav_24bit: Tone, Wav24;
    tone_wav_float: Tone, WavFloat;
    tone_mp3_kept: Tone, Mp3Small;
    tone_mp3_reencoded: Tone, Mp3Big;
    speech_webm_ffmpeg: Speech, WebmFfmpeg;
    speech_webm_media_recorder_style: Speech, WebmLive;
    speech_matroska_stereo_opus: Speech, Mkv;
    speech_ogg_opus: Speech, OggOpus;
    speech_m4a_aac: Speech, M4aAac;
    speech_wav_16bit_stereo: Speech, Wav16;
    speech_wav_24bit: Speech, Wav24;
    speech_wav_float: Speech, WavFloat;
    speech_mp3_kept: Speech, Mp3Small;
    speech_mp3_reencoded: Speech, Mp3Big;
}

/// The live-style fixture really has what MediaRecorder writes: unknown sizes, no Cues.
#[test]
fn media_recorder_style_fixture_has_unknown_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let wav = common::source_wav(dir.path(), Source::Tone);
    let b = std::fs::read(common::make(dir.path(), &wav, Kind::WebmLive)).unwrap();
    let unknown = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    let seg = b
        .windows(4)
        .position(|w| w == [0x18, 0x53, 0x80, 0x67])
        .unwrap();
    assert_eq!(b[seg + 4..seg + 12], unknown);
    let clusters: Vec<usize> = b
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == [0x1F, 0x43, 0xB6, 0x75])
        .map(|(i, _)| i)
        .collect();
    assert!(clusters.len() >= 2);
    assert!(clusters.iter().all(|&i| b[i + 4..i + 12] == unknown));
    assert!(
        !b.windows(4).any(|w| w == [0x1C, 0x53, 0xBB, 0x6B]),
        "no Cues"
    );
    assert_eq!(
        common::ffprobe_duration_or_none(&b, dir.path()),
        None,
        "no duration in header"
    );
}

/// Stereo output when asked for it.
#[test]
fn stereo_when_mono_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let wav = common::source_wav(dir.path(), Source::Tone);
    let input = std::fs::read(common::make(dir.path(), &wav, Kind::Wav16)).unwrap();
    let opts = ConvertOptions {
        mono: false,
        ..ConvertOptions::default()
    };
    let (mp3, c) = doran_audio::convert_bytes(&input, &opts).unwrap();
    assert_eq!(c.channels, 2);
    let p = dir.path().join("st.mp3");
    std::fs::write(&p, mp3).unwrap();
    assert!(common::ffprobe_stream(&p).ends_with(",2"));
}
