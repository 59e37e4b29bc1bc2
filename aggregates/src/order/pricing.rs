//! The single place where order lines and totals are computed.
//!
//! * line total = unit price × quantity − line discount
//! * subtotal = Σ unit price × quantity; discount = Σ line discounts
//! * tax = (subtotal − discount + shipping) × tax rate, rounded half-to-even by
//!   [`Money::percent_of`] (prices are tax-exclusive, one rate per shipping address)
//! * grand total = subtotal − discount + shipping + tax − points value. Redeemed points
//!   are a tender, like a gift card: they pay part of the total and do not lower the tax.

use super::{NewOrderLine, OrderError, OrderLine, OrderTotals};
use crate::{Currency, Money, Quantity};

/// Prices one line in the order currency.
pub fn price_line(line: NewOrderLine, currency: Currency) -> Result<OrderLine, OrderError> {
    if line.quantity == Quantity::ZERO {
        return Err(OrderError::ZeroQuantity(line.sku));
    }
    if line.unit_price.is_negative() {
        return Err(OrderError::NegativeUnitPrice(line.sku));
    }
    let gross = line.unit_price.times(line.quantity.get())?;
    Money::zero(currency).checked_add(gross)?;
    let line_total = gross.checked_sub(line.discount)?;
    if line.discount.is_negative() || line_total.is_negative() {
        return Err(OrderError::InvalidLineDiscount(line.sku));
    }
    Ok(OrderLine {
        sku: line.sku,
        name: line.name,
        quantity: line.quantity,
        unit_price: line.unit_price,
        discount: line.discount,
        line_total,
    })
}

/// Totals of `lines` with the given shipping charge, tax rate and points value.
pub fn totals(
    currency: Currency,
    lines: &[OrderLine],
    shipping: Money,
    tax_rate_bp: u32,
    points_value: Money,
) -> Result<OrderTotals, OrderError> {
    for charge in [shipping, points_value] {
        if charge.is_negative() {
            return Err(OrderError::NegativeCharge(charge));
        }
    }
    let subtotal = Money::sum(
        currency,
        lines
            .iter()
            .map(|l| l.unit_price.times(l.quantity.get()))
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    let discount = Money::sum(currency, lines.iter().map(|l| l.discount))?;
    let taxable = subtotal.checked_sub(discount)?.checked_add(shipping)?;
    let tax = taxable.percent_of(tax_rate_bp)?;
    let total_before_points = taxable.checked_add(tax)?;
    let grand_total = total_before_points.checked_sub(points_value)?;
    if grand_total.is_negative() {
        return Err(OrderError::PointsExceedTotal {
            points_value,
            total_before_points,
        });
    }
    Ok(OrderTotals {
        subtotal,
        discount,
        shipping,
        tax,
        points_value,
        grand_total,
        currency,
    })
}
