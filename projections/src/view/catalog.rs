//! `product_catalog`: one row per SKU with the product's details and the units available
//! over all warehouses (`in_stock` is derived by the database), and `product_prices`: one
//! row per SKU and currency. Stock may be received before the product is created: such a
//! row has no name until `ProductCreated`, and queries list only named rows.

use aggregates::product::Product;
use aggregates::product::ProductEvent;
use aggregates::stock::Stock;
use aggregates::stock::StockEvent;
use aggregates::EventSourced;

use super::json;
use super::stock::levels;
use crate::event::{Event, ViewEvent};
use crate::projection::Projection;
use crate::row::{key, key2, Change};

pub struct ProductCatalog;

const CATALOG: &str = "product_catalog";
const PRICES: &str = "product_prices";

impl Projection for ProductCatalog {
    fn name(&self) -> &'static str {
        "product_catalog"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[CATALOG, PRICES]
    }

    fn reads(&self, stream_type: &str) -> bool {
        matches!(stream_type, Product::STREAM_TYPE | Stock::STREAM_TYPE)
    }

    fn apply(&self, event: &Event<'_>, out: &mut Vec<Change>) {
        let sku = event.stream_id;
        match event.event {
            ViewEvent::Product(e) => product(sku, e, out),
            ViewEvent::Stock(e) => {
                let (available, at) = match (levels(e), e) {
                    (Some((levels, at)), _) => (levels.available, at),
                    (None, StockEvent::LowStockThresholdSet(e)) => (e.available, e.at),
                    (None, _) => return,
                };
                out.push(
                    Change::upsert(CATALOG, key("sku", sku))
                        .init("discontinued", false)
                        .set("available", available)
                        .set("updated_at", at),
                );
            }
            _ => {}
        }
    }
}

fn product(sku: &str, event: &ProductEvent, out: &mut Vec<Change>) {
    match event {
        ProductEvent::ProductCreated(e) => {
            out.push(
                Change::upsert(CATALOG, key("sku", sku))
                    .set("product_id", e.product_id.to_string())
                    .set("name", &e.name)
                    .set("description", &e.description)
                    .set("category", &e.category)
                    .set("brand", &e.brand)
                    .set("attributes", json(&e.attributes))
                    .set("discontinued", false)
                    .init("available", 0i64)
                    .set("created_at", e.at)
                    .set("updated_at", e.at),
            );
            for (currency, price) in &e.prices {
                out.push(
                    Change::upsert(PRICES, key2("sku", sku, "currency", currency.as_str()))
                        .set("amount_minor", price.amount)
                        .set("updated_at", e.at),
                );
            }
        }
        ProductEvent::ProductDetailsChanged(e) => out.push(
            Change::update(CATALOG, key("sku", sku))
                .set("name", &e.name)
                .set("description", &e.description)
                .set("category", &e.category)
                .set("brand", &e.brand)
                .set("attributes", json(&e.attributes))
                .set("updated_at", e.at),
        ),
        ProductEvent::ProductPriceChanged(e) => out.push(
            Change::upsert(
                PRICES,
                key2("sku", sku, "currency", e.price.currency.as_str()),
            )
            .set("amount_minor", e.price.amount)
            .set("updated_at", e.at),
        ),
        ProductEvent::ProductDiscontinued(e) => out.push(
            Change::update(CATALOG, key("sku", sku))
                .set("discontinued", true)
                .set("updated_at", e.at),
        ),
    }
}
