//! The event store contract, run against PostgreSQL and SQLite alike.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::PersistedEventRepository;
use cqrs_es::{AggregateError, CqrsFramework, EventStore};
use futures_util::StreamExt;
use infra::store::{AppendRequest, NewEvent, StoreConfig, StreamRef};
use infra::{Store, StoreError};
use rand::Rng;
use serde_json::json;
use tests::counter::{upcasters, Counter, CounterCommand};
use tests::{fresh_store, test_clock, BackendKind};
use uuid::Uuid;

fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "Incremented".into(),
        schema_version: 2,
        payload: json!({ "by": n }),
        metadata: BTreeMap::new(),
    }
}

fn events(count: usize) -> Vec<NewEvent> {
    (0..count as i64).map(event).collect()
}

async fn store(kind: BackendKind) -> Option<Store> {
    fresh_store(kind, StoreConfig::default(), Arc::new(test_clock())).await
}

/// Runs a raw statement the way any client could, bypassing the store.
async fn raw(store: &Store, sql: &str) -> Result<u64, sqlx::Error> {
    match (store.pg_pool(), store.sqlite_pool()) {
        (Some(pool), _) => sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        (_, Some(pool)) => sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        _ => unreachable!("a store has one backend"),
    }
}

async fn append_only_is_enforced_by_the_database(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let stream = StreamRef::new("counter", "c1");
    store.append(&stream, 0, events(3), None).await.unwrap();

    for sql in [
        "UPDATE events SET payload = '{\"by\": 1000}'",
        "UPDATE events SET version = version + 10",
        "DELETE FROM events",
        "DELETE FROM events WHERE version = 3",
    ] {
        let err = raw(&store, sql).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    if kind == BackendKind::Postgres {
        let err = raw(&store, "TRUNCATE events").await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert_eq!(store.read_stream(&stream, 0).await.unwrap().len(), 3);
}

async fn exactly_one_concurrent_append_wins(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let stream = StreamRef::new("counter", "contended");
    store.append(&stream, 0, events(1), None).await.unwrap();

    let writers = 16;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let stream = stream.clone();
        tasks.push(tokio::spawn(async move {
            let batch: Vec<_> = (0..3).map(|i| event(w * 100 + i)).collect();
            store.append(&stream, 1, batch, None).await
        }));
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for (w, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(outcome) => winners.push((w as i64, outcome)),
            Err(StoreError::Conflict { expected, .. }) => {
                assert_eq!(expected, 1);
                conflicts += 1;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    assert_eq!(conflicts, writers - 1);
    let (winner, outcome) = winners[0];
    assert_eq!(outcome.version, 4);
    let stored = store.read_stream(&stream, 0).await.unwrap();
    assert_eq!(stored.len(), 4, "nothing partial from the losers");
    for e in &stored[1..] {
        let by = e.payload().unwrap()["by"].as_i64().unwrap();
        assert_eq!(by / 100, winner, "all new events come from the winner");
    }
}

async fn an_append_is_atomic_and_contiguous(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let stream = StreamRef::new("counter", "batch");
    let outcome = store.append(&stream, 0, events(5), None).await.unwrap();
    assert_eq!(outcome.version, 5);
    assert_eq!(outcome.last_position - outcome.first_position, 4);

    // A batch whose last event reuses an existing event id fails as a whole.
    let existing = store.read_stream(&stream, 0).await.unwrap()[0].event_id;
    let mut batch = events(4);
    batch[3].event_id = existing;
    let err = store.append(&stream, 5, batch, None).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidAppend(_)), "{err}");
    assert_eq!(store.read_stream(&stream, 0).await.unwrap().len(), 5);

    // Versions are gap-free: appending past the head is a conflict.
    let err = store.append(&stream, 7, events(1), None).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    // And so is appending at an old version.
    let err = store.append(&stream, 3, events(1), None).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(store
        .append(&stream, 0, events(1), None)
        .await
        .unwrap_err()
        .is_conflict());
}

async fn the_tail_never_skips_duplicates_or_reorders(kind: BackendKind) {
    tail_delivers_every_event_once_in_order(kind, StoreConfig::default().tail_batch).await;
}

/// Small batches are nearly always full, so the tail reads the next one ahead almost
/// all the time.
async fn the_tail_reading_ahead_never_skips_duplicates_or_reorders(kind: BackendKind) {
    tail_delivers_every_event_once_in_order(kind, 16).await;
}

async fn tail_delivers_every_event_once_in_order(kind: BackendKind, tail_batch: i64) {
    const WRITERS: usize = 16;
    const TOTAL: usize = 20_000;
    let config = StoreConfig {
        max_connections: 24,
        idle_poll: Duration::from_millis(50),
        tail_batch,
        ..StoreConfig::default()
    };
    let Some(store) = fresh_store(kind, config, Arc::new(test_clock())).await else {
        return;
    };

    let tailer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tail = store.subscribe(0);
            let mut seen = Vec::with_capacity(TOTAL);
            while seen.len() < TOTAL {
                let next = tokio::time::timeout(Duration::from_secs(60), tail.next())
                    .await
                    .expect("the tail stalled")
                    .expect("the tail never ends")
                    .expect("tail read");
                seen.push((next.position, next.event_id));
            }
            // Nothing more than what was written may arrive.
            let extra = tokio::time::timeout(Duration::from_millis(300), tail.next()).await;
            assert!(
                extra.is_err(),
                "the tail delivered more events than were written"
            );
            seen
        })
    };

    let per_writer = TOTAL / WRITERS;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let stream = StreamRef::new("counter", format!("writer-{w}"));
            let mut ids = Vec::with_capacity(per_writer);
            let mut version = 0;
            while (version as usize) < per_writer {
                let size = rand::rng()
                    .random_range(1..=25)
                    .min(per_writer - version as usize);
                let batch = events(size);
                ids.extend(batch.iter().map(|e| e.event_id));
                let outcome = store.append(&stream, version, batch, None).await.unwrap();
                version = outcome.version;
            }
            ids
        }));
    }
    let mut written = HashSet::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    assert_eq!(written.len(), TOTAL);

    let seen = tailer.await.unwrap();
    let positions: Vec<i64> = seen.iter().map(|(p, _)| *p).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions strictly increase"
    );
    let delivered: HashSet<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(delivered.len(), TOTAL, "no duplicates");
    assert_eq!(delivered, written, "every written event delivered");
    // With no failed appends the positions are exactly 1..=TOTAL: no gap anywhere.
    assert_eq!(positions.first(), Some(&1));
    assert_eq!(positions.last(), Some(&(TOTAL as i64)));
    assert_eq!(store.head_position().await.unwrap(), TOTAL as i64);
    assert!(store.verify().await.unwrap().is_ok());
}

async fn read_all_pages_in_position_order(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let mut last = 0;
    for s in 0..5 {
        let stream = StreamRef::new("counter", format!("s{s}"));
        last = store
            .append(&stream, 0, events(4), None)
            .await
            .unwrap()
            .last_position;
    }
    // Other transactions in the cluster may briefly hold the safe head back.
    assert!(store
        .wait_for_position(last, Duration::from_secs(10))
        .await
        .unwrap());
    let mut after = 0;
    let mut all = Vec::new();
    loop {
        let page = store.read_all(after, 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().unwrap().position;
        all.extend(page);
    }
    assert_eq!(all.len(), 20);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(
        store.head_position().await.unwrap(),
        all.last().unwrap().position
    );
    let by_type = store.read_type("counter", 0, 100).await.unwrap();
    assert_eq!(by_type.len(), 20);
    assert!(store.read_type("other", 0, 100).await.unwrap().is_empty());
}

async fn every_event_carries_its_envelope(kind: BackendKind) {
    let clock = test_clock();
    let Some(store) = fresh_store(kind, StoreConfig::default(), Arc::new(clock.clone())).await
    else {
        return;
    };
    let cqrs = CqrsFramework::new(store.aggregate_store::<Counter>(upcasters()), vec![], ());
    let correlation = Uuid::now_v7();
    let causation = Uuid::now_v7();
    let metadata = std::collections::HashMap::from([
        ("correlation_id".to_string(), correlation.to_string()),
        ("causation_id".to_string(), causation.to_string()),
        ("actor".to_string(), "staff:alice".to_string()),
        ("idempotency_key".to_string(), "k-1".to_string()),
    ]);
    cqrs.execute_with_metadata(
        "c-env",
        CounterCommand::Increment { by: 7, times: 2 },
        metadata,
    )
    .await
    .unwrap();

    let stored = store
        .read_stream(&StreamRef::new("counter", "c-env"), 0)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e.event_id.get_version_num(), 7, "event ids are UUID v7");
        assert_eq!(e.stream_type, "counter");
        assert_eq!(e.stream_id, "c-env");
        assert_eq!(e.version, i as i64 + 1);
        assert_eq!(e.event_type, "Incremented");
        assert_eq!(e.schema_version, 2);
        assert_eq!(e.payload().unwrap(), json!({"by": 7}));
        assert_eq!(e.correlation_id, Some(correlation));
        assert_eq!(e.causation_id, Some(causation));
        assert_eq!(e.actor.as_deref(), Some("staff:alice"));
        assert_eq!(e.metadata().unwrap()["idempotency_key"], "k-1");
        assert_eq!(e.recorded_at, infra::Clock::now(&clock));
        assert_eq!(e.hash.len(), 32);
    }
    assert_ne!(stored[0].event_id, stored[1].event_id);

    // Metadata that claims to be a correlation id must be one.
    let bad =
        std::collections::HashMap::from([("correlation_id".to_string(), "not-a-uuid".to_string())]);
    let err = cqrs
        .execute_with_metadata("c-env", CounterCommand::Increment { by: 1, times: 1 }, bad)
        .await
        .unwrap_err();
    assert!(matches!(err, AggregateError::UnexpectedError(_)), "{err}");
}

async fn the_hash_chain_detects_tampering(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let a = StreamRef::new("counter", "a");
    let b = StreamRef::new("counter", "b");
    store.append(&a, 0, events(3), None).await.unwrap();
    store.append(&b, 0, events(2), None).await.unwrap();
    let last = store
        .append(&a, 3, events(2), None)
        .await
        .unwrap()
        .last_position;
    assert!(store
        .wait_for_position(last, Duration::from_secs(10))
        .await
        .unwrap());

    let chain = store.read_stream(&a, 0).await.unwrap();
    assert_eq!(chain[0].prev_hash, None);
    for pair in chain.windows(2) {
        assert_eq!(pair[1].prev_hash.as_ref(), Some(&pair[0].hash));
    }
    let report = store.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.events, report.streams), (7, 2));

    // Someone with the power to bypass the triggers edits history: verify notices.
    match kind {
        BackendKind::Postgres => {
            raw(
                &store,
                "ALTER TABLE events DISABLE TRIGGER events_no_update",
            )
            .await
            .unwrap();
        }
        BackendKind::Sqlite => {
            raw(&store, "DROP TRIGGER events_no_update").await.unwrap();
        }
    }
    let changed = raw(
        &store,
        "UPDATE events SET payload = '{\"by\":999}' WHERE stream_id = 'a' AND version = 2",
    )
    .await
    .unwrap();
    assert_eq!(changed, 1);
    let report = store.verify().await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].version, 2);
    assert!(report.problems[0].problem.contains("hash"));
}

async fn snapshots_bound_the_events_read_on_load(kind: BackendKind) {
    let config = StoreConfig {
        snapshot_every: 50,
        ..StoreConfig::default()
    };
    let Some(store) = fresh_store(kind, config, Arc::new(test_clock())).await else {
        return;
    };
    let cqrs = CqrsFramework::new(store.aggregate_store::<Counter>(upcasters()), vec![], ());
    // 1,000 events in commands of 1..=7 events.
    let mut written = 0;
    let mut expected_total = 0;
    while written < 1000 {
        let times = (written % 7 + 1).min(1000 - written);
        cqrs.execute("long", CounterCommand::Increment { by: 2, times })
            .await
            .unwrap();
        written += times;
        expected_total += 2 * times as i64;
    }
    let snapshot = store
        .load_snapshot(&StreamRef::new("counter", "long"))
        .await
        .unwrap()
        .expect("a snapshot exists");
    assert_eq!(snapshot.version, 1000);

    let es = store.aggregate_store::<Counter>(upcasters());
    let before = store.events_read();
    let loaded = es.load_aggregate("long").await.unwrap();
    let read = store.events_read() - before;
    assert!(read <= 50, "read {read} events after the snapshot");
    let state = loaded.aggregate.clone();
    assert_eq!(state.total, expected_total);
    assert_eq!(state.increments, 1000);

    // One more command lands after the snapshot and is replayed on top of it.
    cqrs.execute("long", CounterCommand::Increment { by: 5, times: 1 })
        .await
        .unwrap();
    let before = store.events_read();
    let loaded = es.load_aggregate("long").await.unwrap();
    assert_eq!(store.events_read() - before, 1);
    assert_eq!(loaded.aggregate.total, expected_total + 5);
}

async fn undecodable_or_impossible_snapshots_are_ignored(kind: BackendKind) {
    let config = StoreConfig {
        snapshot_every: 5,
        ..StoreConfig::default()
    };
    let Some(store) = fresh_store(kind, config, Arc::new(test_clock())).await else {
        return;
    };
    let cqrs = CqrsFramework::new(store.aggregate_store::<Counter>(upcasters()), vec![], ());
    cqrs.execute("s", CounterCommand::Increment { by: 1, times: 12 })
        .await
        .unwrap();
    let es = store.aggregate_store::<Counter>(upcasters());

    // A snapshot from an older state shape that no longer decodes.
    raw(
        &store,
        "UPDATE snapshots SET payload = '{\"legacy\": true}'",
    )
    .await
    .unwrap();
    let loaded = es.load_aggregate("s").await.unwrap();
    assert_eq!(loaded.aggregate.total, 12);

    // A snapshot that claims more events than the stream has.
    raw(
        &store,
        "UPDATE snapshots SET payload = '{\"total\": 1000, \"increments\": 999}', version = 999",
    )
    .await
    .unwrap();
    let loaded = es.load_aggregate("s").await.unwrap();
    assert_eq!(loaded.aggregate.total, 12);

    // And commands keep working, replacing the bad snapshot.
    cqrs.execute("s", CounterCommand::Increment { by: 1, times: 3 })
        .await
        .unwrap();
    let loaded = es.load_aggregate("s").await.unwrap();
    assert_eq!(loaded.aggregate.total, 15);
}

async fn old_event_versions_load_through_upcasters(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let stream = StreamRef::new("counter", "legacy");
    // A v1 fixture row, as an older release wrote it.
    let v1 = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "Incremented".into(),
        schema_version: 1,
        payload: json!({ "amount": 40 }),
        metadata: BTreeMap::new(),
    };
    store.append(&stream, 0, vec![v1], None).await.unwrap();
    let stored = store.read_stream(&stream, 0).await.unwrap();
    assert_eq!(stored[0].schema_version, 1);

    let cqrs = CqrsFramework::new(store.aggregate_store::<Counter>(upcasters()), vec![], ());
    cqrs.execute("legacy", CounterCommand::Increment { by: 2, times: 1 })
        .await
        .unwrap();
    let es = store.aggregate_store::<Counter>(upcasters());
    let loaded = es.load_aggregate("legacy").await.unwrap();
    let state = loaded.aggregate;
    assert_eq!((state.total, state.increments), (42, 2));

    // Without the upcaster the old row does not load: the upcaster did the work.
    let bare = store.aggregate_store::<Counter>(vec![]);
    assert!(bare.load_aggregate("legacy").await.is_err());
}

async fn replay_streams_deliver_everything(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    for s in 0..3 {
        store
            .append(
                &StreamRef::new("counter", format!("r{s}")),
                0,
                events(3),
                None,
            )
            .await
            .unwrap();
    }
    let last = store
        .append(&StreamRef::new("other", "x"), 0, events(2), None)
        .await
        .unwrap()
        .last_position;
    assert!(store
        .wait_for_position(last, Duration::from_secs(10))
        .await
        .unwrap());
    let mut all = PersistedEventRepository::stream_all_events::<Counter>(&store)
        .await
        .unwrap();
    let mut count = 0;
    while let Some(e) = all.next::<Counter>(&upcasters()).await {
        e.unwrap();
        count += 1;
    }
    assert_eq!(count, 9);
    let mut one = PersistedEventRepository::stream_events::<Counter>(&store, "r1")
        .await
        .unwrap();
    let mut count = 0;
    while let Some(e) = one.next::<Counter>(&upcasters()).await {
        assert_eq!(e.unwrap().aggregate_id, "r1");
        count += 1;
    }
    assert_eq!(count, 3);
}

/// Concurrent appends are written together (one group on SQLite): a conflicting append
/// fails alone and stores nothing, every clean one is stored, and the log stays whole.
async fn a_conflict_fails_only_its_own_append(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    // Every stream starts at version 1; half of the appends then claim version 5.
    for n in 0..40 {
        let stream = StreamRef::new("counter", format!("g{n}"));
        store.append(&stream, 0, events(1), None).await.unwrap();
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let stream = StreamRef::new("counter", format!("g{n}"));
                let expected = if n % 2 == 0 { 1 } else { 5 };
                barrier.wait().await;
                (n, store.append(&stream, expected, events(3), None).await)
            })
        })
        .collect();
    let mut last = 0;
    for task in tasks {
        let (n, result) = task.await.unwrap();
        let stream = StreamRef::new("counter", format!("g{n}"));
        let stored = store.read_stream(&stream, 0).await.unwrap();
        if n % 2 == 0 {
            let outcome = result.unwrap_or_else(|e| panic!("clean append {n} failed: {e}"));
            last = last.max(outcome.last_position);
            assert_eq!(outcome.version, 4);
            assert_eq!(outcome.last_position - outcome.first_position, 2);
            assert_eq!(stored.len(), 4, "stream g{n}");
        } else {
            assert!(
                matches!(result, Err(StoreError::Conflict { .. })),
                "append {n}: {result:?}"
            );
            assert_eq!(
                stored.len(),
                1,
                "nothing of the conflicting append {n} is stored"
            );
        }
    }
    // The tail hands out an event once no older transaction can still commit; other
    // tests' transactions on the same server may hold that back for a moment.
    assert!(store
        .wait_for_position(last, Duration::from_secs(30))
        .await
        .unwrap());
    let all = store.read_all(0, 10_000).await.unwrap();
    assert_eq!(all.len(), 40 + 20 * 3);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    assert!(store.verify().await.unwrap().is_ok());
}

/// One group (one transaction) that mixes clean appends with a version conflict, a
/// command id already recorded, two appends to one stream (the second continuing the
/// first, then a third expecting what the first found), an empty append and an event id
/// already in the log: each refused append fails alone and stores nothing; every clean
/// one is stored, contiguous, in the log.
async fn a_group_fails_only_its_refused_appends(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let request =
        |id: &str, expected: i64, events: Vec<NewEvent>, command: Option<Uuid>| AppendRequest {
            stream: StreamRef::new("counter", id),
            expected_version: expected,
            events,
            snapshot: None,
            command_id: command,
        };
    let done = Uuid::now_v7();
    let taken = event(7);
    let first = store
        .append_all(vec![
            request("recorded", 0, events(1), Some(done)),
            request("taken", 0, vec![taken.clone()], None),
        ])
        .await;
    assert!(first.iter().all(Result::is_ok), "{first:?}");

    let group = store
        .append_all(vec![
            request("clean-1", 0, events(2), Some(Uuid::now_v7())),
            request("stale", 3, events(1), None),
            request("recorded", 1, events(1), Some(done)),
            request("clean-2", 0, events(3), None),
            request("clean-2", 3, events(1), None),
            request("clean-2", 0, events(1), None),
            request("empty", 0, Vec::new(), None),
            request("clean-3", 0, events(1), None),
        ])
        .await;
    assert_eq!(group.len(), 8);
    let ok = |i: usize| {
        group[i]
            .as_ref()
            .unwrap_or_else(|e| panic!("{kind:?}: append {i} refused: {e}"))
    };
    assert_eq!(
        (ok(0).version, ok(3).version, ok(4).version, ok(7).version),
        (2, 3, 4, 1)
    );
    assert_eq!(ok(4).first_position, ok(3).last_position + 1);
    assert!(
        matches!(group[1], Err(StoreError::Conflict { expected: 3, .. })),
        "{:?}",
        group[1]
    );
    assert!(
        matches!(group[2], Err(StoreError::DuplicateCommand)),
        "{:?}",
        group[2]
    );
    assert!(
        matches!(group[5], Err(StoreError::Conflict { expected: 0, .. })),
        "{:?}",
        group[5]
    );
    assert!(matches!(group[6], Err(StoreError::InvalidAppend(_))));
    for (id, stored) in [
        ("clean-1", 2),
        ("stale", 0),
        ("recorded", 1),
        ("clean-2", 4),
        ("empty", 0),
        ("clean-3", 1),
    ] {
        let stream = StreamRef::new("counter", id);
        assert_eq!(
            store.read_stream(&stream, 0).await.unwrap().len(),
            stored,
            "{kind:?}: {id}"
        );
    }

    // A group whose one bad append fails the whole call (an event id already in the log)
    // is written again append by append: only the bad one fails.
    let again = store
        .append_all(vec![
            request("clean-4", 0, events(1), None),
            request("reused", 0, vec![taken], None),
            request("clean-5", 0, events(2), None),
        ])
        .await;
    assert!(again[0].is_ok() && again[2].is_ok(), "{kind:?}: {again:?}");
    assert!(
        matches!(again[1], Err(StoreError::InvalidAppend(_))),
        "{:?}",
        again[1]
    );
    let reused = StreamRef::new("counter", "reused");
    assert!(store.read_stream(&reused, 0).await.unwrap().is_empty());

    let last = again[2].as_ref().unwrap().last_position;
    assert!(store
        .wait_for_position(last, Duration::from_secs(30))
        .await
        .unwrap());
    let all = store.read_all(0, 1_000).await.unwrap();
    assert_eq!(all.len(), 2 + 2 + 4 + 1 + 1 + 2);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    assert!(store.verify().await.unwrap().is_ok());
}

/// Appends whose callers are aborted at any moment, some before their group is written,
/// some while it is: every acknowledged append is stored whole, every other one is
/// stored whole or not at all, and the log stays a valid chain.
async fn aborted_appends_are_stored_whole_or_not_at_all(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let tasks: Vec<_> = (0..48)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = StreamRef::new("counter", format!("abort-{n}"));
                store.append(&stream, 0, events(3), None).await
            })
        })
        .collect();
    // Abort every other caller, at whatever point it has reached.
    for (n, task) in tasks.iter().enumerate() {
        if n % 2 == 1 {
            task.abort();
        }
        tokio::task::yield_now().await;
    }
    let mut last = 0;
    for (n, task) in tasks.into_iter().enumerate() {
        let stream = StreamRef::new("counter", format!("abort-{n}"));
        let acknowledged = match task.await {
            Ok(outcome) => {
                let outcome = outcome.unwrap();
                last = last.max(outcome.last_position);
                true
            }
            Err(e) => {
                assert!(e.is_cancelled());
                false
            }
        };
        let stored = store.read_stream(&stream, 0).await.unwrap().len();
        if acknowledged {
            assert_eq!(stored, 3, "{kind:?}: acknowledged append {n}");
        } else {
            assert!(
                stored == 0 || stored == 3,
                "{kind:?}: append {n} stored {stored} of 3"
            );
        }
    }
    // Let any write still in flight finish, then check the whole log.
    let after = StreamRef::new("counter", "after-aborts");
    let outcome = store.append(&after, 0, events(1), None).await.unwrap();
    assert!(store
        .wait_for_position(outcome.last_position.max(last), Duration::from_secs(30))
        .await
        .unwrap());
    let all = store.read_all(0, 1_000).await.unwrap();
    assert_eq!(
        all.len() % 3,
        1,
        "{kind:?}: whole appends plus the last one"
    );
    assert!(store.verify().await.unwrap().is_ok());
}

async fn oversized_events_and_appends_are_refused_whole(kind: BackendKind) {
    let config = StoreConfig {
        max_event_bytes: 2_000,
        max_append_bytes: 5_000,
        ..StoreConfig::default()
    };
    let Some(store) = fresh_store(kind, config, Arc::new(test_clock())).await else {
        return;
    };
    let stream = StreamRef::new("counter", "big");
    let sized = |bytes: usize| NewEvent {
        payload: json!({ "note": "x".repeat(bytes) }),
        ..event(1)
    };
    let err = store
        .append(&stream, 0, vec![event(1), sized(2_100)], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { limit: 2_000, .. }),
        "{err}"
    );
    // Each event fits, together they do not.
    let err = store
        .append(&stream, 0, (0..3).map(|_| sized(1_800)).collect(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { limit: 5_000, .. }),
        "{err}"
    );
    assert_eq!(store.head_position().await.unwrap(), 0, "nothing stored");
    let outcome = store
        .append(&stream, 0, vec![sized(1_800), sized(1_800)], None)
        .await
        .unwrap();
    assert_eq!(outcome.last_position, 2);
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(tests::BackendKind::Postgres).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(tests::BackendKind::Sqlite).await;
                }
            )*
        }
    };
}

contract!(
    append_only_is_enforced_by_the_database,
    exactly_one_concurrent_append_wins,
    an_append_is_atomic_and_contiguous,
    the_tail_never_skips_duplicates_or_reorders,
    the_tail_reading_ahead_never_skips_duplicates_or_reorders,
    read_all_pages_in_position_order,
    every_event_carries_its_envelope,
    the_hash_chain_detects_tampering,
    snapshots_bound_the_events_read_on_load,
    undecodable_or_impossible_snapshots_are_ignored,
    old_event_versions_load_through_upcasters,
    replay_streams_deliver_everything,
    a_conflict_fails_only_its_own_append,
    a_group_fails_only_its_refused_appends,
    aborted_appends_are_stored_whole_or_not_at_all,
    oversized_events_and_appends_are_refused_whole,
);

/// Appenders that give up on the append lock (`lock_timeout`) never leave it held: after
/// a stress of six sessions at a 1 ms lock timeout, no idle session holds the lock and a
/// normal append goes through at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_append_lock_never_outlives_a_failed_call() {
    let Some(store) = store(BackendKind::Postgres).await else {
        return;
    };
    let pool = store.pg_pool().expect("a PostgreSQL store").clone();
    let search_path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&pool)
        .await
        .unwrap();
    let options = tests::test_database_url()
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .options([
            ("search_path", search_path.as_str()),
            ("lock_timeout", "1ms"),
        ]);
    let impatient = sqlx::postgres::PgPoolOptions::new()
        .max_connections(6)
        .connect_with(options)
        .await
        .unwrap();
    let impatient = Store::from_pg_pool(impatient, StoreConfig::default(), Arc::new(test_clock()));
    let tasks: Vec<_> = (0..6)
        .map(|w| {
            let store = impatient.clone();
            tokio::spawn(async move {
                let stream = StreamRef::new("counter", format!("stress-{w}"));
                let (mut version, mut timeouts) = (0, 0);
                for _ in 0..250 {
                    match store.append(&stream, version, events(1), None).await {
                        Ok(outcome) => version = outcome.version,
                        Err(_) => timeouts += 1,
                    }
                }
                (version, timeouts)
            })
        })
        .collect();
    let mut appended = 0;
    for task in tasks {
        appended += task.await.unwrap().0;
    }
    assert!(appended > 0, "some appends must get through");
    let held_by_idle: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
          WHERE l.locktype = 'advisory' AND l.granted AND a.state LIKE 'idle%' \
            AND ((l.classid::bigint << 32) | l.objid::bigint) = 7723390414",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(held_by_idle, 0, "an idle session kept the append lock");
    let stream = StreamRef::new("counter", "after-stress");
    tokio::time::timeout(
        Duration::from_secs(5),
        store.append(&stream, 0, events(1), None),
    )
    .await
    .expect("an append after the stress is not blocked")
    .unwrap();
}

#[tokio::test]
async fn unsupported_urls_are_refused_clearly() {
    let err = Store::connect("mysql://localhost/x", StoreConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err}");
    let err = Store::connect("sqlite::memory:", StoreConfig::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("in-memory"), "{err}");
}

/// Rows restored from another cluster keep transaction ids above this cluster's counter
/// and the tail would read past them. The store detects them, and adopting them makes
/// the tail read every row in position order, with the hash chain intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_with_foreign_transaction_ids_are_detected_and_adopted() {
    let Some(store) = store(BackendKind::Postgres).await else {
        return;
    };
    let pool = store.pg_pool().expect("a PostgreSQL store").clone();
    store
        .append(&StreamRef::new("counter", "restored"), 0, events(2), None)
        .await
        .unwrap();
    store.check_restored_rows().await.unwrap();
    // What a restore from a busier cluster leaves: txids this one has not reached.
    let mut tx = pool.begin().await.unwrap();
    for sql in [
        "ALTER TABLE events DISABLE TRIGGER events_no_update",
        "UPDATE events SET txid = ((pg_snapshot_xmax(pg_current_snapshot())::text::bigint \
           + 1000000)::text)::xid8",
        "ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    store
        .append(&StreamRef::new("counter", "new"), 0, events(1), None)
        .await
        .unwrap();

    let positions = |events: Vec<infra::RecordedEvent>| -> Vec<i64> {
        events.iter().map(|e| e.position).collect()
    };
    let visible = Duration::from_secs(30);
    assert!(store.wait_for_position(3, visible).await.unwrap());
    assert_eq!(
        positions(store.read_all(0, 10).await.unwrap()),
        vec![3],
        "the tail skips the foreign rows (what the check exists for)"
    );
    let err = store.check_restored_rows().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::ForeignTxids {
                count: 2,
                first_position: 1
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--adopt-restored-rows"), "{err}");

    assert_eq!(store.adopt_restored_rows().await.unwrap(), 2);
    store.check_restored_rows().await.unwrap();
    assert!(store.wait_for_position(3, visible).await.unwrap());
    assert_eq!(
        positions(store.read_all(0, 10).await.unwrap()),
        vec![1, 2, 3]
    );
    assert!(store.verify().await.unwrap().is_ok());
    let err = raw(&store, "UPDATE events SET actor = 'x'")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("append-only"),
        "the guard is back: {err}"
    );
}

/// The runtime role reads the log and appends through the store, and nothing else:
/// no direct INSERT, UPDATE or DELETE, no use of the position sequence, no way to
/// disable a guard or change the sequence's cache. And the guards hold even for a
/// superuser in replica mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_runtime_role_can_only_append_through_the_store() {
    let Some(store) = store(BackendKind::Postgres).await else {
        return;
    };
    let owner = store.pg_pool().expect("a PostgreSQL store").clone();
    let search_path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&owner)
        .await
        .unwrap();
    let role = format!("rt_{}", &Uuid::now_v7().simple().to_string()[20..]);
    sqlx::query(&format!(
        "CREATE ROLE {role} LOGIN IN ROLE commerce_runtime"
    ))
    .execute(&owner)
    .await
    .unwrap();
    let options = tests::test_database_url()
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .username(&role)
        .options([("search_path", search_path.as_str())]);
    let runtime_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let runtime = Store::from_pg_pool(
        runtime_pool.clone(),
        StoreConfig::default(),
        Arc::new(test_clock()),
    );

    let stream = StreamRef::new("counter", "roles");
    runtime.append(&stream, 0, events(2), None).await.unwrap();
    runtime
        .append_command(&stream, 2, events(1), None, Uuid::now_v7())
        .await
        .unwrap();
    assert!(runtime
        .wait_for_position(3, Duration::from_secs(30))
        .await
        .unwrap());
    assert_eq!(runtime.read_all(0, 10).await.unwrap().len(), 3);
    assert!(runtime.verify().await.unwrap().is_ok());

    for sql in [
        "INSERT INTO events (position, event_id, stream_type, stream_id, version, event_type, \
           schema_version, payload, metadata, recorded_at, hash) \
         VALUES (99, gen_random_uuid(), 'counter', 'x', 1, 'E', 1, '{}', '{}', now(), \
           decode(repeat('00', 32), 'hex'))",
        "UPDATE events SET actor = 'x'",
        "DELETE FROM events",
        "TRUNCATE events",
        "DELETE FROM commands",
        "SELECT nextval('events_position_seq')",
        "SELECT setval('events_position_seq', 1000)",
        "ALTER SEQUENCE events_position_seq CACHE 100",
        "ALTER TABLE events DISABLE TRIGGER events_no_update",
        "DROP TRIGGER events_no_delete ON events",
    ] {
        let err = sqlx::query(sql).execute(&runtime_pool).await.unwrap_err();
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(
            code.as_deref(),
            Some("42501"),
            "the runtime role must be refused `{sql}`: {err}"
        );
    }

    // A superuser in replica mode, where ordinary triggers do not fire.
    let mut conn = owner.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    for sql in ["UPDATE events SET actor = 'x'", "DELETE FROM events"] {
        let err = sqlx::query(sql).execute(&mut *conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    sqlx::query("RESET session_replication_role")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    runtime_pool.close().await;
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&owner)
        .await
        .unwrap();
}
