//! Where decoded PCM goes: downmix, duration limit, waveform peaks and the LAME encoder.

use std::io::{Seek, SeekFrom, Write};

use mp3lame_encoder::{Bitrate, Builder, DualPcm, Encoder, FlushNoGap, Mode, MonoPcm, Quality};

use crate::{AudioError, ConvertOptions, Result, id3, peaks::Peaks};

/// Receives decoded PCM from a decoder.
pub(crate) trait PcmSink {
    /// Interleaved `f32` samples (nominally −1..1) with `channels` per frame.
    fn push(&mut self, pcm: &[f32], channels: usize) -> Result<()>;
    /// True once the maximum duration is exceeded: decoders may then only [`count`].
    ///
    /// [`count`]: PcmSink::count
    fn counting_only(&self) -> bool;
    /// Adds `frames` to the duration without audio (used past the maximum).
    fn count(&mut self, frames: u64) -> Result<()>;
}

/// What a finished sink measured.
#[derive(Debug)]
pub(crate) struct SinkSummary {
    pub frames: u64,
    pub peaks: Vec<u8>,
    pub bytes_written: u64,
}

/// MP3 sample rates: LAME encodes these without resampling.
const MP3_RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

/// LAME's algorithm quality (0 best … 9 fastest). 7 is LAME's own "fast" preset (`-f`):
/// for speech at 64 kbps the difference to the default 3 is inaudible and it roughly
/// halves the encoding time, which dominates the conversion.
const LAME_QUALITY: Quality = Quality::Ok;

/// The MP3 encoding sink (or, without an encoder, a measuring one).
pub(crate) struct Mp3Sink<'w, W: Write + Seek> {
    out: &'w mut W,
    enc: Option<Encoder>,
    mono_out: bool,
    rate: u32,
    frames: u64,
    max_frames: u64,
    max_ms: u64,
    peaks: Peaks,
    left: Vec<f32>,
    right: Vec<f32>,
    mp3: Vec<u8>,
    /// Output position of the first MP3 frame (where the LAME tag goes).
    audio_start: u64,
    bytes_written: u64,
}

impl<W: Write + Seek> std::fmt::Debug for Mp3Sink<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp3Sink")
            .field("rate", &self.rate)
            .field("frames", &self.frames)
            .finish()
    }
}

impl<'w, W: Write + Seek> Mp3Sink<'w, W> {
    /// A sink for PCM at `rate` with `channels`; with `encode` false it only measures
    /// (duration and peaks) and writes nothing.
    pub(crate) fn new(
        out: &'w mut W,
        rate: u32,
        channels: usize,
        opts: &ConvertOptions,
        encode: bool,
    ) -> Result<Self> {
        if rate == 0 || channels == 0 {
            return Err(AudioError::Corrupt("zero sample rate or channels".into()));
        }
        let mono_out = opts.mono || channels != 2;
        let mut enc = None;
        let mut audio_start = 0;
        let mut bytes_written = 0;
        if encode {
            let tag = id3::tag(opts.title.as_deref(), opts.artist.as_deref());
            out.write_all(&tag)?;
            bytes_written = tag.len() as u64;
            audio_start = out.stream_position()?;
            enc = Some(build_encoder(rate, mono_out, opts.bitrate_kbps)?);
        }
        Ok(Mp3Sink {
            out,
            enc,
            mono_out,
            rate,
            frames: 0,
            max_frames: opts.max_duration_ms.saturating_mul(u64::from(rate)) / 1000,
            max_ms: opts.max_duration_ms,
            peaks: Peaks::new(),
            left: Vec::new(),
            right: Vec::new(),
            mp3: Vec::new(),
            audio_start,
            bytes_written,
        })
    }

    /// Flushes LAME, writes the LAME/Xing info frame over its placeholder, and returns
    /// what was measured.
    pub(crate) fn finish(mut self) -> Result<SinkSummary> {
        if self.frames > self.max_frames {
            return Err(AudioError::TooLong {
                duration_ms: frames_to_ms(self.frames, self.rate),
                max_ms: self.max_ms,
            });
        }
        if self.frames == 0 {
            return Err(AudioError::Empty);
        }
        if let Some(mut enc) = self.enc.take() {
            self.mp3.clear();
            self.mp3.reserve(7200);
            let n = enc
                .flush_to_vec::<FlushNoGap>(&mut self.mp3)
                .map_err(lame_err)?;
            self.out.write_all(&self.mp3[..n])?;
            self.bytes_written += n as u64;
            let mut tag = Vec::with_capacity(enc.lame_tag_size().max(1));
            if enc.lame_tag_encode_to_vec(&mut tag).is_some() {
                let end = self.out.stream_position()?;
                self.out.seek(SeekFrom::Start(self.audio_start))?;
                self.out.write_all(&tag)?;
                self.out.seek(SeekFrom::Start(end))?;
            }
            self.out.flush()?;
        }
        Ok(SinkSummary {
            frames: self.frames,
            peaks: self.peaks.finish(),
            bytes_written: self.bytes_written,
        })
    }

    /// The sample rate the sink was opened with.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    fn encode(&mut self) -> Result<()> {
        let Some(enc) = self.enc.as_mut() else {
            return Ok(());
        };
        let n = self.left.len();
        self.mp3.clear();
        self.mp3
            .reserve(mp3lame_encoder::max_required_buffer_size(n));
        let written = if self.mono_out {
            enc.encode_to_vec(MonoPcm(&self.left[..]), &mut self.mp3)
        } else {
            enc.encode_to_vec(
                DualPcm {
                    left: &self.left[..],
                    right: &self.right[..],
                },
                &mut self.mp3,
            )
        }
        .map_err(lame_err)?;
        self.out.write_all(&self.mp3[..written])?;
        self.bytes_written += written as u64;
        Ok(())
    }
}

impl<W: Write + Seek> PcmSink for Mp3Sink<'_, W> {
    fn push(&mut self, pcm: &[f32], channels: usize) -> Result<()> {
        if channels == 0 {
            return Ok(());
        }
        let frames = pcm.len() / channels;
        if frames == 0 {
            return Ok(());
        }
        if self.counting_only() {
            return self.count(frames as u64);
        }
        let room = (self.max_frames - self.frames) as usize;
        let take = frames.min(room);
        self.left.clear();
        self.right.clear();
        if channels == 1 {
            self.left.extend_from_slice(&pcm[..take]);
        } else if !self.mono_out && channels == 2 {
            for f in pcm[..take * 2].chunks_exact(2) {
                self.left.push(f[0]);
                self.right.push(f[1]);
            }
        } else {
            let scale = 1.0 / channels as f32;
            for f in pcm[..take * channels].chunks_exact(channels) {
                self.left.push(f.iter().sum::<f32>() * scale);
            }
        }
        // LAME asserts (aborting the process) on samples far outside −1..1 or not
        // finite, which a damaged or forged file decodes to (found by fuzzing).
        for s in self.left.iter_mut().chain(self.right.iter_mut()) {
            *s = if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            };
        }
        if self.mono_out {
            for &s in &self.left {
                self.peaks.add(s.abs());
            }
        } else {
            for (&l, &r) in self.left.iter().zip(&self.right) {
                self.peaks.add(l.abs().max(r.abs()));
            }
        }
        self.frames += frames as u64;
        if take > 0 {
            self.encode()?;
        }
        Ok(())
    }

    fn counting_only(&self) -> bool {
        self.frames > self.max_frames
    }

    fn count(&mut self, frames: u64) -> Result<()> {
        self.frames += frames;
        Ok(())
    }
}

fn build_encoder(rate: u32, mono: bool, kbps: u16) -> Result<Encoder> {
    let mut b = Builder::new().ok_or_else(|| AudioError::Corrupt("LAME: out of memory".into()))?;
    let setup = (|| {
        b.set_num_channels(if mono { 1 } else { 2 })?;
        b.set_sample_rate(rate)?;
        let out_rate = MP3_RATES
            .contains(&rate)
            .then(|| std::num::NonZeroU32::new(rate))
            .flatten();
        b.set_output_sample_rate(out_rate)?;
        b.set_mode(if mono { Mode::Mono } else { Mode::JointStereo })?;
        b.set_brate(bitrate(kbps))?;
        b.set_vbr_mode(mp3lame_encoder::VbrMode::Off)?;
        b.set_quality(LAME_QUALITY)?;
        b.set_to_write_vbr_tag(true)?;
        Ok::<_, mp3lame_encoder::BuildError>(())
    })();
    setup.map_err(|e| AudioError::Corrupt(format!("LAME setup: {e:?}")))?;
    b.build()
        .map_err(|e| AudioError::Corrupt(format!("LAME setup: {e:?}")))
}

/// The nearest CBR bitrate LAME offers.
fn bitrate(kbps: u16) -> Bitrate {
    const ALL: [(u16, Bitrate); 16] = [
        (8, Bitrate::Kbps8),
        (16, Bitrate::Kbps16),
        (24, Bitrate::Kbps24),
        (32, Bitrate::Kbps32),
        (40, Bitrate::Kbps40),
        (48, Bitrate::Kbps48),
        (64, Bitrate::Kbps64),
        (80, Bitrate::Kbps80),
        (96, Bitrate::Kbps96),
        (112, Bitrate::Kbps112),
        (128, Bitrate::Kbps128),
        (160, Bitrate::Kbps160),
        (192, Bitrate::Kbps192),
        (224, Bitrate::Kbps224),
        (256, Bitrate::Kbps256),
        (320, Bitrate::Kbps320),
    ];
    ALL.iter()
        .min_by_key(|(k, _)| k.abs_diff(kbps))
        .map_or(Bitrate::Kbps64, |&(_, b)| b)
}

fn lame_err(e: mp3lame_encoder::EncodeError) -> AudioError {
    AudioError::Corrupt(format!("LAME: {e:?}"))
}

/// Frames at `rate` to milliseconds, rounded to the nearest.
pub(crate) fn frames_to_ms(frames: u64, rate: u32) -> u64 {
    let rate = u64::from(rate.max(1));
    (frames.saturating_mul(1000) + rate / 2) / rate
}
