//! The saga as a consumer of the event feed.

use std::sync::Arc;

use sagas::ports::{Carrier, PaymentProvider};
use sagas::{DomainEvent, Input, ProcessManager, Route};

use super::runner::SagaRunner;
use super::steps::{self, phase_of, NewStep, StepLog, Trigger};
use super::store::{self, Save};
use crate::consumer::{Handler, HandlerError, Tx};
use crate::feed::Envelope;
use crate::store::ACTOR;

/// Runs saga `S` over a feed: [`Consumer::new`](crate::consumer::Consumer::new) with it,
/// on the local feed or a JetStream durable consumer.
#[derive(Debug)]
pub struct SagaHandler<S, P, C>(pub Arc<SagaRunner<S, P, C>>);

impl<S, P, C> Clone for SagaHandler<S, P, C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// The typed saga envelope of a feed envelope, for stream types sagas listen to.
fn typed(envelope: &Envelope) -> Option<Result<sagas::Envelope, HandlerError>> {
    let decoded = DomainEvent::decode(
        &envelope.stream_type,
        &envelope.event_type,
        u32::try_from(envelope.schema_version).unwrap_or(0),
        envelope.payload.clone(),
    )?;
    Some(
        decoded
            .map(|event| sagas::Envelope {
                event_id: envelope.event_id,
                position: envelope.position,
                stream_id: envelope.stream_id.clone(),
                event,
            })
            .map_err(HandlerError::permanent),
    )
}

impl<S, P, C> Handler for SagaHandler<S, P, C>
where
    S: ProcessManager + Send + Sync + 'static,
    S::State: Send + Sync,
    P: PaymentProvider + 'static,
    C: Carrier + 'static,
{
    fn name(&self) -> &str {
        &self.0.consumer_name
    }

    fn wants(&self, envelope: &Envelope) -> bool {
        match typed(envelope) {
            Some(Ok(e)) => self.0.saga.route(&e) != Route::Ignore,
            // Undecodable events are handed to `handle`, which dead-letters them.
            Some(Err(_)) => true,
            None => false,
        }
    }

    /// The saga the event belongs to: with a concurrent runtime, two steps of one saga
    /// never run at once (they would conflict on the saga row and run again).
    fn lane(&self, envelope: &Envelope) -> Option<String> {
        match typed(envelope) {
            Some(Ok(e)) => match self.0.saga.route(&e) {
                Route::Start(id) | Route::Continue(id) => Some(id),
                Route::Ignore => None,
            },
            _ => None,
        }
    }

    /// Runs the step's commands and calls first (they are idempotent by derived id),
    /// then stores the state, the last event and the timers in the runtime's
    /// transaction, so the event is settled exactly when its step is stored.
    async fn handle(&self, tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        let runner = &self.0;
        let Some(typed) = typed(envelope) else {
            return Ok(());
        };
        let typed = typed?;
        let (saga_id, start) = match runner.saga.route(&typed) {
            Route::Start(id) => (id, true),
            Route::Continue(id) => (id, false),
            Route::Ignore => return Ok(()),
        };
        let store = runner.commands.store();
        let row = store::load(store.db(), S::NAME, &saga_id)
            .await
            .map_err(HandlerError::retry)?;
        // No check of the row's last position: the runtime settles the event in the
        // transaction that stores the step, so a stored step's event never comes back,
        // while events of other streams may legitimately arrive out of log order.
        let (state, expected_version) = match &row {
            Some(row) => (
                serde_json::from_value::<S::State>(row.state.clone())
                    .map_err(HandlerError::permanent)?,
                Some(row.version),
            ),
            None if start => (S::State::default(), None),
            // Caused by this saga, whose first step is not stored yet (another worker
            // is still on it): come back when it is.
            None if envelope.metadata.get(ACTOR).map(String::as_str) == Some(runner.actor()) => {
                return Err(HandlerError::retry(format!(
                    "saga {}/{saga_id} has not stored the step that caused this event yet",
                    S::NAME
                )))
            }
            None => return Ok(()),
        };
        let trigger = Trigger::event(envelope.event_id, &envelope.event_type, envelope.position);
        let phase_before = row.as_ref().and_then(|r| phase_of(&r.state));
        let mut log = StepLog::default();
        let stepped = match runner
            .step_logged(&saga_id, state, Input::Event(typed), &mut log)
            .await
        {
            Ok(stepped) => stepped,
            Err(error) => {
                // Nothing of the step is stored; log it on its own (the runtime's
                // transaction is not open yet, so the pool is free to write).
                if !tx.is_open() {
                    let step = NewStep {
                        saga_type: S::NAME,
                        saga_id: &saga_id,
                        trigger: &trigger,
                        phase_before: phase_before.as_deref(),
                        phase_after: None,
                        log: &log,
                        error: Some(&error.message),
                        at: store.clock().now(),
                    };
                    if let Err(e) = steps::record_failed(store.db(), &step).await {
                        tracing::warn!(saga = S::NAME, %saga_id, error = %e, "cannot log a failed step");
                    }
                }
                return Err(error);
            }
        };
        let state = serde_json::to_value(&stepped.state).map_err(HandlerError::permanent)?;
        let phase_after = phase_of(&state);
        let save = Save {
            saga_type: S::NAME,
            saga_id: &saga_id,
            state: &state,
            finished: runner.saga.is_finished(&stepped.state),
            expected_version,
            event: Some((envelope.position, envelope.event_id)),
            now: store.clock().now(),
            set_timers: &stepped.set_timers,
            cancel_timers: &stepped.cancel_timers,
            fired: None,
        };
        let step = NewStep {
            saga_type: S::NAME,
            saga_id: &saga_id,
            trigger: &trigger,
            phase_before: phase_before.as_deref(),
            phase_after: phase_after.as_deref(),
            log: &log,
            error: None,
            at: save.now,
        };
        store::save_step(tx.conn().await?, &save, Some(&step))
            .await?
            .map_err(HandlerError::retry)
    }
}
