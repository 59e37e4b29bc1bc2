//! The command layer's guarantees, against `infra::command::Commands` directly (no HTTP),
//! on PostgreSQL and SQLite alike: idempotency by command id (also across a restart and
//! under 50 concurrent duplicates from two processes), conflicts between processes,
//! expected versions, owner scope, event metadata, and refusals that change nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aggregates::cart::{AddItem, Cart, CartCommand, CartError, ChangeItemQuantity, OpenCart};
use aggregates::product::{CreateProduct, Product, ProductCommand};
use aggregates::stock::{ReceiveStock, ReserveStock, SetLowStockThreshold, Stock, StockCommand};
use aggregates::{
    CartId, Currency, CustomerId, DomainError, Money, OrderId, ProductId, Quantity, Sku,
    WarehouseId,
};
use infra::command::{CommandContext, CommandError, Commands, LookupError, COMMAND_ID};
use infra::store::{StoreConfig, StreamRef, ACTOR, CAUSATION_ID, CORRELATION_ID};
use infra::Store;
use tests::{fresh_store, test_clock, BackendKind};
use uuid::Uuid;

async fn store(kind: BackendKind) -> Option<Store> {
    fresh_store(kind, StoreConfig::default(), Arc::new(test_clock())).await
}

fn sku(code: &str) -> Sku {
    Sku::parse(code).unwrap()
}

fn open_cart(store: &Store, cart: CartId, customer: CustomerId) -> CartCommand {
    CartCommand::OpenCart(OpenCart {
        cart_id: cart,
        customer_id: customer,
        currency: Currency::EUR,
        at: store.clock().now(),
    })
}

fn add_item(store: &Store, code: &str, quantity: u32) -> CartCommand {
    CartCommand::AddItem(AddItem {
        sku: sku(code),
        product_name: format!("Product {code}"),
        category: "apparel".into(),
        quantity: Quantity::new(quantity),
        unit_price: Money::new(1999, Currency::EUR),
        max_quantity_per_line: Some(1000),
        at: store.clock().now(),
    })
}

fn ctx() -> CommandContext {
    CommandContext::new("test")
}

/// A new cart of `customer`, opened through `commands`.
async fn opened_cart(commands: &Commands, customer: CustomerId) -> String {
    let cart = CartId::from_uuid(Uuid::now_v7());
    let id = cart.to_string();
    commands
        .execute::<Cart>(&ctx(), &id, open_cart(commands.store(), cart, customer))
        .await
        .unwrap();
    id
}

async fn stored_count(store: &Store, stream_type: &str, id: &str) -> usize {
    store
        .read_stream(&StreamRef::new(stream_type, id), 0)
        .await
        .unwrap()
        .len()
}

fn line_quantity(cart: &Cart, code: &str) -> u32 {
    cart.lines
        .iter()
        .find(|line| line.sku.as_str() == code)
        .map_or(0, |line| line.quantity.get())
}

async fn the_same_command_id_twice_appends_once(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let commands = Commands::new(store.clone());
    let cart = CartId::from_uuid(Uuid::now_v7());
    let id = cart.to_string();
    let context = ctx();
    let customer = CustomerId::from_uuid(Uuid::now_v7());

    let first = commands
        .execute::<Cart>(&context, &id, open_cart(&store, cart, customer))
        .await
        .unwrap();
    let second = commands
        .execute::<Cart>(&context, &id, open_cart(&store, cart, customer))
        .await
        .unwrap();
    assert!(!first.replayed);
    assert!(second.replayed);
    assert_eq!(
        (second.version, second.position, &second.events),
        (first.version, first.position, &first.events)
    );
    assert_eq!(stored_count(&store, "cart", &id).await, 1);

    // A command that would succeed again (adding more units) is not applied twice either.
    let add = ctx();
    let added = commands
        .execute::<Cart>(&add, &id, add_item(&store, "SKU-1", 2))
        .await
        .unwrap();
    let again = commands
        .execute::<Cart>(&add, &id, add_item(&store, "SKU-1", 2))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.version, again.position),
        (added.version, added.position)
    );
    assert_eq!(again.events, added.events);
    let state = commands.load::<Cart>(&id).await.unwrap().unwrap();
    assert_eq!(line_quantity(&state.state, "SKU-1"), 2);
    assert_eq!(stored_count(&store, "cart", &id).await, 2);
}

async fn a_retry_after_the_state_moved_on_answers_the_first_outcome(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let commands = Commands::new(store.clone());
    let cart = CartId::from_uuid(Uuid::now_v7());
    let id = cart.to_string();
    let customer = CustomerId::from_uuid(Uuid::now_v7());
    let open = ctx();
    let opened = commands
        .execute::<Cart>(&open, &id, open_cart(&store, cart, customer))
        .await
        .unwrap();
    let add = ctx();
    let added = commands
        .execute::<Cart>(&add, &id, add_item(&store, "SKU-1", 1))
        .await
        .unwrap();
    commands
        .execute::<Cart>(&ctx(), &id, add_item(&store, "SKU-2", 1))
        .await
        .unwrap();

    // Deciding `OpenCart` again would be refused ("already open"): the retry gets the
    // first outcome instead of a domain error.
    let retried_open = commands
        .execute::<Cart>(&open, &id, open_cart(&store, cart, customer))
        .await
        .unwrap();
    assert!(retried_open.replayed);
    assert_eq!(
        (
            retried_open.version,
            retried_open.position,
            &retried_open.events
        ),
        (opened.version, opened.position, &opened.events)
    );
    // Deciding `AddItem` again would add a unit more: the retry adds nothing.
    let retried_add = commands
        .execute::<Cart>(&add, &id, add_item(&store, "SKU-1", 1))
        .await
        .unwrap();
    assert!(retried_add.replayed);
    assert_eq!(
        (retried_add.version, retried_add.position),
        (added.version, added.position)
    );
    let state = commands.load::<Cart>(&id).await.unwrap().unwrap();
    assert_eq!(state.version, 3);
    assert_eq!(line_quantity(&state.state, "SKU-1"), 1);
}

async fn a_retry_after_a_crash_between_append_and_reply_replays(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let customer = CustomerId::from_uuid(Uuid::now_v7());
    let before_crash = Commands::new(store.clone());
    let id = opened_cart(&before_crash, customer).await;
    let add = ctx();
    // The process appends, then dies before the client hears back.
    let lost_reply = before_crash
        .execute::<Cart>(&add, &id, add_item(&store, "SKU-1", 3))
        .await
        .unwrap();
    drop(before_crash);

    let restarted = Commands::new(store.clone());
    let retried = restarted
        .execute::<Cart>(&add, &id, add_item(&store, "SKU-1", 3))
        .await
        .unwrap();
    assert!(retried.replayed);
    assert_eq!(
        (retried.version, retried.position, &retried.events),
        (lost_reply.version, lost_reply.position, &lost_reply.events)
    );
    let state = restarted.load::<Cart>(&id).await.unwrap().unwrap();
    assert_eq!(line_quantity(&state.state, "SKU-1"), 3);
    assert_eq!(stored_count(&store, "cart", &id).await, 2);
}

async fn fifty_concurrent_duplicates_from_two_processes_append_once(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let processes = [Commands::new(store.clone()), Commands::new(store.clone())];
    let id = opened_cart(&processes[0], CustomerId::from_uuid(Uuid::now_v7())).await;
    // The second process has the stream cached too, at the same version.
    processes[1].load::<Cart>(&id).await.unwrap().unwrap();
    let context = ctx();
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let commands = processes[n % 2].clone();
            let context = context.clone();
            let id = id.clone();
            let command = add_item(&store, "SKU-HOT", 1);
            tokio::spawn(async move { commands.execute::<Cart>(&context, &id, command).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().unwrap());
    }
    let applied: Vec<_> = outcomes.iter().filter(|o| !o.replayed).collect();
    assert_eq!(applied.len(), 1, "exactly one of 50 duplicates applied");
    let first = applied[0];
    for outcome in &outcomes {
        assert_eq!(
            (outcome.version, outcome.position, &outcome.events),
            (first.version, first.position, &first.events)
        );
    }
    assert_eq!(stored_count(&store, "cart", &id).await, 2);
    for commands in &processes {
        let state = commands.load::<Cart>(&id).await.unwrap().unwrap();
        assert_eq!(line_quantity(&state.state, "SKU-HOT"), 1);
    }
}

async fn two_processes_racing_on_one_stream_both_succeed(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let a = Commands::new(store.clone());
    let b = Commands::new(store.clone());
    let id = opened_cart(&a, CustomerId::from_uuid(Uuid::now_v7())).await;

    // `a` has the stream cached at version 1; `b` moves it on behind `a`'s back, so `a`
    // appends at a stale version, conflicts, reloads and decides again.
    let by_b = b
        .execute::<Cart>(&ctx(), &id, add_item(&store, "SKU-B", 1))
        .await
        .unwrap();
    let by_a = a
        .execute::<Cart>(&ctx(), &id, add_item(&store, "SKU-A", 1))
        .await
        .unwrap();
    assert_eq!((by_b.version, by_a.version), (2, 3));

    // Many concurrent writers in both processes: every command lands once, with
    // consecutive versions.
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let commands = if n % 2 == 0 { a.clone() } else { b.clone() };
            let id = id.clone();
            let command = add_item(&store, "SKU-MANY", 1);
            tokio::spawn(async move { commands.execute::<Cart>(&ctx(), &id, command).await })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for task in tasks {
        let done = task.await.unwrap().unwrap();
        assert!(!done.replayed);
        assert_eq!(done.events.len(), 1);
        versions.insert(done.version);
    }
    assert_eq!(versions, (4..=23).collect::<BTreeSet<i64>>());
    let state = b.load::<Cart>(&id).await.unwrap().unwrap();
    assert_eq!(state.version, 23);
    assert_eq!(line_quantity(&state.state, "SKU-MANY"), 20);
    assert_eq!(line_quantity(&state.state, "SKU-A"), 1);
    assert_eq!(line_quantity(&state.state, "SKU-B"), 1);
}

async fn a_stale_expected_version_is_a_mismatch_and_stores_nothing(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let a = Commands::new(store.clone());
    let b = Commands::new(store.clone());
    let id = opened_cart(&a, CustomerId::from_uuid(Uuid::now_v7())).await;
    a.execute::<Cart>(&ctx(), &id, add_item(&store, "SKU-1", 1))
        .await
        .unwrap();

    let err = a
        .execute::<Cart>(&ctx().expecting(Some(1)), &id, add_item(&store, "SKU-2", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::VersionMismatch {
                expected: 1,
                current: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(stored_count(&store, "cart", &id).await, 2);

    // The right version passes, also when this process's cache is behind the log: `b`
    // cached version 2, `a` moved the stream to 3, and the caller saw 3.
    b.load::<Cart>(&id).await.unwrap().unwrap();
    a.execute::<Cart>(&ctx().expecting(Some(2)), &id, add_item(&store, "SKU-2", 1))
        .await
        .unwrap();
    let done = b
        .execute::<Cart>(&ctx().expecting(Some(3)), &id, add_item(&store, "SKU-3", 1))
        .await
        .unwrap();
    assert_eq!(done.version, 4);
    // A cache ahead of a stale caller still refuses it, reporting the log's version.
    let err = b
        .execute::<Cart>(&ctx().expecting(Some(3)), &id, add_item(&store, "SKU-4", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::VersionMismatch {
                expected: 3,
                current: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(stored_count(&store, "cart", &id).await, 4);
}

async fn another_customers_cart_is_not_found(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let commands = Commands::new(store.clone());
    let owner = CustomerId::from_uuid(Uuid::now_v7());
    let stranger = CustomerId::from_uuid(Uuid::now_v7());
    let id = opened_cart(&commands, owner).await;
    commands
        .execute::<Cart>(&ctx().owned_by(owner), &id, add_item(&store, "SKU-1", 1))
        .await
        .unwrap();

    let err = commands
        .execute::<Cart>(&ctx().owned_by(stranger), &id, add_item(&store, "SKU-1", 5))
        .await
        .unwrap_err();
    match err {
        CommandError::NotFound { stream } => assert_eq!(stream, StreamRef::new("cart", &id)),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let state = Commands::new(store.clone())
        .load::<Cart>(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.version, 2);
    assert_eq!(line_quantity(&state.state, "SKU-1"), 1);
}

async fn every_event_carries_the_request_metadata(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let commands = Commands::new(store.clone());
    let code = sku("LAMP-1");
    let at = store.clock().now();
    commands
        .execute::<Stock>(
            &ctx(),
            code.as_str(),
            StockCommand::ReceiveStock(ReceiveStock {
                sku: code.clone(),
                warehouse: WarehouseId::new("BER-1"),
                quantity: Quantity::new(5),
                at,
            }),
        )
        .await
        .unwrap();
    commands
        .execute::<Stock>(
            &ctx(),
            code.as_str(),
            StockCommand::SetLowStockThreshold(SetLowStockThreshold {
                sku: code.clone(),
                threshold: Some(Quantity::new(2)),
                at,
            }),
        )
        .await
        .unwrap();

    let correlation = Uuid::now_v7();
    let cause = Uuid::now_v7();
    let command_id = Uuid::now_v7();
    let context = CommandContext::new("staff:ops-7")
        .with_command_id(command_id)
        .with_correlation_id(correlation)
        .caused_by(cause);
    let before = stored_count(&store, "stock", code.as_str()).await as i64;
    let done = commands
        .execute::<Stock>(
            &context,
            code.as_str(),
            StockCommand::ReserveStock(ReserveStock {
                order_id: OrderId::from_uuid(Uuid::now_v7()),
                quantity: Quantity::new(4),
                preferred_warehouses: vec![],
                expires_at: at + chrono::Duration::minutes(15),
                at,
            }),
        )
        .await
        .unwrap();
    // Reserving below the threshold records the reservation and the crossing: one command,
    // several events, and each carries the metadata.
    assert!(done.events.len() >= 2, "{:?}", done.events);
    let stored = store
        .read_stream(&StreamRef::new("stock", code.as_str()), before)
        .await
        .unwrap();
    assert_eq!(stored.len(), done.events.len());
    for event in stored {
        let meta = event.metadata().unwrap();
        assert_eq!(meta[CORRELATION_ID], correlation.to_string());
        assert_eq!(meta[CAUSATION_ID], cause.to_string());
        assert_eq!(meta[ACTOR], "staff:ops-7");
        assert_eq!(meta[COMMAND_ID], command_id.to_string());
        assert_eq!(event.correlation_id, Some(correlation));
        assert_eq!(event.causation_id, Some(cause));
        assert_eq!(event.actor.as_deref(), Some("staff:ops-7"));
    }
}

async fn refused_commands_and_missing_facts_change_nothing(kind: BackendKind) {
    let Some(store) = store(kind).await else {
        return;
    };
    let commands = Commands::new(store.clone());
    let id = opened_cart(&commands, CustomerId::from_uuid(Uuid::now_v7())).await;
    let err = commands
        .execute::<Cart>(
            &ctx(),
            &id,
            CartCommand::ChangeItemQuantity(ChangeItemQuantity {
                sku: sku("NOT-IN-CART"),
                quantity: Quantity::new(2),
                max_quantity_per_line: None,
                at: store.clock().now(),
            }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Domain(DomainError::Cart(_))),
        "{err:?}"
    );
    let err = commands
        .execute::<Cart>(&ctx(), &id, add_item(&store, "SKU-1", 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Domain(DomainError::Cart(CartError::InvalidQuantity {
                quantity: 0,
                ..
            }))
        ),
        "{err:?}"
    );
    let state = Commands::new(store.clone())
        .load::<Cart>(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.version, 1);
    assert_eq!(stored_count(&store, "cart", &id).await, 1);

    // A command on a stream that never began is refused and begins nothing.
    let missing = Uuid::now_v7().to_string();
    let err = commands
        .execute::<Cart>(&ctx(), &missing, add_item(&store, "SKU-1", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Domain(_)), "{err:?}");
    assert!(commands.load::<Cart>(&missing).await.unwrap().is_none());

    // Lookups: unknown SKU, a currency without a price, unknown coupon.
    let lamp = sku("LAMP-1");
    match commands.product(&lamp).await.unwrap_err() {
        CommandError::Lookup(LookupError::UnknownProduct(s)) => assert_eq!(s, lamp),
        other => panic!("expected UnknownProduct, got {other:?}"),
    }
    commands
        .execute::<Product>(
            &ctx(),
            lamp.as_str(),
            ProductCommand::CreateProduct(CreateProduct {
                product_id: ProductId::from_uuid(Uuid::now_v7()),
                sku: lamp.clone(),
                name: "Lamp".into(),
                description: "A lamp".into(),
                category: "home/lighting".into(),
                brand: "Acme".into(),
                attributes: BTreeMap::new(),
                prices: BTreeMap::from([(Currency::EUR, Money::new(4999, Currency::EUR))]),
                at: store.clock().now(),
            }),
        )
        .await
        .unwrap();
    let (product, price) = commands.catalogue_line(&lamp, Currency::EUR).await.unwrap();
    assert_eq!(product.price_in(Currency::EUR), Some(price));
    assert_eq!(price, Money::new(4999, Currency::EUR));
    match commands
        .catalogue_line(&lamp, Currency::USD)
        .await
        .unwrap_err()
    {
        CommandError::Lookup(LookupError::NotSoldIn { sku, currency }) => {
            assert_eq!((sku, currency), (lamp.clone(), Currency::USD));
        }
        other => panic!("expected NotSoldIn, got {other:?}"),
    }
    for code in ["NOPE", "not a code!"] {
        match commands.coupon(code).await.unwrap_err() {
            CommandError::Lookup(LookupError::UnknownCoupon(c)) => assert_eq!(c, code),
            other => panic!("expected UnknownCoupon, got {other:?}"),
        }
    }
    match commands
        .shipping_method("teleport", Currency::EUR)
        .await
        .unwrap_err()
    {
        CommandError::Lookup(LookupError::UnknownShippingMethod(m)) => assert_eq!(m, "teleport"),
        other => panic!("expected UnknownShippingMethod, got {other:?}"),
    }
    match commands.points_value(100, Currency::EUR).await.unwrap_err() {
        CommandError::Lookup(LookupError::NoPointValue(c)) => assert_eq!(c, Currency::EUR),
        other => panic!("expected NoPointValue, got {other:?}"),
    }
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(tests::BackendKind::Postgres).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(tests::BackendKind::Sqlite).await;
                }
            )*
        }
    };
}

on_both_backends!(
    the_same_command_id_twice_appends_once,
    a_retry_after_the_state_moved_on_answers_the_first_outcome,
    a_retry_after_a_crash_between_append_and_reply_replays,
    fifty_concurrent_duplicates_from_two_processes_append_once,
    two_processes_racing_on_one_stream_both_succeed,
    a_stale_expected_version_is_a_mismatch_and_stores_nothing,
    another_customers_cart_is_not_found,
    every_event_carries_the_request_metadata,
    refused_commands_and_missing_facts_change_nothing,
);
