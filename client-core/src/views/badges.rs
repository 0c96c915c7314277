//! Badges: family-level (the original's six, plus ours) and per member.

use serde::Serialize;

use crate::{model::Family, time_util::Lang, views::member_name};

/// Which badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadgeKind {
    /// 단란한 시작: the family exists.
    CozyStart,
    /// 추억의 발자국: ≥ 15 photos.
    Footprints,
    /// 정겨운 목소리: ≥ 10 voice messages.
    WarmVoice,
    /// 협동의 즐거움: ≥ 20 missions created.
    Cooperation,
    /// 소통의 기쁨: ≥ 50 comments.
    Communication,
    /// 함께하는 나날: ≥ 5 calendar events.
    DaysTogether,
    /// 약속을 지켜요 (ours): ≥ 10 missions completed by everyone taking part.
    Accomplished,
    /// 성실한 손길 (ours, per member): ≥ 10 mission ticks by this member.
    DiligentHands,
    /// 찰칵 사진가 (ours, per member): ≥ 10 photos added by this member.
    Photographer,
    /// 다정한 한마디 (ours, per member): ≥ 20 comments by this member.
    KindWords,
}

impl BadgeKind {
    /// The Korean name.
    pub fn name_ko(self) -> &'static str {
        match self {
            BadgeKind::CozyStart => "단란한 시작",
            BadgeKind::Footprints => "추억의 발자국",
            BadgeKind::WarmVoice => "정겨운 목소리",
            BadgeKind::Cooperation => "협동의 즐거움",
            BadgeKind::Communication => "소통의 기쁨",
            BadgeKind::DaysTogether => "함께하는 나날",
            BadgeKind::Accomplished => "약속을 지켜요",
            BadgeKind::DiligentHands => "성실한 손길",
            BadgeKind::Photographer => "찰칵 사진가",
            BadgeKind::KindWords => "다정한 한마디",
        }
    }

    /// The English name.
    pub fn name_en(self) -> &'static str {
        match self {
            BadgeKind::CozyStart => "Cozy start",
            BadgeKind::Footprints => "Footprints of memories",
            BadgeKind::WarmVoice => "Warm voice",
            BadgeKind::Cooperation => "Joy of cooperation",
            BadgeKind::Communication => "Joy of communication",
            BadgeKind::DaysTogether => "Days together",
            BadgeKind::Accomplished => "Promises kept",
            BadgeKind::DiligentHands => "Diligent hands",
            BadgeKind::Photographer => "Photographer",
            BadgeKind::KindWords => "Kind words",
        }
    }

    /// What earns it, for the badge dialog ("사진 15장", "15 photos"), with its goal.
    pub fn rule(self, goal: u64, lang: Lang) -> String {
        match (self, lang) {
            (BadgeKind::CozyStart, Lang::Ko) => "가족이 만들어졌어요".to_owned(),
            (BadgeKind::CozyStart, Lang::En) => "The family exists".to_owned(),
            (BadgeKind::Footprints, Lang::Ko) => format!("사진 {goal}장"),
            (BadgeKind::Footprints, Lang::En) => format!("{goal} photos"),
            (BadgeKind::WarmVoice, Lang::Ko) => format!("음성메시지 {goal}개"),
            (BadgeKind::WarmVoice, Lang::En) => format!("{goal} voice messages"),
            (BadgeKind::Cooperation, Lang::Ko) => format!("미션 {goal}개"),
            (BadgeKind::Cooperation, Lang::En) => format!("{goal} missions"),
            (BadgeKind::Communication, Lang::Ko) => format!("댓글 {goal}개"),
            (BadgeKind::Communication, Lang::En) => format!("{goal} comments"),
            (BadgeKind::DaysTogether, Lang::Ko) => format!("일정 {goal}개"),
            (BadgeKind::DaysTogether, Lang::En) => format!("{goal} calendar events"),
            (BadgeKind::Accomplished, Lang::Ko) => format!("모두 함께 완료한 미션 {goal}개"),
            (BadgeKind::Accomplished, Lang::En) => format!("{goal} missions completed together"),
            (BadgeKind::DiligentHands, Lang::Ko) => format!("미션 완료 체크 {goal}번"),
            (BadgeKind::DiligentHands, Lang::En) => format!("{goal} mission ticks"),
            (BadgeKind::Photographer, Lang::Ko) => format!("올린 사진 {goal}장"),
            (BadgeKind::Photographer, Lang::En) => format!("{goal} photos added"),
            (BadgeKind::KindWords, Lang::Ko) => format!("쓴 댓글 {goal}개"),
            (BadgeKind::KindWords, Lang::En) => format!("{goal} comments written"),
        }
    }

    /// A stable machine name, for the CLI's JSON and the apps' icons.
    pub fn key(self) -> &'static str {
        match self {
            BadgeKind::CozyStart => "cozy_start",
            BadgeKind::Footprints => "footprints",
            BadgeKind::WarmVoice => "warm_voice",
            BadgeKind::Cooperation => "cooperation",
            BadgeKind::Communication => "communication",
            BadgeKind::DaysTogether => "days_together",
            BadgeKind::Accomplished => "accomplished",
            BadgeKind::DiligentHands => "diligent_hands",
            BadgeKind::Photographer => "photographer",
            BadgeKind::KindWords => "kind_words",
        }
    }
}

/// A badge with progress towards it (e.g. 9/15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    /// Which badge.
    pub kind: BadgeKind,
    /// Progress so far, capped at `goal`.
    pub progress: u64,
    /// What earns it.
    pub goal: u64,
}

impl Badge {
    fn new(kind: BadgeKind, count: usize, goal: u64) -> Self {
        Badge {
            kind,
            progress: (count as u64).min(goal),
            goal,
        }
    }

    /// Whether the family (or member) has it.
    pub fn earned(&self) -> bool {
        self.progress >= self.goal
    }

    /// The badge as the badge dialog shows it, in `lang`.
    pub fn view(&self, lang: Lang) -> BadgeView {
        BadgeView {
            key: self.kind.key(),
            name: lang.pick(self.kind.name_ko(), self.kind.name_en()),
            rule: self.kind.rule(self.goal, lang),
            progress: self.progress,
            goal: self.goal,
            earned: self.earned(),
        }
    }
}

/// A badge with its progress, as the badge dialog shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadgeView {
    /// Stable machine name (`cozy_start`, `footprints`…), e.g. for its icon.
    pub key: &'static str,
    /// Its name in the viewer's language.
    pub name: &'static str,
    /// What earns it ("사진 15장").
    pub rule: String,
    /// Progress so far, capped at `goal` (e.g. 9 of 15).
    pub progress: u64,
    /// What earns it.
    pub goal: u64,
    /// Whether it is earned.
    pub earned: bool,
}

/// One member's badges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberBadges {
    /// User id.
    pub user: String,
    /// Their 호칭.
    pub name: String,
    /// Their badges.
    pub badges: Vec<BadgeView>,
}

/// The badge dialog: the family's badges and each member's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadgeBoard {
    /// The family's badges, in display order.
    pub family: Vec<BadgeView>,
    /// How many of them are earned.
    pub earned: usize,
    /// Each member's badges (host first, then by joining).
    pub members: Vec<MemberBadges>,
}

/// The badge dialog of a family, in `lang`.
pub fn badge_board(f: &Family, lang: Lang) -> BadgeBoard {
    let family: Vec<BadgeView> = badges(f).iter().map(|b| b.view(lang)).collect();
    let mut members: Vec<(&String, &crate::model::Member)> = f.members.iter().collect();
    members.sort_by_key(|(user, m)| (m.role != crate::model::Role::Host, m.joined_at, *user));
    BadgeBoard {
        earned: family.iter().filter(|b| b.earned).count(),
        family,
        members: members
            .into_iter()
            .map(|(user, _)| MemberBadges {
                user: user.clone(),
                name: member_name(f, user, lang),
                badges: member_badges(f, user)
                    .iter()
                    .map(|b| b.view(lang))
                    .collect(),
            })
            .collect(),
    }
}

/// The family's badges, in display order, each with progress. Progress counts what
/// was ever done (a deleted mission still counted towards 협동의 즐거움), so an earned
/// badge stays earned: the family's "ever" counters ([`Family::ever`]), or what exists
/// now when that is more (a family made before the counters).
pub fn badges(f: &Family) -> Vec<Badge> {
    let exists = usize::from(!f.id.is_empty() || !f.members.is_empty());
    let ever = |kind: &str, now: usize| {
        usize::try_from(f.ever(kind, None))
            .unwrap_or(usize::MAX)
            .max(now)
    };
    let comments = f
        .photos
        .values()
        .flat_map(|p| p.comments.values())
        .filter(|c| !c.deleted)
        .count();
    let completed = f
        .missions
        .values()
        .filter(|m| m.completed_at(&f.members).is_some())
        .count();
    vec![
        Badge::new(BadgeKind::CozyStart, exists, 1),
        Badge::new(BadgeKind::Footprints, ever("photos", f.photos.len()), 15),
        Badge::new(BadgeKind::WarmVoice, ever("voices", f.voices.len()), 10),
        Badge::new(
            BadgeKind::Cooperation,
            ever("missions", f.missions.len()),
            20,
        ),
        Badge::new(BadgeKind::Communication, ever("comments", comments), 50),
        Badge::new(BadgeKind::DaysTogether, ever("events", f.calendar.len()), 5),
        Badge::new(BadgeKind::Accomplished, ever("completed", completed), 10),
    ]
}

/// One member's own badges, each with progress (what they ever did, as for the family's).
pub fn member_badges(f: &Family, user: &str) -> Vec<Badge> {
    let ticks = f
        .missions
        .values()
        .filter(|m| m.completions.contains_key(user))
        .count();
    let photos = f.photos.values().filter(|p| p.by == user).count();
    let comments = f
        .photos
        .values()
        .flat_map(|p| p.comments.values())
        .filter(|c| c.by == user && !c.deleted)
        .count();
    let ever = |kind: &str, now: usize| {
        usize::try_from(f.ever(kind, Some(user)))
            .unwrap_or(usize::MAX)
            .max(now)
    };
    vec![
        Badge::new(BadgeKind::DiligentHands, ever("ticks", ticks), 10),
        Badge::new(BadgeKind::Photographer, ever("photos", photos), 10),
        Badge::new(BadgeKind::KindWords, ever("comments", comments), 20),
    ]
}
