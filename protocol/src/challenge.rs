//! The sign-in challenge the relay sends after `Hello`.

use serde::{Deserialize, Serialize};

use crate::{DeviceId, PublicKey, UnixMillis, UserId, signing};

/// A one-time challenge: the relay's answer to [`Hello`](crate::ClientFrame::Hello),
/// carried by [`ServerFrame::Challenge`](crate::ServerFrame::Challenge).
///
/// The device answers it with exactly one of `Register`, `SignIn`, `Recover` or
/// `LinkDevice`, whose signatures cover the nonce, the server id and the expiry (see
/// [`crate::signing`]). A challenge is good for one sign-in on this connection until
/// `expires_at`; after that the relay answers
/// [`ChallengeExpired`](crate::ErrorCode::ChallengeExpired) and the device reconnects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Challenge {
    /// The protocol version the relay will speak on this connection (it accepted the
    /// one in `Hello`).
    pub protocol_version: u16,
    /// 32 random bytes, never reused.
    pub nonce: [u8; 32],
    /// Stable id of the relay deployment (e.g. its public URL), so a signature made
    /// for one server is useless on another.
    pub server_id: String,
    /// When the challenge stops being accepted (unix ms).
    pub expires_at: UnixMillis,
}

impl Challenge {
    /// Whether the challenge has expired at `now` (unix ms).
    pub fn is_expired(&self, now: UnixMillis) -> bool {
        now >= self.expires_at
    }

    /// The bytes a device key signs for [`SignIn`](crate::ClientFrame::SignIn); see
    /// [`signing::signin_message`].
    pub fn signin_message(&self, user: &UserId, device: &DeviceId) -> Vec<u8> {
        signing::signin_message(self, user, device)
    }

    /// The bytes the new device's key signs for
    /// [`LinkDevice`](crate::ClientFrame::LinkDevice); see
    /// [`signing::link_device_message`].
    pub fn link_device_message(
        &self,
        code: &str,
        device: &DeviceId,
        device_key: &PublicKey,
    ) -> Vec<u8> {
        signing::link_device_message(self, code, device, device_key)
    }
}
