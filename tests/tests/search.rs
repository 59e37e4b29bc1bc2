//! Search: the embedded index answers filtered, faceted, sorted and paginated queries
//! through the HTTP routes on both backends; the indexer keeps it fresh (read-your-writes
//! with `min_position`); the Meilisearch adapter sends exactly the requests it should to
//! a wire-level stand-in; and, when `MEILI_URL` is set, works against a real server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::order::{Order, OrderEvent, OrderPlaced};
use aggregates::stock::{Stock, StockEvent, StockLevels, StockReceived, WarehouseLevel};
use aggregates::{EventExample, EventSourced, OrderId, Quantity, Sku, WarehouseId};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use infra::search::documents;
use infra::search::meili::Which;
use infra::search::{
    IndexerConfig, MeiliConfig, MeiliIndex, ProductQuery, ProductSort, SearchError, SearchIndex,
    SearchIndexer,
};
use infra::store::NewEvent;
use infra::{Store, StreamRef};
use serde_json::{json, Value};
use tests::api::assert_problem;
use tests::on_both_backends;
use tests::server::TestServer;
use tests::BackendKind;

/// Appends `events` to the stream `A/<id>` as the command layer would store them.
async fn append<A: EventSourced>(store: &Store, id: &str, events: Vec<A::Event>) -> i64 {
    let stream = StreamRef::new(A::STREAM_TYPE, id);
    let version = store.read_stream(&stream, 0).await.unwrap().len() as i64;
    let events = events
        .iter()
        .map(|e| {
            let (event_type, schema_version, payload) = A::encode(e);
            NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: event_type.into(),
                schema_version: schema_version as i32,
                payload,
                metadata: BTreeMap::new(),
            }
        })
        .collect();
    store
        .append(&stream, version, events, None)
        .await
        .unwrap()
        .last_position
}

fn received(sku: &str, warehouse: &str, quantity: u32) -> StockEvent {
    let level = WarehouseLevel {
        on_hand: Quantity(quantity),
        reserved: Quantity(0),
        available: Quantity(quantity),
    };
    StockEvent::StockReceived(StockReceived {
        sku: Sku::parse(sku).unwrap(),
        warehouse: WarehouseId::new(warehouse),
        quantity: Quantity(quantity),
        levels: StockLevels {
            warehouses: BTreeMap::from([(WarehouseId::new(warehouse), level)]),
            on_hand: u64::from(quantity),
            reserved: 0,
            backordered: Quantity(0),
            available: i64::from(quantity),
        },
        at: StockReceived::example().at,
    })
}

/// Creates a product through the API.
async fn create_product(
    server: &TestServer,
    staff: &str,
    sku: &str,
    name: &str,
    category: &str,
    brand: &str,
    eur: i64,
) -> i64 {
    let r = server
        .post(
            "/products",
            Some(staff),
            Some(json!({
                "sku": sku, "name": name, "description": format!("{name}, made to last"),
                "category": category, "brand": brand, "prices": {"EUR": eur, "USD": eur + 100},
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["position"].as_i64().unwrap()
}

/// A small catalogue: three shirts, two mugs (one discontinued), stock for some.
async fn catalogue(server: &TestServer) -> i64 {
    let staff = server.staff();
    create_product(
        server,
        &staff,
        "SHIRT-RED",
        "Red Shirt",
        "apparel",
        "Northwind",
        1999,
    )
    .await;
    create_product(
        server,
        &staff,
        "SHIRT-BLUE",
        "Blue Shirt",
        "apparel",
        "Contoso",
        2499,
    )
    .await;
    create_product(
        server,
        &staff,
        "SHIRT-LINEN",
        "Linen Shirt",
        "apparel",
        "Northwind",
        4999,
    )
    .await;
    create_product(
        server,
        &staff,
        "MUG-1",
        "Shirt-print Mug",
        "kitchen",
        "Contoso",
        899,
    )
    .await;
    create_product(
        server,
        &staff,
        "MUG-2",
        "Plain Mug",
        "kitchen",
        "Contoso",
        599,
    )
    .await;
    let r = server
        .post("/products/MUG-2/discontinue", Some(&staff), Some(json!({})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    append::<Stock>(
        &server.store,
        "SHIRT-RED",
        vec![received("SHIRT-RED", "BER-1", 5)],
    )
    .await;
    append::<Stock>(
        &server.store,
        "SHIRT-LINEN",
        vec![received("SHIRT-LINEN", "HAM-1", 2)],
    )
    .await;
    append::<Stock>(&server.store, "MUG-1", vec![received("MUG-1", "BER-1", 9)]).await
}

fn skus(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("hits in {body}"))
        .iter()
        .map(|h| h["sku"].as_str().unwrap().to_string())
        .collect()
}

async fn embedded_search_returns_filtered_faceted_sorted_results(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let head = catalogue(&server).await;
    assert_eq!(
        documents::catch_up(&server.store, head, 100).await.unwrap(),
        head
    );

    // Prefix matching on every word; discontinued products never show.
    let r = server
        .get("/products/search?q=shir&sort=price:asc", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        skus(&r.body),
        ["MUG-1", "SHIRT-RED", "SHIRT-BLUE", "SHIRT-LINEN"]
    );
    assert_eq!(r.body["total"], 4);
    let r = server.get("/products/search?q=plain", None).await;
    assert_eq!(r.body["total"], 0, "{}", r.text);

    // Filters combine; facets count every match of the query and its filters.
    let r = server
        .get(
            "/products/search?q=shirt&category=apparel&brand=Northwind&facets=true&sort=price:desc",
            None,
        )
        .await;
    assert_eq!(skus(&r.body), ["SHIRT-LINEN", "SHIRT-RED"], "{}", r.text);
    assert_eq!(r.body["facets"]["brand"], json!({"Northwind": 2}));
    assert_eq!(r.body["facets"]["category"], json!({"apparel": 2}));
    let r = server.get("/products/search?facets=true", None).await;
    assert_eq!(
        r.body["facets"]["brand"],
        json!({"Contoso": 2, "Northwind": 2}),
        "{}",
        r.text
    );
    assert_eq!(
        r.body["facets"]["category"],
        json!({"apparel": 3, "kitchen": 1})
    );

    // Price bounds in a currency, stock and warehouse filters.
    let r = server
        .get(
            "/products/search?currency=USD&price_min=1000&price_max=2599&sort=price:asc",
            None,
        )
        .await;
    assert_eq!(skus(&r.body), ["SHIRT-RED", "SHIRT-BLUE"], "{}", r.text);
    assert_eq!(
        r.body["hits"][0]["prices"],
        json!({"EUR": 1999, "USD": 2099})
    );
    let r = server
        .get("/products/search?in_stock=true&sort=price:asc", None)
        .await;
    assert_eq!(
        skus(&r.body),
        ["MUG-1", "SHIRT-RED", "SHIRT-LINEN"],
        "{}",
        r.text
    );
    let r = server.get("/products/search?warehouse=BER-1", None).await;
    assert_eq!(skus(&r.body), ["MUG-1", "SHIRT-RED"], "{}", r.text);
    assert_eq!(r.body["hits"][1]["available"], 5);
    let r = server.get("/products/search?in_stock=false", None).await;
    assert_eq!(skus(&r.body), ["SHIRT-BLUE"], "{}", r.text);

    // Pagination: the total counts every match.
    let r = server
        .get("/products/search?sort=price:asc&limit=2&page=2", None)
        .await;
    assert_eq!(skus(&r.body), ["SHIRT-BLUE", "SHIRT-LINEN"], "{}", r.text);
    assert_eq!(
        (r.body["total"].as_i64(), r.body["page"].as_i64()),
        (Some(4), Some(2))
    );

    // Autocomplete: the words so far, the last one incomplete.
    let r = server
        .get("/products/autocomplete?q=northwind%20li", None)
        .await;
    assert_eq!(
        r.body["suggestions"],
        json!([{"sku": "SHIRT-LINEN", "name": "Linen Shirt"}]),
        "{}",
        r.text
    );

    // A changed detail and a discontinuation reach the index like anything else.
    let staff = server.staff();
    let r = server
        .patch(
            "/products/SHIRT-BLUE",
            Some(&staff),
            Some(json!({"name": "Navy Oxford"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let changed = r.body["position"].as_i64().unwrap();
    documents::catch_up(&server.store, changed, 100)
        .await
        .unwrap();
    let r = server.get("/products/search?q=oxford", None).await;
    assert_eq!(skus(&r.body), ["SHIRT-BLUE"], "{}", r.text);
    assert_eq!(r.body["hits"][0]["name"], "Navy Oxford");
    // The old name is gone from the index (the description still says "Blue Shirt").
    let r = server.get("/products/search?q=blue%20shirt", None).await;
    assert_eq!(r.body["hits"][0]["name"], "Navy Oxford", "{}", r.text);
    let r = server.get("/products/search?q=oxford%20shirt", None).await;
    assert_eq!(skus(&r.body), ["SHIRT-BLUE"], "{}", r.text);
}

async fn search_parameters_are_validated(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    for bad in [
        "/products/search?limit=0",
        "/products/search?limit=101",
        "/products/search?page=0",
        "/products/search?page=1000&limit=100",
        "/products/search?sort=name",
        "/products/search?currency=euro",
        "/products/search?price_min=10&price_max=5",
        "/products/search?price_min=-1",
        "/products/search?unknown=1",
        "/products/search?in_stock=maybe",
        "/products/autocomplete?q=--",
        "/products/autocomplete?q=a&limit=50",
    ] {
        let r = server.get(bad, None).await;
        assert_problem(&r, 400, "invalid_query");
    }
    let r = server.get("/products/search?q=x", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["total"], 0);
}

async fn the_indexer_keeps_search_fresh_and_min_position_reads_your_writes(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let indexer = SearchIndexer::new(server.store.clone(), None, IndexerConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(indexer.run(async move {
        let _ = stopped.await;
    }));
    let staff = server.staff();
    for i in 0..5 {
        let sku = format!("LAMP-{i}");
        let position = create_product(
            &server,
            &staff,
            &sku,
            &format!("Desk Lamp {i}"),
            "lighting",
            "Lumen",
            3000 + i,
        )
        .await;
        // Right after the command, with its position: the product is there.
        let r = server
            .get(
                &format!("/products/search?q=lamp&min_position={position}"),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(skus(&r.body).contains(&sku), "{sku} missing: {}", r.text);
    }
    // A position the log has not reached: no command answered it, refused at once.
    let head = server.store.head_position().await.unwrap();
    let r = server
        .get(
            &format!("/products/search?min_position={}", head + 1_000),
            None,
        )
        .await;
    assert_problem(&r, 400, "position_beyond_log");
    // A written position the index has not reached (its indexer is stopped): the bounded
    // wait ends in a problem naming the lag.
    let _ = stop.send(());
    task.await.unwrap();
    let position = create_product(
        &server,
        &staff,
        "LAMP-LATE",
        "Late Lamp",
        "lighting",
        "Lumen",
        3100,
    )
    .await;
    let r = server
        .get(
            &format!("/products/search?q=lamp&min_position={position}"),
            None,
        )
        .await;
    assert_problem(&r, 504, "search_behind");
    assert!(
        r.body["detail"].as_str().unwrap().contains("behind"),
        "{}",
        r.text
    );
}

async fn staff_search_orders_by_customer_name_sku_and_status(kind: BackendKind) {
    let Some(server) = TestServer::start(kind).await else {
        return;
    };
    let mut placed = OrderPlaced::example();
    let first = placed.order_id;
    placed.shipping_address.name = "Grace Hopper".into();
    append::<Order>(
        &server.store,
        &first.to_string(),
        vec![OrderEvent::OrderPlaced(placed.clone())],
    )
    .await;
    let mut other = placed.clone();
    other.order_id = OrderId(uuid::Uuid::now_v7());
    other.shipping_address.name = "Alan Turing".into();
    other.at += chrono::Duration::hours(1);
    let last = append::<Order>(
        &server.store,
        &other.order_id.to_string(),
        vec![OrderEvent::OrderPlaced(other.clone())],
    )
    .await;
    documents::catch_up(&server.store, last, 100).await.unwrap();

    let staff = server.staff();
    let r = server
        .get(
            &format!("/admin/orders/search?q=grace&min_position={last}"),
            Some(&staff),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["total"], 1, "{}", r.text);
    assert_eq!(r.body["hits"][0]["order_id"], first.to_string());
    assert_eq!(r.body["hits"][0]["customer_name"], "Grace Hopper");
    let sku = placed.lines[0].sku.as_str();
    let r = server
        .get(&format!("/admin/orders/search?q={sku}"), Some(&staff))
        .await;
    // Newest placed first.
    let ids: Vec<&str> = r.body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [other.order_id.to_string(), first.to_string()],
        "{}",
        r.text
    );
    let status = r.body["hits"][0]["status"].as_str().unwrap().to_string();
    let r = server
        .get(
            &format!(
                "/admin/orders/search?status={status}&customer_id={}",
                placed.customer_id
            ),
            Some(&staff),
        )
        .await;
    assert_eq!(r.body["total"], 2, "{}", r.text);
    let r = server
        .get("/admin/orders/search?status=cancelled", Some(&staff))
        .await;
    assert_eq!(r.body["total"], 0, "{}", r.text);

    // Customers may not search orders.
    let (_, customer) = server.new_customer();
    let r = server
        .get("/admin/orders/search?q=grace", Some(&customer))
        .await;
    assert_problem(&r, 403, "forbidden");
}

on_both_backends!(
    embedded_search_returns_filtered_faceted_sorted_results,
    search_parameters_are_validated,
    the_indexer_keeps_search_fresh_and_min_position_reads_your_writes,
    staff_search_orders_by_customer_name_sku_and_status,
);

// ---------------------------------------------------------------------------------
// Meilisearch at the wire.

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: Option<String>,
    auth: Option<String>,
    body: Value,
}

/// A task the stand-in enqueued and how it will finish.
#[derive(Debug, Clone)]
struct StandInTask {
    kind: &'static str,
    index: String,
    fail: bool,
}

#[derive(Debug, Default)]
struct StandIn {
    seen: Vec<Seen>,
    tasks: Vec<StandInTask>,
    settings: BTreeMap<String, Value>,
    /// Settings answered instead of what was sent (someone changed them meanwhile).
    tampered: BTreeMap<String, Value>,
    /// Fail the next document task (once).
    fail_next_documents: bool,
    search_reply: Value,
}

type Shared = Arc<Mutex<StandIn>>;

const KEY: &str = "wire-test-key";
const AT: &str = "2026-12-01T10:00:00Z";

fn task_info(uid: usize, task: &StandInTask) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "taskUid": uid, "indexUid": task.index, "status": "enqueued",
            "type": task.kind, "enqueuedAt": AT,
        })),
    )
        .into_response()
}

fn meili_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "message": message, "code": code, "type": "auth",
            "link": format!("https://docs.meilisearch.com/errors#{code}"),
        })),
    )
        .into_response()
}

/// A stand-in that answers like Meilisearch for the requests the adapter makes.
async fn stand_in(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let path = parts.uri.path().to_string();
    let mut s = shared.lock().unwrap();
    s.seen.push(Seen {
        method: parts.method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_string),
        auth: auth.clone(),
        body: body.clone(),
    });
    if auth.as_deref() != Some(&format!("Bearer {KEY}")) {
        return meili_error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "The provided API key is invalid.",
        );
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (parts.method.clone(), segments.as_slice()) {
        (Method::PATCH, ["indexes", index, "settings"]) => {
            s.settings.insert(index.to_string(), body);
            let task = StandInTask {
                kind: "settingsUpdate",
                index: index.to_string(),
                fail: false,
            };
            s.tasks.push(task.clone());
            task_info(s.tasks.len() - 1, &task)
        }
        (Method::GET, ["indexes", index, "settings"]) => {
            let settings = s.tampered.get(*index).or(s.settings.get(*index));
            axum::Json(settings.cloned().unwrap_or(json!({}))).into_response()
        }
        (Method::PUT, ["indexes", index, "documents"]) => {
            let fail = std::mem::take(&mut s.fail_next_documents);
            let task = StandInTask {
                kind: "documentAdditionOrUpdate",
                index: index.to_string(),
                fail,
            };
            s.tasks.push(task.clone());
            task_info(s.tasks.len() - 1, &task)
        }
        (Method::GET, ["tasks", uid]) => {
            let uid: usize = uid.parse().unwrap();
            let Some(task) = s.tasks.get(uid).cloned() else {
                return meili_error(StatusCode::NOT_FOUND, "task_not_found", "no such task");
            };
            let error = task.fail.then(|| json!({
                "message": "Document `x` has too many fields", "code": "max_fields_limit_exceeded",
                "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#max_fields_limit_exceeded",
            }));
            axum::Json(json!({
                "uid": uid, "indexUid": task.index,
                "status": if task.fail { "failed" } else { "succeeded" },
                "type": task.kind, "details": null, "duration": "PT0.05S",
                "enqueuedAt": AT, "startedAt": AT, "finishedAt": AT,
                "canceledBy": null, "error": error,
            }))
            .into_response()
        }
        (Method::POST, ["indexes", _, "search"]) => {
            axum::Json(s.search_reply.clone()).into_response()
        }
        _ => meili_error(StatusCode::NOT_FOUND, "not_found", "no such route"),
    }
}

async fn start_stand_in() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = axum::Router::new()
        .fallback(stand_in)
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, shared)
}

fn take_seen(shared: &Shared) -> Vec<Seen> {
    std::mem::take(&mut shared.lock().unwrap().seen)
}

fn route(seen: &Seen) -> String {
    match &seen.query {
        Some(q) => format!("{} {}?{}", seen.method, seen.path, q),
        None => format!("{} {}", seen.method, seen.path),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meilisearch_adapter_against_wire_level_stand_in_checks_exact_requests() {
    let (url, shared) = start_stand_in().await;
    let mut config = MeiliConfig::new(&url, Some(KEY.into()));
    config.poll_interval = Duration::from_millis(5);
    config.task_timeout = Duration::from_secs(5);
    let meili = MeiliIndex::new(config.clone()).unwrap();

    // Settings: one PATCH per index, the task waited for, the settings read back.
    meili.apply_settings().await.unwrap();
    let seen = take_seen(&shared);
    let routes: Vec<String> = seen.iter().map(route).collect();
    assert_eq!(
        routes,
        [
            "PATCH /indexes/products/settings",
            "GET /tasks/0",
            "GET /tasks/0",
            "GET /indexes/products/settings",
            "PATCH /indexes/orders/settings",
            "GET /tasks/1",
            "GET /tasks/1",
            "GET /indexes/orders/settings",
        ]
    );
    assert!(seen
        .iter()
        .all(|s| s.auth.as_deref() == Some("Bearer wire-test-key")));
    let products = &seen[0].body;
    assert_eq!(
        products["searchableAttributes"],
        json!(["name", "brand", "category", "sku", "description"])
    );
    assert_eq!(
        products["filterableAttributes"],
        json!([
            "active",
            "category",
            "brand",
            "in_stock",
            "warehouses",
            "price_eur",
            "price_usd",
            "price_gbp"
        ])
    );
    assert_eq!(
        products["sortableAttributes"],
        json!(["price_eur", "price_usd", "price_gbp", "created_at"])
    );
    assert_eq!(products["typoTolerance"]["enabled"], true);
    assert_eq!(
        seen[4].body["filterableAttributes"],
        json!(["status", "customer_id"])
    );
    assert_eq!(seen[4].body["sortableAttributes"], json!(["placed_at"]));

    // Settings someone changed behind the engine's back are noticed.
    shared
        .lock()
        .unwrap()
        .tampered
        .insert("orders".into(), json!({"searchableAttributes": ["*"]}));
    let err = meili.apply_settings().await.unwrap_err();
    assert!(
        matches!(err, SearchError::Settings { ref index, .. } if index == "orders"),
        "{err:?}"
    );
    shared.lock().unwrap().tampered.clear();
    take_seen(&shared);

    // Documents: a store with two products and an order, folded.
    let Some(store) = tests::fresh_store(
        BackendKind::Sqlite,
        infra::StoreConfig::default(),
        Arc::new(infra::SystemClock),
    )
    .await
    else {
        return;
    };
    let mut created = aggregates::product::ProductCreated::example();
    append::<aggregates::product::Product>(
        &store,
        created.sku.as_str(),
        vec![created.clone().into()],
    )
    .await;
    created.sku = Sku::parse("CUP.2_B").unwrap();
    created.name = "Cup".into();
    append::<aggregates::product::Product>(&store, "CUP.2_B", vec![created.into()]).await;
    let head = append::<Stock>(&store, "CUP.2_B", vec![received("CUP.2_B", "BER-1", 3)]).await;
    documents::catch_up(&store, head, 100).await.unwrap();
    let name = meili.checkpoint_name(Which::Products);

    // The first document task fails: the checkpoint stays, the error is kept.
    shared.lock().unwrap().fail_next_documents = true;
    let err = meili.sync(&store, Which::Products).await.unwrap_err();
    assert!(
        matches!(&err, SearchError::TaskFailed { code, .. } if code == "max_fields_limit_exceeded"),
        "{err:?}"
    );
    assert_eq!(documents::checkpoint(&store, &name).await.unwrap(), 0);
    assert!(documents::last_error(&store, &name)
        .await
        .unwrap()
        .unwrap()
        .contains("too many fields"));
    // Read-your-writes waits for Meilisearch: the products are folded but not indexed;
    // no order document is pending, so order searches are up to date.
    assert!(!meili.reached(&store, Which::Products, head).await.unwrap());
    assert!(meili.reached(&store, Which::Orders, head).await.unwrap());
    let failed = take_seen(&shared);
    assert_eq!(
        route(&failed[0]),
        "PUT /indexes/products/documents?primaryKey=id"
    );

    // Retried: the same documents again, and now the checkpoint moves.
    assert_eq!(meili.sync(&store, Which::Products).await.unwrap(), 2);
    assert_eq!(documents::checkpoint(&store, &name).await.unwrap(), head);
    assert_eq!(documents::last_error(&store, &name).await.unwrap(), None);
    assert!(meili.reached(&store, Which::Products, head).await.unwrap());
    let retried = take_seen(&shared);
    assert_eq!(
        route(&retried[0]),
        "PUT /indexes/products/documents?primaryKey=id"
    );
    assert_eq!(
        retried[0].body, failed[0].body,
        "a failed batch is sent again, not skipped"
    );
    assert!(retried[1..]
        .iter()
        .all(|s| route(s).starts_with("GET /tasks/")));
    let docs = retried[0].body.as_array().unwrap();
    assert_eq!(docs.len(), 2);
    let cup = docs.iter().find(|d| d["sku"] == "CUP.2_B").unwrap();
    assert_eq!(
        cup["id"], "CUP_-2__B",
        "ids escape what Meilisearch refuses"
    );
    assert_eq!(cup["price_eur"], 1999);
    assert_eq!(cup["prices"], json!({"EUR": 1999}));
    assert_eq!(cup["in_stock"], true);
    assert_eq!(cup["warehouses"], json!(["BER-1"]));
    assert_eq!(cup["active"], true);
    assert!(cup["created_at"].is_i64());

    // Nothing new: no request at all.
    assert_eq!(meili.sync(&store, Which::Products).await.unwrap(), 0);
    assert!(take_seen(&shared).is_empty());

    // Search: the exact query body, and the reply mapped back.
    shared.lock().unwrap().search_reply = json!({
        "hits": [{
            "id": "CUP_-2__B", "sku": "CUP.2_B", "name": "Cup", "description": "d", "brand": "b",
            "category": "c", "active": true, "prices": {"EUR": 1999}, "price_eur": 1999,
            "available": 3, "in_stock": true, "warehouses": ["BER-1"],
            "created_at": 1_793_525_400_000i64, "updated_at": null,
        }],
        "page": 1, "hitsPerPage": 10, "totalHits": 1, "totalPages": 1,
        "facetDistribution": {"category": {"c": 1}, "brand": {"b": 1}},
        "processingTimeMs": 1, "query": "cu",
    });
    let page = meili
        .search_products(&ProductQuery {
            q: "cu".into(),
            categories: vec!["c".into(), "say \"hi\"".into()],
            currency: "EUR".into(),
            price_min: Some(100),
            in_stock: Some(true),
            warehouse: Some("BER-1".into()),
            sort: ProductSort::PriceAsc,
            page: 1,
            limit: 10,
            facets: true,
            ..ProductQuery::default()
        })
        .await
        .unwrap();
    let seen = take_seen(&shared);
    assert_eq!(route(&seen[0]), "POST /indexes/products/search");
    assert_eq!(
        seen[0].body,
        json!({
            "q": "cu",
            "filter": "active = true AND category IN [\"c\", \"say \\\"hi\\\"\"] AND price_eur >= 100 AND in_stock = true AND warehouses = \"BER-1\"",
            "sort": ["price_eur:asc"],
            "facets": ["category", "brand"],
            "page": 1,
            "hitsPerPage": 10,
        })
    );
    assert_eq!(page.total, 1);
    assert_eq!(page.hits[0].sku, "CUP.2_B");
    assert_eq!(
        page.hits[0].created_at.unwrap().timestamp_millis(),
        1_793_525_400_000
    );
    assert_eq!(page.facets.unwrap()["category"]["c"], 1);

    // A wrong key: Meilisearch's error comes back as an error, nothing is moved.
    let wrong = MeiliIndex::new(MeiliConfig {
        api_key: Some("wrong".into()),
        ..config
    })
    .unwrap();
    let err = wrong.apply_settings().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(err.to_string().contains("API key"), "{err}");
    let err = wrong
        .search_products(&ProductQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(&err, SearchError::Meili(_)), "{err:?}");
    assert!(err.to_string().contains("API key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meilisearch_real_server_when_meili_url_is_set() {
    let Ok(url) = std::env::var("MEILI_URL") else {
        println!("SKIPPED: MEILI_URL not set");
        return;
    };
    let key = std::env::var("MEILI_KEY").ok();
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let mut config = MeiliConfig::new(url, key);
    config.products_index = format!("products_{suffix}");
    config.orders_index = format!("orders_{suffix}");
    let meili = MeiliIndex::new(config).unwrap();
    meili.apply_settings().await.unwrap();
    let store = tests::fresh_store(
        BackendKind::Sqlite,
        infra::StoreConfig::default(),
        Arc::new(infra::SystemClock),
    )
    .await
    .unwrap();
    let created = aggregates::product::ProductCreated::example();
    let head = append::<aggregates::product::Product>(
        &store,
        created.sku.as_str(),
        vec![created.clone().into()],
    )
    .await;
    documents::catch_up(&store, head, 100).await.unwrap();
    assert_eq!(meili.sync(&store, Which::Products).await.unwrap(), 1);
    // A typo still finds it, and the filters and sort are accepted.
    let page = meili
        .search_products(&ProductQuery {
            q: "tshrit".into(),
            price_min: Some(1),
            sort: ProductSort::PriceAsc,
            facets: true,
            ..ProductQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.hits.len(), 1, "{page:?}");
    assert_eq!(page.hits[0].sku, created.sku.as_str());
}

/// The running indexer on each backend: settings first, then the folded documents in a
/// task, and the index's checkpoint once the task succeeded (on PostgreSQL under the
/// sender lock).
async fn the_indexer_sends_folded_documents_to_meilisearch(kind: BackendKind) {
    let Some(store) = tests::fresh_store(
        kind,
        infra::StoreConfig::default(),
        Arc::new(infra::SystemClock),
    )
    .await
    else {
        return;
    };
    let (url, shared) = start_stand_in().await;
    let mut config = MeiliConfig::new(&url, Some(KEY.into()));
    config.poll_interval = Duration::from_millis(5);
    let meili = MeiliIndex::new(config).unwrap();
    let indexer = SearchIndexer::new(store.clone(), Some(meili.clone()), IndexerConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(indexer.run(async move {
        let _ = stopped.await;
    }));
    let created = aggregates::product::ProductCreated::example();
    let head = append::<aggregates::product::Product>(
        &store,
        created.sku.as_str(),
        vec![created.clone().into()],
    )
    .await;
    let name = meili.checkpoint_name(Which::Products);
    let reached = tests::eventually(Duration::from_secs(20), || {
        let (store, name) = (store.clone(), name.clone());
        async move { (documents::checkpoint(&store, &name).await.unwrap() >= head).then_some(()) }
    })
    .await;
    assert!(
        reached.is_some(),
        "the products checkpoint never reached {head}"
    );
    assert!(meili.reached(&store, Which::Products, head).await.unwrap());
    let _ = stop.send(());
    task.await.unwrap();
    let seen = take_seen(&shared);
    let routes: Vec<String> = seen.iter().map(route).collect();
    assert_eq!(routes[0], "PATCH /indexes/products/settings", "{routes:?}");
    let sent: Vec<&Seen> = seen
        .iter()
        .filter(|s| route(s) == "PUT /indexes/products/documents?primaryKey=id")
        .collect();
    assert_eq!(sent.len(), 1, "{routes:?}");
    assert_eq!(sent[0].body[0]["sku"], created.sku.as_str());
    assert_eq!(sent[0].body[0]["name"], created.name);
}

on_both_backends!(the_indexer_sends_folded_documents_to_meilisearch);
