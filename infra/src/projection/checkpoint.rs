//! `projection_checkpoints`: how far each version of each projection has applied the log,
//! and the error it stopped on. Every write here runs in the transaction of the view rows
//! it accounts for, except a failure record (the failed transaction rolled back).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection, Transaction};

use projections::Change;

use super::sql::{apply_pg, apply_sqlite};
use crate::store::Db;

/// One checkpoint row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub name: String,
    pub version: i64,
    /// `live` (queries read it) or `building` (a rebuild's shadow tables).
    pub live: bool,
    pub position: i64,
    pub updated_at: DateTime<Utc>,
    pub error: Option<String>,
    pub failed_position: Option<i64>,
}

type Row = (
    String,
    i64,
    String,
    i64,
    DateTime<Utc>,
    Option<String>,
    Option<i64>,
);

fn from_row(
    (name, version, state, position, updated_at, error, failed_position): Row,
) -> Checkpoint {
    Checkpoint {
        name,
        version,
        live: state == "live",
        position,
        updated_at,
        error,
        failed_position,
    }
}

const SELECT: &str = "SELECT name, version, state, position, updated_at, error, failed_position \
     FROM projection_checkpoints";

/// Every checkpoint row, by name and version.
pub async fn all(db: Db<'_>) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let sql = format!("{SELECT} ORDER BY name, version");
    let rows: Vec<Row> = crate::on_db!(db, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Creates the live version 1 of `name` at position 0 unless a live version exists.
pub async fn ensure_live(db: Db<'_>, name: &str, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO projection_checkpoints (name, version, state, position, updated_at) \
               VALUES ($1, 1, 'live', 0, $2) ON CONFLICT DO NOTHING";
    crate::on_db!(db, pool => sqlx::query(sql).bind(name).bind(now).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Records that `name` version `version` stopped on the event at `position`.
pub async fn record_failure(
    db: Db<'_>,
    name: &str,
    version: i64,
    position: i64,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let sql = "UPDATE projection_checkpoints SET error = $1, failed_position = $2, failed_at = $3 \
               WHERE name = $4 AND version = $5";
    crate::on_db!(db, pool => sqlx::query(sql)
        .bind(error)
        .bind(position)
        .bind(now)
        .bind(name)
        .bind(version)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The transaction in which view rows and their checkpoint commit together.
pub(crate) enum ViewTx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

impl ViewTx {
    /// Begins on the store's writer (SQLite: `BEGIN IMMEDIATE`, so the write lock is held
    /// from the start and a concurrent runner waits instead of failing on upgrade).
    pub(crate) async fn begin(db: Db<'_>) -> Result<Self, sqlx::Error> {
        Ok(match db {
            Db::Postgres(pool) => ViewTx::Postgres(pool.begin().await?),
            Db::Sqlite(pool) => ViewTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            ViewTx::Postgres(tx) => tx.commit().await,
            ViewTx::Sqlite(tx) => tx.commit().await,
        }
    }

    pub(crate) async fn apply(&mut self, change: &Change, table: &str) -> Result<(), sqlx::Error> {
        match self {
            ViewTx::Postgres(tx) => apply_pg(tx, change, table).await,
            ViewTx::Sqlite(tx) => apply_sqlite(tx, change, table).await,
        }
    }

    /// Runs statements that take no parameters (DDL, renames).
    pub(crate) async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            ViewTx::Postgres(tx) => {
                sqlx::raw_sql(sql).execute(&mut **tx).await?;
            }
            ViewTx::Sqlite(tx) => {
                sqlx::raw_sql(sql).execute(&mut **tx).await?;
            }
        }
        Ok(())
    }

    /// Moves the checkpoint of `name` version `version` from `from` to `to`, clearing a
    /// recorded failure. `false` when the row is not at `from` (another runner moved it,
    /// or a rebuild swapped the version): the caller must roll back and reload. Taken
    /// before any view row is written, so concurrent runners queue on the checkpoint row
    /// instead of deadlocking on view rows.
    pub(crate) async fn advance(
        &mut self,
        name: &str,
        version: i64,
        from: i64,
        to: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        let sql = "UPDATE projection_checkpoints SET position = $1, updated_at = $2, \
                   error = NULL, failed_position = NULL, failed_at = NULL \
                   WHERE name = $3 AND version = $4 AND position = $5";
        let done = match self {
            ViewTx::Postgres(tx) => advance_pg(tx, sql, name, version, from, to, now).await?,
            ViewTx::Sqlite(tx) => advance_sqlite(tx, sql, name, version, from, to, now).await?,
        };
        Ok(done == 1)
    }

    /// Locks the live checkpoint of `name` (PostgreSQL; SQLite's writer lock already
    /// excludes every other runner) and returns its version and position.
    pub(crate) async fn lock_live(
        &mut self,
        name: &str,
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        let sql = "SELECT version, position FROM projection_checkpoints \
                   WHERE name = $1 AND state = 'live'";
        match self {
            ViewTx::Postgres(tx) => {
                sqlx::query_as(&format!("{sql} FOR UPDATE"))
                    .bind(name)
                    .fetch_optional(&mut **tx)
                    .await
            }
            ViewTx::Sqlite(tx) => {
                sqlx::query_as(sql)
                    .bind(name)
                    .fetch_optional(&mut **tx)
                    .await
            }
        }
    }

    /// Makes `version` the live one of `name`, dropping the old live row.
    pub(crate) async fn promote(&mut self, name: &str, version: i64) -> Result<(), sqlx::Error> {
        let drop_old = "DELETE FROM projection_checkpoints WHERE name = $1 AND state = 'live'";
        let promote = "UPDATE projection_checkpoints SET state = 'live' \
                       WHERE name = $1 AND version = $2";
        match self {
            ViewTx::Postgres(tx) => {
                sqlx::query(drop_old).bind(name).execute(&mut **tx).await?;
                sqlx::query(promote)
                    .bind(name)
                    .bind(version)
                    .execute(&mut **tx)
                    .await?;
            }
            ViewTx::Sqlite(tx) => {
                sqlx::query(drop_old).bind(name).execute(&mut **tx).await?;
                sqlx::query(promote)
                    .bind(name)
                    .bind(version)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }
}

async fn advance_pg(
    conn: &mut PgConnection,
    sql: &str,
    name: &str,
    version: i64,
    from: i64,
    to: i64,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(sql)
        .bind(to)
        .bind(now)
        .bind(name)
        .bind(version)
        .bind(from)
        .execute(conn)
        .await?
        .rows_affected())
}

async fn advance_sqlite(
    conn: &mut SqliteConnection,
    sql: &str,
    name: &str,
    version: i64,
    from: i64,
    to: i64,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(sql)
        .bind(to)
        .bind(now)
        .bind(name)
        .bind(version)
        .bind(from)
        .execute(conn)
        .await?
        .rows_affected())
}
