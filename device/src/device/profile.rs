//! The profile: nickname, profile photo (prepared on this device), today's mood, and
//! the user's settings (language, which notifications).

use std::{path::Path, sync::Arc};

use doran_client_core::{
    model::{Mood, Personal, Settings},
    seal::BlobRef,
    store::BlobOwner,
    time_util::{Lang, local_date},
    views::MoodView,
};
use doran_protocol::UserId;
use serde::Deserialize;

use super::Device;
use crate::{
    error::{Error, ErrorCode, Result},
    events::DeviceEvent,
    screens::{ProfileView, SettingsView},
};

/// The largest profile photo file the app reads.
const MAX_AVATAR_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// What to change in the user's profile; `None` leaves a field as it is. Everything is
/// checked (and a new photo prepared) before anything changes: all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ProfileChanges {
    /// New nickname (2–15 characters of Hangul, letters, digits and `._ -`).
    #[serde(default)]
    pub nickname: Option<String>,
    /// Today's mood (`good`, `love`, `nice`, `sad`, `head`, `angry`, `sleepy`).
    #[serde(default)]
    pub mood: Option<String>,
    /// A new profile photo: a file to prepare.
    #[serde(default)]
    pub avatar_file: Option<std::path::PathBuf>,
    /// Go back to the default avatar.
    #[serde(default)]
    pub clear_avatar: bool,
}

impl Device {
    /// A profile: the user's own (`None` or `"me"`), or a family member's as this device
    /// has it.
    pub async fn profile(&self, user: Option<&str>) -> Result<ProfileView> {
        let me = self.session()?.account.user;
        let user = self.user_or_me(user)?;
        let personal = self.personal(user).await?;
        let viewer = self.shared().viewer();
        let today = local_date(viewer.now_ms, viewer.offset);
        let fresh = personal.mood_at.map(|at| local_date(at, viewer.offset)) == Some(today);
        Ok(ProfileView {
            user: user.to_hex(),
            nickname: personal.nickname,
            avatar: personal.avatar,
            default_avatar: personal.default_avatar,
            mood: personal
                .mood
                .filter(|_| fresh)
                .map(|m| MoodView::of(m, viewer.lang)),
            me: user == me,
        })
    }

    /// The user a profile call names: `None` or `"me"` for the user of this device.
    fn user_or_me(&self, user: Option<&str>) -> Result<UserId> {
        match user.map(str::trim) {
            None | Some("me") => Ok(self.session()?.account.user),
            Some(u) => u
                .parse()
                .map_err(|_| Error::code(ErrorCode::NotFound, self.language())),
        }
    }

    /// The personal document of `user` as this device has it.
    pub(crate) async fn personal(&self, user: UserId) -> Result<Personal> {
        let session = self.session()?;
        let host = Arc::clone(&session.host);
        let account = session.account.clone();
        self.blocking(move |lang| {
            if user == account.user {
                host.remember_personal_doc(user, account.personal_doc)
                    .map_err(|e| Error::from_host(&e, lang))?;
            }
            host.profile(user)
                .map_err(|e| Error::from_host(&e, lang))?
                .ok_or_else(|| {
                    Error::new(
                        ErrorCode::NotFound,
                        lang,
                        "이 기기에 그 사람의 프로필이 아직 없어요. 같은 가족이 아니거나 아직 동기화되지 않았어요.",
                        "That person's profile is not on this device: not in a family with you, or not synced yet.",
                    )
                })
        })
        .await
    }

    /// The profile photo of a user (`None`/"me": the user's own) as a file on this
    /// device, downloading it if needed; `None` for the default avatar.
    pub async fn avatar_file(&self, user: Option<&str>) -> Result<Option<std::path::PathBuf>> {
        let personal = self.personal(self.user_or_me(user)?).await?;
        let Some(hex) = &personal.avatar else {
            return Ok(None);
        };
        let blob = BlobRef::parse(hex, personal.avatar_key)
            .ok_or_else(|| Error::code(ErrorCode::Storage, self.language()))?;
        self.fetch_blob(blob, crate::media_check::Expect::Avatar)
            .await
            .map(Some)
    }

    /// Changes the profile: see [`ProfileChanges`]. All or nothing.
    pub async fn update_profile(&self, changes: ProfileChanges) -> Result<()> {
        let photo = match &changes.avatar_file {
            Some(path) => Some(self.read_file(path, MAX_AVATAR_FILE_BYTES).await?),
            None => None,
        };
        self.change_profile(changes, photo).await
    }

    /// [`update_profile`](Self::update_profile) with the new profile photo's bytes
    /// (`photo`) rather than a file (an app's picker that hands over bytes).
    async fn change_profile(&self, changes: ProfileChanges, photo: Option<Vec<u8>>) -> Result<()> {
        let lang = self.language();
        let nickname = changes
            .nickname
            .as_deref()
            .map(doran_client_core::validate::nickname)
            .transpose()
            .map_err(|e| Error::from_doc(&e, lang))?;
        let mood: Option<Mood> = changes
            .mood
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| Error::from_doc(&e, lang))?;
        let session = self.session()?;
        let blobs = session.blobs.clone();
        // Prepared before any edit, so a photo that cannot be read changes nothing.
        let avatar = match photo {
            Some(original) => Some(
                self.blocking(move |lang| {
                    let prepared = crate::photo::prepare_avatar(&original)
                        .map_err(|e| Error::from_photo(&e, lang))?;
                    blobs
                        .add_local(&prepared.jpeg, prepared.mime, BlobOwner::Me)
                        .map_err(|e| Error::from_sync(&e, lang))
                })
                .await?,
            ),
            None => None,
        };
        let host = Arc::clone(&session.host);
        let doc = session.account.personal_doc;
        let clear = changes.clear_avatar;
        let now = self.shared().now();
        self.blocking(move |lang| {
            let err = |e: doran_client_core::sync::HostError| Error::from_host(&e, lang);
            if let Some(n) = &nickname {
                host.edit_personal(doc, |p| p.set_nickname(n, now))
                    .map_err(err)?;
            }
            if let Some(m) = mood {
                host.edit_personal(doc, |p| p.set_mood(m, now))
                    .map_err(err)?;
            }
            if let Some(hash) = avatar {
                host.edit_personal(doc, |p| p.set_avatar(Some(hash), now))
                    .map_err(err)?;
            } else if clear {
                host.edit_personal(doc, |p| p.set_avatar(None, now))
                    .map_err(err)?;
            }
            Ok(())
        })
        .await?;
        self.profile_saved().await
    }

    /// Sets a new profile photo from an image file: see [`update_profile`](Self::update_profile).
    pub async fn set_avatar(&self, path: &Path) -> Result<()> {
        self.update_profile(ProfileChanges {
            avatar_file: Some(path.to_owned()),
            ..ProfileChanges::default()
        })
        .await
    }

    /// Sets a new profile photo from an image's bytes (JPEG, PNG, WebP or GIF, at most
    /// 64 MB), prepared as [`set_avatar`](Self::set_avatar) does.
    pub async fn set_avatar_bytes(&self, image: Vec<u8>) -> Result<()> {
        if image.len() as u64 > MAX_AVATAR_FILE_BYTES {
            return Err(Error::code(ErrorCode::TooLarge, self.language()));
        }
        self.change_profile(ProfileChanges::default(), Some(image))
            .await
    }

    /// Sets today's mood.
    pub async fn set_mood(&self, mood: &str) -> Result<()> {
        self.update_profile(ProfileChanges {
            mood: Some(mood.to_owned()),
            ..ProfileChanges::default()
        })
        .await
    }

    /// The user's settings.
    pub async fn settings(&self) -> Result<SettingsView> {
        let me = self.me()?;
        let s = self.personal(me).await?.settings;
        Ok(SettingsView {
            language: Lang::from_code(&s.language).code().to_owned(),
            notify_family: s.notify_family,
            notify_reactions: s.notify_reactions,
        })
    }

    /// Changes the user's settings (synced to their other devices). The language
    /// takes effect at once.
    pub async fn set_settings(&self, settings: SettingsView) -> Result<()> {
        let me = self.me()?;
        let current = self.personal(me).await?.settings;
        let next = Settings {
            language: Lang::from_code(&settings.language).code().to_owned(),
            notify_family: settings.notify_family,
            notify_reactions: settings.notify_reactions,
            ..current
        };
        let session = self.session()?;
        let host = Arc::clone(&session.host);
        let doc = session.account.personal_doc;
        let now = self.shared().now();
        self.blocking(move |lang| {
            host.edit_personal(doc, |p| p.set_settings(next.clone(), now))
                .map_err(|e| Error::from_host(&e, lang))
        })
        .await?;
        self.refresh_language().await;
        self.profile_saved().await
    }

    /// Sets only the language.
    pub(crate) async fn set_settings_language(&self, lang: Lang) -> Result<()> {
        let mut s = self.settings().await?;
        s.language = lang.code().to_owned();
        self.set_settings(s).await
    }

    async fn profile_saved(&self) -> Result<()> {
        let session = self.session()?;
        session.driver.local_change();
        session.upload_kick.notify_one();
        let pending = self.pending().await?;
        session.driver.note_pending(pending);
        let me = session.account.user.to_hex();
        self.shared().emit(DeviceEvent::Saved {
            family: None,
            pending,
        });
        self.shared().emit(DeviceEvent::ProfileChanged { user: me });
        Ok(())
    }

    /// Takes the language from the user's settings, once their profile is here.
    pub(crate) async fn refresh_language(&self) {
        let Ok(me) = self.me() else {
            return;
        };
        if let Ok(p) = self.personal(me).await {
            *super::lock(&self.shared().lang) = Lang::from_code(&p.settings.language);
        }
    }
}
