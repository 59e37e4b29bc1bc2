use super::*;

// ---- receipts and adjustments ----

#[test]
fn receiving_creates_the_warehouse_entry_with_its_levels() {
    let events = when(vec![], receive("BER-1", 10));
    let [StockEvent::StockReceived(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    let ber = e.levels.warehouses[&wh("BER-1")];
    assert_eq!(ber.on_hand, Quantity(10));
    assert_eq!(ber.available, Quantity(10));
    assert_eq!(e.levels.available, 10);
}

#[test]
fn receiving_another_sku_is_refused() {
    Given::with(())
        .given(history(vec![receive("BER-1", 10)]))
        .when(StockCommand::ReceiveStock(ReceiveStock {
            sku: Sku::parse("OTHER").unwrap(),
            warehouse: wh("BER-1"),
            quantity: Quantity(1),
            at: t(0),
        }))
        .then_expect_error(StockError::SkuMismatch {
            expected: sku(),
            got: Sku::parse("OTHER").unwrap(),
        });
}

#[test]
fn receiving_nothing_is_refused() {
    Given::with(())
        .given_no_previous_events()
        .when(receive("BER-1", 0))
        .then_expect_error(StockError::ZeroQuantity);
}

#[test]
fn on_hand_beyond_the_counter_range_is_refused() {
    Given::with(())
        .given(history(vec![receive("BER-1", u32::MAX)]))
        .when(receive("BER-1", 1))
        .then_expect_error(StockError::QuantityOverflow);
}

#[test]
fn adjusting_untracked_stock_is_refused() {
    Given::with(())
        .given_no_previous_events()
        .when(adjust("BER-1", -1, AdjustmentReason::Damaged))
        .then_expect_error(StockError::NotTracked);
}

#[test]
fn adjusting_an_unknown_warehouse_is_refused() {
    Given::with(())
        .given(history(vec![receive("BER-1", 10)]))
        .when(adjust("HAM-1", 3, AdjustmentReason::Found))
        .then_expect_error(StockError::UnknownWarehouse(wh("HAM-1")));
}

#[test]
fn a_zero_adjustment_is_refused() {
    Given::with(())
        .given(history(vec![receive("BER-1", 10)]))
        .when(adjust("BER-1", 0, AdjustmentReason::CountCorrection))
        .then_expect_error(StockError::ZeroQuantity);
}

#[test]
fn damaged_stock_cannot_increase_on_hand() {
    Given::with(())
        .given(history(vec![receive("BER-1", 10)]))
        .when(adjust("BER-1", 2, AdjustmentReason::Damaged))
        .then_expect_error(StockError::ReasonContradictsDelta {
            reason: AdjustmentReason::Damaged,
            delta: 2,
        });
}

#[test]
fn adjustments_never_take_on_hand_below_reserved() {
    Given::with(())
        .given(history(vec![receive("BER-1", 10), reserve(1, 8, &[])]))
        .when(adjust("BER-1", -3, AdjustmentReason::Lost))
        .then_expect_error(StockError::BelowReserved {
            warehouse: wh("BER-1"),
            would_be: 7,
            reserved: Quantity(8),
        });
}

#[test]
fn a_count_correction_down_to_reserved_is_allowed() {
    let events = when(
        vec![receive("BER-1", 10), reserve(1, 8, &[])],
        adjust("BER-1", -2, AdjustmentReason::CountCorrection),
    );
    let [StockEvent::StockAdjusted(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.levels.warehouses[&wh("BER-1")].on_hand, Quantity(8));
    assert_eq!(e.levels.warehouses[&wh("BER-1")].available, Quantity(0));
}

// ---- reservations ----

#[test]
fn the_first_warehouse_that_can_fill_the_line_alone_takes_it() {
    // Warehouse-id order: BER-1 (3) cannot fill 5 alone, HAM-1 (6) can.
    let events = when(
        vec![receive("BER-1", 3), receive("HAM-1", 6)],
        reserve(1, 5, &[]),
    );
    let [StockEvent::StockReserved(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.allocation, vec![alloc("HAM-1", 5)]);
    assert_eq!(e.backordered, Quantity(0));
    assert_eq!(e.levels.warehouses[&wh("HAM-1")].reserved, Quantity(5));
    assert_eq!(e.levels.warehouses[&wh("HAM-1")].available, Quantity(1));
    assert_eq!(e.levels.available, 4);
}

#[test]
fn the_preference_order_of_the_command_comes_first() {
    let events = when(
        vec![receive("BER-1", 10), receive("HAM-1", 10)],
        reserve(1, 5, &["HAM-1"]),
    );
    let [StockEvent::StockReserved(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.allocation, vec![alloc("HAM-1", 5)]);
}

#[test]
fn a_line_no_warehouse_can_fill_alone_is_split_in_preference_order() {
    let events = when(
        vec![
            receive("BER-1", 3),
            receive("HAM-1", 2),
            receive("MUC-1", 4),
        ],
        reserve(1, 8, &["MUC-1", "UNKNOWN", "MUC-1"]),
    );
    let [StockEvent::StockReserved(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(
        e.allocation,
        vec![alloc("MUC-1", 4), alloc("BER-1", 3), alloc("HAM-1", 1)]
    );
    assert_eq!(e.levels.available, 1);
}

#[test]
fn a_second_reservation_for_the_same_order_changes_nothing() {
    Given::with(())
        .given(history(vec![receive("BER-1", 10), reserve(1, 4, &[])]))
        .when(reserve(1, 4, &[]))
        .then_expect_events(vec![]);
}

#[test]
fn reserving_untracked_stock_is_refused() {
    Given::with(())
        .given_no_previous_events()
        .when(reserve(1, 1, &[]))
        .then_expect_error(StockError::NotTracked);
}

#[test]
fn reserving_nothing_is_refused() {
    Given::with(())
        .given(history(vec![receive("BER-1", 10)]))
        .when(reserve(1, 0, &[]))
        .then_expect_error(StockError::ZeroQuantity);
}

#[test]
fn a_reservation_must_expire_in_the_future() {
    let StockCommand::ReserveStock(mut c) = reserve(1, 1, &[]) else {
        unreachable!()
    };
    c.expires_at = c.at;
    Given::with(())
        .given(history(vec![receive("BER-1", 10)]))
        .when(StockCommand::ReserveStock(c))
        .then_expect_error(StockError::ExpiryNotInFuture {
            expires_at: t(2),
            at: t(2),
        });
}

#[test]
fn short_stock_without_backorders_is_refused_naming_what_is_available() {
    Given::with(())
        .given(history(vec![receive("BER-1", 3), receive("HAM-1", 2)]))
        .when(reserve(1, 6, &[]))
        .then_expect_error(StockError::InsufficientStock {
            requested: Quantity(6),
            available: Quantity(5),
            backorder_allowance: Quantity(0),
        });
}

#[test]
fn a_shortfall_within_the_backorder_limit_is_backordered() {
    let events = when(
        vec![receive("BER-1", 3), backorder_limit(5)],
        reserve(1, 7, &[]),
    );
    let [StockEvent::StockReserved(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.allocation, vec![alloc("BER-1", 3)]);
    assert_eq!(e.backordered, Quantity(4));
    assert_eq!(e.levels.backordered, Quantity(4));
    assert_eq!(e.levels.available, -4);
}

#[test]
fn a_shortfall_beyond_the_remaining_backorder_limit_is_refused() {
    Given::with(())
        .given(history(vec![
            receive("BER-1", 3),
            backorder_limit(5),
            reserve(1, 7, &[]),
        ]))
        .when(reserve(2, 2, &[]))
        .then_expect_error(StockError::InsufficientStock {
            requested: Quantity(2),
            available: Quantity(0),
            backorder_allowance: Quantity(1),
        });
}

#[test]
fn the_backorder_limit_cannot_drop_below_what_is_backordered() {
    Given::with(())
        .given(history(vec![
            receive("BER-1", 3),
            backorder_limit(5),
            reserve(1, 7, &[]),
        ]))
        .when(backorder_limit(3))
        .then_expect_error(StockError::BackorderLimitBelowOutstanding {
            limit: Quantity(3),
            backordered: Quantity(4),
        });
}

#[test]
fn received_stock_fills_backorders_oldest_first() {
    let events = when(
        vec![
            receive("BER-1", 1),
            backorder_limit(10),
            reserve(1, 3, &[]),
            reserve(2, 2, &[]),
        ],
        receive("HAM-1", 3),
    );
    let fills: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StockEvent::StockBackorderFilled(f) => {
                Some((f.order_id, f.allocation.clone(), f.still_backordered))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        fills,
        vec![
            (order(1), vec![alloc("HAM-1", 2)], Quantity(0)),
            (order(2), vec![alloc("HAM-1", 1)], Quantity(1)),
        ]
    );
    let StockEvent::StockBackorderFilled(last) = events.last().unwrap() else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(last.levels.backordered, Quantity(1));
    assert_eq!(last.levels.available, -1);
}

// ---- release, commit, expiry ----

#[test]
fn releasing_frees_the_allocated_units() {
    let events = when(vec![receive("BER-1", 10), reserve(1, 4, &[])], release(1));
    let [StockEvent::StockReservationReleased(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.freed, vec![alloc("BER-1", 4)]);
    assert_eq!(e.levels.available, 10);
}

#[test]
fn releasing_twice_or_an_unknown_reservation_is_a_no_op() {
    Given::with(())
        .given(history(vec![
            receive("BER-1", 10),
            reserve(1, 4, &[]),
            release(1),
        ]))
        .when(release(1))
        .then_expect_events(vec![]);
    Given::with(())
        .given(history(vec![receive("BER-1", 10)]))
        .when(release(9))
        .then_expect_events(vec![]);
}

#[test]
fn committing_lowers_on_hand_and_reserved() {
    let events = when(
        vec![receive("BER-1", 3), receive("HAM-1", 2), reserve(1, 4, &[])],
        commit(1),
    );
    let [StockEvent::StockReservationCommitted(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.shipped, vec![alloc("BER-1", 3), alloc("HAM-1", 1)]);
    assert_eq!(e.levels.on_hand, 1);
    assert_eq!(e.levels.reserved, 0);
    assert_eq!(e.levels.warehouses[&wh("HAM-1")].on_hand, Quantity(1));
}

#[test]
fn committing_an_unknown_reservation_is_refused() {
    Given::with(())
        .given(history(vec![receive("BER-1", 10)]))
        .when(commit(1))
        .then_expect_error(StockError::ReservationNotFound(order(1)));
}

#[test]
fn only_an_active_reservation_can_be_committed() {
    Given::with(())
        .given(history(vec![
            receive("BER-1", 10),
            reserve(1, 4, &[]),
            release(1),
        ]))
        .when(commit(1))
        .then_expect_error(StockError::ReservationNotActive(order(1)));
}

#[test]
fn a_reservation_still_waiting_for_backorders_cannot_ship() {
    Given::with(())
        .given(history(vec![
            receive("BER-1", 1),
            backorder_limit(5),
            reserve(1, 3, &[]),
        ]))
        .when(commit(1))
        .then_expect_error(StockError::ReservationBackordered {
            order_id: order(1),
            backordered: Quantity(2),
        });
}

#[test]
fn a_reservation_expires_only_after_its_expiry() {
    Given::with(())
        .given(history(vec![receive("BER-1", 10), reserve(1, 4, &[])]))
        .when(expire(1, t(29)))
        .then_expect_error(StockError::ReservationNotExpired {
            order_id: order(1),
            expires_at: t(30),
            now: t(29),
        });
    let events = when(
        vec![receive("BER-1", 10), reserve(1, 4, &[])],
        expire(1, t(30)),
    );
    let [StockEvent::StockReservationExpired(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.levels.available, 10);
}

#[test]
fn a_committed_reservation_cannot_expire() {
    Given::with(())
        .given(history(vec![
            receive("BER-1", 10),
            reserve(1, 4, &[]),
            commit(1),
        ]))
        .when(expire(1, t(60)))
        .then_expect_error(StockError::ReservationNotActive(order(1)));
}

// ---- low-stock alerts ----

fn crossings(events: &[StockEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, StockEvent::LowStockThresholdCrossed(_)))
        .count()
}

#[test]
fn low_stock_is_announced_once_until_a_restock_lifts_it_above_the_threshold() {
    let mut given = vec![threshold(5), receive("BER-1", 10)];
    // 10 -> 5: at the threshold, announced.
    let events = when(given.clone(), reserve(1, 5, &[]));
    assert_eq!(crossings(&events), 1);
    let StockEvent::LowStockThresholdCrossed(e) = &events[1] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!((e.threshold, e.levels.available), (Quantity(5), 5));

    // 5 -> 3: still low, not announced again.
    given.push(reserve(1, 5, &[]));
    assert_eq!(crossings(&when(given.clone(), reserve(2, 2, &[]))), 0);

    // Restocked above the threshold, then down again: announced again.
    given.push(reserve(2, 2, &[]));
    given.push(receive("HAM-1", 10));
    assert!(!state_after(given.clone()).low_stock_alerted);
    assert_eq!(crossings(&when(given, reserve(3, 10, &[]))), 1);
}

#[test]
fn setting_a_threshold_above_available_announces_at_once() {
    let events = when(vec![receive("BER-1", 3)], threshold(5));
    assert_eq!(crossings(&events), 1);
    assert!(state_after(vec![receive("BER-1", 3), threshold(5)]).low_stock_alerted);
}

#[test]
fn a_threshold_for_another_sku_is_refused() {
    Given::with(())
        .given(history(vec![receive("BER-1", 3)]))
        .when(StockCommand::SetLowStockThreshold(SetLowStockThreshold {
            sku: Sku::parse("OTHER").unwrap(),
            threshold: None,
            at: t(0),
        }))
        .then_expect_error(StockError::SkuMismatch {
            expected: sku(),
            got: Sku::parse("OTHER").unwrap(),
        });
}

#[test]
fn the_published_reservation_example_is_what_the_decider_produces() {
    let state = state_after(vec![
        receive("BER-1", 40),
        receive("HAM-1", 20),
        reserve(7, 5, &["BER-1"]),
        adjust("BER-1", -2, AdjustmentReason::Damaged),
    ]);
    let example = StockReserved::example();
    let events = state
        .decide(StockCommand::ReserveStock(ReserveStock {
            order_id: example.order_id,
            quantity: example.quantity,
            preferred_warehouses: example.preferred_warehouses.clone(),
            expires_at: example.expires_at,
            at: example.at,
        }))
        .unwrap();
    assert_eq!(events, vec![example.into()]);
}

// ---- edited reservations ----

fn change(n: u128, quantity: u32) -> StockCommand {
    StockCommand::ChangeReservation(ChangeReservation {
        order_id: order(n),
        quantity: Quantity(quantity),
        at: t(4),
    })
}

#[test]
fn a_raised_reservation_takes_the_order_s_warehouse_first() {
    let given = vec![
        receive("BER-1", 5),
        receive("HAM-1", 5),
        reserve(1, 2, &["HAM-1"]),
    ];
    let events = when(given.clone(), change(1, 4));
    let [StockEvent::StockReservationChanged(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.previous_quantity, Quantity(2));
    assert_eq!(e.allocation, vec![alloc("HAM-1", 4)]);
    assert_eq!(e.levels.reserved, 4);
    assert_eq!(e.levels.available, 6);
    let state = state_after([given, vec![change(1, 4)]].concat());
    let r = state.active_reservation(&order(1)).unwrap();
    assert_eq!(r.quantity, Quantity(4));
    assert_eq!(r.allocation[&wh("HAM-1")], Quantity(4));
}

#[test]
fn a_lowered_reservation_frees_the_smallest_holding_first() {
    let given = vec![receive("BER-1", 1), receive("HAM-1", 5), reserve(1, 6, &[])];
    let events = when(given, change(1, 5));
    let [StockEvent::StockReservationChanged(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.allocation, vec![alloc("HAM-1", 5)]);
    assert_eq!(e.levels.warehouses[&wh("BER-1")].available, Quantity(1));
    assert_eq!(e.levels.reserved, 5);
}

#[test]
fn a_raise_beyond_free_stock_is_refused_unless_backorderable() {
    let given = vec![receive("BER-1", 3), reserve(1, 2, &[])];
    Given::with(())
        .given(history(given.clone()))
        .when(change(1, 5))
        .then_expect_error(StockError::InsufficientStock {
            requested: Quantity(3),
            available: Quantity(1),
            backorder_allowance: Quantity(0),
        });
    let events = when([given, vec![backorder_limit(5)]].concat(), change(1, 5));
    let [StockEvent::StockReservationChanged(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.allocation, vec![alloc("BER-1", 3)]);
    assert_eq!(e.backordered, Quantity(2));
    assert_eq!(e.levels.available, -2);
}

#[test]
fn changing_a_settled_reservation_or_to_the_same_quantity() {
    let given = vec![receive("BER-1", 3), reserve(1, 2, &[])];
    assert!(when(given.clone(), change(1, 2)).is_empty());
    Given::with(())
        .given(history([given.clone(), vec![release(1)]].concat()))
        .when(change(1, 3))
        .then_expect_error(StockError::ReservationNotActive(order(1)));
    Given::with(())
        .given(history(given))
        .when(change(1, 0))
        .then_expect_error(StockError::ZeroQuantity);
}
