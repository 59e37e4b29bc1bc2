//! The relay and the feeds against a real nats-server (JetStream) and PostgreSQL.
//!
//! NATS is taken from `COMMERCE_TEST_NATS_URL` (default `127.0.0.1:4222`). Each test uses
//! its own JetStream stream, subject prefix, relay name and database schema, so tests run
//! in parallel without seeing each other.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::StreamMessage};
use infra::feed::{Envelope, Feed, JetStreamFeed, JetStreamFeedConfig, LocalFeed};
use infra::relay::{message as ce, Relay, RelayConfig};
use infra::store::{NewEvent, RecordedEvent, StoreConfig, StreamRef};
use infra::Store;
use rand::Rng;
use serde_json::json;
use tests::{eventually, fresh_store, nats, BackendKind};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

struct Fixture {
    store: Store,
    nats: async_nats::Client,
    config: RelayConfig,
}

impl Fixture {
    /// Deletes the test stream (only on success: a failed test leaves it to inspect).
    async fn finish(self) {
        let _ = jetstream::new(self.nats.clone())
            .delete_stream(&self.config.stream)
            .await;
    }
}

async fn fixture(kind: BackendKind) -> Option<Fixture> {
    let nats = nats().await?;
    let store = fresh_store(kind, StoreConfig::default(), Arc::new(tests::test_clock())).await?;
    Some(Fixture {
        store,
        nats,
        config: tests::scratch_relay_config(),
    })
}

fn event(n: u64, metadata: BTreeMap<String, String>) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: if n % 2 == 0 { "Incremented" } else { "Noted" }.into(),
        schema_version: 1 + (n % 3) as i32,
        payload: json!({ "n": n, "text": "ünïcode \"quoted\"" }),
        metadata,
    }
}

/// Appends `count` events, one per append, round-robin over `streams` streams.
async fn append(store: &Store, count: u64, streams: u64) {
    for n in 0..count {
        let stream = StreamRef::new(
            if n % 3 == 0 { "cart" } else { "order" },
            format!("s-{}", n % streams),
        );
        let version = store.read_stream(&stream, 0).await.unwrap().len() as i64;
        let mut metadata = BTreeMap::new();
        if n % 2 == 0 {
            metadata.insert("correlation_id".into(), Uuid::now_v7().to_string());
            metadata.insert("causation_id".into(), Uuid::now_v7().to_string());
            metadata.insert("actor".into(), "tester".into());
        }
        store
            .append(&stream, version, vec![event(n, metadata)], None)
            .await
            .unwrap();
    }
}

async fn all_events(store: &Store) -> Vec<RecordedEvent> {
    // On PostgreSQL, other tests' transactions (the database is shared) may hold the
    // gap-safe horizon back for a moment: wait until every written event may be read.
    let last = store.last_position().await.unwrap();
    assert!(store
        .wait_for_position(last, Duration::from_secs(30))
        .await
        .unwrap());
    store.read_all(0, last + 1).await.unwrap()
}

fn spawn_relay(f: &Fixture, nats: async_nats::Client) -> JoinHandle<()> {
    let relay = Relay::new(f.store.clone(), nats, f.config.clone()).unwrap();
    tokio::spawn(async move {
        relay.run(std::future::pending()).await.unwrap();
    })
}

async fn stream_count(f: &Fixture) -> u64 {
    let stream = jetstream::new(f.nats.clone())
        .get_stream(&f.config.stream)
        .await
        .unwrap();
    stream.get_info().await.unwrap().state.messages
}

/// Waits until the stream holds `count` messages (and fails if it never does).
async fn wait_for_count(f: &Fixture, count: u64, within: Duration) {
    let reached = eventually(within, || async {
        let stream = jetstream::new(f.nats.clone())
            .get_stream(&f.config.stream)
            .await
            .ok()?;
        let n = stream.get_info().await.ok()?.state.messages;
        assert!(
            n <= count,
            "the stream holds {n} messages, more than the {count} events"
        );
        (n == count).then_some(())
    })
    .await;
    assert!(
        reached.is_some(),
        "the stream never reached {count} messages"
    );
}

/// Every message of the test stream, in stream order.
async fn stream_messages(f: &Fixture) -> Vec<StreamMessage> {
    let stream = jetstream::new(f.nats.clone())
        .get_stream(&f.config.stream)
        .await
        .unwrap();
    let state = stream.get_info().await.unwrap().state;
    let mut messages = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        messages.push(stream.get_raw_message(seq).await.unwrap());
    }
    messages
}

fn header<'a>(message: &'a StreamMessage, name: &str) -> Option<&'a str> {
    message.headers.get(name).map(|v| v.as_str())
}

/// The stream holds every event of the log exactly once, in position order.
async fn assert_exactly_once_in_order(f: &Fixture) {
    let events = all_events(&f.store).await;
    let messages = stream_messages(f).await;
    assert_eq!(messages.len(), events.len(), "one message per event");
    let ids: HashSet<String> = messages
        .iter()
        .map(|m| header(m, ce::ID).unwrap().to_string())
        .collect();
    let expected: HashSet<String> = events.iter().map(|e| e.event_id.to_string()).collect();
    assert_eq!(ids.len(), messages.len(), "no duplicate ce-id");
    assert_eq!(ids, expected, "the same set of event ids");
    let positions: Vec<i64> = messages
        .iter()
        .map(|m| header(m, ce::POSITION).unwrap().parse().unwrap())
        .collect();
    let log_positions: Vec<i64> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions, log_positions, "stream order is position order");
}

async fn relay_publishes_every_event_as_a_cloud_event_in_order(kind: BackendKind) {
    let Some(f) = fixture(kind).await else {
        return;
    };
    append(&f.store, 40, 5).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let relay = Relay::new(f.store.clone(), f.nats.clone(), f.config.clone()).unwrap();
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    append(&f.store, 20, 5).await;
    wait_for_count(&f, 60, Duration::from_secs(20)).await;

    let events = all_events(&f.store).await;
    let messages = stream_messages(&f).await;
    assert_eq!(events.len(), messages.len());
    for (event, message) in events.iter().zip(&messages) {
        let id = event.event_id.to_string();
        let prefix = &f.config.subject_prefix;
        assert_eq!(
            message.subject.as_str(),
            format!("{prefix}.{}.{}", event.stream_type, event.event_type)
        );
        let msg_id = message.headers.get(async_nats::header::NATS_MESSAGE_ID);
        assert_eq!(msg_id.map(|v| v.as_str()), Some(id.as_str()));
        assert_eq!(header(message, ce::SPECVERSION), Some("1.0"));
        assert_eq!(header(message, ce::ID), Some(id.as_str()));
        assert_eq!(
            header(message, ce::SOURCE).unwrap(),
            format!("/commerce/{}/{}", event.stream_type, event.stream_id)
        );
        assert_eq!(
            header(message, ce::TYPE).unwrap(),
            format!(
                "commerce.{}.{}.v{}",
                event.stream_type, event.event_type, event.schema_version
            )
        );
        assert_eq!(header(message, ce::SUBJECT), Some(event.stream_id.as_str()));
        let time = chrono::DateTime::parse_from_rfc3339(header(message, ce::TIME).unwrap())
            .expect("ce-time is RFC 3339");
        assert_eq!(time, event.recorded_at);
        assert_eq!(
            header(message, ce::POSITION).unwrap(),
            event.position.to_string()
        );
        assert_eq!(
            header(message, ce::STREAM_VERSION).unwrap(),
            event.version.to_string()
        );
        assert_eq!(
            header(message, ce::CORRELATION_ID).map(str::to_string),
            event.correlation_id.map(|u| u.to_string())
        );
        assert_eq!(
            header(message, ce::CAUSATION_ID).map(str::to_string),
            event.causation_id.map(|u| u.to_string())
        );
        assert_eq!(header(message, ce::CONTENT_TYPE), Some("application/json"));
        assert_eq!(
            header(message, ce::METADATA),
            Some(event.metadata_text.as_str())
        );
        assert_eq!(
            message.payload.as_ref(),
            event.payload_text.as_bytes(),
            "body is the stored payload text exactly"
        );
    }
    assert!(messages
        .iter()
        .any(|m| header(m, ce::CORRELATION_ID).is_some()));
    assert!(messages
        .iter()
        .any(|m| header(m, ce::CORRELATION_ID).is_none()));

    // A graceful stop stores the checkpoint at the last acknowledged event.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("relay stops")
        .unwrap()
        .unwrap();
    let last = events.last().unwrap().position;
    assert_eq!(
        Relay::checkpoint(&f.store, &f.config.name).await.unwrap(),
        last
    );
    assert_exactly_once_in_order(&f).await;
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_relay_publishes_every_event_as_a_cloud_event_in_order() {
    relay_publishes_every_event_as_a_cloud_event_in_order(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_relay_publishes_every_event_as_a_cloud_event_in_order() {
    relay_publishes_every_event_as_a_cloud_event_in_order(BackendKind::Sqlite).await;
}

/// Appends `count` events from one writer, in small batches, to its own streams.
async fn writer(store: Store, writer: u64, count: u64) {
    let mut written = 0;
    let mut versions = BTreeMap::new();
    while written < count {
        let (batch, key) = {
            let mut rng = rand::rng();
            (
                rng.random_range(1..=4u64).min(count - written),
                rng.random_range(0..8u64),
            )
        };
        let stream = StreamRef::new("order", format!("w{writer}-{key}"));
        let version = versions.entry(key).or_insert(0i64);
        let events = (0..batch)
            .map(|i| event(written + i, BTreeMap::new()))
            .collect();
        store.append(&stream, *version, events, None).await.unwrap();
        *version += batch as i64;
        written += batch;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_at_random_points_loses_and_duplicates_nothing() {
    let Some(mut f) = fixture(BackendKind::Postgres).await else {
        return;
    };
    // Rare checkpoints: a kill then loses acknowledged but unstored progress, so the
    // next run must re-send it.
    f.config.checkpoint_interval = Duration::from_millis(150);
    f.config.checkpoint_every = 500;
    const WRITERS: u64 = 4;
    const PER_WRITER: u64 = 800;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(f.store.clone(), w, PER_WRITER)))
        .collect();

    // One connection per run, as restarted processes would have; kept to count sends.
    let mut connections = vec![nats().await.unwrap()];
    let mut relay = spawn_relay(&f, connections[0].clone());
    for _ in 0..20 {
        let pause = rand::rng().random_range(10..200u64);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        relay.abort();
        let _ = relay.await;
        connections.push(nats().await.unwrap());
        relay = spawn_relay(&f, connections[connections.len() - 1].clone());
    }
    for w in writers {
        w.await.unwrap();
    }
    let total = WRITERS * PER_WRITER;
    assert_eq!(all_events(&f.store).await.len() as u64, total);
    wait_for_count(&f, total, Duration::from_secs(60)).await;
    // Once the checkpoint reaches the head, nothing more can be re-sent.
    let head = f.store.head_position().await.unwrap();
    let caught_up = eventually(Duration::from_secs(20), || async {
        (Relay::checkpoint(&f.store, &f.config.name).await.unwrap() == head).then_some(())
    })
    .await;
    assert!(caught_up.is_some(), "checkpoint reaches the head");
    relay.abort();
    assert_eq!(stream_count(&f).await, total);
    assert_exactly_once_in_order(&f).await;
    // The kills did force re-sends, which JetStream dropped as duplicates.
    let sent: u64 = connections
        .iter()
        .map(|c| c.statistics().out_messages.load(Ordering::Relaxed))
        .sum();
    assert!(sent > total, "{sent} messages sent for {total} events");
    eprintln!("crash test: {sent} messages sent (incl. API requests) for {total} events");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_relay_takes_over_when_the_leader_dies() {
    let Some(f) = fixture(BackendKind::Postgres).await else {
        return;
    };
    let (leader_nats, standby_nats) = (nats().await.unwrap(), nats().await.unwrap());
    let leader = spawn_relay(&f, leader_nats.clone());
    append(&f.store, 50, 5).await;
    wait_for_count(&f, 50, Duration::from_secs(20)).await;

    let standby = spawn_relay(&f, standby_nats.clone());
    append(&f.store, 50, 5).await;
    wait_for_count(&f, 100, Duration::from_secs(20)).await;
    // Let the standby poll the lock a few times.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        standby_nats
            .statistics()
            .out_messages
            .load(Ordering::Relaxed),
        0,
        "the standby sends nothing while the leader holds the lock"
    );
    let leader_sent = leader_nats
        .statistics()
        .out_messages
        .load(Ordering::Relaxed);
    assert!(leader_sent >= 100, "the leader published ({leader_sent})");

    // Aborting drops the leader's lock connection; the standby takes over.
    leader.abort();
    let _ = leader.await;
    append(&f.store, 50, 5).await;
    wait_for_count(&f, 150, Duration::from_secs(20)).await;
    assert!(
        standby_nats
            .statistics()
            .out_messages
            .load(Ordering::Relaxed)
            > 0
    );
    let head = f.store.head_position().await.unwrap();
    let caught_up = eventually(Duration::from_secs(20), || async {
        (Relay::checkpoint(&f.store, &f.config.name).await.unwrap() == head).then_some(())
    })
    .await;
    assert!(caught_up.is_some(), "the standby moves the checkpoint");
    standby.abort();
    assert_exactly_once_in_order(&f).await;
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_relays_in_one_process_publish_one_at_a_time() {
    let Some(f) = fixture(BackendKind::Sqlite).await else {
        return;
    };
    let (first_nats, second_nats) = (nats().await.unwrap(), nats().await.unwrap());
    let first = spawn_relay(&f, first_nats.clone());
    append(&f.store, 30, 3).await;
    wait_for_count(&f, 30, Duration::from_secs(20)).await;
    let second = spawn_relay(&f, second_nats.clone());
    append(&f.store, 30, 3).await;
    wait_for_count(&f, 60, Duration::from_secs(20)).await;
    assert_eq!(
        second_nats
            .statistics()
            .out_messages
            .load(Ordering::Relaxed),
        0
    );
    first.abort();
    let _ = first.await;
    append(&f.store, 30, 3).await;
    wait_for_count(&f, 90, Duration::from_secs(20)).await;
    second.abort();
    assert_exactly_once_in_order(&f).await;
    f.finish().await;
}

async fn take<F: Feed>(feed: &mut F, count: usize) -> Vec<Envelope> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let delivery = tokio::time::timeout(Duration::from_secs(20), feed.next())
            .await
            .expect("a delivery in time")
            .unwrap();
        feed.ack(&delivery).await.unwrap();
        out.push(delivery.envelope);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_and_jetstream_feeds_deliver_the_same_sequence() {
    let Some(f) = fixture(BackendKind::Postgres).await else {
        return;
    };
    let relay = spawn_relay(&f, f.nats.clone());
    append(&f.store, 60, 7).await;
    wait_for_count(&f, 60, Duration::from_secs(20)).await;
    let events = all_events(&f.store).await;

    let local = take(&mut LocalFeed::new(&f.store, 0), 60).await;
    let config = JetStreamFeedConfig::new(&f.config.stream, "feed-all");
    let mut remote_feed = JetStreamFeed::open(f.nats.clone(), config.clone(), 0)
        .await
        .unwrap();
    let remote = take(&mut remote_feed, 60).await;
    assert_eq!(local, remote);
    let positions: Vec<i64> = local.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        events.iter().map(|e| e.position).collect::<Vec<_>>()
    );
    assert!(local.iter().any(|e| !e.metadata.is_empty()));

    // A new subscriber starting mid-log gets exactly the rest, live events included.
    let middle = events[24].position;
    let mut local_feed = LocalFeed::new(&f.store, middle);
    let mut late = JetStreamFeed::open(
        f.nats.clone(),
        JetStreamFeedConfig::new(&f.config.stream, "feed-late"),
        middle,
    )
    .await
    .unwrap();
    append(&f.store, 10, 7).await;
    let from_local = take(&mut local_feed, 45).await;
    let from_remote = take(&mut late, 45).await;
    assert_eq!(from_local, from_remote);
    assert_eq!(from_local[0].position, events[25].position);

    // The durable consumer resumes after what it acknowledged.
    drop(remote_feed);
    let mut resumed = JetStreamFeed::open(f.nats.clone(), config, 0)
        .await
        .unwrap();
    let rest = take(&mut resumed, 10).await;
    assert_eq!(rest, from_local[35..].to_vec());
    relay.abort();
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unacknowledged_jetstream_delivery_comes_back_with_backoff() {
    let Some(f) = fixture(BackendKind::Postgres).await else {
        return;
    };
    let relay = spawn_relay(&f, f.nats.clone());
    append(&f.store, 3, 1).await;
    wait_for_count(&f, 3, Duration::from_secs(20)).await;
    let config = JetStreamFeedConfig {
        backoff: vec![Duration::from_millis(200), Duration::from_millis(400)],
        max_deliver: 3,
        ..JetStreamFeedConfig::new(&f.config.stream, "retrying")
    };
    let mut feed = JetStreamFeed::open(f.nats.clone(), config, 0)
        .await
        .unwrap();
    let first = feed.next().await.unwrap();
    assert_eq!(first.attempt, 1);
    let mut seen = Vec::new();
    // Everything else is acknowledged; the first comes back twice, then never again.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Ok(delivery)) = tokio::time::timeout_at(until, feed.next()).await {
        if delivery.envelope.position != first.envelope.position {
            feed.ack(&delivery).await.unwrap();
        }
        seen.push((delivery.envelope.position, delivery.attempt));
    }
    let again: Vec<u64> = seen
        .iter()
        .filter(|(p, _)| *p == first.envelope.position)
        .map(|(_, attempt)| *attempt)
        .collect();
    assert_eq!(again, vec![2, 3], "redelivered up to max_deliver: {seen:?}");
    assert_eq!(seen.len(), 4, "{seen:?}");
    relay.abort();
    f.finish().await;
}

/// The contract integrators rely on: the body of every relayed event validates against
/// the schema its `ce-type` names (`commerce.<aggregate>.<Event>.v<N>` →
/// `schemas/events/<aggregate>/<Event>.v<N>.json`). One event per schema, carrying the
/// schema's own example as its payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_bodies_validate_against_the_schema_their_type_names() {
    let Some(f) = fixture(BackendKind::Sqlite).await else {
        return;
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/events");
    let mut schemas = BTreeMap::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let aggregate = dir.file_name().unwrap().to_str().unwrap().to_string();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_str().unwrap().to_string();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            let (event_type, version) = stem.rsplit_once(".v").unwrap();
            let schema: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let example = schema["examples"][0].clone();
            assert!(!example.is_null(), "{name} has an example");
            let stream = StreamRef::new(&aggregate, format!("s{}", schemas.len()));
            f.store
                .append(
                    &stream,
                    0,
                    vec![NewEvent {
                        event_id: Uuid::now_v7(),
                        event_type: event_type.to_string(),
                        schema_version: version.parse().unwrap(),
                        payload: example,
                        metadata: BTreeMap::new(),
                    }],
                    None,
                )
                .await
                .unwrap();
            schemas.insert(format!("commerce.{aggregate}.{stem}"), schema);
        }
    }
    assert!(schemas.len() >= 70, "found {} schemas", schemas.len());
    let relay = spawn_relay(&f, f.nats.clone());
    wait_for_count(&f, schemas.len() as u64, Duration::from_secs(20)).await;
    relay.abort();

    let mut checked = HashSet::new();
    for message in stream_messages(&f).await {
        let ce_type = message.headers.get(ce::TYPE).unwrap().as_str().to_string();
        let schema = schemas
            .get(&ce_type)
            .unwrap_or_else(|| panic!("no schema for ce-type {ce_type}"));
        let validator = jsonschema::draft202012::new(schema).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{ce_type}: {errors:?}");
        // The validator is not a pass-through: a body missing its fields is refused.
        assert!(
            !validator.is_valid(&json!({})),
            "{ce_type} accepts an empty body"
        );
        checked.insert(ce_type);
    }
    assert_eq!(checked.len(), schemas.len());
    f.finish().await;
}

/// Stream ids holding every ASCII character (controls included), the C1 controls and
/// Unicode whitespace, at either end and in the middle.
fn awkward_stream_ids() -> Vec<String> {
    let mut chars: Vec<char> = (0u8..=0x7f).map(char::from).collect();
    chars.extend((0x80u32..=0x9f).filter_map(char::from_u32));
    chars.extend(['\u{a0}', '\u{2028}', '\u{3000}', 'é']);
    chars
        .into_iter()
        .flat_map(|c| [format!("{c}id{c}"), format!("i{c}d")])
        .chain(["%0A".to_string(), "%".to_string(), " ".to_string()])
        .collect()
}

/// Stream ids with line breaks, other control characters, `%` and edge whitespace come
/// back from JetStream exactly as the log holds them: the header escaping is undone by
/// the decoder every reader uses.
async fn awkward_stream_ids_round_trip_through_jetstream(kind: BackendKind) {
    let Some(f) = fixture(kind).await else {
        return;
    };
    let mut appended = Vec::new();
    for id in awkward_stream_ids() {
        let stream = StreamRef::new("cart", id.clone());
        match f
            .store
            .append(&stream, 0, vec![event(1, BTreeMap::new())], None)
            .await
        {
            Ok(_) => appended.push(id),
            // PostgreSQL text cannot hold NUL; the store refuses such an id outright.
            Err(e) => assert!(
                kind == BackendKind::Postgres && id.contains('\0'),
                "{id:?} refused: {e}"
            ),
        }
    }
    assert!(appended.len() > 300, "nearly every id is stored");
    let relay = spawn_relay(&f, f.nats.clone());
    wait_for_count(&f, appended.len() as u64, Duration::from_secs(30)).await;
    relay.abort();
    let events = all_events(&f.store).await;
    let messages = stream_messages(&f).await;
    assert_eq!(events.len(), messages.len());
    for (event, message) in events.iter().zip(&messages) {
        let envelope = ce::decode(&message.headers, &message.payload).unwrap();
        assert_eq!(envelope.stream_id, event.stream_id, "{:?}", event.stream_id);
        assert_eq!(envelope.stream_type, "cart");
        assert_eq!(envelope.event_id, event.event_id);
        assert_eq!(envelope.position, event.position);
        assert_eq!(envelope.event_type, event.event_type);
    }
    // Consumers read through the JetStream feed, which decodes the same way.
    let config = JetStreamFeedConfig::new(&f.config.stream, "awkward-ids");
    let mut feed = JetStreamFeed::open(f.nats.clone(), config, 0)
        .await
        .unwrap();
    let through_feed = take(&mut feed, events.len()).await;
    assert_eq!(
        through_feed
            .iter()
            .map(|e| &e.stream_id)
            .collect::<Vec<_>>(),
        events.iter().map(|e| &e.stream_id).collect::<Vec<_>>()
    );
    let ids: HashSet<String> = events.into_iter().map(|e| e.stream_id).collect();
    assert_eq!(ids, appended.into_iter().collect::<HashSet<_>>());
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_awkward_stream_ids_round_trip_through_jetstream() {
    awkward_stream_ids_round_trip_through_jetstream(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_awkward_stream_ids_round_trip_through_jetstream() {
    awkward_stream_ids_round_trip_through_jetstream(BackendKind::Sqlite).await;
}

/// An event the NATS server can never accept stalls the relay loudly (a stall naming
/// its position, which every later event waits behind) instead of retrying in silence;
/// the events before it are published and checkpointed. And a store accepting events
/// larger than the server's `max_payload` is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_too_large_for_nats_is_a_visible_stall_and_refused_at_start() {
    let Some(nats) = nats().await else {
        return;
    };
    let max_payload = nats.server_info().max_payload;
    let config = StoreConfig {
        max_event_bytes: 2 * max_payload,
        max_append_bytes: 4 * max_payload,
        ..StoreConfig::default()
    };
    let Some(store) = fresh_store(BackendKind::Sqlite, config, Arc::new(tests::test_clock())).await
    else {
        return;
    };
    let f = Fixture {
        store,
        nats,
        config: RelayConfig {
            stalled_retry: Duration::from_millis(100),
            ..tests::scratch_relay_config()
        },
    };
    let stream = StreamRef::new("order", "big");
    let huge = NewEvent {
        payload: json!({ "note": "x".repeat(max_payload + 1) }),
        ..event(1, BTreeMap::new())
    };
    f.store
        .append(&stream, 0, vec![event(0, BTreeMap::new())], None)
        .await
        .unwrap();
    f.store.append(&stream, 1, vec![huge], None).await.unwrap();
    f.store
        .append(&stream, 2, vec![event(2, BTreeMap::new())], None)
        .await
        .unwrap();

    let relay = Relay::new(f.store.clone(), f.nats.clone(), f.config.clone()).unwrap();
    let refused = relay.check_payload_limit().unwrap_err().to_string();
    assert!(refused.contains("max_payload"), "{refused}");
    let mut stalls = relay.stalls();
    let task = tokio::spawn(relay.run(std::future::pending()));

    let stall = tokio::time::timeout(Duration::from_secs(20), stalls.wait_for(Option::is_some))
        .await
        .expect("the relay never reported the stall")
        .unwrap()
        .unwrap();
    assert_eq!(stall.position, 2);
    assert!(stall.size > max_payload);
    assert_eq!(stall.max_payload, max_payload);
    wait_for_count(&f, 1, Duration::from_secs(10)).await;
    let checkpoint = eventually(Duration::from_secs(10), || async {
        let at = Relay::checkpoint(&f.store, &f.config.name).await.unwrap();
        (at == 1).then_some(at)
    })
    .await;
    assert_eq!(
        checkpoint,
        Some(1),
        "the event before the stall is checkpointed"
    );
    // Retrying changes nothing: still stalled at the same event, nothing after it sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stalls.borrow().map(|s| s.position), Some(2));
    assert_eq!(stream_count(&f).await, 1);
    assert!(!task.is_finished(), "a stalled relay keeps running");
    task.abort();

    // With the default event bound the same server is accepted.
    let Some(store) = fresh_store(
        BackendKind::Sqlite,
        StoreConfig::default(),
        Arc::new(tests::test_clock()),
    )
    .await
    else {
        return;
    };
    let relay = Relay::new(store, f.nats.clone(), tests::scratch_relay_config()).unwrap();
    relay.check_payload_limit().unwrap();
    f.finish().await;
}

/// A TCP proxy to PostgreSQL that can go silent: connections stay open but nothing
/// passes either way, as in a network partition.
struct SilentProxy {
    port: u16,
    silent: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<()>,
}

impl SilentProxy {
    async fn start(target: (String, u16)) -> SilentProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = silent.clone();
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = tokio::net::TcpStream::connect(target.clone()).await else {
                    return;
                };
                let (client_rx, client_tx) = client.into_split();
                let (server_rx, server_tx) = server.into_split();
                for (mut from, mut to, gate) in [
                    (
                        Box::new(client_rx) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(server_tx) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                        gate.clone(),
                    ),
                    (Box::new(server_rx), Box::new(client_tx), gate.clone()),
                ] {
                    pipes.spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                // Across a partition a close does not arrive either:
                                // the other side stays open until the proxy stops.
                                Ok(0) | Err(_) if gate.load(Ordering::SeqCst) => {
                                    let _keep_open = to;
                                    return std::future::pending().await;
                                }
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if !gate.load(Ordering::SeqCst)
                                && to.write_all(&buf[..n]).await.is_err()
                            {
                                return;
                            }
                        }
                    });
                }
            }
        });
        SilentProxy { port, silent, task }
    }
}

/// A leader cut off from PostgreSQL (its lock connection silent, not closed) stops
/// publishing within the lease deadline instead of waiting on TCP for hours; once the
/// server drops that connection, a standby takes over and the stream stays exactly
/// once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_cut_off_from_postgres_stops_publishing_before_a_standby_takes_over() {
    let Some(f) = fixture(BackendKind::Postgres).await else {
        return;
    };
    let pool = f.store.pg_pool().unwrap().clone();
    let search_path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&pool)
        .await
        .unwrap();
    let direct: sqlx::postgres::PgConnectOptions = tests::test_database_url().parse().unwrap();
    let proxy = SilentProxy::start((direct.get_host().to_string(), direct.get_port())).await;
    let through_proxy = direct
        .clone()
        .host("127.0.0.1")
        .port(proxy.port)
        .options([("search_path", search_path.as_str())]);
    let leader_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(through_proxy)
        .await
        .unwrap();
    let leader_store = Store::from_pg_pool(
        leader_pool,
        StoreConfig::default(),
        Arc::new(tests::test_clock()),
    );
    let (leader_nats, standby_nats) = (nats().await.unwrap(), nats().await.unwrap());
    let leader = Relay::new(leader_store, leader_nats.clone(), f.config.clone()).unwrap();
    let leader = tokio::spawn(leader.run(std::future::pending()));
    append(&f.store, 20, 4).await;
    wait_for_count(&f, 20, Duration::from_secs(20)).await;
    let standby = spawn_relay(&f, standby_nats.clone());

    // The partition: the leader's connections go silent but stay open, so PostgreSQL
    // keeps its lock; the leader must notice by itself.
    proxy.silent.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sent_before = leader_nats
        .statistics()
        .out_messages
        .load(Ordering::Relaxed);
    append(&f.store, 20, 4).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        leader_nats
            .statistics()
            .out_messages
            .load(Ordering::Relaxed),
        sent_before,
        "a leader that cannot reach its lock connection publishes nothing"
    );
    assert_eq!(
        stream_count(&f).await,
        20,
        "and the standby waits for the lock"
    );

    // The server notices the dead connection (here: the proxy closes it) and the
    // standby takes over from the checkpoint.
    proxy.task.abort();
    wait_for_count(&f, 40, Duration::from_secs(30)).await;
    assert!(
        standby_nats
            .statistics()
            .out_messages
            .load(Ordering::Relaxed)
            > 0
    );
    assert!(
        !leader.is_finished(),
        "the cut-off leader keeps retrying as a standby"
    );
    leader.abort();
    standby.abort();
    assert_exactly_once_in_order(&f).await;
    f.finish().await;
}

/// A stream whose positions are out of order in one stretch (what a relay restart can
/// leave: an event re-sent after later ones were stored). A new consumer starting after
/// position 4 still receives every event above 4, though a binary search alone lands
/// past some of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_consumer_misses_nothing_after_an_out_of_order_stretch() {
    let Some(nats) = nats().await else {
        return;
    };
    let config = tests::scratch_relay_config();
    let context = jetstream::new(nats.clone());
    context.create_stream(config.stream_config()).await.unwrap();
    // Sequence 7 holds position 4, stored after positions 5, 6 and 7.
    let positions = [1, 2, 3, 5, 6, 7, 4, 8, 9, 10, 11, 12];
    for &position in &positions {
        let event = RecordedEvent {
            position,
            event_id: Uuid::now_v7(),
            stream_type: "order".into(),
            stream_id: format!("o-{position}"),
            version: 1,
            event_type: "Noted".into(),
            schema_version: 1,
            payload_text: json!({ "position": position }).to_string(),
            metadata_text: "{}".into(),
            correlation_id: None,
            causation_id: None,
            actor: None,
            recorded_at: chrono::Utc::now(),
            hash: vec![0; 32],
            prev_hash: None,
        };
        let (subject, message) = ce::encode(&config.subject_prefix, event);
        context
            .send_publish(subject, message)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut feed = JetStreamFeed::open(
        nats.clone(),
        JetStreamFeedConfig::new(&config.stream, "after-four"),
        4,
    )
    .await
    .unwrap();
    let received: Vec<i64> = take(&mut feed, 8)
        .await
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(received, vec![5, 6, 7, 8, 9, 10, 11, 12]);
    let _ = context.delete_stream(&config.stream).await;
}

/// Appends `count` events in appends of `batch`, round-robin over 7 new streams (ids
/// starting with `tag`) of two types, half of them with correlation and causation ids.
async fn append_batches(store: &Store, tag: &str, count: u64, batch: u64) {
    let mut versions = BTreeMap::new();
    let mut n = 0;
    while n < count {
        let stream_no = (n / batch) % 7;
        let stream = StreamRef::new(
            if stream_no % 2 == 0 { "cart" } else { "order" },
            format!("{tag}-{stream_no}"),
        );
        let version = versions.entry(stream_no).or_insert(0i64);
        let events: Vec<NewEvent> = (n..count.min(n + batch))
            .map(|i| {
                let mut metadata = BTreeMap::new();
                if i % 2 == 0 {
                    metadata.insert("correlation_id".into(), Uuid::now_v7().to_string());
                    metadata.insert("causation_id".into(), Uuid::now_v7().to_string());
                }
                event(i, metadata)
            })
            .collect();
        let appended = events.len() as i64;
        store.append(&stream, *version, events, None).await.unwrap();
        *version += appended;
        n += appended as u64;
    }
}

/// The relay's own lean log read (fewer columns, decoded straight into the message)
/// produces exactly the messages of the full read encoded by `message::encode`, for
/// awkward stream ids, events with and without correlation ids, and every window.
async fn the_lean_log_read_encodes_what_the_full_read_does(kind: BackendKind) {
    let Some(store) =
        fresh_store(kind, StoreConfig::default(), Arc::new(tests::test_clock())).await
    else {
        return;
    };
    for id in awkward_stream_ids() {
        let mut metadata = BTreeMap::new();
        if id.len() % 2 == 0 {
            metadata.insert("correlation_id".into(), Uuid::now_v7().to_string());
            metadata.insert("actor".into(), format!("actor {id}"));
        }
        // PostgreSQL text cannot hold NUL; those ids are refused and not needed here.
        let _ = store
            .append(
                &StreamRef::new("cart", id),
                0,
                vec![event(3, metadata)],
                None,
            )
            .await;
    }
    append(&store, 40, 5).await;
    append_batches(&store, "bulk", 600, 50).await;
    // On PostgreSQL other tests' transactions may hold the gap-safe horizon back for a
    // moment: wait until every row written here may be handed out, so both reads see
    // the same log.
    let head = store.last_position().await.unwrap();
    assert!(store
        .wait_for_position(head, Duration::from_secs(30))
        .await
        .unwrap());
    let prefix = "lean.commerce";
    let full = |after: i64, limit: i64| {
        let store = store.clone();
        async move {
            store
                .read_all(after, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|e| ce::encode_event(prefix, e))
                .collect::<Vec<_>>()
        }
    };
    // One reader for every read, as the relay reads (on SQLite its own connection).
    let mut reader = infra::relay::LogReader::new(&store);
    let everything = reader.read_encoded(prefix, 0, head + 1).await.unwrap();
    assert!(everything.len() > 900, "{} events", everything.len());
    assert_same(&everything, &full(0, head + 1).await, "the whole log");
    for (after, limit) in [
        (0, 1),
        (17, 100),
        (head / 2, 333),
        (head - 5, 1000),
        (head, 10),
    ] {
        let lean = reader.read_encoded(prefix, after, limit).await.unwrap();
        let what = format!("after {after}, limit {limit}");
        assert_same(&lean, &full(after, limit).await, &what);
    }
}

/// Both lists hold the same messages (reporting the first difference, not both lists).
fn assert_same(lean: &[ce::Encoded], full: &[ce::Encoded], what: &str) {
    assert_eq!(lean.len(), full.len(), "{what}: as many events");
    if let Some((a, b)) = lean.iter().zip(full).find(|(a, b)| a != b) {
        panic!("{what}: the lean read gives\n{a:?}\nthe full read\n{b:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_lean_log_read_encodes_what_the_full_read_does() {
    the_lean_log_read_encodes_what_the_full_read_does(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_lean_log_read_encodes_what_the_full_read_does() {
    the_lean_log_read_encodes_what_the_full_read_does(BackendKind::Sqlite).await;
}

/// The relay reads a backlog itself in large batches and follows the live tail once
/// caught up; a burst larger than a batch sends it back to its own reads. Across both
/// switches every event is published once, in order.
async fn a_relay_switching_between_backlog_reads_and_the_tail_keeps_order(kind: BackendKind) {
    let Some(f) = fixture(kind).await else {
        return;
    };
    // A backlog of several batches and a short one.
    append_batches(&f.store, "backlog", 2_345, 50).await;
    let relay = spawn_relay(&f, f.nats.clone());
    wait_for_count(&f, 2_345, Duration::from_secs(60)).await;
    // Caught up: single appends reach it through the tail.
    append(&f.store, 30, 4).await;
    wait_for_count(&f, 2_375, Duration::from_secs(30)).await;
    // A burst of more than one batch at once.
    append_batches(&f.store, "burst", 1_600, 400).await;
    append(&f.store, 10, 3).await;
    wait_for_count(&f, 3_985, Duration::from_secs(60)).await;
    // The checkpoint follows to the last event.
    let head = f.store.head_position().await.unwrap();
    let checkpoint_reached = eventually(Duration::from_secs(10), || async {
        let checkpoint = Relay::checkpoint(&f.store, &f.config.name).await.ok()?;
        (checkpoint == head).then_some(())
    })
    .await;
    relay.abort();
    assert!(
        checkpoint_reached.is_some(),
        "the checkpoint never reached {head}"
    );
    assert_exactly_once_in_order(&f).await;
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_relay_switching_between_backlog_reads_and_the_tail_keeps_order() {
    a_relay_switching_between_backlog_reads_and_the_tail_keeps_order(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_relay_switching_between_backlog_reads_and_the_tail_keeps_order() {
    a_relay_switching_between_backlog_reads_and_the_tail_keeps_order(BackendKind::Sqlite).await;
}
