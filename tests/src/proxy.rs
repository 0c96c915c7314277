//! A TCP proxy between devices and the relay that can lose the relay's answer to one
//! request: the relay does what it was asked, the device never hears so (a train
//! entering a tunnel, an app killed as the answer arrives). It reads the frames going
//! both ways, so it loses the answer to the request named and no other.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use doran_protocol::{ClientFrame, RequestId, ServerFrame, codec};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A websocket frame's opcode and whole length (header, mask, payload), if `bytes`
/// holds its header.
pub fn frame_head(bytes: &[u8]) -> Option<(u8, usize)> {
    let opcode = bytes.first()? & 0x0f;
    let b1 = *bytes.get(1)?;
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    let (len, header) = match b1 & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
            4,
        ),
        127 => {
            let len = u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?);
            (usize::try_from(len).ok()?, 10)
        }
        n => (usize::from(n), 2),
    };
    Some((opcode, header + mask + len))
}

/// The header of a websocket frame in `bytes`: its opcode, the header's length (the
/// mask key included), the mask key if any, and the frame's whole length.
fn frame_parts(bytes: &[u8]) -> Option<(u8, usize, Option<[u8; 4]>, usize)> {
    let (opcode, total) = frame_head(bytes)?;
    let masked = *bytes.get(1)? & 0x80 != 0;
    let header = match bytes[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    } + if masked { 4 } else { 0 };
    let mask = if masked {
        Some(bytes.get(header - 4..header)?.try_into().ok()?)
    } else {
        None
    };
    Some((opcode, header, mask, total))
}

/// One direction of a websocket connection, cut into what to pass on: the HTTP head
/// of the upgrade, then whole frames, each with its payload (unmasked) when binary.
#[derive(Default)]
struct Frames {
    upgraded: bool,
    buf: Vec<u8>,
}

impl Frames {
    /// Takes the next `bytes` in; returns the pieces complete so far.
    fn feed(&mut self, bytes: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if !self.upgraded {
                let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    return out;
                };
                self.upgraded = true;
                out.push((self.buf.drain(..end + 4).collect(), None));
                continue;
            }
            let Some((opcode, header, mask, total)) = frame_parts(&self.buf) else {
                return out;
            };
            if self.buf.len() < total {
                return out;
            }
            let frame: Vec<u8> = self.buf.drain(..total).collect();
            let payload = (opcode == 2).then(|| {
                let mut p = frame[header..].to_vec();
                if let Some(key) = mask {
                    for (i, b) in p.iter_mut().enumerate() {
                        *b ^= key[i % 4];
                    }
                }
                p
            });
            out.push((frame, payload));
        }
    }
}

/// Where the proxy is in losing an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// The next request of this kind ([`Request::kind`]) is the one.
    Armed(&'static str),
    /// That request went to the relay: its answer is the one to lose.
    Asked(RequestId),
    Lost,
}

/// The proxy. Connections pass through untouched until
/// [`lose_answer_to`](Self::lose_answer_to) names a kind of request; then the next
/// such request a device sends reaches the relay, and the connection is cut the
/// moment the relay answers it (what the relay sent before goes through). Other
/// requests — a device's background key work — pass untouched meanwhile.
#[derive(Debug)]
pub struct AnswerLosingProxy {
    addr: SocketAddr,
    phase: Arc<Mutex<Phase>>,
}

impl AnswerLosingProxy {
    /// Listens on a free loopback port and forwards to `relay`.
    pub async fn start(relay: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let phase = Arc::new(Mutex::new(Phase::Idle));
        let shared = Arc::clone(&phase);
        tokio::spawn(async move {
            while let Ok((device, _)) = listener.accept().await {
                tokio::spawn(forward(device, relay, Arc::clone(&shared)));
            }
        });
        Self { addr, phase }
    }

    /// The relay's URL through the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Loses the relay's answer to the next request of `kind` ([`Request::kind`],
    /// e.g. `"create_family"`) a device sends.
    pub fn lose_answer_to(&self, kind: &'static str) {
        *lock(&self.phase) = Phase::Armed(kind);
    }

    /// Whether that answer was lost.
    pub fn lost(&self) -> bool {
        *lock(&self.phase) == Phase::Lost
    }
}

fn lock(phase: &Mutex<Phase>) -> std::sync::MutexGuard<'_, Phase> {
    phase
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn forward(device: TcpStream, relay: SocketAddr, phase: Arc<Mutex<Phase>>) {
    let Ok(upstream) = TcpStream::connect(relay).await else {
        return;
    };
    let (mut from_device, mut to_device) = device.into_split();
    let (mut from_relay, mut to_relay) = upstream.into_split();
    let asked = Arc::clone(&phase);
    let up = tokio::spawn(async move {
        let mut frames = Frames::default();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_device.read(&mut buf).await {
            for (bytes, payload) in frames.feed(&buf[..n]) {
                if let Some(p) = payload
                    && let Ok(ClientFrame::Request { id, body }) = codec::decode_client(&p)
                {
                    let mut phase = lock(&asked);
                    if *phase == Phase::Armed(body.kind()) {
                        *phase = Phase::Asked(id);
                    }
                }
                if to_relay.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut frames = Frames::default();
    let mut buf = vec![0u8; 64 * 1024];
    'read: while let Ok(n @ 1..) = from_relay.read(&mut buf).await {
        for (bytes, payload) in frames.feed(&buf[..n]) {
            if let Some(p) = payload {
                let answered = match codec::decode_server(&p) {
                    Ok(ServerFrame::Response { id, .. }) => Some(id),
                    Ok(ServerFrame::Error(e)) => e.request,
                    _ => None,
                };
                let mut phase = lock(&phase);
                if let (Phase::Asked(id), Some(answer)) = (*phase, answered)
                    && id == answer
                {
                    // The answer and the rest are lost with the connection.
                    *phase = Phase::Lost;
                    break 'read;
                }
            }
            if to_device.write_all(&bytes).await.is_err() {
                break 'read;
            }
        }
    }
    up.abort();
}
