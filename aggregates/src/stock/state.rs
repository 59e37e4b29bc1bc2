use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StockLevels;
use crate::{OrderId, Quantity, Sku, WarehouseId};

/// State of the stock of one SKU, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stock {
    /// Set by the first event; `None` means nothing was ever recorded.
    pub sku: Option<Sku>,
    pub levels: StockLevels,
    pub reservations: BTreeMap<OrderId, Reservation>,
    /// Units that may be backordered in total; zero forbids backorders.
    pub backorder_limit: Quantity,
    pub low_stock_threshold: Option<Quantity>,
    /// A crossing was announced and available stock has not been above the threshold since.
    pub low_stock_alerted: bool,
    /// Reservation sequence: backorders are filled in the order they were taken.
    pub(crate) next_sequence: u64,
}

/// One order's reservation of this SKU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub sequence: u64,
    pub quantity: Quantity,
    /// Units held per warehouse while active.
    pub allocation: BTreeMap<WarehouseId, Quantity>,
    /// Units still owed (not yet allocated) while active.
    pub backordered: Quantity,
    pub preferred_warehouses: Vec<WarehouseId>,
    pub expires_at: DateTime<Utc>,
    pub status: ReservationStatus,
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservationStatus {
    Active,
    Committed,
    Released,
    Expired,
}

impl Stock {
    pub fn exists(&self) -> bool {
        self.sku.is_some()
    }

    /// The reservation of `order_id` if it still holds stock.
    pub fn active_reservation(&self, order_id: &OrderId) -> Option<&Reservation> {
        self.reservations
            .get(order_id)
            .filter(|r| r.status == ReservationStatus::Active)
    }
}
