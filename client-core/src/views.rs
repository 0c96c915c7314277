//! Derived views: pure functions of the document (and, where the product needs it, the
//! clock and the time zone, passed in). Every device computes the same badges, the same
//! dashboard and the same feed from the same state, so none of it is stored or synced.

pub mod activity;
pub mod badges;
pub mod calendar;
pub mod gallery;
pub mod home;
pub mod memories;
pub mod missions;
pub mod voice;

pub use activity::{Activity, ActivityKind, Notification, activity, notifications, still_true};
pub use badges::{
    Badge, BadgeBoard, BadgeKind, BadgeView, MemberBadges, badge_board, badges, member_badges,
};
pub use calendar::{CalendarDay, CalendarMonth, DAY_SLOTS, MonthEvent, calendar_month};
pub use gallery::{
    AlbumCard, CommentView, Liker, PAGE_SIZE, PhotoDetail, PhotoPage, RECOVERED_ALBUM, album_page,
    albums, photo_detail, photo_page,
};
pub use home::{HomeMember, HomeSummary, MoodView, Presence, Viewer, VoiceRef, home};
pub use memories::{MemoryDay, PhotoRef, memories};
pub use missions::{MissionCard, MissionDashboard, Tick, mission_dashboard, past_missions};
pub use voice::{VoiceAlbumCard, VoiceCard, voice_albums, voices};

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    model::{Family, Role},
    time_util::Lang,
};

/// Serialises a role as `host` or `member` (the document's own encoding says `Host`).
pub fn role_key<S: serde::Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match role {
        Role::Host => "host",
        Role::Member => "member",
    })
}

/// The 호칭 of a user in this family as every screen shows it ([`shown_names`]), or
/// a placeholder for someone who left.
pub fn member_name(f: &Family, user: &str, lang: Lang) -> String {
    let Some(m) = f.members.get(user) else {
        return lang.pick("(떠난 가족)", "(former member)").to_owned();
    };
    // Nearly always the 호칭 is the member's alone: no map is built for it.
    let shared = f
        .members
        .iter()
        .any(|(other, o)| other != user && o.name == m.name);
    if !shared {
        return m.name.clone();
    }
    shown_names(f)
        .remove(user)
        .unwrap_or_else(|| m.name.clone())
}

/// Every member's 호칭 as screens show it, by user (hex): their own, unless another
/// member holds the same one. A device checks a 호칭 is free against its own copy, so
/// two renames (or a join and a rename) made apart can meet on one; then the member
/// who joined first (then the lower user id) keeps it and each later one shows it with
/// the smallest free number (막내2), the same on every device, until one of them
/// changes theirs.
pub fn shown_names(f: &Family) -> BTreeMap<String, String> {
    let mut shown: BTreeMap<String, String> = f
        .members
        .iter()
        .map(|(user, m)| (user.clone(), m.name.clone()))
        .collect();
    let mut holders: BTreeMap<&str, Vec<(i64, &str)>> = BTreeMap::new();
    for (user, m) in &f.members {
        holders
            .entry(m.name.as_str())
            .or_default()
            .push((m.joined_at, user.as_str()));
    }
    let mut taken: BTreeSet<String> = f.members.values().map(|m| m.name.clone()).collect();
    for (name, mut group) in holders.into_iter().filter(|(_, g)| g.len() > 1) {
        group.sort_unstable();
        for (_, user) in group.into_iter().skip(1) {
            let numbered = crate::validate::free_member_name(name, &taken);
            taken.insert(numbered.clone());
            shown.insert(user.to_owned(), numbered);
        }
    }
    shown
}
