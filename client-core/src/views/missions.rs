//! The mission page: this month's missions with a status box, and past missions.

use time::UtcOffset;

use serde::Serialize;

use crate::{
    model::{Family, Mission},
    time_util::{Lang, YearMonth, local_date},
    views::{badges, member_name},
};

/// One participant's tick on a mission card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tick {
    /// User id.
    pub user: String,
    /// Their 호칭.
    pub name: String,
    /// When they ticked, if they did.
    pub done_at: Option<i64>,
}

/// A mission as a card shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissionCard {
    /// Mission id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Creator's user id.
    pub created_by: String,
    /// Created (ms).
    pub created_at: i64,
    /// Due date, if any.
    pub due: Option<String>,
    /// Participants, by 호칭.
    pub ticks: Vec<Tick>,
    /// When everyone had ticked.
    pub completed_at: Option<i64>,
}

impl MissionCard {
    /// The card for a mission.
    pub fn of(f: &Family, id: &str, m: &Mission, lang: Lang) -> Self {
        let mut ticks: Vec<Tick> = m
            .participants
            .keys()
            .map(|u| Tick {
                user: u.clone(),
                name: member_name(f, u, lang),
                done_at: m.completions.get(u).copied(),
            })
            .collect();
        ticks.sort_by(|a, b| a.name.cmp(&b.name).then(a.user.cmp(&b.user)));
        MissionCard {
            id: id.to_owned(),
            title: m.title.clone(),
            created_by: m.created_by.clone(),
            created_at: m.created_at,
            due: m.due.clone(),
            ticks,
            completed_at: m.completed_at(&f.members),
        }
    }
}

/// The mission page's status box and cards for one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissionDashboard {
    /// The month shown.
    pub month: YearMonth,
    /// Missions created this month.
    pub total: usize,
    /// Of those, completed.
    pub completed: usize,
    /// Completion rate in percent, rounded down.
    pub rate: u32,
    /// The label for the rate, in the viewer's language ("우리는 환상의 가족"…).
    pub label: &'static str,
    /// Badges the family owns.
    pub badges_owned: usize,
    /// This month's missions, newest first.
    pub missions: Vec<MissionCard>,
}

/// The rate label the original showed for a completion rate.
pub fn rate_label(rate: u32) -> (&'static str, &'static str) {
    match rate {
        100.. => ("우리는 환상의 가족", "We're a fantastic family"),
        75..=99 => ("돌파! 끈끈해요", "Breakthrough! So close-knit"),
        50..=74 => ("돌파! 대단해요", "Breakthrough! Amazing"),
        25..=49 => ("돌파! 도전해요", "Breakthrough! Keep going"),
        _ => ("이제 시작해요", "Just getting started"),
    }
}

/// This month's missions and the status box. A mission belongs to the month (in the
/// viewer's time zone) it was created in.
pub fn mission_dashboard(
    f: &Family,
    month: YearMonth,
    offset: UtcOffset,
    lang: Lang,
) -> MissionDashboard {
    let mut missions: Vec<MissionCard> = f
        .missions
        .iter()
        .filter(|(_, m)| YearMonth::of(local_date(m.created_at, offset)) == month)
        .map(|(id, m)| MissionCard::of(f, id, m, lang))
        .collect();
    missions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    let total = missions.len();
    let completed = missions.iter().filter(|m| m.completed_at.is_some()).count();
    let rate = (completed * 100).checked_div(total).unwrap_or(0) as u32;
    let (label_ko, label_en) = rate_label(rate);
    MissionDashboard {
        month,
        total,
        completed,
        rate,
        label: lang.pick(label_ko, label_en),
        badges_owned: badges(f).iter().filter(|b| b.earned()).count(),
        missions,
    }
}

/// Missions of months before `month` (read-only on the page), newest first.
pub fn past_missions(
    f: &Family,
    month: YearMonth,
    offset: UtcOffset,
    lang: Lang,
) -> Vec<MissionCard> {
    let mut past: Vec<MissionCard> = f
        .missions
        .iter()
        .filter(|(_, m)| YearMonth::of(local_date(m.created_at, offset)) < month)
        .map(|(id, m)| MissionCard::of(f, id, m, lang))
        .collect();
    past.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    past
}
