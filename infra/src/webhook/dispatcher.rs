//! Sending deliveries: claim what is due, POST it, record the outcome.

use std::collections::{HashMap, HashSet};
use std::error::Error as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::admin::target;
use super::db::{in_tx, now, Db};
use super::network::{check_literal, redact_url, GuardedResolver};
use super::{
    sign, WebhookConfig, WebhookError, WebhookMessage, WebhookSecret, MAX_RESPONSE_EXCERPT,
    USER_AGENT,
};
use crate::feed::Envelope;
use crate::store::{Store, StoreError};

/// Longest error text kept per attempt.
const MAX_ERROR_LEN: usize = 1024;

/// Claims due deliveries and sends them. Cheap to clone; clones share one HTTP client.
///
/// Several dispatchers may run against one PostgreSQL database: a claim locks rows with
/// `FOR UPDATE SKIP LOCKED` and stamps them with a lease (`locked_until`, `lease_id`), so
/// each delivery is attempted by one dispatcher at a time, and only the lease holder
/// records the outcome. SQLite runs one process; its claim is a single `UPDATE`.
#[derive(Clone)]
pub struct WebhookDispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: WebhookConfig,
    client: reqwest::Client,
    lease: chrono::Duration,
    schedule: Vec<chrono::Duration>,
}

impl std::fmt::Debug for WebhookDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookDispatcher")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A delivery this dispatcher holds the lease of.
#[derive(Debug, sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    subscription_id: Uuid,
    event_id: Uuid,
    position: i64,
    /// Attempts made in this round before the one about to be made.
    attempts: i64,
    lease_id: Uuid,
}

/// What the receiver's answer means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// 2xx.
    Delivered,
    /// 408, 429, 5xx, other non-2xx, timeouts and connection errors.
    Retry,
    /// Any other 4xx, or a request that cannot be built: retrying cannot help.
    Final,
}

/// One attempt's result, as it goes into the log.
#[derive(Debug)]
struct Outcome {
    verdict: Verdict,
    status_code: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
    response_excerpt: Option<String>,
    /// A `Retry-After` (seconds) sent with a 429 or 503.
    retry_after: Option<Duration>,
}

impl Outcome {
    fn final_error(error: String) -> Self {
        Self {
            verdict: Verdict::Final,
            status_code: None,
            error: Some(error),
            duration_ms: 0,
            response_excerpt: None,
            retry_after: None,
        }
    }
}

const PG_CLAIM: &str = "\
WITH due AS (
    SELECT d.id
      FROM webhook_deliveries d
      JOIN webhook_subscriptions s ON s.id = d.subscription_id
     WHERE d.status = 'pending'
       AND s.status = 'active'
       AND d.next_attempt_at <= $1
       AND (d.locked_until IS NULL OR d.locked_until <= $1)
       AND NOT (d.id = ANY($4))
       AND NOT EXISTS (
           SELECT 1 FROM webhook_deliveries e
            WHERE e.subscription_id = d.subscription_id
              AND e.stream_type = d.stream_type
              AND e.stream_id = d.stream_id
              AND e.status = 'pending'
              AND (e.position, e.generation) < (d.position, d.generation))
     ORDER BY d.next_attempt_at, d.position
     LIMIT $3
     FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries w
   SET locked_until = $2, lease_id = $5
  FROM due
 WHERE w.id = due.id
RETURNING w.id, w.subscription_id, w.event_id, w.position, w.attempts, w.lease_id";

/// `$4` is a JSON array of the excluded ids in simple (lowercase hex) form.
const SQLITE_CLAIM: &str = "\
UPDATE webhook_deliveries
   SET locked_until = $2, lease_id = $5
 WHERE id IN (
    SELECT d.id
      FROM webhook_deliveries d
      JOIN webhook_subscriptions s ON s.id = d.subscription_id
     WHERE d.status = 'pending'
       AND s.status = 'active'
       AND d.next_attempt_at <= $1
       AND (d.locked_until IS NULL OR d.locked_until <= $1)
       AND lower(hex(d.id)) NOT IN (SELECT value FROM json_each($4))
       AND NOT EXISTS (
           SELECT 1 FROM webhook_deliveries e
            WHERE e.subscription_id = d.subscription_id
              AND e.stream_type = d.stream_type
              AND e.stream_id = d.stream_id
              AND e.status = 'pending'
              AND (e.position, e.generation) < (d.position, d.generation))
     ORDER BY d.next_attempt_at, d.position
     LIMIT $3)
RETURNING id, subscription_id, event_id, position, attempts, lease_id";

impl WebhookDispatcher {
    /// A dispatcher over `store`'s deliveries.
    pub fn new(store: Store, config: WebhookConfig) -> Result<Self, WebhookError> {
        config.validate()?;
        let to_chrono = |d: Duration| {
            chrono::Duration::from_std(d)
                .map_err(|_| WebhookError::Config(format!("duration {d:?} is out of range")))
        };
        let lease = to_chrono(config.lease)?;
        let schedule = config
            .retry_schedule
            .iter()
            .copied()
            .map(to_chrono)
            .collect::<Result<Vec<_>, _>>()?;
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            // A redirect is an answer like any other non-2xx: it is not followed, so a
            // receiver cannot point signed deliveries elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(
                config.allow_networks.clone(),
            )))
            .build()
            .map_err(WebhookError::Client)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                config,
                client,
                lease,
                schedule,
            }),
        })
    }

    /// Sends deliveries as they become due until `shutdown` completes, then waits for the
    /// requests in flight (each bounded by the request timeout) and returns.
    ///
    /// Database errors are logged and retried at the next poll; they do not end the loop.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), WebhookError> {
        let config = &self.inner.config;
        tracing::info!(
            concurrency = config.concurrency,
            max_attempts = config.max_attempts(),
            "webhook dispatcher started"
        );
        tokio::pin!(shutdown);
        let mut tasks = JoinSet::new();
        // Deliveries in flight here, by task: never claimed again while in flight, even if
        // their lease runs out.
        let mut in_flight: HashMap<tokio::task::Id, Uuid> = HashMap::new();
        // Prune at start, then every `prune_interval`.
        let mut next_prune = Instant::now();
        loop {
            if Instant::now() >= next_prune {
                next_prune = Instant::now() + config.prune_interval;
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "pruning webhook deliveries failed");
                }
            }
            let free = config.concurrency.saturating_sub(tasks.len());
            let mut saturated = free == 0;
            if free > 0 {
                let exclude: HashSet<Uuid> = in_flight.values().copied().collect();
                match self.claim(free, &exclude).await {
                    Ok(batch) => {
                        saturated = batch.len() == free;
                        for claimed in batch {
                            let delivery = claimed.id;
                            let me = self.clone();
                            let handle = tasks.spawn(async move {
                                if let Err(e) = me.attempt(claimed).await {
                                    tracing::warn!(%delivery, error = %e, "webhook attempt not recorded; retried when its claim expires");
                                }
                            });
                            in_flight.insert(handle.id(), delivery);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed"),
                }
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(error = %e, "webhook attempt task failed");
                            e.id()
                        }
                    };
                    in_flight.remove(&id);
                }
                () = tokio::time::sleep(config.poll_interval), if !saturated => {}
            }
        }
        tracing::info!(in_flight = tasks.len(), "webhook dispatcher stopping");
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// Attempts every delivery that is due now, round after round (a delivery freed by an
    /// earlier one of its stream goes in the next round), until none is due. Returns the
    /// number of attempts made. For tests, tools and one-shot jobs; services use
    /// [`run`](Self::run).
    pub async fn deliver_due(&self) -> Result<usize, WebhookError> {
        let mut attempts = 0;
        loop {
            let batch = self
                .claim(self.inner.config.concurrency, &HashSet::new())
                .await?;
            if batch.is_empty() {
                return Ok(attempts);
            }
            attempts += batch.len();
            for result in join_all(batch.into_iter().map(|c| self.attempt(c))).await {
                result?;
            }
        }
    }

    /// Deletes finished deliveries and replays older than [`WebhookConfig::retention`]
    /// (by the store's clock); returns how many. Runs on its own schedule inside
    /// [`run`](Self::run); public for tools and tests.
    pub async fn prune(&self) -> Result<u64, WebhookError> {
        let Some(retention) = self.inner.config.retention else {
            return Ok(0);
        };
        let retention = chrono::Duration::from_std(retention)
            .map_err(|_| WebhookError::Config("retention is out of range".into()))?;
        let before = now(&self.inner.store) - retention;
        let deliveries = super::admin::prune(&self.inner.store, before).await?;
        Ok(deliveries + super::replay::prune(&self.inner.store, before).await?)
    }

    /// Leases up to `limit` due deliveries that are next in their stream.
    async fn claim(
        &self,
        limit: usize,
        exclude: &HashSet<Uuid>,
    ) -> Result<Vec<Claimed>, WebhookError> {
        let now = now(&self.inner.store);
        let until = now + self.inner.lease;
        let lease_id = Uuid::now_v7();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let claimed = match self.inner.store.db() {
            Db::Postgres(pool) => {
                let exclude: Vec<Uuid> = exclude.iter().copied().collect();
                sqlx::query_as(PG_CLAIM)
                    .bind(now)
                    .bind(until)
                    .bind(limit)
                    .bind(exclude)
                    .bind(lease_id)
                    .fetch_all(pool)
                    .await?
            }
            Db::Sqlite(pool) => {
                let exclude: Vec<String> =
                    exclude.iter().map(|id| id.simple().to_string()).collect();
                let exclude = serde_json::to_string(&exclude)
                    .map_err(|e| WebhookError::Corrupt(e.to_string()))?;
                sqlx::query_as(SQLITE_CLAIM)
                    .bind(now)
                    .bind(until)
                    .bind(limit)
                    .bind(exclude)
                    .bind(lease_id)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(claimed)
    }

    /// Makes one attempt of a claimed delivery and records it.
    async fn attempt(&self, claimed: Claimed) -> Result<(), WebhookError> {
        let Some((url, secret)) = target(
            self.inner.store.db(),
            &self.inner.config.secret_keys,
            claimed.subscription_id,
        )
        .await?
        else {
            // The subscription was deleted, and its deliveries with it.
            return Ok(());
        };
        let outcome = match self.message(&claimed).await? {
            Ok(message) => self.send(&url, &secret, claimed.event_id, &message).await,
            Err(problem) => Outcome::final_error(problem),
        };
        self.record(&claimed, outcome).await
    }

    /// The message of a delivery's event, or why there is none.
    async fn message(
        &self,
        claimed: &Claimed,
    ) -> Result<Result<WebhookMessage, String>, WebhookError> {
        let events = self
            .inner
            .store
            .read_all(claimed.position.saturating_sub(1), 1)
            .await?;
        let Some(event) = events
            .into_iter()
            .next()
            .filter(|e| e.position == claimed.position && e.event_id == claimed.event_id)
        else {
            return Ok(Err(format!(
                "event {} is not at position {} of the log",
                claimed.event_id, claimed.position
            )));
        };
        match Envelope::from_recorded(event) {
            Ok(envelope) => Ok(Ok(WebhookMessage::from_envelope(envelope))),
            Err(StoreError::Corrupt(e)) => Ok(Err(format!("the event cannot be decoded: {e}"))),
            Err(e) => Err(e.into()),
        }
    }

    /// POSTs the signed message once.
    async fn send(
        &self,
        url: &str,
        secret: &WebhookSecret,
        event_id: Uuid,
        message: &WebhookMessage,
    ) -> Outcome {
        let body = match serde_json::to_vec(message) {
            Ok(body) => body,
            Err(e) => return Outcome::final_error(format!("the message cannot be encoded: {e}")),
        };
        // The client connects to an IP literal without asking the resolver: check it here.
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string));
        if let Some(host) = host {
            if let Err(refused) = check_literal(&self.inner.config.allow_networks, &host) {
                return Outcome::final_error(refused.to_string());
            }
        }
        let id = event_id.to_string();
        let timestamp = self.inner.store.clock().now().timestamp();
        let signature = sign(secret, &id, timestamp, &body);
        let started = Instant::now();
        let sent = self
            .inner
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                return Outcome {
                    verdict: if e.is_builder() {
                        Verdict::Final
                    } else {
                        Verdict::Retry
                    },
                    status_code: None,
                    error: Some(self.describe(&e, url)),
                    duration_ms: elapsed_ms(started),
                    response_excerpt: None,
                    retry_after: None,
                }
            }
        };
        let status = response.status().as_u16();
        let retry_after = matches!(status, 429 | 503)
            .then(|| response.headers().get(RETRY_AFTER))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let excerpt = read_excerpt(&mut response).await;
        let verdict = verdict(status);
        Outcome {
            verdict,
            status_code: Some(status),
            error: (verdict != Verdict::Delivered).then(|| format!("HTTP {status}")),
            duration_ms: elapsed_ms(started),
            response_excerpt: Some(excerpt).filter(|e| !e.is_empty()),
            retry_after,
        }
    }

    /// What went wrong, with the URL's credentials (if any) redacted: the text is logged
    /// and shown to admins.
    fn describe(&self, err: &reqwest::Error, url: &str) -> String {
        let mut text = if err.is_timeout() {
            format!(
                "timed out after {} ms",
                self.inner.config.request_timeout.as_millis()
            )
        } else if err.is_connect() {
            "connection failed".to_string()
        } else {
            err.to_string()
        };
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        let redacted = redact_url(url);
        if redacted != url {
            text = text.replace(url, &redacted);
            // reqwest prints the parsed (normalised) URL, which may differ in form.
            if let Ok(parsed) = reqwest::Url::parse(url) {
                text = text.replace(parsed.as_str(), &redacted);
            }
        }
        truncate(sanitize(text), MAX_ERROR_LEN)
    }

    /// Stores the attempt and moves the delivery (and, on a final outcome, the
    /// subscription's failure count) on, if this dispatcher still holds the lease.
    ///
    /// An attempt the database refuses to store as it is (a row it rejects) is stored
    /// again as a failed attempt without the receiver's answer: it still counts against
    /// the delivery's attempts, so one bad answer cannot make the same request go out
    /// again and again uncounted. Only when that fails too (the database is unreachable)
    /// is the error returned, and the delivery is retried when its claim expires.
    async fn record(&self, claimed: &Claimed, mut outcome: Outcome) -> Result<(), WebhookError> {
        outcome.error = outcome.error.map(|e| truncate(sanitize(e), MAX_ERROR_LEN));
        let err = match self.record_outcome(claimed, &outcome).await {
            Err(WebhookError::Database(err)) => err,
            other => return other,
        };
        tracing::error!(
            delivery = %claimed.id,
            error = %err,
            "webhook attempt could not be recorded; recording it as failed"
        );
        let fallback = Outcome {
            verdict: match outcome.verdict {
                Verdict::Final => Verdict::Final,
                Verdict::Delivered | Verdict::Retry => Verdict::Retry,
            },
            status_code: outcome.status_code,
            error: Some(truncate(
                sanitize(format!("the attempt could not be recorded: {err}")),
                MAX_ERROR_LEN,
            )),
            duration_ms: outcome.duration_ms,
            response_excerpt: None,
            retry_after: None,
        };
        self.record_outcome(claimed, &fallback).await
    }

    async fn record_outcome(
        &self,
        claimed: &Claimed,
        outcome: &Outcome,
    ) -> Result<(), WebhookError> {
        let inner = &self.inner;
        let now = now(&inner.store);
        let attempt_no = claimed.attempts + 1;
        let (status, next_attempt_at) = match outcome.verdict {
            Verdict::Delivered => ("delivered", now),
            Verdict::Retry if attempt_no < i64::from(inner.config.max_attempts()) => (
                "pending",
                now + self.retry_delay(attempt_no, outcome.retry_after),
            ),
            Verdict::Retry | Verdict::Final => ("failed", now),
        };
        let delivered_at = (status == "delivered").then_some(now);
        let status_code = outcome.status_code.map(i64::from);
        let disable_after = i64::from(inner.config.disable_after);
        let reason = format!(
            "disabled after {} deliveries in a row failed",
            inner.config.disable_after
        );
        let disabled: Option<(String, i64)> = in_tx!(inner.store.db(), tx => {
            let applied = sqlx::query(
                "UPDATE webhook_deliveries SET \
                     status = $3, attempts = attempts + 1, next_attempt_at = $4, \
                     last_status_code = $5, last_error = $6, delivered_at = $7, \
                     updated_at = $8, locked_until = NULL, lease_id = NULL \
                 WHERE id = $1 AND lease_id = $2",
            )
            .bind(claimed.id)
            .bind(claimed.lease_id)
            .bind(status)
            .bind(next_attempt_at)
            .bind(status_code)
            .bind(outcome.error.as_deref())
            .bind(delivered_at)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            // The attempt happened whoever holds the lease now; it is logged unless the
            // delivery is gone.
            sqlx::query(
                "INSERT INTO webhook_attempts (id, delivery_id, attempt_no, attempted_at, \
                     status_code, error, duration_ms, response_excerpt) \
                 SELECT $1, d.id, \
                        (SELECT COALESCE(MAX(a.attempt_no), 0) + 1 FROM webhook_attempts a \
                          WHERE a.delivery_id = d.id), \
                        $3, $4, $5, $6, $7 \
                   FROM webhook_deliveries d WHERE d.id = $2",
            )
            .bind(Uuid::now_v7())
            .bind(claimed.id)
            .bind(now)
            .bind(status_code)
            .bind(outcome.error.as_deref())
            .bind(outcome.duration_ms)
            .bind(outcome.response_excerpt.as_deref())
            .execute(&mut *tx)
            .await?;
            match (applied, status) {
                (true, "delivered") => {
                    sqlx::query(
                        "UPDATE webhook_subscriptions SET consecutive_failures = 0, updated_at = $2 \
                         WHERE id = $1 AND consecutive_failures <> 0",
                    )
                    .bind(claimed.subscription_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    None
                }
                (true, "failed") => {
                    // SET expressions see the old row: `status` is the status before.
                    sqlx::query_as(
                        "UPDATE webhook_subscriptions SET \
                             consecutive_failures = consecutive_failures + 1, \
                             status = CASE WHEN status = 'active' AND $2 > 0 \
                                            AND consecutive_failures + 1 >= $2 \
                                           THEN 'disabled' ELSE status END, \
                             disabled_reason = CASE WHEN status = 'active' AND $2 > 0 \
                                                     AND consecutive_failures + 1 >= $2 \
                                                    THEN $3 ELSE disabled_reason END, \
                             disabled_at = CASE WHEN status = 'active' AND $2 > 0 \
                                                 AND consecutive_failures + 1 >= $2 \
                                                THEN $4 ELSE disabled_at END, \
                             updated_at = $4 \
                         WHERE id = $1 \
                         RETURNING status, consecutive_failures",
                    )
                    .bind(claimed.subscription_id)
                    .bind(disable_after)
                    .bind(&reason)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                _ => None,
            }
        });
        match (status, outcome.verdict) {
            ("delivered", _) => tracing::debug!(
                delivery = %claimed.id,
                attempt = attempt_no,
                "webhook delivered"
            ),
            ("pending", _) => tracing::info!(
                delivery = %claimed.id,
                attempt = attempt_no,
                error = outcome.error.as_deref().unwrap_or_default(),
                next_attempt_at = %next_attempt_at,
                "webhook attempt failed; retrying"
            ),
            _ => tracing::warn!(
                delivery = %claimed.id,
                attempt = attempt_no,
                error = outcome.error.as_deref().unwrap_or_default(),
                "webhook delivery failed for good"
            ),
        }
        if let Some((status, failures)) = disabled {
            if status == "disabled" && failures == disable_after {
                tracing::warn!(
                    subscription = %claimed.subscription_id,
                    failures,
                    "webhook subscription disabled"
                );
            }
        }
        Ok(())
    }

    /// The wait after attempt `attempt_no` (1-based) of a round failed: the schedule's
    /// entry, or longer when the receiver asked for it with `Retry-After` (capped at the
    /// schedule's longest wait).
    fn retry_delay(&self, attempt_no: i64, retry_after: Option<Duration>) -> chrono::Duration {
        let schedule = &self.inner.schedule;
        let index = usize::try_from(attempt_no - 1).unwrap_or(0);
        let planned = schedule
            .get(index)
            .or(schedule.last())
            .copied()
            .unwrap_or_else(chrono::Duration::zero);
        let cap = schedule
            .iter()
            .max()
            .copied()
            .unwrap_or_else(chrono::Duration::zero);
        let asked = retry_after
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map_or(planned, |d| d.min(cap));
        planned.max(asked)
    }
}

/// 2xx delivers; 408 and 429 are worth retrying; any other 4xx is final; everything
/// else (5xx, and 1xx/3xx, which a webhook endpoint should not answer) is retried.
fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 => Verdict::Retry,
        400..=499 => Verdict::Final,
        _ => Verdict::Retry,
    }
}

/// The start of the response body: at most [`MAX_RESPONSE_EXCERPT`] bytes are read.
async fn read_excerpt(response: &mut reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_RESPONSE_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(MAX_RESPONSE_EXCERPT - bytes.len());
                bytes.extend_from_slice(&chunk[..take]);
            }
            // The end, or a body that broke off or timed out: keep what came.
            Ok(None) | Err(_) => break,
        }
    }
    truncate(
        sanitize(String::from_utf8_lossy(&bytes).into_owned()),
        MAX_RESPONSE_EXCERPT,
    )
}

/// `text` without NUL characters, which PostgreSQL cannot store in `text` columns: each
/// becomes U+FFFD, as bytes that are not UTF-8 do. Applied before truncation, since the
/// replacement is longer than the byte it replaces.
fn sanitize(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_decide_the_verdict() {
        for ok in [200, 201, 204, 299] {
            assert_eq!(verdict(ok), Verdict::Delivered);
        }
        for retry in [408, 429, 500, 502, 503, 504, 301, 302, 100] {
            assert_eq!(verdict(retry), Verdict::Retry, "{retry}");
        }
        for final_ in [400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(verdict(final_), Verdict::Final, "{final_}");
        }
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("abc".into(), 5), "abc");
        assert_eq!(truncate("abcdef".into(), 3), "abc");
        // 'é' is two bytes: cutting inside it drops it.
        assert_eq!(truncate("aé".into(), 2), "a");
    }
}
