//! `returns`: one row per return request of an order, from request to refund or
//! exchange.

use aggregates::order::Order;
use aggregates::order::OrderEvent;
use aggregates::EventSourced;
use chrono::{DateTime, Utc};

use super::json;
use crate::event::{Event, ViewEvent};
use crate::projection::Projection;
use crate::row::{key, Change};

pub struct Returns;

const RETURNS: &str = "returns";

impl Projection for Returns {
    fn name(&self) -> &'static str {
        "returns"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[RETURNS]
    }

    fn reads(&self, stream_type: &str) -> bool {
        stream_type == Order::STREAM_TYPE
    }

    fn apply(&self, event: &Event<'_>, out: &mut Vec<Change>) {
        if let ViewEvent::Order(e) = event.event {
            if let Some(change) = returns(event.stream_id, e) {
                out.push(change);
            }
        }
    }
}

fn row(return_id: impl ToString, at: DateTime<Utc>) -> Change {
    Change::update(RETURNS, key("return_id", return_id.to_string())).set("updated_at", at)
}

fn returns(order_id: &str, event: &OrderEvent) -> Option<Change> {
    Some(match event {
        OrderEvent::OrderReturnRequested(e) => {
            Change::upsert(RETURNS, key("return_id", e.return_id.to_string()))
                .set("order_id", order_id)
                .set("status", "requested")
                .set("reason", &e.reason)
                .set("lines", json(&e.lines))
                .set("window_days", e.window_days)
                .set("refunded_minor", 0i64)
                .set("requested_at", e.at)
                .set("updated_at", e.at)
        }
        OrderEvent::OrderReturnApproved(e) => row(e.return_id, e.at)
            .set("status", "approved")
            .set("lines", json(&e.lines))
            .set("approved_at", e.at),
        OrderEvent::OrderReturnRejected(e) => row(e.return_id, e.at)
            .set("status", "rejected")
            .set("rejection_reason", &e.reason)
            .set("rejected_at", e.at),
        OrderEvent::OrderReturnReceived(e) => row(e.return_id, e.at)
            .set("status", "received")
            .set("received_at", e.at),
        OrderEvent::OrderRefundRecorded(e) => row(e.return_id?, e.at)
            .set("status", "refunded")
            .set("currency", e.amount.currency.as_str())
            .add("refunded_minor", e.amount.amount),
        OrderEvent::OrderExchangeRequested(e) => row(e.return_id, e.at)
            .set("status", "exchange_requested")
            .set("replacement_order_id", e.replacement_order_id.to_string()),
        _ => return None,
    })
}
