//! The consumer runtime: retries, dead letters, parking, per-stream order and shared
//! durable consumers, on the local feed (PostgreSQL and SQLite) and on JetStream.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use infra::consumer::{
    inbox, retention, Consumer, ConsumerConfig, DeadLetterError, DeadLetterQueue, DeadLetterStatus,
    DeadLetterStream, Handler, HandlerError, Ordering, Tx, TxConn,
};
use infra::feed::Envelope;
use infra::relay::Relay;
use infra::store::{NewEvent, StoreConfig, StreamRef};
use infra::{Store, SystemClock};
use serde_json::json;
use tests::{eventually, fresh_store, nats, BackendKind};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How the test handler should treat one event, by (stream id, version).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    /// Fail this many times with a retryable error, then succeed.
    FailTimes(u32),
    /// Fail permanently until [`Recorder::heal`] is called.
    Broken,
}

#[derive(Debug, Default)]
struct State {
    plans: HashMap<(String, i64), Plan>,
    calls: HashMap<(String, i64), u32>,
    /// Successful handles, in order.
    handled: Vec<(String, i64)>,
    /// Events being handled right now (to catch double handling at once).
    in_progress: HashSet<Uuid>,
    overlaps: u32,
}

/// A handler that records what it handled and fails as planned.
struct Recorder {
    name: String,
    ordering: Ordering,
    work: Duration,
    state: Mutex<State>,
}

impl Recorder {
    fn new(name: &str, ordering: Ordering) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            ordering,
            work: Duration::ZERO,
            state: Mutex::default(),
        })
    }

    fn plan(&self, stream_id: &str, version: i64, plan: Plan) {
        let mut state = self.state.lock().unwrap();
        state.plans.insert((stream_id.to_string(), version), plan);
    }

    fn heal(&self) {
        self.state.lock().unwrap().plans.clear();
    }

    fn handled(&self) -> Vec<(String, i64)> {
        self.state.lock().unwrap().handled.clone()
    }

    fn calls(&self, stream_id: &str, version: i64) -> u32 {
        let state = self.state.lock().unwrap();
        state
            .calls
            .get(&(stream_id.to_string(), version))
            .copied()
            .unwrap_or(0)
    }

    fn versions_of(&self, stream_id: &str) -> Vec<i64> {
        self.handled()
            .into_iter()
            .filter(|(s, _)| s == stream_id)
            .map(|(_, v)| v)
            .collect()
    }
}

impl Handler for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    fn ordering(&self) -> Ordering {
        self.ordering
    }

    fn wants(&self, envelope: &Envelope) -> bool {
        envelope.event_type != "Ignored"
    }

    async fn handle(&self, _tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        let key = (envelope.stream_id.clone(), envelope.version);
        {
            let mut state = self.state.lock().unwrap();
            if !state.in_progress.insert(envelope.event_id) {
                state.overlaps += 1;
            }
        }
        if !self.work.is_zero() {
            tokio::time::sleep(self.work).await;
        }
        let mut state = self.state.lock().unwrap();
        state.in_progress.remove(&envelope.event_id);
        let calls = {
            let calls = state.calls.entry(key.clone()).or_default();
            *calls += 1;
            *calls
        };
        match state.plans.get(&key).copied() {
            Some(Plan::Broken) => Err(HandlerError::permanent(format!(
                "cannot project {}/{}",
                key.0, key.1
            ))),
            Some(Plan::FailTimes(n)) if calls <= n => {
                Err(HandlerError::retry(format!("transient failure {calls}")))
            }
            _ => {
                state.handled.push(key);
                Ok(())
            }
        }
    }
}

fn fast_config() -> ConsumerConfig {
    ConsumerConfig {
        max_attempts: 3,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        handler_timeout: Duration::from_secs(5),
        not_next_delay: Duration::from_millis(20),
        maintenance_interval: Duration::from_millis(20),
        claim_timeout: Duration::from_secs(60),
        ack_wait: None,
        lease_retry: Duration::from_millis(50),
        concurrency: 1,
    }
}

async fn store(kind: BackendKind) -> Option<Store> {
    fresh_store(kind, StoreConfig::default(), Arc::new(SystemClock)).await
}

/// Appends `count` events to stream `id` (type `order`), continuing its versions. Events
/// whose version is in `ignored` get the type the recorder does not want.
async fn append(store: &Store, id: &str, count: i64, ignored: &[i64]) {
    let stream = StreamRef::new("order", id);
    let version = store.read_stream(&stream, 0).await.unwrap().len() as i64;
    let events = (1..=count)
        .map(|n| NewEvent {
            event_id: Uuid::now_v7(),
            event_type: if ignored.contains(&(version + n)) {
                "Ignored"
            } else {
                "Noted"
            }
            .into(),
            schema_version: 1,
            payload: json!({ "n": version + n }),
            metadata: BTreeMap::new(),
        })
        .collect();
    store.append(&stream, version, events, None).await.unwrap();
}

/// A consumer running on the local feed until the returned sender fires.
fn spawn_local(consumer: Consumer<Recorder>) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let feed = consumer.local_feed(0).await.unwrap();
        consumer
            .run(feed, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, task)
}

async fn stop(running: (oneshot::Sender<()>, JoinHandle<()>)) {
    let _ = running.0.send(());
    running.1.await.unwrap();
}

async fn wait_handled(recorder: &Recorder, count: usize) {
    let got = eventually(Duration::from_secs(20), || async {
        (recorder.handled().len() >= count).then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "expected {count} handled, got {:?}",
        recorder.handled()
    );
}

async fn letters(
    dlq: &DeadLetterQueue,
    consumer: &str,
    statuses: &[DeadLetterStatus],
) -> Vec<(DeadLetterStatus, String, i64)> {
    dlq.list(Some(consumer), statuses, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.status, l.stream.stream_id, l.version))
        .collect()
}

async fn transient_failures_are_retried_in_order(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    append(&store, "a", 4, &[2]).await;
    append(&store, "b", 2, &[]).await;
    let recorder = Recorder::new("projector", Ordering::PerStream);
    recorder.plan("a", 1, Plan::FailTimes(2));
    let consumer = Consumer::new(store.clone(), recorder.clone(), fast_config()).unwrap();
    let running = spawn_local(consumer.clone());
    wait_handled(&recorder, 5).await;
    stop(running).await;

    assert_eq!(
        recorder.versions_of("a"),
        vec![1, 3, 4],
        "version 2 is not wanted"
    );
    assert_eq!(recorder.versions_of("b"), vec![1, 2]);
    assert_eq!(recorder.calls("a", 1), 3, "two failures, then success");
    let dlq = DeadLetterQueue::new(store.clone());
    assert!(letters(&dlq, "projector", &DeadLetterStatus::ALL)
        .await
        .is_empty());

    // A restart resumes after what it settled: nothing is handled twice.
    append(&store, "a", 1, &[]).await;
    let running = spawn_local(consumer);
    wait_handled(&recorder, 6).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop(running).await;
    assert_eq!(recorder.versions_of("a"), vec![1, 3, 4, 5]);
    assert_eq!(recorder.handled().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_transient_failures_are_retried_in_order() {
    transient_failures_are_retried_in_order(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_transient_failures_are_retried_in_order() {
    transient_failures_are_retried_in_order(BackendKind::Sqlite).await;
}

async fn a_dead_letter_parks_its_stream_until_retried(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let recorder = Recorder::new("search", Ordering::PerStream);
    recorder.plan("a", 2, Plan::Broken);
    recorder.plan("c", 1, Plan::FailTimes(10));
    append(&store, "a", 4, &[]).await;
    append(&store, "b", 3, &[]).await;
    append(&store, "c", 2, &[]).await;
    let consumer = Consumer::new(store.clone(), recorder.clone(), fast_config()).unwrap();
    let running = spawn_local(consumer.clone());
    let dlq = DeadLetterQueue::new(store.clone());

    // a/2 is dead at once (permanent), c/1 after three attempts; their later events are
    // parked, stream b is not held back.
    let open = eventually(Duration::from_secs(20), || async {
        let open = letters(&dlq, "search", &DeadLetterStatus::OPEN).await;
        (open.len() == 5 && recorder.handled().len() == 4).then_some(open)
    })
    .await
    .expect("two dead letters and three parked events");
    let letter = |status, stream: &str, version| (status, stream.to_string(), version);
    assert_eq!(
        open,
        vec![
            letter(DeadLetterStatus::Dead, "a", 2),
            letter(DeadLetterStatus::Parked, "a", 3),
            letter(DeadLetterStatus::Parked, "a", 4),
            letter(DeadLetterStatus::Dead, "c", 1),
            letter(DeadLetterStatus::Parked, "c", 2),
        ]
    );
    assert_eq!(recorder.versions_of("a"), vec![1]);
    assert_eq!(recorder.versions_of("b"), vec![1, 2, 3]);
    assert_eq!(recorder.calls("c", 1), 3);
    let all = dlq
        .list(Some("search"), &DeadLetterStatus::OPEN, 0, 100)
        .await
        .unwrap();
    let dead_a = all
        .iter()
        .find(|l| l.stream.stream_id == "a" && l.version == 2)
        .unwrap();
    assert_eq!(dead_a.status, DeadLetterStatus::Dead);
    assert_eq!(dead_a.error.as_deref(), Some("cannot project a/2"));
    assert_eq!(dead_a.attempts, 1);
    assert_eq!(dead_a.envelope.payload, json!({ "n": 2 }));
    let dead_c = all.iter().find(|l| l.stream.stream_id == "c").unwrap();
    assert_eq!(dead_c.attempts, 3);

    // New events of a parked stream are parked too.
    append(&store, "a", 1, &[]).await;
    eventually(Duration::from_secs(10), || async {
        (letters(&dlq, "search", &[DeadLetterStatus::Parked])
            .await
            .len()
            == 4)
            .then_some(())
    })
    .await
    .expect("a/5 parked");

    // Only dead letters can be retried or discarded.
    let parked = all
        .iter()
        .find(|l| l.status == DeadLetterStatus::Parked)
        .unwrap();
    assert!(matches!(
        dlq.retry(parked.id).await,
        Err(DeadLetterError::WrongStatus { .. })
    ));
    assert!(matches!(
        dlq.discard(987_654).await,
        Err(DeadLetterError::NotFound(_))
    ));

    // Retrying while still broken: one attempt, dead again, nothing released.
    dlq.retry(dead_a.id).await.unwrap();
    eventually(Duration::from_secs(10), || async {
        (dlq.get(dead_a.id).await.unwrap().attempts == 2).then_some(())
    })
    .await
    .expect("the retry was attempted");
    assert_eq!(
        dlq.get(dead_a.id).await.unwrap().status,
        DeadLetterStatus::Dead
    );
    assert_eq!(recorder.versions_of("a"), vec![1]);

    // Healed: a retry handles a/2, then the parked a/3..5 follow in order; c is
    // discarded and c/2 follows without it.
    recorder.heal();
    dlq.retry(dead_a.id).await.unwrap();
    dlq.discard(dead_c.id).await.unwrap();
    wait_handled(&recorder, 9).await;
    stop(running).await;
    assert_eq!(recorder.versions_of("a"), vec![1, 2, 3, 4, 5]);
    assert_eq!(recorder.versions_of("c"), vec![2]);
    assert!(letters(&dlq, "search", &DeadLetterStatus::OPEN)
        .await
        .is_empty());
    assert_eq!(
        dlq.get(dead_a.id).await.unwrap().status,
        DeadLetterStatus::Resolved
    );
    assert_eq!(
        dlq.get(dead_c.id).await.unwrap().status,
        DeadLetterStatus::Discarded
    );
    assert!(matches!(
        dlq.retry(dead_c.id).await,
        Err(DeadLetterError::WrongStatus {
            status: DeadLetterStatus::Discarded,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_dead_letter_parks_its_stream_until_retried() {
    a_dead_letter_parks_its_stream_until_retried(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_dead_letter_parks_its_stream_until_retried() {
    a_dead_letter_parks_its_stream_until_retried(BackendKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unordered_consumer_is_not_held_back_by_a_dead_letter() {
    let Some(store) = store(BackendKind::Sqlite).await else {
        return;
    };
    let recorder = Recorder::new("mailer", Ordering::Unordered);
    recorder.plan("a", 1, Plan::Broken);
    append(&store, "a", 3, &[]).await;
    let consumer = Consumer::new(store.clone(), recorder.clone(), fast_config()).unwrap();
    let running = spawn_local(consumer.clone());
    wait_handled(&recorder, 2).await;
    let dlq = DeadLetterQueue::new(store.clone());
    let open = letters(&dlq, "mailer", &DeadLetterStatus::OPEN).await;
    assert_eq!(open, vec![(DeadLetterStatus::Dead, "a".to_string(), 1)]);
    assert_eq!(recorder.versions_of("a"), vec![2, 3]);

    recorder.heal();
    let id = dlq
        .list(Some("mailer"), &[DeadLetterStatus::Dead], 0, 10)
        .await
        .unwrap()[0]
        .id;
    dlq.retry(id).await.unwrap();
    wait_handled(&recorder, 3).await;
    stop(running).await;
    assert_eq!(recorder.versions_of("a"), vec![2, 3, 1]);
    assert_eq!(
        dlq.get(id).await.unwrap().status,
        DeadLetterStatus::Resolved
    );
}

#[test]
fn consumer_names_and_backoff_are_checked() {
    assert!(infra::consumer::validate_name("search-projection_1").is_ok());
    for bad in ["", "a.b", "a b", "ä", &"x".repeat(65)] {
        assert!(infra::consumer::validate_name(bad).is_err(), "{bad:?}");
    }
    let config = ConsumerConfig::default();
    assert_eq!(config.backoff(1), Duration::from_secs(1));
    assert_eq!(config.backoff(3), Duration::from_secs(4));
    assert_eq!(config.backoff(30), Duration::from_secs(300));
}

/// Two runtimes (separate NATS connections, as separate processes would have) share one
/// durable JetStream consumer: every event is handled exactly once, never by both at
/// once, and each stream in order, despite retried failures and a dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtimes_sharing_a_jetstream_consumer_split_the_work_in_stream_order() {
    let Some(store) = store(BackendKind::Postgres).await else {
        return;
    };
    let Some(client) = nats().await else {
        return;
    };
    let id = Uuid::now_v7().simple().to_string();
    let id = &id[id.len() - 12..];
    let relay_config = tests::scratch_relay_config();
    let relay = Relay::new(store.clone(), client.clone(), relay_config.clone()).unwrap();
    let relay_task = tokio::spawn(async move { relay.run(std::future::pending()).await });

    const STREAMS: usize = 12;
    const PER_STREAM: i64 = 15;
    let recorder = Arc::new(Recorder {
        name: format!("shared-{id}"),
        ordering: Ordering::PerStream,
        work: Duration::from_millis(2),
        state: Mutex::default(),
    });
    for s in 0..STREAMS {
        recorder.plan(&format!("s{s}"), 3 + (s as i64 % 5), Plan::FailTimes(1));
    }
    recorder.plan("s0", 10, Plan::Broken);

    let dlq_stream = format!("TEST_{id}_DLQ");
    let announcements = DeadLetterStream::ensure(
        client.clone(),
        &dlq_stream,
        &format!("t{id}.dlq"),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let mut runtimes = Vec::new();
    for _ in 0..2 {
        let connection = nats().await.unwrap();
        let consumer = Consumer::new(store.clone(), recorder.clone(), fast_config())
            .unwrap()
            .with_dead_letter_stream(announcements.clone());
        let stream = relay_config.stream.clone();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let feed = consumer
                .jetstream_feed(connection, &stream, None, 0)
                .await
                .unwrap();
            consumer
                .run(feed, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
        runtimes.push((stop_tx, task));
    }
    // Interleave appends across streams, a few events at a time.
    for round in 0..5 {
        for s in 0..STREAMS {
            append(&store, &format!("s{s}"), PER_STREAM / 5, &[]).await;
        }
        if round == 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let total = STREAMS * PER_STREAM as usize;
    // s0/10 is dead: s0 stops at 9 (10..15 parked).
    wait_handled(&recorder, total - 6).await;
    let dlq = DeadLetterQueue::new(store.clone());
    let open = eventually(Duration::from_secs(10), || async {
        let open = letters(&dlq, &recorder.name, &DeadLetterStatus::OPEN).await;
        (open.len() == 6).then_some(open)
    })
    .await
    .expect("one dead letter and five parked events");
    assert_eq!(open[0], (DeadLetterStatus::Dead, "s0".to_string(), 10));
    // ... and announced on the dead-letter stream, with the error.
    let announced = jetstream::new(client.clone())
        .get_stream(&dlq_stream)
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .unwrap();
    assert_eq!(
        announced.subject.as_str(),
        format!("t{id}.dlq.{}.order.Noted", recorder.name)
    );
    let header = |name: &str| announced.headers.get(name).unwrap().as_str().to_string();
    assert_eq!(header("commerce-dlq-error"), "cannot project s0/10");
    assert_eq!(header("commerce-dlq-attempts"), "1");
    assert_eq!(header("ce-subject"), "s0");
    let body: Envelope = serde_json::from_slice(&announced.payload).unwrap();
    assert_eq!(body.version, 10);

    recorder.heal();
    let dead = dlq
        .list(Some(&recorder.name), &[DeadLetterStatus::Dead], 0, 10)
        .await
        .unwrap();
    dlq.retry(dead[0].id).await.unwrap();
    wait_handled(&recorder, total).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    for (stop_tx, task) in runtimes {
        let _ = stop_tx.send(());
        task.await.unwrap();
    }
    relay_task.abort();

    let overlaps = recorder.state.lock().unwrap().overlaps;
    assert_eq!(overlaps, 0, "an event was handled twice at once");
    assert_eq!(
        recorder.handled().len(),
        total,
        "every event handled exactly once"
    );
    for s in 0..STREAMS {
        let versions = recorder.versions_of(&format!("s{s}"));
        assert_eq!(
            versions,
            (1..=PER_STREAM).collect::<Vec<_>>(),
            "stream s{s}"
        );
    }
    let _ = jetstream::new(client)
        .delete_stream(&relay_config.stream)
        .await;
}

/// Runs `commerce dlq …` in process and returns its output (or its one-line error).
async fn commerce_dlq(args: &[&str]) -> Result<String, String> {
    use api::cli::{Cli, Command};
    use clap::Parser;
    let cli =
        Cli::try_parse_from(["commerce", "dlq"].iter().chain(args)).map_err(|e| e.to_string())?;
    let Some(Command::Dlq(command)) = cli.command else {
        return Err("not a dlq command".into());
    };
    let mut out = Vec::new();
    api::dlq::run(command, &mut out)
        .await
        .map_err(|e| e.message)?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dlq_command_lists_shows_retries_and_discards() {
    let url = format!("sqlite:{}", tests::temp_path("dlq.db").display());
    let store = Store::connect(&url, StoreConfig::default()).await.unwrap();
    store.migrate().await.unwrap();
    let recorder = Recorder::new("projector", Ordering::PerStream);
    recorder.plan("a", 1, Plan::Broken);
    recorder.plan("b", 1, Plan::Broken);
    append(&store, "a", 2, &[]).await;
    append(&store, "b", 1, &[]).await;
    let consumer = Consumer::new(store.clone(), recorder.clone(), fast_config()).unwrap();
    let running = spawn_local(consumer);
    let dlq = DeadLetterQueue::new(store.clone());
    eventually(Duration::from_secs(10), || async {
        (letters(&dlq, "projector", &DeadLetterStatus::OPEN)
            .await
            .len()
            == 3)
            .then_some(())
    })
    .await
    .expect("a/1 and b/1 dead, a/2 parked");

    let listed = commerce_dlq(&["list", "--database-url", &url, "--json"])
        .await
        .unwrap();
    let rows: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(&str, &str, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap(),
                r["stream_id"].as_str().unwrap(),
                r["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![("dead", "a", 1), ("parked", "a", 2), ("dead", "b", 1)]
    );
    let id = |n: usize| rows[n]["id"].as_i64().unwrap().to_string();
    let table = commerce_dlq(&["list", "--database-url", &url, "--status", "dead"])
        .await
        .unwrap();
    assert_eq!(
        table.lines().count(),
        3,
        "header and two dead letters:\n{table}"
    );
    assert!(table.contains("cannot project a/1"), "{table}");

    let shown = commerce_dlq(&["show", "--database-url", &url, &id(0)])
        .await
        .unwrap();
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["envelope"]["payload"], json!({ "n": 1 }));
    assert_eq!(shown["error"], "cannot project a/1");

    let refused = commerce_dlq(&["retry", "--database-url", &url, &id(1)])
        .await
        .unwrap_err();
    assert!(refused.contains("left as they were"), "{refused}");
    assert!(commerce_dlq(&["show", "--database-url", &url, "999"])
        .await
        .unwrap_err()
        .contains("no dead letter 999"));
    assert!(
        commerce_dlq(&["retry", "--database-url", &url, "--all"])
            .await
            .is_err(),
        "--all needs --consumer"
    );

    recorder.heal();
    let discarded = commerce_dlq(&["discard", "--database-url", &url, &id(2)])
        .await
        .unwrap();
    assert_eq!(discarded.trim(), format!("{}: discarded", id(2)));
    let retried = commerce_dlq(&[
        "retry",
        "--database-url",
        &url,
        "--all",
        "--consumer",
        "projector",
    ])
    .await
    .unwrap();
    assert_eq!(retried.trim(), format!("{}: retry requested", id(0)));
    wait_handled(&recorder, 2).await;
    stop(running).await;
    assert_eq!(
        recorder.handled(),
        vec![("a".to_string(), 1), ("a".to_string(), 2)]
    );
    let all = commerce_dlq(&["list", "--database-url", &url, "--status", "all", "--json"])
        .await
        .unwrap();
    let statuses: Vec<String> = all
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(statuses, vec!["resolved", "resolved", "discarded"]);
}

/// A consumer that starts after existing history handles each stream from the first
/// event after its start, not from version 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_started_late_begins_each_stream_after_its_start() {
    let Some(store) = store(BackendKind::Postgres).await else {
        return;
    };
    append(&store, "a", 3, &[]).await;
    let history = store
        .read_stream(&StreamRef::new("order", "a"), 0)
        .await
        .unwrap();
    let start = history.last().unwrap().position;
    let recorder = Recorder::new("late", Ordering::PerStream);
    let consumer = Consumer::new(store.clone(), recorder.clone(), fast_config()).unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = {
        let consumer = consumer.clone();
        tokio::spawn(async move {
            let feed = consumer.local_feed(start).await.unwrap();
            consumer
                .run(feed, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        })
    };
    append(&store, "a", 2, &[]).await;
    append(&store, "b", 1, &[]).await;
    wait_handled(&recorder, 3).await;
    stop((stop_tx, task)).await;
    assert_eq!(recorder.versions_of("a"), vec![4, 5]);
    assert_eq!(recorder.versions_of("b"), vec![1]);
}

/// A message on the stream that is not an event of this system (no CloudEvents headers)
/// is dropped for good, and the consumer goes on with the events after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_jetstream_message_is_dropped_and_the_consumer_goes_on() {
    let Some(store) = store(BackendKind::Postgres).await else {
        return;
    };
    let Some(client) = nats().await else {
        return;
    };
    let id = Uuid::now_v7().simple().to_string();
    let id = &id[id.len() - 12..];
    let relay_config = tests::scratch_relay_config();
    let relay = Relay::new(store.clone(), client.clone(), relay_config.clone()).unwrap();
    let relay_task = tokio::spawn(async move { relay.run(std::future::pending()).await });
    append(&store, "a", 1, &[]).await;
    let context = jetstream::new(client.clone());
    eventually(Duration::from_secs(10), || async {
        let stream = context.get_stream(&relay_config.stream).await.ok()?;
        (stream.cached_info().state.messages >= 1).then_some(())
    })
    .await
    .expect("the relay published the first event");
    context
        .publish(
            format!("{}.order.Noted", relay_config.subject_prefix),
            "not an event".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    append(&store, "a", 2, &[]).await;

    let recorder = Recorder::new(&format!("strict-{id}"), Ordering::PerStream);
    let consumer = Consumer::new(store.clone(), recorder.clone(), fast_config()).unwrap();
    let feed = consumer
        .jetstream_feed(client.clone(), &relay_config.stream, None, 0)
        .await
        .unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let running = {
        let consumer = consumer.clone();
        tokio::spawn(async move {
            consumer
                .run(feed, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        })
    };
    wait_handled(&recorder, 3).await;
    stop((stop_tx, running)).await;
    relay_task.abort();
    assert_eq!(recorder.versions_of("a"), vec![1, 2, 3]);
    let mut durable = context
        .get_stream(&relay_config.stream)
        .await
        .unwrap()
        .get_consumer::<jetstream::consumer::pull::Config>(consumer.name())
        .await
        .unwrap();
    let info = durable.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 0, "nothing left to redeliver");
    assert_eq!(info.num_pending, 0);
    let _ = context.delete_stream(&relay_config.stream).await;
}

// ---------------------------------------------------------------------------------------
// Exactly-once effects (issue 13, items 5-7)
// ---------------------------------------------------------------------------------------

/// A handler whose effect is a row in the store's database, written through the lent
/// transaction. The effect table has no unique key, so an effect applied twice shows as
/// two rows. Events listed in `stall_once` stall past the handler timeout on their first
/// call, after writing their row.
struct Effector {
    name: String,
    stall_once: Mutex<HashSet<i64>>,
    calls: Mutex<Vec<i64>>,
}

impl Effector {
    fn new(name: &str, stall_once: &[i64]) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            stall_once: Mutex::new(stall_once.iter().copied().collect()),
            calls: Mutex::default(),
        })
    }
}

impl Handler for Effector {
    fn name(&self) -> &str {
        &self.name
    }

    async fn handle(&self, tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        self.calls.lock().unwrap().push(envelope.version);
        infra::on_conn!(tx.conn().await?, conn => {
            sqlx::query("INSERT INTO test_effects (event_id, version) VALUES ($1, $2)")
                .bind(envelope.event_id.to_string())
                .bind(envelope.version)
                .execute(conn)
                .await?;
        });
        let stall = self.stall_once.lock().unwrap().remove(&envelope.version);
        if stall {
            // Past the handler timeout: the runtime drops this future with its row
            // written but not committed.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Ok(())
    }
}

async fn execute(store: &Store, sql: &str) {
    infra::on_db!(store.db(), pool => {
        sqlx::query(sql).execute(pool).await.unwrap();
    });
}

async fn scalar(store: &Store, sql: &str) -> i64 {
    infra::on_db!(store.db(), pool => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap())
}

/// Makes the settle of the event at `position` fail, as a crash between the handler's
/// effect and the runtime's settle would.
async fn inject_settle_crash(store: &Store, kind: BackendKind, position: i64) {
    match kind {
        BackendKind::Postgres => {
            execute(
                store,
                "CREATE FUNCTION inject_settle_crash() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'injected crash before the settle'; END $$",
            )
            .await;
            execute(
                store,
                &format!(
                    "CREATE TRIGGER inject_settle_crash BEFORE UPDATE ON consumers FOR EACH ROW \
                     WHEN (NEW.position = {position}) EXECUTE FUNCTION inject_settle_crash()"
                ),
            )
            .await;
        }
        BackendKind::Sqlite => {
            execute(
                store,
                &format!(
                    "CREATE TRIGGER inject_settle_crash BEFORE UPDATE ON consumers \
                     WHEN NEW.position = {position} \
                     BEGIN SELECT RAISE(ABORT, 'injected crash before the settle'); END"
                ),
            )
            .await;
        }
    }
}

async fn consumer_position(store: &Store, name: &str) -> i64 {
    scalar(
        store,
        &format!("SELECT position FROM consumers WHERE name = '{name}'"),
    )
    .await
}

/// Item 5: the effect and the settle are one transaction. A settle that fails after the
/// effect was written (an injected crash) takes the effect with it, and a handler that
/// times out after writing its effect leaves nothing behind; after a restart every event
/// has exactly one effect.
async fn effect_and_settle_are_one_transaction(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    execute(
        &store,
        "CREATE TABLE test_effects (event_id TEXT NOT NULL, version BIGINT NOT NULL)",
    )
    .await;
    append(&store, "e", 5, &[]).await;
    let events = store
        .read_stream(&StreamRef::new("order", "e"), 0)
        .await
        .unwrap();
    inject_settle_crash(&store, kind, events[2].position).await;

    // Version 2 stalls past the timeout once; version 3's settle "crashes".
    let effector = Effector::new("effects", &[2]);
    let config = ConsumerConfig {
        handler_timeout: Duration::from_millis(300),
        ..fast_config()
    };
    let consumer = Consumer::new(store.clone(), effector.clone(), config).unwrap();
    let crashed = consumer
        .run(
            consumer.local_feed(0).await.unwrap(),
            std::future::pending(),
        )
        .await;
    let err = crashed.expect_err("the injected crash stops the runtime");
    assert!(err.to_string().contains("injected crash"), "{err}");
    assert_eq!(*effector.calls.lock().unwrap(), vec![1, 2, 2, 3]);
    // Version 3's effect went down with its settle; version 2's stalled attempt left
    // nothing behind.
    let effects = |version: i64| {
        let store = store.clone();
        async move {
            scalar(
                &store,
                &format!("SELECT COUNT(*) FROM test_effects WHERE version = {version}"),
            )
            .await
        }
    };
    assert_eq!(effects(1).await, 1);
    assert_eq!(
        effects(2).await,
        1,
        "the timed-out attempt's effect rolled back"
    );
    assert_eq!(effects(3).await, 0, "no effect without its settle");
    assert_eq!(
        consumer_position(&store, "effects").await,
        events[1].position
    );

    // Restart without the fault: the rest is handled, each event exactly once.
    execute(
        &store,
        match kind {
            BackendKind::Postgres => "DROP TRIGGER inject_settle_crash ON consumers",
            BackendKind::Sqlite => "DROP TRIGGER inject_settle_crash",
        },
    )
    .await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let running = {
        let consumer = consumer.clone();
        tokio::spawn(async move {
            consumer
                .run(consumer.local_feed(0).await.unwrap(), async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        })
    };
    let head = events[4].position;
    eventually(Duration::from_secs(20), || async {
        (consumer_position(&store, "effects").await == head).then_some(())
    })
    .await
    .expect("the restarted consumer catches up");
    let _ = stop_tx.send(());
    running.await.unwrap();
    for event in &events {
        assert_eq!(
            scalar(
                &store,
                &format!(
                    "SELECT COUNT(*) FROM test_effects WHERE event_id = '{}'",
                    event.event_id
                )
            )
            .await,
            1,
            "version {}",
            event.version
        );
    }
    assert_eq!(
        *effector.calls.lock().unwrap(),
        vec![1, 2, 2, 3, 3, 4, 5],
        "only the unsettled event is handled again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_effect_and_settle_are_one_transaction() {
    effect_and_settle_are_one_transaction(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_effect_and_settle_are_one_transaction() {
    effect_and_settle_are_one_transaction(BackendKind::Sqlite).await;
}

/// A runner of `consumer` on the local feed under the consumer's lease.
fn spawn_leased(consumer: Consumer<Recorder>) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        consumer
            .run_local(0, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, task)
}

async fn wait_position(store: &Store, name: &str, position: i64) {
    eventually(Duration::from_secs(20), || async {
        (consumer_position(store, name).await == position).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{name} did not reach {position}"));
}

async fn head(store: &Store) -> i64 {
    scalar(store, "SELECT COALESCE(MAX(position), 0) FROM events").await
}

/// Item 7: two runners of one consumer on the in-process feed (two `serve` processes on
/// one database): only the lease holder handles events; when it dies the other takes
/// over where it stopped, and no event is lost or handled twice.
async fn one_runner_per_consumer_on_the_local_feed(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    // Two handlers under one consumer name, so each runner's share can be told apart.
    let first = Recorder::new("leased", Ordering::PerStream);
    let second = Recorder::new("leased", Ordering::PerStream);
    let config = fast_config();
    let a = spawn_leased(Consumer::new(store.clone(), first.clone(), config.clone()).unwrap());
    append(&store, "l", 3, &[]).await;
    wait_handled(&first, 3).await;

    let b = spawn_leased(Consumer::new(store.clone(), second.clone(), config).unwrap());
    append(&store, "l", 3, &[]).await;
    wait_handled(&first, 6).await;
    wait_position(&store, "leased", head(&store).await).await;
    // Give the standby every chance to (wrongly) handle something: it polls the lease
    // every 50 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(second.handled().is_empty(), "the standby handled events");

    // The holder dies (its task, and with it the lease connection, is dropped).
    a.1.abort();
    let _ = a.1.await;
    append(&store, "l", 3, &[]).await;
    wait_handled(&second, 3).await;
    wait_position(&store, "leased", head(&store).await).await;
    stop(b).await;

    assert_eq!(first.versions_of("l"), (1..=6).collect::<Vec<_>>());
    assert_eq!(
        second.versions_of("l"),
        vec![7, 8, 9],
        "the standby took over after the last settled event"
    );
    let _ = a.0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_runner_per_consumer_on_the_local_feed() {
    one_runner_per_consumer_on_the_local_feed(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_runner_per_consumer_on_the_local_feed() {
    one_runner_per_consumer_on_the_local_feed(BackendKind::Sqlite).await;
}

/// Item 6: two runtimes share a durable JetStream consumer whose handler takes longer
/// than the ack wait. Fetches sized to the ack wait and "in progress" reports keep every
/// message with the runtime handling it: none is handled twice at once, none twice at all.
async fn a_slow_handler_keeps_its_jetstream_messages(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let Some(client) = nats().await else {
        return;
    };
    let id = Uuid::now_v7().simple().to_string();
    let id = &id[id.len() - 12..];
    let relay_config = tests::scratch_relay_config();
    let relay = Relay::new(store.clone(), client.clone(), relay_config.clone()).unwrap();
    let relay_task = tokio::spawn(async move { relay.run(std::future::pending()).await });

    const STREAMS: usize = 6;
    const EVENTS: usize = 2 * STREAMS;
    let recorder = Arc::new(Recorder {
        name: format!("slow-{id}"),
        ordering: Ordering::Unordered,
        // Longer than the ack wait: without "in progress" each message would go to
        // the other runtime while this one works on it.
        work: Duration::from_millis(1500),
        state: Mutex::default(),
    });
    let config = ConsumerConfig {
        ack_wait: Some(Duration::from_secs(1)),
        ..fast_config()
    };
    let mut runtimes = Vec::new();
    for _ in 0..2 {
        let connection = nats().await.unwrap();
        let consumer = Consumer::new(store.clone(), recorder.clone(), config.clone()).unwrap();
        let stream = relay_config.stream.clone();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let feed = consumer
                .jetstream_feed(connection, &stream, None, 0)
                .await
                .unwrap();
            consumer
                .run(feed, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
        runtimes.push((stop_tx, task));
    }
    for s in 0..STREAMS {
        append(&store, &format!("j{s}"), 2, &[]).await;
    }
    let got = eventually(Duration::from_secs(60), || async {
        (recorder.handled().len() >= EVENTS).then_some(())
    })
    .await;
    assert!(got.is_some(), "handled {:?}", recorder.handled());
    // Past one more ack wait: a message wrongly redelivered would be handled by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (stop_tx, task) in runtimes {
        let _ = stop_tx.send(());
        task.await.unwrap();
    }
    relay_task.abort();

    let overlaps = recorder.state.lock().unwrap().overlaps;
    assert_eq!(overlaps, 0, "an event was handled twice at once");
    let handled = recorder.handled();
    let distinct: HashSet<_> = handled.iter().cloned().collect();
    assert_eq!(
        handled.len(),
        EVENTS,
        "every event handled once: {handled:?}"
    );
    assert_eq!(distinct.len(), EVENTS);
    let _ = jetstream::new(client)
        .delete_stream(&relay_config.stream)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_slow_handler_keeps_its_jetstream_messages() {
    a_slow_handler_keeps_its_jetstream_messages(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_slow_handler_keeps_its_jetstream_messages() {
    a_slow_handler_keeps_its_jetstream_messages(BackendKind::Sqlite).await;
}

/// A handler whose effect is a transaction in another database (here a SQLite file of
/// its own), made exactly-once by the inbox entered in that transaction.
struct Elsewhere {
    db: sqlx::SqlitePool,
    calls: Mutex<Vec<i64>>,
}

impl Handler for Elsewhere {
    fn name(&self) -> &str {
        "elsewhere"
    }

    async fn handle(&self, _tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        self.calls.lock().unwrap().push(envelope.version);
        let mut tx = self.db.begin().await?;
        if inbox::enter(TxConn::Sqlite(&mut tx), self.name(), envelope).await? {
            sqlx::query("INSERT INTO remote_effects (event_id) VALUES ($1)")
                .bind(envelope.event_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Item 5, effects elsewhere: the effect commits in its own database, then the settle
/// "crashes"; the event comes again after the restart and the inbox keeps the effect
/// from happening twice.
async fn an_inbox_keeps_effects_elsewhere_exactly_once(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let url = format!(
        "sqlite:{}?mode=rwc",
        tests::temp_path("remote.db").display()
    );
    let remote = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut conn = remote.acquire().await.unwrap();
    inbox::create_table(TxConn::Sqlite(&mut conn))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE remote_effects (event_id TEXT NOT NULL)")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    append(&store, "x", 3, &[]).await;
    let events = store
        .read_stream(&StreamRef::new("order", "x"), 0)
        .await
        .unwrap();
    inject_settle_crash(&store, kind, events[1].position).await;
    let handler = Arc::new(Elsewhere {
        db: remote.clone(),
        calls: Mutex::default(),
    });
    let consumer = Consumer::new(store.clone(), handler.clone(), fast_config()).unwrap();
    let crashed = consumer
        .run(
            consumer.local_feed(0).await.unwrap(),
            std::future::pending(),
        )
        .await;
    assert!(crashed.is_err(), "the injected crash stops the runtime");

    execute(
        &store,
        match kind {
            BackendKind::Postgres => "DROP TRIGGER inject_settle_crash ON consumers",
            BackendKind::Sqlite => "DROP TRIGGER inject_settle_crash",
        },
    )
    .await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let running = {
        let consumer = consumer.clone();
        tokio::spawn(async move {
            consumer
                .run(consumer.local_feed(0).await.unwrap(), async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        })
    };
    wait_position(&store, "elsewhere", events[2].position).await;
    let _ = stop_tx.send(());
    running.await.unwrap();

    assert_eq!(
        *handler.calls.lock().unwrap(),
        vec![1, 2, 2, 3],
        "the unsettled event came again"
    );
    for event in &events {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM remote_effects WHERE event_id = $1")
                .bind(event.event_id.to_string())
                .fetch_one(&remote)
                .await
                .unwrap();
        assert_eq!(count, 1, "version {}", event.version);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_inbox_keeps_effects_elsewhere_exactly_once() {
    an_inbox_keeps_effects_elsewhere_exactly_once(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_inbox_keeps_effects_elsewhere_exactly_once() {
    an_inbox_keeps_effects_elsewhere_exactly_once(BackendKind::Sqlite).await;
}

/// Writes its effect through the lent transaction; on `gate_at` it then announces that
/// it is in the middle of the event and waits to be let go.
struct Gated {
    gate_at: Option<i64>,
    entered: tokio::sync::mpsc::UnboundedSender<()>,
    go: Arc<tokio::sync::Notify>,
}

impl Handler for Gated {
    fn name(&self) -> &str {
        "fenced"
    }

    async fn handle(&self, tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        infra::on_conn!(tx.conn().await?, conn => {
            sqlx::query("INSERT INTO test_effects (event_id, version) VALUES ($1, $2)")
                .bind(envelope.event_id.to_string())
                .bind(envelope.version)
                .execute(conn)
                .await?;
        });
        if self.gate_at == Some(envelope.version) {
            let _ = self.entered.send(());
            self.go.notified().await;
        }
        Ok(())
    }
}

/// Item 7, lost lease: the holder's lock connection dies while it is in the middle of
/// an event; the standby takes over and handles that event; the old holder's settle is
/// then refused by the fence, so its effect rolls back: the event's effect exists once.
/// (PostgreSQL only: the SQLite lease is process-local and cannot be lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_lost_its_lease_cannot_settle() {
    let Some(store) = store(BackendKind::Postgres).await else {
        return;
    };
    execute(
        &store,
        "CREATE TABLE test_effects (event_id TEXT NOT NULL, version BIGINT NOT NULL)",
    )
    .await;
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
    let go = Arc::new(tokio::sync::Notify::new());
    let config = fast_config();
    let holder = Consumer::new(
        store.clone(),
        Arc::new(Gated {
            gate_at: Some(2),
            entered: entered_tx.clone(),
            go: go.clone(),
        }),
        config.clone(),
    )
    .unwrap();
    let holder = tokio::spawn(async move { holder.run_local(0, std::future::pending()).await });
    append(&store, "f", 2, &[]).await;
    entered
        .recv()
        .await
        .expect("the holder is in the middle of version 2");

    let standby = Consumer::new(
        store.clone(),
        Arc::new(Gated {
            gate_at: None,
            entered: entered_tx,
            go: go.clone(),
        }),
        config,
    )
    .unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let standby = tokio::spawn(async move {
        standby
            .run_local(0, async {
                let _ = stop_rx.await;
            })
            .await
    });
    // The holder's lock connection dies (as on a network partition).
    let terminated = scalar(
        &store,
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' \
         AND classid = hashtext('commerce.consumer')::oid \
         AND objid = hashtext(current_schema() || '/fenced')::oid",
    )
    .await;
    assert_eq!(terminated, 1, "one lease connection");
    let head = head(&store).await;
    wait_position(&store, "fenced", head).await;
    // Only now does the old holder finish version 2 and try to settle it.
    go.notify_one();
    let lost = holder.await.unwrap();
    assert!(
        matches!(lost, Err(infra::consumer::ConsumerError::LeaseLost(_))),
        "{lost:?}"
    );
    let _ = stop_tx.send(());
    standby.await.unwrap().unwrap();
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM test_effects WHERE version = 2"
        )
        .await,
        1,
        "the old holder's effect rolled back"
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM test_effects WHERE version = 1"
        )
        .await,
        1
    );
}

/// Retention: inbox rows of settled events and closed dead letters go once older than
/// the cut-off; open dead letters and anything newer stay. And a pruned consumer goes on
/// handling new events, each once.
async fn retention_prunes_only_what_is_settled_and_old(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let recorder = Recorder::new("mailer", Ordering::Unordered);
    recorder.plan("a", 1, Plan::Broken);
    recorder.plan("b", 1, Plan::Broken);
    append(&store, "a", 3, &[]).await;
    append(&store, "b", 2, &[]).await;
    let consumer = Consumer::new(store.clone(), recorder.clone(), fast_config()).unwrap();
    let running = spawn_local(consumer.clone());
    wait_handled(&recorder, 3).await;
    // a/1 is retried and resolves; b/1 stays dead.
    recorder.heal();
    let dlq = DeadLetterQueue::new(store.clone());
    let dead = dlq
        .list(Some("mailer"), &[DeadLetterStatus::Dead], 0, 10)
        .await
        .unwrap();
    let a = dead.iter().find(|l| l.stream.stream_id == "a").unwrap().id;
    dlq.retry(a).await.unwrap();
    wait_handled(&recorder, 4).await;
    stop(running).await;
    let inbox = scalar(&store, "SELECT count(*) FROM consumer_inbox").await;
    assert_eq!(inbox, 4, "{kind:?}: a/1..3 and b/2 handled");

    let now = chrono::Utc::now();
    let nothing = retention::prune(&store, now - chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(nothing, retention::Pruned::default(), "{kind:?}");

    let pruned = retention::prune(&store, now + chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(pruned.inbox, 4, "{kind:?}");
    assert_eq!(pruned.dead_letters, 1, "{kind:?}: the resolved letter");
    let open = letters(&dlq, "mailer", &DeadLetterStatus::OPEN).await;
    assert_eq!(open, vec![(DeadLetterStatus::Dead, "b".to_string(), 1)]);

    // New events after pruning are handled once each.
    append(&store, "c", 2, &[]).await;
    let running = spawn_local(consumer);
    wait_handled(&recorder, 6).await;
    stop(running).await;
    assert_eq!(recorder.versions_of("c"), vec![1, 2], "{kind:?}");
    assert_eq!(
        recorder.versions_of("a"),
        vec![2, 3, 1],
        "{kind:?}: nothing again"
    );
}

/// Retention of an ordered consumer's stream rows: the horizon stops before the first
/// unsettled event (a dead letter and the event parked behind it), rows at or below it
/// go, and every stream still handles its next event exactly once and in order, whether
/// its row was pruned or not.
async fn retention_prunes_stream_rows_below_the_horizon(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let recorder = Recorder::new("shipper", Ordering::PerStream);
    recorder.plan("b", 2, Plan::Broken);
    append(&store, "a", 3, &[]).await; // positions 1–3
    append(&store, "b", 3, &[]).await; // 4–6: b/2 dies, b/3 waits behind it
    append(&store, "c", 2, &[]).await; // 7–8
    let consumer = Consumer::new(store.clone(), recorder.clone(), fast_config()).unwrap();
    let running = spawn_local(consumer.clone());
    wait_handled(&recorder, 6).await;
    let dlq = DeadLetterQueue::new(store.clone());
    let settled = eventually(Duration::from_secs(20), || async {
        let open = letters(&dlq, "shipper", &DeadLetterStatus::OPEN).await;
        (open.len() == 2).then_some(open)
    })
    .await;
    assert!(settled.is_some(), "{kind:?}: b/2 dead and b/3 parked");
    stop(running).await;
    let rows = "SELECT count(*) FROM consumer_streams WHERE consumer = 'shipper'";
    let horizon = "SELECT pruned_through FROM consumers WHERE name = 'shipper'";
    assert_eq!(scalar(&store, rows).await, 3);

    // The horizon never passes the gap-safe head, which other tests' transactions on
    // the same PostgreSQL may hold back for a moment.
    let head = |p: i64| {
        let store = store.clone();
        async move {
            assert!(store
                .wait_for_position(p, Duration::from_secs(20))
                .await
                .unwrap());
        }
    };
    head(8).await;
    let now = chrono::Utc::now();
    let young = retention::prune(&store, now - chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(
        young.streams, 0,
        "{kind:?}: rows younger than the retention stay"
    );
    assert_eq!(
        scalar(&store, horizon).await,
        4,
        "{kind:?}: just before b/2"
    );
    let later = now + chrono::Duration::days(1);
    let pruned = retention::prune(&store, later).await.unwrap();
    assert_eq!(
        pruned.streams, 2,
        "{kind:?}: a (at 3) and b (at 4); c is beyond"
    );
    assert_eq!(scalar(&store, rows).await, 1);

    // b/2 heals and b/3 follows; a and c go on; each once, in order.
    recorder.heal();
    let dead = letters(&dlq, "shipper", &[DeadLetterStatus::Dead]).await;
    assert_eq!(dead, vec![(DeadLetterStatus::Dead, "b".to_string(), 2)]);
    let id = dlq
        .list(Some("shipper"), &[DeadLetterStatus::Dead], 0, 10)
        .await
        .unwrap()[0]
        .id;
    dlq.retry(id).await.unwrap();
    append(&store, "a", 2, &[]).await;
    append(&store, "c", 1, &[]).await;
    let running = spawn_local(consumer.clone());
    wait_handled(&recorder, 11).await;
    stop(running).await;
    assert_eq!(recorder.versions_of("a"), vec![1, 2, 3, 4, 5], "{kind:?}");
    assert_eq!(recorder.versions_of("b"), vec![1, 2, 3], "{kind:?}");
    assert_eq!(recorder.versions_of("c"), vec![1, 2, 3], "{kind:?}");

    // Everything is settled now: the horizon reaches the end and every row goes.
    head(11).await;
    let pruned = retention::prune(&store, later).await.unwrap();
    assert_eq!(pruned.streams, 3, "{kind:?}");
    assert_eq!(scalar(&store, horizon).await, 11);
    append(&store, "b", 1, &[]).await;
    let running = spawn_local(consumer);
    wait_handled(&recorder, 12).await;
    stop(running).await;
    assert_eq!(recorder.versions_of("b"), vec![1, 2, 3, 4], "{kind:?}");
    assert_eq!(recorder.handled().len(), 12, "{kind:?}: nothing twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_retention_prunes_stream_rows_below_the_horizon() {
    retention_prunes_stream_rows_below_the_horizon(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_retention_prunes_stream_rows_below_the_horizon() {
    retention_prunes_stream_rows_below_the_horizon(BackendKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_retention_prunes_only_what_is_settled_and_old() {
    retention_prunes_only_what_is_settled_and_old(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_retention_prunes_only_what_is_settled_and_old() {
    retention_prunes_only_what_is_settled_and_old(BackendKind::Sqlite).await;
}
