//! The photo gallery.

use std::path::PathBuf;

use doran_device::core::views::{AlbumCard, PhotoDetail, PhotoPage};
use serde::Deserialize;
use tauri::ipc::Request;

use super::{Dev, Res};

#[tauri::command(rename_all = "snake_case")]
pub async fn albums(d: Dev<'_>, family: String) -> Res<Vec<AlbumCard>> {
    d.albums(&family).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn photos(d: Dev<'_>, family: String, album: String, page: usize) -> Res<PhotoPage> {
    d.photos(&family, &album, page).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn photo(d: Dev<'_>, family: String, photo: String) -> Res<PhotoDetail> {
    d.photo(&family, &photo).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn create_album(d: Dev<'_>, family: String, name: String) -> Res<String> {
    d.create_album(&family, &name).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn rename_album(d: Dev<'_>, family: String, album: String, name: String) -> Res<()> {
    d.rename_album(&family, &album, &name).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn set_album_cover(d: Dev<'_>, family: String, album: String, photo: String) -> Res<()> {
    d.set_album_cover(&family, &album, &photo).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn delete_album(d: Dev<'_>, family: String, album: String) -> Res<()> {
    d.delete_album(&family, &album).await
}

/// A photo dropped on the window (the drop gives its path; only a dropped one is
/// taken, see `dropped.rs`).
#[tauri::command(rename_all = "snake_case")]
pub async fn add_photo(
    d: Dev<'_>,
    dropped: tauri::State<'_, crate::dropped::Dropped>,
    family: String,
    album: String,
    path: PathBuf,
    caption: String,
) -> Res<String> {
    crate::dropped::require(&dropped, &path, d.language())?;
    d.add_photo(&family, &album, &path, &caption).await
}

#[derive(Deserialize)]
pub struct PhotoArgs {
    family: String,
    album: String,
    caption: String,
}

/// A photo from the file picker: its bytes as the raw body (see `raw.rs`).
#[tauri::command(rename_all = "snake_case")]
pub async fn add_photo_bytes(d: Dev<'_>, request: Request<'_>) -> Res<String> {
    let (a, bytes): (PhotoArgs, _) = crate::raw::split(&request, d.language())?;
    d.add_photo_bytes(&a.family, &a.album, bytes, &a.caption)
        .await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn delete_photo(d: Dev<'_>, family: String, photo: String) -> Res<()> {
    d.delete_photo(&family, &photo).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn like_photo(d: Dev<'_>, family: String, photo: String, liked: bool) -> Res<()> {
    d.like_photo(&family, &photo, liked).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn add_comment(d: Dev<'_>, family: String, photo: String, text: String) -> Res<String> {
    d.add_comment(&family, &photo, &text).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn delete_comment(d: Dev<'_>, family: String, photo: String, comment: String) -> Res<()> {
    d.delete_comment(&family, &photo, &comment).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn photo_file(
    d: Dev<'_>,
    family: String,
    photo: String,
    thumbnail: bool,
) -> Res<Option<PathBuf>> {
    d.photo_file(&family, &photo, thumbnail).await
}
