//! Promotion: a coupon or campaign with its discount terms, validity window and usage
//! limits. Orders reserve a redemption when placed and release it when cancelled; the
//! discount rules themselves live in [`PromotionTerms::discount`], which carts and
//! pricing share.

mod code;
mod command;
mod decide;
mod error;
mod event;
mod state;
mod terms;

pub use code::{InvalidPromotionCode, PromotionCode};
pub use command::*;
pub use error::PromotionError;
pub use event::*;
pub use state::Promotion;
pub use terms::*;

/// JSON Schemas of every promotion event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    PromotionEvent::catalogue(<Promotion as cqrs_es::Aggregate>::TYPE)
}

crate::impl_aggregate!(Promotion, "promotion", exists = |s| s.exists());

#[cfg(test)]
mod tests;
