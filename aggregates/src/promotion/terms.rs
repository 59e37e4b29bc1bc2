//! The discount rules of a promotion, shared by the cart and any pricing code.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::PromotionCode;
use crate::{Currency, Money, MoneyError, PromotionId, Quantity, Sku};

/// What a promotion gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DiscountKind {
    /// A share of the targeted items' subtotal, in basis points (1..=10 000).
    Percentage { basis_points: u32 },
    /// A fixed amount off the targeted items, never more than their subtotal.
    FixedAmount { amount: Money },
    /// The whole shipping price.
    FreeShipping,
    /// For every `buy + get` targeted units in the cart, `get` units are free; the free
    /// units are always the cheapest targeted units of the whole cart.
    BuyXGetY { buy: u32, get: u32 },
    /// The reward of the highest tier whose threshold the targeted subtotal reaches.
    Tiered { tiers: Vec<DiscountTier> },
}

/// One step of a tiered promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiscountTier {
    /// Targeted subtotal from which this tier applies (inclusive).
    pub threshold: Money,
    pub reward: TierReward,
}

/// The reward of one tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TierReward {
    Percentage { basis_points: u32 },
    FixedAmount { amount: Money },
}

/// Which cart lines a promotion applies to. Both sets empty means the whole cart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionTarget {
    pub skus: BTreeSet<Sku>,
    /// Category paths such as `apparel` or `apparel/t-shirts`; a category also targets
    /// its sub-categories (`apparel` targets `apparel/t-shirts`).
    pub categories: BTreeSet<String>,
}

impl PromotionTarget {
    pub fn is_whole_cart(&self) -> bool {
        self.skus.is_empty() && self.categories.is_empty()
    }

    pub fn matches(&self, sku: &Sku, category: &str) -> bool {
        self.is_whole_cart()
            || self.skus.contains(sku)
            || self.categories.iter().any(|c| {
                category == c
                    || (category.starts_with(c.as_str())
                        && category.as_bytes().get(c.len()) == Some(&b'/'))
            })
    }
}

/// The full terms of a promotion as created; a cart keeps a copy of the terms of every
/// coupon applied to it, so its totals never depend on a later lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionTerms {
    pub promotion_id: PromotionId,
    pub code: PromotionCode,
    pub kind: DiscountKind,
    /// The cart subtotal (all lines, before discounts) needed for the promotion to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_subtotal: Option<Money>,
    /// First instant at which the promotion applies (inclusive).
    pub starts_at: DateTime<Utc>,
    /// First instant at which it no longer applies (exclusive); `None` means open-ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// How many orders may redeem it in total; `None` means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_limit: Option<u32>,
    /// How many orders one customer may redeem it for; `None` means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_customer_limit: Option<u32>,
    /// Whether it may be combined with other coupons in one cart.
    pub stackable: bool,
    pub target: PromotionTarget,
}

/// One priced line as the discount rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscountLine {
    pub sku: Sku,
    pub category: String,
    pub unit_price: Money,
    pub quantity: Quantity,
}

/// What one promotion takes off: from the items and from shipping. Both are
/// non-negative, the item part never exceeds the targeted items' subtotal and the
/// shipping part never exceeds the shipping price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Discount {
    pub items: Money,
    pub shipping: Money,
}

/// Why a promotion gives nothing to a given cart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscountError {
    #[error("the promotion starts at {starts_at}")]
    NotYetActive { starts_at: DateTime<Utc> },
    #[error("the promotion ended at {ended_at}")]
    Expired { ended_at: DateTime<Utc> },
    #[error("the subtotal {subtotal} is below the minimum {minimum}")]
    BelowMinimumSubtotal { minimum: Money, subtotal: Money },
    #[error("no item in the cart is targeted by the promotion")]
    NoEligibleItems,
    #[error("{needed} targeted units are needed, the cart has {have}")]
    NotEnoughItems { needed: u32, have: u32 },
    #[error("the targeted subtotal does not reach the lowest tier {lowest}")]
    NoTierReached { lowest: Money },
    #[error("the promotion is in {found}, the cart in {expected}")]
    CurrencyMismatch { expected: Currency, found: Currency },
    #[error("amount out of range")]
    AmountOutOfRange,
}

/// Why an instant lies outside a promotion's validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutsideWindow {
    NotYetActive { starts_at: DateTime<Utc> },
    Expired { ended_at: DateTime<Utc> },
}

impl From<OutsideWindow> for DiscountError {
    fn from(e: OutsideWindow) -> Self {
        match e {
            OutsideWindow::NotYetActive { starts_at } => DiscountError::NotYetActive { starts_at },
            OutsideWindow::Expired { ended_at } => DiscountError::Expired { ended_at },
        }
    }
}

impl From<MoneyError> for DiscountError {
    fn from(e: MoneyError) -> Self {
        match e {
            MoneyError::CurrencyMismatch { left, right } => DiscountError::CurrencyMismatch {
                expected: left,
                found: right,
            },
            MoneyError::Overflow | MoneyError::InvalidCurrency(_) => {
                DiscountError::AmountOutOfRange
            }
        }
    }
}

impl PromotionTerms {
    /// The currency of the promotion's fixed amounts, or `None` when it has none
    /// (a percentage or free-shipping promotion works in any currency).
    pub fn currency(&self) -> Option<Currency> {
        self.amounts().first().map(|m| m.currency)
    }

    /// Every money amount in the terms.
    pub fn amounts(&self) -> Vec<Money> {
        let mut all: Vec<Money> = self.minimum_subtotal.into_iter().collect();
        match &self.kind {
            DiscountKind::FixedAmount { amount } => all.push(*amount),
            DiscountKind::Tiered { tiers } => {
                for tier in tiers {
                    all.push(tier.threshold);
                    if let TierReward::FixedAmount { amount } = tier.reward {
                        all.push(amount);
                    }
                }
            }
            DiscountKind::Percentage { .. }
            | DiscountKind::FreeShipping
            | DiscountKind::BuyXGetY { .. } => {}
        }
        all
    }

    /// Whether `now` lies in the validity window `[starts_at, ends_at)`.
    pub fn check_window(&self, now: DateTime<Utc>) -> Result<(), OutsideWindow> {
        if now < self.starts_at {
            return Err(OutsideWindow::NotYetActive {
                starts_at: self.starts_at,
            });
        }
        match self.ends_at {
            Some(ended_at) if now >= ended_at => Err(OutsideWindow::Expired { ended_at }),
            _ => Ok(()),
        }
    }

    /// The discount this promotion gives to `lines` with the given shipping price at
    /// `now`. This is the only implementation of the discount rules: carts and pricing
    /// code both call it.
    ///
    /// Rules, in order: the validity window; every amount in `shipping`'s currency; the
    /// minimum against the subtotal of all lines; at least one targeted line; then the
    /// kind's computation on the targeted lines only. Percentages round half-to-even via
    /// [`Money::percent_of`]. The result never exceeds the targeted subtotal (items) or
    /// the shipping price (shipping). Lines must have positive prices and quantities.
    pub fn discount(
        &self,
        lines: &[DiscountLine],
        shipping: Money,
        now: DateTime<Utc>,
    ) -> Result<Discount, DiscountError> {
        self.check_window(now)?;
        let currency = shipping.currency;
        let zero = Money::zero(currency);
        for amount in self.amounts() {
            if amount.currency != currency {
                return Err(DiscountError::CurrencyMismatch {
                    expected: currency,
                    found: amount.currency,
                });
            }
        }
        let subtotal = line_sum(currency, lines.iter())?;
        if let Some(minimum) = self.minimum_subtotal {
            if subtotal.amount < minimum.amount {
                return Err(DiscountError::BelowMinimumSubtotal { minimum, subtotal });
            }
        }
        let targeted: Vec<&DiscountLine> = lines
            .iter()
            .filter(|l| l.quantity.get() > 0 && self.target.matches(&l.sku, &l.category))
            .collect();
        if targeted.is_empty() {
            return Err(DiscountError::NoEligibleItems);
        }
        let eligible = line_sum(currency, targeted.iter().copied())?;

        let (items, shipping_off) = match &self.kind {
            DiscountKind::Percentage { basis_points } => {
                (eligible.percent_of(*basis_points)?, zero)
            }
            DiscountKind::FixedAmount { amount } => (*amount, zero),
            DiscountKind::FreeShipping => (zero, shipping),
            DiscountKind::BuyXGetY { buy, get } => {
                (buy_x_get_y(&targeted, *buy, *get, zero)?, zero)
            }
            DiscountKind::Tiered { tiers } => {
                let reached = tiers
                    .iter()
                    .filter(|t| t.threshold.amount <= eligible.amount)
                    .max_by_key(|t| t.threshold.amount);
                match reached {
                    Some(tier) => match tier.reward {
                        TierReward::Percentage { basis_points } => {
                            (eligible.percent_of(basis_points)?, zero)
                        }
                        TierReward::FixedAmount { amount } => (amount, zero),
                    },
                    None => {
                        let lowest = tiers
                            .iter()
                            .map(|t| t.threshold)
                            .min_by_key(|m| m.amount)
                            .unwrap_or(zero);
                        return Err(DiscountError::NoTierReached { lowest });
                    }
                }
            }
        };
        Ok(Discount {
            items: clamp(items, eligible)?,
            shipping: clamp(shipping_off, shipping)?,
        })
    }
}

/// `amount` bounded to `0..=cap` (a cap below zero counts as zero).
fn clamp(amount: Money, cap: Money) -> Result<Money, MoneyError> {
    let capped = amount.min(cap)?;
    Ok(Money::new(capped.amount.max(0), capped.currency))
}

fn line_sum<'a>(
    currency: Currency,
    mut lines: impl Iterator<Item = &'a DiscountLine>,
) -> Result<Money, MoneyError> {
    lines.try_fold(Money::zero(currency), |acc, l| {
        acc.checked_add(l.unit_price.times(l.quantity.get())?)
    })
}

/// The price of the `free` cheapest targeted units, `free = units / (buy + get) * get`.
fn buy_x_get_y(
    targeted: &[&DiscountLine],
    buy: u32,
    get: u32,
    zero: Money,
) -> Result<Money, DiscountError> {
    let group = u64::from(buy) + u64::from(get);
    let units: u64 = targeted.iter().map(|l| u64::from(l.quantity.get())).sum();
    if group == 0 || units < group {
        return Err(DiscountError::NotEnoughItems {
            needed: u32::try_from(group).unwrap_or(u32::MAX),
            have: u32::try_from(units).unwrap_or(u32::MAX),
        });
    }
    let mut free = units / group * u64::from(get);
    let mut cheapest: Vec<&DiscountLine> = targeted.to_vec();
    // Tie on price broken by SKU so the result never depends on line order.
    cheapest.sort_by(|a, b| (a.unit_price.amount, &a.sku).cmp(&(b.unit_price.amount, &b.sku)));
    let mut total = zero;
    for line in cheapest {
        if free == 0 {
            break;
        }
        let take = free.min(u64::from(line.quantity.get()));
        free -= take;
        let take = u32::try_from(take).map_err(|_| DiscountError::AmountOutOfRange)?;
        total = total.checked_add(line.unit_price.times(take)?)?;
    }
    Ok(total)
}
