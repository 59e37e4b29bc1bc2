//! Process managers: the long-running flows that turn one aggregate's events into other
//! aggregates' commands (see docs/sagas.md).
//!
//! A saga here is four pure functions over its own state, in the shape of Commanded's
//! process managers: [`ProcessManager::route`] says which saga instance an event belongs
//! to, [`ProcessManager::evolve`] folds an input into the state,
//! [`ProcessManager::react`] answers with commands, calls to outside parties and timers,
//! and [`ProcessManager::on_failure`] decides what a refused command means. Nothing in
//! this crate performs IO: the runner in `infra::saga` loads and stores state, dispatches
//! commands through the command layer, calls the [`ports`] and fires timers.
//!
//! Every command a step issues carries an id derived from the input that triggered it
//! ([`derive_id`]), so a re-run after a crash or a redelivered event issues the very same
//! commands, which the command layer recognises and does not apply twice.

pub mod checkout;
pub mod dispatch;
pub mod input;
pub mod ports;
pub mod saga;

pub use dispatch::{Dispatch, Target};
pub use input::{DomainEvent, Envelope, Input, TimerFired};
pub use saga::{derive_id, OnFailure, ProcessManager, Reaction, Route, Timer};
