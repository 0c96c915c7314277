//! What the [`Device`](crate::Device) facade returns besides the document views of
//! `doran_client_core::views`: the parts that come from the relay or the device itself
//! (account, sync status, families and membership, members with presence, invites,
//! devices, notifications). Every type serialises with stable snake_case names; ids are
//! hex strings, times Unix milliseconds.

use doran_client_core::{
    model::Role,
    sync::SyncStatus,
    views::{BadgeView, MissionCard, MissionDashboard, MoodView, role_key},
};
use serde::Serialize;

/// The connection, as the always-visible status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SyncView {
    /// `offline`, `connecting`, `syncing` or `up_to_date`.
    #[serde(serialize_with = "status_key")]
    pub status: SyncStatus,
    /// Local changes not yet on the relay.
    pub pending: u64,
}

fn status_key<S: serde::Serializer>(status: &SyncStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match status {
        SyncStatus::Offline => "offline",
        SyncStatus::Connecting => "connecting",
        SyncStatus::Syncing => "syncing",
        SyncStatus::UpToDate => "up_to_date",
    })
}

/// The account on this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    /// The user.
    pub user: String,
    /// This device.
    pub device: String,
    /// The email or handle (empty until known on a device added with the phrase or a
    /// link code).
    pub email: String,
    /// The current nickname.
    pub nickname: String,
    /// The relay.
    pub server: String,
    /// Whether this device holds the user key, so it can show the recovery phrase.
    pub has_recovery_phrase: bool,
    /// The user's UI language (`ko` or `en`).
    pub language: String,
}

/// A family in the switcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FamilyCard {
    /// The family.
    pub family: String,
    /// Its title.
    pub title: String,
    /// How many members.
    pub members: usize,
    /// The user's role: `host` or `member`.
    #[serde(serialize_with = "role_key")]
    pub role: Role,
    /// Whether the user is still a member (`false`: removed; the copy is read-only).
    pub member: bool,
    /// End-to-end sealed: the relay holds only envelopes of its documents.
    pub sealed: bool,
    /// This device has not been let into the sealed family yet: its content shows
    /// once a member's device online hands it the keys (edits are refused until then).
    pub waiting_for_keys: bool,
}

/// A member of a family with everything the apps show next to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    /// The user.
    pub user: String,
    /// 호칭.
    pub name: String,
    /// `host` or `member`.
    #[serde(serialize_with = "role_key")]
    pub role: Role,
    /// Avatar ring color.
    pub color: String,
    /// Joined (ms).
    pub joined_at: i64,
    /// Whether this is the user of this device.
    pub me: bool,
    /// Their nickname, once their profile synced.
    pub nickname: Option<String>,
    /// Their profile photo (blob hex), if set.
    pub avatar: Option<String>,
    /// Their default avatar (1–8), once their profile synced.
    pub default_avatar: Option<u8>,
    /// Today's mood.
    pub mood: Option<MoodView>,
    /// Connected now.
    pub online: bool,
    /// When last connected (ms), if not online.
    pub last_seen: Option<i64>,
    /// "접속중" or how long ago, if known.
    pub status: Option<String>,
    /// Their safety code was compared in person on this device and was the same
    /// (see [`SafetyCodeView`]); never for oneself.
    pub verified: bool,
}

/// The safety code this device shows for a member: the same sixty digits on the
/// member's device mean each device holds the other user's real key (issue 18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafetyCodeView {
    /// The member.
    pub user: String,
    /// Their 호칭.
    pub name: String,
    /// Twelve groups of five digits, to show in three rows of four.
    pub groups: Vec<String>,
    /// The groups joined by spaces.
    pub code: String,
    /// Compared and the same, on this device.
    pub verified: bool,
}

impl SafetyCodeView {
    pub(crate) fn new(
        user: doran_protocol::UserId,
        name: String,
        code: &doran_client_core::group::safety::SafetyCode,
        verified: bool,
    ) -> Self {
        SafetyCodeView {
            user: user.to_hex(),
            name,
            groups: code.groups().to_vec(),
            code: code.to_string(),
            verified,
        }
    }
}

/// A family's settings screen and header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FamilyView {
    /// The family.
    pub family: String,
    /// Its title.
    pub title: String,
    /// The user's role.
    #[serde(serialize_with = "role_key")]
    pub role: Role,
    /// Whether the user is still a member.
    pub member: bool,
    /// End-to-end sealed (see [`FamilyCard::sealed`]).
    pub sealed: bool,
    /// Waiting to be let in (see [`FamilyCard::waiting_for_keys`]).
    pub waiting_for_keys: bool,
    /// Members, host first, then by joining.
    pub members: Vec<MemberView>,
}

/// The mission page: this month's box and cards, and the past months' missions
/// (read-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissionsView {
    /// This month.
    pub month: MissionDashboard,
    /// Earlier months, newest first.
    pub past: Vec<MissionCard>,
}

/// An invite, received or sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InviteView {
    /// The invite.
    pub invite: String,
    /// The family.
    pub family: String,
    /// Its title, from the invite's sealed card (empty when this device cannot open
    /// it: a device linked after the invite was sent).
    pub family_title: String,
    /// Who invited.
    pub inviter: String,
    /// Their nickname.
    pub inviter_nickname: String,
    /// Their 호칭 in the family.
    pub inviter_name: String,
    /// Who is invited.
    pub invitee: String,
    /// Their nickname.
    pub invitee_nickname: String,
    /// The 호칭 offered (empty when the card did not open here).
    pub proposed_name: String,
    /// Sent (ms).
    pub created_at: i64,
    /// Expires (ms).
    pub expires_at: i64,
    /// `pending`, `accepted`, `rejected`, `withdrawn` or `expired`.
    pub state: &'static str,
    /// The sentence the bell shows ("엄마 님이 '우리 가족'에 아들(으)로 초대했어요").
    pub text: String,
}

/// Invites addressed to the user, and those the user's families sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvitesView {
    /// Waiting for the user's answer.
    pub received: Vec<InviteView>,
    /// Sent by the user's families, waiting for an answer (withdrawable).
    pub sent: Vec<InviteView>,
}

/// One of the user's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceView {
    /// The device.
    pub device: String,
    /// Its name ("Dorandoran · mom-laptop (Linux)", or what the app set).
    pub name: String,
    /// Added (ms).
    pub added_at: i64,
    /// Connected now.
    pub online: bool,
    /// Last connected (ms).
    pub last_seen: Option<i64>,
    /// Revoked (ms), if it was.
    pub revoked_at: Option<i64>,
    /// Whether it is this device.
    pub this_device: bool,
}

/// A code to link a new device, from this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkCodeView {
    /// The code to type on the new device.
    pub code: String,
    /// When it stops working (ms).
    pub expires_at: i64,
}

/// A new device waiting for this account to confirm it
/// ([`Device::confirm_link`](crate::Device::confirm_link)). Show its name and
/// fingerprint: the new device shows the same fingerprint while it waits, so the person
/// can tell it is the device in their hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingLinkView {
    /// The request (hex), to confirm or reject.
    pub link: String,
    /// The new device's id (hex).
    pub device: String,
    /// Its name (app, version, platform).
    pub name: String,
    /// Its key's fingerprint, `1a2b-3c4d-5e6f`.
    pub fingerprint: String,
    /// When it asked (ms).
    pub requested_at: i64,
    /// When the request stops working (ms).
    pub expires_at: i64,
}

impl From<&doran_protocol::PendingLinkInfo> for PendingLinkView {
    fn from(l: &doran_protocol::PendingLinkInfo) -> Self {
        let ms = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
        PendingLinkView {
            link: l.link.to_hex(),
            device: l.device.to_hex(),
            name: l.client.clone(),
            fingerprint: l.device_key.fingerprint(),
            requested_at: ms(l.requested_at),
            expires_at: ms(l.expires_at),
        }
    }
}

/// A notification in the bell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NotificationView {
    /// Stable id.
    pub id: String,
    /// `invite`, `invite_answered`, `like`, `comment`, `family` (news: missions,
    /// photos, events…), `joined`, `removed`.
    pub kind: String,
    /// The family it is about.
    pub family: Option<String>,
    /// Who did it.
    pub actor: Option<String>,
    /// When (ms).
    pub at: i64,
    /// How many events it stands for (a burst collapsed).
    pub count: usize,
    /// The sentence, in the user's language when it arrived.
    pub text: String,
    /// The invite, for an invite notification (accept / reject from the bell).
    pub invite: Option<String>,
    /// What it points at (a photo, mission, voice message id), to open it.
    pub target: Option<String>,
    /// What a burst collapses by: family, person and kind (`None`: never collapsed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Whether the user has seen it.
    #[serde(default)]
    pub read: bool,
    /// How long ago, in the user's language (filled in when listed).
    #[serde(default)]
    pub ago: String,
}

/// The bell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationsView {
    /// How many are unread.
    pub unread: u64,
    /// Newest first.
    pub items: Vec<NotificationView>,
}

/// A member's online state, from the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceView {
    /// The member.
    pub user: String,
    /// Their 호칭.
    pub name: String,
    /// Connected now.
    pub online: bool,
    /// When last connected (ms).
    pub last_seen: Option<i64>,
    /// "접속중" or how long ago.
    pub status: Option<String>,
}

/// A profile: the user's own, or a family member's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileView {
    /// The user.
    pub user: String,
    /// Nickname.
    pub nickname: String,
    /// Profile photo (blob hex), if set.
    pub avatar: Option<String>,
    /// The default avatar (1–8).
    pub default_avatar: u8,
    /// Today's mood (a mood from an earlier day is none).
    pub mood: Option<MoodView>,
    /// Whether it is the user of this device.
    pub me: bool,
}

/// The user's settings (their own profile only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SettingsView {
    /// `ko` or `en`.
    pub language: String,
    /// Notifications about family news (missions, photos, events, voice messages).
    pub notify_family: bool,
    /// Notifications about likes and comments on the user's photos.
    pub notify_reactions: bool,
}

/// A badge shown on its own (e.g. the home screen's random one).
pub type BadgeCard = BadgeView;

/// What `sync_now` achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Whether everything is pushed and caught up.
    pub up_to_date: bool,
    /// Local changes still waiting.
    pub pending: u64,
    /// Photos and voice messages still waiting for upload.
    pub pending_blobs: u64,
}

/// A voice message added: its id and what the conversion measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoiceAdded {
    /// The message.
    pub id: String,
    /// Its duration (ms).
    pub duration_ms: u64,
    /// The MP3's size.
    pub bytes: u64,
}

/// What forms and pickers need ([`Device::catalog`](crate::Device::catalog)): the
/// product's palette, moods, covers and text limits, so no app repeats them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalog {
    /// The calendar palette; the first is the default color.
    pub palette: Vec<&'static str>,
    /// Today's moods, in the picker's order, labelled in the user's language.
    pub moods: Vec<MoodView>,
    /// How many built-in voice album covers there are (numbered from 1).
    pub voice_covers: u8,
    /// Where the recorder stops on its own (ms).
    pub voice_max_ms: u64,
    /// Photos per page of the gallery grid.
    pub photo_page: usize,
    /// Event lines a day of the month grid shows before "+N more".
    pub day_slots: usize,
    /// The length of every text field.
    pub limits: TextLimits,
}

/// The characters a text field takes (counted after trimming).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TextLimit {
    /// Fewest.
    pub min: usize,
    /// Most.
    pub max: usize,
    /// Whether line breaks are allowed.
    pub multiline: bool,
}

/// Every text field's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TextLimits {
    /// Family title.
    pub family_title: TextLimit,
    /// 호칭.
    pub member_name: TextLimit,
    /// Nickname.
    pub nickname: TextLimit,
    /// Mission title.
    pub mission_title: TextLimit,
    /// Calendar event title.
    pub event_title: TextLimit,
    /// Calendar event notes.
    pub event_notes: TextLimit,
    /// Photo album name.
    pub album_name: TextLimit,
    /// Photo caption.
    pub photo_caption: TextLimit,
    /// Comment.
    pub comment: TextLimit,
    /// Voice message title.
    pub voice_title: TextLimit,
    /// Voice album name.
    pub voice_album_name: TextLimit,
}
