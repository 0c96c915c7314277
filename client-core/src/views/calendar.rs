//! A month of the family calendar, including events that cross the month's edges
//! (the original matched by start month only and lost the second half of such events).

use serde::Serialize;
use time::Date;

use crate::{
    model::{CalendarEvent, Family},
    time_util::{Lang, YearMonth, parse_date},
    views::member_name,
};

/// How many event lines a day cell of the month grid shows; the rest are "+N".
pub const DAY_SLOTS: usize = 3;

/// An event as the month view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// The line of the grid its bar is drawn on (0 at the top), the same on every day
    /// it spans, so a multi-day bar stays straight.
    pub lane: usize,
}

/// One day cell of the month grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CalendarDay {
    /// The date.
    pub date: Date,
    /// Ids of the events on this day, by lane.
    pub events: Vec<String>,
    /// The cell's first [`DAY_SLOTS`] lines: the event drawn on each (`None`: an empty
    /// line, where no bar passes).
    pub slots: Vec<Option<String>>,
    /// How many events do not fit ("+N more").
    pub more: usize,
}

impl CalendarDay {
    /// The events that fit in a cell of `slots` lines, and how many more ("+N").
    pub fn visible(&self, slots: usize) -> (&[String], usize) {
        let shown = self.events.len().min(slots);
        (&self.events[..shown], self.events.len() - shown)
    }
}

/// The month grid and the "this month's events" list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CalendarMonth {
    /// The month.
    pub month: YearMonth,
    /// Events overlapping the month: by start day, longer first, then creation.
    pub events: Vec<MonthEvent>,
    /// Every day of the month.
    pub days: Vec<CalendarDay>,
}

/// The events of `month`.
pub fn calendar_month(f: &Family, month: YearMonth, lang: Lang) -> CalendarMonth {
    let mut events: Vec<MonthEvent> = f
        .calendar
        .iter()
        .filter_map(|(id, e)| {
            let (start, end) = (parse_date(&e.start).ok()?, parse_date(&e.end).ok()?);
            // Read in order from the document; in order here too, whatever the source.
            let (start, end) = (start.min(end), start.max(end));
            if !month.overlaps(start, end) {
                return None;
            }
            Some(MonthEvent {
                id: id.clone(),
                event: e.clone(),
                owner_name: member_name(f, &e.owner, lang),
                first_in_month: start.max(month.first_day()),
                last_in_month: end.min(month.last_day()),
                continues_before: start < month.first_day(),
                continues_after: end > month.last_day(),
                lane: 0,
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
    // Lanes: each event, in list order, takes the lowest line free on all its days.
    let day_index = |d: Date| usize::from(d.day()) - 1;
    let mut taken: Vec<Vec<bool>> = vec![Vec::new(); 31];
    for e in &mut events {
        let days = day_index(e.first_in_month)..=day_index(e.last_in_month);
        let lane = (0..)
            .find(|&lane| {
                days.clone()
                    .all(|d| !taken[d].get(lane).copied().unwrap_or(false))
            })
            .unwrap_or(0);
        for d in days {
            if taken[d].len() <= lane {
                taken[d].resize(lane + 1, false);
            }
            taken[d][lane] = true;
        }
        e.lane = lane;
    }
    let mut days = Vec::with_capacity(31);
    let mut d = month.first_day();
    loop {
        let mut on_day: Vec<&MonthEvent> = events
            .iter()
            .filter(|e| e.first_in_month <= d && d <= e.last_in_month)
            .collect();
        on_day.sort_by_key(|e| e.lane);
        let slots = (0..DAY_SLOTS)
            .map(|lane| on_day.iter().find(|e| e.lane == lane).map(|e| e.id.clone()))
            .collect();
        days.push(CalendarDay {
            date: d,
            events: on_day.iter().map(|e| e.id.clone()).collect(),
            slots,
            more: on_day.iter().filter(|e| e.lane >= DAY_SLOTS).count(),
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
