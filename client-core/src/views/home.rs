//! The home screen: members with mood and presence, a warm message, the current
//! mission, this month's rate, a badge, the newest photo and voice message, the
//! month's events.

use std::collections::BTreeMap;

use serde::Serialize;
use time::UtcOffset;

use crate::{
    model::{Family, Mood, Personal, Role},
    time_util::{Lang, YearMonth, local_date, relative},
    views::{
        BadgeView, MissionCard, MonthEvent, PhotoRef, badges, calendar_month, member_name,
        mission_dashboard, role_key,
    },
};

/// Warm messages shown at random on the home screen (Korean, English).
pub const WARM_MESSAGES: [(&str, &str); 6] = [
    (
        "오늘도 서로에게 따뜻한 한마디를 건네 보세요.",
        "Say something kind to each other today.",
    ),
    (
        "함께라서 더 즐거운 하루예요.",
        "Every day is better together.",
    ),
    (
        "가족에게 사진 한 장 보내는 건 어때요?",
        "How about sending the family a photo?",
    ),
    (
        "작은 미션이 큰 추억이 돼요.",
        "Small missions make big memories.",
    ),
    (
        "목소리로 마음을 전해 보세요.",
        "Send your love in your own voice.",
    ),
    (
        "오늘의 기분을 가족과 나눠 보세요.",
        "Share today's mood with your family.",
    ),
];

/// Whether a member is connected now, or when they last were: what the relay says
/// (presence is not in the documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Presence {
    /// Connected now (접속중).
    pub online: bool,
    /// When they were last connected (ms), if the relay said.
    pub last_seen: Option<i64>,
}

/// A mood as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoodView {
    /// Machine name (`good`, `love`…).
    pub key: &'static str,
    /// The emoji.
    pub emoji: &'static str,
    /// The label in the viewer's language (좋아요 / Good).
    pub label: &'static str,
}

impl MoodView {
    /// The view of `mood` in `lang`.
    pub fn of(mood: Mood, lang: Lang) -> Self {
        MoodView {
            key: mood.name(),
            emoji: mood.emoji(),
            label: lang.pick(mood.label_ko(), mood.label_en()),
        }
    }
}

/// A member on the home screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HomeMember {
    /// User id.
    pub user: String,
    /// 호칭.
    pub name: String,
    /// `host` or `member`.
    #[serde(serialize_with = "role_key")]
    pub role: Role,
    /// Avatar ring color.
    pub color: String,
    /// Nickname from their personal document, when known.
    pub nickname: Option<String>,
    /// Profile photo blob, when set.
    pub avatar: Option<String>,
    /// Default avatar number, when their personal document is known.
    pub default_avatar: Option<u8>,
    /// Today's mood (a mood set on an earlier day is not shown).
    pub mood: Option<MoodView>,
    /// Connected now.
    pub online: bool,
    /// When last connected (ms), if known and not online.
    pub last_seen: Option<i64>,
    /// "접속중" while online, else how long ago ("5분 전"), else `None`.
    pub status: Option<String>,
}

/// The newest voice message, as the home screen announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoiceRef {
    /// Voice id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Sender's user id.
    pub by: String,
    /// Sent (ms).
    pub at: i64,
    /// Duration (ms).
    pub duration_ms: u64,
    /// The MP3 (blake3 hex).
    pub blob: String,
    /// "{호칭}님이 음성메시지를 보냈어요!"
    pub headline: String,
}

/// Everything the home screen shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HomeSummary {
    /// Family title.
    pub family_name: String,
    /// Members, host first, then by joining time.
    pub members: Vec<HomeMember>,
    /// A warm message.
    pub warm_message: &'static str,
    /// Today's mission, else the most recent one.
    pub mission: Option<MissionCard>,
    /// This month's completion rate (%).
    pub month_rate: u32,
    /// Its label, in the viewer's language.
    pub month_label: &'static str,
    /// A random earned badge.
    pub badge: Option<BadgeView>,
    /// The newest photo.
    pub latest_photo: Option<PhotoRef>,
    /// The newest voice message.
    pub latest_voice: Option<VoiceRef>,
    /// This month's events for the mini calendar.
    pub month_events: Vec<MonthEvent>,
}

/// What a view needs besides the document: when and where it is looked at, and in
/// which language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    /// Now (ms).
    pub now_ms: i64,
    /// The viewer's UTC offset.
    pub offset: UtcOffset,
    /// The viewer's language.
    pub lang: Lang,
}

/// The home screen. `profiles` are the members' personal documents by user id (those
/// known so far); `presence` what the relay said about them; `seed` picks the warm
/// message and the badge (pass e.g. the day number so they change daily, not on every
/// refresh).
pub fn home(
    f: &Family,
    profiles: &BTreeMap<String, Personal>,
    presence: &BTreeMap<String, Presence>,
    viewer: Viewer,
    seed: u64,
) -> HomeSummary {
    let Viewer {
        now_ms,
        offset,
        lang,
    } = viewer;
    let today = local_date(now_ms, offset);
    let month = YearMonth::of(today);
    let mut shown = super::shown_names(f);
    let mut members: Vec<HomeMember> = f
        .members
        .iter()
        .map(|(user, m)| {
            let p = profiles.get(user);
            let mood = p.and_then(|p| {
                let fresh = p.mood_at.map(|at| local_date(at, offset)) == Some(today);
                if fresh { p.mood } else { None }
            });
            let seen = presence.get(user).copied().unwrap_or_default();
            let status = if seen.online {
                Some(lang.pick("접속중", "online").to_owned())
            } else {
                seen.last_seen.map(|at| relative(at, now_ms, offset, lang))
            };
            HomeMember {
                user: user.clone(),
                name: shown.remove(user).unwrap_or_else(|| m.name.clone()),
                role: m.role,
                color: m.color.clone(),
                nickname: p.map(|p| p.nickname.clone()),
                avatar: p.and_then(|p| p.avatar.clone()),
                default_avatar: p.map(|p| p.default_avatar),
                mood: mood.map(|m| MoodView::of(m, lang)),
                online: seen.online,
                last_seen: seen.last_seen.filter(|_| !seen.online),
                status,
            }
        })
        .collect();
    members.sort_by_key(|m| {
        (
            m.role != Role::Host,
            f.members.get(&m.user).map(|x| x.joined_at),
            m.user.clone(),
        )
    });

    // Today's mission, else the most recently created one.
    let mission = f
        .missions
        .iter()
        .max_by_key(|(id, m)| (local_date(m.created_at, offset) == today, m.created_at, *id))
        .map(|(id, m)| MissionCard::of(f, id, m, lang));

    let dashboard = mission_dashboard(f, month, offset, lang);
    let earned: Vec<BadgeView> = badges(f)
        .iter()
        .filter(|b| b.earned())
        .map(|b| b.view(lang))
        .collect();
    let badge = (!earned.is_empty()).then(|| earned[(seed as usize) % earned.len()].clone());

    let latest_photo = f
        .photos
        .iter()
        .max_by_key(|(id, p)| (p.at, *id))
        .map(|(id, p)| PhotoRef::of(id, p));
    let latest_voice = f
        .voices
        .iter()
        .max_by_key(|(id, v)| (v.at, *id))
        .map(|(id, v)| {
            let who = member_name(f, &v.by, lang);
            VoiceRef {
                id: id.clone(),
                title: v.title.clone(),
                by: v.by.clone(),
                at: v.at,
                duration_ms: v.duration_ms,
                blob: v.blob.clone(),
                headline: match lang {
                    Lang::Ko => format!("{who}님이 음성메시지를 보냈어요!"),
                    Lang::En => format!("{who} sent a voice message!"),
                },
            }
        });

    let (ko, en) = WARM_MESSAGES[(seed as usize) % WARM_MESSAGES.len()];
    HomeSummary {
        family_name: f.name.clone(),
        members,
        warm_message: lang.pick(ko, en),
        mission,
        month_rate: dashboard.rate,
        month_label: dashboard.label,
        badge,
        latest_photo,
        latest_voice,
        month_events: calendar_month(f, month, lang).events,
    }
}
