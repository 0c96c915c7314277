//! The virtual device's websocket once open: RFC 6455 frames read and written
//! straight on the TCP socket.
//!
//! tungstenite makes the opening handshake (the HTTP upgrade); after that a device
//! here reads the socket into one buffer, decodes each binary message in place, and
//! writes each frame (masked with a fresh random key, as a client must) with one
//! `write`. Through tokio-tungstenite the same traffic also went through its waker
//! proxies, a `BytesMut` per message and a copy of each payload into a `Vec`: about a
//! fifth of the load generator's CPU per push, on the two cores it shares with the
//! relay. The bytes on the wire are the same.

use doran_protocol::{ServerFrame, codec};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::LoadError;

/// Largest message accepted from the relay: twice the protocol's frame limit, as the
/// relay allows itself.
const MAX_MESSAGE: usize = 2 * doran_protocol::limits::MAX_FRAME_BYTES;

/// Bytes read from the socket at once (more when a frame is larger). Small: a
/// thousand devices' buffers are read into in turn, and each is cold in the cache.
const READ_CHUNK: usize = 4 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// An open client websocket.
#[derive(Debug)]
pub struct Wire {
    tcp: TcpStream,
    /// Read and not yet taken: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// The parts so far of a message sent in several frames, and whether it is binary.
    partial: Option<(bool, Vec<u8>)>,
    /// The frame being written (reused).
    out: Vec<u8>,
}

/// One frame's header, parsed.
struct Header {
    fin: bool,
    opcode: u8,
    /// Header bytes (with the mask key, if any).
    len: usize,
    payload: usize,
    mask: Option<[u8; 4]>,
}

impl Header {
    /// The header at the start of `b`; `None` if it is not all there yet.
    fn parse(b: &[u8]) -> Result<Option<Header>, LoadError> {
        let (Some(&b0), Some(&b1)) = (b.first(), b.get(1)) else {
            return Ok(None);
        };
        let (payload, mut len) = match b1 & 0x7f {
            126 => match b.get(2..4) {
                Some(n) => (u64::from(u16::from_be_bytes([n[0], n[1]])), 4),
                None => return Ok(None),
            },
            127 => match b.get(2..10).and_then(|n| <[u8; 8]>::try_from(n).ok()) {
                Some(n) => (u64::from_be_bytes(n), 10),
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        let payload = usize::try_from(payload)
            .ok()
            .filter(|&p| p <= MAX_MESSAGE)
            .ok_or_else(|| LoadError::Protocol(format!("a websocket frame of {payload} bytes")))?;
        let mask = if b1 & 0x80 != 0 {
            let Some(key) = b
                .get(len..len + 4)
                .and_then(|k| <[u8; 4]>::try_from(k).ok())
            else {
                return Ok(None);
            };
            len += 4;
            Some(key)
        } else {
            None
        };
        Ok(Some(Header {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            len,
            payload,
            mask,
        }))
    }
}

/// XORs `data` with the 4-byte `key`, as websocket masking does.
fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

impl Wire {
    /// Opens a websocket to `url` (`ws://HOST:PORT/PATH`): TCP without Nagle's delay,
    /// as in the app, then tungstenite's client handshake.
    pub async fn connect(url: &str) -> Result<Wire, LoadError> {
        let host = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| LoadError::Setup(format!("not a ws:// URL: {url}")))?;
        let tcp = TcpStream::connect(host).await?;
        tcp.set_nodelay(true)?;
        // The relay says nothing after its handshake answer until the device's Hello,
        // so tungstenite holds no bytes read past it when it hands the socket back.
        let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await?;
        Ok(Wire {
            tcp: ws.into_inner(),
            buf: Vec::new(),
            start: 0,
            partial: None,
            out: Vec::new(),
        })
    }

    /// Sends `payload` as one binary message.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), LoadError> {
        self.send_frame(OP_BINARY, payload).await
    }

    /// Sends a close frame (no status) and waits until it is written.
    pub async fn close(&mut self) -> Result<(), LoadError> {
        self.send_frame(OP_CLOSE, &[]).await
    }

    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> Result<(), LoadError> {
        let out = &mut self.out;
        out.clear();
        out.push(0x80 | opcode);
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key: [u8; 4] = rand::random();
        out.extend_from_slice(&key);
        let at = out.len();
        out.extend_from_slice(payload);
        if let Some(body) = out.get_mut(at..) {
            apply_mask(body, key);
        }
        self.tcp.write_all(&self.out).await?;
        Ok(())
    }

    /// The next binary message, decoded. Pings are answered, pongs and text messages
    /// skipped; a close frame or the end of the socket is [`LoadError::Closed`].
    /// Cancel-safe: bytes read stay in the buffer, and a message is taken only whole.
    pub async fn next(&mut self) -> Result<ServerFrame, LoadError> {
        loop {
            if let Some(frame) = self.take()? {
                return Ok(frame);
            }
            // Makes room at the end; what was taken is dropped from the front first.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.reserve(READ_CHUNK);
            // `read_buf`, not `readable` then `try_read_buf`: a read that fills less
            // than the room it had clears the socket's readiness, so the next wait
            // sleeps at once instead of first reading nothing (`EAGAIN`): 0.6 reads
            // per operation of the mixed run went that way. Cancel-safe like the
            // pair: nothing is read unless it completes.
            if self.tcp.read_buf(&mut self.buf).await? == 0 {
                return Err(LoadError::Closed);
            }
        }
    }

    /// Takes the next whole message from the buffer, if one is there.
    fn take(&mut self) -> Result<Option<ServerFrame>, LoadError> {
        loop {
            let waiting = self.buf.get(self.start..).unwrap_or_default();
            let Some(h) = Header::parse(waiting)? else {
                return Ok(None);
            };
            let Some(body) = self
                .buf
                .get_mut(self.start + h.len..self.start + h.len + h.payload)
            else {
                return Ok(None);
            };
            self.start += h.len + h.payload;
            if let Some(key) = h.mask {
                apply_mask(body, key);
            }
            match (h.opcode, h.fin) {
                (OP_BINARY, true) if self.partial.is_none() => {
                    let frame = codec::decode_server(body)
                        .map_err(|e| LoadError::Protocol(e.to_string()))?;
                    return Ok(Some(frame));
                }
                (OP_CLOSE, _) => return Err(LoadError::Closed),
                (OP_PING, _) => {
                    let ping = body.to_vec();
                    self.pong(&ping)?;
                }
                (OP_PONG, _) => {}
                (OP_CONTINUATION, fin) => {
                    let Some((binary, parts)) = &mut self.partial else {
                        return Err(LoadError::Protocol("a continuation of nothing".into()));
                    };
                    parts.extend_from_slice(body);
                    if parts.len() > MAX_MESSAGE {
                        return Err(LoadError::Protocol("a websocket message too large".into()));
                    }
                    let binary = *binary;
                    if fin
                        && let Some((_, whole)) = self.partial.take()
                        && binary
                    {
                        let frame = codec::decode_server(&whole)
                            .map_err(|e| LoadError::Protocol(e.to_string()))?;
                        return Ok(Some(frame));
                    }
                }
                (opcode @ (0x1 | OP_BINARY), false) if self.partial.is_none() => {
                    self.partial = Some((opcode == OP_BINARY, body.to_vec()));
                }
                // A whole text message: not a frame of the protocol; skipped as before.
                (0x1, true) if self.partial.is_none() => {}
                (opcode, _) => {
                    return Err(LoadError::Protocol(format!(
                        "unexpected websocket opcode {opcode}"
                    )));
                }
            }
        }
    }

    /// Answers a ping without waiting: the relay's pings are rare and tiny, and the
    /// socket's send buffer has room for them.
    fn pong(&mut self, payload: &[u8]) -> Result<(), LoadError> {
        let key: [u8; 4] = rand::random();
        let mut frame = vec![0x80 | OP_PONG, 0x80 | payload.len().min(125) as u8];
        frame.extend_from_slice(&key);
        let at = frame.len();
        frame.extend_from_slice(payload.get(..125).unwrap_or(payload));
        if let Some(body) = frame.get_mut(at..) {
            apply_mask(body, key);
        }
        match self.tcp.try_write(&frame) {
            Ok(n) if n == frame.len() => Ok(()),
            Ok(_) => Err(LoadError::Protocol("a pong written in part".into())),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_twice_gives_the_bytes_back() {
        let original: Vec<u8> = (0..=200u8).collect();
        let mut data = original.clone();
        apply_mask(&mut data, [1, 2, 3, 4]);
        assert_ne!(data, original);
        assert_eq!(data[0], 1);
        assert_eq!(data[5], 5 ^ 0x02);
        apply_mask(&mut data, [1, 2, 3, 4]);
        assert_eq!(data, original);
    }

    #[test]
    fn headers_of_each_length_form() -> Result<(), LoadError> {
        let short = Header::parse(&[0x82, 5])?.ok_or(LoadError::Closed)?;
        assert!(short.fin && short.opcode == OP_BINARY && short.len == 2 && short.payload == 5);
        let mid = Header::parse(&[0x02, 126, 0x01, 0x00])?.ok_or(LoadError::Closed)?;
        assert!(!mid.fin && mid.len == 4 && mid.payload == 256);
        let long = Header::parse(&[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0])?.ok_or(LoadError::Closed)?;
        assert_eq!((long.len, long.payload), (10, 65536));
        let masked = Header::parse(&[0x82, 0x83, 9, 9, 9, 9])?.ok_or(LoadError::Closed)?;
        assert_eq!((masked.len, masked.mask), (6, Some([9; 4])));
        assert!(Header::parse(&[0x82])?.is_none());
        assert!(Header::parse(&[0x82, 126, 1])?.is_none());
        assert!(Header::parse(&[0x82, 0x85, 1, 2])?.is_none());
        assert!(Header::parse(&[0x82, 127, 0xff, 0, 0, 0, 0, 0, 0, 0]).is_err());
        Ok(())
    }
}
