//! Test fixtures made at test time: a 1 kHz tone written in Rust, a sentence from
//! `espeak-ng`, and ffmpeg (test-only) for the other containers. Missing tools fail the
//! test with a message saying what to install (`scripts/test` installs them).

#![allow(dead_code, clippy::unwrap_used)] // test helpers: a failure is a failed test

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Sample rate of the generated tone.
pub const TONE_RATE: u32 = 48_000;
/// Length of the generated tone.
pub const TONE_SECS: f64 = 2.0;

/// Panics with an install hint when `tool` is not on PATH.
pub fn require_tool(tool: &str) {
    let ok = Command::new(tool).arg("-version").output().is_ok()
        || Command::new(tool).arg("--version").output().is_ok();
    assert!(
        ok,
        "`{tool}` is needed by this test but is not installed: run scripts/test (it installs \
         the Debian packages ffmpeg and espeak-ng), or apt-get install ffmpeg espeak-ng"
    );
}

/// The 1 kHz tone (amplitude 0.5), mono, at [`TONE_RATE`].
pub fn tone_samples() -> Vec<f32> {
    let n = (TONE_SECS * f64::from(TONE_RATE)) as usize;
    (0..n)
        .map(|i| {
            (0.5 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(TONE_RATE)).sin())
                as f32
        })
        .collect()
}

/// A 16-bit PCM WAV file of `samples` (mono).
pub fn wav_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for &s in samples {
        b.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    b
}

/// Source recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// [`tone_samples`] as a WAV.
    Tone,
    /// espeak-ng speaking a sentence (22.05 kHz WAV).
    Speech,
}

/// Containers the tests make with ffmpeg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ffmpeg's WebM muxer: sized Segment/Clusters, Cues, Duration, DiscardPadding.
    WebmFfmpeg,
    /// MediaRecorder style: unknown-size Segment and Clusters, no Cues, no Duration.
    WebmLive,
    /// Matroska (DocType `matroska`) with Opus.
    Mkv,
    OggOpus,
    M4aAac,
    Wav16,
    Wav24,
    WavFloat,
    /// 64 kbps mono MP3 (kept as it is).
    Mp3Small,
    /// 192 kbps stereo MP3 (re-encoded).
    Mp3Big,
}

pub const ALL_KINDS: [Kind; 10] = [
    Kind::WebmFfmpeg,
    Kind::WebmLive,
    Kind::Mkv,
    Kind::OggOpus,
    Kind::M4aAac,
    Kind::Wav16,
    Kind::Wav24,
    Kind::WavFloat,
    Kind::Mp3Small,
    Kind::Mp3Big,
];

/// Writes the source WAV into `dir` and returns its path.
pub fn source_wav(dir: &Path, source: Source) -> PathBuf {
    match source {
        Source::Tone => {
            let p = dir.join("tone.wav");
            std::fs::write(&p, wav_bytes(&tone_samples(), TONE_RATE)).unwrap();
            p
        }
        Source::Speech => {
            require_tool("espeak-ng");
            let p = dir.join("speech.wav");
            run(Command::new("espeak-ng").arg("-w").arg(&p).arg(
                "Grandma, happy birthday! We will visit you on Sunday with the kids and a cake.",
            ));
            p
        }
    }
}

/// Makes `kind` from the source WAV with ffmpeg; returns its path.
pub fn make(dir: &Path, wav: &Path, kind: Kind) -> PathBuf {
    require_tool("ffmpeg");
    let (name, args): (&str, &[&str]) = match kind {
        Kind::WebmFfmpeg => ("a.webm", &["-c:a", "libopus", "-b:a", "32k", "-ac", "1"]),
        Kind::WebmLive => (
            "live0.webm",
            &[
                "-c:a", "libopus", "-b:a", "32k", "-ac", "1", "-f", "webm", "-live", "1",
            ],
        ),
        Kind::Mkv => ("a.mkv", &["-c:a", "libopus", "-b:a", "48k", "-ac", "2"]),
        Kind::OggOpus => ("a.ogg", &["-c:a", "libopus", "-b:a", "32k"]),
        Kind::M4aAac => ("a.m4a", &["-c:a", "aac", "-b:a", "96k"]),
        Kind::Wav16 => ("a16.wav", &["-c:a", "pcm_s16le", "-ac", "2"]),
        Kind::Wav24 => ("a24.wav", &["-c:a", "pcm_s24le"]),
        Kind::WavFloat => ("af.wav", &["-c:a", "pcm_f32le"]),
        Kind::Mp3Small => (
            "small.mp3",
            &["-c:a", "libmp3lame", "-b:a", "64k", "-ac", "1"],
        ),
        Kind::Mp3Big => (
            "big.mp3",
            &["-c:a", "libmp3lame", "-b:a", "192k", "-ac", "2"],
        ),
    };
    let out = dir.join(name);
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(wav)
        .args(args)
        .arg(&out));
    if kind == Kind::WebmLive {
        let live = dir.join("live.webm");
        std::fs::write(
            &live,
            to_media_recorder_style(&std::fs::read(&out).unwrap()),
        )
        .unwrap();
        return live;
    }
    out
}

/// Rewrites ffmpeg's live WebM (unknown-size Segment, sized Clusters) the way Chrome's
/// MediaRecorder writes it: every Cluster with the 8-byte unknown size
/// `01 FF FF FF FF FF FF FF`, no SeekHead, no Cues.
pub fn to_media_recorder_style(b: &[u8]) -> Vec<u8> {
    fn vint(b: &[u8], i: usize, id: bool) -> (u64, usize) {
        let f = b[i];
        let l = f.leading_zeros() as usize + 1;
        let mut v = if id {
            u64::from(f)
        } else {
            u64::from(f) & (0xFF >> l)
        };
        for &x in &b[i + 1..i + l] {
            v = (v << 8) | u64::from(x);
        }
        (v, l)
    }
    let mut out = Vec::new();
    // EBML header, copied.
    let (_, l) = vint(b, 0, true);
    let (sz, m) = vint(b, l, false);
    let mut i = l + m + sz as usize;
    out.extend_from_slice(&b[..i]);
    let (seg, l) = vint(b, i, true);
    assert_eq!(seg, 0x1853_8067);
    let (_, m) = vint(b, i + l, false);
    out.extend_from_slice(&[
        0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    i += l + m;
    let mut clusters = 0;
    while i < b.len() {
        let (id, l) = vint(b, i, true);
        let (sz, m) = vint(b, i + l, false);
        let body = &b[i + l + m..i + l + m + sz as usize];
        match id {
            0x1F43_B675 => {
                clusters += 1;
                out.extend_from_slice(&[0x1F, 0x43, 0xB6, 0x75]);
                out.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
                out.extend_from_slice(body);
            }
            0x114D_9B74 | 0x1C53_BB6B | 0xEC => {} // SeekHead, Cues, Void: dropped
            _ => out.extend_from_slice(&b[i..i + l + m + sz as usize]),
        }
        i += l + m + sz as usize;
    }
    assert!(clusters > 0);
    out
}

/// `ffprobe`'s format duration in seconds, `None` when it reports none.
pub fn ffprobe_duration(path: &Path) -> Option<f64> {
    require_tool("ffprobe");
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ffprobe rejected {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

/// `ffprobe`'s codec name and sample rate of the first audio stream.
pub fn ffprobe_stream(path: &Path) -> String {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args(["stream=codec_name,sample_rate,channels", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Decodes `path` with ffmpeg to mono f32 at 48 kHz (gapless info applied).
pub fn decode_to_f32(path: &Path) -> Vec<f32> {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ffmpeg could not decode {}",
        path.display()
    );
    o.stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Best normalised correlation of `b` against `a` over lags −max_lag..=max_lag, with the
/// SNR (dB) of `a` against gain-matched `b` at that lag. Compares half a second from
/// the middle of `a`, leaving the edges (encoder start-up) out.
pub fn align_and_compare(a: &[f32], b: &[f32], max_lag: usize) -> (f64, f64, isize) {
    // Half a second from the middle is plenty and keeps the search quick in debug builds.
    let len = 24_000.min(a.len() / 2);
    let edge = (a.len() - len) / 2;
    let ref_part = &a[edge..edge + len];
    let mut best = (f64::MIN, 0.0, 0isize);
    for lag in -(max_lag as isize)..=(max_lag as isize) {
        let start = edge as isize + lag;
        if start < 0 || start as usize + ref_part.len() > b.len() {
            continue;
        }
        let cand = &b[start as usize..start as usize + ref_part.len()];
        let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
        for (&x, &y) in ref_part.iter().zip(cand) {
            let (x, y) = (f64::from(x), f64::from(y));
            xy += x * y;
            xx += x * x;
            yy += y * y;
        }
        let corr = xy / (xx.sqrt() * yy.sqrt()).max(1e-12);
        if corr > best.0 {
            let g = xy / yy.max(1e-12);
            let err: f64 = ref_part
                .iter()
                .zip(cand)
                .map(|(&x, &y)| (f64::from(x) - g * f64::from(y)).powi(2))
                .sum();
            best = (corr, 10.0 * (xx / err.max(1e-12)).log10(), lag);
        }
    }
    best
}

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `ffprobe`'s format duration of `bytes` written to a file in `dir`.
pub fn ffprobe_duration_or_none(bytes: &[u8], dir: &Path) -> Option<f64> {
    let p = dir.join("probe-this.webm");
    std::fs::write(&p, bytes).unwrap();
    ffprobe_duration(&p)
}
