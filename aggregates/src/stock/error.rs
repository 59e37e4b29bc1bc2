use chrono::{DateTime, Utc};

use super::AdjustmentReason;
use crate::{OrderId, Quantity, Sku, WarehouseId};

/// Why a stock command was refused. One variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    #[error("this stock record is for {expected}, not {got}")]
    SkuMismatch { expected: Sku, got: Sku },
    #[error("no stock has been recorded for this SKU yet")]
    NotTracked,
    #[error("quantity must be greater than zero")]
    ZeroQuantity,
    #[error("warehouse {0} holds no stock of this SKU")]
    UnknownWarehouse(WarehouseId),
    #[error("reason {reason:?} contradicts a delta of {delta}")]
    ReasonContradictsDelta {
        reason: AdjustmentReason,
        delta: i64,
    },
    #[error("on-hand in {warehouse} would be {would_be}, below the {reserved} reserved")]
    BelowReserved {
        warehouse: WarehouseId,
        would_be: i64,
        reserved: Quantity,
    },
    #[error("quantity out of range")]
    QuantityOverflow,
    #[error("requested {requested}, only {available} available and {backorder_allowance} may be backordered")]
    InsufficientStock {
        requested: Quantity,
        available: Quantity,
        backorder_allowance: Quantity,
    },
    #[error("the reservation expiry {expires_at} is not after {at}")]
    ExpiryNotInFuture {
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    #[error("no reservation for order {0}")]
    ReservationNotFound(OrderId),
    #[error("the reservation for order {0} is no longer active")]
    ReservationNotActive(OrderId),
    #[error(
        "the reservation for order {order_id} still waits for {backordered} backordered units"
    )]
    ReservationBackordered {
        order_id: OrderId,
        backordered: Quantity,
    },
    #[error("the reservation for order {order_id} expires at {expires_at}, not yet at {now}")]
    ReservationNotExpired {
        order_id: OrderId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("{backordered} units are backordered, more than the new limit {limit}")]
    BackorderLimitBelowOutstanding {
        limit: Quantity,
        backordered: Quantity,
    },
}
