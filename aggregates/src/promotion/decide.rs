use super::*;
use crate::{Currency, Decider};

impl Decider for Promotion {
    type Command = PromotionCommand;
    type Event = PromotionEvent;
    type Error = PromotionError;

    fn decide(&self, command: PromotionCommand) -> Result<Vec<PromotionEvent>, PromotionError> {
        match command {
            PromotionCommand::CreatePromotion(c) => {
                if self.exists() {
                    return Err(PromotionError::AlreadyExists);
                }
                let code = PromotionCode::parse(&c.code)
                    .map_err(|_| PromotionError::InvalidCode(c.code.clone()))?;
                let mut terms = PromotionTerms {
                    promotion_id: c.promotion_id,
                    code,
                    kind: c.kind,
                    minimum_subtotal: c.minimum_subtotal,
                    starts_at: c.starts_at,
                    ends_at: c.ends_at,
                    usage_limit: c.usage_limit,
                    per_customer_limit: c.per_customer_limit,
                    stackable: c.stackable,
                    target: c.target,
                };
                validate(&mut terms)?;
                Ok(vec![PromotionCreated { terms, at: c.at }.into()])
            }
            PromotionCommand::ReserveRedemption(c) => {
                let terms = self.terms.as_ref().ok_or(PromotionError::NotFound)?;
                // A retried reservation (same order) must not count twice.
                if let Some(holder) = self.redemptions.get(&c.order_id) {
                    return if *holder == c.customer_id {
                        Ok(vec![])
                    } else {
                        Err(PromotionError::OrderReservedForAnotherCustomer(*holder))
                    };
                }
                if self.deactivated {
                    return Err(PromotionError::Deactivated);
                }
                terms.check_window(c.at).map_err(|e| match e {
                    OutsideWindow::NotYetActive { starts_at } => {
                        PromotionError::NotYetActive { starts_at }
                    }
                    OutsideWindow::Expired { ended_at } => PromotionError::Expired { ended_at },
                })?;
                let uses = self.uses();
                if let Some(limit) = terms.usage_limit {
                    if uses >= limit {
                        return Err(PromotionError::UsageLimitReached { limit });
                    }
                }
                let customer_uses = self.uses_by(c.customer_id);
                if let Some(limit) = terms.per_customer_limit {
                    if customer_uses >= limit {
                        return Err(PromotionError::CustomerLimitReached { limit });
                    }
                }
                Ok(vec![PromotionRedemptionReserved {
                    promotion_id: terms.promotion_id,
                    code: terms.code.clone(),
                    order_id: c.order_id,
                    customer_id: c.customer_id,
                    uses: uses.saturating_add(1),
                    customer_uses: customer_uses.saturating_add(1),
                    at: c.at,
                }
                .into()])
            }
            PromotionCommand::ReleaseRedemption(c) => {
                let terms = self.terms.as_ref().ok_or(PromotionError::NotFound)?;
                let Some(customer_id) = self.redemptions.get(&c.order_id).copied() else {
                    return Ok(vec![]);
                };
                Ok(vec![PromotionRedemptionReleased {
                    promotion_id: terms.promotion_id,
                    code: terms.code.clone(),
                    order_id: c.order_id,
                    customer_id,
                    uses: self.uses().saturating_sub(1),
                    customer_uses: self.uses_by(customer_id).saturating_sub(1),
                    at: c.at,
                }
                .into()])
            }
            PromotionCommand::DeactivatePromotion { at } => {
                let terms = self.terms.as_ref().ok_or(PromotionError::NotFound)?;
                if self.deactivated {
                    return Err(PromotionError::Deactivated);
                }
                Ok(vec![PromotionDeactivated {
                    promotion_id: terms.promotion_id,
                    code: terms.code.clone(),
                    uses: self.uses(),
                    at,
                }
                .into()])
            }
        }
    }

    fn evolve(&mut self, event: &PromotionEvent) {
        match event {
            PromotionEvent::PromotionCreated(e) => self.terms = Some(e.terms.clone()),
            PromotionEvent::PromotionRedemptionReserved(e) => {
                self.redemptions.insert(e.order_id, e.customer_id);
            }
            PromotionEvent::PromotionRedemptionReleased(e) => {
                self.redemptions.remove(&e.order_id);
            }
            PromotionEvent::PromotionDeactivated(_) => self.deactivated = true,
        }
    }
}

/// Checks new terms and puts tiers in ascending threshold order.
fn validate(terms: &mut PromotionTerms) -> Result<(), PromotionError> {
    let check_percentage = |bp: u32| {
        if (1..=10_000).contains(&bp) {
            Ok(())
        } else {
            Err(PromotionError::InvalidPercentage(bp))
        }
    };
    match &mut terms.kind {
        DiscountKind::Percentage { basis_points } => check_percentage(*basis_points)?,
        DiscountKind::FixedAmount { .. } | DiscountKind::FreeShipping => {}
        DiscountKind::BuyXGetY { buy, get } => {
            if *buy == 0 || *get == 0 {
                return Err(PromotionError::InvalidBuyXGetY {
                    buy: *buy,
                    get: *get,
                });
            }
        }
        DiscountKind::Tiered { tiers } => {
            if tiers.is_empty() {
                return Err(PromotionError::NoTiers);
            }
            tiers.sort_by_key(|t| t.threshold.amount);
            for pair in tiers.windows(2) {
                if pair[0].threshold.amount == pair[1].threshold.amount {
                    return Err(PromotionError::DuplicateTierThreshold(pair[1].threshold));
                }
            }
            for tier in tiers.iter() {
                if let TierReward::Percentage { basis_points } = tier.reward {
                    check_percentage(basis_points)?;
                }
            }
        }
    }
    let amounts = terms.amounts();
    let currency: Option<Currency> = amounts.first().map(|m| m.currency);
    for amount in amounts {
        if let Some(expected) = currency {
            if amount.currency != expected {
                return Err(PromotionError::MixedCurrencies {
                    expected,
                    found: amount.currency,
                });
            }
        }
        if !amount.is_positive() {
            return Err(PromotionError::NonPositiveAmount(amount));
        }
    }
    if terms.ends_at.is_some_and(|end| end <= terms.starts_at) {
        return Err(PromotionError::EmptyValidityWindow);
    }
    if terms.usage_limit == Some(0) || terms.per_customer_limit == Some(0) {
        return Err(PromotionError::ZeroUsageLimit);
    }
    if terms.target.categories.iter().any(|c| c.trim().is_empty()) {
        return Err(PromotionError::EmptyTargetCategory);
    }
    Ok(())
}
