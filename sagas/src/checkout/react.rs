//! The checkout saga's steps: what each input asks the world to do.

use std::collections::BTreeMap;

use aggregates::cart::CartEvent;
use aggregates::loyalty::{
    CommitHeldPoints, EarnPoints, HoldPoints, LoyaltyCommand, LoyaltyEvent,
    LoyaltyReferralQualified, QualifyReferral, ReturnHeldPoints, ReversePoints, RewardReferral,
};
use aggregates::order::{
    CancelOrder, CancellationReason, ChangeLineQuantity, LineQuantity, NewOrderLine, OrderCommand,
    OrderEvent, PlaceOrder, RecordDelivery, RecordPaymentCaptured, RecordRefund,
    RecordReturnToSender, RecordShipment,
};
use aggregates::payment::{
    AdjustAuthorization, AssessFraud, AuthorizePayment, CapturePayment, DeclinePayment,
    FraudInputs, FraudOutcome, InitiatePayment, PaymentCommand, PaymentEvent, RefundPayment,
    RequireAction,
};
use aggregates::promotion::{PromotionCommand, ReleaseRedemption, ReserveRedemption};
use aggregates::shipment::{
    CreateLabel, CreateShipment, DeliveryFailureReason, ReportDeliveryFailure, ReviseShipment,
    ShipmentCommand, ShipmentEvent, ShipmentLine, TrackingStatus, UpdateTracking,
};
use aggregates::stock::{
    ChangeReservation, CommitReservation, ReceiveStock, ReleaseReservation, ReserveStock,
    StockCommand, StockEvent,
};
use aggregates::{Money, OrderId, ShipmentId, WarehouseId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::figures::{capture_share, return_refund};
use super::state::*;
use super::{timer, CheckoutSettings};
use crate::dispatch::{Dispatch, Target};
use crate::input::{DomainEvent, Input};
use crate::ports::carrier::{Scan, TrackingUpdate};
use crate::ports::payment::{AuthorizationOutcome, PaymentReply, PaymentRequest};
use crate::ports::{CarrierReply, CarrierRequest, PortCall, PortReply, PortRequest};
use crate::saga::{derive_id, Reaction};

/// One step's context: the settings, the evolved state, the trigger and the time.
struct Step<'a> {
    settings: &'a CheckoutSettings,
    state: &'a CheckoutState,
    trigger: Uuid,
    now: DateTime<Utc>,
}

pub(super) fn react(
    settings: &CheckoutSettings,
    state: &CheckoutState,
    input: &Input,
    now: DateTime<Utc>,
) -> Reaction {
    let (Some(order_id), Some(_)) = (state.order_id, &state.order) else {
        // Only a checked-out cart so far: its coupons and points are remembered.
        return Reaction::none();
    };
    let step = Step {
        settings,
        state,
        trigger: input.trigger_id(),
        now,
    };
    match input {
        Input::Event(e) => match &e.event {
            DomainEvent::Order(e) => step.order_event(order_id, e),
            DomainEvent::Payment(e) => step.payment_event(order_id, e),
            DomainEvent::Stock(StockEvent::StockReserved(_)) => step.reconcile(order_id),
            DomainEvent::Stock(StockEvent::StockReservationChanged(_)) => step.reconcile(order_id),
            // Owed units were allocated: they ship in a later parcel.
            DomainEvent::Stock(StockEvent::StockBackorderFilled(_)) => step.reconcile(order_id),
            DomainEvent::Shipment(e) => step.shipment_event(order_id, e),
            DomainEvent::Loyalty(LoyaltyEvent::LoyaltyReferralQualified(e)) => {
                step.reward_referrer(e)
            }
            // The checkout of an order placed before it reached the saga: now its
            // coupons and points are known.
            DomainEvent::Cart(CartEvent::CartCheckedOut(_))
                if state.placed_before_checkout && state.phase == Phase::Reserving =>
            {
                step.reserve(order_id)
            }
            _ => Reaction::none(),
        },
        Input::Timer(t) => step.timer(order_id, &t.name),
        Input::Reply {
            key,
            request,
            reply,
        } => step.reply(order_id, *key, request, reply),
    }
}

fn order_target(order_id: OrderId, command: OrderCommand) -> Target {
    Target::Order(order_id.to_string(), command)
}

impl Step<'_> {
    fn order(&self) -> &OrderFacts {
        // `react` only builds a step once the order is known.
        self.state.order.as_ref().unwrap_or_else(|| unreachable!())
    }

    fn order_id(&self) -> OrderId {
        // `react` only builds a step once the order is known.
        self.state.order_id.unwrap_or_else(|| unreachable!())
    }

    fn customer(&self) -> String {
        self.order().customer_id.to_string()
    }

    fn cancel(&self, order_id: OrderId, reason: CancellationReason) -> Dispatch {
        cancel(order_id, reason, self.now)
    }

    fn call(&self, step: &str, request: PortRequest) -> PortCall {
        PortCall {
            key: derive_id(self.trigger, step),
            request,
        }
    }

    fn payment_target(&self, command: PaymentCommand) -> Option<Target> {
        let p = self.state.payment.as_ref()?;
        Some(Target::Payment(p.payment_id.to_string(), command))
    }

    fn payment_command(&self, reaction: Reaction, step: &str, command: PaymentCommand) -> Reaction {
        match self.payment_target(command) {
            Some(target) => reaction.command(Dispatch::new(step, target)),
            None => reaction,
        }
    }

    // ---- order events -------------------------------------------------------------

    fn order_event(&self, order_id: OrderId, e: &OrderEvent) -> Reaction {
        match e {
            OrderEvent::OrderPlaced(e) if !e.draft && !self.state.placed_before_checkout => {
                self.reserve(order_id)
            }
            OrderEvent::OrderDraftFinalised(_) => self.reserve(order_id),
            OrderEvent::OrderConfirmed(_) => self.reconcile(order_id),
            OrderEvent::OrderLineQuantityChanged(_)
            | OrderEvent::OrderShippingAddressChanged(_) => self.reconcile(order_id),
            OrderEvent::OrderLineRemoved(e) => {
                let release = Dispatch::new(
                    format!("release:{}", e.sku),
                    Target::Stock(
                        e.sku.to_string(),
                        StockCommand::ReleaseReservation(ReleaseReservation {
                            order_id,
                            at: self.now,
                        }),
                    ),
                );
                let mut r = self.reconcile(order_id);
                if !self.state.is_closed() {
                    r.commands.insert(0, release);
                }
                r
            }
            OrderEvent::OrderCancelled(_) => self.compensate(order_id),
            OrderEvent::OrderDelivered(_) => self.delivered(order_id),
            OrderEvent::OrderReturnApproved(e) => self.return_label(e.return_id),
            OrderEvent::OrderReturnReceived(e) => self.restock_and_refund(e.return_id, &e.lines),
            OrderEvent::OrderExchangeRequested(e) => {
                self.place_replacement(e.return_id, e.replacement_order_id)
            }
            // The customer's account decides whether this is their first completed order
            // and whether anyone referred them (`LoyaltyReferralQualified`).
            OrderEvent::OrderCompleted(_) => Reaction::none().command(Dispatch::new(
                "qualify-referral",
                Target::Loyalty(
                    self.customer(),
                    LoyaltyCommand::QualifyReferral(QualifyReferral {
                        order_id,
                        at: self.now,
                    }),
                ),
            )),
            OrderEvent::OrderRefundRecorded(_) | OrderEvent::OrderReturnRejected(_) => {
                self.complete_if_settled(order_id)
            }
            _ => Reaction::none(),
        }
    }

    /// The referred customer's first order completed: the account whose referral code
    /// they enrolled with (a referral code is its customer's id in hex) earns the
    /// reward, once per referred customer (the account refuses a second reward and a
    /// self-referral).
    fn reward_referrer(&self, e: &LoyaltyReferralQualified) -> Reaction {
        let Ok(referrer) = Uuid::try_parse(&e.referred_by) else {
            return Reaction::none();
        };
        if referrer == e.customer_id.0 || self.settings.referral_points == 0 {
            return Reaction::none();
        }
        Reaction::none().command(Dispatch::new(
            "reward-referrer",
            Target::Loyalty(
                referrer.to_string(),
                LoyaltyCommand::RewardReferral(RewardReferral {
                    referred_customer: e.customer_id,
                    referral_code: e.referred_by.clone(),
                    first_order_id: e.first_order_id,
                    points: self.settings.referral_points,
                    at: self.now,
                }),
            ),
        ))
    }

    /// Promotions, held points and stock for every line; the order must be paid before
    /// the authorization deadline.
    fn reserve(&self, order_id: OrderId) -> Reaction {
        let order = self.order();
        let mut r = Reaction::none();
        for code in &self.state.coupons {
            r = r.command(Dispatch::new(
                format!("redeem:{code}"),
                Target::Promotion(
                    code.clone(),
                    PromotionCommand::ReserveRedemption(ReserveRedemption {
                        order_id,
                        customer_id: order.customer_id,
                        at: self.now,
                    }),
                ),
            ));
        }
        if self.state.points > 0 {
            r = r.command(Dispatch::new(
                "hold-points",
                Target::Loyalty(
                    self.customer(),
                    LoyaltyCommand::HoldPoints(HoldPoints {
                        order_id,
                        points: self.state.points,
                        at: self.now,
                    }),
                ),
            ));
        }
        for line in &order.lines {
            r = r.command(Dispatch::new(
                format!("reserve:{}", line.sku),
                Target::Stock(
                    line.sku.to_string(),
                    StockCommand::ReserveStock(ReserveStock {
                        order_id,
                        quantity: line.quantity,
                        preferred_warehouses: Vec::new(),
                        expires_at: self.now + self.settings.reservation_ttl,
                        at: self.now,
                    }),
                ),
            ));
        }
        r.timer(
            timer::AUTHORIZATION_DEADLINE,
            self.now + self.settings.authorization_deadline,
        )
    }

    /// The last line's stock is reserved: pay (or confirm when nothing is due).
    fn after_reservation(&self, order_id: OrderId) -> Reaction {
        let s = self.state;
        if s.phase != Phase::Reserving
            || !s.fully_reserved()
            || !s.stock_matches()
            || s.payment.is_some()
        {
            return Reaction::none();
        }
        let order = self.order();
        if !order.grand_total.is_positive() {
            return Reaction::none().command(Dispatch::new(
                "confirm",
                order_target(order_id, OrderCommand::ConfirmOrder { at: self.now }),
            ));
        }
        let payment_id = payment_id(order_id);
        Reaction::none().command(Dispatch::new(
            "initiate-payment",
            Target::Payment(
                payment_id.to_string(),
                PaymentCommand::InitiatePayment(InitiatePayment {
                    payment_id,
                    order_id,
                    amount: order.grand_total,
                    method_token: order.payment_method_token.clone(),
                    provider: self.settings.provider.clone(),
                    at: self.now,
                }),
            ),
        ))
    }

    /// Brings everything in line with the order after an edit (or a step that may follow
    /// one): reservations to the lines' quantities first, then the authorization to the
    /// new total, then the shipments to the reservations. Each stage waits for the one
    /// before it to be reported, so a refusal stops the chain where it happened.
    fn reconcile(&self, order_id: OrderId) -> Reaction {
        let s = self.state;
        if !matches!(s.phase, Phase::Reserving | Phase::Paying | Phase::Confirmed) {
            return Reaction::none();
        }
        let mut r = Reaction::none();
        for line in &self.order().lines {
            match s.reserved_of(&line.sku) {
                Some(q) if q != line.quantity => {
                    r = r.command(Dispatch::new(
                        format!("change-reservation:{}", line.sku),
                        Target::Stock(
                            line.sku.to_string(),
                            StockCommand::ChangeReservation(ChangeReservation {
                                order_id,
                                quantity: line.quantity,
                                at: self.now,
                            }),
                        ),
                    ));
                }
                _ => {}
            }
        }
        if !r.commands.is_empty() {
            return r;
        }
        match s.phase {
            Phase::Reserving => self.after_reservation(order_id),
            // The authorization under way is for the total at initiation; it is
            // adjusted once the order is confirmed.
            Phase::Paying => r,
            _ if !s.payment_matches() => self.update_authorization(),
            _ => self.plan_shipments(order_id),
        }
    }

    /// The authorization to the order's new total (an edit changed it).
    fn update_authorization(&self) -> Reaction {
        let (Some(p), order) = (&self.state.payment, self.order()) else {
            return Reaction::none();
        };
        let Some(reference) = p.reference.clone() else {
            return Reaction::none();
        };
        Reaction::none().call(self.call(
            "update-authorization",
            PortRequest::Payment(PaymentRequest::UpdateAuthorization {
                payment_id: p.payment_id,
                reference,
                amount: order.grand_total,
            }),
        ))
    }

    /// The provider would not raise the authorization: the edit is undone (every line
    /// back to the quantity the authorization covers). A raised total with no line to
    /// undo (a new address's tax) cannot be paid: the order is cancelled.
    fn edit_declined(&self, order_id: OrderId) -> Reaction {
        let mut r = Reaction::none();
        for line in &self.order().lines {
            match self.state.paid_lines.get(&line.sku) {
                Some(paid) if *paid < line.quantity => {
                    r = r.command(revert_line(order_id, line.sku.clone(), *paid, self.now));
                }
                _ => {}
            }
        }
        if r.commands.is_empty() {
            return r.command(self.cancel(order_id, CancellationReason::PaymentDeclined));
        }
        r
    }

    /// One shipment per warehouse the stock is allocated in: created when new, revised
    /// when an edit changed its lines (emptied when nothing is left there). Units
    /// allocated later (a backorder filled) join the warehouse's shipment while it waits
    /// to be picked, else leave in a later shipment of their own.
    fn plan_shipments(&self, order_id: OrderId) -> Reaction {
        let plan = self.shipment_plan();
        let mut r = Reaction::none();
        for (warehouse, lines) in &plan {
            let primary = shipment_id(order_id, warehouse);
            let Some(existing) = self.state.shipments.get(&primary) else {
                r = r.command(Dispatch::new(
                    format!("ship-from:{warehouse}"),
                    Target::Shipment(
                        primary.to_string(),
                        ShipmentCommand::CreateShipment(CreateShipment {
                            shipment_id: primary,
                            order_id,
                            warehouse: warehouse.clone(),
                            lines: lines.clone(),
                            at: self.now,
                        }),
                    ),
                ));
                continue;
            };
            let in_warehouse: Vec<(&ShipmentId, &ShipmentProgress)> = self
                .state
                .shipments
                .iter()
                .filter(|(_, x)| &x.warehouse == warehouse)
                .collect();
            let later: Vec<&ShipmentLine> = in_warehouse
                .iter()
                .filter(|(id, _)| **id != primary)
                .flat_map(|(_, x)| x.lines.iter())
                .collect();
            if existing.stage == ShipmentStage::Created {
                let target = units_less(lines, later);
                if !same_lines(&existing.lines, &target) {
                    r = r.command(self.revise(primary, target));
                }
                continue;
            }
            let extra = units_less(
                lines,
                later.into_iter().chain(existing.lines.iter()).collect(),
            );
            if extra.is_empty() {
                continue;
            }
            // Numbered by the shipments the warehouse has: a step repeated before the
            // new shipment is reported names the same one.
            let later_id = ShipmentId::from_uuid(crate::saga::entity_id(
                "shipment",
                &format!("{order_id}/{warehouse}/{}", in_warehouse.len()),
            ));
            r = r.command(Dispatch::new(
                format!("ship-later-from:{warehouse}"),
                Target::Shipment(
                    later_id.to_string(),
                    ShipmentCommand::CreateShipment(CreateShipment {
                        shipment_id: later_id,
                        order_id,
                        warehouse: warehouse.clone(),
                        lines: extra,
                        at: self.now,
                    }),
                ),
            ));
        }
        for (id, existing) in &self.state.shipments {
            if !plan.contains_key(&existing.warehouse) && !existing.lines.is_empty() {
                r = r.command(self.revise(*id, Vec::new()));
            }
        }
        r
    }

    /// A shipment created with lines an edit has changed since (its creation was
    /// reported after the edit): revised to the plan.
    fn revise_if_stale(&self, shipment_id: ShipmentId) -> Reaction {
        let s = self.state;
        if s.phase != Phase::Confirmed || !s.stock_matches() || !s.payment_matches() {
            return Reaction::none();
        }
        let step = format!("revise:{shipment_id}");
        let mut r = self.plan_shipments(self.order_id());
        r.commands.retain(|d| d.step == step);
        r
    }

    fn revise(&self, shipment_id: ShipmentId, lines: Vec<ShipmentLine>) -> Dispatch {
        Dispatch::new(
            format!("revise:{shipment_id}"),
            Target::Shipment(
                shipment_id.to_string(),
                ShipmentCommand::ReviseShipment(ReviseShipment {
                    lines,
                    at: self.now,
                }),
            ),
        )
    }

    /// The lines each warehouse ships: the stock allocated there, by SKU.
    fn shipment_plan(&self) -> BTreeMap<WarehouseId, Vec<ShipmentLine>> {
        let mut by_warehouse: BTreeMap<WarehouseId, Vec<ShipmentLine>> = BTreeMap::new();
        for (sku, allocations) in &self.state.reserved {
            for a in allocations.iter().filter(|a| a.quantity.get() > 0) {
                by_warehouse
                    .entry(a.warehouse.clone())
                    .or_default()
                    .push(ShipmentLine {
                        sku: sku.clone(),
                        quantity: a.quantity,
                    });
            }
        }
        by_warehouse
    }

    /// Stock, promotions and points go back; the payment is voided, or refunded when
    /// money was already captured.
    fn compensate(&self, order_id: OrderId) -> Reaction {
        let mut r = Reaction::none().cancel_timer(timer::AUTHORIZATION_DEADLINE);
        for line in &self.order().lines {
            r = r.command(Dispatch::new(
                format!("release:{}", line.sku),
                Target::Stock(
                    line.sku.to_string(),
                    StockCommand::ReleaseReservation(ReleaseReservation {
                        order_id,
                        at: self.now,
                    }),
                ),
            ));
        }
        for code in &self.state.coupons {
            r = r.command(Dispatch::new(
                format!("unredeem:{code}"),
                Target::Promotion(
                    code.clone(),
                    PromotionCommand::ReleaseRedemption(ReleaseRedemption {
                        order_id,
                        at: self.now,
                    }),
                ),
            ));
        }
        if self.state.points > 0 {
            r = r.command(Dispatch::new(
                "return-points",
                Target::Loyalty(
                    self.customer(),
                    LoyaltyCommand::ReturnHeldPoints(ReturnHeldPoints {
                        order_id,
                        at: self.now,
                    }),
                ),
            ));
        }
        self.settle_payment_of_cancelled(r, order_id)
    }

    fn settle_payment_of_cancelled(&self, r: Reaction, order_id: OrderId) -> Reaction {
        let Some(p) = &self.state.payment else {
            return r;
        };
        let Some(reference) = p.reference.clone() else {
            return r;
        };
        if p.stage == PaymentStage::Authorized && p.captured.is_zero() {
            return r.call(self.call(
                "void",
                PortRequest::Payment(PaymentRequest::Void {
                    payment_id: p.payment_id,
                    reference,
                }),
            ));
        }
        let owed = p.captured.checked_sub(p.refunded).unwrap_or(p.captured);
        if owed.is_positive() {
            return r.call(self.call(
                "refund-cancelled",
                PortRequest::Payment(PaymentRequest::Refund {
                    payment_id: p.payment_id,
                    reference,
                    refund_id: cancellation_refund_id(order_id),
                    amount: owed,
                }),
            ));
        }
        r
    }

    fn delivered(&self, order_id: OrderId) -> Reaction {
        let order = self.order();
        let r =
            Reaction::none().timer(timer::RETURN_WINDOW, self.now + self.settings.return_window);
        // A refund the payment reported whose record on the order is still on its way
        // counts already (its points reversal found nothing earned yet).
        let refunded = match &self.state.payment {
            Some(p) if p.refunded.amount > order.refunded.amount => p.refunded,
            _ => order.refunded,
        };
        let paid = order.paid.checked_sub(refunded).unwrap_or(order.paid);
        if !paid.is_positive() {
            return r;
        }
        r.command(Dispatch::new(
            "earn-points",
            Target::Loyalty(
                self.customer(),
                LoyaltyCommand::EarnPoints(EarnPoints {
                    order_id,
                    order_amount: paid,
                    base_rate: self.settings.points_base_rate,
                    at: self.now,
                }),
            ),
        ))
    }

    /// The warehouse a SKU left from (the first shipment carrying it).
    fn warehouse_of(&self, sku: &aggregates::Sku) -> Option<WarehouseId> {
        self.state
            .shipments
            .values()
            .find(|s| s.lines.iter().any(|l| &l.sku == sku))
            .map(|s| s.warehouse.clone())
    }

    fn return_label(&self, return_id: aggregates::ReturnId) -> Reaction {
        let Some(ret) = self.state.returns.get(&return_id) else {
            return Reaction::none();
        };
        let Some(to) = ret.lines.first().and_then(|l| self.warehouse_of(&l.sku)) else {
            return Reaction::none();
        };
        Reaction::none().call(self.call(
            "return-label",
            PortRequest::Carrier(CarrierRequest::ReturnLabel {
                return_id,
                from: self.order().shipping_address.clone(),
                to,
            }),
        ))
    }

    fn restock_and_refund(
        &self,
        return_id: aggregates::ReturnId,
        lines: &[LineQuantity],
    ) -> Reaction {
        let mut r = Reaction::none();
        for line in lines {
            let Some(warehouse) = self.warehouse_of(&line.sku) else {
                continue;
            };
            r = r.command(Dispatch::new(
                format!("restock:{}", line.sku),
                Target::Stock(
                    line.sku.to_string(),
                    StockCommand::ReceiveStock(ReceiveStock {
                        sku: line.sku.clone(),
                        warehouse,
                        quantity: line.quantity,
                        at: self.now,
                    }),
                ),
            ));
        }
        let exchanged = self
            .state
            .returns
            .get(&return_id)
            .is_some_and(|r| r.exchange.is_some());
        if exchanged {
            // The replacement order pays for the returned units: nothing to refund, and
            // the order may complete if its window has closed meanwhile.
            let complete = self.complete_if_settled(self.order_id());
            r.commands.extend(complete.commands);
            return r;
        }
        let (Some(p), Ok(amount)) = (&self.state.payment, return_refund(self.state, lines)) else {
            return r;
        };
        match (&p.reference, amount.is_positive()) {
            (Some(reference), true) => r.call(self.call(
                "refund-return",
                PortRequest::Payment(PaymentRequest::Refund {
                    payment_id: p.payment_id,
                    reference: reference.clone(),
                    refund_id: return_refund_id(return_id),
                    amount,
                }),
            )),
            _ => r,
        }
    }

    /// The replacement of an exchange: the returned units again, at their price fully
    /// discounted, shipped free to the same address, so nothing is due and its own saga
    /// reserves, confirms and ships it without a payment.
    fn place_replacement(&self, return_id: aggregates::ReturnId, replacement: OrderId) -> Reaction {
        let Some(ret) = self.state.returns.get(&return_id) else {
            return Reaction::none();
        };
        let order = self.order();
        let mut lines = Vec::with_capacity(ret.lines.len());
        for l in &ret.lines {
            let Some(line) = order.lines.iter().find(|x| x.sku == l.sku) else {
                continue;
            };
            let Ok(gross) = line.unit_price.times(l.quantity.get()) else {
                return Reaction::none();
            };
            lines.push(NewOrderLine {
                sku: l.sku.clone(),
                name: line.name.clone(),
                quantity: l.quantity,
                unit_price: line.unit_price,
                discount: gross,
            });
        }
        Reaction::none().command(Dispatch::new(
            "place-replacement",
            order_target(
                replacement,
                OrderCommand::PlaceOrder(PlaceOrder {
                    order_id: replacement,
                    customer_id: order.customer_id,
                    cart_id: None,
                    currency: order.currency,
                    lines,
                    shipping: Money::zero(order.currency),
                    tax_rate_bp: order.tax_rate_bp,
                    points_value: Money::zero(order.currency),
                    shipping_address: order.shipping_address.clone(),
                    billing_address: order.billing_address.clone(),
                    payment_method_token: order.payment_method_token.clone(),
                    draft: false,
                    at: self.now,
                }),
            ),
        ))
    }

    fn complete_if_settled(&self, order_id: OrderId) -> Reaction {
        let s = self.state;
        if s.phase != Phase::Delivered || !s.return_window_closed || s.open_returns() {
            return Reaction::none();
        }
        Reaction::none().command(Dispatch::new(
            "complete",
            order_target(order_id, OrderCommand::CompleteOrder { at: self.now }),
        ))
    }

    // ---- payment events -----------------------------------------------------------

    fn payment_event(&self, order_id: OrderId, e: &PaymentEvent) -> Reaction {
        let closed = self.state.is_closed();
        match e {
            PaymentEvent::PaymentInitiated(_) if !closed => self.payment_command(
                Reaction::none(),
                "assess-fraud",
                PaymentCommand::AssessFraud(AssessFraud {
                    inputs: self.fraud_inputs(),
                    policy: None,
                    at: self.now,
                }),
            ),
            PaymentEvent::PaymentFraudAssessed(e) => match e.outcome {
                FraudOutcome::Passed if !closed => self.authorize(),
                FraudOutcome::Rejected if !closed => Reaction::none()
                    .command(self.cancel(order_id, CancellationReason::FraudRejected)),
                _ => Reaction::none(),
            },
            PaymentEvent::PaymentFraudReviewed(e) if !closed => {
                if e.approved {
                    self.authorize()
                } else {
                    Reaction::none()
                        .command(self.cancel(order_id, CancellationReason::FraudRejected))
                }
            }
            PaymentEvent::PaymentAuthorized(e) => self.authorized(order_id, e.amount),
            PaymentEvent::PaymentAuthorizationAdjusted(_) => self.reconcile(order_id),
            PaymentEvent::PaymentDeclined(_) => {
                let r = Reaction::none().cancel_timer(timer::PAYMENT_STATUS);
                if closed {
                    r
                } else {
                    r.command(self.cancel(order_id, CancellationReason::PaymentDeclined))
                }
            }
            PaymentEvent::PaymentCaptured(e) => Reaction::none().command(Dispatch::new(
                "record-capture",
                order_target(
                    order_id,
                    OrderCommand::RecordPaymentCaptured(RecordPaymentCaptured {
                        payment_id: e.payment_id,
                        captured_total: e.captured_total,
                        at: self.now,
                    }),
                ),
            )),
            PaymentEvent::PaymentRefunded(e) => {
                let return_id = self
                    .state
                    .returns
                    .keys()
                    .find(|id| return_refund_id(**id) == e.refund_id)
                    .copied();
                let r = Reaction::none().command(Dispatch::new(
                    "record-refund",
                    order_target(
                        order_id,
                        OrderCommand::RecordRefund(RecordRefund {
                            refund_id: e.refund_id,
                            amount: e.amount,
                            return_id,
                            at: self.now,
                        }),
                    ),
                ));
                let returned_parcel = self
                    .state
                    .shipments
                    .keys()
                    .any(|id| returned_parcel_refund_id(*id) == e.refund_id);
                if return_id.is_none() && !returned_parcel {
                    return r;
                }
                r.command(Dispatch::new(
                    "reverse-points",
                    Target::Loyalty(
                        self.customer(),
                        LoyaltyCommand::ReversePoints(ReversePoints {
                            order_id,
                            refunded_amount: e.amount,
                            at: self.now,
                        }),
                    ),
                ))
            }
            _ => Reaction::none(),
        }
    }

    /// Facts for the fraud score that the order itself knows. The customer's history
    /// (orders in the last day, first order, e-mail, failed attempts elsewhere) is not
    /// looked up yet and counts as unremarkable.
    fn fraud_inputs(&self) -> FraudInputs {
        let order = self.order();
        FraudInputs {
            customer_orders_last_24h: 0,
            billing_country: order.billing_address.country.clone(),
            shipping_country: order.shipping_address.country.clone(),
            first_order: false,
            email: String::new(),
            failed_attempts: 0,
        }
    }

    fn authorize(&self) -> Reaction {
        let Some(p) = &self.state.payment else {
            return Reaction::none();
        };
        Reaction::none().call(self.call(
            "authorize",
            PortRequest::Payment(PaymentRequest::Authorize {
                payment_id: p.payment_id,
                amount: p.amount,
                method_token: self.order().payment_method_token.clone(),
            }),
        ))
    }

    fn authorized(&self, order_id: OrderId, amount: Money) -> Reaction {
        let r = Reaction::none()
            .cancel_timer(timer::PAYMENT_STATUS)
            .cancel_timer(timer::AUTHORIZATION_DEADLINE);
        let Some(p) = &self.state.payment else {
            return r;
        };
        let void = |r: Reaction| match &p.reference {
            Some(reference) => r.call(self.call(
                "void",
                PortRequest::Payment(PaymentRequest::Void {
                    payment_id: p.payment_id,
                    reference: reference.clone(),
                }),
            )),
            None => r,
        };
        if self.state.phase == Phase::Cancelled {
            // Authorized too late (an answer that was lost, a challenge passed after the
            // deadline): never leave money held for a cancelled order.
            return void(r);
        }
        if amount.amount < p.amount.amount {
            // A partial authorization cannot pay the order.
            return void(r).command(self.cancel(order_id, CancellationReason::PaymentDeclined));
        }
        r.command(Dispatch::new(
            "confirm",
            order_target(order_id, OrderCommand::ConfirmOrder { at: self.now }),
        ))
    }

    // ---- shipment events ----------------------------------------------------------

    fn shipment_event(&self, order_id: OrderId, e: &ShipmentEvent) -> Reaction {
        match e {
            ShipmentEvent::ShipmentCreated(e) => self.revise_if_stale(e.shipment_id),
            ShipmentEvent::ShipmentPacked(e) => self.label(e.shipment_id),
            ShipmentEvent::ShipmentDispatched(e) => self.dispatched(order_id, e.shipment_id),
            ShipmentEvent::ShipmentReturnedToSender(e) => {
                self.returned_to_sender(order_id, e.shipment_id)
            }
            ShipmentEvent::ShipmentDelivered(e) => Reaction::none()
                .cancel_timer(timer::tracking(&e.shipment_id))
                .command(Dispatch::new(
                    "record-delivery",
                    order_target(
                        order_id,
                        OrderCommand::RecordDelivery(RecordDelivery {
                            shipment_id: e.shipment_id,
                            at: self.now,
                        }),
                    ),
                )),
            _ => Reaction::none(),
        }
    }

    /// A parcel came back undelivered: the order records it, its goods go back on the
    /// shelf they left, and what it captured is refunded (the refund reverses points in
    /// proportion); a capture not made yet is never made.
    fn returned_to_sender(&self, order_id: OrderId, shipment_id: ShipmentId) -> Reaction {
        let s = self.state;
        let Some(shipment) = s.shipments.get(&shipment_id) else {
            return Reaction::none();
        };
        let mut r = Reaction::none()
            .cancel_timer(timer::tracking(&shipment_id))
            .cancel_timer(timer::capture(&shipment_id))
            .command(Dispatch::new(
                "record-returned",
                order_target(
                    order_id,
                    OrderCommand::RecordReturnToSender(RecordReturnToSender {
                        shipment_id,
                        at: self.now,
                    }),
                ),
            ));
        for line in &shipment.lines {
            // The reservation is committed (on-hand lowered) once every parcel carrying
            // the SKU has left; only then are the returned units put back.
            let committed = s
                .shipments
                .values()
                .filter(|x| x.lines.iter().any(|l| l.sku == line.sku))
                .all(|x| {
                    matches!(
                        x.stage,
                        ShipmentStage::Dispatched
                            | ShipmentStage::Delivered
                            | ShipmentStage::ReturnedToSender
                    )
                });
            if committed {
                r = r.command(Dispatch::new(
                    format!("restock-returned:{}", line.sku),
                    Target::Stock(
                        line.sku.to_string(),
                        StockCommand::ReceiveStock(ReceiveStock {
                            sku: line.sku.clone(),
                            warehouse: shipment.warehouse.clone(),
                            quantity: line.quantity,
                            at: self.now,
                        }),
                    ),
                ));
            }
        }
        let Some(p) = &s.payment else {
            return r;
        };
        let Some(reference) = p.reference.clone() else {
            return r;
        };
        if shipment.captured {
            let refundable = p.captured.checked_sub(p.refunded).unwrap_or(p.captured);
            let share = capture_share(s, shipment_id).and_then(|m| m.min(refundable));
            if let Some(amount) = share.ok().filter(Money::is_positive) {
                return r.call(self.call(
                    "refund-returned-parcel",
                    PortRequest::Payment(PaymentRequest::Refund {
                        payment_id: p.payment_id,
                        reference,
                        refund_id: returned_parcel_refund_id(shipment_id),
                        amount,
                    }),
                ));
            }
            return r;
        }
        // Nothing captured and no parcel left to capture: the hold goes back at once.
        let nothing_to_capture = s
            .shipments
            .values()
            .all(|x| x.stage == ShipmentStage::ReturnedToSender);
        if p.stage == PaymentStage::Authorized && p.captured.is_zero() && nothing_to_capture {
            return r.call(self.call(
                "void",
                PortRequest::Payment(PaymentRequest::Void {
                    payment_id: p.payment_id,
                    reference,
                }),
            ));
        }
        r
    }

    fn label(&self, shipment_id: ShipmentId) -> Reaction {
        let Some(s) = self.state.shipments.get(&shipment_id) else {
            return Reaction::none();
        };
        Reaction::none().call(self.call(
            "label",
            PortRequest::Carrier(CarrierRequest::Label {
                shipment_id,
                from: s.warehouse.clone(),
                to: self.order().shipping_address.clone(),
            }),
        ))
    }

    /// The parcel left: the order records it, the SKUs whose every shipment left commit
    /// their stock, held points are spent for good (the order can no longer be
    /// cancelled), this shipment's share is captured, and tracking starts.
    fn dispatched(&self, order_id: OrderId, shipment_id: ShipmentId) -> Reaction {
        let s = self.state;
        let Some(shipment) = s.shipments.get(&shipment_id) else {
            return Reaction::none();
        };
        let mut r = Reaction::none().command(Dispatch::new(
            "record-shipment",
            order_target(
                order_id,
                OrderCommand::RecordShipment(RecordShipment {
                    shipment_id,
                    lines: shipment
                        .lines
                        .iter()
                        .map(|l| LineQuantity {
                            sku: l.sku.clone(),
                            quantity: l.quantity,
                        })
                        .collect(),
                    at: self.now,
                }),
            ),
        ));
        for line in &shipment.lines {
            let all_left = s
                .shipments
                .values()
                .filter(|x| x.lines.iter().any(|l| l.sku == line.sku))
                .all(|x| {
                    matches!(
                        x.stage,
                        ShipmentStage::Dispatched | ShipmentStage::Delivered
                    )
                });
            // A reservation with units still owed cannot be committed: the parcel that
            // carries them commits it all.
            if all_left && s.backordered_of(&line.sku) == 0 {
                r = r.command(Dispatch::new(
                    format!("commit-stock:{}", line.sku),
                    Target::Stock(
                        line.sku.to_string(),
                        StockCommand::CommitReservation(CommitReservation {
                            order_id,
                            at: self.now,
                        }),
                    ),
                ));
            }
        }
        let first_to_leave = s
            .shipments
            .values()
            .filter(|x| {
                matches!(
                    x.stage,
                    ShipmentStage::Dispatched | ShipmentStage::Delivered
                )
            })
            .count()
            == 1;
        if s.points > 0 && first_to_leave {
            r = r.command(Dispatch::new(
                "spend-points",
                Target::Loyalty(
                    self.customer(),
                    LoyaltyCommand::CommitHeldPoints(CommitHeldPoints {
                        order_id,
                        at: self.now,
                    }),
                ),
            ));
        }
        r = r.timer(
            timer::tracking(&shipment_id),
            self.now + self.settings.tracking_poll,
        );
        let capture = self.capture_or_wait(shipment_id, "capture");
        r.commands.extend(capture.commands);
        r.calls.extend(capture.calls);
        r.timers.extend(capture.timers);
        r
    }

    /// Captures the shipment's share, unless an edit's new total still waits for the
    /// provider: the share would be of the wrong authorization, so it is tried later.
    fn capture_or_wait(&self, shipment_id: ShipmentId, step: &str) -> Reaction {
        if !self.state.payment_matches() {
            return Reaction::none().timer(
                timer::capture(&shipment_id),
                self.now + self.settings.status_retry,
            );
        }
        match self.capture(shipment_id, step) {
            Some(call) => Reaction::none().call(call),
            None => Reaction::none(),
        }
    }

    fn capture(&self, shipment_id: ShipmentId, step: &str) -> Option<PortCall> {
        let shipment = self.state.shipments.get(&shipment_id)?;
        if shipment.stage == ShipmentStage::ReturnedToSender {
            return None;
        }
        let p = self.state.payment.as_ref()?;
        let reference = p.reference.clone()?;
        let amount = capture_share(self.state, shipment_id).ok()?;
        if !amount.is_positive() {
            return None;
        }
        Some(self.call(
            step,
            PortRequest::Payment(PaymentRequest::Capture {
                payment_id: p.payment_id,
                reference,
                amount,
                purpose: shipment_id.to_string(),
            }),
        ))
    }

    // ---- timers -------------------------------------------------------------------

    fn timer(&self, order_id: OrderId, name: &str) -> Reaction {
        let s = self.state;
        if name == timer::AUTHORIZATION_DEADLINE {
            if !matches!(s.phase, Phase::Reserving | Phase::Paying) {
                return Reaction::none();
            }
            let mut r = Reaction::none();
            if let Some(p) = &s.payment {
                if matches!(
                    p.stage,
                    PaymentStage::Initiated
                        | PaymentStage::Authorizing
                        | PaymentStage::ActionRequired
                ) {
                    r = self.payment_command(
                        r,
                        "expire-authorization",
                        PaymentCommand::DeclinePayment(DeclinePayment {
                            reason_code: "authorization_timeout".into(),
                            at: self.now,
                        }),
                    );
                }
            }
            return r.command(self.cancel(order_id, CancellationReason::PaymentDeclined));
        }
        if name == timer::PAYMENT_STATUS {
            return match &s.payment {
                Some(p)
                    if matches!(
                        p.stage,
                        PaymentStage::Unknown | PaymentStage::ActionRequired
                    ) =>
                {
                    match p.authorize_key {
                        Some(authorize_key) => Reaction::none().call(self.call(
                            "status",
                            PortRequest::Payment(PaymentRequest::Status {
                                payment_id: p.payment_id,
                                authorize_key,
                            }),
                        )),
                        None => Reaction::none(),
                    }
                }
                _ => Reaction::none(),
            };
        }
        if name == timer::RETURN_WINDOW {
            return self.complete_if_settled(order_id);
        }
        if let Some(id) = name
            .strip_prefix("tracking:")
            .and_then(|id| id.parse().ok())
        {
            return self.poll_tracking(id);
        }
        if let Some(id) = name.strip_prefix("capture:").and_then(|id| id.parse().ok()) {
            return self.capture_or_wait(id, "capture-again");
        }
        Reaction::none()
    }

    fn poll_tracking(&self, shipment_id: ShipmentId) -> Reaction {
        match self.state.shipments.get(&shipment_id) {
            Some(s) if s.stage == ShipmentStage::Dispatched => match &s.tracking_number {
                Some(number) => Reaction::none().call(self.call(
                    "track",
                    PortRequest::Carrier(CarrierRequest::Track {
                        shipment_id,
                        tracking_number: number.clone(),
                    }),
                )),
                None => Reaction::none(),
            },
            _ => Reaction::none(),
        }
    }

    // ---- replies ------------------------------------------------------------------

    fn reply(
        &self,
        order_id: OrderId,
        key: Uuid,
        request: &PortRequest,
        reply: &PortReply,
    ) -> Reaction {
        match (request, reply) {
            (PortRequest::Payment(request), PortReply::Payment(reply)) => {
                self.payment_reply(order_id, key, request, reply)
            }
            (
                PortRequest::Carrier(CarrierRequest::Label { shipment_id, .. }),
                PortReply::Carrier(CarrierReply::Label(label)),
            ) => Reaction::none().command(Dispatch::new(
                "record-label",
                Target::Shipment(
                    shipment_id.to_string(),
                    ShipmentCommand::CreateLabel(CreateLabel {
                        carrier_code: label.carrier_code.clone(),
                        tracking_number: label.tracking_number.clone(),
                        label_reference: label.label_reference.clone(),
                        at: self.now,
                    }),
                ),
            )),
            (
                PortRequest::Carrier(CarrierRequest::Track { shipment_id, .. }),
                PortReply::Carrier(CarrierReply::Tracking(updates)),
            ) => self.scans(*shipment_id, updates),
            _ => Reaction::none(),
        }
    }

    fn payment_reply(
        &self,
        order_id: OrderId,
        key: Uuid,
        request: &PaymentRequest,
        reply: &PaymentReply,
    ) -> Reaction {
        let r = Reaction::none();
        if let PaymentRequest::UpdateAuthorization { .. } = request {
            return match reply {
                PaymentReply::Authorization(AuthorizationOutcome::Authorized {
                    amount, ..
                }) => self.payment_command(
                    r,
                    "adjust-authorization",
                    PaymentCommand::AdjustAuthorization(AdjustAuthorization {
                        amount: *amount,
                        at: self.now,
                    }),
                ),
                PaymentReply::Authorization(AuthorizationOutcome::Declined { .. }) => {
                    self.edit_declined(order_id)
                }
                _ => r,
            };
        }
        match reply {
            PaymentReply::Authorization(outcome) => self.authorization(key, outcome),
            PaymentReply::Captured { amount } => self.payment_command(
                r,
                "capture",
                PaymentCommand::CapturePayment(CapturePayment {
                    amount: *amount,
                    at: self.now,
                }),
            ),
            PaymentReply::CaptureFailed { .. } => {
                let PaymentRequest::Capture { purpose, .. } = request else {
                    return r;
                };
                let Ok(shipment_id) = purpose.parse::<ShipmentId>() else {
                    return r;
                };
                let failures = self
                    .state
                    .payment
                    .as_ref()
                    .and_then(|p| p.capture_failures.get(&shipment_id).copied())
                    .unwrap_or(0);
                if failures >= self.settings.capture_attempts {
                    // Left for a person: the saga shows the failed captures.
                    return r;
                }
                r.timer(
                    timer::capture(&shipment_id),
                    self.now + self.settings.capture_retry,
                )
            }
            PaymentReply::Voided => {
                self.payment_command(r, "void", PaymentCommand::VoidPayment { at: self.now })
            }
            PaymentReply::Refunded { amount } => {
                let PaymentRequest::Refund { refund_id, .. } = request else {
                    return r;
                };
                let _ = order_id;
                self.payment_command(
                    r,
                    "refund",
                    PaymentCommand::RefundPayment(RefundPayment {
                        refund_id: *refund_id,
                        amount: *amount,
                        at: self.now,
                    }),
                )
            }
            PaymentReply::RefundFailed { .. } => r,
        }
    }

    fn authorization(&self, key: Uuid, outcome: &AuthorizationOutcome) -> Reaction {
        let r = Reaction::none();
        let Some(p) = &self.state.payment else {
            return r;
        };
        match outcome {
            AuthorizationOutcome::Authorized { reference, amount } => self.payment_command(
                r,
                "authorized",
                PaymentCommand::AuthorizePayment(AuthorizePayment {
                    provider_reference: reference.clone(),
                    amount: *amount,
                    at: self.now,
                }),
            ),
            AuthorizationOutcome::Declined { code } => self.payment_command(
                r,
                "declined",
                PaymentCommand::DeclinePayment(DeclinePayment {
                    reason_code: code.clone(),
                    at: self.now,
                }),
            ),
            AuthorizationOutcome::ActionRequired {
                challenge_id,
                redirect_url,
                ..
            } => {
                // The outcome arrives by callback; until then the provider is asked now
                // and then, so a lost callback does not strand the order.
                let r = r.timer(timer::PAYMENT_STATUS, self.now + self.settings.status_retry);
                if p.stage == PaymentStage::ActionRequired {
                    return r;
                }
                self.payment_command(
                    r,
                    "action-required",
                    PaymentCommand::RequireAction(RequireAction {
                        challenge_id: challenge_id.clone(),
                        redirect_url: redirect_url.clone(),
                        at: self.now,
                    }),
                )
            }
            AuthorizationOutcome::Unknown => {
                r.timer(timer::PAYMENT_STATUS, self.now + self.settings.status_retry)
            }
            AuthorizationOutcome::NotFound => {
                // The provider never saw the attempt: repeat it under the same key, so
                // a late arrival of the first attempt cannot charge twice.
                let authorize_key = p.authorize_key.unwrap_or(key);
                r.call(PortCall {
                    key: authorize_key,
                    request: PortRequest::Payment(PaymentRequest::Authorize {
                        payment_id: p.payment_id,
                        amount: p.amount,
                        method_token: self.order().payment_method_token.clone(),
                    }),
                })
            }
        }
    }

    fn scans(&self, shipment_id: ShipmentId, updates: &[TrackingUpdate]) -> Reaction {
        let Some(s) = self.state.shipments.get(&shipment_id) else {
            return Reaction::none();
        };
        let target = |command| Target::Shipment(shipment_id.to_string(), command);
        let mut r = Reaction::none();
        let mut delivered = false;
        for (i, u) in updates
            .iter()
            .enumerate()
            .filter(|(_, u)| s.last_scan.is_none_or(|last| u.at > last))
        {
            let command = match u.scan {
                Scan::InTransit | Scan::OutForDelivery => {
                    ShipmentCommand::UpdateTracking(UpdateTracking {
                        status: if u.scan == Scan::InTransit {
                            TrackingStatus::InTransit
                        } else {
                            TrackingStatus::OutForDelivery
                        },
                        location: u.location.clone(),
                        at: u.at,
                    })
                }
                Scan::Delivered => {
                    delivered = true;
                    ShipmentCommand::ConfirmDelivery { at: u.at }
                }
                Scan::Failed => ShipmentCommand::ReportDeliveryFailure(ReportDeliveryFailure {
                    reason: DeliveryFailureReason::RecipientAbsent,
                    at: u.at,
                }),
                Scan::ReturnedToSender => {
                    delivered = true;
                    ShipmentCommand::ReturnToSender { at: u.at }
                }
            };
            r = r.command(Dispatch::new(format!("scan:{i}"), target(command)));
        }
        if delivered
            || matches!(
                s.stage,
                ShipmentStage::Delivered | ShipmentStage::ReturnedToSender
            )
        {
            return r;
        }
        r.timer(
            timer::tracking(&shipment_id),
            self.now + self.settings.tracking_poll,
        )
    }
}

/// `lines` less the units in `taken`, SKU by SKU (what is left to ship).
fn units_less(lines: &[ShipmentLine], taken: Vec<&ShipmentLine>) -> Vec<ShipmentLine> {
    lines
        .iter()
        .filter_map(|l| {
            let gone: u32 = taken
                .iter()
                .filter(|t| t.sku == l.sku)
                .map(|t| t.quantity.get())
                .sum();
            let left = l.quantity.get().saturating_sub(gone);
            (left > 0).then(|| ShipmentLine {
                sku: l.sku.clone(),
                quantity: aggregates::Quantity(left),
            })
        })
        .collect()
}

/// The same units per SKU, in whatever order.
fn same_lines(a: &[ShipmentLine], b: &[ShipmentLine]) -> bool {
    let units = |lines: &[ShipmentLine]| {
        lines
            .iter()
            .map(|l| (l.sku.clone(), l.quantity))
            .collect::<BTreeMap<_, _>>()
    };
    a.len() == b.len() && units(a) == units(b)
}

/// Sets an edited line back to `quantity`: the edit's effect was refused (stock short,
/// the provider declined the new total), so the order stays as it was.
pub(super) fn revert_line(
    order_id: OrderId,
    sku: aggregates::Sku,
    quantity: aggregates::Quantity,
    at: DateTime<Utc>,
) -> Dispatch {
    Dispatch::new(
        format!("revert:{sku}"),
        order_target(
            order_id,
            OrderCommand::ChangeLineQuantity(ChangeLineQuantity { sku, quantity, at }),
        ),
    )
}

/// Cancels the order; one step name for every cause, so two causes in one step name the
/// same command.
pub(super) fn cancel(order_id: OrderId, reason: CancellationReason, at: DateTime<Utc>) -> Dispatch {
    Dispatch::new(
        "cancel-order",
        order_target(
            order_id,
            OrderCommand::CancelOrder(CancelOrder { reason, at }),
        ),
    )
}
