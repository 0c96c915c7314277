//! The home screen: members with mood, a warm message, the current mission, this
//! month's rate, a badge, the newest photo and voice message, the month's events.

use std::collections::BTreeMap;

use time::UtcOffset;

use crate::{
    model::{Family, Mood, Personal, Role},
    time_util::{YearMonth, local_date},
    views::{
        Badge, MissionCard, MonthEvent, PhotoRef, badges, calendar_month, member_name,
        mission_dashboard,
    },
};

/// Warm messages shown at random on the home screen.
pub const WARM_MESSAGES: [&str; 6] = [
    "오늘도 서로에게 따뜻한 한마디를 건네 보세요.",
    "함께라서 더 즐거운 하루예요.",
    "가족에게 사진 한 장 보내는 건 어때요?",
    "작은 미션이 큰 추억이 돼요.",
    "목소리로 마음을 전해 보세요.",
    "오늘의 기분을 가족과 나눠 보세요.",
];

/// A member on the home screen. Presence (online / last seen) comes from the relay, not
/// the document; apps merge it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeMember {
    /// User id.
    pub user: String,
    /// 호칭.
    pub name: String,
    /// Host or member.
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
    pub mood: Option<Mood>,
}

/// The newest voice message, as the home screen announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// "{호칭}님이 음성메시지를 보냈어요!"
    pub headline: String,
}

/// Everything the home screen shows.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Its label (Korean).
    pub month_label: &'static str,
    /// A random earned badge.
    pub badge: Option<Badge>,
    /// The newest photo.
    pub latest_photo: Option<PhotoRef>,
    /// The newest voice message.
    pub latest_voice: Option<VoiceRef>,
    /// This month's events for the mini calendar.
    pub month_events: Vec<MonthEvent>,
}

/// The home screen. `profiles` are the members' personal documents by user id (those
/// known so far); `seed` picks the warm message and the badge (pass e.g. the day number
/// so they change daily, not on every refresh).
pub fn home(
    f: &Family,
    profiles: &BTreeMap<String, Personal>,
    now_ms: i64,
    offset: UtcOffset,
    seed: u64,
) -> HomeSummary {
    let today = local_date(now_ms, offset);
    let month = YearMonth::of(today);
    let mut members: Vec<HomeMember> = f
        .members
        .iter()
        .map(|(user, m)| {
            let p = profiles.get(user);
            let mood = p.and_then(|p| {
                let fresh = p.mood_at.map(|at| local_date(at, offset)) == Some(today);
                if fresh { p.mood } else { None }
            });
            HomeMember {
                user: user.clone(),
                name: m.name.clone(),
                role: m.role,
                color: m.color.clone(),
                nickname: p.map(|p| p.nickname.clone()),
                avatar: p.and_then(|p| p.avatar.clone()),
                default_avatar: p.map(|p| p.default_avatar),
                mood,
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
        .map(|(id, m)| MissionCard::of(f, id, m));

    let dashboard = mission_dashboard(f, month, offset);
    let earned: Vec<Badge> = badges(f).into_iter().filter(Badge::earned).collect();
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
        .map(|(id, v)| VoiceRef {
            id: id.clone(),
            title: v.title.clone(),
            by: v.by.clone(),
            at: v.at,
            duration_ms: v.duration_ms,
            headline: format!("{}님이 음성메시지를 보냈어요!", member_name(f, &v.by)),
        });

    HomeSummary {
        family_name: f.name.clone(),
        members,
        warm_message: WARM_MESSAGES[(seed as usize) % WARM_MESSAGES.len()],
        mission,
        month_rate: dashboard.rate,
        month_label: dashboard.label_ko,
        badge,
        latest_photo,
        latest_voice,
        month_events: calendar_month(f, month).events,
    }
}
