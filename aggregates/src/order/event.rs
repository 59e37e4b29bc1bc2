use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    Address, CartId, Currency, CustomerId, EventExample, Money, OrderId, PaymentId, Quantity,
    RefundId, ReturnId, ShipmentId, Sku,
};

crate::domain_events! {
    /// Events of the order aggregate.
    // `OrderPlaced` carries two addresses and the lines; events are handled one at a time,
    // so the size gap costs little, and boxing would change the public payload types.
    #[allow(clippy::large_enum_variant)]
    pub enum OrderEvent {
        OrderPlaced(OrderPlaced),
        OrderLineAdded(OrderLineAdded),
        OrderDraftFinalised(OrderDraftFinalised),
        OrderConfirmed(OrderConfirmed),
        OrderLineQuantityChanged(OrderLineQuantityChanged),
        OrderLineRemoved(OrderLineRemoved),
        OrderShippingAddressChanged(OrderShippingAddressChanged),
        OrderCancelled(OrderCancelled),
        OrderShipmentRecorded(OrderShipmentRecorded),
        OrderShipmentDelivered(OrderShipmentDelivered),
        OrderShipmentReturnedToSender(OrderShipmentReturnedToSender),
        OrderDelivered(OrderDelivered),
        OrderReturnRequested(OrderReturnRequested),
        OrderReturnApproved(OrderReturnApproved),
        OrderReturnRejected(OrderReturnRejected),
        OrderReturnReceived(OrderReturnReceived),
        OrderPaymentCaptured(OrderPaymentCaptured),
        OrderRefundRecorded(OrderRefundRecorded),
        OrderExchangeRequested(OrderExchangeRequested),
        OrderCompleted(OrderCompleted),
    }
}

/// One priced line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    pub sku: Sku,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
    /// Discount on the whole line.
    pub discount: Money,
    /// `unit_price × quantity − discount`.
    pub line_total: Money,
}

/// The order's money figures, computed by [`super::pricing::totals`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderTotals {
    /// Σ unit price × quantity, before discounts.
    pub subtotal: Money,
    pub discount: Money,
    pub shipping: Money,
    pub tax: Money,
    /// Money value of redeemed loyalty points.
    pub points_value: Money,
    /// `subtotal − discount + shipping + tax − points_value`.
    pub grand_total: Money,
    pub currency: Currency,
}

/// A quantity of one SKU (shipped, delivered, returned...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LineQuantity {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CancellationReason {
    CustomerRequested,
    MerchantRequested,
    PaymentDeclined,
    FraudRejected,
    OutOfStock,
    DraftDiscarded,
}

/// An order was placed (or, with `draft`, opened as a draft to be finalised later).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub cart_id: Option<CartId>,
    pub lines: Vec<OrderLine>,
    pub totals: OrderTotals,
    /// The tax rate applied, in basis points.
    pub tax_rate_bp: u32,
    pub shipping_address: Address,
    pub billing_address: Address,
    pub payment_method_token: String,
    pub draft: bool,
    pub at: DateTime<Utc>,
}

/// A line was added to a draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLineAdded {
    pub line: OrderLine,
    pub totals: OrderTotals,
    /// New grand total minus the previous one.
    pub grand_total_difference: Money,
    pub at: DateTime<Utc>,
}

/// A draft became a placed order with these totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderDraftFinalised {
    pub lines: Vec<OrderLine>,
    pub totals: OrderTotals,
    pub at: DateTime<Utc>,
}

/// The merchant accepted the order for fulfilment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderConfirmed {
    pub grand_total: Money,
    pub at: DateTime<Utc>,
}

/// A line's quantity was edited before fulfilment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLineQuantityChanged {
    pub sku: Sku,
    pub previous_quantity: Quantity,
    /// The line after the change (quantity, rescaled discount, line total).
    pub line: OrderLine,
    pub totals: OrderTotals,
    pub grand_total_difference: Money,
    pub at: DateTime<Utc>,
}

/// A line was removed before fulfilment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLineRemoved {
    pub sku: Sku,
    pub removed_quantity: Quantity,
    pub totals: OrderTotals,
    pub grand_total_difference: Money,
    pub at: DateTime<Utc>,
}

/// The order will ship to another address, with its own shipping charge and tax rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderShippingAddressChanged {
    pub address: Address,
    pub tax_rate_bp: u32,
    pub totals: OrderTotals,
    pub grand_total_difference: Money,
    pub at: DateTime<Utc>,
}

/// The order was cancelled before anything shipped. `paid` is what must go back to the
/// customer (captures so far, less refunds); the rest of the payment is voided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderCancelled {
    pub reason: CancellationReason,
    pub lines: Vec<LineQuantity>,
    pub paid: Money,
    pub at: DateTime<Utc>,
}

/// Some units left in one shipment. `shipped_totals` is the quantity shipped per SKU so
/// far, including this shipment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderShipmentRecorded {
    pub shipment_id: ShipmentId,
    pub lines: Vec<LineQuantity>,
    pub shipped_totals: Vec<LineQuantity>,
    pub fully_shipped: bool,
    pub at: DateTime<Utc>,
}

/// One shipment reached the customer. `delivered_totals` is per SKU so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderShipmentDelivered {
    pub shipment_id: ShipmentId,
    pub lines: Vec<LineQuantity>,
    pub delivered_totals: Vec<LineQuantity>,
    pub at: DateTime<Utc>,
}

/// A shipment came back to the warehouse undelivered. `returned_totals` is per SKU so
/// far; these units will not reach the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderShipmentReturnedToSender {
    pub shipment_id: ShipmentId,
    pub lines: Vec<LineQuantity>,
    pub returned_totals: Vec<LineQuantity>,
    pub at: DateTime<Utc>,
}

/// Every unit of every line has been delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderDelivered {
    pub at: DateTime<Utc>,
}

/// The customer asked to return delivered units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderReturnRequested {
    pub return_id: ReturnId,
    pub lines: Vec<LineQuantity>,
    pub reason: String,
    /// The window applied to this request, in days after delivery.
    pub window_days: u32,
    pub at: DateTime<Utc>,
}

/// The merchant accepted a return request; the customer may send the units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderReturnApproved {
    pub return_id: ReturnId,
    pub lines: Vec<LineQuantity>,
    pub at: DateTime<Utc>,
}

/// The merchant refused a return request; its units count as not returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderReturnRejected {
    pub return_id: ReturnId,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// The returned units arrived at the warehouse (ready to restock and refund).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderReturnReceived {
    pub return_id: ReturnId,
    pub lines: Vec<LineQuantity>,
    pub at: DateTime<Utc>,
}

/// A payment of the order captured more money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderPaymentCaptured {
    pub payment_id: PaymentId,
    /// Newly captured by this report.
    pub amount: Money,
    /// Cumulative capture of this payment.
    pub payment_captured_total: Money,
    /// Cumulative capture of all payments of the order.
    pub paid_total: Money,
    pub at: DateTime<Utc>,
}

/// Money went back to the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderRefundRecorded {
    pub refund_id: RefundId,
    pub amount: Money,
    pub return_id: Option<ReturnId>,
    pub refunded_total: Money,
    /// Paid and not yet refunded, after this refund.
    pub refundable_remaining: Money,
    pub at: DateTime<Utc>,
}

/// The customer wants a replacement order for a return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderExchangeRequested {
    pub return_id: ReturnId,
    pub replacement_order_id: OrderId,
    pub at: DateTime<Utc>,
}

/// The order is closed: fully delivered and no return open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderCompleted {
    pub grand_total: Money,
    pub paid: Money,
    pub refunded: Money,
    pub at: DateTime<Utc>,
}

// ---- examples: an order of 2 T-shirts (19.99, 2.00 off) and 1 mug (12.50) ----

pub(crate) fn example_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 14, 0, 0).unwrap()
}

pub(crate) fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

pub(crate) fn example_order_id() -> OrderId {
    OrderId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0003_0001,
    ))
}

pub(crate) fn example_shipment_id() -> ShipmentId {
    ShipmentId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0005_0001,
    ))
}

pub(crate) fn example_return_id() -> ReturnId {
    ReturnId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0007_0001,
    ))
}

pub(crate) fn example_payment_id() -> PaymentId {
    PaymentId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0004_0001,
    ))
}

pub(crate) fn tshirt() -> Sku {
    Sku::parse("TSHIRT-RED-M").unwrap()
}

pub(crate) fn mug() -> Sku {
    Sku::parse("MUG-WHITE").unwrap()
}

pub(crate) fn example_lines() -> Vec<OrderLine> {
    vec![
        OrderLine {
            sku: tshirt(),
            name: "Red T-shirt".into(),
            quantity: Quantity(2),
            unit_price: eur(1_999),
            discount: eur(200),
            line_total: eur(3_798),
        },
        OrderLine {
            sku: mug(),
            name: "White mug".into(),
            quantity: Quantity(1),
            unit_price: eur(1_250),
            discount: eur(0),
            line_total: eur(1_250),
        },
    ]
}

/// Subtotal 52.48, discount 2.00, shipping 4.90, tax 19% of 55.38 = 10.52, points 1.00.
pub(crate) fn example_totals() -> OrderTotals {
    OrderTotals {
        subtotal: eur(5_248),
        discount: eur(200),
        shipping: eur(490),
        tax: eur(1_052),
        points_value: eur(100),
        grand_total: eur(6_490),
        currency: Currency::EUR,
    }
}

pub(crate) fn all_lines() -> Vec<LineQuantity> {
    vec![
        LineQuantity {
            sku: tshirt(),
            quantity: Quantity(2),
        },
        LineQuantity {
            sku: mug(),
            quantity: Quantity(1),
        },
    ]
}

fn one_tshirt() -> Vec<LineQuantity> {
    vec![LineQuantity {
        sku: tshirt(),
        quantity: Quantity(1),
    }]
}

impl EventExample for OrderPlaced {
    fn example() -> Self {
        Self {
            order_id: example_order_id(),
            customer_id: CustomerId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0001_0001,
            )),
            cart_id: Some(CartId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0002_0001,
            ))),
            lines: example_lines(),
            totals: example_totals(),
            tax_rate_bp: 1_900,
            shipping_address: Address::example(),
            billing_address: Address::example(),
            payment_method_token: "pm_1Q2w3E4r5T6y".into(),
            draft: false,
            at: example_time(),
        }
    }
}

impl EventExample for OrderLineAdded {
    fn example() -> Self {
        // A second mug added to a draft: +12.50, tax +2.38 (19% of 67.88 = 12.90).
        Self {
            line: OrderLine {
                sku: Sku::parse("MUG-BLACK").unwrap(),
                name: "Black mug".into(),
                quantity: Quantity(1),
                unit_price: eur(1_250),
                discount: eur(0),
                line_total: eur(1_250),
            },
            totals: OrderTotals {
                subtotal: eur(6_498),
                tax: eur(1_290),
                grand_total: eur(7_978),
                ..example_totals()
            },
            grand_total_difference: eur(1_488),
            at: example_time(),
        }
    }
}

impl EventExample for OrderDraftFinalised {
    fn example() -> Self {
        Self {
            lines: example_lines(),
            totals: example_totals(),
            at: example_time(),
        }
    }
}

impl EventExample for OrderConfirmed {
    fn example() -> Self {
        Self {
            grand_total: eur(6_490),
            at: example_time(),
        }
    }
}

impl EventExample for OrderLineQuantityChanged {
    fn example() -> Self {
        // Two T-shirts become one: the 2.00 discount halves. Taxable 36.39, tax 6.91.
        Self {
            sku: tshirt(),
            previous_quantity: Quantity(2),
            line: OrderLine {
                sku: tshirt(),
                name: "Red T-shirt".into(),
                quantity: Quantity(1),
                unit_price: eur(1_999),
                discount: eur(100),
                line_total: eur(1_899),
            },
            totals: OrderTotals {
                subtotal: eur(3_249),
                discount: eur(100),
                tax: eur(691),
                grand_total: eur(4_230),
                ..example_totals()
            },
            grand_total_difference: eur(-2_260),
            at: example_time(),
        }
    }
}

impl EventExample for OrderLineRemoved {
    fn example() -> Self {
        // Without the mug: taxable 42.88, tax 8.15.
        Self {
            sku: mug(),
            removed_quantity: Quantity(1),
            totals: OrderTotals {
                subtotal: eur(3_998),
                tax: eur(815),
                grand_total: eur(5_003),
                ..example_totals()
            },
            grand_total_difference: eur(-1_487),
            at: example_time(),
        }
    }
}

impl EventExample for OrderShippingAddressChanged {
    fn example() -> Self {
        // To Vienna: shipping 6.90, tax 20% of 57.38 = 11.48.
        let mut address = Address::example();
        address.line1 = "Stephansplatz 1".into();
        address.city = "Wien".into();
        address.postal_code = "1010".into();
        address.region = None;
        address.country = crate::CountryCode("AT".into());
        Self {
            address,
            tax_rate_bp: 2_000,
            totals: OrderTotals {
                shipping: eur(690),
                tax: eur(1_148),
                grand_total: eur(6_786),
                ..example_totals()
            },
            grand_total_difference: eur(296),
            at: example_time(),
        }
    }
}

impl EventExample for OrderCancelled {
    fn example() -> Self {
        Self {
            reason: CancellationReason::CustomerRequested,
            lines: all_lines(),
            paid: eur(0),
            at: example_time(),
        }
    }
}

impl EventExample for OrderShipmentRecorded {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            lines: all_lines(),
            shipped_totals: all_lines(),
            fully_shipped: true,
            at: example_time(),
        }
    }
}

impl EventExample for OrderShipmentDelivered {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            lines: all_lines(),
            delivered_totals: all_lines(),
            at: example_time(),
        }
    }
}

impl EventExample for OrderShipmentReturnedToSender {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            lines: all_lines(),
            returned_totals: all_lines(),
            at: example_time(),
        }
    }
}

impl EventExample for OrderDelivered {
    fn example() -> Self {
        Self { at: example_time() }
    }
}

impl EventExample for OrderReturnRequested {
    fn example() -> Self {
        Self {
            return_id: example_return_id(),
            lines: one_tshirt(),
            reason: "too small".into(),
            window_days: 30,
            at: example_time(),
        }
    }
}

impl EventExample for OrderReturnApproved {
    fn example() -> Self {
        Self {
            return_id: example_return_id(),
            lines: one_tshirt(),
            at: example_time(),
        }
    }
}

impl EventExample for OrderReturnRejected {
    fn example() -> Self {
        Self {
            return_id: example_return_id(),
            reason: "worn item".into(),
            at: example_time(),
        }
    }
}

impl EventExample for OrderReturnReceived {
    fn example() -> Self {
        Self {
            return_id: example_return_id(),
            lines: one_tshirt(),
            at: example_time(),
        }
    }
}

impl EventExample for OrderPaymentCaptured {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            amount: eur(6_490),
            payment_captured_total: eur(6_490),
            paid_total: eur(6_490),
            at: example_time(),
        }
    }
}

impl EventExample for OrderRefundRecorded {
    fn example() -> Self {
        Self {
            refund_id: RefundId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0006_0001,
            )),
            amount: eur(1_899),
            return_id: Some(example_return_id()),
            refunded_total: eur(1_899),
            refundable_remaining: eur(4_591),
            at: example_time(),
        }
    }
}

impl EventExample for OrderExchangeRequested {
    fn example() -> Self {
        Self {
            return_id: example_return_id(),
            replacement_order_id: OrderId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0003_0002,
            )),
            at: example_time(),
        }
    }
}

impl EventExample for OrderCompleted {
    fn example() -> Self {
        Self {
            grand_total: eur(6_490),
            paid: eur(6_490),
            refunded: eur(0),
            at: example_time(),
        }
    }
}
