//! The calendar: the month grid with its event list, the memories view, and add /
//! edit / delete.

use doran_device::core::{EventInput as CoreInput, EventPatch as CorePatch, model, views};

use crate::{device::Device, error::Result, families::count, gallery::PhotoRef};

/// A calendar event.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CalendarEvent {
    /// Title, 1–14 characters.
    pub title: String,
    /// Free notes.
    pub notes: String,
    /// First day, `YYYY-MM-DD`.
    pub start: String,
    /// Last day (inclusive), `YYYY-MM-DD`.
    pub end: String,
    /// Start time `HH:MM` on the first day; `None` for an all-day event.
    pub start_time: Option<String>,
    /// End time `HH:MM` on the last day.
    pub end_time: Option<String>,
    /// A palette color (`#CE5F5F`…).
    pub color: String,
    /// Who created it (user id).
    pub owner: String,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last edited (Unix ms).
    pub updated_at: i64,
}

impl From<model::CalendarEvent> for CalendarEvent {
    fn from(e: model::CalendarEvent) -> Self {
        CalendarEvent {
            title: e.title,
            notes: e.notes,
            start: e.start,
            end: e.end,
            start_time: e.start_time,
            end_time: e.end_time,
            color: e.color,
            owner: e.owner,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An event as the month view shows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MonthEvent {
    /// Event id.
    pub id: String,
    /// The event.
    pub event: CalendarEvent,
    /// The creator's 호칭.
    pub owner_name: String,
    /// First day of the event inside this month (`YYYY-MM-DD`).
    pub first_in_month: String,
    /// Last day of the event inside this month.
    pub last_in_month: String,
    /// Whether it started in an earlier month (draw the bar open on the left).
    pub continues_before: bool,
    /// Whether it ends in a later month (draw the bar open on the right).
    pub continues_after: bool,
    /// The grid line its bar is drawn on (0 at the top), the same on every day.
    pub lane: u64,
}

impl From<views::MonthEvent> for MonthEvent {
    fn from(e: views::MonthEvent) -> Self {
        MonthEvent {
            id: e.id,
            event: e.event.into(),
            owner_name: e.owner_name,
            first_in_month: e.first_in_month.to_string(),
            last_in_month: e.last_in_month.to_string(),
            continues_before: e.continues_before,
            continues_after: e.continues_after,
            lane: count(e.lane),
        }
    }
}

/// One day cell of the month grid.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CalendarDay {
    /// The date (`YYYY-MM-DD`).
    pub date: String,
    /// Ids of the events on this day, by lane.
    pub events: Vec<String>,
    /// The cell's first lines: the event drawn on each (`None`: an empty line).
    pub slots: Vec<Option<String>>,
    /// How many events do not fit ("+N more").
    pub more: u64,
}

/// The month grid and the "this month's events" list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CalendarMonth {
    /// The month (`YYYY-MM`).
    pub month: String,
    /// Events overlapping the month: by start day, longer first, then creation.
    pub events: Vec<MonthEvent>,
    /// Every day of the month.
    pub days: Vec<CalendarDay>,
}

/// One day with photos (추억 보기).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MemoryDay {
    /// The day (`YYYY-MM-DD`, the viewer's time zone).
    pub date: String,
    /// That day's photos, oldest first (the slider's order).
    pub photos: Vec<PhotoRef>,
}

/// A new event.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EventInput {
    /// Title, 1–14 characters.
    pub title: String,
    /// First day, `YYYY-MM-DD`.
    pub start: String,
    /// Last day, `YYYY-MM-DD`; the start day when `None`.
    #[uniffi(default = None)]
    pub end: Option<String>,
    /// Notes, up to 500 characters.
    #[uniffi(default = "")]
    pub notes: String,
    /// Start time `HH:MM`; all day when `None`.
    #[uniffi(default = None)]
    pub start_time: Option<String>,
    /// End time `HH:MM`.
    #[uniffi(default = None)]
    pub end_time: Option<String>,
    /// Palette color; the default (`#CE5F5F`) when `None`.
    #[uniffi(default = None)]
    pub color: Option<String>,
}

/// An edit to an event; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct EventPatch {
    /// New title.
    #[uniffi(default = None)]
    pub title: Option<String>,
    /// New notes.
    #[uniffi(default = None)]
    pub notes: Option<String>,
    /// New first day.
    #[uniffi(default = None)]
    pub start: Option<String>,
    /// New last day.
    #[uniffi(default = None)]
    pub end: Option<String>,
    /// New start time `HH:MM`.
    #[uniffi(default = None)]
    pub start_time: Option<String>,
    /// New end time `HH:MM`.
    #[uniffi(default = None)]
    pub end_time: Option<String>,
    /// Make it an all-day event (clears both times; `start_time`/`end_time` are then
    /// ignored).
    #[uniffi(default = false)]
    pub all_day: bool,
    /// New color.
    #[uniffi(default = None)]
    pub color: Option<String>,
}

impl From<EventPatch> for CorePatch {
    fn from(p: EventPatch) -> Self {
        let time = |t: Option<String>| if p.all_day { Some(None) } else { t.map(Some) };
        CorePatch {
            start_time: time(p.start_time),
            end_time: time(p.end_time),
            title: p.title,
            notes: p.notes,
            start: p.start,
            end: p.end,
            color: p.color,
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// The month grid (`YYYY-MM`; `None`: this month): every event overlapping it, as
    /// bars on lanes, and per day the first lines and "+N more".
    pub async fn calendar(&self, family: String, month: Option<String>) -> Result<CalendarMonth> {
        let m = self.inner.calendar(&family, month.as_deref()).await?;
        Ok(CalendarMonth {
            month: m.month.to_string(),
            events: m.events.into_iter().map(Into::into).collect(),
            days: m
                .days
                .into_iter()
                .map(|d| CalendarDay {
                    date: d.date.to_string(),
                    events: d.events,
                    slots: d.slots,
                    more: count(d.more),
                })
                .collect(),
        })
    }

    /// The memories view of a month: the days photos were added, with their photos.
    pub async fn memories(&self, family: String, month: Option<String>) -> Result<Vec<MemoryDay>> {
        Ok(self
            .inner
            .memories(&family, month.as_deref())
            .await?
            .into_iter()
            .map(|d| MemoryDay {
                date: d.date.to_string(),
                photos: d.photos.into_iter().map(Into::into).collect(),
            })
            .collect())
    }

    /// Adds an event. Returns its id. Works offline.
    pub async fn add_event(&self, family: String, input: EventInput) -> Result<String> {
        let input = CoreInput {
            title: input.title,
            notes: input.notes,
            start: input.start,
            end: input.end,
            start_time: input.start_time,
            end_time: input.end_time,
            color: input.color,
        };
        Ok(self.inner.add_event(&family, input).await?)
    }

    /// Edits an event (any member: the calendar is the family's).
    pub async fn edit_event(&self, family: String, event: String, patch: EventPatch) -> Result<()> {
        Ok(self.inner.edit_event(&family, &event, patch.into()).await?)
    }

    /// Deletes an event.
    pub async fn delete_event(&self, family: String, event: String) -> Result<()> {
        Ok(self.inner.delete_event(&family, &event).await?)
    }
}
