//! `doran-audio`: voice messages converted on the device to MP3 before upload, without
//! ffmpeg, with their exact duration and a waveform preview for the message card.
//!
//! The crate does no I/O of its own: [`convert`] reads any `Read + Seek` and writes any
//! `Write + Seek` (a file, a `Cursor<Vec<u8>>`); [`convert_bytes`] does it in memory.
//!
//! # Pipeline
//!
//! 1. **Recognise** the input by content ([`probe`]): EBML DocType `webm`/`matroska`,
//!    `OggS` + `OpusHead`, `ftyp`, `RIFF…WAVE`, `ID3` or an MPEG Layer III frame sync.
//! 2. **Demux and decode**, streaming, packet by packet:
//!    - WebM/Matroska (MediaRecorder's live style with unknown-size Segment and
//!      Clusters, or ffmpeg's): our own small streaming EBML reader → Opus packets;
//!    - Ogg/Opus: the `ogg` crate's packet reader;
//!    - Opus from either is decoded by libopus (`opus` crate) at 48 kHz, straight to
//!      mono when the output is mono; pre-skip and the container's end trimming
//!      (granule position, DiscardPadding) are applied so the duration is exact;
//!    - MP4/M4A (AAC-LC), WAV (PCM 16/24/32-bit, float) and MP3 go through symphonia,
//!      with the MP4 edit list applied (priming and padding) and MP3 gapless info read.
//! 3. **Sink**: downmix to mono (default), stop encoding past
//!    [`ConvertOptions::max_duration_ms`] (but keep counting, to report the length),
//!    collect [`PEAK_COUNT`] waveform peaks, and encode with LAME (`mp3lame-encoder`)
//!    at the input's sample rate when MP3 has it (48 kHz Opus stays 48 kHz), CBR at
//!    [`ConvertOptions::bitrate_kbps`].
//! 4. **Finish**: an ID3v2.3 tag (title, sender) is written first; after LAME's flush
//!    its LAME/Xing info frame (frame count, encoder delay and padding) overwrites the
//!    placeholder frame, so players show the right length and play gaplessly.
//!
//! An MP3 input is validated by decoding it; when it already is within our limits
//! (Layer III, at most [`MP3_PASSTHROUGH_MAX_KBPS`] on average, not too long) its frames
//! are copied unchanged behind our tag; otherwise it is re-encoded.
//!
//! Memory stays bounded whatever the length: one packet of PCM at a time, the peak
//! meter keeps at most 1024 bins, and only an MP4's `moov` box is read whole.
//!
//! Malformed input never panics: every failure is an [`AudioError`].

mod demux;
mod error;
mod format;
mod id3;
mod opus_stream;
mod peaks;
mod sink;
mod symphonia_source;

use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom, Write};

pub use error::{AudioError, Result};
pub use format::{InputFormat, PROBE_LEN, probe};
pub use peaks::PEAK_COUNT;

use crate::{
    demux::{ebml::WebmReader, ogg_opus::OggOpus},
    opus_stream::{OPUS_RATE, OpusDecode, OpusHead},
    sink::{Mp3Sink, SinkSummary, frames_to_ms},
    symphonia_source::SymphoniaSource,
};

/// An MP3 input averaging at most this bitrate (and within the maximum duration) is
/// kept as it is, only re-tagged.
pub const MP3_PASSTHROUGH_MAX_KBPS: u64 = 128;

/// How to convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Constant MP3 bitrate. Default 64 kbps: mono speech at 48 kHz is transparent to the
    /// ear well below that (browsers record it at 24–32 kbps Opus), 64 kbps is the lowest
    /// MPEG-1 Layer III rate that keeps LAME's lowpass above the speech band (≈ 11 kHz at
    /// 48 kHz), and a 3-minute message stays at 1.4 MB. The nearest rate LAME offers is
    /// used (8–320).
    pub bitrate_kbps: u16,
    /// Downmix to one channel (default). Voice gains nothing from stereo and mono halves
    /// the encoding work.
    pub mono: bool,
    /// Longest accepted recording; longer gives [`AudioError::TooLong`]. Default 3
    /// minutes, the recorder's auto-stop.
    pub max_duration_ms: u64,
    /// ID3 title (TIT2), e.g. the message's caption.
    pub title: Option<String>,
    /// ID3 artist (TPE1): the sender's name.
    pub artist: Option<String>,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            bitrate_kbps: 64,
            mono: true,
            max_duration_ms: 180_000,
            title: None,
            artist: None,
        }
    }
}

/// What a conversion produced besides the MP3 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// Exact duration of the audio, in milliseconds (rounded to the nearest).
    pub duration_ms: u64,
    /// [`PEAK_COUNT`] waveform peaks, 0–255, scaled so the loudest is 255.
    pub peaks: Vec<u8>,
    /// Bytes written to the output (ID3 tag included).
    pub bytes_written: u64,
    /// What the input was.
    pub input_format: InputFormat,
    /// Sample rate of the MP3.
    pub sample_rate: u32,
    /// Channels of the MP3 (1 unless `mono` is off and the input is stereo).
    pub channels: u8,
    /// True when an MP3 input was copied unchanged (only re-tagged).
    pub passed_through: bool,
}

/// Converts `input` to MP3 into `out`, streaming.
///
/// `out` must be seekable: the LAME/Xing info frame is written over its placeholder at
/// the start once the frame count is known. Output is written from `out`'s current
/// position; on error it may hold a partial file.
pub fn convert<R, W>(mut input: R, out: &mut W, opts: &ConvertOptions) -> Result<Converted>
where
    R: Read + Seek + Send + Sync,
    W: Write + Seek,
{
    let start = input.stream_position()?;
    let mut head = Vec::with_capacity(PROBE_LEN);
    (&mut input).take(PROBE_LEN as u64).read_to_end(&mut head)?;
    let format = probe(&head)?;
    input.seek(SeekFrom::Start(start))?;
    // Defence in depth: a decoder bug must not take the app down.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        convert_format(input, out, opts, format)
    }))
    .unwrap_or_else(|_| Err(AudioError::Corrupt("decoder panicked".into())))
}

/// [`convert_bytes`] without the guard that turns a decoder panic into an error: the
/// entry point of the fuzzer (`fuzz/`, target `audio`) and of its regression tests,
/// which must see a panic as the bug it is. Not for apps.
#[doc(hidden)]
pub fn convert_unguarded(input: &[u8], opts: &ConvertOptions) -> Result<Converted> {
    let head = &input[..input.len().min(PROBE_LEN)];
    let format = probe(head)?;
    let mut out = Cursor::new(Vec::new());
    convert_format(Cursor::new(input), &mut out, opts, format)
}

/// [`convert`] from and to memory.
pub fn convert_bytes(input: &[u8], opts: &ConvertOptions) -> Result<(Vec<u8>, Converted)> {
    let mut out = Cursor::new(Vec::with_capacity(input.len() / 2 + 8192));
    let c = convert(Cursor::new(input), &mut out, opts)?;
    Ok((out.into_inner(), c))
}

fn convert_format<R, W>(
    input: R,
    out: &mut W,
    opts: &ConvertOptions,
    format: InputFormat,
) -> Result<Converted>
where
    R: Read + Seek + Send + Sync,
    W: Write + Seek,
{
    match format {
        InputFormat::WebM | InputFormat::Matroska => {
            let mut webm = WebmReader::open(BufReader::with_capacity(64 << 10, input))?;
            let head = OpusHead::parse(&webm.track().codec_private)?;
            let mut dec = OpusDecode::new(&head, opts.mono)?;
            let mut sink = Mp3Sink::new(out, OPUS_RATE, dec.channels(), opts, true)?;
            while let Some(frame) = webm.next_frame()? {
                let trim = if frame.discard_padding_ns > 0 {
                    (frame.discard_padding_ns as u128 * u128::from(OPUS_RATE) / 1_000_000_000)
                        as usize
                } else {
                    0
                };
                dec.decode(&frame.data, trim, &mut sink)?;
            }
            let channels = dec.channels();
            finish(sink.finish()?, format, OPUS_RATE, channels, false)
        }
        InputFormat::OggOpus => {
            let ogg = OggOpus::open(BufReader::with_capacity(64 << 10, input))?;
            let mut dec = OpusDecode::new(ogg.head(), opts.mono)?;
            let mut sink = Mp3Sink::new(out, OPUS_RATE, dec.channels(), opts, true)?;
            ogg.run(&mut dec, &mut sink)?;
            let channels = dec.channels();
            finish(sink.finish()?, format, OPUS_RATE, channels, false)
        }
        InputFormat::Mp4 | InputFormat::Wav => {
            let mut src = SymphoniaSource::open(input, format)?;
            let mut sink = Mp3Sink::new(out, src.rate(), src.channels(), opts, true)?;
            src.run(&mut sink)?;
            let channels = out_channels(opts, src.channels());
            let rate = sink.rate();
            finish(sink.finish()?, format, rate, channels, false)
        }
        InputFormat::Mp3 => convert_mp3(input, out, opts),
    }
}

/// MP3 in: decode once to validate and measure; copy when within limits, else
/// re-encode.
fn convert_mp3<R, W>(mut input: R, out: &mut W, opts: &ConvertOptions) -> Result<Converted>
where
    R: Read + Seek + Send + Sync,
    W: Write + Seek,
{
    let start = input.stream_position()?;
    let (measured, kbps, rate, channels) = {
        let mut src = SymphoniaSource::open(&mut input, InputFormat::Mp3)?;
        if !src.is_mp3 {
            return Err(AudioError::UnsupportedCodec(
                "MPEG audio other than Layer III".into(),
            ));
        }
        let mut probe_sink = Mp3Sink::new(out, src.rate(), src.channels(), opts, false)?;
        src.run(&mut probe_sink)?;
        let measured = probe_sink.finish()?;
        let secs = measured.frames as f64 / f64::from(src.rate());
        let kbps = (src.coded_bytes as f64 * 8.0 / secs / 1000.0).round() as u64;
        (measured, kbps, src.rate(), src.channels())
    };
    if kbps <= MP3_PASSTHROUGH_MAX_KBPS {
        input.seek(SeekFrom::Start(start))?;
        let mut head = [0u8; 10];
        let n = read_up_to(&mut input, &mut head)?;
        let skip = id3::tag_len(&head[..n]);
        let end = input.seek(SeekFrom::End(0))?;
        let mut audio_end = end;
        if end >= start + 128 {
            input.seek(SeekFrom::Start(end - 128))?;
            let mut tag = [0u8; 3];
            input.read_exact(&mut tag)?;
            if &tag == b"TAG" {
                audio_end = end - 128;
            }
        }
        let from = start + skip;
        if from >= audio_end {
            return Err(AudioError::Empty);
        }
        input.seek(SeekFrom::Start(from))?;
        let tag = id3::tag(opts.title.as_deref(), opts.artist.as_deref());
        out.write_all(&tag)?;
        let copied = io::copy(&mut (&mut input).take(audio_end - from), out)?;
        out.flush()?;
        let summary = SinkSummary {
            frames: measured.frames,
            peaks: measured.peaks,
            bytes_written: tag.len() as u64 + copied,
        };
        let ch = channels.min(2);
        return finish(summary, InputFormat::Mp3, rate, ch, true);
    }
    input.seek(SeekFrom::Start(start))?;
    let mut src = SymphoniaSource::open(input, InputFormat::Mp3)?;
    let mut sink = Mp3Sink::new(out, src.rate(), src.channels(), opts, true)?;
    src.run(&mut sink)?;
    let channels = out_channels(opts, src.channels());
    finish(sink.finish()?, InputFormat::Mp3, rate, channels, false)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn out_channels(opts: &ConvertOptions, input_channels: usize) -> usize {
    if opts.mono || input_channels != 2 {
        1
    } else {
        2
    }
}

fn finish(
    s: SinkSummary,
    input_format: InputFormat,
    rate: u32,
    channels: usize,
    passed_through: bool,
) -> Result<Converted> {
    Ok(Converted {
        duration_ms: frames_to_ms(s.frames, rate),
        peaks: s.peaks,
        bytes_written: s.bytes_written,
        input_format,
        sample_rate: rate,
        channels: channels as u8,
        passed_through,
    })
}
