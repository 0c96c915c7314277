//! A TCP proxy between devices and the relay that can lose the relay's answer to one
//! request: the relay does what it was asked, the device never hears so (a train
//! entering a tunnel, an app killed as the answer arrives).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, Ordering},
    },
};

use doran_protocol::{ClientFrame, decode_client};

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

/// Follows one direction of a websocket connection frame by frame: the HTTP head of
/// the upgrade first, then frames.
#[derive(Default)]
struct Frames {
    upgraded: bool,
    /// The HTTP head, or the header of the next frame, as far as it has arrived.
    head: Vec<u8>,
    /// Where in the current chunk the frame whose header is in `head` started.
    head_at: usize,
    /// What is left of the current frame after its header.
    remaining: usize,
}

impl Frames {
    /// Takes the next `bytes` in and returns the opcodes of the frames whose header
    /// completes in them, each with the offset in `bytes` where the frame starts (0
    /// for one that started in an earlier chunk).
    fn starts(&mut self, bytes: &[u8]) -> Vec<(u8, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        self.head_at = 0;
        while i < bytes.len() {
            if !self.upgraded {
                self.head.push(bytes[i]);
                i += 1;
                if self.head.ends_with(b"\r\n\r\n") {
                    self.upgraded = true;
                    self.head.clear();
                }
                continue;
            }
            if self.remaining > 0 {
                let take = self.remaining.min(bytes.len() - i);
                i += take;
                self.remaining -= take;
                continue;
            }
            if self.head.is_empty() {
                self.head_at = i;
            }
            self.head.push(bytes[i]);
            i += 1;
            if let Some((opcode, len)) = frame_head(&self.head) {
                out.push((opcode, self.head_at));
                self.remaining = len.saturating_sub(self.head.len());
                self.head.clear();
            }
        }
        out
    }
}

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const ASKED: u8 = 2;

/// The kind of request a whole client frame (`frame`: header, mask, payload) carries,
/// if it is one (`Request::kind`).
fn request_kind(frame: &[u8]) -> Option<&'static str> {
    let b1 = *frame.get(1)?;
    let header = match b1 & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    // A device's frames are masked (RFC 6455 §5.3).
    let mask: [u8; 4] = frame.get(header..header + 4)?.try_into().ok()?;
    let payload: Vec<u8> = frame
        .get(header + 4..)?
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    match decode_client(&payload).ok()? {
        ClientFrame::Request { body, .. } => Some(body.kind()),
        _ => None,
    }
}

/// The proxy. Connections pass through untouched until [`lose_next_answer`]
/// (Self::lose_next_answer) or [`lose_answer_to`](Self::lose_answer_to); then the
/// next request a device sends (of that kind) reaches the relay, and the connection
/// is cut the moment the relay answers.
#[derive(Debug)]
pub struct AnswerLosingProxy {
    addr: SocketAddr,
    state: Arc<AtomicU8>,
    /// Only a request of this kind arms the loss (`None`: any request).
    kind: Arc<Mutex<Option<&'static str>>>,
}

impl AnswerLosingProxy {
    /// Listens on a free loopback port and forwards to `relay`.
    pub async fn start(relay: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(AtomicU8::new(IDLE));
        let kind = Arc::new(Mutex::new(None));
        let (shared, kinds) = (Arc::clone(&state), Arc::clone(&kind));
        tokio::spawn(async move {
            while let Ok((device, _)) = listener.accept().await {
                tokio::spawn(forward(
                    device,
                    relay,
                    Arc::clone(&shared),
                    Arc::clone(&kinds),
                ));
            }
        });
        Self { addr, state, kind }
    }

    /// The relay's URL through the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Loses the relay's answer to the next request a device sends.
    pub fn lose_next_answer(&self) {
        *self
            .kind
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.state.store(ARMED, Ordering::SeqCst);
    }

    /// Loses the relay's answer to the next request of this kind (`Request::kind`)
    /// a device sends: the requests a device makes before it (an accept first reads
    /// the invite and checks its signature) are answered.
    pub fn lose_answer_to(&self, kind: &'static str) {
        *self
            .kind
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(kind);
        self.state.store(ARMED, Ordering::SeqCst);
    }

    /// Whether an answer was lost since [`lose_next_answer`](Self::lose_next_answer).
    pub fn lost(&self) -> bool {
        self.state.load(Ordering::SeqCst) == IDLE
    }
}

async fn forward(
    device: TcpStream,
    relay: SocketAddr,
    state: Arc<AtomicU8>,
    kind: Arc<Mutex<Option<&'static str>>>,
) {
    let Ok(upstream) = TcpStream::connect(relay).await else {
        return;
    };
    let (mut from_device, mut to_device) = device.into_split();
    let (mut from_relay, mut to_relay) = upstream.into_split();
    let asked = Arc::clone(&state);
    let up = tokio::spawn(async move {
        let mut frames = Frames::default();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_device.read(&mut buf).await {
            let data = &buf[..n];
            let wanted = *kind
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let request = frames.starts(data).iter().any(|&(op, at)| {
                op == 2
                    && wanted.is_none_or(|wanted| {
                        // The whole frame is in this read for a small request.
                        frame_head(&data[at..])
                            .and_then(|(_, len)| data.get(at..at + len))
                            .and_then(request_kind)
                            == Some(wanted)
                    })
            });
            if to_relay.write_all(data).await.is_err() {
                return;
            }
            if request {
                // A binary frame (a request) went to the relay while armed: its
                // answer is the one to lose.
                let _ = asked.compare_exchange(ARMED, ASKED, Ordering::SeqCst, Ordering::SeqCst);
            }
        }
    });
    let mut frames = Frames::default();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = from_relay.read(&mut buf).await {
        let data = &buf[..n];
        let answer = frames
            .starts(data)
            .iter()
            .find(|&&(op, _)| op == 2)
            .map(|&(_, at)| at);
        if let Some(at) = answer
            && state
                .compare_exchange(ASKED, IDLE, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            // What came before the answer goes through; the answer and the rest are
            // lost with the connection.
            let _ = to_device.write_all(&data[..at]).await;
            break;
        }
        if to_device.write_all(data).await.is_err() {
            break;
        }
    }
    up.abort();
}
