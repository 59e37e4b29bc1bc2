use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DiscountKind, PromotionTarget};
use crate::{CustomerId, Money, OrderId, PromotionId};

/// Commands of the promotion aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PromotionCommand {
    CreatePromotion(CreatePromotion),
    ReserveRedemption(ReserveRedemption),
    ReleaseRedemption(ReleaseRedemption),
    DeactivatePromotion { at: DateTime<Utc> },
}

/// Creates a promotion. `code` is normalised (trimmed, upper-cased) before validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatePromotion {
    pub promotion_id: PromotionId,
    pub code: String,
    pub kind: DiscountKind,
    pub minimum_subtotal: Option<Money>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub usage_limit: Option<u32>,
    pub per_customer_limit: Option<u32>,
    pub stackable: bool,
    pub target: PromotionTarget,
    pub at: DateTime<Utc>,
}

/// Counts one use of the promotion for an order (sent when the order is placed).
/// Sending it again for the same order changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReserveRedemption {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub at: DateTime<Utc>,
}

/// Gives back the use an order reserved (order cancelled or failed). Releasing an order
/// that holds no reservation changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRedemption {
    pub order_id: OrderId,
    pub at: DateTime<Utc>,
}
