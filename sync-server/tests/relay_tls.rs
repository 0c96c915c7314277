//! The real relay binary over TLS: a self-signed certificate for `localhost` and
//! 127.0.0.1 made at test time (rcgen), a websocket over TLS trusting only it, HTTPS
//! `/healthz`, the per-address limit (the peer address reaches the handlers), a
//! graceful SIGTERM, a plain client refused, and bad TLS files refused at start.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::Arc,
    time::Duration,
};

use doran_protocol::{ClientFrame, ErrorCode, PROTOCOL_VERSION, ServerEvent, ServerFrame, codec};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{
    TlsConnector,
    client::TlsStream,
    rustls::{
        ClientConfig, RootCertStore,
        crypto::ring,
        pki_types::{CertificateDer, ServerName},
    },
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{self, Message},
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A self-signed certificate and its key, written as PEM files.
struct Cert {
    der: CertificateDer<'static>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl Cert {
    /// A certificate for `localhost` and 127.0.0.1, written into `dir` as `NAME.pem`
    /// and `NAME.key`.
    fn generate(dir: &Path, name: &str) -> Cert {
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("generate a certificate");
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, made.cert.pem()).expect("write the certificate");
        std::fs::write(&key_path, made.signing_key.serialize_pem()).expect("write the key");
        Cert {
            der: made.cert.der().clone(),
            cert_path,
            key_path,
        }
    }

    /// A TLS client trusting this certificate only.
    fn connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("a trust anchor");
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

/// A running relay process, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts the binary with TLS on a free loopback port.
    fn start_tls(data_dir: &Path, cert: &Cert, extra: &[&str]) -> Server {
        let (child, addr) = doran_testkit::spawn(
            relay(data_dir)
                .arg("--tls-cert")
                .arg(&cert.cert_path)
                .arg("--tls-key")
                .arg(&cert.key_path)
                .args(extra)
                .stderr(Stdio::inherit()),
        )
        .expect("start doran-server");
        Server { child, addr }
    }

    /// Sends SIGTERM and waits for the exit status.
    fn terminate(&mut self) -> ExitStatus {
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

/// The relay command on a free loopback port with `data_dir`.
fn relay(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_doran-server"));
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--server-id", "tls-test-relay"])
        .env("DORAN_LOG", "warn")
        .env_remove("DORAN_TLS_CERT")
        .env_remove("DORAN_TLS_KEY")
        .env_remove("DORAN_CONFIG");
    cmd
}

/// Runs the relay expecting it to refuse to start; its output.
fn refused(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start doran-server");
    for _ in 0..200 {
        if child.try_wait().expect("poll").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the relay started: {:?}", child.wait_with_output());
}

/// A TLS connection to `server`, checking the certificate against `name`.
async fn tls_connect(server: &Server, cert: &Cert, name: &str) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let name = ServerName::try_from(name.to_owned()).expect("a server name");
    tokio::time::timeout(TIMEOUT, cert.connector().connect(name, tcp))
        .await
        .expect("handshake within the timeout")
        .expect("TLS handshake")
}

/// A websocket over TLS (`wss://localhost:PORT/ws`).
async fn wss(
    server: &Server,
    cert: &Cert,
) -> Result<WebSocketStream<TlsStream<TcpStream>>, tungstenite::Error> {
    let tls = tls_connect(server, cert, "localhost").await;
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    tokio_tungstenite::client_async(url, tls)
        .await
        .map(|(ws, _)| ws)
}

/// The next server frame that is not a presence event; `None` once closed.
async fn next_frame<S>(ws: &mut WebSocketStream<S>) -> Option<ServerFrame>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a frame within the timeout");
        match msg {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Binary(bytes))) => {
                match codec::decode_server(&bytes).expect("a valid server frame") {
                    ServerFrame::Event(ServerEvent::Presence(_)) => continue,
                    frame => return Some(frame),
                }
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// Hello, then the challenge must come back.
async fn hello<S>(ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello = ClientFrame::Hello {
        protocol_version: PROTOCOL_VERSION,
        client: "relay-tls-test/1".into(),
    };
    let bytes = codec::encode_client(&hello).expect("encodes");
    ws.send(Message::Binary(bytes.into())).await.expect("send");
    match next_frame(ws).await {
        Some(ServerFrame::Challenge(c)) => assert_eq!(c.server_id, "tls-test-relay"),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// One `GET path` over `stream` with `Connection: close`; the raw response.
async fn get<S>(mut stream: S, path: &str) -> Vec<u8>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    // A peer closing without TLS close_notify is an error after the bytes arrived.
    let _ = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("response within the timeout");
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_https_over_tls_then_graceful_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = Cert::generate(dir.path(), "relay");
    let mut server = Server::start_tls(
        &dir.path().join("data"),
        &cert,
        &["--max-connections-per-ip", "1"],
    );

    // A websocket over TLS: Hello → Challenge.
    let mut ws = wss(&server, &cert).await.expect("wss connects");
    hello(&mut ws).await;

    // The peer address reaches the handlers: a second socket from 127.0.0.1 is over
    // the per-address limit.
    match wss(&server, &cert).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 429),
        Err(e) => panic!("expected a 429 refusal, got {e}"),
        Ok(_) => panic!("a second socket from the same address was accepted"),
    }

    // HTTPS /healthz, by host name and by IP address, with the security headers.
    for name in ["localhost", "127.0.0.1"] {
        let raw = get(tls_connect(&server, &cert, name).await, "/healthz").await;
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("\r\n\r\nok\n"), "{text}");
        assert!(text.contains("x-content-type-options: nosniff"), "{text}");
    }
    let raw = get(tls_connect(&server, &cert, "localhost").await, "/metrics").await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("doran_connections 1\n"), "{text}");

    // A client that does not trust the certificate fails the handshake.
    let stranger = Cert::generate(dir.path(), "stranger");
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("a server name");
    assert!(stranger.connector().connect(name, tcp).await.is_err());

    // SIGTERM: the open socket gets a goodbye over TLS and the relay exits 0.
    let status = tokio::task::spawn_blocking(move || server.terminate());
    match next_frame(&mut ws).await {
        Some(ServerFrame::Goodbye { reason, .. }) => assert_eq!(reason, ErrorCode::ShuttingDown),
        other => panic!("expected a goodbye, got {other:?}"),
    }
    let status = status.await.expect("join");
    assert!(status.success(), "exit status {status:?}");
}

/// A metric from `/metrics` over TLS (0 if absent).
async fn tls_metric(server: &Server, cert: &Cert, name: &str) -> u64 {
    let raw = get(tls_connect(server, cert, "localhost").await, "/metrics").await;
    String::from_utf8_lossy(&raw)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// Waits (polling `/metrics`, at most 10 s) until `n` connections are parked, and
/// returns how many parks there were so far.
async fn tls_parked(server: &Server, cert: &Cert, n: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tls_metric(server, cert, "doran_connections_parked").await != n {
        assert!(tokio::time::Instant::now() < deadline, "not parked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tls_metric(server, cert, "doran_parks_total").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tls_websocket_is_parked_and_still_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = Cert::generate(dir.path(), "relay");
    let config = dir.path().join("park-fast.json");
    std::fs::write(&config, r#"{"limits":{"park_idle_ms":50}}"#).expect("write config");
    let mut server = Server::start_tls(
        &dir.path().join("data"),
        &cert,
        &["--config", config.to_str().expect("UTF-8")],
    );
    let mut ws = wss(&server, &cert).await.expect("wss connects");

    // Parked before Hello, then again after each answer: the TLS stream stays, the
    // websocket is built again when the device speaks.
    let mut parks = tls_parked(&server, &cert, 1).await;
    for _ in 0..3 {
        hello(&mut ws).await;
        let now = tls_parked(&server, &cert, 1).await;
        assert!(now > parks, "parked again after answering");
        parks = now;
    }

    // SIGTERM: the parked socket gets its goodbye over TLS.
    let status = tokio::task::spawn_blocking(move || server.terminate());
    match next_frame(&mut ws).await {
        Some(ServerFrame::Goodbye { reason, .. }) => assert_eq!(reason, ErrorCode::ShuttingDown),
        other => panic!("expected a goodbye, got {other:?}"),
    }
    assert!(status.await.expect("join").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_clients_get_nothing_from_the_tls_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = Cert::generate(dir.path(), "relay");
    let server = Server::start_tls(&dir.path().join("data"), &cert, &[]);

    // Plain HTTP: no HTTP response comes back.
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let raw = get(tcp, "/healthz").await;
    assert!(
        !raw.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&raw)
    );

    // A plain websocket fails.
    let url = format!("ws://{}/ws", server.addr);
    let plain = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("an answer within the timeout");
    assert!(plain.is_err());

    // The relay still serves TLS clients afterwards.
    let mut ws = wss(&server, &cert).await.expect("wss connects");
    hello(&mut ws).await;
}

#[test]
fn bad_tls_files_stop_the_relay_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cert = Cert::generate(dir.path(), "relay");
    let other = Cert::generate(dir.path(), "other");
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    // A key file that holds no key.
    let bad_key = dir.path().join("bad.key");
    std::fs::write(&bad_key, "this is not a key\n").expect("write");
    let out = refused(
        relay(&data)
            .arg("--tls-cert")
            .arg(&cert.cert_path)
            .arg("--tls-key")
            .arg(&bad_key),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("TLS private key"), "{err}");
    assert!(err.contains("bad.key"), "{err}");
    assert!(out.stdout.is_empty(), "it must not listen");

    // A key that does not match the certificate.
    let out = refused(
        relay(&data)
            .arg("--tls-cert")
            .arg(&cert.cert_path)
            .arg("--tls-key")
            .arg(&other.key_path),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot be used"), "{err}");

    // A certificate file that does not exist.
    let out = refused(
        relay(&data)
            .arg("--tls-cert")
            .arg(dir.path().join("missing.pem"))
            .arg("--tls-key")
            .arg(&cert.key_path),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("TLS certificate"), "{err}");
    assert!(err.contains("missing.pem"), "{err}");

    // Only one of the two, from the environment.
    let out = refused(relay(&data).env("DORAN_TLS_CERT", &cert.cert_path));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("TLS needs both"), "{err}");
    assert!(!data.exists(), "nothing was created");
}
