//! Recognising the input by its content, never by a file name.

use std::fmt;

use crate::{AudioError, Result, demux::ebml};

/// The container (and, for Ogg, the codec) of an input, as [`probe`] recognised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputFormat {
    /// EBML with DocType `webm`: browsers' MediaRecorder (live style, unknown sizes) and
    /// ffmpeg's WebM muxer. Opus audio.
    WebM,
    /// EBML with DocType `matroska`. Opus audio.
    Matroska,
    /// Ogg pages whose first packet is an `OpusHead` (Android recorders, RFC 7845).
    OggOpus,
    /// ISO base media (`ftyp`): M4A/MP4, AAC-LC audio (iOS recorders).
    Mp4,
    /// RIFF WAVE: PCM 8/16/24/32-bit integer or 32/64-bit float.
    Wav,
    /// MPEG-1/2 Layer III, with or without an ID3v2 tag in front.
    Mp3,
}

impl InputFormat {
    /// A short lower-case name: `webm`, `matroska`, `ogg-opus`, `mp4`, `wav`, `mp3`.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::WebM => "webm",
            InputFormat::Matroska => "matroska",
            InputFormat::OggOpus => "ogg-opus",
            InputFormat::Mp4 => "mp4",
            InputFormat::Wav => "wav",
            InputFormat::Mp3 => "mp3",
        }
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many leading bytes [`probe`] needs at most to decide. Giving it fewer (a short
/// file) is fine.
pub const PROBE_LEN: usize = 4096;

/// Recognises a recording from its first bytes (up to [`PROBE_LEN`] are looked at).
///
/// Magic bytes decide: EBML header (`1A 45 DF A3`) and its DocType (`webm` or
/// `matroska`); `OggS` with an `OpusHead` first packet; `ftyp` at offset 4; `RIFF….WAVE`;
/// `ID3` or an MPEG audio frame sync with a valid Layer III header.
///
/// Errors: [`AudioError::Empty`] for no bytes, [`AudioError::Truncated`] when the bytes
/// stop before the signature is complete, [`AudioError::UnsupportedCodec`] for a known
/// container of something else (Ogg/Vorbis, MPEG Layer I/II, ADTS AAC),
/// [`AudioError::NotAudio`] otherwise.
pub fn probe(bytes: &[u8]) -> Result<InputFormat> {
    let b = &bytes[..bytes.len().min(PROBE_LEN)];
    if b.is_empty() {
        return Err(AudioError::Empty);
    }
    let starts = |magic: &[u8]| {
        let n = magic.len().min(b.len());
        b[..n] == magic[..n]
    };
    if starts(&ebml::EBML_MAGIC) {
        if b.len() < 4 {
            return Err(AudioError::Truncated);
        }
        return match ebml::doc_type(b)? {
            Some(t) if t == "webm" => Ok(InputFormat::WebM),
            Some(t) if t == "matroska" => Ok(InputFormat::Matroska),
            Some(_) => Err(AudioError::NotAudio),
            None => Err(AudioError::Truncated),
        };
    }
    if starts(b"OggS") {
        return probe_ogg(b);
    }
    if b.len() >= 8 && &b[4..8] == b"ftyp" {
        return Ok(InputFormat::Mp4);
    }
    if starts(b"RIFF") {
        if b.len() < 12 {
            return Err(AudioError::Truncated);
        }
        return if &b[8..12] == b"WAVE" {
            check_wav_channels(b)?;
            Ok(InputFormat::Wav)
        } else {
            Err(AudioError::NotAudio)
        };
    }
    if starts(b"ID3") {
        if b.len() < 10 {
            return Err(AudioError::Truncated);
        }
        return Ok(InputFormat::Mp3);
    }
    if b.len() >= 4 && b[0] == 0xFF && b[1] & 0xE0 == 0xE0 {
        return probe_mpeg_frame(b);
    }
    if b.len() < 4 && (b[0] == 0xFF || starts(b"ID3") || starts(b"RIFF")) {
        return Err(AudioError::Truncated);
    }
    Err(AudioError::NotAudio)
}

/// Most channels a WAV file may declare: a voice message is mono or stereo, and
/// surround recordings stop at 7.1.
const MAX_WAV_CHANNELS: u16 = 8;

/// Checks the channel count of the WAV `fmt ` chunk when it is within the probed head
/// (it nearly always is: it comes first). The WAV reader multiplies the channel count
/// by the sample size in 16 bits, which overflows for a forged count (found by
/// fuzzing: 65 535 channels of 16 bits).
fn check_wav_channels(b: &[u8]) -> Result<()> {
    let mut at = 12;
    while let Some(header) = b.get(at..at + 8) {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if &header[..4] == b"fmt " {
            let Some(channels) = b.get(at + 10..at + 12) else {
                return Ok(());
            };
            return match u16::from_le_bytes([channels[0], channels[1]]) {
                0 => Err(AudioError::Corrupt("a WAV file with no channels".into())),
                n if n > MAX_WAV_CHANNELS => Err(AudioError::UnsupportedCodec(format!(
                    "WAV with {n} channels (at most {MAX_WAV_CHANNELS})"
                ))),
                _ => Ok(()),
            };
        }
        // Chunks are padded to an even size.
        at = at
            .saturating_add(8)
            .saturating_add(size)
            .saturating_add(size & 1);
    }
    Ok(())
}

fn probe_ogg(b: &[u8]) -> Result<InputFormat> {
    // Page header: 27 bytes, then the segment table, then the first packet.
    if b.len() < 27 {
        return Err(AudioError::Truncated);
    }
    let segments = usize::from(b[26]);
    let body = 27 + segments;
    if b.len() < body + 8 {
        return Err(AudioError::Truncated);
    }
    let first = &b[body..];
    if first.starts_with(b"OpusHead") {
        Ok(InputFormat::OggOpus)
    } else if first.len() > 7 && &first[1..7] == b"vorbis" {
        Err(AudioError::UnsupportedCodec("Ogg/Vorbis".into()))
    } else if first.starts_with(b"fLaC") || first.starts_with(b"\x7fFLAC") {
        Err(AudioError::UnsupportedCodec("Ogg/FLAC".into()))
    } else if first.starts_with(b"Speex") {
        Err(AudioError::UnsupportedCodec("Ogg/Speex".into()))
    } else {
        Err(AudioError::UnsupportedCodec(
            "Ogg with an unknown codec".into(),
        ))
    }
}

fn probe_mpeg_frame(b: &[u8]) -> Result<InputFormat> {
    let version = (b[1] >> 3) & 3; // 0 = 2.5, 1 = reserved, 2 = 2, 3 = 1
    let layer = (b[1] >> 1) & 3; // 1 = III, 2 = II, 3 = I, 0 = ADTS (AAC)
    let bitrate = b[2] >> 4;
    let rate = (b[2] >> 2) & 3;
    if layer == 0 && version & 2 == 2 {
        return Err(AudioError::UnsupportedCodec("AAC in ADTS".into()));
    }
    if version == 1 || bitrate == 0xF || rate == 3 {
        return Err(AudioError::NotAudio);
    }
    match layer {
        1 => Ok(InputFormat::Mp3),
        2 => Err(AudioError::UnsupportedCodec("MPEG audio Layer II".into())),
        3 => Err(AudioError::UnsupportedCodec("MPEG audio Layer I".into())),
        _ => Err(AudioError::NotAudio),
    }
}
