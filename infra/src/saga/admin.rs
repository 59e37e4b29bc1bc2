//! Steering one saga by hand (docs/sagas.md, "See and steer"): retry its failed or
//! stuck step. Cancelling is an ordinary command (`CancelOrder`), issued by the API.
//!
//! **Retry** does what is safe without the saga's providers in this process, and leaves
//! the step itself to the workers, which run it as they run any other:
//!
//! 1. every *dead* letter of the saga's consumer (`saga-<type>`) whose event this saga
//!    failed on (the step log names the event) is asked for another attempt, which the
//!    running consumer makes (as `commerce dlq retry` does);
//! 2. its timers that are due are released from any claim (a worker that died holding
//!    them), so the timer worker fires them at its next round;
//! 3. with `timer = NAME`, that timer is brought forward to now and fires at the next
//!    round: for a poll or a retry (`payment-status`, `tracking:…`, `capture:…`) that is
//!    "try again now"; for a deadline (`authorization-deadline`, `return-window`) it is
//!    the deadline passing now, which the operator asks for by name only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::consumer::{DeadLetterError, DeadLetterQueue};
use crate::store::{Store, StoreError};
use crate::{in_tx, on_db};

/// What a retry set in motion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Retried {
    /// Dead letters asked for another attempt.
    pub dead_letters: Vec<i64>,
    /// Timers that fire at the timer worker's next round.
    pub timers: Vec<String>,
}

impl Retried {
    pub fn is_empty(&self) -> bool {
        self.dead_letters.is_empty() && self.timers.is_empty()
    }
}

/// Why a retry could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("saga {0}/{1} has no timer {2}")]
    NoSuchTimer(String, String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
}

impl From<sqlx::Error> for RetryError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The consumer a saga type runs as ([`SagaRunner`](super::SagaRunner)'s name).
pub fn consumer_name(saga_type: &str) -> String {
    format!("saga-{saga_type}")
}

/// Retries saga `(saga_type, saga_id)`'s failed or stuck step (see the module docs).
pub async fn retry(
    store: &Store,
    saga_type: &str,
    saga_id: &str,
    timer: Option<&str>,
) -> Result<Retried, RetryError> {
    let now = store.clock().now();
    let mut retried = Retried::default();
    if let Some(name) = timer {
        if !bring_forward(store, saga_type, saga_id, name, now).await? {
            return Err(RetryError::NoSuchTimer(
                saga_type.into(),
                saga_id.into(),
                name.into(),
            ));
        }
        retried.timers.push(name.to_string());
    }
    let letters: Vec<i64> = on_db!(store.db(), pool => {
        sqlx::query(
            "SELECT id FROM dead_letters WHERE consumer = $1 AND status = 'dead' AND event_id IN \
             (SELECT trigger_id FROM saga_steps WHERE saga_type = $2 AND saga_id = $3 \
              AND trigger_kind = 'event' AND outcome = 'failed') ORDER BY id",
        )
        .bind(consumer_name(saga_type))
        .bind(saga_type)
        .bind(saga_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>("id"))
        .collect::<Result<_, _>>()?
    });
    let queue = DeadLetterQueue::new(store.clone());
    for id in letters {
        match queue.retry(id).await {
            Ok(()) => retried.dead_letters.push(id),
            // Another operator (or the consumer) moved it meanwhile.
            Err(DeadLetterError::WrongStatus { .. } | DeadLetterError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let released: Vec<String> = on_db!(store.db(), pool => {
        sqlx::query(
            "UPDATE saga_timers SET claimed_until = NULL \
             WHERE saga_type = $1 AND saga_id = $2 AND due_at <= $3 RETURNING name",
        )
        .bind(saga_type)
        .bind(saga_id)
        .bind(now)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("name"))
        .collect::<Result<_, _>>()?
    });
    for name in released {
        if !retried.timers.contains(&name) {
            retried.timers.push(name);
        }
    }
    Ok(retried)
}

/// Moves timer `name` to `now`, unclaimed; `false` when the saga has no such timer.
async fn bring_forward(
    store: &Store,
    saga_type: &str,
    saga_id: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let moved = in_tx!(store.db(), tx => {
        sqlx::query(
            "UPDATE saga_timers SET due_at = $4, claimed_until = NULL \
             WHERE saga_type = $1 AND saga_id = $2 AND name = $3",
        )
        .bind(saga_type)
        .bind(saga_id)
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    });
    Ok(moved == 1)
}
