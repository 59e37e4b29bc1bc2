//! The live runtime: follows the log's gap-safe tail and keeps every view at the head.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use projections::{Change, Projection};
use tokio::sync::watch;
use tokio::time::Instant;

use super::apply::{apply_lane, decode, Lane, LaneError, LaneResult};
use super::checkpoint::{self, ViewTx};
use super::sql::Target;
use super::ProjectionError;
use crate::store::{RecordedEvent, Store};

/// Tuning of the [`ProjectionRunner`].
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Most events applied in one transaction.
    pub batch: usize,
    /// How long a projection that failed on an event waits before it tries that event again.
    pub retry_after: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch: 1000,
            retry_after: Duration::from_secs(5),
        }
    }
}

/// Each projection's live checkpoint as this process last saw it, for read-your-writes.
#[derive(Debug, Clone)]
pub struct ProjectionsHandle {
    positions: Arc<HashMap<&'static str, watch::Sender<i64>>>,
}

/// A view had not reached the wanted position in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("projection {projection} is at position {position}, not yet at {wanted}")]
pub struct Lag {
    pub projection: String,
    pub position: i64,
    pub wanted: i64,
}

impl ProjectionsHandle {
    fn new(projections: &[&'static dyn Projection]) -> Self {
        let positions = projections
            .iter()
            .map(|p| (p.name(), watch::channel(0).0))
            .collect();
        Self {
            positions: Arc::new(positions),
        }
    }

    /// The position `projection` has applied the log up to (0 before the runner loaded
    /// it, or for a projection this process does not run).
    pub fn position(&self, projection: &str) -> i64 {
        self.positions.get(projection).map_or(0, |tx| *tx.borrow())
    }

    /// Waits until `projection` has applied the log up to `min_position`, for at most
    /// `timeout`: a query that waits for a command's position sees its effect.
    pub async fn wait_for(
        &self,
        projection: &str,
        min_position: i64,
        timeout: Duration,
    ) -> Result<(), Lag> {
        let lag = |position| Lag {
            projection: projection.to_string(),
            position,
            wanted: min_position,
        };
        let Some(sender) = self.positions.get(projection) else {
            return Err(lag(0));
        };
        let mut rx = sender.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= min_position))
            .await
            .is_ok_and(|r| r.is_ok());
        if reached {
            Ok(())
        } else {
            Err(lag(*sender.borrow()))
        }
    }

    fn publish(&self, projection: &str, position: i64) {
        if let Some(tx) = self.positions.get(projection) {
            tx.send_if_modified(|p| {
                if position != *p {
                    *p = position;
                    true
                } else {
                    false
                }
            });
        }
        metrics::gauge!("commerce_projection_position", "projection" => projection.to_string())
            .set(position as f64);
    }
}

/// Runs a set of projections over the log: one reader, each event decoded once, every
/// batch applied to every projection in one transaction with their checkpoints.
///
/// Several processes may run it at once (API nodes, workers): the checkpoint guard makes
/// the one that commits first win a batch and the others reload, so an event is applied
/// exactly once per view. A projection that fails on an event is stopped there, its
/// error recorded (`projection_checkpoints.error`, `commerce_projection_failed`), and is
/// retried after [`RunnerConfig::retry_after`]; the others go on.
pub struct ProjectionRunner {
    store: Store,
    projections: Vec<&'static dyn Projection>,
    config: RunnerConfig,
    handle: ProjectionsHandle,
}

impl ProjectionRunner {
    pub fn new(
        store: Store,
        projections: Vec<&'static dyn Projection>,
        config: RunnerConfig,
    ) -> Self {
        let handle = ProjectionsHandle::new(&projections);
        Self {
            store,
            projections,
            config,
            handle,
        }
    }

    /// The read-your-writes handle of this runner's projections.
    pub fn handle(&self) -> ProjectionsHandle {
        self.handle.clone()
    }

    /// Runs until `shutdown` resolves. Returns early only on a database error while
    /// loading checkpoints; errors while applying are retried.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ProjectionError> {
        tokio::pin!(shutdown);
        let mut retry_at: HashMap<&'static str, Instant> = HashMap::new();
        let now = self.store.clock().now();
        for p in &self.projections {
            checkpoint::ensure_live(self.store.db(), p.name(), now).await?;
        }
        loop {
            let lanes = match self.load(&retry_at).await {
                Ok(lanes) => lanes,
                Err(err) => {
                    tracing::warn!(error = %err, "projections: cannot load checkpoints");
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let next_retry = retry_at.values().min().copied();
            if lanes.is_empty() {
                let wake = next_retry.unwrap_or_else(|| Instant::now() + self.config.retry_after);
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep_until(wake) => {}
                }
                retry_at.retain(|_, at| *at > Instant::now());
                continue;
            }
            let stop = self
                .follow(lanes, &mut retry_at, next_retry, &mut shutdown)
                .await;
            if stop {
                return Ok(());
            }
            retry_at.retain(|_, at| *at > Instant::now());
        }
    }

    /// The live lanes, except projections waiting to retry.
    async fn load(
        &self,
        retry_at: &HashMap<&'static str, Instant>,
    ) -> Result<Vec<Lane>, ProjectionError> {
        let rows = checkpoint::all(self.store.db()).await?;
        let mut lanes = Vec::new();
        for p in &self.projections {
            let Some(row) = rows.iter().find(|r| r.live && r.name == p.name()) else {
                continue;
            };
            self.handle.publish(p.name(), row.position);
            if retry_at.contains_key(p.name()) {
                continue;
            }
            lanes.push(Lane {
                projection: *p,
                version: row.version,
                position: row.position,
                target: Target::Live,
            });
        }
        Ok(lanes)
    }

    /// Feeds `lanes` from the tail until a reload is needed (`false`) or shutdown (`true`).
    async fn follow(
        &self,
        mut lanes: Vec<Lane>,
        retry_at: &mut HashMap<&'static str, Instant>,
        next_retry: Option<Instant>,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> bool {
        let from = lanes.iter().map(|l| l.position).min().unwrap_or(0);
        let mut tail = self.store.subscribe(from);
        let far = Instant::now() + Duration::from_secs(3600 * 24 * 365);
        let retry = tokio::time::sleep_until(next_retry.unwrap_or(far));
        tokio::pin!(retry);
        let mut buf: Vec<Change> = Vec::new();
        let mut last_head_check = Instant::now() - Duration::from_secs(10);
        loop {
            let first = tokio::select! {
                _ = &mut *shutdown => return true,
                _ = &mut retry => return false,
                item = tail.next() => item,
            };
            let mut batch: Vec<RecordedEvent> = Vec::with_capacity(self.config.batch);
            match first {
                Some(Ok(event)) => batch.push(event),
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "projections: log read failed; the tail retries");
                    continue;
                }
                None => return false,
            }
            while batch.len() < self.config.batch {
                match tail.next().now_or_never() {
                    Some(Some(Ok(event))) => batch.push(event),
                    _ => break,
                }
            }
            loop {
                match self.apply_batch(&mut lanes, &batch, &mut buf).await {
                    Ok(stopped) => {
                        for (name, position, error) in stopped {
                            self.fail(retry_at, name, &lanes, position, &error).await;
                            lanes.retain(|l| l.projection.name() != name);
                        }
                        break;
                    }
                    Err(BatchError::Conflict) => return false,
                    Err(BatchError::Event {
                        name,
                        position,
                        error,
                    }) => {
                        self.fail(retry_at, name, &lanes, position, &error).await;
                        lanes.retain(|l| l.projection.name() != name);
                        if lanes.is_empty() {
                            return false;
                        }
                    }
                    Err(BatchError::Database(err)) => {
                        tracing::warn!(error = %err, "projections: batch failed; reloading");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        return false;
                    }
                }
            }
            if lanes.is_empty() {
                return false;
            }
            if last_head_check.elapsed() >= Duration::from_secs(1) {
                last_head_check = Instant::now();
                if let Ok(head) = self.store.head_position().await {
                    for lane in &lanes {
                        metrics::gauge!("commerce_projection_lag_events", "projection" => lane.projection.name())
                            .set((head - lane.position).max(0) as f64);
                    }
                }
            }
        }
    }

    async fn fail(
        &self,
        retry_at: &mut HashMap<&'static str, Instant>,
        name: &'static str,
        lanes: &[Lane],
        position: i64,
        error: &str,
    ) {
        tracing::error!(
            projection = name,
            position,
            error,
            "projection stopped on an event"
        );
        metrics::counter!("commerce_projection_failures_total", "projection" => name).increment(1);
        metrics::gauge!("commerce_projection_failed", "projection" => name).set(1.0);
        retry_at.insert(name, Instant::now() + self.config.retry_after);
        if let Some(lane) = lanes.iter().find(|l| l.projection.name() == name) {
            let now = self.store.clock().now();
            if let Err(err) = checkpoint::record_failure(
                self.store.db(),
                name,
                lane.version,
                position,
                error,
                now,
            )
            .await
            {
                tracing::warn!(projection = name, error = %err, "could not record the projection's failure");
            }
        }
    }

    /// Applies `batch` to every lane in one transaction. `Ok` lists the lanes that
    /// stopped on an undecodable event (their progress up to it is committed).
    async fn apply_batch(
        &self,
        lanes: &mut [Lane],
        batch: &[RecordedEvent],
        buf: &mut Vec<Change>,
    ) -> Result<Vec<(&'static str, i64, String)>, BatchError> {
        let decoded = decode(batch, lanes);
        let now = self.store.clock().now();
        let mut tx = ViewTx::begin(self.store.db())
            .await
            .map_err(BatchError::Database)?;
        let mut results = Vec::with_capacity(lanes.len());
        for lane in lanes.iter() {
            match apply_lane(&mut tx, lane, batch, &decoded, now, buf).await {
                Ok(result) => results.push(result),
                Err(LaneError::Conflict) => return Err(BatchError::Conflict),
                Err(LaneError::Database(err)) => return Err(BatchError::Database(err)),
                Err(LaneError::Event { position, error }) => {
                    return Err(BatchError::Event {
                        name: lane.projection.name(),
                        position,
                        error: error.to_string(),
                    })
                }
            }
        }
        tx.commit().await.map_err(BatchError::Database)?;
        let mut stopped = Vec::new();
        for (lane, result) in lanes.iter_mut().zip(results) {
            let name = lane.projection.name();
            let before = lane.position;
            match result {
                LaneResult::Unchanged => continue,
                LaneResult::Advanced(to) => lane.position = to,
                LaneResult::Stopped {
                    applied_to,
                    position,
                    error,
                } => {
                    lane.position = applied_to;
                    stopped.push((name, position, error));
                }
            }
            let applied = batch
                .iter()
                .filter(|e| e.position > before && e.position <= lane.position)
                .count();
            metrics::counter!("commerce_projection_events_total", "projection" => name)
                .increment(applied as u64);
            metrics::gauge!("commerce_projection_failed", "projection" => name).set(0.0);
            self.handle.publish(name, lane.position);
        }
        Ok(stopped)
    }
}

enum BatchError {
    Conflict,
    Event {
        name: &'static str,
        position: i64,
        error: String,
    },
    Database(sqlx::Error),
}
