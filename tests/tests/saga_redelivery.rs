//! Duplicate and interleaved delivery (PostgreSQL + JetStream): the checkout saga runs on
//! a JetStream stream to which every event of the log is published twice, under two
//! message ids so JetStream keeps both copies, in an order that interleaves the orders'
//! streams at random (seeded) and sends each second copy at a random later point. The
//! final state must be the crash-free one: every order paid and completed, or declined
//! and cancelled, each captured once, stock exact, no command appended twice.
//!
//! The in-process feed (embedded) reads the log in order and delivers each event once,
//! so this is the distributed deployment's concern; it runs on the real servers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aggregates::order::{Order, OrderStatus};
use aggregates::payment::{Payment, PaymentEvent};
use aggregates::stock::{ReceiveStock, Stock, StockCommand};
use aggregates::{Decider, Quantity, WarehouseId};
use async_nats::jetstream;
use infra::clock::Clock;
use infra::command::{CommandContext, Commands};
use infra::consumer::Consumer;
use infra::relay::message;
use infra::saga::SagaHandler;
use infra::store::{Store, StoreConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sagas::checkout::{payment_id, CheckoutState, Phase};
use sagas::ports::test_payment::{self, TestPaymentProvider};
use tests::saga::{check_out_basket, consumer_config, events_of, runner, spawn, Basket, Warehouse};
use tests::{eventually, fresh_store, nats, test_clock, BackendKind};

const ORDERS: usize = 16;
const SEED: u64 = 0x5EED_0D0B;

/// Publishes the log to `stream` as it grows: each page of events in an order that
/// keeps every stream's own events in log order but interleaves streams at random, and
/// each event a second time (another message id) at a random later point of the page.
/// Returns how many messages it published when `stop` fires.
async fn publish_twice_shuffled(
    store: Store,
    js: jetstream::Context,
    prefix: String,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> usize {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut after = 0;
    let mut published = 0;
    loop {
        let page = store.read_all(after, 64).await.unwrap();
        if page.is_empty() {
            tokio::select! {
                _ = &mut stop => return published,
                _ = tokio::time::sleep(Duration::from_millis(5)) => continue,
            }
        }
        after = page.last().unwrap().position;
        // Queues per stream, in log order; draw the next stream at random.
        let mut queues: BTreeMap<(String, String), Vec<_>> = BTreeMap::new();
        for event in page.into_iter().rev() {
            queues
                .entry((event.stream_type.clone(), event.stream_id.clone()))
                .or_default()
                .push(event);
        }
        let mut messages = Vec::new();
        // Second copies waiting to go out, each after so many more messages.
        let mut again: Vec<(usize, String, jetstream::message::PublishMessage)> = Vec::new();
        while !queues.is_empty() {
            let key = queues
                .keys()
                .nth(rng.random_range(0..queues.len()))
                .cloned();
            let key = key.unwrap();
            let queue = queues.get_mut(&key).unwrap();
            let event = queue.pop().unwrap();
            if queue.is_empty() {
                queues.remove(&key);
            }
            let id = event.event_id;
            let (subject, publish) = message::encode(&prefix, event);
            let copy = publish.clone().message_id(format!("{id}-again"));
            messages.push((subject.clone(), publish));
            again.push((rng.random_range(0..8), subject, copy));
            let (due, wait): (Vec<_>, Vec<_>) = again.into_iter().partition(|(n, _, _)| *n == 0);
            again = wait.into_iter().map(|(n, s, p)| (n - 1, s, p)).collect();
            messages.extend(due.into_iter().map(|(_, s, p)| (s, p)));
        }
        messages.extend(again.into_iter().map(|(_, s, p)| (s, p)));
        for (subject, publish) in messages {
            js.send_publish(subject, publish)
                .await
                .unwrap()
                .await
                .unwrap();
            published += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_twice_and_orders_interleaved_end_as_a_calm_run() {
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
    let config = tests::scratch_relay_config();
    let js = jetstream::new(client.clone());
    js.create_stream(config.stream_config()).await.unwrap();
    let (stop_publishing, stop) = tokio::sync::oneshot::channel();
    let publisher = tokio::spawn(publish_twice_shuffled(
        store.clone(),
        js.clone(),
        config.subject_prefix.clone(),
        stop,
    ));

    let payments = TestPaymentProvider::new();
    let saga_runner = runner(Commands::new(store.clone()), payments.clone(), None, &clock);
    let consumer = Consumer::new(
        store.clone(),
        Arc::new(SagaHandler(saga_runner.clone())),
        consumer_config(),
    )
    .unwrap();
    let feed = consumer
        .jetstream_feed(client.clone(), &config.stream, None, 0)
        .await
        .unwrap();
    let (stop_saga, saga_stopped) = tokio::sync::oneshot::channel::<()>();
    let saga_task = tokio::spawn(async move {
        consumer
            .run(feed, async {
                let _ = saga_stopped.await;
            })
            .await
    });
    let commands = Commands::new(store.clone());
    let warehouse = spawn(&store, Warehouse::new(commands.clone()));

    let at = clock.now();
    for (code, warehouse, quantity) in [("TEE", "BER-1", 20), ("TEE", "HAM-1", 20)] {
        commands
            .execute::<Stock>(
                &CommandContext::new("seed"),
                code,
                StockCommand::ReceiveStock(ReceiveStock {
                    sku: tests::saga::sku(code),
                    warehouse: WarehouseId::new(warehouse),
                    quantity: Quantity(quantity),
                    at,
                }),
            )
            .await
            .unwrap();
    }
    // Every fourth order is declined; the others buy two tees each (32 units of 40).
    let baskets: Vec<Basket> = (0..ORDERS)
        .map(|i| {
            let token = if i % 4 == 3 {
                test_payment::INSUFFICIENT_FUNDS
            } else {
                test_payment::SUCCEEDS
            };
            Basket::new(&[("TEE", 2, 1_500)], token)
        })
        .collect();
    let placing: Vec<_> = baskets
        .iter()
        .cloned()
        .map(|basket| {
            let commands = commands.clone();
            tokio::spawn(async move { check_out_basket(&commands, &basket, at).await })
        })
        .collect();
    for task in placing {
        task.await.unwrap().unwrap();
    }

    let saga = |order: aggregates::OrderId| {
        let store = store.clone();
        async move {
            infra::saga::store::load(store.db(), "checkout", &order.to_string())
                .await
                .unwrap()
                .map(|row| serde_json::from_value::<CheckoutState>(row.state).unwrap())
        }
    };
    let all_reach = |what: &'static str, done: fn(&CheckoutState) -> bool| {
        let runner = saga_runner.clone();
        let baskets = baskets.clone();
        async move {
            let reached = eventually(Duration::from_secs(90), || {
                let runner = runner.clone();
                let baskets = baskets.clone();
                async move {
                    runner.fire_due(50).await.unwrap();
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
            assert!(reached.is_some(), "never reached: {what}");
        }
    };
    all_reach(
        "cancelled, or confirmed with every parcel dispatched",
        |s| {
            s.phase == Phase::Cancelled
                || (s.phase == Phase::Confirmed
                    && !s.shipments.is_empty()
                    && s.shipments
                        .values()
                        .all(|x| x.stage == sagas::checkout::ShipmentStage::Dispatched))
        },
    )
    .await;
    clock.advance(chrono::Duration::minutes(31));
    all_reach("delivered or cancelled", |s| {
        matches!(s.phase, Phase::Delivered | Phase::Cancelled)
    })
    .await;
    clock.advance(chrono::Duration::days(31));
    all_reach("completed or cancelled", |s| {
        matches!(s.phase, Phase::Completed | Phase::Cancelled)
    })
    .await;

    // Let the publisher catch up with the last steps, then count what JetStream holds.
    let last = store.last_position().await.unwrap();
    assert!(store
        .wait_for_position(last, Duration::from_secs(30))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop_publishing.send(());
    let published = publisher.await.unwrap();
    let mut stream = js.get_stream(&config.stream).await.unwrap();
    let held = stream.info().await.unwrap().state.messages as usize;
    assert_eq!(held, published, "JetStream kept both copies of every event");
    assert!(
        published >= 2 * ORDERS * 20,
        "every event went out twice: {published} messages"
    );

    for (i, basket) in baskets.iter().enumerate() {
        let order_id = basket.order_id;
        let mut order = Order::default();
        for e in events_of::<Order>(&store, &order_id.to_string()).await {
            order.evolve(&e);
        }
        let payment = events_of::<Payment>(&store, &payment_id(order_id).to_string()).await;
        let count = |f: fn(&PaymentEvent) -> bool| payment.iter().filter(|e| f(e)).count();
        let captured: i64 = payment
            .iter()
            .map(|e| match e {
                PaymentEvent::PaymentCaptured(c) => c.amount.amount,
                _ => 0,
            })
            .sum();
        let charge = payments.charge_of(payment_id(order_id)).unwrap();
        assert_eq!(charge.calls, 1, "order {i}: one authorization attempt");
        let details = order.details.clone().unwrap();
        if i % 4 == 3 {
            assert_eq!(order.status, OrderStatus::Cancelled, "order {i}");
            assert_eq!(captured, 0, "order {i}");
            assert_eq!(charge.captured.amount, 0, "order {i}");
        } else {
            assert_eq!(order.status, OrderStatus::Completed, "order {i}");
            assert_eq!(
                count(|e| matches!(e, PaymentEvent::PaymentAuthorized(_))),
                1,
                "order {i}: authorized once"
            );
            assert_eq!(captured, details.totals.grand_total.amount, "order {i}");
            assert_eq!(details.paid.amount, captured, "order {i}");
            assert_eq!(charge.captured.amount, captured, "order {i}: captured once");
        }
        assert_eq!(details.refunded.amount, 0, "order {i}");
    }
    let sold = 2 * (ORDERS - ORDERS / 4) as u64;
    let mut tee = Stock::default();
    for e in events_of::<Stock>(&store, "TEE").await {
        tee.evolve(&e);
    }
    assert_eq!(tee.levels.reserved, 0, "{:?}", tee.levels);
    assert_eq!(tee.levels.on_hand, 40 - sold, "{:?}", tee.levels);
    for (command, (stream, versions)) in tests::appends_by_command(&store).await {
        assert!(
            versions.windows(2).all(|w| w[1] == w[0] + 1),
            "command {command} appended twice on {stream}: {versions:?}"
        );
    }
    let dead = tests::saga::dead_letters(&store, "saga-checkout").await;
    assert!(dead.is_empty(), "{dead:?}");

    let _ = stop_saga.send(());
    saga_task.await.unwrap().unwrap();
    let (stop_warehouse, warehouse_task) = warehouse;
    let _ = stop_warehouse.send(());
    warehouse_task.await.unwrap();
    js.delete_stream(&config.stream).await.unwrap();
}
