//! The payment aggregate (being written).

/// JSON Schemas of every payment event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    Vec::new()
}
