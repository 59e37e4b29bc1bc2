//! What `commerce serve` runs beside the HTTP API: the relay to JetStream (when NATS is
//! configured), the consumers (today the webhook fan-out) and the webhook dispatcher,
//! each supervised (restarted after a failure) and all stopped together on shutdown.
//!
//! * **Embedded** (no `--nats-url`): consumers read the log in process ([`LocalFeed`]).
//! * **Distributed** (`--nats-url`): the relay publishes the log to JetStream and the
//!   consumers read their durable JetStream consumers; dead letters are also announced
//!   on the dead-letter stream.
//!
//! [`LocalFeed`]: infra::feed::LocalFeed

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use infra::consumer::{Consumer, ConsumerConfig, ConsumerError, DeadLetterStream, Handler};
use infra::relay::{Relay, RelayConfig};
use infra::webhook::{WebhookConfig, WebhookDispatcher, WebhookFanout};
use infra::{on_db, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::CliError;

/// Options of the distributed deployment's messaging.
#[derive(Debug, Args, Clone)]
pub struct NatsArgs {
    /// NATS server with JetStream, e.g. `nats://127.0.0.1:4222`. When set, the relay
    /// publishes the log to JetStream and consumers read from it; when not, everything
    /// runs in process.
    #[arg(long, env = "COMMERCE_NATS_URL")]
    pub nats_url: Option<String>,
    /// The JetStream stream the relay publishes to.
    #[arg(long, env = "COMMERCE_JETSTREAM_STREAM", default_value = "COMMERCE")]
    pub jetstream_stream: String,
    /// Subjects are `<prefix>.<aggregate>.<event>`; dead letters `<prefix>_dlq.…`.
    #[arg(
        long,
        env = "COMMERCE_JETSTREAM_SUBJECT_PREFIX",
        default_value = "commerce"
    )]
    pub jetstream_subject_prefix: String,
    /// Replicas of the JetStream streams (3 on a cluster).
    #[arg(long, env = "COMMERCE_JETSTREAM_REPLICAS", default_value_t = 1)]
    pub jetstream_replicas: usize,
    /// Seconds JetStream keeps events (0 = forever; the log stays the source of truth).
    #[arg(long, env = "COMMERCE_JETSTREAM_MAX_AGE_SECS", default_value_t = 0)]
    pub jetstream_max_age_secs: u64,
    /// JetStream's de-duplication window in seconds: longer than any relay restart.
    #[arg(
        long,
        env = "COMMERCE_JETSTREAM_DUPLICATE_WINDOW_SECS",
        default_value_t = 120
    )]
    pub jetstream_duplicate_window_secs: u64,
    /// The stream dead letters are announced on.
    #[arg(long, env = "COMMERCE_DLQ_STREAM", default_value = "COMMERCE_DLQ")]
    pub dlq_stream: String,
}

impl NatsArgs {
    /// The defaults of the embedded deployment (no NATS).
    pub fn default_embedded() -> Self {
        Self {
            nats_url: None,
            jetstream_stream: "COMMERCE".into(),
            jetstream_subject_prefix: "commerce".into(),
            jetstream_replicas: 1,
            jetstream_max_age_secs: 0,
            jetstream_duplicate_window_secs: 120,
            dlq_stream: "COMMERCE_DLQ".into(),
        }
    }
}

/// The checkout saga's outside parties (`serve`, and workers that run the saga).
#[derive(Debug, Args, Clone)]
pub struct SagaArgs {
    /// The payment provider: `test` is the built-in deterministic one, where the card
    /// token decides (`tok_visa`, `tok_3ds`, `tok_insufficient_funds`, …; docs/sagas.md).
    #[arg(long, env = "COMMERCE_PAYMENT_PROVIDER", value_enum, default_value_t = PaymentProviderKind::Test)]
    pub payment_provider: PaymentProviderKind,
    /// The carrier: `test` is the built-in one, whose parcels advance by themselves.
    #[arg(long, env = "COMMERCE_CARRIER", value_enum, default_value_t = CarrierKind::Test)]
    pub carrier: CarrierKind,
    /// Seconds between the test carrier's scans of a parcel after its label is bought
    /// (in transit, out for delivery, delivered); 0 delivers at once.
    #[arg(long, env = "COMMERCE_CARRIER_STEP_SECS", default_value_t = 5)]
    pub carrier_step_secs: u64,
}

impl SagaArgs {
    /// The test provider and the test carrier advancing every `carrier_step_secs`.
    pub fn test(carrier_step_secs: u64) -> Self {
        Self {
            payment_provider: PaymentProviderKind::Test,
            carrier: CarrierKind::Test,
            carrier_step_secs,
        }
    }
}

/// Payment providers the engine can talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PaymentProviderKind {
    /// The built-in deterministic test provider.
    Test,
}

/// Carriers the engine can talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CarrierKind {
    /// The built-in test carrier.
    Test,
}

/// The background tasks of a running engine.
#[derive(Debug)]
pub struct Engine {
    tasks: Vec<(String, JoinHandle<()>)>,
    shutdown: watch::Sender<bool>,
    store: Store,
    nats: Option<Messaging>,
}

#[derive(Debug, Clone)]
struct Messaging {
    client: async_nats::Client,
    stream: String,
    dead_letters: DeadLetterStream,
}

impl Engine {
    /// Connects to NATS when configured and starts the relay.
    pub async fn start(store: Store, args: &NatsArgs) -> Result<Self, CliError> {
        Self::start_parts(store, args, true).await
    }

    /// Connects to NATS when configured, without starting the relay: for a worker
    /// process that runs another part (`commerce worker`).
    pub async fn connect(store: Store, args: &NatsArgs) -> Result<Self, CliError> {
        Self::start_parts(store, args, false).await
    }

    async fn start_parts(
        store: Store,
        args: &NatsArgs,
        with_relay: bool,
    ) -> Result<Self, CliError> {
        let (shutdown, _) = watch::channel(false);
        let mut engine = Self {
            tasks: Vec::new(),
            shutdown,
            store,
            nats: None,
        };
        let Some(url) = &args.nats_url else {
            return Ok(engine);
        };
        let client = async_nats::ConnectOptions::new()
            .name("commerce")
            .connection_timeout(Duration::from_secs(5))
            .connect(url.as_str())
            .await
            .map_err(|e| CliError::runtime(format!("cannot connect to NATS at {url}: {e}")))?;
        let config = RelayConfig {
            stream: args.jetstream_stream.clone(),
            subject_prefix: args.jetstream_subject_prefix.clone(),
            replicas: args.jetstream_replicas,
            max_age: Duration::from_secs(args.jetstream_max_age_secs),
            duplicate_window: Duration::from_secs(args.jetstream_duplicate_window_secs),
            ..RelayConfig::default()
        };
        let relay = Relay::new(engine.store.clone(), client.clone(), config)
            .map_err(|e| CliError::config(e.to_string()))?;
        relay
            .check_payload_limit()
            .map_err(|e| CliError::config(e.to_string()))?;
        let dead_letters = DeadLetterStream::ensure(
            client.clone(),
            &args.dlq_stream,
            &format!("{}_dlq", args.jetstream_subject_prefix),
            Duration::from_secs(args.jetstream_max_age_secs),
        )
        .await
        .map_err(|e| CliError::runtime(format!("cannot set up the dead-letter stream: {e}")))?;
        if with_relay {
            let stop = engine.stopped();
            engine.spawn("relay", async move {
                if let Err(err) = relay.run(stop).await {
                    tracing::error!(error = %err, "relay stopped");
                }
            });
        }
        engine.nats = Some(Messaging {
            client,
            stream: args.jetstream_stream.clone(),
            dead_letters,
        });
        if with_relay {
            tracing::info!(nats = %url, stream = %args.jetstream_stream, "relay started");
        }
        Ok(engine)
    }

    /// Runs `handler` for as long as the engine runs: on the in-process feed as the
    /// consumer's one active runner across processes (a lease; the others stand by and
    /// take over), or on its durable JetStream consumer (all events; the handler's
    /// `wants` filters; JetStream splits the work between processes). A failed
    /// run is logged and restarted after a pause; nothing unacknowledged is lost.
    pub fn run_consumer<H: Handler>(
        &mut self,
        handler: Arc<H>,
        config: ConsumerConfig,
    ) -> Result<(), CliError> {
        let mut consumer = Consumer::new(self.store.clone(), handler, config)
            .map_err(|e| CliError::config(e.to_string()))?;
        if let Some(nats) = &self.nats {
            consumer = consumer.with_dead_letter_stream(nats.dead_letters.clone());
        }
        let nats = self.nats.clone();
        let name = consumer.name().to_string();
        let mut stop = self.shutdown.subscribe();
        self.spawn(&format!("consumer {name}"), async move {
            loop {
                let stopped = {
                    let mut stop = stop.clone();
                    async move {
                        let _ = stop.wait_for(|s| *s).await;
                    }
                };
                let result: Result<(), ConsumerError> = match &nats {
                    // Several processes may serve one PostgreSQL database: the lease
                    // lets one of them run the consumer, the others stand by.
                    None => consumer.run_local(0, stopped).await,
                    Some(nats) => {
                        match consumer.jetstream_feed(nats.client.clone(), &nats.stream, None, 0).await {
                            Ok(feed) => consumer.run(feed, stopped).await,
                            Err(e) => Err(e),
                        }
                    }
                };
                if *stop.borrow() {
                    return;
                }
                if let Err(err) = result {
                    tracing::warn!(consumer = %consumer.name(), error = %err, "consumer failed; restarting");
                }
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        Ok(())
    }

    /// Starts the webhook fan-out (a consumer named `webhooks`), the dispatcher and the
    /// worker that carries out replay jobs.
    pub fn run_webhooks(&mut self, config: WebhookConfig) -> Result<(), CliError> {
        let fanout = WebhookFanout::new(self.store.clone());
        self.run_consumer(Arc::new(fanout), ConsumerConfig::default())?;
        let replays_every = config.poll_interval;
        let dispatcher = WebhookDispatcher::new(self.store.clone(), config)
            .map_err(|e| CliError::config(format!("webhooks: {e}")))?;
        let (store, stop) = (self.store.clone(), self.stopped());
        self.spawn("webhook replays", async move {
            infra::webhook::replay::run(store, replays_every, stop).await;
        });
        let stop = self.stopped();
        self.spawn("webhook dispatcher", async move {
            if let Err(err) = dispatcher.run(stop).await {
                tracing::error!(error = %err, "webhook dispatcher stopped");
            }
        });
        Ok(())
    }

    /// Starts the housekeeping task: every [`GAUGE_EVERY`] it refreshes the lag and
    /// dead-letter gauges of `/metrics` from the store's tables, and every
    /// [`PRUNE_EVERY`] it deletes `Idempotency-Key` responses older than
    /// `idempotency_retention`. Failures are logged and tried again next round.
    pub fn run_housekeeping(
        &mut self,
        idempotency_retention: Duration,
        consumer_retention: Duration,
    ) {
        let store = self.store.clone();
        let stop = self.stopped();
        self.spawn("housekeeping", async move {
            tokio::pin!(stop);
            let mut gauges = tokio::time::interval(GAUGE_EVERY);
            let mut prune = tokio::time::interval(PRUNE_EVERY);
            gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = &mut stop => return,
                    _ = gauges.tick() => {
                        if let Err(err) = refresh_gauges(&store).await {
                            tracing::warn!(error = %err, "cannot refresh the lag gauges");
                        }
                    }
                    _ = prune.tick() => {
                        match crate::http::idempotency::prune(&store, idempotency_retention).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(deleted = n, "pruned idempotency keys"),
                            Err(err) => tracing::warn!(error = %err, "cannot prune idempotency keys"),
                        }
                        let kept = chrono::Duration::from_std(consumer_retention)
                            .unwrap_or(chrono::Duration::MAX);
                        let before = store.clock().now() - kept;
                        if let Err(err) = infra::consumer::retention::prune(&store, before).await {
                            tracing::warn!(error = %err, "cannot prune consumer bookkeeping");
                        }
                    }
                }
            }
        });
    }

    /// Starts the search indexer (documents, and Meilisearch when `meili_url` is set) and
    /// answers the index the search routes read.
    pub fn run_search(
        &mut self,
        meili_url: Option<&str>,
        meili_key: Option<String>,
    ) -> Result<infra::search::Search, CliError> {
        use infra::search::{IndexerConfig, MeiliConfig, MeiliIndex, SearchIndexer, SqlIndex};
        let meili = meili_url
            .map(|url| MeiliIndex::new(MeiliConfig::new(url, meili_key)))
            .transpose()
            .map_err(|e| CliError::config(format!("meilisearch: {e}")))?;
        let indexer =
            SearchIndexer::new(self.store.clone(), meili.clone(), IndexerConfig::default());
        let stop = self.stopped();
        self.spawn("search indexer", indexer.run(stop));
        Ok(match meili {
            Some(meili) => Arc::new(meili),
            None => Arc::new(SqlIndex::new(self.store.clone())),
        })
    }

    /// Starts the SQL projections (docs/projections.md), so the views stay fresh while
    /// the API runs, and answers the handle queries wait on for read-your-writes.
    pub fn run_projections(&mut self) -> infra::projection::ProjectionsHandle {
        use infra::projection::{ProjectionRunner, RunnerConfig};
        let runner = ProjectionRunner::new(
            self.store.clone(),
            projections::all().to_vec(),
            RunnerConfig::default(),
        );
        let handle = runner.handle();
        let stop = self.stopped();
        self.spawn("projections", async move {
            if let Err(err) = runner.run(stop).await {
                tracing::error!(error = %err, "projections stopped");
            }
        });
        handle
    }

    /// Starts the checkout saga (docs/sagas.md) as a consumer named `saga-checkout`, and
    /// its timer worker, with the payment provider and carrier `args` select, and answers
    /// the runner, which the provider callback routes hand their inputs to. Timer claims
    /// keep several processes from firing one timer at once.
    pub fn run_sagas(&mut self, args: &SagaArgs) -> Result<Arc<CheckoutRunner>, CliError> {
        let runner = self.checkout_runner(args);
        self.run_consumer(
            Arc::new(infra::saga::SagaHandler(runner.clone())),
            saga_consumer_config(),
        )?;
        let timers = runner.clone();
        let stop = self.stopped();
        self.spawn("saga timers", async move {
            timers
                .run_timers_concurrently(SAGA_TIMERS_EVERY, SAGA_CONCURRENCY, stop)
                .await;
        });
        Ok(runner)
    }

    /// The checkout saga's runner with the providers `args` select (only the built-in
    /// test ones so far): payments follow the test card tokens; parcels advance one
    /// scan every `--carrier-step-secs` by themselves, and the saga asks the test carrier
    /// for scans as often (at least every second).
    pub fn checkout_runner(&self, args: &SagaArgs) -> Arc<CheckoutRunner> {
        use sagas::checkout::{CheckoutSaga, CheckoutSettings};
        use sagas::ports::{test_carrier::TestCarrier, test_payment::TestPaymentProvider};
        let step = chrono::Duration::seconds(
            i64::try_from(args.carrier_step_secs).unwrap_or(i64::MAX / 1_000_000),
        );
        let settings = CheckoutSettings {
            provider: match args.payment_provider {
                PaymentProviderKind::Test => "test".into(),
            },
            tracking_poll: match args.carrier {
                CarrierKind::Test => step.max(chrono::Duration::seconds(1)),
            },
            ..CheckoutSettings::default()
        };
        let clock = self.store.clock().clone();
        Arc::new(infra::saga::SagaRunner::new(
            infra::command::Commands::new(self.store.clone()),
            CheckoutSaga::new(settings),
            TestPaymentProvider::new(),
            TestCarrier::new(step, Arc::new(move || clock.now())),
        ))
    }

    /// The consumer half of the saga (`commerce worker sagas`): steps for events.
    pub fn run_saga_consumer(&mut self, runner: Arc<CheckoutRunner>) -> Result<(), CliError> {
        self.run_consumer(
            Arc::new(infra::saga::SagaHandler(runner)),
            saga_consumer_config(),
        )
    }

    /// The timer half of the saga (`commerce worker timers`): fires due timers.
    pub fn run_saga_timers(&mut self, runner: Arc<CheckoutRunner>) {
        let stop = self.stopped();
        self.spawn("saga timers", async move {
            runner
                .run_timers_concurrently(SAGA_TIMERS_EVERY, SAGA_CONCURRENCY, stop)
                .await;
        });
    }

    /// Starts a background task.
    pub fn spawn(&mut self, name: &str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push((name.to_string(), tokio::spawn(task)));
    }

    /// A future that completes when the engine is asked to stop.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.shutdown.subscribe();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    /// Asks every task to stop and waits for them (at most `grace`; then aborts).
    pub async fn stop(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        for (name, task) in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!(task = %name, "did not stop in time; aborted");
                abort.abort();
            }
        }
    }
}

/// The checkout saga's runner with the built-in test providers.
pub type CheckoutRunner = infra::saga::SagaRunner<
    sagas::checkout::CheckoutSaga,
    sagas::ports::test_payment::TestPaymentProvider,
    sagas::ports::test_carrier::TestCarrier,
>;

/// How often the lag and dead-letter gauges are refreshed.
pub const GAUGE_EVERY: Duration = Duration::from_secs(5);
/// How often the saga timer worker looks for due timers.
pub const SAGA_TIMERS_EVERY: Duration = Duration::from_secs(1);

/// Saga steps (of different sagas) one saga runtime runs at once, and sagas whose timers
/// a timer worker fires at once: steps wait on round trips, not on CPU.
pub const SAGA_CONCURRENCY: usize = 8;

/// The saga consumer's settings: the defaults, with [`SAGA_CONCURRENCY`] deliveries in
/// flight (in lanes: one step per saga, one event per stream at a time).
fn saga_consumer_config() -> ConsumerConfig {
    ConsumerConfig {
        concurrency: SAGA_CONCURRENCY,
        ..ConsumerConfig::default()
    }
}
/// How often expired `Idempotency-Key` responses are deleted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// Sets `commerce_relay_lag_events{relay}` (head − relay checkpoint),
/// `commerce_consumer_lag_events{consumer}` (head − settled position) and
/// `commerce_dead_letters_open{consumer}` (dead letters waiting for an operator or being
/// retried).
pub async fn refresh_gauges(store: &Store) -> Result<(), sqlx::Error> {
    let head = store
        .head_position()
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let relays: Vec<(String, i64)> = on_db!(store.db(), pool => {
        sqlx::query_as("SELECT name, position FROM relay_checkpoints")
            .fetch_all(pool)
            .await?
    });
    for (relay, position) in relays {
        metrics::gauge!("commerce_relay_lag_events", "relay" => relay).set(lag(head, position));
    }
    let consumers: Vec<(String, i64)> = on_db!(store.db(), pool => {
        sqlx::query_as("SELECT name, position FROM consumers")
            .fetch_all(pool)
            .await?
    });
    for (consumer, position) in &consumers {
        metrics::gauge!("commerce_consumer_lag_events", "consumer" => consumer.clone())
            .set(lag(head, *position));
    }
    let open: Vec<(String, i64)> = on_db!(store.db(), pool => {
        sqlx::query_as(
            "SELECT consumer, COUNT(*) FROM dead_letters \
             WHERE status IN ('dead', 'retry', 'retrying') GROUP BY consumer",
        )
        .fetch_all(pool)
        .await?
    });
    // Consumers without open dead letters report 0 rather than a stale count.
    for (consumer, _) in &consumers {
        let count = open
            .iter()
            .find(|(c, _)| c == consumer)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("commerce_dead_letters_open", "consumer" => consumer.clone())
            .set(count as f64);
    }
    Ok(())
}

fn lag(head: i64, position: i64) -> f64 {
    (head - position).max(0) as f64
}
