//! Search routes: product search and autocomplete for storefronts, order search for staff.
//!
//! They read the search index (`infra::search`): the embedded one, or Meilisearch when
//! the engine was started with `--meili-url`. A query may carry `min_position` (the
//! `position` of a command reply) to wait, a bounded time, until the search documents
//! include that command's effect; past the bound the answer is a `search_behind`
//! problem naming the lag, and a position beyond the end of the log is refused at once
//! (`position_beyond_log`).

use std::collections::BTreeMap;
use std::time::Duration;

use aggregates::Currency;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use infra::search::indexer::wait_until_searchable;
use infra::search::{
    OrderHit, OrderQuery, ProductHit, ProductQuery, ProductSort, SearchError, SearchPage, Which,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::http::errors::row;
use crate::http::openapi::{ApiRouter, Operation};
use crate::http::principal::{Role, Staff};
use crate::http::problem::Problem;
use crate::http::AppState;

const TAG: &str = "search";
const STAFF: &[Role] = &[Role::Staff, Role::Admin];

/// Most hits per page.
pub const MAX_LIMIT: u32 = 100;
/// Deepest page: `page × limit` stays within 10,000 hits, as in Meilisearch.
pub const MAX_HITS_DEPTH: u32 = 10_000;
/// Longest query, in characters.
pub const MAX_QUERY: usize = 200;
/// Most suggestions per autocomplete answer.
pub const MAX_SUGGESTIONS: u32 = 20;
/// Longest wait for `min_position`.
pub const MIN_POSITION_WAIT: Duration = Duration::from_secs(2);

/// Product search parameters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductSearchParams {
    /// Words to find in name, brand, category, SKU and description; each matches as a
    /// prefix and all must match. Empty: every product.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub q: String,
    /// Comma-separated categories; a product in any of them matches.
    pub category: Option<String>,
    /// Comma-separated brands; a product of any of them matches.
    pub brand: Option<String>,
    /// The currency of price filters and price sorting (default EUR).
    #[schemars(regex(pattern = r"^[A-Z]{3}$"))]
    pub currency: Option<String>,
    /// Lowest price in minor units of `currency`, inclusive.
    #[schemars(range(min = 0))]
    pub price_min: Option<i64>,
    /// Highest price in minor units of `currency`, inclusive.
    #[schemars(range(min = 0))]
    pub price_max: Option<i64>,
    /// Only products with (or without) available units.
    pub in_stock: Option<bool>,
    /// Only products with available units in this warehouse.
    pub warehouse: Option<String>,
    /// `relevance` (default), `price:asc`, `price:desc`, `created_at:desc` or
    /// `created_at:asc`.
    pub sort: Option<String>,
    /// 1-based page (default 1).
    #[schemars(range(min = 1))]
    pub page: Option<u32>,
    /// Hits per page, 1 to 100 (default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// Whether to count hits per category and brand.
    pub facets: Option<bool>,
    /// Wait until the index includes this log position (a command reply's `position`).
    #[schemars(range(min = 0))]
    pub min_position: Option<i64>,
}

/// Autocomplete parameters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutocompleteParams {
    /// What the customer typed so far; the last word may be incomplete.
    #[schemars(length(min = 1, max = 200))]
    pub q: String,
    /// Most suggestions, 1 to 20 (default 8).
    #[schemars(range(min = 1, max = 20))]
    pub limit: Option<u32>,
}

/// Order search parameters (staff).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderSearchParams {
    /// Words to find in order id, customer id, customer name, status and SKUs (prefixes).
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub q: String,
    /// Only orders in this status (`placed`, `confirmed`, `shipped`, `cancelled`, …).
    pub status: Option<String>,
    /// Only this customer's orders.
    pub customer_id: Option<uuid::Uuid>,
    #[schemars(range(min = 1))]
    pub page: Option<u32>,
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    #[schemars(range(min = 0))]
    pub min_position: Option<i64>,
}

/// A product in search results.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProductHitView {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub brand: String,
    pub category: String,
    /// Price per currency in minor units.
    pub prices: BTreeMap<String, i64>,
    /// Units that can be sold now, over all warehouses (negative when backordered).
    pub available: i64,
    pub in_stock: bool,
    /// Warehouses with available units.
    pub warehouses: Vec<String>,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<ProductHit> for ProductHitView {
    fn from(h: ProductHit) -> Self {
        Self {
            sku: h.sku,
            name: h.name,
            description: h.description,
            brand: h.brand,
            category: h.category,
            prices: h.prices,
            available: h.available,
            in_stock: h.in_stock,
            warehouses: h.warehouses,
            created_at: h.created_at,
        }
    }
}

/// One page of product hits.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProductSearchReply {
    pub hits: Vec<ProductHitView>,
    /// Every match, not only this page.
    pub total: u64,
    pub page: u32,
    pub limit: u32,
    /// With `facets=true`: hits per value of `category` and `brand`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<BTreeMap<String, BTreeMap<String, u64>>>,
}

/// One autocomplete suggestion.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SuggestionView {
    pub sku: String,
    pub name: String,
}

/// Autocomplete suggestions, best first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AutocompleteReply {
    pub suggestions: Vec<SuggestionView>,
}

/// An order in staff search results.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrderHitView {
    pub order_id: String,
    pub customer_id: String,
    /// The name on the shipping address.
    pub customer_name: String,
    pub status: Option<String>,
    pub skus: Vec<String>,
    pub currency: String,
    /// Grand total in minor units of `currency`.
    pub grand_total: i64,
    pub placed_at: Option<DateTime<Utc>>,
}

impl From<OrderHit> for OrderHitView {
    fn from(h: OrderHit) -> Self {
        Self {
            order_id: h.order_id,
            customer_id: h.customer_id,
            customer_name: h.customer_name,
            status: h.status.map(|s| s.as_str().to_string()),
            skus: h.skus,
            currency: h.currency,
            grand_total: h.grand_total,
            placed_at: h.placed_at,
        }
    }
}

/// One page of order hits.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrderSearchReply {
    pub hits: Vec<OrderHitView>,
    pub total: u64,
    pub page: u32,
    pub limit: u32,
}

const QUERY_PROBLEMS: &[&str] = &[
    "invalid_query",
    "position_beyond_log",
    "search_unavailable",
    "search_behind",
];

/// The search routes.
pub fn router() -> ApiRouter {
    ApiRouter::new()
        .route(
            Operation::get("/products/search")
                .summary("Search products")
                .description(
                    "Full text over active products with filters (category, brand, price in a \
                     currency, stock, warehouse), facet counts, sorting and pagination.",
                )
                .tag(TAG)
                .query::<ProductSearchParams>()
                .reply::<ProductSearchReply>(200)
                .problems(QUERY_PROBLEMS),
            axum::routing::get(search_products),
        )
        .route(
            Operation::get("/products/autocomplete")
                .summary("Suggest products as the customer types")
                .tag(TAG)
                .query::<AutocompleteParams>()
                .reply::<AutocompleteReply>(200)
                .problems(&["invalid_query", "search_unavailable"]),
            axum::routing::get(autocomplete),
        )
        .route(
            Operation::get("/admin/orders/search")
                .summary("Search orders (staff)")
                .description("Newest placed first; filter by status and customer.")
                .tag(TAG)
                .roles(STAFF)
                .query::<OrderSearchParams>()
                .reply::<OrderSearchReply>(200)
                .problems(QUERY_PROBLEMS),
            axum::routing::get(search_orders),
        )
}

fn invalid(detail: impl Into<String>) -> Problem {
    row::INVALID_QUERY.problem(detail)
}

fn params<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    query.map(|Query(q)| q).map_err(|r| invalid(r.body_text()))
}

fn search_problem(err: SearchError) -> Problem {
    if err.is_unavailable() {
        row::SEARCH_UNAVAILABLE
            .problem("the search index cannot answer right now; retry shortly")
            .with_internal(err.to_string())
    } else {
        row::INTERNAL_ERROR
            .problem("the search could not be completed")
            .with_internal(err.to_string())
    }
}

/// The comma-separated values of a list filter, trimmed, empty ones dropped.
fn list(value: Option<String>) -> Result<Vec<String>, Problem> {
    let values: Vec<String> = value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    if values.len() > 20 {
        return Err(invalid("at most 20 values per list filter"));
    }
    Ok(values)
}

fn page_and_limit(page: Option<u32>, limit: Option<u32>) -> Result<(u32, u32), Problem> {
    let page = page.unwrap_or(1);
    let limit = limit.unwrap_or(20);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    if page == 0 || page.saturating_mul(limit) > MAX_HITS_DEPTH {
        return Err(invalid(format!(
            "page must be at least 1, and page × limit at most {MAX_HITS_DEPTH}"
        )));
    }
    Ok((page, limit))
}

fn check_q(q: &str) -> Result<(), Problem> {
    if q.chars().count() > MAX_QUERY {
        return Err(invalid(format!("q is longer than {MAX_QUERY} characters")));
    }
    Ok(())
}

/// Read-your-writes: waits until searches of `index` see `min_position`.
async fn wait_for(
    state: &AppState,
    index: Which,
    min_position: Option<i64>,
) -> Result<(), Problem> {
    let Some(position) = min_position else {
        return Ok(());
    };
    if position < 0 {
        return Err(invalid("min_position must not be negative"));
    }
    crate::routes::views::consistency::written(state, position).await?;
    let search = state.search.as_ref();
    let reached = wait_until_searchable(search, &state.store, index, position, MIN_POSITION_WAIT)
        .await
        .map_err(search_problem)?;
    if reached {
        return Ok(());
    }
    let at =
        infra::search::documents::checkpoint(&state.store, infra::search::documents::DOCUMENTS)
            .await
            .map_err(search_problem)?;
    Err(row::SEARCH_BEHIND.problem(format!(
        "the search index has not reached position {position} after waiting {} ms \
         (its documents are at position {at}, {} behind)",
        MIN_POSITION_WAIT.as_millis(),
        (position - at).max(0)
    )))
}

/// Turns validated parameters into the index's query.
pub fn product_query(p: ProductSearchParams) -> Result<ProductQuery, Problem> {
    check_q(&p.q)?;
    let currency = match p.currency {
        Some(c) => c
            .parse::<Currency>()
            .map_err(|e| invalid(e.to_string()))?
            .to_string(),
        None => "EUR".into(),
    };
    for (name, value) in [("price_min", p.price_min), ("price_max", p.price_max)] {
        if value.is_some_and(|v| v < 0) {
            return Err(invalid(format!("{name} must not be negative")));
        }
    }
    if let (Some(min), Some(max)) = (p.price_min, p.price_max) {
        if min > max {
            return Err(invalid("price_min is above price_max"));
        }
    }
    let sort = match p.sort.as_deref() {
        None => ProductSort::Relevance,
        Some(name) => ProductSort::parse(name).ok_or_else(|| {
            invalid(format!(
                "sort must be one of {}",
                ProductSort::NAMES.join(", ")
            ))
        })?,
    };
    let (page, limit) = page_and_limit(p.page, p.limit)?;
    Ok(ProductQuery {
        q: p.q,
        categories: list(p.category)?,
        brands: list(p.brand)?,
        currency,
        price_min: p.price_min,
        price_max: p.price_max,
        in_stock: p.in_stock,
        warehouse: p.warehouse.filter(|w| !w.is_empty()),
        sort,
        page,
        limit,
        facets: p.facets.unwrap_or(false),
    })
}

async fn search_products(
    State(state): State<AppState>,
    query: Result<Query<ProductSearchParams>, QueryRejection>,
) -> Result<Json<ProductSearchReply>, Problem> {
    let p = params(query)?;
    let min_position = p.min_position;
    let query = product_query(p)?;
    wait_for(&state, Which::Products, min_position).await?;
    let SearchPage {
        hits,
        total,
        page,
        limit,
        facets,
    } = state
        .search
        .search_products(&query)
        .await
        .map_err(search_problem)?;
    Ok(Json(ProductSearchReply {
        hits: hits.into_iter().map(Into::into).collect(),
        total,
        page,
        limit,
        facets,
    }))
}

async fn autocomplete(
    State(state): State<AppState>,
    query: Result<Query<AutocompleteParams>, QueryRejection>,
) -> Result<Json<AutocompleteReply>, Problem> {
    let p = params(query)?;
    check_q(&p.q)?;
    if infra::search::query::words(&p.q).is_empty() {
        return Err(invalid("q needs at least one letter or digit"));
    }
    let limit = p.limit.unwrap_or(8);
    if limit == 0 || limit > MAX_SUGGESTIONS {
        return Err(invalid(format!(
            "limit must be between 1 and {MAX_SUGGESTIONS}"
        )));
    }
    let suggestions = state
        .search
        .autocomplete(&p.q, limit)
        .await
        .map_err(search_problem)?;
    Ok(Json(AutocompleteReply {
        suggestions: suggestions
            .into_iter()
            .map(|s| SuggestionView {
                sku: s.sku,
                name: s.name,
            })
            .collect(),
    }))
}

async fn search_orders(
    Staff(_): Staff,
    State(state): State<AppState>,
    query: Result<Query<OrderSearchParams>, QueryRejection>,
) -> Result<Json<OrderSearchReply>, Problem> {
    let p = params(query)?;
    check_q(&p.q)?;
    let (page, limit) = page_and_limit(p.page, p.limit)?;
    wait_for(&state, Which::Orders, p.min_position).await?;
    let query = OrderQuery {
        q: p.q,
        status: p.status.filter(|s| !s.is_empty()),
        customer_id: p.customer_id.map(|c| c.to_string()),
        page,
        limit,
    };
    let SearchPage {
        hits,
        total,
        page,
        limit,
        ..
    } = state
        .search
        .search_orders(&query)
        .await
        .map_err(search_problem)?;
    Ok(Json(OrderSearchReply {
        hits: hits.into_iter().map(Into::into).collect(),
        total,
        page,
        limit,
    }))
}
