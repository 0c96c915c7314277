//! The voice message box.

use std::{path::PathBuf, sync::Arc};

use doran_device::{
    core::views::{VoiceAlbumCard, VoiceCard},
    screens::VoiceAdded,
};
use serde::Deserialize;
use tauri::{
    Webview,
    ipc::{JavaScriptChannelId, Request},
};

use super::{Dev, Res};

#[tauri::command(rename_all = "snake_case")]
pub async fn voice_albums(d: Dev<'_>, family: String) -> Res<Vec<VoiceAlbumCard>> {
    d.voice_albums(&family).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn voices(d: Dev<'_>, family: String, album: Option<String>) -> Res<Vec<VoiceCard>> {
    d.voices(&family, album.as_deref()).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn create_voice_album(
    d: Dev<'_>,
    family: String,
    name: String,
    cover: u8,
) -> Res<String> {
    d.create_voice_album(&family, &name, cover).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn edit_voice_album(
    d: Dev<'_>,
    family: String,
    album: String,
    name: Option<String>,
    cover: Option<u8>,
) -> Res<()> {
    d.edit_voice_album(&family, &album, name.as_deref(), cover)
        .await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn delete_voice_album(d: Dev<'_>, family: String, album: String) -> Res<()> {
    d.delete_voice_album(&family, &album).await
}

/// A recording dropped on the window (the drop gives its path; only a dropped one is
/// taken, see `dropped.rs`).
#[tauri::command(rename_all = "snake_case")]
pub async fn add_voice(
    d: Dev<'_>,
    dropped: tauri::State<'_, crate::dropped::Dropped>,
    family: String,
    album: String,
    path: PathBuf,
    title: String,
) -> Res<VoiceAdded> {
    crate::dropped::require(&dropped, &path, d.language())?;
    d.add_voice(&family, &album, &path, &title).await
}

#[derive(Deserialize)]
pub struct VoiceArgs {
    family: String,
    album: String,
    title: String,
    /// Where the conversion's progress goes (a `Channel` of the front end).
    progress: JavaScriptChannelId,
}

/// A recording from the microphone or the file picker: its bytes as the raw body
/// (see `raw.rs`); the conversion's progress goes to the front end's channel.
#[tauri::command(rename_all = "snake_case")]
pub async fn add_voice_bytes(
    d: Dev<'_>,
    webview: Webview,
    request: Request<'_>,
) -> Res<VoiceAdded> {
    let (a, bytes): (VoiceArgs, _) = crate::raw::split(&request, d.language())?;
    let channel = a.progress.channel_on::<_, f32>(webview);
    let progress = Arc::new(move |done: f32| drop(channel.send(done)));
    d.add_voice_bytes_with_progress(&a.family, &a.album, bytes, &a.title, progress)
        .await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn delete_voice(d: Dev<'_>, family: String, voice: String) -> Res<()> {
    d.delete_voice(&family, &voice).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn voice_file(d: Dev<'_>, family: String, voice: String) -> Res<PathBuf> {
    d.voice_file(&family, &voice).await
}
