use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DiscountKind, PromotionCode, PromotionTarget, PromotionTerms};
use crate::{Currency, CustomerId, EventExample, Money, OrderId, PromotionId};

crate::domain_events! {
    /// Events of the promotion aggregate.
    pub enum PromotionEvent {
        PromotionCreated(PromotionCreated),
        PromotionRedemptionReserved(PromotionRedemptionReserved),
        PromotionRedemptionReleased(PromotionRedemptionReleased),
        PromotionDeactivated(PromotionDeactivated),
    }
}

/// A promotion was created with validated terms (code normalised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionCreated {
    pub terms: PromotionTerms,
    pub at: DateTime<Utc>,
}

/// One use of the promotion was counted for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionRedemptionReserved {
    pub promotion_id: PromotionId,
    pub code: PromotionCode,
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    /// Uses held by all orders after this reservation.
    pub uses: u32,
    /// Uses held by this customer after this reservation.
    pub customer_uses: u32,
    pub at: DateTime<Utc>,
}

/// The use an order held was given back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionRedemptionReleased {
    pub promotion_id: PromotionId,
    pub code: PromotionCode,
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    /// Uses held by all orders after this release.
    pub uses: u32,
    /// Uses held by this customer after this release.
    pub customer_uses: u32,
    pub at: DateTime<Utc>,
}

/// The promotion can no longer be redeemed; existing redemptions stay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionDeactivated {
    pub promotion_id: PromotionId,
    pub code: PromotionCode,
    /// Uses held when it was deactivated.
    pub uses: u32,
    pub at: DateTime<Utc>,
}

pub(crate) fn example_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap()
}

pub(crate) fn example_promotion_id() -> PromotionId {
    PromotionId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0501,
    ))
}

fn example_code() -> PromotionCode {
    PromotionCode::parse("WINTER15").unwrap()
}

fn example_order() -> OrderId {
    OrderId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0301,
    ))
}

fn example_customer() -> CustomerId {
    CustomerId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0101,
    ))
}

/// Terms used in examples and tests: 15% off apparel from 50 EUR, 1000 uses, one per
/// customer, not stackable, valid through the 2026 winter season.
pub fn example_terms() -> PromotionTerms {
    PromotionTerms {
        promotion_id: example_promotion_id(),
        code: example_code(),
        kind: DiscountKind::Percentage { basis_points: 1500 },
        minimum_subtotal: Some(Money::new(5000, Currency::EUR)),
        starts_at: Utc.with_ymd_and_hms(2026, 11, 15, 0, 0, 0).unwrap(),
        ends_at: Some(Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap()),
        usage_limit: Some(1000),
        per_customer_limit: Some(1),
        stackable: false,
        target: PromotionTarget {
            skus: BTreeSet::new(),
            categories: BTreeSet::from(["apparel".to_string()]),
        },
    }
}

impl EventExample for PromotionCreated {
    fn example() -> Self {
        Self {
            terms: example_terms(),
            at: Utc.with_ymd_and_hms(2026, 11, 10, 12, 0, 0).unwrap(),
        }
    }
}

impl EventExample for PromotionRedemptionReserved {
    fn example() -> Self {
        Self {
            promotion_id: example_promotion_id(),
            code: example_code(),
            order_id: example_order(),
            customer_id: example_customer(),
            uses: 1,
            customer_uses: 1,
            at: example_time(),
        }
    }
}

impl EventExample for PromotionRedemptionReleased {
    fn example() -> Self {
        Self {
            promotion_id: example_promotion_id(),
            code: example_code(),
            order_id: example_order(),
            customer_id: example_customer(),
            uses: 0,
            customer_uses: 0,
            at: example_time(),
        }
    }
}

impl EventExample for PromotionDeactivated {
    fn example() -> Self {
        Self {
            promotion_id: example_promotion_id(),
            code: example_code(),
            uses: 1,
            at: example_time(),
        }
    }
}
