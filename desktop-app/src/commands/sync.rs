//! The sync status, "sync now", and what every screen needs: the language, the
//! catalog of the forms, relative times, the relay to offer.

use std::time::Duration;

use doran_device::screens::{Catalog, SyncReport, SyncView};
use tauri::State;

use super::{Dev, Res};
use crate::setup::DefaultServer;

#[tauri::command(rename_all = "snake_case")]
pub fn sync_state(d: Dev<'_>) -> SyncView {
    d.sync_state()
}

#[tauri::command(rename_all = "snake_case")]
pub async fn sync_now(d: Dev<'_>, timeout_ms: u64) -> Res<SyncReport> {
    d.sync_now(Duration::from_millis(timeout_ms)).await
}

#[tauri::command(rename_all = "snake_case")]
pub fn language(d: Dev<'_>) -> &'static str {
    d.language().code()
}

#[tauri::command(rename_all = "snake_case")]
pub fn catalog(d: Dev<'_>) -> Catalog {
    d.catalog()
}

#[tauri::command(rename_all = "snake_case")]
pub fn relative_times(d: Dev<'_>, times: Vec<i64>) -> Vec<String> {
    d.relative_times(&times)
}

#[tauri::command(rename_all = "snake_case")]
pub fn default_server(server: State<'_, DefaultServer>) -> String {
    server.0.clone()
}
