//! The bell: notifications kept on this device, unread count, mark read, dismiss.

use doran_device::screens;

use crate::{device::Device, error::Result, families::count};

/// A notification in the bell.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
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
    /// When (Unix ms).
    pub at: i64,
    /// How many events it stands for (a burst collapsed).
    pub count: u64,
    /// The sentence, in the user's language.
    pub text: String,
    /// The invite, for an invite notification (accept / reject from the bell).
    pub invite: Option<String>,
    /// What it points at (a photo, mission, voice message id), to open it.
    pub target: Option<String>,
    /// Whether the user has seen it.
    pub read: bool,
    /// How long ago ("방금 전"), when listed.
    pub ago: String,
}

impl From<screens::NotificationView> for NotificationView {
    fn from(n: screens::NotificationView) -> Self {
        NotificationView {
            id: n.id,
            kind: n.kind,
            family: n.family,
            actor: n.actor,
            at: n.at,
            count: count(n.count),
            text: n.text,
            invite: n.invite,
            target: n.target,
            read: n.read,
            ago: n.ago,
        }
    }
}

/// The bell.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NotificationsView {
    /// How many are unread.
    pub unread: u64,
    /// Newest first.
    pub items: Vec<NotificationView>,
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// The bell: newest first, with how many are unread.
    pub async fn notifications(&self) -> Result<NotificationsView> {
        let v = self.inner.notifications().await?;
        Ok(NotificationsView {
            unread: v.unread,
            items: v.items.into_iter().map(Into::into).collect(),
        })
    }

    /// Marks one notification (`Some(id)`) or all (`None`) read.
    pub async fn mark_notifications_read(&self, id: Option<String>) -> Result<()> {
        Ok(self.inner.mark_notifications_read(id.as_deref()).await?)
    }

    /// Dismisses (removes) a notification.
    pub async fn dismiss_notification(&self, id: String) -> Result<()> {
        Ok(self.inner.dismiss_notification(&id).await?)
    }
}
