use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CancellationReason, LineQuantity};
use crate::{
    Address, CartId, Currency, CustomerId, Money, OrderId, PaymentId, Quantity, RefundId, ReturnId,
    ShipmentId, Sku,
};

/// Commands of the order aggregate.
// Commands are built and consumed one at a time; boxing `PlaceOrder` would only make
// callers noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderCommand {
    PlaceOrder(PlaceOrder),
    AddLine(AddLine),
    FinaliseDraft { at: DateTime<Utc> },
    ConfirmOrder { at: DateTime<Utc> },
    ChangeLineQuantity(ChangeLineQuantity),
    RemoveLine(RemoveLine),
    ChangeShippingAddress(ChangeShippingAddress),
    CancelOrder(CancelOrder),
    RecordShipment(RecordShipment),
    RecordDelivery(RecordDelivery),
    RecordReturnToSender(RecordReturnToSender),
    RequestReturn(RequestReturn),
    ApproveReturn(ApproveReturn),
    RejectReturn(RejectReturn),
    ReceiveReturn(ReceiveReturn),
    RecordPaymentCaptured(RecordPaymentCaptured),
    RecordRefund(RecordRefund),
    RequestExchange(RequestExchange),
    CompleteOrder { at: DateTime<Utc> },
}

/// A line as priced by the cart (or by staff for a draft): the aggregate computes the
/// line total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOrderLine {
    pub sku: Sku,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
    /// Discount on the whole line (all units), `0 <= discount <= unit_price × quantity`.
    pub discount: Money,
}

/// Place an order, or open a draft (`draft: true`) that staff edit and then finalise.
///
/// Outside facts arrive here: prices and discounts from the cart, the shipping charge and
/// the tax rate (basis points) for the shipping address, the money value of redeemed
/// loyalty points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    /// The cart the order came from; staff-created drafts have none.
    pub cart_id: Option<CartId>,
    pub currency: Currency,
    pub lines: Vec<NewOrderLine>,
    pub shipping: Money,
    pub tax_rate_bp: u32,
    pub points_value: Money,
    pub shipping_address: Address,
    pub billing_address: Address,
    pub payment_method_token: String,
    pub draft: bool,
    pub at: DateTime<Utc>,
}

/// Add a line to a draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddLine {
    pub line: NewOrderLine,
    pub at: DateTime<Utc>,
}

/// Set a line's quantity; its discount scales in proportion to the quantity placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeLineQuantity {
    pub sku: Sku,
    pub quantity: Quantity,
    pub at: DateTime<Utc>,
}

/// Remove a line before fulfilment; the last line cannot go (cancel instead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveLine {
    pub sku: Sku,
    pub at: DateTime<Utc>,
}

/// Ship to another address; shipping charge and tax rate for it are looked up beforehand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeShippingAddress {
    pub address: Address,
    pub shipping: Money,
    pub tax_rate_bp: u32,
    pub at: DateTime<Utc>,
}

/// Cancel the order; only before its first shipment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelOrder {
    pub reason: CancellationReason,
    pub at: DateTime<Utc>,
}

/// Some units left the warehouse in one shipment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordShipment {
    pub shipment_id: ShipmentId,
    pub lines: Vec<LineQuantity>,
    pub at: DateTime<Utc>,
}

/// A recorded shipment reached the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordDelivery {
    pub shipment_id: ShipmentId,
    pub at: DateTime<Utc>,
}

/// A recorded shipment could not be delivered and came back to the warehouse: its
/// units will not reach the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordReturnToSender {
    pub shipment_id: ShipmentId,
    pub at: DateTime<Utc>,
}

/// Ask to send delivered units back. `window_days` overrides
/// [`super::DEFAULT_RETURN_WINDOW_DAYS`] (e.g. a longer window over the holidays).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestReturn {
    pub return_id: ReturnId,
    pub lines: Vec<LineQuantity>,
    pub reason: String,
    pub window_days: Option<u32>,
    pub at: DateTime<Utc>,
}

/// Accept a requested return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApproveReturn {
    pub return_id: ReturnId,
    pub at: DateTime<Utc>,
}

/// Refuse a requested return; its units may be requested again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectReturn {
    pub return_id: ReturnId,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// The units of an approved return arrived back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiveReturn {
    pub return_id: ReturnId,
    pub at: DateTime<Utc>,
}

/// A payment of this order reports its cumulative captured amount. Reports are
/// idempotent: a total not above the one already known changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordPaymentCaptured {
    pub payment_id: PaymentId,
    pub captured_total: Money,
    pub at: DateTime<Utc>,
}

/// Money went back to the customer. A refund id already recorded is a no-op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordRefund {
    pub refund_id: RefundId,
    pub amount: Money,
    /// The return this refund settles, if any.
    pub return_id: Option<ReturnId>,
    pub at: DateTime<Utc>,
}

/// The customer wants a replacement (placed as `replacement_order_id`) for a return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestExchange {
    pub return_id: ReturnId,
    pub replacement_order_id: OrderId,
    pub at: DateTime<Utc>,
}
