//! Payment: the money ledger of one payment attempt for one order, kept the way
//! commercetools and Saleor keep it: amounts authorized, captured, refunded and charged
//! back, with the invariants `captured <= authorized` and `refunded <= captured`.
//!
//! Before authorization every payment is scored by [`fraud::assess`], a pure scorer over
//! facts carried in the command. A rejected payment cannot proceed; a payment in the review
//! band waits for a human decision.

mod command;
mod decide;
mod error;
mod event;
pub mod fraud;
mod state;

pub use command::*;
pub use error::PaymentError;
pub use event::*;
pub use fraud::{FiredFraudRule, FraudInputs, FraudOutcome, FraudPolicy, FraudRule};
pub use state::{Ledger, Payment, PaymentStatus};

/// JSON Schemas of every payment event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    PaymentEvent::catalogue(<Payment as cqrs_es::Aggregate>::TYPE)
}

crate::impl_aggregate!(Payment, "payment", exists = |s| s.ledger.is_some());

#[cfg(test)]
mod tests;
