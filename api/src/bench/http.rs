//! `commerce bench http`: the whole HTTP path (auth, idempotency, command layer, store)
//! under a mixed load of keep-alive clients, against a trivial axum route served by the
//! same runtime in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregates::CustomerId;
use clap::Args;
use infra::command::Commands;
use serde_json::json;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::http::principal::Role;
use crate::http::{app, AppState};

/// Options of `commerce bench http`.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Store to run on: `sqlite:PATH` (a fresh file next to PATH) or `postgres://…` (a
    /// fresh schema, dropped afterwards).
    #[arg(
        long,
        env = "COMMERCE_DATABASE_URL",
        default_value = "sqlite:./data/bench-http.db"
    )]
    pub database_url: String,
    /// Concurrent keep-alive clients.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Share of requests that are commands (the rest are reads), in percent.
    #[arg(long, default_value_t = 30)]
    pub command_percent: u32,
    /// Products seeded before the run.
    #[arg(long, default_value_t = 200)]
    pub products: usize,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Latency figures of one measurement.
#[derive(Debug, Clone, Copy)]
struct Figures {
    requests: usize,
    commands: usize,
    errors: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Figures {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

const SECRET: &[u8] = b"bench-http-secret-not-for-production";
const CART_SKUS: usize = 10;

pub async fn http(args: HttpArgs) -> Result<(), String> {
    let run_id = Uuid::now_v7().simple().to_string();
    let (store, scratch) = super::relay::fresh_store(&args.database_url, &run_id).await?;
    let result = run_on(&args, &store).await;
    scratch.remove().await;
    result
}

async fn run_on(args: &HttpArgs, store: &infra::Store) -> Result<(), String> {
    let commands = Commands::new(store.clone());
    crate::seed::seed(&commands, args.products)
        .await
        .map_err(|e| format!("seeding failed: {e}"))?;

    let state = AppState::new(store.clone()).for_benchmarks(SECRET);
    let engine = serve(app(state)).await?;
    let baseline =
        serve(axum::Router::new().route("/", axum::routing::get(|| async { "ok" }))).await?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let skus: Arc<Vec<String>> = Arc::new(
        (1..=args.products.min(CART_SKUS * 4))
            .map(|n| sku_of(n, args.products))
            .collect(),
    );
    let clients = prepare_clients(&client, &engine, args.concurrency, &skus).await?;

    let duration = Duration::from_secs_f64(args.seconds);
    // Warm both servers before measuring.
    drive_baseline(
        &client,
        &baseline,
        args.concurrency,
        Duration::from_millis(500),
    )
    .await;
    let base = drive_baseline(&client, &baseline, args.concurrency, duration).await;
    let mixed = drive_mixed(&client, &engine, &clients, args.command_percent, duration).await;

    let backend = store.backend_name();
    if !args.json {
        println!(
            "commerce bench http: {} clients, {:.0} s each, {} % commands, backend {backend}",
            args.concurrency, args.seconds, args.command_percent
        );
        println!(
            "{:<28} {:>12} {:>10} {:>10} {:>8}",
            "", "requests/s", "p50 ms", "p99 ms", "errors"
        );
        for (name, f) in [
            ("baseline (trivial route)", base),
            ("engine (mixed)", mixed),
        ] {
            println!(
                "{name:<28} {:>12.0} {:>10.2} {:>10.2} {:>8}",
                f.rps(),
                f.p50_ms,
                f.p99_ms,
                f.errors
            );
        }
        println!(
            "commands/s {:.0}; ratio vs baseline {:.2}",
            mixed.commands as f64 / mixed.seconds,
            mixed.rps() / base.rps()
        );
    }
    println!(
        "{}",
        json!({
            "mixed_rps": mixed.rps().round(),
            "mixed_p50_ms": round2(mixed.p50_ms),
            "mixed_p99_ms": round2(mixed.p99_ms),
            "commands_per_s": (mixed.commands as f64 / mixed.seconds).round(),
            "errors": mixed.errors,
            "baseline_rps": base.rps().round(),
            "baseline_p99_ms": round2(base.p99_ms),
            "ratio_vs_baseline": round2(mixed.rps() / base.rps()),
            "concurrency": args.concurrency,
            "backend": backend,
        })
    );
    if mixed.errors > 0 {
        return Err(format!("{} requests failed during the run", mixed.errors));
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The SKU the seed gives product `n` (1-based).
fn sku_of(n: usize, _count: usize) -> String {
    crate::seed::sku_for(n).as_str().to_string()
}

/// Serves `router` on a loopback port; the task ends with the process.
async fn serve(router: axum::Router) -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

/// One virtual customer: a token and an open cart holding `CART_SKUS` lines.
#[derive(Debug, Clone)]
struct VirtualClient {
    token: String,
    cart: String,
    skus: Vec<String>,
}

async fn prepare_clients(
    client: &reqwest::Client,
    base: &str,
    n: usize,
    skus: &[String],
) -> Result<Vec<VirtualClient>, String> {
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let customer = CustomerId::from_uuid(Uuid::now_v7());
        let token = crate::token::mint(
            SECRET,
            Role::Customer,
            &customer.to_string(),
            Duration::from_secs(3600),
            chrono::Utc::now(),
        )
        .map_err(|e| e.to_string())?;
        let reply = client
            .post(format!("{base}/carts"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(json!({ "currency": "EUR" }).to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !reply.status().is_success() {
            return Err(format!(
                "opening a cart failed: {}",
                reply.text().await.unwrap_or_default()
            ));
        }
        let body: serde_json::Value =
            serde_json::from_slice(&reply.bytes().await.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let cart = body["stream"]
            .as_str()
            .and_then(|s| s.strip_prefix("cart/"))
            .ok_or("the cart reply has no stream")?
            .to_string();
        let mine: Vec<String> = (0..CART_SKUS)
            .map(|k| skus[(i + k) % skus.len()].clone())
            .collect();
        for sku in &mine {
            let reply = client
                .post(format!("{base}/carts/{cart}/items"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(json!({ "sku": sku, "quantity": 1 }).to_string())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !reply.status().is_success() {
                return Err(format!(
                    "adding {sku} failed: {}",
                    reply.text().await.unwrap_or_default()
                ));
            }
        }
        clients.push(VirtualClient {
            token,
            cart,
            skus: mine,
        });
    }
    Ok(clients)
}

async fn drive_baseline(
    client: &reqwest::Client,
    base: &str,
    concurrency: usize,
    duration: Duration,
) -> Figures {
    let until = Instant::now() + duration;
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let url = format!("{base}/");
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0;
                while Instant::now() < until {
                    let t = Instant::now();
                    match client.get(&url).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                        }
                        _ => errors += 1,
                    }
                    lat.push(t.elapsed());
                }
                (lat, 0usize, errors)
            })
        })
        .collect();
    collect(tasks, started).await
}

async fn drive_mixed(
    client: &reqwest::Client,
    base: &str,
    clients: &[VirtualClient],
    command_percent: u32,
    duration: Duration,
) -> Figures {
    let until = Instant::now() + duration;
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, vc)| {
            let client = client.clone();
            let base = base.to_string();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let (mut commands, mut errors) = (0usize, 0usize);
                // A fixed pattern per client: `command_percent` of every 100 requests are
                // commands, spread evenly, the rest alternate between the reads.
                let mut n: u64 = i as u64;
                while Instant::now() < until {
                    n += 1;
                    let slot = (n * 37) % 100;
                    let t = Instant::now();
                    let ok = if slot < u64::from(command_percent) {
                        commands += 1;
                        let sku = &vc.skus[(n as usize) % vc.skus.len()];
                        let quantity = 1 + (n % 9);
                        send(
                            client
                                .put(format!("{base}/carts/{}/items/{sku}", vc.cart))
                                .bearer_auth(&vc.token)
                                .header("content-type", "application/json")
                                .body(json!({ "quantity": quantity }).to_string()),
                        )
                        .await
                    } else if n % 2 == 0 {
                        send(
                            client
                                .get(format!("{base}/carts/{}", vc.cart))
                                .bearer_auth(&vc.token),
                        )
                        .await
                    } else {
                        let sku = &vc.skus[(n as usize / 2) % vc.skus.len()];
                        send(client.get(format!("{base}/products/{sku}"))).await
                    };
                    lat.push(t.elapsed());
                    if !ok {
                        errors += 1;
                    }
                }
                (lat, commands, errors)
            })
        })
        .collect();
    collect(tasks, started).await
}

async fn send(request: reqwest::RequestBuilder) -> bool {
    match request.send().await {
        // 409/422 would mean the benchmark's own commands are wrong: count them.
        Ok(r) => {
            let ok = r.status().is_success();
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

type Outcome = (Vec<Duration>, usize, usize);

async fn collect(tasks: Vec<tokio::task::JoinHandle<Outcome>>, started: Instant) -> Figures {
    let mut all = Vec::new();
    let (mut commands, mut errors) = (0, 0);
    for task in tasks {
        if let Ok((lat, c, e)) = task.await {
            all.extend(lat);
            commands += c;
            errors += e;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        all[i].as_secs_f64() * 1000.0
    };
    Figures {
        requests: all.len(),
        commands,
        errors,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}
