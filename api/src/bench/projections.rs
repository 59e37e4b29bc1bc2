//! `commerce bench projections`: how fast the SQL views are built from the log.
//!
//! Appends N events of a commerce mix (products, stock, carts, orders, payments,
//! shipments, loyalty; one new customer, cart, order, payment and shipment per flow),
//! then builds every SQL view from position 0 with the projection runtime (one reader,
//! each event decoded once, a batch per transaction: what a fresh deployment or a full
//! catch-up does). The baseline, measured in the same run, reads the same events from
//! the log and decodes them without applying them.

use std::time::{Duration, Instant};

use aggregates::cart::{CartCheckedOut, CartEvent, CartItemAdded, CartOpened};
use aggregates::loyalty::{LoyaltyAccountEnrolled, LoyaltyEvent, LoyaltyPointsEarned};
use aggregates::order::{
    OrderConfirmed, OrderDelivered, OrderEvent, OrderPaymentCaptured, OrderPlaced,
    OrderShipmentRecorded,
};
use aggregates::payment::{PaymentAuthorized, PaymentCaptured, PaymentEvent, PaymentInitiated};
use aggregates::product::{ProductCreated, ProductEvent};
use aggregates::shipment::{ShipmentCreated, ShipmentDelivered, ShipmentDispatched, ShipmentEvent};
use aggregates::stock::{StockEvent, StockReceived};
use aggregates::{
    CartId, CustomerId, EventExample, LoyaltyAccountId, OrderId, PaymentId, ShipmentId, Sku,
};
use clap::Args;
use infra::projection::{ProjectionRunner, RunnerConfig};
use infra::store::{NewEvent, StreamRef};
use infra::Store;
use projections::ViewEvent;
use serde_json::{json, Value};
use uuid::Uuid;

use super::relay::fresh_store;
use crate::cli::DEFAULT_DATABASE_URL;

#[derive(Debug, Args)]
pub struct ProjectionsArgs {
    /// Events to append and project.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Database to measure on: `postgres://…` or `sqlite:PATH` (a fresh schema or files
    /// next to PATH, removed afterwards).
    #[arg(long, env = "COMMERCE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Events per projection transaction.
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Distinct SKUs the flows buy and restock.
const SKUS: usize = 1000;

fn sku(n: usize) -> Sku {
    Sku::parse(format!("SKU-{:05}", n % SKUS)).unwrap_or_else(|_| ProductCreated::example().sku)
}

type Stream = (&'static str, String, Vec<(&'static str, u32, Value)>);

/// One customer's path from cart to delivered order, with its payment, shipment,
/// loyalty points and the stock it drew on: 18 events over 6 streams.
fn flow(n: usize) -> Vec<Stream> {
    let customer = CustomerId(Uuid::now_v7());
    let cart = CartId(Uuid::now_v7());
    let order = OrderId(Uuid::now_v7());
    let payment = PaymentId(Uuid::now_v7());
    let shipment = ShipmentId(Uuid::now_v7());
    let item = sku(n);

    let mut opened = CartOpened::example();
    opened.cart_id = cart;
    opened.customer_id = customer;
    let mut added = CartItemAdded::example();
    added.sku = item.clone();
    let mut second = CartItemAdded::example();
    second.sku = sku(n + 7);
    let mut checked_out = CartCheckedOut::example();
    checked_out.cart_id = cart;
    checked_out.order_id = order;
    checked_out.customer_id = customer;

    let mut placed = OrderPlaced::example();
    placed.order_id = order;
    placed.customer_id = customer;
    placed.cart_id = Some(cart);
    let mut captured_on_order = OrderPaymentCaptured::example();
    captured_on_order.payment_id = payment;
    let mut shipped = OrderShipmentRecorded::example();
    shipped.shipment_id = shipment;

    let mut initiated = PaymentInitiated::example();
    initiated.payment_id = payment;
    initiated.order_id = order;
    let mut authorized = PaymentAuthorized::example();
    authorized.payment_id = payment;
    authorized.order_id = order;
    let mut captured = PaymentCaptured::example();
    captured.payment_id = payment;
    captured.order_id = order;

    let mut created = ShipmentCreated::example();
    created.shipment_id = shipment;
    created.order_id = order;
    let mut dispatched = ShipmentDispatched::example();
    dispatched.shipment_id = shipment;
    dispatched.order_id = order;
    let mut delivered = ShipmentDelivered::example();
    delivered.shipment_id = shipment;
    delivered.order_id = order;

    let mut enrolled = LoyaltyAccountEnrolled::example();
    enrolled.account_id = LoyaltyAccountId(Uuid::now_v7());
    enrolled.customer_id = customer;
    let earned = LoyaltyPointsEarned {
        order_id: order,
        ..LoyaltyPointsEarned::example()
    };

    let mut received = StockReceived::example();
    received.sku = item.clone();

    vec![
        (
            "cart",
            cart.to_string(),
            [
                CartEvent::from(opened),
                added.into(),
                second.into(),
                checked_out.into(),
            ]
            .iter()
            .map(CartEvent::encode)
            .collect(),
        ),
        (
            "order",
            order.to_string(),
            [
                OrderEvent::from(placed),
                OrderConfirmed::example().into(),
                captured_on_order.into(),
                shipped.into(),
                OrderDelivered::example().into(),
            ]
            .iter()
            .map(OrderEvent::encode)
            .collect(),
        ),
        (
            "payment",
            payment.to_string(),
            [
                PaymentEvent::from(initiated),
                authorized.into(),
                captured.into(),
            ]
            .iter()
            .map(PaymentEvent::encode)
            .collect(),
        ),
        (
            "shipment",
            shipment.to_string(),
            [
                ShipmentEvent::from(created),
                dispatched.into(),
                delivered.into(),
            ]
            .iter()
            .map(ShipmentEvent::encode)
            .collect(),
        ),
        (
            "loyalty_account",
            customer.to_string(),
            [LoyaltyEvent::from(enrolled), earned.into()]
                .iter()
                .map(LoyaltyEvent::encode)
                .collect(),
        ),
        (
            "stock",
            item.as_str().to_string(),
            vec![StockEvent::from(received).encode()],
        ),
    ]
}

fn new_event((event_type, version, payload): (&'static str, u32, Value)) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.to_string(),
        schema_version: version as i32,
        payload,
        metadata: [("actor".to_string(), "bench".to_string())].into(),
    }
}

/// Appends the catalogue, then flows until `events` are stored (4 writers).
async fn append_mix(store: &Store, events: usize) -> Result<usize, String> {
    for n in 0..SKUS.min(events) {
        let mut product = ProductCreated::example();
        product.sku = sku(n);
        product.name = format!("Product {n}");
        let stream = StreamRef::new("product", product.sku.as_str());
        store
            .append(
                &stream,
                0,
                vec![new_event(ProductEvent::from(product).encode())],
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    let flows = events.saturating_sub(SKUS) / 18;
    const WRITERS: usize = 4;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in (w..flows).step_by(WRITERS) {
                for (stream_type, id, encoded) in flow(n) {
                    let stream = StreamRef::new(stream_type, id);
                    let events: Vec<NewEvent> = encoded.into_iter().map(new_event).collect();
                    // Stock streams are shared between flows: append at their head.
                    loop {
                        let expected = if stream_type == "stock" {
                            store
                                .read_stream(&stream, 0)
                                .await
                                .map_err(|e| e.to_string())?
                                .last()
                                .map_or(0, |e| e.version)
                        } else {
                            0
                        };
                        match store.append(&stream, expected, events.clone(), None).await {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => continue,
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                }
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    store
        .head_position()
        .await
        .map_err(|e| e.to_string())
        .map(|h| h as usize)
}

/// The baseline: every event read from the log in pages and decoded, nothing applied.
async fn read_and_decode(store: &Store, page: i64) -> Result<(usize, f64), String> {
    let started = Instant::now();
    let mut after = 0;
    let mut decoded = 0usize;
    loop {
        let batch = store
            .read_all(after, page)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        for e in &batch {
            let payload = e.payload().map_err(|e| e.to_string())?;
            let version = u32::try_from(e.schema_version).unwrap_or(0);
            if ViewEvent::decode(&e.stream_type, &e.event_type, version, payload)
                .map_err(|e| e.to_string())?
                .is_some()
            {
                decoded += 1;
            }
        }
    }
    std::hint::black_box(decoded);
    Ok((after as usize, started.elapsed().as_secs_f64()))
}

/// Every SQL view built from position 0 by the runtime; seconds until all reach `head`.
async fn project_all(store: &Store, head: i64, batch: usize) -> Result<f64, String> {
    let runner = ProjectionRunner::new(
        store.clone(),
        projections::all().to_vec(),
        RunnerConfig {
            batch,
            ..RunnerConfig::default()
        },
    );
    let handle = runner.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn(runner.run(async {
        let _ = stopped.await;
    }));
    for p in projections::all() {
        handle
            .wait_for(p.name(), head, Duration::from_secs(24 * 3600))
            .await
            .map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    task.await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(seconds)
}

pub async fn projections(args: ProjectionsArgs) -> Result<(), String> {
    let run_id = Uuid::now_v7().simple().to_string()[20..].to_string();
    let (store, scratch) = fresh_store(&args.database_url, &run_id).await?;
    let result = async {
        let appended_at = Instant::now();
        let events = append_mix(&store, args.events).await?;
        let append_s = appended_at.elapsed().as_secs_f64();
        let (read, read_s) = read_and_decode(&store, args.batch as i64).await?;
        let project_s = project_all(&store, read as i64, args.batch).await?;
        Ok::<_, String>((events, append_s, read_s, project_s))
    }
    .await;
    let backend = store.backend_name();
    scratch.remove().await;
    let (events, append_s, read_s, project_s) = result?;
    let events_per_s = events as f64 / project_s.max(1e-9);
    let read_only = events as f64 / read_s.max(1e-9);
    let ratio = events_per_s / read_only.max(1e-9);
    if !args.json {
        println!("backend {backend}: {events} events appended in {append_s:.1} s");
        println!("read + decode (baseline): {read_s:.2} s, {read_only:.0} events/s",);
        println!(
            "all {} SQL views from position 0: {project_s:.2} s, {events_per_s:.0} events/s ({ratio:.2} x read-only)",
            projections::all().len()
        );
    }
    println!(
        "{}",
        json!({
            "bench": "projections",
            "backend": backend,
            "events": events,
            "views": projections::all().len(),
            "batch": args.batch,
            "events_per_s": events_per_s.round(),
            "read_only_events_per_s": read_only.round(),
            "ratio_vs_read": (ratio * 100.0).round() / 100.0,
        })
    );
    Ok(())
}
