//! The consumer runtime: runs one [`Handler`] over a [`Feed`] with stored progress,
//! retries with backoff, dead letters and per-stream order.
//!
//! Consumer code is written once and runs on the in-process feed (embedded) or on a
//! durable JetStream consumer (distributed; several processes may share one, JetStream
//! splits the work and hands each message to one of them at a time).
//!
//! For every delivery the runtime:
//!
//! 1. **Skips what is done.** Ordered handlers keep the newest settled version of each
//!    stream (`consumer_streams`); unordered ones an inbox of handled event ids
//!    (`consumer_inbox`). A redelivered event that is already settled is acknowledged
//!    without calling the handler.
//! 2. **Keeps each stream in order** (ordered handlers). An event is handled only when
//!    it is the next one of its stream for this consumer. An event whose predecessor is
//!    dead-lettered or parked is *parked* (stored, acknowledged, held back); an event
//!    whose predecessor is still in flight elsewhere is handed back to the feed for a
//!    moment. So a stuck event never lets later events of its stream overtake it, while
//!    other streams go on.
//! 3. **Calls the handler in the settle transaction** (bounded by
//!    [`ConsumerConfig::handler_timeout`]), lending it a [`Tx`]: an effect written there
//!    is committed together with the settle, or rolled back with it (handler error,
//!    timeout, failed settle, crash). So an effect in the store's database happens
//!    exactly once; effects elsewhere use an [`inbox`] in their own database. While a
//!    slow handler runs, a JetStream delivery is reported in progress so its ack wait
//!    does not run out and hand it to another process. Then the event is acknowledged:
//!    *ack after the effect is stored*.
//! 4. **Retries failures** with exponential backoff (the JetStream feed redelivers after
//!    the delay while others proceed; the local feed waits in place). The failure count
//!    is stored, so it survives restarts and is shared between processes.
//! 5. **Dead-letters** an event after [`ConsumerConfig::max_attempts`] failures, or at once
//!    on a [permanent](HandlerError::permanent) error: it is stored with the error text
//!    (`dead_letters`), acknowledged, and the consumer moves on.
//!
//! On the in-process feed each consumer has **one active runner** across processes:
//! [`Consumer::run_local`] holds the consumer's lease (see [`lease`]) while it runs, and
//! the settles of a leased runner are fenced by it. Standby runners take over when the
//! holder stops or dies.
//!
//! Operators work the dead letters through [`DeadLetterQueue`] (`commerce dlq`): a
//! *retry* is carried out by the running consumer (it owns the handler); a *discard*
//! settles the event without handling it. Either way, once a stream has no open dead
//! letter its parked events are handled, in order, by the running consumer.
//!
//! Every event the runtime settles, parks or dead-letters also moves the consumer's
//! position (`consumers.position`), from which [`Consumer::local_feed`] resumes.
//!
//! A runner handles up to [`ConsumerConfig::concurrency`] deliveries at once, each on
//! its own task, in *lanes*: a delivery waits (in memory, in arrival order) while an
//! earlier one of its stream (ordered handlers) or of its [`Handler::lane`] is in flight.
//! On the local feed the stored position then moves only up to just below the earliest
//! delivery still in flight (a low watermark), so a crash never skips an unfinished
//! event; JetStream acknowledges each message on its own.

mod dead_letter_stream;
mod handler;
pub mod inbox;
pub mod lease;
mod ledger;
pub mod retention;
mod tx;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::feed::{
    Delivery, Envelope, Feed, FeedError, JetStreamFeed, JetStreamFeedConfig, LocalFeed,
};
use crate::store::{Store, StoreError, StreamRef};
pub use dead_letter_stream::DeadLetterStream;
pub use handler::{Handler, HandlerError, Ordering};
pub use tx::{Tx, TxConn};

use lease::Lease;

/// Tuning of a [`Consumer`]. Every field has a working default.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Failed attempts before an event is dead-lettered.
    pub max_attempts: i32,
    /// Delay after the first failure; doubles with each further failure...
    pub backoff_initial: Duration,
    /// ...up to this.
    pub backoff_max: Duration,
    /// Longest a handler call may take; longer counts as a failure.
    pub handler_timeout: Duration,
    /// How long an ordered event waits when its predecessor is in flight elsewhere.
    pub not_next_delay: Duration,
    /// How often the runtime looks for retry requests and releasable parked events.
    pub maintenance_interval: Duration,
    /// A dead-letter claim older than this is taken to belong to a crashed runtime.
    pub claim_timeout: Duration,
    /// JetStream's ack wait for this consumer's durable consumer (set when the durable
    /// consumer is created); `None`: [`handler_timeout`](Self::handler_timeout) + 10 s.
    /// Slow handlers are kept alive past it ("in progress"), and fetches are sized to it.
    pub ack_wait: Option<Duration>,
    /// How often a runner waiting for the consumer's [lease](Consumer::run_local) tries
    /// to take it (how soon it takes over after the holder died).
    pub lease_retry: Duration,
    /// Deliveries one runner handles at once (at least 1). Above 1, deliveries run in
    /// *lanes*: one waits, in arrival order, while an earlier delivery of the same stream
    /// (ordered handlers) or of the same [`Handler::lane`] is in flight. Only for handlers
    /// whose effects on different lanes may be stored in any order (sagas keyed by saga
    /// id, projections whose rows are per stream). 1 (the default): one at a time.
    pub concurrency: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            handler_timeout: Duration::from_secs(20),
            not_next_delay: Duration::from_millis(200),
            maintenance_interval: Duration::from_millis(500),
            claim_timeout: Duration::from_secs(60),
            ack_wait: None,
            lease_retry: Duration::from_secs(1),
            concurrency: 1,
        }
    }
}

impl ConsumerConfig {
    /// The delay after the `failures`-th failure.
    pub fn backoff(&self, failures: i32) -> Duration {
        let doublings = failures.saturating_sub(1).clamp(0, 30) as u32;
        self.backoff_initial
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.backoff_max)
    }
}

/// Errors of the runtime (not of the handler: those are retried or dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("invalid consumer: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("feed: {0}")]
    Feed(#[from] FeedError),
    #[error("NATS JetStream: {0}")]
    Nats(#[source] async_nats::Error),
    #[error("cannot encode or decode an envelope: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("corrupt consumer bookkeeping: {0}")]
    Corrupt(String),
    /// This runner no longer holds the consumer's lease (its lock connection broke):
    /// it stops, and another runner takes over. The caller may start it again.
    #[error("consumer {0} lost its lease")]
    LeaseLost(String),
}

/// Where a dead-letter row stands. See the migration for the life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterStatus {
    /// Failed too often or permanently; waits for an operator.
    Dead,
    /// An operator asked for another attempt; a running consumer will make it.
    Retry,
    /// A running consumer is making that attempt (or releasing a parked event).
    Retrying,
    /// Held back behind an earlier dead letter of the same stream.
    Parked,
    /// Handled after all.
    Resolved,
    /// Dropped by an operator.
    Discarded,
}

impl DeadLetterStatus {
    pub const ALL: [DeadLetterStatus; 6] = [
        Self::Dead,
        Self::Retry,
        Self::Retrying,
        Self::Parked,
        Self::Resolved,
        Self::Discarded,
    ];

    /// The open ones: still waiting for something to happen.
    pub const OPEN: [DeadLetterStatus; 4] = [Self::Dead, Self::Retry, Self::Retrying, Self::Parked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dead => "dead",
            Self::Retry => "retry",
            Self::Retrying => "retrying",
            Self::Parked => "parked",
            Self::Resolved => "resolved",
            Self::Discarded => "discarded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for DeadLetterStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dead letter (or parked event) with the whole envelope it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub status: DeadLetterStatus,
    pub event_id: Uuid,
    pub position: i64,
    pub stream: StreamRef,
    pub version: i64,
    pub event_type: String,
    pub envelope: Envelope,
    /// Failed attempts so far.
    pub attempts: i32,
    /// The last error (none for an event parked without an attempt).
    pub error: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Operators' access to the dead letters of every consumer on a store.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    store: Store,
}

/// Why an operator's request on a dead letter was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("no dead letter {0}")]
    NotFound(i64),
    #[error("dead letter {id} is {status}; only a dead one can be {action}")]
    WrongStatus {
        id: i64,
        status: DeadLetterStatus,
        action: &'static str,
    },
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
}

impl DeadLetterQueue {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Dead letters with one of `statuses` (of `consumer`, or of all), by id, after
    /// `after_id`, at most `limit` (capped at 1000).
    pub async fn list(
        &self,
        consumer: Option<&str>,
        statuses: &[DeadLetterStatus],
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        Ok(ledger::list(
            &self.store,
            consumer,
            statuses,
            after_id,
            limit.clamp(1, 1000),
        )
        .await?)
    }

    pub async fn get(&self, id: i64) -> Result<DeadLetter, DeadLetterError> {
        ledger::get(&self.store, id)
            .await?
            .ok_or(DeadLetterError::NotFound(id))
    }

    /// Asks the running consumer for another attempt at dead letter `id`.
    pub async fn retry(&self, id: i64) -> Result<(), DeadLetterError> {
        if ledger::transition(
            &self.store,
            id,
            DeadLetterStatus::Dead,
            DeadLetterStatus::Retry,
        )
        .await?
        {
            return Ok(());
        }
        Err(self.refusal(id, "retried").await)
    }

    /// Drops dead letter `id`: its stream moves on without it.
    pub async fn discard(&self, id: i64) -> Result<(), DeadLetterError> {
        if ledger::discard(&self.store, id).await? {
            return Ok(());
        }
        Err(self.refusal(id, "discarded").await)
    }

    async fn refusal(&self, id: i64, action: &'static str) -> DeadLetterError {
        match self.get(id).await {
            Ok(letter) => DeadLetterError::WrongStatus {
                id,
                status: letter.status,
                action,
            },
            Err(err) => err,
        }
    }
}

/// What became of one delivery.
enum Outcome {
    /// Settled, parked or dead-lettered: acknowledge it.
    Done,
    /// Not now: deliver it again after this delay.
    Later(Duration),
}

/// A delivery not started yet (or to be retried in place after `delay`).
struct Waiting {
    delivery: Delivery,
    /// Its lanes (see [`Handler::lane`]).
    keys: Vec<String>,
    retried: bool,
    delay: Option<Duration>,
    /// Since when it waits (or was last reported in progress).
    since: tokio::time::Instant,
}

/// A delivery whose task ended.
struct Run {
    delivery: Delivery,
    keys: Vec<String>,
    outcome: Result<Outcome, ConsumerError>,
}

/// What one runner has in flight.
struct Runs {
    limit: usize,
    tasks: tokio::task::JoinSet<Run>,
    waiting: VecDeque<Waiting>,
    /// Lanes of the deliveries running (or retried in place).
    busy: HashSet<String>,
    marks: Arc<Watermark>,
    /// The highest position the runner stored besides its settles.
    advanced: i64,
    /// Set on shutdown: retries waiting out their delay give up.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Runs {
    fn new(concurrency: usize) -> Self {
        Self {
            limit: concurrency.max(1),
            tasks: tokio::task::JoinSet::new(),
            waiting: VecDeque::new(),
            busy: HashSet::new(),
            marks: Arc::new(Watermark::default()),
            advanced: 0,
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Whether the runner takes another delivery: a task slot is free, and not too many
    /// wait for busy lanes already.
    fn room(&self) -> bool {
        self.tasks.len() < self.limit && self.waiting.len() < self.limit * 4
    }
}

/// The low watermark of a runner on the local feed: the consumer's stored position may
/// only move up to the highest position at or below which every delivery is finished,
/// or a crash would skip an earlier event still in flight (the feed resumes after the
/// stored position). Deliveries finish out of order when several run at once.
#[derive(Debug, Default)]
struct Watermark(std::sync::Mutex<Marks>);

#[derive(Debug, Default)]
struct Marks {
    /// Whether any in-order delivery was handed out.
    seen: bool,
    /// Positions handed out and not finished.
    unfinished: BTreeSet<i64>,
    /// The highest position handed out.
    highest: i64,
}

impl Watermark {
    fn lock(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handed_out(&self, position: i64) {
        let mut marks = self.lock();
        marks.seen = true;
        marks.unfinished.insert(position);
        marks.highest = marks.highest.max(position);
    }

    fn finished(&self, position: i64) {
        self.lock().unfinished.remove(&position);
    }

    /// How far the settle of `position` may move the stored position: below the lowest
    /// other unfinished delivery, or to the highest handed out when there is none.
    fn settling(&self, position: i64) -> i64 {
        let marks = self.lock();
        match marks.unfinished.iter().find(|p| **p != position) {
            Some(lowest) => lowest - 1,
            None => marks.highest,
        }
    }

    /// The position at or below which everything is finished, when the runner reads an
    /// in-order feed (`None` otherwise: nothing caps a settle).
    fn cap(&self) -> Option<i64> {
        let marks = self.lock();
        marks.seen.then(|| match marks.unfinished.first() {
            Some(lowest) => lowest - 1,
            None => marks.highest,
        })
    }

    /// [`Watermark::cap`] when it is above `stored`.
    fn caught_up(&self, stored: i64) -> Option<i64> {
        self.cap().filter(|mark| *mark > stored)
    }
}

/// Where an event stands in its stream for an ordered consumer.
enum Place {
    /// Settled already.
    Done,
    /// The next one to handle.
    Next,
    /// An earlier event of its stream is not settled yet.
    Early,
}

/// Runs one [`Handler`]. Cheap to clone.
pub struct Consumer<H> {
    store: Store,
    handler: Arc<H>,
    config: ConsumerConfig,
    name: String,
    ordered: bool,
    dead_letter_stream: Option<DeadLetterStream>,
}

impl<H> Clone for Consumer<H> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            handler: self.handler.clone(),
            config: self.config.clone(),
            name: self.name.clone(),
            ordered: self.ordered,
            dead_letter_stream: self.dead_letter_stream.clone(),
        }
    }
}

impl<H> std::fmt::Debug for Consumer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("ordered", &self.ordered)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Checks a subscriber name: it names a JetStream durable consumer and database rows.
pub fn validate_name(name: &str) -> Result<(), ConsumerError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ConsumerError::Config(format!(
            "consumer name `{name}` must be 1-64 characters of [A-Za-z0-9_-]"
        )));
    }
    Ok(())
}

impl<H: Handler> Consumer<H> {
    pub fn new(
        store: Store,
        handler: Arc<H>,
        config: ConsumerConfig,
    ) -> Result<Self, ConsumerError> {
        let name = handler.name().to_string();
        validate_name(&name)?;
        if config.max_attempts < 1 {
            return Err(ConsumerError::Config(
                "max_attempts must be at least 1".into(),
            ));
        }
        let ordered = handler.ordering() == Ordering::PerStream;
        Ok(Self {
            store,
            handler,
            config,
            name,
            ordered,
            dead_letter_stream: None,
        })
    }

    /// Also announces every dead letter on `stream` (the distributed deployment's
    /// dead-letter stream; see [`DeadLetterStream`]).
    pub fn with_dead_letter_stream(mut self, stream: DeadLetterStream) -> Self {
        self.dead_letter_stream = Some(stream);
        self
    }

    /// Announces a new dead letter; the stored row is what counts, so a failed
    /// announcement is logged, not fatal.
    async fn announce(&self, envelope: &Envelope, attempts: i32, error: &str) {
        if let Some(stream) = &self.dead_letter_stream {
            if let Err(err) = stream.publish(&self.name, envelope, attempts, error).await {
                tracing::warn!(consumer = %self.name, event_id = %envelope.event_id, error = %err, "dead letter not announced on JetStream");
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Registers the consumer (on its first run, starting after `start`) and returns the
    /// position its feed should start after.
    pub async fn register(&self, start: i64) -> Result<i64, ConsumerError> {
        Ok(
            ledger::register(&self.store, &self.name, self.ordered, start)
                .await?
                .position,
        )
    }

    /// The in-process feed from where this consumer stands (from `start` on its first run).
    pub async fn local_feed(&self, start: i64) -> Result<LocalFeed, ConsumerError> {
        let after = self.register(start).await?;
        Ok(LocalFeed::new(&self.store, after))
    }

    /// The JetStream feed of this consumer: a durable pull consumer named after it on
    /// `stream`, optionally filtered (for an ordered handler filter by stream type only,
    /// `commerce.order.>`, so each stream it sees arrives whole). Redelivery is left to the
    /// runtime (no JetStream backoff or delivery limit); the ack wait stays above the
    /// handler timeout. A new durable consumer starts after `start` (on the first run).
    pub async fn jetstream_feed(
        &self,
        nats: async_nats::Client,
        stream: &str,
        filter_subject: Option<String>,
        start: i64,
    ) -> Result<JetStreamFeed, ConsumerError> {
        // Not the consumer's position: processes sharing the durable consumer settle
        // events out of position order, so only its start is a safe floor; the durable
        // consumer's own acks are its progress.
        let after = ledger::register(&self.store, &self.name, self.ordered, start)
            .await?
            .start_position;
        let mut config = JetStreamFeedConfig::new(stream, &self.name);
        config.filter_subject = filter_subject;
        config.backoff = Vec::new();
        config.max_deliver = -1;
        config.ack_wait = self
            .config
            .ack_wait
            .unwrap_or(self.config.handler_timeout + Duration::from_secs(10));
        Ok(JetStreamFeed::open(nats, config, after).await?)
    }

    /// Handles deliveries from `feed` until `shutdown` completes. Returns on shutdown, or
    /// with an error when the feed or the database fails (the caller restarts it; nothing
    /// unacknowledged is lost).
    ///
    /// Takes no lease: use it for a JetStream feed (JetStream hands each message to one
    /// runner of the durable consumer) or when this is known to be the only runner; for
    /// the in-process feed of a deployment that may run several processes use
    /// [`Consumer::run_local`].
    pub async fn run<F: Feed>(
        &self,
        feed: F,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ConsumerError> {
        self.register(0).await?;
        self.run_with(feed, None, shutdown).await
    }

    /// Runs on the in-process feed as the consumer's one active runner: waits for the
    /// consumer's lease (see [`lease`]), then reads the log from where the consumer stands
    /// (after `start` on its first run) until `shutdown` completes or the lease is lost
    /// ([`ConsumerError::LeaseLost`]; the caller may start it again to wait for the
    /// lease anew). Any number of processes may call it for one consumer; one handles
    /// events, the others take over when it stops or dies.
    pub async fn run_local(
        &self,
        start: i64,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ConsumerError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let lease = tokio::select! {
            biased;
            _ = shutdown.as_mut() => return Ok(()),
            lease = Lease::acquire(&self.store, &self.name, self.config.lease_retry) => lease?,
        };
        // Only now read the position: the previous holder may have settled more while
        // this runner waited.
        let feed = match self.local_feed(start).await {
            Ok(feed) => feed,
            Err(err) => {
                lease.release().await;
                return Err(err);
            }
        };
        let mut lease = Some(lease);
        let result = self.run_with(feed, lease.as_mut(), shutdown).await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        result
    }

    async fn run_with<F: Feed>(
        &self,
        mut feed: F,
        lease: Option<&mut Lease>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ConsumerError> {
        let mut runs = Runs::new(self.config.concurrency);
        let mut result = self.dispatch(&mut feed, lease, shutdown, &mut runs).await;
        if result.is_ok() {
            // Shutdown: what has not started goes back to the feed; what runs finishes
            // and is acknowledged (a retry waiting out its delay stops waiting).
            result = self.drain(&mut feed, &mut runs).await;
        }
        // After an error, whatever is still in flight stops here, before the lease goes:
        // its effects roll back with its transaction and the event comes again.
        runs.tasks.shutdown().await;
        result
    }

    /// Ends a runner on shutdown; see [`Consumer::run_with`].
    async fn drain<F: Feed>(&self, feed: &mut F, runs: &mut Runs) -> Result<(), ConsumerError> {
        let _ = runs.stopping.send(true);
        for waiting in runs.waiting.drain(..) {
            feed.release(&waiting.delivery, Duration::ZERO).await?;
        }
        while let Some(joined) = runs.tasks.join_next().await {
            let run = match joined {
                Ok(run) => run,
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(_) => continue,
            };
            match run.outcome? {
                Outcome::Done => {
                    feed.ack(&run.delivery).await?;
                    if run.delivery.in_log_order() {
                        runs.marks.finished(run.delivery.envelope.position);
                    }
                }
                // Not handled: it stays unfinished, below the stored position's reach.
                Outcome::Later(delay) => {
                    feed.release(&run.delivery, delay).await?;
                }
            }
        }
        if runs.limit > 1 {
            if let Some(mark) = runs.marks.caught_up(runs.advanced) {
                ledger::advance(&self.store, &self.name, mark).await?;
            }
        }
        Ok(())
    }

    /// The runner's loop: takes deliveries from `feed` while fewer than
    /// [`ConsumerConfig::concurrency`] are in flight, starts each when its lanes are free,
    /// and acknowledges (or hands back) each as it finishes.
    async fn dispatch<F: Feed>(
        &self,
        feed: &mut F,
        mut lease: Option<&mut Lease>,
        shutdown: impl Future<Output = ()> + Send,
        runs: &mut Runs,
    ) -> Result<(), ConsumerError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let fence = lease.as_ref().and_then(|lease| lease.fence());
        let mut tick = tokio::time::interval(self.config.maintenance_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.start_free(runs, fence);
            tokio::select! {
                biased;
                _ = shutdown.as_mut() => return Ok(()),
                Some(joined) = runs.tasks.join_next(), if !runs.tasks.is_empty() => {
                    let run = match joined {
                        Ok(run) => run,
                        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                        Err(err) => return Err(ConsumerError::Corrupt(format!("delivery task ended: {err}"))),
                    };
                    match run.outcome? {
                        Outcome::Done => {
                            feed.ack(&run.delivery).await?;
                            self.finish(runs, &run.delivery, &run.keys);
                        }
                        Outcome::Later(delay) => {
                            if feed.release(&run.delivery, delay).await? {
                                self.finish(runs, &run.delivery, &run.keys);
                            } else {
                                // The local feed does not deliver it again: retry it in
                                // place, keeping its lanes (and the position) held.
                                self.spawn(runs, Waiting {
                                    delivery: run.delivery,
                                    keys: run.keys,
                                    retried: true,
                                    delay: Some(delay),
                                    since: tokio::time::Instant::now(),
                                }, fence);
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Some(lease) = lease.as_mut() {
                        lease.check(&self.name).await?;
                    }
                    self.maintain_fenced(fence, runs.marks.cap()).await?;
                    // Settles finishing out of order leave the stored position behind what
                    // is finished (each moves it only below the others in flight): store
                    // it now and then. One at a time, each settle stores its own.
                    if runs.limit > 1 {
                        if let Some(mark) = runs.marks.caught_up(runs.advanced) {
                            ledger::advance(&self.store, &self.name, mark).await?;
                            runs.advanced = mark;
                        }
                    }
                    // Deliveries waiting for a lane are not handed to another runner meanwhile.
                    for waiting in &mut runs.waiting {
                        if let Some(every) = waiting.delivery.keep_alive() {
                            if waiting.since.elapsed() >= every {
                                if let Err(err) = waiting.delivery.in_progress().await {
                                    tracing::warn!(consumer = %self.name, position = waiting.delivery.envelope.position, error = %err, "could not extend the ack wait");
                                }
                                waiting.since = tokio::time::Instant::now();
                            }
                        }
                    }
                }
                delivery = feed.next(), if runs.room() => {
                    let delivery = match delivery {
                        Ok(delivery) => delivery,
                        Err(FeedError::Malformed { sequence, reason }) => {
                            tracing::error!(consumer = %self.name, sequence, %reason, "malformed message skipped by the feed");
                            continue;
                        }
                        Err(err) => return Err(err.into()),
                    };
                    if delivery.in_log_order() {
                        runs.marks.handed_out(delivery.envelope.position);
                    }
                    let keys = self.lanes(&delivery.envelope);
                    runs.waiting.push_back(Waiting {
                        delivery,
                        keys,
                        retried: false,
                        delay: None,
                        since: tokio::time::Instant::now(),
                    });
                }
            }
        }
    }

    /// The lanes of a delivery: its stream (ordered handlers) and the handler's lane.
    fn lanes(&self, envelope: &Envelope) -> Vec<String> {
        let mut keys = Vec::with_capacity(2);
        if self.ordered {
            keys.push(format!(
                "stream\0{}\0{}",
                envelope.stream_type, envelope.stream_id
            ));
        }
        if let Some(lane) = self.handler.lane(envelope) {
            keys.push(format!("lane\0{lane}"));
        }
        keys
    }

    /// Starts the waiting deliveries whose lanes are free, in arrival order: one never
    /// overtakes an earlier waiting delivery that shares a lane with it.
    fn start_free(&self, runs: &mut Runs, fence: Option<i32>) {
        let mut held_back: HashSet<String> = HashSet::new();
        let mut i = 0;
        while i < runs.waiting.len() && runs.tasks.len() < runs.limit {
            let blocked = runs.waiting[i]
                .keys
                .iter()
                .any(|k| runs.busy.contains(k) || held_back.contains(k));
            if blocked {
                held_back.extend(runs.waiting[i].keys.iter().cloned());
                i += 1;
                continue;
            }
            let Some(waiting) = runs.waiting.remove(i) else {
                break;
            };
            runs.busy.extend(waiting.keys.iter().cloned());
            self.spawn(runs, waiting, fence);
        }
    }

    /// Runs one delivery on its own task (so every delivery in flight makes progress
    /// while the runner acknowledges, maintains or waits for the feed).
    fn spawn(&self, runs: &mut Runs, waiting: Waiting, fence: Option<i32>) {
        let consumer = self.clone();
        let marks = runs.marks.clone();
        let mut stopping = runs.stopping.subscribe();
        runs.tasks.spawn(async move {
            let Waiting {
                delivery,
                keys,
                retried,
                delay,
                ..
            } = waiting;
            if let Some(delay) = delay {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopping.wait_for(|stopping| *stopping) => {
                        return Run {
                            delivery,
                            keys,
                            outcome: Ok(Outcome::Later(delay)),
                        };
                    }
                }
                // As the runner did before handling one delivery at a time: work the dead
                // letters that may be what this one waits for.
                if let Err(err) = consumer.maintain_fenced(fence, marks.cap()).await {
                    return Run {
                        delivery,
                        keys,
                        outcome: Err(err),
                    };
                }
            }
            let outcome = consumer.process(&delivery, retried, fence, &marks).await;
            Run {
                delivery,
                keys,
                outcome,
            }
        });
    }

    /// Frees a finished delivery's lanes and its place below the position.
    fn finish(&self, runs: &mut Runs, delivery: &Delivery, keys: &[String]) {
        for key in keys {
            runs.busy.remove(key);
        }
        if delivery.in_log_order() {
            runs.marks.finished(delivery.envelope.position);
        }
    }
    /// Decides and carries out what to do with one delivery.
    async fn process(
        &self,
        delivery: &Delivery,
        retried: bool,
        fence: Option<i32>,
        marks: &Watermark,
    ) -> Result<Outcome, ConsumerError> {
        let envelope = &delivery.envelope;
        // How far settling (or setting aside) this event may move the stored position.
        let advance_to = || {
            if delivery.in_log_order() {
                marks.settling(envelope.position)
            } else {
                envelope.position
            }
        };
        let stream = StreamRef::new(&envelope.stream_type, &envelope.stream_id);
        if self.ordered {
            match self.place(envelope, &stream).await? {
                Place::Done => return Ok(Outcome::Done),
                Place::Early => {
                    if ledger::stream_blocked(&self.store, &self.name, &stream).await? {
                        ledger::set_aside(
                            &self.store,
                            &self.name,
                            envelope,
                            advance_to(),
                            DeadLetterStatus::Parked,
                            0,
                            None,
                        )
                        .await?;
                        tracing::info!(consumer = %self.name, position = envelope.position, stream = %stream, "event parked behind a dead letter");
                        return Ok(Outcome::Done);
                    }
                    // Its predecessor is in flight elsewhere (or waiting out a backoff):
                    // look again later, less often the longer it takes.
                    let doublings = delivery.attempt.saturating_sub(1).min(16) as u32;
                    let delay = self
                        .config
                        .not_next_delay
                        .saturating_mul(2u32.pow(doublings))
                        .min(self.config.backoff_max);
                    return Ok(Outcome::Later(delay));
                }
                Place::Next => {}
            }
        } else if ledger::in_inbox(&self.store, &self.name, envelope.event_id).await? {
            return Ok(Outcome::Done);
        }
        // A redelivery may be of an event dead-lettered (or parked) before its ack got
        // through; the dead letter owns it now.
        if delivery.attempt > 1
            && ledger::is_dead_letter(&self.store, &self.name, envelope.event_id).await?
        {
            return Ok(Outcome::Done);
        }
        let mut tx = Tx::new(self.store.db());
        match self.attempt(&mut tx, envelope, Some(delivery)).await {
            Ok(()) => {
                ledger::settle(
                    &self.store,
                    tx,
                    fence,
                    &self.name,
                    self.ordered,
                    envelope,
                    advance_to(),
                    retried || delivery.attempt > 1,
                )
                .await?;
                Ok(Outcome::Done)
            }
            Err(error) => {
                // Roll the effect back before writing anything else: on SQLite the
                // transaction holds the only writer connection.
                drop(tx);
                let failures = ledger::record_failure(
                    &self.store,
                    &self.name,
                    envelope.event_id,
                    &error.message,
                )
                .await?;
                if error.permanent || failures >= self.config.max_attempts {
                    ledger::set_aside(
                        &self.store,
                        &self.name,
                        envelope,
                        advance_to(),
                        DeadLetterStatus::Dead,
                        failures,
                        Some(&error.message),
                    )
                    .await?;
                    tracing::warn!(consumer = %self.name, position = envelope.position, event_id = %envelope.event_id, failures, error = %error, "event dead-lettered");
                    self.announce(envelope, failures, &error.message).await;
                    return Ok(Outcome::Done);
                }
                let delay = self.config.backoff(failures);
                tracing::info!(consumer = %self.name, position = envelope.position, failures, ?delay, error = %error, "handler failed; retrying later");
                Ok(Outcome::Later(delay))
            }
        }
    }

    /// Calls the handler if it wants the event, within the timeout, lending it `tx`.
    /// Meanwhile reports `delivery` in progress, so the feed does not hand it to another
    /// runner while a slow handler works. On timeout the handler's future is dropped;
    /// the caller then drops `tx`, which rolls back whatever it wrote there.
    async fn attempt(
        &self,
        tx: &mut Tx<'_>,
        envelope: &Envelope,
        delivery: Option<&Delivery>,
    ) -> Result<(), HandlerError> {
        if !self.handler.wants(envelope) {
            return Ok(());
        }
        let handling = tokio::time::timeout(
            self.config.handler_timeout,
            self.handler.handle(tx, envelope),
        );
        let mut handling = std::pin::pin!(handling);
        let keep_alive = delivery.and_then(|d| d.keep_alive().map(|every| (d, every)));
        let result = match keep_alive {
            None => handling.await,
            Some((delivery, every)) => {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tokio::select! {
                        result = handling.as_mut() => break result,
                        _ = ticks.tick() => {
                            if let Err(err) = delivery.in_progress().await {
                                tracing::warn!(consumer = %self.name, position = envelope.position, error = %err, "could not extend the ack wait");
                            }
                        }
                    }
                }
            }
        };
        match result {
            Ok(result) => result,
            Err(_) => Err(HandlerError::retry(format!(
                "handler timed out after {:?}",
                self.config.handler_timeout
            ))),
        }
    }

    /// Where `envelope` stands in its stream for this (ordered) consumer.
    async fn place(&self, envelope: &Envelope, stream: &StreamRef) -> Result<Place, ConsumerError> {
        let settled = match ledger::settled_version(&self.store, &self.name, stream).await? {
            Some(version) => version,
            // No row: nothing settled yet, or retention pruned the row below the
            // consumer's horizon. The next event is the stream's first after the start or
            // the horizon (version 1 always is).
            None if envelope.version == 1 => 0,
            None => {
                let floor = ledger::settled_floor(&self.store, &self.name).await?;
                match ledger::first_version_after(&self.store, stream, floor).await? {
                    Some(first) => first - 1,
                    None => envelope.version - 1,
                }
            }
        };
        Ok(if envelope.version <= settled {
            Place::Done
        } else if envelope.version == settled + 1 {
            Place::Next
        } else {
            Place::Early
        })
    }

    /// Works the dead letters this consumer can act on now: operators' retry requests,
    /// abandoned claims, and parked events whose stream is clear.
    pub async fn maintain(&self) -> Result<(), ConsumerError> {
        self.maintain_fenced(None, None).await
    }

    /// With a `cap` (a runner on the local feed), a dead letter's settle moves the stored
    /// position no further than the cap, below the runner's deliveries in flight.
    async fn maintain_fenced(
        &self,
        fence: Option<i32>,
        cap: Option<i64>,
    ) -> Result<(), ConsumerError> {
        loop {
            let now = self.store.clock().now();
            let stale =
                now - chrono::Duration::from_std(self.config.claim_timeout).unwrap_or_default();
            let Some((letter, previous)) = ledger::claim(&self.store, &self.name, stale).await?
            else {
                return Ok(());
            };
            self.work(letter, previous, fence, cap).await?;
        }
    }

    /// One claimed dead letter: handle it, then resolve it or put it back.
    async fn work(
        &self,
        letter: DeadLetter,
        previous: DeadLetterStatus,
        fence: Option<i32>,
        cap: Option<i64>,
    ) -> Result<(), ConsumerError> {
        let envelope = &letter.envelope;
        let settled = if self.ordered {
            match self.place(envelope, &letter.stream).await? {
                Place::Done => true,
                Place::Next => false,
                Place::Early => {
                    let later = self.store.clock().now()
                        + chrono::Duration::from_std(self.config.not_next_delay)
                            .unwrap_or_default();
                    return ledger::finish_claim(
                        &self.store,
                        letter.id,
                        DeadLetterStatus::Parked,
                        letter.attempts,
                        letter.error.as_deref(),
                        Some(later),
                    )
                    .await;
                }
            }
        } else {
            ledger::in_inbox(&self.store, &self.name, envelope.event_id).await?
        };
        let resolve = || {
            ledger::finish_claim(
                &self.store,
                letter.id,
                DeadLetterStatus::Resolved,
                letter.attempts,
                None,
                None,
            )
        };
        if settled {
            return resolve().await;
        }
        let mut tx = Tx::new(self.store.db());
        match self.attempt(&mut tx, envelope, None).await {
            Ok(()) => {
                ledger::settle(
                    &self.store,
                    tx,
                    fence,
                    &self.name,
                    self.ordered,
                    envelope,
                    cap.map_or(envelope.position, |cap| cap.min(envelope.position)),
                    true,
                )
                .await?;
                tracing::info!(consumer = %self.name, position = envelope.position, dead_letter = letter.id, "dead letter handled");
                resolve().await
            }
            Err(error) => {
                drop(tx);
                let attempts = letter.attempts + 1;
                // A released parked event gets the usual attempts with backoff before it
                // becomes a dead letter itself; an operator's retry gets one.
                let failures = if previous == DeadLetterStatus::Parked {
                    ledger::record_failure(
                        &self.store,
                        &self.name,
                        envelope.event_id,
                        &error.message,
                    )
                    .await?
                } else {
                    self.config.max_attempts
                };
                let (status, not_before) =
                    if error.permanent || failures >= self.config.max_attempts {
                        (DeadLetterStatus::Dead, None)
                    } else {
                        let later = self.store.clock().now()
                            + chrono::Duration::from_std(self.config.backoff(failures))
                                .unwrap_or_default();
                        (DeadLetterStatus::Parked, Some(later))
                    };
                tracing::warn!(consumer = %self.name, dead_letter = letter.id, attempts, error = %error, %status, "dead letter attempt failed");
                ledger::finish_claim(
                    &self.store,
                    letter.id,
                    status,
                    attempts,
                    Some(&error.message),
                    not_before,
                )
                .await?;
                if status == DeadLetterStatus::Dead && previous == DeadLetterStatus::Parked {
                    self.announce(envelope, attempts, &error.message).await;
                }
                Ok(())
            }
        }
    }
}
