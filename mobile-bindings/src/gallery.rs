//! The photo gallery: albums, the photo grid in pages, the photo viewer, adding photos
//! from files (prepared on the device), likes and comments, and photos as files.

use std::path::Path;

use doran_device::core::views;

use crate::{device::Device, error::Result, families::count};

/// A photo as grids and sliders show it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PhotoRef {
    /// Photo id.
    pub id: String,
    /// Album id.
    pub album_id: String,
    /// Thumbnail blob (hex): [`BlobArrived`](crate::DeviceEvent::BlobArrived) names it.
    pub thumb: String,
    /// Display copy blob (hex).
    pub blob: String,
    /// Uploader.
    pub by: String,
    /// Added (Unix ms).
    pub at: i64,
}

impl From<views::PhotoRef> for PhotoRef {
    fn from(p: views::PhotoRef) -> Self {
        PhotoRef {
            id: p.id,
            album_id: p.album_id,
            thumb: p.thumb,
            blob: p.blob,
            by: p.by,
            at: p.at,
        }
    }
}

/// An album in the gallery list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AlbumCard {
    /// Album id (`recovered` for photos whose album was deleted meanwhile).
    pub id: String,
    /// Name.
    pub name: String,
    /// Number of photos.
    pub count: u64,
    /// The cover photo: the chosen one, else the newest.
    pub cover: Option<PhotoRef>,
    /// Created (Unix ms); newest albums first.
    pub created_at: i64,
}

/// One page of an album's grid (infinite scroll asks for the next while `has_more`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PhotoPage {
    /// The album.
    pub album: String,
    /// The page (from 0).
    pub page: u32,
    /// Its photos, newest first, at most 14.
    pub photos: Vec<PhotoRef>,
    /// Photos in the album in all.
    pub total: u64,
    /// Whether a later page has photos.
    pub has_more: bool,
}

/// Someone who liked a photo.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Liker {
    /// User id.
    pub user: String,
    /// Their 호칭.
    pub name: String,
    /// When (Unix ms).
    pub at: i64,
}

/// A comment under a photo.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CommentView {
    /// Comment id.
    pub id: String,
    /// Author.
    pub by: String,
    /// The author's 호칭.
    pub by_name: String,
    /// Written (Unix ms).
    pub at: i64,
    /// The text.
    pub text: String,
    /// Whether the viewer wrote it (they may delete it).
    pub mine: bool,
}

/// The photo viewer: the photo, who added it, likes and comments.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PhotoDetail {
    /// The photo.
    pub photo: PhotoRef,
    /// The uploader's 호칭.
    pub by_name: String,
    /// Caption.
    pub caption: String,
    /// Display copy width in pixels.
    pub width: u32,
    /// Display copy height in pixels.
    pub height: u32,
    /// When it was taken, if the camera said (Unix ms).
    pub taken_at: Option<i64>,
    /// Whether the viewer liked it.
    pub liked: bool,
    /// Everyone who liked it, first like first.
    pub likers: Vec<Liker>,
    /// Comments, oldest first.
    pub comments: Vec<CommentView>,
    /// Whether the viewer may delete the photo.
    pub deletable: bool,
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// The albums, newest first (then the recovered photos, if any).
    pub async fn albums(&self, family: String) -> Result<Vec<AlbumCard>> {
        Ok(self
            .inner
            .albums(&family)
            .await?
            .into_iter()
            .map(|a| AlbumCard {
                id: a.id,
                name: a.name,
                count: count(a.count),
                cover: a.cover.map(Into::into),
                created_at: a.created_at,
            })
            .collect())
    }

    /// Page `page` (from 0, 14 photos each) of an album's grid, newest first.
    pub async fn photos(&self, family: String, album: String, page: u32) -> Result<PhotoPage> {
        let p = self.inner.photos(&family, &album, page as usize).await?;
        Ok(PhotoPage {
            album: p.album,
            page,
            photos: p.photos.into_iter().map(Into::into).collect(),
            total: count(p.total),
            has_more: p.has_more,
        })
    }

    /// The photo viewer: the photo, who added it, who liked it, the comments.
    pub async fn photo(&self, family: String, photo: String) -> Result<PhotoDetail> {
        let d = self.inner.photo(&family, &photo).await?;
        Ok(PhotoDetail {
            photo: d.photo.into(),
            by_name: d.by_name,
            caption: d.caption,
            width: d.width,
            height: d.height,
            taken_at: d.taken_at,
            liked: d.liked,
            likers: d
                .likers
                .into_iter()
                .map(|l| Liker {
                    user: l.user,
                    name: l.name,
                    at: l.at,
                })
                .collect(),
            comments: d
                .comments
                .into_iter()
                .map(|c| CommentView {
                    id: c.id,
                    by: c.by,
                    by_name: c.by_name,
                    at: c.at,
                    text: c.text,
                    mine: c.mine,
                })
                .collect(),
            deletable: d.deletable,
        })
    }

    /// Creates an album. Returns its id.
    pub async fn create_album(&self, family: String, name: String) -> Result<String> {
        Ok(self.inner.create_album(&family, &name).await?)
    }

    /// Renames an album.
    pub async fn rename_album(&self, family: String, album: String, name: String) -> Result<()> {
        Ok(self.inner.rename_album(&family, &album, &name).await?)
    }

    /// Chooses an album's cover among its photos.
    pub async fn set_album_cover(
        &self,
        family: String,
        album: String,
        photo: String,
    ) -> Result<()> {
        Ok(self.inner.set_album_cover(&family, &album, &photo).await?)
    }

    /// Deletes an album with its photos, likes and comments.
    pub async fn delete_album(&self, family: String, album: String) -> Result<()> {
        Ok(self.inner.delete_album(&family, &album).await?)
    }

    /// Adds the photo in the file at `path` (JPEG, PNG, WebP or GIF: what the photo
    /// picker or the camera wrote) to an album. It is prepared on the device — turned
    /// upright, a display copy ≤ 1920 px and ≈ 0.9 MB and a thumbnail, with no location
    /// or other metadata — and queued for upload. Returns the photo's id. Works offline.
    pub async fn add_photo(
        &self,
        family: String,
        album: String,
        path: String,
        caption: String,
    ) -> Result<String> {
        Ok(self
            .inner
            .add_photo(&family, &album, Path::new(&path), &caption)
            .await?)
    }

    /// Deletes a photo (its uploader, or the host) with its likes and comments.
    pub async fn delete_photo(&self, family: String, photo: String) -> Result<()> {
        Ok(self.inner.delete_photo(&family, &photo).await?)
    }

    /// Likes (`true`) or unlikes a photo.
    pub async fn like_photo(&self, family: String, photo: String, liked: bool) -> Result<()> {
        Ok(self.inner.like_photo(&family, &photo, liked).await?)
    }

    /// Comments on a photo. Returns the comment's id.
    pub async fn add_comment(&self, family: String, photo: String, text: String) -> Result<String> {
        Ok(self.inner.add_comment(&family, &photo, &text).await?)
    }

    /// Deletes one of the user's own comments (the host may delete any).
    pub async fn delete_comment(
        &self,
        family: String,
        photo: String,
        comment: String,
    ) -> Result<()> {
        Ok(self.inner.delete_comment(&family, &photo, &comment).await?)
    }

    /// The photo's display copy (or its thumbnail) as a file path on this device, if
    /// its bytes are here. If not (`None`), they are fetched in the background and a
    /// [`BlobArrived`](crate::DeviceEvent::BlobArrived) event says when: show a
    /// placeholder until then. For grids.
    pub async fn photo_file(
        &self,
        family: String,
        photo: String,
        thumbnail: bool,
    ) -> Result<Option<String>> {
        Ok(self
            .inner
            .photo_file(&family, &photo, thumbnail)
            .await?
            .map(|p| p.display().to_string()))
    }

    /// The photo's display copy (or thumbnail) as a file path, downloading it now if
    /// needed. For the viewer and for sharing.
    pub async fn fetch_photo(
        &self,
        family: String,
        photo: String,
        thumbnail: bool,
    ) -> Result<String> {
        Ok(self
            .inner
            .fetch_photo(&family, &photo, thumbnail)
            .await?
            .display()
            .to_string())
    }
}
