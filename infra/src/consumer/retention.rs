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
//! Not pruned: `consumer_streams` (one row per stream and ordered consumer, so it grows
//! with streams, not events; the row is what tells the next event of its stream that it
//! is next) and `consumer_failures` (deleted as soon as the event succeeds).
//!
//! Deletes run in batches, so a large backlog never holds one long transaction.

use chrono::{DateTime, Utc};

use super::ConsumerError;
use crate::on_db;
use crate::store::Store;

const BATCH: i64 = 1000;

/// What one [`prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub inbox: u64,
    pub dead_letters: u64,
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
    let pruned = Pruned {
        inbox,
        dead_letters,
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
