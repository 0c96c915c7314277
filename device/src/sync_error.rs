//! [`SyncError`]: why syncing or a request failed, typed for UIs.

use doran_protocol::{ErrorCode, ErrorFrame};

use doran_client_core::{DocError, store::StoreError, sync::HostError};

use crate::{account::AccountError, relay::RelayError};

/// Why syncing, a blob transfer or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No connection right now (the request was not sent, or the connection dropped
    /// before the answer). Edits are safe in the outbox; try again later.
    #[error("offline")]
    Offline,
    /// The relay could not be reached (connect, websocket or HTTP failure).
    #[error("the relay is unreachable: {0}")]
    Unreachable(String),
    /// The relay's TLS certificate is not trusted (an unknown CA, a wrong name, an
    /// expired certificate): nothing was sent. A self-hosted relay's CA can be added.
    #[error("the relay's certificate is not trusted: {0}")]
    Untrusted(String),
    /// The relay refused (a request, a chunk, a blob), with its stable code.
    #[error("refused by the relay: {code} ({message})")]
    Refused {
        /// The protocol's code; apps translate it.
        code: ErrorCode,
        /// The relay's message, for logs.
        message: String,
        /// How long the relay asked to wait before trying again (`RateLimited`), in
        /// milliseconds, if it said.
        retry_after_ms: Option<u64>,
    },
    /// Registration refused: an account with this email (or handle) already exists on
    /// the relay. Nothing was created; sign in on a device of that account, restore it
    /// from its recovery phrase, or register another email.
    #[error("an account with the email {email} already exists on this relay")]
    EmailTaken {
        /// The email that was asked for.
        email: String,
    },
    /// The relay will not let this device in (revoked, unknown, bad signature…).
    #[error("sign-in refused: {code} ({message})")]
    Auth {
        /// The protocol's code.
        code: ErrorCode,
        /// The relay's message, for logs.
        message: String,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A document could not be read or written.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// The account could not be read or written.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The store or a document failed while applying what the relay sent.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The relay's address or its TLS trust cannot be used.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The relay broke the protocol (undecodable frame, bad blob bytes…).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A sealed blob did not open with the key its entry gives (a wrong key, or
    /// bytes that are not what was sealed): not shown.
    #[error("a blob does not open: {0}")]
    Sealed(#[from] doran_client_core::seal::SealError),
    /// Chunks of a sealed document arrived altered on their way (envelopes that do not
    /// open with the key of the epoch they name, or cut short): refused, nothing of
    /// them taken. No device and no honest relay makes one.
    #[error("{} chunk(s) of document {doc} arrived altered and were refused", seqs.len())]
    Tampered {
        /// The document.
        doc: doran_protocol::DocId,
        /// Their seqs (or the seq a refused snapshot covers).
        seqs: Vec<doran_protocol::Seq>,
    },
    /// A blob file could not be read or written.
    #[error("blob file: {0}")]
    Io(#[from] std::io::Error),
    /// The operation did not finish in time.
    #[error("timed out")]
    Timeout,
}

impl From<ErrorFrame> for SyncError {
    fn from(e: ErrorFrame) -> Self {
        SyncError::Refused {
            code: e.code,
            message: e.message,
            retry_after_ms: e.retry_after_ms,
        }
    }
}

/// Result of a sync operation.
pub type Result<T, E = SyncError> = std::result::Result<T, E>;

/// Whether an I/O error is a TLS failure (certificate not trusted…), and why.
pub(crate) fn tls_failure(e: &std::io::Error) -> Option<String> {
    let inner = e.get_ref()?;
    inner
        .downcast_ref::<rustls::Error>()
        .map(ToString::to_string)
}

impl SyncError {
    /// The error for a failed connection (websocket or HTTP): [`SyncError::Untrusted`]
    /// for a TLS failure, else [`SyncError::Unreachable`].
    pub(crate) fn connecting(e: &std::io::Error) -> Self {
        match tls_failure(e) {
            Some(why) => SyncError::Untrusted(why),
            None => SyncError::Unreachable(e.to_string()),
        }
    }

    /// The same for the websocket's errors.
    pub(crate) fn connecting_ws(e: &tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error as Ws;
        match e {
            Ws::Io(io) => SyncError::connecting(io),
            Ws::Tls(tls) => SyncError::Untrusted(tls.to_string()),
            other => SyncError::Unreachable(other.to_string()),
        }
    }
}
