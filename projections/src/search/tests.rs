//! Given stored events, when folded, then the search documents read as expected.

use aggregates::order::{OrderEvent, OrderLineRemoved, OrderPlaced};
use aggregates::product::{ProductCreated, ProductDiscontinued, ProductEvent, ProductPriceChanged};
use aggregates::stock::{LowStockThresholdSet, StockEvent, StockReceived};
use aggregates::{Currency, EventExample, EventSourced, Money};
use serde_json::json;

use super::*;

/// Round-trips an event through its stored form, as the indexer reads it.
fn stored<A: EventSourced>(event: A::Event) -> SearchEvent {
    let (event_type, version, payload) = A::encode(&event);
    SearchEvent::decode(A::STREAM_TYPE, event_type, version, payload)
        .expect("decodes")
        .expect("search reads this stream type")
}

#[test]
fn a_created_product_with_stock_is_an_active_in_stock_document() {
    let created = ProductCreated::example();
    let received = StockReceived::example();
    let mut doc = ProductDocument::new(created.sku.as_str());
    assert!(doc.apply(&stored::<Product>(ProductEvent::ProductCreated(
        created.clone()
    ))));
    assert!(doc.apply(&stored::<Stock>(StockEvent::StockReceived(received))));
    assert!(doc.active);
    assert_eq!(doc.name, created.name);
    assert_eq!(doc.prices, BTreeMap::from([("EUR".to_string(), 1999)]));
    // The example levels: BER-1 40 on hand, 5 reserved; HAM-1 20 on hand.
    assert_eq!(doc.available, 55);
    assert!(doc.in_stock);
    assert_eq!(doc.warehouses, ["BER-1", "HAM-1"]);
    assert_eq!(doc.created_at, Some(created.at));
}

#[test]
fn a_price_change_sets_one_currency_and_a_discontinued_product_goes_inactive() {
    let created = ProductCreated::example();
    let mut doc = ProductDocument::new(created.sku.as_str());
    doc.apply(&stored::<Product>(ProductEvent::ProductCreated(created)));
    let mut usd = ProductPriceChanged::example();
    usd.previous = None;
    usd.price = Money::new(2199, Currency::USD);
    doc.apply(&stored::<Product>(ProductEvent::ProductPriceChanged(usd)));
    assert_eq!(
        doc.prices,
        BTreeMap::from([("EUR".to_string(), 1999), ("USD".to_string(), 2199)])
    );
    doc.apply(&stored::<Product>(ProductEvent::ProductDiscontinued(
        ProductDiscontinued::example(),
    )));
    assert!(!doc.active);
}

#[test]
fn events_search_does_not_show_leave_the_document_unchanged_and_replays_change_nothing() {
    let mut doc = ProductDocument::new("TSHIRT-RED-M");
    let threshold = stored::<Stock>(StockEvent::LowStockThresholdSet(
        LowStockThresholdSet::example(),
    ));
    assert!(!doc.apply(&threshold));
    let created = stored::<Product>(ProductEvent::ProductCreated(ProductCreated::example()));
    assert!(doc.apply(&created));
    let once = doc.clone();
    assert!(!doc.apply(&created), "a second application changes nothing");
    assert_eq!(doc, once);
}

#[test]
fn an_order_document_follows_lines_and_status() {
    let placed = OrderPlaced::example();
    let order_id = placed.order_id.to_string();
    let mut doc = OrderDocument::new(&order_id);
    let event = stored::<Order>(OrderEvent::OrderPlaced(placed.clone()));
    assert_eq!(event.key(&order_id), DocumentKey::Order(order_id.clone()));
    doc.apply(&event);
    assert_eq!(doc.customer_id, placed.customer_id.to_string());
    assert_eq!(doc.customer_name, placed.shipping_address.name);
    assert_eq!(
        doc.status,
        Some(if placed.draft {
            OrderSearchStatus::Draft
        } else {
            OrderSearchStatus::Placed
        })
    );
    let first = placed.lines[0].sku.as_str().to_string();
    assert!(doc.skus.contains(&first));
    let mut removed = OrderLineRemoved::example();
    removed.sku = placed.lines[0].sku.clone();
    doc.apply(&stored::<Order>(OrderEvent::OrderLineRemoved(
        removed.clone(),
    )));
    assert!(!doc.skus.contains(&first));
    assert_eq!(doc.grand_total, removed.totals.grand_total.amount);
}

#[test]
fn other_stream_types_are_not_read_and_bad_payloads_are_errors() {
    assert!(!SearchEvent::reads("cart"));
    assert_eq!(
        SearchEvent::decode("cart", "CartOpened", 1, json!({})).unwrap(),
        None
    );
    let err = SearchEvent::decode("product", "ProductCreated", 1, json!({"sku": 1})).unwrap_err();
    assert!(matches!(err, DecodeError::Payload { .. }), "{err:?}");
}
