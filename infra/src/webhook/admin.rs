//! Managing subscriptions and their deliveries: the operations behind the admin API.
//!
//! Each function opens nothing of its own: it runs a few statements on the store's
//! database and returns. Inputs are validated first ([`WebhookError::Invalid`]); unknown
//! ids give [`WebhookError::SubscriptionNotFound`] / [`WebhookError::DeliveryNotFound`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::db::{
    filter_text, now, on_db, AttemptRow, Db, DeliveryRow, SubscriptionRow, ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS, SUBSCRIPTION_COLUMNS,
};
use super::network::redact_url;
use super::sealing::SecretKeys;
use super::{
    Attempt, CreatedSubscription, Delivery, DeliveryRecord, DeliveryStatus, EventFilter,
    Subscription, SubscriptionStatus, WebhookError, WebhookSecret, MAX_ATTEMPTS_PER_DELIVERY,
    MAX_DESCRIPTION_LEN, MAX_URL_LEN,
};
use crate::store::Store;

/// What [`create`] needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// `http://` or `https://`, at most [`MAX_URL_LEN`] bytes.
    pub url: String,
    /// Filter patterns (see [`EventFilter`]); empty = every event.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// A `whsec_…` secret to use; a new one is generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// What [`update`] changes; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionUpdate {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    /// A new `whsec_…` secret; takes effect with the next attempt.
    pub secret: Option<String>,
    /// `false` disables the subscription; `true` enables it again and resets its count of
    /// consecutive failures (pending deliveries resume).
    pub enabled: Option<bool>,
}

/// Which deliveries [`deliveries`] lists: newest (highest position) first, `limit` at a
/// time, continuing below a cursor.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    /// 1 to [`MAX_PAGE`]; [`DEFAULT_PAGE`] when absent.
    pub limit: Option<u32>,
    /// Continue with deliveries before this cursor (from [`DeliveryPage::next`]).
    pub before_position: Option<i64>,
    pub before_generation: Option<i64>,
}

/// Deliveries listed by default.
pub const DEFAULT_PAGE: u32 = 50;
/// Most deliveries listed at once.
pub const MAX_PAGE: u32 = 200;

/// A page of deliveries with their attempt logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryRecord>,
    /// The cursor for the next page, when this one was full.
    pub next: Option<DeliveryCursor>,
}

/// Where the next page of deliveries starts (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeliveryCursor {
    pub before_position: i64,
    pub before_generation: i64,
}

/// What [`replay`] enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReplayOutcome {
    /// The generation of the new deliveries.
    pub generation: i64,
    /// Events after this position were considered…
    pub from_position: i64,
    /// …up to and including this one (the log's head when the replay started).
    pub to_position: i64,
    /// Deliveries enqueued: the matching events in that range.
    pub enqueued: u64,
}

/// Creates an active subscription. It receives every event the fan-out handles after
/// the subscription row committed (its `start_position` is the log's head read after that
/// commit); use [`replay`] for earlier ones.
///
/// The order matters: an event that commits and is fanned out between reading the head
/// and inserting the row would be above the start position yet settled without a
/// delivery. So the row goes in first, with the head read before as a provisional start
/// (the fan-out may enqueue events above it meanwhile, which is harmless), and the start
/// moves up to the head read after the commit. Any event the fan-out handled before the
/// row was visible was readable then, so it lies at or below that later head.
///
/// The secret is stored sealed with `keys` (in clear when none are configured).
pub async fn create(
    store: &Store,
    keys: &SecretKeys,
    new: NewSubscription,
) -> Result<CreatedSubscription, WebhookError> {
    let url = validate_url(&new.url)?;
    let event_types = validate_filter(new.event_types)?;
    let description = validate_description(new.description.unwrap_or_default())?;
    let secret = match new.secret {
        Some(text) => parse_secret(&text)?,
        None => WebhookSecret::generate(),
    };
    let db = store.db();
    let provisional = store.head_position().await?;
    let now = now(store);
    let mut subscription = Subscription {
        id: Uuid::now_v7(),
        url,
        description,
        event_types,
        status: SubscriptionStatus::Active,
        consecutive_failures: 0,
        disabled_reason: None,
        disabled_at: None,
        start_position: provisional,
        created_at: now,
        updated_at: now,
    };
    let filter = filter_text(&subscription.event_types)?;
    on_db!(db, pool => {
        sqlx::query(
            "INSERT INTO webhook_subscriptions (id, url, description, event_types, secret, \
             status, start_position, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $7)",
        )
        .bind(subscription.id)
        .bind(&subscription.url)
        .bind(&subscription.description)
        .bind(&filter)
        .bind(keys.seal(&secret))
        .bind(provisional)
        .bind(now)
        .execute(pool)
        .await?;
    });
    let start_position = store.head_position().await?;
    if start_position != provisional {
        on_db!(db, pool => {
            sqlx::query(
                "UPDATE webhook_subscriptions SET start_position = $2 \
                 WHERE id = $1 AND start_position < $2",
            )
            .bind(subscription.id)
            .bind(start_position)
            .execute(pool)
            .await?;
        });
        subscription.start_position = start_position;
    }
    tracing::info!(
        subscription = %subscription.id,
        url = %redact_url(&subscription.url),
        "webhook subscription created"
    );
    Ok(CreatedSubscription {
        subscription,
        secret,
    })
}

/// Deletes finished (delivered or failed) deliveries, with their attempt logs, that
/// last changed before `before`; returns how many. Pending deliveries stay whatever their
/// age. Deletes in batches, so a large backlog does not hold one long transaction.
///
/// Keep at least a few days: fan-out recognizes an event it already handled by its
/// delivery row, so an event re-handled after its row was pruned (the consumer runtime
/// redelivers only around a crash) would be sent again.
pub async fn prune(store: &Store, before: DateTime<Utc>) -> Result<u64, WebhookError> {
    const BATCH: i64 = 1000;
    let db = store.db();
    let mut total = 0;
    loop {
        let deleted = on_db!(db, pool => {
            sqlx::query(
                "DELETE FROM webhook_deliveries WHERE id IN ( \
                     SELECT id FROM webhook_deliveries \
                      WHERE status IN ('delivered', 'failed') AND updated_at < $1 \
                      LIMIT $2)",
            )
            .bind(before)
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected()
        });
        total += deleted;
        if deleted < BATCH as u64 {
            break;
        }
    }
    if total > 0 {
        tracing::info!(deleted = total, before = %before, "webhook deliveries pruned");
    }
    Ok(total)
}

/// Every subscription, oldest first.
pub async fn list(store: &Store) -> Result<Vec<Subscription>, WebhookError> {
    let db = store.db();
    let sql =
        format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions ORDER BY created_at, id");
    let rows: Vec<SubscriptionRow> = on_db!(db, pool => {
        sqlx::query_as(&sql).fetch_all(pool).await?
    });
    rows.into_iter().map(Subscription::try_from).collect()
}

/// One subscription.
pub async fn get(store: &Store, id: Uuid) -> Result<Subscription, WebhookError> {
    let db = store.db();
    let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1");
    let row: Option<SubscriptionRow> = on_db!(db, pool => {
        sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
    });
    row.ok_or(WebhookError::SubscriptionNotFound(id))?
        .try_into()
}

/// Changes a subscription; see [`SubscriptionUpdate`].
pub async fn update(
    store: &Store,
    keys: &SecretKeys,
    id: Uuid,
    change: SubscriptionUpdate,
) -> Result<Subscription, WebhookError> {
    let url = change.url.as_deref().map(validate_url).transpose()?;
    let filter = change
        .event_types
        .map(validate_filter)
        .transpose()?
        .map(|f| filter_text(&f))
        .transpose()?;
    let description = change.description.map(validate_description).transpose()?;
    let secret = change
        .secret
        .as_deref()
        .map(parse_secret)
        .transpose()?
        .map(|secret| keys.seal(&secret));
    let status = change.enabled.map(|enabled| {
        if enabled {
            SubscriptionStatus::Active.as_str()
        } else {
            SubscriptionStatus::Disabled.as_str()
        }
    });
    let db = store.db();
    let now = now(store);
    // SET expressions see the row as it was, so `status` below is the old status.
    let sql = format!(
        "UPDATE webhook_subscriptions SET \
             url = COALESCE($2, url), \
             event_types = COALESCE($3, event_types), \
             description = COALESCE($4, description), \
             secret = COALESCE($5, secret), \
             status = COALESCE($6, status), \
             consecutive_failures = CASE WHEN $6 = 'active' THEN 0 \
                                         ELSE consecutive_failures END, \
             disabled_reason = CASE WHEN $6 = 'active' THEN NULL \
                                    WHEN $6 = 'disabled' AND status = 'active' \
                                        THEN 'disabled by an operator' \
                                    ELSE disabled_reason END, \
             disabled_at = CASE WHEN $6 = 'active' THEN NULL \
                                WHEN $6 = 'disabled' AND status = 'active' THEN $7 \
                                ELSE disabled_at END, \
             updated_at = $7 \
         WHERE id = $1 \
         RETURNING {SUBSCRIPTION_COLUMNS}"
    );
    let row: Option<SubscriptionRow> = on_db!(db, pool => {
        sqlx::query_as(&sql)
            .bind(id)
            .bind(url.as_deref())
            .bind(filter.as_deref())
            .bind(description.as_deref())
            .bind(secret.as_deref())
            .bind(status)
            .bind(now)
            .fetch_optional(pool)
            .await?
    });
    let subscription: Subscription = row
        .ok_or(WebhookError::SubscriptionNotFound(id))?
        .try_into()?;
    tracing::info!(subscription = %id, status = subscription.status.as_str(), "webhook subscription updated");
    Ok(subscription)
}

/// Deletes a subscription with its deliveries and their attempt log.
pub async fn delete(store: &Store, id: Uuid) -> Result<(), WebhookError> {
    let db = store.db();
    let deleted = on_db!(db, pool => {
        sqlx::query("DELETE FROM webhook_subscriptions WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    if deleted == 0 {
        return Err(WebhookError::SubscriptionNotFound(id));
    }
    tracing::info!(subscription = %id, "webhook subscription deleted");
    Ok(())
}

/// A page of a subscription's deliveries, with their attempt logs.
pub async fn deliveries(
    store: &Store,
    subscription_id: Uuid,
    query: DeliveryQuery,
) -> Result<DeliveryPage, WebhookError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(WebhookError::Invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    // Fails with SubscriptionNotFound rather than listing nothing.
    get(store, subscription_id).await?;
    let db = store.db();
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
         WHERE subscription_id = $1 AND ($2 IS NULL OR status = $2) \
           AND (position, generation) < ($3, $4) \
         ORDER BY position DESC, generation DESC LIMIT $5"
    );
    let rows: Vec<DeliveryRow> = on_db!(db, pool => {
        sqlx::query_as(&sql)
            .bind(subscription_id)
            .bind(query.status.map(DeliveryStatus::as_str))
            .bind(query.before_position.unwrap_or(i64::MAX))
            .bind(query.before_generation.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
    });
    let deliveries = rows
        .into_iter()
        .map(Delivery::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let next = match deliveries.last() {
        Some(last) if deliveries.len() == limit as usize => Some(DeliveryCursor {
            before_position: last.position,
            before_generation: last.generation,
        }),
        _ => None,
    };
    let deliveries = with_attempts(db, deliveries).await?;
    Ok(DeliveryPage { deliveries, next })
}

/// One delivery of a subscription, with its attempt log.
pub async fn delivery(
    store: &Store,
    subscription_id: Uuid,
    delivery_id: Uuid,
) -> Result<DeliveryRecord, WebhookError> {
    let db = store.db();
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND subscription_id = $2"
    );
    let row: Option<DeliveryRow> = on_db!(db, pool => {
        sqlx::query_as(&sql)
            .bind(delivery_id)
            .bind(subscription_id)
            .fetch_optional(pool)
            .await?
    });
    let delivery = row
        .ok_or(WebhookError::DeliveryNotFound(delivery_id))?
        .try_into()?;
    let mut records = with_attempts(db, vec![delivery]).await?;
    records
        .pop()
        .ok_or(WebhookError::DeliveryNotFound(delivery_id))
}

/// Sends a delivery again, now, with the same `webhook-id`.
///
/// Refused ([`WebhookError::Invalid`]) once the delivery has
/// [`MAX_ATTEMPTS_PER_DELIVERY`] attempts logged.
///
/// A delivered or failed delivery becomes pending with a fresh round of attempts; a
/// pending one is made due now (its round goes on). It goes out once its subscription is
/// active and no earlier delivery of its stream is pending.
pub async fn redeliver(
    store: &Store,
    subscription_id: Uuid,
    delivery_id: Uuid,
) -> Result<DeliveryRecord, WebhookError> {
    let db = store.db();
    let now = now(store);
    let updated = on_db!(db, pool => {
        sqlx::query(
            "UPDATE webhook_deliveries SET \
                 attempts = CASE WHEN status = 'pending' THEN attempts ELSE 0 END, \
                 status = 'pending', next_attempt_at = $3, delivered_at = NULL, updated_at = $3 \
             WHERE id = $1 AND subscription_id = $2 \
               AND (SELECT COUNT(*) FROM webhook_attempts a \
                     WHERE a.delivery_id = webhook_deliveries.id) < $4",
        )
        .bind(delivery_id)
        .bind(subscription_id)
        .bind(now)
        .bind(MAX_ATTEMPTS_PER_DELIVERY)
        .execute(pool)
        .await?
        .rows_affected()
    });
    if updated == 0 {
        // Not there, or there but out of attempts: the lookup tells which.
        let record = delivery(store, subscription_id, delivery_id).await?;
        return Err(WebhookError::Invalid(format!(
            "delivery {delivery_id} was attempted {} times, the most one delivery may be \
             (MAX_ATTEMPTS_PER_DELIVERY = {MAX_ATTEMPTS_PER_DELIVERY}); replay the event instead",
            record.attempt_log.len()
        )));
    }
    tracing::info!(subscription = %subscription_id, delivery = %delivery_id, "webhook redelivery requested");
    delivery(store, subscription_id, delivery_id).await
}

/// Enqueues every event after `from_position` that the subscription's filter matches, up
/// to the log's current head, as a new generation of deliveries (sent even if they were
/// delivered before; receivers deduplicate by `webhook-id`), and returns when all are
/// enqueued. For tools and tests: the admin API starts a [`replay`](super::replay) job
/// and leaves it to the dispatcher.
pub async fn replay(
    store: &Store,
    subscription_id: Uuid,
    from_position: i64,
) -> Result<ReplayOutcome, WebhookError> {
    let job = super::replay::start(store, subscription_id, from_position).await?;
    let job = super::replay::finish(store, subscription_id, job.id).await?;
    Ok(ReplayOutcome {
        generation: job.generation,
        from_position: job.from_position,
        to_position: job.to_position,
        enqueued: job.enqueued,
    })
}

/// Loads the attempt logs of `deliveries` in one query.
async fn with_attempts(
    db: Db<'_>,
    deliveries: Vec<Delivery>,
) -> Result<Vec<DeliveryRecord>, WebhookError> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<AttemptRow> = on_db!(db, pool => {
        let mut select = sqlx::QueryBuilder::new(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE delivery_id IN ("
        ));
        let mut ids = select.separated(", ");
        for d in &deliveries {
            ids.push_bind(d.id);
        }
        select.push(") ORDER BY attempt_no");
        select.build_query_as().fetch_all(pool).await?
    });
    let mut logs: HashMap<Uuid, Vec<Attempt>> = HashMap::new();
    for row in rows {
        let id = row.delivery_id;
        logs.entry(id).or_default().push(row.try_into()?);
    }
    Ok(deliveries
        .into_iter()
        .map(|delivery| DeliveryRecord {
            attempt_log: logs.remove(&delivery.id).unwrap_or_default(),
            delivery,
        })
        .collect())
}

/// Checks a subscription URL: absolute `http`/`https` with a host, at most
/// [`MAX_URL_LEN`] bytes.
pub fn validate_url(url: &str) -> Result<String, WebhookError> {
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return Err(WebhookError::Invalid(format!(
            "url must be 1 to {MAX_URL_LEN} bytes long"
        )));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| WebhookError::Invalid(format!("url is not a valid absolute URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(WebhookError::Invalid(
            "url must be http:// or https://".into(),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(WebhookError::Invalid("url has no host".into()));
    }
    Ok(url.to_string())
}

fn validate_filter(patterns: Vec<String>) -> Result<EventFilter, WebhookError> {
    EventFilter::new(patterns).map_err(WebhookError::Invalid)
}

fn validate_description(description: String) -> Result<String, WebhookError> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(WebhookError::Invalid(format!(
            "description is longer than {MAX_DESCRIPTION_LEN} characters"
        )));
    }
    Ok(description)
}

fn parse_secret(text: &str) -> Result<WebhookSecret, WebhookError> {
    WebhookSecret::parse(text).map_err(|e| WebhookError::Invalid(format!("secret: {e}")))
}

/// The secret and URL a dispatcher needs for one attempt; `None` once the subscription
/// is gone.
pub(super) async fn target(
    db: Db<'_>,
    keys: &SecretKeys,
    subscription_id: Uuid,
) -> Result<Option<(String, WebhookSecret)>, WebhookError> {
    let row: Option<(String, String)> = on_db!(db, pool => {
        sqlx::query_as("SELECT url, secret FROM webhook_subscriptions WHERE id = $1")
            .bind(subscription_id)
            .fetch_optional(pool)
            .await?
    });
    row.map(|(url, secret)| {
        keys.open(&secret).map(|secret| (url, secret)).map_err(|e| {
            WebhookError::Corrupt(format!("secret of subscription {subscription_id}: {e}"))
        })
    })
    .transpose()
}

/// Seals again every stored secret that is in clear or wrapped by a key other than the
/// first of `keys` (after a key was added in front, before the old one is dropped), one
/// row at a time; returns how many changed. A secret no configured key opens fails the
/// whole run, naming its subscription, before anything is lost.
pub async fn reseal(store: &Store, keys: &SecretKeys) -> Result<u64, WebhookError> {
    if !keys.is_sealing() {
        return Err(WebhookError::Invalid(
            "no webhook secret keys are configured: nothing to seal with".into(),
        ));
    }
    let db = store.db();
    let rows: Vec<(Uuid, String)> = on_db!(db, pool => {
        sqlx::query_as("SELECT id, secret FROM webhook_subscriptions ORDER BY id")
            .fetch_all(pool)
            .await?
    });
    let mut changed = 0;
    for (id, stored) in rows {
        if !keys.needs_reseal(&stored) {
            continue;
        }
        let secret = keys
            .open(&stored)
            .map_err(|e| WebhookError::Corrupt(format!("secret of subscription {id}: {e}")))?;
        // Only if unchanged meanwhile: a concurrent update already sealed it anew.
        let done = on_db!(db, pool => {
            sqlx::query("UPDATE webhook_subscriptions SET secret = $3 WHERE id = $1 AND secret = $2")
                .bind(id)
                .bind(&stored)
                .bind(keys.seal(&secret))
                .execute(pool)
                .await?
                .rows_affected()
        });
        changed += done;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host_and_bounded() {
        validate_url("https://hooks.example.com/in?x=1").unwrap();
        validate_url("http://127.0.0.1:8080/").unwrap();
        for bad in [
            "",
            "ftp://example.com/",
            "example.com/hook",
            "https://",
            "file:///etc/passwd",
        ] {
            assert!(validate_url(bad).is_err(), "{bad} accepted");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(validate_url(&long).is_err());
    }

    #[test]
    fn descriptions_are_bounded() {
        validate_description("ä".repeat(MAX_DESCRIPTION_LEN)).unwrap();
        assert!(validate_description("a".repeat(MAX_DESCRIPTION_LEN + 1)).is_err());
    }
}
