//! The connection: its status (always visible in the app), "sync now", what waits.

use std::time::Duration;

use doran_device::{core::sync::SyncStatus as CoreStatus, screens};

use crate::{device::Device, error::Result};

/// The connection's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SyncStatus {
    /// Not connected (waiting to reconnect, or stopped).
    Offline,
    /// Connected, signing in.
    Connecting,
    /// Signed in, exchanging changes.
    Syncing,
    /// Signed in, every change pushed and every family caught up.
    UpToDate,
}

/// The connection, as the always-visible status shows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncView {
    /// The status.
    pub status: SyncStatus,
    /// Local changes not yet on the relay.
    pub pending: u64,
}

impl From<screens::SyncView> for SyncView {
    fn from(v: screens::SyncView) -> Self {
        SyncView {
            status: match v.status {
                CoreStatus::Offline => SyncStatus::Offline,
                CoreStatus::Connecting => SyncStatus::Connecting,
                CoreStatus::Syncing => SyncStatus::Syncing,
                CoreStatus::UpToDate => SyncStatus::UpToDate,
            },
            pending: v.pending,
        }
    }
}

/// What [`Device::sync_now`] achieved.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Whether everything is pushed and caught up.
    pub up_to_date: bool,
    /// Local changes still waiting.
    pub pending: u64,
    /// Photos and voice messages still waiting for upload.
    pub pending_blobs: u64,
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// The connection status and how many local changes wait.
    pub fn sync_state(&self) -> SyncView {
        self.inner.sync_state().into()
    }

    /// How many local changes wait for the relay.
    pub async fn pending(&self) -> Result<u64> {
        Ok(self.inner.pending().await?)
    }

    /// Sends every local change and blob and receives everything, waiting at most
    /// `timeout_ms` (pull to refresh). With the relay unreachable it throws
    /// [`Offline`](crate::DoranError::Offline) at once; the changes stay queued.
    pub async fn sync_now(&self, timeout_ms: u64) -> Result<SyncReport> {
        let r = self
            .inner
            .sync_now(Duration::from_millis(timeout_ms))
            .await?;
        Ok(SyncReport {
            up_to_date: r.up_to_date,
            pending: r.pending,
            pending_blobs: r.pending_blobs,
        })
    }
}
