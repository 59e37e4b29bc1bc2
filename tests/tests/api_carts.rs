//! Black-box tests of the cart and loyalty routes over a real TCP port, on SQLite and on
//! PostgreSQL.
//!
//! The shop the tests need (products, a coupon, tax rates, shipping methods, point
//! values) is set up through the server's own command layer before any request, so the
//! tests do not depend on the staff routes.

use std::sync::Arc;

use aggregates::product::{CreateProduct, Product, ProductCommand};
use aggregates::promotion::{
    CreatePromotion, DiscountKind, Promotion, PromotionCommand, PromotionTarget,
};
use aggregates::{Currency, Money, ProductId, PromotionId, Sku};
use chrono::Duration;
use infra::clock::SystemClock;
use infra::command::facts::{setting, write_setting};
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
    cart_journey,
    other_customers_carts_are_not_found,
    bad_requests_leave_the_cart_unchanged,
    stale_if_match_is_refused,
    opening_carts_for_whom,
    loyalty_accounts,
);

/// A server over a fresh store with two products, the coupon `SAVE10` (10 % off), a
/// 19 % German tax rate, a `standard` shipping method at 5.00 EUR and points worth one
/// cent each.
async fn shop(kind: BackendKind) -> Option<TestServer> {
    let store = tests::fresh_store(kind, StoreConfig::default(), Arc::new(SystemClock)).await?;
    let mut commands = None;
    let server = TestServer::serve(store, |state| {
        commands = Some(state.commands.clone());
        state
    })
    .await;
    let commands: Commands = commands.expect("the server's command layer");
    let now = server.store.clock().now();
    let ctx = CommandContext::new("test:setup");
    for (sku, name, category, eur) in [
        ("TEE-RED", "Red tee", "apparel/t-shirts", 2_000),
        ("MUG-BLUE", "Blue mug", "home/kitchen", 1_250),
    ] {
        let command = ProductCommand::CreateProduct(CreateProduct {
            product_id: ProductId::from_uuid(Uuid::now_v7()),
            sku: Sku::parse(sku).expect("sku"),
            name: name.into(),
            description: String::new(),
            category: category.into(),
            brand: "Northwind".into(),
            attributes: Default::default(),
            prices: [(Currency::EUR, Money::new(eur, Currency::EUR))].into(),
            at: now,
        });
        commands
            .execute::<Product>(&ctx, sku, command)
            .await
            .expect("create product");
    }
    let coupon = PromotionCommand::CreatePromotion(CreatePromotion {
        promotion_id: PromotionId::from_uuid(Uuid::now_v7()),
        code: "SAVE10".into(),
        kind: DiscountKind::Percentage {
            basis_points: 1_000,
        },
        minimum_subtotal: None,
        starts_at: now - Duration::days(1),
        ends_at: None,
        usage_limit: None,
        per_customer_limit: None,
        stackable: true,
        target: PromotionTarget::default(),
        at: now,
    });
    commands
        .execute::<Promotion>(&ctx, "SAVE10", coupon)
        .await
        .expect("create coupon");
    tests::api::write_shop_settings(&server.store).await;
    write_setting(
        &server.store,
        setting::POINT_VALUES,
        &json!({"EUR": {"amount": 1, "currency": "EUR"}}),
    )
    .await
    .expect("point values");
    Some(server)
}

fn address() -> Value {
    json!({
        "name": "Ada Lovelace",
        "line1": "Unter den Linden 1",
        "city": "Berlin",
        "postal_code": "10117",
        "region": "BE",
        "country": "DE"
    })
}

/// Opens a EUR cart for the holder of `token`; answers the cart id.
async fn open_cart(server: &TestServer, token: &str) -> String {
    let r = server
        .post("/carts", Some(token), Some(json!({"currency": "EUR"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let stream = r.body["stream"].as_str().expect("stream").to_string();
    let id = stream
        .strip_prefix("cart/")
        .expect("a cart stream")
        .to_string();
    assert_command(&r, 201, &stream, 1);
    id
}

async fn cart_version(server: &TestServer, token: &str, cart: &str) -> i64 {
    let r = server.get(&format!("/carts/{cart}"), Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["version"].as_i64().expect("version")
}

async fn cart_journey(kind: BackendKind) {
    let Some(server) = shop(kind).await else {
        return;
    };
    let (customer, token) = server.new_customer();
    let tok = Some(token.as_str());
    let cart = open_cart(&server, &token).await;
    let stream = format!("cart/{cart}");
    let base = format!("/carts/{cart}");

    let r = server
        .post(
            &format!("{base}/items"),
            tok,
            Some(json!({"sku": "TEE-RED", "quantity": 1})),
        )
        .await;
    assert_command(&r, 200, &stream, 2);
    let r = server
        .post(
            &format!("{base}/items"),
            tok,
            Some(json!({"sku": "MUG-BLUE", "quantity": 2})),
        )
        .await;
    assert_command(&r, 200, &stream, 3);
    let r = server
        .put(
            &format!("{base}/items/MUG-BLUE"),
            tok,
            Some(json!({"quantity": 3})),
        )
        .await;
    assert_command(&r, 200, &stream, 4);
    let r = server
        .post(
            &format!("{base}/coupons"),
            tok,
            Some(json!({"code": " save10 "})),
        )
        .await;
    assert_command(&r, 200, &stream, 5);
    let r = server
        .put(
            &format!("{base}/shipping-address"),
            tok,
            Some(json!({"address": address()})),
        )
        .await;
    assert_command(&r, 200, &stream, 6);
    let r = server
        .put(
            &format!("{base}/shipping-method"),
            tok,
            Some(json!({"code": "standard"})),
        )
        .await;
    assert_command(&r, 200, &stream, 7);
    // Points need an account holding them: enrol, get a campaign bonus, redeem part.
    let r = server
        .post("/loyalty/account", tok, Some(json!({"currency": "EUR"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = server
        .post(
            &format!("/loyalty/accounts/{customer}/bonus"),
            Some(&server.staff()),
            Some(json!({"campaign_id": Uuid::now_v7().to_string(), "points": 500})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server
        .put(
            &format!("{base}/loyalty-points"),
            tok,
            Some(json!({"points": 501})),
        )
        .await;
    assert_problem(&r, 409, "insufficient_points");
    let r = server
        .put(
            &format!("{base}/loyalty-points"),
            tok,
            Some(json!({"points": 300})),
        )
        .await;
    assert_command(&r, 200, &stream, 8);

    let r = server.get(&base, tok).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"8\""));
    let cart_body = &r.body;
    assert_eq!(cart_body["cart_id"], cart.as_str());
    assert_eq!(cart_body["customer_id"], customer.to_string());
    assert_eq!(cart_body["currency"], "EUR");
    assert_eq!(cart_body["status"], json!({"state": "open"}));
    assert_eq!(cart_body["version"], 8);
    let lines = cart_body["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["sku"], "TEE-RED");
    assert_eq!(lines[0]["product_name"], "Red tee");
    assert_eq!(lines[1]["sku"], "MUG-BLUE");
    assert_eq!(lines[1]["quantity"], 3);
    assert_eq!(lines[1]["line_total"]["amount"], 3_750);
    assert_eq!(cart_body["coupons"][0]["code"], "SAVE10");
    assert_eq!(cart_body["coupons"][0]["item_discount"]["amount"], 575);
    assert_eq!(cart_body["shipping_address"]["city"], "Berlin");
    assert_eq!(cart_body["shipping_method"]["code"], "standard");
    assert_eq!(cart_body["loyalty_points"]["points"], 300);
    // 5750 - 575 + 500 shipping = 5675 taxable; 19 % = 1078.25 -> 1078; less 300 points.
    let totals = &cart_body["totals"];
    assert_eq!(totals["subtotal"]["amount"], 5_750, "{totals}");
    assert_eq!(totals["item_discount"]["amount"], 575);
    assert_eq!(totals["shipping_total"]["amount"], 500);
    assert_eq!(totals["tax_rate_basis_points"], 1_900);
    assert_eq!(totals["tax"]["amount"], 1_078);
    assert_eq!(totals["loyalty_value"]["amount"], 300);
    assert_eq!(totals["grand_total"]["amount"], 6_453);
    assert!(cart_body["totals_problem"].is_null());

    // Clearing the points needs no point value and brings the total back up.
    let r = server
        .put(
            &format!("{base}/loyalty-points"),
            tok,
            Some(json!({"points": 0})),
        )
        .await;
    assert_command(&r, 200, &stream, 9);
    // A coupon and a line can go and come back.
    let r = server.delete(&format!("{base}/coupons/save10"), tok).await;
    assert_command(&r, 200, &stream, 10);
    let r = server.delete(&format!("{base}/items/TEE-RED"), tok).await;
    assert_command(&r, 200, &stream, 11);
    let r = server.get(&base, tok).await;
    assert_eq!(r.body["coupons"], json!([]), "{}", r.text);
    assert_eq!(r.body["lines"].as_array().map(Vec::len), Some(1));
    assert!(r.body["loyalty_points"].is_null() || r.body["loyalty_points"]["points"] == 0);
    // 3750 + 500 = 4250; 19 % = 807.5 -> 808 (half to even).
    assert_eq!(
        r.body["totals"]["grand_total"]["amount"], 5_058,
        "{}",
        r.text
    );

    let r = server
        .post(
            &format!("{base}/checkout"),
            tok,
            Some(json!({"payment_method_token": "tok_visa"})),
        )
        .await;
    assert_command(&r, 200, &stream, 12);
    let order_id = r.body["order_id"].as_str().expect("order id").to_string();
    let expected = CommandContext::derived_id("checkout", &cart);
    assert_eq!(order_id, expected.to_string());

    let r = server.get(&base, tok).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"12\""));
    assert_eq!(
        r.body["status"],
        json!({"state": "checked_out", "order_id": order_id})
    );

    // A checked-out cart refuses more items.
    let r = server
        .post(
            &format!("{base}/items"),
            tok,
            Some(json!({"sku": "TEE-RED", "quantity": 1})),
        )
        .await;
    assert_problem(&r, 409, "cart_already_checked_out");
    assert_eq!(cart_version(&server, &token, &cart).await, 12);
}

async fn other_customers_carts_are_not_found(kind: BackendKind) {
    let Some(server) = shop(kind).await else {
        return;
    };
    let (_, owner) = server.new_customer();
    let (_, intruder) = server.new_customer();
    let cart = open_cart(&server, &owner).await;
    let r = server
        .post(
            &format!("/carts/{cart}/items"),
            Some(&owner),
            Some(json!({"sku": "TEE-RED", "quantity": 1})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let missing = Uuid::now_v7().to_string();

    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "", None),
        (
            Method::POST,
            "/items",
            Some(json!({"sku": "TEE-RED", "quantity": 1})),
        ),
        (Method::PUT, "/items/TEE-RED", Some(json!({"quantity": 2}))),
        (Method::DELETE, "/items/TEE-RED", None),
        (Method::POST, "/coupons", Some(json!({"code": "SAVE10"}))),
        (Method::DELETE, "/coupons/SAVE10", None),
        (
            Method::PUT,
            "/shipping-address",
            Some(json!({"address": address()})),
        ),
        (
            Method::PUT,
            "/shipping-method",
            Some(json!({"code": "standard"})),
        ),
        (Method::PUT, "/loyalty-points", Some(json!({"points": 10}))),
        (Method::POST, "/checkout", None),
    ];
    for (method, suffix, body) in routes {
        let foreign = server
            .request(
                method.clone(),
                &format!("/carts/{cart}{suffix}"),
                Some(&intruder),
                body.clone(),
                &[],
            )
            .await;
        assert_problem(&foreign, 404, "not_found");
        let absent = server
            .request(
                method.clone(),
                &format!("/carts/{missing}{suffix}"),
                Some(&intruder),
                body,
                &[],
            )
            .await;
        assert_problem(&absent, 404, "not_found");
        assert_eq!(
            normalised(&foreign.body, &cart),
            normalised(&absent.body, &missing),
            "{method} {suffix}"
        );
    }
    // Nothing the intruder sent reached the cart.
    assert_eq!(cart_version(&server, &owner, &cart).await, 2);
    // Staff reach any cart.
    let r = server
        .get(&format!("/carts/{cart}"), Some(&server.staff()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn bad_requests_leave_the_cart_unchanged(kind: BackendKind) {
    let Some(server) = shop(kind).await else {
        return;
    };
    let (_, token) = server.new_customer();
    let tok = Some(token.as_str());
    let cart = open_cart(&server, &token).await;
    let items = format!("/carts/{cart}/items");

    let r = server
        .send(Method::POST, &items, tok, Some(b"{\"sku\": ".to_vec()), &[])
        .await;
    assert_problem(&r, 400, "malformed_json");
    let r = server
        .post(
            &items,
            tok,
            Some(json!({"sku": "TEE-RED", "quantity": 1, "price": 1})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .post(&items, tok, Some(json!({"sku": "TEE-RED", "quantity": -1})))
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .post(&items, tok, Some(json!({"sku": "TEE-RED", "quantity": 0})))
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .post(
            &items,
            tok,
            Some(json!({"sku": "TEE-RED", "quantity": 100})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .post(&items, tok, Some(json!({"sku": "bad sku", "quantity": 1})))
        .await;
    assert_problem(&r, 422, "invalid_body");
    // An unknown SKU is an unknown reference, never a server error.
    let r = server
        .post(
            &items,
            tok,
            Some(json!({"sku": "NO-SUCH-SKU", "quantity": 1})),
        )
        .await;
    assert_problem(&r, 422, "unknown_product");
    assert!(r.body["detail"]
        .as_str()
        .is_some_and(|d| d.contains("NO-SUCH-SKU")));
    let r = server
        .post(
            &format!("/carts/{cart}/coupons"),
            tok,
            Some(json!({"code": "NOPE"})),
        )
        .await;
    assert_problem(&r, 422, "unknown_coupon");
    let r = server
        .put(
            &format!("/carts/{cart}/shipping-method"),
            tok,
            Some(json!({"code": "teleport"})),
        )
        .await;
    assert_problem(&r, 422, "unknown_shipping_method");
    // Points without a loyalty account.
    let r = server
        .put(
            &format!("/carts/{cart}/loyalty-points"),
            tok,
            Some(json!({"points": 10})),
        )
        .await;
    assert_problem(&r, 404, "loyalty_not_enrolled");
    let mut bad_country = address();
    bad_country["country"] = json!("Germany");
    let r = server
        .put(
            &format!("/carts/{cart}/shipping-address"),
            tok,
            Some(json!({"address": bad_country})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .put(
            &format!("/carts/{cart}/items/bad%20sku"),
            tok,
            Some(json!({"quantity": 1})),
        )
        .await;
    assert_problem(&r, 400, "invalid_id");
    // Checking out an empty cart is refused by the cart's rules.
    let r = server
        .post(&format!("/carts/{cart}/checkout"), tok, None)
        .await;
    assert_problem(&r, 422, "cart_empty");
    assert_eq!(cart_version(&server, &token, &cart).await, 1);

    // Ids that cannot name a cart.
    let r = server.get("/carts/not-a-uuid", tok).await;
    assert_problem(&r, 400, "invalid_id");

    // An unknown currency opens nothing.
    let r = server
        .post("/carts", tok, Some(json!({"currency": "euro"})))
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server.post("/carts", tok, Some(json!({}))).await;
    assert_problem(&r, 422, "invalid_body");
    // No token, no cart.
    let r = server
        .post("/carts", None, Some(json!({"currency": "EUR"})))
        .await;
    assert_problem(&r, 401, "unauthenticated");
}

async fn stale_if_match_is_refused(kind: BackendKind) {
    let Some(server) = shop(kind).await else {
        return;
    };
    let (_, token) = server.new_customer();
    let cart = open_cart(&server, &token).await;
    let items = format!("/carts/{cart}/items");
    let body = json!({"sku": "TEE-RED", "quantity": 1});
    let r = server
        .post_with_headers(
            &items,
            Some(&token),
            Some(body.clone()),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_command(&r, 200, &format!("cart/{cart}"), 2);
    let r = server
        .post_with_headers(&items, Some(&token), Some(body), &[("if-match", "\"1\"")])
        .await;
    assert_problem(&r, 412, "version_mismatch");
    let r = server
        .request(
            Method::PUT,
            &format!("/carts/{cart}/items/TEE-RED"),
            Some(&token),
            Some(json!({"quantity": 5})),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_problem(&r, 412, "version_mismatch");
    let r = server.get(&format!("/carts/{cart}"), Some(&token)).await;
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["lines"][0]["quantity"], 1, "{}", r.text);
}

async fn opening_carts_for_whom(kind: BackendKind) {
    let Some(server) = shop(kind).await else {
        return;
    };
    let staff = server.staff();
    let (customer, token) = server.new_customer();
    let (other, _) = server.new_customer();

    // Staff open a cart on a customer's behalf; the customer then owns it.
    let r = server
        .post(
            "/carts",
            Some(&staff),
            Some(json!({"currency": "EUR", "customer_id": customer.to_string()})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let cart = r.body["stream"]
        .as_str()
        .and_then(|s| s.strip_prefix("cart/"))
        .expect("cart stream")
        .to_string();
    let r = server.get(&format!("/carts/{cart}"), Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["customer_id"], customer.to_string());

    // Staff must say for whom; a customer cannot open a cart for someone else.
    let r = server
        .post("/carts", Some(&staff), Some(json!({"currency": "EUR"})))
        .await;
    assert_problem(&r, 422, "invalid_body");
    let r = server
        .post(
            "/carts",
            Some(&token),
            Some(json!({"currency": "EUR", "customer_id": other.to_string()})),
        )
        .await;
    assert_problem(&r, 403, "forbidden");

    // The same Idempotency-Key opens one cart, whose id is stable.
    let headers = [("idempotency-key", "open-cart-1")];
    let first = server
        .post_with_headers(
            "/carts",
            Some(&token),
            Some(json!({"currency": "EUR"})),
            &headers,
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = server
        .post_with_headers(
            "/carts",
            Some(&token),
            Some(json!({"currency": "EUR"})),
            &headers,
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(first.body["stream"], again.body["stream"]);
    assert_eq!(again.body["version"], 1);
}

async fn loyalty_accounts(kind: BackendKind) {
    let Some(server) = shop(kind).await else {
        return;
    };
    let staff = server.staff();
    let (alice, alice_token) = server.new_customer();
    let (bob, bob_token) = server.new_customer();

    // Not enrolled yet.
    let r = server.get("/loyalty/account", Some(&alice_token)).await;
    assert_problem(&r, 404, "not_found");

    let r = server
        .post(
            "/loyalty/account",
            Some(&alice_token),
            Some(json!({"currency": "EUR"})),
        )
        .await;
    assert_command(&r, 201, &format!("loyalty_account/{alice}"), 1);
    let r = server.get("/loyalty/account", Some(&alice_token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["customer_id"], alice.to_string());
    assert_eq!(r.body["currency"], "EUR");
    assert_eq!(r.body["tier"], "bronze");
    assert_eq!(r.body["balance"], 0);
    assert_eq!(r.body["lots"], json!([]));
    let alice_code = r.body["referral_code"].as_str().expect("code").to_string();
    assert_eq!(alice_code.len(), 32);

    // Bob enrols with Alice's code, typed in lower case.
    let r = server
        .post(
            "/loyalty/account",
            Some(&bob_token),
            Some(json!({"currency": "EUR", "referred_by": alice_code.to_lowercase()})),
        )
        .await;
    assert_command(&r, 201, &format!("loyalty_account/{bob}"), 1);
    let r = server.get("/loyalty/account", Some(&bob_token)).await;
    assert_eq!(r.body["referred_by"], alice_code.as_str(), "{}", r.text);

    // Enrolling twice is refused; a malformed referral code too.
    let r = server
        .post(
            "/loyalty/account",
            Some(&alice_token),
            Some(json!({"currency": "EUR"})),
        )
        .await;
    assert_problem(&r, 409, "loyalty_already_enrolled");
    let (_, carol_token) = server.new_customer();
    let r = server
        .post(
            "/loyalty/account",
            Some(&carol_token),
            Some(json!({"currency": "EUR", "referred_by": "x!"})),
        )
        .await;
    assert_problem(&r, 422, "referral_code_invalid");

    // Staff award a campaign bonus once per campaign, and read any account.
    let campaign = Uuid::now_v7().to_string();
    let bonus = format!("/loyalty/accounts/{alice}/bonus");
    let r = server
        .post(
            &bonus,
            Some(&staff),
            Some(json!({"campaign_id": campaign, "points": 250})),
        )
        .await;
    assert_command(&r, 200, &format!("loyalty_account/{alice}"), 2);
    let r = server
        .post(
            &bonus,
            Some(&staff),
            Some(json!({"campaign_id": campaign, "points": 250})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["version"], 2, "a campaign pays once");
    let r = server
        .get(&format!("/loyalty/accounts/{alice}"), Some(&staff))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["balance"], 250);
    assert_eq!(r.body["lots"][0]["remaining"], 250);
    assert!(r.body["lots"][0]["expires_at"].is_string());

    // Zero points, and accounts that do not exist.
    let r = server
        .post(
            &bonus,
            Some(&staff),
            Some(json!({"campaign_id": Uuid::now_v7().to_string(), "points": 0})),
        )
        .await;
    assert_problem(&r, 422, "invalid_body");
    let nobody = Uuid::now_v7();
    let r = server
        .post(
            &format!("/loyalty/accounts/{nobody}/bonus"),
            Some(&staff),
            Some(json!({"campaign_id": campaign, "points": 5})),
        )
        .await;
    assert_problem(&r, 404, "not_found");

    // Staff-only routes refuse customers; the own-account route has no meaning for staff.
    let r = server
        .get(&format!("/loyalty/accounts/{alice}"), Some(&alice_token))
        .await;
    assert_problem(&r, 403, "forbidden");
    let r = server
        .post(
            &bonus,
            Some(&alice_token),
            Some(json!({"campaign_id": campaign, "points": 5})),
        )
        .await;
    assert_problem(&r, 403, "forbidden");
    let r = server.get("/loyalty/account", Some(&staff)).await;
    assert_problem(&r, 403, "forbidden");
    // A customer cannot enrol someone else.
    let r = server
        .post(
            "/loyalty/account",
            Some(&bob_token),
            Some(json!({"currency": "EUR", "customer_id": alice.to_string()})),
        )
        .await;
    assert_problem(&r, 403, "forbidden");
}
