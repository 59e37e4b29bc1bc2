//! The consumer runtime with several deliveries in flight (`ConsumerConfig::concurrency`):
//! per-stream order for ordered handlers, one delivery at a time per handler lane, and a
//! stored position on the local feed that never passes an unfinished delivery, on the
//! local feed (PostgreSQL and SQLite) and on JetStream.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use infra::consumer::{Consumer, ConsumerConfig, Handler, HandlerError, Ordering, Tx};
use infra::feed::Envelope;
use infra::relay::{Relay, RelayConfig};
use infra::store::{NewEvent, StoreConfig, StreamRef};
use infra::{Store, SystemClock};
use serde_json::json;
use tests::{eventually, fresh_store, nats, BackendKind};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

#[derive(Debug, Default)]
struct Seen {
    /// Successful handles, in the order they finished: (stream, version, position, lane).
    handled: Vec<(String, i64, i64, String)>,
    /// Calls per (stream, version), failed ones included.
    calls: HashMap<(String, i64), u32>,
    /// Calls running right now, per lane.
    running: HashMap<String, u32>,
    /// Calls that started while another of their lane ran.
    overlaps: u32,
    /// Calls running right now, and the most there ever were.
    now: usize,
    peak: usize,
    /// Events that fail once (retryable) before they succeed.
    fail_once: HashSet<(String, i64)>,
}

/// A handler that records what it handled, with which lane, and how many calls ran at
/// once. Its lane is the stream (ordered) or the payload's `lane` (by lane).
struct Lanes {
    name: String,
    ordering: Ordering,
    by_lane: bool,
    /// Holds the handling of this (stream, version) until `gate` opens.
    hold: Option<(String, i64)>,
    gate: watch::Receiver<bool>,
    seen: Mutex<Seen>,
}

impl Lanes {
    fn new(name: &str, ordering: Ordering, by_lane: bool) -> Arc<Self> {
        let (_, gate) = watch::channel(true);
        Arc::new(Self {
            name: name.to_string(),
            ordering,
            by_lane,
            hold: None,
            gate,
            seen: Mutex::default(),
        })
    }

    fn lane_of(&self, envelope: &Envelope) -> String {
        if self.by_lane {
            envelope.payload["lane"].as_str().unwrap_or("").to_string()
        } else {
            envelope.stream_id.clone()
        }
    }

    fn handled(&self) -> Vec<(String, i64, i64, String)> {
        self.seen.lock().unwrap().handled.clone()
    }
}

impl Handler for Lanes {
    fn name(&self) -> &str {
        &self.name
    }

    fn ordering(&self) -> Ordering {
        self.ordering
    }

    fn lane(&self, envelope: &Envelope) -> Option<String> {
        self.by_lane.then(|| self.lane_of(envelope))
    }

    async fn handle(&self, _tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        let lane = self.lane_of(envelope);
        let key = (envelope.stream_id.clone(), envelope.version);
        {
            let mut seen = self.seen.lock().unwrap();
            let running = seen.running.entry(lane.clone()).or_default();
            *running += 1;
            if *running > 1 {
                seen.overlaps += 1;
            }
            seen.now += 1;
            seen.peak = seen.peak.max(seen.now);
            *seen.calls.entry(key.clone()).or_default() += 1;
        }
        if self.hold.as_ref() == Some(&key) {
            let mut gate = self.gate.clone();
            let _ = gate.wait_for(|open| *open).await;
        }
        // Uneven work, so deliveries finish out of their order.
        tokio::time::sleep(Duration::from_millis(
            2 + (envelope.position % 4) as u64 * 3,
        ))
        .await;
        let mut seen = self.seen.lock().unwrap();
        seen.now -= 1;
        if let Some(running) = seen.running.get_mut(&lane) {
            *running -= 1;
        }
        if seen.fail_once.remove(&key) {
            return Err(HandlerError::retry(format!(
                "transient failure of {}/{}",
                key.0, key.1
            )));
        }
        seen.handled
            .push((key.0, key.1, envelope.position, lane.clone()));
        Ok(())
    }
}

fn config(concurrency: usize) -> ConsumerConfig {
    ConsumerConfig {
        max_attempts: 5,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        handler_timeout: Duration::from_secs(20),
        not_next_delay: Duration::from_millis(20),
        maintenance_interval: Duration::from_millis(20),
        lease_retry: Duration::from_millis(50),
        concurrency,
        ..ConsumerConfig::default()
    }
}

async fn store(kind: BackendKind) -> Option<Store> {
    fresh_store(kind, StoreConfig::default(), Arc::new(SystemClock)).await
}

/// Appends one event to stream `id` (type `order`) with `lane` in its payload.
async fn append_one(store: &Store, id: &str, lane: &str) {
    let stream = StreamRef::new("order", id);
    let version = store.read_stream(&stream, 0).await.unwrap().len() as i64;
    let event = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "Noted".into(),
        schema_version: 1,
        payload: json!({ "n": version + 1, "lane": lane }),
        metadata: BTreeMap::new(),
    };
    store
        .append(&stream, version, vec![event], None)
        .await
        .unwrap();
}

fn spawn_leased<H: Handler>(consumer: Consumer<H>) -> (oneshot::Sender<()>, JoinHandle<()>) {
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

async fn wait_handled(lanes: &Lanes, count: usize) {
    let got = eventually(Duration::from_secs(30), || async {
        (lanes.handled().len() >= count).then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "expected {count} handled, got {}",
        lanes.handled().len()
    );
}

async fn consumer_position(store: &Store, name: &str) -> i64 {
    let sql = format!("SELECT position FROM consumers WHERE name = '{name}'");
    match store.pg_pool() {
        Some(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        None => sqlx::query_scalar(&sql)
            .fetch_one(store.sqlite_pool().unwrap())
            .await
            .unwrap(),
    }
}

/// Every event handled exactly once, each stream's versions in order.
fn assert_each_stream_in_order(lanes: &Lanes, streams: usize, per_stream: i64) {
    let handled = lanes.handled();
    assert_eq!(
        handled.len(),
        streams * per_stream as usize,
        "every event handled exactly once"
    );
    for s in 0..streams {
        let versions: Vec<i64> = handled
            .iter()
            .filter(|(stream, ..)| *stream == format!("s{s}"))
            .map(|(_, version, ..)| *version)
            .collect();
        assert_eq!(
            versions,
            (1..=per_stream).collect::<Vec<_>>(),
            "stream s{s} in order"
        );
    }
}

const STREAMS: usize = 12;
const PER_STREAM: i64 = 10;

/// Appends `PER_STREAM` events to each of `STREAMS` streams, interleaved one by one.
async fn interleaved(store: &Store) {
    for _ in 0..PER_STREAM {
        for s in 0..STREAMS {
            append_one(store, &format!("s{s}"), &format!("l{}", s % 3)).await;
        }
    }
}

/// (1) An ordered handler with 8 deliveries in flight: many streams interleaved, each
/// event handled once, each stream in order, never two events of one stream at once,
/// with some events failing once (retried in place, holding their stream's lane).
async fn ordered_streams_keep_their_order(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let lanes = Lanes::new("lanes-ordered", Ordering::PerStream, false);
    {
        let mut seen = lanes.seen.lock().unwrap();
        for s in 0..STREAMS {
            seen.fail_once.insert((format!("s{s}"), 2 + s as i64 % 7));
        }
    }
    interleaved(&store).await;
    let consumer = Consumer::new(store.clone(), lanes.clone(), config(8)).unwrap();
    let running = spawn_leased(consumer);
    let total = STREAMS * PER_STREAM as usize;
    wait_handled(&lanes, total).await;
    let head = store.last_position().await.unwrap();
    // The stored position catches up with everything finished.
    let caught_up = eventually(Duration::from_secs(10), || async {
        (consumer_position(&store, &lanes.name).await == head).then_some(())
    })
    .await;
    let _ = running.0.send(());
    running.1.await.unwrap();
    assert!(caught_up.is_some(), "the stored position reaches {head}");
    assert_each_stream_in_order(&lanes, STREAMS, PER_STREAM);
    let seen = lanes.seen.lock().unwrap();
    assert_eq!(seen.overlaps, 0, "two events of one stream ran at once");
    assert!(
        seen.peak > 1,
        "deliveries of different streams ran at once (peak {})",
        seen.peak
    );
    assert!(seen.peak <= 8, "at most 8 at once, saw {}", seen.peak);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ordered_streams_keep_their_order() {
    ordered_streams_keep_their_order(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ordered_streams_keep_their_order() {
    ordered_streams_keep_their_order(BackendKind::Sqlite).await;
}

/// (2) An unordered handler with lanes from the payload: two events of one lane never
/// run at once and a lane's events run in log order, while different lanes overlap.
async fn one_lane_runs_one_at_a_time(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let lanes = Lanes::new("lanes-unordered", Ordering::Unordered, true);
    lanes
        .seen
        .lock()
        .unwrap()
        .fail_once
        .insert(("s4".to_string(), 3));
    interleaved(&store).await;
    let consumer = Consumer::new(store.clone(), lanes.clone(), config(8)).unwrap();
    let running = spawn_leased(consumer);
    let total = STREAMS * PER_STREAM as usize;
    wait_handled(&lanes, total).await;
    let _ = running.0.send(());
    running.1.await.unwrap();
    let handled = lanes.handled();
    assert_eq!(handled.len(), total, "every event handled exactly once");
    for lane in ["l0", "l1", "l2"] {
        let positions: Vec<i64> = handled
            .iter()
            .filter(|(.., l)| l == lane)
            .map(|(_, _, position, _)| *position)
            .collect();
        assert_eq!(positions.len(), total / 3);
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "lane {lane} in log order: {positions:?}"
        );
    }
    let seen = lanes.seen.lock().unwrap();
    assert_eq!(seen.overlaps, 0, "two events of one lane ran at once");
    assert!(seen.peak > 1, "different lanes ran at once");
    assert!(seen.peak <= 3, "three lanes: at most three at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_lane_runs_one_at_a_time() {
    one_lane_runs_one_at_a_time(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_lane_runs_one_at_a_time() {
    one_lane_runs_one_at_a_time(BackendKind::Sqlite).await;
}

/// (3) Crash safety on the local feed: the runner is aborted while the first event is
/// held and later ones have finished. The stored position stayed below the held event,
/// so a new runner handles it, and handles nothing else a second time.
async fn an_unfinished_earlier_event_survives_a_crash(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let (open, gate) = watch::channel(false);
    let lanes = Arc::new(Lanes {
        name: "lanes-crash".to_string(),
        ordering: Ordering::PerStream,
        by_lane: false,
        hold: Some(("s0".to_string(), 1)),
        gate,
        seen: Mutex::default(),
    });
    interleaved(&store).await;
    let first = store
        .read_stream(&StreamRef::new("order", "s0"), 0)
        .await
        .unwrap()[0]
        .position;
    let consumer = Consumer::new(store.clone(), lanes.clone(), config(4)).unwrap();
    let running = spawn_leased(consumer);
    // Everything but stream s0 (held at its first event) gets handled and settled, so
    // only s0/1 is in flight when the runner dies.
    let others = (STREAMS - 1) * PER_STREAM as usize;
    wait_handled(&lanes, others).await;
    let settled = eventually(Duration::from_secs(10), || async {
        let sql = format!(
            "SELECT COUNT(*) FROM consumer_streams WHERE consumer = 'lanes-crash' \
             AND version = {PER_STREAM}"
        );
        let streams: i64 = match store.pg_pool() {
            Some(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
            None => sqlx::query_scalar(&sql)
                .fetch_one(store.sqlite_pool().unwrap())
                .await
                .unwrap(),
        };
        (streams == STREAMS as i64 - 1).then_some(())
    })
    .await;
    assert!(settled.is_some(), "every stream but s0 settled");
    assert!(
        lanes.handled().iter().all(|(stream, ..)| stream != "s0"),
        "s0 waits behind its held first event"
    );
    assert!(
        consumer_position(&store, &lanes.name).await < first,
        "the stored position never passes the unfinished event at {first}"
    );
    // The crash: the runner's task is dropped while s0/1 is in its handler.
    running.1.abort();
    let _ = running.1.await;
    let _ = open.send(true);

    let consumer = Consumer::new(store.clone(), lanes.clone(), config(4)).unwrap();
    let running = spawn_leased(consumer);
    let total = STREAMS * PER_STREAM as usize;
    wait_handled(&lanes, total).await;
    let head = store.last_position().await.unwrap();
    let caught_up = eventually(Duration::from_secs(10), || async {
        (consumer_position(&store, &lanes.name).await == head).then_some(())
    })
    .await;
    // Give a duplicate the chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = running.0.send(());
    running.1.await.unwrap();
    assert!(caught_up.is_some(), "the stored position reaches {head}");
    assert_each_stream_in_order(&lanes, STREAMS, PER_STREAM);
    let seen = lanes.seen.lock().unwrap();
    assert_eq!(
        seen.calls.get(&("s0".to_string(), 1)).copied(),
        Some(2),
        "s0/1: the call the crash cut short, then one that finished"
    );
    assert!(
        seen.calls
            .iter()
            .filter(|(key, _)| **key != ("s0".to_string(), 1))
            .all(|(_, calls)| *calls == 1),
        "no other event handled twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_unfinished_earlier_event_survives_a_crash() {
    an_unfinished_earlier_event_survives_a_crash(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_unfinished_earlier_event_survives_a_crash() {
    an_unfinished_earlier_event_survives_a_crash(BackendKind::Sqlite).await;
}

/// (1) on JetStream: two runtimes with 4 deliveries in flight each share one durable
/// consumer; every event once, each stream in order, never two of one stream at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_runtimes_with_lanes_keep_each_stream_in_order() {
    let Some(store) = store(BackendKind::Postgres).await else {
        return;
    };
    let Some(client) = nats().await else {
        return;
    };
    let id = Uuid::now_v7().simple().to_string();
    let id = &id[id.len() - 12..];
    let relay_config = RelayConfig {
        name: format!("relay-{id}"),
        stream: format!("TEST_{id}"),
        subject_prefix: format!("t{id}.commerce"),
        max_age: Duration::from_secs(3600),
        checkpoint_interval: Duration::from_millis(50),
        ..RelayConfig::default()
    };
    let relay = Relay::new(store.clone(), client.clone(), relay_config.clone()).unwrap();
    let relay_task = tokio::spawn(async move { relay.run(std::future::pending()).await });
    let context = jetstream::new(client.clone());
    eventually(Duration::from_secs(10), || async {
        context
            .get_stream(&relay_config.stream)
            .await
            .ok()
            .map(drop)
    })
    .await
    .expect("the relay created its stream");
    let lanes = Lanes::new(&format!("lanes-js-{id}"), Ordering::PerStream, false);
    {
        let mut seen = lanes.seen.lock().unwrap();
        for s in 0..STREAMS {
            seen.fail_once.insert((format!("s{s}"), 3 + s as i64 % 5));
        }
    }
    let mut runtimes = Vec::new();
    for _ in 0..2 {
        let connection = nats().await.unwrap();
        let consumer = Consumer::new(store.clone(), lanes.clone(), config(4)).unwrap();
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
    interleaved(&store).await;
    wait_handled(&lanes, STREAMS * PER_STREAM as usize).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (stop_tx, task) in runtimes {
        let _ = stop_tx.send(());
        task.await.unwrap();
    }
    relay_task.abort();
    assert_each_stream_in_order(&lanes, STREAMS, PER_STREAM);
    {
        let seen = lanes.seen.lock().unwrap();
        assert_eq!(seen.overlaps, 0, "two events of one stream ran at once");
        assert!(seen.peak > 1, "deliveries ran at once");
    }
    let _ = context.delete_stream(&relay_config.stream).await;
}
