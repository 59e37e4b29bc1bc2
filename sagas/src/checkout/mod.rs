//! Checkout to delivery: the process manager of one order.
//!
//! ```text
//! OrderPlaced ─► reserve promotions, points, stock per line ─► (all reserved)
//!   ─► InitiatePayment ─► AssessFraud ─► authorize at the provider (3-D Secure, timeouts)
//!   ─► PaymentAuthorized ─► ConfirmOrder ─► one shipment per warehouse
//!   ─► packed: label from the carrier ─► dispatched: RecordShipment, commit stock and
//!      points, capture this shipment's share ─► tracking polled until delivered
//!   ─► OrderDelivered: points earned ─► return window closed: CompleteOrder
//! ```
//!
//! Every failure compensates through one place: the saga cancels the order, and
//! `OrderCancelled` (whoever caused it: the saga, the customer, staff) releases stock,
//! promotions and held points and voids or refunds the payment. Returns: approved →
//! return label; received → restock, refund the returned share, reverse points in
//! proportion (the loyalty aggregate computes the share from the refunded amount).
//! Exchange → a replacement order with nothing due, run by its own instance of this saga;
//! the exchanged units are restocked and not refunded.
//!
//! The saga starts on `CartCheckedOut`: when the checkout carries a payment it places
//! the order itself ([`PLACE_STEP`], command id derived from the checkout event), so a
//! crash between checkout and placement loses nothing.

mod evolve;
mod failure;
mod figures;
mod placement;
mod react;
mod state;

#[cfg(test)]
mod tests;

use aggregates::cart::CartEvent;
use aggregates::loyalty::LoyaltyEvent;
use aggregates::order::OrderEvent;
use aggregates::payment::PaymentEvent;
use aggregates::shipment::ShipmentEvent;
use aggregates::stock::StockEvent;
use aggregates::DomainError;
use chrono::{DateTime, Duration, Utc};

pub use figures::{capture_share, return_refund};
pub use placement::{place_order, NO_PAYMENT_DUE, PLACE_STEP};
pub use state::*;

use crate::dispatch::Dispatch;
use crate::input::{DomainEvent, Envelope, Input};
use crate::saga::{OnFailure, ProcessManager, Reaction, Route};

/// Timer names.
pub mod timer {
    /// The order must be paid (authorized) by then, or it is cancelled: covers
    /// abandoned 3-D Secure challenges and providers that never answer.
    pub const AUTHORIZATION_DEADLINE: &str = "authorization-deadline";
    /// Ask the provider what became of an authorization whose answer was lost.
    pub const PAYMENT_STATUS: &str = "payment-status";
    /// The return window closed: complete the order.
    pub const RETURN_WINDOW: &str = "return-window";
    /// Poll the carrier for a shipment's scans.
    pub fn tracking(shipment: &aggregates::ShipmentId) -> String {
        format!("tracking:{shipment}")
    }
    /// Try a failed capture again.
    pub fn capture(shipment: &aggregates::ShipmentId) -> String {
        format!("capture:{shipment}")
    }
}

/// The knobs of the checkout flow.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutSettings {
    /// The payment provider's name recorded on payments.
    pub provider: String,
    /// How long reserved stock is held for an unpaid order.
    pub reservation_ttl: Duration,
    /// How long an order may wait for its payment authorization.
    pub authorization_deadline: Duration,
    /// Delay before asking the provider about a lost answer.
    pub status_retry: Duration,
    /// How often the carrier is asked for scans.
    pub tracking_poll: Duration,
    /// Delay between capture attempts, and how many are made.
    pub capture_retry: Duration,
    pub capture_attempts: u32,
    /// Days after delivery during which returns are accepted.
    pub return_window: Duration,
    /// Loyalty points per whole currency unit paid, before the tier multiplier.
    pub points_base_rate: u32,
    /// Points the referrer earns when a customer they referred completes a first order.
    pub referral_points: u64,
}

impl Default for CheckoutSettings {
    fn default() -> Self {
        Self {
            provider: "test".into(),
            reservation_ttl: Duration::minutes(30),
            authorization_deadline: Duration::minutes(20),
            status_retry: Duration::seconds(30),
            tracking_poll: Duration::minutes(30),
            capture_retry: Duration::hours(1),
            capture_attempts: 3,
            return_window: Duration::days(i64::from(aggregates::order::DEFAULT_RETURN_WINDOW_DAYS)),
            points_base_rate: 100,
            referral_points: 500,
        }
    }
}

/// The checkout-to-delivery process manager; one instance per order, keyed by order id.
#[derive(Debug, Clone, Default)]
pub struct CheckoutSaga {
    pub settings: CheckoutSettings,
}

impl CheckoutSaga {
    pub fn new(settings: CheckoutSettings) -> Self {
        Self { settings }
    }
}

impl ProcessManager for CheckoutSaga {
    type State = CheckoutState;
    const NAME: &'static str = "checkout";

    fn route(&self, envelope: &Envelope) -> Route {
        let order = match &envelope.event {
            DomainEvent::Cart(CartEvent::CartCheckedOut(e)) => {
                return Route::Start(e.order_id.to_string())
            }
            DomainEvent::Order(OrderEvent::OrderPlaced(e)) => {
                return Route::Start(e.order_id.to_string())
            }
            DomainEvent::Order(_) => Some(envelope.stream_id.clone()),
            DomainEvent::Payment(e) => payment_order(e),
            DomainEvent::Stock(e) => stock_order(e),
            DomainEvent::Shipment(e) => shipment_order(e),
            DomainEvent::Loyalty(LoyaltyEvent::LoyaltyReferralQualified(e)) => {
                Some(e.first_order_id.to_string())
            }
            DomainEvent::Cart(_) | DomainEvent::Loyalty(_) => None,
        };
        order.map_or(Route::Ignore, Route::Continue)
    }

    fn evolve(&self, state: &mut CheckoutState, input: &Input) {
        evolve::evolve(state, input);
    }

    fn react(&self, state: &CheckoutState, input: &Input, now: DateTime<Utc>) -> Reaction {
        // A checked-out cart with a payment: the saga places its order (once the order
        // is known, a redelivered checkout places nothing; it reserves when the order
        // was placed before the checkout reached the saga).
        if let Input::Event(Envelope {
            event: DomainEvent::Cart(CartEvent::CartCheckedOut(cart)),
            ..
        }) = input
        {
            if state.order.is_none() {
                return placement::on_checkout(cart);
            }
        }
        react::react(&self.settings, state, input, now)
    }

    fn on_failure(
        &self,
        state: &CheckoutState,
        failed: &Dispatch,
        error: &DomainError,
        now: DateTime<Utc>,
    ) -> OnFailure {
        failure::on_failure(state, failed, error, now)
    }

    fn is_finished(&self, state: &CheckoutState) -> bool {
        state.phase == Phase::Completed
    }
}

fn payment_order(e: &PaymentEvent) -> Option<String> {
    let id = match e {
        PaymentEvent::PaymentInitiated(e) => e.order_id,
        PaymentEvent::PaymentFraudAssessed(e) => e.order_id,
        PaymentEvent::PaymentFraudReviewed(e) => e.order_id,
        PaymentEvent::PaymentActionRequired(e) => e.order_id,
        PaymentEvent::PaymentAuthorized(e) => e.order_id,
        PaymentEvent::PaymentAuthorizationAdjusted(e) => e.order_id,
        PaymentEvent::PaymentDeclined(e) => e.order_id,
        PaymentEvent::PaymentCaptured(e) => e.order_id,
        PaymentEvent::PaymentVoided(e) => e.order_id,
        PaymentEvent::PaymentRefunded(e) => e.order_id,
        PaymentEvent::PaymentChargebackRecorded(_) => return None,
    };
    Some(id.to_string())
}

fn stock_order(e: &StockEvent) -> Option<String> {
    match e {
        StockEvent::StockReserved(e) => Some(e.order_id.to_string()),
        StockEvent::StockReservationChanged(e) => Some(e.order_id.to_string()),
        StockEvent::StockBackorderFilled(e) => Some(e.order_id.to_string()),
        _ => None,
    }
}

fn shipment_order(e: &ShipmentEvent) -> Option<String> {
    let id = match e {
        ShipmentEvent::ShipmentCreated(e) => e.order_id,
        ShipmentEvent::ShipmentRevised(e) => e.order_id,
        ShipmentEvent::ShipmentPacked(e) => e.order_id,
        ShipmentEvent::ShipmentLabelCreated(e) => e.order_id,
        ShipmentEvent::ShipmentDispatched(e) => e.order_id,
        ShipmentEvent::ShipmentDelivered(e) => e.order_id,
        ShipmentEvent::ShipmentTrackingUpdated(e) => e.order_id,
        ShipmentEvent::ShipmentDeliveryFailed(e) => e.order_id,
        ShipmentEvent::ShipmentReturnedToSender(e) => e.order_id,
        _ => return None,
    };
    Some(id.to_string())
}
