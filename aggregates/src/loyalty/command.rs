use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::TierThresholds;
use crate::{Currency, CustomerId, LoyaltyAccountId, Money, OrderId, PromotionId};

/// Commands of the loyalty account aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LoyaltyCommand {
    EnrollAccount(EnrollAccount),
    EarnPoints(EarnPoints),
    HoldPoints(HoldPoints),
    CommitHeldPoints(CommitHeldPoints),
    ReturnHeldPoints(ReturnHeldPoints),
    ReversePoints(ReversePoints),
    ExpirePoints(ExpirePoints),
    RecalculateTier(RecalculateTier),
    QualifyReferral(QualifyReferral),
    RewardReferral(RewardReferral),
    AwardCampaignBonus(AwardCampaignBonus),
}

/// Open the account. Spend and earnings are kept in `currency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollAccount {
    pub account_id: LoyaltyAccountId,
    pub customer_id: CustomerId,
    /// The code this customer shares with friends: 4-32 of `A-Z`, `0-9`, `-`.
    pub referral_code: String,
    /// The code of the customer who referred this one, if any.
    pub referred_by: Option<String>,
    pub currency: Currency,
    pub at: DateTime<Utc>,
}

/// Credit points for a paid order; once per order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarnPoints {
    pub order_id: OrderId,
    pub order_amount: Money,
    /// Points per whole currency unit before the tier multiplier (programme terms).
    pub base_rate: u32,
    pub at: DateTime<Utc>,
}

/// Take points at checkout to pay part of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldPoints {
    pub order_id: OrderId,
    pub points: u64,
    pub at: DateTime<Utc>,
}

/// The order was confirmed: the held points are spent for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitHeldPoints {
    pub order_id: OrderId,
    pub at: DateTime<Utc>,
}

/// The order was cancelled before confirmation: the held points go back to their lots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnHeldPoints {
    pub order_id: OrderId,
    pub at: DateTime<Utc>,
}

/// Part or all of an order was refunded: take back the matching share of its points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReversePoints {
    pub order_id: OrderId,
    pub refunded_amount: Money,
    pub at: DateTime<Utc>,
}

/// Expire every lot whose expiry is at or before `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpirePoints {
    pub now: DateTime<Utc>,
}

/// Set the tier from the spend of the 12 months before `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecalculateTier {
    /// `None` uses [`TierThresholds::default`].
    pub thresholds: Option<TierThresholds>,
    pub now: DateTime<Utc>,
}

/// An order of this (referred) customer was completed. The first one qualifies the
/// customer who referred this one for a reward; later ones, and customers nobody
/// referred, change nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualifyReferral {
    pub order_id: OrderId,
    pub at: DateTime<Utc>,
}

/// A customer referred by this account had their first order delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardReferral {
    pub referred_customer: CustomerId,
    /// The referral code the referred customer enrolled with; must be this account's.
    pub referral_code: String,
    pub first_order_id: OrderId,
    pub points: u64,
    pub at: DateTime<Utc>,
}

/// Bonus points of a campaign; once per campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwardCampaignBonus {
    pub campaign_id: PromotionId,
    pub points: u64,
    pub at: DateTime<Utc>,
}
