//! The voice message box: albums with their covers, and message cards with duration
//! and waveform.

use serde::Serialize;

use crate::{model::Family, time_util::Lang, views::member_name};

/// A voice album in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoiceAlbumCard {
    /// Album id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Which of the built-in covers (1–4).
    pub cover: u8,
    /// Messages in it.
    pub count: usize,
    /// Created (ms).
    pub created_at: i64,
    /// The newest message's time (ms), if any.
    pub latest_at: Option<i64>,
}

/// A voice message card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// Sent (ms).
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

/// The voice albums, newest first.
pub fn voice_albums(f: &Family) -> Vec<VoiceAlbumCard> {
    let mut cards: Vec<VoiceAlbumCard> = f
        .voice_albums
        .iter()
        .map(|(id, a)| {
            let in_album = f.voices.values().filter(|v| &v.album_id == id);
            VoiceAlbumCard {
                id: id.clone(),
                name: a.name.clone(),
                cover: a.cover,
                count: in_album.clone().count(),
                created_at: a.created_at,
                latest_at: in_album.map(|v| v.at).max(),
            }
        })
        .collect();
    cards.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    cards
}

/// The messages of `album` (every message when `None`), newest first.
pub fn voices(f: &Family, album: Option<&str>, lang: Lang) -> Vec<VoiceCard> {
    let mut cards: Vec<VoiceCard> = f
        .voices
        .iter()
        .filter(|(_, v)| album.is_none_or(|a| v.album_id == a))
        .map(|(id, v)| VoiceCard {
            id: id.clone(),
            album_id: v.album_id.clone(),
            title: v.title.clone(),
            by: v.by.clone(),
            by_name: member_name(f, &v.by, lang),
            at: v.at,
            duration_ms: v.duration_ms,
            peaks: v.peaks.to_vec(),
            blob: v.blob.clone(),
            size: v.size,
        })
        .collect();
    cards.sort_by(|a, b| b.at.cmp(&a.at).then(a.id.cmp(&b.id)));
    cards
}
