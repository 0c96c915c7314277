//! [`Relay`]: the relay a device talks to — its base URL, its websocket URL, and for
//! `https://` relays the TLS trust: the system's roots plus an optional extra CA for a
//! self-hosted relay (`DORAN_CA_FILE=ca.pem`, or [`Trust::extra_ca`] from an app or the
//! command line's `--ca`).
//!
//! TLS is rustls on the `ring` provider (no OpenSSL, the same stack the relay serves
//! with). The system roots come from the platform store (`rustls-native-certs`); where
//! the platform has none to read (Android, iOS), the Mozilla roots built into
//! `webpki-roots` stand in.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};

/// The environment variable naming an extra CA certificate file (PEM) to trust.
pub const CA_FILE_ENV: &str = "DORAN_CA_FILE";

/// Why a relay address or its TLS trust cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayError {
    /// Not an `http://` or `https://` URL with a host.
    #[error("{0:?} is not a relay address (http://host:port or https://host)")]
    BadUrl(String),
    /// The extra CA file cannot be read or holds no certificate.
    #[error("the CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The TLS configuration could not be built.
    #[error("TLS set-up failed: {0}")]
    Tls(String),
}

/// What a device trusts for `https://` relays besides the system roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// An extra CA certificate file (PEM), e.g. a self-hosted relay's own CA.
    pub extra_ca: Option<PathBuf>,
}

impl Trust {
    /// The trust from the environment: [`CA_FILE_ENV`] if set.
    pub fn from_env() -> Self {
        Trust {
            extra_ca: std::env::var_os(CA_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    /// The rustls client configuration: system roots (or the built-in Mozilla roots
    /// where the platform has none), plus the extra CA.
    fn client_config(&self) -> Result<ClientConfig, RelayError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A platform certificate rustls cannot parse is skipped, not fatal.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if let Some(path) = &self.extra_ca {
            for cert in read_pem_certs(path)? {
                roots.add(cert).map_err(|e| RelayError::CaFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| RelayError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, RelayError> {
    use rustls::pki_types::pem::PemObject;
    let fail = |reason: String| RelayError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no certificate in it".into()));
    }
    Ok(certs)
}

/// A relay: where it is and how to reach it. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    base: String,
    ws: String,
    host: String,
    port: u16,
    tls: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("base", &self.base)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// A connection to the relay's HTTP side, plain or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

impl Relay {
    /// The relay at `server` (`http://host[:port]` or `https://host[:port]`, trailing
    /// `/` allowed), trusting `trust` for TLS.
    pub fn new(server: &str, trust: &Trust) -> Result<Self, RelayError> {
        let bad = || RelayError::BadUrl(server.chars().take(200).collect());
        let base = server.trim().trim_end_matches('/');
        let (secure, rest) = if let Some(rest) = base.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = base.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad());
        }
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 literal without a port ("[::1]") has colons inside brackets.
            Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().map_err(|_| bad())?),
            _ => (rest, default_port),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let tls = if secure {
            Some(Arc::new(trust.client_config()?))
        } else {
            None
        };
        let scheme = if secure { "wss" } else { "ws" };
        Ok(Relay {
            base: base.to_owned(),
            ws: format!("{scheme}://{rest}/ws"),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            tls,
        })
    }

    /// The base URL as given (without a trailing `/`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The websocket URL (`ws://host:port/ws` or `wss://…`).
    pub fn ws_url(&self) -> &str {
        &self.ws
    }

    /// Where the device connects, for checking the id the relay announces
    /// ([`doran_client_core::sync::check_server_id`]).
    pub fn address(&self) -> doran_client_core::sync::RelayAddress {
        doran_client_core::sync::RelayAddress {
            host: self.host.clone(),
            port: self.port,
            secure: self.tls.is_some(),
        }
    }

    /// `host:port`, for the HTTP `Host` header.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The TLS configuration for an `https://` relay.
    pub(crate) fn tls(&self) -> Option<&Arc<ClientConfig>> {
        self.tls.as_ref()
    }

    /// Opens a connection to the relay's HTTP side (TCP, then TLS for `https://`),
    /// without Nagle delay.
    pub(crate) async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let Some(config) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
            .connect(name, tcp)
            .await?;
        Ok(Box::new(tls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let t = Trust::default();
        let r = Relay::new("http://127.0.0.1:7070/", &t).unwrap();
        assert_eq!(r.base(), "http://127.0.0.1:7070");
        assert_eq!(r.ws_url(), "ws://127.0.0.1:7070/ws");
        assert_eq!(r.authority(), "127.0.0.1:7070");
        assert!(r.tls().is_none());

        let r = Relay::new("http://relay", &t).unwrap();
        assert_eq!(r.authority(), "relay:80");

        let r = Relay::new("https://relay.example.com", &t).unwrap();
        assert_eq!(r.ws_url(), "wss://relay.example.com/ws");
        assert_eq!(r.authority(), "relay.example.com:443");
        assert!(r.tls().is_some());

        let r = Relay::new("http://[::1]:7070", &t).unwrap();
        assert_eq!(r.authority(), "[::1]:7070");

        for bad in [
            "relay:7070",
            "ftp://relay",
            "http://",
            "http://relay/path",
            "http://relay:port",
            "http://user@relay",
            "http://relay:99999",
        ] {
            assert!(Relay::new(bad, &t).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Trust {
            extra_ca: Some(dir.path().join("nope.pem")),
        };
        assert!(matches!(
            Relay::new("https://relay", &missing),
            Err(RelayError::CaFile { .. })
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let empty = Trust {
            extra_ca: Some(empty),
        };
        assert!(matches!(
            Relay::new("https://relay", &empty),
            Err(RelayError::CaFile { .. })
        ));
        // A plain relay never reads the CA file.
        assert!(Relay::new("http://relay", &missing).is_ok());
    }
}
