//! Command-line interface. Every option is also an environment variable `COMMERCE_*`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Args, FromArgMatches, Parser, Subcommand};
use infra::webhook::WebhookConfig;
use infra::{Store, StoreConfig};

use crate::engine::{Engine, NatsArgs};
use crate::http::limits::{self, Limits, RateLimit};
use crate::http::metrics::MetricsConfig;
use crate::http::principal::Role;
use crate::http::{app, AdminTokens, AppState, Auth};
use crate::telemetry::{self, LogFormat};
use crate::token::{self, DEFAULT_AUDIENCE, DEFAULT_ISSUER, MIN_SECRET_LEN};
use crate::{bench, dlq};

/// The default embedded database: a SQLite file in `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:./data/commerce.db";
/// Where the development JWT secret lives unless configured otherwise.
pub const DEFAULT_JWT_SECRET_FILE: &str = "./data/jwt.secret";

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
    /// Run the engine: the HTTP API, webhooks, and with `--nats-url` the relay to JetStream.
    /// The default: `commerce` alone serves with the options of the `COMMERCE_*` variables.
    Serve(Box<ServeArgs>),
    /// Print a development token (HS256, signed with the configured secret).
    Token(TokenArgs),
    /// Apply the database migrations embedded in this binary, check that the log's tail
    /// can read every row (refusing a backup restored from another cluster until its rows
    /// are adopted), then exit.
    Migrate(crate::migrate::MigrateArgs),
    /// Replay tooling: events, history, state, diff, trace, export, reconcile, verify.
    #[command(flatten)]
    Replay(crate::replay::ReplayCommand),
    /// Measure throughput against baselines measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Consumers' dead letters: list, show, retry, discard.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Load a demo shop (products, prices, stock, promotions, tax rates, shipping methods)
    /// through the command layer. Running it again changes nothing.
    Seed(crate::seed::SeedArgs),
    /// Webhook administration from the command line: reseal stored secrets.
    #[command(subcommand)]
    Webhooks(crate::webhook_keys::WebhooksCommand),
    /// Stream heads kept outside the database: write them, or check the log against them.
    #[command(subcommand)]
    Anchor(crate::anchor::AnchorCommand),
    /// SQL views: rebuild one without downtime, or show where each stands.
    #[command(subcommand)]
    Projections(crate::projections::ProjectionsCommand),
    /// Run one part of the engine in this process (PostgreSQL): relay, sagas,
    /// projections or timers. No HTTP API; `serve` runs every part in one process.
    Worker(Box<crate::worker::WorkerArgs>),
    /// Sagas: list by state and age, show one's steps, retry or cancel a stuck one.
    #[command(subcommand)]
    Sagas(crate::sagas::SagasCommand),
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
    /// Largest event in bytes (payload and metadata JSON); larger ones are refused with
    /// 413. With `--nats-url` it must fit the NATS server's `max_payload`, checked at start.
    #[arg(long, env = "COMMERCE_MAX_EVENT_BYTES", default_value_t = infra::store::DEFAULT_MAX_EVENT_BYTES)]
    pub max_event_bytes: usize,
    /// Apply migrations at start. Always done for SQLite; opt-in for PostgreSQL, where
    /// `commerce migrate` is the usual step.
    #[arg(long, env = "COMMERCE_MIGRATE", default_value_t = false)]
    pub migrate: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub sagas: crate::engine::SagaArgs,
    /// Shared secret of the payment provider's signed callbacks
    /// (`POST /callbacks/payments/{provider}`); unset refuses them.
    #[arg(long, env = "COMMERCE_PAYMENT_CALLBACK_SECRET", hide_env_values = true)]
    pub payment_callback_secret: Option<String>,
    /// Shared secret of the carrier's signed tracking callbacks
    /// (`POST /callbacks/carriers/{carrier}`); unset refuses them.
    #[arg(long, env = "COMMERCE_CARRIER_CALLBACK_SECRET", hide_env_values = true)]
    pub carrier_callback_secret: Option<String>,
    /// Seconds a callback's signed timestamp may lie from now; an accepted signature is
    /// refused as a replay for at least twice as long.
    #[arg(long, env = "COMMERCE_CALLBACK_TOLERANCE_SECS", default_value_t = 300)]
    pub callback_tolerance_secs: u64,
    /// Admin token: an admin credential besides admin JWTs; repeat or comma-separate for
    /// several. Prefer `COMMERCE_ADMIN_TOKEN` or `--admin-token-file`: a value on the
    /// command line is visible to every user of the machine (`ps`).
    #[arg(
        long = "admin-token",
        env = "COMMERCE_ADMIN_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub admin_tokens: Vec<String>,
    /// File of admin tokens, one per line (blank lines and `#` comments ignored).
    #[arg(long, env = "COMMERCE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Whether `GET /metrics` answers without a token (the Prometheus convention); with
    /// `false` it needs a staff or admin token.
    #[arg(long, env = "COMMERCE_METRICS_PUBLIC", default_value_t = true, action = ArgAction::Set)]
    pub metrics_public: bool,
    /// How long `Idempotency-Key` responses are kept, e.g. `24h`; older ones are pruned
    /// every few minutes.
    #[arg(long, env = "COMMERCE_IDEMPOTENCY_RETENTION", default_value = "24h", value_parser = token::parse_ttl)]
    pub idempotency_retention: Duration,
    /// Networks webhook deliveries may reach although they are loopback, private,
    /// link-local or metadata addresses (refused by default), as comma-separated CIDRs,
    /// e.g. `10.0.0.0/8,127.0.0.1/32`.
    #[arg(long, env = "COMMERCE_WEBHOOK_ALLOW_NETWORKS", default_value = "", value_parser = infra::webhook::AllowList::parse)]
    pub webhook_allow_networks: infra::webhook::AllowList,
    /// How long finished webhook deliveries and their attempts are kept, e.g. `30d`.
    #[arg(long, env = "COMMERCE_WEBHOOK_RETENTION", default_value = "30d", value_parser = token::parse_ttl)]
    pub webhook_retention: Duration,
    #[command(flatten)]
    pub webhook_keys: crate::webhook_keys::SecretKeyArgs,
    /// How long consumers keep inbox rows of settled events and closed dead letters,
    /// e.g. `7d`; older ones are pruned every few minutes.
    #[arg(long, env = "COMMERCE_CONSUMER_RETENTION", default_value = "7d", value_parser = token::parse_ttl)]
    pub consumer_retention: Duration,
    /// Meilisearch to index into and search from, e.g. `http://127.0.0.1:7700`; without
    /// it search uses the embedded index in the database (docs/search.md).
    #[arg(long, env = "COMMERCE_MEILI_URL")]
    pub meili_url: Option<String>,
    /// The Meilisearch API key (a key allowed to manage the `products` and `orders`
    /// indexes and their documents, settings and tasks).
    #[arg(long, env = "COMMERCE_MEILI_KEY", hide_env_values = true)]
    pub meili_key: Option<String>,
    /// How long a query given `min_position` (or `Consistency-Position`) waits for its
    /// view to get there before answering `504 view_behind`, e.g. `2s`, `250ms`, `0`.
    #[arg(long, env = "COMMERCE_CONSISTENCY_WAIT", default_value = "2s", value_parser = crate::routes::views::parse_wait)]
    pub consistency_wait: Duration,
}

impl ServeArgs {
    /// The options of `commerce` run without a subcommand: every default and every
    /// `COMMERCE_*` variable, exactly as `commerce serve` would read them.
    pub fn from_env() -> Result<Self, clap::Error> {
        let command = ServeArgs::augment_args(clap::Command::new("commerce"));
        let matches = command.try_get_matches_from(["commerce"])?;
        ServeArgs::from_arg_matches(&matches)
    }
}

/// Where the development HS256 secret comes from; shared by `serve` and `token`.
#[derive(Debug, Args, Clone)]
pub struct JwtSecretArgs {
    /// HS256 secret for development tokens (at least 32 bytes). Prefer the variable or
    /// the secret file: a value on the command line shows in `ps`.
    #[arg(long, env = "COMMERCE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret when `--jwt-secret` is not given. `serve` on the
    /// embedded default creates it (32 random bytes, hex, mode 0600) when missing;
    /// `commerce token` reads the same file.
    #[arg(long, env = "COMMERCE_JWT_SECRET_FILE", default_value = DEFAULT_JWT_SECRET_FILE)]
    pub jwt_secret_file: PathBuf,
}

impl JwtSecretArgs {
    /// The secret: the option, else the file's content (trimmed); `None` when neither
    /// exists.
    pub fn read(&self) -> Result<Option<Vec<u8>>, CliError> {
        let secret = match &self.jwt_secret {
            Some(secret) => Some(secret.trim().as_bytes().to_vec()),
            None => match std::fs::read_to_string(&self.jwt_secret_file) {
                Ok(text) => Some(text.trim().as_bytes().to_vec()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(CliError::config(format!(
                        "cannot read the JWT secret file {}: {e}",
                        self.jwt_secret_file.display()
                    )))
                }
            },
        };
        match secret {
            Some(secret) if secret.len() < MIN_SECRET_LEN => Err(CliError::config(format!(
                "the JWT secret must have at least {MIN_SECRET_LEN} bytes"
            ))),
            other => Ok(other),
        }
    }

    /// The secret, creating the file with 32 random bytes (hex) when there is none.
    pub fn read_or_create(&self) -> Result<Vec<u8>, CliError> {
        if let Some(secret) = self.read()? {
            return Ok(secret);
        }
        let path = &self.jwt_secret_file;
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let secret = hex::encode(bytes);
        write_private(path, &secret).map_err(|e| {
            CliError::config(format!(
                "cannot create the JWT secret file {}: {e}",
                path.display()
            ))
        })?;
        tracing::info!(path = %path.display(), "created a development JWT secret; `commerce token` signs with it");
        Ok(secret.into_bytes())
    }
}

/// Writes `content` to a new file only its owner can read.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.write_all(b"\n")
}

/// How bearer tokens are verified.
#[derive(Debug, Args, Clone)]
pub struct AuthArgs {
    #[command(flatten)]
    pub secret: JwtSecretArgs,
    /// PEM public key (RSA or P-256) verifying RS256/ES256 tokens from an identity
    /// provider; replaces the HS256 secret.
    #[arg(
        long,
        env = "COMMERCE_JWT_PUBLIC_KEY_FILE",
        conflicts_with = "jwt_jwks_file"
    )]
    pub jwt_public_key_file: Option<PathBuf>,
    /// JWKS document (`{"keys": [...]}`) verifying RS256/ES256 tokens by `kid`; replaces
    /// the HS256 secret.
    #[arg(long, env = "COMMERCE_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,
    /// The `iss` every token must carry.
    #[arg(long, env = "COMMERCE_JWT_ISSUER", default_value = DEFAULT_ISSUER)]
    pub jwt_issuer: String,
    /// The `aud` every token must carry.
    #[arg(long, env = "COMMERCE_JWT_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub jwt_audience: String,
}

/// Request limits (0 turns a rate limit off).
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Requests per second per authenticated subject.
    #[arg(long, env = "COMMERCE_RATE_LIMIT_PER_SECOND", default_value_t = limits::DEFAULT_SUBJECT_RATE)]
    pub rate_limit_per_second: u32,
    /// Requests a subject may send at once before the per-second rate applies.
    #[arg(long, env = "COMMERCE_RATE_LIMIT_BURST", default_value_t = 2 * limits::DEFAULT_SUBJECT_RATE)]
    pub rate_limit_burst: u32,
    /// Requests per second per client IP address, authenticated or not.
    #[arg(long, env = "COMMERCE_ADDRESS_RATE_LIMIT_PER_SECOND", default_value_t = limits::DEFAULT_ADDRESS_RATE)]
    pub address_rate_limit_per_second: u32,
    /// Requests a client address may send at once.
    #[arg(long, env = "COMMERCE_ADDRESS_RATE_LIMIT_BURST", default_value_t = 2 * limits::DEFAULT_ADDRESS_RATE)]
    pub address_rate_limit_burst: u32,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, env = "COMMERCE_MAX_BODY_BYTES", default_value_t = limits::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "COMMERCE_REQUEST_TIMEOUT_SECS", default_value_t = limits::DEFAULT_REQUEST_TIMEOUT.as_secs())]
    pub request_timeout_secs: u64,
    /// Requests handled at once; more wait for a slot.
    #[arg(long, env = "COMMERCE_MAX_CONCURRENT_REQUESTS", default_value_t = limits::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,
    /// Seconds a client may take to send a request's headers before the connection is
    /// closed (slow clients cannot hold connections).
    #[arg(long, env = "COMMERCE_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Connections open at once; further clients wait to be accepted.
    #[arg(long, env = "COMMERCE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
}

impl LimitArgs {
    /// The limits these options describe.
    pub fn limits(&self) -> Limits {
        Limits {
            per_subject: RateLimit {
                per_second: self.rate_limit_per_second,
                burst: self.rate_limit_burst,
            },
            per_address: RateLimit {
                per_second: self.address_rate_limit_per_second,
                burst: self.address_rate_limit_burst,
            },
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            max_concurrent_requests: self.max_concurrent_requests.max(1),
        }
    }

    /// The listener's limits these options describe.
    pub fn connection_limits(&self) -> crate::http::server::ConnectionLimits {
        crate::http::server::ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
            ..crate::http::server::ConnectionLimits::default()
        }
    }
}

/// Options of `commerce token`.
#[derive(Debug, Args, Clone)]
pub struct TokenArgs {
    /// The principal's role.
    #[arg(long, value_enum)]
    pub role: Role,
    /// The subject: for customers, their customer id (a UUID).
    #[arg(long)]
    pub sub: String,
    /// How long the token is valid: `90s`, `15m`, `1h`, `7d`.
    #[arg(long, default_value = "1h", value_parser = token::parse_ttl)]
    pub ttl: Duration,
    #[command(flatten)]
    pub secret: JwtSecretArgs,
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
    let command = match cli.command {
        Some(command) => command,
        None => match ServeArgs::from_env() {
            Ok(args) => Command::Serve(Box::new(args)),
            Err(e) => {
                eprintln!("commerce: {e}");
                return ExitCode::from(2);
            }
        },
    };
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
        Command::Serve(args) => serve(*args).await,
        Command::Token(args) => {
            println!("{}", mint_token(&args, chrono::Utc::now())?);
            Ok(())
        }
        Command::Migrate(args) => crate::migrate::run(args).await,
        Command::Replay(cmd) => crate::replay::run(cmd).await,
        Command::Bench(cmd) => bench::run(cmd).await.map_err(CliError::runtime),
        Command::Dlq(cmd) => dlq::run(cmd, &mut std::io::stdout().lock()).await,
        Command::Seed(args) => crate::seed::run(args).await,
        Command::Webhooks(cmd) => crate::webhook_keys::run(cmd).await,
        Command::Anchor(cmd) => crate::anchor::run(cmd).await,
        Command::Projections(cmd) => {
            crate::projections::run(cmd, &mut std::io::stdout().lock()).await
        }
        Command::Worker(args) => crate::worker::run(*args).await,
        Command::Sagas(cmd) => crate::sagas::run(cmd, &mut std::io::stdout().lock()).await,
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

/// A development token signed with the configured secret.
pub fn mint_token(
    args: &TokenArgs,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, CliError> {
    let secret = args.secret.read()?.ok_or_else(|| {
        CliError::config(format!(
            "no JWT secret: set COMMERCE_JWT_SECRET or run `commerce serve` once to create {}",
            args.secret.jwt_secret_file.display()
        ))
    })?;
    token::mint(&secret, args.role, &args.sub, args.ttl, now)
        .map_err(|e| CliError::config(e.to_string()))
}

/// The admin tokens of `--admin-token` and `--admin-token-file`.
fn admin_tokens(args: &ServeArgs) -> Result<AdminTokens, CliError> {
    let mut tokens = args.admin_tokens.clone();
    if let Some(path) = &args.admin_token_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::config(format!(
                "cannot read the admin token file {}: {e}",
                path.display()
            ))
        })?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    AdminTokens::new(&tokens).map_err(|e| CliError::config(format!("--admin-token: {e}")))
}

/// How `serve` authenticates: a public key or JWKS when configured (production), else
/// the HS256 secret, created on first start of the embedded default.
fn auth(args: &ServeArgs, admin_tokens: AdminTokens) -> Result<Auth, CliError> {
    let a = &args.auth;
    let auth = Auth::default()
        .with_issuer(a.jwt_issuer.clone())
        .with_audience(a.jwt_audience.clone())
        .with_admin_tokens(admin_tokens);
    let auth = if let Some(path) = &a.jwt_public_key_file {
        auth.with_public_key_file(path)
            .map_err(|e| CliError::config(format!("--jwt-public-key-file: {e}")))?
    } else if let Some(path) = &a.jwt_jwks_file {
        auth.with_jwks_file(path)
            .map_err(|e| CliError::config(format!("--jwt-jwks-file: {e}")))?
    } else {
        let embedded = args.db.database_url.starts_with("sqlite:");
        let secret = if embedded {
            Some(a.secret.read_or_create()?)
        } else {
            a.secret.read()?
        };
        match secret {
            Some(secret) => auth.with_hs256_secret(&secret),
            None => {
                tracing::warn!(
                    "no JWT secret, public key or JWKS configured: only admin tokens are accepted"
                );
                auth
            }
        }
    };
    Ok(auth)
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let admin_tokens = admin_tokens(&args)?;
    let auth = auth(&args, admin_tokens)?;
    let config = StoreConfig {
        snapshot_every: args.snapshot_every,
        max_event_bytes: args.max_event_bytes,
        ..StoreConfig::default()
    };
    let store = open_store(&args.db, config).await?;
    if store.backend_name() == "sqlite" || args.migrate {
        store
            .migrate()
            .await
            .map_err(|e| CliError::runtime(format!("migration failed: {e}")))?;
    }
    crate::migrate::check_restored_rows(&store).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::config(format!("cannot listen on {}: {e}", args.listen)))?;
    let mut engine = Engine::start(store.clone(), &args.nats).await?;
    engine.run_webhooks(WebhookConfig {
        allow_networks: args.webhook_allow_networks.clone(),
        retention: Some(args.webhook_retention),
        secret_keys: args.webhook_keys.webhook_secret_keys.clone(),
        ..WebhookConfig::default()
    })?;
    if !args.webhook_keys.webhook_secret_keys.is_sealing() {
        tracing::warn!(
            "no webhook secret keys configured: webhook signing secrets are stored in clear"
        );
    }
    engine.run_housekeeping(args.idempotency_retention, args.consumer_retention);
    // The query routes wait on this handle for read-your-writes.
    let projections = engine.run_projections();
    let search = engine.run_search(args.meili_url.as_deref(), args.meili_key.clone())?;
    // The checkout saga: a checked-out cart is placed, paid, shipped and delivered.
    let runner = engine.run_sagas(&args.sagas)?;
    let saga_commands = runner.commands().clone();
    let callbacks = crate::routes::callbacks::Callbacks::new(
        runner,
        "test",
        args.payment_callback_secret.clone().map(String::into_bytes),
        args.carrier_callback_secret.clone().map(String::into_bytes),
        chrono::Duration::seconds(
            i64::try_from(args.callback_tolerance_secs).unwrap_or(i64::MAX / 1_000),
        ),
    );
    tracing::info!(
        listen = %args.listen,
        backend = store.backend_name(),
        database = %redact(&args.db.database_url),
        nats = args.nats.nats_url.as_deref().unwrap_or("(embedded)"),
        jwt = ?auth,
        "commerce serving"
    );
    let mut state = AppState::new(store.clone())
        .with_auth(auth)
        .with_limits(args.limits.limits())
        .with_metrics(MetricsConfig {
            public: args.metrics_public,
        })
        .with_idempotency_retention(args.idempotency_retention)
        .with_search(search)
        .with_projections(projections)
        .with_consistency_wait(args.consistency_wait)
        .with_webhook_secret_keys(args.webhook_keys.webhook_secret_keys.clone())
        .with_callbacks(callbacks);
    // One command layer (and state cache) for the routes and the saga: a command decided
    // on a stream the other side changed must see the change.
    state.commands = saga_commands;
    // The listener hands handlers the client address (the per-address rate limit).
    crate::http::server::serve(
        listener,
        app(state),
        args.limits.connection_limits(),
        shutdown_signal(),
    )
    .await;
    engine.stop(Duration::from_secs(10)).await;
    tracing::info!("commerce stopped");
    Ok(())
}

/// Completes on SIGTERM or ctrl-c.
pub(crate) async fn shutdown_signal() {
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
    fn no_subcommand_serves_with_the_commerce_variables() {
        // Process-wide variables: unique values, restored afterwards, and no other test
        // reads these without passing the option explicitly.
        let url = format!("postgres://app@db-{}/shop", uuid::Uuid::now_v7().simple());
        let vars = [
            ("COMMERCE_DATABASE_URL", url.as_str()),
            ("COMMERCE_LISTEN", "127.0.0.1:18123"),
            ("COMMERCE_RATE_LIMIT_PER_SECOND", "7"),
            ("COMMERCE_METRICS_PUBLIC", "false"),
        ];
        let saved: Vec<_> = vars
            .iter()
            .map(|(k, _)| (*k, std::env::var_os(k)))
            .collect();
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        let cli = Cli::try_parse_from(["commerce"]);
        let implicit = ServeArgs::from_env();
        let explicit = Cli::try_parse_from(["commerce", "serve"]);
        for (k, v) in saved {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
        assert!(cli.unwrap().command.is_none());
        let implicit = implicit.unwrap();
        assert_eq!(implicit.db.database_url, url);
        assert_eq!(implicit.listen, "127.0.0.1:18123".parse().unwrap());
        assert_eq!(implicit.limits.rate_limit_per_second, 7);
        assert!(!implicit.metrics_public);
        assert_eq!(implicit.idempotency_retention, Duration::from_secs(86_400));
        let Some(Command::Serve(explicit)) = explicit.unwrap().command else {
            panic!("not serve");
        };
        // One definition: `commerce` and `commerce serve` read the same options.
        assert_eq!(format!("{implicit:?}"), format!("{explicit:?}"));
    }

    #[test]
    fn token_mints_with_the_secret_file_serve_creates() {
        let dir = std::env::temp_dir().join(format!("commerce-cli-{}", uuid::Uuid::now_v7()));
        let file = dir.join("jwt.secret");
        let secret = JwtSecretArgs {
            jwt_secret: None,
            jwt_secret_file: file.clone(),
        };
        assert!(secret.read().unwrap().is_none());
        let created = secret.read_or_create().unwrap();
        assert_eq!(created.len(), 64, "32 random bytes in hex");
        assert_eq!(secret.read_or_create().unwrap(), created, "created once");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let cli = Cli::try_parse_from([
            "commerce",
            "token",
            "--role",
            "staff",
            "--sub",
            "alice",
            "--ttl",
            "15m",
            "--jwt-secret-file",
            file.to_str().unwrap(),
        ])
        .unwrap();
        let Some(Command::Token(args)) = cli.command else {
            panic!("not token");
        };
        assert_eq!(args.ttl, Duration::from_secs(900));
        let token = mint_token(&args, chrono::Utc::now()).unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        let principal = Auth::default()
            .with_hs256_secret(&created)
            .authenticate(&headers)
            .unwrap();
        assert_eq!(
            (principal.role, principal.subject.as_str()),
            (Role::Staff, "alice")
        );

        let missing = TokenArgs {
            secret: JwtSecretArgs {
                jwt_secret: None,
                jwt_secret_file: dir.join("absent"),
            },
            ..args.clone()
        };
        assert!(mint_token(&missing, chrono::Utc::now()).is_err());
        let short = TokenArgs {
            secret: JwtSecretArgs {
                jwt_secret: Some("short".into()),
                jwt_secret_file: dir.join("absent"),
            },
            ..args
        };
        assert!(mint_token(&short, chrono::Utc::now()).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["commerce", "serve"];
        argv.extend_from_slice(extra);
        let Some(Command::Serve(args)) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not serve");
        };
        *args
    }

    #[test]
    fn serve_picks_its_token_verification() {
        let dir = std::env::temp_dir().join(format!("commerce-auth-{}", uuid::Uuid::now_v7()));
        let secret_file = dir.join("jwt.secret");
        let secret_path = secret_file.to_str().unwrap();

        // Embedded: a missing secret file is created and used.
        let embedded = serve_args(&[
            "--database-url",
            "sqlite:/tmp/unused.db",
            "--jwt-secret-file",
            secret_path,
        ]);
        let chosen = auth(&embedded, AdminTokens::default()).unwrap();
        assert!(chosen.verifies_jwts());
        assert!(secret_file.exists());

        // PostgreSQL without any key: only admin tokens, and no file is created.
        let other_file = dir.join("absent.secret");
        let distributed = serve_args(&[
            "--database-url",
            "postgres://app@db/shop",
            "--jwt-secret-file",
            other_file.to_str().unwrap(),
        ]);
        let chosen = auth(&distributed, AdminTokens::default()).unwrap();
        assert!(!chosen.verifies_jwts());
        assert!(!other_file.exists());

        // A key file that is not a key is a configuration error, not a silent fallback.
        let bogus = dir.join("bogus.pem");
        std::fs::write(&bogus, "not a key").unwrap();
        let keyed = serve_args(&["--jwt-public-key-file", bogus.to_str().unwrap()]);
        let err = auth(&keyed, AdminTokens::default()).unwrap_err();
        assert_eq!(err.code, 2);
        assert!(Cli::try_parse_from([
            "commerce",
            "serve",
            "--jwt-public-key-file",
            "a.pem",
            "--jwt-jwks-file",
            "b.json"
        ])
        .is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn admin_tokens_come_from_options_and_the_token_file() {
        let dir = std::env::temp_dir().join(format!("commerce-admin-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("admin.tokens");
        std::fs::write(
            &file,
            "# operators\nfile-admin-token-000001\n\n  file-admin-token-000002  \n",
        )
        .unwrap();
        let args = serve_args(&[
            "--admin-token",
            "flag-admin-token-000003",
            "--admin-token-file",
            file.to_str().unwrap(),
        ]);
        let tokens = admin_tokens(&args).unwrap();
        for token in [
            "file-admin-token-000001",
            "file-admin-token-000002",
            "flag-admin-token-000003",
        ] {
            assert!(tokens.accepts(token), "{token}");
        }
        assert!(!tokens.accepts("# operators"));
        std::fs::write(&file, "short\n").unwrap();
        assert!(admin_tokens(&args).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
