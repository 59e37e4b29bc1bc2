//! What the checkout saga remembers about one order.

use std::collections::BTreeMap;

use aggregates::order::LineQuantity;
use aggregates::shipment::ShipmentLine;
use aggregates::stock::WarehouseAllocation;
use aggregates::{
    Address, Currency, CustomerId, Money, OrderId, PaymentId, Quantity, ReturnId, ShipmentId, Sku,
    WarehouseId,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where the order stands in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Phase {
    /// Only the checked-out cart has been seen.
    #[default]
    CheckedOut,
    /// A draft order: nothing happens until it is finalised.
    Draft,
    /// Reserving promotions, points and stock for every line.
    Reserving,
    /// Everything is reserved; the payment is being scored and authorized.
    Paying,
    /// Paid (authorized) and confirmed; shipments are on their way.
    Confirmed,
    /// Every unit delivered; returns are possible until the window closes.
    Delivered,
    Completed,
    Cancelled,
}

/// Figures of the order the saga needs, from `OrderPlaced` and later order events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderFacts {
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub lines: Vec<LineFacts>,
    pub shipping: Money,
    pub tax_rate_bp: u32,
    pub grand_total: Money,
    pub shipping_address: Address,
    pub billing_address: Address,
    pub payment_method_token: String,
    /// Money the order says it received, and refunded.
    pub paid: Money,
    pub refunded: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineFacts {
    pub sku: Sku,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
    pub line_total: Money,
}

/// Where the payment stands, as far as the saga knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStage {
    Initiated,
    /// Scored in the review band: a person decides.
    InReview,
    /// The provider was asked to authorize.
    Authorizing,
    /// The authorize call timed out: the provider is asked for the status.
    Unknown,
    /// Waiting for the customer's 3-D Secure challenge.
    ActionRequired,
    Authorized,
    Declined,
    Voided,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentProgress {
    pub payment_id: PaymentId,
    pub amount: Money,
    pub stage: PaymentStage,
    /// The idempotency key the authorization was attempted with; status queries and
    /// retries use it, so the customer is never charged twice.
    pub authorize_key: Option<Uuid>,
    pub reference: Option<String>,
    pub authorized: Money,
    pub captured: Money,
    pub refunded: Money,
    /// Failed capture attempts per shipment.
    pub capture_failures: BTreeMap<ShipmentId, u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShipmentStage {
    Created,
    Packed,
    Labelled,
    Dispatched,
    Delivered,
    /// The carrier brought the parcel back undelivered.
    ReturnedToSender,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentProgress {
    pub warehouse: WarehouseId,
    pub lines: Vec<ShipmentLine>,
    pub stage: ShipmentStage,
    pub tracking_number: Option<String>,
    pub captured: bool,
    /// Time of the latest carrier scan recorded on the shipment.
    pub last_scan: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReturnStage {
    Requested,
    Approved,
    Received,
    Refunded,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnProgress {
    pub lines: Vec<LineQuantity>,
    pub stage: ReturnStage,
    /// Tracking number of the return label sent to the customer.
    pub label: Option<String>,
    /// The order that replaces the returned units, when the customer asked for an
    /// exchange instead of a refund.
    pub exchange: Option<OrderId>,
}

/// The saga's state for one order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckoutState {
    pub order_id: Option<OrderId>,
    pub phase: Phase,
    pub order: Option<OrderFacts>,
    /// Codes (stream ids) of the promotions the order redeems.
    pub coupons: Vec<String>,
    /// Loyalty points the order is paid with in part.
    pub points: u64,
    pub reserved: BTreeMap<Sku, Vec<WarehouseAllocation>>,
    pub payment: Option<PaymentProgress>,
    pub shipments: BTreeMap<ShipmentId, ShipmentProgress>,
    pub returns: BTreeMap<ReturnId, ReturnProgress>,
    pub return_window_closed: bool,
    /// The order was placed from a cart whose `CartCheckedOut` had not reached the saga
    /// yet (events of different streams may arrive out of log order on JetStream): the
    /// coupons and points to reserve are the checkout's, so reserving waits for it.
    #[serde(default)]
    pub placed_before_checkout: bool,
    /// Units reserved per SKU (allocated and backordered), as the stock last reported.
    /// An edited order line differing from it is re-reserved.
    #[serde(default)]
    pub reserved_quantity: BTreeMap<Sku, Quantity>,
    /// Line quantities the payment's authorization covers: an increase the provider
    /// declines is reverted to them.
    #[serde(default)]
    pub paid_lines: BTreeMap<Sku, Quantity>,
}

impl CheckoutState {
    /// Every line has its stock reserved.
    pub fn fully_reserved(&self) -> bool {
        self.order
            .as_ref()
            .is_some_and(|o| o.lines.iter().all(|l| self.reserved.contains_key(&l.sku)))
    }

    /// Units of `sku` reserved: as reported, else what its allocations hold.
    pub fn reserved_of(&self, sku: &Sku) -> Option<Quantity> {
        if let Some(q) = self.reserved_quantity.get(sku) {
            return Some(*q);
        }
        self.reserved
            .get(sku)
            .map(|a| Quantity(a.iter().map(|a| a.quantity.get()).sum()))
    }

    /// Units of `sku` reserved but not yet allocated to a warehouse (backordered).
    pub fn backordered_of(&self, sku: &Sku) -> u32 {
        let allocated: u32 = self
            .reserved
            .get(sku)
            .map_or(0, |a| a.iter().map(|a| a.quantity.get()).sum());
        self.reserved_of(sku)
            .map_or(0, |q| q.get().saturating_sub(allocated))
    }

    /// Every reserved line holds the order's quantity and nothing removed is still held.
    pub fn stock_matches(&self) -> bool {
        let Some(order) = &self.order else {
            return true;
        };
        order
            .lines
            .iter()
            .all(|l| self.reserved_of(&l.sku).is_none_or(|q| q == l.quantity))
            && self
                .reserved
                .keys()
                .all(|sku| order.lines.iter().any(|l| &l.sku == sku))
    }

    /// The authorization covers the order's total (no edit waits for the provider).
    pub fn payment_matches(&self) -> bool {
        match (&self.order, &self.payment) {
            (Some(o), Some(p)) if p.stage == PaymentStage::Authorized => {
                p.authorized == o.grand_total
            }
            _ => true,
        }
    }

    /// Cancelled, completed or never going further.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Cancelled | Phase::Completed)
    }

    /// A return still waits for the merchant, the goods or its refund (an exchanged
    /// return is settled once received: its replacement is its own order).
    pub fn open_returns(&self) -> bool {
        self.returns.values().any(|r| match r.stage {
            ReturnStage::Requested | ReturnStage::Approved => true,
            ReturnStage::Received => r.exchange.is_none(),
            ReturnStage::Refunded | ReturnStage::Rejected => false,
        })
    }
}

/// The refund of return `return_id` (one per return).
pub fn return_refund_id(return_id: ReturnId) -> aggregates::RefundId {
    aggregates::RefundId::from_uuid(crate::saga::entity_id("refund", &return_id.to_string()))
}

/// The refund of what a parcel that came back to the sender had captured.
pub fn returned_parcel_refund_id(shipment_id: ShipmentId) -> aggregates::RefundId {
    aggregates::RefundId::from_uuid(crate::saga::entity_id(
        "refund-returned-parcel",
        &shipment_id.to_string(),
    ))
}

/// The refund of what was paid for an order cancelled after a capture.
pub fn cancellation_refund_id(order_id: OrderId) -> aggregates::RefundId {
    aggregates::RefundId::from_uuid(crate::saga::entity_id(
        "refund-cancelled",
        &order_id.to_string(),
    ))
}

/// The payment of an order (one per order).
pub fn payment_id(order_id: OrderId) -> PaymentId {
    PaymentId::from_uuid(crate::saga::entity_id("payment", &order_id.to_string()))
}

/// The shipment of an order's goods from one warehouse.
pub fn shipment_id(order_id: OrderId, warehouse: &WarehouseId) -> ShipmentId {
    ShipmentId::from_uuid(crate::saga::entity_id(
        "shipment",
        &format!("{order_id}/{warehouse}"),
    ))
}
