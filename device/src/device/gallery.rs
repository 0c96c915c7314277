//! The photo gallery: albums, the photo grid in pages, the photo viewer, adding photos
//! (prepared on this device), likes and comments, and the photos' bytes as files.

use std::path::{Path, PathBuf};

use doran_client_core::{
    PhotoInput,
    seal::BlobRef,
    store::BlobOwner,
    validate::{self, Field},
    views::{self, AlbumCard, PhotoDetail, PhotoPage},
};
use doran_protocol::BlobHash;

use super::Device;
use crate::{
    error::{Error, ErrorCode, Result},
    events::{DeviceEvent, Part},
    media_check::{self, Expect},
    sync_error::SyncError,
};

/// The largest photo file the app reads (a 100-megapixel JPEG is ~50 MB).
pub const MAX_PHOTO_FILE_BYTES: u64 = 64 * 1024 * 1024;

impl Device {
    /// The albums, newest first (then the recovered photos, if any).
    pub async fn albums(&self, family: &str) -> Result<Vec<AlbumCard>> {
        let (_, view) = self.family_view(family).await?;
        Ok(views::albums(&view, self.language()))
    }

    /// Page `page` (from 0, 14 photos each) of an album's grid, newest first.
    pub async fn photos(&self, family: &str, album: &str, page: usize) -> Result<PhotoPage> {
        let (_, view) = self.family_view(family).await?;
        Ok(views::photo_page(&view, album, page))
    }

    /// The photo viewer: the photo, who added it, who liked it, the comments.
    pub async fn photo(&self, family: &str, photo: &str) -> Result<PhotoDetail> {
        let (_, view) = self.family_view(family).await?;
        let me = self.me()?.to_hex();
        let lang = self.language();
        views::photo_detail(&view, photo, &me, lang).ok_or_else(|| {
            Error::from_doc(
                &doran_client_core::DocError::NotFound {
                    kind: "photo",
                    id: photo.to_owned(),
                },
                lang,
            )
        })
    }

    /// Creates an album. Returns its id.
    pub async fn create_album(&self, family: &str, name: &str) -> Result<String> {
        let name = name.to_owned();
        self.edit(family, Part::Gallery, move |fd, now| {
            fd.create_album(&name, now)
        })
        .await
    }

    /// Renames an album.
    pub async fn rename_album(&self, family: &str, album: &str, name: &str) -> Result<()> {
        let (album, name) = (album.to_owned(), name.to_owned());
        self.edit(family, Part::Gallery, move |fd, now| {
            fd.rename_album(&album, &name, now)
        })
        .await
    }

    /// Chooses an album's cover among its photos.
    pub async fn set_album_cover(&self, family: &str, album: &str, photo: &str) -> Result<()> {
        let (album, photo) = (album.to_owned(), photo.to_owned());
        self.edit(family, Part::Gallery, move |fd, now| {
            fd.set_album_cover(&album, &photo, now)
        })
        .await
    }

    /// Deletes an album with its photos, likes and comments.
    pub async fn delete_album(&self, family: &str, album: &str) -> Result<()> {
        let album = album.to_owned();
        self.edit(family, Part::Gallery, move |fd, now| {
            fd.delete_album(&album, now)
        })
        .await
    }

    /// Adds the photo in the file at `path` to an album: see
    /// [`add_photo_bytes`](Self::add_photo_bytes).
    pub async fn add_photo(
        &self,
        family: &str,
        album: &str,
        path: &Path,
        caption: &str,
    ) -> Result<String> {
        let bytes = self.read_file(path, MAX_PHOTO_FILE_BYTES).await?;
        self.add_photo_bytes(family, album, bytes, caption).await
    }

    /// Adds a photo (JPEG, PNG, WebP or GIF) to an album. It is prepared on this device
    /// — turned upright, a display copy ≤ 1920 px and ≈ 0.9 MB and a thumbnail, with no
    /// location or other metadata — kept as blobs queued for upload, and added to the
    /// family. Returns the photo's id. Works offline.
    pub async fn add_photo_bytes(
        &self,
        family: &str,
        album: &str,
        original: Vec<u8>,
        caption: &str,
    ) -> Result<String> {
        let id = self.member_family(family).await?;
        let lang = self.language();
        // Checked before the photo is prepared, so a refused edit leaves no blobs.
        let caption = validate::text(Field::PhotoCaption, caption, validate::PHOTO_CAPTION)
            .map_err(|e| Error::from_doc(&e, lang))?;
        let (_, view) = self.edit_view(family).await?;
        if !view.albums.contains_key(album) {
            return Err(Error::from_doc(
                &doran_client_core::DocError::NotFound {
                    kind: "album",
                    id: album.to_owned(),
                },
                lang,
            ));
        }
        let session = self.session()?;
        let blobs = session.blobs.clone();
        let input = self
            .blocking(move |lang| {
                let prepared =
                    crate::photo::prepare(&original).map_err(|e| Error::from_photo(&e, lang))?;
                let owner = BlobOwner::Family(id);
                let add = |bytes: &[u8]| {
                    blobs
                        .add_local(bytes, prepared.mime, owner)
                        .map_err(|e| Error::from_sync(&e, lang))
                };
                Ok(PhotoInput {
                    blob: add(&prepared.display)?,
                    thumb: add(&prepared.thumb)?,
                    mime: prepared.mime.to_owned(),
                    size: prepared.display.len() as u64,
                    width: prepared.width,
                    height: prepared.height,
                    taken_at: prepared.taken_at,
                    caption,
                })
            })
            .await?;
        let album = album.to_owned();
        let photo = self
            .edit(family, Part::Gallery, move |fd, now| {
                fd.add_photo(&album, input.clone(), now)
            })
            .await?;
        session.upload_kick.notify_one();
        Ok(photo)
    }

    /// Deletes a photo (its uploader, or the host) with its likes and comments.
    pub async fn delete_photo(&self, family: &str, photo: &str) -> Result<()> {
        let photo = photo.to_owned();
        self.edit(family, Part::Gallery, move |fd, now| {
            fd.delete_photo(&photo, now)
        })
        .await
    }

    /// Likes (`true`) or unlikes a photo.
    pub async fn like_photo(&self, family: &str, photo: &str, liked: bool) -> Result<()> {
        let photo = photo.to_owned();
        self.edit(family, Part::Gallery, move |fd, now| {
            fd.set_like(&photo, liked, now)
        })
        .await
    }

    /// Comments on a photo. Returns the comment's id.
    pub async fn add_comment(&self, family: &str, photo: &str, text: &str) -> Result<String> {
        let (photo, text) = (photo.to_owned(), text.to_owned());
        self.edit(family, Part::Gallery, move |fd, now| {
            fd.add_comment(&photo, &text, now)
        })
        .await
    }

    /// Deletes one of the user's own comments (the host may delete any).
    pub async fn delete_comment(&self, family: &str, photo: &str, comment: &str) -> Result<()> {
        let (photo, comment) = (photo.to_owned(), comment.to_owned());
        self.edit(family, Part::Gallery, move |fd, now| {
            fd.delete_comment(&photo, &comment, now)
        })
        .await
    }

    /// The photo's display copy (or its thumbnail) as a file on this device, if its
    /// bytes are here. If not, they are fetched in the background and
    /// [`DeviceEvent::BlobArrived`] says when (show a placeholder until then).
    pub async fn photo_file(
        &self,
        family: &str,
        photo: &str,
        thumbnail: bool,
    ) -> Result<Option<PathBuf>> {
        let (blob, kind) = self.photo_blob(family, photo, thumbnail).await?;
        self.cached_blob_or_fetch(blob, kind).await
    }

    /// The photo's display copy (or thumbnail) as a file, downloading it now if needed.
    pub async fn fetch_photo(&self, family: &str, photo: &str, thumbnail: bool) -> Result<PathBuf> {
        let (blob, kind) = self.photo_blob(family, photo, thumbnail).await?;
        self.fetch_blob(blob, kind).await
    }

    async fn photo_blob(
        &self,
        family: &str,
        photo: &str,
        thumbnail: bool,
    ) -> Result<(BlobRef, Expect)> {
        let (_, view) = self.family_view(family).await?;
        let lang = self.language();
        let entry = view.photos.get(photo).ok_or_else(|| {
            Error::from_doc(
                &doran_client_core::DocError::NotFound {
                    kind: "photo",
                    id: photo.to_owned(),
                },
                lang,
            )
        })?;
        let (blob, kind) = if thumbnail {
            (entry.thumbnail(), Expect::Thumbnail)
        } else {
            (entry.display(), Expect::Photo)
        };
        let blob = blob.ok_or_else(|| Error::code(ErrorCode::Storage, lang))?;
        Ok((blob, kind))
    }

    /// The path of a cached blob; else `None`, fetching it in the background (a
    /// [`DeviceEvent::BlobArrived`] follows).
    pub(crate) async fn cached_blob_or_fetch(
        &self,
        blob: BlobRef,
        kind: Expect,
    ) -> Result<Option<PathBuf>> {
        let blobs = self.session()?.blobs.clone();
        let cached = self
            .blocking(move |lang| {
                blobs
                    .is_cached(blob)
                    .map_err(|e| Error::from_sync(&e, lang))
            })
            .await?;
        let hash = blob.hash;
        if cached {
            let path = self.session()?.blobs.path(hash);
            return self.checked(hash, path, kind).await.map(Some);
        }
        // Bytes that did not open with this key: a placeholder now, not a download
        // on every look.
        if self.session()?.blobs.refused_before(blob).is_some() {
            return Err(Error::code(kind.refusal(), self.language()));
        }
        let device = self.clone();
        tokio::spawn(async move {
            if let Err(e) = device.fetch_blob(blob, kind).await {
                tracing::debug!(%hash, error = %e, "background fetch failed; the next view asks again");
            }
        });
        Ok(None)
    }

    /// The path of a blob's verified bytes, downloading them if they are not here
    /// (and announcing [`DeviceEvent::BlobArrived`] when they were downloaded).
    pub(crate) async fn fetch_blob(&self, blob: BlobRef, kind: Expect) -> Result<PathBuf> {
        let session = self.session()?;
        let lang = self.language();
        let blobs = session.blobs.clone();
        let hash = blob.hash;
        let was_cached = self
            .blocking(move |lang| {
                blobs
                    .is_cached(blob)
                    .map_err(|e| Error::from_sync(&e, lang))
            })
            .await?;
        if !was_cached {
            if session.blobs.refused_before(blob).is_some() {
                return Err(Error::code(kind.refusal(), lang));
            }
            self.connected(super::sync::REQUEST_TIMEOUT).await?;
        }
        let path = match session
            .blobs
            .fetch(session.driver.blobs(), blob, kind.mime(), kind.max_bytes())
            .await
        {
            Ok(path) => path,
            // Bytes the entry's key does not open are not what it says, like a file
            // that is not a JPEG: a placeholder, never the bytes.
            Err(SyncError::Sealed(why)) => {
                tracing::warn!(%hash, ?kind, %why, "a blob does not open with its entry's key: not shown");
                return Err(Error::code(kind.refusal(), lang));
            }
            Err(e) => return Err(Error::from_sync(&e, lang)),
        };
        let path = self.checked(hash, path, kind).await?;
        if !was_cached {
            self.shared().emit(DeviceEvent::BlobArrived {
                hash: hash.to_hex(),
            });
        }
        Ok(path)
    }

    /// `path` if the blob there is what its entry says (see `media_check`), else
    /// `BadPhoto` / `BadAudio`: a screen shows a placeholder, never the file.
    async fn checked(&self, hash: BlobHash, path: PathBuf, kind: Expect) -> Result<PathBuf> {
        let file = path.clone();
        let verdict = crate::task::spawn_blocking(move || media_check::check_file(&file, kind))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "checking a blob failed");
                Error::code(ErrorCode::Storage, self.language())
            })?;
        match verdict {
            Ok(()) => Ok(path),
            Err(why) => {
                tracing::warn!(%hash, ?kind, %why, "a blob is not what its entry says: not shown");
                Err(Error::code(kind.refusal(), self.language()))
            }
        }
    }

    /// Reads a file the user picked, refusing one larger than `max` before reading it.
    pub(crate) async fn read_file(&self, path: &Path, max: u64) -> Result<Vec<u8>> {
        let path = path.to_owned();
        self.blocking(move |lang| {
            let len = std::fs::metadata(&path)
                .map_err(|e| Error::from_io(&e, lang))?
                .len();
            if len > max {
                return Err(Error::code(ErrorCode::TooLarge, lang));
            }
            std::fs::read(&path).map_err(|e| Error::from_io(&e, lang))
        })
        .await
    }
}
