//! Calendar events: one or more whole days, optionally with times, in a palette color.

use super::{
    Edit, FamilyDoc, count, delete_entity, entity, new_id, not_found, put_entity, put_field,
};
use crate::{
    error::{DocError, Result},
    model::CalendarEvent,
    time_util::{parse_date, parse_hhmm},
    validate::{self, Field},
};

/// A new calendar event.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct EventInput {
    /// Title, 1–14 characters.
    pub title: String,
    /// Notes, up to 500 characters.
    pub notes: String,
    /// First day, `YYYY-MM-DD`.
    pub start: String,
    /// Last day, `YYYY-MM-DD`; the start day when `None`.
    pub end: Option<String>,
    /// Start time `HH:MM`; all day when `None`.
    pub start_time: Option<String>,
    /// End time `HH:MM`.
    pub end_time: Option<String>,
    /// Palette color; the default (`#CE5F5F`) when `None`.
    pub color: Option<String>,
}

/// An edit to an event; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct EventPatch {
    /// New title.
    pub title: Option<String>,
    /// New notes.
    pub notes: Option<String>,
    /// New first day.
    pub start: Option<String>,
    /// New last day.
    pub end: Option<String>,
    /// New start time (`Some(None)` makes it all-day; in JSON, an explicit `null`).
    #[serde(deserialize_with = "present_or_null")]
    pub start_time: Option<Option<String>>,
    /// New end time (`Some(None)`: none).
    #[serde(deserialize_with = "present_or_null")]
    pub end_time: Option<Option<String>>,
    /// New color.
    pub color: Option<String>,
}

/// A field given as a value or an explicit `null` is `Some(…)`; a missing one (the
/// default) is `None`.
fn present_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    <Option<String> as serde::Deserialize>::deserialize(d).map(Some)
}

impl FamilyDoc {
    /// Adds an event. Returns its id.
    pub fn add_event(&mut self, input: EventInput, now_ms: i64) -> Result<Edit<String>> {
        self.require_member()?;
        let event = CalendarEvent {
            title: input.title,
            notes: input.notes,
            end: input.end.unwrap_or_else(|| input.start.clone()),
            start: input.start,
            start_time: input.start_time,
            end_time: input.end_time,
            color: validate::color(input.color.as_deref())?,
            owner: self.me.to_hex(),
            created_at: now_ms,
            updated_at: now_ms,
        };
        let event = check_event(event)?;
        let id = new_id();
        let touched = [entity("calendar", &id), self.counted("events")];
        self.edit("event.add", now_ms, &touched, |doc| {
            put_entity(doc, "calendar", &id, &event)?;
            count(doc, "events")?;
            Ok(id.clone())
        })
    }

    /// Edits an event (any member: the calendar is the family's).
    pub fn edit_event(&mut self, id: &str, patch: EventPatch, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let mut e = self
            .view
            .calendar
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("event", id))?;
        if let Some(v) = patch.title {
            e.title = v;
        }
        if let Some(v) = patch.notes {
            e.notes = v;
        }
        if let Some(v) = patch.start {
            e.start = v;
        }
        if let Some(v) = patch.end {
            e.end = v;
        }
        if let Some(v) = patch.start_time {
            // Making an event all-day drops its end time too.
            if v.is_none() {
                e.end_time = None;
            }
            e.start_time = v;
        }
        if let Some(v) = patch.end_time {
            e.end_time = v;
        }
        if let Some(v) = patch.color {
            e.color = validate::color(Some(&v))?;
        }
        e.updated_at = now_ms;
        let e = check_event(e)?;
        let id = id.to_owned();
        // The fields any member edits; never the owner or the creation time.
        self.edit("event.edit", now_ms, &[entity("calendar", &id)], |doc| {
            let put = |doc: &mut automerge::AutoCommit, field: &str, value: &String| {
                put_field(doc, "calendar", &id, field, value)
            };
            put(doc, "title", &e.title)?;
            put(doc, "notes", &e.notes)?;
            put(doc, "start", &e.start)?;
            put(doc, "end", &e.end)?;
            put(doc, "color", &e.color)?;
            put_field(doc, "calendar", &id, "start_time", &e.start_time)?;
            put_field(doc, "calendar", &id, "end_time", &e.end_time)?;
            put_field(doc, "calendar", &id, "updated_at", &e.updated_at)
        })
    }

    /// Deletes an event (its creator or the host; any member may edit it).
    pub fn delete_event(&mut self, id: &str, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let event = self
            .view
            .calendar
            .get(id)
            .ok_or_else(|| not_found("event", id))?;
        if event.owner != self.me.to_hex() && !self.is_host() {
            return Err(DocError::Forbidden(
                "only its creator or the host may delete an event",
            ));
        }
        let id = id.to_owned();
        self.edit("event.delete", now_ms, &[entity("calendar", &id)], |doc| {
            delete_entity(doc, "calendar", &id)
        })
    }
}

/// Validates and normalises an event: lengths, dates, times, range order.
fn check_event(mut e: CalendarEvent) -> Result<CalendarEvent> {
    e.title = validate::text(Field::EventTitle, &e.title, validate::EVENT_TITLE)?;
    e.notes = validate::text(Field::EventNotes, &e.notes, validate::EVENT_NOTES)?;
    let start = parse_date(&e.start)?;
    let end = parse_date(&e.end)?;
    if end < start {
        return Err(DocError::BadDate(format!(
            "the event ends ({end}) before it starts ({start})"
        )));
    }
    e.start = start.to_string();
    e.end = end.to_string();
    let st = e.start_time.as_deref().map(parse_hhmm).transpose()?;
    let et = e.end_time.as_deref().map(parse_hhmm).transpose()?;
    if let (Some(st), Some(et)) = (st, et)
        && start == end
        && et < st
    {
        return Err(DocError::BadDate(format!(
            "the event ends ({et}) before it starts ({st})"
        )));
    }
    if st.is_none() && et.is_some() {
        return Err(DocError::BadDate("an end time needs a start time".into()));
    }
    e.start_time = st.map(fmt_hhmm);
    e.end_time = et.map(fmt_hhmm);
    Ok(e)
}

fn fmt_hhmm(t: time::Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}
