//! Random command sequences keep the stock invariants.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const WAREHOUSES: [&str; 3] = ["BER-1", "HAM-1", "MUC-1"];

fn a_warehouse() -> impl Strategy<Value = &'static str> {
    prop::sample::select(WAREHOUSES.to_vec())
}

fn a_command() -> impl Strategy<Value = StockCommand> {
    let reason = prop::sample::select(vec![
        AdjustmentReason::Damaged,
        AdjustmentReason::Lost,
        AdjustmentReason::Found,
        AdjustmentReason::CountCorrection,
    ]);
    prop_oneof![
        (a_warehouse(), 0u32..15).prop_map(|(w, q)| receive(w, q)),
        (a_warehouse(), -10i64..10, reason).prop_map(|(w, d, r)| adjust(w, d, r)),
        (
            0u128..6,
            0u32..12,
            prop::collection::vec(a_warehouse(), 0..3)
        )
            .prop_map(|(n, q, preferred)| reserve(n, q, &preferred)),
        (0u128..6).prop_map(release),
        (0u128..6).prop_map(commit),
        (0u128..6, 0i64..60).prop_map(|(n, m)| expire(n, t(m))),
        (0u32..8).prop_map(backorder_limit),
        (0u32..10).prop_map(threshold),
    ]
}

fn check_invariants(state: &Stock) -> Result<(), TestCaseError> {
    let levels = &state.levels;
    let mut held: BTreeMap<WarehouseId, u64> = BTreeMap::new();
    let mut backordered = 0u64;
    for r in state.reservations.values() {
        if r.status == ReservationStatus::Active {
            let allocated: u64 = r.allocation.values().map(|q| u64::from(q.get())).sum();
            prop_assert_eq!(
                allocated + u64::from(r.backordered.get()),
                u64::from(r.quantity.get())
            );
            for (w, q) in &r.allocation {
                *held.entry(w.clone()).or_default() += u64::from(q.get());
            }
            backordered += u64::from(r.backordered.get());
        } else {
            prop_assert!(r.allocation.is_empty() && r.backordered == Quantity::ZERO);
        }
    }
    for (w, l) in &levels.warehouses {
        prop_assert!(
            l.reserved <= l.on_hand,
            "{w}: reserved above on-hand: {l:?}"
        );
        prop_assert_eq!(l.available.get(), l.on_hand.get() - l.reserved.get());
        prop_assert_eq!(
            u64::from(l.reserved.get()),
            held.get(w).copied().unwrap_or(0)
        );
    }
    prop_assert_eq!(u64::from(levels.backordered.get()), backordered);
    prop_assert!(levels.backordered <= state.backorder_limit);
    prop_assert!(levels.available >= -i64::from(state.backorder_limit.get()));
    let on_hand: u64 = levels
        .warehouses
        .values()
        .map(|l| u64::from(l.on_hand.get()))
        .sum();
    let reserved: u64 = levels
        .warehouses
        .values()
        .map(|l| u64::from(l.reserved.get()))
        .sum();
    prop_assert_eq!(levels.on_hand, on_hand);
    prop_assert_eq!(levels.reserved, reserved);
    prop_assert_eq!(
        levels.available,
        on_hand as i64 - reserved as i64 - i64::from(levels.backordered.get())
    );
    Ok(())
}

/// Once a command's events are all applied, free stock and waiting backorders never
/// coexist: free units go to backorders first.
fn check_backorders_are_served(state: &Stock) -> Result<(), TestCaseError> {
    let levels = &state.levels;
    let free: u64 = levels
        .warehouses
        .values()
        .map(|l| u64::from(l.available.get()))
        .sum();
    let backordered = levels.backordered.get();
    prop_assert!(
        free == 0 || backordered == 0,
        "free {free} while {backordered} backordered"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_command_sequences_keep_stock_consistent(
        commands in prop::collection::vec(a_command(), 1..60)
    ) {
        let mut state = Stock::default();
        // Alerts: after a crossing, the next one needs available to have risen above.
        let mut alert_armed = true;
        for command in commands {
            let Ok(events) = state.decide(command) else { continue };
            for e in &events {
                if let StockEvent::LowStockThresholdCrossed(c) = e {
                    prop_assert!(alert_armed, "second crossing without recovery");
                    prop_assert!(c.levels.available <= i64::from(c.threshold.get()));
                    alert_armed = false;
                }
                state.evolve(e);
                let above = state
                    .low_stock_threshold
                    .is_none_or(|t| state.levels.available > i64::from(t.get()));
                if above {
                    alert_armed = true;
                }
                check_invariants(&state)?;
            }
            check_backorders_are_served(&state)?;
        }
    }
}
