//! A checked-out cart becomes a delivered order, through the HTTP API with the engine
//! `serve` runs (projections and the checkout saga with the test payment provider and
//! test carrier), on SQLite and on PostgreSQL: the happy path to delivery with points
//! earned, 3-D Secure completed by a signed payment callback (forged, stale and replayed
//! callbacks refused), a tracking scan by a signed carrier callback, and a declined card.

use std::sync::Arc;
use std::time::Duration;

use aggregates::{OrderId, WarehouseId};
use api::engine::{CheckoutRunner, Engine, NatsArgs, SagaArgs};
use api::routes::callbacks::Callbacks;
use infra::clock::SystemClock;
use infra::StoreConfig;
use reqwest::Method;
use sagas::checkout::{payment_id, shipment_id};
use sagas::ports::signature::sign;
use serde_json::{json, Value};
use tests::api::assert_problem;
use tests::on_both_backends;
use tests::server::{TestResponse, TestServer};
use tests::BackendKind;

on_both_backends!(
    a_paid_checkout_is_delivered_and_earns_points,
    three_d_secure_completes_by_signed_callback,
    a_declined_card_cancels_and_releases_stock,
);

const PAYMENT_SECRET: &[u8] = b"whsec_payments_test";
const CARRIER_SECRET: &[u8] = b"whsec_carrier_test";
const WAREHOUSE: &str = "BER-1";
/// Generous: the saga, the projections and the timer worker poll in the background.
const DEADLINE: Duration = Duration::from_secs(30);

struct Shop {
    server: TestServer,
    runner: Arc<CheckoutRunner>,
    _engine: Engine,
}

/// A server over a fresh store running projections and the checkout saga, whose test
/// carrier scans a parcel every `carrier_step_secs`; two products, 10 of each in stock.
async fn shop(kind: BackendKind, carrier_step_secs: u64) -> Option<Shop> {
    let store = tests::fresh_store(kind, StoreConfig::default(), Arc::new(SystemClock)).await?;
    let mut engine = Engine::start(store.clone(), &NatsArgs::default_embedded())
        .await
        .expect("engine");
    let projections = engine.run_projections();
    let runner = engine
        .run_sagas(&SagaArgs::test(carrier_step_secs))
        .expect("sagas");
    let callbacks = Callbacks::new(
        runner.clone(),
        "test",
        Some(PAYMENT_SECRET.to_vec()),
        Some(CARRIER_SECRET.to_vec()),
        chrono::Duration::minutes(5),
    );
    let mut commands = None;
    let server = TestServer::serve(store, |state| {
        commands = Some(state.commands.clone());
        state
            .with_projections(projections)
            .with_callbacks(callbacks)
    })
    .await;
    let commands = commands.expect("the server's command layer");
    tests::api::create_products(
        &commands,
        server.store.clock().now(),
        &[
            ("TEE-RED", "Red tee", "misc", 2_000),
            ("MUG-BLUE", "Blue mug", "misc", 1_250),
        ],
    )
    .await;
    tests::api::write_shop_settings(&server.store).await;
    for sku in ["TEE-RED", "MUG-BLUE"] {
        let r = server
            .post(
                &format!("/stock/{sku}/receipts"),
                Some(&server.staff()),
                Some(json!({"warehouse": WAREHOUSE, "quantity": 10})),
            )
            .await;
        assert!(r.status < 300, "{}", r.text);
    }
    Some(Shop {
        server,
        runner,
        _engine: engine,
    })
}

/// A customer enrolled in loyalty fills a cart (2 tees, 1 mug; 52.50 + 5.00 shipping,
/// 19 % VAT = 68.42) and checks out with `token`; answers the order id and the token.
async fn check_out(server: &TestServer, token: &str) -> (OrderId, String) {
    let (_, customer) = server.new_customer();
    let tok = Some(customer.as_str());
    let r = server
        .post("/loyalty/account", tok, Some(json!({"currency": "EUR"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = server
        .post("/carts", tok, Some(json!({"currency": "EUR"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let cart = r.body["stream"]
        .as_str()
        .and_then(|s| s.strip_prefix("cart/"))
        .expect("cart stream")
        .to_string();
    let base = format!("/carts/{cart}");
    for (sku, quantity) in [("TEE-RED", 2), ("MUG-BLUE", 1)] {
        let r = server
            .post(
                &format!("{base}/items"),
                tok,
                Some(json!({"sku": sku, "quantity": quantity})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let address = json!({"name": "Ada Lovelace", "line1": "Hauptstrasse 1", "city": "Berlin",
        "postal_code": "10117", "country": "DE"});
    let r = server
        .put(
            &format!("{base}/shipping-address"),
            tok,
            Some(json!({"address": address})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server
        .put(
            &format!("{base}/shipping-method"),
            tok,
            Some(json!({"code": "standard"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Money is due: no payment method, no checkout, and the cart is unchanged.
    let r = server.post(&format!("{base}/checkout"), tok, None).await;
    assert_problem(&r, 422, "payment_method_required");
    let r = server
        .post(
            &format!("{base}/checkout"),
            tok,
            Some(json!({"payment_method_token": token})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let order: OrderId = r.body["order_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("order id");
    (order, customer)
}

/// The order as its customer sees it, once `check` holds.
async fn order_when(
    server: &TestServer,
    customer: &str,
    order: OrderId,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/me/orders/{order}");
    let check = &check;
    let found = tests::eventually(DEADLINE, || {
        let r = server.get(&path, Some(customer));
        async move {
            let r = r.await;
            (r.status == 200 && check(&r.body)).then_some(r.body)
        }
    })
    .await;
    match found {
        Some(order) => order,
        None => panic!(
            "order never {what}: {}",
            server.get(&path, Some(customer)).await.text
        ),
    }
}

fn amount(v: &Value) -> i64 {
    v["amount"]
        .as_i64()
        .unwrap_or_else(|| panic!("no amount in {v}"))
}

async fn staff_step(server: &TestServer, shipment: &str, step: &str) -> TestResponse {
    server
        .post(
            &format!("/shipments/{shipment}/{step}"),
            Some(&server.staff()),
            None,
        )
        .await
}

/// Staff pick and pack the order's one parcel, the saga buys its label, staff hand it
/// to the carrier; answers the shipment id and its tracking number.
async fn ship(server: &TestServer, order: OrderId) -> (String, String) {
    let shipment = shipment_id(order, &WarehouseId::new(WAREHOUSE)).to_string();
    let staff = server.staff();
    let path = format!("/shipments/{shipment}");
    tests::eventually(DEADLINE, || {
        let r = server.get(&path, Some(&staff));
        async move { (r.await.status == 200).then_some(()) }
    })
    .await
    .expect("the saga creates the shipment");
    for step in ["pick", "pack"] {
        let r = staff_step(server, &shipment, step).await;
        assert_eq!(r.status, 200, "{step}: {}", r.text);
    }
    let tracking = tests::eventually(DEADLINE, || {
        let r = server.get(&path, Some(&staff));
        async move {
            let r = r.await;
            r.body["tracking_number"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_string)
        }
    })
    .await;
    let Some(tracking) = tracking else {
        let dead: Vec<(String, String)> = infra::on_db!(server.store.db(), pool => {
            sqlx::query_as("SELECT consumer, error FROM dead_letters")
                .fetch_all(pool)
                .await
                .unwrap_or_default()
        });
        panic!(
            "the saga never bought the label: {} dead letters {dead:?}",
            server.get(&path, Some(&staff)).await.text
        );
    };
    let r = staff_step(server, &shipment, "dispatch").await;
    assert_eq!(r.status, 200, "dispatch: {}", r.text);
    (shipment, tracking)
}

async fn a_paid_checkout_is_delivered_and_earns_points(kind: BackendKind) {
    let Some(shop) = shop(kind, 0).await else {
        return;
    };
    let server = &shop.server;
    let (order, customer) = check_out(server, "tok_visa").await;
    let confirmed = order_when(server, &customer, order, "confirmed", |o| {
        o["status"] == "confirmed"
    })
    .await;
    let grand_total = amount(&confirmed["totals"]["grand_total"]);
    assert_eq!(grand_total, 6_842, "{confirmed}");
    ship(server, order).await;
    // The test carrier (zero step) delivers at once; the saga's next poll sees it.
    let delivered = order_when(server, &customer, order, "delivered", |o| {
        o["fulfilment"] == "delivered" && amount(&o["totals"]["paid"]) > 0
    })
    .await;
    assert_eq!(amount(&delivered["totals"]["paid"]), grand_total);
    let payment = server
        .get(
            &format!("/payments/{}", payment_id(order)),
            Some(&server.staff()),
        )
        .await;
    assert_eq!(payment.status, 200, "{}", payment.text);
    assert_eq!(
        amount(&payment.body["captured"]),
        grand_total,
        "{}",
        payment.text
    );
    let charge = shop
        .runner
        .payments()
        .charge_of(payment_id(order))
        .expect("the provider's charge");
    assert_eq!(charge.captured.amount, grand_total);
    assert_eq!(charge.calls, 1, "authorized once");
    // 100 points per euro paid: 68.42 EUR.
    let loyalty = tests::eventually(DEADLINE, || {
        let r = server.get("/me/loyalty", Some(&customer));
        async move {
            let r = r.await;
            (r.status == 200 && r.body["balance"].as_i64() > Some(0)).then_some(r.body)
        }
    })
    .await
    .expect("points earned");
    assert_eq!(loyalty["balance"], 6_842, "{loyalty}");
    // Stock left the warehouse: 2 of 10 tees shipped, nothing held any more.
    let levels = server
        .get("/stock-levels/TEE-RED", Some(&server.staff()))
        .await;
    assert_eq!(levels.body["totals"]["on_hand"], 8, "{}", levels.text);
    assert_eq!(levels.body["totals"]["reserved"], 0, "{}", levels.text);
}

/// A callback's raw body and its signature header, signed at `at` with `secret`.
fn signed(secret: &[u8], at: chrono::DateTime<chrono::Utc>, body: &Value) -> (Vec<u8>, String) {
    let raw = serde_json::to_vec(body).expect("body");
    let header = sign(secret, at, &raw);
    (raw, header)
}

async fn callback(server: &TestServer, path: &str, raw: &[u8], header: &str) -> TestResponse {
    server
        .send(
            Method::POST,
            path,
            Some(&server.service()),
            Some(raw.to_vec()),
            &[("callback-signature", header)],
        )
        .await
}

async fn three_d_secure_completes_by_signed_callback(kind: BackendKind) {
    // A slow carrier: the parcel moves only when the carrier calls back.
    let Some(shop) = shop(kind, 3_600).await else {
        return;
    };
    let server = &shop.server;
    let (order, customer) = check_out(server, "tok_3ds").await;
    let payment = payment_id(order);
    let staff = server.staff();
    let path = format!("/payments/{payment}");
    tests::eventually(DEADLINE, || {
        let r = server.get(&path, Some(&staff));
        async move { (r.await.body["status"] == "action_required").then_some(()) }
    })
    .await
    .expect("the payment waits for the challenge");
    let reference = shop
        .runner
        .payments()
        .charge_of(payment)
        .expect("the provider's charge")
        .reference;
    let now = chrono::Utc::now();
    let body = json!({"type": "challenge.passed", "payment_id": payment, "reference": reference});
    let url = "/callbacks/payments/test";

    // Forged (another secret), stale (an hour old) and unsigned callbacks change nothing.
    let (raw, forged) = signed(b"not the secret", now, &body);
    assert_problem(
        &callback(server, url, &raw, &forged).await,
        400,
        "callback_signature_invalid",
    );
    let (raw, stale) = signed(PAYMENT_SECRET, now - chrono::Duration::hours(1), &body);
    assert_problem(
        &callback(server, url, &raw, &stale).await,
        400,
        "callback_stale",
    );
    let r = server
        .post(url, Some(&server.service()), Some(body.clone()))
        .await;
    assert_problem(&r, 400, "callback_signature_invalid");
    // A customer cannot play the provider.
    let (raw, header) = signed(PAYMENT_SECRET, now, &body);
    let r = server
        .send(
            Method::POST,
            url,
            Some(&customer),
            Some(raw.clone()),
            &[("callback-signature", &header)],
        )
        .await;
    assert_problem(&r, 403, "forbidden");
    let charge = shop.runner.payments().charge_of(payment).expect("charge");
    assert_eq!(charge.challenge_passed, None);
    assert_eq!(
        server.get(&path, Some(&staff)).await.body["status"],
        "action_required"
    );

    // The valid callback confirms the order without waiting for the status poll (30 s).
    let r = callback(server, url, &raw, &header).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["order_id"], order.to_string());
    order_when(server, &customer, order, "confirmed", |o| {
        o["status"] == "confirmed"
    })
    .await;
    // The same callback again is a replay.
    assert_problem(
        &callback(server, url, &raw, &header).await,
        409,
        "callback_replayed",
    );
    // An unknown provider is refused before anything is claimed.
    assert_problem(
        &callback(server, "/callbacks/payments/stripe", &raw, &header).await,
        404,
        "callback_source_unknown",
    );

    // The carrier calls back with the delivery scan.
    let (shipment, tracking) = ship(server, order).await;
    let scan = json!({"shipment_id": shipment, "tracking_number": tracking,
        "status": "delivered", "location": "Berlin", "at": chrono::Utc::now()});
    let (raw, forged) = signed(PAYMENT_SECRET, chrono::Utc::now(), &scan);
    let carrier_url = "/callbacks/carriers/test";
    assert_problem(
        &callback(server, carrier_url, &raw, &forged).await,
        400,
        "callback_signature_invalid",
    );
    let (raw, header) = signed(CARRIER_SECRET, chrono::Utc::now(), &scan);
    let r = callback(server, carrier_url, &raw, &header).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let delivered = order_when(server, &customer, order, "delivered and paid", |o| {
        o["fulfilment"] == "delivered" && amount(&o["totals"]["paid"]) > 0
    })
    .await;
    assert_eq!(
        amount(&delivered["totals"]["paid"]),
        amount(&delivered["totals"]["grand_total"])
    );
}

async fn a_declined_card_cancels_and_releases_stock(kind: BackendKind) {
    let Some(shop) = shop(kind, 0).await else {
        return;
    };
    let server = &shop.server;
    let (order, customer) = check_out(server, "tok_insufficient_funds").await;
    let cancelled = order_when(server, &customer, order, "cancelled", |o| {
        o["status"] == "cancelled"
    })
    .await;
    assert_eq!(amount(&cancelled["totals"]["paid"]), 0, "{cancelled}");
    let staff = server.staff();
    let payment = server
        .get(&format!("/payments/{}", payment_id(order)), Some(&staff))
        .await;
    assert_eq!(payment.body["status"], "declined", "{}", payment.text);
    assert_eq!(amount(&payment.body["captured"]), 0);
    for sku in ["TEE-RED", "MUG-BLUE"] {
        let path = format!("/stock-levels/{sku}");
        let levels = tests::eventually(DEADLINE, || {
            let r = server.get(&path, Some(&staff));
            async move {
                let r = r.await;
                (r.body["totals"]["reserved"] == 0).then_some(r.body)
            }
        })
        .await
        .expect("the reservation is released");
        assert_eq!(levels["totals"]["on_hand"], 10, "{levels}");
        assert_eq!(levels["totals"]["available"], 10, "{levels}");
    }
}
