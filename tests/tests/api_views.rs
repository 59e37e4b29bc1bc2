//! Black-box tests of the query routes over the SQL views, on SQLite and PostgreSQL:
//! read-your-writes (a command's position makes the next query see its effect), order
//! history pages, who may read what, and a view that cannot get there in time.
//!
//! Each server runs the projection runner beside it, as `commerce serve` does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::http::AppState;
use infra::clock::{ManualClock, SystemClock};
use infra::projection::{ProjectionRunner, ProjectionsHandle, RunnerConfig};
use infra::{Store, StoreConfig};
use reqwest::Method;
use serde_json::{json, Value};
use tests::api::assert_problem;
use tests::on_both_backends;
use tests::server::{TestResponse, TestServer};
use tests::BackendKind;
use tokio::sync::oneshot;
use uuid::Uuid;

on_both_backends!(
    a_customer_reads_their_own_cart_writes,
    order_history_pages_newest_first,
    orders_are_their_customers_own,
    staff_and_admin_routes,
    my_loyalty_shows_points_expiring_within_30_days,
    positions_beyond_the_log_are_refused_and_stalled_views_are_behind,
);

/// The projection runner of a test; dropping it stops the runner.
struct Runner {
    handle: ProjectionsHandle,
    stop: Option<oneshot::Sender<()>>,
}

impl Runner {
    fn start(store: &Store) -> Self {
        let runner = ProjectionRunner::new(
            store.clone(),
            projections::all().to_vec(),
            RunnerConfig::default(),
        );
        let handle = runner.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = runner
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            handle,
            stop: Some(stop),
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A server with the projection runner, two products, a German tax rate and a
/// `standard` shipping method; `configure` adjusts the state further.
struct Shop {
    server: TestServer,
    _runner: Runner,
}

async fn shop(kind: BackendKind, configure: impl FnOnce(AppState) -> AppState) -> Option<Shop> {
    let store = tests::fresh_store(kind, StoreConfig::default(), Arc::new(SystemClock)).await?;
    Some(shop_on(store, configure).await)
}

/// [`shop`] over `store` (for a store with a manual clock).
async fn shop_on(store: Store, configure: impl FnOnce(AppState) -> AppState) -> Shop {
    let runner = Runner::start(&store);
    let handle = runner.handle.clone();
    let mut commands = None;
    let server = TestServer::serve(store, |state| {
        commands = Some(state.commands.clone());
        configure(state.with_projections(handle))
    })
    .await;
    let commands = commands.expect("the server's command layer");
    let now = server.store.clock().now();
    tests::api::create_products(
        &commands,
        now,
        &[
            ("TEE-RED", "Red tee", "misc", 2_000),
            ("MUG-BLUE", "Blue mug", "misc", 1_250),
        ],
    )
    .await;
    tests::api::write_shop_settings(&server.store).await;
    Shop {
        server,
        _runner: runner,
    }
}

/// The `position` of a command reply.
#[track_caller]
fn position(r: &TestResponse) -> i64 {
    assert!(r.status < 300, "{}", r.text);
    r.body["position"].as_i64().expect("a position")
}

/// The `Consistency-Position` a query answered.
#[track_caller]
fn read_at(r: &TestResponse) -> i64 {
    r.header("consistency-position")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no Consistency-Position: {:?}", r.headers))
}

/// Opens a cart for the customer of `token`; answers its id and position.
async fn open_cart(server: &TestServer, token: &str) -> (String, i64) {
    let r = server
        .post("/carts", Some(token), Some(json!({"currency": "EUR"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let stream = r.body["stream"].as_str().expect("stream");
    let id = stream
        .strip_prefix("cart/")
        .expect("a cart stream")
        .to_string();
    (id, position(&r))
}

/// Staff open a finalised order for `customer` with `lines`; answers its id and the
/// position of the finalisation.
async fn place_order(server: &TestServer, customer: &str, lines: Value) -> (String, i64) {
    let staff = server.staff();
    let r = server
        .post(
            "/orders/drafts",
            Some(&staff),
            Some(json!({
                "customer_id": customer,
                "currency": "EUR",
                "lines": lines,
                "shipping_address": {
                    "name": "Ada Lovelace",
                    "line1": "Hauptstrasse 1",
                    "city": "Berlin",
                    "postal_code": "10117",
                    "region": "BE",
                    "country": "DE"
                },
                "shipping_method": "standard",
                "payment_method_token": "invoice"
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let order = r.body["stream"]
        .as_str()
        .and_then(|s| s.strip_prefix("order/"))
        .expect("an order stream")
        .to_string();
    let r = server
        .post(&format!("/orders/{order}/finalise"), Some(&staff), None)
        .await;
    (order, position(&r))
}

/// Adds and removes a line again and again, reading `/me/cart` at each command's
/// position right away: every read shows the write just made. Half the reads name the
/// position in the query, half in the header; a second server over the same store
/// without the runner's handle (as an API node beside a projection worker) polls the
/// checkpoint table instead.
async fn a_customer_reads_their_own_cart_writes(kind: BackendKind) {
    let Some(shop) = shop(kind, |s| s).await else {
        return;
    };
    let server = &shop.server;
    let (_, token) = server.new_customer();
    let (cart, opened) = open_cart(server, &token).await;
    let r = server
        .get(&format!("/me/cart?min_position={opened}"), Some(&token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["cart_id"], cart);
    assert_eq!(r.body["lines"], json!([]));

    let rounds = match kind {
        BackendKind::Sqlite => 1_000,
        BackendKind::Postgres => 300,
    };
    let check = |r: &TestResponse, at: i64, added: bool| {
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(read_at(r) >= at, "read at {} < {at}", read_at(r));
        if added {
            assert_eq!(r.body["item_count"], 2, "{}", r.text);
            assert_eq!(r.body["lines"][0]["sku"], "TEE-RED", "{}", r.text);
            assert_eq!(r.body["lines"][0]["quantity"], 2, "{}", r.text);
            assert_eq!(
                r.body["subtotal"],
                json!({"amount": 4_000, "currency": "EUR"}),
                "{}",
                r.text
            );
        } else {
            assert_eq!(r.body["item_count"], 0, "{}", r.text);
            assert_eq!(r.body["lines"], json!([]), "{}", r.text);
        }
    };
    for round in 0..rounds {
        let add = server
            .post(
                &format!("/carts/{cart}/items"),
                Some(&token),
                Some(json!({"sku": "TEE-RED", "quantity": 2})),
            )
            .await;
        let at = position(&add);
        let r = if round % 2 == 0 {
            server
                .get(&format!("/me/cart?min_position={at}"), Some(&token))
                .await
        } else {
            let header = at.to_string();
            server
                .request(
                    Method::GET,
                    "/me/cart",
                    Some(&token),
                    None,
                    &[("Consistency-Position", &header)],
                )
                .await
        };
        check(&r, at, true);
        let remove = server
            .delete(&format!("/carts/{cart}/items/TEE-RED"), Some(&token))
            .await;
        let at = position(&remove);
        let r = server
            .get(&format!("/me/cart?min_position={at}"), Some(&token))
            .await;
        check(&r, at, false);
    }

    // An API node without a runner of its own reads the checkpoint table.
    let polling = TestServer::serve(server.store.clone(), |s| s).await;
    for _ in 0..20 {
        let add = server
            .post(
                &format!("/carts/{cart}/items"),
                Some(&token),
                Some(json!({"sku": "TEE-RED", "quantity": 2})),
            )
            .await;
        let at = position(&add);
        let r = polling
            .get(&format!("/me/cart?min_position={at}"), Some(&token))
            .await;
        check(&r, at, true);
        let remove = server
            .delete(&format!("/carts/{cart}/items/TEE-RED"), Some(&token))
            .await;
        let at = position(&remove);
        let r = polling
            .get(&format!("/me/cart?min_position={at}"), Some(&token))
            .await;
        check(&r, at, false);
    }
}

/// Five orders come back newest first in pages of two, with a cursor until the last
/// page; staff read the same history by customer id; another customer's is empty.
async fn order_history_pages_newest_first(kind: BackendKind) {
    let Some(shop) = shop(kind, |s| s).await else {
        return;
    };
    let server = &shop.server;
    let (customer, token) = server.new_customer();
    let mut placed = Vec::new();
    let mut last = 0;
    for n in 1..=5 {
        let (order, at) = place_order(
            server,
            &customer.to_string(),
            json!([{"sku": "MUG-BLUE", "quantity": n}]),
        )
        .await;
        placed.push(order);
        last = at;
    }

    let mut seen: Vec<String> = Vec::new();
    let mut times: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => format!("/me/orders?limit=2&min_position={last}"),
            Some(c) => format!("/me/orders?limit=2&cursor={c}&min_position={last}"),
        };
        let r = server.get(&path, Some(&token)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(read_at(&r) >= last);
        assert_eq!(r.body["customer_id"], customer.to_string());
        pages += 1;
        for order in r.body["orders"].as_array().expect("orders") {
            seen.push(order["order_id"].as_str().expect("id").to_string());
            times.push(order["placed_at"].as_str().expect("time").to_string());
            assert_eq!(order["status"], "placed", "{order}");
            assert_eq!(order["grand_total"]["currency"], "EUR", "{order}");
        }
        match r.body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(r.body["orders"].as_array().map(Vec::len), Some(2));
                cursor = Some(next.to_string());
            }
            None => break,
        }
        assert!(pages < 10, "the cursor does not advance");
    }
    assert_eq!(pages, 3);
    let mut newest_first = placed.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "newest first, each once");
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        times.iter().map(|t| t.parse().expect("RFC 3339")).collect();
    assert!(parsed.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // The view's figures are the order's own: the newest (5 mugs) tops the first page
    // with the grand total the command side computed.
    let r = server.get("/me/orders?limit=1", Some(&token)).await;
    assert_eq!(r.body["orders"][0]["order_id"], placed[4]);
    let order = server
        .get(&format!("/orders/{}", placed[4]), Some(&token))
        .await;
    assert_eq!(order.status, 200, "{}", order.text);
    assert_eq!(
        r.body["orders"][0]["grand_total"], order.body["totals"]["grand_total"],
        "{}",
        r.text
    );
    assert_eq!(order.body["lines"][0]["quantity"], 5, "{}", order.text);

    let r = server
        .get(
            &format!("/customers/{customer}/orders?limit=100"),
            Some(&server.staff()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let staff_seen: Vec<&str> = r.body["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["order_id"].as_str().expect("id"))
        .collect();
    assert_eq!(staff_seen, newest_first);
    assert!(r.body["next_cursor"].is_null());

    let (_, other) = server.new_customer();
    let r = server.get("/me/orders", Some(&other)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["orders"], json!([]));

    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=zz",
        "min_position=-1",
    ] {
        let r = server.get(&format!("/me/orders?{bad}"), Some(&token)).await;
        assert_problem(&r, 400, "invalid_query");
    }
}

/// A customer reads their own order with lines; someone else's is the 404 of a missing
/// one; staff read any; `/me` routes are for customers.
async fn orders_are_their_customers_own(kind: BackendKind) {
    let Some(shop) = shop(kind, |s| s).await else {
        return;
    };
    let server = &shop.server;
    let (owner, token) = server.new_customer();
    let (order, at) = place_order(
        server,
        &owner.to_string(),
        json!([{"sku": "TEE-RED", "quantity": 2}, {"sku": "MUG-BLUE", "quantity": 1}]),
    )
    .await;

    let r = server
        .get(
            &format!("/me/orders/{order}?min_position={at}"),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(read_at(&r) >= at);
    assert_eq!(r.body["order_id"], order);
    assert_eq!(r.body["customer_id"], owner.to_string());
    assert_eq!(r.body["status"], "placed");
    assert_eq!(r.body["draft"], false);
    assert_eq!(r.body["shipments"], json!([]));
    let lines = r.body["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 2, "{}", r.text);
    assert_eq!(lines[0]["sku"], "MUG-BLUE");
    assert_eq!(lines[1]["sku"], "TEE-RED");
    assert_eq!(lines[1]["quantity"], 2);
    assert_eq!(
        lines[1]["line_total"],
        json!({"amount": 4_000, "currency": "EUR"})
    );
    assert_eq!(
        r.body["totals"]["subtotal"],
        json!({"amount": 5_250, "currency": "EUR"})
    );
    let command_side = server.get(&format!("/orders/{order}"), Some(&token)).await;
    for figure in ["subtotal", "discount", "shipping", "tax", "grand_total"] {
        assert_eq!(
            r.body["totals"][figure], command_side.body["totals"][figure],
            "{figure}: {}",
            command_side.text
        );
    }

    let (_, stranger) = server.new_customer();
    let missing = Uuid::now_v7();
    for path in [
        format!("/me/orders/{order}"),
        format!("/views/orders/{order}"),
        format!("/me/orders/{missing}"),
    ] {
        let r = server.get(&path, Some(&stranger)).await;
        assert_problem(&r, 404, "not_found");
    }

    let r = server
        .get(&format!("/views/orders/{order}"), Some(&server.staff()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["order_id"], order);
    let r = server
        .get(&format!("/views/orders/{order}"), Some(&token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    for path in ["/me/orders", "/me/cart", "/me/loyalty"] {
        let r = server.get(path, Some(&server.staff())).await;
        assert_problem(&r, 403, "forbidden");
    }
    let r = server.get("/me/orders/not-a-uuid", Some(&token)).await;
    assert_problem(&r, 400, "invalid_id");
    let r = server.get("/me/cart", Some(&token)).await;
    assert_problem(&r, 404, "not_found");
    let r = server.get("/me/loyalty", None).await;
    assert_problem(&r, 401, "unauthenticated");
}

/// Stock levels, payments and reports: customers are refused, staff read stock and
/// payments, only admins read reports.
async fn staff_and_admin_routes(kind: BackendKind) {
    let Some(shop) = shop(kind, |s| s).await else {
        return;
    };
    let server = &shop.server;
    let staff = server.staff();
    let admin = server.admin();
    let (customer, token) = server.new_customer();
    let (order, _) = place_order(
        server,
        &customer.to_string(),
        json!([{"sku": "TEE-RED", "quantity": 3}]),
    )
    .await;

    for path in [
        "/stock-levels/TEE-RED".to_string(),
        format!("/orders/{order}/payments"),
        format!("/customers/{customer}/orders"),
        "/reports/sales".to_string(),
        "/reports/cohorts".to_string(),
    ] {
        let r = server.get(&path, Some(&token)).await;
        assert_problem(&r, 403, "forbidden");
    }
    for path in ["/reports/sales", "/reports/cohorts"] {
        let r = server.get(path, Some(&staff)).await;
        assert_problem(&r, 403, "forbidden");
    }

    // Stock: per warehouse and in total, with the low-stock flag.
    for (warehouse, quantity) in [("BER-1", 10), ("HAM-1", 5)] {
        let r = server
            .post(
                "/stock/MUG-BLUE/receipts",
                Some(&staff),
                Some(json!({"warehouse": warehouse, "quantity": quantity})),
            )
            .await;
        position(&r);
    }
    let r = server
        .put(
            "/stock/MUG-BLUE/low-stock-threshold",
            Some(&staff),
            Some(json!({"threshold": 20})),
        )
        .await;
    let at = position(&r);
    let r = server
        .get(
            &format!("/stock-levels/MUG-BLUE?min_position={at}"),
            Some(&staff),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["sku"], "MUG-BLUE");
    let warehouses = r.body["warehouses"].as_array().expect("warehouses");
    assert_eq!(warehouses.len(), 2, "{}", r.text);
    assert_eq!(warehouses[0]["warehouse_id"], "BER-1");
    assert_eq!(warehouses[0]["on_hand"], 10);
    assert_eq!(warehouses[1]["available"], 5);
    assert_eq!(r.body["totals"]["on_hand"], 15, "{}", r.text);
    assert_eq!(r.body["totals"]["low_stock_threshold"], 20, "{}", r.text);
    assert_eq!(r.body["totals"]["low_stock"], true, "{}", r.text);
    let r = server.get("/stock-levels/NO-SUCH-SKU", Some(&staff)).await;
    assert_problem(&r, 404, "not_found");

    // Payments: the ledger has none for an order nobody paid yet.
    let r = server
        .get(&format!("/orders/{order}/payments"), Some(&staff))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["order_id"], order);
    assert_eq!(r.body["payments"], json!([]));

    // Sales: today's two finalised orders, at their grand totals.
    let (second, at) = place_order(
        server,
        &customer.to_string(),
        json!([{"sku": "MUG-BLUE", "quantity": 1}]),
    )
    .await;
    assert_ne!(second, order);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let r = server
        .get(
            &format!("/reports/sales?from={today}&to={today}&currency=EUR&min_position={at}"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["days"][0]["day"], today, "{}", r.text);
    assert_eq!(r.body["days"][0]["orders"], 2, "{}", r.text);
    assert_eq!(r.body["days"][0]["units"], 4, "{}", r.text);
    let mut revenue = 0;
    for id in [&order, &second] {
        let o = server.get(&format!("/orders/{id}"), Some(&staff)).await;
        revenue += o.body["totals"]["grand_total"]["amount"]
            .as_i64()
            .expect("grand total");
    }
    assert!(revenue > 0);
    assert_eq!(
        r.body["totals"][0]["revenue"],
        json!({"amount": revenue, "currency": "EUR"}),
        "{}",
        r.text
    );
    let r = server
        .get("/reports/sales?from=2000-01-01&to=2000-01-31", Some(&admin))
        .await;
    assert_eq!(r.body["days"], json!([]), "{}", r.text);
    for bad in [
        "from=2026-13-01",
        "from=2026-12-02&to=2026-12-01",
        "from=2024-01-01&to=2026-01-01",
        "currency=euro",
    ] {
        let r = server
            .get(&format!("/reports/sales?{bad}"), Some(&admin))
            .await;
        assert_problem(&r, 400, "invalid_query");
    }

    // Cohorts count customers by their first order; staff drafts name no new customer.
    let r = server.get("/reports/cohorts", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["cohorts"].is_array(), "{}", r.text);
    let r = server
        .get("/reports/cohorts?from=2026-1", Some(&admin))
        .await;
    assert_problem(&r, 400, "invalid_query");
}

/// The loyalty view's account, and the points of the lots expiring within 30 days of
/// the clock's now (the lots' expiry as the account's own stream has it).
async fn my_loyalty_shows_points_expiring_within_30_days(kind: BackendKind) {
    let clock = ManualClock::new(chrono::Utc::now());
    let Some(store) =
        tests::fresh_store(kind, StoreConfig::default(), Arc::new(clock.clone())).await
    else {
        return;
    };
    let shop = shop_on(store, |s| s).await;
    let server = &shop.server;
    let (customer, token) = server.new_customer();
    let r = server.get("/me/loyalty", Some(&token)).await;
    assert_problem(&r, 404, "not_found");

    let r = server
        .post(
            "/loyalty/account",
            Some(&token),
            Some(json!({"currency": "EUR"})),
        )
        .await;
    position(&r);
    let bonus = |points: u64| json!({"campaign_id": Uuid::now_v7(), "points": points});
    let path = format!("/loyalty/accounts/{customer}/bonus");
    position(
        &server
            .post(&path, Some(&server.staff()), Some(bonus(500)))
            .await,
    );
    clock.advance(chrono::Duration::days(40));
    let at = position(
        &server
            .post(&path, Some(&server.staff()), Some(bonus(300)))
            .await,
    );

    let r = server
        .get(&format!("/me/loyalty?min_position={at}"), Some(&token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["customer_id"], customer.to_string());
    assert_eq!(r.body["balance"], 800, "{}", r.text);
    assert_eq!(r.body["lifetime_points"], 800, "{}", r.text);
    assert_eq!(r.body["points_expiring_within_30_days"], 0, "{}", r.text);
    assert_eq!(r.body["expiring_soon"], json!([]));

    // Ten days before the first lot expires, only it is within the 30 days.
    let account = server.get("/loyalty/account", Some(&token)).await;
    assert_eq!(account.status, 200, "{}", account.text);
    let first: chrono::DateTime<chrono::Utc> = account.body["lots"][0]["expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("the first lot's expiry");
    assert_eq!(account.body["lots"][0]["points"], 500, "{}", account.text);
    clock.set(first - chrono::Duration::days(10));
    let r = server.get("/me/loyalty", Some(&token)).await;
    assert_eq!(r.body["points_expiring_within_30_days"], 500, "{}", r.text);
    let soon = r.body["expiring_soon"].as_array().expect("lots");
    assert_eq!(soon.len(), 1, "{}", r.text);
    let expires: chrono::DateTime<chrono::Utc> = soon[0]["expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("expiry");
    // PostgreSQL keeps microseconds.
    assert!(
        (expires - first)
            .num_microseconds()
            .is_some_and(|d| d.abs() < 1),
        "{expires} {first}"
    );

    // Once the first lot has expired, the second (40 days later) comes within 30 days.
    clock.set(first + chrono::Duration::days(15));
    let r = server.get("/me/loyalty", Some(&token)).await;
    assert_eq!(r.body["points_expiring_within_30_days"], 300, "{}", r.text);
    clock.set(first - chrono::Duration::hours(1));
    let r = server.get("/me/loyalty", Some(&token)).await;
    assert_eq!(r.body["points_expiring_within_30_days"], 500, "{}", r.text);
}

/// A position the log has not reached is refused at once (`400 position_beyond_log`): no
/// command answered it, so no wait could reach it. A written position that a view has not
/// applied within the configured wait is `504 view_behind`, with a runner's handle in the
/// process and without one (the checkpoint table answers).
async fn positions_beyond_the_log_are_refused_and_stalled_views_are_behind(kind: BackendKind) {
    // A long wait: the refusal must come without it.
    let Some(shop) = shop(kind, |s| s.with_consistency_wait(Duration::from_secs(30))).await else {
        return;
    };
    let server = &shop.server;
    let (_, token) = server.new_customer();
    let (_, at) = open_cart(server, &token).await;
    let ahead = at + 1_000_000;
    let started = Instant::now();
    let r = server
        .get(&format!("/me/cart?min_position={ahead}"), Some(&token))
        .await;
    assert_problem(&r, 400, "position_beyond_log");
    let detail = r.body["detail"].as_str().expect("detail");
    assert!(detail.contains(&ahead.to_string()), "{detail}");
    let header = ahead.to_string();
    let r = server
        .request(
            Method::GET,
            "/me/orders",
            Some(&token),
            None,
            &[("Consistency-Position", &header)],
        )
        .await;
    assert_problem(&r, 400, "position_beyond_log");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "refused after {:?}: it waited",
        started.elapsed()
    );
    // The position the command answered is written: it is served.
    let r = server
        .get(&format!("/me/cart?min_position={at}"), Some(&token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A shop whose projections never run: every written position stays ahead of the views.
    let wait = Duration::from_millis(150);
    let store = tests::fresh_store(kind, StoreConfig::default(), Arc::new(SystemClock))
        .await
        .expect("the backend answered a moment ago");
    let stalled = ProjectionRunner::new(
        store.clone(),
        projections::all().to_vec(),
        RunnerConfig::default(),
    );
    let handle = stalled.handle();
    let server = TestServer::serve(store.clone(), |s| {
        s.with_consistency_wait(wait).with_projections(handle)
    })
    .await;
    let (_, token) = server.new_customer();
    let (_, at) = open_cart(&server, &token).await;
    let behind_before = view_behind_count(&server).await;
    let started = Instant::now();
    let r = server
        .get(&format!("/me/cart?min_position={at}"), Some(&token))
        .await;
    let took = started.elapsed();
    assert_problem(&r, 504, "view_behind");
    let detail = r.body["detail"].as_str().expect("detail");
    assert!(detail.contains("`carts`"), "{detail}");
    assert!(detail.contains(&at.to_string()), "{detail}");
    assert!(took >= wait, "answered after {took:?}, before the wait");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Other tests of this process share the recorder: at least this one counted.
    assert!(view_behind_count(&server).await > behind_before);

    let header = at.to_string();
    let r = server
        .request(
            Method::GET,
            "/me/orders",
            Some(&token),
            None,
            &[("Consistency-Position", &header)],
        )
        .await;
    assert_problem(&r, 504, "view_behind");
    assert!(r.text.contains("`order_summaries`"), "{}", r.text);

    // Without a runner in the process the checkpoint table says the same.
    let polling = TestServer::serve(store, |s| s.with_consistency_wait(wait)).await;
    let r = polling
        .get(&format!("/me/cart?min_position={at}"), Some(&token))
        .await;
    assert_problem(&r, 504, "view_behind");

    for bad in ["-3", "soon", "1.5"] {
        let r = polling
            .request(
                Method::GET,
                "/me/cart",
                Some(&token),
                None,
                &[("Consistency-Position", bad)],
            )
            .await;
        assert_problem(&r, 400, "invalid_consistency_position");
    }
    let r = polling
        .get("/me/cart?min_position=soon", Some(&token))
        .await;
    assert_problem(&r, 400, "invalid_query");
}

/// `commerce_view_behind_total{view="carts"}` as `/metrics` reports it (0 before any).
async fn view_behind_count(server: &TestServer) -> u64 {
    let r = server.get("/metrics", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
        .lines()
        .filter(|l| l.starts_with("commerce_view_behind_total{") && l.contains("view=\"carts\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}
