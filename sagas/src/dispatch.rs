//! A command a saga issues, addressed to one aggregate stream.

use aggregates::loyalty::LoyaltyCommand;
use aggregates::order::OrderCommand;
use aggregates::payment::PaymentCommand;
use aggregates::promotion::PromotionCommand;
use aggregates::shipment::ShipmentCommand;
use aggregates::stock::StockCommand;
use uuid::Uuid;

use crate::saga::derive_id;

/// The aggregate stream a command goes to (stream ids as the command layer keys them:
/// order, payment and shipment by their UUID, stock by SKU, promotion by normalised code,
/// loyalty account by customer id) and the command.
// Commands are built and moved once per step; boxing the large ones buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Order(String, OrderCommand),
    Payment(String, PaymentCommand),
    Stock(String, StockCommand),
    Shipment(String, ShipmentCommand),
    Loyalty(String, LoyaltyCommand),
    Promotion(String, PromotionCommand),
}

impl Target {
    /// The stream type and id, e.g. `("stock", "MUG-WHITE")`.
    pub fn stream(&self) -> (&'static str, &str) {
        match self {
            Target::Order(id, _) => ("order", id),
            Target::Payment(id, _) => ("payment", id),
            Target::Stock(id, _) => ("stock", id),
            Target::Shipment(id, _) => ("shipment", id),
            Target::Loyalty(id, _) => ("loyalty", id),
            Target::Promotion(id, _) => ("promotion", id),
        }
    }
}

/// One command of a step. `step` names it within the step (unique per reaction), so its
/// id is [`derive_id`]`(trigger, step)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    pub step: String,
    pub target: Target,
}

impl Dispatch {
    pub fn new(step: impl Into<String>, target: Target) -> Self {
        Self {
            step: step.into(),
            target,
        }
    }

    /// The command id when the input identified by `trigger` issued this command.
    pub fn command_id(&self, trigger: Uuid) -> Uuid {
        derive_id(trigger, &self.step)
    }
}
