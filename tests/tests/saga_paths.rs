//! The checkout saga's less travelled paths over the real runner, on both backends:
//! orders edited before fulfilment (re-reserve the difference, move the authorization,
//! revise the parcels; a short line or a declined raise undoes the edit). Each asserts
//! the final state of every aggregate involved, the money at the provider and the stock.
//!
//! The seeded order: two T-shirts at 20.00 (Hamburg holds them) and a mug at 10.00
//! (Berlin), 4.90 shipping, 19 % tax: 65.33. Its shipments are held in the warehouse
//! until the edit has settled, as a customer edits before anything is picked.

use aggregates::order::{ChangeLineQuantity, OrderCommand, OrderEvent, OrderStatus, RemoveLine};
use aggregates::payment::PaymentStatus;
use aggregates::shipment::ShipmentStatus;
use aggregates::{OrderId, Quantity, Sku};
use infra::clock::Clock;
use sagas::checkout::{payment_id, Phase};
use sagas::ports::test_payment;
use tests::saga::{eur, events_of, sku, Basket, Engine};
use tests::BackendKind;

/// A seeded engine with the usual order confirmed and both shipments created, held.
async fn confirmed_and_held(kind: BackendKind, token: &str) -> Option<(Engine, OrderId)> {
    let engine = Engine::start(kind, false).await?;
    engine.seed().await;
    let id = OrderId::from_uuid(uuid::Uuid::from_u128(0x0D));
    engine.held.lock().unwrap().insert(id);
    assert_eq!(engine.check_out(token).await, id);
    engine
        .wait("confirmed with two shipments", || async {
            engine
                .saga(id)
                .await
                .is_some_and(|s| s.phase == Phase::Confirmed && s.shipments.len() == 2)
        })
        .await;
    Some((engine, id))
}

fn change(code: &str, quantity: u32, engine: &Engine) -> OrderCommand {
    OrderCommand::ChangeLineQuantity(ChangeLineQuantity {
        sku: sku(code),
        quantity: Quantity(quantity),
        at: engine.clock.now(),
    })
}

fn line_quantity(order: &aggregates::order::Order, code: &str) -> Option<u32> {
    order
        .details
        .as_ref()
        .and_then(|d| d.line(&sku(code)))
        .map(|l| l.line.quantity.get())
}

fn shipment_units(shipment: &aggregates::shipment::Shipment) -> Vec<(Sku, u32)> {
    let mut units: Vec<(Sku, u32)> = shipment
        .lines
        .iter()
        .map(|l| (l.sku.clone(), l.quantity.get()))
        .collect();
    units.sort();
    units
}

/// Two more mugs: reserved in Berlin, the authorization raised to the new total, the
/// Berlin parcel revised; the order then ships, is captured in full and delivered.
async fn a_raised_line_is_reserved_authorized_shipped_and_captured(kind: BackendKind) {
    let Some((engine, id)) = confirmed_and_held(kind, test_payment::SUCCEEDS).await else {
        return;
    };
    engine.edit(id, change("MUG", 3, &engine)).await.unwrap();
    // 20.00 × 2 + 10.00 × 3 + 4.90 shipping, 19 % tax.
    let total = eur(8_913);
    assert_eq!(
        engine.order(id).await.details.unwrap().totals.grand_total,
        total
    );
    engine
        .wait("the Berlin parcel carries three mugs", || async {
            engine
                .shipment(id, "BER-1")
                .await
                .is_some_and(|s| shipment_units(&s) == vec![(sku("MUG"), 3)])
        })
        .await;
    let mug = engine.stock("MUG").await;
    assert_eq!((mug.on_hand, mug.reserved), (3, 3));
    let payment = engine.payment(id).await;
    assert_eq!(payment.ledger.as_ref().unwrap().authorized, total);
    let charge = engine.runner.payments().charge_of(payment_id(id)).unwrap();
    assert_eq!(charge.authorized, total, "the provider raised the hold");

    engine.release_hold(id).await;
    engine.deliver(id).await;
    engine
        .wait("paid in full", || async {
            engine.order(id).await.details.unwrap().paid == total
        })
        .await;
    let charge = engine.runner.payments().charge_of(payment_id(id)).unwrap();
    assert_eq!(charge.captured, total);
    assert!(charge.refunded.is_zero() && !charge.voided);
    let payment = engine.payment(id).await;
    assert_eq!(payment.status, PaymentStatus::Authorized);
    assert_eq!(payment.ledger.unwrap().captured, total);
    let mug = engine.stock("MUG").await;
    assert_eq!((mug.on_hand, mug.reserved), (0, 0));
    let tee = engine.stock("TEE").await;
    assert_eq!((tee.on_hand, tee.reserved), (4, 0));
    let order = engine.order(id).await;
    assert_eq!(line_quantity(&order, "MUG"), Some(3));
    assert!(order.fully_delivered);
    for warehouse in ["BER-1", "HAM-1"] {
        let shipment = engine.shipment(id, warehouse).await.unwrap();
        assert_eq!(shipment.status, ShipmentStatus::Delivered, "{warehouse}");
    }
    engine.stop().await;
}

/// Four mugs, with three in stock and no backorders: the stock refuses the raise and the
/// saga puts the line back; nothing else moved.
async fn a_raise_the_stock_cannot_cover_is_undone(kind: BackendKind) {
    let Some((engine, id)) = confirmed_and_held(kind, test_payment::SUCCEEDS).await else {
        return;
    };
    engine.edit(id, change("MUG", 4, &engine)).await.unwrap();
    engine
        .wait("the line is back at one mug", || async {
            line_quantity(&engine.order(id).await, "MUG") == Some(1)
        })
        .await;
    engine.settle(std::time::Duration::from_secs(60)).await;
    let changes = events_of::<aggregates::order::Order>(&engine.store, &id.to_string())
        .await
        .into_iter()
        .filter(|e| matches!(e, OrderEvent::OrderLineQuantityChanged(_)))
        .count();
    assert_eq!(changes, 2, "the edit and its undoing");
    let order = engine.order(id).await;
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(order.details.unwrap().totals.grand_total, eur(6_533));
    let mug = engine.stock("MUG").await;
    assert_eq!((mug.on_hand, mug.reserved), (3, 1));
    let charge = engine.runner.payments().charge_of(payment_id(id)).unwrap();
    assert_eq!(charge.authorized, eur(6_533));
    assert_eq!(
        engine.payment(id).await.ledger.unwrap().authorized,
        eur(6_533)
    );
    let berlin = engine.shipment(id, "BER-1").await.unwrap();
    assert_eq!(shipment_units(&berlin), vec![(sku("MUG"), 1)]);
    engine.stop().await;
}

/// A card that does not support incremental authorizations: the raise is reserved, the
/// provider declines the higher total, the saga undoes the edit and the extra mug goes
/// back on the shelf.
async fn a_raise_the_provider_declines_is_undone_and_released(kind: BackendKind) {
    let Some((engine, id)) = confirmed_and_held(kind, test_payment::NO_INCREMENT).await else {
        return;
    };
    engine.edit(id, change("MUG", 2, &engine)).await.unwrap();
    engine
        .wait("the edit undone and its stock released", || async {
            line_quantity(&engine.order(id).await, "MUG") == Some(1)
                && engine.stock("MUG").await.reserved == 1
        })
        .await;
    engine.settle(std::time::Duration::from_secs(60)).await;
    let mug_events = events_of::<aggregates::stock::Stock>(&engine.store, "MUG").await;
    let changed = mug_events
        .iter()
        .filter(|e| matches!(e, aggregates::stock::StockEvent::StockReservationChanged(_)))
        .count();
    assert_eq!(changed, 2, "raised, then lowered back");
    let charge = engine.runner.payments().charge_of(payment_id(id)).unwrap();
    assert_eq!(charge.authorized, eur(6_533));
    assert!(charge.captured.is_zero());
    let payment = engine.payment(id).await;
    assert_eq!(payment.status, PaymentStatus::Authorized);
    assert_eq!(payment.ledger.unwrap().authorized, eur(6_533));
    let order = engine.order(id).await;
    assert_eq!(order.details.unwrap().totals.grand_total, eur(6_533));
    let berlin = engine.shipment(id, "BER-1").await.unwrap();
    assert_eq!(shipment_units(&berlin), vec![(sku("MUG"), 1)]);
    let mug = engine.stock("MUG").await;
    assert_eq!((mug.on_hand, mug.reserved), (3, 1));
    engine.stop().await;
}

/// The mug removed: its stock released, the authorization lowered, the Berlin parcel
/// emptied; only Hamburg ships, and exactly the new total is captured.
async fn a_removed_line_is_released_and_only_the_new_total_captured(kind: BackendKind) {
    let Some((engine, id)) = confirmed_and_held(kind, test_payment::SUCCEEDS).await else {
        return;
    };
    let remove = OrderCommand::RemoveLine(RemoveLine {
        sku: sku("MUG"),
        at: engine.clock.now(),
    });
    engine.edit(id, remove).await.unwrap();
    // 20.00 × 2 + 4.90 shipping, 19 % tax.
    let total = eur(5_343);
    engine
        .wait("the Berlin parcel emptied", || async {
            engine
                .shipment(id, "BER-1")
                .await
                .is_some_and(|s| s.lines.is_empty())
        })
        .await;
    let mug = engine.stock("MUG").await;
    assert_eq!((mug.on_hand, mug.reserved), (3, 0));
    let charge = engine.runner.payments().charge_of(payment_id(id)).unwrap();
    assert_eq!(charge.authorized, total);

    engine.release_hold(id).await;
    engine.deliver(id).await;
    engine
        .wait("paid", || async {
            engine.order(id).await.details.unwrap().paid == total
        })
        .await;
    let charge = engine.runner.payments().charge_of(payment_id(id)).unwrap();
    assert_eq!(charge.captured, total);
    assert!(charge.refunded.is_zero());
    let payment = engine.payment(id).await.ledger.unwrap();
    assert_eq!((payment.authorized, payment.captured), (total, total));
    let tee = engine.stock("TEE").await;
    assert_eq!((tee.on_hand, tee.reserved), (4, 0));
    let mug = engine.stock("MUG").await;
    assert_eq!((mug.on_hand, mug.reserved), (3, 0));
    let berlin = engine.shipment(id, "BER-1").await.unwrap();
    assert_eq!(berlin.status, ShipmentStatus::AwaitingPick);
    let hamburg = engine.shipment(id, "HAM-1").await.unwrap();
    assert_eq!(hamburg.status, ShipmentStatus::Delivered);
    let order = engine.order(id).await;
    assert_eq!(line_quantity(&order, "MUG"), None);
    assert!(order.fully_delivered);
    engine.stop().await;
}

/// The Berlin parcel (the mug) fails at the door and comes back; Hamburg's T-shirts are
/// delivered. The mug is back on Berlin's shelf, its captured share refunded, the order
/// records the returned parcel, points are earned on what stayed paid, and the order
/// completes when the return window closes.
async fn a_parcel_returned_to_sender_is_restocked_refunded_and_recorded(kind: BackendKind) {
    let Some((engine, id)) = confirmed_and_held(kind, test_payment::SUCCEEDS).await else {
        return;
    };
    let berlin = sagas::checkout::shipment_id(id, &aggregates::WarehouseId::new("BER-1"));
    engine.runner.carrier().send_back(berlin);
    engine.release_hold(id).await;
    engine.deliver(id).await;
    engine
        .wait("the returned parcel refunded and recorded", || async {
            let order = engine.order(id).await;
            order.returned_shipments.contains(&berlin)
                && order.details.is_some_and(|d| d.refunded.is_positive())
        })
        .await;
    engine
        .wait("return window set", || async {
            engine
                .saga(id)
                .await
                .is_some_and(|s| s.phase == Phase::Delivered)
        })
        .await;
    engine.clock.advance(chrono::Duration::days(31));
    engine
        .wait("completed", || async {
            engine.order(id).await.status == OrderStatus::Completed
        })
        .await;

    let order = engine.order(id).await;
    let details = order.details.clone().unwrap();
    let charge = engine.runner.payments().charge_of(payment_id(id)).unwrap();
    assert_eq!(
        charge.captured,
        eur(6_533),
        "both parcels captured when they left"
    );
    // The mug is 10.00 of 50.00 goods: a fifth of 65.33.
    assert!(
        [eur(1_306), eur(1_307)].contains(&charge.refunded),
        "{:?}",
        charge.refunded
    );
    assert_eq!(details.paid, charge.captured);
    assert_eq!(details.refunded, charge.refunded);
    let ledger = engine.payment(id).await.ledger.unwrap();
    assert_eq!(
        (ledger.captured, ledger.refunded),
        (charge.captured, charge.refunded)
    );
    assert_eq!(
        order.returned_to_sender.get(&sku("MUG")).map(|q| q.get()),
        Some(1)
    );
    assert_eq!(order.delivered_of(&sku("TEE")).get(), 2);
    assert_eq!(order.delivered_of(&sku("MUG")).get(), 0);
    let mug = engine.stock("MUG").await;
    assert_eq!(
        (mug.on_hand, mug.reserved),
        (3, 0),
        "the mug is back on the shelf"
    );
    let tee = engine.stock("TEE").await;
    assert_eq!((tee.on_hand, tee.reserved), (4, 0));
    let berlin = engine.shipment(id, "BER-1").await.unwrap();
    assert_eq!(berlin.status, ShipmentStatus::ReturnedToSender);
    let hamburg = engine.shipment(id, "HAM-1").await.unwrap();
    assert_eq!(hamburg.status, ShipmentStatus::Delivered);
    let account = engine
        .commands
        .load::<aggregates::loyalty::LoyaltyAccount>(&tests::saga::customer().to_string())
        .await
        .unwrap()
        .unwrap()
        .state;
    // Earned on what was paid, then reversed in proportion to the refund (or earned on
    // the rest at once, when the refund came first): either way what is kept is the
    // share of what stayed paid.
    let net = charge.captured.checked_sub(charge.refunded).unwrap();
    let earned = &account.orders[&id];
    assert_eq!(
        i64::try_from(earned.points - earned.points_due).unwrap(),
        net.amount,
        "points only on what stayed paid"
    );
    engine.stop().await;
}

/// A customer referred by another completes two orders: the referrer is rewarded once,
/// for the first; a customer nobody referred rewards nobody.
async fn a_referred_customer_s_first_completed_order_rewards_the_referrer_once(kind: BackendKind) {
    let Some(engine) = Engine::start(kind, false).await else {
        return;
    };
    engine.seed().await;
    let referrer = aggregates::CustomerId::from_uuid(uuid::Uuid::now_v7());
    engine.enroll(referrer, None).await;
    let first = Basket::new(&[("MUG", 1, 1_000)], test_payment::SUCCEEDS);
    let referred = first.customer;
    let code = engine.account(referrer).await.referral_code;
    engine.enroll(referred, Some(code)).await;

    let first_id = engine.check_out_basket(&first).await;
    engine.complete(first_id).await;
    engine
        .wait("the referrer rewarded", || async {
            engine.account(referrer).await.referrals.contains(&referred)
        })
        .await;
    let second = Basket {
        customer: referred,
        ..Basket::new(&[("MUG", 1, 1_000)], test_payment::SUCCEEDS)
    };
    let second_id = engine.check_out_basket(&second).await;
    engine.complete(second_id).await;
    engine.settle(std::time::Duration::from_secs(60)).await;

    let account = engine.account(referrer).await;
    let reward = sagas::checkout::CheckoutSettings::default().referral_points;
    assert_eq!(account.balance, reward, "rewarded once");
    assert_eq!(account.referrals.len(), 1);
    let rewards =
        events_of::<aggregates::loyalty::LoyaltyAccount>(&engine.store, &referrer.to_string())
            .await
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    aggregates::loyalty::LoyaltyEvent::LoyaltyReferralRewarded(_)
                )
            })
            .count();
    assert_eq!(rewards, 1);
    let referred_account = engine.account(referred).await;
    assert_eq!(referred_account.referral_qualified_by, Some(first_id));
    // Both orders earned their own points on what was paid (10.00 + 4.90, 19 % tax).
    for id in [first_id, second_id] {
        assert_eq!(engine.order(id).await.status, OrderStatus::Completed);
        assert_eq!(referred_account.orders[&id].points, 1_773);
    }
    let mug = engine.stock("MUG").await;
    assert_eq!((mug.on_hand, mug.reserved), (1, 0));
    // The seeded customer, referred by nobody, completes an order: no reward anywhere.
    let id = engine.check_out(test_payment::SUCCEEDS).await;
    engine.complete(id).await;
    engine.settle(std::time::Duration::from_secs(60)).await;
    assert_eq!(engine.account(referrer).await.balance, reward);
    assert_eq!(
        engine
            .account(tests::saga::customer())
            .await
            .referral_qualified_by,
        None
    );
    engine.stop().await;
}

/// Five mugs with three on the shelf and backorders allowed: the order is confirmed and
/// paid in full, three mugs ship at once (and are captured), the other two once they
/// arrive in Hamburg, in a parcel of their own that captures the rest.
async fn a_backordered_line_is_confirmed_and_ships_when_stock_arrives(kind: BackendKind) {
    let Some(engine) = Engine::start(kind, false).await else {
        return;
    };
    engine.seed().await;
    let at = engine.clock.now();
    engine
        .run::<aggregates::stock::Stock>(
            "MUG",
            aggregates::stock::StockCommand::SetBackorderLimit(
                aggregates::stock::SetBackorderLimit {
                    sku: sku("MUG"),
                    limit: Quantity(5),
                    at,
                },
            ),
        )
        .await;
    let basket = Basket::new(&[("MUG", 5, 1_000)], test_payment::SUCCEEDS);
    let id = engine.check_out_basket(&basket).await;
    // 50.00 + 4.90 shipping, 19 % tax.
    let total = eur(6_533);
    engine
        .wait("the first parcel on its way", || async {
            engine.tracking_timers(id).await == 1
        })
        .await;
    let order = engine.order(id).await;
    assert_eq!(order.status, OrderStatus::Confirmed);
    let mug = engine.stock("MUG").await;
    assert_eq!(
        (
            mug.on_hand,
            mug.reserved,
            mug.backordered.get(),
            mug.available
        ),
        (3, 3, 2, -2),
        "the shipped units stay reserved until the backorder ships with them"
    );
    let charge = engine.runner.payments().charge_of(payment_id(id)).unwrap();
    assert_eq!(charge.authorized, total);
    engine
        .wait("the first parcel captured", || async {
            engine
                .runner
                .payments()
                .charge_of(payment_id(id))
                .is_some_and(|c| c.captured.is_positive())
        })
        .await;
    // Three mugs of five: three fifths of 65.33.
    let first = engine
        .runner
        .payments()
        .charge_of(payment_id(id))
        .unwrap()
        .captured;
    assert!([eur(3_919), eur(3_920)].contains(&first), "{first:?}");

    engine.receive("MUG", "HAM-1", 2).await;
    engine
        .wait(
            "the backordered mugs on their way in a parcel of their own",
            || async { engine.tracking_timers(id).await == 2 },
        )
        .await;
    engine.deliver(id).await;
    engine
        .wait("paid in full", || async {
            engine.order(id).await.details.unwrap().paid == total
        })
        .await;
    let saga = engine.saga(id).await.unwrap();
    assert_eq!(saga.shipments.len(), 2);
    let hamburg = engine.shipment(id, "HAM-1").await.unwrap();
    assert_eq!(shipment_units(&hamburg), vec![(sku("MUG"), 2)]);
    assert_eq!(hamburg.status, ShipmentStatus::Delivered);
    let berlin = engine.shipment(id, "BER-1").await.unwrap();
    assert_eq!(shipment_units(&berlin), vec![(sku("MUG"), 3)]);
    let charge = engine.runner.payments().charge_of(payment_id(id)).unwrap();
    assert_eq!(charge.captured, total);
    let ledger = engine.payment(id).await.ledger.unwrap();
    assert_eq!((ledger.authorized, ledger.captured), (total, total));
    engine
        .wait("the reservation committed", || async {
            engine.stock("MUG").await.reserved == 0
        })
        .await;
    let mug = engine.stock("MUG").await;
    assert_eq!(
        (
            mug.on_hand,
            mug.reserved,
            mug.backordered.get(),
            mug.available
        ),
        (0, 0, 0, 0)
    );
    assert!(engine.order(id).await.fully_delivered);
    engine.stop().await;
}

tests::on_both_backends!(
    a_backordered_line_is_confirmed_and_ships_when_stock_arrives,
    a_referred_customer_s_first_completed_order_rewards_the_referrer_once,
    a_parcel_returned_to_sender_is_restocked_refunded_and_recorded,
    a_raised_line_is_reserved_authorized_shipped_and_captured,
    a_raise_the_stock_cannot_cover_is_undone,
    a_raise_the_provider_declines_is_undone_and_released,
    a_removed_line_is_released_and_only_the_new_total_captured,
);
