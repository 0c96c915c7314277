//! The personal document: one per user, written by them, readable by their families.

use std::collections::BTreeMap;

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

/// Today's mood (오늘의 기분).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Hydrate, Reconcile, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Mood {
    Good,
    Love,
    Nice,
    Sad,
    Head,
    Angry,
    Sleepy,
}

impl Mood {
    /// Every mood, in the order the picker shows them.
    pub const ALL: [Mood; 7] = [
        Mood::Good,
        Mood::Love,
        Mood::Nice,
        Mood::Sad,
        Mood::Head,
        Mood::Angry,
        Mood::Sleepy,
    ];

    /// The emoji shown next to the member.
    pub fn emoji(self) -> &'static str {
        match self {
            Mood::Good => "🙂",
            Mood::Love => "🥰",
            Mood::Nice => "😎",
            Mood::Sad => "😥",
            Mood::Head => "🤯",
            Mood::Angry => "😡",
            Mood::Sleepy => "😴",
        }
    }

    /// The Korean label.
    pub fn label_ko(self) -> &'static str {
        match self {
            Mood::Good => "좋아요",
            Mood::Love => "사랑해요",
            Mood::Nice => "멋져요",
            Mood::Sad => "슬퍼요",
            Mood::Head => "머리아파요",
            Mood::Angry => "화나요",
            Mood::Sleepy => "졸려요",
        }
    }

    /// The English label.
    pub fn label_en(self) -> &'static str {
        match self {
            Mood::Good => "Good",
            Mood::Love => "Loving it",
            Mood::Nice => "Cool",
            Mood::Sad => "Sad",
            Mood::Head => "Headache",
            Mood::Angry => "Angry",
            Mood::Sleepy => "Sleepy",
        }
    }

    /// The machine name (`good`, `love`…), as the CLI and the apps pass it.
    pub fn name(self) -> &'static str {
        match self {
            Mood::Good => "good",
            Mood::Love => "love",
            Mood::Nice => "nice",
            Mood::Sad => "sad",
            Mood::Head => "head",
            Mood::Angry => "angry",
            Mood::Sleepy => "sleepy",
        }
    }
}

impl std::str::FromStr for Mood {
    type Err = crate::DocError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mood::ALL
            .into_iter()
            .find(|m| m.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| crate::DocError::NotAllowed {
                field: crate::validate::Field::Mood,
                value: s.to_owned(),
            })
    }
}

/// Per-user settings, synced between the user's devices.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile, Serialize, Deserialize)]
pub struct Settings {
    /// UI language: `ko` or `en`.
    pub language: String,
    /// Whether to notify about family-wide activity (new missions, photos, voices).
    pub notify_family: bool,
    /// Whether to notify about likes and comments on my photos.
    pub notify_reactions: bool,
    /// Quiet hours start `HH:MM` (no alerts until `quiet_end`), if set.
    pub quiet_start: Option<String>,
    /// Quiet hours end `HH:MM`.
    pub quiet_end: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            language: "ko".to_owned(),
            notify_family: true,
            notify_reactions: true,
            quiet_start: None,
            quiet_end: None,
        }
    }
}

/// How many built-in default avatars there are (`default_avatar` is 1 to this); a new
/// account gets one at random (FEATURES.md).
pub const DEFAULT_AVATARS: u8 = 8;

/// A user's personal document.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile, Serialize, Deserialize)]
pub struct Personal {
    /// Schema version.
    pub schema: u64,
    /// The user's id (hex).
    pub user: String,
    /// Nickname, 2–15 characters.
    pub nickname: String,
    /// Profile photo (blake3 hex); `None` shows the default avatar picked at sign-up.
    pub avatar: Option<String>,
    /// The key the profile photo is sealed with (`crate::seal`); `None` for one set
    /// before profile photos were sealed.
    #[autosurgeon(missing = "Option::default")]
    #[serde(default)]
    pub avatar_key: Option<crate::seal::BlobKey>,
    /// The default avatar (1–8), picked at random at sign-up.
    pub default_avatar: u8,
    /// Today's mood.
    pub mood: Option<Mood>,
    /// When the mood was set (ms); a mood from an earlier day is shown as none.
    pub mood_at: Option<i64>,
    /// Settings.
    #[autosurgeon(missing = "Settings::default")]
    #[serde(default)]
    pub settings: Settings,
    /// The families the user belongs to: family id → when joined (ms).
    pub families: BTreeMap<String, i64>,
    /// The email or handle the user registered with (their searchable label), so a
    /// device added later with the phrase or a link code knows it too.
    #[autosurgeon(missing = "Option::default")]
    #[serde(default)]
    pub email: Option<String>,
}
