//! The shape every process manager shares and the output of one step.

use aggregates::DomainError;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::dispatch::Dispatch;
use crate::input::{Envelope, Input};
use crate::ports::PortCall;

/// Which saga instance an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The event may open the saga `id` (or continue it when it already exists).
    Start(String),
    /// The event continues saga `id`; without a stored saga it is ignored.
    Continue(String),
    /// Not an event this saga cares about.
    Ignore,
}

/// A durable deadline: when `due` has passed, the runner feeds
/// [`Input::Timer`] with this `name` back into the saga. Setting a timer whose name is
/// already set moves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub name: String,
    pub due: DateTime<Utc>,
}

/// What one step asks the world to do, in order: commands first, then timers, then calls
/// to outside parties (whose replies come back as [`Input::Reply`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reaction {
    pub commands: Vec<Dispatch>,
    pub timers: Vec<Timer>,
    /// Names of timers to drop.
    pub cancel_timers: Vec<String>,
    pub calls: Vec<PortCall>,
}

impl Reaction {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn command(mut self, dispatch: Dispatch) -> Self {
        self.commands.push(dispatch);
        self
    }

    pub fn timer(mut self, name: impl Into<String>, due: DateTime<Utc>) -> Self {
        self.timers.push(Timer {
            name: name.into(),
            due,
        });
        self
    }

    pub fn cancel_timer(mut self, name: impl Into<String>) -> Self {
        self.cancel_timers.push(name.into());
        self
    }

    pub fn call(mut self, call: PortCall) -> Self {
        self.calls.push(call);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
            && self.timers.is_empty()
            && self.cancel_timers.is_empty()
            && self.calls.is_empty()
    }
}

/// What a domain refusal of a dispatched command means to the saga.
#[derive(Debug, Clone, PartialEq)]
pub enum OnFailure {
    /// Expected and harmless (the effect already happened, or no longer applies): go on
    /// with the remaining commands.
    Skip,
    /// The business step failed: issue these compensating commands instead (their ids are
    /// derived like any other), then go on.
    Compensate(Reaction),
    /// Unexpected: stop handling this input; the runner parks it for a person.
    Stop,
}

/// A process manager: pure functions over its own state.
///
/// Contract with the runner:
/// - inputs of one saga instance are handled one at a time, in feed order;
/// - for each input the runner calls `evolve` and then `react` on the evolved state, runs
///   the reaction, and stores the state together with the event's settlement, so an
///   event whose step was stored is never handed to the saga again;
/// - a re-run of a step whose effects were partly applied (crash before the state was
///   stored) yields the same reaction with the same derived command ids and call keys,
///   which the command layer and the providers recognise;
/// - `react` must not depend on anything but its arguments.
pub trait ProcessManager {
    type State: Default + Clone + PartialEq + std::fmt::Debug + Serialize + DeserializeOwned;

    /// Stable name: the saga table's `saga_type` and the consumer name.
    const NAME: &'static str;

    fn route(&self, event: &Envelope) -> Route;

    fn evolve(&self, state: &mut Self::State, input: &Input);

    /// The step for `input`, seeing `state` with `input` already folded in. `now` is the
    /// injectable clock's time, used for command timestamps and deadlines.
    fn react(&self, state: &Self::State, input: &Input, now: DateTime<Utc>) -> Reaction;

    fn on_failure(
        &self,
        state: &Self::State,
        failed: &Dispatch,
        error: &DomainError,
        now: DateTime<Utc>,
    ) -> OnFailure;

    /// The saga has nothing left to do; the runner may stop routing to it.
    fn is_finished(&self, _state: &Self::State) -> bool {
        false
    }
}

/// The id of what step `step` issues in answer to the input identified by `trigger`: a
/// name-based UUID (v5), so the same input and step always name the same command.
pub fn derive_id(trigger: Uuid, step: &str) -> Uuid {
    Uuid::new_v5(&trigger, step.as_bytes())
}

/// An id derived from a business key alone (e.g. the payment of an order), for entities
/// the saga creates and must find again.
pub fn entity_id(scope: &str, key: &str) -> Uuid {
    Uuid::new_v5(&ENTITY_NAMESPACE, format!("{scope}\u{1f}{key}").as_bytes())
}

/// Namespace of [`entity_id`] (a fixed random UUID).
const ENTITY_NAMESPACE: Uuid = Uuid::from_u128(0x6a1e_29c4_5d0b_4f7e_9c3a_82f1_0d44_b6e1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_depend_on_trigger_and_step_only() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(derive_id(a, "reserve:MUG"), derive_id(a, "reserve:MUG"));
        assert_ne!(derive_id(a, "reserve:MUG"), derive_id(a, "reserve:TEE"));
        assert_ne!(derive_id(a, "reserve:MUG"), derive_id(b, "reserve:MUG"));
        assert_eq!(entity_id("payment", "x"), entity_id("payment", "x"));
        assert_ne!(entity_id("payment", "x"), entity_id("shipment", "x"));
    }
}
