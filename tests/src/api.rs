//! Assertions and a per-backend test macro shared by the black-box API tests.

use serde_json::Value;

use crate::server::TestResponse;

/// Runs `$name(kind)` as one test per backend: `mod $name { fn sqlite(); fn postgres(); }`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use tests::BackendKind;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(BackendKind::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(BackendKind::Postgres).await;
            }
        }
    )*};
}

/// A successful command reply: status, `stream`, `version`, a position and
/// `ETag: "<version>"`.
#[track_caller]
pub fn assert_command(r: &TestResponse, status: u16, stream: &str, version: i64) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["stream"], stream, "{}", r.text);
    assert_eq!(r.body["version"], version, "{}", r.text);
    assert!(r.body["position"].as_i64().unwrap_or(0) > 0, "{}", r.text);
    let etag = format!("\"{version}\"");
    assert_eq!(r.header("etag"), Some(etag.as_str()), "{}", r.text);
}

/// A problem answer: status, `code`, and the problem media type.
#[track_caller]
pub fn assert_problem(r: &TestResponse, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["code"], code, "{}", r.text);
    assert_eq!(r.body["status"], status, "{}", r.text);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/problem+json")),
        "{:?}",
        r.headers
    );
}

/// A problem body without what differs between any two requests (trace id, request
/// path) and with `id` replaced, so a foreign id's 404 can be compared with a missing
/// id's.
pub fn normalised(body: &Value, id: &str) -> Value {
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("trace_id");
        map.remove("instance");
    }
    let text = body.to_string().replace(id, "<id>");
    serde_json::from_str(&text).expect("json")
}

/// Creates the test shop's products through the command layer: `(sku, name, category,
/// EUR price in cents)` each.
pub async fn create_products(
    commands: &infra::command::Commands,
    now: chrono::DateTime<chrono::Utc>,
    products: &[(&str, &str, &str, i64)],
) {
    use aggregates::product::{CreateProduct, Product, ProductCommand};
    use aggregates::{Currency, Money, ProductId, Sku};
    let ctx = infra::command::CommandContext::new("test:setup");
    for &(sku, name, category, eur) in products {
        let command = ProductCommand::CreateProduct(CreateProduct {
            product_id: ProductId::from_uuid(uuid::Uuid::now_v7()),
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
}

/// The test shop's settings: a German tax rate of 19 % and a `standard` shipping method
/// at 5 EUR.
pub async fn write_shop_settings(store: &infra::Store) {
    use infra::command::facts::{setting, write_setting};
    use serde_json::json;
    write_setting(store, setting::TAX_RATES, &json!({"DE": 1900}))
        .await
        .expect("tax rates");
    write_setting(
        store,
        setting::SHIPPING_METHODS,
        &json!([{
            "code": "standard",
            "name": "Standard",
            "prices": {"EUR": {"amount": 500, "currency": "EUR"}}
        }]),
    )
    .await
    .expect("shipping methods");
}
