//! The timer worker: fires due saga timers, driven by the injectable clock.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;

use sagas::ports::{Carrier, PaymentProvider};
use sagas::{Input, ProcessManager, TimerFired};

use super::runner::SagaRunner;
use super::steps::{self, phase_of, NewStep, StepLog, Trigger};
use super::store::{self, DueTimer, Save};
use super::SagaError;

/// How long a claimed timer is reserved for the worker that claimed it.
const CLAIM: chrono::Duration = chrono::Duration::minutes(2);

impl<S, P, C> SagaRunner<S, P, C>
where
    S: ProcessManager + Send + Sync + 'static,
    S::State: Send + Sync,
    P: PaymentProvider + 'static,
    C: Carrier + 'static,
{
    /// Fires up to `limit` timers due at the clock's now; returns how many fired. A
    /// timer whose step fails, or whose saga changed meanwhile, is released and fires
    /// again on a later call.
    pub async fn fire_due(&self, limit: i64) -> Result<usize, SagaError> {
        self.fire_due_concurrently(limit, 1).await
    }

    /// [`fire_due`](Self::fire_due), firing the timers of up to `concurrency` sagas at
    /// once (the timers of one saga one after another, in due order, so they do not
    /// collide on its row).
    pub async fn fire_due_concurrently(
        &self,
        limit: i64,
        concurrency: usize,
    ) -> Result<usize, SagaError> {
        let store = self.commands.store();
        let now = store.clock().now();
        let due = store::claim_due(store.db(), S::NAME, now, now + CLAIM, limit).await?;
        let mut sagas: Vec<Vec<DueTimer>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for timer in due {
            let at = *index.entry(timer.saga_id.clone()).or_insert_with(|| {
                sagas.push(Vec::new());
                sagas.len() - 1
            });
            sagas[at].push(timer);
        }
        let fired: Vec<Result<usize, SagaError>> = futures_util::stream::iter(sagas)
            .map(|timers| self.fire_all(timers))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut total = 0;
        for result in fired {
            total += result?;
        }
        Ok(total)
    }

    /// Fires `timers` (of one saga) one after another; returns how many fired.
    async fn fire_all(&self, timers: Vec<DueTimer>) -> Result<usize, SagaError> {
        let store = self.commands.store();
        let mut fired = 0;
        for timer in &timers {
            match self.fire(timer).await {
                Ok(true) => fired += 1,
                Ok(false) => store::release(store.db(), S::NAME, timer).await?,
                Err(error) => {
                    tracing::warn!(saga = S::NAME, saga_id = %timer.saga_id, timer = %timer.name, %error, "timer step failed; it fires again");
                    store::release(store.db(), S::NAME, timer).await?;
                }
            }
        }
        Ok(fired)
    }

    /// One timer's step; `Ok(false)` when the saga changed concurrently.
    async fn fire(&self, timer: &DueTimer) -> Result<bool, SagaError> {
        let store = self.commands.store();
        let Some(row) = store::load(store.db(), S::NAME, &timer.saga_id).await? else {
            return Ok(true);
        };
        let state: S::State = serde_json::from_value(row.state.clone())?;
        let fired = TimerFired::new(&timer.saga_id, timer.name.clone(), timer.due);
        let trigger = Trigger::timer(&fired);
        let phase_before = phase_of(&row.state);
        let mut log = StepLog::default();
        let stepped = match self
            .step_logged(&timer.saga_id, state, Input::Timer(fired), &mut log)
            .await
        {
            Ok(stepped) => stepped,
            Err(error) => {
                let step = NewStep {
                    saga_type: S::NAME,
                    saga_id: &timer.saga_id,
                    trigger: &trigger,
                    phase_before: phase_before.as_deref(),
                    phase_after: None,
                    log: &log,
                    error: Some(&error.message),
                    at: store.clock().now(),
                };
                if let Err(e) = steps::record_failed(store.db(), &step).await {
                    tracing::warn!(saga = S::NAME, saga_id = %timer.saga_id, error = %e, "cannot log a failed step");
                }
                return Err(SagaError::Step(error.message));
            }
        };
        let state = serde_json::to_value(&stepped.state)?;
        let phase_after = phase_of(&state);
        let save = Save {
            saga_type: S::NAME,
            saga_id: &timer.saga_id,
            state: &state,
            finished: self.saga.is_finished(&stepped.state),
            expected_version: Some(row.version),
            event: None,
            now: store.clock().now(),
            set_timers: &stepped.set_timers,
            cancel_timers: &stepped.cancel_timers,
            fired: Some((&timer.name, timer.due)),
        };
        let step = NewStep {
            saga_type: S::NAME,
            saga_id: &timer.saga_id,
            trigger: &trigger,
            phase_before: phase_before.as_deref(),
            phase_after: phase_after.as_deref(),
            log: &log,
            error: None,
            at: save.now,
        };
        let saved = store::save_step_alone(store.db(), &save, Some(&step)).await?;
        Ok(saved.is_ok())
    }

    /// Fires due timers every `every` until `shutdown` completes. On SQLite run one of
    /// these per database; on PostgreSQL any number share the work.
    pub async fn run_timers(
        &self,
        every: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        self.run_timers_concurrently(every, 1, shutdown).await
    }

    /// [`run_timers`](Self::run_timers), firing the timers of up to `concurrency` sagas at
    /// once (see [`fire_due_concurrently`](Self::fire_due_concurrently)).
    pub async fn run_timers_concurrently(
        &self,
        every: Duration,
        concurrency: usize,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            loop {
                match self.fire_due_concurrently(100, concurrency).await {
                    Ok(100) => continue,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(saga = S::NAME, %error, "timer worker failed; retrying");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.as_mut() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}
