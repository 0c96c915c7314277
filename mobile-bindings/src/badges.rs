//! Badges: the badge dialog, the family's and each member's, with progress.

use doran_device::core::views;

use crate::{device::Device, error::Result, families::count};

/// A badge with its progress.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BadgeView {
    /// Stable machine name (`cozy_start`, `footprints`…), e.g. for its icon.
    pub key: String,
    /// Its name in the viewer's language.
    pub name: String,
    /// What earns it ("사진 15장").
    pub rule: String,
    /// Progress so far, capped at `goal` (e.g. 9 of 15).
    pub progress: u64,
    /// What earns it.
    pub goal: u64,
    /// Whether it is earned.
    pub earned: bool,
}

impl From<views::BadgeView> for BadgeView {
    fn from(b: views::BadgeView) -> Self {
        BadgeView {
            key: b.key.to_owned(),
            name: b.name.to_owned(),
            rule: b.rule,
            progress: b.progress,
            goal: b.goal,
            earned: b.earned,
        }
    }
}

/// One member's badges.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MemberBadges {
    /// User id.
    pub user: String,
    /// Their 호칭.
    pub name: String,
    /// Their badges.
    pub badges: Vec<BadgeView>,
}

/// The badge dialog: the family's badges and each member's.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BadgeBoard {
    /// The family's badges, in display order.
    pub family: Vec<BadgeView>,
    /// How many of them are earned.
    pub earned: u64,
    /// Each member's badges (host first, then by joining).
    pub members: Vec<MemberBadges>,
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// The badge dialog.
    pub async fn badges(&self, family: String) -> Result<BadgeBoard> {
        let b = self.inner.badges(&family).await?;
        Ok(BadgeBoard {
            family: b.family.into_iter().map(Into::into).collect(),
            earned: count(b.earned),
            members: b
                .members
                .into_iter()
                .map(|m| MemberBadges {
                    user: m.user,
                    name: m.name,
                    badges: m.badges.into_iter().map(Into::into).collect(),
                })
                .collect(),
        })
    }
}
