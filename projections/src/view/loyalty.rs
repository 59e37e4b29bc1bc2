//! `loyalty_accounts`: one row per customer's account (balance, tier, points ever
//! credited, redeemed and expired), and `loyalty_lots`: the points credited together and
//! expiring together, with what remains of each. Points expiring soon are a query over
//! the lots (`remaining` of unexpired lots with `expires_at` before a moment), so the
//! view needs no clock.

use aggregates::loyalty::LoyaltyAccount;
use aggregates::loyalty::{LoyaltyEvent, Tier};
use aggregates::EventSourced;
use chrono::{DateTime, Utc};

use crate::event::{Event, ViewEvent};
use crate::projection::Projection;
use crate::row::{key, key2, Change};

pub struct LoyaltyAccounts;

const ACCOUNTS: &str = "loyalty_accounts";
const LOTS: &str = "loyalty_lots";

impl Projection for LoyaltyAccounts {
    fn name(&self) -> &'static str {
        "loyalty_accounts"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[ACCOUNTS, LOTS]
    }

    fn reads(&self, stream_type: &str) -> bool {
        stream_type == LoyaltyAccount::STREAM_TYPE
    }

    fn apply(&self, event: &Event<'_>, out: &mut Vec<Change>) {
        if let ViewEvent::Loyalty(e) = event.event {
            loyalty(event.stream_id, e, out);
        }
    }
}

/// The stored name of a tier (as the events spell it).
pub fn tier(tier: Tier) -> &'static str {
    match tier {
        Tier::Bronze => "bronze",
        Tier::Silver => "silver",
        Tier::Gold => "gold",
        Tier::Platinum => "platinum",
    }
}

fn points(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn account(customer: &str, balance: u64, at: DateTime<Utc>) -> Change {
    Change::update(ACCOUNTS, key("customer_id", customer))
        .set("balance", balance)
        .set("updated_at", at)
}

fn lot(customer: &str, lot: u32) -> Vec<(&'static str, crate::row::Value)> {
    key2("customer_id", customer, "lot", lot)
}

fn new_lot(customer: &str, n: u32, credited: u64, expires_at: DateTime<Utc>) -> Change {
    Change::upsert(LOTS, lot(customer, n))
        .set("points", credited)
        .set("remaining", credited)
        .set("expires_at", expires_at)
        .set("expired", false)
}

fn loyalty(id: &str, event: &LoyaltyEvent, out: &mut Vec<Change>) {
    match event {
        LoyaltyEvent::LoyaltyAccountEnrolled(e) => out.push(
            Change::upsert(ACCOUNTS, key("customer_id", id))
                .set("account_id", e.account_id.to_string())
                .set("currency", e.currency.as_str())
                .set("tier", tier(e.tier))
                .set("balance", 0i64)
                .set("lifetime_points", 0i64)
                .set("redeemed_points", 0i64)
                .set("expired_points", 0i64)
                .set("referral_code", &e.referral_code)
                .set("referred_by", e.referred_by.as_deref())
                .set("enrolled_at", e.at)
                .set("updated_at", e.at),
        ),
        LoyaltyEvent::LoyaltyPointsEarned(e) => {
            out.push(account(id, e.balance, e.at).add("lifetime_points", points(e.points)));
            if let Some(n) = e.lot {
                out.push(new_lot(id, n, e.points, e.expires_at));
            }
        }
        LoyaltyEvent::LoyaltyPointsHeld(e) => {
            out.push(account(id, e.balance, e.at));
            for taken in &e.taken {
                out.push(
                    Change::update(LOTS, lot(id, taken.lot))
                        .add("remaining", -points(taken.points)),
                );
            }
        }
        LoyaltyEvent::LoyaltyHeldPointsRedeemed(e) => {
            out.push(account(id, e.balance, e.at).add("redeemed_points", points(e.points)));
        }
        LoyaltyEvent::LoyaltyHeldPointsReturned(e) => {
            out.push(account(id, e.balance, e.at));
            for r in e.lots.iter().filter(|r| r.restored > 0) {
                out.push(Change::update(LOTS, lot(id, r.lot)).add("remaining", points(r.restored)));
            }
        }
        LoyaltyEvent::LoyaltyPointsReversed(e) => {
            out.push(account(id, e.balance, e.at));
            if let Some(n) = e.lot {
                out.push(
                    Change::update(LOTS, lot(id, n)).add("remaining", -points(e.points_reversed)),
                );
            }
        }
        LoyaltyEvent::LoyaltyPointsExpired(e) => {
            out.push(account(id, e.balance, e.now).add("expired_points", points(e.points)));
            for x in &e.lots {
                out.push(
                    Change::update(LOTS, lot(id, x.lot))
                        .add("remaining", -points(x.points))
                        .set("expired", true),
                );
            }
        }
        LoyaltyEvent::LoyaltyTierChanged(e) => out.push(
            Change::update(ACCOUNTS, key("customer_id", id))
                .set("tier", tier(e.to))
                .set("updated_at", e.at),
        ),
        // No points move: the referrer's own account records its reward.
        LoyaltyEvent::LoyaltyReferralQualified(_) => {}
        LoyaltyEvent::LoyaltyReferralRewarded(e) => {
            out.push(account(id, e.balance, e.at).add("lifetime_points", points(e.points)));
            out.push(new_lot(id, e.lot, e.points, e.expires_at));
        }
        LoyaltyEvent::LoyaltyCampaignBonusAwarded(e) => {
            out.push(account(id, e.balance, e.at).add("lifetime_points", points(e.points)));
            out.push(new_lot(id, e.lot, e.points, e.expires_at));
        }
    }
}
