//! Successful answers to requests.

use serde::{Deserialize, Serialize};

use crate::{
    DeviceInfo, DirectoryEntry, FamilySummary, InviteInfo, PendingLinkInfo, PresenceInfo,
    UnixMillis,
    model::{DeviceKeyPackage, UserCerts},
};

/// The successful answer to a [`Request`](crate::Request), carried by
/// [`ServerFrame::Response`](crate::ServerFrame::Response).
///
/// **Variant order is part of the wire format: variants may only be appended.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The request succeeded and has nothing to return (rename, remove, leave, delete,
    /// withdraw, revoke, set name or profile).
    Done,

    /// Answers `CreateFamily`: the new family, with the caller as host.
    FamilyCreated(FamilySummary),

    /// Answers `ListFamilies`.
    Families(#[serde(deserialize_with = "crate::wire::seq")] Vec<FamilySummary>),

    /// Answers `LookupUser`: the user with exactly that label, if any.
    UserFound(Option<DirectoryEntry>),

    /// Answers `SendInvite`: the invite as stored, with its expiry.
    InviteSent(InviteInfo),

    /// Answers `AnswerInvite`.
    InviteAnswered {
        /// The invite, now `Accepted` or `Rejected`.
        invite: InviteInfo,
        /// On accept, the family just joined (subscribe to its document); else `None`.
        family: Option<FamilySummary>,
    },

    /// Answers `ListInvites`: pending invites to and from the caller.
    Invites(#[serde(deserialize_with = "crate::wire::seq")] Vec<InviteInfo>),

    /// Answers `ListDevices`.
    Devices(#[serde(deserialize_with = "crate::wire::seq")] Vec<DeviceInfo>),

    /// Answers `IssueLinkCode`: the code to type on the new device.
    LinkCode {
        /// The short code.
        code: String,
        /// When it stops working (unix ms).
        expires_at: UnixMillis,
    },

    /// Answers `ListPresence`: one entry per member of the family.
    Presence(#[serde(deserialize_with = "crate::wire::seq")] Vec<PresenceInfo>),

    /// Answers `ListPendingLinks`: new devices waiting for confirmation, oldest first.
    PendingLinks(#[serde(deserialize_with = "crate::wire::seq")] Vec<PendingLinkInfo>),

    /// Answers `DeviceCerts`.
    DeviceCerts(UserCerts),

    /// Answers `KeyPackagesOf`: one per device of the user that published one and is
    /// not revoked, oldest device first.
    KeyPackages(#[serde(deserialize_with = "crate::wire::seq")] Vec<DeviceKeyPackage>),
}

impl Response {
    /// A stable name of the variant, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Done => "done",
            Response::FamilyCreated(_) => "family_created",
            Response::Families(_) => "families",
            Response::UserFound(_) => "user_found",
            Response::InviteSent(_) => "invite_sent",
            Response::InviteAnswered { .. } => "invite_answered",
            Response::Invites(_) => "invites",
            Response::Devices(_) => "devices",
            Response::LinkCode { .. } => "link_code",
            Response::Presence(_) => "presence",
            Response::PendingLinks(_) => "pending_links",
            Response::DeviceCerts(_) => "device_certs",
            Response::KeyPackages(_) => "key_packages",
        }
    }
}
