//! Analytics from order events. `sales_daily`: per UTC day and currency, orders placed
//! and their revenue (grand totals) and units, cancellations and refunds, with the
//! average order value derived by the database. `customer_cohorts`: per customer, the
//! month of their first order (the cohort) and how many orders they placed, so a query
//! groups customers by cohort and counts the repeat buyers.
//!
//! Orders count when placed; a draft counts when finalised (and, as its events do not
//! name the customer again, only in `sales_daily`).

use aggregates::order::Order;
use aggregates::order::{OrderEvent, OrderLine, OrderTotals};
use aggregates::Currency;
use aggregates::EventSourced;
use chrono::{DateTime, Utc};

use super::units;
use crate::event::{Event, ViewEvent};
use crate::projection::Projection;
use crate::row::{key, key2, Change};

pub struct Sales;

const DAILY: &str = "sales_daily";
const COHORTS: &str = "customer_cohorts";

impl Projection for Sales {
    fn name(&self) -> &'static str {
        "sales"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[DAILY, COHORTS]
    }

    fn reads(&self, stream_type: &str) -> bool {
        stream_type == Order::STREAM_TYPE
    }

    fn apply(&self, event: &Event<'_>, out: &mut Vec<Change>) {
        if let ViewEvent::Order(e) = event.event {
            sales(e, out);
        }
    }
}

/// The day's row; every counter is added so the first event of a day inserts it.
fn day(at: DateTime<Utc>, currency: Currency) -> Change {
    Change::upsert(
        DAILY,
        key2(
            "day",
            at.format("%Y-%m-%d").to_string(),
            "currency",
            currency.as_str(),
        ),
    )
}

fn placed(at: DateTime<Utc>, lines: &[OrderLine], totals: &OrderTotals) -> Change {
    let units: i64 = lines.iter().map(|l| units(l.quantity)).sum();
    day(at, totals.currency)
        .add("orders", 1)
        .add("revenue_minor", totals.grand_total.amount)
        .add("units", units)
        .add("cancelled_orders", 0)
        .add("refunds_minor", 0)
}

fn sales(event: &OrderEvent, out: &mut Vec<Change>) {
    match event {
        OrderEvent::OrderPlaced(e) if !e.draft => {
            out.push(placed(e.at, &e.lines, &e.totals));
            out.push(
                Change::upsert(COHORTS, key("customer_id", e.customer_id.to_string()))
                    .init("cohort_month", e.at.format("%Y-%m").to_string())
                    .init("first_order_at", e.at)
                    .add("orders", 1)
                    .set("last_order_at", e.at),
            );
        }
        OrderEvent::OrderDraftFinalised(e) => out.push(placed(e.at, &e.lines, &e.totals)),
        OrderEvent::OrderCancelled(e) => out.push(
            day(e.at, e.paid.currency)
                .add("orders", 0)
                .add("revenue_minor", 0)
                .add("units", 0)
                .add("cancelled_orders", 1)
                .add("refunds_minor", 0),
        ),
        OrderEvent::OrderRefundRecorded(e) => out.push(
            day(e.at, e.amount.currency)
                .add("orders", 0)
                .add("revenue_minor", 0)
                .add("units", 0)
                .add("cancelled_orders", 0)
                .add("refunds_minor", e.amount.amount),
        ),
        _ => {}
    }
}
