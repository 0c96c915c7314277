//! The calendar and the memories view.

use doran_device::core::{
    EventInput, EventPatch,
    views::{CalendarMonth, MemoryDay},
};

use super::{Dev, Res};

#[tauri::command(rename_all = "snake_case")]
pub async fn calendar(d: Dev<'_>, family: String, month: Option<String>) -> Res<CalendarMonth> {
    d.calendar(&family, month.as_deref()).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn memories(d: Dev<'_>, family: String, month: Option<String>) -> Res<Vec<MemoryDay>> {
    d.memories(&family, month.as_deref()).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn add_event(d: Dev<'_>, family: String, input: EventInput) -> Res<String> {
    d.add_event(&family, input).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn edit_event(d: Dev<'_>, family: String, event: String, patch: EventPatch) -> Res<()> {
    d.edit_event(&family, &event, patch).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn delete_event(d: Dev<'_>, family: String, event: String) -> Res<()> {
    d.delete_event(&family, &event).await
}
