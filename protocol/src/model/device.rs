//! A signed-in device of a user.

use serde::{Deserialize, Serialize};

use crate::{DeviceId, PublicKey, UnixMillis};

/// One device of the signed-in user, as listed by
/// [`Request::ListDevices`](crate::Request::ListDevices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device.
    pub device: DeviceId,
    /// Its ed25519 public key, used to verify its sign-ins.
    pub device_key: PublicKey,
    /// The `client` string of its latest `Hello`, shown as its label.
    pub client: String,
    /// When it was registered, recovered or linked.
    pub added_at: UnixMillis,
    /// Its last connection (or now if online); `None` if it never connected.
    pub last_seen: Option<UnixMillis>,
    /// Whether it is connected right now.
    pub online: bool,
    /// When it was revoked; `None` while it may sign in.
    pub revoked_at: Option<UnixMillis>,
}
