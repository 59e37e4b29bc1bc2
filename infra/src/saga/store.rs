//! Saga rows and timers in the store's database.

use chrono::{DateTime, Utc};
use sagas::Timer;
use sqlx::Row;
use uuid::Uuid;

use super::steps::{self, NewStep};
use crate::consumer::TxConn;
use crate::store::{Db, StoreError};
use crate::{on_conn, on_db};

/// A stored saga instance.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaRow {
    pub saga_type: String,
    pub saga_id: String,
    pub state: serde_json::Value,
    pub finished: bool,
    /// Optimistic concurrency: a save names the version it read.
    pub version: i64,
    pub last_position: i64,
    pub last_event_id: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
}

/// Reads a [`SagaRow`] from a row of either backend.
macro_rules! saga_row {
    ($row:expr) => {{
        let row = $row;
        let state: String = row.try_get("state")?;
        let status: String = row.try_get("status")?;
        SagaRow {
            saga_type: row.try_get("saga_type")?,
            saga_id: row.try_get("saga_id")?,
            state: serde_json::from_str(&state).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            finished: status == "finished",
            version: row.try_get("version")?,
            last_position: row.try_get("last_position")?,
            last_event_id: row.try_get("last_event_id")?,
            updated_at: row.try_get("updated_at")?,
        }
    }};
}

const COLUMNS: &str =
    "saga_type, saga_id, state, status, version, last_position, last_event_id, updated_at";

/// The saga `(saga_type, saga_id)`, if it was ever started.
pub async fn load(
    db: Db<'_>,
    saga_type: &str,
    saga_id: &str,
) -> Result<Option<SagaRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM sagas WHERE saga_type = $1 AND saga_id = $2");
    let row = on_db!(db, pool => match sqlx::query(&sql).bind(saga_type).bind(saga_id).fetch_optional(pool).await? {
        Some(row) => Some(saga_row!(&row)),
        None => None,
    });
    Ok(row)
}

/// Sagas of a type, oldest change first; `status` filters by `active` / `finished`.
pub async fn list(
    db: Db<'_>,
    saga_type: &str,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<SagaRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sagas WHERE saga_type = $1 AND ($2 IS NULL OR status = $2) \
         ORDER BY updated_at, saga_id LIMIT $3"
    );
    let rows = on_db!(db, pool => {
        let rows = sqlx::query(&sql).bind(saga_type).bind(status).bind(limit).fetch_all(pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(saga_row!(row));
        }
        out
    });
    Ok(rows)
}

/// What a step changes about one saga.
#[derive(Debug, Clone)]
pub struct Save<'a> {
    pub saga_type: &'a str,
    pub saga_id: &'a str,
    pub state: &'a serde_json::Value,
    pub finished: bool,
    /// The version read, `None` for a saga not stored yet.
    pub expected_version: Option<i64>,
    /// The event handled, when the step was an event.
    pub event: Option<(i64, Uuid)>,
    pub now: DateTime<Utc>,
    pub set_timers: &'a [Timer],
    pub cancel_timers: &'a [String],
    /// The fired timer to remove (its name and the due time it fired for).
    pub fired: Option<(&'a str, DateTime<Utc>)>,
}

/// [`save_step`] in a transaction of its own (on SQLite the writer's `BEGIN IMMEDIATE`),
/// for steps that run outside a consumer's delivery (timers, direct deliveries).
pub async fn save_step_alone(
    db: Db<'_>,
    s: &Save<'_>,
    step: Option<&NewStep<'_>>,
) -> Result<Result<(), Conflict>, sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let saved = save_step(TxConn::Postgres(&mut tx), s, step).await?;
            tx.commit().await?;
            Ok(saved)
        }
        Db::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let saved = save_step(TxConn::Sqlite(&mut tx), s, step).await?;
            tx.commit().await?;
            Ok(saved)
        }
    }
}

/// Another worker saved the saga since it was read: the step must be run again from the
/// new state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("saga {saga_type}/{saga_id} changed concurrently")]
pub struct Conflict {
    pub saga_type: String,
    pub saga_id: String,
}

/// Stores a step's outcome in `conn`'s transaction: the state (optimistically), the last
/// event, and the timers set, moved, cancelled or fired; finishing removes them all.
pub async fn save(conn: TxConn<'_>, s: &Save<'_>) -> Result<Result<(), Conflict>, sqlx::Error> {
    save_step(conn, s, None).await
}

/// [`save`], and the step's entry in the step log (`saga_steps`) in the same transaction,
/// so the log holds exactly the steps the state contains. The saga's phase (its state's
/// `phase` field) is kept with the time it was entered.
pub async fn save_step(
    mut conn: TxConn<'_>,
    s: &Save<'_>,
    step: Option<&NewStep<'_>>,
) -> Result<Result<(), Conflict>, sqlx::Error> {
    let saved = save_state(reborrow(&mut conn), s).await?;
    if let (Ok(()), Some(step)) = (&saved, step) {
        let version = s.expected_version.map_or(1, |v| v + 1);
        steps::record_stored(conn, step, version).await?;
    }
    Ok(saved)
}

/// The same connection for a shorter borrow, so one transaction serves two writers.
fn reborrow<'a>(conn: &'a mut TxConn<'_>) -> TxConn<'a> {
    match conn {
        TxConn::Postgres(c) => TxConn::Postgres(c),
        TxConn::Sqlite(c) => TxConn::Sqlite(c),
    }
}

async fn save_state(conn: TxConn<'_>, s: &Save<'_>) -> Result<Result<(), Conflict>, sqlx::Error> {
    let state = s.state.to_string();
    let phase = steps::phase_of(s.state);
    let status = if s.finished { "finished" } else { "active" };
    let (position, event_id) = match s.event {
        Some((p, id)) => (Some(p), Some(id)),
        None => (None, None),
    };
    let stored = on_conn!(conn, c => {
        let done = match s.expected_version {
            None => sqlx::query(
                "INSERT INTO sagas (saga_type, saga_id, state, status, version, last_position, \
                 last_event_id, created_at, updated_at, phase, phase_since) \
                 VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $7, $8, $7) \
                 ON CONFLICT (saga_type, saga_id) DO NOTHING",
            )
            .bind(s.saga_type)
            .bind(s.saga_id)
            .bind(&state)
            .bind(status)
            .bind(position.unwrap_or(0))
            .bind(event_id)
            .bind(s.now)
            .bind(phase.as_deref())
            .execute(&mut *c)
            .await?
            .rows_affected(),
            Some(version) => sqlx::query(
                "UPDATE sagas SET state = $3, status = $4, version = version + 1, \
                 last_position = COALESCE($5, last_position), \
                 last_event_id = COALESCE($6, last_event_id), updated_at = $7, \
                 phase = $9, phase_since = CASE WHEN phase = $9 THEN COALESCE(phase_since, $7) ELSE $7 END \
                 WHERE saga_type = $1 AND saga_id = $2 AND version = $8",
            )
            .bind(s.saga_type)
            .bind(s.saga_id)
            .bind(&state)
            .bind(status)
            .bind(position)
            .bind(event_id)
            .bind(s.now)
            .bind(version)
            .bind(phase.as_deref())
            .execute(&mut *c)
            .await?
            .rows_affected(),
        };
        if done == 1 {
            if let Some((name, due)) = s.fired {
                sqlx::query(
                    "DELETE FROM saga_timers WHERE saga_type = $1 AND saga_id = $2 AND name = $3 AND due_at = $4",
                )
                .bind(s.saga_type)
                .bind(s.saga_id)
                .bind(name)
                .bind(due)
                .execute(&mut *c)
                .await?;
            }
            if s.finished {
                // A finished saga has nothing left to fire; a timer that was claimed
                // meanwhile loses its optimistic save and finds no row to release.
                sqlx::query("DELETE FROM saga_timers WHERE saga_type = $1 AND saga_id = $2")
                    .bind(s.saga_type)
                    .bind(s.saga_id)
                    .execute(&mut *c)
                    .await?;
            }
            for name in s.cancel_timers {
                sqlx::query("DELETE FROM saga_timers WHERE saga_type = $1 AND saga_id = $2 AND name = $3")
                    .bind(s.saga_type)
                    .bind(s.saga_id)
                    .bind(name)
                    .execute(&mut *c)
                    .await?;
            }
            for t in s.set_timers.iter().filter(|_| !s.finished) {
                sqlx::query(
                    "INSERT INTO saga_timers (saga_type, saga_id, name, due_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (saga_type, saga_id, name) DO UPDATE SET due_at = $4, claimed_until = NULL",
                )
                .bind(s.saga_type)
                .bind(s.saga_id)
                .bind(&t.name)
                .bind(t.due)
                .execute(&mut *c)
                .await?;
            }
        }
        done
    });
    Ok(if stored == 1 {
        Ok(())
    } else {
        Err(Conflict {
            saga_type: s.saga_type.to_string(),
            saga_id: s.saga_id.to_string(),
        })
    })
}

/// A claimed due timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    pub saga_id: String,
    pub name: String,
    pub due: DateTime<Utc>,
}

/// Claims up to `limit` timers of `saga_type` due at `now` and not claimed by a live
/// worker, until `claim_until`. On PostgreSQL concurrent workers skip each other's rows
/// (`FOR UPDATE SKIP LOCKED`); on SQLite the single writer serialises claims.
pub async fn claim_due(
    db: Db<'_>,
    saga_type: &str,
    now: DateTime<Utc>,
    claim_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueTimer>, StoreError> {
    let pick = "SELECT saga_type, saga_id, name FROM saga_timers \
                WHERE saga_type = $1 AND due_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2) \
                ORDER BY due_at LIMIT $4";
    let rows = match db {
        Db::Postgres(pool) => {
            let sql = format!(
                "UPDATE saga_timers SET claimed_until = $3 WHERE (saga_type, saga_id, name) IN \
                 ({pick} FOR UPDATE SKIP LOCKED) RETURNING saga_id, name, due_at"
            );
            let rows = sqlx::query(&sql)
                .bind(saga_type)
                .bind(now)
                .bind(claim_until)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(DueTimer {
                        saga_id: r.try_get("saga_id")?,
                        name: r.try_get("name")?,
                        due: r.try_get("due_at")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        }
        Db::Sqlite(pool) => {
            let sql = format!(
                "UPDATE saga_timers SET claimed_until = $3 WHERE (saga_type, saga_id, name) IN \
                 ({pick}) RETURNING saga_id, name, due_at"
            );
            let rows = sqlx::query(&sql)
                .bind(saga_type)
                .bind(now)
                .bind(claim_until)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(DueTimer {
                        saga_id: r.try_get("saga_id")?,
                        name: r.try_get("name")?,
                        due: r.try_get("due_at")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        }
    };
    Ok(rows)
}

/// Timers of one saga, soonest first.
pub async fn timers_of(
    db: Db<'_>,
    saga_type: &str,
    saga_id: &str,
) -> Result<Vec<Timer>, StoreError> {
    let rows = on_db!(db, pool => {
        let rows = sqlx::query(
            "SELECT name, due_at FROM saga_timers WHERE saga_type = $1 AND saga_id = $2 ORDER BY due_at, name",
        )
        .bind(saga_type)
        .bind(saga_id)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| Ok(Timer { name: r.try_get("name")?, due: r.try_get("due_at")? }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(rows)
}

/// Gives a claimed timer back (the step failed), so it fires again.
pub async fn release(db: Db<'_>, saga_type: &str, timer: &DueTimer) -> Result<(), StoreError> {
    on_db!(db, pool => sqlx::query(
        "UPDATE saga_timers SET claimed_until = NULL WHERE saga_type = $1 AND saga_id = $2 AND name = $3 AND due_at = $4",
    )
    .bind(saga_type)
    .bind(&timer.saga_id)
    .bind(&timer.name)
    .bind(timer.due)
    .execute(pool)
    .await
    .map(drop))?;
    Ok(())
}
