use chrono::{DateTime, Utc};

use super::*;
use crate::{Decider, Money, Quantity};

impl Decider for Cart {
    type Command = CartCommand;
    type Event = CartEvent;
    type Error = CartError;

    fn decide(&self, command: CartCommand) -> Result<Vec<CartEvent>, CartError> {
        if let CartCommand::OpenCart(c) = command {
            if self.exists() {
                return Err(CartError::AlreadyOpened);
            }
            return Ok(vec![CartOpened {
                cart_id: c.cart_id,
                customer_id: c.customer_id,
                currency: c.currency,
                at: c.at,
            }
            .into()]);
        }
        let currency = self.must_be_open()?;
        let event: CartEvent = match command {
            // Handled above, before the cart had to be open.
            CartCommand::OpenCart(_) => return Err(CartError::AlreadyOpened),
            CartCommand::AddItem(c) => {
                self.in_currency(c.unit_price)?;
                if !c.unit_price.is_positive() {
                    return Err(CartError::NonPositiveUnitPrice(c.unit_price));
                }
                let max = c
                    .max_quantity_per_line
                    .unwrap_or(DEFAULT_MAX_QUANTITY_PER_LINE);
                let existing = self.line(&c.sku).map_or(Quantity::ZERO, |l| l.quantity);
                if existing == Quantity::ZERO && self.lines.len() >= MAX_LINES {
                    return Err(CartError::TooManyLines { max: MAX_LINES });
                }
                let quantity = checked_quantity(c.quantity, max)
                    .and_then(|_| {
                        existing
                            .checked_add(c.quantity)
                            .ok_or(CartError::InvalidQuantity {
                                quantity: u32::MAX,
                                max,
                            })
                    })
                    .and_then(|q| checked_quantity(q, max))?;
                let line = CartLine {
                    sku: c.sku.clone(),
                    product_name: c.product_name.clone(),
                    category: c.category.clone(),
                    unit_price: c.unit_price,
                    quantity,
                    line_total: c.unit_price.times(quantity.get())?,
                };
                let subtotal = self.subtotal_with(Some(&line), Some(&c.sku))?;
                CartItemAdded {
                    sku: c.sku,
                    product_name: c.product_name,
                    category: c.category,
                    unit_price: c.unit_price,
                    quantity_added: c.quantity,
                    quantity,
                    line_total: line.line_total,
                    subtotal,
                    at: c.at,
                }
                .into()
            }
            CartCommand::ChangeItemQuantity(c) => {
                let line = self
                    .line(&c.sku)
                    .ok_or_else(|| CartError::ItemNotInCart(c.sku.clone()))?;
                let max = c
                    .max_quantity_per_line
                    .unwrap_or(DEFAULT_MAX_QUANTITY_PER_LINE);
                let quantity = checked_quantity(c.quantity, max)?;
                let changed = CartLine {
                    quantity,
                    line_total: line.unit_price.times(quantity.get())?,
                    ..line.clone()
                };
                CartItemQuantityChanged {
                    subtotal: self.subtotal_with(Some(&changed), Some(&c.sku))?,
                    sku: c.sku,
                    previous_quantity: line.quantity,
                    quantity,
                    unit_price: changed.unit_price,
                    line_total: changed.line_total,
                    at: c.at,
                }
                .into()
            }
            CartCommand::RemoveItem(c) => {
                let line = self
                    .line(&c.sku)
                    .ok_or_else(|| CartError::ItemNotInCart(c.sku.clone()))?;
                CartItemRemoved {
                    subtotal: self.subtotal_with(None, Some(&c.sku))?,
                    removed_quantity: line.quantity,
                    sku: c.sku,
                    at: c.at,
                }
                .into()
            }
            CartCommand::ApplyCoupon(c) => {
                let code = c.terms.code.clone();
                if self.coupons.iter().any(|t| t.code == code) {
                    return Err(CartError::CouponAlreadyApplied(code));
                }
                if !self.coupons.is_empty()
                    && (!c.terms.stackable || self.coupons.iter().any(|t| !t.stackable))
                {
                    return Err(CartError::CouponNotStackable(code));
                }
                if self.coupons.len() >= MAX_COUPONS {
                    return Err(CartError::TooManyCoupons { max: MAX_COUPONS });
                }
                if let Some(found) = c.terms.currency().filter(|found| *found != currency) {
                    return Err(CartError::CurrencyMismatch {
                        expected: currency,
                        found,
                    });
                }
                let mut with_coupon = self.clone();
                with_coupon.coupons.push(c.terms.clone());
                // Tax does not matter for applicability, only for the amount due.
                let totals = with_coupon.totals_at_rate(0, c.at)?;
                let (item_discount, shipping_discount) = totals
                    .coupons
                    .last()
                    .map(|d| (d.item_discount, d.shipping_discount))
                    .unwrap_or((Money::zero(currency), Money::zero(currency)));
                CartCouponApplied {
                    terms: c.terms,
                    item_discount,
                    shipping_discount,
                    at: c.at,
                }
                .into()
            }
            CartCommand::RemoveCoupon(c) => {
                let terms = self
                    .coupons
                    .iter()
                    .find(|t| t.code == c.code)
                    .ok_or_else(|| CartError::CouponNotInCart(c.code.clone()))?;
                CartCouponRemoved {
                    promotion_id: terms.promotion_id,
                    code: c.code,
                    at: c.at,
                }
                .into()
            }
            CartCommand::SetShippingAddress(c) => CartShippingAddressSet {
                tax_region: c.address.tax_region(),
                address: c.address,
                at: c.at,
            }
            .into(),
            CartCommand::SetShippingMethod(c) => {
                if c.method.code.trim().is_empty() {
                    return Err(CartError::EmptyShippingMethodCode);
                }
                self.in_currency(c.method.price)?;
                if c.method.price.is_negative() {
                    return Err(CartError::NegativeShippingPrice(c.method.price));
                }
                CartShippingMethodSet {
                    method: c.method,
                    at: c.at,
                }
                .into()
            }
            CartCommand::SetLoyaltyPoints(c) => {
                self.in_currency(c.value)?;
                let clearing = c.points == 0 && c.value.is_zero();
                if !clearing && (c.points == 0 || !c.value.is_positive()) {
                    return Err(CartError::InvalidLoyaltyRedemption {
                        points: c.points,
                        value: c.value,
                    });
                }
                if !clearing {
                    // Tax is not known yet; checking against the pre-tax amount keeps
                    // the promise "never more than due" whatever the rate turns out.
                    let mut without_points = self.clone();
                    without_points.loyalty = None;
                    let totals = without_points.totals_at_rate(0, c.at)?;
                    if c.value.amount > totals.grand_total.amount {
                        return Err(CartError::LoyaltyValueExceedsAmountDue {
                            value: c.value,
                            due: totals.grand_total,
                        });
                    }
                }
                CartLoyaltyPointsSet {
                    points: c.points,
                    value: c.value,
                    at: c.at,
                }
                .into()
            }
            CartCommand::CheckOut(c) => {
                self.check_out(currency, c.order_id, &c.tax_rates, None, c.at)?
            }
            CartCommand::CheckOutWithPayment(c) => {
                let payment = CheckoutPayment {
                    method_token: c.payment.method_token.filter(|t| !t.trim().is_empty()),
                    billing_address: c.payment.billing_address,
                };
                self.check_out(currency, c.order_id, &c.tax_rates, Some(payment), c.at)?
            }
            CartCommand::AbandonCart(c) => {
                let last_activity_at = self.last_activity_at.ok_or(CartError::NotOpened)?;
                let idle_from = idle_from(last_activity_at, c.idle_threshold)?;
                if c.at < idle_from {
                    return Err(CartError::StillActive {
                        last_activity_at,
                        idle_from,
                    });
                }
                CartAbandoned {
                    cart_id: self.id.ok_or(CartError::NotOpened)?,
                    customer_id: self.customer_id.ok_or(CartError::NotOpened)?,
                    last_activity_at,
                    item_count: self.item_count(),
                    subtotal: self.subtotal_with(None, None)?,
                    at: c.at,
                }
                .into()
            }
        };
        Ok(vec![event])
    }

    fn evolve(&mut self, event: &CartEvent) {
        match event {
            CartEvent::CartOpened(e) => {
                self.id = Some(e.cart_id);
                self.customer_id = Some(e.customer_id);
                self.currency = Some(e.currency);
                self.last_activity_at = Some(e.at);
            }
            CartEvent::CartItemAdded(e) => {
                let line = CartLine {
                    sku: e.sku.clone(),
                    product_name: e.product_name.clone(),
                    category: e.category.clone(),
                    unit_price: e.unit_price,
                    quantity: e.quantity,
                    line_total: e.line_total,
                };
                match self.lines.iter_mut().find(|l| l.sku == e.sku) {
                    Some(existing) => *existing = line,
                    None => self.lines.push(line),
                }
                self.last_activity_at = Some(e.at);
            }
            CartEvent::CartItemQuantityChanged(e) => {
                if let Some(line) = self.lines.iter_mut().find(|l| l.sku == e.sku) {
                    line.quantity = e.quantity;
                    line.unit_price = e.unit_price;
                    line.line_total = e.line_total;
                }
                self.last_activity_at = Some(e.at);
            }
            CartEvent::CartItemRemoved(e) => {
                self.lines.retain(|l| l.sku != e.sku);
                self.last_activity_at = Some(e.at);
            }
            CartEvent::CartCouponApplied(e) => {
                self.coupons.push(e.terms.clone());
                self.last_activity_at = Some(e.at);
            }
            CartEvent::CartCouponRemoved(e) => {
                self.coupons.retain(|t| t.code != e.code);
                self.last_activity_at = Some(e.at);
            }
            CartEvent::CartShippingAddressSet(e) => {
                self.shipping_address = Some(e.address.clone());
                self.last_activity_at = Some(e.at);
            }
            CartEvent::CartShippingMethodSet(e) => {
                self.shipping_method = Some(e.method.clone());
                self.last_activity_at = Some(e.at);
            }
            CartEvent::CartLoyaltyPointsSet(e) => {
                self.loyalty = (e.points > 0).then_some(LoyaltyRedemption {
                    points: e.points,
                    value: e.value,
                });
                self.last_activity_at = Some(e.at);
            }
            CartEvent::CartCheckedOut(e) => {
                self.status = CartStatus::CheckedOut(e.order_id);
                self.last_activity_at = Some(e.at);
            }
            // The abandonment is the sweep's act, not the customer's: activity stays.
            CartEvent::CartAbandoned(_) => self.status = CartStatus::Abandoned,
        }
    }
}

impl Cart {
    /// The currency of an open cart, or why the cart accepts no command.
    fn must_be_open(&self) -> Result<crate::Currency, CartError> {
        let currency = self.currency.ok_or(CartError::NotOpened)?;
        match self.status {
            CartStatus::Open => Ok(currency),
            CartStatus::CheckedOut(order_id) => Err(CartError::AlreadyCheckedOut(order_id)),
            CartStatus::Abandoned => Err(CartError::AlreadyAbandoned),
        }
    }

    fn in_currency(&self, amount: Money) -> Result<(), CartError> {
        match self.currency {
            Some(expected) if expected != amount.currency => Err(CartError::CurrencyMismatch {
                expected,
                found: amount.currency,
            }),
            _ => Ok(()),
        }
    }

    /// Subtotal with the line for `sku` replaced by `line` (or dropped when `None`).
    fn subtotal_with(
        &self,
        line: Option<&CartLine>,
        sku: Option<&crate::Sku>,
    ) -> Result<Money, CartError> {
        let currency = self.currency.ok_or(CartError::NotOpened)?;
        let others = self.lines.iter().filter(|l| Some(&l.sku) != sku);
        Ok(Money::sum(
            currency,
            others.chain(line).map(|l| l.line_total),
        )?)
    }
}

fn checked_quantity(quantity: Quantity, max: u32) -> Result<Quantity, CartError> {
    if (1..=max).contains(&quantity.get()) {
        Ok(quantity)
    } else {
        Err(CartError::InvalidQuantity {
            quantity: quantity.get(),
            max,
        })
    }
}

fn idle_from(
    last_activity_at: DateTime<Utc>,
    threshold: std::time::Duration,
) -> Result<DateTime<Utc>, CartError> {
    chrono::Duration::from_std(threshold)
        .ok()
        .and_then(|d| last_activity_at.checked_add_signed(d))
        .ok_or(CartError::IdleThresholdOutOfRange(threshold))
}

impl Cart {
    /// The `CartCheckedOut` of this cart at `at`; with a `payment`, one without a token
    /// is refused unless nothing is due.
    fn check_out(
        &self,
        currency: crate::Currency,
        order_id: crate::OrderId,
        tax_rates: &TaxRates,
        payment: Option<CheckoutPayment>,
        at: DateTime<Utc>,
    ) -> Result<CartEvent, CartError> {
        if self.lines.is_empty() {
            return Err(CartError::EmptyCart);
        }
        let address = self
            .shipping_address
            .clone()
            .ok_or(CartError::MissingShippingAddress)?;
        let method = self
            .shipping_method
            .clone()
            .ok_or(CartError::MissingShippingMethod)?;
        let rate = tax_rate(&address, tax_rates)?;
        let totals = self.totals_at_rate(rate, at)?;
        if let Some(p) = &payment {
            if p.method_token.is_none() && !totals.grand_total.is_zero() {
                return Err(CartError::PaymentMethodRequired {
                    due: totals.grand_total,
                });
            }
        }
        Ok(CartCheckedOut {
            cart_id: self.id.ok_or(CartError::NotOpened)?,
            order_id,
            customer_id: self.customer_id.ok_or(CartError::NotOpened)?,
            currency,
            lines: self.lines.clone(),
            coupons: self.coupons.clone(),
            tax_region: address.tax_region(),
            shipping_address: address,
            shipping_method: method,
            totals,
            payment,
            at,
        }
        .into())
    }
}
