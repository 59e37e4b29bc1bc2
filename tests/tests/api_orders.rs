//! Black-box tests of the order routes over a real TCP port, on SQLite and on
//! PostgreSQL.
//!
//! Orders are opened as staff drafts (customer orders are placed by the checkout saga,
//! which is not part of the API). Shipments and deliveries reach orders through sagas,
//! so the tests record them through the server's own command layer.

use std::sync::Arc;

use aggregates::order::{LineQuantity, Order, OrderCommand, RecordDelivery, RecordShipment};
use aggregates::{Quantity, ShipmentId, Sku};
use infra::clock::SystemClock;
use infra::command::{CommandContext, Commands};
use infra::StoreConfig;
use reqwest::Method;
use serde_json::{json, Value};
use tests::api::{assert_command, assert_problem, normalised};
use tests::on_both_backends;
use tests::server::TestServer;
use tests::BackendKind;
use uuid::Uuid;

on_both_backends!(
    drafts_edits_and_cancellation,
    returns_and_exchanges,
    other_customers_orders_are_not_found,
    bad_drafts_are_refused,
);

/// A test server and its command layer (to play the sagas' part).
struct Shop {
    server: TestServer,
    commands: Commands,
}

/// A server over a fresh store with two products, a 19 % German tax rate and a
/// `standard` shipping method at 5.00 EUR.
async fn shop(kind: BackendKind) -> Option<Shop> {
    let store = tests::fresh_store(kind, StoreConfig::default(), Arc::new(SystemClock)).await?;
    let mut commands = None;
    let server = TestServer::serve(store, |state| {
        commands = Some(state.commands.clone());
        state
    })
    .await;
    let commands: Commands = commands.expect("the server's command layer");
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
    Some(Shop { server, commands })
}

fn address(city: &str, region: &str, country: &str) -> Value {
    json!({
        "name": "Ada Lovelace",
        "line1": "Hauptstrasse 1",
        "city": city,
        "postal_code": "10117",
        "region": region,
        "country": country
    })
}

/// Staff open a draft for `customer` with `lines`; answers the order id.
async fn open_draft(server: &TestServer, customer: &str, lines: Value) -> String {
    let r = server
        .post(
            "/orders/drafts",
            Some(&server.staff()),
            Some(json!({
                "customer_id": customer,
                "currency": "EUR",
                "lines": lines,
                "shipping_address": address("Berlin", "BE", "DE"),
                "shipping_method": "standard",
                "payment_method_token": "invoice"
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let stream = r.body["stream"].as_str().expect("stream").to_string();
    assert_command(&r, 201, &stream, 1);
    stream
        .strip_prefix("order/")
        .expect("an order stream")
        .to_string()
}

/// A placed and confirmed order of 2 × TEE-RED and 1 × MUG-BLUE, shipped and delivered:
/// at version 6 (delivery appends two events).
async fn delivered_order(shop: &Shop, customer: &str) -> String {
    let server = &shop.server;
    let staff = server.staff();
    let order = open_draft(
        server,
        customer,
        json!([{"sku": "TEE-RED", "quantity": 2}, {"sku": "MUG-BLUE", "quantity": 1}]),
    )
    .await;
    let r = server
        .post(&format!("/orders/{order}/finalise"), Some(&staff), None)
        .await;
    assert_command(&r, 200, &format!("order/{order}"), 2);
    let r = server
        .post(&format!("/orders/{order}/confirm"), Some(&staff), None)
        .await;
    assert_command(&r, 200, &format!("order/{order}"), 3);
    let shipment_id = ShipmentId::from_uuid(Uuid::now_v7());
    let now = server.store.clock().now();
    let lines = [("TEE-RED", 2), ("MUG-BLUE", 1)]
        .into_iter()
        .map(|(sku, n)| LineQuantity {
            sku: Sku::parse(sku).expect("sku"),
            quantity: Quantity::new(n),
        })
        .collect();
    for command in [
        OrderCommand::RecordShipment(RecordShipment {
            shipment_id,
            lines,
            at: now,
        }),
        OrderCommand::RecordDelivery(RecordDelivery {
            shipment_id,
            at: now,
        }),
    ] {
        // Each step is its own command: one shared command id would replay the first.
        let ctx = CommandContext::new("test:carrier");
        shop.commands
            .execute::<Order>(&ctx, &order, command)
            .await
            .expect("carrier step");
    }
    order
}

async fn drafts_edits_and_cancellation(kind: BackendKind) {
    let Some(Shop { server, .. }) = shop(kind).await else {
        return;
    };
    let staff = server.staff();
    let (customer, token) = server.new_customer();
    let tok = Some(token.as_str());
    let order = open_draft(
        &server,
        &customer.to_string(),
        json!([{"sku": "TEE-RED", "quantity": 2}]),
    )
    .await;
    let stream = format!("order/{order}");
    let base = format!("/orders/{order}");

    // Staff add a discounted line to the draft, priced from the catalogue.
    let r = server
        .post(
            &format!("{base}/lines"),
            Some(&staff),
            Some(json!({"sku": "MUG-BLUE", "quantity": 1, "discount": 250})),
        )
        .await;
    assert_command(&r, 200, &stream, 2);
    let r = server
        .post(
            &format!("{base}/lines"),
            Some(&staff),
            Some(json!({"sku": "NO-SUCH-SKU", "quantity": 1})),
        )
        .await;
    assert_problem(&r, 422, "unknown_product");

    // The customer sees their draft.
    let r = server.get(&base, tok).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(r.body["order_id"], order.as_str());
    assert_eq!(r.body["customer_id"], customer.to_string());
    assert_eq!(r.body["status"], "draft");
    assert_eq!(r.body["lines"].as_array().map(Vec::len), Some(2));
    assert_eq!(r.body["lines"][1]["name"], "Blue mug");
    // 4000 + 1250 - 250 + 500 = 5500; 19 % = 1045.
    assert_eq!(r.body["totals"]["subtotal"]["amount"], 5_250, "{}", r.text);
    assert_eq!(r.body["totals"]["discount"]["amount"], 250);
    assert_eq!(r.body["totals"]["shipping"]["amount"], 500);
    assert_eq!(r.body["totals"]["tax"]["amount"], 1_045);
    assert_eq!(r.body["totals"]["grand_total"]["amount"], 6_545);
    assert_eq!(r.body["tax_rate_bp"], 1_900);
    assert_eq!(r.body["version"], 2);

    // Staff-only routes refuse the customer.
    for path in [
        format!("{base}/finalise"),
        format!("{base}/confirm"),
        format!("{base}/lines"),
    ] {
        let body = path
            .ends_with("/lines")
            .then(|| json!({"sku": "TEE-RED", "quantity": 1}));
        let r = server.post(&path, tok, body).await;
        assert_problem(&r, 403, "forbidden");
    }
    let r = server
        .post(
            "/orders/drafts",
            tok,
            Some(json!({"customer_id": customer.to_string()})),
        )
        .await;
    assert_problem(&r, 403, "forbidden");

    let r = server
        .post(&format!("{base}/finalise"), Some(&staff), None)
        .await;
    assert_command(&r, 200, &stream, 3);
    let r = server.get(&base, tok).await;
    assert_eq!(r.body["status"], "placed", "{}", r.text);

    // The customer edits before fulfilment.
    let r = server
        .put(
            &format!("{base}/lines/TEE-RED"),
            tok,
            Some(json!({"quantity": 3})),
        )
        .await;
    assert_command(&r, 200, &stream, 4);
    let r = server.delete(&format!("{base}/lines/MUG-BLUE"), tok).await;
    assert_command(&r, 200, &stream, 5);
    let r = server.delete(&format!("{base}/lines/TEE-RED"), tok).await;
    assert_problem(&r, 422, "order_last_line");
    let r = server
        .put(
            &format!("{base}/shipping-address"),
            tok,
            Some(json!({"address": address("Boston", "MA", "US")})),
        )
        .await;
    assert_problem(&r, 422, "tax_rate_missing");
    let r = server
        .put(
            &format!("{base}/shipping-address"),
            tok,
            Some(json!({"address": address("Munich", "BY", "DE")})),
        )
        .await;
    assert_command(&r, 200, &stream, 6);
    let r = server.get(&base, tok).await;
    assert_eq!(r.body["shipping_address"]["city"], "Munich");
    assert_eq!(r.body["lines"][0]["quantity"], 3);
    // 6000 + 500 shipping kept = 6500; 19 % = 1235.
    assert_eq!(
        r.body["totals"]["grand_total"]["amount"], 7_735,
        "{}",
        r.text
    );

    // A stale version, and a reason customers may not give, change nothing.
    let r = server
        .request(
            Method::POST,
            &format!("{base}/cancel"),
            tok,
            Some(json!({})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_problem(&r, 412, "version_mismatch");
    let r = server
        .post(
            &format!("{base}/cancel"),
            tok,
            Some(json!({"reason": "fraud_rejected"})),
        )
        .await;
    assert_problem(&r, 403, "forbidden");
    let r = server
        .post(
            &format!("{base}/cancel"),
            tok,
            Some(json!({"reason": "whim"})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");

    let r = server
        .request(
            Method::POST,
            &format!("{base}/cancel"),
            tok,
            Some(json!({})),
            &[("if-match", "\"6\"")],
        )
        .await;
    assert_command(&r, 200, &stream, 7);
    let r = server.get(&base, tok).await;
    assert_eq!(r.body["status"], "cancelled", "{}", r.text);
    let r = server
        .post(&format!("{base}/cancel"), tok, Some(json!({})))
        .await;
    assert_problem(&r, 409, "order_cancelled");
}

async fn returns_and_exchanges(kind: BackendKind) {
    let Some(shop) = shop(kind).await else {
        return;
    };
    let server = &shop.server;
    let staff = server.staff();
    let (customer, token) = server.new_customer();
    let tok = Some(token.as_str());
    let order = delivered_order(&shop, &customer.to_string()).await;
    let stream = format!("order/{order}");
    let base = format!("/orders/{order}");

    // Shipped orders can no longer be edited or cancelled.
    let r = server
        .put(
            &format!("{base}/lines/TEE-RED"),
            tok,
            Some(json!({"quantity": 1})),
        )
        .await;
    assert_problem(&r, 409, "order_edit_after_shipment");
    let r = server
        .post(&format!("{base}/cancel"), tok, Some(json!({})))
        .await;
    assert_problem(&r, 409, "order_cancel_after_shipment");

    let r = server
        .post(
            &format!("{base}/returns"),
            tok,
            Some(json!({"lines": [{"sku": "TEE-RED", "quantity": 1}], "reason": "too small"})),
        )
        .await;
    assert_command(&r, 201, &stream, 7);
    let first_return = r.body["return_id"].as_str().expect("return id").to_string();
    let r = server
        .post(
            &format!("{base}/returns"),
            tok,
            Some(json!({"lines": [{"sku": "TEE-RED", "quantity": 2}], "reason": "both"})),
        )
        .await;
    assert_problem(&r, 422, "return_exceeds_delivered");
    let r = server
        .post(
            &format!("{base}/returns"),
            tok,
            Some(json!({"lines": [], "reason": "nothing"})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");

    // Deciding on returns is staff work.
    let first = format!("{base}/returns/{first_return}");
    let r = server.post(&format!("{first}/approve"), tok, None).await;
    assert_problem(&r, 403, "forbidden");
    let r = server.post(&format!("{first}/receive"), tok, None).await;
    assert_problem(&r, 403, "forbidden");
    let r = server
        .post(
            &format!("{first}/reject"),
            tok,
            Some(json!({"reason": "no"})),
        )
        .await;
    assert_problem(&r, 403, "forbidden");

    let r = server
        .post(&format!("{first}/approve"), Some(&staff), None)
        .await;
    assert_command(&r, 200, &stream, 8);
    let r = server.post(&format!("{first}/exchange"), tok, None).await;
    assert_command(&r, 200, &stream, 9);
    let replacement = r.body["replacement_order_id"]
        .as_str()
        .expect("replacement id")
        .to_string();
    assert_ne!(replacement, order);
    let r = server.post(&format!("{first}/exchange"), tok, None).await;
    assert_problem(&r, 409, "exchange_already_requested");
    let r = server
        .post(&format!("{first}/receive"), Some(&staff), None)
        .await;
    assert_command(&r, 200, &stream, 10);

    // A second return, rejected: no exchange for it.
    let r = server
        .post(
            &format!("{base}/returns"),
            tok,
            Some(json!({"lines": [{"sku": "MUG-BLUE", "quantity": 1}], "reason": "chipped"})),
        )
        .await;
    assert_command(&r, 201, &stream, 11);
    let second_return = r.body["return_id"].as_str().expect("return id").to_string();
    assert_ne!(second_return, first_return);
    let second = format!("{base}/returns/{second_return}");
    let r = server
        .post(
            &format!("{second}/reject"),
            Some(&staff),
            Some(json!({"reason": "used"})),
        )
        .await;
    assert_command(&r, 200, &stream, 12);
    let r = server.post(&format!("{second}/exchange"), tok, None).await;
    assert_problem(&r, 409, "exchange_for_rejected_return");
    let unknown = Uuid::now_v7();
    let r = server
        .post(
            &format!("{base}/returns/{unknown}/approve"),
            Some(&staff),
            None,
        )
        .await;
    assert_problem(&r, 404, "return_not_found");

    let r = server.get(&base, tok).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"12\""));
    assert_eq!(r.body["status"], "confirmed");
    assert_eq!(r.body["fully_delivered"], true);
    assert_eq!(r.body["shipments"][0]["delivered"], true);
    let returns = r.body["returns"].as_array().expect("returns");
    assert_eq!(returns.len(), 2);
    let by_id = |id: &str| {
        returns
            .iter()
            .find(|x| x["return_id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let first = by_id(&first_return);
    assert_eq!(first["status"], "received");
    assert_eq!(first["exchange_order_id"], replacement.as_str());
    assert_eq!(first["lines"], json!([{"sku": "TEE-RED", "quantity": 1}]));
    assert_eq!(by_id(&second_return)["status"], "rejected");
}

async fn other_customers_orders_are_not_found(kind: BackendKind) {
    let Some(shop) = shop(kind).await else {
        return;
    };
    let server = &shop.server;
    let (owner, owner_token) = server.new_customer();
    let (_, intruder) = server.new_customer();
    let order = delivered_order(&shop, &owner.to_string()).await;
    let r = server
        .post(
            &format!("/orders/{order}/returns"),
            Some(&owner_token),
            Some(json!({"lines": [{"sku": "TEE-RED", "quantity": 1}], "reason": "small"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let return_id = r.body["return_id"].as_str().expect("return id").to_string();
    let missing = Uuid::now_v7().to_string();

    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, String::new(), None),
        (Method::POST, "/cancel".into(), Some(json!({}))),
        (
            Method::PUT,
            "/lines/TEE-RED".into(),
            Some(json!({"quantity": 1})),
        ),
        (Method::DELETE, "/lines/TEE-RED".into(), None),
        (
            Method::PUT,
            "/shipping-address".into(),
            Some(json!({"address": address("Munich", "BY", "DE")})),
        ),
        (
            Method::POST,
            "/returns".into(),
            Some(json!({"lines": [{"sku": "TEE-RED", "quantity": 1}], "reason": "mine now"})),
        ),
        (Method::POST, format!("/returns/{return_id}/exchange"), None),
    ];
    for (method, suffix, body) in routes {
        let foreign = server
            .request(
                method.clone(),
                &format!("/orders/{order}{suffix}"),
                Some(&intruder),
                body.clone(),
                &[],
            )
            .await;
        assert_problem(&foreign, 404, "not_found");
        let absent = server
            .request(
                method.clone(),
                &format!("/orders/{missing}{suffix}"),
                Some(&intruder),
                body,
                &[],
            )
            .await;
        assert_problem(&absent, 404, "not_found");
        assert_eq!(
            normalised(&foreign.body, &order),
            normalised(&absent.body, &missing),
            "{method} {suffix}"
        );
    }
    // Nothing the intruder sent reached the order.
    let r = server
        .get(&format!("/orders/{order}"), Some(&owner_token))
        .await;
    // Placed, finalised, confirmed, shipped, delivered (two events), one return.
    assert_eq!(r.body["version"], 7, "{}", r.text);
    assert_eq!(r.body["returns"].as_array().map(Vec::len), Some(1));
}

async fn bad_drafts_are_refused(kind: BackendKind) {
    let Some(Shop { server, .. }) = shop(kind).await else {
        return;
    };
    let staff = server.staff();
    let (customer, _) = server.new_customer();
    let draft = |lines: Value, currency: &str| {
        json!({
            "customer_id": customer.to_string(),
            "currency": currency,
            "lines": lines,
            "shipping_address": address("Berlin", "BE", "DE"),
            "shipping_method": "standard",
            "payment_method_token": "invoice"
        })
    };
    let one = json!([{"sku": "TEE-RED", "quantity": 1}]);

    let r = server
        .post(
            "/orders/drafts",
            Some(&staff),
            Some(draft(json!([{"sku": "NO-SUCH-SKU", "quantity": 1}]), "EUR")),
        )
        .await;
    assert_problem(&r, 422, "unknown_product");
    let r = server
        .post(
            "/orders/drafts",
            Some(&staff),
            Some(draft(one.clone(), "euro")),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .post(
            "/orders/drafts",
            Some(&staff),
            Some(draft(one.clone(), "USD")),
        )
        .await;
    assert_problem(&r, 422, "product_not_sold_in_currency");
    let r = server
        .post(
            "/orders/drafts",
            Some(&staff),
            Some(draft(json!([]), "EUR")),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .post(
            "/orders/drafts",
            Some(&staff),
            Some(draft(json!([{"sku": "TEE-RED", "quantity": -2}]), "EUR")),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .post(
            "/orders/drafts",
            Some(&staff),
            Some(draft(
                json!([{"sku": "TEE-RED", "quantity": 1}, {"sku": "TEE-RED", "quantity": 1}]),
                "EUR",
            )),
        )
        .await;
    assert_problem(&r, 422, "order_duplicate_line");
    let mut no_token = draft(one.clone(), "EUR");
    no_token["payment_method_token"] = json!("  ");
    let r = server
        .post("/orders/drafts", Some(&staff), Some(no_token))
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .send(
            Method::POST,
            "/orders/drafts",
            Some(&staff),
            Some(b"{\"customer_id\"".to_vec()),
            &[],
        )
        .await;
    assert_problem(&r, 400, "malformed_json");

    // Ids that name nothing.
    let r = server.get("/orders/not-a-uuid", Some(&staff)).await;
    assert_problem(&r, 400, "invalid_id");
    let r = server
        .get(&format!("/orders/{}", Uuid::now_v7()), Some(&staff))
        .await;
    assert_problem(&r, 404, "not_found");
    let r = server
        .post(
            &format!("/orders/{}/finalise", Uuid::now_v7()),
            Some(&staff),
            None,
        )
        .await;
    assert_problem(&r, 404, "not_found");
}
