//! Stock routes (staff): receipts, adjustments, backorder limit and low-stock threshold
//! of one SKU, and its levels per warehouse.
//!
//! A stock stream's id is its SKU. Reserving, releasing, committing and expiring stock
//! are steps of the order saga, not of staff: they have no routes.
//!
//! Receipts name a warehouse; once the shop's warehouse list is configured
//! (`PUT /admin/settings/warehouses`), a receipt for any other warehouse is refused with
//! `422 unknown_warehouse`. Receipts need the SKU to be in the catalogue, so stock never
//! piles up for a product nobody can sell.

use std::collections::BTreeMap;

use aggregates::stock::{
    AdjustStock, AdjustmentReason, ReceiveStock, ReservationStatus, SetBackorderLimit,
    SetLowStockThreshold, Stock, StockCommand,
};
use aggregates::{EventSourced, OrderId, Quantity, Sku, WarehouseId};
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue};
use axum::Json;
use chrono::{DateTime, Utc};
use infra::command::{CommandError, Executed};
use infra::StreamRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::catalogue::check_text;
use super::input::{etag, invalid_body, path_sku};
use super::settings::known_warehouse;
use crate::http::command::{CommandMeta, CommandReply, CommandReplyBody};
use crate::http::json::ApiJson;
use crate::http::openapi::{ApiRouter, Operation};
use crate::http::principal::{Role, Staff};
use crate::http::problem::Problem;
use crate::http::AppState;

const TAG: &str = "stock";
const STAFF: &[Role] = &[Role::Staff, Role::Admin];

/// Goods arrived in a warehouse.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// Warehouse code, e.g. `BER-1`.
    #[schemars(length(min = 1, max = 32))]
    pub warehouse: String,
    /// Units received, at least 1.
    #[schemars(range(min = 1))]
    pub quantity: u32,
}

/// A signed correction of on-hand stock in one warehouse.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentBody {
    #[schemars(length(min = 1, max = 32))]
    pub warehouse: String,
    /// Units added (positive) or removed (negative); never zero.
    #[schemars(range(min = -4_294_967_295i64, max = 4_294_967_295i64))]
    pub delta: i64,
    /// `damaged` and `lost` remove stock, `found` adds it, `count-correction` either.
    pub reason: AdjustmentReason,
}

/// How many units may be backordered in total; zero forbids backorders.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackorderLimitBody {
    pub limit: u32,
}

/// Alert when available stock drops to or below `threshold`; `null` turns alerts off.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LowStockThresholdBody {
    pub threshold: Option<u32>,
}

/// The stock of one SKU.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StockView {
    pub sku: Sku,
    /// The stock stream's version (also the `ETag`).
    pub version: i64,
    pub on_hand: u64,
    pub reserved: u64,
    /// Units promised to orders but not yet in any warehouse.
    pub backordered: Quantity,
    /// `on_hand - reserved - backordered`; negative while backorders are outstanding.
    pub available: i64,
    pub backorder_limit: Quantity,
    pub low_stock_threshold: Option<Quantity>,
    /// Available stock is at or below the threshold and the alert was raised.
    pub low_stock_alerted: bool,
    pub warehouses: Vec<WarehouseStock>,
    /// Reservations still holding stock, oldest first.
    pub reservations: Vec<ReservationView>,
}

/// The levels of one warehouse.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WarehouseStock {
    pub warehouse: WarehouseId,
    pub on_hand: Quantity,
    pub reserved: Quantity,
    pub available: Quantity,
}

/// An order's active reservation of this SKU.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReservationView {
    pub order_id: OrderId,
    pub quantity: Quantity,
    /// Units held per warehouse.
    pub allocation: BTreeMap<WarehouseId, Quantity>,
    /// Units still owed.
    pub backordered: Quantity,
    pub expires_at: DateTime<Utc>,
}

/// The stock routes.
pub fn router() -> ApiRouter {
    ApiRouter::new()
        .route(
            Operation::post("/stock/{sku}/receipts")
                .summary("Receive stock into a warehouse")
                .description(
                    "`201` when the receipt starts the SKU's stock record, `200` after. \
                     The SKU must be in the catalogue.",
                )
                .tag(TAG)
                .roles(STAFF)
                .command()
                .path_param("sku", "The SKU received")
                .body::<ReceiptBody>()
                .reply::<CommandReplyBody>(201)
                .reply::<CommandReplyBody>(200)
                .problems(&[
                    "invalid_id",
                    "unknown_warehouse",
                    "unknown_product",
                    "stock_quantity_zero",
                    "stock_quantity_out_of_range",
                    "stock_sku_mismatch",
                ]),
            axum::routing::post(receive),
        )
        .route(
            Operation::post("/stock/{sku}/adjustments")
                .summary("Correct on-hand stock in a warehouse")
                .tag(TAG)
                .roles(STAFF)
                .command()
                .path_param("sku", "The SKU")
                .body::<AdjustmentBody>()
                .reply::<CommandReplyBody>(200)
                .problems(&[
                    "invalid_id",
                    "stock_not_tracked",
                    "stock_quantity_zero",
                    "stock_warehouse_unknown",
                    "adjustment_reason_contradicts_delta",
                    "stock_below_reserved",
                    "stock_quantity_out_of_range",
                ]),
            axum::routing::post(adjust),
        )
        .route(
            Operation::put("/stock/{sku}/backorder-limit")
                .summary("Set how many units may be backordered")
                .tag(TAG)
                .roles(STAFF)
                .command()
                .path_param("sku", "The SKU")
                .body::<BackorderLimitBody>()
                .reply::<CommandReplyBody>(200)
                .reply::<CommandReplyBody>(201)
                .problems(&[
                    "invalid_id",
                    "unknown_product",
                    "backorder_limit_below_outstanding",
                ]),
            axum::routing::put(set_backorder_limit),
        )
        .route(
            Operation::put("/stock/{sku}/low-stock-threshold")
                .summary("Set the low-stock alert threshold")
                .tag(TAG)
                .roles(STAFF)
                .command()
                .path_param("sku", "The SKU")
                .body::<LowStockThresholdBody>()
                .reply::<CommandReplyBody>(200)
                .reply::<CommandReplyBody>(201)
                .problems(&["invalid_id", "unknown_product"]),
            axum::routing::put(set_low_stock_threshold),
        )
        .route(
            Operation::get("/stock/{sku}")
                .summary("Read the stock of a SKU")
                .description("Levels per warehouse, backorders and active reservations.")
                .tag(TAG)
                .roles(STAFF)
                .path_param("sku", "The SKU")
                .reply::<StockView>(200)
                .problems(&["invalid_id", "not_found"]),
            axum::routing::get(get_stock),
        )
}

async fn receive(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(sku): Path<String>,
    ApiJson(body): ApiJson<ReceiptBody>,
) -> Result<CommandReply, Problem> {
    let sku = path_sku(&sku)?;
    let warehouse = known_warehouse(&state, &body.warehouse).await?;
    state.commands.product(&sku).await?;
    let command = StockCommand::ReceiveStock(ReceiveStock {
        sku: sku.clone(),
        warehouse,
        quantity: Quantity::new(body.quantity),
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Stock>(&meta.context(), sku.as_str(), command)
        .await?;
    Ok(reply(&done))
}

async fn adjust(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(sku): Path<String>,
    ApiJson(body): ApiJson<AdjustmentBody>,
) -> Result<CommandReply, Problem> {
    let sku = path_sku(&sku)?;
    check_text("warehouse", &body.warehouse, 1, 32)?;
    if body.delta.unsigned_abs() > u64::from(u32::MAX) {
        return Err(invalid_body(format!(
            "`delta` must be within ±{}",
            u32::MAX
        )));
    }
    // An adjustment only touches a warehouse the SKU already has stock in (the domain
    // says so), so the warehouse list need not be consulted.
    let command = StockCommand::AdjustStock(AdjustStock {
        warehouse: WarehouseId::new(body.warehouse),
        delta: body.delta,
        reason: body.reason,
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Stock>(&meta.context(), sku.as_str(), command)
        .await?;
    Ok(CommandReply::ok(&done))
}

async fn set_backorder_limit(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(sku): Path<String>,
    ApiJson(body): ApiJson<BackorderLimitBody>,
) -> Result<CommandReply, Problem> {
    let sku = path_sku(&sku)?;
    state.commands.product(&sku).await?;
    let command = StockCommand::SetBackorderLimit(SetBackorderLimit {
        sku: sku.clone(),
        limit: Quantity::new(body.limit),
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Stock>(&meta.context(), sku.as_str(), command)
        .await?;
    Ok(reply(&done))
}

async fn set_low_stock_threshold(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(sku): Path<String>,
    ApiJson(body): ApiJson<LowStockThresholdBody>,
) -> Result<CommandReply, Problem> {
    let sku = path_sku(&sku)?;
    state.commands.product(&sku).await?;
    let command = StockCommand::SetLowStockThreshold(SetLowStockThreshold {
        sku: sku.clone(),
        threshold: body.threshold.map(Quantity::new),
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Stock>(&meta.context(), sku.as_str(), command)
        .await?;
    Ok(reply(&done))
}

async fn get_stock(
    Staff(_): Staff,
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> Result<([(HeaderName, HeaderValue); 1], Json<StockView>), Problem> {
    let sku = path_sku(&sku)?;
    let Some(loaded) = state.commands.load::<Stock>(sku.as_str()).await? else {
        let stream = StreamRef::new(Stock::STREAM_TYPE, sku.as_str());
        return Err(CommandError::NotFound { stream }.into());
    };
    let stock = loaded.state;
    let levels = &stock.levels;
    let mut reservations: Vec<_> = stock
        .reservations
        .iter()
        .filter(|(_, r)| r.status == ReservationStatus::Active)
        .collect();
    reservations.sort_by_key(|(_, r)| r.sequence);
    let view = StockView {
        sku,
        version: loaded.version,
        on_hand: levels.on_hand,
        reserved: levels.reserved,
        backordered: levels.backordered,
        available: levels.available,
        backorder_limit: stock.backorder_limit,
        low_stock_threshold: stock.low_stock_threshold,
        low_stock_alerted: stock.low_stock_alerted,
        warehouses: levels
            .warehouses
            .iter()
            .map(|(warehouse, level)| WarehouseStock {
                warehouse: warehouse.clone(),
                on_hand: level.on_hand,
                reserved: level.reserved,
                available: level.available,
            })
            .collect(),
        reservations: reservations
            .into_iter()
            .map(|(order_id, r)| ReservationView {
                order_id: *order_id,
                quantity: r.quantity,
                allocation: r.allocation.clone(),
                backordered: r.backordered,
                expires_at: r.expires_at,
            })
            .collect(),
    };
    Ok(([etag(view.version)], Json(view)))
}

/// `201` when the command began the stream (all its events are the stream's first), else
/// `200`. Read from the outcome rather than a prior load so that it holds under
/// concurrency and for an idempotent replay.
fn reply<E>(done: &Executed<E>) -> CommandReply {
    let began = !done.events.is_empty() && done.version == done.events.len() as i64;
    if began {
        CommandReply::created(done)
    } else {
        CommandReply::ok(done)
    }
}
