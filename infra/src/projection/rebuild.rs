//! Rebuild without downtime: fill shadow tables from position 0 beside the live ones,
//! catch up to the head, then swap them in with renames in one transaction. Queries keep
//! reading the live tables throughout; the live runner keeps them fresh until the swap
//! and continues on the new ones after it.

use std::time::Instant;

use projections::{Change, Projection};
use sqlx::Row;

use super::apply::{apply_lane, decode, Lane, LaneError, LaneResult};
use super::checkpoint::{self, ViewTx};
use super::sql::{shadow_name, Target};
use super::ProjectionError;
use crate::store::{Db, Store};

/// How far a rebuild is.
#[derive(Debug, Clone, Copy)]
pub struct RebuildProgress {
    pub position: i64,
    pub head: i64,
    /// Events read so far.
    pub events: u64,
}

/// What a finished rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    pub projection: &'static str,
    pub version: i64,
    pub position: i64,
    pub events: u64,
    pub seconds: f64,
}

/// Rebuilds `projection` into version live + 1 and swaps it in. A rebuild that was
/// interrupted resumes from its own checkpoint. `page` events are read and applied per
/// transaction; `progress` is called after each.
pub async fn rebuild(
    store: &Store,
    projection: &'static dyn Projection,
    page: i64,
    mut progress: impl FnMut(&RebuildProgress),
) -> Result<RebuildReport, ProjectionError> {
    let started = Instant::now();
    let name = projection.name();
    let now = store.clock().now();
    checkpoint::ensure_live(store.db(), name, now).await?;
    let rows = checkpoint::all(store.db()).await?;
    let live = rows
        .iter()
        .find(|r| r.name == name && r.live)
        .ok_or_else(|| ProjectionError::Unknown(name.to_string()))?;
    let version = live.version + 1;
    let resume = rows
        .iter()
        .find(|r| r.name == name && !r.live && r.version == version)
        .map(|r| r.position);
    let position = match resume {
        Some(position) => position,
        None => {
            let mut tx = ViewTx::begin(store.db()).await?;
            for table in projection.tables() {
                create_shadow(&mut tx, store.db(), table, version).await?;
            }
            tx.execute(&format!(
                "DELETE FROM projection_checkpoints WHERE name = '{name}' AND state = 'building'"
            ))
            .await?;
            tx.commit().await?;
            insert_building(store, name, version).await?;
            0
        }
    };
    let mut lane = Lane {
        projection,
        version,
        position,
        target: Target::Shadow(version),
    };
    let mut buf = Vec::new();
    let mut events = 0u64;
    let mut head = store.head_position().await?;
    loop {
        let batch = store.read_all(lane.position, page).await?;
        if batch.is_empty() {
            break;
        }
        events += batch.len() as u64;
        let mut tx = ViewTx::begin(store.db()).await?;
        lane.position = apply_to(&mut tx, &lane, &batch, &mut buf, store).await?;
        tx.commit().await?;
        head = head.max(lane.position);
        progress(&RebuildProgress {
            position: lane.position,
            head,
            events,
        });
        if batch.len() < page as usize {
            head = store.head_position().await?;
        }
    }
    // The swap: hold the live checkpoint (the live runner waits), apply what arrived
    // since the last page, rename, promote.
    let mut tx = ViewTx::begin(store.db()).await?;
    tx.lock_live(name).await?;
    loop {
        let batch = store.read_all(lane.position, page).await?;
        if batch.is_empty() {
            break;
        }
        events += batch.len() as u64;
        lane.position = apply_to(&mut tx, &lane, &batch, &mut buf, store).await?;
    }
    for table in projection.tables() {
        let shadow = shadow_name(table, version);
        let old = format!("{table}__old");
        tx.execute(&format!(
            "ALTER TABLE {table} RENAME TO {old}; ALTER TABLE {shadow} RENAME TO {table}; DROP TABLE {old}"
        ))
        .await?;
    }
    tx.promote(name, version).await?;
    tx.commit().await?;
    progress(&RebuildProgress {
        position: lane.position,
        head: head.max(lane.position),
        events,
    });
    Ok(RebuildReport {
        projection: name,
        version,
        position: lane.position,
        events,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn apply_to(
    tx: &mut ViewTx,
    lane: &Lane,
    batch: &[crate::store::RecordedEvent],
    buf: &mut Vec<Change>,
    store: &Store,
) -> Result<i64, ProjectionError> {
    let decoded = decode(batch, std::slice::from_ref(lane));
    let name = lane.projection.name();
    match apply_lane(tx, lane, batch, &decoded, store.clock().now(), buf).await {
        Ok(LaneResult::Unchanged) => Ok(lane.position),
        Ok(LaneResult::Advanced(to)) => Ok(to),
        Ok(LaneResult::Stopped {
            position, error, ..
        }) => Err(ProjectionError::Failed {
            projection: name.to_string(),
            position,
            message: error,
        }),
        Err(LaneError::Conflict) => Err(ProjectionError::Conflict(name.to_string())),
        Err(LaneError::Database(err)) => Err(err.into()),
        Err(LaneError::Event { position, error }) => Err(ProjectionError::Failed {
            projection: name.to_string(),
            position,
            message: error.to_string(),
        }),
    }
}

async fn insert_building(store: &Store, name: &str, version: i64) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO projection_checkpoints (name, version, state, position, updated_at) \
               VALUES ($1, $2, 'building', 0, $3)";
    let now = store.clock().now();
    crate::on_db!(store.db(), pool => sqlx::query(sql).bind(name).bind(version).bind(now).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Creates the empty shadow of `table` for `version` (dropping a leftover one): the same
/// columns, keys, generated columns and indexes as the live table.
async fn create_shadow(
    tx: &mut ViewTx,
    db: Db<'_>,
    table: &str,
    version: i64,
) -> Result<(), ProjectionError> {
    let shadow = shadow_name(table, version);
    tx.execute(&format!("DROP TABLE IF EXISTS {shadow}"))
        .await?;
    match db {
        Db::Postgres(_) => {
            tx.execute(&format!(
                "CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL)"
            ))
            .await?;
        }
        Db::Sqlite(_) => {
            let ViewTx::Sqlite(conn) = tx else {
                return Ok(());
            };
            let rows = sqlx::query(
                "SELECT type, name, sql FROM sqlite_master \
                 WHERE tbl_name = $1 AND sql IS NOT NULL ORDER BY type = 'index', name",
            )
            .bind(table)
            .fetch_all(&mut **conn)
            .await?;
            let mut ddl = Vec::new();
            for row in rows {
                let kind: String = row.try_get(0)?;
                let name: String = row.try_get(1)?;
                let sql: String = row.try_get(2)?;
                let Some(open) = sql.find('(') else { continue };
                let body = &sql[open..];
                if kind == "table" {
                    ddl.push(format!("CREATE TABLE {shadow} {body}"));
                } else if kind == "index" {
                    let unique = if sql.starts_with("CREATE UNIQUE") {
                        "UNIQUE "
                    } else {
                        ""
                    };
                    let base = name.split("__v").next().unwrap_or(&name);
                    ddl.push(format!(
                        "CREATE {unique}INDEX {base}__v{version} ON {shadow} {body}"
                    ));
                }
            }
            for statement in ddl {
                tx.execute(&statement).await?;
            }
        }
    }
    Ok(())
}
