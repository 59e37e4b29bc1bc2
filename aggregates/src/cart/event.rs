use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CartLine, CartTotals, CouponDiscount, ShippingMethod};
use crate::promotion::{example_terms, PromotionCode, PromotionTerms};
use crate::{
    Address, CartId, Currency, CustomerId, EventExample, Money, OrderId, PromotionId, Quantity, Sku,
};

crate::domain_events! {
    upcasters: CART_UPCASTERS;
    /// Events of the cart aggregate.
    // `CartCheckedOut` carries the whole order-to-be; boxing it would change the
    // `From` conversions every caller uses, for a size that is never on a hot path.
    #[allow(clippy::large_enum_variant)]
    pub enum CartEvent {
        CartOpened(CartOpened),
        CartItemAdded(CartItemAdded),
        CartItemQuantityChanged(CartItemQuantityChanged),
        CartItemRemoved(CartItemRemoved),
        CartCouponApplied(CartCouponApplied),
        CartCouponRemoved(CartCouponRemoved),
        CartShippingAddressSet(CartShippingAddressSet),
        CartShippingMethodSet(CartShippingMethodSet),
        CartLoyaltyPointsSet(CartLoyaltyPointsSet),
        CartCheckedOut(CartCheckedOut) = 2,
        CartAbandoned(CartAbandoned),
    }
}

/// A customer opened a cart in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartOpened {
    pub cart_id: CartId,
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub at: DateTime<Utc>,
}

/// Units of a product were added; the line now has `quantity` units at `unit_price`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartItemAdded {
    pub sku: Sku,
    pub product_name: String,
    pub category: String,
    pub unit_price: Money,
    pub quantity_added: Quantity,
    /// Line quantity after the addition.
    pub quantity: Quantity,
    pub line_total: Money,
    /// Cart subtotal (before discounts) after the addition.
    pub subtotal: Money,
    pub at: DateTime<Utc>,
}

/// A line's quantity was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartItemQuantityChanged {
    pub sku: Sku,
    pub previous_quantity: Quantity,
    pub quantity: Quantity,
    pub unit_price: Money,
    pub line_total: Money,
    pub subtotal: Money,
    pub at: DateTime<Utc>,
}

/// A line was removed with all its units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartItemRemoved {
    pub sku: Sku,
    pub removed_quantity: Quantity,
    pub subtotal: Money,
    pub at: DateTime<Utc>,
}

/// A coupon was applied; the cart keeps its terms. The discounts are those it gave the
/// cart as it was then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartCouponApplied {
    pub terms: PromotionTerms,
    pub item_discount: Money,
    pub shipping_discount: Money,
    pub at: DateTime<Utc>,
}

/// A coupon was taken off the cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartCouponRemoved {
    pub promotion_id: PromotionId,
    pub code: PromotionCode,
    pub at: DateTime<Utc>,
}

/// The destination was set (or replaced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartShippingAddressSet {
    pub address: Address,
    /// The key used to look up the tax rate (`CC-REGION` or `CC`).
    pub tax_region: String,
    pub at: DateTime<Utc>,
}

/// A shipping method was chosen (or replaced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartShippingMethodSet {
    pub method: ShippingMethod,
    pub at: DateTime<Utc>,
}

/// Loyalty points to redeem at checkout were set; zero points clears them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartLoyaltyPointsSet {
    pub points: u64,
    pub value: Money,
    pub at: DateTime<Utc>,
}

/// How the customer pays for the order a checked-out cart becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckoutPayment {
    /// The payment provider's token for the customer's payment method (e.g. `tok_visa`
    /// with the test provider). Absent only when nothing is due (grand total zero).
    pub method_token: Option<String>,
    /// Where the payment method is billed; absent means the shipping address.
    pub billing_address: Option<Address>,
}

/// The cart became an order: everything needed to place it, totals frozen.
///
/// v2 added `payment`. With a payment the checkout saga places the order itself (its
/// command id derived from this event's id); without one (a v1 event, or a caller that
/// places the order itself) the saga only remembers the cart's coupons and points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartCheckedOut {
    pub cart_id: CartId,
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub lines: Vec<CartLine>,
    /// Terms of every applied coupon (the breakdown is in `totals.coupons`).
    pub coupons: Vec<PromotionTerms>,
    pub shipping_address: Address,
    pub tax_region: String,
    pub shipping_method: ShippingMethod,
    pub totals: CartTotals,
    /// How the order is paid; `None` when the caller places the order itself.
    pub payment: Option<CheckoutPayment>,
    pub at: DateTime<Utc>,
}

/// The upcasters of stored cart events.
const CART_UPCASTERS: &[crate::stream::Upcaster] = &[crate::stream::Upcaster {
    event_type: "CartCheckedOut",
    from_version: 1,
    upcast: cart_checked_out_v1_to_v2,
}];

/// v1 `CartCheckedOut` carried no payment method: its order was placed by whoever held
/// one, never by the saga, so it upcasts to `payment: null`.
fn cart_checked_out_v1_to_v2(mut payload: serde_json::Value) -> Result<serde_json::Value, String> {
    let map = payload
        .as_object_mut()
        .ok_or_else(|| "payload is not an object".to_string())?;
    map.insert("payment".into(), serde_json::Value::Null);
    Ok(payload)
}

/// The abandoned-cart sweep closed an idle cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartAbandoned {
    pub cart_id: CartId,
    pub customer_id: CustomerId,
    pub last_activity_at: DateTime<Utc>,
    /// Units left in the cart.
    pub item_count: u32,
    pub subtotal: Money,
    pub at: DateTime<Utc>,
}

pub(crate) fn example_cart_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 18, 0, 0).unwrap()
}

fn cart_id() -> CartId {
    CartId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0201,
    ))
}

fn customer_id() -> CustomerId {
    CustomerId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0101,
    ))
}

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

fn example_line() -> CartLine {
    CartLine {
        sku: Sku::parse("TSHIRT-RED-M").unwrap(),
        product_name: "Red T-shirt".into(),
        category: "apparel/t-shirts".into(),
        unit_price: eur(1999),
        quantity: Quantity(3),
        line_total: eur(5997),
    }
}

fn example_shipping() -> ShippingMethod {
    ShippingMethod {
        code: "dhl-standard".into(),
        price: eur(495),
    }
}

impl EventExample for CartOpened {
    fn example() -> Self {
        Self {
            cart_id: cart_id(),
            customer_id: customer_id(),
            currency: Currency::EUR,
            at: example_cart_time(),
        }
    }
}

impl EventExample for CartItemAdded {
    fn example() -> Self {
        let line = example_line();
        Self {
            sku: line.sku,
            product_name: line.product_name,
            category: line.category,
            unit_price: line.unit_price,
            quantity_added: line.quantity,
            quantity: line.quantity,
            line_total: line.line_total,
            subtotal: line.line_total,
            at: example_cart_time(),
        }
    }
}

impl EventExample for CartItemQuantityChanged {
    fn example() -> Self {
        let line = example_line();
        Self {
            sku: line.sku,
            previous_quantity: Quantity(3),
            quantity: Quantity(2),
            unit_price: line.unit_price,
            line_total: eur(3998),
            subtotal: eur(3998),
            at: example_cart_time(),
        }
    }
}

impl EventExample for CartItemRemoved {
    fn example() -> Self {
        Self {
            sku: example_line().sku,
            removed_quantity: Quantity(3),
            subtotal: eur(0),
            at: example_cart_time(),
        }
    }
}

impl EventExample for CartCouponApplied {
    fn example() -> Self {
        Self {
            terms: example_terms(),
            // 15% of 59.97
            item_discount: eur(900),
            shipping_discount: eur(0),
            at: example_cart_time(),
        }
    }
}

impl EventExample for CartCouponRemoved {
    fn example() -> Self {
        let terms = example_terms();
        Self {
            promotion_id: terms.promotion_id,
            code: terms.code,
            at: example_cart_time(),
        }
    }
}

impl EventExample for CartShippingAddressSet {
    fn example() -> Self {
        let address = Address::example();
        Self {
            tax_region: address.tax_region(),
            address,
            at: example_cart_time(),
        }
    }
}

impl EventExample for CartShippingMethodSet {
    fn example() -> Self {
        Self {
            method: example_shipping(),
            at: example_cart_time(),
        }
    }
}

impl EventExample for CartLoyaltyPointsSet {
    fn example() -> Self {
        Self {
            points: 500,
            value: eur(500),
            at: example_cart_time(),
        }
    }
}

impl EventExample for CartCheckedOut {
    fn example() -> Self {
        let terms = example_terms();
        let address = Address::example();
        // 59.97 - 9.00 (15%) + 4.95 shipping = 55.92 taxable; 19% VAT = 10.62;
        // 5.00 in points; 61.54 to pay.
        Self {
            cart_id: cart_id(),
            order_id: OrderId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0000_0301,
            )),
            customer_id: customer_id(),
            currency: Currency::EUR,
            lines: vec![example_line()],
            coupons: vec![terms.clone()],
            tax_region: address.tax_region(),
            shipping_address: address,
            shipping_method: example_shipping(),
            totals: CartTotals {
                subtotal: eur(5997),
                item_discount: eur(900),
                shipping: eur(495),
                shipping_discount: eur(0),
                shipping_total: eur(495),
                tax_rate_basis_points: 1900,
                tax: eur(1062),
                loyalty_points: 500,
                loyalty_value: eur(500),
                grand_total: eur(6154),
                coupons: vec![CouponDiscount {
                    promotion_id: terms.promotion_id,
                    code: terms.code,
                    item_discount: eur(900),
                    shipping_discount: eur(0),
                }],
            },
            payment: Some(CheckoutPayment {
                method_token: Some("tok_visa".into()),
                billing_address: None,
            }),
            at: example_cart_time(),
        }
    }
}

impl EventExample for CartAbandoned {
    fn example() -> Self {
        Self {
            cart_id: cart_id(),
            customer_id: customer_id(),
            last_activity_at: example_cart_time(),
            item_count: 3,
            subtotal: eur(5997),
            at: example_cart_time() + chrono::Duration::days(2),
        }
    }
}
