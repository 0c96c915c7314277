//! Dates, months and relative times as the product shows them.

use time::{Date, Month, OffsetDateTime, Time, UtcOffset, macros::format_description};

use crate::error::{DocError, Result};

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<Date> {
    Date::parse(s.trim(), format_description!("[year]-[month]-[day]"))
        .map_err(|e| DocError::BadDate(format!("{s:?} is not a YYYY-MM-DD date: {e}")))
}

/// Parses `HH:MM` (24-hour).
pub fn parse_hhmm(s: &str) -> Result<Time> {
    Time::parse(s.trim(), format_description!("[hour]:[minute]"))
        .map_err(|e| DocError::BadDate(format!("{s:?} is not an HH:MM time: {e}")))
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    /// The year.
    pub year: i32,
    /// The month.
    pub month: Month,
}

impl YearMonth {
    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Self> {
        let d = parse_date(&format!("{}-01", s.trim()))?;
        Ok(Self::of(d))
    }

    /// The month a date is in.
    pub fn of(d: Date) -> Self {
        YearMonth {
            year: d.year(),
            month: d.month(),
        }
    }

    /// The first day.
    pub fn first_day(self) -> Date {
        // Day 1 exists in every month of every representable year.
        Date::from_calendar_date(self.year, self.month, 1).unwrap_or(Date::MIN)
    }

    /// The last day.
    pub fn last_day(self) -> Date {
        let days = self.month.length(self.year);
        Date::from_calendar_date(self.year, self.month, days).unwrap_or(Date::MAX)
    }

    /// Whether an inclusive date range overlaps this month.
    pub fn overlaps(self, start: Date, end: Date) -> bool {
        start <= self.last_day() && end >= self.first_day()
    }
}

impl serde::Serialize for YearMonth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for YearMonth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month as u8)
    }
}

/// The local date and time of a Unix-ms instant at `offset`. Any `i64` is accepted: an
/// instant outside what documents hold ([`crate::read::EARLIEST`] to
/// [`crate::read::LATEST`]) is read as the nearest end of that range, so no instant a
/// member writes, in any offset, can fall outside the calendar.
pub fn local(ms: i64, offset: UtcOffset) -> OffsetDateTime {
    let nanos = i128::from(crate::read::instant(ms)) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.checked_to_offset(offset))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The local date of a Unix-ms instant at `offset`.
pub fn local_date(ms: i64, offset: UtcOffset) -> Date {
    local(ms, offset).date()
}

/// A UI language.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Korean (the default).
    #[default]
    Ko,
    /// English.
    En,
}

impl Lang {
    /// The language of a setting or locale string: Korean for `ko…`, English for
    /// anything else.
    pub fn from_code(code: &str) -> Lang {
        if code.trim().to_ascii_lowercase().starts_with("ko") {
            Lang::Ko
        } else {
            Lang::En
        }
    }

    /// `ko` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ko => "ko",
            Lang::En => "en",
        }
    }

    /// The Korean text or the English one.
    pub fn pick<T>(self, ko: T, en: T) -> T {
        match self {
            Lang::Ko => ko,
            Lang::En => en,
        }
    }
}

/// "방금 전", "n분 전", "n시간 전", "n일 전", "M월 D일", "YYYY년 M월 D일" — how long ago
/// `then` was, as the product shows it everywhere (English: "just now", "5 min ago"…).
pub fn relative(then_ms: i64, now_ms: i64, offset: UtcOffset, lang: Lang) -> String {
    let secs = now_ms.saturating_sub(then_ms).max(0) / 1000;
    let (min, hour, day) = (60, 3600, 86_400);
    let then = local(then_ms, offset);
    match lang {
        Lang::Ko => match secs {
            s if s < min => "방금 전".to_owned(),
            s if s < hour => format!("{}분 전", s / min),
            s if s < day => format!("{}시간 전", s / hour),
            s if s < 7 * day => format!("{}일 전", s / day),
            s if s < 365 * day => format!("{}월 {}일", then.month() as u8, then.day()),
            _ => format!(
                "{}년 {}월 {}일",
                then.year(),
                then.month() as u8,
                then.day()
            ),
        },
        Lang::En => match secs {
            s if s < min => "just now".to_owned(),
            s if s < hour => format!("{} min ago", s / min),
            s if s < day => format!("{} h ago", s / hour),
            s if s < 7 * day => format!("{} d ago", s / day),
            s if s < 365 * day => format!("{} {}", then.month(), then.day()),
            _ => format!("{} {}, {}", then.month(), then.day(), then.year()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KST: UtcOffset = time::macros::offset!(+9);

    #[test]
    fn relative_times_in_korean() {
        let now = 1_764_300_000_000; // 2025-11-28 03:20 UTC
        let r = |ago_ms: i64| relative(now - ago_ms, now, KST, Lang::Ko);
        assert_eq!(r(30_000), "방금 전");
        assert_eq!(r(5 * 60_000), "5분 전");
        assert_eq!(r(3 * 3_600_000), "3시간 전");
        assert_eq!(r(2 * 86_400_000), "2일 전");
        assert_eq!(r(30 * 86_400_000), "10월 29일");
        assert_eq!(r(400 * 86_400_000), "2024년 10월 24일");
        assert_eq!(relative(now + 5000, now, KST, Lang::Ko), "방금 전");
    }

    #[test]
    fn any_instant_in_any_offset_is_a_date() {
        let year_9999 = 253_402_300_799_000;
        for ms in [year_9999, -377_705_116_800_000, i64::MAX, i64::MIN] {
            for offset in [KST, time::macros::offset!(-12), time::macros::offset!(+14)] {
                let d = local_date(ms, offset);
                assert!((1899..=2200).contains(&d.year()), "{ms} at {offset}: {d}");
                relative(ms, 1_764_300_000_000, offset, Lang::Ko);
            }
        }
        assert_eq!(
            local(year_9999, KST).to_string(),
            "2200-01-01 9:00:00.0 +09:00:00"
        );
    }

    #[test]
    fn months() {
        let m = YearMonth::parse("2024-02").unwrap();
        assert_eq!(m.last_day().day(), 29);
        assert_eq!(m.to_string(), "2024-02");
        let jan31 = parse_date("2024-01-31").unwrap();
        let feb2 = parse_date("2024-02-02").unwrap();
        assert!(m.overlaps(jan31, feb2));
        assert!(!m.overlaps(jan31, jan31));
        assert!(YearMonth::parse("2024-13").is_err());
        assert!(parse_date("2024-02-30").is_err());
        assert!(parse_hhmm("24:00").is_err());
    }
}
