//! MP4/M4A (AAC-LC), WAV and MP3 through symphonia's demuxers and decoders.
//!
//! symphonia's MP4 reader ignores the edit list, so the AAC priming samples (1024 at the
//! start) and the padding at the end would count in the duration; [`mp4_edit`] reads
//! the audio track's `elst` and we trim by it. The MP3 reader reads the LAME/Xing tag and
//! the decoder trims encoder delay and padding itself (`gapless`).

use std::io::{Read, Seek, SeekFrom};

use symphonia::{
    core::{
        codecs::audio::{AudioDecoder, AudioDecoderOptions},
        codecs::{CodecParameters, audio::well_known::CODEC_ID_MP3},
        errors::Error as SymError,
        formats::{FormatOptions, FormatReader, TrackType},
        io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions},
    },
    default::formats::{IsoMp4Reader, MpaReader, WavReader},
};

use crate::{AudioError, InputFormat, Result, sink::PcmSink};

mod mp4_edit;

/// Adapts any `Read + Seek` to symphonia's `MediaSource`.
struct Source<R> {
    inner: R,
    len: Option<u64>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<R: Seek> Seek for Source<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl<R: Read + Seek + Send + Sync> MediaSource for Source<R> {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        self.len
    }
}

/// An opened symphonia reader with the decoder for its audio track.
pub(crate) struct SymphoniaSource<'s> {
    reader: Box<dyn FormatReader + 's>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    rate: u32,
    channels: usize,
    /// MP3 only: whether the stream is Layer III.
    pub is_mp3: bool,
    /// Frames to drop at the start (MP4 edit list).
    skip: u64,
    /// Frames to keep in all (MP4 edit list).
    keep: Option<u64>,
    /// Coded bytes of all packets read (for the MP3 bitrate check).
    pub coded_bytes: u64,
    buf: Vec<f32>,
}

impl std::fmt::Debug for SymphoniaSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SymphoniaSource")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl<'s> SymphoniaSource<'s> {
    /// Opens `r` (positioned anywhere; it is rewound) as `format`.
    pub(crate) fn open<R: Read + Seek + Send + Sync + 's>(
        mut r: R,
        format: InputFormat,
    ) -> Result<Self> {
        let len = r.seek(SeekFrom::End(0))?;
        r.seek(SeekFrom::Start(0))?;
        let edit = if format == InputFormat::Mp4 {
            mp4_edit::read(&mut r, len)?
        } else {
            None
        };
        r.seek(SeekFrom::Start(0))?;
        let mss = MediaSourceStream::new(
            Box::new(Source {
                inner: r,
                len: Some(len),
            }),
            MediaSourceStreamOptions::default(),
        );
        let opts = FormatOptions::default();
        let reader: Box<dyn FormatReader + 's> = match format {
            InputFormat::Mp4 => Box::new(IsoMp4Reader::try_new(mss, opts).map_err(open_err)?),
            InputFormat::Wav => Box::new(WavReader::try_new(mss, opts).map_err(open_err)?),
            InputFormat::Mp3 => Box::new(MpaReader::try_new(mss, opts).map_err(open_err)?),
            other => {
                return Err(AudioError::UnsupportedCodec(format!(
                    "{other} via symphonia"
                )));
            }
        };
        let track = reader
            .default_track(TrackType::Audio)
            .or_else(|| reader.first_track(TrackType::Audio))
            .ok_or_else(|| AudioError::UnsupportedCodec(format!("{format} without audio")))?;
        let Some(CodecParameters::Audio(params)) = &track.codec_params else {
            return Err(AudioError::UnsupportedCodec(format!(
                "{format} without audio"
            )));
        };
        let track_id = track.id;
        let is_mp3 = params.codec == CODEC_ID_MP3;
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(
                params,
                &AudioDecoderOptions::default(), /* gapless: true */
            )
            .map_err(|e| match e {
                SymError::Unsupported(what) => {
                    AudioError::UnsupportedCodec(format!("{format}: {what} ({:?})", params.codec))
                }
                other => sym_err(other),
            })?;
        let rate = params.sample_rate.unwrap_or(0);
        let channels = params.channels.as_ref().map_or(0, |c| c.count());
        if rate == 0 || channels == 0 {
            return Err(AudioError::Corrupt(format!(
                "{format}: no sample rate or channels"
            )));
        }
        let (skip, keep) = match edit {
            Some(e) => e.frames_at(rate),
            None => (0, None),
        };
        Ok(SymphoniaSource {
            reader,
            decoder,
            track_id,
            rate,
            channels,
            is_mp3,
            skip,
            keep,
            coded_bytes: 0,
            buf: Vec::new(),
        })
    }

    /// Sample rate of the decoded audio.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// Channels of the decoded audio.
    pub(crate) fn channels(&self) -> usize {
        self.channels
    }

    /// Decodes every packet of the audio track into `sink`.
    pub(crate) fn run(&mut self, sink: &mut dyn PcmSink) -> Result<()> {
        let mut emitted: u64 = 0;
        while let Some(packet) = self.reader.next_packet().map_err(sym_err)? {
            if packet.track_id != self.track_id {
                continue;
            }
            self.coded_bytes += packet.data.len() as u64;
            let buf = match self.decoder.decode(&packet) {
                Ok(b) => b,
                Err(SymError::Unsupported(what)) => {
                    return Err(AudioError::UnsupportedCodec(what.to_owned()));
                }
                Err(e) => return Err(sym_err(e)),
            };
            if buf.spec().channels().count() != self.channels {
                return Err(AudioError::Corrupt(
                    "channel count changed mid-stream".into(),
                ));
            }
            self.buf.clear();
            buf.copy_to_vec_interleaved::<f32>(&mut self.buf);
            let mut frames = &self.buf[..];
            let ch = self.channels;
            if self.skip > 0 {
                let drop = (self.skip as usize).min(frames.len() / ch);
                frames = &frames[drop * ch..];
                self.skip -= drop as u64;
            }
            if let Some(keep) = self.keep {
                let left = keep.saturating_sub(emitted) as usize;
                let n = (frames.len() / ch).min(left);
                frames = &frames[..n * ch];
            }
            emitted += (frames.len() / ch) as u64;
            sink.push(frames, ch)?;
            if self.keep.is_some_and(|k| emitted >= k) {
                break;
            }
        }
        Ok(())
    }
}

fn open_err(e: SymError) -> AudioError {
    match e {
        SymError::Unsupported(what) => AudioError::UnsupportedCodec(what.to_owned()),
        other => sym_err(other),
    }
}

fn sym_err(e: SymError) -> AudioError {
    match e {
        SymError::IoError(io) => AudioError::from(io),
        SymError::DecodeError(what) => AudioError::Corrupt(what.to_owned()),
        SymError::Unsupported(what) => AudioError::UnsupportedCodec(what.to_owned()),
        SymError::LimitError(what) => AudioError::Corrupt(format!("limit: {what}")),
        other => AudioError::Corrupt(other.to_string()),
    }
}
