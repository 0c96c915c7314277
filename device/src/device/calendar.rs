//! The calendar: the month grid with its event list, the memories view, and add /
//! edit / delete.

use doran_client_core::{
    EventInput, EventPatch,
    time_util::{YearMonth, local_date},
    views::{self, CalendarMonth, MemoryDay},
};

use super::Device;
use crate::{
    error::{Error, Result},
    events::Part,
};

impl Device {
    fn month_or_now(&self, month: Option<&str>) -> Result<YearMonth> {
        let viewer = self.shared().viewer();
        match month {
            Some(m) => YearMonth::parse(m).map_err(|e| Error::from_doc(&e, viewer.lang)),
            None => Ok(YearMonth::of(local_date(viewer.now_ms, viewer.offset))),
        }
    }

    /// The month grid (`YYYY-MM`; `None`: this month): every event overlapping it, as
    /// bars on lanes, and per day the first lines and "+N more".
    pub async fn calendar(&self, family: &str, month: Option<&str>) -> Result<CalendarMonth> {
        let month = self.month_or_now(month)?;
        let (_, view) = self.family_view(family).await?;
        Ok(views::calendar_month(&view, month, self.language()))
    }

    /// The memories view of a month: the days photos were added, with their photos.
    pub async fn memories(&self, family: &str, month: Option<&str>) -> Result<Vec<MemoryDay>> {
        let month = self.month_or_now(month)?;
        let (_, view) = self.family_view(family).await?;
        Ok(views::memories(&view, month, self.shared().viewer().offset))
    }

    /// Adds an event. Returns its id.
    pub async fn add_event(&self, family: &str, input: EventInput) -> Result<String> {
        self.edit(family, Part::Calendar, move |fd, now| {
            fd.add_event(input.clone(), now)
        })
        .await
    }

    /// Edits an event (any member: the calendar is the family's).
    pub async fn edit_event(&self, family: &str, event: &str, patch: EventPatch) -> Result<()> {
        if patch == EventPatch::default() {
            return Err(Error::new(
                crate::error::ErrorCode::InvalidInput,
                self.language(),
                "바꿀 내용을 하나 이상 알려 주세요.",
                "Say at least one thing to change.",
            ));
        }
        let event = event.to_owned();
        self.edit(family, Part::Calendar, move |fd, now| {
            fd.edit_event(&event, patch.clone(), now)
        })
        .await
    }

    /// Deletes an event.
    pub async fn delete_event(&self, family: &str, event: &str) -> Result<()> {
        let event = event.to_owned();
        self.edit(family, Part::Calendar, move |fd, now| {
            fd.delete_event(&event, now)
        })
        .await
    }
}
