//! Inputs that reach a saga outside its feed: a provider's signed callback (a passed
//! 3-D Secure challenge, a carrier's scan) is handed to the saga it concerns at once,
//! instead of waiting for the saga's next poll timer.

use sagas::ports::{Carrier, PaymentProvider};
use sagas::{Input, ProcessManager};

use super::runner::SagaRunner;
use super::store::{self, Save};
use super::SagaError;

/// How often a delivery is tried again when the saga changed while its step ran.
const ATTEMPTS: usize = 5;

/// What became of a delivered input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The step ran and was stored.
    Stepped,
    /// No such saga (never started, or another saga type).
    NoSaga,
}

impl<S, P, C> SagaRunner<S, P, C>
where
    S: ProcessManager + Send + Sync + 'static,
    S::State: Send + Sync,
    P: PaymentProvider + 'static,
    C: Carrier + 'static,
{
    /// Runs one step of saga `saga_id` for `input` and stores it, like a fired timer:
    /// optimistic on the saga's version, run again from the new state when another
    /// worker stored a step meanwhile. The step's commands and calls carry ids derived
    /// from `input`, so a delivery repeated after a failure does nothing twice.
    pub async fn deliver(&self, saga_id: &str, input: Input) -> Result<Delivered, SagaError> {
        let store = self.commands.store();
        for _ in 0..ATTEMPTS {
            let Some(row) = store::load(store.db(), S::NAME, saga_id).await? else {
                return Ok(Delivered::NoSaga);
            };
            let state: S::State = serde_json::from_value(row.state.clone())?;
            let stepped = self
                .step(saga_id, state, input.clone())
                .await
                .map_err(|e| SagaError::Step(e.message))?;
            let state = serde_json::to_value(&stepped.state)?;
            let save = Save {
                saga_type: S::NAME,
                saga_id,
                state: &state,
                finished: self.saga.is_finished(&stepped.state),
                expected_version: Some(row.version),
                event: None,
                now: store.clock().now(),
                set_timers: &stepped.set_timers,
                cancel_timers: &stepped.cancel_timers,
                fired: None,
            };
            let saved = store::save_step_alone(store.db(), &save, None).await?;
            if saved.is_ok() {
                return Ok(Delivered::Stepped);
            }
        }
        Err(SagaError::Step(format!(
            "saga {}/{saga_id} kept changing; the input was not stored",
            S::NAME
        )))
    }
}
