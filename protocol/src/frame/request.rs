//! Operations a signed-in device asks of the relay, each answered by one response.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    BlobHash, DeviceId, DocId, FamilyId, InviteId, LinkId, Seq, Signature, UserId,
    model::DeviceCert,
};

/// Chosen by the device for each [`ClientFrame::Request`](crate::ClientFrame::Request)
/// and echoed in the [`Response`](crate::ServerFrame::Response) or error frame that
/// answers it. Unique among the device's outstanding requests on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u32);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// An account, directory, family or invite operation. Needs a signed-in device.
///
/// Each variant says which [`Response`](crate::Response) answers it on success; any
/// request can instead get an [`ErrorFrame`](crate::ErrorFrame) (`Forbidden`,
/// `NotFound`, `InvalidInput`, `RateLimited`, `Internal`, ...) carrying its id. A
/// failed request changes nothing.
///
/// **Variant order is part of the wire format: variants may only be appended.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Creates a family with the caller as its host. The id is chosen by the device
    /// (it may already have created the family document offline). The family's title
    /// and its members' 호칭 live in the family document only (since protocol 7): the
    /// relay never learns them. Answer:
    /// [`FamilyCreated`](crate::Response::FamilyCreated); `AlreadyExists` if the id is
    /// taken.
    CreateFamily {
        /// The new family (and its document id).
        family: FamilyId,
    },

    /// Renamed a family through the relay (protocols up to 6). A title is now written
    /// in the family document only; a relay refuses this with `InvalidInput`. Kept so
    /// the variants after it keep their place.
    RetiredRenameFamily,

    /// Changed a member's 호칭 through the relay (protocols up to 6). A 호칭 is now
    /// written in the family document only; a relay refuses this with
    /// `InvalidInput`. Kept so the variants after it keep their place.
    RetiredSetMemberName,

    /// Removes a member from a family (host only; not the host themself). Answer:
    /// `Done`; members, and the removed user, get `MembershipChanged`
    /// ([`Removed`](crate::MembershipChange::Removed)).
    RemoveMember {
        /// The family.
        family: FamilyId,
        /// Who to remove.
        user: UserId,
    },

    /// Leaves a family (not the host: the host deletes the family instead, else
    /// `Conflict`). Answer: `Done`; members get `MembershipChanged`
    /// ([`Left`](crate::MembershipChange::Left)).
    LeaveFamily {
        /// The family.
        family: FamilyId,
    },

    /// Deletes a family and its documents and blobs (host only). Answer: `Done`;
    /// members get [`FamilyDeleted`](crate::ServerEvent::FamilyDeleted); pending
    /// invites are withdrawn.
    DeleteFamily {
        /// The family.
        family: FamilyId,
    },

    /// Lists the caller's families with their members.
    /// Answer: [`Families`](crate::Response::Families).
    ListFamilies,

    /// Looks up a user by their **exact** email/handle (no prefix search; rate
    /// limited). Answer: [`UserFound`](crate::Response::UserFound), `None` when no one
    /// has that label.
    LookupUser {
        /// The exact label.
        email: String,
    },

    /// Invites a user to a family (a member; the relay may restrict it to the host).
    /// The caller's device key signs
    /// [`invite_message`](crate::signing::invite_message). Answer:
    /// [`InviteSent`](crate::Response::InviteSent); the invitee's devices get
    /// [`InviteReceived`](crate::ServerEvent::InviteReceived) now or on next connect.
    /// `AlreadyMember`, `AlreadyInvited` as they apply.
    SendInvite {
        /// Chosen by the device.
        invite: InviteId,
        /// The family.
        family: FamilyId,
        /// Who to invite (found with `LookupUser`).
        invitee: UserId,
        /// The invite's card: the family's title, the inviter's 호칭 and the one
        /// proposed for the invitee, sealed by the device to the invitee's devices and
        /// the family (`client-core/src/group/card.rs`). Opaque to the relay, at most
        /// [`MAX_INVITE_CARD_BYTES`](crate::limits::MAX_INVITE_CARD_BYTES); the
        /// signature covers it.
        #[serde(with = "crate::wire::bytes")]
        card: Vec<u8>,
        /// By the caller's device key, over `invite_message`.
        signature: Signature,
    },

    /// Accepts or rejects an invite addressed to the caller. The caller's device key
    /// signs [`invite_answer_message`](crate::signing::invite_answer_message). Answer:
    /// [`InviteAnswered`](crate::Response::InviteAnswered); on accept the members get
    /// `MembershipChanged` ([`Joined`](crate::MembershipChange::Joined)); the inviter
    /// gets [`InviteAnswered`](crate::ServerEvent::InviteAnswered). `InviteExpired`,
    /// `InviteWithdrawn`, `InviteAnswered` errors as they apply.
    AnswerInvite {
        /// The invite.
        invite: InviteId,
        /// Accept (수락) or reject (거절).
        accept: bool,
        /// By the caller's device key, over `invite_answer_message`.
        signature: Signature,
    },

    /// Withdraws a pending invite (its sender or the host). Answer: `Done`; the
    /// invitee's devices get [`InviteWithdrawn`](crate::ServerEvent::InviteWithdrawn).
    WithdrawInvite {
        /// The invite.
        invite: InviteId,
    },

    /// Lists pending invites addressed to the caller and those sent to others for the
    /// caller's families. Answer: [`Invites`](crate::Response::Invites).
    ListInvites,

    /// Lists the caller's devices, revoked ones included.
    /// Answer: [`Devices`](crate::Response::Devices).
    ListDevices,

    /// Revokes one of the caller's devices (possibly the current one): it can no
    /// longer sign in and its connections get `Goodbye` with `DeviceRevoked`. Answer:
    /// `Done`; the user's devices get [`DeviceRevoked`](crate::ServerEvent::DeviceRevoked).
    RevokeDevice {
        /// The device.
        device: DeviceId,
    },

    /// Issues a short, single-use code that links a new device to the caller's user
    /// (via [`ClientFrame::LinkDevice`](crate::ClientFrame::LinkDevice)). The code
    /// alone adds nothing: the device that presents it waits until a signed-in device
    /// of the user confirms it ([`ConfirmLink`](Self::ConfirmLink)). Answer:
    /// [`LinkCode`](crate::Response::LinkCode).
    IssueLinkCode,

    /// Sets the caller's directory profile (what `LookupUser` and invites show).
    /// Answer: `Done`.
    SetProfile {
        /// The nickname.
        nickname: String,
        /// The profile photo blob, or `None` for the default avatar.
        avatar: Option<BlobHash>,
    },

    /// Lists online / last-seen status of a family's members.
    /// Answer: [`Presence`](crate::Response::Presence).
    ListPresence {
        /// The family.
        family: FamilyId,
    },

    /// Accepted an invite under another 호칭 (protocols up to 6). The invitee's device
    /// now writes the 호칭 it chose into the family document itself and accepts with
    /// [`AnswerInvite`](Self::AnswerInvite); a relay refuses this with `InvalidInput`.
    /// Kept so the variants after it keep their place.
    RetiredAcceptInviteAs,

    /// Lists the new devices waiting for the caller's user to confirm their link,
    /// oldest first (expired, answered and rejected ones are left out). Answer:
    /// [`PendingLinks`](crate::Response::PendingLinks).
    ListPendingLinks,

    /// Confirms (adds the device to the caller's user) or rejects (the request and its
    /// code are gone) a pending link of the caller's user. The caller's device key
    /// signs [`link_confirm_message`](crate::signing::link_confirm_message). Answer:
    /// `Done`; the user's devices get [`LinkAnswered`](crate::ServerEvent::LinkAnswered)
    /// and, on accept, [`DeviceAdded`](crate::ServerEvent::DeviceAdded). `NotFound`
    /// for a link that is not the caller's user's, `LinkExpired`, `LinkAnswered`.
    ConfirmLink {
        /// The request, from [`PendingLinkInfo`](crate::PendingLinkInfo).
        link: LinkId,
        /// Add the device (true) or refuse it (false).
        accept: bool,
        /// By the caller's device key, over `link_confirm_message`.
        signature: Signature,
    },

    /// Confirms a pending snapshot (see
    /// [`PendingSnapshot`](crate::ServerFrame::PendingSnapshot)): this device loaded
    /// the blob and found in it every change it holds from chunks up to `covers_seq`.
    /// The relay then serves it as the document's snapshot and drops the chunks it
    /// covers. Only a device that may read the document and is not the pusher's —
    /// of another member for a family document, another device for a personal one.
    /// Answer: [`Done`](crate::Response::Done); `Forbidden` for the pusher's own
    /// account (or device), `NotFound` if no such snapshot is pending (replaced,
    /// expired, already confirmed).
    ConfirmSnapshot {
        /// The document.
        doc: DocId,
        /// As offered.
        covers_seq: Seq,
        /// As offered.
        blob: BlobHash,
    },

    /// Reports a pending snapshot this device found missing changes (or could not
    /// load); the relay logs it and keeps every chunk. Answer:
    /// [`Done`](crate::Response::Done).
    RejectSnapshot {
        /// The document.
        doc: DocId,
        /// As offered.
        covers_seq: Seq,
        /// As offered.
        blob: BlobHash,
    },

    /// Keeps certificates of the caller's user's devices (issue 18): each names a
    /// device of the caller's user with the key the relay knows it by, and is signed
    /// by the user key or by another device of the user that is not revoked. The
    /// relay checks all that and keeps them for the user's co-members to fetch
    /// ([`DeviceCerts`](Request::DeviceCerts)) and for whoever a pending invite links
    /// them with; keeping one twice is fine. At most
    /// [`MAX_CERTS_PER_FRAME`](crate::limits::MAX_CERTS_PER_FRAME). Answer:
    /// [`Done`](crate::Response::Done); `Forbidden` (a device of another user, or a
    /// revoked certifier), `BadSignature`, `InvalidInput` (a key that is not the
    /// device's), `QuotaExceeded` (the user holds as many as the relay keeps). None
    /// is kept if one is refused.
    PublishDeviceCerts {
        /// The certificates.
        #[serde(deserialize_with = "crate::wire::seq")]
        certs: Vec<DeviceCert>,
    },

    /// The certificates of `user`'s devices, the user key they chain to and the
    /// user's revoked devices — for the caller's own user or a co-member of a family
    /// (who adds the user's devices to the family's key group only if a chain leads to
    /// them from the user key it pinned), someone a pending invite links with the
    /// caller, or a user this connection found with [`LookupUser`](Self::LookupUser)
    /// in the last 10 minutes while the caller is a member of a family.
    /// Answer:
    /// [`DeviceCerts`](crate::Response::DeviceCerts); `Forbidden` for anyone else.
    DeviceCerts {
        /// Whose.
        user: UserId,
    },

    /// Publishes the calling device's key package (an MLS last-resort KeyPackage,
    /// opaque to the relay, at most
    /// [`MAX_KEY_PACKAGE_BYTES`](crate::limits::MAX_KEY_PACKAGE_BYTES)), in place of
    /// the one it published before: a member's device adds it to a family's key group
    /// while this device is offline — the inviter's, when it sends the invite (issue
    /// 18, `docs/security.md`). Answer: [`Done`](crate::Response::Done);
    /// `InvalidInput` (empty or too large).
    PublishKeyPackage {
        /// The package.
        #[serde(with = "crate::wire::bytes")]
        package: Vec<u8>,
    },

    /// The key packages `user`'s devices published (revoked devices' are never
    /// served), for the caller's own user, a co-member of a family, someone a
    /// pending invite links with the caller (to or from a family of the caller's), or
    /// a user this connection found with [`LookupUser`](Self::LookupUser) in the
    /// last 10 minutes while the caller is a member of a family (whose devices an
    /// invite's card is sealed to before the invite exists).
    /// Answer: [`KeyPackages`](crate::Response::KeyPackages); `Forbidden` for anyone
    /// else.
    KeyPackagesOf {
        /// Whose.
        user: UserId,
    },

    /// Opens the family's volume of `year` ([`FamilyId::volume`]: the document its
    /// devices keep that year's entries in; issue 17): from then on the relay serves
    /// and keeps it like the family's document, to the same members, sealed alike.
    /// Opening it again is fine. Answer: [`Done`](crate::Response::Done);
    /// `Forbidden` for a non-member, `InvalidInput` for a year outside
    /// [`VOLUME_YEARS`](crate::VOLUME_YEARS), `QuotaExceeded` when the family has
    /// opened as many volumes as the relay keeps, `Conflict` if the id is taken by
    /// another document (one made before ids were checked for a volume's shape).
    OpenVolume {
        /// The family.
        family: FamilyId,
        /// The year.
        year: u16,
    },
}

impl Request {
    /// A stable name of the variant, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::CreateFamily { .. } => "create_family",
            Request::OpenVolume { .. } => "open_volume",
            Request::RetiredRenameFamily => "retired_rename_family",
            Request::RetiredSetMemberName => "retired_set_member_name",
            Request::RemoveMember { .. } => "remove_member",
            Request::LeaveFamily { .. } => "leave_family",
            Request::DeleteFamily { .. } => "delete_family",
            Request::ListFamilies => "list_families",
            Request::LookupUser { .. } => "lookup_user",
            Request::SendInvite { .. } => "send_invite",
            Request::AnswerInvite { .. } => "answer_invite",
            Request::WithdrawInvite { .. } => "withdraw_invite",
            Request::ListInvites => "list_invites",
            Request::ListDevices => "list_devices",
            Request::RevokeDevice { .. } => "revoke_device",
            Request::IssueLinkCode => "issue_link_code",
            Request::SetProfile { .. } => "set_profile",
            Request::ListPresence { .. } => "list_presence",
            Request::RetiredAcceptInviteAs => "retired_accept_invite_as",
            Request::ListPendingLinks => "list_pending_links",
            Request::ConfirmLink { .. } => "confirm_link",
            Request::ConfirmSnapshot { .. } => "confirm_snapshot",
            Request::RejectSnapshot { .. } => "reject_snapshot",
            Request::PublishDeviceCerts { .. } => "publish_device_certs",
            Request::DeviceCerts { .. } => "device_certs",
            Request::PublishKeyPackage { .. } => "publish_key_package",
            Request::KeyPackagesOf { .. } => "key_packages_of",
        }
    }
}
