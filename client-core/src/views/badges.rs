//! Badges: family-level (the original's six, plus ours) and per member.

use crate::model::Family;

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
}

/// The family's badges, in display order, each with progress.
pub fn badges(f: &Family) -> Vec<Badge> {
    let exists = usize::from(!f.id.is_empty() || !f.members.is_empty());
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
        Badge::new(BadgeKind::Footprints, f.photos.len(), 15),
        Badge::new(BadgeKind::WarmVoice, f.voices.len(), 10),
        Badge::new(BadgeKind::Cooperation, f.missions.len(), 20),
        Badge::new(BadgeKind::Communication, comments, 50),
        Badge::new(BadgeKind::DaysTogether, f.calendar.len(), 5),
        Badge::new(BadgeKind::Accomplished, completed, 10),
    ]
}

/// One member's own badges, each with progress.
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
    vec![
        Badge::new(BadgeKind::DiligentHands, ticks, 10),
        Badge::new(BadgeKind::Photographer, photos, 10),
        Badge::new(BadgeKind::KindWords, comments, 20),
    ]
}
