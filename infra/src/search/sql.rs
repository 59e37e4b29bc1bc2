//! The embedded search index: queries over the document rows of
//! [`documents`](super::documents), matched with SQLite FTS5 or, on PostgreSQL,
//! full text over the rows' generated `tsvector` columns.
//!
//! Every query word matches as a prefix (`shi` finds "shirt") and all words must match.
//! Hits are ranked by BM25 (SQLite) or `ts_rank` (PostgreSQL) unless another sort is
//! asked for. There is no typo tolerance: that is what Meilisearch adds.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::documents::{self, DOCUMENTS};
use super::query::{words, Facets, OrderQuery, ProductQuery, ProductSort, SearchPage, Suggestion};
use super::{OrderHit, ProductHit, SearchError, SearchIndex, Which};
use crate::store::{Db, Store};

/// The index over the store's own database.
#[derive(Debug, Clone)]
pub struct SqlIndex {
    store: Store,
}

impl SqlIndex {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// A bound parameter of a built query.
#[derive(Debug, Clone)]
enum Arg {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// SQL text with `$n` parameters (both backends accept them) and its arguments.
#[derive(Debug, Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }

    fn bind_list(&mut self, values: &[String]) -> &mut Self {
        self.push("(");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(Arg::Text(v.clone()));
        }
        self.push(")")
    }
}

/// Binds every argument of a [`Sql`] to a sqlx query of either backend.
macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
                Arg::Bool(b) => q.bind(*b),
            };
        }
        q
    }};
}

async fn fetch_docs(db: Db<'_>, sql: &Sql) -> Result<Vec<String>, SearchError> {
    Ok(crate::on_db!(db, pool => {
        bind_all!(sqlx::query_scalar::<_, String>(&sql.text), &sql.args)
            .fetch_all(pool)
            .await?
    }))
}

async fn fetch_count(db: Db<'_>, sql: &Sql) -> Result<i64, SearchError> {
    Ok(crate::on_db!(db, pool => {
        bind_all!(sqlx::query_scalar::<_, i64>(&sql.text), &sql.args)
            .fetch_one(pool)
            .await?
    }))
}

async fn fetch_groups(db: Db<'_>, sql: &Sql) -> Result<Vec<(String, i64)>, SearchError> {
    Ok(crate::on_db!(db, pool => {
        bind_all!(sqlx::query_as::<_, (String, i64)>(&sql.text), &sql.args)
            .fetch_all(pool)
            .await?
    }))
}

/// The match expression of the query words: FTS5 `"w1"* "w2"*` or tsquery
/// `w1:* & w2:*`. Words are letters and digits only, so neither syntax can be injected.
fn match_expression(sqlite: bool, words: &[String]) -> String {
    if sqlite {
        words
            .iter()
            .map(|w| format!("\"{w}\"*"))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        words
            .iter()
            .map(|w| format!("{w}:*"))
            .collect::<Vec<_>>()
            .join(" & ")
    }
}

/// `FROM … WHERE …` of a product query (shared by hits, count and facets), plus the
/// relevance expression when there is a text match.
fn product_from(sqlite: bool, query: &ProductQuery, sql: &mut Sql) -> Option<String> {
    let words = words(&query.q);
    let price_sort = matches!(query.sort, ProductSort::PriceAsc | ProductSort::PriceDesc);
    let price_filter = query.price_min.is_some() || query.price_max.is_some();
    let mut rank = None;
    if !words.is_empty() && sqlite {
        // The full-text match drives the join (CROSS JOIN keeps SQLite from scanning the
        // documents and running the match once per row).
        sql.push(
            " FROM search_products_fts CROSS JOIN search_products p \
             ON p.seq = search_products_fts.rowid",
        );
        rank = Some("search_products_fts.rank".to_string());
    } else {
        sql.push(" FROM search_products p");
    }
    if price_filter || price_sort {
        sql.push(if price_filter { " JOIN" } else { " LEFT JOIN" })
            .push(" search_product_prices pr ON pr.sku = p.id AND pr.currency = ")
            .bind(Arg::Text(query.currency.clone()));
    }
    sql.push(" WHERE p.active = ").bind(Arg::Bool(true));
    if !words.is_empty() {
        let expression = match_expression(sqlite, &words);
        if sqlite {
            sql.push(" AND search_products_fts MATCH ")
                .bind(Arg::Text(expression));
        } else {
            sql.push(" AND p.tsv @@ to_tsquery('simple', ")
                .bind(Arg::Text(expression.clone()))
                .push(")");
            let n = sql.args.len();
            rank = Some(format!("ts_rank(p.tsv, to_tsquery('simple', ${n})) DESC"));
        }
    }
    if !query.categories.is_empty() {
        sql.push(" AND p.category IN ").bind_list(&query.categories);
    }
    if !query.brands.is_empty() {
        sql.push(" AND p.brand IN ").bind_list(&query.brands);
    }
    if let Some(min) = query.price_min {
        sql.push(" AND pr.amount >= ").bind(Arg::Int(min));
    }
    if let Some(max) = query.price_max {
        sql.push(" AND pr.amount <= ").bind(Arg::Int(max));
    }
    if let Some(in_stock) = query.in_stock {
        sql.push(" AND p.in_stock = ").bind(Arg::Bool(in_stock));
    }
    if let Some(warehouse) = &query.warehouse {
        sql.push(
            " AND EXISTS (SELECT 1 FROM search_product_warehouses w \
             WHERE w.sku = p.id AND w.warehouse = ",
        )
        .bind(Arg::Text(warehouse.clone()))
        .push(")");
    }
    rank
}

fn page_bounds(page: u32, limit: u32) -> (i64, i64) {
    let limit = i64::from(limit.max(1));
    (limit, (i64::from(page.max(1)) - 1) * limit)
}

impl SqlIndex {
    fn sqlite(&self) -> bool {
        matches!(self.store.db_read(), Db::Sqlite(_))
    }

    async fn products(&self, query: &ProductQuery) -> Result<SearchPage<ProductHit>, SearchError> {
        let sqlite = self.sqlite();
        let db = self.store.db_read();
        let mut hits = Sql::default();
        hits.push("SELECT p.doc");
        let rank = product_from(sqlite, query, &mut hits);
        let order = match query.sort {
            ProductSort::Relevance => rank.unwrap_or_else(|| "p.id".into()),
            ProductSort::PriceAsc => "pr.amount ASC NULLS LAST".into(),
            ProductSort::PriceDesc => "pr.amount DESC NULLS LAST".into(),
            ProductSort::NewestFirst => "p.created_at DESC NULLS LAST".into(),
            ProductSort::OldestFirst => "p.created_at ASC NULLS LAST".into(),
        };
        let (limit, offset) = page_bounds(query.page, query.limit);
        hits.push(" ORDER BY ")
            .push(&order)
            .push(", p.id LIMIT ")
            .bind(Arg::Int(limit))
            .push(" OFFSET ")
            .bind(Arg::Int(offset));
        let docs = fetch_docs(db, &hits).await?;
        let hits = docs
            .iter()
            .map(|d| serde_json::from_str(d))
            .collect::<Result<Vec<ProductHit>, _>>()?;

        let mut count = Sql::default();
        count.push("SELECT count(*)");
        product_from(sqlite, query, &mut count);
        let total = fetch_count(db, &count).await?;

        let facets = if query.facets {
            let mut facets = Facets::new();
            for field in ["category", "brand"] {
                let mut group = Sql::default();
                group.push(&format!("SELECT p.{field}, count(*)"));
                product_from(sqlite, query, &mut group);
                group.push(&format!(" GROUP BY p.{field}"));
                let counts: BTreeMap<String, u64> = fetch_groups(db, &group)
                    .await?
                    .into_iter()
                    .map(|(value, n)| (value, u64::try_from(n).unwrap_or(0)))
                    .collect();
                facets.insert(field.to_string(), counts);
            }
            Some(facets)
        } else {
            None
        };
        Ok(SearchPage {
            hits,
            total: u64::try_from(total).unwrap_or(0),
            page: query.page,
            limit: query.limit,
            facets,
        })
    }

    fn order_from(sqlite: bool, query: &OrderQuery, sql: &mut Sql) -> Option<String> {
        let words = words(&query.q);
        let mut rank = None;
        if !words.is_empty() && sqlite {
            sql.push(
                " FROM search_orders_fts CROSS JOIN search_orders o \
                 ON o.seq = search_orders_fts.rowid",
            );
        } else {
            sql.push(" FROM search_orders o");
        }
        sql.push(" WHERE o.status <> ''");
        if !words.is_empty() {
            let expression = match_expression(sqlite, &words);
            if sqlite {
                sql.push(" AND search_orders_fts MATCH ")
                    .bind(Arg::Text(expression));
                rank = Some("search_orders_fts.rank".into());
            } else {
                sql.push(" AND o.tsv @@ to_tsquery('simple', ")
                    .bind(Arg::Text(expression))
                    .push(")");
                let n = sql.args.len();
                rank = Some(format!("ts_rank(o.tsv, to_tsquery('simple', ${n})) DESC"));
            }
        }
        if let Some(status) = &query.status {
            sql.push(" AND o.status = ").bind(Arg::Text(status.clone()));
        }
        if let Some(customer) = &query.customer_id {
            sql.push(" AND o.customer_id = ")
                .bind(Arg::Text(customer.clone()));
        }
        rank
    }

    async fn orders(&self, query: &OrderQuery) -> Result<SearchPage<OrderHit>, SearchError> {
        let sqlite = self.sqlite();
        let db = self.store.db_read();
        let mut hits = Sql::default();
        hits.push("SELECT o.doc");
        // Staff look for recent orders first; relevance only breaks ties within a moment.
        let rank = Self::order_from(sqlite, query, &mut hits);
        let (limit, offset) = page_bounds(query.page, query.limit);
        hits.push(" ORDER BY o.placed_at DESC NULLS LAST");
        if let Some(rank) = rank {
            hits.push(", ").push(&rank);
        }
        hits.push(", o.id LIMIT ")
            .bind(Arg::Int(limit))
            .push(" OFFSET ")
            .bind(Arg::Int(offset));
        let hits = fetch_docs(db, &hits)
            .await?
            .iter()
            .map(|d| serde_json::from_str(d))
            .collect::<Result<Vec<OrderHit>, _>>()?;
        let mut count = Sql::default();
        count.push("SELECT count(*)");
        Self::order_from(sqlite, query, &mut count);
        let total = fetch_count(db, &count).await?;
        Ok(SearchPage {
            hits,
            total: u64::try_from(total).unwrap_or(0),
            page: query.page,
            limit: query.limit,
            facets: None,
        })
    }
}

impl SearchIndex for SqlIndex {
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
            let page = self.products(&query).await?;
            Ok(page
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
        _index: Which,
        position: i64,
    ) -> BoxFuture<'a, Result<bool, SearchError>> {
        async move { Ok(documents::checkpoint(store, DOCUMENTS).await? >= position) }.boxed()
    }
}
