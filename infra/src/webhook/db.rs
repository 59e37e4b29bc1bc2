//! Database access shared by the admin operations, the fan-out and the dispatcher.
//!
//! Most statements are one SQL text for both backends: sqlx binds `$N` parameters on
//! SQLite too, both accept `ON CONFLICT … DO NOTHING`, row values and `RETURNING`, and
//! UUIDs and times bind as the same Rust types (SQLite stores UUIDs as blobs and times as
//! RFC 3339 text in UTC, which sorts in time order). The store's [`on_db!`](crate::on_db)
//! and [`in_tx!`](crate::in_tx) macros expand one body once per backend.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use super::{
    Attempt, Delivery, DeliveryStatus, EventFilter, Subscription, SubscriptionStatus, WebhookError,
};
use crate::store::Store;

pub(super) use crate::store::Db;
pub(super) use crate::{in_tx, on_db};

/// The store clock's now, at the microsecond precision both databases keep.
pub(super) fn now(store: &Store) -> DateTime<Utc> {
    store.clock().now().trunc_subsecs(6)
}

pub(super) const SUBSCRIPTION_COLUMNS: &str = "id, url, description, event_types, status, \
     consecutive_failures, disabled_reason, disabled_at, start_position, created_at, updated_at";

#[derive(Debug, sqlx::FromRow)]
pub(super) struct SubscriptionRow {
    id: Uuid,
    url: String,
    description: String,
    event_types: String,
    status: String,
    consecutive_failures: i64,
    disabled_reason: Option<String>,
    disabled_at: Option<DateTime<Utc>>,
    start_position: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = WebhookError;

    fn try_from(row: SubscriptionRow) -> Result<Self, WebhookError> {
        Ok(Subscription {
            event_types: parse_filter(&row.event_types)?,
            status: SubscriptionStatus::parse(&row.status)?,
            id: row.id,
            url: row.url,
            description: row.description,
            consecutive_failures: row.consecutive_failures,
            disabled_reason: row.disabled_reason,
            disabled_at: row.disabled_at,
            start_position: row.start_position,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

pub(super) fn parse_filter(text: &str) -> Result<EventFilter, WebhookError> {
    serde_json::from_str(text)
        .map_err(|e| WebhookError::Corrupt(format!("subscription filter `{text}`: {e}")))
}

pub(super) fn filter_text(filter: &EventFilter) -> Result<String, WebhookError> {
    serde_json::to_string(filter).map_err(|e| WebhookError::Corrupt(e.to_string()))
}

pub(super) const DELIVERY_COLUMNS: &str = "id, subscription_id, generation, event_id, position, \
     stream_type, stream_id, event_type, status, attempts, next_attempt_at, last_status_code, \
     last_error, created_at, updated_at, delivered_at";

#[derive(Debug, sqlx::FromRow)]
pub(super) struct DeliveryRow {
    id: Uuid,
    subscription_id: Uuid,
    generation: i64,
    event_id: Uuid,
    position: i64,
    stream_type: String,
    stream_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    next_attempt_at: DateTime<Utc>,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = WebhookError;

    fn try_from(row: DeliveryRow) -> Result<Self, WebhookError> {
        Ok(Delivery {
            status: DeliveryStatus::parse(&row.status)?,
            last_status_code: status_code(row.last_status_code)?,
            id: row.id,
            subscription_id: row.subscription_id,
            generation: row.generation,
            event_id: row.event_id,
            position: row.position,
            stream_type: row.stream_type,
            stream_id: row.stream_id,
            event_type: row.event_type,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
            created_at: row.created_at,
            updated_at: row.updated_at,
            delivered_at: row.delivered_at,
        })
    }
}

pub(super) const ATTEMPT_COLUMNS: &str =
    "delivery_id, attempt_no, attempted_at, status_code, error, duration_ms, response_excerpt";

#[derive(Debug, sqlx::FromRow)]
pub(super) struct AttemptRow {
    pub(super) delivery_id: Uuid,
    attempt_no: i64,
    attempted_at: DateTime<Utc>,
    status_code: Option<i64>,
    error: Option<String>,
    duration_ms: i64,
    response_excerpt: Option<String>,
}

impl TryFrom<AttemptRow> for Attempt {
    type Error = WebhookError;

    fn try_from(row: AttemptRow) -> Result<Self, WebhookError> {
        Ok(Attempt {
            status_code: status_code(row.status_code)?,
            attempt_no: row.attempt_no,
            attempted_at: row.attempted_at,
            error: row.error,
            duration_ms: row.duration_ms,
            response_excerpt: row.response_excerpt,
        })
    }
}

fn status_code(code: Option<i64>) -> Result<Option<u16>, WebhookError> {
    code.map(|c| u16::try_from(c).map_err(|_| WebhookError::Corrupt(format!("HTTP status {c}"))))
        .transpose()
}

/// A delivery row to insert (fan-out and replay).
#[derive(Debug, Clone)]
pub(super) struct NewDelivery {
    pub(super) subscription_id: Uuid,
    pub(super) generation: i64,
    pub(super) event_id: Uuid,
    pub(super) position: i64,
    pub(super) stream_type: String,
    pub(super) stream_id: String,
    pub(super) event_type: String,
}

/// Rows per multi-row insert (8 parameters each, well below both backends' limits).
pub(super) const INSERT_CHUNK: usize = 500;

/// Inserts pending deliveries, due at `now`, through `$exec` (a pool or a transaction of
/// either backend, inside an [`on_db!`] or [`in_tx!`] body); rows already present (same
/// subscription, event and generation) are left alone. Evaluates to how many were new.
macro_rules! insert_deliveries_on {
    ($exec:expr, $rows:expr, $now:expr) => {{
        let mut inserted = 0u64;
        for chunk in $rows.chunks($crate::webhook::db::INSERT_CHUNK) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO webhook_deliveries (id, subscription_id, generation, event_id, \
                 position, stream_type, stream_id, event_type, status, attempts, \
                 next_attempt_at, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut row, d| {
                row.push_bind(uuid::Uuid::now_v7())
                    .push_bind(d.subscription_id)
                    .push_bind(d.generation)
                    .push_bind(d.event_id)
                    .push_bind(d.position)
                    .push_bind(d.stream_type.as_str())
                    .push_bind(d.stream_id.as_str())
                    .push_bind(d.event_type.as_str())
                    .push("'pending', 0")
                    .push_bind($now)
                    .push_bind($now)
                    .push_bind($now);
            });
            insert.push(" ON CONFLICT (subscription_id, event_id, generation) DO NOTHING");
            inserted += insert.build().execute($exec).await?.rows_affected();
        }
        inserted
    }};
}
pub(super) use insert_deliveries_on;

/// [`insert_deliveries_on`] the store's pool. Returns how many were new.
pub(super) async fn insert_deliveries(
    db: Db<'_>,
    rows: &[NewDelivery],
    now: DateTime<Utc>,
) -> Result<u64, WebhookError> {
    Ok(on_db!(db, pool => insert_deliveries_on!(pool, rows, now)))
}
