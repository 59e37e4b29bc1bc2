//! Stock: the on-hand and reserved quantities of one SKU across warehouses.
//!
//! One aggregate per SKU. Stock is received into a warehouse, adjusted with a reason
//! code, and reserved per order (the reservation id is the order id). A reservation is
//! allocated across warehouses, then committed at shipment, released, or expired.
//!
//! Allocation strategy (documented contract, see [`ReserveStock`]): warehouses are
//! visited in the preference order given in the command (unknown ids skipped, duplicates
//! ignored), followed by every other warehouse in warehouse-id order. The first warehouse
//! that can fill the whole line alone takes it; otherwise the line is split greedily in
//! that order. If all warehouses together are short and the SKU allows backorders, the
//! shortfall is recorded as backordered on the reservation (within the SKU's backorder
//! limit); otherwise the reservation is refused with [`StockError::InsufficientStock`].
//!
//! Backordered quantities are owed at SKU level, not in a warehouse, so every warehouse
//! always keeps `reserved <= on_hand`; the SKU-level `available` (free stock minus
//! backordered) may go down to `-backorder_limit`. Stock that becomes free later (a
//! receipt, a positive adjustment, a release or an expiry) is first given to backordered
//! reservations, oldest first ([`StockBackorderFilled`]).
//!
//! Low-stock alert: when SKU-level `available` drops to or below the threshold,
//! [`LowStockThresholdCrossed`] is recorded once. It is re-armed only when `available`
//! is back above the threshold (a receipt, a found adjustment, or reservations released
//! or expired), so a stream of small sales does not repeat the alert.
//!
//! Idempotency: a second reservation for the same order id and a release of an unknown
//! or settled reservation record nothing; committing or expiring one that is not active
//! is refused, so a late expiry after shipment is visible to the caller.
//!
//! Every event carries the resulting [`StockLevels`] so read models never recompute.

mod command;
mod decide;
mod error;
mod event;
mod state;

pub use command::*;
pub use error::StockError;
pub use event::*;
pub use state::{Reservation, ReservationStatus, Stock};

/// JSON Schemas of every stock event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    StockEvent::catalogue(<Stock as cqrs_es::Aggregate>::TYPE)
}

crate::impl_aggregate!(Stock, "stock", exists = |s| s.exists());

#[cfg(test)]
mod tests;
