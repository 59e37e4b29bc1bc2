//! `stock_levels`: one row per SKU and warehouse (on hand, reserved, available), and
//! `stock_items`: one per SKU over all warehouses (backordered, the backorder limit, the
//! low-stock threshold and the `low_stock` flag the database derives from them). Stock
//! events carry the SKU's whole levels after the change, so each row is simply set.

use aggregates::stock::Stock;
use aggregates::stock::{StockEvent, StockLevels as Levels};
use aggregates::EventSourced;
use chrono::{DateTime, Utc};

use super::units;
use crate::event::{Event, ViewEvent};
use crate::projection::Projection;
use crate::row::{key, key2, Change};

pub struct StockLevels;

const LEVELS: &str = "stock_levels";
const ITEMS: &str = "stock_items";

impl Projection for StockLevels {
    fn name(&self) -> &'static str {
        "stock_levels"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[LEVELS, ITEMS]
    }

    fn reads(&self, stream_type: &str) -> bool {
        stream_type == Stock::STREAM_TYPE
    }

    fn apply(&self, event: &Event<'_>, out: &mut Vec<Change>) {
        if let ViewEvent::Stock(e) = event.event {
            stock(event.stream_id, e, out);
        }
    }
}

/// The levels an event carries, with its time; `None` for events that change settings.
pub(crate) fn levels(event: &StockEvent) -> Option<(&Levels, DateTime<Utc>)> {
    Some(match event {
        StockEvent::StockReceived(e) => (&e.levels, e.at),
        StockEvent::StockAdjusted(e) => (&e.levels, e.at),
        StockEvent::StockReserved(e) => (&e.levels, e.at),
        StockEvent::StockReservationReleased(e) => (&e.levels, e.at),
        StockEvent::StockReservationChanged(e) => (&e.levels, e.at),
        StockEvent::StockReservationCommitted(e) => (&e.levels, e.at),
        StockEvent::StockReservationExpired(e) => (&e.levels, e.at),
        StockEvent::StockBackorderFilled(e) => (&e.levels, e.at),
        StockEvent::LowStockThresholdCrossed(e) => (&e.levels, e.at),
        StockEvent::StockBackorderLimitSet(_) | StockEvent::LowStockThresholdSet(_) => return None,
    })
}

fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn stock(sku: &str, event: &StockEvent, out: &mut Vec<Change>) {
    if let Some((levels, at)) = levels(event) {
        for (warehouse, level) in &levels.warehouses {
            out.push(
                Change::upsert(
                    LEVELS,
                    key2("sku", sku, "warehouse_id", warehouse.0.as_str()),
                )
                .set("on_hand", units(level.on_hand))
                .set("reserved", units(level.reserved))
                .set("available", units(level.available))
                .set("updated_at", at),
            );
        }
        out.push(
            Change::upsert(ITEMS, key("sku", sku))
                .set("on_hand", saturating(levels.on_hand))
                .set("reserved", saturating(levels.reserved))
                .set("backordered", units(levels.backordered))
                .set("available", levels.available)
                .set("updated_at", at),
        );
        return;
    }
    // Settings may come before any stock: the row starts at zero.
    let item = |at: DateTime<Utc>| {
        Change::upsert(ITEMS, key("sku", sku))
            .init("on_hand", 0i64)
            .init("reserved", 0i64)
            .set("updated_at", at)
    };
    match event {
        StockEvent::StockBackorderLimitSet(e) => out.push(
            item(e.at)
                .init("available", 0i64)
                .set("backorder_limit", units(e.limit))
                .set("backordered", units(e.backordered)),
        ),
        StockEvent::LowStockThresholdSet(e) => out.push(
            item(e.at)
                .init("backordered", 0i64)
                .set("available", e.available)
                .set("low_stock_threshold", e.threshold.map(units)),
        ),
        _ => {}
    }
}
