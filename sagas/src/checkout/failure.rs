//! What a refused command means to the checkout saga.

use aggregates::loyalty::{LoyaltyCommand, LoyaltyError};
use aggregates::order::{CancellationReason, OrderError};
use aggregates::payment::PaymentError;
use aggregates::promotion::PromotionCommand;
use aggregates::shipment::{ShipmentError, ShipmentStatus};
use aggregates::stock::{StockCommand, StockError};
use aggregates::DomainError;
use chrono::{DateTime, Utc};

use super::react::{cancel, revert_line};
use super::state::CheckoutState;
use crate::dispatch::{Dispatch, Target};
use crate::saga::{OnFailure, Reaction};

pub(super) fn on_failure(
    state: &CheckoutState,
    failed: &Dispatch,
    error: &DomainError,
    now: DateTime<Utc>,
) -> OnFailure {
    let Some(order_id) = state.order_id else {
        return OnFailure::Stop;
    };
    let give_up =
        |reason| OnFailure::Compensate(Reaction::none().command(cancel(order_id, reason, now)));
    match (&failed.target, error) {
        // A line cannot be reserved: the order cannot be filled.
        (Target::Stock(_, StockCommand::ReserveStock(_)), DomainError::Stock(_)) => {
            give_up(CancellationReason::OutOfStock)
        }
        // An edit asked for more than the stock has: the edit is undone, the line goes
        // back to what is reserved (the order stays as it was).
        (
            Target::Stock(stream, StockCommand::ChangeReservation(_)),
            DomainError::Stock(StockError::InsufficientStock { .. }),
        ) => {
            let line = state
                .order
                .as_ref()
                .and_then(|o| o.lines.iter().find(|l| l.sku.as_str() == stream));
            match line.and_then(|l| Some((l.sku.clone(), state.reserved_of(&l.sku)?))) {
                Some((sku, reserved)) => OnFailure::Compensate(
                    Reaction::none().command(revert_line(order_id, sku, reserved, now)),
                ),
                None => OnFailure::Skip,
            }
        }
        // The coupon ran out (usage limits), ended, or the points are gone: the order
        // cannot be had at the price it was placed at.
        (
            Target::Promotion(_, PromotionCommand::ReserveRedemption(_)),
            DomainError::Promotion(_),
        )
        | (Target::Loyalty(_, LoyaltyCommand::HoldPoints(_)), DomainError::Loyalty(_)) => {
            give_up(CancellationReason::MerchantRequested)
        }
        // Releasing what was never reserved or already released, committing what is
        // gone: nothing to undo.
        (
            Target::Stock(..),
            DomainError::Stock(
                StockError::ReservationNotActive(_)
                | StockError::ReservationNotFound(_)
                | StockError::NotTracked,
            ),
        ) => OnFailure::Skip,
        // Customers without a loyalty account earn nothing; points settled elsewhere.
        (
            Target::Loyalty(..),
            DomainError::Loyalty(
                LoyaltyError::NotEnrolled
                | LoyaltyError::ReferralCodeNotOurs(_)
                | LoyaltyError::SelfReferral
                | LoyaltyError::HoldNotFound(_)
                | LoyaltyError::HoldAlreadyCommitted(_)
                | LoyaltyError::HoldAlreadyReturned(_)
                | LoyaltyError::OrderNotEarned(_),
            ),
        ) => OnFailure::Skip,
        // Another actor got there first (a customer cancelled, staff completed, the
        // carrier reported twice): the step no longer applies.
        (
            Target::Order(..),
            DomainError::Order(
                OrderError::AlreadyPlaced
                | OrderError::OrderCancelled
                | OrderError::OrderCompleted
                | OrderError::AlreadyConfirmed
                | OrderError::CancelAfterShipment
                | OrderError::NotDelivered
                | OrderError::OpenReturn(_)
                | OrderError::ShipmentAlreadyDelivered(_)
                | OrderError::ShipmentAlreadyReturned(_)
                | OrderError::DuplicateShipment(_),
            ),
        ) => OnFailure::Skip,
        (
            Target::Payment(..),
            DomainError::Payment(
                PaymentError::NotAwaitingAuthorization(_)
                | PaymentError::NotAuthorized(_)
                | PaymentError::FraudAlreadyAssessed
                | PaymentError::AlreadyInitiated,
            ),
        ) => OnFailure::Skip,
        (
            Target::Shipment(..),
            DomainError::Shipment(
                ShipmentError::AlreadyCreated(_)
                | ShipmentError::NoFailedDelivery(ShipmentStatus::ReturnedToSender)
                | ShipmentError::NotPacked(_)
                | ShipmentError::NotOnTheWay(_),
            ),
        ) => OnFailure::Skip,
        _ => OnFailure::Stop,
    }
}
