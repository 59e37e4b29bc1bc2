//! Invariants over random command sequences.

use proptest::prelude::*;

use super::fixtures::*;

#[derive(Debug, Clone)]
enum Step {
    Ship(u128, u32, u32),
    Deliver(u128),
    ChangeQuantity(bool, u32),
    Captured(i64),
    Refund(u128, i64),
    Return(u128, u32, u32),
    Cancel,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u128..5, 0u32..4, 0u32..3).prop_map(|(id, a, b)| Step::Ship(id, a, b)),
        2 => (0u128..5).prop_map(Step::Deliver),
        1 => (any::<bool>(), 0u32..5).prop_map(|(first, n)| Step::ChangeQuantity(first, n)),
        2 => (-500i64..9_000).prop_map(Step::Captured),
        2 => (0u128..6, -100i64..5_000).prop_map(|(id, a)| Step::Refund(id, a)),
        1 => (0u128..4, 0u32..3, 0u32..2).prop_map(|(id, a, b)| Step::Return(id, a, b)),
        1 => Just(Step::Cancel),
    ]
}

fn lines(tshirts: u32, mugs: u32) -> Vec<LineQuantity> {
    let mut lines = Vec::new();
    if tshirts > 0 {
        lines.push(lq(tshirt(), tshirts));
    }
    if mugs > 0 {
        lines.push(lq(mug(), mugs));
    }
    lines
}

fn command(step: Step) -> OrderCommand {
    match step {
        Step::Ship(id, a, b) => ship(shipment_id(id), lines(a, b)),
        Step::Deliver(id) => deliver(shipment_id(id)),
        Step::ChangeQuantity(first, n) => change_quantity(if first { tshirt() } else { mug() }, n),
        Step::Captured(total) => captured(eur(total)),
        Step::Refund(id, amount) => refund(id, eur(amount), None),
        Step::Return(id, a, b) => request_return(return_id(id), lines(a, b), None, t()),
        Step::Cancel => OrderCommand::CancelOrder(CancelOrder {
            reason: CancellationReason::CustomerRequested,
            at: t(),
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn shipped_never_exceeds_ordered_and_refunds_never_exceed_paid(
        steps in proptest::collection::vec(step(), 0..40),
    ) {
        let mut state = Order::default();
        for e in confirmed() {
            state.evolve(&e);
        }
        for s in steps {
            if let Ok(events) = state.decide(command(s)) {
                for e in &events {
                    state.evolve(e);
                }
            }
            let d = state.details.clone().expect("placed");
            for line in &d.lines {
                let sku = &line.line.sku;
                prop_assert!(state.shipped_of(sku) <= line.line.quantity, "over-shipped {sku}");
                prop_assert!(state.delivered_of(sku) <= state.shipped_of(sku));
                prop_assert!(state.returned_of(sku) <= state.delivered_of(sku));
            }
            prop_assert!(d.refunded.amount >= 0);
            prop_assert!(d.refunded.amount <= d.paid.amount, "refunded {:?} > paid {:?}", d.refunded, d.paid);
            let fully = d.lines.iter().all(|l| state.delivered_of(&l.line.sku) == l.line.quantity);
            prop_assert_eq!(state.fully_delivered, fully);
        }
    }
}
