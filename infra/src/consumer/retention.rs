//! Pruning what the consumer runtime keeps only for a while: inbox rows of events long
//! settled, and dead letters an operator has closed.
//!
//! * **Inbox** (unordered consumers): a row lets the runtime recognize an event delivered
//!   again. Once the event lies at or below the consumer's position and the row is older
//!   than the retention, no feed hands it out again (the local feed restarts from the
//!   position; JetStream redelivers only unacknowledged messages, within their ack wait),
//!   so the row is deleted.
//! * **Dead letters** marked `resolved` or `discarded` are history once older than the
//!   retention: the consumer's stream progress already records the outcome. Open ones
//!   (`dead`, `retry`, `retrying`, `parked`) are never pruned.
//!
//! * **Stream rows** (ordered consumers): the row of a stream says which of its events
//!   comes next. Each ordered consumer has a *horizon* (`consumers.pruned_through`), a
//!   position at or below which every event of the log is settled for it; retention
//!   moves it up to just before the first unsettled event (a failing, dead or parked
//!   one, or one not handed to the consumer yet), scanning the log from the old horizon
//!   at most to the consumer's position and the gap-safe head. Rows whose newest settled
//!   event lies at or below the horizon and that are older than the retention are then
//!   deleted: a stream without a row expects next its first event after the horizon,
//!   which is exactly what the row said. The horizon moves first and the rows go after,
//!   so a crash in between leaves rows that still speak for themselves. A consumer on a
//!   JetStream subject filter never sees the events outside it, which therefore count as
//!   unsettled: its horizon stops at the first of them and its rows stay.
//!
//! Not pruned: `consumer_failures` (deleted as soon as the event succeeds).
//!
//! Deletes run in batches, so a large backlog never holds one long transaction.

use chrono::{DateTime, Utc};

use super::ConsumerError;
use crate::on_db;
use crate::store::Store;

const BATCH: i64 = 1000;

/// Events of the log one horizon query looks at.
const SCAN: i64 = 100_000;

/// What one [`prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub inbox: u64,
    pub dead_letters: u64,
    pub streams: u64,
}

/// Deletes inbox rows and closed dead letters last changed before `before` (see the
/// module docs for which).
pub async fn prune(store: &Store, before: DateTime<Utc>) -> Result<Pruned, ConsumerError> {
    let inbox = batched(
        store,
        "DELETE FROM consumer_inbox WHERE (consumer, event_id) IN ( \
             SELECT i.consumer, i.event_id FROM consumer_inbox i \
               JOIN consumers c ON c.name = i.consumer \
              WHERE i.handled_at < $1 AND i.position <= c.position \
              LIMIT $2)",
        before,
    )
    .await?;
    let dead_letters = batched(
        store,
        "DELETE FROM dead_letters WHERE id IN ( \
             SELECT id FROM dead_letters \
              WHERE status IN ('resolved', 'discarded') AND updated_at < $1 \
              LIMIT $2)",
        before,
    )
    .await?;
    let mut streams = 0;
    let ordered: Vec<(String, i64, i64, i64)> = on_db!(store.db_read(), pool => {
        sqlx::query_as(
            "SELECT name, start_position, position, pruned_through FROM consumers \
             WHERE ordered ORDER BY name",
        )
        .fetch_all(pool)
        .await?
    });
    let head = store.head_position().await?;
    for (name, start, position, horizon) in ordered {
        let horizon = advance_horizon(store, &name, start.max(horizon), position.min(head)).await?;
        streams += prune_streams(store, &name, horizon, before).await?;
    }
    let pruned = Pruned {
        inbox,
        dead_letters,
        streams,
    };
    if pruned != Pruned::default() {
        tracing::info!(?pruned, %before, "consumer bookkeeping pruned");
    }
    Ok(pruned)
}

async fn batched(store: &Store, sql: &str, before: DateTime<Utc>) -> Result<u64, ConsumerError> {
    let mut total = 0;
    loop {
        let deleted = on_db!(store.db(), pool => {
            sqlx::query(sql)
                .bind(before)
                .bind(BATCH)
                .execute(pool)
                .await?
                .rows_affected()
        });
        total += deleted;
        if deleted < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Moves `consumer`'s horizon from `floor` towards `ceiling`, up to just before its first
/// unsettled event, and returns the horizon.
async fn advance_horizon(
    store: &Store,
    consumer: &str,
    floor: i64,
    ceiling: i64,
) -> Result<i64, ConsumerError> {
    let mut horizon = floor;
    while horizon < ceiling {
        let upto = ceiling.min(horizon.saturating_add(SCAN));
        // An event is settled when its stream's row has reached its version.
        let unsettled: Option<i64> = on_db!(store.db_read(), pool => {
            sqlx::query_scalar(
                "SELECT min(e.position) FROM events e \
                   LEFT JOIN consumer_streams s ON s.consumer = $1 \
                        AND s.stream_type = e.stream_type AND s.stream_id = e.stream_id \
                  WHERE e.position > $2 AND e.position <= $3 \
                    AND (s.version IS NULL OR s.version < e.version)",
            )
            .bind(consumer)
            .bind(horizon)
            .bind(upto)
            .fetch_one(pool)
            .await?
        });
        match unsettled {
            Some(first) => {
                horizon = first - 1;
                break;
            }
            None => horizon = upto,
        }
    }
    if horizon > floor {
        on_db!(store.db(), pool => {
            sqlx::query(
                "UPDATE consumers SET pruned_through = $2 WHERE name = $1 AND pruned_through < $2",
            )
            .bind(consumer)
            .bind(horizon)
            .execute(pool)
            .await?
            .rows_affected()
        });
    }
    Ok(horizon)
}

/// Deletes `consumer`'s stream rows at or below `horizon` last changed before `before`.
async fn prune_streams(
    store: &Store,
    consumer: &str,
    horizon: i64,
    before: DateTime<Utc>,
) -> Result<u64, ConsumerError> {
    let mut total = 0;
    loop {
        let deleted = on_db!(store.db(), pool => {
            sqlx::query(
                // The outer conditions are checked again on a row a concurrent settle
                // moved meanwhile (PostgreSQL re-reads it), so a row that just went past
                // the horizon stays.
                "DELETE FROM consumer_streams \
                  WHERE consumer = $1 AND position <= $2 AND updated_at < $3 \
                    AND (consumer, stream_type, stream_id) IN ( \
                        SELECT consumer, stream_type, stream_id FROM consumer_streams \
                         WHERE consumer = $1 AND position <= $2 AND updated_at < $3 LIMIT $4)",
            )
            .bind(consumer)
            .bind(horizon)
            .bind(before)
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected()
        });
        total += deleted;
        if deleted < BATCH as u64 {
            return Ok(total);
        }
    }
}
