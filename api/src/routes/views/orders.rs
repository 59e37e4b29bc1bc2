//! Order history and order summaries from the `order_summaries` projection
//! (`order_summaries`, `order_lines`, `order_shipments`), and an order's payments from
//! `payments_ledger`.
//!
//! History pages are keyset-paginated, newest first, by `(placed_at, order_id)`: a page
//! stays correct while new orders arrive, and the opaque cursor is the last order of the
//! previous page.

use aggregates::{CustomerId, Money};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::response::Response;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::consistency::{internal, reach, Fresh, ReadAt};
use super::money;
use super::snapshot::in_snapshot;
use crate::http::errors::row;
use crate::http::principal::{CustomerOrStaff, Staff};
use crate::http::problem::Problem;
use crate::http::AppState;
use crate::routes::input::path_uuid;

/// The projection these routes read.
pub const ORDERS: &str = "order_summaries";
/// The projection of an order's payments.
pub const PAYMENTS: &str = "payments_ledger";
/// Orders per page when `limit` is absent.
const DEFAULT_LIMIT: u32 = 20;
/// Most orders per page.
pub const MAX_LIMIT: u32 = 100;

/// Query of the order history routes.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct HistoryQuery {
    /// Orders per page, 1 to 100 (default 20).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// Where to continue: `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Answer only once the view has applied the log up to this global position (also
    /// the `Consistency-Position` header).
    #[serde(default)]
    #[schemars(range(min = 0))]
    #[allow(dead_code)] // read by `ReadAt` with the header; here for the document
    pub min_position: Option<i64>,
}

/// One order in a history page.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrderListItem {
    pub order_id: String,
    /// `draft`, `placed`, `confirmed`, `cancelled` or `completed`.
    pub status: String,
    /// `unfulfilled`, `partially_shipped`, `shipped` or `delivered`.
    pub fulfilment: String,
    pub grand_total: Money,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of a customer's orders, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrderHistoryBody {
    pub customer_id: String,
    pub orders: Vec<OrderListItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ListRow {
    order_id: String,
    status: String,
    fulfilment: String,
    currency: String,
    grand_total_minor: i64,
    placed_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// `GET /me/orders`: the calling customer's orders.
pub async fn my_orders(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    read_at: ReadAt,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let customer = super::me(&principal)?;
    history(&state, customer, read_at, query).await
}

/// `GET /customers/{customer_id}/orders`: any customer's orders, for staff.
pub async fn customer_orders(
    _: Staff,
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
    read_at: ReadAt,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let customer = CustomerId::from_uuid(path_uuid(&customer_id)?);
    history(&state, customer, read_at, query).await
}

async fn history(
    state: &AppState,
    customer: CustomerId,
    ReadAt(wanted): ReadAt,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(|r| row::INVALID_QUERY.problem(r.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(row::INVALID_QUERY.problem(format!("`limit` must be 1 to {MAX_LIMIT}")));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let position = reach(state, ORDERS, wanted).await?;
    let customer = customer.to_string();
    let base = "SELECT order_id, status, fulfilment, currency, grand_total_minor, placed_at, \
                updated_at FROM order_summaries WHERE customer_id = $1";
    let order = "ORDER BY placed_at DESC, order_id DESC LIMIT $2";
    // One more than the page: whether a next page exists without counting.
    let fetch = i64::from(limit) + 1;
    let mut rows: Vec<ListRow> = match &after {
        None => {
            let sql = format!("{base} {order}");
            infra::on_db!(state.store.db_read(), pool => {
                sqlx::query_as(&sql).bind(&customer).bind(fetch).fetch_all(pool).await
            })
        }
        Some(after) => {
            let sql = format!(
                "{base} AND (placed_at, order_id) < \
                 (SELECT placed_at, order_id FROM order_summaries \
                  WHERE order_id = $3 AND customer_id = $1) {order}"
            );
            infra::on_db!(state.store.db_read(), pool => {
                sqlx::query_as(&sql)
                    .bind(&customer)
                    .bind(fetch)
                    .bind(after.to_string())
                    .fetch_all(pool)
                    .await
            })
        }
    }
    .map_err(internal)?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(&r.order_id))
    } else {
        None
    };
    let orders = rows
        .into_iter()
        .map(|r| {
            Ok(OrderListItem {
                grand_total: money(r.grand_total_minor, &r.currency)?,
                order_id: r.order_id,
                status: r.status,
                fulfilment: r.fulfilment,
                placed_at: r.placed_at,
                updated_at: r.updated_at,
            })
        })
        .collect::<Result<_, Problem>>()?;
    let body = OrderHistoryBody {
        customer_id: customer,
        orders,
        next_cursor,
    };
    Ok(Fresh { position, body }.into_response())
}

/// The cursor after order `order_id`: opaque to clients (hex of a tagged id), so its
/// form can change without breaking them.
fn encode_cursor(order_id: &str) -> String {
    hex::encode(format!("o1:{order_id}"))
}

fn decode_cursor(cursor: &str) -> Result<Uuid, Problem> {
    let invalid = || row::INVALID_QUERY.problem("`cursor` is not a cursor this API answered");
    let bytes = hex::decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let id = text.strip_prefix("o1:").ok_or_else(invalid)?;
    Uuid::try_parse(id).map_err(|_| invalid())
}

/// An order's figures, all in its currency.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrderTotalsView {
    pub subtotal: Money,
    pub discount: Money,
    pub shipping: Money,
    pub tax: Money,
    /// What redeemed loyalty points paid.
    pub points_value: Money,
    pub grand_total: Money,
    pub paid: Money,
    pub refunded: Money,
}

/// One line of an order.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrderLineView {
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price: Money,
    pub discount: Money,
    pub line_total: Money,
    pub shipped_quantity: i64,
    pub delivered_quantity: i64,
}

/// One shipment of an order.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrderShipmentView {
    pub shipment_id: String,
    /// The shipment's status (`awaiting_pick` … `delivered`); absent until the shipment
    /// itself reported.
    pub status: Option<String>,
    pub warehouse_id: Option<String>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    /// The SKUs and quantities it carries.
    pub lines: Option<serde_json::Value>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// An order as the `order_summaries` view has it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrderSummaryBody {
    pub order_id: String,
    pub customer_id: String,
    pub cart_id: Option<String>,
    pub status: String,
    pub fulfilment: String,
    pub draft: bool,
    pub cancel_reason: Option<String>,
    pub shipping_country: String,
    pub totals: OrderTotalsView,
    pub lines: Vec<OrderLineView>,
    pub shipments: Vec<OrderShipmentView>,
    pub placed_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    order_id: String,
    customer_id: String,
    cart_id: Option<String>,
    status: String,
    fulfilment: String,
    draft: bool,
    currency: String,
    subtotal_minor: i64,
    discount_minor: i64,
    shipping_minor: i64,
    tax_minor: i64,
    points_value_minor: i64,
    grand_total_minor: i64,
    paid_minor: i64,
    refunded_minor: i64,
    shipping_country: String,
    cancel_reason: Option<String>,
    placed_at: DateTime<Utc>,
    confirmed_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    sku: String,
    name: String,
    quantity: i64,
    currency: String,
    unit_price_minor: i64,
    discount_minor: i64,
    line_total_minor: i64,
    shipped_quantity: i64,
    delivered_quantity: i64,
}

#[derive(sqlx::FromRow)]
struct ShipmentRow {
    shipment_id: String,
    status: Option<String>,
    warehouse_id: Option<String>,
    carrier: Option<String>,
    tracking_number: Option<String>,
    lines: Option<String>,
    shipped_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

/// `GET /me/orders/{order_id}` and `GET /views/orders/{order_id}`: one order with its
/// lines and shipments. Another customer's order is the same 404 as a missing one.
pub async fn order_summary(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    ReadAt(wanted): ReadAt,
) -> Result<Response, Problem> {
    let order_id = path_uuid(&order_id)?.to_string();
    let position = reach(&state, ORDERS, wanted).await?;
    let read = in_snapshot!(state, tx => {
        let summary: Option<SummaryRow> =
            sqlx::query_as("SELECT * FROM order_summaries WHERE order_id = $1")
                .bind(&order_id)
                .fetch_optional(&mut *tx)
                .await?;
        let lines: Vec<LineRow> =
            sqlx::query_as("SELECT * FROM order_lines WHERE order_id = $1 ORDER BY sku")
                .bind(&order_id)
                .fetch_all(&mut *tx)
                .await?;
        let shipments: Vec<ShipmentRow> = sqlx::query_as(
            "SELECT * FROM order_shipments WHERE order_id = $1 ORDER BY updated_at, shipment_id",
        )
        .bind(&order_id)
        .fetch_all(&mut *tx)
        .await?;
        (summary, lines, shipments)
    });
    let (summary, lines, shipments) = read.map_err(internal)?;
    let visible = |s: &SummaryRow| {
        principal.is_staff()
            || principal
                .customer_id()
                .is_some_and(|c| c.to_string() == s.customer_id)
    };
    let Some(s) = summary.filter(visible) else {
        return Err(row::NOT_FOUND.problem(format!("no order {order_id}")));
    };
    let m = |amount| money(amount, &s.currency);
    let totals = OrderTotalsView {
        subtotal: m(s.subtotal_minor)?,
        discount: m(s.discount_minor)?,
        shipping: m(s.shipping_minor)?,
        tax: m(s.tax_minor)?,
        points_value: m(s.points_value_minor)?,
        grand_total: m(s.grand_total_minor)?,
        paid: m(s.paid_minor)?,
        refunded: m(s.refunded_minor)?,
    };
    let lines = lines
        .into_iter()
        .map(|l| {
            Ok(OrderLineView {
                unit_price: money(l.unit_price_minor, &l.currency)?,
                discount: money(l.discount_minor, &l.currency)?,
                line_total: money(l.line_total_minor, &l.currency)?,
                sku: l.sku,
                name: l.name,
                quantity: l.quantity,
                shipped_quantity: l.shipped_quantity,
                delivered_quantity: l.delivered_quantity,
            })
        })
        .collect::<Result<_, Problem>>()?;
    let shipments = shipments
        .into_iter()
        .map(|r| OrderShipmentView {
            lines: r
                .lines
                .as_deref()
                .and_then(|l| serde_json::from_str(l).ok()),
            shipment_id: r.shipment_id,
            status: r.status,
            warehouse_id: r.warehouse_id,
            carrier: r.carrier,
            tracking_number: r.tracking_number,
            shipped_at: r.shipped_at,
            delivered_at: r.delivered_at,
            updated_at: r.updated_at,
        })
        .collect();
    let body = OrderSummaryBody {
        order_id: s.order_id,
        customer_id: s.customer_id,
        cart_id: s.cart_id,
        status: s.status,
        fulfilment: s.fulfilment,
        draft: s.draft,
        cancel_reason: s.cancel_reason,
        shipping_country: s.shipping_country,
        totals,
        lines,
        shipments,
        placed_at: s.placed_at,
        confirmed_at: s.confirmed_at,
        cancelled_at: s.cancelled_at,
        delivered_at: s.delivered_at,
        completed_at: s.completed_at,
        updated_at: s.updated_at,
    };
    Ok(Fresh { position, body }.into_response())
}

/// One payment of an order, from the `payments_ledger` view.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PaymentView {
    pub payment_id: String,
    pub provider: String,
    pub status: String,
    pub amount: Money,
    pub authorized: Money,
    pub captured: Money,
    pub refunded: Money,
    pub charged_back: Money,
    /// The fraud rules' score (0 to 100) and outcome, once checked.
    pub fraud_score: Option<i64>,
    pub fraud_outcome: Option<String>,
    pub decline_reason: Option<String>,
    pub provider_reference: Option<String>,
    pub initiated_at: DateTime<Utc>,
    pub authorized_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /orders/{order_id}/payments`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrderPaymentsBody {
    pub order_id: String,
    pub payments: Vec<PaymentView>,
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    payment_id: String,
    provider: String,
    status: String,
    currency: String,
    amount_minor: i64,
    authorized_minor: i64,
    captured_minor: i64,
    refunded_minor: i64,
    charged_back_minor: i64,
    fraud_score: Option<i64>,
    fraud_outcome: Option<String>,
    decline_reason: Option<String>,
    provider_reference: Option<String>,
    initiated_at: DateTime<Utc>,
    authorized_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

/// `GET /orders/{order_id}/payments`: every payment of an order, oldest first (an order
/// without payments answers an empty list: the ledger cannot tell it from a missing one).
pub async fn order_payments(
    _: Staff,
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    ReadAt(wanted): ReadAt,
) -> Result<Response, Problem> {
    let order_id = path_uuid(&order_id)?.to_string();
    let position = reach(&state, PAYMENTS, wanted).await?;
    let sql = "SELECT payment_id, provider, status, currency, amount_minor, authorized_minor, \
               captured_minor, refunded_minor, charged_back_minor, fraud_score, fraud_outcome, \
               decline_reason, provider_reference, initiated_at, authorized_at, updated_at \
               FROM payments_ledger WHERE order_id = $1 ORDER BY initiated_at, payment_id";
    let rows: Vec<PaymentRow> = infra::on_db!(state.store.db_read(), pool => {
        sqlx::query_as(sql).bind(&order_id).fetch_all(pool).await
    })
    .map_err(internal)?;
    let payments = rows
        .into_iter()
        .map(|r| {
            let m = |amount| money(amount, &r.currency);
            Ok(PaymentView {
                amount: m(r.amount_minor)?,
                authorized: m(r.authorized_minor)?,
                captured: m(r.captured_minor)?,
                refunded: m(r.refunded_minor)?,
                charged_back: m(r.charged_back_minor)?,
                payment_id: r.payment_id,
                provider: r.provider,
                status: r.status,
                fraud_score: r.fraud_score,
                fraud_outcome: r.fraud_outcome,
                decline_reason: r.decline_reason,
                provider_reference: r.provider_reference,
                initiated_at: r.initiated_at,
                authorized_at: r.authorized_at,
                updated_at: r.updated_at,
            })
        })
        .collect::<Result<_, Problem>>()?;
    let body = OrderPaymentsBody { order_id, payments };
    Ok(Fresh { position, body }.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        let cursor = encode_cursor(&id.to_string());
        assert_eq!(decode_cursor(&cursor).ok(), Some(id));
        for bad in [
            "zz",
            "",
            &hex::encode("o1:not-a-uuid"),
            &hex::encode(id.to_string()),
        ] {
            assert_eq!(
                decode_cursor(bad).unwrap_err().code,
                "invalid_query",
                "{bad}"
            );
        }
    }
}
