//! The checkout saga over the real runner, on both backends: a checked-out cart becomes
//! a completed order with the test providers; a declined card releases everything; a
//! worker that crashes after every step's commands and before its ack ends in the same
//! state as one that never crashes, with nothing done twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::cart::*;
use aggregates::loyalty::*;
use aggregates::order::{Order, OrderCommand, OrderStatus};
use aggregates::payment::{Payment, PaymentStatus};
use aggregates::shipment::{Shipment, ShipmentCommand};
use aggregates::stock::*;
use aggregates::*;
use infra::clock::{Clock, ManualClock};
use infra::command::{CommandContext, Commands};
use infra::consumer::{Consumer, ConsumerConfig, Handler, HandlerError, Ordering, Tx};
use infra::feed::Envelope;
use infra::saga::{store as saga_store, SagaHandler, SagaRunner};
use infra::store::{Store, StoreConfig};
use sagas::checkout::{payment_id, place_order, CheckoutSaga, CheckoutState, Phase};
use sagas::ports::test_carrier::TestCarrier;
use sagas::ports::test_payment::{self, TestPaymentProvider};
use sagas::ProcessManager;
use tests::{eventually, fresh_store, test_clock, BackendKind};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

type Runner = SagaRunner<CheckoutSaga, TestPaymentProvider, TestCarrier>;

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

fn sku(code: &str) -> Sku {
    Sku::parse(code).unwrap()
}

fn customer() -> CustomerId {
    CustomerId::from_uuid(Uuid::from_u128(0xC0FFEE))
}

fn config() -> ConsumerConfig {
    ConsumerConfig {
        max_attempts: 10,
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        handler_timeout: Duration::from_secs(20),
        not_next_delay: Duration::from_millis(10),
        maintenance_interval: Duration::from_millis(50),
        claim_timeout: Duration::from_secs(60),
        ack_wait: None,
        lease_retry: Duration::from_millis(50),
    }
}

/// The warehouse: picks and packs every new shipment, hands labelled parcels to the
/// carrier. Its commands carry ids derived from the event, so redeliveries are harmless.
struct Warehouse(Commands);

impl Handler for Warehouse {
    fn name(&self) -> &str {
        "warehouse"
    }

    fn ordering(&self) -> Ordering {
        Ordering::Unordered
    }

    fn wants(&self, envelope: &Envelope) -> bool {
        envelope.stream_type == "shipment"
            && matches!(
                envelope.event_type.as_str(),
                "ShipmentCreated" | "ShipmentLabelCreated"
            )
    }

    async fn handle(&self, _tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        let at = self.0.store().clock().now();
        let commands = if envelope.event_type == "ShipmentCreated" {
            vec![
                ShipmentCommand::PickShipment { at },
                ShipmentCommand::PackShipment { at },
            ]
        } else {
            vec![ShipmentCommand::DispatchShipment { at }]
        };
        for (i, command) in commands.into_iter().enumerate() {
            let ctx = CommandContext::new("staff:warehouse").with_command_id(
                CommandContext::derived_id("warehouse", &format!("{}/{i}", envelope.event_id)),
            );
            self.0
                .execute::<Shipment>(&ctx, &envelope.stream_id, command)
                .await
                .map_err(HandlerError::retry)?;
        }
        Ok(())
    }
}

/// Runs the saga handler, failing every event's first attempt *after* its step ran: the
/// step's commands and calls happened, its save and the ack are lost, as when a worker
/// dies between command and ack.
struct CrashAfterEveryStep {
    inner: SagaHandler<CheckoutSaga, TestPaymentProvider, TestCarrier>,
    crashed: Mutex<std::collections::BTreeSet<Uuid>>,
    crashes: Arc<AtomicUsize>,
}

impl Handler for CrashAfterEveryStep {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn wants(&self, envelope: &Envelope) -> bool {
        self.inner.wants(envelope)
    }

    async fn handle(&self, tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        self.inner.handle(tx, envelope).await?;
        if self.crashed.lock().unwrap().insert(envelope.event_id) {
            self.crashes.fetch_add(1, AtomicOrdering::SeqCst);
            return Err(HandlerError::retry("worker crashed before the ack"));
        }
        Ok(())
    }
}

struct Engine {
    store: Store,
    clock: ManualClock,
    commands: Commands,
    runner: Arc<Runner>,
    /// Steps whose save and ack were lost (the crashing variant).
    crashes: Arc<AtomicUsize>,
    running: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

fn spawn<H: Handler>(store: &Store, handler: H) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let consumer = Consumer::new(store.clone(), Arc::new(handler), config()).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        consumer
            .run_local(0, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, task)
}

impl Engine {
    async fn start(kind: BackendKind, crash: bool) -> Option<Self> {
        let clock = test_clock();
        let store = fresh_store(kind, StoreConfig::default(), Arc::new(clock.clone())).await?;
        let commands = Commands::new(store.clone());
        let carrier_clock = clock.clone();
        let runner = Arc::new(SagaRunner::new(
            commands.clone(),
            CheckoutSaga::default(),
            TestPaymentProvider::new(),
            TestCarrier::new(
                chrono::Duration::zero(),
                Arc::new(move || carrier_clock.now()),
            ),
        ));
        let handler = SagaHandler(runner.clone());
        let crashes = Arc::new(AtomicUsize::new(0));
        let saga = if crash {
            spawn(
                &store,
                CrashAfterEveryStep {
                    inner: handler,
                    crashed: Mutex::default(),
                    crashes: crashes.clone(),
                },
            )
        } else {
            spawn(&store, handler)
        };
        let warehouse = spawn(&store, Warehouse(commands.clone()));
        Some(Self {
            store,
            clock,
            commands,
            runner,
            crashes,
            running: vec![saga, warehouse],
        })
    }

    async fn stop(self) {
        for (stop, task) in self.running {
            let _ = stop.send(());
            task.await.unwrap();
        }
    }

    async fn run<A>(&self, id: &str, command: A::Command)
    where
        A: EventSourced,
        A::Command: Clone,
        A::Error: Into<DomainError>,
    {
        let ctx = CommandContext::new("seed");
        self.commands.execute::<A>(&ctx, id, command).await.unwrap();
    }

    /// Stock in two warehouses and a customer with a loyalty account.
    async fn seed(&self) {
        let at = self.clock.now();
        for (code, warehouse, quantity) in [
            ("TEE", "BER-1", 1),
            ("TEE", "HAM-1", 5),
            ("MUG", "BER-1", 3),
        ] {
            self.run::<Stock>(
                code,
                StockCommand::ReceiveStock(ReceiveStock {
                    sku: sku(code),
                    warehouse: WarehouseId::new(warehouse),
                    quantity: Quantity(quantity),
                    at,
                }),
            )
            .await;
        }
        self.run::<LoyaltyAccount>(
            &customer().to_string(),
            LoyaltyCommand::EnrollAccount(EnrollAccount {
                account_id: LoyaltyAccountId::from_uuid(Uuid::from_u128(0x10)),
                customer_id: customer(),
                referral_code: "ADA-2026".into(),
                referred_by: None,
                currency: Currency::EUR,
                at,
            }),
        )
        .await;
    }

    /// Fills and checks out a cart, and places its order paid with `token`.
    async fn check_out(&self, token: &str) -> OrderId {
        let cart_id = CartId::from_uuid(Uuid::from_u128(0xCA));
        let cart = cart_id.to_string();
        let at = self.clock.now();
        let order_id = OrderId::from_uuid(Uuid::from_u128(0x0D));
        let mut commands = vec![CartCommand::OpenCart(OpenCart {
            cart_id,
            customer_id: customer(),
            currency: Currency::EUR,
            at,
        })];
        for (code, quantity, price) in [("TEE", 2, 2_000), ("MUG", 1, 1_000)] {
            commands.push(CartCommand::AddItem(AddItem {
                sku: sku(code),
                product_name: code.into(),
                category: "shop".into(),
                quantity: Quantity(quantity),
                unit_price: eur(price),
                max_quantity_per_line: None,
                at,
            }));
        }
        commands.push(CartCommand::SetShippingAddress(SetShippingAddress {
            address: Address::example(),
            at,
        }));
        commands.push(CartCommand::SetShippingMethod(SetShippingMethod {
            method: ShippingMethod {
                code: "standard".into(),
                price: eur(490),
            },
            at,
        }));
        commands.push(CartCommand::CheckOut(CheckOut {
            order_id,
            tax_rates: BTreeMap::from([("DE".to_string(), 1_900)]),
            at,
        }));
        let mut checked_out = None;
        for command in commands {
            let done = self
                .commands
                .execute::<Cart>(&CommandContext::new("seed"), &cart, command)
                .await
                .unwrap();
            for event in done.events {
                if let CartEvent::CartCheckedOut(e) = event {
                    checked_out = Some(e);
                }
            }
        }
        let place = place_order(&checked_out.unwrap(), token, None).unwrap();
        self.run::<Order>(&order_id.to_string(), OrderCommand::PlaceOrder(place))
            .await;
        order_id
    }

    async fn order(&self, id: OrderId) -> Order {
        self.commands
            .load::<Order>(&id.to_string())
            .await
            .unwrap()
            .unwrap()
            .state
    }

    async fn version<A: EventSourced>(&self, id: &str) -> i64 {
        self.commands
            .load::<A>(id)
            .await
            .unwrap()
            .map_or(0, |l| l.version)
    }

    async fn stock(&self, code: &str) -> StockLevels {
        self.commands
            .load::<Stock>(code)
            .await
            .unwrap()
            .unwrap()
            .state
            .levels
    }

    async fn saga(&self, id: OrderId) -> Option<CheckoutState> {
        saga_store::load(self.store.db(), CheckoutSaga::NAME, &id.to_string())
            .await
            .unwrap()
            .map(|row| serde_json::from_value(row.state).unwrap())
    }

    /// Fires due timers (without moving the clock) until `done` holds.
    async fn wait<F, Fut>(&self, what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let reached = eventually(Duration::from_secs(60), || {
            let fut = done();
            async {
                self.runner.fire_due(100).await.unwrap();
                fut.await.then_some(())
            }
        })
        .await;
        assert!(reached.is_some(), "never reached: {what}");
    }

    async fn tracking_timers(&self, id: OrderId) -> usize {
        saga_store::timers_of(self.store.db(), CheckoutSaga::NAME, &id.to_string())
            .await
            .unwrap()
            .iter()
            .filter(|t| t.name.starts_with("tracking:"))
            .count()
    }
}

/// Runs an order from checkout to completion; returns the engine for inspection.
async fn complete_an_order(kind: BackendKind, crash: bool) -> Option<(Engine, OrderId)> {
    let engine = Engine::start(kind, crash).await?;
    engine.seed().await;
    let id = engine.check_out(test_payment::SUCCEEDS).await;
    // The clock moves only once the flow waits for it, so no deadline can pass early.
    engine
        .wait("both parcels dispatched and tracked", || async {
            engine.tracking_timers(id).await == 2
        })
        .await;
    engine.clock.advance(chrono::Duration::minutes(31));
    engine
        .wait("delivered", || async {
            engine.order(id).await.fully_delivered
        })
        .await;
    engine
        .wait("return window set", || async {
            engine
                .saga(id)
                .await
                .is_some_and(|s| s.phase == Phase::Delivered)
        })
        .await;
    engine.clock.advance(chrono::Duration::days(31));
    engine
        .wait("completed, and the saga saw it", || async {
            engine.order(id).await.status == OrderStatus::Completed
                && engine
                    .saga(id)
                    .await
                    .is_some_and(|s| s.phase == Phase::Completed)
        })
        .await;
    Some((engine, id))
}

async fn a_checked_out_cart_becomes_a_completed_paid_order(kind: BackendKind) {
    let Some((engine, id)) = complete_an_order(kind, false).await else {
        return;
    };
    let order = engine.order(id).await;
    let details = order.details.clone().unwrap();
    // 50.00 goods + 4.90 shipping + 19 % tax.
    assert_eq!(details.totals.grand_total, eur(6_533));
    assert_eq!(details.paid, eur(6_533));

    let payment = engine
        .commands
        .load::<Payment>(&payment_id(id).to_string())
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(payment.status, PaymentStatus::Authorized);
    assert_eq!(payment.ledger.unwrap().captured, eur(6_533));
    let charges = engine.runner.payments().charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].captured, eur(6_533));

    // Hamburg could fill the T-shirts alone; the mug left Berlin.
    let tee = engine.stock("TEE").await;
    assert_eq!(tee.on_hand, 4);
    assert_eq!(tee.reserved, 0);
    assert_eq!(engine.stock("MUG").await.on_hand, 2);
    assert_eq!(engine.runner.carrier().labels_bought(), 2);

    let account = engine
        .commands
        .load::<LoyaltyAccount>(&customer().to_string())
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(
        account.orders[&id].points, 6_533,
        "points earned on what was paid"
    );

    let saga = engine.saga(id).await.unwrap();
    assert_eq!(saga.phase, Phase::Completed);
    let timers = saga_store::timers_of(engine.store.db(), CheckoutSaga::NAME, &id.to_string())
        .await
        .unwrap();
    assert!(timers.is_empty(), "{timers:?}");
    engine.stop().await;
}

async fn a_declined_card_releases_the_stock_and_cancels(kind: BackendKind) {
    let Some(engine) = Engine::start(kind, false).await else {
        return;
    };
    engine.seed().await;
    let id = engine.check_out(test_payment::INSUFFICIENT_FUNDS).await;
    engine
        .wait("cancelled", || async {
            engine.order(id).await.status == OrderStatus::Cancelled
        })
        .await;
    engine
        .wait("released", || async {
            engine.stock("TEE").await.reserved == 0 && engine.stock("MUG").await.reserved == 0
        })
        .await;
    let payment = engine
        .commands
        .load::<Payment>(&payment_id(id).to_string())
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(payment.status, PaymentStatus::Declined);
    assert_eq!(engine.stock("TEE").await.on_hand, 6);
    let charge = engine.runner.payments().charge_of(payment_id(id)).unwrap();
    assert!(charge.authorized.is_zero() && charge.captured.is_zero());
    // The deadline goes when the saga stores its compensation step.
    engine
        .wait("no timer left", || async {
            saga_store::timers_of(engine.store.db(), CheckoutSaga::NAME, &id.to_string())
                .await
                .unwrap()
                .is_empty()
        })
        .await;
    engine.stop().await;
}

async fn a_crash_between_command_and_ack_changes_nothing(kind: BackendKind) {
    let Some((calm, calm_id)) = complete_an_order(kind, false).await else {
        return;
    };
    let Some((rough, rough_id)) = complete_an_order(kind, true).await else {
        return;
    };
    assert_eq!(calm_id, rough_id);
    let id = calm_id.to_string();
    let pay = payment_id(calm_id).to_string();
    for (what, a, b) in [
        (
            "order",
            calm.version::<Order>(&id).await,
            rough.version::<Order>(&id).await,
        ),
        (
            "payment",
            calm.version::<Payment>(&pay).await,
            rough.version::<Payment>(&pay).await,
        ),
        (
            "TEE stock",
            calm.version::<Stock>("TEE").await,
            rough.version::<Stock>("TEE").await,
        ),
        (
            "MUG stock",
            calm.version::<Stock>("MUG").await,
            rough.version::<Stock>("MUG").await,
        ),
        (
            "loyalty",
            calm.version::<LoyaltyAccount>(&customer().to_string())
                .await,
            rough
                .version::<LoyaltyAccount>(&customer().to_string())
                .await,
        ),
    ] {
        assert_eq!(a, b, "{what}: the same events, none twice");
    }
    assert!(
        rough.crashes.load(AtomicOrdering::SeqCst) > 10,
        "every step crashed once"
    );
    let figures = |o: Order| {
        let d = o.details.unwrap();
        (o.status, d.paid, d.refunded, o.shipped, o.delivered)
    };
    assert_eq!(
        figures(rough.order(rough_id).await),
        figures(calm.order(calm_id).await)
    );
    assert_eq!(calm.stock("TEE").await, rough.stock("TEE").await);
    assert_eq!(calm.stock("MUG").await, rough.stock("MUG").await);
    let money = |e: &Engine| {
        e.runner
            .payments()
            .charges()
            .into_iter()
            .map(|c| (c.authorized, c.captured, c.refunded, c.voided))
            .collect::<Vec<_>>()
    };
    assert_eq!(money(&rough), money(&calm), "captured once");
    assert_eq!(
        rough.runner.carrier().labels_bought(),
        calm.runner.carrier().labels_bought()
    );
    assert_eq!(
        rough.saga(rough_id).await.map(|s| s.phase),
        Some(Phase::Completed)
    );
    calm.stop().await;
    rough.stop().await;
}

/// Workers claiming due timers at once never get the same timer; a claim that runs out
/// makes the timer claimable again.
async fn timer_workers_share_due_timers_without_overlap(kind: BackendKind) {
    let clock = test_clock();
    let Some(store) = fresh_store(kind, StoreConfig::default(), Arc::new(clock.clone())).await
    else {
        return;
    };
    let now = clock.now();
    let timers: Vec<sagas::Timer> = (0..40)
        .map(|i| sagas::Timer {
            name: format!("t{i:02}"),
            due: now - chrono::Duration::seconds(i),
        })
        .collect();
    let state = serde_json::json!({});
    let save = saga_store::Save {
        saga_type: "test",
        saga_id: "s1",
        state: &state,
        finished: false,
        expected_version: None,
        event: None,
        now,
        set_timers: &timers,
        cancel_timers: &[],
        fired: None,
    };
    match store.db() {
        infra::store::Db::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            saga_store::save(infra::consumer::TxConn::Postgres(&mut tx), &save)
                .await
                .unwrap()
                .unwrap();
            tx.commit().await.unwrap();
        }
        infra::store::Db::Sqlite(pool) => {
            let mut tx = pool.begin().await.unwrap();
            saga_store::save(infra::consumer::TxConn::Sqlite(&mut tx), &save)
                .await
                .unwrap()
                .unwrap();
            tx.commit().await.unwrap();
        }
    }
    let until = now + chrono::Duration::minutes(2);
    let worker = |store: Store| async move {
        let mut mine = Vec::new();
        loop {
            let got = saga_store::claim_due(store.db(), "test", now, until, 3)
                .await
                .unwrap();
            if got.is_empty() {
                return mine;
            }
            mine.extend(got.into_iter().map(|t| t.name));
        }
    };
    let (a, b, c, d) = tokio::join!(
        tokio::spawn(worker(store.clone())),
        tokio::spawn(worker(store.clone())),
        tokio::spawn(worker(store.clone())),
        tokio::spawn(worker(store.clone())),
    );
    let mut all: Vec<String> = [a, b, c, d].into_iter().flat_map(|r| r.unwrap()).collect();
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(claimed, 40, "every timer claimed exactly once");
    assert_eq!(all.len(), 40);
    // Nobody finished them; once the claims run out they are due again.
    let later = until + chrono::Duration::seconds(1);
    let again = saga_store::claim_due(store.db(), "test", later, later, 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 40);
}

tests::on_both_backends!(
    timer_workers_share_due_timers_without_overlap,
    a_checked_out_cart_becomes_a_completed_paid_order,
    a_declined_card_releases_the_stock_and_cancels,
    a_crash_between_command_and_ack_changes_nothing,
);
