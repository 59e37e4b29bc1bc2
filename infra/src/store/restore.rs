//! Rows whose transaction ids come from another cluster.
//!
//! The PostgreSQL tail reads only rows written below the oldest running transaction
//! (`txid < pg_snapshot_xmin(…)`, see [`super::postgres`]). Rows restored from a dump or
//! copied from another cluster keep the `txid` they were written with, which may lie
//! above this cluster's counter: the tail then skips them, reads the newer rows after
//! them, and every checkpoint moves past them for good. No row written by this cluster
//! can carry a txid at or above the snapshot's `xmax` (the first one not yet assigned),
//! so such rows are foreign and detectable.
//!
//! `commerce migrate` and `commerce serve` refuse to go on while there are any;
//! `commerce migrate --adopt-restored-rows` gives them a txid below every running
//! transaction (the column is not part of the hash chain), after which the tail reads
//! them in position order. See docs/operations.md, "Restoring from a backup".

use sqlx::PgPool;

use super::{Backend, Store, StoreError};

/// What [`Store::check_restored_rows`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ForeignRows {
    count: i64,
    first_position: i64,
}

/// The txid adopted rows get: below any transaction this cluster will run, so the tail
/// reads them at once, in position order.
const ADOPTED_TXID: &str = "3";

impl Store {
    /// Fails with [`StoreError::ForeignTxids`] when rows of the log carry transaction
    /// ids this cluster has not assigned yet (a restore from another cluster). Always
    /// passes on SQLite, whose tail does not use transaction ids.
    pub async fn check_restored_rows(&self) -> Result<(), StoreError> {
        let Backend::Postgres(pool) = &self.inner.backend else {
            return Ok(());
        };
        match foreign_rows(pool).await? {
            None => Ok(()),
            Some(ForeignRows {
                count,
                first_position,
            }) => Err(StoreError::ForeignTxids {
                count,
                first_position,
            }),
        }
    }

    /// Gives every foreign row (see [`Store::check_restored_rows`]) a transaction id
    /// below every running transaction, in one transaction, and returns how many it
    /// changed. Needs the role that owns the log: the append-only guard is lifted for
    /// the one statement and restored before the commit. Run it only on a database no
    /// engine is serving: it is the restore step, not a repair while running.
    pub async fn adopt_restored_rows(&self) -> Result<u64, StoreError> {
        let Backend::Postgres(pool) = &self.inner.backend else {
            return Ok(0);
        };
        let mut tx = pool.begin().await?;
        sqlx::query("ALTER TABLE events DISABLE TRIGGER events_no_update")
            .execute(&mut *tx)
            .await?;
        let changed = sqlx::query(&format!(
            "UPDATE events SET txid = '{ADOPTED_TXID}'::xid8 \
             WHERE txid >= pg_snapshot_xmax(pg_current_snapshot())"
        ))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(changed)
    }
}

/// Counts the rows whose txid this cluster has not assigned (a full scan of one column:
/// it runs at start, not per request).
async fn foreign_rows(pool: &PgPool) -> Result<Option<ForeignRows>, StoreError> {
    let (count, first_position): (i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*), min(position) FROM events \
         WHERE txid >= pg_snapshot_xmax(pg_current_snapshot())",
    )
    .fetch_one(pool)
    .await?;
    Ok(first_position
        .filter(|_| count > 0)
        .map(|first_position| ForeignRows {
            count,
            first_position,
        }))
}
