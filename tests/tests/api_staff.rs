//! Black-box tests of the staff routes (catalogue, stock, promotions, shipments,
//! payments, settings) over a real TCP port, on SQLite and on PostgreSQL.
//!
//! Payments have no creation route (the payment saga starts them), so the tests that
//! need one set it up through the command layer on the server's store before the server
//! first reads that stream.

use aggregates::payment::{
    AssessFraud, AuthorizePayment, CapturePayment, FraudInputs, InitiatePayment, Payment,
    PaymentCommand,
};
use aggregates::stock::{ReceiveStock, ReserveStock, SetBackorderLimit, Stock, StockCommand};
use aggregates::{CountryCode, Currency, Money, OrderId, PaymentId, Quantity, Sku, WarehouseId};
use infra::command::{CommandContext, Commands};
use infra::Store;
use serde_json::{json, Value};
use tests::api::{assert_command, assert_problem};
use tests::on_both_backends;
use tests::server::{TestResponse, TestServer};
use tests::BackendKind;
use uuid::Uuid;

on_both_backends!(
    catalogue,
    staff_routes_refuse_customers_and_anonymous_callers,
    stock,
    warehouses_restrict_receipts_and_shipments,
    promotions,
    shipments,
    refunds,
    fraud_review_and_chargebacks,
    settings_round_trip,
    retried_creations_name_the_same_stream,
    stock_view_shows_reservations_and_backorders,
);

async fn create_product(server: &TestServer, sku: &str) -> TestResponse {
    let r = server
        .post(
            "/products",
            Some(&server.staff()),
            Some(json!({
                "sku": sku,
                "name": "Red T-shirt",
                "description": "Organic cotton",
                "category": "apparel/t-shirts",
                "brand": "Northwind",
                "attributes": {"colour": "red", "size": "M"},
                "prices": {"EUR": 1999, "USD": 2199}
            })),
        )
        .await;
    assert_command(&r, 201, &format!("product/{sku}"), 1);
    r
}

async fn catalogue(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let staff = server.staff();
    create_product(&server, "TSHIRT-RED-M").await;

    // Public read, no token.
    let r = server.get("/products/TSHIRT-RED-M", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["sku"], "TSHIRT-RED-M");
    assert_eq!(r.body["name"], "Red T-shirt");
    assert_eq!(r.body["description"], "Organic cotton");
    assert_eq!(r.body["brand"], "Northwind");
    assert_eq!(r.body["attributes"]["colour"], "red");
    assert_eq!(r.body["prices"], json!({"EUR": 1999, "USD": 2199}));
    assert_eq!(r.body["discontinued"], false);
    assert!(r.body["product_id"].is_string());

    // The same SKU again is refused and changes nothing.
    let again = server
        .post(
            "/products",
            Some(&staff),
            Some(json!({"sku": "TSHIRT-RED-M", "name": "Other", "prices": {"EUR": 1}})),
        )
        .await;
    assert_problem(&again, 409, "product_already_exists");
    assert_eq!(
        server.get("/products/TSHIRT-RED-M", None).await.body["name"],
        "Red T-shirt"
    );

    // Unknown currency, unknown field, non-positive price: problems, never 500.
    let r = server
        .post(
            "/products",
            Some(&staff),
            Some(json!({"sku": "MUG-1", "name": "Mug", "prices": {"EURO": 100}})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .post(
            "/products",
            Some(&staff),
            Some(json!({"sku": "MUG-1", "name": "Mug", "prices": {"EUR": 100}, "colour": "red"})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .post(
            "/products",
            Some(&staff),
            Some(json!({"sku": "MUG-1", "name": "Mug", "prices": {"EUR": 0}})),
        )
        .await;
    assert_problem(&r, 422, "product_price_not_positive");
    let r = server
        .post(
            "/products",
            Some(&staff),
            Some(json!({"sku": "MUG-1", "name": "x".repeat(201), "prices": {"EUR": 100}})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    assert_problem(&server.get("/products/MUG-1", None).await, 404, "not_found");

    // Details.
    let r = server
        .patch(
            "/products/TSHIRT-RED-M",
            Some(&staff),
            Some(json!({"name": "Red T-shirt (organic)", "attributes": {"size": "M"}})),
        )
        .await;
    assert_command(&r, 200, "product/TSHIRT-RED-M", 2);
    let r = server.get("/products/TSHIRT-RED-M", None).await;
    assert_eq!(r.body["name"], "Red T-shirt (organic)");
    assert_eq!(r.body["attributes"], json!({"size": "M"}));
    // Absent fields keep their values.
    assert_eq!(r.body["brand"], "Northwind");
    assert_eq!(r.body["category"], "apparel/t-shirts");
    assert_eq!(r.body["description"], "Organic cotton");
    assert_eq!(r.body["version"], 2);

    let r = server
        .patch("/products/TSHIRT-RED-M", Some(&staff), Some(json!({})))
        .await;
    assert_problem(&r, 422, "invalid_body");

    // Prices: one currency at a time; the path names the currency.
    let r = server
        .put(
            "/products/TSHIRT-RED-M/prices/GBP",
            Some(&staff),
            Some(json!({"amount": 1799})),
        )
        .await;
    assert_command(&r, 200, "product/TSHIRT-RED-M", 3);
    let r = server.get("/products/TSHIRT-RED-M", None).await;
    assert_eq!(
        r.body["prices"],
        json!({"EUR": 1999, "GBP": 1799, "USD": 2199})
    );
    let r = server
        .put(
            "/products/TSHIRT-RED-M/prices/euro",
            Some(&staff),
            Some(json!({"amount": 1799})),
        )
        .await;
    assert_problem(&r, 422, "invalid_currency");
    let r = server
        .put(
            "/products/NO-SUCH-SKU/prices/EUR",
            Some(&staff),
            Some(json!({"amount": 1799})),
        )
        .await;
    assert_problem(&r, 404, "product_not_found");

    // If-Match: a stale version is refused with the current one.
    let r = server
        .request(
            reqwest::Method::POST,
            "/products/TSHIRT-RED-M/discontinue",
            Some(&staff),
            None,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_problem(&r, 412, "version_mismatch");

    let r = server
        .post("/products/TSHIRT-RED-M/discontinue", Some(&staff), None)
        .await;
    assert_command(&r, 200, "product/TSHIRT-RED-M", 4);
    assert_eq!(
        server.get("/products/TSHIRT-RED-M", None).await.body["discontinued"],
        true
    );
    let r = server
        .put(
            "/products/TSHIRT-RED-M/prices/EUR",
            Some(&staff),
            Some(json!({"amount": 999})),
        )
        .await;
    assert_problem(&r, 409, "product_discontinued");
    assert_eq!(
        server.get("/products/TSHIRT-RED-M", None).await.body["version"],
        4
    );

    // Path ids that cannot name anything.
    assert_problem(
        &server.get("/products/not%20a%20sku", None).await,
        400,
        "invalid_id",
    );
}

async fn staff_routes_refuse_customers_and_anonymous_callers(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let (_, customer) = server.new_customer();
    let staff = server.staff();
    let id = Uuid::now_v7();
    let staff_routes: Vec<(reqwest::Method, String, Option<Value>)> = {
        use reqwest::Method as M;
        let body = Some(json!({}));
        vec![
            (M::POST, "/products".into(), body.clone()),
            (M::PATCH, "/products/SKU-1".into(), body.clone()),
            (M::PUT, "/products/SKU-1/prices/EUR".into(), body.clone()),
            (M::POST, "/products/SKU-1/discontinue".into(), None),
            (M::POST, "/stock/SKU-1/receipts".into(), body.clone()),
            (M::POST, "/stock/SKU-1/adjustments".into(), body.clone()),
            (M::PUT, "/stock/SKU-1/backorder-limit".into(), body.clone()),
            (
                M::PUT,
                "/stock/SKU-1/low-stock-threshold".into(),
                body.clone(),
            ),
            (M::GET, "/stock/SKU-1".into(), None),
            (M::POST, "/promotions".into(), body.clone()),
            (M::POST, "/promotions/SUMMER/deactivate".into(), None),
            (M::GET, "/promotions/SUMMER".into(), None),
            (M::POST, "/shipments".into(), body.clone()),
            (M::GET, format!("/shipments/{id}"), None),
            (M::POST, format!("/shipments/{id}/pick"), None),
            (M::POST, format!("/shipments/{id}/pack"), None),
            (M::POST, format!("/shipments/{id}/label"), body.clone()),
            (M::POST, format!("/shipments/{id}/dispatch"), None),
            (M::POST, format!("/shipments/{id}/tracking"), body.clone()),
            (M::POST, format!("/shipments/{id}/deliver"), None),
            (
                M::POST,
                format!("/shipments/{id}/delivery-failures"),
                body.clone(),
            ),
            (M::POST, format!("/shipments/{id}/return-to-sender"), None),
            (M::GET, format!("/payments/{id}"), None),
            (M::POST, format!("/payments/{id}/refunds"), body.clone()),
            (
                M::POST,
                format!("/payments/{id}/fraud-review"),
                body.clone(),
            ),
            (M::GET, "/settings/tax-rates".into(), None),
            (M::GET, "/settings/loyalty-point-values".into(), None),
            (M::GET, "/settings/warehouses".into(), None),
        ]
    };
    let admin_routes: Vec<(reqwest::Method, String, Option<Value>)> = {
        use reqwest::Method as M;
        vec![
            (M::PUT, "/admin/settings/tax-rates".into(), Some(json!({}))),
            (
                M::PUT,
                "/admin/settings/shipping-methods".into(),
                Some(json!([])),
            ),
            (
                M::PUT,
                "/admin/settings/loyalty-point-values".into(),
                Some(json!({})),
            ),
            (M::PUT, "/admin/settings/warehouses".into(), Some(json!([]))),
            (
                M::POST,
                format!("/payments/{id}/chargebacks"),
                Some(json!({})),
            ),
        ]
    };
    for (method, path, body) in staff_routes.iter().chain(&admin_routes) {
        let r = server
            .request(method.clone(), path, Some(&customer), body.clone(), &[])
            .await;
        assert_problem(&r, 403, "forbidden");
        let r = server
            .request(method.clone(), path, None, body.clone(), &[])
            .await;
        assert_problem(&r, 401, "unauthenticated");
    }
    for (method, path, body) in &admin_routes {
        let r = server
            .request(method.clone(), path, Some(&staff), body.clone(), &[])
            .await;
        assert_problem(&r, 403, "forbidden");
    }
    // Nothing was written by any refused request.
    assert_eq!(server.store.head_position().await.expect("head"), 0);
    // The public reads need no token.
    assert_eq!(
        server.get("/settings/shipping-methods", None).await.status,
        200
    );
    assert_problem(&server.get("/products/SKU-1", None).await, 404, "not_found");
}

async fn stock(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let staff = server.staff();

    // Stock needs a catalogue product.
    let r = server
        .post(
            "/stock/TSHIRT-RED-M/receipts",
            Some(&staff),
            Some(json!({"warehouse": "BER-1", "quantity": 10})),
        )
        .await;
    assert_problem(&r, 422, "unknown_product");
    assert_problem(
        &server.get("/stock/TSHIRT-RED-M", Some(&staff)).await,
        404,
        "not_found",
    );
    create_product(&server, "TSHIRT-RED-M").await;

    // The first receipt begins the stock record: 201; later ones 200.
    let r = server
        .post(
            "/stock/TSHIRT-RED-M/receipts",
            Some(&staff),
            Some(json!({"warehouse": "BER-1", "quantity": 10})),
        )
        .await;
    assert_command(&r, 201, "stock/TSHIRT-RED-M", 1);
    let r = server
        .post(
            "/stock/TSHIRT-RED-M/receipts",
            Some(&staff),
            Some(json!({"warehouse": "HAM-1", "quantity": 5})),
        )
        .await;
    assert_command(&r, 200, "stock/TSHIRT-RED-M", 2);
    let r = server
        .post(
            "/stock/TSHIRT-RED-M/receipts",
            Some(&staff),
            Some(json!({"warehouse": "BER-1", "quantity": 0})),
        )
        .await;
    assert_problem(&r, 422, "stock_quantity_zero");

    let r = server
        .post(
            "/stock/TSHIRT-RED-M/adjustments",
            Some(&staff),
            Some(json!({"warehouse": "BER-1", "delta": -2, "reason": "damaged"})),
        )
        .await;
    assert_command(&r, 200, "stock/TSHIRT-RED-M", 3);
    // A reason that contradicts the sign, and an adjustment in a warehouse without
    // stock, are refused by the domain.
    let r = server
        .post(
            "/stock/TSHIRT-RED-M/adjustments",
            Some(&staff),
            Some(json!({"warehouse": "BER-1", "delta": -1, "reason": "found"})),
        )
        .await;
    assert_problem(&r, 422, "adjustment_reason_contradicts_delta");
    let r = server
        .post(
            "/stock/TSHIRT-RED-M/adjustments",
            Some(&staff),
            Some(json!({"warehouse": "MUC-1", "delta": 1, "reason": "found"})),
        )
        .await;
    assert_problem(&r, 422, "stock_warehouse_unknown");
    let r = server
        .post(
            "/stock/TSHIRT-RED-M/adjustments",
            Some(&staff),
            Some(json!({"warehouse": "BER-1", "delta": 1, "reason": "stolen"})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");

    let r = server
        .put(
            "/stock/TSHIRT-RED-M/backorder-limit",
            Some(&staff),
            Some(json!({"limit": 4})),
        )
        .await;
    assert_command(&r, 200, "stock/TSHIRT-RED-M", 4);
    let r = server
        .put(
            "/stock/TSHIRT-RED-M/low-stock-threshold",
            Some(&staff),
            Some(json!({"threshold": 3})),
        )
        .await;
    assert!(r.status == 200, "{}", r.text);
    let version = r.body["version"].as_i64().expect("version");

    let r = server.get("/stock/TSHIRT-RED-M", Some(&staff)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some(format!("\"{version}\"").as_str()));
    assert_eq!(r.body["sku"], "TSHIRT-RED-M");
    assert_eq!(r.body["on_hand"], 13);
    assert_eq!(r.body["reserved"], 0);
    assert_eq!(r.body["available"], 13);
    assert_eq!(r.body["backorder_limit"], 4);
    assert_eq!(r.body["low_stock_threshold"], 3);
    assert_eq!(
        r.body["warehouses"],
        json!([
            {"warehouse": "BER-1", "on_hand": 8, "reserved": 0, "available": 8},
            {"warehouse": "HAM-1", "on_hand": 5, "reserved": 0, "available": 5},
        ])
    );
    assert_eq!(r.body["reservations"], json!([]));

    // Setting a limit first also begins a stock record: 201.
    create_product(&server, "MUG-1").await;
    let r = server
        .put(
            "/stock/MUG-1/backorder-limit",
            Some(&staff),
            Some(json!({"limit": 2})),
        )
        .await;
    assert_command(&r, 201, "stock/MUG-1", 1);
}

async fn warehouses_restrict_receipts_and_shipments(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let staff = server.staff();
    let admin = server.admin();
    create_product(&server, "TSHIRT-RED-M").await;

    let r = server
        .put(
            "/admin/settings/warehouses",
            Some(&admin),
            Some(json!([
                {"code": "BER-1", "name": "Berlin"},
                {"code": "HAM-1", "name": "Hamburg"}
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server.get("/settings/warehouses", Some(&staff)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[1]["code"], "HAM-1");
    let r = server
        .put(
            "/admin/settings/warehouses",
            Some(&admin),
            Some(json!([
                {"code": "BER-1", "name": "Berlin"},
                {"code": "BER-1", "name": "Berlin again"}
            ])),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");

    let r = server
        .post(
            "/stock/TSHIRT-RED-M/receipts",
            Some(&staff),
            Some(json!({"warehouse": "MUC-1", "quantity": 3})),
        )
        .await;
    assert_problem(&r, 422, "unknown_warehouse");
    assert_problem(
        &server.get("/stock/TSHIRT-RED-M", Some(&staff)).await,
        404,
        "not_found",
    );
    let r = server
        .post(
            "/stock/TSHIRT-RED-M/receipts",
            Some(&staff),
            Some(json!({"warehouse": "HAM-1", "quantity": 3})),
        )
        .await;
    assert_command(&r, 201, "stock/TSHIRT-RED-M", 1);

    let r = server
        .post(
            "/shipments",
            Some(&staff),
            Some(json!({
                "order_id": Uuid::now_v7(),
                "warehouse": "MUC-1",
                "lines": [{"sku": "TSHIRT-RED-M", "quantity": 1}]
            })),
        )
        .await;
    assert_problem(&r, 422, "unknown_warehouse");
}

async fn promotions(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let staff = server.staff();
    let r = server
        .post(
            "/promotions",
            Some(&staff),
            Some(json!({
                "code": " summer10 ",
                "kind": {"type": "percentage", "basis_points": 1000},
                "minimum_subtotal": {"amount": 5000, "currency": "EUR"},
                "starts_at": "2026-06-01T00:00:00Z",
                "ends_at": "2036-09-01T00:00:00Z",
                "usage_limit": 100,
                "per_customer_limit": 1,
                "stackable": true,
                "target": {"categories": ["apparel"], "skus": ["MUG-1"]}
            })),
        )
        .await;
    assert_command(&r, 201, "promotion/SUMMER10", 1);

    let r = server.get("/promotions/Summer10", Some(&staff)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["code"], "SUMMER10");
    assert_eq!(r.body["uses"], 0);
    assert_eq!(r.body["deactivated"], false);
    let terms = &r.body["terms"];
    assert_eq!(
        terms["kind"],
        json!({"type": "percentage", "basis_points": 1000})
    );
    assert_eq!(terms["minimum_subtotal"]["amount"], 5000);
    assert_eq!(terms["usage_limit"], 100);
    assert_eq!(terms["per_customer_limit"], 1);
    assert_eq!(terms["stackable"], true);
    assert_eq!(terms["target"]["categories"], json!(["apparel"]));
    assert_eq!(terms["target"]["skus"], json!(["MUG-1"]));

    // Other terms: tiered, buy-x-get-y, free shipping, fixed amount.
    for (code, kind) in [
        (
            "TIERS",
            json!({"type": "tiered", "tiers": [
                {"threshold": {"amount": 5000, "currency": "EUR"}, "reward": {"type": "percentage", "basis_points": 500}},
                {"threshold": {"amount": 10000, "currency": "EUR"}, "reward": {"type": "fixed_amount", "amount": {"amount": 1500, "currency": "EUR"}}}
            ]}),
        ),
        ("B2G1", json!({"type": "buy_x_get_y", "buy": 2, "get": 1})),
        ("SHIPFREE", json!({"type": "free_shipping"})),
        (
            "FIVEOFF",
            json!({"type": "fixed_amount", "amount": {"amount": 500, "currency": "EUR"}}),
        ),
    ] {
        let r = server
            .post(
                "/promotions",
                Some(&staff),
                Some(json!({"code": code, "kind": kind})),
            )
            .await;
        assert_command(&r, 201, &format!("promotion/{code}"), 1);
        let r = server
            .get(&format!("/promotions/{code}"), Some(&staff))
            .await;
        assert_eq!(r.body["terms"]["kind"], kind);
    }

    // Refusals: the same code, an impossible percentage, an empty window, a bad code.
    let r = server
        .post(
            "/promotions",
            Some(&staff),
            Some(json!({"code": "SUMMER10", "kind": {"type": "free_shipping"}})),
        )
        .await;
    assert_problem(&r, 409, "promotion_already_exists");
    let r = server
        .post(
            "/promotions",
            Some(&staff),
            Some(json!({"code": "HUGE", "kind": {"type": "percentage", "basis_points": 20000}})),
        )
        .await;
    assert_problem(&r, 422, "promotion_percentage_invalid");
    let r = server
        .post(
            "/promotions",
            Some(&staff),
            Some(json!({
                "code": "EMPTY",
                "kind": {"type": "free_shipping"},
                "starts_at": "2026-06-01T00:00:00Z",
                "ends_at": "2026-05-01T00:00:00Z"
            })),
        )
        .await;
    assert_problem(&r, 422, "promotion_validity_empty");
    let r = server
        .post(
            "/promotions",
            Some(&staff),
            Some(json!({"code": "no spaces inside", "kind": {"type": "free_shipping"}})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    assert_problem(
        &server.get("/promotions/HUGE", Some(&staff)).await,
        404,
        "not_found",
    );
    assert_problem(
        &server.get("/promotions/not%20a%20code", Some(&staff)).await,
        400,
        "invalid_id",
    );

    let r = server
        .post("/promotions/summer10/deactivate", Some(&staff), None)
        .await;
    assert_command(&r, 200, "promotion/SUMMER10", 2);
    let r = server.get("/promotions/SUMMER10", Some(&staff)).await;
    assert_eq!(r.body["deactivated"], true);
    assert_eq!(r.body["version"], 2);
    let r = server
        .post("/promotions/NOPE/deactivate", Some(&staff), None)
        .await;
    assert_problem(&r, 404, "promotion_not_found");
}

async fn shipments(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let staff = server.staff();
    let order_id = Uuid::now_v7();
    let create = |key: &'static str| {
        let server = &server;
        let staff = staff.clone();
        async move {
            server
                .post_with_headers(
                    "/shipments",
                    Some(&staff),
                    Some(json!({
                        "order_id": order_id,
                        "warehouse": "BER-1",
                        "lines": [
                            {"sku": "TSHIRT-RED-M", "quantity": 2},
                            {"sku": "MUG-1", "quantity": 1}
                        ]
                    })),
                    &[("idempotency-key", key)],
                )
                .await
        }
    };
    let r = create("ship-1").await;
    assert_eq!(r.status, 201, "{}", r.text);
    let stream = r.body["stream"].as_str().expect("stream").to_string();
    let id = stream.strip_prefix("shipment/").expect("shipment stream");
    assert!(Uuid::try_parse(id).is_ok(), "{stream}");
    assert_command(&r, 201, &stream, 1);
    // The same key names the same shipment.
    let again = create("ship-1").await;
    assert_eq!(again.body["stream"], stream.as_str(), "{}", again.text);
    assert_eq!(again.body["version"], 1);

    let r = server.get(&format!("/shipments/{id}"), Some(&staff)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["status"], "AwaitingPick");
    assert_eq!(r.body["order_id"], order_id.to_string());
    assert_eq!(r.body["warehouse"], "BER-1");
    assert_eq!(r.body["lines"][0]["sku"], "TSHIRT-RED-M");
    assert_eq!(r.body["lines"][0]["quantity"], 2);

    // Out of order: a shipment not yet picked cannot be packed.
    let r = server
        .post(&format!("/shipments/{id}/pack"), Some(&staff), None)
        .await;
    assert_problem(&r, 409, "shipment_not_picked");

    let steps: Vec<(&str, Option<Value>, &str)> = vec![
        ("pick", None, "Picked"),
        ("pack", None, "Packed"),
        (
            "label",
            Some(
                json!({"carrier": "dhl", "tracking_number": "JD0001", "label_reference": "labels/1.pdf"}),
            ),
            "Labelled",
        ),
        ("dispatch", None, "Dispatched"),
        (
            "tracking",
            Some(json!({"status": "in_transit", "location": "Leipzig hub"})),
            "InTransit",
        ),
        (
            "delivery-failures",
            Some(json!({"reason": "recipient_absent"})),
            "DeliveryFailed",
        ),
        ("return-to-sender", None, "ReturnedToSender"),
    ];
    let mut version = 1;
    for (step, body, status) in steps {
        let r = server
            .post(&format!("/shipments/{id}/{step}"), Some(&staff), body)
            .await;
        version += 1;
        assert_command(&r, 200, &stream, version);
        let r = server.get(&format!("/shipments/{id}"), Some(&staff)).await;
        assert_eq!(r.body["status"], status, "after {step}: {}", r.text);
    }
    let r = server.get(&format!("/shipments/{id}"), Some(&staff)).await;
    assert_eq!(r.body["carrier_code"], "dhl");
    assert_eq!(r.body["tracking_number"], "JD0001");
    assert_eq!(r.body["failed_attempts"], 1);

    // A second parcel is delivered.
    let r = server
        .post(
            "/shipments",
            Some(&staff),
            Some(json!({
                "order_id": order_id,
                "warehouse": "BER-1",
                "lines": [{"sku": "MUG-1", "quantity": 1}]
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let second = r.body["stream"]
        .as_str()
        .and_then(|s| s.strip_prefix("shipment/"))
        .expect("shipment stream")
        .to_string();
    for (step, body) in [
        ("pick", None),
        ("pack", None),
        (
            "label",
            Some(json!({"carrier": "ups", "tracking_number": "1Z999"})),
        ),
        ("dispatch", None),
        (
            "tracking",
            Some(json!({"status": "out_for_delivery", "location": "Berlin"})),
        ),
        ("deliver", None),
    ] {
        let r = server
            .post(&format!("/shipments/{second}/{step}"), Some(&staff), body)
            .await;
        assert_eq!(r.status, 200, "{step}: {}", r.text);
    }
    let r = server
        .get(&format!("/shipments/{second}"), Some(&staff))
        .await;
    assert_eq!(r.body["status"], "Delivered");

    // Errors: bad bodies, unknown and malformed ids.
    let r = server
        .post(
            "/shipments",
            Some(&staff),
            Some(json!({"order_id": order_id, "warehouse": "BER-1", "lines": []})),
        )
        .await;
    assert_problem(&r, 422, "shipment_no_lines");
    let r = server
        .post(
            &format!("/shipments/{second}/tracking"),
            Some(&staff),
            Some(json!({"status": "lost_in_space"})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    let missing = Uuid::now_v7();
    assert_problem(
        &server
            .get(&format!("/shipments/{missing}"), Some(&staff))
            .await,
        404,
        "not_found",
    );
    assert_problem(
        &server
            .post(&format!("/shipments/{missing}/pick"), Some(&staff), None)
            .await,
        404,
        "shipment_not_found",
    );
    assert_problem(
        &server.get("/shipments/not-a-uuid", Some(&staff)).await,
        400,
        "invalid_id",
    );
}

/// Facts that score zero under the default fraud policy.
fn clean_inputs() -> FraudInputs {
    FraudInputs {
        customer_orders_last_24h: 0,
        billing_country: CountryCode::parse("DE").expect("country"),
        shipping_country: CountryCode::parse("DE").expect("country"),
        first_order: false,
        email: "ada@example.com".into(),
        failed_attempts: 0,
    }
}

/// Facts that land in the default policy's review band (disposable e-mail and a burst
/// of orders: 40 points).
fn suspicious_inputs() -> FraudInputs {
    FraudInputs {
        customer_orders_last_24h: 5,
        email: "someone@mailinator.com".into(),
        ..clean_inputs()
    }
}

/// A payment of `amount` EUR cents, scored with `inputs`; authorized for the whole
/// amount and `captured` captured when the score passes and `captured` is given.
async fn payment(
    store: &Store,
    amount: i64,
    inputs: FraudInputs,
    captured: Option<i64>,
) -> PaymentId {
    let commands = Commands::new(store.clone());
    let id = PaymentId::from_uuid(Uuid::now_v7());
    let eur = |a| Money::new(a, Currency::EUR);
    let at = store.clock().now();
    let mut steps = vec![
        PaymentCommand::InitiatePayment(InitiatePayment {
            payment_id: id,
            order_id: OrderId::from_uuid(Uuid::now_v7()),
            amount: eur(amount),
            method_token: "pm_test".into(),
            provider: "stripe".into(),
            at,
        }),
        PaymentCommand::AssessFraud(AssessFraud {
            inputs,
            policy: None,
            at,
        }),
    ];
    if let Some(captured) = captured {
        steps.push(PaymentCommand::AuthorizePayment(AuthorizePayment {
            provider_reference: "psp_1".into(),
            amount: eur(amount),
            at,
        }));
        steps.push(PaymentCommand::CapturePayment(CapturePayment {
            amount: eur(captured),
            at,
        }));
    }
    for step in steps {
        commands
            .execute::<Payment>(&CommandContext::new("test:setup"), &id.to_string(), step)
            .await
            .expect("payment set-up step");
    }
    id
}

async fn refunds(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let staff = server.staff();
    let id = payment(&server.store, 5_000, clean_inputs(), Some(3_000)).await;
    let stream = format!("payment/{id}");

    let r = server.get(&format!("/payments/{id}"), Some(&staff)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"4\""));
    assert_eq!(r.body["status"], "authorized");
    assert_eq!(r.body["amount"], json!({"amount": 5000, "currency": "EUR"}));
    assert_eq!(r.body["captured"]["amount"], 3000);
    assert_eq!(r.body["refunded"]["amount"], 0);

    // More than was captured: refused, nothing recorded.
    let r = server
        .post(
            &format!("/payments/{id}/refunds"),
            Some(&staff),
            Some(json!({"amount": 3001, "currency": "EUR"})),
        )
        .await;
    assert_problem(&r, 422, "refund_exceeds_captured");
    assert!(
        r.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("3000")),
        "{}",
        r.text
    );
    // Another currency than the payment's: refused.
    let r = server
        .post(
            &format!("/payments/{id}/refunds"),
            Some(&staff),
            Some(json!({"amount": 100, "currency": "USD"})),
        )
        .await;
    assert_problem(&r, 422, "payment_amount_invalid");

    let refund = |key: &'static str| {
        let server = &server;
        let staff = staff.clone();
        async move {
            server
                .post_with_headers(
                    &format!("/payments/{id}/refunds"),
                    Some(&staff),
                    Some(
                        json!({"amount": 1000, "currency": "EUR", "reason": "damaged in transit"}),
                    ),
                    &[("idempotency-key", key)],
                )
                .await
        }
    };
    let r = refund("refund-1").await;
    assert_command(&r, 200, &stream, 5);
    // A retry with the same key refunds once.
    let r = refund("refund-1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["version"], 5);
    let r = server.get(&format!("/payments/{id}"), Some(&staff)).await;
    assert_eq!(r.body["refunded"]["amount"], 1000);
    assert_eq!(r.body["refund_ids"].as_array().map(Vec::len), Some(1));
    // The reason is kept on the event for the audit trail.
    let events = server
        .store
        .read_stream(&infra::StreamRef::new("payment", id.to_string()), 4)
        .await
        .expect("read the payment stream");
    let metadata = events[0].metadata().expect("event metadata");
    assert_eq!(
        metadata.get("refund_reason").map(String::as_str),
        Some("damaged in transit")
    );

    // What is left: 2000.
    let r = server
        .post(
            &format!("/payments/{id}/refunds"),
            Some(&staff),
            Some(json!({"amount": 2001, "currency": "EUR"})),
        )
        .await;
    assert_problem(&r, 422, "refund_exceeds_captured");
    let r = server
        .post(
            &format!("/payments/{id}/refunds"),
            Some(&staff),
            Some(json!({"amount": 2000, "currency": "EUR"})),
        )
        .await;
    assert_command(&r, 200, &stream, 6);

    let missing = Uuid::now_v7();
    assert_problem(
        &server
            .post(
                &format!("/payments/{missing}/refunds"),
                Some(&staff),
                Some(json!({"amount": 1, "currency": "EUR"})),
            )
            .await,
        404,
        "payment_not_found",
    );
    assert_problem(
        &server
            .get(&format!("/payments/{missing}"), Some(&staff))
            .await,
        404,
        "not_found",
    );
    assert_problem(
        &server.get("/payments/12345", Some(&staff)).await,
        400,
        "invalid_id",
    );
}

async fn fraud_review_and_chargebacks(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let staff = server.staff();
    let admin = server.admin();

    let held = payment(&server.store, 5_000, suspicious_inputs(), None).await;
    let r = server.get(&format!("/payments/{held}"), Some(&staff)).await;
    assert_eq!(r.body["status"], "in_fraud_review", "{}", r.text);
    let r = server
        .post(
            &format!("/payments/{held}/fraud-review"),
            Some(&staff),
            Some(json!({"approve": true, "note": "known customer"})),
        )
        .await;
    assert_command(&r, 200, &format!("payment/{held}"), 3);
    let r = server.get(&format!("/payments/{held}"), Some(&staff)).await;
    assert_eq!(r.body["status"], "awaiting_authorization", "{}", r.text);
    // Decided already: a second decision is refused.
    let r = server
        .post(
            &format!("/payments/{held}/fraud-review"),
            Some(&staff),
            Some(json!({"approve": false})),
        )
        .await;
    assert_problem(&r, 409, "no_fraud_review_pending");

    let rejected = payment(&server.store, 5_000, suspicious_inputs(), None).await;
    let r = server
        .post(
            &format!("/payments/{rejected}/fraud-review"),
            Some(&staff),
            Some(json!({"approve": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server
        .get(&format!("/payments/{rejected}"), Some(&staff))
        .await;
    assert_eq!(r.body["status"], "fraud_rejected", "{}", r.text);

    // Chargebacks (admin): at most what is still held.
    let paid = payment(&server.store, 5_000, clean_inputs(), Some(5_000)).await;
    let chargeback = |amount: i64| json!({"reference": "dispute-1", "amount": amount, "currency": "EUR", "reason_code": "fraudulent"});
    let r = server
        .post(
            &format!("/payments/{paid}/chargebacks"),
            Some(&admin),
            Some(chargeback(6_000)),
        )
        .await;
    assert_problem(&r, 422, "chargeback_exceeds_captured");
    let r = server
        .post(
            &format!("/payments/{paid}/chargebacks"),
            Some(&admin),
            Some(chargeback(5_000)),
        )
        .await;
    assert_command(&r, 200, &format!("payment/{paid}"), 5);
    let r = server.get(&format!("/payments/{paid}"), Some(&staff)).await;
    assert_eq!(r.body["charged_back"]["amount"], 5000);
}

async fn settings_round_trip(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let admin = server.admin();
    let staff = server.staff();

    // Empty before anything is set.
    assert_eq!(
        server.get("/settings/tax-rates", Some(&staff)).await.body,
        json!({})
    );
    assert_eq!(
        server.get("/settings/shipping-methods", None).await.body,
        json!([])
    );

    let rates = json!({"DE": 1900, "US-CA": 725, "GB": 0});
    let r = server
        .put(
            "/admin/settings/tax-rates",
            Some(&admin),
            Some(rates.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, rates);
    assert_eq!(
        server.get("/settings/tax-rates", Some(&staff)).await.body,
        rates
    );
    for bad in [
        json!({"DE": 10001}),
        json!({"de": 1900}),
        json!({"DEU": 1900}),
        json!({"US-": 725}),
        json!({"DE": -1}),
    ] {
        let r = server
            .put("/admin/settings/tax-rates", Some(&admin), Some(bad.clone()))
            .await;
        assert_problem(&r, 422, "invalid_body");
    }
    assert_eq!(
        server.get("/settings/tax-rates", Some(&staff)).await.body,
        rates
    );

    let methods = json!([
        {"code": "standard", "name": "Standard (3-5 days)", "prices": {"EUR": 499, "USD": 599}},
        {"code": "express", "name": "Express", "prices": {"EUR": 1299}}
    ]);
    let r = server
        .put(
            "/admin/settings/shipping-methods",
            Some(&admin),
            Some(methods.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        server.get("/settings/shipping-methods", None).await.body,
        methods
    );
    for bad in [
        json!([{"code": "", "name": "Nothing", "prices": {"EUR": 1}}]),
        json!([{"code": "free", "name": "Free", "prices": {"EUR": 0}}]),
        json!([{"code": "std", "name": "Standard", "prices": {}}]),
        json!([{"code": "std", "name": "Standard", "prices": {"EURO": 1}}]),
        json!([
            {"code": "std", "name": "A", "prices": {"EUR": 1}},
            {"code": "std", "name": "B", "prices": {"EUR": 2}}
        ]),
    ] {
        let r = server
            .put(
                "/admin/settings/shipping-methods",
                Some(&admin),
                Some(bad.clone()),
            )
            .await;
        assert_problem(&r, 422, "invalid_body");
    }
    assert_eq!(
        server.get("/settings/shipping-methods", None).await.body,
        methods
    );

    let values = json!({"EUR": 1, "USD": 2});
    let r = server
        .put(
            "/admin/settings/loyalty-point-values",
            Some(&admin),
            Some(values.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        server
            .get("/settings/loyalty-point-values", Some(&staff))
            .await
            .body,
        values
    );
    let r = server
        .put(
            "/admin/settings/loyalty-point-values",
            Some(&admin),
            Some(json!({"EUR": 0})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");

    // The command layer reads what the routes wrote.
    let commands = Commands::new(server.store.clone());
    let express = commands
        .shipping_method("express", Currency::EUR)
        .await
        .expect("express is priced in EUR");
    assert_eq!(express.price, Money::new(1299, Currency::EUR));
    assert_eq!(
        commands
            .points_value(100, Currency::USD)
            .await
            .expect("USD points"),
        Money::new(200, Currency::USD)
    );
    assert_eq!(
        commands.tax_rates().await.expect("tax rates").get("US-CA"),
        Some(&725)
    );
}

async fn retried_creations_name_the_same_stream(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let staff = server.staff();
    let product = json!({"sku": "MUG-1", "name": "Mug", "prices": {"EUR": 900}});
    let first = server
        .post_with_headers(
            "/products",
            Some(&staff),
            Some(product.clone()),
            &[("idempotency-key", "create-mug")],
        )
        .await;
    assert_command(&first, 201, "product/MUG-1", 1);
    let again = server
        .post_with_headers(
            "/products",
            Some(&staff),
            Some(product),
            &[("idempotency-key", "create-mug")],
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.text, first.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let created = server.get("/products/MUG-1", None).await;
    assert_eq!(created.body["version"], 1);

    // The same key with another body is refused and creates nothing.
    let promotion = json!({"code": "WELCOME", "kind": {"type": "free_shipping"}});
    let first = server
        .post_with_headers(
            "/promotions",
            Some(&staff),
            Some(promotion.clone()),
            &[("idempotency-key", "create-welcome")],
        )
        .await;
    assert_command(&first, 201, "promotion/WELCOME", 1);
    let other_body = server
        .post_with_headers(
            "/promotions",
            Some(&staff),
            Some(json!({"code": "WELCOME2", "kind": {"type": "free_shipping"}})),
            &[("idempotency-key", "create-welcome")],
        )
        .await;
    assert_problem(&other_body, 422, "idempotency_key_reused");
    let r = server.get("/promotions/WELCOME", Some(&staff)).await;
    let promotion_id = r.body["terms"]["promotion_id"].clone();
    assert!(promotion_id.is_string(), "{}", r.text);
    assert_problem(
        &server.get("/promotions/WELCOME2", Some(&staff)).await,
        404,
        "not_found",
    );
}

async fn stock_view_shows_reservations_and_backorders(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let staff = server.staff();
    create_product(&server, "LAMP-1").await;
    // Reservations come from the order saga: set them up through the command layer,
    // before the server first reads the stock stream.
    let commands = Commands::new(server.store.clone());
    let sku = Sku::parse("LAMP-1").expect("sku");
    let at = server.store.clock().now();
    let order = OrderId::from_uuid(Uuid::now_v7());
    let expires_at = at + chrono::Duration::minutes(15);
    for step in [
        StockCommand::ReceiveStock(ReceiveStock {
            sku: sku.clone(),
            warehouse: WarehouseId::new("BER-1"),
            quantity: Quantity::new(3),
            at,
        }),
        StockCommand::SetBackorderLimit(SetBackorderLimit {
            sku: sku.clone(),
            limit: Quantity::new(5),
            at,
        }),
        StockCommand::ReserveStock(ReserveStock {
            order_id: order,
            quantity: Quantity::new(5),
            preferred_warehouses: vec![],
            expires_at,
            at,
        }),
    ] {
        commands
            .execute::<Stock>(&CommandContext::new("test:setup"), sku.as_str(), step)
            .await
            .expect("stock set-up step");
    }

    let r = server.get("/stock/LAMP-1", Some(&staff)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["on_hand"], 3);
    assert_eq!(r.body["reserved"], 3);
    assert_eq!(r.body["backordered"], 2);
    assert_eq!(r.body["available"], -2);
    assert_eq!(r.body["backorder_limit"], 5);
    let reservations = r.body["reservations"].as_array().expect("reservations");
    assert_eq!(reservations.len(), 1, "{}", r.text);
    assert_eq!(reservations[0]["order_id"], order.to_string());
    assert_eq!(reservations[0]["quantity"], 5);
    assert_eq!(reservations[0]["allocation"], json!({"BER-1": 3}));
    assert_eq!(reservations[0]["backordered"], 2);

    // A backorder limit below what is owed is refused by the domain.
    let r = server
        .put(
            "/stock/LAMP-1/backorder-limit",
            Some(&staff),
            Some(json!({"limit": 1})),
        )
        .await;
    assert_problem(&r, 422, "backorder_limit_below_outstanding");
    assert_eq!(
        server.get("/stock/LAMP-1", Some(&staff)).await.body["backorder_limit"],
        5
    );
}

/// Every staff route is in the OpenAPI document with its roles; the public reads
/// need no credentials.
#[tokio::test]
async fn staff_routes_are_documented() {
    let Some(server) = TestServer::start(BackendKind::Sqlite).await else {
        return;
    };
    let doc = server.get("/openapi.json", None).await.body;
    let staff_only = [
        ("/products", "post"),
        ("/products/{sku}", "patch"),
        ("/products/{sku}/prices/{currency}", "put"),
        ("/products/{sku}/discontinue", "post"),
        ("/stock/{sku}/receipts", "post"),
        ("/stock/{sku}/adjustments", "post"),
        ("/stock/{sku}/backorder-limit", "put"),
        ("/stock/{sku}/low-stock-threshold", "put"),
        ("/stock/{sku}", "get"),
        ("/promotions", "post"),
        ("/promotions/{code}/deactivate", "post"),
        ("/promotions/{code}", "get"),
        ("/shipments", "post"),
        ("/shipments/{shipment_id}", "get"),
        ("/shipments/{shipment_id}/pick", "post"),
        ("/shipments/{shipment_id}/pack", "post"),
        ("/shipments/{shipment_id}/label", "post"),
        ("/shipments/{shipment_id}/dispatch", "post"),
        ("/shipments/{shipment_id}/tracking", "post"),
        ("/shipments/{shipment_id}/deliver", "post"),
        ("/shipments/{shipment_id}/delivery-failures", "post"),
        ("/shipments/{shipment_id}/return-to-sender", "post"),
        ("/payments/{payment_id}", "get"),
        ("/payments/{payment_id}/refunds", "post"),
        ("/payments/{payment_id}/fraud-review", "post"),
        ("/settings/tax-rates", "get"),
        ("/settings/loyalty-point-values", "get"),
        ("/settings/warehouses", "get"),
    ];
    for (path, method) in staff_only {
        let op = &doc["paths"][path][method];
        assert_eq!(op["x-roles"], json!(["staff", "admin"]), "{method} {path}");
    }
    let admin_only = [
        ("/payments/{payment_id}/chargebacks", "post"),
        ("/admin/settings/tax-rates", "put"),
        ("/admin/settings/shipping-methods", "put"),
        ("/admin/settings/loyalty-point-values", "put"),
        ("/admin/settings/warehouses", "put"),
    ];
    for (path, method) in admin_only {
        let op = &doc["paths"][path][method];
        assert_eq!(op["x-roles"], json!(["admin"]), "{method} {path}");
    }
    for (path, method) in [
        ("/products/{sku}", "get"),
        ("/settings/shipping-methods", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(op["security"], json!([]), "{method} {path}");
    }
    let receipt = &doc["paths"]["/stock/{sku}/receipts"]["post"]["responses"];
    assert!(receipt["201"].is_object() && receipt["200"].is_object());
    assert!(
        receipt["422"]["x-problem-codes"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("unknown_warehouse"))),
        "{receipt}"
    );
}
