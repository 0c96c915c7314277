//! The home screen (main screen) of a family.

use doran_device::core::views;

use crate::{
    badges::BadgeView,
    calendar::MonthEvent,
    device::Device,
    error::Result,
    families::{MoodView, Role},
    gallery::PhotoRef,
    missions::MissionCard,
};

/// A member on the home screen.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HomeMember {
    /// User id.
    pub user: String,
    /// 호칭.
    pub name: String,
    /// Host or member.
    pub role: Role,
    /// Avatar ring color.
    pub color: String,
    /// Nickname, once their profile synced.
    pub nickname: Option<String>,
    /// Profile photo (blob hex), if set.
    pub avatar: Option<String>,
    /// Default avatar (1–8), once their profile synced.
    pub default_avatar: Option<u8>,
    /// Today's mood.
    pub mood: Option<MoodView>,
    /// Connected now.
    pub online: bool,
    /// When last connected (Unix ms), if not online.
    pub last_seen: Option<i64>,
    /// "접속중" or how long ago, if known.
    pub status: Option<String>,
}

/// The newest voice message, as home shows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VoiceRef {
    /// Message id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Sender.
    pub by: String,
    /// Sent (Unix ms).
    pub at: i64,
    /// Duration (ms).
    pub duration_ms: u64,
    /// The MP3 (blake3 hex).
    pub blob: String,
    /// "{호칭}님이 음성메시지를 보냈어요!"
    pub headline: String,
}

/// The home screen.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HomeSummary {
    /// The family's title.
    pub family_name: String,
    /// Members with mood and presence.
    pub members: Vec<HomeMember>,
    /// A warm message (changes daily).
    pub warm_message: String,
    /// Today's or the most recent mission.
    pub mission: Option<MissionCard>,
    /// This month's completion rate (%).
    pub month_rate: u32,
    /// Its label ("돌파! 대단해요"…).
    pub month_label: String,
    /// An earned badge (changes daily).
    pub badge: Option<BadgeView>,
    /// The newest photo.
    pub latest_photo: Option<PhotoRef>,
    /// The newest voice message.
    pub latest_voice: Option<VoiceRef>,
    /// This month's events for the mini calendar.
    pub month_events: Vec<MonthEvent>,
}

impl From<views::HomeSummary> for HomeSummary {
    fn from(h: views::HomeSummary) -> Self {
        HomeSummary {
            family_name: h.family_name,
            members: h
                .members
                .into_iter()
                .map(|m| HomeMember {
                    user: m.user,
                    name: m.name,
                    role: m.role.into(),
                    color: m.color,
                    nickname: m.nickname,
                    avatar: m.avatar,
                    default_avatar: m.default_avatar,
                    mood: m.mood.map(Into::into),
                    online: m.online,
                    last_seen: m.last_seen,
                    status: m.status,
                })
                .collect(),
            warm_message: h.warm_message.to_owned(),
            mission: h.mission.map(Into::into),
            month_rate: h.month_rate,
            month_label: h.month_label.to_owned(),
            badge: h.badge.map(Into::into),
            latest_photo: h.latest_photo.map(Into::into),
            latest_voice: h.latest_voice.map(|v| VoiceRef {
                id: v.id,
                title: v.title,
                by: v.by,
                at: v.at,
                duration_ms: v.duration_ms,
                blob: v.blob,
                headline: v.headline,
            }),
            month_events: h.month_events.into_iter().map(Into::into).collect(),
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// The home screen: members with mood and presence, a warm message, the current
    /// mission, this month's rate, a badge, the newest photo and voice message, the
    /// month's events.
    pub async fn home(&self, family: String) -> Result<HomeSummary> {
        Ok(self.inner.home(&family).await?.into())
    }
}
