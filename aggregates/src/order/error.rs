use chrono::{DateTime, Utc};

use crate::{Money, MoneyError, Quantity, ReturnId, ShipmentId, Sku};

/// Why an order command was refused. One variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("the order already exists")]
    AlreadyPlaced,
    #[error("the order does not exist")]
    NotFound,
    #[error("an order needs at least one line")]
    NoLines,
    #[error("SKU {0} appears on more than one line")]
    DuplicateLine(Sku),
    #[error("line {0} needs a quantity above zero")]
    ZeroQuantity(Sku),
    #[error("line {0} has a negative unit price")]
    NegativeUnitPrice(Sku),
    #[error("the discount on line {0} is negative or larger than the line")]
    InvalidLineDiscount(Sku),
    #[error("shipping and points value cannot be negative, got {0}")]
    NegativeCharge(Money),
    #[error("points worth {points_value} exceed the order total {total_before_points}")]
    PointsExceedTotal {
        points_value: Money,
        total_before_points: Money,
    },
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("an order needs a payment method token")]
    MissingPaymentMethod,
    #[error("the order is not a draft")]
    NotADraft,
    #[error("the order is still a draft")]
    DraftNotFinalised,
    #[error("the order is already confirmed")]
    AlreadyConfirmed,
    #[error("the order is cancelled")]
    OrderCancelled,
    #[error("the order is completed")]
    OrderCompleted,
    #[error("the order can no longer be edited: a shipment was recorded")]
    EditAfterShipment,
    #[error("the order has no line for SKU {0}")]
    UnknownLine(Sku),
    #[error("the last line cannot be removed; cancel the order instead")]
    CannotRemoveLastLine,
    #[error("the order must be confirmed before it ships")]
    NotConfirmed,
    #[error("the order cannot be cancelled: a shipment was recorded")]
    CancelAfterShipment,
    #[error("shipment {0} was already recorded")]
    DuplicateShipment(ShipmentId),
    #[error("a shipment needs at least one line")]
    EmptyShipment,
    #[error("cannot ship {requested} of {sku}: {ordered} ordered, {shipped} already shipped")]
    OverShipment {
        sku: Sku,
        ordered: Quantity,
        shipped: Quantity,
        requested: Quantity,
    },
    #[error("shipment {0} is not part of this order")]
    UnknownShipment(ShipmentId),
    #[error("shipment {0} was already delivered")]
    ShipmentAlreadyDelivered(ShipmentId),
    #[error("shipment {0} already came back to the sender")]
    ShipmentAlreadyReturned(ShipmentId),
    #[error("a return needs at least one line")]
    EmptyReturn,
    #[error("return {0} was already requested")]
    DuplicateReturn(ReturnId),
    #[error(
        "cannot return {requested} of {sku}: {delivered} delivered, {returned} already returned"
    )]
    ReturnExceedsDelivered {
        sku: Sku,
        delivered: Quantity,
        returned: Quantity,
        requested: Quantity,
    },
    #[error("the return window for {sku} closed at {deadline}")]
    ReturnWindowClosed { sku: Sku, deadline: DateTime<Utc> },
    #[error("return {0} is not part of this order")]
    UnknownReturn(ReturnId),
    #[error("return {0} is not waiting for a decision")]
    ReturnNotPending(ReturnId),
    #[error("return {0} is not approved")]
    ReturnNotApproved(ReturnId),
    #[error("amount must be greater than zero, got {0}")]
    NonPositiveAmount(Money),
    #[error("cannot refund {requested}: {paid} paid, {refunded} already refunded")]
    RefundExceedsPaid {
        paid: Money,
        refunded: Money,
        requested: Money,
    },
    #[error("return {0} was rejected; no exchange for it")]
    ExchangeForRejectedReturn(ReturnId),
    #[error("an exchange was already requested for return {0}")]
    ExchangeAlreadyRequested(ReturnId),
    #[error("the replacement order cannot be this order")]
    ExchangeOrderIsThisOrder,
    #[error("the order is not fully delivered")]
    NotDelivered,
    #[error("return {0} is still open")]
    OpenReturn(ReturnId),
}
