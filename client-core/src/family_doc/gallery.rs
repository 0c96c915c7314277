//! Photo albums, photos, likes and comments.

use std::collections::BTreeMap;

use automerge::{ROOT, transaction::Transactable};

use super::{
    Edit, FamilyDoc, count, delete_entity, entity, map_at, new_id, not_found, put_entity,
    put_field, volumes::hide_record,
};
use crate::{
    error::{DocError, Result},
    model::{Album, Comment, Photo},
    replica::Touched,
    seal::BlobRef,
    validate::{self, Field},
};

/// A photo prepared on the device (display copy and thumbnail already made and queued
/// for upload).
#[derive(Debug, Clone)]
pub struct PhotoInput {
    /// The display copy (sealed: see `crate::seal`).
    pub blob: BlobRef,
    /// The thumbnail.
    pub thumb: BlobRef,
    /// MIME type of the display copy, e.g. `image/jpeg`.
    pub mime: String,
    /// Size of the display copy in bytes.
    pub size: u64,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
    /// When it was taken (ms), if known.
    pub taken_at: Option<i64>,
    /// Caption, up to 200 characters.
    pub caption: String,
}

impl FamilyDoc {
    /// Creates a photo album. Returns its id.
    pub fn create_album(&mut self, name: &str, now_ms: i64) -> Result<Edit<String>> {
        self.require_member()?;
        let album = Album {
            name: validate::text(Field::AlbumName, name, validate::ALBUM_NAME)?,
            created_by: self.me.to_hex(),
            created_at: now_ms,
            cover: None,
        };
        let id = new_id();
        self.edit("album.create", now_ms, &[entity("albums", &id)], |doc| {
            put_entity(doc, "albums", &id, &album)?;
            Ok(id.clone())
        })
    }

    /// Renames an album.
    pub fn rename_album(&mut self, id: &str, name: &str, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        self.album(id)?;
        let name = validate::text(Field::AlbumName, name, validate::ALBUM_NAME)?;
        let id = id.to_owned();
        self.edit("album.rename", now_ms, &[entity("albums", &id)], |doc| {
            put_field(doc, "albums", &id, "name", &name)
        })
    }

    /// Sets an album's cover to one of its photos.
    pub fn set_album_cover(&mut self, id: &str, photo: &str, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        self.album(id)?;
        if self.view.photos.get(photo).map(|p| p.album_id.as_str()) != Some(id) {
            return Err(not_found("photo in this album", photo));
        }
        let cover = Some(photo.to_owned());
        let id = id.to_owned();
        self.edit("album.cover", now_ms, &[entity("albums", &id)], |doc| {
            put_field(doc, "albums", &id, "cover", &cover)
        })
    }

    /// Deletes an album with its photos (and so their likes and comments). The album's
    /// creator or the host may do this.
    pub fn delete_album(&mut self, id: &str, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let album = self.album(id)?;
        if album.created_by != self.me.to_hex() && !self.is_host() {
            return Err(DocError::Forbidden(
                "only its creator or the host may delete an album",
            ));
        }
        let photos: Vec<String> = self
            .view
            .photos
            .iter()
            // Those kept in volumes stay there, hidden by the record below.
            .filter(|(k, p)| p.album_id == id && self.kept_in_core("photos", k))
            .map(|(k, _)| k.clone())
            .collect();
        let id = id.to_owned();
        let mut touched: Vec<_> = photos.iter().map(|p| entity("photos", p)).collect();
        touched.push(entity("albums", &id));
        // The record that hides the album's photos kept in volumes.
        let added = self.view.photos.values().filter(|e| e.album_id == id);
        let (hide, when) = hide_record("albums", &id, added.map(|e| e.at), now_ms);
        touched.push(Touched::Root(hide.clone()));
        self.edit("album.delete", now_ms, &touched, |doc| {
            for p in &photos {
                delete_entity(doc, "photos", p)?;
            }
            delete_entity(doc, "albums", &id)?;
            doc.put(ROOT, hide.as_str(), when)?;
            Ok(())
        })
    }

    /// Adds a photo to an album. Returns its id.
    pub fn add_photo(
        &mut self,
        album: &str,
        input: PhotoInput,
        now_ms: i64,
    ) -> Result<Edit<String>> {
        self.require_member()?;
        self.album(album)?;
        check_photo_meta(&input)?;
        let photo = Photo {
            album_id: album.to_owned(),
            blob: input.blob.hash.to_hex(),
            thumb: input.thumb.hash.to_hex(),
            blob_key: input.blob.key,
            thumb_key: input.thumb.key,
            mime: input.mime,
            size: input.size,
            width: input.width,
            height: input.height,
            taken_at: input.taken_at,
            by: self.me.to_hex(),
            at: now_ms,
            caption: validate::text(Field::PhotoCaption, &input.caption, validate::PHOTO_CAPTION)?,
            likes: BTreeMap::new(),
            comments: BTreeMap::new(),
        };
        let id = new_id();
        let touched = [entity("photos", &id), self.counted("photos")];
        self.edit("photo.add", now_ms, &touched, |doc| {
            put_entity(doc, "photos", &id, &photo)?;
            count(doc, "photos")?;
            Ok(id.clone())
        })
    }

    /// Deletes a photo with its likes and comments (its uploader or the host).
    pub fn delete_photo(&mut self, id: &str, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let photo = self.photo(id)?;
        if photo.by != self.me.to_hex() && !self.is_host() {
            return Err(DocError::Forbidden(
                "only its uploader or the host may delete a photo",
            ));
        }
        let id = id.to_owned();
        self.edit("photo.delete", now_ms, &[entity("photos", &id)], |doc| {
            delete_entity(doc, "photos", &id)
        })
    }

    /// Likes (`true`) or unlikes my like of a photo. Liking twice changes nothing.
    pub fn set_like(&mut self, photo: &str, liked: bool, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let me = self.me.to_hex();
        if self.photo(photo)?.likes.contains_key(&me) == liked {
            return Ok(Edit::unchanged(()));
        }
        let photo = photo.to_owned();
        let what = if liked { "photo.like" } else { "photo.unlike" };
        self.edit(what, now_ms, &[entity("photos", &photo)], |doc| {
            let likes = map_at(doc, &["photos", &photo, "likes"])?;
            if liked {
                doc.put(&likes, me.as_str(), now_ms)?;
            } else {
                doc.delete(&likes, me.as_str())?;
            }
            Ok(())
        })
    }

    /// Comments on a photo. Returns the comment's id.
    pub fn add_comment(&mut self, photo: &str, text: &str, now_ms: i64) -> Result<Edit<String>> {
        self.require_member()?;
        self.photo(photo)?;
        let comment = Comment {
            by: self.me.to_hex(),
            at: now_ms,
            text: validate::text(Field::Comment, text, validate::COMMENT)?,
            deleted: false,
        };
        let photo = photo.to_owned();
        let id = new_id();
        self.edit(
            "photo.comment",
            now_ms,
            &[entity("photos", &photo), self.counted("comments")],
            |doc| {
                let comments = map_at(doc, &["photos", &photo, "comments"])?;
                autosurgeon::reconcile_prop(doc, &comments, id.as_str(), &comment)?;
                count(doc, "comments")?;
                Ok(id.clone())
            },
        )
    }

    /// Deletes my own comment (the host may delete any). Leaves a tombstone with the
    /// text removed, so counts and order stay stable on every device.
    pub fn delete_comment(&mut self, photo: &str, comment: &str, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let c = self
            .photo(photo)?
            .comments
            .get(comment)
            .ok_or_else(|| not_found("comment", comment))?;
        if c.deleted {
            return Ok(Edit::unchanged(()));
        }
        if c.by != self.me.to_hex() && !self.is_host() {
            return Err(DocError::Forbidden(
                "only its author or the host may delete a comment",
            ));
        }
        let (photo, comment) = (photo.to_owned(), comment.to_owned());
        self.edit(
            "photo.uncomment",
            now_ms,
            &[entity("photos", &photo)],
            |doc| {
                let c = map_at(doc, &["photos", &photo, "comments", &comment])?;
                doc.put(&c, "deleted", true)?;
                doc.put(&c, "text", "")?;
                Ok(())
            },
        )
    }

    fn album(&self, id: &str) -> Result<&Album> {
        self.view
            .albums
            .get(id)
            .ok_or_else(|| not_found("album", id))
    }

    fn photo(&self, id: &str) -> Result<&Photo> {
        self.view
            .photos
            .get(id)
            .ok_or_else(|| not_found("photo", id))
    }
}

/// Checks what a photo's metadata claims: a known image type, a size, sane dimensions.
fn check_photo_meta(input: &PhotoInput) -> Result<()> {
    let bad = |value: String| DocError::NotAllowed {
        field: Field::PhotoMeta,
        value,
    };
    if !validate::PHOTO_MIME.contains(&input.mime.as_str()) {
        return Err(bad(input.mime.clone()));
    }
    if input.size == 0 {
        return Err(bad("an empty file".into()));
    }
    let side = 1..=validate::PHOTO_MAX_SIDE;
    if !side.contains(&input.width) || !side.contains(&input.height) {
        return Err(bad(format!("{}×{} pixels", input.width, input.height)));
    }
    Ok(())
}
