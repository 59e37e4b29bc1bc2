//! A SKU's stock from the `stock_levels` projection: one row per warehouse
//! (`stock_levels`) and the totals over all of them with backorders and the low-stock
//! flag (`stock_items`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use super::consistency::{internal, reach, Fresh, ReadAt};
use super::snapshot::in_snapshot;
use crate::http::errors::row;
use crate::http::principal::Staff;
use crate::http::problem::Problem;
use crate::http::AppState;
use crate::routes::input::path_sku;

/// The projection this route reads.
pub const STOCK: &str = "stock_levels";

/// Units of the SKU in one warehouse.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct WarehouseLevel {
    pub warehouse_id: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// On hand minus reserved.
    pub available: i64,
    pub updated_at: DateTime<Utc>,
}

/// The SKU over all warehouses.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct StockTotals {
    pub on_hand: i64,
    pub reserved: i64,
    /// Units promised beyond stock, within the backorder limit.
    pub backordered: i64,
    pub available: i64,
    pub backorder_limit: Option<i64>,
    pub low_stock_threshold: Option<i64>,
    /// Available units at or below the low-stock threshold.
    pub low_stock: bool,
    pub updated_at: DateTime<Utc>,
}

/// `GET /stock-levels/{sku}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StockLevelsBody {
    pub sku: String,
    /// Absent while only per-warehouse figures exist.
    pub totals: Option<StockTotals>,
    pub warehouses: Vec<WarehouseLevel>,
}

/// `GET /stock-levels/{sku}`: `404 not_found` for a SKU no stock event ever named.
pub async fn stock_levels(
    _: Staff,
    State(state): State<AppState>,
    Path(sku): Path<String>,
    ReadAt(wanted): ReadAt,
) -> Result<Response, Problem> {
    let sku = path_sku(&sku)?;
    let position = reach(&state, STOCK, wanted).await?;
    let read = in_snapshot!(state, tx => {
        let totals: Option<StockTotals> = sqlx::query_as(
            "SELECT on_hand, reserved, backordered, available, backorder_limit, \
             low_stock_threshold, low_stock, updated_at FROM stock_items WHERE sku = $1",
        )
        .bind(sku.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let warehouses: Vec<WarehouseLevel> = sqlx::query_as(
            "SELECT warehouse_id, on_hand, reserved, available, updated_at \
             FROM stock_levels WHERE sku = $1 ORDER BY warehouse_id",
        )
        .bind(sku.as_str())
        .fetch_all(&mut *tx)
        .await?;
        (totals, warehouses)
    });
    let (totals, warehouses) = read.map_err(internal)?;
    if totals.is_none() && warehouses.is_empty() {
        return Err(row::NOT_FOUND.problem(format!("no stock recorded for {}", sku.as_str())));
    }
    let body = StockLevelsBody {
        sku: sku.as_str().to_string(),
        totals,
        warehouses,
    };
    Ok(Fresh { position, body }.into_response())
}
