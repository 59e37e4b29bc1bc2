//! Order: what the customer bought, at which price, and what happened to it since —
//! confirmation, edits before fulfilment, partial and split shipments, deliveries, returns,
//! exchanges, payments received and refunds.
//!
//! Totals are computed in exactly one place, [`pricing::totals`], both at placement and
//! after every edit; the events carry the resulting figures.
//!
//! Refunds are bounded by the money actually **paid** (the sum of payment captures reported
//! to the order with `RecordPaymentCaptured`), not by the grand total: money never received
//! cannot be refunded, and before capture the payment is voided, not refunded.

mod command;
mod decide;
mod error;
mod event;
pub mod pricing;
mod state;

pub use command::*;
pub use error::OrderError;
pub use event::*;
pub use state::{LineState, Order, OrderDetails, OrderStatus, ReturnRecord, ReturnStatus};

/// Days after delivery during which a return may be requested, unless the command says
/// otherwise.
pub const DEFAULT_RETURN_WINDOW_DAYS: u32 = 30;

/// JSON Schemas of every order event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    OrderEvent::catalogue(<Order as cqrs_es::Aggregate>::TYPE)
}

crate::impl_aggregate!(
    Order,
    "order",
    exists = |s| s.details.is_some(),
    owner = |s| s.details.as_ref().map(|d| d.customer_id)
);

#[cfg(test)]
mod tests;
