//! Shipment: one parcel of some lines of one order, from warehouse to doorstep.
//!
//! A strict state machine: created → picked → packed → labelled → dispatched → (in transit /
//! out for delivery)* → delivered. A failed delivery may be re-attempted (a new tracking
//! update puts the parcel back on the road) or end with the parcel returned to the sender.
//! Carrier tracking webhooks are at-least-once, so tracking updates are idempotent by
//! `(status, time)`.

mod command;
mod decide;
mod error;
mod event;
mod state;

pub use command::*;
pub use error::ShipmentError;
pub use event::*;
pub use state::{Shipment, ShipmentStatus};

/// JSON Schemas of every shipment event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    ShipmentEvent::catalogue(<Shipment as cqrs_es::Aggregate>::TYPE)
}

crate::impl_aggregate!(Shipment, "shipment", exists = |s| s.id.is_some());

#[cfg(test)]
mod tests;
