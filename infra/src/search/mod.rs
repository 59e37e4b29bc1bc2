//! Product and order search.
//!
//! * [`documents`]: folds product, stock and order events into one stored document per
//!   product and per order (the pure fold is `projections::search`), with the rows and
//!   their checkpoint committed in one transaction. These rows are the embedded index.
//! * [`sql`]: the embedded [`SearchIndex`] over those rows: SQLite FTS5, or PostgreSQL
//!   full text when the engine runs on PostgreSQL without Meilisearch.
//! * [`meili`]: the distributed [`SearchIndex`] on Meilisearch, and the sync that sends
//!   changed documents in batches and moves its checkpoint only once Meilisearch reports
//!   the task succeeded.
//! * [`indexer`]: the background task keeping all of it fresh.
//!
//! See docs/search.md for what each backend supports.

pub mod documents;
pub mod indexer;
pub mod meili;
pub mod query;
pub mod sql;

use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use indexer::{IndexerConfig, SearchIndexer};
pub use meili::{MeiliConfig, MeiliIndex, Which};
pub use query::{
    Facets, OrderHit, OrderQuery, ProductHit, ProductQuery, ProductSort, SearchPage, Suggestion,
};
pub use sql::SqlIndex;

use crate::store::{Store, StoreError};

/// Why a search or an indexing step failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("meilisearch: {0}")]
    Meili(#[from] meilisearch_sdk::errors::Error),
    /// Meilisearch finished a task with an error; nothing of it was applied.
    #[error("meilisearch task {task} failed: {code}: {message}")]
    TaskFailed {
        task: u32,
        code: String,
        message: String,
    },
    /// An index's settings differ from what the engine applied (someone changed them).
    #[error("meilisearch index `{index}` has unexpected settings: {detail}")]
    Settings { index: String, detail: String },
    #[error("stored event at position {position} could not be decoded: {reason}")]
    Decode { position: i64, reason: String },
    /// The log's tail did not hand out the events up to `target` in time.
    #[error("the documents reached position {position}, not {target}")]
    Behind { position: i64, target: i64 },
    #[error("stored search document is not valid: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl SearchError {
    /// Whether the error is about the search backend being unreachable or failing (the
    /// API answers 503), rather than a bug in the stored data.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            SearchError::Meili(_) | SearchError::TaskFailed { .. } | SearchError::Database(_)
        )
    }
}

/// The search port the API queries. Implemented by [`SqlIndex`] (embedded) and
/// [`MeiliIndex`] (Meilisearch); both answer the same queries, and docs/search.md lists
/// where they differ (typo tolerance is Meilisearch's only).
///
/// Contract: results only contain active products (created, not discontinued); `page`
/// is 1-based; `total` counts every match, not only the page; facet counts are over all
/// matches of the query and its filters.
pub trait SearchIndex: Send + Sync + std::fmt::Debug {
    fn search_products<'a>(
        &'a self,
        query: &'a ProductQuery,
    ) -> BoxFuture<'a, Result<SearchPage<ProductHit>, SearchError>>;

    /// Up to `limit` active products whose searchable words start with the words of
    /// `prefix` (the last word may be incomplete), best first.
    fn autocomplete<'a>(
        &'a self,
        prefix: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Suggestion>, SearchError>>;

    fn search_orders<'a>(
        &'a self,
        query: &'a OrderQuery,
    ) -> BoxFuture<'a, Result<SearchPage<OrderHit>, SearchError>>;

    /// Whether searches of `index` already see every event up to `position`
    /// (read-your-writes). The embedded index sees what the document stage has folded;
    /// Meilisearch additionally needs every document changed up to `position` sent and
    /// its task succeeded.
    fn reached<'a>(
        &'a self,
        store: &'a Store,
        index: Which,
        position: i64,
    ) -> BoxFuture<'a, Result<bool, SearchError>>;
}

/// The index the API reads, shared by every request.
pub type Search = Arc<dyn SearchIndex>;
