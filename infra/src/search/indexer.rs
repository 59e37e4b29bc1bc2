//! The search indexer: keeps the document rows (and, when configured, Meilisearch)
//! fresh while the engine runs.
//!
//! It reads the log's gap-safe tail from the document checkpoint, gathers events over a
//! short window into one batch (one transaction for many events), and folds them. When
//! Meilisearch is configured, a second loop applies the index settings, then sends the
//! rows changed since each index's checkpoint as soon as the document stage moves, again
//! gathered over a window: Meilisearch spends about the same time on a task of one
//! document as on a task of thousands. Failures are retried with backoff and never
//! skipped; the last one is kept in `search_checkpoints.last_error`.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use super::documents::{self, DOCUMENTS};
use super::meili::{MeiliIndex, Which};
use super::{SearchError, SearchIndex};
use crate::store::{RecordedEvent, Store};

/// How the indexer batches and retries.
#[derive(Debug, Clone)]
pub struct IndexerConfig {
    /// How long to keep gathering after the first event of a batch.
    pub window: Duration,
    /// Most events folded in one transaction.
    pub batch: usize,
    /// How long Meilisearch changes are gathered before a task is sent.
    pub meili_window: Duration,
    /// First and longest pause between retries of a failed step.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_millis(5),
            batch: 2_000,
            meili_window: Duration::from_millis(200),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// The background indexer. See the module docs.
#[derive(Debug, Clone)]
pub struct SearchIndexer {
    store: Store,
    meili: Option<MeiliIndex>,
    config: IndexerConfig,
}

impl SearchIndexer {
    pub fn new(store: Store, meili: Option<MeiliIndex>, config: IndexerConfig) -> Self {
        Self {
            store,
            meili,
            config,
        }
    }

    /// Runs until `stop` completes.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) {
        let (folded_tx, folded_rx) = watch::channel(0i64);
        let documents = self.fold_loop(folded_tx);
        let meili = async {
            match &self.meili {
                Some(meili) => self.meili_loop(meili, folded_rx).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop => {}
            () = documents => {}
            () = meili => {}
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.min(16));
        self.config
            .retry_min
            .saturating_mul(factor)
            .min(self.config.retry_max)
    }

    /// Folds a batch, retrying it (the same events) until it commits.
    async fn fold(&self, batch: &[RecordedEvent]) {
        let mut failures = 0;
        loop {
            match documents::apply_batch(&self.store, batch).await {
                Ok(_) => {
                    if failures > 0 {
                        let _ = documents::record_error(&self.store, DOCUMENTS, None).await;
                    }
                    return;
                }
                Err(err) => {
                    tracing::error!(error = %err, "search documents: batch failed; retrying");
                    metrics::counter!("commerce_search_failures_total", "stage" => DOCUMENTS)
                        .increment(1);
                    let _ = documents::record_error(&self.store, DOCUMENTS, Some(&err.to_string()))
                        .await;
                    tokio::time::sleep(self.backoff(failures)).await;
                    failures += 1;
                }
            }
        }
    }

    async fn fold_loop(&self, folded: watch::Sender<i64>) {
        let start = loop {
            match documents::checkpoint(&self.store, DOCUMENTS).await {
                Ok(position) => break position,
                Err(err) => {
                    tracing::warn!(error = %err, "search documents: cannot read the checkpoint");
                    tokio::time::sleep(self.config.retry_min).await;
                }
            }
        };
        folded.send_replace(start);
        let mut tail = self.store.subscribe(start);
        let mut batch = Vec::with_capacity(self.config.batch);
        loop {
            // The first event of a batch: wait as long as it takes.
            match tail.next().await {
                Some(Ok(event)) => batch.push(event),
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "search documents: tail read failed");
                    continue;
                }
                None => return,
            }
            // Then gather what arrives within the window.
            let deadline = tokio::time::Instant::now() + self.config.window;
            while batch.len() < self.config.batch {
                match tokio::time::timeout_at(deadline, tail.next()).await {
                    Ok(Some(Ok(event))) => batch.push(event),
                    Ok(Some(Err(err))) => {
                        tracing::warn!(error = %err, "search documents: tail read failed");
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            self.fold(&batch).await;
            if let Some(last) = batch.last() {
                folded.send_replace(last.position);
                self.record_lag(last.position).await;
            }
            batch.clear();
        }
    }

    /// `commerce_search_lag_events{stage="documents"}`: head − folded position.
    async fn record_lag(&self, position: i64) {
        if let Ok(head) = self.store.head_position().await {
            metrics::gauge!("commerce_search_lag_events", "stage" => DOCUMENTS)
                .set((head - position).max(0) as f64);
        }
    }

    async fn meili_loop(&self, meili: &MeiliIndex, mut folded: watch::Receiver<i64>) {
        let mut failures = 0;
        while let Err(err) = meili.apply_settings().await {
            tracing::error!(error = %err, "meilisearch: cannot apply the index settings; retrying");
            tokio::time::sleep(self.backoff(failures)).await;
            failures += 1;
        }
        tracing::info!(url = %meili.config().url, "meilisearch: index settings applied");
        let mut lease = self.acquire_sender(meili).await;
        loop {
            if !lease.still_held().await {
                tracing::warn!("meilisearch: lost the sender lock; waiting to take it again");
                lease = self.acquire_sender(meili).await;
            }
            let mut failed = false;
            for which in Which::ALL {
                // Drain: a batch is at most `batch_size` documents.
                loop {
                    match meili.sync(&self.store, which).await {
                        Ok(0) => break,
                        Ok(n) => {
                            metrics::counter!("commerce_search_documents_sent_total")
                                .increment(n as u64);
                        }
                        Err(err) => {
                            tracing::error!(error = %err, index = ?which, "meilisearch: sync failed; retrying");
                            metrics::counter!("commerce_search_failures_total", "stage" => "meilisearch")
                                .increment(1);
                            failed = true;
                            break;
                        }
                    }
                }
            }
            if failed {
                tokio::time::sleep(self.backoff(failures)).await;
                failures += 1;
                continue;
            }
            failures = 0;
            // Wait for the document stage to move (or a periodic re-check), then gather.
            let _ = tokio::time::timeout(Duration::from_secs(5), folded.changed()).await;
            tokio::time::sleep(self.config.meili_window).await;
        }
    }
}

/// The right to send documents to Meilisearch. Two senders could reorder two versions
/// of one document, so on PostgreSQL (several nodes) only the holder of a session
/// advisory lock sends; the lock lives on a connection of its own, so a node that dies
/// releases it and another takes over. Embedded, one process owns the database file.
struct SenderLease {
    conn: Option<sqlx::PgConnection>,
}

/// A fixed class for search senders, and the products index within the current schema.
const SENDER_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('commerce.search'), \
                           hashtext(current_schema() || '/' || $1))";

impl SenderLease {
    /// Whether the lock is still held (its connection answers).
    async fn still_held(&mut self) -> bool {
        match &mut self.conn {
            None => true,
            Some(conn) => sqlx::query("SELECT 1").execute(conn).await.is_ok(),
        }
    }
}

impl SearchIndexer {
    async fn acquire_sender(&self, meili: &MeiliIndex) -> SenderLease {
        let Some(pool) = self.store.pg_pool() else {
            return SenderLease { conn: None };
        };
        loop {
            match pool.acquire().await {
                Ok(conn) => {
                    // Detached: a pooled connection would go back to the pool holding the lock.
                    let mut conn = conn.detach();
                    match sqlx::query_scalar::<_, bool>(SENDER_LOCK)
                        .bind(&meili.config().products_index)
                        .fetch_one(&mut conn)
                        .await
                    {
                        Ok(true) => return SenderLease { conn: Some(conn) },
                        Ok(false) => {}
                        Err(err) => tracing::warn!(error = %err, "meilisearch: sender lock"),
                    }
                }
                Err(err) => tracing::warn!(error = %err, "meilisearch: sender lock connection"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Waits until searches of `index` see every event up to `position`, at most `timeout`;
/// returns whether they got there (read-your-writes for search queries).
pub async fn wait_until_searchable(
    search: &dyn SearchIndex,
    store: &Store,
    index: Which,
    position: i64,
    timeout: Duration,
) -> Result<bool, SearchError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if search.reached(store, index, position).await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
