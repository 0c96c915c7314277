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

/// The 호칭 of a user in this family, or a placeholder for someone who left.
pub fn member_name(f: &Family, user: &str, lang: Lang) -> String {
    f.members
        .get(user)
        .map(|m| m.name.clone())
        .unwrap_or_else(|| lang.pick("(떠난 가족)", "(former member)").to_owned())
}
