//! The HTTP API in-process: health endpoints over a real SQLite store.

use std::sync::Arc;

use api::http::{app, AppState};
use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use infra::{Store, StoreConfig, SystemClock};
use tower::ServiceExt;

async fn store() -> Store {
    let dir = std::env::temp_dir().join(format!("commerce-api-{}", uuid::Uuid::now_v7().simple()));
    let url = format!("sqlite:{}", dir.join("commerce.db").display());
    let store = Store::connect_with_clock(&url, StoreConfig::default(), Arc::new(SystemClock))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

async fn get(store: Store, path: &str) -> (StatusCode, String, serde_json::Value) {
    let response = app(AppState::new(store))
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (
        status,
        content_type,
        serde_json::from_slice(&body).unwrap_or_default(),
    )
}

#[tokio::test]
async fn live_and_ready_answer_when_the_store_is_up() {
    let store = store().await;
    let (status, _, body) = get(store.clone(), "/health/live").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, _, body) = get(store, "/health/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["backend"], "sqlite");
    assert_eq!(body["head_position"], 0);
}

#[tokio::test]
async fn ready_is_a_problem_when_the_store_is_gone() {
    let store = store().await;
    store.sqlite_pool().unwrap().close().await;
    let (status, content_type, body) = get(store, "/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["code"], "not_ready");
    assert_eq!(body["status"], 503);
}
