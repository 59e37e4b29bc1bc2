//! Meilisearch: the distributed search index, through `meilisearch-sdk`.
//!
//! Documents come from the stored document rows ([`super::documents`]): [`MeiliIndex::sync`]
//! sends every row above the index's checkpoint in one task (a batch), waits for
//! Meilisearch to report the task, and moves the checkpoint only when it succeeded. A
//! failed or unanswered task moves nothing, so the same rows go again on the next try:
//! documents are replaced whole by id, so sending one twice changes nothing.
//!
//! Meilisearch needs every filterable and sortable field named in its settings, so each
//! price is also sent as a flat `price_<currency>` field and the settings name those of
//! [`MeiliConfig::currencies`]; a price filter or sort in another currency is refused by
//! Meilisearch.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use meilisearch_sdk::client::Client;
use meilisearch_sdk::search::{SearchResults, Selectors};
use meilisearch_sdk::settings::{Settings, TypoToleranceSettings};
use meilisearch_sdk::tasks::Task;
use serde::Deserialize;
use serde_json::{json, Value};

use super::documents;
use super::query::{OrderQuery, ProductQuery, ProductSort, SearchPage, Suggestion};
use super::{OrderHit, ProductHit, SearchError, SearchIndex};
use crate::store::Store;

/// How to reach Meilisearch and how to index.
#[derive(Debug, Clone)]
pub struct MeiliConfig {
    pub url: String,
    pub api_key: Option<String>,
    /// Index uids (a prefix lets several engines share one Meilisearch).
    pub products_index: String,
    pub orders_index: String,
    /// Currencies whose prices can be filtered and sorted on.
    pub currencies: Vec<String>,
    /// Most documents sent in one task.
    pub batch_size: i64,
    /// How long to wait for one task before trying again.
    pub task_timeout: Duration,
    pub poll_interval: Duration,
}

impl MeiliConfig {
    pub fn new(url: impl Into<String>, api_key: Option<String>) -> Self {
        Self {
            url: url.into(),
            api_key,
            products_index: projections::search::PRODUCTS.into(),
            orders_index: projections::search::ORDERS.into(),
            currencies: vec!["EUR".into(), "USD".into(), "GBP".into()],
            batch_size: 10_000,
            task_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(50),
        }
    }
}

/// Which of the two indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Products,
    Orders,
}

impl Which {
    pub const ALL: [Which; 2] = [Which::Products, Which::Orders];
}

/// A Meilisearch deployment of the two indexes. Cheap to clone.
#[derive(Clone)]
pub struct MeiliIndex {
    client: Client,
    config: MeiliConfig,
}

impl std::fmt::Debug for MeiliIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeiliIndex")
            .field("url", &self.config.url)
            .field("products", &self.config.products_index)
            .field("orders", &self.config.orders_index)
            .finish_non_exhaustive()
    }
}

/// The Meilisearch primary key of a product: its SKU, with `_` written `__` and `.`
/// written `_-` (SKUs may hold dots, Meilisearch ids may not; the mapping is one to one).
pub fn product_id(sku: &str) -> String {
    let mut id = String::with_capacity(sku.len());
    for c in sku.chars() {
        match c {
            '_' => id.push_str("__"),
            '.' => id.push_str("_-"),
            c => id.push(c),
        }
    }
    id
}

fn price_field(currency: &str) -> String {
    format!("price_{}", currency.to_ascii_lowercase())
}

/// A filter value as a Meilisearch string literal.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn quoted_list(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| quoted(v)).collect();
    format!("[{}]", items.join(", "))
}

fn millis(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(t.timestamp_millis()))
}

fn from_millis(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(DateTime::from_timestamp_millis)
}

/// The Meilisearch document of a stored product document.
pub fn product_document(doc: &ProductHit) -> Value {
    let mut value = json!({
        "id": product_id(&doc.sku),
        "sku": doc.sku,
        "name": doc.name,
        "description": doc.description,
        "brand": doc.brand,
        "category": doc.category,
        "active": doc.active,
        "prices": doc.prices,
        "available": doc.available,
        "in_stock": doc.in_stock,
        "warehouses": doc.warehouses,
        "created_at": millis(doc.created_at),
        "updated_at": millis(doc.updated_at),
    });
    if let Value::Object(map) = &mut value {
        for (currency, amount) in &doc.prices {
            map.insert(price_field(currency), json!(amount));
        }
    }
    value
}

/// The Meilisearch document of a stored order document.
pub fn order_document(doc: &OrderHit) -> Value {
    json!({
        "id": doc.order_id,
        "order_id": doc.order_id,
        "customer_id": doc.customer_id,
        "customer_name": doc.customer_name,
        "status": doc.status.map(|s| s.as_str()),
        "skus": doc.skus,
        "currency": doc.currency,
        "grand_total": doc.grand_total,
        "placed_at": millis(doc.placed_at),
        "updated_at": millis(doc.updated_at),
    })
}

/// A product hit as Meilisearch returns it.
#[derive(Debug, Deserialize)]
struct MeiliProduct {
    sku: String,
    name: String,
    description: String,
    brand: String,
    category: String,
    active: bool,
    prices: BTreeMap<String, i64>,
    available: i64,
    in_stock: bool,
    warehouses: Vec<String>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
}

impl From<MeiliProduct> for ProductHit {
    fn from(m: MeiliProduct) -> Self {
        ProductHit {
            sku: m.sku,
            name: m.name,
            description: m.description,
            brand: m.brand,
            category: m.category,
            active: m.active,
            prices: m.prices,
            available: m.available,
            in_stock: m.in_stock,
            warehouses: m.warehouses,
            created_at: from_millis(m.created_at),
            updated_at: from_millis(m.updated_at),
        }
    }
}

/// An order hit as Meilisearch returns it.
#[derive(Debug, Deserialize)]
struct MeiliOrder {
    order_id: String,
    customer_id: String,
    customer_name: String,
    status: Option<projections::search::OrderSearchStatus>,
    skus: Vec<String>,
    currency: String,
    grand_total: i64,
    placed_at: Option<i64>,
    updated_at: Option<i64>,
}

impl From<MeiliOrder> for OrderHit {
    fn from(m: MeiliOrder) -> Self {
        OrderHit {
            order_id: m.order_id,
            customer_id: m.customer_id,
            customer_name: m.customer_name,
            status: m.status,
            skus: m.skus,
            currency: m.currency,
            grand_total: m.grand_total,
            placed_at: from_millis(m.placed_at),
            updated_at: from_millis(m.updated_at),
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl MeiliIndex {
    pub fn new(config: MeiliConfig) -> Result<Self, SearchError> {
        let client = Client::new(config.url.clone(), config.api_key.clone())?;
        Ok(Self { client, config })
    }

    pub fn config(&self) -> &MeiliConfig {
        &self.config
    }

    fn uid(&self, which: Which) -> &str {
        match which {
            Which::Products => &self.config.products_index,
            Which::Orders => &self.config.orders_index,
        }
    }

    /// The checkpoint name of an index's sync.
    pub fn checkpoint_name(&self, which: Which) -> String {
        format!("meilisearch/{}", self.uid(which))
    }

    /// The settings the engine gives an index: searchable fields in ranking order,
    /// filterable and sortable fields, typo tolerance on (prefix search is Meilisearch's
    /// default for the last query word).
    pub fn settings(&self, which: Which) -> Settings {
        let typos = TypoToleranceSettings {
            enabled: Some(true),
            disable_on_attributes: None,
            disable_on_words: None,
            min_word_size_for_typos: None,
            disable_on_numbers: None,
        };
        match which {
            Which::Products => {
                let prices: Vec<String> = self
                    .config
                    .currencies
                    .iter()
                    .map(|c| price_field(c))
                    .collect();
                let mut filterable =
                    strings(&["active", "category", "brand", "in_stock", "warehouses"]);
                filterable.extend(prices.iter().cloned());
                let mut sortable = prices;
                sortable.push("created_at".into());
                Settings::new()
                    .with_searchable_attributes(["name", "brand", "category", "sku", "description"])
                    .with_filterable_attributes(filterable)
                    .with_sortable_attributes(sortable)
                    .with_typo_tolerance(typos)
            }
            Which::Orders => Settings::new()
                .with_searchable_attributes([
                    "order_id",
                    "customer_name",
                    "customer_id",
                    "skus",
                    "status",
                ])
                .with_filterable_attributes(["status", "customer_id"])
                .with_sortable_attributes(["placed_at"])
                .with_typo_tolerance(typos),
        }
    }

    /// Waits for a task and turns anything but success into an error.
    async fn succeeded(
        &self,
        task: meilisearch_sdk::task_info::TaskInfo,
    ) -> Result<(), SearchError> {
        let uid = task.get_task_uid();
        let task = self
            .client
            .wait_for_task(
                &task,
                Some(self.config.poll_interval),
                Some(self.config.task_timeout),
            )
            .await?;
        match task {
            Task::Succeeded { .. } => Ok(()),
            Task::Failed { content } => Err(SearchError::TaskFailed {
                task: uid,
                code: content.error.error_code.to_string(),
                message: content.error.error_message,
            }),
            // `wait_for_task` only returns finished tasks.
            Task::Enqueued { .. } | Task::Processing { .. } => Err(SearchError::TaskFailed {
                task: uid,
                code: "unfinished".into(),
                message: "the task had not finished".into(),
            }),
        }
    }

    /// Applies the settings of both indexes (creating them if needed), waits for the
    /// tasks, then reads the settings back and checks them.
    pub async fn apply_settings(&self) -> Result<(), SearchError> {
        for which in Which::ALL {
            let uid = self.uid(which).to_string();
            let index = self.client.index(&uid);
            let wanted = self.settings(which);
            let task = index.set_settings(&wanted).await?;
            self.succeeded(task).await?;
            let got = index.get_settings().await?;
            check_settings(&uid, &wanted, &got)?;
        }
        Ok(())
    }

    /// Sends the rows of one index changed since its checkpoint (at most
    /// [`MeiliConfig::batch_size`]) as one task, and moves the checkpoint once the task
    /// succeeded. Returns how many documents were sent (0: nothing to do).
    pub async fn sync(&self, store: &Store, which: Which) -> Result<usize, SearchError> {
        let name = self.checkpoint_name(which);
        let after = documents::checkpoint(store, &name).await?;
        let table = match which {
            Which::Products => "search_products",
            Which::Orders => "search_orders",
        };
        let sql = format!(
            "SELECT doc, position FROM {table} WHERE position > $1 ORDER BY position LIMIT $2"
        );
        let rows: Vec<(String, i64)> = crate::on_db!(store.db(), pool => {
            sqlx::query_as(&sql)
                .bind(after)
                .bind(self.config.batch_size)
                .fetch_all(pool)
                .await?
        });
        let Some(last) = rows.last().map(|(_, p)| *p) else {
            return Ok(0);
        };
        let docs = rows
            .iter()
            .map(|(text, _)| -> Result<Value, SearchError> {
                Ok(match which {
                    Which::Products => product_document(&serde_json::from_str(text)?),
                    Which::Orders => order_document(&serde_json::from_str(text)?),
                })
            })
            .collect::<Result<Vec<Value>, _>>()?;
        let index = self.client.index(self.uid(which));
        let sent = async {
            let task = index.add_or_update(&docs, Some("id")).await?;
            self.succeeded(task).await
        }
        .await;
        match sent {
            Ok(()) => {
                documents::advance(store, &name, last).await?;
                Ok(docs.len())
            }
            Err(err) => {
                documents::record_error(store, &name, Some(&err.to_string())).await?;
                Err(err)
            }
        }
    }

    fn product_filter(&self, query: &ProductQuery) -> String {
        let mut parts = vec!["active = true".to_string()];
        if !query.categories.is_empty() {
            parts.push(format!("category IN {}", quoted_list(&query.categories)));
        }
        if !query.brands.is_empty() {
            parts.push(format!("brand IN {}", quoted_list(&query.brands)));
        }
        let price = price_field(&query.currency);
        if let Some(min) = query.price_min {
            parts.push(format!("{price} >= {min}"));
        }
        if let Some(max) = query.price_max {
            parts.push(format!("{price} <= {max}"));
        }
        if let Some(in_stock) = query.in_stock {
            parts.push(format!("in_stock = {in_stock}"));
        }
        if let Some(warehouse) = &query.warehouse {
            parts.push(format!("warehouses = {}", quoted(warehouse)));
        }
        parts.join(" AND ")
    }

    async fn products(&self, query: &ProductQuery) -> Result<SearchPage<ProductHit>, SearchError> {
        let index = self.client.index(&self.config.products_index);
        let filter = self.product_filter(query);
        let price = price_field(&query.currency);
        let sort: Vec<String> = match query.sort {
            ProductSort::Relevance => vec![],
            ProductSort::PriceAsc => vec![format!("{price}:asc")],
            ProductSort::PriceDesc => vec![format!("{price}:desc")],
            ProductSort::NewestFirst => vec!["created_at:desc".into()],
            ProductSort::OldestFirst => vec!["created_at:asc".into()],
        };
        let sort: Vec<&str> = sort.iter().map(String::as_str).collect();
        let facets = ["category", "brand"];
        let mut search = index.search();
        search
            .with_query(&query.q)
            .with_filter(&filter)
            .with_page(query.page as usize)
            .with_hits_per_page(query.limit as usize);
        if !sort.is_empty() {
            search.with_sort(&sort);
        }
        if query.facets {
            search.with_facets(Selectors::Some(&facets));
        }
        let results: SearchResults<MeiliProduct> = search.execute().await?;
        let facets = query.facets.then(|| {
            results
                .facet_distribution
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(facet, counts)| {
                    let counts = counts.into_iter().map(|(v, n)| (v, n as u64)).collect();
                    (facet, counts)
                })
                .collect()
        });
        Ok(SearchPage {
            total: results
                .total_hits
                .or(results.estimated_total_hits)
                .unwrap_or(0) as u64,
            hits: results.hits.into_iter().map(|h| h.result.into()).collect(),
            page: query.page,
            limit: query.limit,
            facets,
        })
    }

    async fn orders(&self, query: &OrderQuery) -> Result<SearchPage<OrderHit>, SearchError> {
        let index = self.client.index(&self.config.orders_index);
        let mut parts = Vec::new();
        if let Some(status) = &query.status {
            parts.push(format!("status = {}", quoted(status)));
        }
        if let Some(customer) = &query.customer_id {
            parts.push(format!("customer_id = {}", quoted(customer)));
        }
        let filter = parts.join(" AND ");
        let sort = ["placed_at:desc"];
        let mut search = index.search();
        search
            .with_query(&query.q)
            .with_sort(&sort)
            .with_page(query.page as usize)
            .with_hits_per_page(query.limit as usize);
        if !filter.is_empty() {
            search.with_filter(&filter);
        }
        let results: SearchResults<MeiliOrder> = search.execute().await?;
        Ok(SearchPage {
            total: results
                .total_hits
                .or(results.estimated_total_hits)
                .unwrap_or(0) as u64,
            hits: results.hits.into_iter().map(|h| h.result.into()).collect(),
            page: query.page,
            limit: query.limit,
            facets: None,
        })
    }
}

/// Compares the fields the engine relies on; Meilisearch may list filterable and
/// sortable fields in its own order.
fn check_settings(index: &str, wanted: &Settings, got: &Settings) -> Result<(), SearchError> {
    let mismatch = |detail: String| SearchError::Settings {
        index: index.to_string(),
        detail,
    };
    if wanted.searchable_attributes != got.searchable_attributes {
        return Err(mismatch(format!(
            "searchable {:?}, expected {:?}",
            got.searchable_attributes, wanted.searchable_attributes
        )));
    }
    let sorted = |v: &Option<Vec<String>>| {
        let mut v = v.clone().unwrap_or_default();
        v.sort();
        v
    };
    if sorted(&wanted.sortable_attributes) != sorted(&got.sortable_attributes) {
        return Err(mismatch(format!(
            "sortable {:?}, expected {:?}",
            got.sortable_attributes, wanted.sortable_attributes
        )));
    }
    let filterable = |s: &Settings| {
        let mut v: Vec<String> = s
            .filterable_attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|f| match f {
                meilisearch_sdk::settings::FilterableAttribute::Attribute(name) => name,
                other => format!("{other:?}"),
            })
            .collect();
        v.sort();
        v
    };
    if filterable(wanted) != filterable(got) {
        return Err(mismatch(format!(
            "filterable {:?}, expected {:?}",
            filterable(got),
            filterable(wanted)
        )));
    }
    let typos = |s: &Settings| s.typo_tolerance.as_ref().and_then(|t| t.enabled);
    if typos(got) == Some(false) {
        return Err(mismatch("typo tolerance is off".into()));
    }
    Ok(())
}

impl SearchIndex for MeiliIndex {
    fn search_products<'a>(
        &'a self,
        query: &'a ProductQuery,
    ) -> BoxFuture<'a, Result<SearchPage<ProductHit>, SearchError>> {
        self.products(query).boxed()
    }

    fn autocomplete<'a>(
        &'a self,
        prefix: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Suggestion>, SearchError>> {
        async move {
            let query = ProductQuery {
                q: prefix.to_string(),
                limit,
                ..ProductQuery::default()
            };
            Ok(self
                .products(&query)
                .await?
                .hits
                .into_iter()
                .map(|h| Suggestion {
                    sku: h.sku,
                    name: h.name,
                })
                .collect())
        }
        .boxed()
    }

    fn search_orders<'a>(
        &'a self,
        query: &'a OrderQuery,
    ) -> BoxFuture<'a, Result<SearchPage<OrderHit>, SearchError>> {
        self.orders(query).boxed()
    }

    fn reached<'a>(
        &'a self,
        store: &'a Store,
        index: Which,
        position: i64,
    ) -> BoxFuture<'a, Result<bool, SearchError>> {
        async move {
            if documents::checkpoint(store, documents::DOCUMENTS).await? < position {
                return Ok(false);
            }
            // Folded; now no document changed at or before `position` may still wait
            // for Meilisearch.
            let sent = documents::checkpoint(store, &self.checkpoint_name(index)).await?;
            if sent >= position {
                return Ok(true);
            }
            let table = match index {
                Which::Products => "search_products",
                Which::Orders => "search_orders",
            };
            let sql =
                format!("SELECT count(*) FROM {table} WHERE position > $1 AND position <= $2");
            let pending: i64 = crate::on_db!(store.db(), pool => {
                sqlx::query_scalar(&sql)
                    .bind(sent)
                    .bind(position)
                    .fetch_one(pool)
                    .await?
            });
            Ok(pending == 0)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_ids_are_valid_meilisearch_ids_and_one_to_one() {
        assert_eq!(product_id("TSHIRT-RED-M"), "TSHIRT-RED-M");
        assert_eq!(product_id("A.B"), "A_-B");
        assert_eq!(product_id("A_B"), "A__B");
        assert_ne!(product_id("A_-B"), product_id("A.B"));
        assert_ne!(product_id("A__B"), product_id("A_B"));
    }

    #[test]
    fn filter_values_are_quoted_and_escaped() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted_list(&["x".into(), "y z".into()]), r#"["x", "y z"]"#);
    }
}
