//! One line per event, for people: what happened, in the words of the business
//! ("3 × SKU-123 added at 12.50 EUR"). Every event type of the eight aggregates has its
//! own line; the matches are exhaustive, so a new event type does not compile until it
//! has one.

use aggregates::cart::CartEvent;
use aggregates::loyalty::LoyaltyEvent;
use aggregates::order::{LineQuantity, OrderEvent};
use aggregates::payment::PaymentEvent;
use aggregates::product::ProductEvent;
use aggregates::promotion::PromotionEvent;
use aggregates::shipment::{ShipmentEvent, ShipmentLine};
use aggregates::stock::{StockEvent, WarehouseAllocation};

use super::aggregate::AnyEvent;
use super::format::money;

/// The one-line summary of an event.
pub fn summary(event: &AnyEvent) -> String {
    match event {
        AnyEvent::Cart(e) => cart(e),
        AnyEvent::Order(e) => order(e),
        AnyEvent::Payment(e) => payment(e),
        AnyEvent::Stock(e) => stock(e),
        AnyEvent::Shipment(e) => shipment(e),
        AnyEvent::Loyalty(e) => loyalty(e),
        AnyEvent::Product(e) => product(e),
        AnyEvent::Promotion(e) => promotion(e),
    }
}

/// `2 × TSHIRT, 1 × MUG`.
fn lines(lines: &[LineQuantity]) -> String {
    join(lines.iter().map(|l| format!("{} × {}", l.quantity, l.sku)))
}

fn shipment_lines(lines: &[ShipmentLine]) -> String {
    join(lines.iter().map(|l| format!("{} × {}", l.quantity, l.sku)))
}

fn allocations(a: &[WarehouseAllocation]) -> String {
    join(
        a.iter()
            .map(|a| format!("{} from {}", a.quantity, a.warehouse)),
    )
}

fn join(parts: impl Iterator<Item = String>) -> String {
    let parts: Vec<String> = parts.collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

fn cart(e: &CartEvent) -> String {
    match e {
        CartEvent::CartOpened(e) => format!(
            "cart opened in {} for customer {}",
            e.currency, e.customer_id
        ),
        CartEvent::CartItemAdded(e) => format!(
            "{} × {} added at {} (line {} units, {}; subtotal {})",
            e.quantity_added,
            e.sku,
            money(&e.unit_price),
            e.quantity,
            money(&e.line_total),
            money(&e.subtotal)
        ),
        CartEvent::CartItemQuantityChanged(e) => format!(
            "{} quantity {} → {} (line {}, subtotal {})",
            e.sku,
            e.previous_quantity,
            e.quantity,
            money(&e.line_total),
            money(&e.subtotal)
        ),
        CartEvent::CartItemRemoved(e) => format!(
            "{} × {} removed (subtotal {})",
            e.removed_quantity,
            e.sku,
            money(&e.subtotal)
        ),
        CartEvent::CartCouponApplied(e) => format!(
            "coupon {} applied: {} off items, {} off shipping",
            e.terms.code,
            money(&e.item_discount),
            money(&e.shipping_discount)
        ),
        CartEvent::CartCouponRemoved(e) => format!("coupon {} removed", e.code),
        CartEvent::CartShippingAddressSet(e) => format!(
            "ships to {} {}, {} (tax region {})",
            e.address.postal_code, e.address.city, e.address.country.0, e.tax_region
        ),
        CartEvent::CartShippingMethodSet(e) => format!(
            "shipping method {} at {}",
            e.method.code,
            money(&e.method.price)
        ),
        CartEvent::CartLoyaltyPointsSet(e) => format!(
            "{} loyalty points to redeem, worth {}",
            e.points,
            money(&e.value)
        ),
        CartEvent::CartCheckedOut(e) => format!(
            "checked out as order {}: {} lines, {} to pay",
            e.order_id,
            e.lines.len(),
            money(&e.totals.grand_total)
        ),
        CartEvent::CartAbandoned(e) => format!(
            "abandoned with {} units worth {} (idle since {})",
            e.item_count,
            money(&e.subtotal),
            super::format::short_time(&e.last_activity_at)
        ),
    }
}

fn order(e: &OrderEvent) -> String {
    match e {
        OrderEvent::OrderPlaced(e) => format!(
            "{} for customer {}: {} lines, {} total",
            if e.draft {
                "draft opened"
            } else {
                "order placed"
            },
            e.customer_id,
            e.lines.len(),
            money(&e.totals.grand_total)
        ),
        OrderEvent::OrderLineAdded(e) => format!(
            "{} × {} added at {} (total {}, {:+} minor units)",
            e.line.quantity,
            e.line.sku,
            money(&e.line.unit_price),
            money(&e.totals.grand_total),
            e.grand_total_difference.amount
        ),
        OrderEvent::OrderDraftFinalised(e) => format!(
            "draft finalised: {} lines, {} total",
            e.lines.len(),
            money(&e.totals.grand_total)
        ),
        OrderEvent::OrderConfirmed(e) => {
            format!("confirmed for fulfilment at {}", money(&e.grand_total))
        }
        OrderEvent::OrderLineQuantityChanged(e) => format!(
            "{} quantity {} → {} (total {})",
            e.sku,
            e.previous_quantity,
            e.line.quantity,
            money(&e.totals.grand_total)
        ),
        OrderEvent::OrderLineRemoved(e) => format!(
            "{} × {} removed (total {})",
            e.removed_quantity,
            e.sku,
            money(&e.totals.grand_total)
        ),
        OrderEvent::OrderShippingAddressChanged(e) => format!(
            "now ships to {} {}, {} (total {})",
            e.address.postal_code,
            e.address.city,
            e.address.country.0,
            money(&e.totals.grand_total)
        ),
        OrderEvent::OrderCancelled(e) => format!(
            "cancelled ({:?}): {}; {} to give back",
            e.reason,
            lines(&e.lines),
            money(&e.paid)
        ),
        OrderEvent::OrderShipmentRecorded(e) => format!(
            "shipment {} left with {}{}",
            e.shipment_id,
            lines(&e.lines),
            if e.fully_shipped {
                " (all shipped)"
            } else {
                ""
            }
        ),
        OrderEvent::OrderShipmentDelivered(e) => {
            format!("shipment {} delivered: {}", e.shipment_id, lines(&e.lines))
        }
        OrderEvent::OrderShipmentReturnedToSender(e) => format!(
            "shipment {} came back to the sender: {}",
            e.shipment_id,
            lines(&e.lines)
        ),
        OrderEvent::OrderDelivered(_) => "every unit delivered".into(),
        OrderEvent::OrderReturnRequested(e) => format!(
            "return {} requested for {}: {}",
            e.return_id,
            lines(&e.lines),
            e.reason
        ),
        OrderEvent::OrderReturnApproved(e) => {
            format!("return {} approved: {}", e.return_id, lines(&e.lines))
        }
        OrderEvent::OrderReturnRejected(e) => {
            format!("return {} rejected: {}", e.return_id, e.reason)
        }
        OrderEvent::OrderReturnReceived(e) => {
            format!("return {} received: {}", e.return_id, lines(&e.lines))
        }
        OrderEvent::OrderPaymentCaptured(e) => format!(
            "{} captured by payment {} (paid {})",
            money(&e.amount),
            e.payment_id,
            money(&e.paid_total)
        ),
        OrderEvent::OrderRefundRecorded(e) => format!(
            "{} refunded (refunded {}, {} refundable)",
            money(&e.amount),
            money(&e.refunded_total),
            money(&e.refundable_remaining)
        ),
        OrderEvent::OrderExchangeRequested(e) => format!(
            "exchange for return {}: replacement order {}",
            e.return_id, e.replacement_order_id
        ),
        OrderEvent::OrderCompleted(e) => format!(
            "completed: {} total, {} paid, {} refunded",
            money(&e.grand_total),
            money(&e.paid),
            money(&e.refunded)
        ),
    }
}

fn payment(e: &PaymentEvent) -> String {
    match e {
        PaymentEvent::PaymentInitiated(e) => format!(
            "{} for order {} started with {}",
            money(&e.amount),
            e.order_id,
            e.provider
        ),
        PaymentEvent::PaymentFraudAssessed(e) => format!(
            "fraud score {} ({:?}){}",
            e.score,
            e.outcome,
            if e.fired.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    join(
                        e.fired
                            .iter()
                            .map(|f| format!("{:?} +{}", f.rule, f.points))
                    )
                )
            }
        ),
        PaymentEvent::PaymentFraudReviewed(e) => format!(
            "{} by {} on review",
            if e.approved { "approved" } else { "rejected" },
            e.reviewer
        ),
        PaymentEvent::PaymentActionRequired(e) => {
            format!(
                "3-D Secure challenge {} sent to the customer",
                e.challenge_id
            )
        }
        PaymentEvent::PaymentAuthorized(e) => {
            format!("{} authorized ({})", money(&e.amount), e.provider_reference)
        }
        PaymentEvent::PaymentDeclined(e) => format!("declined: {}", e.reason_code),
        PaymentEvent::PaymentCaptured(e) => format!(
            "{} captured (captured {}, {} still capturable)",
            money(&e.amount),
            money(&e.captured_total),
            money(&e.capturable_remaining)
        ),
        PaymentEvent::PaymentAuthorizationAdjusted(e) => format!(
            "authorization moved from {} to {}",
            money(&e.previous_authorized),
            money(&e.authorized)
        ),
        PaymentEvent::PaymentVoided(e) => {
            format!("voided: {} released", money(&e.released))
        }
        PaymentEvent::PaymentRefunded(e) => format!(
            "{} refunded as {} (refunded {})",
            money(&e.amount),
            e.refund_id,
            money(&e.refunded_total)
        ),
        PaymentEvent::PaymentChargebackRecorded(e) => format!(
            "chargeback {} of {}: {}",
            e.reference,
            money(&e.amount),
            e.reason_code
        ),
    }
}

fn stock(e: &StockEvent) -> String {
    match e {
        StockEvent::StockReceived(e) => format!(
            "{} × {} received in {} (on hand {})",
            e.quantity, e.sku, e.warehouse, e.levels.on_hand
        ),
        StockEvent::StockAdjusted(e) => format!(
            "{} in {} adjusted by {:+} ({:?}; on hand {})",
            e.sku, e.warehouse, e.delta, e.reason, e.levels.on_hand
        ),
        StockEvent::StockReserved(e) => format!(
            "{} × {} reserved for order {}: {}{}",
            e.quantity,
            e.sku,
            e.order_id,
            allocations(&e.allocation),
            if e.backordered.0 > 0 {
                format!(", {} backordered", e.backordered)
            } else {
                String::new()
            }
        ),
        StockEvent::StockReservationChanged(e) => format!(
            "reservation of order {} changed from {} to {}: {} held, {} backordered",
            e.order_id,
            e.previous_quantity.0,
            e.quantity.0,
            allocations(&e.allocation),
            e.backordered.0
        ),
        StockEvent::StockReservationReleased(e) => format!(
            "reservation of order {} released: {} freed",
            e.order_id,
            allocations(&e.freed)
        ),
        StockEvent::StockReservationCommitted(e) => format!(
            "{} for order {} shipped: {}",
            e.sku,
            e.order_id,
            allocations(&e.shipped)
        ),
        StockEvent::StockReservationExpired(e) => format!(
            "reservation of order {} expired: {} freed",
            e.order_id,
            allocations(&e.freed)
        ),
        StockEvent::StockBackorderFilled(e) => format!(
            "backorder of order {} filled: {} ({} still owed)",
            e.order_id,
            allocations(&e.allocation),
            e.still_backordered
        ),
        StockEvent::StockBackorderLimitSet(e) => {
            format!("{} may backorder up to {}", e.sku, e.limit)
        }
        StockEvent::LowStockThresholdSet(e) => match e.threshold {
            Some(t) => format!("{} alerts at {} or fewer available", e.sku, t),
            None => format!("{} low-stock alert turned off", e.sku),
        },
        StockEvent::LowStockThresholdCrossed(e) => format!(
            "{} low on stock: {} available (threshold {})",
            e.sku, e.levels.available, e.threshold
        ),
    }
}

fn shipment(e: &ShipmentEvent) -> String {
    match e {
        ShipmentEvent::ShipmentCreated(e) => format!(
            "planned from {} for order {}: {}",
            e.warehouse,
            e.order_id,
            shipment_lines(&e.lines)
        ),
        ShipmentEvent::ShipmentRevised(e) => format!(
            "lines revised: {}",
            e.lines
                .iter()
                .map(|l| format!("{} × {}", l.quantity.0, l.sku))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ShipmentEvent::ShipmentPicked(_) => "picked".into(),
        ShipmentEvent::ShipmentPacked(_) => "packed".into(),
        ShipmentEvent::ShipmentLabelCreated(e) => {
            format!("{} label {} created", e.carrier_code, e.tracking_number)
        }
        ShipmentEvent::ShipmentDispatched(e) => {
            format!("handed to {} as {}", e.carrier_code, e.tracking_number)
        }
        ShipmentEvent::ShipmentTrackingUpdated(e) => format!(
            "{:?} at {} (now {:?})",
            e.status, e.location, e.current_status
        ),
        ShipmentEvent::ShipmentDelivered(e) => {
            format!("delivered: {}", shipment_lines(&e.lines))
        }
        ShipmentEvent::ShipmentDeliveryFailed(e) => {
            format!("delivery attempt {} failed: {:?}", e.attempt, e.reason)
        }
        ShipmentEvent::ShipmentReturnedToSender(e) => format!(
            "returned to {} after {} failed attempts",
            e.warehouse, e.failed_attempts
        ),
    }
}

fn loyalty(e: &LoyaltyEvent) -> String {
    match e {
        LoyaltyEvent::LoyaltyAccountEnrolled(e) => format!(
            "customer {} enrolled at {:?} (referral code {}{})",
            e.customer_id,
            e.tier,
            e.referral_code,
            e.referred_by
                .as_ref()
                .map(|r| format!(", referred by {r}"))
                .unwrap_or_default()
        ),
        LoyaltyEvent::LoyaltyPointsEarned(e) => format!(
            "{} points earned on order {} of {} (balance {})",
            e.points,
            e.order_id,
            money(&e.order_amount),
            e.balance
        ),
        LoyaltyEvent::LoyaltyPointsHeld(e) => format!(
            "{} points held for order {} (balance {})",
            e.points, e.order_id, e.balance
        ),
        LoyaltyEvent::LoyaltyHeldPointsRedeemed(e) => format!(
            "{} held points spent on order {} (balance {})",
            e.points, e.order_id, e.balance
        ),
        LoyaltyEvent::LoyaltyHeldPointsReturned(e) => format!(
            "{} held points of order {} returned: {} restored (balance {})",
            e.points, e.order_id, e.restored, e.balance
        ),
        LoyaltyEvent::LoyaltyPointsReversed(e) => format!(
            "{} points reversed for a refund of {} on order {} (balance {})",
            e.points_reversed,
            money(&e.refunded_amount),
            e.order_id,
            e.balance
        ),
        LoyaltyEvent::LoyaltyPointsExpired(e) => format!(
            "{} points expired from {} lots (balance {})",
            e.points,
            e.lots.len(),
            e.balance
        ),
        LoyaltyEvent::LoyaltyTierChanged(e) => format!(
            "tier {:?} → {:?} on a rolling spend of {}",
            e.from,
            e.to,
            money(&e.rolling_spend)
        ),
        LoyaltyEvent::LoyaltyReferralQualified(e) => format!(
            "first order {} completed: referrer {} is due its reward",
            e.first_order_id, e.referred_by
        ),
        LoyaltyEvent::LoyaltyReferralRewarded(e) => format!(
            "{} points for referring customer {} (balance {})",
            e.points, e.referred_customer, e.balance
        ),
        LoyaltyEvent::LoyaltyCampaignBonusAwarded(e) => format!(
            "{} bonus points of campaign {} (balance {})",
            e.points, e.campaign_id, e.balance
        ),
    }
}

fn product(e: &ProductEvent) -> String {
    match e {
        ProductEvent::ProductCreated(e) => format!(
            "{} \"{}\" created in {} at {}",
            e.sku,
            e.name,
            e.category,
            join(e.prices.values().map(money))
        ),
        ProductEvent::ProductDetailsChanged(e) => {
            format!("details changed: \"{}\" in {}", e.name, e.category)
        }
        ProductEvent::ProductPriceChanged(e) => match &e.previous {
            Some(previous) => format!("{} price {} → {}", e.sku, money(previous), money(&e.price)),
            None => format!("{} priced at {}", e.sku, money(&e.price)),
        },
        ProductEvent::ProductDiscontinued(e) => format!("{} discontinued", e.sku),
    }
}

fn promotion(e: &PromotionEvent) -> String {
    match e {
        PromotionEvent::PromotionCreated(e) => {
            format!("promotion {} created: {:?}", e.terms.code, e.terms.kind)
        }
        PromotionEvent::PromotionRedemptionReserved(e) => {
            format!("{} used by order {} ({} uses)", e.code, e.order_id, e.uses)
        }
        PromotionEvent::PromotionRedemptionReleased(e) => format!(
            "{} given back by order {} ({} uses)",
            e.code, e.order_id, e.uses
        ),
        PromotionEvent::PromotionDeactivated(e) => {
            format!("{} deactivated after {} uses", e.code, e.uses)
        }
    }
}

#[cfg(test)]
mod tests {
    use aggregates::cart::CartItemAdded;
    use aggregates::order::OrderCancelled;
    use aggregates::{Currency, EventExample, Money, Quantity, Sku};

    use super::*;

    #[test]
    fn an_added_item_reads_as_the_business_says_it() {
        let mut added = CartItemAdded::example();
        added.sku = Sku::parse("SKU-123").unwrap();
        added.quantity_added = Quantity(3);
        added.unit_price = Money::new(1250, Currency::EUR);
        let line = summary(&AnyEvent::Cart(added.into()));
        assert!(line.starts_with("3 × SKU-123 added at 12.50 EUR"), "{line}");
    }

    #[test]
    fn a_cancellation_names_its_reason_lines_and_refund() {
        let line = summary(&AnyEvent::Order(OrderCancelled::example().into()));
        assert_eq!(
            line,
            "cancelled (CustomerRequested): 2 × TSHIRT-RED-M, 1 × MUG-WHITE; 0.00 EUR to give back"
        );
    }
}
