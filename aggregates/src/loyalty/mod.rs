//! Loyalty account: a customer's points, kept as lots that each expire 12 months after
//! they were earned, plus the customer's tier.
//!
//! Contract, in short:
//! - Earning: `points = floor(floor(amount_minor × base_rate / 100) × tier% / 100)`, with
//!   tier multipliers bronze 100 %, silver 125 %, gold 150 %, platinum 200 %. Once per
//!   order; a repeat is a no-op. Each earning, referral reward and campaign bonus is a lot.
//! - Spending: points held at checkout are taken from lots at once, soonest-expiring first
//!   (which is first-in-first-out, every lot living 12 months). A hold is committed when
//!   the order is confirmed, or returned to its lots on cancellation (returning twice or
//!   returning an unknown hold is a no-op). A lot past its expiry cannot pay for a hold,
//!   even before `ExpirePoints` has removed it; points returned to a lot that has expired
//!   in the meantime are forfeited.
//! - Refunds reverse `round_half_even(earned × refunded_total / order_amount)` points
//!   (cumulative, so partial refunds never drift), taken only from that order's own lot.
//!   When those points were already spent or expired, only what is left in the lot is
//!   reversed; the rest is recorded as `uncollectable` and stays a debt of the lot: if a
//!   held redemption that used the lot is later returned, the debt is taken back first.
//!   The balance never goes negative.
//! - Referrals are rewarded once per referred customer, only for this account's own code;
//!   campaign bonuses once per campaign. Both open a lot like an earning.
//! - Tier: recalculated on demand from the spend of the last 12 months (order amounts
//!   earned in that window minus their refunds), upgrading or downgrading.
//!
//! The balance carried by every event equals the remaining points of the lots not yet
//! expired.

mod command;
mod decide;
mod error;
mod event;
mod state;

pub use command::*;
pub use error::LoyaltyError;
pub use event::*;
pub use state::{EarnedOrder, HoldStatus, LoyaltyAccount, PointsHold, PointsLot};

/// JSON Schemas of every loyalty account event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    LoyaltyEvent::catalogue(<LoyaltyAccount as cqrs_es::Aggregate>::TYPE)
}

crate::impl_aggregate!(
    LoyaltyAccount,
    "loyalty_account",
    exists = |s| s.id.is_some(),
    owner = |s| s.customer_id
);

#[cfg(test)]
mod tests;
