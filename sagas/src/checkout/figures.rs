//! The money the saga moves: each shipment's share of the capture and each return's
//! refund. Pure functions of the saga state, so a re-run computes the same amounts.

use aggregates::order::LineQuantity;
use aggregates::{Money, MoneyError, ShipmentId};

use super::state::{CheckoutState, LineFacts, ShipmentProgress};

/// The value of `quantity` units of `line`: its total (after discount) pro rata.
fn units_value(line: &LineFacts, quantity: u32) -> Result<i64, MoneyError> {
    Ok(line
        .line_total
        .share(i64::from(quantity), i64::from(line.quantity.get().max(1)))?
        .amount)
}

fn shipment_value(lines: &[LineFacts], shipment: &ShipmentProgress) -> Result<i64, MoneyError> {
    let mut value = 0i64;
    for l in &shipment.lines {
        if let Some(line) = lines.iter().find(|x| x.sku == l.sku) {
            value += units_value(line, l.quantity.get())?;
        }
    }
    Ok(value)
}

/// What dispatching shipment `id` captures: the authorized amount split over the
/// shipments by the value of their goods, in shipment-id order, each share being the
/// difference of two cumulative roundings so the shares add up to the authorization
/// exactly once every unit has shipped.
pub fn capture_share(state: &CheckoutState, id: ShipmentId) -> Result<Money, MoneyError> {
    let (Some(order), Some(payment)) = (&state.order, &state.payment) else {
        return Err(MoneyError::Overflow);
    };
    let total = payment.authorized;
    let all: i64 = order.lines.iter().map(|l| l.line_total.amount).sum();
    if all == 0 {
        // Only shipping and tax are charged: the first shipment takes it all.
        let first = state.shipments.keys().next() == Some(&id);
        return Ok(if first {
            total
        } else {
            Money::zero(total.currency)
        });
    }
    let (mut before, mut through) = (0i64, 0i64);
    for (sid, shipment) in &state.shipments {
        let value = shipment_value(&order.lines, shipment)?;
        if *sid == id {
            through = before + value;
            break;
        }
        before += value;
    }
    total
        .share(through, all)?
        .checked_sub(total.share(before, all)?)
}

/// The refund for returned `lines`: the money paid for goods (grand total less the
/// shipping charge and its tax) in proportion to the returned goods' value, never more
/// than what was paid and not yet refunded.
pub fn return_refund(state: &CheckoutState, lines: &[LineQuantity]) -> Result<Money, MoneyError> {
    let Some(order) = &state.order else {
        return Err(MoneyError::Overflow);
    };
    let all: i64 = order.lines.iter().map(|l| l.line_total.amount).sum();
    let mut returned = 0i64;
    for l in lines {
        if let Some(line) = order.lines.iter().find(|x| x.sku == l.sku) {
            returned += units_value(line, l.quantity.get())?;
        }
    }
    if all == 0 || returned == 0 {
        return Ok(Money::zero(order.currency));
    }
    let shipping_with_tax = order
        .shipping
        .checked_add(order.shipping.percent_of(order.tax_rate_bp)?)?;
    let goods = order.grand_total.checked_sub(shipping_with_tax)?;
    let refundable = order.paid.checked_sub(order.refunded)?;
    let refund = goods.share(returned, all)?.min(refundable)?;
    Ok(if refund.is_negative() {
        Money::zero(order.currency)
    } else {
        refund
    })
}
