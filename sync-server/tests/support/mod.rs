//! Test support: start the real `doran-server` binary and talk to it as a device.

#![allow(dead_code)]

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use doran_protocol::{
    BlobHash, Challenge, ClientFrame, DeviceId, DocId, ErrorCode, ErrorFrame, HttpSessionKey,
    PROTOCOL_VERSION, PublicKey, Request, RequestId, Response, ServerEvent, ServerFrame, Signature,
    UserId, codec, signing,
};
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

/// How long any single expected frame may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The relay binary under test: this build's, or the one `DORAN_TEST_RELAY` names (to
/// check that a test fails against an older build).
pub fn relay_binary() -> std::path::PathBuf {
    std::env::var_os("DORAN_TEST_RELAY")
        .map_or_else(|| env!("CARGO_BIN_EXE_doran-server").into(), Into::into)
}

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
        Server::spawn(Command::new(relay_binary()), data_dir, extra)
    }

    /// Like [`start_with`](Self::start_with), with the relay's open-file limit (soft
    /// and hard, so it cannot raise it) set to `files` by the shell.
    pub fn start_with_file_limit(data_dir: &Path, files: u32, extra: &[&str]) -> Server {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(relay_binary());
        Server::spawn(sh, data_dir, extra)
    }

    /// Starts `relay` (the binary, or a command that execs it) with the test flags —
    /// on PostgreSQL and S3 when `DORAN_TEST_BACKEND=cluster` (see [`shared_backend`]),
    /// named after the data directory, so a restart finds its data again.
    fn spawn(relay: Command, data_dir: &Path, extra: &[&str]) -> Server {
        let shared = if std::env::var("DORAN_TEST_BACKEND").as_deref() == Ok("cluster") {
            // As the relays of a cluster are set up: sharing the secret of their
            // session keys, else they give none.
            let mut shared = shared_backend(&data_dir.display().to_string());
            shared.extend([
                "--http-session-secret".to_owned(),
                CLUSTER_SECRET.to_owned(),
            ]);
            shared
        } else {
            Vec::new()
        };
        Server::spawn_on(relay, data_dir, &shared, extra)
    }

    /// Starts a relay on the PostgreSQL schema and S3 prefix named by `key`: relays
    /// started with the same key share their data (a cluster). `None` when the test
    /// machine has no PostgreSQL and S3 (see [`shared_backend`]).
    pub fn start_shared(data_dir: &Path, key: &str, extra: &[&str]) -> Option<Server> {
        let shared = shared_backend(key);
        if shared.is_empty() {
            return None;
        }
        Some(Server::spawn_on(
            Command::new(relay_binary()),
            data_dir,
            &shared,
            extra,
        ))
    }

    /// Starts the binary with exactly `extra` (no backend chosen from the environment):
    /// for tests that name their backends themselves.
    pub fn start_exactly(data_dir: &Path, extra: &[&str]) -> Server {
        Server::spawn_on(Command::new(relay_binary()), data_dir, &[], extra)
    }

    fn spawn_on(mut relay: Command, data_dir: &Path, shared: &[String], extra: &[&str]) -> Server {
        let (child, addr) = doran_testkit::spawn(
            relay
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--listen", "127.0.0.1:0", "--server-id", "test-relay"])
                .args(shared)
                .args(extra)
                .env("DORAN_LOG", "warn")
                .stderr(Stdio::inherit()),
        )
        .expect("start doran-server");
        Server { child, addr }
    }

    /// The relay's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// The relay arguments for PostgreSQL and S3 under names derived from `key`: the test
/// database (`DORAN_TEST_DATABASE`) in schema `t_HASH`, the test bucket
/// (`DORAN_TEST_S3`) under prefix `t_HASH`; the endpoint, region and keys come from the
/// environment (`DORAN_S3_ENDPOINT`, `DORAN_S3_REGION`, `AWS_*`), as `scripts/test`
/// sets them. Empty without a test database, unless `DORAN_REQUIRE_BACKENDS` says the
/// run must have one (then it panics).
pub fn shared_backend(key: &str) -> Vec<String> {
    let db = std::env::var("DORAN_TEST_DATABASE").unwrap_or_default();
    let s3 = std::env::var("DORAN_TEST_S3").unwrap_or_default();
    if db.is_empty() || s3.is_empty() {
        assert!(
            std::env::var_os("DORAN_REQUIRE_BACKENDS").is_none(),
            "DORAN_TEST_DATABASE and DORAN_TEST_S3 must be set when DORAN_REQUIRE_BACKENDS is"
        );
        return Vec::new();
    }
    let name = format!("t_{}", &blake3::hash(key.as_bytes()).to_hex()[..16]);
    vec![
        "--database".into(),
        db,
        "--database-schema".into(),
        name.clone(),
        "--blobs".into(),
        format!("{}/{name}", s3.trim_end_matches('/')),
    ]
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
    /// The last HTTP session key the relay sent (after a sign-in), which
    /// [`next`](Self::next) keeps here instead of returning it.
    pub http_session: Option<HttpSessionKey>,
}

impl Client {
    /// Connects.
    pub async fn connect(server: &Server) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(server.ws_url())
            .await
            .expect("websocket connects");
        Client {
            ws,
            next_id: 1,
            http_session: None,
        }
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) {
        let bytes = codec::encode_client(frame).expect("encodes");
        self.send_raw(bytes).await;
    }

    /// Sends a frame to a session that may already be closed: whether it went out (a
    /// relay that closed the session resets the socket under a late write).
    pub async fn try_send(&mut self, frame: &ClientFrame) -> bool {
        let bytes = codec::encode_client(frame).expect("encodes");
        self.ws.send(Message::Binary(bytes.into())).await.is_ok()
    }

    /// Sends raw bytes as a binary message.
    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    /// The next frame, within [`TIMEOUT`]; `None` if the socket closed. An HTTP session
    /// key (sent after a sign-in) is kept in [`http_session`](Self::http_session) and
    /// not returned: tests of other frames need not know whether the relay gives keys.
    pub async fn next(&mut self) -> Option<ServerFrame> {
        loop {
            match self.next_any().await? {
                ServerFrame::HttpSessionKey(key) => self.http_session = Some(key),
                frame => return Some(frame),
            }
        }
    }

    /// The next frame whatever it is, within [`TIMEOUT`]; `None` if the socket closed.
    pub async fn next_any(&mut self) -> Option<ServerFrame> {
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

    /// The protocol error code the relay put in `x-doran-error`, if any.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.header("x-doran-error")
            .and_then(|v| v.parse::<u16>().ok())
            .map(ErrorCode::from_code)
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
    let sig = id.sign_device(&doran_server::auth::http_message(
        SERVER_ID, method, path, time,
    ));
    vec![
        ("x-doran-device".into(), id.device.to_string()),
        ("x-doran-time".into(), time.to_string()),
        ("x-doran-signature".into(), sig.to_string()),
    ]
}

/// An envelope-looking chunk (the relay reads only its first bytes), unique per `n`.
pub fn sealed(n: u8) -> Vec<u8> {
    let mut bytes = b"DRD\x01".to_vec();
    bytes.extend_from_slice(&[n; 64]);
    bytes
}

/// A clear chunk (Automerge's magic bytes first), unique per `n`.
pub fn clear(n: u8) -> Vec<u8> {
    let mut bytes = b"\x85\x6f\x4a\x83".to_vec();
    bytes.extend_from_slice(&[n; 64]);
    bytes
}

/// `by` uploads `bytes` to the blobs of `owner` (the upload's query: `family=…`, or
/// `owner=me`) and pushes them as a snapshot of `doc` covering `covers`: recorded
/// (pending), or the refusal's code.
pub async fn push_snapshot_of(
    (server, by, c): (&Server, &Identity, &mut Client),
    (doc, owner): (DocId, &str),
    covers: u64,
    bytes: Vec<u8>,
) -> Result<(), ErrorCode> {
    let blob = BlobHash::of(&bytes);
    let path = format!("/blobs/{blob}?{owner}");
    let put = signed_http(server, by, "PUT", &path, &bytes).await;
    assert!(
        put.status == 201 || put.status == 200,
        "upload: {}",
        put.status
    );
    c.send(&ClientFrame::PushSnapshot {
        doc,
        covers_seq: covers,
        blob,
        len: bytes.len() as u64,
    })
    .await;
    c.until(|f| match f {
        ServerFrame::SnapshotAccepted { .. } => Some(Ok(())),
        ServerFrame::Error(e) if e.doc == Some(doc) => Some(Err(e.code)),
        _ => None,
    })
    .await
}

/// [`http`] signed by `id`'s device.
pub async fn signed_http(
    server: &Server,
    id: &Identity,
    method: &str,
    path: &str,
    body: &[u8],
) -> HttpResponse {
    http(
        server,
        method,
        path,
        &signed_headers(id, method, path),
        body,
    )
    .await
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub async fn http(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> HttpResponse {
    http_to(server.addr, method, path, headers, body).await
}

/// [`http`] to the relay at `addr` (for a task that does not hold the [`Server`]).
pub async fn http_to(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
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
    parse_response(&raw)
}

/// A metric from `/metrics` (0 if absent).
pub async fn metric(server: &Server, name: &str) -> u64 {
    let r = http(server, "GET", "/metrics", &[], b"").await;
    String::from_utf8_lossy(&r.body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// Waits until `name` satisfies `ok` (polling `/metrics`), at most 10 s.
pub async fn until_metric(server: &Server, name: &str, ok: impl Fn(u64) -> bool) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = metric(server, name).await;
        if ok(v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed at {v}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A 24 MiB personal blob of `id`'s, stored on the relay — more than the loopback's
/// socket buffers hold, so a download nobody reads stays in progress. Returns its
/// bytes and its download path.
pub async fn a_large_blob(server: &Server, id: &Identity) -> (Vec<u8>, String) {
    let blob: Vec<u8> = (0..24u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let hash = BlobHash::of(&blob);
    let put = signed_http(server, id, "PUT", &format!("/blobs/{hash}?owner=me"), &blob).await;
    assert_eq!(put.status, 201, "{put:?}");
    (blob, format!("/blobs/{hash}"))
}

// ---------------------------------------------------------------------------
// Helpers for the hostile-client suite (relay_hostile.rs). They only add to the
// ones above.

/// The server id every test relay is started with (`--server-id`).
pub const SERVER_ID: &str = "test-relay";

/// The HTTP session secret the relays of a test cluster share.
pub const CLUSTER_SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// An invite card as a device seals one (the family's title and 호칭, sealed to the
/// invitee's devices): 300 random bytes, opaque to the relay, which must serve them
/// back unchanged.
pub fn sample_card() -> Vec<u8> {
    (0..300).map(|_| rand::random::<u8>()).collect()
}

impl Server {
    /// Like [`start_with`](Self::start_with), with a JSON configuration file (see
    /// `doran_server::config`) written next to the data directory's contents.
    pub fn start_with_config(data_dir: &Path, json: &str, extra: &[&str]) -> Server {
        let path = data_dir.join("hostile-config.json");
        std::fs::write(&path, json).expect("write the config file");
        let path = path.to_str().expect("a UTF-8 path").to_owned();
        let mut args = vec!["--config", path.as_str()];
        args.extend_from_slice(extra);
        Server::start_with(data_dir, &args)
    }
}

impl Identity {
    /// The public device key.
    pub fn device_public(&self) -> PublicKey {
        public(&self.device_key)
    }

    /// The public user key.
    pub fn user_public(&self) -> PublicKey {
        public(&self.user_key)
    }

    /// Another device of the same user: a fresh device id and device key.
    pub fn another_device(&self) -> Identity {
        Identity {
            device_key: SigningKey::from_bytes(&rand::random()),
            device: DeviceId::random(),
            ..self.clone()
        }
    }

    /// A `SendInvite` request with a [`sample_card`], signed by this device.
    pub fn invite_request(
        &self,
        invite: doran_protocol::InviteId,
        family: doran_protocol::FamilyId,
        invitee: UserId,
    ) -> Request {
        self.invite_request_with_card(invite, family, invitee, sample_card())
    }

    /// A `SendInvite` request carrying `card`, signed by this device (over the card).
    pub fn invite_request_with_card(
        &self,
        invite: doran_protocol::InviteId,
        family: doran_protocol::FamilyId,
        invitee: UserId,
        card: Vec<u8>,
    ) -> Request {
        let msg = signing::invite_message(
            SERVER_ID,
            &invite,
            &family,
            &self.user(),
            &self.device,
            &invitee,
            &card,
        );
        Request::SendInvite {
            invite,
            family,
            invitee,
            card,
            signature: self.sign_device(&msg),
        }
    }

    /// An `AnswerInvite` request, signed by this device.
    pub fn answer_request(&self, invite: doran_protocol::InviteId, accept: bool) -> Request {
        let msg =
            signing::invite_answer_message(SERVER_ID, &invite, &self.user(), &self.device, accept);
        Request::AnswerInvite {
            invite,
            accept,
            signature: self.sign_device(&msg),
        }
    }

    /// The `Recover` frame answering `challenge` (this identity's user key and device).
    pub fn recover_frame(&self, challenge: &Challenge) -> ClientFrame {
        let (uk, dk) = (public(&self.user_key), public(&self.device_key));
        let user_msg = signing::recover_user_message(challenge, &uk, &self.device, &dk);
        let device_msg = signing::recover_device_message(challenge, &uk, &self.device, &dk);
        ClientFrame::Recover {
            user_key: uk,
            device: self.device,
            device_key: dk,
            user_signature: sign(&self.user_key, &user_msg),
            device_signature: sign(&self.device_key, &device_msg),
        }
    }

    /// A `ConfirmLink` request answering `link`, signed by this device.
    pub fn confirm_link_request(
        &self,
        link: &doran_protocol::PendingLinkInfo,
        accept: bool,
    ) -> Request {
        let msg = signing::link_confirm_message(
            SERVER_ID,
            &link.link,
            &self.user(),
            &self.device,
            &link.device,
            &link.device_key,
            accept,
        );
        Request::ConfirmLink {
            link: link.link,
            accept,
            signature: self.sign_device(&msg),
        }
    }

    /// The `LinkDevice` frame redeeming `code` for this identity's device.
    pub fn link_frame(&self, challenge: &Challenge, code: &str) -> ClientFrame {
        let dk = public(&self.device_key);
        let msg = signing::link_device_message(challenge, code, &self.device, &dk);
        ClientFrame::LinkDevice {
            code: code.into(),
            device: self.device,
            device_key: dk,
            signature: self.sign_device(&msg),
        }
    }
}

impl Client {
    /// Presents `code` for `new`'s device on a fresh connection: the signed-in
    /// connection, or the refusal (`LinkPending` until a device confirms it).
    pub async fn link(server: &Server, new: &Identity, code: &str) -> Result<Client, ErrorFrame> {
        let mut c = Client::connect(server).await;
        let challenge = c.hello().await;
        c.send(&new.link_frame(&challenge, code)).await;
        match c.next_relevant().await {
            ServerFrame::SignedIn { device, .. } => {
                assert_eq!(device, new.device);
                Ok(c)
            }
            ServerFrame::Error(e) => Err(e),
            other => panic!("expected SignedIn or an error, got {other:?}"),
        }
    }

    /// The next `LinkRequested` event on this (signed-in) connection.
    pub async fn link_requested(&mut self) -> doran_protocol::PendingLinkInfo {
        self.until(|f| match f {
            ServerFrame::Event(ServerEvent::LinkRequested(info)) => Some(info.clone()),
            _ => None,
        })
        .await
    }
}

/// Links `new` (a fresh device of `by`'s user) with `code` the way the apps do: the
/// new device presents the code (and is told to wait), the signed-in device `c` of
/// `by` is asked and confirms, and the new device presents it again and is signed in.
pub async fn link_and_confirm(
    server: &Server,
    c: &mut Client,
    by: &Identity,
    new: &Identity,
    code: &str,
) -> Client {
    let waiting = Client::link(server, new, code)
        .await
        .err()
        .expect("told to wait");
    assert_eq!(waiting.code, ErrorCode::LinkPending, "{waiting:?}");
    let asked = c.link_requested().await;
    assert_eq!(
        (asked.device, asked.device_key),
        (new.device, new.device_public())
    );
    let done = c.request(by.confirm_link_request(&asked, true)).await;
    assert!(matches!(done, Ok(Response::Done)), "{done:?}");
    Client::link(server, new, code)
        .await
        .expect("linked once confirmed")
}

/// What a fresh subscription to a document shows: its snapshot, its chunks and the
/// head it caught up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocView {
    /// `(covers_seq, blob)` of the snapshot served, if any.
    pub snapshot: Option<(doran_protocol::Seq, BlobHash)>,
    /// `(seq, bytes)` of every chunk served, in order.
    pub chunks: Vec<(doran_protocol::Seq, Vec<u8>)>,
    /// The seq of `CaughtUp`.
    pub head: doran_protocol::Seq,
}

impl Client {
    /// Hello with any protocol version; the next relevant frame.
    pub async fn hello_version(&mut self, version: u16) -> ServerFrame {
        self.send(&ClientFrame::Hello {
            protocol_version: version,
            client: "relay-test/1".into(),
        })
        .await;
        self.next_relevant().await
    }

    /// The next frame that is not an event, which must be an error frame.
    pub async fn refusal(&mut self) -> ErrorFrame {
        loop {
            match self.next().await {
                Some(ServerFrame::Event(_)) => continue,
                Some(ServerFrame::Error(e)) => return e,
                Some(other) => panic!("expected an error frame, got {other:?}"),
                None => panic!("expected an error frame, the socket closed"),
            }
        }
    }

    /// Pings and expects the `Pong` as the next frame that is not an event: nothing
    /// else (a chunk, an ack, an error) was queued for this connection.
    pub async fn quiet(&mut self, nonce: u64) {
        self.send(&ClientFrame::Ping { nonce }).await;
        loop {
            match self.next().await {
                Some(ServerFrame::Event(_)) => continue,
                Some(ServerFrame::Pong { nonce: n }) if n == nonce => return,
                Some(other) => panic!("expected only Pong({nonce}), got {other:?}"),
                None => panic!("expected Pong({nonce}), the socket closed"),
            }
        }
    }

    /// Subscribes to `doc` from `since` and reads its catch-up, or the error about it.
    pub async fn subscribe_view(
        &mut self,
        doc: DocId,
        since: doran_protocol::Seq,
    ) -> Result<DocView, ErrorFrame> {
        self.send(&ClientFrame::Subscribe {
            docs: vec![doran_protocol::Subscription { doc, since }],
        })
        .await;
        let mut view = DocView {
            snapshot: None,
            chunks: Vec::new(),
            head: 0,
        };
        loop {
            match self.next().await.expect("the socket is open") {
                ServerFrame::Snapshot {
                    doc: d,
                    covers_seq,
                    blob,
                    ..
                } if d == doc => view.snapshot = Some((covers_seq, blob)),
                ServerFrame::Chunk {
                    doc: d, seq, bytes, ..
                } if d == doc => view.chunks.push((seq, bytes)),
                ServerFrame::CaughtUp { doc: d, seq } if d == doc => {
                    view.head = seq;
                    return Ok(view);
                }
                ServerFrame::Error(e) if e.doc == Some(doc) => return Err(e),
                _ => {}
            }
        }
    }

    /// Pushes `bytes` to `doc` and waits for its ack (the seq) or its refusal.
    pub async fn push_ack(
        &mut self,
        doc: DocId,
        bytes: Vec<u8>,
    ) -> Result<doran_protocol::Seq, ErrorFrame> {
        let chunk = doran_protocol::ChunkId::of(&bytes);
        self.send(&ClientFrame::push(doc, bytes)).await;
        self.until(|f| match f {
            ServerFrame::Ack {
                doc: d,
                chunk: c,
                seq,
            } if *d == doc && *c == chunk => Some(Ok(*seq)),
            ServerFrame::Error(e) if e.doc == Some(doc) && e.chunk == Some(chunk) => {
                Some(Err(e.clone()))
            }
            _ => None,
        })
        .await
    }

    /// Creates a family with a random id; returns the id.
    pub async fn create_family(&mut self) -> doran_protocol::FamilyId {
        let family = doran_protocol::FamilyId::random();
        self.request(Request::CreateFamily { family })
            .await
            .expect("family created");
        family
    }

    /// `ListFamilies`.
    pub async fn families(&mut self) -> Vec<doran_protocol::FamilySummary> {
        match self.request(Request::ListFamilies).await {
            Ok(Response::Families(list)) => list,
            other => panic!("expected Families, got {other:?}"),
        }
    }

    /// `ListInvites`.
    pub async fn invites(&mut self) -> Vec<doran_protocol::InviteInfo> {
        match self.request(Request::ListInvites).await {
            Ok(Response::Invites(list)) => list,
            other => panic!("expected Invites, got {other:?}"),
        }
    }

    /// `ListDevices`, as `(device, key, revoked_at)` (the parts a refusal must not
    /// change; last-seen times move on their own).
    pub async fn devices(
        &mut self,
    ) -> Vec<(DeviceId, PublicKey, Option<doran_protocol::UnixMillis>)> {
        match self.request(Request::ListDevices).await {
            Ok(Response::Devices(list)) => list
                .into_iter()
                .map(|d| (d.device, d.device_key, d.revoked_at))
                .collect(),
            other => panic!("expected Devices, got {other:?}"),
        }
    }
}

/// The session key an answer gives: its expiry and the key.
pub fn session_key(r: &HttpResponse) -> Option<(u64, [u8; 32])> {
    let value = r.header("x-doran-session-key")?;
    let mut parts = value.split('.');
    let expires = parts.next()?.parse().ok()?;
    let life: u64 = parts.next()?.parse().ok()?;
    assert_eq!(life, 600_000, "ten minutes by default");
    let mut key = [0u8; 32];
    hex::decode_to_slice(parts.next()?, &mut key).ok()?;
    Some((expires, key))
}

/// The headers of a request by `device` proved by `key` (`x-doran-mac`) instead of a
/// signature, at a time later than any before.
pub fn maced_headers(
    device: DeviceId,
    (expires, key): (u64, [u8; 32]),
    method: &str,
    path: &str,
) -> Vec<(String, String)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let time = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .map_or(now, |last| now.max(last + 1));
    let mac = signing::http_mac(&key, SERVER_ID, method, path, time);
    vec![
        ("x-doran-device".to_owned(), device.to_string()),
        ("x-doran-time".to_owned(), time.to_string()),
        (
            "x-doran-mac".to_owned(),
            format!("{expires}.{}", hex::encode(mac)),
        ),
    ]
}

/// A `GET` of `path` by `device`, proved by `key` ([`maced_headers`]).
pub async fn maced_get(
    server: &Server,
    device: DeviceId,
    key: (u64, [u8; 32]),
    path: &str,
) -> HttpResponse {
    http(
        server,
        "GET",
        path,
        &maced_headers(device, key, "GET", path),
        b"",
    )
    .await
}

/// Like [`signed_headers`], with a chosen request time (stale or future).
pub fn signed_headers_at(
    id: &Identity,
    method: &str,
    path: &str,
    time: u64,
) -> Vec<(String, String)> {
    let sig = id.sign_device(&doran_server::auth::http_message(
        SERVER_ID, method, path, time,
    ));
    vec![
        ("x-doran-device".into(), id.device.to_string()),
        ("x-doran-time".into(), time.to_string()),
        ("x-doran-signature".into(), sig.to_string()),
    ]
}

/// Now on the local clock (the relay's clock too: same machine), in unix ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// A normal client still works: registers a fresh user, signs in a second
/// connection of the same device, and a push on one connection is acked and
/// delivered live to the other. `tag` keeps emails unique per call.
pub async fn assert_relay_works(server: &Server, tag: &str) {
    let mut id = Identity::new(&format!("normal-{tag}@example.com"), "normal user");
    let mut first = Client::register(server, &mut id).await;
    let mut second = Client::sign_in(server, &id).await;
    let doc = id.personal_doc;
    let view = second
        .subscribe_view(doc, 0)
        .await
        .unwrap_or_else(|e| panic!("{tag}: the owner reads their personal doc: {e:?}"));
    let bytes = format!("still works after {tag}").into_bytes();
    let seq = first
        .push_ack(doc, bytes.clone())
        .await
        .unwrap_or_else(|e| panic!("{tag}: the owner pushes: {e:?}"));
    assert_eq!(seq, view.head + 1, "{tag}: the push is the next seq");
    let live = second
        .until(|f| match f {
            ServerFrame::Chunk {
                doc: d, seq, bytes, ..
            } if *d == doc => Some((*seq, bytes.clone())),
            _ => None,
        })
        .await;
    assert_eq!(live, (seq, bytes), "{tag}: the chunk is delivered live");
    let family = first.create_family().await;
    assert!(
        second.families().await.iter().any(|f| f.family == family),
        "{tag}: the new family is listed"
    );
}

impl Client {
    /// Sends raw bytes as a binary message; `false` if the socket refused them
    /// (the relay may close before reading a huge message).
    pub async fn try_send_raw(&mut self, bytes: Vec<u8>) -> bool {
        self.ws.send(Message::Binary(bytes.into())).await.is_ok()
    }

    /// The TCP socket under the websocket, to write raw (already masked) frame bytes
    /// in pieces of one's choosing.
    pub fn raw_tcp(&mut self) -> &mut TcpStream {
        match self.ws.get_mut() {
            MaybeTlsStream::Plain(tcp) => tcp,
            _ => panic!("a plain websocket"),
        }
    }

    /// Sends a text message (frames must be binary).
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// Sends a text message; `false` if the socket refused it.
    pub async fn try_send_text(&mut self, text: &str) -> bool {
        self.ws.send(Message::Text(text.into())).await.is_ok()
    }

    /// Sends a websocket-level ping (not a protocol frame); `false` if the socket
    /// refused it.
    pub async fn try_send_ws_ping(&mut self) -> bool {
        self.ws
            .send(Message::Ping(b"hi".to_vec().into()))
            .await
            .is_ok()
    }

    /// The next frame, or `Some(None)` for a websocket-level pong (which
    /// [`next`](Self::next) skips), a session key kept aside as `next` does; `None`
    /// if the socket closed.
    pub async fn next_or_pong(&mut self) -> Option<Option<ServerFrame>> {
        loop {
            let msg = tokio::time::timeout(TIMEOUT, self.ws.next())
                .await
                .expect("a message within the timeout");
            match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Binary(bytes))) => {
                    match codec::decode_server(&bytes).expect("a valid server frame") {
                        ServerFrame::HttpSessionKey(key) => self.http_session = Some(key),
                        frame => return Some(Some(frame)),
                    }
                }
                Some(Ok(Message::Pong(_))) => return Some(None),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Waits until the socket closes, skipping frames; panics on a `Goodbye`-less
    /// timeout (see [`TIMEOUT`]).
    pub async fn closed(&mut self) {
        while self.next().await.is_some() {}
    }
}

/// Like [`http`], with the body sent `transfer-encoding: chunked` in pieces of
/// `piece` bytes (no `Content-Length`, so the relay only learns the size as it
/// streams in).
pub async fn http_chunked(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    piece: usize,
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ntransfer-encoding: chunked\r\n",
        server.addr
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("write head");
    // The relay may refuse before reading the whole body; a failed write is fine.
    for part in body.chunks(piece.max(1)) {
        let mut framed = format!("{:x}\r\n", part.len()).into_bytes();
        framed.extend_from_slice(part);
        framed.extend_from_slice(b"\r\n");
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut raw = Vec::new();
    // A reset after the response was sent is fine: keep what was read.
    let _ = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("response within the timeout");
    parse_response(&raw)
}

/// Parses a whole HTTP/1.1 response as read off the socket.
pub fn parse_response(raw: &[u8]) -> HttpResponse {
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
