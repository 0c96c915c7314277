//! The profile and the user's settings.

use std::path::PathBuf;

use doran_device::{
    ProfileChanges,
    screens::{ProfileView, SettingsView},
};
use tauri::ipc::Request;

use super::{Dev, Res};

#[tauri::command(rename_all = "snake_case")]
pub async fn profile(d: Dev<'_>, user: Option<String>) -> Res<ProfileView> {
    d.profile(user.as_deref()).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn avatar_file(d: Dev<'_>, user: Option<String>) -> Res<Option<PathBuf>> {
    d.avatar_file(user.as_deref()).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn update_profile(d: Dev<'_>, changes: ProfileChanges) -> Res<()> {
    d.update_profile(changes).await
}

/// A new profile photo from the file picker: its bytes as the raw body.
#[tauri::command(rename_all = "snake_case")]
pub async fn set_avatar_bytes(d: Dev<'_>, request: Request<'_>) -> Res<()> {
    let ((), bytes) = crate::raw::split(&request, d.language())?;
    d.set_avatar_bytes(bytes).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn settings(d: Dev<'_>) -> Res<SettingsView> {
    d.settings().await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn set_settings(d: Dev<'_>, settings: SettingsView) -> Res<()> {
    d.set_settings(settings).await
}
