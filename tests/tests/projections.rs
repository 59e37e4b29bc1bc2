//! The SQL read side on PostgreSQL and SQLite: real domain events appended to the log,
//! folded by the projection runtime into the views, checked with plain SELECTs.
//!
//! * each view holds the rows the scenario implies;
//! * two runners racing over the same log (every event offered twice) build exactly the
//!   tables one runner builds;
//! * a full rebuild gives exactly the tables of incremental processing;
//! * queries keep answering during a rebuild and after its swap, and the live runner
//!   carries on on the swapped tables;
//! * an event a projection cannot decode stops that projection, shows in status, and
//!   leaves the other projections running.

use std::sync::Arc;
use std::time::Duration;

use aggregates::cart::{CartCheckedOut, CartCouponApplied, CartEvent, CartItemAdded, CartOpened};
use aggregates::loyalty::{LoyaltyAccountEnrolled, LoyaltyEvent, LoyaltyPointsEarned};
use aggregates::order::{
    OrderConfirmed, OrderDelivered, OrderEvent, OrderPaymentCaptured, OrderPlaced,
    OrderRefundRecorded, OrderReturnRequested, OrderShipmentRecorded,
};
use aggregates::payment::{PaymentAuthorized, PaymentCaptured, PaymentEvent, PaymentInitiated};
use aggregates::product::{ProductCreated, ProductEvent, ProductPriceChanged};
use aggregates::shipment::{ShipmentCreated, ShipmentDispatched, ShipmentEvent};
use aggregates::stock::{LowStockThresholdSet, StockEvent, StockReceived};
use aggregates::EventExample;
use infra::projection::{
    dump_table, rebuild, status, ProjectionRunner, ProjectionsHandle, RunnerConfig,
};
use infra::store::{NewEvent, StoreConfig, StreamRef};
use infra::Store;
use serde_json::Value;
use tests::{fresh_store, test_clock, BackendKind};
use tokio::sync::oneshot;
use uuid::Uuid;

async fn store(kind: BackendKind) -> Option<Store> {
    fresh_store(kind, StoreConfig::default(), Arc::new(test_clock())).await
}

/// Appends one encoded domain event to its stream.
async fn append(store: &Store, stream_type: &str, id: &str, encoded: (&str, u32, Value)) -> i64 {
    let stream = StreamRef::new(stream_type, id);
    let version = store
        .read_stream(&stream, 0)
        .await
        .unwrap()
        .last()
        .map_or(0, |e| e.version);
    let (event_type, schema_version, payload) = encoded;
    store
        .append(
            &stream,
            version,
            vec![NewEvent {
                event_id: Uuid::now_v7(),
                event_type: event_type.to_string(),
                schema_version: schema_version as i32,
                payload,
                metadata: Default::default(),
            }],
            None,
        )
        .await
        .unwrap()
        .last_position
}

/// The facts the scenario's assertions compare against.
struct Scenario {
    /// Position of the scenario's last event.
    last: i64,
    order: OrderPlaced,
    captured: OrderPaymentCaptured,
    refund: OrderRefundRecorded,
    checkout: CartCheckedOut,
    received: StockReceived,
    threshold: LowStockThresholdSet,
    product: ProductCreated,
    price: ProductPriceChanged,
    payment: PaymentCaptured,
    enrolled: LoyaltyAccountEnrolled,
    earned: LoyaltyPointsEarned,
}

/// A product, its stock, a checked-out cart, an order through delivery, return and
/// refund, its payment and shipment, and a loyalty account that earned points.
async fn scenario(store: &Store) -> Scenario {
    let product = ProductCreated::example();
    let sku = product.sku.as_str().to_string();
    let price = ProductPriceChanged::example();
    append(
        store,
        "product",
        &sku,
        ProductEvent::from(product.clone()).encode(),
    )
    .await;
    append(
        store,
        "product",
        &sku,
        ProductEvent::from(price.clone()).encode(),
    )
    .await;

    let received = StockReceived::example();
    let threshold = LowStockThresholdSet::example();
    append(
        store,
        "stock",
        &sku,
        StockEvent::from(received.clone()).encode(),
    )
    .await;
    append(
        store,
        "stock",
        &sku,
        StockEvent::from(threshold.clone()).encode(),
    )
    .await;

    let opened = CartOpened::example();
    let cart = opened.cart_id.to_string();
    let checkout = CartCheckedOut::example();
    append(store, "cart", &cart, CartEvent::from(opened).encode()).await;
    append(
        store,
        "cart",
        &cart,
        CartEvent::from(CartItemAdded::example()).encode(),
    )
    .await;
    append(
        store,
        "cart",
        &cart,
        CartEvent::from(CartCouponApplied::example()).encode(),
    )
    .await;
    append(
        store,
        "cart",
        &cart,
        CartEvent::from(checkout.clone()).encode(),
    )
    .await;

    let order = OrderPlaced::example();
    let id = order.order_id.to_string();
    let captured = OrderPaymentCaptured::example();
    let refund = OrderRefundRecorded::example();
    for event in [
        OrderEvent::from(order.clone()),
        OrderConfirmed::example().into(),
        captured.clone().into(),
        OrderShipmentRecorded::example().into(),
        OrderDelivered::example().into(),
        OrderReturnRequested::example().into(),
        refund.clone().into(),
    ] {
        append(store, "order", &id, event.encode()).await;
    }

    let initiated = PaymentInitiated::example();
    let payment_id = initiated.payment_id.to_string();
    let payment = PaymentCaptured::example();
    for event in [
        PaymentEvent::from(initiated),
        PaymentAuthorized::example().into(),
        payment.clone().into(),
    ] {
        append(store, "payment", &payment_id, event.encode()).await;
    }

    let created = ShipmentCreated::example();
    let shipment = created.shipment_id.to_string();
    append(
        store,
        "shipment",
        &shipment,
        ShipmentEvent::from(created).encode(),
    )
    .await;
    append(
        store,
        "shipment",
        &shipment,
        ShipmentEvent::from(ShipmentDispatched::example()).encode(),
    )
    .await;

    let enrolled = LoyaltyAccountEnrolled::example();
    let earned = LoyaltyPointsEarned::example();
    let customer = enrolled.customer_id.to_string();
    append(
        store,
        "loyalty_account",
        &customer,
        LoyaltyEvent::from(enrolled.clone()).encode(),
    )
    .await;
    let last = append(
        store,
        "loyalty_account",
        &customer,
        LoyaltyEvent::from(earned.clone()).encode(),
    )
    .await;
    // Readers get events once no earlier transaction can still commit below them; on a
    // shared PostgreSQL server other sessions can hold that back for a moment.
    assert!(store
        .wait_for_position(last, Duration::from_secs(20))
        .await
        .unwrap());

    Scenario {
        last,
        order,
        captured,
        refund,
        checkout,
        received,
        threshold,
        product,
        price,
        payment,
        enrolled,
        earned,
    }
}

/// A runner over every projection in the background; dropping the guard stops it.
struct Running {
    handle: ProjectionsHandle,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(store: &Store) -> Self {
        let runner = ProjectionRunner::new(
            store.clone(),
            projections::all().to_vec(),
            RunnerConfig {
                batch: 7,
                retry_after: Duration::from_millis(200),
            },
        );
        let handle = runner.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            runner
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            handle,
            stop: Some(stop),
            task,
        }
    }

    /// Waits until every projection has applied the log up to `position`.
    async fn caught_up(&self, position: i64) {
        for p in projections::all() {
            self.handle
                .wait_for(p.name(), position, Duration::from_secs(20))
                .await
                .unwrap();
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }
}

fn all_tables() -> Vec<&'static str> {
    projections::all()
        .iter()
        .flat_map(|p| p.tables().iter().copied())
        .collect()
}

async fn dump_all(store: &Store) -> Vec<(&'static str, Vec<String>)> {
    let mut out = Vec::new();
    for table in all_tables() {
        out.push((table, dump_table(store, table).await.unwrap()));
    }
    out
}

async fn text(store: &Store, sql: &str) -> Option<String> {
    infra::on_db!(store.db_read(), pool => sqlx::query_scalar::<_, Option<String>>(sql).fetch_optional(pool).await)
        .unwrap()
        .flatten()
}

async fn int(store: &Store, sql: &str) -> Option<i64> {
    infra::on_db!(store.db_read(), pool => sqlx::query_scalar::<_, Option<i64>>(sql).fetch_optional(pool).await)
        .unwrap()
        .flatten()
}

async fn flag(store: &Store, sql: &str) -> Option<bool> {
    infra::on_db!(store.db_read(), pool => sqlx::query_scalar::<_, Option<bool>>(sql).fetch_optional(pool).await)
        .unwrap()
        .flatten()
}

async fn each_view_matches_the_scenario(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let s = scenario(&store).await;
    let running = Running::start(&store);
    running.caught_up(s.last).await;

    let order = s.order.order_id.to_string();
    let customer = s.order.customer_id.to_string();
    let where_order = format!("FROM order_summaries WHERE order_id = '{order}'");
    assert_eq!(
        text(&store, &format!("SELECT status {where_order}"))
            .await
            .as_deref(),
        Some("confirmed")
    );
    assert_eq!(
        text(&store, &format!("SELECT fulfilment {where_order}"))
            .await
            .as_deref(),
        Some("delivered")
    );
    assert_eq!(
        text(&store, &format!("SELECT customer_id {where_order}")).await,
        Some(customer.clone())
    );
    assert_eq!(
        int(&store, &format!("SELECT grand_total_minor {where_order}")).await,
        Some(s.order.totals.grand_total.amount)
    );
    assert_eq!(
        int(&store, &format!("SELECT paid_minor {where_order}")).await,
        Some(s.captured.paid_total.amount)
    );
    assert_eq!(
        int(&store, &format!("SELECT refunded_minor {where_order}")).await,
        Some(s.refund.refunded_total.amount)
    );
    // Per-customer history.
    assert_eq!(
        int(
            &store,
            &format!("SELECT COUNT(*) FROM order_summaries WHERE customer_id = '{customer}'")
        )
        .await,
        Some(1)
    );
    assert_eq!(
        int(
            &store,
            &format!("SELECT COUNT(*) FROM order_lines WHERE order_id = '{order}'")
        )
        .await,
        Some(s.order.lines.len() as i64)
    );
    let first = &s.order.lines[0];
    assert_eq!(
        int(&store, &format!("SELECT line_total_minor FROM order_lines WHERE order_id = '{order}' AND sku = '{}'", first.sku.as_str())).await,
        Some(first.line_total.amount)
    );
    assert_eq!(
        text(&store, "SELECT status FROM order_shipments")
            .await
            .as_deref(),
        Some("dispatched")
    );

    // Cart: checked out with its final totals.
    let cart = s.checkout.cart_id.to_string();
    assert_eq!(
        text(
            &store,
            &format!("SELECT status FROM carts WHERE cart_id = '{cart}'")
        )
        .await
        .as_deref(),
        Some("checked_out")
    );
    assert_eq!(
        int(
            &store,
            &format!("SELECT grand_total_minor FROM carts WHERE cart_id = '{cart}'")
        )
        .await,
        Some(s.checkout.totals.grand_total.amount)
    );
    assert_eq!(
        int(&store, "SELECT COUNT(*) FROM cart_lines").await,
        Some(1)
    );

    // Stock: per warehouse and per SKU, with the low-stock flag the threshold implies.
    let sku = s.received.sku.as_str();
    for (warehouse, level) in &s.received.levels.warehouses {
        assert_eq!(
            int(
                &store,
                &format!(
                    "SELECT on_hand FROM stock_levels WHERE sku = '{sku}' AND warehouse_id = '{}'",
                    warehouse.0
                )
            )
            .await,
            Some(i64::from(level.on_hand.0))
        );
    }
    let threshold = s.threshold.threshold.map(|q| i64::from(q.0));
    assert_eq!(
        int(
            &store,
            &format!("SELECT low_stock_threshold FROM stock_items WHERE sku = '{sku}'")
        )
        .await,
        threshold
    );
    assert_eq!(
        flag(
            &store,
            &format!("SELECT low_stock FROM stock_items WHERE sku = '{sku}'")
        )
        .await,
        Some(threshold.is_some_and(|t| s.threshold.available <= t))
    );

    // Catalogue: details, both prices, availability.
    let psku = s.product.sku.as_str();
    assert_eq!(
        text(
            &store,
            &format!("SELECT name FROM product_catalog WHERE sku = '{psku}'")
        )
        .await,
        Some(s.product.name.clone())
    );
    assert_eq!(
        int(
            &store,
            &format!(
                "SELECT amount_minor FROM product_prices WHERE sku = '{psku}' AND currency = '{}'",
                s.price.price.currency.as_str()
            )
        )
        .await,
        Some(s.price.price.amount)
    );
    assert_eq!(
        int(
            &store,
            &format!("SELECT available FROM product_catalog WHERE sku = '{psku}'")
        )
        .await,
        Some(s.threshold.available)
    );

    // Loyalty: balance, lifetime points and the lot that will expire.
    let holder = s.enrolled.customer_id.to_string();
    assert_eq!(
        int(
            &store,
            &format!("SELECT balance FROM loyalty_accounts WHERE customer_id = '{holder}'")
        )
        .await,
        Some(s.earned.balance as i64)
    );
    assert_eq!(
        int(
            &store,
            &format!("SELECT lifetime_points FROM loyalty_accounts WHERE customer_id = '{holder}'")
        )
        .await,
        Some(s.earned.points as i64)
    );
    assert_eq!(
        int(
            &store,
            &format!("SELECT remaining FROM loyalty_lots WHERE customer_id = '{holder}'")
        )
        .await,
        Some(s.earned.points as i64)
    );

    // Payments ledger.
    assert_eq!(
        text(&store, "SELECT status FROM payments_ledger")
            .await
            .as_deref(),
        Some("captured")
    );
    assert_eq!(
        int(&store, "SELECT captured_minor FROM payments_ledger").await,
        Some(s.payment.captured_total.amount)
    );

    // Analytics: the order's day and its customer's cohort.
    let day = s.order.at.format("%Y-%m-%d").to_string();
    assert_eq!(
        int(
            &store,
            &format!("SELECT orders FROM sales_daily WHERE day = '{day}' AND currency = 'EUR'")
        )
        .await,
        Some(1)
    );
    assert_eq!(
        int(
            &store,
            &format!("SELECT average_order_value_minor FROM sales_daily WHERE day = '{day}'")
        )
        .await,
        Some(s.order.totals.grand_total.amount)
    );
    assert_eq!(
        int(
            &store,
            "SELECT CAST(SUM(refunds_minor) AS BIGINT) FROM sales_daily"
        )
        .await,
        Some(s.refund.amount.amount)
    );
    assert_eq!(
        text(
            &store,
            &format!("SELECT cohort_month FROM customer_cohorts WHERE customer_id = '{customer}'")
        )
        .await,
        Some(s.order.at.format("%Y-%m").to_string())
    );

    // Returns: requested, then refunded.
    assert_eq!(
        text(&store, "SELECT status FROM returns").await.as_deref(),
        Some("refunded")
    );
    assert_eq!(
        int(&store, "SELECT refunded_minor FROM returns").await,
        Some(s.refund.amount.amount)
    );
    running.stop().await;
}

async fn two_runners_apply_each_event_once(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let s = scenario(&store).await;
    let head = s.last;
    let a = Running::start(&store);
    let b = Running::start(&store);
    a.caught_up(head).await;
    b.caught_up(head).await;
    let raced = dump_all(&store).await;
    a.stop().await;
    b.stop().await;
    // One projection at a time rebuilt from 0 by a single reader is the reference.
    for p in projections::all() {
        rebuild(&store, *p, 1000, |_| {}).await.unwrap();
    }
    assert_eq!(raced, dump_all(&store).await);
    // The counters show it was not applied twice.
    assert_eq!(
        int(
            &store,
            "SELECT CAST(SUM(orders) AS BIGINT) FROM sales_daily"
        )
        .await,
        Some(1)
    );
}

async fn a_rebuild_equals_incremental_processing(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let s = scenario(&store).await;
    let running = Running::start(&store);
    running.caught_up(s.last).await;
    running.stop().await;
    let incremental = dump_all(&store).await;
    assert!(
        incremental.iter().all(|(_, rows)| !rows.is_empty()),
        "{incremental:?}"
    );
    for p in projections::all() {
        let report = rebuild(&store, *p, 3, |_| {}).await.unwrap();
        assert_eq!(report.version, 2);
    }
    assert_eq!(incremental, dump_all(&store).await);
    let statuses = status(&store).await.unwrap();
    assert_eq!(statuses.len(), projections::all().len());
    assert!(statuses
        .iter()
        .all(|s| s.version == 2 && s.state == "live" && s.lag_events == 0));
    // A second rebuild swaps again (index names of the swapped tables do not collide).
    rebuild(
        &store,
        projections::by_name("order_summaries").unwrap(),
        1000,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(incremental, dump_all(&store).await);
}

async fn queries_answer_during_a_rebuild_and_after_the_swap(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let s = scenario(&store).await;
    let running = Running::start(&store);
    running.caught_up(s.last).await;
    let order = s.order.order_id.to_string();
    let query = format!("SELECT status FROM order_summaries WHERE order_id = '{order}'");

    let (done_tx, mut done_rx) = oneshot::channel::<()>();
    let reader = {
        let store = store.clone();
        let query = query.clone();
        tokio::spawn(async move {
            let mut answers = 0u32;
            loop {
                assert_eq!(text(&store, &query).await.as_deref(), Some("confirmed"));
                answers += 1;
                if done_rx.try_recv().is_ok() {
                    return answers;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    // One event per transaction, so the rebuild takes many steps while the reader reads.
    let projection = projections::by_name("order_summaries").unwrap();
    let report = rebuild(&store, projection, 1, |_| {}).await.unwrap();
    done_tx.send(()).unwrap();
    let answers = reader.await.unwrap();
    assert!(answers > 0);
    assert_eq!(report.version, 2);
    assert_eq!(text(&store, &query).await.as_deref(), Some("confirmed"));

    // The live runner carries on on the swapped tables.
    let completed = aggregates::order::OrderCompleted {
        grand_total: s.order.totals.grand_total,
        paid: s.captured.paid_total,
        refunded: s.refund.refunded_total,
        at: s.order.at,
    };
    let position = append(
        &store,
        "order",
        &order,
        OrderEvent::from(completed).encode(),
    )
    .await;
    running.caught_up(position).await;
    assert_eq!(text(&store, &query).await.as_deref(), Some("completed"));
    running.stop().await;
}

async fn a_failing_event_stops_its_projections_and_shows_in_status(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let s = scenario(&store).await;
    let order = s.order.order_id.to_string();
    // An event this build cannot read (from a newer build, say).
    let bad = append(
        &store,
        "order",
        &order,
        ("OrderTeleported", 1, serde_json::json!({"to": "moon"})),
    )
    .await;
    let running = Running::start(&store);
    // Carts read no order events: they reach the head.
    running
        .handle
        .wait_for("carts", bad, Duration::from_secs(20))
        .await
        .unwrap();
    let failed = tests::eventually(Duration::from_secs(20), || {
        let store = store.clone();
        async move {
            let statuses = status(&store).await.unwrap();
            let orders = statuses.into_iter().find(|s| s.name == "order_summaries")?;
            orders.error.is_some().then_some(orders)
        }
    })
    .await
    .expect("order_summaries reports its failure");
    assert_eq!(failed.failed_position, Some(bad));
    assert!(
        failed.error.as_deref().unwrap().contains("OrderTeleported"),
        "{failed:?}"
    );
    assert_eq!(failed.position, bad - 1);
    assert!(failed.lag_events >= 1);
    // Stopped, not skipped: an order event after it is not applied either.
    let later = aggregates::order::OrderCompleted {
        grand_total: s.order.totals.grand_total,
        paid: s.captured.paid_total,
        refunded: s.refund.refunded_total,
        at: s.order.at,
    };
    let after = append(&store, "order", &order, OrderEvent::from(later).encode()).await;
    running
        .handle
        .wait_for("carts", after, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(running
        .handle
        .wait_for("order_summaries", bad, Duration::from_millis(600))
        .await
        .is_err());
    assert_eq!(
        text(
            &store,
            &format!("SELECT status FROM order_summaries WHERE order_id = '{order}'")
        )
        .await
        .as_deref(),
        Some("confirmed")
    );
    let statuses = status(&store).await.unwrap();
    let sales = statuses.iter().find(|s| s.name == "sales").unwrap();
    assert_eq!(sales.failed_position, Some(bad));
    running.stop().await;
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(tests::BackendKind::Postgres).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(tests::BackendKind::Sqlite).await;
                }
            )*
        }
    };
}

on_both_backends!(
    each_view_matches_the_scenario,
    two_runners_apply_each_event_once,
    a_rebuild_equals_incremental_processing,
    queries_answer_during_a_rebuild_and_after_the_swap,
    a_failing_event_stops_its_projections_and_shows_in_status,
);
