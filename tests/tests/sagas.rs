//! The checkout saga over the real runner, on both backends: a checked-out cart becomes
//! a completed order with the test providers; a declined card releases everything; a
//! worker that crashes after every step's commands and before its ack ends in the same
//! state as one that never crashes, with nothing done twice.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;

use aggregates::loyalty::*;
use aggregates::order::{Order, OrderStatus};
use aggregates::payment::{Payment, PaymentStatus};
use aggregates::stock::*;
use aggregates::OrderId;
use infra::clock::Clock;
use infra::saga::store as saga_store;
use infra::store::{Store, StoreConfig};
use sagas::checkout::{payment_id, CheckoutSaga, Phase};
use sagas::ports::test_payment;
use sagas::ProcessManager;
use tests::saga::{customer, eur, Engine};
use tests::{fresh_store, test_clock, BackendKind};

/// Runs an order from checkout to completion; returns the engine for inspection.
async fn complete_an_order(kind: BackendKind, crash: bool) -> Option<(Engine, OrderId)> {
    let engine = Engine::start(kind, crash).await?;
    engine.seed().await;
    let id = engine.check_out(test_payment::SUCCEEDS).await;
    // The clock moves only once the flow waits for it, so no deadline can pass early.
    engine
        .wait("both parcels dispatched and tracked", || async {
            engine.tracking_timers(id).await == 2
        })
        .await;
    engine.clock.advance(chrono::Duration::minutes(31));
    engine
        .wait("delivered", || async {
            engine.order(id).await.fully_delivered
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
        .wait("completed, and the saga saw it", || async {
            engine.order(id).await.status == OrderStatus::Completed
                && engine
                    .saga(id)
                    .await
                    .is_some_and(|s| s.phase == Phase::Completed)
        })
        .await;
    Some((engine, id))
}

async fn a_checked_out_cart_becomes_a_completed_paid_order(kind: BackendKind) {
    let Some((engine, id)) = complete_an_order(kind, false).await else {
        return;
    };
    let order = engine.order(id).await;
    let details = order.details.clone().unwrap();
    // 50.00 goods + 4.90 shipping + 19 % tax.
    assert_eq!(details.totals.grand_total, eur(6_533));
    assert_eq!(details.paid, eur(6_533));

    let payment = engine
        .commands
        .load::<Payment>(&payment_id(id).to_string())
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(payment.status, PaymentStatus::Authorized);
    assert_eq!(payment.ledger.unwrap().captured, eur(6_533));
    let charges = engine.runner.payments().charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].captured, eur(6_533));

    // Hamburg could fill the T-shirts alone; the mug left Berlin.
    let tee = engine.stock("TEE").await;
    assert_eq!(tee.on_hand, 4);
    assert_eq!(tee.reserved, 0);
    assert_eq!(engine.stock("MUG").await.on_hand, 2);
    assert_eq!(engine.runner.carrier().labels_bought(), 2);

    let account = engine
        .commands
        .load::<LoyaltyAccount>(&customer().to_string())
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(
        account.orders[&id].points, 6_533,
        "points earned on what was paid"
    );

    let saga = engine.saga(id).await.unwrap();
    assert_eq!(saga.phase, Phase::Completed);
    let timers = saga_store::timers_of(engine.store.db(), CheckoutSaga::NAME, &id.to_string())
        .await
        .unwrap();
    assert!(timers.is_empty(), "{timers:?}");
    engine.stop().await;
}

async fn a_declined_card_releases_the_stock_and_cancels(kind: BackendKind) {
    let Some(engine) = Engine::start(kind, false).await else {
        return;
    };
    engine.seed().await;
    let id = engine.check_out(test_payment::INSUFFICIENT_FUNDS).await;
    engine
        .wait("cancelled", || async {
            engine.order(id).await.status == OrderStatus::Cancelled
        })
        .await;
    engine
        .wait("released", || async {
            engine.stock("TEE").await.reserved == 0 && engine.stock("MUG").await.reserved == 0
        })
        .await;
    let payment = engine
        .commands
        .load::<Payment>(&payment_id(id).to_string())
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(payment.status, PaymentStatus::Declined);
    assert_eq!(engine.stock("TEE").await.on_hand, 6);
    let charge = engine.runner.payments().charge_of(payment_id(id)).unwrap();
    assert!(charge.authorized.is_zero() && charge.captured.is_zero());
    // The deadline goes when the saga stores its compensation step.
    engine
        .wait("no timer left", || async {
            saga_store::timers_of(engine.store.db(), CheckoutSaga::NAME, &id.to_string())
                .await
                .unwrap()
                .is_empty()
        })
        .await;
    engine.stop().await;
}

async fn a_crash_between_command_and_ack_changes_nothing(kind: BackendKind) {
    let Some((calm, calm_id)) = complete_an_order(kind, false).await else {
        return;
    };
    let Some((rough, rough_id)) = complete_an_order(kind, true).await else {
        return;
    };
    assert_eq!(calm_id, rough_id);
    let id = calm_id.to_string();
    let pay = payment_id(calm_id).to_string();
    for (what, a, b) in [
        (
            "order",
            calm.version::<Order>(&id).await,
            rough.version::<Order>(&id).await,
        ),
        (
            "payment",
            calm.version::<Payment>(&pay).await,
            rough.version::<Payment>(&pay).await,
        ),
        (
            "TEE stock",
            calm.version::<Stock>("TEE").await,
            rough.version::<Stock>("TEE").await,
        ),
        (
            "MUG stock",
            calm.version::<Stock>("MUG").await,
            rough.version::<Stock>("MUG").await,
        ),
        (
            "loyalty",
            calm.version::<LoyaltyAccount>(&customer().to_string())
                .await,
            rough
                .version::<LoyaltyAccount>(&customer().to_string())
                .await,
        ),
    ] {
        assert_eq!(a, b, "{what}: the same events, none twice");
    }
    assert!(
        rough.crashes.load(AtomicOrdering::SeqCst) > 10,
        "every step crashed once"
    );
    let figures = |o: Order| {
        let d = o.details.unwrap();
        (o.status, d.paid, d.refunded, o.shipped, o.delivered)
    };
    assert_eq!(
        figures(rough.order(rough_id).await),
        figures(calm.order(calm_id).await)
    );
    assert_eq!(calm.stock("TEE").await, rough.stock("TEE").await);
    assert_eq!(calm.stock("MUG").await, rough.stock("MUG").await);
    let money = |e: &Engine| {
        e.runner
            .payments()
            .charges()
            .into_iter()
            .map(|c| (c.authorized, c.captured, c.refunded, c.voided))
            .collect::<Vec<_>>()
    };
    assert_eq!(money(&rough), money(&calm), "captured once");
    assert_eq!(
        rough.runner.carrier().labels_bought(),
        calm.runner.carrier().labels_bought()
    );
    assert_eq!(
        rough.saga(rough_id).await.map(|s| s.phase),
        Some(Phase::Completed)
    );
    calm.stop().await;
    rough.stop().await;
}

/// Workers claiming due timers at once never get the same timer; a claim that runs out
/// makes the timer claimable again.
async fn timer_workers_share_due_timers_without_overlap(kind: BackendKind) {
    let clock = test_clock();
    let Some(store) = fresh_store(kind, StoreConfig::default(), Arc::new(clock.clone())).await
    else {
        return;
    };
    let now = clock.now();
    let timers: Vec<sagas::Timer> = (0..40)
        .map(|i| sagas::Timer {
            name: format!("t{i:02}"),
            due: now - chrono::Duration::seconds(i),
        })
        .collect();
    let state = serde_json::json!({});
    let save = saga_store::Save {
        saga_type: "test",
        saga_id: "s1",
        state: &state,
        finished: false,
        expected_version: None,
        event: None,
        now,
        set_timers: &timers,
        cancel_timers: &[],
        fired: None,
    };
    match store.db() {
        infra::store::Db::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            saga_store::save(infra::consumer::TxConn::Postgres(&mut tx), &save)
                .await
                .unwrap()
                .unwrap();
            tx.commit().await.unwrap();
        }
        infra::store::Db::Sqlite(pool) => {
            let mut tx = pool.begin().await.unwrap();
            saga_store::save(infra::consumer::TxConn::Sqlite(&mut tx), &save)
                .await
                .unwrap()
                .unwrap();
            tx.commit().await.unwrap();
        }
    }
    let until = now + chrono::Duration::minutes(2);
    let worker = |store: Store| async move {
        let mut mine = Vec::new();
        loop {
            let got = saga_store::claim_due(store.db(), "test", now, until, 3)
                .await
                .unwrap();
            if got.is_empty() {
                return mine;
            }
            mine.extend(got.into_iter().map(|t| t.name));
        }
    };
    let (a, b, c, d) = tokio::join!(
        tokio::spawn(worker(store.clone())),
        tokio::spawn(worker(store.clone())),
        tokio::spawn(worker(store.clone())),
        tokio::spawn(worker(store.clone())),
    );
    let mut all: Vec<String> = [a, b, c, d].into_iter().flat_map(|r| r.unwrap()).collect();
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(claimed, 40, "every timer claimed exactly once");
    assert_eq!(all.len(), 40);
    // Nobody finished them; once the claims run out they are due again.
    let later = until + chrono::Duration::seconds(1);
    let again = saga_store::claim_due(store.db(), "test", later, later, 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 40);
}

tests::on_both_backends!(
    timer_workers_share_due_timers_without_overlap,
    a_checked_out_cart_becomes_a_completed_paid_order,
    a_declined_card_releases_the_stock_and_cancels,
    a_crash_between_command_and_ack_changes_nothing,
);
