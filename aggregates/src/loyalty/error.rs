use crate::{Currency, Money, OrderId};

/// Why a loyalty command was refused. One variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoyaltyError {
    #[error("the account is already enrolled")]
    AlreadyEnrolled,
    #[error("the account is not enrolled")]
    NotEnrolled,
    #[error("`{0}` is not a referral code: 4-32 characters of A-Z, 0-9 or '-'")]
    InvalidReferralCode(String),
    #[error("a customer cannot be referred by their own code")]
    ReferredBySelf,
    #[error("referral code `{0}` is not this account's")]
    ReferralCodeNotOurs(String),
    #[error("a customer cannot be rewarded for referring themselves")]
    SelfReferral,
    #[error("the account keeps {account}, not {got}")]
    CurrencyMismatch { account: Currency, got: Currency },
    #[error("the amount must be greater than zero, got {0}")]
    NonPositiveAmount(Money),
    #[error("points out of range")]
    PointsOverflow,
    #[error("the number of points must be greater than zero")]
    ZeroPoints,
    #[error("{requested} points requested, {available} available")]
    InsufficientPoints { requested: u64, available: u64 },
    #[error("points are already held for order {0}")]
    HoldAlreadyExists(OrderId),
    #[error("no points are held for order {0}")]
    HoldNotFound(OrderId),
    #[error("the points held for order {0} were returned")]
    HoldAlreadyReturned(OrderId),
    #[error("the points held for order {0} were already spent")]
    HoldAlreadyCommitted(OrderId),
    #[error("order {0} earned no points on this account")]
    OrderNotEarned(OrderId),
    #[error("refunds of order {order_id} would reach {would_be}, more than its {order_amount}")]
    RefundExceedsOrder {
        order_id: OrderId,
        order_amount: Money,
        would_be: Money,
    },
    #[error("tier thresholds must rise: 0 < silver {silver} < gold {gold} < platinum {platinum}")]
    InvalidTierThresholds {
        silver: i64,
        gold: i64,
        platinum: i64,
    },
}
