//! A TCP proxy between devices and the relay that can lose the relay's answer to one
//! request: the relay does what it was asked, the device never hears so (a train
//! entering a tunnel, an app killed as the answer arrives).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
};

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

/// The proxy. Connections pass through untouched until [`lose_next_answer`]
/// (Self::lose_next_answer); then the next request a device sends reaches the relay,
/// and the connection is cut the moment the relay answers.
#[derive(Debug)]
pub struct AnswerLosingProxy {
    addr: SocketAddr,
    state: Arc<AtomicU8>,
}

impl AnswerLosingProxy {
    /// Listens on a free loopback port and forwards to `relay`.
    pub async fn start(relay: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(AtomicU8::new(IDLE));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((device, _)) = listener.accept().await {
                tokio::spawn(forward(device, relay, Arc::clone(&shared)));
            }
        });
        Self { addr, state }
    }

    /// The relay's URL through the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Loses the relay's answer to the next request a device sends.
    pub fn lose_next_answer(&self) {
        self.state.store(ARMED, Ordering::SeqCst);
    }

    /// Whether an answer was lost since [`lose_next_answer`](Self::lose_next_answer).
    pub fn lost(&self) -> bool {
        self.state.load(Ordering::SeqCst) == IDLE
    }
}

async fn forward(device: TcpStream, relay: SocketAddr, state: Arc<AtomicU8>) {
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
            let request = frames.starts(data).iter().any(|&(op, _)| op == 2);
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
