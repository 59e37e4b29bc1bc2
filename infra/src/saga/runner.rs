//! One saga step against the world: commands through the command layer, calls to the
//! ports, replies fed back, timers collected for the save.

use std::collections::{BTreeMap, VecDeque};

use aggregates::loyalty::LoyaltyAccount;
use aggregates::order::Order;
use aggregates::payment::Payment;
use aggregates::promotion::Promotion;
use aggregates::shipment::Shipment;
use aggregates::stock::Stock;
use chrono::{DateTime, Utc};
use sagas::ports::{Carrier, PaymentProvider};
use sagas::{Dispatch, Input, OnFailure, ProcessManager, Reaction, Target, Timer};
use uuid::Uuid;

use super::steps::{self, StepLog};
use crate::command::{CommandContext, CommandError, Commands};
use crate::consumer::HandlerError;

/// What a step leaves to store: the new state and the timer changes.
#[derive(Debug)]
pub struct Stepped<T> {
    pub state: T,
    pub set_timers: Vec<Timer>,
    pub cancel_timers: Vec<String>,
}

/// Runs the steps of process manager `S` with payment provider `P` and carrier `C`.
#[derive(Debug)]
pub struct SagaRunner<S, P, C> {
    pub(super) commands: Commands,
    pub(super) saga: S,
    pub(super) payments: P,
    pub(super) carrier: C,
    pub(super) consumer_name: String,
    actor: String,
}

impl<S, P, C> SagaRunner<S, P, C>
where
    S: ProcessManager + Send + Sync + 'static,
    S::State: Send + Sync,
    P: PaymentProvider + 'static,
    C: Carrier + 'static,
{
    pub fn new(commands: Commands, saga: S, payments: P, carrier: C) -> Self {
        Self {
            commands,
            saga,
            payments,
            carrier,
            consumer_name: format!("saga-{}", S::NAME),
            actor: format!("saga:{}", S::NAME),
        }
    }

    /// The actor recorded on the events of the saga's commands.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn commands(&self) -> &Commands {
        &self.commands
    }

    pub fn saga(&self) -> &S {
        &self.saga
    }

    pub fn payments(&self) -> &P {
        &self.payments
    }

    pub fn carrier(&self) -> &C {
        &self.carrier
    }

    fn now(&self) -> DateTime<Utc> {
        self.commands.store().clock().now()
    }

    /// Folds `input` into `state` and carries out the reaction; replies of the calls it
    /// makes are handled as further inputs of the same step, in order. Commands carry
    /// ids derived from their trigger, calls their idempotency keys, so running a step
    /// again (its save was lost) does nothing twice.
    pub async fn step(
        &self,
        saga_id: &str,
        state: S::State,
        input: Input,
    ) -> Result<Stepped<S::State>, HandlerError> {
        self.step_logged(saga_id, state, input, &mut StepLog::default())
            .await
    }

    /// [`SagaRunner::step`], recording in `log` every command with its outcome and
    /// every call with its reply (also when the step fails part way).
    pub async fn step_logged(
        &self,
        saga_id: &str,
        mut state: S::State,
        input: Input,
        log: &mut StepLog,
    ) -> Result<Stepped<S::State>, HandlerError> {
        let mut timers: BTreeMap<String, Option<DateTime<Utc>>> = BTreeMap::new();
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            self.saga.evolve(&mut state, &input);
            let reaction = self.saga.react(&state, &input, self.now());
            let trigger = input.trigger_id();
            let calls = self
                .carry_out(saga_id, &state, trigger, reaction, &mut timers, log)
                .await?;
            for call in calls {
                let reply = match sagas::ports::perform(&self.payments, &self.carrier, &call).await
                {
                    Ok(reply) => reply,
                    Err(error) => {
                        log.call(&call, Err(error.to_string()));
                        return Err(HandlerError::retry(error));
                    }
                };
                let reply = Input::Reply {
                    key: call.key,
                    request: call.request.clone(),
                    reply,
                };
                log.call(&call, Ok(&reply));
                queue.push_back(reply);
            }
        }
        let (set, cancel): (Vec<_>, Vec<_>) =
            timers.into_iter().partition(|(_, due)| due.is_some());
        Ok(Stepped {
            state,
            set_timers: set
                .into_iter()
                .filter_map(|(name, due)| due.map(|due| Timer { name, due }))
                .collect(),
            cancel_timers: cancel.into_iter().map(|(name, _)| name).collect(),
        })
    }

    /// Dispatches the commands (compensating as the saga says on refusals), records the
    /// timer changes, and returns the calls to make.
    async fn carry_out(
        &self,
        saga_id: &str,
        state: &S::State,
        trigger: Uuid,
        reaction: Reaction,
        timers: &mut BTreeMap<String, Option<DateTime<Utc>>>,
        log: &mut StepLog,
    ) -> Result<Vec<sagas::ports::PortCall>, HandlerError> {
        let mut pending: VecDeque<(Dispatch, Uuid)> = reaction
            .commands
            .into_iter()
            .map(|d| (d, trigger))
            .collect();
        while let Some((dispatch, trigger)) = pending.pop_front() {
            let command_id = dispatch.command_id(trigger);
            let outcome = self.dispatch(&dispatch, command_id, trigger).await;
            let then = match &outcome {
                Err(CommandError::Domain(error)) => {
                    Some(self.saga.on_failure(state, &dispatch, error, self.now()))
                }
                _ => None,
            };
            log.command(
                &dispatch.step,
                &dispatch.target,
                command_id,
                match (&outcome, &then) {
                    (Ok((version, position, replayed)), _) => {
                        steps::executed(*version, *position, *replayed)
                    }
                    (Err(CommandError::Domain(error)), Some(then)) => {
                        steps::CommandOutcome::Refused {
                            code: steps::domain_code(error),
                            message: error.to_string(),
                            then: match then {
                                OnFailure::Skip => "skip",
                                OnFailure::Compensate(_) => "compensate",
                                OnFailure::Stop => "stop",
                            }
                            .to_string(),
                        }
                    }
                    (Err(error), _) => steps::failed(error),
                },
            );
            match outcome.map(drop) {
                Ok(()) => {}
                Err(CommandError::Domain(error)) => match then.unwrap_or(OnFailure::Stop) {
                    OnFailure::Skip => {
                        tracing::debug!(saga = S::NAME, saga_id, step = %dispatch.step, %error, "refusal skipped");
                    }
                    OnFailure::Compensate(compensation) => {
                        tracing::info!(saga = S::NAME, saga_id, step = %dispatch.step, %error, "compensating");
                        for timer in compensation.timers {
                            timers.insert(timer.name, Some(timer.due));
                        }
                        pending.extend(compensation.commands.into_iter().map(|d| (d, command_id)));
                    }
                    OnFailure::Stop => {
                        return Err(HandlerError::permanent(format!(
                            "saga {}/{saga_id}: step {} refused: {error}",
                            S::NAME,
                            dispatch.step
                        )))
                    }
                },
                Err(error @ CommandError::Decode { .. }) => {
                    return Err(HandlerError::permanent(error));
                }
                Err(error) => return Err(HandlerError::retry(error)),
            }
        }
        for name in reaction.cancel_timers {
            timers.insert(name, None);
        }
        for timer in reaction.timers {
            timers.insert(timer.name, Some(timer.due));
        }
        Ok(reaction.calls)
    }

    /// Runs one command; answers the stream's version, the position and whether the
    /// command id had run before.
    async fn dispatch(
        &self,
        dispatch: &Dispatch,
        command_id: Uuid,
        trigger: Uuid,
    ) -> Result<(i64, i64, bool), CommandError> {
        let ctx = CommandContext::new(self.actor.clone())
            .with_command_id(command_id)
            .caused_by(trigger);
        let c = &self.commands;
        macro_rules! run {
            ($a:ty, $id:expr, $cmd:expr) => {
                c.execute::<$a>(&ctx, $id, $cmd.clone())
                    .await
                    .map(|done| (done.version, done.position, done.replayed))
            };
        }
        match &dispatch.target {
            Target::Order(id, cmd) => run!(Order, id, cmd),
            Target::Payment(id, cmd) => run!(Payment, id, cmd),
            Target::Stock(id, cmd) => run!(Stock, id, cmd),
            Target::Shipment(id, cmd) => run!(Shipment, id, cmd),
            Target::Loyalty(id, cmd) => run!(LoyaltyAccount, id, cmd),
            Target::Promotion(id, cmd) => run!(Promotion, id, cmd),
        }
    }
}
