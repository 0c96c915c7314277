//! Rules both backends apply the same way: number ranges, deadlines, invite states.

use doran_protocol::{
    DeviceId, PublicKey, Signature,
    model::{Certifier, DeviceCert, InviteState},
};

use super::{StoreError, StoreResult};

/// Checks that a number fits SQLite's signed 64-bit integers (the memory backend
/// refuses the same numbers, so both agree).
pub(crate) fn int(what: &str, value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} {value} is out of range")))
}

/// Whether a deadline has passed at `now`.
pub(crate) fn passed(expires_at: u64, now: u64) -> bool {
    now >= expires_at
}

/// An invite's stored state; `Expired` is never stored, it is read at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoredInviteState {
    /// Waiting for an answer (or expired, depending on when it is read).
    Pending,
    /// Accepted by the invitee.
    Accepted,
    /// Rejected by the invitee.
    Rejected,
    /// Withdrawn by the family.
    Withdrawn,
}

impl StoredInviteState {
    /// The name stored in the database.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// Parses a stored name.
    pub(crate) fn parse(s: &str) -> StoreResult<Self> {
        match s {
            "pending" => Ok(Self::Pending),
            "accepted" => Ok(Self::Accepted),
            "rejected" => Ok(Self::Rejected),
            "withdrawn" => Ok(Self::Withdrawn),
            other => Err(StoreError::Corrupt(format!(
                "unknown invite state {other:?}"
            ))),
        }
    }

    /// The state as shown at `now`: a pending invite past its deadline is expired.
    pub(crate) fn at(self, expires_at: u64, now: u64) -> InviteState {
        match self {
            Self::Pending if passed(expires_at, now) => InviteState::Expired,
            Self::Pending => InviteState::Pending,
            Self::Accepted => InviteState::Accepted,
            Self::Rejected => InviteState::Rejected,
            Self::Withdrawn => InviteState::Withdrawn,
        }
    }

    /// Checks that an invite in this state can be answered or withdrawn at `now`.
    pub(crate) fn check_open(self, expires_at: u64, now: u64) -> StoreResult<()> {
        match self.at(expires_at, now) {
            InviteState::Pending => Ok(()),
            InviteState::Expired => Err(StoreError::InviteExpired),
            InviteState::Accepted | InviteState::Rejected | InviteState::Withdrawn => {
                Err(StoreError::InviteClosed)
            }
        }
    }
}

/// A certificate's certifier as both SQL backends store it: `(by_user, by_device)`,
/// with 16 zero bytes for the user key (a device id is never its own column's NULL,
/// so `(device, by_user, by_device)` is a plain unique key).
pub(crate) fn certifier_columns(by: Certifier) -> (bool, [u8; 16]) {
    match by {
        Certifier::User => (true, [0; 16]),
        Certifier::Device(d) => (false, d.0),
    }
}

/// A certificate from its stored columns.
pub(crate) fn cert_from_columns(
    device: [u8; 16],
    device_key: [u8; 32],
    by_user: bool,
    by_device: [u8; 16],
    signature: [u8; 64],
) -> DeviceCert {
    DeviceCert {
        device: DeviceId(device),
        device_key: PublicKey(device_key),
        by: if by_user {
            Certifier::User
        } else {
            Certifier::Device(DeviceId(by_device))
        },
        signature: Signature(signature),
    }
}
