use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ShipmentLine, TrackingStatus};
use crate::{OrderId, ShipmentId, WarehouseId};

/// Where a shipment is in its journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum ShipmentStatus {
    /// No shipment yet (the state before `ShipmentCreated`).
    #[default]
    NotCreated,
    AwaitingPick,
    Picked,
    Packed,
    Labelled,
    Dispatched,
    InTransit,
    OutForDelivery,
    DeliveryFailed,
    Delivered,
    ReturnedToSender,
}

impl ShipmentStatus {
    /// Dispatched and neither delivered, failed nor returned.
    pub fn is_on_the_way(self) -> bool {
        matches!(
            self,
            Self::Dispatched | Self::InTransit | Self::OutForDelivery
        )
    }
}

/// State of one shipment, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    pub id: Option<ShipmentId>,
    pub order_id: Option<OrderId>,
    pub warehouse: Option<WarehouseId>,
    pub lines: Vec<ShipmentLine>,
    pub status: ShipmentStatus,
    pub carrier_code: String,
    pub tracking_number: String,
    /// Time of the latest movement (dispatch, scan or failed attempt).
    pub last_movement_at: Option<DateTime<Utc>>,
    /// Tracking scans already recorded, for idempotency.
    pub seen_scans: BTreeSet<(TrackingStatus, DateTime<Utc>)>,
    pub failed_attempts: u32,
}
