use chrono::{DateTime, Months, Utc};

use super::*;
use crate::{Currency, Decider, Money, MoneyError};

/// How long a lot lives.
const LOT_LIFETIME: Months = Months::new(12);

fn lot_expiry(earned_at: DateTime<Utc>) -> DateTime<Utc> {
    earned_at
        .checked_add_months(LOT_LIFETIME)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn valid_referral_code(code: &str) -> bool {
    (4..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

impl From<MoneyError> for LoyaltyError {
    fn from(e: MoneyError) -> Self {
        match e {
            MoneyError::CurrencyMismatch { left, right } => LoyaltyError::CurrencyMismatch {
                account: left,
                got: right,
            },
            // Points derived from an out-of-range amount are out of range too.
            MoneyError::Overflow | MoneyError::InvalidCurrency(_) => LoyaltyError::PointsOverflow,
        }
    }
}

impl Decider for LoyaltyAccount {
    type Command = LoyaltyCommand;
    type Event = LoyaltyEvent;
    type Error = LoyaltyError;

    fn decide(&self, command: LoyaltyCommand) -> Result<Vec<LoyaltyEvent>, LoyaltyError> {
        if let LoyaltyCommand::EnrollAccount(c) = command {
            return self.enroll(c);
        }
        let currency = self.currency.ok_or(LoyaltyError::NotEnrolled)?;
        match command {
            LoyaltyCommand::EnrollAccount(c) => self.enroll(c),
            LoyaltyCommand::EarnPoints(c) => self.earn(currency, c),
            LoyaltyCommand::HoldPoints(c) => self.hold(c),
            LoyaltyCommand::CommitHeldPoints(c) => self.commit_hold(c),
            LoyaltyCommand::ReturnHeldPoints(c) => self.return_hold(c),
            LoyaltyCommand::ReversePoints(c) => self.reverse(currency, c),
            LoyaltyCommand::ExpirePoints(c) => Ok(self.expire(c.now)),
            LoyaltyCommand::RecalculateTier(c) => self.recalculate_tier(currency, c),
            LoyaltyCommand::QualifyReferral(c) => {
                let (Some(customer_id), Some(referred_by)) = (self.customer_id, &self.referred_by)
                else {
                    return Ok(Vec::new());
                };
                if self.referral_qualified_by.is_some() {
                    return Ok(Vec::new());
                }
                Ok(vec![LoyaltyReferralQualified {
                    customer_id,
                    referred_by: referred_by.clone(),
                    first_order_id: c.order_id,
                    at: c.at,
                }
                .into()])
            }
            LoyaltyCommand::RewardReferral(c) => {
                if c.referral_code != self.referral_code {
                    return Err(LoyaltyError::ReferralCodeNotOurs(c.referral_code));
                }
                if Some(c.referred_customer) == self.customer_id {
                    return Err(LoyaltyError::SelfReferral);
                }
                if self.referrals.contains(&c.referred_customer) {
                    return Ok(Vec::new());
                }
                let (lot, balance) = self.new_lot(c.points)?;
                Ok(vec![LoyaltyReferralRewarded {
                    referred_customer: c.referred_customer,
                    first_order_id: c.first_order_id,
                    points: c.points,
                    lot,
                    expires_at: lot_expiry(c.at),
                    balance,
                    at: c.at,
                }
                .into()])
            }
            LoyaltyCommand::AwardCampaignBonus(c) => {
                if self.campaigns.contains(&c.campaign_id) {
                    return Ok(Vec::new());
                }
                let (lot, balance) = self.new_lot(c.points)?;
                Ok(vec![LoyaltyCampaignBonusAwarded {
                    campaign_id: c.campaign_id,
                    points: c.points,
                    lot,
                    expires_at: lot_expiry(c.at),
                    balance,
                    at: c.at,
                }
                .into()])
            }
        }
    }

    fn evolve(&mut self, event: &LoyaltyEvent) {
        match event {
            LoyaltyEvent::LoyaltyAccountEnrolled(e) => {
                self.id = Some(e.account_id);
                self.customer_id = Some(e.customer_id);
                self.currency = Some(e.currency);
                self.referral_code = e.referral_code.clone();
                self.referred_by = e.referred_by.clone();
                self.tier = e.tier;
            }
            LoyaltyEvent::LoyaltyPointsEarned(e) => {
                if e.lot.is_some() {
                    self.push_lot(e.points, e.expires_at);
                }
                self.orders.insert(
                    e.order_id,
                    EarnedOrder {
                        amount: e.order_amount,
                        points: e.points,
                        lot: e.lot,
                        earned_at: e.at,
                        refunded: Money::zero(e.order_amount.currency),
                        points_due: 0,
                    },
                );
                self.balance = e.balance;
            }
            LoyaltyEvent::LoyaltyPointsHeld(e) => {
                for t in &e.taken {
                    if let Some(lot) = self.lot_mut(t.lot) {
                        lot.remaining = lot.remaining.saturating_sub(t.points);
                    }
                }
                self.holds.insert(
                    e.order_id,
                    PointsHold {
                        points: e.points,
                        taken: e.taken.clone(),
                        status: HoldStatus::Held,
                    },
                );
                self.balance = e.balance;
            }
            LoyaltyEvent::LoyaltyHeldPointsRedeemed(e) => {
                if let Some(h) = self.holds.get_mut(&e.order_id) {
                    h.status = HoldStatus::Committed;
                }
                self.balance = e.balance;
            }
            LoyaltyEvent::LoyaltyHeldPointsReturned(e) => {
                for r in &e.lots {
                    if let Some(lot) = self.lot_mut(r.lot) {
                        lot.remaining = lot.remaining.saturating_add(r.restored);
                        lot.debt = lot.debt.saturating_sub(r.clawed_back);
                    }
                }
                if let Some(h) = self.holds.get_mut(&e.order_id) {
                    h.status = HoldStatus::Returned;
                }
                self.balance = e.balance;
            }
            LoyaltyEvent::LoyaltyPointsReversed(e) => {
                if let Some(n) = e.lot {
                    if let Some(lot) = self.lot_mut(n) {
                        lot.remaining = lot.remaining.saturating_sub(e.points_reversed);
                        lot.debt = lot.debt.saturating_add(e.uncollectable);
                    }
                }
                if let Some(o) = self.orders.get_mut(&e.order_id) {
                    o.refunded = e.refunded_total;
                    o.points_due = o.points_due.saturating_add(e.points_due);
                }
                self.balance = e.balance;
            }
            LoyaltyEvent::LoyaltyPointsExpired(e) => {
                for x in &e.lots {
                    if let Some(lot) = self.lot_mut(x.lot) {
                        lot.remaining = lot.remaining.saturating_sub(x.points);
                        lot.expired = true;
                    }
                }
                self.balance = e.balance;
            }
            LoyaltyEvent::LoyaltyTierChanged(e) => self.tier = e.to,
            LoyaltyEvent::LoyaltyReferralQualified(e) => {
                self.referral_qualified_by = Some(e.first_order_id);
            }
            LoyaltyEvent::LoyaltyReferralRewarded(e) => {
                self.referrals.insert(e.referred_customer);
                self.push_lot(e.points, e.expires_at);
                self.balance = e.balance;
            }
            LoyaltyEvent::LoyaltyCampaignBonusAwarded(e) => {
                self.campaigns.insert(e.campaign_id);
                self.push_lot(e.points, e.expires_at);
                self.balance = e.balance;
            }
        }
    }
}

impl LoyaltyAccount {
    fn push_lot(&mut self, points: u64, expires_at: DateTime<Utc>) {
        self.lots.push(PointsLot {
            points,
            remaining: points,
            debt: 0,
            expires_at,
            expired: false,
        });
    }

    fn lot_mut(&mut self, n: u32) -> Option<&mut PointsLot> {
        usize::try_from(n).ok().and_then(|i| self.lots.get_mut(i))
    }

    fn lot(&self, n: u32) -> Option<&PointsLot> {
        usize::try_from(n).ok().and_then(|i| self.lots.get(i))
    }

    /// The number of the next lot and the balance after crediting `points` to it.
    fn new_lot(&self, points: u64) -> Result<(u32, u64), LoyaltyError> {
        if points == 0 {
            return Err(LoyaltyError::ZeroPoints);
        }
        let lot = u32::try_from(self.lots.len()).map_err(|_| LoyaltyError::PointsOverflow)?;
        let balance = self
            .balance
            .checked_add(points)
            .ok_or(LoyaltyError::PointsOverflow)?;
        Ok((lot, balance))
    }

    fn enroll(&self, c: EnrollAccount) -> Result<Vec<LoyaltyEvent>, LoyaltyError> {
        if self.is_enrolled() {
            return Err(LoyaltyError::AlreadyEnrolled);
        }
        for code in std::iter::once(&c.referral_code).chain(c.referred_by.as_ref()) {
            if !valid_referral_code(code) {
                return Err(LoyaltyError::InvalidReferralCode(code.clone()));
            }
        }
        if c.referred_by.as_ref() == Some(&c.referral_code) {
            return Err(LoyaltyError::ReferredBySelf);
        }
        Ok(vec![LoyaltyAccountEnrolled {
            account_id: c.account_id,
            customer_id: c.customer_id,
            referral_code: c.referral_code,
            referred_by: c.referred_by,
            currency: c.currency,
            tier: Tier::Bronze,
            at: c.at,
        }
        .into()])
    }

    fn positive_in(&self, currency: Currency, amount: Money) -> Result<(), LoyaltyError> {
        if amount.currency != currency {
            return Err(LoyaltyError::CurrencyMismatch {
                account: currency,
                got: amount.currency,
            });
        }
        if !amount.is_positive() {
            return Err(LoyaltyError::NonPositiveAmount(amount));
        }
        Ok(())
    }

    fn earn(&self, currency: Currency, c: EarnPoints) -> Result<Vec<LoyaltyEvent>, LoyaltyError> {
        if self.orders.contains_key(&c.order_id) {
            // Delivered more than once: the order already earned.
            return Ok(Vec::new());
        }
        self.positive_in(currency, c.order_amount)?;
        let multiplier_percent = self.tier.multiplier_percent();
        // The amount is positive, so u128 holds every product without loss.
        let base = (c.order_amount.amount.unsigned_abs() as u128) * u128::from(c.base_rate) / 100;
        let points = base * u128::from(multiplier_percent) / 100;
        let base_points = u64::try_from(base).map_err(|_| LoyaltyError::PointsOverflow)?;
        let points = u64::try_from(points).map_err(|_| LoyaltyError::PointsOverflow)?;
        let (lot, balance) = if points == 0 {
            (None, self.balance)
        } else {
            let (lot, balance) = self.new_lot(points)?;
            (Some(lot), balance)
        };
        Ok(vec![LoyaltyPointsEarned {
            order_id: c.order_id,
            order_amount: c.order_amount,
            base_rate: c.base_rate,
            base_points,
            tier: self.tier,
            multiplier_percent,
            points,
            lot,
            expires_at: lot_expiry(c.at),
            balance,
            at: c.at,
        }
        .into()])
    }

    fn hold(&self, c: HoldPoints) -> Result<Vec<LoyaltyEvent>, LoyaltyError> {
        if let Some(existing) = self.holds.get(&c.order_id) {
            if existing.status == HoldStatus::Held && existing.points == c.points {
                return Ok(Vec::new());
            }
            return Err(LoyaltyError::HoldAlreadyExists(c.order_id));
        }
        if c.points == 0 {
            return Err(LoyaltyError::ZeroPoints);
        }
        // Lots past their expiry stay in the balance until `ExpirePoints` runs, but they
        // cannot pay for anything any more.
        let mut open: Vec<(u32, &PointsLot)> = (0u32..)
            .zip(&self.lots)
            .filter(|(_, l)| !l.expired && l.remaining > 0 && l.expires_at > c.at)
            .collect();
        let available: u64 = open.iter().map(|(_, l)| l.remaining).sum();
        if c.points > available {
            return Err(LoyaltyError::InsufficientPoints {
                requested: c.points,
                available,
            });
        }
        // Soonest-expiring first; lots all live 12 months, so this is oldest first.
        open.sort_by_key(|(n, l)| (l.expires_at, *n));
        let mut left = c.points;
        let mut taken = Vec::new();
        for (n, l) in open {
            if left == 0 {
                break;
            }
            let take = l.remaining.min(left);
            taken.push(LotPoints {
                lot: n,
                points: take,
            });
            left -= take;
        }
        Ok(vec![LoyaltyPointsHeld {
            order_id: c.order_id,
            points: c.points,
            taken,
            balance: self.balance.saturating_sub(c.points),
            at: c.at,
        }
        .into()])
    }

    fn commit_hold(&self, c: CommitHeldPoints) -> Result<Vec<LoyaltyEvent>, LoyaltyError> {
        let hold = self
            .holds
            .get(&c.order_id)
            .ok_or(LoyaltyError::HoldNotFound(c.order_id))?;
        match hold.status {
            HoldStatus::Committed => Ok(Vec::new()),
            HoldStatus::Returned => Err(LoyaltyError::HoldAlreadyReturned(c.order_id)),
            HoldStatus::Held => Ok(vec![LoyaltyHeldPointsRedeemed {
                order_id: c.order_id,
                points: hold.points,
                balance: self.balance,
                at: c.at,
            }
            .into()]),
        }
    }

    fn return_hold(&self, c: ReturnHeldPoints) -> Result<Vec<LoyaltyEvent>, LoyaltyError> {
        let Some(hold) = self.holds.get(&c.order_id) else {
            return Ok(Vec::new());
        };
        match hold.status {
            HoldStatus::Returned => return Ok(Vec::new()),
            HoldStatus::Committed => return Err(LoyaltyError::HoldAlreadyCommitted(c.order_id)),
            HoldStatus::Held => {}
        }
        let mut lots = Vec::new();
        let (mut restored, mut clawed_back, mut forfeited) = (0u64, 0u64, 0u64);
        for t in &hold.taken {
            let Some(lot) = self.lot(t.lot) else { continue };
            let mut r = LotReturn {
                lot: t.lot,
                restored: 0,
                clawed_back: 0,
                forfeited: 0,
            };
            if lot.expired || lot.expires_at <= c.at {
                r.forfeited = t.points;
            } else {
                r.clawed_back = t.points.min(lot.debt);
                r.restored = t.points - r.clawed_back;
            }
            restored = restored.saturating_add(r.restored);
            clawed_back = clawed_back.saturating_add(r.clawed_back);
            forfeited = forfeited.saturating_add(r.forfeited);
            lots.push(r);
        }
        let balance = self
            .balance
            .checked_add(restored)
            .ok_or(LoyaltyError::PointsOverflow)?;
        Ok(vec![LoyaltyHeldPointsReturned {
            order_id: c.order_id,
            points: hold.points,
            lots,
            restored,
            clawed_back,
            forfeited,
            balance,
            at: c.at,
        }
        .into()])
    }

    fn reverse(
        &self,
        currency: Currency,
        c: ReversePoints,
    ) -> Result<Vec<LoyaltyEvent>, LoyaltyError> {
        let order = self
            .orders
            .get(&c.order_id)
            .ok_or(LoyaltyError::OrderNotEarned(c.order_id))?;
        self.positive_in(currency, c.refunded_amount)?;
        let refunded_total = order.refunded.checked_add(c.refunded_amount)?;
        if refunded_total.amount > order.amount.amount {
            return Err(LoyaltyError::RefundExceedsOrder {
                order_id: c.order_id,
                order_amount: order.amount,
                would_be: refunded_total,
            });
        }
        // Cumulative share, so that several partial refunds add up to the whole exactly.
        let earned = i64::try_from(order.points).map_err(|_| LoyaltyError::PointsOverflow)?;
        let due_total = Money::new(earned, currency)
            .share(refunded_total.amount, order.amount.amount)?
            .amount;
        let due_total = u64::try_from(due_total).map_err(|_| LoyaltyError::PointsOverflow)?;
        let points_due = due_total.saturating_sub(order.points_due);
        let unspent = order
            .lot
            .and_then(|n| self.lot(n))
            .filter(|l| !l.expired)
            .map_or(0, |l| l.remaining);
        let points_reversed = points_due.min(unspent);
        Ok(vec![LoyaltyPointsReversed {
            order_id: c.order_id,
            order_amount: order.amount,
            refunded_amount: c.refunded_amount,
            refunded_total,
            points_due,
            points_reversed,
            uncollectable: points_due - points_reversed,
            lot: order.lot,
            balance: self.balance.saturating_sub(points_reversed),
            at: c.at,
        }
        .into()])
    }

    fn expire(&self, now: DateTime<Utc>) -> Vec<LoyaltyEvent> {
        let lots: Vec<LotPoints> = (0u32..)
            .zip(&self.lots)
            .filter(|(_, l)| !l.expired && l.remaining > 0 && l.expires_at <= now)
            .map(|(lot, l)| LotPoints {
                lot,
                points: l.remaining,
            })
            .collect();
        if lots.is_empty() {
            return Vec::new();
        }
        let points: u64 = lots.iter().map(|l| l.points).sum();
        vec![LoyaltyPointsExpired {
            lots,
            points,
            balance: self.balance.saturating_sub(points),
            now,
        }
        .into()]
    }

    /// Spend of the 12 months up to `now`: order amounts earned in that window less their
    /// refunds.
    fn rolling_spend(&self, currency: Currency, now: DateTime<Utc>) -> Result<Money, LoyaltyError> {
        let since = now
            .checked_sub_months(LOT_LIFETIME)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut spend = Money::zero(currency);
        for o in self.orders.values() {
            if o.earned_at > since && o.earned_at <= now {
                spend = spend.checked_add(o.amount.checked_sub(o.refunded)?)?;
            }
        }
        Ok(spend)
    }

    fn recalculate_tier(
        &self,
        currency: Currency,
        c: RecalculateTier,
    ) -> Result<Vec<LoyaltyEvent>, LoyaltyError> {
        let thresholds = c.thresholds.unwrap_or_default();
        let TierThresholds {
            silver,
            gold,
            platinum,
        } = thresholds;
        if !(0 < silver && silver < gold && gold < platinum) {
            return Err(LoyaltyError::InvalidTierThresholds {
                silver,
                gold,
                platinum,
            });
        }
        let rolling_spend = self.rolling_spend(currency, c.now)?;
        let to = thresholds.tier_for(rolling_spend.amount);
        if to == self.tier {
            return Ok(Vec::new());
        }
        Ok(vec![LoyaltyTierChanged {
            from: self.tier,
            to,
            rolling_spend,
            thresholds,
            at: c.now,
        }
        .into()])
    }
}
