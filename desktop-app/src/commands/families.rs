//! Families, members and invites.

use doran_device::{
    core::views::HomeSummary,
    screens::{FamilyCard, FamilyView, InviteView, InvitesView, PresenceView, SafetyCodeView},
};

use super::{Dev, Res};

#[tauri::command(rename_all = "snake_case")]
pub async fn families(d: Dev<'_>) -> Res<Vec<FamilyCard>> {
    d.families().await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn family(d: Dev<'_>, family: String) -> Res<FamilyView> {
    d.family(&family).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn home(d: Dev<'_>, family: String) -> Res<HomeSummary> {
    d.home(&family).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn presence(d: Dev<'_>, family: String) -> Res<Vec<PresenceView>> {
    d.presence(&family).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn create_family(d: Dev<'_>, title: String, my_name: String) -> Res<String> {
    d.create_family(&title, &my_name).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn seal_family(d: Dev<'_>, family: String) -> Res<bool> {
    d.seal_family(&family).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn rename_family(d: Dev<'_>, family: String, title: String) -> Res<()> {
    d.rename_family(&family, &title).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn set_my_name(d: Dev<'_>, family: String, name: String) -> Res<()> {
    d.set_my_name(&family, &name).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn remove_member(d: Dev<'_>, family: String, user: String) -> Res<()> {
    d.remove_member(&family, &user).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn safety_code(d: Dev<'_>, family: String, user: String) -> Res<SafetyCodeView> {
    d.safety_code(&family, &user).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn verify_safety_code(
    d: Dev<'_>,
    family: String,
    user: String,
    code: String,
) -> Res<SafetyCodeView> {
    d.verify_safety_code(&family, &user, &code).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn leave_family(d: Dev<'_>, family: String) -> Res<()> {
    d.leave_family(&family).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn delete_family(d: Dev<'_>, family: String) -> Res<()> {
    d.delete_family(&family).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn invite(d: Dev<'_>, family: String, email: String, name: String) -> Res<InviteView> {
    d.invite(&family, &email, &name).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn invites(d: Dev<'_>) -> Res<InvitesView> {
    d.invites().await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn answer_invite(d: Dev<'_>, invite: String, accept: bool) -> Res<Option<String>> {
    d.answer_invite(&invite, accept).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn withdraw_invite(d: Dev<'_>, invite: String) -> Res<()> {
    d.withdraw_invite(&invite).await
}
