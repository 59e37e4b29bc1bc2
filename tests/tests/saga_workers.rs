//! Two saga workers on one JetStream durable consumer (PostgreSQL + NATS, the relay
//! publishing the log): they share the work, no step runs twice, no command is appended
//! twice, and every order reaches its final state.
//!
//! The relay and the warehouse (on the in-process feed) read the log up to its gap-safe
//! head, which on PostgreSQL is the oldest transaction still open *in the whole cluster*
//! (`pg_snapshot_xmin`): a transaction left open in any database of the server freezes
//! every order at the step it had reached. When a wait runs out, the report says whether
//! that is what happened (head behind the last position, the oldest open transaction).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::order::{Order, OrderEvent, OrderStatus};
use aggregates::payment::{Payment, PaymentEvent};
use aggregates::stock::{Stock, StockEvent, StockLevels};
use aggregates::{Decider, OrderId, Quantity, WarehouseId};
use infra::clock::Clock;
use infra::command::{CommandContext, Commands};
use infra::consumer::{Consumer, Handler, HandlerError, Tx};
use infra::feed::Envelope;
use infra::on_db;
use infra::relay::Relay;
use infra::saga::{SagaHandler, SagaRunner};
use infra::store::{Store, StoreConfig};
use sagas::checkout::{payment_id, CheckoutSaga, CheckoutState, Phase};
use sagas::ports::test_carrier::TestCarrier;
use sagas::ports::test_payment::{self, TestPaymentProvider};
use tests::saga::{
    check_out_basket, consumer_config, dead_letters, events_of, runner, spawn, Basket, Warehouse,
};
use tests::{eventually, fresh_store, nats, test_clock, BackendKind};
use uuid::Uuid;

const SAGA: &str = "saga-checkout";

/// Places every basket at once (each its own task, as separate customers would).
async fn place_concurrently(
    commands: &Commands,
    at: chrono::DateTime<chrono::Utc>,
    baskets: &[Basket],
) {
    let tasks: Vec<_> = baskets
        .iter()
        .cloned()
        .map(|basket| {
            let commands = commands.clone();
            tokio::spawn(async move { check_out_basket(&commands, &basket, at).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

/// Folds the stock stream of `code` in log order and checks after each event that
/// nothing is oversold; returns the final levels and how many reservations were made.
async fn assert_never_oversold(store: &Store, code: &str) -> (StockLevels, usize) {
    let events = events_of::<Stock>(store, code).await;
    let mut state = Stock::default();
    let mut reservations = 0;
    for (i, event) in events.iter().enumerate() {
        state.evolve(event);
        if matches!(event, StockEvent::StockReserved(_)) {
            reservations += 1;
        }
        let levels = &state.levels;
        assert!(levels.available >= 0, "{code}#{i}: {levels:?}");
        for (warehouse, level) in &levels.warehouses {
            assert!(
                level.reserved <= level.on_hand,
                "{code}#{i} {warehouse}: {level:?}"
            );
        }
    }
    (state.levels, reservations)
}

/// The store's gap-safe head, its last position, and the age and database of the oldest
/// transaction with an xid still open anywhere in the PostgreSQL cluster (which holds
/// the head back).
async fn log_heads(store: &Store) -> (i64, i64, Option<(String, String)>) {
    let head = store.head_position().await.unwrap();
    let last = store.last_position().await.unwrap();
    let oldest = on_db!(store.db(), pool => {
        sqlx::query_as::<_, (String, String)>(
            "SELECT coalesce(datname, '?'), (now() - xact_start)::text FROM pg_stat_activity \
             WHERE backend_xid IS NOT NULL ORDER BY xact_start LIMIT 1",
        )
        .fetch_optional(pool)
        .await
        .unwrap()
    });
    (head, last, oldest)
}

/// Captured and refunded on a payment stream.
fn payment_figures(events: &[PaymentEvent]) -> (i64, i64, bool) {
    let (mut captured, mut refunded, mut open) = (0, 0, false);
    for e in events {
        match e {
            PaymentEvent::PaymentCaptured(e) => captured += e.amount.amount,
            PaymentEvent::PaymentRefunded(e) => refunded += e.amount.amount,
            PaymentEvent::PaymentAuthorized(_) => open = true,
            PaymentEvent::PaymentVoided(_) => open = false,
            _ => {}
        }
    }
    (captured, refunded, open)
}

/// Records which worker handled (and stored the step of) which event.
struct Counted {
    inner: SagaHandler<CheckoutSaga, TestPaymentProvider, TestCarrier>,
    worker: usize,
    steps: Arc<Mutex<Vec<(usize, Uuid)>>>,
}

impl Handler for Counted {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn wants(&self, envelope: &Envelope) -> bool {
        self.inner.wants(envelope)
    }

    fn lane(&self, envelope: &Envelope) -> Option<String> {
        self.inner.lane(envelope)
    }

    async fn handle(&self, tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        self.inner.handle(tx, envelope).await?;
        self.steps
            .lock()
            .unwrap()
            .push((self.worker, envelope.event_id));
        Ok(())
    }
}

/// Two saga workers (separate command layers and NATS connections, as two processes)
/// on one JetStream durable consumer over PostgreSQL: they share the work, no event's
/// step is stored twice, nothing is authorized, captured, labelled or reserved twice,
/// stock is never oversold, and every order reaches its final state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_saga_workers_share_one_jetstream_consumer() {
    let clock = test_clock();
    let Some(store) = fresh_store(
        BackendKind::Postgres,
        StoreConfig::default(),
        Arc::new(clock.clone()),
    )
    .await
    else {
        return;
    };
    let Some(client) = nats().await else {
        return;
    };
    let relay_config = tests::scratch_relay_config();
    let relay = Relay::new(store.clone(), client.clone(), relay_config.clone()).unwrap();
    let relay_task = tokio::spawn(async move { relay.run(std::future::pending()).await });

    let payments = TestPaymentProvider::new();
    let carrier_clock = clock.clone();
    let carrier = TestCarrier::new(
        chrono::Duration::zero(),
        Arc::new(move || carrier_clock.now()),
    );
    let steps = Arc::new(Mutex::new(Vec::new()));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut runners: Vec<Arc<SagaRunner<CheckoutSaga, TestPaymentProvider, TestCarrier>>> =
        Vec::new();
    let mut workers = Vec::new();
    for worker in 0..2 {
        let runner = runner(
            Commands::new(store.clone()),
            payments.clone(),
            Some(carrier.clone()),
            &clock,
        );
        runners.push(runner.clone());
        let consumer = Consumer::new(
            store.clone(),
            Arc::new(Counted {
                inner: SagaHandler(runner),
                worker,
                steps: steps.clone(),
            }),
            consumer_config(),
        )
        .unwrap();
        let connection = nats().await.unwrap();
        let stream = relay_config.stream.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let failures = failures.clone();
        // As `commerce worker sagas` does: a runtime that fails (the feed or the database
        // answered with an error) is started again; the failures are reported if a wait
        // runs out.
        let task = tokio::spawn(async move {
            let mut stopped = std::pin::pin!(stopped);
            loop {
                let result = match consumer
                    .jetstream_feed(connection.clone(), &stream, None, 0)
                    .await
                {
                    Ok(feed) => {
                        consumer
                            .run(feed, async {
                                let _ = stopped.as_mut().await;
                            })
                            .await
                    }
                    Err(err) => Err(err),
                };
                match result {
                    Ok(()) => return,
                    Err(err) => failures
                        .lock()
                        .unwrap()
                        .push(format!("worker {worker}: {err}")),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        workers.push((stop, task));
    }
    let commands = Commands::new(store.clone());
    let warehouse = spawn(&store, Warehouse::new(commands.clone()));
    let at = clock.now();
    for (code, warehouse, quantity) in [
        ("DUO", "BER-1", 12),
        ("DUO", "HAM-1", 12),
        ("SOLO", "HAM-1", 100),
    ] {
        commands
            .execute::<Stock>(
                &CommandContext::new("seed"),
                code,
                aggregates::stock::StockCommand::ReceiveStock(aggregates::stock::ReceiveStock {
                    sku: tests::saga::sku(code),
                    warehouse: WarehouseId::new(warehouse),
                    quantity: Quantity(quantity),
                    at,
                }),
            )
            .await
            .unwrap();
    }
    // 40 orders: two units of DUO each (24 in stock: 12 can be served, some split over
    // both warehouses), some with a SOLO too; every fifth declined.
    let baskets: Vec<Basket> = (0..40)
        .map(|i| {
            let token = if i % 5 == 4 {
                test_payment::INSUFFICIENT_FUNDS
            } else {
                test_payment::SUCCEEDS
            };
            if i % 2 == 0 {
                Basket::new(&[("DUO", 2, 1_200), ("SOLO", 1, 800)], token)
            } else {
                Basket::new(&[("DUO", 2, 1_200)], token)
            }
        })
        .collect();
    place_concurrently(&commands, at, &baskets).await;

    let saga = |id: OrderId| {
        let store = store.clone();
        async move {
            infra::saga::store::load(store.db(), "checkout", &id.to_string())
                .await
                .unwrap()
                .map(|row| serde_json::from_value::<CheckoutState>(row.state).unwrap())
        }
    };
    let wait = |what: &'static str, done: fn(&CheckoutState) -> bool| {
        let runners = runners.clone();
        let failures = failures.clone();
        let store = store.clone();
        let baskets = baskets.clone();
        async move {
            let reached = eventually(Duration::from_secs(60), || {
                let runners = runners.clone();
                let baskets = baskets.clone();
                async move {
                    // Both workers fire timers, as both processes would.
                    let (a, b) = tokio::join!(runners[0].fire_due(50), runners[1].fire_due(50));
                    a.unwrap();
                    b.unwrap();
                    for basket in &baskets {
                        match saga(basket.order_id).await {
                            Some(state) if done(&state) => {}
                            _ => return None,
                        }
                    }
                    Some(())
                }
            })
            .await;
            if reached.is_none() {
                let mut stuck = Vec::new();
                for basket in &baskets {
                    match saga(basket.order_id).await {
                        Some(state) if !done(&state) => stuck.push(format!(
                            "{}: {:?} payment {:?} shipments {:?}",
                            basket.order_id,
                            state.phase,
                            state.payment.map(|p| p.stage),
                            state
                                .shipments
                                .values()
                                .map(|s| s.stage)
                                .collect::<Vec<_>>()
                        )),
                        Some(_) => {}
                        None => stuck.push(format!("{}: no saga", basket.order_id)),
                    }
                }
                let failures = failures.lock().unwrap().clone();
                let (head, last, oldest) = log_heads(&store).await;
                panic!(
                    "never reached: {what}; stuck: {stuck:#?}\n\
                     gap-safe head {head} of last position {last}; oldest open transaction \
                     in the cluster: {oldest:?}; worker failures: {failures:#?}"
                );
            }
        }
    };
    wait("every order cancelled or all its parcels dispatched", |s| {
        s.phase == Phase::Cancelled
            || (s.phase == Phase::Confirmed
                && !s.shipments.is_empty()
                && s.shipments
                    .values()
                    .all(|x| x.stage == sagas::checkout::ShipmentStage::Dispatched))
    })
    .await;
    clock.advance(chrono::Duration::minutes(31));
    wait("delivered or cancelled", |s| {
        matches!(s.phase, Phase::Delivered | Phase::Cancelled)
    })
    .await;
    clock.advance(chrono::Duration::days(31));
    wait("completed or cancelled", |s| {
        matches!(s.phase, Phase::Completed | Phase::Cancelled)
    })
    .await;

    // Both workers took part; no event's step was stored twice.
    let steps = steps.lock().unwrap().clone();
    let per_worker = |w| steps.iter().filter(|(x, _)| *x == w).count();
    assert!(
        per_worker(0) > 0 && per_worker(1) > 0,
        "work shared: {} / {}",
        per_worker(0),
        per_worker(1)
    );
    let distinct: BTreeSet<Uuid> = steps.iter().map(|(_, e)| *e).collect();
    assert_eq!(
        distinct.len(),
        steps.len(),
        "an event's step was stored twice"
    );

    let mut completed = 0;
    let mut labels = 0;
    let mut reached_provider = 0;
    for basket in &baskets {
        let id = basket.order_id;
        let order_events = events_of::<Order>(&store, &id.to_string()).await;
        let count = |f: fn(&OrderEvent) -> bool| order_events.iter().filter(|e| f(e)).count();
        let cancelled = count(|e| matches!(e, OrderEvent::OrderCancelled(_)));
        let confirmed = count(|e| matches!(e, OrderEvent::OrderConfirmed(_)));
        let shipments = count(|e| matches!(e, OrderEvent::OrderShipmentRecorded(_)));
        assert_eq!(cancelled + confirmed, 1, "order {id}: {order_events:?}");
        let payment_events = events_of::<Payment>(&store, &payment_id(id).to_string()).await;
        let (captured, refunded, _) = payment_figures(&payment_events);
        let authorized = payment_events
            .iter()
            .filter(|e| matches!(e, PaymentEvent::PaymentAuthorized(_)))
            .count();
        let charge = payments.charge_of(payment_id(id));
        if payment_events.iter().any(|e| {
            matches!(
                e,
                PaymentEvent::PaymentAuthorized(_) | PaymentEvent::PaymentDeclined(_)
            )
        }) {
            reached_provider += 1;
            assert!(charge.is_some(), "order {id}: the provider saw it");
        }
        if let Some(charge) = &charge {
            assert_eq!(charge.calls, 1, "order {id}: authorized once");
        }
        if confirmed == 1 {
            completed += 1;
            labels += shipments;
            let order = events_of::<Order>(&store, &id.to_string()).await;
            let mut state = Order::default();
            for e in &order {
                state.evolve(e);
            }
            let details = state.details.unwrap();
            assert_eq!(state.status, OrderStatus::Completed, "order {id}");
            assert_eq!(authorized, 1, "order {id}");
            assert_eq!(
                captured, details.totals.grand_total.amount,
                "order {id}: captured once, in full"
            );
            assert_eq!(details.paid.amount, captured);
            assert_eq!(charge.unwrap().captured.amount, captured);
            assert_eq!(
                payment_events
                    .iter()
                    .filter(|e| matches!(e, PaymentEvent::PaymentCaptured(_)))
                    .count(),
                shipments,
                "order {id}: one capture per parcel"
            );
        } else {
            assert_eq!(captured, 0, "order {id}");
        }
        assert_eq!(refunded, 0, "order {id}");
    }
    assert_eq!(
        payments.charges().len(),
        reached_provider,
        "one authorization attempt per order that got that far"
    );
    assert!(reached_provider >= completed);
    assert_eq!(carrier.labels_bought(), labels, "one label per parcel");
    // 24 DUO units, two per order: at most 12 orders served; declines free theirs.
    assert!((1..=12).contains(&completed), "{completed} completed");
    let (duo, duo_reservations) = assert_never_oversold(&store, "DUO").await;
    assert_eq!(duo.reserved, 0);
    let reserved_orders: BTreeSet<OrderId> = events_of::<Stock>(&store, "DUO")
        .await
        .into_iter()
        .filter_map(|e| match e {
            StockEvent::StockReserved(e) => Some(e.order_id),
            _ => None,
        })
        .collect();
    assert_eq!(
        reserved_orders.len(),
        duo_reservations,
        "no order reserved twice"
    );
    assert_never_oversold(&store, "SOLO").await;
    // No command was appended twice: each command id is one append, on one stream, of
    // consecutive versions.
    let appends = tests::appends_by_command(&store).await;
    assert!(
        appends.len() > baskets.len() * 10,
        "{} commands",
        appends.len()
    );
    for (id, (stream, versions)) in &appends {
        let consecutive = versions.windows(2).all(|w| w[1] == w[0] + 1);
        assert!(
            consecutive,
            "command {id} appended twice on {stream}: {versions:?}"
        );
    }
    // Each saga step was stored once: one logged step per triggering event.
    let stored: i64 = on_db!(store.db(), pool => {
        sqlx::query_scalar(
            "SELECT count(*) FROM saga_steps WHERE trigger_kind = 'event' AND outcome = 'stored'",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert_eq!(
        stored as usize,
        distinct.len(),
        "one stored step per handled event"
    );
    let logged: Vec<(String, Uuid, i64)> = on_db!(store.db(), pool => {
        sqlx::query_as(
            "SELECT saga_id, trigger_id, count(*) FROM saga_steps \
             WHERE trigger_kind = 'event' AND outcome = 'stored' \
             GROUP BY saga_id, trigger_id HAVING count(*) > 1",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    });
    assert!(logged.is_empty(), "steps stored twice: {logged:?}");
    let letters = dead_letters(&store, SAGA).await;
    assert!(letters.is_empty(), "{letters:?}");

    for (stop, task) in workers {
        let _ = stop.send(());
        task.await.unwrap();
    }
    let _ = warehouse.0.send(());
    warehouse.1.await.unwrap();
    relay_task.abort();
    let _ = async_nats::jetstream::new(client)
        .delete_stream(&relay_config.stream)
        .await;
}
