//! Analytics from the `sales` projection: revenue per UTC day and currency
//! (`sales_daily`) and customer cohorts by the month of their first order
//! (`customer_cohorts`). Both are derived from order events only.

use aggregates::{Currency, Money};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, NaiveDate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::consistency::{internal, reach, Fresh, ReadAt};
use super::money;
use crate::http::errors::row;
use crate::http::principal::AdminRole;
use crate::http::problem::Problem;
use crate::http::AppState;

/// The projection these routes read.
pub const SALES: &str = "sales";
/// Longest range one sales report covers.
const MAX_DAYS: i64 = 366;
/// Days a report covers when `from` is absent.
const DEFAULT_DAYS: i64 = 30;

/// Query of `GET /reports/sales`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct SalesQuery {
    /// First day (UTC, `YYYY-MM-DD`), inclusive; default 29 days before `to`.
    #[serde(default)]
    pub from: Option<String>,
    /// Last day (UTC, `YYYY-MM-DD`), inclusive; default today. At most 366 days after `from`.
    #[serde(default)]
    pub to: Option<String>,
    /// Only this currency (ISO 4217); all when absent.
    #[serde(default)]
    pub currency: Option<String>,
    /// Answer only once the view has applied the log up to this global position (also
    /// the `Consistency-Position` header).
    #[serde(default)]
    #[schemars(range(min = 0))]
    #[allow(dead_code)] // read by `ReadAt` with the header; here for the document
    pub min_position: Option<i64>,
}

/// One day's sales in one currency.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SalesDay {
    pub day: String,
    /// Orders placed (drafts: finalised) that day.
    pub orders: i64,
    /// Their grand totals.
    pub revenue: Money,
    pub units: i64,
    pub cancelled_orders: i64,
    pub refunds: Money,
    pub average_order_value: Money,
}

/// The range's sums in one currency.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SalesTotal {
    pub orders: i64,
    pub revenue: Money,
    pub units: i64,
    pub cancelled_orders: i64,
    pub refunds: Money,
}

/// `GET /reports/sales`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SalesReportBody {
    pub from: String,
    pub to: String,
    /// Days with any activity, by day then currency.
    pub days: Vec<SalesDay>,
    /// One per currency, by currency.
    pub totals: Vec<SalesTotal>,
}

#[derive(sqlx::FromRow)]
struct DayRow {
    day: String,
    currency: String,
    orders: i64,
    revenue_minor: i64,
    units: i64,
    cancelled_orders: i64,
    refunds_minor: i64,
    average_order_value_minor: i64,
}

fn day_param(name: &str, value: &str) -> Result<NaiveDate, Problem> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| row::INVALID_QUERY.problem(format!("`{name}` must be a date like 2026-12-01")))
}

/// `GET /reports/sales`.
pub async fn sales(
    _: AdminRole,
    State(state): State<AppState>,
    ReadAt(wanted): ReadAt,
    query: Result<Query<SalesQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(|r| row::INVALID_QUERY.problem(r.body_text()))?;
    let to = match &query.to {
        Some(to) => day_param("to", to)?,
        None => state.store.clock().now().date_naive(),
    };
    let from = match &query.from {
        Some(from) => day_param("from", from)?,
        None => to - Duration::days(DEFAULT_DAYS - 1),
    };
    if from > to || (to - from).num_days() >= MAX_DAYS {
        return Err(row::INVALID_QUERY.problem(format!(
            "`from` must be on or before `to`, at most {MAX_DAYS} days apart"
        )));
    }
    let currency = match &query.currency {
        Some(c) => Some(
            c.parse::<Currency>()
                .map_err(|e| row::INVALID_QUERY.problem(e.to_string()))?,
        ),
        None => None,
    };
    let position = reach(&state, SALES, wanted).await?;
    // Days are `YYYY-MM-DD` text on both backends, so text order is date order.
    let (from, to) = (
        from.format("%Y-%m-%d").to_string(),
        to.format("%Y-%m-%d").to_string(),
    );
    let select = "SELECT day, currency, orders, revenue_minor, units, cancelled_orders, \
                  refunds_minor, average_order_value_minor FROM sales_daily \
                  WHERE day >= $1 AND day <= $2";
    let rows: Vec<DayRow> = match currency {
        Some(c) => {
            let sql = format!("{select} AND currency = $3 ORDER BY day, currency");
            infra::on_db!(state.store.db_read(), pool => {
                sqlx::query_as(&sql).bind(&from).bind(&to).bind(c.as_str()).fetch_all(pool).await
            })
        }
        None => {
            let sql = format!("{select} ORDER BY day, currency");
            infra::on_db!(state.store.db_read(), pool => {
                sqlx::query_as(&sql).bind(&from).bind(&to).fetch_all(pool).await
            })
        }
    }
    .map_err(internal)?;
    let mut days = Vec::with_capacity(rows.len());
    let mut totals: Vec<SalesTotal> = Vec::new();
    for r in rows {
        let m = |amount| money(amount, &r.currency);
        let day = SalesDay {
            day: r.day.clone(),
            orders: r.orders,
            revenue: m(r.revenue_minor)?,
            units: r.units,
            cancelled_orders: r.cancelled_orders,
            refunds: m(r.refunds_minor)?,
            average_order_value: m(r.average_order_value_minor)?,
        };
        match totals
            .iter_mut()
            .find(|t| t.revenue.currency == day.revenue.currency)
        {
            Some(t) => {
                t.orders += day.orders;
                t.revenue.amount += day.revenue.amount;
                t.units += day.units;
                t.cancelled_orders += day.cancelled_orders;
                t.refunds.amount += day.refunds.amount;
            }
            None => totals.push(SalesTotal {
                orders: day.orders,
                revenue: day.revenue,
                units: day.units,
                cancelled_orders: day.cancelled_orders,
                refunds: day.refunds,
            }),
        }
        days.push(day);
    }
    totals.sort_by_key(|t| t.revenue.currency);
    let body = SalesReportBody {
        from,
        to,
        days,
        totals,
    };
    Ok(Fresh { position, body }.into_response())
}

/// Query of `GET /reports/cohorts`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct CohortsQuery {
    /// First cohort month (`YYYY-MM`), inclusive; all when absent.
    #[serde(default)]
    pub from: Option<String>,
    /// Last cohort month (`YYYY-MM`), inclusive; all when absent.
    #[serde(default)]
    pub to: Option<String>,
    /// Answer only once the view has applied the log up to this global position (also
    /// the `Consistency-Position` header).
    #[serde(default)]
    #[schemars(range(min = 0))]
    #[allow(dead_code)] // read by `ReadAt` with the header; here for the document
    pub min_position: Option<i64>,
}

/// The customers whose first order fell in one month.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Cohort {
    /// `YYYY-MM` (UTC) of the customers' first order.
    pub cohort_month: String,
    pub customers: i64,
    /// Orders the cohort has placed since, in all.
    pub orders: i64,
    /// Customers of the cohort who ordered more than once.
    pub repeat_customers: i64,
}

/// `GET /reports/cohorts`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CohortsBody {
    pub cohorts: Vec<Cohort>,
}

fn month_param(name: &str, value: &str) -> Result<String, Problem> {
    NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| value.len() == 7)
        .map(|_| value.to_string())
        .ok_or_else(|| row::INVALID_QUERY.problem(format!("`{name}` must be a month like 2026-12")))
}

/// `GET /reports/cohorts`: one row per cohort month, oldest first.
pub async fn cohorts(
    _: AdminRole,
    State(state): State<AppState>,
    ReadAt(wanted): ReadAt,
    query: Result<Query<CohortsQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(|r| row::INVALID_QUERY.problem(r.body_text()))?;
    // `YYYY-MM` text sorts as months do; the bounds default to the whole range.
    let from = match &query.from {
        Some(m) => month_param("from", m)?,
        None => "0000-00".to_string(),
    };
    let to = match &query.to {
        Some(m) => month_param("to", m)?,
        None => "9999-99".to_string(),
    };
    let position = reach(&state, SALES, wanted).await?;
    let sql = "SELECT cohort_month, CAST(COUNT(*) AS BIGINT) AS customers, \
               CAST(SUM(orders) AS BIGINT) AS orders, \
               CAST(SUM(CASE WHEN orders > 1 THEN 1 ELSE 0 END) AS BIGINT) AS repeat_customers \
               FROM customer_cohorts WHERE cohort_month >= $1 AND cohort_month <= $2 \
               GROUP BY cohort_month ORDER BY cohort_month";
    let cohorts: Vec<Cohort> = infra::on_db!(state.store.db_read(), pool => {
        sqlx::query_as(sql).bind(&from).bind(&to).fetch_all(pool).await
    })
    .map_err(internal)?;
    Ok(Fresh {
        position,
        body: CohortsBody { cohorts },
    }
    .into_response())
}
