//! The memories view (추억 보기): photo thumbnails on the days photos were added.

use serde::Serialize;
use time::{Date, UtcOffset};

use crate::{
    model::Family,
    time_util::{YearMonth, local_date},
};

/// A photo as grids and sliders show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhotoRef {
    /// Photo id.
    pub id: String,
    /// Album id.
    pub album_id: String,
    /// Thumbnail blob (hex).
    pub thumb: String,
    /// Display copy blob (hex).
    pub blob: String,
    /// Uploader.
    pub by: String,
    /// Added (ms).
    pub at: i64,
}

/// One day with photos.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryDay {
    /// The day (viewer's time zone).
    pub date: Date,
    /// That day's photos, oldest first (the slider's order).
    pub photos: Vec<PhotoRef>,
}

/// The days of `month` on which photos were added, in order.
pub fn memories(f: &Family, month: YearMonth, offset: UtcOffset) -> Vec<MemoryDay> {
    let mut days: std::collections::BTreeMap<Date, Vec<PhotoRef>> = Default::default();
    for (id, p) in &f.photos {
        let date = local_date(p.at, offset);
        if YearMonth::of(date) == month {
            days.entry(date).or_default().push(PhotoRef::of(id, p));
        }
    }
    days.into_iter()
        .map(|(date, mut photos)| {
            photos.sort_by(|a, b| a.at.cmp(&b.at).then(a.id.cmp(&b.id)));
            MemoryDay { date, photos }
        })
        .collect()
}

impl PhotoRef {
    /// The reference for a photo.
    pub fn of(id: &str, p: &crate::model::Photo) -> Self {
        PhotoRef {
            id: id.to_owned(),
            album_id: p.album_id.clone(),
            thumb: p.thumb.clone(),
            blob: p.blob.clone(),
            by: p.by.clone(),
            at: p.at,
        }
    }
}
