//! The cqrs-es 0.5 [`PersistedEventRepository`] over [`Store`], so aggregates run on
//! `PersistedEventStore` / `CqrsFramework` unchanged.
//!
//! Contract with the aggregates:
//! * events serialize externally tagged, the tag being `DomainEvent::event_type()`
//!   (`{"ItemAdded": {...}}`); the store keeps the tag in `event_type` and the inner
//!   object as `payload`, which is what `schemas/events/` describes;
//! * `event_version()` is the schema version: an integer, or a semantic version whose
//!   major part is used (`"2"`, `"2.0.0"`);
//! * metadata keys `correlation_id` and `causation_id` (UUIDs) and `actor` are indexed.
//!
//! Snapshots: cqrs-es 0.5's own snapshot commit folds the new events into an aggregate
//! that `handle` has already applied them to (through the `EventSink`), so the snapshot
//! it hands to `persist` counts those events twice. This repository therefore ignores
//! `snapshot_update`; [`AggregateStore`] (from [`Store::aggregate_store`]) commits the
//! aggregate as it stands after the command, at the version of the command's last event,
//! whenever the command crosses a multiple of `snapshot_every`. Loading uses cqrs-es'
//! snapshot path unchanged. Undecodable snapshots are ignored by cqrs-es; a snapshot
//! that claims a version beyond the stream's head is ignored here.

use cqrs_es::persist::{
    EventUpcaster, PersistedEventRepository, PersistedEventStore, PersistenceError, ReplayStream,
    SerializedEvent, SerializedSnapshot,
};
use std::collections::HashMap;

use cqrs_es::persist::EventStoreAggregateContext;
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    AppendOutcome, EventMetadata, NewEvent, RecordedEvent, SnapshotWrite, Store, StoreError,
    StreamRef,
};

impl From<StoreError> for PersistenceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { .. } => PersistenceError::OptimisticLockError,
            StoreError::Database(e @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)) => {
                PersistenceError::ConnectionError(Box::new(e))
            }
            StoreError::Corrupt(e) => PersistenceError::DeserializationError(Box::new(e)),
            other => PersistenceError::UnknownError(Box::new(other)),
        }
    }
}

impl Store {
    /// The cqrs-es event store of aggregate `A` over this store: loads through
    /// `PersistedEventStore` (snapshot, then the events after it, through `upcasters`) and
    /// commits with a snapshot every `StoreConfig::snapshot_every` events.
    pub fn aggregate_store<A: Aggregate>(
        &self,
        upcasters: Vec<Box<dyn EventUpcaster>>,
    ) -> AggregateStore<A> {
        let every = self.config().snapshot_every;
        let loader = if every == 0 {
            PersistedEventStore::new_event_store(self.clone())
        } else {
            PersistedEventStore::new_snapshot_store(self.clone(), every)
        };
        AggregateStore {
            loader: loader.with_upcasters(upcasters),
            store: self.clone(),
        }
    }

    fn new_event_id(&self) -> Uuid {
        let now = self.clock().now();
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            now.timestamp().max(0) as u64,
            now.timestamp_subsec_nanos(),
        );
        Uuid::new_v7(ts)
    }
}

/// Parses `"2"` or `"2.1.0"` as schema version 2.
fn schema_version(version: &str) -> Result<i32, StoreError> {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse::<i32>().ok())
        .filter(|v| *v >= 1)
        .ok_or_else(|| StoreError::InvalidAppend(format!("event version `{version}` is not >= 1")))
}

/// `{"Tag": {...}}` -> `{...}`; a unit variant `"Tag"` -> `null`.
fn untag(event_type: &str, payload: &Value) -> Result<Value, StoreError> {
    match payload {
        Value::Object(map) if map.len() == 1 && map.contains_key(event_type) => {
            Ok(map[event_type].clone())
        }
        Value::String(tag) if tag == event_type => Ok(Value::Null),
        _ => Err(StoreError::InvalidAppend(format!(
            "event `{event_type}` must serialize externally tagged with its event type"
        ))),
    }
}

fn retag(event_type: &str, payload: Value) -> Value {
    if payload.is_null() {
        Value::String(event_type.to_string())
    } else {
        let mut map = Map::with_capacity(1);
        map.insert(event_type.to_string(), payload);
        Value::Object(map)
    }
}

fn metadata_of(value: &Value) -> EventMetadata {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        _ => EventMetadata::new(),
    }
}

fn serialized(event: RecordedEvent) -> Result<SerializedEvent, StoreError> {
    let payload = retag(&event.event_type, event.payload()?);
    let metadata = serde_json::to_value(event.metadata()?).map_err(StoreError::Corrupt)?;
    Ok(SerializedEvent {
        aggregate_id: event.stream_id,
        sequence: usize::try_from(event.version).unwrap_or_default(),
        aggregate_type: event.stream_type,
        event_type: event.event_type,
        event_version: event.schema_version.to_string(),
        payload,
        metadata,
    })
}

fn serialized_all(events: Vec<RecordedEvent>) -> Result<Vec<SerializedEvent>, PersistenceError> {
    Ok(events
        .into_iter()
        .map(serialized)
        .collect::<Result<Vec<_>, _>>()?)
}

const REPLAY_BATCH: i64 = 1000;

impl Store {
    async fn persist_serialized<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot: Option<SnapshotWrite>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let Some(first) = events.first() else {
            return Ok(None);
        };
        let stream = StreamRef::new(A::TYPE, &first.aggregate_id);
        let expected = i64::try_from(first.sequence).unwrap_or(i64::MAX) - 1;
        let new_events = events
            .iter()
            .map(|e| {
                Ok(NewEvent {
                    event_id: self.new_event_id(),
                    event_type: e.event_type.clone(),
                    schema_version: schema_version(&e.event_version)?,
                    payload: untag(&e.event_type, &e.payload)?,
                    metadata: metadata_of(&e.metadata),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.append(&stream, expected, new_events, snapshot)
            .await
            .map(Some)
    }
}

/// The cqrs-es [`EventStore`] the engine runs aggregates on (see the module docs).
pub struct AggregateStore<A: Aggregate> {
    loader: PersistedEventStore<Store, A>,
    store: Store,
}

impl<A: Aggregate> AggregateStore<A> {
    /// Commits like [`EventStore::commit`] and also returns where the events landed.
    pub async fn commit_with_outcome(
        &self,
        events: Vec<A::Event>,
        context: EventStoreAggregateContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<(Vec<EventEnvelope<A>>, Option<AppendOutcome>), AggregateError<A::Error>> {
        let last = context.current_sequence;
        let envelopes: Vec<EventEnvelope<A>> = events
            .into_iter()
            .zip(last + 1..)
            .map(|(payload, sequence)| EventEnvelope {
                aggregate_id: context.aggregate_id.clone(),
                sequence,
                payload,
                metadata: metadata.clone(),
            })
            .collect();
        let serialized = envelopes
            .iter()
            .map(SerializedEvent::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let new_last = last + envelopes.len();
        let every = self.store.config().snapshot_every;
        // `handle` applied the events to `context.aggregate` already: it is the state at
        // `new_last`.
        let snapshot = if every > 0 && !envelopes.is_empty() && new_last / every > last / every {
            Some(SnapshotWrite {
                version: i64::try_from(new_last).unwrap_or(i64::MAX),
                snapshot_no: i64::try_from(new_last / every).unwrap_or_default(),
                state: serde_json::to_value(&context.aggregate)?,
            })
        } else {
            None
        };
        let outcome = self
            .store
            .persist_serialized::<A>(&serialized, snapshot)
            .await
            .map_err(PersistenceError::from)?;
        Ok((envelopes, outcome))
    }
}

impl<A: Aggregate> EventStore<A> for AggregateStore<A> {
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.loader.load_events(aggregate_id).await
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<EventStoreAggregateContext<A>, AggregateError<A::Error>> {
        self.loader.load_aggregate(aggregate_id).await
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: EventStoreAggregateContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.commit_with_outcome(events, context, metadata)
            .await
            .map(|(envelopes, _)| envelopes)
    }
}

impl PersistedEventRepository for Store {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.get_last_events::<A>(aggregate_id, 0).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let stream = StreamRef::new(A::TYPE, aggregate_id);
        let after = i64::try_from(last_sequence).unwrap_or(i64::MAX);
        serialized_all(self.read_stream(&stream, after).await?)
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        let stream = StreamRef::new(A::TYPE, aggregate_id);
        let Some(snapshot) = self.load_snapshot(&stream).await? else {
            return Ok(None);
        };
        if snapshot.version > snapshot.head_version {
            tracing::warn!(%stream, snapshot.version, snapshot.head_version,
                "ignoring a snapshot ahead of its stream");
            return Ok(None);
        }
        Ok(Some(SerializedSnapshot {
            aggregate_id: aggregate_id.to_string(),
            aggregate: snapshot.state,
            current_sequence: usize::try_from(snapshot.version).unwrap_or_default(),
            current_snapshot: usize::try_from(snapshot.snapshot_no).unwrap_or_default(),
        }))
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        _snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        // See the module docs for why cqrs-es' snapshot is not stored.
        self.persist_serialized::<A>(events, None).await?;
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        let events = self
            .read_stream(&StreamRef::new(A::TYPE, aggregate_id), 0)
            .await?;
        let (mut feed, stream) = ReplayStream::new(events.len().max(1));
        for event in events {
            feed.push(serialized(event).map_err(Into::into)).await?;
        }
        Ok(stream)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let (mut feed, stream) = ReplayStream::new(REPLAY_BATCH as usize);
        let store = self.clone();
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                match store.read_type(A::TYPE, after, REPLAY_BATCH).await {
                    Ok(batch) if batch.is_empty() => return,
                    Ok(batch) => {
                        for event in batch {
                            after = event.position;
                            if feed
                                .push(serialized(event).map_err(Into::into))
                                .await
                                .is_err()
                            {
                                return; // the reader went away
                            }
                        }
                    }
                    Err(e) => {
                        let _ = feed.push(Err(e.into())).await;
                        return;
                    }
                }
            }
        });
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_are_stripped_and_restored() {
        let tagged = json!({"ItemAdded": {"sku": "A", "quantity": 2}});
        let inner = untag("ItemAdded", &tagged).unwrap();
        assert_eq!(inner, json!({"sku": "A", "quantity": 2}));
        assert_eq!(retag("ItemAdded", inner), tagged);
        assert_eq!(untag("Opened", &json!("Opened")).unwrap(), Value::Null);
        assert_eq!(retag("Opened", Value::Null), json!("Opened"));
        assert!(untag("ItemAdded", &json!({"Other": {}})).is_err());
    }

    #[test]
    fn schema_versions_take_the_major_part() {
        assert_eq!(schema_version("1").unwrap(), 1);
        assert_eq!(schema_version("2.3.4").unwrap(), 2);
        assert!(schema_version("0").is_err());
        assert!(schema_version("x").is_err());
    }
}
