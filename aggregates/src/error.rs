//! Every aggregate's refusal in one type, for callers that run commands of any aggregate
//! (the command layer, the HTTP API's problem table).

use crate::cart::CartError;
use crate::loyalty::LoyaltyError;
use crate::order::OrderError;
use crate::payment::PaymentError;
use crate::product::ProductError;
use crate::promotion::PromotionError;
use crate::shipment::ShipmentError;
use crate::stock::StockError;

/// A domain rule refused a command; nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Cart(#[from] CartError),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error(transparent)]
    Payment(#[from] PaymentError),
    #[error(transparent)]
    Product(#[from] ProductError),
    #[error(transparent)]
    Promotion(#[from] PromotionError),
    #[error(transparent)]
    Shipment(#[from] ShipmentError),
    #[error(transparent)]
    Stock(#[from] StockError),
    #[error(transparent)]
    Loyalty(#[from] LoyaltyError),
}
