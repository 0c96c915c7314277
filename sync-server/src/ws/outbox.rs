//! [`Outbox`]: the session's binary messages, framed and written by the relay itself.
//!
//! Every frame the relay sends but a handful is a binary message (acks, deliveries,
//! answers). Through tokio-tungstenite each went through its sink, its waker proxies,
//! a `Frame` built from the message and formatted into tungstenite's own buffer: about
//! 1.2 k instructions a frame, five frames a push (`docs/benchmarks.md`). A server's data
//! frame is only a header — FIN, the binary opcode, the payload's length, no mask (a
//! server never masks, RFC 6455 §5.1) — and the payload, so the outbox appends both to
//! one buffer and the link writes it with one `write` per flush.
//!
//! tungstenite keeps the read side and every control frame: the pong it queues when a
//! ping is read, the close handshake. The two writers never interleave inside a frame:
//! the link writes out what tungstenite has queued before the outbox's bytes, and the
//! outbox is always empty when tungstenite may write on its own (it does while reading,
//! to answer a ping) — a session writes everything out before it reads again, and a
//! link with bytes waiting in its outbox is never parked.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::AsyncWrite;

/// Bytes queued at which a feed writes out before returning (tungstenite's own write
/// buffer size): a long catch-up is written as it goes, not held whole.
pub(crate) const WRITE_BUFFER: usize = 128 * 1024;

/// The binary opcode with FIN set: a whole message in one frame.
const BINARY_FIN: u8 = 0x82;

/// Framed binary messages waiting to be written.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    written: usize,
}

impl Outbox {
    /// Queues `payload` as one binary message.
    pub(crate) fn push_binary(&mut self, payload: &[u8]) {
        let len = payload.len();
        let buf = &mut self.buf;
        buf.reserve(10 + len);
        buf.push(BINARY_FIN);
        // The payload length in the shortest form that holds it (§5.2).
        match u16::try_from(len) {
            Ok(short) if short <= 125 => buf.push(short as u8),
            Ok(medium) => {
                buf.push(126);
                buf.extend_from_slice(&medium.to_be_bytes());
            }
            Err(_) => {
                buf.push(127);
                buf.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        buf.extend_from_slice(payload);
    }

    /// Bytes queued and not written yet.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.written
    }

    /// Whether nothing waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending() == 0
    }

    /// Writes everything queued to `io` (not flushing it). Cancel-safe: what was
    /// written is not written again.
    pub(crate) fn poll_write_out<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while let Some(rest) = self.buf.get(self.written..).filter(|r| !r.is_empty()) {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio_tungstenite::tungstenite::{Message, protocol::Role};

    use super::*;

    /// Takes at most `step` bytes a write, and says "not now" every other call.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.calls += 1;
            if self.calls.is_multiple_of(2) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// What a client reading `bytes` gets: tungstenite's own client side parses them.
    async fn read_as_a_client(bytes: Vec<u8>, count: usize) -> Vec<Vec<u8>> {
        use futures_util::StreamExt as _;
        let (mut near, far) = tokio::io::duplex(1 << 20);
        tokio::io::AsyncWriteExt::write_all(&mut near, &bytes)
            .await
            .expect("written");
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            far,
            Role::Client,
            Some(crate::ws::config()),
        )
        .await;
        let mut out = Vec::new();
        for _ in 0..count {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => out.push(b.to_vec()),
                other => panic!("not a binary message: {other:?}"),
            }
        }
        out
    }

    #[tokio::test]
    async fn frames_of_every_length_form_read_back_as_sent() {
        // 125 and 126 straddle the 7-bit length; 65 535 and 65 536 the 16-bit one.
        let sizes = [0, 1, 125, 126, 400, 65_535, 65_536, 300_000];
        let payloads: Vec<Vec<u8>> = sizes
            .iter()
            .map(|&n| (0..n).map(|i| (i % 251) as u8).collect())
            .collect();
        let mut outbox = Outbox::default();
        for p in &payloads {
            outbox.push_binary(p);
        }
        let mut io = Trickle {
            got: Vec::new(),
            step: 7,
            calls: 0,
        };
        poll_fn(|cx| outbox.poll_write_out(&mut io, cx))
            .await
            .expect("written");
        assert!(outbox.is_empty());
        assert_eq!(
            read_as_a_client(io.got, payloads.len()).await,
            payloads,
            "every message whole, in order"
        );
    }

    #[test]
    fn a_write_interrupted_goes_on_where_it_stopped() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut outbox = Outbox::default();
        outbox.push_binary(b"first");
        outbox.push_binary(b"second");
        let total = outbox.pending();
        let mut io = Trickle {
            got: Vec::new(),
            step: 3,
            calls: 0,
        };
        // Each poll stops at the "not now" after one short write: dropped there and
        // polled again, nothing is written twice or lost.
        let mut polls = 0;
        while outbox.poll_write_out(&mut io, &mut cx).is_pending() {
            polls += 1;
            assert_eq!(outbox.pending() + io.got.len(), total);
        }
        assert!(polls > 1);
        let mut want = vec![0x82, 5];
        want.extend_from_slice(b"first");
        want.extend_from_slice(&[0x82, 6]);
        want.extend_from_slice(b"second");
        assert_eq!(io.got, want);
    }

    #[test]
    fn a_socket_that_takes_nothing_is_an_error() {
        struct Full;
        impl AsyncWrite for Full {
            fn poll_write(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &[u8],
            ) -> Poll<io::Result<usize>> {
                Poll::Ready(Ok(0))
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
        let mut outbox = Outbox::default();
        outbox.push_binary(b"x");
        let got = outbox.poll_write_out(
            &mut Full,
            &mut Context::from_waker(std::task::Waker::noop()),
        );
        assert!(matches!(got, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::WriteZero));
    }
}
