use chrono::{DateTime, Utc};

use crate::promotion::{DiscountError, PromotionCode};
use crate::{Currency, Money, MoneyError, OrderId, Sku};

/// Why a cart command was refused. One variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("the cart is already open")]
    AlreadyOpened,
    #[error("the cart has not been opened")]
    NotOpened,
    #[error("the cart was checked out into order {0}")]
    AlreadyCheckedOut(OrderId),
    #[error("the cart was abandoned")]
    AlreadyAbandoned,
    #[error("the cart is in {expected}, got an amount in {found}")]
    CurrencyMismatch { expected: Currency, found: Currency },
    #[error("amount out of range")]
    AmountOutOfRange,
    #[error("a unit price must be greater than zero, got {0}")]
    NonPositiveUnitPrice(Money),
    #[error("a line quantity must be 1..={max}, got {quantity}")]
    InvalidQuantity { quantity: u32, max: u32 },
    #[error("a cart holds at most {max} lines")]
    TooManyLines { max: usize },
    #[error("{0} is not in the cart")]
    ItemNotInCart(Sku),
    #[error("coupon {0} is already applied")]
    CouponAlreadyApplied(PromotionCode),
    #[error("coupon {0} cannot be combined with the other coupons")]
    CouponNotStackable(PromotionCode),
    #[error("a cart holds at most {max} coupons")]
    TooManyCoupons { max: usize },
    #[error("coupon {0} is not applied to the cart")]
    CouponNotInCart(PromotionCode),
    #[error("coupon {code} does not apply: {reason}")]
    CouponNotApplicable {
        code: PromotionCode,
        reason: DiscountError,
    },
    #[error("a shipping method needs a code")]
    EmptyShippingMethodCode,
    #[error("a shipping price cannot be negative, got {0}")]
    NegativeShippingPrice(Money),
    #[error("{points} points worth {value}: points and value must both be zero or both positive")]
    InvalidLoyaltyRedemption { points: u64, value: Money },
    #[error("points worth {value} exceed the amount due {due}")]
    LoyaltyValueExceedsAmountDue { value: Money, due: Money },
    #[error("the cart is empty")]
    EmptyCart,
    #[error("no shipping address is set")]
    MissingShippingAddress,
    #[error("no shipping method is set")]
    MissingShippingMethod,
    #[error("{due} is due: a payment method token is required")]
    PaymentMethodRequired { due: Money },
    #[error("no tax rate for {tax_region} or its country")]
    MissingTaxRate { tax_region: String },
    #[error("the idle threshold {0:?} is out of range")]
    IdleThresholdOutOfRange(std::time::Duration),
    #[error("the cart was active at {last_activity_at}, idle only from {idle_from}")]
    StillActive {
        last_activity_at: DateTime<Utc>,
        idle_from: DateTime<Utc>,
    },
}

impl From<MoneyError> for CartError {
    fn from(e: MoneyError) -> Self {
        match e {
            MoneyError::CurrencyMismatch { left, right } => CartError::CurrencyMismatch {
                expected: left,
                found: right,
            },
            MoneyError::Overflow | MoneyError::InvalidCurrency(_) => CartError::AmountOutOfRange,
        }
    }
}
