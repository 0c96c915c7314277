//! The gate never lets tungstenite read past a frame: a websocket dropped after any
//! whole message and built again over the same gate reads every later byte once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;

use futures_util::StreamExt as _;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, protocol::Role},
};

use super::*;

/// A socket that reads the given pieces, one per read, then ends; writes vanish.
#[derive(Debug, Default)]
struct Script {
    pieces: VecDeque<Vec<u8>>,
}

impl AsyncRead for Script {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(mut piece) = this.pieces.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                this.pieces.push_front(piece.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Script {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
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
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// The stream a device might send: messages of every header size, a fragmented one
/// with a ping between its fragments, a ping between messages, a pong.
fn conversation() -> (Vec<u8>, Vec<Message>) {
    let (a, b, c) = (payload(3, 1), payload(125, 2), payload(126, 3));
    let (d, e) = (payload(300, 4), payload(70_000, 5));
    let (f1, f2) = (payload(10, 6), payload(20, 7));
    let mut bytes = Vec::new();
    let mut messages = Vec::new();
    for p in [&a, &b, &c] {
        bytes.extend(frame(true, 2, p));
        messages.push(Message::Binary(p.clone().into()));
    }
    bytes.extend(frame(true, 9, b"ping"));
    messages.push(Message::Ping(b"ping".to_vec().into()));
    bytes.extend(frame(false, 2, &f1));
    bytes.extend(frame(true, 9, b"mid"));
    messages.push(Message::Ping(b"mid".to_vec().into()));
    bytes.extend(frame(true, 0, &f2));
    messages.push(Message::Binary([f1, f2].concat().into()));
    bytes.extend(frame(true, 10, b"pong"));
    messages.push(Message::Pong(b"pong".to_vec().into()));
    for p in [&d, &e, &a] {
        bytes.extend(frame(true, 2, p));
        messages.push(Message::Binary(p.clone().into()));
    }
    (bytes, messages)
}

/// Reads `pieces` as a server, dropping the websocket after every message that ends at
/// a message boundary and building it again over the gate. Returns what was read and
/// how many times it parked.
async fn read_parking(pieces: Vec<Vec<u8>>) -> (Vec<Message>, usize) {
    let script = Script {
        pieces: pieces.into(),
    };
    let config = Some(crate::ws::config());
    let mut ws = WebSocketStream::from_raw_socket(Gate::new(script), Role::Server, config).await;
    let mut got = Vec::new();
    let mut parks = 0;
    // The script ends without a close frame: tungstenite says so with an error.
    while let Some(Ok(msg)) = ws.next().await {
        let data = matches!(msg, Message::Binary(_));
        got.push(msg);
        if !ws.get_ref().at_message_boundary() {
            assert!(!data, "a whole data message read: nothing is half read");
            continue;
        }
        let mut gate = ws.into_inner();
        gate.shrink();
        parks += 1;
        ws = WebSocketStream::from_raw_socket(gate, Role::Server, config).await;
    }
    (got, parks)
}

#[tokio::test]
async fn parking_after_any_message_loses_no_byte_wherever_the_reads_split() {
    let (bytes, expected) = conversation();
    // Split in two at every byte boundary (a first read of nothing would be the end).
    for cut in 1..=bytes.len() {
        // Every boundary near the frame headers and small frames, then a sample of the
        // large frame's interior (each split point is a whole run).
        if cut > 600 && cut < bytes.len() - 400 && cut % 997 != 0 {
            continue;
        }
        let pieces = vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()];
        let (got, parks) = read_parking(pieces).await;
        assert!(
            got == expected,
            "split at byte {cut}: {} messages",
            got.len()
        );
        assert!(parks >= 8, "parked between messages (split at {cut})");
    }
}

#[tokio::test]
async fn parking_after_any_message_loses_no_byte_one_byte_per_read() {
    let (bytes, expected) = conversation();
    let pieces = bytes.iter().map(|b| vec![*b]).collect();
    let (got, _) = read_parking(pieces).await;
    assert!(got == expected, "{} messages", got.len());
}

#[tokio::test]
async fn a_partial_header_read_ahead_survives_a_park() {
    let first = frame(true, 2, b"first");
    let second = frame(true, 2, &payload(200, 9));
    // The first frame and 1, 2, 3 bytes of the second's (4-byte extended) header.
    for ahead in 1..4 {
        let mut one = first.clone();
        one.extend_from_slice(&second[..ahead]);
        let pieces = vec![one, second[ahead..].to_vec()];
        let (got, parks) = read_parking(pieces).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Message::Binary(payload(200, 9).into()));
        assert!(parks >= 1);
    }
}

#[test]
fn headers_parse_only_when_whole() {
    let f = frame(true, 2, &payload(70_000, 1));
    for n in 0..14 {
        assert_eq!(Header::parse(&f[..n]), None, "{n} bytes");
    }
    let h = Header::parse(&f).expect("whole");
    assert_eq!((h.fin, h.opcode, h.total), (true, 2, 14 + 70_000));
    let short = frame(false, 0, b"abc");
    let h = Header::parse(&short).expect("whole");
    assert_eq!((h.fin, h.opcode, h.total), (false, 0, 6 + 3));
}
