use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Currency, CustomerId, EventExample, LoyaltyAccountId, Money, OrderId, PromotionId};

crate::domain_events! {
    /// Events of the loyalty account aggregate.
    pub enum LoyaltyEvent {
        LoyaltyAccountEnrolled(LoyaltyAccountEnrolled),
        LoyaltyPointsEarned(LoyaltyPointsEarned),
        LoyaltyPointsHeld(LoyaltyPointsHeld),
        LoyaltyHeldPointsRedeemed(LoyaltyHeldPointsRedeemed),
        LoyaltyHeldPointsReturned(LoyaltyHeldPointsReturned),
        LoyaltyPointsReversed(LoyaltyPointsReversed),
        LoyaltyPointsExpired(LoyaltyPointsExpired),
        LoyaltyTierChanged(LoyaltyTierChanged),
        LoyaltyReferralQualified(LoyaltyReferralQualified),
        LoyaltyReferralRewarded(LoyaltyReferralRewarded),
        LoyaltyCampaignBonusAwarded(LoyaltyCampaignBonusAwarded),
    }
}

/// Loyalty tier; earning is multiplied by [`Tier::multiplier_percent`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[default]
    Bronze,
    Silver,
    Gold,
    Platinum,
}

impl Tier {
    /// The earning multiplier in percent: 100, 125, 150, 200.
    pub const fn multiplier_percent(self) -> u32 {
        match self {
            Tier::Bronze => 100,
            Tier::Silver => 125,
            Tier::Gold => 150,
            Tier::Platinum => 200,
        }
    }
}

/// Rolling 12-month spend, in minor units of the account currency, from which a tier
/// starts (bronze starts at 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TierThresholds {
    pub silver: i64,
    pub gold: i64,
    pub platinum: i64,
}

impl Default for TierThresholds {
    /// 500.00, 1 500.00 and 5 000.00 in the account currency.
    fn default() -> Self {
        Self {
            silver: 50_000,
            gold: 150_000,
            platinum: 500_000,
        }
    }
}

impl TierThresholds {
    /// The tier a rolling spend of `spend_minor` earns.
    pub fn tier_for(&self, spend_minor: i64) -> Tier {
        if spend_minor >= self.platinum {
            Tier::Platinum
        } else if spend_minor >= self.gold {
            Tier::Gold
        } else if spend_minor >= self.silver {
            Tier::Silver
        } else {
            Tier::Bronze
        }
    }
}

/// Points of one lot taken (held, expired) by an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LotPoints {
    /// Lot number: lots are numbered 0, 1, 2… in the order they were credited.
    pub lot: u32,
    pub points: u64,
}

/// What became of one lot's share of a returned hold: `restored` went back into the lot,
/// `clawed_back` paid the lot's uncollectable refund debt, `forfeited` belonged to a lot
/// that has expired meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LotReturn {
    pub lot: u32,
    pub restored: u64,
    pub clawed_back: u64,
    pub forfeited: u64,
}

/// A customer joined the programme, at bronze.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyAccountEnrolled {
    pub account_id: LoyaltyAccountId,
    pub customer_id: CustomerId,
    pub referral_code: String,
    pub referred_by: Option<String>,
    pub currency: Currency,
    pub tier: Tier,
    pub at: DateTime<Utc>,
}

/// Points were credited for an order, as a new lot (none when the order earned 0 points).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyPointsEarned {
    pub order_id: OrderId,
    pub order_amount: Money,
    pub base_rate: u32,
    /// `floor(amount_minor × base_rate / 100)`.
    pub base_points: u64,
    pub tier: Tier,
    pub multiplier_percent: u32,
    /// `floor(base_points × multiplier_percent / 100)`.
    pub points: u64,
    pub lot: Option<u32>,
    pub expires_at: DateTime<Utc>,
    pub balance: u64,
    pub at: DateTime<Utc>,
}

/// Points were taken from lots (soonest-expiring first) to pay part of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyPointsHeld {
    pub order_id: OrderId,
    pub points: u64,
    pub taken: Vec<LotPoints>,
    pub balance: u64,
    pub at: DateTime<Utc>,
}

/// The order was confirmed: the held points are spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyHeldPointsRedeemed {
    pub order_id: OrderId,
    pub points: u64,
    pub balance: u64,
    pub at: DateTime<Utc>,
}

/// The order was cancelled: the held points went back to their lots, less debts and
/// expired lots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyHeldPointsReturned {
    pub order_id: OrderId,
    pub points: u64,
    pub lots: Vec<LotReturn>,
    pub restored: u64,
    pub clawed_back: u64,
    pub forfeited: u64,
    pub balance: u64,
    pub at: DateTime<Utc>,
}

/// A refund took back its share of an order's points. `points_due` is what the refund
/// should take; `points_reversed` what the order's lot still had; `uncollectable` the
/// rest (already spent or expired), kept as a debt of the lot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyPointsReversed {
    pub order_id: OrderId,
    pub order_amount: Money,
    pub refunded_amount: Money,
    /// All refunds of the order so far, this one included.
    pub refunded_total: Money,
    pub points_due: u64,
    pub points_reversed: u64,
    pub uncollectable: u64,
    pub lot: Option<u32>,
    pub balance: u64,
    pub at: DateTime<Utc>,
}

/// Lots reached their expiry; their remaining points are gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyPointsExpired {
    pub lots: Vec<LotPoints>,
    pub points: u64,
    pub balance: u64,
    pub now: DateTime<Utc>,
}

/// The tier changed after a recalculation of the rolling 12-month spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyTierChanged {
    pub from: Tier,
    pub to: Tier,
    pub rolling_spend: Money,
    pub thresholds: TierThresholds,
    pub at: DateTime<Utc>,
}

/// A customer this account referred had their first order delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyReferralRewarded {
    pub referred_customer: CustomerId,
    pub first_order_id: OrderId,
    pub points: u64,
    pub lot: u32,
    pub expires_at: DateTime<Utc>,
    pub balance: u64,
    pub at: DateTime<Utc>,
}

/// A referred customer completed their first order: the account whose referral code is
/// `referred_by` is due its reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyReferralQualified {
    pub customer_id: CustomerId,
    pub referred_by: String,
    pub first_order_id: OrderId,
    pub at: DateTime<Utc>,
}

/// Bonus points of a campaign were credited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyCampaignBonusAwarded {
    pub campaign_id: PromotionId,
    pub points: u64,
    pub lot: u32,
    pub expires_at: DateTime<Utc>,
    pub balance: u64,
    pub at: DateTime<Utc>,
}

pub(crate) fn example_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 9, 30, 0).unwrap()
}

fn a_year_later() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 11, 1, 9, 30, 0).unwrap()
}

fn example_order() -> OrderId {
    OrderId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0101,
    ))
}

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

impl EventExample for LoyaltyAccountEnrolled {
    fn example() -> Self {
        Self {
            account_id: LoyaltyAccountId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0000_0301,
            )),
            customer_id: CustomerId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0000_0201,
            )),
            referral_code: "ANNA-7K2Q".into(),
            referred_by: Some("BEN-X4P9".into()),
            currency: Currency::EUR,
            tier: Tier::Bronze,
            at: example_time(),
        }
    }
}

impl EventExample for LoyaltyPointsEarned {
    fn example() -> Self {
        Self {
            order_id: example_order(),
            order_amount: eur(12_999),
            base_rate: 1,
            base_points: 129,
            tier: Tier::Silver,
            multiplier_percent: 125,
            points: 161,
            lot: Some(0),
            expires_at: a_year_later(),
            balance: 161,
            at: example_time(),
        }
    }
}

impl EventExample for LoyaltyPointsHeld {
    fn example() -> Self {
        Self {
            order_id: example_order(),
            points: 150,
            taken: vec![LotPoints {
                lot: 0,
                points: 150,
            }],
            balance: 11,
            at: example_time(),
        }
    }
}

impl EventExample for LoyaltyHeldPointsRedeemed {
    fn example() -> Self {
        Self {
            order_id: example_order(),
            points: 150,
            balance: 11,
            at: example_time(),
        }
    }
}

impl EventExample for LoyaltyHeldPointsReturned {
    fn example() -> Self {
        Self {
            order_id: example_order(),
            points: 150,
            lots: vec![LotReturn {
                lot: 0,
                restored: 150,
                clawed_back: 0,
                forfeited: 0,
            }],
            restored: 150,
            clawed_back: 0,
            forfeited: 0,
            balance: 161,
            at: example_time(),
        }
    }
}

impl EventExample for LoyaltyPointsReversed {
    fn example() -> Self {
        Self {
            order_id: example_order(),
            order_amount: eur(12_999),
            refunded_amount: eur(6_500),
            refunded_total: eur(6_500),
            points_due: 81,
            points_reversed: 11,
            uncollectable: 70,
            lot: Some(0),
            balance: 0,
            at: example_time(),
        }
    }
}

impl EventExample for LoyaltyPointsExpired {
    fn example() -> Self {
        Self {
            lots: vec![LotPoints { lot: 0, points: 11 }],
            points: 11,
            balance: 0,
            now: a_year_later(),
        }
    }
}

impl EventExample for LoyaltyTierChanged {
    fn example() -> Self {
        Self {
            from: Tier::Bronze,
            to: Tier::Silver,
            rolling_spend: eur(61_250),
            thresholds: TierThresholds::default(),
            at: example_time(),
        }
    }
}

impl EventExample for LoyaltyReferralQualified {
    fn example() -> Self {
        Self {
            customer_id: CustomerId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0000_0202,
            )),
            referred_by: "01920000000070008000000000000201".into(),
            first_order_id: OrderId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0000_0102,
            )),
            at: example_time(),
        }
    }
}

impl EventExample for LoyaltyReferralRewarded {
    fn example() -> Self {
        Self {
            referred_customer: CustomerId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0000_0202,
            )),
            first_order_id: OrderId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0000_0102,
            )),
            points: 500,
            lot: 1,
            expires_at: a_year_later(),
            balance: 661,
            at: example_time(),
        }
    }
}

impl EventExample for LoyaltyCampaignBonusAwarded {
    fn example() -> Self {
        Self {
            campaign_id: PromotionId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0000_0401,
            )),
            points: 250,
            lot: 2,
            expires_at: a_year_later(),
            balance: 911,
            at: example_time(),
        }
    }
}
