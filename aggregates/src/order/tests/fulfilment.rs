//! Shipments (partial and split) and deliveries.

use super::fixtures::*;

#[test]
fn records_a_shipment_of_everything() {
    Given::with(())
        .given(confirmed())
        .when(ship(example_shipment_id(), all_lines()))
        .then_expect_events(vec![OrderShipmentRecorded::example().into()]);
}

#[test]
fn a_split_shipment_delivers_the_order_when_the_last_part_arrives() {
    let first = OrderShipmentRecorded {
        shipment_id: shipment_id(1),
        lines: vec![lq(tshirt(), 1)],
        shipped_totals: vec![lq(tshirt(), 1), lq(mug(), 0)],
        fully_shipped: false,
        at: t(),
    };
    Given::with(())
        .given(confirmed())
        .when(ship(shipment_id(1), vec![lq(tshirt(), 1)]))
        .then_expect_events(vec![first.clone().into()]);

    let mut events = confirmed();
    events.push(first.into());
    let second = OrderShipmentRecorded {
        shipment_id: shipment_id(2),
        lines: vec![lq(tshirt(), 1), lq(mug(), 1)],
        shipped_totals: all_lines(),
        fully_shipped: true,
        at: t(),
    };
    Given::with(())
        .given(events.clone())
        .when(ship(shipment_id(2), vec![lq(tshirt(), 1), lq(mug(), 1)]))
        .then_expect_events(vec![second.clone().into()]);
    events.push(second.into());

    // The first part arrives: not yet delivered as a whole.
    let first_delivered = OrderShipmentDelivered {
        shipment_id: shipment_id(1),
        lines: vec![lq(tshirt(), 1)],
        delivered_totals: vec![lq(tshirt(), 1), lq(mug(), 0)],
        at: t(),
    };
    Given::with(())
        .given(events.clone())
        .when(deliver(shipment_id(1)))
        .then_expect_events(vec![first_delivered.clone().into()]);
    events.push(first_delivered.into());

    Given::with(())
        .given(events)
        .when(deliver(shipment_id(2)))
        .then_expect_events(vec![
            OrderShipmentDelivered {
                shipment_id: shipment_id(2),
                lines: vec![lq(tshirt(), 1), lq(mug(), 1)],
                delivered_totals: all_lines(),
                at: t(),
            }
            .into(),
            OrderDelivered { at: t() }.into(),
        ]);
}

#[test]
fn an_order_ships_only_once_confirmed() {
    Given::with(())
        .given(placed())
        .when(ship(example_shipment_id(), all_lines()))
        .then_expect_error(OrderError::NotConfirmed);
    Given::with(())
        .given(draft())
        .when(ship(example_shipment_id(), all_lines()))
        .then_expect_error(OrderError::DraftNotFinalised);
}

#[test]
fn a_shipment_is_recorded_once() {
    Given::with(())
        .given(shipped_all())
        .when(ship(example_shipment_id(), vec![lq(mug(), 1)]))
        .then_expect_error(OrderError::DuplicateShipment(example_shipment_id()));
}

#[test]
fn a_shipment_has_lines() {
    Given::with(())
        .given(confirmed())
        .when(ship(example_shipment_id(), vec![]))
        .then_expect_error(OrderError::EmptyShipment);
    Given::with(())
        .given(confirmed())
        .when(ship(example_shipment_id(), vec![lq(mug(), 0)]))
        .then_expect_error(OrderError::ZeroQuantity(mug()));
    Given::with(())
        .given(confirmed())
        .when(ship(
            example_shipment_id(),
            vec![lq(mug(), 1), lq(mug(), 1)],
        ))
        .then_expect_error(OrderError::DuplicateLine(mug()));
    let socks = crate::Sku::parse("SOCKS").unwrap();
    Given::with(())
        .given(confirmed())
        .when(ship(example_shipment_id(), vec![lq(socks.clone(), 1)]))
        .then_expect_error(OrderError::UnknownLine(socks));
}

#[test]
fn cannot_ship_more_than_ordered_minus_shipped() {
    Given::with(())
        .given(confirmed())
        .when(ship(example_shipment_id(), vec![lq(tshirt(), 3)]))
        .then_expect_error(OrderError::OverShipment {
            sku: tshirt(),
            ordered: Quantity(2),
            shipped: Quantity(0),
            requested: Quantity(3),
        });
    Given::with(())
        .given(shipped_all())
        .when(ship(shipment_id(9), vec![lq(mug(), 1)]))
        .then_expect_error(OrderError::OverShipment {
            sku: mug(),
            ordered: Quantity(1),
            shipped: Quantity(1),
            requested: Quantity(1),
        });
}

#[test]
fn only_recorded_shipments_are_delivered() {
    Given::with(())
        .given(shipped_all())
        .when(deliver(shipment_id(9)))
        .then_expect_error(OrderError::UnknownShipment(shipment_id(9)));
}

#[test]
fn a_shipment_is_delivered_once() {
    Given::with(())
        .given(delivered_all())
        .when(deliver(example_shipment_id()))
        .then_expect_error(OrderError::ShipmentAlreadyDelivered(example_shipment_id()));
}

fn return_to_sender(id: ShipmentId) -> OrderCommand {
    OrderCommand::RecordReturnToSender(RecordReturnToSender {
        shipment_id: id,
        at: t(),
    })
}

#[test]
fn a_parcel_back_at_the_sender_settles_its_units_and_the_rest_delivers_the_order() {
    let mut events = confirmed();
    events.push(
        OrderShipmentRecorded {
            shipment_id: shipment_id(1),
            lines: vec![lq(tshirt(), 1)],
            shipped_totals: vec![lq(tshirt(), 1), lq(mug(), 0)],
            fully_shipped: false,
            at: t(),
        }
        .into(),
    );
    events.push(
        OrderShipmentRecorded {
            shipment_id: shipment_id(2),
            lines: vec![lq(tshirt(), 1), lq(mug(), 1)],
            shipped_totals: all_lines(),
            fully_shipped: true,
            at: t(),
        }
        .into(),
    );
    let back = OrderShipmentReturnedToSender {
        shipment_id: shipment_id(2),
        lines: vec![lq(tshirt(), 1), lq(mug(), 1)],
        returned_totals: vec![lq(tshirt(), 1), lq(mug(), 1)],
        at: t(),
    };
    Given::with(())
        .given(events.clone())
        .when(return_to_sender(shipment_id(2)))
        .then_expect_events(vec![back.clone().into()]);
    events.push(back.into());
    Given::with(())
        .given(events.clone())
        .when(return_to_sender(shipment_id(2)))
        .then_expect_error(OrderError::ShipmentAlreadyReturned(shipment_id(2)));
    // A delivery scan for the parcel that came back is refused: its units were counted
    // as back at the sender (restocked, refunded), never as delivered.
    Given::with(())
        .given(events.clone())
        .when(deliver(shipment_id(2)))
        .then_expect_error(OrderError::ShipmentAlreadyReturned(shipment_id(2)));
    // The other parcel arrives: nothing is on its way any more.
    Given::with(())
        .given(events.clone())
        .when(deliver(shipment_id(1)))
        .then_expect_events(vec![
            OrderShipmentDelivered {
                shipment_id: shipment_id(1),
                lines: vec![lq(tshirt(), 1)],
                delivered_totals: vec![lq(tshirt(), 1), lq(mug(), 0)],
                at: t(),
            }
            .into(),
            OrderDelivered { at: t() }.into(),
        ]);
}

#[test]
fn a_delivered_or_unknown_parcel_cannot_come_back() {
    Given::with(())
        .given(delivered_all())
        .when(return_to_sender(example_shipment_id()))
        .then_expect_error(OrderError::ShipmentAlreadyDelivered(example_shipment_id()));
    Given::with(())
        .given(confirmed())
        .when(return_to_sender(shipment_id(9)))
        .then_expect_error(OrderError::UnknownShipment(shipment_id(9)));
}
