//! The voice message box: albums with their covers, message cards, adding a recording
//! (converted to MP3 on this device) and the MP3 as a file.

use std::path::{Path, PathBuf};

use doran_client_core::{
    VoiceInput,
    store::BlobOwner,
    validate::{self, Field},
    views::{self, VoiceAlbumCard, VoiceCard},
};

use super::Device;
use crate::{
    error::{Error, ErrorCode, Result},
    events::Part,
    screens::VoiceAdded,
};

/// The largest recording file the app reads: three minutes of 48 kHz stereo 24-bit WAV
/// is 52 MB; compressed recordings are far smaller.
pub const MAX_RECORDING_BYTES: u64 = 64 * 1024 * 1024;

impl Device {
    /// The voice albums, newest first.
    pub async fn voice_albums(&self, family: &str) -> Result<Vec<VoiceAlbumCard>> {
        let (_, view) = self.family_view(family).await?;
        Ok(views::voice_albums(&view))
    }

    /// The messages of a voice album (`None`: every album), newest first.
    pub async fn voices(&self, family: &str, album: Option<&str>) -> Result<Vec<VoiceCard>> {
        let (_, view) = self.family_view(family).await?;
        Ok(views::voices(&view, album, self.language()))
    }

    /// Creates a voice album with one of the 4 built-in covers. Returns its id.
    pub async fn create_voice_album(&self, family: &str, name: &str, cover: u8) -> Result<String> {
        let name = name.to_owned();
        self.edit(family, Part::Voice, move |fd, now| {
            fd.create_voice_album(&name, cover, now)
        })
        .await
    }

    /// Renames a voice album and/or changes its cover.
    pub async fn edit_voice_album(
        &self,
        family: &str,
        album: &str,
        name: Option<&str>,
        cover: Option<u8>,
    ) -> Result<()> {
        let (album, name) = (album.to_owned(), name.map(str::to_owned));
        self.edit(family, Part::Voice, move |fd, now| {
            fd.edit_voice_album(&album, name.as_deref(), cover, now)
        })
        .await
    }

    /// Deletes a voice album with its messages.
    pub async fn delete_voice_album(&self, family: &str, album: &str) -> Result<()> {
        let album = album.to_owned();
        self.edit(family, Part::Voice, move |fd, now| {
            fd.delete_voice_album(&album, now)
        })
        .await
    }

    /// Adds the recording in the file at `path`: see
    /// [`add_voice_bytes`](Self::add_voice_bytes). The size is checked before the file
    /// is read, and it is converted as it is read.
    pub async fn add_voice(
        &self,
        family: &str,
        album: &str,
        path: &Path,
        title: &str,
    ) -> Result<VoiceAdded> {
        let path = path.to_owned();
        let input = self
            .blocking(move |lang| {
                let file = std::fs::File::open(&path).map_err(|e| Error::from_io(&e, lang))?;
                let len = file.metadata().map_err(|e| Error::from_io(&e, lang))?.len();
                if len > MAX_RECORDING_BYTES {
                    return Err(Error::code(ErrorCode::TooLarge, lang));
                }
                Ok(std::io::BufReader::new(file))
            })
            .await?;
        self.add_voice_from(family, album, title, Recording::File(input))
            .await
    }

    /// Adds a voice message: the recording (WebM/Opus, Ogg/Opus, M4A/AAC, WAV or MP3, at
    /// most 3 minutes) is converted to MP3 on this device, kept as a blob queued for
    /// upload, and added with its duration and waveform. Works offline.
    pub async fn add_voice_bytes(
        &self,
        family: &str,
        album: &str,
        recording: Vec<u8>,
        title: &str,
    ) -> Result<VoiceAdded> {
        if recording.len() as u64 > MAX_RECORDING_BYTES {
            return Err(Error::code(ErrorCode::TooLarge, self.language()));
        }
        self.add_voice_from(family, album, title, Recording::Bytes(recording))
            .await
    }

    async fn add_voice_from(
        &self,
        family: &str,
        album: &str,
        title: &str,
        recording: Recording,
    ) -> Result<VoiceAdded> {
        let id = self.member_family(family).await?;
        let lang = self.language();
        let title = validate::text(Field::VoiceTitle, title, validate::VOICE_TITLE)
            .map_err(|e| Error::from_doc(&e, lang))?;
        let (_, view) = self.family_view(family).await?;
        if !view.voice_albums.contains_key(album) {
            return Err(Error::from_doc(
                &doran_client_core::DocError::NotFound {
                    kind: "voice album",
                    id: album.to_owned(),
                },
                lang,
            ));
        }
        let session = self.session()?;
        let blobs = session.blobs.clone();
        let artist = self
            .account()
            .await?
            .map(|a| a.nickname)
            .filter(|n| !n.is_empty());
        let voice_title = title.clone();
        let (input, bytes) = self
            .blocking(move |lang| {
                let opts = doran_audio::ConvertOptions {
                    title: Some(voice_title.clone()),
                    artist,
                    ..Default::default()
                };
                let mut mp3 = std::io::Cursor::new(Vec::new());
                let converted = match recording {
                    Recording::File(file) => doran_audio::convert(file, &mut mp3, &opts),
                    Recording::Bytes(bytes) => {
                        doran_audio::convert(std::io::Cursor::new(bytes), &mut mp3, &opts)
                    }
                }
                .map_err(|e| Error::from_audio(&e, lang))?;
                let mp3 = mp3.into_inner();
                let blob = blobs
                    .add_local(&mp3, "audio/mpeg", BlobOwner::Family(id))
                    .map_err(|e| Error::from_sync(&e, lang))?;
                Ok((
                    VoiceInput {
                        title: voice_title,
                        blob,
                        size: mp3.len() as u64,
                        duration_ms: converted.duration_ms,
                        peaks: converted.peaks,
                    },
                    mp3.len() as u64,
                ))
            })
            .await?;
        let duration_ms = input.duration_ms;
        let album = album.to_owned();
        let voice = self
            .edit(family, Part::Voice, move |fd, now| {
                fd.add_voice(&album, input, now)
            })
            .await?;
        session.upload_kick.notify_one();
        Ok(VoiceAdded {
            id: voice,
            duration_ms,
            bytes,
        })
    }

    /// Deletes a voice message (its sender, or the host).
    pub async fn delete_voice(&self, family: &str, voice: &str) -> Result<()> {
        let voice = voice.to_owned();
        self.edit(family, Part::Voice, move |fd, now| {
            fd.delete_voice(&voice, now)
        })
        .await
    }

    /// A voice message's MP3 as a file on this device, downloading it if needed.
    pub async fn voice_file(&self, family: &str, voice: &str) -> Result<PathBuf> {
        let (_, view) = self.family_view(family).await?;
        let lang = self.language();
        let entry = view.voices.get(voice).ok_or_else(|| {
            Error::from_doc(
                &doran_client_core::DocError::NotFound {
                    kind: "voice message",
                    id: voice.to_owned(),
                },
                lang,
            )
        })?;
        let hash = entry
            .blob
            .parse()
            .map_err(|_| Error::code(ErrorCode::Storage, lang))?;
        self.fetch_blob(hash, "audio/mpeg".to_owned()).await
    }
}

/// A recording to convert: an open file (read as it converts) or bytes in memory.
enum Recording {
    File(std::io::BufReader<std::fs::File>),
    Bytes(Vec<u8>),
}
