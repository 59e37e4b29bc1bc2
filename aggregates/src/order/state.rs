use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{LineQuantity, OrderLine, OrderTotals};
use crate::{
    Address, CustomerId, Money, OrderId, PaymentId, Quantity, RefundId, ReturnId, ShipmentId, Sku,
};

/// The order's lifecycle. Delivery progress is tracked per line, next to the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OrderStatus {
    #[default]
    NotPlaced,
    Draft,
    Placed,
    Confirmed,
    Cancelled,
    Completed,
}

/// A line plus what its discount was computed from, so repeated quantity edits rescale
/// the original discount instead of compounding rounding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineState {
    pub line: OrderLine,
    pub base_quantity: Quantity,
    pub base_discount: Money,
}

/// Where a return request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReturnStatus {
    Requested,
    Approved,
    Rejected,
    Received,
}

/// One return request of the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnRecord {
    pub lines: Vec<LineQuantity>,
    pub status: ReturnStatus,
    pub exchange_order: Option<OrderId>,
}

impl ReturnRecord {
    /// Requested or approved: the merchant or the customer still has to act.
    pub fn is_open(&self) -> bool {
        matches!(
            self.status,
            ReturnStatus::Requested | ReturnStatus::Approved
        )
    }
}

/// Facts fixed or priced at placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderDetails {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub lines: Vec<LineState>,
    pub totals: OrderTotals,
    pub tax_rate_bp: u32,
    pub shipping_address: Address,
    /// Cumulative capture per payment, as last reported.
    pub payments: BTreeMap<PaymentId, Money>,
    pub paid: Money,
    pub refunded: Money,
}

impl OrderDetails {
    pub fn line(&self, sku: &Sku) -> Option<&LineState> {
        self.lines.iter().find(|l| &l.line.sku == sku)
    }

    pub fn priced_lines(&self) -> Vec<OrderLine> {
        self.lines.iter().map(|l| l.line.clone()).collect()
    }
}

/// State of one order, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub status: OrderStatus,
    /// `None` until the order is placed.
    pub details: Option<OrderDetails>,
    /// Lines of each recorded shipment and whether it was delivered.
    pub shipments: BTreeMap<ShipmentId, (Vec<LineQuantity>, bool)>,
    pub shipped: BTreeMap<Sku, Quantity>,
    pub delivered: BTreeMap<Sku, Quantity>,
    /// Time of the latest delivery of each SKU; return windows run from it.
    pub last_delivered_at: BTreeMap<Sku, DateTime<Utc>>,
    /// Every unit is delivered or came back to the sender: nothing is on its way.
    pub fully_delivered: bool,
    /// Shipments that came back undelivered, and their units per SKU.
    #[serde(default)]
    pub returned_shipments: BTreeSet<ShipmentId>,
    #[serde(default)]
    pub returned_to_sender: BTreeMap<Sku, Quantity>,
    pub returns: BTreeMap<ReturnId, ReturnRecord>,
    pub refund_ids: BTreeSet<RefundId>,
}

impl Order {
    pub fn shipped_of(&self, sku: &Sku) -> Quantity {
        self.shipped.get(sku).copied().unwrap_or_default()
    }

    pub fn returned_to_sender_of(&self, sku: &Sku) -> Quantity {
        self.returned_to_sender
            .get(sku)
            .copied()
            .unwrap_or_default()
    }

    pub fn delivered_of(&self, sku: &Sku) -> Quantity {
        self.delivered.get(sku).copied().unwrap_or_default()
    }

    /// Units of `sku` in returns that were not rejected.
    pub fn returned_of(&self, sku: &Sku) -> Quantity {
        self.returns
            .values()
            .filter(|r| r.status != ReturnStatus::Rejected)
            .flat_map(|r| r.lines.iter())
            .filter(|l| &l.sku == sku)
            .fold(Quantity::ZERO, |acc, l| {
                acc.checked_add(l.quantity).unwrap_or(Quantity(u32::MAX))
            })
    }
}
