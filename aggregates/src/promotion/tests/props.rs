//! Property: whatever the sequence of reservations and releases, the uses held never
//! exceed the total and per-customer limits, and the counts in the events match.

use proptest::prelude::*;

use super::*;
use crate::Decider;

#[derive(Debug, Clone)]
enum Step {
    Reserve { order: u128, customer: u128 },
    Release { order: u128 },
    Deactivate,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u128..12, 0u128..4).prop_map(|(order, customer)| Step::Reserve { order, customer }),
        3 => (0u128..12).prop_map(|order| Step::Release { order }),
        1 => Just(Step::Deactivate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn uses_never_exceed_the_limits(
        usage_limit in 1u32..8,
        per_customer_limit in 1u32..4,
        steps in proptest::collection::vec(step(), 0..60),
    ) {
        let mut state = Promotion::default();
        state.evolve(&created_with(|t| {
            t.usage_limit = Some(usage_limit);
            t.per_customer_limit = Some(per_customer_limit);
        }));
        for s in steps {
            let command = match s {
                Step::Reserve { order: o, customer: c } => reserve(o, c, now()),
                Step::Release { order: o } => PromotionCommand::ReleaseRedemption(ReleaseRedemption {
                    order_id: order(o),
                    at: now(),
                }),
                Step::Deactivate => PromotionCommand::DeactivatePromotion { at: now() },
            };
            let Ok(events) = state.decide(command) else { continue };
            for event in &events {
                state.evolve(event);
                match event {
                    PromotionEvent::PromotionRedemptionReserved(e) => {
                        prop_assert_eq!(e.uses, state.uses());
                        prop_assert_eq!(e.customer_uses, state.uses_by(e.customer_id));
                    }
                    PromotionEvent::PromotionRedemptionReleased(e) => {
                        prop_assert_eq!(e.uses, state.uses());
                        prop_assert_eq!(e.customer_uses, state.uses_by(e.customer_id));
                    }
                    _ => {}
                }
            }
            prop_assert!(state.uses() <= usage_limit);
            for c in 0..4 {
                prop_assert!(state.uses_by(customer(c)) <= per_customer_limit);
            }
        }
    }
}
