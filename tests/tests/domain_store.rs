//! The eight real aggregates meet the store, on PostgreSQL and SQLite alike:
//!
//! * every published event example (`schemas/events/**`) survives append → `read_stream`
//!   → `EventSourced::decode` → typed event → `EventSourced::encode` unchanged;
//! * every aggregate's real state, driven through the command layer with a snapshot every
//!   two events, loads in a fresh process (snapshot + tail) equal to the state folded from
//!   every event without a snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;

use aggregates::cart::{
    AddItem, ApplyCoupon, Cart, CartCommand, ChangeItemQuantity, CheckOut, OpenCart,
    SetShippingAddress, SetShippingMethod, ShippingMethod,
};
use aggregates::loyalty::{
    AwardCampaignBonus, CommitHeldPoints, EarnPoints, EnrollAccount, HoldPoints, LoyaltyAccount,
    LoyaltyCommand, ReturnHeldPoints,
};
use aggregates::order::{
    ApproveReturn, LineQuantity, NewOrderLine, Order, OrderCommand, PlaceOrder, ReceiveReturn,
    RecordDelivery, RecordPaymentCaptured, RecordRefund, RecordShipment, RequestReturn,
};
use aggregates::payment::{
    AssessFraud, AuthorizePayment, CapturePayment, FraudInputs, InitiatePayment, Payment,
    PaymentCommand, RefundPayment,
};
use aggregates::product::{ChangeDetails, ChangePrice, CreateProduct, Product, ProductCommand};
use aggregates::promotion::{
    CreatePromotion, DiscountKind, Promotion, PromotionCode, PromotionCommand, PromotionTarget,
    PromotionTerms, ReleaseRedemption, ReserveRedemption,
};
use aggregates::schema::catalogue;
use aggregates::shipment::{
    CreateLabel, CreateShipment, Shipment, ShipmentCommand, ShipmentLine, TrackingStatus,
    UpdateTracking,
};
use aggregates::stock::{
    AdjustStock, AdjustmentReason, CommitReservation, ReceiveStock, ReserveStock,
    SetLowStockThreshold, Stock, StockCommand,
};
use aggregates::{
    Address, CartId, CountryCode, Currency, CustomerId, DomainError, EventSourced,
    LoyaltyAccountId, Money, OrderId, PaymentId, ProductId, PromotionId, Quantity, RefundId,
    ReturnId, ShipmentId, Sku, WarehouseId,
};
use chrono::{DateTime, Utc};
use infra::command::{CommandContext, Commands};
use infra::store::{NewEvent, RecordedEvent, StoreConfig, StreamRef};
use infra::Store;
use serde_json::Value;
use tests::{fresh_store, test_clock, BackendKind};
use uuid::Uuid;

/// The stored event decoded as `A` and encoded again.
fn round_trip<A: EventSourced>(recorded: &RecordedEvent) -> (String, u32, Value) {
    let event = A::decode(
        &recorded.event_type,
        u32::try_from(recorded.schema_version).expect("positive schema version"),
        recorded.payload().expect("stored payload is JSON"),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", recorded.event_type));
    let (event_type, version, payload) = A::encode(&event);
    (event_type.to_string(), version, payload)
}

/// Dispatches on the stored stream type, as every reader of the whole log must.
fn round_trip_any(recorded: &RecordedEvent) -> (String, u32, Value) {
    match recorded.stream_type.as_str() {
        t if t == Cart::STREAM_TYPE => round_trip::<Cart>(recorded),
        t if t == Order::STREAM_TYPE => round_trip::<Order>(recorded),
        t if t == Payment::STREAM_TYPE => round_trip::<Payment>(recorded),
        t if t == Product::STREAM_TYPE => round_trip::<Product>(recorded),
        t if t == Promotion::STREAM_TYPE => round_trip::<Promotion>(recorded),
        t if t == Shipment::STREAM_TYPE => round_trip::<Shipment>(recorded),
        t if t == Stock::STREAM_TYPE => round_trip::<Stock>(recorded),
        t if t == LoyaltyAccount::STREAM_TYPE => round_trip::<LoyaltyAccount>(recorded),
        other => panic!("no aggregate has stream type `{other}`"),
    }
}

async fn every_published_example_round_trips_through_the_store(kind: BackendKind) {
    let Some(store) = fresh_store(kind, StoreConfig::default(), Arc::new(test_clock())).await
    else {
        return;
    };
    let entries = catalogue();
    let mut aggregates = BTreeSet::new();
    let mut last = 0;
    for (n, entry) in entries.iter().enumerate() {
        aggregates.insert(entry.aggregate);
        let stream = StreamRef::new(entry.aggregate, format!("example-{n}"));
        let appended = NewEvent {
            event_id: Uuid::now_v7(),
            event_type: entry.event_type.to_string(),
            schema_version: entry.version as i32,
            payload: entry.example().clone(),
            metadata: BTreeMap::new(),
        };
        last = store
            .append(&stream, 0, vec![appended], None)
            .await
            .unwrap()
            .last_position;
        let stored = store.read_stream(&stream, 0).await.unwrap();
        assert_eq!(stored.len(), 1, "{}", entry.relative_path());
        let (event_type, version, payload) = round_trip_any(&stored[0]);
        assert_eq!(
            (event_type.as_str(), version, &payload),
            (entry.event_type, entry.version, entry.example()),
            "{} changed on its way through the store",
            entry.relative_path()
        );
    }
    assert_eq!(
        aggregates.len(),
        8,
        "examples of every aggregate: {aggregates:?}"
    );
    // Every example went in and came back: none was skipped on the way. (The tail hands
    // out an event once no older transaction can still commit; other tests' transactions
    // on the same server may hold that back for a moment.)
    assert!(store
        .wait_for_position(last, std::time::Duration::from_secs(30))
        .await
        .unwrap());
    let all = store.read_all(0, 10_000).await.unwrap();
    assert_eq!(all.len(), entries.len());
}

fn now(store: &Store) -> DateTime<Utc> {
    store.clock().now()
}

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

fn sku(code: &str) -> Sku {
    Sku::parse(code).unwrap()
}

fn qty(n: u32) -> Quantity {
    Quantity::new(n)
}

/// Runs `commands` on stream `id` of `A` through one command layer (with a snapshot every
/// two events), then loads it through a fresh layer as a restarted process would, and
/// compares with the state folded from every event without a snapshot.
async fn snapshot_round_trip<A>(store: &Store, id: &str, commands: Vec<A::Command>)
where
    A: EventSourced + PartialEq + Debug,
    A::Command: Clone + Debug,
    A::Error: Into<DomainError> + Debug,
{
    let writer = Commands::new(store.clone());
    for command in commands {
        let shown = format!("{command:?}");
        let done = writer
            .execute::<A>(&CommandContext::new("test"), id, command)
            .await
            .unwrap_or_else(|e| panic!("{} {id}: {shown}: {e}", A::STREAM_TYPE));
        assert!(!done.events.is_empty(), "{shown} changed nothing");
    }
    let stream = StreamRef::new(A::STREAM_TYPE, id);
    let events = store.read_stream(&stream, 0).await.unwrap();
    let head = events.last().expect("events were stored").version;

    let mut folded = A::default();
    for recorded in &events {
        folded.evolve(&infra::command::decode::<A>(&stream, recorded).unwrap());
    }

    let snapshot = store
        .load_snapshot(&stream)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{stream}: no snapshot after {head} events"));
    assert!(snapshot.version >= 2 && snapshot.version <= head);
    // The stored snapshot is this aggregate's state at its version; a snapshot that did
    // not deserialize would be skipped silently on load, so check it here.
    let snapshot_state: A = serde_json::from_value(snapshot.state.clone())
        .unwrap_or_else(|e| panic!("{stream}: snapshot does not deserialize: {e}"));
    let mut folded_to_snapshot = A::default();
    for recorded in events.iter().take_while(|e| e.version <= snapshot.version) {
        folded_to_snapshot.evolve(&infra::command::decode::<A>(&stream, recorded).unwrap());
    }
    assert_eq!(
        snapshot_state, folded_to_snapshot,
        "{stream}: snapshot state"
    );

    let read_before = store.events_read();
    let loaded = Commands::new(store.clone())
        .load::<A>(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{stream} exists"));
    assert_eq!(
        store.events_read() - read_before,
        (head - snapshot.version) as u64,
        "{stream}: the load read only the tail after the snapshot"
    );
    assert_eq!(loaded.version, head);
    assert_eq!(
        loaded.state, folded,
        "{stream}: snapshot + tail != full fold"
    );
}

async fn every_aggregate_state_round_trips_through_a_snapshot(kind: BackendKind) {
    let config = StoreConfig {
        snapshot_every: 2,
        ..StoreConfig::default()
    };
    let Some(store) = fresh_store(kind, config, Arc::new(test_clock())).await else {
        return;
    };
    let at = now(&store);
    let customer = CustomerId::from_uuid(Uuid::now_v7());
    let order_id = OrderId::from_uuid(Uuid::now_v7());
    let shirt = sku("TSHIRT-RED-M");
    let mug = sku("MUG-1");
    let berlin = WarehouseId::new("BER-1");

    snapshot_round_trip::<Product>(
        &store,
        shirt.as_str(),
        vec![
            ProductCommand::CreateProduct(CreateProduct {
                product_id: ProductId::from_uuid(Uuid::now_v7()),
                sku: shirt.clone(),
                name: "Red T-shirt".into(),
                description: "Organic cotton".into(),
                category: "apparel/t-shirts".into(),
                brand: "Acme".into(),
                attributes: BTreeMap::from([("size".into(), "M".into())]),
                prices: BTreeMap::from([(Currency::EUR, eur(1999))]),
                at,
            }),
            ProductCommand::ChangePrice(ChangePrice {
                price: eur(2499),
                at,
            }),
            ProductCommand::ChangeDetails(ChangeDetails {
                name: Some("Red T-shirt (organic)".into()),
                description: None,
                category: None,
                brand: None,
                attributes: None,
                at,
            }),
            ProductCommand::ChangePrice(ChangePrice {
                price: Money::new(2199, Currency::USD),
                at,
            }),
            ProductCommand::DiscontinueProduct { at },
        ],
    )
    .await;

    snapshot_round_trip::<Stock>(
        &store,
        shirt.as_str(),
        vec![
            StockCommand::ReceiveStock(ReceiveStock {
                sku: shirt.clone(),
                warehouse: berlin.clone(),
                quantity: qty(10),
                at,
            }),
            StockCommand::ReceiveStock(ReceiveStock {
                sku: shirt.clone(),
                warehouse: WarehouseId::new("HAM-1"),
                quantity: qty(5),
                at,
            }),
            StockCommand::SetLowStockThreshold(SetLowStockThreshold {
                sku: shirt.clone(),
                threshold: Some(qty(3)),
                at,
            }),
            StockCommand::ReserveStock(ReserveStock {
                order_id,
                quantity: qty(4),
                preferred_warehouses: vec![berlin.clone()],
                expires_at: at + chrono::Duration::minutes(15),
                at,
            }),
            StockCommand::CommitReservation(CommitReservation { order_id, at }),
            StockCommand::AdjustStock(AdjustStock {
                warehouse: berlin.clone(),
                delta: -1,
                reason: AdjustmentReason::Damaged,
                at,
            }),
        ],
    )
    .await;

    let promotion_id = PromotionId::from_uuid(Uuid::now_v7());
    snapshot_round_trip::<Promotion>(
        &store,
        "SUMMER10",
        vec![
            PromotionCommand::CreatePromotion(CreatePromotion {
                promotion_id,
                code: " summer10 ".into(),
                kind: DiscountKind::Percentage { basis_points: 1000 },
                minimum_subtotal: Some(eur(1000)),
                starts_at: at,
                ends_at: Some(at + chrono::Duration::days(30)),
                usage_limit: Some(100),
                per_customer_limit: Some(1),
                stackable: false,
                target: PromotionTarget::default(),
                at,
            }),
            PromotionCommand::ReserveRedemption(ReserveRedemption {
                order_id,
                customer_id: customer,
                at,
            }),
            PromotionCommand::ReserveRedemption(ReserveRedemption {
                order_id: OrderId::from_uuid(Uuid::now_v7()),
                customer_id: CustomerId::from_uuid(Uuid::now_v7()),
                at,
            }),
            PromotionCommand::ReleaseRedemption(ReleaseRedemption { order_id, at }),
            PromotionCommand::DeactivatePromotion { at },
        ],
    )
    .await;

    let cart_id = CartId::from_uuid(Uuid::now_v7());
    snapshot_round_trip::<Cart>(
        &store,
        &cart_id.to_string(),
        vec![
            CartCommand::OpenCart(OpenCart {
                cart_id,
                customer_id: customer,
                currency: Currency::EUR,
                at,
            }),
            CartCommand::AddItem(AddItem {
                sku: shirt.clone(),
                product_name: "Red T-shirt".into(),
                category: "apparel/t-shirts".into(),
                quantity: qty(2),
                unit_price: eur(2499),
                max_quantity_per_line: None,
                at,
            }),
            CartCommand::AddItem(AddItem {
                sku: mug.clone(),
                product_name: "Mug".into(),
                category: "kitchen".into(),
                quantity: qty(1),
                unit_price: eur(899),
                max_quantity_per_line: None,
                at,
            }),
            CartCommand::ChangeItemQuantity(ChangeItemQuantity {
                sku: shirt.clone(),
                quantity: qty(3),
                max_quantity_per_line: None,
                at,
            }),
            CartCommand::ApplyCoupon(ApplyCoupon {
                terms: PromotionTerms {
                    promotion_id,
                    code: PromotionCode::parse("SUMMER10").unwrap(),
                    kind: DiscountKind::Percentage { basis_points: 1000 },
                    minimum_subtotal: None,
                    starts_at: at,
                    ends_at: None,
                    usage_limit: None,
                    per_customer_limit: None,
                    stackable: false,
                    target: PromotionTarget::default(),
                },
                at,
            }),
            CartCommand::SetShippingAddress(SetShippingAddress {
                address: Address::example(),
                at,
            }),
            CartCommand::SetShippingMethod(SetShippingMethod {
                method: ShippingMethod {
                    code: "dhl-standard".into(),
                    price: eur(495),
                },
                at,
            }),
            CartCommand::CheckOut(CheckOut {
                order_id,
                tax_rates: BTreeMap::from([("DE".into(), 1900)]),
                at,
            }),
        ],
    )
    .await;

    let payment_id = PaymentId::from_uuid(Uuid::now_v7());
    let shipment_id = ShipmentId::from_uuid(Uuid::now_v7());
    let return_id = ReturnId::from_uuid(Uuid::now_v7());
    snapshot_round_trip::<Order>(
        &store,
        &order_id.to_string(),
        vec![
            OrderCommand::PlaceOrder(PlaceOrder {
                order_id,
                customer_id: customer,
                cart_id: Some(cart_id),
                currency: Currency::EUR,
                lines: vec![
                    NewOrderLine {
                        sku: shirt.clone(),
                        name: "Red T-shirt".into(),
                        quantity: qty(3),
                        unit_price: eur(2499),
                        discount: eur(750),
                    },
                    NewOrderLine {
                        sku: mug.clone(),
                        name: "Mug".into(),
                        quantity: qty(1),
                        unit_price: eur(899),
                        discount: eur(0),
                    },
                ],
                shipping: eur(495),
                tax_rate_bp: 1900,
                points_value: eur(0),
                shipping_address: Address::example(),
                billing_address: Address::example(),
                payment_method_token: "pm_tok_1".into(),
                draft: false,
                at,
            }),
            OrderCommand::ConfirmOrder { at },
            OrderCommand::RecordPaymentCaptured(RecordPaymentCaptured {
                payment_id,
                captured_total: eur(5000),
                at,
            }),
            OrderCommand::RecordShipment(RecordShipment {
                shipment_id,
                lines: vec![LineQuantity {
                    sku: shirt.clone(),
                    quantity: qty(3),
                }],
                at,
            }),
            OrderCommand::RecordDelivery(RecordDelivery { shipment_id, at }),
            OrderCommand::RequestReturn(RequestReturn {
                return_id,
                lines: vec![LineQuantity {
                    sku: shirt.clone(),
                    quantity: qty(1),
                }],
                reason: "too small".into(),
                window_days: None,
                at,
            }),
            OrderCommand::ApproveReturn(ApproveReturn { return_id, at }),
            OrderCommand::ReceiveReturn(ReceiveReturn { return_id, at }),
            OrderCommand::RecordRefund(RecordRefund {
                refund_id: RefundId::from_uuid(Uuid::now_v7()),
                amount: eur(1749),
                return_id: Some(return_id),
                at,
            }),
        ],
    )
    .await;

    snapshot_round_trip::<Payment>(
        &store,
        &payment_id.to_string(),
        vec![
            PaymentCommand::InitiatePayment(InitiatePayment {
                payment_id,
                order_id,
                amount: eur(5000),
                method_token: "pm_tok_1".into(),
                provider: "stripe".into(),
                at,
            }),
            PaymentCommand::AssessFraud(AssessFraud {
                inputs: FraudInputs {
                    customer_orders_last_24h: 0,
                    billing_country: CountryCode("DE".into()),
                    shipping_country: CountryCode("DE".into()),
                    first_order: false,
                    email: "ada@example.org".into(),
                    failed_attempts: 0,
                },
                policy: None,
                at,
            }),
            PaymentCommand::AuthorizePayment(AuthorizePayment {
                provider_reference: "pi_123".into(),
                amount: eur(5000),
                at,
            }),
            PaymentCommand::CapturePayment(CapturePayment {
                amount: eur(3000),
                at,
            }),
            PaymentCommand::CapturePayment(CapturePayment {
                amount: eur(2000),
                at,
            }),
            PaymentCommand::RefundPayment(RefundPayment {
                refund_id: RefundId::from_uuid(Uuid::now_v7()),
                amount: eur(1749),
                at,
            }),
        ],
    )
    .await;

    snapshot_round_trip::<Shipment>(
        &store,
        &shipment_id.to_string(),
        vec![
            ShipmentCommand::CreateShipment(CreateShipment {
                shipment_id,
                order_id,
                warehouse: berlin.clone(),
                lines: vec![ShipmentLine {
                    sku: shirt.clone(),
                    quantity: qty(3),
                }],
                at,
            }),
            ShipmentCommand::PickShipment { at },
            ShipmentCommand::PackShipment { at },
            ShipmentCommand::CreateLabel(CreateLabel {
                carrier_code: "dhl".into(),
                tracking_number: "JJD0001".into(),
                label_reference: "labels/JJD0001.pdf".into(),
                at,
            }),
            ShipmentCommand::DispatchShipment { at },
            ShipmentCommand::UpdateTracking(UpdateTracking {
                status: TrackingStatus::InTransit,
                location: "Leipzig hub".into(),
                at,
            }),
            ShipmentCommand::ConfirmDelivery { at },
        ],
    )
    .await;

    let held_order = OrderId::from_uuid(Uuid::now_v7());
    let cancelled_order = OrderId::from_uuid(Uuid::now_v7());
    snapshot_round_trip::<LoyaltyAccount>(
        &store,
        &customer.to_string(),
        vec![
            LoyaltyCommand::EnrollAccount(EnrollAccount {
                account_id: LoyaltyAccountId::from_uuid(Uuid::now_v7()),
                customer_id: customer,
                referral_code: "ADA-2026".into(),
                referred_by: None,
                currency: Currency::EUR,
                at,
            }),
            LoyaltyCommand::EarnPoints(EarnPoints {
                order_id,
                order_amount: eur(10_000),
                base_rate: 1,
                at,
            }),
            LoyaltyCommand::HoldPoints(HoldPoints {
                order_id: held_order,
                points: 20,
                at,
            }),
            LoyaltyCommand::CommitHeldPoints(CommitHeldPoints {
                order_id: held_order,
                at,
            }),
            LoyaltyCommand::AwardCampaignBonus(AwardCampaignBonus {
                campaign_id: promotion_id,
                points: 50,
                at,
            }),
            LoyaltyCommand::HoldPoints(HoldPoints {
                order_id: cancelled_order,
                points: 10,
                at,
            }),
            LoyaltyCommand::ReturnHeldPoints(ReturnHeldPoints {
                order_id: cancelled_order,
                at,
            }),
        ],
    )
    .await;
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(tests::BackendKind::Postgres).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(tests::BackendKind::Sqlite).await;
                }
            )*
        }
    };
}

on_both_backends!(
    every_published_example_round_trips_through_the_store,
    every_aggregate_state_round_trips_through_a_snapshot,
);
