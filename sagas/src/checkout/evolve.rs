//! Folding inputs into the checkout state.

use aggregates::cart::CartEvent;
use aggregates::order::{OrderEvent, OrderLine, OrderPlaced, OrderTotals};
use aggregates::payment::{FraudOutcome, PaymentEvent};
use aggregates::shipment::ShipmentEvent;
use aggregates::stock::StockEvent;
use aggregates::Money;

use super::state::*;
use super::timer;
use crate::input::{DomainEvent, Input};
use crate::ports::payment::{AuthorizationOutcome, PaymentReply, PaymentRequest};
use crate::ports::{CarrierReply, CarrierRequest, PortReply, PortRequest};

pub(super) fn evolve(state: &mut CheckoutState, input: &Input) {
    match input {
        Input::Event(e) => match &e.event {
            DomainEvent::Cart(e) => cart(state, e),
            DomainEvent::Order(e) => order(state, e),
            DomainEvent::Payment(e) => payment(state, e),
            DomainEvent::Stock(e) => stock(state, e),
            DomainEvent::Shipment(e) => shipment(state, e),
            DomainEvent::Loyalty(_) => {}
        },
        Input::Timer(t) => {
            if t.name == timer::RETURN_WINDOW {
                state.return_window_closed = true;
            }
        }
        Input::Reply {
            key,
            request,
            reply,
        } => self::reply(state, *key, request, reply),
    }
}

fn cart(state: &mut CheckoutState, e: &CartEvent) {
    if let CartEvent::CartCheckedOut(e) = e {
        state.order_id = Some(e.order_id);
        state.coupons = e.coupons.iter().map(|t| t.code.to_string()).collect();
        state.points = e.totals.loyalty_points;
    }
}

fn facts(e: &OrderPlaced) -> OrderFacts {
    OrderFacts {
        customer_id: e.customer_id,
        currency: e.totals.currency,
        lines: lines(&e.lines),
        shipping: e.totals.shipping,
        tax_rate_bp: e.tax_rate_bp,
        grand_total: e.totals.grand_total,
        shipping_address: e.shipping_address.clone(),
        billing_address: e.billing_address.clone(),
        payment_method_token: e.payment_method_token.clone(),
        paid: Money::zero(e.totals.currency),
        refunded: Money::zero(e.totals.currency),
    }
}

fn lines(lines: &[OrderLine]) -> Vec<LineFacts> {
    lines
        .iter()
        .map(|l| LineFacts {
            sku: l.sku.clone(),
            name: l.name.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            line_total: l.line_total,
        })
        .collect()
}

fn retotal(state: &mut CheckoutState, totals: &OrderTotals) {
    if let Some(o) = &mut state.order {
        o.grand_total = totals.grand_total;
        o.shipping = totals.shipping;
    }
}

fn order(state: &mut CheckoutState, e: &OrderEvent) {
    match e {
        OrderEvent::OrderPlaced(e) => {
            if state.order.is_none() {
                // `order_id` is only known before placement from the checkout.
                state.placed_before_checkout = e.cart_id.is_some() && state.order_id.is_none();
            }
            state.order_id = Some(e.order_id);
            state.order = Some(facts(e));
            state.phase = if e.draft {
                Phase::Draft
            } else {
                Phase::Reserving
            };
        }
        OrderEvent::OrderDraftFinalised(e) => {
            if let Some(o) = &mut state.order {
                o.lines = lines(&e.lines);
                o.grand_total = e.totals.grand_total;
                o.shipping = e.totals.shipping;
            }
            state.phase = Phase::Reserving;
        }
        OrderEvent::OrderLineAdded(e) => {
            if let Some(o) = &mut state.order {
                o.lines.extend(lines(std::slice::from_ref(&e.line)));
            }
            retotal(state, &e.totals);
        }
        OrderEvent::OrderLineQuantityChanged(e) => {
            if let Some(o) = &mut state.order {
                if let Some(l) = o.lines.iter_mut().find(|l| l.sku == e.sku) {
                    *l = lines(std::slice::from_ref(&e.line)).remove(0);
                }
            }
            retotal(state, &e.totals);
        }
        OrderEvent::OrderLineRemoved(e) => {
            if let Some(o) = &mut state.order {
                o.lines.retain(|l| l.sku != e.sku);
            }
            // Its reservation is released in this step.
            state.reserved.remove(&e.sku);
            state.reserved_quantity.remove(&e.sku);
            retotal(state, &e.totals);
        }
        OrderEvent::OrderShippingAddressChanged(e) => {
            if let Some(o) = &mut state.order {
                o.shipping_address = e.address.clone();
                o.tax_rate_bp = e.tax_rate_bp;
            }
            retotal(state, &e.totals);
        }
        OrderEvent::OrderConfirmed(_) => state.phase = Phase::Confirmed,
        OrderEvent::OrderCancelled(_) => state.phase = Phase::Cancelled,
        OrderEvent::OrderDelivered(_) => state.phase = Phase::Delivered,
        OrderEvent::OrderCompleted(_) => state.phase = Phase::Completed,
        OrderEvent::OrderPaymentCaptured(e) => {
            if let Some(o) = &mut state.order {
                o.paid = e.paid_total;
            }
        }
        OrderEvent::OrderRefundRecorded(e) => {
            if let Some(o) = &mut state.order {
                o.refunded = e.refunded_total;
            }
            if let Some(r) = e.return_id.and_then(|id| state.returns.get_mut(&id)) {
                r.stage = ReturnStage::Refunded;
            }
        }
        OrderEvent::OrderReturnRequested(e) => {
            state.returns.insert(
                e.return_id,
                ReturnProgress {
                    lines: e.lines.clone(),
                    stage: ReturnStage::Requested,
                    label: None,
                    exchange: None,
                },
            );
        }
        OrderEvent::OrderExchangeRequested(e) => {
            if let Some(r) = state.returns.get_mut(&e.return_id) {
                r.exchange = Some(e.replacement_order_id);
            }
        }
        OrderEvent::OrderReturnApproved(e) => set_return(state, e.return_id, ReturnStage::Approved),
        OrderEvent::OrderReturnRejected(e) => set_return(state, e.return_id, ReturnStage::Rejected),
        OrderEvent::OrderReturnReceived(e) => set_return(state, e.return_id, ReturnStage::Received),
        OrderEvent::OrderShipmentDelivered(e) => {
            if let Some(s) = state.shipments.get_mut(&e.shipment_id) {
                s.stage = ShipmentStage::Delivered;
            }
        }
        _ => {}
    }
}

fn set_return(state: &mut CheckoutState, id: aggregates::ReturnId, stage: ReturnStage) {
    if let Some(r) = state.returns.get_mut(&id) {
        r.stage = stage;
    }
}

fn payment(state: &mut CheckoutState, e: &PaymentEvent) {
    let line_quantities = |state: &CheckoutState| {
        state.order.as_ref().map_or_else(Default::default, |o| {
            o.lines
                .iter()
                .map(|l| (l.sku.clone(), l.quantity))
                .collect()
        })
    };
    if let PaymentEvent::PaymentInitiated(e) = e {
        state.paid_lines = line_quantities(state);
        state.payment = Some(PaymentProgress {
            payment_id: e.payment_id,
            amount: e.amount,
            stage: PaymentStage::Initiated,
            authorize_key: None,
            reference: None,
            authorized: Money::zero(e.amount.currency),
            captured: Money::zero(e.amount.currency),
            refunded: Money::zero(e.amount.currency),
            capture_failures: Default::default(),
        });
        return;
    }
    let lines_now: std::collections::BTreeMap<_, _> = line_quantities(state);
    let Some(p) = &mut state.payment else { return };
    match e {
        PaymentEvent::PaymentFraudAssessed(e) => {
            p.stage = match e.outcome {
                FraudOutcome::Passed => PaymentStage::Authorizing,
                FraudOutcome::ReviewRequired => PaymentStage::InReview,
                FraudOutcome::Rejected => PaymentStage::Declined,
            };
        }
        PaymentEvent::PaymentFraudReviewed(e) => {
            p.stage = if e.approved {
                PaymentStage::Authorizing
            } else {
                PaymentStage::Declined
            };
        }
        PaymentEvent::PaymentActionRequired(_) => p.stage = PaymentStage::ActionRequired,
        PaymentEvent::PaymentAuthorized(e) => {
            p.stage = PaymentStage::Authorized;
            p.reference = Some(e.provider_reference.clone());
            p.authorized = e.amount;
        }
        PaymentEvent::PaymentAuthorizationAdjusted(e) => {
            p.amount = e.authorized;
            p.authorized = e.authorized;
            state.paid_lines = lines_now;
        }
        PaymentEvent::PaymentDeclined(_) => p.stage = PaymentStage::Declined,
        PaymentEvent::PaymentVoided(_) => p.stage = PaymentStage::Voided,
        PaymentEvent::PaymentCaptured(e) => p.captured = e.captured_total,
        PaymentEvent::PaymentRefunded(e) => p.refunded = e.refunded_total,
        _ => {}
    }
}

fn stock(state: &mut CheckoutState, e: &StockEvent) {
    match e {
        StockEvent::StockReserved(e) => {
            state.reserved.insert(e.sku.clone(), e.allocation.clone());
            state.reserved_quantity.insert(e.sku.clone(), e.quantity);
        }
        StockEvent::StockBackorderFilled(e) => {
            if let Some(held) = state.reserved.get_mut(&e.sku) {
                for a in &e.allocation {
                    match held.iter_mut().find(|h| h.warehouse == a.warehouse) {
                        Some(h) => {
                            h.quantity = aggregates::Quantity(h.quantity.get() + a.quantity.get())
                        }
                        None => held.push(a.clone()),
                    }
                }
            }
        }
        // A change that arrives after the line was removed (or the order closed) is
        // released again; it must not resurrect the line.
        StockEvent::StockReservationChanged(e) if state.reserved.contains_key(&e.sku) => {
            state.reserved.insert(e.sku.clone(), e.allocation.clone());
            state.reserved_quantity.insert(e.sku.clone(), e.quantity);
        }
        _ => {}
    }
}

fn shipment(state: &mut CheckoutState, e: &ShipmentEvent) {
    match e {
        ShipmentEvent::ShipmentCreated(e) => {
            state.shipments.insert(
                e.shipment_id,
                ShipmentProgress {
                    warehouse: e.warehouse.clone(),
                    lines: e.lines.clone(),
                    stage: ShipmentStage::Created,
                    tracking_number: None,
                    captured: false,
                    last_scan: None,
                },
            );
        }
        ShipmentEvent::ShipmentRevised(e) => {
            if let Some(s) = state.shipments.get_mut(&e.shipment_id) {
                s.lines = e.lines.clone();
            }
        }
        ShipmentEvent::ShipmentPacked(e) => ship_stage(state, e.shipment_id, ShipmentStage::Packed),
        ShipmentEvent::ShipmentLabelCreated(e) => {
            if let Some(s) = state.shipments.get_mut(&e.shipment_id) {
                s.stage = ShipmentStage::Labelled;
                s.tracking_number = Some(e.tracking_number.clone());
            }
        }
        ShipmentEvent::ShipmentDispatched(e) => {
            ship_stage(state, e.shipment_id, ShipmentStage::Dispatched)
        }
        ShipmentEvent::ShipmentDelivered(e) => {
            ship_stage(state, e.shipment_id, ShipmentStage::Delivered);
            scanned(state, e.shipment_id, e.at);
        }
        ShipmentEvent::ShipmentTrackingUpdated(e) => scanned(state, e.shipment_id, e.at),
        ShipmentEvent::ShipmentDeliveryFailed(e) => scanned(state, e.shipment_id, e.at),
        ShipmentEvent::ShipmentReturnedToSender(e) => {
            ship_stage(state, e.shipment_id, ShipmentStage::ReturnedToSender);
            scanned(state, e.shipment_id, e.at);
        }
        _ => {}
    }
}

fn scanned(
    state: &mut CheckoutState,
    id: aggregates::ShipmentId,
    at: chrono::DateTime<chrono::Utc>,
) {
    if let Some(s) = state.shipments.get_mut(&id) {
        s.last_scan = s.last_scan.max(Some(at));
    }
}

fn ship_stage(state: &mut CheckoutState, id: aggregates::ShipmentId, stage: ShipmentStage) {
    if let Some(s) = state.shipments.get_mut(&id) {
        s.stage = stage;
    }
}

fn reply(state: &mut CheckoutState, key: uuid::Uuid, request: &PortRequest, reply: &PortReply) {
    match (request, reply) {
        (
            PortRequest::Payment(PaymentRequest::Authorize { .. } | PaymentRequest::Status { .. }),
            PortReply::Payment(PaymentReply::Authorization(outcome)),
        ) => {
            let Some(p) = &mut state.payment else { return };
            if let PortRequest::Payment(PaymentRequest::Authorize { .. }) = request {
                p.authorize_key = Some(key);
            }
            if matches!(p.stage, PaymentStage::Authorized | PaymentStage::Declined) {
                return;
            }
            match outcome {
                AuthorizationOutcome::Unknown => p.stage = PaymentStage::Unknown,
                AuthorizationOutcome::NotFound => p.stage = PaymentStage::Authorizing,
                AuthorizationOutcome::ActionRequired { reference, .. } => {
                    p.reference = Some(reference.clone());
                }
                AuthorizationOutcome::Authorized { reference, .. } => {
                    p.reference = Some(reference.clone());
                }
                AuthorizationOutcome::Declined { .. } => {}
            }
        }
        (
            PortRequest::Payment(PaymentRequest::Capture { purpose, .. }),
            PortReply::Payment(reply),
        ) => {
            let Some(p) = &mut state.payment else { return };
            let Some((id, shipment)) = state
                .shipments
                .iter_mut()
                .find(|(id, _)| id.to_string() == *purpose)
            else {
                return;
            };
            match reply {
                PaymentReply::Captured { .. } => shipment.captured = true,
                PaymentReply::CaptureFailed { .. } => {
                    *p.capture_failures.entry(*id).or_default() += 1;
                }
                _ => {}
            }
        }
        (
            PortRequest::Carrier(CarrierRequest::ReturnLabel { return_id, .. }),
            PortReply::Carrier(CarrierReply::Label(label)),
        ) => {
            if let Some(r) = state.returns.get_mut(return_id) {
                r.label = Some(label.tracking_number.clone());
            }
        }
        _ => {}
    }
}
