//! A signed-in device of a user.

use serde::{Deserialize, Serialize};

use crate::{DeviceId, LinkId, PublicKey, Signature, UnixMillis, UserId};

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

/// A new device that presented a link code and waits for one of the user's signed-in
/// devices to confirm it ([`Request::ConfirmLink`](crate::Request::ConfirmLink)).
/// Until then it is not one of the user's devices and cannot sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLinkInfo {
    /// The request, to confirm or reject.
    pub link: LinkId,
    /// The new device.
    pub device: DeviceId,
    /// Its ed25519 public key; [`PublicKey::fingerprint`] is what both screens show
    /// so the person can check that the request comes from the device in their hand.
    pub device_key: PublicKey,
    /// The `client` string of its `Hello` (app, version, platform), its name.
    pub client: String,
    /// When it presented the code.
    pub requested_at: UnixMillis,
    /// When the request (and the code) stops working.
    pub expires_at: UnixMillis,
}

/// Who signed a [`DeviceCert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Certifier {
    /// The user key (on the first device, or restored from the recovery phrase).
    User,
    /// Another device of the same user, itself certified (the device that confirmed
    /// a link).
    Device(DeviceId),
}

/// A user vouching for one of their devices' keys: signed over
/// [`device_cert_message`](crate::signing::device_cert_message) by the user key or by
/// another certified device of the user. Another member's device accepts a device
/// into a family's key group only if a chain of these leads from the user key it
/// pinned to the device (issue 18, `docs/security.md`); a relay, which holds no user
/// key and no device key, cannot make one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCert {
    /// The device vouched for.
    pub device: DeviceId,
    /// Its ed25519 key.
    pub device_key: PublicKey,
    /// Who signed.
    pub by: Certifier,
    /// Over `device_cert_message(user, device, device_key)`.
    pub signature: Signature,
}

/// A user's device certificates as the relay keeps them
/// ([`Request::DeviceCerts`](crate::Request::DeviceCerts)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCerts {
    /// The user.
    pub user: UserId,
    /// The user key the relay knows (a device pins it the first time and compares
    /// it after: the relay could answer with a key of its own).
    pub user_key: PublicKey,
    /// Every certificate kept, oldest first.
    #[serde(deserialize_with = "crate::wire::seq")]
    pub certs: Vec<DeviceCert>,
    /// The user's revoked devices: they vouch for nobody any more.
    #[serde(deserialize_with = "crate::wire::seq")]
    pub revoked: Vec<DeviceId>,
}

/// A device's published key package ([`Request::KeyPackagesOf`](crate::Request::KeyPackagesOf)).
/// The relay keeps it as it came: the device that adds it checks its signature and
/// the certificate chain of its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeyPackage {
    /// The device.
    pub device: DeviceId,
    /// The package.
    #[serde(with = "crate::wire::bytes")]
    pub package: Vec<u8>,
}
