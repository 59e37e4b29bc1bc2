use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CheckoutPayment, ShippingMethod};
use crate::promotion::{PromotionCode, PromotionTerms};
use crate::{Address, CartId, Currency, CustomerId, Money, OrderId, Quantity, Sku};

/// Tax rates in basis points keyed by tax region: `CC-REGION` (e.g. `US-CA`) or the
/// country alone (`DE`), as produced by [`Address::tax_region`].
pub type TaxRates = BTreeMap<String, u32>;

/// Commands of the cart aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CartCommand {
    OpenCart(OpenCart),
    AddItem(AddItem),
    ChangeItemQuantity(ChangeItemQuantity),
    RemoveItem(RemoveItem),
    ApplyCoupon(ApplyCoupon),
    RemoveCoupon(RemoveCoupon),
    SetShippingAddress(SetShippingAddress),
    SetShippingMethod(SetShippingMethod),
    SetLoyaltyPoints(SetLoyaltyPoints),
    CheckOut(CheckOut),
    CheckOutWithPayment(CheckOutWithPayment),
    AbandonCart(AbandonCart),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenCart {
    pub cart_id: CartId,
    pub customer_id: CustomerId,
    /// Every price in the cart must be in this currency.
    pub currency: Currency,
    pub at: DateTime<Utc>,
}

/// Adds units of a product; adding a SKU already in the cart increases its quantity and
/// takes the new catalogue price, name and category for the whole line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddItem {
    pub sku: Sku,
    pub product_name: String,
    /// Catalogue category path, used for promotion targeting.
    pub category: String,
    pub quantity: Quantity,
    /// The current catalogue price, looked up by the caller.
    pub unit_price: Money,
    /// Upper bound of the line quantity; `None` means
    /// [`DEFAULT_MAX_QUANTITY_PER_LINE`](super::DEFAULT_MAX_QUANTITY_PER_LINE).
    pub max_quantity_per_line: Option<u32>,
    pub at: DateTime<Utc>,
}

/// Sets the quantity of a line (not a delta).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeItemQuantity {
    pub sku: Sku,
    pub quantity: Quantity,
    pub max_quantity_per_line: Option<u32>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveItem {
    pub sku: Sku,
    pub at: DateTime<Utc>,
}

/// Applies a coupon; its terms are looked up by code outside the aggregate. Usage limits
/// are not checked here: the promotion counts redemptions when the order is placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyCoupon {
    pub terms: PromotionTerms,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveCoupon {
    pub code: PromotionCode,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetShippingAddress {
    pub address: Address,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetShippingMethod {
    pub method: ShippingMethod,
    pub at: DateTime<Utc>,
}

/// Sets the loyalty points to redeem at checkout; `points = 0` with a zero value clears
/// them. `value` is the money worth of `points`, computed by the loyalty programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetLoyaltyPoints {
    pub points: u64,
    pub value: Money,
    pub at: DateTime<Utc>,
}

/// Freezes the cart's totals into an order that the caller places itself (the event
/// carries no payment, so the checkout saga does not place it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOut {
    /// The id the new order will have.
    pub order_id: OrderId,
    /// Rates by tax region; the destination's region is tried first, then its country.
    pub tax_rates: TaxRates,
    pub at: DateTime<Utc>,
}

/// Freezes the cart's totals into an order paid with `payment`: the checkout saga places
/// it from the event. A payment method token is required unless nothing is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutWithPayment {
    /// The id the new order will have.
    pub order_id: OrderId,
    /// Rates by tax region, as for [`CheckOut`].
    pub tax_rates: TaxRates,
    pub payment: CheckoutPayment,
    pub at: DateTime<Utc>,
}

/// Sent by the abandoned-cart sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbandonCart {
    /// A cart touched more recently than `at - idle_threshold` is still active.
    pub idle_threshold: Duration,
    pub at: DateTime<Utc>,
}
