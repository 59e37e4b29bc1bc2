//! `commerce bench search`: how long an event takes to become searchable in the embedded
//! index, against how long the same append takes on its own, in the same run; plus the
//! fold rate of a catalogue backlog against reading and decoding it, and the latency of
//! a typical storefront query.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aggregates::product::{Product, ProductCreated, ProductEvent};
use aggregates::{Currency, EventExample, EventSourced, Money, ProductId, Sku};
use clap::Args;
use infra::search::documents;
use infra::search::{IndexerConfig, ProductQuery, SearchIndex, SearchIndexer, SqlIndex};
use infra::store::{NewEvent, StreamRef};
use infra::Store;
use serde_json::json;
use uuid::Uuid;

use super::relay::fresh_store;
use super::round2;
use crate::cli::DEFAULT_DATABASE_URL;

/// How long one event may take to become searchable before the run fails.
const SEARCHABLE_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Database to measure on: `postgres://…` or `sqlite:PATH`. The benchmark works in a
    /// fresh schema (PostgreSQL) or a fresh file next to PATH (SQLite) and removes it.
    #[arg(long, env = "COMMERCE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Products in the catalogue before timing starts.
    #[arg(long, default_value_t = 10_000)]
    pub products: usize,
    /// Single products appended one at a time and waited for.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Print only the JSON line, no table.
    #[arg(long)]
    pub json: bool,
}

const CATEGORIES: [&str; 8] = [
    "apparel", "books", "garden", "kitchen", "lighting", "music", "sports", "toys",
];
const BRANDS: [&str; 6] = [
    "Contoso",
    "Fabrikam",
    "Lumen",
    "Northwind",
    "Tailspin",
    "Woodgrove",
];
const WORDS: [&str; 10] = [
    "classic", "compact", "deluxe", "eco", "heavy", "light", "modern", "pro", "travel", "vintage",
];

fn product(i: usize, name: String) -> ProductEvent {
    let mut created = ProductCreated::example();
    created.product_id = ProductId(Uuid::now_v7());
    created.sku = Sku::parse(format!("BENCH-{i:07}")).expect("valid SKU");
    created.name = name;
    created.description = format!("{} item number {i}", WORDS[(i / 10) % WORDS.len()]);
    created.category = CATEGORIES[i % CATEGORIES.len()].into();
    created.brand = BRANDS[i % BRANDS.len()].into();
    created.prices = BTreeMap::from([(
        Currency::EUR,
        Money::new(500 + (i as i64 * 37) % 20_000, Currency::EUR),
    )]);
    ProductEvent::ProductCreated(created)
}

fn new_event(event: &ProductEvent) -> NewEvent {
    let (event_type, version, payload) = Product::encode(event);
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.into(),
        schema_version: version as i32,
        payload,
        metadata: BTreeMap::new(),
    }
}

async fn append_product(store: &Store, i: usize, name: String) -> Result<i64, String> {
    let event = product(i, name);
    let ProductEvent::ProductCreated(created) = &event else {
        unreachable!("product() creates");
    };
    let stream = StreamRef::new(Product::STREAM_TYPE, created.sku.as_str());
    store
        .append(&stream, 0, vec![new_event(&event)], None)
        .await
        .map(|o| o.last_position)
        .map_err(|e| e.to_string())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

pub async fn search(args: SearchArgs) -> Result<(), String> {
    let run_id = Uuid::now_v7().simple().to_string();
    let (store, scratch) = fresh_store(&args.database_url, &run_id).await?;
    let result = measure(&store, &args).await;
    scratch.remove().await;
    let figures = result?;
    if !args.json {
        println!(
            "search on {} ({} products)",
            store.backend_name(),
            args.products
        );
        for (name, key) in [
            ("backlog fold, events/s", "fold_events_per_s"),
            ("backlog read+decode, events/s", "read_events_per_s"),
            ("append alone, p50 ms", "append_p50_ms"),
            ("append alone, p99 ms", "append_p99_ms"),
            ("event -> searchable, p50 ms", "searchable_p50_ms"),
            ("event -> searchable, p99 ms", "searchable_p99_ms"),
            ("query (q + facets), p50 ms", "query_p50_ms"),
        ] {
            println!("  {name:<32} {}", figures[key]);
        }
    }
    println!("{figures}");
    Ok(())
}

async fn measure(store: &Store, args: &SearchArgs) -> Result<serde_json::Value, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    // The catalogue backlog, appended in batches of one-event streams.
    for i in 0..args.products {
        let name = format!(
            "{} {}",
            WORDS[i % WORDS.len()],
            CATEGORIES[i % CATEGORIES.len()]
        );
        append_product(store, i, name).await?;
    }
    let head = store.head_position().await.map_err(|e| err(&e))?;

    // Baseline for the fold: read and decode the same events, applying nothing.
    let started = Instant::now();
    let mut position = 0;
    let mut decoded = 0usize;
    loop {
        let events = store.read_all(position, 2_000).await.map_err(|e| err(&e))?;
        let Some(last) = events.last() else { break };
        position = last.position;
        for e in &events {
            let payload = e.payload().map_err(|e| err(&e))?;
            Product::decode(&e.event_type, e.schema_version as u32, payload)
                .map_err(|e| err(&e))?;
            decoded += 1;
        }
    }
    let read_rate = decoded as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let reached = documents::catch_up(store, head, 2_000)
        .await
        .map_err(|e| err(&e))?;
    let fold_rate = args.products as f64 / started.elapsed().as_secs_f64();
    if reached != head {
        return Err(format!("the fold reached {reached}, not the head {head}"));
    }

    // Appends alone (the baseline of the latency).
    let mut append_ms = Vec::with_capacity(args.samples);
    let mut last = head;
    for s in 0..args.samples {
        let started = Instant::now();
        last = append_product(store, args.products + s, format!("baseline{s} lamp")).await?;
        append_ms.push(started.elapsed().as_secs_f64() * 1_000.0);
    }
    documents::catch_up(store, last, 2_000)
        .await
        .map_err(|e| err(&e))?;

    // Event → searchable with the indexer running as `commerce serve` runs it.
    let indexer = SearchIndexer::new(store.clone(), None, IndexerConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(indexer.run(async move {
        let _ = stopped.await;
    }));
    let index = SqlIndex::new(store.clone());
    let mut searchable_ms = Vec::with_capacity(args.samples);
    let first = args.products + args.samples;
    for s in 0..args.samples {
        let word = format!("probe{s}x");
        let started = Instant::now();
        append_product(store, first + s, format!("{word} lamp")).await?;
        let query = ProductQuery {
            q: word.clone(),
            limit: 1,
            ..ProductQuery::default()
        };
        loop {
            let page = index.search_products(&query).await.map_err(|e| err(&e))?;
            if page.total == 1 {
                break;
            }
            if started.elapsed() > SEARCHABLE_DEADLINE {
                let _ = stop.send(());
                return Err(format!(
                    "`{word}` not searchable after {SEARCHABLE_DEADLINE:?}"
                ));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        searchable_ms.push(started.elapsed().as_secs_f64() * 1_000.0);
    }
    let _ = stop.send(());
    let _ = task.await;

    // A typical storefront query over the catalogue.
    let mut query_ms = Vec::with_capacity(args.samples);
    for s in 0..args.samples {
        let query = ProductQuery {
            q: WORDS[s % WORDS.len()].into(),
            categories: vec![CATEGORIES[s % CATEGORIES.len()].into()],
            facets: true,
            ..ProductQuery::default()
        };
        let started = Instant::now();
        index.search_products(&query).await.map_err(|e| err(&e))?;
        query_ms.push(started.elapsed().as_secs_f64() * 1_000.0);
    }

    let append_ms = sorted(append_ms);
    let searchable_ms = sorted(searchable_ms);
    let query_ms = sorted(query_ms);
    let append_p50 = percentile(&append_ms, 0.5);
    let searchable_p50 = percentile(&searchable_ms, 0.5);
    Ok(json!({
        "backend": store.backend_name(),
        "products": args.products,
        "samples": args.samples,
        "fold_events_per_s": fold_rate.round(),
        "read_events_per_s": read_rate.round(),
        "fold_ratio_vs_read": round2(fold_rate / read_rate),
        "append_p50_ms": round2(append_p50),
        "append_p99_ms": round2(percentile(&append_ms, 0.99)),
        "searchable_p50_ms": round2(searchable_p50),
        "searchable_p99_ms": round2(percentile(&searchable_ms, 0.99)),
        "searchable_ratio_vs_append": round2(searchable_p50 / append_p50.max(f64::EPSILON)),
        "query_p50_ms": round2(percentile(&query_ms, 0.5)),
    }))
}
