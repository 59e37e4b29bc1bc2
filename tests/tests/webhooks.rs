//! Webhooks end to end: subscriptions, fan-out, signed delivery to a real HTTP receiver
//! on 127.0.0.1, retries, ordering, disabling, redelivery, replay and the admin API, on
//! PostgreSQL and SQLite.
//!
//! Time is a `ManualClock` shared by the store and the receiver: tests advance it past
//! retry waits instead of sleeping. Most tests drive the fan-out step by step with a small
//! loop over a `LocalFeed`; the engine tests at the end run it the way `commerce serve`
//! does (consumer runtime, dispatcher), embedded and over JetStream.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::http::{app, AdminTokens, AppState};
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use infra::clock::{Clock, ManualClock};
use infra::feed::{Feed, LocalFeed};
use infra::store::{NewEvent, StoreConfig, StreamRef};
use infra::webhook::admin::{self, DeliveryQuery, NewSubscription, SubscriptionUpdate};
use infra::webhook::replay::{self, ReplayStatus};
use infra::webhook::{
    verify, verify_timestamp, AllowList, DeliveryRecord, DeliveryStatus, SecretKeys, Subscription,
    SubscriptionStatus, WebhookConfig, WebhookDispatcher, WebhookError, WebhookFanout,
    WebhookMessage, WebhookSecret,
};
use infra::Store;
use serde_json::{json, Value};
use tests::{eventually, fresh_store, BackendKind};
use tokio::task::JoinHandle;
use tower::ServiceExt;
use uuid::Uuid;

const BACKENDS: [BackendKind; 2] = [BackendKind::Postgres, BackendKind::Sqlite];

// ---------------------------------------------------------------------------------------
// The receiver: a real HTTP server that verifies every request and records it.

/// What the receiver answers to one request.
#[derive(Debug, Clone, Copy)]
struct Reply {
    status: u16,
    /// Wait this long before answering (to provoke timeouts).
    delay: Option<Duration>,
    retry_after: Option<u64>,
}

impl Reply {
    fn status(status: u16) -> Self {
        Self {
            status,
            delay: None,
            retry_after: None,
        }
    }
}

/// Decides the reply from the `webhook-id` and how many requests with that id came
/// before this one (0 for the first).
type Behaviour = dyn Fn(&str, usize) -> Reply + Send + Sync;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: i64,
    message: WebhookMessage,
    answered: u16,
}

struct ReceiverState {
    secret: WebhookSecret,
    clock: ManualClock,
    behaviour: Mutex<Box<Behaviour>>,
    log: Mutex<Vec<Received>>,
    bad_requests: AtomicUsize,
}

struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    server: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    async fn start(
        secret: WebhookSecret,
        clock: ManualClock,
        behaviour: impl Fn(&str, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let state = Arc::new(ReceiverState {
            secret,
            clock,
            behaviour: Mutex::new(Box::new(behaviour)),
            log: Mutex::new(Vec::new()),
            bad_requests: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            url: format!("http://{addr}/hook"),
            state,
            server,
        }
    }

    /// A receiver that answers 200 to everything.
    async fn ok(secret: WebhookSecret, clock: ManualClock) -> Self {
        Self::start(secret, clock, |_, _| Reply::status(200)).await
    }

    fn behave(&self, behaviour: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) {
        *self.state.behaviour.lock().unwrap() = Box::new(behaviour);
    }

    fn log(&self) -> Vec<Received> {
        self.state.log.lock().unwrap().clone()
    }

    /// The requests answered 2xx, in arrival order.
    fn accepted(&self) -> Vec<Received> {
        self.log()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    fn assert_all_verified(&self) {
        assert_eq!(
            self.state.bad_requests.load(Ordering::SeqCst),
            0,
            "the receiver got requests that failed verification"
        );
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let refuse = |why: String| {
        state.bad_requests.fetch_add(1, Ordering::SeqCst);
        (StatusCode::UNAUTHORIZED, HeaderMap::new(), why)
    };
    let (Some(id), Some(timestamp), Some(signature)) = (
        header("webhook-id"),
        header("webhook-timestamp").and_then(|t| t.parse::<i64>().ok()),
        header("webhook-signature"),
    ) else {
        return refuse("missing webhook headers".into());
    };
    if header("content-type").as_deref() != Some("application/json")
        || !header("user-agent").is_some_and(|ua| ua.starts_with("commerce-webhooks/"))
    {
        return refuse("wrong content-type or user-agent".into());
    }
    if let Err(e) = verify(&state.secret, &id, timestamp, &body, &signature) {
        return refuse(format!("signature: {e}"));
    }
    if let Err(e) = verify_timestamp(timestamp, state.clock.now(), Duration::from_secs(300)) {
        return refuse(format!("timestamp: {e}"));
    }
    let message: WebhookMessage = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => return refuse(format!("body: {e}")),
    };
    if message.data.id.to_string() != id {
        return refuse("webhook-id is not the event id".into());
    }
    let reply = {
        let mut log = state.log.lock().unwrap();
        let before = log.iter().filter(|r| r.id == id).count();
        let reply = (state.behaviour.lock().unwrap())(&id, before);
        log.push(Received {
            id,
            timestamp,
            message,
            answered: reply.status,
        });
        reply
    };
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut headers = HeaderMap::new();
    if let Some(seconds) = reply.retry_after {
        headers.insert("retry-after", seconds.to_string().parse().unwrap());
    }
    (
        StatusCode::from_u16(reply.status).unwrap(),
        headers,
        format!("answered {}", reply.status),
    )
}

// ---------------------------------------------------------------------------------------
// Fixture: a store on a manual clock, the fan-out, a dispatcher.

struct Fixture {
    store: Store,
    clock: ManualClock,
    fanout: WebhookFanout,
    dispatcher: WebhookDispatcher,
    /// Where the stand-in consumer loop stands.
    checkpoint: i64,
    /// The last position appended by the test.
    appended: AtomicI64,
    /// What the dispatcher opens secrets with; subscriptions are sealed with it.
    keys: SecretKeys,
}

/// The receivers listen on 127.0.0.1, which deliveries may reach only because the
/// allow-list says so (see `loopback_is_refused_unless_allowed`).
fn test_config() -> WebhookConfig {
    WebhookConfig {
        request_timeout: Duration::from_secs(5),
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        allow_networks: AllowList::parse("127.0.0.0/8").unwrap(),
        ..WebhookConfig::default()
    }
}

async fn fixture(kind: BackendKind, config: WebhookConfig) -> Option<Fixture> {
    let clock = tests::test_clock();
    let store = fresh_store(kind, StoreConfig::default(), Arc::new(clock.clone())).await?;
    Some(Fixture {
        fanout: WebhookFanout::new(store.clone()),
        keys: config.secret_keys.clone(),
        dispatcher: WebhookDispatcher::new(store.clone(), config).unwrap(),
        store,
        clock,
        checkpoint: 0,
        appended: AtomicI64::new(0),
    })
}

impl Fixture {
    /// Appends one event to `stream_type/stream_id`; returns its position.
    async fn append(&self, stream_type: &str, stream_id: &str, event_type: &str) -> i64 {
        let stream = StreamRef::new(stream_type, stream_id);
        let version = self.store.read_stream(&stream, 0).await.unwrap().len() as i64;
        let mut metadata = BTreeMap::new();
        metadata.insert("actor".to_string(), "tester".to_string());
        let outcome = self
            .store
            .append(
                &stream,
                version,
                vec![NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: event_type.into(),
                    schema_version: 1,
                    payload: json!({ "stream": stream_id, "version": version + 1, "note": "ünïcode" }),
                    metadata,
                }],
                None,
            )
            .await
            .unwrap();
        self.appended
            .fetch_max(outcome.last_position, Ordering::SeqCst);
        outcome.last_position
    }

    /// Waits until the log's readable head reaches everything appended. (On PostgreSQL
    /// the head stays below transactions still running anywhere in the database, such as
    /// other tests'.)
    async fn settle(&self) {
        let last = self.appended.load(Ordering::SeqCst);
        assert!(self
            .store
            .wait_for_position(last, Duration::from_secs(10))
            .await
            .unwrap());
    }

    /// Stands in for the consumer runtime: hands every event appended so far to the
    /// fan-out, in order, and acknowledges it.
    async fn fan_out(&mut self) {
        let last = self.appended.load(Ordering::SeqCst);
        if last <= self.checkpoint {
            return;
        }
        let mut feed = LocalFeed::new(&self.store, self.checkpoint);
        while self.checkpoint < last {
            let delivery = feed.next().await.unwrap();
            self.fanout.fan_out(&delivery.envelope).await.unwrap();
            // Handling an event twice adds nothing.
            assert_eq!(self.fanout.fan_out(&delivery.envelope).await.unwrap(), 0);
            feed.ack(&delivery).await.unwrap();
            self.checkpoint = delivery.envelope.position;
        }
    }

    async fn subscribe(
        &self,
        url: &str,
        event_types: &[&str],
        secret: &WebhookSecret,
    ) -> Subscription {
        admin::create(
            &self.store,
            &self.keys,
            NewSubscription {
                url: url.to_string(),
                event_types: event_types.iter().map(|s| s.to_string()).collect(),
                secret: Some(secret.expose().to_string()),
                description: Some("test receiver".into()),
            },
        )
        .await
        .unwrap()
        .subscription
    }

    async fn deliveries(&self, subscription: Uuid) -> Vec<DeliveryRecord> {
        let page = admin::deliveries(
            &self.store,
            subscription,
            DeliveryQuery {
                limit: Some(200),
                ..DeliveryQuery::default()
            },
        )
        .await
        .unwrap();
        let mut deliveries = page.deliveries;
        deliveries.reverse();
        deliveries
    }

    /// Attempts what is due, then moves the clock on by `step`, `rounds` times.
    async fn deliver_over(&self, rounds: usize, step: chrono::Duration) -> usize {
        let mut attempts = 0;
        for _ in 0..rounds {
            attempts += self.dispatcher.deliver_due().await.unwrap();
            self.clock.advance(step);
        }
        attempts + self.dispatcher.deliver_due().await.unwrap()
    }
}

/// Checks that, per stream, the accepted messages come in version order.
fn assert_stream_order(received: &[Received]) {
    let mut last: HashMap<(String, String), i64> = HashMap::new();
    for r in received {
        let key = (
            r.message.data.stream_type.clone(),
            r.message.data.stream_id.clone(),
        );
        let previous = last.insert(key.clone(), r.message.data.version);
        if let Some(previous) = previous {
            assert!(
                r.message.data.version > previous,
                "{key:?}: version {} after {previous}",
                r.message.data.version
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn deliveries_arrive_signed_once_each_in_stream_order() {
    for kind in BACKENDS {
        let Some(mut f) = fixture(kind, test_config()).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        let receiver = Receiver::ok(secret.clone(), f.clock.clone()).await;
        let sub = f
            .subscribe(&receiver.url, &["order.*", "cart.ItemAdded"], &secret)
            .await;
        let mut expected = Vec::new();
        for round in 0..4 {
            for order in ["o-1", "o-2", "o-3"] {
                let event_type = if round == 0 {
                    "OrderPlaced"
                } else {
                    "OrderUpdated"
                };
                expected.push(f.append("order", order, event_type).await);
            }
            expected.push(f.append("cart", "c-1", "ItemAdded").await);
            f.append("cart", "c-1", "ItemRemoved").await;
            f.append("payment", "p-1", "PaymentCaptured").await;
        }
        f.fan_out().await;
        assert_eq!(f.deliveries(sub.id).await.len(), expected.len());

        // The service loop, polling on its own, until everything arrived.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let dispatcher = f.dispatcher.clone();
        let running = tokio::spawn(async move {
            dispatcher
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        let arrived = eventually(Duration::from_secs(10), || async {
            (receiver.log().len() >= expected.len()).then_some(())
        })
        .await;
        assert!(arrived.is_some(), "{kind:?}: deliveries did not arrive");
        stop.send(()).unwrap();
        running.await.unwrap().unwrap();

        receiver.assert_all_verified();
        let received = receiver.log();
        let mut positions: Vec<i64> = received.iter().map(|r| r.message.data.position).collect();
        positions.sort_unstable();
        assert_eq!(
            positions, expected,
            "{kind:?}: each matching event exactly once"
        );
        assert_stream_order(&received);
        let events = f.store.read_all(0, 1000).await.unwrap();
        for r in &received {
            let event = events
                .iter()
                .find(|e| e.position == r.message.data.position)
                .unwrap();
            assert_eq!(r.id, event.event_id.to_string());
            assert_eq!(
                r.message.kind,
                format!("{}.{}", event.stream_type, event.event_type)
            );
            assert_eq!(r.message.timestamp, event.recorded_at);
            assert_eq!(r.message.data.version, event.version);
            assert_eq!(r.message.data.payload, event.payload().unwrap());
            assert_eq!(r.message.data.metadata, event.metadata().unwrap());
            assert_eq!(r.timestamp, f.clock.now().timestamp());
        }
        for record in f.deliveries(sub.id).await {
            assert_eq!(record.delivery.status, DeliveryStatus::Delivered);
            assert_eq!(record.delivery.attempts, 1);
            assert_eq!(record.delivery.last_status_code, Some(200));
            assert_eq!(record.attempt_log.len(), 1);
            assert_eq!(record.attempt_log[0].status_code, Some(200));
            assert_eq!(
                record.attempt_log[0].response_excerpt.as_deref(),
                Some("answered 200")
            );
        }
        // Nothing more is due, and handling the events again enqueues nothing.
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 0);
        f.checkpoint = 0;
        f.fan_out().await;
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 0);
    }
}

#[tokio::test]
async fn intermittent_failures_are_retried_on_schedule_with_the_same_id() {
    for kind in BACKENDS {
        let Some(mut f) = fixture(kind, test_config()).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        // Fails the first two attempts of every id with 503.
        let receiver = Receiver::start(secret.clone(), f.clock.clone(), |_, before| {
            Reply::status(if before < 2 { 503 } else { 200 })
        })
        .await;
        let sub = f.subscribe(&receiver.url, &[], &secret).await;
        for n in 0..3 {
            f.append("order", "o-1", &format!("Step{n}")).await;
            f.append("order", "o-2", &format!("Step{n}")).await;
        }
        f.fan_out().await;

        // Round 1: the first event of each stream fails; later ones wait behind it.
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 2);
        assert_eq!(
            f.dispatcher.deliver_due().await.unwrap(),
            0,
            "not due before 5 s"
        );
        f.clock.advance(chrono::Duration::seconds(4));
        assert_eq!(
            f.dispatcher.deliver_due().await.unwrap(),
            0,
            "not due before 5 s"
        );
        f.clock.advance(chrono::Duration::seconds(1));
        // Second attempt fails again; the next wait is 5 minutes.
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 2);
        f.clock.advance(chrono::Duration::seconds(299));
        assert_eq!(
            f.dispatcher.deliver_due().await.unwrap(),
            0,
            "not due before 5 min"
        );
        f.clock.advance(chrono::Duration::seconds(1));
        // Third attempt succeeds, which frees the next event of each stream.
        let attempts = f.dispatcher.deliver_due().await.unwrap();
        assert_eq!(attempts, 4, "third attempts, then the next events' first");

        let attempts = f.deliver_over(12, chrono::Duration::minutes(5)).await;
        assert!(attempts > 0);
        receiver.assert_all_verified();
        let accepted = receiver.accepted();
        assert_eq!(accepted.len(), 6, "{kind:?}: every event delivered");
        let ids: HashSet<&str> = accepted.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), 6, "{kind:?}: each exactly once successfully");
        assert_stream_order(&accepted);
        let log = receiver.log();
        for id in &ids {
            let tries: Vec<&Received> = log.iter().filter(|r| r.id == *id).collect();
            assert_eq!(tries.len(), 3, "two failures and a success per id");
            assert!(tries.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
            assert!(tries.iter().all(|r| r.message == tries[0].message));
        }
        for record in f.deliveries(sub.id).await {
            assert_eq!(record.delivery.status, DeliveryStatus::Delivered);
            assert_eq!(record.delivery.attempts, 3);
            let codes: Vec<Option<u16>> =
                record.attempt_log.iter().map(|a| a.status_code).collect();
            assert_eq!(codes, [Some(503), Some(503), Some(200)]);
            let numbers: Vec<i64> = record.attempt_log.iter().map(|a| a.attempt_no).collect();
            assert_eq!(numbers, [1, 2, 3]);
            assert_eq!(record.attempt_log[0].error.as_deref(), Some("HTTP 503"));
        }
        let sub = admin::get(&f.store, sub.id).await.unwrap();
        assert_eq!(sub.consecutive_failures, 0);
        assert_eq!(sub.status, SubscriptionStatus::Active);
    }
}

#[tokio::test]
async fn final_4xx_stops_at_once_while_429_timeouts_and_refused_connections_retry() {
    for kind in BACKENDS {
        let config = WebhookConfig {
            request_timeout: Duration::from_secs(1),
            lease: Duration::from_secs(5),
            ..test_config()
        };
        let Some(mut f) = fixture(kind, config).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        let receiver =
            Receiver::start(secret.clone(), f.clock.clone(), |_, _| Reply::status(410)).await;
        let gone = f.subscribe(&receiver.url, &["gone.*"], &secret).await;
        let slow_receiver = Receiver::start(secret.clone(), f.clock.clone(), |_, before| Reply {
            status: 200,
            delay: (before == 0).then_some(Duration::from_secs(4)),
            retry_after: None,
        })
        .await;
        let slow = f.subscribe(&slow_receiver.url, &["slow.*"], &secret).await;
        let limited_receiver =
            Receiver::start(secret.clone(), f.clock.clone(), |_, before| Reply {
                status: if before == 0 { 429 } else { 200 },
                delay: None,
                retry_after: Some(60),
            })
            .await;
        let limited = f
            .subscribe(&limited_receiver.url, &["limited.*"], &secret)
            .await;
        let closed_port = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let refused = f
            .subscribe(
                &format!("http://{closed_port}/hook"),
                &["refused.*"],
                &secret,
            )
            .await;
        f.append("gone", "g-1", "First").await;
        f.append("gone", "g-1", "Second").await;
        f.append("slow", "s-1", "Only").await;
        f.append("limited", "l-1", "Only").await;
        f.append("refused", "r-1", "Only").await;
        f.fan_out().await;

        f.dispatcher.deliver_due().await.unwrap();
        // 410 is final after one attempt, and does not hold back the stream's next event.
        let gone_log = f.deliveries(gone.id).await;
        for record in &gone_log {
            assert_eq!(record.delivery.status, DeliveryStatus::Failed);
            assert_eq!(record.delivery.attempts, 1);
            assert_eq!(record.delivery.last_status_code, Some(410));
        }
        // A timeout and a refused connection are retried: still pending, with the error.
        let slow_log = f.deliveries(slow.id).await;
        assert_eq!(slow_log[0].delivery.status, DeliveryStatus::Pending);
        assert_eq!(slow_log[0].attempt_log[0].status_code, None);
        assert!(slow_log[0]
            .delivery
            .last_error
            .as_deref()
            .unwrap()
            .contains("timed out"));
        let refused_log = f.deliveries(refused.id).await;
        assert_eq!(refused_log[0].delivery.status, DeliveryStatus::Pending);
        assert!(refused_log[0]
            .delivery
            .last_error
            .as_deref()
            .unwrap()
            .contains("connection"));
        // 429 with Retry-After: 60 waits 60 s rather than the scheduled 5 s.
        let limited_log = f.deliveries(limited.id).await;
        assert_eq!(limited_log[0].delivery.status, DeliveryStatus::Pending);
        assert_eq!(
            limited_log[0].delivery.next_attempt_at,
            f.clock.now() + chrono::Duration::seconds(60)
        );

        f.clock.advance(chrono::Duration::seconds(5));
        f.dispatcher.deliver_due().await.unwrap();
        assert_eq!(
            f.deliveries(slow.id).await[0].delivery.status,
            DeliveryStatus::Delivered
        );
        assert_eq!(
            f.deliveries(limited.id).await[0].delivery.status,
            DeliveryStatus::Pending
        );
        f.clock.advance(chrono::Duration::seconds(55));
        f.dispatcher.deliver_due().await.unwrap();
        assert_eq!(
            f.deliveries(limited.id).await[0].delivery.status,
            DeliveryStatus::Delivered
        );

        // The 410 is never tried again; the refused connection runs out of attempts.
        f.deliver_over(10, chrono::Duration::hours(6)).await;
        assert_eq!(receiver.log().len(), 2, "one attempt per event");
        let refused_log = f.deliveries(refused.id).await;
        assert_eq!(refused_log[0].delivery.status, DeliveryStatus::Failed);
        assert_eq!(refused_log[0].delivery.attempts, 8);
        assert_eq!(refused_log[0].attempt_log.len(), 8);
        for r in [&receiver, &slow_receiver, &limited_receiver] {
            r.assert_all_verified();
        }
    }
}

#[tokio::test]
async fn a_subscription_is_disabled_after_consecutive_failures_and_resumes_when_enabled() {
    for kind in BACKENDS {
        let config = WebhookConfig {
            concurrency: 1,
            disable_after: 2,
            ..test_config()
        };
        let Some(mut f) = fixture(kind, config).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        let receiver =
            Receiver::start(secret.clone(), f.clock.clone(), |_, _| Reply::status(400)).await;
        let sub = f.subscribe(&receiver.url, &[], &secret).await;
        f.append("order", "a", "OrderPlaced").await;
        f.append("order", "b", "OrderPlaced").await;
        f.append("order", "c", "OrderPlaced").await;
        f.fan_out().await;

        assert_eq!(
            f.dispatcher.deliver_due().await.unwrap(),
            2,
            "disabled after two"
        );
        let disabled = admin::get(&f.store, sub.id).await.unwrap();
        assert_eq!(disabled.status, SubscriptionStatus::Disabled);
        assert_eq!(disabled.consecutive_failures, 2);
        assert!(disabled
            .disabled_reason
            .unwrap()
            .contains("2 deliveries in a row"));
        assert_eq!(disabled.disabled_at, Some(f.clock.now()));
        let log = f.deliveries(sub.id).await;
        let statuses: Vec<DeliveryStatus> = log.iter().map(|d| d.delivery.status).collect();
        assert_eq!(
            statuses,
            [
                DeliveryStatus::Failed,
                DeliveryStatus::Failed,
                DeliveryStatus::Pending
            ]
        );

        // Disabled: nothing is sent, and new events are not enqueued for it.
        f.clock.advance(chrono::Duration::days(2));
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 0);
        f.append("order", "d", "OrderPlaced").await;
        f.fan_out().await;
        assert_eq!(f.deliveries(sub.id).await.len(), 3);

        // Enabled again with a working receiver: the pending delivery goes out.
        receiver.behave(|_, _| Reply::status(204));
        let enabled = admin::update(
            &f.store,
            &f.keys,
            sub.id,
            SubscriptionUpdate {
                enabled: Some(true),
                ..SubscriptionUpdate::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(enabled.status, SubscriptionStatus::Active);
        assert_eq!(enabled.consecutive_failures, 0);
        assert_eq!(enabled.disabled_reason, None);
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 1);
        assert_eq!(receiver.accepted().len(), 1);
        assert_eq!(receiver.accepted()[0].message.data.stream_id, "c");
        receiver.assert_all_verified();

        // One success resets the count: a single later failure does not disable.
        receiver.behave(|_, _| Reply::status(400));
        f.append("order", "e", "OrderPlaced").await;
        f.fan_out().await;
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 1);
        let sub = admin::get(&f.store, sub.id).await.unwrap();
        assert_eq!(sub.status, SubscriptionStatus::Active);
        assert_eq!(sub.consecutive_failures, 1);
    }
}

#[tokio::test]
async fn manual_redelivery_sends_again_with_the_same_id() {
    for kind in BACKENDS {
        let Some(mut f) = fixture(kind, test_config()).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        let receiver =
            Receiver::start(secret.clone(), f.clock.clone(), |_, _| Reply::status(404)).await;
        let sub = f.subscribe(&receiver.url, &["order.*"], &secret).await;
        f.append("order", "o-1", "OrderPlaced").await;
        f.fan_out().await;
        f.dispatcher.deliver_due().await.unwrap();
        let failed = f.deliveries(sub.id).await.remove(0);
        assert_eq!(failed.delivery.status, DeliveryStatus::Failed);

        // The receiver is fixed; the operator redelivers.
        receiver.behave(|_, _| Reply::status(200));
        f.clock.advance(chrono::Duration::minutes(1));
        let queued = admin::redeliver(&f.store, sub.id, failed.delivery.id)
            .await
            .unwrap();
        assert_eq!(queued.delivery.status, DeliveryStatus::Pending);
        assert_eq!(queued.delivery.attempts, 0);
        assert_eq!(queued.delivery.next_attempt_at, f.clock.now());
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 1);
        // Delivered ones can be sent again too.
        admin::redeliver(&f.store, sub.id, failed.delivery.id)
            .await
            .unwrap();
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 1);

        let log = receiver.log();
        assert_eq!(log.len(), 3);
        assert!(log
            .iter()
            .all(|r| r.id == failed.delivery.event_id.to_string()));
        let record = admin::delivery(&f.store, sub.id, failed.delivery.id)
            .await
            .unwrap();
        assert_eq!(record.delivery.status, DeliveryStatus::Delivered);
        let numbers: Vec<i64> = record.attempt_log.iter().map(|a| a.attempt_no).collect();
        assert_eq!(numbers, [1, 2, 3], "attempts are numbered across rounds");
        let codes: Vec<Option<u16>> = record.attempt_log.iter().map(|a| a.status_code).collect();
        assert_eq!(codes, [Some(404), Some(200), Some(200)]);
        receiver.assert_all_verified();

        let unknown = admin::redeliver(&f.store, sub.id, Uuid::now_v7()).await;
        assert!(matches!(unknown, Err(WebhookError::DeliveryNotFound(_))));
        let other_subscription =
            admin::redeliver(&f.store, Uuid::now_v7(), failed.delivery.id).await;
        assert!(matches!(
            other_subscription,
            Err(WebhookError::DeliveryNotFound(_))
        ));
    }
}

/// A replay is a background job: the request records it, batches of the log are enqueued
/// one transaction at a time with the job's progress, and two workers advancing the same
/// job at once (as after a crash, or with two processes) enqueue every event once.
#[tokio::test]
async fn a_replay_job_advances_in_batches_and_enqueues_each_event_once() {
    for kind in BACKENDS {
        let Some(f) = fixture(kind, test_config()).await else {
            continue;
        };
        let sub = f
            .subscribe(
                "http://127.0.0.1:9/unused",
                &["order.*"],
                &WebhookSecret::generate(),
            )
            .await;
        let mut orders = 0;
        for n in 0..9 {
            f.append("order", &format!("o-{n}"), "OrderPlaced").await;
            orders += 1;
            if n % 3 == 0 {
                f.append("cart", "c-0", "ItemAdded").await;
            }
        }
        f.settle().await;

        let job = replay::start(&f.store, sub.id, 0).await.unwrap();
        assert_eq!(job.status, ReplayStatus::Running);
        assert_eq!((job.done_position, job.enqueued), (0, 0));
        assert_eq!(job.to_position, f.store.head_position().await.unwrap());
        // Nothing is enqueued until a worker advances the job.
        assert!(f.deliveries(sub.id).await.is_empty());

        let first = replay::advance(&f.store, Some(job.id), 4)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.status, ReplayStatus::Running, "{kind:?}");
        assert!(first.done_position > 0 && first.done_position < job.to_position);
        assert_eq!(first.enqueued, f.deliveries(sub.id).await.len() as u64);

        // Two workers race on the rest of it.
        let work = || async {
            while let Some(j) = replay::advance(&f.store, Some(job.id), 3).await.unwrap() {
                if j.status == ReplayStatus::Done {
                    break;
                }
            }
        };
        tokio::join!(work(), work());
        let done = replay::get(&f.store, sub.id, job.id).await.unwrap();
        assert_eq!(done.status, ReplayStatus::Done, "{kind:?}");
        assert_eq!(done.done_position, job.to_position);
        assert_eq!(done.enqueued, orders, "{kind:?}: each matching event once");
        let deliveries = f.deliveries(sub.id).await;
        assert_eq!(deliveries.len() as u64, orders, "{kind:?}");
        let events: HashSet<Uuid> = deliveries.iter().map(|d| d.delivery.event_id).collect();
        assert_eq!(events.len() as u64, orders);
        assert!(done.finished_at.is_some());
        assert_eq!(
            replay::list(&f.store, sub.id, 10).await.unwrap(),
            vec![done]
        );
        // A range with nothing after it is done at once.
        let empty = replay::start(&f.store, sub.id, 10_000).await.unwrap();
        assert_eq!(empty.status, ReplayStatus::Done);
        assert!(replay::advance(&f.store, None, 3).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn replay_from_a_position_sends_exactly_the_later_matching_events() {
    for kind in BACKENDS {
        let Some(mut f) = fixture(kind, test_config()).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        let receiver = Receiver::ok(secret.clone(), f.clock.clone()).await;
        // Events from before the subscription: not fanned out, but replayable.
        let early = f.append("order", "o-0", "OrderPlaced").await;
        f.append("cart", "c-0", "ItemAdded").await;
        f.settle().await;
        let sub = f.subscribe(&receiver.url, &["order.*"], &secret).await;
        assert_eq!(sub.start_position, early + 1);
        let mut positions = Vec::new();
        for n in 0..6 {
            positions.push(
                f.append("order", &format!("o-{}", n % 2), "OrderUpdated")
                    .await,
            );
            f.append("cart", "c-0", "ItemAdded").await;
        }
        f.fan_out().await;
        f.dispatcher.deliver_due().await.unwrap();
        assert_eq!(receiver.log().len(), 6);

        f.settle().await;
        let from = positions[2];
        let outcome = admin::replay(&f.store, sub.id, from).await.unwrap();
        assert_eq!(outcome.generation, 1);
        assert_eq!(outcome.enqueued, 3);
        assert_eq!(outcome.to_position, f.store.head_position().await.unwrap());
        f.dispatcher.deliver_due().await.unwrap();
        let replayed: Vec<i64> = receiver.log()[6..]
            .iter()
            .map(|r| r.message.data.position)
            .collect();
        let mut sorted = replayed.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            positions[3..].to_vec(),
            "{kind:?}: exactly the events after {from}"
        );
        assert_stream_order(&receiver.log()[6..]);

        // From 0 includes the events before the subscription existed.
        let outcome = admin::replay(&f.store, sub.id, 0).await.unwrap();
        assert_eq!(outcome.generation, 2);
        assert_eq!(outcome.enqueued, 7);
        f.dispatcher.deliver_due().await.unwrap();
        let log = receiver.log();
        assert_eq!(log.len(), 6 + 3 + 7);
        assert!(log[9..].iter().any(|r| r.message.data.position == early));
        receiver.assert_all_verified();

        let beyond = admin::replay(&f.store, sub.id, 10_000).await.unwrap();
        assert_eq!(beyond.enqueued, 0);
        assert!(matches!(
            admin::replay(&f.store, sub.id, -1).await,
            Err(WebhookError::Invalid(_))
        ));
        assert!(matches!(
            admin::replay(&f.store, Uuid::now_v7(), 0).await,
            Err(WebhookError::SubscriptionNotFound(_))
        ));
    }
}

#[tokio::test]
async fn concurrent_dispatchers_send_each_delivery_once_in_stream_order() {
    for kind in BACKENDS {
        let config = WebhookConfig {
            concurrency: 4,
            ..test_config()
        };
        let Some(mut f) = fixture(kind, config.clone()).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        let receiver = Receiver::start(secret.clone(), f.clock.clone(), |_, _| Reply {
            status: 200,
            delay: Some(Duration::from_millis(5)),
            retry_after: None,
        })
        .await;
        let sub = f.subscribe(&receiver.url, &[], &secret).await;
        for n in 0..40 {
            f.append("order", &format!("o-{}", n % 5), "OrderUpdated")
                .await;
        }
        f.fan_out().await;
        let others: Vec<WebhookDispatcher> = (0..3)
            .map(|_| WebhookDispatcher::new(f.store.clone(), config.clone()).unwrap())
            .collect();
        let mut runs = vec![f.dispatcher.deliver_due()];
        runs.extend(others.iter().map(|d| d.deliver_due()));
        let attempts: usize = futures_util::future::join_all(runs)
            .await
            .into_iter()
            .map(Result::unwrap)
            .sum();
        assert_eq!(
            attempts, 40,
            "{kind:?}: one attempt per delivery over all dispatchers"
        );
        let log = receiver.log();
        assert_eq!(log.len(), 40);
        assert_eq!(log.iter().map(|r| &r.id).collect::<HashSet<_>>().len(), 40);
        assert_stream_order(&log);
        receiver.assert_all_verified();
        assert!(f
            .deliveries(sub.id)
            .await
            .iter()
            .all(|d| d.delivery.status == DeliveryStatus::Delivered));
    }
}

#[tokio::test]
async fn a_claim_left_by_a_dead_dispatcher_is_taken_over_when_its_lease_expires() {
    for kind in BACKENDS {
        let Some(mut f) = fixture(kind, test_config()).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        // The very first request hangs: the dispatcher sending it is killed meanwhile.
        let first = std::sync::atomic::AtomicBool::new(true);
        let receiver = Receiver::start(secret.clone(), f.clock.clone(), move |_, _| Reply {
            status: 200,
            delay: first
                .swap(false, Ordering::SeqCst)
                .then_some(Duration::from_secs(30)),
            retry_after: None,
        })
        .await;
        let sub = f.subscribe(&receiver.url, &[], &secret).await;
        f.append("order", "o-1", "OrderPlaced").await;
        f.append("order", "o-1", "OrderPaid").await;
        f.fan_out().await;

        let dispatcher = f.dispatcher.clone();
        let doomed = tokio::spawn(async move { dispatcher.run(std::future::pending()).await });
        let sent = eventually(Duration::from_secs(10), || async {
            (!receiver.log().is_empty()).then_some(())
        })
        .await;
        assert!(sent.is_some(), "{kind:?}: the first request did not arrive");
        doomed.abort();
        assert!(doomed.await.unwrap_err().is_cancelled());

        // The claim holds until its lease (30 s in these tests) runs out.
        let other = WebhookDispatcher::new(f.store.clone(), test_config()).unwrap();
        assert_eq!(other.deliver_due().await.unwrap(), 0);
        f.clock.advance(chrono::Duration::seconds(29));
        assert_eq!(other.deliver_due().await.unwrap(), 0);
        f.clock.advance(chrono::Duration::seconds(1));
        assert_eq!(
            other.deliver_due().await.unwrap(),
            2,
            "{kind:?}: taken over, then the next"
        );

        let log = receiver.log();
        assert_eq!(log.len(), 3);
        assert_eq!(log[0].id, log[1].id, "the same webhook-id again");
        // (The receiver logged the hung request as answered; its client was gone.)
        assert_stream_order(&log[1..]);
        receiver.assert_all_verified();
        let records = f.deliveries(sub.id).await;
        assert!(records
            .iter()
            .all(|r| r.delivery.status == DeliveryStatus::Delivered));
        // The killed attempt left no log entry; the one that took over did.
        assert_eq!(records[0].attempt_log.len(), 1);
    }
}

// ---------------------------------------------------------------------------------------
// The admin HTTP API.

const TOKEN: &str = "test-admin-token-0123456789";

struct Api {
    app: Router,
}

impl Api {
    fn new(store: &Store) -> Self {
        let tokens = AdminTokens::new([TOKEN]).unwrap();
        Self {
            app: app(AppState::new(store.clone()).with_admin_tokens(tokens)),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, String, HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, content_type, headers, json)
    }

    /// An admin call that must fail with problem+json `code`.
    async fn problem(&self, method: &str, path: &str, body: Option<&str>, status: u16, code: &str) {
        let (got, content_type, _, json) = self.call(method, path, Some(TOKEN), body).await;
        assert_eq!(got.as_u16(), status, "{method} {path}: {json}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(json["code"], code, "{method} {path}: {json}");
        assert_eq!(json["status"], status);
    }
}

#[tokio::test]
async fn the_admin_api_needs_a_token_and_answers_problems() {
    let clock = tests::test_clock();
    let Some(store) = fresh_store(
        BackendKind::Sqlite,
        StoreConfig::default(),
        Arc::new(clock.clone()),
    )
    .await
    else {
        return;
    };
    let api = Api::new(&store);

    let (status, content_type, headers, json) =
        api.call("GET", "/admin/webhooks", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(json["code"], "unauthenticated");
    assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");
    let request = Request::get("/admin/webhooks")
        .header("authorization", format!("Basic {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = api.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A token that is neither an admin token nor a valid JWT is garbage: 401, as
    // docs/api.md lays out (403 is for valid tokens without the role).
    let (status, _, headers, json) = api
        .call(
            "GET",
            "/admin/webhooks",
            Some("not-the-admin-token-at-all"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["code"], "unauthenticated");
    assert_eq!(
        headers.get("www-authenticate").unwrap(),
        "Bearer error=\"invalid_token\""
    );
    // Authentication comes before the body is read.
    let (status, _, _, _) = api
        .call("POST", "/admin/webhooks", None, Some("{ not json"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // With no admin token configured, the admin API is closed: the token is unknown.
    let closed = app(AppState::new(store.clone()));
    let request = Request::get("/admin/webhooks")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        closed.oneshot(request).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Bad input.
    for body in [
        r#"{"url": "ftp://example.com/hook"}"#.to_string(),
        r#"{"url": "not a url"}"#.to_string(),
        format!(r#"{{"url": "https://example.com/{}"}}"#, "a".repeat(2100)),
        r#"{"url": "https://example.com/hook", "event_types": ["order"]}"#.to_string(),
        format!(
            r#"{{"url": "https://example.com/hook", "event_types": [{}]}}"#,
            (0..51)
                .map(|i| format!("\"s{i}.*\""))
                .collect::<Vec<_>>()
                .join(",")
        ),
        r#"{"url": "https://example.com/hook", "secret": "plain"}"#.to_string(),
        r#"{"url": "https://example.com/hook", "colour": "red"}"#.to_string(),
        r#"{"event_types": []}"#.to_string(),
        r#"{ not json"#.to_string(),
    ] {
        api.problem(
            "POST",
            "/admin/webhooks",
            Some(&body),
            400,
            "invalid_webhook",
        )
        .await;
    }
    let (status, _, _, json) = api.call("POST", "/admin/webhooks", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(json["code"], "unsupported_media_type");
    let huge = format!(
        r#"{{"url": "https://example.com/hook", "description": "{}"}}"#,
        "x".repeat(70_000)
    );
    api.problem(
        "POST",
        "/admin/webhooks",
        Some(&huge),
        413,
        "payload_too_large",
    )
    .await;

    // Create, read, list.
    let (status, _, headers, created) = api
        .call(
            "POST",
            "/admin/webhooks",
            Some(TOKEN),
            Some(r#"{"url": "https://example.com/hook", "event_types": ["order.*", "cart.ItemAdded"], "description": "shop"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        headers.get("location").unwrap(),
        &format!("/admin/webhooks/{id}")
    );
    let secret = created["secret"].as_str().unwrap();
    WebhookSecret::parse(secret).unwrap();
    assert_eq!(created["status"], "active");
    assert_eq!(created["event_types"], json!(["order.*", "cart.ItemAdded"]));
    let (status, _, _, shown) = api
        .call("GET", &format!("/admin/webhooks/{id}"), Some(TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["url"], "https://example.com/hook");
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown only once"
    );
    let (_, _, _, listed) = api.call("GET", "/admin/webhooks", Some(TOKEN), None).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(listed["webhooks"][0]["id"], id.as_str());

    // Update and disable / enable.
    let (status, _, _, patched) = api
        .call(
            "PATCH",
            &format!("/admin/webhooks/{id}"),
            Some(TOKEN),
            Some(r#"{"url": "https://example.com/v2", "event_types": [], "enabled": false}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["url"], "https://example.com/v2");
    assert_eq!(patched["event_types"], json!([]));
    assert_eq!(patched["status"], "disabled");
    assert_eq!(patched["disabled_reason"], "disabled by an operator");
    let (_, _, _, patched) = api
        .call(
            "PATCH",
            &format!("/admin/webhooks/{id}"),
            Some(TOKEN),
            Some(r#"{"enabled": true}"#),
        )
        .await;
    assert_eq!(patched["status"], "active");
    assert_eq!(patched["disabled_reason"], Value::Null);
    api.problem(
        "PATCH",
        &format!("/admin/webhooks/{id}"),
        Some(r#"{"url": "gopher://x"}"#),
        400,
        "invalid_webhook",
    )
    .await;

    // Deliveries, redelivery, replay.
    let (status, _, _, page) = api
        .call(
            "GET",
            &format!("/admin/webhooks/{id}/deliveries?status=pending&limit=10"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["deliveries"], json!([]));
    api.problem(
        "GET",
        &format!("/admin/webhooks/{id}/deliveries?limit=0"),
        None,
        400,
        "invalid_request",
    )
    .await;
    api.problem(
        "GET",
        &format!("/admin/webhooks/{id}/deliveries?status=lost"),
        None,
        400,
        "invalid_request",
    )
    .await;
    api.problem(
        "POST",
        &format!(
            "/admin/webhooks/{id}/deliveries/{}/redeliver",
            Uuid::now_v7()
        ),
        None,
        404,
        "delivery_not_found",
    )
    .await;
    api.problem(
        "POST",
        &format!("/admin/webhooks/{id}/replay"),
        Some(r#"{"from_position": -1}"#),
        400,
        "invalid_request",
    )
    .await;
    api.problem(
        "POST",
        &format!("/admin/webhooks/{id}/replay"),
        Some("{}"),
        400,
        "invalid_request",
    )
    .await;
    let (status, _, _, replayed) = api
        .call(
            "POST",
            &format!("/admin/webhooks/{id}/replay"),
            Some(TOKEN),
            Some(r#"{"from_position": 0}"#),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["enqueued"], 0);
    assert_eq!(replayed["generation"], 1);
    // The replay is a job with its own URL; nothing runs it here, so it stays where it
    // started unless its range is empty.
    let replay_id = replayed["id"].as_str().expect("a replay id").to_string();
    let (status, _, _, job) = api
        .call(
            "GET",
            &format!("/admin/webhooks/{id}/replays/{replay_id}"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job, replayed);
    let (status, _, _, list) = api
        .call(
            "GET",
            &format!("/admin/webhooks/{id}/replays"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["replays"][0]["id"], replay_id.as_str());
    api.problem(
        "GET",
        &format!("/admin/webhooks/{id}/replays/{}", Uuid::now_v7()),
        None,
        404,
        "replay_not_found",
    )
    .await;
    api.problem(
        "GET",
        &format!("/admin/webhooks/{id}/replays?limit=0"),
        None,
        400,
        "invalid_request",
    )
    .await;

    // Unknown and malformed ids; delete.
    let unknown = Uuid::now_v7();
    api.problem(
        "GET",
        &format!("/admin/webhooks/{unknown}"),
        None,
        404,
        "webhook_not_found",
    )
    .await;
    api.problem(
        "GET",
        "/admin/webhooks/not-an-id",
        None,
        404,
        "webhook_not_found",
    )
    .await;
    api.problem(
        "GET",
        &format!("/admin/webhooks/{unknown}/deliveries"),
        None,
        404,
        "webhook_not_found",
    )
    .await;
    let (status, _, _, _) = api
        .call(
            "DELETE",
            &format!("/admin/webhooks/{id}"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    api.problem(
        "DELETE",
        &format!("/admin/webhooks/{id}"),
        None,
        404,
        "webhook_not_found",
    )
    .await;
    let (_, _, _, listed) = api.call("GET", "/admin/webhooks", Some(TOKEN), None).await;
    assert_eq!(listed["webhooks"], json!([]));
}

#[tokio::test]
async fn a_subscription_made_through_the_api_receives_signed_events() {
    for kind in BACKENDS {
        let Some(mut f) = fixture(kind, test_config()).await else {
            continue;
        };
        let api = Api::new(&f.store);
        // The receiver learns the generated secret from the API's answer, so it starts
        // on a placeholder URL first and the subscription is pointed at it afterwards.
        let (status, _, _, created) = api
            .call(
                "POST",
                "/admin/webhooks",
                Some(TOKEN),
                Some(r#"{"url": "http://127.0.0.1:9/placeholder", "event_types": ["order.OrderPlaced"]}"#),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let id = created["id"].as_str().unwrap();
        let secret = WebhookSecret::parse(created["secret"].as_str().unwrap()).unwrap();
        let receiver = Receiver::ok(secret, f.clock.clone()).await;
        let (status, _, _, _) = api
            .call(
                "PATCH",
                &format!("/admin/webhooks/{id}"),
                Some(TOKEN),
                Some(&json!({ "url": receiver.url }).to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let placed = f.append("order", "o-1", "OrderPlaced").await;
        f.append("order", "o-1", "OrderCancelled").await;
        f.fan_out().await;
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 1);
        receiver.assert_all_verified();
        let log = receiver.log();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].message.data.position, placed);
        assert_eq!(log[0].message.kind, "order.OrderPlaced");

        let (status, _, _, page) = api
            .call(
                "GET",
                &format!("/admin/webhooks/{id}/deliveries"),
                Some(TOKEN),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let delivery = &page["deliveries"][0];
        assert_eq!(delivery["status"], "delivered");
        assert_eq!(delivery["event_id"], log[0].id.as_str());
        assert_eq!(delivery["attempt_log"][0]["status_code"], 200);
        let delivery_id = delivery["id"].as_str().unwrap();
        let (status, _, _, redelivered) = api
            .call(
                "POST",
                &format!("/admin/webhooks/{id}/deliveries/{delivery_id}/redeliver"),
                Some(TOKEN),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{redelivered}");
        assert_eq!(redelivered["status"], "pending");
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 1);
        let (_, _, _, one) = api
            .call(
                "GET",
                &format!("/admin/webhooks/{id}/deliveries/{delivery_id}"),
                Some(TOKEN),
                None,
            )
            .await;
        assert_eq!(one["attempt_log"].as_array().unwrap().len(), 2);
        assert_eq!(receiver.log()[1].id, log[0].id);
    }
}

#[tokio::test]
async fn delivery_pages_continue_below_the_cursor() {
    let Some(mut f) = fixture(BackendKind::Sqlite, test_config()).await else {
        return;
    };
    let secret = WebhookSecret::generate();
    let sub = f.subscribe("http://127.0.0.1:9/unused", &[], &secret).await;
    for n in 0..5 {
        f.append("order", &format!("o-{n}"), "OrderPlaced").await;
    }
    f.fan_out().await;
    admin::replay(&f.store, sub.id, 3).await.unwrap();
    let mut seen = Vec::new();
    let mut query = DeliveryQuery {
        limit: Some(3),
        ..DeliveryQuery::default()
    };
    loop {
        let page = admin::deliveries(&f.store, sub.id, query.clone())
            .await
            .unwrap();
        seen.extend(
            page.deliveries
                .iter()
                .map(|d| (d.delivery.position, d.delivery.generation)),
        );
        let Some(next) = page.next else { break };
        query.before_position = Some(next.before_position);
        query.before_generation = Some(next.before_generation);
    }
    assert_eq!(
        seen,
        [(5, 1), (5, 0), (4, 1), (4, 0), (3, 0), (2, 0), (1, 0)]
    );
    let delivered = admin::deliveries(
        &f.store,
        sub.id,
        DeliveryQuery {
            status: Some(DeliveryStatus::Delivered),
            ..DeliveryQuery::default()
        },
    )
    .await
    .unwrap();
    assert!(delivered.deliveries.is_empty());
}

// ---------------------------------------------------------------------------------------
// Through the engine, as `commerce serve` runs it.

/// The engine's consumer runtime fans events out and its dispatcher delivers them:
/// embedded (local feed) or distributed (relay to JetStream, durable consumer).
async fn the_engine_delivers_webhooks(kind: BackendKind, over_jetstream: bool) {
    use api::engine::{Engine, NatsArgs};
    let Some(f) = fixture(kind, test_config()).await else {
        return;
    };
    let mut args = NatsArgs::default_embedded();
    let id = Uuid::now_v7().simple().to_string();
    let id = &id[id.len() - 12..];
    if over_jetstream {
        let Some(_) = tests::nats().await else {
            return;
        };
        args.nats_url = Some(tests::test_nats_url());
        args.jetstream_stream = format!("TEST_{id}");
        args.jetstream_subject_prefix = format!("t{id}");
        args.dlq_stream = format!("TEST_{id}_DLQ");
        args.jetstream_max_age_secs = 3600;
    }
    let secret = WebhookSecret::generate();
    let receiver = Receiver::ok(secret.clone(), f.clock.clone()).await;
    f.subscribe(&receiver.url, &["order.*"], &secret).await;
    let mut engine = Engine::start(f.store.clone(), &args).await.unwrap();
    engine.run_webhooks(test_config()).unwrap();

    let mut expected = Vec::new();
    for (stream_type, stream_id) in [
        ("order", "o1"),
        ("cart", "c1"),
        ("order", "o2"),
        ("order", "o1"),
    ] {
        f.append(stream_type, stream_id, "Noted").await;
        if stream_type == "order" {
            let events = f
                .store
                .read_stream(&StreamRef::new(stream_type, stream_id), 0)
                .await
                .unwrap();
            expected.push(events.last().unwrap().event_id.to_string());
        }
    }
    let delivered = eventually(Duration::from_secs(20), || async {
        let ids: Vec<String> = receiver.accepted().into_iter().map(|r| r.id).collect();
        (ids.len() >= expected.len()).then_some(ids)
    })
    .await
    .expect("every order event delivered");
    tokio::time::sleep(Duration::from_millis(100)).await;
    engine.stop(Duration::from_secs(5)).await;

    assert_eq!(
        receiver.accepted().len(),
        3,
        "each event once, the cart event filtered out"
    );
    let o1: Vec<&String> = delivered
        .iter()
        .filter(|id| **id == expected[0] || **id == expected[2])
        .collect();
    assert_eq!(o1, vec![&expected[0], &expected[2]], "o1's events in order");
    assert_eq!(
        delivered.iter().collect::<HashSet<_>>(),
        expected.iter().collect::<HashSet<_>>()
    );
    if over_jetstream {
        let context = async_nats::jetstream::new(tests::nats().await.unwrap());
        let _ = context.delete_stream(&args.jetstream_stream).await;
        let _ = context.delete_stream(&args.dlq_stream).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_delivers_webhooks_embedded_on_sqlite() {
    the_engine_delivers_webhooks(BackendKind::Sqlite, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_engine_delivers_webhooks_over_jetstream_on_postgres() {
    the_engine_delivers_webhooks(BackendKind::Postgres, true).await;
}

// ---------------------------------------------------------------------------------------
// Hardening (issue 13).

/// Appends one event to a stream of its own (version 0 → 1); returns its position.
async fn append_fresh(store: &Store, stream_id: &str) -> i64 {
    let stream = StreamRef::new("order", stream_id);
    store
        .append(
            &stream,
            0,
            vec![NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "Noted".into(),
                schema_version: 1,
                payload: json!({ "stream": stream_id }),
                metadata: BTreeMap::new(),
            }],
            None,
        )
        .await
        .unwrap()
        .last_position
}

/// Every delivery of a subscription, over all pages.
async fn all_deliveries(store: &Store, subscription: Uuid) -> Vec<DeliveryRecord> {
    let mut all = Vec::new();
    let mut query = DeliveryQuery {
        limit: Some(200),
        ..DeliveryQuery::default()
    };
    loop {
        let page = admin::deliveries(store, subscription, query.clone())
            .await
            .unwrap();
        all.extend(page.deliveries);
        match page.next {
            Some(cursor) => {
                query.before_position = Some(cursor.before_position);
                query.before_generation = Some(cursor.before_generation);
            }
            None => return all,
        }
    }
}

tokio::task_local! {
    /// Set around an `admin::create` call: whether [`InterleavingClock`] still has to
    /// land its event in it.
    static INTERLEAVE: std::cell::Cell<bool>;
}

/// A clock that lands an event in the middle of a subscription's creation: the first
/// time a creation armed with [`INTERLEAVE`] asks for the time, it appends an event and
/// waits until the fan-out has handled it. This makes "an event committed and fanned out
/// while the subscription is being created" happen every time instead of by luck.
struct InterleavingClock {
    inner: ManualClock,
    store: std::sync::OnceLock<Store>,
    fanned_out: Arc<AtomicI64>,
}

impl std::fmt::Debug for InterleavingClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterleavingClock").finish_non_exhaustive()
    }
}

impl Clock for InterleavingClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let fire = INTERLEAVE
            .try_with(|armed| armed.replace(false))
            .unwrap_or(false);
        if let (true, Some(store)) = (fire, self.store.get()) {
            let handle = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let position = append_fresh(store, &format!("mid-{}", Uuid::now_v7())).await;
                    eventually(Duration::from_secs(30), || async {
                        (self.fanned_out.load(Ordering::SeqCst) >= position).then_some(())
                    })
                    .await
                    .unwrap_or_else(|| {
                        panic!(
                            "the fan-out did not handle position {position} (at {})",
                            self.fanned_out.load(Ordering::SeqCst)
                        )
                    });
                })
            });
        }
        self.inner.now()
    }
}

/// Subscriptions created while events are appended (by busy writers, and one landed in
/// the middle of each creation) and fanned out as they come: each subscription gets a
/// delivery of every event after its start position. Reading the head before the
/// subscription row committed let the fan-out settle an event in between without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_created_during_appends_miss_no_later_event() {
    use std::sync::atomic::AtomicBool;
    for kind in BACKENDS {
        let fanned_out = Arc::new(AtomicI64::new(0));
        let clock = Arc::new(InterleavingClock {
            inner: tests::test_clock(),
            store: std::sync::OnceLock::new(),
            fanned_out: fanned_out.clone(),
        });
        let Some(store) = fresh_store(kind, StoreConfig::default(), clock.clone()).await else {
            continue;
        };
        clock.store.set(store.clone()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let appenders: Vec<_> = (0..1)
            .map(|a| {
                let (store, stop) = (store.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        append_fresh(&store, &format!("busy-{a}-{n}")).await;
                        n += 1;
                        // Busy, but not so busy that the fan-out falls far behind.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    n
                })
            })
            .collect();
        // The fan-out, as the consumer runtime runs it, until it has handled `marker`.
        let marker = Arc::new(AtomicI64::new(i64::MAX));
        let fanout = {
            let (store, marker, fanned_out) = (store.clone(), marker.clone(), fanned_out.clone());
            tokio::spawn(async move {
                let fanout = WebhookFanout::new(store.clone());
                let mut feed = LocalFeed::new(&store, 0);
                loop {
                    let delivery = feed.next().await.unwrap();
                    fanout.fan_out(&delivery.envelope).await.unwrap();
                    feed.ack(&delivery).await.unwrap();
                    let position = delivery.envelope.position;
                    fanned_out.fetch_max(position, Ordering::SeqCst);
                    if position >= marker.load(Ordering::SeqCst) {
                        return;
                    }
                }
            })
        };
        let mut subscriptions = Vec::new();
        for i in 0..8 {
            let new = NewSubscription {
                url: format!("http://127.0.0.1:9/hook-{i}"),
                ..NewSubscription::default()
            };
            let created = INTERLEAVE
                .scope(
                    std::cell::Cell::new(true),
                    admin::create(&store, &SecretKeys::default(), new),
                )
                .await
                .unwrap();
            subscriptions.push(created.subscription);
        }
        stop.store(true, Ordering::SeqCst);
        let mut appended = 0;
        for appender in appenders {
            appended += appender.await.unwrap();
        }
        assert!(appended > 0, "events were appended meanwhile");
        let last = append_fresh(&store, "marker").await;
        marker.store(last, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(30), fanout)
            .await
            .expect("the fan-out reaches the marker")
            .unwrap();

        let events = store.read_all(0, 100_000).await.unwrap();
        for subscription in subscriptions {
            // The row as stored: its start position is the one the fan-out used.
            let stored = admin::get(&store, subscription.id).await.unwrap();
            let expected: HashSet<Uuid> = events
                .iter()
                .filter(|e| e.position > stored.start_position)
                .map(|e| e.event_id)
                .collect();
            let delivered: HashSet<Uuid> = all_deliveries(&store, subscription.id)
                .await
                .into_iter()
                .map(|d| d.delivery.event_id)
                .collect();
            let missing: Vec<&Uuid> = expected.difference(&delivered).collect();
            assert!(
                missing.is_empty(),
                "{kind:?}: subscription {} (start {}) missed {} events after its start",
                subscription.id,
                stored.start_position,
                missing.len()
            );
        }
    }
}

/// A receiver answering 200 with `body`.
async fn body_receiver(body: &'static [u8]) -> (String, JoinHandle<()>) {
    let router = Router::new().route("/hook", post(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (format!("http://{addr}/hook"), server)
}

/// A NUL byte in the answer is stored (as U+FFFD) with the attempt, which counts: the
/// delivery is delivered once, not POSTed again and again because its record failed.
#[tokio::test]
async fn a_nul_byte_in_the_answer_is_recorded_and_the_attempt_counts() {
    for kind in BACKENDS {
        let Some(mut f) = fixture(kind, test_config()).await else {
            continue;
        };
        let (url, server) = body_receiver(b"ok\0").await;
        let secret = WebhookSecret::generate();
        let subscription = f.subscribe(&url, &[], &secret).await;
        f.append("order", "o1", "Noted").await;
        f.settle().await;
        f.fan_out().await;
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 1, "{kind:?}");
        assert_eq!(
            f.dispatcher.deliver_due().await.unwrap(),
            0,
            "nothing left due"
        );
        let records = f.deliveries(subscription.id).await;
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!(
            record.delivery.status,
            DeliveryStatus::Delivered,
            "{kind:?}"
        );
        assert_eq!(record.delivery.attempts, 1);
        assert_eq!(record.attempt_log.len(), 1);
        assert_eq!(
            record.attempt_log[0].response_excerpt.as_deref(),
            Some("ok\u{fffd}")
        );
        server.abort();
    }
}

/// Without the allow-list a delivery to 127.0.0.1 (literal or by name) fails, and the
/// attempt says why; with it, the same delivery arrives.
#[tokio::test]
async fn loopback_is_refused_unless_allowed() {
    for kind in BACKENDS {
        let closed = WebhookConfig {
            allow_networks: AllowList::default(),
            ..test_config()
        };
        let Some(mut f) = fixture(kind, closed).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        let receiver = Receiver::ok(secret.clone(), f.clock.clone()).await;
        let by_name = receiver.url.replace("127.0.0.1", "localhost");
        let literal = f.subscribe(&receiver.url, &[], &secret).await;
        let named = f.subscribe(&by_name, &[], &secret).await;
        f.append("order", "o1", "Noted").await;
        f.settle().await;
        f.fan_out().await;
        f.dispatcher.deliver_due().await.unwrap();
        assert!(
            receiver.log().is_empty(),
            "{kind:?}: nothing reached 127.0.0.1"
        );
        for subscription in [literal.id, named.id] {
            let records = f.deliveries(subscription).await;
            let attempt = &records[0].attempt_log[0];
            let error = attempt.error.as_deref().unwrap_or_default();
            assert!(
                error.contains("loopback") && error.contains("allow-list"),
                "{kind:?}: {error}"
            );
            assert_eq!(attempt.status_code, None);
        }
        assert_eq!(
            f.deliveries(literal.id).await[0].delivery.status,
            DeliveryStatus::Failed,
            "an address literal cannot change: final"
        );

        // The same store, with a dispatcher that allows loopback: redelivered, it arrives.
        let open = WebhookDispatcher::new(f.store.clone(), test_config()).unwrap();
        let failed = f.deliveries(literal.id).await[0].delivery.id;
        admin::redeliver(&f.store, literal.id, failed)
            .await
            .unwrap();
        open.deliver_due().await.unwrap();
        assert_eq!(receiver.accepted().len(), 1);
        assert_eq!(
            f.deliveries(literal.id).await[0].delivery.status,
            DeliveryStatus::Delivered
        );
        receiver.assert_all_verified();
    }
}

/// A running dispatcher prunes finished deliveries once they are older than the
/// retention, on its own schedule; pending ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_dispatcher_prunes_finished_deliveries_past_retention() {
    for kind in BACKENDS {
        let config = WebhookConfig {
            retention: Some(Duration::from_secs(24 * 3600)),
            prune_interval: Duration::from_millis(20),
            ..test_config()
        };
        let Some(mut f) = fixture(kind, config.clone()).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        let receiver = Receiver::ok(secret.clone(), f.clock.clone()).await;
        let delivered = f.subscribe(&receiver.url, &["order.*"], &secret).await;
        f.append("order", "o1", "Noted").await;
        f.settle().await;
        f.fan_out().await;
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 1);
        // A pending delivery of a disabled subscription: never pruned, whatever its age.
        let pending = f.subscribe(&receiver.url, &["cart.*"], &secret).await;
        f.append("cart", "c1", "Noted").await;
        f.settle().await;
        f.fan_out().await;
        admin::update(
            &f.store,
            &f.keys,
            pending.id,
            SubscriptionUpdate {
                enabled: Some(false),
                ..SubscriptionUpdate::default()
            },
        )
        .await
        .unwrap();

        let dispatcher = WebhookDispatcher::new(f.store.clone(), config.clone()).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(async move {
            dispatcher
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        // Within the retention: kept.
        f.clock.advance(chrono::Duration::hours(23));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(f.deliveries(delivered.id).await.len(), 1, "{kind:?}");
        f.clock.advance(chrono::Duration::hours(2));
        let pruned = eventually(Duration::from_secs(10), || async {
            f.deliveries(delivered.id).await.is_empty().then_some(())
        })
        .await;
        assert!(pruned.is_some(), "{kind:?}: the delivered one is pruned");
        let left = f.deliveries(pending.id).await;
        assert_eq!(left.len(), 1, "{kind:?}: the pending one stays");
        assert_eq!(left[0].delivery.status, DeliveryStatus::Pending);
        stop.send(()).unwrap();
        run.await.unwrap().unwrap();
    }
}

/// Manual redeliveries stop at `MAX_ATTEMPTS_PER_DELIVERY` logged attempts.
#[tokio::test]
async fn manual_redeliveries_are_bounded() {
    use infra::webhook::MAX_ATTEMPTS_PER_DELIVERY;
    for kind in BACKENDS {
        let Some(mut f) = fixture(kind, test_config()).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        let receiver = Receiver::ok(secret.clone(), f.clock.clone()).await;
        let subscription = f.subscribe(&receiver.url, &[], &secret).await;
        f.append("order", "o1", "Noted").await;
        f.settle().await;
        f.fan_out().await;
        f.dispatcher.deliver_due().await.unwrap();
        let id = f.deliveries(subscription.id).await[0].delivery.id;
        for _ in 1..MAX_ATTEMPTS_PER_DELIVERY {
            admin::redeliver(&f.store, subscription.id, id)
                .await
                .unwrap();
            assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 1);
        }
        let refused = admin::redeliver(&f.store, subscription.id, id).await;
        assert!(
            matches!(&refused, Err(WebhookError::Invalid(why)) if why.contains("attempted 100 times")),
            "{kind:?}: {refused:?}"
        );
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 0);
        assert_eq!(
            receiver.accepted().len() as i64,
            MAX_ATTEMPTS_PER_DELIVERY,
            "{kind:?}"
        );
    }
}

/// An attempt the database refuses to store (here a trigger refuses its excerpt) is
/// stored again as a failed attempt: it counts, retries follow the schedule, and the
/// delivery fails for good after its attempts instead of being POSTed again and again.
#[tokio::test]
async fn an_attempt_the_database_refuses_is_recorded_as_failed() {
    for kind in BACKENDS {
        let config = WebhookConfig {
            retry_schedule: vec![Duration::from_secs(1), Duration::from_secs(1)],
            ..test_config()
        };
        let Some(mut f) = fixture(kind, config).await else {
            continue;
        };
        if let Some(pool) = f.store.pg_pool() {
            sqlx::raw_sql(
                "CREATE FUNCTION refuse_excerpt() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN \
                   IF NEW.response_excerpt LIKE '%refuse-me%' THEN \
                     RAISE EXCEPTION 'excerpt refused'; \
                   END IF; \
                   RETURN NEW; \
                 END $$; \
                 CREATE TRIGGER refuse_excerpt BEFORE INSERT ON webhook_attempts \
                   FOR EACH ROW EXECUTE FUNCTION refuse_excerpt();",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        if let Some(pool) = f.store.sqlite_pool() {
            sqlx::raw_sql(
                "CREATE TRIGGER refuse_excerpt BEFORE INSERT ON webhook_attempts \
                 WHEN NEW.response_excerpt LIKE '%refuse-me%' \
                 BEGIN SELECT RAISE(ABORT, 'excerpt refused'); END;",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        let (url, server) = body_receiver(b"refuse-me").await;
        let secret = WebhookSecret::generate();
        let subscription = f.subscribe(&url, &[], &secret).await;
        f.append("order", "o1", "Noted").await;
        f.settle().await;
        f.fan_out().await;
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 1, "{kind:?}");
        let record = &f.deliveries(subscription.id).await[0];
        assert_eq!(record.delivery.status, DeliveryStatus::Pending, "{kind:?}");
        assert_eq!(record.delivery.attempts, 1, "the attempt counted");
        let attempt = &record.attempt_log[0];
        assert_eq!(attempt.status_code, Some(200));
        assert_eq!(attempt.response_excerpt, None);
        let error = attempt.error.as_deref().unwrap_or_default();
        assert!(error.contains("could not be recorded"), "{kind:?}: {error}");

        let attempts = f.deliver_over(5, chrono::Duration::seconds(2)).await;
        assert_eq!(attempts, 2, "{kind:?}: the two retries, then no more");
        let record = &f.deliveries(subscription.id).await[0];
        assert_eq!(record.delivery.status, DeliveryStatus::Failed, "{kind:?}");
        assert_eq!(record.attempt_log.len(), 3);
        server.abort();
    }
}

/// The stored secret of one subscription, as the database holds it.
async fn stored_secret(store: &Store, subscription: Uuid) -> String {
    let sql = "SELECT secret FROM webhook_subscriptions WHERE id = $1";
    match (store.pg_pool(), store.sqlite_pool()) {
        (Some(pool), _) => {
            sqlx::query_scalar(sql)
                .bind(subscription)
                .fetch_one(pool)
                .await
        }
        (_, Some(pool)) => {
            sqlx::query_scalar(sql)
                .bind(subscription)
                .fetch_one(pool)
                .await
        }
        _ => unreachable!("a store has one backend"),
    }
    .unwrap()
}

/// With keys configured, the database holds signing secrets only sealed, deliveries are
/// still signed with the real secret, and after a rotation `reseal` moves every secret to
/// the new key so the old one can be dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signing_secrets_are_sealed_at_rest_and_survive_a_key_rotation() {
    // 32-byte keys: all ones and all twos.
    let key = |byte: u8| match byte {
        1 => "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        _ => "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=",
    };
    let old = SecretKeys::parse(&format!("old:{}", key(1))).unwrap();
    let rotated = SecretKeys::parse(&format!("new:{},old:{}", key(2), key(1))).unwrap();
    let only_new = SecretKeys::parse(&format!("new:{}", key(2))).unwrap();
    for kind in BACKENDS {
        let config = WebhookConfig {
            secret_keys: old.clone(),
            ..test_config()
        };
        let Some(mut f) = fixture(kind, config).await else {
            continue;
        };
        let secret = WebhookSecret::generate();
        let receiver = Receiver::ok(secret.clone(), f.clock.clone()).await;
        let sub = f.subscribe(&receiver.url, &["order.*"], &secret).await;
        let stored = stored_secret(&f.store, sub.id).await;
        assert!(stored.starts_with("sealed:v1:old:"), "{kind:?}: {stored}");
        let key_text = secret.expose().trim_start_matches("whsec_");
        assert!(
            !stored.contains(key_text),
            "{kind:?}: the secret is in clear"
        );

        f.append("order", "o-1", "OrderPlaced").await;
        f.fan_out().await;
        assert_eq!(f.dispatcher.deliver_due().await.unwrap(), 1);

        // Rotation: the new key goes first, reseal, then the old key is dropped.
        assert_eq!(
            admin::reseal(&f.store, &rotated).await.unwrap(),
            1,
            "{kind:?}"
        );
        assert_eq!(
            admin::reseal(&f.store, &rotated).await.unwrap(),
            0,
            "{kind:?}"
        );
        let stored = stored_secret(&f.store, sub.id).await;
        assert!(stored.starts_with("sealed:v1:new:"), "{kind:?}: {stored}");
        let dispatcher = WebhookDispatcher::new(
            f.store.clone(),
            WebhookConfig {
                secret_keys: only_new.clone(),
                ..test_config()
            },
        )
        .unwrap();
        f.append("order", "o-1", "OrderUpdated").await;
        f.fan_out().await;
        assert_eq!(dispatcher.deliver_due().await.unwrap(), 1);
        assert_eq!(receiver.log().len(), 2, "{kind:?}");
        receiver.assert_all_verified();
    }
}
