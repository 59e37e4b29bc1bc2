//! `commerce bench views`: what read-your-writes costs. Each sample is a cart command
//! followed by `GET /me/cart` over the full HTTP stack, with the projection runner beside
//! the API as `commerce serve` runs it. The baseline reads right away (and may miss the
//! write: the stale share is reported); the measured read passes the command's position
//! as `min_position` and waits for the carts view. The ratio is their latency.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aggregates::product::{CreateProduct, Product, ProductCommand};
use aggregates::{Currency, Money, ProductId, Sku};
use clap::Args;
use infra::command::CommandContext;
use infra::projection::{ProjectionRunner, RunnerConfig};
use infra::Store;
use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};
use uuid::Uuid;

use super::relay::fresh_store;
use super::round2;
use crate::cli::DEFAULT_DATABASE_URL;
use crate::http::principal::Role;
use crate::http::{app, AppState};

/// The HS256 secret of the benchmark's own tokens (the server lives only for the run).
const SECRET: &[u8] = b"commerce-bench-views-secret-0123456789";
const SKU: &str = "BENCH-VIEW-1";

#[derive(Debug, Args)]
pub struct ViewsArgs {
    /// Database to measure on: `postgres://…` or `sqlite:PATH`. The benchmark works in a
    /// fresh schema (PostgreSQL) or a fresh file next to PATH (SQLite) and removes it.
    #[arg(long, env = "COMMERCE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Command-then-read samples of each kind.
    #[arg(long, default_value_t = 500)]
    pub samples: usize,
    /// Print only the JSON line, no table.
    #[arg(long)]
    pub json: bool,
}

pub async fn views(args: ViewsArgs) -> Result<(), String> {
    let run_id = Uuid::now_v7().simple().to_string();
    let (store, scratch) = fresh_store(&args.database_url, &run_id).await?;
    let result = measure(&store, args.samples.max(1)).await;
    scratch.remove().await;
    let figures = result?;
    if !args.json {
        println!(
            "read-your-writes on {} ({} samples of each)",
            store.backend_name(),
            args.samples
        );
        for (name, key) in [
            ("command + read, p50 ms", "plain_p50_ms"),
            ("command + read, p95 ms", "plain_p95_ms"),
            ("  reads missing the write", "plain_stale_share"),
            ("command + read at position, p50 ms", "consistent_p50_ms"),
            ("command + read at position, p95 ms", "consistent_p95_ms"),
            ("  reads missing the write", "consistent_stale_share"),
            ("ratio p50 (at position / plain)", "ratio_p50"),
        ] {
            println!("  {name:<38} {}", figures[key]);
        }
    }
    println!("{figures}");
    Ok(())
}

/// Latencies in ms and how many reads did not show the write just made.
struct Samples {
    ms: Vec<f64>,
    stale: usize,
}

async fn measure(store: &Store, samples: usize) -> Result<Value, String> {
    let state = AppState::new(store.clone()).for_benchmarks(SECRET);
    let now = store.clock().now();
    let command = ProductCommand::CreateProduct(CreateProduct {
        product_id: ProductId::from_uuid(Uuid::now_v7()),
        sku: Sku::parse(SKU).map_err(|e| e.to_string())?,
        name: "Bench mug".into(),
        description: String::new(),
        category: "bench".into(),
        brand: "Bench".into(),
        attributes: Default::default(),
        prices: [(Currency::EUR, Money::new(1_000, Currency::EUR))].into(),
        at: now,
    });
    state
        .commands
        .execute::<Product>(&CommandContext::new("bench:setup"), SKU, command)
        .await
        .map_err(|e| format!("cannot create the product: {e}"))?;

    let runner = ProjectionRunner::new(
        store.clone(),
        projections::all().to_vec(),
        RunnerConfig::default(),
    );
    let state = state.with_projections(runner.handle());
    let (stop_runner, runner_stopped) = tokio::sync::oneshot::channel::<()>();
    let runner_task = tokio::spawn(runner.run(async move {
        let _ = runner_stopped.await;
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                let _ = server_stopped.await;
            })
            .await;
    });

    let client = Client::new(addr)?;
    let result = async {
        let cart = client.open_cart().await?;
        // Warm-up: connections, statement caches, the runner's first load.
        client.round(&cart, 20, false).await?;
        let plain = client.round(&cart, samples, false).await?;
        let consistent = client.round(&cart, samples, true).await?;
        Ok::<_, String>((plain, consistent))
    }
    .await;
    let _ = stop_server.send(());
    let _ = stop_runner.send(());
    let _ = server.await;
    let _ = runner_task.await;
    let (plain, consistent) = result?;

    let (plain_p50, plain_p95) = percentiles(plain.ms.clone());
    let (consistent_p50, consistent_p95) = percentiles(consistent.ms.clone());
    let share = |s: &Samples| round2(s.stale as f64 / s.ms.len().max(1) as f64);
    Ok(json!({
        "bench": "views",
        "backend": store.backend_name(),
        "samples": samples,
        "plain_p50_ms": round2(plain_p50),
        "plain_p95_ms": round2(plain_p95),
        "plain_stale_share": share(&plain),
        "consistent_p50_ms": round2(consistent_p50),
        "consistent_p95_ms": round2(consistent_p95),
        "consistent_stale_share": share(&consistent),
        "ratio_p50": round2(consistent_p50 / plain_p50.max(f64::EPSILON)),
    }))
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((ms.len().saturating_sub(1)) as f64 * p).round() as usize;
        ms.get(rank).copied().unwrap_or(0.0)
    };
    (at(0.5), at(0.95))
}

/// A customer of the benchmark's server.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(addr: SocketAddr) -> Result<Self, String> {
        let customer = Uuid::now_v7().to_string();
        let token = crate::token::mint(
            SECRET,
            Role::Customer,
            &customer,
            Duration::from_secs(3_600),
            chrono::Utc::now(),
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
            token,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("the API answered {status}: {body}"))
        }
    }

    /// A view read: `None` for a 404 (the view does not show the cart yet).
    async fn read(&self, url: String) -> Result<Option<Value>, String> {
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(Some(body))
        } else {
            Err(format!("the API answered {status}: {body}"))
        }
    }

    async fn open_cart(&self) -> Result<String, String> {
        let reply = self
            .send(
                self.http
                    .post(format!("{}/carts", self.base))
                    .header(CONTENT_TYPE, "application/json")
                    .body(json!({"currency": "EUR"}).to_string()),
            )
            .await?;
        reply["stream"]
            .as_str()
            .and_then(|s| s.strip_prefix("cart/"))
            .map(str::to_string)
            .ok_or_else(|| format!("no cart stream in {reply}"))
    }

    /// `samples` commands, alternately adding and removing the line, each followed by a
    /// read of `/me/cart` (at the command's position when `consistent`).
    async fn round(&self, cart: &str, samples: usize, consistent: bool) -> Result<Samples, String> {
        let mut out = Samples {
            ms: Vec::with_capacity(samples),
            stale: 0,
        };
        for i in 0..samples {
            let adding = i % 2 == 0;
            let started = Instant::now();
            let reply = if adding {
                self.send(
                    self.http
                        .post(format!("{}/carts/{cart}/items", self.base))
                        .header(CONTENT_TYPE, "application/json")
                        .body(json!({"sku": SKU, "quantity": 1}).to_string()),
                )
                .await?
            } else {
                self.send(
                    self.http
                        .delete(format!("{}/carts/{cart}/items/{SKU}", self.base)),
                )
                .await?
            };
            let mut url = format!("{}/me/cart", self.base);
            if consistent {
                let position = reply["position"].as_i64().unwrap_or(0);
                url.push_str(&format!("?min_position={position}"));
            }
            let view = self.read(url).await?;
            out.ms.push(started.elapsed().as_secs_f64() * 1_000.0);
            let expected = if adding { 1 } else { 0 };
            if view.map(|v| v["item_count"].as_i64()) != Some(Some(expected)) {
                out.stale += 1;
            }
        }
        Ok(out)
    }
}
