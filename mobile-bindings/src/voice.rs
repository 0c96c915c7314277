//! The voice message box: albums with their covers, message cards, adding a recording
//! in the platform's own format (converted to MP3 on the device), and the MP3 as a
//! file.

use std::path::Path;

use crate::{device::Device, error::Result, families::count};

/// A voice album in the list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VoiceAlbumCard {
    /// Album id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Which of the built-in covers (1–4).
    pub cover: u8,
    /// Messages in it.
    pub count: u64,
    /// Created (Unix ms).
    pub created_at: i64,
    /// The newest message's time (ms), if any.
    pub latest_at: Option<i64>,
}

/// A voice message card.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VoiceCard {
    /// Message id.
    pub id: String,
    /// Its album.
    pub album_id: String,
    /// Title.
    pub title: String,
    /// Sender.
    pub by: String,
    /// The sender's 호칭.
    pub by_name: String,
    /// Sent (Unix ms).
    pub at: i64,
    /// Duration (ms).
    pub duration_ms: u64,
    /// Waveform: peak levels 0–255.
    pub peaks: Vec<u8>,
    /// The MP3 (blake3 hex).
    pub blob: String,
    /// MP3 size in bytes.
    pub size: u64,
}

/// A voice message added: its id and what the conversion measured.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VoiceAdded {
    /// The message.
    pub id: String,
    /// Its duration (ms).
    pub duration_ms: u64,
    /// The MP3's size.
    pub bytes: u64,
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// The voice albums, newest first.
    pub async fn voice_albums(&self, family: String) -> Result<Vec<VoiceAlbumCard>> {
        Ok(self
            .inner
            .voice_albums(&family)
            .await?
            .into_iter()
            .map(|a| VoiceAlbumCard {
                id: a.id,
                name: a.name,
                cover: a.cover,
                count: count(a.count),
                created_at: a.created_at,
                latest_at: a.latest_at,
            })
            .collect())
    }

    /// The messages of a voice album (`None`: every album), newest first.
    pub async fn voices(&self, family: String, album: Option<String>) -> Result<Vec<VoiceCard>> {
        Ok(self
            .inner
            .voices(&family, album.as_deref())
            .await?
            .into_iter()
            .map(|v| VoiceCard {
                id: v.id,
                album_id: v.album_id,
                title: v.title,
                by: v.by,
                by_name: v.by_name,
                at: v.at,
                duration_ms: v.duration_ms,
                peaks: v.peaks,
                blob: v.blob,
                size: v.size,
            })
            .collect())
    }

    /// Creates a voice album with one of the 4 built-in covers (1–4). Returns its id.
    pub async fn create_voice_album(
        &self,
        family: String,
        name: String,
        cover: u8,
    ) -> Result<String> {
        Ok(self.inner.create_voice_album(&family, &name, cover).await?)
    }

    /// Renames a voice album and/or changes its cover (`None` leaves it).
    pub async fn edit_voice_album(
        &self,
        family: String,
        album: String,
        name: Option<String>,
        cover: Option<u8>,
    ) -> Result<()> {
        Ok(self
            .inner
            .edit_voice_album(&family, &album, name.as_deref(), cover)
            .await?)
    }

    /// Deletes a voice album with its messages.
    pub async fn delete_voice_album(&self, family: String, album: String) -> Result<()> {
        Ok(self.inner.delete_voice_album(&family, &album).await?)
    }

    /// Adds the recording in the file at `path`, as the platform's recorder wrote it —
    /// M4A/AAC (iOS `AVAudioRecorder`), Ogg/Opus or WebM/Opus (Android
    /// `MediaRecorder`), WAV or MP3, at most 3 minutes. It is converted to MP3 on the
    /// device, kept and queued for upload. Works offline. The file can be deleted
    /// afterwards.
    pub async fn add_voice(
        &self,
        family: String,
        album: String,
        path: String,
        title: String,
    ) -> Result<VoiceAdded> {
        let v = self
            .inner
            .add_voice(&family, &album, Path::new(&path), &title)
            .await?;
        Ok(VoiceAdded {
            id: v.id,
            duration_ms: v.duration_ms,
            bytes: v.bytes,
        })
    }

    /// Deletes a voice message (its sender, or the host).
    pub async fn delete_voice(&self, family: String, voice: String) -> Result<()> {
        Ok(self.inner.delete_voice(&family, &voice).await?)
    }

    /// A voice message's MP3 as a file path on this device (every platform's player
    /// takes it), downloading it if needed.
    pub async fn voice_file(&self, family: String, voice: String) -> Result<String> {
        Ok(self
            .inner
            .voice_file(&family, &voice)
            .await?
            .display()
            .to_string())
    }
}
