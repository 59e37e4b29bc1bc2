//! A pure in-memory engine for the checkout saga: the real aggregates' deciders behind
//! a command layer that remembers command ids per stream, a log of typed events, the
//! saga runner contract (route, evolve, react, on_failure, timers, port calls), the test
//! providers, a warehouse that picks, packs and dispatches, and a clock moved by hand.
//! No IO: this is the saga's contract with the runner, exercised end to end.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use aggregates::cart::{Cart, CartCommand};
use aggregates::loyalty::{LoyaltyAccount, LoyaltyCommand};
use aggregates::order::{Order, OrderCommand};
use aggregates::payment::Payment;
use aggregates::promotion::{Promotion, PromotionCommand};
use aggregates::shipment::{Shipment, ShipmentCommand, ShipmentEvent};
use aggregates::stock::{Stock, StockCommand};
use aggregates::{Decider, DomainError};
use chrono::{DateTime, Duration, Utc};
use sagas::checkout::{CheckoutSaga, CheckoutState};
use sagas::ports::test_carrier::TestCarrier;
use sagas::ports::test_payment::TestPaymentProvider;
use sagas::{
    derive_id, DomainEvent, Envelope, Input, OnFailure, ProcessManager, Reaction, Route, Target,
    TimerFired,
};
use uuid::Uuid;

/// Runs a future whose every await is ready at once (the test providers').
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Aggregates of one type by stream id, with the command ids each stream has seen.
#[derive(Debug)]
pub struct Streams<A> {
    pub states: BTreeMap<String, A>,
    seen: BTreeSet<(String, Uuid)>,
}

impl<A> Default for Streams<A> {
    fn default() -> Self {
        Self {
            states: BTreeMap::new(),
            seen: BTreeSet::new(),
        }
    }
}

impl<A: Decider + Clone> Streams<A> {
    /// Decides and applies `command`; a command id seen before on the stream is a no-op.
    fn run(
        &mut self,
        id: &str,
        command_id: Uuid,
        command: A::Command,
    ) -> Result<Vec<A::Event>, A::Error> {
        if !self.seen.insert((id.to_string(), command_id)) {
            return Ok(Vec::new());
        }
        let state = self.states.entry(id.to_string()).or_default();
        let events = state.decide(command).inspect_err(|_| {
            self.seen.remove(&(id.to_string(), command_id));
        })?;
        let state = self.states.entry(id.to_string()).or_default();
        for e in &events {
            state.evolve(e);
        }
        Ok(events)
    }

    pub fn get(&self, id: &str) -> A {
        self.states.get(id).cloned().unwrap_or_default()
    }
}

/// The saga instances: state and the position of the last event handled.
type Sagas = BTreeMap<String, (CheckoutState, i64)>;

pub struct World {
    pub now: Arc<Mutex<DateTime<Utc>>>,
    pub saga: CheckoutSaga,
    pub payments: TestPaymentProvider,
    pub carrier: TestCarrier,
    pub carts: Streams<Cart>,
    pub orders: Streams<Order>,
    pub payment_streams: Streams<Payment>,
    pub stock: Streams<Stock>,
    pub shipments: Streams<Shipment>,
    pub loyalty: Streams<LoyaltyAccount>,
    pub promotions: Streams<Promotion>,
    pub log: Vec<Envelope>,
    pub sagas: Sagas,
    /// (saga id, timer name) → due.
    pub timers: BTreeMap<(String, String), DateTime<Utc>>,
    cursor: usize,
    /// Re-run every step once against the state from before it, as a worker that
    /// crashed after the step's effects and before storing the state would.
    pub crash_every_step: bool,
    /// Deliver every event twice.
    pub duplicate_deliveries: bool,
    /// Halts the warehouse (nothing is picked, packed or handed over).
    pub warehouse_paused: bool,
    /// Steps handled, to stop a runaway loop.
    steps: usize,
    ids: u128,
}

impl World {
    pub fn new(start: DateTime<Utc>) -> Self {
        let now = Arc::new(Mutex::new(start));
        let clock = now.clone();
        Self {
            carrier: TestCarrier::new(Duration::hours(6), Arc::new(move || *clock.lock().unwrap())),
            now,
            saga: CheckoutSaga::default(),
            payments: TestPaymentProvider::new(),
            carts: Streams::default(),
            orders: Streams::default(),
            payment_streams: Streams::default(),
            stock: Streams::default(),
            shipments: Streams::default(),
            loyalty: Streams::default(),
            promotions: Streams::default(),
            log: Vec::new(),
            sagas: Sagas::new(),
            timers: BTreeMap::new(),
            cursor: 0,
            crash_every_step: false,
            duplicate_deliveries: false,
            warehouse_paused: false,
            steps: 0,
            ids: 0,
        }
    }

    /// Ids of the commands tests issue: a counter, so two runs of a scenario issue the
    /// same ids and end in equal states.
    pub fn next_id(&mut self) -> Uuid {
        self.ids += 1;
        Uuid::from_u128(0x5100_0000 + self.ids)
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap()
    }

    fn append(&mut self, command_id: Uuid, stream_id: &str, events: Vec<DomainEvent>) {
        for (i, event) in events.into_iter().enumerate() {
            let position = self.log.len() as i64 + 1;
            self.log.push(Envelope {
                event_id: derive_id(command_id, &i.to_string()),
                position,
                stream_id: stream_id.to_string(),
                event,
            });
        }
    }

    /// Runs one command as the command layer would, appending its events to the log.
    pub fn execute(&mut self, command_id: Uuid, target: Target) -> Result<(), DomainError> {
        macro_rules! run {
            ($streams:ident, $id:expr, $cmd:expr) => {{
                let events = self
                    .$streams
                    .run($id, command_id, $cmd)
                    .map_err(DomainError::from)?;
                let id = $id.clone();
                self.append(
                    command_id,
                    &id,
                    events.into_iter().map(DomainEvent::from).collect(),
                );
            }};
        }
        match target {
            Target::Order(id, c) => run!(orders, &id, c),
            Target::Payment(id, c) => run!(payment_streams, &id, c),
            Target::Stock(id, c) => run!(stock, &id, c),
            Target::Shipment(id, c) => run!(shipments, &id, c),
            Target::Loyalty(id, c) => {
                self.loyalty
                    .run(&id, command_id, c)
                    .map_err(DomainError::from)?;
            }
            Target::Promotion(id, c) => {
                self.promotions
                    .run(&id, command_id, c)
                    .map_err(DomainError::from)?;
            }
        }
        Ok(())
    }

    pub fn cart(&mut self, id: &str, command: CartCommand) {
        let command_id = self.next_id();
        let events = self.carts.run(id, command_id, command).unwrap();
        self.append(
            command_id,
            id,
            events.into_iter().map(DomainEvent::from).collect(),
        );
    }

    pub fn order(&mut self, id: &str, command: OrderCommand) -> Result<(), DomainError> {
        {
            let command_id = self.next_id();
            self.execute(command_id, Target::Order(id.to_string(), command))
        }
    }

    pub fn stock_command(&mut self, sku: &str, command: StockCommand) {
        {
            let command_id = self.next_id();
            self.execute(command_id, Target::Stock(sku.to_string(), command))
                .unwrap();
        }
    }

    pub fn loyalty_command(&mut self, customer: &str, command: LoyaltyCommand) {
        {
            let command_id = self.next_id();
            self.execute(command_id, Target::Loyalty(customer.to_string(), command))
                .unwrap();
        }
    }

    pub fn promotion_command(&mut self, code: &str, command: PromotionCommand) {
        {
            let command_id = self.next_id();
            self.execute(command_id, Target::Promotion(code.to_string(), command))
                .unwrap();
        }
    }

    /// Handles one input of saga `id` from `state`: evolve, react, run the reaction.
    /// Returns the new state.
    fn step(&mut self, id: &str, mut state: CheckoutState, input: &Input) -> CheckoutState {
        self.steps += 1;
        assert!(self.steps < 20_000, "the saga does not settle");
        self.saga.evolve(&mut state, input);
        let now = self.now();
        let reaction = self.saga.react(&state, input, now);
        let trigger = input.trigger_id();
        self.run_reaction(id, state, trigger, reaction)
    }

    /// Runs a reaction; replies of its calls are the saga's next inputs, so the state
    /// after them is returned.
    fn run_reaction(
        &mut self,
        id: &str,
        state: CheckoutState,
        trigger: Uuid,
        reaction: Reaction,
    ) -> CheckoutState {
        let now = self.now();
        for dispatch in reaction.commands {
            let command_id = dispatch.command_id(trigger);
            if let Err(error) = self.execute(command_id, dispatch.target.clone()) {
                match self.saga.on_failure(&state, &dispatch, &error, now) {
                    OnFailure::Skip => {}
                    OnFailure::Compensate(compensation) => {
                        let state = state.clone();
                        self.run_reaction(id, state, command_id, compensation);
                    }
                    OnFailure::Stop => panic!("saga {id} stopped on {dispatch:?}: {error}"),
                }
            }
        }
        for name in reaction.cancel_timers {
            self.timers.remove(&(id.to_string(), name));
        }
        for timer in reaction.timers {
            self.timers.insert((id.to_string(), timer.name), timer.due);
        }
        let mut state = state;
        for call in reaction.calls {
            let reply = ready(sagas::ports::perform(&self.payments, &self.carrier, &call))
                .expect("test providers answer");
            let input = Input::Reply {
                key: call.key,
                request: call.request,
                reply,
            };
            state = self.handle(id, state, &input);
        }
        state
    }

    /// A step, run twice when crashes are simulated (the first run's state is lost).
    fn handle(&mut self, id: &str, state: CheckoutState, input: &Input) -> CheckoutState {
        if self.crash_every_step {
            let _lost = self.step(id, state.clone(), input);
        }
        self.step(id, state, input)
    }

    /// The warehouse picks and packs what is created and hands labelled parcels over.
    fn warehouse(&mut self, envelope: &Envelope) {
        let DomainEvent::Shipment(e) = &envelope.event else {
            return;
        };
        if self.warehouse_paused {
            return;
        }
        let at = self.now();
        let stream = envelope.stream_id.clone();
        let commands = match e {
            ShipmentEvent::ShipmentCreated(_) => vec![
                ShipmentCommand::PickShipment { at },
                ShipmentCommand::PackShipment { at },
            ],
            ShipmentEvent::ShipmentLabelCreated(_) => {
                vec![ShipmentCommand::DispatchShipment { at }]
            }
            _ => return,
        };
        for (i, c) in commands.into_iter().enumerate() {
            let id = derive_id(envelope.event_id, &format!("warehouse:{i}"));
            self.execute(id, Target::Shipment(stream.clone(), c))
                .unwrap();
        }
    }

    /// Feeds every event not yet handled to the saga (and the warehouse).
    pub fn drain(&mut self) {
        while self.cursor < self.log.len() {
            let envelope = self.log[self.cursor].clone();
            self.cursor += 1;
            let deliveries = if self.duplicate_deliveries { 2 } else { 1 };
            for _ in 0..deliveries {
                self.deliver(&envelope);
            }
            self.warehouse(&envelope);
        }
    }

    fn deliver(&mut self, envelope: &Envelope) {
        let (id, start) = match self.saga.route(envelope) {
            Route::Start(id) => (id, true),
            Route::Continue(id) => (id, false),
            Route::Ignore => return,
        };
        let (state, last) = match self.sagas.get(&id) {
            Some((state, last)) => (state.clone(), *last),
            None if start => (CheckoutState::default(), 0),
            None => return,
        };
        if envelope.position <= last {
            return; // delivered before
        }
        let state = self.handle(&id, state, &Input::Event(envelope.clone()));
        self.sagas.insert(id, (state, envelope.position));
    }

    /// Fires the timers due at or before now.
    pub fn fire_due(&mut self) {
        let now = self.now();
        let due: Vec<_> = self
            .timers
            .iter()
            .filter(|(_, due)| **due <= now)
            .map(|(k, due)| (k.clone(), *due))
            .collect();
        for ((id, name), due) in due {
            if self.timers.get(&(id.clone(), name.clone())) != Some(&due) {
                continue;
            }
            self.timers.remove(&(id.clone(), name.clone()));
            let Some((state, last)) = self.sagas.get(&id).cloned() else {
                continue;
            };
            let input = Input::Timer(TimerFired::new(&id, name, due));
            let state = self.handle(&id, state, &input);
            self.sagas.insert(id, (state, last));
            self.drain();
        }
    }

    /// Runs until nothing is left to do before `until`, moving the clock to each timer.
    pub fn settle_until(&mut self, until: DateTime<Utc>) {
        loop {
            self.drain();
            self.fire_due();
            let next = self.timers.values().min().copied();
            match next {
                Some(due) if due <= until => {
                    let now = self.now().max(due);
                    *self.now.lock().unwrap() = now;
                }
                _ => break,
            }
        }
        if self.now() < until {
            *self.now.lock().unwrap() = until;
        }
        self.drain();
    }

    pub fn saga_state(&self, order_id: &str) -> CheckoutState {
        self.sagas
            .get(order_id)
            .map(|(s, _)| s.clone())
            .unwrap_or_default()
    }
}
