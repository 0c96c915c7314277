//! The photo gallery: albums with cover and count, an album's photos in pages, and one
//! photo with its likes and comments.

use serde::Serialize;

use crate::{
    model::Family,
    time_util::Lang,
    views::{PhotoRef, member_name},
};

/// Photos per page of the gallery's infinite scroll (as the original).
pub const PAGE_SIZE: usize = 14;

/// The id of the pseudo-album holding photos whose album was deleted while they were
/// being added on another device: kept, not lost.
pub const RECOVERED_ALBUM: &str = "recovered";

/// An album in the gallery list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlbumCard {
    /// Album id ([`RECOVERED_ALBUM`] for the recovered photos).
    pub id: String,
    /// Name ("복구된 사진" for the recovered photos).
    pub name: String,
    /// Number of photos.
    pub count: usize,
    /// The cover photo: the chosen one, else the newest.
    pub cover: Option<PhotoRef>,
    /// Created (ms); newest albums first.
    pub created_at: i64,
}

/// The albums, newest first, followed by the recovered photos if there are any.
pub fn albums(f: &Family, lang: Lang) -> Vec<AlbumCard> {
    let mut cards: Vec<AlbumCard> = f
        .albums
        .iter()
        .map(|(id, a)| {
            let photos = photos_in(f, id);
            let chosen = a
                .cover
                .as_deref()
                .and_then(|c| photos.iter().find(|p| p.id == c).cloned());
            AlbumCard {
                id: id.clone(),
                name: a.name.clone(),
                count: photos.len(),
                cover: chosen.or_else(|| photos.first().cloned()),
                created_at: a.created_at,
            }
        })
        .collect();
    cards.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    let recovered = photos_in(f, RECOVERED_ALBUM);
    if !recovered.is_empty() {
        cards.push(AlbumCard {
            id: RECOVERED_ALBUM.to_owned(),
            name: lang.pick("복구된 사진", "Recovered photos").to_owned(),
            count: recovered.len(),
            cover: recovered.first().cloned(),
            created_at: 0,
        });
    }
    cards
}

/// Page `page` (from 0) of an album's photos, newest first.
pub fn album_page(f: &Family, album: &str, page: usize) -> Vec<PhotoRef> {
    photos_in(f, album)
        .into_iter()
        .skip(page.saturating_mul(PAGE_SIZE))
        .take(PAGE_SIZE)
        .collect()
}

/// One page of an album's grid (infinite scroll asks for the next while `has_more`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhotoPage {
    /// The album.
    pub album: String,
    /// The page (from 0).
    pub page: usize,
    /// Its photos, newest first, at most [`PAGE_SIZE`].
    pub photos: Vec<PhotoRef>,
    /// Photos in the album in all.
    pub total: usize,
    /// Whether a later page has photos.
    pub has_more: bool,
}

/// Page `page` of `album` with what the grid needs to keep scrolling.
pub fn photo_page(f: &Family, album: &str, page: usize) -> PhotoPage {
    let all = photos_in(f, album);
    let total = all.len();
    let start = page.saturating_mul(PAGE_SIZE);
    PhotoPage {
        album: album.to_owned(),
        page,
        photos: all.into_iter().skip(start).take(PAGE_SIZE).collect(),
        total,
        has_more: start.saturating_add(PAGE_SIZE) < total,
    }
}

/// Someone who liked a photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Liker {
    /// User id.
    pub user: String,
    /// Their 호칭.
    pub name: String,
    /// When (ms).
    pub at: i64,
}

/// A comment under a photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommentView {
    /// Comment id.
    pub id: String,
    /// Author.
    pub by: String,
    /// The author's 호칭.
    pub by_name: String,
    /// Written (ms).
    pub at: i64,
    /// The text.
    pub text: String,
    /// Whether the viewer wrote it (they may delete it).
    pub mine: bool,
}

/// The photo viewer: the photo, who added it, likes and comments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhotoDetail {
    /// The photo.
    pub photo: PhotoRef,
    /// The uploader's 호칭.
    pub by_name: String,
    /// Caption.
    pub caption: String,
    /// Display copy size in pixels.
    pub width: u32,
    /// Display copy height in pixels.
    pub height: u32,
    /// When it was taken, if the camera said (ms).
    pub taken_at: Option<i64>,
    /// Whether the viewer liked it.
    pub liked: bool,
    /// Everyone who liked it, first like first.
    pub likers: Vec<Liker>,
    /// Comments, oldest first (deleted ones are not listed).
    pub comments: Vec<CommentView>,
    /// Whether the viewer may delete the photo (their own; the host any).
    pub deletable: bool,
}

/// The photo `id` as the viewer `me` sees it, or `None` if there is no such photo.
pub fn photo_detail(f: &Family, id: &str, me: &str, lang: Lang) -> Option<PhotoDetail> {
    let p = f.photos.get(id)?;
    let mut likers: Vec<Liker> = p
        .likes
        .iter()
        .map(|(user, at)| Liker {
            user: user.clone(),
            name: member_name(f, user, lang),
            at: *at,
        })
        .collect();
    likers.sort_by(|a, b| a.at.cmp(&b.at).then(a.user.cmp(&b.user)));
    let mut comments: Vec<CommentView> = p
        .comments
        .iter()
        .filter(|(_, c)| !c.deleted)
        .map(|(cid, c)| CommentView {
            id: cid.clone(),
            by: c.by.clone(),
            by_name: member_name(f, &c.by, lang),
            at: c.at,
            text: c.text.clone(),
            mine: c.by == me,
        })
        .collect();
    comments.sort_by(|a, b| a.at.cmp(&b.at).then(a.id.cmp(&b.id)));
    let host = f
        .members
        .get(me)
        .is_some_and(|m| m.role == crate::model::Role::Host);
    Some(PhotoDetail {
        photo: PhotoRef::of(id, p),
        by_name: member_name(f, &p.by, lang),
        caption: p.caption.clone(),
        width: p.width,
        height: p.height,
        taken_at: p.taken_at,
        liked: p.likes.contains_key(me),
        likers,
        comments,
        deletable: p.by == me || host,
    })
}

/// An album's photos, newest first. For [`RECOVERED_ALBUM`], the photos whose album no
/// longer exists.
fn photos_in(f: &Family, album: &str) -> Vec<PhotoRef> {
    let recovered = album == RECOVERED_ALBUM;
    let mut photos: Vec<PhotoRef> = f
        .photos
        .iter()
        .filter(|(_, p)| {
            if recovered {
                !f.albums.contains_key(&p.album_id)
            } else {
                p.album_id == album
            }
        })
        .map(|(id, p)| PhotoRef::of(id, p))
        .collect();
    photos.sort_by(|a, b| b.at.cmp(&a.at).then(a.id.cmp(&b.id)));
    photos
}
