//! [`Socket`]: the connection under a websocket, taken back from hyper after the
//! upgrade as the relay's own type (hyper's `Upgraded` is a boxed stream that is not
//! `Sync`, and a session is shared by reference across its awaits).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use axum::body::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::server::TlsStream;

use crate::conns::Tracked;

/// A websocket's connection: plain TCP or TLS, as the relay accepted it.
#[derive(Debug)]
pub enum Socket {
    /// Plain TCP.
    Plain(Tracked<TcpStream>),
    /// TLS (boxed: rustls's state is large, and plain connections should not pay
    /// for it).
    Tls(Box<Tracked<TlsStream<TcpStream>>>),
}

impl Socket {
    /// The connection hyper upgraded, and the bytes it had already read past the
    /// request; `Err` for a connection type the relay does not accept (none).
    pub fn from_upgraded(upgraded: Upgraded) -> Result<(Socket, Bytes), Upgraded> {
        let upgraded = match upgraded.downcast::<TokioIo<Tracked<TcpStream>>>() {
            Ok(parts) => return Ok((Socket::Plain(parts.io.into_inner()), parts.read_buf)),
            Err(other) => other,
        };
        upgraded
            .downcast::<TokioIo<Tracked<TlsStream<TcpStream>>>>()
            .map(|parts| (Socket::Tls(Box::new(parts.io.into_inner())), parts.read_buf))
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Socket::Plain(s) => s.is_write_vectored(),
            Socket::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_flush(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
