//! Missions and badges.

use doran_device::{MissionChanges, MissionInput, core::views::BadgeBoard, screens::MissionsView};

use super::{Dev, Res};

#[tauri::command(rename_all = "snake_case")]
pub async fn missions(d: Dev<'_>, family: String, month: Option<String>) -> Res<MissionsView> {
    d.missions(&family, month.as_deref()).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn badges(d: Dev<'_>, family: String) -> Res<BadgeBoard> {
    d.badges(&family).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn add_mission(d: Dev<'_>, family: String, input: MissionInput) -> Res<String> {
    d.add_mission(&family, input).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn edit_mission(
    d: Dev<'_>,
    family: String,
    mission: String,
    changes: MissionChanges,
) -> Res<()> {
    d.edit_mission(&family, &mission, changes).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn delete_mission(d: Dev<'_>, family: String, mission: String) -> Res<()> {
    d.delete_mission(&family, &mission).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn set_mission_done(d: Dev<'_>, family: String, mission: String, done: bool) -> Res<()> {
    d.set_mission_done(&family, &mission, done).await
}
