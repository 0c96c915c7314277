//! Test support: start the real `doran-server` binary and talk to it as a device.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use doran_protocol::{
    Challenge, ClientFrame, DeviceId, DocId, ErrorCode, ErrorFrame, PROTOCOL_VERSION, PublicKey,
    Request, RequestId, Response, ServerEvent, ServerFrame, Signature, UserId, codec, signing,
};
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

/// How long any single expected frame may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running relay process, killed on drop.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts the binary on a free loopback port with `data_dir`.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// Like [`start`](Self::start), with extra command-line arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_doran-server"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--server-id", "test-relay"])
            .args(extra)
            .env("DORAN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start doran-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        Server { child, addr }
    }

    /// The websocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        self.child.wait().expect("wait for the relay")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user with one device, as a client knows them.
#[derive(Clone)]
pub struct Identity {
    pub email: String,
    pub nickname: String,
    pub user_key: SigningKey,
    pub device_key: SigningKey,
    pub device: DeviceId,
    pub personal_doc: DocId,
    /// Assigned by the relay at registration.
    pub user: Option<UserId>,
}

fn public(k: &SigningKey) -> PublicKey {
    PublicKey(k.verifying_key().to_bytes())
}

fn sign(k: &SigningKey, msg: &[u8]) -> Signature {
    Signature(k.sign(msg).to_bytes())
}

impl Identity {
    /// A fresh identity with random keys.
    pub fn new(email: &str, nickname: &str) -> Identity {
        Identity {
            email: email.into(),
            nickname: nickname.into(),
            user_key: SigningKey::from_bytes(&rand::random()),
            device_key: SigningKey::from_bytes(&rand::random()),
            device: DeviceId::random(),
            personal_doc: DocId::random(),
            user: None,
        }
    }

    /// The relay-assigned user id.
    pub fn user(&self) -> UserId {
        self.user.expect("registered")
    }

    /// Signs bytes with the device key.
    pub fn sign_device(&self, msg: &[u8]) -> Signature {
        sign(&self.device_key, msg)
    }

    /// The `Register` frame answering `challenge`.
    pub fn register_frame(&self, challenge: &Challenge) -> ClientFrame {
        let (uk, dk) = (public(&self.user_key), public(&self.device_key));
        let args = (
            &self.email,
            &self.nickname,
            &self.personal_doc,
            &uk,
            &self.device,
            &dk,
        );
        let user_msg = signing::register_user_message(
            challenge, args.0, args.1, args.2, args.3, args.4, args.5,
        );
        let device_msg = signing::register_device_message(
            challenge, args.0, args.1, args.2, args.3, args.4, args.5,
        );
        ClientFrame::Register {
            email: self.email.clone(),
            nickname: self.nickname.clone(),
            personal_doc: self.personal_doc,
            user_key: uk,
            device: self.device,
            device_key: dk,
            user_signature: sign(&self.user_key, &user_msg),
            device_signature: sign(&self.device_key, &device_msg),
        }
    }

    /// The `SignIn` frame answering `challenge`.
    pub fn signin_frame(&self, challenge: &Challenge) -> ClientFrame {
        let user = self.user();
        ClientFrame::SignIn {
            user,
            device: self.device,
            signature: self.sign_device(&signing::signin_message(challenge, &user, &self.device)),
        }
    }
}

/// One websocket connection to the relay.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u32,
}

impl Client {
    /// Connects.
    pub async fn connect(server: &Server) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(server.ws_url())
            .await
            .expect("websocket connects");
        Client { ws, next_id: 1 }
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) {
        let bytes = codec::encode_client(frame).expect("encodes");
        self.send_raw(bytes).await;
    }

    /// Sends raw bytes as a binary message.
    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    /// The next frame, within [`TIMEOUT`]; `None` if the socket closed.
    pub async fn next(&mut self) -> Option<ServerFrame> {
        loop {
            let msg = tokio::time::timeout(TIMEOUT, self.ws.next())
                .await
                .expect("a frame within the timeout");
            match msg {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Binary(bytes))) => {
                    return Some(codec::decode_server(&bytes).expect("a valid server frame"));
                }
                Some(Ok(Message::Close(_))) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Frames until one matches `pred` (others, e.g. presence events, are skipped).
    pub async fn until<T>(&mut self, mut pred: impl FnMut(&ServerFrame) -> Option<T>) -> T {
        loop {
            let frame = self.next().await.expect("the socket is open");
            if let Some(t) = pred(&frame) {
                return t;
            }
        }
    }

    /// The next frame that is not a presence event.
    pub async fn next_relevant(&mut self) -> ServerFrame {
        loop {
            match self.next().await.expect("the socket is open") {
                ServerFrame::Event(ServerEvent::Presence(_)) => continue,
                other => return other,
            }
        }
    }

    /// Hello, then the challenge.
    pub async fn hello(&mut self) -> Challenge {
        self.send(&ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: "relay-test/1".into(),
        })
        .await;
        match self.next_relevant().await {
            ServerFrame::Challenge(c) => c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    /// Registers `id` on a fresh connection and records its user id.
    pub async fn register(server: &Server, id: &mut Identity) -> Client {
        let mut c = Client::connect(server).await;
        let challenge = c.hello().await;
        c.send(&id.register_frame(&challenge)).await;
        match c.next_relevant().await {
            ServerFrame::SignedIn { user, device, .. } => {
                assert_eq!(device, id.device);
                id.user = Some(user);
            }
            other => panic!("expected SignedIn, got {other:?}"),
        }
        c
    }

    /// Signs `id` in on a fresh connection.
    pub async fn sign_in(server: &Server, id: &Identity) -> Client {
        let mut c = Client::connect(server).await;
        let challenge = c.hello().await;
        c.send(&id.signin_frame(&challenge)).await;
        match c.next_relevant().await {
            ServerFrame::SignedIn { user, .. } => assert_eq!(user, id.user()),
            other => panic!("expected SignedIn, got {other:?}"),
        }
        c
    }

    /// Sends a request and waits for its answer (skipping other frames).
    pub async fn request(&mut self, body: Request) -> Result<Response, ErrorFrame> {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.send(&ClientFrame::Request { id, body }).await;
        self.until(|f| match f {
            ServerFrame::Response { id: got, body } if *got == id => Some(Ok(body.clone())),
            ServerFrame::Error(e) if e.request == Some(id) => Some(Err(e.clone())),
            _ => None,
        })
        .await
    }

    /// The next error frame (skipping others).
    pub async fn error(&mut self) -> ErrorFrame {
        self.until(|f| match f {
            ServerFrame::Error(e) => Some(e.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for a `Goodbye` and returns its reason.
    pub async fn goodbye(&mut self) -> ErrorCode {
        loop {
            match self.next().await {
                Some(ServerFrame::Goodbye { reason, .. }) => return reason,
                Some(_) => continue,
                None => panic!("closed without a goodbye"),
            }
        }
    }
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The signed headers of a blob request by `id`'s device. Each call uses a later
/// millisecond than the one before, as the relay accepts a signature once.
pub fn signed_headers(id: &Identity, method: &str, path: &str) -> Vec<(String, String)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let time = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .map_or(now, |last| now.max(last + 1));
    let sig = id.sign_device(&doran_server::auth::http_message(method, path, time));
    vec![
        ("x-doran-device".into(), id.device.to_string()),
        ("x-doran-time".into(), time.to_string()),
        ("x-doran-signature".into(), sig.to_string()),
    ]
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub async fn http(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
        server.addr,
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("write head");
    // The relay may refuse before reading the body; a failed write is fine then.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("response within the timeout")
        .expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}
