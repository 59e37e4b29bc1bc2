//! The replay tooling on both backends, over a log written by the real command layer:
//! one business flow (order placed → stock reserved → payment captured → order paid and
//! confirmed → shipped → points earned) with correlation and causation ids as sagas set
//! them, and an injectable clock so times are known.
//!
//! The commands are parsed by the real CLI definition (`commerce history …`) and run
//! against the store's URL, with their output captured; errors are checked as the
//! binary prints them (one line, and the exit code).

use std::fs::File;
use std::sync::Arc;

use aggregates::loyalty::{EarnPoints, EnrollAccount, LoyaltyAccount, LoyaltyCommand};
use aggregates::order::{NewOrderLine, Order, OrderCommand, PlaceOrder, RecordPaymentCaptured};
use aggregates::payment::{
    AssessFraud, AuthorizePayment, CapturePayment, FraudInputs, InitiatePayment, Payment,
    PaymentCommand, RefundPayment,
};
use aggregates::stock::{CommitReservation, ReceiveStock, ReserveStock, Stock, StockCommand};
use aggregates::{
    Address, CountryCode, Currency, CustomerId, DomainError, EventSourced, LoyaltyAccountId, Money,
    OrderId, PaymentId, Quantity, RefundId, Sku, WarehouseId,
};
use api::cli::{Cli, CliError, Command};
use api::replay::{self, ReplayError};
use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use infra::clock::ManualClock;
use infra::command::{CommandContext, Commands};
use infra::{Store, StoreConfig, StreamRef};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::RowAccessor;
use serde_json::Value;
use tests::{fresh_store, temp_path, test_clock, BackendKind};
use uuid::Uuid;

/// A store with one complete business flow in it.
struct Shop {
    store: Store,
    clock: ManualClock,
    commands: Commands,
    url: String,
    flow: Uuid,
    order: OrderId,
    payment: PaymentId,
    customer: CustomerId,
    sku: Sku,
    /// Position of the order's first event (placed, not yet confirmed).
    placed_at: i64,
    /// Time just after the order was placed, before anything else happened.
    after_placing: DateTime<Utc>,
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR)
}

/// The URL the CLI opens for `store`: the SQLite file, or the test database with the
/// store's schema first on the search path.
async fn url_of(store: &Store) -> String {
    if let Some(pool) = store.pg_pool() {
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(pool)
            .await
            .unwrap();
        format!(
            "{}?options=-c%20search_path%3D{schema}",
            tests::test_database_url()
        )
    } else {
        let pool = store.sqlite_pool().unwrap();
        let (_, _, file): (i64, String, String) = sqlx::query_as("PRAGMA database_list")
            .fetch_one(pool)
            .await
            .unwrap();
        format!("sqlite:{file}")
    }
}

impl Shop {
    async fn open(kind: BackendKind) -> Option<Shop> {
        let clock = test_clock();
        let store = fresh_store(kind, StoreConfig::default(), Arc::new(clock.clone())).await?;
        let url = url_of(&store).await;
        let commands = Commands::new(store.clone());
        let mut shop = Shop {
            commands,
            url,
            clock,
            flow: Uuid::now_v7(),
            order: OrderId::from_uuid(Uuid::now_v7()),
            payment: PaymentId::from_uuid(Uuid::now_v7()),
            customer: CustomerId::from_uuid(Uuid::now_v7()),
            sku: Sku::parse("SKU-123").unwrap(),
            placed_at: 0,
            after_placing: DateTime::<Utc>::MIN_UTC,
            store,
        };
        shop.run_flow().await;
        Some(shop)
    }

    /// Waits until a tail may hand out `position`.
    async fn readable(&self, position: i64) {
        let visible = self
            .store
            .wait_for_position(position, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        assert!(visible, "position {position} never became readable");
    }

    fn now(&self) -> DateTime<Utc> {
        self.store.clock().now()
    }

    fn tick(&self) {
        self.clock.advance(Duration::minutes(1));
    }

    async fn exec<A>(&self, ctx: &CommandContext, id: &str, command: A::Command) -> i64
    where
        A: EventSourced,
        A::Command: Clone,
        A::Error: Into<DomainError>,
    {
        self.tick();
        // Each command its own id: a context reused with one id would be a retry.
        let ctx = ctx.clone().with_command_id(Uuid::now_v7());
        let done = self
            .commands
            .execute::<A>(&ctx, id, command)
            .await
            .unwrap_or_else(|e| panic!("{} {id}: {e}", A::STREAM_TYPE));
        done.position
    }

    /// The id of the newest event of a stream (what a saga names as the cause).
    async fn last_event(&self, stream_type: &str, id: &str) -> Uuid {
        let events = self
            .store
            .read_stream(&StreamRef::new(stream_type, id), 0)
            .await
            .unwrap();
        events.last().unwrap().event_id
    }

    /// A saga's context in the flow, caused by the newest event of a stream.
    async fn saga(&self, name: &str, cause_type: &str, cause_id: &str) -> CommandContext {
        CommandContext::new(format!("saga:{name}"))
            .with_correlation_id(self.flow)
            .caused_by(self.last_event(cause_type, cause_id).await)
    }

    async fn run_flow(&mut self) {
        let staff = CommandContext::new("staff:alice");
        let sku = self.sku.clone();
        let stock_id = sku.as_str().to_string();
        for (warehouse, quantity) in [("BER-1", 10), ("HAM-1", 5)] {
            self.exec::<Stock>(
                &staff,
                &stock_id,
                StockCommand::ReceiveStock(ReceiveStock {
                    sku: sku.clone(),
                    warehouse: WarehouseId::new(warehouse),
                    quantity: Quantity(quantity),
                    at: self.now(),
                }),
            )
            .await;
        }

        let order_id = self.order.to_string();
        let customer = CommandContext::new(format!("customer:{}", self.customer))
            .with_correlation_id(self.flow);
        self.placed_at = self
            .exec::<Order>(
                &customer,
                &order_id,
                OrderCommand::PlaceOrder(PlaceOrder {
                    order_id: self.order,
                    customer_id: self.customer,
                    cart_id: None,
                    currency: Currency::EUR,
                    lines: vec![NewOrderLine {
                        sku: sku.clone(),
                        name: "Shirt".into(),
                        quantity: Quantity(3),
                        unit_price: eur(1250),
                        discount: eur(0),
                    }],
                    shipping: eur(500),
                    tax_rate_bp: 0,
                    points_value: eur(0),
                    shipping_address: Address::example(),
                    billing_address: Address::example(),
                    payment_method_token: "pm_test".into(),
                    draft: false,
                    at: self.now(),
                }),
            )
            .await;
        self.after_placing = self.now() + Duration::seconds(30);

        let ctx = self.saga("checkout", "order", &order_id).await;
        self.exec::<Stock>(
            &ctx,
            &stock_id,
            StockCommand::ReserveStock(ReserveStock {
                order_id: self.order,
                quantity: Quantity(3),
                preferred_warehouses: vec![WarehouseId::new("BER-1")],
                expires_at: self.now() + Duration::hours(1),
                at: self.now(),
            }),
        )
        .await;

        let payment_id = self.payment.to_string();
        let ctx = self.saga("checkout", "stock", &stock_id).await;
        let total = eur(3 * 1250 + 500);
        self.exec::<Payment>(
            &ctx,
            &payment_id,
            PaymentCommand::InitiatePayment(InitiatePayment {
                payment_id: self.payment,
                order_id: self.order,
                amount: total,
                method_token: "pm_test".into(),
                provider: "test".into(),
                at: self.now(),
            }),
        )
        .await;
        let ctx = self.saga("checkout", "payment", &payment_id).await;
        self.exec::<Payment>(
            &ctx,
            &payment_id,
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
                at: self.now(),
            }),
        )
        .await;
        let ctx = self.saga("checkout", "payment", &payment_id).await;
        self.exec::<Payment>(
            &ctx,
            &payment_id,
            PaymentCommand::AuthorizePayment(AuthorizePayment {
                provider_reference: "ref-1".into(),
                amount: total,
                at: self.now(),
            }),
        )
        .await;
        let ctx = self.saga("checkout", "payment", &payment_id).await;
        self.exec::<Order>(
            &ctx,
            &order_id,
            OrderCommand::ConfirmOrder { at: self.now() },
        )
        .await;
        let ctx = self.saga("fulfilment", "order", &order_id).await;
        self.exec::<Stock>(
            &ctx,
            &stock_id,
            StockCommand::CommitReservation(CommitReservation {
                order_id: self.order,
                at: self.now(),
            }),
        )
        .await;
        let ctx = self.saga("fulfilment", "stock", &stock_id).await;
        self.exec::<Payment>(
            &ctx,
            &payment_id,
            PaymentCommand::CapturePayment(CapturePayment {
                amount: total,
                at: self.now(),
            }),
        )
        .await;
        let ctx = self.saga("fulfilment", "payment", &payment_id).await;
        self.exec::<Order>(
            &ctx,
            &order_id,
            OrderCommand::RecordPaymentCaptured(RecordPaymentCaptured {
                payment_id: self.payment,
                captured_total: total,
                at: self.now(),
            }),
        )
        .await;

        let loyalty_id = self.customer.to_string();
        let ctx = self.saga("loyalty", "order", &order_id).await;
        self.exec::<LoyaltyAccount>(
            &ctx,
            &loyalty_id,
            LoyaltyCommand::EnrollAccount(EnrollAccount {
                account_id: LoyaltyAccountId::from_uuid(Uuid::now_v7()),
                customer_id: self.customer,
                referral_code: "ADA-1".into(),
                referred_by: None,
                currency: Currency::EUR,
                at: self.now(),
            }),
        )
        .await;
        self.exec::<LoyaltyAccount>(
            &ctx,
            &loyalty_id,
            LoyaltyCommand::EarnPoints(EarnPoints {
                order_id: self.order,
                order_amount: total,
                base_rate: 1,
                at: self.now(),
            }),
        )
        .await;
        let last = self.last_position().await;
        self.readable(last).await;
    }

    /// The newest position written (readable or not).
    async fn last_position(&self) -> i64 {
        let sql = "SELECT max(position) FROM events";
        infra::on_db!(self.store.db_read(), pool => {
            sqlx::query_scalar::<_, Option<i64>>(sql).fetch_one(pool).await.unwrap().unwrap_or(0)
        })
    }

    /// Runs `commerce <args> --database-url <this store>` as the binary would, with its
    /// output captured: (stdout, Ok or the error line and exit code).
    async fn cli(&self, args: &[&str]) -> (String, Result<(), CliError>) {
        let mut argv = vec!["commerce"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--database-url", &self.url]);
        cli(&argv).await
    }
}

/// Parses `argv` with the real CLI and runs the replay command it names.
async fn cli(argv: &[&str]) -> (String, Result<(), CliError>) {
    let parsed = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            return (
                String::new(),
                Err(CliError::config(
                    e.to_string().lines().next().unwrap_or("").to_string(),
                )),
            )
        }
    };
    let Some(Command::Replay(command)) = parsed.command else {
        panic!("{argv:?} is not a replay command");
    };
    let mut out = Vec::new();
    let result = replay::run_with(command, &mut out)
        .await
        .map_err(CliError::from);
    (String::from_utf8(out).unwrap(), result)
}

#[track_caller]
fn assert_fails(result: &Result<(), CliError>, code: u8, needle: &str) {
    let err = result.as_ref().expect_err("the command should fail");
    assert_eq!(err.code, code, "{}", err.message);
    assert!(err.message.contains(needle), "{}", err.message);
    assert!(!err.message.contains('\n'), "one line: {}", err.message);
}

async fn history_tells_each_event_with_who_when_and_why(kind: BackendKind) {
    let Some(shop) = Shop::open(kind).await else {
        return;
    };
    let order = shop.order.to_string();
    let (out, result) = shop.cli(&["history", "order", &order]).await;
    result.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("V  POSITION"), "{out}");
    assert!(lines[1].contains("OrderPlaced"), "{out}");
    assert!(lines[1].contains("order placed for customer"), "{out}");
    assert!(lines[1].contains("42.50 EUR total"), "{out}");
    assert!(
        lines[1].contains(&format!("customer:{}", shop.customer)),
        "{out}"
    );
    assert!(lines[3].contains("42.50 EUR captured by payment"), "{out}");
    assert!(lines[3].contains("saga:fulfilment"), "{out}");

    // The stock stream: "3 × SKU-123 reserved …", with the flow's correlation id.
    let (out, result) = shop.cli(&["history", "stock", "SKU-123", "--json"]).await;
    result.unwrap();
    let entries: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 4);
    assert_eq!(
        entries[0]["summary"],
        "10 × SKU-123 received in BER-1 (on hand 10)"
    );
    assert_eq!(
        entries[2]["summary"],
        format!(
            "3 × SKU-123 reserved for order {}: 3 from BER-1",
            shop.order
        )
    );
    assert_eq!(entries[2]["correlation_id"], shop.flow.to_string());
    assert_eq!(entries[2]["version"], 3);
    assert!(entries[2]["causation_id"].is_string());

    // Bad input: one line, exit code 2; a stream without events: exit code 1.
    let (_, result) = shop.cli(&["history", "invoice", &order]).await;
    assert_fails(&result, 2, "unknown aggregate `invoice`");
    let (_, result) = shop.cli(&["history", "order", "no-such-order"]).await;
    assert_fails(&result, 1, "stream order/no-such-order has no events");
}

async fn state_and_diff_replay_to_a_position_or_time(kind: BackendKind) {
    let Some(shop) = Shop::open(kind).await else {
        return;
    };
    let order = shop.order.to_string();
    let placed = shop.placed_at.to_string();
    let (out, result) = shop.cli(&["state", "order", &order, "--at", &placed]).await;
    result.unwrap();
    let state: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(state["version"], 1);
    assert_eq!(state["state"]["status"], "Placed");
    assert_eq!(state["state"]["details"]["paid"]["amount"], 0);

    // The same point by time, and the newest state.
    let at = shop.after_placing.to_rfc3339();
    let (out, result) = shop.cli(&["state", "order", &order, "--at", &at]).await;
    result.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["version"], 1);
    let (out, result) = shop.cli(&["state", "order", &order]).await;
    result.unwrap();
    let now: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(now["version"], 3);
    assert_eq!(now["state"]["status"], "Confirmed");
    assert_eq!(now["state"]["details"]["paid"]["amount"], 4250);

    let (out, result) = shop
        .cli(&["diff", "order", &order, "--from", &placed])
        .await;
    result.unwrap();
    assert!(out.starts_with(&format!("order/{order} v1 → v3")), "{out}");
    assert!(
        out.contains("~ /status: \"Placed\" → \"Confirmed\""),
        "{out}"
    );
    assert!(out.contains("~ /details/paid/amount: 0 → 4250"), "{out}");
    assert!(
        out.contains("OrderConfirmed: confirmed for fulfilment at 42.50 EUR"),
        "{out}"
    );

    // Before the stream began there is no state; bad points are one-line errors.
    let (_, result) = shop.cli(&["state", "order", &order, "--at", "1"]).await;
    assert_fails(&result, 1, "has no events at or before position 1");
    let (_, result) = shop
        .cli(&["state", "order", &order, "--at", "yesterday"])
        .await;
    assert_fails(&result, 2, "`yesterday` is neither a position");
    let (_, result) = shop
        .cli(&["diff", "order", &order, "--from", "9", "--to", "3"])
        .await;
    assert_fails(&result, 2, "--to 3 is before --from 9");
}

async fn trace_shows_the_flow_as_a_causation_tree(kind: BackendKind) {
    let Some(shop) = Shop::open(kind).await else {
        return;
    };
    let lines = replay::trace::trace(&shop.store, shop.flow).await.unwrap();
    // Every event of the flow (the staff's stock receipts are not part of it).
    assert_eq!(lines.len(), 11);
    let streams: Vec<&str> = lines.iter().map(|l| l.event.stream_type.as_str()).collect();
    for aggregate in ["order", "stock", "payment", "loyalty_account"] {
        assert!(streams.contains(&aggregate), "{streams:?}");
    }
    // The order placement is the one root; each saga step hangs under its cause.
    assert_eq!(lines[0].depth, 0);
    assert_eq!(lines[0].event.event_type, "OrderPlaced");
    assert!(lines[1..].iter().all(|l| l.depth > 0));
    let reserved = lines
        .iter()
        .find(|l| l.event.event_type == "StockReserved")
        .unwrap();
    assert_eq!(reserved.depth, 1);
    assert_eq!(reserved.event.causation_id, Some(lines[0].event.event_id));
    let initiated = lines
        .iter()
        .find(|l| l.event.event_type == "PaymentInitiated")
        .unwrap();
    assert_eq!(initiated.depth, 2);

    let (out, result) = shop.cli(&["trace", &shop.flow.to_string()]).await;
    result.unwrap();
    assert!(out.starts_with(&format!(
        "correlation {}: 11 events in 4 streams",
        shop.flow
    )));
    assert!(out.contains("\n  "), "{out}");
    let (_, result) = shop.cli(&["trace", "not-a-uuid"]).await;
    assert_fails(&result, 2, "`not-a-uuid` is not a UUID");
    let (_, result) = shop.cli(&["trace", &Uuid::now_v7().to_string()]).await;
    assert_fails(&result, 1, "nothing recorded for correlation id");
}

async fn events_lists_with_filters(kind: BackendKind) {
    let Some(shop) = Shop::open(kind).await else {
        return;
    };
    let (out, result) = shop
        .cli(&["events", "--aggregate", "payment", "--json"])
        .await;
    result.unwrap();
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "PaymentInitiated",
            "PaymentFraudAssessed",
            "PaymentAuthorized",
            "PaymentCaptured"
        ]
    );
    assert_eq!(events[3]["payload"]["amount"]["amount"], 4250);

    let (out, result) = shop
        .cli(&[
            "events",
            "--actor",
            "staff:alice",
            "--type",
            "StockReceived",
        ])
        .await;
    result.unwrap();
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains("5 × SKU-123 received in HAM-1"), "{out}");

    let order = format!("order/{}", shop.order);
    let (out, result) = shop
        .cli(&["events", "--stream", &order, "--limit", "2", "--json"])
        .await;
    result.unwrap();
    assert_eq!(out.lines().count(), 2);

    let since = shop.after_placing.to_rfc3339();
    let (out, result) = shop
        .cli(&[
            "events",
            "--correlation",
            &shop.flow.to_string(),
            "--since",
            &since,
            "--json",
        ])
        .await;
    result.unwrap();
    assert_eq!(out.lines().count(), 10, "all of the flow but the placement");

    let (_, result) = shop.cli(&["events", "--stream", "order"]).await;
    assert_fails(&result, 2, "`order` is not a stream");
    let (_, result) = shop.cli(&["events", "--since", "monday"]).await;
    assert_fails(&result, 2, "monday");

    // Following: the listing waits for events appended after it started.
    let store = shop.store.clone();
    let args = match Cli::try_parse_from([
        "commerce",
        "events",
        "--follow",
        "--limit",
        "1",
        "--json",
        "--type",
        "PaymentRefunded",
    ])
    .unwrap()
    .command
    {
        Some(Command::Replay(replay::ReplayCommand::Events(args))) => args,
        other => panic!("{other:?}"),
    };
    let follower = tokio::spawn(async move {
        let mut out = Vec::new();
        replay::events::list(&store, &args, &mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    });
    refund_behind_the_orders_back(&shop).await;
    let followed = tokio::time::timeout(std::time::Duration::from_secs(30), follower)
        .await
        .expect("follow returns after its limit")
        .unwrap();
    assert!(
        followed.contains("\"event_type\":\"PaymentRefunded\""),
        "{followed}"
    );
}

/// The payment refunds 10.00 but the order stream never hears of it. Returns once the
/// refund is readable by a tail (on PostgreSQL, other tests' open transactions may hold
/// the safe head back for a moment).
async fn refund_behind_the_orders_back(shop: &Shop) {
    let ctx = CommandContext::new("staff:bob");
    let position = shop
        .exec::<Payment>(
            &ctx,
            &shop.payment.to_string(),
            PaymentCommand::RefundPayment(RefundPayment {
                refund_id: RefundId::from_uuid(Uuid::now_v7()),
                amount: eur(1000),
                at: shop.now(),
            }),
        )
        .await;
    shop.readable(position).await;
}

async fn export_streams_every_format_and_resumes(kind: BackendKind) {
    let Some(shop) = Shop::open(kind).await else {
        return;
    };
    let total = shop.store.head_position().await.unwrap();
    let count = shop
        .store
        .scan(&Default::default(), 0, 1000)
        .await
        .unwrap()
        .len();
    assert_eq!(count, 13);

    // NDJSON in two runs: up to the placement, then --resume for the rest.
    let ndjson = temp_path("events.ndjson");
    let path = ndjson.to_str().unwrap();
    let placed = shop.placed_at.to_string();
    let (_, result) = shop
        .cli(&[
            "export", "--format", "ndjson", "--output", path, "--to", &placed, "--batch", "2",
        ])
        .await;
    result.unwrap();
    let first = std::fs::read_to_string(&ndjson).unwrap();
    assert_eq!(first.lines().count(), 3);
    // A crash mid-page leaves half a line: the checkpoint's length cuts it off.
    std::fs::write(&ndjson, format!("{first}{{\"position\":")).unwrap();
    let (_, result) = shop
        .cli(&[
            "export", "--format", "ndjson", "--output", path, "--resume", "--batch", "4",
        ])
        .await;
    result.unwrap();
    let text = std::fs::read_to_string(&ndjson).unwrap();
    let positions: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["position"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions.len(), 13, "{text}");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(*positions.last().unwrap(), total);
    // Nothing new: a resumed run writes nothing and still succeeds.
    let (_, result) = shop
        .cli(&["export", "--format", "ndjson", "--output", path, "--resume"])
        .await;
    result.unwrap();
    assert_eq!(std::fs::read_to_string(&ndjson).unwrap(), text);

    // CSV: the envelope flattened, payload JSON in its cell.
    let csv_path = temp_path("events.csv");
    let (_, result) = shop
        .cli(&[
            "export",
            "--format",
            "csv",
            "--types",
            "PaymentCaptured,OrderPlaced",
            "--output",
            csv_path.to_str().unwrap(),
        ])
        .await;
    result.unwrap();
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    assert_eq!(reader.headers().unwrap().len(), 13);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][5], "OrderPlaced");
    assert_eq!(&rows[1][5], "PaymentCaptured");
    let payload: Value = serde_json::from_str(&rows[1][12]).unwrap();
    assert_eq!(payload["amount"]["amount"], 4250);
    assert_eq!(&rows[1][8], shop.flow.to_string());

    // Parquet, read back with the parquet crate's own reader.
    let parquet_path = temp_path("events.parquet");
    let (_, result) = shop
        .cli(&[
            "export",
            "--format",
            "parquet",
            "--output",
            parquet_path.to_str().unwrap(),
        ])
        .await;
    result.unwrap();
    let reader = SerializedFileReader::new(File::open(&parquet_path).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 13);
    let rows: Vec<parquet::record::Row> = reader
        .get_row_iter(None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let placed_row = rows
        .iter()
        .find(|r| r.get_long(0).unwrap() == shop.placed_at)
        .unwrap();
    assert_eq!(placed_row.get_string(5).unwrap(), "OrderPlaced");
    assert_eq!(placed_row.get_string(3).unwrap(), &shop.order.to_string());
    let payload: Value = serde_json::from_str(placed_row.get_string(12).unwrap()).unwrap();
    assert_eq!(payload["totals"]["grand_total"]["amount"], 4250);
    // A resumed Parquet export writes the new events to a part file beside it.
    refund_behind_the_orders_back(&shop).await;
    let (_, result) = shop
        .cli(&[
            "export",
            "--format",
            "parquet",
            "--output",
            parquet_path.to_str().unwrap(),
            "--resume",
        ])
        .await;
    result.unwrap();
    let part = parquet_path.with_file_name(format!("events.after-{total}.parquet"));
    let reader = SerializedFileReader::new(File::open(&part).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 1);

    // Bad ranges are one-line errors.
    let (_, result) = shop
        .cli(&["export", "--format", "ndjson", "--from", "9", "--to", "2"])
        .await;
    assert_fails(&result, 2, "--to 2 is before --from 9");
    let (_, result) = shop.cli(&["export", "--format", "parquet"]).await;
    assert_fails(&result, 2, "needs --output");
    let (_, result) = shop
        .cli(&["export", "--format", "ndjson", "--from", "1000"])
        .await;
    assert_fails(&result, 1, "empty range");
}

async fn reconcile_finds_a_refund_the_order_never_heard_of(kind: BackendKind) {
    let Some(shop) = Shop::open(kind).await else {
        return;
    };
    let (out, result) = shop.cli(&["reconcile"]).await;
    result.unwrap_or_else(|e| panic!("{}: {out}", e.message));
    assert!(
        out.contains("checked 1 orders, 2 stock items, 1 loyalty accounts"),
        "{out}"
    );
    assert!(out.contains("everything reconciles"), "{out}");

    refund_behind_the_orders_back(&shop).await;
    let (out, result) = shop.cli(&["reconcile"]).await;
    assert_fails(&result, 1, "1 mismatch found");
    let line = out
        .lines()
        .find(|l| l.starts_with("MISMATCH payments"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(&shop.order.to_string()), "{line}");
    assert!(
        line.contains("payment streams 3250, order stream 4250"),
        "{line}"
    );
}

/// Turns off the database's refusal of UPDATE and DELETE on the log, as someone with
/// direct database access could.
async fn disable_append_only_guard(store: &Store) {
    if let Some(pool) = store.pg_pool() {
        sqlx::query("ALTER TABLE events DISABLE TRIGGER USER")
            .execute(pool)
            .await
            .unwrap();
    } else {
        let pool = match store.db() {
            infra::store::Db::Sqlite(pool) => pool,
            infra::store::Db::Postgres(_) => unreachable!("PostgreSQL is handled above"),
        };
        for trigger in ["events_no_update", "events_no_delete"] {
            sqlx::query(&format!("DROP TRIGGER {trigger}"))
                .execute(pool)
                .await
                .unwrap();
        }
    }
}

async fn verify_names_edited_and_deleted_events(kind: BackendKind) {
    let Some(shop) = Shop::open(kind).await else {
        return;
    };
    let (out, result) = shop.cli(&["verify"]).await;
    result.unwrap();
    assert!(out.contains("13 events in 4 streams"), "{out}");
    assert!(out.contains("the log verifies"), "{out}");

    disable_append_only_guard(&shop.store).await;
    let db = shop.store.db();
    let order = shop.order.to_string();
    // The order's placement now claims a bigger total; a stock receipt vanishes; the
    // payment's capture (its last event) vanishes.
    let edit = "UPDATE events SET payload = replace(CAST(payload AS TEXT), '4250', '4350') \
                WHERE stream_type = 'order' AND stream_id = $1 AND version = 1";
    let edit = if shop.store.pg_pool().is_some() {
        edit.replace(
            "replace(CAST(payload AS TEXT), '4250', '4350')",
            "CAST(replace(CAST(payload AS TEXT), '4250', '4350') AS json)",
        )
    } else {
        edit.to_string()
    };
    let changed = infra::on_db!(db, pool => sqlx::query(&edit).bind(&order).execute(pool).await.unwrap().rows_affected());
    assert_eq!(changed, 1);
    let delete = "DELETE FROM events WHERE stream_type = $1 AND stream_id = $2 AND version = $3";
    for (stream_type, id, version) in [
        ("stock", "SKU-123".to_string(), 2i64),
        ("payment", shop.payment.to_string(), 4),
    ] {
        let n = infra::on_db!(db, pool => sqlx::query(delete).bind(stream_type).bind(&id).bind(version).execute(pool).await.unwrap().rows_affected());
        assert_eq!(n, 1);
    }

    let (out, result) = shop.cli(&["verify"]).await;
    assert_fails(&result, 1, "found in the log");
    let problems: Vec<&str> = out.lines().filter(|l| l.starts_with("position")).collect();
    assert!(
        problems
            .iter()
            .any(|l| l.contains(&format!("order/{order} v1: hash does not match"))),
        "{out}"
    );
    assert!(
        problems
            .iter()
            .any(|l| l.contains("stock/SKU-123 v3: version 3 where 2 was expected")),
        "{out}"
    );
    assert!(
        problems.iter().any(|l| l.contains(&format!(
            "payment/{} v4: versions 4..=4 were recorded by commands but are missing",
            shop.payment
        ))),
        "{out}"
    );

    // From a later position: the edited placement is before it, the gap is at it.
    let stock_v3 = shop
        .store
        .read_stream(&StreamRef::new("stock", "SKU-123"), 2)
        .await
        .unwrap()[0]
        .position;
    let from = stock_v3.to_string();
    let (out, result) = shop.cli(&["verify", "--from", &from]).await;
    assert_fails(&result, 1, "found in the log");
    assert!(!out.contains(&format!("order/{order} v1")), "{out}");
    assert!(
        out.contains("stock/SKU-123 v3: version 2 is missing"),
        "{out}"
    );
}

async fn the_staff_route_answers_history_and_as_of(kind: BackendKind) {
    use api::http::principal::Role;
    use tests::server::TestServer;

    let Some(shop) = Shop::open(kind).await else {
        return;
    };
    let server = TestServer::serve(shop.store.clone(), |s| s).await;
    let order = shop.order.to_string();
    let staff = server.token(Role::Staff, "alice");
    let r = server
        .get(
            &format!("/admin/streams/order/{order}/events?limit=2"),
            Some(&staff),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["stream"], format!("order/{order}"));
    assert_eq!(r.body["events"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["next_after_version"], 2);
    assert_eq!(r.body["events"][0]["event_type"], "OrderPlaced");
    let r = server
        .get(
            &format!("/admin/streams/order/{order}/events?after_version=2"),
            Some(&staff),
        )
        .await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1);
    assert!(r.body.get("next_after_version").is_none());

    let r = server
        .get(
            &format!("/admin/streams/invoice/{order}/events"),
            Some(&staff),
        )
        .await;
    tests::api::assert_problem(&r, 404, "unknown_aggregate");
    let r = server
        .get("/admin/streams/order/nothing-here/events", Some(&staff))
        .await;
    tests::api::assert_problem(&r, 404, "not_found");
    let customer = server.token(Role::Customer, &shop.customer.to_string());
    let r = server
        .get(
            &format!("/admin/streams/order/{order}/events"),
            Some(&customer),
        )
        .await;
    tests::api::assert_problem(&r, 403, "forbidden");

    // The order as it was when placed, and now.
    let r = server
        .get(
            &format!("/orders/{order}?as_of={}", shop.placed_at),
            Some(&staff),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "placed");
    assert_eq!(r.body["version"], 1);
    let r = server.get(&format!("/orders/{order}"), Some(&staff)).await;
    assert_eq!(r.body["status"], "confirmed");
    let r = server
        .get(&format!("/orders/{order}?as_of=soon"), Some(&staff))
        .await;
    tests::api::assert_problem(&r, 400, "invalid_as_of");
    let r = server
        .get(&format!("/orders/{order}?as_of=1"), Some(&staff))
        .await;
    tests::api::assert_problem(&r, 404, "not_found");
    let r = server
        .get(
            &format!("/orders/{order}?as_of={}", shop.placed_at),
            Some(&customer),
        )
        .await;
    tests::api::assert_problem(&r, 403, "forbidden");
}

tests::on_both_backends!(
    history_tells_each_event_with_who_when_and_why,
    state_and_diff_replay_to_a_position_or_time,
    trace_shows_the_flow_as_a_causation_tree,
    events_lists_with_filters,
    export_streams_every_format_and_resumes,
    reconcile_finds_a_refund_the_order_never_heard_of,
    verify_names_edited_and_deleted_events,
    the_staff_route_answers_history_and_as_of,
);

#[test]
fn the_unknown_aggregate_error_lists_the_known_ones() {
    let err = ReplayError::UnknownAggregate("invoice".into());
    let text = err.to_string();
    for name in [
        "cart",
        "order",
        "payment",
        "stock",
        "shipment",
        "loyalty_account",
        "product",
        "promotion",
    ] {
        assert!(text.contains(name), "{text}");
    }
}
