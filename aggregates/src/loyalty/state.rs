use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{LotPoints, Tier};
use crate::{Currency, CustomerId, LoyaltyAccountId, Money, OrderId, PromotionId};

/// State of one loyalty account, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoyaltyAccount {
    pub id: Option<LoyaltyAccountId>,
    pub customer_id: Option<CustomerId>,
    pub currency: Option<Currency>,
    pub referral_code: String,
    pub referred_by: Option<String>,
    pub tier: Tier,
    /// Points available: the remaining points of lots not yet expired.
    pub balance: u64,
    /// Every credited lot; the index is the lot number.
    pub lots: Vec<PointsLot>,
    pub orders: BTreeMap<OrderId, EarnedOrder>,
    pub holds: BTreeMap<OrderId, PointsHold>,
    pub campaigns: BTreeSet<PromotionId>,
    pub referrals: BTreeSet<CustomerId>,
    /// The first completed order, once it qualified the referrer for a reward.
    #[serde(default)]
    pub referral_qualified_by: Option<OrderId>,
}

/// Points credited together, expiring together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointsLot {
    pub points: u64,
    pub remaining: u64,
    /// Refunded points that could not be taken back (already spent); repaid first when
    /// held points return to this lot.
    pub debt: u64,
    pub expires_at: DateTime<Utc>,
    pub expired: bool,
}

/// An order that earned points, with its refunds so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarnedOrder {
    pub amount: Money,
    pub points: u64,
    pub lot: Option<u32>,
    pub earned_at: DateTime<Utc>,
    pub refunded: Money,
    /// Points due back for all refunds so far (reversed plus uncollectable).
    pub points_due: u64,
}

/// Points taken at checkout for one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointsHold {
    pub points: u64,
    pub taken: Vec<LotPoints>,
    pub status: HoldStatus,
}

/// Where a hold is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldStatus {
    Held,
    Committed,
    Returned,
}

impl LoyaltyAccount {
    pub fn is_enrolled(&self) -> bool {
        self.id.is_some()
    }
}
