use chrono::{DateTime, Utc};

use crate::{Currency, CustomerId, Money};

/// Why a promotion command was refused. One variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromotionError {
    #[error("the promotion already exists")]
    AlreadyExists,
    #[error("the promotion does not exist")]
    NotFound,
    #[error("the promotion is deactivated")]
    Deactivated,
    #[error("`{0}` is not a valid coupon code (1-32 characters of A-Z, 0-9, '-', '_')")]
    InvalidCode(String),
    #[error("a percentage must be 1..=10000 basis points, got {0}")]
    InvalidPercentage(u32),
    #[error("amounts must be greater than zero, got {0}")]
    NonPositiveAmount(Money),
    #[error("all amounts of a promotion share one currency: {expected} and {found} given")]
    MixedCurrencies { expected: Currency, found: Currency },
    #[error("buy {buy} get {get}: both must be at least 1")]
    InvalidBuyXGetY { buy: u32, get: u32 },
    #[error("a tiered promotion needs at least one tier")]
    NoTiers,
    #[error("two tiers share the threshold {0}")]
    DuplicateTierThreshold(Money),
    #[error("the promotion must end after it starts")]
    EmptyValidityWindow,
    #[error("a usage limit, when given, must be at least 1")]
    ZeroUsageLimit,
    #[error("a targeted category must not be empty")]
    EmptyTargetCategory,
    #[error("the promotion starts at {starts_at}")]
    NotYetActive { starts_at: DateTime<Utc> },
    #[error("the promotion ended at {ended_at}")]
    Expired { ended_at: DateTime<Utc> },
    #[error("the promotion has been used {limit} times, its limit")]
    UsageLimitReached { limit: u32 },
    #[error("the customer has used the promotion {limit} times, the per-customer limit")]
    CustomerLimitReached { limit: u32 },
    #[error("the order already holds a redemption for customer {0}")]
    OrderReservedForAnotherCustomer(CustomerId),
}
