//! The typed error the relay sends instead of dropping a socket.

use serde::{Deserialize, Serialize};

use crate::{ChunkId, ClientFrame, DocId, ErrorCode, RequestId, limits::MAX_MESSAGE_BYTES};

/// Why the relay refused a frame, carried by
/// [`ServerFrame::Error`](crate::ServerFrame::Error). The connection stays open
/// unless a [`Goodbye`](crate::ServerFrame::Goodbye) follows.
///
/// The optional fields tie the error to what caused it: the request it answers, or
/// the document (and chunk) of a `Subscribe`, `Push` or `PushSnapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The request this answers, if the error is about a `Request`.
    pub request: Option<RequestId>,
    /// The document concerned, for subscription, push and snapshot errors.
    pub doc: Option<DocId>,
    /// The chunk concerned, for push errors.
    pub chunk: Option<ChunkId>,
    /// What went wrong, as a stable code.
    pub code: ErrorCode,
    /// Human-readable detail for logs (not for end users; the apps translate `code`).
    /// At most [`MAX_MESSAGE_BYTES`].
    pub message: String,
    /// For transient errors (`RateLimited`, `Unavailable`), when to retry, in ms.
    pub retry_after_ms: Option<u64>,
}

impl ErrorFrame {
    /// An error with a code and a message (cut to [`MAX_MESSAGE_BYTES`] at a
    /// character boundary), about nothing in particular.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorFrame {
            request: None,
            doc: None,
            chunk: None,
            code,
            message: truncate(message.into(), MAX_MESSAGE_BYTES),
            retry_after_ms: None,
        }
    }

    /// Ties the error to a request.
    pub fn for_request(mut self, id: RequestId) -> Self {
        self.request = Some(id);
        self
    }

    /// Ties the error to a document.
    pub fn for_doc(mut self, doc: DocId) -> Self {
        self.doc = Some(doc);
        self
    }

    /// Ties the error to a chunk.
    pub fn for_chunk(mut self, chunk: ChunkId) -> Self {
        self.chunk = Some(chunk);
        self
    }

    /// Ties the error to whatever `frame` is about (its request id, document, chunk).
    pub fn about(mut self, frame: &ClientFrame) -> Self {
        self.request = frame.request_id().or(self.request);
        self.doc = frame.doc().or(self.doc);
        self.chunk = frame.chunk().or(self.chunk);
        self
    }

    /// Says when to retry.
    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let e = ErrorFrame::new(ErrorCode::Internal, "가".repeat(MAX_MESSAGE_BYTES));
        assert!(e.message.len() <= MAX_MESSAGE_BYTES);
        assert!(e.message.len() > MAX_MESSAGE_BYTES - 3);
        assert!(e.message.chars().all(|c| c == '가'));
    }

    #[test]
    fn about_takes_the_context_of_the_frame() {
        let doc = DocId([1; 16]);
        let push = ClientFrame::Push {
            doc,
            chunk: ChunkId::of(b"x"),
            bytes: b"x".to_vec(),
        };
        let e = ErrorFrame::new(ErrorCode::Forbidden, "no").about(&push);
        assert_eq!(e.doc, Some(doc));
        assert_eq!(e.chunk, Some(ChunkId::of(b"x")));
        assert_eq!(e.request, None);

        let req = ClientFrame::Request {
            id: RequestId(7),
            body: crate::Request::ListFamilies,
        };
        let e = ErrorFrame::new(ErrorCode::RateLimited, "slow down")
            .about(&req)
            .retry_after(500);
        assert_eq!(e.request, Some(RequestId(7)));
        assert_eq!(e.retry_after_ms, Some(500));
    }
}
