//! Families: the switcher, one family with its members and their presence, and what
//! changes membership (create, rename, 호칭, remove, leave, delete); the export.

use doran_device::{core::model, core::views, screens};

use crate::{
    device::Device,
    error::{DoranError, Result},
};

/// A member's role in a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Role {
    /// Created the family: may rename it, remove members, delete it.
    Host,
    /// Everyone else.
    Member,
}

impl From<model::Role> for Role {
    fn from(r: model::Role) -> Self {
        match r {
            model::Role::Host => Role::Host,
            model::Role::Member => Role::Member,
        }
    }
}

/// Today's mood (오늘의 기분) as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MoodView {
    /// Machine name (`good`, `love`, `nice`, `sad`, `head`, `angry`, `sleepy`).
    pub key: String,
    /// The emoji.
    pub emoji: String,
    /// The label in the viewer's language (좋아요 / Good).
    pub label: String,
}

impl From<views::MoodView> for MoodView {
    fn from(m: views::MoodView) -> Self {
        MoodView {
            key: m.key.to_owned(),
            emoji: m.emoji.to_owned(),
            label: m.label.to_owned(),
        }
    }
}

/// A family in the switcher.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FamilyCard {
    /// The family.
    pub family: String,
    /// Its title.
    pub title: String,
    /// How many members.
    pub members: u64,
    /// The user's role.
    pub role: Role,
    /// Whether the user is still a member (`false`: removed; the copy is read-only).
    pub member: bool,
    /// End-to-end sealed: the relay holds only envelopes of its documents.
    pub sealed: bool,
    /// This device has not been let into the sealed family yet: its content shows
    /// once a member's device online hands it the keys (edits are refused until then).
    pub waiting_for_keys: bool,
}

/// A member of a family with everything shown next to them.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MemberView {
    /// The user.
    pub user: String,
    /// 호칭.
    pub name: String,
    /// Host or member.
    pub role: Role,
    /// Avatar ring color (`#RRGGBB`).
    pub color: String,
    /// Joined (Unix ms).
    pub joined_at: i64,
    /// Whether this is the user of this device.
    pub me: bool,
    /// Their nickname, once their profile synced.
    pub nickname: Option<String>,
    /// Their profile photo (blob hex), if set: [`Device::avatar_file`].
    pub avatar: Option<String>,
    /// Their default avatar (1–8), once their profile synced.
    pub default_avatar: Option<u8>,
    /// Today's mood.
    pub mood: Option<MoodView>,
    /// Connected now.
    pub online: bool,
    /// When last connected (ms), if not online.
    pub last_seen: Option<i64>,
    /// "접속중" or how long ago, if known.
    pub status: Option<String>,
    /// Their safety code was compared in person on this device and was the same.
    pub verified: bool,
}

/// The safety code this device shows for a member: the same sixty digits on the
/// member's device mean each device holds the other user's real key.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SafetyCodeView {
    /// The member.
    pub user: String,
    /// Their 호칭.
    pub name: String,
    /// Twelve groups of five digits (show them in three rows of four).
    pub groups: Vec<String>,
    /// The groups joined by spaces.
    pub code: String,
    /// Compared and the same, on this device.
    pub verified: bool,
}

impl From<screens::SafetyCodeView> for SafetyCodeView {
    fn from(v: screens::SafetyCodeView) -> Self {
        SafetyCodeView {
            user: v.user,
            name: v.name,
            groups: v.groups,
            code: v.code,
            verified: v.verified,
        }
    }
}

impl From<screens::MemberView> for MemberView {
    fn from(m: screens::MemberView) -> Self {
        MemberView {
            user: m.user,
            name: m.name,
            role: m.role.into(),
            color: m.color,
            joined_at: m.joined_at,
            me: m.me,
            nickname: m.nickname,
            avatar: m.avatar,
            default_avatar: m.default_avatar,
            mood: m.mood.map(Into::into),
            online: m.online,
            last_seen: m.last_seen,
            status: m.status,
            verified: m.verified,
        }
    }
}

/// A family's header and settings screen.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FamilyView {
    /// The family.
    pub family: String,
    /// Its title.
    pub title: String,
    /// The user's role.
    pub role: Role,
    /// Whether the user is still a member.
    pub member: bool,
    /// End-to-end sealed (see [`FamilyCard::sealed`]).
    pub sealed: bool,
    /// Waiting to be let in (see [`FamilyCard::waiting_for_keys`]).
    pub waiting_for_keys: bool,
    /// Members, host first, then by joining.
    pub members: Vec<MemberView>,
}

/// A member's online state, from the relay.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PresenceView {
    /// The member.
    pub user: String,
    /// Their 호칭.
    pub name: String,
    /// Connected now.
    pub online: bool,
    /// When last connected (Unix ms).
    pub last_seen: Option<i64>,
    /// "접속중" or how long ago.
    pub status: Option<String>,
}

/// A count for the apps (`usize` does not cross the boundary).
pub(crate) fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// The user's families, in the order they joined them (removed ones too, marked).
    pub async fn families(&self) -> Result<Vec<FamilyCard>> {
        Ok(self
            .inner
            .families()
            .await?
            .into_iter()
            .map(|c| FamilyCard {
                family: c.family,
                title: c.title,
                members: count(c.members),
                role: c.role.into(),
                member: c.member,
                sealed: c.sealed,
                waiting_for_keys: c.waiting_for_keys,
            })
            .collect())
    }

    /// One family (by id, or by its title): its title, the user's role, and its
    /// members with their profile, today's mood and presence.
    pub async fn family(&self, family: String) -> Result<FamilyView> {
        let v = self.inner.family(&family).await?;
        Ok(FamilyView {
            family: v.family,
            title: v.title,
            role: v.role.into(),
            member: v.member,
            sealed: v.sealed,
            waiting_for_keys: v.waiting_for_keys,
            members: v.members.into_iter().map(Into::into).collect(),
        })
    }

    /// Who of a family is online, and when the others were last seen.
    pub async fn presence(&self, family: String) -> Result<Vec<PresenceView>> {
        Ok(self
            .inner
            .presence(&family)
            .await?
            .into_iter()
            .map(|p| PresenceView {
                user: p.user,
                name: p.name,
                online: p.online,
                last_seen: p.last_seen,
                status: p.status,
            })
            .collect())
    }

    /// Creates a family with the user as its host under `my_name` (their 호칭).
    /// Returns the family id. Needs the relay.
    pub async fn create_family(&self, title: String, my_name: String) -> Result<String> {
        Ok(self.inner.create_family(&title, &my_name).await?)
    }

    /// Renames a family (host only).
    pub async fn rename_family(&self, family: String, title: String) -> Result<()> {
        Ok(self.inner.rename_family(&family, &title).await?)
    }

    /// Seals a family that was created clear end to end (host only): from then on the
    /// relay keeps only envelopes of its documents, and drops its clear history once
    /// another member's phone confirms the sealed snapshot. False if it was sealed
    /// already (every family made by the apps is).
    pub async fn seal_family(&self, family: String) -> Result<bool> {
        Ok(self.inner.seal_family(&family).await?)
    }

    /// Changes the user's own 호칭 in a family.
    pub async fn set_my_name(&self, family: String, name: String) -> Result<()> {
        Ok(self.inner.set_my_name(&family, &name).await?)
    }

    /// Removes a member (host only), named by user id or by their 호칭 in the family.
    pub async fn remove_member(&self, family: String, user: String) -> Result<()> {
        Ok(self.inner.remove_member(&family, &user).await?)
    }

    /// The safety code of the user and a member (user id or 호칭), to compare in
    /// person with the one the member's phone shows.
    pub async fn safety_code(&self, family: String, user: String) -> Result<SafetyCodeView> {
        Ok(self.inner.safety_code(&family, &user).await?.into())
    }

    /// Compares the digits the member's phone shows (typed or scanned, spaces
    /// allowed) with this phone's; the same marks them verified here, a difference is
    /// [`DoranError::SafetyCodeMismatch`](crate::DoranError::SafetyCodeMismatch).
    pub async fn verify_safety_code(
        &self,
        family: String,
        user: String,
        code: String,
    ) -> Result<SafetyCodeView> {
        Ok(self
            .inner
            .verify_safety_code(&family, &user, &code)
            .await?
            .into())
    }

    /// Leaves a family (not the host, who deletes it instead).
    pub async fn leave_family(&self, family: String) -> Result<()> {
        Ok(self.inner.leave_family(&family).await?)
    }

    /// Deletes a family with everything in it (host only).
    pub async fn delete_family(&self, family: String) -> Result<()> {
        Ok(self.inner.delete_family(&family).await?)
    }

    /// The whole state of a family as JSON (every entity, as the facade serialises
    /// it), for an export or a backup file. JSON, not records: no screen shows it.
    pub async fn export_json(&self, family: String) -> Result<String> {
        let lang = self.inner.language();
        let state = self.inner.export(&family).await?;
        serde_json::to_string_pretty(&state).map_err(|e| {
            tracing::error!(error = %e, "serialising an export failed");
            DoranError::from(doran_device::Error::code(
                doran_device::ErrorCode::Storage,
                lang,
            ))
        })
    }
}
