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

pub use activity::{Activity, ActivityKind, Notification, activity, notifications};
pub use badges::{Badge, BadgeKind, badges, member_badges};
pub use calendar::{CalendarMonth, MonthEvent, calendar_month};
pub use gallery::{AlbumCard, album_page, albums};
pub use home::{HomeMember, HomeSummary, VoiceRef, home};
pub use memories::{MemoryDay, PhotoRef, memories};
pub use missions::{MissionCard, MissionDashboard, Tick, mission_dashboard, past_missions};

use crate::model::Family;

/// The 호칭 of a user in this family, or a placeholder for someone who left.
pub fn member_name(f: &Family, user: &str) -> String {
    f.members
        .get(user)
        .map(|m| m.name.clone())
        .unwrap_or_else(|| "(떠난 가족)".to_owned())
}
