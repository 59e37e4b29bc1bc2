use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PromotionTerms;
use crate::{CustomerId, OrderId};

/// State of one promotion, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub terms: Option<PromotionTerms>,
    pub deactivated: bool,
    /// Orders holding a redemption, with the customer they were reserved for.
    pub redemptions: BTreeMap<OrderId, CustomerId>,
}

impl Promotion {
    pub fn exists(&self) -> bool {
        self.terms.is_some()
    }

    /// Redemptions currently held (reserved and not released).
    pub fn uses(&self) -> u32 {
        u32::try_from(self.redemptions.len()).unwrap_or(u32::MAX)
    }

    /// Redemptions currently held by one customer.
    pub fn uses_by(&self, customer: CustomerId) -> u32 {
        let n = self
            .redemptions
            .values()
            .filter(|c| **c == customer)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}
