//! `commerce bench commands`: commands per second through the command layer (load from
//! cache, decide, append with the command id), on many streams and on one hot stream, at
//! 1 and 32 concurrent callers, against raw `Store::append` of the same events in the
//! same run, so the ratio is the layer's cost.
//!
//! The command is `AddItem` on carts, the most frequent command of a shop. The baseline
//! appends the very event `AddItem` produces, with the same metadata, at a version the
//! caller already knows: no load, no decide, no command record. On the hot stream the
//! baseline's callers share one lock around the version, the best a single process can do
//! on one stream without conflicts.

use std::sync::Arc;
use std::time::Instant;

use aggregates::cart::{AddItem, Cart, CartCommand, OpenCart};
use aggregates::{CartId, Currency, CustomerId, Decider, EventSourced, Money, Quantity, Sku};
use clap::Args;
use infra::command::{new_event_id, CommandContext, Commands};
use infra::store::{NewEvent, StreamRef};
use infra::Store;
use serde_json::{json, Value};
use uuid::Uuid;

use super::relay::fresh_store;
use super::round2;
use crate::cli::DEFAULT_DATABASE_URL;

/// Options of `commerce bench commands`.
#[derive(Debug, Args)]
pub struct CommandsArgs {
    /// Database to measure on: `postgres://…` or `sqlite:PATH`. The benchmark works in a
    /// fresh schema (PostgreSQL) or a fresh file next to PATH (SQLite) and removes it.
    #[arg(long, env = "COMMERCE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Commands per measurement, split over the callers.
    #[arg(long, default_value_t = 4000)]
    pub commands: usize,
    /// Concurrent callers.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 32])]
    pub callers: Vec<usize>,
    /// Streams each caller works on in the many-streams measurement.
    #[arg(long, default_value_t = 16)]
    pub streams_per_caller: usize,
    /// Rounds of each measurement, baseline and layer alternating (each round on fresh
    /// streams); the medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print only the JSON line (with every cell), no table.
    #[arg(long)]
    pub json: bool,
}

/// Where the commands go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Each caller on its own streams.
    ManyStreams,
    /// Every caller on one stream.
    HotStream,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::ManyStreams => "many streams",
            Scenario::HotStream => "one hot stream",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Scenario::ManyStreams => "many",
            Scenario::HotStream => "hot",
        }
    }
}

struct Cell {
    scenario: Scenario,
    callers: usize,
    baseline: f64,
    layer: f64,
}

impl Cell {
    fn json(&self) -> Value {
        json!({
            "scenario": self.scenario.key(),
            "callers": self.callers,
            "baseline_appends_per_s": self.baseline.round(),
            "commands_per_s": self.layer.round(),
            "ratio_vs_baseline": round2(self.layer / self.baseline),
        })
    }
}

/// Runs the benchmark and prints a table, then one JSON line.
pub async fn commands(args: CommandsArgs) -> Result<(), String> {
    if args.callers.is_empty() || args.callers.contains(&0) {
        return Err("--callers needs counts of at least 1".into());
    }
    let run_id = Uuid::now_v7().simple().to_string();
    let (store, scratch) = fresh_store(&args.database_url, &run_id).await?;
    let backend = store.backend_name();
    let result = measure_all(&store, &args).await;
    scratch.remove().await;
    let cells = result?;

    if !args.json {
        println!(
            "command layer on {backend}: AddItem on carts, {} commands per measurement, median of {} rounds",
            args.commands,
            args.rounds.max(1)
        );
        println!(
            "{:>15} {:>8} {:>20} {:>14} {:>10}",
            "scenario", "callers", "raw append/s", "commands/s", "ratio"
        );
        for c in &cells {
            println!(
                "{:>15} {:>8} {:>20.0} {:>14.0} {:>10.2}",
                c.scenario.name(),
                c.callers,
                c.baseline,
                c.layer,
                c.layer / c.baseline
            );
        }
    }
    let mut summary = json!({
        "backend": backend,
        "commands_per_measurement": args.commands,
        "rounds": args.rounds.max(1),
    });
    for c in &cells {
        let key = format!("{}_{}", c.scenario.key(), c.callers);
        summary[format!("{key}_commands_per_s")] = json!(c.layer.round());
        summary[format!("{key}_ratio_vs_baseline")] = json!(round2(c.layer / c.baseline));
    }
    if args.json {
        summary["cells"] = Value::Array(cells.iter().map(Cell::json).collect());
    }
    println!("{summary}");
    Ok(())
}

async fn measure_all(store: &Store, args: &CommandsArgs) -> Result<Vec<Cell>, String> {
    // An untimed pass first, so connections, caches and the database's pages are warm for
    // the first cell as for the others.
    let warm_up = CommandsArgs {
        database_url: String::new(),
        commands: args.commands.min(200),
        callers: vec![1],
        streams_per_caller: args.streams_per_caller,
        rounds: 1,
        json: true,
    };
    baseline(store, Scenario::ManyStreams, 1, &warm_up, "warm").await?;
    layer(store, Scenario::ManyStreams, 1, &warm_up, "warm").await?;

    let mut cells = Vec::new();
    for scenario in [Scenario::ManyStreams, Scenario::HotStream] {
        for &callers in &args.callers {
            let mut baselines = Vec::new();
            let mut layers = Vec::new();
            for round in 0..args.rounds.max(1) {
                let tag = format!("{}{callers}r{round}", scenario.key());
                // Alternating which goes first spreads a drifting machine load over both.
                if round % 2 == 0 {
                    baselines.push(baseline(store, scenario, callers, args, &tag).await?);
                    layers.push(layer(store, scenario, callers, args, &tag).await?);
                } else {
                    layers.push(layer(store, scenario, callers, args, &tag).await?);
                    baselines.push(baseline(store, scenario, callers, args, &tag).await?);
                }
            }
            cells.push(Cell {
                scenario,
                callers,
                baseline: median(baselines),
                layer: median(layers),
            });
        }
    }
    Ok(cells)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn add_item(store: &Store) -> CartCommand {
    CartCommand::AddItem(AddItem {
        sku: Sku::parse("BENCH-1").unwrap_or_else(|_| unreachable!("a valid SKU")),
        product_name: "Benchmark T-shirt".into(),
        category: "apparel/t-shirts".into(),
        quantity: Quantity::new(1),
        unit_price: Money::new(1999, Currency::EUR),
        // The hot cart's single line takes every command of the run.
        max_quantity_per_line: Some(u32::MAX),
        at: store.clock().now(),
    })
}

fn open_cart(store: &Store, cart: CartId) -> CartCommand {
    CartCommand::OpenCart(OpenCart {
        cart_id: cart,
        customer_id: CustomerId::from_uuid(Uuid::now_v7()),
        currency: Currency::EUR,
        at: store.clock().now(),
    })
}

/// The event `AddItem` appends on an open cart, as stored, for the baseline.
fn item_added_event(store: &Store) -> Result<(String, i32, Value), String> {
    let mut cart = Cart::default();
    let opened = cart
        .decide(open_cart(store, CartId::from_uuid(Uuid::now_v7())))
        .map_err(|e| e.to_string())?;
    for event in &opened {
        cart.evolve(event);
    }
    let added = cart.decide(add_item(store)).map_err(|e| e.to_string())?;
    let event = added.first().ok_or("AddItem appended nothing")?;
    let (event_type, version, payload) = Cart::encode(event);
    Ok((event_type.to_string(), version as i32, payload))
}

/// The streams each caller works on: its own in the many-streams measurement, one shared
/// stream in the hot one.
fn stream_ids(scenario: Scenario, callers: usize, args: &CommandsArgs) -> Vec<Vec<String>> {
    match scenario {
        Scenario::ManyStreams => (0..callers)
            .map(|_| {
                (0..args.streams_per_caller.max(1))
                    .map(|_| Uuid::now_v7().to_string())
                    .collect()
            })
            .collect(),
        Scenario::HotStream => {
            let hot = Uuid::now_v7().to_string();
            vec![vec![hot]; callers]
        }
    }
}

/// Commands per second of `Commands::execute(AddItem)`.
async fn layer(
    store: &Store,
    scenario: Scenario,
    callers: usize,
    args: &CommandsArgs,
    tag: &str,
) -> Result<f64, String> {
    let commands = Commands::new(store.clone());
    let streams = stream_ids(scenario, callers, args);
    // Opening the carts is not timed; it also warms the cache, as in a running process.
    let mut opened = std::collections::BTreeSet::new();
    for id in streams.iter().flatten() {
        if opened.insert(id.clone()) {
            let cart = id.parse().map_err(|e: uuid::Error| e.to_string())?;
            commands
                .execute::<Cart>(&CommandContext::new("bench"), id, open_cart(store, cart))
                .await
                .map_err(|e| format!("{tag}: opening cart {id}: {e}"))?;
        }
    }
    let per_caller = (args.commands / callers).max(1);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(callers);
    for own in streams {
        let commands = commands.clone();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_caller {
                let id = &own[i % own.len()];
                commands
                    .execute::<Cart>(&CommandContext::new("bench"), id, add_item(&store))
                    .await
                    .map_err(|e| format!("AddItem on {id}: {e}"))?;
            }
            Ok::<_, String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok((per_caller * callers) as f64 / start.elapsed().as_secs_f64())
}

/// Appends per second of the same event with `Store::append`, at versions the callers
/// keep themselves.
async fn baseline(
    store: &Store,
    scenario: Scenario,
    callers: usize,
    args: &CommandsArgs,
    tag: &str,
) -> Result<f64, String> {
    let (event_type, schema_version, payload) = item_added_event(store)?;
    let template = Arc::new(NewEvent {
        event_id: Uuid::nil(),
        event_type,
        schema_version,
        payload,
        metadata: CommandContext::new("bench").metadata(),
    });
    let streams = stream_ids(scenario, callers, args);
    // One version per stream, behind one lock per stream: the hot stream's callers share
    // one, the many-streams callers each own theirs.
    let mut versions: std::collections::HashMap<String, Arc<tokio::sync::Mutex<i64>>> =
        std::collections::HashMap::new();
    for id in streams.iter().flatten() {
        versions.entry(id.clone()).or_default();
    }
    let per_caller = (args.commands / callers).max(1);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(callers);
    for own in streams {
        let store = store.clone();
        let template = template.clone();
        let locks: Vec<_> = own.iter().map(|id| versions[id].clone()).collect();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_caller {
                let n = i % own.len();
                let stream = StreamRef::new(Cart::STREAM_TYPE, format!("{tag}-{}", own[n]));
                let mut version = locks[n].lock().await;
                let mut event = (*template).clone();
                event.event_id = new_event_id(store.clock().now());
                let outcome = store
                    .append(&stream, *version, vec![event], None)
                    .await
                    .map_err(|e| format!("append to {stream}: {e}"))?;
                *version = outcome.version;
            }
            Ok::<_, String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok((per_caller * callers) as f64 / start.elapsed().as_secs_f64())
}
