//! The relay's own read of the log while it catches up on a backlog: only the columns a
//! message needs (not the actor, which is in the metadata, nor the hash chain), in
//! large batches, decoded straight from the row into the message without an
//! intermediate [`RecordedEvent`](crate::store::RecordedEvent).
//!
//! It returns exactly the events [`Store::read_all`] returns for the same arguments (on
//! PostgreSQL the same guard: only rows of transactions older than every running one,
//! so a reader continuing from the last position it got misses nothing), encoded as
//! [`message::encode`] encodes them; `tests/tests/relay.rs` compares the two.

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use super::message::{self, Encoded, Fields};
use crate::store::Store;

const PG_READ: &str = "SELECT position, event_id, stream_type, stream_id, version, event_type, \
     schema_version, payload::text, metadata::text, correlation_id, causation_id, recorded_at \
     FROM events \
     WHERE position > $1 AND txid < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY position LIMIT $2";

const SQLITE_READ: &str = "SELECT position, event_id, stream_type, stream_id, version, \
     event_type, schema_version, payload, metadata, correlation_id, causation_id, recorded_at \
     FROM events WHERE position > ? ORDER BY position LIMIT ?";

/// Up to `limit` events after `after_position`, in position order, encoded for subject
/// prefix `prefix`: what the relay publishes for them.
pub async fn read_encoded(
    store: &Store,
    prefix: &str,
    after_position: i64,
    limit: i64,
) -> Result<Vec<Encoded>, sqlx::Error> {
    if let Some(pool) = store.pg_pool() {
        let rows = sqlx::query(PG_READ)
            .bind(after_position)
            .bind(limit)
            .fetch_all(pool)
            .await?;
        rows.iter().map(|row| encode_row(prefix, row)).collect()
    } else if let Some(pool) = store.sqlite_pool() {
        let rows = sqlx::query(SQLITE_READ)
            .bind(after_position)
            .bind(limit)
            .fetch_all(pool)
            .await?;
        rows.iter().map(|row| encode_row(prefix, row)).collect()
    } else {
        unreachable!("a store is on PostgreSQL or SQLite")
    }
}

fn encode_row<'r, R>(prefix: &str, row: &'r R) -> Result<Encoded, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(message::encode_fields(
        prefix,
        Fields {
            position: row.try_get(0)?,
            event_id: row.try_get(1)?,
            stream_type: row.try_get(2)?,
            stream_id: row.try_get(3)?,
            version: row.try_get(4)?,
            event_type: row.try_get(5)?,
            schema_version: row.try_get(6)?,
            payload: row.try_get(7)?,
            metadata: row.try_get(8)?,
            correlation_id: row.try_get(9)?,
            causation_id: row.try_get(10)?,
            recorded_at: row.try_get(11)?,
        },
    ))
}
