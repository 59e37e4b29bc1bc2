use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ShipmentStatus;
use crate::{EventExample, OrderId, Quantity, ShipmentId, Sku, WarehouseId};

crate::domain_events! {
    /// Events of the shipment aggregate.
    pub enum ShipmentEvent {
        ShipmentCreated(ShipmentCreated),
        ShipmentRevised(ShipmentRevised),
        ShipmentPicked(ShipmentPicked),
        ShipmentPacked(ShipmentPacked),
        ShipmentLabelCreated(ShipmentLabelCreated),
        ShipmentDispatched(ShipmentDispatched),
        ShipmentTrackingUpdated(ShipmentTrackingUpdated),
        ShipmentDelivered(ShipmentDelivered),
        ShipmentDeliveryFailed(ShipmentDeliveryFailed),
        ShipmentReturnedToSender(ShipmentReturnedToSender),
    }
}

/// Units of one SKU in a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShipmentLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// A carrier scan status reported between dispatch and delivery.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum TrackingStatus {
    InTransit,
    OutForDelivery,
}

/// Why the carrier could not hand the parcel over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeliveryFailureReason {
    RecipientAbsent,
    AddressNotFound,
    Refused,
    AccessDenied,
    Damaged,
}

/// A shipment of some order lines was planned from one warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShipmentCreated {
    pub shipment_id: ShipmentId,
    pub order_id: OrderId,
    pub warehouse: WarehouseId,
    pub lines: Vec<ShipmentLine>,
    pub at: DateTime<Utc>,
}

/// The lines of a shipment not yet picked were replaced (the order was edited); no
/// lines means nothing is left to ship from this warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShipmentRevised {
    pub shipment_id: ShipmentId,
    pub order_id: OrderId,
    pub warehouse: WarehouseId,
    pub previous_lines: Vec<ShipmentLine>,
    pub lines: Vec<ShipmentLine>,
    pub at: DateTime<Utc>,
}

/// The lines were picked from the shelves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShipmentPicked {
    pub shipment_id: ShipmentId,
    pub order_id: OrderId,
    pub at: DateTime<Utc>,
}

/// The parcel was packed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShipmentPacked {
    pub shipment_id: ShipmentId,
    pub order_id: OrderId,
    pub at: DateTime<Utc>,
}

/// A carrier label was bought for the parcel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShipmentLabelCreated {
    pub shipment_id: ShipmentId,
    pub order_id: OrderId,
    pub carrier_code: String,
    pub tracking_number: String,
    pub label_reference: String,
    pub at: DateTime<Utc>,
}

/// The carrier collected the parcel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShipmentDispatched {
    pub shipment_id: ShipmentId,
    pub order_id: OrderId,
    pub carrier_code: String,
    pub tracking_number: String,
    pub at: DateTime<Utc>,
}

/// The carrier reported a scan. `current_status` is the shipment status after the scan:
/// a scan older than the latest known movement is kept as history but changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShipmentTrackingUpdated {
    pub shipment_id: ShipmentId,
    pub order_id: OrderId,
    pub status: TrackingStatus,
    pub location: String,
    pub current_status: ShipmentStatus,
    pub at: DateTime<Utc>,
}

/// The parcel reached the customer; the lines let the order count delivered units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShipmentDelivered {
    pub shipment_id: ShipmentId,
    pub order_id: OrderId,
    pub lines: Vec<ShipmentLine>,
    pub at: DateTime<Utc>,
}

/// A delivery attempt failed; `attempt` counts the failed attempts so far (1-based).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShipmentDeliveryFailed {
    pub shipment_id: ShipmentId,
    pub order_id: OrderId,
    pub reason: DeliveryFailureReason,
    pub attempt: u32,
    pub at: DateTime<Utc>,
}

/// The carrier gave up and sent the parcel back to the warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShipmentReturnedToSender {
    pub shipment_id: ShipmentId,
    pub order_id: OrderId,
    pub warehouse: WarehouseId,
    pub lines: Vec<ShipmentLine>,
    pub failed_attempts: u32,
    pub at: DateTime<Utc>,
}

pub(crate) fn example_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 3, 8, 15, 0).unwrap()
}

pub(crate) fn example_shipment_id() -> ShipmentId {
    ShipmentId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0005_0001,
    ))
}

pub(crate) fn example_order_id() -> OrderId {
    OrderId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0003_0001,
    ))
}

fn example_lines() -> Vec<ShipmentLine> {
    vec![
        ShipmentLine {
            sku: Sku::parse("TSHIRT-RED-M").unwrap(),
            quantity: Quantity(2),
        },
        ShipmentLine {
            sku: Sku::parse("MUG-WHITE").unwrap(),
            quantity: Quantity(1),
        },
    ]
}

impl EventExample for ShipmentCreated {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            order_id: example_order_id(),
            warehouse: WarehouseId::new("BER-1"),
            lines: example_lines(),
            at: example_time(),
        }
    }
}

impl EventExample for ShipmentRevised {
    fn example() -> Self {
        let mut lines = example_lines();
        lines[0].quantity = Quantity(3);
        Self {
            shipment_id: example_shipment_id(),
            order_id: example_order_id(),
            warehouse: WarehouseId::new("BER-1"),
            previous_lines: example_lines(),
            lines,
            at: example_time(),
        }
    }
}

impl EventExample for ShipmentPicked {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            order_id: example_order_id(),
            at: example_time(),
        }
    }
}

impl EventExample for ShipmentPacked {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            order_id: example_order_id(),
            at: example_time(),
        }
    }
}

impl EventExample for ShipmentLabelCreated {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            order_id: example_order_id(),
            carrier_code: "dhl".into(),
            tracking_number: "JJD0099999999".into(),
            label_reference: "https://labels.example.invalid/JJD0099999999.pdf".into(),
            at: example_time(),
        }
    }
}

impl EventExample for ShipmentDispatched {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            order_id: example_order_id(),
            carrier_code: "dhl".into(),
            tracking_number: "JJD0099999999".into(),
            at: example_time(),
        }
    }
}

impl EventExample for ShipmentTrackingUpdated {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            order_id: example_order_id(),
            status: TrackingStatus::InTransit,
            location: "Leipzig hub".into(),
            current_status: ShipmentStatus::InTransit,
            at: example_time(),
        }
    }
}

impl EventExample for ShipmentDelivered {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            order_id: example_order_id(),
            lines: example_lines(),
            at: example_time(),
        }
    }
}

impl EventExample for ShipmentDeliveryFailed {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            order_id: example_order_id(),
            reason: DeliveryFailureReason::RecipientAbsent,
            attempt: 1,
            at: example_time(),
        }
    }
}

impl EventExample for ShipmentReturnedToSender {
    fn example() -> Self {
        Self {
            shipment_id: example_shipment_id(),
            order_id: example_order_id(),
            warehouse: WarehouseId::new("BER-1"),
            lines: example_lines(),
            failed_attempts: 2,
            at: example_time(),
        }
    }
}
