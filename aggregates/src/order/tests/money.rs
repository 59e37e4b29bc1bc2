//! Payments reported to the order, refunds, and money errors.

use super::fixtures::*;
use crate::{Currency, MoneyError};

#[test]
fn records_a_captured_payment() {
    Given::with(())
        .given(confirmed())
        .when(captured(eur(6_490)))
        .then_expect_events(vec![OrderPaymentCaptured::example().into()]);
}

#[test]
fn capture_reports_are_cumulative_and_idempotent() {
    let mut events = confirmed();
    events.push(
        OrderPaymentCaptured {
            amount: eur(3_000),
            payment_captured_total: eur(3_000),
            paid_total: eur(3_000),
            ..OrderPaymentCaptured::example()
        }
        .into(),
    );
    Given::with(())
        .given(events.clone())
        .when(captured(eur(3_000)))
        .then_expect_events(vec![]);
    Given::with(())
        .given(events.clone())
        .when(captured(eur(2_000)))
        .then_expect_events(vec![]);
    Given::with(())
        .given(events)
        .when(captured(eur(6_490)))
        .then_expect_events(vec![OrderPaymentCaptured {
            amount: eur(3_490),
            ..OrderPaymentCaptured::example()
        }
        .into()]);
}

#[test]
fn a_draft_takes_no_payment() {
    Given::with(())
        .given(draft())
        .when(captured(eur(6_490)))
        .then_expect_error(OrderError::DraftNotFinalised);
}

#[test]
fn a_payment_in_another_currency_is_a_money_error() {
    Given::with(())
        .given(confirmed())
        .when(captured(Money::new(6_490, Currency::USD)))
        .then_expect_error(OrderError::Money(MoneyError::CurrencyMismatch {
            left: Currency::USD,
            right: Currency::EUR,
        }));
    let mut c = place();
    c.lines[0].unit_price = Money::new(1_999, Currency::USD);
    Given::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(c))
        .then_expect_error(OrderError::Money(MoneyError::CurrencyMismatch {
            left: Currency::EUR,
            right: Currency::USD,
        }));
}

#[test]
fn records_a_refund_for_a_return() {
    let mut events = paid(with_return_approved());
    events.push(OrderReturnReceived::example().into());
    Given::with(())
        .given(events)
        .when(refund(1, eur(1_899), Some(example_return_id())))
        .then_expect_events(vec![OrderRefundRecorded::example().into()]);
}

#[test]
fn a_repeated_refund_id_is_a_no_op() {
    let mut events = paid(with_return_approved());
    events.push(OrderRefundRecorded::example().into());
    Given::with(())
        .given(events)
        .when(refund(1, eur(1_899), Some(example_return_id())))
        .then_expect_events(vec![]);
}

#[test]
fn a_refund_is_positive() {
    Given::with(())
        .given(paid(confirmed()))
        .when(refund(1, eur(0), None))
        .then_expect_error(OrderError::NonPositiveAmount(eur(0)));
}

#[test]
fn a_refund_names_a_return_of_this_order() {
    Given::with(())
        .given(paid(confirmed()))
        .when(refund(1, eur(100), Some(return_id(9))))
        .then_expect_error(OrderError::UnknownReturn(return_id(9)));
}

#[test]
fn refunds_never_exceed_what_was_paid() {
    // Nothing captured yet: nothing to refund, whatever the grand total.
    Given::with(())
        .given(confirmed())
        .when(refund(1, eur(100), None))
        .then_expect_error(OrderError::RefundExceedsPaid {
            paid: eur(0),
            refunded: eur(0),
            requested: eur(100),
        });
    let mut events = paid(confirmed());
    events.push(OrderRefundRecorded::example().into());
    Given::with(())
        .given(events)
        .when(refund(2, eur(4_592), None))
        .then_expect_error(OrderError::RefundExceedsPaid {
            paid: eur(6_490),
            refunded: eur(1_899),
            requested: eur(4_592),
        });
}

#[test]
fn a_cancelled_order_still_refunds_what_was_paid() {
    let mut events = paid(confirmed());
    events.push(
        OrderCancelled {
            paid: eur(6_490),
            ..OrderCancelled::example()
        }
        .into(),
    );
    Given::with(())
        .given(events)
        .when(refund(1, eur(6_490), None))
        .then_expect_events(vec![OrderRefundRecorded {
            amount: eur(6_490),
            return_id: None,
            refunded_total: eur(6_490),
            refundable_remaining: eur(0),
            ..OrderRefundRecorded::example()
        }
        .into()]);
}
