//! A month of the family calendar, including events that cross the month's edges
//! (the original matched by start month only and lost the second half of such events).

use time::Date;

use crate::{
    model::{CalendarEvent, Family},
    time_util::{YearMonth, parse_date},
    views::member_name,
};

/// An event as the month view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthEvent {
    /// Event id.
    pub id: String,
    /// The event.
    pub event: CalendarEvent,
    /// The creator's 호칭.
    pub owner_name: String,
    /// First day of the event inside this month.
    pub first_in_month: Date,
    /// Last day of the event inside this month.
    pub last_in_month: Date,
    /// Whether it started in an earlier month (draw the bar open on the left).
    pub continues_before: bool,
    /// Whether it ends in a later month (draw the bar open on the right).
    pub continues_after: bool,
}

/// One day cell of the month grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarDay {
    /// The date.
    pub date: Date,
    /// Ids of the events on this day, in the month list's order.
    pub events: Vec<String>,
}

impl CalendarDay {
    /// The events that fit in a cell of `slots` lines, and how many more ("+N").
    pub fn visible(&self, slots: usize) -> (&[String], usize) {
        let shown = self.events.len().min(slots);
        (&self.events[..shown], self.events.len() - shown)
    }
}

/// The month grid and the "this month's events" list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarMonth {
    /// The month.
    pub month: YearMonth,
    /// Events overlapping the month: by start day, longer first, then creation.
    pub events: Vec<MonthEvent>,
    /// Every day of the month.
    pub days: Vec<CalendarDay>,
}

/// The events of `month`.
pub fn calendar_month(f: &Family, month: YearMonth) -> CalendarMonth {
    let mut events: Vec<MonthEvent> = f
        .calendar
        .iter()
        .filter_map(|(id, e)| {
            let (start, end) = (parse_date(&e.start).ok()?, parse_date(&e.end).ok()?);
            if !month.overlaps(start, end) {
                return None;
            }
            Some(MonthEvent {
                id: id.clone(),
                event: e.clone(),
                owner_name: member_name(f, &e.owner),
                first_in_month: start.max(month.first_day()),
                last_in_month: end.min(month.last_day()),
                continues_before: start < month.first_day(),
                continues_after: end > month.last_day(),
            })
        })
        .collect();
    events.sort_by(|a, b| {
        (
            a.event.start.as_str(),
            std::cmp::Reverse(a.event.end.as_str()),
        )
            .cmp(&(
                b.event.start.as_str(),
                std::cmp::Reverse(b.event.end.as_str()),
            ))
            .then(a.event.start_time.cmp(&b.event.start_time))
            .then(a.event.created_at.cmp(&b.event.created_at))
            .then(a.id.cmp(&b.id))
    });
    let mut days = Vec::with_capacity(31);
    let mut d = month.first_day();
    loop {
        days.push(CalendarDay {
            date: d,
            events: events
                .iter()
                .filter(|e| e.first_in_month <= d && d <= e.last_in_month)
                .map(|e| e.id.clone())
                .collect(),
        });
        match d.next_day() {
            Some(n) if n <= month.last_day() => d = n,
            _ => break,
        }
    }
    CalendarMonth {
        month,
        events,
        days,
    }
}
