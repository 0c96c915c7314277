//! Missions: the mission page (this month and past months), add / edit / delete, and
//! ticking one's own completion.

use doran_device::{MissionChanges as FacadeChanges, MissionInput as FacadeInput, core::views};

use crate::{device::Device, error::Result, families::count};

/// One participant's tick on a mission card.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Tick {
    /// User id.
    pub user: String,
    /// Their 호칭.
    pub name: String,
    /// When they ticked (Unix ms), if they did.
    pub done_at: Option<i64>,
}

/// A mission as a card shows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MissionCard {
    /// Mission id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Creator's user id.
    pub created_by: String,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Due date (`YYYY-MM-DD`), if any.
    pub due: Option<String>,
    /// Participants, by 호칭.
    pub ticks: Vec<Tick>,
    /// When everyone had ticked.
    pub completed_at: Option<i64>,
}

impl From<views::MissionCard> for MissionCard {
    fn from(c: views::MissionCard) -> Self {
        MissionCard {
            id: c.id,
            title: c.title,
            created_by: c.created_by,
            created_at: c.created_at,
            due: c.due,
            ticks: c
                .ticks
                .into_iter()
                .map(|t| Tick {
                    user: t.user,
                    name: t.name,
                    done_at: t.done_at,
                })
                .collect(),
            completed_at: c.completed_at,
        }
    }
}

/// The mission page's status box and cards for one month.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MissionDashboard {
    /// The month shown (`YYYY-MM`).
    pub month: String,
    /// Missions created this month.
    pub total: u64,
    /// Of those, completed.
    pub completed: u64,
    /// Completion rate in percent, rounded down.
    pub rate: u32,
    /// The label for the rate, in the viewer's language ("우리는 환상의 가족"…).
    pub label: String,
    /// Badges the family owns.
    pub badges_owned: u64,
    /// This month's missions, newest first.
    pub missions: Vec<MissionCard>,
}

/// The mission page: this month's box and cards, and the past months' missions
/// (read-only).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MissionsView {
    /// This month.
    pub month: MissionDashboard,
    /// Earlier months, newest first.
    pub past: Vec<MissionCard>,
}

/// A new mission.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MissionInput {
    /// Title, 1–17 characters.
    pub title: String,
    /// Who takes part: user ids or 호칭; empty means everyone.
    #[uniffi(default)]
    pub participants: Vec<String>,
    /// Due date, `YYYY-MM-DD`.
    #[uniffi(default = None)]
    pub due: Option<String>,
}

/// Changes to a mission; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct MissionChanges {
    /// New title.
    #[uniffi(default = None)]
    pub title: Option<String>,
    /// New participants (user ids or 호칭).
    #[uniffi(default = None)]
    pub participants: Option<Vec<String>>,
    /// New due date (`YYYY-MM-DD`).
    #[uniffi(default = None)]
    pub due: Option<String>,
    /// Remove the due date (`due` is then ignored).
    #[uniffi(default = false)]
    pub clear_due: bool,
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// The mission page for `month` (`YYYY-MM`; `None`: this month).
    pub async fn missions(&self, family: String, month: Option<String>) -> Result<MissionsView> {
        let v = self.inner.missions(&family, month.as_deref()).await?;
        let m = v.month;
        Ok(MissionsView {
            month: MissionDashboard {
                month: m.month.to_string(),
                total: count(m.total),
                completed: count(m.completed),
                rate: m.rate,
                label: m.label.to_owned(),
                badges_owned: count(m.badges_owned),
                missions: m.missions.into_iter().map(Into::into).collect(),
            },
            past: v.past.into_iter().map(Into::into).collect(),
        })
    }

    /// Adds a mission. Returns its id. Works offline.
    pub async fn add_mission(&self, family: String, input: MissionInput) -> Result<String> {
        let input = FacadeInput {
            title: input.title,
            participants: input.participants,
            due: input.due,
        };
        Ok(self.inner.add_mission(&family, input).await?)
    }

    /// Edits a mission's title, participants or due date.
    pub async fn edit_mission(
        &self,
        family: String,
        mission: String,
        changes: MissionChanges,
    ) -> Result<()> {
        let changes = FacadeChanges {
            title: changes.title,
            participants: changes.participants,
            due: if changes.clear_due {
                Some(None)
            } else {
                changes.due.map(Some)
            },
        };
        Ok(self.inner.edit_mission(&family, &mission, changes).await?)
    }

    /// Deletes a mission (its creator or the host).
    pub async fn delete_mission(&self, family: String, mission: String) -> Result<()> {
        Ok(self.inner.delete_mission(&family, &mission).await?)
    }

    /// Ticks (`done`) or unticks the user's own completion of a mission.
    pub async fn set_mission_done(
        &self,
        family: String,
        mission: String,
        done: bool,
    ) -> Result<()> {
        Ok(self.inner.set_mission_done(&family, &mission, done).await?)
    }
}
