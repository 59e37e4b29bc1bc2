use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::*;
use crate::{Decider, OrderId, Quantity, Sku, WarehouseId};

impl Decider for Stock {
    type Command = StockCommand;
    type Event = StockEvent;
    type Error = StockError;

    fn decide(&self, command: StockCommand) -> Result<Vec<StockEvent>, StockError> {
        let (events, at) = match command {
            StockCommand::ReceiveStock(c) => {
                (self.receive(c.sku, c.warehouse, c.quantity, c.at)?, c.at)
            }
            StockCommand::AdjustStock(c) => {
                let at = c.at;
                (self.adjust(c)?, at)
            }
            StockCommand::ReserveStock(c) => {
                let at = c.at;
                (self.reserve(c)?, at)
            }
            StockCommand::ReleaseReservation(c) => (self.release(c.order_id, c.at)?, c.at),
            StockCommand::ChangeReservation(c) => {
                let at = c.at;
                (self.change(c)?, at)
            }
            StockCommand::CommitReservation(c) => (self.commit(c.order_id, c.at)?, c.at),
            StockCommand::ExpireReservation(c) => (self.expire(c.order_id, c.now)?, c.now),
            StockCommand::SetBackorderLimit(c) => {
                self.same_sku(&c.sku)?;
                if c.limit < self.levels.backordered {
                    return Err(StockError::BackorderLimitBelowOutstanding {
                        limit: c.limit,
                        backordered: self.levels.backordered,
                    });
                }
                let event = StockBackorderLimitSet {
                    sku: c.sku,
                    limit: c.limit,
                    backordered: self.levels.backordered,
                    at: c.at,
                };
                (vec![event.into()], c.at)
            }
            StockCommand::SetLowStockThreshold(c) => {
                self.same_sku(&c.sku)?;
                let event = LowStockThresholdSet {
                    sku: c.sku,
                    threshold: c.threshold,
                    available: self.levels.available,
                    at: c.at,
                };
                (vec![event.into()], c.at)
            }
        };
        Ok(self.with_consequences(events, at))
    }

    fn evolve(&mut self, event: &StockEvent) {
        match event {
            StockEvent::StockReceived(e) => {
                self.sku = Some(e.sku.clone());
                self.levels = e.levels.clone();
            }
            StockEvent::StockAdjusted(e) => self.levels = e.levels.clone(),
            StockEvent::StockReserved(e) => {
                let sequence = self.next_sequence;
                self.next_sequence += 1;
                self.reservations.insert(
                    e.order_id,
                    Reservation {
                        sequence,
                        quantity: e.quantity,
                        allocation: e
                            .allocation
                            .iter()
                            .map(|a| (a.warehouse.clone(), a.quantity))
                            .collect(),
                        backordered: e.backordered,
                        preferred_warehouses: e.preferred_warehouses.clone(),
                        expires_at: e.expires_at,
                        status: ReservationStatus::Active,
                    },
                );
                self.levels = e.levels.clone();
            }
            StockEvent::StockReservationReleased(e) => {
                self.close(&e.order_id, ReservationStatus::Released);
                self.levels = e.levels.clone();
            }
            StockEvent::StockReservationChanged(e) => {
                if let Some(r) = self.reservations.get_mut(&e.order_id) {
                    r.quantity = e.quantity;
                    r.allocation = e
                        .allocation
                        .iter()
                        .map(|a| (a.warehouse.clone(), a.quantity))
                        .collect();
                    r.backordered = e.backordered;
                }
                self.levels = e.levels.clone();
            }
            StockEvent::StockReservationCommitted(e) => {
                self.close(&e.order_id, ReservationStatus::Committed);
                self.levels = e.levels.clone();
            }
            StockEvent::StockReservationExpired(e) => {
                self.close(&e.order_id, ReservationStatus::Expired);
                self.levels = e.levels.clone();
            }
            StockEvent::StockBackorderFilled(e) => {
                if let Some(r) = self.reservations.get_mut(&e.order_id) {
                    for a in &e.allocation {
                        let held = r.allocation.entry(a.warehouse.clone()).or_default();
                        *held = Quantity(held.get().saturating_add(a.quantity.get()));
                    }
                    r.backordered = e.still_backordered;
                }
                self.levels = e.levels.clone();
            }
            StockEvent::StockBackorderLimitSet(e) => {
                self.sku = Some(e.sku.clone());
                self.backorder_limit = e.limit;
            }
            StockEvent::LowStockThresholdSet(e) => {
                self.sku = Some(e.sku.clone());
                self.low_stock_threshold = e.threshold;
            }
            StockEvent::LowStockThresholdCrossed(e) => {
                self.levels = e.levels.clone();
                self.low_stock_alerted = true;
            }
        }
        // Being above the threshold (or having none) re-arms the alert.
        let above = self
            .low_stock_threshold
            .is_none_or(|t| self.levels.available > i64::from(t.get()));
        if above {
            self.low_stock_alerted = false;
        }
    }
}

/// Working copy of the per-warehouse figures while a command is decided.
struct Ledger {
    warehouses: BTreeMap<WarehouseId, (u32, u32)>,
    backordered: u32,
}

impl Ledger {
    fn of(levels: &StockLevels) -> Self {
        Self {
            warehouses: levels
                .warehouses
                .iter()
                .map(|(w, l)| (w.clone(), (l.on_hand.get(), l.reserved.get())))
                .collect(),
            backordered: levels.backordered.get(),
        }
    }

    fn free(&self, warehouse: &WarehouseId) -> u32 {
        self.warehouses
            .get(warehouse)
            .map_or(0, |(on_hand, reserved)| on_hand.saturating_sub(*reserved))
    }

    fn free_total(&self) -> u64 {
        self.warehouses
            .keys()
            .map(|w| u64::from(self.free(w)))
            .sum()
    }

    /// Moves allocated units into `reserved`; the allocation never exceeds free stock.
    fn hold(&mut self, allocation: &[WarehouseAllocation]) {
        for a in allocation {
            if let Some((_, reserved)) = self.warehouses.get_mut(&a.warehouse) {
                *reserved = reserved.saturating_add(a.quantity.get());
            }
        }
    }

    fn unhold(&mut self, allocation: &[WarehouseAllocation]) {
        for a in allocation {
            if let Some((_, reserved)) = self.warehouses.get_mut(&a.warehouse) {
                *reserved = reserved.saturating_sub(a.quantity.get());
            }
        }
    }

    fn ship(&mut self, allocation: &[WarehouseAllocation]) {
        for a in allocation {
            if let Some((on_hand, reserved)) = self.warehouses.get_mut(&a.warehouse) {
                *on_hand = on_hand.saturating_sub(a.quantity.get());
                *reserved = reserved.saturating_sub(a.quantity.get());
            }
        }
    }

    fn levels(&self) -> StockLevels {
        let warehouses: BTreeMap<WarehouseId, WarehouseLevel> = self
            .warehouses
            .iter()
            .map(|(w, (on_hand, reserved))| {
                let level = WarehouseLevel {
                    on_hand: Quantity(*on_hand),
                    reserved: Quantity(*reserved),
                    available: Quantity(on_hand.saturating_sub(*reserved)),
                };
                (w.clone(), level)
            })
            .collect();
        let on_hand: u64 = self.warehouses.values().map(|(o, _)| u64::from(*o)).sum();
        let reserved: u64 = self.warehouses.values().map(|(_, r)| u64::from(*r)).sum();
        // Totals of u32 figures over a handful of warehouses stay far inside i64.
        let available = i128::from(on_hand) - i128::from(reserved) - i128::from(self.backordered);
        StockLevels {
            warehouses,
            on_hand,
            reserved,
            backordered: Quantity(self.backordered),
            available: i64::try_from(available).unwrap_or(i64::MIN),
        }
    }

    /// The warehouses to visit: `preferred` first (known ones, once each), then the rest in
    /// warehouse-id order.
    fn visit_order(&self, preferred: &[WarehouseId]) -> Vec<WarehouseId> {
        let mut order: Vec<WarehouseId> = Vec::new();
        for w in preferred {
            if self.warehouses.contains_key(w) && !order.contains(w) {
                order.push(w.clone());
            }
        }
        for w in self.warehouses.keys() {
            if !order.contains(w) {
                order.push(w.clone());
            }
        }
        order
    }

    /// Allocates up to `wanted` units: the first warehouse in `order` that can fill the
    /// whole quantity alone, else a greedy split in `order`.
    fn allocate(&self, order: &[WarehouseId], wanted: u32) -> Vec<WarehouseAllocation> {
        if let Some(w) = order.iter().find(|w| self.free(w) >= wanted) {
            return vec![WarehouseAllocation {
                warehouse: w.clone(),
                quantity: Quantity(wanted),
            }];
        }
        let mut left = wanted;
        let mut allocation = Vec::new();
        for w in order {
            let take = self.free(w).min(left);
            if take > 0 {
                allocation.push(WarehouseAllocation {
                    warehouse: w.clone(),
                    quantity: Quantity(take),
                });
                left -= take;
            }
        }
        allocation
    }
}

fn as_allocation(held: &BTreeMap<WarehouseId, Quantity>) -> Vec<WarehouseAllocation> {
    held.iter()
        .filter(|(_, q)| q.get() > 0)
        .map(|(w, q)| WarehouseAllocation {
            warehouse: w.clone(),
            quantity: *q,
        })
        .collect()
}

impl Stock {
    fn same_sku(&self, sku: &Sku) -> Result<(), StockError> {
        match &self.sku {
            Some(expected) if expected != sku => Err(StockError::SkuMismatch {
                expected: expected.clone(),
                got: sku.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn tracked_sku(&self) -> Result<Sku, StockError> {
        self.sku.clone().ok_or(StockError::NotTracked)
    }

    fn receive(
        &self,
        sku: Sku,
        warehouse: WarehouseId,
        quantity: Quantity,
        at: DateTime<Utc>,
    ) -> Result<Vec<StockEvent>, StockError> {
        self.same_sku(&sku)?;
        if quantity == Quantity::ZERO {
            return Err(StockError::ZeroQuantity);
        }
        let mut ledger = Ledger::of(&self.levels);
        let (on_hand, _) = ledger.warehouses.entry(warehouse.clone()).or_default();
        *on_hand = on_hand
            .checked_add(quantity.get())
            .ok_or(StockError::QuantityOverflow)?;
        Ok(vec![StockReceived {
            sku,
            warehouse,
            quantity,
            levels: ledger.levels(),
            at,
        }
        .into()])
    }

    fn adjust(&self, c: AdjustStock) -> Result<Vec<StockEvent>, StockError> {
        let sku = self.tracked_sku()?;
        if c.delta == 0 {
            return Err(StockError::ZeroQuantity);
        }
        let contradicts = match c.reason {
            AdjustmentReason::Damaged | AdjustmentReason::Lost => c.delta > 0,
            AdjustmentReason::Found => c.delta < 0,
            AdjustmentReason::CountCorrection => false,
        };
        if contradicts {
            return Err(StockError::ReasonContradictsDelta {
                reason: c.reason,
                delta: c.delta,
            });
        }
        let mut ledger = Ledger::of(&self.levels);
        let (on_hand, reserved) = ledger
            .warehouses
            .get_mut(&c.warehouse)
            .ok_or_else(|| StockError::UnknownWarehouse(c.warehouse.clone()))?;
        let would_be = i64::from(*on_hand)
            .checked_add(c.delta)
            .ok_or(StockError::QuantityOverflow)?;
        if would_be < i64::from(*reserved) {
            return Err(StockError::BelowReserved {
                warehouse: c.warehouse,
                would_be,
                reserved: Quantity(*reserved),
            });
        }
        *on_hand = u32::try_from(would_be).map_err(|_| StockError::QuantityOverflow)?;
        Ok(vec![StockAdjusted {
            sku,
            warehouse: c.warehouse,
            delta: c.delta,
            reason: c.reason,
            levels: ledger.levels(),
            at: c.at,
        }
        .into()])
    }

    fn reserve(&self, c: ReserveStock) -> Result<Vec<StockEvent>, StockError> {
        let sku = self.tracked_sku()?;
        if self.reservations.contains_key(&c.order_id) {
            // At-least-once delivery: the order's reservation already exists.
            return Ok(Vec::new());
        }
        if c.quantity == Quantity::ZERO {
            return Err(StockError::ZeroQuantity);
        }
        if c.expires_at <= c.at {
            return Err(StockError::ExpiryNotInFuture {
                expires_at: c.expires_at,
                at: c.at,
            });
        }
        let mut ledger = Ledger::of(&self.levels);
        let free = ledger.free_total();
        let wanted = c.quantity.get();
        let shortfall = u32::try_from(u64::from(wanted).saturating_sub(free)).unwrap_or(wanted);
        if shortfall > 0 {
            let allowance = self
                .backorder_limit
                .get()
                .saturating_sub(self.levels.backordered.get());
            if shortfall > allowance {
                return Err(StockError::InsufficientStock {
                    requested: c.quantity,
                    available: Quantity(wanted - shortfall),
                    backorder_allowance: Quantity(allowance),
                });
            }
        }
        let order = ledger.visit_order(&c.preferred_warehouses);
        let allocation = ledger.allocate(&order, wanted - shortfall);
        ledger.hold(&allocation);
        ledger.backordered = ledger.backordered.saturating_add(shortfall);
        Ok(vec![StockReserved {
            sku,
            order_id: c.order_id,
            quantity: c.quantity,
            allocation,
            backordered: Quantity(shortfall),
            preferred_warehouses: c.preferred_warehouses,
            expires_at: c.expires_at,
            levels: ledger.levels(),
            at: c.at,
        }
        .into()])
    }

    fn release(&self, order_id: OrderId, at: DateTime<Utc>) -> Result<Vec<StockEvent>, StockError> {
        // Releasing is a compensation: an unknown or settled reservation is a no-op.
        let (Some(sku), Some(r)) = (&self.sku, self.active_reservation(&order_id)) else {
            return Ok(Vec::new());
        };
        let freed = as_allocation(&r.allocation);
        let mut ledger = Ledger::of(&self.levels);
        ledger.unhold(&freed);
        ledger.backordered = ledger.backordered.saturating_sub(r.backordered.get());
        Ok(vec![StockReservationReleased {
            sku: sku.clone(),
            order_id,
            freed,
            backorder_cancelled: r.backordered,
            levels: ledger.levels(),
            at,
        }
        .into()])
    }

    fn change(&self, c: ChangeReservation) -> Result<Vec<StockEvent>, StockError> {
        let (sku, r) = self.settled_or_missing(c.order_id)?;
        if c.quantity == Quantity::ZERO {
            return Err(StockError::ZeroQuantity);
        }
        if c.quantity == r.quantity {
            return Ok(Vec::new());
        }
        let mut ledger = Ledger::of(&self.levels);
        let mut held = r.allocation.clone();
        let mut backordered = r.backordered.get();
        if c.quantity > r.quantity {
            let wanted = c.quantity.get() - r.quantity.get();
            let free = ledger.free_total();
            let shortfall = u32::try_from(u64::from(wanted).saturating_sub(free)).unwrap_or(wanted);
            if shortfall > 0 {
                let allowance = self
                    .backorder_limit
                    .get()
                    .saturating_sub(self.levels.backordered.get());
                if shortfall > allowance {
                    return Err(StockError::InsufficientStock {
                        requested: Quantity(wanted),
                        available: Quantity(wanted - shortfall),
                        backorder_allowance: Quantity(allowance),
                    });
                }
            }
            // The warehouses already packing this order first: fewer parcels.
            let preferred: Vec<WarehouseId> = held
                .keys()
                .cloned()
                .chain(r.preferred_warehouses.iter().cloned())
                .collect();
            let order = ledger.visit_order(&preferred);
            let allocation = ledger.allocate(&order, wanted - shortfall);
            ledger.hold(&allocation);
            for a in &allocation {
                let q = held.entry(a.warehouse.clone()).or_default();
                *q = Quantity(q.get().saturating_add(a.quantity.get()));
            }
            ledger.backordered = ledger.backordered.saturating_add(shortfall);
            backordered = backordered.saturating_add(shortfall);
        } else {
            let mut surplus = r.quantity.get() - c.quantity.get();
            let cancelled = surplus.min(backordered);
            backordered -= cancelled;
            ledger.backordered = ledger.backordered.saturating_sub(cancelled);
            surplus -= cancelled;
            let mut smallest_first: Vec<(WarehouseId, Quantity)> =
                held.iter().map(|(w, q)| (w.clone(), *q)).collect();
            smallest_first.sort_by_key(|(w, q)| (q.get(), w.clone()));
            let mut freed = Vec::new();
            for (w, q) in smallest_first {
                if surplus == 0 {
                    break;
                }
                let take = q.get().min(surplus);
                surplus -= take;
                freed.push(WarehouseAllocation {
                    warehouse: w.clone(),
                    quantity: Quantity(take),
                });
                held.insert(w, Quantity(q.get() - take));
            }
            ledger.unhold(&freed);
        }
        Ok(vec![StockReservationChanged {
            sku,
            order_id: c.order_id,
            previous_quantity: r.quantity,
            quantity: c.quantity,
            allocation: as_allocation(&held),
            backordered: Quantity(backordered),
            levels: ledger.levels(),
            at: c.at,
        }
        .into()])
    }

    fn settled_or_missing(&self, order_id: OrderId) -> Result<(Sku, &Reservation), StockError> {
        let r = self
            .reservations
            .get(&order_id)
            .ok_or(StockError::ReservationNotFound(order_id))?;
        if r.status != ReservationStatus::Active {
            return Err(StockError::ReservationNotActive(order_id));
        }
        Ok((self.tracked_sku()?, r))
    }

    fn commit(&self, order_id: OrderId, at: DateTime<Utc>) -> Result<Vec<StockEvent>, StockError> {
        let (sku, r) = self.settled_or_missing(order_id)?;
        if r.backordered > Quantity::ZERO {
            return Err(StockError::ReservationBackordered {
                order_id,
                backordered: r.backordered,
            });
        }
        let shipped = as_allocation(&r.allocation);
        let mut ledger = Ledger::of(&self.levels);
        ledger.ship(&shipped);
        Ok(vec![StockReservationCommitted {
            sku,
            order_id,
            shipped,
            levels: ledger.levels(),
            at,
        }
        .into()])
    }

    fn expire(&self, order_id: OrderId, now: DateTime<Utc>) -> Result<Vec<StockEvent>, StockError> {
        let (sku, r) = self.settled_or_missing(order_id)?;
        if now < r.expires_at {
            return Err(StockError::ReservationNotExpired {
                order_id,
                expires_at: r.expires_at,
                now,
            });
        }
        let freed = as_allocation(&r.allocation);
        let mut ledger = Ledger::of(&self.levels);
        ledger.unhold(&freed);
        ledger.backordered = ledger.backordered.saturating_sub(r.backordered.get());
        Ok(vec![StockReservationExpired {
            sku,
            order_id,
            freed,
            backorder_cancelled: r.backordered,
            expires_at: r.expires_at,
            levels: ledger.levels(),
            at: now,
        }
        .into()])
    }

    /// Appends what the command's events cause: free stock goes to waiting backorders
    /// (oldest reservation first), then the low-stock alert if available stock is now at
    /// or below the threshold and no alert is outstanding.
    fn with_consequences(&self, mut events: Vec<StockEvent>, at: DateTime<Utc>) -> Vec<StockEvent> {
        if events.is_empty() {
            return events;
        }
        let mut next = self.clone();
        for e in &events {
            next.evolve(e);
        }
        while let Some(fill) = next.next_backorder_fill(at) {
            next.evolve(&fill);
            events.push(fill);
        }
        if let (Some(threshold), Some(sku)) = (next.low_stock_threshold, &next.sku) {
            if !next.low_stock_alerted && next.levels.available <= i64::from(threshold.get()) {
                events.push(
                    LowStockThresholdCrossed {
                        sku: sku.clone(),
                        threshold,
                        levels: next.levels.clone(),
                        at,
                    }
                    .into(),
                );
            }
        }
        events
    }

    fn next_backorder_fill(&self, at: DateTime<Utc>) -> Option<StockEvent> {
        let sku = self.sku.clone()?;
        let mut ledger = Ledger::of(&self.levels);
        let free = ledger.free_total();
        if free == 0 {
            return None;
        }
        let (order_id, r) = self
            .reservations
            .iter()
            .filter(|(_, r)| {
                r.status == ReservationStatus::Active && r.backordered > Quantity::ZERO
            })
            .min_by_key(|(_, r)| r.sequence)?;
        let take = u32::try_from(free.min(u64::from(r.backordered.get()))).unwrap_or(0);
        let order = ledger.visit_order(&r.preferred_warehouses);
        let allocation = ledger.allocate(&order, take);
        ledger.hold(&allocation);
        ledger.backordered = ledger.backordered.saturating_sub(take);
        Some(
            StockBackorderFilled {
                sku,
                order_id: *order_id,
                allocation,
                still_backordered: Quantity(r.backordered.get() - take),
                levels: ledger.levels(),
                at,
            }
            .into(),
        )
    }

    fn close(&mut self, order_id: &OrderId, status: ReservationStatus) {
        if let Some(r) = self.reservations.get_mut(order_id) {
            r.status = status;
            r.allocation.clear();
            r.backordered = Quantity::ZERO;
        }
    }
}
