//! The family document's entities, read leniently (see [`crate::read`]).

use automerge::hydrate;
use time::Date;

use super::Fields;
use crate::{
    family_doc::MAX_PEAKS,
    model::{Album, CalendarEvent, Comment, Member, Mission, Photo, Role, Voice, VoiceAlbum},
    time_util::{parse_date, parse_hhmm},
    validate::{self, PALETTE},
};

/// A model type read out of its hydrated map.
pub trait Entity: Sized {
    /// Reads it, each field on its own; `None` when what identifies it is unreadable.
    fn read(f: Fields<'_>) -> Option<Self>;

    /// Reads a hydrated value: `None` if it is not a map, or unreadable.
    fn from_hydrated(value: &hydrate::Value) -> Option<Self> {
        Fields::of(value).and_then(Self::read)
    }
}

/// A palette color (as the palette spells it), else the default one.
fn color(f: Fields<'_>, key: &str) -> String {
    let c = f.string(key).unwrap_or_default();
    PALETTE
        .iter()
        .find(|p| p.eq_ignore_ascii_case(&c))
        .unwrap_or(&PALETTE[0])
        .to_string()
}

/// A `YYYY-MM-DD` date, if it is one.
fn date(f: Fields<'_>, key: &str) -> Option<Date> {
    parse_date(&f.string(key)?).ok()
}

/// An `HH:MM` time, as the operations write it, if it is one.
fn hhmm(f: Fields<'_>, key: &str) -> Option<String> {
    let t = parse_hhmm(&f.string(key)?).ok()?;
    Some(format!("{:02}:{:02}", t.hour(), t.minute()))
}

impl Entity for Member {
    fn read(f: Fields<'_>) -> Option<Self> {
        Some(Member {
            name: f.text("name", validate::MEMBER_NAME),
            // The rules let only the host's own entry say `Host`.
            role: match f.string("role").as_deref() {
                Some("Host") => Role::Host,
                _ => Role::Member,
            },
            color: color(f, "color"),
            joined_at: f.instant("joined_at").unwrap_or_default(),
        })
    }
}

impl Entity for CalendarEvent {
    fn read(f: Fields<'_>) -> Option<Self> {
        // An event shows on its days: a missing day is the other one, and two
        // concurrent edits (one moving the start later, the other the end earlier) can
        // leave the end before the start: the days are put back in order. An event
        // with neither day still reads (so it can be deleted), with no days.
        let days = match (date(f, "start"), date(f, "end")) {
            (Some(s), Some(e)) => Some((s.min(e), s.max(e))),
            (Some(d), None) | (None, Some(d)) => Some((d, d)),
            (None, None) => None,
        };
        let day = |d: Option<Date>| d.map(|d| d.to_string()).unwrap_or_default();
        let start_time = hhmm(f, "start_time");
        Some(CalendarEvent {
            title: f.text("title", validate::EVENT_TITLE),
            notes: f.text("notes", validate::EVENT_NOTES),
            start: day(days.map(|(s, _)| s)),
            end: day(days.map(|(_, e)| e)),
            // An end time needs a start time.
            end_time: start_time.as_ref().and_then(|_| hhmm(f, "end_time")),
            start_time,
            color: color(f, "color"),
            owner: f.id("owner"),
            created_at: f.instant("created_at").unwrap_or_default(),
            updated_at: f.instant("updated_at").unwrap_or_default(),
        })
    }
}

impl Entity for Mission {
    fn read(f: Fields<'_>) -> Option<Self> {
        Some(Mission {
            title: f.text("title", validate::MISSION_TITLE),
            created_by: f.id("created_by"),
            created_at: f.instant("created_at").unwrap_or_default(),
            due: date(f, "due").map(|d| d.to_string()),
            participants: f.instants("participants"),
            completions: f.instants("completions"),
        })
    }
}

impl Entity for Album {
    fn read(f: Fields<'_>) -> Option<Self> {
        Some(Album {
            name: f.text("name", validate::ALBUM_NAME),
            created_by: f.id("created_by"),
            created_at: f.instant("created_at").unwrap_or_default(),
            cover: f.string("cover"),
        })
    }
}

impl Entity for Comment {
    /// A comment is skipped, not its photo, unless its author, time and text read.
    fn read(f: Fields<'_>) -> Option<Self> {
        Some(Comment {
            by: f.string("by")?,
            at: f.instant("at")?,
            text: super::cut(f.string("text")?, validate::COMMENT.max),
            deleted: f.bool("deleted").unwrap_or(false),
        })
    }
}

impl Entity for Photo {
    fn read(f: Fields<'_>) -> Option<Self> {
        let side = |key| {
            f.uint(key).map_or(1, |n| {
                n.clamp(1, u64::from(validate::PHOTO_MAX_SIDE)) as u32
            })
        };
        Some(Photo {
            album_id: f.id("album_id"),
            blob: f.id("blob"),
            thumb: f.id("thumb"),
            blob_key: f.key("blob_key"),
            thumb_key: f.key("thumb_key"),
            mime: f.id("mime"),
            size: f.uint("size").unwrap_or_default(),
            width: side("width"),
            height: side("height"),
            taken_at: f.instant("taken_at"),
            by: f.id("by"),
            at: f.instant("at").unwrap_or_default(),
            caption: f.text("caption", validate::PHOTO_CAPTION),
            likes: f.instants("likes"),
            comments: f
                .map("comments")
                .into_iter()
                .flat_map(Fields::entries)
                .filter_map(|(k, v)| Some((k.clone(), Comment::from_hydrated(v)?)))
                .collect(),
        })
    }
}

impl Entity for VoiceAlbum {
    fn read(f: Fields<'_>) -> Option<Self> {
        Some(VoiceAlbum {
            name: f.text("name", validate::VOICE_ALBUM_NAME),
            cover: clamp_u8(f.uint("cover"), validate::VOICE_COVERS),
            created_by: f.id("created_by"),
            created_at: f.instant("created_at").unwrap_or_default(),
        })
    }
}

impl Entity for Voice {
    fn read(f: Fields<'_>) -> Option<Self> {
        let peaks = f.bytes("peaks").unwrap_or_default();
        Some(Voice {
            album_id: f.id("album_id"),
            title: f.text("title", validate::VOICE_TITLE),
            blob: f.id("blob"),
            blob_key: f.key("blob_key"),
            size: f.uint("size").unwrap_or_default(),
            duration_ms: f
                .uint("duration_ms")
                .unwrap_or_default()
                .min(validate::VOICE_MAX_MS),
            peaks: peaks[..peaks.len().min(MAX_PEAKS)].to_vec().into(),
            by: f.id("by"),
            at: f.instant("at").unwrap_or_default(),
        })
    }
}

/// A number in `1..=max`: a smaller one (or none) is 1, a larger one `max`.
pub(super) fn clamp_u8(n: Option<u64>, max: u8) -> u8 {
    n.map_or(1, |n| n.clamp(1, u64::from(max)) as u8)
}
