//! The voice message box: albums with their covers, message cards, adding a recording
//! (converted to MP3 on this device) and the MP3 as a file.

use std::{
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::Arc,
};

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
        self.add_voice_from(family, album, title, Recording::File(input), None)
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
        self.add_voice_from(family, album, title, Recording::Bytes(recording), None)
            .await
    }

    /// [`add_voice_bytes`](Self::add_voice_bytes), telling `progress` how far the
    /// conversion to MP3 is (0.0–1.0, rising, at most about a hundred calls, from the
    /// blocking pool), so a screen can show it; 1.0 once the message is saved.
    pub async fn add_voice_bytes_with_progress(
        &self,
        family: &str,
        album: &str,
        recording: Vec<u8>,
        title: &str,
        progress: Arc<dyn Fn(f32) + Send + Sync>,
    ) -> Result<VoiceAdded> {
        if recording.len() as u64 > MAX_RECORDING_BYTES {
            return Err(Error::code(ErrorCode::TooLarge, self.language()));
        }
        let added = self
            .add_voice_from(
                family,
                album,
                title,
                Recording::Bytes(recording),
                Some(Arc::clone(&progress)),
            )
            .await?;
        progress(1.0);
        Ok(added)
    }

    async fn add_voice_from(
        &self,
        family: &str,
        album: &str,
        title: &str,
        recording: Recording,
        progress: Option<Arc<dyn Fn(f32) + Send + Sync>>,
    ) -> Result<VoiceAdded> {
        let id = self.member_family(family).await?;
        let lang = self.language();
        let title = validate::text(Field::VoiceTitle, title, validate::VOICE_TITLE)
            .map_err(|e| Error::from_doc(&e, lang))?;
        let (_, view) = self.edit_view(family).await?;
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
                let converted = match (recording, progress) {
                    (Recording::File(file), _) => doran_audio::convert(file, &mut mp3, &opts),
                    (Recording::Bytes(bytes), None) => {
                        doran_audio::convert(std::io::Cursor::new(bytes), &mut mp3, &opts)
                    }
                    (Recording::Bytes(bytes), Some(report)) => doran_audio::convert(
                        ReadProgress::new(std::io::Cursor::new(bytes), report),
                        &mut mp3,
                        &opts,
                    ),
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
                fd.add_voice(&album, input.clone(), now)
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
        let blob = entry
            .audio()
            .ok_or_else(|| Error::code(ErrorCode::Storage, lang))?;
        self.fetch_blob(blob, crate::media_check::Expect::Voice)
            .await
    }
}

/// A recording to convert: an open file (read as it converts) or bytes in memory.
enum Recording {
    File(std::io::BufReader<std::fs::File>),
    Bytes(Vec<u8>),
}

/// A recording in memory that reports how far the converter has read into it: the
/// conversion streams, so the furthest position read is how far it is. Reported in
/// steps of at least 1% (and never the final 1.0, which is for "saved").
struct ReadProgress {
    inner: std::io::Cursor<Vec<u8>>,
    len: u64,
    furthest: u64,
    reported: f32,
    report: Arc<dyn Fn(f32) + Send + Sync>,
}

impl ReadProgress {
    fn new(inner: std::io::Cursor<Vec<u8>>, report: Arc<dyn Fn(f32) + Send + Sync>) -> Self {
        let len = inner.get_ref().len() as u64;
        ReadProgress {
            inner,
            len,
            furthest: 0,
            reported: 0.0,
            report,
        }
    }
}

impl Read for ReadProgress {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let pos = self.inner.position();
        if pos > self.furthest && self.len > 0 {
            self.furthest = pos;
            // Lossy on purpose: a fraction for a progress bar.
            let done = (self.furthest as f64 / self.len as f64) as f32 * 0.99;
            if done - self.reported >= 0.01 {
                self.reported = done;
                (self.report)(done);
            }
        }
        Ok(n)
    }
}

impl Seek for ReadProgress {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}
