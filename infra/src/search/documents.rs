//! The document stage: events folded into stored search documents, one transaction per
//! batch with the checkpoint, so the rows are exactly as fresh as the checkpoint says and
//! a batch applied twice (after a crash before commit) changes nothing.
//!
//! Several processes on one PostgreSQL may run this stage: each batch first locks the
//! checkpoint row (`FOR UPDATE`) and skips what an earlier batch already folded, so
//! batches apply one after another in log order. SQLite's `BEGIN IMMEDIATE` serialises
//! them the same way.

use std::collections::BTreeMap;

use projections::search::{DocumentKey, OrderDocument, ProductDocument, SearchEvent};

use super::SearchError;
use crate::store::{Db, RecordedEvent, Store};

/// The checkpoint name of this stage.
pub const DOCUMENTS: &str = "documents";

/// The position up to which `name` has been applied (0 before its first batch).
pub async fn checkpoint(store: &Store, name: &str) -> Result<i64, SearchError> {
    let position: Option<i64> = crate::on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT position FROM search_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?
    });
    Ok(position.unwrap_or(0))
}

/// The last failure recorded for `name`, if its latest attempt failed.
pub async fn last_error(store: &Store, name: &str) -> Result<Option<String>, SearchError> {
    let error: Option<Option<String>> = crate::on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT last_error FROM search_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?
    });
    Ok(error.flatten())
}

/// Records (or clears, with `None`) the failure of `name`'s latest attempt, leaving its
/// position alone.
pub async fn record_error(
    store: &Store,
    name: &str,
    error: Option<&str>,
) -> Result<(), SearchError> {
    let now = store.clock().now();
    crate::on_db!(store.db(), pool => {
        sqlx::query(
            "INSERT INTO search_checkpoints (name, position, last_error, updated_at) \
             VALUES ($1, 0, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET last_error = excluded.last_error, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(error)
        .bind(now)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Moves `name`'s checkpoint forward to `position` (never back) and clears its error.
pub async fn advance(store: &Store, name: &str, position: i64) -> Result<(), SearchError> {
    let now = store.clock().now();
    crate::on_db!(store.db(), pool => {
        sqlx::query(ADVANCE)
            .bind(name)
            .bind(position)
            .bind(now)
            .execute(pool)
            .await?;
    });
    Ok(())
}

const ADVANCE: &str = "INSERT INTO search_checkpoints (name, position, last_error, updated_at) \
     VALUES ($1, $2, NULL, $3) \
     ON CONFLICT (name) DO UPDATE SET \
     position = CASE WHEN excluded.position > search_checkpoints.position \
                THEN excluded.position ELSE search_checkpoints.position END, \
     last_error = NULL, updated_at = excluded.updated_at";

/// An event the document stage reads, decoded.
struct Decoded {
    position: i64,
    key: DocumentKey,
    event: SearchEvent,
}

fn decode(events: &[RecordedEvent]) -> Result<Vec<Decoded>, SearchError> {
    let mut decoded = Vec::new();
    for e in events {
        if !SearchEvent::reads(&e.stream_type) {
            continue;
        }
        let payload = e.payload()?;
        let version = u32::try_from(e.schema_version).unwrap_or(0);
        let event = SearchEvent::decode(&e.stream_type, &e.event_type, version, payload)
            .map_err(|err| SearchError::Decode {
                position: e.position,
                reason: err.to_string(),
            })?
            .expect("reads() admitted the stream type");
        decoded.push(Decoded {
            position: e.position,
            key: event.key(&e.stream_id),
            event,
        });
    }
    Ok(decoded)
}

/// A document after a batch, with the position of the last event that changed it and
/// the stored document it started from (`None`: new), so only the parts that changed
/// are rewritten.
enum Folded {
    Product(ProductDocument, i64, Option<ProductDocument>),
    Order(OrderDocument, i64, Option<OrderDocument>),
}

/// The fields the product full-text row holds.
fn product_text(d: &ProductDocument) -> [&str; 5] {
    [&d.sku, &d.name, &d.description, &d.brand, &d.category]
}

/// The fields the order full-text row holds.
fn order_text(d: &OrderDocument) -> (&str, &str, Option<&str>, &[String]) {
    (
        &d.customer_id,
        &d.customer_name,
        d.status.map(|s| s.as_str()),
        &d.skus,
    )
}

/// Folds `events` (in position order, as read from the log) into the stored documents
/// and moves the checkpoint to the last of them, in one transaction. Events at or below
/// the checkpoint are skipped. Returns how many documents changed.
pub async fn apply_batch(store: &Store, events: &[RecordedEvent]) -> Result<usize, SearchError> {
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(0);
    };
    let decoded = decode(events)?;
    let now = store.clock().now();
    let sqlite = matches!(store.db(), Db::Sqlite(_));
    let lock = if sqlite {
        "SELECT position FROM search_checkpoints WHERE name = $1"
    } else {
        "SELECT position FROM search_checkpoints WHERE name = $1 FOR UPDATE"
    };
    let changed = crate::in_tx!(store.db(), tx => {
        sqlx::query(
            "INSERT INTO search_checkpoints (name, position, last_error, updated_at) \
             VALUES ($1, 0, NULL, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(DOCUMENTS)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let done: i64 = sqlx::query_scalar(lock)
            .bind(DOCUMENTS)
            .fetch_one(&mut *tx)
            .await?;
        let mut docs: BTreeMap<DocumentKey, Folded> = BTreeMap::new();
        for d in decoded.into_iter().filter(|d| d.position > done) {
            if !docs.contains_key(&d.key) {
                let stored: Option<String> = match &d.key {
                    DocumentKey::Product(id) => {
                        sqlx::query_scalar("SELECT doc FROM search_products WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                    DocumentKey::Order(id) => {
                        sqlx::query_scalar("SELECT doc FROM search_orders WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                };
                // Position 0 marks "unchanged so far": only documents an event changed
                // are written.
                let doc = match (&d.key, stored) {
                    (DocumentKey::Product(_), Some(text)) => {
                        let stored: ProductDocument = serde_json::from_str(&text)?;
                        Folded::Product(stored.clone(), 0, Some(stored))
                    }
                    (DocumentKey::Product(id), None) => {
                        Folded::Product(ProductDocument::new(id), 0, None)
                    }
                    (DocumentKey::Order(_), Some(text)) => {
                        let stored: OrderDocument = serde_json::from_str(&text)?;
                        Folded::Order(stored.clone(), 0, Some(stored))
                    }
                    (DocumentKey::Order(id), None) => Folded::Order(OrderDocument::new(id), 0, None),
                };
                docs.insert(d.key.clone(), doc);
            }
            let (changed, at) = match docs.get_mut(&d.key) {
                Some(Folded::Product(doc, at, _)) => (doc.apply(&d.event), at),
                Some(Folded::Order(doc, at, _)) => (doc.apply(&d.event), at),
                None => continue,
            };
            if changed {
                *at = d.position;
            }
        }
        let mut changed = 0;
        for folded in docs.values() {
            match folded {
                Folded::Product(doc, position, stored) if *position > 0 => {
                    let text_changed = stored
                        .as_ref()
                        .is_none_or(|s| product_text(s) != product_text(doc));
                    let text = serde_json::to_string(doc)?;
                    let created = doc.created_at.map(|t| t.timestamp_millis());
                    if sqlite {
                        let seq: i64 = sqlx::query_scalar(SQLITE_UPSERT_PRODUCT)
                            .bind(&doc.sku)
                            .bind(&doc.name)
                            .bind(&doc.brand)
                            .bind(&doc.category)
                            .bind(doc.active)
                            .bind(doc.in_stock)
                            .bind(doc.available)
                            .bind(created)
                            .bind(&text)
                            .bind(*position)
                            .fetch_one(&mut *tx)
                            .await?;
                        if stored.is_some() && text_changed {
                            sqlx::query("DELETE FROM search_products_fts WHERE rowid = $1")
                                .bind(seq)
                                .execute(&mut *tx)
                                .await?;
                        }
                        if text_changed {
                            sqlx::query(
                                "INSERT INTO search_products_fts \
                                 (rowid, sku, name, description, brand, category) \
                                 VALUES ($1, $2, $3, $4, $5, $6)",
                            )
                            .bind(seq)
                            .bind(&doc.sku)
                            .bind(&doc.name)
                            .bind(&doc.description)
                            .bind(&doc.brand)
                            .bind(&doc.category)
                            .execute(&mut *tx)
                            .await?;
                        }
                    } else {
                        sqlx::query(PG_UPSERT_PRODUCT)
                            .bind(&doc.sku)
                            .bind(&doc.name)
                            .bind(&doc.description)
                            .bind(&doc.brand)
                            .bind(&doc.category)
                            .bind(doc.active)
                            .bind(doc.in_stock)
                            .bind(doc.available)
                            .bind(created)
                            .bind(&text)
                            .bind(*position)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let prices_changed = stored.as_ref().is_none_or(|s| s.prices != doc.prices);
                    if stored.is_some() && prices_changed {
                        sqlx::query("DELETE FROM search_product_prices WHERE sku = $1")
                            .bind(&doc.sku)
                            .execute(&mut *tx)
                            .await?;
                    }
                    for (currency, amount) in doc.prices.iter().filter(|_| prices_changed) {
                        sqlx::query(
                            "INSERT INTO search_product_prices (sku, currency, amount) \
                             VALUES ($1, $2, $3)",
                        )
                        .bind(&doc.sku)
                        .bind(currency)
                        .bind(*amount)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let warehouses_changed = stored
                        .as_ref()
                        .is_none_or(|s| s.warehouses != doc.warehouses);
                    if stored.is_some() && warehouses_changed {
                        sqlx::query("DELETE FROM search_product_warehouses WHERE sku = $1")
                            .bind(&doc.sku)
                            .execute(&mut *tx)
                            .await?;
                    }
                    for warehouse in doc.warehouses.iter().filter(|_| warehouses_changed) {
                        sqlx::query(
                            "INSERT INTO search_product_warehouses (sku, warehouse) \
                             VALUES ($1, $2)",
                        )
                        .bind(&doc.sku)
                        .bind(warehouse)
                        .execute(&mut *tx)
                        .await?;
                    }
                    changed += 1;
                }
                Folded::Order(doc, position, stored) if *position > 0 => {
                    let text_changed = stored
                        .as_ref()
                        .is_none_or(|s| order_text(s) != order_text(doc));
                    let text = serde_json::to_string(doc)?;
                    let status = doc.status.map(|s| s.as_str()).unwrap_or("");
                    let placed = doc.placed_at.map(|t| t.timestamp_millis());
                    let skus = doc.skus.join(" ");
                    if sqlite {
                        let seq: i64 = sqlx::query_scalar(SQLITE_UPSERT_ORDER)
                            .bind(&doc.order_id)
                            .bind(&doc.customer_id)
                            .bind(status)
                            .bind(doc.grand_total)
                            .bind(placed)
                            .bind(&text)
                            .bind(*position)
                            .fetch_one(&mut *tx)
                            .await?;
                        if stored.is_some() && text_changed {
                            sqlx::query("DELETE FROM search_orders_fts WHERE rowid = $1")
                                .bind(seq)
                                .execute(&mut *tx)
                                .await?;
                        }
                        if text_changed {
                        sqlx::query(
                            "INSERT INTO search_orders_fts \
                             (rowid, order_id, customer_id, customer_name, status, skus) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(seq)
                        .bind(&doc.order_id)
                        .bind(&doc.customer_id)
                        .bind(&doc.customer_name)
                        .bind(status)
                        .bind(&skus)
                        .execute(&mut *tx)
                        .await?;
                        }
                    } else {
                        sqlx::query(PG_UPSERT_ORDER)
                            .bind(&doc.order_id)
                            .bind(&doc.customer_id)
                            .bind(&doc.customer_name)
                            .bind(status)
                            .bind(&skus)
                            .bind(doc.grand_total)
                            .bind(placed)
                            .bind(&text)
                            .bind(*position)
                            .execute(&mut *tx)
                            .await?;
                    }
                    changed += 1;
                }
                _ => {}
            }
        }
        if last > done {
            sqlx::query(ADVANCE)
                .bind(DOCUMENTS)
                .bind(last)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        changed
    });
    Ok(changed)
}

/// Folds every event of the log up to `until` (a position the caller saw appended), in
/// batches of `batch`; returns the position reached. On PostgreSQL the tail hands out an
/// event only once no earlier transaction can still commit, so this waits for that, at
/// most [`CATCH_UP_LIMIT`]. For tools and tests; the engine runs the [`super::indexer`].
pub async fn catch_up(store: &Store, until: i64, batch: i64) -> Result<i64, SearchError> {
    let deadline = tokio::time::Instant::now() + CATCH_UP_LIMIT;
    let mut position = checkpoint(store, DOCUMENTS).await?;
    while position < until {
        let events = store.read_all(position, batch).await?;
        match events.last().map(|e| e.position) {
            Some(last) => {
                apply_batch(store, &events).await?;
                position = last;
            }
            None if tokio::time::Instant::now() >= deadline => {
                return Err(SearchError::Behind {
                    position,
                    target: until,
                })
            }
            None => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
    Ok(position)
}

/// How long [`catch_up`] waits for the tail to hand out the events it was asked for.
pub const CATCH_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

const SQLITE_UPSERT_PRODUCT: &str = "INSERT INTO search_products \
     (id, name, brand, category, active, in_stock, available, created_at, doc, position) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, brand = excluded.brand, \
     category = excluded.category, active = excluded.active, in_stock = excluded.in_stock, \
     available = excluded.available, created_at = excluded.created_at, doc = excluded.doc, \
     position = excluded.position \
     RETURNING seq";

const PG_UPSERT_PRODUCT: &str = "INSERT INTO search_products \
     (id, name, description, brand, category, active, in_stock, available, created_at, doc, \
      position) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
     description = excluded.description, brand = excluded.brand, \
     category = excluded.category, active = excluded.active, in_stock = excluded.in_stock, \
     available = excluded.available, created_at = excluded.created_at, doc = excluded.doc, \
     position = excluded.position";

const SQLITE_UPSERT_ORDER: &str = "INSERT INTO search_orders \
     (id, customer_id, status, grand_total, placed_at, doc, position) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, \
     status = excluded.status, grand_total = excluded.grand_total, \
     placed_at = excluded.placed_at, doc = excluded.doc, position = excluded.position \
     RETURNING seq";

const PG_UPSERT_ORDER: &str = "INSERT INTO search_orders \
     (id, customer_id, customer_name, status, skus, grand_total, placed_at, doc, position) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, \
     customer_name = excluded.customer_name, status = excluded.status, \
     skus = excluded.skus, grand_total = excluded.grand_total, \
     placed_at = excluded.placed_at, doc = excluded.doc, position = excluded.position";
