//! The shipment aggregate (being written).

/// JSON Schemas of every shipment event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    Vec::new()
}
