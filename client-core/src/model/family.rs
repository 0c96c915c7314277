//! The family document: one per family, shared by its members.

use std::collections::{BTreeMap, BTreeSet};

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::seal::{BlobKey, BlobRef};

/// A member's role in the family.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hydrate, Reconcile, Default, Serialize, Deserialize,
)]
pub enum Role {
    /// Created the family: may rename it, remove members, delete it.
    Host,
    /// Everyone else.
    #[default]
    Member,
}

/// A member of the family. Mirrors the relay's membership, which is authoritative for
/// access; the document holds what the apps show (호칭, color).
#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile, Serialize, Deserialize)]
pub struct Member {
    /// 호칭: the member's name in this family (엄마, 아빠…), unique within the family.
    pub name: String,
    /// Host or member.
    pub role: Role,
    /// A palette color for the member's avatar ring and events.
    pub color: String,
    /// When they joined (ms).
    pub joined_at: i64,
}

/// A calendar event spanning one or more whole days, optionally with times of day.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile, Serialize, Deserialize)]
pub struct CalendarEvent {
    /// Title, 1–14 characters.
    pub title: String,
    /// Free notes.
    pub notes: String,
    /// First day, `YYYY-MM-DD`.
    pub start: String,
    /// Last day (inclusive), `YYYY-MM-DD`; equal to `start` for one-day events.
    pub end: String,
    /// Start time `HH:MM` on the first day; `None` for an all-day event.
    pub start_time: Option<String>,
    /// End time `HH:MM` on the last day; `None` for an all-day event.
    pub end_time: Option<String>,
    /// A palette color.
    pub color: String,
    /// Who created it (user id).
    pub owner: String,
    /// When it was created (ms).
    pub created_at: i64,
    /// When it was last edited (ms).
    pub updated_at: i64,
}

/// A family mission (e.g. "가족 사진 찍기").
#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile, Serialize, Deserialize)]
pub struct Mission {
    /// Title, 1–17 characters.
    pub title: String,
    /// Who created it (user id).
    pub created_by: String,
    /// When it was created (ms); the mission belongs to this month.
    pub created_at: i64,
    /// Optional due date `YYYY-MM-DD`.
    pub due: Option<String>,
    /// The participants: user id → when they were added (ms). A map, not a list, so
    /// that concurrent edits merge as a set.
    pub participants: BTreeMap<String, i64>,
    /// Each participant's own tick: user id → when they ticked (ms).
    pub completions: BTreeMap<String, i64>,
}

impl Mission {
    /// Complete when every participant who is still a member of the family has ticked;
    /// the completion time is the last of their ticks. Derived, never stored, so
    /// concurrent ticks cannot disagree about it, and a member who leaves does not
    /// block the mission forever.
    pub fn completed_at(&self, members: &BTreeMap<String, Member>) -> Option<i64> {
        let ticks = self
            .participants
            .keys()
            .filter(|u| members.contains_key(*u))
            .map(|u| self.completions.get(u).copied())
            .collect::<Option<Vec<i64>>>()?;
        ticks.into_iter().max()
    }
}

/// A photo album.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile, Serialize, Deserialize)]
pub struct Album {
    /// Name, 1–20 characters.
    pub name: String,
    /// Who created it.
    pub created_by: String,
    /// When (ms).
    pub created_at: i64,
    /// The photo shown as the album's cover; the newest photo when unset.
    pub cover: Option<String>,
}

/// A comment on a photo. Deleting keeps a tombstone so replies and counts stay stable.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile, Serialize, Deserialize)]
pub struct Comment {
    /// Author (user id).
    pub by: String,
    /// When (ms).
    pub at: i64,
    /// Text, 1–300 characters; emptied when deleted.
    pub text: String,
    /// Whether the author deleted it.
    pub deleted: bool,
}

/// A photo in an album. The bytes are blobs referred to by blake3 hash.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile, Serialize, Deserialize)]
pub struct Photo {
    /// The album it belongs to. A photo whose album was deleted concurrently with its
    /// upload is kept and shown under "recovered" rather than lost.
    pub album_id: String,
    /// Display copy (≤ 1920 px, ≈ 0.9 MB), blake3 hex.
    pub blob: String,
    /// Thumbnail (~320 px), blake3 hex.
    pub thumb: String,
    /// The key the display copy is sealed with (`crate::seal`); `None` for a photo
    /// added before photos were sealed.
    pub blob_key: Option<BlobKey>,
    /// The key the thumbnail is sealed with.
    pub thumb_key: Option<BlobKey>,
    /// MIME type of the display copy.
    pub mime: String,
    /// Size of the display copy in bytes.
    pub size: u64,
    /// Pixel width of the display copy.
    pub width: u32,
    /// Pixel height of the display copy.
    pub height: u32,
    /// When it was taken, if the camera said (ms).
    pub taken_at: Option<i64>,
    /// Uploader (user id).
    pub by: String,
    /// When it was added (ms).
    pub at: i64,
    /// Caption, up to 200 characters.
    pub caption: String,
    /// Likes: user id → when (ms).
    pub likes: BTreeMap<String, i64>,
    /// Comments by id.
    pub comments: BTreeMap<String, Comment>,
}

/// A voice message album.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile, Serialize, Deserialize)]
pub struct VoiceAlbum {
    /// Name, 1–20 characters.
    pub name: String,
    /// One of the built-in covers, 1–4.
    pub cover: u8,
    /// Who created it.
    pub created_by: String,
    /// When (ms).
    pub created_at: i64,
}

/// A voice message, stored as MP3 so every device can play it.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile, Serialize, Deserialize)]
pub struct Voice {
    /// The voice album it belongs to.
    pub album_id: String,
    /// Title, 1–10 characters.
    pub title: String,
    /// The MP3, blake3 hex.
    pub blob: String,
    /// The key the MP3 is sealed with (`crate::seal`); `None` for a voice message
    /// sent before they were sealed.
    pub blob_key: Option<BlobKey>,
    /// Size of the MP3 in bytes.
    pub size: u64,
    /// Duration (ms), at most 3 minutes.
    pub duration_ms: u64,
    /// Waveform preview: peak levels 0–255, a few dozen values.
    #[serde(with = "super::byte_vec")]
    pub peaks: autosurgeon::bytes::ByteVec,
    /// Sender (user id).
    pub by: String,
    /// When (ms).
    pub at: i64,
}

/// The whole family document, hydrated. Apps read this (through the views); edits go
/// through [`crate::FamilyDoc`] so that each one becomes a small change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Family {
    /// Schema version the document was written with.
    pub schema: u64,
    /// Family id (hex), equal to the document id.
    pub id: String,
    /// Family title, 1–10 characters.
    pub name: String,
    /// When it was created (ms).
    pub created_at: i64,
    /// Creator (user id).
    pub created_by: String,
    /// Members by user id.
    pub members: BTreeMap<String, Member>,
    /// Calendar events by id.
    pub calendar: BTreeMap<String, CalendarEvent>,
    /// Missions by id.
    pub missions: BTreeMap<String, Mission>,
    /// Photo albums by id.
    pub albums: BTreeMap<String, Album>,
    /// Photos by id.
    pub photos: BTreeMap<String, Photo>,
    /// Voice albums by id.
    pub voice_albums: BTreeMap<String, VoiceAlbum>,
    /// Voice messages by id.
    pub voices: BTreeMap<String, Voice>,
    /// What was ever done, for badges that never go backwards. Counters,
    /// `n/{kind}/{actor}` → how many, one Automerge counter per device (so no two
    /// devices ever create the same one), for what is made once: `missions`, `photos`,
    /// `voices`, `comments`, `events`. Marks, `e/{kind}/{user}/{mission}` → when, one
    /// key per thing done, for what can be undone and done again: `ticks`,
    /// `completed`. See [`Family::ever`].
    #[serde(default)]
    pub counts: BTreeMap<String, i64>,
    /// The years the family keeps volumes for (`v/{year}` at the family document's
    /// root, issue 17: `crate::volume`).
    #[serde(default)]
    pub volumes: BTreeSet<u16>,
    /// Hide records (`h/albums/{album}`, `h/voice_albums/{album}` at the family
    /// document's root): albums and voice albums deleted outright, and when.
    #[serde(default)]
    pub hidden: Hidden,
}

/// Albums and voice albums deleted, and when (ms): written by the change that deletes
/// one (issue 17), at the latest of its device's clock and of the photos it had seen
/// added to the album. An album's deletion removes the photos the family's document
/// holds; those kept in a year's volume, which it cannot remove, are hidden by this
/// record (`crate::volume::merged`) — each added no later than the deletion, while no
/// album stands at that id. A photo added after it, concurrently, stays with the
/// recovered photos, as one in the family's document does. Two devices deleting an
/// album at once write two times: the earliest counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hidden {
    /// Album id → when it was deleted.
    #[serde(default)]
    pub albums: BTreeMap<String, i64>,
    /// Voice album id → when it was deleted.
    #[serde(default)]
    pub voice_albums: BTreeMap<String, i64>,
}

/// The kinds recorded as marks rather than counted ([`Family::counts`]), whose rules
/// are in `rules` (`MARKED`).
pub(crate) const MARKED_KINDS: [&str; 2] = ["ticks", "completed"];
/// Root keys of the marks start with this: `e/{kind}/{user}/{mission}`.
pub(crate) const MARKS_PREFIX: &str = "e/";
/// Root keys of the invites members recorded start with this:
/// `i/{invitee}/{inviter}` = when (`FamilyDoc::record_invite`; rules in `rules`).
pub(crate) const INVITES_PREFIX: &str = "i/";
/// Root keys of the volumes a family keeps start with this: `v/{year}` = when it was
/// first listed (`FamilyDoc::register_volume`; rules in `rules`).
pub(crate) const VOLUMES_PREFIX: &str = "v/";
/// Root keys of the hide records start with this: `h/albums/{album}` (or
/// `h/voice_albums/{album}`) = when ([`Family::hidden`]; rules in `rules`).
pub(crate) const HIDDEN_PREFIX: &str = "h/";

/// A hide record's key read back: the collection of what it names ("albums" or
/// "voice_albums") and the album's id as written (`None`: not a hide record's shape).
pub(crate) fn hidden_key(key: &str) -> Option<(&'static str, &str)> {
    let (collection, album) = key.strip_prefix(HIDDEN_PREFIX)?.split_once('/')?;
    let collection = ["albums", "voice_albums"]
        .into_iter()
        .find(|c| *c == collection)?;
    Some((collection, album))
}

impl Photo {
    /// The display copy, if the entry names one that reads.
    pub fn display(&self) -> Option<BlobRef> {
        BlobRef::parse(&self.blob, self.blob_key)
    }

    /// The thumbnail, if the entry names one that reads.
    pub fn thumbnail(&self) -> Option<BlobRef> {
        BlobRef::parse(&self.thumb, self.thumb_key)
    }
}

impl Voice {
    /// The MP3, if the entry names one that reads.
    pub fn audio(&self) -> Option<BlobRef> {
        BlobRef::parse(&self.blob, self.blob_key)
    }
}

impl Family {
    /// The marks of `kind`: (user, mission) for each `e/{kind}/{user}/{mission}`.
    pub fn marks<'a>(&'a self, kind: &str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let prefix = format!("{MARKS_PREFIX}{kind}/");
        let skip = prefix.len();
        self.counts
            .range(prefix.clone()..)
            .map(|(k, _)| k.as_str())
            .take_while(move |k| k.starts_with(prefix.as_str()))
            .filter_map(move |k| k[skip..].split_once('/'))
    }

    /// How many `kind` things were ever done (by `user`, when given), as the counters
    /// or marks say; the caller takes the larger of this and what exists now (a family
    /// made before the counters has none). A marked kind counts distinct missions: a
    /// tick taken back and given again is one, and so is a mission two members'
    /// ticks completed at once.
    pub fn ever(&self, kind: &str, user: Option<&str>) -> u64 {
        if MARKED_KINDS.contains(&kind) {
            let missions: BTreeSet<&str> = self
                .marks(kind)
                .filter(|(by, _)| user.is_none_or(|u| *by == u))
                .map(|(_, mission)| mission)
                .collect();
            return u64::try_from(missions.len()).unwrap_or(u64::MAX);
        }
        let prefix = format!("n/{kind}/");
        self.counts
            .iter()
            .filter_map(|(k, n)| {
                let actor = k.strip_prefix(&prefix)?;
                // An actor is the user (32 hex digits) followed by the device.
                let mine = user.is_none_or(|u| actor.get(..32) == Some(u));
                mine.then_some(u64::try_from(*n).unwrap_or(0))
            })
            .fold(0, u64::saturating_add)
    }
}
