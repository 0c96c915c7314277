//! [`DeviceRecords`]: the small records a device keeps beside its documents — the
//! account, the families it belongs to, whose personal document is which, how far the
//! relay's snapshots reach, and the notifications the bell shows. Each is a real table
//! (`migrations/003_device_records.sql`); every method is one transaction.

use std::{fmt, str::FromStr};

use doran_protocol::{DeviceId, DocId, FamilyId, Seq, UserId};

use super::Result;

/// Where this device's user stands in a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Membership {
    /// A member: the family is synced and editable.
    Member,
    /// The relay said the user is no longer a member (removed by the host, or the
    /// family was deleted). The local copy stays readable; it is no longer synced and
    /// edits are refused.
    Removed,
}

impl Membership {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Membership::Member => "member",
            Membership::Removed => "removed",
        }
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Membership {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "member" => Ok(Membership::Member),
            "removed" => Ok(Membership::Removed),
            other => Err(format!(
                "unknown membership {:?}",
                other.chars().take(20).collect::<String>()
            )),
        }
    }
}

/// A family this device knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyRecord {
    /// The family (its document has the same id).
    pub family: FamilyId,
    /// Member, or removed.
    pub membership: Membership,
    /// When the membership last changed on this device (ms).
    pub since_ms: i64,
}

/// The account signed in on this device: who it is and where. The keys are not
/// here: they live behind the device's secret store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// The user, as the relay assigned it at registration.
    pub user: UserId,
    /// This device.
    pub device: DeviceId,
    /// The email or handle the user registered with (empty until known on a device
    /// added with the phrase or a link code).
    pub email: String,
    /// The nickname at registration (the personal document holds the current one).
    pub nickname: String,
    /// The relay's base URL (`http(s)://host:port`).
    pub server: String,
    /// The user's personal document.
    pub personal_doc: DocId,
}

/// A notification as the device keeps it: the bell's entries, newest first. The body
/// is the device layer's encoding (the store does not read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    /// Stable id (the same event has the same id on every device and every run, so a
    /// notification is never kept twice).
    pub id: String,
    /// The family it is about, if any.
    pub family: Option<FamilyId>,
    /// When it happened (ms).
    pub at_ms: i64,
    /// The encoded notification.
    pub body: Vec<u8>,
    /// Whether the user has seen it.
    pub read: bool,
}

/// Longest notification id the store takes.
pub const MAX_NOTIFICATION_ID_LEN: usize = 256;
/// Largest notification body the store takes.
pub const MAX_NOTIFICATION_BODY_LEN: usize = 64 * 1024;

/// The device's records (see the module docs). Part of every
/// [`LocalStore`](super::LocalStore).
pub trait DeviceRecords {
    // --- The account ---

    /// The account signed in on this device, if any.
    fn account(&self) -> Result<Option<AccountRecord>>;

    /// Stores the account, replacing any other.
    fn set_account(&self, account: &AccountRecord) -> Result<()>;

    /// Forgets the account (signing out). Forgetting twice is fine.
    fn delete_account(&self) -> Result<()>;

    // --- Families ---

    /// Every family this device knows, in the order they became known.
    fn families(&self) -> Result<Vec<FamilyRecord>>;

    /// Sets where the user stands in `family` (adding it if new, as a member). Returns
    /// whether it changed. A family this device does not know (never joined here, or
    /// forgotten after a leave) is not added as removed: a removal noticed late — the
    /// relay dropping a document just left, say — must not bring back a family the
    /// user left.
    fn set_membership(&self, family: FamilyId, membership: Membership, at_ms: i64) -> Result<bool>;

    /// The relay's list of the user's families, which is authoritative: those listed
    /// become members; members that are not listed become [`Membership::Removed`].
    /// Returns the families whose membership changed, with the new membership.
    fn sync_memberships(
        &self,
        listed: &[FamilyId],
        at_ms: i64,
    ) -> Result<Vec<(FamilyId, Membership)>>;

    /// Forgets a family entirely (the user left it; its document may stay).
    fn forget_family(&self, family: FamilyId) -> Result<()>;

    // --- Personal documents ---

    /// The personal document of `user` (this user's own, or a co-member's once it has
    /// synced here).
    fn personal_doc(&self, user: UserId) -> Result<Option<DocId>>;

    /// Remembers that `doc` is `user`'s personal document.
    fn set_personal_doc(&self, user: UserId, doc: DocId) -> Result<()>;

    // --- Snapshots ---

    /// The last relay seq covered by a snapshot of `doc` that the relay accepted from
    /// this device (0 if none).
    fn snapshot_covers(&self, doc: DocId) -> Result<Seq>;

    /// Remembers that the relay accepted a snapshot of `doc` covering `seq`.
    fn set_snapshot_covers(&self, doc: DocId, seq: Seq) -> Result<()>;

    // --- Notifications ---

    /// Adds a notification unless one with its id is already kept (returns whether it
    /// was added), then keeps only the `keep` newest.
    fn add_notification(&self, note: &NotificationRecord, keep: usize) -> Result<bool>;

    /// Up to `limit` notifications, newest first.
    fn notifications(&self, limit: usize) -> Result<Vec<NotificationRecord>>;

    /// How many notifications are unread.
    fn unread_notifications(&self) -> Result<u64>;

    /// Marks one notification (`Some(id)`) or all of them (`None`) read. Returns how
    /// many changed.
    fn mark_notifications_read(&self, id: Option<&str>) -> Result<u64>;

    /// Dismisses (deletes) a notification. Returns whether it existed.
    fn dismiss_notification(&self, id: &str) -> Result<bool>;
}
