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
use sqlx::sqlite::SqliteConnection;
use sqlx::{ColumnIndex, ConnectOptions, Decode, Row, Type};
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

/// Reads the log for the relay: on PostgreSQL through the store's pool, on SQLite
/// through a connection of its own (opened on first use, reopened after a failure)
/// whose row buffer holds a whole batch, so sqlx's worker thread steps through a batch
/// without handing rows over one handful at a time (the pool's connections buffer 50).
pub struct LogReader {
    store: Store,
    sqlite: Option<SqliteConnection>,
}

impl LogReader {
    pub fn new(store: &Store) -> Self {
        LogReader {
            store: store.clone(),
            sqlite: None,
        }
    }

    /// The store's pause before a failed read is tried again.
    pub(super) fn idle_poll(&self) -> std::time::Duration {
        self.store.config().idle_poll
    }

    /// Up to `limit` events after `after_position`, in position order, encoded for
    /// subject prefix `prefix`: what the relay publishes for them.
    pub async fn read_encoded(
        &mut self,
        prefix: &str,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<Encoded>, sqlx::Error> {
        if let Some(pool) = self.store.pg_pool() {
            let rows = sqlx::query(PG_READ)
                .bind(after_position)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            return rows.iter().map(|row| encode_row(prefix, row)).collect();
        }
        let pool = self
            .store
            .sqlite_pool()
            .expect("a store is on PostgreSQL or SQLite");
        let connection = match &mut self.sqlite {
            Some(connection) => connection,
            None => {
                let options = (*pool.connect_options())
                    .clone()
                    .row_buffer_size(SQLITE_ROW_BUFFER);
                self.sqlite.insert(options.connect().await?)
            }
        };
        let rows = sqlx::query(SQLITE_READ)
            .bind(after_position)
            .bind(limit)
            .fetch_all(&mut *connection)
            .await
            .inspect_err(|_| self.sqlite = None)?;
        rows.iter().map(|row| encode_row(prefix, row)).collect()
    }
}

/// Rows sqlx's SQLite worker may read ahead of the relay: one batch of the reader.
const SQLITE_ROW_BUFFER: usize = super::reader::LOG_BATCH as usize;

/// Decodes without sqlx's per-value type check (about a tenth of the runtime workers'
/// samples in a profile of the read on PostgreSQL):
/// the query and the schema fix every column's type, and a value that does not decode
/// is still an error.
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
            position: row.try_get_unchecked(0)?,
            event_id: row.try_get_unchecked(1)?,
            stream_type: row.try_get_unchecked(2)?,
            stream_id: row.try_get_unchecked(3)?,
            version: row.try_get_unchecked(4)?,
            event_type: row.try_get_unchecked(5)?,
            schema_version: row.try_get_unchecked(6)?,
            payload: row.try_get_unchecked(7)?,
            metadata: row.try_get_unchecked(8)?,
            correlation_id: row.try_get_unchecked(9)?,
            causation_id: row.try_get_unchecked(10)?,
            recorded_at: row.try_get_unchecked(11)?,
        },
    ))
}
