//! Opus decoding with libopus (the `opus` crate) at 48 kHz, shared by WebM and Ogg.
//!
//! The decoder is opened with one channel when the output is mono, so libopus itself
//! downmixes a stereo stream. The `OpusHead` pre-skip is dropped from the front, the
//! container's end trimming (Ogg granule position, Matroska DiscardPadding) from the
//! back, and the header's output gain is applied.

use crate::{AudioError, Result, sink::PcmSink};

/// Opus always decodes at 48 kHz.
pub(crate) const OPUS_RATE: u32 = 48_000;
/// The longest Opus packet: 120 ms at 48 kHz.
const MAX_PACKET_SAMPLES: usize = 5760;

/// The fields of an `OpusHead` (RFC 7845 §5.1) that decoding needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpusHead {
    pub channels: u8,
    pub pre_skip: u16,
    pub gain_q8: i16,
}

impl OpusHead {
    pub(crate) fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < 19 || !b.starts_with(b"OpusHead") {
            return Err(AudioError::Corrupt(
                "Opus: missing or short OpusHead".into(),
            ));
        }
        if b[8] >> 4 != 0 {
            return Err(AudioError::UnsupportedCodec(format!(
                "Opus header version {}",
                b[8]
            )));
        }
        let channels = b[9];
        let pre_skip = u16::from_le_bytes([b[10], b[11]]);
        let gain_q8 = i16::from_le_bytes([b[16], b[17]]);
        let family = b[18];
        if channels == 0 {
            return Err(AudioError::Corrupt("Opus: zero channels".into()));
        }
        if channels > 2 || family > 1 {
            return Err(AudioError::UnsupportedCodec(format!(
                "Opus with {channels} channels (mapping family {family})"
            )));
        }
        if family == 1 {
            // Family 1 with 1-2 channels may still be a one-stream layout; libopus' plain
            // decoder handles it only when it is the default mapping.
            let streams = b.get(19).copied().unwrap_or(0);
            if streams != 1 {
                return Err(AudioError::UnsupportedCodec("multistream Opus".into()));
            }
        }
        Ok(OpusHead {
            channels,
            pre_skip,
            gain_q8,
        })
    }
}

/// A libopus decoder plus pre-skip bookkeeping.
pub(crate) struct OpusDecode {
    dec: opus::Decoder,
    channels: usize,
    pcm: Vec<f32>,
    to_skip: usize,
}

impl std::fmt::Debug for OpusDecode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecode")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl OpusDecode {
    /// A decoder for `head`, producing one channel when `mono` (or the stream is mono).
    pub(crate) fn new(head: &OpusHead, mono: bool) -> Result<Self> {
        let channels = if mono || head.channels == 1 { 1 } else { 2 };
        let layout = if channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let mut dec = opus::Decoder::new(OPUS_RATE, layout).map_err(opus_err)?;
        if head.gain_q8 != 0 {
            dec.set_gain(i32::from(head.gain_q8)).map_err(opus_err)?;
        }
        Ok(OpusDecode {
            dec,
            channels,
            pcm: vec![0.0; MAX_PACKET_SAMPLES * channels],
            to_skip: usize::from(head.pre_skip),
        })
    }

    /// Channels of the decoded PCM.
    pub(crate) fn channels(&self) -> usize {
        self.channels
    }

    /// Samples (per channel, at 48 kHz) that `packet` decodes to.
    pub(crate) fn samples_in(&self, packet: &[u8]) -> Result<usize> {
        self.dec.get_nb_samples(packet).map_err(opus_err)
    }

    /// Decodes one packet, drops what remains of the pre-skip and `trim_end` samples at
    /// the end, and pushes the rest to `sink`. Empty packets are ignored.
    pub(crate) fn decode(
        &mut self,
        packet: &[u8],
        trim_end: usize,
        sink: &mut dyn PcmSink,
    ) -> Result<()> {
        if packet.is_empty() {
            return Ok(());
        }
        if sink.counting_only() {
            // Past the maximum duration: count samples without decoding them.
            let n = self.samples_in(packet)?;
            let skip = self.to_skip.min(n);
            self.to_skip -= skip;
            return sink.count(n.saturating_sub(skip).saturating_sub(trim_end) as u64);
        }
        let n = self
            .dec
            .decode_float(packet, &mut self.pcm, false)
            .map_err(opus_err)?;
        let skip = self.to_skip.min(n);
        self.to_skip -= skip;
        let end = n.saturating_sub(trim_end).max(skip);
        sink.push(
            &self.pcm[skip * self.channels..end * self.channels],
            self.channels,
        )
    }
}

fn opus_err(e: opus::Error) -> AudioError {
    AudioError::Corrupt(format!("Opus: {e}"))
}
