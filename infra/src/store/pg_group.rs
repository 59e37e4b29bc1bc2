//! Group commit on PostgreSQL (docs/adr/0005-group-commit.md).
//!
//! Every append of the process goes through a queue. A few writer tasks each take the
//! first waiting append and every append already queued behind it (never waiting for
//! company, so a lone writer pays one round trip as before), and write them with one
//! `append_batch` call: one round trip, one transaction, one commit. Each append keeps
//! its own outcome; a version conflict, a broken chain or a repeated command id fails
//! that append alone and stores nothing of it. An append whose caller has gone before
//! its group is written is dropped, so nothing unacknowledged is stored unless it was
//! already being written.
//!
//! Each caller prepares its own append (serialized payloads, hashes) in its own task;
//! the writers only lay the group out as parallel arrays of borrowed values, which travel
//! in PostgreSQL's binary format. Should a whole call fail (an event id that is already
//! in the log, a payload PostgreSQL refuses), every append of the group is written again
//! on its own, so one bad append never fails the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use super::{PreparedEvent, SnapshotWrite, StoreError, StreamRef};

/// Most appends one call writes.
const MAX_GROUP: usize = 128;

/// One append for `append_batch`, with its hashes computed.
pub(super) struct BatchItem {
    pub(super) stream: StreamRef,
    pub(super) expected: i64,
    command_id: Option<Uuid>,
    rows: Vec<PreparedEvent>,
    /// Each row's hash and the hash it continues from.
    hashes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    snapshot: Option<(String, i64, i64)>,
}

/// Positions of a stored append.
pub(super) type Stored = Result<(i64, i64), StoreError>;

struct Job {
    item: BatchItem,
    reply: oneshot::Sender<Stored>,
}

/// The queue in front of the writer tasks.
#[derive(Debug)]
pub(super) struct Group {
    jobs: mpsc::UnboundedSender<Vec<Job>>,
    stats: Arc<Stats>,
}

/// How many `append_batch` calls the writers made and how many appends they carried.
#[derive(Debug, Default)]
struct Stats {
    calls: AtomicU64,
    appends: AtomicU64,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("stream", &self.item.stream)
            .finish_non_exhaustive()
    }
}

impl BatchItem {
    /// One append whose hashes are computed (`hashes[i]` is row `i`'s hash and the hash
    /// it continues from); the snapshot's state is serialized here, in the caller's task.
    pub(super) fn new(
        stream: &StreamRef,
        expected: i64,
        rows: Vec<PreparedEvent>,
        hashes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        snapshot: Option<&SnapshotWrite>,
        command_id: Option<Uuid>,
    ) -> Result<Self, StoreError> {
        let snapshot = snapshot
            .map(|s| serde_json::to_string(&s.state).map(|state| (state, s.version, s.snapshot_no)))
            .transpose()
            .map_err(StoreError::Corrupt)?;
        Ok(Self {
            stream: stream.clone(),
            expected,
            command_id,
            rows,
            hashes,
            snapshot,
        })
    }
}

impl Group {
    /// Starts `writers` writer tasks (at least one) on `pool`: calls in flight at once.
    /// More than one lets the database write one group while the next one gathers.
    pub(super) fn start(pool: PgPool, writers: usize, gather_yields: u32) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        let stats = Arc::new(Stats::default());
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(
                pool.clone(),
                queue.clone(),
                stats.clone(),
                gather_yields,
            ));
        }
        Self { jobs, stats }
    }

    /// Calls made so far and appends they carried.
    pub(super) fn stats(&self) -> (u64, u64) {
        (
            self.stats.calls.load(Ordering::Relaxed),
            self.stats.appends.load(Ordering::Relaxed),
        )
    }

    /// Queues `items` together (they are written in one call) and waits for each outcome.
    pub(super) async fn write(&self, items: Vec<BatchItem>) -> Vec<Stored> {
        let mut jobs = Vec::with_capacity(items.len());
        let mut replies = Vec::with_capacity(items.len());
        for item in items {
            let (reply, outcome) = oneshot::channel();
            jobs.push(Job { item, reply });
            replies.push(outcome);
        }
        if self.jobs.send(jobs).is_err() {
            return replies.iter().map(|_| Err(writer_gone())).collect();
        }
        let mut outcomes = Vec::with_capacity(replies.len());
        for outcome in replies {
            outcomes.push(outcome.await.unwrap_or_else(|_| Err(writer_gone())));
        }
        outcomes
    }
}

fn writer_gone() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

/// One writer task: gathers a group, writes it, answers each append.
async fn writer(
    pool: PgPool,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Vec<Job>>>>,
    stats: Arc<Stats>,
    gather_yields: u32,
) {
    loop {
        let mut group = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut group = first;
            let mut yields = 0;
            loop {
                while group.len() < MAX_GROUP {
                    match queue.try_recv() {
                        Ok(more) => group.extend(more),
                        Err(_) => break,
                    }
                }
                if group.len() >= MAX_GROUP || yields >= gather_yields {
                    break;
                }
                yields += 1;
                tokio::task::yield_now().await;
            }
            group
        };
        group.retain(|job| !job.reply.is_closed());
        if group.is_empty() {
            continue;
        }
        metrics::histogram!("commerce_append_group_size").record(group.len() as f64);
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats
            .appends
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        match call(&pool, &group).await {
            Ok(outcomes) => {
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(_) if group.len() > 1 => {
                // Something in the group made the whole call fail: each on its own.
                for job in group {
                    let outcome = match call(&pool, std::slice::from_ref(&job)).await {
                        Ok(mut outcomes) => outcomes.pop().unwrap_or_else(|| Err(writer_gone())),
                        Err(err) => Err(super::postgres::map_error(
                            err,
                            &job.item.stream,
                            job.item.expected,
                        )),
                    };
                    let _ = job.reply.send(outcome);
                }
            }
            Err(err) => {
                // A group of one: its append's own error.
                if let Some(job) = group.into_iter().next() {
                    let error =
                        super::postgres::map_error(err, &job.item.stream, job.item.expected);
                    let _ = job.reply.send(Err(error));
                }
            }
        }
    }
}

/// A row `append_batch` answers: (ord, outcome, first position, last position, detail).
type OutcomeRow = (i32, String, Option<i64>, Option<i64>, Option<String>);

/// One `append_batch` call for `group`, its commands and events as parallel arrays
/// (borrowed from the jobs: nothing is copied but ids and numbers); the outcomes in the
/// group's order.
async fn call(pool: &PgPool, group: &[Job]) -> Result<Vec<Stored>, sqlx::Error> {
    let n = group.len();
    let events: usize = group.iter().map(|j| j.item.rows.len()).sum();
    let mut c_types = Vec::with_capacity(n);
    let mut c_ids = Vec::with_capacity(n);
    let mut c_commands = Vec::with_capacity(n);
    let mut c_first = Vec::with_capacity(n);
    let mut c_counts = Vec::with_capacity(n);
    let mut c_prev: Vec<Option<&[u8]>> = Vec::with_capacity(n);
    let mut c_snapshots: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut c_snapshot_versions = Vec::with_capacity(n);
    let mut c_snapshot_nos = Vec::with_capacity(n);
    let mut e_cmds = Vec::with_capacity(events);
    let mut e_ids = Vec::with_capacity(events);
    let mut e_versions = Vec::with_capacity(events);
    let mut e_types = Vec::with_capacity(events);
    let mut e_schema_versions = Vec::with_capacity(events);
    let mut e_payloads = Vec::with_capacity(events);
    let mut e_metadata = Vec::with_capacity(events);
    let mut e_correlation = Vec::with_capacity(events);
    let mut e_causation = Vec::with_capacity(events);
    let mut e_actors: Vec<Option<&str>> = Vec::with_capacity(events);
    let mut e_recorded = Vec::with_capacity(events);
    let mut e_hashes: Vec<&[u8]> = Vec::with_capacity(events);
    let mut e_prev: Vec<Option<&[u8]>> = Vec::with_capacity(events);
    for (i, job) in group.iter().enumerate() {
        let item = &job.item;
        c_types.push(item.stream.stream_type.as_str());
        c_ids.push(item.stream.stream_id.as_str());
        c_commands.push(item.command_id);
        c_first.push(item.expected + 1);
        c_counts.push(i32::try_from(item.rows.len()).unwrap_or(i32::MAX));
        c_prev.push(item.hashes.first().and_then(|(_, prev)| prev.as_deref()));
        c_snapshots.push(item.snapshot.as_ref().map(|(state, _, _)| state.as_str()));
        c_snapshot_versions.push(item.snapshot.as_ref().map(|(_, version, _)| *version));
        c_snapshot_nos.push(item.snapshot.as_ref().map(|(_, _, no)| *no));
        for (row, (hash, prev)) in item.rows.iter().zip(&item.hashes) {
            e_cmds.push(i32::try_from(i + 1).unwrap_or(i32::MAX));
            e_ids.push(row.event_id);
            e_versions.push(row.version);
            e_types.push(row.event_type.as_str());
            e_schema_versions.push(row.schema_version);
            e_payloads.push(row.payload_text.as_str());
            e_metadata.push(row.metadata_text.as_str());
            e_correlation.push(row.correlation_id);
            e_causation.push(row.causation_id);
            e_actors.push(row.actor.as_deref());
            e_recorded.push(row.recorded_at);
            e_hashes.push(hash.as_slice());
            e_prev.push(prev.as_deref());
        }
    }
    let rows: Vec<OutcomeRow> = sqlx::query_as(
        "SELECT ord, outcome, first_position, last_position, detail FROM append_batch(\
         $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
         $19, $20, $21, $22)",
    )
    .bind(c_types)
    .bind(c_ids)
    .bind(c_commands)
    .bind(c_first)
    .bind(c_counts)
    .bind(c_prev)
    .bind(c_snapshots)
    .bind(c_snapshot_versions)
    .bind(c_snapshot_nos)
    .bind(e_cmds)
    .bind(e_ids)
    .bind(e_versions)
    .bind(e_types)
    .bind(e_schema_versions)
    .bind(e_payloads)
    .bind(e_metadata)
    .bind(e_correlation)
    .bind(e_causation)
    .bind(e_actors)
    .bind(e_recorded)
    .bind(e_hashes)
    .bind(e_prev)
    .fetch_all(pool)
    .await?;
    let mut outcomes: Vec<Stored> = group.iter().map(|_| Err(writer_gone())).collect();
    for (ord, outcome, first, last, detail) in rows {
        let Some(job) = usize::try_from(ord - 1).ok().and_then(|i| group.get(i)) else {
            continue;
        };
        let detail = detail.unwrap_or_default();
        outcomes[(ord - 1) as usize] = match (outcome.as_str(), first, last) {
            ("ok", Some(first), Some(last)) => Ok((first, last)),
            ("conflict", _, _) => Err(StoreError::Conflict {
                stream: job.item.stream.clone(),
                expected: job.item.expected,
            }),
            ("duplicate_command", _, _) => Err(StoreError::DuplicateCommand),
            (_, _, _) => Err(StoreError::InvalidAppend(detail)),
        };
    }
    Ok(outcomes)
}
