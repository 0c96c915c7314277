//! The bell: notifications kept on this device (invites, reactions to the user's
//! photos, family news), unread count, mark read, dismiss.

use std::sync::Arc;

use doran_client_core::{store::NotificationRecord, time_util::relative};

use super::{Device, KEEP_NOTIFICATIONS};
use crate::{
    error::{Error, Result},
    screens::{NotificationView, NotificationsView},
};

/// A notification as the store keeps it.
pub(crate) fn record_of(n: &NotificationView) -> Option<NotificationRecord> {
    Some(NotificationRecord {
        id: n.id.clone(),
        family: n.family.as_deref().and_then(|f| f.parse().ok()),
        at_ms: n.at,
        body: serde_json::to_vec(n).ok()?,
        read: false,
    })
}

impl Device {
    /// The bell: newest first, with how many are unread.
    pub async fn notifications(&self) -> Result<NotificationsView> {
        let store = Arc::clone(&self.shared().store);
        let viewer = self.shared().viewer();
        self.blocking(move |lang| {
            let err = |e: doran_client_core::store::StoreError| Error::from_store(&e, lang);
            let unread = store.unread_notifications().map_err(err)?;
            let items = store
                .notifications(KEEP_NOTIFICATIONS)
                .map_err(err)?
                .into_iter()
                .filter_map(|r| {
                    let mut n: NotificationView = serde_json::from_slice(&r.body).ok()?;
                    n.read = r.read;
                    n.ago = relative(n.at, viewer.now_ms, viewer.offset, viewer.lang);
                    Some(n)
                })
                .collect();
            Ok(NotificationsView { unread, items })
        })
        .await
    }

    /// Marks one notification (`Some(id)`) or all (`None`) read.
    pub async fn mark_notifications_read(&self, id: Option<&str>) -> Result<()> {
        let store = Arc::clone(&self.shared().store);
        let id = id.map(str::to_owned);
        self.blocking(move |lang| {
            store
                .mark_notifications_read(id.as_deref())
                .map(|_| ())
                .map_err(|e| Error::from_store(&e, lang))
        })
        .await
    }

    /// Dismisses (removes) a notification.
    pub async fn dismiss_notification(&self, id: &str) -> Result<()> {
        let store = Arc::clone(&self.shared().store);
        let id = id.to_owned();
        self.blocking(move |lang| {
            store
                .dismiss_notification(&id)
                .map(|_| ())
                .map_err(|e| Error::from_store(&e, lang))
        })
        .await
    }
}
