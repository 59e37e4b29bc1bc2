use std::collections::BTreeSet;

use super::*;
use crate::Decider;

impl Decider for Shipment {
    type Command = ShipmentCommand;
    type Event = ShipmentEvent;
    type Error = ShipmentError;

    fn decide(&self, command: ShipmentCommand) -> Result<Vec<ShipmentEvent>, ShipmentError> {
        let (shipment_id, order_id, command) = match (self.id, self.order_id, command) {
            (None, _, ShipmentCommand::CreateShipment(c)) => return self.create(c),
            (Some(s), Some(o), command) => (s, o, command),
            _ => return Err(ShipmentError::NotFound),
        };
        let status = self.status;
        let event: ShipmentEvent = match command {
            ShipmentCommand::CreateShipment(_) => {
                return Err(ShipmentError::AlreadyCreated(shipment_id))
            }
            ShipmentCommand::ReviseShipment(c) => {
                if status != ShipmentStatus::AwaitingPick {
                    return Err(ShipmentError::NotAwaitingPick(status));
                }
                check_lines(&c.lines)?;
                if c.lines == self.lines {
                    return Ok(vec![]);
                }
                ShipmentRevised {
                    shipment_id,
                    order_id,
                    warehouse: self.warehouse.clone().ok_or(ShipmentError::NotFound)?,
                    previous_lines: self.lines.clone(),
                    lines: c.lines,
                    at: c.at,
                }
                .into()
            }
            ShipmentCommand::PickShipment { at } => {
                if status != ShipmentStatus::AwaitingPick {
                    return Err(ShipmentError::NotAwaitingPick(status));
                }
                if self.lines.is_empty() {
                    return Err(ShipmentError::NothingToShip);
                }
                ShipmentPicked {
                    shipment_id,
                    order_id,
                    at,
                }
                .into()
            }
            ShipmentCommand::PackShipment { at } => {
                if status != ShipmentStatus::Picked {
                    return Err(ShipmentError::NotPicked(status));
                }
                ShipmentPacked {
                    shipment_id,
                    order_id,
                    at,
                }
                .into()
            }
            ShipmentCommand::CreateLabel(c) => {
                if status != ShipmentStatus::Packed {
                    return Err(ShipmentError::NotPacked(status));
                }
                if c.carrier_code.trim().is_empty() {
                    return Err(ShipmentError::MissingCarrierCode);
                }
                if c.tracking_number.trim().is_empty() {
                    return Err(ShipmentError::MissingTrackingNumber);
                }
                ShipmentLabelCreated {
                    shipment_id,
                    order_id,
                    carrier_code: c.carrier_code,
                    tracking_number: c.tracking_number,
                    label_reference: c.label_reference,
                    at: c.at,
                }
                .into()
            }
            ShipmentCommand::DispatchShipment { at } => {
                if status != ShipmentStatus::Labelled {
                    return Err(ShipmentError::NotLabelled(status));
                }
                ShipmentDispatched {
                    shipment_id,
                    order_id,
                    carrier_code: self.carrier_code.clone(),
                    tracking_number: self.tracking_number.clone(),
                    at,
                }
                .into()
            }
            ShipmentCommand::UpdateTracking(c) => {
                // A new scan after a failed attempt is the re-attempt.
                if !(status.is_on_the_way() || status == ShipmentStatus::DeliveryFailed) {
                    return Err(ShipmentError::NotOnTheWay(status));
                }
                if self.seen_scans.contains(&(c.status, c.at)) {
                    return Ok(vec![]);
                }
                let current_status = if self.last_movement_at.is_some_and(|last| c.at < last) {
                    status
                } else {
                    match c.status {
                        TrackingStatus::InTransit => ShipmentStatus::InTransit,
                        TrackingStatus::OutForDelivery => ShipmentStatus::OutForDelivery,
                    }
                };
                ShipmentTrackingUpdated {
                    shipment_id,
                    order_id,
                    status: c.status,
                    location: c.location,
                    current_status,
                    at: c.at,
                }
                .into()
            }
            ShipmentCommand::ConfirmDelivery { at } => {
                if !status.is_on_the_way() {
                    return Err(ShipmentError::NotOnTheWay(status));
                }
                ShipmentDelivered {
                    shipment_id,
                    order_id,
                    lines: self.lines.clone(),
                    at,
                }
                .into()
            }
            ShipmentCommand::ReportDeliveryFailure(c) => {
                if !status.is_on_the_way() {
                    return Err(ShipmentError::NotOnTheWay(status));
                }
                ShipmentDeliveryFailed {
                    shipment_id,
                    order_id,
                    reason: c.reason,
                    attempt: self.failed_attempts.saturating_add(1),
                    at: c.at,
                }
                .into()
            }
            ShipmentCommand::ReturnToSender { at } => {
                if status != ShipmentStatus::DeliveryFailed {
                    return Err(ShipmentError::NoFailedDelivery(status));
                }
                ShipmentReturnedToSender {
                    shipment_id,
                    order_id,
                    warehouse: self.warehouse.clone().ok_or(ShipmentError::NotFound)?,
                    lines: self.lines.clone(),
                    failed_attempts: self.failed_attempts,
                    at,
                }
                .into()
            }
        };
        Ok(vec![event])
    }

    fn evolve(&mut self, event: &ShipmentEvent) {
        match event {
            ShipmentEvent::ShipmentCreated(e) => {
                self.id = Some(e.shipment_id);
                self.order_id = Some(e.order_id);
                self.warehouse = Some(e.warehouse.clone());
                self.lines = e.lines.clone();
                self.status = ShipmentStatus::AwaitingPick;
            }
            ShipmentEvent::ShipmentRevised(e) => self.lines = e.lines.clone(),
            ShipmentEvent::ShipmentPicked(_) => self.status = ShipmentStatus::Picked,
            ShipmentEvent::ShipmentPacked(_) => self.status = ShipmentStatus::Packed,
            ShipmentEvent::ShipmentLabelCreated(e) => {
                self.carrier_code = e.carrier_code.clone();
                self.tracking_number = e.tracking_number.clone();
                self.status = ShipmentStatus::Labelled;
            }
            ShipmentEvent::ShipmentDispatched(e) => {
                self.status = ShipmentStatus::Dispatched;
                self.last_movement_at = Some(e.at);
            }
            ShipmentEvent::ShipmentTrackingUpdated(e) => {
                self.seen_scans.insert((e.status, e.at));
                if e.current_status != self.status {
                    self.status = e.current_status;
                }
                self.last_movement_at = self.last_movement_at.max(Some(e.at));
            }
            ShipmentEvent::ShipmentDelivered(_) => self.status = ShipmentStatus::Delivered,
            ShipmentEvent::ShipmentDeliveryFailed(e) => {
                self.status = ShipmentStatus::DeliveryFailed;
                self.failed_attempts = e.attempt;
                self.last_movement_at = self.last_movement_at.max(Some(e.at));
            }
            ShipmentEvent::ShipmentReturnedToSender(_) => {
                self.status = ShipmentStatus::ReturnedToSender
            }
        }
    }
}

impl Shipment {
    fn create(&self, c: CreateShipment) -> Result<Vec<ShipmentEvent>, ShipmentError> {
        if c.warehouse.as_str().trim().is_empty() {
            return Err(ShipmentError::MissingWarehouse);
        }
        if c.lines.is_empty() {
            return Err(ShipmentError::NoLines);
        }
        check_lines(&c.lines)?;
        Ok(vec![ShipmentCreated {
            shipment_id: c.shipment_id,
            order_id: c.order_id,
            warehouse: c.warehouse,
            lines: c.lines,
            at: c.at,
        }
        .into()])
    }
}

/// Every SKU once, each with units.
fn check_lines(lines: &[ShipmentLine]) -> Result<(), ShipmentError> {
    let mut seen = BTreeSet::new();
    for line in lines {
        if line.quantity.get() == 0 {
            return Err(ShipmentError::ZeroQuantity(line.sku.clone()));
        }
        if !seen.insert(&line.sku) {
            return Err(ShipmentError::DuplicateLine(line.sku.clone()));
        }
    }
    Ok(())
}
