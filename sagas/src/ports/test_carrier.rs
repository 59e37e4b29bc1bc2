//! The built-in deterministic carrier (test mode): labels are numbered from their
//! idempotency key, and a parcel advances by itself, one scan per `step` after its label
//! was bought: in transit, out for delivery, delivered. A destination with postal code
//! [`UNDELIVERABLE`] fails at the door instead of being delivered; one with postal code
//! [`RETURNS_TO_SENDER`] (or a shipment marked with [`TestCarrier::send_back`]) fails at
//! the door and then comes back to the warehouse.
//!
//! Time comes from the clock the provider is given, so tests move time instead of
//! sleeping; a zero step delivers at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aggregates::{Address, Currency, Money, ReturnId, ShipmentId, WarehouseId};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::carrier::{Carrier, Label, Rate, Scan, TrackingUpdate};
use super::PortError;

/// Parcels to this postal code fail at the door.
pub const UNDELIVERABLE: &str = "00000";

/// Parcels to this postal code fail at the door and go back to the warehouse.
pub const RETURNS_TO_SENDER: &str = "00009";

/// The carrier code the test carrier prints on labels.
pub const CARRIER_CODE: &str = "test-post";

/// A clock the provider reads (the engine's injectable clock in practice).
pub type ClockFn = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

#[derive(Debug, Clone)]
struct Parcel {
    bought_at: DateTime<Utc>,
    undeliverable: bool,
    returns: bool,
    destination: String,
}

/// The deterministic test carrier. Clones share their parcels.
#[derive(Clone)]
pub struct TestCarrier {
    step: Duration,
    clock: ClockFn,
    parcels: Arc<Mutex<BTreeMap<String, Parcel>>>,
    /// Shipments whose parcels come back to the warehouse, whatever the address.
    sent_back: Arc<Mutex<std::collections::BTreeSet<ShipmentId>>>,
}

impl std::fmt::Debug for TestCarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCarrier")
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl TestCarrier {
    pub fn new(step: Duration, clock: ClockFn) -> Self {
        Self {
            step,
            clock,
            parcels: Arc::default(),
            sent_back: Arc::default(),
        }
    }

    /// The parcel of `shipment` (labelled from now on) fails at the door and comes back
    /// to the warehouse: the test mode's way to have one parcel of an order returned.
    pub fn send_back(&self, shipment: ShipmentId) {
        self.sent_back
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(shipment);
    }

    fn parcels(&self) -> MutexGuard<'_, BTreeMap<String, Parcel>> {
        self.parcels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Labels bought so far (each key buys one).
    pub fn labels_bought(&self) -> usize {
        self.parcels().len()
    }

    fn buy(
        &self,
        key: Uuid,
        prefix: &str,
        destination: String,
        (undeliverable, returns): (bool, bool),
    ) -> Label {
        let tracking_number = format!("{prefix}{}", &key.simple().to_string()[..16]);
        let now = (self.clock)();
        self.parcels()
            .entry(tracking_number.clone())
            .or_insert(Parcel {
                bought_at: now,
                undeliverable,
                returns,
                destination,
            });
        Label {
            carrier_code: CARRIER_CODE.into(),
            label_reference: format!("https://labels.test.invalid/{tracking_number}.pdf"),
            tracking_number,
        }
    }
}

impl Carrier for TestCarrier {
    async fn quote(
        &self,
        _from: &WarehouseId,
        to: &Address,
        parcels: u32,
    ) -> Result<Rate, PortError> {
        // A flat 4.90 per parcel, 9.90 abroad: enough to exercise the port's shape.
        let per_parcel = if to.country.0 == "DE" { 490 } else { 990 };
        Ok(Rate {
            carrier_code: CARRIER_CODE.into(),
            service: "standard".into(),
            price: Money::new(per_parcel * i64::from(parcels.max(1)), Currency::EUR),
        })
    }

    async fn create_label(
        &self,
        key: Uuid,
        shipment_id: ShipmentId,
        _from: &WarehouseId,
        to: &Address,
    ) -> Result<Label, PortError> {
        let returns = to.postal_code == RETURNS_TO_SENDER
            || self
                .sent_back
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&shipment_id);
        let undeliverable = to.postal_code == UNDELIVERABLE;
        Ok(self.buy(key, "TP", to.city.clone(), (undeliverable, returns)))
    }

    async fn create_return_label(
        &self,
        key: Uuid,
        _return_id: ReturnId,
        _from: &Address,
        to: &WarehouseId,
    ) -> Result<Label, PortError> {
        Ok(self.buy(key, "TR", to.to_string(), (false, false)))
    }

    async fn track(&self, tracking_number: &str) -> Result<Vec<TrackingUpdate>, PortError> {
        let parcel = self
            .parcels()
            .get(tracking_number)
            .cloned()
            .ok_or_else(|| PortError {
                provider: CARRIER_CODE.into(),
                message: format!("unknown tracking number {tracking_number}"),
            })?;
        let now = (self.clock)();
        let last = if parcel.undeliverable || parcel.returns {
            Scan::Failed
        } else {
            Scan::Delivered
        };
        let mut plan = vec![
            (Scan::InTransit, "sorting centre".to_string()),
            (Scan::OutForDelivery, parcel.destination.clone()),
            (last, parcel.destination.clone()),
        ];
        if parcel.returns {
            plan.push((Scan::ReturnedToSender, "sender".to_string()));
        }
        Ok(plan
            .into_iter()
            .zip(1..)
            .filter(|(_, n)| parcel.bought_at + self.step * *n <= now)
            .map(|((scan, location), n)| TrackingUpdate {
                scan,
                location,
                // Distinct scan times even with a zero step, so scans stay ordered.
                at: parcel.bought_at + self.step * n + Duration::microseconds(i64::from(n)),
            })
            .collect())
    }
}
