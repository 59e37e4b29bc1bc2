use crate::{Currency, Money};

/// Why a product command was refused. One variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error("the product already exists")]
    AlreadyExists,
    #[error("the product does not exist")]
    NotFound,
    #[error("the product is discontinued")]
    Discontinued,
    #[error("price must be greater than zero, got {0}")]
    NonPositivePrice(Money),
    #[error("price for {key} is given in {actual}")]
    PriceCurrencyMismatch { key: Currency, actual: Currency },
    #[error("a product needs at least one price")]
    NoPrice,
    #[error("the product name must not be empty")]
    EmptyName,
}
