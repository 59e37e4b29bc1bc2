//! The HTTP platform's contract: the OpenAPI document covers every route and problem
//! code; problems carry `instance` and `trace_id`; `Idempotency-Key` replays the first
//! response byte for byte, refuses a reused key and applies concurrent duplicates once;
//! `If-Match` mismatches answer 412 with the current version. Store-touching tests run
//! on PostgreSQL and SQLite.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aggregates::product::{ChangePrice, CreateProduct, Product, ProductCommand};
use aggregates::{Currency, Money, ProductId, Sku};
use api::http::command::{CommandMeta, CommandReply};
use api::http::errors::PROBLEM_CODES;
use api::http::json::ApiJson;
use api::http::openapi::schemars::{self, JsonSchema};
use api::http::principal::Role;
use api::http::problem::Problem;
use api::http::{app, app_with, idempotency, AdminTokens, ApiRouter, AppState, Operation};
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::{post, put};
use axum::Router;
use infra::{ManualClock, Store, StoreConfig};
use serde::Deserialize;
use serde_json::Value;
use tests::{fresh_store, BackendKind};
use tower::ServiceExt;
use uuid::Uuid;

const TOKEN: &str = "test-admin-token-0123456789";

/// The documented `Problem` schema, compiled once.
static PROBLEM_VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();

// ---------------------------------------------------------------------------------------
// A tiny command route over the real command layer, so the platform is tested without
// depending on any domain route module.
// ---------------------------------------------------------------------------------------

/// `POST /test/products/{sku}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewProduct {
    name: String,
    /// EUR minor units.
    price: i64,
}

/// `PUT /test/products/{sku}/price`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewPrice {
    price: i64,
}

fn eur(amount: i64) -> Money {
    Money::new(amount, "EUR".parse::<Currency>().unwrap())
}

fn sku(text: &str) -> Result<Sku, Problem> {
    Sku::parse(text).map_err(|e| api::http::errors::row::INVALID_PATH.problem(e.to_string()))
}

async fn create_product(
    meta: CommandMeta,
    State(state): State<AppState>,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<NewProduct>,
) -> Result<CommandReply, Problem> {
    let sku = sku(&code)?;
    let command = ProductCommand::CreateProduct(CreateProduct {
        product_id: ProductId(Uuid::new_v5(&Uuid::NAMESPACE_OID, code.as_bytes())),
        sku,
        name: body.name,
        description: String::new(),
        category: "test".into(),
        brand: "test".into(),
        attributes: Default::default(),
        prices: [(eur(0).currency, eur(body.price))].into_iter().collect(),
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Product>(&meta.context(), &code, command)
        .await?;
    Ok(CommandReply::created(&done))
}

async fn change_price(
    meta: CommandMeta,
    State(state): State<AppState>,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<NewPrice>,
) -> Result<CommandReply, Problem> {
    sku(&code)?;
    let command = ProductCommand::ChangePrice(ChangePrice {
        price: eur(body.price),
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Product>(&meta.context(), &code, command)
        .await?;
    Ok(CommandReply::ok(&done))
}

/// `GET /test/echo?n=…`: axum's own `Query` extractor, whose rejection is plain text.
#[derive(Debug, Deserialize, JsonSchema)]
struct Echo {
    /// A count.
    n: u32,
    label: Option<String>,
}

async fn echo(axum::extract::Query(echo): axum::extract::Query<Echo>) -> String {
    format!("{} {}", echo.n, echo.label.unwrap_or_default())
}

fn test_routes() -> ApiRouter {
    ApiRouter::new()
        .route(
            Operation::get("/test/echo")
                .summary("Echo a query")
                .query::<Echo>()
                .reply::<String>(200)
                .problems(&["invalid_query"]),
            axum::routing::get(echo),
        )
        .route(
            Operation::post("/test/products/{sku}")
                .summary("Create a test product")
                .roles(&[Role::Admin])
                .command()
                .body::<NewProduct>()
                .reply::<api::http::command::CommandReplyBody>(201)
                .problems(api::http::errors::PRODUCT_CODES),
            post(create_product),
        )
        .route(
            Operation::put("/test/products/{sku}/price")
                .summary("Change a test product's price")
                .roles(&[Role::Admin])
                .command()
                .body::<NewPrice>()
                .reply::<api::http::command::CommandReplyBody>(200)
                .problems(api::http::errors::PRODUCT_CODES),
            put(change_price),
        )
}

fn state(store: &Store) -> AppState {
    AppState::new(store.clone()).with_admin_tokens(AdminTokens::new([TOKEN]).unwrap())
}

fn test_app(store: &Store) -> Router {
    app_with(state(store), test_routes())
}

async fn store_on(kind: BackendKind) -> Option<(Store, ManualClock)> {
    let clock = tests::test_clock();
    let store = fresh_store(kind, StoreConfig::default(), Arc::new(clock.clone())).await?;
    Some((store, clock))
}

/// A response, whole.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts a problem answer with `status` and `code`, valid against the documented
    /// `Problem` schema; returns its body.
    fn problem(&self, status: u16, code: &str) -> Value {
        let json = self.json();
        let validator = PROBLEM_VALIDATOR.get_or_init(|| {
            let document = api::http::openapi::document(&[]);
            jsonschema::draft202012::new(&document["components"]["schemas"]["Problem"]).unwrap()
        });
        if let Err(error) = validator.validate(&json) {
            panic!("{json} does not match the Problem schema: {error}");
        }
        assert_eq!(self.status.as_u16(), status, "{json}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(json["code"], code, "{json}");
        assert_eq!(json["status"], status, "{json}");
        json
    }
}

#[derive(Default)]
struct Call<'a> {
    key: Option<&'a str>,
    if_match: Option<&'a str>,
    token: Option<&'a str>,
    request_id: Option<&'a str>,
}

async fn call(app: &Router, method: &str, path: &str, body: Option<&str>, opts: Call<'_>) -> Reply {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = opts.token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(key) = opts.key {
        request = request.header("idempotency-key", key);
    }
    if let Some(version) = opts.if_match {
        request = request.header("if-match", version);
    }
    if let Some(id) = opts.request_id {
        request = request.header("x-request-id", id);
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

fn admin<'a>(key: Option<&'a str>) -> Call<'a> {
    Call {
        key,
        token: Some(TOKEN),
        ..Call::default()
    }
}

async fn product_version(store: &Store, code: &str) -> i64 {
    let commands = infra::command::Commands::new(store.clone());
    commands
        .load::<Product>(code)
        .await
        .unwrap()
        .map_or(0, |loaded| loaded.version)
}

// ---------------------------------------------------------------------------------------
// OpenAPI
// ---------------------------------------------------------------------------------------

fn refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.insert(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn resolve<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    document.pointer(reference.strip_prefix('#')?)
}

#[test]
fn every_domain_route_is_documented() {
    // A plain axum router merged into the domain routes serves undocumented routes.
    let routes = api::routes::router();
    assert_eq!(
        routes.undocumented(),
        0,
        "a route module merges a plain axum Router; register its routes with Operation"
    );
    for op in routes.operations() {
        assert!(op.path().starts_with('/'), "{}", op.path());
    }
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_schema_and_problem_code() {
    let Some((store, _clock)) = store_on(BackendKind::Sqlite).await else {
        return;
    };
    let api = app(state(&store));
    let reply = call(&api, "GET", "/openapi.json", None, Call::default()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let document = reply.json();
    assert_eq!(document["openapi"], "3.1.0");

    // Every route the router serves is a path of the document, and nothing else is.
    let mut expected = BTreeSet::new();
    for op in api::routes::router().operations() {
        expected.insert((
            op.path().to_owned(),
            op.method().as_str().to_ascii_lowercase(),
        ));
    }
    for (path, method) in [
        ("/health/live", "get"),
        ("/health/ready", "get"),
        ("/openapi.json", "get"),
        ("/admin/webhooks", "post"),
        ("/admin/webhooks", "get"),
        ("/admin/webhooks/{id}", "patch"),
        ("/admin/webhooks/{id}/replay", "post"),
    ] {
        expected.insert((path.to_owned(), method.to_owned()));
    }
    let paths = document["paths"].as_object().unwrap();
    for (path, method) in &expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is served but not documented"
        );
    }

    // The problem schema's code enum is exactly the problem table.
    let codes: Vec<&str> = document["components"]["schemas"]["Problem"]["properties"]["code"]
        ["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(codes, PROBLEM_CODES);

    // Every operation: a unique id, only table codes, problems as problem+json, every
    // declared path parameter present in its path.
    let mut ids = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} repeats");
            for (status, response) in op["responses"].as_object().unwrap() {
                let status: u16 = status.parse().unwrap();
                if status >= 400 {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status}"
                    );
                    for code in response["x-problem-codes"].as_array().unwrap() {
                        let code = code.as_str().unwrap();
                        assert!(
                            PROBLEM_CODES.contains(&code),
                            "{method} {path} documents `{code}`, which is not in the problem table"
                        );
                        let row = api::http::errors::row(code).unwrap();
                        assert_eq!(row.status, status, "{method} {path} `{code}`");
                    }
                }
            }
            if op["x-roles"].is_array() {
                assert_eq!(op["security"], serde_json::json!([{ "bearer": [] }]));
                assert!(op["responses"]["401"].is_object(), "{method} {path}");
                assert!(op["responses"]["403"].is_object(), "{method} {path}");
            }
            for parameter in op["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "path" {
                    let name = parameter["name"].as_str().unwrap();
                    assert!(path.contains(&format!("{{{name}}}")), "{path} {name}");
                }
            }
        }
    }

    // Every reference resolves inside the document.
    let mut all = BTreeSet::new();
    refs(&document, &mut all);
    for reference in &all {
        assert!(
            resolve(&document, reference).is_some(),
            "{reference} does not resolve"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn a_command_route_documents_its_headers_body_and_problems() {
    let Some((store, _clock)) = store_on(BackendKind::Sqlite).await else {
        return;
    };
    let reply = call(
        &test_app(&store),
        "GET",
        "/openapi.json",
        None,
        Call::default(),
    )
    .await;
    let document = reply.json();
    let op = &document["paths"]["/test/products/{sku}"]["post"];
    let parameters: Vec<&Value> = op["parameters"].as_array().unwrap().iter().collect();
    assert!(parameters
        .iter()
        .any(|p| p["$ref"] == "#/components/parameters/IdempotencyKey"));
    assert!(parameters
        .iter()
        .any(|p| p["$ref"] == "#/components/parameters/IfMatch"));
    assert!(parameters
        .iter()
        .any(|p| p["name"] == "sku" && p["in"] == "path"));
    let body = &op["requestBody"]["content"]["application/json"]["schema"];
    let body = resolve(&document, body["$ref"].as_str().unwrap()).unwrap();
    assert_eq!(body["properties"]["price"]["type"], "integer");
    assert_eq!(
        op["responses"]["201"]["headers"]["ETag"]["$ref"],
        "#/components/headers/ETag"
    );
    let codes = |status: &str| -> Vec<String> {
        op["responses"][status]["x-problem-codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(codes("412").contains(&"version_mismatch".to_owned()));
    assert!(codes("422").contains(&"idempotency_key_reused".to_owned()));
    assert!(codes("409").contains(&"product_already_exists".to_owned()));
    assert!(codes("503").contains(&"contention".to_owned()));

    // Query parameters come from the struct's properties.
    let echo = &document["paths"]["/test/echo"]["get"];
    let parameters = echo["parameters"].as_array().unwrap();
    let n = parameters.iter().find(|p| p["name"] == "n").unwrap();
    assert_eq!(n["in"], "query");
    assert_eq!(n["required"], true);
    assert_eq!(n["description"], "A count.");
    let label = parameters.iter().find(|p| p["name"] == "label").unwrap();
    assert_eq!(label["required"], false);
    assert_eq!(echo["security"], serde_json::json!([]));
}

// ---------------------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn problems_carry_the_request_path_and_trace_id() {
    let Some((store, _clock)) = store_on(BackendKind::Sqlite).await else {
        return;
    };
    let api = test_app(&store);
    let trace = "0193a000-0000-7000-8000-00000000abcd";
    let reply = call(
        &api,
        "GET",
        "/no/such/route",
        None,
        Call {
            request_id: Some(trace),
            ..Call::default()
        },
    )
    .await;
    let json = reply.problem(404, "route_not_found");
    assert_eq!(json["instance"], "/no/such/route");
    assert_eq!(json["trace_id"], trace);

    // A rejection of the JSON body, an auth failure and a wrong method: problems too.
    let reply = call(&api, "POST", "/test/products/SKU-1", Some("{"), admin(None)).await;
    let json = reply.problem(400, "malformed_json");
    assert_eq!(json["instance"], "/test/products/SKU-1");
    assert!(json["trace_id"]
        .as_str()
        .is_some_and(|t| Uuid::parse_str(t).is_ok()));
    let reply = call(
        &api,
        "POST",
        "/test/products/SKU-1",
        Some(r#"{"name":"x","price":1,"extra":true}"#),
        admin(None),
    )
    .await;
    reply.problem(422, "invalid_body");
    let reply = call(
        &api,
        "POST",
        "/test/products/SKU-1",
        Some("{}"),
        Call::default(),
    )
    .await;
    reply.problem(401, "unauthenticated");
    // A key does not change that: the idempotency layer leaves unauthenticated requests
    // to the handler.
    let anonymous = Call {
        key: Some("anonymous"),
        ..Call::default()
    };
    let reply = call(&api, "POST", "/test/products/SKU-1", Some("{}"), anonymous).await;
    reply.problem(401, "unauthenticated");
    let reply = call(&api, "DELETE", "/test/products/SKU-1", None, admin(None)).await;
    reply.problem(405, "method_not_allowed");

    // axum's own rejections are turned into problems on the way out.
    let reply = call(&api, "GET", "/test/echo?n=many", None, Call::default()).await;
    let json = reply.problem(400, "invalid_query");
    assert_eq!(json["instance"], "/test/echo");
    let reply = call(&api, "GET", "/test/echo?n=3&label=x", None, Call::default()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"3 x");
}

// ---------------------------------------------------------------------------------------
// Idempotency-Key
// ---------------------------------------------------------------------------------------

async fn replays_the_first_response(kind: BackendKind) {
    let Some((store, _clock)) = store_on(kind).await else {
        return;
    };
    let api = test_app(&store);
    let body = r#"{"name":"Mug","price":1200}"#;
    let first = call(
        &api,
        "POST",
        "/test/products/MUG-1",
        Some(body),
        admin(Some("k-1")),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.json());
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(first.header("etag"), Some("\"1\""));

    let again = call(
        &api,
        "POST",
        "/test/products/MUG-1",
        Some(body),
        admin(Some("k-1")),
    )
    .await;
    assert_eq!(again.status, first.status);
    assert_eq!(again.body, first.body, "the replay is byte for byte");
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(again.header("content-type"), first.header("content-type"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(product_version(&store, "MUG-1").await, 1);

    // Without a key, the same request is a new command, refused by the domain.
    let fresh = call(
        &api,
        "POST",
        "/test/products/MUG-1",
        Some(body),
        admin(None),
    )
    .await;
    fresh.problem(409, "product_already_exists");
}

#[tokio::test]
async fn same_key_same_request_replays_the_first_response_postgres() {
    replays_the_first_response(BackendKind::Postgres).await;
}

#[tokio::test]
async fn same_key_same_request_replays_the_first_response_sqlite() {
    replays_the_first_response(BackendKind::Sqlite).await;
}

async fn refuses_a_reused_key(kind: BackendKind) {
    let Some((store, _clock)) = store_on(kind).await else {
        return;
    };
    let api = test_app(&store);
    let first = call(
        &api,
        "POST",
        "/test/products/MUG-2",
        Some(r#"{"name":"Mug","price":1200}"#),
        admin(Some("k-2")),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let other_body = call(
        &api,
        "POST",
        "/test/products/MUG-2",
        Some(r#"{"name":"Mug","price":1300}"#),
        admin(Some("k-2")),
    )
    .await;
    other_body.problem(422, "idempotency_key_reused");
    let other_path = call(
        &api,
        "PUT",
        "/test/products/MUG-2/price",
        Some(r#"{"price":1300}"#),
        admin(Some("k-2")),
    )
    .await;
    other_path.problem(422, "idempotency_key_reused");
    assert_eq!(product_version(&store, "MUG-2").await, 1);

    // A failed first attempt is not kept: the retry runs.
    let failed = call(
        &api,
        "PUT",
        "/test/products/MUG-2/price",
        Some(r#"{"price":0}"#),
        admin(Some("k-3")),
    )
    .await;
    failed.problem(422, "product_price_not_positive");
    let retried = call(
        &api,
        "PUT",
        "/test/products/MUG-2/price",
        Some(r#"{"price":0}"#),
        admin(Some("k-3")),
    )
    .await;
    assert_eq!(retried.header("idempotent-replayed"), None);
    retried.problem(422, "product_price_not_positive");

    // A malformed key is refused before anything runs.
    let bad = call(
        &api,
        "PUT",
        "/test/products/MUG-2/price",
        Some(r#"{"price":5}"#),
        admin(Some("has space")),
    )
    .await;
    bad.problem(400, "invalid_idempotency_key");
    assert_eq!(product_version(&store, "MUG-2").await, 1);
}

#[tokio::test]
async fn same_key_other_request_is_refused_postgres() {
    refuses_a_reused_key(BackendKind::Postgres).await;
}

#[tokio::test]
async fn same_key_other_request_is_refused_sqlite() {
    refuses_a_reused_key(BackendKind::Sqlite).await;
}

async fn concurrent_duplicates_apply_once(kind: BackendKind) {
    let Some((store, _clock)) = store_on(kind).await else {
        return;
    };
    // Two app instances over one store stand for two processes: within one, duplicates
    // wait for the first; across them, the command layer dedupes by command id.
    let apis = [test_app(&store), test_app(&store)];
    let created = call(
        &apis[0],
        "POST",
        "/test/products/HOT-1",
        Some(r#"{"name":"Hot","price":100}"#),
        admin(None),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);

    let mut tasks = Vec::new();
    for i in 0..50 {
        let api = apis[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            call(
                &api,
                "PUT",
                "/test/products/HOT-1/price",
                Some(r#"{"price":250}"#),
                admin(Some("same-key")),
            )
            .await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
        assert_eq!(reply.body, replies[0].body);
    }
    assert_eq!(replies[0].json()["version"], 2);
    assert_eq!(product_version(&store, "HOT-1").await, 2, "applied once");
    let replayed = replies
        .iter()
        .filter(|r| r.header("idempotent-replayed") == Some("true"))
        .count();
    assert!(replayed >= 1, "later duplicates replay the kept response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_requests_with_one_key_apply_once_postgres() {
    concurrent_duplicates_apply_once(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_requests_with_one_key_apply_once_sqlite() {
    concurrent_duplicates_apply_once(BackendKind::Sqlite).await;
}

async fn keys_expire_and_are_pruned(kind: BackendKind) {
    let Some((store, clock)) = store_on(kind).await else {
        return;
    };
    let retention = Duration::from_secs(3600);
    let api = app_with(
        state(&store).with_idempotency_retention(retention),
        test_routes(),
    );
    let create = |key| {
        let api = api.clone();
        async move {
            call(
                &api,
                "POST",
                "/test/products/OLD-1",
                Some(r#"{"name":"Old","price":100}"#),
                admin(Some(key)),
            )
            .await
        }
    };
    assert_eq!(create("old-key").await.status, StatusCode::CREATED);
    clock.advance(chrono::Duration::minutes(30));
    assert_eq!(idempotency::prune(&store, retention).await.unwrap(), 0);
    clock.advance(chrono::Duration::minutes(31));

    // Past retention the key is forgotten: another request may use it.
    let reused = call(
        &api,
        "PUT",
        "/test/products/OLD-1/price",
        Some(r#"{"price":150}"#),
        admin(Some("old-key")),
    )
    .await;
    assert_eq!(reused.status, StatusCode::OK, "{:?}", reused.json());
    assert_eq!(reused.header("idempotent-replayed"), None);

    // The expired row was taken over by the new response, which is pruned in turn once
    // it is past the retention.
    assert_eq!(create("other-key").await.status, StatusCode::CONFLICT);
    clock.advance(chrono::Duration::minutes(61));
    assert_eq!(idempotency::prune(&store, retention).await.unwrap(), 1);
    assert_eq!(idempotency::prune(&store, retention).await.unwrap(), 0);
}

#[tokio::test]
async fn keys_expire_after_the_retention_and_are_pruned_postgres() {
    keys_expire_and_are_pruned(BackendKind::Postgres).await;
}

#[tokio::test]
async fn keys_expire_after_the_retention_and_are_pruned_sqlite() {
    keys_expire_and_are_pruned(BackendKind::Sqlite).await;
}

// ---------------------------------------------------------------------------------------
// If-Match
// ---------------------------------------------------------------------------------------

async fn if_match_guards_the_version(kind: BackendKind) {
    let Some((store, _clock)) = store_on(kind).await else {
        return;
    };
    let api = test_app(&store);
    let created = call(
        &api,
        "POST",
        "/test/products/IFM-1",
        Some(r#"{"name":"Lamp","price":900}"#),
        admin(None),
    )
    .await;
    assert_eq!(created.header("etag"), Some("\"1\""));
    let price = |if_match: &'static str| {
        let api = api.clone();
        async move {
            call(
                &api,
                "PUT",
                "/test/products/IFM-1/price",
                Some(r#"{"price":950}"#),
                Call {
                    if_match: Some(if_match),
                    ..admin(None)
                },
            )
            .await
        }
    };
    let stale = price("\"7\"").await;
    let json = stale.problem(412, "version_mismatch");
    assert_eq!(json["current_version"], 1);
    assert_eq!(stale.header("etag"), Some("\"1\""));
    assert_eq!(product_version(&store, "IFM-1").await, 1);

    let matching = price("\"1\"").await;
    assert_eq!(matching.status, StatusCode::OK);
    assert_eq!(matching.header("etag"), Some("\"2\""));

    let malformed = price("\"one\"").await;
    malformed.problem(400, "invalid_if_match");
    assert_eq!(product_version(&store, "IFM-1").await, 2);
}

#[tokio::test]
async fn if_match_mismatch_answers_412_with_the_current_version_postgres() {
    if_match_guards_the_version(BackendKind::Postgres).await;
}

#[tokio::test]
async fn if_match_mismatch_answers_412_with_the_current_version_sqlite() {
    if_match_guards_the_version(BackendKind::Sqlite).await;
}
