use std::collections::BTreeSet;

use chrono::Duration;

use super::pricing::{price_line, totals};
use super::*;
use crate::{Decider, Money, Quantity};

impl Decider for Order {
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        let (d, command) = match (&self.details, command) {
            (None, OrderCommand::PlaceOrder(c)) => return place(c),
            (None, _) => return Err(OrderError::NotFound),
            (Some(d), command) => (d, command),
        };
        match command {
            OrderCommand::PlaceOrder(_) => Err(OrderError::AlreadyPlaced),
            OrderCommand::AddLine(c) => {
                self.must_be_open()?;
                if self.status != OrderStatus::Draft {
                    return Err(OrderError::NotADraft);
                }
                if d.line(&c.line.sku).is_some() {
                    return Err(OrderError::DuplicateLine(c.line.sku));
                }
                let line = price_line(c.line, d.totals.currency)?;
                let mut lines = d.priced_lines();
                lines.push(line.clone());
                let (totals, grand_total_difference) =
                    repriced(d, &lines, d.totals.shipping, d.tax_rate_bp)?;
                one(OrderLineAdded {
                    line,
                    totals,
                    grand_total_difference,
                    at: c.at,
                })
            }
            OrderCommand::FinaliseDraft { at } => {
                self.must_be_open()?;
                if self.status != OrderStatus::Draft {
                    return Err(OrderError::NotADraft);
                }
                one(OrderDraftFinalised {
                    lines: d.priced_lines(),
                    totals: d.totals.clone(),
                    at,
                })
            }
            OrderCommand::ConfirmOrder { at } => {
                self.must_be_finalised()?;
                if self.status == OrderStatus::Confirmed {
                    return Err(OrderError::AlreadyConfirmed);
                }
                one(OrderConfirmed {
                    grand_total: d.totals.grand_total,
                    at,
                })
            }
            OrderCommand::ChangeLineQuantity(c) => {
                self.must_be_editable()?;
                let current = d
                    .line(&c.sku)
                    .ok_or_else(|| OrderError::UnknownLine(c.sku.clone()))?;
                if c.quantity == Quantity::ZERO {
                    return Err(OrderError::ZeroQuantity(c.sku));
                }
                if c.quantity == current.line.quantity {
                    return Ok(vec![]);
                }
                let discount = current.base_discount.share(
                    i64::from(c.quantity.get()),
                    i64::from(current.base_quantity.get()),
                )?;
                let line = price_line(
                    NewOrderLine {
                        sku: c.sku.clone(),
                        name: current.line.name.clone(),
                        quantity: c.quantity,
                        unit_price: current.line.unit_price,
                        discount,
                    },
                    d.totals.currency,
                )?;
                let lines: Vec<OrderLine> = d
                    .lines
                    .iter()
                    .map(|l| {
                        if l.line.sku == c.sku {
                            line.clone()
                        } else {
                            l.line.clone()
                        }
                    })
                    .collect();
                let (totals, grand_total_difference) =
                    repriced(d, &lines, d.totals.shipping, d.tax_rate_bp)?;
                one(OrderLineQuantityChanged {
                    sku: c.sku,
                    previous_quantity: current.line.quantity,
                    line,
                    totals,
                    grand_total_difference,
                    at: c.at,
                })
            }
            OrderCommand::RemoveLine(c) => {
                self.must_be_editable()?;
                let current = d
                    .line(&c.sku)
                    .ok_or_else(|| OrderError::UnknownLine(c.sku.clone()))?;
                if d.lines.len() == 1 {
                    return Err(OrderError::CannotRemoveLastLine);
                }
                let lines: Vec<OrderLine> = d
                    .priced_lines()
                    .into_iter()
                    .filter(|l| l.sku != c.sku)
                    .collect();
                let (totals, grand_total_difference) =
                    repriced(d, &lines, d.totals.shipping, d.tax_rate_bp)?;
                one(OrderLineRemoved {
                    sku: c.sku,
                    removed_quantity: current.line.quantity,
                    totals,
                    grand_total_difference,
                    at: c.at,
                })
            }
            OrderCommand::ChangeShippingAddress(c) => {
                self.must_be_editable()?;
                let (totals, grand_total_difference) =
                    repriced(d, &d.priced_lines(), c.shipping, c.tax_rate_bp)?;
                one(OrderShippingAddressChanged {
                    address: c.address,
                    tax_rate_bp: c.tax_rate_bp,
                    totals,
                    grand_total_difference,
                    at: c.at,
                })
            }
            OrderCommand::CancelOrder(c) => {
                self.must_be_open()?;
                if !self.shipments.is_empty() {
                    return Err(OrderError::CancelAfterShipment);
                }
                one(OrderCancelled {
                    reason: c.reason,
                    lines: d
                        .lines
                        .iter()
                        .map(|l| LineQuantity {
                            sku: l.line.sku.clone(),
                            quantity: l.line.quantity,
                        })
                        .collect(),
                    paid: d.paid.checked_sub(d.refunded)?,
                    at: c.at,
                })
            }
            OrderCommand::RecordShipment(c) => {
                self.must_be_finalised()?;
                if self.status != OrderStatus::Confirmed {
                    return Err(OrderError::NotConfirmed);
                }
                if self.shipments.contains_key(&c.shipment_id) {
                    return Err(OrderError::DuplicateShipment(c.shipment_id));
                }
                check_lines(d, &c.lines, OrderError::EmptyShipment)?;
                let mut shipped_totals = Vec::new();
                let mut fully_shipped = true;
                for line in &d.lines {
                    let sku = &line.line.sku;
                    let ordered = line.line.quantity;
                    let shipped = self.shipped_of(sku);
                    let requested = quantity_of(&c.lines, sku);
                    let after = shipped
                        .checked_add(requested)
                        .filter(|after| *after <= ordered)
                        .ok_or_else(|| OrderError::OverShipment {
                            sku: sku.clone(),
                            ordered,
                            shipped,
                            requested,
                        })?;
                    fully_shipped &= after == ordered;
                    shipped_totals.push(LineQuantity {
                        sku: sku.clone(),
                        quantity: after,
                    });
                }
                one(OrderShipmentRecorded {
                    shipment_id: c.shipment_id,
                    lines: c.lines,
                    shipped_totals,
                    fully_shipped,
                    at: c.at,
                })
            }
            OrderCommand::RecordDelivery(c) => {
                let lines = self.parcel_on_its_way(c.shipment_id)?;
                let (delivered_totals, everything_delivered) = settle_parcel(
                    d,
                    lines,
                    |sku| self.delivered_of(sku),
                    |sku| self.returned_to_sender_of(sku),
                );
                let mut events = vec![OrderShipmentDelivered {
                    shipment_id: c.shipment_id,
                    lines: lines.to_vec(),
                    delivered_totals,
                    at: c.at,
                }
                .into()];
                if everything_delivered {
                    events.push(OrderDelivered { at: c.at }.into());
                }
                Ok(events)
            }
            OrderCommand::RecordReturnToSender(c) => {
                let lines = self.parcel_on_its_way(c.shipment_id)?;
                let (returned_totals, nothing_on_its_way) = settle_parcel(
                    d,
                    lines,
                    |sku| self.returned_to_sender_of(sku),
                    |sku| self.delivered_of(sku),
                );
                let mut events = vec![OrderShipmentReturnedToSender {
                    shipment_id: c.shipment_id,
                    lines: lines.to_vec(),
                    returned_totals,
                    at: c.at,
                }
                .into()];
                if nothing_on_its_way {
                    events.push(OrderDelivered { at: c.at }.into());
                }
                Ok(events)
            }
            OrderCommand::RequestReturn(c) => {
                self.must_be_open()?;
                if self.returns.contains_key(&c.return_id) {
                    return Err(OrderError::DuplicateReturn(c.return_id));
                }
                check_lines(d, &c.lines, OrderError::EmptyReturn)?;
                let window_days = c.window_days.unwrap_or(DEFAULT_RETURN_WINDOW_DAYS);
                for line in &c.lines {
                    let delivered = self.delivered_of(&line.sku);
                    let returned = self.returned_of(&line.sku);
                    let available = delivered.saturating_sub(returned);
                    if line.quantity > available {
                        return Err(OrderError::ReturnExceedsDelivered {
                            sku: line.sku.clone(),
                            delivered,
                            returned,
                            requested: line.quantity,
                        });
                    }
                    if let Some(delivered_at) = self.last_delivered_at.get(&line.sku) {
                        let deadline = *delivered_at + Duration::days(i64::from(window_days));
                        if c.at > deadline {
                            return Err(OrderError::ReturnWindowClosed {
                                sku: line.sku.clone(),
                                deadline,
                            });
                        }
                    }
                }
                one(OrderReturnRequested {
                    return_id: c.return_id,
                    lines: c.lines,
                    reason: c.reason,
                    window_days,
                    at: c.at,
                })
            }
            OrderCommand::ApproveReturn(c) => {
                let r = self.pending_return(c.return_id)?;
                one(OrderReturnApproved {
                    return_id: c.return_id,
                    lines: r.lines.clone(),
                    at: c.at,
                })
            }
            OrderCommand::RejectReturn(c) => {
                self.pending_return(c.return_id)?;
                one(OrderReturnRejected {
                    return_id: c.return_id,
                    reason: c.reason,
                    at: c.at,
                })
            }
            OrderCommand::ReceiveReturn(c) => {
                let r = self.known_return(c.return_id)?;
                if r.status != ReturnStatus::Approved {
                    return Err(OrderError::ReturnNotApproved(c.return_id));
                }
                one(OrderReturnReceived {
                    return_id: c.return_id,
                    lines: r.lines.clone(),
                    at: c.at,
                })
            }
            OrderCommand::RecordPaymentCaptured(c) => {
                if self.status == OrderStatus::Draft {
                    return Err(OrderError::DraftNotFinalised);
                }
                let known = d
                    .payments
                    .get(&c.payment_id)
                    .copied()
                    .unwrap_or_else(|| Money::zero(d.totals.currency));
                let amount = c.captured_total.checked_sub(known)?;
                // A stale or repeated report: the payment already told us this much.
                if !amount.is_positive() {
                    return Ok(vec![]);
                }
                one(OrderPaymentCaptured {
                    payment_id: c.payment_id,
                    amount,
                    payment_captured_total: c.captured_total,
                    paid_total: d.paid.checked_add(amount)?,
                    at: c.at,
                })
            }
            OrderCommand::RecordRefund(c) => {
                if self.status == OrderStatus::Draft {
                    return Err(OrderError::DraftNotFinalised);
                }
                if self.refund_ids.contains(&c.refund_id) {
                    return Ok(vec![]);
                }
                if !c.amount.is_positive() {
                    return Err(OrderError::NonPositiveAmount(c.amount));
                }
                if let Some(return_id) = c.return_id {
                    self.known_return(return_id)?;
                }
                let refundable_remaining = d.paid.checked_sub(d.refunded)?.checked_sub(c.amount)?;
                if refundable_remaining.is_negative() {
                    return Err(OrderError::RefundExceedsPaid {
                        paid: d.paid,
                        refunded: d.refunded,
                        requested: c.amount,
                    });
                }
                one(OrderRefundRecorded {
                    refund_id: c.refund_id,
                    amount: c.amount,
                    return_id: c.return_id,
                    refunded_total: d.refunded.checked_add(c.amount)?,
                    refundable_remaining,
                    at: c.at,
                })
            }
            OrderCommand::RequestExchange(c) => {
                self.must_be_open()?;
                if c.replacement_order_id == d.order_id {
                    return Err(OrderError::ExchangeOrderIsThisOrder);
                }
                let r = self.known_return(c.return_id)?;
                if r.status == ReturnStatus::Rejected {
                    return Err(OrderError::ExchangeForRejectedReturn(c.return_id));
                }
                if r.exchange_order.is_some() {
                    return Err(OrderError::ExchangeAlreadyRequested(c.return_id));
                }
                one(OrderExchangeRequested {
                    return_id: c.return_id,
                    replacement_order_id: c.replacement_order_id,
                    at: c.at,
                })
            }
            OrderCommand::CompleteOrder { at } => {
                self.must_be_open()?;
                if !self.fully_delivered {
                    return Err(OrderError::NotDelivered);
                }
                if let Some((id, _)) = self.returns.iter().find(|(_, r)| r.is_open()) {
                    return Err(OrderError::OpenReturn(*id));
                }
                one(OrderCompleted {
                    grand_total: d.totals.grand_total,
                    paid: d.paid,
                    refunded: d.refunded,
                    at,
                })
            }
        }
    }

    fn evolve(&mut self, event: &OrderEvent) {
        if let OrderEvent::OrderPlaced(e) = event {
            let zero = Money::zero(e.totals.currency);
            self.details = Some(OrderDetails {
                order_id: e.order_id,
                customer_id: e.customer_id,
                lines: e.lines.iter().cloned().map(line_state).collect(),
                totals: e.totals.clone(),
                tax_rate_bp: e.tax_rate_bp,
                shipping_address: e.shipping_address.clone(),
                payments: Default::default(),
                paid: zero,
                refunded: zero,
            });
            self.status = if e.draft {
                OrderStatus::Draft
            } else {
                OrderStatus::Placed
            };
            return;
        }
        let Some(d) = self.details.as_mut() else {
            return;
        };
        match event {
            OrderEvent::OrderPlaced(_) => {}
            OrderEvent::OrderLineAdded(e) => {
                d.lines.push(line_state(e.line.clone()));
                d.totals = e.totals.clone();
            }
            OrderEvent::OrderDraftFinalised(e) => {
                d.totals = e.totals.clone();
                self.status = OrderStatus::Placed;
            }
            OrderEvent::OrderConfirmed(_) => self.status = OrderStatus::Confirmed,
            OrderEvent::OrderLineQuantityChanged(e) => {
                if let Some(l) = d.lines.iter_mut().find(|l| l.line.sku == e.sku) {
                    l.line = e.line.clone();
                }
                d.totals = e.totals.clone();
            }
            OrderEvent::OrderLineRemoved(e) => {
                d.lines.retain(|l| l.line.sku != e.sku);
                d.totals = e.totals.clone();
            }
            OrderEvent::OrderShippingAddressChanged(e) => {
                d.shipping_address = e.address.clone();
                d.tax_rate_bp = e.tax_rate_bp;
                d.totals = e.totals.clone();
            }
            OrderEvent::OrderCancelled(_) => self.status = OrderStatus::Cancelled,
            OrderEvent::OrderShipmentRecorded(e) => {
                self.shipments
                    .insert(e.shipment_id, (e.lines.clone(), false));
                for l in &e.shipped_totals {
                    self.shipped.insert(l.sku.clone(), l.quantity);
                }
            }
            OrderEvent::OrderShipmentDelivered(e) => {
                if let Some(s) = self.shipments.get_mut(&e.shipment_id) {
                    s.1 = true;
                }
                for l in &e.delivered_totals {
                    self.delivered.insert(l.sku.clone(), l.quantity);
                }
                for l in &e.lines {
                    self.last_delivered_at.insert(l.sku.clone(), e.at);
                }
            }
            OrderEvent::OrderShipmentReturnedToSender(e) => {
                self.returned_shipments.insert(e.shipment_id);
                for l in &e.returned_totals {
                    self.returned_to_sender.insert(l.sku.clone(), l.quantity);
                }
            }
            OrderEvent::OrderDelivered(_) => self.fully_delivered = true,
            OrderEvent::OrderReturnRequested(e) => {
                self.returns.insert(
                    e.return_id,
                    ReturnRecord {
                        lines: e.lines.clone(),
                        status: ReturnStatus::Requested,
                        exchange_order: None,
                    },
                );
            }
            OrderEvent::OrderReturnApproved(e) => {
                self.set_return_status(e.return_id, ReturnStatus::Approved)
            }
            OrderEvent::OrderReturnRejected(e) => {
                self.set_return_status(e.return_id, ReturnStatus::Rejected)
            }
            OrderEvent::OrderReturnReceived(e) => {
                self.set_return_status(e.return_id, ReturnStatus::Received)
            }
            OrderEvent::OrderPaymentCaptured(e) => {
                d.payments.insert(e.payment_id, e.payment_captured_total);
                d.paid = e.paid_total;
            }
            OrderEvent::OrderRefundRecorded(e) => {
                self.refund_ids.insert(e.refund_id);
                d.refunded = e.refunded_total;
            }
            OrderEvent::OrderExchangeRequested(e) => {
                if let Some(r) = self.returns.get_mut(&e.return_id) {
                    r.exchange_order = Some(e.replacement_order_id);
                }
            }
            OrderEvent::OrderCompleted(_) => self.status = OrderStatus::Completed,
        }
    }
}

fn place(c: PlaceOrder) -> Result<Vec<OrderEvent>, OrderError> {
    if c.payment_method_token.trim().is_empty() {
        return Err(OrderError::MissingPaymentMethod);
    }
    if c.lines.is_empty() {
        return Err(OrderError::NoLines);
    }
    let mut seen = BTreeSet::new();
    let mut lines = Vec::with_capacity(c.lines.len());
    for line in c.lines {
        if !seen.insert(line.sku.clone()) {
            return Err(OrderError::DuplicateLine(line.sku));
        }
        lines.push(price_line(line, c.currency)?);
    }
    let totals = totals(
        c.currency,
        &lines,
        c.shipping,
        c.tax_rate_bp,
        c.points_value,
    )?;
    one(OrderPlaced {
        order_id: c.order_id,
        customer_id: c.customer_id,
        cart_id: c.cart_id,
        lines,
        totals,
        tax_rate_bp: c.tax_rate_bp,
        shipping_address: c.shipping_address,
        billing_address: c.billing_address,
        payment_method_token: c.payment_method_token,
        draft: c.draft,
        at: c.at,
    })
}

fn one(event: impl Into<OrderEvent>) -> Result<Vec<OrderEvent>, OrderError> {
    Ok(vec![event.into()])
}

fn line_state(line: OrderLine) -> LineState {
    LineState {
        base_quantity: line.quantity,
        base_discount: line.discount,
        line,
    }
}

/// New totals after an edit and the change of the grand total.
fn repriced(
    d: &OrderDetails,
    lines: &[OrderLine],
    shipping: Money,
    tax_rate_bp: u32,
) -> Result<(OrderTotals, Money), OrderError> {
    let new = totals(
        d.totals.currency,
        lines,
        shipping,
        tax_rate_bp,
        d.totals.points_value,
    )?;
    let difference = new.grand_total.checked_sub(d.totals.grand_total)?;
    Ok((new, difference))
}

/// A parcel (`lines`) reaches an end, delivered or back at the sender: per order line,
/// the units that ended that way so far (`ended`) plus the parcel's, and whether no unit
/// is still on its way once the units that ended the other way (`other`) are counted too.
/// Never above the shipped quantity, which is bounded by the ordered one.
fn settle_parcel(
    d: &OrderDetails,
    lines: &[LineQuantity],
    ended: impl Fn(&crate::Sku) -> Quantity,
    other: impl Fn(&crate::Sku) -> Quantity,
) -> (Vec<LineQuantity>, bool) {
    let mut totals = Vec::with_capacity(d.lines.len());
    let mut all_settled = true;
    for line in &d.lines {
        let sku = &line.line.sku;
        let after = ended(sku)
            .checked_add(quantity_of(lines, sku))
            .unwrap_or(line.line.quantity);
        let settled = after.checked_add(other(sku)).unwrap_or(line.line.quantity);
        all_settled &= settled >= line.line.quantity;
        totals.push(LineQuantity {
            sku: sku.clone(),
            quantity: after,
        });
    }
    (totals, all_settled)
}

fn quantity_of(lines: &[LineQuantity], sku: &crate::Sku) -> Quantity {
    lines
        .iter()
        .find(|l| &l.sku == sku)
        .map_or(Quantity::ZERO, |l| l.quantity)
}

/// Shipment and return lines: at least one, each with units, each SKU once and on the order.
fn check_lines(
    d: &OrderDetails,
    lines: &[LineQuantity],
    empty: OrderError,
) -> Result<(), OrderError> {
    if lines.is_empty() {
        return Err(empty);
    }
    let mut seen = BTreeSet::new();
    for line in lines {
        if line.quantity == Quantity::ZERO {
            return Err(OrderError::ZeroQuantity(line.sku.clone()));
        }
        if !seen.insert(&line.sku) {
            return Err(OrderError::DuplicateLine(line.sku.clone()));
        }
        if d.line(&line.sku).is_none() {
            return Err(OrderError::UnknownLine(line.sku.clone()));
        }
    }
    Ok(())
}

impl Order {
    /// The lines of a parcel of this open order that has reached no end yet: neither
    /// delivered nor back at the sender. A parcel back at the sender was restocked and
    /// refunded, so a later delivery scan for it would count its units twice.
    fn parcel_on_its_way(
        &self,
        shipment_id: crate::ShipmentId,
    ) -> Result<&[LineQuantity], OrderError> {
        self.must_be_open()?;
        let (lines, delivered) = self
            .shipments
            .get(&shipment_id)
            .ok_or(OrderError::UnknownShipment(shipment_id))?;
        if *delivered {
            return Err(OrderError::ShipmentAlreadyDelivered(shipment_id));
        }
        if self.returned_shipments.contains(&shipment_id) {
            return Err(OrderError::ShipmentAlreadyReturned(shipment_id));
        }
        Ok(lines)
    }

    fn must_be_open(&self) -> Result<(), OrderError> {
        match self.status {
            OrderStatus::Cancelled => Err(OrderError::OrderCancelled),
            OrderStatus::Completed => Err(OrderError::OrderCompleted),
            _ => Ok(()),
        }
    }

    fn must_be_finalised(&self) -> Result<(), OrderError> {
        self.must_be_open()?;
        if self.status == OrderStatus::Draft {
            Err(OrderError::DraftNotFinalised)
        } else {
            Ok(())
        }
    }

    fn must_be_editable(&self) -> Result<(), OrderError> {
        self.must_be_open()?;
        if self.shipments.is_empty() {
            Ok(())
        } else {
            Err(OrderError::EditAfterShipment)
        }
    }

    fn known_return(&self, id: crate::ReturnId) -> Result<&ReturnRecord, OrderError> {
        self.returns.get(&id).ok_or(OrderError::UnknownReturn(id))
    }

    fn pending_return(&self, id: crate::ReturnId) -> Result<&ReturnRecord, OrderError> {
        let r = self.known_return(id)?;
        if r.status == ReturnStatus::Requested {
            Ok(r)
        } else {
            Err(OrderError::ReturnNotPending(id))
        }
    }

    fn set_return_status(&mut self, id: crate::ReturnId, status: ReturnStatus) {
        if let Some(r) = self.returns.get_mut(&id) {
            r.status = status;
        }
    }
}
