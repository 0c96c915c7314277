//! [`Gate`]: the socket under tungstenite, handing it one websocket frame at a time.
//!
//! tungstenite reads into a buffer of its own and keeps what it read past the frame it
//! returns; dropping the websocket (to park the connection) would lose those bytes.
//! The gate reads the socket into its own buffer, parses each frame's header there,
//! and gives tungstenite at most the bytes up to the end of the current frame. So
//! whenever tungstenite is waiting, everything it holds belongs to one frame still
//! arriving, and once a whole message is read it holds nothing: the websocket can be
//! dropped ([`Gate::at_message_boundary`]) and built again over the same gate, which
//! keeps the bytes read ahead. Writes pass straight through.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at once. Several small frames arrive in one read; a
/// large frame goes through in as many reads as it needs.
pub(crate) const READ_CHUNK: usize = 4096;

/// The longest websocket frame header: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEADER: usize = 14;

/// A socket that hands its reader whole websocket frames, never bytes of the next one.
#[derive(Debug)]
pub(crate) struct Gate<S> {
    io: S,
    /// Bytes read and not yet handed on: `buf[start..end]`. Empty (no allocation)
    /// while parked with nothing read ahead.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the current frame (header included) not yet handed on; 0 between
    /// frames.
    rest: u64,
    /// A data message was begun by a frame without FIN and is not finished.
    fragmented: bool,
    /// The socket ended (read 0 bytes) while parked: the next read says so.
    eof: bool,
    /// A read failed while parked: the next read returns it.
    error: Option<io::Error>,
}

impl<S> Gate<S> {
    /// A gate over `io`, with nothing read yet.
    pub(crate) fn new(io: S) -> Self {
        Gate {
            io,
            buf: Vec::new(),
            start: 0,
            end: 0,
            rest: 0,
            fragmented: false,
            eof: false,
            error: None,
        }
    }

    /// A gate over `io` that already read `ahead` from it.
    pub(crate) fn with_read_ahead(io: S, ahead: &[u8]) -> Self {
        let mut gate = Gate::new(io);
        gate.append(ahead);
        gate
    }

    /// Whether everything handed on so far ends a whole message: the reader above
    /// holds no bytes and no part of a message.
    pub(crate) fn at_message_boundary(&self) -> bool {
        self.rest == 0 && !self.fragmented
    }

    /// Gives back the read buffer's memory, keeping only bytes read ahead (at most a
    /// partial frame header, see [`poll_read`](AsyncRead::poll_read)).
    pub(crate) fn shrink(&mut self) {
        let ahead = self
            .buf
            .get(self.start..self.end)
            .unwrap_or_default()
            .to_vec();
        self.end = ahead.len();
        self.start = 0;
        self.buf = ahead;
    }

    /// The bytes waiting to be handed on.
    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Starts the next frame if its whole header is waiting: records its length and
    /// whether it begins or ends a fragmented message. `false` if the header is still
    /// incomplete.
    fn start_frame(&mut self) -> bool {
        let Some(header) = Header::parse(self.pending()) else {
            return false;
        };
        self.rest = header.total;
        // A data frame starts a message, a continuation goes on with one; without FIN,
        // more frames of the message follow. Control frames (opcode 8 and up) may
        // come between fragments and change nothing.
        if header.opcode <= 2 {
            self.fragmented = !header.fin;
        }
        true
    }

    /// Appends `bytes` read from the socket to the buffer.
    fn append(&mut self, bytes: &[u8]) {
        if self.buf.len() < self.end + bytes.len() {
            // Move what is left to the front before growing.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let want = (self.end + bytes.len()).max(READ_CHUNK);
            self.buf.resize(want, 0);
        }
        if let Some(to) = self.buf.get_mut(self.end..self.end + bytes.len()) {
            to.copy_from_slice(bytes);
            self.end += bytes.len();
        }
    }
}

impl<S: AsyncRead + Unpin> Gate<S> {
    /// Waits until the socket has something (bytes, its end, or an error) while parked:
    /// reads into the stack and allocates the buffer only once bytes came.
    pub(crate) fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.eof || self.error.is_some() || Header::parse(self.pending()).is_some() {
            return Poll::Ready(());
        }
        let mut stack = [0u8; READ_CHUNK];
        let mut read = ReadBuf::new(&mut stack);
        match ready!(Pin::new(&mut self.io).poll_read(cx, &mut read)) {
            Ok(()) if read.filled().is_empty() => self.eof = true,
            Ok(()) => self.append(read.filled()),
            Err(e) => self.error = Some(e),
        }
        Poll::Ready(())
    }

    /// Reads more from the socket into the buffer; `Ok(false)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if let Some(e) = self.error.take() {
            return Poll::Ready(Err(e));
        }
        if self.eof {
            return Poll::Ready(Ok(false));
        }
        if self.buf.is_empty() {
            // No buffer yet (a websocket just built, e.g. to send a delivery): read
            // into the stack, and allocate only once bytes come.
            let mut stack = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut stack);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
            self.append(read.filled());
            return Poll::Ready(Ok(!read.filled().is_empty()));
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.buf.len() - self.end < MAX_HEADER {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < READ_CHUNK {
            self.buf.resize(READ_CHUNK, 0);
        }
        let Some(free) = self.buf.get_mut(self.end..) else {
            return Poll::Ready(Ok(false));
        };
        let mut read = ReadBuf::new(free);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        self.end += n;
        Poll::Ready(Ok(n > 0))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Gate<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.start < this.end && (this.rest > 0 || this.start_frame()) {
                let n = (this.end - this.start)
                    .min(out.remaining())
                    .min(usize::try_from(this.rest).unwrap_or(usize::MAX));
                let to = this.start + n;
                if let Some(bytes) = this.buf.get(this.start..to) {
                    out.put_slice(bytes);
                }
                this.start = to;
                this.rest -= n as u64;
                return Poll::Ready(Ok(()));
            }
            // Nothing whole to hand on: at most a partial header waits. Read more; at
            // the socket's end, hand on nothing (the reader sees the end, and a
            // partial header is a truncated frame either way).
            if !ready!(this.poll_fill(cx))? {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gate<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// What the gate needs of a frame header (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    /// Header and payload bytes.
    total: u64,
}

impl Header {
    /// The header at the start of `bytes`, if it is all there.
    fn parse(bytes: &[u8]) -> Option<Header> {
        let (&b0, rest) = bytes.split_first()?;
        let (&b1, rest) = rest.split_first()?;
        let masked = b1 & 0x80 != 0;
        let (len, ext) = match b1 & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
                2,
            ),
            127 => (u64::from_be_bytes(rest.get(..8)?.try_into().ok()?), 8),
            short => (u64::from(short), 0),
        };
        let head = 2 + ext + if masked { 4 } else { 0 };
        if bytes.len() < head {
            return None;
        }
        Some(Header {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            total: len.saturating_add(head as u64),
        })
    }
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
