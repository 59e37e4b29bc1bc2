//! A real HTTP server per test: a fresh store (PostgreSQL schema or SQLite file), the
//! full `api::http::app` on a loopback TCP port, HS256 tokens for every role, and small
//! request helpers that always return status, headers and body.
//!
//! The server stops when the [`TestServer`] is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aggregates::CustomerId;
use api::http::principal::Role;
use api::http::{app, app_with, ApiRouter, AppState, Auth};
use infra::clock::SystemClock;
use infra::{Store, StoreConfig};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{fresh_store, BackendKind};

/// The HS256 secret every test server verifies tokens with.
pub const TEST_JWT_SECRET: &[u8] = b"commerce-test-secret-0123456789abcdef";

/// How long minted test tokens live.
const TOKEN_TTL: Duration = Duration::from_secs(3_600);

/// A running API server over a fresh store.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub base_url: String,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub store: Store,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// What a request answered.
#[derive(Debug, Clone)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as JSON, or `Value::Null` when it is not JSON.
    pub body: Value,
    pub text: String,
}

impl TestResponse {
    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestServer {
    /// A server over a fresh store on `kind`, verifying HS256 tokens signed with
    /// [`TEST_JWT_SECRET`]; `None` when the backend is unavailable (test skipped).
    pub async fn start(kind: BackendKind) -> Option<TestServer> {
        Self::start_with(kind, |state| state).await
    }

    /// Like [`TestServer::start`], with the state adjusted by `configure` (e.g. lower
    /// rate limits, other auth keys).
    pub async fn start_with(
        kind: BackendKind,
        configure: impl FnOnce(AppState) -> AppState,
    ) -> Option<TestServer> {
        let store = fresh_store(kind, StoreConfig::default(), Arc::new(SystemClock)).await?;
        Some(Self::serve(store, configure).await)
    }

    /// Like [`TestServer::start_with`], serving `domain` in place of the real domain
    /// routes, under the full platform (auth, limits, metrics, problems): for tests of
    /// the platform itself.
    pub async fn start_with_routes(
        kind: BackendKind,
        configure: impl FnOnce(AppState) -> AppState,
        domain: ApiRouter,
    ) -> Option<TestServer> {
        let store = fresh_store(kind, StoreConfig::default(), Arc::new(SystemClock)).await?;
        Some(Self::serve_routes(store, configure, Some(domain)).await)
    }

    /// A server over an existing `store` (for tests that need a particular clock or
    /// configuration).
    pub async fn serve(store: Store, configure: impl FnOnce(AppState) -> AppState) -> TestServer {
        Self::serve_routes(store, configure, None).await
    }

    async fn serve_routes(
        store: Store,
        configure: impl FnOnce(AppState) -> AppState,
        domain: Option<ApiRouter>,
    ) -> TestServer {
        let auth = Auth::default().with_hs256_secret(TEST_JWT_SECRET);
        let state = configure(AppState::new(store.clone()).with_auth(auth));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let router = match domain {
            Some(domain) => app_with(state, domain),
            None => app(state),
        };
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        TestServer {
            base_url: format!("http://{addr}"),
            addr,
            client,
            store,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// A token for `subject` in `role`, valid for an hour.
    pub fn token(&self, role: Role, subject: &str) -> String {
        api::token::mint(
            TEST_JWT_SECRET,
            role,
            subject,
            TOKEN_TTL,
            chrono::Utc::now(),
        )
        .expect("mint a test token")
    }

    /// A new customer id and a customer token for it.
    pub fn new_customer(&self) -> (CustomerId, String) {
        let id = CustomerId::from_uuid(uuid::Uuid::now_v7());
        let token = self.token(Role::Customer, &id.to_string());
        (id, token)
    }

    /// A staff token.
    pub fn staff(&self) -> String {
        self.token(Role::Staff, "staff-test")
    }

    /// An admin token.
    pub fn admin(&self) -> String {
        self.token(Role::Admin, "admin-test")
    }

    /// A service token (payment provider / carrier callbacks).
    pub fn service(&self) -> String {
        self.token(Role::Service, "service-test")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.request(Method::GET, path, token, None, &[]).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.request(Method::DELETE, path, token, None, &[]).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> TestResponse {
        self.request(Method::POST, path, token, body, &[]).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Option<Value>) -> TestResponse {
        self.request(Method::PUT, path, token, body, &[]).await
    }

    pub async fn patch(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        self.request(Method::PATCH, path, token, body, &[]).await
    }

    /// A POST with extra headers (`Idempotency-Key`, `If-Match`, …).
    pub async fn post_with_headers(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        self.request(Method::POST, path, token, body, headers).await
    }

    /// Any request. A JSON `body` is sent as `application/json`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let body = body.map(|b| serde_json::to_vec(&b).expect("serialise body"));
        self.send(method, path, token, body, headers).await
    }

    /// Any request with a raw body (malformed JSON, oversize bodies). Sent as
    /// `application/json` unless `headers` says otherwise.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let mut extra = HeaderMap::new();
        for (name, value) in headers {
            extra.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        if let Some(body) = body {
            if !extra.contains_key(CONTENT_TYPE) {
                request = request.header(CONTENT_TYPE, "application/json");
            }
            request = request.body(body);
        }
        let response = request
            .headers(extra)
            .send()
            .await
            .expect("request reaches the test server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        TestResponse {
            status,
            headers,
            body,
            text,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // Keep-alive connections would hold a graceful shutdown open; the test is over.
        self.task.abort();
    }
}
