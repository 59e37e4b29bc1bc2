//! The checkout saga run against the real aggregates' deciders, in memory, to the end:
//! every path's final state of every aggregate, the money and the stock.

mod sim;

use std::collections::{BTreeMap, BTreeSet};

use aggregates::cart::*;
use aggregates::loyalty::*;
use aggregates::order::*;
use aggregates::payment::PaymentStatus;
use aggregates::promotion::*;
use aggregates::stock::*;
use aggregates::*;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sagas::checkout::{payment_id, place_order, Phase};
use sagas::ports::test_payment;
use sim::World;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
}

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

fn customer() -> CustomerId {
    CustomerId::from_uuid(Uuid::from_u128(0xC0FFEE))
}

const CART: &str = "0193a000-0000-7000-8000-00000000ca01";
const COUPON: &str = "WELCOME10";

fn sku(code: &str) -> Sku {
    Sku::parse(code).unwrap()
}

/// Six T-shirts (one in Berlin, five in Hamburg) and three mugs in Berlin; a customer
/// with 500 loyalty points; a 10 % coupon limited to ten uses.
fn shop() -> World {
    let mut w = World::new(t0());
    for (code, warehouse, quantity) in [
        ("TEE", "BER-1", 1),
        ("TEE", "HAM-1", 5),
        ("MUG", "BER-1", 3),
    ] {
        w.stock_command(
            code,
            StockCommand::ReceiveStock(ReceiveStock {
                sku: sku(code),
                warehouse: WarehouseId::new(warehouse),
                quantity: Quantity(quantity),
                at: t0(),
            }),
        );
    }
    let c = customer().to_string();
    w.loyalty_command(
        &c,
        LoyaltyCommand::EnrollAccount(EnrollAccount {
            account_id: LoyaltyAccountId::from_uuid(Uuid::from_u128(0x10)),
            customer_id: customer(),
            referral_code: "ADA-2026".into(),
            referred_by: None,
            currency: Currency::EUR,
            at: t0(),
        }),
    );
    w.loyalty_command(
        &c,
        LoyaltyCommand::AwardCampaignBonus(AwardCampaignBonus {
            campaign_id: PromotionId::from_uuid(Uuid::from_u128(0x11)),
            points: 500,
            at: t0(),
        }),
    );
    w.promotion_command(
        COUPON,
        PromotionCommand::CreatePromotion(CreatePromotion {
            promotion_id: PromotionId::from_uuid(Uuid::from_u128(0x12)),
            code: COUPON.into(),
            kind: DiscountKind::Percentage {
                basis_points: 1_000,
            },
            minimum_subtotal: None,
            starts_at: t0() - Duration::days(1),
            ends_at: None,
            usage_limit: Some(10),
            per_customer_limit: None,
            stackable: false,
            target: PromotionTarget {
                skus: BTreeSet::new(),
                categories: BTreeSet::new(),
            },
            at: t0(),
        }),
    );
    w.drain();
    w
}

/// The customer fills a cart (two T-shirts, a mug, the coupon, 200 points worth 2.00),
/// checks it out, and the order is placed from it with `token`.
fn check_out(w: &mut World, tees: u32, token: &str) -> OrderId {
    let cart_id = CartId::from_uuid(CART.parse().unwrap());
    let at = w.now();
    let terms = w.promotions.get(COUPON).terms.unwrap();
    let commands = vec![
        CartCommand::OpenCart(OpenCart {
            cart_id,
            customer_id: customer(),
            currency: Currency::EUR,
            at,
        }),
        CartCommand::AddItem(AddItem {
            sku: sku("TEE"),
            product_name: "T-shirt".into(),
            category: "apparel".into(),
            quantity: Quantity(tees),
            unit_price: eur(2_000),
            max_quantity_per_line: None,
            at,
        }),
        CartCommand::AddItem(AddItem {
            sku: sku("MUG"),
            product_name: "Mug".into(),
            category: "home".into(),
            quantity: Quantity(1),
            unit_price: eur(1_000),
            max_quantity_per_line: None,
            at,
        }),
        CartCommand::SetShippingAddress(SetShippingAddress {
            address: Address::example(),
            at,
        }),
        CartCommand::SetShippingMethod(SetShippingMethod {
            method: ShippingMethod {
                code: "standard".into(),
                price: eur(490),
            },
            at,
        }),
        CartCommand::ApplyCoupon(ApplyCoupon { terms, at }),
        CartCommand::SetLoyaltyPoints(SetLoyaltyPoints {
            points: 200,
            value: eur(200),
            at,
        }),
        CartCommand::CheckOut(CheckOut {
            order_id: OrderId::from_uuid(Uuid::from_u128(0x0D)),
            tax_rates: BTreeMap::from([("DE".to_string(), 1_900)]),
            at,
        }),
    ];
    for command in commands {
        w.cart(CART, command);
    }
    let checked_out = w
        .log
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            sagas::DomainEvent::Cart(CartEvent::CartCheckedOut(c)) => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    let place = place_order(&checked_out, token, None).unwrap();
    let order_id = place.order_id;
    w.order(&order_id.to_string(), OrderCommand::PlaceOrder(place))
        .unwrap();
    order_id
}

fn order(w: &World, id: OrderId) -> Order {
    w.orders.get(&id.to_string())
}

fn details(w: &World, id: OrderId) -> OrderDetails {
    order(w, id).details.unwrap()
}

fn levels(w: &World, code: &str) -> StockLevels {
    w.stock.get(code).levels
}

fn warehouse(w: &World, code: &str, warehouse: &str) -> WarehouseLevel {
    levels(w, code).warehouses[&WarehouseId::new(warehouse)]
}

fn points(w: &World) -> LoyaltyAccount {
    w.loyalty.get(&customer().to_string())
}

fn coupon_uses(w: &World) -> u32 {
    w.promotions.get(COUPON).uses()
}

/// Nothing of the order is still held anywhere: no stock reserved, no coupon use, the
/// points back, no open authorization.
fn assert_fully_released(w: &World, id: OrderId) {
    assert_eq!(order(w, id).status, OrderStatus::Cancelled);
    assert_eq!(levels(w, "TEE").reserved, 0);
    assert_eq!(levels(w, "MUG").reserved, 0);
    assert_eq!(levels(w, "TEE").on_hand, 6, "nothing left the warehouses");
    assert_eq!(coupon_uses(w), 0);
    assert_eq!(points(w).balance, 500);
    let payment = w.payment_streams.get(&payment_id(id).to_string());
    assert_ne!(
        payment.status,
        PaymentStatus::Authorized,
        "no authorization left open"
    );
    if let Some(charge) = w.payments.charge_of(payment_id(id)) {
        assert!(charge.voided || charge.authorized.is_zero(), "{charge:?}");
        assert!(charge.captured.is_zero());
    }
    assert!(
        w.timers
            .keys()
            .all(|(saga, name)| saga != &id.to_string() || name == "payment-status"),
        "timers left: {:?}",
        w.timers
    );
}

#[test]
fn a_paid_order_is_delivered_earns_points_and_completes_when_the_return_window_closes() {
    let mut w = shop();
    let id = check_out(&mut w, 2, test_payment::SUCCEEDS);
    w.settle_until(t0() + Duration::days(2));

    let d = details(&w, id);
    // 50.00 goods − 10 % + 4.90 shipping, 19 % tax, − 2.00 points.
    assert_eq!(d.totals.grand_total, eur(5_738));
    assert_eq!(order(&w, id).status, OrderStatus::Confirmed);
    assert!(order(&w, id).fully_delivered);
    assert_eq!(d.paid, d.totals.grand_total);

    let payment = w
        .payment_streams
        .get(&payment_id(id).to_string())
        .ledger
        .unwrap();
    assert_eq!(payment.authorized, eur(5_738));
    assert_eq!(payment.captured, eur(5_738));
    let charges = w.payments.charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].captured, eur(5_738));
    assert_eq!(charges[0].calls, 1);
    assert!(!charges[0].voided);

    // Two T-shirts left Hamburg (it could fill the line alone), the mug left Berlin.
    assert_eq!(w.carrier.labels_bought(), 2);
    assert_eq!(warehouse(&w, "TEE", "HAM-1").on_hand, Quantity(3));
    assert_eq!(warehouse(&w, "TEE", "BER-1").on_hand, Quantity(1));
    assert_eq!(warehouse(&w, "MUG", "BER-1").on_hand, Quantity(2));
    assert_eq!(levels(&w, "TEE").reserved + levels(&w, "MUG").reserved, 0);

    assert_eq!(coupon_uses(&w), 1);
    let account = points(&w);
    let earned = account.orders[&id].points;
    assert_eq!(earned, 5_738, "100 points per euro paid, bronze tier");
    assert_eq!(account.balance, 500 - 200 + earned);

    w.settle_until(t0() + Duration::days(33));
    assert_eq!(order(&w, id).status, OrderStatus::Completed);
    assert_eq!(w.saga_state(&id.to_string()).phase, Phase::Completed);
    assert!(w.timers.is_empty(), "{:?}", w.timers);
}

#[test]
fn declined_cards_release_stock_coupon_and_points_and_cancel() {
    for token in [
        test_payment::INSUFFICIENT_FUNDS,
        test_payment::STOLEN,
        "tok_unknown",
    ] {
        let mut w = shop();
        let id = check_out(&mut w, 2, token);
        w.settle_until(t0() + Duration::hours(1));
        assert_fully_released(&w, id);
        let cancelled = w.log.iter().find_map(|e| match &e.event {
            sagas::DomainEvent::Order(OrderEvent::OrderCancelled(c)) => Some(c.reason),
            _ => None,
        });
        assert_eq!(
            cancelled,
            Some(CancellationReason::PaymentDeclined),
            "{token}"
        );
        assert_eq!(
            w.payment_streams.get(&payment_id(id).to_string()).status,
            PaymentStatus::Declined
        );
    }
}

#[test]
fn a_lost_authorization_answer_is_resolved_by_status_never_by_charging_again() {
    let mut w = shop();
    let id = check_out(&mut w, 2, test_payment::TIMES_OUT);
    w.settle_until(t0() + Duration::days(2));
    assert!(order(&w, id).fully_delivered);
    let charges = w.payments.charges();
    assert_eq!(charges.len(), 1, "one authorization");
    assert_eq!(
        charges[0].calls, 1,
        "asked for the status, never authorized again"
    );
    assert_eq!(charges[0].captured, details(&w, id).totals.grand_total);
}

#[test]
fn a_3d_secure_challenge_passed_by_the_customer_resumes_the_order() {
    let mut w = shop();
    let id = check_out(&mut w, 2, test_payment::THREE_D_SECURE);
    w.settle_until(t0() + Duration::minutes(1));
    assert_eq!(
        w.payment_streams.get(&payment_id(id).to_string()).status,
        PaymentStatus::ActionRequired
    );
    let reference = w.payments.charge_of(payment_id(id)).unwrap().reference;
    assert!(w.payments.complete_challenge(&reference, true));
    w.settle_until(t0() + Duration::days(2));
    assert!(order(&w, id).fully_delivered);
    assert_eq!(details(&w, id).paid, details(&w, id).totals.grand_total);
}

#[test]
fn an_abandoned_3d_secure_challenge_cancels_at_the_deadline() {
    let mut w = shop();
    let id = check_out(&mut w, 2, test_payment::THREE_D_SECURE);
    w.settle_until(t0() + Duration::minutes(19));
    assert_eq!(order(&w, id).status, OrderStatus::Placed);
    assert_eq!(
        levels(&w, "TEE").reserved,
        2,
        "held while the customer may still pay"
    );
    w.settle_until(t0() + Duration::hours(1));
    assert_fully_released(&w, id);
}

#[test]
fn a_failed_challenge_declines_and_cancels() {
    let mut w = shop();
    let id = check_out(&mut w, 2, test_payment::THREE_D_SECURE);
    w.settle_until(t0() + Duration::minutes(1));
    let reference = w.payments.charge_of(payment_id(id)).unwrap().reference;
    assert!(w.payments.complete_challenge(&reference, false));
    w.settle_until(t0() + Duration::hours(1));
    assert_fully_released(&w, id);
}

#[test]
fn a_line_out_of_stock_releases_the_others_and_cancels_before_any_payment() {
    let mut w = shop();
    let id = check_out(&mut w, 7, test_payment::SUCCEEDS);
    w.settle_until(t0() + Duration::hours(1));
    assert_fully_released(&w, id);
    assert!(
        w.payments.charges().is_empty(),
        "the card was never touched"
    );
    let reason = w.log.iter().find_map(|e| match &e.event {
        sagas::DomainEvent::Order(OrderEvent::OrderCancelled(c)) => Some(c.reason),
        _ => None,
    });
    assert_eq!(reason, Some(CancellationReason::OutOfStock));
}

#[test]
fn a_customer_cancelling_before_shipment_gets_the_authorization_voided() {
    let mut w = shop();
    w.warehouse_paused = true;
    let id = check_out(&mut w, 2, test_payment::SUCCEEDS);
    w.settle_until(t0() + Duration::hours(1));
    assert_eq!(order(&w, id).status, OrderStatus::Confirmed);
    let at = w.now();
    w.order(
        &id.to_string(),
        OrderCommand::CancelOrder(CancelOrder {
            reason: CancellationReason::CustomerRequested,
            at,
        }),
    )
    .unwrap();
    w.settle_until(t0() + Duration::hours(2));
    assert_fully_released(&w, id);
    assert_eq!(
        w.payment_streams.get(&payment_id(id).to_string()).status,
        PaymentStatus::Voided
    );
    assert!(w.payments.charge_of(payment_id(id)).unwrap().voided);
}

/// Delivers, then returns one T-shirt: approved, received, restocked, refunded.
fn with_a_return(w: &mut World) -> OrderId {
    let id = check_out(w, 2, test_payment::SUCCEEDS);
    w.settle_until(t0() + Duration::days(2));
    let return_id = ReturnId::from_uuid(Uuid::from_u128(0x2E));
    let lines = vec![LineQuantity {
        sku: sku("TEE"),
        quantity: Quantity(1),
    }];
    let at = w.now();
    let steps = [
        OrderCommand::RequestReturn(RequestReturn {
            return_id,
            lines,
            reason: "too small".into(),
            window_days: None,
            at,
        }),
        OrderCommand::ApproveReturn(ApproveReturn { return_id, at }),
        OrderCommand::ReceiveReturn(ReceiveReturn { return_id, at }),
    ];
    for command in steps {
        w.order(&id.to_string(), command).unwrap();
        w.settle_until(w.now() + Duration::hours(1));
    }
    w.settle_until(t0() + Duration::days(40));
    id
}

#[test]
fn a_return_is_labelled_restocked_refunded_in_proportion_and_points_reversed() {
    let mut w = shop();
    let id = with_a_return(&mut w);
    let d = details(&w, id);
    // Goods paid: 57.38 − 4.90 shipping − 0.93 its tax = 51.55; one of two T-shirts
    // is 18.00 of 45.00 discounted goods: 20.62.
    assert_eq!(d.refunded, eur(2_062));
    assert_eq!(order(&w, id).status, OrderStatus::Completed);
    let charge = w.payments.charge_of(payment_id(id)).unwrap();
    assert_eq!(charge.refunded, eur(2_062));
    assert_eq!(
        charge.captured.amount - charge.refunded.amount,
        d.paid.amount - d.refunded.amount,
        "the provider and the order agree on the money kept"
    );
    assert_eq!(
        warehouse(&w, "TEE", "HAM-1").on_hand,
        Quantity(4),
        "restocked"
    );
    let returned = w.saga_state(&id.to_string()).returns;
    assert!(
        returned.values().all(|r| r.label.is_some()),
        "a return label was sent"
    );
    let account = points(&w);
    let earned = &account.orders[&id];
    assert_eq!(earned.refunded, eur(2_062));
    // The refund takes back 20.62 / 57.38 of the points the order earned.
    assert_eq!(earned.points_due, 2_062);
    assert_eq!(
        account.balance,
        500 - 200 + earned.points - earned.points_due
    );
    assert_eq!(
        w.carrier.labels_bought(),
        3,
        "two parcels and one return label"
    );
}

/// Every aggregate's state, the provider's books and the labels, for comparing runs.
fn outcome(w: &World) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{}",
        w.orders.states,
        w.payment_streams.states,
        w.stock.states,
        w.shipments.states,
        w.loyalty.states,
        w.promotions.states,
        // Repeated calls under one key are expected after a crash; money is compared.
        w.payments
            .charges()
            .into_iter()
            .map(|c| test_payment::TestCharge { calls: 0, ..c })
            .collect::<Vec<_>>(),
        w.carrier.labels_bought(),
    )
}

#[test]
fn crashes_after_every_step_and_duplicate_deliveries_change_nothing() {
    let mut calm = shop();
    with_a_return(&mut calm);
    let mut rough = shop();
    rough.crash_every_step = true;
    rough.duplicate_deliveries = true;
    with_a_return(&mut rough);
    assert_eq!(outcome(&rough), outcome(&calm));
}

#[test]
fn failing_captures_are_retried_a_bounded_number_of_times_and_never_counted_as_paid() {
    let mut w = shop();
    let id = check_out(&mut w, 2, test_payment::CAPTURE_FAILS);
    w.settle_until(t0() + Duration::days(2));
    assert!(order(&w, id).fully_delivered);
    assert!(details(&w, id).paid.is_zero());
    assert!(w
        .payments
        .charge_of(payment_id(id))
        .unwrap()
        .captured
        .is_zero());
    let saga = w.saga_state(&id.to_string());
    let failures = &saga.payment.unwrap().capture_failures;
    assert_eq!(failures.len(), 2, "both parcels tried");
    assert!(failures.values().all(|n| *n == 3), "{failures:?}");
    assert!(
        !points(&w).orders.contains_key(&id),
        "nothing paid, nothing earned"
    );
}

#[test]
fn an_exchange_ships_a_replacement_through_the_same_saga_and_refunds_nothing() {
    let mut w = shop();
    let id = check_out(&mut w, 2, test_payment::SUCCEEDS);
    w.settle_until(t0() + Duration::days(2));
    let return_id = ReturnId::from_uuid(Uuid::from_u128(0x2F));
    let replacement = OrderId::from_uuid(Uuid::from_u128(0x0E));
    let lines = vec![LineQuantity {
        sku: sku("TEE"),
        quantity: Quantity(1),
    }];
    let at = w.now();
    let steps = [
        OrderCommand::RequestReturn(RequestReturn {
            return_id,
            lines,
            reason: "wrong size".into(),
            window_days: None,
            at,
        }),
        OrderCommand::RequestExchange(RequestExchange {
            return_id,
            replacement_order_id: replacement,
            at,
        }),
        OrderCommand::ApproveReturn(ApproveReturn { return_id, at }),
        OrderCommand::ReceiveReturn(ReceiveReturn { return_id, at }),
    ];
    for command in steps {
        w.order(&id.to_string(), command).unwrap();
        w.settle_until(w.now() + Duration::hours(1));
    }
    w.settle_until(t0() + Duration::days(40));

    let original = details(&w, id);
    assert!(original.refunded.is_zero(), "an exchange is not refunded");
    assert_eq!(order(&w, id).status, OrderStatus::Completed);
    let swap = order(&w, replacement);
    assert_eq!(swap.status, OrderStatus::Completed);
    assert!(swap.details.unwrap().totals.grand_total.is_zero());
    // Two sold, one back in Hamburg, one out again as the replacement.
    assert_eq!(levels(&w, "TEE").on_hand, 4);
    assert_eq!(levels(&w, "TEE").reserved, 0);
    assert_eq!(
        w.payments.charges().len(),
        1,
        "the replacement needed no payment"
    );
}
