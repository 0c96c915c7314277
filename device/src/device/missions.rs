//! Missions: the mission page (this month and past months), add / edit / delete, and
//! ticking one's own completion.

use doran_client_core::{
    MissionPatch,
    model::Family,
    time_util::{YearMonth, local_date},
    views::{self, BadgeBoard},
};
use doran_protocol::UserId;
use serde::Deserialize;

use super::Device;
use crate::{
    error::{Error, ErrorCode, Result},
    events::Part,
    screens::MissionsView,
};

/// A new mission.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MissionInput {
    /// Title, 1–17 characters.
    pub title: String,
    /// Who takes part: user ids or 호칭 (unique in the family); empty means everyone.
    #[serde(default)]
    pub participants: Vec<String>,
    /// Due date, `YYYY-MM-DD`.
    #[serde(default)]
    pub due: Option<String>,
}

/// Changes to a mission; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MissionChanges {
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New participants (user ids or 호칭).
    #[serde(default)]
    pub participants: Option<Vec<String>>,
    /// New due date; `Some(None)` (JSON `null` given explicitly) clears it.
    #[serde(default, deserialize_with = "some_or_null")]
    pub due: Option<Option<String>>,
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The members named in `names`: a user id, or a 호칭 (or nickname-free name) unique in
/// the family. Unknown names are a typed error naming them.
pub(crate) fn resolve_members(
    view: &Family,
    names: &[String],
    lang: doran_client_core::time_util::Lang,
) -> Result<Vec<UserId>> {
    names
        .iter()
        .map(|name| {
            let name = name.trim();
            if let Ok(user) = name.parse::<UserId>()
                && view.members.contains_key(&user.to_hex())
            {
                return Ok(user);
            }
            let matches: Vec<&String> = view
                .members
                .iter()
                .filter(|(_, m)| m.name == name)
                .map(|(u, _)| u)
                .collect();
            match matches.as_slice() {
                [one] => one
                    .parse()
                    .map_err(|_| Error::code(ErrorCode::Storage, lang)),
                _ => Err(Error::new(
                    ErrorCode::NotFound,
                    lang,
                    format!("가족 중에 '{name}'을(를) 찾을 수 없어요."),
                    format!("Nobody in the family is called “{name}”."),
                )),
            }
        })
        .collect()
}

impl Device {
    /// The mission page for `month` (`YYYY-MM`; `None`: this month): its missions and
    /// status box, and the missions of earlier months.
    pub async fn missions(&self, family: &str, month: Option<&str>) -> Result<MissionsView> {
        let (_, view) = self.family_view(family).await?;
        let viewer = self.shared().viewer();
        let month = match month {
            Some(m) => YearMonth::parse(m).map_err(|e| Error::from_doc(&e, viewer.lang))?,
            None => YearMonth::of(local_date(viewer.now_ms, viewer.offset)),
        };
        Ok(MissionsView {
            month: views::mission_dashboard(&view, month, viewer.offset, viewer.lang),
            past: views::past_missions(&view, month, viewer.offset, viewer.lang),
        })
    }

    /// The badge dialog: the family's badges and each member's, with progress.
    pub async fn badges(&self, family: &str) -> Result<BadgeBoard> {
        let (_, view) = self.family_view(family).await?;
        Ok(views::badge_board(&view, self.language()))
    }

    /// Adds a mission. Returns its id.
    pub async fn add_mission(&self, family: &str, input: MissionInput) -> Result<String> {
        let (_, view) = self.edit_view(family).await?;
        let lang = self.language();
        let participants = resolve_members(&view, &input.participants, lang)?;
        self.edit(family, Part::Missions, move |fd, now| {
            fd.add_mission(&input.title, &participants, input.due.as_deref(), now)
        })
        .await
    }

    /// Edits a mission's title, participants or due date.
    pub async fn edit_mission(
        &self,
        family: &str,
        mission: &str,
        changes: MissionChanges,
    ) -> Result<()> {
        self.require_this_month(family, mission).await?;
        let (_, view) = self.edit_view(family).await?;
        let lang = self.language();
        if changes.title.is_none() && changes.participants.is_none() && changes.due.is_none() {
            return Err(Error::new(
                ErrorCode::InvalidInput,
                lang,
                "바꿀 내용을 하나 이상 알려 주세요.",
                "Say at least one thing to change.",
            ));
        }
        let participants = changes
            .participants
            .as_deref()
            .map(|p| resolve_members(&view, p, lang))
            .transpose()?;
        let mission = mission.to_owned();
        let patch = MissionPatch {
            title: changes.title,
            participants,
            due: changes.due,
        };
        self.edit(family, Part::Missions, move |fd, now| {
            fd.edit_mission(&mission, patch.clone(), now)
        })
        .await
    }

    /// Past months are read-only (FEATURES.md): a mission created before this month (in
    /// the viewer's time zone) can no longer be ticked, edited or deleted.
    async fn require_this_month(&self, family: &str, mission: &str) -> Result<()> {
        let (_, view) = self.family_view(family).await?;
        let viewer = self.shared().viewer();
        let Some(m) = view.missions.get(mission) else {
            // Not found: the edit itself says so.
            return Ok(());
        };
        let this_month = YearMonth::of(local_date(viewer.now_ms, viewer.offset));
        if YearMonth::of(local_date(m.created_at, viewer.offset)) < this_month {
            return Err(Error::code(ErrorCode::PastMonth, viewer.lang));
        }
        Ok(())
    }

    /// Deletes a mission (its creator or the host).
    pub async fn delete_mission(&self, family: &str, mission: &str) -> Result<()> {
        self.require_this_month(family, mission).await?;
        let mission = mission.to_owned();
        self.edit(family, Part::Missions, move |fd, now| {
            fd.delete_mission(&mission, now)
        })
        .await
    }

    /// Ticks (`done`) or unticks the user's own completion of a mission.
    pub async fn set_mission_done(&self, family: &str, mission: &str, done: bool) -> Result<()> {
        self.require_this_month(family, mission).await?;
        let mission = mission.to_owned();
        self.edit(family, Part::Missions, move |fd, now| {
            fd.set_mission_done(&mission, done, now)
        })
        .await
    }
}
