//! The photo gallery: albums with cover and count, and an album's photos in pages.

use crate::{model::Family, views::PhotoRef};

/// Photos per page of the gallery's infinite scroll (as the original).
pub const PAGE_SIZE: usize = 14;

/// The id of the pseudo-album holding photos whose album was deleted while they were
/// being added on another device: kept, not lost.
pub const RECOVERED_ALBUM: &str = "recovered";

/// An album in the gallery list.
#[derive(Debug, Clone, PartialEq, Eq)]
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
pub fn albums(f: &Family) -> Vec<AlbumCard> {
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
            name: "복구된 사진".to_owned(),
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
