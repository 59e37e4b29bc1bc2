//! Command-line interface. Every option is also an environment variable `COMMERCE_*`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use infra::webhook::WebhookConfig;
use infra::{Store, StoreConfig};

use crate::engine::{Engine, NatsArgs};
use crate::http::{app, AdminTokens, AppState};
use crate::telemetry::{self, LogFormat};
use crate::{bench, dlq};

/// The default embedded database: a SQLite file in `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:./data/commerce.db";

/// commerce: an event-sourced commerce engine.
#[derive(Debug, Parser)]
#[command(name = "commerce", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Log filter in RUST_LOG syntax, e.g. `info,sqlx=warn`.
    #[arg(
        long,
        env = "COMMERCE_LOG",
        default_value = "info,sqlx=warn",
        global = true
    )]
    pub log: String,
    /// Log line format.
    #[arg(long, env = "COMMERCE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args, Clone)]
pub struct DatabaseArgs {
    /// Event store: `sqlite:PATH` (embedded, the default) or `postgres://…` (distributed).
    #[arg(long, env = "COMMERCE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Database connections in the pool.
    #[arg(long, env = "COMMERCE_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine: the HTTP API, webhooks, and with `--nats-url` the relay to JetStream. The default.
    Serve(ServeArgs),
    /// Apply the database migrations embedded in this binary, then exit.
    Migrate(DatabaseArgs),
    /// Check the whole event log: positions, versions and every hash in every stream.
    Verify(DatabaseArgs),
    /// Measure throughput against baselines measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Consumers' dead letters: list, show, retry, discard.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Load a demo shop (products, prices, stock, promotions, tax rates, shipping methods)
    /// through the command layer. Running it again changes nothing.
    Seed(crate::seed::SeedArgs),
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Address the HTTP API listens on.
    #[arg(long, env = "COMMERCE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Snapshot an aggregate every this many events (0 = never).
    #[arg(long, env = "COMMERCE_SNAPSHOT_EVERY", default_value_t = 100)]
    pub snapshot_every: usize,
    /// Apply migrations at start. Always done for SQLite; opt-in for PostgreSQL, where
    /// `commerce migrate` is the usual step.
    #[arg(long, env = "COMMERCE_MIGRATE", default_value_t = false)]
    pub migrate: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Bearer token accepted on the admin API (`/admin/…`); repeat or comma-separate for
    /// several. Without one the admin API refuses every request.
    #[arg(
        long = "admin-token",
        env = "COMMERCE_ADMIN_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub admin_tokens: Vec<String>,
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            db: DatabaseArgs {
                database_url: DEFAULT_DATABASE_URL.to_string(),
                database_max_connections: 16,
            },
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            snapshot_every: 100,
            migrate: false,
            nats: NatsArgs::default_embedded(),
            admin_tokens: Vec::new(),
        }
    }
}

/// A failure to report to the user in one line.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: u8,
}

impl CliError {
    pub fn config(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 2,
        }
    }
    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }
}

/// Parses nothing, runs everything: the body of `main`.
pub fn run(cli: Cli) -> ExitCode {
    if let Err(message) = telemetry::init(&cli.global.log, cli.global.log_format) {
        eprintln!("commerce: {message}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("commerce: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::default()));
    match runtime.block_on(dispatch(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("commerce: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

async fn dispatch(command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(db) => {
            let store = open_store(&db, StoreConfig::default()).await?;
            store
                .migrate()
                .await
                .map_err(|e| CliError::runtime(format!("migration failed: {e}")))?;
            tracing::info!(backend = store.backend_name(), "migrations applied");
            Ok(())
        }
        Command::Verify(db) => verify(db).await,
        Command::Bench(cmd) => bench::run(cmd).await.map_err(CliError::runtime),
        Command::Dlq(cmd) => dlq::run(cmd, &mut std::io::stdout().lock()).await,
        Command::Seed(args) => crate::seed::run(args).await,
    }
}

/// Opens the store with a clear one-line error for bad URLs and unreachable databases.
pub async fn open_store(db: &DatabaseArgs, config: StoreConfig) -> Result<Store, CliError> {
    let url = db.database_url.as_str();
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        return Err(CliError::config(format!(
            "unsupported --database-url `{}`: use sqlite:PATH or postgres://USER@HOST/DB",
            redact(url)
        )));
    }
    let config = StoreConfig {
        max_connections: db.database_max_connections,
        ..config
    };
    let connect = Store::connect(url, config);
    match tokio::time::timeout(Duration::from_secs(15), connect).await {
        Ok(Ok(store)) => Ok(store),
        Ok(Err(e)) => Err(CliError::runtime(format!(
            "cannot open the event store at {}: {e}",
            redact(url)
        ))),
        Err(_) => Err(CliError::runtime(format!(
            "cannot open the event store at {}: timed out after 15 s",
            redact(url)
        ))),
    }
}

/// Hides a password in a URL for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let admin_tokens = AdminTokens::new(&args.admin_tokens)
        .map_err(|e| CliError::config(format!("--admin-token: {e}")))?;
    let config = StoreConfig {
        snapshot_every: args.snapshot_every,
        ..StoreConfig::default()
    };
    let store = open_store(&args.db, config).await?;
    if store.backend_name() == "sqlite" || args.migrate {
        store
            .migrate()
            .await
            .map_err(|e| CliError::runtime(format!("migration failed: {e}")))?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::config(format!("cannot listen on {}: {e}", args.listen)))?;
    let mut engine = Engine::start(store.clone(), &args.nats).await?;
    engine.run_webhooks(WebhookConfig::default())?;
    tracing::info!(
        listen = %args.listen,
        backend = store.backend_name(),
        database = %redact(&args.db.database_url),
        nats = args.nats.nats_url.as_deref().unwrap_or("(embedded)"),
        "commerce serving"
    );
    let state = AppState::new(store.clone()).with_admin_tokens(admin_tokens);
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    engine.stop(Duration::from_secs(10)).await;
    served.map_err(|e| CliError::runtime(format!("server error: {e}")))?;
    tracing::info!("commerce stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

async fn verify(db: DatabaseArgs) -> Result<(), CliError> {
    let store = open_store(&db, StoreConfig::default()).await?;
    let report = store
        .verify()
        .await
        .map_err(|e| CliError::runtime(format!("cannot read the log: {e}")))?;
    println!(
        "{} events in {} streams, last position {}",
        report.events, report.streams, report.last_position
    );
    for p in &report.problems {
        println!(
            "position {} {} v{}: {}",
            p.position, p.stream, p.version, p.problem
        );
    }
    if report.is_ok() {
        println!("the log verifies");
        Ok(())
    } else {
        Err(CliError::runtime(format!(
            "{} problems found in the log",
            report.problems.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(
            redact("sqlite:./data/commerce.db"),
            "sqlite:./data/commerce.db"
        );
    }

    #[test]
    fn bench_relay_parses_with_the_relay_defaults() {
        let cli = Cli::try_parse_from([
            "commerce",
            "bench",
            "relay",
            "--database-url",
            "sqlite:/tmp/x.db",
            "--nats-url",
            "nats://nats:4222",
            "--events",
            "1000",
            "--json",
        ])
        .unwrap();
        let Some(Command::Bench(bench::BenchCommand::Relay(args))) = cli.command else {
            panic!("not bench relay: {:?}", cli.command);
        };
        assert_eq!(args.database_url, "sqlite:/tmp/x.db");
        assert_eq!(args.nats_url, "nats://nats:4222");
        assert_eq!(args.events, 1000);
        assert!(args.json);
        assert_eq!((args.streams, args.batch, args.rounds), (100, 50, 3));
        assert_eq!(
            args.max_in_flight,
            infra::relay::RelayConfig::default().max_in_flight
        );
        assert!(Cli::try_parse_from(["commerce", "bench", "relay", "--events", "many"]).is_err());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
