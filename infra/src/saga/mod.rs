//! The saga runner: process managers from the `sagas` crate over the consumer runtime,
//! with durable state and timers in the store's database (see docs/sagas.md).
//!
//! - [`SagaHandler`] is a [`Handler`](crate::consumer::Handler): for every event a saga
//!   routes, it loads the saga's state, runs the step ([`SagaRunner::step`]: commands
//!   through the command layer with ids derived from the event, calls to the payment
//!   provider and carrier with derived idempotency keys, replies folded in), then stores
//!   the state, the last event handled and the timers in the runtime's settle
//!   transaction. A stored step's event is settled with it and never handled again; a
//!   crash anywhere before that commit redelivers the event to the old state, and the
//!   step issues the same ids, so nothing happens twice. An event the saga caused that
//!   arrives before the saga's first step is stored (another worker) is retried.
//! - [`SagaRunner::fire_due`] / [`SagaRunner::run_timers`] fire durable timers when the
//!   injectable clock passes their due time: claimed with `FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL (any number of workers), by the one writer on SQLite.
//! - Saves are optimistic on the saga row's version, so an event and a timer of one
//!   saga handled at once by two workers cannot overwrite each other: the loser retries
//!   from the new state.

pub mod admin;
mod deliver;
mod handler;
mod runner;
pub mod status;
pub mod steps;
pub mod store;
mod timer;

pub use deliver::Delivered;
pub use handler::SagaHandler;
pub use runner::{SagaRunner, Stepped};
pub use store::SagaRow;

use crate::store::StoreError;

/// Why the timer worker could not fire a timer.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("saga state does not decode: {0}")]
    State(#[from] serde_json::Error),
    #[error("{0}")]
    Step(String),
}
