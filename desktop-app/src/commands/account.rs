//! Accounts and devices.

use doran_device::screens::{AccountView, DeviceView, LinkCodeView, PendingLinkView};

use super::{Dev, Res};

#[tauri::command(rename_all = "snake_case")]
pub async fn account(d: Dev<'_>) -> Res<Option<AccountView>> {
    d.account().await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn create_account(
    d: Dev<'_>,
    server: String,
    email: String,
    nickname: String,
) -> Res<AccountView> {
    d.create_account(&server, &email, &nickname).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn restore_account(d: Dev<'_>, server: String, phrase: String) -> Res<AccountView> {
    d.restore_account(&server, &phrase).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn link_device(d: Dev<'_>, server: String, code: String) -> Res<AccountView> {
    d.link_device(&server, &code).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn sign_out(d: Dev<'_>) -> Res<()> {
    d.sign_out().await
}

#[tauri::command(rename_all = "snake_case")]
pub fn recovery_phrase(d: Dev<'_>) -> Res<String> {
    d.recovery_phrase()
}

#[tauri::command(rename_all = "snake_case")]
pub async fn issue_link_code(d: Dev<'_>) -> Res<LinkCodeView> {
    d.issue_link_code().await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn devices(d: Dev<'_>) -> Res<Vec<DeviceView>> {
    d.devices().await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn revoke_device(d: Dev<'_>, device: String) -> Res<()> {
    d.revoke_device(&device).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn pending_links(d: Dev<'_>) -> Res<Vec<PendingLinkView>> {
    d.pending_links().await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn confirm_link(d: Dev<'_>, link: String, accept: bool) -> Res<()> {
    d.confirm_link(&link, accept).await
}
