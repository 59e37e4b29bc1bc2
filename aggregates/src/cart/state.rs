use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CartError, CartTotals, TaxRates, TotalsInput};
use crate::promotion::PromotionTerms;
use crate::{Address, CartId, Currency, CustomerId, Money, OrderId, Quantity, Sku};

/// Default upper bound of one line's quantity.
pub const DEFAULT_MAX_QUANTITY_PER_LINE: u32 = 99;
/// Upper bound of the number of lines in a cart.
pub const MAX_LINES: usize = 100;
/// Upper bound of the number of coupons in a cart.
pub const MAX_COUPONS: usize = 5;

/// One product line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CartLine {
    pub sku: Sku,
    pub product_name: String,
    pub category: String,
    pub unit_price: Money,
    pub quantity: Quantity,
    /// `unit_price × quantity`.
    pub line_total: Money,
}

/// A shipping option chosen by the customer, priced by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShippingMethod {
    /// E.g. `dhl-standard`.
    pub code: String,
    pub price: Money,
}

/// Loyalty points the customer wants to spend, with their money value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoyaltyRedemption {
    pub points: u64,
    pub value: Money,
}

/// Where a cart is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartStatus {
    #[default]
    Open,
    CheckedOut(OrderId),
    Abandoned,
}

/// State of one cart, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    pub id: Option<CartId>,
    pub customer_id: Option<CustomerId>,
    pub currency: Option<Currency>,
    /// Lines in the order they were first added.
    pub lines: Vec<CartLine>,
    /// Terms of the applied coupons, in the order they were applied.
    pub coupons: Vec<PromotionTerms>,
    pub shipping_address: Option<Address>,
    pub shipping_method: Option<ShippingMethod>,
    pub loyalty: Option<LoyaltyRedemption>,
    pub status: CartStatus,
    pub last_activity_at: Option<DateTime<Utc>>,
}

impl Cart {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    pub fn line(&self, sku: &Sku) -> Option<&CartLine> {
        self.lines.iter().find(|l| &l.sku == sku)
    }

    /// Total units over all lines.
    pub fn item_count(&self) -> u32 {
        self.lines
            .iter()
            .fold(0u32, |n, l| n.saturating_add(l.quantity.get()))
    }

    /// Totals as the customer would pay now. Tax is estimated from `tax_rates` once a
    /// shipping address is known and is zero before; an address whose region and country
    /// both lack a rate is an error, as at checkout.
    pub fn live_totals(
        &self,
        tax_rates: &TaxRates,
        now: DateTime<Utc>,
    ) -> Result<CartTotals, CartError> {
        let rate = match &self.shipping_address {
            Some(address) => tax_rate(address, tax_rates)?,
            None => 0,
        };
        self.totals_at_rate(rate, now)
    }

    pub(crate) fn totals_at_rate(
        &self,
        tax_rate_basis_points: u32,
        now: DateTime<Utc>,
    ) -> Result<CartTotals, CartError> {
        let currency = self.currency.ok_or(CartError::NotOpened)?;
        CartTotals::compute(&TotalsInput {
            currency,
            lines: &self.lines,
            coupons: &self.coupons,
            shipping_price: self.shipping_method.as_ref().map(|m| m.price),
            tax_rate_basis_points,
            loyalty: self.loyalty.as_ref(),
            now,
        })
    }
}

/// The rate for the address's tax region, falling back to its country.
pub fn tax_rate(address: &Address, tax_rates: &TaxRates) -> Result<u32, CartError> {
    let region = address.tax_region();
    tax_rates
        .get(&region)
        .or_else(|| tax_rates.get(&address.country.0))
        .copied()
        .ok_or(CartError::MissingTaxRate { tax_region: region })
}
