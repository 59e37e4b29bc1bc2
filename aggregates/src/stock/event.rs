use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{EventExample, OrderId, Quantity, Sku, WarehouseId};

crate::domain_events! {
    /// Events of the stock aggregate.
    pub enum StockEvent {
        StockReceived(StockReceived),
        StockAdjusted(StockAdjusted),
        StockReserved(StockReserved),
        StockReservationReleased(StockReservationReleased),
        StockReservationChanged(StockReservationChanged),
        StockReservationCommitted(StockReservationCommitted),
        StockReservationExpired(StockReservationExpired),
        StockBackorderFilled(StockBackorderFilled),
        StockBackorderLimitSet(StockBackorderLimitSet),
        LowStockThresholdSet(LowStockThresholdSet),
        LowStockThresholdCrossed(LowStockThresholdCrossed),
    }
}

/// Why on-hand stock was corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AdjustmentReason {
    /// Units found unsellable; the delta must be negative.
    Damaged,
    /// Units missing (theft, loss); the delta must be negative.
    Lost,
    /// Units turned up that were not on the books; the delta must be positive.
    Found,
    /// A stock count disagreed with the books; either sign.
    CountCorrection,
}

/// Levels of one warehouse after an event. `available = on_hand - reserved`, never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct WarehouseLevel {
    pub on_hand: Quantity,
    pub reserved: Quantity,
    pub available: Quantity,
}

/// Levels of the SKU after an event, per warehouse and in total.
///
/// `backordered` is owed at SKU level (not held in any warehouse), so
/// `available = on_hand - reserved - backordered` may be negative, down to minus the
/// backorder limit.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StockLevels {
    pub warehouses: BTreeMap<WarehouseId, WarehouseLevel>,
    pub on_hand: u64,
    pub reserved: u64,
    pub backordered: Quantity,
    pub available: i64,
}

/// Units of a reservation placed in (or taken from) one warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WarehouseAllocation {
    pub warehouse: WarehouseId,
    pub quantity: Quantity,
}

/// Goods arrived in a warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StockReceived {
    pub sku: Sku,
    pub warehouse: WarehouseId,
    pub quantity: Quantity,
    pub levels: StockLevels,
    pub at: DateTime<Utc>,
}

/// On-hand stock of a warehouse was corrected by a signed delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StockAdjusted {
    pub sku: Sku,
    pub warehouse: WarehouseId,
    pub delta: i64,
    pub reason: AdjustmentReason,
    pub levels: StockLevels,
    pub at: DateTime<Utc>,
}

/// An order line was reserved; `allocation` lists the warehouses in the order they were
/// chosen, `backordered` the units that could not be allocated yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StockReserved {
    pub sku: Sku,
    pub order_id: OrderId,
    pub quantity: Quantity,
    pub allocation: Vec<WarehouseAllocation>,
    pub backordered: Quantity,
    /// The preference order from the command, reused when backorders are filled later.
    pub preferred_warehouses: Vec<WarehouseId>,
    pub expires_at: DateTime<Utc>,
    pub levels: StockLevels,
    pub at: DateTime<Utc>,
}

/// A reservation was given back; its allocated units are free again and its backorder
/// is cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StockReservationReleased {
    pub sku: Sku,
    pub order_id: OrderId,
    pub freed: Vec<WarehouseAllocation>,
    pub backorder_cancelled: Quantity,
    pub levels: StockLevels,
    pub at: DateTime<Utc>,
}

/// An active reservation was set to a new quantity (the order line was edited):
/// `allocation` and `backordered` are the reservation's after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StockReservationChanged {
    pub sku: Sku,
    pub order_id: OrderId,
    pub previous_quantity: Quantity,
    pub quantity: Quantity,
    pub allocation: Vec<WarehouseAllocation>,
    pub backordered: Quantity,
    pub levels: StockLevels,
    pub at: DateTime<Utc>,
}

/// The reserved units left the warehouses with a shipment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StockReservationCommitted {
    pub sku: Sku,
    pub order_id: OrderId,
    pub shipped: Vec<WarehouseAllocation>,
    pub levels: StockLevels,
    pub at: DateTime<Utc>,
}

/// A reservation ran past its expiry and was dropped; like a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StockReservationExpired {
    pub sku: Sku,
    pub order_id: OrderId,
    pub freed: Vec<WarehouseAllocation>,
    pub backorder_cancelled: Quantity,
    pub expires_at: DateTime<Utc>,
    pub levels: StockLevels,
    pub at: DateTime<Utc>,
}

/// Stock that became free was allocated to a backordered reservation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StockBackorderFilled {
    pub sku: Sku,
    pub order_id: OrderId,
    pub allocation: Vec<WarehouseAllocation>,
    pub still_backordered: Quantity,
    pub levels: StockLevels,
    pub at: DateTime<Utc>,
}

/// The number of units that may be backordered in total changed (zero: no backorders).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StockBackorderLimitSet {
    pub sku: Sku,
    pub limit: Quantity,
    pub backordered: Quantity,
    pub at: DateTime<Utc>,
}

/// The low-stock alert threshold changed (`None`: no alerts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LowStockThresholdSet {
    pub sku: Sku,
    pub threshold: Option<Quantity>,
    pub available: i64,
    pub at: DateTime<Utc>,
}

/// Available stock dropped to or below the threshold. Raised once; raised again only after
/// available stock has been back above the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LowStockThresholdCrossed {
    pub sku: Sku,
    pub threshold: Quantity,
    pub levels: StockLevels,
    pub at: DateTime<Utc>,
}

pub(crate) fn example_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 9, 30, 0).unwrap()
}

fn example_sku() -> Sku {
    Sku::parse("TSHIRT-RED-M").unwrap()
}

fn example_order() -> OrderId {
    OrderId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0101,
    ))
}

fn example_levels(ber: (u32, u32), ham: (u32, u32), backordered: u32) -> StockLevels {
    let level = |(on_hand, reserved): (u32, u32)| WarehouseLevel {
        on_hand: Quantity(on_hand),
        reserved: Quantity(reserved),
        available: Quantity(on_hand - reserved),
    };
    let on_hand = u64::from(ber.0 + ham.0);
    let reserved = u64::from(ber.1 + ham.1);
    StockLevels {
        warehouses: BTreeMap::from([
            (WarehouseId::new("BER-1"), level(ber)),
            (WarehouseId::new("HAM-1"), level(ham)),
        ]),
        on_hand,
        reserved,
        backordered: Quantity(backordered),
        available: on_hand as i64 - reserved as i64 - i64::from(backordered),
    }
}

fn alloc(warehouse: &str, quantity: u32) -> WarehouseAllocation {
    WarehouseAllocation {
        warehouse: WarehouseId::new(warehouse),
        quantity: Quantity(quantity),
    }
}

impl EventExample for StockReceived {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            warehouse: WarehouseId::new("HAM-1"),
            quantity: Quantity(20),
            levels: example_levels((40, 5), (20, 0), 0),
            at: example_time(),
        }
    }
}

impl EventExample for StockAdjusted {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            warehouse: WarehouseId::new("BER-1"),
            delta: -2,
            reason: AdjustmentReason::Damaged,
            levels: example_levels((38, 5), (20, 0), 0),
            at: example_time(),
        }
    }
}

impl EventExample for StockReserved {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            order_id: example_order(),
            quantity: Quantity(12),
            allocation: vec![alloc("HAM-1", 12)],
            backordered: Quantity(0),
            preferred_warehouses: vec![WarehouseId::new("HAM-1")],
            expires_at: example_time() + chrono::Duration::minutes(30),
            levels: example_levels((38, 5), (20, 12), 0),
            at: example_time(),
        }
    }
}

impl EventExample for StockReservationReleased {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            order_id: example_order(),
            freed: vec![alloc("HAM-1", 12)],
            backorder_cancelled: Quantity(0),
            levels: example_levels((38, 5), (20, 0), 0),
            at: example_time(),
        }
    }
}

impl EventExample for StockReservationChanged {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            order_id: example_order(),
            previous_quantity: Quantity(12),
            quantity: Quantity(14),
            allocation: vec![alloc("HAM-1", 14)],
            backordered: Quantity(0),
            levels: example_levels((38, 5), (20, 14), 0),
            at: example_time(),
        }
    }
}

impl EventExample for StockReservationCommitted {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            order_id: example_order(),
            shipped: vec![alloc("HAM-1", 12)],
            levels: example_levels((38, 5), (8, 0), 0),
            at: example_time(),
        }
    }
}

impl EventExample for StockReservationExpired {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            order_id: example_order(),
            freed: vec![alloc("HAM-1", 12)],
            backorder_cancelled: Quantity(0),
            expires_at: example_time(),
            levels: example_levels((38, 5), (20, 0), 0),
            at: example_time() + chrono::Duration::minutes(1),
        }
    }
}

impl EventExample for StockBackorderFilled {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            order_id: example_order(),
            allocation: vec![alloc("BER-1", 3)],
            still_backordered: Quantity(1),
            levels: example_levels((3, 3), (0, 0), 1),
            at: example_time(),
        }
    }
}

impl EventExample for StockBackorderLimitSet {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            limit: Quantity(50),
            backordered: Quantity(0),
            at: example_time(),
        }
    }
}

impl EventExample for LowStockThresholdSet {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            threshold: Some(Quantity(10)),
            available: 53,
            at: example_time(),
        }
    }
}

impl EventExample for LowStockThresholdCrossed {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            threshold: Quantity(10),
            levels: example_levels((8, 0), (2, 1), 0),
            at: example_time(),
        }
    }
}
