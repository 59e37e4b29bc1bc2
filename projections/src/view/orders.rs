//! `order_summaries`: one row per order (status, totals, paid and refunded), its lines
//! (`order_lines`, with shipped and delivered quantities) and its shipments
//! (`order_shipments`, from the order's and the shipment's events). A customer's order
//! history is `order_summaries` by `customer_id` (indexed).

use aggregates::order::Order;
use aggregates::order::{CancellationReason, OrderEvent, OrderLine, OrderTotals};
use aggregates::shipment::Shipment;
use aggregates::shipment::{ShipmentEvent, ShipmentStatus};
use aggregates::EventSourced;
use chrono::{DateTime, Utc};

use super::{json, minor, units};
use crate::event::{Event, ViewEvent};
use crate::projection::Projection;
use crate::row::{key, key2, Change};

pub struct OrderSummaries;

const SUMMARIES: &str = "order_summaries";
const LINES: &str = "order_lines";
const SHIPMENTS: &str = "order_shipments";

impl Projection for OrderSummaries {
    fn name(&self) -> &'static str {
        "order_summaries"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[SUMMARIES, LINES, SHIPMENTS]
    }

    fn reads(&self, stream_type: &str) -> bool {
        matches!(stream_type, Order::STREAM_TYPE | Shipment::STREAM_TYPE)
    }

    fn apply(&self, event: &Event<'_>, out: &mut Vec<Change>) {
        match event.event {
            ViewEvent::Order(e) => order(event.stream_id, e, out),
            ViewEvent::Shipment(e) => shipment(e, out),
            _ => {}
        }
    }
}

fn summary(order_id: &str, at: DateTime<Utc>) -> Change {
    Change::update(SUMMARIES, key("order_id", order_id)).set("updated_at", at)
}

fn with_totals(change: Change, totals: &OrderTotals) -> Change {
    let change = minor(change, "subtotal_minor", &totals.subtotal);
    let change = minor(change, "discount_minor", &totals.discount);
    let change = minor(change, "shipping_minor", &totals.shipping);
    let change = minor(change, "tax_minor", &totals.tax);
    let change = minor(change, "points_value_minor", &totals.points_value);
    minor(change, "grand_total_minor", &totals.grand_total)
}

fn line(order_id: &str, line: &OrderLine) -> Change {
    Change::upsert(LINES, key2("order_id", order_id, "sku", line.sku.as_str()))
        .set("name", &line.name)
        .set("quantity", units(line.quantity))
        .set("currency", line.unit_price.currency.as_str())
        .set("unit_price_minor", line.unit_price.amount)
        .set("discount_minor", line.discount.amount)
        .set("line_total_minor", line.line_total.amount)
        .init("shipped_quantity", 0i64)
        .init("delivered_quantity", 0i64)
}

fn cancel_reason(reason: CancellationReason) -> &'static str {
    match reason {
        CancellationReason::CustomerRequested => "customer_requested",
        CancellationReason::MerchantRequested => "merchant_requested",
        CancellationReason::PaymentDeclined => "payment_declined",
        CancellationReason::FraudRejected => "fraud_rejected",
        CancellationReason::OutOfStock => "out_of_stock",
        CancellationReason::DraftDiscarded => "draft_discarded",
    }
}

fn order(id: &str, event: &OrderEvent, out: &mut Vec<Change>) {
    match event {
        OrderEvent::OrderPlaced(e) => {
            let row = Change::upsert(SUMMARIES, key("order_id", id))
                .set("customer_id", e.customer_id.to_string())
                .set("cart_id", e.cart_id.map(|c| c.to_string()))
                .set("status", if e.draft { "draft" } else { "placed" })
                .set("fulfilment", "unfulfilled")
                .set("draft", e.draft)
                .set("currency", e.totals.currency.as_str())
                .set("paid_minor", 0i64)
                .set("refunded_minor", 0i64)
                .set("shipping_country", e.shipping_address.country.0.as_str())
                .set("placed_at", e.at)
                .set("updated_at", e.at);
            out.push(with_totals(row, &e.totals));
            out.extend(e.lines.iter().map(|l| line(id, l)));
        }
        OrderEvent::OrderLineAdded(e) => {
            out.push(line(id, &e.line));
            out.push(with_totals(summary(id, e.at), &e.totals));
        }
        OrderEvent::OrderDraftFinalised(e) => {
            out.extend(e.lines.iter().map(|l| line(id, l)));
            let row = summary(id, e.at)
                .set("status", "placed")
                .set("draft", false);
            out.push(with_totals(row, &e.totals));
        }
        OrderEvent::OrderConfirmed(e) => {
            out.push(
                summary(id, e.at)
                    .set("status", "confirmed")
                    .set("confirmed_at", e.at),
            );
        }
        OrderEvent::OrderLineQuantityChanged(e) => {
            out.push(line(id, &e.line));
            out.push(with_totals(summary(id, e.at), &e.totals));
        }
        OrderEvent::OrderLineRemoved(e) => {
            out.push(Change::delete(
                LINES,
                key2("order_id", id, "sku", e.sku.as_str()),
            ));
            out.push(with_totals(summary(id, e.at), &e.totals));
        }
        OrderEvent::OrderShippingAddressChanged(e) => {
            let row = summary(id, e.at).set("shipping_country", e.address.country.0.as_str());
            out.push(with_totals(row, &e.totals));
        }
        OrderEvent::OrderCancelled(e) => {
            out.push(
                summary(id, e.at)
                    .set("status", "cancelled")
                    .set("cancel_reason", cancel_reason(e.reason))
                    .set("cancelled_at", e.at),
            );
        }
        OrderEvent::OrderShipmentRecorded(e) => {
            for total in &e.shipped_totals {
                out.push(
                    Change::update(LINES, key2("order_id", id, "sku", total.sku.as_str()))
                        .set("shipped_quantity", units(total.quantity)),
                );
            }
            out.push(
                Change::upsert(SHIPMENTS, key("shipment_id", e.shipment_id.to_string()))
                    .init("order_id", id)
                    .set("lines", json(&e.lines))
                    .set("shipped_at", e.at)
                    .set("updated_at", e.at),
            );
            let fulfilment = if e.fully_shipped {
                "shipped"
            } else {
                "partially_shipped"
            };
            out.push(summary(id, e.at).set("fulfilment", fulfilment));
        }
        // The shipment's row takes its status from the shipment's own event.
        OrderEvent::OrderShipmentReturnedToSender(_) => {}
        OrderEvent::OrderShipmentDelivered(e) => {
            for total in &e.delivered_totals {
                out.push(
                    Change::update(LINES, key2("order_id", id, "sku", total.sku.as_str()))
                        .set("delivered_quantity", units(total.quantity)),
                );
            }
            out.push(
                Change::update(SHIPMENTS, key("shipment_id", e.shipment_id.to_string()))
                    .set("delivered_at", e.at)
                    .set("updated_at", e.at),
            );
            out.push(summary(id, e.at));
        }
        OrderEvent::OrderDelivered(e) => {
            out.push(
                summary(id, e.at)
                    .set("fulfilment", "delivered")
                    .set("delivered_at", e.at),
            );
        }
        OrderEvent::OrderPaymentCaptured(e) => {
            out.push(minor(summary(id, e.at), "paid_minor", &e.paid_total));
        }
        OrderEvent::OrderRefundRecorded(e) => {
            out.push(minor(
                summary(id, e.at),
                "refunded_minor",
                &e.refunded_total,
            ));
        }
        OrderEvent::OrderCompleted(e) => {
            let row = summary(id, e.at)
                .set("status", "completed")
                .set("completed_at", e.at);
            let row = minor(row, "paid_minor", &e.paid);
            out.push(minor(row, "refunded_minor", &e.refunded));
        }
        // Returns have a view of their own.
        OrderEvent::OrderReturnRequested(_)
        | OrderEvent::OrderReturnApproved(_)
        | OrderEvent::OrderReturnRejected(_)
        | OrderEvent::OrderReturnReceived(_)
        | OrderEvent::OrderExchangeRequested(_) => {}
    }
}

/// The stored name of a shipment status.
pub fn shipment_status(status: ShipmentStatus) -> &'static str {
    match status {
        ShipmentStatus::NotCreated => "not_created",
        ShipmentStatus::AwaitingPick => "awaiting_pick",
        ShipmentStatus::Picked => "picked",
        ShipmentStatus::Packed => "packed",
        ShipmentStatus::Labelled => "labelled",
        ShipmentStatus::Dispatched => "dispatched",
        ShipmentStatus::InTransit => "in_transit",
        ShipmentStatus::OutForDelivery => "out_for_delivery",
        ShipmentStatus::DeliveryFailed => "delivery_failed",
        ShipmentStatus::Delivered => "delivered",
        ShipmentStatus::ReturnedToSender => "returned_to_sender",
    }
}

fn shipment_row(id: impl ToString, at: DateTime<Utc>) -> Change {
    Change::update(SHIPMENTS, key("shipment_id", id.to_string())).set("updated_at", at)
}

fn shipment(event: &ShipmentEvent, out: &mut Vec<Change>) {
    let change =
        match event {
            ShipmentEvent::ShipmentCreated(e) => {
                Change::upsert(SHIPMENTS, key("shipment_id", e.shipment_id.to_string()))
                    .init("order_id", e.order_id.to_string())
                    .set("status", shipment_status(ShipmentStatus::AwaitingPick))
                    .set("warehouse_id", e.warehouse.0.as_str())
                    .set("lines", json(&e.lines))
                    .set("updated_at", e.at)
            }
            ShipmentEvent::ShipmentRevised(e) => {
                shipment_row(e.shipment_id, e.at).set("lines", json(&e.lines))
            }
            ShipmentEvent::ShipmentPicked(e) => shipment_row(e.shipment_id, e.at)
                .set("status", shipment_status(ShipmentStatus::Picked)),
            ShipmentEvent::ShipmentPacked(e) => shipment_row(e.shipment_id, e.at)
                .set("status", shipment_status(ShipmentStatus::Packed)),
            ShipmentEvent::ShipmentLabelCreated(e) => shipment_row(e.shipment_id, e.at)
                .set("status", shipment_status(ShipmentStatus::Labelled))
                .set("carrier", &e.carrier_code)
                .set("tracking_number", &e.tracking_number),
            ShipmentEvent::ShipmentDispatched(e) => shipment_row(e.shipment_id, e.at)
                .set("status", shipment_status(ShipmentStatus::Dispatched))
                .set("carrier", &e.carrier_code)
                .set("tracking_number", &e.tracking_number),
            ShipmentEvent::ShipmentTrackingUpdated(e) => {
                shipment_row(e.shipment_id, e.at).set("status", shipment_status(e.current_status))
            }
            ShipmentEvent::ShipmentDelivered(e) => shipment_row(e.shipment_id, e.at)
                .set("status", shipment_status(ShipmentStatus::Delivered))
                .set("delivered_at", e.at),
            ShipmentEvent::ShipmentDeliveryFailed(e) => shipment_row(e.shipment_id, e.at)
                .set("status", shipment_status(ShipmentStatus::DeliveryFailed)),
            ShipmentEvent::ShipmentReturnedToSender(e) => shipment_row(e.shipment_id, e.at)
                .set("status", shipment_status(ShipmentStatus::ReturnedToSender)),
        };
    out.push(change);
}
