use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::loyalty::event::example_time;
use crate::{Currency, CustomerId, Decider, EventExample, Money, OrderId, PromotionId};

mod properties;
mod rules;

type Given = TestFramework<LoyaltyAccount>;

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

fn days(n: i64) -> DateTime<Utc> {
    example_time() + Duration::days(n)
}

fn order(n: u128) -> OrderId {
    OrderId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0000 + n,
    ))
}

fn customer(n: u128) -> CustomerId {
    CustomerId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0200 + n,
    ))
}

fn campaign(n: u128) -> PromotionId {
    PromotionId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0400 + n,
    ))
}

fn enroll() -> LoyaltyCommand {
    let e = LoyaltyAccountEnrolled::example();
    LoyaltyCommand::EnrollAccount(EnrollAccount {
        account_id: e.account_id,
        customer_id: e.customer_id,
        referral_code: e.referral_code,
        referred_by: e.referred_by,
        currency: e.currency,
        at: e.at,
    })
}

/// Earn at base rate 1 (one point per euro before the multiplier) on day `day`.
fn earn(n: u128, amount: i64, day: i64) -> LoyaltyCommand {
    LoyaltyCommand::EarnPoints(EarnPoints {
        order_id: order(n),
        order_amount: eur(amount),
        base_rate: 1,
        at: days(day),
    })
}

fn hold(n: u128, points: u64, day: i64) -> LoyaltyCommand {
    LoyaltyCommand::HoldPoints(HoldPoints {
        order_id: order(n),
        points,
        at: days(day),
    })
}

fn commit(n: u128) -> LoyaltyCommand {
    LoyaltyCommand::CommitHeldPoints(CommitHeldPoints {
        order_id: order(n),
        at: days(1),
    })
}

fn give_back(n: u128, day: i64) -> LoyaltyCommand {
    LoyaltyCommand::ReturnHeldPoints(ReturnHeldPoints {
        order_id: order(n),
        at: days(day),
    })
}

fn reverse(n: u128, refunded: i64) -> LoyaltyCommand {
    LoyaltyCommand::ReversePoints(ReversePoints {
        order_id: order(n),
        refunded_amount: eur(refunded),
        at: days(2),
    })
}

fn expire(now: DateTime<Utc>) -> LoyaltyCommand {
    LoyaltyCommand::ExpirePoints(ExpirePoints { now })
}

fn recalculate(now: DateTime<Utc>) -> LoyaltyCommand {
    LoyaltyCommand::RecalculateTier(RecalculateTier {
        thresholds: None,
        now,
    })
}

fn bonus(n: u128, points: u64, day: i64) -> LoyaltyCommand {
    LoyaltyCommand::AwardCampaignBonus(AwardCampaignBonus {
        campaign_id: campaign(n),
        points,
        at: days(day),
    })
}

fn referral(n: u128, points: u64) -> LoyaltyCommand {
    LoyaltyCommand::RewardReferral(RewardReferral {
        referred_customer: customer(n),
        referral_code: LoyaltyAccountEnrolled::example().referral_code,
        first_order_id: order(100 + n),
        points,
        at: days(3),
    })
}

fn history(commands: Vec<LoyaltyCommand>) -> Vec<LoyaltyEvent> {
    let mut state = LoyaltyAccount::default();
    let mut all = Vec::new();
    for c in commands {
        let events = state
            .decide(c.clone())
            .unwrap_or_else(|e| panic!("{c:?} refused: {e}"));
        for e in &events {
            state.evolve(e);
        }
        all.extend(events);
    }
    all
}

fn state_after(commands: Vec<LoyaltyCommand>) -> LoyaltyAccount {
    let mut state = LoyaltyAccount::default();
    for e in history(commands) {
        state.evolve(&e);
    }
    state
}

fn when(given: Vec<LoyaltyCommand>, command: LoyaltyCommand) -> Vec<LoyaltyEvent> {
    Given::with(())
        .given(history(given))
        .when(command)
        .inspect_result()
        .unwrap_or_else(|e| panic!("refused: {e}"))
}

fn refused(given: Vec<LoyaltyCommand>, command: LoyaltyCommand, error: LoyaltyError) {
    Given::with(())
        .given(history(given))
        .when(command)
        .then_expect_error(error);
}

fn unexpired_remaining(state: &LoyaltyAccount) -> u64 {
    state
        .lots
        .iter()
        .filter(|l| !l.expired)
        .map(|l| l.remaining)
        .sum()
}

fn a_year_after(t: DateTime<Utc>) -> DateTime<Utc> {
    t.checked_add_months(chrono::Months::new(12)).unwrap()
}
