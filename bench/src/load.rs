//! Shared pieces of the load generators: the relay under test ([`relay`]), virtual
//! devices speaking the wire protocol ([`device`]), and families of them set up
//! before the clock starts ([`cohort`]).
//!
//! Everything targets loopback, and every wait has a deadline: a run that stalls ends
//! with [`LoadError::Timeout`] instead of hanging.

pub mod cohort;
pub mod device;
pub mod live;
pub mod relay;
pub mod wire;

use std::{future::Future, time::Duration};

use doran_protocol::ErrorFrame;

/// How long one expected answer may take before the run fails.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a load run failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The run could not be set up (relay binary, arguments).
    #[error("setup: {0}")]
    Setup(String),
    /// A socket or file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The websocket failed.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The relay sent something the protocol does not allow here.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The relay refused a request.
    #[error("refused: {0:?} {1}")]
    Refused(doran_protocol::ErrorCode, String),
    /// The relay closed the connection.
    #[error("the relay closed the connection")]
    Closed,
    /// An answer did not come in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// A blob request failed.
    #[error("blob: {0}")]
    Blob(Box<doran_device::sync_error::SyncError>),
    /// The family document refused an edit.
    #[error("document: {0}")]
    Doc(String),
}

/// A blob client for the relay at `url`, signing as `device`.
pub fn blob_client(
    url: &str,
    device: doran_protocol::DeviceId,
    key: ed25519_dalek::SigningKey,
) -> Result<doran_device::blobs::BlobClient, LoadError> {
    let relay = doran_device::relay::Relay::new(url, &doran_device::relay::Trust::default())
        .map_err(|e| LoadError::Setup(e.to_string()))?;
    Ok(doran_device::blobs::BlobClient::new(relay, device, key))
}

impl From<doran_device::sync_error::SyncError> for LoadError {
    fn from(e: doran_device::sync_error::SyncError) -> Self {
        LoadError::Blob(Box::new(e))
    }
}

impl LoadError {
    /// Whether the connection to the relay broke (the relay died or restarted), as
    /// opposed to a refusal: reconnecting and trying again is the answer.
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self,
            LoadError::Io(_) | LoadError::Ws(_) | LoadError::Closed | LoadError::Timeout(_)
        )
    }
}

impl From<ErrorFrame> for LoadError {
    fn from(e: ErrorFrame) -> Self {
        LoadError::Refused(e.code, e.message)
    }
}

/// Runs a load benchmark on a multi-threaded runtime, then prints its report: the JSON
/// object with `--json`, else `table`.
pub fn run_and_print(
    json_out: bool,
    bench: impl Future<Output = Result<serde_json::Value, LoadError>>,
    table: fn(&serde_json::Value),
) -> Result<(), LoadError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(bench)?;
    if json_out {
        println!("{report}");
    } else {
        table(&report);
    }
    Ok(())
}

/// An error naming how many device sessions failed and the first reason, if any did.
pub fn fail_on(failures: &[String]) -> Result<(), LoadError> {
    match failures.first() {
        Some(first) => Err(LoadError::Protocol(format!(
            "{} devices failed; first: {first}",
            failures.len()
        ))),
        None => Ok(()),
    }
}
