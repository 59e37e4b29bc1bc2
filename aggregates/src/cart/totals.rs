//! The one place where cart totals are computed, for live display and for checkout.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CartError, CartLine, LoyaltyRedemption};
use crate::promotion::{DiscountLine, PromotionCode, PromotionTerms};
use crate::{Currency, Money, PromotionId};

/// What one coupon took off, after capping by the coupons applied before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CouponDiscount {
    pub promotion_id: PromotionId,
    pub code: PromotionCode,
    pub item_discount: Money,
    pub shipping_discount: Money,
}

/// Every figure of a cart's price.
///
/// Identities (all amounts in the cart currency, all non-negative):
/// - `item_discount = Σ coupons.item_discount <= subtotal`
/// - `shipping_discount = Σ coupons.shipping_discount <= shipping`
/// - `shipping_total = shipping - shipping_discount`
/// - `tax = (subtotal - item_discount + shipping_total) × tax_rate_basis_points / 10 000`
/// - `loyalty_value = min(points value, subtotal - item_discount + shipping_total + tax)`
/// - `grand_total = subtotal - item_discount + shipping_total + tax - loyalty_value >= 0`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CartTotals {
    /// Σ unit price × quantity over the lines.
    pub subtotal: Money,
    pub item_discount: Money,
    /// Price of the chosen shipping method (zero when none is chosen yet).
    pub shipping: Money,
    pub shipping_discount: Money,
    pub shipping_total: Money,
    pub tax_rate_basis_points: u32,
    pub tax: Money,
    /// Points actually redeemed (fewer than requested when their value was capped).
    pub loyalty_points: u64,
    /// Money value of the redeemed points.
    pub loyalty_value: Money,
    pub grand_total: Money,
    /// Per-coupon breakdown, in the order the coupons were applied.
    pub coupons: Vec<CouponDiscount>,
}

/// Inputs of [`CartTotals::compute`].
#[derive(Debug, Clone, Copy)]
pub struct TotalsInput<'a> {
    pub currency: Currency,
    pub lines: &'a [CartLine],
    pub coupons: &'a [PromotionTerms],
    pub shipping_price: Option<Money>,
    pub tax_rate_basis_points: u32,
    pub loyalty: Option<&'a LoyaltyRedemption>,
    pub now: DateTime<Utc>,
}

impl CartTotals {
    /// Computes the totals.
    ///
    /// Coupons are applied in order, each on the undiscounted lines through
    /// [`PromotionTerms::discount`], then capped by what the earlier coupons left, so
    /// stacked coupons never take more than the subtotal or the shipping price. A coupon
    /// that no longer applies (window closed, minimum not met...) is an error, never a
    /// silent zero: the customer removes it and sees the new price.
    ///
    /// Tax is charged on the discounted items plus shipping. Loyalty points are a means
    /// of payment, not a discount: they are deducted after tax and their value is capped
    /// at the amount due, so the grand total is never negative. When capped, the points
    /// redeemed shrink in proportion, rounded up (the customer never gets more value
    /// than the points bought).
    pub fn compute(input: &TotalsInput<'_>) -> Result<CartTotals, CartError> {
        let currency = input.currency;
        let zero = Money::zero(currency);
        let in_currency = |m: Money| {
            if m.currency == currency {
                Ok(m)
            } else {
                Err(CartError::CurrencyMismatch {
                    expected: currency,
                    found: m.currency,
                })
            }
        };

        let mut subtotal = zero;
        let mut discount_lines = Vec::with_capacity(input.lines.len());
        for line in input.lines {
            let unit_price = in_currency(line.unit_price)?;
            subtotal = subtotal.checked_add(unit_price.times(line.quantity.get())?)?;
            discount_lines.push(DiscountLine {
                sku: line.sku.clone(),
                category: line.category.clone(),
                unit_price,
                quantity: line.quantity,
            });
        }
        let shipping = in_currency(input.shipping_price.unwrap_or(zero))?;

        let mut items_left = subtotal;
        let mut shipping_left = shipping;
        let mut coupons = Vec::with_capacity(input.coupons.len());
        for terms in input.coupons {
            let discount = terms
                .discount(&discount_lines, shipping, input.now)
                .map_err(|reason| CartError::CouponNotApplicable {
                    code: terms.code.clone(),
                    reason,
                })?;
            let item_discount = discount.items.min(items_left)?;
            let shipping_discount = discount.shipping.min(shipping_left)?;
            items_left = items_left.checked_sub(item_discount)?;
            shipping_left = shipping_left.checked_sub(shipping_discount)?;
            coupons.push(CouponDiscount {
                promotion_id: terms.promotion_id,
                code: terms.code.clone(),
                item_discount,
                shipping_discount,
            });
        }

        let taxable = items_left.checked_add(shipping_left)?;
        let tax = taxable.percent_of(input.tax_rate_basis_points)?;
        let due = taxable.checked_add(tax)?;
        let (loyalty_points, loyalty_value) = match input.loyalty {
            Some(l) if l.value.is_positive() => {
                let value = in_currency(l.value)?;
                let applied = value.min(due)?;
                let points = if applied == value {
                    l.points
                } else {
                    points_for(l.points, applied.amount, value.amount)
                };
                (points, applied)
            }
            _ => (0, zero),
        };

        Ok(CartTotals {
            subtotal,
            item_discount: subtotal.checked_sub(items_left)?,
            shipping,
            shipping_discount: shipping.checked_sub(shipping_left)?,
            shipping_total: shipping_left,
            tax_rate_basis_points: input.tax_rate_basis_points,
            tax,
            loyalty_points,
            loyalty_value,
            grand_total: due.checked_sub(loyalty_value)?,
            coupons,
        })
    }
}

/// `ceil(points × applied / value)` for `0 <= applied < value`.
fn points_for(points: u64, applied: i64, value: i64) -> u64 {
    let (p, a, v) = (
        u128::from(points),
        applied.max(0) as u128,
        value.max(1) as u128,
    );
    u64::try_from((p * a).div_ceil(v)).unwrap_or(points)
}
