//! Shared support for the black-box tests: fresh stores per test on both backends, a
//! small test aggregate, and polling helpers.
//!
//! Service-backed tests need PostgreSQL at `COMMERCE_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), JetStream tests NATS at
//! `COMMERCE_TEST_NATS_URL` (default `127.0.0.1:4222`). When a service cannot be reached
//! the test fails if `CI` is set, and is skipped with a printed reason otherwise.

pub mod api;
pub mod counter;
pub mod saga;
pub mod server;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use infra::clock::{Clock, ManualClock};
use infra::{Store, StoreConfig};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Executor;

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL URL tests use.
pub fn test_database_url() -> String {
    std::env::var("COMMERCE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_string())
}

/// True when running under CI, where every service-backed test must run.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// Fails (in CI) or prints a skip reason (elsewhere) for an unreachable service.
pub fn service_unavailable(service: &str, detail: &str) {
    assert!(
        !in_ci(),
        "{service} is required in CI but unreachable: {detail}"
    );
    eprintln!("SKIPPED: {service} unreachable ({detail}); set CI=1 to make this a failure");
}

pub const DEFAULT_TEST_NATS_URL: &str = "127.0.0.1:4222";

/// The NATS URL tests use: `COMMERCE_TEST_NATS_URL`, default `127.0.0.1:4222`.
pub fn test_nats_url() -> String {
    std::env::var("COMMERCE_TEST_NATS_URL").unwrap_or_else(|_| DEFAULT_TEST_NATS_URL.to_string())
}

/// A new NATS connection, or `None` (skip; a failure under CI) when the server is
/// unreachable.
pub async fn nats() -> Option<async_nats::Client> {
    let url = test_nats_url();
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(3))
        .connect(url.as_str());
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(client)) => Some(client),
        Ok(Err(e)) => {
            service_unavailable("NATS", &format!("{url}: {e}"));
            None
        }
        Err(_) => {
            service_unavailable("NATS", &format!("{url}: connect timed out"));
            None
        }
    }
}

/// A fixed start time for deterministic tests.
pub fn test_clock() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap())
}

/// Which backend a contract test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Sqlite,
}

/// A freshly migrated, empty store on `kind`, or `None` when the test must be skipped.
///
/// PostgreSQL stores live in a new schema of the test database; SQLite stores in a new
/// file under the system temp folder.
pub async fn fresh_store(
    kind: BackendKind,
    config: StoreConfig,
    clock: Arc<dyn Clock>,
) -> Option<Store> {
    let store = match kind {
        BackendKind::Postgres => {
            let url = test_database_url();
            let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
            let admin = match sqlx::PgPool::connect(&url).await {
                Ok(pool) => pool,
                Err(e) => {
                    service_unavailable("PostgreSQL", &format!("{url}: {e}"));
                    return None;
                }
            };
            admin
                .execute(format!("CREATE SCHEMA {schema}").as_str())
                .await
                .expect("create test schema");
            admin.close().await;
            let options = PgConnectOptions::from_str(&url)
                .expect("valid test URL")
                .options([("search_path", schema.as_str())]);
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await
                .expect("connect to the test schema");
            Store::from_pg_pool(pool, config, clock)
        }
        BackendKind::Sqlite => {
            let url = format!("sqlite:{}", temp_path("commerce.db").display());
            Store::connect_with_clock(&url, config, clock)
                .await
                .expect("open SQLite store")
        }
    };
    store.migrate().await.expect("migrate");
    Some(store)
}

/// A path in a new temporary folder.
pub fn temp_path(file: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("commerce-test-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir.join(file)
}

/// Polls `check` until it returns `Some` or `deadline` passes.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A relay configuration of its own for one test: a JetStream stream, subject prefix and
/// relay name no other test uses, with short waits.
pub fn scratch_relay_config() -> infra::relay::RelayConfig {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let id = &id[id.len() - 12..];
    infra::relay::RelayConfig {
        name: format!("relay-{id}"),
        stream: format!("TEST_{id}"),
        subject_prefix: format!("t{id}.commerce"),
        max_age: Duration::from_secs(3600),
        checkpoint_interval: Duration::from_millis(50),
        lock_retry: Duration::from_millis(50),
        retry_backoff: Duration::from_millis(100),
        ..infra::relay::RelayConfig::default()
    }
}

/// Every command id recorded in the log's metadata, with the stream it appended to and
/// the versions it appended, once the log's gap-safe head has reached its last event.
/// A command appended twice shows as a second stream (a panic here) or as a gap between
/// its versions.
pub async fn appends_by_command(
    store: &Store,
) -> std::collections::BTreeMap<String, (String, Vec<i64>)> {
    let last = store.last_position().await.unwrap();
    assert!(store
        .wait_for_position(last, Duration::from_secs(60))
        .await
        .unwrap());
    let mut commands = std::collections::BTreeMap::<String, (String, Vec<i64>)>::new();
    let mut after = 0;
    while after < last {
        let page = store.read_all(after, 1_000).await.unwrap();
        assert!(!page.is_empty(), "the log ends before {last}");
        for event in &page {
            let metadata: infra::store::EventMetadata =
                serde_json::from_str(&event.metadata_text).unwrap();
            after = event.position;
            let Some(id) = metadata.get(infra::command::COMMAND_ID) else {
                continue;
            };
            let stream = format!("{}/{}", event.stream_type, event.stream_id);
            let entry = commands
                .entry(id.clone())
                .or_insert_with(|| (stream.clone(), Vec::new()));
            assert_eq!(entry.0, stream, "command {id} appended to two streams");
            entry.1.push(event.version);
        }
    }
    commands
}
