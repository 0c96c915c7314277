//! TLS for the relay: rustls on the `ring` provider, PEM files, and a listener that
//! hands axum finished TLS streams.
//!
//! [`server_config`] reads the certificate chain and key once, at start (a renewed
//! certificate takes a restart). [`TlsListener`] accepts TCP connections in a
//! background task and runs each TLS handshake in its own task, with a timeout and a
//! cap on handshakes in flight, so a slow or silent client never holds up the others.
//! Finished streams reach [`axum::serve`] through a channel, which keeps axum's
//! graceful shutdown and connect-info exactly as on plain TCP: when axum stops
//! accepting it drops the listener, and the background task stops accepting too.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, ServerConfig,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
    server::TlsStream,
};
use tokio_util::task::AbortOnDropHandle;

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS handshakes in progress at once; further connections wait to be accepted.
pub const MAX_HANDSHAKES: usize = 1024;

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or not PEM.
    #[error("cannot read the TLS certificate {path}: {source}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("no certificate in {path} (expected a PEM `BEGIN CERTIFICATE` block)")]
    NoCert {
        /// The file.
        path: PathBuf,
    },
    /// The key file is unreadable, not PEM, or holds no private key.
    #[error(
        "cannot read the TLS private key {path}: {source} (expected a PEM `PRIVATE KEY`, \
         `RSA PRIVATE KEY` or `EC PRIVATE KEY` block)"
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the pair (unsupported key type, key not matching the
    /// certificate, ...).
    #[error("TLS certificate {cert} and key {key} cannot be used: {source}")]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
}

/// The rustls server configuration for the PEM files `cert` (chain, leaf first) and
/// `key`: TLS 1.2 and 1.3 on the `ring` provider, HTTP/1.1 by ALPN, no client
/// certificates.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_err = |source| TlsError::Cert {
        path: cert.to_owned(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(cert_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_err)?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: cert.to_owned(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_owned(),
        source,
    })?;
    let rejected = |source| TlsError::Rejected {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    };
    // An explicit provider, so nothing depends on a process-wide default.
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(rejected)?;
    // axum serves HTTP/1.1 (the websocket upgrade is HTTP/1.1 too).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener of finished TLS connections, for [`axum::serve`].
#[derive(Debug)]
pub struct TlsListener {
    streams: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    _acceptor: AbortOnDropHandle<()>,
}

impl TlsListener {
    /// Accepts on `listener`, with TLS by `config`. Must be called within a tokio
    /// runtime; dropping the listener stops accepting.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, streams) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener {
            streams,
            local,
            _acceptor: AbortOnDropHandle::new(task),
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.streams.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this receiver is gone; never here.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Accepts TCP connections and handshakes each in its own task, until `tx`'s
/// receiver (the [`TlsListener`]) is dropped.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&handshakes).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            () = tx.closed() => return,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = tx.closed() => return,
        };
        // Websocket frames are small and latency matters: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    // Fails only when shutting down; the connection is dropped then.
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// What axum does on a failed accept: a connection that died before it was accepted
/// is skipped; anything else (e.g. out of file descriptors) is logged and waited out.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
