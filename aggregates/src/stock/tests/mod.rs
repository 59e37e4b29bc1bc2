use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::stock::event::example_time;
use crate::{Decider, EventExample, OrderId, Quantity, Sku, WarehouseId};

mod properties;
mod rules;

type Given = TestFramework<Stock>;

fn sku() -> Sku {
    Sku::parse("TSHIRT-RED-M").unwrap()
}

fn wh(code: &str) -> WarehouseId {
    WarehouseId::new(code)
}

fn t(minutes: i64) -> DateTime<Utc> {
    example_time() + Duration::minutes(minutes)
}

fn order(n: u128) -> OrderId {
    OrderId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0000 + n,
    ))
}

fn receive(warehouse: &str, quantity: u32) -> StockCommand {
    StockCommand::ReceiveStock(ReceiveStock {
        sku: sku(),
        warehouse: wh(warehouse),
        quantity: Quantity(quantity),
        at: t(0),
    })
}

fn adjust(warehouse: &str, delta: i64, reason: AdjustmentReason) -> StockCommand {
    StockCommand::AdjustStock(AdjustStock {
        warehouse: wh(warehouse),
        delta,
        reason,
        at: t(1),
    })
}

fn reserve(n: u128, quantity: u32, preferred: &[&str]) -> StockCommand {
    StockCommand::ReserveStock(ReserveStock {
        order_id: order(n),
        quantity: Quantity(quantity),
        preferred_warehouses: preferred.iter().map(|w| wh(w)).collect(),
        expires_at: t(30),
        at: t(2),
    })
}

fn release(n: u128) -> StockCommand {
    StockCommand::ReleaseReservation(ReleaseReservation {
        order_id: order(n),
        at: t(3),
    })
}

fn commit(n: u128) -> StockCommand {
    StockCommand::CommitReservation(CommitReservation {
        order_id: order(n),
        at: t(3),
    })
}

fn expire(n: u128, now: DateTime<Utc>) -> StockCommand {
    StockCommand::ExpireReservation(ExpireReservation {
        order_id: order(n),
        now,
    })
}

fn backorder_limit(limit: u32) -> StockCommand {
    StockCommand::SetBackorderLimit(SetBackorderLimit {
        sku: sku(),
        limit: Quantity(limit),
        at: t(0),
    })
}

fn threshold(q: u32) -> StockCommand {
    StockCommand::SetLowStockThreshold(SetLowStockThreshold {
        sku: sku(),
        threshold: Some(Quantity(q)),
        at: t(0),
    })
}

/// The history produced by running `commands` through the decider (each must succeed).
fn history(commands: Vec<StockCommand>) -> Vec<StockEvent> {
    let mut state = Stock::default();
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

fn state_after(commands: Vec<StockCommand>) -> Stock {
    let mut state = Stock::default();
    for e in history(commands) {
        state.evolve(&e);
    }
    state
}

fn when(given: Vec<StockCommand>, command: StockCommand) -> Vec<StockEvent> {
    Given::with(())
        .given(history(given))
        .when(command)
        .inspect_result()
        .unwrap_or_else(|e| panic!("refused: {e}"))
}

fn alloc(warehouse: &str, quantity: u32) -> WarehouseAllocation {
    WarehouseAllocation {
        warehouse: wh(warehouse),
        quantity: Quantity(quantity),
    }
}
