//! Returns within the window, their approval, receipt and exchanges.

use super::fixtures::*;

#[test]
fn requests_a_return_of_delivered_units() {
    Given::with(())
        .given(delivered_all())
        .when(request_return(
            example_return_id(),
            vec![lq(tshirt(), 1)],
            None,
            days_later(30),
        ))
        .then_expect_events(vec![OrderReturnRequested {
            at: days_later(30),
            ..OrderReturnRequested::example()
        }
        .into()]);
}

#[test]
fn the_return_window_closes_30_days_after_delivery_by_default() {
    Given::with(())
        .given(delivered_all())
        .when(request_return(
            example_return_id(),
            vec![lq(tshirt(), 1)],
            None,
            days_later(31),
        ))
        .then_expect_error(OrderError::ReturnWindowClosed {
            sku: tshirt(),
            deadline: days_later(30),
        });
}

#[test]
fn the_command_may_widen_the_return_window() {
    let event = single_event(
        delivered_all(),
        request_return(
            example_return_id(),
            vec![lq(tshirt(), 1)],
            Some(60),
            days_later(45),
        ),
    );
    match event {
        OrderEvent::OrderReturnRequested(e) => assert_eq!(e.window_days, 60),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_return_is_requested_once() {
    Given::with(())
        .given(with_return_requested())
        .when(request_return(
            example_return_id(),
            vec![lq(mug(), 1)],
            None,
            t(),
        ))
        .then_expect_error(OrderError::DuplicateReturn(example_return_id()));
}

#[test]
fn a_return_has_lines() {
    Given::with(())
        .given(delivered_all())
        .when(request_return(example_return_id(), vec![], None, t()))
        .then_expect_error(OrderError::EmptyReturn);
}

#[test]
fn only_delivered_and_not_yet_returned_units_are_returned() {
    // Nothing delivered yet.
    Given::with(())
        .given(shipped_all())
        .when(request_return(
            example_return_id(),
            vec![lq(tshirt(), 1)],
            None,
            t(),
        ))
        .then_expect_error(OrderError::ReturnExceedsDelivered {
            sku: tshirt(),
            delivered: Quantity(0),
            returned: Quantity(0),
            requested: Quantity(1),
        });
    // One of two T-shirts is already on its way back.
    Given::with(())
        .given(with_return_requested())
        .when(request_return(
            return_id(2),
            vec![lq(tshirt(), 2)],
            None,
            t(),
        ))
        .then_expect_error(OrderError::ReturnExceedsDelivered {
            sku: tshirt(),
            delivered: Quantity(2),
            returned: Quantity(1),
            requested: Quantity(2),
        });
}

#[test]
fn units_of_a_rejected_return_may_be_requested_again() {
    Given::with(())
        .given(with_return_rejected())
        .when(request_return(
            return_id(2),
            vec![lq(tshirt(), 2)],
            None,
            t(),
        ))
        .then_expect_events(vec![OrderReturnRequested {
            return_id: return_id(2),
            lines: vec![lq(tshirt(), 2)],
            ..OrderReturnRequested::example()
        }
        .into()]);
}

#[test]
fn approves_rejects_and_receives_returns() {
    Given::with(())
        .given(with_return_requested())
        .when(OrderCommand::ApproveReturn(ApproveReturn {
            return_id: example_return_id(),
            at: t(),
        }))
        .then_expect_events(vec![OrderReturnApproved::example().into()]);
    Given::with(())
        .given(with_return_requested())
        .when(OrderCommand::RejectReturn(RejectReturn {
            return_id: example_return_id(),
            reason: "worn item".into(),
            at: t(),
        }))
        .then_expect_events(vec![OrderReturnRejected::example().into()]);
    Given::with(())
        .given(with_return_approved())
        .when(OrderCommand::ReceiveReturn(ReceiveReturn {
            return_id: example_return_id(),
            at: t(),
        }))
        .then_expect_events(vec![OrderReturnReceived::example().into()]);
}

#[test]
fn only_known_returns_are_decided() {
    Given::with(())
        .given(delivered_all())
        .when(OrderCommand::ApproveReturn(ApproveReturn {
            return_id: example_return_id(),
            at: t(),
        }))
        .then_expect_error(OrderError::UnknownReturn(example_return_id()));
}

#[test]
fn a_return_is_decided_once() {
    Given::with(())
        .given(with_return_approved())
        .when(OrderCommand::RejectReturn(RejectReturn {
            return_id: example_return_id(),
            reason: "late".into(),
            at: t(),
        }))
        .then_expect_error(OrderError::ReturnNotPending(example_return_id()));
}

#[test]
fn only_an_approved_return_is_received() {
    Given::with(())
        .given(with_return_requested())
        .when(OrderCommand::ReceiveReturn(ReceiveReturn {
            return_id: example_return_id(),
            at: t(),
        }))
        .then_expect_error(OrderError::ReturnNotApproved(example_return_id()));
}

fn exchange(replacement: crate::OrderId) -> OrderCommand {
    OrderCommand::RequestExchange(RequestExchange {
        return_id: example_return_id(),
        replacement_order_id: replacement,
        at: t(),
    })
}

#[test]
fn requests_an_exchange_for_a_return() {
    let e = OrderExchangeRequested::example();
    Given::with(())
        .given(with_return_approved())
        .when(exchange(e.replacement_order_id))
        .then_expect_events(vec![e.into()]);
}

#[test]
fn an_exchange_is_requested_once_per_return() {
    let e = OrderExchangeRequested::example();
    let mut events = with_return_approved();
    events.push(e.clone().into());
    Given::with(())
        .given(events)
        .when(exchange(e.replacement_order_id))
        .then_expect_error(OrderError::ExchangeAlreadyRequested(example_return_id()));
}

#[test]
fn no_exchange_for_a_rejected_return() {
    Given::with(())
        .given(with_return_rejected())
        .when(exchange(
            OrderExchangeRequested::example().replacement_order_id,
        ))
        .then_expect_error(OrderError::ExchangeForRejectedReturn(example_return_id()));
}

#[test]
fn the_replacement_is_another_order() {
    Given::with(())
        .given(with_return_approved())
        .when(exchange(example_order_id()))
        .then_expect_error(OrderError::ExchangeOrderIsThisOrder);
}
