//! Random command sequences keep the balance equal to the unexpired lots and never negative.

use proptest::prelude::*;

use super::*;

fn a_command() -> impl Strategy<Value = LoyaltyCommand> {
    prop_oneof![
        (0u128..6, 1i64..80_000, 0i64..500).prop_map(|(n, a, d)| earn(n, a, d)),
        (0u128..6, 0u64..400, 0i64..500).prop_map(|(n, p, d)| hold(10 + n, p, d)),
        (0u128..6).prop_map(|n| commit(10 + n)),
        (0u128..6, 0i64..800).prop_map(|(n, d)| give_back(10 + n, d)),
        (0u128..6, 1i64..40_000).prop_map(|(n, a)| reverse(n, a)),
        (0i64..900).prop_map(|d| expire(days(d))),
        (0i64..900).prop_map(|d| recalculate(days(d))),
        (0u128..3, 0u64..300, 0i64..500).prop_map(|(n, p, d)| bonus(n, p, d)),
        (0u128..3, 1u64..300).prop_map(|(n, p)| referral(n, p)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_balance_is_never_negative_and_equals_the_unexpired_lots(
        commands in prop::collection::vec(a_command(), 1..50)
    ) {
        let mut state = state_after(vec![enroll()]);
        for command in commands {
            let Ok(events) = state.decide(command) else { continue };
            for e in &events {
                state.evolve(e);
                prop_assert_eq!(state.balance, unexpired_remaining(&state));
                for lot in &state.lots {
                    prop_assert!(lot.remaining <= lot.points);
                    prop_assert!(!lot.expired || lot.remaining == 0);
                }
                for o in state.orders.values() {
                    prop_assert!(o.points_due <= o.points);
                    prop_assert!(o.refunded.amount <= o.amount.amount);
                }
                // u64 cannot go negative; what must hold is that no subtraction ever
                // saturated, i.e. every event's balance agrees with the lots (above).
            }
        }
    }
}
