use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AdjustmentReason;
use crate::{OrderId, Quantity, Sku, WarehouseId};

/// Commands of the stock aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StockCommand {
    ReceiveStock(ReceiveStock),
    AdjustStock(AdjustStock),
    ReserveStock(ReserveStock),
    ReleaseReservation(ReleaseReservation),
    ChangeReservation(ChangeReservation),
    CommitReservation(CommitReservation),
    ExpireReservation(ExpireReservation),
    SetBackorderLimit(SetBackorderLimit),
    SetLowStockThreshold(SetLowStockThreshold),
}

/// Goods arrived in a warehouse; creates the warehouse entry on first receipt. May start
/// the stream of the SKU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiveStock {
    pub sku: Sku,
    pub warehouse: WarehouseId,
    pub quantity: Quantity,
    pub at: DateTime<Utc>,
}

/// A signed correction of on-hand stock in one warehouse. On-hand may never drop below
/// what is reserved in that warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdjustStock {
    pub warehouse: WarehouseId,
    pub delta: i64,
    pub reason: AdjustmentReason,
    pub at: DateTime<Utc>,
}

/// Reserve one order line. A second reservation for the same order id changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReserveStock {
    pub order_id: OrderId,
    pub quantity: Quantity,
    /// Warehouses to try first, in order; the others follow in warehouse-id order.
    pub preferred_warehouses: Vec<WarehouseId>,
    /// After this instant the reservation may be expired.
    pub expires_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// Set an active reservation to a new quantity (an order line was edited). An increase
/// is allocated like a reservation, warehouses already holding the order's units first,
/// and may be backordered within the limit; a decrease cancels backordered units first,
/// then frees held units (from the warehouse holding the fewest first). The same
/// quantity again changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeReservation {
    pub order_id: OrderId,
    pub quantity: Quantity,
    pub at: DateTime<Utc>,
}

/// Give reserved stock back. Unknown or no longer active reservations: no-op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseReservation {
    pub order_id: OrderId,
    pub at: DateTime<Utc>,
}

/// The reserved goods left the warehouses (shipment): on-hand and reserved decrease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitReservation {
    pub order_id: OrderId,
    pub at: DateTime<Utc>,
}

/// Drop a reservation whose expiry has passed at `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpireReservation {
    pub order_id: OrderId,
    pub now: DateTime<Utc>,
}

/// How many units of this SKU may be backordered in total; zero forbids backorders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetBackorderLimit {
    pub sku: Sku,
    pub limit: Quantity,
    pub at: DateTime<Utc>,
}

/// Alert when SKU-level available stock drops to or below `threshold`; `None` disables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetLowStockThreshold {
    pub sku: Sku,
    pub threshold: Option<Quantity>,
    pub at: DateTime<Utc>,
}
