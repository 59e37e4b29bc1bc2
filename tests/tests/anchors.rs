//! Anchors catch what the hash chain alone cannot: a stream rewritten consistently, a
//! stream's newest events deleted, a stream deleted whole; and a signed anchor file
//! cannot be edited unnoticed. On both backends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use infra::store::anchor::{check_anchors, write_anchors, AnchorError, AnchorReport};
use infra::store::{event_hash, HashInput, NewEvent, StoreConfig, StreamRef};
use infra::Store;
use serde_json::json;
use tests::{fresh_store, test_clock, BackendKind};
use uuid::Uuid;

const KEY: &[u8] = b"a key the database never sees, 32+ bytes long";

fn events(count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|n| NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "Noted".into(),
            schema_version: 1,
            payload: json!({ "n": n }),
            metadata: BTreeMap::new(),
        })
        .collect()
}

/// Runs statements the way someone bypassing the engine could.
async fn raw(store: &Store, sql: &str) {
    match (store.pg_pool(), store.sqlite_pool()) {
        (Some(pool), _) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        (_, Some(pool)) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        _ => unreachable!("a store has one backend"),
    }
    .unwrap();
}

async fn lift_guards(store: &Store, kind: BackendKind) {
    match kind {
        BackendKind::Postgres => raw(store, "ALTER TABLE events DISABLE TRIGGER USER").await,
        BackendKind::Sqlite => {
            raw(
                store,
                "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete",
            )
            .await
        }
    }
}

async fn check(
    store: &Store,
    key: Option<&[u8]>,
    file: &[u8],
) -> Result<AnchorReport, AnchorError> {
    check_anchors(store, key, file).await
}

async fn anchors_find_what_the_chain_cannot(kind: BackendKind) {
    let Some(store) = fresh_store(kind, StoreConfig::default(), Arc::new(test_clock())).await
    else {
        return;
    };
    let (a, b, c) = (
        StreamRef::new("order", "a"),
        StreamRef::new("order", "b"),
        StreamRef::new("cart", "c"),
    );
    store.append(&a, 0, events(3), None).await.unwrap();
    store.append(&b, 0, events(2), None).await.unwrap();
    let last = store
        .append(&c, 0, events(1), None)
        .await
        .unwrap()
        .last_position;
    assert!(store
        .wait_for_position(last, Duration::from_secs(30))
        .await
        .unwrap());

    let mut file = Vec::new();
    let summary = write_anchors(&store, Some(KEY), &mut file).await.unwrap();
    assert_eq!((summary.streams, summary.head_position), (3, last));
    let report = check(&store, Some(KEY), &file).await.unwrap();
    assert!(report.is_ok(), "{kind:?}: {:?}", report.problems);
    assert_eq!(report.streams, 3);

    // The file itself: edited, checked without the key, or with another key.
    let text = String::from_utf8(file.clone()).unwrap();
    let edited = text.replacen("\"version\":3", "\"version\":2", 1);
    assert_ne!(edited, text);
    assert!(matches!(
        check(&store, Some(KEY), edited.as_bytes()).await,
        Err(AnchorError::BadMac)
    ));
    assert!(matches!(
        check(&store, None, &file).await,
        Err(AnchorError::KeyNeeded)
    ));
    assert!(matches!(
        check(&store, Some(b"another key, also 32 bytes or more!!"), &file).await,
        Err(AnchorError::BadMac)
    ));

    // Rewrites behind the engine's back.
    lift_guards(&store, kind).await;
    // Stream a rewritten consistently: a new payload and every hash recomputed.
    let mut prev: Option<Vec<u8>> = None;
    for event in store.read_stream(&a, 0).await.unwrap() {
        let payload = if event.version == 1 {
            r#"{"n":1000}"#.to_string()
        } else {
            event.payload_text.clone()
        };
        let hash = event_hash(
            prev.as_deref(),
            &HashInput {
                event_id: event.event_id,
                stream_type: &event.stream_type,
                stream_id: &event.stream_id,
                version: event.version,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                payload: &payload,
                metadata: &event.metadata_text,
                recorded_at: event.recorded_at,
            },
        );
        let prev_sql = prev.as_ref().map_or("NULL".to_string(), |p| match kind {
            BackendKind::Postgres => format!("'\\x{}'::bytea", hex::encode(p)),
            BackendKind::Sqlite => format!("X'{}'", hex::encode(p)),
        });
        let hash_sql = match kind {
            BackendKind::Postgres => format!("'\\x{}'::bytea", hex::encode(hash)),
            BackendKind::Sqlite => format!("X'{}'", hex::encode(hash)),
        };
        raw(
            &store,
            &format!(
                "UPDATE events SET payload = '{payload}', hash = {hash_sql}, prev_hash = {prev_sql} \
                 WHERE position = {}",
                event.position
            ),
        )
        .await;
        prev = Some(hash.to_vec());
    }
    let chain = store.verify().await.unwrap();
    assert!(
        chain.is_ok(),
        "{kind:?}: a consistent rewrite passes the chain: {:?}",
        chain.problems
    );
    // Stream b loses its newest event; stream c disappears.
    raw(
        &store,
        "DELETE FROM events WHERE stream_id = 'b' AND version = 2",
    )
    .await;
    raw(&store, "DELETE FROM events WHERE stream_id = 'c'").await;

    let report = check(&store, Some(KEY), &file).await.unwrap();
    let found: Vec<(String, i64, String)> = report
        .problems
        .iter()
        .map(|p| (p.stream_id.clone(), p.version, p.problem.clone()))
        .collect();
    assert_eq!(found.len(), 3, "{kind:?}: {found:?}");
    assert_eq!((found[0].0.as_str(), found[0].1), ("c", 1));
    assert!(found[0].2.contains("gone"), "{}", found[0].2);
    assert_eq!((found[1].0.as_str(), found[1].1), ("a", 3));
    assert!(found[1].2.contains("rewritten"), "{}", found[1].2);
    assert_eq!((found[2].0.as_str(), found[2].1), ("b", 2));
    assert!(found[2].2.contains("ends at version 1"), "{}", found[2].2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_anchors_find_what_the_chain_cannot() {
    anchors_find_what_the_chain_cannot(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_anchors_find_what_the_chain_cannot() {
    anchors_find_what_the_chain_cannot(BackendKind::Sqlite).await;
}
