//! The checkout saga over the real runner, shared by `tests/sagas.rs` and
//! `tests/saga_load.rs`: an [`Engine`] (store, manual clock, command layer, saga runner
//! with the test payment provider and a zero-delay test carrier, a [`Warehouse`] that
//! picks, packs and dispatches at once), seeding helpers, a [`Basket`] checked out into a
//! placed order, and bounded waits that fire due timers instead of sleeping for them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::cart::*;
use aggregates::loyalty::*;
use aggregates::order::{Order, OrderCommand};
use aggregates::promotion::{CreatePromotion, DiscountKind, Promotion, PromotionCommand};
use aggregates::shipment::{Shipment, ShipmentCommand, ShipmentEvent};
use aggregates::stock::*;
use aggregates::*;
use infra::clock::{Clock, ManualClock};
use infra::command::{CommandContext, Commands};
use infra::consumer::{Consumer, ConsumerConfig, Handler, HandlerError, Ordering, Tx};
use infra::feed::Envelope;
use infra::on_db;
use infra::saga::{store as saga_store, SagaHandler, SagaRunner};
use infra::store::{Store, StoreConfig, StreamRef};
use sagas::checkout::{place_order, CheckoutSaga, CheckoutState};
use sagas::ports::test_carrier::TestCarrier;
use sagas::ports::test_payment::TestPaymentProvider;
use sagas::ProcessManager;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::{eventually, fresh_store, test_clock, BackendKind};

pub type Runner = SagaRunner<CheckoutSaga, TestPaymentProvider, TestCarrier>;

/// Name of the warehouse consumer.
pub const WAREHOUSE: &str = "warehouse";

pub fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

pub fn sku(code: &str) -> Sku {
    Sku::parse(code).unwrap()
}

/// The customer of the single-order scenarios (the one with a loyalty account).
pub fn customer() -> CustomerId {
    CustomerId::from_uuid(Uuid::from_u128(0xC0FFEE))
}

/// Fast retries and short waits, so a retried step does not slow a test down.
pub fn consumer_config() -> ConsumerConfig {
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
        // Steps of different sagas in flight at once, as `commerce serve` runs them.
        concurrency: 8,
    }
}

/// A saga runner on `commands` with the test payment provider and a carrier that
/// delivers a parcel at its first tracking poll (zero step), both on `clock`.
/// Runners given clones of one provider and carrier share their books, as workers of one
/// deployment share the outside parties.
pub fn runner(
    commands: Commands,
    payments: TestPaymentProvider,
    carrier: Option<TestCarrier>,
    clock: &ManualClock,
) -> Arc<Runner> {
    let carrier_clock = clock.clone();
    let carrier = carrier.unwrap_or_else(|| {
        TestCarrier::new(
            chrono::Duration::zero(),
            Arc::new(move || carrier_clock.now()),
        )
    });
    Arc::new(SagaRunner::new(
        commands,
        CheckoutSaga::default(),
        payments,
        carrier,
    ))
}

/// The warehouse: picks and packs every new shipment, hands labelled parcels to the
/// carrier. Its commands carry ids derived from the event, so redeliveries are harmless.
/// Shipments of orders in `held` are left alone (the goods stay on the shelf), so a test
/// can cancel a confirmed order before anything leaves.
pub struct Warehouse {
    pub commands: Commands,
    pub held: Arc<Mutex<BTreeSet<OrderId>>>,
}

impl Warehouse {
    pub fn new(commands: Commands) -> Self {
        Self {
            commands,
            held: Arc::default(),
        }
    }
}

impl Handler for Warehouse {
    fn name(&self) -> &str {
        WAREHOUSE
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
        let event = Shipment::decode(
            &envelope.event_type,
            u32::try_from(envelope.schema_version).unwrap_or(0),
            envelope.payload.clone(),
        )
        .map_err(HandlerError::permanent)?;
        let order_id = match &event {
            ShipmentEvent::ShipmentCreated(e) => e.order_id,
            ShipmentEvent::ShipmentLabelCreated(e) => e.order_id,
            _ => return Ok(()),
        };
        if self.held.lock().unwrap().contains(&order_id) {
            return Ok(());
        }
        let at = self.commands.store().clock().now();
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
            self.commands
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
pub struct CrashAfterEveryStep {
    pub inner: SagaHandler<CheckoutSaga, TestPaymentProvider, TestCarrier>,
    pub crashed: Mutex<BTreeSet<Uuid>>,
    pub crashes: Arc<AtomicUsize>,
}

impl Handler for CrashAfterEveryStep {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn wants(&self, envelope: &Envelope) -> bool {
        self.inner.wants(envelope)
    }

    fn lane(&self, envelope: &Envelope) -> Option<String> {
        self.inner.lane(envelope)
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

/// Runs `handler` on the store's in-process feed until the sender is used or dropped.
pub fn spawn<H: Handler>(store: &Store, handler: H) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let consumer = Consumer::new(store.clone(), Arc::new(handler), consumer_config()).unwrap();
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

/// A cart to fill, check out and place as an order.
#[derive(Debug, Clone)]
pub struct Basket {
    pub cart_id: CartId,
    pub order_id: OrderId,
    pub customer: CustomerId,
    /// `(sku, quantity, unit price in cents)`.
    pub lines: Vec<(String, u32, i64)>,
    /// Code of a promotion (its stream id) to apply.
    pub coupon: Option<String>,
    pub token: String,
}

impl Basket {
    /// A basket with fresh ids for a fresh customer.
    pub fn new(lines: &[(&str, u32, i64)], token: &str) -> Self {
        Self {
            cart_id: CartId::from_uuid(Uuid::now_v7()),
            order_id: OrderId::from_uuid(Uuid::now_v7()),
            customer: CustomerId::from_uuid(Uuid::now_v7()),
            lines: lines
                .iter()
                .map(|(code, quantity, price)| (code.to_string(), *quantity, *price))
                .collect(),
            coupon: None,
            token: token.to_string(),
        }
    }

    pub fn with_coupon(mut self, code: &str) -> Self {
        self.coupon = Some(code.to_string());
        self
    }
}

/// Fills and checks out `basket`'s cart through the command layer and places its order
/// with [`place_order`]; returns the order id.
pub async fn check_out_basket(
    commands: &Commands,
    basket: &Basket,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<OrderId, String> {
    let cart = basket.cart_id.to_string();
    let mut steps = vec![CartCommand::OpenCart(OpenCart {
        cart_id: basket.cart_id,
        customer_id: basket.customer,
        currency: Currency::EUR,
        at,
    })];
    for (code, quantity, price) in &basket.lines {
        steps.push(CartCommand::AddItem(AddItem {
            sku: sku(code),
            product_name: code.clone(),
            category: "shop".into(),
            quantity: Quantity(*quantity),
            unit_price: eur(*price),
            max_quantity_per_line: None,
            at,
        }));
    }
    if let Some(code) = &basket.coupon {
        let terms = commands
            .load::<Promotion>(code)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|p| p.state.terms)
            .ok_or_else(|| format!("no promotion {code}"))?;
        steps.push(CartCommand::ApplyCoupon(ApplyCoupon { terms, at }));
    }
    steps.push(CartCommand::SetShippingAddress(SetShippingAddress {
        address: Address::example(),
        at,
    }));
    steps.push(CartCommand::SetShippingMethod(SetShippingMethod {
        method: ShippingMethod {
            code: "standard".into(),
            price: eur(490),
        },
        at,
    }));
    steps.push(CartCommand::CheckOut(CheckOut {
        order_id: basket.order_id,
        tax_rates: BTreeMap::from([("DE".to_string(), 1_900)]),
        at,
    }));
    // A context per command: each carries its own command id.
    let ctx = || CommandContext::new(format!("customer:{}", basket.customer));
    let mut checked_out = None;
    for step in steps {
        let done = commands
            .execute::<Cart>(&ctx(), &cart, step)
            .await
            .map_err(|e| format!("cart {cart}: {e}"))?;
        for event in done.events {
            if let CartEvent::CartCheckedOut(e) = event {
                checked_out = Some(e);
            }
        }
    }
    let checked_out = checked_out.ok_or("the cart was not checked out")?;
    let place = place_order(&checked_out, basket.token.clone(), None).map_err(|e| e.to_string())?;
    commands
        .execute::<Order>(
            &ctx(),
            &basket.order_id.to_string(),
            OrderCommand::PlaceOrder(place),
        )
        .await
        .map_err(|e| format!("placing {}: {e}", basket.order_id))?;
    Ok(basket.order_id)
}

/// Every event of stream `id` of aggregate `A`, typed, in log order.
pub async fn events_of<A: EventSourced>(store: &Store, id: &str) -> Vec<A::Event> {
    let stream = StreamRef::new(A::STREAM_TYPE, id);
    store
        .read_stream(&stream, 0)
        .await
        .unwrap()
        .iter()
        .map(|r| infra::command::decode::<A>(&stream, r).unwrap())
        .collect()
}

/// The settled position of consumer `name` (0 before it registered).
pub async fn consumer_position(store: &Store, name: &str) -> i64 {
    on_db!(store.db(), pool => {
        sqlx::query_scalar::<_, i64>("SELECT position FROM consumers WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await
            .unwrap()
            .unwrap_or(0)
    })
}

/// Dead letters of consumer `name` (any status): event type and error.
pub async fn dead_letters(store: &Store, name: &str) -> Vec<(String, Option<String>)> {
    on_db!(store.db(), pool => {
        sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT event_type, error FROM dead_letters WHERE consumer = $1",
        )
            .bind(name)
            .fetch_all(pool)
            .await
            .unwrap()
    })
}

/// An engine: store, manual clock, command layer, the saga (on the in-process feed) and
/// the warehouse.
pub struct Engine {
    pub store: Store,
    pub clock: ManualClock,
    pub commands: Commands,
    pub runner: Arc<Runner>,
    /// Shipments of these orders are not picked.
    pub held: Arc<Mutex<BTreeSet<OrderId>>>,
    /// Steps whose save and ack were lost (the crashing variant).
    pub crashes: Arc<AtomicUsize>,
    running: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Engine {
    /// A fresh store on `kind` with the saga and the warehouse running; `crash` makes
    /// every saga step lose its save and ack once. `None` when the backend is missing
    /// (outside CI).
    pub async fn start(kind: BackendKind, crash: bool) -> Option<Self> {
        Self::start_with(kind, crash, StoreConfig::default()).await
    }

    pub async fn start_with(kind: BackendKind, crash: bool, config: StoreConfig) -> Option<Self> {
        let clock = test_clock();
        let store = fresh_store(kind, config, Arc::new(clock.clone())).await?;
        let commands = Commands::new(store.clone());
        let runner = runner(commands.clone(), TestPaymentProvider::new(), None, &clock);
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
        let warehouse = Warehouse::new(commands.clone());
        let held = warehouse.held.clone();
        let warehouse = spawn(&store, warehouse);
        Some(Self {
            store,
            clock,
            commands,
            runner,
            held,
            crashes,
            running: vec![saga, warehouse],
        })
    }

    pub async fn stop(self) {
        for (stop, task) in self.running {
            let _ = stop.send(());
            task.await.unwrap();
        }
    }

    /// Runs a seeding command as `seed`.
    pub async fn run<A>(&self, id: &str, command: A::Command)
    where
        A: EventSourced,
        A::Command: Clone,
        A::Error: Into<DomainError>,
    {
        let ctx = CommandContext::new("seed");
        self.commands.execute::<A>(&ctx, id, command).await.unwrap();
    }

    /// Receives `quantity` units of `code` in `warehouse`.
    pub async fn receive(&self, code: &str, warehouse: &str, quantity: u32) {
        let at = self.clock.now();
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

    /// A promotion `code` (10 % off the whole cart) that `usage_limit` orders may redeem.
    pub async fn promotion(&self, code: &str, usage_limit: Option<u32>) {
        let at = self.clock.now();
        self.run::<Promotion>(
            code,
            PromotionCommand::CreatePromotion(CreatePromotion {
                promotion_id: PromotionId::from_uuid(Uuid::now_v7()),
                code: code.into(),
                kind: DiscountKind::Percentage {
                    basis_points: 1_000,
                },
                minimum_subtotal: None,
                starts_at: at - chrono::Duration::days(1),
                ends_at: None,
                usage_limit,
                per_customer_limit: None,
                stackable: false,
                target: Default::default(),
                at,
            }),
        )
        .await;
    }

    /// Stock in two warehouses and a customer with a loyalty account.
    pub async fn seed(&self) {
        for (code, warehouse, quantity) in [
            ("TEE", "BER-1", 1),
            ("TEE", "HAM-1", 5),
            ("MUG", "BER-1", 3),
        ] {
            self.receive(code, warehouse, quantity).await;
        }
        let at = self.clock.now();
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

    /// Fills and checks out the seeded customer's cart (fixed ids, two T-shirts and a
    /// mug) and places its order paid with `token`.
    pub async fn check_out(&self, token: &str) -> OrderId {
        let basket = Basket {
            cart_id: CartId::from_uuid(Uuid::from_u128(0xCA)),
            order_id: OrderId::from_uuid(Uuid::from_u128(0x0D)),
            customer: customer(),
            lines: vec![("TEE".into(), 2, 2_000), ("MUG".into(), 1, 1_000)],
            coupon: None,
            token: token.into(),
        };
        self.check_out_basket(&basket).await
    }

    pub async fn check_out_basket(&self, basket: &Basket) -> OrderId {
        check_out_basket(&self.commands, basket, self.clock.now())
            .await
            .unwrap()
    }

    pub async fn order(&self, id: OrderId) -> Order {
        self.commands
            .load::<Order>(&id.to_string())
            .await
            .unwrap()
            .unwrap()
            .state
    }

    pub async fn version<A: EventSourced>(&self, id: &str) -> i64 {
        self.commands
            .load::<A>(id)
            .await
            .unwrap()
            .map_or(0, |l| l.version)
    }

    pub async fn stock(&self, code: &str) -> StockLevels {
        self.commands
            .load::<Stock>(code)
            .await
            .unwrap()
            .unwrap()
            .state
            .levels
    }

    pub async fn saga(&self, id: OrderId) -> Option<CheckoutState> {
        saga_store::load(self.store.db(), CheckoutSaga::NAME, &id.to_string())
            .await
            .unwrap()
            .map(|row| serde_json::from_value(row.state).unwrap())
    }

    /// Fires due timers (without moving the clock) until `done` holds, for at most a
    /// minute.
    pub async fn wait<F, Fut>(&self, what: &str, mut done: F)
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

    /// Waits (at most `deadline`) until nothing is left to do at the clock's time: the
    /// saga and the warehouse have settled every event in the log and no timer is due.
    pub async fn settle(&self, deadline: Duration) {
        let reached = eventually(deadline, || async {
            if self.runner.fire_due(100).await.unwrap() > 0 {
                return None;
            }
            let last = self.store.last_position().await.unwrap();
            let saga = SagaHandler(self.runner.clone());
            for name in [saga.name(), WAREHOUSE] {
                if consumer_position(&self.store, name).await < last {
                    return None;
                }
            }
            Some(())
        })
        .await;
        assert!(reached.is_some(), "the engine never settled");
    }

    /// Runs an order command as the order's customer would (`PUT /orders/{id}/lines/…`).
    pub async fn edit(
        &self,
        id: OrderId,
        command: OrderCommand,
    ) -> Result<(), infra::command::CommandError> {
        let ctx = CommandContext::new(format!("customer:{}", customer()));
        self.commands
            .execute::<Order>(&ctx, &id.to_string(), command)
            .await
            .map(|_| ())
    }

    pub async fn payment(&self, id: OrderId) -> aggregates::payment::Payment {
        self.commands
            .load::<aggregates::payment::Payment>(&sagas::checkout::payment_id(id).to_string())
            .await
            .unwrap()
            .unwrap()
            .state
    }

    pub async fn shipment(&self, id: OrderId, warehouse: &str) -> Option<Shipment> {
        let shipment = sagas::checkout::shipment_id(id, &WarehouseId::new(warehouse));
        self.commands
            .load::<Shipment>(&shipment.to_string())
            .await
            .unwrap()
            .map(|l| l.state)
    }

    /// Lets the warehouse work on a held order again: every shipment with something to
    /// ship is picked and packed now (the saga buys the label, the warehouse hands the
    /// parcel over).
    pub async fn release_hold(&self, id: OrderId) {
        // The warehouse must have passed over the held shipments first, or it would
        // pick them itself once they are no longer held.
        let last = self.store.last_position().await.unwrap();
        self.wait("the warehouse caught up", || async {
            consumer_position(&self.store, WAREHOUSE).await >= last
        })
        .await;
        self.held.lock().unwrap().remove(&id);
        let saga = self.saga(id).await.expect("the saga exists");
        for shipment_id in saga.shipments.keys() {
            let shipment = self
                .commands
                .load::<Shipment>(&shipment_id.to_string())
                .await
                .unwrap()
                .map(|l| l.state);
            if shipment.is_none_or(|s| s.lines.is_empty()) {
                continue;
            }
            for command in [
                ShipmentCommand::PickShipment {
                    at: self.clock.now(),
                },
                ShipmentCommand::PackShipment {
                    at: self.clock.now(),
                },
            ] {
                self.run::<Shipment>(&shipment_id.to_string(), command)
                    .await;
            }
        }
    }

    /// Moves the clock past the tracking poll until the order is delivered.
    pub async fn deliver(&self, id: OrderId) {
        self.wait("parcels dispatched", || async {
            let Some(s) = self.saga(id).await else {
                return false;
            };
            let parcels = s.shipments.values().filter(|p| !p.lines.is_empty()).count();
            parcels > 0 && self.tracking_timers(id).await == parcels
        })
        .await;
        self.clock.advance(chrono::Duration::minutes(31));
        self.wait("delivered", || async {
            self.order(id).await.fully_delivered
        })
        .await;
    }

    /// Delivers the order, then closes its return window: the order completes.
    pub async fn complete(&self, id: OrderId) {
        self.deliver(id).await;
        self.wait("return window set", || async {
            self.saga(id)
                .await
                .is_some_and(|s| s.phase == sagas::checkout::Phase::Delivered)
        })
        .await;
        self.clock.advance(chrono::Duration::days(31));
        self.wait("completed", || async {
            self.order(id).await.status == aggregates::order::OrderStatus::Completed
        })
        .await;
    }

    /// Enrols `customer` with the API's referral code (its id in hex), referred by the
    /// holder of `referred_by`.
    pub async fn enroll(&self, customer: CustomerId, referred_by: Option<String>) {
        let at = self.clock.now();
        self.run::<LoyaltyAccount>(
            &customer.to_string(),
            LoyaltyCommand::EnrollAccount(EnrollAccount {
                account_id: LoyaltyAccountId::from_uuid(customer.0),
                customer_id: customer,
                referral_code: customer.0.simple().to_string().to_ascii_uppercase(),
                referred_by,
                currency: Currency::EUR,
                at,
            }),
        )
        .await;
    }

    pub async fn account(&self, customer: CustomerId) -> LoyaltyAccount {
        self.commands
            .load::<LoyaltyAccount>(&customer.to_string())
            .await
            .unwrap()
            .unwrap()
            .state
    }

    pub async fn tracking_timers(&self, id: OrderId) -> usize {
        saga_store::timers_of(self.store.db(), CheckoutSaga::NAME, &id.to_string())
            .await
            .unwrap()
            .iter()
            .filter(|t| t.name.starts_with("tracking:"))
            .count()
    }
}
