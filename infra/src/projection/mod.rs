//! The SQL read side's runtime: projections (pure folds in the `projections` crate)
//! applied to view tables in the store's own database.
//!
//! * **One transaction per batch.** The rows a batch of events changes and the
//!   projection's checkpoint commit together, so a view is exactly as fresh as its
//!   checkpoint. Catching up, a batch holds up to [`RunnerConfig::batch`] events.
//! * **Exactly once.** Each batch first moves the checkpoint from the position it was
//!   read at (`… WHERE position = $from`); if another runner or a rebuild moved it, the
//!   batch rolls back and the runner reloads. Applying an event twice changes nothing.
//! * **Never skipped.** The runner follows the store's gap-safe tail; an event a
//!   projection cannot apply stops that projection (error in `projection_checkpoints`,
//!   `commerce_projection_failed`), the others go on, and it is retried until it works.
//! * **Rebuild without downtime** ([`rebuild`]): shadow tables, catch up, atomic renames.
//! * **Read-your-writes** ([`ProjectionsHandle::wait_for`]).
//!
//! Views live next to the log, so the runner reads the log itself (the same gap-safe tail
//! the relay publishes from) rather than JetStream: in the distributed deployment each
//! projection worker or API node runs it against PostgreSQL, and the checkpoint guard
//! shares the work out.

mod apply;
pub mod checkpoint;
mod coalesce;
mod rebuild;
mod runner;
mod sql;
mod status;

pub use checkpoint::Checkpoint;
pub use rebuild::{rebuild, RebuildProgress, RebuildReport};
pub use runner::{Lag, ProjectionRunner, ProjectionsHandle, RunnerConfig};
pub use status::{status, ProjectionStatus};

use crate::store::{Db, Store, StoreError};

/// Errors of the projection runtime and tools.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("no projection named `{0}`")]
    Unknown(String),
    #[error("projection {projection} failed on the event at position {position}: {message}")]
    Failed {
        projection: String,
        position: i64,
        message: String,
    },
    #[error("projection {0} was moved by another process meanwhile; run it again")]
    Conflict(String),
}

/// Every row of view table `table` as JSON text, sorted: a whole-table comparison for
/// tests and audits (rebuild = incremental processing). `table` must be a view table name.
pub async fn dump_table(store: &Store, table: &str) -> Result<Vec<String>, ProjectionError> {
    let known = projections::all()
        .iter()
        .any(|p| p.tables().contains(&table));
    if !known {
        return Err(ProjectionError::Unknown(table.to_string()));
    }
    let rows: Vec<(String,)> = match store.db_read() {
        Db::Postgres(pool) => {
            let sql = format!("SELECT row_to_json(t)::text AS j FROM {table} t ORDER BY j");
            sqlx::query_as(&sql).fetch_all(pool).await?
        }
        Db::Sqlite(pool) => {
            let columns: Vec<(String,)> =
                sqlx::query_as("SELECT name FROM pragma_table_xinfo($1) ORDER BY cid")
                    .bind(table)
                    .fetch_all(pool)
                    .await?;
            let pairs: Vec<String> = columns.iter().map(|(c,)| format!("'{c}', {c}")).collect();
            let sql = format!(
                "SELECT json_object({}) AS j FROM {table} ORDER BY j",
                pairs.join(", ")
            );
            sqlx::query_as(&sql).fetch_all(pool).await?
        }
    };
    Ok(rows.into_iter().map(|(j,)| j).collect())
}
