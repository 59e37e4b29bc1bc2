//! `saga_status`: sagas by state, phase and age, for the people who look after them
//! (docs/projections.md, "saga_status").
//!
//! The view `saga_status` (migration 14) has each saga's phase, since when it is in it,
//! its latest step's trigger and its latest error; "stuck" needs a notion of now, which
//! the view leaves to the caller so tests can move the injectable clock:
//!
//! > a saga is **stuck** when it is active, has been in its phase longer than the
//! > threshold, and is not waiting for a timer: none of its timers is due later than
//! > now − threshold. A saga that waits for a deadline (the 30-day return window) is
//! > waiting, not stuck; one whose timers are overdue by more than the threshold is.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::on_db;
use crate::store::{Db, StoreError};

/// The default threshold of "stuck".
pub const DEFAULT_STUCK_AFTER: chrono::Duration = chrono::Duration::minutes(15);

/// Most rows one page returns.
pub const MAX_PAGE: i64 = 500;

/// Which sagas a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusFilter {
    pub saga_type: Option<String>,
    /// `active` or `finished`; `None` for both.
    pub status: Option<String>,
    pub phase: Option<String>,
    /// Only stuck ones.
    pub stuck_only: bool,
    pub stuck_after: chrono::Duration,
    /// The clock's now, against which ages and "stuck" are measured.
    pub now: DateTime<Utc>,
    /// Continue after this saga (the previous page's last).
    pub after: Option<Cursor>,
    pub limit: i64,
}

impl StatusFilter {
    /// Active sagas of any type, any phase, first page of 100.
    pub fn active(now: DateTime<Utc>) -> Self {
        Self {
            saga_type: None,
            status: Some("active".into()),
            phase: None,
            stuck_only: false,
            stuck_after: DEFAULT_STUCK_AFTER,
            now,
            after: None,
            limit: 100,
        }
    }
}

/// Where a page ends: listings run oldest in phase first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub phase_since: DateTime<Utc>,
    pub saga_type: String,
    pub saga_id: String,
}

impl Cursor {
    /// Opaque to clients: hex of a tagged text, so its form can change.
    pub fn encode(&self) -> String {
        hex::encode(format!(
            "s1:{}\u{1f}{}\u{1f}{}",
            self.phase_since.to_rfc3339_opts(SecondsFormat::Nanos, true),
            self.saga_type,
            self.saga_id
        ))
    }

    /// `None` for anything [`Cursor::encode`] did not make.
    pub fn decode(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.strip_prefix("s1:")?.splitn(3, '\u{1f}');
        let phase_since = DateTime::parse_from_rfc3339(parts.next()?)
            .ok()?
            .with_timezone(&Utc);
        let (saga_type, saga_id) = (parts.next()?, parts.next()?);
        // Only what a saga's type and id can be: no control characters (a NUL would be
        // refused by PostgreSQL as text).
        if [saga_type, saga_id]
            .iter()
            .any(|p| p.chars().any(char::is_control))
        {
            return None;
        }
        Some(Self {
            phase_since,
            saga_type: saga_type.to_string(),
            saga_id: saga_id.to_string(),
        })
    }
}

/// One saga in a listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SagaStatus {
    pub saga_type: String,
    pub saga_id: String,
    /// `active` or `finished`.
    pub status: String,
    pub phase: Option<String>,
    pub phase_since: DateTime<Utc>,
    /// Seconds in the current phase, by the clock the listing was made with.
    pub seconds_in_phase: i64,
    pub stuck: bool,
    pub version: i64,
    pub last_position: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `event` or `timer`, of the latest logged step.
    pub last_trigger_kind: Option<String>,
    /// The event type or timer name of the latest logged step.
    pub last_trigger_name: Option<String>,
    pub last_step_at: Option<DateTime<Utc>>,
    /// The error of the latest failed step.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub next_timer_due: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "saga_type, saga_id, status, phase, phase_since, version, last_position, \
     created_at, updated_at, last_trigger_kind, last_trigger_name, last_step_at, last_error, \
     last_error_at, next_timer_due, latest_timer_due";

/// The stuck rule of the module docs, over `saga_status` with `$1` = now − threshold.
const STUCK: &str = "(status = 'active' AND phase_since <= $1 \
     AND (latest_timer_due IS NULL OR latest_timer_due <= $1))";

/// Reads a [`SagaStatus`] from a row of `saga_status` of either backend.
macro_rules! status_row {
    ($row:expr, $now:expr) => {{
        let row = $row;
        let phase_since: DateTime<Utc> = row.try_get("phase_since")?;
        let stuck: i32 = row.try_get("stuck")?;
        SagaStatus {
            saga_type: row.try_get("saga_type")?,
            saga_id: row.try_get("saga_id")?,
            status: row.try_get("status")?,
            phase: row.try_get("phase")?,
            phase_since,
            seconds_in_phase: ($now - phase_since).num_seconds().max(0),
            stuck: stuck == 1,
            version: row.try_get("version")?,
            last_position: row.try_get("last_position")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            last_trigger_kind: row.try_get("last_trigger_kind")?,
            last_trigger_name: row.try_get("last_trigger_name")?,
            last_step_at: row.try_get("last_step_at")?,
            last_error: row.try_get("last_error")?,
            last_error_at: row.try_get("last_error_at")?,
            next_timer_due: row.try_get("next_timer_due")?,
        }
    }};
}

/// Sagas matching `filter`, oldest in their phase first.
pub async fn list(db: Db<'_>, filter: &StatusFilter) -> Result<Vec<SagaStatus>, StoreError> {
    let cutoff = filter.now - filter.stuck_after;
    let (since, after_type, after_id) = match &filter.after {
        Some(c) => (
            Some(c.phase_since),
            Some(c.saga_type.as_str()),
            Some(c.saga_id.as_str()),
        ),
        None => (None, None, None),
    };
    let sql = format!(
        "SELECT {COLUMNS}, CASE WHEN {STUCK} THEN 1 ELSE 0 END AS stuck FROM saga_status \
         WHERE ($2 IS NULL OR saga_type = $2) AND ($3 IS NULL OR status = $3) \
           AND ($4 IS NULL OR phase = $4) AND ($5 = 0 OR {STUCK}) \
           AND ($6 IS NULL OR phase_since > $6 OR (phase_since = $6 AND \
                (saga_type > $7 OR (saga_type = $7 AND saga_id > $8)))) \
         ORDER BY phase_since, saga_type, saga_id LIMIT $9"
    );
    let limit = filter.limit.clamp(1, MAX_PAGE);
    let rows = on_db!(db, pool => {
        let rows = sqlx::query(&sql)
            .bind(cutoff)
            .bind(filter.saga_type.as_deref())
            .bind(filter.status.as_deref())
            .bind(filter.phase.as_deref())
            .bind(i32::from(filter.stuck_only))
            .bind(since)
            .bind(after_type)
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(status_row!(row, filter.now));
        }
        out
    });
    Ok(rows)
}

/// One saga's status line, whatever its state; `None` for a saga never started.
pub async fn get(
    db: Db<'_>,
    saga_type: &str,
    saga_id: &str,
    now: DateTime<Utc>,
    stuck_after: chrono::Duration,
) -> Result<Option<SagaStatus>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, CASE WHEN {STUCK} THEN 1 ELSE 0 END AS stuck FROM saga_status \
         WHERE saga_type = $2 AND saga_id = $3"
    );
    let found = on_db!(db, pool => {
        match sqlx::query(&sql)
            .bind(now - stuck_after)
            .bind(saga_type)
            .bind(saga_id)
            .fetch_optional(pool)
            .await?
        {
            Some(row) => Some(status_row!(&row, now)),
            None => None,
        }
    });
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        let cursor = Cursor {
            phase_since: DateTime::parse_from_rfc3339("2026-03-01T10:00:00.123456789Z")
                .unwrap()
                .with_timezone(&Utc),
            saga_type: "checkout".into(),
            saga_id: "0190-abc".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("zz"), None);
        assert_eq!(Cursor::decode(&hex::encode("o1:whatever")), None);
        let nul = "s1:2026-03-01T10:00:00Z\u{1f}checkout\u{1f}a\0b";
        assert_eq!(Cursor::decode(&hex::encode(nul)), None);
    }
}
