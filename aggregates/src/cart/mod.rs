//! Cart: a customer's basket in one currency, with coupons, destination, shipping
//! method and loyalty points, until it is checked out into an order or abandoned.
//!
//! Prices, coupon terms, shipping prices, point values and tax rates are looked up by the
//! caller and arrive in the commands. All figures are computed by [`CartTotals::compute`],
//! both for [`Cart::live_totals`] and for the frozen totals of [`CartCheckedOut`].

mod command;
mod decide;
mod error;
mod event;
mod state;
mod totals;

pub use command::*;
pub use error::CartError;
pub use event::*;
pub use state::*;
pub use totals::*;

/// JSON Schemas of every cart event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    CartEvent::catalogue(<Cart as cqrs_es::Aggregate>::TYPE)
}

crate::impl_aggregate!(
    Cart,
    "cart",
    exists = |s| s.exists(),
    owner = |s| s.customer_id
);

#[cfg(test)]
mod tests;
