//! The consumer runtime's bookkeeping in the database (migration `…_consumers.sql`): one
//! set of SQL for both backends (`$n` parameters, `CASE` instead of `GREATEST`/`max`,
//! times bound from the store's clock).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ConsumerError, DeadLetter, DeadLetterStatus, Tx};
use crate::feed::Envelope;
use crate::store::{Store, StreamRef};
use crate::{in_tx, on_conn, on_db};

/// A subscriber's registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct Registration {
    pub start_position: i64,
    pub position: i64,
}

/// Registers `name` (first run: starting after `start`) and returns where it stands.
pub(super) async fn register(
    store: &Store,
    name: &str,
    ordered: bool,
    start: i64,
) -> Result<Registration, ConsumerError> {
    let now = store.clock().now();
    on_db!(store.db(), pool => {
        sqlx::query(
            "INSERT INTO consumers (name, ordered, start_position, position, updated_at) \
             VALUES ($1, $2, $3, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(ordered)
        .bind(start)
        .bind(now)
        .execute(pool)
        .await?;
        sqlx::query("UPDATE consumers SET ordered = $2 WHERE name = $1 AND ordered <> $2")
            .bind(name)
            .bind(ordered)
            .execute(pool)
            .await?;
        Ok(sqlx::query_as(
            "SELECT start_position, position FROM consumers WHERE name = $1",
        )
        .bind(name)
        .fetch_one(pool)
        .await?)
    })
}

/// The position at or below which every event is settled for a registered consumer
/// without a trace of its own: where it started, or its pruning horizon when retention
/// has moved it beyond (0 when the consumer is not registered).
pub(super) async fn settled_floor(store: &Store, name: &str) -> Result<i64, ConsumerError> {
    let row: Option<(i64, i64)> = on_db!(store.db_read(), pool => {
        sqlx::query_as("SELECT start_position, pruned_through FROM consumers WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map_or(0, |(start, horizon)| start.max(horizon)))
}

/// The newest settled version of `stream` for an ordered consumer, if any.
pub(super) async fn settled_version(
    store: &Store,
    consumer: &str,
    stream: &StreamRef,
) -> Result<Option<i64>, ConsumerError> {
    Ok(on_db!(store.db_read(), pool => {
        sqlx::query_scalar(
            "SELECT version FROM consumer_streams \
             WHERE consumer = $1 AND stream_type = $2 AND stream_id = $3",
        )
        .bind(consumer)
        .bind(&stream.stream_type)
        .bind(&stream.stream_id)
        .fetch_optional(pool)
        .await?
    }))
}

/// The first version of `stream` in the log after global position `after`.
pub(super) async fn first_version_after(
    store: &Store,
    stream: &StreamRef,
    after: i64,
) -> Result<Option<i64>, ConsumerError> {
    Ok(on_db!(store.db_read(), pool => {
        sqlx::query_scalar(
            "SELECT min(version) FROM events \
             WHERE stream_type = $1 AND stream_id = $2 AND position > $3",
        )
        .bind(&stream.stream_type)
        .bind(&stream.stream_id)
        .bind(after)
        .fetch_one(pool)
        .await?
    }))
}

/// Whether an unordered consumer has handled `event_id` already.
pub(super) async fn in_inbox(
    store: &Store,
    consumer: &str,
    event_id: Uuid,
) -> Result<bool, ConsumerError> {
    has_event(
        store,
        "SELECT position FROM consumer_inbox WHERE consumer = $1 AND event_id = $2",
        consumer,
        event_id,
    )
    .await
}

/// Whether `event_id` is among the consumer's dead letters (in any status).
pub(super) async fn is_dead_letter(
    store: &Store,
    consumer: &str,
    event_id: Uuid,
) -> Result<bool, ConsumerError> {
    has_event(
        store,
        "SELECT position FROM dead_letters WHERE consumer = $1 AND event_id = $2",
        consumer,
        event_id,
    )
    .await
}

/// Whether `sql` (selecting a bigint by consumer and event id) finds a row.
async fn has_event(
    store: &Store,
    sql: &str,
    consumer: &str,
    event_id: Uuid,
) -> Result<bool, ConsumerError> {
    let found: Option<i64> = on_db!(store.db_read(), pool => {
        sqlx::query_scalar(sql)
            .bind(consumer)
            .bind(event_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(found.is_some())
}

/// Whether `stream` has an open dead letter or parked events for this consumer: later
/// events of it must be parked, not handled.
pub(super) async fn stream_blocked(
    store: &Store,
    consumer: &str,
    stream: &StreamRef,
) -> Result<bool, ConsumerError> {
    let found: Option<i64> = on_db!(store.db_read(), pool => {
        sqlx::query_scalar(
            "SELECT id FROM dead_letters WHERE consumer = $1 AND stream_type = $2 \
             AND stream_id = $3 AND status IN ('dead', 'retry', 'retrying', 'parked') LIMIT 1",
        )
        .bind(consumer)
        .bind(&stream.stream_type)
        .bind(&stream.stream_id)
        .fetch_optional(pool)
        .await?
    });
    Ok(found.is_some())
}

const UPSERT_STREAM: &str = "INSERT INTO consumer_streams \
     (consumer, stream_type, stream_id, version, position, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (consumer, stream_type, stream_id) DO UPDATE SET \
     version = CASE WHEN excluded.version > consumer_streams.version \
               THEN excluded.version ELSE consumer_streams.version END, \
     position = CASE WHEN excluded.position > consumer_streams.position \
               THEN excluded.position ELSE consumer_streams.position END, \
     updated_at = excluded.updated_at";

const INSERT_INBOX: &str = "INSERT INTO consumer_inbox (consumer, event_id, position, handled_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (consumer, event_id) DO NOTHING";

const ADVANCE_CONSUMER: &str = "UPDATE consumers SET \
     position = CASE WHEN $2 > position THEN $2 ELSE position END, updated_at = $3 \
     WHERE name = $1";

const CLEAR_FAILURES: &str = "DELETE FROM consumer_failures WHERE consumer = $1 AND event_id = $2";

/// Records `envelope` as done for the consumer (handled, not wanted, or discarded) in
/// `tx`, the transaction the handler may have written its effect in, and commits it: the
/// stream's settled version (ordered) or the inbox (unordered), the consumer's position
/// (moved up to `advance_to`, never down: the highest position at or below which the
/// runner has finished every event, which is not the event's own when earlier ones are
/// still in flight), and the end of its failure count. With a `fence`, first checks that
/// this runner still holds its lease, so a runner that lost it cannot settle (its effect
/// rolls back).
#[allow(clippy::too_many_arguments)]
pub(super) async fn settle(
    store: &Store,
    mut tx: Tx<'_>,
    fence: Option<i32>,
    consumer: &str,
    ordered: bool,
    envelope: &Envelope,
    advance_to: i64,
    had_failures: bool,
) -> Result<(), ConsumerError> {
    let now = store.clock().now();
    on_conn!(tx.conn().await?, tx => {
        if let Some(pid) = fence {
            let held: bool = sqlx::query_scalar(super::lease::FENCE)
                .bind(pid)
                .bind(consumer)
                .fetch_one(&mut *tx)
                .await?;
            if !held {
                return Err(ConsumerError::LeaseLost(consumer.to_string()));
            }
        }
        if ordered {
            sqlx::query(UPSERT_STREAM)
                .bind(consumer)
                .bind(&envelope.stream_type)
                .bind(&envelope.stream_id)
                .bind(envelope.version)
                .bind(envelope.position)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(INSERT_INBOX)
                .bind(consumer)
                .bind(envelope.event_id)
                .bind(envelope.position)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(ADVANCE_CONSUMER)
            .bind(consumer)
            .bind(advance_to)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if had_failures {
            sqlx::query(CLEAR_FAILURES)
                .bind(consumer)
                .bind(envelope.event_id)
                .execute(&mut *tx)
                .await?;
        }
    });
    tx.commit().await?;
    Ok(())
}

/// Moves the consumer's position up to `position` (never down): every event at or below
/// it is finished.
pub(super) async fn advance(
    store: &Store,
    consumer: &str,
    position: i64,
) -> Result<(), ConsumerError> {
    let now = store.clock().now();
    on_db!(store.db(), pool => {
        sqlx::query(ADVANCE_CONSUMER)
            .bind(consumer)
            .bind(position)
            .bind(now)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Counts one more failed attempt at `event_id`; returns the count so far.
pub(super) async fn record_failure(
    store: &Store,
    consumer: &str,
    event_id: Uuid,
    error: &str,
) -> Result<i32, ConsumerError> {
    let now = store.clock().now();
    Ok(on_db!(store.db(), pool => {
        sqlx::query_scalar(
            "INSERT INTO consumer_failures (consumer, event_id, failures, last_error, updated_at) \
             VALUES ($1, $2, 1, $3, $4) ON CONFLICT (consumer, event_id) DO UPDATE SET \
             failures = consumer_failures.failures + 1, last_error = excluded.last_error, \
             updated_at = excluded.updated_at RETURNING failures",
        )
        .bind(consumer)
        .bind(event_id)
        .bind(error)
        .bind(now)
        .fetch_one(pool)
        .await?
    }))
}

/// Stores `envelope` as a dead letter (`Dead`) or as parked behind one (`Parked`), and
/// moves the consumer's position up to `advance_to` (past the event when nothing earlier
/// is in flight: the feed need not deliver it again). A second call for the same event
/// changes nothing.
pub(super) async fn set_aside(
    store: &Store,
    consumer: &str,
    envelope: &Envelope,
    advance_to: i64,
    status: DeadLetterStatus,
    attempts: i32,
    error: Option<&str>,
) -> Result<(), ConsumerError> {
    let now = store.clock().now();
    let text = serde_json::to_string(envelope).map_err(ConsumerError::Encode)?;
    in_tx!(store.db(), tx => {
        sqlx::query(
            "INSERT INTO dead_letters (consumer, status, event_id, position, stream_type, \
             stream_id, version, event_type, envelope, attempts, error, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
             ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(consumer)
        .bind(status.as_str())
        .bind(envelope.event_id)
        .bind(envelope.position)
        .bind(&envelope.stream_type)
        .bind(&envelope.stream_id)
        .bind(envelope.version)
        .bind(&envelope.event_type)
        .bind(&text)
        .bind(attempts)
        .bind(error)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(ADVANCE_CONSUMER)
            .bind(consumer)
            .bind(advance_to)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(CLEAR_FAILURES)
            .bind(consumer)
            .bind(envelope.event_id)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

const DEAD_LETTER_COLUMNS: &str = "id, consumer, status, event_id, position, stream_type, \
     stream_id, version, event_type, envelope, attempts, error, not_before, claimed_at, \
     created_at, updated_at";

/// Claims the consumer's next piece of dead-letter work, oldest first: an operator's
/// retry request, a claim abandoned by a crashed runtime (older than `stale_before`), or
/// the first parked event of a stream that is no longer blocked. Returns it with the
/// status it had before the claim.
pub(super) async fn claim(
    store: &Store,
    consumer: &str,
    stale_before: DateTime<Utc>,
) -> Result<Option<(DeadLetter, DeadLetterStatus)>, ConsumerError> {
    const CANDIDATE: &str =
        "SELECT p.id, p.status FROM dead_letters p WHERE p.consumer = $1 AND ( \
           p.status = 'retry' \
           OR (p.status = 'retrying' AND p.claimed_at < $3) \
           OR (p.status = 'parked' AND (p.not_before IS NULL OR p.not_before <= $2) \
               AND NOT EXISTS (SELECT 1 FROM dead_letters d \
                 WHERE d.consumer = p.consumer AND d.stream_type = p.stream_type \
                 AND d.stream_id = p.stream_id AND d.id <> p.id AND ( \
                   d.status IN ('dead', 'retry', 'retrying') \
                   OR (d.status = 'parked' AND d.position < p.position))))) \
         ORDER BY p.position LIMIT 1";
    let take = format!(
        "UPDATE dead_letters SET status = 'retrying', claimed_at = $2, updated_at = $2 \
         WHERE id = $1 AND status = $3 AND (status <> 'retrying' OR claimed_at < $4) \
         RETURNING {DEAD_LETTER_COLUMNS}"
    );
    loop {
        let now = store.clock().now();
        let candidate: Option<(i64, String)> = on_db!(store.db(), pool => {
            sqlx::query_as(CANDIDATE)
                .bind(consumer)
                .bind(now)
                .bind(stale_before)
                .fetch_optional(pool)
                .await?
        });
        let Some((id, status)) = candidate else {
            return Ok(None);
        };
        let previous = DeadLetterStatus::parse(&status)
            .ok_or_else(|| ConsumerError::Corrupt(format!("dead letter status {status}")))?;
        let row = on_db!(store.db(), pool => {
            sqlx::query_as::<_, DeadLetterRow>(&take)
                .bind(id)
                .bind(now)
                .bind(&status)
                .bind(stale_before)
                .fetch_optional(pool)
                .await?
        });
        // Another runtime of the same consumer claimed it first: look again.
        if let Some(row) = row {
            return Ok(Some((DeadLetter::try_from(row)?, previous)));
        }
    }
}

/// Ends a claimed dead letter: `Resolved` after the handler succeeded (together with
/// settling the event), `Dead` after it failed for good, `Parked` to try later.
pub(super) async fn finish_claim(
    store: &Store,
    id: i64,
    status: DeadLetterStatus,
    attempts: i32,
    error: Option<&str>,
    not_before: Option<DateTime<Utc>>,
) -> Result<(), ConsumerError> {
    let now = store.clock().now();
    on_db!(store.db(), pool => {
        sqlx::query(
            "UPDATE dead_letters SET status = $2, attempts = $3, error = $4, not_before = $5, \
             claimed_at = NULL, updated_at = $6 WHERE id = $1 AND status = 'retrying'",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(attempts)
        .bind(error)
        .bind(not_before)
        .bind(now)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// A `dead_letters` row as stored.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct DeadLetterRow {
    id: i64,
    consumer: String,
    status: String,
    event_id: Uuid,
    position: i64,
    stream_type: String,
    stream_id: String,
    version: i64,
    event_type: String,
    envelope: String,
    attempts: i32,
    error: Option<String>,
    not_before: Option<DateTime<Utc>>,
    claimed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<DeadLetterRow> for DeadLetter {
    type Error = ConsumerError;

    fn try_from(row: DeadLetterRow) -> Result<Self, ConsumerError> {
        Ok(DeadLetter {
            id: row.id,
            status: DeadLetterStatus::parse(&row.status).ok_or_else(|| {
                ConsumerError::Corrupt(format!("dead letter status {}", row.status))
            })?,
            envelope: serde_json::from_str(&row.envelope).map_err(ConsumerError::Encode)?,
            consumer: row.consumer,
            event_id: row.event_id,
            position: row.position,
            stream: StreamRef::new(row.stream_type, row.stream_id),
            version: row.version,
            event_type: row.event_type,
            attempts: row.attempts,
            error: row.error,
            not_before: row.not_before,
            claimed_at: row.claimed_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Dead letters matching the filters, oldest first.
pub(super) async fn list(
    store: &Store,
    consumer: Option<&str>,
    statuses: &[DeadLetterStatus],
    after_id: i64,
    limit: i64,
) -> Result<Vec<DeadLetter>, ConsumerError> {
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    // At most six fixed words: inlined as literals, never user text.
    let in_list = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters \
         WHERE ($1 IS NULL OR consumer = $1) AND status IN ({in_list}) AND id > $2 \
         ORDER BY id LIMIT $3"
    );
    let rows = on_db!(store.db_read(), pool => {
        sqlx::query_as::<_, DeadLetterRow>(&sql)
            .bind(consumer)
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
    });
    rows.into_iter().map(DeadLetter::try_from).collect()
}

/// One dead letter by id.
pub(super) async fn get(store: &Store, id: i64) -> Result<Option<DeadLetter>, ConsumerError> {
    let sql = format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = $1");
    let row = on_db!(store.db_read(), pool => {
        sqlx::query_as::<_, DeadLetterRow>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?
    });
    row.map(DeadLetter::try_from).transpose()
}

/// Moves dead letter `id` from `from` to `to`; false when it is not in `from`.
pub(super) async fn transition(
    store: &Store,
    id: i64,
    from: DeadLetterStatus,
    to: DeadLetterStatus,
) -> Result<bool, ConsumerError> {
    let now = store.clock().now();
    let done = on_db!(store.db(), pool => {
        sqlx::query("UPDATE dead_letters SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// Discards dead letter `id` (only from `dead`), and for an ordered consumer settles its
/// event, so the stream's parked events can follow. False when it is not `dead`.
pub(super) async fn discard(store: &Store, id: i64) -> Result<bool, ConsumerError> {
    let Some(letter) = get(store, id).await? else {
        return Ok(false);
    };
    let now = store.clock().now();
    let envelope = &letter.envelope;
    in_tx!(store.db(), tx => {
        let changed = sqlx::query(
            "UPDATE dead_letters SET status = 'discarded', updated_at = $2 \
             WHERE id = $1 AND status = 'dead'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        let ordered: Option<bool> = sqlx::query_scalar("SELECT ordered FROM consumers WHERE name = $1")
            .bind(&letter.consumer)
            .fetch_optional(&mut *tx)
            .await?;
        if ordered.unwrap_or(true) {
            sqlx::query(UPSERT_STREAM)
                .bind(&letter.consumer)
                .bind(&envelope.stream_type)
                .bind(&envelope.stream_id)
                .bind(envelope.version)
                .bind(envelope.position)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(INSERT_INBOX)
                .bind(&letter.consumer)
                .bind(envelope.event_id)
                .bind(envelope.position)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
    });
    Ok(true)
}
