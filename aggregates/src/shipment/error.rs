use super::ShipmentStatus;
use crate::{ShipmentId, Sku};

/// Why a shipment command was refused. One variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShipmentError {
    #[error("shipment {0} already exists")]
    AlreadyCreated(ShipmentId),
    #[error("the shipment does not exist")]
    NotFound,
    #[error("a shipment needs at least one line")]
    NoLines,
    #[error("line {0} has a zero quantity")]
    ZeroQuantity(Sku),
    #[error("SKU {0} appears on more than one line")]
    DuplicateLine(Sku),
    #[error("the warehouse code must not be empty")]
    MissingWarehouse,
    #[error("only a shipment waiting to be picked can be picked (it is {0:?})")]
    NotAwaitingPick(ShipmentStatus),
    #[error("the shipment has nothing left to ship")]
    NothingToShip,
    #[error("only a picked shipment can be packed (it is {0:?})")]
    NotPicked(ShipmentStatus),
    #[error("a label is created for a packed shipment only (it is {0:?})")]
    NotPacked(ShipmentStatus),
    #[error("the carrier code must not be empty")]
    MissingCarrierCode,
    #[error("the tracking number must not be empty")]
    MissingTrackingNumber,
    #[error("only a labelled shipment can be dispatched (it is {0:?})")]
    NotLabelled(ShipmentStatus),
    #[error("tracking and delivery need a dispatched shipment still on its way (it is {0:?})")]
    NotOnTheWay(ShipmentStatus),
    #[error("only a shipment whose delivery failed can be returned to the sender (it is {0:?})")]
    NoFailedDelivery(ShipmentStatus),
}
