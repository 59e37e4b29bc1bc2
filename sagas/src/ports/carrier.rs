//! The carrier port: rate quotes, labels, tracking.

use std::future::Future;

use aggregates::{Address, Money, ReturnId, ShipmentId, WarehouseId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::PortError;

/// A bought label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub carrier_code: String,
    pub tracking_number: String,
    /// Where the printable label lives (URL or document reference).
    pub label_reference: String,
}

/// A price for sending a parcel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    pub carrier_code: String,
    pub service: String,
    pub price: Money,
}

/// Where a parcel is, as the carrier scans it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scan {
    InTransit,
    OutForDelivery,
    Delivered,
    Failed,
    /// The carrier gave up after a failed delivery and brought the parcel back to the
    /// warehouse it left.
    ReturnedToSender,
}

/// One tracking scan; `at` is the carrier's scan time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingUpdate {
    pub scan: Scan,
    pub location: String,
    pub at: DateTime<Utc>,
}

/// The carrier contract.
///
/// - `create_label` and `create_return_label` take an idempotency key: the same key
///   returns the same label and buys nothing again.
/// - `track` returns every scan so far, oldest first; the same scan is reported again
///   on every call (consumers are idempotent by scan and time). Carriers that push
///   scans send the same [`TrackingUpdate`]s as signed callbacks.
/// - An `Err` means the carrier could not answer; the call may be repeated.
pub trait Carrier: Send + Sync {
    fn quote(
        &self,
        from: &WarehouseId,
        to: &Address,
        parcels: u32,
    ) -> impl Future<Output = Result<Rate, PortError>> + Send;

    fn create_label(
        &self,
        key: Uuid,
        shipment_id: ShipmentId,
        from: &WarehouseId,
        to: &Address,
    ) -> impl Future<Output = Result<Label, PortError>> + Send;

    fn create_return_label(
        &self,
        key: Uuid,
        return_id: ReturnId,
        from: &Address,
        to: &WarehouseId,
    ) -> impl Future<Output = Result<Label, PortError>> + Send;

    fn track(
        &self,
        tracking_number: &str,
    ) -> impl Future<Output = Result<Vec<TrackingUpdate>, PortError>> + Send;
}

/// A carrier call a saga asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum CarrierRequest {
    Label {
        shipment_id: ShipmentId,
        from: WarehouseId,
        to: Address,
    },
    ReturnLabel {
        return_id: ReturnId,
        from: Address,
        to: WarehouseId,
    },
    Track {
        shipment_id: ShipmentId,
        tracking_number: String,
    },
}

/// The carrier's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarrierReply {
    Label(Label),
    Tracking(Vec<TrackingUpdate>),
}

/// Performs one request on `carrier`.
pub async fn perform<C: Carrier>(
    carrier: &C,
    key: Uuid,
    request: &CarrierRequest,
) -> Result<CarrierReply, PortError> {
    match request {
        CarrierRequest::Label {
            shipment_id,
            from,
            to,
        } => carrier
            .create_label(key, *shipment_id, from, to)
            .await
            .map(CarrierReply::Label),
        CarrierRequest::ReturnLabel {
            return_id,
            from,
            to,
        } => carrier
            .create_return_label(key, *return_id, from, to)
            .await
            .map(CarrierReply::Label),
        CarrierRequest::Track {
            tracking_number, ..
        } => carrier
            .track(tracking_number)
            .await
            .map(CarrierReply::Tracking),
    }
}
