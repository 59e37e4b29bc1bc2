//! Placement, drafts, confirmation, edits, cancellation and completion.

use super::fixtures::*;
use crate::Address;

#[test]
fn places_an_order_with_computed_totals() {
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(place()))
        .then_expect_events(placed());
}

#[test]
fn an_order_is_placed_once() {
    Given::with(())
        .given(placed())
        .when(OrderCommand::PlaceOrder(place()))
        .then_expect_error(OrderError::AlreadyPlaced);
}

#[test]
fn commands_need_a_placed_order() {
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::ConfirmOrder { at: t() })
        .then_expect_error(OrderError::NotFound);
}

#[test]
fn an_order_needs_lines() {
    let mut c = place();
    c.lines.clear();
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(c))
        .then_expect_error(OrderError::NoLines);
}

#[test]
fn a_sku_appears_on_one_line_only() {
    let mut c = place();
    c.lines[1].sku = tshirt();
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(c))
        .then_expect_error(OrderError::DuplicateLine(tshirt()));
}

#[test]
fn a_line_needs_a_quantity() {
    let mut c = place();
    c.lines[0].quantity = Quantity::ZERO;
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(c))
        .then_expect_error(OrderError::ZeroQuantity(tshirt()));
}

#[test]
fn a_unit_price_is_not_negative() {
    let mut c = place();
    c.lines[1].unit_price = eur(-1);
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(c))
        .then_expect_error(OrderError::NegativeUnitPrice(mug()));
}

#[test]
fn a_line_discount_lies_between_zero_and_the_line() {
    let mut c = place();
    c.lines[0].discount = eur(3_999);
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(c))
        .then_expect_error(OrderError::InvalidLineDiscount(tshirt()));
    let mut c = place();
    c.lines[0].discount = eur(-1);
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(c))
        .then_expect_error(OrderError::InvalidLineDiscount(tshirt()));
}

#[test]
fn shipping_and_points_are_not_negative() {
    let mut c = place();
    c.shipping = eur(-490);
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(c))
        .then_expect_error(OrderError::NegativeCharge(eur(-490)));
}

#[test]
fn points_cannot_pay_more_than_the_total() {
    let mut c = place();
    c.points_value = eur(6_591);
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(c))
        .then_expect_error(OrderError::PointsExceedTotal {
            points_value: eur(6_591),
            total_before_points: eur(6_590),
        });
}

#[test]
fn an_order_needs_a_payment_method() {
    let mut c = place();
    c.payment_method_token = String::new();
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(c))
        .then_expect_error(OrderError::MissingPaymentMethod);
}

// ---- drafts ----

#[test]
fn a_draft_is_edited_freely_then_finalised() {
    let mut c = place();
    c.draft = true;
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(c))
        .then_expect_events(draft());

    let added = OrderLineAdded::example();
    let add = OrderCommand::AddLine(AddLine {
        line: NewOrderLine {
            sku: added.line.sku.clone(),
            name: added.line.name.clone(),
            quantity: added.line.quantity,
            unit_price: added.line.unit_price,
            discount: added.line.discount,
        },
        at: t(),
    });
    Given::with(())
        .given(draft())
        .when(add)
        .then_expect_events(vec![added.clone().into()]);

    let mut events = draft();
    events.push(added.clone().into());
    let mut lines = crate::order::event::example_lines();
    lines.push(added.line.clone());
    Given::with(())
        .given(events)
        .when(OrderCommand::FinaliseDraft { at: t() })
        .then_expect_events(vec![OrderDraftFinalised {
            lines,
            totals: added.totals,
            at: t(),
        }
        .into()]);
}

#[test]
fn lines_are_added_to_drafts_only() {
    Given::with(())
        .given(placed())
        .when(OrderCommand::AddLine(AddLine {
            line: place().lines[0].clone(),
            at: t(),
        }))
        .then_expect_error(OrderError::NotADraft);
    Given::with(())
        .given(draft())
        .when(OrderCommand::AddLine(AddLine {
            line: place().lines[0].clone(),
            at: t(),
        }))
        .then_expect_error(OrderError::DuplicateLine(tshirt()));
}

#[test]
fn only_a_draft_is_finalised() {
    Given::with(())
        .given(placed())
        .when(OrderCommand::FinaliseDraft { at: t() })
        .then_expect_error(OrderError::NotADraft);
}

#[test]
fn a_draft_is_not_confirmed_before_it_is_finalised() {
    Given::with(())
        .given(draft())
        .when(OrderCommand::ConfirmOrder { at: t() })
        .then_expect_error(OrderError::DraftNotFinalised);
}

// ---- confirmation ----

#[test]
fn confirms_a_placed_order() {
    Given::with(())
        .given(placed())
        .when(OrderCommand::ConfirmOrder { at: t() })
        .then_expect_events(vec![OrderConfirmed::example().into()]);
}

#[test]
fn an_order_is_confirmed_once() {
    Given::with(())
        .given(confirmed())
        .when(OrderCommand::ConfirmOrder { at: t() })
        .then_expect_error(OrderError::AlreadyConfirmed);
}

// ---- edits ----

#[test]
fn changing_a_quantity_rescales_the_discount_and_recomputes_totals() {
    Given::with(())
        .given(confirmed())
        .when(change_quantity(tshirt(), 1))
        .then_expect_events(vec![OrderLineQuantityChanged::example().into()]);
}

#[test]
fn repeated_quantity_edits_rescale_the_original_discount() {
    // 2 → 1 → 3: the discount is 3/2 of the original 2.00, not 3 × the halved 1.00
    // re-rounded.
    let mut events = confirmed();
    events.push(OrderLineQuantityChanged::example().into());
    match single_event(events, change_quantity(tshirt(), 3)) {
        OrderEvent::OrderLineQuantityChanged(e) => {
            assert_eq!(e.previous_quantity, Quantity(1));
            assert_eq!(e.line.discount, eur(300));
            assert_eq!(e.line.line_total, eur(5_697));
            assert_eq!(e.totals.subtotal, eur(7_247));
            assert_eq!(
                e.grand_total_difference,
                e.totals.grand_total.checked_sub(eur(4_230)).unwrap()
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn setting_the_same_quantity_changes_nothing() {
    Given::with(())
        .given(confirmed())
        .when(change_quantity(tshirt(), 2))
        .then_expect_events(vec![]);
}

#[test]
fn a_quantity_cannot_be_set_to_zero() {
    Given::with(())
        .given(confirmed())
        .when(change_quantity(tshirt(), 0))
        .then_expect_error(OrderError::ZeroQuantity(tshirt()));
}

#[test]
fn only_lines_of_the_order_are_edited() {
    Given::with(())
        .given(confirmed())
        .when(change_quantity(crate::Sku::parse("SOCKS").unwrap(), 1))
        .then_expect_error(OrderError::UnknownLine(crate::Sku::parse("SOCKS").unwrap()));
}

#[test]
fn removes_a_line() {
    Given::with(())
        .given(confirmed())
        .when(OrderCommand::RemoveLine(RemoveLine {
            sku: mug(),
            at: t(),
        }))
        .then_expect_events(vec![OrderLineRemoved::example().into()]);
}

#[test]
fn the_last_line_cannot_be_removed() {
    let mut events = confirmed();
    events.push(OrderLineRemoved::example().into());
    Given::with(())
        .given(events)
        .when(OrderCommand::RemoveLine(RemoveLine {
            sku: tshirt(),
            at: t(),
        }))
        .then_expect_error(OrderError::CannotRemoveLastLine);
}

#[test]
fn changing_the_shipping_address_reprices_shipping_and_tax() {
    let e = OrderShippingAddressChanged::example();
    Given::with(())
        .given(placed())
        .when(OrderCommand::ChangeShippingAddress(ChangeShippingAddress {
            address: e.address.clone(),
            shipping: eur(690),
            tax_rate_bp: 2_000,
            at: t(),
        }))
        .then_expect_events(vec![e.into()]);
}

#[test]
fn edits_are_refused_after_the_first_shipment() {
    let mut events = confirmed();
    events.push(
        OrderShipmentRecorded {
            lines: vec![lq(mug(), 1)],
            shipped_totals: vec![lq(tshirt(), 0), lq(mug(), 1)],
            fully_shipped: false,
            ..OrderShipmentRecorded::example()
        }
        .into(),
    );
    Given::with(())
        .given(events.clone())
        .when(change_quantity(tshirt(), 1))
        .then_expect_error(OrderError::EditAfterShipment);
    Given::with(())
        .given(events)
        .when(OrderCommand::ChangeShippingAddress(ChangeShippingAddress {
            address: Address::example(),
            shipping: eur(0),
            tax_rate_bp: 0,
            at: t(),
        }))
        .then_expect_error(OrderError::EditAfterShipment);
}

// ---- cancellation ----

#[test]
fn cancels_before_shipment_and_reports_what_was_paid() {
    Given::with(())
        .given(confirmed())
        .when(OrderCommand::CancelOrder(CancelOrder {
            reason: CancellationReason::CustomerRequested,
            at: t(),
        }))
        .then_expect_events(vec![OrderCancelled::example().into()]);
    Given::with(())
        .given(paid(confirmed()))
        .when(OrderCommand::CancelOrder(CancelOrder {
            reason: CancellationReason::CustomerRequested,
            at: t(),
        }))
        .then_expect_events(vec![OrderCancelled {
            paid: eur(6_490),
            ..OrderCancelled::example()
        }
        .into()]);
}

#[test]
fn an_order_cannot_be_cancelled_after_a_shipment() {
    Given::with(())
        .given(shipped_all())
        .when(OrderCommand::CancelOrder(CancelOrder {
            reason: CancellationReason::CustomerRequested,
            at: t(),
        }))
        .then_expect_error(OrderError::CancelAfterShipment);
}

#[test]
fn a_cancelled_order_accepts_no_further_changes() {
    Given::with(())
        .given(cancelled())
        .when(OrderCommand::CancelOrder(CancelOrder {
            reason: CancellationReason::CustomerRequested,
            at: t(),
        }))
        .then_expect_error(OrderError::OrderCancelled);
    Given::with(())
        .given(cancelled())
        .when(change_quantity(tshirt(), 1))
        .then_expect_error(OrderError::OrderCancelled);
}

// ---- completion ----

#[test]
fn completes_a_delivered_order_without_open_returns() {
    Given::with(())
        .given(paid(delivered_all()))
        .when(OrderCommand::CompleteOrder { at: t() })
        .then_expect_events(vec![OrderCompleted::example().into()]);
    let mut events = with_return_rejected();
    events.push(
        OrderCompleted {
            paid: eur(0),
            ..OrderCompleted::example()
        }
        .into(),
    );
    Given::with(())
        .given(events.clone())
        .when(OrderCommand::CompleteOrder { at: t() })
        .then_expect_error(OrderError::OrderCompleted);
    Given::with(())
        .given(events)
        .when(request_return(return_id(9), vec![lq(mug(), 1)], None, t()))
        .then_expect_error(OrderError::OrderCompleted);
}

#[test]
fn an_order_is_completed_only_when_delivered() {
    Given::with(())
        .given(shipped_all())
        .when(OrderCommand::CompleteOrder { at: t() })
        .then_expect_error(OrderError::NotDelivered);
}

#[test]
fn an_order_with_an_open_return_is_not_completed() {
    Given::with(())
        .given(with_return_approved())
        .when(OrderCommand::CompleteOrder { at: t() })
        .then_expect_error(OrderError::OpenReturn(example_return_id()));
}
