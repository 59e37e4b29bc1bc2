//! A point in the log: a global position or a moment, as `--at`, `--from`, `--to` and
//! `as_of` take it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use infra::RecordedEvent;

use super::ReplayError;

/// A global position (a whole number) or an RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Position(i64),
    Time(DateTime<Utc>),
}

impl Point {
    /// Whether `event` had happened by this point (inclusive).
    pub fn covers(&self, event: &RecordedEvent) -> bool {
        match self {
            Point::Position(p) => event.position <= *p,
            Point::Time(t) => event.recorded_at <= *t,
        }
    }

    /// Whether `event` happened at or after this point (inclusive).
    pub fn precedes(&self, event: &RecordedEvent) -> bool {
        match self {
            Point::Position(p) => event.position >= *p,
            Point::Time(t) => event.recorded_at >= *t,
        }
    }
}

impl FromStr for Point {
    type Err = ReplayError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(position) = s.parse::<i64>() {
            return if position >= 0 {
                Ok(Point::Position(position))
            } else {
                Err(ReplayError::InvalidPoint(s.to_string()))
            };
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Point::Time(t.with_timezone(&Utc)))
            .map_err(|_| ReplayError::InvalidPoint(s.to_string()))
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Point::Position(p) => write!(f, "position {p}"),
            Point::Time(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        }
    }
}

/// Parses an RFC 3339 time option (`--since`, `--until`).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, ReplayError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ReplayError::InvalidTime(s.to_string()))
}

/// clap's parser for [`Point`] options: the one-line message of [`ReplayError`].
pub fn parse_point(s: &str) -> Result<Point, String> {
    s.parse().map_err(|e: ReplayError| e.to_string())
}

/// clap's parser for time options.
pub fn parse_time_arg(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_times_parse_and_anything_else_is_refused() {
        assert_eq!("42".parse::<Point>().unwrap(), Point::Position(42));
        let t: Point = "2026-12-01T10:00:00+01:00".parse().unwrap();
        assert_eq!(
            t,
            Point::Time("2026-12-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap())
        );
        for bad in ["-1", "yesterday", "2026-13-01T00:00:00Z", ""] {
            let err = bad.parse::<Point>().unwrap_err();
            assert!(err.is_bad_input(), "{bad}");
            assert!(!err.to_string().contains('\n'));
        }
    }
}
