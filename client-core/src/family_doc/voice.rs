//! Voice albums and voice messages.

use automerge::{ROOT, transaction::Transactable};

use crate::seal::BlobRef;

use super::{
    Edit, FamilyDoc, count, delete_entity, entity, new_id, not_found, put_entity, put_field,
    volumes::hide_record,
};
use crate::{
    error::{DocError, Result},
    model::{Voice, VoiceAlbum},
    replica::Touched,
    validate::{self, Field},
};

/// A recorded message, already converted to MP3 and queued for upload.
#[derive(Debug, Clone)]
pub struct VoiceInput {
    /// Title, 1–10 characters.
    pub title: String,
    /// The MP3 (sealed: see `crate::seal`).
    pub blob: BlobRef,
    /// Its size in bytes.
    pub size: u64,
    /// Duration (ms), at most 3 minutes.
    pub duration_ms: u64,
    /// Waveform peaks (0–255), at most 256 values.
    pub peaks: Vec<u8>,
}

/// Most waveform values a voice message may carry.
pub const MAX_PEAKS: usize = 256;

impl FamilyDoc {
    /// Creates a voice album with one of the 4 built-in covers (1–4). Returns its id.
    pub fn create_voice_album(
        &mut self,
        name: &str,
        cover: u8,
        now_ms: i64,
    ) -> Result<Edit<String>> {
        self.require_member()?;
        let album = VoiceAlbum {
            name: validate::text(Field::VoiceAlbumName, name, validate::VOICE_ALBUM_NAME)?,
            cover: check_cover(cover)?,
            created_by: self.me.to_hex(),
            created_at: now_ms,
        };
        let id = new_id();
        self.edit(
            "voice_album.create",
            now_ms,
            &[entity("voice_albums", &id)],
            |doc| {
                put_entity(doc, "voice_albums", &id, &album)?;
                Ok(id.clone())
            },
        )
    }

    /// Renames a voice album and/or changes its cover.
    pub fn edit_voice_album(
        &mut self,
        id: &str,
        name: Option<&str>,
        cover: Option<u8>,
        now_ms: i64,
    ) -> Result<Edit> {
        self.require_member()?;
        if !self.view.voice_albums.contains_key(id) {
            return Err(not_found("voice album", id));
        }
        let name = name
            .map(|n| validate::text(Field::VoiceAlbumName, n, validate::VOICE_ALBUM_NAME))
            .transpose()?;
        let cover = cover.map(check_cover).transpose()?;
        let id = id.to_owned();
        self.edit(
            "voice_album.edit",
            now_ms,
            &[entity("voice_albums", &id)],
            |doc| {
                if let Some(name) = &name {
                    put_field(doc, "voice_albums", &id, "name", name)?;
                }
                if let Some(cover) = cover {
                    put_field(doc, "voice_albums", &id, "cover", &cover)?;
                }
                Ok(())
            },
        )
    }

    /// Deletes a voice album with its messages (its creator or the host).
    pub fn delete_voice_album(&mut self, id: &str, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let album = self
            .view
            .voice_albums
            .get(id)
            .ok_or_else(|| not_found("voice album", id))?;
        if album.created_by != self.me.to_hex() && !self.is_host() {
            return Err(DocError::Forbidden(
                "only its creator or the host may delete a voice album",
            ));
        }
        let voices: Vec<String> = self
            .view
            .voices
            .iter()
            // Those kept in volumes stay there, hidden by the record below.
            .filter(|(k, v)| v.album_id == id && self.kept_in_core("voices", k))
            .map(|(k, _)| k.clone())
            .collect();
        let id = id.to_owned();
        let mut touched: Vec<_> = voices.iter().map(|v| entity("voices", v)).collect();
        touched.push(entity("voice_albums", &id));
        // The record that hides the album's messages kept in volumes.
        let added = self.view.voices.values().filter(|e| e.album_id == id);
        let (hide, when) = hide_record("voice_albums", &id, added.map(|e| e.at), now_ms);
        touched.push(Touched::Root(hide.clone()));
        self.edit("voice_album.delete", now_ms, &touched, |doc| {
            for v in &voices {
                delete_entity(doc, "voices", v)?;
            }
            delete_entity(doc, "voice_albums", &id)?;
            doc.put(ROOT, hide.as_str(), when)?;
            Ok(())
        })
    }

    /// Adds a voice message to a voice album. Returns its id.
    pub fn add_voice(
        &mut self,
        album: &str,
        input: VoiceInput,
        now_ms: i64,
    ) -> Result<Edit<String>> {
        self.require_member()?;
        if !self.view.voice_albums.contains_key(album) {
            return Err(not_found("voice album", album));
        }
        if input.duration_ms == 0 || input.duration_ms > validate::VOICE_MAX_MS {
            return Err(DocError::NotAllowed {
                field: Field::VoiceDuration,
                value: format!("{} ms (at most 3 minutes)", input.duration_ms),
            });
        }
        if input.size == 0 {
            return Err(DocError::NotAllowed {
                field: Field::VoiceDuration,
                value: "an empty recording".into(),
            });
        }
        let mut peaks = input.peaks;
        peaks.truncate(MAX_PEAKS);
        let voice = Voice {
            album_id: album.to_owned(),
            title: validate::text(Field::VoiceTitle, &input.title, validate::VOICE_TITLE)?,
            blob: input.blob.hash.to_hex(),
            blob_key: input.blob.key,
            size: input.size,
            duration_ms: input.duration_ms,
            peaks: peaks.into(),
            by: self.me.to_hex(),
            at: now_ms,
        };
        let id = new_id();
        let touched = [entity("voices", &id), self.counted("voices")];
        self.edit("voice.add", now_ms, &touched, |doc| {
            put_entity(doc, "voices", &id, &voice)?;
            count(doc, "voices")?;
            Ok(id.clone())
        })
    }

    /// Deletes a voice message (its sender or the host).
    pub fn delete_voice(&mut self, id: &str, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let voice = self
            .view
            .voices
            .get(id)
            .ok_or_else(|| not_found("voice message", id))?;
        if voice.by != self.me.to_hex() && !self.is_host() {
            return Err(DocError::Forbidden(
                "only its sender or the host may delete a voice message",
            ));
        }
        let id = id.to_owned();
        self.edit("voice.delete", now_ms, &[entity("voices", &id)], |doc| {
            delete_entity(doc, "voices", &id)
        })
    }
}

fn check_cover(cover: u8) -> Result<u8> {
    if (1..=validate::VOICE_COVERS).contains(&cover) {
        Ok(cover)
    } else {
        Err(DocError::NotAllowed {
            field: Field::VoiceCover,
            value: cover.to_string(),
        })
    }
}
