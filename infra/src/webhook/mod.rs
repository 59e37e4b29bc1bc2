//! Outbound HTTP webhooks for integrations, signed as the Standard Webhooks
//! specification describes.
//!
//! Three parts, all over the event store's database:
//!
//! * **Subscriptions** ([`admin`]): a URL, an [`EventFilter`] and a `whsec_…` secret.
//! * **Fan-out** ([`WebhookFanout`]): a consumer [`Handler`](crate::consumer::Handler)
//!   named `webhooks` that turns every event into one pending delivery per active,
//!   matching subscription. Idempotent per (subscription, event).
//! * **Dispatch** ([`WebhookDispatcher`]): claims due deliveries, POSTs them with the
//!   `webhook-id` (the event id, stable across retries), `webhook-timestamp` and
//!   `webhook-signature` headers, retries with backoff, logs every attempt and disables a
//!   subscription after too many deliveries in a row failed.
//!
//! # Guarantees
//!
//! * **At least once.** A delivery is retried until the receiver answers 2xx, the attempts
//!   run out, or the receiver answers a 4xx other than 408 and 429. A dispatcher that dies
//!   mid-request leaves a claim that expires after [`WebhookConfig::lease`], and the
//!   request is sent again. Receivers deduplicate by `webhook-id`.
//! * **Per-stream order.** A delivery is sent only when no earlier delivery (lower
//!   position, then lower generation) of the same subscription and stream is still
//!   pending. A delivery that failed for good does not block later ones: ordering holds
//!   among the events that are delivered, and a failed one can be [redelivered](admin::redeliver)
//!   later, out of order.
//! * **Time** comes from the store's [`Clock`](crate::clock::Clock): retry times, claim
//!   leases, the signed timestamp and every stored instant.
//!
//! See `docs/webhooks.md` for the receiver's view.

pub mod admin;
mod db;
mod dispatcher;
mod fanout;
pub mod filter;
mod message;
pub mod network;
pub mod replay;
pub mod sealing;
pub mod signature;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::StoreError;
pub use dispatcher::WebhookDispatcher;
pub use fanout::WebhookFanout;
pub use filter::EventFilter;
pub use message::{WebhookEvent, WebhookMessage};
pub use network::AllowList;
pub use sealing::{SealError, SecretKeys};
pub use signature::{sign, verify, verify_timestamp, SignatureError, WebhookSecret};

/// The consumer name of the fan-out handler.
pub const FANOUT_NAME: &str = "webhooks";
/// The `user-agent` of every delivery.
pub const USER_AGENT: &str = concat!("commerce-webhooks/", env!("CARGO_PKG_VERSION"));
/// Longest subscription URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Longest subscription description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Most bytes of a response body kept in the delivery log.
pub const MAX_RESPONSE_EXCERPT: usize = 1024;
/// Most attempts one delivery may accumulate over all its rounds: a manual redelivery
/// beyond it is refused, which bounds both the requests one event can cause and its
/// attempt log.
pub const MAX_ATTEMPTS_PER_DELIVERY: i64 = 100;

/// Tuning of the [`WebhookDispatcher`].
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Wait before each retry: entry `n` is the wait after attempt `n + 1` failed. A
    /// delivery gets `retry_schedule.len() + 1` attempts in all.
    pub retry_schedule: Vec<Duration>,
    /// Whole-request limit: connect, send, and read the (truncated) response.
    pub request_timeout: Duration,
    /// Requests one dispatcher has in flight at most.
    pub concurrency: usize,
    /// Disable a subscription after this many deliveries in a row failed for good (every
    /// attempt used, or a final 4xx). Any successful attempt resets the count. 0 = never.
    pub disable_after: u32,
    /// How often an idle dispatcher looks for due deliveries.
    pub poll_interval: Duration,
    /// How long a claim keeps other dispatchers off a delivery. Must exceed
    /// `request_timeout`, with room for recording the outcome.
    pub lease: Duration,
    /// Non-public networks deliveries may reach anyway (see [`network`]). Empty by
    /// default: loopback, private, link-local, metadata and similar addresses are refused
    /// when the dispatcher connects, whatever the subscription URL says.
    pub allow_networks: AllowList,
    /// How long finished (delivered or failed) deliveries and their attempt logs are kept,
    /// counted from their last change; `None` keeps them for ever. Pending deliveries are
    /// never pruned.
    pub retention: Option<Duration>,
    /// How often a running dispatcher prunes what [`retention`](Self::retention) lets go.
    pub prune_interval: Duration,
    /// Keys that open the stored signing secrets (see [`sealing`]); none = stored in clear.
    pub secret_keys: SecretKeys,
}

impl Default for WebhookConfig {
    /// 8 attempts over about 28 hours: at once, then after 5 s, 5 min, 30 min, 2 h, 5 h,
    /// 10 h and 10 h; 10 s per request; 16 in flight; disable after 20 failed deliveries;
    /// finished deliveries kept 30 days, pruned hourly; only public addresses reached.
    fn default() -> Self {
        const MINUTE: u64 = 60;
        const HOUR: u64 = 60 * MINUTE;
        Self {
            retry_schedule: [
                5,
                5 * MINUTE,
                30 * MINUTE,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                10 * HOUR,
            ]
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
            request_timeout: Duration::from_secs(10),
            concurrency: 16,
            disable_after: 20,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            allow_networks: AllowList::default(),
            retention: Some(Duration::from_secs(30 * 24 * HOUR)),
            prune_interval: Duration::from_secs(HOUR),
            secret_keys: SecretKeys::default(),
        }
    }
}

impl WebhookConfig {
    /// Attempts per delivery round: the first and one per retry.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.retry_schedule.len())
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1)
    }

    /// Refuses settings the dispatcher cannot work with.
    pub fn validate(&self) -> Result<(), WebhookError> {
        if self.concurrency == 0 {
            return Err(WebhookError::Config(
                "concurrency must be at least 1".into(),
            ));
        }
        if self.request_timeout.is_zero()
            || self.poll_interval.is_zero()
            || self.prune_interval.is_zero()
        {
            return Err(WebhookError::Config(
                "request_timeout, poll_interval and prune_interval must be positive".into(),
            ));
        }
        if self.lease <= self.request_timeout {
            return Err(WebhookError::Config(
                "lease must be longer than request_timeout".into(),
            ));
        }
        if self
            .retention
            .is_some_and(|r| chrono::Duration::from_std(r).is_err())
        {
            return Err(WebhookError::Config("retention is out of range".into()));
        }
        if self.retry_schedule.len() > 100 {
            return Err(WebhookError::Config(
                "retry_schedule has more than 100 entries".into(),
            ));
        }
        Ok(())
    }
}

/// Errors of the webhook admin operations and the dispatcher.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The request is malformed (bad URL, filter, secret, position); nothing was changed.
    #[error("{0}")]
    Invalid(String),
    #[error("webhook subscription {0} not found")]
    SubscriptionNotFound(Uuid),
    #[error("webhook delivery {0} not found")]
    DeliveryNotFound(Uuid),
    #[error("webhook replay {0} not found")]
    ReplayNotFound(Uuid),
    #[error("invalid webhook configuration: {0}")]
    Config(String),
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row that this code cannot read (e.g. an unknown status).
    #[error("stored webhook data is malformed: {0}")]
    Corrupt(String),
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Whether a subscription receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// New events are fanned out to it and its deliveries are sent.
    Active,
    /// No new deliveries are created; pending ones wait until it is enabled again.
    Disabled,
}

impl SubscriptionStatus {
    fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Disabled => "disabled",
        }
    }

    fn parse(text: &str) -> Result<Self, WebhookError> {
        match text {
            "active" => Ok(SubscriptionStatus::Active),
            "disabled" => Ok(SubscriptionStatus::Disabled),
            other => Err(WebhookError::Corrupt(format!(
                "unknown subscription status `{other}`"
            ))),
        }
    }
}

/// A webhook subscription, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    pub id: Uuid,
    /// Where deliveries are POSTed (`http` or `https`).
    pub url: String,
    pub description: String,
    /// Which events it receives.
    pub event_types: EventFilter,
    pub status: SubscriptionStatus,
    /// Deliveries that failed for good in a row (see [`WebhookConfig::disable_after`]).
    pub consecutive_failures: i64,
    /// Why it is disabled, while it is.
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// The log's head position when it was created: fan-out sends only later events.
    pub start_position: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A subscription just created, with its secret: the only time the secret is handed out.
#[derive(Debug, Clone)]
pub struct CreatedSubscription {
    pub subscription: Subscription,
    pub secret: WebhookSecret,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry (or for its subscription to be enabled).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed, or the receiver answered a final 4xx.
    Failed,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, WebhookError> {
        match text {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(WebhookError::Corrupt(format!(
                "unknown delivery status `{other}`"
            ))),
        }
    }
}

/// One event to send to one subscription.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: Uuid,
    pub subscription_id: Uuid,
    /// 0 from fan-out; each replay of the subscription enqueues a new generation.
    pub generation: i64,
    /// The event, and the `webhook-id` of every attempt.
    pub event_id: Uuid,
    pub position: i64,
    pub stream_type: String,
    pub stream_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// Attempts in the current round (a manual redelivery starts a new round).
    pub attempts: i64,
    /// When a pending delivery is due next.
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One HTTP attempt, as logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// 1, 2, … over every round of the delivery.
    pub attempt_no: i64,
    pub attempted_at: DateTime<Utc>,
    /// The response status; `None` when no response came.
    pub status_code: Option<u16>,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The start of the response body (at most [`MAX_RESPONSE_EXCERPT`] bytes).
    pub response_excerpt: Option<String>,
}

/// A delivery with its attempt log, oldest attempt first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempt_log: Vec<Attempt>,
}
