use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;

pub(super) use crate::order::event::{
    all_lines, eur, example_order_id, example_payment_id, example_return_id, example_shipment_id,
    example_time, mug, tshirt,
};
pub(super) use crate::order::*;
pub(super) use crate::{Decider, EventExample, Money, Quantity, RefundId, ReturnId, ShipmentId};

pub(super) type Given = TestFramework<Order>;

pub(super) fn t() -> DateTime<Utc> {
    example_time()
}

pub(super) fn days_later(days: i64) -> DateTime<Utc> {
    example_time() + Duration::days(days)
}

pub(super) fn place() -> PlaceOrder {
    let e = OrderPlaced::example();
    PlaceOrder {
        order_id: e.order_id,
        customer_id: e.customer_id,
        cart_id: e.cart_id,
        currency: e.totals.currency,
        lines: e
            .lines
            .into_iter()
            .map(|l| NewOrderLine {
                sku: l.sku,
                name: l.name,
                quantity: l.quantity,
                unit_price: l.unit_price,
                discount: l.discount,
            })
            .collect(),
        shipping: e.totals.shipping,
        tax_rate_bp: e.tax_rate_bp,
        points_value: e.totals.points_value,
        shipping_address: e.shipping_address,
        billing_address: e.billing_address,
        payment_method_token: e.payment_method_token,
        draft: false,
        at: e.at,
    }
}

pub(super) fn placed() -> Vec<OrderEvent> {
    vec![OrderPlaced::example().into()]
}

pub(super) fn draft() -> Vec<OrderEvent> {
    vec![OrderPlaced {
        draft: true,
        ..OrderPlaced::example()
    }
    .into()]
}

pub(super) fn confirmed() -> Vec<OrderEvent> {
    let mut e = placed();
    e.push(OrderConfirmed::example().into());
    e
}

pub(super) fn cancelled() -> Vec<OrderEvent> {
    let mut e = confirmed();
    e.push(OrderCancelled::example().into());
    e
}

pub(super) fn lq(sku: crate::Sku, n: u32) -> LineQuantity {
    LineQuantity {
        sku,
        quantity: Quantity(n),
    }
}

pub(super) fn shipment_id(n: u128) -> ShipmentId {
    ShipmentId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0005_0000 + n,
    ))
}

pub(super) fn return_id(n: u128) -> ReturnId {
    ReturnId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0007_0000 + n,
    ))
}

pub(super) fn refund_id(n: u128) -> RefundId {
    RefundId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0006_0000 + n,
    ))
}

pub(super) fn shipped_all() -> Vec<OrderEvent> {
    let mut e = confirmed();
    e.push(OrderShipmentRecorded::example().into());
    e
}

pub(super) fn delivered_all() -> Vec<OrderEvent> {
    let mut e = shipped_all();
    e.push(OrderShipmentDelivered::example().into());
    e.push(OrderDelivered::example().into());
    e
}

pub(super) fn with_return_requested() -> Vec<OrderEvent> {
    let mut e = delivered_all();
    e.push(OrderReturnRequested::example().into());
    e
}

pub(super) fn with_return_approved() -> Vec<OrderEvent> {
    let mut e = with_return_requested();
    e.push(OrderReturnApproved::example().into());
    e
}

pub(super) fn with_return_rejected() -> Vec<OrderEvent> {
    let mut e = with_return_requested();
    e.push(OrderReturnRejected::example().into());
    e
}

pub(super) fn paid(mut events: Vec<OrderEvent>) -> Vec<OrderEvent> {
    events.push(OrderPaymentCaptured::example().into());
    events
}

pub(super) fn ship(id: ShipmentId, lines: Vec<LineQuantity>) -> OrderCommand {
    OrderCommand::RecordShipment(RecordShipment {
        shipment_id: id,
        lines,
        at: t(),
    })
}

pub(super) fn deliver(id: ShipmentId) -> OrderCommand {
    OrderCommand::RecordDelivery(RecordDelivery {
        shipment_id: id,
        at: t(),
    })
}

pub(super) fn request_return(
    id: ReturnId,
    lines: Vec<LineQuantity>,
    window_days: Option<u32>,
    at: DateTime<Utc>,
) -> OrderCommand {
    OrderCommand::RequestReturn(RequestReturn {
        return_id: id,
        lines,
        reason: "too small".into(),
        window_days,
        at,
    })
}

pub(super) fn refund(n: u128, amount: Money, return_id: Option<ReturnId>) -> OrderCommand {
    OrderCommand::RecordRefund(RecordRefund {
        refund_id: refund_id(n),
        amount,
        return_id,
        at: t(),
    })
}

pub(super) fn captured(total: Money) -> OrderCommand {
    OrderCommand::RecordPaymentCaptured(RecordPaymentCaptured {
        payment_id: example_payment_id(),
        captured_total: total,
        at: t(),
    })
}

pub(super) fn change_quantity(sku: crate::Sku, n: u32) -> OrderCommand {
    OrderCommand::ChangeLineQuantity(ChangeLineQuantity {
        sku,
        quantity: Quantity(n),
        at: t(),
    })
}

pub(super) fn single_event(given: Vec<OrderEvent>, command: OrderCommand) -> OrderEvent {
    let events = Given::with(())
        .given(given)
        .when(command)
        .inspect_result()
        .expect("command accepted");
    assert_eq!(events.len(), 1, "{events:?}");
    events.into_iter().next().expect("one event")
}
