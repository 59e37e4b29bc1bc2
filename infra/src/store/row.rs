//! Decoding of event rows, shared by both backends.

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use super::RecordedEvent;

/// The column list every event query selects, in this order.
pub(super) const PG_COLUMNS: &str = "position, event_id, stream_type, stream_id, version, \
    event_type, schema_version, payload::text AS payload, metadata::text AS metadata, \
    correlation_id, causation_id, actor, recorded_at, hash, prev_hash";

pub(super) const SQLITE_COLUMNS: &str = "position, event_id, stream_type, stream_id, version, \
    event_type, schema_version, payload, metadata, correlation_id, causation_id, actor, \
    recorded_at, hash, prev_hash";

pub(super) fn decode_event<'r, R>(row: &'r R) -> Result<RecordedEvent, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(RecordedEvent {
        position: row.try_get(0)?,
        event_id: row.try_get(1)?,
        stream_type: row.try_get(2)?,
        stream_id: row.try_get(3)?,
        version: row.try_get(4)?,
        event_type: row.try_get(5)?,
        schema_version: row.try_get(6)?,
        payload_text: row.try_get(7)?,
        metadata_text: row.try_get(8)?,
        correlation_id: row.try_get(9)?,
        causation_id: row.try_get(10)?,
        actor: row.try_get(11)?,
        recorded_at: row.try_get(12)?,
        hash: row.try_get(13)?,
        prev_hash: row.try_get(14)?,
    })
}
