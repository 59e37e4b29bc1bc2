//! Replays as background jobs.
//!
//! A replay enqueues every event of a range that a subscription's filter matches as a
//! new generation of deliveries. A long log makes that a long job, so the admin request
//! only records it ([`start`]) and answers; the dispatcher carries it out ([`advance`]),
//! one batch of the log per transaction: the batch's deliveries and the job's progress
//! (`done_position`, `enqueued`) commit together. A crash between batches resumes at the
//! last committed one, and a batch commits only if the job is still where the batch began,
//! so dispatchers of several processes never enqueue a batch twice.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use super::admin::get as subscription;
use super::db::{insert_deliveries_on, now, on_db, NewDelivery};
use super::WebhookError;
use crate::store::Store;

/// Events read from the log per batch (and per transaction).
pub const BATCH: i64 = 500;

/// Whether a replay still has events to enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    Running,
    Done,
}

/// A replay job and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayJob {
    pub id: Uuid,
    pub subscription_id: Uuid,
    /// The generation of the deliveries it enqueues.
    pub generation: i64,
    /// Events after this position are considered…
    pub from_position: i64,
    /// …up to and including this one (the log's head when the replay was asked for).
    pub to_position: i64,
    /// Every matching event at or below this position is enqueued.
    pub done_position: i64,
    /// Deliveries enqueued so far.
    pub enqueued: u64,
    pub status: ReplayStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, subscription_id, generation, from_position, to_position, \
     done_position, enqueued, status, created_at, updated_at, finished_at";

/// Reads a [`ReplayJob`] from a row of either backend.
macro_rules! job {
    ($row:expr) => {{
        let row = $row;
        let status: String = row.try_get("status")?;
        let enqueued: i64 = row.try_get("enqueued")?;
        ReplayJob {
            id: row.try_get("id")?,
            subscription_id: row.try_get("subscription_id")?,
            generation: row.try_get("generation")?,
            from_position: row.try_get("from_position")?,
            to_position: row.try_get("to_position")?,
            done_position: row.try_get("done_position")?,
            enqueued: u64::try_from(enqueued).unwrap_or_default(),
            status: match status.as_str() {
                "running" => ReplayStatus::Running,
                "done" => ReplayStatus::Done,
                other => return Err(WebhookError::Corrupt(format!("replay status {other}"))),
            },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            finished_at: row.try_get("finished_at")?,
        }
    }};
}

/// Records a replay of `subscription_id` from `from_position` to the log's current head
/// and returns it, `Running` (or `Done` at once when the range is empty). The
/// subscription's generation is bumped in the same transaction, so every replay has its
/// own generation.
pub async fn start(
    store: &Store,
    subscription_id: Uuid,
    from_position: i64,
) -> Result<ReplayJob, WebhookError> {
    if from_position < 0 {
        return Err(WebhookError::Invalid(
            "from_position must be 0 or more".into(),
        ));
    }
    let to_position = store.head_position().await?;
    let at = now(store);
    let id = Uuid::now_v7();
    let empty = from_position >= to_position;
    let status = if empty { "done" } else { "running" };
    let finished_at = empty.then_some(at);
    let job = crate::in_tx!(store.db(), tx => {
        let generation: Option<i64> = sqlx::query_scalar(
            "UPDATE webhook_subscriptions SET generation = generation + 1, updated_at = $2 \
             WHERE id = $1 RETURNING generation",
        )
        .bind(subscription_id)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        let generation = generation.ok_or(WebhookError::SubscriptionNotFound(subscription_id))?;
        let row = sqlx::query(&format!(
            "INSERT INTO webhook_replays (id, subscription_id, generation, from_position, \
             to_position, done_position, enqueued, status, created_at, updated_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $4, 0, $6, $7, $7, $8) RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(subscription_id)
        .bind(generation)
        .bind(from_position)
        .bind(to_position)
        .bind(status)
        .bind(at)
        .bind(finished_at)
        .fetch_one(&mut *tx)
        .await?;
        job!(&row)
    });
    tracing::info!(subscription = %subscription_id, replay = %id, generation = job.generation, from_position, to_position, "webhook replay started");
    Ok(job)
}

/// One replay of a subscription.
pub async fn get(
    store: &Store,
    subscription_id: Uuid,
    replay_id: Uuid,
) -> Result<ReplayJob, WebhookError> {
    let sql =
        format!("SELECT {COLUMNS} FROM webhook_replays WHERE subscription_id = $1 AND id = $2");
    let job = on_db!(store.db(), pool => {
        match sqlx::query(&sql).bind(subscription_id).bind(replay_id).fetch_optional(pool).await? {
            Some(row) => Some(job!(&row)),
            None => None,
        }
    });
    job.ok_or(WebhookError::ReplayNotFound(replay_id))
}

/// A subscription's replays, newest first, at most `limit`.
pub async fn list(
    store: &Store,
    subscription_id: Uuid,
    limit: i64,
) -> Result<Vec<ReplayJob>, WebhookError> {
    subscription(store, subscription_id).await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM webhook_replays WHERE subscription_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    );
    let jobs = on_db!(store.db(), pool => {
        let rows = sqlx::query(&sql).bind(subscription_id).bind(limit).fetch_all(pool).await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            jobs.push(job!(row));
        }
        jobs
    });
    Ok(jobs)
}

/// Enqueues the next `batch` events of the oldest running replay (or of `only`, when
/// given).
/// Returns the job as it stands afterwards, or `None` when no replay is running.
///
/// The log and the subscription are read before the transaction (on SQLite the one
/// writer connection is not held for it); the transaction then moves the job's progress
/// only if it is still where the batch began, so two dispatchers advancing one job at
/// once commit the batch once and the other's inserts go with its empty update.
pub async fn advance(
    store: &Store,
    only: Option<Uuid>,
    batch: i64,
) -> Result<Option<ReplayJob>, WebhookError> {
    let pick = format!(
        "SELECT {COLUMNS} FROM webhook_replays WHERE status = 'running' \
         AND ($1 IS NULL OR id = $1) ORDER BY created_at, id LIMIT 1"
    );
    let job = on_db!(store.db_read(), pool => {
        match sqlx::query(&pick).bind(only).fetch_optional(pool).await? {
            Some(row) => Some(job!(&row)),
            None => None,
        }
    });
    let Some(job) = job else {
        return Ok(None);
    };
    let filter = subscription(store, job.subscription_id).await?.event_types;
    let events = store.read_all(job.done_position, batch).await?;
    let done_position = match events.last() {
        // A full batch may end before the range does; a short one reached the tail, which
        // lies at or beyond `to_position` (the head read when the replay started).
        Some(last) if events.len() as i64 == batch => last.position.min(job.to_position),
        _ => job.to_position,
    };
    let rows: Vec<NewDelivery> = events
        .into_iter()
        .filter(|e| e.position <= job.to_position)
        .filter(|e| filter.matches(&e.stream_type, &e.event_type))
        .map(|e| NewDelivery {
            subscription_id: job.subscription_id,
            generation: job.generation,
            event_id: e.event_id,
            position: e.position,
            stream_type: e.stream_type,
            stream_id: e.stream_id,
            event_type: e.event_type,
        })
        .collect();
    let at = now(store);
    let finished = done_position >= job.to_position;
    let moved = crate::in_tx!(store.db(), tx => {
        let moved = sqlx::query(
            "UPDATE webhook_replays SET done_position = $3, status = $4, updated_at = $5, \
             finished_at = $6 WHERE id = $1 AND done_position = $2 AND status = 'running'",
        )
        .bind(job.id)
        .bind(job.done_position)
        .bind(done_position)
        .bind(if finished { "done" } else { "running" })
        .bind(at)
        .bind(finished.then_some(at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 1 {
            let inserted = insert_deliveries_on!(&mut *tx, &rows, at);
            sqlx::query("UPDATE webhook_replays SET enqueued = enqueued + $2 WHERE id = $1")
                .bind(job.id)
                .bind(i64::try_from(inserted).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
        }
        moved == 1
    });
    let job = get(store, job.subscription_id, job.id).await?;
    if moved && job.status == ReplayStatus::Done {
        tracing::info!(subscription = %job.subscription_id, replay = %job.id, generation = job.generation, enqueued = job.enqueued, "webhook replay enqueued");
    }
    Ok(Some(job))
}

/// Advances replay `id` until it is done and returns it (for tools and tests; services
/// leave it to the dispatcher).
pub async fn finish(
    store: &Store,
    subscription_id: Uuid,
    id: Uuid,
) -> Result<ReplayJob, WebhookError> {
    loop {
        let job = get(store, subscription_id, id).await?;
        if job.status == ReplayStatus::Done {
            return Ok(job);
        }
        if advance(store, Some(id), BATCH).await?.is_none() {
            return get(store, subscription_id, id).await;
        }
    }
}

/// Advances running replays until `shutdown` completes: batch after batch while there is
/// work, then a look every `every`. Errors are logged and tried again.
pub async fn run(
    store: Store,
    every: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let idle = match advance(&store, None, BATCH).await {
            Ok(Some(_)) => false,
            Ok(None) => true,
            Err(error) => {
                tracing::warn!(%error, "advancing a webhook replay failed; trying again");
                true
            }
        };
        if idle {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(every) => {}
            }
        } else if futures_util::FutureExt::now_or_never(&mut shutdown).is_some() {
            return;
        }
    }
}

/// Deletes replays finished before `before`; returns how many.
pub async fn prune(store: &Store, before: DateTime<Utc>) -> Result<u64, WebhookError> {
    let deleted = on_db!(store.db(), pool => {
        sqlx::query("DELETE FROM webhook_replays WHERE status = 'done' AND finished_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(deleted)
}
