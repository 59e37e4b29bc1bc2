use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DeliveryFailureReason, ShipmentLine, TrackingStatus};
use crate::{OrderId, ShipmentId, WarehouseId};

/// Commands of the shipment aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShipmentCommand {
    CreateShipment(CreateShipment),
    ReviseShipment(ReviseShipment),
    PickShipment { at: DateTime<Utc> },
    PackShipment { at: DateTime<Utc> },
    CreateLabel(CreateLabel),
    DispatchShipment { at: DateTime<Utc> },
    UpdateTracking(UpdateTracking),
    ConfirmDelivery { at: DateTime<Utc> },
    ReportDeliveryFailure(ReportDeliveryFailure),
    ReturnToSender { at: DateTime<Utc> },
}

/// Plan a shipment of some order lines from one warehouse; every SKU once, each with units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateShipment {
    pub shipment_id: ShipmentId,
    pub order_id: OrderId,
    pub warehouse: WarehouseId,
    pub lines: Vec<ShipmentLine>,
    pub at: DateTime<Utc>,
}

/// Replace the lines of a shipment not yet picked (the order was edited). Every SKU once,
/// each with units; no lines at all leaves nothing to ship (the shipment cannot be
/// picked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviseShipment {
    pub lines: Vec<ShipmentLine>,
    pub at: DateTime<Utc>,
}

/// The carrier label was bought; the carrier and tracking number come from the carrier API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateLabel {
    pub carrier_code: String,
    pub tracking_number: String,
    /// Where the printable label is stored (URL or document reference).
    pub label_reference: String,
    pub at: DateTime<Utc>,
}

/// A carrier tracking webhook; `at` is the carrier's scan time, not the arrival time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateTracking {
    pub status: TrackingStatus,
    pub location: String,
    pub at: DateTime<Utc>,
}

/// The carrier could not deliver; a later tracking scan is the re-attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportDeliveryFailure {
    pub reason: DeliveryFailureReason,
    pub at: DateTime<Utc>,
}
