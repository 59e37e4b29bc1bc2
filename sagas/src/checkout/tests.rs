//! Given / when / then for every path of the checkout saga.

use aggregates::cart::{CartCheckedOut, CartLine, CartTotals, CheckoutPayment, ShippingMethod};
use aggregates::loyalty::{LoyaltyCommand, LoyaltyError};
use aggregates::order::*;
use aggregates::payment::*;
use aggregates::promotion::{PromotionCommand, PromotionError};
use aggregates::shipment::*;
use aggregates::stock::*;
use aggregates::*;
use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::dispatch::Target;
use crate::input::{Envelope, TimerFired};
use crate::ports::carrier::{Label, Scan, TrackingUpdate};
use crate::ports::payment::AuthorizationOutcome;
use crate::ports::{
    CarrierReply, CarrierRequest, PaymentReply, PaymentRequest, PortReply, PortRequest,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
}

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

fn order_id() -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(0xA1))
}

fn customer() -> CustomerId {
    CustomerId::from_uuid(Uuid::from_u128(0xC1))
}

fn tee() -> Sku {
    Sku::parse("TEE").unwrap()
}

fn mug() -> Sku {
    Sku::parse("MUG").unwrap()
}

fn ber() -> WarehouseId {
    WarehouseId::new("BER-1")
}

fn ham() -> WarehouseId {
    WarehouseId::new("HAM-1")
}

/// An event input; `n` makes its id.
fn ev(n: u128, event: impl Into<DomainEvent>) -> Input {
    let event = event.into();
    let stream_id = match &event {
        DomainEvent::Order(_) => order_id().to_string(),
        _ => "other".into(),
    };
    Input::Event(Envelope {
        event_id: Uuid::from_u128(0xE000 + n),
        position: n as i64,
        stream_id,
        event,
    })
}

fn line(sku: Sku, quantity: u32, unit: i64) -> OrderLine {
    OrderLine {
        sku,
        name: "thing".into(),
        quantity: Quantity(quantity),
        unit_price: eur(unit),
        discount: eur(0),
        line_total: eur(unit * i64::from(quantity)),
    }
}

/// Two T-shirts at 20.00 and a mug at 10.00, 5.00 shipping, 19 % tax: 65.45.
fn placed(token: &str) -> OrderEvent {
    OrderEvent::OrderPlaced(OrderPlaced {
        order_id: order_id(),
        customer_id: customer(),
        cart_id: None,
        lines: vec![line(tee(), 2, 2_000), line(mug(), 1, 1_000)],
        totals: OrderTotals {
            subtotal: eur(5_000),
            discount: eur(0),
            shipping: eur(500),
            tax: eur(1_045),
            points_value: eur(0),
            grand_total: eur(6_545),
            currency: Currency::EUR,
        },
        tax_rate_bp: 1_900,
        shipping_address: Address::example(),
        billing_address: Address::example(),
        payment_method_token: token.into(),
        draft: false,
        at: t0(),
    })
}

fn checked_out(coupons: Vec<promotion::PromotionTerms>, points: u64) -> CartEvent {
    CartEvent::CartCheckedOut(CartCheckedOut {
        cart_id: CartId::from_uuid(Uuid::from_u128(0xCA)),
        order_id: order_id(),
        customer_id: customer(),
        currency: Currency::EUR,
        lines: vec![CartLine {
            sku: tee(),
            product_name: "tee".into(),
            category: "apparel".into(),
            unit_price: eur(2_000),
            quantity: Quantity(2),
            line_total: eur(4_000),
        }],
        coupons,
        shipping_address: Address::example(),
        tax_region: "DE".into(),
        shipping_method: ShippingMethod {
            code: "standard".into(),
            price: eur(500),
        },
        totals: CartTotals {
            subtotal: eur(4_000),
            item_discount: eur(0),
            shipping: eur(500),
            shipping_discount: eur(0),
            shipping_total: eur(500),
            tax_rate_basis_points: 1_900,
            tax: eur(855),
            loyalty_points: points,
            loyalty_value: eur(0),
            grand_total: eur(5_355),
            coupons: vec![],
        },
        payment: None,
        at: t0(),
    })
}

fn checked_out_paying(token: Option<&str>, billing: Option<Address>) -> CartEvent {
    let CartEvent::CartCheckedOut(mut e) = checked_out(vec![], 0) else {
        unreachable!()
    };
    e.payment = Some(CheckoutPayment {
        method_token: token.map(str::to_string),
        billing_address: billing,
    });
    CartEvent::CartCheckedOut(e)
}

/// The `PlaceOrder` a reaction issues.
fn placement_of(r: &Reaction) -> Option<&PlaceOrder> {
    r.commands.iter().find_map(|d| match &d.target {
        Target::Order(_, OrderCommand::PlaceOrder(p)) => Some(p),
        _ => None,
    })
}

fn reserved(sku: Sku, allocation: &[(WarehouseId, u32)]) -> StockEvent {
    let quantity = allocation.iter().map(|(_, q)| q).sum();
    StockEvent::StockReserved(StockReserved {
        sku,
        order_id: order_id(),
        quantity: Quantity(quantity),
        allocation: allocation
            .iter()
            .map(|(w, q)| WarehouseAllocation {
                warehouse: w.clone(),
                quantity: Quantity(*q),
            })
            .collect(),
        backordered: Quantity(0),
        preferred_warehouses: vec![],
        expires_at: t0() + Duration::minutes(30),
        levels: StockLevels::default(),
        at: t0(),
    })
}

fn pay_id() -> PaymentId {
    payment_id(order_id())
}

fn initiated() -> PaymentEvent {
    PaymentEvent::PaymentInitiated(PaymentInitiated {
        payment_id: pay_id(),
        order_id: order_id(),
        amount: eur(6_545),
        method_token: "tok_visa".into(),
        provider: "test".into(),
        at: t0(),
    })
}

fn assessed(outcome: FraudOutcome) -> PaymentEvent {
    PaymentEvent::PaymentFraudAssessed(PaymentFraudAssessed {
        payment_id: pay_id(),
        order_id: order_id(),
        score: 0,
        fired: vec![],
        outcome,
        at: t0(),
    })
}

fn authorized_event(amount: i64) -> PaymentEvent {
    PaymentEvent::PaymentAuthorized(PaymentAuthorized {
        payment_id: pay_id(),
        order_id: order_id(),
        provider_reference: "pi_1".into(),
        amount: eur(amount),
        at: t0(),
    })
}

fn cancelled(reason: CancellationReason) -> OrderEvent {
    OrderEvent::OrderCancelled(OrderCancelled {
        reason,
        lines: vec![],
        paid: eur(0),
        at: t0(),
    })
}

fn confirmed() -> OrderEvent {
    OrderEvent::OrderConfirmed(OrderConfirmed {
        grand_total: eur(6_545),
        at: t0(),
    })
}

fn ship_id(w: &WarehouseId) -> ShipmentId {
    shipment_id(order_id(), w)
}

fn shipment_created(w: WarehouseId, lines: &[(Sku, u32)]) -> ShipmentEvent {
    ShipmentEvent::ShipmentCreated(ShipmentCreated {
        shipment_id: ship_id(&w),
        order_id: order_id(),
        warehouse: w,
        lines: lines
            .iter()
            .map(|(sku, q)| ShipmentLine {
                sku: sku.clone(),
                quantity: Quantity(*q),
            })
            .collect(),
        at: t0(),
    })
}

fn label_created(w: &WarehouseId) -> ShipmentEvent {
    ShipmentEvent::ShipmentLabelCreated(ShipmentLabelCreated {
        shipment_id: ship_id(w),
        order_id: order_id(),
        carrier_code: "test-post".into(),
        tracking_number: format!("TP-{w}"),
        label_reference: "label".into(),
        at: t0(),
    })
}

fn dispatched(w: &WarehouseId) -> ShipmentEvent {
    ShipmentEvent::ShipmentDispatched(ShipmentDispatched {
        shipment_id: ship_id(w),
        order_id: order_id(),
        carrier_code: "test-post".into(),
        tracking_number: format!("TP-{w}"),
        at: t0(),
    })
}

fn reply(n: u128, request: PortRequest, reply: PortReply) -> Input {
    Input::Reply {
        key: Uuid::from_u128(0xF000 + n),
        request,
        reply,
    }
}

fn authorize_request() -> PortRequest {
    PortRequest::Payment(PaymentRequest::Authorize {
        payment_id: pay_id(),
        amount: eur(6_545),
        method_token: "tok_visa".into(),
    })
}

fn authorization(outcome: AuthorizationOutcome) -> PortReply {
    PortReply::Payment(PaymentReply::Authorization(outcome))
}

fn fire(name: &str) -> Input {
    Input::Timer(TimerFired::new(&order_id().to_string(), name, t0()))
}

/// The saga after `inputs`.
fn given(inputs: &[Input]) -> CheckoutState {
    let saga = CheckoutSaga::default();
    let mut state = CheckoutState::default();
    for input in inputs {
        saga.evolve(&mut state, input);
    }
    state
}

/// The reaction to `input` after `inputs`.
fn when(inputs: &[Input], input: Input) -> Reaction {
    let saga = CheckoutSaga::default();
    let mut state = given(inputs);
    saga.evolve(&mut state, &input);
    saga.react(&state, &input, t0())
}

fn steps(r: &Reaction) -> Vec<&str> {
    r.commands.iter().map(|d| d.step.as_str()).collect()
}

fn confirmed_history() -> Vec<Input> {
    vec![
        ev(1, placed("tok_visa")),
        ev(2, reserved(tee(), &[(ber(), 1), (ham(), 1)])),
        ev(3, reserved(mug(), &[(ber(), 1)])),
        ev(4, initiated()),
        ev(5, assessed(FraudOutcome::Passed)),
        ev(6, authorized_event(6_545)),
        ev(7, confirmed()),
        ev(8, shipment_created(ber(), &[(tee(), 1), (mug(), 1)])),
        ev(9, shipment_created(ham(), &[(tee(), 1)])),
    ]
}

fn capture_of(r: &Reaction) -> Option<Money> {
    r.calls.iter().find_map(|c| match &c.request {
        PortRequest::Payment(PaymentRequest::Capture { amount, .. }) => Some(*amount),
        _ => None,
    })
}

// ---- placing ------------------------------------------------------------------------

#[test]
fn a_checkout_with_a_payment_places_its_order_under_a_derived_id() {
    let billing = Address {
        city: "Hamburg".into(),
        ..Address::example()
    };
    let checkout = ev(
        1,
        checked_out_paying(Some("tok_visa"), Some(billing.clone())),
    );
    let r = when(&[], checkout.clone());
    assert_eq!(steps(&r), vec![PLACE_STEP]);
    assert_eq!(
        r.commands[0].command_id(checkout.trigger_id()),
        crate::derive_id(checkout.trigger_id(), PLACE_STEP)
    );
    let place = placement_of(&r).expect("a PlaceOrder");
    assert_eq!(place.order_id, order_id());
    assert_eq!(place.payment_method_token, "tok_visa");
    assert_eq!(place.billing_address, billing);
    assert_eq!(place.shipping_address, Address::example());
    assert_eq!(
        r.commands[0].target.stream(),
        ("order", order_id().to_string().as_str())
    );
    // Redelivered after the order was placed, the checkout places nothing again.
    let again = when(&[checkout.clone(), ev(2, placed("tok_visa"))], checkout);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_checkout_with_nothing_due_places_its_order_without_a_token() {
    let r = when(&[], ev(1, checked_out_paying(None, None)));
    let place = placement_of(&r).expect("a PlaceOrder");
    assert_eq!(place.payment_method_token, NO_PAYMENT_DUE);
    // No billing address: billed where it ships.
    assert_eq!(place.billing_address, Address::example());
}

#[test]
fn a_checkout_without_a_payment_is_remembered_and_not_placed() {
    // A v1 event (upcast to `payment: None`) or a plain `CheckOut`.
    let checkout = ev(1, checked_out(vec![promotion::example_terms()], 300));
    let r = when(&[], checkout.clone());
    assert!(r.is_empty(), "{r:?}");
    let state = given(&[checkout]);
    assert_eq!(state.order_id, Some(order_id()));
    assert_eq!(state.points, 300);
    assert_eq!(state.phase, Phase::CheckedOut);
}

#[test]
fn an_order_placed_by_someone_else_first_is_skipped() {
    let saga = CheckoutSaga::default();
    let checkout = ev(1, checked_out_paying(Some("tok_visa"), None));
    let r = when(&[], checkout.clone());
    let state = given(&[checkout]);
    assert_eq!(
        saga.on_failure(
            &state,
            &r.commands[0],
            &DomainError::Order(OrderError::AlreadyPlaced),
            t0()
        ),
        OnFailure::Skip
    );
}

// ---- reserving ----------------------------------------------------------------------

#[test]
fn a_placed_order_reserves_coupons_points_and_every_line_and_sets_a_deadline() {
    let terms = promotion::example_terms();
    let r = when(
        &[ev(1, checked_out(vec![terms.clone()], 300))],
        ev(2, placed("tok_visa")),
    );
    assert_eq!(
        steps(&r),
        vec![
            format!("redeem:{}", terms.code).as_str(),
            "hold-points",
            "reserve:TEE",
            "reserve:MUG"
        ]
    );
    match &r.commands[1].target {
        Target::Loyalty(id, LoyaltyCommand::HoldPoints(h)) => {
            assert_eq!(id, &customer().to_string());
            assert_eq!(h.points, 300);
        }
        other => panic!("expected a hold, got {other:?}"),
    }
    match &r.commands[2].target {
        Target::Stock(id, StockCommand::ReserveStock(c)) => {
            assert_eq!(id, "TEE");
            assert_eq!(c.quantity, Quantity(2));
            assert_eq!(c.order_id, order_id());
        }
        other => panic!("expected a reservation, got {other:?}"),
    }
    assert_eq!(r.timers[0].name, timer::AUTHORIZATION_DEADLINE);
    assert_eq!(r.timers[0].due, t0() + Duration::minutes(20));
}

/// `placed` for a cart's checkout (with its cart id), as the saga or a caller of
/// `CheckOut` places it.
fn placed_from_cart(token: &str) -> OrderEvent {
    let OrderEvent::OrderPlaced(mut e) = placed(token) else {
        unreachable!()
    };
    e.cart_id = Some(CartId::from_uuid(Uuid::from_u128(0xCA)));
    OrderEvent::OrderPlaced(e)
}

#[test]
fn an_order_placed_before_its_checkout_arrives_reserves_when_the_checkout_does() {
    // The order stream's event overtook the cart stream's (JetStream, two workers).
    let terms = promotion::example_terms();
    let order_first = ev(2, placed_from_cart("tok_visa"));
    let r = when(&[], order_first.clone());
    assert!(r.is_empty(), "no reservation without the coupons: {r:?}");
    assert_eq!(
        given(std::slice::from_ref(&order_first)).phase,
        Phase::Reserving
    );

    let checkout = ev(1, checked_out(vec![terms.clone()], 300));
    let r = when(std::slice::from_ref(&order_first), checkout.clone());
    assert_eq!(
        steps(&r),
        vec![
            format!("redeem:{}", terms.code).as_str(),
            "hold-points",
            "reserve:TEE",
            "reserve:MUG"
        ]
    );
    assert_eq!(
        r.commands[0].command_id(checkout.trigger_id()),
        crate::derive_id(checkout.trigger_id(), &format!("redeem:{}", terms.code))
    );
    assert_eq!(r.timers[0].name, timer::AUTHORIZATION_DEADLINE);
    // Then the reservations go on as usual.
    let history = [order_first, checkout];
    let r = when(&history, ev(3, reserved(tee(), &[(ber(), 2)])));
    assert!(r.is_empty(), "{r:?}");
}

#[test]
fn an_order_the_saga_placed_that_arrives_before_its_checkout_step_is_stored_keeps_the_coupon() {
    // Worker A ran the checkout's step (PlaceOrder) but has not stored it; worker B
    // starts the saga from `OrderPlaced`; A's step runs again on B's state.
    let CartEvent::CartCheckedOut(mut cart) = checked_out(vec![promotion::example_terms()], 0)
    else {
        unreachable!()
    };
    cart.payment = Some(CheckoutPayment {
        method_token: Some("tok_visa".into()),
        billing_address: None,
    });
    let checkout = ev(1, CartEvent::CartCheckedOut(cart));
    let order_first = ev(2, placed_from_cart("tok_visa"));
    assert!(when(&[], order_first.clone()).is_empty());
    let r = when(&[order_first], checkout);
    assert!(placement_of(&r).is_none(), "placed once: {r:?}");
    assert_eq!(
        r.commands[0].step,
        format!("redeem:{}", promotion::example_terms().code)
    );
}

#[test]
fn a_checkout_arriving_after_its_order_was_cancelled_reserves_nothing() {
    let r = when(
        &[
            ev(2, placed_from_cart("tok_visa")),
            ev(3, cancelled(CancellationReason::CustomerRequested)),
        ],
        ev(1, checked_out(vec![promotion::example_terms()], 300)),
    );
    assert!(r.is_empty(), "{r:?}");
}

#[test]
fn a_checkout_seen_first_reserves_on_placement_once() {
    let history = [
        ev(1, checked_out(vec![promotion::example_terms()], 300)),
        ev(2, placed_from_cart("tok_visa")),
    ];
    assert_eq!(when(&history[..1], history[1].clone()).commands.len(), 4);
    // A redelivered checkout after the placement reserves nothing more.
    assert!(when(&history, history[0].clone()).is_empty());
}

#[test]
fn a_draft_waits_until_it_is_finalised() {
    let OrderEvent::OrderPlaced(mut draft) = placed("tok_visa") else {
        unreachable!()
    };
    draft.draft = true;
    let lines = draft.lines.clone();
    let totals = draft.totals.clone();
    let r = when(&[], ev(1, OrderEvent::OrderPlaced(draft.clone())));
    assert!(r.is_empty());
    let r = when(
        &[ev(1, OrderEvent::OrderPlaced(draft))],
        ev(
            2,
            OrderEvent::OrderDraftFinalised(OrderDraftFinalised {
                lines,
                totals,
                at: t0(),
            }),
        ),
    );
    assert_eq!(steps(&r), vec!["reserve:TEE", "reserve:MUG"]);
}

#[test]
fn payment_starts_only_once_every_line_is_reserved() {
    let placed = ev(1, placed("tok_visa"));
    let first = ev(2, reserved(tee(), &[(ber(), 2)]));
    assert!(when(std::slice::from_ref(&placed), first.clone()).is_empty());
    let r = when(&[placed, first], ev(3, reserved(mug(), &[(ber(), 1)])));
    assert_eq!(steps(&r), vec!["initiate-payment"]);
    match &r.commands[0].target {
        Target::Payment(id, PaymentCommand::InitiatePayment(c)) => {
            assert_eq!(id, &pay_id().to_string());
            assert_eq!(c.amount, eur(6_545));
            assert_eq!(c.method_token, "tok_visa");
            assert_eq!(c.provider, "test");
        }
        other => panic!("expected a payment, got {other:?}"),
    }
}

#[test]
fn an_order_with_nothing_to_pay_is_confirmed_without_a_payment() {
    let OrderEvent::OrderPlaced(mut free) = placed("tok_visa") else {
        unreachable!()
    };
    free.totals.points_value = eur(6_545);
    free.totals.grand_total = eur(0);
    let r = when(
        &[
            ev(1, OrderEvent::OrderPlaced(free)),
            ev(2, reserved(tee(), &[(ber(), 2)])),
        ],
        ev(3, reserved(mug(), &[(ber(), 1)])),
    );
    assert_eq!(steps(&r), vec!["confirm"]);
}

#[test]
fn a_line_out_of_stock_cancels_the_order() {
    let saga = CheckoutSaga::default();
    let state = given(&[ev(1, placed("tok_visa"))]);
    let r = when(&[], ev(1, placed("tok_visa")));
    let error = DomainError::Stock(StockError::InsufficientStock {
        requested: Quantity(2),
        available: Quantity(0),
        backorder_allowance: Quantity(0),
    });
    match saga.on_failure(&state, &r.commands[0], &error, t0()) {
        OnFailure::Compensate(c) => match &c.commands[0].target {
            Target::Order(_, OrderCommand::CancelOrder(c)) => {
                assert_eq!(c.reason, CancellationReason::OutOfStock)
            }
            other => panic!("expected a cancellation, got {other:?}"),
        },
        other => panic!("expected compensation, got {other:?}"),
    }
}

#[test]
fn an_exhausted_coupon_or_missing_points_cancel_the_order() {
    let saga = CheckoutSaga::default();
    let terms = promotion::example_terms();
    let history = [
        ev(1, checked_out(vec![terms], 300)),
        ev(2, placed("tok_visa")),
    ];
    let state = given(&history);
    let r = when(&history[..1], history[1].clone());
    let coupon = DomainError::Promotion(PromotionError::UsageLimitReached { limit: 10 });
    assert!(matches!(
        &r.commands[0].target,
        Target::Promotion(_, PromotionCommand::ReserveRedemption(_))
    ));
    assert!(matches!(
        saga.on_failure(&state, &r.commands[0], &coupon, t0()),
        OnFailure::Compensate(_)
    ));
    let points = DomainError::Loyalty(LoyaltyError::InsufficientPoints {
        requested: 300,
        available: 10,
    });
    assert!(matches!(
        saga.on_failure(&state, &r.commands[1], &points, t0()),
        OnFailure::Compensate(_)
    ));
}

#[test]
fn harmless_refusals_are_skipped_and_unexpected_ones_stop() {
    let saga = CheckoutSaga::default();
    let state = given(&confirmed_history());
    let earn = crate::Dispatch::new(
        "earn-points",
        Target::Loyalty(
            customer().to_string(),
            LoyaltyCommand::EarnPoints(aggregates::loyalty::EarnPoints {
                order_id: order_id(),
                order_amount: eur(100),
                base_rate: 100,
                at: t0(),
            }),
        ),
    );
    let not_enrolled = DomainError::Loyalty(LoyaltyError::NotEnrolled);
    assert_eq!(
        saga.on_failure(&state, &earn, &not_enrolled, t0()),
        OnFailure::Skip
    );
    let cancel = react::cancel(order_id(), CancellationReason::PaymentDeclined, t0());
    let late = DomainError::Order(OrderError::CancelAfterShipment);
    assert_eq!(
        saga.on_failure(&state, &cancel, &late, t0()),
        OnFailure::Skip
    );
    let odd = DomainError::Order(OrderError::NoLines);
    assert_eq!(
        saga.on_failure(&state, &cancel, &odd, t0()),
        OnFailure::Stop
    );
}

// ---- paying -------------------------------------------------------------------------

fn paying() -> Vec<Input> {
    vec![
        ev(1, placed("tok_visa")),
        ev(2, reserved(tee(), &[(ber(), 2)])),
        ev(3, reserved(mug(), &[(ber(), 1)])),
        ev(4, initiated()),
    ]
}

#[test]
fn an_initiated_payment_is_scored_with_the_order_s_countries() {
    let history = paying();
    let r = when(&history[..3], history[3].clone());
    match &r.commands[0].target {
        Target::Payment(_, PaymentCommand::AssessFraud(c)) => {
            assert_eq!(c.inputs.billing_country, Address::example().country);
            assert_eq!(c.inputs.shipping_country, Address::example().country);
        }
        other => panic!("expected a fraud check, got {other:?}"),
    }
}

#[test]
fn a_passed_score_asks_the_provider_to_authorize_the_total() {
    let r = when(&paying(), ev(5, assessed(FraudOutcome::Passed)));
    assert_eq!(r.calls.len(), 1);
    assert_eq!(r.calls[0].request, authorize_request());
    assert_eq!(
        r.calls[0].key,
        crate::derive_id(Uuid::from_u128(0xE005), "authorize")
    );
}

#[test]
fn a_rejected_score_cancels_and_a_review_waits_for_a_person() {
    let r = when(&paying(), ev(5, assessed(FraudOutcome::Rejected)));
    assert_eq!(steps(&r), vec!["cancel-order"]);
    assert!(when(&paying(), ev(5, assessed(FraudOutcome::ReviewRequired))).is_empty());
    let mut history = paying();
    history.push(ev(5, assessed(FraudOutcome::ReviewRequired)));
    let approved = PaymentEvent::PaymentFraudReviewed(PaymentFraudReviewed {
        payment_id: pay_id(),
        order_id: order_id(),
        approved: true,
        reviewer: "ana".into(),
        at: t0(),
    });
    assert_eq!(when(&history, ev(6, approved)).calls.len(), 1);
}

fn authorizing() -> Vec<Input> {
    let mut h = paying();
    h.push(ev(5, assessed(FraudOutcome::Passed)));
    h
}

#[test]
fn provider_outcomes_become_payment_commands() {
    let r = when(
        &authorizing(),
        reply(
            1,
            authorize_request(),
            authorization(AuthorizationOutcome::Authorized {
                reference: "pi_1".into(),
                amount: eur(6_545),
            }),
        ),
    );
    assert!(matches!(
        &r.commands[0].target,
        Target::Payment(_, PaymentCommand::AuthorizePayment(a)) if a.provider_reference == "pi_1"
    ));
    let r = when(
        &authorizing(),
        reply(
            1,
            authorize_request(),
            authorization(AuthorizationOutcome::Declined {
                code: "insufficient_funds".into(),
            }),
        ),
    );
    assert!(matches!(
        &r.commands[0].target,
        Target::Payment(_, PaymentCommand::DeclinePayment(d)) if d.reason_code == "insufficient_funds"
    ));
}

#[test]
fn a_3d_secure_challenge_is_recorded_and_the_provider_asked_later() {
    let r = when(
        &authorizing(),
        reply(
            1,
            authorize_request(),
            authorization(AuthorizationOutcome::ActionRequired {
                reference: "pi_1".into(),
                challenge_id: "ch_1".into(),
                redirect_url: "https://3ds.test.invalid/pi_1".into(),
            }),
        ),
    );
    assert_eq!(steps(&r), vec!["action-required"]);
    assert_eq!(r.timers[0].name, timer::PAYMENT_STATUS);
}

#[test]
fn a_lost_answer_is_followed_by_a_status_query_with_the_same_key_never_a_new_charge() {
    let lost = reply(
        1,
        authorize_request(),
        authorization(AuthorizationOutcome::Unknown),
    );
    let r = when(&authorizing(), lost.clone());
    assert!(r.commands.is_empty());
    assert_eq!(r.timers[0].name, timer::PAYMENT_STATUS);

    let mut history = authorizing();
    history.push(lost);
    let r = when(&history, fire(timer::PAYMENT_STATUS));
    assert_eq!(
        r.calls[0].request,
        PortRequest::Payment(PaymentRequest::Status {
            payment_id: pay_id(),
            authorize_key: Uuid::from_u128(0xF001),
        })
    );
    // The provider never saw it: authorize again under the first key.
    let status = r.calls[0].request.clone();
    let r = when(
        &history,
        reply(2, status, authorization(AuthorizationOutcome::NotFound)),
    );
    assert_eq!(r.calls[0].key, Uuid::from_u128(0xF001));
    assert_eq!(r.calls[0].request, authorize_request());
}

#[test]
fn an_authorized_payment_confirms_the_order_and_clears_the_payment_timers() {
    let r = when(&authorizing(), ev(6, authorized_event(6_545)));
    assert_eq!(steps(&r), vec!["confirm"]);
    assert!(r
        .cancel_timers
        .contains(&timer::AUTHORIZATION_DEADLINE.to_string()));
    assert!(r.cancel_timers.contains(&timer::PAYMENT_STATUS.to_string()));
}

#[test]
fn a_partial_authorization_is_voided_and_the_order_cancelled() {
    let r = when(&authorizing(), ev(6, authorized_event(5_000)));
    assert_eq!(steps(&r), vec!["cancel-order"]);
    assert!(matches!(
        &r.calls[0].request,
        PortRequest::Payment(PaymentRequest::Void { reference, .. }) if reference == "pi_1"
    ));
}

#[test]
fn a_declined_payment_cancels_the_order() {
    let declined = PaymentEvent::PaymentDeclined(PaymentDeclined {
        payment_id: pay_id(),
        order_id: order_id(),
        reason_code: "stolen_card".into(),
        at: t0(),
    });
    let r = when(&authorizing(), ev(6, declined));
    match &r.commands[0].target {
        Target::Order(_, OrderCommand::CancelOrder(c)) => {
            assert_eq!(c.reason, CancellationReason::PaymentDeclined)
        }
        other => panic!("expected a cancellation, got {other:?}"),
    }
}

#[test]
fn an_unpaid_order_at_its_deadline_declines_the_payment_and_cancels() {
    let mut history = authorizing();
    history.push(ev(
        6,
        PaymentEvent::PaymentActionRequired(PaymentActionRequired {
            payment_id: pay_id(),
            order_id: order_id(),
            challenge_id: "ch".into(),
            redirect_url: "https://3ds.test.invalid".into(),
            at: t0(),
        }),
    ));
    let r = when(&history, fire(timer::AUTHORIZATION_DEADLINE));
    assert_eq!(steps(&r), vec!["expire-authorization", "cancel-order"]);
    // Once confirmed, the deadline means nothing.
    assert!(when(&confirmed_history(), fire(timer::AUTHORIZATION_DEADLINE)).is_empty());
}

#[test]
fn an_authorization_arriving_after_cancellation_is_voided() {
    let mut history = authorizing();
    history.push(ev(6, cancelled(CancellationReason::PaymentDeclined)));
    let r = when(&history, ev(7, authorized_event(6_545)));
    assert!(r.commands.is_empty());
    assert!(matches!(
        &r.calls[0].request,
        PortRequest::Payment(PaymentRequest::Void { .. })
    ));
}

// ---- cancellation -------------------------------------------------------------------

#[test]
fn a_cancelled_order_releases_stock_coupons_points_and_voids_the_authorization() {
    let terms = promotion::example_terms();
    let mut history = vec![ev(0, checked_out(vec![terms.clone()], 300))];
    history.extend(confirmed_history().into_iter().take(7));
    let r = when(
        &history,
        ev(10, cancelled(CancellationReason::CustomerRequested)),
    );
    assert_eq!(
        steps(&r),
        vec![
            "release:TEE",
            "release:MUG",
            format!("unredeem:{}", terms.code).as_str(),
            "return-points"
        ]
    );
    assert!(matches!(
        &r.calls[0].request,
        PortRequest::Payment(PaymentRequest::Void { reference, .. }) if reference == "pi_1"
    ));
    let voided = reply(
        3,
        r.calls[0].request.clone(),
        PortReply::Payment(PaymentReply::Voided),
    );
    let r = when(&history, voided);
    assert!(matches!(
        &r.commands[0].target,
        Target::Payment(_, PaymentCommand::VoidPayment { .. })
    ));
}

#[test]
fn a_cancelled_order_with_captured_money_is_refunded() {
    let mut history = confirmed_history();
    history.push(ev(
        20,
        PaymentEvent::PaymentCaptured(PaymentCaptured {
            payment_id: pay_id(),
            order_id: order_id(),
            amount: eur(1_000),
            captured_total: eur(1_000),
            capturable_remaining: eur(5_545),
            at: t0(),
        }),
    ));
    let r = when(
        &history,
        ev(21, cancelled(CancellationReason::MerchantRequested)),
    );
    assert!(matches!(
        &r.calls[0].request,
        PortRequest::Payment(PaymentRequest::Refund { amount, refund_id, .. })
            if *amount == eur(1_000) && *refund_id == cancellation_refund_id(order_id())
    ));
}

// ---- fulfilment ---------------------------------------------------------------------

#[test]
fn a_confirmed_order_ships_from_each_warehouse_its_stock_was_allocated_in() {
    let history = confirmed_history();
    let r = when(&history[..6], history[6].clone());
    assert_eq!(steps(&r), vec!["ship-from:BER-1", "ship-from:HAM-1"]);
    match &r.commands[0].target {
        Target::Shipment(id, ShipmentCommand::CreateShipment(c)) => {
            assert_eq!(id, &ship_id(&ber()).to_string());
            assert_eq!(c.lines.len(), 2);
        }
        other => panic!("expected a shipment, got {other:?}"),
    }
}

#[test]
fn a_packed_shipment_gets_a_label_from_the_carrier() {
    let packed = ShipmentEvent::ShipmentPacked(ShipmentPacked {
        shipment_id: ship_id(&ber()),
        order_id: order_id(),
        at: t0(),
    });
    let r = when(&confirmed_history(), ev(10, packed));
    let request = r.calls[0].request.clone();
    assert!(matches!(
        &request,
        PortRequest::Carrier(CarrierRequest::Label { from, .. }) if *from == ber()
    ));
    let label = Label {
        carrier_code: "test-post".into(),
        tracking_number: "TP1".into(),
        label_reference: "https://labels.test.invalid/TP1.pdf".into(),
    };
    let r = when(
        &confirmed_history(),
        reply(4, request, PortReply::Carrier(CarrierReply::Label(label))),
    );
    assert!(matches!(
        &r.commands[0].target,
        Target::Shipment(_, ShipmentCommand::CreateLabel(c)) if c.tracking_number == "TP1"
    ));
}

#[test]
fn a_dispatched_shipment_is_recorded_commits_stock_spends_points_captures_and_is_tracked() {
    let mut history = vec![ev(0, checked_out(vec![], 300))];
    history.extend(confirmed_history());
    history.push(ev(10, label_created(&ber())));
    let r = when(&history, ev(11, dispatched(&ber())));
    // The T-shirts are split over two shipments: their reservation is committed only
    // when the second leaves.
    assert_eq!(
        steps(&r),
        vec!["record-shipment", "commit-stock:MUG", "spend-points"]
    );
    assert_eq!(r.timers[0].name, timer::tracking(&ship_id(&ber())));
    let first = capture_of(&r).unwrap();

    history.push(ev(11, dispatched(&ber())));
    history.push(ev(12, label_created(&ham())));
    let r = when(&history, ev(13, dispatched(&ham())));
    assert_eq!(steps(&r), vec!["record-shipment", "commit-stock:TEE"]);
    let second = capture_of(&r).unwrap();
    // BER carries 30.00 of 50.00 goods: 60 % of 65.45, and the shares add up exactly.
    assert_eq!(first, eur(3_927));
    assert_eq!(first.checked_add(second).unwrap(), eur(6_545));
}

#[test]
fn capture_outcomes_reach_the_payment_and_the_order_and_failures_are_retried() {
    let mut history = confirmed_history();
    history.push(ev(10, label_created(&ber())));
    history.push(ev(11, dispatched(&ber())));
    let capture = PortRequest::Payment(PaymentRequest::Capture {
        payment_id: pay_id(),
        reference: "pi_1".into(),
        amount: eur(3_927),
        purpose: ship_id(&ber()).to_string(),
    });
    let r = when(
        &history,
        reply(
            5,
            capture.clone(),
            PortReply::Payment(PaymentReply::Captured { amount: eur(3_927) }),
        ),
    );
    assert!(matches!(
        &r.commands[0].target,
        Target::Payment(_, PaymentCommand::CapturePayment(c)) if c.amount == eur(3_927)
    ));
    let captured = PaymentEvent::PaymentCaptured(PaymentCaptured {
        payment_id: pay_id(),
        order_id: order_id(),
        amount: eur(3_927),
        captured_total: eur(3_927),
        capturable_remaining: eur(2_618),
        at: t0(),
    });
    let r = when(&history, ev(12, captured));
    assert!(matches!(
        &r.commands[0].target,
        Target::Order(_, OrderCommand::RecordPaymentCaptured(c)) if c.captured_total == eur(3_927)
    ));

    let failed = PortReply::Payment(PaymentReply::CaptureFailed {
        code: "processing_error".into(),
    });
    let r = when(&history, reply(6, capture.clone(), failed.clone()));
    assert_eq!(r.timers[0].name, timer::capture(&ship_id(&ber())));
    for n in 0..3 {
        history.push(reply(6 + n, capture.clone(), failed.clone()));
    }
    let r = when(&history, reply(9, capture, failed));
    assert!(r.is_empty(), "after three failures a person takes over");
    let r = when(&history, fire(&timer::capture(&ship_id(&ber()))));
    assert!(capture_of(&r).is_some());
}

#[test]
fn carrier_scans_become_tracking_commands_once_each() {
    let mut history = confirmed_history();
    history.push(ev(10, label_created(&ber())));
    history.push(ev(11, dispatched(&ber())));
    let r = when(&history, fire(&timer::tracking(&ship_id(&ber()))));
    let track = r.calls[0].request.clone();
    assert!(matches!(
        &track,
        PortRequest::Carrier(CarrierRequest::Track { tracking_number, .. }) if tracking_number == "TP-BER-1"
    ));
    let scan = |scan, minutes| TrackingUpdate {
        scan,
        location: "Berlin".into(),
        at: t0() + Duration::minutes(minutes),
    };
    let updates = vec![scan(Scan::InTransit, 1), scan(Scan::OutForDelivery, 2)];
    let r = when(
        &history,
        reply(
            7,
            track.clone(),
            PortReply::Carrier(CarrierReply::Tracking(updates.clone())),
        ),
    );
    assert_eq!(steps(&r), vec!["scan:0", "scan:1"]);
    assert_eq!(r.timers.len(), 1, "not delivered yet: poll again");

    history.push(ev(
        12,
        ShipmentEvent::ShipmentTrackingUpdated(ShipmentTrackingUpdated {
            shipment_id: ship_id(&ber()),
            order_id: order_id(),
            status: TrackingStatus::InTransit,
            location: "Berlin".into(),
            current_status: ShipmentStatus::InTransit,
            at: t0() + Duration::minutes(1),
        }),
    ));
    let mut all = updates;
    all.push(scan(Scan::Delivered, 3));
    let r = when(
        &history,
        reply(8, track, PortReply::Carrier(CarrierReply::Tracking(all))),
    );
    assert_eq!(steps(&r), vec!["scan:1", "scan:2"]);
    assert!(matches!(
        &r.commands[1].target,
        Target::Shipment(_, ShipmentCommand::ConfirmDelivery { .. })
    ));
    assert!(r.timers.is_empty());
}

fn delivered_history() -> Vec<Input> {
    let mut history = confirmed_history();
    history.push(ev(
        20,
        OrderEvent::OrderPaymentCaptured(OrderPaymentCaptured {
            payment_id: pay_id(),
            amount: eur(6_545),
            payment_captured_total: eur(6_545),
            paid_total: eur(6_545),
            at: t0(),
        }),
    ));
    history
}

#[test]
fn delivery_is_recorded_and_earns_points_on_what_was_paid() {
    let delivered = ShipmentEvent::ShipmentDelivered(ShipmentDelivered {
        shipment_id: ship_id(&ber()),
        order_id: order_id(),
        lines: vec![],
        at: t0(),
    });
    let r = when(&delivered_history(), ev(21, delivered));
    assert_eq!(steps(&r), vec!["record-delivery"]);
    let r = when(
        &delivered_history(),
        ev(22, OrderEvent::OrderDelivered(OrderDelivered { at: t0() })),
    );
    match &r.commands[0].target {
        Target::Loyalty(_, LoyaltyCommand::EarnPoints(e)) => {
            assert_eq!(e.order_amount, eur(6_545));
            assert_eq!(e.base_rate, 100);
        }
        other => panic!("expected points, got {other:?}"),
    }
    assert_eq!(r.timers[0].name, timer::RETURN_WINDOW);
    assert_eq!(r.timers[0].due, t0() + Duration::days(30));
}

#[test]
fn the_order_completes_when_the_return_window_closes_with_no_open_return() {
    let mut history = delivered_history();
    history.push(ev(
        22,
        OrderEvent::OrderDelivered(OrderDelivered { at: t0() }),
    ));
    let r = when(&history, fire(timer::RETURN_WINDOW));
    assert_eq!(steps(&r), vec!["complete"]);

    history.push(ev(23, requested_return()));
    assert!(when(&history, fire(timer::RETURN_WINDOW)).is_empty());
    history.push(fire(timer::RETURN_WINDOW));
    let rejected = OrderEvent::OrderReturnRejected(OrderReturnRejected {
        return_id: return_id(),
        reason: "worn".into(),
        at: t0(),
    });
    assert_eq!(steps(&when(&history, ev(24, rejected))), vec!["complete"]);
}

// ---- returns ------------------------------------------------------------------------

fn return_id() -> ReturnId {
    ReturnId::from_uuid(Uuid::from_u128(0x2E))
}

fn one_tee() -> Vec<LineQuantity> {
    vec![LineQuantity {
        sku: tee(),
        quantity: Quantity(1),
    }]
}

fn requested_return() -> OrderEvent {
    OrderEvent::OrderReturnRequested(OrderReturnRequested {
        return_id: return_id(),
        lines: one_tee(),
        reason: "too small".into(),
        window_days: 30,
        at: t0(),
    })
}

#[test]
fn an_approved_return_gets_a_return_label_to_the_warehouse_it_left() {
    let mut history = delivered_history();
    history.push(ev(22, requested_return()));
    let approved = OrderEvent::OrderReturnApproved(OrderReturnApproved {
        return_id: return_id(),
        lines: one_tee(),
        at: t0(),
    });
    let r = when(&history, ev(23, approved));
    assert!(matches!(
        &r.calls[0].request,
        PortRequest::Carrier(CarrierRequest::ReturnLabel { to, .. }) if *to == ber()
    ));
}

#[test]
fn a_received_return_is_restocked_refunded_in_proportion_and_points_reversed() {
    let mut history = delivered_history();
    history.push(ev(22, requested_return()));
    let received = OrderEvent::OrderReturnReceived(OrderReturnReceived {
        return_id: return_id(),
        lines: one_tee(),
        at: t0(),
    });
    let r = when(&history, ev(24, received));
    assert_eq!(steps(&r), vec!["restock:TEE"]);
    assert!(matches!(
        &r.commands[0].target,
        Target::Stock(_, StockCommand::ReceiveStock(c)) if c.warehouse == ber() && c.quantity == Quantity(1)
    ));
    // Goods paid: 65.45 − (5.00 shipping + 0.95 tax) = 59.50; one T-shirt is 20 of 50.
    let request = r.calls[0].request.clone();
    assert!(matches!(
        &request,
        PortRequest::Payment(PaymentRequest::Refund { amount, refund_id, .. })
            if *amount == eur(2_380) && *refund_id == return_refund_id(return_id())
    ));
    let refunded = PaymentEvent::PaymentRefunded(PaymentRefunded {
        payment_id: pay_id(),
        order_id: order_id(),
        refund_id: return_refund_id(return_id()),
        amount: eur(2_380),
        refunded_total: eur(2_380),
        refundable_remaining: eur(4_165),
        at: t0(),
    });
    let r = when(&history, ev(25, refunded));
    assert_eq!(steps(&r), vec!["record-refund", "reverse-points"]);
    assert!(matches!(
        &r.commands[0].target,
        Target::Order(_, OrderCommand::RecordRefund(c)) if c.return_id == Some(return_id())
    ));
}

// ---- determinism --------------------------------------------------------------------

#[test]
fn the_same_input_always_issues_the_same_command_ids() {
    let history = confirmed_history();
    let a = when(&history[..6], history[6].clone());
    let b = when(&history[..6], history[6].clone());
    let trigger = history[6].trigger_id();
    let ids = |r: &Reaction| {
        r.commands
            .iter()
            .map(|d| d.command_id(trigger))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), ids(&b));
    let unique: std::collections::BTreeSet<_> = ids(&a).into_iter().collect();
    assert_eq!(unique.len(), a.commands.len());
}

#[test]
fn events_route_to_the_saga_of_their_order() {
    let saga = CheckoutSaga::default();
    let Input::Event(placed) = ev(1, placed("tok_visa")) else {
        unreachable!()
    };
    assert_eq!(saga.route(&placed), Route::Start(order_id().to_string()));
    let Input::Event(reserved) = ev(2, reserved(tee(), &[(ber(), 2)])) else {
        unreachable!()
    };
    assert_eq!(
        saga.route(&reserved),
        Route::Continue(order_id().to_string())
    );
    let Input::Event(received) = ev(
        3,
        StockEvent::StockReceived(StockReceived {
            sku: tee(),
            warehouse: ber(),
            quantity: Quantity(5),
            levels: StockLevels::default(),
            at: t0(),
        }),
    ) else {
        unreachable!()
    };
    assert_eq!(saga.route(&received), Route::Ignore);
}

#[test]
fn the_state_survives_a_round_trip_through_json() {
    let state = given(&confirmed_history());
    let json = serde_json::to_value(&state).unwrap();
    let back: CheckoutState = serde_json::from_value(json).unwrap();
    assert_eq!(back, state);
}

#[test]
fn an_exchange_places_a_replacement_with_nothing_due_and_refunds_nothing() {
    let mut history = delivered_history();
    history.push(ev(22, requested_return()));
    let replacement = OrderId::from_uuid(Uuid::from_u128(0xB2));
    let exchange = OrderEvent::OrderExchangeRequested(OrderExchangeRequested {
        return_id: return_id(),
        replacement_order_id: replacement,
        at: t0(),
    });
    let r = when(&history, ev(23, exchange.clone()));
    match &r.commands[0].target {
        Target::Order(id, OrderCommand::PlaceOrder(p)) => {
            assert_eq!(id, &replacement.to_string());
            assert_eq!(p.lines.len(), 1);
            assert_eq!(p.lines[0].quantity, Quantity(1));
            assert_eq!(p.lines[0].discount, p.lines[0].unit_price);
            assert!(p.shipping.is_zero() && p.points_value.is_zero());
        }
        other => panic!("expected a replacement order, got {other:?}"),
    }
    history.push(ev(23, exchange));
    let received = OrderEvent::OrderReturnReceived(OrderReturnReceived {
        return_id: return_id(),
        lines: one_tee(),
        at: t0(),
    });
    let r = when(&history, ev(24, received));
    assert_eq!(steps(&r), vec!["restock:TEE"]);
    assert!(r.calls.is_empty(), "no refund for an exchanged return");
}

// ---- order edits before fulfilment ----------------------------------------------------

/// Totals of the usual order with `tee` T-shirts and `mugs` mugs (19 % tax on goods and
/// 5.00 shipping).
fn totals_with(tees: i64, mugs: i64) -> OrderTotals {
    let subtotal = 2_000 * tees + 1_000 * mugs;
    let tax = (subtotal + 500) * 19 / 100;
    OrderTotals {
        subtotal: eur(subtotal),
        discount: eur(0),
        shipping: eur(500),
        tax: eur(tax),
        points_value: eur(0),
        grand_total: eur(subtotal + 500 + tax),
        currency: Currency::EUR,
    }
}

fn mugs_changed(from: u32, to: u32) -> OrderEvent {
    let totals = totals_with(2, i64::from(to));
    OrderEvent::OrderLineQuantityChanged(OrderLineQuantityChanged {
        sku: mug(),
        previous_quantity: Quantity(from),
        line: line(mug(), to, 1_000),
        grand_total_difference: totals
            .grand_total
            .checked_sub(totals_with(2, i64::from(from)).grand_total)
            .unwrap(),
        totals,
        at: t0(),
    })
}

fn mug_reservation_changed(from: u32, to: u32, allocation: &[(WarehouseId, u32)]) -> StockEvent {
    StockEvent::StockReservationChanged(StockReservationChanged {
        sku: mug(),
        order_id: order_id(),
        previous_quantity: Quantity(from),
        quantity: Quantity(to),
        allocation: allocation
            .iter()
            .map(|(w, q)| WarehouseAllocation {
                warehouse: w.clone(),
                quantity: Quantity(*q),
            })
            .collect(),
        backordered: Quantity(0),
        levels: StockLevels::default(),
        at: t0(),
    })
}

fn update_request(amount: i64) -> PortRequest {
    PortRequest::Payment(PaymentRequest::UpdateAuthorization {
        payment_id: pay_id(),
        reference: "pi_1".into(),
        amount: eur(amount),
    })
}

fn adjusted(from: i64, to: i64) -> PaymentEvent {
    PaymentEvent::PaymentAuthorizationAdjusted(PaymentAuthorizationAdjusted {
        payment_id: pay_id(),
        order_id: order_id(),
        previous_authorized: eur(from),
        authorized: eur(to),
        at: t0(),
    })
}

fn revised_lines(r: &Reaction, w: &WarehouseId) -> Option<Vec<(Sku, u32)>> {
    let id = ship_id(w).to_string();
    r.commands.iter().find_map(|d| match &d.target {
        Target::Shipment(s, ShipmentCommand::ReviseShipment(c)) if *s == id => Some(
            c.lines
                .iter()
                .map(|l| (l.sku.clone(), l.quantity.get()))
                .collect(),
        ),
        _ => None,
    })
}

#[test]
fn a_raised_quantity_is_reserved_then_authorized_then_shipped() {
    let mut history = confirmed_history();
    // 1. The edit: the difference is reserved first.
    let r = when(&history, ev(20, mugs_changed(1, 2)));
    assert_eq!(steps(&r), vec!["change-reservation:MUG"]);
    assert!(matches!(
        &r.commands[0].target,
        Target::Stock(s, StockCommand::ChangeReservation(c)) if s == "MUG" && c.quantity == Quantity(2)
    ));
    assert!(
        r.calls.is_empty(),
        "no money moves before the stock is there"
    );
    history.push(ev(20, mugs_changed(1, 2)));

    // 2. Reserved: the authorization is raised to the new total (77.35).
    let changed = mug_reservation_changed(1, 2, &[(ber(), 2)]);
    let r = when(&history, ev(21, changed.clone()));
    assert!(r.commands.is_empty());
    assert_eq!(r.calls.len(), 1);
    assert_eq!(r.calls[0].request, update_request(7_735));
    history.push(ev(21, changed));

    // 3. The provider raised it: the payment records the new authorization.
    let r = when(
        &history,
        reply(
            30,
            update_request(7_735),
            authorization(AuthorizationOutcome::Authorized {
                reference: "pi_1".into(),
                amount: eur(7_735),
            }),
        ),
    );
    assert!(matches!(
        &r.commands[0].target,
        Target::Payment(_, PaymentCommand::AdjustAuthorization(c)) if c.amount == eur(7_735)
    ));

    // 4. Recorded: the Berlin parcel carries the second mug; Hamburg is unchanged.
    let r = when(&history, ev(22, adjusted(6_545, 7_735)));
    assert_eq!(
        revised_lines(&r, &ber()),
        Some(vec![(mug(), 2), (tee(), 1)])
    );
    assert_eq!(revised_lines(&r, &ham()), None);
    history.push(ev(22, adjusted(6_545, 7_735)));
    let state = given(&history);
    assert!(state.stock_matches() && state.payment_matches());
    assert_eq!(state.paid_lines.get(&mug()), Some(&Quantity(2)));
}

#[test]
fn a_raise_the_stock_cannot_cover_puts_the_line_back() {
    let saga = CheckoutSaga::default();
    let mut history = confirmed_history();
    history.push(ev(20, mugs_changed(1, 3)));
    let state = given(&history);
    let r = when(&confirmed_history(), ev(20, mugs_changed(1, 3)));
    let short = DomainError::Stock(StockError::InsufficientStock {
        requested: Quantity(2),
        available: Quantity(1),
        backorder_allowance: Quantity(0),
    });
    match saga.on_failure(&state, &r.commands[0], &short, t0()) {
        OnFailure::Compensate(c) => {
            assert_eq!(steps(&c), vec!["revert:MUG"]);
            assert!(matches!(
                &c.commands[0].target,
                Target::Order(_, OrderCommand::ChangeLineQuantity(c))
                    if c.sku == mug() && c.quantity == Quantity(1)
            ));
        }
        other => panic!("expected the edit undone, got {other:?}"),
    }
    // The line back at 1 matches the reservation: nothing else to do.
    history.push(ev(21, mugs_changed(3, 1)));
    let state = given(&history);
    assert!(state.stock_matches() && state.payment_matches());
    let r = when(&history[..history.len() - 1], ev(21, mugs_changed(3, 1)));
    assert_eq!(r, Reaction::none());
}

#[test]
fn a_declined_raise_puts_the_line_back_and_releases_the_extra_stock() {
    let mut history = confirmed_history();
    history.push(ev(20, mugs_changed(1, 2)));
    history.push(ev(21, mug_reservation_changed(1, 2, &[(ber(), 2)])));
    let r = when(
        &history,
        reply(
            30,
            update_request(7_735),
            authorization(AuthorizationOutcome::Declined {
                code: "incremental_authorization_not_supported".into(),
            }),
        ),
    );
    assert_eq!(steps(&r), vec!["revert:MUG"]);
    assert!(matches!(
        &r.commands[0].target,
        Target::Order(_, OrderCommand::ChangeLineQuantity(c)) if c.quantity == Quantity(1)
    ));
    // The line back at 1: the second mug's reservation goes.
    let r = when(&history, ev(22, mugs_changed(2, 1)));
    assert!(matches!(
        &r.commands[0].target,
        Target::Stock(_, StockCommand::ChangeReservation(c)) if c.quantity == Quantity(1)
    ));
    history.push(ev(22, mugs_changed(2, 1)));
    // Released: the authorization already covers the total, the parcels never changed.
    let r = when(
        &history,
        ev(23, mug_reservation_changed(2, 1, &[(ber(), 1)])),
    );
    assert_eq!(r, Reaction::none());
}

#[test]
fn a_removed_line_releases_its_stock_lowers_the_authorization_and_empties_its_share() {
    let mut history = confirmed_history();
    let removed = OrderEvent::OrderLineRemoved(OrderLineRemoved {
        sku: mug(),
        removed_quantity: Quantity(1),
        totals: totals_with(2, 0),
        grand_total_difference: eur(-1_190),
        at: t0(),
    });
    let r = when(&history, ev(20, removed.clone()));
    assert_eq!(steps(&r), vec!["release:MUG"]);
    assert_eq!(r.calls[0].request, update_request(5_355));
    history.push(ev(20, removed));
    let r = when(&history, ev(21, adjusted(6_545, 5_355)));
    assert_eq!(revised_lines(&r, &ber()), Some(vec![(tee(), 1)]));
}

#[test]
fn a_parcel_leaving_while_the_new_total_waits_for_the_provider_captures_later() {
    let mut history = confirmed_history();
    history.push(ev(20, mugs_changed(1, 2)));
    history.push(ev(21, mug_reservation_changed(1, 2, &[(ber(), 2)])));
    history.push(ev(22, label_created(&ham())));
    let r = when(&history, ev(23, dispatched(&ham())));
    assert_eq!(capture_of(&r), None);
    assert!(r
        .timers
        .iter()
        .any(|t| t.name == timer::capture(&ship_id(&ham()))));
    // Once the authorization is adjusted, the retry captures the share of the new total.
    history.push(ev(23, dispatched(&ham())));
    history.push(ev(24, adjusted(6_545, 7_735)));
    let r = when(&history, fire(&timer::capture(&ship_id(&ham()))));
    assert!(capture_of(&r).is_some());
}

#[test]
fn a_shipment_reported_after_an_edit_is_revised_to_the_plan() {
    let history = confirmed_history();
    let mut edited = history[..7].to_vec();
    edited.push(ev(20, mugs_changed(1, 2)));
    edited.push(ev(21, mug_reservation_changed(1, 2, &[(ber(), 2)])));
    edited.push(ev(22, adjusted(6_545, 7_735)));
    // Berlin's creation (with the old lines) reaches the saga only now.
    let r = when(&edited, history[7].clone());
    assert_eq!(
        revised_lines(&r, &ber()),
        Some(vec![(mug(), 2), (tee(), 1)])
    );
}

// ---- parcels returned to sender -------------------------------------------------------

fn capture_request(w: &WarehouseId, amount: i64) -> PortRequest {
    PortRequest::Payment(PaymentRequest::Capture {
        payment_id: pay_id(),
        reference: "pi_1".into(),
        amount: eur(amount),
        purpose: ship_id(w).to_string(),
    })
}

/// Both parcels left; Berlin's share (39.27) was captured.
fn both_dispatched_berlin_captured() -> Vec<Input> {
    let mut history = confirmed_history();
    history.push(ev(10, label_created(&ber())));
    history.push(ev(11, dispatched(&ber())));
    history.push(ev(12, label_created(&ham())));
    history.push(ev(13, dispatched(&ham())));
    history.push(reply(
        14,
        capture_request(&ber(), 3_927),
        PortReply::Payment(PaymentReply::Captured { amount: eur(3_927) }),
    ));
    history.push(ev(
        15,
        PaymentEvent::PaymentCaptured(PaymentCaptured {
            payment_id: pay_id(),
            order_id: order_id(),
            amount: eur(3_927),
            captured_total: eur(3_927),
            capturable_remaining: eur(2_618),
            at: t0(),
        }),
    ));
    history
}

fn returned(w: &WarehouseId, lines: &[(Sku, u32)]) -> ShipmentEvent {
    ShipmentEvent::ShipmentReturnedToSender(ShipmentReturnedToSender {
        shipment_id: ship_id(w),
        order_id: order_id(),
        warehouse: w.clone(),
        lines: lines
            .iter()
            .map(|(sku, q)| ShipmentLine {
                sku: sku.clone(),
                quantity: Quantity(*q),
            })
            .collect(),
        failed_attempts: 1,
        at: t0(),
    })
}

#[test]
fn a_failed_then_returned_scan_sends_the_parcel_back_and_stops_tracking() {
    let history = both_dispatched_berlin_captured();
    let updates = vec![
        TrackingUpdate {
            scan: Scan::Failed,
            location: "door".into(),
            at: t0() + Duration::minutes(1),
        },
        TrackingUpdate {
            scan: Scan::ReturnedToSender,
            location: "sender".into(),
            at: t0() + Duration::minutes(2),
        },
    ];
    let track = PortRequest::Carrier(CarrierRequest::Track {
        shipment_id: ship_id(&ber()),
        tracking_number: "TP-BER-1".into(),
    });
    let r = when(
        &history,
        reply(
            20,
            track,
            PortReply::Carrier(CarrierReply::Tracking(updates)),
        ),
    );
    assert!(matches!(
        &r.commands[..],
        [
            Dispatch {
                target: Target::Shipment(_, ShipmentCommand::ReportDeliveryFailure(_)),
                ..
            },
            Dispatch {
                target: Target::Shipment(_, ShipmentCommand::ReturnToSender { .. }),
                ..
            },
        ]
    ));
    assert!(
        r.timers.is_empty(),
        "no more polling for a parcel that came back"
    );
}

#[test]
fn a_returned_captured_parcel_is_recorded_restocked_refunded_and_its_points_reversed() {
    let history = both_dispatched_berlin_captured();
    let r = when(
        &history,
        ev(21, returned(&ber(), &[(tee(), 1), (mug(), 1)])),
    );
    assert_eq!(
        steps(&r),
        vec![
            "record-returned",
            "restock-returned:TEE",
            "restock-returned:MUG"
        ]
    );
    assert!(matches!(
        &r.commands[2].target,
        Target::Stock(_, StockCommand::ReceiveStock(c)) if c.warehouse == ber() && c.quantity == Quantity(1)
    ));
    assert!(r.cancel_timers.contains(&timer::tracking(&ship_id(&ber()))));
    assert_eq!(r.calls.len(), 1);
    assert!(matches!(
        &r.calls[0].request,
        PortRequest::Payment(PaymentRequest::Refund { amount, refund_id, .. })
            if *amount == eur(3_927) && *refund_id == returned_parcel_refund_id(ship_id(&ber()))
    ));
    let mut history = history;
    history.push(ev(21, returned(&ber(), &[(tee(), 1), (mug(), 1)])));
    let refunded = PaymentEvent::PaymentRefunded(PaymentRefunded {
        payment_id: pay_id(),
        order_id: order_id(),
        refund_id: returned_parcel_refund_id(ship_id(&ber())),
        amount: eur(3_927),
        refunded_total: eur(3_927),
        refundable_remaining: eur(0),
        at: t0(),
    });
    let r = when(&history, ev(22, refunded));
    assert_eq!(steps(&r), vec!["record-refund", "reverse-points"]);
    assert!(matches!(
        &r.commands[0].target,
        Target::Order(_, OrderCommand::RecordRefund(c)) if c.return_id.is_none()
    ));
}

#[test]
fn a_returned_parcel_not_yet_captured_is_never_captured() {
    let mut history = both_dispatched_berlin_captured();
    history.push(ev(21, returned(&ham(), &[(tee(), 1)])));
    let r = when(
        &history[..history.len() - 1],
        history[history.len() - 1].clone(),
    );
    assert_eq!(steps(&r), vec!["record-returned", "restock-returned:TEE"]);
    assert!(
        r.calls.is_empty(),
        "nothing to refund, Berlin still owes its capture"
    );
    assert!(r.cancel_timers.contains(&timer::capture(&ship_id(&ham()))));
    let r = when(&history, fire(&timer::capture(&ship_id(&ham()))));
    assert_eq!(capture_of(&r), None);
}

// ---- referral rewards -----------------------------------------------------------------

fn qualified(referred_by: &str) -> aggregates::loyalty::LoyaltyEvent {
    aggregates::loyalty::LoyaltyEvent::LoyaltyReferralQualified(
        aggregates::loyalty::LoyaltyReferralQualified {
            customer_id: customer(),
            referred_by: referred_by.into(),
            first_order_id: order_id(),
            at: t0(),
        },
    )
}

#[test]
fn a_completed_order_asks_the_customer_s_account_whether_it_qualifies_a_referrer() {
    let completed = OrderEvent::OrderCompleted(OrderCompleted {
        grand_total: eur(6_545),
        paid: eur(6_545),
        refunded: eur(0),
        at: t0(),
    });
    let r = when(&delivered_history(), ev(30, completed));
    assert_eq!(steps(&r), vec!["qualify-referral"]);
    assert!(matches!(
        &r.commands[0].target,
        Target::Loyalty(id, LoyaltyCommand::QualifyReferral(c))
            if *id == customer().to_string() && c.order_id == order_id()
    ));
}

#[test]
fn a_qualified_referral_rewards_the_referrer_named_by_the_code() {
    let saga = CheckoutSaga::default();
    let referrer = Uuid::from_u128(0xBEEF);
    let code = referrer.simple().to_string().to_ascii_uppercase();
    let input = ev(31, qualified(&code));
    assert_eq!(
        saga.route(match &input {
            Input::Event(e) => e,
            _ => unreachable!(),
        }),
        Route::Continue(order_id().to_string())
    );
    let r = when(&delivered_history(), input);
    assert_eq!(steps(&r), vec!["reward-referrer"]);
    match &r.commands[0].target {
        Target::Loyalty(id, LoyaltyCommand::RewardReferral(c)) => {
            assert_eq!(id, &referrer.to_string());
            assert_eq!(c.referred_customer, customer());
            assert_eq!(c.referral_code, code);
            assert_eq!(c.first_order_id, order_id());
            assert_eq!(c.points, CheckoutSettings::default().referral_points);
        }
        other => panic!("expected a reward, got {other:?}"),
    }
    // No self-referral, and a code that names no customer rewards nobody.
    let own = customer().0.simple().to_string();
    assert_eq!(
        when(&delivered_history(), ev(32, qualified(&own))),
        Reaction::none()
    );
    assert_eq!(
        when(&delivered_history(), ev(33, qualified("ADA-2026"))),
        Reaction::none()
    );
    // The account refuses a second reward or another's code: nothing to undo.
    let refusal = DomainError::Loyalty(LoyaltyError::SelfReferral);
    let state = given(&delivered_history());
    assert_eq!(
        saga.on_failure(&state, &r.commands[0], &refusal, t0()),
        OnFailure::Skip
    );
}

// ---- backordered lines ----------------------------------------------------------------

fn mug_backordered() -> StockEvent {
    StockEvent::StockReserved(StockReserved {
        sku: mug(),
        order_id: order_id(),
        quantity: Quantity(1),
        allocation: vec![],
        backordered: Quantity(1),
        preferred_warehouses: vec![],
        expires_at: t0() + Duration::minutes(30),
        levels: StockLevels::default(),
        at: t0(),
    })
}

fn mug_filled(w: &WarehouseId) -> StockEvent {
    StockEvent::StockBackorderFilled(StockBackorderFilled {
        sku: mug(),
        order_id: order_id(),
        allocation: vec![WarehouseAllocation {
            warehouse: w.clone(),
            quantity: Quantity(1),
        }],
        still_backordered: Quantity(0),
        levels: StockLevels::default(),
        at: t0(),
    })
}

/// The mug is backordered; the T-shirts wait in Hamburg (one parcel).
fn backordered_history() -> Vec<Input> {
    vec![
        ev(1, placed("tok_visa")),
        ev(2, reserved(tee(), &[(ham(), 2)])),
        ev(3, mug_backordered()),
        ev(4, initiated()),
        ev(5, assessed(FraudOutcome::Passed)),
        ev(6, authorized_event(6_545)),
    ]
}

#[test]
fn a_backordered_line_is_confirmed_and_ships_later_in_its_own_parcel() {
    let mut history = backordered_history();
    // Paid for everything; only what is on the shelf ships now.
    let r = when(&history, ev(7, confirmed()));
    assert_eq!(steps(&r), vec!["ship-from:HAM-1"]);
    history.push(ev(7, confirmed()));
    history.push(ev(8, shipment_created(ham(), &[(tee(), 2)])));
    history.push(ev(9, label_created(&ham())));
    let r = when(&history, ev(10, dispatched(&ham())));
    assert_eq!(steps(&r), vec!["record-shipment", "commit-stock:TEE"]);
    // The T-shirts are 40.00 of 50.00 goods: 80 % of 65.45 now, the rest with the mug.
    assert_eq!(capture_of(&r), Some(eur(5_236)));
    history.push(ev(10, dispatched(&ham())));

    // The mug arrives in Hamburg after the first parcel left: a parcel of its own.
    let r = when(&history, ev(11, mug_filled(&ham())));
    assert_eq!(steps(&r), vec!["ship-later-from:HAM-1"]);
    let Target::Shipment(later, ShipmentCommand::CreateShipment(c)) = &r.commands[0].target else {
        panic!("expected a shipment, got {:?}", r.commands[0]);
    };
    assert_ne!(*later, ship_id(&ham()).to_string());
    assert_eq!(c.lines.len(), 1);
    assert_eq!(
        (c.lines[0].sku.clone(), c.lines[0].quantity),
        (mug(), Quantity(1))
    );
    let later_id = c.shipment_id;
    history.push(ev(11, mug_filled(&ham())));
    history.push(ev(
        12,
        ShipmentEvent::ShipmentCreated(ShipmentCreated {
            shipment_id: later_id,
            order_id: order_id(),
            warehouse: ham(),
            lines: c.lines.clone(),
            at: t0(),
        }),
    ));
    let later_dispatched = |n| {
        ev(
            n,
            ShipmentEvent::ShipmentDispatched(ShipmentDispatched {
                shipment_id: later_id,
                order_id: order_id(),
                carrier_code: "test-post".into(),
                tracking_number: "TP-later".into(),
                at: t0(),
            }),
        )
    };
    let r = when(&history, later_dispatched(13));
    assert_eq!(steps(&r), vec!["record-shipment", "commit-stock:MUG"]);
    assert_eq!(capture_of(&r), Some(eur(1_309)));
}

#[test]
fn a_backorder_filled_before_picking_joins_the_waiting_parcel() {
    let mut history = backordered_history();
    history.push(ev(7, confirmed()));
    history.push(ev(8, shipment_created(ham(), &[(tee(), 2)])));
    let r = when(&history, ev(9, mug_filled(&ham())));
    assert_eq!(
        revised_lines(&r, &ham()),
        Some(vec![(mug(), 1), (tee(), 2)])
    );
}
