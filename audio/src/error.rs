//! The one error type of the crate.

use std::io;

/// Why a recording could not be converted. Every malformed input ends in one of these,
/// never in a panic.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The bytes are not a container this crate recognises (not WebM/Matroska, Ogg, MP4,
    /// WAV nor MP3).
    #[error("not an audio file we recognise")]
    NotAudio,
    /// A recognised container holding a codec or layout we do not decode (e.g. WebM with
    /// Vorbis, Ogg/Vorbis, WAV with ADPCM, MP4 with ALAC, Opus with more than two
    /// channels). The string names it.
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(String),
    /// The file ends in the middle of an element, page, box or frame.
    #[error("the file is truncated")]
    Truncated,
    /// The audio is longer than [`ConvertOptions::max_duration_ms`](crate::ConvertOptions).
    #[error("the recording lasts {duration_ms} ms, more than the maximum of {max_ms} ms")]
    TooLong {
        /// The input's duration as far as it was read (at least `max_ms + 1`).
        duration_ms: u64,
        /// The configured maximum.
        max_ms: u64,
    },
    /// Zero bytes, or a valid container holding no audio samples.
    #[error("the recording is empty")]
    Empty,
    /// The container or the coded audio is malformed; the string says where.
    #[error("corrupt audio: {0}")]
    Corrupt(String),
    /// Reading the input or writing the output failed.
    #[error("i/o error: {0}")]
    Io(#[source] io::Error),
}

impl From<io::Error> for AudioError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            AudioError::Truncated
        } else {
            AudioError::Io(e)
        }
    }
}

/// `Result` with [`AudioError`].
pub type Result<T, E = AudioError> = std::result::Result<T, E>;
