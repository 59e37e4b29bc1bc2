//! Product: the catalogue entry for one SKU, with a price per currency.

mod command;
mod decide;
mod error;
mod event;
mod state;

pub use command::*;
pub use error::ProductError;
pub use event::*;
pub use state::Product;

/// JSON Schemas of every product event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    ProductEvent::catalogue(<Product as cqrs_es::Aggregate>::TYPE)
}

crate::impl_aggregate!(Product, "product", exists = |s| s.exists());

#[cfg(test)]
mod tests;
