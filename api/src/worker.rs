//! `commerce worker relay | sagas | projections | timers`: one part of the engine per
//! process, so each part of a distributed deployment scales on its own (docs/operations.md,
//! "Scaling out"). No HTTP API: API nodes run `commerce serve`, which still runs every
//! part in one process and is the simplest deployment.
//!
//! | part | runs | needs |
//! |---|---|---|
//! | `relay` | the relay from the log to JetStream | PostgreSQL, NATS |
//! | `sagas` | the checkout saga's consumer (steps for events) | PostgreSQL; NATS optional |
//! | `timers` | the checkout saga's timer worker | PostgreSQL |
//! | `projections` | the SQL views and the search indexer | PostgreSQL |
//!
//! **The rule:** a worker runs against PostgreSQL only. The embedded deployment (SQLite)
//! is one process by design: SQLite has one writer, and saga timers on SQLite are fired
//! by one worker, so a second process on the same file would contend for the writer
//! and break the single-timer-worker assumption. `commerce serve` runs every part there.
//! The relay publishes to JetStream, so `relay` also needs `--nats-url`. `sagas` with
//! `--nats-url` reads its durable JetStream consumer (any number of processes share the
//! work); without it, it reads the log in process behind the consumer's lease (one
//! process runs it, the others stand by and take over).

use std::time::Duration;

use clap::{Args, ValueEnum};
use infra::StoreConfig;

use crate::cli::{open_store, shutdown_signal, CliError, DatabaseArgs};
use crate::engine::{Engine, NatsArgs, SagaArgs};

/// A part of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// The relay from the log to JetStream.
    Relay,
    /// The saga consumer: saga steps for events.
    Sagas,
    /// The SQL projections and the search indexer.
    Projections,
    /// The saga timer worker.
    Timers,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Self::Relay => "relay",
            Self::Sagas => "sagas",
            Self::Projections => "projections",
            Self::Timers => "timers",
        }
    }
}

/// Options of `commerce worker`.
#[derive(Debug, Args, Clone)]
pub struct WorkerArgs {
    /// The part to run.
    #[arg(value_enum)]
    pub part: Part,
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Snapshot an aggregate every this many events (0 = never).
    #[arg(long, env = "COMMERCE_SNAPSHOT_EVERY", default_value_t = 100)]
    pub snapshot_every: usize,
    /// The saga's payment provider and carrier (`sagas`, `timers`), as for `serve`.
    #[command(flatten)]
    pub sagas: SagaArgs,
    /// Meilisearch to index into (`projections`); without it the embedded index.
    #[arg(long, env = "COMMERCE_MEILI_URL")]
    pub meili_url: Option<String>,
    /// The Meilisearch API key.
    #[arg(long, env = "COMMERCE_MEILI_KEY", hide_env_values = true)]
    pub meili_key: Option<String>,
}

/// Refuses what a worker cannot run (see the module docs for the rule).
pub fn check(args: &WorkerArgs) -> Result<(), CliError> {
    let url = args.db.database_url.as_str();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(CliError::config(format!(
            "`commerce worker {}` runs against PostgreSQL (--database-url postgres://…): the \
             embedded deployment on SQLite is one process, so run `commerce serve` there",
            args.part.name()
        )));
    }
    if args.part == Part::Relay && args.nats.nats_url.is_none() {
        return Err(CliError::config(
            "`commerce worker relay` publishes to JetStream: give --nats-url",
        ));
    }
    Ok(())
}

/// Runs one part until SIGTERM or ctrl-c.
pub async fn run(args: WorkerArgs) -> Result<(), CliError> {
    check(&args)?;
    let config = StoreConfig {
        snapshot_every: args.snapshot_every,
        ..StoreConfig::default()
    };
    let store = open_store(&args.db, config).await?;
    crate::migrate::check_restored_rows(&store).await?;
    let mut engine = match args.part {
        // `start` starts the relay when NATS is configured, which `check` made sure of.
        Part::Relay => Engine::start(store.clone(), &args.nats).await?,
        Part::Sagas => Engine::connect(store.clone(), &args.nats).await?,
        Part::Projections | Part::Timers => {
            Engine::connect(store.clone(), &NatsArgs::default_embedded()).await?
        }
    };
    match args.part {
        Part::Relay => {}
        Part::Sagas => {
            let runner = engine.checkout_runner(&args.sagas);
            engine.run_saga_consumer(runner)?;
        }
        Part::Timers => {
            let runner = engine.checkout_runner(&args.sagas);
            engine.run_saga_timers(runner);
        }
        Part::Projections => {
            engine.run_projections();
            engine.run_search(args.meili_url.as_deref(), args.meili_key.clone())?;
        }
    }
    tracing::info!(
        part = args.part.name(),
        database = %crate::cli::redact(&args.db.database_url),
        nats = args.nats.nats_url.as_deref().unwrap_or("(none)"),
        "commerce worker running"
    );
    shutdown_signal().await;
    engine.stop(Duration::from_secs(10)).await;
    tracing::info!(part = args.part.name(), "commerce worker stopped");
    Ok(())
}
