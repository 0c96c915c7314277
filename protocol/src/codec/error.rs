//! Why bytes are not a frame.

use crate::{ErrorCode, ErrorFrame};

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The frame is longer than the limit (checked before parsing, and when encoding).
    #[error("frame is {len} bytes, more than the {max}-byte limit")]
    FrameTooLarge {
        /// Its length.
        len: usize,
        /// The limit ([`MAX_FRAME_BYTES`](crate::limits::MAX_FRAME_BYTES)).
        max: usize,
    },
    /// The message has no bytes at all.
    #[error("empty frame")]
    Empty,
    /// The header byte is not an encoding this build knows.
    #[error("unsupported frame encoding version {0}")]
    UnsupportedEncoding(u8),
    /// The body is not a valid frame (truncated, unknown variant, bad UTF-8, wrong
    /// key length, ...).
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A valid frame followed by extra bytes.
    #[error("{count} trailing bytes after the frame")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

impl CodecError {
    pub(crate) fn from_postcard(e: postcard::Error) -> Self {
        CodecError::Malformed(e.to_string())
    }

    /// The error code the relay answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            CodecError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            CodecError::UnsupportedEncoding(_) => ErrorCode::UnsupportedEncoding,
            CodecError::Empty | CodecError::Malformed(_) | CodecError::TrailingBytes { .. } => {
                ErrorCode::MalformedFrame
            }
        }
    }
}

impl From<&CodecError> for ErrorCode {
    fn from(e: &CodecError) -> Self {
        e.code()
    }
}

impl From<CodecError> for ErrorFrame {
    fn from(e: CodecError) -> Self {
        ErrorFrame::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_errors_map_to_codes() {
        assert_eq!(
            CodecError::FrameTooLarge { len: 2, max: 1 }.code(),
            ErrorCode::FrameTooLarge
        );
        assert_eq!(CodecError::Empty.code(), ErrorCode::MalformedFrame);
        assert_eq!(
            CodecError::UnsupportedEncoding(9).code(),
            ErrorCode::UnsupportedEncoding
        );
        assert_eq!(
            CodecError::TrailingBytes { count: 1 }.code(),
            ErrorCode::MalformedFrame
        );
        let frame = ErrorFrame::from(CodecError::Malformed("eof".into()));
        assert_eq!(frame.code, ErrorCode::MalformedFrame);
        assert_eq!(frame.message, "malformed frame: eof");
    }
}
