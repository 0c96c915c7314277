//! Things the relay tells a device without being asked.

use serde::{Deserialize, Serialize};

use crate::{
    DeviceId, DeviceInfo, FamilyId, InviteId, InviteInfo, LinkId, MemberInfo, PendingLinkInfo,
    PresenceInfo, UserId,
};

/// A server-initiated notification, carried by
/// [`ServerFrame::Event`](crate::ServerFrame::Event) to every connected device of the
/// users concerned. Events are not stored per device: a device that was offline
/// catches up with `ListFamilies` / `ListInvites` after signing in.
///
/// **Variant order is part of the wire format: variants may only be appended.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerEvent {
    /// Sent to the invitee's devices when someone invites them (and on connect for
    /// invites still pending).
    InviteReceived(InviteInfo),

    /// Sent to the inviter's devices when the invitee answers.
    InviteAnswered {
        /// The invite.
        invite: InviteId,
        /// Its family.
        family: FamilyId,
        /// Who answered.
        invitee: UserId,
        /// Whether they accepted (수락) or rejected (거절).
        accepted: bool,
    },

    /// Sent to the invitee's devices when the invite is withdrawn (or its family is
    /// deleted), so the notification can be removed.
    InviteWithdrawn {
        /// The invite.
        invite: InviteId,
    },

    /// Sent to every member (and to a member who just left or was removed) when the
    /// membership of a family changes. `members` is the full list after the change.
    MembershipChanged {
        /// The family.
        family: FamilyId,
        /// Every member after the change.
        #[serde(deserialize_with = "crate::wire::seq")]
        members: Vec<MemberInfo>,
        /// What happened.
        change: MembershipChange,
    },

    /// Told members of a new title (protocols up to 6). A title lives in the family
    /// document only now; a relay never sends this. Kept so the variants after it keep
    /// their place.
    RetiredFamilyRenamed,

    /// Sent to every member when the host deletes the family; its documents are gone
    /// and subscriptions to them end.
    FamilyDeleted {
        /// The family.
        family: FamilyId,
    },

    /// Sent to the co-members of a user (across all shared families, once per
    /// device) when the user comes online or goes offline.
    Presence(PresenceInfo),

    /// Sent to the user's other devices when a device is added (through recovery, or
    /// a link code once confirmed).
    DeviceAdded(DeviceInfo),

    /// Sent to the user's devices when one of them is revoked.
    DeviceRevoked {
        /// The revoked device.
        device: DeviceId,
    },

    /// Sent to the user's devices when a new device presents one of their link codes
    /// (and on connect for requests still pending): ask the person to confirm it with
    /// [`Request::ConfirmLink`](crate::Request::ConfirmLink).
    LinkRequested(PendingLinkInfo),

    /// Sent to the user's devices when one of them confirmed or rejected a link
    /// request, so the others can drop their prompt.
    LinkAnswered {
        /// The request.
        link: LinkId,
        /// Whether the device was added.
        accepted: bool,
    },
}

/// What changed in a [`ServerEvent::MembershipChanged`].
///
/// **Variant order is part of the wire format: variants may only be appended.**
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MembershipChange {
    /// `user` joined by accepting an invite.
    Joined {
        /// The new member.
        user: UserId,
    },
    /// `user` left on their own.
    Left {
        /// The former member.
        user: UserId,
    },
    /// `user` was removed by the host `by`. The removed user's devices get this
    /// event too and lose access to the family's documents and blobs.
    Removed {
        /// The former member.
        user: UserId,
        /// The host who removed them.
        by: UserId,
    },
    /// Told of a new 호칭 (protocols up to 6). A 호칭 lives in the family document
    /// only now; a relay never sends this. Kept so the variants after it keep their
    /// place.
    RetiredRenamed,
}

impl ServerEvent {
    /// A stable name of the variant, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerEvent::InviteReceived(_) => "invite_received",
            ServerEvent::InviteAnswered { .. } => "invite_answered",
            ServerEvent::InviteWithdrawn { .. } => "invite_withdrawn",
            ServerEvent::MembershipChanged { .. } => "membership_changed",
            ServerEvent::RetiredFamilyRenamed => "retired_family_renamed",
            ServerEvent::FamilyDeleted { .. } => "family_deleted",
            ServerEvent::Presence(_) => "presence",
            ServerEvent::DeviceAdded(_) => "device_added",
            ServerEvent::DeviceRevoked { .. } => "device_revoked",
            ServerEvent::LinkRequested(_) => "link_requested",
            ServerEvent::LinkAnswered { .. } => "link_answered",
        }
    }
}
