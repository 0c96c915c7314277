//! The bell.

use doran_device::screens::NotificationsView;

use super::{Dev, Res};

#[tauri::command(rename_all = "snake_case")]
pub async fn notifications(d: Dev<'_>) -> Res<NotificationsView> {
    d.notifications().await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn mark_notifications_read(d: Dev<'_>, id: Option<String>) -> Res<()> {
    d.mark_notifications_read(id.as_deref()).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn dismiss_notification(d: Dev<'_>, id: String) -> Res<()> {
    d.dismiss_notification(&id).await
}
