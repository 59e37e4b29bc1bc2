use chrono::Duration;
use cqrs_es::test::TestFramework;

use super::event::{example_order_id, example_shipment_id, example_time};
use super::*;
use crate::{EventExample, Quantity, Sku, WarehouseId};

type Given = TestFramework<Shipment>;

fn create() -> CreateShipment {
    let e = ShipmentCreated::example();
    CreateShipment {
        shipment_id: e.shipment_id,
        order_id: e.order_id,
        warehouse: e.warehouse,
        lines: e.lines,
        at: e.at,
    }
}

fn created() -> ShipmentEvent {
    ShipmentCreated::example().into()
}

fn picked() -> Vec<ShipmentEvent> {
    vec![created(), ShipmentPicked::example().into()]
}

fn packed() -> Vec<ShipmentEvent> {
    let mut e = picked();
    e.push(ShipmentPacked::example().into());
    e
}

fn labelled() -> Vec<ShipmentEvent> {
    let mut e = packed();
    e.push(ShipmentLabelCreated::example().into());
    e
}

fn dispatched() -> Vec<ShipmentEvent> {
    let mut e = labelled();
    e.push(ShipmentDispatched::example().into());
    e
}

fn failed() -> Vec<ShipmentEvent> {
    let mut e = dispatched();
    e.push(ShipmentDeliveryFailed::example().into());
    e
}

fn label() -> CreateLabel {
    let e = ShipmentLabelCreated::example();
    CreateLabel {
        carrier_code: e.carrier_code,
        tracking_number: e.tracking_number,
        label_reference: e.label_reference,
        at: e.at,
    }
}

fn scan(status: TrackingStatus, minutes: i64) -> UpdateTracking {
    UpdateTracking {
        status,
        location: "Leipzig hub".into(),
        at: example_time() + Duration::minutes(minutes),
    }
}

fn t() -> chrono::DateTime<chrono::Utc> {
    example_time()
}

#[test]
fn creates_a_shipment() {
    Given::with(())
        .given_no_previous_events()
        .when(ShipmentCommand::CreateShipment(create()))
        .then_expect_events(vec![created()]);
}

#[test]
fn a_shipment_is_created_once() {
    Given::with(())
        .given(vec![created()])
        .when(ShipmentCommand::CreateShipment(create()))
        .then_expect_error(ShipmentError::AlreadyCreated(example_shipment_id()));
}

#[test]
fn commands_need_an_existing_shipment() {
    Given::with(())
        .given_no_previous_events()
        .when(ShipmentCommand::PickShipment { at: t() })
        .then_expect_error(ShipmentError::NotFound);
}

#[test]
fn a_shipment_needs_lines() {
    let mut c = create();
    c.lines.clear();
    Given::with(())
        .given_no_previous_events()
        .when(ShipmentCommand::CreateShipment(c))
        .then_expect_error(ShipmentError::NoLines);
}

#[test]
fn a_shipment_line_needs_a_quantity() {
    let mut c = create();
    c.lines[0].quantity = Quantity::ZERO;
    let sku = c.lines[0].sku.clone();
    Given::with(())
        .given_no_previous_events()
        .when(ShipmentCommand::CreateShipment(c))
        .then_expect_error(ShipmentError::ZeroQuantity(sku));
}

#[test]
fn a_sku_appears_on_one_line_only() {
    let mut c = create();
    c.lines[1].sku = c.lines[0].sku.clone();
    let sku = c.lines[0].sku.clone();
    Given::with(())
        .given_no_previous_events()
        .when(ShipmentCommand::CreateShipment(c))
        .then_expect_error(ShipmentError::DuplicateLine(sku));
}

#[test]
fn a_shipment_needs_a_warehouse() {
    let mut c = create();
    c.warehouse = WarehouseId::new(" ");
    Given::with(())
        .given_no_previous_events()
        .when(ShipmentCommand::CreateShipment(c))
        .then_expect_error(ShipmentError::MissingWarehouse);
}

#[test]
fn picking_happens_once() {
    Given::with(())
        .given(picked())
        .when(ShipmentCommand::PickShipment { at: t() })
        .then_expect_error(ShipmentError::NotAwaitingPick(ShipmentStatus::Picked));
}

#[test]
fn packing_needs_picking() {
    Given::with(())
        .given(vec![created()])
        .when(ShipmentCommand::PackShipment { at: t() })
        .then_expect_error(ShipmentError::NotPicked(ShipmentStatus::AwaitingPick));
}

#[test]
fn a_label_needs_a_packed_parcel() {
    Given::with(())
        .given(picked())
        .when(ShipmentCommand::CreateLabel(label()))
        .then_expect_error(ShipmentError::NotPacked(ShipmentStatus::Picked));
}

#[test]
fn a_label_needs_a_carrier() {
    let mut c = label();
    c.carrier_code = String::new();
    Given::with(())
        .given(packed())
        .when(ShipmentCommand::CreateLabel(c))
        .then_expect_error(ShipmentError::MissingCarrierCode);
}

#[test]
fn a_label_needs_a_tracking_number() {
    let mut c = label();
    c.tracking_number = " ".into();
    Given::with(())
        .given(packed())
        .when(ShipmentCommand::CreateLabel(c))
        .then_expect_error(ShipmentError::MissingTrackingNumber);
}

#[test]
fn dispatch_needs_a_label() {
    Given::with(())
        .given(packed())
        .when(ShipmentCommand::DispatchShipment { at: t() })
        .then_expect_error(ShipmentError::NotLabelled(ShipmentStatus::Packed));
}

#[test]
fn the_happy_path_reaches_delivery() {
    Given::with(())
        .given(labelled())
        .when(ShipmentCommand::DispatchShipment { at: t() })
        .then_expect_events(vec![ShipmentDispatched::example().into()]);
    let mut events = dispatched();
    events.push(ShipmentTrackingUpdated::example().into());
    Given::with(())
        .given(events)
        .when(ShipmentCommand::ConfirmDelivery { at: t() })
        .then_expect_events(vec![ShipmentDelivered::example().into()]);
}

#[test]
fn tracking_needs_a_dispatched_parcel() {
    Given::with(())
        .given(labelled())
        .when(ShipmentCommand::UpdateTracking(scan(
            TrackingStatus::InTransit,
            1,
        )))
        .then_expect_error(ShipmentError::NotOnTheWay(ShipmentStatus::Labelled));
}

#[test]
fn a_delivered_parcel_cannot_be_delivered_again() {
    let mut events = dispatched();
    events.push(ShipmentDelivered::example().into());
    Given::with(())
        .given(events)
        .when(ShipmentCommand::ConfirmDelivery { at: t() })
        .then_expect_error(ShipmentError::NotOnTheWay(ShipmentStatus::Delivered));
}

#[test]
fn a_failed_delivery_needs_a_parcel_on_the_way() {
    Given::with(())
        .given(failed())
        .when(ShipmentCommand::ReportDeliveryFailure(
            ReportDeliveryFailure {
                reason: DeliveryFailureReason::Refused,
                at: t(),
            },
        ))
        .then_expect_error(ShipmentError::NotOnTheWay(ShipmentStatus::DeliveryFailed));
}

#[test]
fn only_a_failed_delivery_goes_back_to_the_sender() {
    Given::with(())
        .given(dispatched())
        .when(ShipmentCommand::ReturnToSender { at: t() })
        .then_expect_error(ShipmentError::NoFailedDelivery(ShipmentStatus::Dispatched));
    let mut e = ShipmentReturnedToSender::example();
    e.failed_attempts = 1;
    Given::with(())
        .given(failed())
        .when(ShipmentCommand::ReturnToSender { at: t() })
        .then_expect_events(vec![e.into()]);
}

#[test]
fn a_failed_delivery_is_re_attempted_by_a_new_scan() {
    let mut events = failed();
    let c = scan(TrackingStatus::OutForDelivery, 60);
    let update = ShipmentTrackingUpdated {
        shipment_id: example_shipment_id(),
        order_id: example_order_id(),
        status: TrackingStatus::OutForDelivery,
        location: c.location.clone(),
        current_status: ShipmentStatus::OutForDelivery,
        at: c.at,
    };
    Given::with(())
        .given(events.clone())
        .when(ShipmentCommand::UpdateTracking(c))
        .then_expect_events(vec![update.clone().into()]);
    events.push(update.into());
    Given::with(())
        .given(events.clone())
        .when(ShipmentCommand::ReportDeliveryFailure(
            ReportDeliveryFailure {
                reason: DeliveryFailureReason::RecipientAbsent,
                at: t() + Duration::hours(3),
            },
        ))
        .then_expect_events(vec![ShipmentDeliveryFailed {
            shipment_id: example_shipment_id(),
            order_id: example_order_id(),
            reason: DeliveryFailureReason::RecipientAbsent,
            attempt: 2,
            at: t() + Duration::hours(3),
        }
        .into()]);
}

#[test]
fn tracking_updates_are_idempotent_by_status_and_time() {
    let mut events = dispatched();
    events.push(ShipmentTrackingUpdated::example().into());
    Given::with(())
        .given(events)
        .when(ShipmentCommand::UpdateTracking(scan(
            TrackingStatus::InTransit,
            0,
        )))
        .then_expect_events(vec![]);
}

#[test]
fn a_late_scan_is_history_and_does_not_move_the_parcel_back() {
    let mut events = dispatched();
    let out = ShipmentTrackingUpdated {
        status: TrackingStatus::OutForDelivery,
        current_status: ShipmentStatus::OutForDelivery,
        at: t() + Duration::hours(2),
        ..ShipmentTrackingUpdated::example()
    };
    events.push(out.into());
    let late = scan(TrackingStatus::InTransit, 30);
    Given::with(())
        .given(events)
        .when(ShipmentCommand::UpdateTracking(late.clone()))
        .then_expect_events(vec![ShipmentTrackingUpdated {
            status: TrackingStatus::InTransit,
            current_status: ShipmentStatus::OutForDelivery,
            at: late.at,
            ..ShipmentTrackingUpdated::example()
        }
        .into()]);
}

#[test]
fn delivery_carries_the_lines_for_the_order() {
    let mut state = Shipment::default();
    for e in dispatched() {
        crate::Decider::evolve(&mut state, &e);
    }
    let events =
        crate::Decider::decide(&state, ShipmentCommand::ConfirmDelivery { at: t() }).unwrap();
    match &events[..] {
        [ShipmentEvent::ShipmentDelivered(e)] => {
            assert_eq!(e.lines.len(), 2);
            assert_eq!(e.lines[0].sku, Sku::parse("TSHIRT-RED-M").unwrap());
            assert_eq!(e.lines[0].quantity, Quantity(2));
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn revise(lines: Vec<ShipmentLine>) -> ShipmentCommand {
    ShipmentCommand::ReviseShipment(ReviseShipment { lines, at: t() })
}

#[test]
fn a_shipment_not_yet_picked_is_revised_and_an_emptied_one_cannot_be_picked() {
    let created = ShipmentCreated::example();
    let mut lines = created.lines.clone();
    lines[0].quantity = Quantity(3);
    Given::with(())
        .given(vec![created.clone().into()])
        .when(revise(lines.clone()))
        .then_expect_events(vec![ShipmentRevised {
            shipment_id: created.shipment_id,
            order_id: created.order_id,
            warehouse: created.warehouse.clone(),
            previous_lines: created.lines.clone(),
            lines,
            at: t(),
        }
        .into()]);
    Given::with(())
        .given(vec![created.clone().into()])
        .when(revise(created.lines.clone()))
        .then_expect_events(vec![]);
    let emptied = ShipmentRevised {
        shipment_id: created.shipment_id,
        order_id: created.order_id,
        warehouse: created.warehouse.clone(),
        previous_lines: created.lines.clone(),
        lines: vec![],
        at: t(),
    };
    Given::with(())
        .given(vec![created.clone().into(), emptied.into()])
        .when(ShipmentCommand::PickShipment { at: t() })
        .then_expect_error(ShipmentError::NothingToShip);
    Given::with(())
        .given(picked())
        .when(revise(vec![]))
        .then_expect_error(ShipmentError::NotAwaitingPick(ShipmentStatus::Picked));
}
