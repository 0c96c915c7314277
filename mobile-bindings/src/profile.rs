//! The profile: nickname, profile photo (prepared on the device), today's mood, and the
//! user's settings (language, which notifications).

use std::path::{Path, PathBuf};

use doran_device::{ProfileChanges as FacadeChanges, screens};

use crate::{device::Device, error::Result, families::MoodView};

/// A profile: the user's own, or a family member's.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProfileView {
    /// The user.
    pub user: String,
    /// Nickname.
    pub nickname: String,
    /// Profile photo (blob hex), if set: [`Device::avatar_file`].
    pub avatar: Option<String>,
    /// The default avatar (1–8).
    pub default_avatar: u8,
    /// Today's mood (a mood from an earlier day is none).
    pub mood: Option<MoodView>,
    /// Whether it is the user of this device.
    pub me: bool,
}

/// The user's settings.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SettingsView {
    /// `ko` or `en`.
    pub language: String,
    /// Notifications about family news (missions, photos, events, voice messages).
    pub notify_family: bool,
    /// Notifications about likes and comments on the user's photos.
    pub notify_reactions: bool,
}

/// What to change in the user's profile; `None` leaves a field as it is. All or
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ProfileChanges {
    /// New nickname (2–15 characters of Hangul, letters, digits and `._ -`).
    #[uniffi(default = None)]
    pub nickname: Option<String>,
    /// Today's mood (`good`, `love`, `nice`, `sad`, `head`, `angry`, `sleepy`).
    #[uniffi(default = None)]
    pub mood: Option<String>,
    /// A new profile photo: an image file to prepare (a small square JPEG, no
    /// metadata).
    #[uniffi(default = None)]
    pub avatar_file: Option<String>,
    /// Go back to the default avatar.
    #[uniffi(default = false)]
    pub clear_avatar: bool,
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// A profile: the user's own (`None`), or a family member's as this device has it.
    pub async fn profile(&self, user: Option<String>) -> Result<ProfileView> {
        let p = self.inner.profile(user.as_deref()).await?;
        Ok(ProfileView {
            user: p.user,
            nickname: p.nickname,
            avatar: p.avatar,
            default_avatar: p.default_avatar,
            mood: p.mood.map(Into::into),
            me: p.me,
        })
    }

    /// The profile photo of a user (`None`: the user's own) as a file path on this
    /// device, downloading it if needed; `None` for the default avatar.
    pub async fn avatar_file(&self, user: Option<String>) -> Result<Option<String>> {
        Ok(self
            .inner
            .avatar_file(user.as_deref())
            .await?
            .map(|p| p.display().to_string()))
    }

    /// Changes the profile: see [`ProfileChanges`].
    pub async fn update_profile(&self, changes: ProfileChanges) -> Result<()> {
        let changes = FacadeChanges {
            nickname: changes.nickname,
            mood: changes.mood,
            avatar_file: changes.avatar_file.map(PathBuf::from),
            clear_avatar: changes.clear_avatar,
        };
        Ok(self.inner.update_profile(changes).await?)
    }

    /// Sets a new profile photo from an image file.
    pub async fn set_avatar(&self, path: String) -> Result<()> {
        Ok(self.inner.set_avatar(Path::new(&path)).await?)
    }

    /// Sets today's mood.
    pub async fn set_mood(&self, mood: String) -> Result<()> {
        Ok(self.inner.set_mood(&mood).await?)
    }

    /// The user's settings.
    pub async fn settings(&self) -> Result<SettingsView> {
        let s = self.inner.settings().await?;
        Ok(SettingsView {
            language: s.language,
            notify_family: s.notify_family,
            notify_reactions: s.notify_reactions,
        })
    }

    /// Changes the user's settings (synced to their other devices); the language takes
    /// effect at once.
    pub async fn set_settings(&self, settings: SettingsView) -> Result<()> {
        Ok(self
            .inner
            .set_settings(screens::SettingsView {
                language: settings.language,
                notify_family: settings.notify_family,
                notify_reactions: settings.notify_reactions,
            })
            .await?)
    }
}
