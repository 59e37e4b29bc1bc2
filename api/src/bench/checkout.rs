//! `commerce bench checkout`: virtual customers fill a cart, check it out and place the
//! order (`sagas::checkout::place_order` through the command layer); the checkout saga
//! reserves, pays (test provider, `tok_visa`), confirms and ships it, a warehouse picks,
//! packs and dispatches every parcel at once, and the test carrier delivers at the first
//! tracking poll. Reports delivered orders per second and the checkout → confirmed
//! latency, against a baseline measured in the same run: as many bare `Store::append`s
//! of one event, at the same concurrency, as the saga run appended events, so the ratio
//! says what the whole flow costs over the store's own appends.
//!
//! Embedded (`sqlite:` URL, no `--nats-url`): the saga and the warehouse read the log in
//! process. Distributed (`--nats-url`): the relay publishes the log to a fresh JetStream
//! stream and `--workers` saga runtimes share one durable consumer, each with its own
//! command layer and timer worker, as separate processes would.
//!
//! Each customer waits for its order's confirmation before checking out the next one
//! (a shopper waits for the confirmation page), not for its delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregates::cart::{
    AddItem, Cart, CartCommand, CartEvent, CheckOut, OpenCart, SetShippingAddress,
    SetShippingMethod, ShippingMethod,
};
use aggregates::order::{Order, OrderCommand};
use aggregates::shipment::{Shipment, ShipmentCommand};
use aggregates::stock::{ReceiveStock, Stock, StockCommand};
use aggregates::{
    Address, CartId, Currency, CustomerId, EventSourced, Money, OrderId, Quantity, Sku, WarehouseId,
};
use clap::Args;
use infra::command::{new_event_id, CommandContext, Commands};
use infra::consumer::{Consumer, ConsumerConfig, Handler, HandlerError, Ordering, Tx};
use infra::feed::Envelope;
use infra::relay::{Relay, RelayConfig};
use infra::saga::{SagaHandler, SagaRunner};
use infra::store::{NewEvent, StreamRef};
use infra::Store;
use sagas::checkout::{place_order, CheckoutSaga, CheckoutSettings};
use sagas::ports::test_carrier::TestCarrier;
use sagas::ports::test_payment::{TestPaymentProvider, SUCCEEDS};
use serde_json::json;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::relay::fresh_store;
use super::round2;
use crate::cli::{redact, DEFAULT_DATABASE_URL};

/// Options of `commerce bench checkout`.
#[derive(Debug, Args)]
pub struct CheckoutArgs {
    /// Database to measure on: `postgres://…` or `sqlite:PATH`. The benchmark works in a
    /// fresh schema (PostgreSQL) or a fresh file next to PATH (SQLite) and removes it.
    #[arg(long, env = "COMMERCE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// NATS with JetStream: run distributed (relay + saga workers on a durable consumer).
    #[arg(long, env = "COMMERCE_NATS_URL")]
    pub nats_url: Option<String>,
    /// Orders to place.
    #[arg(long, default_value_t = 300)]
    pub orders: usize,
    /// Virtual customers checking out at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Saga runtimes sharing the durable consumer (distributed only).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Deliveries each saga runtime and the warehouse handle at once, and sagas whose
    /// timers each timer worker fires at once (`ConsumerConfig::concurrency`; 1: one at
    /// a time, as before lanes).
    #[arg(long, default_value_t = 16)]
    pub saga_concurrency: usize,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
}

/// How long the whole run may take before it is reported as stuck.
const DEADLINE: Duration = Duration::from_secs(900);

type Runner = SagaRunner<CheckoutSaga, TestPaymentProvider, TestCarrier>;

/// When each order was confirmed and delivered, and who waits for a confirmation.
#[derive(Default)]
struct Watch {
    confirmed: HashMap<String, Instant>,
    delivered: HashMap<String, Instant>,
    waiting: HashMap<String, oneshot::Sender<Instant>>,
}

/// Picks, packs and dispatches every shipment at once.
struct Warehouse(Commands);

impl Handler for Warehouse {
    fn name(&self) -> &str {
        "bench-warehouse"
    }

    fn ordering(&self) -> Ordering {
        Ordering::Unordered
    }

    /// One shipment's commands one after another.
    fn lane(&self, envelope: &Envelope) -> Option<String> {
        Some(envelope.stream_id.clone())
    }

    fn wants(&self, envelope: &Envelope) -> bool {
        envelope.stream_type == Shipment::STREAM_TYPE
            && matches!(
                envelope.event_type.as_str(),
                "ShipmentCreated" | "ShipmentLabelCreated"
            )
    }

    async fn handle(&self, _tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        let at = self.0.store().clock().now();
        let commands = if envelope.event_type == "ShipmentCreated" {
            vec![
                ShipmentCommand::PickShipment { at },
                ShipmentCommand::PackShipment { at },
            ]
        } else {
            vec![ShipmentCommand::DispatchShipment { at }]
        };
        for (i, command) in commands.into_iter().enumerate() {
            let ctx = CommandContext::new("staff:warehouse").with_command_id(
                CommandContext::derived_id("warehouse", &format!("{}/{i}", envelope.event_id)),
            );
            self.0
                .execute::<Shipment>(&ctx, &envelope.stream_id, command)
                .await
                .map_err(HandlerError::retry)?;
        }
        Ok(())
    }
}

fn consumer_config(concurrency: usize) -> ConsumerConfig {
    ConsumerConfig {
        concurrency,
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(100),
        not_next_delay: Duration::from_millis(5),
        maintenance_interval: Duration::from_millis(200),
        lease_retry: Duration::from_millis(100),
        max_attempts: 20,
        ..ConsumerConfig::default()
    }
}

/// Runs the benchmark and prints its figures, then one JSON line.
pub async fn checkout(args: CheckoutArgs) -> Result<(), String> {
    let (figures, backend) = measure(&args).await?;
    let deployment = if args.nats_url.is_some() {
        "distributed"
    } else {
        "embedded"
    };
    if !args.json {
        println!(
            "checkout to delivery, {deployment} on {backend}: {} orders, {} customers{}",
            args.orders,
            args.concurrency,
            if args.nats_url.is_some() {
                format!(", {} saga workers on one JetStream consumer", args.workers)
            } else {
                String::new()
            }
        );
        println!(
            "saga concurrency    {:>10} deliveries at once per runtime",
            args.saga_concurrency
        );
        println!(
            "delivered orders/s {:>10.1}   (all {} delivered in {:.1} s)",
            figures.orders_per_s, args.orders, figures.seconds
        );
        println!(
            "checkout→confirmed  p50 {:>7.1} ms   p99 {:>7.1} ms",
            figures.p50_ms, figures.p99_ms
        );
        println!(
            "confirmed→delivered p50 {:>7.1} ms   p99 {:>7.1} ms",
            figures.deliver_p50_ms, figures.deliver_p99_ms
        );
        println!(
            "events appended     {:>10} ({:.1} per order, {:.0} events/s)",
            figures.events,
            figures.events as f64 / args.orders as f64,
            figures.events as f64 / figures.seconds
        );
        println!(
            "baseline: the same {} events as bare appends at {} writers: {:.0} events/s; saga run / baseline = {:.2}",
            figures.events,
            args.concurrency,
            figures.baseline_events_per_s,
            figures.ratio
        );
    }
    println!(
        "{}",
        json!({
            "deployment": deployment,
            "backend": backend,
            "orders": args.orders,
            "concurrency": args.concurrency,
            "workers": if args.nats_url.is_some() { args.workers } else { 1 },
            "saga_concurrency": args.saga_concurrency,
            "seconds": round2(figures.seconds),
            "events": figures.events,
            "baseline_events_per_s": figures.baseline_events_per_s.round(),
            "baseline_orders_per_s": round2(figures.baseline_orders_per_s),
            "ratio_vs_baseline": round2(figures.ratio),
            "orders_per_s": round2(figures.orders_per_s),
            "confirm_p50_ms": round2(figures.p50_ms),
            "confirm_p99_ms": round2(figures.p99_ms),
            "deliver_p50_ms": round2(figures.deliver_p50_ms),
            "deliver_p99_ms": round2(figures.deliver_p99_ms),
        })
    );
    Ok(())
}

/// Runs the benchmark on a fresh store and removes it; returns the figures and the
/// backend's name.
async fn measure(args: &CheckoutArgs) -> Result<(Figures, &'static str), String> {
    if args.orders == 0 || args.concurrency == 0 || args.workers == 0 || args.saga_concurrency == 0
    {
        return Err(
            "--orders, --concurrency, --workers and --saga-concurrency need at least 1".into(),
        );
    }
    if args.nats_url.is_some() && args.database_url.starts_with("sqlite:") {
        return Err(
            "the distributed deployment (--nats-url) runs on PostgreSQL: give a postgres:// --database-url"
                .into(),
        );
    }
    let run_id = Uuid::now_v7().simple().to_string();
    let (store, scratch) = fresh_store(&args.database_url, &run_id).await?;
    let result = run(&store, args, &run_id).await;
    let backend = store.backend_name();
    scratch.remove().await;
    Ok((result?, backend))
}

struct Figures {
    seconds: f64,
    orders_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Confirmed → delivered, as the observer saw both events.
    deliver_p50_ms: f64,
    deliver_p99_ms: f64,
    events: i64,
    baseline_events_per_s: f64,
    /// Orders/s if each order's events were bare appends: `orders` over the baseline's time.
    baseline_orders_per_s: f64,
    ratio: f64,
}

async fn connect_nats(url: &str) -> Result<async_nats::Client, String> {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(3))
        .connect(url);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(format!("cannot connect to NATS at {}: {e}", redact(url))),
        Err(_) => Err(format!(
            "cannot connect to NATS at {}: timed out after 5 s",
            redact(url)
        )),
    }
}

async fn run(store: &Store, args: &CheckoutArgs, run_id: &str) -> Result<Figures, String> {
    let (stop, stopped) = watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let mut tasks = Vec::new();
    // Parcels are polled at once and delivered at the first poll.
    let settings = CheckoutSettings {
        tracking_poll: chrono::Duration::zero(),
        ..CheckoutSettings::default()
    };
    let payments = TestPaymentProvider::new();
    let clock = store.clock().clone();
    let carrier = TestCarrier::new(chrono::Duration::zero(), Arc::new(move || clock.now()));
    let new_runner = || {
        Arc::new(SagaRunner::new(
            Commands::new(store.clone()),
            CheckoutSaga::new(settings.clone()),
            payments.clone(),
            carrier.clone(),
        ))
    };
    let mut runners: Vec<Arc<Runner>> = Vec::new();
    let mut relay_stream = None;
    match &args.nats_url {
        None => {
            let runner = new_runner();
            runners.push(runner.clone());
            let saga = Consumer::new(
                store.clone(),
                Arc::new(SagaHandler(runner)),
                consumer_config(args.saga_concurrency),
            )
            .map_err(|e| e.to_string())?;
            let stop = until_stopped();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = saga.run_local(0, stop).await {
                    tracing::error!(error = %e, "saga consumer stopped");
                }
            }));
        }
        Some(url) => {
            let client = connect_nats(url).await?;
            let id = &run_id[run_id.len() - 12..];
            let config = RelayConfig {
                name: format!("bench-checkout-{id}"),
                stream: format!("BENCH_CHECKOUT_{id}"),
                subject_prefix: format!("bench_{id}_checkout"),
                checkpoint_interval: Duration::from_millis(50),
                ..RelayConfig::default()
            };
            relay_stream = Some((client.clone(), config.stream.clone()));
            let relay = Relay::new(store.clone(), client.clone(), config.clone())
                .map_err(|e| e.to_string())?;
            let stop = until_stopped();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = relay.run(stop).await {
                    tracing::error!(error = %e, "relay stopped");
                }
            }));
            for _ in 0..args.workers {
                let runner = new_runner();
                runners.push(runner.clone());
                let saga = Consumer::new(
                    store.clone(),
                    Arc::new(SagaHandler(runner)),
                    consumer_config(args.saga_concurrency),
                )
                .map_err(|e| e.to_string())?;
                let connection = connect_nats(url).await?;
                let feed = saga
                    .jetstream_feed(connection, &config.stream, None, 0)
                    .await
                    .map_err(|e| e.to_string())?;
                let stop = until_stopped();
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = saga.run(feed, stop).await {
                        tracing::error!(error = %e, "saga worker stopped");
                    }
                }));
            }
        }
    }
    let saga_concurrency = args.saga_concurrency;
    for runner in &runners {
        let runner = runner.clone();
        let stop = until_stopped();
        tasks.push(tokio::spawn(async move {
            runner
                .run_timers_concurrently(Duration::from_millis(10), saga_concurrency, stop)
                .await;
        }));
    }
    let commands = Commands::new(store.clone());
    let warehouse = Consumer::new(
        store.clone(),
        Arc::new(Warehouse(commands.clone())),
        consumer_config(args.saga_concurrency),
    )
    .map_err(|e| e.to_string())?;
    {
        let stop = until_stopped();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = warehouse.run_local(0, stop).await {
                tracing::error!(error = %e, "warehouse stopped");
            }
        }));
    }
    let watch = Arc::new(Mutex::new(Watch::default()));
    let start_position = store.last_position().await.map_err(|e| e.to_string())?;
    {
        let store = store.clone();
        let watch = watch.clone();
        let stop = until_stopped();
        tasks.push(tokio::spawn(observe(store, watch, start_position, stop)));
    }

    let outcome = tokio::time::timeout(DEADLINE, async {
        seed(&commands, args.orders).await?;
        let start_position = store.last_position().await.map_err(|e| e.to_string())?;
        let started = Instant::now();
        let latencies = customers(&commands, args, watch.clone()).await?;
        loop {
            if watch.lock().map_or(0, |w| w.delivered.len()) >= args.orders {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let last = watch
            .lock()
            .ok()
            .and_then(|w| w.delivered.values().max().copied())
            .unwrap_or_else(Instant::now);
        let seconds = last.duration_since(started).as_secs_f64();
        let events = store.last_position().await.map_err(|e| e.to_string())? - start_position;
        // Confirmed → delivered: the shipping half of the saga and the warehouse.
        let shipping = watch.lock().map_or_else(
            |_| Vec::new(),
            |w| {
                w.delivered
                    .iter()
                    .filter_map(|(order, delivered)| {
                        let confirmed = w.confirmed.get(order)?;
                        Some(delivered.duration_since(*confirmed).as_secs_f64() * 1_000.0)
                    })
                    .collect::<Vec<f64>>()
            },
        );
        Ok::<_, String>((seconds, latencies, shipping, events))
    })
    .await;
    let _ = stop.send(true);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    if let Some((client, stream)) = relay_stream {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&stream)
            .await;
    }
    let (seconds, mut latencies, mut shipping, events) = outcome.map_err(|_| {
        format!(
            "not every order was delivered within {} s",
            DEADLINE.as_secs()
        )
    })??;
    latencies.sort_by(f64::total_cmp);
    shipping.sort_by(f64::total_cmp);
    let pct = |sorted: &[f64], p: f64| {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i]
    };
    let baseline_seconds = baseline(store, events.max(1) as usize, args.concurrency).await?;
    Ok(Figures {
        seconds,
        orders_per_s: args.orders as f64 / seconds,
        p50_ms: pct(&latencies, 0.50),
        p99_ms: pct(&latencies, 0.99),
        deliver_p50_ms: pct(&shipping, 0.50),
        deliver_p99_ms: pct(&shipping, 0.99),
        events,
        baseline_events_per_s: events as f64 / baseline_seconds,
        baseline_orders_per_s: args.orders as f64 / baseline_seconds,
        ratio: baseline_seconds / seconds,
    })
}

/// Articles on sale: order `i` buys article `i % CATALOG`, so reservations spread over
/// this many stock streams (one article for every order would measure one hot stream).
const CATALOG: usize = 64;

/// Enough stock of every article in two warehouses for every order.
async fn seed(commands: &Commands, orders: usize) -> Result<(), String> {
    let at = commands.store().clock().now();
    let quantity = Quantity(u32::try_from(orders).unwrap_or(u32::MAX));
    for article in 0..CATALOG.min(orders) {
        let sku = sku(article)?;
        for warehouse in ["BER-1", "HAM-1"] {
            commands
                .execute::<Stock>(
                    &CommandContext::new("bench"),
                    sku.as_str(),
                    StockCommand::ReceiveStock(ReceiveStock {
                        sku: sku.clone(),
                        warehouse: WarehouseId::new(warehouse),
                        quantity,
                        at,
                    }),
                )
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The article order number `order` buys.
fn sku(order: usize) -> Result<Sku, String> {
    Sku::parse(format!("BENCH-{:03}", order % CATALOG)).map_err(|e| e.to_string())
}

/// Follows the log and records when each order was confirmed and delivered.
async fn observe(
    store: Store,
    watch: Arc<Mutex<Watch>>,
    mut after: i64,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    loop {
        let events = tokio::select! {
            _ = stop.as_mut() => return,
            events = store.read_all(after, 1_000) => events,
        };
        let events = match events {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "observer cannot read the log");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let now = Instant::now();
        if let Some(last) = events.last() {
            after = last.position;
        }
        if let Ok(mut w) = watch.lock() {
            for e in events
                .iter()
                .filter(|e| e.stream_type == Order::STREAM_TYPE)
            {
                match e.event_type.as_str() {
                    "OrderConfirmed" => {
                        w.confirmed.insert(e.stream_id.clone(), now);
                        if let Some(waiting) = w.waiting.remove(&e.stream_id) {
                            let _ = waiting.send(now);
                        }
                    }
                    "OrderDelivered" => {
                        w.delivered.insert(e.stream_id.clone(), now);
                    }
                    _ => {}
                }
            }
        }
        if events.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// The virtual customers; returns each order's checkout → confirmed latency (ms).
async fn customers(
    commands: &Commands,
    args: &CheckoutArgs,
    watch: Arc<Mutex<Watch>>,
) -> Result<Vec<f64>, String> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let commands = commands.clone();
        let watch = watch.clone();
        let next = next.clone();
        let orders = args.orders;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let order = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if order >= orders {
                    break;
                }
                latencies.push(one_order(&commands, &watch, order).await?);
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut all = Vec::with_capacity(args.orders);
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())??);
    }
    Ok(all)
}

/// One customer's order: cart, checkout, placed; waits for the confirmation.
async fn one_order(commands: &Commands, watch: &Mutex<Watch>, n: usize) -> Result<f64, String> {
    let store = commands.store();
    let at = store.clock().now();
    let cart_id = CartId::from_uuid(Uuid::now_v7());
    let order_id = OrderId::from_uuid(Uuid::now_v7());
    let customer = CustomerId::from_uuid(Uuid::now_v7());
    let cart = cart_id.to_string();
    let ctx = || CommandContext::new(format!("customer:{customer}"));
    let eur = |amount| Money::new(amount, Currency::EUR);
    for command in [
        CartCommand::OpenCart(OpenCart {
            cart_id,
            customer_id: customer,
            currency: Currency::EUR,
            at,
        }),
        CartCommand::AddItem(AddItem {
            sku: sku(n)?,
            product_name: "Benchmark T-shirt".into(),
            category: "apparel/t-shirts".into(),
            quantity: Quantity(1),
            unit_price: eur(1_999),
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
    ] {
        commands
            .execute::<Cart>(&ctx(), &cart, command)
            .await
            .map_err(|e| format!("cart {cart}: {e}"))?;
    }
    let (confirmed_tx, confirmed_rx) = oneshot::channel();
    if let Ok(mut w) = watch.lock() {
        w.waiting.insert(order_id.to_string(), confirmed_tx);
    }
    let checkout = Instant::now();
    let done = commands
        .execute::<Cart>(
            &ctx(),
            &cart,
            CartCommand::CheckOut(CheckOut {
                order_id,
                tax_rates: std::collections::BTreeMap::from([("DE".to_string(), 1_900)]),
                at,
            }),
        )
        .await
        .map_err(|e| format!("checking out {cart}: {e}"))?;
    let checked_out = done
        .events
        .into_iter()
        .find_map(|e| match e {
            CartEvent::CartCheckedOut(e) => Some(e),
            _ => None,
        })
        .ok_or("the checkout appended no CartCheckedOut")?;
    let place = place_order(&checked_out, SUCCEEDS, None).map_err(|e| e.to_string())?;
    commands
        .execute::<Order>(
            &ctx(),
            &order_id.to_string(),
            OrderCommand::PlaceOrder(place),
        )
        .await
        .map_err(|e| format!("placing {order_id}: {e}"))?;
    let confirmed = confirmed_rx
        .await
        .map_err(|_| format!("order {order_id} was never confirmed"))?;
    Ok(confirmed.duration_since(checkout).as_secs_f64() * 1_000.0)
}

/// Seconds to append `events` single events with `Store::append` from `writers` callers,
/// each on its own stream at a version it keeps.
async fn baseline(store: &Store, events: usize, writers: usize) -> Result<f64, String> {
    let per_writer = events.div_ceil(writers);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for _ in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = StreamRef::new("bench", Uuid::now_v7().to_string());
            let mut version = 0;
            for seq in 0..per_writer {
                let event = NewEvent {
                    event_id: new_event_id(store.clock().now()),
                    event_type: "ItemAdded".into(),
                    schema_version: 1,
                    payload: super::payload(seq),
                    metadata: CommandContext::new("bench").metadata(),
                };
                version = store
                    .append(&stream, version, vec![event], None)
                    .await
                    .map_err(|e| format!("append to {stream}: {e}"))?
                    .version;
            }
            Ok::<_, String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handful of orders, embedded, from cart to delivery: the benchmark's core keeps
    /// working and its scratch file goes away.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_few_orders_are_delivered_embedded() {
        let dir = std::env::temp_dir().join(format!("bench-checkout-test-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let args = CheckoutArgs {
            database_url: format!("sqlite:{}", dir.join("commerce.db").display()),
            nats_url: None,
            orders: 6,
            concurrency: 3,
            workers: 1,
            saga_concurrency: 4,
            json: true,
        };
        let (figures, backend) = tokio::time::timeout(Duration::from_secs(60), measure(&args))
            .await
            .expect("the run finishes within a minute")
            .unwrap();
        assert_eq!(backend, "sqlite");
        assert!(figures.orders_per_s > 0.0 && figures.seconds > 0.0);
        assert!(0.0 < figures.p50_ms && figures.p50_ms <= figures.p99_ms);
        assert!(0.0 < figures.deliver_p50_ms && figures.deliver_p50_ms <= figures.deliver_p99_ms);
        // Cart (5), order, stock, payment, shipment and saga events: far more than the
        // customer's own six commands per order.
        assert!(
            figures.events >= 6 * 15,
            "only {} events for 6 orders",
            figures.events
        );
        assert!(figures.baseline_events_per_s > 0.0 && figures.ratio > 0.0);
        // The scratch directory is gone; only the test's own directory is left.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn distributed_needs_postgres() {
        let args = CheckoutArgs {
            database_url: "sqlite:./data/commerce.db".into(),
            nats_url: Some("nats://127.0.0.1:4222".into()),
            orders: 1,
            concurrency: 1,
            workers: 1,
            saga_concurrency: 4,
            json: true,
        };
        let error = measure(&args).await.err().expect("refused");
        assert!(error.contains("PostgreSQL"), "{error}");
    }
}
